"""``fxmeter plan --write``: report.json (the fastest frontier row's report with the search as ``plan``),
summary.md's Plan section and report.html's frontier chart; refusals write nothing and clobber nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fxmeter.cli.main import main
from fxmeter.report.document import validate
from fxmeter.report.files import load
from fxmeter.report.plan import PlanInfo, PlanRow, chart_rows, markdown

MODEL = "flux.1-dev"
ARGS = ["plan", MODEL, "--hardware", "l40s", "--max-gpus", "2", "--price-per-hour", "0.86"]


def _run(*extra: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, [*ARGS, *extra])
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict]:
    root = tmp_path_factory.mktemp("plan")
    code, out = _run("--write", "--html", "--output-root", str(root), "--run-id", "p")
    assert code == 0, out
    code, js = _run("--json")
    assert code == 0, js
    return root / "p" / "static_analysis" / "flux_1", out, json.loads(js)


def test_write_lists_the_files_and_the_report_is_the_fastest_row(written: tuple[Path, str, dict]) -> None:
    folder, out, doc = written
    assert sorted(p.name for p in folder.iterdir()) == ["report.html", "report.json", "summary.md"]
    assert [x for x in out.splitlines() if x.startswith("wrote ")] == [
        f"wrote {folder / n}" for n in ("report.json", "summary.md", "report.html")]
    rep = load(folder)
    validate(json.loads((folder / "report.json").read_text()))  # the shipped schema accepts the plan section
    assert rep.plan is not None and rep.plan.frontier and rep.plan.cost_axis == "dollars"
    best = rep.plan.frontier[0]
    dep = rep.deployment
    secs = dep.predicted_seconds if dep is not None else rep.generation["predicted_seconds"]  # type: ignore[index]
    assert secs == pytest.approx(best.seconds, rel=1e-9)  # the report is that row's `fxmeter trace` line
    assert rep.hardware is not None and rep.hardware.device["name"] == best.device
    assert (dep.gpus if dep is not None else 1) == best.gpus
    # the plan section is the document `plan --json` prints (search time aside)
    got = rep.data["plan"]
    for k in ("model", "workload", "priced", "fit", "meeting_constraints", "cost_axis", "notes"):
        assert got[k] == doc[k], k
    assert [r["command"] for r in got["frontier"]] == [r["command"] for r in doc["frontier"]]
    assert [r["seconds"] for r in got["changes_output"]] == [r["seconds"] for r in doc["changes_output"]]
    assert got["constraints"]["max_gpus"] == 2 and got["constraints"]["hardware"] == "l40s"
    for r in got["frontier"]:  # exact bytes beside the GiB figure
        assert isinstance(r["peak_bytes"], int) and r["peak_gib"] == r["peak_bytes"] / 2**30


def test_summary_and_html_show_every_frontier_row(written: tuple[Path, str, dict]) -> None:
    folder, _, doc = written
    md = (folder / "summary.md").read_text()
    assert "## Plan: every deployment, searched exactly" in md
    assert "### Faster or cheaper still, but CHANGING THE OUTPUT" in md
    assert "predicted s/generation | $/generation" in md
    page = (folder / "report.html").read_text()
    assert 'id="plan-chart"' in page and 'href="#plan"' in page
    for r in doc["frontier"] + doc["changes_output"]:
        assert f"`{r['command']}`" in md
        assert r["command"] in page


def test_plan_info_round_trip_and_chart_rows() -> None:
    row = PlanRow(12.5, 0.0123, 25.0, 2, "h100", 3 * 2**30 + 7, {"hardware": "h100", "gpus": 2}, (), "fxmeter trace x",
                  "fastest")
    q = PlanRow(6.0, 0.004, 6.0, 1, "h100", 2**30, {"hardware": "h100"}, ("fp8 matmuls",), "fxmeter trace y", "cheap")
    info = PlanInfo("m", "w", 10, 8, 5, 0.5, "dollars", {"slo": None}, (row,), (q,), ("a note",))
    assert PlanInfo.from_dict(info.to_dict()) == info
    assert PlanInfo.from_dict(None) is None
    vm = chart_rows(info.to_dict())
    assert vm == {"cost_axis": "$ per generation",
                  "exact": [{"seconds": 12.5, "cost": 0.0123, "gpus": 2, "label": "fxmeter trace x", "why": "fastest"}],
                  "quality": [{"seconds": 6.0, "cost": 0.004, "gpus": 1, "label": "fxmeter trace y", "why": "cheap"}]}
    unpriced = PlanInfo("m", "w", 1, 1, 1, 0.1, "gpu_seconds", {}, (PlanRow(3.0, None, 3.0, 1, "l40s", 5, {}, (), "c",
                                                                               "w"),), ())
    text = markdown(unpriced)
    assert "GPU-seconds/generation" in text and "| 3.0 | 3 | 1 |" in text and "CHANGING" not in text
    assert chart_rows(unpriced.to_dict())["exact"][0]["cost"] == 3.0  # type: ignore[index]


def test_existing_run_is_refused_before_the_search_and_kept(written: tuple[Path, str, dict]) -> None:
    folder, _, _ = written
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    code, out = _run("--write", "--output-root", str(folder.parent.parent.parent), "--run-id", "p")
    assert code == 2, out
    lines = [x for x in out.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "--force" in lines[0]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


@pytest.mark.parametrize("flag", [["--html"], ["--run-id", "x"], ["--force"]])
def test_run_folder_options_need_write(flag: list[str]) -> None:
    code, out = _run(*flag)
    assert code == 2 and out.startswith("error:") and "--write" in out, out


@pytest.mark.slow
def test_impossible_plan_writes_nothing(tmp_path: Path) -> None:
    code, out = _run("--write", "--slo", "0", "--output-root", str(tmp_path), "--run-id", "q")
    assert code == 1, out
    assert any(x.startswith("impossible: no setup generates in 0 s") for x in out.splitlines())
    assert not (tmp_path / "q").exists()
