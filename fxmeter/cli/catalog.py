"""``fxmeter models`` and ``fxmeter workloads``: what fxmeter knows by name."""

from __future__ import annotations

import click


@click.command("workloads")
def workloads() -> None:
    """List the workload presets (and the model family each is made for)."""
    from fxmeter.model.workload import ALIASES, PRESETS

    alias = {v: k for k, v in ALIASES.items() if k.isupper()}
    click.echo(f"{'name':<14} {'alias':<6} {'family':<13} {'frames':>6} {'height':>6} {'width':>6} {'steps':>5} "
               f"{'text':>5} {'batch':>5} {'cfg':>4}")
    for w in PRESETS.values():
        click.echo(f"{w.name:<14} {alias.get(w.name, ''):<6} {w.family or 'any':<13} {w.frames:>6} {w.height:>6} "
                   f"{w.width:>6} {w.steps:>5} {w.text_len:>5} {w.batch:>5} {w.guidance_scale:>4g}  {w.description}")


@click.command("models")
def models() -> None:
    """List the models with bundled configs."""
    from fxmeter.model.registry import MODELS

    wid = max(len(m.id) for m in MODELS.values())
    wwl = max(len(m.default_workload) for m in MODELS.values())
    click.echo(f"{'model':<{wid}}  {'workload':<{wwl}}  description")
    for m in MODELS.values():
        click.echo(f"{m.id:<{wid}}  {m.default_workload:<{wwl}}  {m.description}")


COMMANDS = (workloads, models)
