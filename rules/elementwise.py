"""Elementwise arithmetic and math functions, on CUDA cores.

Cost per *output* element: 1 for add/sub/mul/div and the like, 1 for each
transcendental (exp, sin, cos, sqrt, rsqrt, log, tanh, erf, pow...), 2 for fused
forms (addcmul, addcdiv, lerp).  Bytes: every tensor operand
read once at its own (un-broadcast) size, the output written once.  In-place
variants (``add_``) and out variants (``add.out``) cost the same as their
out-of-place form.
"""

from __future__ import annotations

from collections.abc import Callable

from . import Cost, OpCall, register_rows


def elementwise(per_element: int) -> Callable[[OpCall], Cost]:
    """A rule costing ``per_element`` CUDA-core FLOPs per output element."""

    def rule(call: OpCall) -> Cost:
        return Cost(0, per_element * call.out.numel, call.read_bytes(), call.written_bytes())

    rule.__doc__ = f"{per_element} CUDA-core FLOP(s) per output element."
    return rule


# functional, in-place, out=
ONE_FLOP: list[tuple[str, str | None, str | None]] = [
    ("add.Tensor", "add_.Tensor", "add.out"),
    ("add.Scalar", "add_.Scalar", "add.Scalar_out"),
    ("sub.Tensor", "sub_.Tensor", "sub.out"),
    ("sub.Scalar", "sub_.Scalar", "sub.Scalar_out"),
    ("rsub.Tensor", None, "rsub.Tensor_out"),
    ("rsub.Scalar", None, "rsub.Scalar_out"),
    ("mul.Tensor", "mul_.Tensor", "mul.out"),
    ("mul.Scalar", "mul_.Scalar", "mul.Scalar_out"),
    ("div.Tensor", "div_.Tensor", "div.out"),
    ("div.Scalar", "div_.Scalar", "div.Scalar_out"),
    ("div.Tensor_mode", "div_.Tensor_mode", "div.out_mode"),
    ("div.Scalar_mode", "div_.Scalar_mode", "div.Scalar_mode_out"),
    ("neg.default", "neg_.default", "neg.out"),
    ("abs.default", "abs_.default", "abs.out"),
    ("reciprocal.default", "reciprocal_.default", "reciprocal.out"),
    ("maximum.default", None, "maximum.out"),
    ("minimum.default", None, "minimum.out"),
    ("max.other", None, "max.out"),  # elementwise max(a, b)
    ("min.other", None, "min.out"),
    ("clamp.default", "clamp_.default", "clamp.out"),
    ("clamp.Tensor", "clamp_.Tensor", "clamp.Tensor_out"),
    ("clamp_min.default", "clamp_min_.default", "clamp_min.out"),
    ("clamp_min.Tensor", "clamp_min_.Tensor", "clamp_min.Tensor_out"),
    ("clamp_max.default", "clamp_max_.default", "clamp_max.out"),
    ("clamp_max.Tensor", "clamp_max_.Tensor", "clamp_max.Tensor_out"),
    ("eq.Tensor", "eq_.Tensor", "eq.Tensor_out"),
    ("eq.Scalar", "eq_.Scalar", "eq.Scalar_out"),
    ("ne.Tensor", "ne_.Tensor", "ne.Tensor_out"),
    ("ne.Scalar", "ne_.Scalar", "ne.Scalar_out"),
    ("lt.Tensor", "lt_.Tensor", "lt.Tensor_out"),
    ("lt.Scalar", "lt_.Scalar", "lt.Scalar_out"),
    ("gt.Tensor", "gt_.Tensor", "gt.Tensor_out"),
    ("gt.Scalar", "gt_.Scalar", "gt.Scalar_out"),
    ("le.Tensor", "le_.Tensor", "le.Tensor_out"),
    ("le.Scalar", "le_.Scalar", "le.Scalar_out"),
    ("ge.Tensor", "ge_.Tensor", "ge.Tensor_out"),
    ("ge.Scalar", "ge_.Scalar", "ge.Scalar_out"),
    ("floor.default", "floor_.default", "floor.out"),
    ("ceil.default", "ceil_.default", "ceil.out"),
    ("round.default", "round_.default", "round.out"),
    ("round.decimals", "round_.decimals", "round.decimals_out"),
    ("sign.default", "sign_.default", "sign.out"),
    ("remainder.Scalar", "remainder_.Scalar", "remainder.Scalar_out"),
    ("remainder.Tensor", "remainder_.Tensor", "remainder.Tensor_out"),
    ("remainder.Scalar_Tensor", None, "remainder.Scalar_Tensor_out"),
    ("fmod.Scalar", "fmod_.Scalar", "fmod.Scalar_out"),
    ("fmod.Tensor", "fmod_.Tensor", "fmod.Tensor_out"),
    ("square.default", "square_.default", "square.out"),
    ("bitwise_not.default", "bitwise_not_.default", "bitwise_not.out"),
    ("logical_not.default", "logical_not_.default", "logical_not.out"),
    ("masked_fill.Scalar", "masked_fill_.Scalar", "masked_fill.Scalar_out"),
    ("masked_fill.Tensor", "masked_fill_.Tensor", "masked_fill.Tensor_out"),
    ("where.self", None, "where.self_out"),
    ("where.ScalarOther", None, None),
    ("where.ScalarSelf", None, None),
    ("where.Scalar", None, None),
    # comparisons and boolean logic between tensors (attention-mask construction)
    ("logical_and.default", "logical_and_.default", "logical_and.out"),
    ("logical_or.default", "logical_or_.default", "logical_or.out"),
    ("bitwise_and.Tensor", "bitwise_and_.Tensor", "bitwise_and.Tensor_out"),
    ("bitwise_and.Scalar", "bitwise_and_.Scalar", "bitwise_and.Scalar_out"),
    ("bitwise_and.Scalar_Tensor", None, "bitwise_and.Scalar_Tensor_out"),
    ("bitwise_or.Tensor", "bitwise_or_.Tensor", "bitwise_or.Tensor_out"),
    ("bitwise_or.Scalar", "bitwise_or_.Scalar", "bitwise_or.Scalar_out"),
    ("bitwise_or.Scalar_Tensor", None, "bitwise_or.Scalar_Tensor_out"),
    ("__and__.Tensor", "__iand__.Tensor", None),
    ("__and__.Scalar", "__iand__.Scalar", None),
    ("__or__.Tensor", "__ior__.Tensor", None),
    ("__or__.Scalar", "__ior__.Scalar", None),
    # outer product a (n,) x b (m,) -> (n, m): one multiply per output element (RoPE frequency tables)
    ("outer.default", None, "outer.out"),
]
register_rows(ONE_FLOP, elementwise(1), "elementwise")

TRANSCENDENTAL: list[tuple[str, str | None, str | None]] = [
    *((f"{op}.default", f"{op}_.default", f"{op}.out") for op in ("exp", "exp2", "expm1", "log", "log1p", "log2")),
    *((f"{op}.default", f"{op}_.default", f"{op}.out") for op in ("sin", "cos", "tan", "sqrt", "rsqrt", "erf", "atan")),
    ("pow.Tensor_Scalar", "pow_.Scalar", "pow.Tensor_Scalar_out"),
    ("pow.Tensor_Tensor", "pow_.Tensor", "pow.Tensor_Tensor_out"),
    ("pow.Scalar", None, "pow.Scalar_out"),
]
register_rows(TRANSCENDENTAL, elementwise(1), "transcendental")

FUSED: list[tuple[str, str | None, str | None]] = [
    ("addcmul.default", "addcmul_.default", "addcmul.out"),
    ("addcdiv.default", "addcdiv_.default", "addcdiv.out"),
    ("lerp.Scalar", "lerp_.Scalar", "lerp.Scalar_out"),
    ("lerp.Tensor", "lerp_.Tensor", "lerp.Tensor_out"),
]
register_rows(FUSED, elementwise(2), "elementwise")
