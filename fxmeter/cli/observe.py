"""``fxmeter observe``: run the real diffusers pipeline on meta and print every component call."""

from __future__ import annotations

import json
from typing import Any

import click

from fxmeter.cli.options import api_kwargs, model_options


def _inputs(inputs: Any) -> str:
    return ", ".join(f"{n} {t}" for n, t in inputs)


@click.command("observe")
@click.argument("model", required=False)
@model_options
@click.option("--axes", is_flag=True, help="Also run one workload per knob (frames, height, width, text_len, batch) "
                                           "and print which knobs each input axis follows.")
@click.option("--json", "as_json", is_flag=True, help="Print the observation as JSON.")
def observe(model: str | None, axes: bool, as_json: bool, **kw: Any) -> None:
    """Build MODEL's diffusers pipeline on meta (a model id or a pipeline folder), run one generation and
    print each component's calls: runs, steps, batch, input shapes and dtypes; and whether the hand
    adapter's plan agrees."""
    from fxmeter.model import observe as ob
    from fxmeter.model.workload import normalize_dtype

    opts = api_kwargs("trace", kw, "model", "workload")
    opts = {k: v for k, v in opts.items() if k in ("workload", "config", "dtype") or k in _overrides()}
    resolved, obs = ob.observe_model(model, **opts)
    batched = ob.cfg_batched(obs)
    diffs = ob.compare_with_plan(resolved, obs, normalize_dtype(opts.get("dtype") or "bf16"), batched_cfg=batched)
    found: list[ob.Axis] = []
    axis_diffs: list[str] = []
    if axes:
        found = list(ob.infer_axes(resolved, obs.workload, normalize_dtype(opts.get("dtype") or "bf16"))[0])
        axis_diffs = ob.check_axes(resolved, tuple(found), obs.workload)
    if as_json:
        d = obs.to_dict()
        d["cfg_batched"] = batched
        d["plan_differences"] = [str(m) for m in diffs]
        if axes:
            d["axes"] = [{"stage": a.stage, "input": a.name, "axis": a.axis, "size": a.size, "follows": list(a.follows),
                          "sizes": dict(a.sizes)} for a in found]
            d["axis_differences"] = axis_diffs
        click.echo(json.dumps(d, indent=2))
        return
    wl = obs.workload
    click.echo(f"{resolved.id} @ {wl.name}: {obs.pipeline}, scheduler {obs.scheduler}, {wl.steps} steps, "
               f"guidance {wl.guidance_scale:g}, batch {wl.batch}")
    click.echo(f"{'stage':<16} {'method':<8} {'runs':>5} {'steps':>5} {'per step':>8} {'batch':>5}  inputs")
    for s in obs.stages():
        steps = str(len(s.steps)) if s.steps else "-"
        per = str(s.calls_per_step) if s.steps else "-"
        more = f"  ({s.signatures} signatures)" if s.signatures > 1 else ""
        click.echo(f"{s.name:<16} {s.method:<8} {s.runs:>5} {steps:>5} {per:>8} {s.batch or '-':>5}  {_inputs(s.inputs)}{more}")
    if batched:
        click.echo("CFG: one denoiser forward of 2x the batch per step (fxmeter's --batched-cfg)")
    switch = obs.expert_switch()
    if switch is not None:
        t = "" if switch[1] is None else f" (timestep {switch[1]:g})"
        click.echo(f"experts: transformer_2 takes over at step {switch[0]}{t}")
    click.echo("patched: " + "; ".join(obs.patched))
    if diffs:
        click.echo(f"plan: {len(diffs)} difference(s) from the hand adapter's plan:")
        for m in diffs:
            click.echo(f"  {m}")
    else:
        click.echo("plan: the hand adapter's plan agrees (stages, runs, steps, batch, input shapes and dtypes)")
    if axes:
        click.echo("axes (knobs each input axis follows; the rest stay constant):")
        for a in found:
            if a.follows:
                click.echo(f"  {a.stage}.{a.name}[{a.axis}] = {a.size}: {', '.join(a.follows)} "
                           f"({', '.join(f'{k} -> {v}' for k, v in a.sizes.items() if k in a.follows)})")
        if axis_diffs:
            click.echo(f"axes: {len(axis_diffs)} difference(s) from the adapter's symbol_axes:")
            for line in axis_diffs:
                click.echo(f"  {line}")
        elif not resolved.adapter.supports_dynamic(resolved.config):
            click.echo("axes: static export (one trace per workload): the plan's inputs are compared per workload")
        else:
            click.echo("axes: the denoiser's axes follow the adapter's symbol_axes")


def _overrides() -> tuple[str, ...]:
    from fxmeter.model.workload import OVERRIDABLE

    return tuple(OVERRIDABLE)


COMMANDS = (observe,)
