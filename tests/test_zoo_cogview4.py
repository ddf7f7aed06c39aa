"""CogView4-6B (``fxmeter/model/zoo/cogview4.py``): the model as ``CogView4Pipeline`` runs it.

Fast lane: listed, the preset's geometry written out, the pipeline's stages, a report from the shipped
traces, the transformer's FLOPs at a small size against ``FlopCounterMode`` on meta, the ``floor_divide``
rule this model brought.  Slow: every stage at the preset against ``FlopCounterMode``.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import fxmeter
from fxmeter.cli.main import main
from fxmeter.errors import WorkloadError
from fxmeter.model.registry import resolve_model
from fxmeter.model.workload import resolve
from fxmeter.rules import OpCall, TensorMeta, lookup

MODEL = "cogview4-6b"

# CogView4Transformer2DModel(32 heads x 128 = 4096, 28 layers, patch 2, 16 channels, text 4096, time 512, condition 256):
#   patch_embed: proj 64 -> 4096 (+bias) 266,240; text_proj 4096 -> 4096 (+bias) 16,781,312          =    17,047,552
#   time_condition_embed: timestep MLP 4096 -> 512 -> 512: 2,097,664 + 262,656;
#                         condition MLP 3 x 2 x 256 = 1536 -> 512 -> 512: 786,944 + 262,656         =     3,409,920
#   per block: norm1 linear 512 -> 12 x 4096 (+bias)                                               =    25,214,976
#              attn1 q/k/v/out 4 x (4096^2 + 4096) (its q/k LayerNorms have no affine)             =    67,125,248
#              ff 4096 -> 16384 -> 4096 (+biases)                                                  =   134,238,208
#              -> 226,578,432; x 28                                                                = 6,344,196,096
#   norm_out linear 512 -> 2 x 4096 (+bias) 4,202,496; proj_out 4096 -> 2 * 2 * 16 (+bias) 262,208
TRANSFORMER_PARAMETERS = 6_369_118_272


def test_listed_with_its_preset() -> None:
    out = CliRunner().invoke(main, ["models"]).output
    assert MODEL in out and "cogview4-1024" in out


def test_preset_geometry() -> None:
    rm = resolve_model(MODEL)
    wl = resolve(None, rm.default_workload)
    assert (wl.height, wl.width, wl.steps, wl.text_len, wl.guidance_scale) == (1024, 1024, 50, 16, 5.0)
    g = rm.geometry(wl)
    # VAE 8x: 128 x 128 latent, 16 channels; patch 2: 64 x 64 = 4,096 image tokens (+ 16 text tokens, joint)
    assert g.latent_shape == (1, 16, 128, 128)
    assert g.tokens == 4096
    assert g.dims == {"batch": 1, "patches_h": 64, "patches_w": 64, "text_len": 16}
    assert rm.passes_per_step(wl) == 2  # conditional and unconditional forwards
    with pytest.raises(WorkloadError, match="multiple of 16"):
        rm.geometry(resolve(None, rm.default_workload, text_len=20))
    with pytest.raises(WorkloadError, match="divisible by 16"):
        rm.geometry(resolve(None, rm.default_workload, height=1000))


def test_stages_as_the_pipeline_runs_them() -> None:
    rm = resolve_model(MODEL)
    plans = rm.stages(resolve(None, rm.default_workload, text_len=48))
    # the prompt at its padded length, the empty negative prompt at 16; 50 steps x 2 forwards
    assert [(p.name, p.runs, dict(p.dims or {}), p.dtype) for p in plans] == [
        ("text_encoder", 1, {"batch": 1, "seq_len": 48}, None),
        ("text_encoder_negative", 1, {"batch": 1, "seq_len": 16}, None),
        ("transformer", 50, {}, None),  # the conditional pass: 48 text tokens
        ("transformer_uncond", 50, {"batch": 1, "patches_h": 64, "patches_w": 64, "text_len": 16}, None),
        ("vae", 1, {"batch": 1, "latent_h": 128, "latent_w": 128}, None),
    ]
    # at the preset both passes see 16 tokens: one stage, two forwards per step
    assert [(p.name, p.runs) for p in rm.stages(resolve(None, rm.default_workload))] == [
        ("text_encoder", 1), ("text_encoder_negative", 1), ("transformer", 100), ("vae", 1)]
    assert {c: rm.components[c].config["_class_name"] for c in ("text_encoder", "vae")} == {
        "text_encoder": "GlmModel", "vae": "AutoencoderKL"}


def test_report_from_the_shipped_traces() -> None:
    d = fxmeter.trace(MODEL, run_id="zoo-cogview4").data
    assert d["trace"]["cache"] == "shipped" and d["trace"]["mode"] == "dynamic"
    assert d["model"]["parameters"] == TRANSFORMER_PARAMETERS
    assert d["workload"]["tokens"] == 4096 and d["unmodeled_ops"] == []
    stages = d["pipeline"]["stages"]
    assert [(s["name"], s["class"], s["runs"]) for s in stages] == [
        ("text_encoder", "GlmModel", 1), ("text_encoder_negative", "GlmModel", 1),
        ("transformer", "CogView4Transformer2DModel", 100), ("vae", "AutoencoderKL", 1)]
    assert all(s["trace"]["cache"] == "shipped" and s["unmodeled_ops"] == [] for s in stages)
    tc = d["totals"]["per_forward"]["tensor_core_flops"]
    assert d["totals"]["end_to_end"]["tensor_core_flops"] == 100 * tc


def test_a_longer_prompt_costs_the_unconditional_pass_at_16_tokens() -> None:
    d = fxmeter.trace(MODEL, run_id="zoo-cogview4-t64", text_len=64, stages="transformer").data
    st = {s["name"]: s for s in d["pipeline"]["stages"]}
    assert (st["transformer"]["dims"]["text_len"], st["transformer_uncond"]["dims"]["text_len"]) == (64, 16)
    cond, uncond = (st[n]["per_run"]["tensor_core_flops"] for n in ("transformer", "transformer_uncond"))
    assert cond > uncond
    assert d["totals"]["end_to_end"]["tensor_core_flops"] == 50 * cond + 50 * uncond


def _flop_counter_transformer(dims: dict[str, int]) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fxmeter.model.capture import build_model

    rm = resolve_model(MODEL)
    net = build_model(rm.config, "bfloat16")
    kw = rm.adapter.inputs(rm.config, dims, torch.bfloat16)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(**kw)
    return int(counter.get_total_flops())


def test_transformer_counts_what_flop_counter_counts_at_256px() -> None:
    rep = fxmeter.trace(MODEL, run_id="zoo-cogview4-256", height=256, width=256, text_len=32, stages="transformer")
    dims = rep.data["workload"]["dims"]
    assert dims == {"batch": 1, "patches_h": 16, "patches_w": 16, "text_len": 32}
    assert rep.data["totals"]["per_forward"]["tensor_core_flops"] == _flop_counter_transformer(dims)


def test_floor_divide_is_one_flop_per_element() -> None:
    # arange(64) (int64) // 64 -> 64 elements: 64 FLOPs, 512 bytes read (the scalar divisor is no tensor), 512 written
    rule = lookup("aten.floor_divide.Scalar")
    assert rule is not None
    t = TensorMeta((64,), "int64", 8)
    c = rule.fn(OpCall("aten.floor_divide.Scalar", (t, 64), {}, (t,)))
    assert (c.tensor_core_flops, c.cuda_core_flops, c.bytes_read, c.bytes_written) == (0, 64, 512, 512)
    assert lookup("aten.floor_divide.default") is not None and lookup("aten.floor_divide_.Tensor") is not None


@pytest.mark.slow  # FlopCounterMode over the full stages on meta (GLM's exported graph: minutes)
def test_every_stage_counts_what_flop_counter_counts() -> None:
    import torch
    from diffusers import CogView4Transformer2DModel

    from fxmeter.api import request, stage_inputs
    from fxmeter.estimate.evaluate import evaluate
    from fxmeter.verify.reference import run_stage_reference

    rm = resolve_model(MODEL)
    with torch.device("meta"):
        net = CogView4Transformer2DModel(**{k: v for k, v in rm.config.items() if not k.startswith("_")})
    assert sum(p.numel() for p in net.parameters()) == TRANSFORMER_PARAMETERS
    req = request(MODEL)
    seen = set()
    for inp in stage_inputs(req):
        ours = evaluate(inp.model, inp.dims)
        assert ours.unmodeled == ()
        if inp.plan.denoiser:
            ref_total = _flop_counter_transformer(dict(inp.dims))
        else:
            comp = req.model.stage_component(inp.plan)
            ref_total = run_stage_reference(comp, dict(inp.dims), str(inp.model.meta["dtype"]), inp.plan.root).total
        assert ours.total.tensor_core_flops == ref_total > 0, inp.plan.name
        seen.add(inp.plan.name)
    assert seen == {"text_encoder", "text_encoder_negative", "transformer", "vae"}
