"""Complex numbers built from real parts, on CUDA cores.

``polar(abs, angle)`` = ``abs * cos(angle) + i * abs * sin(angle)``: a cosine, a sine and two
multiplies, 4 FLOPs per (complex) output element.  Bytes: both operands read, the complex output
written (8 bytes an element for complex64).  RoPE tables are built this way (Z-Image's
``RopeEmbedder.precompute_freqs_cis``).
"""

from __future__ import annotations

from . import Cost, OpCall, register_rows


def polar(call: OpCall) -> Cost:
    """4 CUDA-core FLOPs per output element (cos, sin, 2 multiplies)."""
    return Cost(0, 4 * call.out.numel, call.read_bytes(), call.written_bytes())


register_rows([("polar.default", None, "polar.out")], polar, "elementwise")
