"""PixArt-Sigma XL/2 1024 (``fxmeter/model/zoo/pixart_sigma.py``): the model as ``PixArtSigmaPipeline`` runs it.

Fast lane: listed, the preset's geometry written out, the pipeline's stages (CFG batched: one forward of 2x the
batch), a report from the shipped traces.  Slow: the transformer at another aspect-ratio bin (a fresh static trace) and every stage
at the preset against ``FlopCounterMode`` on meta.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import fxmeter
from fxmeter.cli.main import main
from fxmeter.errors import WorkloadError
from fxmeter.model.registry import resolve_model
from fxmeter.model.workload import resolve

MODEL = "pixart-sigma-1024"

# PixArtTransformer2DModel(16 heads x 72 = 1152, 28 layers, patch 2, 4 -> 8 channels, caption 4096):
#   pos_embed proj Conv2d(4 -> 1152, 2x2) (+bias): 4 * 4 * 1152 + 1152                           =        19,584
#   adaln_single: timestep MLP 256 -> 1152 -> 1152 (+biases) 296,064 + 1,328,256;
#                 linear 1152 -> 6 x 1152 (+bias) 7,969,536                                       =     9,593,856
#   caption_projection 4096 -> 1152 -> 1152 (+biases): 4,719,744 + 1,328,256                      =     6,048,000
#   per block: attn1, attn2 each q/k/v/out 4 x (1152^2 + 1152) = 5,313,024 (cross k/v read the projected caption)
#              ff 1152 -> 4608 -> 1152 (+biases) 10,622,592; scale_shift_table 6 x 1152 6,912     =    21,255,552
#              x 28                                                                               =   595,155,456
#   scale_shift_table 2 x 1152 = 2,304; proj_out 1152 -> 2 * 2 * 8 (+bias) 36,896
TRANSFORMER_PARAMETERS = 610_856_096


def test_listed_with_its_preset() -> None:
    out = CliRunner().invoke(main, ["models"]).output
    assert MODEL in out and "pixart-1024" in out
    assert "pixart-1024" in CliRunner().invoke(main, ["workloads"]).output


def test_preset_geometry() -> None:
    rm = resolve_model(MODEL)
    wl = resolve(None, rm.default_workload)
    # PixArtSigmaPipeline.__call__ defaults: sample_size 128 x 8 = 1024 px, 20 steps, CFG 4.5, max_sequence_length 300
    assert (wl.height, wl.width, wl.steps, wl.text_len, wl.guidance_scale) == (1024, 1024, 20, 300, 4.5)
    g = rm.geometry(wl)
    # SDXL VAE 8x: 128 x 128 latent, 4 channels; patch 2: 64 x 64 = 4,096 tokens
    assert g.latent_shape == (1, 4, 128, 128)
    assert g.tokens == 4096
    assert g.dims == {"batch": 1, "latent_h": 128, "latent_w": 128, "text_len": 300}
    # use_resolution_binning: 768 x 512 runs at the nearest bin of ASPECT_RATIO_1024_BIN, 1216 x 832 (ratio 0.68);
    # a size no patch divides, 1024 x 1000, at 1024 x 1024 (tests/test_zoo_binning.py: the resize back)
    g2 = rm.geometry(resolve(None, rm.default_workload, height=512, width=768))
    assert (g2.tokens, g2.latent_shape) == (52 * 76, (1, 4, 104, 152))
    assert rm.geometry(resolve(None, rm.default_workload, height=1000)).dims == g.dims
    with pytest.raises(WorkloadError, match="frames must be 1"):
        rm.geometry(resolve(None, rm.default_workload, frames=5))


def test_stages_as_the_pipeline_runs_them() -> None:
    rm = resolve_model(MODEL)
    plans = rm.stages(resolve(None, rm.default_workload))
    # T5 on the prompt and on the empty negative prompt (both 300 tokens); CFG batched: 20 forwards of 2x the batch
    assert [(p.name, p.runs, p.batch_factor, dict(p.dims or {})) for p in plans] == [
        ("text_encoder", 2, 1, {"batch": 1, "seq_len": 300}),
        ("transformer", 20, 2, {}),
        ("vae", 1, 1, {"batch": 1, "latent_h": 128, "latent_w": 128}),
    ]
    one = rm.stages(resolve(None, rm.default_workload, guidance_scale=1.0))
    assert [(p.name, p.runs, p.batch_factor) for p in one] == [("text_encoder", 1, 1), ("transformer", 20, 1),
                                                                ("vae", 1, 1)]
    assert {c: rm.components[c].config["_class_name"] for c in ("text_encoder", "vae")} == {
        "text_encoder": "T5EncoderModel", "vae": "AutoencoderKL"}
    assert rm.components["vae"].config["latent_channels"] == 4


def test_report_from_the_shipped_traces() -> None:
    d = fxmeter.trace(MODEL, run_id="zoo-pixart").data
    assert d["trace"]["cache"] == "shipped" and d["trace"]["mode"] == "static"
    assert d["model"]["parameters"] == TRANSFORMER_PARAMETERS
    assert d["workload"]["tokens"] == 4096 and d["unmodeled_ops"] == []
    stages = d["pipeline"]["stages"]
    assert [(s["name"], s["class"], s["runs"], s["dims"]["batch"]) for s in stages] == [
        ("text_encoder", "T5EncoderModel", 2, 1), ("transformer", "PixArtTransformer2DModel", 20, 2),
        ("vae", "AutoencoderKL", 1, 1)]
    assert all(s["trace"]["cache"] == "shipped" and s["unmodeled_ops"] == [] for s in stages)
    tc = d["totals"]["per_forward"]["tensor_core_flops"]
    assert d["totals"]["end_to_end"]["tensor_core_flops"] == 20 * tc


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


@pytest.mark.slow  # a static export per workload: another bin is traced anew (~15 s)
def test_transformer_counts_what_flop_counter_counts_at_another_bin() -> None:
    # 1344 x 768 is a bin of ASPECT_RATIO_1024_BIN ("0.57"): generated as asked (any other size runs at its bin)
    rep = fxmeter.trace(MODEL, run_id="zoo-pixart-0.57", height=768, width=1344, stages="transformer")
    dims = rep.data["workload"]["dims"]
    assert dims == {"batch": 1, "latent_h": 96, "latent_w": 168, "text_len": 300}
    st = {s["name"]: s for s in rep.data["pipeline"]["stages"]}
    assert st["transformer"]["dims"]["batch"] == 2  # CFG batched
    assert rep.data["totals"]["per_forward"]["tensor_core_flops"] == _flop_counter_transformer(dict(st["transformer"]["dims"]))


@pytest.mark.slow  # FlopCounterMode over the full stages on meta (T5-XXL's exported graph)
def test_every_stage_counts_what_flop_counter_counts() -> None:
    import torch
    from diffusers import PixArtTransformer2DModel

    from fxmeter.api import request, stage_inputs
    from fxmeter.estimate.evaluate import evaluate
    from fxmeter.verify.reference import run_stage_reference

    rm = resolve_model(MODEL)
    with torch.device("meta"):
        net = PixArtTransformer2DModel(**{k: v for k, v in rm.config.items() if not k.startswith("_")})
    assert sum(p.numel() for p in net.parameters()) == TRANSFORMER_PARAMETERS
    req = request(MODEL)
    seen: dict[str, int] = {}
    for inp in stage_inputs(req):
        ours = evaluate(inp.model, inp.dims)
        assert ours.unmodeled == ()
        if inp.plan.denoiser:
            assert inp.dims["batch"] == 2  # one forward of both CFG branches
            ref_total = _flop_counter_transformer(dict(inp.dims))
        else:
            comp = req.model.stage_component(inp.plan)
            ref_total = run_stage_reference(comp, dict(inp.dims), str(inp.model.meta["dtype"]), inp.plan.root).total
        assert ours.total.tensor_core_flops == ref_total > 0, inp.plan.name
        seen[inp.plan.name] = ref_total
    assert set(seen) == {"text_encoder", "transformer", "vae"}
