"""A sweep's result: one row per workload, as JSON, CSV and a PNG plot (``fxmeter sweep``).

:func:`fxmeter.api.sweep` computes the rows (one symbolic model, many workloads: every grid
point is one call of the compiled formula table, exact ints, no torch; points outside a
trace's guards are traced statically, one by one); this module renders and writes them.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fxmeter.base import fileio as fileio
from fxmeter.errors import WorkloadError
from fxmeter.report.document import ReportDocument

LOG = logging.getLogger(__name__)
#: The most workloads one sweep evaluates (each is a full evaluation; 10,000 take minutes).
MAX_POINTS = 10_000

COLUMNS = (
    "workload", "device", "frames", "height", "width", "steps", "text_len", "batch", "guidance_scale", "passes_per_step",
    "tokens", "tensor_core_flops_per_forward", "cuda_core_flops_per_forward", "flops_per_forward",
    "bytes_read_per_forward", "bytes_written_per_forward", "flops_end_to_end", "bytes_end_to_end",
    "weight_bytes", "activation_peak_bytes", "memory_bytes", "bound_seconds", "predicted_seconds",
    "pipeline_flops", "pipeline_bound_seconds", "pipeline_predicted_seconds", "pipeline_weight_bytes",
    "pipeline_peak_bytes", "offload",
)


@dataclass(frozen=True)
class SweepResult:
    """The rows of a sweep (one per workload) and where they came from."""

    model: str
    dtype: str
    hardware: str | None
    rows: list[dict[str, Any]]
    trace: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "dtype": self.dtype, "hardware": self.hardware, "columns": list(COLUMNS),
                "rows": self.rows, "trace": self.trace}

    def to_json(self) -> bytes:
        return fileio.dumps(self.to_dict())

    def to_csv(self) -> bytes:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: ("" if r.get(k) is None else r[k]) for k in COLUMNS})
        return buf.getvalue().encode()


def int_list(text: str | None, name: str) -> list[int | None]:
    """``"480,720"`` -> ``[480, 720]``; None -> ``[None]`` (the preset's value)."""
    if text is None:
        return [None]
    out: list[int | None] = []
    for part in text.split(","):
        part = part.strip()
        try:
            v = int(part)
        except ValueError:
            raise WorkloadError(f"--{name.replace('_', '-')}: {part!r} is not an integer") from None
        if v <= 0:
            raise WorkloadError(f"--{name.replace('_', '-')}: must be positive, got {v}")
        out.append(v)
    return out


def row_of(rep: ReportDocument) -> dict[str, Any]:
    """One sweep row from a (light) report of one workload."""
    wl, pf, e2e, mem = rep.workload, rep.totals.per_forward.metrics, rep.totals.end_to_end, rep.memory
    return {
        "workload": wl.name,
        "frames": wl.frames,
        "height": wl.height,
        "width": wl.width,
        "steps": wl.steps,
        "text_len": wl.text_len,
        "batch": wl.batch,
        "guidance_scale": wl.guidance_scale,
        "passes_per_step": wl.passes_per_step,
        "tokens": wl.tokens,
        "tensor_core_flops_per_forward": pf.tensor_core_flops,
        "cuda_core_flops_per_forward": pf.cuda_core_flops,
        "flops_per_forward": pf.flops,
        "bytes_read_per_forward": pf.bytes_read,
        "bytes_written_per_forward": pf.bytes_written,
        "flops_end_to_end": e2e.metrics.flops,
        "bytes_end_to_end": e2e.metrics.bytes,
        "weight_bytes": mem.weight_bytes,
        "activation_peak_bytes": mem.activation_peak_bytes,
        "memory_bytes": mem.total_bytes,
        "bound_seconds": e2e.bound_seconds,
        "predicted_seconds": e2e.predicted_seconds,
        **pipeline_columns(rep),
    }


def pipeline_columns(rep: ReportDocument) -> dict[str, Any]:
    """The whole generation's FLOPs, bound and predicted seconds (copies included), weights and peak device memory."""
    p = rep.pipeline
    if p is None:
        return {}
    r = p.residency
    return {"pipeline_flops": p.end_to_end.metrics.flops, "pipeline_bound_seconds": p.end_to_end.bound_seconds,
            "pipeline_predicted_seconds": p.end_to_end.predicted_seconds,
            "pipeline_weight_bytes": p.weight_bytes, "pipeline_peak_bytes": r.get("peak_bytes"),
            "offload": r.get("policy")}


def plot_png(result: SweepResult) -> bytes:
    """End-to-end FLOPs against tokens, one line per resolution (matplotlib Agg, imported lazily)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=100)  # no pyplot: it alone costs ~0.3 s to import
    fig.subplots_adjust(left=0.1, right=0.97, top=0.92, bottom=0.12)
    ax = fig.add_subplot()
    series: dict[str, list[tuple[int, int]]] = {}
    first = result.rows[0].get("device") if result.rows else None
    for r in result.rows:  # FLOPs do not depend on the device: the first device's rows
        if r.get("device") == first:
            series.setdefault(f"{r['width']}x{r['height']}", []).append((r["tokens"], r["flops_end_to_end"]))
    for label, pts in sorted(series.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] / 1e15 for p in pts], marker="o", label=label)
    ax.set_xlabel("tokens per forward")
    ax.set_ylabel("PFLOP end to end")
    ax.set_title(f"{result.model} ({result.dtype}): FLOPs per generation")
    ax.grid(True, alpha=0.3)
    ax.legend(title="width x height", fontsize=8)
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf, metadata={"Software": None})
    return buf.getvalue()


def write(result: SweepResult, out: Path, *, force: bool = False, plot: bool = True, run_folder: bool = True,
          before_commit: Callable[[list[Path]], None] | None = None) -> list[Path]:
    """sweep.json, sweep.csv (and sweep.png) into ``out``, all or nothing; an existing
    sweep.json is kept unless ``force``.  ``run_folder``: ``out`` is fxmeter's run folder."""
    from fxmeter.report.files import write_files

    files = {"sweep.json": result.to_json(), "sweep.csv": result.to_csv()}
    if plot:
        files["sweep.png"] = plot_png(result)
    return write_files(out, files, "the sweep", claim="sweep.json", force=force, whole=run_folder,
                       drop="sweep.png".__eq__, before_commit=before_commit)
