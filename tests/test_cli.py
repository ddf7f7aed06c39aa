"""The CLI through click's CliRunner: every bad input is one line and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from fxmeter.cli.main import main


def run(*args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    runner = CliRunner()
    res = runner.invoke(main, list(args), catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code != 0
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert "Traceback" not in err
    assert lines, "no error message"
    msg = lines[-1]
    for n in needles:
        assert n in err, (n, err)
    assert msg.startswith("error:") or msg.startswith("Error:"), err


@pytest.mark.slow
def test_trace_tiny_writes_report_and_summary(tiny_config: Path, tmp_path: Path) -> None:
    code, out, err = run("trace", "--config", str(tiny_config), "--workload", "ci-tiny", "--run-id", "r1",
                         "--output-root", str(tmp_path), "--no-cache")
    assert code == 0, err
    rep = tmp_path / "r1" / "static_analysis" / "wan" / "report.json"
    assert rep.exists() and (rep.parent / "summary.md").exists()
    assert "tensor-core FLOPs per forward" in out and str(rep) in out
    data = orjson.loads(rep.read_bytes())
    assert data["run_id"] == "r1" and data["schema_version"] == 2
    # --no-cache: traced now, nothing read from or written to the cache
    assert data["trace"]["cache"] == "disabled" and data["trace"]["rules"]


def test_existing_run_is_not_overwritten(tiny_config: Path, tmp_path: Path) -> None:
    args = ("trace", "--config", str(tiny_config), "-w", "ci-tiny", "--run-id", "same", "--output-root", str(tmp_path))
    assert run(*args)[0] == 0
    code, _, err = run(*args)
    assert_one_line_error(code, err, "exists", "--force")
    assert run(*args, "--force")[0] == 0


def test_workloads_and_models_list() -> None:
    code, out, _ = run("workloads")
    assert code == 0 and "720p" in out and "W-001" in out and "ci-tiny" in out
    code, out, _ = run("models")
    assert code == 0 and "wan2.1-t2v-14b" in out and "wan2.1-t2v-1.3b" in out


@pytest.mark.parametrize(
    "args,needles",
    [
        (("trace", "no-such-model"), ("unknown model", "fxmeter models")),
        (("trace", "wan2.1-t2v-14b", "--height", "721"), ("divisible by 16",)),
        (("trace", "wan2.1-t2v-14b", "--width", "1000"), ("divisible by 16",)),
        (("trace", "wan2.1-t2v-14b", "--steps", "-5"), ("must be positive",)),
        (("trace", "wan2.1-t2v-14b", "--frames", "0"), ("must be positive",)),
        (("trace", "wan2.1-t2v-14b", "--height", "20000"), ("RoPE table",)),
        (("trace", "wan2.1-t2v-14b", "--run-id", "../evil"), ("unsafe run id",)),
        (("trace", "wan2.1-t2v-14b", "--run-id", "a/b"), ("unsafe run id",)),
        (("trace", "wan2.1-t2v-14b", "--workload", "1080p"), ("unknown workload",)),
        (("trace", "wan2.1-t2v-14b", "--dtype", "int3"), ("unknown dtype",)),
        (("trace",), ("name a model",)),
    ],
)
def test_bad_input_is_one_clear_line(args: tuple[str, ...], needles: tuple[str, ...], tmp_path: Path) -> None:
    code, _, err = run(*args, "--output-root", str(tmp_path))
    assert_one_line_error(code, err, *needles)
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_missing_config(tmp_path: Path) -> None:
    code, _, err = run("trace", "--config", str(tmp_path / "nope.json"), "--output-root", str(tmp_path))
    assert_one_line_error(code, err, "config file not found", "nope.json")


def test_malformed_config(tmp_path: Path) -> None:
    p = tmp_path / "config.json"
    p.write_text("{not json")
    code, _, err = run("trace", "--config", str(p), "--output-root", str(tmp_path / "out"))
    assert_one_line_error(code, err, "not valid JSON", str(p))
    assert not (tmp_path / "out").exists()


def test_config_missing_key_is_named(tmp_path: Path) -> None:
    from tests.conftest import TINY_WAN

    cfg = dict(TINY_WAN)
    del cfg["num_layers"]
    p = tmp_path / "transformer"
    p.mkdir()
    (p / "config.json").write_text(json.dumps(cfg))
    # a model folder holding transformer/config.json is accepted
    code, _, err = run("trace", "--config", str(tmp_path), "--output-root", str(tmp_path / "out"))
    assert_one_line_error(code, err, "missing required key 'num_layers'", "config.json")


def test_unsupported_class_lists_supported(tmp_path: Path) -> None:
    p = tmp_path / "config.json"
    p.write_text(json.dumps({"_class_name": "UNet2DConditionModel"}))
    code, _, err = run("trace", "--config", str(p), "--output-root", str(tmp_path / "out"))
    assert_one_line_error(code, err, "unsupported model class", "WanTransformer3DModel")


def test_config_not_an_object(tmp_path: Path) -> None:
    p = tmp_path / "config.json"
    p.write_text("[1, 2]")
    code, _, err = run("trace", "--config", str(p), "--output-root", str(tmp_path / "out"))
    assert_one_line_error(code, err, "must hold a JSON object")


@pytest.mark.slow
def test_strict_fails_on_unmodeled_op(tiny_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fxmeter import rules

    monkeypatch.delitem(rules.REGISTRY, "aten.silu.default")
    code, _, err = run("trace", "--config", str(tiny_config), "-w", "ci-tiny", "--no-cache", "--strict",
                       "--output-root", str(tmp_path))
    assert_one_line_error(code, err, "aten.silu.default")
    assert not any(tmp_path.iterdir())
    # without --strict: a warning, the op listed in the report, never silently zero
    code, _, err = run("trace", "--config", str(tiny_config), "-w", "ci-tiny", "--no-cache", "--run-id", "u",
                       "--output-root", str(tmp_path))
    assert code == 0 and "no rule" in err
    data = orjson.loads((tmp_path / "u" / "static_analysis" / "wan" / "report.json").read_bytes())
    (u,) = data["unmodeled_ops"]
    assert u["op"] == "aten.silu.default" and u["count"] >= 2 and u["modules"]


@pytest.mark.parametrize(
    "key,value,needle",
    [
        ("patch_size", 2, "patch_size = 2: expected 3 positive integers"),
        ("in_channels", "x", "in_channels = 'x': expected a positive integer"),
        ("rope_max_seq_len", None, "rope_max_seq_len = None: expected a positive integer"),
        ("num_layers", "two", "num_layers = 'two': expected a positive integer"),
        ("ffn_dim", -5, "ffn_dim = -5: expected a positive integer"),
    ],
)
def test_config_values_of_the_wrong_kind(key: str, value: object, needle: str, tmp_path: Path) -> None:
    from tests.conftest import TINY_WAN

    cfg = dict(TINY_WAN)
    cfg[key] = value
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    code, _, err = run("trace", "--config", str(p), "-w", "ci-tiny", "--no-cache", "--output-root", str(tmp_path / "out"))
    assert_one_line_error(code, err, needle)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "content,needle",
    [
        ('{"tool": "x", "schema_version": 2}', "not an fxmeter report"),
        ('{"tool": {"name": "fxmeter"}, "schema_version": 2}', "missing key 'run_id'"),
        ('{"tool": {"name": "fxmeter"}, "schema_version": 1}', "schema_version 1; this fxmeter reads 2"),
        ('{"tool": {"name": "fxmeter"}, "schema_version": 99}', "schema_version 99"),
        ("[1, 2", "not a JSON file"),
    ],
)
@pytest.mark.parametrize("command", ["top", "summary", "compare"])
def test_bad_report_files_are_one_line(command: str, content: str, needle: str, tmp_path: Path) -> None:
    p = tmp_path / "report.json"
    p.write_text(content)
    args = (command, str(p), str(p)) if command == "compare" else (command, str(p))
    code, _, err = run(*args)
    assert_one_line_error(code, err, needle)


def test_unwritable_output_root_fails_before_tracing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run("trace", "wan2.1-t2v-14b", "--output-root", str(blocker / "out"))
    assert_one_line_error(code, err, "is not a folder")


def test_click_usage_errors_are_one_line() -> None:
    for args in (("trace", "wan2.1-t2v-14b", "--frames", "abc"), ("trace", "--bogus"), ("no-such-command",)):
        code, _, err = run(*args)
        assert code == 2 and err.strip().count("\n") == 0 and err.startswith("error:"), err
