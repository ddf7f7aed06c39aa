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
    "aten.split.Tensor",
    "aten.split_with_sizes.default",
    "aten.chunk.default",
    "aten.unbind.int",
    "aten.tensor_split.sections",
    "aten.as_strided.default",
    "aten.alias.default",
    "aten.detach.default",
    "aten.lift_fresh.default",
    "aten.view_as_real.default",
    "aten.view_as_complex.default",
    "aten.movedim.int",
    "aten.swapaxes.default",
    "aten.unfold.default",
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
    "aten.sym_stride.int",
    "aten.sym_numel.default",
    "aten.sym_constrain_range_for_size.default",
    "aten._assert_scalar.default",
    "aten._assert_tensor_metadata.default",
    "aten._assert_async.msg",
    "aten.scalar_tensor.default",
    # allocation without initialisation, and dropout at inference (identity)
    "aten.empty.memory_format",
    "aten.empty_like.default",
    "aten.empty_strided.default",
    "aten.new_empty.default",
    "aten.dropout.default",
    "aten.feature_dropout.default",
    "aten.alpha_dropout.default",
    "aten._set_grad_enabled.default",
    "torch._C._set_grad_enabled",
    "aten.item.default",
    "aten._local_scalar_dense.default",
]

FREE_OPS: frozenset[str] = frozenset(_VIEW_OPS + _META_OPS)
