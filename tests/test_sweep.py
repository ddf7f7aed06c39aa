"""``fxmeter sweep``: one trace, a grid of workloads -> CSV, JSON, PNG."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

import fxmeter
from fxmeter.cli.main import main
from fxmeter.errors import WorkloadError
from fxmeter.report.sweep import COLUMNS, int_list


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_int_list() -> None:
    assert int_list("480, 720", "height") == [480, 720]
    assert int_list(None, "height") == [None]
    with pytest.raises(WorkloadError, match="--text-len: 'x' is not an integer"):
        int_list("1,x", "text_len")
    with pytest.raises(WorkloadError, match="must be positive"):
        int_list("0", "frames")


def test_sweep_grid_matches_single_traces(tiny_config: Path, tmp_path: Path) -> None:
    code, out, err = run(
        "sweep", "--config", str(tiny_config), "-w", "ci-tiny", "--height", "32,64", "--width", "32",
        "--frames", "4,8,9", "--steps", "1,2", "--run-id", "s", "--output-root", str(tmp_path),
    )
    assert code == 0, err
    folder = tmp_path / "s" / "static_analysis" / "wan"
    rows = list(csv.DictReader((folder / "sweep.csv").open()))
    assert len(rows) == 2 * 3 * 2  # heights x frames x steps
    assert list(rows[0]) == list(COLUMNS)
    doc = orjson.loads((folder / "sweep.json").read_bytes())
    assert len(doc["rows"]) == 12 and doc["trace"]["mode"] == "dynamic"
    assert (folder / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # every row equals a single trace of that workload
    for r in doc["rows"][:3]:
        rep = fxmeter.trace(config=tiny_config, workload="ci-tiny", height=r["height"], width=r["width"],
                            frames=r["frames"], steps=r["steps"], run_id="x")
        assert r["flops_end_to_end"] == rep.end_to_end["flops"]
        assert r["tensor_core_flops_per_forward"] == rep.per_forward["tensor_core_flops"]
        assert r["memory_bytes"] == rep["memory"]["total_bytes"]
        assert r["tokens"] == rep["workload"]["tokens"]
        # end to end = per forward x steps x passes (CFG 5.0 -> 2 passes)
        assert r["flops_end_to_end"] == r["flops_per_forward"] * r["steps"] * 2


@pytest.mark.slow
def test_sweep_point_outside_guards_is_traced_statically(tiny_config: Path, tmp_path: Path) -> None:
    code, _, err = run("sweep", "--config", str(tiny_config), "-w", "ci-tiny", "--height", "16,32", "--no-plot",
                       "--run-id", "g", "--output-root", str(tmp_path))
    assert code == 0, err
    doc = orjson.loads((tmp_path / "g" / "static_analysis" / "wan" / "sweep.json").read_bytes())
    rep = fxmeter.trace(config=tiny_config, workload="ci-tiny", height=16, run_id="x")
    assert doc["rows"][0]["flops_per_forward"] == rep.per_forward["flops"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--height", "470"), "divisible by 16x16"),
        (("--frames", "4,zero"), "--frames: 'zero' is not an integer"),
        (("--run-id", "../x"), "unsafe run id"),
    ],
)
def test_sweep_bad_input_is_one_line(tiny_config: Path, tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    code, out, err = run("sweep", "--config", str(tiny_config), "-w", "ci-tiny", "--output-root", str(tmp_path), *args)
    assert code == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_sweep_with_hardware_bounds_seconds(tiny_config: Path, tmp_path: Path) -> None:
    assert COLUMNS[COLUMNS.index("bound_seconds") + 1] == "predicted_seconds"
    code, _, err = run("sweep", "--config", str(tiny_config), "-w", "ci-tiny", "--height", "256,512", "--hardware", "h100",
                       "--run-id", "hw", "--output-root", str(tmp_path))
    assert code == 0, err
    rows = orjson.loads((tmp_path / "hw" / "static_analysis" / "wan" / "sweep.json").read_bytes())["rows"]
    # the bound (the roofline at 100% of the peaks) and the kernel model's prediction, never below it
    assert len(rows) == 2 and all(0 < r["bound_seconds"] <= r["predicted_seconds"] for r in rows)
    # more tokens, more time: 512x256 has twice the tokens of 256x256
    assert rows[1]["bound_seconds"] > rows[0]["bound_seconds"]
    # each row's bound is the single trace's
    rep = fxmeter.trace(config=tiny_config, workload="ci-tiny", height=512, hardware="h100", run_id="x")
    assert rows[1]["bound_seconds"] == pytest.approx(rep.end_to_end["bound_seconds"])
    # the whole generation's (text encoder, transformer, VAE) too, never faster than its transformer
    p = rep.pipeline
    assert p is not None and rows[1]["pipeline_bound_seconds"] == pytest.approx(p.end_to_end.bound_seconds)
    assert rows[1]["pipeline_predicted_seconds"] == pytest.approx(p.end_to_end.predicted_seconds)
    assert all(r["pipeline_predicted_seconds"] >= r["predicted_seconds"] for r in rows)


def test_sweep_with_efficiency_predicts_slower_than_the_bound(tiny_config: Path, tmp_path: Path) -> None:
    code, _, err = run("sweep", "--config", str(tiny_config), "-w", "ci-tiny", "--height", "256", "--hardware", "h100",
                       "--efficiency", "tc=0.5,cuda=0.5,bw=0.5", "--run-id", "eff", "--output-root", str(tmp_path),
                       "--no-plot")
    assert code == 0, err
    (row,) = orjson.loads((tmp_path / "eff" / "static_analysis" / "wan" / "sweep.json").read_bytes())["rows"]
    # every peak at half: every node's max() term doubles, so the predicted time is twice the bound
    assert row["predicted_seconds"] == pytest.approx(2 * row["bound_seconds"])
    csv_row = next(csv.DictReader((tmp_path / "eff" / "static_analysis" / "wan" / "sweep.csv").open()))
    assert float(csv_row["predicted_seconds"]) == pytest.approx(row["predicted_seconds"])


def test_sweep_unknown_hardware_is_one_line(tiny_config: Path, tmp_path: Path) -> None:
    code, _, err = run("sweep", "--config", str(tiny_config), "-w", "ci-tiny", "--hardware", "tpu9",
                       "--output-root", str(tmp_path))
    assert code == 2 and "tpu9" in err and "Traceback" not in err


def test_sweep_on_several_devices_has_a_row_per_workload_and_device(tiny_config: Path, tmp_path: Path) -> None:
    code, out, err = run("sweep", "--config", str(tiny_config), "-w", "ci-tiny", "--height", "256,512",
                         "--hardware", "h100,a100", "--run-id", "two", "--output-root", str(tmp_path), "--no-plot")
    assert code == 0, err
    assert "2 workloads x 2 devices (h100, a100)" in out
    rows = orjson.loads((tmp_path / "two" / "static_analysis" / "wan" / "sweep.json").read_bytes())["rows"]
    assert [(r["device"], r["height"]) for r in rows] == [("h100", 256), ("h100", 512), ("a100", 256), ("a100", 512)]
    for r in rows:  # each row timed on its own device, the same as a one-device trace of that workload
        rep = fxmeter.trace(config=tiny_config, workload="ci-tiny", height=r["height"], hardware=r["device"], run_id="x")
        assert r["predicted_seconds"] == pytest.approx(rep.end_to_end["predicted_seconds"])
        assert r["flops_end_to_end"] == rep.end_to_end["flops"]
    assert rows[2]["predicted_seconds"] > rows[0]["predicted_seconds"]  # an A100 is slower than an H100


@pytest.mark.parametrize("devices,needle", [
    (",", "empty device name"), ("h100,,a100", "empty device name"), ("h100,H100", "named twice"),
    ("h100,tpu9", "unknown hardware 'tpu9'"),
])
def test_sweep_bad_device_lists_are_one_line(tiny_config: Path, tmp_path: Path, devices: str, needle: str) -> None:
    code, out, err = run("sweep", "--config", str(tiny_config), "-w", "ci-tiny", "--hardware", devices,
                         "--output-root", str(tmp_path), "--no-plot")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert not list(tmp_path.rglob("sweep.json"))
