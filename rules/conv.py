"""Convolutions: 2 x batch x Cout x prod(out spatial) x (Cin/groups) x prod(kernel).

The same formula as torch.utils.flop_counter's ``conv_flop_count``; a bias adds
one CUDA-core FLOP per output element.
"""

from __future__ import annotations

from . import Cost, OpCall, numel, register


@register(
    "aten.conv1d.default",
    "aten.conv2d.default",
    "aten.conv3d.default",
    "aten.convolution.default",
    "aten._convolution.default",
    "aten.conv1d.padding",
    "aten.conv2d.padding",
    "aten.conv3d.padding",
    family="conv",
)
def conv(call: OpCall) -> Cost:
    """2 * N * prod(W.shape) * prod(out spatial); W = [Cout, Cin/groups, *kernel]."""
    x, w = call.args[0], call.args[1]
    bias = call.arg(2, "bias")
    out = call.out
    transposed = call.target.startswith("aten.convolution") and bool(call.arg(6, "transposed", False))
    batch = x.shape[0]
    spatial = numel(x.shape[2:] if transposed else out.shape[2:])
    tc = 2 * batch * numel(w.shape) * spatial
    cc = out.numel if bias is not None else 0
    return Cost(tc, cc, call.read_bytes(), call.written_bytes())


@register(
    "aten.conv_transpose1d.default",
    "aten.conv_transpose2d.input",
    "aten.conv_transpose3d.input",
    family="conv",
)
def conv_transpose(call: OpCall) -> Cost:
    """2 * N * prod(W.shape) * prod(input spatial) for a transposed convolution."""
    x, w = call.args[0], call.args[1]
    bias = call.arg(2, "bias")
    tc = 2 * x.shape[0] * numel(w.shape) * numel(x.shape[2:])
    cc = call.out.numel if bias is not None else 0
    return Cost(tc, cc, call.read_bytes(), call.written_bytes())
