"""Lumina-Image-2.0 (``fxmeter/model/zoo/lumina2.py``): the model as ``Lumina2Pipeline`` runs it.

Fast lane: listed, the preset's geometry written out, the pipeline's stages (two separate CFG passes, the
unconditional one at the empty prompt's 1 valid token), a report from the shipped traces, the patched forward
against the real one on CPU (a tiny model, a real right-padded mask: identical output).  Slow: every stage at
the preset against ``FlopCounterMode`` on meta.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import fxmeter
from fxmeter.cli.main import main
from fxmeter.errors import WorkloadError
from fxmeter.model.registry import resolve_model
from fxmeter.model.workload import resolve

MODEL = "lumina-image-2.0"

# Lumina2Transformer2DModel(2304 = 24 heads x 96, 8 k/v heads (768), 26 layers + 2 + 2 refiners, FFN 9216, cap 2304):
#   x_embedder 64 -> 2304 (+bias)                                                  =       149,760
#   time_caption_embed: timestep MLP 256 -> 1024 -> 1024 (+biases) 263,168 + 1,049,600;
#                       caption RMSNorm 2304 + linear 2304 -> 2304 (+bias) 5,310,720  =     6,625,792
#   attn (every block): q 2304^2, k/v 2 x 2304 x 768, out 2304^2 (no biases), q/k RMSNorm 2 x 96  =  14,155,968
#   feed_forward: 3 x 2304 x 9216 (no biases)                                       =    63,700,992
#   main / noise-refiner block: + norm1 (LuminaRMSNormZero: 1024 -> 4 x 2304 (+bias) 9,446,400, RMSNorm 2304)
#                               + 3 RMSNorms x 2304                                 =    87,312,576
#   context-refiner block: + 4 RMSNorms x 2304                                      =    77,866,176
#   26 + 2 main / noise blocks 2,444,752,128; 2 context blocks 155,732,352
#   norm_out: linear_1 1024 -> 2304 (+bias) 2,361,600; linear_2 2304 -> 64 (+bias) 147,520
TRANSFORMER_PARAMETERS = 2_609_769_152


def test_listed_with_its_preset() -> None:
    out = CliRunner().invoke(main, ["models"]).output
    assert MODEL in out and "lumina-image-2.0-1024" in out
    assert "lumina-image-2.0-1024" in CliRunner().invoke(main, ["workloads"]).output


def test_preset_geometry() -> None:
    rm = resolve_model(MODEL)
    wl = resolve(None, rm.default_workload)
    # Lumina2Pipeline.__call__ defaults: sample_size 128 x 8 = 1024 px, 30 steps, guidance 4.0, max_sequence_length 256
    assert (wl.height, wl.width, wl.steps, wl.text_len, wl.guidance_scale) == (1024, 1024, 30, 256, 4.0)
    g = rm.geometry(wl)
    # VAE 8x: 128 x 128 latent, 16 channels; patch 2: 64 x 64 = 4,096 image tokens
    assert g.latent_shape == (1, 16, 128, 128)
    assert g.tokens == 4096
    assert g.dims == {"batch": 1, "latent_h": 128, "latent_w": 128, "text_len": 256, "seq_len": 256}
    assert rm.passes_per_step(wl) == 2
    # a short prompt: Gemma still runs the padded 256 tokens, the joint sequence holds the 40 valid ones
    assert rm.geometry(resolve(None, rm.default_workload, text_len=40)).dims["seq_len"] == 256
    assert rm.geometry(resolve(None, rm.default_workload, text_len=300)).dims["seq_len"] == 300
    with pytest.raises(WorkloadError, match="divisible by 16"):
        rm.geometry(resolve(None, rm.default_workload, height=1000))
    with pytest.raises(WorkloadError, match="1..512"):
        rm.geometry(resolve(None, rm.default_workload, text_len=600))
    with pytest.raises(WorkloadError, match="frames must be 1"):
        rm.geometry(resolve(None, rm.default_workload, frames=5))


def test_stages_as_the_pipeline_runs_them() -> None:
    rm = resolve_model(MODEL)
    plans = rm.stages(resolve(None, rm.default_workload))
    # Gemma on the prompt and on the empty negative prompt (both padded to 256); 30 steps, each a conditional and
    # an unconditional forward (not batched); the unconditional one has 1 valid text token (Gemma's <bos>)
    assert [(p.name, p.component, p.root, p.runs, dict(p.dims or {})) for p in plans] == [
        ("text_encoder", "text_encoder", "text_encoder", 2, {"batch": 1, "seq_len": 256}),
        ("transformer", "transformer", "transformer", 30, {}),
        ("transformer_uncond", "transformer", "transformer_uncond", 30,
         {"batch": 1, "latent_h": 128, "latent_w": 128, "text_len": 1, "seq_len": 256}),
        ("vae", "vae", "vae", 1, {"batch": 1, "latent_h": 128, "latent_w": 128}),
    ]
    one = rm.stages(resolve(None, rm.default_workload, guidance_scale=1.0))
    assert [(p.name, p.runs) for p in one] == [("text_encoder", 1), ("transformer", 30), ("vae", 1)]
    assert {c: rm.components[c].config["_class_name"] for c in ("text_encoder", "vae")} == {
        "text_encoder": "Gemma2Model", "vae": "AutoencoderKL"}


def test_report_from_the_shipped_traces() -> None:
    d = fxmeter.trace(MODEL, run_id="zoo-lumina2").data
    assert d["trace"]["cache"] == "shipped" and d["trace"]["mode"] == "static"
    assert d["model"]["parameters"] == TRANSFORMER_PARAMETERS
    assert d["workload"]["tokens"] == 4096 and d["unmodeled_ops"] == []
    stages = d["pipeline"]["stages"]
    assert [(s["name"], s["class"], s["runs"]) for s in stages] == [
        ("text_encoder", "Gemma2Model", 2), ("transformer", "Lumina2Transformer2DModel", 30),
        ("transformer_uncond", "Lumina2Transformer2DModel", 30), ("vae", "AutoencoderKL", 1)]
    assert all(s["trace"]["cache"] == "shipped" and s["unmodeled_ops"] == [] for s in stages)
    st = {s["name"]: s for s in stages}
    cond, uncond = (st[n]["per_run"]["tensor_core_flops"] for n in ("transformer", "transformer_uncond"))
    assert cond == d["totals"]["per_forward"]["tensor_core_flops"]
    # 256 + 4,096 tokens against 1 + 4,096 in the 26 main blocks: the conditional pass costs more
    assert cond > uncond > 0


def _tiny_config() -> dict[str, int | float | None | list[int]]:
    return {"sample_size": 8, "patch_size": 2, "in_channels": 4, "out_channels": None, "hidden_size": 48,
            "num_layers": 1, "num_refiner_layers": 1, "num_attention_heads": 2, "num_kv_heads": 1, "multiple_of": 16,
            "ffn_dim_multiplier": None, "norm_eps": 1e-5, "scaling_factor": 1.0, "axes_dim_rope": [8, 8, 8],
            "axes_lens": [32, 16, 16], "cap_feat_dim": 16}


def test_patched_forward_is_the_real_forward_for_a_right_padded_mask() -> None:
    import torch
    from diffusers import Lumina2Transformer2DModel

    from fxmeter.model.zoo.lumina2 import lumina2_class

    torch.manual_seed(0)
    real = Lumina2Transformer2DModel(**_tiny_config()).eval()
    patched = lumina2_class()(**_tiny_config()).eval()
    patched.load_state_dict(real.state_dict())
    assert type(patched).__name__ == type(real).__name__ and type(patched.rope_embedder).__name__ == "Lumina2RotaryPosEmbed"
    b, seq, valid = 2, 12, 5
    mask = torch.zeros(b, seq, dtype=torch.long)
    mask[:, :valid] = 1  # the tokenizer pads on the right
    kw = {"hidden_states": torch.randn(b, 4, 8, 8), "timestep": torch.rand(b), "encoder_hidden_states": torch.randn(b, seq, 16),
          "encoder_attention_mask": mask, "return_dict": False}
    with torch.no_grad():
        want = real(**kw)[0]
        got = patched(**kw, valid_text_len=valid)[0]
        other = patched(**kw, valid_text_len=valid + 1)[0]
    assert torch.equal(got, want)
    assert not torch.equal(other, want)  # the argument is what the joint sequence is built from


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


@pytest.mark.slow  # FlopCounterMode over the full stages on meta (Gemma's exported graph, two transformer passes)
def test_every_stage_counts_what_flop_counter_counts() -> None:
    import torch

    from fxmeter.api import request, stage_inputs
    from fxmeter.estimate.evaluate import evaluate
    from fxmeter.model.zoo.lumina2 import lumina2_class
    from fxmeter.verify.reference import run_stage_reference

    rm = resolve_model(MODEL)
    with torch.device("meta"):
        net = lumina2_class()(**{k: v for k, v in rm.config.items() if not k.startswith("_")})
    assert sum(p.numel() for p in net.parameters()) == TRANSFORMER_PARAMETERS
    req = request(MODEL)
    seen: dict[str, int] = {}
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
    assert set(seen) == {"text_encoder", "transformer", "transformer_uncond", "vae"}
    assert seen["transformer"] > seen["transformer_uncond"]
