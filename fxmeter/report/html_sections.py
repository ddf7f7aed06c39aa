"""report.html's static sections: the HTML a reader sees without the script, from the typed report.

One function per section (headline, stages, devices, GPU counts, plan, deployment, components,
categories, roofline, conventions); each returns ``""`` when the report lacks what it shows.
Every number goes through :mod:`fxmeter.base.units`, in the console's forms: FLOPs ``6.52 PFLOP``,
bytes ``28.64 GB / 26.67 GiB`` (as summary.md), seconds ``775.0 s`` / ``12.30 ms``; exact integers
stay in the cards' tooltips.  Text from the report is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fxmeter.base.units import count, decimal, dollars, human, percent, seconds, si_bytes, times, with_unit
from fxmeter.report.document import ReportDocument, Total
from fxmeter.report.html_view import title


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def flop(n: float) -> str:
    return human(n, "FLOP")


def table(head: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "", raw: bool = False) -> str:
    """An HTML table; cells are escaped unless ``raw`` (cells already HTML)."""
    cell = (lambda x: x) if raw else esc
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in r) + "</tr>" for r in rows)
    heads = "".join(f"<th>{esc(h)}</th>" for h in head)
    return f'<table class="{cls}"><thead><tr>{heads}</tr></thead><tbody>{body}</tbody></table>'


def _card(label: str, value: str, exact: int | None = None, sub: str = "") -> str:
    tip = f' title="{esc(count(exact))}"' if exact is not None else ""
    sub_html = f'<div class="sub">{esc(sub)}</div>' if sub else ""
    return f'<div class="card"><div class="label">{esc(label)}</div><div class="value"{tip}>{esc(value)}</div>{sub_html}</div>'


def header(rep: ReportDocument) -> str:
    model, wl, tool = rep.model, rep.workload, rep.tool
    shape = "×".join(str(x) for x in wl.latent_shape)
    bits = [model.diffusers_class, f"{human(model.parameters)} parameters"]
    line = (f"{wl.frames} frames {wl.height}×{wl.width}, {count(wl.tokens)} tokens (latent {shape}), {wl.steps} steps × "
            f"{wl.passes_per_step} passes, batch {wl.batch}, {wl.dtype}")
    tv = f"fxmeter {tool.get('fxmeter', '?')} · torch {tool.get('torch', '?')} · diffusers {tool.get('diffusers', '?')}"
    return (f'<header><h1>{esc(title(rep))}</h1><p class="lead">{esc(", ".join(bits))}</p>'
            f'<p class="lead">{esc(line)}</p><p class="meta">run {esc(rep.run_id)} · {esc(tv)}</p></header>')


def _seconds_cards(t: Total, where: str) -> list[str]:
    cards = []
    if t.predicted_seconds is not None:
        cards.append(_card(f"predicted, {where}", seconds(t.predicted_seconds), sub="kernel model"))
    if t.bound_seconds is not None:
        cards.append(_card(f"bound, {where}", seconds(t.bound_seconds), sub="roofline at 100% of peaks"))
    return cards


def _whole_generation_cards(rep: ReportDocument) -> list[str]:
    """The whole generation (every stage traced, copies of the --offload policy included), or nothing
    when the report has no pipeline section.  A deployment (--gpus N) adds its seconds on N GPUs."""
    pipe = rep.pipeline
    if pipe is None:
        return []
    e2e, dep = pipe.end_to_end, rep.deployment
    cards = [_card("FLOPs, whole generation", flop(e2e.metrics.flops), e2e.metrics.flops)]
    if dep is not None:
        cards.append(_card(f"predicted, whole generation on {dep.gpus} GPUs", seconds(dep.predicted_seconds),
                           sub=f"kernel model + exposed communication; one GPU {seconds(dep.single_gpu_seconds)}"))
    cards += _seconds_cards(e2e, "whole generation" + (" on one GPU" if dep is not None else ""))
    res = pipe.residency
    if isinstance(res.get("peak_bytes"), int):
        cards.append(_card("peak device memory, whole generation", si_bytes(res["peak_bytes"]), res["peak_bytes"],
                           sub=f"--offload {res.get('policy', '?')}, during {res.get('peak_stage', '?')}"))
    return cards


def _stage_runs(rep: ReportDocument) -> str:
    """``text_encoder ×2, transformer ×100, vae ×1`` (the stages the report costed)."""
    return ", ".join(f"{s.name} ×{s.runs}" for s in rep.pipeline.stages) if rep.pipeline is not None else ""


def headline(rep: ReportDocument) -> str:
    pf, e2e, mem, wl = rep.totals.per_forward, rep.totals.end_to_end, rep.memory, rep.workload
    m, g = pf.metrics, e2e.metrics
    forward = [
        _card("tensor-core FLOPs", flop(m.tensor_core_flops), m.tensor_core_flops),
        _card("CUDA-core FLOPs", flop(m.cuda_core_flops), m.cuda_core_flops),
        _card("bytes moved", si_bytes(m.bytes), m.bytes,
              sub=f"read {si_bytes(m.bytes_read)}, written {si_bytes(m.bytes_written)}"),
        *_seconds_cards(pf, "one forward"),
    ]
    runs = f"{wl.steps} steps × {wl.passes_per_step} passes"
    generation = [
        _card("FLOPs, transformer alone", flop(g.flops), g.flops, sub=runs),
        _card("tensor-core FLOPs, transformer alone", flop(g.tensor_core_flops), g.tensor_core_flops),
        _card("bytes moved, transformer alone", si_bytes(g.bytes), g.bytes),
        *_seconds_cards(e2e, "transformer alone"),
    ]
    memory = [
        _card("weights", si_bytes(mem.weight_bytes), mem.weight_bytes,
              sub=", ".join(f"{k} {si_bytes(v)}" for k, v in sorted(mem.weight_bytes_by_dtype.items()))),
        _card("peak activations", si_bytes(mem.activation_peak_bytes), mem.activation_peak_bytes,
              sub=f"at {mem.activation_peak_module or '?'} ({mem.activation_peak_node or '?'})"),
        _card("weights + activations", si_bytes(mem.total_bytes), mem.total_bytes),
    ]
    if mem.fit is not None:
        ok = mem.fit.fits
        memory.append(f'<div class="card {"ok" if ok else "bad"}"><div class="label">fit</div>'
                      f'<div class="value">{"fits" if ok else "does not fit"}</div>'
                      f'<div class="sub">{esc(mem.fit.statement)}</div></div>')
    parts = ['<section id="headline"><h2>Headline</h2>']
    whole = _whole_generation_cards(rep)
    if whole:
        parts.append(f'<h3>Whole generation ({esc(_stage_runs(rep))})</h3><div class="cards">{"".join(whole)}</div>')
    parts += [
        f'<h3>Transformer alone, one generation ({esc(runs)})</h3><div class="cards">{"".join(generation)}</div>',
        f'<h3>Transformer, one forward</h3><div class="cards">{"".join(forward)}</div>',
        f'<h3>Memory, transformer alone</h3><div class="cards">{"".join(memory)}</div>',
    ]
    hw = rep.hardware
    if hw is not None:
        eff = ", ".join(f"{k}={count(v)}" for k, v in sorted(hw.efficiency.items()))
        parts.append(f'<h3>Time on {esc(hw.label)}</h3><p class="note">{esc(hw.precision)}, efficiency '
                     f'{esc(eff or "?")}, traffic {esc(rep.totals.traffic_model)}. Model: {esc(hw.model)}.</p>')
        if hw.seconds_by_limiter_per_forward:
            parts.append('<p class="note">Transformer, one forward, seconds in nodes bound by: ' + ", ".join(
                f"{esc(k.replace('_', '-'))} {esc(seconds(v))}" for k, v in sorted(hw.seconds_by_limiter_per_forward.items()))
                + "</p>")
    if rep.unmodeled_ops:
        ops = ", ".join(f"{u.op} ×{count(u.count)}" for u in rep.unmodeled_ops[:6])
        parts.append(f'<p class="warn">{len(rep.unmodeled_ops)} op kind(s) have no rule and count as 0: {esc(ops)} '
                     '(see <a href="#conventions">Counting conventions and unmodeled ops</a>).</p>')
    parts.append("</section>")
    return "".join(parts)


def stages(rep: ReportDocument) -> str:
    pipe = rep.pipeline
    if pipe is None or not pipe.stages:
        return ""
    head = ["stage", "class", "runs", "FLOPs per run", "FLOPs, one generation", "parameters", "weights",
            "peak activations", "predicted s per run", "predicted s, one generation (kernel model)",
            "bound s, one generation (roofline at 100%)"]

    def secs(v: float | None) -> str:
        return seconds(v) if v is not None else "—"

    rows = [[s.name + (" (on the host: no device time)" if s.on_host else ""), s.cls, count(s.runs),
             flop(s.per_run.metrics.flops), flop(s.end_to_end.metrics.flops), human(s.parameters), si_bytes(s.weight_bytes),
             si_bytes(s.activation_peak_bytes), secs(s.per_run.predicted_seconds), secs(s.end_to_end.predicted_seconds),
             secs(s.end_to_end.bound_seconds)] for s in pipe.stages]
    e2e = pipe.end_to_end
    rows.append(["whole generation", "", "", "", flop(e2e.metrics.flops), human(pipe.parameters), si_bytes(pipe.weight_bytes),
                 "", "", secs(e2e.predicted_seconds),
                 secs(e2e.bound_seconds)])
    moves = pipe.transfer_seconds
    copies = f" The whole generation includes {seconds(moves)} of host↔device copies (--offload)." if moves else ""
    return ('<section id="stages"><h2>Pipeline stages</h2><p class="note">Each stage of one generation: how many '
            'times it runs, its cost per run and over the generation. <b>predicted</b> = the kernel model; '
            f'<b>bound</b> = roofline at 100% of the peaks.{esc(copies)}</p>' + table(head, rows, "data num")
            + "</section>")


def devices(rep: ReportDocument) -> str:
    if not rep.devices:
        return ""
    head = ["device", "predicted s, whole generation (kernel model)", "bound s, whole generation (roofline at 100%)",
            "generations per hour", "GPU-hours per generation", "$ per generation", "fits", "memory"]
    rows = [[d.label or d.name, seconds(d.predicted_seconds), seconds(d.bound_seconds), decimal(d.generations_per_hour, 2),
             decimal(d.gpu_hours, 4),
             "— (does not fit)" if not d.fits else (dollars(d.dollars, 4) if d.dollars is not None else "—"),
             "yes" if d.fits else (f"with --offload {d.fits_with}" if d.fits_with else "NO"), d.fit]
            for d in rep.devices]
    return ('<section id="devices"><h2>Per device</h2><p class="note">The same whole generation on each device, '
            'one GPU: <b>predicted</b> = the kernel model, <b>bound</b> = roofline at 100% of the peaks. A device '
            'it does not fit on has no price: no such run is possible as configured.</p>'
            '<div class="chart short" id="devices-chart"></div>' + table(head, rows, "data") + "</section>")


def scaling(rep: ReportDocument) -> str:
    rows = rep.scaling or ()
    if not rows:
        return ""
    head = ["GPUs", "plan", "predicted s, whole generation", "speed-up", "parallel efficiency", "memory per GPU",
            "exposed communication share", "bound s (roofline at 100%)", "fits"]
    body = [[count(r.gpus), r.parallel, seconds(r.seconds) + ("" if r.fits else " *"), times(r.speedup),
             percent(r.efficiency), si_bytes(r.memory_per_gpu), percent(r.comm_share), seconds(r.bound_seconds),
             "yes" if r.fits else "NO: does not fit"] for r in rows]
    notes = []
    if not all(r.fits for r in rows):
        notes.append("* does not fit in the GPU's memory: the seconds assume it did; no such run is possible as "
                     "configured (grey hatched bars)")
    if not any(r.fits for r in rows):
        notes.append("No GPU count fits: try --offload model or sequential, --fsdp, more GPUs, or a larger device.")
    warn = "".join(f'<p class="warn">{esc(n)}</p>' for n in notes)
    return ('<section id="scaling"><h2>Per GPU count</h2><p class="note">One whole generation on each GPU count, '
            'predicted by the kernel model plus the communication compute cannot hide.</p>' + warn
            + '<div class="chart short" id="scaling-chart"></div>' + table(head, body, "data") + "</section>")


def plan(rep: ReportDocument) -> str:
    p = rep.plan
    if p is None or not p.frontier:
        return ""
    priced = p.cost_axis == "dollars"
    head = ["predicted s, whole generation", "$ per generation" if priced else "GPU-seconds per generation", "GPUs",
            "peak per GPU (allocated)", "why", "command"]

    def body(rows: Iterable[Any]) -> list[list[str]]:
        return [[seconds(r.seconds), ("—" if r.dollars is None else dollars(r.dollars, 4)) if priced
                 else decimal(r.gpu_seconds, 0), count(r.gpus), si_bytes(r.peak_bytes), r.why, r.command] for r in rows]

    text = (f'{count(p.priced)} setups priced exactly, {count(p.fit)} fit in memory, '
            f'{count(p.meeting_constraints)} meet the constraints; this report is the fastest frontier row. '
            'Seconds are predicted (kernel model) for the whole generation on the row\'s GPUs.')
    parts = ['<section id="plan"><h2>Plan: the Pareto frontier</h2><p class="note">' + esc(text) + "</p>",
             '<div class="chart short" id="plan-chart"></div>', "<h3>Same output as the default setup</h3>",
             table(head, body(p.frontier), "data")]
    if p.changes_output:
        parts += ['<h3 class="warn">Faster or cheaper still, but changing the output</h3>',
                  table(head, body(p.changes_output), "data")]
    return "".join(parts) + "</section>"


def deployment(rep: ReportDocument) -> str:
    dep = rep.deployment
    if dep is None:
        return ""
    par, link, mem = dep.parallel, dep.interconnect, dep.memory

    def b(key: str) -> str:
        v = mem.get(key)
        return si_bytes(v) if isinstance(v, (int, float)) else "?"

    items = [
        ("GPUs", f"{dep.gpus} × {dep.device.get('label', '?')}"),
        ("plan", f"{par.get('spec', '?')}{' + fsdp' if par.get('fsdp') else ''}"),
        ("interconnect", str(link.get("text", "?"))),
        ("predicted s, whole generation on the GPUs", f"{seconds(dep.predicted_seconds)} ({dep.predicted_by} "
         "+ exposed communication)"),
        ("predicted s, whole generation on one GPU", seconds(dep.single_gpu_seconds)),
        ("speed-up", times(dep.speedup)),
        ("parallel efficiency = t1 / (N × tN)", percent(dep.efficiency)),
        ("compute per GPU", seconds(dep.compute_seconds)),
        ("communication exposed", f"{seconds(dep.exposed_comm_seconds)} ({percent(dep.comm_share)} of the time)"),
        ("communication overlapped", seconds(dep.overlapped_comm_seconds)),
        ("bound s per GPU (roofline at 100%, no communication)", seconds(dep.bound_seconds)),
        ("GPU-hours per generation", f"{decimal(dep.gpu_seconds / 3600, 4)} ({dep.gpus} × the predicted s)"),
        ("weights per GPU", b("weight_bytes_per_gpu")),
        ("activations per GPU", b("activation_bytes_per_gpu")),
        ("memory per GPU", f"{b('total_bytes_per_gpu')} of {b('device_bytes')}"),
        ("fit", str(mem.get("statement", "?"))),
        ("link bandwidth per direction",
         human(link["bandwidth"], "B/s") if isinstance(link.get("bandwidth"), (int, float)) else "?"),
    ]
    items = [(k, v) for k, v in items if "?" not in v or k == "GPUs"]  # what the report has
    parts = ['<section id="deployment"><h2>Deployment</h2>', table(["", "value"], [list(i) for i in items], "data")]
    if dep.stages:
        head = ["stage", "forwards per GPU", "tensor-core FLOPs per forward per GPU", "predicted s per forward",
                "exposed communication s", "predicted s, one generation", "one GPU s, one generation",
                "weights per GPU", "activations per GPU"]
        parts.append("<h3>Stages on the GPUs</h3>" + table(head, [[
            s.name + ("" if s.split else " (one GPU)"), count(s.forwards_per_gpu), flop(s.per_forward.tensor_core_flops),
            seconds(s.predicted_seconds_per_forward), seconds(s.exposed_comm_seconds), seconds(s.seconds),
            seconds(s.single_gpu_seconds), si_bytes(s.weight_bytes_per_gpu), si_bytes(s.activation_bytes_per_gpu)]
            for s in dep.stages], "data num"))
    if dep.communication:
        head = ["collective", "kind", "stage", "ranks", "link", "calls per generation", "bytes per call per rank",
                "s per call", "exposed s", "overlapped s"]
        parts.append("<h3>Communication</h3>" + table(head, [[
            c.what, c.kind.replace("_", "-"), c.stage, count(c.ranks), c.link, count(c.count), si_bytes(c.bytes),
            seconds(c.seconds), seconds(c.exposed_seconds), seconds(c.overlapped_seconds)] for c in dep.communication],
            "data"))
    for heading, lines in (("Overlap rules", dep.overlap_rules), ("Assumptions", dep.notes)):
        if lines:
            parts.append(f"<h3>{heading}</h3><ul>" + "".join(f"<li>{esc(x)}</li>" for x in lines) + "</ul>")
    parts.append("</section>")
    return "".join(parts)


def components(rep: ReportDocument) -> str:
    if not rep.components:
        return ""
    head = ["component", "role", "steps", "share of steps", "parameters", "weights", "FLOPs, one generation",
            "FLOPs per forward"]
    rows = [[c.name, c.role, count(c.steps), percent(c.step_share), human(c.parameters), si_bytes(c.weight_bytes),
             flop(c.end_to_end.flops), flop(c.per_forward.flops) if c.per_forward is not None else ""]
            for c in rep.components]
    return '<section id="components"><h2>Components</h2>' + table(head, rows, "data") + "</section>"


def category_section(vm: Mapping[str, Any]) -> str:
    metrics = vm["metrics"]
    head = ["category", *[m["label"] for m in metrics], "tensor-core share", "FLOP share"]
    rows = []
    for c in vm["categories"]:
        color = vm["colors"].get(c["name"], "#999")
        cells = [f'<span class="swatch" style="background:{esc(color)}"></span>{esc(c["name"])}']
        cells += [esc(with_unit(v, m["key"])) if v is not None else "" for m, v in zip(metrics, c["values"])]
        cells += [percent(share) if share is not None else "" for share in (c["tensor_core_share"], c["flops_share"])]
        rows.append(cells)
    return ('<section id="categories"><h2>Categories (transformer, one forward)</h2><p class="note">Every graph node of '
            'the transformer belongs to one category; '
            'the chart follows the metric chosen above the treemap.</p><div class="chart" id="categories-chart"></div>'
            + table(head, rows, "data num", raw=True) + "</section>")


def roofline_section(vm: Mapping[str, Any]) -> str:
    rf = vm["roofline"]
    if rf is None or not any(m["key"] in ("predicted_seconds", "bound_seconds") for m in vm["metrics"]):
        return ('<section id="roofline"><h2>Roofline</h2><p class="note">This report has no hardware: trace with '
                '<code>--hardware NAME</code> (see <code>fxmeter hardware</code>) to place each module under the '
                "device's roofs.</p></section>")
    return ('<section id="roofline"><h2>Roofline (transformer, one forward)</h2><p class="note">One point per module '
            'of the transformer with own ops (repeated blocks folded): arithmetic intensity (FLOP per byte moved) '
            f'against the FLOP/s it reaches on {esc(rf["label"])} in '
            'the predicted time; colour = what bounds it, size = its predicted seconds. Hover a point for the module, '
            'intensity and bound; the largest are labelled.</p><div class="chart tall" id="roofline-chart"></div></section>')


def _mapping_text(m: Mapping[str, Any]) -> str:
    """``blocks: 40, batch: 1..1024`` (a count for an integer, a range for a pair)."""
    def one(v: Any) -> str:
        if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, int) for x in v):
            return f"{count(v[0])}..{count(v[1])}"
        return count(v) if isinstance(v, int) and not isinstance(v, bool) else str(v)
    return ", ".join(f"{k}: {one(v)}" for k, v in m.items())


def conventions(rep: ReportDocument) -> str:
    parts = ['<section id="conventions"><h2>Counting conventions and unmodeled ops</h2><h3>Conventions</h3><dl>']
    parts += [f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in sorted(rep.counting.items())]
    parts.append("</dl><h3>Notes</h3><ul>")
    parts += [f"<li>{esc(n)}</li>" for n in rep.notes]
    parts.append("</ul><h3>Unmodeled ops</h3>")
    if rep.unmodeled_ops:
        parts.append('<p class="warn">These ops have no rule and count as 0 in every number on this page.</p>')
        parts.append(table(["op", "count", "modules"], [[u.op, count(u.count), ", ".join(u.modules)]
                                                        for u in rep.unmodeled_ops], "data"))
    else:
        parts.append('<p class="ok-text">None: every op in the graph has a rule or is on the free list.</p>')
    tr = rep.trace
    facts = [("mode", tr.mode), ("exporter", tr.exporter), ("graph_nodes", count(tr.graph_nodes)),
             ("replicated_blocks", _mapping_text(tr.replicated_blocks)), ("symbols", ", ".join(tr.symbols)),
             ("guards", _mapping_text(tr.guards)), ("cache", tr.cache), ("options", _mapping_text(tr.options))]
    parts.append("<h3>Trace</h3><dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts) + "</dl>")
    hw = rep.hardware
    sources = hw.device.get("sources") if hw is not None else None
    if hw is not None and isinstance(sources, Mapping):
        parts.append(f"<h3>Hardware sources ({esc(hw.label)})</h3><dl>")
        parts += [f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in sorted(sources.items())]
        parts.append("</dl>")
    parts.append("</section>")
    return "".join(parts)


def tree_section(vm: Mapping[str, Any], ids: Sequence[str] = ("treemap",), labels: Sequence[str] = ()) -> str:
    options = "".join(f'<option value="{esc(m["key"])}">{esc(m["label"])}</option>' for m in vm["metrics"])
    fold = ('<label><input type="checkbox" id="unfold"> unfold repeated blocks</label>'
            if vm["modules"].get("full") is not None else "")
    charts = "".join(
        f'<div class="tree-pane">{f"<h3>{esc(lab)}</h3>" if lab else ""}<div class="chart treemap" id="{i}"></div></div>'
        for i, lab in zip(ids, labels or [""] * len(ids)))
    return ('<section id="tree"><h2>Module tree (transformer, one forward)</h2><div class="controls"><label>size by '
            f'<select id="metric">{options}</select></label>{fold}<span class="hint">Click a box to zoom into it, a name '
            'in the path above the chart to go back. Repeated blocks are folded into one box with their count (its size '
            'is their sum); unfold to see each. "own" boxes are a module\'s own ops, by category.</span></div>'
            f'<div class="panes">{charts}</div></section>')


def module_table_section(heading: str = "Modules", note: str = "") -> str:
    return (f'<section id="modules"><h2>{esc(heading)}</h2><div class="controls"><input type="search" id="search" '
            'placeholder="filter modules (id, class, bound)…" autocomplete="off"><span id="row-count"></span></div>'
            f'{f"<p class=note>{esc(note)}</p>" if note else ""}'
            '<div class="table-wrap"><table id="module-table" class="data num sortable"></table></div></section>')


def nav(sections: Sequence[tuple[str, str]]) -> str:
    return "<nav>" + "".join(f'<a href="#{esc(i)}">{esc(t)}</a>' for i, t in sections) + "</nav>"
