"""SANA-Video 2B 480p (``fxmeter/model/zoo/sana_video.py``): the model as ``SanaVideoPipeline`` runs it.

Fast lane: listed, the preset's geometry written out, the pipeline's stages, a report from the shipped
traces, the transformer's FLOPs at a small size against ``FlopCounterMode`` on meta.  Slow: every stage at
the preset against ``FlopCounterMode``.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import fxmeter
from fxmeter.cli.main import main
from fxmeter.model.registry import resolve_model
from fxmeter.model.workload import resolve

MODEL = "sana-video-2b-480p"

# SanaVideoTransformer3DModel(20 heads x 112 = 2240, 20 layers, cross 20 x 112, caption 2304, mlp_ratio 3.0,
# patch (1, 2, 2), qk_norm rms_norm_across_heads, 16 channels):
#   patch_embedding Conv3d(16 -> 2240, 1x2x2):   16 * 4 * 2240 + 2240                              =       145,600
#   time_embed (as Sana's):                       5,595,520 + 30,119,040                           =    35,714,560
#   caption_projection 2304 -> 2240 -> 2240 + caption_norm: 10,183,040 + 2,240                     =    10,185,280
#   per block: attn1 q/k/v without bias 3 x 2240^2 + norm_q/norm_k 2 x 2240 + to_out 2240^2 + 2240 =    20,077,120
#              attn2 q/k/v/out with bias 4 x (2240^2 + 2240) + norm_q/norm_k 2 x 2240              =    20,083,840
#              ff: conv_inverted 2240 -> 13440 (+bias) 30,119,040; depthwise 3x3 (+bias) 134,400;
#                  conv_point 6720 -> 2240 15,052,800; conv_temp (3, 1) 2240 -> 2240 15,052,800    =    60,359,040
#              scale_shift_table 6 x 2240                                                          =        13,440
#              -> 100,533,440; x 20                                                                = 2,010,668,800
#   scale_shift_table 2 x 2240 = 4,480; proj_out 2240 -> 1*2*2*16: 2240 * 64 + 64 = 143,424
TRANSFORMER_PARAMETERS = 2_056_862_144


def test_listed_with_its_preset() -> None:
    out = CliRunner().invoke(main, ["models"]).output
    assert MODEL in out and "sana-video-480p" in out


def test_preset_geometry() -> None:
    rm = resolve_model(MODEL)
    wl = resolve(None, rm.default_workload)
    assert (wl.frames, wl.height, wl.width, wl.steps, wl.text_len, wl.guidance_scale) == (81, 480, 832, 50, 300, 6.0)
    g = rm.geometry(wl)
    # Wan VAE: (81 - 1) // 4 + 1 = 21 latent frames, 480 / 8 = 60, 832 / 8 = 104; patch (1, 2, 2): 21 x 30 x 52
    assert g.latent_shape == (1, 16, 21, 60, 104)
    assert g.tokens == 21 * 30 * 52 == 32_760
    assert g.dims == {"batch": 1, "latent_frames": 21, "patches_h": 30, "patches_w": 52, "text_len": 300}
    assert rm.passes_per_step(wl) == 2
    # use_resolution_binning: 832 x 496 (not divisible by 32) runs at the bin 832 x 480 of ASPECT_RATIO_480_BIN
    assert rm.geometry(resolve(None, rm.default_workload, height=496)).dims == g.dims


def test_stages_as_the_pipeline_runs_them() -> None:
    rm = resolve_model(MODEL)
    plans = rm.stages(resolve(None, rm.default_workload))
    # prompt: 221 video-instruction tokens (BOS included) + 300 - 2 = 519; negative prompt: 300
    assert [(p.name, p.runs, dict(p.dims or {}), p.dtype) for p in plans] == [
        ("text_encoder", 1, {"batch": 1, "seq_len": 519}, "bfloat16"),
        ("text_encoder_negative", 1, {"batch": 1, "seq_len": 300}, "bfloat16"),
        ("transformer", 100, {}, None),  # 50 steps x 2 CFG passes
        ("vae", 1, {"batch": 1, "latent_frames": 21, "latent_h": 60, "latent_w": 104}, "float32"),
    ]
    assert {c: rm.components[c].config["_class_name"] for c in ("text_encoder", "vae")} == {
        "text_encoder": "Gemma2Model", "vae": "AutoencoderKLWan"}


def test_report_from_the_shipped_traces() -> None:
    d = fxmeter.trace(MODEL, run_id="zoo-sana-video").data
    assert d["trace"]["cache"] == "shipped" and d["trace"]["mode"] == "dynamic"
    assert d["model"]["parameters"] == TRANSFORMER_PARAMETERS
    assert d["workload"]["tokens"] == 32_760 and d["unmodeled_ops"] == []
    stages = d["pipeline"]["stages"]
    assert [(s["name"], s["class"], s["runs"]) for s in stages] == [
        ("text_encoder", "Gemma2Model", 1), ("text_encoder_negative", "Gemma2Model", 1),
        ("transformer", "SanaVideoTransformer3DModel", 100), ("vae", "AutoencoderKLWan", 1)]
    assert all(s["trace"]["cache"] == "shipped" and s["unmodeled_ops"] == [] for s in stages)
    tc = d["totals"]["per_forward"]["tensor_core_flops"]
    assert d["totals"]["end_to_end"]["tensor_core_flops"] == 100 * tc


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


def test_transformer_counts_what_flop_counter_counts_small() -> None:
    # 9 frames -> 3 latent frames, 896 x 448 (a bin of ASPECT_RATIO_480_BIN, "0.5") -> 56 x 112 latent -> 28 x 56
    # patches: 4,704 tokens
    rep = fxmeter.trace(MODEL, run_id="zoo-sana-video-small", frames=9, height=448, width=896, stages="transformer")
    dims = rep.data["workload"]["dims"]
    assert dims == {"batch": 1, "latent_frames": 3, "patches_h": 28, "patches_w": 56, "text_len": 300}
    assert rep.data["totals"]["per_forward"]["tensor_core_flops"] == _flop_counter_transformer(dims)


@pytest.mark.slow  # FlopCounterMode over the full stages on meta (Gemma's graph, Wan's VAE over 21 frames: minutes)
def test_every_stage_counts_what_flop_counter_counts() -> None:
    import torch
    from diffusers import SanaVideoTransformer3DModel

    from fxmeter.api import request, stage_inputs
    from fxmeter.estimate.evaluate import evaluate
    from fxmeter.verify.reference import run_stage_reference

    rm = resolve_model(MODEL)
    with torch.device("meta"):
        net = SanaVideoTransformer3DModel(**{k: v for k, v in rm.config.items() if not k.startswith("_")})
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
