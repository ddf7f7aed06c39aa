"""Wan2.2-I2V-A14B: two 14B experts (high/low noise) driven by ``WanImageToVideoPipeline``.

The bundled config (``fxmeter/model/configs/wan2.2-i2v-a14b.json``) against independent
references: the parameter count of each expert from the config by hand and from the diffusers
class on meta, the tensor-core FLOPs of one forward by hand and from ``FlopCounterMode`` on meta,
the expert split of the 40 steps from diffusers' own scheduler, the pipeline's stages (UMT5,
VAE encode of the condition video, both experts, VAE decode; no CLIP image encoder: the
transformer has no ``image_dim``), the CLI, and the published rows ``fxmeter validate`` maps to it.
All at tiny workloads (one dynamic trace of the transformer, shared by the tests).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import fxmeter
from fxmeter.cli.main import main
from fxmeter.model.registry import resolve_model
from fxmeter.model.workload import resolve

MODEL = "wan2.2-i2v-a14b"

# One expert, WanTransformer3DModel(in_channels=36, out_channels=16, 40 heads x 128 = d 5120, ffn 13824,
# 40 layers, text_dim 4096, freq_dim 256, patch (1, 2, 2), cross_attn_norm, no image_embedder, no added k/v):
#   patch_embedding Conv3d(36 -> 5120, 1x2x2):     36 * 4 * 5120 + 5120              =        742,400
#   time_embedder 256 -> 5120 -> 5120:             256 * 5120 + 5120 + 5120^2 + 5120 =     27,535,360
#   time_proj 5120 -> 6 * 5120:                    5120 * 30720 + 30720              =    157,317,120
#   text_embedder 4096 -> 5120 -> 5120:            4096 * 5120 + 5120 + 5120^2 + 5120 =     47,196,160
#   per block: attn1 and attn2, each 4 x (5120^2 + 5120) + norm_q/norm_k 2 x 5120 = 104,888,320
#              norm2 (affine, cross_attn_norm) 2 x 5120 = 10,240; ffn 5120 * 13824 + 13824
#              + 13824 * 5120 + 5120 = 141,576,704; scale_shift_table 6 x 5120 = 30,720
#              -> 2 * 104,888,320 + 10,240 + 141,576,704 + 30,720 = 351,394,304; x 40 = 14,055,772,160
#   proj_out 5120 -> 16 * 4:                       5120 * 64 + 64                    =        327,744
#   scale_shift_table 2 x 5120                                                       =         10,240
#   total: 742,400 + 27,535,360 + 157,317,120 + 47,196,160 + 14,055,772,160 + 327,744 + 10,240
EXPERT_PARAMETERS = 14_288_901_184  # = Wan2.1-T2V-14B's 14,288,491,584 + 20 more input channels x 4 x 5120


@pytest.fixture(scope="module")
def tiny_report() -> Any:
    """ci-tiny (4 -> 5 frames, 256 x 256, 64 text tokens, 1 step, CFG 5): 2 x 16 x 16 = 512 tokens."""
    return fxmeter.trace(MODEL, workload="ci-tiny", run_id="i2v-a14b-tiny")


def test_each_expert_has_the_parameters_of_its_config(tiny_report: Any) -> None:
    import torch
    from diffusers import WanTransformer3DModel

    rm = resolve_model(MODEL)
    cfg = {k: v for k, v in rm.config.items() if not k.startswith("_")}
    with torch.device("meta"):
        net = WanTransformer3DModel(**cfg)
    assert sum(p.numel() for p in net.parameters()) == EXPERT_PARAMETERS  # the class itself, counted independently
    m = tiny_report["model"]
    assert (m["parameters_per_expert"], m["parameters"]) == (EXPERT_PARAMETERS, 2 * EXPERT_PARAMETERS)
    comps = tiny_report["components"]
    assert [(c["name"], c["parameters"]) for c in comps] == [("transformer", EXPERT_PARAMETERS),
                                                             ("transformer_2", EXPERT_PARAMETERS)]


def test_one_forward_counts_what_flop_counter_counts(tiny_report: Any) -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fxmeter.model.capture import build_model

    rm = resolve_model(MODEL)
    net = build_model(rm.config, "bfloat16")
    # WanImageToVideoPipeline's call: 16 noise + 4 mask + 16 image-latent channels, 5 frames -> 2 latent frames,
    # 256 / 8 = 32; the timestep expanded to the batch; 64 UMT5 tokens; no encoder_hidden_states_image
    kw = {"hidden_states": torch.empty(1, 36, 2, 32, 32, device="meta", dtype=torch.bfloat16),
          "timestep": torch.empty(1, device="meta", dtype=torch.float32),
          "encoder_hidden_states": torch.empty(1, 64, 4096, device="meta", dtype=torch.bfloat16),
          "return_dict": False}
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(**kw)
    # by hand, L = 512 video tokens, T = 64 text tokens, d = 5120, ffn 13824:
    #   per block: q/k/v/o of attn1 8 L d^2 = 107,374,182,400; its core 4 L^2 d = 5,368,709,120;
    #   attn2 q/o from L, k/v from T: 2 d^2 (2 L + 2 T) = 60,397,977,600; its core 4 L T d = 671,088,640;
    #   ffn 4 L d 13824 = 144,955,146,240 -> 318,767,104,000; x 40 = 12,750,684,160,000
    #   outside: patch conv 2 L (36 * 4) d = 754,974,720; time embedder 2 * 256 d + 2 d^2 = 55,050,240;
    #   time_proj 2 d 6d = 314,572,800; text embedder 2 T 4096 d + 2 T d^2 = 6,039,797,760;
    #   proj_out 2 L d 64 = 335,544,320 -> 7,499,939,840
    assert tiny_report["totals"]["per_forward"]["tensor_core_flops"] == counter.get_total_flops() == 12_758_184_099_840
    assert tiny_report["unmodeled_ops"] == []
    assert tiny_report["trace"]["mode"] == "dynamic"


def test_the_40_steps_split_at_the_boundary_as_diffusers_schedules_them() -> None:
    from diffusers import UniPCMultistepScheduler

    rm = resolve_model(MODEL)
    pipe = rm.config["_pipeline"]
    assert (pipe["class"], pipe["boundary_ratio"], pipe["experts"]) == ("WanImageToVideoPipeline", 0.9,
                                                                        ["transformer", "transformer_2"])
    sched = pipe["scheduler"]
    ref = UniPCMultistepScheduler.from_config({k: v for k, v in sched.items() if not k.startswith("_")})
    assert (ref.config.flow_shift, ref.config.use_flow_sigmas, ref.config.num_train_timesteps) == (5.0, True, 1000)
    ref.set_timesteps(40)
    ts = [int(t) for t in ref.timesteps.tolist()]
    # WanImageToVideoPipeline: boundary_timestep = 0.9 * 1000; t >= 900 runs transformer (high noise)
    high, low = [t for t in ts if t >= 900], [t for t in ts if t < 900]
    assert rm.adapter.expert_steps(rm.config, 40) == [len(high), len(low)] == [15, 25]
    plans = {p.name: p for p in rm.stages(resolve(None, rm.default_workload))}
    assert list(plans["transformer"].timesteps) == high and list(plans["transformer_2"].timesteps) == low
    # CFG 3.5 for both experts: two forwards per step
    assert (plans["transformer"].runs, plans["transformer_2"].runs) == (15 * 2, 25 * 2)


def test_the_pipeline_encodes_the_first_frame_and_has_no_image_encoder() -> None:
    rm = resolve_model(MODEL)
    assert rm.adapter.name == "wan-i2v-experts" and rm.default_workload == "a14b-i2v-720p"
    wl = resolve(None, rm.default_workload)
    assert (wl.width, wl.height, wl.frames, wl.steps, wl.guidance_scale) == (1280, 720, 81, 40, 3.5)
    assert rm.passes_per_step(wl) == 2
    assert "image_encoder" not in rm.components
    plans = {p.name: p for p in rm.stages(wl)}
    assert list(plans) == ["text_encoder", "vae_encode", "transformer", "transformer_2", "vae"]
    assert plans["text_encoder"].runs == 2  # prompt and negative prompt
    enc = plans["vae_encode"]
    # the image followed by 80 zero frames, encoded once: 81 -> 21 latent frames, 720 x 1280 / 8 -> 90 x 160
    assert (enc.component, enc.runs, enc.dtype) == ("vae", 1, "float32")
    assert enc.dims == {"batch": 1, "latent_frames": 21, "latent_h": 90, "latent_w": 160} == plans["vae"].dims
    # the 480P preset of the same model
    plans480 = {p.name: p for p in rm.stages(resolve("a14b-i2v-480p", rm.default_workload))}
    assert plans480["vae_encode"].dims == {"batch": 1, "latent_frames": 21, "latent_h": 60, "latent_w": 104}


def test_trace_cli_at_a_tiny_workload(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["trace", MODEL, "--workload", "ci-tiny", "--hardware", "h100",
                                    "--run-id", "i2v", "--output-root", str(tmp_path)])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "i2v" / "static_analysis" / "wan2_2_i2v_a14b" / "report.json").read_text())
    assert data["model"]["id"] == MODEL and data["model"]["adapter"] == "wan-i2v-experts"
    assert [s["name"] for s in data["pipeline"]["stages"]] == ["text_encoder", "vae_encode", "transformer",
                                                                "transformer_2", "vae"]
    # one step at t = 999 >= 900: the high-noise expert runs it, twice (CFG)
    assert [(c["name"], c["steps"]) for c in data["components"]] == [("transformer", 1), ("transformer_2", 0)]


@pytest.mark.parametrize(("model", "preset", "needle"), [
    (MODEL, "a14b-720p", "preset for wan-experts models"),
    ("wan2.2-t2v-a14b", "a14b-i2v-720p", "preset for wan-i2v-experts models"),
    (MODEL, "i2v-720p", "preset for wan-i2v models"),
])
def test_another_families_preset_is_refused(model: str, preset: str, needle: str, tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["trace", model, "--workload", preset, "--output-root", str(tmp_path)])
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], res.stderr
    assert not any(tmp_path.iterdir())


def test_validate_maps_the_published_i2v_a14b_rows() -> None:
    from fxmeter.validate import Scenario, load_rows, scenario

    rows = [r for r in load_rows()[0] if str(r["variant"]).lower().startswith("i2v-a14b")]
    assert len(rows) == 18
    for row in rows:
        sc = scenario(row)
        assert isinstance(sc, Scenario), (row["id"], sc)
        assert sc.model == MODEL
        # "guide (3.0,4.0) t2v / (3.5,3.5) i2v": the preset's CFG 3.5 stays, two passes per step
        assert "guidance_scale" not in sc.kwargs
        wl = resolve(None, resolve_model(MODEL).default_workload, height=sc.kwargs["height"], width=sc.kwargs["width"])
        assert resolve_model(MODEL).passes_per_step(wl) == row["passes_per_step"] == 2
