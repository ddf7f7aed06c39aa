"""``fxmeter sweep``: one symbolic model, many workloads -> CSV, JSON and a PNG plot.

The model is traced (or loaded from the cache) once; every grid point is one call
of the compiled formula table (exact ints, no torch).  Points outside a cached
trace's guards are traced statically, one by one.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from fxmeter.base import fileio as fileio
from fxmeter.errors import WorkloadError

LOG = logging.getLogger(__name__)
#: The most workloads one sweep evaluates (each is a full evaluation; 10,000 take minutes).
MAX_POINTS = 10_000

COLUMNS = (
    "workload", "frames", "height", "width", "steps", "text_len", "batch", "guidance_scale", "passes_per_step",
    "tokens", "tensor_core_flops_per_forward", "cuda_core_flops_per_forward", "flops_per_forward",
    "bytes_read_per_forward", "bytes_written_per_forward", "flops_end_to_end", "bytes_end_to_end",
    "weight_bytes", "activation_peak_bytes", "memory_bytes", "predicted_seconds",
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


def predicted_seconds(data: dict[str, Any], hw: Any) -> float:
    """Roofline seconds end to end on ``hw`` (a :class:`fxmeter.hardware.Hardware`)."""
    from fxmeter.estimate import roofline as roofline

    roofline.apply(data, hw)
    return float(data["totals"]["end_to_end"]["predicted_seconds"])


def sweep(
    model: str | None,
    *,
    grid: Mapping[str, Sequence[int | None]],
    workload: str | None = None,
    config: str | Path | None = None,
    dtype: str = "bf16",
    hardware: str | None = None,
    cache: bool = True,
    replicate: bool = True,
    guidance_scale: float | None = None,
) -> SweepResult:
    """Evaluate every combination of ``grid`` (knob -> values; None = the preset's)."""
    from fxmeter.api import symbolic_model
    from fxmeter.cost.formula import compile_table
    from fxmeter.estimate.evaluate import check_guards, evaluate
    from fxmeter.model.registry import resolve_model
    from fxmeter.model.workload import normalize_dtype, resolve

    resolved = resolve_model(model, config)
    d = normalize_dtype(dtype)
    hw = None
    if hardware is not None:
        from fxmeter.estimate.hardware import get

        hw = get(hardware)
    knobs = sorted(grid)
    count = math.prod(len(grid[k]) for k in knobs)
    if count > MAX_POINTS:
        sizes = " x ".join(f"{len(grid[k])} {k.replace('_', '-')}" for k in knobs if len(grid[k]) > 1)
        raise WorkloadError(f"sweep of {count:,} workloads ({sizes}) is over the limit of {MAX_POINTS:,}; "
                            "sweep fewer values or split the sweep")
    points = []
    for combo in itertools.product(*(grid[k] for k in knobs)):
        ov: dict[str, Any] = {k: v for k, v in zip(knobs, combo) if v is not None}
        if guidance_scale is not None:
            ov["guidance_scale"] = guidance_scale
        wl = resolve(workload, resolved.default_workload, **ov)
        try:
            geometry = resolved.geometry(wl)
        except WorkloadError as e:
            raise WorkloadError(f"{wl.height}x{wl.width}, {wl.frames} frames: {e}") from None
        points.append((wl, geometry))
    if not points:
        raise WorkloadError("empty sweep")
    sm = symbolic_model(resolved, d, points[0][1].dims, cache=cache, replicate=replicate)
    fn = compile_table(sm.formulas, list(sm.meta["symbols"])) if sm.meta["mode"] == "dynamic" else None
    rows = []
    for wl, geometry in points:
        this, ev = sm, fn
        if check_guards(sm, geometry.dims):  # outside the trace's guards: a static trace of this point
            this = symbolic_model(resolved, d, geometry.dims, cache=False, replicate=replicate)
            ev = None
        passes = resolved.adapter.passes_per_step(resolved.config, wl)
        light = hw is None  # totals only; the roofline needs every node and module
        data = evaluate(this, wl, geometry, passes, "sweep", include_nodes=not light, include_modules=not light,
                        evaluator=ev).data
        resolved.adapter.annotate_report(resolved.config, wl, data)  # e.g. both experts' weights
        rows.append(row_of(data, hw))
    trace = {"mode": sm.meta["mode"], "cache": sm.meta.get("cache", "none"), "guards": sm.meta.get("guards", {}),
             "symbols": sm.meta["symbols"]}
    return SweepResult(resolved.id, d, hardware, rows, trace)


def row_of(data: dict[str, Any], hw: Any = None) -> dict[str, Any]:
    wl, pf, e2e, mem = data["workload"], data["totals"]["per_forward"], data["totals"]["end_to_end"], data["memory"]
    return {
        "workload": wl["name"],
        "frames": wl["frames"],
        "height": wl["height"],
        "width": wl["width"],
        "steps": wl["steps"],
        "text_len": wl["text_len"],
        "batch": wl["batch"],
        "guidance_scale": wl["guidance_scale"],
        "passes_per_step": wl["passes_per_step"],
        "tokens": wl["tokens"],
        "tensor_core_flops_per_forward": pf["tensor_core_flops"],
        "cuda_core_flops_per_forward": pf["cuda_core_flops"],
        "flops_per_forward": pf["flops"],
        "bytes_read_per_forward": pf["bytes_read"],
        "bytes_written_per_forward": pf["bytes_written"],
        "flops_end_to_end": e2e["flops"],
        "bytes_end_to_end": e2e["bytes_read"] + e2e["bytes_written"],
        "weight_bytes": mem["weight_bytes"],
        "activation_peak_bytes": mem["activation_peak_bytes"],
        "memory_bytes": mem["total_bytes"],
        "predicted_seconds": predicted_seconds(data, hw) if hw is not None else None,
    }


def plot_png(result: SweepResult) -> bytes:
    """End-to-end FLOPs against tokens, one line per resolution (matplotlib Agg, imported lazily)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=100)  # no pyplot: it alone costs ~0.3 s to import
    fig.subplots_adjust(left=0.1, right=0.97, top=0.92, bottom=0.12)
    ax = fig.add_subplot()
    series: dict[str, list[tuple[int, int]]] = {}
    for r in result.rows:
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


def write(result: SweepResult, out: Path, *, force: bool = False, plot: bool = True, run_folder: bool = True) -> list[Path]:
    """sweep.json, sweep.csv (and sweep.png) into ``out``, all or nothing; an existing
    sweep.json is kept unless ``force``.  ``run_folder``: ``out`` is fxmeter's run folder."""
    from fxmeter.report.document import write_files

    files = {"sweep.json": result.to_json(), "sweep.csv": result.to_csv()}
    if plot:
        files["sweep.png"] = plot_png(result)
    return write_files(out, files, "the sweep", claim="sweep.json", force=force, whole=run_folder,
                       drop="sweep.png".__eq__)


@click.command("sweep")
@click.argument("model", required=False)
@click.option("--workload", "-w", default=None, help="Preset the unswept knobs come from; default: the model's.")
@click.option("--frames", default=None, help="Comma-separated frame counts, e.g. 17,33,49.")
@click.option("--height", default=None, help="Comma-separated heights in pixels, e.g. 480,720.")
@click.option("--width", default=None, help="Comma-separated widths in pixels, e.g. 832,1280.")
@click.option("--steps", default=None, help="Comma-separated denoising step counts.")
@click.option("--text-len", default=None, help="Comma-separated text lengths.")
@click.option("--batch", default=None, help="Comma-separated batch sizes.")
@click.option("--guidance-scale", type=float, default=None, help="CFG scale for every point.")
@click.option("--dtype", default="bf16", show_default=True, help="Parameter dtype: bf16, fp16 or fp32.")
@click.option("--config", "config", type=click.Path(), default=None, help="Local diffusers config.json or model folder.")
@click.option("--hardware", default=None, help="Add predicted seconds on this hardware (roofline).")
@click.option("--run-id", default=None, help="Run id ([A-Za-z0-9._-], at most 128); default: UTC timestamp + random suffix.")
@click.option("--output-root", default="tmp/profile-output", show_default=True, type=click.Path(), help="Where run folders go.")
@click.option("--force", is_flag=True, help="Overwrite an existing sweep of the same run id.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the trace cache.")
@click.option("--no-plot", is_flag=True, help="Skip sweep.png.")
def sweep_command(model: str | None, workload: str | None, frames: str | None, height: str | None, width: str | None,
                  steps: str | None, text_len: str | None, batch: str | None, guidance_scale: float | None, dtype: str,
                  config: str | None, hardware: str | None, run_id: str | None, output_root: str, force: bool,
                  no_cache: bool, no_plot: bool) -> None:
    """Evaluate MODEL over a grid of workloads; write sweep.csv, sweep.json and sweep.png."""
    from fxmeter.cli.main import handle_errors

    handle_errors(_sweep_command)(model, workload, frames, height, width, steps, text_len, batch, guidance_scale,
                                  dtype, config, hardware, run_id, output_root, force, no_cache, no_plot)


def _sweep_command(model: str | None, workload: str | None, frames: str | None, height: str | None, width: str | None,
                   steps: str | None, text_len: str | None, batch: str | None, guidance_scale: float | None, dtype: str,
                   config: str | None, hardware: str | None, run_id: str | None, output_root: str, force: bool,
                   no_cache: bool, no_plot: bool) -> None:
    from fxmeter.api import default_run_id
    from fxmeter.model.registry import resolve_model
    from fxmeter.report.document import check_output_root, check_run_id, check_writable

    rid = check_run_id(default_run_id() if run_id is None else run_id)
    check_writable(output_root)
    grid = {k: int_list(v, k) for k, v in (("frames", frames), ("height", height), ("width", width),
                                            ("steps", steps), ("text_len", text_len), ("batch", batch))}
    out = check_output_root(output_root) / rid / "static_analysis" / resolve_model(model, config).slug
    if (out / "sweep.json").exists() and not force:  # before minutes of evaluation
        from fxmeter.errors import OutputExistsError

        raise OutputExistsError(f"{out / 'sweep.json'} exists; pass --force or choose another --run-id")
    res = sweep(model, grid=grid, workload=workload, config=config, dtype=dtype, hardware=hardware,
                cache=not no_cache, guidance_scale=guidance_scale)
    paths = write(res, out, force=force, plot=not no_plot)
    click.echo(f"{res.model}: {len(res.rows)} workloads (trace {res.trace['mode']}, cache {res.trace['cache']})")
    for p in paths:
        click.echo(f"wrote {p}")
