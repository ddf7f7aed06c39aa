"""The bundled DiT models: each traced at its official default workload.

Per model: tensor-core FLOPs per forward equal ``torch.utils.flop_counter`` on
the same full-size meta model with the same inputs, every op has a rule,
passes per step and trace mode are the pipeline's, parameter counts match the
published sizes, and the report matches its golden (tests/goldens/models/).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import fxmeter
from fxmeter.cli.main import main

# id -> (published parameters, passes per step, trace mode)
MODELS: dict[str, tuple[float, int, str]] = {
    "flux.1-dev": (11.9e9, 1, "dynamic"),  # guidance-distilled
    "sd3.5-large": (8.1e9, 2, "dynamic"),  # CFG
    "hunyuanvideo": (12.8e9, 1, "dynamic"),  # embedded guidance
    "cogvideox-5b": (5.6e9, 2, "static"),  # image_rotary_emb from Python ints
    "ltx-video": (1.9e9, 2, "static"),  # num_frames/height/width Python ints
    "wan2.1-i2v-14b-480p": (16.4e9, 2, "dynamic"),
    "wan2.2-ti2v-5b": (5.0e9, 2, "static"),  # per-token timesteps
    "wan2.2-t2v-a14b": (2 * 14.3e9, 2, "dynamic"),  # two experts, both in memory
    "wan2.2-i2v-a14b": (2 * 14.3e9, 2, "dynamic"),  # two I2V experts (36 input channels), CFG 3.5
}


@pytest.fixture(scope="module")
def reports() -> dict[str, Any]:
    """Each model at its default workload, traced once for this module."""
    return {}


def _report(reports: dict[str, Any], model: str) -> Any:
    if model not in reports:
        reports[model] = fxmeter.trace(model, run_id=f"test-{model}")
    return reports[model]


def _flop_counter(model: str) -> int:
    """torch.utils.flop_counter on the full (unreduced) meta model, fed by the adapter's inputs."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fxmeter.model.capture import build_model
    from fxmeter.model.registry import resolve_model
    from fxmeter.model.workload import resolve

    rm = resolve_model(model)
    geometry = rm.adapter.geometry(rm.config, resolve(None, rm.default_workload))
    net = build_model(rm.config, "bfloat16")
    kwargs = rm.adapter.inputs(rm.config, geometry.dims, torch.bfloat16)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(**kwargs)
    return int(counter.get_total_flops())


@pytest.mark.slow  # FlopCounterMode over every full model on meta
@pytest.mark.parametrize("model", sorted(MODELS))
def test_model_at_default_workload(reports: dict[str, Any], fxmeter_golden: Any, model: str) -> None:
    published, passes, mode = MODELS[model]
    rep = _report(reports, model)
    tc = rep["totals"]["per_forward"]["tensor_core_flops"]
    # tensor-core FLOPs per forward vs FlopCounterMode: the gate is 5%; every model agrees exactly
    # (SD3's permuting einsum in its unpatchify is a copy, not a matmul: rules/matmul.einsum)
    assert tc == _flop_counter(model)
    # completeness: every op has a rule or is free
    assert rep["unmodeled_ops"] == []
    assert rep["workload"]["passes_per_step"] == passes
    assert rep["trace"]["mode"] == mode
    assert abs(rep["model"]["parameters"] / published - 1) < 0.02
    assert rep["totals"]["end_to_end"]["flops"] == rep["totals"]["per_forward"]["flops"] * passes * rep["workload"]["steps"]
    fxmeter_golden.check(rep, f"models/{model}.json")


def test_models_command_lists_every_model() -> None:
    out = CliRunner().invoke(main, ["models"]).output
    for model in [*MODELS, "wan2.1-i2v-14b-720p", "wan2.1-t2v-14b", "wan2.1-t2v-1.3b"]:
        assert model in out


def test_models_command_details_stages_parameters_and_runs() -> None:
    """``fxmeter models MODEL``: the default workload, every stage with its class, dtype, parameters and runs per
    generation (Wan2.1-14B 720p: T5 twice, the transformer 50 steps x 2 CFG passes, the VAE once)."""
    import json

    res = CliRunner().invoke(main, ["models", "wan2.1-t2v-14b", "--json"])
    assert res.exit_code == 0, res.output
    (d,) = json.loads(res.stdout)
    assert d["class"] == "WanTransformer3DModel" and d["parameters"] == 14_288_491_584
    assert d["workload"] == {"name": "720p", "width": 1280, "height": 720, "frames": 81, "steps": 50,
                             "guidance_scale": 5.0, "passes_per_step": 2, "batch": 1, "text_len": 512,
                             "tokens": 21 * 45 * 80}
    runs = {s["name"]: (s["class"], s["runs"], s["dtype"]) for s in d["stages"]}
    assert runs == {"text_encoder": ("UMT5EncoderModel", 2, "bfloat16"),
                    "transformer": ("WanTransformer3DModel", 50 * 2, "bfloat16"),
                    "vae": ("AutoencoderKLWan", 1, "float32")}
    assert next(s for s in d["stages"] if s["name"] == "transformer")["parameters"] == 14_288_491_584
    text = CliRunner().invoke(main, ["models", "wan2.1-t2v-14b"]).stdout
    assert "default workload 720p: 1280x720, 81 frames, 50 steps, guidance 5 (2 passes per step)" in text
    assert "  transformer            WanTransformer3DModel" in text and "14,288,491,584" in text
    for bad, needle in ((["models", "no-such-model"], "unknown model 'no-such-model'"),
                        (["models", "--json"], "--json describes models named")):
        r = CliRunner().invoke(main, bad)
        assert r.exit_code == 2 and r.output.startswith("error:") and needle in r.output, r.output


def test_flux_geometry() -> None:
    from fxmeter.model.registry import resolve_model
    from fxmeter.model.workload import resolve

    rm = resolve_model("flux.1-dev")
    g = rm.adapter.geometry(rm.config, resolve("flux-1024", "flux-1024"))
    # 1024 / 8 (VAE) / 2 (2x2 packing) = 64 per side -> 64 * 64 = 4096 tokens of 64 channels
    assert g.dims == {"batch": 1, "image_tokens": 4096, "text_len": 512}
    assert g.latent_shape == (1, 4096, 64)


def test_video_geometries() -> None:
    from fxmeter.model.registry import resolve_model
    from fxmeter.model.workload import resolve

    def tokens(model: str) -> int:
        rm = resolve_model(model)
        return rm.adapter.geometry(rm.config, resolve(None, rm.default_workload)).tokens

    assert tokens("hunyuanvideo") == 33 * 45 * 80  # 129 frames -> 33 latent; 720x1280 / 8 / 2
    assert tokens("cogvideox-5b") == 13 * 30 * 45  # 49 -> 13; 480x720 / 8 / 2
    assert tokens("ltx-video") == 21 * 16 * 22  # 161 -> 21 (8x); 512x704 / 32
    assert tokens("wan2.2-ti2v-5b") == 31 * 22 * 40  # 121 -> 31; 704x1280 / 16 / 2
    assert tokens("wan2.1-i2v-14b-720p") == 21 * 45 * 80  # 81 -> 21; 720x1280 / 8 / 2


def test_wan22_experts(reports: dict[str, Any], report_720p: Any) -> None:
    rep = _report(reports, "wan2.2-t2v-a14b")
    high, low = rep["components"]
    assert (high["name"], low["name"]) == ("transformer", "transformer_2")
    assert high["steps"] + low["steps"] == 40 and high["steps"] > 0 and low["steps"] > 0
    # each expert is a Wan2.1-T2V-14B-sized transformer: same cost per forward at 720p, 81 frames
    assert rep["totals"]["per_forward"] == report_720p["totals"]["per_forward"]
    one = report_720p["memory"]["weight_bytes"]
    assert high["weight_bytes"] == low["weight_bytes"] == one
    assert rep["memory"]["weight_bytes"] == 2 * one
    assert rep["memory"]["total_bytes"] == 2 * one + rep["memory"]["activation_peak_bytes"]
    per_step = rep["totals"]["per_step"]["flops"]
    assert high["end_to_end"]["flops"] + low["end_to_end"]["flops"] == rep["totals"]["end_to_end"]["flops"]
    assert high["end_to_end"]["flops"] == high["steps"] * per_step


def test_wan_i2v_text_is_512_tokens() -> None:
    from fxmeter.model.registry import resolve_model
    from fxmeter.model.workload import resolve

    rm = resolve_model("wan2.1-i2v-14b-480p")
    g = rm.adapter.geometry(rm.config, resolve("i2v-480p", "i2v-480p", text_len=64))
    assert g.dims["text_len"] == 512
    assert any("text_len=64 ignored" in n for n in g.notes)
    assert "text_len" not in rm.adapter.symbols


TINY_FLUX = {
    "_class_name": "FluxTransformer2DModel", "patch_size": 1, "in_channels": 16, "num_layers": 1,
    "num_single_layers": 2, "attention_head_dim": 16, "num_attention_heads": 2, "joint_attention_dim": 32,
    "pooled_projection_dim": 8, "guidance_embeds": True, "axes_dims_rope": [4, 6, 6],
}


def test_trace_any_config_reports_its_adapter(tmp_path: Path, tiny_config: Path) -> None:
    flux = tmp_path / "tiny-flux" / "config.json"
    flux.parent.mkdir()
    flux.write_text(json.dumps(TINY_FLUX))
    for cfg, adapter, wl in ((tiny_config, "wan", "ci-tiny"), (flux, "flux", "flux-1024")):
        res = CliRunner().invoke(main, ["trace", "--config", str(cfg), "-w", wl, "--run-id", "any", "--json",
                                        "--output-root", str(tmp_path / "out"), "--force", "--strict"])
        assert res.exit_code == 0, res.output
        rep = json.loads(res.output[res.output.index("{"):])
        assert rep["model"]["adapter"] == adapter
        assert rep["unmodeled_ops"] == []


def test_unsupported_class_lists_supported(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"_class_name": "UNet2DConditionModel", "in_channels": 4}))
    res = CliRunner().invoke(main, ["trace", "--config", str(cfg)])
    assert res.exit_code == 2
    line = res.output.strip().splitlines()[-1]
    assert "unsupported model class 'UNet2DConditionModel'" in line
    for cls in ("FluxTransformer2DModel", "SD3Transformer2DModel", "HunyuanVideoTransformer3DModel",
                "CogVideoXTransformer3DModel", "LTXVideoTransformer3DModel", "WanTransformer3DModel"):
        assert cls in line
    assert "Traceback" not in res.output


@pytest.mark.slow
def test_custom_dit_example(tmp_path: Path) -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "examples" / "custom_dit.py"
    spec = importlib.util.spec_from_file_location("custom_dit_example", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses resolve the module's annotations through sys.modules
    spec.loader.exec_module(mod)
    data = mod.main(output_root=str(tmp_path))
    assert data["model"]["adapter"] == "tiny-dit" and data["trace"]["mode"] == "dynamic"
    assert data["unmodeled_ops"] == []
    # N = (512/8/2)^2 = 1024 tokens, d = 256, 6 blocks, FLOP = 2 x MAC:
    #   per block qkv 2*N*d*3d = 402,653,184 + out 2*N*d*d = 134,217,728 + mlp 2*(2*N*d*4d) = 1,073,741,824
    #   + attention (QK^T, AV) 2*2*N*N*d = 1,073,741,824 + adaLN 2*d*6d = 786,432 -> 2,685,140,992; x 6 = 16,110,845,952
    #   patch_embed 2*N*16*d = 8,388,608 + time_embed 2*(256*d + d*d) = 262,144 + proj_out 2*N*d*16 = 8,388,608
    assert data["totals"]["per_forward"]["tensor_core_flops"] == 16_110_845_952 + 8_388_608 + 262_144 + 8_388_608


def test_two_expert_fit_counts_both_experts() -> None:
    import fxmeter

    r = fxmeter.trace("wan2.2-t2v-a14b", workload="ci-tiny", hardware="h100")
    # ci-tiny has 1 step: the high-noise expert takes it, the low-noise one none; both are loaded
    assert [(c["name"], c["steps"]) for c in r["components"]] == [("transformer", 1), ("transformer_2", 0)]
    assert r["model"]["parameters"] == 2 * r["model"]["parameters_per_expert"] == 2 * 14_288_491_584
    mem = r["memory"]
    # two experts, each the 14B architecture: 2 x 28,635,351,168 weight bytes (bf16 + fp32-kept modules)
    assert mem["weight_bytes"] == 2 * 28_635_351_168 == 57_270_702_336
    assert mem["fit"]["required_bytes"] == mem["weight_bytes"] + mem["activation_peak_bytes"]
