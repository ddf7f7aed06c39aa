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
from tests.observe_cases import HAND_PLANNED
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
