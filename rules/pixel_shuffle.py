"""``pixel_shuffle`` / ``pixel_unshuffle``: channels <-> space rearrangements (the DC-AE decoder's
``DCUpBlock2d`` shortcut and its ``pixel_shuffle`` upsampling; the encoder's ``pixel_unshuffle``).

0 FLOPs; the input read, the output (the same elements, permuted) written, as every data-movement rule in
``memory_ops``.
"""

from __future__ import annotations

from . import register_rows
from .memory_ops import move

register_rows([("pixel_shuffle.default", None, "pixel_shuffle.out"),
               ("pixel_unshuffle.default", None, "pixel_unshuffle.out")], move, "copy")
