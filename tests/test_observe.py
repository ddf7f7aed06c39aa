"""The real diffusers pipeline observed on meta (``fxmeter.model.observe``) against the hand adapters,
``fxmeter observe``, and ``fxmeter trace PATH`` on a pipeline folder (good and bad folders).

Fast lane: a tiny Wan pipeline folder (UMT5 + Wan transformer + Wan VAE).  Slow: every bundled
model at its preset and at a second workload, observed calls == the adapter's plan, with the
differences the observation found listed per model in :data:`KNOWN` (each one a fact of the
pipeline's source, said in words).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from diffusers.schedulers import KarrasDiffusionSchedulers

from fxmeter.cli.main import main
from fxmeter.model import observe as ob
from fxmeter.model.folder import PIPELINES, check_folder
from fxmeter.model.registry import MODELS, resolve_model
from fxmeter.model.workload import get_preset
from tests.conftest import TINY_WAN
from tests.test_pipeline_cli import INDEX, folder


def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def one_error(code: int, err: str, *needles: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln.strip() and "torchvision" not in ln]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return folder(tmp_path_factory.mktemp("observe") / "tiny-wan")


@pytest.fixture(scope="module")
def tiny_axes(tiny: Path) -> tuple[Any, tuple[ob.Axis, ...], dict[str, ob.Observation]]:
    model = ob.observe_model(str(tiny), "ci-tiny")[0]
    axes, obs = ob.infer_axes(model, get_preset("ci-tiny"))
    return model, axes, obs


#: the models whose hand adapters predate the observation (a zoo model checks itself in its own test file)
HAND_PLANNED = ("wan2.1-t2v-14b", "wan2.1-t2v-1.3b", "wan2.1-i2v-14b-480p", "wan2.1-i2v-14b-720p", "wan2.2-ti2v-5b",
                "wan2.2-t2v-a14b", "wan2.2-i2v-a14b", "flux.1-dev", "sd3.5-large", "hunyuanvideo", "cogvideox-5b",
                "ltx-video")


# -- the tiny folder -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_tiny_pipeline_calls_as_wan_pipeline_makes_them(tiny_axes: Any) -> None:
    model, _, obs = tiny_axes
    o = obs["base"]
    assert o.pipeline == "WanPipeline" and o.scheduler == "FlowMatchEulerDiscreteScheduler"
    st = {s.name: s for s in o.stages()}
    assert list(st) == ["text_encoder", "transformer", "vae"]
    # ci-tiny: 1 step, CFG 5.0: prompt + negative prompt encoded (2 calls), 2 separate transformer forwards
    assert (st["text_encoder"].runs, st["transformer"].runs, st["vae"].runs) == (2, 2, 1)
    assert st["transformer"].steps == (0,) and st["transformer"].calls_per_step == 2 and st["transformer"].batch == 1
    # 4 frames -> 5 (4k+1) -> 2 latent frames; 256 px / 8 = 32 latent pixels; text padded to 64 tokens (text_dim 16)
    assert dict(st["transformer"].inputs)["hidden_states"] == ob.TensorSpec((1, 4, 2, 32, 32), "bfloat16")
    assert dict(st["transformer"].inputs)["encoder_hidden_states"] == ob.TensorSpec((1, 64, 16), "bfloat16")
    assert dict(st["text_encoder"].inputs) == {"input_ids": ob.TensorSpec((1, 64), "int64"),
                                               "attention_mask": ob.TensorSpec((1, 64), "int64")}
    assert dict(st["vae"].inputs)["z"].shape == (1, 4, 2, 32, 32)
    assert not ob.cfg_batched(o)
    assert ob.compare_with_plan(model, o) == []
    assert any("scheduler" in p for p in o.patched) and any("ShapeTokenizer" in p for p in o.patched)


def test_inferred_axes_follow_the_adapters_symbols(tiny_axes: Any) -> None:
    model, axes, obs = tiny_axes
    assert set(obs) == {"base", "frames", "height", "width", "text_len", "batch"}
    by = {(a.stage, a.name, a.axis): a.follows for a in axes}
    assert by[("transformer", "hidden_states", 0)] == ("batch",)
    assert by[("transformer", "hidden_states", 1)] == ()  # channels
    assert by[("transformer", "hidden_states", 2)] == ("frames",)
    assert by[("transformer", "hidden_states", 3)] == ("height",)
    assert by[("transformer", "hidden_states", 4)] == ("width",)
    assert by[("transformer", "encoder_hidden_states", 1)] == ("text_len",)
    assert by[("text_encoder", "input_ids", 1)] == ("text_len",)
    assert by[("vae", "z", 2)] == ("frames",)
    assert ob.check_axes(model, axes, get_preset("ci-tiny")) == []
    # every variant agrees with the plan as well (same runs, same shapes at each workload)
    for knob, o in obs.items():
        assert ob.compare_with_plan(model, o) == [], knob


def test_a_plan_that_disagrees_is_reported(tiny_axes: Any) -> None:
    model, _, obs = tiny_axes
    o = obs["base"]
    first = next(i for i, c in enumerate(o.calls) if c.component == "transformer")
    fewer = replace(o, calls=o.calls[:first] + o.calls[first + 1:])  # one CFG pass fewer
    diffs = [str(m) for m in ob.compare_with_plan(model, fewer)]
    assert diffs == ["transformer: runs: plan 2, observed 1"]
    batched = ob.compare_with_plan(model, o, batched_cfg=True)
    assert {m.what for m in batched} >= {"runs", "batch", "input hidden_states"}


@pytest.mark.slow
def test_cli_observe_table_and_json(tiny: Path) -> None:
    code, out, err = run("observe", str(tiny), "-w", "ci-tiny")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("custom-tiny-wan @ ci-tiny: WanPipeline")
    assert any(ln.split()[:6] == ["transformer", "forward", "2", "1", "2", "1"] for ln in lines), out
    assert "plan: the hand adapter's plan agrees" in out
    code, out, err = run("observe", str(tiny), "-w", "ci-tiny", "--steps", "3", "--json", "--axes")
    assert code == 0, err
    d = json.loads(out)
    axes = {(a["stage"], a["input"], a["axis"]): a["follows"] for a in d["axes"]}
    assert axes[("transformer", "hidden_states", 3)] == ["height"] and axes[("vae", "z", 0)] == ["batch"]
    assert d["axis_differences"] == []
    tr = next(s for s in d["stages"] if s["name"] == "transformer")
    assert (tr["runs"], tr["steps"], tr["calls_per_step"]) == (6, 3, 2)
    assert tr["inputs"]["hidden_states"] == {"shape": [1, 4, 2, 32, 32], "dtype": "bfloat16"}
    assert d["plan_differences"] == [] and d["cfg_batched"] is False


def test_observe_needs_the_pipelines_components(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(TINY_WAN))
    code, _, err = run("observe", "--config", str(tmp_path / "config.json"), "-w", "ci-tiny")
    one_error(code, err, "WanPipeline needs text_encoder, vae", "observe a pipeline folder")


def test_cli_observe_bad_input_is_one_line(tmp_path: Path) -> None:
    code, _, err = run("observe", "no-such-model")
    one_error(code, err, "unknown model 'no-such-model'")
    code, _, err = run("observe", str(tmp_path / "nothing"))
    one_error(code, err, "no such model folder")


# -- fxmeter trace PATH ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_trace_path_traces_the_folder(tiny: Path, tmp_path: Path) -> None:
    code, out, err = run("trace", str(tiny), "-w", "ci-tiny", "--output-root", str(tmp_path / "o"), "--run-id", "p")
    assert code == 0, err
    assert "whole generation (text_encoder x2, transformer x2, vae x1)" in out
    d = json.loads(next((tmp_path / "o" / "p").glob("static_analysis/*/report.json")).read_text())
    assert [s["name"] for s in d["pipeline"]["stages"]] == ["text_encoder", "transformer", "vae"]
    # the folder's model_index.json works as PATH too
    assert check_folder(tiny / "model_index.json") == tiny


def _copy(tiny: Path, tmp_path: Path, name: str = "bad") -> Path:
    dst = tmp_path / name
    shutil.copytree(tiny, dst)
    return dst


def _index(path: Path, **changes: Any) -> None:
    idx = {**INDEX, **changes}
    (path / "model_index.json").write_text(json.dumps({k: v for k, v in idx.items() if v is not None}))


@pytest.mark.parametrize("case, needles", [
    ("missing", ("no such model folder",)),
    ("file", ("is a file, not a pipeline folder", "--config")),
    ("no-index", ("no model_index.json", "save_pretrained")),
    ("no-class", ("names no pipeline class",)),
    ("unknown-pipeline", ("unknown pipeline class 'MochiPipeline'", "WanPipeline")),
    ("unknown-transformer", ("unsupported model class 'MochiTransformer3DModel'",)),
    ("no-transformer-config", ("lists 'transformer' (WanTransformer3DModel) but transformer/config.json is missing",)),
    ("no-vae-config", ("lists 'vae' (AutoencoderKLWan) but vae/config.json is missing",)),
    ("no-scheduler-config", ("lists 'scheduler' (UniPCMultistepScheduler) but scheduler/scheduler_config.json",)),
    ("wrong-pipeline", ("names WanImageToVideoPipeline", "WanPipeline runs")),
    ("unknown-encoder", ("unsupported pipeline component class 'GemmaModel'",)),
])
def test_trace_path_bad_folder_is_one_error_line(tiny: Path, tmp_path: Path, case: str, needles: tuple[str, ...]) -> None:
    path = tmp_path / "absent"
    if case == "file":
        path = tiny / "transformer" / "config.json"
    elif case != "missing":
        path = _copy(tiny, tmp_path)
    if case == "no-index":
        (path / "model_index.json").unlink()
    elif case == "no-class":
        _index(path, _class_name=None)
    elif case == "unknown-pipeline":
        _index(path, _class_name="MochiPipeline")
    elif case == "unknown-transformer":
        cfg = json.loads((path / "transformer" / "config.json").read_text())
        (path / "transformer" / "config.json").write_text(json.dumps({**cfg, "_class_name": "MochiTransformer3DModel"}))
    elif case == "no-transformer-config":
        (path / "transformer" / "config.json").unlink()
    elif case == "no-vae-config":
        (path / "vae" / "config.json").unlink()
    elif case == "no-scheduler-config":
        _index(path, scheduler=["diffusers", "UniPCMultistepScheduler"])
    elif case == "wrong-pipeline":
        _index(path, _class_name="WanImageToVideoPipeline")
    elif case == "unknown-encoder":
        _index(path, text_encoder=["transformers", "GemmaModel"])
    code, out, err = run("trace", str(path), "--output-root", str(tmp_path / "o"))
    one_error(code, err, *needles)
    assert not (tmp_path / "o").exists()


def test_trace_path_and_config_together_is_refused(tiny: Path, tmp_path: Path) -> None:
    code, _, err = run("trace", str(tiny), "--config", str(tiny), "--output-root", str(tmp_path / "o"))
    one_error(code, err, "not both")


def test_every_hand_planned_model_has_its_pipeline() -> None:
    assert set(HAND_PLANNED) <= set(MODELS)
    for mid in HAND_PLANNED:
        assert ob.pipeline_class_name(resolve_model(mid)) in PIPELINES.values(), mid


# -- every bundled model (slow: full-size components on meta) -----------------------------------------------
#: what the observation found that the hand adapters say otherwise, per model (stage, what) -> why
KNOWN: dict[str, dict[tuple[str, str], str]] = {
    # Wan2.2-A14B ships UniPCMultistepScheduler (its scheduler_config.json, bundled): integer timesteps, so the
    # pipeline's t.expand(batch) is int64; the adapter feeds float32 (FlowMatchEuler's, Wan2.1 without a config)
    "wan2.2-t2v-a14b": {("transformer", "input timestep"): "int64 UniPC timesteps",
                        ("transformer_2", "input timestep"): "int64 UniPC timesteps"},
    "wan2.2-i2v-a14b": {("transformer", "input timestep"): "int64 UniPC timesteps",
                        ("transformer_2", "input timestep"): "int64 UniPC timesteps"},
    # HunyuanVideoPipeline casts prompt_attention_mask to the transformer dtype; the adapter passes int64
    "hunyuanvideo": {("transformer", "input encoder_attention_mask"): "the pipeline passes the mask in bf16"},
    # SkyReels-V2 ships UniPCMultistepScheduler as Wan2.2 does: int64 timesteps; the adapter feeds float32
    "skyreels-v2-t2v-14b-540p": {("transformer", "input timestep"): "int64 UniPC timesteps"},
    "skyreels-v2-t2v-14b-720p": {("transformer", "input timestep"): "int64 UniPC timesteps"},
    # Sana / SANA-Video prefix the prompt with a complex human instruction and size the encoder call by
    # len(tokenizer.encode(instruction)) (208 / 221 Gemma tokens, fxmeter.model.adapters.gemma): the count needs
    # Gemma's vocabulary; the shape-only tokenizer counts PROMPT_TOKENS, so the prompt's encoder call has other
    # lengths (the negative prompt's call, without the instruction, agrees)
    **{mid: {("text_encoder", "runs"): "instruction tokens need Gemma's vocabulary",
             ("text_encoder", "input input_ids"): "instruction tokens need Gemma's vocabulary",
             ("text_encoder", "input attention_mask"): "instruction tokens need Gemma's vocabulary",
             ("text_encoder", "calls no plan stage's inputs match"): "instruction tokens need Gemma's vocabulary"}
       for mid in ("sana-1600m-1024", "sana-video-2b-480p")},
}
#: bundled models observe refuses, each with the one error line's reason (a substring of it)
REFUSED: dict[str, str] = {
    # a modular pipeline (MiniMax-H3's blocks), not a DiffusionPipeline class observe can call
    "minimax-h3": "no known diffusers pipeline",
    # QwenImage21Pipeline needs a Qwen3VLProcessor (its chat template and vision preprocessing), not bundled
    "qwen-image-2.1": "needs processor",
    # HiDream's MoE router counts tokens per expert (torch.bincount of the routing's values) inside the
    # transformer forward: data-dependent, no meta kernel (the plan costs an even routing)
    "hidream-i1-full": "bincount",
}
#: pipelines that concatenate the two CFG branches (one forward of 2x the batch per step): their
#: __call__ does torch.cat([latents] * 2); fxmeter's default (separate passes) is --batched-cfg for them
BATCHED_CFG = {"sd3.5-large", "cogvideox-5b", "ltx-video"}


def _second(wl: Any) -> Any:
    """A smaller second workload of the same family (other sizes, fewer steps)."""
    video = wl.frames > 1
    return replace(wl, name=f"{wl.name}-small", frames=(25 if video else 1), height=max(wl.height // 2 // 64 * 64, 64),
                   width=max(wl.width // 2 // 64 * 64, 64), steps=4,
                   text_len=wl.text_len // 2 if wl.text_len > 256 else wl.text_len)


@pytest.mark.slow
@pytest.mark.parametrize("mid", HAND_PLANNED)
def test_observation_equals_the_hand_plan(mid: str) -> None:
    m = resolve_model(mid)
    wl = get_preset(m.default_workload)
    built = ob.build(m, wl)
    for w in (wl, _second(wl)):
        if "i2v" in mid:  # Wan I2V: fxmeter pins 512 text tokens (the attention processor hard-codes them)
            w = replace(w, text_len=512)
        obs = ob.run(built, w, mid)
        assert ob.cfg_batched(obs) == (mid in BATCHED_CFG), (mid, w.name)
        diffs = ob.compare_with_plan(m, obs, batched_cfg=mid in BATCHED_CFG)
        assert {(d.stage, d.what) for d in diffs} == set(KNOWN.get(mid, {})), (mid, w.name, [str(d) for d in diffs])
        plans = m.stages(w, denoise_only=True)
        if len(plans) == 2:  # Wan2.2-A14B: the low-noise expert takes over after the high-noise expert's steps
            switch = obs.expert_switch()
            assert switch is not None and switch[0] == plans[0].steps and switch[1] == plans[1].timesteps[0]


#: zoo models observed at their preset only, not at :func:`_second`'s smaller workload, and why (found by the
#: observation; the plans cost the workload as given).  None today: PixArt-Sigma, Sana and SANA-Video's plans
#: follow use_resolution_binning (the transformer and VAE at the bin, a resize stage back); Z-Image and
#: ChronoEdit pad the prompt to max_sequence_length 512 whatever text_len is, and the observation passes
#: what the plan costs (``ob.MAX_SEQUENCE_LENGTHS``)
PRESET_ONLY: dict[str, str] = {}
#: every other bundled model (a zoo model): observed at its preset
ZOO = tuple(m for m in MODELS if m not in HAND_PLANNED)


@pytest.mark.slow
@pytest.mark.parametrize("mid", ZOO)
def test_zoo_observation_equals_the_hand_plan(mid: str) -> None:
    """Each zoo model's pipeline on meta at its preset and a smaller second workload (not for
    :data:`PRESET_ONLY`): the same stages, runs, steps, batch and input shapes
    and dtypes as its hand plan (CFG batching as the pipeline ran it), but for :data:`KNOWN`; the models in
    :data:`REFUSED` stop with one error naming why."""
    from fxmeter.errors import ConfigError, TraceError

    if mid in REFUSED:
        with pytest.raises((ConfigError, TraceError), match=REFUSED[mid]):
            ob.observe_model(mid)
        return
    m = resolve_model(mid)
    wl = get_preset(m.default_workload)
    built = ob.build(m, wl)
    for w in (wl,) if mid in PRESET_ONLY else (wl, _second(wl)):
        obs = ob.run(built, w, mid)
        diffs = ob.compare_with_plan(m, obs, batched_cfg=ob.cfg_batched(obs))
        assert {(d.stage, d.what) for d in diffs} == set(KNOWN.get(mid, {})), (mid, w.name, [str(d) for d in diffs])


def test_a_model_id_wins_over_a_folder_of_that_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fxmeter.model.folder import looks_like_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "wan2.1-t2v-1.3b").mkdir()
    (tmp_path / "mine").mkdir()
    assert not looks_like_path("wan2.1-t2v-1.3b") and not looks_like_path("flux.1-dev")
    assert looks_like_path("mine") and looks_like_path("./x") and looks_like_path("model_index.json")


def test_plan_differences_for_a_zoo_models_test(tiny: Path) -> None:
    assert ob.plan_differences(str(tiny), "ci-tiny", steps=2) == []
    assert ob.plan_differences(str(tiny), "ci-tiny", batched_cfg=True)[0].startswith("transformer: runs: plan 1, observed 2")


@pytest.mark.slow
@pytest.mark.parametrize("mid", HAND_PLANNED)
def test_inferred_axes_agree_with_the_adapter(mid: str) -> None:
    """One workload per knob at a small size: the denoiser's axes follow the adapter's symbols, and the
    plan agrees with every variant (Wan I2V: fxmeter pins 512 text tokens, so its text knob is not varied)."""
    m = resolve_model(mid)
    wl = replace(_second(get_preset(m.default_workload)), steps=2)
    knobs = tuple(k for k in ob.KNOBS if not ("i2v" in mid and k == "text_len"))
    if "i2v" in mid:
        wl = replace(wl, text_len=512)
    axes, obs = ob.infer_axes(m, wl, knobs=knobs)
    assert set(obs) == {"base", *(k for k in knobs if k != "frames" or wl.frames > 1)}
    assert ob.check_axes(m, axes, wl) == [], mid
    assert any(a.follows == ("batch",) for a in axes if a.stage == "transformer")
    for knob, o in obs.items():
        diffs = ob.compare_with_plan(m, o, batched_cfg=mid in BATCHED_CFG)
        assert {(d.stage, d.what) for d in diffs} == set(KNOWN.get(mid, {})), (mid, knob, [str(d) for d in diffs])


class EnumPipeline:
    def __init__(self, scheduler: KarrasDiffusionSchedulers) -> None:
        pass


def test_observe_a_pipeline_that_names_no_scheduler_class_is_one_error_line() -> None:
    """A pipeline that annotates its scheduler with an enum of names (AllegroPipeline's
    ``KarrasDiffusionSchedulers``) and has no scheduler config: no class to build, one clear error.
    Allegro itself has one (``ob.PIPELINE_EXTRAS``: its reference script's EulerAncestralDiscreteScheduler)."""
    from types import SimpleNamespace

    from fxmeter.errors import ConfigError

    with pytest.raises(ConfigError, match="names no scheduler class"):
        ob._scheduler(EnumPipeline, SimpleNamespace(config={}))  # type: ignore[arg-type]
    assert "AllegroPipeline" in ob.PIPELINE_EXTRAS
