"""Estimate -> typed report: the one place that knows both (pure assembly, no rendering).

``totals``, ``modules``, ``nodes`` and ``categories`` describe the first denoising stage (the
transformer; with two experts, ``transformer``), so consumers of earlier schemas keep working;
``totals.end_to_end`` sums the denoising stages' runs; ``memory`` holds the denoisers' weights and
their largest activation peak; ``components`` lists the experts of a multi-expert pipeline.
``pipeline`` is the whole generation: every stage asked for (text and image encoders, VAE encode,
the denoisers, VAE decode), each per run and end to end, the sum, and the residency plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fxmeter import __version__
from fxmeter.cost.symbolic import SCHEMA as ANALYSIS_SCHEMA
from fxmeter.estimate.generation import Estimate, Stage
from fxmeter.estimate.metrics import Metrics
from fxmeter.report.deployment import deployment_info
from fxmeter.report.document import (
    CategoryRow,
    ComponentInfo,
    DeviceInfo,
    FitInfo,
    HardwareInfo,
    MemoryInfo,
    ModelInfo,
    ModuleRow,
    ModuleTimes,
    NodeRow,
    OpRow,
    PipelineInfo,
    StageRow,
    Total,
    Totals,
    TraceInfo,
    Unmodeled,
    WorkloadInfo,
)
from fxmeter.report.files import Report

if TYPE_CHECKING:
    from fxmeter.model.adapters import Geometry
    from fxmeter.model.registry import ResolvedModel
    from fxmeter.model.workload import Workload

COUNTING = {
    "flop": "2 x multiply-accumulate (FLOP = 2 MAC), as torch.utils.flop_counter",
    "tensor_core_flops": "matmul, conv and scaled-dot-product attention",
    "cuda_core_flops": "elementwise, norms, softmax, activations, RoPE, casts: per-element costs in rules/",
    "bytes": "logical tensor bytes read and written per op, dtype-aware; views free; attention IO-aware (Q,K,V in, O out)",
    "seconds": "bound_seconds: roofline at 100% of every peak (a lower bound); predicted_seconds: the kernel model "
               "(measured kernel efficiencies, fxmeter/data/kernels.json), or the roofline at --efficiency fractions",
}

PIPELINE_NOTE = ("totals, modules, categories and memory describe the denoising stages (the transformer); "
                 "pipeline describes the whole generation, stage by stage (the scheduler is not modeled).")
NOTES = (
    "Counts the diffusion transformer only: the text encoder, the VAE encode/decode and the scheduler are not modeled.",
    "FLOP = 2 x multiply-accumulate for matmul, conv and attention (tensor-core FLOPs, as torch.utils.flop_counter counts).",
    "CUDA-core FLOPs use the per-element costs documented in each rules/ module (README: Counting semantics).",
    "Bytes are logical tensor sizes read and written per op (eager traffic model); views move nothing; attention is one IO-aware kernel.",
    "end_to_end = per_forward x steps x passes_per_step; memory does not scale with steps.",
)
EXPORTER = "torch.export.export(strict=False)"


def _total(stage: Stage, k: int, metrics: Any = None) -> Total:
    m = stage.cost.total if metrics is None else metrics
    return Total(
        m.scale(k) if metrics is None else m,
        stage.bound.per_run * k if stage.bound is not None else None,
        stage.predicted.per_run * k if stage.predicted is not None else None,
    )


def build(
    est: Estimate,
    *,
    model: ResolvedModel,
    workload: Workload,
    geometry: Geometry,
    run_id: str,
    include_nodes: bool = True,
    notes: Sequence[str] = (),
    scaling: Sequence[Any] | None = None,
) -> Report:
    """The typed report of ``est`` (exact integers; seconds labelled bound / predicted)."""
    main = est.main
    cost = main.cost
    opts = est.options

    # -- totals: per forward / per step of the main stage; end to end over every stage ----------
    e2e = est.end_to_end
    bound_e2e = est.seconds("bound")
    pred_e2e = est.seconds("predicted")
    totals = Totals(
        per_forward=_total(main, 1),
        per_step=_total(main, est.passes_per_step),
        end_to_end=Total(e2e, bound_e2e, pred_e2e),
        traffic_model=opts.traffic,
    )

    # -- modules, nodes, categories of the main stage ------------------------------------------
    times = main.bound.modules if main.bound is not None else None
    ptimes = main.predicted.modules if main.predicted is not None else None
    modules = []
    for i, m in enumerate(cost.modules):
        mt = None
        if times is not None:
            t = times[i]
            mt = ModuleTimes(t.seconds, t.limiter, t.own_seconds, t.own_limiter, t.arithmetic_intensity,
                             ptimes[i].seconds if ptimes else None, ptimes[i].own_seconds if ptimes else None)
        formula = m.formula if (m.formula is not None and main.plan.batch_factor == 1) else None
        modules.append(ModuleRow(m.id, m.parent, m.cls, m.depth, m.parameters, m.weight_bytes, m.total, m.own, formula, mt))
    nodes = []
    if include_nodes:
        for j, n in enumerate(cost.nodes):
            bt = main.bound.nodes[j] if main.bound is not None else None
            pt = main.predicted.nodes[j] if main.predicted is not None else None
            nodes.append(NodeRow(n.name, n.target, n.module, n.family, n.category, n.replicas, n.cost,
                                 bt.seconds if bt else None, bt.limiter if bt else None, pt.seconds if pt else None))
    pf = cost.total
    tc_total, fl_total = pf.tensor_core_flops or 1, pf.flops or 1
    categories = {k: CategoryRow(v, v.tensor_core_flops / tc_total, v.flops / fl_total) for k, v in cost.categories.items()}

    # -- memory ------------------------------------------------------------------------------------
    peak_stage = max(est.denoisers, key=lambda s: s.cost.activations.peak_bytes)
    act = peak_stage.cost.activations
    batched = main.plan.batch_factor == 2
    memory = MemoryInfo(
        weight_bytes=est.weights.weight_bytes,
        weight_bytes_by_dtype=est.weights.weight_bytes_by_dtype,
        parameters_by_dtype=est.weights.parameters_by_dtype,
        activation_peak_bytes=act.peak_bytes,
        activation_peak_node=act.peak_node,
        activation_peak_module=act.peak_module,
        activation_model=("liveness walk over one forward of 2x the batch (batched CFG)" if batched else
                          "liveness walk over one forward (inference, views share storage); CFG as separate passes"),
        precision=opts.precision,
        weight_precision=est.weights.precision,
        fit=FitInfo(est.fit.fits, est.fit.required_bytes, est.fit.device_bytes, est.fit.statement) if est.fit else None,
        activation_batch=workload.batch * 2 if batched else None,
    )

    # -- hardware ------------------------------------------------------------------------------------
    hardware = None
    if est.device is not None and main.bound is not None:
        dev = est.device
        p = dev.peaks()
        eff = dict(sorted((opts.efficiency or {"tc": 1.0, "cuda": 1.0, "bw": 1.0}).items()))
        predicted_model = (main.predicted.model if main.predicted is not None else "")
        hardware = HardwareInfo(
            device=dev.hw.to_dict(), precision=opts.precision, efficiency={**{"tc": 1.0, "cuda": 1.0, "bw": 1.0}, **eff},
            peaks_used=p,
            ridge_point_flop_per_byte={
                "tensor_core": p["tensor_core_flops_per_s_matmul"] / p["bytes_per_s"],
                "cuda_core": p["cuda_core_flops_per_s"] / p["bytes_per_s"],
            },
            model=(f"bound_seconds: {main.bound.model}, every efficiency 1 (a lower bound); predicted_seconds: "
                   + ("the same roofline at the --efficiency fractions" if est.predicted_by == "efficiency"
                      else predicted_model)
                   + (f"; kernels: attention {opts.attention} ({opts.attention_precision})"
                      f"{', torch.compile' if opts.compile else ''}" if est.predicted_by == "kernel model" else "")),
            seconds_by_limiter_per_forward=main.bound.by_limiter,
            stand_ins=tuple(x.to_dict() for x in est.devices[0].stand_ins) if est.devices else (),
        )

    # -- components (experts) ------------------------------------------------------------------------
    components = None
    # an expert the scheduler gives no step (few steps) is still loaded and listed: 0 steps, 0 runs;
    # a stage outside the denoising loop has steps 0 but runs at least once
    denoisers = [s for s in est.stages if s.plan.steps or not s.plan.runs]
    model_parameters = cost.modules[0].parameters
    per_expert = None
    if len(denoisers) > 1:
        comps = []
        for s in denoisers:
            w = est.component_weights[s.plan.component]
            own_cost = model.component(s.plan.component).config_sha256 != model.component(main.plan.component).config_sha256
            comps.append(ComponentInfo(
                name=s.plan.component, role=s.plan.role, steps=s.plan.steps,
                step_share=s.plan.steps / workload.steps if workload.steps else 0.0,
                timesteps=s.plan.timesteps, parameters=s.cost.modules[0].parameters, weight_bytes=w.weight_bytes,
                end_to_end=s.end_to_end,
                per_forward=s.cost.total if own_cost else None,
                config=f"{s.plan.component}/config.json (differs from {main.plan.component}'s)" if own_cost else None,
            ))
        components = tuple(comps)
        per_expert = model_parameters
        by_component = {s.plan.component: s.cost.modules[0].parameters for s in est.denoisers}
        model_parameters = sum(by_component.values())

    # -- notes ---------------------------------------------------------------------------------------
    beyond = [s for s in est.pipeline if not s.denoiser]
    all_notes = ([PIPELINE_NOTE] + list(NOTES[1:]) if beyond else list(NOTES)) + list(geometry.notes)
    for s in est.stages:
        if s.selected or s.denoiser:
            all_notes += [n for n in s.plan.notes if n not in all_notes]
    if opts.traffic == "fused":
        all_notes.append("Bytes use the fused traffic model (fxmeter.cost.traffic): elementwise/norm chains between "
                         "matmul-class ops read their inputs once and write once; groups never span two blocks.")
    if batched:
        all_notes.append("Batched CFG: one forward of 2x the batch per step, evaluated at twice the batch "
                         "(batch-independent work such as RoPE tables runs once per step); activation memory is at 2x the batch.")
    elif opts.batched_cfg:
        all_notes.append("--batched-cfg ignored: this workload runs one pass per step (no CFG).")
    if est.device is not None and opts.precision != "bf16":
        prec = opts.precision
        all_notes.append(f"--precision {prec}: matmul/conv nodes run at the {prec} tensor-core peak and their weights take "
                         "1 byte each in memory; attention runs at the --attention-precision peak "
                         f"({opts.attention_peak}); per-node bytes keep the traced dtypes.")
    if est.device is not None and opts.precision == "int8":
        all_notes.append("--precision int8 (torchao int8 dynamic quantization, W8A8): the per-token quantization of each "
                         "matmul input (absmax, scale, round to int8) and the output rescale are not counted (no extra "
                         "bytes or kernels), as --precision fp8 counts no casts.")
    differ = sorted({s.plan.component for s in denoisers if s.plan.component != main.plan.component and
                     model.component(s.plan.component).config_sha256 != model.component(main.plan.component).config_sha256})
    if differ:
        others = differ
        all_notes.append(f"{', '.join(others)} has its own config: totals.end_to_end sums each expert's steps at its "
                         f"own cost; per_forward, modules and nodes describe {main.plan.component}")
    all_notes += [n for n in notes if n not in all_notes]

    devices = tuple(DeviceInfo(d.name, d.label, d.bound_seconds, d.predicted_seconds, d.predicted_by,
                               d.generations_per_hour, d.gpu_hours, d.fit.fits, d.fit.statement, d.price_per_hour,
                               d.dollars, d.fits_with, tuple(x.to_dict() for x in d.stand_ins)) for d in est.devices) if len(est.devices) > 1 or any(
        d.price_per_hour is not None for d in est.devices) else None

    tr = cost.trace
    versions = main_versions(est)
    return Report(
        run_id=run_id,
        tool={"name": "fxmeter", "fxmeter": __version__, "torch": versions.get("torch", "?"),
              "diffusers": versions.get("diffusers", "?")},
        model=ModelInfo(model.id, cost.diffusers_class, model.adapter.name, model.config, model.config_sha256,
                        model.config_source, model_parameters, model.slug, per_expert),
        workload=WorkloadInfo(
            name=workload.name, frames=geometry.frames, frames_requested=workload.frames, height=workload.height,
            width=workload.width, steps=workload.steps, text_len=workload.text_len, batch=workload.batch,
            guidance_scale=workload.guidance_scale, passes_per_step=est.passes_per_step,
            latent_shape=tuple(geometry.latent_shape), tokens=geometry.tokens, dims=dict(geometry.dims),
            dtype=opts.dtype, cfg="batched" if batched else None),
        trace=TraceInfo(
            mode=str(tr.get("mode")), exporter=EXPORTER, graph_nodes=int(tr.get("graph_nodes") or 0),
            replicated_blocks=dict(tr.get("replicas") or {}), symbols=tuple(tr.get("symbols") or ()),
            guards={k: (v[0], v[1]) for k, v in (tr.get("guards") or {}).items()},
            seconds=round(float(tr.get("seconds") or 0.0), 3), cache=main.source or "none",
            analysis_schema=ANALYSIS_SCHEMA, options=opts.record(), rules=str(main_rules(est))),
        counting=dict(COUNTING, traffic_model=opts.traffic),
        totals=totals,
        memory=memory,
        activation_blocks={"live_bytes_max": dict(act.live_bytes_max_per_block), "note": act.note},
        modules=tuple(modules),
        categories=categories,
        unmodeled_ops=tuple(Unmodeled(u["op"], u["count"], tuple(u["modules"])) for u in cost.unmodeled),
        nodes=tuple(nodes),
        notes=tuple(all_notes),
        hardware=hardware,
        components=components,
        devices=devices,
        deployment=deployment_info(est.deployment) if est.deployment is not None else None,
        scaling=tuple(scaling) if scaling else None,
        pipeline=pipeline_info(est, include_nodes),
    )


def main_versions(est: Estimate) -> Mapping[str, str]:
    return est.main.cost.trace.get("versions") or {}


def main_rules(est: Estimate) -> str:
    return str(est.main.cost.trace.get("rules") or "")


def _stage_row(s: Stage, est: Estimate, ops: bool) -> StageRow:
    cost, w = s.cost, s.weights
    per_run = _total(s, 1)
    e2e = Total(s.end_to_end, s.bound.per_run * s.runs if s.bound is not None else None,
                s.predicted.per_run * s.runs if s.predicted is not None else None)
    on_host = est.residency is not None and est.residency.on_host(s.name)
    if on_host:  # host CPU time is not modeled: no device seconds
        per_run, e2e = Total(per_run.metrics), Total(e2e.metrics)
    modules: list[ModuleRow] = []
    categories: dict[str, CategoryRow] = {}
    op_rows: list[OpRow] = []
    if not s.denoiser:
        times = s.bound.modules if s.bound is not None else None
        ptimes = s.predicted.modules if s.predicted is not None else None
        for i, m in enumerate(cost.modules):
            mt = None
            if times is not None and i < len(times) and not on_host:
                t = times[i]
                mt = ModuleTimes(t.seconds, t.limiter, t.own_seconds, t.own_limiter, t.arithmetic_intensity,
                                 ptimes[i].seconds if ptimes else None, ptimes[i].own_seconds if ptimes else None)
            modules.append(ModuleRow(m.id, m.parent, m.cls, m.depth, m.parameters, m.weight_bytes, m.total, m.own, None, mt))
        pf = cost.total
        tc_total, fl_total = pf.tensor_core_flops or 1, pf.flops or 1
        categories = {k: CategoryRow(v, v.tensor_core_flops / tc_total, v.flops / fl_total) for k, v in cost.categories.items()}
        if ops:
            acc: dict[str, list[Any]] = {}
            for n in cost.nodes:
                a = acc.setdefault(n.target, [0, Metrics()])
                a[0] += n.replicas
                a[1] = a[1] + n.cost.scale(n.replicas)
            op_rows = [OpRow(op, c, m) for op, (c, m) in sorted(acc.items())]
    tr = cost.trace
    trace = {"mode": tr.get("mode"), "graph_nodes": tr.get("graph_nodes"), "symbols": list(tr.get("symbols") or ()),
             "guards": {k: list(v) for k, v in (tr.get("guards") or {}).items()}, "cache": s.source or "none",
             "seconds": round(float(tr.get("seconds") or 0.0), 3)}
    weight_bytes = w.weight_bytes if w is not None else cost.weights.weight_bytes
    return StageRow(
        name=s.name, component=s.plan.component, cls=cost.diffusers_class, role=s.plan.role, root=s.plan.root,
        call=cost.adapter, runs=s.runs, batch_factor=s.plan.batch_factor, dtype=cost.weights.dtype, denoiser=s.denoiser,
        per_run=per_run, end_to_end=e2e, parameters=cost.modules[0].parameters, weight_bytes=weight_bytes,
        graph_weight_bytes=int(tr.get("graph_weight_bytes") or weight_bytes),
        activation_peak_bytes=cost.activations.peak_bytes, activation_peak_module=cost.activations.peak_module,
        dims=dict(cost.dims), trace=trace, modules=tuple(modules), categories=categories, ops=tuple(op_rows),
        unmodeled=tuple(Unmodeled(u["op"], u["count"], tuple(u["modules"])) for u in cost.unmodeled), on_host=on_host,
    )


def _residency(est: Estimate) -> tuple[dict[str, Any], tuple[dict[str, Any], ...]]:
    r = est.residency
    if r is None:
        return {}, ()
    hw = est.device.hw if est.device is not None else None
    from fxmeter.estimate.residency import fit_line

    doc: dict[str, Any] = {
        "policy": r.name, "description": r.description, "t5_cpu": r.t5_cpu, "peak_bytes": r.peak_bytes,
        "peak_stage": r.peak.stage,
        "stages": [{"stage": x.stage, "resident_weight_bytes": x.resident_bytes, "activation_bytes": x.activation_bytes,
                    "peak_bytes": x.peak_bytes, "on_host": x.on_host} for x in r.stages],
        "transfers": [{"component": t.component, "direction": t.direction, "bytes": t.bytes, "count": t.count,
                       "total_bytes": t.total_bytes, "when": t.when, "seconds": t.seconds} for t in r.transfers],
        "host_to_device_bytes": r.host_to_device_bytes, "device_to_host_bytes": r.device_to_host_bytes,
        "transfer_seconds": r.transfer_seconds, "notes": list(r.notes),
        "model": "peak = max over stages of (weights resident during the stage + its activation peak); copies are "
                 "host_to_device / device_to_host collectives over the device's PCIe link (fxmeter/data/comms.json), "
                 "blocking",
    }
    if hw is not None:
        from fxmeter.estimate.memory import predicted_peak

        doc["process"] = {k: v for k, v in predicted_peak(est).to_dict().items() if k != "notes"}
        doc["fit"] = {"fits": r.peak_bytes <= hw.memory_bytes, "required_bytes": r.peak_bytes,
                      "device_bytes": hw.memory_bytes, "statement": fit_line(r, hw.memory_bytes, hw.label),
                      "headroom_bytes": hw.memory_bytes - r.peak_bytes}
        if r.transfers and r.transfer_seconds is None:
            doc["notes"].append(f"{hw.label}: the device table gives no PCIe link, so copy seconds are unknown "
                                "(bytes are counted; end_to_end seconds leave the copies out)")
    policies = tuple({"policy": p.name, "peak_bytes": p.peak_bytes, "peak_stage": p.peak.stage,
                      "fits": (p.peak_bytes <= hw.memory_bytes) if hw is not None else None,
                      "host_to_device_bytes": p.host_to_device_bytes, "transfer_seconds": p.transfer_seconds}
                     for p in est.policies)
    return doc, policies


def pipeline_info(est: Estimate, ops: bool = True) -> PipelineInfo:
    """The ``pipeline`` section: every stage asked for, the generation end to end, the residency plan."""
    stages = est.pipeline
    rows = tuple(_stage_row(s, est, ops) for s in stages)
    bound, predicted = est.pipeline_seconds("bound"), est.pipeline_seconds("predicted")
    compute = est.seconds("bound", stages) if est.device is not None else None
    weights = {s.plan.component: (s.weights.weight_bytes if s.weights else s.cost.weights.weight_bytes) for s in stages}
    params = {s.plan.component: s.cost.modules[0].parameters for s in stages}
    residency, policies = _residency(est)
    notes = []
    if any(r.on_host for r in rows):
        notes.append("stages run on the host CPU (--t5-cpu) have no device seconds: end_to_end seconds leave them out")
    return PipelineInfo(
        stages=rows, end_to_end=Total(est.pipeline_end_to_end, bound, predicted), compute_seconds=compute,
        transfer_seconds=est.residency.transfer_seconds if est.residency is not None and est.device is not None else None,
        weight_bytes=sum(weights.values()), parameters=sum(params.values()), residency=residency, policies=policies,
        notes=tuple(notes),
    )
