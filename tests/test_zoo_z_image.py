"""Z-Image-Turbo (``fxmeter/model/zoo/z_image.py``): ZImagePipeline's three stages, from the shipped traces.

Independent references: the FLOPs of each stage written out by hand (the single-stream blocks over the
image and text tokens each padded to a multiple of 32, the two refiner pairs; Qwen3-4B's 36 layers at
the padded 512 tokens), the published 6B size, the two rules this model added, and, in the slow lane,
FlopCounterMode on the full-size meta models at the default workload (``fxmeter verify``: every stage).
"""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

import fxmeter
from fxmeter import rules
from fxmeter.cli.main import main
from fxmeter.model.registry import resolve_model
from fxmeter.model.workload import resolve
from fxmeter.rules import OpCall, TensorMeta

MODEL = "z-image-turbo"
IMAGE_TOKENS = 64 * 64  # 1024 / 8 (VAE) / 2 (2x2 patches) = 64 -> 4,096 (a multiple of 32 already)
TEXT_LEN = 512  # max_sequence_length: the encoder's padded length and the most the transformer sees
LATENT = 128  # 1024 / 8

D, FFN = 3840, 10240  # dim, int(dim / 3 * 8)


def _pad32(n: int) -> int:
    return n + (-n) % 32


def z_image_flops(n: int, t: int) -> int:
    """Tensor-core FLOPs of one ZImageTransformer2DModel forward, batch 1, by hand (2 per MAC)."""
    ni, nc = _pad32(n), _pad32(t)
    s = ni + nc
    mod = 2 * 256 * 4 * D  # adaLN_modulation Linear(256, 4d) on the timestep embedding

    def block(k: int) -> int:  # q, k, v, out (d x d each), attention over k tokens, SwiGLU w1/w3/w2
        return 8 * k * D * D + 4 * k * k * D + 6 * k * D * FFN

    return (2 * (mod + block(ni))  # noise_refiner: the image tokens
            + 2 * block(nc)  # context_refiner: the text tokens, no modulation
            + 30 * (mod + block(s))  # the main layers over image + text
            + 2 * 256 * 1024 + 2 * 1024 * 256  # t_embedder 256 -> 1024 -> 256
            + 2 * nc * 2560 * D + 2 * ni * 64 * D  # cap_embedder, x_embedder (2x2x16 = 64 features)
            + 2 * 256 * D + 2 * s * D * 64)  # final layer: adaLN Linear(256, d), Linear(d, 64)


def qwen3_4b_flops(n: int) -> int:
    """Qwen3-4B (Qwen3Model, no lm_head) on n tokens: q 2560 -> 4096, k/v -> 1024, o 4096 -> 2560, SwiGLU 9728,
    attention 32 heads x 128; 36 layers."""
    layer = 2 * n * (2 * 2560 * 4096 + 2 * 2560 * 1024 + 3 * 2560 * 9728) + 4 * n * n * 4096
    return 36 * layer


@pytest.fixture(scope="module")
def report() -> Any:
    return fxmeter.trace(MODEL, run_id="zoo-z-image")


def test_listed_with_its_preset() -> None:
    out = CliRunner().invoke(main, ["models"]).output
    assert MODEL in out and "z-image-turbo-1024" in out
    rm = resolve_model(MODEL)
    assert rm.diffusers_class == "ZImageTransformer2DModel" and rm.default_workload == "z-image-turbo-1024"
    wl = resolve(None, rm.default_workload)
    assert (wl.height, wl.width, wl.steps, wl.text_len, wl.guidance_scale) == (1024, 1024, 8, 512, 0.0)


def test_geometry_written_out() -> None:
    rm = resolve_model(MODEL)
    g = rm.geometry(resolve(None, "z-image-turbo-1024"))
    assert g.tokens == IMAGE_TOKENS == 4096
    assert g.dims == {"batch": 1, "image_tokens": 4096, "latent_h": LATENT, "latent_w": LATENT, "text_len": 512}
    assert g.latent_shape == (1, 16, 1, LATENT, LATENT)
    # a prompt of 20 tokens is padded to 32 inside the model; 1000 x 1000 px is not a multiple of 16
    g20 = rm.geometry(resolve(None, "z-image-turbo-1024", text_len=20))
    assert any("20 text tokens to 32" in n for n in g20.notes)
    with pytest.raises(Exception, match="divisible by 16"):
        rm.geometry(resolve(None, "z-image-turbo-1024", height=1000))


def test_stages_are_the_pipelines() -> None:
    rm = resolve_model(MODEL)
    plans = rm.stages(resolve(None, "z-image-turbo-1024"))
    assert [(p.name, p.runs) for p in plans] == [("text_encoder", 1), ("transformer", 8), ("vae", 1)]
    assert plans[0].dims == {"batch": 1, "seq_len": 512}  # padded to max_sequence_length whatever text_len is
    assert plans[2].dims == {"batch": 1, "latent_h": LATENT, "latent_w": LATENT}
    # CFG is on for any guidance_scale > 0 (ZImagePipeline.do_classifier_free_guidance), not only > 1
    cfg = rm.stages(resolve(None, "z-image-turbo-1024", guidance_scale=0.5, text_len=64))
    assert [(p.name, p.runs) for p in cfg] == [("text_encoder", 2), ("transformer", 16), ("vae", 1)]
    assert cfg[0].dims == {"batch": 1, "seq_len": 512}


def test_trace_from_shipped_traces_counts_by_hand(report: Any) -> None:
    assert report["unmodeled_ops"] == []
    stages = {s["name"]: s for s in report["pipeline"]["stages"]}
    assert {s["trace"]["cache"] for s in stages.values()} <= {"shipped", "cache"}
    assert report["trace"]["mode"] == "static"
    assert abs(report["model"]["parameters"] / 6.15e9 - 1) < 0.01  # "6B"
    assert report["totals"]["per_forward"]["tensor_core_flops"] == z_image_flops(IMAGE_TOKENS, TEXT_LEN)
    assert stages["text_encoder"]["per_run"]["tensor_core_flops"] == qwen3_4b_flops(512)
    assert [stages[n]["class"] for n in ("text_encoder", "transformer", "vae")] == [
        "Qwen3Model", "ZImageTransformer2DModel", "AutoencoderKL"]
    assert report["workload"]["passes_per_step"] == 1


def test_cli_trace_prints_the_whole_generation(tmp_path: Any) -> None:
    r = CliRunner().invoke(main, ["trace", MODEL, "--run-id", "zoo-z-cli", "--output-root", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "4,096 tokens" in r.output and "text_encoder x1, transformer x8, vae x1" in r.output


def _rule(target: str, args: tuple[Any, ...], out: TensorMeta) -> Any:
    rule = rules.lookup(target)
    assert rule is not None, target
    return rule.fn(OpCall(target, args, {}, (out,)))


def test_polar_rule() -> None:
    """polar(abs, angle): cos, sin and 2 multiplies per complex element; 1536 x 16 float32 in, complex64 out."""
    a = TensorMeta((1536, 16), "float32", 4)
    out = TensorMeta((1536, 16), "complex64", 8)
    c = _rule("aten.polar.default", (a, a), out)
    assert (c.tensor_core_flops, c.cuda_core_flops) == (0, 4 * 1536 * 16)
    assert (c.bytes_read, c.bytes_written) == (2 * 1536 * 16 * 4, 1536 * 16 * 8)


def test_pad_sequence_rule() -> None:
    """pad_sequence of two (4096, 3840) bf16 sequences: a copy, 0 FLOPs."""
    x = TensorMeta((4096, 3840), "bfloat16", 2)
    out = TensorMeta((2, 4096, 3840), "bfloat16", 2)
    c = _rule("aten.pad_sequence.default", ((x, x), True, 0.0), out)
    assert (c.tensor_core_flops, c.cuda_core_flops) == (0, 0)
    assert (c.bytes_read, c.bytes_written) == (2 * 4096 * 3840 * 2, 2 * 4096 * 3840 * 2)


@pytest.mark.slow  # FlopCounterMode over the full-size meta models (transformer eager; encoder graph; VAE eager)
def test_every_stage_equals_flop_counter(tmp_path: Any) -> None:
    from fxmeter.api import verify

    res = verify(MODEL, run_id="zoo-z-verify", output_root=tmp_path)
    assert res.passed
    assert res.end2end["per_forward"]["reference_flops"] == z_image_flops(IMAGE_TOKENS, TEXT_LEN)
    assert [s["name"] for s in res.stages] == ["text_encoder", "vae"]
    for s in res.stages:
        assert s["end2end"]["per_forward"]["rel_err"] == 0.0, s["name"]
    assert res.stages[0]["end2end"]["per_forward"]["reference_flops"] == qwen3_4b_flops(512)
