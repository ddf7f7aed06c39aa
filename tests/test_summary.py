"""summary.md and its charts: rendered from report.json alone, well-formed markdown, PNGs linked."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from fxmeter.cli.main import main
from fxmeter.report import Report
from fxmeter.report.charts import CHART_BLOCKS, CHART_CATEGORIES, block_list
from fxmeter.report.document import validate
from fxmeter.report.files import render_files
from fxmeter.report.summary import render
from tests.reports_for_tests import make_report, wan_reports

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def toy(blocks: int = 3) -> Report:
    """The toy report.json document as the typed report the renderers read."""
    return Report.from_dict(validate(make_report(blocks=blocks)))  # type: ignore[no-any-return]


def check_markdown(md: str) -> None:
    """Tables render only with a blank line before them and the same number of cells per row."""
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("|"):
            assert i == 0 or lines[i - 1] == "", f"no blank line before table at line {i + 1}"
            cells = lines[i].count("|") - lines[i].count("\\|")
            assert re.fullmatch(r"\|(-{3,}:?\|)+|\|(:?-{3,}:?\|)+", lines[i + 1]), lines[i + 1]
            while i < len(lines) and lines[i].startswith("|"):
                assert lines[i].count("|") - lines[i].count("\\|") == cells, lines[i]
                i += 1
        else:
            i += 1
    assert md.count("```") % 2 == 0
    for heading in ("## Workload", "## Totals", "## Memory", "## Top modules", "## Top categories",
                    "## Unmodeled ops", "## Notes"):
        assert f"\n{heading}" in md


def test_toy_summary_files_and_links() -> None:
    files = render_files(toy())
    md = files["summary.md"].decode()
    check_markdown(md)
    assert set(files) == {"summary.md", CHART_CATEGORIES, CHART_BLOCKS}
    for name in (CHART_CATEGORIES, CHART_BLOCKS):
        assert files[name].startswith(PNG_MAGIC)
        assert f"]({name})" in md
    assert "| `t.blocks.*.attn` (3 blocks, summed) | Attention | 300 (300 FLOP) | 60.00% |" in md
    # deterministic: the same report gives the same bytes, charts included
    assert render_files(toy()) == files


def test_no_plots_links_no_charts() -> None:
    files = render_files(toy(), plots=False)
    assert list(files) == ["summary.md"] and ".png" not in files["summary.md"].decode()
    assert render(toy()) == files["summary.md"].decode()


def test_block_list() -> None:
    parent, blocks = block_list(toy(blocks=12))  # type: ignore[misc]
    assert parent == "t.blocks" and [b.id for b in blocks][:3] == ["t.blocks.0", "t.blocks.1", "t.blocks.2"]
    assert blocks[-1].id == "t.blocks.11"


def test_cli_summary_rerenders(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_bytes(orjson.dumps(make_report()))
    r = CliRunner().invoke(main, ["summary", str(tmp_path / "report.json")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "summary.md").read_text().startswith("# fxmeter: toy-3 @ toy")
    assert (tmp_path / CHART_BLOCKS).read_bytes().startswith(PNG_MAGIC)
    out = tmp_path / "elsewhere"
    r = CliRunner().invoke(main, ["summary", str(tmp_path), "--no-plots", "-o", str(out)])
    assert r.exit_code == 0 and sorted(p.name for p in out.iterdir()) == ["summary.md"]
    r = CliRunner().invoke(main, ["summary", str(tmp_path / "missing.json")])
    assert r.exit_code == 2 and r.output.startswith("error: no such report")


@pytest.mark.slow
def test_720p_summary_is_well_formed() -> None:
    md = render(wan_reports("wan2.1-t2v-14b")["720p"], [("alt", CHART_CATEGORIES)])
    check_markdown(md)
    assert "| `transformer.blocks.*.attn1` (40 blocks, summed) | WanAttention | 4,682,022,912,000,000 (4.68 PFLOP) | 71.77% |" in md
    assert "| tokens | 75,600 |" in md and "| latent shape | 1 x 16 x 21 x 90 x 160 |" in md
