"""AuraFlow v0.3 (``fxmeter/model/zoo/auraflow.py``): AuraFlowPipeline's stages, geometry and FLOPs.

Fast lane: the model and its preset are listed, ``fxmeter trace`` runs from the shipped traces, the stage
list is AuraFlowPipeline's (masked Pile-T5-XL for the prompt and the negative prompt, two transformer passes
per step or one of twice the batch with ``--batched-cfg``, the SDXL VAE decode once), the geometry of the
preset, the transformer's and the text encoder's tensor-core FLOPs written out by hand, and the transformer
against FlopCounterMode on the full-size meta model at the preset.  Slow: the text encoder and the VAE
against FlopCounterMode.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from fxmeter.cli.main import main
from fxmeter.model.registry import resolve_model
from fxmeter.model.workload import resolve

MODEL = "auraflow-v0.3"

D = 12 * 256  # num_attention_heads x attention_head_dim = 3072
F = 8192  # AuraFlowFeedForward: find_multiple(int(2 * 4 * 3072 / 3), 256)
REGISTER = 8  # register tokens prepended to the caption


def transformer_flops(n: int, t: int) -> int:
    """Tensor-core FLOPs of one AuraFlowTransformer2DModel forward (v0.3 config) at batch 1.

    ``n`` image tokens, ``t`` caption tokens (the model attends over ``t + 8`` with its register tokens)."""
    c = t + REGISTER
    s = n + c
    ada = 2 * D * 6 * D  # AdaLayerNormZero's linear on the (1, D) timestep embedding
    # joint block: image q, k, v, out + context add_q/k/v, to_add_out (4 d^2 each stream), joint attention
    # (q @ k^T, probs @ v over s tokens), SwiGLU FFN (3 matmuls d x f) per stream, two AdaLN linears
    joint = 2 * (n + c) * 4 * D * D + 4 * s * s * D + 2 * (n + c) * 3 * D * F + 2 * ada
    # single block over the s concatenated tokens: q, k, v, out, attention, SwiGLU FFN, one AdaLN linear
    single = 2 * s * 4 * D * D + 4 * s * s * D + 2 * s * 3 * D * F + ada
    embed = (2 * n * 16 * D  # pos_embed.proj (2x2x4 patch -> D)
             + 2 * 256 * D + 2 * D * D  # time_step_proj
             + 2 * t * 2048 * D  # context_embedder (2048 -> caption_projection_dim 3072)
             + 2 * D * 2 * D  # norm_out.linear
             + 2 * n * D * 16)  # proj_out
    return 4 * joint + 32 * single + embed


def t5_flops(s: int) -> int:
    """Pile-T5-XL encoder at ``s`` tokens: 24 layers, 32 heads x 64, gated FFN 5120."""
    h, inner, ff = 2048, 32 * 64, 5120
    return 24 * (4 * 2 * s * h * inner + 4 * s * s * inner + 3 * 2 * s * h * ff)


def test_listed_with_its_preset() -> None:
    out = CliRunner().invoke(main, ["models"])
    assert out.exit_code == 0, out.output
    line = next(ln for ln in out.output.splitlines() if ln.startswith(MODEL + " "))
    assert "auraflow-1024" in line
    wl = resolve(None, resolve_model(MODEL).default_workload)
    assert (wl.name, wl.frames, wl.height, wl.width, wl.steps, wl.text_len, wl.guidance_scale) == (
        "auraflow-1024", 1, 1024, 1024, 50, 256, 3.5)


def test_geometry_of_the_preset() -> None:
    import torch

    m = resolve_model(MODEL)
    wl = resolve(None, m.default_workload)
    g = m.geometry(wl)
    # 1024 / (VAE 8 x patch 2) = 64 patches a side -> 4096 image tokens; 256 Pile-T5 tokens
    assert (g.tokens, g.latent_shape, g.dims) == (
        4096, (1, 4, 128, 128), {"batch": 1, "patches_h": 64, "patches_w": 64, "text_len": 256})
    assert m.passes_per_step(wl) == 2  # CFG 3.5
    assert m.adapter.supports_dynamic(m.config)
    kw = m.adapter.inputs(m.config, g.dims, torch.bfloat16)
    assert {k: tuple(v.shape) for k, v in kw.items() if hasattr(v, "shape")} == {
        "hidden_states": (1, 4, 128, 128), "encoder_hidden_states": (1, 256, 2048), "timestep": (1,)}
    # the 96 x 96 position-embedding grid (pos_embed_max_size 9216) bounds the image at 1536 px a side
    from fxmeter.errors import WorkloadError

    with pytest.raises(WorkloadError, match="96 x 96"):
        m.geometry(resolve(None, m.default_workload, height=1600, width=1600))


def test_stages_are_auraflow_pipelines() -> None:
    m = resolve_model(MODEL)
    wl = resolve(None, m.default_workload)
    got = [(p.name, p.runs, dict(p.dims) if p.dims else None, p.adapter.name if p.adapter else None)
           for p in m.stages(wl)]
    assert got == [
        ("text_encoder", 2, {"batch": 1, "seq_len": 256}, "t5-masked"),  # prompt + negative prompt, with the mask
        ("transformer", 100, None, None),  # 50 steps x 2 passes
        ("vae", 1, {"batch": 1, "latent_h": 128, "latent_w": 128}, "vae-decode"),
    ]
    assert [m.stage_component(p).config["_class_name"] for p in m.stages(wl)] == [
        "UMT5EncoderModel", "AuraFlowTransformer2DModel", "AutoencoderKL"]
    batched = [(p.name, p.runs) for p in m.stages(wl, batched_cfg=True)]
    assert batched == [("text_encoder", 2), ("transformer", 50), ("vae", 1)]  # as the pipeline runs it
    one = resolve(None, m.default_workload, guidance_scale=1.0)
    assert [(p.name, p.runs) for p in m.stages(one)] == [("text_encoder", 1), ("transformer", 50), ("vae", 1)]


def test_trace_reads_the_shipped_traces_and_counts_by_hand(tmp_path: Any) -> None:
    out = CliRunner().invoke(main, ["trace", MODEL, "--output-root", str(tmp_path), "--run-id", "a", "--json",
                                    "--strict"])
    assert out.exit_code == 0, out.output
    data = json.loads((tmp_path / "a" / "static_analysis" / "auraflow" / "report.json").read_text())
    assert data["trace"]["cache"] == "shipped"
    assert data["totals"]["per_forward"]["tensor_core_flops"] == transformer_flops(4096, 256) == 43_968_102_924_288
    stages = {s["name"]: s for s in data["pipeline"]["stages"]}
    assert stages["text_encoder"]["per_run"]["tensor_core_flops"] == t5_flops(256) == 605_590_388_736
    assert (stages["text_encoder"]["runs"], stages["transformer"]["runs"], stages["vae"]["runs"]) == (2, 100, 1)


def test_transformer_matches_flop_counter_at_the_preset() -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fxmeter.api import request, stage_inputs
    from fxmeter.estimate.evaluate import evaluate
    from fxmeter.model.capture import build_model

    req = request(MODEL, stages="transformer")
    inp = next(i for i in stage_inputs(req) if i.plan.name == "transformer")
    assert inp.source == "shipped"
    ours = evaluate(inp.model, inp.dims, nodes=False)
    net = build_model(req.model.config, "bfloat16")
    kw = req.model.adapter.inputs(req.model.config, dict(inp.dims), torch.bfloat16)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        net(**kw)
    assert ours.total.tensor_core_flops == fc.get_total_flops() == transformer_flops(4096, 256)


@pytest.mark.slow  # FlopCounterMode over Pile-T5-XL (its export graph) and the SDXL VAE decode at the preset
@pytest.mark.parametrize("stage", ["text_encoder", "vae"])
def test_stage_matches_flop_counter_at_the_preset(stage: str) -> None:
    from fxmeter.api import request, stage_inputs
    from fxmeter.estimate.evaluate import evaluate
    from fxmeter.verify.reference import run_stage_reference

    req = request(MODEL, stages=stage)
    inp = next(i for i in stage_inputs(req) if i.plan.name == stage)
    ours = evaluate(inp.model, inp.dims)
    assert ours.unmodeled == (), ours.unmodeled
    comp = req.model.stage_component(inp.plan)
    ref = run_stage_reference(comp, dict(inp.dims), str(inp.model.meta["dtype"]), inp.plan.root)
    assert ours.total.tensor_core_flops == ref.total > 0
    by_id = {m.id: m.total.tensor_core_flops for m in ours.modules}
    for mid, n in ref.modules.items():
        if n and mid in by_id:
            assert by_id[mid] == n, mid
