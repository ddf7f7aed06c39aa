"""Roofline time of one stage on a device: per node, per module, per forward.

Per node: ``time = max(tc_flops / (tc_peak * e_tc), cuda_flops / (cuda_peak * e_cuda),
bytes / (bandwidth * e_bw))`` and the term that wins names the ``limiter`` (``tensor_core``,
``cuda_core`` or ``memory``).  With every efficiency at 1 this is the *bound*: no real
kernel is faster.  A module's time is the sum of its nodes' times (every instance of a
replicated block); its limiter is the resource that accounts for most of that time.
Pure Python over the typed costs: no torch, no sympy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fxmeter.cost import tree
from fxmeter.estimate.evaluate import StageCost
from fxmeter.estimate.hardware import tf32_peak
from fxmeter.estimate.metrics import Metrics

if TYPE_CHECKING:
    from fxmeter.estimate.hardware import Hardware

LIMITERS = ("tensor_core", "cuda_core", "memory", "launch")
#: families whose tensor-core FLOPs run at the ``--precision`` peak (attention: ``--attention-precision``).
PRECISION_FAMILIES = frozenset({"matmul", "conv"})
ONE = {"tc": 1.0, "cuda": 1.0, "bw": 1.0}


@dataclass(frozen=True)
class Device:
    """A device and how a stage runs on it."""

    hw: Hardware
    precision: str = "bf16"
    efficiency: Mapping[str, float] = field(default_factory=lambda: dict(ONE))
    dtype: str = "bfloat16"
    attention_precision: str = "bf16"  # fp8 (FA3/cuDNN fp8) or int8 (SageAttention's INT8 QK)

    @property
    def is_bound(self) -> bool:
        return all(self.efficiency.get(k, 1.0) == 1.0 for k in ONE)

    def peaks(self) -> dict[str, float]:
        if self.dtype == "float32":
            # PyTorch defaults: cuDNN convolutions run TF32 on tensor cores (torch.backends.cudnn.allow_tf32 =
            # True), fp32 matmuls and attention do not (torch.backends.cuda.matmul.allow_tf32 = False): CUDA cores
            return {
                "tensor_core_flops_per_s": self.hw.cuda_core_fp32,
                "tensor_core_flops_per_s_matmul": self.hw.cuda_core_fp32,
                "tensor_core_flops_per_s_conv": tf32_peak(self.hw),
                "cuda_core_flops_per_s": self.hw.cuda_core_fp32,
                "bytes_per_s": self.hw.memory_bandwidth,
            }
        base = "fp16" if self.dtype == "float16" else "bf16"
        tc = self.hw.tc_peak(base)
        if self.attention_precision == "fp8":
            att = self.hw.tc_peak("fp8")
        elif self.attention_precision == "int8":  # INT8 QK^T: the device's fastest tensor-core peak
            att = max(float(v) for v in self.hw.tensor_core.values() if v)
        else:
            att = tc
        return {
            "tensor_core_flops_per_s": tc,
            "tensor_core_flops_per_s_matmul": self.hw.tc_peak(self.precision) if self.precision != "bf16" else tc,
            "tensor_core_flops_per_s_attention": att,
            "cuda_core_flops_per_s": self.hw.cuda_core_fp32,
            "bytes_per_s": self.hw.memory_bandwidth,
        }


def tensor_core_peak(peaks: Mapping[str, float], family: str) -> float:
    """The tensor-core peak a node of ``family`` runs at: matmuls at ``--precision``, convolutions (TF32 in
    fp32), attention at ``--attention-precision``, everything else at the dtype's peak."""
    if family == "conv":
        return peaks.get("tensor_core_flops_per_s_conv", peaks["tensor_core_flops_per_s_matmul"])
    if family in PRECISION_FAMILIES:
        return peaks["tensor_core_flops_per_s_matmul"]
    if family == "attention":
        return peaks.get("tensor_core_flops_per_s_attention", peaks["tensor_core_flops_per_s"])
    return peaks["tensor_core_flops_per_s"]


@dataclass(frozen=True)
class NodeTime:
    seconds: float
    limiter: str


@dataclass(frozen=True)
class ModuleTime:
    seconds: float  # with descendants
    limiter: str | None
    own_seconds: float
    own_limiter: str | None
    arithmetic_intensity: float | None  # FLOPs per byte moved, with descendants


@dataclass(frozen=True)
class StageTime:
    """Seconds of one forward of a stage, node by node (aligned with ``StageCost.nodes``/``modules``)."""

    kind: str  # "bound" (100% of every peak) or "predicted"
    per_run: float
    nodes: tuple[NodeTime, ...]
    modules: tuple[ModuleTime, ...]
    by_limiter: Mapping[str, float]
    model: str


def node_time(cost: Metrics, tc_peak: float, cuda_peak: float, bandwidth: float,
              eff: Mapping[str, float]) -> tuple[float, str]:
    """(seconds, limiter) of one node's costs."""
    terms = (
        (cost.tensor_core_flops / (tc_peak * eff["tc"]), "tensor_core"),
        (cost.cuda_core_flops / (cuda_peak * eff["cuda"]), "cuda_core"),
        (cost.bytes / (bandwidth * eff["bw"]), "memory"),
    )
    t, limiter = max(terms, key=lambda x: x[0])
    return t, limiter


def stage_time(stage: StageCost, device: Device) -> StageTime:
    """The roofline time of ``stage`` on ``device`` (its efficiencies: 1 = the bound)."""
    eff = {**ONE, **device.efficiency}
    p = device.peaks()
    cuda, bw = p["cuda_core_flops_per_s"], p["bytes_per_s"]
    times = [NodeTime(*node_time(n.cost, tensor_core_peak(p, n.family), cuda, bw, eff)) for n in stage.nodes]
    return assemble(stage, times, "bound" if device.is_bound else "predicted",
                    "per node max(tc_flops/(tc_peak*e_tc), cuda_flops/(cuda_peak*e_cuda), bytes/(bandwidth*e_bw)); "
                    "module = sum of its nodes; no overlap between nodes, no launch overhead")


def assemble(stage: StageCost, times: list[NodeTime], kind: str, model: str) -> StageTime:
    """Roll node times (aligned with ``stage.nodes``) up the module tree into a :class:`StageTime`."""
    own: dict[str, dict[str, float]] = {}
    by_limiter = dict.fromkeys(LIMITERS, 0.0)
    for n, t in zip(stage.nodes, times):
        acc = own.setdefault(n.module, dict.fromkeys(LIMITERS, 0.0))
        acc[t.limiter] += t.seconds * n.repeat  # a replicated block's other copies are its own module rows
        by_limiter[t.limiter] += t.seconds * n.replicas
    root = stage.root
    replicas = stage.trace.get("replicas") or {}
    zero = dict.fromkeys(LIMITERS, 0.0)

    def mine(i: int) -> dict[str, float]:
        mid = stage.modules[i].id
        return own.get(mid) or own.get(tree.representative_id(mid, root, replicas)) or zero

    totals = tree.rollup([m.id for m in stage.modules], [m.parent for m in stage.modules], [m.depth for m in stage.modules],
                         mine, lambda a, b: {k: a[k] + b[k] for k in LIMITERS})
    mods = []
    for i, m in enumerate(stage.modules):
        acc, mo = totals[i], mine(i)
        secs, own_secs = sum(acc.values()), sum(mo.values())
        moved = m.total.bytes
        mods.append(ModuleTime(
            seconds=secs, limiter=max(LIMITERS, key=lambda b: acc[b]) if secs > 0 else None,
            own_seconds=own_secs, own_limiter=max(LIMITERS, key=lambda b: mo[b]) if own_secs > 0 else None,
            arithmetic_intensity=m.total.flops / moved if moved else None,
        ))
    per_run = mods[0].seconds if len(mods) > 1 else sum(t.seconds * n.replicas for t, n in zip(times, stage.nodes))
    return StageTime(kind=kind, per_run=per_run, nodes=tuple(times), modules=tuple(mods),
                     by_limiter={k: v for k, v in sorted(by_limiter.items()) if k != "launch" or v}, model=model)
