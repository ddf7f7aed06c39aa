"""``fxmeter top``: what dominates a report."""

from __future__ import annotations

import click

from fxmeter.report.top import BY, METRICS


@click.command("top")
@click.argument("report", type=click.Path())
@click.option("-k", "k", type=int, default=10, show_default=True, help="How many rows.")
@click.option("--by", type=click.Choice(BY), default="module", show_default=True,
              help="Rank modules, categories or ops (per forward), or the pipeline's stages (per generation).")
@click.option("--metric", type=click.Choice(METRICS), default="tensor_core_flops", show_default=True,
              help="Per-forward metric (bytes = read + written; seconds need a report traced with --hardware).")
@click.option("--depth", type=int, default=None,
              help="Rank modules at this depth by total cost; default: every module by its own ops.")
@click.option("--no-fold", is_flag=True, help="Show numbered blocks one by one instead of 'blocks.* (N blocks, summed)'.")
@click.option("--stage", default=None,
              help="Rank inside one pipeline stage (text_encoder, vae...: per run); default: the transformer.")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
def top(report: str, k: int, by: str, metric: str, depth: int | None, no_fold: bool, stage: str | None,
        as_json: bool) -> None:
    """What dominates REPORT (a report.json, its folder or a run folder): top modules, categories or ops."""
    from fxmeter.report.document import dumps
    from fxmeter.report.files import load
    from fxmeter.report.top import render_top
    from fxmeter.report.top import top as rank

    t = rank(load(report), by, metric, k, depth=depth, fold=not no_fold, stage=stage)
    click.echo(dumps(t.to_dict()).decode() if as_json else render_top(t))


COMMANDS = (top,)
