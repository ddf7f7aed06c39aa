"""ChronoEdit-14B (``fxmeter/model/zoo/chronoedit.py``): ChronoEditTransformer3DModel in ChronoEditPipeline.

The registry lists the model with its preset (the pipeline's ``__call__`` defaults, read from diffusers' source, at
the 5 frames it forces without temporal reasoning), the stages are the pipeline's calls (UMT5 twice, the CLIP image
encoder, the VAE encode of the 5-frame condition video, 100 transformer forwards, one decode), the geometry is
written out, the shipped traces report without tracing and count what a hand formula of the Wan2.1-I2V-14B
architecture counts, the traced forward is the two-latent-frame RoPE branch, and in the slow lane every full-size
stage equals FlopCounterMode (``fxmeter verify``).
"""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fxmeter.cli.main import main
from fxmeter.model.registry import resolve_model
from fxmeter.model.workload import resolve

MID = "chronoedit-14b"
PRESET = "chronoedit-480p"
# 5 frames -> (5 - 1) / 4 + 1 = 2 latent frames; 480 x 832 / 8 = 60 x 104 latent; patch (1, 2, 2) -> 30 x 52
TOKENS = 2 * 30 * 52  # 3,120
D, F = 40 * 128, 13824  # hidden, ffn_dim
TEXT, IMAGE = 512, 257  # UMT5 tokens (always 512 in I2V), CLIP ViT-H/14 image tokens


def transformer_flops(n: int) -> int:
    """Tensor-core FLOPs of one ChronoEditTransformer3DModel (Wan2.1-I2V-14B) forward, batch 1, by hand: 40 blocks of
    self-attention, cross-attention to the 512 text tokens and (added k/v) the 257 image tokens, FFN; the patch
    embedding (36 channels x 1 x 2 x 2), the time, text and image embedders, the output projection."""
    block = (8 * n * D * D + 4 * n * n * D  # attn1: q, k, v, out; QK^T and PV
             + 4 * n * D * D + 4 * TEXT * D * D + 4 * n * TEXT * D  # attn2 on the text: q, out; k, v; attention
             + 4 * IMAGE * D * D + 4 * n * IMAGE * D  # attn2's add_k/add_v on the image tokens; attention
             + 4 * n * D * F)  # ffn
    outside = (2 * n * 36 * 4 * D  # patch_embedding
               + 2 * 256 * D + 2 * D * D + 2 * D * 6 * D  # time_embedder, time_proj
               + 2 * TEXT * 4096 * D + 2 * TEXT * D * D  # text_embedder
               + 2 * IMAGE * 1280 * 1280 + 2 * IMAGE * 1280 * D  # image_embedder's FeedForward(1280 -> 1280 -> d)
               + 2 * n * D * 64)  # proj_out
    return 40 * block + outside


def _call_defaults() -> dict[str, Any]:
    """ChronoEditPipeline.__call__'s defaults and offload order, read from diffusers' source."""
    spec = importlib.util.find_spec("diffusers")
    assert spec is not None and spec.origin is not None
    path = Path(spec.origin).parent / "pipelines" / "chronoedit" / "pipeline_chronoedit.py"
    cls = next(n for n in ast.parse(path.read_text()).body
               if isinstance(n, ast.ClassDef) and n.name == "ChronoEditPipeline")
    call = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__call__")
    args = call.args.args[len(call.args.args) - len(call.args.defaults):]
    out = {a.arg: ast.literal_eval(d) for a, d in zip(args, call.args.defaults) if isinstance(d, ast.Constant)}
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign) and getattr(stmt.targets[0], "id", "") == "model_cpu_offload_seq":
            out["model_cpu_offload_seq"] = ast.literal_eval(stmt.value)
    # num_frames = 5 if not enable_temporal_reasoning else num_frames
    forced = [n for n in ast.walk(call) if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "num_frames"
              and isinstance(n.value, ast.IfExp)]
    out["forced_frames"] = ast.literal_eval(forced[0].value.body)
    return out


def test_listed_with_its_preset() -> None:
    res = CliRunner().invoke(main, ["models"])
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if ln.startswith(MID + " "))
    assert PRESET in line


def test_the_preset_is_the_pipelines_call_defaults() -> None:
    sig = _call_defaults()
    rm = resolve_model(MID)
    wl = resolve(None, rm.default_workload)
    assert sig["enable_temporal_reasoning"] is False
    assert (wl.height, wl.width, wl.steps, wl.guidance_scale, wl.text_len) == (
        sig["height"], sig["width"], sig["num_inference_steps"], sig["guidance_scale"], sig["max_sequence_length"]) == (
        480, 832, 50, 5.0, 512)
    assert wl.frames == sig["forced_frames"] == 5
    assert sig["model_cpu_offload_seq"] == "->".join(rm.adapter.offload_seq) == (
        "text_encoder->image_encoder->transformer->vae")


def test_geometry_at_the_preset() -> None:
    rm = resolve_model(MID)
    g = rm.geometry(resolve(None, PRESET))
    assert g.dims == {"batch": 1, "latent_frames": 2, "patches_h": 30, "patches_w": 52, "text_len": 512}
    assert g.latent_shape == (1, 36, 2, 60, 104)  # 16 noise + 4 mask + 16 image-latent channels
    assert g.tokens == TOKENS == 3_120
    # the pipeline ignores num_frames without temporal reasoning: 81 frames asked, 5 generated
    g81 = rm.geometry(resolve(None, PRESET, frames=81))
    assert g81.dims == g.dims and g81.frames == 5 and "replaced by 5" in g81.notes[0]


def test_stages_as_the_pipeline_runs_them() -> None:
    rm = resolve_model(MID)
    plans = {p.name: p for p in rm.stages(resolve(None, PRESET))}
    assert list(plans) == ["text_encoder", "image_encoder", "vae_encode", "transformer", "vae"]
    assert [p.runs for p in plans.values()] == [2, 1, 1, 100, 1]
    assert plans["text_encoder"].dims == {"batch": 1, "seq_len": 512}
    assert plans["vae_encode"].dims == plans["vae"].dims == {"batch": 1, "latent_frames": 2, "latent_h": 60,
                                                             "latent_w": 104}
    assert (plans["image_encoder"].dtype, plans["vae_encode"].dtype, plans["vae"].dtype) == ("float32",) * 3
    classes = {c: rm.components[c].config["_class_name"] for c in ("text_encoder", "image_encoder", "vae")}
    assert classes == {"text_encoder": "UMT5EncoderModel", "image_encoder": "CLIPVisionModel",
                       "vae": "AutoencoderKLWan"}
    one = rm.stages(resolve(None, PRESET, guidance_scale=1.0))
    assert [p.runs for p in one] == [1, 1, 1, 50, 1]


def test_reports_from_the_shipped_traces_alone(tmp_path: Path) -> None:
    from fxmeter.api import request, stage_inputs

    inputs = stage_inputs(request(MID))
    assert {i.source for i in inputs} == {"shipped"}
    res = CliRunner().invoke(main, ["trace", MID, "--run-id", "s", "--output-root", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "3,120 tokens (latent 1x36x2x60x104), 50 steps x 2 passes" in res.output
    assert "whole generation (text_encoder x2, image_encoder x1, vae_encode x1, transformer x100, vae x1)" in res.output
    data = json.loads((tmp_path / "s" / "static_analysis" / "chronoedit" / "report.json").read_text())
    assert data["unmodeled_ops"] == [] and data["model"]["id"] == MID and data["trace"]["mode"] == "dynamic"
    assert data["trace"]["guards"]["latent_frames"] == [2, 2]  # the 2-frame RoPE branch is a constant of the trace
    assert data["model"]["parameters"] == 16_394_878_784  # Wan2.1-I2V-14B's
    assert data["totals"]["per_forward"]["tensor_core_flops"] == transformer_flops(TOKENS)
    # the trace took ChronoEditRotaryPosEmbed's two-frame branch: freqs[:rope_temporal_skip_len][[0, -1]] (an index
    # per table), where Wan's rope only slices
    sm = next(i for i in inputs if i.plan.name == "transformer").model
    rope = [n["target"] for n in sm.nodes if n["module"] == "transformer.rope"]
    assert rope.count("aten.index.Tensor") == 2 and rope.count("aten.slice.Tensor") == 6


def test_another_size_from_the_same_trace() -> None:
    import fxmeter

    rep = fxmeter.trace(MID, stages="transformer", height=720, width=1280)
    assert rep.data["workload"]["tokens"] == 2 * 45 * 80
    assert rep.data["totals"]["per_forward"]["tensor_core_flops"] == transformer_flops(2 * 45 * 80)


@pytest.mark.slow  # FlopCounterMode over every full-size stage on meta (40 blocks, UMT5-XXL, CLIP ViT-H, the VAE)
def test_every_full_size_stage_counts_what_flop_counter_counts() -> None:
    """`fxmeter verify` at the preset: every module and every stage exactly equal to FlopCounterMode."""
    from fxmeter.api import verify

    res = verify(MID, write=False)
    assert res.passed and res.layers["max_rel_err"] == 0.0
    pf = res.end2end["per_forward"]
    assert pf["analytic_flops"] == pf["reference_flops"] == transformer_flops(TOKENS)
    assert [s["name"] for s in res.stages] == ["text_encoder", "image_encoder", "vae_encode", "vae"]
    for s in res.stages:
        run = s["end2end"]["per_forward"]
        assert run["analytic_flops"] == run["reference_flops"] > 0, s["name"]
