"""Qwen-Image (``fxmeter/model/zoo/qwen_image.py``): QwenImagePipeline's three stages, from the shipped traces.

Independent references: the FLOPs of each stage written out by hand from the architecture (the
transformer's dual-stream blocks, Qwen2.5-VL-7B's decoder and lm_head), the parameter count of the
published checkpoint (20.43B), and, in the slow lane, FlopCounterMode on the full-size meta models
at the default workload (``fxmeter verify``: every stage, exact).
"""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

import fxmeter
from fxmeter.cli.main import main
from fxmeter.model.registry import resolve_model
from fxmeter.model.workload import resolve

MODEL = "qwen-image"

# geometry of the preset qwen-image-1328: 1328 / 8 (VAE) / 2 (2x2 packing) = 83 -> 83 x 83 image tokens
IMAGE_TOKENS = 83 * 83  # 6,889
TEXT_LEN = 512  # max_sequence_length: what the transformer sees
ENCODER_TOKENS = TEXT_LEN + 34  # + the template's dropped prefix (prompt_template_encode_start_idx)
LATENT = 2 * 83  # 166 x 166 latent pixels, one frame

D = 24 * 128  # hidden 3072


def transformer_flops(n: int, t: int, layers: int = 60) -> int:
    """Tensor-core FLOPs of one QwenImageTransformer2DModel forward, batch 1, by hand (2 per MAC)."""
    s = n + t
    block = (2 * 2 * D * 6 * D  # img_mod and txt_mod: Linear(d, 6d) on the timestep embedding
             + 8 * s * D * D  # q, k, v, out of both streams
             + 4 * s * s * D  # joint attention: QK^T and PV over n + t tokens, all heads
             + 16 * s * D * D)  # img_mlp and txt_mlp: d -> 4d -> d
    outside = (2 * n * 64 * D  # img_in
               + 2 * t * 3584 * D  # txt_in
               + 2 * 256 * D + 2 * D * D  # timestep_embedder 256 -> d -> d
               + 2 * D * 2 * D  # norm_out's Linear(d, 2d)
               + 2 * n * D * 64)  # proj_out d -> 2 x 2 x 16
    return layers * block + outside


def qwen25_vl_flops(n: int) -> int:
    """Tensor-core FLOPs of Qwen2.5-VL-7B on n tokens, batch 1: 28 layers (q/o 3584^2, k/v 3584 x 512, SwiGLU
    3 x 3584 x 18944, attention 28 heads x 128) and the lm_head 3584 x 152064 over every token."""
    h = 3584
    layer = 2 * n * (2 * h * h + 2 * h * 512 + 3 * h * 18944) + 4 * n * n * h
    return 28 * layer + 2 * n * h * 152064


@pytest.fixture(scope="module")
def report() -> Any:
    return fxmeter.trace(MODEL, run_id="zoo-qwen-image")


def test_listed_with_its_preset() -> None:
    out = CliRunner().invoke(main, ["models"]).output
    assert MODEL in out and "qwen-image-1328" in out
    rm = resolve_model(MODEL)
    assert rm.diffusers_class == "QwenImageTransformer2DModel" and rm.default_workload == "qwen-image-1328"
    wl = resolve(None, rm.default_workload)
    assert (wl.height, wl.width, wl.steps, wl.text_len, wl.guidance_scale) == (1328, 1328, 50, 512, 4.0)


def test_geometry_written_out() -> None:
    rm = resolve_model(MODEL)
    g = rm.geometry(resolve(None, "qwen-image-1328"))
    assert g.tokens == IMAGE_TOKENS == 6889
    assert g.dims == {"batch": 1, "image_tokens": 6889, "latent_h": LATENT, "latent_w": LATENT, "text_len": 512}
    assert g.latent_shape == (1, 6889, 64)


def test_stages_are_the_pipelines() -> None:
    rm = resolve_model(MODEL)
    plans = rm.stages(resolve(None, "qwen-image-1328"))
    assert [(p.name, p.runs) for p in plans] == [("text_encoder", 2), ("transformer", 100), ("vae", 1)]
    te, _, vae = plans
    assert te.dims == {"batch": 1, "seq_len": ENCODER_TOKENS}
    assert vae.dims == {"batch": 1, "latent_frames": 1, "latent_h": LATENT, "latent_w": LATENT}
    # no CFG: one encoder call, one pass per step
    plans1 = rm.stages(resolve(None, "qwen-image-1328", guidance_scale=1.0))
    assert [(p.name, p.runs) for p in plans1] == [("text_encoder", 1), ("transformer", 50), ("vae", 1)]


def test_trace_from_shipped_traces_counts_by_hand(report: Any) -> None:
    assert report["unmodeled_ops"] == []
    stages = {s["name"]: s for s in report["pipeline"]["stages"]}
    assert {s["trace"]["cache"] for s in stages.values()} <= {"shipped", "cache"}
    assert report["trace"]["mode"] == "static"  # img_shapes are Python ints
    assert report["model"]["parameters"] == 20_430_401_088  # the published 20.43B (40.86 GB in bf16)
    assert report["totals"]["per_forward"]["tensor_core_flops"] == transformer_flops(IMAGE_TOKENS, TEXT_LEN)
    assert stages["text_encoder"]["per_run"]["tensor_core_flops"] == qwen25_vl_flops(ENCODER_TOKENS)
    assert stages["text_encoder"]["class"] == "Qwen2_5_VLForConditionalGeneration"
    assert stages["vae"]["class"] == "AutoencoderKLQwenImage"
    assert stages["transformer"]["runs"] == 100 and report["workload"]["passes_per_step"] == 2


def test_cli_trace_prints_the_whole_generation(tmp_path: Any) -> None:
    r = CliRunner().invoke(main, ["trace", MODEL, "--run-id", "zoo-qwen-cli", "--output-root", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "6,889 tokens" in r.output and "text_encoder x2, transformer x100, vae x1" in r.output


@pytest.mark.slow  # FlopCounterMode over the full-size meta models (transformer eager; encoder graph; VAE eager)
def test_every_stage_equals_flop_counter(tmp_path: Any) -> None:
    from fxmeter.api import verify

    res = verify(MODEL, run_id="zoo-qwen-verify", output_root=tmp_path)
    assert res.passed
    assert res.end2end["per_forward"]["reference_flops"] == transformer_flops(IMAGE_TOKENS, TEXT_LEN)
    assert [s["name"] for s in res.stages] == ["text_encoder", "vae"]
    for s in res.stages:
        assert s["end2end"]["per_forward"]["rel_err"] == 0.0, s["name"]
    assert res.stages[0]["end2end"]["per_forward"]["reference_flops"] == qwen25_vl_flops(ENCODER_TOKENS)
