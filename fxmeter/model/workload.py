"""Workloads: what one generation asks of the model (geometry, steps, guidance).

Presets are named; every knob can be overridden.  The model adapter turns a
workload into latent geometry (``fxmeter.adapters``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from fxmeter.base.knobs import WORKLOAD_KNOBS
from fxmeter.errors import WorkloadError

DTYPES = ("bfloat16", "float16", "float32")
DTYPE_ALIASES = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}


@dataclass(frozen=True)
class Workload:
    """One generation: geometry in pixels/frames, denoising steps, guidance."""

    name: str
    frames: int
    height: int
    width: int
    steps: int
    text_len: int
    batch: int = 1
    guidance_scale: float = 5.0
    description: str = ""
    #: the models a preset is made for: an adapter family (``wan``, ``flux``...) or one adapter
    #: name (``wan-i2v``); None = any model (a Workload built by hand)
    family: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("720p", 81, 720, 1280, 50, 512, description="Wan2.1 720p: 1280x720, 81 frames, 50 steps, CFG 5.0", family="wan"),
        Workload("480p", 81, 480, 832, 50, 512, description="Wan2.1 480p: 832x480, 81 frames, 50 steps, CFG 5.0", family="wan"),
        Workload("ci-tiny", 4, 256, 256, 1, 64, description="W-001: batch 1, 1 step, 4 frames, 256x256, text 64", family="wan"),
        Workload("w-002", 16, 512, 512, 50, 512, description="W-002: batch 1, 50 steps, 16 frames, 512x512, text 512", family="wan"),
        Workload("w-003", 16, 720, 1280, 50, 512, description="W-003: batch 1, 50 steps, 16 frames, 720x1280, text 512", family="wan"),
        # official defaults of the other bundled models (pipeline __call__ defaults / model cards)
        Workload("i2v-480p", 81, 480, 832, 40, 512, description="Wan2.1 I2V 480P: 832x480, 81 frames, 40 steps (Wan repo i2v sample_steps), CFG 5.0", family="wan-i2v"),
        Workload("i2v-720p", 81, 720, 1280, 40, 512, description="Wan2.1 I2V 720P: 1280x720, 81 frames, 40 steps (Wan repo i2v sample_steps), CFG 5.0", family="wan-i2v"),
        Workload("ti2v-720p", 121, 704, 1280, 50, 512, description="Wan2.2 TI2V-5B: 1280x704, 121 frames, 50 steps, CFG 5.0", family="wan-ti2v"),
        Workload("a14b-720p", 81, 720, 1280, 40, 512, guidance_scale=4.0, description="Wan2.2 T2V-A14B: 1280x720, 81 frames, 40 steps, CFG 4.0/3.0 (high/low-noise expert)", family="wan-experts"),
        Workload("a14b-i2v-720p", 81, 720, 1280, 40, 512, guidance_scale=3.5, description="Wan2.2 I2V-A14B (wan_i2v_A14B.py): 1280x720, 81 frames, 40 steps, CFG 3.5/3.5 (high/low-noise expert)", family="wan-i2v-experts"),
        Workload("a14b-i2v-480p", 81, 480, 832, 40, 512, guidance_scale=3.5, description="Wan2.2 I2V-A14B at 480P: 832x480, 81 frames, 40 steps, CFG 3.5/3.5 (high/low-noise expert)", family="wan-i2v-experts"),
        Workload("flux-1024", 1, 1024, 1024, 28, 512, guidance_scale=3.5, description="FLUX.1-dev FluxPipeline: 1024x1024, 28 steps, distilled guidance 3.5 (1 pass), T5 512", family="flux"),
        Workload("sd3.5-1024", 1, 1024, 1024, 28, 333, guidance_scale=3.5, description="SD3.5 Large model card: 1024x1024, 28 steps, CFG 3.5, text 77 CLIP + 256 T5", family="sd3"),
        Workload("hunyuan-720p", 129, 720, 1280, 50, 256, guidance_scale=6.0, description="HunyuanVideoPipeline: 1280x720, 129 frames, 50 steps, embedded guidance 6.0 (1 pass), text 256", family="hunyuan_video"),
        Workload("cogvideox-480p", 49, 480, 720, 50, 226, guidance_scale=6.0, description="CogVideoXPipeline: 720x480, 49 frames, 50 steps, CFG 6.0, text 226", family="cogvideox"),
        Workload("ltx-512p", 161, 512, 704, 50, 128, guidance_scale=3.0, description="LTXPipeline: 704x512, 161 frames, 50 steps, CFG 3.0, text 128", family="ltx_video"),
    )
}
ALIASES = {"w-001": "ci-tiny", "W-001": "ci-tiny", "W-002": "w-002", "W-003": "w-003"}

OVERRIDABLE = WORKLOAD_KNOBS  # declared in fxmeter.base.knobs


def get_preset(name: str) -> Workload:
    key = ALIASES.get(name, name)
    if key not in PRESETS:
        raise WorkloadError(f"unknown workload {name!r}; known: {', '.join(sorted(PRESETS))} (see `fxmeter workloads`)")
    return PRESETS[key]


def fits(wl: Workload, adapter_name: str, family: str) -> bool:
    """True when preset ``wl`` is made for an adapter named ``adapter_name`` of ``family`` (or for any model)."""
    return wl.family is None or wl.family in (adapter_name, family)


def presets_for(adapter_name: str, family: str) -> list[str]:
    """Names of the presets made for this adapter (its own and its family's)."""
    return [w.name for w in PRESETS.values() if w.family is not None and fits(w, adapter_name, family)]


def resolve(workload: str | Workload | None, default: str | None, **overrides: Any) -> Workload:
    """Preset (or ``default``) with the non-None ``overrides`` applied, validated."""
    if workload is None and not default:
        raise WorkloadError("this model declares no default workload; pass --workload (see `fxmeter workloads`)")
    base = workload if isinstance(workload, Workload) else get_preset(workload or default or "")
    unknown = set(overrides) - set(OVERRIDABLE)
    if unknown:
        raise WorkloadError(f"unknown workload knob(s): {', '.join(sorted(unknown))}; known: {', '.join(OVERRIDABLE)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    wl = replace(base, **changes)
    if changes:
        wl = replace(wl, name=f"{base.name}+" + ",".join(f"{k}={v}" for k, v in sorted(changes.items())))
    validate(wl)
    return wl


def validate(wl: Workload) -> None:
    for f in fields(wl):
        if f.name in ("name", "description", "guidance_scale", "family"):
            continue
        v = getattr(wl, f.name)
        if isinstance(v, bool) or not isinstance(v, int):
            raise WorkloadError(f"{f.name} must be an integer, got {v!r}")
        if f.name == "steps":
            if v < 1:
                raise WorkloadError(f"steps must be positive (>= 1), got {v}")
        elif v <= 0:
            raise WorkloadError(f"{f.name} must be positive, got {v}")
    g = wl.guidance_scale
    if not isinstance(g, (int, float)) or (isinstance(g, float) and not math.isfinite(g)):
        raise WorkloadError(f"guidance_scale must be a finite number, got {g!r}")


def normalize_dtype(dtype: str) -> str:
    if not isinstance(dtype, str):
        raise WorkloadError(f"dtype must be one of bf16, fp16, fp32 (a string), got {dtype!r}")
    d = DTYPE_ALIASES.get(dtype.lower(), dtype.lower())
    if d not in DTYPES:
        raise WorkloadError(f"unknown dtype {dtype!r}; use one of bf16, fp16, fp32")
    return d
