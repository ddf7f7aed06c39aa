"""Sana 1600M at 1024 px (``fxmeter/model/zoo/sana.py``): the model as ``SanaPipeline`` runs it.

Fast lane: the model is listed, its preset's geometry written out, the pipeline's stages, a report from
the shipped traces, the transformer's FLOPs at a small size against ``FlopCounterMode`` on meta, the two
rules this model brought (``pixel_shuffle``, ``lift_fresh_copy``).  Slow: every stage at the preset against
``FlopCounterMode`` (the Gemma-2 text encoder's exported graph, the DC-AE decode eagerly).
"""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

import fxmeter
from fxmeter.cli.main import main
from fxmeter.errors import WorkloadError
from fxmeter.model.registry import resolve_model
from fxmeter.model.workload import resolve
from fxmeter.rules import OpCall, TensorMeta, lookup

MODEL = "sana-1600m-1024"

# SanaTransformer2DModel(70 heads x 32 = 2240, 20 layers, cross 20 heads x 112, caption 2304, mlp_ratio 2.5, patch 1):
#   patch_embed Conv2d(32 -> 2240, 1x1):            32 * 2240 + 2240                              =        73,920
#   time_embed: timestep MLP 256 -> 2240 -> 2240:    256 * 2240 + 2240 + 2240^2 + 2240            =     5,595,520
#               linear 2240 -> 6 * 2240:             2240 * 13440 + 13440                         =    30,119,040
#   caption_projection 2304 -> 2240 -> 2240:        2304 * 2240 + 2240 + 2240^2 + 2240           =    10,183,040
#   caption_norm (RMSNorm, affine):                                                                 =         2,240
#   per block: attn1 q/k/v without bias 3 x 2240^2, to_out 2240^2 + 2240                          =    20,072,640
#              attn2 q/k/v/out with bias 4 x (2240^2 + 2240)                                       =    20,079,360
#              ff: conv_inverted 2240 -> 11200 (+bias) 25,099,200; depthwise 3x3 on 11200 (+bias)
#                  112,000; conv_point 5600 -> 2240 (no bias) 12,544,000                           =    37,755,200
#              scale_shift_table 6 x 2240                                                          =        13,440
#              -> 77,920,640; x 20                                                                 = 1,558,412,800
#   scale_shift_table 2 x 2240 = 4,480; proj_out 2240 -> 32: 2240 * 32 + 32 = 71,712
TRANSFORMER_PARAMETERS = 1_604_462_752


def test_listed_with_its_preset() -> None:
    out = CliRunner().invoke(main, ["models"]).output
    assert MODEL in out and "sana-1024" in out
    assert "sana-1024" in CliRunner().invoke(main, ["workloads"]).output


def test_preset_geometry() -> None:
    rm = resolve_model(MODEL)
    wl = resolve(None, rm.default_workload)
    assert (wl.height, wl.width, wl.steps, wl.text_len, wl.guidance_scale) == (1024, 1024, 20, 300, 4.5)
    g = rm.geometry(wl)
    # DC-AE f32c32: 1024 / 32 = 32 latent rows and columns, 32 channels; patch 1: 32 * 32 = 1,024 tokens
    assert g.latent_shape == (1, 32, 32, 32)
    assert g.tokens == 1024
    assert g.dims == {"batch": 1, "patches_h": 32, "patches_w": 32, "text_len": 300}
    assert rm.passes_per_step(wl) == 2  # CFG 4.5
    # use_resolution_binning: 768 x 512 runs at the nearest bin of ASPECT_RATIO_1024_BIN, 1216 x 832 (ratio 0.68);
    # 1024 x 1000 (not divisible by 32) at 1024 x 1024
    g2 = rm.geometry(resolve(None, rm.default_workload, height=512, width=768))
    assert (g2.tokens, g2.latent_shape) == (26 * 38, (1, 32, 26, 38))
    assert rm.geometry(resolve(None, rm.default_workload, height=1000)).dims == g.dims
    with pytest.raises(WorkloadError, match="frames must be 1"):
        rm.geometry(resolve(None, rm.default_workload, frames=5))


def test_stages_as_the_pipeline_runs_them() -> None:
    rm = resolve_model(MODEL)
    wl = resolve(None, rm.default_workload)
    plans = rm.stages(wl)
    # prompt: 208 instruction tokens (BOS included) + 300 - 2 = 506; negative prompt: 300, no instruction
    assert [(p.name, p.component, p.runs, dict(p.dims or {}), p.dtype) for p in plans] == [
        ("text_encoder", "text_encoder", 1, {"batch": 1, "seq_len": 506}, "bfloat16"),
        ("text_encoder_negative", "text_encoder", 1, {"batch": 1, "seq_len": 300}, "bfloat16"),
        ("transformer", "transformer", 40, {}, None),  # 20 steps x 2 CFG passes
        ("vae", "vae", 1, {"batch": 1, "latent_h": 32, "latent_w": 32}, "float32"),
    ]
    one = rm.stages(resolve(None, rm.default_workload, guidance_scale=1.0))
    assert [(p.name, p.runs) for p in one] == [("text_encoder", 1), ("transformer", 20), ("vae", 1)]
    assert {c: rm.components[c].config["_class_name"] for c in ("text_encoder", "vae")} == {
        "text_encoder": "Gemma2Model", "vae": "AutoencoderDC"}


def test_report_from_the_shipped_traces() -> None:
    rep = fxmeter.trace(MODEL, run_id="zoo-sana")
    d = rep.data
    assert d["trace"]["cache"] == "shipped" and d["trace"]["mode"] == "dynamic"
    assert d["model"]["parameters"] == TRANSFORMER_PARAMETERS
    assert d["workload"]["tokens"] == 1024 and d["unmodeled_ops"] == []
    stages = d["pipeline"]["stages"]
    assert [(s["name"], s["class"], s["runs"]) for s in stages] == [
        ("text_encoder", "Gemma2Model", 1), ("text_encoder_negative", "Gemma2Model", 1),
        ("transformer", "SanaTransformer2DModel", 40), ("vae", "AutoencoderDC", 1)]
    assert all(s["trace"]["cache"] == "shipped" and s["unmodeled_ops"] == [] for s in stages)
    # one dynamic Gemma trace serves both lengths: the 506-token call costs more than the 300-token one
    assert stages[0]["per_run"]["tensor_core_flops"] > stages[1]["per_run"]["tensor_core_flops"]
    tc = d["totals"]["per_forward"]["tensor_core_flops"]
    assert d["totals"]["end_to_end"]["tensor_core_flops"] == 40 * tc


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


def test_transformer_counts_what_flop_counter_counts_at_another_bin() -> None:
    # 2048 x 512 is a bin of ASPECT_RATIO_1024_BIN ("0.25"): generated as asked, 16 x 64 patches
    rep = fxmeter.trace(MODEL, run_id="zoo-sana-0.25", height=512, width=2048, stages="transformer")
    dims = rep.data["workload"]["dims"]
    assert dims == {"batch": 1, "patches_h": 16, "patches_w": 64, "text_len": 300}
    assert rep.data["totals"]["per_forward"]["tensor_core_flops"] == _flop_counter_transformer(dims)


def _t(*shape: int, dtype: str = "bfloat16", size: int = 2) -> TensorMeta:
    return TensorMeta(tuple(shape), dtype, size)


def test_pixel_shuffle_moves_bytes_only() -> None:
    # (1, 64, 8, 8) -> (1, 16, 16, 16) with upscale 2: 4,096 elements x 2 bytes read, and written
    rule = lookup("aten.pixel_shuffle.default")
    assert rule is not None
    c = rule.fn(OpCall("aten.pixel_shuffle.default", (_t(1, 64, 8, 8), 2), {}, (_t(1, 16, 16, 16),)))
    assert (c.tensor_core_flops, c.cuda_core_flops, c.bytes_read, c.bytes_written) == (0, 0, 8192, 8192)
    un = lookup("aten.pixel_unshuffle.default")
    assert un is not None and un.fn is rule.fn


def test_lift_fresh_copy_moves_its_constant() -> None:
    # Gemma 2's normaliser torch.tensor(sqrt(2304)): a 0-d float32 constant, 4 bytes read and 4 written
    rule = lookup("aten.lift_fresh_copy.default")
    assert rule is not None
    c = rule.fn(OpCall("aten.lift_fresh_copy.default", (_t(dtype="float32", size=4),), {},
                       (_t(dtype="float32", size=4),)))
    assert (c.tensor_core_flops, c.cuda_core_flops, c.bytes_read, c.bytes_written) == (0, 0, 4, 4)


@pytest.mark.slow  # FlopCounterMode over the full stages on meta (the Gemma graph is exported: ~1 min)
def test_every_stage_counts_what_flop_counter_counts() -> None:
    import torch
    from diffusers import SanaTransformer2DModel

    from fxmeter.api import request, stage_inputs
    from fxmeter.estimate.evaluate import evaluate
    from fxmeter.verify.reference import run_stage_reference

    rm = resolve_model(MODEL)
    with torch.device("meta"):
        net = SanaTransformer2DModel(**{k: v for k, v in rm.config.items() if not k.startswith("_")})
    assert sum(p.numel() for p in net.parameters()) == TRANSFORMER_PARAMETERS
    req = request(MODEL)
    seen: dict[str, Any] = {}
    for inp in stage_inputs(req):
        ours = evaluate(inp.model, inp.dims)
        assert ours.unmodeled == ()
        if inp.plan.denoiser:
            ref_total = _flop_counter_transformer(dict(inp.dims))
        else:
            comp = req.model.stage_component(inp.plan)
            ref_total = run_stage_reference(comp, dict(inp.dims), str(inp.model.meta["dtype"]), inp.plan.root).total
        assert ours.total.tensor_core_flops == ref_total > 0, inp.plan.name
        seen[inp.plan.name] = ref_total
    assert set(seen) == {"text_encoder", "text_encoder_negative", "transformer", "vae"}
