"""fxmeter train-validate: published trainer rows -> errors; unrepresentable rows with their reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fxmeter.cli.main import main
from fxmeter.validate import load_rows
from fxmeter.validate_training import _document, shipped_path
from fxmeter.validate_training_read import TrainRow, read_training_row


def test_shipped_rows_have_sources() -> None:
    rows, origin = load_rows(shipped_path())
    assert origin.endswith("published-training.json") and rows
    for r in rows:
        assert r["source"]["repo"] and r["source"]["url"].startswith("https://github.com/")
        assert r.get("unrepresentable") or isinstance(read_training_row(r), TrainRow), (r["id"], read_training_row(r))


@pytest.mark.parametrize("row,status,reason", [
    ({"unrepresentable": "advice"}, "not represented", "advice"),
    ({"model": "wan2.1-t2v-1.3b", "height": 480, "width": 832, "frames": 81, "method": "qlora", "gpu": "h100",
      "peak_vram_gb": 20, "vram_kind": "allocated"}, "not represented", "QLoRA"),
    ({"model": "wan2.1-t2v-1.3b", "height": 480, "frames": 81, "method": "lora", "gpu": "h100", "peak_vram_gb": 20},
     "unreadable", "no width"),
    ({"model": "wan2.1-t2v-1.3b", "height": 480, "width": 832, "frames": 81, "method": "lora", "gpu": "h100",
      "peak_vram_gb": 20, "vram_kind": "a guess"}, "unreadable", "vram_kind 'a guess'"),
])
def test_unrepresentable_reasons(row: dict, status: str, reason: str) -> None:
    got = read_training_row(row)
    assert isinstance(got, tuple) and got[0] == status and reason in got[1], got


def test_summary_medians() -> None:
    def r(source: str, **kw: object) -> dict:
        return {"status": "predicted", "source": source, "model": "m", "gpu": "g", "method": "lora", "vram_kind": "x",
                "peak_error": None, "seconds_error": None, "fits_bound_ok": None, **kw}

    doc = _document("f", [r("a", peak_error=0.1), r("a", peak_error=-0.3), r("b", peak_error=0.2),
                          r("b", seconds_error=-0.1, fits_bound_ok=True)])
    pm = doc["summary"]["peak_memory"]
    assert (pm["n"], pm["median_abs_error"], pm["median_signed_error"]) == (3, 0.2, 0.1)
    by = {g["key"]: g for g in doc["breakdowns"]["source"]}
    assert by["a"]["peak_memory"]["median_abs_error"] == pytest.approx(0.2)
    assert by["b"]["seconds_per_step"]["n"] == 1 and doc["summary"]["fits_bounds"] == {"n": 1, "ok": 1}


@pytest.mark.parametrize("content,needle", [
    (None, "not found"),
    ("{not json", "is not JSON"),
    ('{"rows": 3}', "expected a list of rows"),
])
def test_bad_data_file(tmp_path: Path, content: str | None, needle: str) -> None:
    p = tmp_path / "rows.json"
    if content is not None:
        p.write_text(content)
    r = CliRunner().invoke(main, ["train-validate", "--data", str(p)])
    assert r.exit_code == 2 and r.output.startswith("error:") and needle in r.output, r.output


@pytest.mark.slow
def test_a_measured_row_is_predicted(tmp_path: Path) -> None:
    row = {"id": "x", "source": {"repo": "me/x", "url": "https://github.com/me/x"}, "model": "wan2.1-t2v-1.3b",
           "method": "lora", "lora_rank": 8, "height": 256, "width": 256, "frames": 5, "gpu": "h100",
           "peak_vram_gb": 10, "vram_unit": "GB", "vram_kind": "allocated", "seconds_per_step": 1.0}
    p = tmp_path / "rows.json"
    p.write_text(json.dumps({"rows": [row, {"id": "y", "source": {"repo": "me/y"}, "unrepresentable": "advice"}]}))
    r = CliRunner().invoke(main, ["train-validate", "--data", str(p), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output[r.output.index("{"):])
    got, other = res["rows"]
    assert res["kind"] == "training" and got["status"] == "predicted" and got["source"] == "me/x"
    assert got["peak_error"] == pytest.approx(got["predicted_peak_gib"] * 2**30 / 10e9 - 1)
    assert got["seconds_error"] == pytest.approx(got["predicted_s"] / 1.0 - 1)
    assert (other["id"], other["status"], other["reason"]) == ("y", "not represented", "advice")


def test_row_lora_targets_are_read() -> None:
    """A row's lora_targets (musubi-tuner's Qwen-Image module set: the blocks' Linears without img_mod/txt_mod) reach the
    setup; without them the default, every Linear of the repeated blocks."""
    base = {"model": "wan2.1-t2v-1.3b", "method": "lora", "height": 256, "width": 256, "frames": 5, "peak_vram_gb": 9}
    got = read_training_row({**base, "lora_targets": [r"^transformer_blocks\.\d+\.(?!img_mod|txt_mod)"]})
    assert isinstance(got, TrainRow)
    assert got.setup.lora_targets == (r"^transformer_blocks\.\d+\.(?!img_mod|txt_mod)",)
    plain = read_training_row(base)
    assert isinstance(plain, TrainRow) and plain.setup.lora_targets == ("blocks",)
