"""``fxmeter plan``: the Pareto frontier of every deployment of a model (seconds, $ and GPUs per generation),
``--rate`` for a fleet; ``fxmeter diagnose``: which setting explains a measured run."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import click

from fxmeter.cli.options import api_kwargs, knob_options, output_options
from fxmeter.estimate.memory import PEAK_KINDS


def _devices(hardware: str | None, hardware_file: str | None) -> list[Any]:
    from fxmeter.estimate.hardware import get_many, table

    if hardware is None or hardware.strip().lower() == "all":
        return list(table(hardware_file).values())
    return get_many(hardware, hardware_file)


def _positive(value: float | None, flag: str, *, zero: bool = True) -> None:
    from fxmeter.advise.planner import PlanError

    if value is None:
        return
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise PlanError(f"{flag} must be a {'non-negative' if zero else 'positive'} finite number, got {value:g}")


def command_for(model: str, base: dict[str, Any], setup: Any, price: float | None) -> str:
    """The ``fxmeter trace ...`` line of ``setup`` (``base``: the workload options the user gave)."""
    from fxmeter.base.knobs import command_line

    return command_line(model, {**base, **setup.options(price)})


@click.command("plan")
@click.argument("model", required=False)
@knob_options("trace", "model", "workload")
@click.option("--hardware", default="all", show_default=True,
              help="Devices to consider, comma-separated (h100,a100,l40s), or all (see `fxmeter hardware`).")
@click.option("--hardware-file", type=click.Path(), default=None, help="JSON file with more devices (or one device).")
@click.option("--max-gpus", type=int, default=8, show_default=True, help="Most GPUs of one device per generation.")
@click.option("--slo", type=float, default=None, help="Seconds per generation a setup must meet.")
@click.option("--budget", type=float, default=None, help="$ per generation a setup must meet (needs prices).")
@click.option("--price-per-hour", default=None,
              help="$ per GPU-hour: one number, or per device (h100=2.49,a100=1.29); without it the cost axis is "
                   "GPU-seconds per generation.")
@click.option("--exact-only", is_flag=True,
              help="Leave out the settings that change the output (fp8/int8 matmuls or attention, step cache, "
                   "fewer steps).")
@click.option("--rate", type=float, default=None,
              help="Generations per hour the fleet must serve: replicas x GPUs x batch at the lowest cost.")
@click.option("--p95", type=float, default=None, help="With --rate: 95th-percentile latency in seconds (queue + run).")
@click.option("--json", "as_json", is_flag=True, help="Print the frontier as JSON.")
@click.option("--write", is_flag=True,
              help="Also write a run folder: report.json (the fastest frontier row's report, the search as its "
                   "`plan` section), summary.md, and with --html report.html with the frontier chart.")
@output_options
@click.option("--html", "html", is_flag=True, help="With --write: also write report.html (the frontier chart).")
def plan(model: str | None, hardware: str, hardware_file: str | None, max_gpus: int, slo: float | None,
         budget: float | None, price_per_hour: str | None, exact_only: bool, rate: float | None, p95: float | None,
         as_json: bool, write: bool, run_id: str | None, output_root: str, force: bool, html: bool,
         **kw: Any) -> None:
    """Search every deployment of MODEL that fxmeter can price (device x GPUs x parallel plan x offload x
    attention kernel and precision x --compile x step cache / fewer steps), keep those that fit, and print the
    Pareto frontier of seconds, $ and GPUs per generation, each row with its `fxmeter trace` line and why it
    wins.  Settings that change the output are listed apart.  Exit 1 when the constraints leave nothing (one
    line names the nearest setup), 2 on invalid input."""
    from fxmeter.advise.planner import PlanError, Space, frontier, search
    from fxmeter.estimate.hardware import parse_prices

    opts = api_kwargs("trace", kw, "model", "workload")
    _positive(slo, "--slo")
    _positive(budget, "--budget")
    _positive(rate, "--rate", zero=False)
    _positive(p95, "--p95", zero=False)
    if not 1 <= max_gpus <= 64:
        raise PlanError(f"--max-gpus must be between 1 and 64, got {max_gpus}")
    if p95 is not None and rate is None:
        raise PlanError("--p95 is the latency of a fleet: give the --rate it must serve")
    if not write and (html or run_id is not None or force):
        raise PlanError("--html, --run-id and --force are options of --write (the run folder): add --write")
    out = _claim(model, opts.get("config"), run_id, output_root, force) if write else None
    devices = _devices(hardware, hardware_file)
    prices = parse_prices(price_per_hour, devices)
    if budget is not None and not prices:
        raise PlanError("--budget is $ per generation: give --price-per-hour (e.g. 2.49 or h100=2.49,a100=1.29)")
    if budget is not None and len(prices) < len(devices):
        devices = [d for d in devices if d.name in prices]  # a budget only prices devices with a price
    workload = opts.pop("workload")
    config, dtype = opts.pop("config"), opts.pop("dtype")
    overrides = {k: v for k, v in opts.items() if v is not None}
    res = search(model, workload, space=Space(devices, max_gpus, not exact_only, prices), config=config, dtype=dtype,
                 **overrides)
    base: dict[str, Any] = {k: v for k, v in (("workload", workload), ("config", config), ("dtype", dtype),
                                               *overrides.items()) if v is not None}

    def cmd(setup: Any) -> str:  # the row's device's price only (`trace --hardware DEV` prices that device)
        return command_for(res.model, base, setup, prices.get(setup.device) if price_per_hour is not None else None)

    fr = frontier(res, slo=slo, budget=budget if budget is None else budget, command=cmd)
    fleet = None
    if rate is not None and fr.impossible is None:
        from fxmeter.advise.fleet import size_fleet

        fleet = size_fleet(res, fr, rate=rate, p95=p95, model=model, workload=workload, config=config, dtype=dtype,
                           overrides=overrides, command=cmd)
    impossible = fr.impossible is not None or (fleet is not None and fleet.impossible is not None)
    doc = to_json(fr, fleet, constraints={"hardware": hardware, "max_gpus": max_gpus, "slo": slo, "budget": budget,
                                          "price_per_hour": price_per_hour, "exact_only": exact_only, "rate": rate,
                                          "p95": p95})
    text = [json.dumps(doc, indent=2, sort_keys=True)] if as_json else lines(fr, fleet)
    if out is None or impossible:
        for line in text:
            click.echo(line)
        if out is not None:
            click.echo("nothing written: the constraints leave no setup", err=True)
    else:
        _write(out, output_root, doc, fr, res.model, base, prices, price_per_hour, force, html, text)
    if impossible:
        sys.exit(1)


def _claim(model: str | None, config: Any, run_id: str | None, output_root: str, force: bool) -> Any:
    """The run folder ``--write`` will fill, refused before the search when a report is there (no ``--force``)."""
    from fxmeter.api import default_run_id
    from fxmeter.errors import OutputExistsError
    from fxmeter.model.registry import resolve_model
    from fxmeter.report.document import check_output_root, check_run_id
    from fxmeter.report.files import check_writable

    rid = check_run_id(default_run_id() if run_id is None else run_id)
    check_writable(output_root)
    out = check_output_root(output_root) / rid / "static_analysis" / resolve_model(model, config).slug
    if (out / "report.json").exists() and not force:
        raise OutputExistsError(f"{out / 'report.json'} exists; pass --force or choose another --run-id")
    return out


def _write(out: Any, output_root: str, doc: dict[str, Any], fr: Any, model: str, base: dict[str, Any], prices: dict[str, float],
           price_per_hour: str | None, force: bool, html: bool, text: list[str]) -> None:
    """report.json of the fastest frontier row (through :func:`fxmeter.api.trace`, as its command line would
    write it) with the search as ``plan``; summary.md; report.html with ``--html``.  All or nothing."""
    from dataclasses import replace

    from fxmeter.api import trace as api_trace
    from fxmeter.cli.console import print_then_commit
    from fxmeter.report.plan import PlanInfo

    best = fr.exact[0].priced.setup
    price = prices.get(best.device) if price_per_hour is not None else None
    rep = api_trace(model, run_id=out.parent.parent.name, **{**base, **best.options(price)})
    rep = replace(rep, plan=PlanInfo.from_dict(doc))

    def console(paths: list[Any]) -> list[str]:
        return [*text, *(f"wrote {p}" for p in paths)]

    rep.write(force=force, output_root=output_root, html=html, before_commit=print_then_commit(console))


def _row_json(r: Any) -> dict[str, Any]:
    p = r.priced
    from fxmeter.report.plan import PlanRow

    return PlanRow(p.seconds, p.dollars, p.gpu_seconds, p.gpus, p.setup.device, int(p.peak_bytes), p.setup.options(),
                   tuple(p.quality), r.command, r.why).to_dict()


def to_json(fr: Any, fleet: Any = None, constraints: dict[str, Any] | None = None) -> dict[str, Any]:
    """The search as a document: what ``--json`` prints and report.json's ``plan`` section (``--write``)."""
    res = fr.result
    doc: dict[str, Any] = {
        "model": res.model, "workload": res.workload.name, "priced": len(res.rows), "fit": len(res.fitting),
        "meeting_constraints": fr.kept, "search_seconds": res.seconds, "impossible": fr.impossible,
        "notes": list(res.notes), "constraints": dict(constraints or {}),
        "frontier": [_row_json(r) for r in fr.exact], "changes_output": [_row_json(r) for r in fr.quality],
        "cost_axis": "dollars" if any(r.priced.dollars is not None for r in fr.exact) else "gpu_seconds"}
    if fleet is not None:
        doc["fleet"] = fleet.to_dict()
    return doc


def _table(rows: Any) -> list[str]:
    out = [f"  {'s/gen':>9} {'$/gen':>9} {'GPU-s':>9} {'GPUs':>4}  {'GiB/GPU':>7}  setup"]
    for r in rows:
        p = r.priced
        d = "-" if p.dollars is None else f"{p.dollars:.4f}"
        out.append(f"  {p.seconds:>9,.1f} {d:>9} {p.gpu_seconds:>9,.0f} {p.gpus:>4}  {p.peak_bytes / 2**30:>7.1f}  "
                   f"{_label(p.setup)}")
        out.append(f"      why: {r.why}")
        out.append(f"      {r.command}")
    return out


def _label(s: Any) -> str:
    from fxmeter.advise.planner import describe

    return describe(s)


def lines(fr: Any, fleet: Any = None) -> list[str]:
    res = fr.result
    wl = res.workload
    shape = f"{wl.width}x{wl.height}" + (f", {wl.frames} frames" if wl.frames > 1 else "") + f", {wl.steps} steps"
    devices = sorted({r.setup.device for r in res.rows})
    head = (f"{res.model}, workload {wl.name} ({shape}): {len(res.rows):,} setups priced exactly on "
            f"{len(devices)} device(s) in {res.seconds:.1f} s, {len(res.fitting):,} fit")
    notes = [f"note: {n}" for n in res.notes]
    if fr.impossible is not None:
        return [head, *notes, f"impossible: {fr.impossible}"]
    out = [head + f", {fr.kept:,} meet the constraints"]
    priced = any(r.priced.dollars is not None for r in fr.exact)
    out.append("Pareto frontier (seconds, " + ("$" if priced else "GPU-seconds") + " and GPUs per generation; "
               "same output as the default setup):")
    out += _table(fr.exact)
    if fr.quality:
        out.append("Faster or cheaper still, but CHANGING THE OUTPUT (quantization, step cache, fewer steps):")
        out += _table(fr.quality)
    if not priced:
        out.append("(no prices: the cost axis is GPU-seconds per generation; --price-per-hour gives $)")
    if fleet is not None:
        out += fleet.lines()
    return out + notes




@click.command("diagnose")
@click.argument("model", required=False)
@knob_options("trace", "model", "workload", "device", "parallel", "pipeline")
@click.option("--measured", type=float, required=True, help="Seconds the run took (one generation, end to end).")
@click.option("--measured-peak-gb", type=float, default=None, help="Peak GPU memory the run reached, GB (1e9 bytes).")
@click.option("--peak-kind", type=click.Choice(PEAK_KINDS), default="reserved",
              show_default=True, help="What --measured-peak-gb is: torch.cuda.max_memory_allocated, "
              "max_memory_reserved, or what nvidia-smi shows (reserved + CUDA context + NCCL buffers).")
@click.option("--trace", "trace_now", is_flag=True, help="Trace now the dtypes a cause needs (fp32) when not shipped.")
@click.option("--json", "as_json", is_flag=True, help="Print the diagnosis as JSON.")
def diagnose(model: str | None, measured: float, measured_peak_gb: float | None, peak_kind: str, trace_now: bool,
             as_json: bool, **kw: Any) -> None:
    """Which single setting explains a measured run of MODEL on --hardware (attention FA2/FA3/SDPA, offload,
    fp32 weights, eager vs compiled, ring vs Ulysses, the VAE in fp32, host-bound dispatch): each cause with
    the time it predicts and the change to make, best first; or "within N%" when nothing is off."""
    from fxmeter.advise.diagnose import diagnose as run
    from fxmeter.advise.planner import PlanError

    opts = api_kwargs("trace", kw, "model", "workload", "device", "parallel", "pipeline")
    _positive(measured, "--measured", zero=False)
    _positive(measured_peak_gb, "--measured-peak-gb", zero=False)
    if opts.get("hardware") is None:
        raise PlanError("fxmeter diagnose needs --hardware: the device the run was measured on")
    workload, config = opts.pop("workload"), opts.pop("config")
    d = run(model, workload, measured=measured, measured_peak_gb=measured_peak_gb, peak_kind=peak_kind, config=config,
            trace=trace_now, **opts)
    if as_json:
        click.echo(json.dumps(d.to_dict(), indent=2, sort_keys=True))
        return
    for line in d.lines():
        click.echo(line)


COMMANDS = (plan, diagnose)
