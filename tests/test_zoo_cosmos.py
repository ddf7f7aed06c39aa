"""Cosmos Predict2 2B (``fxmeter/model/zoo/cosmos.py``): CosmosTransformer3DModel in Cosmos2TextToImagePipeline and
Cosmos2VideoToWorldPipeline.

The registry lists both checkpoints, their presets are the pipelines' ``__call__`` defaults, the stages are the
pipelines' calls (T5 11B twice, [the condition video's VAE encode,] 70 transformer forwards, one decode), the geometry is written out, the shipped
traces report without tracing, the checkpoints of the class's other pipelines are refused, the padding-mask
resize fxmeter installs where torchvision is missing is nearest-neighbour, and the FLOPs equal the count by
hand and FlopCounterMode (the full-size model at a tiny workload in the fast lane, every full-size stage at the
preset in the slow lane).
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

MID = "cosmos-predict2-2b-t2i"
V2W = "cosmos-predict2-2b-v2w"
TINY_WL = {"height": 64, "width": 96, "steps": 1, "text_len": 8}
TINY_V2W = {"frames": 9, "height": 64, "width": 96, "steps": 1, "text_len": 8}


def _call_defaults(module: str = "pipeline_cosmos2_text2image", name: str = "Cosmos2TextToImagePipeline") -> dict[str, Any]:
    """A Cosmos2 pipeline's ``__call__`` defaults and offload order, read from diffusers' source (no import)."""
    spec = importlib.util.find_spec("diffusers")
    assert spec is not None and spec.origin is not None
    src = Path(spec.origin).parent / "pipelines" / "cosmos" / f"{module}.py"
    cls = next(n for n in ast.parse(src.read_text()).body if isinstance(n, ast.ClassDef) and n.name == name)
    call = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__call__")
    args = call.args.args[len(call.args.args) - len(call.args.defaults):]
    out = {a.arg: ast.literal_eval(d) for a, d in zip(args, call.args.defaults) if isinstance(d, ast.Constant)}
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign) and getattr(stmt.targets[0], "id", "") == "model_cpu_offload_seq":
            out["model_cpu_offload_seq"] = ast.literal_eval(stmt.value)
    return out


def test_listed_with_their_presets() -> None:
    res = CliRunner().invoke(main, ["models"])
    assert res.exit_code == 0, res.output
    for mid, preset in ((MID, "cosmos-predict2-t2i"), (V2W, "cosmos-predict2-v2w")):
        line = next(ln for ln in res.output.splitlines() if ln.startswith(mid + " "))
        assert preset in line


def test_the_preset_is_the_pipelines_call_defaults() -> None:
    sig = _call_defaults()
    wl = resolve(None, resolve_model(MID).default_workload)
    got = (wl.height, wl.width, wl.steps, wl.guidance_scale, wl.text_len, wl.frames)
    assert got == (*(sig[k] for k in ("height", "width", "num_inference_steps", "guidance_scale",
                                     "max_sequence_length")), 1) == (768, 1360, 35, 7.0, 512, 1)


def test_geometry_at_the_preset() -> None:
    rm = resolve_model(MID)
    g = rm.geometry(resolve(None, rm.default_workload))
    # 768 x 1360 / 8 (Wan2.1 VAE) = 96 x 170 latents, one frame; patches 2 x 2 -> 48 x 85
    assert g.latent_shape == (1, 16, 1, 96, 170)
    assert g.dims == {"batch": 1, "patches_h": 48, "patches_w": 85, "text_len": 512}
    assert g.tokens == 48 * 85 == 4080


def test_stages_as_the_pipeline_runs_them() -> None:
    rm = resolve_model(MID)
    plans = {p.name: p for p in rm.stages(resolve(None, rm.default_workload))}
    assert list(plans) == ["text_encoder", "transformer", "vae"]
    assert [p.runs for p in plans.values()] == [2, 70, 1]  # prompt + negative; 35 steps x CFG; one decode
    assert plans["text_encoder"].dims == {"batch": 1, "seq_len": 512}
    assert plans["vae"].dims == {"batch": 1, "latent_frames": 1, "latent_h": 96, "latent_w": 170}
    assert "->".join(rm.adapter.offload_seq) == _call_defaults()["model_cpu_offload_seq"]
    te = rm.components["text_encoder"].config
    # google-t5/t5-11b: d_model 1024 is the transformer's text_embed_dim (not T5 v1.1 XXL's 4096)
    assert (te["_class_name"], te["d_model"], te["d_ff"], te["num_heads"], te["feed_forward_proj"]) == (
        "T5EncoderModel", rm.config["text_embed_dim"], 65536, 128, "relu")
    assert rm.components["vae"].config["_class_name"] == "AutoencoderKLWan"
    assert rm.components["vae"].config == resolve_model("wan2.1-t2v-1.3b").components["vae"].config


@pytest.mark.parametrize(("key", "value", "needle"), [
    ("in_channels", 18, "condition mask"),
    ("extra_pos_embed_type", "learnable", "Cosmos 1.0"),
    ("use_crossattn_projection", True, "Cosmos 2.5"),
])
def test_checkpoints_of_other_pipelines_are_refused(key: str, value: Any, needle: str, tmp_path: Path) -> None:
    cfg = dict(resolve_model(MID).config, **{key: value})
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    res = CliRunner().invoke(main, ["trace", "--config", str(tmp_path / "config.json"), "--output-root", str(tmp_path)])
    assert res.exit_code == 2 and needle in res.output, res.output


def test_padding_mask_resize_is_torchvisions_nearest() -> None:
    """Where torchvision is missing, the model's ``transforms.functional.resize`` is torchvision's tensor path:
    float32 interpolation (nearest: source index floor(i * in / out)), cast back to the input dtype."""
    import torch

    from fxmeter.model.zoo.cosmos import _torchvision_resize

    x = torch.arange(8 * 12, dtype=torch.float32).reshape(1, 1, 8, 12).to(torch.bfloat16)
    y = _torchvision_resize(x, [2, 3], "nearest")
    assert y.dtype == torch.bfloat16 and y.shape == (1, 1, 2, 3)
    assert torch.equal(y, x[:, :, ::4, ::4])
    assert _torchvision_resize(x, [8, 12]) is x


def test_reports_from_the_shipped_traces_alone(tmp_path: Path) -> None:
    from fxmeter.api import request, stage_inputs

    assert {i.source for i in stage_inputs(request(MID))} == {"shipped"}
    res = CliRunner().invoke(main, ["trace", MID, "--run-id", "s", "--output-root", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "4,080 tokens (latent 1x16x1x96x170), 35 steps x 2 passes" in res.output
    assert "whole generation (text_encoder x2, transformer x70, vae x1)" in res.output
    data = json.loads((tmp_path / "s" / "static_analysis" / "cosmos_predict2" / "report.json").read_text())
    assert data["unmodeled_ops"] == [] and data["model"]["id"] == MID and data["trace"]["mode"] == "dynamic"


def test_one_forward_counted_by_hand() -> None:
    """Tensor-core FLOPs of one forward at the preset: L = 4,080 tokens, T = 512 text tokens of 1,024, hidden
    2,048, FFN 8,192, 28 blocks; adaLN-LoRA 256 on the one timestep row; 17 input channels (16 + the padding mask)."""
    rep = fxmeter.trace(MID, stages="transformer")
    L, T, c, d, f = 4080, 512, 1024, 2048, 8192
    block = (8 * L * d * d + 4 * L * L * d  # self-attention: q, k, v, out; scores and values
             + 4 * L * d * d + 4 * T * c * d + 4 * L * T * d  # cross-attention: q, out; k, v on the text; core
             + 4 * L * d * f  # GELU FFN
             + 3 * (2 * d * 256 + 2 * 256 * 3 * d))  # norm1/2/3 adaLN-LoRA
    outside = 2 * L * 17 * 4 * d + (2 * d * d + 2 * d * 3 * d) + (2 * d * 256 + 2 * 256 * 2 * d) + 2 * L * d * 64
    assert rep.data["totals"]["per_forward"]["tensor_core_flops"] == 28 * block + outside == 17_836_700_073_984
    assert rep.data["unmodeled_ops"] == []
    # parameters: per block adaLN-LoRA 3 x (d*256 + 256*3d), self-attention 4 d^2 + q/k RMSNorm, cross-attention
    # 2 d^2 + 2 c*d + q/k RMSNorm, FFN 2 d*f (no biases); patch embed 68 d, time embedding d^2 + 3 d^2 + RMSNorm d,
    # norm_out d*256 + 256*2d, proj_out 64 d
    per_block = 3 * (d * 256 + 256 * 3 * d) + 4 * d * d + 256 + 2 * d * d + 2 * c * d + 256 + 2 * d * f
    params = 28 * per_block + 68 * d + 4 * d * d + d + (d * 256 + 256 * 2 * d) + 64 * d
    assert rep.data["model"]["parameters"] == params == 1_956_405_248


def test_one_forward_at_a_tiny_workload_counts_what_flop_counter_counts() -> None:
    """The shipped (dynamic, one block replicated) trace at 64 x 96, 8 text tokens == FlopCounterMode on the
    full-size meta model with the pipeline's inputs, in total and module by module."""
    from fxmeter.api import request
    from fxmeter.verify.reference import run_reference

    rep = fxmeter.trace(MID, stages="transformer", **TINY_WL)
    assert rep.data["unmodeled_ops"] == []
    req = request(MID, **TINY_WL)
    assert req.geometry.dims == {"batch": 1, "patches_h": 4, "patches_w": 6, "text_len": 8}
    ref = run_reference(req.model.component("transformer"), dict(req.geometry.dims), "bfloat16", "meta")
    assert rep.data["totals"]["per_forward"]["tensor_core_flops"] == ref.total > 0
    ours = {m["id"]: m["per_forward"]["tensor_core_flops"] for m in rep.data["modules"]}
    assert {k: v for k, v in ref.modules.items() if v} == {k: ours[k] for k, v in ref.modules.items() if v}


# -- video-to-world ---------------------------------------------------------------------------------------------

def test_the_v2w_preset_is_the_pipelines_call_defaults() -> None:
    sig = _call_defaults("pipeline_cosmos2_video2world", "Cosmos2VideoToWorldPipeline")
    wl = resolve(None, resolve_model(V2W).default_workload)
    got = (wl.height, wl.width, wl.frames, wl.steps, wl.guidance_scale, wl.text_len)
    assert got == tuple(sig[k] for k in ("height", "width", "num_frames", "num_inference_steps", "guidance_scale",
                                         "max_sequence_length")) == (704, 1280, 93, 35, 7.0, 512)
    from fxmeter.model.zoo.cosmos import V2W_FPS

    assert sig["fps"] == V2W_FPS == 16
    assert "->".join(resolve_model(V2W).adapter.offload_seq) == sig["model_cpu_offload_seq"]


def test_v2w_geometry_and_stages() -> None:
    import torch

    rm = resolve_model(V2W)
    assert rm.config["in_channels"] == rm.config["out_channels"] + 1 == 17  # + the condition mask
    wl = resolve(None, rm.default_workload)
    g = rm.geometry(wl)
    # 93 frames -> (93 - 1) / 4 + 1 = 24 latent frames; 704 x 1280 / 8 = 88 x 160; patches 2 x 2 -> 44 x 80
    assert g.latent_shape == (1, 16, 24, 88, 160)
    assert g.dims == {"batch": 1, "latent_frames": 24, "patches_h": 44, "patches_w": 80, "text_len": 512}
    assert g.tokens == 24 * 44 * 80 == 84_480
    plans = {p.name: p for p in rm.stages(wl)}
    assert list(plans) == ["text_encoder", "vae_encode", "transformer", "vae"]
    assert [p.runs for p in plans.values()] == [2, 1, 70, 1]
    assert plans["vae_encode"].dims == plans["vae"].dims == {"batch": 1, "latent_frames": 24, "latent_h": 88,
                                                             "latent_w": 160}
    kw = rm.adapter.inputs(rm.config, g.dims, torch.bfloat16)
    assert {k: tuple(v.shape) for k, v in kw.items() if hasattr(v, "shape")} == {
        "hidden_states": (1, 16, 24, 88, 160), "timestep": (1, 1, 24, 1, 1), "encoder_hidden_states": (1, 512, 1024),
        "condition_mask": (1, 1, 24, 88, 160), "padding_mask": (1, 1, 704, 1280)}
    assert kw["fps"] == 16


@pytest.mark.slow
def test_v2w_reports_from_the_shipped_traces_alone(tmp_path: Path) -> None:
    from fxmeter.api import request, stage_inputs

    assert {i.source for i in stage_inputs(request(V2W))} == {"shipped"}
    res = CliRunner().invoke(main, ["trace", V2W, "--run-id", "s", "--output-root", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "84,480 tokens (latent 1x16x24x88x160), 35 steps x 2 passes" in res.output
    assert "whole generation (text_encoder x2, vae_encode x1, transformer x70, vae x1)" in res.output
    data = json.loads((tmp_path / "s" / "static_analysis" / "cosmos_predict2" / "report.json").read_text())
    assert data["unmodeled_ops"] == [] and data["model"]["id"] == V2W and data["trace"]["mode"] == "dynamic"


def test_v2w_forward_counted_by_hand() -> None:
    """As the text-to-image count, with 84,480 tokens, 18 patch-embed channels (16 + condition mask + padding
    mask), and the 5-D timestep: one embedding per latent frame (24 rows), broadcast to every token, so the
    adaLN-LoRA layers run on all L rows."""
    rep = fxmeter.trace(V2W, stages="transformer")
    L, T, c, d, f, F = 84_480, 512, 1024, 2048, 8192, 24
    block = (8 * L * d * d + 4 * L * L * d + 4 * L * d * d + 4 * T * c * d + 4 * L * T * d + 4 * L * d * f
             + 3 * L * (2 * d * 256 + 2 * 256 * 3 * d))
    outside = 2 * L * 18 * 4 * d + F * (2 * d * d + 2 * d * 3 * d) + L * (2 * d * 256 + 2 * 256 * 2 * d) + 2 * L * d * 64
    assert rep.data["totals"]["per_forward"]["tensor_core_flops"] == 28 * block + outside == 1_954_944_642_973_696
    # parameters: text-to-image's plus the condition-mask channel's 4 patch-embed inputs (1 x 2 x 2) x 2,048
    assert rep.data["model"]["parameters"] == 1_956_405_248 + 4 * d == 1_956_413_440


def test_v2w_tiny_forward_counts_what_flop_counter_counts() -> None:
    from fxmeter.api import request
    from fxmeter.verify.reference import run_reference

    rep = fxmeter.trace(V2W, stages="transformer", **TINY_V2W)
    assert rep.data["unmodeled_ops"] == [] and rep.data["trace"]["mode"] == "dynamic"
    req = request(V2W, **TINY_V2W)
    assert req.geometry.dims == {"batch": 1, "latent_frames": 3, "patches_h": 4, "patches_w": 6, "text_len": 8}
    ref = run_reference(req.model.component("transformer"), dict(req.geometry.dims), "bfloat16", "meta")
    assert rep.data["totals"]["per_forward"]["tensor_core_flops"] == ref.total > 0


@pytest.mark.slow  # FlopCounterMode over every full-size stage on meta (28 blocks, T5 11B, the VAE encode and decode)
@pytest.mark.parametrize(("mid", "stages"), [(MID, ["text_encoder", "vae"]), (V2W, ["text_encoder", "vae_encode", "vae"])])
def test_every_full_size_stage_counts_what_flop_counter_counts(mid: str, stages: list[str]) -> None:
    """`fxmeter verify` at the preset: every module and every stage exactly equal to FlopCounterMode."""
    from fxmeter.api import verify

    res = verify(mid, write=False)
    assert res.passed and res.layers["max_rel_err"] == 0.0
    pf = res.end2end["per_forward"]
    assert pf["analytic_flops"] == pf["reference_flops"] > 0
    assert [s["name"] for s in res.stages] == stages
    for s in res.stages:
        run = s["end2end"]["per_forward"]
        assert run["analytic_flops"] == run["reference_flops"] > 0, s["name"]
