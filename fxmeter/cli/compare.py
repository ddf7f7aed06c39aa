"""``fxmeter compare``: what changed from report A to report B."""

from __future__ import annotations

from pathlib import Path

import click

from fxmeter.report.top import METRICS


@click.command("compare")
@click.argument("a", type=click.Path())
@click.argument("b", type=click.Path())
@click.option("-k", "k", type=int, default=10, show_default=True, help="How many module rows.")
@click.option("--metric", type=click.Choice(METRICS), default="tensor_core_flops", show_default=True,
              help="Metric for the module and category deltas (bytes = read + written; bound_seconds and "
                   "predicted_seconds: reports traced with --hardware, modules only).")
@click.option("--no-fold", is_flag=True, help="Match numbered blocks one by one instead of 'blocks.*'.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.option("--html", "html", type=click.Path(), default=None, help="Also write the side-by-side HTML page to this file.")
@click.option("--force", is_flag=True, help="Replace an existing --html file (never a pipe, device or folder).")
def compare(a: str, b: str, k: int, metric: str, no_fold: bool, as_json: bool, html: str | None, force: bool) -> None:
    """What changed from report A to report B (report.json files, their folders or run folders).

    The console shows values in SI units (FLOP, GB / GiB); --json has the exact integers.
    """
    from fxmeter.report.compare import compare as diff
    from fxmeter.report.compare import render_compare
    from fxmeter.report.document import dumps
    from fxmeter.report.files import load

    if html is not None and not html.strip():
        from fxmeter.errors import ReportError

        raise ReportError("empty --html path: name the file to write the side-by-side page to")
    ra, rb = load(a), load(b)
    c = diff(ra, rb, metric=metric, k=k, fold=not no_fold)
    text = dumps(c.to_dict()).decode() if as_json else render_compare(c)
    if html is None:
        click.echo(text)
        return
    from fxmeter.cli.console import emit
    from fxmeter.report.files import write_html
    from fxmeter.report.html import render_compare_html

    def console(paths: list[Path]) -> None:  # printed before the page is published: a failing stdout writes nothing
        emit([text])
        emit([f"wrote {paths[0]}"], err=as_json)

    write_html(html, render_compare_html(ra, rb), force=force, before_commit=console)


COMMANDS = (compare,)
