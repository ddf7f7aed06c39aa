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
    """0 if the dtype is unchanged (bytes only when a copy is forced), else N FLOPs, N*in + N*out bytes."""
    x, out = call.args[0], call.out
    copy = bool(call.kwargs.get("copy", False)) or call.target == "aten._to_copy.default"
    if x.dtype == out.dtype:  # no conversion: free, or a plain copy when one is forced
        return Cost(0, 0, x.nbytes, out.nbytes) if copy else Cost()
    return Cost(0, out.numel, x.nbytes, out.nbytes)
