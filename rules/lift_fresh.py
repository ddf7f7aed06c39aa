"""``lift_fresh_copy``: a tensor constant made in the forward (``torch.tensor(x)``, e.g. Gemma 2's embedding
normaliser ``torch.tensor(hidden_size ** 0.5)``) copied into the graph as a fresh tensor.

0 FLOPs; the constant read, its copy written, as every data-movement rule in ``memory_ops``.
"""

from __future__ import annotations

from . import register_rows
from .memory_ops import move

register_rows([("lift_fresh_copy.default", None, "lift_fresh_copy.out")], move, "copy")
