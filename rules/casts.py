"""Dtype casts: free when the dtype does not change (``Tensor.to`` returns self),
otherwise 1 CUDA-core FLOP per element (the conversion instruction), the input
read at its dtype and the output written at the new one."""

from __future__ import annotations

from . import Cost, OpCall, register

#: where each overload takes ``copy`` (schema position, None: keyword-only); absent: it has none
COPY_ARG: dict[str, int | None] = {
    "aten.to.dtype": 3,  # to.dtype(self, dtype, non_blocking, copy, memory_format)
    "aten.to.device": 4,  # to.device(self, device, dtype, non_blocking, copy, memory_format)
    "aten.to.other": 3,  # to.other(self, other, non_blocking, copy, memory_format)
    "aten.to.prim_dtype": 3,  # to.prim_dtype(self, dtype, non_blocking, copy)
    "aten.to.prim_Device": 4,  # to.prim_Device(self, device, dtype, non_blocking, copy)
    "aten.to.prim_other": 2,  # to.prim_other(self, non_blocking, copy)
    "aten.to.dtype_layout": None,
}
#: always a fresh tensor
COPIES = frozenset({"aten._to_copy.default", "aten._to_copy.out"})


@register(*COPY_ARG, "aten.type_as.default", "aten._to_copy.default", family="cast")
@register("aten._to_copy.out", family="cast", out_args=("out",))
def cast(call: OpCall) -> Cost:
    """0 if the dtype is unchanged (bytes only when a copy is forced), else N FLOPs, N*in + N*out bytes."""
    x, out = call.arg(0, "self"), call.out
    copy = call.target in COPIES or (call.target in COPY_ARG and bool(call.arg(COPY_ARG[call.target], "copy", False)))
    if x.dtype == out.dtype:  # no conversion: free, or a plain copy when one is forced
        return Cost(0, 0, x.nbytes, out.nbytes) if copy else Cost()
    return Cost(0, out.numel, x.nbytes, out.nbytes)
