"""report.html: one self-contained page from report.json, checked as data and in a real headless Chromium.

The browser tests drive Debian's ``chromium`` through Playwright's Python API (never
``playwright install``: no browser download).  They skip, saying why, where either is missing;
``.ci/run`` installs chromium so CI runs them.  ``FXMETER_HTML_SCREENSHOTS=examples/html`` makes
the 14B test save its screenshots there (the README's pictures).
"""

from __future__ import annotations

import copy
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from fxmeter.base import fileio
from fxmeter.base.units import compact, compact_bytes, compact_seconds, human, seconds, si_bytes
from fxmeter.cli.main import main
from fxmeter.cost.tree import fold_id, foldable_parents
from fxmeter.errors import ReportError
from fxmeter.report import Report
from fxmeter.report.document import ReportDocument, as_document
from fxmeter.report.html import render_compare_html, render_html
from fxmeter.report.html_view import compare_model, view_model
from tests.reports_for_tests import make_report, with_changes

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ATTENTION_CORE = "transformer.blocks.*.attn1#self_attention_core"


def typed(data: dict[str, Any]) -> ReportDocument:
    """A report.json document as the typed report (validated against the schema: a bad test document fails here)."""
    return as_document(data)


# -- units -------------------------------------------------------------------------
def test_compact_units_three_significant_digits() -> None:
    """The chart labels' forms (app.js draws with the same rules; the browser test compares one)."""
    assert compact(6_523_436_592_005_120, "FLOP") == "6.52 PFLOP"   # 6.523e15 / 1e15
    assert compact(56_652_569_282_976, "FLOP") == "56.7 TFLOP"      # 56.65e12 / 1e12, one decimal at 10..100
    assert compact(658_008_916_128_809_600, "FLOP") == "658 PFLOP"  # 658.0e15, no decimal at >= 100
    assert compact(999_999, "B") == "1.00 MB"                       # 999.999 k rounds to 1000 k: next prefix
    assert compact(512, "FLOP") == "512 FLOP" and compact(0) == "0"
    assert compact_bytes(28_635_351_168) == "26.7 GiB"              # 28635351168 / 2**30 = 26.669
    assert compact_bytes(1023) == "1,023 B" and compact_bytes(1024) == "1.00 KiB"
    assert compact_bytes(1013 * 2**30) == "0.99 TiB"                # 1013 / 1024: never four digits
    assert compact_seconds(775.0368322940376) == "775 s" and compact_seconds(7.750368322940376) == "7.75 s"
    assert compact_seconds(0.0123) == "12.3 ms" and compact_seconds(2.3e-5) == "23.0 µs" and compact_seconds(0) == "0 s"
    assert compact_seconds(12_345.6) == "12,346 s"


# -- the page's data ---------------------------------------------------------------
def _leaves(mods: list[dict[str, Any]], metric: int) -> dict[str, Any]:
    """Treemap leaves as the page builds them: own-op boxes of inner modules, and leaf modules."""
    children = {m["parent"] for m in mods}
    out: dict[str, Any] = {}
    for m in mods:
        if m["id"] in children:
            for cat, vec, _ops in m["split"]:
                out[f"{m['id']}#{cat}"] = vec[metric]
            if not m["split"] and m["own"][metric]:
                out[f"{m['id']}#own"] = m["own"][metric]
        else:
            out[m["id"]] = m["total"][metric]
    return out


def test_view_model_folds_blocks_and_splits_own_ops() -> None:
    data = make_report(blocks=3)
    vm = view_model(typed(data))
    assert [m["key"] for m in vm["metrics"]] == ["tensor_core_flops", "cuda_core_flops", "bytes"]  # no hardware
    folded = {m["id"]: m for m in vm["modules"]["folded"]}
    assert len(vm["modules"]["full"]) == len(data["modules"])
    blocks = folded["t.blocks.*"]
    assert blocks["count"] == 3 and blocks["name"] == "blocks.* ×3"
    # each block: attn 100 + ff.net.2 50 = 150 tensor-core FLOPs; 3 blocks -> 450
    assert blocks["total"][0] == 450
    # attn's own ops are the sdpa node (category self_attention_core): 3 x 100 tc, 3 x (40 + 20) bytes
    attn = folded["t.blocks.*.attn"]
    assert attn["split"] == [["self_attention_core", [300, 15, 180], "scaled_dot_product_attention"]]
    # every module's total = own + its children's totals, in every metric (folded and not)
    for view in ("folded", "full"):
        mods = vm["modules"][view]
        for m in mods:
            kids = [c["total"] for c in mods if c["parent"] == m["id"]]
            assert [sum(x) for x in zip(m["own"], *kids)] == m["total"], m["id"]
    # the treemap's leaves add up to the model (tensor-core FLOPs 500, bytes 246 + 120)
    for metric, total in ((0, 500), (2, 366)):
        assert sum(_leaves(vm["modules"]["folded"], metric).values()) == total


def test_view_model_folds_with_the_consoles_group_modules(devices_report: Report) -> None:
    """The page's folded modules are ``fxmeter top``'s groups: the same ids, counts and sums."""
    from fxmeter.report.top import group_modules

    groups = group_modules(devices_report)
    folded = view_model(devices_report)["modules"]["folded"]
    assert [m["id"] for m in folded] == list(groups)
    for m in folded:
        g = groups[m["id"]]
        assert (m["count"], m["total"][0], m["own"][2]) == (g.count, g.per_forward.tensor_core_flops, g.own.bytes)


def test_split_left_out_where_nodes_do_not_add_up() -> None:
    data = make_report(blocks=2)
    data["nodes"] = [n for n in data["nodes"] if n["name"] != "sdpa"]  # attn's own cost has no node now
    attn = {m["id"]: m for m in view_model(typed(data))["modules"]["folded"]}["t.blocks.*.attn"]
    assert attn["split"] == [] and attn["category"] is None and attn["own"][0] == 200


def test_render_is_deterministic_and_self_contained() -> None:
    data = make_report(blocks=3)
    page = render_html(data)
    shuffled = dict(reversed(list(copy.deepcopy(data).items())))
    assert render_html(shuffled) == page == render_html(data) == render_html(typed(data))
    text = page.decode()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "default-src 'none'" in text  # the Content-Security-Policy forbids every fetch
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=|@import|url\(\s*['\"]?https?:", text)
    assert text.count("</script>") == 3  # data, ECharts, app: nothing inlined closes a script early
    data_json = re.search(r'id="fxmeter-data">(.*?)</script>', text, re.S)
    assert data_json and orjson.loads(data_json.group(1))["mode"] == "report"


def test_a_document_the_schema_rejects_is_a_report_error() -> None:
    """Never a half-rendered page: the mapping is validated against the report schema first."""
    good = make_report()
    for bad, needle in ((with_changes(good, modules="x"), "$.modules"),
                        (with_changes(good, schema_version=1), "schema_version 1"),
                        (with_changes(good, totals={}), "$.totals"),
                        ({"tool": {"name": "other"}}, "not an fxmeter report")):
        with pytest.raises(ReportError, match=re.escape(needle)):
            render_html(bad)
        with pytest.raises(ReportError, match=re.escape(needle)):
            render_compare_html(good, bad)
    with pytest.raises(ReportError, match="not a report"):
        render_html(["not", "a", "report"])  # type: ignore[arg-type]


def test_names_from_the_report_are_escaped() -> None:
    evil = "<img src=x onerror=alert(1)></script><script>alert(2)</script>"
    data = make_report()
    data["modules"][1]["class"] = evil
    data["run_id"] = evil
    data["notes"] = [evil]
    text = render_html(data).decode()
    assert evil not in text and "<img src=x" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text  # shown as text in the static part


# -- real reports with every section -------------------------------------------------
@pytest.fixture(scope="module")
def devices_report() -> Report:
    """Wan2.1-14B 720p on an H100 and an RTX 4090, priced: the pipeline's stages, one device it fits on, one it does not."""
    import fxmeter

    return fxmeter.trace("wan2.1-t2v-14b", workload="720p", hardware="h100,rtx4090",
                         price_per_hour="h100=2.49,rtx4090=0.4", run_id="html-devices")


@pytest.fixture(scope="module")
def scaled_report() -> Report:
    """Wan2.1-1.3B ci-tiny on 1 and 2 H100s (``fxmeter scale``): GPU counts and a deployment."""
    from fxmeter import api

    return api.scale("wan2.1-t2v-1.3b", gpus="1,2", hardware="h100", workload="ci-tiny", include_nodes=True).report


def _section(page: str, sid: str) -> str:
    start = page.index(f'<section id="{sid}">')
    return page[start:page.index("</section>", start)]


def test_sections_appear_only_with_their_keys(devices_report: Report, scaled_report: Report) -> None:
    plain = render_html(make_report()).decode()
    for sid in ("stages", "devices", "scaling", "deployment", "components"):
        assert f'id="{sid}"' not in plain
    assert "This report has no hardware" in plain
    # a key of a later schema passes through the typed report and is not rendered
    text = render_html(with_changes(devices_report.data, something_new={"not": "rendered"})).decode()
    assert "something_new" not in text and text == render_html(devices_report).decode()
    for sid in ("stages", "devices"):
        assert f'<section id="{sid}">' in text and f'href="#{sid}"' in text
    assert 'id="scaling"' not in text and 'id="deployment"' not in text
    stage_table = _section(text, "stages")
    vae = devices_report.pipeline.stage("vae")  # type: ignore[union-attr]
    # bound and predicted are named apart, in the console's units
    for cell in ("bound s, one generation (roofline at 100%)", "predicted s, one generation (kernel model)",
                 seconds(vae.end_to_end.bound_seconds), seconds(vae.end_to_end.predicted_seconds),
                 human(vae.end_to_end.metrics.flops, "FLOP"), si_bytes(vae.weight_bytes),
                 si_bytes(vae.activation_peak_bytes), "whole generation"):
        assert f"<td>{cell}</td>" in stage_table or cell in stage_table, cell
    # a device the generation does not fit on keeps its seconds but has no price
    h100, rtx = devices_report.devices  # type: ignore[misc]
    devices = _section(text, "devices")
    assert rtx.label in devices and seconds(rtx.predicted_seconds) in devices
    assert "— (does not fit)" in devices and f"${h100.dollars:,.4f}" in devices and f"${rtx.dollars:,.4f}" not in devices
    vm = view_model(devices_report)
    assert [d["name"] for d in vm["devices"]] == [h100.label, rtx.label]
    scaled = render_html(scaled_report).decode()
    for sid in ("scaling", "deployment", "stages"):
        assert f'<section id="{sid}">' in scaled and f'href="#{sid}"' in scaled
    two = scaled_report.scaling[1]  # type: ignore[index]
    assert f"{100 * two.efficiency:.1f}%" in _section(scaled, "scaling") and si_bytes(two.memory_per_gpu) in scaled
    dep = scaled_report.deployment
    assert dep is not None and dep.communication
    comm = dep.communication[0]
    assert comm.kind.replace("_", "-") in _section(scaled, "deployment") and si_bytes(comm.bytes) in scaled
    assert [s["gpus"] for s in view_model(scaled_report)["scaling"]] == [1, 2]


def test_html_and_summary_md_print_the_same_bytes_and_seconds(devices_report: Report) -> None:
    """One set of formatters: the bytes and FLOPs summary.md prints read the same on the page, and so do the
    seconds `fxmeter trace` prints (summary.md's tables give the same seconds to the millisecond, unit-less)."""
    from fxmeter.report.summary import console_lines, pipeline_lines, render

    md, page = render(devices_report), render_html(devices_report).decode()
    static = page.split('id="fxmeter-data"')[0]  # the HTML a reader sees, without the script's data
    mem, tot, pipe = devices_report.memory, devices_report.totals, devices_report.pipeline
    assert pipe is not None
    assert si_bytes(mem.weight_bytes) == "28.64 GB / 26.67 GiB"  # decimal and binary, as the console
    vae = pipe.stage("vae")
    figures = [si_bytes(v) for v in (mem.weight_bytes, mem.activation_peak_bytes, mem.total_bytes, pipe.weight_bytes,
                                     pipe.residency["peak_bytes"], vae.weight_bytes, vae.activation_peak_bytes)]
    figures += [human(tot.per_forward.metrics.tensor_core_flops, "FLOP"), human(pipe.end_to_end.metrics.flops, "FLOP"),
                human(vae.end_to_end.metrics.flops, "FLOP")]
    for f in figures:
        assert f in md, f
        assert f in static, f
    console = "\n".join(console_lines(devices_report) + pipeline_lines(devices_report))
    secs = [tot.end_to_end.predicted_seconds, tot.end_to_end.bound_seconds, tot.per_forward.predicted_seconds,
            pipe.end_to_end.predicted_seconds, pipe.end_to_end.bound_seconds, vae.end_to_end.predicted_seconds]
    for v in secs:
        assert v is not None and seconds(v) in static, v
    for v in secs[:5]:
        assert seconds(v) in console, seconds(v)  # type: ignore[arg-type]
    for v in secs[-3:]:  # the stage table of summary.md: the same seconds, three decimals
        assert f"{v:,.3f}" in md, v


def test_huge_counts_render_in_scientific_notation() -> None:
    """Counts past a float's range (legal in report.json) still render; the headline stays exact in its title."""
    data, k = make_report(), 10**400

    def scaled(d: dict[str, Any]) -> dict[str, Any]:
        return {key: v * k if isinstance(v, int) else v for key, v in d.items()}

    for m in data["modules"]:
        m["per_forward"], m["self"] = scaled(m["per_forward"]), scaled(m["self"])
    for n in data["nodes"]:
        n["per_forward"] = scaled(n["per_forward"])
    data["totals"] = {s: scaled(t) for s, t in data["totals"].items()}
    text = render_html(data).decode()
    assert "5.00e+402 FLOP" in text  # 500 x 10**400 tensor-core FLOPs per forward
    assert f'title="{500 * k:,}"' in text


def test_unmodeled_ops_are_visible() -> None:
    data = with_changes(make_report(), unmodeled_ops=[{"op": "aten.foo.default", "count": 3, "modules": ["t.proj_out"]}])
    text = render_html(data).decode()
    assert text.count("aten.foo.default") >= 2  # the headline's warning and the conventions table
    assert "count as 0" in text
    assert "None: every op in the graph has a rule" in render_html(make_report()).decode()


def test_compare_deltas_add_up_to_the_total_change() -> None:
    a, b = make_report(blocks=3, run_id="a"), make_report(blocks=4, attn_tc=130, run_id="b")
    cm = compare_model(typed(a), typed(b))
    change = sum(r["b"][0] - r["a"][0] for r in cm["deltas"])
    assert change == b["totals"]["per_forward"]["tensor_core_flops"] - a["totals"]["per_forward"]["tensor_core_flops"]
    # 4 x (130 + 50) + 50 - (3 x (100 + 50) + 50) = 770 - 500 = 270
    assert change == 270
    attn = next(r for r in cm["deltas"] if r["id"] == "t.blocks.*.attn")
    assert (attn["a"][0], attn["b"][0], attn["count_a"], attn["count_b"]) == (300, 520, 3, 4)
    page = render_compare_html(a, b)
    assert page == render_compare_html(a, b) == render_compare_html(typed(a), typed(b))
    text = page.decode()
    assert 'id="treemap-a"' in text and 'id="treemap-b"' in text
    assert '<span class="up big">+270 FLOP</span>' in text  # tensor-core FLOPs per forward, 500 -> 770


def test_compare_page_rows_are_fxmeter_compares(devices_report: Report, scaled_report: Report) -> None:
    """The totals table shows `fxmeter compare`'s deltas in its units (bytes as GB / GiB)."""
    from fxmeter.report.compare import compare

    text = render_compare_html(scaled_report, devices_report).decode()
    totals = _section(text, "totals")
    c = compare(scaled_report, devices_report)
    for d in c.memory:
        assert si_bytes(d.a) in totals and si_bytes(d.b) in totals and si_bytes(abs(d.delta)) in totals
    for d in c.totals:
        if d.key.endswith("seconds"):
            assert seconds(d.b) in totals
    for n in c.notes:
        assert html_escape(n) in _section(text, "conventions")


def html_escape(s: str) -> str:
    import html

    return html.escape(s, quote=True)


# -- the command -------------------------------------------------------------------
def _write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(fileio.dumps(data))
    return path


def _one_line_error(r: Any, *needles: str) -> None:
    assert r.exit_code == 2, (r.exit_code, r.output)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.output
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_html_command_writes_beside_the_report(tmp_path: Path) -> None:
    rep = _write(tmp_path / "run" / "report.json", make_report())
    r = CliRunner().invoke(main, ["html", str(rep)])
    assert r.exit_code == 0, r.output
    # the page is made from the report as read back (typed, validated): the same bytes every time
    assert (tmp_path / "run" / "report.html").read_bytes() == render_html(Report.load(rep).data)
    assert f"wrote {tmp_path / 'run' / 'report.html'}" in r.stdout
    r = CliRunner().invoke(main, ["html", str(tmp_path / "run"), "-o", str(tmp_path / "elsewhere" / "x.html")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "elsewhere" / "x.html").is_file()
    (tmp_path / "folder").mkdir()
    r = CliRunner().invoke(main, ["html", str(rep), "-o", str(tmp_path / "folder")])
    assert r.exit_code == 0 and (tmp_path / "folder" / "report.html").is_file()


def test_html_command_bad_input_is_one_error_line(tmp_path: Path) -> None:
    good = make_report()
    other = _write(tmp_path / "v2" / "report.json", with_changes(good, schema_version=1))
    _one_line_error(CliRunner().invoke(main, ["html", str(other)]), "schema_version 1", "reads 2")
    cut = tmp_path / "cut" / "report.json"
    cut.parent.mkdir()
    cut.write_bytes(fileio.dumps(good)[:5000])  # a truncated report
    _one_line_error(CliRunner().invoke(main, ["html", str(cut)]), "not a JSON file")
    shape = _write(tmp_path / "shape" / "report.json", with_changes(good, modules="x"))
    _one_line_error(CliRunner().invoke(main, ["html", str(shape)]), "$.modules")
    _one_line_error(CliRunner().invoke(main, ["html", str(tmp_path / "missing.json")]), "no such report file")
    rep = _write(tmp_path / "ok" / "report.json", good)
    _one_line_error(CliRunner().invoke(main, ["html", str(rep), "-o", ""]), "empty output path")
    (tmp_path / "afile").write_text("x")
    _one_line_error(CliRunner().invoke(main, ["html", str(rep), "-o", str(tmp_path / "afile" / "r.html")]),
                    "cannot write the HTML report")
    res = CliRunner().invoke(main, ["compare", str(rep), str(rep), "--html", ""])
    _one_line_error(res, "empty --html path")
    assert res.stdout == ""  # refused before the comparison is printed
    for d in ("v2", "cut", "shape"):  # nothing written beside a refused report
        assert not (tmp_path / d / "report.html").exists()


# -- the real 14B report, as a person sees it ------------------------------------------
@pytest.fixture(scope="module")
def wan14b() -> dict[str, Any]:
    """The 14B model at 720p and 480p on an H100 (one dynamic trace, then evaluations)."""
    import fxmeter

    return {w: fxmeter.trace("wan2.1-t2v-14b", workload=w, hardware="h100", run_id=f"html-{w}").data
            for w in ("720p", "480p")}


@pytest.mark.slow
def test_14b_page_size_is_mailable(wan14b: dict[str, Any]) -> None:
    page = render_html(wan14b["720p"])
    assert len(page) < 5 * 10**6, len(page)
    assert len(render_compare_html(wan14b["480p"], wan14b["720p"])) < 5 * 10**6


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright; "
                                   "the browser is Debian's chromium, never `playwright install`)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Page:
    """A page opened from a file:// URL, recording console messages, page errors and requests."""

    def __init__(self, browser: Any, path: Path):
        self.messages: list[str] = []
        self.requests: list[str] = []
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.page.on("console", lambda m: self.messages.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.messages.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_function("window.fxmeter && window.fxmeter.ready", timeout=30_000)

    def js(self, expr: str, arg: Any = None) -> Any:
        return self.page.evaluate(expr, arg)

    def click_until(self, locator: Any, expr: str, want: str | None, tries: int = 3) -> None:
        """Click, then wait (up to 2 s) for ``expr`` to become ``want``; click again if the chart had not wired its
        handler yet (a busy machine: the first click can land before ECharts' redraw finishes)."""
        for _ in range(tries):
            locator.click()
            try:
                test = "== null" if want is None else f"=== {orjson.dumps(want).decode()}"  # null or undefined
                self.page.wait_for_function(f"() => ({expr}) {test}", timeout=2000)
                return
            except Exception:  # playwright's TimeoutError: try the click once more
                continue

    def area(self, node_id: str, chart: str = "treemap") -> float:
        box = self.js("([id, c]) => fxmeter.treemap.layout(id, c)", [node_id, chart])
        return float(box["width"] * box["height"]) if box else 0.0

    def label_value(self, name: str, chart: str = "treemap") -> str:
        """The value line drawn right under the box label ``name`` (the label's second line)."""
        texts = self.page.locator(f"#{chart} text")
        boxes = [(t.text_content(), t.bounding_box()) for t in texts.all()]
        (top,) = [b for n, b in boxes if n == name]
        below = [n for n, b in boxes if n != name and b and abs(b["x"] + b["width"] / 2 - top["x"] - top["width"] / 2) < 3
                 and 0 < b["y"] - top["y"] < 2 * top["height"]]
        assert len(below) == 1, below
        return str(below[0])

    def check_clean(self) -> None:
        assert not [m for m in self.messages if m.startswith(("error", "warning", "pageerror"))], self.messages
        assert all(u.startswith("file://") for u in self.requests), self.requests  # offline: no network at all


BOXES_JS = """(c) => {
  const out = [];
  const walk = (ns) => ns.forEach((n) => { if (n.m) out.push([n.id, n.m.count]); if (n.children) walk(n.children); });
  walk(fxmeter.treemap.roots(c));
  return out;
}"""
LEAVES_JS = """(c) => {
  const out = [];
  const walk = (ns) => ns.forEach((n) => n.children ? walk(n.children) : out.push([n.id, n.value]));
  walk(fxmeter.treemap.roots(c));
  return out;
}"""


def _screenshot(page: Any, selector: str, name: str, tmp_path: Path, *, from_top: bool = False) -> None:
    """A PNG of ``selector`` (``from_top``: of the page from its top down to the end of ``selector``)."""
    if from_top:
        page.evaluate("window.scrollTo(0, 0)")  # the sticky navigation bar back in its place
        box = page.locator(selector).bounding_box()
        png = page.screenshot(full_page=True, clip={"x": 0, "y": 0, "width": page.viewport_size["width"],
                                                    "height": box["y"] + box["height"] + 8})
    else:
        png = page.locator(selector).screenshot()
    assert png.startswith(PNG_MAGIC) and len(png) > 10_000, (selector, len(png))
    target = os.environ.get("FXMETER_HTML_SCREENSHOTS")
    if target:  # the README's pictures: 256 colours keep them small
        import io

        from PIL import Image

        Path(target).mkdir(parents=True, exist_ok=True)
        Image.open(io.BytesIO(png)).convert("RGB").quantize(256).save(Path(target) / name, optimize=True)
    else:
        (tmp_path / name).write_bytes(png)


@pytest.mark.slow
def test_browser_14b_720p_page(browser: Any, wan14b: dict[str, Any], tmp_path: Path) -> None:
    data = wan14b["720p"]
    path = tmp_path / "report.html"
    path.write_bytes(render_html(data))
    p = Page(browser, path)
    page = p.page

    # the 40 blocks folded into one box, shown with their count
    blocks = data["model"]["config"]["num_layers"]
    assert page.locator("#treemap text", has_text=f"blocks.* ×{blocks}").count() == 1
    boxes = dict(p.js(BOXES_JS, "treemap"))
    assert boxes["transformer.blocks.*"] == blocks and "transformer.blocks.0" not in boxes

    # the attention core is the largest leaf, and its size is the report's self-attention-core category
    cat = data["categories"]["self_attention_core"]
    leaves = dict(p.js(LEAVES_JS, "treemap"))
    assert max(leaves, key=leaves.get) == ATTENTION_CORE
    assert leaves[ATTENTION_CORE] == cat["tensor_core_flops"]
    assert p.label_value("own · self attention core") == compact(cat["tensor_core_flops"], "FLOP")
    core_tc = p.area(ATTENTION_CORE)

    # clicking a box zooms into it; the path above the chart goes back
    to_q = "transformer.blocks.*.attn2.to_q"
    before = p.area(to_q)
    p.click_until(page.locator("#treemap text", has_text=re.compile(r"^attn2\s")).first, "fxmeter.treemap.viewRoot()",
                  "transformer.blocks.*.attn2")
    assert p.js("fxmeter.treemap.viewRoot()") == "transformer.blocks.*.attn2"
    assert page.inner_text("#treemap-crumbs").endswith("attn2")
    assert p.area(to_q) > 4 * before
    p.click_until(page.locator("#treemap-crumbs button", has_text="transformer"), "fxmeter.treemap.viewRoot()", None)
    assert p.js("fxmeter.treemap.viewRoot()") is None
    assert p.area(to_q) == pytest.approx(before)

    # switching the metric changes the sizes: the attention core moves far fewer bytes than its FLOP share
    page.select_option("#metric", "bytes")
    leaves = dict(p.js(LEAVES_JS, "treemap"))
    assert leaves[ATTENTION_CORE] == cat["bytes_read"] + cat["bytes_written"]
    assert max(leaves, key=leaves.get) != ATTENTION_CORE
    assert p.area(ATTENTION_CORE) < 0.5 * core_tc
    assert p.label_value("own · self attention core") == compact_bytes(leaves[ATTENTION_CORE])
    page.select_option("#metric", "tensor_core_flops")
    assert p.area(ATTENTION_CORE) == pytest.approx(core_tc)

    # the module table filters and sorts
    parents = foldable_parents((m["id"], m["class"]) for m in data["modules"])
    groups = sorted({fold_id(m["id"], parents) for m in data["modules"]})
    assert page.inner_text("#row-count") == f"{len(groups)} of {len(groups)} rows"
    page.fill("#search", "attn1")
    rows = p.js("fxmeter.table.rows()")
    assert sorted(r.split(" (")[0] for r in rows) == [g for g in groups if "attn1" in g]
    assert page.inner_text("#row-count") == f"{len(rows)} of {len(groups)} rows"
    page.fill("#search", "")
    page.locator("#module-table th", has_text="params").click()
    top = max(view_model(typed(data))["modules"]["folded"], key=lambda m: m["parameters"])["id"]
    assert p.js("fxmeter.table.rows()")[0] == top
    page.check("#unfold")
    assert page.inner_text("#row-count") == f"{len(data['modules'])} of {len(data['modules'])} rows"
    page.uncheck("#unfold")

    # the roofline: hovering the attention's point shows module, intensity and bound
    assert p.js("Object.keys(fxmeter.charts).sort()") == ["categories", "roofline", "treemap"]
    page.locator("#roofline-chart").scroll_into_view_if_needed()
    at = p.js("fxmeter.roofline.pixel('transformer.blocks.*.attn1')")
    page.mouse.move(at["x"] - p.js("window.scrollX"), at["y"] - p.js("window.scrollY"))
    attn1 = next(m for m in data["modules"] if m["id"] == "transformer.blocks.0.attn1")
    tip = page.locator("#roofline-chart").inner_text()
    own = attn1["self"]
    ai = (own["tensor_core_flops"] + own["cuda_core_flops"]) / (own["bytes_read"] + own["bytes_written"])
    for needle in ("transformer.blocks.*.attn1", "arithmetic intensity", f"{round(ai):,} FLOP/B",
                   f"bound: {attn1['self_limiter']}"):
        assert needle in tip, (needle, tip)
    p.check_clean()
    _screenshot(page, "#headline", "headline.png", tmp_path, from_top=True)
    _screenshot(page, "#tree", "treemap.png", tmp_path)
    _screenshot(page, "#roofline", "roofline.png", tmp_path)
    page.close()


@pytest.mark.slow
def test_browser_14b_compare_page(browser: Any, wan14b: dict[str, Any], tmp_path: Path) -> None:
    from fxmeter.report.compare import compare

    a, b = wan14b["480p"], wan14b["720p"]
    path = tmp_path / "compare.html"
    path.write_bytes(render_compare_html(a, b))
    p = Page(browser, path)
    page = p.page
    # the module deltas agree with `fxmeter compare` (another implementation of the same sums)
    expected = compare(a, b, k=1)
    first = page.locator("#module-table tbody tr").first
    cells = first.locator("td").all_inner_texts()
    assert cells[0] == expected.modules[0].key
    assert cells[-1] == f"{100 * expected.modules[0].share:.1f}%"
    assert "up" in (first.locator("td").nth(5).get_attribute("class") or "")
    # a click in A's tree zooms both trees to the same module
    p.click_until(page.locator("#treemap-a text", has_text=re.compile(r"^attn2\s")).first,
                  "fxmeter.treemap.viewRoot('treemap-b')", "transformer.blocks.*.attn2")
    assert p.js("fxmeter.treemap.viewRoot('treemap-a')") == p.js("fxmeter.treemap.viewRoot('treemap-b')") \
        == "transformer.blocks.*.attn2"
    p.check_clean()
    _screenshot(page, "#totals", "compare-totals.png", tmp_path, from_top=True)
    page.close()


def plan_document() -> dict[str, Any]:
    """The toy report with a ``plan`` section (``fxmeter plan --write``): two exact rows, one that changes the output."""
    from fxmeter.report.plan import PlanInfo, PlanRow

    rows = (PlanRow(10.0, 0.011, 20.0, 2, "h100", 2**33, {"hardware": "h100", "gpus": 2}, (), "fxmeter trace toy --gpus 2",
                    "fastest"),
            PlanRow(18.0, 0.009, 18.0, 1, "h100", 2**33, {"hardware": "h100"}, (), "fxmeter trace toy", "cheapest"))
    q = (PlanRow(5.0, 0.003, 5.0, 1, "h100", 2**32, {"hardware": "h100"}, ("fp8 matmuls",), "fxmeter trace toy --precision fp8",
                 "fastest; changes the output: fp8 matmuls"),)
    return {**make_report(), "plan": PlanInfo("toy", "w", 12, 10, 10, 0.1, "dollars", {}, rows, q).to_dict()}


@pytest.mark.slow
def test_browser_small_documents(browser: Any, tmp_path: Path, devices_report: Report, scaled_report: Report) -> None:
    """The toy report (no hardware), real ones with stages, devices and GPU counts, and a plan: drawn without a console error."""
    for name, data, charts, blocks in (
        ("plain", make_report(), ["categories", "treemap"], 3),
        ("devices", devices_report, ["categories", "devices", "roofline", "treemap"], 40),
        ("scaled", scaled_report, ["categories", "roofline", "scaling", "treemap"], 30),
        ("plan", plan_document(), ["categories", "plan", "treemap"], 3),
    ):
        path = tmp_path / f"{name}.html"
        path.write_bytes(render_html(data))
        p = Page(browser, path)
        assert p.js("Object.keys(fxmeter.charts).sort()") == charts
        assert p.page.locator("#treemap text", has_text=f"blocks.* ×{blocks}").count() == 1
        p.check_clean()
        p.page.close()
    path = tmp_path / "compare.html"
    path.write_bytes(render_compare_html(make_report(blocks=3), make_report(blocks=4, attn_tc=130)))
    p = Page(browser, path)
    assert p.page.locator("#module-table tbody tr").first.locator("td").first.inner_text() == "t.blocks.*.attn"
    p.check_clean()
    p.page.close()
