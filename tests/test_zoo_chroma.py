"""Chroma (``fxmeter/model/zoo/chroma.py``): ChromaPipeline's stages, geometry and FLOPs.

Fast lane: the model and its preset are listed, ``fxmeter trace`` runs from the shipped traces (the
transformer's is static: the preset's), the stage list is ChromaPipeline's (masked T5 for the prompt and
the negative prompt, two transformer passes per step, the FLUX.1 VAE decode once), the geometry of the
preset, the transformer's and the text encoder's tensor-core FLOPs written out by hand, and the
transformer against FlopCounterMode on the full-size meta model at the preset.  Slow: the text encoder and
the VAE against FlopCounterMode.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from fxmeter.cli.main import main
from fxmeter.model.registry import resolve_model
from fxmeter.model.workload import resolve

MODEL = "chroma"

D = 24 * 128  # num_attention_heads x attention_head_dim = 3072
APPROX_POSITIONS = 3 * 38 + 12 * 19 + 2  # the approximator's rows: one per modulation vector (344)
APPROX_HIDDEN, APPROX_IN, APPROX_LAYERS = 5120, 64, 5


def transformer_flops(n: int, t: int) -> int:
    """Tensor-core FLOPs of one forward of ChromaTransformer2DModel (class defaults) at batch 1."""
    seq = n + t
    # double block: q, k, v, out (4 d^2) and the GELU FFN 4d (8 d^2) per stream, both streams over seq tokens;
    # single block: q, k, v (3 d^2) + proj_mlp (4 d^2) + proj_out from 5d (5 d^2), over seq tokens: the same
    block = 2 * seq * 12 * D * D + 4 * seq * seq * D  # + joint attention (q @ k^T and probs @ v)
    approximator = (2 * APPROX_POSITIONS * APPROX_IN * APPROX_HIDDEN  # in_proj
                    + APPROX_LAYERS * 2 * 2 * APPROX_POSITIONS * APPROX_HIDDEN ** 2  # 5 x (linear_1, linear_2)
                    + 2 * APPROX_POSITIONS * APPROX_HIDDEN * D)  # out_proj
    embed = 2 * n * 64 * D + 2 * t * 4096 * D + 2 * n * D * 64  # x_embedder, context_embedder, proj_out
    return (19 + 38) * block + approximator + embed


def t5_flops(s: int) -> int:
    """T5-v1.1-XXL encoder at ``s`` tokens: 24 layers, 64 heads x 64, gated-GELU FFN 10240."""
    h, inner, ff = 4096, 64 * 64, 10240
    return 24 * (4 * 2 * s * h * inner + 4 * s * s * inner + 3 * 2 * s * h * ff)


def test_listed_with_its_preset() -> None:
    out = CliRunner().invoke(main, ["models"])
    assert out.exit_code == 0, out.output
    line = next(ln for ln in out.output.splitlines() if ln.startswith(MODEL + " "))
    assert "chroma-1024" in line
    wl = resolve(None, resolve_model(MODEL).default_workload)
    assert (wl.name, wl.frames, wl.height, wl.width, wl.steps, wl.text_len, wl.guidance_scale) == (
        "chroma-1024", 1, 1024, 1024, 35, 512, 5.0)


def test_geometry_of_the_preset() -> None:
    import torch

    m = resolve_model(MODEL)
    wl = resolve(None, m.default_workload)
    g = m.geometry(wl)
    # 1024 / (VAE 8 x 2x2 packing) = 64 -> 4096 tokens of 64 features; 512 T5 tokens
    assert (g.tokens, g.latent_shape, g.dims) == (4096, (1, 4096, 64),
                                                   {"batch": 1, "image_tokens": 4096, "text_len": 512})
    assert m.passes_per_step(wl) == 2  # CFG 5.0
    assert not m.adapter.supports_dynamic(m.config)  # attention_mask is text_len + image_tokens long
    kw = m.adapter.inputs(m.config, g.dims, torch.bfloat16)
    assert tuple(kw["attention_mask"].shape) == (1, 512 + 4096)


def test_stages_are_chroma_pipelines() -> None:
    m = resolve_model(MODEL)
    wl = resolve(None, m.default_workload)
    got = [(p.name, p.runs, dict(p.dims) if p.dims else None, p.adapter.name if p.adapter else None)
           for p in m.stages(wl)]
    assert got == [
        ("text_encoder", 2, {"batch": 1, "seq_len": 512}, "t5-masked"),  # prompt + negative prompt, with the mask
        ("transformer", 70, None, None),  # 35 steps x 2 passes
        ("vae", 1, {"batch": 1, "latent_h": 128, "latent_w": 128}, "vae-decode"),
    ]
    assert [m.stage_component(p).config["_class_name"] for p in m.stages(wl)] == [
        "T5EncoderModel", "ChromaTransformer2DModel", "AutoencoderKL"]
    one = resolve(None, m.default_workload, guidance_scale=1.0)
    assert [(p.name, p.runs) for p in m.stages(one)] == [("text_encoder", 1), ("transformer", 35), ("vae", 1)]


def test_trace_reads_the_shipped_traces_and_counts_by_hand(tmp_path: Any) -> None:
    out = CliRunner().invoke(main, ["trace", MODEL, "--output-root", str(tmp_path), "--run-id", "c", "--json",
                                    "--strict"])
    assert out.exit_code == 0, out.output
    data = json.loads((tmp_path / "c" / "static_analysis" / "chroma" / "report.json").read_text())
    assert data["trace"]["cache"] == "shipped"
    assert data["totals"]["per_forward"]["tensor_core_flops"] == transformer_flops(4096, 512) == 74_569_497_968_640
    stages = {s["name"]: s for s in data["pipeline"]["stages"]}
    assert stages["text_encoder"]["per_run"]["tensor_core_flops"] == t5_flops(512) == 4_844_723_109_888
    assert (stages["text_encoder"]["runs"], stages["transformer"]["runs"], stages["vae"]["runs"]) == (2, 70, 1)


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
    assert ours.total.tensor_core_flops == fc.get_total_flops() == transformer_flops(4096, 512)


@pytest.mark.slow  # FlopCounterMode over the full T5-XXL (its export graph) and the VAE decode at the preset
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
