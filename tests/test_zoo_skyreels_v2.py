"""SkyReels-V2 text-to-video (``fxmeter/model/zoo/skyreels_v2.py``): SkyReelsV2Transformer3DModel in SkyReelsV2Pipeline.

The registry lists the 540P and 720P checkpoints, the 540P preset is the pipeline's ``__call__`` defaults, the
stages are the pipeline's calls (UMT5 twice, 100 transformer forwards, one decode), the geometry is written
out, the shipped traces report without tracing, the variants of the class another pipeline drives are
refused, and the FLOPs equal FlopCounterMode (the full-size model at a tiny workload in the fast lane, every
full-size stage at the presets in the slow lane) and Wan2.1-T2V-14B's at the same workload (same
architecture).
"""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import fxmeter
from fxmeter.cli.main import main
from fxmeter.model.registry import resolve_model
from fxmeter.model.workload import resolve

MODELS = ("skyreels-v2-t2v-14b-540p", "skyreels-v2-t2v-14b-720p")
TINY_WL = {"frames": 9, "height": 64, "width": 96, "steps": 1, "text_len": 8}


def _call_defaults() -> dict[str, Any]:
    """SkyReelsV2Pipeline.__call__'s defaults and offload order, read from diffusers' source (no import: fast)."""
    spec = importlib.util.find_spec("diffusers")
    assert spec is not None and spec.origin is not None
    tree = ast.parse((Path(spec.origin).parent / "pipelines" / "skyreels_v2" / "pipeline_skyreels_v2.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "SkyReelsV2Pipeline")
    call = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__call__")
    args = call.args.args[len(call.args.args) - len(call.args.defaults):]
    out = {a.arg: ast.literal_eval(d) for a, d in zip(args, call.args.defaults) if isinstance(d, ast.Constant)}
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign) and getattr(stmt.targets[0], "id", "") == "model_cpu_offload_seq":
            out["model_cpu_offload_seq"] = ast.literal_eval(stmt.value)
    return out


def test_both_checkpoints_are_listed_with_their_presets() -> None:
    res = CliRunner().invoke(main, ["models"])
    assert res.exit_code == 0, res.output
    for mid, preset in zip(MODELS, ("skyreels-540p", "skyreels-720p")):
        line = next(ln for ln in res.output.splitlines() if ln.startswith(mid + " "))
        assert preset in line


def test_the_540p_preset_is_the_pipelines_call_defaults() -> None:
    sig = _call_defaults()
    wl = resolve(None, resolve_model(MODELS[0]).default_workload)
    got = (wl.height, wl.width, wl.frames, wl.steps, wl.guidance_scale, wl.text_len)
    assert got == tuple(sig[k] for k in ("height", "width", "num_frames", "num_inference_steps", "guidance_scale",
                                         "max_sequence_length")) == (544, 960, 97, 50, 6.0, 512)
    wl720 = resolve(None, resolve_model(MODELS[1]).default_workload)
    assert (wl720.height, wl720.width, wl720.frames) == (720, 1280, 121)


def test_geometry_at_the_presets() -> None:
    rm = resolve_model(MODELS[0])
    g = rm.geometry(resolve(None, rm.default_workload))
    # 97 frames -> (97 - 1) / 4 + 1 = 25 latent frames; 544 x 960 / 8 = 68 x 120; patches 2 x 2 -> 34 x 60
    assert g.latent_shape == (1, 16, 25, 68, 120)
    assert g.dims == {"batch": 1, "latent_frames": 25, "patches_h": 34, "patches_w": 60, "text_len": 512}
    assert g.tokens == 25 * 34 * 60 == 51_000
    # 720P: 121 frames -> 31 latent frames, 90 x 160 latents, 45 x 80 patches
    g720 = resolve_model(MODELS[1]).geometry(resolve("skyreels-720p", None))
    assert g720.latent_shape == (1, 16, 31, 90, 160) and g720.tokens == 31 * 45 * 80 == 111_600


def test_stages_as_the_pipeline_runs_them() -> None:
    rm = resolve_model(MODELS[0])
    plans = {p.name: p for p in rm.stages(resolve(None, rm.default_workload))}
    assert list(plans) == ["text_encoder", "transformer", "vae"]
    assert [p.runs for p in plans.values()] == [2, 100, 1]  # prompt + negative; 50 steps x CFG; one decode
    assert plans["text_encoder"].dims == {"batch": 1, "seq_len": 512}
    assert plans["vae"].dims == {"batch": 1, "latent_frames": 25, "latent_h": 68, "latent_w": 120}
    assert plans["vae"].dtype == "float32"
    assert "->".join(rm.adapter.offload_seq) == _call_defaults()["model_cpu_offload_seq"]
    assert rm.components["text_encoder"].config["_class_name"] == "UMT5EncoderModel"
    assert rm.components["vae"].config["_class_name"] == "AutoencoderKLWan"


@pytest.mark.parametrize(("key", "value", "needle"), [
    ("inject_sample_info", True, "SkyReelsV2DiffusionForcingPipeline"),
    ("num_frame_per_block", 5, "block-causal"),
    ("image_dim", 1280, "SkyReelsV2ImageToVideoPipeline"),
])
def test_variants_of_other_pipelines_are_refused(key: str, value: Any, needle: str, tmp_path: Path) -> None:
    cfg = dict(resolve_model(MODELS[0]).config, **{key: value})
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    res = CliRunner().invoke(main, ["trace", "--config", str(tmp_path / "config.json"), "--output-root", str(tmp_path)])
    assert res.exit_code == 2 and needle in res.output, res.output


def test_same_cost_as_wan21_t2v_14b_at_the_same_workload() -> None:
    """One architecture under two classes: the parameters (Wan2.1-T2V-14B's, README) and the tensor-core FLOPs
    of one forward at 544 x 960, 97 frames are Wan's; the count by hand for L = 51,000 tokens, T = 512."""
    sky = fxmeter.trace(MODELS[0], stages="transformer")
    wan = fxmeter.trace("wan2.1-t2v-14b", workload="720p", height=544, width=960, frames=97, stages="transformer")
    assert sky.data["model"]["parameters"] == wan.data["model"]["parameters"] == 14_288_491_584
    ours = sky.data["totals"]["per_forward"]["tensor_core_flops"]
    L, T, d, f = 51_000, 512, 5120, 13824
    block = 8 * L * d * d + 4 * L * L * d + 4 * L * d * d + 4 * T * d * d + 4 * L * T * d + 4 * L * d * f
    outside = 2 * L * 64 * d + (2 * 256 * d + 2 * d * d) + 2 * d * 6 * d + (2 * T * 4096 * d + 2 * T * d * d) + 2 * L * d * 64
    assert ours == wan.data["totals"]["per_forward"]["tensor_core_flops"] == 40 * block + outside


@pytest.mark.parametrize("mid", MODELS)
def test_reports_from_the_shipped_traces_alone(mid: str, tmp_path: Path) -> None:
    from fxmeter.api import request, stage_inputs

    assert {i.source for i in stage_inputs(request(mid))} == {"shipped"}
    res = CliRunner().invoke(main, ["trace", mid, "--run-id", "s", "--output-root", str(tmp_path)])
    assert res.exit_code == 0, res.output
    tokens = {MODELS[0]: "51,000 tokens (latent 1x16x25x68x120)", MODELS[1]: "111,600 tokens (latent 1x16x31x90x160)"}
    assert f"{tokens[mid]}, 50 steps x 2 passes" in res.output
    assert "whole generation (text_encoder x2, transformer x100, vae x1)" in res.output
    data = json.loads((tmp_path / "s" / "static_analysis" / "skyreels_v2" / "report.json").read_text())
    assert data["unmodeled_ops"] == [] and data["model"]["id"] == mid and data["trace"]["mode"] == "dynamic"


def test_one_forward_at_a_tiny_workload_counts_what_flop_counter_counts() -> None:
    """The shipped (dynamic, one block replicated) trace at 9 frames, 64 x 96, 8 text tokens == FlopCounterMode
    on the full-size meta model with the pipeline's inputs, in total and module by module."""
    from fxmeter.api import request
    from fxmeter.verify.reference import run_reference

    rep = fxmeter.trace(MODELS[0], stages="transformer", **TINY_WL)
    assert rep.data["unmodeled_ops"] == []
    req = request(MODELS[0], **TINY_WL)
    assert req.geometry.dims == {"batch": 1, "latent_frames": 3, "patches_h": 4, "patches_w": 6, "text_len": 8}
    ref = run_reference(req.model.component("transformer"), dict(req.geometry.dims), "bfloat16", "meta")
    assert rep.data["totals"]["per_forward"]["tensor_core_flops"] == ref.total > 0
    ours = {m["id"]: m["per_forward"]["tensor_core_flops"] for m in rep.data["modules"]}
    assert {k: v for k, v in ref.modules.items() if v} == {k: ours[k] for k, v in ref.modules.items() if v}


@pytest.mark.slow  # FlopCounterMode over every full-size stage on meta (40 blocks, UMT5-XXL, the VAE decode)
@pytest.mark.parametrize("mid", MODELS)
def test_every_full_size_stage_counts_what_flop_counter_counts(mid: str) -> None:
    """`fxmeter verify` at the preset: every module and every stage exactly equal to FlopCounterMode."""
    from fxmeter.api import verify

    res = verify(mid, write=False)
    assert res.passed and res.layers["max_rel_err"] == 0.0
    pf = res.end2end["per_forward"]
    assert pf["analytic_flops"] == pf["reference_flops"] > 0
    assert [s["name"] for s in res.stages] == ["text_encoder", "vae"]
    for s in res.stages:
        run = s["end2end"]["per_forward"]
        assert run["analytic_flops"] == run["reference_flops"] > 0, s["name"]
