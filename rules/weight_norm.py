"""Weight normalisation (``torch.nn.utils.parametrizations.weight_norm``): ``w = g * v / ||v||``, recomputed from the
parametrisation at every forward (MiniMax-H3's DAC/BigVGAN audio VAE keeps its convolutions weight-normalised).

``_weight_norm(v, g, dim=0)``: the 2-norm of ``v`` over every axis but ``dim`` (one norm per slice along ``dim``;
``dim=-1``: one norm of the whole tensor), so with ``N`` elements and ``R`` slices: ``N`` squares and ``N`` adds
for the norms, ``R`` square roots and ``R`` divisions for ``g / ||v||``, ``N`` multiplies for the scaling:
``3*N + 2*R`` CUDA-core FLOPs; ``v`` and ``g`` read, the output (and ``_weight_norm_interface``'s norms) written.
"""

from __future__ import annotations

from . import Cost, OpCall, register


@register("aten._weight_norm.default", "aten._weight_norm_interface.default", family="norm")
@register("aten._weight_norm_interface.out", family="norm", out_args=("out0", "out1"))
def weight_norm(call: OpCall) -> Cost:
    """3*N + 2*R (R: slices of ``v`` along ``dim``; 1 for ``dim=-1``)."""
    v = call.arg(0, "v")
    dim = call.arg(2, "dim", 0)
    rows = 1 if dim == -1 else v.shape[dim % v.ndim]
    return Cost(0, 3 * v.numel + 2 * rows, call.read_bytes(), call.written_bytes())
