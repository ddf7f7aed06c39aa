"""``scatter_reduce`` on CUDA cores (HiDream's MoE ``moe_infer`` sums each expert's weighted outputs back into
the token rows): every ``src`` element is combined with its target (``sum``, ``prod``, ``amax``, ``amin``: 1 FLOP
each; ``mean`` adds one divide per output element), so ``src.numel`` FLOPs (+ ``out.numel`` for ``mean``); no
tensor-core work.  ``self``, ``index`` and ``src`` are read, the output written (the in-place and ``out=``
variants cost the same)."""

from __future__ import annotations

from . import Cost, OpCall, register_rows


def scatter_reduce(call: OpCall) -> Cost:
    src = call.arg(3, "src")
    reduce = call.arg(4, "reduce", "sum")
    flops = src.numel + (call.out.numel if reduce == "mean" else 0)
    return Cost(0, flops, call.read_bytes(), call.written_bytes())


register_rows([("scatter_reduce.two", "scatter_reduce_.two", "scatter_reduce.two_out")], scatter_reduce,
              "scatter_reduce")
