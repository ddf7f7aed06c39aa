"""A generation: the stages of one pipeline run, each costed, timed and weighed on a device.

Pure steps over typed values, declared once and shared by ``trace``, ``sweep`` and
``verify``: each stage's symbolic model is evaluated at the stage's symbol values
(:func:`~fxmeter.estimate.evaluate.evaluate`), scaled by its runs per generation; weights
are taken at the deployment precision once per component; with a device, each stage gets
its roofline *bound* (100% of every peak) and a *predicted* time (the kernel model of
:mod:`fxmeter.estimate.kernels`, or the roofline at ``--efficiency`` fractions), and the
generation a fit check.

The denoising stages (the transformer, experts) are what ``totals`` / ``memory`` of a report
describe; the whole pipeline (text encoders, VAE...) is :attr:`Estimate.pipeline_end_to_end`
and the residency plan (:mod:`fxmeter.estimate.residency`).  ``--precision fp8`` / ``int8`` applies to the
denoisers only (text encoders and VAEs run as traced); each stage runs at its own dtype's peak.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from fxmeter.estimate.evaluate import StageCost, evaluate
from fxmeter.estimate.kernels import StandIn, load_kernel_model, stand_ins
from fxmeter.estimate.memory import (
    Fit,
    RuntimeActivation,
    WeightMemory,
    at_precision,
    effective_runtime,
    fit,
    loaded_before_quantize,
    with_fused_qkv,
    with_runtime,
)
from fxmeter.estimate.metrics import ZERO, Metrics
from fxmeter.estimate.options import Options
from fxmeter.estimate.residency import Residency, StageLoad, StageResidency, fit_line, plan, transfer_timer
from fxmeter.estimate.roofline import ONE, Device, StageTime, stage_time
from fxmeter.estimate.tiling import TileGrid, sum_costs, sum_times, tiled_vae

if TYPE_CHECKING:
    from fxmeter.cost.symbolic import SymbolicModel
    from fxmeter.estimate.deploy import Deployment
    from fxmeter.estimate.hardware import Hardware
    from fxmeter.model.pipeline import StagePlan


@dataclass(frozen=True)
class StageInput:
    """What the estimate needs for one stage: its plan, its symbolic model and symbol values."""

    plan: StagePlan
    model: SymbolicModel
    dims: Mapping[str, int]
    source: str = ""  # where the symbolic model came from (shipped, cache, traced...)
    seconds: float = 0.0  # time spent getting it
    selected: bool = True  # asked for by --stages (a denoiser is evaluated either way: totals describe it)
    runtime: RuntimeActivation | None = None  # what --runtime's own code holds beyond the traced graph
    tiles: TileGrid | None = None  # --vae-tiling: the tiles a decode runs (None: decoded whole)
    fused_qkv: tuple[int, int] | None = None  # --fuse-qkv: (parameters, bytes) the fused copies add


@dataclass(frozen=True)
class Stage:
    """One stage of a generation: one forward's cost, and how many forwards run."""

    plan: StagePlan
    cost: StageCost
    bound: StageTime | None = None
    predicted: StageTime | None = None
    source: str = ""
    trace_seconds: float = 0.0
    weights: WeightMemory | None = None  # the component's weights (at the precision for a denoiser)
    selected: bool = True  # in the pipeline the user asked for (--stages); denoisers are always evaluated
    runtime: RuntimeActivation | None = None  # what --runtime's own code holds beyond the traced graph

    def activation_bytes(self, scale: Fraction | float = 1, sp: int = 1) -> int:
        """Peak live activations of one run: the traced peak (times ``scale``, a GPU's share under a parallel
        plan) plus what the runtime's own code holds (:class:`RuntimeActivation`, ``sp``: the sequence split)."""
        traced = self.cost.activations.peak_bytes
        return (traced if scale == 1 else math.ceil(traced * scale)) + (self.runtime.bytes(sp) if self.runtime else 0)

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def denoiser(self) -> bool:
        return self.plan.denoiser

    @property
    def runs(self) -> int:
        return self.plan.runs

    @property
    def end_to_end(self) -> Metrics:
        return self.cost.total.scale(self.plan.runs)


@dataclass(frozen=True)
class DeviceEstimate:
    """One device's seconds for the whole generation (the side-by-side table of ``--hardware a,b,c``)."""

    name: str
    label: str
    bound_seconds: float
    predicted_seconds: float
    predicted_by: str  # "kernel model" or "efficiency"
    fit: Fit
    price_per_hour: float | None = None
    fits_with: str | None = None  # the offload policy (fewest host->device bytes) that fits, when --offload's does not:
    # then the seconds are that policy's (its host<->device copies included, a --t5-cpu stage's host time left out)
    stand_ins: tuple[StandIn, ...] = ()  # kernel-model constants measured on another device that price this one

    @property
    def runnable(self) -> bool:
        """Fits in the device's memory under the report's policy or under ``fits_with``."""
        return self.fit.fits or self.fits_with is not None

    @property
    def generations_per_hour(self) -> float:
        return 3600.0 / self.predicted_seconds if self.predicted_seconds else float("inf")

    @property
    def gpu_hours(self) -> float:
        return self.predicted_seconds / 3600.0

    @property
    def dollars(self) -> float | None:
        return None if self.price_per_hour is None or not self.runnable else self.gpu_hours * self.price_per_hour


@dataclass(frozen=True)
class Estimate:
    """A whole generation on (optionally) a device."""

    stages: tuple[Stage, ...]
    options: Options
    steps: int
    passes_per_step: int  # forwards per step as run (1 when CFG is batched)
    cfg: str  # "separate passes" | "batched" | "none"
    weights: WeightMemory  # every component, at the deployment precision
    component_weights: Mapping[str, WeightMemory]
    device: Device | None = None
    fit: Fit | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    devices: tuple[DeviceEstimate, ...] = ()
    predicted_by: str | None = None  # "kernel model" | "efficiency" (what predicted_seconds are)
    deployment: Deployment | None = None  # the generation on several GPUs (--gpus; fxmeter.estimate.deploy)
    residency: Residency | None = None  # the --offload policy applied to the pipeline's stages
    policies: tuple[Residency, ...] = ()  # every policy the pipeline has (the fit check per policy)

    @property
    def main(self) -> Stage:
        """The stage the report's modules describe (the first denoiser)."""
        return next((s for s in self.stages if s.denoiser), self.stages[0])

    @property
    def denoisers(self) -> tuple[Stage, ...]:
        return tuple(s for s in self.stages if s.denoiser)

    @property
    def pipeline(self) -> tuple[Stage, ...]:
        """The stages of the pipeline section: the selected ones, in call order."""
        return tuple(s for s in self.stages if s.selected)

    @property
    def end_to_end(self) -> Metrics:
        """The denoising loop end to end (every denoiser's runs): ``totals.end_to_end``."""
        return _runs_total(self.denoisers)

    @property
    def pipeline_end_to_end(self) -> Metrics:
        """One whole generation: every selected stage's runs."""
        return _runs_total(self.pipeline)

    @property
    def activation_peak_bytes(self) -> int:
        return max(s.activation_bytes() for s in self.denoisers)

    def seconds(self, kind: str = "bound", stages: tuple[Stage, ...] | None = None) -> float | None:
        """Seconds end to end (``bound`` or ``predicted``) of ``stages`` (default: the denoisers), None without
        a device / prediction.  A stage run on the host (``--t5-cpu``) has no device seconds and is left out."""
        total = 0.0
        for s in self.denoisers if stages is None else stages:
            if self.residency is not None and self.residency.on_host(s.name):
                continue
            t = s.bound if kind == "bound" else s.predicted
            if t is None:
                return None
            total += t.per_run * s.runs
        return total

    def pipeline_seconds(self, kind: str = "bound") -> float | None:
        """The whole generation: the selected stages' seconds plus the residency's copies (copies of
        unknown seconds, on a device entry without a PCIe link, add nothing: the bound stays a bound)."""
        compute = self.seconds(kind, self.pipeline)
        if compute is None:
            return None
        moves = self.residency.transfer_seconds if self.residency is not None else 0.0
        return compute + (moves or 0.0)


def _runs_total(stages: Sequence[Stage]) -> Metrics:
    """The cost of every run of ``stages``."""
    acc = ZERO
    for s in stages:
        acc = acc + s.end_to_end
    return acc


def estimate(inputs: Sequence[StageInput], options: Options, *, steps: int, passes_per_step: int,
             hardware: Hardware | Sequence[Hardware] | None = None, efficiency: Mapping[str, float] | None = None,
             nodes: bool = True, modules: bool = True, prices: Mapping[str, float] | None = None,
             offload_seq: Sequence[str] = (), policies: Sequence[str] = ("none",), i2v: bool = False,
             memo: dict[tuple[Any, ...], Any] | None = None) -> Estimate:
    """Evaluate every stage, take weights at the precision, time and fit on the device(s).

    Args:
        inputs: the stages, each with its symbolic model and symbol values.
        options: the number-changing options (precision, traffic, kernels, batched CFG, offload...).
        steps: denoising steps of the workload.
        passes_per_step: transformer forwards per step as the pipeline runs them (2 with CFG).
        hardware: the device, or several (the first is the report's main device); None: no time, no fit.
        efficiency: user fractions of the peaks: the predicted seconds are the roofline at them
            (instead of the kernel model's).
        nodes, modules: keep node / module rows of the denoisers (sweeps need neither).
        prices: $ per GPU-hour by device name (the side-by-side table's cost column).
        offload_seq: the pipeline's ``model_cpu_offload_seq`` (residency policy ``model``).
        policies: the residency policies the pipeline has (the fit check per policy).
        i2v: Wan image-to-video (residency policy ``wan`` loads its DiT on the host).
        memo: a sweep's store of evaluated and timed stages, keyed by the stage's symbolic model, its
            symbol values and everything else that changes them: a stage whose symbol values repeat
            (the text encoder at every point, the transformer at every step count) is evaluated and
            timed once.  Values are the same objects a fresh evaluation gives (pure functions).
    """
    from fxmeter.estimate.predict import KernelSettings, predict_stage

    devices_hw: list[Hardware] = [] if hardware is None else (
        [hardware] if not isinstance(hardware, Sequence) else list(hardware))
    settings = KernelSettings(options.attention, options.attention_precision, options.compile)
    predicted_by = None if not devices_hw else ("efficiency" if efficiency is not None else "kernel model")

    att = options.attention_peak

    def times(cost: StageCost, hw: Hardware, precision: str, dtype: str) -> tuple[StageTime, StageTime]:
        bound = stage_time(cost, Device(hw, precision, dict(ONE), dtype, att))
        if efficiency is not None:
            pred = stage_time(cost, Device(hw, precision, {**ONE, **efficiency}, dtype, att))
        else:
            pred = predict_stage(cost, Device(hw, precision, dict(ONE), dtype, att), settings)
        return bound, pred

    def light(t: StageTime | None, keep_modules: bool) -> StageTime | None:
        if t is None:
            return None
        return StageTime(t.kind, t.per_run, (), t.modules if keep_modules else t.modules[:1], t.by_limiter, t.model)

    stages = []
    weights_by_component: dict[str, WeightMemory] = {}
    others: list[list[tuple[StageTime, StageTime]]] = [[] for _ in devices_hw[1:]]
    for inp in inputs:
        denoiser = inp.plan.denoiser
        dtype = str(inp.model.meta.get("dtype") or options.dtype)
        precision = options.precision if denoiser else "bf16"
        keep_nodes = nodes
        keep_modules = modules and (denoiser or inp.selected)
        timed = bool(devices_hw)

        def evaluated(dims: Mapping[str, int], inp: StageInput = inp,
                      full: tuple[bool, bool] = (keep_nodes or timed, keep_modules or timed)) -> tuple[StageCost, tuple[Any, ...]]:
            key = ("cost", id(inp.model), tuple(sorted(dims.items())), options.traffic, *full)
            hit = memo.get(key) if memo is not None else None
            if hit is None or hit[0] is not inp.model:
                hit = (inp.model, evaluate(inp.model, dims, traffic=options.traffic, nodes=full[0], modules=full[1]))
                if memo is not None:
                    memo[key] = hit
            return hit[1], key

        grid = inp.tiles  # vae.enable_tiling(): every tile, one after another (the largest first)
        parts = [(*evaluated(d), n) for d, n in grid.tile_dims(inp.dims, inp.model)] if grid else [(*evaluated(inp.dims), 1)]
        if grid is not None:
            cost = tiled_vae(sum_costs([(c, n) for c, _, n in parts], inp.dims), grid,
                             parts[0][0].activations.peak_bytes, dtype)
        else:
            cost = parts[0][0]
        if inp.fused_qkv is not None:  # fuse_qkv_projections(): the fused copies beside the projections
            cost = replace(cost, weights=with_fused_qkv(cost.weights, *inp.fused_qkv))

        def timed_on(hw: Hardware, parts: list[Any] = parts, grid: TileGrid | None = grid, cost: StageCost = cost,
                     precision: str = precision, dtype: str = dtype) -> tuple[StageTime, StageTime]:
            def time_of(c: StageCost, key: tuple[Any, ...]) -> tuple[StageTime, StageTime]:
                time_key = ("time", key, hw.name, precision, dtype, tuple(sorted((efficiency or {}).items())), settings, att)
                if memo is None:
                    return times(c, hw, precision, dtype)
                if time_key not in memo:
                    memo[time_key] = times(c, hw, precision, dtype)
                return memo[time_key]  # type: ignore[no-any-return]

            each = [(time_of(c, key), n) for c, key, n in parts]
            if grid is None:
                return each[0][0]  # type: ignore[no-any-return]
            return tuple(sum_times([(t[i], n) for t, n in each], cost, grid) for i in (0, 1))  # type: ignore[return-value]

        bound = predicted = None
        if timed:
            bound, predicted = timed_on(devices_hw[0])
            for i, hw in enumerate(devices_hw[1:]):
                others[i].append(timed_on(hw))
        if not keep_nodes:
            cost = StageCost(cost.root, cost.diffusers_class, cost.adapter, cost.dims, cost.traffic,
                             cost.modules if keep_modules else cost.modules[:1], (), cost.categories, cost.unmodeled,
                             cost.activations, cost.weights, cost.trace)
            bound, predicted = light(bound, keep_modules), light(predicted, keep_modules)
        w = with_runtime(at_precision(cost.weights, precision), effective_runtime(options.runtime, options.fsdp),
                         denoiser, inp.plan.component)
        weights_by_component.setdefault(inp.plan.component, w)
        stages.append(Stage(inp.plan, cost, bound, predicted, inp.source, inp.seconds, w, inp.selected, inp.runtime))
    weights = None
    for name in dict.fromkeys(s.plan.component for s in stages if s.denoiser):
        w = weights_by_component[name]
        weights = w if weights is None else weights + w
    assert weights is not None, "a generation has at least one denoising stage"
    batched = any(s.plan.batch_factor == 2 for s in stages)
    main_device = Device(devices_hw[0], options.precision, dict(ONE), options.dtype, options.attention_peak) if devices_hw else None
    est = Estimate(
        stages=tuple(stages), options=options, steps=steps,
        # batched CFG folds the two CFG passes into one forward; other passes (LTX-2's STG, modality) stay
        passes_per_step=passes_per_step - 1 if batched else passes_per_step,
        cfg="batched" if batched else ("separate passes" if passes_per_step == 2 else "none"),
        weights=weights, component_weights=weights_by_component, device=main_device, predicted_by=predicted_by,
    )
    chosen, every = plan_residency(est, options, offload_seq, policies, devices_hw[0] if devices_hw else None, i2v)
    est = replace(est, residency=chosen, policies=every)
    device_rows = []
    for i, hw in enumerate(devices_hw):
        if i == 0:
            on_device = est
        else:  # the same stages timed on this device (and its PCIe copies)
            timed_stages = tuple(replace(s, bound=t[0], predicted=t[1]) for s, t in zip(stages, others[i - 1]))
            _, every_here = plan_residency(replace(est, stages=timed_stages), options, offload_seq, policies, hw, i2v)
            chosen_here = next(r for r in every_here if r.policy == options.offload and r.t5_cpu == options.t5_cpu)
            on_device = replace(est, stages=timed_stages, residency=chosen_here, policies=every_here)
        b = on_device.pipeline_seconds("bound") or 0.0
        p = on_device.pipeline_seconds("predicted") or 0.0
        r = on_device.residency
        if r is not None:  # the whole generation's peak (weights resident at that stage + its activations)
            here = Fit(r.peak_bytes <= hw.memory_bytes, r.peak_bytes, hw.memory_bytes,
                       fit_line(r, hw.memory_bytes, hw.label))
        else:
            here = fit(weights.weight_bytes, est.activation_peak_bytes, hw.memory_bytes, hw.label)
        price = (prices or {}).get(hw.name, hw.price_per_hour)
        fitting = [x for x in (on_device.policies or ()) if x.peak_bytes <= hw.memory_bytes]
        fits_with = None if here.fits or not fitting else min(fitting, key=lambda x: x.host_to_device_bytes).name
        if fits_with is not None:  # the row's seconds are the fitting policy's: its copies in, its host stages out
            under = replace(on_device, residency=next(x for x in fitting if x.name == fits_with))
            b = under.pipeline_seconds("bound") or 0.0
            p = under.pipeline_seconds("predicted") or 0.0
        subs = stand_ins(load_kernel_model(), hw, settings.options(options.precision)) \
            if predicted_by == "kernel model" else ()
        device_rows.append(DeviceEstimate(hw.name, hw.label, b, p, predicted_by or "", here, price, fits_with, subs))
    fitted = None
    if devices_hw:
        fitted = fit(weights.weight_bytes, est.activation_peak_bytes, devices_hw[0].memory_bytes, devices_hw[0].label)
    return replace(est, fit=fitted, devices=tuple(device_rows))


def plan_residency(est: Estimate, options: Options, offload_seq: Sequence[str], policies: Sequence[str],
                   hardware: Hardware | None, i2v: bool) -> tuple[Residency, tuple[Residency, ...]]:
    """The ``--offload`` policy on the pipeline's stages, and every policy the pipeline has."""
    loads = []
    for s in est.pipeline:
        meta = s.cost.trace
        w = s.weights.weight_bytes if s.weights is not None else s.cost.weights.weight_bytes
        loads.append(StageLoad(
            s.name, s.plan.component, s.runs, w, s.activation_bytes(),
            int(meta.get("weight_read_bytes") or w), int(meta.get("largest_module_bytes") or w),
            text_encoder=s.name.startswith("text_encoder"), denoiser=s.denoiser))
    copy = transfer_timer(hardware)
    every = []
    for name in policies:
        every.append(plan(name, loads, offload_seq, i2v=i2v, copy_seconds=copy))
        # Wan's --t5_cpu: listed beside Wan's own policy; under another policy when asked for it
        if name == "wan" or (options.t5_cpu and name == options.offload):
            every.append(plan(name, loads, offload_seq, t5_cpu=True, i2v=i2v, copy_seconds=copy))
    if options.quantize_on_device:  # the unquantized checkpoint on the device first: a stage of its own; an
        # offload policy is another setup (quantize_ before the pipe is on the GPU), not a cheaper fit of this one
        load = StageResidency("load (before quantize_)", loaded_before_quantize(est), 0)
        every = [replace(r, stages=(load, *r.stages)) for r in every if r.policy == "none"]
    chosen = next(r for r in every if r.policy == options.offload and r.t5_cpu == options.t5_cpu)
    return chosen, tuple(every)
