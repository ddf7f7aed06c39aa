"""Convolutions: 2 x batch x prod(W.shape) x prod(spatial), torch.utils.flop_counter's
``conv_flop_count``.

W is ``[Cout, Cin/groups, *kernel]`` for a convolution and ``[Cin, Cout/groups, *kernel]``
for a transposed one; ``spatial`` is the output's spatial extent for a convolution and
the input's for a transposed one (each input element is scattered through the whole
kernel).  Stride, padding, dilation, output_padding and groups enter only through
these shapes.  An unbatched input (``conv2d`` on ``[C, H, W]``) counts a batch of 1,
as torch runs it.  A bias adds one CUDA-core FLOP per output element.

Whether a call is transposed comes from its schema: fixed by the op for
``conv{1,2,3}d`` / ``conv_transpose{1,2,3}d``, the ``transposed`` argument (position 6)
for ``convolution`` and ``_convolution``.
"""

from __future__ import annotations

from . import Cost, OpCall, numel, register

#: ops whose ``transposed`` flag is argument 6 of their schema
GENERIC = frozenset(
    {
        "aten.convolution.default",
        "aten.convolution.out",
        "aten._convolution.default",
        "aten._convolution.deprecated",
        "aten._convolution.out",
    }
)
TRANSPOSED = frozenset({"aten.conv_transpose1d.default", "aten.conv_transpose2d.input", "aten.conv_transpose3d.input"})
FORWARD = frozenset(
    {
        "aten.conv1d.default",
        "aten.conv2d.default",
        "aten.conv3d.default",
        "aten.conv1d.padding",
        "aten.conv2d.padding",
        "aten.conv3d.padding",
    }
)


def is_transposed(call: OpCall) -> bool:
    if call.target in GENERIC:
        return bool(call.arg(6, "transposed"))
    return call.target in TRANSPOSED


@register(
    *sorted(FORWARD | TRANSPOSED), *sorted(GENERIC - {"aten.convolution.out", "aten._convolution.out"}), family="conv"
)
@register("aten.convolution.out", "aten._convolution.out", family="conv", out_args=("out",))
def conv(call: OpCall) -> Cost:
    """2 * N * prod(W.shape) * prod(out spatial), or prod(input spatial) when transposed."""
    x, w = call.arg(0, "input"), call.arg(1, "weight")
    bias = call.arg(2, "bias")
    out = call.out
    first = 1 if x.ndim == w.ndim - 1 else 2  # unbatched: torch adds a batch of 1
    batch = 1 if first == 1 else x.shape[0]
    spatial = numel((x if is_transposed(call) else out).shape[first:])
    tc = 2 * batch * numel(w.shape) * spatial
    cc = out.numel if bias is not None else 0
    return Cost(tc, cc, call.read_bytes(), call.written_bytes())
