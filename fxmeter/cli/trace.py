"""``fxmeter trace``: cost one generation of a model and write report.json + summary.md."""

from __future__ import annotations

from typing import Any

import click

from fxmeter.cli.options import api_kwargs, knob_options, output_options, progress_line


def model_or_folder(model: str | None, opts: dict[str, Any]) -> str | None:
    """MODEL as a pipeline folder (``fxmeter trace PATH``): checked whole, then traced as ``--config PATH``."""
    from fxmeter.model.folder import looks_like_path, resolve_folder

    if model is None or not looks_like_path(model):
        return model
    if opts.get("config") is not None:
        raise click.UsageError("give a pipeline folder or --config, not both")
    resolve_folder(model)
    opts["config"] = model
    return None


@click.command("trace")
@click.argument("model", required=False)
@knob_options("trace")
@output_options
@click.option("--json", "as_json", is_flag=True, help="Print the report JSON to stdout as well.")
@click.option("--plots", is_flag=True, help="Also draw summary.md's PNG charts (matplotlib, ~1 s; `fxmeter summary` draws them later).")
@click.option("--html", "html", is_flag=True, help="Also write report.html (interactive, self-contained).")
def trace(model: str | None, run_id: str | None, output_root: str, force: bool, as_json: bool, plots: bool, html: bool,
          **kw: Any) -> None:
    """Trace MODEL (a model id, or a pipeline folder with model_index.json) for a workload; write report.json and summary.md."""
    from fxmeter.api import default_run_id
    from fxmeter.api import trace as api_trace
    from fxmeter.errors import OutputExistsError
    from fxmeter.report.document import check_output_root, check_run_id
    from fxmeter.report.files import check_writable

    opts = api_kwargs("trace", kw)
    model = model_or_folder(model, opts)
    rid = check_run_id(default_run_id() if run_id is None else run_id)
    check_writable(output_root)
    if not force and model:  # refuse an existing run before spending seconds on a trace
        from fxmeter.model.registry import get_spec

        out_dir = check_output_root(output_root) / rid / "static_analysis" / get_spec(model).slug
        if (out_dir / "report.json").exists():
            raise OutputExistsError(f"{out_dir / 'report.json'} exists; pass --force or choose another --run-id")
    rep = api_trace(model, run_id=rid, progress=progress_line, **opts)
    if rep.unmodeled_ops:
        click.echo(f"warning: {len(rep.unmodeled_ops)} op(s) have no rule and count as 0 (first: {rep.unmodeled_ops[0].op}); "
                   "see unmodeled_ops in report.json, --strict to fail", err=True)
    for st in rep.pipeline.stages if rep.pipeline is not None else ():
        if st.unmodeled and not st.denoiser:
            click.echo(f"warning: stage {st.name}: {len(st.unmodeled)} op(s) have no rule and count as 0 (first: "
                       f"{st.unmodeled[0].op}); see pipeline.stages[].unmodeled_ops, --strict to fail", err=True)
    from fxmeter.cli.console import print_then_commit

    def console(paths: list[Any]) -> list[str]:
        if as_json:
            return [rep.to_json().decode()]
        from fxmeter.report.summary import console_lines, headline

        out = paths[0].parent
        return [headline(rep), *console_lines(rep), f"wrote {out / 'report.json'}",
                f"wrote {out / 'summary.md'}" + (" (+ PNG charts)" if plots else ""),
                *([f"wrote {out / 'report.html'}"] if html else [])]

    # the console output is printed once every file is staged, before any is published:
    # a stdout that fails (> /dev/full) leaves no run folder
    rep.write(force=force, output_root=output_root, plots=plots, html=html, before_commit=print_then_commit(console))


COMMANDS = (trace,)
