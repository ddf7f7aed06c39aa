"""Elementwise arithmetic and math functions, on CUDA cores.

Cost per *output* element: 1 for add/sub/mul/div and the like, 1 for each
transcendental (exp, sin, cos, sqrt, rsqrt, log, tanh, erf, pow...), 2 for fused
forms (addcmul, addcdiv, lerp).  Bytes: every tensor operand
read once at its own (un-broadcast) size, the output written once.  In-place
variants (``add_``) cost the same as their out-of-place form.
"""

from __future__ import annotations

from collections.abc import Callable

from . import Cost, OpCall, register


def elementwise(per_element: int) -> Callable[[OpCall], Cost]:
    """A rule costing ``per_element`` CUDA-core FLOPs per output element."""

    def rule(call: OpCall) -> Cost:
        return Cost(0, per_element * call.out.numel, call.read_bytes(), call.written_bytes())

    rule.__doc__ = f"{per_element} CUDA-core FLOP(s) per output element."
    return rule


def _variants(*names: str) -> list[str]:
    out = []
    for n in names:
        base, _, overload = n.partition(".")
        out.append(f"aten.{n}")
        out.append(f"aten.{base}_.{overload}")
    return out


register(
    *_variants(
        "add.Tensor",
        "add.Scalar",
        "sub.Tensor",
        "sub.Scalar",
        "rsub.Tensor",
        "rsub.Scalar",
        "mul.Tensor",
        "mul.Scalar",
        "div.Tensor",
        "div.Scalar",
        "div.Tensor_mode",
        "neg.default",
        "abs.default",
        "reciprocal.default",
        "maximum.default",
        "minimum.default",
        "clamp.default",
        "clamp_min.default",
        "clamp_max.default",
        "eq.Tensor",
        "eq.Scalar",
        "ne.Tensor",
        "ne.Scalar",
        "lt.Tensor",
        "lt.Scalar",
        "gt.Tensor",
        "gt.Scalar",
        "le.Scalar",
        "ge.Scalar",
        "floor.default",
        "ceil.default",
        "round.default",
        "sign.default",
        "remainder.Scalar",
        "fmod.Scalar",
        "square.default",
        "bitwise_not.default",
        "logical_not.default",
        "logical_and.default",
        "masked_fill.Scalar",
    ),
    "aten.where.self",
    "aten.where.ScalarOther",
    "aten.where.ScalarSelf",
    "aten.masked_fill.Tensor",
    family="elementwise",
)(elementwise(1))

register(
    *_variants(
        "exp.default",
        "exp2.default",
        "expm1.default",
        "log.default",
        "log1p.default",
        "log2.default",
        "sin.default",
        "cos.default",
        "tan.default",
        "sqrt.default",
        "rsqrt.default",
        "pow.Tensor_Scalar",
        "pow.Tensor_Tensor",
        "erf.default",
        "atan.default",
    ),
    "aten.pow.Scalar",
    family="transcendental",
)(elementwise(1))

register(
    *_variants("addcmul.default", "addcdiv.default", "lerp.Scalar", "lerp.Tensor"),
    family="elementwise",
)(elementwise(2))

# outer product a (n,) x b (m,) -> (n, m): one multiply per output element (RoPE frequency tables)
register("aten.outer.default", family="elementwise")(elementwise(1))

# comparisons and boolean logic between tensors (attention-mask construction): 1 op per output element
register(
    "aten.ge.Tensor",
    "aten.le.Tensor",
    "aten.__and__.Tensor",
    "aten.__or__.Tensor",
    "aten.bitwise_and.Tensor",
    "aten.bitwise_or.Tensor",
    "aten.logical_or.default",
    family="elementwise",
)(elementwise(1))
