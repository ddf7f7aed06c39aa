"""What changed between two reports (``fxmeter compare A B``).

:func:`compare` returns plain data (:class:`Comparison`); :func:`render_compare`
and the click command render it.  Module deltas use each module's *own* cost
(``self``), folded over repeated blocks, so they add up to the change of the
total and "94% of the growth is in ``blocks.*.attn1``" reads off one row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from fxmeter.base.units import with_unit
from fxmeter.cost.tree import folded_label as folded
from fxmeter.cost.tree import natural_key
from fxmeter.errors import ReportError
from fxmeter.report.document import ReportDocument, as_document
from fxmeter.report.top import METRICS, TIME_METRICS, Group, group_modules

TOTAL_METRICS = ("tensor_core_flops", "cuda_core_flops", "flops", "bytes_read", "bytes_written")
MEMORY_KEYS = ("weight_bytes", "activation_peak_bytes", "total_bytes")
ALWAYS_SHOWN = ("tokens", "steps", "passes_per_step")
WORKLOAD_KEYS = ("tokens", "steps", "passes_per_step", "batch", "frames", "height", "width", "text_len")


@dataclass(frozen=True)
class Delta:
    """One quantity in A and in B.

    ``ratio`` is b / a (None when a == 0); ``share`` is this row's part of the
    total change of the compared metric (module and category rows only).
    """

    key: str
    a: float
    b: float
    delta: float
    ratio: float | None
    share: float | None = None
    count_a: int = 1
    count_b: int = 1


def delta(key: str, a: float, b: float, total_change: float | None = None, count_a: int = 1, count_b: int = 1) -> Delta:
    share = (b - a) / total_change if total_change else None
    return Delta(key, a, b, b - a, b / a if a else None, share, count_a, count_b)


@dataclass(frozen=True)
class Comparison:
    """The data behind ``fxmeter compare``."""

    a: dict[str, Any]
    b: dict[str, Any]
    metric: str
    workload: tuple[Delta, ...]
    totals: tuple[Delta, ...]
    memory: tuple[Delta, ...]
    modules: tuple[Delta, ...]
    modules_omitted: int
    categories: tuple[Delta, ...]
    added: tuple[str, ...]
    removed: tuple[str, ...]
    notes: tuple[str, ...]
    headline: str
    stages: tuple[Delta, ...] = ()  # each pipeline stage over one generation, and the generation (``pipeline``)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _label(d: ReportDocument) -> dict[str, Any]:
    return {"model": d.model.id, "workload": d.workload.name, "run_id": d.run_id, "config_sha256": d.model.config_sha256}


def _order(rows: list[Delta]) -> list[Delta]:
    return sorted(rows, key=lambda r: (-abs(r.delta), natural_key(r.key), r.key))


def compare(a: Any, b: Any, *, metric: str = "tensor_core_flops", k: int = 10, fold: bool = True) -> Comparison:
    """Compare report ``a`` (before) with ``b`` (after).

    Args:
        a, b: :class:`~fxmeter.report.Report` objects, report documents, or paths.
        metric: the metric module and category deltas are computed for
            (tensor_core_flops, cuda_core_flops, flops or bytes).
        k: how many module rows (largest absolute change first; ties by id).
        fold: fold numbered blocks (``blocks.*``) so models of different depth share ids.

    Raises:
        ReportError: an input is not an fxmeter report or has another schema_version.
    """
    if metric not in METRICS:
        raise ReportError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ReportError(f"-k must be a positive integer, got {k!r}")
    da, db = as_document(a), as_document(b)
    timed = metric in TIME_METRICS
    if timed:
        for name, d in (("A", da), ("B", db)):
            if getattr(d.totals.per_forward, metric) is None:
                raise ReportError(f"--metric {metric}: report {name} ({d.model.id}, run {d.run_id}) has no "
                                  f"{metric.replace('_', ' ')} (trace it with --hardware)")
    wa, wb = da.workload.to_dict(), db.workload.to_dict()
    wl = tuple(delta(f"workload.{key}", wa[key], wb[key])
               for key in WORKLOAD_KEYS if key in wa and key in wb
               and (key in ALWAYS_SHOWN or wa[key] != wb[key]))
    totals = tuple(
        delta(f"{section}.{m}", getattr(da.totals, section).metrics.value(m), getattr(db.totals, section).metrics.value(m))
        for section in ("per_forward", "end_to_end")
        for m in TOTAL_METRICS
    )
    seconds = []
    for kind in ("bound_seconds", "predicted_seconds"):
        sa, sb = getattr(da.totals.end_to_end, kind), getattr(db.totals.end_to_end, kind)
        if sa is not None and sb is not None:
            seconds.append(delta(f"end_to_end.{kind}", sa, sb))
    totals += tuple(seconds)
    ma, mb = da.memory, db.memory
    memory = tuple(delta(f"memory.{key}", getattr(ma, key), getattr(mb, key)) for key in MEMORY_KEYS)

    total_change = _per_forward(db, metric) - _per_forward(da, metric)
    ga, gb = group_modules(da, fold), group_modules(db, fold)
    rows = module_deltas(ga, gb, metric, total_change)
    ranked = _order([r for r in rows if r.delta]) + _order([r for r in rows if not r.delta])
    cats = () if timed else tuple(_order([  # categories carry costs, not seconds
        delta(c, da.categories[c].metrics.value(metric) if c in da.categories else 0,
              db.categories[c].metrics.value(metric) if c in db.categories else 0, total_change)
        for c in set(da.categories) | set(db.categories)
    ]))
    added = tuple(sorted(set(gb) - set(ga), key=natural_key))
    removed = tuple(sorted(set(ga) - set(gb), key=natural_key))

    notes = []
    if timed:
        notes.append(f"{metric}: the transformer's, per forward (modules: their own nodes' seconds); "
                     "categories are compared by cost only")
    if da.model.id != db.model.id:
        notes.append(f"different models: {da.model.id} vs {db.model.id}; modules are matched by (folded) id")
    elif da.model.config_sha256 != db.model.config_sha256:
        notes.append("same model id but different config (config_sha256 differs)")
    if da.workload.dtype != db.workload.dtype:
        notes.append(f"different dtype: {da.workload.dtype} vs {db.workload.dtype}")
    for gid in sorted(set(ga) & set(gb), key=natural_key):
        if gid.endswith("*") and ga[gid].count != gb[gid].count:
            notes.append(f"repeated blocks differ in number: {gid} x{ga[gid].count} vs x{gb[gid].count}")

    stages = _stages(da, db, metric)
    if (da.pipeline is None) != (db.pipeline is None):
        notes.append("only one report has a pipeline section (traced before pipelines): stages are not compared")
    return Comparison(
        stages=stages,
        a=_label(da), b=_label(db), metric=metric, workload=wl, totals=totals, memory=memory,
        modules=tuple(ranked[:k]), modules_omitted=max(0, len([r for r in ranked if r.delta]) - k),
        categories=cats, added=added, removed=removed, notes=tuple(notes),
        headline=_headline(metric, da, db, total_change, ranked, cats),
    )


def module_deltas(ga: Mapping[str, Group], gb: Mapping[str, Group], metric: str,
                  total_change: float | None = None) -> list[Delta]:
    """Each (folded) module's own ``metric`` in A and B (``group_modules`` of each report), in natural id
    order; a module in one report only is 0 in the other, one that is 0 in both is left out."""
    rows = []
    for mid in sorted(set(ga) | set(gb), key=natural_key):
        va = _own(ga[mid], metric) if mid in ga else 0
        vb = _own(gb[mid], metric) if mid in gb else 0
        if va or vb:
            rows.append(delta(mid, va, vb, total_change, ga[mid].count if mid in ga else 0,
                              gb[mid].count if mid in gb else 0))
    return rows


def quantity(key: str, metric: str) -> str:
    """What a :class:`Delta` row's numbers are (for :func:`fxmeter.base.units.with_unit`): a module, category or
    stage row is in the compared ``metric``; ``pipeline.peak_bytes (...)`` in bytes; ``totals.x``/``memory.x``... in x."""
    if key.startswith("stage "):
        return metric
    if key.startswith("pipeline.peak_bytes"):
        return "bytes"
    if key.startswith("generation predicted_seconds"):
        return "predicted_seconds"
    return key.rpartition(".")[2]


def _per_forward(d: ReportDocument, metric: str) -> float:
    """The transformer's per-forward ``metric`` (a cost, or seconds when the report has them)."""
    if metric in TIME_METRICS:
        return float(getattr(d.totals.per_forward, metric) or 0.0)
    return d.totals.per_forward.metrics.value(metric)


def _own(g: Group, metric: str) -> float:
    """A (folded) module's own ``metric``: its own nodes' cost or seconds."""
    return g.seconds.get("self_" + metric, 0.0) if metric in TIME_METRICS else g.own.value(metric)


def _stage_value(timed: Any, metric: str) -> float:
    """A stage's (or the generation's) ``metric`` over one generation."""
    if metric in TIME_METRICS:
        return float(getattr(timed, metric) or 0.0)
    return timed.metrics.value(metric)


def _stages(da: ReportDocument, db: ReportDocument, metric: str) -> tuple[Delta, ...]:
    """Each stage's ``metric`` over one generation in A and B (a stage in one report only: 0 in the other),
    the generation's total, its bound and predicted seconds and its peak device memory (under each report's policy)."""
    pa, pb = da.pipeline, db.pipeline
    if pa is None or pb is None:
        return ()
    ea = {s.name: s for s in pa.stages}
    eb = {s.name: s for s in pb.stages}
    change = _stage_value(pb.end_to_end, metric) - _stage_value(pa.end_to_end, metric)
    rows = [delta(f"stage {n} ({metric})", _stage_value(ea[n].end_to_end, metric) if n in ea else 0,
                  _stage_value(eb[n].end_to_end, metric) if n in eb else 0, change,
                  ea[n].runs if n in ea else 0, eb[n].runs if n in eb else 0)
            for n in dict.fromkeys([*ea, *eb])]
    rows.append(delta(f"pipeline.end_to_end.{metric}", _stage_value(pa.end_to_end, metric),
                      _stage_value(pb.end_to_end, metric)))
    for kind in ("bound_seconds", "predicted_seconds"):
        if kind == metric:
            continue
        sa, sb = getattr(pa.end_to_end, kind), getattr(pb.end_to_end, kind)
        if sa is not None and sb is not None:
            rows.append(delta(f"pipeline.end_to_end.{kind}", sa, sb))
    if da.deployment is not None or db.deployment is not None:  # a generation on each report's GPUs
        ga, gb = (d.deployment.predicted_seconds if d.deployment is not None else p.end_to_end.predicted_seconds
                  for d, p in ((da, pa), (db, pb)))
        if ga is not None and gb is not None:
            na, nb = (d.deployment.gpus if d.deployment is not None else 1 for d in (da, db))
            rows.append(delta(f"generation predicted_seconds on the report's GPUs ({na} -> {nb})", ga, gb))
    ra, rb = pa.residency.get("peak_bytes"), pb.residency.get("peak_bytes")
    if ra is not None and rb is not None:
        rows.append(delta(f"pipeline.peak_bytes ({pa.residency.get('policy')} -> {pb.residency.get('policy')})", ra, rb))
    return tuple(rows)


def _ratio(r: float | None) -> str:
    return "n/a" if r is None else f"x{r:.3g}"


def _rel(d: Delta) -> str:
    if d.ratio is None:
        return "new" if d.b else "="
    return f"{100 * (d.ratio - 1):+.2f}%"


def _headline(metric: str, da: ReportDocument, db: ReportDocument, change: float,
              modules: list[Delta], cats: tuple[Delta, ...]) -> str:
    va, vb = _per_forward(da, metric), _per_forward(db, metric)
    ratio = vb / va if va else None
    head = (f"{metric} per forward {with_unit(va, metric)} -> {with_unit(vb, metric)} ({_ratio(ratio)}, "
            f"{'+' if change >= 0 else ''}{with_unit(change, metric)})")
    if not change:
        return head + "; no change"
    parts = []
    m = modules[0] if modules else None
    if m is not None and m.share is not None:
        parts.append(f"{100 * m.share:.1f}% of the change is in {folded(m.key, m.count_b)}")
    c = cats[0] if cats else None
    if c is not None and c.share is not None:
        parts.append(f"{100 * c.share:.1f}% in category {c.key}")
    return head + ("; " + ", ".join(parts) if parts else "")


def render_compare(c: Comparison) -> str:
    """The console text of a :class:`Comparison`."""
    la = f"{c.a['model']} @ {c.a['workload']} ({c.a['run_id']})"
    lb = f"{c.b['model']} @ {c.b['workload']} ({c.b['run_id']})"
    out = [f"A: {la}", f"B: {lb}", c.headline]
    out += [f"note: {n}" for n in c.notes]

    def unit(title: str, key: str) -> str:  # the quantity a row's numbers are in
        return c.metric if title.startswith(("modules", "categories")) else quantity(key, c.metric)

    def table(title: str, rows: tuple[Delta, ...], with_share: bool = False, counts: bool = False) -> None:
        if not rows:
            return
        keys = [(f"{r.key} ({r.count_a} -> {r.count_b} blocks, summed)" if counts and r.count_a != r.count_b
                 else folded(r.key, r.count_b) if counts else r.key) for r in rows]
        cells = [(with_unit(r.a, q), with_unit(r.b, q), ("+" if r.delta > 0 else "") + with_unit(r.delta, q))
                 for r in rows for q in [unit(title, r.key)]]
        w = max(len(x) for x in keys + [title])
        cw = max([len(x) for cell in cells for x in cell] + [5])
        out.append("")
        out.append(f"{title:<{w}}  {'A':>{cw}}  {'B':>{cw}}  {'B - A':>{cw}}  {'change':>9}" + ("  of change" if with_share else ""))
        for key, r, (ca, cb, cd) in zip(keys, rows, cells):
            share = f"  {100 * r.share:8.2f}%" if with_share and r.share is not None else ""
            out.append(f"{key:<{w}}  {ca:>{cw}}  {cb:>{cw}}  {cd:>{cw}}  {_rel(r):>9}{share}")

    table("workload", c.workload)
    table("totals", c.totals)
    table("memory", c.memory)
    table("pipeline stages (one generation)", c.stages, with_share=True)
    table(f"modules: own {c.metric}", c.modules, with_share=True, counts=True)
    if c.modules_omitted:
        out.append(f"... {c.modules_omitted} more changed modules (raise -k)")
    table(f"categories: {c.metric}", tuple(r for r in c.categories if r.a or r.b), with_share=True)
    for title, ids in (("added (in B only)", c.added), ("removed (in A only)", c.removed)):
        if ids:
            out.append("")
            out.append(f"{title}: {len(ids)} module(s)")
            out += [f"  {i}" for i in ids[:20]]
            if len(ids) > 20:
                out.append(f"  ... {len(ids) - 20} more (--json lists all)")
    out.append("")
    out.append("(values rounded to SI units; --json prints the exact integers)")
    return "\n".join(out)
