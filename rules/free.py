"""Ops that truly cost nothing: views, metadata, shape arithmetic, allocation.

A view shares its input's storage and moves no data; shape arithmetic runs on the
host; ``empty``-style allocation writes nothing.  Everything *not* listed here and
without a rule is reported as unmodeled, never silently zero.
"""

from __future__ import annotations

_VIEW_OPS = [
    "aten.view.default",
    "aten._unsafe_view.default",
    "aten.reshape.default",
    "aten.flatten.using_ints",
    "aten.unflatten.int",
    "aten.permute.default",
    "aten.transpose.int",
    "aten.t.default",
    "aten.unsqueeze.default",
    "aten.squeeze.default",
    "aten.squeeze.dim",
    "aten.squeeze.dims",
    "aten.expand.default",
    "aten.expand_as.default",
    "aten.meshgrid.indexing",  # returns expanded views of its inputs
    "aten.meshgrid.default",
    "aten.slice.Tensor",
    "aten.select.int",
    "aten.narrow.default",
    "aten.narrow.Tensor",
    "aten.split.Tensor",
    "aten.split.sizes",
    "aten.split.default",
    "aten.split_with_sizes.default",
    "aten.chunk.default",
    "aten.unbind.int",
    "aten.tensor_split.sections",
    "aten.tensor_split.indices",
    "aten.tensor_split.tensor_indices_or_sections",
    "aten.as_strided.default",
    "aten.alias.default",
    "aten.detach.default",
    "aten.lift_fresh.default",
    "aten.view_as_real.default",
    "aten.view_as_complex.default",
    "aten.movedim.int",
    "aten.movedim.intlist",
    "aten.swapaxes.default",
    "aten.unfold.default",
    "aten.view.dtype",  # the same bytes reinterpreted
    # in-place metadata changes: self comes back with a new shape or strides
    "aten.t_.default",
    "aten.transpose_.default",
    "aten.swapaxes_.default",
    "aten.squeeze_.default",
    "aten.squeeze_.dim",
    "aten.squeeze_.dims",
    "aten.unsqueeze_.default",
    "aten.as_strided_.default",
    "aten.detach_.default",
]

#: Ops whose output aliases an input (the liveness walk shares storage for these).
VIEW_OPS: frozenset[str] = frozenset(_VIEW_OPS + ["operator.getitem"])

_META_OPS = [
    # host-side shape arithmetic and graph bookkeeping
    "operator.getitem",
    "operator.mul",
    "operator.add",
    "operator.sub",
    "operator.floordiv",
    "operator.truediv",
    "operator.mod",
    "operator.neg",
    "operator.pow",
    "builtins.int",
    "builtins.float",
    "math.ceil",
    "math.floor",
    "math.sqrt",
    "torch.sym_int",
    "torch.sym_float",
    "torch.sym_max",
    "torch.sym_min",
    "torch.sym_sum",
    "aten.sym_size.int",
    "aten.sym_size.default",
    "aten.sym_stride.int",
    "aten.sym_stride.default",
    "aten.sym_numel.default",
    "aten.sym_constrain_range_for_size.default",
    "aten._assert_scalar.default",
    "aten._assert_tensor_metadata.default",
    "aten._assert_async.msg",
    "aten._assert_async.default",
    "aten.scalar_tensor.default",
    "aten.scalar_tensor.out",
    # allocation without initialisation (out variants too: they resize, nothing is written)
    "aten.empty.memory_format",
    "aten.empty.out",
    "aten.empty_like.default",
    "aten.empty_like.out",
    "aten.empty_strided.default",
    "aten.empty_strided.out",
    "aten.new_empty.default",
    "aten.new_empty.out",
    "aten.new_empty_strided.default",
    "aten.new_empty_strided.out",
    # dropout at inference: the identity (in place: self back)
    "aten.dropout.default",
    "aten.dropout_.default",
    "aten.feature_dropout.default",
    "aten.feature_dropout_.default",
    "aten.alpha_dropout.default",
    "aten.alpha_dropout_.default",
    "torch._C._set_grad_enabled",
    "aten.item.default",
    "aten._local_scalar_dense.default",
]

FREE_OPS: frozenset[str] = frozenset(_VIEW_OPS + _META_OPS)
