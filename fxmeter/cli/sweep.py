"""``fxmeter sweep``: one model over a grid of workloads -> a console table, sweep.csv, sweep.json, sweep.png."""

from __future__ import annotations

from typing import Any

import click

from fxmeter.cli.options import device_kwargs, device_options, parallel_options, pipeline_options, progress_line


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
@device_options
@parallel_options
@click.option("--batched-cfg", is_flag=True, help="CFG as one forward of 2x the batch.")
@click.option("--run-id", default=None, help="Run id ([A-Za-z0-9._-], at most 128); default: UTC timestamp + random suffix.")
@click.option("--output-root", default="tmp/profile-output", show_default=True, type=click.Path(), help="Where run folders go.")
@click.option("--force", is_flag=True, help="Overwrite an existing sweep of the same run id.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the trace cache.")
@click.option("--no-plot", is_flag=True, help="Skip sweep.png.")
@pipeline_options
def sweep(model: str | None, workload: str | None, frames: str | None, height: str | None, width: str | None,
          steps: str | None, text_len: str | None, batch: str | None, guidance_scale: float | None, dtype: str,
          config: str | None, run_id: str | None, output_root: str, force: bool, no_cache: bool, no_plot: bool,
          batched_cfg: bool, stages: str, stage_dtype: str | None, offload: str, t5_cpu: bool, **kw: Any) -> None:
    """Evaluate MODEL over a grid of workloads (with --hardware: on each device, one row per workload and
    device); print a table and write sweep.csv, sweep.json and sweep.png."""
    from fxmeter.api import default_run_id
    from fxmeter.api import sweep as api_sweep
    from fxmeter.errors import OutputExistsError
    from fxmeter.model.registry import resolve_model
    from fxmeter.report.document import check_output_root, check_run_id
    from fxmeter.report.files import check_writable
    from fxmeter.report.sweep import int_list, write

    dev = device_kwargs(kw)
    rid = check_run_id(default_run_id() if run_id is None else run_id)
    check_writable(output_root)
    grid = {k: int_list(v, k) for k, v in (("frames", frames), ("height", height), ("width", width),
                                            ("steps", steps), ("text_len", text_len), ("batch", batch))}
    out = check_output_root(output_root) / rid / "static_analysis" / resolve_model(model, config).slug
    if (out / "sweep.json").exists() and not force:  # before minutes of evaluation
        raise OutputExistsError(f"{out / 'sweep.json'} exists; pass --force or choose another --run-id")
    res = api_sweep(model, grid=grid, workload=workload, config=config, dtype=dtype, cache=not no_cache,
                    guidance_scale=guidance_scale, progress=progress_line, stages=stages, stage_dtype=stage_dtype,
                    offload=offload, t5_cpu=t5_cpu, batched_cfg=batched_cfg, **dev)
    from fxmeter.cli.console import print_then_commit

    devices = list(dict.fromkeys(str(r["device"]) for r in res.rows if r.get("device")))
    per = f" x {len(devices)} devices ({', '.join(devices)})" if len(devices) > 1 else ""
    head = (f"{res.model}: {len(res.rows) // max(1, len(devices))} workloads{per} "
            f"(trace {res.trace['mode']}, from {res.trace['cache']})")
    # printed once the files are staged, before any is published: a failing stdout writes nothing
    write(res, out, force=force, plot=not no_plot,
          before_commit=print_then_commit(lambda paths: [head, *res.table(), *(f"wrote {p}" for p in paths)]))

COMMANDS = (sweep,)
