"""``fxmeter sweep``: one model over a grid of workloads -> a console table, sweep.csv, sweep.json, sweep.png."""

from __future__ import annotations

from typing import Any

import click

from fxmeter.cli.options import api_kwargs, knob_options, progress_line


@click.command("sweep")
@click.argument("model", required=False)
@knob_options("sweep")
@click.option("--run-id", default=None, help="Run id ([A-Za-z0-9._-], at most 128); default: UTC timestamp + random suffix.")
@click.option("--output-root", default="tmp/profile-output", show_default=True, type=click.Path(), help="Where run folders go.")
@click.option("--force", is_flag=True, help="Overwrite an existing sweep of the same run id.")
@click.option("--no-plot", is_flag=True, help="Skip sweep.png.")
def sweep(model: str | None, run_id: str | None, output_root: str, force: bool, no_plot: bool, **kw: Any) -> None:
    """Evaluate MODEL over a grid of workloads (with --hardware: on each device, one row per workload and
    device); print a table and write sweep.csv, sweep.json and sweep.png."""
    from fxmeter.api import default_run_id
    from fxmeter.api import sweep as api_sweep
    from fxmeter.errors import OutputExistsError
    from fxmeter.model.registry import resolve_model
    from fxmeter.report.document import check_output_root, check_run_id
    from fxmeter.report.files import check_writable
    from fxmeter.report.sweep import int_list, write

    opts = api_kwargs("sweep", kw)
    rid = check_run_id(default_run_id() if run_id is None else run_id)
    check_writable(output_root)
    grid = {k: int_list(opts.pop(k), k) for k in ("frames", "height", "width", "steps", "text_len", "batch")}
    out = check_output_root(output_root) / rid / "static_analysis" / resolve_model(model, opts.get("config")).slug
    if (out / "sweep.json").exists() and not force:  # before minutes of evaluation
        raise OutputExistsError(f"{out / 'sweep.json'} exists; pass --force or choose another --run-id")
    res = api_sweep(model, grid=grid, progress=progress_line, **opts)
    from fxmeter.cli.console import print_then_commit

    devices = list(dict.fromkeys(str(r["device"]) for r in res.rows if r.get("device")))
    per = f" x {len(devices)} devices ({', '.join(devices)})" if len(devices) > 1 else ""
    head = (f"{res.model}: {len(res.rows) // max(1, len(devices))} workloads{per} "
            f"(trace {res.trace['mode']}, from {res.trace['cache']})")
    # printed once the files are staged, before any is published: a failing stdout writes nothing
    write(res, out, force=force, plot=not no_plot,
          before_commit=print_then_commit(lambda paths: [head, *res.table(), *(f"wrote {p}" for p in paths)]))

COMMANDS = (sweep,)
