"""Wan2.1 VACE (``fxmeter/model/zoo/wan_vace.py``): WanVACETransformer3DModel driven by WanVACEPipeline.

The registry lists both checkpoints, the preset is the pipeline's ``__call__`` defaults, the stages are the
pipeline's calls (UMT5 twice, two VAE encodes of the conditioning video, 100 transformer forwards, one
decode), the geometry is written out, the shipped traces report without tracing, and the FLOPs equal
FlopCounterMode: a tiny config traced now in the fast lane, every full-size stage in the slow lane.
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

MODELS = ("wan2.1-vace-1.3b", "wan2.1-vace-14b")

TINY_WL = {"frames": 9, "height": 64, "width": 96, "steps": 1, "text_len": 8}


def test_both_checkpoints_are_listed_with_their_preset() -> None:
    res = CliRunner().invoke(main, ["models"])
    assert res.exit_code == 0, res.output
    for mid in MODELS:
        line = next(ln for ln in res.output.splitlines() if ln.startswith(mid + " "))
        assert "vace-480p" in line


def test_the_configs_are_the_conversion_scripts() -> None:
    small, big = (resolve_model(m).config for m in MODELS)
    # diffusers scripts/convert_wan_to_diffusers.py, Wan-VACE-1.3B and Wan-VACE-14B
    assert (small["num_layers"], small["num_attention_heads"], small["ffn_dim"]) == (30, 12, 8960)
    assert small["vace_layers"] == list(range(0, 30, 2)) and big["vace_layers"] == list(range(0, 40, 5))
    assert (big["num_layers"], big["num_attention_heads"], big["ffn_dim"]) == (40, 40, 13824)
    assert small["vace_in_channels"] == big["vace_in_channels"] == 96
    assert resolve_model(MODELS[0]).adapter.name == "wan-vace"


def _pipeline_source() -> ast.Module:
    """diffusers' pipeline_wan_vace.py, parsed (reading its defaults without importing diffusers: fast)."""
    spec = importlib.util.find_spec("diffusers")
    assert spec is not None and spec.origin is not None
    return ast.parse((Path(spec.origin).parent / "pipelines" / "wan" / "pipeline_wan_vace.py").read_text())


def _call_defaults(tree: ast.Module) -> dict[str, Any]:
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "WanVACEPipeline")
    call = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__call__")
    args = call.args.args[len(call.args.args) - len(call.args.defaults):]
    out = {a.arg: ast.literal_eval(d) for a, d in zip(args, call.args.defaults) if isinstance(d, ast.Constant)}
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign) and getattr(stmt.targets[0], "id", "") == "model_cpu_offload_seq":
            out["model_cpu_offload_seq"] = ast.literal_eval(stmt.value)
    return out


def test_the_preset_is_the_pipelines_call_defaults() -> None:
    sig = _call_defaults(_pipeline_source())
    wl = resolve(None, resolve_model(MODELS[1]).default_workload)
    got = (wl.height, wl.width, wl.frames, wl.steps, wl.guidance_scale, wl.text_len)
    assert got == tuple(sig[k] for k in ("height", "width", "num_frames", "num_inference_steps",
                                         "guidance_scale", "max_sequence_length")) == (480, 832, 81, 50, 5.0, 512)
    assert sig["conditioning_scale"] == 1.0  # control_hidden_states_scale: ones, one per VACE layer


def test_geometry_at_the_preset() -> None:
    rm = resolve_model(MODELS[0])
    g = rm.geometry(resolve(None, rm.default_workload))
    # 81 frames -> (81 - 1) / 4 + 1 = 21 latent frames; 480 x 832 / 8 = 60 x 104; patches 2 x 2 -> 30 x 52
    assert g.latent_shape == (1, 16, 21, 60, 104)
    assert g.dims == {"batch": 1, "latent_frames": 21, "patches_h": 30, "patches_w": 52, "text_len": 512}
    assert g.tokens == 21 * 30 * 52 == 32_760
    kw = rm.adapter.inputs(rm.config, g.dims, __import__("torch").bfloat16)
    # conditioning latents: 16 inactive + 16 reactive + 64 (8 x 8 pixel mask) channels at the latent's size
    assert tuple(kw["control_hidden_states"].shape) == (1, 96, 21, 60, 104)
    assert tuple(kw["control_hidden_states_scale"].shape) == (15,)


def test_stages_as_the_pipeline_runs_them() -> None:
    rm = resolve_model(MODELS[1])
    wl = resolve(None, rm.default_workload)
    plans = {p.name: p for p in rm.stages(wl)}
    assert list(plans) == ["text_encoder", "vae_encode", "transformer", "vae"]
    assert [plans[n].runs for n in plans] == [2, 2, 100, 1]  # prompt + negative; inactive + reactive; 50 x CFG
    assert plans["vae_encode"].dims == plans["vae"].dims == {"batch": 1, "latent_frames": 21, "latent_h": 60,
                                                            "latent_w": 104}
    assert (plans["vae_encode"].dtype, plans["vae"].dtype) == ("float32", "float32")
    assert plans["text_encoder"].dims == {"batch": 1, "seq_len": 512}
    assert "->".join(rm.adapter.offload_seq) == _call_defaults(_pipeline_source())["model_cpu_offload_seq"]


def test_reference_images_add_latent_frames_and_encodes(tmp_path: Path) -> None:
    cfg = dict(resolve_model(MODELS[0]).config, _pipeline={"reference_images": 2})
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    rm = resolve_model(None, tmp_path / "config.json")
    wl = resolve("vace-480p", None)
    g = rm.geometry(wl)
    # the pipeline prepares 81 + 2 x 4 frames of noise: 23 latent frames, 2 dropped before the decode
    assert g.latent_shape == (1, 16, 23, 60, 104) and g.tokens == 23 * 30 * 52
    plans = {p.name: p for p in rm.adapter.pipeline_stages(rm.config, wl, g)[0] + rm.adapter.pipeline_stages(
        rm.config, wl, g)[1]}
    assert plans["vae_encode_reference"].runs == 2
    assert plans["vae_encode_reference"].dims == {"batch": 1, "latent_frames": 1, "latent_h": 60, "latent_w": 104}
    assert plans["vae"].dims["latent_frames"] == plans["vae_encode"].dims["latent_frames"] == 21


def test_batch_and_bad_vace_layers_are_refused(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["trace", MODELS[0], "--batch", "2", "--output-root", str(tmp_path)])
    assert res.exit_code == 2 and "one video per call" in res.output
    bad = dict(resolve_model(MODELS[0]).config, vace_layers=[0, 30])
    (tmp_path / "config.json").write_text(json.dumps(bad))
    res = CliRunner().invoke(main, ["trace", "--config", str(tmp_path / "config.json"), "--output-root", str(tmp_path)])
    assert res.exit_code == 2 and "below num_layers = 30" in res.output


def test_the_vace_branch_costs_its_blocks_by_hand() -> None:
    """VACE-1.3B minus Wan2.1-T2V-1.3B at the same 480P workload (shipped traces of both): 15 context blocks,
    the 96-channel patch embedding, proj_in of block 0 and 15 proj_out."""
    vace = fxmeter.trace(MODELS[0], stages="transformer")
    t2v = fxmeter.trace("wan2.1-t2v-1.3b", workload="480p", stages="transformer")
    L, d, T, f = 32_760, 1536, 512, 8960  # tokens, 12 x 128, text, ffn
    block = 8 * L * d * d + 4 * L * L * d + 4 * L * d * d + 4 * T * d * d + 4 * L * T * d + 4 * L * d * f
    extra = 15 * block + 2 * L * (96 * 4) * d + 16 * 2 * L * d * d
    diff = vace.data["totals"]["per_forward"]["tensor_core_flops"] - t2v.data["totals"]["per_forward"]["tensor_core_flops"]
    assert diff == extra == 144_001_949_368_320


@pytest.mark.parametrize(("mid", "d", "ffn", "t2v", "blocks"), [
    (MODELS[0], 1536, 8960, 1_418_996_800, 15), (MODELS[1], 5120, 13824, 14_288_491_584, 8)])
def test_parameters_are_wan21_t2v_plus_the_vace_branch(mid: str, d: int, ffn: int, t2v: int, blocks: int) -> None:
    """Wan2.1-T2V of the same size (README) + per context block a Wan block (attn1, attn2 with q/k norms, the
    cross-attention norm, the FFN, the 6 x d modulation) and its proj_out, block 0's proj_in, the patch
    embedding of the 96 control channels."""
    wan_block = 2 * (4 * (d * d + d) + 2 * d) + 2 * d + (d * ffn + ffn + ffn * d + d) + 6 * d
    vace = blocks * (wan_block + d * d + d) + (d * d + d) + (96 * 4 * d + d)
    rep = fxmeter.trace(mid, stages="transformer")
    assert rep.data["model"]["parameters"] == t2v + vace == {MODELS[0]: 2_153_972_032,
                                                            MODELS[1]: 17_337_592_896}[mid]


@pytest.mark.slow
@pytest.mark.parametrize("mid", MODELS)
def test_reports_from_the_shipped_traces_alone(mid: str, tmp_path: Path) -> None:
    from fxmeter.api import request, stage_inputs

    assert {i.source for i in stage_inputs(request(mid))} == {"shipped"}
    res = CliRunner().invoke(main, ["trace", mid, "--run-id", "v", "--output-root", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "32,760 tokens (latent 1x16x21x60x104), 50 steps x 2 passes" in res.output
    assert "whole generation (text_encoder x2, vae_encode x2, transformer x100, vae x1)" in res.output
    data = json.loads((tmp_path / "v" / "static_analysis" / "wan2_1_vace" / "report.json").read_text())
    assert data["unmodeled_ops"] == [] and data["model"]["id"] == mid


@pytest.mark.slow
def test_one_forward_at_a_tiny_workload_counts_what_flop_counter_counts() -> None:
    """The shipped (dynamic) trace of the 1.3B at 9 frames, 64 x 96, 8 text tokens == FlopCounterMode on the
    full-size meta model with the pipeline's inputs, in total and module by module."""
    from fxmeter.api import request
    from fxmeter.verify.reference import run_reference

    rep = fxmeter.trace(MODELS[0], stages="transformer", **TINY_WL)
    assert rep.data["trace"]["mode"] == "dynamic" and rep.data["unmodeled_ops"] == []
    req = request(MODELS[0], **TINY_WL)
    assert req.geometry.dims == {"batch": 1, "latent_frames": 3, "patches_h": 4, "patches_w": 6, "text_len": 8}
    ref = run_reference(req.model.component("transformer"), dict(req.geometry.dims), "bfloat16", "meta")
    assert rep.data["totals"]["per_forward"]["tensor_core_flops"] == ref.total > 0
    ours = {m["id"]: m["per_forward"]["tensor_core_flops"] for m in rep.data["modules"]}
    assert {k: v for k, v in ref.modules.items() if v} == {k: ours[k] for k, v in ref.modules.items() if v}
    assert ours["transformer.vace_blocks.0.proj_in"] > 0 and "transformer.vace_blocks.1.proj_in" not in ours


@pytest.mark.slow  # FlopCounterMode over every full-size stage on meta (45 / 48 transformer blocks, the VAE)
@pytest.mark.parametrize("mid", MODELS)
def test_every_full_size_stage_counts_what_flop_counter_counts(mid: str) -> None:
    """`fxmeter verify` at the preset: every module and every stage exactly equal to FlopCounterMode."""
    from fxmeter.api import verify

    res = verify(mid, write=False)
    assert res.passed and res.layers["max_rel_err"] == 0.0
    pf = res.end2end["per_forward"]
    assert pf["analytic_flops"] == pf["reference_flops"] > 0
    assert [s["name"] for s in res.stages] == ["text_encoder", "vae_encode", "vae"]
    for s in res.stages:
        run = s["end2end"]["per_forward"]
        assert run["analytic_flops"] == run["reference_flops"] > 0, s["name"]
