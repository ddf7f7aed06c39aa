"""FLUX.2-dev and FLUX.2-klein-4B (``fxmeter/model/zoo/flux2.py``): their pipelines' stages, geometry and FLOPs.

Fast lane: the model and its preset are listed, ``fxmeter trace`` runs from the shipped traces, the
stage list is Flux2Pipeline's (Mistral3 once, the transformer once per step, the VAE decode once), the
geometry of the preset, the transformer's and the text encoder's tensor-core FLOPs written out by hand
(evaluated from the shipped traces), and the transformer against FlopCounterMode on the full-size meta
model at a small workload; the same for FLUX.2-klein-4B (Flux2KleinPipeline: Qwen3-4B, no guidance input,
CFG only for an undistilled config).  Slow: every stage against FlopCounterMode at the preset.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from fxmeter.cli.main import main
from fxmeter.model.registry import resolve_model
from fxmeter.model.workload import resolve

MODEL = "flux.2-dev"

# Flux2Transformer2DModel as convert_flux2_to_diffusers.py configures FLUX.2-dev:
D = 48 * 128  # num_attention_heads x attention_head_dim = 6144
INNER = 3 * D  # mlp_ratio 3.0: the SwiGLU FFN's inner width 18432 (linear_in makes 2 x 18432)
IN, JOINT, TGC = 128, 15360, 256  # in_channels, joint_attention_dim, timestep_guidance_channels


def transformer_flops(n: int, t: int) -> int:
    """Tensor-core FLOPs of one forward at batch 1, ``n`` image and ``t`` text tokens (2 per multiply-add)."""
    seq = n + t  # joint attention over text + image tokens

    def stream(m: int) -> int:  # q, k, v, out projections and the SwiGLU FFN of one stream of a double block
        return 4 * 2 * m * D * D + 2 * m * D * 2 * INNER + 2 * m * INNER * D

    attention = 4 * seq * seq * D  # q @ k^T and probs @ v, 48 heads x 128
    double = stream(n) + stream(t) + attention
    single = 2 * seq * D * (3 * D + 2 * INNER) + 2 * seq * (D + INNER) * D + attention  # fused qkv+mlp in, out
    embed = 2 * n * IN * D + 2 * t * JOINT * D  # x_embedder, context_embedder
    temb = 2 * (2 * TGC * D + 2 * D * D)  # timestep and guidance embedders (256 -> D -> D)
    modulation = 2 * D * 6 * D * 2 + 2 * D * 3 * D  # double img/txt (2 sets of shift/scale/gate), single (1)
    head = 2 * D * 2 * D + 2 * n * D * IN  # norm_out's AdaLN linear, proj_out
    return 8 * double + 48 * single + embed + temb + modulation + head


def mistral_flops(s: int) -> int:
    """Mistral-Small-3 24B at ``s`` tokens: 40 layers (32 q heads, 8 kv heads x 128; SwiGLU 32768) + LM head."""
    h, q, kv, ffn, vocab = 5120, 32 * 128, 8 * 128, 32768, 131072
    layer = 2 * s * h * q + 2 * 2 * s * h * kv + 2 * s * q * h + 3 * 2 * s * h * ffn + 4 * s * s * q
    return 40 * layer + 2 * s * h * vocab  # logits_to_keep=0: the LM head runs on every position


def test_listed_with_its_preset() -> None:
    out = CliRunner().invoke(main, ["models"])
    assert out.exit_code == 0, out.output
    line = next(ln for ln in out.output.splitlines() if ln.startswith(MODEL + " "))
    assert "flux2-1024" in line
    wl = resolve(None, resolve_model(MODEL).default_workload)
    assert (wl.name, wl.frames, wl.height, wl.width, wl.steps, wl.text_len, wl.guidance_scale) == (
        "flux2-1024", 1, 1024, 1024, 50, 512, 4.0)
    out = CliRunner().invoke(main, ["workloads"])
    assert "flux2-1024" in out.output


def test_geometry_of_the_preset() -> None:
    m = resolve_model(MODEL)
    g = m.geometry(resolve(None, m.default_workload))
    # 1024 / (VAE 8 x 2x2 patchify) = 64 -> 64 x 64 = 4096 tokens of 128 features; 512 Mistral tokens
    assert (g.tokens, g.latent_shape, g.dims) == (4096, (1, 4096, 128),
                                                   {"batch": 1, "image_tokens": 4096, "text_len": 512})
    assert m.passes_per_step(resolve(None, m.default_workload)) == 1  # guidance-distilled


def test_stages_are_flux2_pipelines() -> None:
    m = resolve_model(MODEL)
    wl = resolve(None, m.default_workload)
    got = [(p.name, p.component, p.runs, dict(p.dims) if p.dims else None, p.dtype) for p in m.stages(wl)]
    assert got == [
        ("text_encoder", "text_encoder", 1, {"batch": 1, "seq_len": 512}, None),  # one call: no negative prompt
        ("transformer", "transformer", 50, None, None),
        ("vae", "vae", 1, {"batch": 1, "latent_h": 128, "latent_w": 128}, None),  # (1, 32, 128, 128)
    ]
    assert [m.stage_component(p).config["_class_name"] for p in m.stages(wl)] == [
        "Mistral3ForConditionalGeneration", "Flux2Transformer2DModel", "AutoencoderKLFlux2"]


def test_trace_reads_the_shipped_traces_and_counts_by_hand(tmp_path: Any) -> None:
    out = CliRunner().invoke(main, ["trace", MODEL, "--output-root", str(tmp_path), "--run-id", "f2", "--json",
                                    "--strict"])
    assert out.exit_code == 0, out.output
    data = json.loads((tmp_path / "f2" / "static_analysis" / "flux_2" / "report.json").read_text())
    assert data["trace"]["cache"] == "shipped"
    assert data["totals"]["per_forward"]["tensor_core_flops"] == transformer_flops(4096, 512) == 282_599_551_401_984
    stages = {s["name"]: s for s in data["pipeline"]["stages"]}
    assert set(stages) == {"text_encoder", "transformer", "vae"}
    te = stages["text_encoder"]
    assert te["per_run"]["tensor_core_flops"] == mistral_flops(512) == 23_622_320_128_000
    assert stages["vae"]["runs"] == 1


def test_transformer_matches_flop_counter_at_a_small_workload() -> None:
    """The full-size transformer on meta under FlopCounterMode at 256 x 192 (192 tokens), 16 text tokens."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fxmeter.api import request, stage_inputs
    from fxmeter.estimate.evaluate import evaluate
    from fxmeter.model.capture import build_model

    req = request(MODEL, stages="transformer", height=256, width=192, text_len=16)
    inp = next(i for i in stage_inputs(req) if i.plan.name == "transformer")
    assert inp.source == "shipped" and dict(inp.dims) == {"batch": 1, "image_tokens": 192, "text_len": 16}
    ours = evaluate(inp.model, inp.dims, nodes=False)
    net = build_model(req.model.config, "bfloat16")
    kw = req.model.adapter.inputs(req.model.config, dict(inp.dims), torch.bfloat16)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        net(**kw)
    assert ours.total.tensor_core_flops == fc.get_total_flops() == transformer_flops(192, 16)


@pytest.mark.slow  # FlopCounterMode over each full stage at the preset (Mistral 24B through its export graph)
@pytest.mark.parametrize("stage", ["text_encoder", "transformer", "vae"])
def test_every_stage_matches_flop_counter_at_the_preset(stage: str) -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fxmeter.api import request, stage_inputs
    from fxmeter.estimate.evaluate import evaluate
    from fxmeter.model.capture import build_model
    from fxmeter.verify.reference import run_stage_reference

    req = request(MODEL, stages=stage)
    inp = next(i for i in stage_inputs(req) if i.plan.name == stage)
    ours = evaluate(inp.model, inp.dims)
    assert ours.unmodeled == (), ours.unmodeled
    if stage == "transformer":
        net = build_model(req.model.config, "bfloat16")
        kw = req.model.adapter.inputs(req.model.config, dict(inp.dims), torch.bfloat16)
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            net(**kw)
        assert ours.total.tensor_core_flops == fc.get_total_flops() == transformer_flops(4096, 512)
        return
    comp = req.model.stage_component(inp.plan)
    ref = run_stage_reference(comp, dict(inp.dims), str(inp.model.meta["dtype"]), inp.plan.root)
    assert ours.total.tensor_core_flops == ref.total > 0
    by_id = {m.id: m.total.tensor_core_flops for m in ours.modules}
    for mid, n in ref.modules.items():
        if n and mid in by_id:
            assert by_id[mid] == n, mid


# -- FLUX.2-klein-4B: Flux2KleinPipeline, Qwen3-4B, no guidance embedder, step-distilled -------------------------------
KLEIN = "flux.2-klein-4b"


def klein_transformer_flops(n: int, t: int) -> int:
    """FLUX.2-klein-4B (convert_flux2_to_diffusers.py ``klein-4b``): 24 heads x 128 = 3072, 5 double + 20 single
    blocks, joint_attention_dim 7680 (3 x Qwen3-4B's 2560), no guidance embedder."""
    d, inner, seq = 24 * 128, 3 * 24 * 128, n + t

    def stream(m: int) -> int:
        return 4 * 2 * m * d * d + 2 * m * d * 2 * inner + 2 * m * inner * d

    attention = 4 * seq * seq * d
    double = stream(n) + stream(t) + attention
    single = 2 * seq * d * (3 * d + 2 * inner) + 2 * seq * (d + inner) * d + attention
    embed = 2 * n * IN * d + 2 * t * 7680 * d
    temb = 2 * TGC * d + 2 * d * d  # the timestep embedder only
    modulation = 2 * d * 6 * d * 2 + 2 * d * 3 * d
    head = 2 * d * 2 * d + 2 * n * d * IN
    return 5 * double + 20 * single + embed + temb + modulation + head


def qwen3_4b_flops(s: int) -> int:
    """Qwen3-4B (Qwen3ForCausalLM) at ``s`` tokens: 36 layers, 32 q / 8 kv heads x 128, SwiGLU 9728, LM head."""
    h, q, kv, ffn, vocab = 2560, 32 * 128, 8 * 128, 9728, 151936
    layer = 2 * s * h * q + 2 * 2 * s * h * kv + 2 * s * q * h + 3 * 2 * s * h * ffn + 4 * s * s * q
    return 36 * layer + 2 * s * h * vocab


def test_klein_stages_geometry_and_counts(tmp_path: Any) -> None:
    import torch

    m = resolve_model(KLEIN)
    wl = resolve(None, m.default_workload)
    assert (wl.name, wl.height, wl.width, wl.steps, wl.text_len, wl.guidance_scale) == (
        "flux2-klein-1024", 1024, 1024, 4, 512, 1.0)
    assert m.geometry(wl).dims == {"batch": 1, "image_tokens": 4096, "text_len": 512}
    assert [(p.name, p.runs, m.stage_component(p).config["_class_name"]) for p in m.stages(wl)] == [
        ("text_encoder", 1, "Qwen3ForCausalLM"), ("transformer", 4, "Flux2Transformer2DModel"),
        ("vae", 1, "AutoencoderKLFlux2")]
    # no guidance input (guidance=None), int64 4-D position ids
    kw = m.adapter.inputs(m.config, m.geometry(wl).dims, torch.bfloat16)
    assert "guidance" not in kw and tuple(kw["img_ids"].shape) == (1, 4096, 4)
    # is_distilled: guidance_scale > 1 still one pass and one text-encoder call; the undistilled base model: CFG
    cfg = resolve(None, m.default_workload, guidance_scale=4.0)
    assert m.passes_per_step(cfg) == 1
    base = {**m.config, "_pipeline": {"class": "Flux2KleinPipeline", "is_distilled": False}}
    assert m.adapter.passes_per_step(base, cfg) == 2
    assert [(p.name, p.runs) for p in m.adapter.pipeline_stages(base, cfg, m.geometry(cfg))[0]] == [("text_encoder", 2)]

    out = CliRunner().invoke(main, ["trace", KLEIN, "--output-root", str(tmp_path), "--run-id", "k", "--strict"])
    assert out.exit_code == 0, out.output
    data = json.loads((tmp_path / "k" / "static_analysis" / "flux_2_klein" / "report.json").read_text())
    assert data["trace"]["cache"] == "shipped"
    assert data["totals"]["per_forward"]["tensor_core_flops"] == klein_transformer_flops(4096, 512)
    stages = {s["name"]: s for s in data["pipeline"]["stages"]}
    assert stages["text_encoder"]["per_run"]["tensor_core_flops"] == qwen3_4b_flops(512) == 4_273_425_350_656


def test_klein_transformer_matches_flop_counter_at_a_small_workload() -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fxmeter.api import request, stage_inputs
    from fxmeter.estimate.evaluate import evaluate
    from fxmeter.model.capture import build_model

    req = request(KLEIN, stages="transformer", height=256, width=192, text_len=16)
    inp = next(i for i in stage_inputs(req) if i.plan.name == "transformer")
    assert inp.source == "shipped"
    ours = evaluate(inp.model, inp.dims, nodes=False)
    net = build_model(req.model.config, "bfloat16")
    kw = req.model.adapter.inputs(req.model.config, dict(inp.dims), torch.bfloat16)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        net(**kw)
    assert ours.total.tensor_core_flops == fc.get_total_flops() == klein_transformer_flops(192, 16)


@pytest.mark.slow  # FlopCounterMode over Qwen3-4B's export graph and the full transformer at the preset
@pytest.mark.parametrize("stage", ["text_encoder", "transformer"])
def test_klein_stage_matches_flop_counter_at_the_preset(stage: str) -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fxmeter.api import request, stage_inputs
    from fxmeter.estimate.evaluate import evaluate
    from fxmeter.model.capture import build_model
    from fxmeter.verify.reference import run_stage_reference

    req = request(KLEIN, stages=stage)
    inp = next(i for i in stage_inputs(req) if i.plan.name == stage)
    ours = evaluate(inp.model, inp.dims)
    assert ours.unmodeled == (), ours.unmodeled
    if stage == "transformer":
        net = build_model(req.model.config, "bfloat16")
        kw = req.model.adapter.inputs(req.model.config, dict(inp.dims), torch.bfloat16)
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            net(**kw)
        assert ours.total.tensor_core_flops == fc.get_total_flops() == klein_transformer_flops(4096, 512)
        return
    comp = req.model.stage_component(inp.plan)
    ref = run_stage_reference(comp, dict(inp.dims), str(inp.model.meta["dtype"]), inp.plan.root)
    assert ours.total.tensor_core_flops == ref.total == qwen3_4b_flops(512)
