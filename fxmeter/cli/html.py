"""``fxmeter html REPORT``: write report.html, one self-contained page, from a report.json."""

from __future__ import annotations

import click


@click.command("html")
@click.argument("report", type=click.Path())
@click.option("-o", "--output", "output", type=click.Path(), default=None,
              help="Where to write; default: report.html beside REPORT's report.json (a folder gets report.html inside).")
@click.option("--force", is_flag=True, help="Replace an existing file at -o (never a pipe, device or folder).")
def html(report: str, output: str | None, force: bool) -> None:
    """Write report.html (opens offline in any browser) from REPORT: a report.json, its folder or a run folder."""
    from pathlib import Path

    from fxmeter.cli.console import print_then_commit
    from fxmeter.report.files import load, write_html
    from fxmeter.report.html import HTML_NAME, render_html

    rep = load(report)
    page = render_html(rep)
    # -o names the user's path: an existing file only with --force; beside the report it is fxmeter's own
    write_html(output if output is not None else (rep.path or Path(report)).parent / HTML_NAME, page,
               user_path=output is not None, force=force,
               before_commit=print_then_commit(lambda paths: [f"wrote {paths[0]} ({len(page) / 1e6:.1f} MB)"]))


COMMANDS = (html,)
