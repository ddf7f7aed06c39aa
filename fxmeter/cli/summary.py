"""``fxmeter summary``: re-render summary.md (and its charts) from a report.json."""

from __future__ import annotations

import click


@click.command("summary")
@click.argument("report", type=click.Path())
@click.option("--no-plots", is_flag=True, help="Write summary.md only (no matplotlib charts).")
@click.option("-o", "--output-dir", type=click.Path(), default=None, help="Where to write; default: beside REPORT.")
@click.option("--force", is_flag=True, help="Replace existing files in -o's folder (never a pipe, device or folder).")
def summary(report: str, no_plots: bool, output_dir: str | None, force: bool) -> None:
    """Re-render summary.md (and its charts) from REPORT (a report.json, its folder or a run folder)."""
    from pathlib import Path

    from fxmeter.cli.console import print_then_commit
    from fxmeter.errors import ReportError
    from fxmeter.report.files import load, render_files, write_files

    rep = load(report)
    if output_dir is not None and not output_dir.strip():
        raise ReportError("empty --output-dir: name a folder, or leave -o out to write beside REPORT")
    out = Path(output_dir) if output_dir else (rep.path or Path(report)).parent  # beside the report.json read
    # -o names the user's folder: files there are replaced only with --force; beside the report they are fxmeter's own
    write_files(out, render_files(rep, plots=not no_plots), "the summary", user_path=output_dir is not None,
                force=force, before_commit=print_then_commit(lambda paths: [f"wrote {p}" for p in paths]))


COMMANDS = (summary,)
