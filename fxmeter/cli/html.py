"""``fxmeter html REPORT``: write report.html, one self-contained page, from a report.json."""

from __future__ import annotations

import click


@click.command("html")
@click.argument("report", type=click.Path())
@click.option("-o", "--output", "output", type=click.Path(), default=None,
              help="Where to write; default: report.html beside REPORT's report.json (a folder gets report.html inside).")
def html(report: str, output: str | None) -> None:
    """Write report.html (opens offline in any browser) from REPORT: a report.json, its folder or a run folder."""
    from pathlib import Path

    from fxmeter.report.files import load, write_html
    from fxmeter.report.html import HTML_NAME, render_html

    rep = load(report)
    page = render_html(rep.data)
    written = write_html(output if output is not None else (rep.path or Path(report)).parent / HTML_NAME, page)
    click.echo(f"wrote {written} ({len(page) / 1e6:.1f} MB)")


COMMANDS = (html,)
