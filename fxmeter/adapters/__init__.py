"""Adapters by diffusers class name."""

from __future__ import annotations

from ..errors import ConfigError
from .base import Adapter, Geometry, SymbolAxis
from .wan import WanAdapter

ADAPTERS: dict[str, Adapter] = {a.diffusers_class: a for a in (WanAdapter(),)}


def adapter_for_class(class_name: str) -> Adapter:
    try:
        return ADAPTERS[class_name]
    except KeyError:
        raise ConfigError(
            f"unsupported model class {class_name!r}; supported: {', '.join(sorted(ADAPTERS))}"
        ) from None


__all__ = ["ADAPTERS", "Adapter", "Geometry", "SymbolAxis", "adapter_for_class"]
