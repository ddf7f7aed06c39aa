"""Model registry: bundled diffusers configs (never downloaded) and local ones.

Why one long module: the registry, the model-folder reader (as ``DiffusionPipeline`` lays it out)
and the config checks against each class's signature describe one thing, a model fxmeter can
build; splitting them would spread one model's rules over three files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from fxmeter.base.fileio import MAX_CONFIG_BYTES, read_text
from fxmeter.errors import ConfigError, UnknownModelError, WorkloadError
from fxmeter.model.adapters import Adapter, Geometry, adapter_for_class
from fxmeter.model.pipeline import Component, ModelSpec, StagePlan
from fxmeter.model.workload import Workload, fits, presets_for

LOG = logging.getLogger(__name__)
_WARNED: set[tuple[str, tuple[str, ...]]] = set()


_WAN = {"text_encoder": "wan2.1/text_encoder", "vae": "wan2.1/vae"}
_WAN_I2V = {**_WAN, "image_encoder": "wan2.1-i2v/image_encoder"}


MODELS: dict[str, ModelSpec] = {
    m.id: m
    for m in (
        ModelSpec(
            "wan2.1-t2v-14b",
            "wan2.1-t2v-14b.json",
            "wan2_1",
            "720p",
            "https://huggingface.co/Wan-AI/Wan2.1-T2V-14B-Diffusers/blob/main/transformer/config.json",
            "Wan2.1 text-to-video, 14B",
            _WAN,
        ),
        ModelSpec(
            "wan2.1-t2v-1.3b",
            "wan2.1-t2v-1.3b.json",
            "wan2_1",
            "480p",
            "https://huggingface.co/Wan-AI/Wan2.1-T2V-1.3B-Diffusers/blob/main/transformer/config.json",
            "Wan2.1 text-to-video, 1.3B",
            _WAN,
        ),
        ModelSpec(
            "wan2.1-i2v-14b-480p",
            "wan2.1-i2v-14b.json",
            "wan2_1_i2v",
            "i2v-480p",
            "https://huggingface.co/Wan-AI/Wan2.1-I2V-14B-480P-Diffusers/blob/main/transformer/config.json",
            "Wan2.1 image-to-video, 14B, 480P (CLIP image tokens in cross-attention)",
            _WAN_I2V,
        ),
        ModelSpec(
            "wan2.1-i2v-14b-720p",
            "wan2.1-i2v-14b.json",
            "wan2_1_i2v",
            "i2v-720p",
            "https://huggingface.co/Wan-AI/Wan2.1-I2V-14B-720P-Diffusers/blob/main/transformer/config.json",
            "Wan2.1 image-to-video, 14B, 720P (same transformer config as 480P)",
            _WAN_I2V,
        ),
        ModelSpec(
            "wan2.2-ti2v-5b",
            "wan2.2-ti2v-5b.json",
            "wan2_2_ti2v",
            "ti2v-720p",
            "https://huggingface.co/Wan-AI/Wan2.2-TI2V-5B-Diffusers/blob/main/transformer/config.json",
            "Wan2.2 text/image-to-video, 5B (48-ch VAE 16x, per-token timesteps)",
            {"text_encoder": "wan2.1/text_encoder", "vae": "wan2.2-ti2v-5b/vae"},
        ),
        ModelSpec(
            "wan2.2-t2v-a14b",
            "wan2.2-t2v-a14b.json",
            "wan2_2_a14b",
            "a14b-720p",
            "https://huggingface.co/Wan-AI/Wan2.2-T2V-A14B-Diffusers/blob/main/transformer/config.json",
            "Wan2.2 text-to-video, 2 x 14B experts (high/low noise)",
            _WAN,
        ),
        ModelSpec(
            "wan2.2-i2v-a14b",
            "wan2.2-i2v-a14b.json",
            "wan2_2_i2v_a14b",
            "a14b-i2v-720p",
            "https://huggingface.co/Wan-AI/Wan2.2-I2V-A14B-Diffusers/blob/main/transformer/config.json",
            "Wan2.2 image-to-video, 2 x 14B experts (high/low noise; first frame VAE-encoded, no CLIP image encoder)",
            _WAN,
        ),
        ModelSpec(
            "flux.1-dev",
            "flux.1-dev.json",
            "flux_1",
            "flux-1024",
            "https://huggingface.co/black-forest-labs/FLUX.1-dev/blob/main/transformer/config.json",
            "FLUX.1-dev text-to-image, 12B (guidance-distilled: 1 pass/step)",
            {c: f"flux.1-dev/{c}" for c in ("text_encoder", "text_encoder_2", "vae")},
        ),
        ModelSpec(
            "sd3.5-large",
            "sd3.5-large.json",
            "sd3_5",
            "sd3.5-1024",
            "https://huggingface.co/stabilityai/stable-diffusion-3.5-large/blob/main/transformer/config.json",
            "Stable Diffusion 3.5 Large text-to-image, 8B (CFG: 2 passes/step)",
            {c: f"sd3.5-large/{c}" for c in ("text_encoder", "text_encoder_2", "text_encoder_3", "vae")},
        ),
        ModelSpec(
            "hunyuanvideo",
            "hunyuanvideo.json",
            "hunyuan_video",
            "hunyuan-720p",
            "https://huggingface.co/hunyuanvideo-community/HunyuanVideo/blob/main/transformer/config.json",
            "HunyuanVideo text-to-video, 13B (embedded guidance: 1 pass/step)",
            {c: f"hunyuanvideo/{c}" for c in ("text_encoder", "text_encoder_2", "vae")},
        ),
        ModelSpec(
            "cogvideox-5b",
            "cogvideox-5b.json",
            "cogvideox",
            "cogvideox-480p",
            "https://huggingface.co/THUDM/CogVideoX-5b/blob/main/transformer/config.json",
            "CogVideoX text-to-video, 5B",
            {c: f"cogvideox-5b/{c}" for c in ("text_encoder", "vae")},
        ),
        ModelSpec(
            "ltx-video",
            "ltx-video.json",
            "ltx_video",
            "ltx-512p",
            "https://huggingface.co/Lightricks/LTX-Video/blob/main/transformer/config.json",
            "LTX-Video text-to-video, 2B",
            {c: f"ltx-video/{c}" for c in ("text_encoder", "vae")},
        ),
    )
}


@dataclass(frozen=True)
class ResolvedModel:
    """A model id, its config and the adapter that drives it."""

    id: str
    config: dict[str, Any]
    config_sha256: str
    config_source: str
    adapter: Adapter
    slug: str
    default_workload: str  # "" when neither the model nor its adapter names one
    #: the models the pipeline loads (name -> Component); the first is ``transformer``
    components: Mapping[str, Component] = field(default_factory=dict)
    #: components the model folder's model_index.json lists whose config file is missing -> why
    missing: Mapping[str, str] = field(default_factory=dict)

    @property
    def diffusers_class(self) -> str:
        return self.adapter.diffusers_class

    def component(self, name: str) -> Component:
        if name in self.components:
            return self.components[name]
        if name == "transformer":
            return Component("transformer", self.config, self.config_sha256, self.adapter, self.config_source)
        raise ConfigError(f"{self.id} has no component {name!r} (it has: {', '.join(self.components) or 'transformer'})")

    def stages(self, wl: Workload, *, batched_cfg: bool = False, denoise_only: bool = False) -> tuple[StagePlan, ...]:
        """Every stage of one generation of ``wl`` in call order (the adapter's plan, as data): text and
        image encoders, the denoising stages, the VAE.  Stages whose component this model has no config
        for are left out (:meth:`pipeline_notes` says which); ``denoise_only``: the denoisers alone."""
        try:
            denoise = self.adapter.stages(self.config, wl, batched_cfg=batched_cfg)
            if denoise_only:
                return denoise
            before, after = self.adapter.pipeline_stages(self.config, wl, self.geometry(wl))
        except (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError) as e:
            raise ConfigError(f"config {self.config_source}: cannot plan the stages ({type(e).__name__}: {e})") from None
        have = set(self.components) | set(self.missing)
        return tuple(p for p in before if p.component in have) + denoise + tuple(p for p in after if p.component in have)

    def stage_component(self, plan: StagePlan) -> Component:
        """The component ``plan`` runs, with the plan's call as its adapter (specialised for its config)."""
        if plan.component in self.missing:
            raise ConfigError(f"{self.missing[plan.component]} (stage {plan.name} needs it; "
                              f"--stages without {plan.name} leaves it out)")
        comp = self.component(plan.component)
        if plan.adapter is None:
            return comp
        from fxmeter.model.adapters.stage import StageAdapter

        call = plan.adapter
        if isinstance(call, StageAdapter):
            call.check_class(dict(comp.config), f"{comp.source} ({plan.component})")
        try:
            call = call.specialize(dict(comp.config))
        except (TypeError, ValueError, KeyError, IndexError) as e:
            raise ConfigError(f"{comp.source}: a value {call.name} cannot use ({type(e).__name__}: {e})") from None
        return replace(comp, adapter=call)

    def stage_dims(self, plan: StagePlan, geometry: Geometry) -> dict[str, int]:
        """The symbol values of ``plan``: its own, or the geometry's at its batch factor (denoisers)."""
        if plan.dims is not None:
            return dict(plan.dims)
        dims = dict(geometry.dims)
        if plan.batch_factor != 1:
            dims["batch"] = dims["batch"] * plan.batch_factor
        return dims

    def pipeline_notes(self, wl: Workload) -> tuple[str, ...]:
        """What the pipeline runs that this model has no config for (a --config without text_encoder/ or vae/)."""
        try:
            before, after = self.adapter.pipeline_stages(self.config, wl, self.geometry(wl))
        except (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError):
            return ()
        absent = [p.name for p in (*before, *after) if p.component not in self.components and p.component not in self.missing]
        if not absent:
            return ()
        return (f"not modeled: {', '.join(absent)} (no config for {', '.join(sorted({p.component for p in (*before, *after) if p.name in absent}))}"
                f" in {self.config_source}; a model folder with <component>/config.json adds them)",)

    def passes_per_step(self, wl: Workload) -> int:
        return self.adapter.passes_per_step(self.config, wl)

    def geometry(self, wl: Workload) -> Geometry:
        """The adapter's geometry for ``wl``; a preset of another model family is refused, and a
        config value of the wrong type is a ConfigError."""
        a = self.adapter
        family = a.family or a.name
        if not fits(wl, a.name, family):
            preset = wl.name.split("+")[0]
            own = presets_for(a.name, family)
            raise WorkloadError(
                f"workload {preset!r} is a preset for {wl.family} models, not for {self.id} ({a.name}); "
                f"presets for this model: {', '.join(own) or 'none (pass a Workload)'}"
            )
        try:
            return a.geometry(self.config, wl)
        except (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError) as e:
            raise ConfigError(
                f"config {self.config_source} has a value {self.diffusers_class} cannot use ({type(e).__name__}: {e})"
            ) from None


def get_spec(model_id: str) -> ModelSpec:
    if model_id not in MODELS:
        raise UnknownModelError(f"unknown model {model_id!r}; known: {', '.join(sorted(MODELS))} (see `fxmeter models`)")
    return MODELS[model_id]


def _sha256(config: Mapping[str, Any]) -> str:
    canon = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canon).hexdigest()


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's ``object_pairs_hook``: a key given twice is an error (json keeps the last one silently)."""
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def _finite(text: str) -> float:
    """json's ``parse_float``: ``1e999`` (inf to Python) is refused as NaN and Infinity are."""
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"{text[:40]} is not a finite number")
    return v


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _read_json(path: Path, what: str = "config") -> dict[str, Any]:
    """A JSON object from a user's file: duplicate keys, NaN/Infinity and numbers past a float or past
    Python's 4,300-digit integer limit are one ConfigError naming what is wrong."""
    text = read_text(path, f"{what} file", limit=MAX_CONFIG_BYTES, error=ConfigError)
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_float=_finite, parse_constant=_no_constant)
    except _DuplicateKey as e:
        raise ConfigError(f"{what} {path}: key {e.args[0]!r} appears twice in one object; "
                          "JSON readers keep only one of them, so remove the other") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{what} {path} is not valid JSON: {e.msg} at line {e.lineno}") from None
    except RecursionError:
        raise ConfigError(f"{what} {path} is nested too deeply to be a config") from None
    except ValueError as e:  # NaN/Infinity, 1e999, an integer of more than 4,300 digits (int max str digits)
        msg = str(e).split(";")[0].split(":")[0] if "digits" in str(e) else str(e)
        raise ConfigError(f"{what} {path} holds a number fxmeter cannot use ({msg})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must hold a JSON object, got {type(data).__name__}")
    return data


#: components a pipeline folder may hold besides the transformer(s) and the scheduler, with their stages
STAGE_COMPONENTS = ("text_encoder", "text_encoder_2", "text_encoder_3", "image_encoder", "connectors", "vae", "audio_vae", "vocoder")
#: config keys of a component config that are provenance, not the class's arguments
_PROVENANCE = ("_source", "_note", "_name_or_path", "_commit_hash", "transformers_version", "torch_dtype", "dtype",
               "_diffusers_version")


def _bundled_stage(folder: str) -> tuple[dict[str, Any], str]:
    """A bundled component config (``configs/<folder>/config.json``) and its upstream source."""
    text = (resources.files("fxmeter.model.configs") / folder / "config.json").read_text()
    cfg = json.loads(text)
    return cfg, str(cfg.get("_source") or f"fxmeter/model/configs/{folder}/config.json")


def stage_component(name: str, config: Mapping[str, Any], source: str) -> Component:
    """A text encoder, image encoder or VAE of the pipeline: its config without provenance keys,
    ``_class_name`` kept (the class the pipeline loads); its default call adapter."""
    from fxmeter.model.adapters.defaults import default_stage_adapter

    clean = {k: v for k, v in config.items() if k not in _PROVENANCE}
    cls = clean.get("_class_name")
    if not isinstance(cls, str):
        raise ConfigError(f"{source}: the {name} config names no class (_class_name, or model_index.json's entry)")
    adapter = default_stage_adapter(cls, source)
    return Component(name, clean, _sha256(clean), adapter.specialize(clean), source)


def read_stage_configs(path: Path) -> tuple[dict[str, tuple[dict[str, Any], str]], dict[str, str]]:
    """The stage components of a model folder: ``<name>/config.json`` of each text encoder, image
    encoder and VAE its model_index.json lists, with the class model_index.json names (what
    ``from_pretrained`` loads: HunyuanVideo's text encoder is a ``LlamaModel`` whatever its config's
    ``architectures`` say).  Returns (found, missing): missing maps a listed component whose
    config file is absent to the line that says so (an error only when its stage is asked for)."""
    folder = path.parent if path.name == "model_index.json" else path
    if not folder.is_dir() or not (folder / "model_index.json").is_file():
        return {}, {}
    index = _read_json(folder / "model_index.json", "model index")
    found: dict[str, tuple[dict[str, Any], str]] = {}
    missing: dict[str, str] = {}
    for name in STAGE_COMPONENTS:
        cls = _component(index, name)
        if cls is None:
            continue
        file = folder / name / "config.json"
        if not file.is_file():
            missing[name] = f"model folder {folder}: model_index.json lists {name!r} but {name}/config.json is missing"
            continue
        cfg = _read_json(file)
        found[name] = (dict(cfg, _class_name=cls), str(file))
    return found, missing


def _bundled(spec: ModelSpec) -> dict[str, Any]:
    return json.loads((resources.files("fxmeter.model.configs") / spec.config_file).read_text())  # type: ignore[no-any-return]


def known_keys(class_name: str) -> frozenset[str] | None:
    """Every config key of ``class_name`` in fxmeter's bundled configs (diffusers saves every
    ``__init__`` argument of the class), or None when no bundled model has this class."""
    keys: set[str] = set()
    for spec in MODELS.values():
        cfg = _bundled(spec)
        if cfg.get("_class_name") == class_name:
            keys |= set(_clean(cfg))
    return frozenset(keys) if keys else None


def warn_unknown_keys(cfg: Mapping[str, Any], class_name: str, source: str) -> list[str]:
    """Warn (one line naming them) about keys of a user config that no bundled ``class_name`` config has.

    diffusers' ``from_config`` ignores keys its class does not take (with its own warning, which
    fxmeter silences while building), so a misspelt key (``num_layer``) changes nothing: the
    user is told which keys were not used.  Returns the keys warned about.
    """
    known = known_keys(class_name)
    if known is None:
        return []
    unknown = sorted(k for k in _clean(dict(cfg)) if k not in known)
    if unknown and (source, tuple(unknown)) not in _WARNED:  # once per process (a sweep resolves the model twice)
        _WARNED.add((source, tuple(unknown)))
        LOG.warning("config %s: key(s) %s are not %s arguments and are ignored (as diffusers' from_config "
                    "ignores them); check their spelling", source, ", ".join(repr(k) for k in unknown), class_name)
    return unknown


def _clean(cfg: dict[str, Any]) -> dict[str, Any]:
    """The class's config: no ``_`` keys (``_class_name`` and ``_pipeline`` are put back by the caller)."""
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


#: model_index.json values of the pipeline that change what the transformer runs (diffusers' WanPipeline:
#: register_to_config(boundary_ratio=..., expand_timesteps=...))
PIPELINE_KEYS = ("boundary_ratio", "expand_timesteps")


def _component(index: dict[str, Any], name: str) -> str | None:
    """The class model_index.json names for component ``name`` (``[library, class]``), or None when absent."""
    v = index.get(name)
    if isinstance(v, (list, tuple)) and len(v) == 2 and v[1] is not None:
        return str(v[1])
    return None


def read_model_folder(folder: Path) -> tuple[dict[str, Any], Path]:
    """A diffusers model folder read the way ``DiffusionPipeline.from_pretrained`` lays it out.

    ``model_index.json`` names the pipeline class and its components (``name: [library, class]``,
    ``[null, null]`` when absent) and holds pipeline-level values (``boundary_ratio``,
    ``expand_timesteps``); each component's config is ``<name>/config.json`` (a scheduler's
    ``scheduler/scheduler_config.json``).  The result is the transformer's config with a
    ``_pipeline`` record: ``class``, ``experts`` (``transformer``, ``transformer_2`` when the
    pipeline switches between two at ``boundary_ratio``), ``expert_configs`` (a second expert
    whose config differs from the first), ``scheduler`` (its config), the VAE scale factors and
    the pipeline-level values.  Plain JSON reading (diffusers' ``load_config`` would import torch
    on every run); tests check the result against ``DiffusionPipeline.load_config``.

    A folder without model_index.json is a transformer folder (``config.json``) or holds
    ``transformer/config.json`` alone.
    """
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        for cand in (folder / "transformer" / "config.json", folder / "config.json"):
            if cand.is_file():
                return _read_json(cand), cand
        raise ConfigError(f"no model_index.json, transformer/config.json or config.json in folder {folder}")
    index = _read_json(index_path, "model index")
    if _component(index, "transformer") is None:
        listed = sorted(k for k in index if not k.startswith("_") and _component(index, k))
        raise ConfigError(
            f"{index_path} names no 'transformer' component (it has: {', '.join(listed) or 'none'}); "
            "fxmeter models the transformer of DiT pipelines"
        )

    def component_config(name: str, file: str = "config.json") -> dict[str, Any]:
        path = folder / name / file
        if not path.is_file():
            raise ConfigError(f"model folder {folder}: model_index.json lists {name!r} but {name}/{file} is missing")
        return _read_json(path)

    cfg = component_config("transformer")
    pipe: dict[str, Any] = {"class": index.get("_class_name")}
    for k in PIPELINE_KEYS:
        if index.get(k) is not None:
            pipe[k] = index[k]
    experts = ["transformer"]
    if _component(index, "transformer_2") is not None and pipe.get("boundary_ratio") is not None:
        # WanPipeline: transformer runs t >= boundary_ratio * num_train_timesteps, transformer_2 the rest
        cfg2 = component_config("transformer_2")
        if cfg2.get("_class_name", cfg.get("_class_name")) != cfg.get("_class_name"):
            raise ConfigError(f"model folder {folder}: transformer_2 is a {cfg2.get('_class_name')}, "
                              f"transformer a {cfg.get('_class_name')}; two experts of one class are supported")
        experts.append("transformer_2")
        if _clean(cfg2) != _clean(cfg):
            pipe["expert_configs"] = {"transformer_2": _clean(cfg2)}
    if len(experts) > 1:
        pipe["experts"] = experts
    if _component(index, "scheduler") is not None:
        if len(experts) > 1 or (folder / "scheduler" / "scheduler_config.json").is_file():
            sched = component_config("scheduler", "scheduler_config.json")  # the expert split needs its timesteps
            pipe["scheduler"] = {k: v for k, v in sched.items() if k == "_class_name" or not k.startswith("_")}
    vae_cfg = folder / "vae" / "config.json"
    if _component(index, "vae") is not None and vae_cfg.is_file():
        vae = _read_json(vae_cfg)
        for k in ("scale_factor_spatial", "scale_factor_temporal"):  # WanPipeline: self.vae.config.scale_factor_*
            if isinstance(vae.get(k), int) and not isinstance(vae.get(k), bool):
                pipe[f"vae_{k}"] = vae[k]
    cfg = dict(cfg, _pipeline=pipe)
    return cfg, folder / "transformer" / "config.json"


def read_config(path: str | Path) -> tuple[dict[str, Any], str, str]:
    """(config, source, name) of ``--config``: a config.json, a model_index.json or a model folder.

    ``source`` is the transformer's config file; ``name`` the folder's name (custom model ids).
    """
    p = Path(path)
    if p.name == "model_index.json" and p.is_file():
        p = p.parent
    if p.is_dir():
        cfg, path = read_model_folder(p)
        return cfg, str(path), p.resolve().name or "model"
    return _read_json(p), str(p), p.parent.name or "model"


def _architecture_diff(cfg: dict[str, Any], bundled: dict[str, Any]) -> list[str]:
    """Keys in which ``cfg`` describes another transformer than ``bundled`` (keys both have)."""
    a, b = _clean(cfg), _clean(bundled)
    diffs = [f"{k} {a[k]!r} (bundled {b[k]!r})" for k in sorted(set(a) & set(b)) if a[k] != b[k]]

    def n_experts(c: dict[str, Any]) -> int:
        p: dict[str, Any] = c["_pipeline"] if isinstance(c.get("_pipeline"), dict) else {}
        return len(p.get("experts") or ()) or 1

    if n_experts(cfg) != n_experts(bundled):
        diffs.append(f"{n_experts(cfg)} expert(s) (bundled {n_experts(bundled)})")
    return diffs


def resolve_model(model_id: str | None, config: str | Path | None = None) -> ResolvedModel:
    """The bundled model ``model_id``, or a local ``config`` (optionally named by ``model_id``).

    A model id with a config of another class or another architecture is refused: the report
    would carry the id of a model it does not describe.
    """
    spec = get_spec(model_id) if model_id else None
    name = "model"
    if config is not None:
        cfg, source, name = read_config(config)
    elif spec is not None:
        cfg = _bundled(spec)
        source = spec.source
    else:
        raise UnknownModelError("name a model (see `fxmeter models`) or pass --config PATH")
    class_name = cfg.get("_class_name")
    if class_name is None:
        if spec is None:
            raise ConfigError(f"config {source} has no '_class_name'; add it or also name a model id")
        class_name = _bundled(spec)["_class_name"]
    if not isinstance(class_name, str):
        raise ConfigError(f"config {source}: '_class_name' must be a class name string, got {class_name!r}")
    adapter = adapter_for_class(class_name)
    if spec is not None and config is not None:
        bundled = _bundled(spec)
        if bundled["_class_name"] != class_name:
            raise ConfigError(
                f"--config {source} is a {class_name} config, but {model_id} is a {bundled['_class_name']}; "
                f"drop the model id to trace the config as a custom model"
            )
        diffs = _architecture_diff(cfg, bundled)
        if diffs:
            raise ConfigError(
                f"--config {source} is not {model_id}'s architecture ({'; '.join(diffs[:3])}"
                f"{'; ...' if len(diffs) > 3 else ''}); drop the model id to trace it as custom-{name}"
            )
    clean = _clean(cfg)
    clean["_class_name"] = class_name
    if config is not None:
        warn_unknown_keys(clean, class_name, source)
    if isinstance(cfg.get("_pipeline"), dict):  # pipeline-level settings (never passed to the model class)
        clean["_pipeline"] = cfg["_pipeline"]
    problems = adapter.check_config(clean)
    expert_cfgs = clean.get("_pipeline", {}).get("expert_configs") or {}
    for expert, ecfg in expert_cfgs.items() if isinstance(expert_cfgs, dict) else ():
        problems += [f"{expert}: {p}" for p in adapter.check_config(ecfg)]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(f"config {source}: {problems[0]} ({class_name}){more}")
    try:
        adapter = adapter.specialize(clean)
    except (TypeError, ValueError, KeyError, IndexError) as e:
        raise ConfigError(f"config {source} has a value {class_name} cannot use ({type(e).__name__}: {e})") from None
    mid = model_id or f"custom-{name}"
    components: dict[str, Component] = {}
    for cname, ccfg in adapter.components(clean):
        cadapter = adapter if ccfg is clean else adapter_for_class(str(ccfg["_class_name"]), dict(ccfg))
        components[cname] = Component(cname, ccfg, _sha256(dict(ccfg)), cadapter, source)
    missing: dict[str, str] = {}
    stage_cfgs: dict[str, tuple[dict[str, Any], str]] = {}
    if config is not None:
        stage_cfgs, missing = read_stage_configs(Path(config))
    elif spec is not None:
        stage_cfgs = {c: _bundled_stage(folder) for c, folder in spec.stage_configs.items()}
    for cname, (ccfg, csource) in stage_cfgs.items():
        components[cname] = stage_component(cname, ccfg, csource)
    return ResolvedModel(
        id=mid,
        config=clean,
        config_sha256=_sha256(clean),
        config_source=source,
        adapter=adapter,
        slug=spec.slug if spec else adapter.default_slug,
        default_workload=spec.default_workload if spec else (adapter.default_workload or ""),
        components=components,
        missing=missing,
    )


def _install_zoo() -> None:
    """Add the models of ``fxmeter/model/zoo/`` (one file each) to the registry, the adapters,
    the presets and the stage calls; a zoo model that reuses a built-in id, preset or class is an
    error at import (two declarations would disagree silently)."""
    from fxmeter.model import workload, zoo
    from fxmeter.model.adapters import ADAPTERS, register
    from fxmeter.model.adapters.defaults import STAGE_ADAPTERS

    found = zoo.discover()
    for a in found.adapters:
        if a.diffusers_class not in ADAPTERS:
            register(a)
    for w in found.presets:
        if w.name in workload.PRESETS:
            raise RuntimeError(f"zoo: preset {w.name} is already built in")
        workload.PRESETS[w.name] = w
    for m in found.models:
        if m.id in MODELS:
            raise RuntimeError(f"zoo: model {m.id} is already built in")
        MODELS[m.id] = m
    for cls, call in found.stage_adapters.items():
        STAGE_ADAPTERS.setdefault(cls, call)


_install_zoo()
