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
             hardware: Hardware | None = None, efficiency: Mapping[str, float] | None = None,
             nodes: bool = True, modules: bool = True) -> Estimate:
    """Evaluate every stage, take weights at the precision, time and fit on ``hardware``.

    Args:
        inputs: the stages, each with its symbolic model and symbol values.
        options: the number-changing options (precision, traffic, batched CFG...).
        steps: denoising steps of the workload.
        passes_per_step: transformer forwards per step as the pipeline runs them (2 with CFG).
        hardware: the device (None: no time, no fit).
        efficiency: user fractions of the peaks: the predicted seconds are the roofline at them.
        nodes, modules: keep node / module rows (sweeps need neither).
    """
    device = None
    predicted_device = None
    if hardware is not None:
        device = Device(hardware, options.precision, dict(ONE), options.dtype)
        if efficiency is not None:
            predicted_device = Device(hardware, options.precision, {**ONE, **efficiency}, options.dtype)
    stages = []
    weights_by_component: dict[str, WeightMemory] = {}
    need_nodes = nodes or device is not None
    for inp in inputs:
        cost = evaluate(inp.model, inp.dims, traffic=options.traffic, modules=modules or device is not None,
                        nodes=need_nodes)
        bound = stage_time(cost, device) if device is not None else None
        predicted = stage_time(cost, predicted_device) if predicted_device is not None else None
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
    est = Estimate(
        stages=tuple(stages), options=options, steps=steps,
        passes_per_step=1 if batched else passes_per_step,
        cfg="batched" if batched else ("separate passes" if passes_per_step == 2 else "none"),
        weights=weights, component_weights=weights_by_component, device=device,
    )
    if hardware is not None:
        est = Estimate(est.stages, est.options, est.steps, est.passes_per_step, est.cfg, est.weights,
                       est.component_weights, device,
                       fit(weights.weight_bytes, est.activation_peak_bytes, hardware.memory_bytes, hardware.label))
    return est
