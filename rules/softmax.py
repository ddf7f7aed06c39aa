"""Softmax outside fused attention: 5 CUDA-core FLOPs per element
(max, subtract, exp, sum, divide); log_softmax 6 (log of the sum, subtract).
Bytes: input read once, output written once."""

from __future__ import annotations

from . import Cost, OpCall, register
from .elementwise import elementwise

register("aten.softmax.int", "aten._softmax.default", "aten.special_softmax.int", family="softmax")(elementwise(5))
register("aten.log_softmax.int", "aten._log_softmax.default", family="softmax")(elementwise(6))


@register("aten._safe_softmax.default", family="softmax")
def safe_softmax(call: OpCall) -> Cost:
    """5 per element plus 1 for the all-masked-row check."""
    return Cost(0, 6 * call.out.numel, call.read_bytes(), call.written_bytes())
