"""A generation: the stages of one pipeline run, each costed, timed and weighed on a device.

Pure steps over typed values, declared once and shared by ``trace``, ``sweep`` and
``verify``: each stage's symbolic model is evaluated at the stage's symbol values
(:func:`~fxmeter.estimate.evaluate.evaluate`), scaled by its runs per generation; weights
are taken at the deployment precision once per component; with a device, each stage gets
its roofline *bound* (100% of every peak) and, with ``--efficiency``, a *predicted* time,
and the generation a fit check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fxmeter.estimate.evaluate import StageCost, evaluate
from fxmeter.estimate.memory import Fit, WeightMemory, at_precision, fit
from fxmeter.estimate.metrics import ZERO, Metrics
from fxmeter.estimate.options import Options
from fxmeter.estimate.roofline import ONE, Device, StageTime, stage_time

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


@dataclass(frozen=True)
class Stage:
    """One stage of a generation: one forward's cost, and how many forwards run."""

    plan: StagePlan
    cost: StageCost
    bound: StageTime | None = None
    predicted: StageTime | None = None
    source: str = ""
    trace_seconds: float = 0.0

    @property
    def name(self) -> str:
        return self.plan.name

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

    @property
    def generations_per_hour(self) -> float:
        return 3600.0 / self.predicted_seconds if self.predicted_seconds else float("inf")

    @property
    def gpu_hours(self) -> float:
        return self.predicted_seconds / 3600.0

    @property
    def dollars(self) -> float | None:
        return None if self.price_per_hour is None else self.gpu_hours * self.price_per_hour


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

    @property
    def main(self) -> Stage:
        """The stage the report's modules describe (the first denoiser)."""
        return self.stages[0]

    @property
    def end_to_end(self) -> Metrics:
        acc = ZERO
        for s in self.stages:
            acc = acc + s.end_to_end
        return acc

    @property
    def activation_peak_bytes(self) -> int:
        return max(s.cost.activations.peak_bytes for s in self.stages)

    def seconds(self, kind: str = "bound") -> float | None:
        """Seconds end to end (``bound`` or ``predicted``), None without a device / prediction."""
        total = 0.0
        for s in self.stages:
            t = s.bound if kind == "bound" else s.predicted
            if t is None:
                return None
            total += t.per_run * s.runs
        return total


def estimate(inputs: Sequence[StageInput], options: Options, *, steps: int, passes_per_step: int,
             hardware: Hardware | Sequence[Hardware] | None = None, efficiency: Mapping[str, float] | None = None,
             nodes: bool = True, modules: bool = True, prices: Mapping[str, float] | None = None) -> Estimate:
    """Evaluate every stage, take weights at the precision, time and fit on the device(s).

    Args:
        inputs: the stages, each with its symbolic model and symbol values.
        options: the number-changing options (precision, traffic, kernels, batched CFG...).
        steps: denoising steps of the workload.
        passes_per_step: transformer forwards per step as the pipeline runs them (2 with CFG).
        hardware: the device, or several (the first is the report's main device); None: no time, no fit.
        efficiency: user fractions of the peaks: the predicted seconds are the roofline at them
            (instead of the kernel model's).
        nodes, modules: keep node / module rows (sweeps need neither).
        prices: $ per GPU-hour by device name (the side-by-side table's cost column).
    """
    from fxmeter.estimate.predict import KernelSettings, predict_stage

    devices_hw: list[Hardware] = [] if hardware is None else (
        [hardware] if not isinstance(hardware, Sequence) else list(hardware))
    settings = KernelSettings(options.attention, options.attention_precision, options.compile)
    predicted_by = None if not devices_hw else ("efficiency" if efficiency is not None else "kernel model")

    def times(cost: StageCost, hw: Hardware) -> tuple[StageTime, StageTime]:
        bound = stage_time(cost, Device(hw, options.precision, dict(ONE), options.dtype))
        if efficiency is not None:
            pred = stage_time(cost, Device(hw, options.precision, {**ONE, **efficiency}, options.dtype))
        else:
            pred = predict_stage(cost, Device(hw, options.precision, dict(ONE), options.dtype), settings)
        return bound, pred

    stages = []
    weights_by_component: dict[str, WeightMemory] = {}
    need_nodes = nodes or bool(devices_hw)
    others: list[list[tuple[StageTime, StageTime]]] = [[] for _ in devices_hw[1:]]
    for inp in inputs:
        cost = evaluate(inp.model, inp.dims, traffic=options.traffic, modules=modules or bool(devices_hw),
                        nodes=need_nodes)
        bound = predicted = None
        if devices_hw:
            bound, predicted = times(cost, devices_hw[0])
            for i, hw in enumerate(devices_hw[1:]):
                others[i].append(times(cost, hw))
        if not nodes:
            cost = StageCost(cost.root, cost.diffusers_class, cost.adapter, cost.dims, cost.traffic,
                             cost.modules if modules else cost.modules[:1], (), cost.categories, cost.unmodeled,
                             cost.activations, cost.weights, cost.trace)
        stages.append(Stage(inp.plan, cost, bound, predicted, inp.source, inp.seconds))
        weights_by_component.setdefault(inp.plan.component, at_precision(cost.weights, options.precision))
    weights = None
    for w in weights_by_component.values():
        weights = w if weights is None else weights + w
    assert weights is not None, "a generation has at least one stage"
    batched = any(s.plan.batch_factor == 2 for s in stages)
    peak = max(s.cost.activations.peak_bytes for s in stages)
    device_rows = []
    for i, hw in enumerate(devices_hw):
        pairs = [(s.bound, s.predicted) for s in stages] if i == 0 else others[i - 1]
        b = sum(t[0].per_run * s.runs for t, s in zip(pairs, stages) if t[0] is not None)
        p = sum(t[1].per_run * s.runs for t, s in zip(pairs, stages) if t[1] is not None)
        price = (prices or {}).get(hw.name, hw.price_per_hour)
        device_rows.append(DeviceEstimate(hw.name, hw.label, b, p, predicted_by or "", fit(weights.weight_bytes, peak,
                                          hw.memory_bytes, hw.label), price))
    main_device = Device(devices_hw[0], options.precision, dict(ONE), options.dtype) if devices_hw else None
    return Estimate(
        stages=tuple(stages), options=options, steps=steps,
        passes_per_step=1 if batched else passes_per_step,
        cfg="batched" if batched else ("separate passes" if passes_per_step == 2 else "none"),
        weights=weights, component_weights=weights_by_component, device=main_device,
        fit=device_rows[0].fit if device_rows else None, devices=tuple(device_rows), predicted_by=predicted_by,
    )
