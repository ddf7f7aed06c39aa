"""Dtype casts: free when the dtype does not change (``Tensor.to`` returns self),
otherwise 1 CUDA-core FLOP per element (the conversion instruction), the input
read at its dtype and the output written at the new one."""

from __future__ import annotations

from . import Cost, OpCall, register


@register(
    "aten.to.dtype",
    "aten.to.dtype_layout",
    "aten.to.device",
    "aten.to.other",
    "aten.type_as.default",
    "aten._to_copy.default",
    "aten.to.prim_dtype",
    family="cast",
)
def cast(call: OpCall) -> Cost:
    """0 if dtype unchanged and no copy requested, else N FLOPs, N*in + N*out bytes."""
    x, out = call.args[0], call.out
    copy = bool(call.kwargs.get("copy", False)) or call.target == "aten._to_copy.default"
    if x.dtype == out.dtype and not copy:
        return Cost()
    return Cost(0, out.numel, x.nbytes, out.nbytes)
