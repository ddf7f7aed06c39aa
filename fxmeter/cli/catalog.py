"""``fxmeter models`` and ``fxmeter workloads``: what fxmeter knows by name."""

from __future__ import annotations

from typing import Any

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
@click.argument("model", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="With MODEL: print the details as JSON.")
def models(model: tuple[str, ...], as_json: bool) -> None:
    """List the models with bundled configs; with MODEL (one or more ids), each one's default workload, stages,
    their classes, parameters, dtypes and runs per generation (from the shipped traces, ~1 s a model)."""
    from fxmeter.model.registry import MODELS

    if not model:
        if as_json:
            raise click.UsageError("--json describes models named on the command line: fxmeter models MODEL --json")
        wid = max(len(m.id) for m in MODELS.values())
        wwl = max(len(m.default_workload) for m in MODELS.values())
        click.echo(f"{'model':<{wid}}  {'workload':<{wwl}}  description")
        for m in MODELS.values():
            click.echo(f"{m.id:<{wid}}  {m.default_workload:<{wwl}}  {m.description}")
        click.echo("(fxmeter models MODEL: its default workload, stages, classes, parameters and runs per generation)")
        return
    docs = [describe(m) for m in model]
    if as_json:
        import json

        click.echo(json.dumps(docs, indent=2))
        return
    for d in docs:
        click.echo("\n".join(detail_lines(d)))


def describe(model: str) -> dict[str, Any]:
    """One model at its default workload: the workload, and every stage the pipeline runs (the shipped traces)."""
    import fxmeter
    from fxmeter.model.registry import get_spec

    spec = get_spec(model)
    rep = fxmeter.trace(spec.id, run_id="models", include_nodes=False)
    d, wl = rep.data, rep.data["workload"]
    stages = [{"name": s["name"], "class": s["class"], "component": s["component"], "dtype": s["dtype"],
               "parameters": s["parameters"], "runs": s["runs"], "denoiser": s["denoiser"]}
              for s in (d.get("pipeline") or {}).get("stages") or ()]
    return {"id": spec.id, "description": spec.description, "class": d["model"]["diffusers_class"],
            "adapter": d["model"]["adapter"], "parameters": d["model"]["parameters"],
            "config_source": d["model"].get("config_source"),
            "workload": {k: wl[k] for k in ("name", "width", "height", "frames", "steps", "guidance_scale",
                                            "passes_per_step", "batch", "text_len", "tokens")},
            "stages": stages}


def detail_lines(d: dict[str, Any]) -> list[str]:
    wl = d["workload"]
    shape = f"{wl['width']}x{wl['height']}" + (f", {wl['frames']} frames" if wl["frames"] > 1 else "")
    out = [f"{d['id']}: {d['description']}",
           f"  default workload {wl['name']}: {shape}, {wl['steps']} steps, guidance {wl['guidance_scale']:g} "
           f"({wl['passes_per_step']} pass{'es' if wl['passes_per_step'] != 1 else ''} per step), batch {wl['batch']}, "
           f"text {wl['text_len']} tokens, {wl['tokens']:,} transformer tokens",
           f"  transformer {d['class']} (adapter {d['adapter']}): {d['parameters']:,} parameters",
           f"  {'stage':<22} {'class':<38} {'dtype':<9} {'parameters':>15} {'runs/generation':>15}"]
    for s in d["stages"]:
        out.append(f"  {s['name']:<22} {s['class']:<38} {s['dtype']:<9} {s['parameters']:>15,} {s['runs']:>15,}")
    if d.get("config_source"):
        out.append(f"  config: {d['config_source']}")
    return out


COMMANDS = (workloads, models)
