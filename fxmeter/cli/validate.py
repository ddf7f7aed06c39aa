"""``fxmeter validate``: predicted seconds against published, measured generation times."""

from __future__ import annotations

import click

from fxmeter.cli.options import progress_line


@click.command("validate")
@click.option("--data", type=click.Path(), default=None,
              help="A measurement file: a JSON list of rows, {\"rows\": [...]} or CSV with a header (spellings read with "
                   "fxmeter/data/aliases.toml); default: the shipped fxmeter/data/published-timings.json.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the whole comparison as JSON: counts, summary, multi-GPU, memory, breakdowns, every row "
                   "(training rows: their own document with \"kind\": \"training\", or a \"training\" section).")
@click.option("-q", "--quiet", is_flag=True, help="Leave out the list of rows fxmeter could not read or represent.")
@click.option("--progress", is_flag=True, help="One line per predicted row on stderr.")
def validate(data: str | None, as_json: bool, quiet: bool, progress: bool) -> None:
    """Predict every row of a measurement file fxmeter can represent; print the signed bias first, then predicted vs
    measured seconds (and peak memory) per row, the breakdowns, and every row it could not read or represent.
    Training rows (a method, lora_rank, optimizer, ... column and no inference timing) are predicted with
    `fxmeter train`: peak memory and seconds per step."""
    from fxmeter.report.document import dumps
    from fxmeter.validate_training import document, render_file, validate_file

    v, t = validate_file(data, progress=progress_line if progress else None)
    click.echo(dumps(document(v, t)).decode() if as_json else render_file(v, t, reasons=not quiet))


COMMANDS = (validate,)
