"""summary.md and the console headline, rendered from the typed report alone (re-renderable).

Why one long module: summary.md and the console lines print the same figures with the same
labels (transformer alone vs whole generation, bound vs predicted, stand-ins named); keeping
both renderers here keeps those labels identical.

``render(rep)`` gives the markdown; :func:`fxmeter.report.charts.charts_png` the PNG charts
that go beside it; ``headline(rep)`` and ``device_lines(rep)`` what ``fxmeter trace`` prints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fxmeter.base.units import human, human_bytes, seconds, si_bytes, with_unit
from fxmeter.cost.tree import fold_id, foldable_parents, folded_label
from fxmeter.estimate.roofline import LIMITERS
from fxmeter.report import deployment, plan
from fxmeter.report.document import ReportDocument, Total
from fxmeter.report.top import top

METRIC_ROWS = ("tensor_core_flops", "cuda_core_flops", "flops", "bytes_read", "bytes_written")


def _cell(text: str) -> str:
    """Escape what would break a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def render(rep: ReportDocument, charts: Sequence[tuple[str, str]] = ()) -> str:
    """summary.md text; ``charts`` are (alt text, file name) pairs linked under "Charts"."""
    wl, model, tot, mem = rep.workload, rep.model, rep.totals, rep.memory
    pf, e2e = tot.per_forward.metrics, tot.end_to_end.metrics
    out: list[str] = []
    out.append(f"# fxmeter: {model.id} @ {wl.name}\n")
    out.append(f"`{model.diffusers_class}` ({model.parameters:,} parameters, {wl.dtype}), "
               f"traced with {rep.trace.exporter} ({rep.trace.mode} shapes).\n")
    if rep.pipeline is not None:
        out.append(pipeline_markdown(rep))
    out.append("## Workload\n")
    out.append("| knob | value |\n|---|---|")
    for k in ("frames", "height", "width", "steps", "batch", "text_len", "guidance_scale", "passes_per_step"):
        out.append(f"| {k} | {getattr(wl, k)} |")
    out.append(f"| latent shape | {' x '.join(map(str, wl.latent_shape))} |")
    out.append(f"| tokens | {wl.tokens:,} |\n")
    out.append("## Totals\n")
    out.append("| metric | per forward | end to end |\n|---|---:|---:|")
    for k in METRIC_ROWS:
        a, b = pf.value(k), e2e.value(k)
        out.append(f"| {k} | {a:,} ({with_unit(a, k)}) | {b:,} ({with_unit(b, k)}) |")
    out.append(f"\n{end_to_end_sentence(rep)}\n")
    out.append("## Memory\n")
    out.append("| item | bytes |\n|---|---:|")
    out.append(f"| weights | {mem.weight_bytes:,} ({si_bytes(mem.weight_bytes)}) |")
    for dt, b in mem.weight_bytes_by_dtype.items():
        out.append(f"| weights in {_cell(dt)} | {b:,} ({si_bytes(b)}) |")
    out.append(f"| peak activations | {mem.activation_peak_bytes:,} ({si_bytes(mem.activation_peak_bytes)}) |")
    out.append(f"| weights + peak activations | {mem.total_bytes:,} ({si_bytes(mem.total_bytes)}) |\n")
    out.append("## Top modules (own tensor-core FLOPs per forward)\n")
    t = top(rep, "module", "tensor_core_flops", 10)
    fold = next((r for r in t.rows if r.count > 1), None)
    if fold is not None:
        out.append(f"Repeated blocks are folded: `{fold.key}` ({fold.count} blocks, summed) is the sum over its "
                   f"{fold.count} instances; one instance costs 1/{fold.count} of the row.\n")
    out.append("| module | class | tensor-core FLOPs | share |\n|---|---|---:|---:|")
    for r in t.rows:
        count = f" ({r.count} blocks, summed)" if r.count > 1 else ""
        out.append(f"| `{_cell(r.key)}`{count} | {_cell(r.label)} | {int(r.value):,} ({human(r.value, 'FLOP')}) | "
                   f"{100 * r.share:.2f}% |")
    if not t.rows:
        out.append("| (no tensor-core FLOPs) | | 0 | |")
    out.append("\n## Top categories (per forward)\n")
    out.append("| category | tensor-core FLOPs | share | CUDA-core FLOPs | bytes read+written |\n|---|---:|---:|---:|---:|")
    cats = sorted(rep.categories.items(), key=lambda kv: (-kv[1].metrics.flops, kv[0]))
    for name, c in cats[:5]:
        m = c.metrics
        out.append(f"| {_cell(name)} | {m.tensor_core_flops:,} ({human(m.tensor_core_flops, 'FLOP')}) | "
                   f"{100 * c.tensor_core_share:.2f}% | {m.cuda_core_flops:,} ({human(m.cuda_core_flops, 'FLOP')}) | "
                   f"{m.bytes:,} ({si_bytes(m.bytes)}) |")
    if len(cats) > 5:
        out.append(f"\n{len(cats) - 5} more categories in report.json (`fxmeter top REPORT --by category -k 20`).")
    out.append("\n## Charts\n")
    if charts:
        out.append("\n\n".join(f"![{alt}]({name})" for alt, name in charts))
    else:
        out.append("Not drawn for this run (they cost ~1 s): `fxmeter summary report.json` adds them here, "
                   "as does `fxmeter trace --plots`.")
    if rep.hardware is not None:
        out.append("\n" + device_markdown(rep))
    if rep.deployment is not None:
        out.append("\n" + deployment.markdown(rep.deployment, _price(rep, rep.deployment.device.get("name"))))
    if rep.plan is not None:
        out.append("\n" + plan.markdown(rep.plan))
    out.append("\n## Unmodeled ops\n")
    if rep.unmodeled_ops:
        out.append("| op | count | modules |\n|---|---:|---|")
        for u in rep.unmodeled_ops:
            mods = ", ".join(f"`{x}`" for x in u.modules[:5]) + (" ..." if len(u.modules) > 5 else "")
            out.append(f"| `{_cell(u.op)}` | {u.count} | {mods} |")
    else:
        out.append("None: every op in the graph has a rule or is on the free list.")
    out.append("\n## Notes\n")
    out.extend(f"- {n}" for n in rep.notes)
    return "\n".join(out) + "\n"


def forwards_run(rep: ReportDocument) -> tuple[int, int]:
    """(transformer forwards the workload asks for, forwards actually run): fewer under ``--cache-skip``."""
    wl = rep.workload
    full = wl.steps * wl.passes_per_step
    if rep.pipeline is not None:
        den = [st for st in rep.pipeline.stages if st.denoiser]
        if den:
            return full, sum(st.runs for st in den)
    skip = float(rep.trace.options.get("cache_skip") or 0.0)
    return full, full - int(full * skip)


def end_to_end_sentence(rep: ReportDocument) -> str:
    """summary.md's "End to end = ..." line, with the arithmetic true (forwards a step cache skips left out)."""
    wl, e2e = rep.workload, rep.totals.end_to_end.metrics
    full, ran = forwards_run(rep)
    if ran == full:
        return (f"End to end = per forward x {wl.steps} steps x {wl.passes_per_step} passes per step "
                f"= {human(e2e.flops, 'FLOP')}.")
    skip = float(rep.trace.options.get("cache_skip") or 0.0)
    return (f"End to end = per forward x {ran:,} forwards run = {human(e2e.flops, 'FLOP')} "
            f"({wl.steps} steps x {wl.passes_per_step} passes = {full:,} forwards, of which --cache-skip {skip:g} "
            f"skips {full - ran:,}, counted as free).")


def pipeline_markdown(rep: ReportDocument) -> str:
    """The stage table summary.md opens with: each stage per run and end to end, the generation's total."""
    p = rep.pipeline
    assert p is not None
    timed = p.end_to_end.bound_seconds is not None
    pred = timed and p.end_to_end.predicted_seconds is not None
    e2e = p.end_to_end.metrics
    out = ["## Pipeline (one generation)\n",
           "| stage | class | dtype | runs | tensor-core FLOPs per run | FLOPs end to end | share | weights | peak activations |"
           + (" bound s end to end |" if timed else "") + (" predicted s end to end |" if pred else ""),
           "|---|---|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if timed else "") + ("---:|" if pred else "")]

    def secs(t: Total, host: bool = False) -> str:
        if not timed:
            return ""
        if host:
            return " host CPU (not modeled) |" + (" host CPU (not modeled) |" if pred else "")
        b = "n/a" if t.bound_seconds is None else f"{t.bound_seconds:,.3f}"
        q = "n/a" if t.predicted_seconds is None else f"{t.predicted_seconds:,.3f}"
        return f" {b} |" + (f" {q} |" if pred else "")

    for st in p.stages:
        f = st.end_to_end.metrics.flops
        out.append(f"| `{_cell(st.name)}` | {_cell(st.cls)} | {st.dtype} | {st.runs} | "
                   f"{human(st.per_run.metrics.tensor_core_flops, 'FLOP')} | {human(f, 'FLOP')} | "
                   f"{100 * f / (e2e.flops or 1):.1f}% | {si_bytes(st.weight_bytes)} | {si_bytes(st.activation_peak_bytes)} |"
                   + secs(st.end_to_end, st.on_host))
    out.append(f"| **generation** | | | | | {human(e2e.flops, 'FLOP')} | 100% | {si_bytes(p.weight_bytes)} | |"
               + secs(p.end_to_end))
    r = p.residency
    if r:
        line = (f"\nResidency `--offload {r.get('policy', '?')}`"
                + (f" ({r['description']})" if r.get("description") else "")
                + (f": peak {si_bytes(r['peak_bytes'])}" if r.get("peak_bytes") is not None else "")
                + (f" during `{r['peak_stage']}`" if r.get("peak_stage") else ""))
        if r.get("host_to_device_bytes") or r.get("device_to_host_bytes"):
            moved = r.get("transfer_seconds")
            line += (f"; copies host->device {si_bytes(r.get('host_to_device_bytes') or 0)}, device->host "
                     f"{si_bytes(r.get('device_to_host_bytes') or 0)}"
                     + (f" ({moved:,.2f} s over PCIe)" if moved is not None else ""))
        out.append(line + ".")
        if r.get("fit") and r["fit"].get("statement"):
            out.append(f"\n**Fit:** {r['fit']['statement']}.")
        if p.policies and any(x.get("fits") is not None for x in p.policies):
            out.append("\nEvery policy: " + "; ".join(
                f"`{x['policy']}` {si_bytes(x['peak_bytes'])} ({_fits(x.get('fits'))})" for x in p.policies) + ".")
    if len(p.stages) > 1:
        out.append("\n`fxmeter top REPORT --stage NAME` ranks a stage's modules; the sections below describe the "
                   "denoising stage (the transformer).")
    for n in p.notes:
        out.append(f"\n{n}.")
    return "\n".join(out) + "\n"


def _price(rep: ReportDocument, device: str | None) -> float | None:
    """The $ per GPU-hour the report priced ``device`` at (``--price-per-hour``, or the device table's)."""
    return next((d.price_per_hour for d in rep.devices or () if d.name == device), None)


def _offload_flags(policy: str) -> str:
    """A residency policy's name (``wan+t5_cpu``) as the command-line options that select it."""
    base, _, t5 = policy.partition("+")
    return f"--offload {base}" + (" --t5-cpu" if t5 else "")


def _fits(f: bool | None) -> str:
    return "fit not known" if f is None else "fits" if f else "does not fit"


def _selected(rep: ReportDocument) -> list[str] | None:
    """The stages ``--stages`` asked for (None: all of them)."""
    chosen = rep.trace.options.get("stages")
    if isinstance(chosen, str):
        chosen = [c for c in chosen.split(",") if c and c != "all"]
    return list(chosen) if chosen else None


def _stage_seconds(t: Total, host: bool) -> str:
    if host:
        return ", host CPU (time not modeled)"
    if t.bound_seconds is None:
        return ""
    return ("" if t.predicted_seconds is None else f", predicted {seconds(t.predicted_seconds)}") + \
        f", bound {seconds(t.bound_seconds)}"


def pipeline_lines(rep: ReportDocument) -> list[str]:
    """What `fxmeter trace` prints about the whole generation (stages beyond the transformer).

    With ``--stages`` the selected stages get a line each (a lone ``--stages vae`` too), under a
    head that says which stages the total adds up."""
    p = rep.pipeline
    chosen = _selected(rep)
    missing = [n.removeprefix("not modeled: ") for n in rep.notes if n.startswith("not modeled: ")]
    if missing and chosen is None:  # a bare transformer config: say what the figures above leave out, and why
        return [f"  whole generation NOT modeled: the figures above are the transformer's alone; missing "
                f"{m}" for m in missing]
    if p is None or not p.stages or (chosen is None and len(p.stages) < 2):
        return []
    e2e = p.end_to_end
    what = "whole generation" if chosen is None else f"stages asked for (--stages {','.join(chosen)})"
    one = rep.deployment is not None  # these lines are one GPU's: say so beside the N-GPU lines
    if one:
        what += " on ONE GPU"
    head = f"  {what} ({', '.join(f'{s.name} x{s.runs}' for s in p.stages)}): {human(e2e.metrics.flops, 'FLOP')}"
    if e2e.bound_seconds is not None:
        if e2e.predicted_seconds is not None:
            head += f", predicted {seconds(e2e.predicted_seconds)}"
        head += f", bound {seconds(e2e.bound_seconds)}"
        if p.transfer_seconds:
            head += f" (incl. {seconds(p.transfer_seconds)} of host<->device copies)"
        if not _fits_here(rep):
            head += " -- does NOT fit (seconds as if it did)"
    lines = [head]
    if chosen is not None:
        for st in p.stages:
            lines.append(f"    {st.name} ({st.cls}) x{st.runs}: {human(st.end_to_end.metrics.flops, 'FLOP')}"
                         + _stage_seconds(st.end_to_end, st.on_host))
    r = p.residency
    if r and r.get("fit") and r["fit"].get("statement"):
        lines.append(f"  {'on ONE GPU: ' if one else ''}{r['fit']['statement']}")
    return lines


def console_lines(rep: ReportDocument) -> list[str]:
    """Everything `fxmeter trace` prints under the headline, the N-GPU deployment (``--gpus N``) last.

    One device: the transformer's seconds and fit, the side-by-side table, then the whole generation
    (:func:`pipeline_lines`).  With ``--gpus N`` the one-GPU lines come first, labelled as one GPU's,
    and the lines for the N GPUs close the output, so its last lines never fall back to one GPU."""
    if rep.deployment is None:
        return device_lines(rep) + pipeline_lines(rep)
    dep = deployment.console_lines(rep.deployment, _price(rep, rep.deployment.device.get("name")))
    lines = device_lines(rep)
    head = lines[:len(lines) - len(dep)]
    return head + pipeline_lines(rep) + dep


def device_markdown(rep: ReportDocument) -> str:
    """The summary.md section for a report with a device: bound (and predicted) seconds, limiters, fit."""
    hw, tot, mem = rep.hardware, rep.totals, rep.memory
    assert hw is not None
    predicted = tot.per_forward.predicted_seconds is not None
    out = ["## Time on the device\n"]
    out.append(
        f"{hw.label}, {hw.precision} matmuls, {rep.totals.traffic_model} traffic model. **bound** = the roofline at "
        f"100% of every peak (no real kernel is faster)"
        + (f"; **{_predicted_label(rep)}**: {hw.model.split('predicted_seconds: ', 1)[-1]}" if predicted else "")
        + f". Ridge point {hw.ridge_point_flop_per_byte['tensor_core']:.0f} FLOP/byte (tensor cores), "
        f"{hw.ridge_point_flop_per_byte['cuda_core']:.1f} FLOP/byte (CUDA cores).\n"
    )
    cross = [x for x in hw.stand_ins if x.get("cross_architecture")]
    if cross:
        out.append("**Priced with another architecture's measurements:** "
                   + "; ".join(_cell(str(x.get("text", ""))) for x in cross) + ".\n")
    out.append("| scope | bound seconds |" + (" predicted seconds |" if predicted else "")
               + "\n|---|---:|" + ("---:|" if predicted else ""))
    for k in ("per_forward", "per_step", "end_to_end"):
        t = getattr(tot, k)
        pred = "-" if t.predicted_seconds is None else f"{t.predicted_seconds:,.3f}"
        out.append(f"| {k} | {t.bound_seconds:,.3f} |" + (f" {pred} |" if predicted else ""))
    sb = hw.seconds_by_limiter_per_forward
    pf = tot.per_forward.bound_seconds or 1.0
    out.append("\nBound per forward, by what limits each node: " + ", ".join(
        f"{b} {sb.get(b, 0.0):,.3f} s ({100 * sb.get(b, 0.0) / pf:.1f}%)" for b in LIMITERS))
    parents = foldable_parents((m.id, m.cls) for m in rep.modules)
    groups: dict[str, list] = {}
    for m in rep.modules:
        if m.times is not None and m.times.self_bound_seconds:
            groups.setdefault(fold_id(m.id, parents), []).append(m)
    ranked = sorted(groups.items(), key=lambda kv: (-sum(m.times.self_bound_seconds for m in kv[1]), kv[0]))
    out.append("\n| module (own nodes; folded blocks summed) | class | bound s per forward | share | limiter | FLOP/byte |")
    out.append("|---|---|---:|---:|---|---:|")
    for key, ms in ranked[:12]:
        m0, secs = ms[0], sum(m.times.self_bound_seconds for m in ms)
        ai = f"{m0.own.flops / m0.own.bytes:,.1f}" if m0.own.bytes else "-"
        out.append(f"| `{_cell(folded_label(key, len(ms)))}` | {_cell(m0.cls)} | {secs:.4f} | {100 * secs / pf:.1f}% | "
                   f"{m0.times.self_limiter} | {ai} |")
    if mem.fit is not None:
        out.append(f"\n**Fit:** {mem.fit.statement}.")
    if rep.devices:
        out.append("\n### Devices side by side\n")
        out.append("```\n" + "\n".join(devices_table(rep)) + "\n```")
    return "\n".join(out) + "\n"


def headline(rep: ReportDocument) -> str:
    """The few console lines `fxmeter trace` prints."""
    wl, tot, mem = rep.workload, rep.totals, rep.memory
    pf, e2e = tot.per_forward.metrics, tot.end_to_end.metrics
    root = rep.modules[0].id + "." if rep.modules else ""
    lines = [
        f"{rep.model.id} @ {wl.name}: {wl.tokens:,} tokens (latent {'x'.join(map(str, wl.latent_shape))}), "
        f"{wl.steps} steps x {wl.passes_per_step} passes" + _skipped(rep),
        f"  tensor-core FLOPs per forward  {pf.tensor_core_flops:>28,}  ({human(pf.tensor_core_flops, 'FLOP')})",
        f"  CUDA-core FLOPs per forward    {pf.cuda_core_flops:>28,}  ({human(pf.cuda_core_flops, 'FLOP')})",
        f"  FLOPs end to end               {e2e.flops:>28,}  ({human(e2e.flops, 'FLOP')})",
        f"  weights {human_bytes(mem.weight_bytes)}, peak activations {human_bytes(mem.activation_peak_bytes)}",
        "  top modules (own tensor-core FLOPs): " + ", ".join(
            f"{folded_label(r.key.removeprefix(root), r.count)} {100 * r.share:.1f}%"
            for r in top(rep, "module", "tensor_core_flops", 3).rows),
    ]
    return "\n".join(lines)


def _skipped(rep: ReportDocument) -> str:
    full, ran = forwards_run(rep)
    return "" if ran == full else f" ({ran:,} of {full:,} forwards run: --cache-skip skips the rest)"


def _predicted_label(rep: ReportDocument) -> str:
    hw = rep.hardware
    if hw is None:
        return ""
    if "kernel model" in hw.model:
        return "predicted (kernel model)"
    e = hw.efficiency
    return f"predicted (roofline at efficiency tc={e['tc']:g} cuda={e['cuda']:g} bw={e['bw']:g})"


def _short(x: Mapping[str, Any]) -> str:
    """A stand-in (report.json's ``stand_ins`` entry) without the device it prices."""
    return str(x.get("short") or x.get("text") or x.get("key", ""))


def _fits_here(rep: ReportDocument) -> bool:
    """Whether the report's setup fits its main device: the policy's whole-generation fit, else the transformer's."""
    r = rep.pipeline.residency if rep.pipeline is not None else None
    if r and r.get("fit") and r["fit"].get("fits") is not None:
        return bool(r["fit"]["fits"])
    return rep.memory.fit is None or rep.memory.fit.fits


def device_lines(rep: ReportDocument) -> list[str]:
    """What `fxmeter trace --hardware` prints under the headline: both seconds, labelled."""
    hw, tot, mem = rep.hardware, rep.totals, rep.memory
    if hw is None:
        return []
    e2e, pf = tot.end_to_end, tot.per_forward
    staged = rep.pipeline is not None and (len(rep.pipeline.stages) > 1 or _selected(rep) is not None)
    lines = [f"  {hw.label}{' (ONE GPU)' if rep.deployment is not None else ''} ({hw.precision}, {rep.totals.traffic_model} traffic)"
             + ((", the denoising transformer alone (" + ("whole generation" if _selected(rep) is None else "the stages asked for")
                 + " below):") if staged else ":")]
    cross = [x for x in hw.stand_ins if x.get("cross_architecture")]
    if cross:
        lines[0] = lines[0].rstrip(":") + " -- priced with ANOTHER ARCHITECTURE's measurements (below):"
    lines += [f"    stand-in: {x.get('text', x.get('key', ''))}" for x in sorted(
        hw.stand_ins, key=lambda x: not x.get("cross_architecture"))]
    if not _fits_here(rep):
        lines.append("    (does NOT fit in this device's memory, see the fit line: the seconds below are what it would "
                     "take if it did)")
    if e2e.predicted_seconds is not None:
        lines.append(f"    {_predicted_label(rep)}: {seconds(e2e.predicted_seconds)} end to end "
                     f"({seconds(pf.predicted_seconds or 0.0)} per forward)")
    lines.append(f"    bound (roofline at 100% of every peak, no kernel is faster): {seconds(e2e.bound_seconds or 0.0)} "
                 f"end to end ({seconds(pf.bound_seconds or 0.0)} per forward)")
    offload = str(rep.trace.options.get("offload") or "none")
    if mem.fit is not None and (offload == "none" or rep.pipeline is None):
        lines.append(f"  {'transformer alone: ' if staged else ''}{mem.fit.statement}")
    elif mem.fit is not None:  # the transformer-alone fit ignores the policy: the policy's fit line (below) is the one
        lines.append(f"  memory under --offload {offload}: see the fit line of the generation below (weights resident "
                     "per the policy, not the transformer's all at once)")
    if rep.devices:
        lines.append("")
        lines += devices_table(rep)
    if rep.deployment is not None:
        lines += deployment.console_lines(rep.deployment, _price(rep, rep.deployment.device.get("name")))
    return lines


def devices_table(rep: ReportDocument) -> list[str]:
    """The side-by-side table of ``--hardware a,b,c``: seconds, generations per hour, GPU-hours, $, fit."""
    rows = rep.devices or ()
    priced = any(d.dollars is not None for d in rows)
    lw = max([len(d.label) for d in rows] + [24])  # the full device name, never cut
    head = (f"  {'device':<{lw}} {'predicted s':>12} {'bound s':>10} {'gen/hour':>9} {'GPU-h/gen':>10}"
            + (f" {'$/gen':>9}" if priced else "") + "  fits")
    out = [head]
    for d in rows:
        if not d.fits and not d.fits_with:  # no policy fits: no seconds, rates or $ that could pass for valid
            out.append(f"  {d.label:<{lw}} {'-':>12} {'-':>10} {'-':>9} {'-':>10}" + (f" {'-':>9}" if priced else "")
                       + "  NO: does not fit, with any --offload")
            continue
        out.append(f"  {d.label:<{lw}} {d.predicted_seconds:>12,.1f} {d.bound_seconds:>10,.1f} "
                   f"{d.generations_per_hour:>9,.2f} {d.gpu_hours:>10,.4f}"
                   + (f" {f'{d.dollars:.4f}' if d.dollars is not None else '-':>9}" if priced else "")
                   + ("  yes" if d.fits else f"  with {_offload_flags(d.fits_with or 'none')}")
                   + (" [stand-in across architectures]" if any(x.get("cross_architecture") for x in d.stand_ins) else ""))
    out.append(f"  (predicted by the {rows[0].predicted_by if rows else 'kernel model'}; one generation on one device; "
               "GPU-hours = predicted seconds / 3600)")
    for d in rows:
        if d.stand_ins:
            out.append(f"  ({d.label}: priced with stand-ins: " + "; ".join(
                _short(x) for x in sorted(d.stand_ins, key=lambda x: not x.get("cross_architecture"))) + ")")
    if any(d.fits_with for d in rows):
        out.append("  (with --offload P: the report's policy does not fit there, P does; the row's seconds are P's, its "
                   "host<->device copies over PCIe included (a device without a PCIe link: copies not timed); with "
                   "--t5-cpu the text encoder's host CPU time is not modeled)")
    if any(not d.fits and not d.fits_with for d in rows):
        out.append("  (NO: weights + activations exceed the device's memory under every --offload policy: no seconds, "
                   "GPU-hours or $ are given; try --gpus N with --fsdp, or fp8 weights)")
    return out
