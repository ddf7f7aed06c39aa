"""Model registry: bundled diffusers configs (never downloaded) and local ones."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .adapters import Adapter, Geometry, adapter_for_class
from .errors import ConfigError, UnknownModelError
from .fileio import MAX_CONFIG_BYTES, read_text
from .workload import Workload


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
        ModelSpec(
            "wan2.1-i2v-14b-480p",
            "wan2.1-i2v-14b.json",
            "wan2_1_i2v",
            "i2v-480p",
            "https://huggingface.co/Wan-AI/Wan2.1-I2V-14B-480P-Diffusers/blob/main/transformer/config.json",
            "Wan2.1 image-to-video, 14B, 480P (CLIP image tokens in cross-attention)",
        ),
        ModelSpec(
            "wan2.1-i2v-14b-720p",
            "wan2.1-i2v-14b.json",
            "wan2_1_i2v",
            "i2v-720p",
            "https://huggingface.co/Wan-AI/Wan2.1-I2V-14B-720P-Diffusers/blob/main/transformer/config.json",
            "Wan2.1 image-to-video, 14B, 720P (same transformer config as 480P)",
        ),
        ModelSpec(
            "wan2.2-ti2v-5b",
            "wan2.2-ti2v-5b.json",
            "wan2_2_ti2v",
            "ti2v-720p",
            "https://huggingface.co/Wan-AI/Wan2.2-TI2V-5B-Diffusers/blob/main/transformer/config.json",
            "Wan2.2 text/image-to-video, 5B (48-ch VAE 16x, per-token timesteps)",
        ),
        ModelSpec(
            "wan2.2-t2v-a14b",
            "wan2.2-t2v-a14b.json",
            "wan2_2_a14b",
            "a14b-720p",
            "https://huggingface.co/Wan-AI/Wan2.2-T2V-A14B-Diffusers/blob/main/transformer/config.json",
            "Wan2.2 text-to-video, 2 x 14B experts (high/low noise)",
        ),
        ModelSpec(
            "flux.1-dev",
            "flux.1-dev.json",
            "flux_1",
            "flux-1024",
            "https://huggingface.co/black-forest-labs/FLUX.1-dev/blob/main/transformer/config.json",
            "FLUX.1-dev text-to-image, 12B (guidance-distilled: 1 pass/step)",
        ),
        ModelSpec(
            "sd3.5-large",
            "sd3.5-large.json",
            "sd3_5",
            "sd3.5-1024",
            "https://huggingface.co/stabilityai/stable-diffusion-3.5-large/blob/main/transformer/config.json",
            "Stable Diffusion 3.5 Large text-to-image, 8B (CFG: 2 passes/step)",
        ),
        ModelSpec(
            "hunyuanvideo",
            "hunyuanvideo.json",
            "hunyuan_video",
            "hunyuan-720p",
            "https://huggingface.co/hunyuanvideo-community/HunyuanVideo/blob/main/transformer/config.json",
            "HunyuanVideo text-to-video, 13B (embedded guidance: 1 pass/step)",
        ),
        ModelSpec(
            "cogvideox-5b",
            "cogvideox-5b.json",
            "cogvideox",
            "cogvideox-480p",
            "https://huggingface.co/THUDM/CogVideoX-5b/blob/main/transformer/config.json",
            "CogVideoX text-to-video, 5B",
        ),
        ModelSpec(
            "ltx-video",
            "ltx-video.json",
            "ltx_video",
            "ltx-512p",
            "https://huggingface.co/Lightricks/LTX-Video/blob/main/transformer/config.json",
            "LTX-Video text-to-video, 2B",
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

    def geometry(self, wl: Workload) -> Geometry:
        """The adapter's geometry for ``wl``; a config value of the wrong type is a ConfigError."""
        try:
            return self.adapter.geometry(self.config, wl)
        except (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError) as e:
            raise ConfigError(
                f"config {self.config_source} has a value {self.diffusers_class} cannot use ({type(e).__name__}: {e})"
            ) from None


def get_spec(model_id: str) -> ModelSpec:
    if model_id not in MODELS:
        raise UnknownModelError(f"unknown model {model_id!r}; known: {', '.join(sorted(MODELS))} (see `fxmeter models`)")
    return MODELS[model_id]


def _sha256(config: dict[str, Any]) -> str:
    canon = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canon).hexdigest()


def _read_json(path: Path) -> dict[str, Any]:
    text = read_text(path, "config file", limit=MAX_CONFIG_BYTES, error=ConfigError)
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
    if isinstance(cfg.get("_pipeline"), dict):  # pipeline-level settings (never passed to the model class)
        clean["_pipeline"] = cfg["_pipeline"]
    try:
        adapter = adapter.specialize(clean)
    except (TypeError, ValueError, KeyError, IndexError) as e:
        raise ConfigError(f"config {path} has a value {class_name} cannot use ({type(e).__name__}: {e})") from None
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
