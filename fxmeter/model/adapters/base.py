"""The adapter contract: what fxmeter needs to know about one diffusers DiT class.

An adapter never re-implements the architecture.  It turns a workload into the
forward's inputs (latent geometry, text embeddings, timesteps) the way the
pipeline does, names the workload symbols of a dynamic export, says how many
transformer passes one denoising step takes, and maps modules to categories.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from fxmeter.model.pipeline import StagePlan
from fxmeter.model.workload import Workload

if TYPE_CHECKING:
    import torch

#: capture's builder of a diffusers model on meta: (config, dtype) -> module
Builder = Callable[[dict[str, Any], str], "torch.nn.Module"]


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


#: float config keys and the range their meaning allows (lo, hi, inclusive lo?, why), by name pattern
_FLOAT_DOMAINS: tuple[tuple[re.Pattern[str], float, float, bool, str], ...] = (
    (re.compile(r"(^|_)(eps|epsilon)$"), 0.0, 1.0, False,
     "a normalization epsilon is a small positive number added to the variance, e.g. 1e-6"),
    (re.compile(r"dropout|drop_rate"), 0.0, 1.0, True, "a probability, 0 <= p < 1"),
    (re.compile(r"(^|_)(rope_)?theta$"), 0.0, math.inf, False, "the rotary base frequency is positive"),
)


def float_domain_problems(config: dict[str, Any]) -> list[str]:
    """Numbers outside what they can mean: any non-finite float, an epsilon <= 0 or >= 1, a dropout
    outside [0, 1), a rotary theta <= 0 (one line per key, the reason stated)."""
    bad: list[str] = []
    for k, v in config.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if isinstance(v, float) and not math.isfinite(v):
            bad.append(f"{k} = {v!r}: expected a finite number")
            continue
        for pat, lo, hi, lo_ok, why in _FLOAT_DOMAINS:
            if pat.search(k) and not ((lo <= v if lo_ok else lo < v) and v < hi):
                bad.append(f"{k} = {v!r} is out of range: {why}")
                break
    return bad


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
    #: the preset family of this adapter's models (``Workload.family``; "" = the adapter's name)
    family: str = ""
    #: the preset a config of this class runs at when no workload is named (None: name one)
    default_workload: str | None = None
    #: config keys that must be positive integers (sizes, counts); checked before anything is built
    positive_keys: tuple[str, ...] = ()
    #: config key -> the values the class accepts (None included where it is allowed)
    choices: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    #: multi-GPU (fxmeter.estimate.deploy): workload symbols of the token sequence that sequence parallelism
    #: splits; a node whose cost depends on one of them runs on each GPU's shard (empty: no known split)
    sequence_symbols: tuple[str, ...] = ()
    #: joint-attention text tokens: split with the sequence when their count divides the SP degree, else
    #: replicated (xDiT ``split_text_embed_in_sp``)
    joint_text_symbols: tuple[str, ...] = ()
    #: (module-path regex under the root, TP role): ``column`` / ``row`` linear layers and ``sharded`` nodes that
    #: work on a column-parallel output (activation, q/k norm, RoPE); first match wins
    tp_roles: tuple[tuple[str, str], ...] = ()
    #: symbols kept constant in a dynamic export (one trace per value; see ``fxmeter.model.adapters.stage``)
    fixed_symbols: tuple[str, ...] = ()
    #: the attribute of the exported module that holds the component ("" = the exported module is the model)
    wrapped: ClassVar[str] = ""
    #: the pipeline's ``model_cpu_offload_seq`` (diffusers ``enable_model_cpu_offload`` hooks, in order)
    offload_seq: tuple[str, ...] = ()
    #: residency policies of this pipeline beyond none / model / sequential (``wan``: Wan's generate.py)
    extra_policies: tuple[str, ...] = ()

    # -- geometry ---------------------------------------------------------
    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        raise NotImplementedError

    def passes_per_step(self, config: dict[str, Any], wl: Workload) -> int:
        """Transformer forwards per denoising step (2 with classifier-free guidance)."""
        return 2 if wl.guidance_scale > 1.0 else 1

    # -- export -----------------------------------------------------------
    def build_module(self, config: dict[str, Any], dtype: str, build_diffusers: Builder) -> torch.nn.Module | None:
        """The module to export (None: the diffusers class of ``config``, built by capture).

        ``build_diffusers(config, dtype)`` is capture's builder of a diffusers model on meta.
        """
        return None

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

    # -- config values ------------------------------------------------------
    def check_config(self, config: dict[str, Any]) -> list[str]:
        """What is wrong with ``config``'s values, one line per key (pure Python: no torch import).

        Required keys present, sizes and counts positive integers (a string "40" or a bool is
        not an integer), enumerated values among the class's choices.  The class's own
        signature is checked when the model is built (:func:`fxmeter.capture.check_signature`).
        """
        bad = [f"missing required key {k!r}" for k in self.required_keys if k not in config]
        for k in self.positive_keys:
            if k not in config:
                continue
            v = config[k]
            if isinstance(v, (list, tuple)):
                if not v or any(isinstance(x, bool) or not isinstance(x, int) or x < 1 for x in v):
                    bad.append(f"{k} = {v!r}: expected a list of positive integers")
            elif isinstance(v, bool) or not isinstance(v, int) or v < 1:
                bad.append(f"{k} = {v!r}: expected a positive integer")
        for k, allowed in self.choices.items():
            if k in config and config[k] not in allowed:
                bad.append(f"{k} = {config[k]!r}: expected one of {', '.join(repr(a) for a in allowed)}")
        return bad + float_domain_problems(config)

    # -- per-config hooks (defaults: nothing model-specific) ---------------
    def specialize(self, config: dict[str, Any]) -> Adapter:
        """The adapter for this particular config (e.g. an I2V variant of a class)."""
        return self

    def supports_dynamic(self, config: dict[str, Any]) -> bool:
        """False when the forward needs Python ints derived from the geometry (static export per workload)."""
        return True

    def components(self, config: dict[str, Any]) -> tuple[tuple[str, dict[str, Any]], ...]:
        """(name, config) of every model this pipeline loads besides text encoders and VAEs;
        the first is the one the report's modules describe."""
        return (("transformer", config),)

    def stages(self, config: dict[str, Any], wl: Workload, *, batched_cfg: bool = False) -> tuple[StagePlan, ...]:
        """The denoising stages of one generation: one transformer forward per pass and step.

        With ``batched_cfg`` and two passes per step, each step runs one forward of twice the
        batch (``batch_factor`` 2), as pipelines that concatenate the two CFG branches do.
        """
        passes = self.passes_per_step(config, wl)
        if batched_cfg and passes == 2:
            return (StagePlan("transformer", "transformer", "denoiser (CFG batched: one forward of 2x the batch)",
                              runs=wl.steps, batch_factor=2, steps=wl.steps),)
        return (StagePlan("transformer", "transformer", "denoiser", runs=wl.steps * passes, steps=wl.steps),)

    # -- multi-GPU ----------------------------------------------------------
    def model_dims(self, config: dict[str, Any], geometry: Geometry) -> dict[str, int | None] | None:
        """The sizes a multi-GPU plan must fit: ``heads``, ``head_dim``, ``hidden``, ``ffn`` (None: no FFN
        width to check), ``layers``, ``text_len``, ``tokens`` (the sequence that is split); None when this
        adapter does not know how its model splits over GPUs."""
        return None
    def pipeline_stages(self, config: dict[str, Any], wl: Workload,
                        geometry: Geometry) -> tuple[tuple[StagePlan, ...], tuple[StagePlan, ...]]:
        """The stages before the denoising loop (text and image encoders, a VAE encode) and after it
        (the VAE decode), as the model's diffusers pipeline runs them (``fxmeter.model.adapters.plans``)."""
        return (), ()

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
