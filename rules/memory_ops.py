"""Data movement without arithmetic: 0 FLOPs, bytes only.

* cat/stack, clone/contiguous, copy/copy_, pad, repeat, roll, flip, gather,
  index_select/embedding: the inputs read (for gathers, the gathered elements),
  the output written.  ``contiguous`` is counted as a copy (it is one after a
  transpose, as in a DiT's patch embedding).
* factories (zeros, ones, full, arange, *_like, fill_, zero_): the output written.
* ``copy_(dst, src)``: src read, dst written.
"""

from __future__ import annotations

from . import Cost, OpCall, register


@register(
    "aten.cat.default",
    "aten.concat.default",
    "aten.concatenate.default",
    "aten.stack.default",
    "aten.hstack.default",
    "aten.clone.default",
    "aten.contiguous.default",
    "aten.copy.default",
    "aten.constant_pad_nd.default",
    "aten.pad.default",
    "aten.repeat.default",
    "aten.repeat_interleave.self_int",
    "aten.roll.default",
    "aten.flip.default",
    "aten.tril.default",
    "aten.triu.default",
    "aten.index_put.default",
    "aten.index_put_.default",
    "aten.scatter.src",
    "aten.masked_scatter.default",
    family="copy",
)
def move(call: OpCall) -> Cost:
    """0 FLOPs; every input read, every output written."""
    return Cost(0, 0, call.read_bytes(), call.written_bytes())


@register(
    "aten.index_select.default",
    "aten.gather.default",
    "aten.embedding.default",
    "aten.index.Tensor",
    family="copy",
)
def gather(call: OpCall) -> Cost:
    """0 FLOPs; the gathered elements and the indices read, the output written."""
    src = call.args[0]
    out = call.out
    idx = sum((t.nbytes for t in call.tensor_args() if t is not src), 0)
    return Cost(0, 0, out.numel * src.itemsize + idx, out.nbytes)


@register("aten.copy_.default", family="copy")
def copy_(call: OpCall) -> Cost:
    """src read (at its dtype), dst written; a dtype change adds 1 FLOP per element."""
    dst, src = call.args[0], call.args[1]
    cc = dst.numel if dst.dtype != src.dtype else 0
    return Cost(0, cc, src.nbytes, dst.nbytes)


@register(
    "aten.zeros.default",
    "aten.ones.default",
    "aten.full.default",
    "aten.zeros_like.default",
    "aten.ones_like.default",
    "aten.full_like.default",
    "aten.new_zeros.default",
    "aten.new_ones.default",
    "aten.new_full.default",
    "aten.arange.default",
    "aten.arange.start",
    "aten.arange.start_step",
    "aten.linspace.default",
    "aten.fill_.Scalar",
    "aten.fill.Scalar",
    "aten.zero_.default",
    "aten.rand.default",
    "aten.randn.default",
    "aten.randn_like.default",
    "aten.tensor.default",
    family="factory",
)
def factory(call: OpCall) -> Cost:
    """0 FLOPs, nothing read; the output written."""
    return Cost(0, 0, 0, call.written_bytes())
