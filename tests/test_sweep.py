"""``fxmeter sweep``: one trace, a grid of workloads -> CSV, JSON, PNG."""

from __future__ import annotations

import csv
import importlib
import importlib.util
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

import fxmeter
from fxmeter.cli import main
from fxmeter.errors import WorkloadError
from fxmeter.sweep import COLUMNS, int_list


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
    folder = tmp_path / "s" / "static_analysis" / "model"
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


def test_sweep_point_outside_guards_is_traced_statically(tiny_config: Path, tmp_path: Path) -> None:
    code, _, err = run("sweep", "--config", str(tiny_config), "-w", "ci-tiny", "--height", "16,32", "--no-plot",
                       "--run-id", "g", "--output-root", str(tmp_path))
    assert code == 0, err
    doc = orjson.loads((tmp_path / "g" / "static_analysis" / "model" / "sweep.json").read_bytes())
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


@pytest.mark.skipif(
    importlib.util.find_spec("fxmeter.roofline") is not None
    and hasattr(importlib.import_module("fxmeter.roofline"), "predict_seconds"),
    reason="roofline wired",
)
def test_sweep_hardware_without_roofline_is_one_line(tiny_config: Path, tmp_path: Path) -> None:
    code, _, err = run("sweep", "--config", str(tiny_config), "-w", "ci-tiny", "--hardware", "h100",
                       "--output-root", str(tmp_path))
    assert code == 2 and "fxmeter.roofline" in err and "Traceback" not in err
