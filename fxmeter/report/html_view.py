"""The data report.html's script draws from, built from the typed report.

:func:`view_model` (one report) and :func:`compare_model` (two) return plain JSON-ready dicts:
module lists (repeated blocks folded and not), categories, the metrics the treemap can be sized
by, colours, roofline peaks, devices, GPU counts and the plan's frontier.  The arithmetic is the
console's: folding and each module's own cost by node category come from
:func:`fxmeter.report.top.group_modules`, module deltas from
:func:`fxmeter.report.compare.module_deltas`, tick labels from :mod:`fxmeter.base.units`.  The
keys here are what ``assets/app.js`` reads: rename one on both sides.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fxmeter.base.units import log_tick
from fxmeter.estimate.metrics import Metrics
from fxmeter.report.compare import module_deltas
from fxmeter.report.document import ReportDocument
from fxmeter.report.plan import chart_rows
from fxmeter.report.top import Group, Split, group_modules

#: Metrics the treemap can be sized by, in the order of every vector in the page's data: (key, label, short, unit).
INT_METRICS = (
    ("tensor_core_flops", "tensor-core FLOPs", "tensor-core FLOPs", "FLOP"),
    ("cuda_core_flops", "CUDA-core FLOPs", "CUDA-core FLOPs", "FLOP"),
    ("bytes", "bytes moved (read + written)", "bytes moved", "B"),
)
#: Seconds a module may carry: (key, label, short label); ``self_<key>`` is a module's own.
SECONDS_METRICS = (
    ("predicted_seconds", "predicted seconds (kernel model)", "predicted s"),
    ("bound_seconds", "bound seconds (roofline at 100% of peaks)", "bound s"),
)
CATEGORY_COLORS = {
    "self_attention_core": "#e15759",
    "self_attention_proj": "#f28e2b",
    "cross_attention_core": "#b07aa1",
    "cross_attention_proj": "#ff9da7",
    "ffn": "#4e79a7",
    "norms": "#76b7b2",
    "rope": "#edc948",
    "modulation": "#59a14f",
    "embeddings": "#9c755f",
    "conv": "#bab0ac",
    "head": "#8cd17d",
    "other": "#86bcb6",
}
_MORE_COLORS = ("#499894", "#d37295", "#fabfd2", "#79706e", "#d4a6c8", "#a0cbe8", "#ffbe7d", "#f1ce63")


def title(rep: ReportDocument) -> str:
    return f"{rep.model.id} @ {rep.workload.name}"


def metric_list(rep: ReportDocument) -> list[dict[str, Any]]:
    """The metrics this report can size the treemap by (seconds only when every module has them)."""
    out = [{"key": k, "label": label, "short": short, "unit": unit} for k, label, short, unit in INT_METRICS]
    for key, label, short in SECONDS_METRICS:
        if rep.modules and all(m.times is not None and getattr(m.times, key) is not None for m in rep.modules):
            out.append({"key": key, "label": label, "short": short, "unit": "s"})
    return out


def _seconds_keys(metrics: Sequence[dict[str, Any]]) -> list[str]:
    return [m["key"] for m in metrics if m["unit"] == "s"]


def _vector(cost: Metrics, seconds: Sequence[float | None]) -> list[Any]:
    return [cost.tensor_core_flops, cost.cuda_core_flops, cost.bytes, *seconds]


def _short_name(gid: str, count: int) -> str:
    """The box label: the last part of the id (``attn1``), with its parent's for a number (``to_out.0``, ``blocks.* ×40``)."""
    parent, _, last = gid.rpartition(".")
    if last == "*":
        return f"{parent.rpartition('.')[2]}.* ×{count}"
    if last.isdigit() and parent:
        return f"{parent.rpartition('.')[2]}.{last}"
    return last


def _module(g: Group, sec: Sequence[str]) -> dict[str, Any]:
    """One (folded) module as the script reads it: ``total`` and ``own`` vectors in the order of the metrics."""
    own = _vector(g.own, [g.seconds.get("self_" + k, 0.0) for k in sec])
    total = _vector(g.per_forward, [g.seconds.get(k, 0.0) for k in sec])

    def vec(s: Split) -> list[Any]:
        return _vector(s.own, [s.seconds.get(k, 0.0) for k in sec])

    flops, nbytes = g.own.flops, g.own.bytes
    tflops, tbytes = g.per_forward.flops, g.per_forward.bytes
    return {
        "id": g.id, "parent": g.parent, "class": g.cls, "depth": g.depth, "count": g.count, "parameters": g.parameters,
        "weight_bytes": g.weight_bytes, "total": total, "own": own, "bound": g.limiter, "own_bound": g.self_limiter,
        "name": _short_name(g.id, g.count),
        "split": [[s.category, vec(s), " ".join(s.ops)] for s in g.split if any(vec(s))],
        "category": g.split[0].category if g.split else None,
        "intensity": tflops / tbytes if tbytes else None,
        "own_intensity": flops / nbytes if nbytes else None,
    }


def _modules(rep: ReportDocument, metrics: Sequence[dict[str, Any]], fold: bool) -> list[dict[str, Any]]:
    sec = _seconds_keys(metrics)
    return [_module(g, sec) for g in group_modules(rep, fold, splits=True).values()]


def _categories(rep: ReportDocument, metrics: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The report's categories with their cost and, where every node has them, their nodes' seconds (x replicas)."""
    sec = _seconds_keys(metrics)
    have = bool(rep.nodes) and all(getattr(n, k) is not None for n in rep.nodes for k in sec)
    node_secs: dict[str, list[float]] = {}
    if have:
        for n in rep.nodes:
            acc = node_secs.get(n.category or "other", [0.0] * len(sec))
            node_secs[n.category or "other"] = [a + getattr(n, k) * max(n.replicas, 1) for a, k in zip(acc, sec)]
    out = []
    for name, c in rep.categories.items():
        extra: list[Any] = node_secs.get(name, [0.0] * len(sec)) if have else [None] * len(sec)
        out.append({"name": name, "values": _vector(c.metrics, extra), "tensor_core_share": c.tensor_core_share,
                    "flops_share": c.flops_share})
    return sorted(out, key=lambda c: (-c["values"][0], -c["values"][1], c["name"]))


def colors(names: Iterable[str]) -> dict[str, str]:
    out, extra = {}, 0
    for n in sorted(set(names)):
        if n in CATEGORY_COLORS:
            out[n] = CATEGORY_COLORS[n]
        else:
            out[n] = _MORE_COLORS[extra % len(_MORE_COLORS)]
            extra += 1
    return out


def _roofline(rep: ReportDocument) -> dict[str, Any] | None:
    hw = rep.hardware
    if hw is None:
        return None
    peaks = hw.peaks_used
    out = {"label": hw.label, "precision": hw.precision, "tensor_core": peaks.get("tensor_core_flops_per_s"),
           "cuda_core": peaks.get("cuda_core_flops_per_s"), "bandwidth": peaks.get("bytes_per_s"),
           "efficiency": dict(hw.efficiency),
           "ticks": {"x": {str(e): log_tick(e) for e in range(-6, 13)},
                     "y": {str(e): log_tick(e, "FLOP/s") for e in range(-3, 25)}}}
    return out if out["tensor_core"] and out["bandwidth"] else None


def view_model(rep: ReportDocument) -> dict[str, Any]:
    """What the page's script draws from: module lists (folded and not), categories, metrics, colours.

    Each module's ``total`` and ``own`` are vectors in the order of ``metrics``;
    ``split`` is its own cost by node category ([category, vector, ops]) where
    the report's nodes add up to it.  A folded group (``transformer.blocks.*``)
    carries the sum over its ``count`` members.
    """
    metrics = metric_list(rep)
    full = _modules(rep, metrics, fold=False)
    folded = _modules(rep, metrics, fold=True)
    cats = _categories(rep, metrics)
    names = {c["name"] for c in cats} | {s[0] for m in full for s in m["split"]}
    return {
        "mode": "report",
        "title": title(rep),
        "metrics": metrics,
        "modules": {"folded": folded, "full": full if len(full) != len(folded) else None},
        "categories": cats,
        "colors": colors(names),
        "roofline": _roofline(rep),
        "devices": [{"name": d.label or d.name, "bound": d.bound_seconds, "predicted": d.predicted_seconds,
                     "fits": d.fits} for d in rep.devices or ()],
        "scaling": [{"gpus": s.gpus, "seconds": s.seconds, "speedup": s.speedup, "efficiency": s.efficiency,
                     "fits": s.fits} for s in rep.scaling or ()],
        "plan": chart_rows(rep.plan.to_dict()) if rep.plan is not None else None,
    }


def compare_model(a: ReportDocument, b: ReportDocument) -> dict[str, Any]:
    """The comparison page's data: each report's view, plus module and category deltas for every metric.

    Module deltas are ``fxmeter compare``'s (:func:`~fxmeter.report.compare.module_deltas`: each
    folded module's own cost, so they add up to the change of the total; a module in one report
    only counts as 0 in the other), one per metric both reports have.
    """
    va, vb = view_model(a), view_model(b)
    keys_b = [m["key"] for m in vb["metrics"]]
    metrics = [m for m in va["metrics"] if m["key"] in keys_b]
    ia = [[m["key"] for m in va["metrics"]].index(m["key"]) for m in metrics]
    ib = [keys_b.index(m["key"]) for m in metrics]

    def pick(v: Sequence[Any], idx: Sequence[int]) -> list[Any]:
        return [v[i] for i in idx]

    ga, gb = group_modules(a), group_modules(b)
    rows: dict[str, dict[str, Any]] = {}
    for i, m in enumerate(metrics):
        for d in module_deltas(ga, gb, m["key"]):
            r = rows.setdefault(d.key, {"id": d.key, "class": (gb.get(d.key) or ga[d.key]).cls, "count_a": d.count_a,
                                        "count_b": d.count_b, "a": [0] * len(metrics), "b": [0] * len(metrics)})
            r["a"][i], r["b"][i] = d.a, d.b
    order = {gid: k for k, gid in enumerate([*ga, *(g for g in gb if g not in ga)])}
    cats_a = {c["name"]: pick(c["values"], ia) for c in va["categories"]}
    cats_b = {c["name"]: pick(c["values"], ib) for c in vb["categories"]}
    zero = [0] * len(metrics)
    cats = [{"name": n, "a": cats_a.get(n, zero), "b": cats_b.get(n, zero)} for n in sorted(set(cats_a) | set(cats_b))]
    for v, idx in ((va, ia), (vb, ib)):
        v["metrics"] = metrics
        for mods in v["modules"].values():
            for m in mods or []:
                m["total"], m["own"] = pick(m["total"], idx), pick(m["own"], idx)
                m["split"] = [[c, pick(x, idx), ops] for c, x, ops in m["split"]]
    return {"mode": "compare", "title": f"{title(a)} vs {title(b)}", "metrics": metrics, "a": va, "b": vb,
            "deltas": sorted(rows.values(), key=lambda r: order[r["id"]]), "categories": cats,
            "colors": colors(list(va["colors"]) + list(vb["colors"]))}
