"""What dominates a report: top modules, categories and ops (``fxmeter top``).

Library functions return plain data (:class:`TopTable`); :func:`render_top`
and the ``top`` click command are thin renderers of it.  Repeated structures
fold: the 40 ``transformer.blocks.N.attn1`` of Wan2.1-14B become one row
``transformer.blocks.*.attn1`` with ``count == 40`` and the sum of their costs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from fxmeter.errors import ReportError
from fxmeter.report.summary import natural_key, with_unit

METRICS = ("tensor_core_flops", "cuda_core_flops", "flops", "bytes")
BY = ("module", "category", "op")
PLURAL = {"module": "modules", "category": "categories", "op": "ops"}
BAR_WIDTH = 24
_DIGITS = re.compile(r"\d+")


def metric_value(d: Mapping[str, int], metric: str) -> int:
    """One metric of a cost dict; ``bytes`` is bytes_read + bytes_written."""
    if metric == "bytes":
        return int(d["bytes_read"]) + int(d["bytes_written"])
    if metric not in METRICS:
        raise ReportError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    return int(d[metric])


# -- folding --------------------------------------------------------------
def foldable_parents(modules: Iterable[Mapping[str, Any]]) -> set[str]:
    """Parents whose numbered children are >= 2 instances of one class (e.g. ``transformer.blocks``).

    ``ff.net.0`` (GELU) and ``ff.net.2`` (Linear) differ in class, so ``ff.net`` does not fold.
    """
    classes: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    for m in modules:
        parent, _, last = str(m["id"]).rpartition(".")
        if parent and _DIGITS.fullmatch(last):
            classes.setdefault(parent, set()).add(str(m["class"]))
            counts[parent] = counts.get(parent, 0) + 1
    return {p for p, c in classes.items() if len(c) == 1 and counts[p] >= 2}


def folded(key: str, count: int, how: str = "summed") -> str:
    """The label of a folded row: ``blocks.*.attn1 (40 blocks, summed)``; ``how="each"`` for one instance's value."""
    if count <= 1:
        return key
    return f"{key} (each of {count})" if how == "each" else f"{key} ({count} blocks, summed)"


def fold_id(module_id: str, parents: set[str]) -> str:
    """``transformer.blocks.7.attn1`` -> ``transformer.blocks.*.attn1`` when ``transformer.blocks`` folds."""
    parts = module_id.split(".")
    for i in range(1, len(parts)):
        if _DIGITS.fullmatch(parts[i]) and ".".join(parts[:i]) in parents:
            parts[i] = "*"
    return ".".join(parts)


@dataclass(frozen=True)
class Group:
    """Modules that fold to one id: their summed costs and how many there are."""

    id: str
    cls: str
    depth: int
    count: int
    parameters: int
    per_forward: dict[str, int]
    self: dict[str, int]


def _add(a: dict[str, int], b: Mapping[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + int(v) for k, v in b.items()}


def group_modules(data: Mapping[str, Any], fold: bool = True) -> dict[str, Group]:
    """Module rows keyed by (folded) id, in natural id order; costs summed over each group."""
    mods = data["modules"]
    parents = foldable_parents(mods) if fold else set()
    acc: dict[str, dict[str, Any]] = {}
    for m in mods:
        gid = fold_id(m["id"], parents)
        g = acc.get(gid)
        if g is None:
            acc[gid] = {"cls": m["class"], "depth": m["depth"], "count": 1, "parameters": int(m["parameters"]),
                        "per_forward": dict(m["per_forward"]), "self": dict(m["self"])}
        else:
            g["count"] += 1
            g["parameters"] += int(m["parameters"])
            g["per_forward"] = _add(g["per_forward"], m["per_forward"])
            g["self"] = _add(g["self"], m["self"])
            if g["cls"] != m["class"]:
                g["cls"] = "(mixed)"
    return {
        gid: Group(gid, g["cls"], g["depth"], g["count"], g["parameters"], g["per_forward"], g["self"])
        for gid, g in sorted(acc.items(), key=lambda kv: natural_key(kv[0].replace("*", "0")))
    }


# -- top ------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    """One ranked entry: ``key`` (module id, category or op), its value and share of the total."""

    key: str
    value: int
    share: float
    count: int
    label: str


@dataclass(frozen=True)
class TopTable:
    """The ranked rows of ``fxmeter top``; ``total`` is the report's per-forward total of ``metric``."""

    by: str
    metric: str
    basis: str
    total: int
    rows: tuple[Row, ...]
    omitted: int
    model: str
    workload: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ranked(items: Iterable[tuple[str, int, int, str]], total: int, k: int) -> tuple[tuple[Row, ...], int]:
    """Nonzero items sorted by value (desc), ties by natural key; the first ``k`` and how many were cut."""
    nz = [it for it in items if it[1] != 0]
    nz.sort(key=lambda it: (-it[1], natural_key(it[0].replace("*", "0")), it[0]))
    rows = tuple(Row(key, v, v / total if total else 0.0, n, label) for key, v, n, label in nz[:k])
    return rows, max(0, len(nz) - k)


def top(
    report: Any,
    by: str = "module",
    metric: str = "tensor_core_flops",
    k: int = 10,
    *,
    depth: int | None = None,
    fold: bool = True,
) -> TopTable:
    """Rank a report's modules, categories or ops by one per-forward metric.

    Args:
        report: a :class:`~fxmeter.report.Report`, a report document (validated
            against the report schema), or a path to report.json, its folder or a run folder.
        by: ``module`` (own cost of each module, or total cost at ``depth``),
            ``category`` (the report's categories) or ``op`` (nodes grouped by aten target, x replicas).
        metric: tensor_core_flops, cuda_core_flops, flops or bytes (read + written).
        k: how many rows.
        depth: rank modules at this depth by their total (children included);
            None ranks every module by its own nodes' cost (the leaf-level view).
        fold: fold numbered instances of one class (``blocks.*``) into one row.

    Raises:
        ReportError: a bad argument, or ``report`` is not a valid fxmeter report.
    """
    from fxmeter.report.document import Report, validate

    if isinstance(report, (str, Path)):
        data = Report.load(report).data
    elif isinstance(report, Report):
        data = validate(report.data)
    else:
        data = validate(report)
    return rank(data, by, metric, k, depth=depth, fold=fold)


def rank(data: Mapping[str, Any], by: str = "module", metric: str = "tensor_core_flops", k: int = 10, *,
         depth: int | None = None, fold: bool = True) -> TopTable:
    """:func:`top` of a report document known to be valid (fxmeter's own renderers)."""
    if by not in BY:
        raise ReportError(f"unknown --by {by!r}; choose one of {', '.join(BY)}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ReportError(f"-k must be a positive integer, got {k!r}")
    if metric not in METRICS:
        raise ReportError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
        raise ReportError(f"--depth must be an integer >= 0, got {depth!r}")
    total = metric_value(data["totals"]["per_forward"], metric)
    items: list[tuple[str, int, int, str]] = []
    if by == "module":
        groups = group_modules(data, fold).values()
        if depth is None:
            basis = "own ops of each module"
            items = [(g.id, metric_value(g.self, metric), g.count, g.cls) for g in groups]
        else:
            basis = f"modules at depth {depth} (children included)"
            items = [(g.id, metric_value(g.per_forward, metric), g.count, g.cls) for g in groups if g.depth == depth]
    elif by == "category":
        basis = "report categories"
        items = [(name, metric_value(c, metric), 1, "") for name, c in data["categories"].items()]
    else:
        basis = "graph nodes by aten target, x replicas"
        acc: dict[str, list[int]] = {}
        for n in data.get("nodes", []):
            a = acc.setdefault(n["target"], [0, 0])
            a[0] += metric_value(n["per_forward"], metric) * int(n["replicas"])
            a[1] += int(n["replicas"])
        if not acc:
            raise ReportError("this report has no node list (traced with include_nodes=False); use --by module or category")
        items = [(t, v, c, "") for t, (v, c) in acc.items()]
    rows, omitted = _ranked(items, total, k)
    return TopTable(by, metric, basis, total, rows, omitted, str(data["model"]["id"]), str(data["workload"]["name"]))


def bar(share: float, width: int = BAR_WIDTH) -> str:
    """A text bar for a share in [0, 1] (eighth-blocks for the remainder)."""
    share = min(max(share, 0.0), 1.0)
    eighths = round(share * width * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + ("" if rest == 0 else " ▏▎▍▌▋▊▉"[rest])


def _key(t: TopTable, r: Row) -> str:
    return folded(r.key, r.count) if t.by == "module" else r.key


def render_top(t: TopTable) -> str:
    """The console table of a :class:`TopTable`."""
    keyw = max([len(_key(t, r)) for r in t.rows] + [len(t.by)])
    units = [with_unit(r.value, t.metric) for r in t.rows]
    unitw = max([len(u) for u in units] + [4])
    lines = [
        f"{t.model} @ {t.workload}: top {PLURAL[t.by]} by {t.metric} per forward ({t.basis})",
        f"total {t.total:,} ({with_unit(t.total, t.metric)})",
        "",
        f"{t.by:<{keyw}}  {t.metric:>26}  {'':>{unitw}}  {'share':>7}",
    ]
    for r, u in zip(t.rows, units):
        extra = f"  {r.label}" if t.by == "module" else (f"  {r.count} calls" if t.by == "op" else "")
        lines.append(f"{_key(t, r):<{keyw}}  {r.value:>26,}  {u:>{unitw}}  {100 * r.share:>6.2f}%  {bar(r.share):<{BAR_WIDTH}}{extra}".rstrip())
    if not t.rows:
        lines.append("(nothing nonzero)")
    if t.omitted:
        lines.append(f"... {t.omitted} more nonzero {PLURAL[t.by]} (raise -k)")
    return "\n".join(lines)


@click.command("top")
@click.argument("report", type=click.Path())
@click.option("-k", "k", type=int, default=10, show_default=True, help="How many rows.")
@click.option("--by", type=click.Choice(BY), default="module", show_default=True, help="Rank modules, categories or ops.")
@click.option("--metric", type=click.Choice(METRICS), default="tensor_core_flops", show_default=True,
              help="Per-forward metric (bytes = read + written).")
@click.option("--depth", type=int, default=None,
              help="Rank modules at this depth by total cost; default: every module by its own ops.")
@click.option("--no-fold", is_flag=True, help="Show numbered blocks one by one instead of 'blocks.* (N blocks, summed)'.")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
def top_command(report: str, k: int, by: str, metric: str, depth: int | None, no_fold: bool, as_json: bool) -> None:
    """What dominates REPORT (a report.json, its folder or a run folder): top modules, categories or ops."""
    from fxmeter.cli.main import handle_errors

    @handle_errors
    def run() -> None:
        from fxmeter.report.document import Report, dumps

        t = rank(Report.load(report).data, by, metric, k, depth=depth, fold=not no_fold)
        if as_json:
            click.echo(dumps(t.to_dict()).decode())
        else:
            click.echo(render_top(t))

    run()
