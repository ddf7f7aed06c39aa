"""``fxmeter summary``: re-render summary.md (and its charts) from a report.json."""

from __future__ import annotations

import click


@click.command("summary")
@click.argument("report", type=click.Path())
@click.option("--no-plots", is_flag=True, help="Write summary.md only (no matplotlib charts).")
@click.option("-o", "--output-dir", type=click.Path(), default=None, help="Where to write; default: beside REPORT.")
def summary(report: str, no_plots: bool, output_dir: str | None) -> None:
    """Re-render summary.md (and its charts) from REPORT (a report.json, its folder or a run folder)."""
    from pathlib import Path

    from fxmeter.errors import ReportError
    from fxmeter.report.files import load, render_files, write_files

    rep = load(report)
    if output_dir is not None and not output_dir.strip():
        raise ReportError("empty --output-dir: name a folder, or leave -o out to write beside REPORT")
    out = Path(output_dir) if output_dir else (rep.path or Path(report)).parent  # beside the report.json read
    for p in write_files(out, render_files(rep, plots=not no_plots), "the summary"):
        click.echo(f"wrote {p}")


COMMANDS = (summary,)
