"""``index_copy``: rows of ``source`` written into a copy of ``self`` at ``index`` along ``dim`` (MiniMax-H3 packs its
text, audio and video rows into one sequence this way).

0 FLOPs; ``self``, ``index`` and ``source`` read, the output written (the functional op copies ``self``; the
in-place and out variants cost the same, as every data-movement rule in ``memory_ops``).
"""

from __future__ import annotations

from . import register_rows
from .memory_ops import move

register_rows([("index_copy.default", "index_copy_.default", "index_copy.out")], move, "copy")
