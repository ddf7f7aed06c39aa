"""Allegro (``fxmeter/model/zoo/allegro.py``): every stage of ``AllegroPipeline`` (diffusers 0.42.1) at its defaults.

Fast lane: the model is listed, its preset and geometry (tokens written out), the stage list as the
pipeline runs it, and ``fxmeter trace allegro`` from the shipped traces.  Slow lane: every stage's
tensor-core FLOPs equal FlopCounterMode on the full-size meta stage.
"""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from fxmeter.cli.main import main
from fxmeter.model.registry import resolve_model
from fxmeter.model.workload import resolve


def _plans(**overrides: Any) -> dict[str, Any]:
    m = resolve_model("allegro")
    wl = resolve(None, m.default_workload, **overrides)
    return {p.name: p for p in m.stages(wl)}


def test_listed_with_its_preset() -> None:
    res = CliRunner().invoke(main, ["models"], catch_exceptions=False)
    assert res.exit_code == 0
    line = next(ln for ln in res.stdout.splitlines() if ln.split()[:1] == ["allegro"])
    assert "allegro-720p" in line
    wl = resolve(None, "allegro-720p")
    # AllegroPipeline.__call__ defaults: 22 x 4 = 88 frames, 90 x 8 = 720 by 160 x 8 = 1280, 100 steps, CFG 7.5, 512 tokens
    assert (wl.frames, wl.height, wl.width, wl.steps, wl.text_len, wl.guidance_scale) == (88, 720, 1280, 100, 512, 7.5)


def test_geometry_written_out() -> None:
    m = resolve_model("allegro")
    g = m.geometry(resolve(None, "allegro-720p"))
    # 88 frames (even) -> ceil(88 / 4) = 22 latent frames; 720 / 8 = 90, 1280 / 8 = 160; patch 1 x 2 x 2:
    # 22 x 45 x 80 = 79,200 tokens
    assert g.latent_shape == (1, 4, 22, 90, 160) and g.tokens == 79200
    # an odd frame count: ceil((89 - 1) / 4) + 1 = 23
    assert m.geometry(resolve(None, "allegro-720p", frames=89)).dims["latent_frames"] == 23


def test_stages_as_the_pipeline_runs_them() -> None:
    p = _plans()
    assert list(p) == ["text_encoder", "transformer", "vae"]
    te, tr, vae = p["text_encoder"], p["transformer"], p["vae"]
    # T5-XXL with its mask, prompt then negative prompt, 512 tokens
    assert (te.runs, te.dims, te.adapter.name) == (2, {"batch": 1, "seq_len": 512}, "t5-masked")
    # 100 steps, CFG concatenated: one forward of 2x the batch per step
    assert (tr.runs, tr.batch_factor) == (100, 2)
    # float32 VAE (the docstring), tiled decode of the 22 x 90 x 160 latent
    assert (vae.runs, vae.dtype, vae.adapter.name) == (1, "float32", "vae-decode-allegro")
    assert vae.dims == {"batch": 1, "latent_frames": 22, "latent_h": 90, "latent_w": 160}
    q = _plans(guidance_scale=1.0)
    assert (q["text_encoder"].runs, q["transformer"].batch_factor) == (1, 1)


def test_trace_from_the_shipped_traces() -> None:
    import fxmeter

    d = fxmeter.trace("allegro").data
    assert d["unmodeled_ops"] == []
    assert d["workload"]["passes_per_step"] == 1  # CFG batched
    stages = {s["name"]: s for s in d["pipeline"]["stages"]}
    assert set(stages) == {"text_encoder", "transformer", "vae"}
    assert all(s["trace"]["cache"] == "shipped" for s in stages.values()), {n: s["trace"]["cache"] for n, s in stages.items()}
    assert stages["vae"]["dtype"] == "float32"


@pytest.mark.slow  # FlopCounterMode over each full-size stage on meta (the 75-tile VAE decode, the 32-block transformer)
@pytest.mark.parametrize("stage", ["text_encoder", "transformer", "vae"])
def test_every_stage_equals_flop_counter(stage: str) -> None:
    from fxmeter.api import request, stage_inputs
    from fxmeter.estimate.evaluate import evaluate
    from fxmeter.verify.reference import run_reference, run_stage_reference

    req = request("allegro", stages=stage)
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
