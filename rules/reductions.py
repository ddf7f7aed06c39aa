"""Reductions, on CUDA cores: 1 FLOP per *input* element (the running add or
compare), +1 per output element for a mean's division, 3 per input element for
var/std (subtract the mean, square, accumulate).  Bytes: input read, output written."""

from __future__ import annotations

from . import Cost, OpCall, register


def _reduce(per_in: int, per_out: int):  # type: ignore[no-untyped-def]
    def rule(call: OpCall) -> Cost:
        x = call.args[0]
        cc = per_in * x.numel + per_out * call.out.numel
        return Cost(0, cc, call.read_bytes(), call.written_bytes())

    rule.__doc__ = f"{per_in} per input element + {per_out} per output element."
    return rule


register(
    "aten.sum.dim_IntList",
    "aten.sum.default",
    "aten.amax.default",
    "aten.amin.default",
    "aten.max.dim",
    "aten.min.dim",
    "aten.argmax.default",
    "aten.prod.dim_int",
    "aten.cumsum.default",
    "aten.norm.ScalarOpt_dim",
    "aten.linalg_vector_norm.default",
    "aten.any.dim",
    "aten.all.dim",
    family="reduction",
)(_reduce(1, 0))
register("aten.mean.dim", "aten.mean.default", family="reduction")(_reduce(1, 1))
register("aten.var.correction", "aten.std.correction", "aten.var_mean.correction", family="reduction")(_reduce(3, 1))
