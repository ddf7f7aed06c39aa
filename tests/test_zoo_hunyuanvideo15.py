"""HunyuanVideo-1.5 480p text-to-video (``fxmeter/model/zoo/hunyuanvideo15.py``): HunyuanVideo15Transformer3DModel in
HunyuanVideo15Pipeline.

The registry lists the model with its preset (the pipeline's ``__call__`` defaults), the stages are the pipeline's
calls (Qwen2.5-VL's language model twice, 100 transformer forwards, one decode; no ByT5 for a plain prompt), the
geometry is written out, the shipped traces report without tracing, the t2v forward differs from the class's only
in the data-dependent expressions and computes the same output as the real forward on the pipeline's t2v inputs,
and the FLOPs equal FlopCounterMode (a tiny workload in the fast lane, every full-size stage in the slow lane).
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

MID = "hunyuanvideo1.5-480p-t2v"
TINY_WL = {"frames": 5, "height": 64, "width": 96, "steps": 1, "text_len": 8}


def _pipeline_source() -> ast.Module:
    spec = importlib.util.find_spec("diffusers")
    assert spec is not None and spec.origin is not None
    path = Path(spec.origin).parent / "pipelines" / "hunyuan_video1_5" / "pipeline_hunyuan_video1_5.py"
    return ast.parse(path.read_text())


def _call_defaults() -> dict[str, Any]:
    """HunyuanVideo15Pipeline.__call__'s defaults, its constants and offload order, read from diffusers' source."""
    cls = next(n for n in _pipeline_source().body if isinstance(n, ast.ClassDef) and n.name == "HunyuanVideo15Pipeline")
    call = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__call__")
    args = call.args.args[len(call.args.args) - len(call.args.defaults):]
    out = {a.arg: ast.literal_eval(d) for a, d in zip(args, call.args.defaults) if isinstance(d, ast.Constant)}
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign) and getattr(stmt.targets[0], "id", "") == "model_cpu_offload_seq":
            out["model_cpu_offload_seq"] = ast.literal_eval(stmt.value)
    init = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    for stmt in ast.walk(init):
        if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Attribute) and isinstance(stmt.value, ast.Constant):
            out[stmt.targets[0].attr] = stmt.value.value
    return out


def test_listed_with_its_preset() -> None:
    res = CliRunner().invoke(main, ["models"])
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if ln.startswith(MID + " "))
    assert "hunyuanvideo1.5-480p" in line


def test_the_preset_is_the_pipelines_call_defaults() -> None:
    from diffusers.pipelines.hunyuan_video1_5.image_processor import HunyuanVideo15ImageProcessor

    from fxmeter.model.zoo import hunyuanvideo15 as hv

    sig = _call_defaults()
    rm = resolve_model(MID)
    wl = resolve(None, rm.default_workload)
    # height/width None -> calculate_default_height_width(9, 16, transformer.config.target_size)
    hw = HunyuanVideo15ImageProcessor(vae_scale_factor=16).calculate_default_height_width(9, 16, rm.config["target_size"])
    assert (wl.height, wl.width) == hw == (480, 848)
    assert (wl.frames, wl.steps) == (sig["num_frames"], sig["num_inference_steps"]) == (121, 50)
    assert wl.guidance_scale == 6.0  # the conversion script's 480p_t2v ClassifierFreeGuidance
    assert (sig["tokenizer_max_length"], sig["prompt_template_encode_start_idx"], sig["tokenizer_2_max_length"],
            sig["vision_num_semantic_tokens"]) == (hv.TOKENIZER_MAX_LENGTH, hv.CROP_START, hv.BYT5_MAX_LENGTH,
                                                  hv.IMAGE_TOKENS) == (1000, 108, 256, 729)
    assert "->".join(rm.adapter.offload_seq) == "text_encoder->transformer->vae"
    assert sig["model_cpu_offload_seq"] == "text_encoder->transformer->vae"


def test_geometry_at_the_preset() -> None:
    rm = resolve_model(MID)
    g = rm.geometry(resolve(None, rm.default_workload))
    # 121 frames -> (121 - 1) / 4 + 1 = 31 latent frames; 480 x 848 / 16 = 30 x 53; patch 1x1x1; 65 input channels
    assert g.latent_shape == (1, 65, 31, 30, 53)
    assert g.dims == {"batch": 1, "latent_frames": 31, "latent_h": 30, "latent_w": 53, "text_len": 128}
    assert g.tokens == 31 * 30 * 53 == 49_290


def test_stages_as_the_pipeline_runs_them() -> None:
    rm = resolve_model(MID)
    plans = {p.name: p for p in rm.stages(resolve(None, rm.default_workload))}
    assert list(plans) == ["text_encoder", "transformer", "vae"]  # no ByT5: a plain prompt has no quoted text
    assert [p.runs for p in plans.values()] == [2, 100, 1]  # prompt + negative; 50 steps x CFG; one decode
    assert plans["text_encoder"].dims == {"batch": 1, "seq_len": 1108}
    assert plans["vae"].dims == {"batch": 1, "latent_frames": 31, "latent_h": 30, "latent_w": 53}
    assert rm.components["text_encoder"].config["_class_name"] == "Qwen2_5_VLTextModel"
    assert rm.components["vae"].config["_class_name"] == "AutoencoderKLHunyuanVideo15"
    wl1 = resolve(None, rm.default_workload)
    one = rm.stages(type(wl1)(**{**wl1.__dict__, "guidance_scale": 1.0}))
    assert [p.runs for p in one] == [1, 50, 1]


def test_the_t2v_forward_differs_only_in_the_data_dependent_expressions() -> None:
    import difflib
    import inspect
    import textwrap

    from diffusers.models.transformers.transformer_hunyuan_video15 import HunyuanVideo15Transformer3DModel

    from fxmeter.model.zoo import hunyuanvideo15 as hv

    real = textwrap.dedent(inspect.getsource(HunyuanVideo15Transformer3DModel.forward)).splitlines()
    ours = hv.t2v_forward_source().splitlines()
    diff = list(difflib.ndiff(real, ours))
    removed = [ln[2:] for ln in diff if ln.startswith("- ")]
    added = [ln[2:] for ln in diff if ln.startswith("+ ")]
    assert added.pop(0).strip() == "valid_text_len: int = 1000,"  # the one new argument
    pairs = [(o, n) for o, n in hv._T2V_REPLACEMENTS if "\n" not in o]
    assert len(removed) == len(added) == len(pairs)  # one line per replaced expression, nothing else touched
    for before, after in zip(removed, added):
        assert sum(before.replace(o, n) == after for o, n in pairs if o in before) == 1, (before, after)
    cls = hv.t2v_class()
    assert issubclass(cls, HunyuanVideo15Transformer3DModel) and cls.__name__ == HunyuanVideo15Transformer3DModel.__name__
    assert resolve_model(MID).adapter.model_class is cls


def test_the_t2v_forward_computes_what_the_real_one_computes() -> None:
    """On the text-to-video pipeline's inputs (zero image embeddings, zero ByT5 mask, a right-padded prompt mask)
    a small random model's real forward and the t2v forward give the same output, bit for bit."""
    import torch
    from diffusers.models.transformers.transformer_hunyuan_video15 import HunyuanVideo15Transformer3DModel

    from fxmeter.model.zoo import hunyuanvideo15 as hv

    cfg = dict(in_channels=5, out_channels=4, num_attention_heads=2, attention_head_dim=16, num_layers=2,
               num_refiner_layers=1, text_embed_dim=12, text_embed_2_dim=10, image_embed_dim=8,
               rope_axes_dim=(4, 6, 6), task_type="t2v")
    torch.manual_seed(0)
    real = HunyuanVideo15Transformer3DModel(**cfg).eval()
    ours = hv.t2v_class()(**cfg).eval()
    ours.load_state_dict(real.state_dict())
    b, n, valid = 2, 9, 4
    mask = torch.zeros(b, n)
    mask[:, :valid] = 1
    kw = dict(hidden_states=torch.randn(b, 5, 2, 3, 4), timestep=torch.tensor([500.0, 500.0]),
              encoder_hidden_states=torch.randn(b, n, 12), encoder_attention_mask=mask,
              encoder_hidden_states_2=torch.zeros(b, 6, 10), encoder_attention_mask_2=torch.zeros(b, 6),
              image_embeds=torch.zeros(b, 7, 8), return_dict=False)
    with torch.no_grad():
        want = real(**kw)[0]
        got = ours(**kw, valid_text_len=valid)[0]
    assert torch.equal(want, got)


def test_the_vae_stage_builds_the_classs_causal_mask() -> None:
    """The decode stage's mid-block mask (one masked_fill) equals the class's row-by-row loop."""
    import torch
    from diffusers.models.autoencoders.autoencoder_kl_hunyuanvideo15 import HunyuanVideo15AttnBlock

    from fxmeter.model.zoo.hunyuanvideo15 import vectorized_causal_mask

    for frames, hw in ((1, 1), (3, 4), (5, 6), (2, 7)):
        for batch in (None, 2):
            want = HunyuanVideo15AttnBlock.prepare_causal_attention_mask(frames, hw, torch.bfloat16, "cpu", batch)
            assert torch.equal(want, vectorized_causal_mask(frames, hw, torch.bfloat16, "cpu", batch))
    # the patch is scoped to the stage's call
    assert HunyuanVideo15AttnBlock.__dict__["prepare_causal_attention_mask"].__func__.__name__ == "prepare_causal_attention_mask"


def test_reports_from_the_shipped_traces_alone(tmp_path: Path) -> None:
    from fxmeter.api import request, stage_inputs

    assert {i.source for i in stage_inputs(request(MID))} == {"shipped"}
    res = CliRunner().invoke(main, ["trace", MID, "--run-id", "s", "--output-root", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "49,290 tokens (latent 1x65x31x30x53), 50 steps x 2 passes" in res.output
    assert "whole generation (text_encoder x2, transformer x100, vae x1)" in res.output
    data = json.loads((tmp_path / "s" / "static_analysis" / "hunyuan_video15" / "report.json").read_text())
    assert data["unmodeled_ops"] == [] and data["model"]["id"] == MID and data["trace"]["mode"] == "dynamic"


def test_an_image_to_video_config_is_refused(tmp_path: Path) -> None:
    cfg = dict(resolve_model(MID).config, task_type="i2v")
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    res = CliRunner().invoke(main, ["trace", "--config", str(tmp_path / "config.json"), "--output-root", str(tmp_path)])
    assert res.exit_code == 2 and "HunyuanVideo15ImageToVideoPipeline" in res.output, res.output


@pytest.mark.slow  # the full-size 54-block model on meta, exported and run under FlopCounterMode (~30 s)
def test_one_forward_at_a_tiny_workload_counts_what_flop_counter_counts() -> None:
    """The shipped (dynamic) trace at 5 frames, 64 x 96 == FlopCounterMode on the full-size meta model running the
    same t2v call, in total and module by module."""
    from fxmeter.api import request
    from fxmeter.verify.reference import run_reference

    rep = fxmeter.trace(MID, stages="transformer", **TINY_WL)
    assert rep.data["unmodeled_ops"] == []
    req = request(MID, **TINY_WL)
    assert req.geometry.dims == {"batch": 1, "latent_frames": 2, "latent_h": 4, "latent_w": 6, "text_len": 8}
    ref = run_reference(req.model.component("transformer"), dict(req.geometry.dims), "bfloat16", "meta")
    assert rep.data["totals"]["per_forward"]["tensor_core_flops"] == ref.total > 0
    ours = {m["id"]: m["per_forward"]["tensor_core_flops"] for m in rep.data["modules"]}
    assert {k: v for k, v in ref.modules.items() if v} == {k: ours[k] for k, v in ref.modules.items() if v}


@pytest.mark.slow  # FlopCounterMode over every full-size stage on meta (54 blocks, Qwen2.5-VL-7B, the VAE decode)
def test_every_full_size_stage_counts_what_flop_counter_counts() -> None:
    """`fxmeter verify` at the preset: every module and every stage exactly equal to FlopCounterMode."""
    from fxmeter.api import verify

    res = verify(MID, write=False)
    assert res.passed and res.layers["max_rel_err"] == 0.0
    pf = res.end2end["per_forward"]
    assert pf["analytic_flops"] == pf["reference_flops"] > 0
    assert [s["name"] for s in res.stages] == ["text_encoder", "vae"]
    for s in res.stages:
        run = s["end2end"]["per_forward"]
        assert run["analytic_flops"] == run["reference_flops"] > 0, s["name"]
