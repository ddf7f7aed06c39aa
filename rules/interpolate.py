"""Bilinear resampling (``F.interpolate(mode="bilinear", antialias=False)``): CUDA-core FLOPs, no tensor cores.

Each output element is a weighted sum of its four nearest input elements.  PyTorch's kernel
(``upsample_bilinear2d_out_frame``, ``UpSampleBilinear2d.cu``; the CPU kernel alike) computes, per
output element and channel::

    h0lambda * (w0lambda * x00 + w1lambda * x01) + h1lambda * (w0lambda * x10 + w1lambda * x11)

6 multiplications and 3 additions: **9 CUDA-core FLOPs per output element**.  The source indices
and lambdas are computed per output row / column, shared over batch and channels, and not counted.
0 tensor-core FLOPs (``torch.utils.flop_counter`` counts none either).  Bytes: the input read once,
the output written once.

Used by the resize back to the requested size after a resolution-binned generation
(``PixArtImageProcessor.resize_and_crop_tensor`` / ``VideoProcessor.resize_and_crop_tensor``:
PixArt-Sigma, Sana, SANA-Video).  ``.vec`` is what ``F.interpolate`` dispatches (``output_size``
or ``scale_factors``); ``.default`` takes explicit sizes; ``.out`` / ``.vec_out`` write into ``out=``.
The antialiased ``_upsample_bilinear2d_aa`` is another kernel and is not modelled here.
"""

from __future__ import annotations

from . import Cost, OpCall, register_rows

#: CUDA-core FLOPs per output element (6 multiplications, 3 additions)
BILINEAR_FLOPS = 9


def bilinear(call: OpCall) -> Cost:
    """9 FLOPs per output element; the input read, the output written."""
    return Cost(0, BILINEAR_FLOPS * call.out.numel, call.read_bytes(), call.written_bytes())


# functional, in-place (none: resampling changes the shape), out=
BILINEAR: list[tuple[str, str | None, str | None]] = [
    ("upsample_bilinear2d.default", None, "upsample_bilinear2d.out"),
    ("upsample_bilinear2d.vec", None, "upsample_bilinear2d.vec_out"),
]
register_rows(BILINEAR, bilinear, "resample")
