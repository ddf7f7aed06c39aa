"""Model registry: bundled diffusers configs (never downloaded) and local ones."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .adapters import Adapter, adapter_for_class
from .errors import ConfigError, UnknownModelError


@dataclass(frozen=True)
class ModelSpec:
    """A model fxmeter knows by name."""

    id: str
    config_file: str
    slug: str  # artifact folder name under static_analysis/
    default_workload: str
    source: str
    description: str


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
        ),
        ModelSpec(
            "wan2.1-t2v-1.3b",
            "wan2.1-t2v-1.3b.json",
            "wan2_1",
            "480p",
            "https://huggingface.co/Wan-AI/Wan2.1-T2V-1.3B-Diffusers/blob/main/transformer/config.json",
            "Wan2.1 text-to-video, 1.3B",
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
    default_workload: str

    @property
    def diffusers_class(self) -> str:
        return self.adapter.diffusers_class


def get_spec(model_id: str) -> ModelSpec:
    if model_id not in MODELS:
        raise UnknownModelError(f"unknown model {model_id!r}; known: {', '.join(sorted(MODELS))} (see `fxmeter models`)")
    return MODELS[model_id]


def _sha256(config: dict[str, Any]) -> str:
    canon = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canon).hexdigest()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"config {path} is not valid JSON: {e.msg} at line {e.lineno}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must hold a JSON object, got {type(data).__name__}")
    return data


def config_path(path: str | Path) -> Path:
    """A config.json, or a model folder holding transformer/config.json or config.json."""
    p = Path(path)
    if p.is_dir():
        for cand in (p / "transformer" / "config.json", p / "config.json"):
            if cand.is_file():
                return cand
        raise ConfigError(f"no transformer/config.json or config.json in folder {p}")
    return p


def resolve_model(model_id: str | None, config: str | Path | None = None) -> ResolvedModel:
    """The bundled model ``model_id``, or a local ``config`` (optionally named by ``model_id``)."""
    spec = get_spec(model_id) if model_id else None
    if config is not None:
        path = config_path(config)
        cfg = _read_json(path)
        source = str(path)
    elif spec is not None:
        ref = resources.files("fxmeter.configs") / spec.config_file
        cfg = json.loads(ref.read_text())
        source = spec.source
        path = Path(spec.config_file)
    else:
        raise UnknownModelError("name a model (see `fxmeter models`) or pass --config PATH")
    class_name = cfg.get("_class_name")
    if class_name is None:
        if spec is None:
            raise ConfigError(f"config {path} has no '_class_name'; add it or also name a model id")
        class_name = json.loads((resources.files("fxmeter.configs") / spec.config_file).read_text())["_class_name"]
    adapter = adapter_for_class(str(class_name))
    missing = [k for k in adapter.required_keys if k not in cfg]
    if missing:
        raise ConfigError(f"config {path} is missing required key {missing[0]!r} for {class_name}")
    clean = {k: v for k, v in cfg.items() if not k.startswith("_")}
    clean["_class_name"] = class_name
    mid = model_id or f"custom-{path.parent.name or 'model'}"
    return ResolvedModel(
        id=mid,
        config=clean,
        config_sha256=_sha256(clean),
        config_source=source,
        adapter=adapter,
        slug=spec.slug if spec else adapter.default_slug,
        default_workload=spec.default_workload if spec else "480p",
    )
