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
    "pipeline_peak_bytes", "offload", "device_label", "fits", "price_per_hour", "dollars_per_generation", "gpus",
    "parallel", "gpu_predicted_seconds", "gpu_memory_bytes",
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

    def table(self) -> list[str]:
        """The console table: one row per workload (and device), whole-generation figures where the pipeline
        was costed, the transformer's otherwise (the header says which)."""
        return table_lines(self.rows)

    def to_csv(self) -> bytes:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: ("" if r.get(k) is None else r[k]) for k in COLUMNS})
        return buf.getvalue().encode()


def _cell(v: Any, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def table_lines(rows: list[dict[str, Any]]) -> list[str]:
    """What ``fxmeter sweep`` prints: a row per workload (and device), ``fits`` and $ with a device."""
    from fxmeter.base.units import human, human_bytes

    if not rows:
        return []
    whole = all(r.get("pipeline_flops") is not None for r in rows)
    timed = any(r.get("device") for r in rows)
    gpus = any(r.get("gpus") for r in rows)
    priced = any(r.get("price_per_hour") is not None for r in rows)
    scope = "whole generation" if whole else "transformer alone"
    labels = [str(r.get("device_label") or r.get("device") or "") for r in rows]
    dw = max([len(x) for x in labels] + [6])
    head = f"  {'frames':>6} {'height x width':>14} {'steps':>5} {'batch':>5} {'tokens':>9} {'FLOPs':>12}"
    if timed:
        head = f"  {'device':<{dw}}" + head
        head += (f" {'GPUs':>4} {'predicted s':>12} {'memory/GPU':>11}" if gpus else
                 f" {'predicted s':>12} {'bound s':>10} {'peak memory':>11}")
        head += "  fits" + (f" {'$/gen':>9}" if priced else "")
    else:
        head += f" {'memory':>11}"
    out = [head]
    for r, label in zip(rows, labels):
        flops = r["pipeline_flops"] if whole else r["flops_end_to_end"]
        size = f"{r['height']} x {r['width']}"
        line = (f"  {r['frames']:>6} {size:>14} {r['steps']:>5} {r['batch']:>5} "
                f"{r['tokens']:>9,} {human(flops, 'FLOP'):>12}")
        if timed:
            line = f"  {label:<{dw}}" + line
            fits = r.get("fits")
            if gpus:
                line += (f" {r.get('gpus') or 1:>4} {_cell(r.get('gpu_predicted_seconds'), ',.1f'):>12} "
                         f"{human_bytes(r.get('gpu_memory_bytes') or 0):>11}")
            else:
                pred = r["pipeline_predicted_seconds"] if whole else r["predicted_seconds"]
                bound = r["pipeline_bound_seconds"] if whole else r["bound_seconds"]
                peak = r["pipeline_peak_bytes"] if whole else r["memory_bytes"]
                line += f" {_cell(pred, ',.1f'):>12} {_cell(bound, ',.1f'):>10} {human_bytes(peak or 0):>11}"
            line += f"  {'yes' if fits else 'NO ' if fits is not None else '-  '}"
            if priced:
                line += f" {_cell(r.get('dollars_per_generation'), ',.4f'):>9}"
        else:
            line += f" {human_bytes((r['pipeline_peak_bytes'] if whole else r['memory_bytes']) or 0):>11}"
        out.append(line.rstrip())
    notes = [f"FLOPs{', seconds' if timed else ''} and memory of the {scope}"
             + (": every stage asked for; memory = the peak under the --offload policy" if whole else
                ", one generation")]
    if timed:
        notes.append("predicted = kernel model, bound = roofline at 100% of every peak" if not gpus else
                     "predicted on the GPUs by the kernel model plus exposed communication; memory per GPU")
        if any(r.get("fits") is False for r in rows):
            notes.append("fits NO: the generation does not fit in the device's memory; its seconds assume it did"
                         + (", and it has no $" if priced else ""))
        if rows and all(r.get("fits") is False for r in rows):
            notes.append("no workload of this sweep fits: try --offload model or sequential, --gpus N with --fsdp, "
                         "or a larger device")
    return out + [f"  ({n})" for n in notes]


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
        **device_columns(rep),
    }


def device_columns(rep: ReportDocument) -> dict[str, Any]:
    """The device of a timed row: its name and label, whether the generation fits (on each of the ``--gpus``
    GPUs when a deployment is given), and $ per generation (only where it fits: no price for a setup that cannot
    run)."""
    hw = rep.hardware
    if hw is None:
        return {"device": None}
    out: dict[str, Any] = {"device": hw.device.get("name"), "device_label": hw.label}
    dev = rep.devices[0] if rep.devices else None
    dep = rep.deployment
    if dep is not None:
        fits = bool(dep.memory.get("fits"))
        price = dev.price_per_hour if dev is not None else None
        out.update(gpus=dep.gpus, parallel=dep.spec, gpu_predicted_seconds=dep.predicted_seconds,
                   gpu_memory_bytes=dep.memory.get("total_bytes_per_gpu"), fits=fits, price_per_hour=price,
                   dollars_per_generation=dep.gpu_seconds / 3600 * price if fits and price is not None else None)
    elif dev is not None:
        out.update(fits=dev.fits, price_per_hour=dev.price_per_hour,
                   dollars_per_generation=dev.dollars if dev.fits else None)
    else:  # one device, no price: the whole generation's fit under the --offload policy (the transformer's without a pipeline)
        fit = rep.pipeline.residency.get("fit") if rep.pipeline is not None else None
        out["fits"] = bool(fit["fits"]) if isinstance(fit, dict) else (rep.memory.fit.fits if rep.memory.fit else None)
    return out


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
    """sweep.png: :func:`figure` as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buf = io.BytesIO()
    FigureCanvasAgg(figure(result)).print_png(buf, metadata={"Software": None})
    return buf.getvalue()


def figure(result: SweepResult) -> Any:
    """End-to-end FLOPs against tokens, one line per resolution (and step count, when swept); with a device,
    a second panel: predicted seconds (solid) and bound seconds (dashed) per device, a hollow marker where the
    generation does not fit (matplotlib, imported lazily)."""
    from matplotlib.figure import Figure

    rows = result.rows
    timed = any(r.get("predicted_seconds") is not None for r in rows)
    whole = bool(rows) and all(r.get("pipeline_flops") is not None for r in rows)
    scope = "whole generation" if whole else "transformer alone"
    many_steps = len({r["steps"] for r in rows}) > 1

    def series_key(r: dict[str, Any]) -> str:
        return f"{r['width']}x{r['height']}" + (f", {r['steps']} steps" if many_steps else "")

    fig = Figure(figsize=(12 if timed else 7, 4.5), dpi=100)  # no pyplot: it alone costs ~0.3 s to import
    fig.subplots_adjust(left=0.07 if timed else 0.1, right=0.98 if timed else 0.97, top=0.9, bottom=0.12,
                        wspace=0.25)
    ax = fig.add_subplot(1, 2 if timed else 1, 1)
    series: dict[str, list[tuple[int, int]]] = {}
    first = rows[0].get("device") if rows else None
    for r in rows:  # FLOPs do not depend on the device: the first device's rows
        if r.get("device") == first:
            flops = r["pipeline_flops"] if whole else r["flops_end_to_end"]
            series.setdefault(series_key(r), []).append((r["tokens"], flops))
    for label, pts in sorted(series.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] / 1e15 for p in pts], marker="o", label=label)
    ax.set_xlabel("tokens per forward")
    ax.set_ylabel(f"PFLOP, {scope}")
    ax.set_title(f"{result.model} ({result.dtype}): FLOPs per generation ({scope})", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(title="width x height", fontsize=8)
    if timed:
        ax2 = fig.add_subplot(1, 2, 2)
        lines: dict[tuple[str, str], list[tuple[int, float, float, bool]]] = {}
        for r in rows:
            pred = r["pipeline_predicted_seconds"] if whole else r["predicted_seconds"]
            bound = r["pipeline_bound_seconds"] if whole else r["bound_seconds"]
            if r.get("gpu_predicted_seconds") is not None:
                pred = r["gpu_predicted_seconds"]
            if pred is None or bound is None:
                continue
            dev = str(r.get("device_label") or r.get("device") or "")
            lines.setdefault((dev, series_key(r)), []).append((r["tokens"], pred, bound, r.get("fits") is not False))
        colors = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"]
        for i, ((dev, key), timed_pts) in enumerate(sorted(lines.items())):
            timed_pts.sort()
            c = colors[i % len(colors)]
            xs = [p[0] for p in timed_pts]
            ax2.plot(xs, [p[1] for p in timed_pts], color=c, label=f"{dev} {key}: predicted")
            ax2.plot(xs, [p[2] for p in timed_pts], color=c, ls="--", label=f"{dev} {key}: bound")
            ax2.scatter([p[0] for p in timed_pts if p[3]], [p[1] for p in timed_pts if p[3]], color=c, zorder=3, s=18)
            ax2.scatter([p[0] for p in timed_pts if not p[3]], [p[1] for p in timed_pts if not p[3]],
                        facecolors="white", edgecolors=c, zorder=3, s=24)
        if any(not p[3] for line in lines.values() for p in line):
            ax2.scatter([], [], facecolors="white", edgecolors="#555555", label="hollow: does not fit in memory")
        gpus = any(r.get("gpus") for r in rows)
        ax2.set_xlabel("tokens per forward")
        ax2.set_ylabel(f"seconds, {scope}" + (" on the GPUs" if gpus else ""))
        ax2.set_title("predicted (kernel model, solid) and bound (roofline at 100%, dashed) seconds", fontsize=10)
        ax2.grid(True, alpha=0.3)
        ax2.legend(fontsize=7)
    return fig


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
