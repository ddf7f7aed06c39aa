"""fxmeter train-validate: published trainer rows -> errors; unrepresentable rows with their reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fxmeter.cli.main import main
from fxmeter.validate_training import _reason, _summary, load_rows


def test_shipped_rows_have_sources() -> None:
    rows, origin = load_rows()
    assert origin.endswith("published-training.json") and rows
    for r in rows:
        assert r["source"]["repo"] and r["source"]["url"].startswith("https://github.com/")
        assert r.get("unrepresentable") or _reason(r) is None, r["id"]


@pytest.mark.parametrize("row,reason", [
    ({"unrepresentable": "advice"}, "advice"),
    ({"model": "wan2.1-t2v-1.3b", "height": 480, "width": 832, "frames": 81, "method": "qlora", "gpu": "h100",
      "peak_vram_gb": 20, "vram_kind": "allocated"}, "method 'qlora'"),
    ({"model": "wan2.1-t2v-1.3b", "height": 480, "frames": 81, "method": "lora", "gpu": "h100"}, "no width"),
    ({"model": "wan2.1-t2v-1.3b", "height": 480, "width": 832, "frames": 81, "method": "lora", "gpu": "h100",
      "peak_vram_gb": 20, "vram_kind": "smi"}, "vram_kind 'smi'"),
])
def test_unrepresentable_reasons(row: dict, reason: str) -> None:
    got = _reason(row)
    assert got is not None and reason in got


def test_summary_medians() -> None:
    rows = [{"source": "a", "peak_error": 0.1}, {"source": "a", "peak_error": -0.3}, {"source": "b", "peak_error": 0.2},
            {"source": "b", "seconds_error": -0.1, "fits_bound_ok": True}]
    s = _summary(rows)
    assert s["all"]["peak_memory"] == {"n": 3, "median_abs_error": 0.2, "median_signed_error": 0.1}
    assert s["per_source"]["a"]["peak_memory"]["median_abs_error"] == pytest.approx(0.2)
    assert s["per_source"]["b"]["seconds_per_step"]["n"] == 1 and s["all"]["fits_bounds"] == {"n": 1, "ok": 1}


@pytest.mark.parametrize("content,needle", [
    (None, "does not exist"),
    ("{not json", "is not JSON"),
    ('{"rows": 3}', "no 'rows' list"),
])
def test_bad_data_file(tmp_path: Path, content: str | None, needle: str) -> None:
    p = tmp_path / "rows.json"
    if content is not None:
        p.write_text(content)
    r = CliRunner().invoke(main, ["train-validate", "--data", str(p)])
    assert r.exit_code == 2 and r.output.startswith("error:") and needle in r.output, r.output


def test_a_measured_row_is_predicted(tmp_path: Path) -> None:
    row = {"id": "x", "source": {"repo": "me/x", "url": "https://github.com/me/x"}, "model": "wan2.1-t2v-1.3b",
           "method": "lora", "lora_rank": 8, "height": 256, "width": 256, "frames": 5, "gpu": "h100",
           "peak_vram_gb": 10, "vram_unit": "GB", "vram_kind": "allocated", "seconds_per_step": 1.0}
    p = tmp_path / "rows.json"
    p.write_text(json.dumps({"rows": [row, {"id": "y", "source": {"repo": "me/y"}, "unrepresentable": "advice"}]}))
    r = CliRunner().invoke(main, ["train-validate", "--data", str(p), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output[r.output.index("{"):])
    (got,) = res["rows"]
    assert got["peak_error"] == pytest.approx(got["predicted_peak_gib"] * 2**30 / 10e9 - 1)
    assert got["seconds_error"] == pytest.approx(got["predicted_s"] / 1.0 - 1)
    assert res["unrepresentable"] == [{"id": "y", "reason": "advice"}]


def test_row_lora_targets_are_read() -> None:
    """A row's lora_targets (musubi-tuner's Qwen-Image module set: the blocks' Linears without img_mod/txt_mod) reach the
    setup; without them the default, every Linear of the repeated blocks."""
    from fxmeter.validate_training import _setup

    row = {"method": "lora", "lora_targets": [r"^transformer_blocks\.\d+\.(?!img_mod|txt_mod)"]}
    assert _setup(row).lora_targets == (r"^transformer_blocks\.\d+\.(?!img_mod|txt_mod)",)
    assert _setup({"method": "lora"}).lora_targets == ("blocks",)
