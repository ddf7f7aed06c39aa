"""Issue 19 (a new user's first hour and a hostile-input run): items 1, 6, 13, 14 and parts of 15.

Each test failed on main before its fix.  Bad input is ONE ``error: ...`` line on stderr and
exit code 2; nothing is written to /dev/null here (a FIFO stands for a device node, and
:func:`fxmeter.base.fileio.check_target` is asked about /dev/null without writing to it).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from fxmeter.base import fileio
from fxmeter.cli.main import main

from .reports_for_tests import make_report

pytestmark = pytest.mark.fast


def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def assert_error_line(code: int, err: str, *needles: str) -> None:
    """Exit 2 and exactly one stderr line, ``error: ...``, holding every needle."""
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for n in needles:
        assert n in lines[0], (n, err)


def is_fifo(p: Path) -> bool:
    return stat.S_ISFIFO(os.lstat(p).st_mode)


@pytest.fixture
def reports(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    for d, blocks in ((a, 3), (b, 5)):
        d.mkdir()
        (d / "report.json").write_bytes(orjson.dumps(make_report(blocks=blocks)))
    return a, b


# -- item 1: writers never replace a FIFO, device or folder; an existing file only with --force -------------
def test_check_target_refuses_device_fifo_and_folder_without_writing(tmp_path: Path) -> None:
    from fxmeter.errors import OutputExistsError, OutputPathError

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for p in (Path(os.devnull), fifo, tmp_path):
        with pytest.raises(OutputPathError):
            fileio.check_target(p, force=True)
    existing = tmp_path / "x.html"
    existing.write_text("mine")
    fileio.check_target(existing)  # fxmeter's own output: replaceable
    with pytest.raises(OutputExistsError, match="--force"):
        fileio.check_target(existing, user_path=True)
    fileio.check_target(existing, user_path=True, force=True)
    fileio.check_target(tmp_path / "missing", user_path=True)


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_html_output_onto_a_fifo_or_a_folder_is_refused(reports: tuple[Path, Path], tmp_path: Path,
                                                        force: list[str]) -> None:
    a, _ = reports
    fifo = tmp_path / "page.html"
    os.mkfifo(fifo)
    code, _, err = run("html", str(a), "-o", str(fifo), *force)
    assert_error_line(code, err, str(fifo), "not a regular file")
    assert is_fifo(fifo)
    (tmp_path / "d" / "report.html").mkdir(parents=True)  # -o FOLDER writes FOLDER/report.html: here a folder
    code, _, err = run("html", str(a), "-o", str(tmp_path / "d"), *force)
    assert_error_line(code, err, "is a folder")
    assert (tmp_path / "d" / "report.html").is_dir()


def test_html_output_onto_an_existing_file_needs_force(reports: tuple[Path, Path], tmp_path: Path) -> None:
    a, _ = reports
    mine = tmp_path / "notes.html"
    mine.write_text("my notes")
    code, _, err = run("html", str(a), "-o", str(mine))
    assert_error_line(code, err, str(mine), "exists", "--force")
    assert mine.read_text() == "my notes"
    code, out, err = run("html", str(a), "-o", str(mine), "--force")
    assert code == 0, err
    assert mine.read_bytes().startswith(b"<!DOCTYPE html>") and f"wrote {mine}" in out
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no temp file left
    code, _, err = run("html", str(a))  # the default, beside the report: fxmeter's own file, replaced freely
    code2, _, err2 = run("html", str(a))
    assert code == code2 == 0, (err, err2)


def test_compare_html_onto_a_fifo_or_an_existing_file(reports: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = reports
    fifo = tmp_path / "cmp.html"
    os.mkfifo(fifo)
    code, _, err = run("compare", str(a), str(b), "--html", str(fifo), "--force")
    assert_error_line(code, err, "not a regular file")
    assert is_fifo(fifo)
    other = tmp_path / "other.html"
    other.write_text("unrelated")
    code, _, err = run("compare", str(a), str(b), "--html", str(other))
    assert_error_line(code, err, "exists", "--force")
    assert other.read_text() == "unrelated"
    code, _, err = run("compare", str(a), str(b), "--html", str(other), "--force")
    assert code == 0, err
    assert other.read_text() != "unrelated"


def test_summary_output_folder_existing_files_need_force_and_fifos_are_never_replaced(
        reports: tuple[Path, Path], tmp_path: Path) -> None:
    a, _ = reports
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.md").write_text("my summary")
    code, _, err = run("summary", str(a), "--no-plots", "-o", str(out))
    assert_error_line(code, err, "summary.md", "exists", "--force")
    assert (out / "summary.md").read_text() == "my summary"
    code, _, err = run("summary", str(a), "--no-plots", "-o", str(out), "--force")
    assert code == 0, err
    assert (out / "summary.md").read_text().startswith("#")
    (out / "summary.md").unlink()
    os.mkfifo(out / "summary.md")
    code, _, err = run("summary", str(a), "--no-plots", "-o", str(out), "--force")
    assert_error_line(code, err, "not a regular file")
    assert is_fifo(out / "summary.md")
    code, _, err = run("summary", str(a), "--no-plots")  # beside the report: fxmeter's own folder, twice
    assert code == 0 and run("summary", str(a), "--no-plots")[0] == 0, err


def test_a_fifo_inside_a_run_folder_is_not_replaced_even_with_force(tiny_config: Path, tmp_path: Path) -> None:
    args = ("trace", "--config", str(tiny_config), "-w", "ci-tiny", "--output-root", str(tmp_path), "--run-id", "r")
    code, _, err = run(*args)
    assert code == 0, err
    (folder,) = (tmp_path / "r" / "static_analysis").iterdir()
    (folder / "summary.md").unlink()
    os.mkfifo(folder / "summary.md")
    code, _, err = run(*args, "--force")
    assert_error_line(code, err, "summary.md", "not a regular file")
    assert is_fifo(folder / "summary.md")


# -- item 13: a stdout that fails (/dev/full) writes nothing ------------------------------------------------
def cli_to_dev_full(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    with open("/dev/full", "w") as full:
        return subprocess.run([sys.executable, "-m", "fxmeter", *args], stdout=full, stderr=subprocess.PIPE,
                              text=True, cwd=cwd, timeout=300, check=False)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
def test_trace_with_stdout_on_a_full_disk_exits_2_and_leaves_no_run_folder(tiny_config: Path, tmp_path: Path) -> None:
    p = cli_to_dev_full("trace", "--config", str(tiny_config), "-w", "ci-tiny", "--output-root", str(tmp_path / "o"),
                        "--run-id", "full", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "nothing was written" in lines[0], p.stderr
    assert not (tmp_path / "o" / "full").exists()
    assert not any(p.is_file() for p in (tmp_path / "o").rglob("*"))  # no temp file left either


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
def test_html_with_stdout_on_a_full_disk_writes_no_page(reports: tuple[Path, Path], tmp_path: Path) -> None:
    a, _ = reports
    p = cli_to_dev_full("html", str(a), "-o", str(tmp_path / "page.html"), cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "page.html").exists()


# -- item 14: config files --------------------------------------------------------------------------------
def write_config(tmp_path: Path, tiny_config: Path, text_edit: str | None = None, **changes: object) -> Path:
    cfg = {**json.loads(tiny_config.read_text()), **changes}
    text = json.dumps(cfg)
    if text_edit is not None:
        text = text[:-1] + text_edit + "}"
    p = tmp_path / "config.json"
    p.write_text(text)
    return p


def trace_config(cfg: Path, tmp_path: Path) -> tuple[int, str, str]:
    return run("trace", "--config", str(cfg), "-w", "ci-tiny", "--output-root", str(tmp_path / "o"))


def test_duplicate_config_key_is_an_error_naming_the_key(tiny_config: Path, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, tiny_config, ', "num_layers": 2')  # json keeps the last: a 2-block model
    code, _, err = trace_config(cfg, tmp_path)
    assert_error_line(code, err, "'num_layers'", "twice")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("value", "needle"), [("NaN", "NaN"), ("Infinity", "Infinity"), ("1e999", "finite"),
                                               ("-1", "out of range"), ("0", "out of range"), ("2.5", "out of range")])
def test_eps_outside_its_domain_is_refused(value: str, needle: str, tiny_config: Path, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, tiny_config, eps=1e-6)
    cfg.write_text(cfg.read_text().replace("1e-06", value))
    code, _, err = trace_config(cfg, tmp_path)
    assert_error_line(code, err, needle)


def test_a_5000_digit_integer_is_one_line(tiny_config: Path, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, tiny_config)
    cfg.write_text(cfg.read_text().replace('"num_layers": 3', '"num_layers": ' + "9" * 5000))
    code, _, err = trace_config(cfg, tmp_path)
    assert_error_line(code, err, "4300 digits")


def test_unknown_config_keys_are_warned_by_name(tiny_config: Path, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    from fxmeter.model.registry import resolve_model

    cfg = write_config(tmp_path, tiny_config, num_layer=2, qk_nrom="x")  # misspelt: diffusers would ignore them
    with caplog.at_level("WARNING", logger="fxmeter"):
        resolve_model(None, cfg)
    (line,) = [r.getMessage() for r in caplog.records if "not WanTransformer3DModel arguments" in r.getMessage()]
    assert "'num_layer'" in line and "'qk_nrom'" in line and "ignored" in line
    caplog.clear()
    with caplog.at_level("WARNING", logger="fxmeter"):
        resolve_model(None, tiny_config)  # every key known: silent
    assert not caplog.records


# -- item 6: absurd values are bounded by physics, with the reason --------------------------------------------
def device_file(tmp_path: Path, **changes: object) -> Path:
    dev: dict[str, object] = {"name": "mine", "tensor_core": {"bf16": 100e12}, "cuda_core_fp32": 10e12,
                              "memory_bandwidth": 1e12, "memory_gib": 16, **changes}
    p = tmp_path / "dev.json"
    p.write_text(json.dumps(dev))
    return p


@pytest.mark.parametrize(("changes", "needle"), [
    ({"tensor_core": {"bf16": 1e-300}}, "tensor_core.bf16"),
    ({"tensor_core": {"bf16": 1e19}}, "tensor_core.bf16"),
    ({"cuda_core_fp32": 1e-300}, "cuda_core_fp32"),
    ({"memory_bandwidth": 1e-300}, "memory_bandwidth"),
    ({"memory_gib": 1e-9}, "memory_gib"),
    ({"price_per_hour_usd": 5000}, "price_per_hour_usd"),
])
def test_device_file_values_outside_physics_are_one_line_with_the_reason(
        changes: dict[str, object], needle: str, tiny_config: Path, tmp_path: Path) -> None:
    p = device_file(tmp_path, **changes)
    code, _, err = run("trace", "--config", str(tiny_config), "-w", "ci-tiny", "--hardware-file", str(p),
                       "--hardware", "mine", "--output-root", str(tmp_path / "o"))
    assert_error_line(code, err, needle, "out of range", "between")
    assert not (tmp_path / "o").exists()  # no report that `top` would then reject


@pytest.mark.parametrize(("option", "value", "needle"), [
    ("--efficiency", "tc=1e-300", "--efficiency tc"), ("--efficiency", "bw=0.0001", "--efficiency bw"),
    ("--price-per-hour", "1e308", "--price-per-hour"), ("--price-per-hour", "5000", "--price-per-hour"),
])
def test_efficiency_and_price_outside_physics_are_refused(option: str, value: str, needle: str, tiny_config: Path,
                                                          tmp_path: Path) -> None:
    code, _, err = run("trace", "--config", str(tiny_config), "-w", "ci-tiny", "--hardware", "h100", option, value,
                       "--output-root", str(tmp_path / "o"))
    assert_error_line(code, err, needle, "out of range")


def test_bounded_names_the_value_range_and_reason() -> None:
    from fxmeter.base.bounds import bounded
    from fxmeter.estimate.hardware import HardwareError

    with pytest.raises(HardwareError, match=r"x = an integer of about 10\^400 is out of range \[1, 10\]: because"):
        bounded("x", 10**400, 1, 10, "because", error=HardwareError)
    with pytest.raises(HardwareError, match="must be a number"):
        bounded("x", True, 0, 1, "why", error=HardwareError)
    assert bounded("x", 10, 1, 10, "why") == 10.0


def test_huge_step_counts_give_exact_flops_and_readable_seconds(tiny_config: Path, tmp_path: Path) -> None:
    steps = 10**26  # legal, absurd: exact integers in the report, no 27-digit figures on the console
    code, out, err = run("trace", "--config", str(tiny_config), "-w", "ci-tiny", "--hardware", "h100", "--steps",
                         str(steps), "--output-root", str(tmp_path), "--run-id", "huge")
    assert code == 0, err
    assert not re.search(r"\d{1,3}(,\d{3}){6,}\.\d s", out), out  # no "162,692,...,712.0 s"
    assert not re.search(r"\d{10,}\.\d\d [EPT]FLOP", out), out  # no "57108302162502394839040.00 EFLOP"
    assert re.search(r"\d\.\d\de\+\d+ s", out), out
    folder = tmp_path / "huge" / "static_analysis" / "wan"
    code, _, err = run("top", str(folder))  # the report it wrote is one `top` reads
    assert code == 0, err


# -- item 15: typed errors and clean messages ---------------------------------------------------------------
def test_trace_with_dtype_none_is_a_project_error() -> None:
    import fxmeter
    from fxmeter.errors import FxmeterError

    with pytest.raises(FxmeterError, match="dtype must be one of bf16, fp16, fp32"):
        fxmeter.trace("wan2.1-t2v-1.3b", dtype=None)  # type: ignore[arg-type]


@pytest.mark.parametrize(("rules", "needle"), [({"aten.linear.default": 5}, "must be a rule function"),
                                               ([1], "must be a mapping"), ({3: len}, "aten target string")])
def test_trace_with_a_bad_rule_overlay_is_a_project_error(rules: object, needle: str) -> None:
    import fxmeter
    from fxmeter.errors import UsageError

    with pytest.raises(UsageError, match=needle):
        fxmeter.trace("wan2.1-t2v-1.3b", rules=rules)  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_rule_overlay_that_raises_is_named(tiny_config: Path) -> None:
    import fxmeter
    from fxmeter.errors import TraceError

    def broken(call: object) -> object:
        raise ZeroDivisionError("oops")

    with pytest.raises(TraceError, match=r"rules\['aten.linear.default'\] raised ZeroDivisionError: oops"):
        fxmeter.trace(config=tiny_config, workload="ci-tiny", rules={"aten.linear.default": broken}, cache=False)


@pytest.mark.parametrize("doc", [{}, [], {"tool": {"name": "fxmeter"}, "schema_version": 2}])
def test_report_from_dict_of_a_non_report_is_a_report_error(doc: object) -> None:
    from fxmeter.errors import ReportError
    from fxmeter.report import Report

    with pytest.raises(ReportError):
        Report.from_dict(doc)  # type: ignore[arg-type]


def test_sweep_of_an_impossible_resolution_names_the_point_cleanly(tiny_config: Path, tmp_path: Path) -> None:
    code, _, err = run("sweep", "--config", str(tiny_config), "-w", "ci-tiny", "--height", "481",
                       "--output-root", str(tmp_path))
    assert_error_line(code, err, "sweep point with height 481:", "divisible")
    assert "481x," not in err and " frames:" not in err


def test_gpus_1_advice_does_not_suggest_gpus_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # every bundled adapter now knows how it splits; an adapter without model_dims (a class fxmeter cannot split)
    # is what gets this advice
    from fxmeter.model.adapters.cogvideox import CogVideoXAdapter

    monkeypatch.setattr(CogVideoXAdapter, "model_dims", lambda self, config, geometry: None)
    code, _, err = run("trace", "cogvideox-5b", "--gpus", "1", "--hardware", "h100", "--output-root", str(tmp_path))
    assert_error_line(code, err, "leave --gpus out")
    assert "use --gpus 1" not in err


def test_vv_logs_which_trace_was_used_and_why(tiny_config: Path, tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "fxmeter", "-vv", "trace", "--config", str(tiny_config), "-w", "ci-tiny",
                        "--output-root", str(tmp_path)], capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode == 0, p.stderr
    debug = [ln for ln in p.stderr.splitlines() if ln.startswith("DEBUG fxmeter.cost.store:")]
    assert any("looking for a trace" in ln and "cache on" in ln for ln in debug), p.stderr
    assert any("using the " in ln and " trace (" in ln for ln in debug), p.stderr
    assert not [ln for ln in p.stderr.splitlines() if ln.startswith("DEBUG") and "fxmeter" not in ln]  # no torch noise
    q = subprocess.run([sys.executable, "-m", "fxmeter", "trace", "--config", str(tiny_config), "-w", "ci-tiny",
                        "--output-root", str(tmp_path)], capture_output=True, text=True, timeout=300, check=False)
    assert q.returncode == 0 and "DEBUG" not in q.stderr, q.stderr
