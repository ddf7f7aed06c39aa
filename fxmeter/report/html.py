"""report.html: one self-contained page that opens offline in any browser.

:func:`render_html` turns a report document (report.json, read as a plain
mapping) into the bytes of one HTML file: the headline, the module tree as a
zoomable treemap, the pipeline stages, devices and GPU counts when the report
has them, the category breakdown, a roofline chart, a searchable module table,
the counting conventions and the unmodeled ops.  :func:`render_compare_html`
puts two reports side by side with the deltas highlighted.

Everything is inlined: Apache ECharts (vendored in ``assets/``, see its
README), the page's script and style, and the data.  Python does the
arithmetic (folding repeated blocks, splitting a module's own ops by
category, the deltas) and writes the numbers people read with SI units;
the script only draws and filters.  The output is deterministic: the same
report gives the same bytes.  Keys the renderer does not know are ignored,
keys it knows but the report lacks leave their section out.

Why one long module: the page is one self-contained file, and its data preparation (headline,
tree, stages, devices, roofline points, compare deltas) and the inline script it feeds must change
together; split across modules, a key renamed on one side would silently leave a section empty.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from importlib import resources
from typing import Any

from fxmeter.base import fileio
from fxmeter.cost.tree import fold_id, natural_key
from fxmeter.cost.tree import foldable_parents as _foldable
from fxmeter.report.plan import chart_rows

__all__ = ["render_compare_html", "render_html", "view_model", "compare_model", "si", "si_bytes",
           "seconds"]

HTML_NAME = "report.html"
ASSETS = "fxmeter.report"
#: Metrics the treemap can be sized by, in the order of every vector in the page's data.
INT_METRICS = (
    ("tensor_core_flops", "tensor-core FLOPs", "tensor-core FLOPs", "FLOP"),
    ("cuda_core_flops", "CUDA-core FLOPs", "CUDA-core FLOPs", "FLOP"),
    ("bytes", "bytes moved (read + written)", "bytes moved", "B"),
)
#: Seconds a module may carry: (metric key, module total key, module own key, node key, label, short label).
SECONDS_METRICS = (
    ("predicted_seconds", "predicted_seconds", "self_predicted_seconds", "predicted_seconds",
     "predicted seconds (kernel model)", "predicted s"),
    ("bound_seconds", "bound_seconds", "self_bound_seconds", "bound_seconds",
     "bound seconds (roofline at 100% of peaks)", "bound s"),
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
_PREFIXES = ("", "k", "M", "G", "T", "P", "E", "Z", "Y")
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
_REL_TOL = 1e-6  # how closely a module's nodes must add up to its own seconds to split them by category


# -- units ------------------------------------------------------------------
def _three(v: float) -> str:
    """Three significant digits (at least the integer part): 6.5234 -> 6.52, 26.67 -> 26.7, 775.03 -> 775."""
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def si(n: float, unit: str = "") -> str:
    """``6523436592005120, "FLOP"`` -> ``6.52 PFLOP`` (SI prefixes, three significant digits)."""
    if isinstance(n, float) and not math.isfinite(n):
        return f"{n} {unit}".strip()
    if abs(n) < 1000:
        return (f"{n:,}" if isinstance(n, int) else f"{n:.3g}") + (f" {unit}" if unit else "")
    if abs(n) >= 999.5e24:  # past yotta (and past a float's range): scientific, exact for integers
        return f"{Decimal(n):.2e} {unit}".strip()
    sign, v, i = "-" if n < 0 else "", abs(n), 0
    while v >= 999.5 and i < len(_PREFIXES) - 1:
        v, i = v / 1000, i + 1
    return f"{sign}{_three(v)} {_PREFIXES[i]}{unit}"


def si_bytes(n: float) -> str:
    """``28635351168`` -> ``26.7 GiB`` (binary prefixes: memory and traffic alike)."""
    if isinstance(n, float) and not math.isfinite(n) or abs(n) < 1024:
        return f"{n:,} B" if isinstance(n, int) else f"{n:.3g} B"
    if abs(n) >= 999.5 * 2**80:  # past YiB: scientific
        return f"{Decimal(n):.2e} B"
    sign, v, i = "-" if n < 0 else "", abs(n), 0
    while v >= 999.5 and i < len(_BINARY) - 1:  # 1013 GiB reads 0.99 TiB: three digits at most
        v, i = v / 1024, i + 1
    return f"{sign}{_three(v)} {_BINARY[i]}"


def seconds(s: float) -> str:
    """``775.04`` -> ``775 s``, ``7.7504`` -> ``7.75 s``, ``0.0123`` -> ``12.3 ms``; 1000 s and more: ``1,234 s``."""
    if not math.isfinite(s):
        return f"{s} s"
    a = abs(s)
    if a >= 1000:
        return f"{s:,.0f} s"
    if a >= 1 or a == 0:
        return f"{'-' if s < 0 else ''}{_three(a)} s" if a else "0 s"
    for div, unit in ((1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")):
        if a >= div * 0.9995:
            return f"{'-' if s < 0 else ''}{_three(a / div)} {unit}"
    return f"{s:.3g} s"


def quantity(key: str, v: Any) -> str:
    """A value named ``key`` for people: bytes, seconds, FLOPs, dollars, shares, counts, or as it is."""
    if isinstance(v, bool) or v is None:
        return {True: "yes", False: "no", None: "—"}[v]
    if isinstance(v, (int, float)):
        k = key.lower()
        if "bytes" in k or k.startswith("memory"):
            return si_bytes(v)
        if "second" in k:
            return seconds(v)
        if "flop" in k:
            return si(v, "FLOP")
        if "dollar" in k or k in ("cost", "usd", "price"):
            return f"${v:,.2f}"
        if any(w in k for w in ("share", "efficiency", "fraction")) and isinstance(v, float) and 0 <= v <= 1.5:
            return f"{100 * v:.1f}%"
        if isinstance(v, int):
            return f"{v:,}"
        return f"{v:.4g}"
    if isinstance(v, Mapping):
        if "flops" in v or "tensor_core_flops" in v:
            return si(_flops(v), "FLOP")
        return ", ".join(f"{k}: {quantity(str(k), x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(quantity(key, x) for x in v)
    return str(v)


def _flops(m: Mapping[str, Any]) -> int:
    if "flops" in m:
        return int(m["flops"])
    return int(m.get("tensor_core_flops", 0)) + int(m.get("cuda_core_flops", 0))


def _int(x: Any) -> int:
    return int(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else 0


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _exact(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) and not isinstance(n, bool) else str(n)


# -- the page's data ---------------------------------------------------------
def _metric_list(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The metrics this report can size the treemap by (seconds only when every module has them)."""
    out = [{"key": k, "label": label, "short": short, "unit": unit} for k, label, short, unit in INT_METRICS]
    mods = data.get("modules") or []
    for key, total, _own, _node, label, short in SECONDS_METRICS:
        if mods and all(_num(m.get(total)) is not None for m in mods):
            out.append({"key": key, "label": label, "short": short, "unit": "s"})
    return out


def _vector(cost: Mapping[str, Any], extra: Sequence[float | None]) -> list[Any]:
    return [_int(cost.get("tensor_core_flops")), _int(cost.get("cuda_core_flops")),
            _int(cost.get("bytes_read")) + _int(cost.get("bytes_written")), *extra]


def _seconds_keys(metrics: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    keys = {m["key"] for m in metrics}
    return [(total, own, node) for key, total, own, node, _, _ in SECONDS_METRICS if key in keys]


def _add(a: list[Any], b: Sequence[Any]) -> list[Any]:
    return [x + y for x, y in zip(a, b)]


def _close(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """Integers exactly equal, seconds within a relative 1e-6."""
    for x, y in zip(a, b):
        if isinstance(x, int) and isinstance(y, int):
            if x != y:
                return False
        elif abs(x - y) > _REL_TOL * max(abs(x), abs(y), 1e-12):
            return False
    return True


def _own_splits(data: Mapping[str, Any], sec: Sequence[tuple[str, str, str]],
                parents: set[str]) -> dict[str, list[tuple[str, list[Any], list[str]]]]:
    """Each module's own cost split by node category, where the report's nodes add up to it exactly.

    A module's nodes are its own (``node.module == id``) or, for a block that was
    traced once and replicated, those of its representative (same folded id,
    ``replicas`` > 1).  Returns id -> [(category, vector, op targets)].
    """
    by_module: dict[str, list[Mapping[str, Any]]] = {}
    for n in data.get("nodes") or []:
        by_module.setdefault(str(n.get("module")), []).append(n)
    replicated: dict[str, str] = {}  # folded id -> the module whose nodes stand for every replica
    for mid, nodes in by_module.items():
        if any(_int(n.get("replicas")) > 1 for n in nodes):
            replicated.setdefault(fold_id(mid, parents), mid)
    out: dict[str, list[tuple[str, list[Any], list[str]]]] = {}
    for m in data.get("modules") or []:
        mid = str(m["id"])
        own = _vector(m.get("self") or {}, [_num(m.get(k)) or 0.0 for _, k, _ in sec])
        if not any(own):
            continue
        for source in (mid, replicated.get(fold_id(mid, parents))):
            found = by_module.get(source or "")
            if not found or any(any(_num(n.get(k)) is None for _, _, k in sec) for n in found):
                continue
            cats: dict[str, tuple[list[Any], list[str]]] = {}
            for n in found:
                v = _vector(n.get("per_forward") or {}, [float(n[k]) for _, _, k in sec])
                c = str(n.get("category") or "other")
                acc, ops = cats.get(c, ([0] * len(v), []))
                target = str(n.get("target", "")).removeprefix("aten.").removesuffix(".default")
                cats[c] = (_add(acc, v), ops if target in ops else [*ops, target])
            total = [0] * len(own)
            for v, _ in cats.values():
                total = _add(total, v)
            if _close(total, own):
                out[mid] = sorted(((c, v, ops) for c, (v, ops) in cats.items()), key=lambda t: (-t[1][0], -t[1][2], t[0]))
                break
    return out


def _short_name(gid: str, count: int) -> str:
    """The box label: the last part of the id (``attn1``), with its parent's for a number (``to_out.0``, ``blocks.* ×40``)."""
    parent, _, last = gid.rpartition(".")
    if last == "*":
        return f"{parent.rpartition('.')[2]}.* ×{count}"
    if last.isdigit() and parent:
        return f"{parent.rpartition('.')[2]}.{last}"
    return last


def _modules(data: Mapping[str, Any], metrics: Sequence[Mapping[str, Any]], fold: bool) -> list[dict[str, Any]]:
    """The module list of one view: every module (``fold=False``) or numbered blocks folded, costs summed."""
    mods = list(data.get("modules") or [])
    sec = _seconds_keys(metrics)
    all_parents = _foldable((str(m["id"]), str(m.get("class", ""))) for m in mods)
    parents = all_parents if fold else set()
    splits = _own_splits(data, sec, all_parents)
    groups: dict[str, dict[str, Any]] = {}
    for m in mods:
        gid = fold_id(str(m["id"]), parents)
        parent = m.get("parent")
        tot = _vector(m.get("per_forward") or {}, [_num(m.get(k)) or 0.0 for k, _, _ in sec])
        own = _vector(m.get("self") or {}, [_num(m.get(k)) or 0.0 for _, k, _ in sec])
        g = groups.get(gid)
        if g is None:
            g = groups[gid] = {
                "id": gid, "parent": fold_id(str(parent), parents) if parent else None, "class": str(m.get("class", "")),
                "depth": _int(m.get("depth")), "count": 0, "parameters": 0, "weight_bytes": 0,
                "total": [0] * len(tot), "own": [0] * len(own), "bound": m.get("limiter"), "own_bound": m.get("self_limiter"),
                "split": {}, "split_ok": True,
            }
        elif g["class"] != m.get("class"):
            g["class"] = "(mixed)"
        g["count"] += 1
        g["parameters"] += _int(m.get("parameters"))
        g["weight_bytes"] += _int(m.get("weight_bytes"))
        g["total"] = _add(g["total"], tot)
        g["own"] = _add(g["own"], own)
        if g["bound"] != m.get("limiter"):
            g["bound"] = "(mixed)"
        if g["own_bound"] != m.get("self_limiter"):
            g["own_bound"] = "(mixed)"
        if any(own):
            if str(m["id"]) not in splits:
                g["split_ok"] = False
            for c, v, ops in splits.get(str(m["id"]), []):
                acc, seen = g["split"].get(c, ([0] * len(v), []))
                g["split"][c] = (_add(acc, v), seen + [o for o in ops if o not in seen])
    out = []
    for g in sorted(groups.values(), key=lambda g: natural_key(g["id"].replace("*", "0"))):
        split = sorted(g.pop("split").items(), key=lambda kv: (-kv[1][0][0], -kv[1][0][2], kv[0]))
        ok = g.pop("split_ok") and split
        own = g["own"]
        flops, nbytes = own[0] + own[1], own[2]
        tflops, tbytes = g["total"][0] + g["total"][1], g["total"][2]
        g["name"] = _short_name(g["id"], g["count"])
        g["split"] = [[c, v, " ".join(ops)] for c, (v, ops) in split if any(v)] if ok else []
        g["category"] = split[0][0] if ok else None
        g["intensity"] = tflops / tbytes if tbytes else None
        g["own_intensity"] = flops / nbytes if nbytes else None
        out.append(g)
    return out


def _categories(data: Mapping[str, Any], metrics: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    sec = _seconds_keys(metrics)
    node_secs: dict[str, list[float]] = {}
    nodes = data.get("nodes") or []
    have_secs = bool(nodes) and all(all(_num(n.get(k)) is not None for _, _, k in sec) for n in nodes)
    if have_secs:
        for n in nodes:
            c = str(n.get("category") or "other")
            r = max(_int(n.get("replicas")), 1)
            acc = node_secs.get(c, [0.0] * len(sec))
            node_secs[c] = [a + float(n[k]) * r for a, (_, _, k) in zip(acc, sec)]
    out = []
    for name, c in (data.get("categories") or {}).items():
        if not isinstance(c, Mapping):
            continue
        extra: list[Any] = node_secs.get(name, [0.0] * len(sec)) if have_secs else [None] * len(sec)
        out.append({"name": str(name), "values": _vector(c, extra), "tensor_core_share": _num(c.get("tensor_core_share")),
                    "flops_share": _num(c.get("flops_share"))})
    return sorted(out, key=lambda c: (-c["values"][0], -c["values"][1], c["name"]))


def _colors(names: Iterable[str]) -> dict[str, str]:
    out, extra = {}, 0
    for n in sorted(set(names)):
        if n in CATEGORY_COLORS:
            out[n] = CATEGORY_COLORS[n]
        else:
            out[n] = _MORE_COLORS[extra % len(_MORE_COLORS)]
            extra += 1
    return out


def _roofline(data: Mapping[str, Any]) -> dict[str, Any] | None:
    hw = data.get("hardware")
    if not isinstance(hw, Mapping):
        return None
    peaks = hw.get("peaks_used") or {}
    out = {"label": str(hw.get("label", hw.get("name", ""))), "precision": hw.get("precision"),
           "tensor_core": _num(peaks.get("tensor_core_flops_per_s")),
           "cuda_core": _num(peaks.get("cuda_core_flops_per_s")), "bandwidth": _num(peaks.get("bytes_per_s")),
           "efficiency": hw.get("efficiency")}
    out["ticks"] = {"x": {str(e): log_tick(e) for e in range(-6, 13)},
                    "y": {str(e): log_tick(e, "FLOP/s") for e in range(-3, 25)}}
    return out if out["tensor_core"] and out["bandwidth"] else None


def log_tick(exponent: int, unit: str = "") -> str:
    """The label of the tick at ``10**exponent`` on a log axis, one format for every tick of the page's
    log axes: SI prefixes from 1 k up (``1 k``, ``100 TFLOP/s``), plain decimals below 1 (``0.01``)."""
    if exponent < 0:
        return f"{Decimal(1).scaleb(exponent):f}" + (f" {unit}" if unit else "")
    i = min(exponent // 3, len(_PREFIXES) - 1)
    mantissa = 10 ** (exponent - 3 * i)
    return f"{mantissa} {_PREFIXES[i]}{unit}".strip() if i or unit else f"{mantissa}"


def view_model(data: Mapping[str, Any]) -> dict[str, Any]:
    """What the page's script draws from: module lists (folded and not), categories, metrics, colours.

    Each module's ``total`` and ``own`` are vectors in the order of ``metrics``;
    ``split`` is its own cost by node category ([category, vector, ops]) where
    the report's nodes add up to it.  A folded group (``transformer.blocks.*``)
    carries the sum over its ``count`` members.
    """
    metrics = _metric_list(data)
    full = _modules(data, metrics, fold=False)
    folded = _modules(data, metrics, fold=True)
    cats = _categories(data, metrics)
    names = {c["name"] for c in cats} | {s[0] for m in full for s in m["split"]}
    return {
        "mode": "report",
        "title": _title(data),
        "metrics": metrics,
        "modules": {"folded": folded, "full": full if len(full) != len(folded) else None},
        "categories": cats,
        "colors": _colors(names),
        "roofline": _roofline(data),
        "devices": _device_rows(data),
        "scaling": _scaling_rows(data),
        "plan": chart_rows(data.get("plan")),
    }


def _device_rows(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for d in data.get("devices") or []:
        if isinstance(d, Mapping):
            rows.append({"name": str(d.get("label") or d.get("name") or "?"), "bound": _num(d.get("bound_seconds")),
                         "predicted": _num(d.get("predicted_seconds")), "fits": d.get("fits") is not False})
    return rows


def _scaling_rows(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for s in data.get("scaling") or []:
        if isinstance(s, Mapping) and _num(s.get("gpus")) is not None:
            rows.append({"gpus": _num(s.get("gpus")), "seconds": _num(s.get("seconds")),
                         "speedup": _num(s.get("speedup")), "efficiency": _num(s.get("efficiency")),
                         "fits": s.get("fits") is not False})
    return rows


def _title(data: Mapping[str, Any]) -> str:
    model, wl = data.get("model") or {}, data.get("workload") or {}
    return f"{model.get('id', '?')} @ {wl.get('name', '?')}"


# -- the page's static part (Python-rendered, readable without the script) ---
def _table(head: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "", raw: bool = False) -> str:
    """An HTML table; cells are escaped unless ``raw`` (cells already HTML)."""
    cell = (lambda x: x) if raw else _esc
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in r) + "</tr>" for r in rows)
    heads = "".join(f"<th>{_esc(h)}</th>" for h in head)
    return f'<table class="{cls}"><thead><tr>{heads}</tr></thead><tbody>{body}</tbody></table>'


def _card(label: str, value: str, exact: Any = None, sub: str = "") -> str:
    title = f' title="{_esc(_exact(exact))}"' if exact is not None else ""
    sub_html = f'<div class="sub">{_esc(sub)}</div>' if sub else ""
    return f'<div class="card"><div class="label">{_esc(label)}</div><div class="value"{title}>{_esc(value)}</div>{sub_html}</div>'


def _header(data: Mapping[str, Any]) -> str:
    model, wl, tool = data.get("model") or {}, data.get("workload") or {}, data.get("tool") or {}
    shape = "×".join(str(x) for x in wl.get("latent_shape") or [])
    bits = [f"{model.get('diffusers_class', '?')}", f"{si(_int(model.get('parameters')))} parameters"]
    line = (f"{wl.get('frames', '?')} frames {wl.get('height', '?')}×{wl.get('width', '?')}, "
            f"{_exact(wl.get('tokens', '?'))} tokens (latent {shape}), {wl.get('steps', '?')} steps × "
            f"{wl.get('passes_per_step', '?')} passes, batch {wl.get('batch', '?')}, {wl.get('dtype', '?')}")
    tv = f"fxmeter {tool.get('fxmeter', '?')} · torch {tool.get('torch', '?')} · diffusers {tool.get('diffusers', '?')}"
    return (f'<header><h1>{_esc(_title(data))}</h1><p class="lead">{_esc(", ".join(bits))}</p>'
            f'<p class="lead">{_esc(line)}</p><p class="meta">run {_esc(data.get("run_id", "?"))} · {_esc(tv)}</p></header>')


def _seconds_cards(block: Mapping[str, Any], where: str) -> list[str]:
    cards = []
    if _num(block.get("predicted_seconds")) is not None:
        cards.append(_card(f"predicted, {where}", seconds(float(block["predicted_seconds"])), sub="kernel model"))
    if _num(block.get("bound_seconds")) is not None:
        cards.append(_card(f"bound, {where}", seconds(float(block["bound_seconds"])), sub="roofline at 100% of peaks"))
    return cards


def _stage_runs(data: Mapping[str, Any]) -> str:
    """``text_encoder ×2, transformer ×100, vae ×1`` (the stages the report costed)."""
    pipe = data.get("pipeline") or {}
    return ", ".join(f"{s.get('name', '?')} ×{s.get('runs', '?')}" for s in pipe.get("stages") or []
                     if isinstance(s, Mapping))


def _whole_generation_cards(data: Mapping[str, Any]) -> list[str]:
    """The whole generation (every stage traced, copies of the --offload policy included), or nothing
    when the report has no pipeline section.  A deployment (--gpus N) adds its seconds on N GPUs."""
    pipe = data.get("pipeline")
    e2e = pipe.get("end_to_end") if isinstance(pipe, Mapping) else None
    if not isinstance(e2e, Mapping):
        return []
    cards = [_card("FLOPs, whole generation", si(_flops(e2e), "FLOP"), e2e.get("flops"))]
    dep = data.get("deployment")
    if isinstance(dep, Mapping) and _num(dep.get("predicted_seconds")) is not None:
        cards.append(_card(f"predicted, whole generation on {dep.get('gpus')} GPUs",
                           seconds(float(dep["predicted_seconds"])), sub=f"kernel model + exposed communication; "
                           f"one GPU {seconds(float(dep.get('single_gpu_seconds') or 0.0))}"))
    cards += _seconds_cards(e2e, "whole generation" + (" on one GPU" if isinstance(dep, Mapping) else ""))
    res = pipe.get("residency") if isinstance(pipe, Mapping) else None
    if isinstance(res, Mapping) and _num(res.get("peak_bytes")) is not None:
        cards.append(_card("peak device memory, whole generation", si_bytes(_int(res["peak_bytes"])), res["peak_bytes"],
                           sub=f"--offload {res.get('policy', '?')}, during {res.get('peak_stage', '?')}"))
    return cards


def _headline(data: Mapping[str, Any]) -> str:
    tot, mem = data.get("totals") or {}, data.get("memory") or {}
    pf, e2e = tot.get("per_forward") or {}, tot.get("end_to_end") or {}
    wl = data.get("workload") or {}
    moved = _int(pf.get("bytes_read")) + _int(pf.get("bytes_written"))
    forward = [
        _card("tensor-core FLOPs", si(_int(pf.get("tensor_core_flops")), "FLOP"), pf.get("tensor_core_flops")),
        _card("CUDA-core FLOPs", si(_int(pf.get("cuda_core_flops")), "FLOP"), pf.get("cuda_core_flops")),
        _card("bytes moved", si_bytes(moved), moved, sub=f"read {si_bytes(_int(pf.get('bytes_read')))}, "
              f"written {si_bytes(_int(pf.get('bytes_written')))}"),
        *_seconds_cards(pf, "one forward"),
    ]
    runs = f"{wl.get('steps', '?')} steps × {wl.get('passes_per_step', '?')} passes"
    generation = [
        _card("FLOPs, transformer alone", si(_int(e2e.get("flops")) or _flops(e2e), "FLOP"), e2e.get("flops"), sub=runs),
        _card("tensor-core FLOPs, transformer alone", si(_int(e2e.get("tensor_core_flops")), "FLOP"),
              e2e.get("tensor_core_flops")),
        _card("bytes moved, transformer alone", si_bytes(_int(e2e.get("bytes_read")) + _int(e2e.get("bytes_written"))),
              _int(e2e.get("bytes_read")) + _int(e2e.get("bytes_written"))),
        *_seconds_cards(e2e, "transformer alone"),
    ]
    whole = _whole_generation_cards(data)
    memory = [
        _card("weights", si_bytes(_int(mem.get("weight_bytes"))), mem.get("weight_bytes"),
              sub=", ".join(f"{k} {si_bytes(_int(v))}" for k, v in sorted((mem.get("weight_bytes_by_dtype") or {}).items()))),
        _card("peak activations", si_bytes(_int(mem.get("activation_peak_bytes"))), mem.get("activation_peak_bytes"),
              sub=f"at {mem.get('activation_peak_module') or '?'} ({mem.get('activation_peak_node') or '?'})"),
        _card("weights + activations", si_bytes(_int(mem.get("total_bytes"))), mem.get("total_bytes")),
    ]
    fit = mem.get("fit")
    if isinstance(fit, Mapping):
        memory.append(f'<div class="card {"ok" if fit.get("fits") else "bad"}"><div class="label">fit</div>'
                      f'<div class="value">{"fits" if fit.get("fits") else "does not fit"}</div>'
                      f'<div class="sub">{_esc(fit.get("statement", ""))}</div></div>')
    parts = ['<section id="headline"><h2>Headline</h2>']
    if whole:
        parts.append(f'<h3>Whole generation ({_esc(_stage_runs(data))})</h3><div class="cards">{"".join(whole)}</div>')
    parts += [
        f'<h3>Transformer alone, one generation ({_esc(runs)})</h3><div class="cards">{"".join(generation)}</div>',
        f'<h3>Transformer, one forward</h3><div class="cards">{"".join(forward)}</div>',
        f'<h3>Memory, transformer alone</h3><div class="cards">{"".join(memory)}</div>',
    ]
    hw = data.get("hardware")
    if isinstance(hw, Mapping):
        eff = hw.get("efficiency") or {}
        eff_text = ", ".join(f"{k}={v:g}" for k, v in sorted(eff.items()) if isinstance(v, (int, float)))
        parts.append(
            f'<h3>Time on {_esc(hw.get("label", hw.get("name", "?")))}</h3><p class="note">'
            f'{_esc(hw.get("precision", ""))}, efficiency {_esc(eff_text or "?")}, '
            f'traffic {_esc(tot.get("traffic_model", "?"))}. Model: {_esc(hw.get("model", "not stated"))}.</p>')
        by_bound = hw.get("seconds_by_limiter_per_forward") or {}
        if by_bound:
            parts.append('<p class="note">Transformer, one forward, seconds in nodes bound by: ' + ", ".join(
                f"{_esc(k.replace('_', '-'))} {_esc(seconds(float(v)))}" for k, v in sorted(by_bound.items())
                if isinstance(v, (int, float))) + "</p>")
    unmodeled = data.get("unmodeled_ops") or []
    if unmodeled:
        ops = ", ".join(f"{u.get('op')} ×{u.get('count')}" for u in unmodeled[:6] if isinstance(u, Mapping))
        parts.append(f'<p class="warn">{len(unmodeled)} op kind(s) have no rule and count as 0: {_esc(ops)} '
                     '(see <a href="#conventions">Counting conventions and unmodeled ops</a>).</p>')
    parts.append("</section>")
    return "".join(parts)


#: Column headers people read, for the report keys a table may show (a key not here: its words, unit-less).
HEADERS = {
    "name": "name", "label": "device", "bound_seconds": "bound s (roofline at 100%)",
    "predicted_seconds": "predicted s (kernel model)", "fits": "fits", "fit": "memory", "policy": "offload policy",
    "dollars": "$ per generation", "price_per_hour": "$ per GPU-hour", "generations_per_hour": "generations per hour",
    "gpu_hours": "GPU-hours per generation", "predicted_by": "predicted by", "fits_with": "fits with --offload",
    "gpus": "GPUs", "parallel": "plan", "seconds": "predicted s", "speedup": "speed-up", "efficiency": "parallel efficiency",
    "memory_per_gpu": "memory per GPU", "comm_share": "exposed communication share",
    "exposed_comm_seconds": "exposed communication s", "stage": "stage", "kind": "collective", "what": "what",
    "ranks": "ranks", "link": "link", "count": "calls per generation", "bytes": "bytes per call per rank",
    "exposed_seconds": "exposed s", "overlapped_seconds": "overlapped s", "overlappable": "overlappable",
    "role": "role", "steps": "steps", "step_share": "share of steps", "parameters": "parameters",
    "weight_bytes": "weights", "end_to_end": "FLOPs, one generation", "component": "component", "class": "class",
}


def _header_text(key: str) -> str:
    return HEADERS.get(key, key.replace("_", " "))


def _generic_table(rows: Sequence[Mapping[str, Any]], first: Sequence[str] = ()) -> str:
    """A table of dict rows: ``first`` columns, then every other key in order of appearance; headers for
    people (:data:`HEADERS`), values with units (:func:`quantity`)."""
    keys: list[str] = [k for k in first if any(k in r for r in rows)]
    for r in rows:
        keys += [str(k) for k in r if k not in keys]
    return _table([_header_text(k) for k in keys],
                  [[quantity(k, r.get(k)) if k in r else "" for k in keys] for r in rows], "data")


def _stages(data: Mapping[str, Any]) -> str:
    pipe = data.get("pipeline")
    stages = pipe.get("stages") if isinstance(pipe, Mapping) else None
    if not isinstance(stages, list) or not stages:
        return ""
    head = ["stage", "class", "runs", "FLOPs per run", "FLOPs, one generation", "parameters", "weights",
            "peak activations", "predicted s per run", "predicted s, one generation (kernel model)",
            "bound s, one generation (roofline at 100%)"]

    def secs(block: Any, key: str) -> str:
        v = _num(block.get(key)) if isinstance(block, Mapping) else None
        return seconds(v) if v is not None else "—"

    def row(s: Mapping[str, Any], name: str) -> list[str]:
        pr, ee = s.get("per_run"), s.get("end_to_end")
        host = " (on the host: no device time)" if s.get("on_host") else ""
        return [name + host, str(s.get("class", "")), _exact(s.get("runs", "")),
                si(_flops(pr), "FLOP") if isinstance(pr, Mapping) else "",
                si(_flops(ee), "FLOP") if isinstance(ee, Mapping) else "",
                si(_int(s["parameters"])) if "parameters" in s else "",
                si_bytes(_int(s["weight_bytes"])) if "weight_bytes" in s else "",
                si_bytes(_int(s["activation_peak_bytes"])) if "activation_peak_bytes" in s else "",
                secs(pr, "predicted_seconds"), secs(ee, "predicted_seconds"), secs(ee, "bound_seconds")]

    rows = [row(s, str(s.get("name", "?"))) for s in stages if isinstance(s, Mapping)]
    e2e = pipe.get("end_to_end") if isinstance(pipe, Mapping) else None
    if isinstance(e2e, Mapping):
        whole = row({"end_to_end": e2e}, "whole generation")
        whole[8] = ""
        rows.append(whole)
    moves = _num(pipe.get("transfer_seconds")) if isinstance(pipe, Mapping) else None
    copies = (f" The whole generation includes {seconds(moves)} of host↔device copies (--offload)." if moves else "")
    return ('<section id="stages"><h2>Pipeline stages</h2><p class="note">Each stage of one generation: how many '
            'times it runs, its cost per run and over the generation. <b>predicted</b> = the kernel model; '
            f'<b>bound</b> = roofline at 100% of the peaks.{_esc(copies)}</p>' + _table(head, rows, "data num")
            + "</section>")


def _devices(data: Mapping[str, Any]) -> str:
    devs = [d for d in data.get("devices") or [] if isinstance(d, Mapping)]
    if not devs:
        return ""
    head = ["device", "predicted s, whole generation (kernel model)", "bound s, whole generation (roofline at 100%)",
            "generations per hour", "GPU-hours per generation", "$ per generation", "fits", "memory"]
    rows = []
    for d in devs:
        fits = d.get("fits")
        price = _num(d.get("dollars"))
        rows.append([str(d.get("label") or d.get("name") or "?"), quantity("predicted_seconds", d.get("predicted_seconds")),
                     quantity("bound_seconds", d.get("bound_seconds")), f"{_num(d.get('generations_per_hour')) or 0:,.2f}",
                     f"{_num(d.get('gpu_hours')) or 0:,.4f}",
                     "— (does not fit)" if not fits else (f"${price:,.4f}" if price is not None else "—"),
                     "yes" if fits else (f"with --offload {d['fits_with']}" if d.get("fits_with") else "NO"),
                     str(d.get("fit") or "")])
    return ('<section id="devices"><h2>Per device</h2><p class="note">The same whole generation on each device, '
            'one GPU: <b>predicted</b> = the kernel model, <b>bound</b> = roofline at 100% of the peaks. A device '
            'it does not fit on has no price: no such run is possible as configured.</p>'
            '<div class="chart short" id="devices-chart"></div>' + _table(head, rows, "data") + "</section>")


def _scaling(data: Mapping[str, Any]) -> str:
    rows = [s for s in data.get("scaling") or [] if isinstance(s, Mapping)]
    if not rows:
        return ""
    head = ["GPUs", "plan", "predicted s, whole generation", "speed-up", "parallel efficiency", "memory per GPU",
            "exposed communication share", "bound s (roofline at 100%)", "fits"]
    body = []
    for r in rows:
        ok = bool(r.get("fits"))
        body.append([_exact(r.get("gpus")), str(r.get("parallel", "")),
                     quantity("seconds", r.get("seconds")) + ("" if ok else " *"),
                     f"{_num(r.get('speedup')) or 0:.2f}×", quantity("efficiency", r.get("efficiency")),
                     si_bytes(_int(r.get("memory_per_gpu"))), quantity("comm_share", r.get("comm_share")),
                     quantity("bound_seconds", r.get("bound_seconds")), "yes" if ok else "NO: does not fit"])
    notes = []
    if not all(r.get("fits") for r in rows):
        notes.append("* does not fit in the GPU's memory: the seconds assume it did; no such run is possible as "
                     "configured (grey hatched bars)")
    if not any(r.get("fits") for r in rows):
        notes.append("No GPU count fits: try --offload model or sequential, --fsdp, more GPUs, or a larger device.")
    warn = "".join(f'<p class="warn">{_esc(n)}</p>' for n in notes)
    return ('<section id="scaling"><h2>Per GPU count</h2><p class="note">One whole generation on each GPU count, '
            'predicted by the kernel model plus the communication compute cannot hide.</p>' + warn
            + '<div class="chart short" id="scaling-chart"></div>' + _table(head, body, "data") + "</section>")


def _plan(data: Mapping[str, Any]) -> str:
    plan = data.get("plan")
    if not isinstance(plan, Mapping) or not plan.get("frontier"):
        return ""
    dollars = plan.get("cost_axis") == "dollars"
    head = ["predicted s, whole generation", "$ per generation" if dollars else "GPU-seconds per generation", "GPUs",
            "peak per GPU (allocated)", "why", "command"]

    def body(rows: Any) -> list[list[str]]:
        out = []
        for r in rows or ():
            if isinstance(r, Mapping):
                cost = r.get("dollars") if dollars else r.get("gpu_seconds")
                out.append([quantity("seconds", r.get("seconds")), "—" if cost is None else f"{_num(cost) or 0:,.4f}"
                            if dollars else f"{_num(cost) or 0:,.0f}", _exact(r.get("gpus")),
                            si_bytes(_int(r.get("peak_bytes"))), str(r.get("why", "")),
                            str(r.get("command", ""))])
        return out

    text = (f'{_exact(plan.get("priced"))} setups priced exactly, {_exact(plan.get("fit"))} fit in memory, '
            f'{_exact(plan.get("meeting_constraints"))} meet the constraints; this report is the fastest frontier row. '
            'Seconds are predicted (kernel model) for the whole generation on the row\'s GPUs.')
    parts = ['<section id="plan"><h2>Plan: the Pareto frontier</h2><p class="note">' + _esc(text) + "</p>",
             '<div class="chart short" id="plan-chart"></div>', "<h3>Same output as the default setup</h3>",
             _table(head, body(plan.get("frontier")), "data")]
    if plan.get("changes_output"):
        parts += ['<h3 class="warn">Faster or cheaper still, but changing the output</h3>',
                  _table(head, body(plan.get("changes_output")), "data")]
    return "".join(parts) + "</section>"


def _deployment(data: Mapping[str, Any]) -> str:
    dep = data.get("deployment")
    if not isinstance(dep, Mapping) or not dep:
        return ""
    def mapping(key: str) -> Mapping[str, Any]:
        v = dep.get(key)
        return v if isinstance(v, Mapping) else {}

    par, link, mem = mapping("parallel"), mapping("interconnect"), mapping("memory")
    spec = par.get("spec", dep.get("parallel") if isinstance(dep.get("parallel"), str) else "?")
    n = dep.get("gpus", "?")

    def sec(key: str) -> str:
        return quantity("seconds", dep.get(key))

    items = [
        ("GPUs", f"{n} × {mapping('device').get('label', '?')}"),
        ("plan", f"{spec}{' + fsdp' if par.get('fsdp') else ''}"),
        ("interconnect", str(link.get("text", "?"))),
        ("predicted s, whole generation on the GPUs", f"{sec('predicted_seconds')} ({dep.get('predicted_by', '?')} "
         "+ exposed communication)"),
        ("predicted s, whole generation on one GPU", sec("single_gpu_seconds")),
        ("speed-up", f"{_num(dep.get('speedup')) or 0:.2f}×"),
        ("parallel efficiency = t1 / (N × tN)", quantity("efficiency", dep.get("efficiency"))),
        ("compute per GPU", sec("compute_seconds")),
        ("communication exposed", f"{sec('exposed_comm_seconds')} ({quantity('comm_share', dep.get('comm_share'))} "
         "of the time)"),
        ("communication overlapped", sec("overlapped_comm_seconds")),
        ("bound s per GPU (roofline at 100%, no communication)", sec("bound_seconds")),
        ("GPU-hours per generation", f"{(_num(dep.get('gpu_seconds')) or 0) / 3600:.4f} ({n} × the predicted s)"),
        ("weights per GPU", si_bytes(_int(mem.get("weight_bytes_per_gpu")))),
        ("activations per GPU", si_bytes(_int(mem.get("activation_bytes_per_gpu")))),
        ("memory per GPU", f"{si_bytes(_int(mem.get('total_bytes_per_gpu')))} of "
         f"{si_bytes(_int(mem.get('device_bytes')))}"),
        ("fit", str(mem.get("statement", "?"))),
        ("link bandwidth per direction", f"{si(_num(link.get('bandwidth')) or 0, 'B/s')}"),
    ]
    items = [(k, v) for k, v in items if "?" not in v or k == "GPUs"]  # what the report has
    parts = ['<section id="deployment"><h2>Deployment</h2>', _table(["", "value"], [list(i) for i in items], "data")]
    stages = [s for s in dep.get("stages") or [] if isinstance(s, Mapping)]
    if stages:
        head = ["stage", "forwards per GPU", "tensor-core FLOPs per forward per GPU", "predicted s per forward",
                "exposed communication s", "predicted s, one generation", "one GPU s, one generation",
                "weights per GPU", "activations per GPU"]
        parts.append("<h3>Stages on the GPUs</h3>" + _table(head, [[
            str(s.get("name", "?")) + ("" if s.get("split") else " (one GPU)"), _exact(s.get("forwards_per_gpu")),
            si(_int((s.get("per_forward") or {}).get("tensor_core_flops")), "FLOP"),
            quantity("seconds", s.get("predicted_seconds_per_forward")), quantity("seconds", s.get("exposed_comm_seconds")),
            quantity("seconds", s.get("seconds")), quantity("seconds", s.get("single_gpu_seconds")),
            si_bytes(_int(s.get("weight_bytes_per_gpu"))), si_bytes(_int(s.get("activation_bytes_per_gpu")))]
            for s in stages], "data num"))
    comm = [c for c in dep.get("communication") or [] if isinstance(c, Mapping)]
    if comm:
        head = ["collective", "kind", "stage", "ranks", "link", "calls per generation", "bytes per call per rank",
                "s per call", "exposed s", "overlapped s"]
        parts.append("<h3>Communication</h3>" + _table(head, [[
            str(c.get("what", "")), str(c.get("kind", "")).replace("_", "-"), str(c.get("stage", "")),
            _exact(c.get("ranks")), str(c.get("link", "")), _exact(c.get("count")), si_bytes(_int(c.get("bytes"))),
            quantity("seconds", c.get("seconds")), quantity("seconds", c.get("exposed_seconds")),
            quantity("seconds", c.get("overlapped_seconds"))] for c in comm], "data"))
    for title, key in (("Overlap rules", "overlap_rules"), ("Assumptions", "notes")):
        lines = [str(x) for x in dep.get(key) or []]
        if lines:
            parts.append(f"<h3>{title}</h3><ul>" + "".join(f"<li>{_esc(x)}</li>" for x in lines) + "</ul>")
    parts.append("</section>")
    return "".join(parts)


def _components(data: Mapping[str, Any]) -> str:
    comps = [c for c in data.get("components") or [] if isinstance(c, Mapping)]
    if not comps:
        return ""
    rows = [{k: v for k, v in c.items() if k not in ("config", "timesteps")} for c in comps]
    return ('<section id="components"><h2>Components</h2>'
            + _generic_table(rows, ("name", "role", "steps", "step_share", "parameters", "weight_bytes", "end_to_end"))
            + "</section>")


def _category_section(vm: Mapping[str, Any]) -> str:
    metrics = vm["metrics"]
    head = ["category", *[m["label"] for m in metrics], "tensor-core share", "FLOP share"]
    rows = []
    for c in vm["categories"]:
        color = vm["colors"].get(c["name"], "#999")
        cells = [f'<span class="swatch" style="background:{_esc(color)}"></span>{_esc(c["name"])}']
        for m, v in zip(metrics, c["values"]):
            cells.append(_esc(_fmt(m["unit"], v)) if v is not None else "")
        for share in (c["tensor_core_share"], c["flops_share"]):
            cells.append(f"{100 * share:.1f}%" if share is not None else "")
        rows.append(cells)
    return ('<section id="categories"><h2>Categories (transformer, one forward)</h2><p class="note">Every graph node of '
            'the transformer belongs to one category; '
            'the chart follows the metric chosen above the treemap.</p><div class="chart" id="categories-chart"></div>'
            + _table(head, rows, "data num", raw=True) + "</section>")


def _fmt(unit: str, v: float) -> str:
    return si_bytes(v) if unit == "B" else seconds(v) if unit == "s" else si(v, unit)


def _roofline_section(vm: Mapping[str, Any]) -> str:
    rf = vm["roofline"]
    if rf is None or not any(m["key"] in ("predicted_seconds", "bound_seconds") for m in vm["metrics"]):
        return ('<section id="roofline"><h2>Roofline</h2><p class="note">This report has no hardware: trace with '
                '<code>--hardware NAME</code> (see <code>fxmeter hardware</code>) to place each module under the '
                "device's roofs.</p></section>")
    return ('<section id="roofline"><h2>Roofline (transformer, one forward)</h2><p class="note">One point per module '
            f'of the transformer with own ops (repeated blocks folded): arithmetic intensity (FLOP per byte moved) against the FLOP/s it reaches on {_esc(rf["label"])} in '
            'the predicted time; colour = what bounds it, size = its predicted seconds. Hover a point for the module, '
            'intensity and bound; the largest are labelled.</p><div class="chart tall" id="roofline-chart"></div></section>')


def _conventions(data: Mapping[str, Any]) -> str:
    parts = ['<section id="conventions"><h2>Counting conventions and unmodeled ops</h2><h3>Conventions</h3><dl>']
    for k, v in sorted((data.get("counting") or {}).items()):
        parts.append(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>")
    parts.append("</dl><h3>Notes</h3><ul>")
    parts += [f"<li>{_esc(n)}</li>" for n in data.get("notes") or []]
    parts.append("</ul><h3>Unmodeled ops</h3>")
    unmodeled = [u for u in data.get("unmodeled_ops") or [] if isinstance(u, Mapping)]
    if unmodeled:
        parts.append('<p class="warn">These ops have no rule and count as 0 in every number on this page.</p>')
        parts.append(_table(["op", "count", "modules"], [
            [str(u.get("op")), _exact(u.get("count")), ", ".join(map(str, u.get("modules") or []))] for u in unmodeled],
            "data"))
    else:
        parts.append('<p class="ok-text">None: every op in the graph has a rule or is on the free list.</p>')
    trace = data.get("trace") or {}
    parts.append("<h3>Trace</h3><dl>")
    for k in ("mode", "exporter", "graph_nodes", "replicated_blocks", "symbols", "guards", "cache", "options"):
        if k in trace:
            parts.append(f"<dt>{_esc(k)}</dt><dd>{_esc(quantity(k, trace[k]) if k != 'graph_nodes' else trace[k])}</dd>")
    parts.append("</dl>")
    hw = data.get("hardware")
    if isinstance(hw, Mapping) and isinstance(hw.get("sources"), Mapping):
        parts.append(f"<h3>Hardware sources ({_esc(hw.get('label', ''))})</h3><dl>")
        for k, v in sorted(hw["sources"].items()):
            parts.append(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>")
        parts.append("</dl>")
    parts.append("</section>")
    return "".join(parts)


def _tree_section(vm: Mapping[str, Any], ids: Sequence[str] = ("treemap",), labels: Sequence[str] = ()) -> str:
    options = "".join(f'<option value="{_esc(m["key"])}">{_esc(m["label"])}</option>' for m in vm["metrics"])
    fold = ('<label><input type="checkbox" id="unfold"> unfold repeated blocks</label>'
            if vm["modules"].get("full") is not None else "")
    charts = "".join(
        f'<div class="tree-pane">{f"<h3>{_esc(lab)}</h3>" if lab else ""}<div class="chart treemap" id="{i}"></div></div>'
        for i, lab in zip(ids, labels or [""] * len(ids)))
    return ('<section id="tree"><h2>Module tree (transformer, one forward)</h2><div class="controls"><label>size by <select id="metric">'
            f'{options}</select></label>{fold}<span class="hint">Click a box to zoom into it, a name in the path above the chart to go back. '
            'Repeated blocks are folded into one box with their count (its size is their sum); unfold to see each. '
            '"own" boxes are a module\'s own ops, by category.</span></div>'
            f'<div class="panes">{charts}</div></section>')


def _module_table_section(title: str = "Modules", note: str = "") -> str:
    return (f'<section id="modules"><h2>{_esc(title)}</h2><div class="controls"><input type="search" id="search" '
            'placeholder="filter modules (id, class, bound)…" autocomplete="off"><span id="row-count"></span></div>'
            f'{f"<p class=note>{_esc(note)}</p>" if note else ""}'
            '<div class="table-wrap"><table id="module-table" class="data num sortable"></table></div></section>')


def _nav(sections: Sequence[tuple[str, str]]) -> str:
    return "<nav>" + "".join(f'<a href="#{_esc(i)}">{_esc(t)}</a>' for i, t in sections) + "</nav>"


# -- assembling the file -----------------------------------------------------
def _asset(name: str) -> str:
    return resources.files(ASSETS).joinpath("assets", name).read_text(encoding="utf-8")


def _json_for_script(obj: Any) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</script>``, no ``<!--``)."""
    text = fileio.dumps(obj, indent=False).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_MARKER = re.compile(r"<!--fx:(\w+)-->")


def _page(title: str, body: str, model: Mapping[str, Any]) -> bytes:
    parts = {"title": _esc(title), "style": _asset("style.css"), "body": body, "data": _json_for_script(model),
             "echarts": _asset("echarts.min.js"), "app": _asset("app.js")}
    return _MARKER.sub(lambda m: parts[m.group(1)], _asset("page.html")).encode()


def render_html(data: Mapping[str, Any]) -> bytes:
    """The bytes of report.html for one report document (a mapping shaped as report.json)."""
    vm = view_model(data)
    sections = [("headline", "Headline"), ("tree", "Module tree")]
    body = [_header(data), "", _headline(data), _tree_section(vm)]
    for sid, title, text in (("stages", "Stages", _stages(data)), ("devices", "Devices", _devices(data)),
                             ("scaling", "GPU counts", _scaling(data)), ("plan", "Plan", _plan(data)),
                             ("deployment", "Deployment", _deployment(data)),
                             ("components", "Components", _components(data))):
        if text:
            sections.append((sid, title))
            body.append(text)
    body += [_category_section(vm), _roofline_section(vm),
             _module_table_section("Modules (transformer, one forward)",
                                   "Folded rows sum their blocks (×count). Click a column to sort."),
             _conventions(data)]
    sections += [("categories", "Categories"), ("roofline", "Roofline"), ("modules", "Modules"),
                 ("conventions", "Conventions")]
    body[1] = _nav(sections)
    return _page(f"fxmeter: {_title(data)}", "".join(body), vm)


# -- comparison ----------------------------------------------------------------
def _delta_cells(a: float | None, b: float | None, fmt: Any) -> list[str]:
    """A, B, change and ratio cells (HTML); growth red, shrinkage green, strong when over 5%."""
    if a is None or b is None:
        return [_esc(fmt(a)) if a is not None else "—", _esc(fmt(b)) if b is not None else "—", "", ""]
    d = b - a
    cls = "same" if d == 0 else ("up" if d > 0 else "down")
    if a and abs(d) / abs(a) > 0.05 or (not a and d):
        cls += " big"
    sign = "+" if d > 0 else "−" if d < 0 else "±"
    ratio = f"×{b / a:.3g}" if a else ("new" if b else "")
    return [_esc(fmt(a)), _esc(fmt(b)), f'<span class="{cls}">{sign}{_esc(fmt(abs(d)))}</span>',
            f'<span class="{cls}">{_esc(ratio)}</span>']


def _compare_rows(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[list[str]]:
    rows: list[list[str]] = []

    def add(label: str, va: Any, vb: Any, fmt: Any) -> None:
        na, nb = _num(va), _num(vb)
        if na is None and nb is None:
            return
        ia = va if isinstance(va, int) and not isinstance(va, bool) else na
        ib = vb if isinstance(vb, int) and not isinstance(vb, bool) else nb
        rows.append([_esc(label), *_delta_cells(ia, ib, fmt)])

    wa, wb = a.get("workload") or {}, b.get("workload") or {}
    for k in ("tokens", "frames", "height", "width", "steps", "passes_per_step", "batch", "text_len"):
        if k in wa or k in wb:
            add(f"workload: {k}", wa.get(k), wb.get(k), lambda v: _exact(v) if isinstance(v, int) else f"{v:g}")
    ta, tb = a.get("totals") or {}, b.get("totals") or {}
    for section, where in (("per_forward", "per forward"), ("end_to_end", "per generation, transformer alone")):
        sa, sb = ta.get(section) or {}, tb.get(section) or {}
        for key, label in (("tensor_core_flops", "tensor-core FLOPs"), ("cuda_core_flops", "CUDA-core FLOPs"),
                           ("flops", "FLOPs")):
            add(f"{label} {where}", sa.get(key), sb.get(key), lambda v: si(v, "FLOP"))
        for key, label in (("bytes_read", "bytes read"), ("bytes_written", "bytes written")):
            add(f"{label} {where}", sa.get(key), sb.get(key), si_bytes)
        add(f"bound seconds {where} (roofline at 100%)", sa.get("bound_seconds"), sb.get("bound_seconds"), seconds)
        add(f"predicted seconds {where} (kernel model)", sa.get("predicted_seconds"), sb.get("predicted_seconds"),
            seconds)
    ma, mb = a.get("memory") or {}, b.get("memory") or {}
    for key, label in (("weight_bytes", "weights"), ("activation_peak_bytes", "peak activations"),
                       ("total_bytes", "weights + activations")):
        add(label, ma.get(key), mb.get(key), si_bytes)
    add("parameters", (a.get("model") or {}).get("parameters"), (b.get("model") or {}).get("parameters"), si)
    return rows


def compare_model(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """The comparison page's data: each report's view, plus module and category deltas for every metric.

    Module deltas use each (folded) module's own cost, so they add up to the
    change of the total; a module in one report only counts as 0 in the other.
    """
    va, vb = view_model(a), view_model(b)
    keys_b = [m["key"] for m in vb["metrics"]]
    metrics = [m for m in va["metrics"] if m["key"] in keys_b]
    ia = [[m["key"] for m in va["metrics"]].index(m["key"]) for m in metrics]
    ib = [keys_b.index(m["key"]) for m in metrics]

    def pick(v: Sequence[Any], idx: Sequence[int]) -> list[Any]:
        return [v[i] for i in idx]

    ga = {m["id"]: m for m in va["modules"]["folded"]}
    gb = {m["id"]: m for m in vb["modules"]["folded"]}
    zero = [0] * len(metrics)
    rows = []
    for gid in list(ga) + [g for g in gb if g not in ga]:
        ma, mb = ga.get(gid), gb.get(gid)
        oa = pick(ma["own"], ia) if ma else zero
        ob = pick(mb["own"], ib) if mb else zero
        if not any(oa) and not any(ob):
            continue
        rows.append({"id": gid, "class": (mb or ma or {}).get("class", ""), "count_a": ma["count"] if ma else 0,
                     "count_b": mb["count"] if mb else 0, "a": oa, "b": ob})
    cats_a = {c["name"]: pick(c["values"], ia) for c in va["categories"]}
    cats_b = {c["name"]: pick(c["values"], ib) for c in vb["categories"]}
    cats = [{"name": n, "a": cats_a.get(n, zero), "b": cats_b.get(n, zero)}
            for n in sorted(set(cats_a) | set(cats_b))]
    for v in (va, vb):
        v["metrics"] = metrics
        for mods in v["modules"].values():
            for m in mods or []:
                idx = ia if v is va else ib
                m["total"], m["own"] = pick(m["total"], idx), pick(m["own"], idx)
                m["split"] = [[c, pick(x, idx), ops] for c, x, ops in m["split"]]
    return {"mode": "compare", "title": f"{_title(a)} vs {_title(b)}", "metrics": metrics, "a": va, "b": vb,
            "deltas": rows, "categories": cats, "colors": _colors(list(va["colors"]) + list(vb["colors"]))}


def _compare_notes(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    notes = []
    ma, mb = a.get("model") or {}, b.get("model") or {}
    if ma.get("id") != mb.get("id"):
        notes.append(f"Different models ({ma.get('id')} vs {mb.get('id')}): modules are matched by folded id.")
    elif ma.get("config_sha256") != mb.get("config_sha256"):
        notes.append("Same model id, different config (config_sha256 differs).")
    wa, wb = a.get("workload") or {}, b.get("workload") or {}
    if wa.get("dtype") != wb.get("dtype"):
        notes.append(f"Different dtype: {wa.get('dtype')} vs {wb.get('dtype')}.")
    if (a.get("counting") or {}) != (b.get("counting") or {}):
        diff = sorted(k for k in set(a.get("counting") or {}) | set(b.get("counting") or {})
                      if (a.get("counting") or {}).get(k) != (b.get("counting") or {}).get(k))
        notes.append("The counting conventions differ in: " + ", ".join(diff) + ".")
    ha, hb = a.get("hardware") or {}, b.get("hardware") or {}
    if isinstance(ha, Mapping) and isinstance(hb, Mapping) and ha.get("name") != hb.get("name"):
        notes.append(f"Different hardware: {ha.get('label', ha.get('name', 'none'))} vs "
                     f"{hb.get('label', hb.get('name', 'none'))}.")
    ua, ub = a.get("unmodeled_ops") or [], b.get("unmodeled_ops") or []
    if ua or ub:
        notes.append(f"Unmodeled op kinds (counted as 0): {len(ua)} in A, {len(ub)} in B.")
    return notes


def render_compare_html(a: Mapping[str, Any], b: Mapping[str, Any]) -> bytes:
    """The bytes of a page comparing report ``a`` (before) with ``b`` (after), deltas highlighted."""
    cm = compare_model(a, b)
    head = ["", "A", "B", "change", "ratio"]
    notes = _compare_notes(a, b)
    ta, tb = _title(a), _title(b)
    body = [
        f'<header><h1>{_esc(ta)} <span class="vs">vs</span> {_esc(tb)}</h1>'
        f'<p class="lead">A = {_esc(ta)} (run {_esc(a.get("run_id", "?"))}), '
        f'B = {_esc(tb)} (run {_esc(b.get("run_id", "?"))}). '
        'Changes from A to B: <span class="up big">growth</span>, <span class="down big">shrinkage</span> '
        '(bold: more than 5%).</p></header>',
        _nav([("totals", "Totals"), ("tree", "Module trees"), ("categories", "Categories"), ("modules", "Module deltas"),
              ("conventions", "Notes")]),
        '<section id="totals"><h2>Totals, memory and workload</h2>'
        + _table(head, _compare_rows(a, b), "data num compare", raw=True) + "</section>",
        _tree_section(cm["a"], ("treemap-a", "treemap-b"), (f"A: {ta}", f"B: {tb}")).replace(
            "</h2>", '</h2><p class="note">Each tree fills its own pane: compare shares and the numbers on the '
            "boxes, not the areas across panes. A click zooms both trees to the same module.</p>", 1),
        '<section id="categories"><h2>Categories</h2><div class="chart" id="categories-chart"></div></section>',
        _module_table_section("Module deltas", "Own cost of each module (repeated blocks folded and summed), "
                              "so the changes add up to the change of the total; sorted by the size of the change."),
        '<section id="conventions"><h2>Notes</h2><ul>'
        + "".join(f"<li>{_esc(n)}</li>" for n in notes or ["Same model, dtype, counting conventions and hardware."])
        + "</ul></section>",
    ]
    return _page(f"fxmeter: {cm['title']}", "".join(body), cm)
