"""``fxmeter scale``'s result: one row per GPU count (time, speed-up, efficiency, memory and communication
share per GPU), as a console table, scale.json, scale.csv and scale.png.

:func:`fxmeter.api.scale` computes it from ONE single-GPU estimate (one symbolic model, evaluated once)
and one deployment per GPU count; this module renders and writes it.  ``report`` is the report of the
largest count with every row as its ``scaling`` section (``--html`` draws it).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fxmeter.base import fileio
from fxmeter.errors import ParallelError
from fxmeter.report.deployment import DeploymentInfo, ScalingRow, scaling_table
from fxmeter.report.document import ReportDocument

#: The most GPU counts one ``scale`` evaluates.
MAX_COUNTS = 64
COLUMNS = ("gpus", "parallel", "seconds", "speedup", "efficiency", "memory_per_gpu", "fits", "comm_share",
           "exposed_comm_seconds", "bound_seconds")


@dataclass(frozen=True)
class ScaleResult:
    """Rows per GPU count, each count's deployment, and the report of the largest count."""

    model: str
    workload: str
    hardware: str
    rows: tuple[ScalingRow, ...]
    deployments: tuple[DeploymentInfo, ...]
    report: ReportDocument
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "workload": self.workload, "hardware": self.hardware, "columns": list(COLUMNS),
                "rows": [r.to_dict() for r in self.rows], "deployments": [d.to_dict() for d in self.deployments],
                "notes": list(self.notes)}

    def to_json(self) -> bytes:
        return fileio.dumps(self.to_dict())

    def to_csv(self) -> bytes:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow(r.to_dict())
        return buf.getvalue().encode()

    def table(self) -> list[str]:
        head = f"{self.model} @ {self.workload} on {self.hardware}: one generation per GPU count"
        return [head, *scaling_table(self.rows), *(f"  ({n})" for n in self.notes)]


def gpu_counts(text: str | Sequence[int]) -> list[int]:
    """``"1,2,4,8"`` -> ``[1, 2, 4, 8]`` (positive, no repeats, at most :data:`MAX_COUNTS`)."""
    parts = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    out: list[int] = []
    for p in parts:
        if isinstance(p, bool) or not (isinstance(p, int) or (isinstance(p, str) and p.isdigit())):
            raise ParallelError(f"--gpus: {p!r} is not a positive integer (give a list such as 1,2,4,8)")
        n = int(p)
        if n < 1:
            raise ParallelError(f"--gpus: a GPU count must be positive, got {n}")
        if n in out:
            raise ParallelError(f"--gpus names {n} twice")
        out.append(n)
    if not out:
        raise ParallelError("--gpus is empty: give the GPU counts, e.g. 1,2,4,8")
    if len(out) > MAX_COUNTS:
        raise ParallelError(f"--gpus names {len(out)} counts; at most {MAX_COUNTS}")
    return out


def plot_png(result: ScaleResult) -> bytes:
    """scale.png: :func:`figure` as PNG bytes (matplotlib Agg, lazy)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buf = io.BytesIO()
    FigureCanvasAgg(figure(result)).print_png(buf, metadata={"Software": None})
    return buf.getvalue()


def figure(result: ScaleResult) -> Any:
    """Seconds per generation (bars) and parallel efficiency (line) per GPU count; a count that does not fit
    is a grey hatched bar labelled "does not fit" with a hollow efficiency marker."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=100)
    fig.subplots_adjust(left=0.11, right=0.88, top=0.9, bottom=0.12)
    ax = fig.add_subplot()
    rows = result.rows
    x = [str(r.gpus) for r in rows]
    fits = [r.fits for r in rows]
    # a count that does not fit: a grey hatched bar, labelled, and a hollow efficiency marker
    bars = ax.bar(x, [r.seconds for r in rows], color=["#4e79a7" if f else "#d3d3d3" for f in fits],
                  edgecolor=["#4e79a7" if f else "#7f7f7f" for f in fits], label="predicted seconds")
    for i, f in enumerate(fits):
        if not f:
            bars[i].set_hatch("//")
            ax.text(i, rows[i].seconds, "does not fit", ha="center", va="bottom", fontsize=8, color="#b22222")
    ax.bar(x, [r.exposed_comm_seconds if f else 0.0 for r, f in zip(rows, fits)], color="#f28e2b",
           label="of which exposed communication")
    ax.set_xlabel("GPUs")
    ax.set_ylabel("seconds per generation")
    title = f"{result.model} @ {result.workload} on {result.hardware}"
    if not any(fits):
        title += "\nNO GPU count fits in memory: every bar is hypothetical"
    ax.set_title(title, fontsize=10, color="black" if any(fits) else "#b22222")
    ax.grid(True, axis="y", alpha=0.3)
    ax2 = ax.twinx()
    eff = [100 * r.efficiency for r in rows]
    ax2.plot(x, eff, color="#e15759", label="parallel efficiency")
    ax2.scatter([xi for xi, f in zip(x, fits) if f], [e for e, f in zip(eff, fits) if f], color="#e15759", zorder=3)
    ax2.scatter([xi for xi, f in zip(x, fits) if not f], [e for e, f in zip(eff, fits) if not f], facecolors="white",
                edgecolors="#e15759", zorder=3)
    ax2.set_ylabel("parallel efficiency (%)")
    ax2.set_ylim(0, 135)  # room above the line for the legend
    ax2.set_yticks(range(0, 101, 20))
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    if not all(fits):  # the legend's swatches, not the first bar's colours
        from matplotlib.patches import Patch

        h1 = [Patch(facecolor="#4e79a7"), *h1[1:], Patch(facecolor="#d3d3d3", edgecolor="#7f7f7f", hatch="//")]
        l1 = [*l1, "does not fit in memory (no such run)"]
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper right")
    return fig


def write(result: ScaleResult, out: Path, *, force: bool = False, plot: bool = True, html: bool = False,
          before_commit: Callable[[list[Path]], None] | None = None) -> list[Path]:
    """scale.json, scale.csv (scale.png, report.html) into ``out``, all or nothing; an existing scale.json
    is kept unless ``force``."""
    from fxmeter.report.files import write_files

    files = {"scale.json": result.to_json(), "scale.csv": result.to_csv()}
    if plot:
        files["scale.png"] = plot_png(result)
    if html:
        from fxmeter.report.html import render_html

        files["report.html"] = render_html(result.report)
    return write_files(out, files, "the scaling table", claim="scale.json", force=force, whole=True,
                       drop=("scale.png", "report.html").__contains__, before_commit=before_commit)
