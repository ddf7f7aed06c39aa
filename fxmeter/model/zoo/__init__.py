"""Models declared in one file each: ``fxmeter/model/zoo/<model>.py``.

A zoo module is everything fxmeter needs to know about one model (or one family of
checkpoints sharing a transformer class), in one place:

* ``ADAPTERS``: the :class:`~fxmeter.model.adapters.base.Adapter` instance(s) of its
  transformer class(es), whose ``pipeline_stages`` say which text encoders, image encoders and
  VAE calls one generation makes (the hand code the observation of the real pipeline checks);
* ``MODELS``: the :class:`~fxmeter.model.pipeline.ModelSpec` of each checkpoint (bundled config
  under ``fxmeter/model/configs/``, each with the public copy it came from);
* ``PRESETS``: the pipeline's default workload(s) as :class:`~fxmeter.model.workload.Workload`;
* ``STAGE_ADAPTERS``: the default call of any new text encoder / VAE class it loads
  (``{"Qwen2_5_VLForConditionalGeneration": ...}``), when no earlier model registered one.

The registry discovers the modules of this package (:func:`discover`); nothing else needs
editing to add a model.  Every name is optional; a module declaring nothing is skipped.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fxmeter.model.adapters.base import Adapter
    from fxmeter.model.pipeline import ModelSpec
    from fxmeter.model.workload import Workload


@dataclass(frozen=True)
class Zoo:
    """What the zoo modules declare, in module order (sorted by name: deterministic)."""

    modules: tuple[str, ...] = ()
    adapters: tuple[Adapter, ...] = ()
    models: tuple[ModelSpec, ...] = ()
    presets: tuple[Workload, ...] = ()
    stage_adapters: dict[str, Any] = field(default_factory=dict)
    #: model id -> the zoo module that declares it
    declared_in: dict[str, str] = field(default_factory=dict)


def _modules() -> list[ModuleType]:
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    return [importlib.import_module(f"{__name__}.{n}") for n in names]


def discover() -> Zoo:
    """Import every zoo module and collect its declarations (a model id, preset name or class
    declared twice is an error: two files would silently disagree)."""
    adapters: list[Adapter] = []
    models: list[ModelSpec] = []
    presets: list[Workload] = []
    stage: dict[str, Any] = {}
    declared: dict[str, str] = {}
    seen_presets: dict[str, str] = {}
    seen_classes: dict[str, str] = {}
    mods = _modules()
    for mod in mods:
        short = mod.__name__.rsplit(".", 1)[-1]
        for a in getattr(mod, "ADAPTERS", ()):
            if a.diffusers_class in seen_classes:
                raise RuntimeError(f"zoo: {a.diffusers_class} declared in {seen_classes[a.diffusers_class]} and {short}")
            seen_classes[a.diffusers_class] = short
            adapters.append(a)
        for m in getattr(mod, "MODELS", ()):
            if m.id in declared:
                raise RuntimeError(f"zoo: model {m.id} declared in {declared[m.id]} and {short}")
            declared[m.id] = short
            models.append(m)
        for w in getattr(mod, "PRESETS", ()):
            if w.name in seen_presets:
                raise RuntimeError(f"zoo: preset {w.name} declared in {seen_presets[w.name]} and {short}")
            seen_presets[w.name] = short
            presets.append(w)
        for cls, call in getattr(mod, "STAGE_ADAPTERS", {}).items():
            stage.setdefault(cls, call)
    return Zoo(tuple(m.__name__ for m in mods), tuple(adapters), tuple(models), tuple(presets), stage, declared)
