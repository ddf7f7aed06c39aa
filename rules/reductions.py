"""Reductions, on CUDA cores: 1 FLOP per *input* element (the running add or
compare), +1 per output element for a mean's division, 3 per input element for
var/std (subtract the mean, square, accumulate).  Bytes: input read, output written.
Out variants (``sum.IntList_out``) and in-place ``cumsum_`` cost the same."""

from __future__ import annotations

from . import Cost, OpCall, register, register_rows


def _reduce(per_in: int, per_out: int):  # type: ignore[no-untyped-def]
    def rule(call: OpCall) -> Cost:
        x = call.arg(0, "self")
        cc = per_in * x.numel + per_out * call.out.numel
        return Cost(0, cc, call.read_bytes(), call.written_bytes())

    rule.__doc__ = f"{per_in} per input element + {per_out} per output element."
    return rule


REDUCE = _reduce(1, 0)
MEAN = _reduce(1, 1)
VARIANCE = _reduce(3, 1)

register_rows(
    [
        ("sum.dim_IntList", None, "sum.IntList_out"),
        ("sum.default", None, "sum.out"),
        ("amax.default", None, "amax.out"),
        ("amin.default", None, "amin.out"),
        ("max.default", None, "max.unary_out"),
        ("min.default", None, "min.unary_out"),
        ("argmax.default", None, "argmax.out"),
        ("prod.dim_int", None, "prod.int_out"),
        ("prod.default", None, "prod.out"),
        ("cumsum.default", "cumsum_.default", "cumsum.out"),
        ("norm.ScalarOpt_dim", None, "norm.out"),
        ("norm.Scalar", None, "norm.Scalar_out"),
        ("norm.ScalarOpt_dim_dtype", None, "norm.dtype_out"),
        ("norm.ScalarOpt_dtype", None, "norm.ScalarOpt_dtype_out"),
        ("linalg_vector_norm.default", None, "linalg_vector_norm.out"),
        ("any.dim", None, "any.out"),
        ("any.dims", None, "any.dims_out"),
        ("any.default", None, "any.all_out"),
        ("all.dim", None, "all.out"),
        ("all.dims", None, "all.dims_out"),
        ("all.default", None, "all.all_out"),
    ],
    REDUCE,
    "reduction",
)
# max.dim / min.dim return (values, indices); their out variants take both by name
register("aten.max.dim", "aten.min.dim", family="reduction")(REDUCE)
register("aten.max.dim_max", family="reduction", out_args=("max", "max_values"))(REDUCE)
register("aten.min.dim_min", family="reduction", out_args=("min", "min_indices"))(REDUCE)
register_rows([("mean.dim", None, "mean.out"), ("mean.default", None, "mean.dtype_out")], MEAN, "reduction")
register_rows(
    [
        ("var.correction", None, "var.correction_out"),
        ("var.dim", None, "var.out"),
        ("var.default", None, None),
        ("std.correction", None, "std.correction_out"),
        ("std.dim", None, "std.out"),
        ("std.default", None, None),
        ("var_mean.correction", None, None),
        ("var_mean.dim", None, None),
        ("var_mean.default", None, None),
    ],
    VARIANCE,
    "reduction",
)
register("aten.var_mean.correction_out", family="reduction", out_args=("out0", "out1"))(VARIANCE)
