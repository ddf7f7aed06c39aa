"""``topk`` on CUDA cores (MoE gates: HiDream's ``MoEGate``): selecting the ``k`` largest (or smallest) of ``n``
elements along ``dim`` is costed as ``k`` passes over the row, one comparison (1 FLOP) per element and pass, so
``numel * k`` in all; no tensor-core work.  The input is read, the values and indices written (the ``values=``/``indices=`` out variant the same).
A ``k`` that is not a number is refused: the op is listed as unmodeled."""

from __future__ import annotations

from . import Cost, OpCall, register


def topk(call: OpCall) -> Cost | None:
    x = call.arg(0, "self")
    k = call.arg(1, "k")
    if not isinstance(k, int):
        return None
    return Cost(0, x.numel * k, call.read_bytes(), call.written_bytes())


register("aten.topk.default", family="selection")(topk)
register("aten.topk.values", family="selection", out_args=("values", "indices"))(topk)
