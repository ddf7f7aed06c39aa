"""``fxmeter scale``: one generation per GPU count -> a table, scale.json, scale.csv and scale.png."""

from __future__ import annotations

from typing import Any

import click

from fxmeter.cli.options import api_kwargs, knob_options, output_options, progress_line


@click.command("scale")
@click.argument("model", required=False)
@knob_options("scale")
@output_options
@click.option("--no-plot", is_flag=True, help="Skip scale.png (matplotlib, ~1 s).")
@click.option("--html", "html", is_flag=True, help="Also write report.html (the largest count, with the scaling chart).")
@click.option("--json", "as_json", is_flag=True, help="Print scale.json to stdout as well.")
def scale(model: str | None, run_id: str | None, output_root: str, force: bool, no_plot: bool, html: bool, as_json: bool,
          **kw: Any) -> None:
    """Predict MODEL on each GPU count of --gpus of the --hardware device: time, speed-up, efficiency,
    memory per GPU and communication share; write scale.json, scale.csv and scale.png."""
    from fxmeter.api import default_run_id
    from fxmeter.api import scale as api_scale
    from fxmeter.errors import OutputExistsError, ParallelError
    from fxmeter.model.registry import resolve_model
    from fxmeter.report.document import check_output_root, check_run_id
    from fxmeter.report.files import check_writable
    from fxmeter.report.scale import write

    opts = api_kwargs("scale", kw)
    if opts.get("hardware") is None and opts.get("hardware_file") is None:
        raise ParallelError("fxmeter scale needs --hardware: the per-GPU time and the interconnect come from the device")
    rid = check_run_id(default_run_id() if run_id is None else run_id)
    check_writable(output_root)
    out = check_output_root(output_root) / rid / "static_analysis" / resolve_model(model, opts.get("config")).slug
    if (out / "scale.json").exists() and not force:  # before any evaluation
        raise OutputExistsError(f"{out / 'scale.json'} exists; pass --force or choose another --run-id")
    res = api_scale(model, progress=progress_line, run_id=rid, include_nodes=html, **opts)
    from fxmeter.cli.console import print_then_commit

    def console(paths: list[Any]) -> list[str]:
        if as_json:
            return [res.to_json().decode()]
        return [*res.table(), *(f"wrote {p}" for p in paths)]

    # printed once the files are staged, before any is published: a failing stdout writes nothing
    write(res, out, force=force, plot=not no_plot, html=html, before_commit=print_then_commit(console))

COMMANDS = (scale,)
