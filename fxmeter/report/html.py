"""report.html: one self-contained page that opens offline in any browser.

:func:`render_html` turns a report (the typed :class:`~fxmeter.report.document.ReportDocument`,
or a report.json document, validated against the report schema first) into the bytes of one HTML
file: the headline, the module tree as a zoomable treemap, the pipeline stages, devices and GPU
counts when the report has them, the category breakdown, a roofline chart, a searchable module
table, the counting conventions and the unmodeled ops.  :func:`render_compare_html` puts two
reports side by side with the deltas highlighted.

Everything is inlined: Apache ECharts (vendored in ``assets/``, see its README), the page's script
and style, and the data.  Python does the arithmetic with the console's code (folding and own-cost
splits: :mod:`fxmeter.report.top`; deltas: :mod:`fxmeter.report.compare`; numbers:
:mod:`fxmeter.base.units`), in :mod:`~fxmeter.report.html_view` (the script's data) and
:mod:`~fxmeter.report.html_sections` (the static HTML); the script only draws and filters.  The
output is deterministic: the same report gives the same bytes.  Sections the report lacks are
left out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

from fxmeter.base import fileio
from fxmeter.base.units import count, times, with_unit
from fxmeter.errors import ReportError
from fxmeter.report import html_sections as sec
from fxmeter.report.compare import Comparison, Delta, compare, delta, quantity
from fxmeter.report.document import ReportDocument, as_document
from fxmeter.report.html_sections import esc
from fxmeter.report.html_view import compare_model, title, view_model

__all__ = ["HTML_NAME", "compare_model", "render_compare_html", "render_html", "view_model"]

HTML_NAME = "report.html"
ASSETS = "fxmeter.report"


def document(report: Any) -> ReportDocument:
    """``report`` as a typed report: a :class:`ReportDocument` as is, a mapping shaped as report.json
    validated against the report schema (a document it rejects is a :class:`ReportError`)."""
    if isinstance(report, ReportDocument):
        return report
    if isinstance(report, Mapping):
        return as_document(dict(report))
    raise ReportError(f"not a report: {type(report).__name__} (a Report or a report.json document)")


# -- assembling the file -----------------------------------------------------
def _asset(name: str) -> str:
    return resources.files(ASSETS).joinpath("assets", name).read_text(encoding="utf-8")


def _json_for_script(obj: Any) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</script>``, no ``<!--``)."""
    text = fileio.dumps(obj, indent=False).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_MARKER = re.compile(r"<!--fx:(\w+)-->")


def _page(heading: str, body: str, model: Mapping[str, Any]) -> bytes:
    parts = {"title": esc(heading), "style": _asset("style.css"), "body": body, "data": _json_for_script(model),
             "echarts": _asset("echarts.min.js"), "app": _asset("app.js")}
    return _MARKER.sub(lambda m: parts[m.group(1)], _asset("page.html")).encode()


def render_html(report: Any) -> bytes:
    """The bytes of report.html for one report (a :class:`ReportDocument`, or a mapping shaped as
    report.json: validated first, so a document the schema rejects is a :class:`ReportError`)."""
    rep = document(report)
    vm = view_model(rep)
    sections = [("headline", "Headline"), ("tree", "Module tree")]
    body = [sec.header(rep), "", sec.headline(rep), sec.tree_section(vm)]
    for sid, heading, text in (("stages", "Stages", sec.stages(rep)), ("devices", "Devices", sec.devices(rep)),
                               ("scaling", "GPU counts", sec.scaling(rep)), ("plan", "Plan", sec.plan(rep)),
                               ("deployment", "Deployment", sec.deployment(rep)),
                               ("components", "Components", sec.components(rep))):
        if text:
            sections.append((sid, heading))
            body.append(text)
    body += [sec.category_section(vm), sec.roofline_section(vm),
             sec.module_table_section("Modules (transformer, one forward)",
                                      "Folded rows sum their blocks (×count). Click a column to sort."),
             sec.conventions(rep)]
    sections += [("categories", "Categories"), ("roofline", "Roofline"), ("modules", "Modules"),
                 ("conventions", "Conventions")]
    body[1] = sec.nav(sections)
    return _page(f"fxmeter: {title(rep)}", "".join(body), vm)


# -- comparison ----------------------------------------------------------------
#: How a person reads the metrics of ``fxmeter compare``'s rows.
_LABELS = {
    "tensor_core_flops": "tensor-core FLOPs", "cuda_core_flops": "CUDA-core FLOPs", "flops": "FLOPs",
    "bytes_read": "bytes read", "bytes_written": "bytes written", "bound_seconds": "bound seconds (roofline at 100%)",
    "predicted_seconds": "predicted seconds (kernel model)", "weight_bytes": "weights",
    "activation_peak_bytes": "peak activations", "total_bytes": "weights + activations",
}
_WHERE = {"per_forward": "per forward", "end_to_end": "per generation, transformer alone",
          "pipeline.end_to_end": "whole generation"}


def _delta_label(key: str) -> str:
    """``per_forward.tensor_core_flops`` -> ``tensor-core FLOPs per forward`` (other keys as they are)."""
    where, _, what = key.rpartition(".")
    if where == "workload":
        return f"workload: {what}"
    if where == "memory":
        return _LABELS.get(what, what)
    if where in _WHERE and what in _LABELS:
        return f"{_LABELS[what]} {_WHERE[where]}"
    return key


def _delta_cells(d: Delta, unit: str) -> list[str]:
    """A, B, change and ratio cells (HTML); growth red, shrinkage green, strong when over 5%."""
    cls = "same" if d.delta == 0 else ("up" if d.delta > 0 else "down")
    if d.a and abs(d.delta) / abs(d.a) > 0.05 or (not d.a and d.delta):
        cls += " big"
    sign = "+" if d.delta > 0 else "−" if d.delta < 0 else "±"
    ratio = times(d.ratio) if d.ratio is not None else ("new" if d.b else "")
    return [esc(with_unit(d.a, unit)), esc(with_unit(d.b, unit)),
            f'<span class="{cls}">{sign}{esc(with_unit(abs(d.delta), unit))}</span>', f'<span class="{cls}">{esc(ratio)}</span>']


def _compare_rows(c: Comparison, a: ReportDocument, b: ReportDocument) -> list[list[str]]:
    """``fxmeter compare``'s workload, totals, memory and stage rows, plus per-forward seconds and parameters."""
    per_forward = [d for d in c.totals if d.key.startswith("per_forward.")]
    rows = [*c.workload, *per_forward]
    for kind in ("bound_seconds", "predicted_seconds"):  # per forward (the console compares seconds end to end)
        sa, sb = getattr(a.totals.per_forward, kind), getattr(b.totals.per_forward, kind)
        if sa is not None and sb is not None:
            rows.append(delta(f"per_forward.{kind}", sa, sb))
    rows += [*(d for d in c.totals if d not in per_forward), *c.memory, delta("model.parameters", a.model.parameters, b.model.parameters), *c.stages]
    return [[esc(_delta_label(d.key)), *_delta_cells(d, quantity(d.key, c.metric))] for d in rows]


def _compare_notes(c: Comparison, a: ReportDocument, b: ReportDocument) -> list[str]:
    """``fxmeter compare``'s notes, plus what only the page says: counting conventions, hardware, unmodeled ops."""
    notes = list(c.notes)
    if a.counting != b.counting:
        diff = sorted(k for k in set(a.counting) | set(b.counting) if a.counting.get(k) != b.counting.get(k))
        notes.append("the counting conventions differ in: " + ", ".join(diff))
    ha, hb = a.hardware, b.hardware
    if (ha.device.get("name") if ha else None) != (hb.device.get("name") if hb else None):
        notes.append(f"different hardware: {ha.label if ha else 'none'} vs {hb.label if hb else 'none'}")
    if a.unmodeled_ops or b.unmodeled_ops:
        notes.append(f"unmodeled op kinds (counted as 0): {count(len(a.unmodeled_ops))} in A, "
                     f"{count(len(b.unmodeled_ops))} in B")
    return notes


def render_compare_html(a: Any, b: Any) -> bytes:
    """The bytes of a page comparing report ``a`` (before) with ``b`` (after), deltas highlighted
    (each a :class:`ReportDocument` or a report.json document, validated as by :func:`render_html`)."""
    ra, rb = document(a), document(b)
    cm = compare_model(ra, rb)
    head = ["", "A", "B", "change", "ratio"]
    ta, tb = title(ra), title(rb)
    c = compare(ra, rb)
    notes = _compare_notes(c, ra, rb)
    body = [
        f'<header><h1>{esc(ta)} <span class="vs">vs</span> {esc(tb)}</h1>'
        f'<p class="lead">A = {esc(ta)} (run {esc(ra.run_id)}), B = {esc(tb)} (run {esc(rb.run_id)}). '
        'Changes from A to B: <span class="up big">growth</span>, <span class="down big">shrinkage</span> '
        '(bold: more than 5%).</p></header>',
        sec.nav([("totals", "Totals"), ("tree", "Module trees"), ("categories", "Categories"),
                 ("modules", "Module deltas"), ("conventions", "Notes")]),
        '<section id="totals"><h2>Totals, memory and workload</h2>'
        + sec.table(head, _compare_rows(c, ra, rb), "data num compare", raw=True) + "</section>",
        sec.tree_section(cm["a"], ("treemap-a", "treemap-b"), (f"A: {ta}", f"B: {tb}")).replace(
            "</h2>", '</h2><p class="note">Each tree fills its own pane: compare shares and the numbers on the '
            "boxes, not the areas across panes. A click zooms both trees to the same module.</p>", 1),
        '<section id="categories"><h2>Categories</h2><div class="chart" id="categories-chart"></div></section>',
        sec.module_table_section("Module deltas", "Own cost of each module (repeated blocks folded and summed), "
                                 "so the changes add up to the change of the total; sorted by the size of the change."),
        '<section id="conventions"><h2>Notes</h2><ul>'
        + "".join(f"<li>{esc(n)}</li>" for n in notes or ["Same model, dtype, counting conventions and hardware."])
        + "</ul></section>",
    ]
    return _page(f"fxmeter: {cm['title']}", "".join(body), cm)
