"""Issue 10 (model, config and workload findings of the outside audit): one test per finding.

Model folders read like diffusers, presets and defaults per model family, options that
would be ignored refused, persistent buffers in weight bytes, the expert split from the
scheduler config diffusers ships (in pure Python, no torch on the warm path), verify's
reuse check and CPU budget, size limits before building, config values checked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import fxmeter
import fxmeter.model.configs
from fxmeter.cli.main import main
from fxmeter.errors import ConfigError
from fxmeter.model.registry import MODELS, _bundled, get_spec, resolve_model
from tests.conftest import TINY_WAN

CONFIGS = Path(fxmeter.model.configs.__file__).parent

TINY_FLUX = {
    "_class_name": "FluxTransformer2DModel", "patch_size": 1, "in_channels": 16, "num_layers": 1,
    "num_single_layers": 2, "attention_head_dim": 16, "num_attention_heads": 2, "joint_attention_dim": 32,
    "pooled_projection_dim": 8, "guidance_embeds": True, "axes_dims_rope": [4, 6, 6],
}
TINY_SD3 = {
    "_class_name": "SD3Transformer2DModel", "sample_size": 16, "patch_size": 2, "in_channels": 4, "num_layers": 2,
    "attention_head_dim": 8, "num_attention_heads": 2, "joint_attention_dim": 16, "caption_projection_dim": 16,
    "pooled_projection_dim": 8, "out_channels": 4, "pos_embed_max_size": 24, "qk_norm": "rms_norm",
}


def cli(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def one_line_error(code: int, err: str, *needles: str) -> str:
    """The single ``error:`` line of a refused command (exit 2), checked for ``needles``.

    A config value the class refuses, or a model over the size limit, is found while the
    model is built: the trace's progress line (``fxmeter: tracing ...``) may come first.
    """
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("fxmeter: tracing ")]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def write(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path


# -- 1. a model folder is read as diffusers lays it out -----------------------------------------------------
def a14b_folder(root: Path, transformer_2: dict[str, Any] | None = None, transformer: dict[str, Any] | None = None) -> Path:
    """A folder laid out like Wan-AI/Wan2.2-T2V-A14B-Diffusers (configs only, no weights).

    model_index.json as WanPipeline.save_pretrained writes it; the scheduler config written by
    diffusers itself from the object scripts/convert_wan_to_diffusers.py builds for Wan2.2 T2V.
    """
    from diffusers import UniPCMultistepScheduler

    bundled = _bundled(get_spec("wan2.2-t2v-a14b"))
    cfg = {k: v for k, v in bundled.items() if not k.startswith("_") or k in ("_class_name", "_diffusers_version")}
    write(root / "model_index.json", {
        "_class_name": "WanPipeline", "_diffusers_version": "0.35.0.dev0", "boundary_ratio": 0.875,
        "expand_timesteps": False, "scheduler": ["diffusers", "UniPCMultistepScheduler"],
        "text_encoder": ["transformers", "UMT5EncoderModel"], "tokenizer": ["transformers", "T5TokenizerFast"],
        "transformer": ["diffusers", "WanTransformer3DModel"], "transformer_2": ["diffusers", "WanTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLWan"],
    })
    for part in ("text_encoder", "vae"):  # the other components' configs, as the hub folder has them
        shutil.copytree(CONFIGS / "wan2.1" / part, root / part)
    write(root / "transformer" / "config.json", transformer or cfg)
    write(root / "transformer_2" / "config.json", transformer_2 or transformer or cfg)
    UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000,
                            flow_shift=3.0).save_config(str(root / "scheduler"))
    return root


@pytest.mark.slow
def test_folder_reading_matches_diffusers_load_config(tmp_path: Path) -> None:
    from diffusers import DiffusionPipeline, UniPCMultistepScheduler

    folder = a14b_folder(tmp_path / "Wan2.2-T2V-A14B-Diffusers")
    rm = resolve_model(None, folder)
    index = DiffusionPipeline.load_config(str(folder))
    sched = UniPCMultistepScheduler.load_config(str(folder), subfolder="scheduler")
    pipe = rm.config["_pipeline"]
    assert pipe["class"] == index["_class_name"] == "WanPipeline"
    assert (pipe["boundary_ratio"], pipe["expand_timesteps"]) == (index["boundary_ratio"], index["expand_timesteps"])
    assert pipe["experts"] == ["transformer", "transformer_2"] and "expert_configs" not in pipe  # identical configs
    assert pipe["scheduler"] == {k: v for k, v in sched.items() if k == "_class_name" or not k.startswith("_")}
    assert rm.adapter.name == "wan-experts" and rm.id == "custom-Wan2.2-T2V-A14B-Diffusers"
    assert rm.default_workload == "a14b-720p"  # the adapter's own default (issue item 2)


@pytest.mark.slow
def test_folder_gives_the_bundled_a14b(tmp_path: Path) -> None:
    folder = a14b_folder(tmp_path / "Wan2.2-T2V-A14B-Diffusers")
    mine = fxmeter.trace(config=folder, run_id="folder")  # default workload: a14b-720p (the adapter's)
    ref = fxmeter.trace("wan2.2-t2v-a14b", run_id="bundled")
    assert mine["workload"]["name"] == ref["workload"]["name"] == "a14b-720p"
    # two 14,288,491,584-parameter experts, 2 x 28,635,351,168 weight bytes
    assert mine["model"]["parameters"] == ref["model"]["parameters"] == 2 * 14_288_491_584
    assert mine["memory"]["weight_bytes"] == ref["memory"]["weight_bytes"] == 2 * 28_635_351_168
    assert mine["components"] == ref["components"]
    assert mine["totals"] == ref["totals"]


@pytest.mark.slow
def test_second_expert_with_its_own_config(tmp_path: Path) -> None:
    small = dict(TINY_WAN, num_layers=1, ffn_dim=64)
    folder = a14b_folder(tmp_path / "two", transformer=TINY_WAN, transformer_2=small)
    rm = resolve_model(None, folder)
    assert rm.config["_pipeline"]["expert_configs"] == {"transformer_2": {k: v for k, v in small.items() if k != "_class_name"}}
    rep = fxmeter.trace(config=folder, workload="ci-tiny", steps=40, run_id="two")
    high, low = rep["components"]
    # the same scheduler split as the bundled A14B at 40 steps (flow_shift 3.0: 13 timesteps >= 875)
    assert (high["steps"], low["steps"]) == (13, 27)
    # each expert costed from its own config, as a model of its own
    alone1 = fxmeter.trace(config=write(tmp_path / "t1" / "config.json", TINY_WAN), workload="ci-tiny", steps=40)
    alone2 = fxmeter.trace(config=write(tmp_path / "t2" / "config.json", small), workload="ci-tiny", steps=40)
    assert high["parameters"] == alone1["model"]["parameters"] and low["parameters"] == alone2["model"]["parameters"]
    assert rep["model"]["parameters"] == alone1["model"]["parameters"] + alone2["model"]["parameters"]
    assert rep["memory"]["weight_bytes"] == alone1["memory"]["weight_bytes"] + alone2["memory"]["weight_bytes"]
    e2e = {k: 13 * 2 * alone1["totals"]["per_forward"][k] + 27 * 2 * alone2["totals"]["per_forward"][k]
           for k in alone1["totals"]["per_forward"]}  # steps x 2 CFG passes x each expert's own forward
    assert rep["totals"]["end_to_end"] == e2e
    assert low["per_forward"] == alone2["totals"]["per_forward"]


@pytest.mark.parametrize(
    "remove,needle",
    [
        ("transformer/config.json", "transformer/config.json is missing"),
        ("transformer_2/config.json", "transformer_2/config.json is missing"),
        ("scheduler/scheduler_config.json", "scheduler/scheduler_config.json is missing"),
        ("model_index.json:transformer", "names no 'transformer' component"),
    ],
)
def test_folder_missing_a_file_it_needs(tmp_path: Path, remove: str, needle: str) -> None:
    folder = a14b_folder(tmp_path / "m")
    if remove.startswith("model_index.json:"):
        index = json.loads((folder / "model_index.json").read_text())
        index["unet"] = index.pop("transformer")
        write(folder / "model_index.json", index)
    else:
        (folder / remove).unlink()
    code, _, err = cli("trace", "--config", str(folder), "--output-root", str(tmp_path / "out"))
    one_line_error(code, err, needle)
    assert not (tmp_path / "out").exists()


# -- 2. a custom config runs at its adapter's default workload ---------------------------------------------
@pytest.mark.parametrize("model", sorted(MODELS))
def test_each_model_and_adapter_default_fits(model: str, tmp_path: Path) -> None:
    from fxmeter.model.workload import fits, get_preset

    spec, rm = get_spec(model), resolve_model(model)
    a = rm.adapter
    assert a.default_workload and fits(get_preset(a.default_workload), a.name, a.family)
    assert fits(get_preset(spec.default_workload), a.name, a.family)
    # the same config as a custom one (no model id): the adapter's default, not Wan's 480p
    custom = resolve_model(None, write(tmp_path / "c" / "config.json", _bundled(spec)))
    assert custom.default_workload == a.default_workload


@pytest.mark.slow
def test_custom_flux_config_uses_flux_defaults(tmp_path: Path) -> None:
    rep = fxmeter.trace(config=write(tmp_path / "f" / "config.json", TINY_FLUX), run_id="f")
    # FluxPipeline defaults, not Wan's 480p (832x480, 50 steps, CFG 5)
    wl = rep["workload"]
    assert (wl["name"], wl["height"], wl["width"], wl["steps"], wl["passes_per_step"]) == ("flux-1024", 1024, 1024, 28, 1)


# -- 3. options a model cannot honour are refused ----------------------------------------------------------
@pytest.mark.parametrize(
    "args,needles",
    [
        (("flux.1-dev", "-w", "720p"), ("'720p' is a preset for wan models", "flux-1024")),
        (("hunyuanvideo", "-w", "flux-1024"), ("preset for flux models", "hunyuan-720p")),
        (("wan2.1-t2v-14b", "-w", "i2v-480p"), ("preset for wan-i2v models", "720p, 480p, ci-tiny")),
        (("sd3.5-large", "-w", "ltx-512p"), ("sd3.5-1024",)),
        (("flux.1-dev", "--frames", "5"), ("frames must be 1, got 5",)),
        (("sd3.5-large", "--frames", "2"), ("frames must be 1, got 2",)),
        (("wan2.1-t2v-1.3b", "--efficiency", "tc=0.5"), ("--efficiency", "needs --hardware")),
    ],
)
def test_options_that_would_be_ignored_are_refused(args: tuple[str, ...], needles: tuple[str, ...], tmp_path: Path) -> None:
    code, _, err = cli("trace", *args, "--output-root", str(tmp_path))
    one_line_error(code, err, *needles)
    assert not any(tmp_path.iterdir())


def test_family_presets_still_work_within_the_family() -> None:
    from fxmeter.model.workload import resolve

    rm = resolve_model("wan2.2-t2v-a14b")  # a Wan T2V preset on another Wan model: allowed
    assert rm.geometry(resolve("720p", rm.default_workload)).tokens == 21 * 45 * 80
    assert resolve_model("flux.1-dev").geometry(resolve(None, "flux-1024", frames=1)).tokens == 64 * 64


# -- 4. persistent buffers are checkpoint bytes ------------------------------------------------------------
@pytest.mark.parametrize("model", sorted(MODELS))
def test_weight_bytes_are_state_dict_bytes(model: str) -> None:
    """Every bundled model: weight bytes = the state dict (parameters + persistent buffers) as loaded
    by from_pretrained(torch_dtype=bf16); parameters count parameters only."""
    from fxmeter.model.capture import build_model, module_records

    rm = resolve_model(model)
    net = build_model(rm.config, "bfloat16", {k: 1 for k in rm.adapter.repeated.values()})
    state = net.state_dict()
    recs = module_records(net, {})
    assert sum(r.weight_bytes for r in recs) == sum(t.numel() * t.element_size() for t in state.values())
    assert sum(r.params for r in recs) == sum(p.numel() for p in net.parameters())
    non_persistent = {f"{p}.{n}".strip(".") for p, m in net.named_modules() for n in m._non_persistent_buffers_set}
    assert not non_persistent & set(state)  # RoPE tables (Wan's rope.freqs_cos/sin) are not weights


def test_sd35_counts_its_pos_embed_buffer() -> None:
    from fxmeter.model.capture import build_model

    rm = resolve_model("sd3.5-large")
    net = build_model(rm.config, "bfloat16", {"num_layers": 1})
    buf = net.pos_embed.pos_embed
    # (1, 192 * 192, 2432) in bf16 as the checkpoint stores it: 89,653,248 x 2 = 179,306,496 bytes
    assert tuple(buf.shape) == (1, 36864, 2432) and buf.dtype.itemsize == 2
    assert buf.numel() * 2 == 179_306_496


@pytest.mark.slow
def test_tiny_sd3_weight_bytes_include_the_buffer(tmp_path: Path) -> None:
    rep = fxmeter.trace(config=write(tmp_path / "s" / "config.json", TINY_SD3), workload="sd3.5-1024", height=128,
                        width=128, run_id="s")
    params_bytes = sum(v for v in rep["memory"]["parameters_by_dtype"].values()) * 2  # all bf16 here
    # pos_embed (1, 24 * 24, 2 * 8) in bf16: 576 x 16 x 2 = 18,432 bytes on top of the parameters
    assert rep["memory"]["weight_bytes"] == params_bytes + 18_432
    pe = next(m for m in rep["modules"] if m["id"] == "transformer.pos_embed")
    assert pe["weight_bytes"] == 18_432 + 2 * (4 * 16 * 2 * 2 + 16)  # buffer + conv 4->16, 2x2 kernel, bias


# -- 5. the expert split uses the scheduler config diffusers ships -----------------------------------------
def test_a14b_split_uses_the_shipped_scheduler_config() -> None:
    from diffusers import UniPCMultistepScheduler

    rm = resolve_model("wan2.2-t2v-a14b")
    sched = rm.config["_pipeline"]["scheduler"]
    assert (sched["_class_name"], sched["flow_shift"], sched["use_flow_sigmas"]) == ("UniPCMultistepScheduler", 3.0, True)
    ref = UniPCMultistepScheduler.from_config({k: v for k, v in sched.items() if not k.startswith("_")})
    ref.set_timesteps(40)
    high = [int(t) for t in ref.timesteps.tolist() if t >= 0.875 * 1000]
    assert rm.adapter.expert_steps(rm.config, 40) == [len(high), 40 - len(high)] == [13, 27]
    rep = fxmeter.trace("wan2.2-t2v-a14b", workload="ci-tiny", steps=40, run_id="split")
    assert rep["components"][0]["timesteps"] == high
    assert any("UniPCMultistepScheduler(flow_shift=3.0, use_flow_sigmas=True" in n for n in rep["notes"])


# -- 6. the scheduler's timesteps in pure Python; warm runs import no torch --------------------------------
@pytest.mark.parametrize("shift", [0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 12.0, 16.0])
@pytest.mark.parametrize("n_train", [1000, 999])
def test_flow_timesteps_equal_diffusers(shift: float, n_train: int) -> None:
    from diffusers import UniPCMultistepScheduler

    from fxmeter.model.adapters.scheduler import flow_sigma_timesteps

    ref = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                  num_train_timesteps=n_train, flow_shift=shift)
    for steps in range(1, 151):
        ref.set_timesteps(steps)
        assert flow_sigma_timesteps(steps, n_train, shift) == ref.timesteps.tolist(), steps


def test_other_schedulers_go_to_diffusers() -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler

    from fxmeter.model.adapters.scheduler import is_plain_flow_unipc, timesteps

    cfg = {"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 5.0, "num_train_timesteps": 1000}
    assert not is_plain_flow_unipc(cfg)
    ref = FlowMatchEulerDiscreteScheduler(shift=5.0)
    ref.set_timesteps(30)
    assert timesteps(cfg, 30) == ref.timesteps.tolist()
    with pytest.raises(ConfigError, match="scheduler config"):
        timesteps({}, 30)


def _heavy_after_warm_trace(model: str, env: dict[str, str]) -> str:
    code = (
        "import sys, fxmeter\n"
        f"r = fxmeter.trace({model!r}, steps=7, run_id='w')\n"
        "heavy = sorted(m for m in ('torch', 'diffusers', 'sympy', 'networkx', 'numpy') if m in sys.modules)\n"
        "print(r['trace']['cache'], heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return out.stdout.strip()


#: bundled models with a dynamic export (the others export once per workload: no symbolic cache entry)
DYNAMIC = sorted(m for m in MODELS if resolve_model(m).adapter.supports_dynamic(resolve_model(m).config))


def test_dynamic_models_are_the_expected_ones() -> None:
    assert set(MODELS) - set(DYNAMIC) == {"cogvideox-5b", "ltx-video", "wan2.2-ti2v-5b", "qwen-image", "ltx-2", "z-image-turbo", "chroma", "allegro",
                                            "lumina-image-2.0", "pixart-sigma-1024", "hidream-i1-full", "qwen-image-2.1"}


@pytest.mark.slow
@pytest.mark.parametrize("model", DYNAMIC)
def test_warm_trace_imports_nothing_heavy(model: str) -> None:
    """After a first trace filled the (session) cache, a warm trace of another step count imports
    none of torch, diffusers, sympy, networkx (nor numpy), for every bundled model with a dynamic export."""
    fxmeter.trace(model, run_id="fill")
    env = dict(os.environ)
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    assert _heavy_after_warm_trace(model, env) in ("shipped []", "cache []")  # the package's trace or the session's


# -- 7. verify reuses a report only when its options give the numbers verify compares -----------------------
def test_verify_refuses_a_batched_cfg_report(tiny_config: Path, tmp_path: Path) -> None:
    out = str(tmp_path)
    code, _, err = cli("trace", "--config", str(tiny_config), "-w", "ci-tiny", "--run-id", "b", "--batched-cfg",
                       "--output-root", out)
    assert code == 0, err
    data = json.loads((tmp_path / "b" / "static_analysis" / "wan" / "report.json").read_text())
    assert data["trace"]["options"]["batched_cfg"] is True
    code, _, err = cli("verify", "--config", str(tiny_config), "-w", "ci-tiny", "--run-id", "b", "--output-root", out)
    one_line_error(code, err, "--batched-cfg", "choose another --run-id")
    # a report written before trace.options existed: its workload says batched CFG
    del data["trace"]["options"]
    (tmp_path / "b" / "static_analysis" / "wan" / "report.json").write_text(json.dumps(data))
    code, _, err = cli("verify", "--config", str(tiny_config), "-w", "ci-tiny", "--run-id", "b", "--output-root", out)
    one_line_error(code, err, "--batched-cfg")


def test_verify_reuses_a_report_traced_with_hardware(tiny_config: Path, tmp_path: Path) -> None:
    """--hardware, --precision, --traffic, --efficiency change times, bytes and weight memory, never the
    tensor-core FLOPs verify compares: the run's report is verified as it is."""
    out = str(tmp_path)
    code, _, err = cli("trace", "--config", str(tiny_config), "-w", "ci-tiny", "--run-id", "h", "--hardware", "h100",
                       "--precision", "fp8", "--traffic", "fused", "--efficiency", "tc=0.5", "--output-root", out)
    assert code == 0, err
    code, outp, err = cli("verify", "--config", str(tiny_config), "-w", "ci-tiny", "--run-id", "h", "--output-root", out)
    assert code == 0 and "verify PASS" in outp, err


# -- 8. the CPU budget of verify -----------------------------------------------------------------------------
def test_cpu_budget_accepts_13b_ci_tiny_and_refuses_14b_720p() -> None:
    from fxmeter.errors import VerifyError
    from fxmeter.verify.compare import check_cpu_budget, cpu_estimate, load_settings

    settings = load_settings()
    small = fxmeter.trace("wan2.1-t2v-1.3b", workload="ci-tiny", run_id="c").data
    flops, mem = cpu_estimate(small)
    # weights 2,838,... bytes as built in bf16 + activations + one attention's 2 fp32 matrices
    # (1 x 12 heads x 512^2 x 4 bytes x 2) + the interpreter: measured peak RSS 3.11 GiB, estimate 3.19 GiB
    assert small["memory"]["weight_bytes"] < mem < 4 * 2**30
    check_cpu_budget(small, settings)
    big = fxmeter.trace("wan2.1-t2v-14b", workload="720p", run_id="c").data
    with pytest.raises(VerifyError, match="--device cpu is for small configs"):
        check_cpu_budget(big, settings)
    assert flops < cpu_estimate(big)[0]


@pytest.mark.slow
def test_cpu_verify_13b_ci_tiny_passes(tmp_path: Path) -> None:
    """The real-size 1.3B transformer run on the CPU (random bf16 weights) counts what the trace counts, per layer and
    end to end.  At ci-tiny's 4 frames but 128 x 128 (128 tokens): the claim does not depend on the token count, and
    CPUs without bf16 matrix units spend a minute per 512 tokens; the other stages run on meta in test_verify."""
    from fxmeter.api import verify

    res = verify("wan2.1-t2v-1.3b", "ci-tiny", device="cpu", output_root=str(tmp_path), run_id="cpu", write=False,
                 height=128, width=128, stages="transformer")
    assert res.passed and res.layers["max_rel_err"] == 0.0 and res.end2end["rel_err"] == 0.0


# -- 9. size limits before building -------------------------------------------------------------------------
@pytest.mark.parametrize("full", [False, True])
def test_a_million_layers_is_refused_with_its_estimate(tmp_path: Path, full: bool) -> None:
    cfg = write(tmp_path / "huge" / "config.json", dict(TINY_WAN, num_layers=1_000_000))
    args = ["trace", "--config", str(cfg), "-w", "ci-tiny", "--output-root", str(tmp_path / "out")]
    code, _, err = cli(*args, *(["--full-trace"] if full else []))
    line = one_line_error(code, err, "num_layers=1000000", "estimated", "modules", "the limit is 20,000 modules")
    # the estimate: the model's own modules and parameters + 1,000,000 x those of one block (a 1-block build)
    from fxmeter.model.capture import build_model

    one = build_model(dict(TINY_WAN), "bfloat16", {"num_layers": 1})
    in_block = [m for p, m in one.named_modules() if p == "blocks.0" or p.startswith("blocks.0.")]
    n_mod = len(list(one.named_modules())) + (1_000_000 - 1) * len(in_block)
    n_par = sum(p.numel() for p in one.parameters()) + (1_000_000 - 1) * sum(p.numel() for m in in_block for p in m.parameters(recurse=False))
    assert f"an estimated {n_mod:,} modules ({n_par:,} parameters)" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_hundred_layers_still_works(tmp_path: Path) -> None:
    cfg = write(tmp_path / "deep" / "config.json", dict(TINY_WAN, num_layers=100))
    rep = fxmeter.trace(config=cfg, workload="ci-tiny", run_id="deep")
    assert rep["trace"]["replicated_blocks"] == {"blocks": 100}
    assert sum(1 for m in rep["modules"] if m["parent"] == "transformer.blocks") == 100


# -- 10. config values checked against the class ------------------------------------------------------------
@pytest.mark.parametrize(
    "base,key,value,needle",
    [
        (TINY_WAN, "num_layers", 0, "num_layers = 0: expected a positive integer"),
        (TINY_WAN, "num_layers", -1, "num_layers = -1: expected a positive integer"),
        (TINY_WAN, "num_layers", "40", "num_layers = '40': expected a positive integer"),
        (TINY_WAN, "num_layers", True, "num_layers = True: expected a positive integer"),
        (TINY_WAN, "qk_norm", "nonsense", "qk_norm = 'nonsense': expected one of None, 'layer_norm'"),
        (TINY_WAN, "patch_size", [1, 2], "patch_size = [1, 2]: expected 3 positive integers"),
        (TINY_WAN, "patch_size", [1, 0, 2], "patch_size = [1, 0, 2]: expected a list of positive integers"),
        (TINY_WAN, "cross_attn_norm", "yes", "cross_attn_norm = 'yes' does not fit WanTransformer3DModel: expected bool"),
        (TINY_WAN, "eps", "small", "eps = 'small' does not fit WanTransformer3DModel: expected float"),
        (TINY_FLUX, "axes_dims_rope", "x", "axes_dims_rope = 'x': expected a positive integer"),
        (TINY_FLUX, "guidance_embeds", 1, "guidance_embeds = 1 does not fit FluxTransformer2DModel: expected bool"),
        (TINY_SD3, "qk_norm", "rms", "qk_norm = 'rms': expected one of"),
    ],
)
def test_config_values_are_checked(tmp_path: Path, base: dict[str, Any], key: str, value: Any, needle: str) -> None:
    cfg = write(tmp_path / "bad" / "config.json", dict(base, **{key: value}))
    code, _, err = cli("trace", "--config", str(cfg), "--no-cache", "--output-root", str(tmp_path / "out"))
    one_line_error(code, err, needle)
    assert "Traceback" not in err and not (tmp_path / "out").exists()


# -- 11. a model id with a config of another model ----------------------------------------------------------
def test_model_id_with_another_models_config(tmp_path: Path) -> None:
    flux = write(tmp_path / "flux" / "config.json", _bundled(get_spec("flux.1-dev")))
    code, _, err = cli("trace", "wan2.1-t2v-14b", "--config", str(flux), "--output-root", str(tmp_path / "out"))
    one_line_error(code, err, "is a FluxTransformer2DModel config, but wan2.1-t2v-14b is a WanTransformer3DModel")
    small = write(tmp_path / "small" / "config.json", _bundled(get_spec("wan2.1-t2v-1.3b")))
    code, _, err = cli("trace", "wan2.1-t2v-14b", "--config", str(small), "--output-root", str(tmp_path / "out"))
    one_line_error(code, err, "is not wan2.1-t2v-14b's architecture", "ffn_dim 8960 (bundled 13824)", "custom-small")
    assert not (tmp_path / "out").exists()
    # the model's own config (a local copy) keeps the label: it is that model
    same = write(tmp_path / "same" / "config.json", _bundled(get_spec("wan2.1-t2v-14b")))
    rm = resolve_model("wan2.1-t2v-14b", same)
    assert rm.id == "wan2.1-t2v-14b" and rm.config_source == str(same)
