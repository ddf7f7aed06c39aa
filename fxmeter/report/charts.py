"""PNG charts of a report (matplotlib's Agg backend, imported only when a chart is drawn).

* ``summary_categories.png``: FLOPs per forward by category (tensor-core and CUDA-core).
* ``summary_blocks.png``: FLOPs of each block of the largest repeated list, split by part.
* ``summary_roofline.png``: leaf modules by arithmetic intensity against the FLOP/s they achieve in
  the predicted time (kernel model), under the device's roofs (reports with a device).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from fxmeter.cost.tree import foldable_parents, natural_key, representative_id
from fxmeter.estimate.roofline import LIMITERS
from fxmeter.report.document import ModuleRow, ReportDocument

CHART_CATEGORIES = "summary_categories.png"
CHART_BLOCKS = "summary_blocks.png"
CHART_ROOFLINE = "summary_roofline.png"
ALTS = {CHART_CATEGORIES: "FLOPs per forward by category", CHART_BLOCKS: "FLOPs per forward of each block",
        CHART_ROOFLINE: "Transformer modules: arithmetic intensity against the FLOP/s they achieve in the predicted "
                        "time (kernel model), under the device roofline"}


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf, metadata={"Software": None})
    return buf.getvalue()


def _unit(values: Sequence[float]) -> tuple[float, str]:
    top_value = max(values, default=0)
    for div, suffix in ((1e15, "PFLOP"), (1e12, "TFLOP"), (1e9, "GFLOP"), (1e6, "MFLOP")):
        if top_value >= div:
            return div, suffix
    return 1.0, "FLOP"


def block_list(rep: ReportDocument) -> tuple[str, list[ModuleRow]] | None:
    """The largest list of numbered same-class modules (Wan: ``transformer.blocks``) and its members."""
    parents = foldable_parents((m.id, m.cls) for m in rep.modules)
    if not parents:
        return None
    members: dict[str, list[ModuleRow]] = {p: [] for p in parents}
    for m in rep.modules:
        if m.parent in members and m.id.rpartition(".")[2].isdigit():
            members[m.parent].append(m)
    best = min(parents, key=lambda p: (-len(members[p]), natural_key(p)))
    return best, sorted(members[best], key=lambda m: natural_key(m.id))


def charts_png(rep: ReportDocument) -> dict[str, bytes]:
    """Every chart the report supports, as PNG bytes (file name -> bytes)."""
    from matplotlib.figure import Figure

    title = f"{rep.model.id} @ {rep.workload.name}"
    out: dict[str, bytes] = {}
    cats = sorted(rep.categories.items(), key=lambda kv: (-kv[1].metrics.flops, kv[0]))[:8]
    if cats:
        names = [c for c, _ in cats][::-1]
        tc = [v.metrics.tensor_core_flops for _, v in cats][::-1]
        cc = [v.metrics.cuda_core_flops for _, v in cats][::-1]
        div, unit = _unit([a + b for a, b in zip(tc, cc)])
        total = rep.totals.per_forward.metrics.flops or 1
        height = 0.42 * len(cats) + 1.3
        fig = Figure(figsize=(8, height), dpi=100)  # fixed margins: constrained layout costs ~0.3 s
        fig.subplots_adjust(left=0.25, right=0.97, top=1 - 0.45 / height, bottom=0.6 / height)
        ax = fig.add_subplot()
        pos = list(range(len(names)))
        ax.barh(pos, [v / div for v in tc], color="#4c72b0", label="tensor-core")
        ax.barh(pos, [v / div for v in cc], left=[v / div for v in tc], color="#dd8452", label="CUDA-core")
        ax.set_yticks(pos, names)
        for i, (a, b) in enumerate(zip(tc, cc)):
            share = 100 * (a + b) / total
            ax.text((a + b) / div, i, f" {share:.1f}%" if share >= 0.1 or not a + b else " <0.1%", va="center", fontsize=9)
        ax.set_xlabel(f"{unit} per forward")
        ax.set_title(f"{title}: FLOPs by category (top {len(cats)})", fontsize=11)
        ax.margins(x=0.12)
        ax.legend(loc="lower right", fontsize=9)
        out[CHART_CATEGORIES] = _png(fig)
    bl = block_list(rep)
    if bl is not None:
        parent, blocks = bl
        kids: dict[str, dict[str, int]] = {}
        for m in rep.modules:
            p = m.parent
            if p is not None and p.rpartition(".")[0] == parent and p.rpartition(".")[2].isdigit():
                kids.setdefault(m.id.rpartition(".")[2], {})[p] = m.per_forward.flops
        idx = [b.id.rpartition(".")[2] for b in blocks]
        series = {name: [v.get(b.id, 0) for b in blocks] for name, v in sorted(kids.items())}
        big = max((b.per_forward.flops for b in blocks), default=0)
        series = {k: v for k, v in series.items() if max(v) * 100 >= big}  # parts under 1% go to "other"
        other = [b.per_forward.flops - sum(v[i] for v in series.values()) for i, b in enumerate(blocks)]
        if any(other):
            series["other"] = other
        div, unit = _unit([b.per_forward.flops for b in blocks])
        fig = Figure(figsize=(8, 3.6), dpi=100)
        fig.subplots_adjust(left=0.09, right=0.85, top=0.9, bottom=0.14)
        ax = fig.add_subplot()
        pos = list(range(len(blocks)))
        bottom = [0.0] * len(blocks)
        for name, vals in series.items():
            ax.bar(pos, [v / div for v in vals], bottom=bottom, label=name, width=0.8)
            bottom = [a + v / div for a, v in zip(bottom, vals)]
        ax.set_xticks(pos, idx)
        ax.set_xlim(-0.7, len(blocks) - 0.3)
        ax.set_xlabel(f"{parent.split('.', 1)[-1]} index")
        ax.set_ylabel(f"{unit} per forward")
        ax.set_title(f"{title}: FLOPs of each of the {len(blocks)} {parent.split('.')[-1]}", fontsize=11)
        ax.tick_params(axis="x", labelsize=7 if len(blocks) > 20 else 9)
        ax.legend(fontsize=9, loc="center left", bbox_to_anchor=(1.0, 0.5), title="part", title_fontsize=9)
        out[CHART_BLOCKS] = _png(fig)
    if rep.hardware is not None:
        out[CHART_ROOFLINE] = roofline_png(rep)
    return out


def roofline_png(rep: ReportDocument) -> bytes:
    """summary_roofline.png: :func:`roofline_figure` as PNG bytes."""
    return _png(roofline_figure(rep))


def roofline_figure(rep: ReportDocument) -> Any:
    """Leaf modules (one per distinct class and representative) at the FLOP/s they achieve in the predicted
    time, against the device's roofs."""
    from matplotlib.figure import Figure

    hw = rep.hardware
    assert hw is not None
    peaks = hw.peaks_used
    bw = peaks["bytes_per_s"]
    tc = peaks["tensor_core_flops_per_s_matmul"]
    cc = peaks["cuda_core_flops_per_s"]
    # achieved FLOP/s = FLOPs / the PREDICTED seconds (kernel model): how far under the roof each module runs;
    # at the bound seconds every point would sit on the roof by construction
    mods = [m for m in rep.modules if m.times is not None and m.times.predicted_seconds and m.times.arithmetic_intensity]
    kids = {m.parent for m in mods}
    leaves = [m for m in mods if m.id not in kids and m.depth >= 1]
    root = rep.modules[0].id if rep.modules else "transformer"
    seen: dict[tuple[str, str], ModuleRow] = {}
    for m in leaves:
        seen.setdefault((m.cls, representative_id(m.id, root, rep.trace.replicated_blocks)), m)
    fig = Figure(figsize=(8, 5), dpi=100)
    fig.subplots_adjust(left=0.11, right=0.97, top=0.9, bottom=0.12)
    ax = fig.add_subplot()
    xs = [10 ** (i / 20) for i in range(-40, 101)]  # 0.01 .. 1e5 FLOP/byte
    ax.plot(xs, [min(tc, bw * x) for x in xs], color="black", lw=1.5, label=f"tensor-core roof ({tc / 1e12:.0f} TFLOP/s)")
    ax.plot(xs, [min(cc, bw * x) for x in xs], color="gray", lw=1.2, ls="--", label=f"CUDA-core roof ({cc / 1e12:.0f} TFLOP/s)")
    colors = {"tensor_core": "#4c72b0", "cuda_core": "#dd8452", "memory": "#55a868"}
    for limiter in LIMITERS:
        pts = [(m.times.arithmetic_intensity, m.per_forward.flops / m.times.predicted_seconds) for m in seen.values()
               if m.times is not None and m.times.limiter == limiter and m.times.arithmetic_intensity
               and m.times.predicted_seconds]
        if not pts:
            continue
        ax.scatter([float(x) for x, _ in pts if x], [y for _, y in pts],
                   s=22, color=colors[limiter], label=f"{limiter}-bound modules", zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP / byte moved)")
    ax.set_ylabel("achieved FLOP/s in the predicted time (kernel model)")
    ax.set_title(f"{rep.model.id} @ {rep.workload.name} on {hw.label}: transformer modules, one forward\n"
                 "achieved = FLOPs / predicted seconds; colour = the roof that bounds it", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return fig
