"""Softmax outside fused attention: 5 CUDA-core FLOPs per element
(max, subtract, exp, sum, divide); log_softmax 6 (log of the sum, subtract).
Bytes: input read once, output written once."""

from __future__ import annotations

from . import Cost, OpCall, register, register_rows
from .elementwise import elementwise

register_rows(
    [
        ("softmax.int", None, "softmax.int_out"),
        ("_softmax.default", None, "_softmax.out"),
        ("special_softmax.default", None, None),
    ],
    elementwise(5),
    "softmax",
)
register_rows(
    [("log_softmax.int", None, "log_softmax.int_out"), ("_log_softmax.default", None, "_log_softmax.out")],
    elementwise(6),
    "softmax",
)


@register("aten._safe_softmax.default", family="softmax")
def safe_softmax(call: OpCall) -> Cost:
    """5 per element plus 1 for the all-masked-row check."""
    return Cost(0, 6 * call.out.numel, call.read_bytes(), call.written_bytes())
