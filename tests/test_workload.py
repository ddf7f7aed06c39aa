"""Geometry exactly as diffusers' WanPipeline computes it."""

from __future__ import annotations

import pytest

from fxmeter.errors import WorkloadError
from fxmeter.model.registry import resolve_model
from fxmeter.model.workload import PRESETS, get_preset, normalize_dtype, resolve

WAN = resolve_model("wan2.1-t2v-14b")


def geom(**kw: object):  # type: ignore[no-untyped-def]
    wl = resolve(kw.pop("workload", "720p"), "720p", **kw)  # type: ignore[arg-type]
    return wl, WAN.adapter.geometry(WAN.config, wl)


def test_720p_tokens() -> None:
    _, g = geom()
    # latent frames (81-1)//4+1 = 21; latent 720/8 x 1280/8 = 90 x 160; patches 45 x 80
    assert g.latent_shape == (1, 16, 21, 90, 160)
    assert g.tokens == 21 * 45 * 80 == 75_600
    assert g.dims == {"batch": 1, "latent_frames": 21, "patches_h": 45, "patches_w": 80, "text_len": 512}


def test_480p_tokens() -> None:
    _, g = geom(workload="480p")
    assert g.tokens == 21 * (480 // 16) * (832 // 16) == 32_760


def test_frames_not_4k_plus_1_are_rounded_like_the_pipeline() -> None:
    _, g = geom(frames=80)
    # WanPipeline: num_frames // 4 * 4 + 1 = 81
    assert g.frames == 81 and g.dims["latent_frames"] == 21
    assert any("rounded to 81" in n for n in g.notes)
    _, g = geom(workload="ci-tiny")  # 4 frames -> 5 -> 2 latent frames
    assert g.frames == 5 and g.dims["latent_frames"] == 2


@pytest.mark.parametrize("h,w", [(720, 1000), (730, 1280), (8, 16)])
def test_resolution_must_be_multiple_of_16(h: int, w: int) -> None:
    with pytest.raises(WorkloadError, match="divisible by 16"):
        geom(height=h, width=w)


@pytest.mark.parametrize("knob", ["frames", "height", "width", "text_len", "batch"])
def test_non_positive_values_rejected(knob: str) -> None:
    with pytest.raises(WorkloadError, match="must be positive"):
        resolve("720p", "720p", **{knob: 0})


def test_negative_steps_rejected() -> None:
    with pytest.raises(WorkloadError, match="steps must be positive"):
        resolve("720p", "720p", steps=-3)


def test_rope_table_bounds() -> None:
    # rope_max_seq_len 1024 positions per axis: 1025 height patches do not fit
    with pytest.raises(WorkloadError, match="exceeds the RoPE table"):
        geom(height=16 * 1025)
    with pytest.raises(WorkloadError, match="exceeds the RoPE table"):
        geom(frames=4 * 1024 + 1)  # 1025 latent frames


def test_guidance_scale_sets_passes_per_step() -> None:
    wl = resolve("720p", "720p")
    assert WAN.adapter.passes_per_step(WAN.config, wl) == 2
    wl1 = resolve("720p", "720p", guidance_scale=1.0)
    assert WAN.adapter.passes_per_step(WAN.config, wl1) == 1  # WanPipeline: CFG only when scale > 1


def test_presets_and_aliases() -> None:
    assert set(PRESETS) >= {"720p", "480p", "ci-tiny", "w-002", "w-003"}  # + the other models' defaults (issue 7)
    assert get_preset("W-001").name == "ci-tiny"
    assert get_preset("W-003").height == 720 and get_preset("W-003").frames == 16
    with pytest.raises(WorkloadError, match="unknown workload"):
        get_preset("1080p")


def test_overrides_rename_the_workload() -> None:
    wl = resolve("720p", "720p", steps=10, height=None)
    assert wl.steps == 10 and wl.name == "720p+steps=10"


def test_dtype_aliases() -> None:
    assert normalize_dtype("bf16") == "bfloat16" and normalize_dtype("FP32") == "float32"
    with pytest.raises(WorkloadError):
        normalize_dtype("int4")
