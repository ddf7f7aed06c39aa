"""The adapter contract: what fxmeter needs to know about one diffusers DiT class.

An adapter never re-implements the architecture.  It turns a workload into the
forward's inputs (latent geometry, text embeddings, timesteps) the way the
pipeline does, names the workload symbols of a dynamic export, says how many
transformer passes one denoising step takes, and maps modules to categories.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..workload import Workload

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Geometry:
    """What a workload means for the transformer: symbol values and latent shape."""

    dims: dict[str, int]
    latent_shape: tuple[int, ...]
    tokens: int
    frames: int
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SymbolAxis:
    """Input ``name``'s axis ``axis`` has size ``multiplier * symbol``."""

    symbol: str
    multiplier: int = 1


@dataclass
class Adapter:
    """Base adapter; a model family subclasses it (see ``wan.py``)."""

    name: str = "base"
    diffusers_class: str = ""
    #: ModuleList attribute -> config key holding its length, for block replication.
    repeated: dict[str, str] = field(default_factory=dict)
    #: workload symbols of a dynamic export, in a fixed order.
    symbols: tuple[str, ...] = ()
    #: config keys a usable config must have.
    required_keys: tuple[str, ...] = ()
    #: (module-path regex, op families or None for any, category); first match wins.
    category_rules: tuple[tuple[str, frozenset[str] | None, str], ...] = ()
    default_slug: str = "model"

    # -- geometry ---------------------------------------------------------
    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        raise NotImplementedError

    def passes_per_step(self, config: dict[str, Any], wl: Workload) -> int:
        """Transformer forwards per denoising step (2 with classifier-free guidance)."""
        return 2 if wl.guidance_scale > 1.0 else 1

    # -- export -----------------------------------------------------------
    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        """Forward keyword arguments as meta tensors for symbol values ``dims``."""
        raise NotImplementedError

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        """Which input axes carry which workload symbol."""
        raise NotImplementedError

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        """Inclusive (min, max) each symbol may take in a dynamic export."""
        raise NotImplementedError

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        """Small, distinct, non-0/1 symbol values to trace a dynamic export with."""
        return {s: 2 + i for i, s in enumerate(self.symbols)}

    # -- per-config hooks (defaults: nothing model-specific) ---------------
    def specialize(self, config: dict[str, Any]) -> Adapter:
        """The adapter for this particular config (e.g. an I2V variant of a class)."""
        return self

    def supports_dynamic(self, config: dict[str, Any]) -> bool:
        """False when the forward needs Python ints derived from the geometry (static export per workload)."""
        return True

    def annotate_report(self, config: dict[str, Any], wl: Workload, data: dict[str, Any]) -> None:
        """Add model-specific sections to a finished report document (e.g. experts)."""

    # -- categories -------------------------------------------------------
    def category(self, module_path: str, family: str) -> str:
        for pattern, families, cat in self._compiled_rules():
            if (families is None or family in families) and pattern.search(module_path):
                return cat
        return "other"

    def _compiled_rules(self) -> list[tuple[re.Pattern[str], frozenset[str] | None, str]]:
        cached = getattr(self, "_rules_cache", None)
        if cached is None:
            cached = [(re.compile(p), f, c) for p, f, c in self.category_rules]
            self._rules_cache = cached
        return cached
