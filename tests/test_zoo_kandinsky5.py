"""Kandinsky 5.0 T2V Lite (``fxmeter/model/zoo/kandinsky5.py``): Kandinsky5Transformer3DModel in Kandinsky5T2VPipeline.

The registry lists the model with its preset (the pipeline's ``__call__`` defaults, read from diffusers' source),
the stages are the pipeline's calls (Qwen2.5-VL and CLIP-L twice with CFG, 100 transformer forwards, one decode),
the geometry is written out, the shipped traces report without tracing and count what a hand formula of the
architecture counts, the traced forward is the class's own (the same output as the pipeline's list call), a NABLA
config is refused, and in the slow lane every full-size stage equals FlopCounterMode (``fxmeter verify``).
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

MID = "kandinsky5-t2v-lite"
PRESET = "kandinsky5-512"
# 121 frames -> (121 - 1) / 4 + 1 = 31 latent frames; 512 x 768 / 8 = 64 x 96 latent; patch (1, 2, 2) -> 32 x 48
TOKENS = 31 * 32 * 48  # 47,616
TEXT = 512  # max_sequence_length: what the transformer sees
D, F, TD = 1792, 7168, 512  # model_dim, ff_dim, time_dim


def transformer_flops(n: int, t: int) -> int:
    """Tensor-core FLOPs of one Kandinsky5Transformer3DModel forward, batch 1, by hand (2 per MAC): 32 visual
    blocks (self-attention over n video tokens, cross-attention to t text tokens, FFN d -> 4d -> d), 2 text blocks
    (self-attention over t tokens), the embeddings and the output layer."""
    visual = (2 * TD * 9 * D  # visual_modulation: Linear(time_dim, 9d)
              + 4 * 2 * n * D * D + 4 * n * n * D  # self-attention q, k, v, out; QK^T and PV
              + 2 * 2 * n * D * D + 2 * 2 * t * D * D + 4 * n * t * D  # cross-attention q, out; k, v on text
              + 2 * 2 * n * D * F)  # feed_forward
    text = 2 * TD * 6 * D + 4 * 2 * t * D * D + 4 * t * t * D + 2 * 2 * t * D * F
    outside = (2 * n * (4 * 33) * D  # visual_embeddings: 2 x 2 patches of 33 channels (visual_cond)
               + 2 * t * 3584 * D  # text_embeddings
               + 2 * 768 * TD  # pooled_text_embeddings
               + 2 * D * TD + 2 * TD * TD  # time_embeddings
               + 2 * TD * 2 * D  # out_layer.modulation
               + 2 * n * D * 4 * 16)  # out_layer.out_layer
    return 32 * visual + 2 * text + outside


def qwen25_vl_flops(n: int) -> int:
    """Qwen2.5-VL-7B on n tokens, batch 1: 28 layers and the lm_head over every token (as test_zoo_qwen_image)."""
    h = 3584
    layer = 2 * n * (2 * h * h + 2 * h * 512 + 3 * h * 18944) + 4 * n * n * h
    return 28 * layer + 2 * n * h * 152064


def _call_defaults() -> dict[str, Any]:
    """Kandinsky5T2VPipeline.__call__'s defaults, its offload order and template drop, read from diffusers' source."""
    spec = importlib.util.find_spec("diffusers")
    assert spec is not None and spec.origin is not None
    path = Path(spec.origin).parent / "pipelines" / "kandinsky5" / "pipeline_kandinsky.py"
    cls = next(n for n in ast.parse(path.read_text()).body
               if isinstance(n, ast.ClassDef) and n.name == "Kandinsky5T2VPipeline")
    call = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__call__")
    args = call.args.args[len(call.args.args) - len(call.args.defaults):]
    out = {a.arg: ast.literal_eval(d) for a, d in zip(args, call.args.defaults) if isinstance(d, ast.Constant)}
    for stmt in ast.walk(cls):
        if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant):
            tgt = stmt.targets[0]
            name = getattr(tgt, "id", None) or getattr(tgt, "attr", None)
            if name in ("model_cpu_offload_seq", "prompt_template_encode_start_idx"):
                out[name] = stmt.value.value
    return out


def test_listed_with_its_preset() -> None:
    res = CliRunner().invoke(main, ["models"])
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if ln.startswith(MID + " "))
    assert PRESET in line


def test_the_preset_is_the_pipelines_call_defaults() -> None:
    from fxmeter.model.zoo import kandinsky5 as k5

    sig = _call_defaults()
    rm = resolve_model(MID)
    wl = resolve(None, rm.default_workload)
    assert (wl.height, wl.width, wl.frames, wl.steps, wl.guidance_scale) == (
        sig["height"], sig["width"], sig["num_frames"], sig["num_inference_steps"], sig["guidance_scale"]) == (
        512, 768, 121, 50, 5.0)
    assert wl.text_len == sig["max_sequence_length"] == k5.MAX_SEQUENCE_LENGTH == 512
    assert sig["prompt_template_encode_start_idx"] == k5.DROP_IDX == 128
    assert sig["model_cpu_offload_seq"] == "->".join(rm.adapter.offload_seq) == (
        "text_encoder->text_encoder_2->transformer->vae")
    # the 5s checkpoint: full attention, 33 input channels (visual_cond)
    assert rm.config["attention_type"] == "regular" and rm.config["visual_cond"] is True


def test_geometry_at_the_preset() -> None:
    rm = resolve_model(MID)
    g = rm.geometry(resolve(None, PRESET))
    assert g.dims == {"batch": 1, "latent_frames": 31, "patches_h": 32, "patches_w": 48, "text_len": 512}
    assert g.latent_shape == (1, 31, 64, 96, 33)  # channels-last, cat([latents, zeros, zero mask])
    assert g.tokens == TOKENS == 47_616


def test_stages_as_the_pipeline_runs_them() -> None:
    rm = resolve_model(MID)
    plans = {p.name: p for p in rm.stages(resolve(None, PRESET))}
    assert list(plans) == ["text_encoder", "text_encoder_2", "transformer", "vae"]
    assert [p.runs for p in plans.values()] == [2, 2, 100, 1]  # prompt + negative; 50 steps x 2 separate passes
    assert plans["transformer"].batch_factor == 1  # cond and uncond are two forwards of batch 1, not one of 2
    assert plans["text_encoder"].dims == {"batch": 1, "seq_len": TEXT + 128}
    assert plans["text_encoder_2"].dims == {"batch": 1}
    assert plans["vae"].dims == {"batch": 1, "latent_frames": 31, "latent_h": 64, "latent_w": 96}
    classes = {c: rm.components[c].config["_class_name"] for c in ("text_encoder", "text_encoder_2", "vae")}
    assert classes == {"text_encoder": "Qwen2_5_VLForConditionalGeneration", "text_encoder_2": "CLIPTextModel",
                       "vae": "AutoencoderKLHunyuanVideo"}
    one = rm.stages(resolve(None, PRESET, guidance_scale=1.0))
    assert [p.runs for p in one] == [1, 1, 50, 1]


def test_reports_from_the_shipped_traces_alone(tmp_path: Path) -> None:
    from fxmeter.api import request, stage_inputs

    assert {i.source for i in stage_inputs(request(MID))} == {"shipped"}
    res = CliRunner().invoke(main, ["trace", MID, "--run-id", "s", "--output-root", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "47,616 tokens (latent 1x31x64x96x33), 50 steps x 2 passes" in res.output
    assert "whole generation (text_encoder x2, text_encoder_2 x2, transformer x100, vae x1)" in res.output
    data = json.loads((tmp_path / "s" / "static_analysis" / "kandinsky5" / "report.json").read_text())
    assert data["unmodeled_ops"] == [] and data["model"]["id"] == MID and data["trace"]["mode"] == "dynamic"
    assert data["totals"]["per_forward"]["tensor_core_flops"] == transformer_flops(TOKENS, TEXT)
    stages = {s["name"]: s for s in data["pipeline"]["stages"]}
    assert stages["text_encoder"]["per_run"]["tensor_core_flops"] == qwen25_vl_flops(TEXT + 128)


def test_another_workload_from_the_same_dynamic_trace() -> None:
    rep = fxmeter.trace(MID, stages="transformer", frames=25, height=480, width=848, text_len=40)
    # 25 frames -> 7 latent frames; 480 x 848 / 16 -> 30 x 53 patches
    assert rep.data["workload"]["tokens"] == 7 * 30 * 53
    assert rep.data["totals"]["per_forward"]["tensor_core_flops"] == transformer_flops(7 * 30 * 53, 40)


def test_the_traced_forward_computes_what_the_pipelines_call_computes() -> None:
    """A small random model: the class's forward with the pipeline's list of RoPE positions and the traced
    forward with the three tensors give the same output, bit for bit."""
    import torch
    from diffusers.models.transformers.transformer_kandinsky import Kandinsky5Transformer3DModel

    from fxmeter.model.zoo import kandinsky5 as k5

    cfg = dict(in_visual_dim=4, out_visual_dim=4, in_text_dim=12, in_text_dim2=10, time_dim=16, model_dim=32,
               ff_dim=64, num_text_blocks=1, num_visual_blocks=2, axes_dims=(4, 6, 6), visual_cond=True)
    torch.manual_seed(0)
    real = Kandinsky5Transformer3DModel(**cfg).eval()
    ours = k5.t2v_class()(**cfg).eval()
    ours.load_state_dict(real.state_dict())
    for m in (real, ours):  # the modulations are zero-initialised; give them weights so the blocks do something
        torch.manual_seed(1)
        for p in m.parameters():
            p.data.normal_(0, 0.1)
    ours.load_state_dict(real.state_dict())
    b, t, f, h, w = 2, 5, 3, 4, 6
    kw = dict(hidden_states=torch.randn(b, f, h, w, 9), encoder_hidden_states=torch.randn(b, t, 12),
              timestep=torch.tensor([500.0, 500.0]), pooled_projections=torch.randn(b, 10))
    pos = [torch.arange(f), torch.arange(h // 2), torch.arange(w // 2)]
    with torch.no_grad():
        want = real(**kw, visual_rope_pos=pos, text_rope_pos=torch.arange(t), scale_factor=k5.SCALE_FACTOR,
                    sparse_params=None, return_dict=False)
        got = ours(**kw, visual_rope_t=pos[0], visual_rope_h=pos[1], visual_rope_w=pos[2],
                   text_rope_pos=torch.arange(t))
    assert torch.equal(want, got)
    assert issubclass(k5.t2v_class(), Kandinsky5Transformer3DModel)
    assert resolve_model(MID).adapter.model_class is k5.t2v_class()


def test_a_nabla_config_is_refused(tmp_path: Path) -> None:
    cfg = dict(resolve_model(MID).config, attention_type="nabla", attention_P=0.9)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    res = CliRunner().invoke(main, ["trace", "--config", str(tmp_path / "config.json"), "--output-root", str(tmp_path)])
    assert res.exit_code == 2 and "NABLA" in res.output, res.output


@pytest.mark.slow  # FlopCounterMode over every full-size stage on meta (32 + 2 blocks, Qwen2.5-VL-7B, CLIP-L, the VAE)
def test_every_full_size_stage_counts_what_flop_counter_counts() -> None:
    """`fxmeter verify` at the preset: every module and every stage exactly equal to FlopCounterMode."""
    from fxmeter.api import verify

    res = verify(MID, write=False)
    assert res.passed and res.layers["max_rel_err"] == 0.0
    pf = res.end2end["per_forward"]
    assert pf["analytic_flops"] == pf["reference_flops"] == transformer_flops(TOKENS, TEXT)
    assert [s["name"] for s in res.stages] == ["text_encoder", "text_encoder_2", "vae"]
    for s in res.stages:
        run = s["end2end"]["per_forward"]
        assert run["analytic_flops"] == run["reference_flops"] > 0, s["name"]
