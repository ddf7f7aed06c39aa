"""What dominates a report: top modules, categories and ops (``fxmeter top``).

:func:`top` returns plain data (:class:`TopTable`); :func:`render_top` renders it.  Repeated
structures fold: the 40 ``transformer.blocks.N.attn1`` of Wan2.1-14B become one row
``transformer.blocks.*.attn1`` with ``count == 40`` and the sum of their costs.  Metrics are
per forward: FLOPs, bytes, and (for a report with a device) ``bound_seconds`` /
``predicted_seconds``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from fxmeter.base.units import with_unit
from fxmeter.cost.tree import fold_id, foldable_parents, folded_label, natural_key
from fxmeter.errors import ReportError
from fxmeter.estimate.metrics import ZERO, Metrics
from fxmeter.report.document import ModuleRow, NodeRow, ReportDocument, as_document

COST_METRICS = ("tensor_core_flops", "cuda_core_flops", "flops", "bytes")
TIME_METRICS = ("bound_seconds", "predicted_seconds")
METRICS = COST_METRICS + TIME_METRICS
BY = ("module", "category", "op", "stage")
PLURAL = {"module": "modules", "category": "categories", "op": "ops", "stage": "stages"}
BAR_WIDTH = 24


@dataclass(frozen=True)
class Split:
    """A module's own cost in one node category: its nodes' costs and seconds summed, and their aten ops."""

    category: str
    own: Metrics
    seconds: dict[str, float]  # bound_seconds / predicted_seconds of those nodes, where the module has them
    ops: tuple[str, ...]  # ``scaled_dot_product_attention``, in order of appearance


@dataclass(frozen=True)
class Group:
    """Modules that fold to one id: their summed costs (and seconds) and how many there are.

    ``limiter`` / ``self_limiter`` are the members' (``(mixed)`` when they differ); ``split`` is the
    group's own cost by node category, filled by ``group_modules(..., splits=True)`` where the report's
    nodes add up to every member's own cost (empty otherwise).
    """

    id: str
    cls: str
    depth: int
    count: int
    parameters: int
    per_forward: Metrics
    own: Metrics
    seconds: dict[str, float]  # per_forward / own bound and predicted seconds, summed
    parent: str | None = None  # the (folded) parent's id
    weight_bytes: int = 0
    limiter: str | None = None
    self_limiter: str | None = None
    split: tuple[Split, ...] = ()


def _seconds(m: ModuleRow) -> dict[str, float]:
    t = m.times
    if t is None:
        return {}
    out = {"bound_seconds": t.bound_seconds, "self_bound_seconds": t.self_bound_seconds}
    if t.predicted_seconds is not None:
        out["predicted_seconds"] = t.predicted_seconds
        out["self_predicted_seconds"] = t.self_predicted_seconds or 0.0
    return out


_REL_TOL = 1e-6  # how closely a module's nodes must add up to its own seconds to split them by category


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= _REL_TOL * max(abs(a), abs(b), 1e-12)


def own_splits(rep: ReportDocument) -> dict[str, tuple[Split, ...]]:
    """Each module's own cost split by node category, where the report's nodes add up to it.

    A module's nodes are its own (``node.module == id``) or, for a block traced once and
    replicated, those of its representative (the same folded id, ``replicas`` > 1).  Costs must
    add up exactly, seconds within a relative 1e-6; a module whose nodes do not is left out.
    Categories are sorted by tensor-core FLOPs, then bytes (largest first), then name.
    """
    parents = foldable_parents((m.id, m.cls) for m in rep.modules)
    by_module: dict[str, list[NodeRow]] = {}
    for n in rep.nodes:
        by_module.setdefault(n.module, []).append(n)
    replicated: dict[str, str] = {}  # folded id -> the module whose nodes stand for every replica
    for mid, nodes in by_module.items():
        if any(n.replicas > 1 for n in nodes):
            replicated.setdefault(fold_id(mid, parents), mid)
    out: dict[str, tuple[Split, ...]] = {}
    for m in rep.modules:
        secs = {k.removeprefix("self_"): v for k, v in _seconds(m).items() if k.startswith("self_")}
        if m.own == ZERO and not any(secs.values()):
            continue
        for source in (m.id, replicated.get(fold_id(m.id, parents))):
            found = by_module.get(source or "")
            if not found or any(getattr(n, k) is None for n in found for k in secs):
                continue
            cats: dict[str, tuple[Metrics, dict[str, float], list[str]]] = {}
            for n in found:
                own, sec, ops = cats.get(n.category or "other", (ZERO, dict.fromkeys(secs, 0.0), []))
                target = n.target.removeprefix("aten.").removesuffix(".default")
                cats[n.category or "other"] = (own + n.per_forward, {k: v + getattr(n, k) for k, v in sec.items()},
                                               ops if target in ops else [*ops, target])
            total = sum((c[0] for c in cats.values()), ZERO)
            if total == m.own and all(_close(sum(c[1][k] for c in cats.values()), v) for k, v in secs.items()):
                out[m.id] = _sorted_splits(Split(c, own, sec, tuple(ops)) for c, (own, sec, ops) in cats.items())
                break
    return out


def _sorted_splits(splits: Iterable[Split]) -> tuple[Split, ...]:
    return tuple(sorted(splits, key=lambda s: (-s.own.tensor_core_flops, -s.own.bytes, s.category)))


def _merge_splits(a: tuple[Split, ...], b: tuple[Split, ...]) -> tuple[Split, ...]:
    """Two members' splits summed category by category (ops: the union, in order of appearance)."""
    acc = {s.category: s for s in a}
    for s in b:
        t = acc.get(s.category)
        acc[s.category] = s if t is None else Split(
            s.category, t.own + s.own, {k: t.seconds.get(k, 0.0) + v for k, v in s.seconds.items()},
            t.ops + tuple(o for o in s.ops if o not in t.ops))
    return _sorted_splits(acc.values())


def group_modules(rep: ReportDocument, fold: bool = True, *, splits: bool = False) -> dict[str, Group]:
    """Module rows keyed by (folded) id, in natural id order; costs summed over each group.

    ``splits``: also split each group's own cost by node category (:func:`own_splits`, summed
    over the members; left empty where one member's nodes do not add up to its own cost).
    """
    parents = foldable_parents((m.id, m.cls) for m in rep.modules) if fold else set()
    by_id = own_splits(rep) if splits else {}
    acc: dict[str, dict[str, Any]] = {}
    for m in rep.modules:
        gid = fold_id(m.id, parents)
        g = acc.get(gid)
        limiter = m.times.limiter if m.times is not None else None
        self_limiter = m.times.self_limiter if m.times is not None else None
        if g is None:
            g = acc[gid] = {"cls": m.cls, "depth": m.depth, "count": 1, "parameters": m.parameters,
                            "per_forward": m.per_forward, "own": m.own, "seconds": _seconds(m),
                            "parent": fold_id(m.parent, parents) if m.parent else None, "weight_bytes": m.weight_bytes,
                            "limiter": limiter, "self_limiter": self_limiter, "split": (), "split_ok": True}
        else:
            g["count"] += 1
            g["parameters"] += m.parameters
            g["weight_bytes"] += m.weight_bytes
            g["per_forward"] = g["per_forward"] + m.per_forward
            g["own"] = g["own"] + m.own
            for k, v in _seconds(m).items():
                g["seconds"][k] = g["seconds"].get(k, 0.0) + v
            if g["cls"] != m.cls:
                g["cls"] = "(mixed)"
            if g["limiter"] != limiter:
                g["limiter"] = "(mixed)"
            if g["self_limiter"] != self_limiter:
                g["self_limiter"] = "(mixed)"
        if splits and m.id in by_id:
            g["split"] = _merge_splits(g["split"], by_id[m.id])
        elif splits and (m.own != ZERO or any(v for k, v in _seconds(m).items() if k.startswith("self_"))):
            g["split_ok"] = False
    return {
        gid: Group(gid, g["cls"], g["depth"], g["count"], g["parameters"], g["per_forward"], g["own"], g["seconds"],
                   g["parent"], g["weight_bytes"], g["limiter"], g["self_limiter"], g["split"] if g["split_ok"] else ())
        for gid, g in sorted(acc.items(), key=lambda kv: natural_key(kv[0]))
    }


@dataclass(frozen=True)
class Row:
    """One ranked entry: ``key`` (module id, category or op), its value and share of the total."""

    key: str
    value: float
    share: float
    count: int
    label: str


@dataclass(frozen=True)
class TopTable:
    """The ranked rows of ``fxmeter top``; ``total`` is the report's per-forward total of ``metric``."""

    by: str
    metric: str
    basis: str
    total: float
    rows: tuple[Row, ...]
    omitted: int
    model: str
    workload: str
    stage: str | None = None  # ranked inside this pipeline stage (per run)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ranked(items: Iterable[tuple[str, float, int, str]], total: float, k: int) -> tuple[tuple[Row, ...], int]:
    """Nonzero items sorted by value (desc), ties by natural key; the first ``k`` and how many were cut."""
    nz = [it for it in items if it[1] != 0]
    nz.sort(key=lambda it: (-it[1], natural_key(it[0]), it[0]))
    rows = tuple(Row(key, v, v / total if total else 0.0, n, label) for key, v, n, label in nz[:k])
    return rows, max(0, len(nz) - k)


def stage_view(rep: ReportDocument, stage: str) -> tuple[ReportDocument, tuple[Any, ...] | None]:
    """``rep`` seen through one pipeline stage: its modules, categories and per-run totals (and its
    per-op sums, the second value); a denoising stage is the report itself (its top-level modules)."""
    from dataclasses import replace

    from fxmeter.report.document import Totals

    p = rep.pipeline
    names = [s.name for s in p.stages] if p is not None else ["transformer"]
    if p is None or stage not in names:
        raise ReportError(f"unknown stage {stage!r}; this report has: {', '.join(names)}"
                          + ("" if p is not None else " (traced before pipelines: no pipeline section)"))
    st = p.stage(stage)
    if st.denoiser:
        if st.component != rep.modules[0].id.split(".")[0] and st.component != "transformer_2":
            raise ReportError(f"stage {stage!r}: its modules are not in the report")
        return rep, None
    if not st.modules:
        raise ReportError(f"stage {stage!r} has no module rows in this report (a sweep row?)")
    view = replace(rep, modules=st.modules, categories=st.categories, nodes=(),
                   totals=Totals(st.per_run, st.per_run, st.end_to_end, rep.totals.traffic_model))
    return view, st.ops


def top(report: Any, by: str = "module", metric: str = "tensor_core_flops", k: int = 10, *,
        depth: int | None = None, fold: bool = True, stage: str | None = None) -> TopTable:
    """Rank a report's modules, categories or ops by one per-forward metric, or its pipeline stages
    (``by="stage"``) by their cost over a whole generation.

    Args:
        report: a :class:`~fxmeter.report.Report`, a report document (validated against the
            report schema), or a path to report.json, its folder or a run folder.
        by: ``module`` (own cost of each module, or total cost at ``depth``), ``category`` (the
            report's categories) or ``op`` (nodes grouped by aten target, x replicas).
        metric: tensor_core_flops, cuda_core_flops, flops, bytes (read + written), or, for a
            report with a device, bound_seconds / predicted_seconds.
        k: how many rows.
        depth: rank modules at this depth by their total (children included); None ranks
            every module by its own nodes' cost (the leaf-level view).
        fold: fold numbered instances of one class (``blocks.*``) into one row.
        stage: rank inside this pipeline stage (``text_encoder``, ``vae``...: its modules, categories
            and ops, per run); None: the transformer.

    Raises:
        ReportError: a bad argument, or ``report`` is not a valid fxmeter report.
    """
    rep = as_document(report)
    stage_ops = None
    if stage is not None and by != "stage":
        rep, stage_ops = stage_view(rep, stage)
    if by not in BY:
        raise ReportError(f"unknown --by {by!r}; choose one of {', '.join(BY)}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ReportError(f"-k must be a positive integer, got {k!r}")
    if metric not in METRICS:
        raise ReportError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
        raise ReportError(f"--depth must be an integer >= 0, got {depth!r}")
    timed = metric in TIME_METRICS
    if by == "stage":
        return _by_stage(rep, metric, k)
    pf = rep.totals.per_forward
    if timed:
        total = pf.bound_seconds if metric == "bound_seconds" else pf.predicted_seconds
        if total is None:
            raise ReportError(f"--metric {metric}: this report has no "
                              f"{'device' if metric == 'bound_seconds' else 'predicted seconds'} "
                              "(trace it with --hardware" + (" and --efficiency" if metric == "predicted_seconds" else "") + ")")
    else:
        total = pf.metrics.value(metric)
    items: list[tuple[str, float, int, str]] = []
    if by == "module":
        groups = group_modules(rep, fold).values()
        if depth is None:
            basis = "own ops of each module"
            items = [(g.id, g.seconds.get("self_" + metric, 0.0) if timed else g.own.value(metric), g.count, g.cls)
                     for g in groups]
        else:
            basis = f"modules at depth {depth} (children included)"
            items = [(g.id, g.seconds.get(metric, 0.0) if timed else g.per_forward.value(metric), g.count, g.cls)
                     for g in groups if g.depth == depth]
    elif by == "category":
        if timed:
            raise ReportError("--by category ranks costs; rank seconds --by module or --by op")
        basis = "report categories"
        items = [(name, c.metrics.value(metric), 1, "") for name, c in rep.categories.items()]
    elif stage_ops is not None:
        if timed:
            raise ReportError("--by op ranks a stage's costs; rank its seconds --by module")
        basis = "graph nodes by aten target (the stage's ops, summed)"
        items = [(o.op, o.per_run.value(metric), o.count, "") for o in stage_ops]
    else:
        basis = "graph nodes by aten target, x replicas"
        acc: dict[str, list[float]] = {}
        for n in rep.nodes:
            a = acc.setdefault(n.target, [0, 0])
            v = (n.bound_seconds if metric == "bound_seconds" else n.predicted_seconds) if timed else n.per_forward.value(metric)
            a[0] += (v or 0) * n.replicas
            a[1] += n.replicas
        if not acc:
            raise ReportError("this report has no node list (traced with include_nodes=False); use --by module or category")
        items = [(t, v, int(c), "") for t, (v, c) in acc.items()]
    rows, omitted = _ranked(items, total, k)
    return TopTable(by, metric, basis, total, rows, omitted, rep.model.id, rep.workload.name, stage)


def _by_stage(rep: ReportDocument, metric: str, k: int) -> TopTable:
    """The pipeline's stages ranked by ``metric`` over one generation (runs included)."""
    p = rep.pipeline
    if p is None:
        raise ReportError("this report has no pipeline section (traced before pipelines); rank --by module")
    timed = metric in TIME_METRICS
    if timed:
        total = p.end_to_end.bound_seconds if metric == "bound_seconds" else p.end_to_end.predicted_seconds
        if total is None:
            raise ReportError(f"--metric {metric}: this report has no such seconds (trace it with --hardware"
                              + (" and --efficiency" if metric == "predicted_seconds" else "") + ")")
        items = [(s.name, (s.end_to_end.bound_seconds if metric == "bound_seconds" else s.end_to_end.predicted_seconds)
                  or 0.0, s.runs, s.cls) for s in p.stages]
    else:
        total = p.end_to_end.metrics.value(metric)
        items = [(s.name, s.end_to_end.metrics.value(metric), s.runs, s.cls) for s in p.stages]
    rows, omitted = _ranked(items, total, k)
    return TopTable("stage", metric, "pipeline stages over one generation (runs included)", total, rows, omitted,
                    rep.model.id, rep.workload.name)


def bar(share: float, width: int = BAR_WIDTH) -> str:
    """A text bar for a share in [0, 1] (eighth-blocks for the remainder)."""
    share = min(max(share, 0.0), 1.0)
    eighths = round(share * width * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + ("" if rest == 0 else " ▏▎▍▌▋▊▉"[rest])


def _key(t: TopTable, r: Row) -> str:
    if t.by == "stage":
        return f"{r.key} (x{r.count})" if r.count != 1 else r.key
    return folded_label(r.key, r.count) if t.by == "module" else r.key


def _value(v: float, metric: str) -> str:
    return f"{v:,.6f}" if metric in TIME_METRICS else f"{int(v):,}"


def render_top(t: TopTable) -> str:
    """The console table of a :class:`TopTable`."""
    keyw = max([len(_key(t, r)) for r in t.rows] + [len(t.by)])
    units = [with_unit(r.value, t.metric) for r in t.rows]
    unitw = max([len(u) for u in units] + [4])
    scope = "per generation" if t.by == "stage" else f"per run of stage {t.stage}" if t.stage else "per forward"
    lines = [
        f"{t.model} @ {t.workload}: top {PLURAL[t.by]} by {t.metric} {scope} ({t.basis})",
        f"total {_value(t.total, t.metric)} ({with_unit(t.total, t.metric)})",
        "",
        f"{t.by:<{keyw}}  {t.metric:>26}  {'':>{unitw}}  {'share':>7}",
    ]
    for r, u in zip(t.rows, units):
        extra = f"  {r.label}" if t.by in ("module", "stage") else (f"  {r.count} calls" if t.by == "op" else "")
        lines.append(f"{_key(t, r):<{keyw}}  {_value(r.value, t.metric):>26}  {u:>{unitw}}  {100 * r.share:>6.2f}%  "
                     f"{bar(r.share):<{BAR_WIDTH}}{extra}".rstrip())
    if not t.rows:
        lines.append("(nothing nonzero)")
    if t.omitted:
        lines.append(f"... {t.omitted} more nonzero {PLURAL[t.by]} (raise -k)")
    return "\n".join(lines)


__all__ = ["BY", "METRICS", "Group", "Row", "Split", "TopTable", "ZERO", "group_modules", "own_splits",
           "render_top", "top"]
