"""``argsort`` on CUDA cores: a comparison sort of ``n`` elements along ``dim`` makes ``n * ceil(log2 n)``
comparisons (1 FLOP each) per sorted row, so ``numel * ceil(log2 n)`` in all; no tensor-core work.
The input is read and the indices written.
A sort length that is a workload symbol (not a number) is refused: the op is listed as unmodeled."""

from __future__ import annotations

from . import Cost, OpCall, register


def _sort(call: OpCall) -> Cost | None:
    x = call.arg(0, "self")
    dim = call.arg(None if "stable" in call.target else 1, "dim", -1)  # keyword-only in the stable overloads
    if x.ndim == 0:
        return Cost(0, 0, call.read_bytes(), call.written_bytes())
    n = x.shape[dim % x.ndim]
    if not isinstance(n, int):
        return None
    return Cost(0, x.numel * max(n - 1, 0).bit_length(), call.read_bytes(), call.written_bytes())


register("aten.argsort.stable", "aten.argsort.default", family="sorting")(_sort)
register("aten.argsort.stable_out", family="sorting", out_args=("out",))(_sort)
