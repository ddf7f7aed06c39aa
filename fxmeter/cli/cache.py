"""``fxmeter cache info|clear|warm``: the symbolic traces shipped in the package and the user cache."""

from __future__ import annotations

import click

from fxmeter.cli.options import progress_line


@click.group("cache")
def cache() -> None:
    """Inspect, clear or fill the trace cache (shipped traces stay in the package)."""


@cache.command("info")
def info() -> None:
    """Where the cache is and what it holds."""
    from fxmeter.base.units import si_bytes
    from fxmeter.cost.store import info as cache_info
    from fxmeter.cost.training_store import info as training_info

    i = cache_info()
    t = training_info()
    click.echo(f"cache folder      {i['cache_dir']}")
    click.echo(f"cached traces     {i['entries']} ({si_bytes(i['bytes'])})")
    click.echo(f"training steps    {t['training_entries']} ({si_bytes(t['training_bytes'])}; `fxmeter train`'s "
               "forward + backward graphs)")
    click.echo(f"failed exports    {i['failed_dynamic_exports']} (dynamic exports that failed and are not retried)")
    click.echo(f"shipped traces    {i['shipped']} ({si_bytes(i['shipped_bytes'])}) in the package")
    click.echo("versions          " + ", ".join(f"{k} {v}" for k, v in i["versions"].items()))
    click.echo(f"rules fingerprint {i['rules']} (of all rules; a trace lists the rule files its ops use: editing one retraces those)")


@cache.command("clear")
def clear() -> None:
    """Remove every cached trace and training step (the shipped traces are part of the package and stay)."""
    from fxmeter.cost.store import clear as cache_clear
    from fxmeter.cost.training_store import clear as training_clear

    click.echo(f"removed {cache_clear() + training_clear()} cache entries")


@cache.command("warm")
@click.argument("models", nargs=-1)
@click.option("--dtype", default="bf16", show_default=True, help="Parameter dtype: bf16, fp16 or fp32.")
def warm(models: tuple[str, ...], dtype: str) -> None:
    """Trace MODELS (default: every bundled model) at their default workload, so later runs are instant."""
    from fxmeter.api import request, stage_inputs
    from fxmeter.model.registry import MODELS

    for mid in models or tuple(MODELS):
        req = request(mid, dtype=dtype)
        for inp in stage_inputs(req, progress=progress_line):
            click.echo(f"{mid}: {inp.plan.name} {inp.model.meta['mode']} trace from {inp.source} "
                       f"({inp.seconds:.1f} s)")


COMMANDS = (cache,)
