"""The library facade: ``trace``, ``estimate_workload`` and friends; the CLI is a thin layer over these.

One path through the stages, each returning a new value:

    model.resolve_model -> model.Workload/Geometry -> StagePlans
    -> cost.store.get (shipped / cached / traced SymbolicModel per stage)
    -> estimate.generation.estimate (costs, time, memory, fit)
    -> report.build (the typed Report)

Why one long module: it is the one place the stages are wired (trace, sweep, scale, verify share
the request, stage-input and estimate steps); every entry point is a few lines over those steps.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fxmeter.base import knobs
from fxmeter.errors import FxmeterError, UnmodeledOpError
from fxmeter.estimate.options import Options, check_traffic
from fxmeter.model.registry import ResolvedModel, resolve_model
from fxmeter.model.workload import Workload, normalize_dtype, resolve

if TYPE_CHECKING:
    from fxmeter.cost.analyze import Overlay
    from fxmeter.cost.store import Progress
    from fxmeter.estimate.generation import Estimate, StageInput
    from fxmeter.estimate.hardware import Hardware
    from fxmeter.estimate.parallel import ParallelPlan
    from fxmeter.model.adapters import Geometry
    from fxmeter.model.pipeline import StagePlan
    from fxmeter.report.files import Report
    from fxmeter.report.scale import ScaleResult
    from fxmeter.report.sweep import SweepResult

LOG = logging.getLogger(__name__)


def default_run_id() -> str:
    """UTC timestamp plus a random suffix (``20250101T120000Z-3f9a1c07``): sorts by time, and
    two runs started in the same second get different ids."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(4)


@dataclass(frozen=True)
class Request:
    """A resolved request: model, workload, geometry, options and devices (validated, nothing traced yet)."""

    model: ResolvedModel
    workload: Workload
    geometry: Geometry
    options: Options
    devices: tuple[Hardware, ...]
    efficiency: Mapping[str, float] | None
    prices: Mapping[str, float] = field(default_factory=dict)
    plan: ParallelPlan | None = None  # several GPUs (--gpus; checked against the model before anything is traced)

    @property
    def hardware(self) -> Hardware | None:
        """The main device (the report's ``hardware``), or None."""
        return self.devices[0] if self.devices else None


def request(
    model: str | None = None,
    workload: str | Workload | None = None,
    *,
    config: str | Path | None = None,
    dtype: str = "bf16",
    hardware: str | Sequence[str] | None = None,
    hardware_file: str | Path | None = None,
    precision: str = "bf16",
    traffic: str = "eager",
    efficiency: str | Mapping[str, float] | None = None,
    batched_cfg: bool = False,
    replicate: bool = True,
    attention: str = "sdpa",
    attention_precision: str = "bf16",
    compile: bool = False,
    cache_skip: float = 0.0,
    price_per_hour: str | float | Mapping[str, float] | None = None,
    gpus: int | None = None,
    parallel: str | None = None,
    fsdp: bool = False,
    stages: str | Sequence[str] | None = None,
    stage_dtype: str | Mapping[str, str] | None = None,
    offload: str = "none",
    t5_cpu: bool = False,
    runtime: str = "diffusers",
    vae_tiling: str | int | None = None,
    quantize_on_device: bool = False,
    fuse_qkv: bool = False,
    **overrides: Any,
) -> Request:
    """Resolve and validate everything a trace needs, before anything is traced (bad input fails fast).

    ``stages``: ``all`` (None) or stage names (``text_encoder,vae``; ``transformer`` names every
    denoising stage); ``stage_dtype``: ``vae=fp32,...`` (a component's dtype instead of the
    pipeline's); ``offload``: the residency policy; ``t5_cpu``: Wan's ``--t5_cpu``; ``runtime``: the
    dtype policy of the code that runs it (``diffusers``, ``wan``, ``wan-bf16``); ``vae_tiling``: ``on``,
    ``off`` or a tile size in pixels (``vae.enable_tiling()``); ``quantize_on_device``: ``--precision`` applied
    on the GPU after loading the checkpoint there in its own dtype (torchao ``quantize_`` after ``.to("cuda")``);
    ``fuse_qkv``: ``pipe.fuse_qkv_projections()`` (the fused copies loaded beside the projections).
    """
    from fxmeter.estimate.memory import check_runtime
    from fxmeter.estimate.tiling import parse_tiling

    runtime = check_runtime(runtime)
    tiling = parse_tiling(vae_tiling)
    from fxmeter.estimate.hardware import HardwareError, get_many, parse_efficiency, parse_prices
    from fxmeter.estimate.kernels import KernelOptions, check_kernel, check_options

    traffic = check_traffic("fused" if compile else traffic)
    if precision not in ("bf16", "fp8", "int8"):
        raise HardwareError(f"unknown precision {precision!r}; use bf16, fp8 or int8")
    devices: list[Hardware] = []
    eff = None
    if hardware is None and hardware_file is None:
        for flag, value, default in (("--efficiency", efficiency, None), ("--price-per-hour", price_per_hour, None),
                                     ("--attention", attention, "sdpa"), ("--attention-precision", attention_precision, "bf16")):
            if value != default:
                raise HardwareError(f"{flag} changes the time on a device: it needs --hardware (see `fxmeter hardware`)")
    else:
        devices = get_many(hardware, hardware_file)
        if attention == "sage" and attention_precision == "bf16":
            # SageAttention has no bf16 mode (Q K^T is always INT8): --attention sage alone means its own default,
            # P V in FP8 where the GPU has FP8 tensor cores (SageAttention2 8+8), else FP16 (8+16, Ampere)
            attention_precision = "fp8" if all(hw.tensor_core.get("fp8") for hw in devices) else "int8"
        eff = parse_efficiency(dict(efficiency) if isinstance(efficiency, Mapping) else efficiency) \
            if efficiency is not None else None
        kopts = KernelOptions(attention=attention, precision=precision, attention_precision=attention_precision,
                              compile=bool(compile))
        check_options(kopts)
        for hw in devices:
            hw.tc_peak(precision)  # fail before tracing when a device lacks this precision
            if eff is None:
                check_kernel(kopts, hw)  # e.g. FA3 needs Hopper
    prices = parse_prices(price_per_hour, devices) if devices else {}
    resolved = resolve_model(model, config)
    wl = resolve(workload, resolved.default_workload or None, **overrides)
    d = normalize_dtype(dtype)
    geometry = resolved.geometry(wl)
    plans = resolved.stages(wl, batched_cfg=bool(batched_cfg))
    chosen = select_stages(resolved, plans, stages)
    dtypes = stage_dtypes(resolved, plans, stage_dtype)
    from fxmeter.estimate.residency import check_policy, policies_for

    policy = check_policy(offload, bool(t5_cpu), policies_for(resolved.adapter.extra_policies), resolved.id)
    if t5_cpu and not any(p.name.startswith("text_encoder") and (chosen is None or p.name in chosen) for p in plans):
        from fxmeter.errors import StageError

        raise StageError("--t5-cpu moves the text encoder to the host, but the pipeline asked for has none "
                         "(--stages without text_encoder)")
    if quantize_on_device and (precision == "bf16" or policy != "none" or (gpus or 1) > 1 or parallel or fsdp
                               or chosen is not None or t5_cpu or runtime != "diffusers"):
        from fxmeter.errors import WorkloadError

        raise WorkloadError("--quantize-on-device loads the whole pipeline on one GPU and quantizes it there: it "
                            "needs --precision fp8 or int8, --offload none, one GPU, every stage and the diffusers "
                            "runtime")
    for p in plans:  # a selected stage whose component config the model folder lacks: one line now
        if (chosen is None or p.name in chosen) and p.component in resolved.missing:
            resolved.stage_component(p)
    plan = None
    if gpus is not None or parallel is not None or fsdp:
        plan = _plan(resolved, wl, geometry, devices, gpus, parallel, fsdp, batched_cfg)
    options = Options(dtype=d, precision=precision, traffic=traffic, batched_cfg=bool(batched_cfg),
                      full_trace=not replicate, hardware=",".join(h.name for h in devices) or None, efficiency=eff,
                      attention=attention, attention_precision=attention_precision, compile=bool(compile),
                      cache_skip=float(cache_skip), gpus=plan.gpus if plan else None,
                      parallel=plan.spec() if plan else None, fsdp=bool(plan and plan.fsdp),
                      stages=chosen, stage_dtypes=dtypes or None, offload=policy, t5_cpu=bool(t5_cpu),
                      runtime=runtime, vae_tiling=None if tiling is None else (tiling.size or 0),
                      quantize_on_device=bool(quantize_on_device), fuse_qkv=bool(fuse_qkv))
    return Request(resolved, wl, geometry, options, tuple(devices), eff, prices, plan)


def _plan(model: ResolvedModel, wl: Workload, geometry: Geometry, devices: Sequence[Hardware], gpus: int | None,
          parallel: str | None, fsdp: bool, batched_cfg: bool) -> ParallelPlan:
    """The checked multi-GPU plan of a request (one ParallelError line for anything it cannot run)."""
    from fxmeter.errors import ParallelError
    from fxmeter.estimate.split import plan_for

    if gpus is None:
        raise ParallelError("--parallel and --fsdp split the model over GPUs: name how many with --gpus N")
    if not devices:
        raise ParallelError("--gpus needs --hardware: the per-GPU time and the interconnect come from the device "
                            "(see `fxmeter hardware`)")
    if len(devices) > 1:
        raise ParallelError(f"--gpus runs on one kind of device; --hardware names {len(devices)} "
                            f"({', '.join(d.name for d in devices)}): name one (`fxmeter scale` compares GPU counts)")
    return plan_for(model, wl, geometry, gpus, parallel, fsdp=bool(fsdp), batched_cfg=bool(batched_cfg))


def _names(value: str | Sequence[str] | Mapping[str, str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v).strip() for v in value]


def select_stages(model: ResolvedModel, plans: Sequence[Any], stages: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """The stage names ``--stages`` asks for (None: all), checked against the model's pipeline."""
    from fxmeter.errors import StageError

    names = _names(stages)
    if not names or names == ["all"]:
        return None
    have = [p.name for p in plans]
    denoisers = [p.name for p in plans if p.denoiser]
    chosen: list[str] = []
    for n in names:
        if n == "all":
            raise StageError("--stages all cannot be combined with stage names")
        if n == "transformer":
            chosen += denoisers
        elif n in have:
            chosen.append(n)
        else:
            import difflib

            close = difflib.get_close_matches(n, have + ["all"], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise StageError(f"unknown stage {n!r}{hint}: {model.id}'s pipeline has {', '.join(have)} (or all)")
    return tuple(p for p in have if p in chosen)


def stage_dtypes(model: ResolvedModel, plans: Sequence[Any], spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """``--stage-dtype vae=fp32,text_encoder=bf16`` -> component -> dtype (a stage name names its component)."""
    from fxmeter.errors import StageError

    if spec is None:
        return {}
    items = list(spec.items()) if isinstance(spec, Mapping) else []
    if isinstance(spec, str):
        for part in _names(spec):
            name, sep, value = part.partition("=")
            if not sep or not name.strip() or not value.strip():
                raise StageError(f"--stage-dtype takes STAGE=DTYPE pairs (vae=fp32,text_encoder=bf16), got {part!r}")
            items.append((name.strip(), value.strip()))
    out: dict[str, str] = {}
    for name, value in items:
        plan = next((p for p in plans if name in (p.name, p.component)), None)
        if plan is None:
            raise StageError(f"--stage-dtype: unknown stage {name!r}; {model.id}'s pipeline has "
                             f"{', '.join(p.name for p in plans)}")
        if plan.denoiser:
            raise StageError(f"--stage-dtype {name}: the denoiser's dtype is --dtype")
        out[plan.component] = normalize_dtype(str(value))
    return out


def stage_inputs(req: Request, *, cache: bool = True, rules: Overlay | None = None,
                 progress: Progress | None = None,
                 memo: dict[tuple[str, ...], list[StageInput]] | None = None) -> list[StageInput]:
    """Each stage of ``req``'s generation with its symbolic model (shipped, cached or traced now).

    Every denoising stage is evaluated (the report's totals describe it); the other stages
    only when ``--stages`` asks for them.  ``memo`` (sweeps) keeps the symbolic models already
    fetched: one is reused for every workload inside its guards.
    """
    from fxmeter.cost import store
    from fxmeter.estimate.generation import StageInput
    from fxmeter.estimate.memory import runtime_activation
    from fxmeter.estimate.tiling import Tiling, class_tiles, tile_grid
    from fxmeter.model.fusion import fused_qkv_copies

    out = []
    tiling = None if req.options.vae_tiling is None else Tiling(req.options.vae_tiling or None)
    chosen = req.options.stages
    plans = skip_plans(req.model.stages(req.workload, batched_cfg=req.options.batched_cfg), req.options.cache_skip)
    for plan in plans:
        selected = chosen is None or plan.name in chosen
        if not selected and not plan.denoiser:
            continue
        comp = req.model.stage_component(plan)
        dims = req.model.stage_dims(plan, req.geometry)
        dtype = (req.options.stage_dtypes or {}).get(plan.component) or plan.dtype or req.options.dtype
        replicate = not req.options.full_trace if plan.denoiser else True
        extra = (runtime_activation(req.options.runtime, comp.config, req.geometry.tokens, int(dims.get("batch", 1)))
                 if plan.denoiser else None)
        # --vae-tiling: the tiles the decode runs, at the VAE config's own compression (None: decoded whole)
        tiles = None
        if tiling is not None and plan.name == "vae":
            cls = str(comp.config.get("_class_name"))
            tiles = tile_grid(cls, dims, tiling, comp.config)
            if class_tiles(cls) is None:
                plan = replace(plan, notes=(*plan.notes, f"--vae-tiling: not modeled for {cls} (its tiling is "
                                                         "temporal as well, or it has none): decoded whole"))
        # --fuse-qkv: the parameters the denoiser's own fuse_qkv_projections() adds (built on meta)
        fused = fused_qkv_copies(comp.config, comp.config_sha256, dtype) if req.options.fuse_qkv and plan.denoiser else None
        key = (comp.config_sha256, comp.adapter.name, plan.root, dtype, str(plan.batch_factor))
        known = [i for i in (memo or {}).get(key, []) if not i.model.guard_problems(dims)]
        if known:
            out.append(StageInput(plan, known[0].model, dims, known[0].source, 0.0, selected, extra, tiles, fused))
            continue
        got = store.get(comp, dtype, dims, replicate=replicate, cache=cache,
                        overlay=rules, progress=progress, root=plan.root)
        inp = StageInput(plan, got.model, dims, got.source, got.seconds, selected, extra, tiles, fused)
        if memo is not None:
            memo.setdefault(key, []).append(inp)
        out.append(inp)
    return out


def skip_plans(plans: Sequence[StagePlan], skip: float) -> list[StagePlan]:
    """Denoising stages with the forwards a step cache (TeaCache/FBCache style) skips taken out.

    ``skip`` is the fraction of transformer forwards skipped: each denoising stage runs
    ``runs - floor(runs * skip)`` forwards; a skipped forward is counted as free (the cache's
    own check, e.g. FBCache's first block, is not counted).
    """
    import math

    if not skip:
        return list(plans)
    out = []
    for p in plans:
        if p.steps:
            kept = p.runs - math.floor(p.runs * skip)
            note = (f"--cache-skip {skip:g}: a step cache skips {p.runs - kept} of {p.runs} forwards of {p.name} "
                    "(counted as free; the cache's own check is not counted)")
            p = replace(p, runs=kept, notes=(*p.notes, note))
        out.append(p)
    return out


def estimate_request(req: Request, inputs: list[StageInput], *, nodes: bool = True, modules: bool = True,
                     memo: dict[tuple[Any, ...], Any] | None = None) -> Estimate:
    """The pure estimate of ``req`` from its stage inputs (``memo``: a sweep's evaluated stages, reused)."""
    from fxmeter.estimate.generation import estimate
    from fxmeter.estimate.residency import policies_for

    adapter = req.model.adapter
    split = req.plan is not None  # the deployment needs every node and module of each stage
    est = estimate(inputs, req.options, steps=req.workload.steps,
                   passes_per_step=req.model.passes_per_step(req.workload), hardware=req.devices or None,
                   efficiency=req.efficiency, nodes=nodes or split, modules=modules or split, prices=req.prices,
                   offload_seq=adapter.offload_seq, policies=policies_for(adapter.extra_policies),
                   i2v=adapter.name == "wan-i2v", memo=memo)
    return est if req.plan is None else with_plan(req, est, req.plan)


def with_plan(req: Request, est: Estimate, plan: ParallelPlan) -> Estimate:
    """``est`` (one generation on one GPU) with its deployment on ``plan``'s GPUs (``fxmeter scale`` reuses one
    estimate for every GPU count)."""
    from fxmeter.estimate.deploy import deploy
    from fxmeter.estimate.split import split_rules

    assert req.hardware is not None, "a plan is only made with a device"
    dep = deploy(est, plan, split_rules(req.model, req.geometry), req.hardware, efficiency=req.efficiency)
    return replace(est, deployment=dep)


def trace(
    model: str | None = None,
    workload: str | Workload | None = None,
    *,
    run_id: str | None = None,
    strict: bool = False,
    cache: bool = True,
    include_nodes: bool = True,
    rules: Overlay | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> Report:
    """Trace ``model`` for ``workload`` and return the :class:`~fxmeter.report.Report` (see :func:`fxmeter.trace`).

    ``options``: the keywords of :func:`request` (every option of :class:`fxmeter.base.knobs.TraceOptions`
    that changes what is estimated).
    """
    from fxmeter.report.build import build
    from fxmeter.report.document import check_run_id

    rid = check_run_id(default_run_id() if run_id is None else run_id)
    req = request(model, workload, **options)
    from fxmeter.cost.analyze import check_overlay

    check_overlay(rules)  # before any trace: a bad overlay is one UsageError, not a raw TypeError mid-analysis
    inputs = stage_inputs(req, cache=cache, rules=rules, progress=progress)
    if strict:
        unmodeled = [u for inp in inputs for u in inp.model.unmodeled]
        if unmodeled:
            ops = ", ".join(f"{u['op']} (x{u['count']})" for u in unmodeled)
            raise UnmodeledOpError(f"--strict: ops without a rule: {ops}")
    est = estimate_request(req, inputs)
    notes = ["Costs use a per-call rule overlay (rules=...): " + ", ".join(sorted(rules))] if rules else []
    notes += list(req.model.pipeline_notes(req.workload))
    return build(est, model=req.model, workload=req.workload, geometry=req.geometry, run_id=rid,
                 include_nodes=include_nodes, notes=notes)


def sweep(
    model: str | None,
    *,
    grid: Mapping[str, Sequence[int | None]],
    workload: str | Workload | None = None,
    config: str | Path | None = None,
    dtype: str = "bf16",
    hardware: str | None = None,
    hardware_file: str | Path | None = None,
    efficiency: str | Mapping[str, float] | None = None,
    cache: bool = True,
    replicate: bool = True,
    guidance_scale: float | None = None,
    progress: Progress | None = None,
    stages: str | Sequence[str] | None = None,
    stage_dtype: str | Mapping[str, str] | None = None,
    offload: str = "none",
    t5_cpu: bool = False,
    **options: Any,
) -> SweepResult:
    """Evaluate every combination of ``grid`` (knob -> values; None = the preset's value).

    ``options``: the other device and deployment keywords of :func:`request` (``precision``,
    ``traffic``, ``attention``, ``attention_precision``, ``compile``, ``cache_skip``,
    ``price_per_hour``, ``gpus``, ``parallel``, ``fsdp``), the same for every point.

    The symbolic model is fetched once and reused for every point inside its guards (one
    call of the compiled formulas per point); a point outside them is traced statically.
    """
    import itertools
    import math

    from fxmeter.errors import WorkloadError
    from fxmeter.report.build import build
    from fxmeter.report.sweep import MAX_POINTS, SweepResult, row_of

    knobs = sorted(grid)
    count = math.prod(len(grid[k]) for k in knobs)
    if count > MAX_POINTS:
        sizes = " x ".join(f"{len(grid[k])} {k.replace('_', '-')}" for k in knobs if len(grid[k]) > 1)
        raise WorkloadError(f"sweep of {count:,} workloads ({sizes}) is over the limit of {MAX_POINTS:,}; "
                            "sweep fewer values or split the sweep")
    # several devices (--hardware h100,a100): one row per workload and device, each timed on its own device
    from fxmeter.errors import check_keywords
    from fxmeter.estimate.hardware import get_many, parse_prices

    check_keywords(options, SWEEP_OPTIONS, "fxmeter.api.sweep")
    named = [] if hardware is None and hardware_file is None else get_many(hardware, hardware_file)
    devices: list[str | None] = [d.name for d in named] or [None]
    price_spec = options.pop("price_per_hour", None)
    prices = parse_prices(price_spec, named) if named else {}
    if price_spec is not None and not named:
        from fxmeter.estimate.hardware import HardwareError

        raise HardwareError("--price-per-hour changes the time on a device: it needs --hardware (see `fxmeter hardware`)")
    points: list[tuple[str | None, Request]] = []
    for device in devices:
        base = None
        for combo in itertools.product(*(grid[k] for k in knobs)):
            ov: dict[str, Any] = {k: v for k, v in zip(knobs, combo) if v is not None}
            if guidance_scale is not None:
                ov["guidance_scale"] = guidance_scale
            try:
                req = request(model, workload, config=config, dtype=dtype, hardware=device, hardware_file=hardware_file,
                              efficiency=efficiency, replicate=replicate, stages=stages, stage_dtype=stage_dtype,
                              offload=offload, t5_cpu=t5_cpu, price_per_hour=prices.get(device or ""), **options,
                              **ov) if base is None else \
                    with_workload(base, resolve(workload, base.model.default_workload or None, **ov))
            except WorkloadError as e:
                point = ", ".join(f"{k} {v}" for k, v in ov.items() if k != "guidance_scale")
                raise WorkloadError(f"sweep point with {point}: {e}" if point else str(e)) from None
            base = base or req
            points.append((device, req))
    if not points:
        raise WorkloadError("empty sweep")
    memo: dict[tuple[str, ...], list[StageInput]] = {}
    timed: dict[tuple[Any, ...], Any] = {}  # stages already evaluated and timed (same model, same symbol values)
    rows = []
    first_source = ""
    for _device, req in points:
        inputs = stage_inputs(req, cache=cache, progress=progress, memo=memo)
        first_source = first_source or next(i.source for i in inputs if i.plan.denoiser)
        # totals only: every node is still timed, no node or module row is kept
        est = estimate_request(req, inputs, nodes=False, modules=False, memo=timed)
        rep = build(est, model=req.model, workload=req.workload, geometry=req.geometry, run_id="sweep",
                    include_nodes=False)
        rows.append(row_of(rep))
    main_key = next((k for k, v in memo.items() if v[0].plan.denoiser), None)
    sm = memo[main_key][0].model if main_key is not None else None
    trace = {"mode": sm.meta["mode"] if sm else "", "cache": first_source,
             "guards": dict(sm.meta.get("guards", {})) if sm else {}, "symbols": list(sm.symbols) if sm else []}
    first = points[0][1]
    return SweepResult(first.model.id, first.options.dtype, hardware, rows, trace)


#: The keywords of :func:`request` a sweep passes to every point (declared in :mod:`fxmeter.base.knobs`).
SWEEP_OPTIONS = knobs.SWEEP_OPTIONS


def scale(
    model: str | None,
    *,
    gpus: str | Sequence[int],
    hardware: str,
    parallel: str | None = None,
    fsdp: bool = False,
    workload: str | Workload | None = None,
    config: str | Path | None = None,
    cache: bool = True,
    progress: Progress | None = None,
    run_id: str = "scale",
    include_nodes: bool = False,
    **kwargs: Any,
) -> ScaleResult:
    """One generation of ``model`` on each GPU count of ``gpus`` (``"1,2,4,8"``) of the ``hardware`` device.

    One request and one estimate (one symbolic model, evaluated once), then one deployment per count:
    the default plan of each count (cfg=2 with two passes per step, the rest Ulysses), or ``parallel``
    for all of them; ``fsdp`` applies to every count above one.  A count the plan cannot use is one
    :class:`~fxmeter.errors.ParallelError` naming it.  ``run_id``: the run the result is written to (the
    report of ``--html`` carries it); ``include_nodes``: keep the largest count's node rows in its report
    (report.html colours the treemap by node category).  ``kwargs``: the other options of :func:`request` (``offload``,
    ``stages``, ``t5_cpu`` included: each count's memory per GPU is at the policy's peak stage).
    """
    from fxmeter.errors import ParallelError
    from fxmeter.estimate.split import plan_for
    from fxmeter.report.build import build
    from fxmeter.report.deployment import deployment_info, scaling_row
    from fxmeter.report.scale import ScaleResult, gpu_counts

    counts = gpu_counts(gpus)
    req = request(model, workload, config=config, hardware=hardware, **kwargs)
    if len(req.devices) != 1:
        raise ParallelError(f"fxmeter scale runs on one kind of device; --hardware names {len(req.devices)}")
    plans = []
    refused: list[str] = []
    for n in counts:
        try:
            plans.append(plan_for(req.model, req.workload, req.geometry, n, parallel, fsdp=bool(fsdp) and n > 1,
                                  batched_cfg=req.options.batched_cfg))
        except ParallelError as e:
            if parallel is not None:  # the plan the user asked for does not fit this count: their input, an error
                raise ParallelError(f"--gpus {n}: {e}") from None
            refused.append(f"--gpus {n}: {e}")  # the model cannot run this count at all: priced without it, said so
    if not plans:  # no count can be priced: the first count's reason is the error
        raise ParallelError(refused[0])
    est = estimate_request(req, stage_inputs(req, cache=cache, progress=progress))
    deployed = [with_plan(req, est, p) for p in plans]
    deps = [d.deployment for d in deployed if d.deployment is not None]
    rows = tuple(scaling_row(d) for d in deps)
    last = max(range(len(deps)), key=lambda i: deps[i].gpus)
    p = plans[last]
    shown = replace(deployed[last], options=replace(est.options, gpus=p.gpus, parallel=p.spec(), fsdp=p.fsdp))
    rep = build(shown, model=req.model, workload=req.workload, geometry=req.geometry, run_id=run_id,
                include_nodes=include_nodes, scaling=rows)
    notes = ["efficiency = t(1 GPU) / (N x t(N GPUs)), both predicted by the same model; comm share = exposed "
             "communication / t(N GPUs)"]
    if fsdp and 1 in counts:
        notes.append("--fsdp applies to the counts above 1 (one GPU holds the whole model)")
    notes += [f"not priced: {r}" for r in refused]  # the counts this model cannot run, each with its reason
    return ScaleResult(req.model.id, req.workload.name, req.devices[0].label, rows,
                       tuple(deployment_info(d) for d in deps), rep, tuple(notes))


def with_workload(req: Request, wl: Workload) -> Request:
    """``req`` for another workload of the same model (sweeps); a multi-GPU plan is checked again against it."""
    geometry = req.model.geometry(wl)
    plan = req.plan
    if plan is not None:
        plan = _plan(req.model, wl, geometry, req.devices, plan.gpus, req.options.parallel, plan.fsdp,
                     req.options.batched_cfg)
    return replace(req, workload=wl, geometry=geometry, plan=plan)


def describe_error(e: BaseException) -> str:
    """One line for an unexpected error (the CLI's boundary)."""
    if isinstance(e, FxmeterError):
        return str(e)
    return f"{type(e).__name__}: {e}"


# -- verify: trace (or reuse the run's report), run FlopCounterMode, compare ---------------------
@dataclass
class VerifyResult:
    """What :func:`verify` found: the layers and end-to-end documents, the report it checked."""

    layers: dict[str, Any]
    end2end: dict[str, Any]
    report: Report
    out_dir: Path
    files: list[Path] = field(default_factory=list)
    traced: bool = True
    stages: list[dict[str, Any]] = field(default_factory=list)  # the other pipeline stages: name, layers, end2end

    @property
    def passed(self) -> bool:
        return bool(self.layers["passed"] and self.end2end["passed"]
                    and all(s["layers"]["passed"] and s["end2end"]["passed"] for s in self.stages))


#: The named keywords of :func:`verify` (besides the workload knobs).
VERIFY_KEYWORDS = ("model", "workload", "device", "reference", "config", "dtype", "run_id", "tolerance",
                   "output_root", "cache", "write", "progress", "stages", "before_commit")


def verify(
    model: str | None = None,
    workload: str | None = None,
    *,
    device: str = "meta",
    reference: str = "eager",
    config: str | Path | None = None,
    dtype: str = "bf16",
    run_id: str | None = None,
    tolerance: float | None = None,
    output_root: str | Path = "tmp/profile-output",
    cache: bool = True,
    write: bool = True,
    progress: Progress | None = None,
    stages: str | Sequence[str] | None = None,
    before_commit: Callable[[VerifyResult, list[Path]], None] | None = None,
    **overrides: Any,
) -> VerifyResult:
    """Trace (or reuse the run's report.json), run FlopCounterMode, compare, write verify/*.json.

    Every pipeline stage of the report is checked: the transformer on ``device`` (layers.json,
    end2end.json), each other stage (text encoders, VAE...) on meta as its pipeline calls it
    (stages.json); the gate passes when all of them do.

    Args:
        model: a registered model id, or None with ``config``.
        workload: a preset name; the model's default when None.
        device: where the reference runs: ``meta``, ``cpu`` or ``cuda``.
        reference: ``eager`` (the module) or ``graph`` (the exported graph through an fx Interpreter).
        config: a local diffusers config.json.
        dtype: parameter dtype (bf16, fp16, fp32).
        run_id: the run folder; its report.json is reused when it exists.
        tolerance: overrides both scopes of ``tolerances.toml``.
        output_root: where run folders go.
        cache: use the trace cache when tracing.
        write: write report.json (if traced now) and verify/layers.json, verify/end2end.json, verify/stages.json.
        stages: the pipeline stages to trace and check (default all; see :func:`request`).
        before_commit: called with the result and the paths about to be written, once they are
            staged and before any is published (the CLI prints there: a failing stdout writes nothing).
        **overrides: workload knobs (frames, height, width, steps, text_len, batch, guidance_scale).
    """
    from fxmeter.base import fileio
    from fxmeter.errors import OutputExistsError, VerifyError, check_keywords
    from fxmeter.model.workload import OVERRIDABLE
    from fxmeter.report.document import check_output_root, check_run_id
    from fxmeter.report.files import Report, check_writable, write_files
    from fxmeter.verify.compare import (
        DEVICES,
        REFERENCES,
        check_cpu_budget,
        check_same,
        compare,
        load_settings,
        tolerances,
    )

    check_keywords(overrides, (*VERIFY_KEYWORDS, *OVERRIDABLE), "fxmeter.api.verify")
    if device not in DEVICES:
        raise VerifyError(f"unknown device {device!r}; use one of {', '.join(DEVICES)}")
    if reference not in REFERENCES:
        raise VerifyError(f"unknown reference {reference!r}; use one of {', '.join(REFERENCES)}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise VerifyError("--device cuda: no CUDA GPU here (torch.cuda.is_available() is False); "
                              "use --device meta or cpu")
    settings = load_settings()
    tol = tolerances(tolerance, settings)
    rid = check_run_id(default_run_id() if run_id is None else run_id)
    if write:
        check_writable(output_root)
    req = request(model, workload, config=config, dtype=dtype, stages=stages, **overrides)
    out_dir = check_output_root(output_root) / rid / "static_analysis" / req.model.slug

    rep: Report | None = None
    traced = False
    if (out_dir / "report.json").exists():
        rep = Report.load(out_dir / "report.json")  # validated; a folder or a malformed file is one error line
        check_same(rep.data, req.model, req.workload, req.options.dtype, dict(req.geometry.dims), out_dir)
    if rep is None:
        rep = trace(model, req.workload, config=config, dtype=dtype, run_id=rid, cache=cache, progress=progress,
                    stages=stages)
        traced = True
    if device == "cpu":
        check_cpu_budget(rep.data, settings)
    from fxmeter.verify.reference import run_reference

    # the report's per-forward numbers are its first denoising stage's forward (2x the batch when CFG is batched)
    main = next(p for p in req.model.stages(req.workload, batched_cfg=req.options.batched_cfg) if p.denoiser)
    ref = run_reference(req.model.stage_component(main), req.model.stage_dims(main, req.geometry), req.options.dtype,
                        device, reference)
    layers, end2end = compare(rep.data, ref, tol)
    checked = verify_stages(req, rep.data, tol, progress)
    result = VerifyResult(layers, end2end, rep, out_dir, traced=traced, stages=checked)
    if write:  # the report (if traced now) and the verify files appear together, or nothing does
        files = rep.files() if traced else {}
        files.update({f"verify/{n}": fileio.dumps(d) for n, d in (("layers.json", layers), ("end2end.json", end2end))})
        if checked:
            files["verify/stages.json"] = fileio.dumps({
                "stages": checked, "passed": all(s["layers"]["passed"] and s["end2end"]["passed"] for s in checked)})
        try:
            written = write_files(out_dir, files, "the verify files", claim="report.json" if traced else None,
                                  whole=True, drop="verify".__eq__,
                                  before_commit=None if before_commit is None else lambda ps: before_commit(result, ps))
        except OutputExistsError:
            raise VerifyError(f"{out_dir / 'report.json'} was written by another run meanwhile; "
                              "run verify again to check it, or choose another --run-id") from None
        result.files += written
    return result


def verify_stages(req: Request, data: Mapping[str, Any], tol: Mapping[str, float],
                  progress: Progress | None = None) -> list[dict[str, Any]]:
    """Each pipeline stage of report ``data`` other than the denoisers against FlopCounterMode on meta; a
    denoising stage with its own module root (LTX-2's STG and modality passes: another call of the transformer)
    is checked the same way, eagerly.

    The stage is built and called as the report's trace did (same config, call, dtype and
    symbol values); its module rows are compared per module (``layers``) and per run / end to
    end over its runs (``end2end``) with the same tolerances as the transformer.
    """
    from fxmeter.verify.compare import compare
    from fxmeter.verify.reference import run_reference, run_stage_reference

    pipeline = data.get("pipeline") or {}
    plans = {p.name: p for p in req.model.stages(req.workload, batched_cfg=req.options.batched_cfg)}
    out = []
    for row in pipeline.get("stages", ()):
        if (row["denoiser"] and row["root"] == "transformer") or row["name"] not in plans:
            continue
        if progress:
            progress(f"verifying stage {row['name']} ({row['class']}) under FlopCounterMode on meta...")
        comp = req.model.stage_component(plans[row["name"]])
        if row["denoiser"]:
            ref = run_reference(comp, dict(row["dims"]), row["dtype"], "meta", root=row["root"])
            ref = replace(ref, modules={})  # the report keeps no module rows of a second pass: totals
        else:
            ref = run_stage_reference(comp, dict(row["dims"]), row["dtype"], row["root"])
        stage_data = {
            "run_id": data["run_id"], "model": data["model"], "modules": row.get("modules", []),  # a denoiser row: totals only
            "unmodeled_ops": row.get("unmodeled_ops", []),
            "workload": {**data["workload"], "steps": 1, "passes_per_step": row["runs"]},
            "totals": {"per_forward": row["per_run"]},
        }
        layers, end2end = compare(stage_data, ref, dict(tol))
        out.append({"name": row["name"], "class": row["class"], "runs": row["runs"], "dims": row["dims"],
                    "dtype": row["dtype"], "layers": layers, "end2end": end2end})
    return out
