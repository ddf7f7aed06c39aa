"""Data movement without arithmetic: 0 FLOPs, bytes only.

* cat/stack, clone/contiguous, pad, repeat, roll, flip, tril/triu, scatters:
  the inputs read, the output written.  ``contiguous`` is counted as a copy (it
  is one after a transpose, as in a DiT's patch embedding).
* gathers (index_select/embedding/gather/index): the gathered elements and the
  indices read, the output written.
* factories (zeros, ones, full, arange, *_like, fill_, zero_): the output written.
* ``copy_(dst, src)`` and ``copy(dst, src)``: src read, dst written.

In-place (``tril_``) and out variants (``cat.out``) cost the same as the op.
"""

from __future__ import annotations

from . import Cost, OpCall, register, register_rows


def move(call: OpCall) -> Cost:
    """0 FLOPs; every input read, every output written."""
    return Cost(0, 0, call.read_bytes(), call.written_bytes())


register_rows(
    [
        ("cat.default", None, "cat.out"),
        ("concat.default", None, "concat.out"),
        ("concatenate.default", None, "concatenate.out"),
        ("stack.default", None, "stack.out"),
        ("hstack.default", None, "hstack.out"),
        ("clone.default", None, "clone.out"),
        ("contiguous.default", None, None),
        ("constant_pad_nd.default", None, "constant_pad_nd.out"),
        ("pad.default", None, None),
        ("repeat.default", None, "repeat.out"),
        ("repeat_interleave.self_int", None, None),
        ("repeat_interleave.self_Tensor", None, None),
        ("repeat_interleave.Tensor", None, "repeat_interleave.Tensor_out"),
        ("roll.default", None, "roll.out"),
        ("flip.default", None, "flip.out"),
        ("tril.default", "tril_.default", "tril.out"),
        ("triu.default", "triu_.default", "triu.out"),
        ("index_put.default", "index_put_.default", "index_put.out"),
        ("index_put.hacked_twin", "index_put_.hacked_twin", None),
        ("scatter.src", "scatter_.src", "scatter.src_out"),
        ("scatter.value", "scatter_.value", "scatter.value_out"),
        ("scatter.reduce", "scatter_.reduce", "scatter.reduce_out"),
        ("scatter.value_reduce", "scatter_.value_reduce", "scatter.value_reduce_out"),
        ("masked_scatter.default", "masked_scatter_.default", "masked_scatter.out"),
    ],
    move,
    "copy",
)
# the out variant of a view materialises it: a copy
register("aten._unsafe_view.out", family="copy", out_args=("out",))(move)


def gather(call: OpCall) -> Cost:
    """0 FLOPs; the gathered elements and the indices read, the output written."""
    src = call.args[0]
    out = call.out
    idx = sum((t.nbytes for t in call.tensor_args() if t is not src), 0)
    return Cost(0, 0, out.numel * src.itemsize + idx, out.nbytes)


register_rows(
    [
        ("index_select.default", None, "index_select.out"),
        ("gather.default", None, "gather.out"),
        ("embedding.default", None, "embedding.out"),
        ("index.Tensor", None, "index.Tensor_out"),
        ("index.Tensor_hacked_twin", None, None),
    ],
    gather,
    "copy",
)


def copy_(call: OpCall) -> Cost:
    """src read (at its dtype), dst written; a dtype change adds 1 FLOP per element."""
    dst, src = call.args[0], call.args[1]
    cc = dst.numel if dst.dtype != src.dtype else 0
    return Cost(0, cc, src.nbytes, dst.nbytes)


# copy_(self, src), copy_.Tensor(self, other) and the functional copy(self, src): self only lends its shape
register_rows([("copy.default", "copy_.default", "copy.out"), ("copy_.Tensor", None, None)], copy_, "copy")


def factory(call: OpCall) -> Cost:
    """0 FLOPs, nothing read; the output written."""
    return Cost(0, 0, 0, call.written_bytes())


register_rows(
    [
        ("zeros.default", None, "zeros.out"),
        ("ones.default", None, "ones.out"),
        ("full.default", None, "full.out"),
        ("zeros_like.default", None, "zeros_like.out"),
        ("ones_like.default", None, "ones_like.out"),
        ("full_like.default", None, "full_like.out"),
        ("new_zeros.default", None, "new_zeros.out"),
        ("new_ones.default", None, "new_ones.out"),
        ("new_full.default", None, "new_full.out"),
        ("arange.default", None, "arange.out"),
        ("arange.start", None, None),
        ("arange.start_step", None, "arange.start_out"),
        ("linspace.default", None, "linspace.out"),
        ("linspace.Tensor_Tensor", None, "linspace.Tensor_Tensor_out"),
        ("linspace.Tensor_Scalar", None, "linspace.Tensor_Scalar_out"),
        ("linspace.Scalar_Tensor", None, "linspace.Scalar_Tensor_out"),
        ("fill.Scalar", "fill_.Scalar", "fill.Scalar_out"),
        ("fill.Tensor", "fill_.Tensor", "fill.Tensor_out"),
        ("zero.default", "zero_.default", "zero.out"),
        ("copy_.int", None, None),  # TorchScript's fill-from-a-number overloads of copy_
        ("copy_.float", None, None),
        ("rand.default", None, "rand.out"),
        ("rand.generator", None, "rand.generator_out"),
        ("randn.default", None, "randn.out"),
        ("randn.generator", None, "randn.generator_out"),
        ("randn_like.default", None, "randn_like.out"),
        ("randn_like.generator", None, "randn_like.generator_out"),
        ("tensor.default", None, None),
        ("tensor.bool", None, None),
        ("tensor.int", None, None),
        ("tensor.float", None, None),
        ("tensor.complex", None, None),
    ],
    factory,
    "factory",
)
