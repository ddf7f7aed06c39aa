"""Lists of tensors packed into one: data movement, 0 FLOPs.

``pad_sequence(sequences, batch_first, padding_value)`` copies each sequence into a
``(batch, longest, ...)`` tensor and fills the rest: every input read, the output written (as
``cat``; Z-Image's ``_prepare_sequence`` packs its per-image token lists this way).
"""

from __future__ import annotations

from . import Cost, OpCall, register


@register("aten.pad_sequence.default", family="copy")
def pad_sequence(call: OpCall) -> Cost:
    """0 FLOPs; every sequence read, the padded output written."""
    return Cost(0, 0, call.read_bytes(), call.written_bytes())
