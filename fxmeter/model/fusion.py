"""``pipe.fuse_qkv_projections()``: the parameters it adds to a denoiser, counted on the real class on meta.

diffusers' ``fuse_projections`` builds new ``nn.Linear`` modules (``to_qkv``, ``to_kv`` for cross-attention,
``to_added_qkv``) from the projections' weights and keeps ``to_q``/``to_k``/``to_v`` loaded; which modules
fuse is the class's own business (``AttentionMixin.fuse_qkv_projections`` fuses only ``AttentionModuleMixin``
modules that support it; older models define their own).  So fxmeter builds the denoiser on ``meta``, calls the
method and counts the parameters that appear: exact for any class, no weights, about half a second.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fxmeter.errors import WorkloadError

_MEMO: dict[tuple[str, str], tuple[int, int]] = {}


def _count(module: Any) -> tuple[int, int]:
    seen: set[int] = set()
    n = b = 0
    for p in module.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            n += p.numel()
            b += p.numel() * p.element_size()
    return n, b


def fused_qkv_copies(config: Mapping[str, Any], config_sha256: str, dtype: str) -> tuple[int, int]:
    """(parameters, bytes in ``dtype``) that ``fuse_qkv_projections()`` adds to the model of ``config``;
    :class:`WorkloadError` when the class has no such method or diffusers refuses it."""
    key = (config_sha256, dtype)
    if key in _MEMO:
        return _MEMO[key]
    from fxmeter.model.capture import build_model

    model: Any = build_model(dict(config), dtype)
    name = type(model).__name__
    if not hasattr(model, "fuse_qkv_projections"):
        raise WorkloadError(f"--fuse-qkv: {name} has no fuse_qkv_projections() in this diffusers")
    before = _count(model)
    try:
        model.fuse_qkv_projections()
    except (ValueError, AttributeError, NotImplementedError) as e:
        raise WorkloadError(f"--fuse-qkv: diffusers refuses {name}.fuse_qkv_projections(): {str(e).splitlines()[0][:160]}") from None
    after = _count(model)
    _MEMO[key] = (after[0] - before[0], after[1] - before[1])
    return _MEMO[key]
