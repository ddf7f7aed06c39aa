"""LTX-2 (``fxmeter/model/zoo/ltx2.py``): every stage of ``LTX2Pipeline`` (diffusers 0.42.1) at its defaults.

Fast lane: the model is listed, its preset and geometry (tokens written out), the stage list as the
pipeline runs it, the sort rule's arithmetic, and ``fxmeter trace ltx-2`` from the shipped traces.
Slow lane: every stage's tensor-core FLOPs equal FlopCounterMode on the full-size meta stage (the three
transformer passes included: CFG batch, STG, modality isolation).
"""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from fxmeter.cli.main import main
from fxmeter.model.registry import resolve_model
from fxmeter.model.workload import resolve


def _plans(**overrides: Any) -> dict[str, Any]:
    m = resolve_model("ltx-2")
    wl = resolve(None, m.default_workload, **overrides)
    return {p.name: p for p in m.stages(wl)}


def test_listed_with_its_preset() -> None:
    res = CliRunner().invoke(main, ["models"], catch_exceptions=False)
    assert res.exit_code == 0
    line = next(ln for ln in res.stdout.splitlines() if ln.split()[:1] == ["ltx-2"])
    assert "ltx2-512p" in line
    wl = resolve(None, "ltx2-512p")
    # LTX2Pipeline.__call__ defaults: 768x512, 121 frames, 30 steps, guidance 3.0, max_sequence_length 1024
    assert (wl.frames, wl.height, wl.width, wl.steps, wl.text_len, wl.guidance_scale) == (121, 512, 768, 30, 1024, 3.0)


def test_geometry_written_out() -> None:
    m = resolve_model("ltx-2")
    g = m.geometry(resolve(None, "ltx2-512p"))
    # 121 frames -> (121 - 1) / 8 + 1 = 16 latent frames; 512 / 32 = 16, 768 / 32 = 24: 16 x 16 x 24 = 6,144 video tokens
    assert g.latent_shape == (1, 128, 16, 16, 24) and g.tokens == 6144
    # audio: round(121 / 24 s x 16000 / 160 / 4) = round(126.04) = 126 latent frames (audio tokens)
    assert g.dims == {"batch": 1, "latent_frames": 16, "latent_h": 16, "latent_w": 24, "audio_frames": 126,
                      "text_len": 1024}


def test_stages_as_the_pipeline_runs_them() -> None:
    p = _plans()
    assert list(p) == ["text_encoder", "connectors", "transformer", "transformer_stg", "transformer_modality",
                       "vae", "audio_vae", "vocoder"]
    te, conn = p["text_encoder"], p["connectors"]
    # Gemma 3 on the prompt, then on the negative prompt (encode_prompt: two calls of the batch), 1024 tokens
    assert (te.runs, te.dims, te.adapter.name) == (2, {"batch": 1, "seq_len": 1024}, "gemma3-ltx2")
    # the connectors run once on [negative, positive] concatenated
    assert (conn.runs, conn.dims) == (1, {"batch": 2, "seq_len": 1024})
    # 30 steps: the CFG forward at 2x the batch, the STG forward and the modality-isolation forward at 1x
    t, stg, mod = p["transformer"], p["transformer_stg"], p["transformer_modality"]
    assert [(s.runs, s.batch_factor, s.component) for s in (t, stg, mod)] == [(30, 2, "transformer"), (30, 1, "transformer"),
                                                                              (30, 1, "transformer")]
    assert (stg.adapter.name, mod.adapter.name) == ("ltx2-stg", "ltx2-modality")
    assert p["vae"].dims == {"batch": 1, "latent_frames": 16, "latent_h": 16, "latent_w": 24}
    # audio VAE: 126 latent frames -> 4 x 126 - 3 = 501 mel frames for the vocoder
    assert p["audio_vae"].dims == {"batch": 1, "audio_frames": 126}
    assert p["vocoder"].dims == {"batch": 1, "mel_frames": 501}
    assert [p[n].component for n in ("vae", "audio_vae", "vocoder")] == ["vae", "audio_vae", "vocoder"]


def test_without_cfg_one_text_call_and_one_batch_forward() -> None:
    p = _plans(guidance_scale=1.0)
    assert (p["text_encoder"].runs, p["connectors"].dims["batch"]) == (1, 1)
    assert (p["transformer"].runs, p["transformer"].batch_factor) == (30, 1)
    assert p["transformer_stg"].runs == p["transformer_modality"].runs == 30


def test_pass_inputs_are_the_pipeline_calls() -> None:
    import torch

    m = resolve_model("ltx-2")
    p = _plans()
    dims = m.stage_dims(p["transformer"], m.geometry(resolve(None, "ltx2-512p")))
    assert dims["batch"] == 2
    kw = m.stage_component(p["transformer"]).adapter.inputs(dict(m.config), dims, torch.bfloat16)
    assert tuple(kw["hidden_states"].shape) == (2, 6144, 128) and tuple(kw["audio_hidden_states"].shape) == (2, 126, 128)
    assert tuple(kw["video_coords"].shape) == (2, 3, 6144, 2) and kw["use_cross_timestep"] is True
    stg = m.stage_component(p["transformer_stg"]).adapter.inputs(dict(m.config), dims, torch.bfloat16)
    mod = m.stage_component(p["transformer_modality"]).adapter.inputs(dict(m.config), dims, torch.bfloat16)
    assert (kw["spatio_temporal_guidance_blocks"], kw["isolate_modalities"]) == (None, False)
    assert (stg["spatio_temporal_guidance_blocks"], stg["isolate_modalities"]) == ([28], False)
    assert (mod["spatio_temporal_guidance_blocks"], mod["isolate_modalities"]) == (None, True)


def test_sort_rule_arithmetic() -> None:
    from fxmeter.rules import REGISTRY, OpCall, TensorMeta

    x = TensorMeta((2, 1024), "int64", 8)
    call = OpCall("aten.argsort.stable", (x,), {"stable": True, "dim": 1}, (TensorMeta((2, 1024), "int64", 8),))
    cost = REGISTRY["aten.argsort.stable"].fn(call)
    assert cost is not None
    # 2 rows of 1024: 1024 x ceil(log2 1024) = 10 comparisons per element; int64 in and out: 16 KiB each
    assert (cost.tensor_core_flops, cost.cuda_core_flops, cost.bytes_read, cost.bytes_written) == (0, 2 * 1024 * 10, 16384, 16384)


def test_trace_from_the_shipped_traces() -> None:
    import fxmeter

    rep = fxmeter.trace("ltx-2")
    d = rep.data
    assert d["unmodeled_ops"] == []
    assert d["workload"]["passes_per_step"] == 3  # CFG batched + STG + modality
    stages = {s["name"]: s for s in d["pipeline"]["stages"]}
    assert set(stages) == {"text_encoder", "connectors", "transformer", "transformer_stg", "transformer_modality",
                           "vae", "audio_vae", "vocoder"}
    assert all(s["trace"]["cache"] == "shipped" for s in stages.values()), {n: s["trace"]["cache"] for n, s in stages.items()}
    # the STG pass is a plain forward (perturbed_attn False); the modality pass drops the a<->v cross-attention
    one = stages["transformer_stg"]["per_run"]["tensor_core_flops"]
    assert stages["transformer"]["per_run"]["tensor_core_flops"] == 2 * one
    assert stages["transformer_modality"]["per_run"]["tensor_core_flops"] < one


def _stage_names() -> list[str]:
    return ["text_encoder", "connectors", "transformer", "transformer_stg", "transformer_modality", "vae", "audio_vae",
            "vocoder"]


@pytest.mark.slow  # FlopCounterMode over each full-size stage on meta (Gemma 3 12B, the 48-block transformer)
@pytest.mark.parametrize("stage", _stage_names())
def test_every_stage_equals_flop_counter(stage: str) -> None:
    from fxmeter.api import request, stage_inputs
    from fxmeter.estimate.evaluate import evaluate
    from fxmeter.verify.reference import run_reference, run_stage_reference

    req = request("ltx-2", stages=stage)
    inp = next(i for i in stage_inputs(req) if i.plan.name == stage)
    ours = evaluate(inp.model, inp.dims)
    assert ours.unmodeled == (), ours.unmodeled
    comp = req.model.stage_component(inp.plan)
    dtype = str(inp.model.meta["dtype"])
    if inp.plan.denoiser:
        ref = run_reference(comp, dict(inp.dims), dtype, "meta")
    else:
        ref = run_stage_reference(comp, dict(inp.dims), dtype, inp.plan.root)
    assert ours.total.tensor_core_flops == ref.total > 0
