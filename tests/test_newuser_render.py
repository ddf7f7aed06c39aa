"""Issue 19 (a new user's first hour), the rendering part: scale, sweep, compare, report.html, the charts.

One section per item of the issue; each test failed before the fix.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

import fxmeter
from fxmeter.base.units import seconds
from fxmeter.cli.main import main
from fxmeter.report.html import render_html


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.stdout, r.stderr


def _section(page: str, sid: str) -> str:
    start = page.index(f'<section id="{sid}">')
    return page[start:page.index("</section>", start)]


def _data(page: str) -> dict[str, Any]:
    m = re.search(r'id="fxmeter-data"[^>]*>(.*?)</script>', page, re.S)
    assert m is not None
    return dict(json.loads(m.group(1)))


@pytest.fixture(scope="module")
def h100_report() -> Any:
    """The 14B model at 720p on an H100, the whole pipeline (text encoder, transformer, VAE)."""
    return fxmeter.trace("wan2.1-t2v-14b", workload="720p", hardware="h100", run_id="newuser-h100")


@pytest.fixture(scope="module")
def h100_page(h100_report: Any) -> str:
    return render_html(h100_report.data).decode()


# -- item 4: scale marks the GPU counts that do not fit; --offload/--stages/--t5-cpu -------------------------
@pytest.fixture(scope="module")
def rtx4090_scale(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Wan2.1-14B 720p on 1 and 2 RTX 4090s with no offload: no count fits (51.9 GiB peak on 24 GiB cards)."""
    root = tmp_path_factory.mktemp("scale")
    code, out, err = run("scale", "wan2.1-t2v-14b", "--hardware", "rtx4090", "--gpus", "1,2", "--html",
                         "--run-id", "nofit", "--output-root", str(root))
    assert code == 0, err
    return root / "nofit" / "static_analysis" / "wan2_1", out


def test_scale_table_stars_counts_that_do_not_fit(rtx4090_scale: tuple[Path, str]) -> None:
    _, out = rtx4090_scale
    rows = [line for line in out.splitlines() if re.match(r"\s+[12]\s+ulysses", line)]
    assert len(rows) == 2
    for line in rows:  # the seconds are starred and the fits column says why
        assert re.search(r"[\d,]+\.\d\*", line) and line.endswith("NO: does not fit"), line
    assert "* does not fit in the GPU's memory: the seconds assume it did" in out
    assert "no GPU count fits" in out


def test_scale_png_greys_and_labels_counts_that_do_not_fit(rtx4090_scale: tuple[Path, str]) -> None:
    from fxmeter.report.deployment import ScalingRow
    from fxmeter.report.scale import ScaleResult, figure

    folder, _ = rtx4090_scale
    doc = orjson.loads((folder / "scale.json").read_bytes())
    rows = tuple(ScalingRow.from_dict(r) for r in doc["rows"])
    assert not any(r.fits for r in rows)
    res = ScaleResult(doc["model"], doc["workload"], doc["hardware"], rows, (), None)  # type: ignore[arg-type]
    ax = figure(res).axes[0]
    bars = [p for p in ax.patches if p.get_height() > 0][:len(rows)]
    assert [b.get_hatch() for b in bars] == ["//", "//"]  # hatched, not the solid blue of a count that fits
    assert sum(t.get_text() == "does not fit" for t in ax.texts) == 2
    assert "NO GPU count fits" in ax.get_title()
    # one that fits: a plain bar, no label
    fits = ScaleResult("m", "w", "d", (ScalingRow(1, "p", 10.0, 1.0, 1.0, 1, True, 0.0, 0.0, 5.0),), (), None)  # type: ignore[arg-type]
    ax = figure(fits).axes[0]
    assert not ax.texts and ax.patches[0].get_hatch() is None


def test_scale_html_marks_counts_and_carries_the_run_id_and_categories(rtx4090_scale: tuple[Path, str]) -> None:
    folder, _ = rtx4090_scale
    page = (folder / "report.html").read_text()
    assert "run nofit" in page and "run scale" not in page  # item 8: the run's own id
    sec = _section(page, "scaling")
    assert "NO: does not fit" in sec and "No GPU count fits" in sec
    d = _data(page)
    assert [s["fits"] for s in d["scaling"]] == [False, False]
    # item 8: the treemap is coloured by category (node rows kept for the page)
    assert sum(1 for m in d["modules"]["folded"] if m["split"]) > 10


@pytest.mark.slow
def test_scale_takes_offload_stages_and_t5_cpu(tmp_path: Path) -> None:
    """The README's "fits on 24 GB cards with --gpus 2 --offload sequential", scaled."""
    code, out, err = run("scale", "wan2.1-t2v-14b", "--hardware", "rtx4090", "--gpus", "1,2", "--offload",
                         "sequential", "--no-plot", "--run-id", "seq", "--output-root", str(tmp_path))
    assert code == 0, err
    rows = [line for line in out.splitlines() if re.match(r"\s+[12]\s+ulysses", line)]
    assert len(rows) == 2 and all(line.endswith("yes") for line in rows), out
    doc = orjson.loads((tmp_path / "seq" / "static_analysis" / "wan2_1" / "scale.json").read_bytes())
    assert all(r["fits"] and r["memory_per_gpu"] < 24 * 2**30 for r in doc["rows"])
    code, out, err = run("scale", "wan2.1-t2v-14b", "--hardware", "h100", "--gpus", "1,2", "--stages", "transformer",
                         "--no-plot", "--run-id", "tr", "--output-root", str(tmp_path))
    assert code == 0, err
    code, out, err = run("scale", "wan2.1-t2v-14b", "--hardware", "h100", "--gpus", "1,2", "--offload", "wan",
                         "--t5-cpu", "--no-plot", "--run-id", "t5", "--output-root", str(tmp_path))
    assert code == 0, err
    code, _, err = run("scale", "wan2.1-t2v-14b", "--hardware", "h100", "--offload", "bogus", "--run-id", "bad",
                       "--output-root", str(tmp_path))
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1


# -- item 5: report.html never gives transformer-only and whole-generation figures one label ---------------------
def test_html_headline_leads_with_the_whole_generation(h100_report: Any, h100_page: str) -> None:
    head = _section(h100_page, "headline")
    pipe = h100_report.data["pipeline"]["end_to_end"]
    tr = h100_report.data["totals"]["end_to_end"]
    whole_at = head.index("Whole generation (text_encoder ×2, transformer ×100, vae ×1)")
    alone_at = head.index("Transformer alone, one generation")
    assert whole_at < alone_at  # the headline is the whole generation
    whole, alone = head[whole_at:alone_at], head[alone_at:]
    assert "predicted, whole generation" in whole and seconds(pipe["predicted_seconds"]) in whole
    assert "predicted, transformer alone" in alone and seconds(tr["predicted_seconds"]) in alone
    assert seconds(pipe["predicted_seconds"]) != seconds(tr["predicted_seconds"])
    assert "predicted per generation" not in h100_page and "per generation (end to end)" not in h100_page.lower()
    # the sections that describe the transformer only say so
    for sid in ("tree", "categories", "roofline", "modules"):
        assert "(transformer, one forward)" in _section(h100_page, sid), sid


# -- item 8: stage seconds, the deployment table, human headers, one tick format ------------------------------
def test_html_stage_seconds_are_filled(h100_report: Any, h100_page: str) -> None:
    sec = _section(h100_page, "stages")
    for st in h100_report.data["pipeline"]["stages"]:
        ee, pr = st["end_to_end"], st["per_run"]
        row = sec[sec.index(f"<td>{st['name']}</td>"):]
        row = row[:row.index("</tr>")]
        for v in (pr["predicted_seconds"], ee["predicted_seconds"], ee["bound_seconds"]):
            assert f"<td>{seconds(v)}</td>" in row, (st["name"], v)


def test_html_deployment_is_a_table_with_units_and_no_json_keys() -> None:
    rep = fxmeter.trace("wan2.1-t2v-14b", workload="720p", hardware="h100", gpus=2, run_id="newuser-gpus")
    page = render_html(rep.data).decode()
    sec = _section(page, "deployment")
    assert "<dt>" not in sec and "bandwidth:" not in sec and "e+11" not in sec
    assert "<td>link bandwidth per direction</td><td>450.00 GB/s</td>" in sec
    assert "<td>speed-up</td>" in sec and "GiB" in sec
    heads = re.findall(r"<th>(.*?)</th>", page)
    assert heads and not [h for h in heads if "_" in h], [h for h in heads if "_" in h]


def test_html_roofline_ticks_have_one_format(h100_page: str) -> None:
    rf = _data(h100_page)["roofline"]
    assert rf["ticks"]["x"]["3"] == "1 k" and rf["ticks"]["x"]["0"] == "1" and rf["ticks"]["x"]["-1"] == "0.1"
    assert rf["ticks"]["y"]["15"] == "1 PFLOP/s" and rf["ticks"]["y"]["14"] == "100 TFLOP/s"
    for labels, unit in ((rf["ticks"]["x"], ""), (rf["ticks"]["y"], " FLOP/s")):
        for e, text in labels.items():
            num = text.removesuffix(unit.strip()).strip()
            assert re.fullmatch(r"(1|10|100)( [kMGTPEZY])?|0\.0*1", num), (e, text)
    from fxmeter.base.units import log_tick

    assert log_tick(6, "B/s") == "1 MB/s"
    from importlib import resources

    app = resources.files("fxmeter.report").joinpath("assets", "app.js").read_text()
    assert "logTick(rf.ticks.x" in app and "logTick(rf.ticks.y" in app


# -- item 9: the roofline chart at the predicted time; sweep.png's seconds -----------------------------------
def test_summary_roofline_plots_achieved_flops_at_the_predicted_time(h100_report: Any) -> None:
    from fxmeter.report.charts import ALTS, CHART_ROOFLINE, roofline_figure
    from fxmeter.report.document import as_document

    rep = as_document(h100_report)
    ax = roofline_figure(rep).axes[0]
    assert "predicted" in ax.get_ylabel() and "predicted" in ALTS[CHART_ROOFLINE]
    roof = ax.lines[0].get_xydata()  # the tensor-core roof: min(peak, bandwidth x intensity)
    peak = max(y for _, y in roof)
    bw = roof[0][1] / roof[0][0]
    below = 0
    for coll in ax.collections:
        for x, y in coll.get_offsets():
            ceiling = min(peak, bw * x)
            assert y <= ceiling * (1 + 1e-9)
            below += y < 0.9 * ceiling
    assert below >= 3  # at the bound time every point would sit on the roof


def test_sweep_png_has_a_seconds_panel_with_a_device(tiny_config: Path) -> None:
    from fxmeter.report.sweep import figure

    res = fxmeter.api.sweep(None, config=tiny_config, workload="ci-tiny", grid={"height": [32, 64]}, hardware="h100")
    fig = figure(res)
    assert len(fig.axes) == 2 and "seconds" in fig.axes[1].get_ylabel()
    labels = [line.get_label() for line in fig.axes[1].lines]
    assert any(lab.endswith("predicted") for lab in labels) and any(lab.endswith("bound") for lab in labels)
    plain = fxmeter.api.sweep(None, config=tiny_config, workload="ci-tiny", grid={"height": [32, 64]})
    assert len(figure(plain).axes) == 1


# -- item 10: sweep's table, fits, options and speed; compare's seconds ------------------------------------------
def test_sweep_prints_a_table_with_fits_and_writes_the_column(tiny_config: Path, tmp_path: Path) -> None:
    code, out, err = run("sweep", "--config", str(tiny_config), "-w", "ci-tiny", "--height", "32,64",
                         "--hardware", "h100,rtx4090", "--price-per-hour", "h100=2.49,rtx4090=0.4", "--no-plot",
                         "--run-id", "t", "--output-root", str(tmp_path))
    assert code == 0, err
    lines = out.splitlines()
    head = next(line for line in lines if "fits" in line and "device" in line)
    assert "$/gen" in head and "predicted s" in head
    rows = [line for line in lines if line.strip().startswith("NVIDIA")]
    assert len(rows) == 4 and all(" yes " in line for line in rows)
    assert any("NVIDIA GeForce RTX 4090 24GB" in line for line in rows)  # item 15: the full name
    folder = tmp_path / "t" / "static_analysis" / "wan"
    csv_rows = list(csv.DictReader((folder / "sweep.csv").open()))
    assert [r["fits"] for r in csv_rows] == ["True"] * 4
    doc = orjson.loads((folder / "sweep.json").read_bytes())
    assert "fits" in doc["columns"] and all(r["fits"] is True for r in doc["rows"])
    assert all(r["dollars_per_generation"] > 0 for r in doc["rows"])


def test_sweep_no_fit_has_no_price(tmp_path: Path) -> None:
    code, out, err = run("sweep", "wan2.1-t2v-14b", "--height", "720", "--hardware", "rtx4090", "--price-per-hour",
                         "0.4", "--no-plot", "--run-id", "n", "--output-root", str(tmp_path))
    assert code == 0, err
    row = next(line for line in out.splitlines() if "RTX 4090" in line)
    assert " NO " in row and row.rstrip().endswith("-")
    assert "does not fit in the device's memory" in out and "no workload of this sweep fits" in out
    doc = orjson.loads((tmp_path / "n" / "static_analysis" / "wan2_1" / "sweep.json").read_bytes())
    assert doc["rows"][0]["fits"] is False and doc["rows"][0]["dollars_per_generation"] is None


def test_sweep_takes_trace_device_and_parallel_options(tiny_config: Path, tmp_path: Path) -> None:
    code, out, err = run("sweep", "--config", str(tiny_config), "-w", "ci-tiny", "--height", "32,64", "--hardware",
                         "h100", "--attention", "fa3", "--attention-precision", "fp8", "--precision", "fp8",
                         "--compile", "--gpus", "2", "--no-plot", "--run-id", "o", "--output-root", str(tmp_path))
    assert code == 0, err
    doc = orjson.loads((tmp_path / "o" / "static_analysis" / "wan" / "sweep.json").read_bytes())
    assert [r["gpus"] for r in doc["rows"]] == [2, 2] and all(r["gpu_predicted_seconds"] > 0 for r in doc["rows"])
    assert "GPUs" in out
    # each option changes the rows as trace's does
    ref = fxmeter.trace(config=tiny_config, workload="ci-tiny", height=64, hardware="h100", attention="fa3",
                        attention_precision="fp8", precision="fp8", compile=True, gpus=2, run_id="x")
    assert doc["rows"][1]["gpu_predicted_seconds"] == pytest.approx(ref["deployment"]["predicted_seconds"], rel=1e-12)
    code, _, err = run("sweep", "--config", str(tiny_config), "-w", "ci-tiny", "--attention", "fa3", "--run-id", "b",
                       "--output-root", str(tmp_path))
    assert code == 2 and "needs --hardware" in err and len(err.strip().splitlines()) == 1


def test_sweep_evaluates_each_distinct_stage_once(tiny_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hot path of ``sweep --hardware`` (42 s for 100 points): a stage whose symbol values repeat (every
    step count) is evaluated and timed once per device, not once per point."""
    import fxmeter.estimate.generation as gen
    import fxmeter.estimate.predict as pred

    calls = {"evaluate": 0, "predict": 0}
    real_eval, real_pred = gen.evaluate, pred.predict_stage

    def counting_eval(*a: Any, **k: Any) -> Any:
        calls["evaluate"] += 1
        return real_eval(*a, **k)

    def counting_pred(*a: Any, **k: Any) -> Any:
        calls["predict"] += 1
        return real_pred(*a, **k)

    monkeypatch.setattr(gen, "evaluate", counting_eval)
    monkeypatch.setattr(pred, "predict_stage", counting_pred)
    res = fxmeter.api.sweep(None, config=tiny_config, workload="ci-tiny", grid={"steps": [1, 2, 3, 4]},
                            hardware="h100,a100")
    assert len(res.rows) == 8
    assert calls["evaluate"] == 1  # one stage, one set of symbol values
    assert calls["predict"] == 2  # one per device
    # and the rows are those of separate traces
    for r in res.rows[:4]:
        rep = fxmeter.trace(config=tiny_config, workload="ci-tiny", steps=r["steps"], hardware="h100", run_id="x")
        assert r["predicted_seconds"] == rep.end_to_end["predicted_seconds"]


def test_compare_accepts_seconds_metrics(tiny_config: Path, tmp_path: Path) -> None:
    for rid, h in (("a", "32"), ("b", "64")):
        code, _, err = run("trace", "--config", str(tiny_config), "-w", "ci-tiny", "--height", h, "--hardware", "h100",
                           "--run-id", rid, "--output-root", str(tmp_path))
        assert code == 0, err
    for metric in ("predicted_seconds", "bound_seconds"):
        code, out, err = run("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--metric", metric)
        assert code == 0, err
        assert f"{metric} per forward" in out and f"modules: own {metric}" in out
        assert re.search(r"\d (s|ms|us) ", out)  # seconds, in time units
    code, _, err = run("trace", "--config", str(tiny_config), "-w", "ci-tiny", "--run-id", "c", "--output-root",
                       str(tmp_path))
    assert code == 0, err
    code, _, err = run("compare", str(tmp_path / "a"), str(tmp_path / "c"), "--metric", "predicted_seconds")
    assert code == 2 and err.startswith("error:") and "report B" in err and len(err.strip().splitlines()) == 1


# -- item 15: device labels are never cut ----------------------------------------------------------------------
def test_device_table_shows_full_device_names(tiny_config: Path) -> None:
    from fxmeter.report.document import as_document
    from fxmeter.report.summary import devices_table

    rep = fxmeter.trace(config=tiny_config, workload="ci-tiny", hardware="h100,rtx4090", run_id="x")
    head, *rows = devices_table(as_document(rep))
    label = "NVIDIA GeForce RTX 4090 24GB"  # 28 characters: cut at 24 before
    row = next(r for r in rows if label in r)
    assert row.index(label) + len(label) <= head.index("predicted s")
