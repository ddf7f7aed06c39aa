"""``lift_fresh_copy``: a constant tensor built in the forward (``torch.tensor(x)``, e.g. Gemma 3's
embedding scale) copied into the graph.  A copy: 0 FLOPs, the constant read, the copy written."""

from __future__ import annotations

from . import register
from .memory_ops import move

register("aten.lift_fresh_copy.default", family="copy")(move)
register("aten.lift_fresh_copy.out", family="copy", out_args=("out",))(move)
