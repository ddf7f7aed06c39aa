"""Adapters by diffusers class name (``ADAPTERS``): the one place a DiT class is registered.

Add a model class by writing ``fxmeter/adapters/<family>.py`` (an
:class:`~fxmeter.adapters.base.Adapter` subclass) and listing an instance here;
see docs/adding-a-model.md.
"""

from __future__ import annotations

from typing import Any

from fxmeter.errors import ConfigError
from fxmeter.model.adapters.base import Adapter, Geometry, SymbolAxis
from fxmeter.model.adapters.cogvideox import CogVideoXAdapter
from fxmeter.model.adapters.flux import FluxAdapter
from fxmeter.model.adapters.hunyuan_video import HunyuanVideoAdapter
from fxmeter.model.adapters.ltx_video import LTXVideoAdapter
from fxmeter.model.adapters.sd3 import SD3Adapter
from fxmeter.model.adapters.wan import WanAdapter

ADAPTERS: dict[str, Adapter] = {
    a.diffusers_class: a
    for a in (
        WanAdapter(),
        FluxAdapter(),
        SD3Adapter(),
        HunyuanVideoAdapter(),
        CogVideoXAdapter(),
        LTXVideoAdapter(),
    )
}


def register(adapter: Adapter) -> Adapter:
    """Register ``adapter`` for its ``diffusers_class`` (a second one for the same class is an error)."""
    if adapter.diffusers_class in ADAPTERS:
        raise ConfigError(f"an adapter for {adapter.diffusers_class} is already registered ({ADAPTERS[adapter.diffusers_class].name})")
    ADAPTERS[adapter.diffusers_class] = adapter
    return adapter


def adapter_for_class(class_name: str, config: dict[str, Any] | None = None) -> Adapter:
    """The adapter of ``class_name`` (specialised for ``config`` when given)."""
    try:
        adapter = ADAPTERS[class_name]
    except KeyError:
        raise ConfigError(
            f"unsupported model class {class_name!r}; supported: {', '.join(sorted(ADAPTERS))}"
        ) from None
    return adapter.specialize(config) if config is not None else adapter


__all__ = ["ADAPTERS", "Adapter", "Geometry", "SymbolAxis", "adapter_for_class", "register"]
