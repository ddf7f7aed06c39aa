"""summary.md and its charts, rendered from the report document alone (re-renderable).

``render(data)`` gives the markdown; ``render_files(data)`` the files that go
beside report.json: summary.md plus two PNG charts (top categories, FLOPs per
block) drawn with matplotlib's Agg backend, imported only when charts are drawn.
``fxmeter summary REPORT.json`` re-renders them from report.json.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import click

LOG = logging.getLogger(__name__)
CHART_CATEGORIES = "summary_categories.png"
CHART_BLOCKS = "summary_blocks.png"


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23 M'; exact integers stay in report.json."""
    for div, suffix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            if abs(n) >= 1e300:  # past a float's range: exact scientific notation
                return f"{Decimal(n):.2e} {unit}".strip()
            return f"{n / div:.2f} {suffix}{unit}"
    return f"{n:g} {unit}".strip()


def human_bytes(n: float) -> str:
    for div, suffix in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(n) >= div:
            if abs(n) >= 1e300:
                return f"{Decimal(n):.2e} B"
            return f"{n / div:.2f} {suffix}"
    return f"{int(n)} B"


def si_bytes(n: float) -> str:
    """28635351168 -> '28.64 GB / 26.67 GiB' (decimal and binary); under 1 kB just bytes."""
    if abs(n) < 1000:
        return f"{int(n)} B"
    return f"{human(n, 'B')} / {human_bytes(n)}"


def with_unit(n: float, metric: str) -> str:
    """A value of a named quantity for people: FLOPs in FLOP (SI), bytes in GB / GiB, counts as is."""
    if "bytes" in metric:
        return si_bytes(n)
    if "flops" in metric or metric == "flop":
        return human(n, "FLOP")
    return f"{n:,}" if isinstance(n, int) else f"{n:g}"


def top_modules(
    data: dict[str, Any], k: int = 10, metric: str = "tensor_core_flops", *, by_self: bool = True
) -> list[dict[str, Any]]:
    """Modules ranked by their own nodes' ``metric`` (``by_self``) or by leaf-most totals."""
    mods = data["modules"]
    if by_self:
        ranked = [m for m in mods if m["self"][metric] > 0]
        return sorted(ranked, key=lambda m: (-m["self"][metric], natural_key(m["id"])))[:k]
    children: dict[str, list[dict[str, Any]]] = {}
    for m in mods:
        if m["parent"]:
            children.setdefault(m["parent"], []).append(m)
    leaves = [
        m
        for m in mods
        if m["per_forward"][metric] > 0 and not any(c["per_forward"][metric] > 0 for c in children.get(m["id"], []))
    ]
    return sorted(leaves, key=lambda m: (-m["per_forward"][metric], natural_key(m["id"])))[:k]


def natural_key(module_id: str) -> tuple[Any, ...]:
    """blocks.2 before blocks.10."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in module_id.split("."))


def _cell(text: str) -> str:
    """Escape what would break a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def render(data: dict[str, Any], charts: Sequence[tuple[str, str]] = ()) -> str:
    """summary.md text; ``charts`` are (alt text, file name) pairs linked under "Charts"."""
    from fxmeter.report.top import rank

    wl, model, tot, mem = data["workload"], data["model"], data["totals"], data["memory"]
    pf, e2e = tot["per_forward"], tot["end_to_end"]
    out: list[str] = []
    out.append(f"# fxmeter: {model['id']} @ {wl['name']}\n")
    out.append(
        f"`{model['diffusers_class']}` ({model['parameters']:,} parameters, {wl['dtype']}), "
        f"traced with {data['trace']['exporter']} ({data['trace']['mode']} shapes).\n"
    )
    out.append("## Workload\n")
    out.append("| knob | value |\n|---|---|")
    for k in ("frames", "height", "width", "steps", "batch", "text_len", "guidance_scale", "passes_per_step"):
        out.append(f"| {k} | {wl[k]} |")
    out.append(f"| latent shape | {' x '.join(map(str, wl['latent_shape']))} |")
    out.append(f"| tokens | {wl['tokens']:,} |\n")
    out.append("## Totals\n")
    out.append("| metric | per forward | end to end |\n|---|---:|---:|")
    for k in ("tensor_core_flops", "cuda_core_flops", "flops", "bytes_read", "bytes_written"):
        out.append(f"| {k} | {pf[k]:,} ({with_unit(pf[k], k)}) | {e2e[k]:,} ({with_unit(e2e[k], k)}) |")
    out.append(
        f"\nEnd to end = per forward x {wl['steps']} steps x {wl['passes_per_step']} passes per step "
        f"= {human(e2e['flops'], 'FLOP')}.\n"
    )
    out.append("## Memory\n")
    out.append("| item | bytes |\n|---|---:|")
    out.append(f"| weights | {mem['weight_bytes']:,} ({si_bytes(mem['weight_bytes'])}) |")
    for dt, b in mem["weight_bytes_by_dtype"].items():
        out.append(f"| weights in {_cell(dt)} | {b:,} ({si_bytes(b)}) |")
    out.append(f"| peak activations | {mem['activation_peak_bytes']:,} ({si_bytes(mem['activation_peak_bytes'])}) |")
    out.append(f"| weights + peak activations | {mem['total_bytes']:,} ({si_bytes(mem['total_bytes'])}) |\n")
    out.append("## Top modules (own tensor-core FLOPs per forward)\n")
    t = rank(data, "module", "tensor_core_flops", 10)
    fold = next((r for r in t.rows if r.count > 1), None)
    if fold is not None:
        out.append(f"Repeated blocks are folded: `{fold.key}` ({fold.count} blocks, summed) is the sum over its "
                   f"{fold.count} instances; one instance costs 1/{fold.count} of the row.\n")
    out.append("| module | class | tensor-core FLOPs | share |\n|---|---|---:|---:|")
    for r in t.rows:
        count = f" ({r.count} blocks, summed)" if r.count > 1 else ""
        out.append(f"| `{_cell(r.key)}`{count} | {_cell(r.label)} | {r.value:,} ({human(r.value, 'FLOP')}) | {100 * r.share:.2f}% |")
    if not t.rows:
        out.append("| (no tensor-core FLOPs) | | 0 | |")
    out.append("\n## Top categories (per forward)\n")
    out.append("| category | tensor-core FLOPs | share | CUDA-core FLOPs | bytes read+written |\n|---|---:|---:|---:|---:|")
    cats = sorted(data["categories"].items(), key=lambda kv: (-kv[1]["flops"], kv[0]))
    for name, c in cats[:5]:
        moved = c["bytes_read"] + c["bytes_written"]
        out.append(
            f"| {_cell(name)} | {c['tensor_core_flops']:,} ({human(c['tensor_core_flops'], 'FLOP')}) | "
            f"{100 * c['tensor_core_share']:.2f}% | {c['cuda_core_flops']:,} ({human(c['cuda_core_flops'], 'FLOP')}) | "
            f"{moved:,} ({si_bytes(moved)}) |"
        )
    if len(cats) > 5:
        out.append(f"\n{len(cats) - 5} more categories in report.json (`fxmeter top REPORT --by category -k 20`).")
    out.append("\n## Charts\n")
    if charts:
        out.append("\n\n".join(f"![{alt}]({name})" for alt, name in charts))
    else:
        out.append("Not drawn for this run (they cost ~1 s): `fxmeter summary report.json` adds them here, "
                   "as does `fxmeter trace --plots`.")
    if data.get("hardware"):  # roofline time table and fit (fxmeter.roofline)
        out.append("\n" + __import__("fxmeter.estimate.roofline", fromlist=["render_markdown"]).render_markdown(data))
    out.append("\n## Unmodeled ops\n")
    if data["unmodeled_ops"]:
        out.append("| op | count | modules |\n|---|---:|---|")
        for u in data["unmodeled_ops"]:
            mods = ", ".join(f"`{x}`" for x in u["modules"][:5]) + (" ..." if len(u["modules"]) > 5 else "")
            out.append(f"| `{_cell(u['op'])}` | {u['count']} | {mods} |")
    else:
        out.append("None: every op in the graph has a rule or is on the free list.")
    out.append("\n## Notes\n")
    out.extend(f"- {n}" for n in data["notes"])
    return "\n".join(out) + "\n"


def render_files(data: dict[str, Any], *, plots: bool = True) -> dict[str, bytes]:
    """Files that go beside report.json: summary.md and (``plots``) its PNG charts.

    Without matplotlib the charts are left out with a warning; the markdown then links none.
    """
    pngs: dict[str, bytes] = {}
    charts: list[tuple[str, str]] = []
    if plots:
        try:
            pngs = charts_png(data)
        except ImportError as e:  # pragma: no cover - matplotlib is a dependency
            LOG.warning("no charts (%s); install matplotlib", e)
        if data.get("hardware"):  # the roofline picture (fxmeter.roofline)
            pngs.update(__import__("fxmeter.estimate.roofline", fromlist=["render_files"]).render_files(data))
        alts = {CHART_CATEGORIES: "FLOPs per forward by category", CHART_BLOCKS: "FLOPs per forward of each block",
                "summary_roofline.png": "Modules by arithmetic intensity against the device roofline"}
        charts = [(alts[n], n) for n in pngs]
    return {"summary.md": render(data, charts).encode(), **pngs}


def block_list(data: dict[str, Any]) -> tuple[str, list[dict[str, Any]]] | None:
    """The largest list of numbered same-class modules (Wan: ``transformer.blocks``) and its members."""
    from fxmeter.report.top import foldable_parents

    mods = data["modules"]
    parents = foldable_parents(mods)
    if not parents:
        return None
    members: dict[str, list[dict[str, Any]]] = {p: [] for p in parents}
    for m in mods:
        if m["parent"] in members and m["id"].rpartition(".")[2].isdigit():
            members[m["parent"]].append(m)
    best = min(parents, key=lambda p: (-len(members[p]), natural_key(p)))
    return best, sorted(members[best], key=lambda m: natural_key(m["id"]))


def _unit(values: Sequence[float]) -> tuple[float, str]:
    top_value = max(values, default=0)
    for div, suffix in ((1e15, "PFLOP"), (1e12, "TFLOP"), (1e9, "GFLOP"), (1e6, "MFLOP")):
        if top_value >= div:
            return div, suffix
    return 1.0, "FLOP"


def charts_png(data: dict[str, Any]) -> dict[str, bytes]:
    """The summary's charts as PNG bytes: top categories and per-block FLOPs (matplotlib, Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def png(fig: Figure) -> bytes:
        buf = io.BytesIO()
        FigureCanvasAgg(fig).print_png(buf, metadata={"Software": None})
        return buf.getvalue()

    title = f"{data['model']['id']} @ {data['workload']['name']}"
    out: dict[str, bytes] = {}
    cats = sorted(data["categories"].items(), key=lambda kv: (-kv[1]["flops"], kv[0]))[:8]
    if cats:
        names = [c for c, _ in cats][::-1]
        tc = [v["tensor_core_flops"] for _, v in cats][::-1]
        cc = [v["cuda_core_flops"] for _, v in cats][::-1]
        div, unit = _unit([a + b for a, b in zip(tc, cc)])
        total = data["totals"]["per_forward"]["flops"] or 1
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
        out[CHART_CATEGORIES] = png(fig)
    bl = block_list(data)
    if bl is not None:
        parent, blocks = bl
        kids: dict[str, dict[str, int]] = {}
        for m in data["modules"]:
            p = m["parent"]
            if p is not None and p.rpartition(".")[0] == parent and p.rpartition(".")[2].isdigit():
                kids.setdefault(m["id"].rpartition(".")[2], {})[p] = m["per_forward"]["flops"]
        idx = [b["id"].rpartition(".")[2] for b in blocks]
        series = {name: [v.get(b["id"], 0) for b in blocks] for name, v in sorted(kids.items())}
        big = max((b["per_forward"]["flops"] for b in blocks), default=0)
        series = {k: v for k, v in series.items() if max(v) * 100 >= big}  # parts under 1% go to "other"
        other = [b["per_forward"]["flops"] - sum(v[i] for v in series.values()) for i, b in enumerate(blocks)]
        if any(other):
            series["other"] = other
        div, unit = _unit([b["per_forward"]["flops"] for b in blocks])
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
        out[CHART_BLOCKS] = png(fig)
    return out


def headline(data: dict[str, Any]) -> str:
    """The few console lines `fxmeter trace` prints."""
    wl, tot, mem = data["workload"], data["totals"], data["memory"]
    pf, e2e = tot["per_forward"], tot["end_to_end"]
    from fxmeter.report.top import folded, rank

    lines = [
        f"{data['model']['id']} @ {wl['name']}: {wl['tokens']:,} tokens (latent {'x'.join(map(str, wl['latent_shape']))}), "
        f"{wl['steps']} steps x {wl['passes_per_step']} passes",
        f"  tensor-core FLOPs per forward  {pf['tensor_core_flops']:>28,}  ({human(pf['tensor_core_flops'], 'FLOP')})",
        f"  CUDA-core FLOPs per forward    {pf['cuda_core_flops']:>28,}  ({human(pf['cuda_core_flops'], 'FLOP')})",
        f"  FLOPs end to end               {e2e['flops']:>28,}  ({human(e2e['flops'], 'FLOP')})",
        f"  weights {human_bytes(mem['weight_bytes'])}, peak activations {human_bytes(mem['activation_peak_bytes'])}",
        "  top modules (own tensor-core FLOPs): "
        + ", ".join(
            f"{folded(r.key.removeprefix('transformer.'), r.count)} {100 * r.share:.1f}%"
            for r in rank(data, "module", "tensor_core_flops", 3).rows
        ),
    ]
    return "\n".join(lines)


@click.command("summary")
@click.argument("report", type=click.Path())
@click.option("--no-plots", is_flag=True, help="Write summary.md only (no matplotlib charts).")
@click.option("-o", "--output-dir", type=click.Path(), default=None, help="Where to write; default: beside REPORT.")
def summary_command(report: str, no_plots: bool, output_dir: str | None) -> None:
    """Re-render summary.md (and its charts) from REPORT (a report.json or its folder)."""
    from fxmeter.cli.main import handle_errors

    @handle_errors
    def run() -> None:
        from pathlib import Path

        from fxmeter.errors import ReportError
        from fxmeter.report.document import Report, write_files

        src = Path(report)
        rep = Report.load(src)
        if output_dir is not None and not output_dir.strip():
            raise ReportError("empty --output-dir: name a folder, or leave -o out to write beside REPORT")
        out = Path(output_dir) if output_dir else (rep.path or src).parent  # beside the report.json read
        for p in write_files(out, render_files(rep.data, plots=not no_plots), "the summary"):
            click.echo(f"wrote {p}")

    run()
