"""Nearest-neighbour resampling (``nn.Upsample(mode="nearest")``, ``mode="nearest-exact"``): 0 FLOPs, bytes only.

Each output element is one input element picked by an index computed from its own
coordinates (``floor(i * in / out)``, or ``floor((i + 0.5) * in / out)`` for
``nearest-exact``): no arithmetic on the values, so 0 tensor-core and 0 CUDA-core FLOPs
(``torch.utils.flop_counter`` counts none either).  Bytes: the input read once, the
output written once (a VAE decoder's 2x upsample reads N elements and writes 4N or 8N).

The ``.vec`` overloads (``output_size`` or ``scale_factors``) are what
``F.interpolate`` dispatches; the ``.default`` overloads take explicit sizes; ``.out``
/ ``.vec_out`` write into ``out=``.  VAE decoders use them: AutoencoderKL's
``Upsample2D`` (``upsample_nearest2d``), HunyuanVideo's and CogVideoX's 3-D upsamplers
(``upsample_nearest3d``), Wan's ``WanResample`` (``_upsample_nearest_exact2d``).
"""

from __future__ import annotations

from . import Cost, OpCall, register_rows


def nearest(call: OpCall) -> Cost:
    """0 FLOPs; the input read, the output written."""
    return Cost(0, 0, call.read_bytes(), call.written_bytes())


# functional, in-place (none: resampling changes the shape), out=
NEAREST: list[tuple[str, str | None, str | None]] = [
    ("upsample_nearest1d.default", None, "upsample_nearest1d.out"),
    ("upsample_nearest1d.vec", None, None),
    ("upsample_nearest2d.default", None, "upsample_nearest2d.out"),
    ("upsample_nearest2d.vec", None, "upsample_nearest2d.vec_out"),
    ("upsample_nearest3d.default", None, "upsample_nearest3d.out"),
    ("upsample_nearest3d.vec", None, None),
    ("_upsample_nearest_exact1d.default", None, "_upsample_nearest_exact1d.out"),
    ("_upsample_nearest_exact1d.vec", None, None),
    ("_upsample_nearest_exact2d.default", None, "_upsample_nearest_exact2d.out"),
    ("_upsample_nearest_exact2d.vec", None, None),
    ("_upsample_nearest_exact3d.default", None, "_upsample_nearest_exact3d.out"),
    ("_upsample_nearest_exact3d.vec", None, None),
]
register_rows(NEAREST, nearest, "resample")
