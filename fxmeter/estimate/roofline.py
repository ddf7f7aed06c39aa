"""Roofline time on a device: per node, per module, per forward, per step, end to end.

Per node: ``time = max(tc_flops / (tc_peak * e_tc), cuda_flops / (cuda_peak * e_cuda),
bytes / (bandwidth * e_bw))`` and the term that wins names the bound
(``tensor_core``, ``cuda_core`` or ``memory``).  Efficiencies default to 1.0: the pure
roofline lower bound.  A module's time is the sum of its nodes' times (every
instance of a replicated block); its bound is the resource that accounts for most
of that time.  Computed from the evaluated report (``report["nodes"]``), pure
Python: no torch, no sympy, no numpy.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from typing import Any

from fxmeter.estimate.hardware import Hardware

LOG = logging.getLogger(__name__)

BOUNDS = ("tensor_core", "cuda_core", "memory")
CHART = "summary_roofline.png"
#: families whose tensor-core FLOPs run at the ``--precision`` peak (attention stays bf16).
PRECISION_FAMILIES = frozenset({"matmul", "conv"})


def node_time(cost: Mapping[str, int], tc_peak: float, cuda_peak: float, bandwidth: float,
              eff: Mapping[str, float]) -> tuple[float, str]:
    """(seconds, bound) of one node's costs."""
    terms = (
        (cost["tensor_core_flops"] / (tc_peak * eff["tc"]), "tensor_core"),
        (cost["cuda_core_flops"] / (cuda_peak * eff["cuda"]), "cuda_core"),
        ((cost["bytes_read"] + cost["bytes_written"]) / (bandwidth * eff["bw"]), "memory"),
    )
    t, bound = max(terms, key=lambda x: x[0])
    return t, bound


def _representative(module_id: str, replicas: Mapping[str, int]) -> str:
    """``transformer.blocks.7.attn1`` -> ``transformer.blocks.0.attn1`` for replicated lists."""
    from fxmeter.cost.analyze import ROOT
    from fxmeter.cost.analyze import _representative as rep_path

    if not module_id.startswith(f"{ROOT}."):
        return module_id
    return f"{ROOT}." + rep_path(module_id[len(ROOT) + 1 :], dict(replicas))


def apply(data: dict[str, Any], hw: Hardware, *, precision: str = "bf16", efficiency: Mapping[str, float] | None = None) -> None:
    """Add ``hardware``, per-module ``predicted_seconds``/``bound``/``arithmetic_intensity``
    and ``totals.*.predicted_seconds`` to a report document (in place)."""
    eff = {"tc": 1.0, "cuda": 1.0, "bw": 1.0, **(efficiency or {})}
    base = "fp16" if data["workload"].get("dtype") == "float16" else "bf16"
    tc_base = hw.tc_peak(base)
    tc_prec = hw.tc_peak(precision) if precision != "bf16" else tc_base
    cuda, bw = hw.cuda_core_fp32, hw.memory_bandwidth
    if not data.get("nodes"):
        raise ValueError("roofline needs the report's nodes (evaluate with include_nodes=True)")

    own: dict[str, dict[str, float]] = {}
    by_bound = dict.fromkeys(BOUNDS, 0.0)
    for n in data["nodes"]:
        tc = tc_prec if n["family"] in PRECISION_FAMILIES else tc_base
        t, bound = node_time(n["per_forward"], tc, cuda, bw, eff)
        n["predicted_seconds"] = t
        n["bound"] = bound
        acc = own.setdefault(n["module"], dict.fromkeys(BOUNDS, 0.0))
        acc[bound] += t
        by_bound[bound] += t * n["replicas"]

    replicas = data["trace"].get("replicated_blocks", {}) or {}
    children: dict[str, list[dict[str, Any]]] = {}
    for m in data["modules"]:
        if m["parent"] is not None:
            children.setdefault(m["parent"], []).append(m)
    total: dict[str, dict[str, float]] = {}
    for m in sorted(data["modules"], key=lambda m: -m["depth"]):
        acc = dict(own.get(m["id"]) or own.get(_representative(m["id"], replicas)) or dict.fromkeys(BOUNDS, 0.0))
        for c in children.get(m["id"], []):
            for b in BOUNDS:
                acc[b] += total[c["id"]][b]
        total[m["id"]] = acc
        secs = sum(acc.values())
        mine = own.get(m["id"]) or own.get(_representative(m["id"], replicas))
        m["self_predicted_seconds"] = sum(mine.values()) if mine else 0.0
        m["self_bound"] = max(BOUNDS, key=lambda b: mine[b]) if mine and m["self_predicted_seconds"] > 0 else None
        m["predicted_seconds"] = secs
        m["bound"] = max(BOUNDS, key=lambda b: acc[b]) if secs > 0 else None
        pf = m["per_forward"]
        moved = pf["bytes_read"] + pf["bytes_written"]
        m["arithmetic_intensity"] = pf["flops"] / moved if moved else None

    root = data["modules"][0]
    per_forward = root["predicted_seconds"]
    passes, steps = data["workload"]["passes_per_step"], data["workload"]["steps"]
    data["totals"]["per_forward"]["predicted_seconds"] = per_forward
    data["totals"]["per_step"]["predicted_seconds"] = per_forward * passes
    data["totals"]["end_to_end"]["predicted_seconds"] = per_forward * passes * steps
    data["hardware"] = {
        **hw.to_dict(),
        "precision": precision,
        "efficiency": dict(sorted(eff.items())),
        "peaks_used": {
            "tensor_core_flops_per_s": tc_base,
            "tensor_core_flops_per_s_matmul": tc_prec,
            "cuda_core_flops_per_s": cuda,
            "bytes_per_s": bw,
        },
        "ridge_point_flop_per_byte": {
            "tensor_core": tc_prec * eff["tc"] / (bw * eff["bw"]),
            "cuda_core": cuda * eff["cuda"] / (bw * eff["bw"]),
        },
        "model": "per node max(tc_flops/(tc_peak*e_tc), cuda_flops/(cuda_peak*e_cuda), bytes/(bandwidth*e_bw)); "
        "module = sum of its nodes; no overlap between nodes, no launch overhead",
        "seconds_by_bound_per_forward": dict(sorted(by_bound.items())),
    }


# -- presentation ----------------------------------------------------------------


def _fmt_s(s: float) -> str:
    if s >= 1:
        return f"{s:,.1f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def console_lines(data: Mapping[str, Any]) -> list[str]:
    """What `fxmeter trace --hardware` prints under the headline."""
    hw, tot, mem = data["hardware"], data["totals"], data["memory"]
    e = hw["efficiency"]
    lines = [
        f"  {hw['label']} ({hw['precision']}, efficiency tc={e['tc']:g} cuda={e['cuda']:g} bw={e['bw']:g}, "
        f"{data['counting']['traffic_model']} traffic): predicted {_fmt_s(tot['end_to_end']['predicted_seconds'])} end to end "
        f"({_fmt_s(tot['per_forward']['predicted_seconds'])} per forward)",
    ]
    fit = mem.get("fit")
    if fit:
        lines.append(f"  {fit['statement']}")
    return lines


def render_markdown(data: Mapping[str, Any]) -> str:
    """The summary.md section for a report with ``hardware``."""
    hw, tot, mem = data["hardware"], data["totals"], data["memory"]
    e = hw["efficiency"]
    out = ["## Predicted time (roofline)\n"]
    out.append(
        f"{hw['label']}, {hw['precision']} matmuls, {data['counting']['traffic_model']} traffic model, "
        f"efficiency tc={e['tc']:g} cuda={e['cuda']:g} bw={e['bw']:g} (1 = the peak: a lower bound). "
        f"Ridge point {hw['ridge_point_flop_per_byte']['tensor_core']:.0f} FLOP/byte (tensor cores), "
        f"{hw['ridge_point_flop_per_byte']['cuda_core']:.1f} FLOP/byte (CUDA cores).\n"
    )
    out.append("| scope | predicted seconds |\n|---|---:|")
    for k in ("per_forward", "per_step", "end_to_end"):
        out.append(f"| {k} | {tot[k]['predicted_seconds']:,.3f} |")
    sb = hw["seconds_by_bound_per_forward"]
    pf = tot["per_forward"]["predicted_seconds"] or 1.0
    out.append("\nPer forward, by what bounds each node: " + ", ".join(
        f"{b} {sb[b]:,.3f} s ({100 * sb[b] / pf:.1f}%)" for b in BOUNDS))
    from fxmeter.report.top import fold_id, foldable_parents

    parents = foldable_parents(data["modules"])
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for m in data["modules"]:
        if m.get("self_predicted_seconds"):
            groups.setdefault(fold_id(m["id"], parents), []).append(m)
    ranked = sorted(groups.items(), key=lambda kv: (-sum(m["self_predicted_seconds"] for m in kv[1]), kv[0]))
    out.append("\n| module (own nodes; folded blocks summed) | class | predicted s per forward | share | bound | FLOP/byte |")
    out.append("|---|---|---:|---:|---|---:|")
    for key, ms in ranked[:12]:
        m0, secs = ms[0], sum(m["self_predicted_seconds"] for m in ms)
        own_bytes = m0["self"]["bytes_read"] + m0["self"]["bytes_written"]
        ai = f"{m0['self']['flops'] / own_bytes:,.1f}" if own_bytes else "-"
        count = f" ({len(ms)} blocks, summed)" if len(ms) > 1 else ""
        out.append(f"| `{key}`{count} | {m0['class']} | {secs:.4f} | {100 * secs / pf:.1f}% | {m0['self_bound']} | {ai} |")
    fit = mem.get("fit")
    if fit:
        out.append(f"\n**Fit:** {fit['statement']}.")
    return "\n".join(out) + "\n"


def render_files(data: Mapping[str, Any]) -> dict[str, bytes]:
    """The roofline picture: leaf modules by arithmetic intensity against the device roof."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    hw = data["hardware"]
    peaks, e = hw["peaks_used"], hw["efficiency"]
    bw = peaks["bytes_per_s"] * e["bw"]
    tc = peaks["tensor_core_flops_per_s_matmul"] * e["tc"]
    cc = peaks["cuda_core_flops_per_s"] * e["cuda"]
    mods = [m for m in data["modules"] if m.get("predicted_seconds") and m.get("arithmetic_intensity")]
    kids = {m["parent"] for m in mods}
    leaves = [m for m in mods if m["id"] not in kids and m["depth"] >= 1]
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for m in leaves:  # one point per distinct (class, representative) module
        key = (m["class"], _representative(m["id"], data["trace"].get("replicated_blocks", {}) or {}))
        seen.setdefault(key, m)
    fig = Figure(figsize=(8, 5), dpi=100)
    fig.subplots_adjust(left=0.11, right=0.97, top=0.9, bottom=0.12)
    ax = fig.add_subplot()
    xs = [10 ** (i / 20) for i in range(-40, 101)]  # 0.01 .. 1e5 FLOP/byte
    ax.plot(xs, [min(tc, bw * x) for x in xs], color="black", lw=1.5, label=f"tensor-core roof ({tc / 1e12:.0f} TFLOP/s)")
    ax.plot(xs, [min(cc, bw * x) for x in xs], color="gray", lw=1.2, ls="--", label=f"CUDA-core roof ({cc / 1e12:.0f} TFLOP/s)")
    colors = {"tensor_core": "#4c72b0", "cuda_core": "#dd8452", "memory": "#55a868"}
    for bound in BOUNDS:
        pts = [m for m in seen.values() if m["bound"] == bound]
        if not pts:
            continue
        ax.scatter(
            [m["arithmetic_intensity"] for m in pts],
            [m["per_forward"]["flops"] / m["predicted_seconds"] for m in pts],
            s=22, color=colors[bound], label=f"{bound}-bound modules", zorder=3,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP / byte moved)")
    ax.set_ylabel("attained FLOP/s at the predicted time")
    ax.set_title(f"{data['model']['id']} @ {data['workload']['name']} on {hw['label']}", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf, metadata={"Software": None})
    return {CHART: buf.getvalue()}
