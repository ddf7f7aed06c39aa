"""Predicted time of one stage: every node through the kernel-efficiency model.

Where the roofline (:mod:`fxmeter.estimate.roofline`) runs each node at 100% of every peak
(the *bound*), this asks :func:`fxmeter.estimate.kernels.kernel_time` what a real kernel
reaches for the node's shape on the device: GEMM efficiency with tile and wave
quantization, attention throughput of the chosen kernel from published tables, memory-bound
ops at a measured fraction of the bandwidth, and a launch cost per kernel.  Under
``--compile`` the stage's bytes are the fused traffic model's and a fusion group launches
one kernel (the node that leads it).  Nodes sum within modules as for the bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fxmeter.estimate.evaluate import NodeCost, StageCost
from fxmeter.estimate.host import host_seconds, timeline
from fxmeter.estimate.kernels import (
    KernelCall,
    KernelModel,
    KernelOptions,
    broadcast_op,
    kernel_time,
    load_kernel_model,
    stand_ins,
)
from fxmeter.estimate.roofline import Device, NodeTime, StageTime, assemble

#: What --attention names (and what each is in the published tables).
ATTENTION = {"sdpa": "torch SDPA (its flash backend: FlashAttention-2)", "fa2": "FlashAttention-2",
             "fa3": "FlashAttention-3 (Hopper)", "cudnn": "cuDNN attention", "sage": "SageAttention (INT8 QK)"}


@dataclass(frozen=True)
class KernelSettings:
    """Which kernels a deployment runs (``--attention``, ``--attention-precision``, ``--compile``)."""

    attention: str = "sdpa"
    attention_precision: str = "bf16"
    compile: bool = False

    def options(self, precision: str) -> KernelOptions:
        return KernelOptions(attention=self.attention, precision=precision,
                             attention_precision=self.attention_precision, compile=self.compile)

    def record(self) -> dict[str, object]:
        return {"attention": self.attention, "attention_precision": self.attention_precision, "compile": self.compile}


def broadcasts(n: NodeCost) -> bool:
    """An eager binary op with a broadcast operand (:func:`~fxmeter.estimate.kernels.broadcast_op`)."""
    return broadcast_op(n.family, n.target, n.cost.bytes_read, n.cost.bytes_written)


def call_of(n: NodeCost, *, compiled: bool, scale: Mapping[str, float] | None = None) -> KernelCall:
    """The kernel model's view of one node (``scale``: per-GPU share of FLOPs and bytes, default 1)."""
    k = scale or {}
    launches = 0 if n.family == "free" else (1 if not compiled or n.kernel in (-1, n.index) else 0)
    return KernelCall(
        family=n.family,
        tensor_core_flops=int(n.cost.tensor_core_flops * k.get("flops", 1.0)),
        cuda_core_flops=int(n.cost.cuda_core_flops * k.get("flops", 1.0)),
        bytes=int(n.cost.bytes * k.get("bytes", 1.0)),
        shape=dict(n.shape),
        dtype=n.dtype or "bfloat16",
        launches=launches,
        broadcast=not compiled and broadcasts(n),
    )


def predict_stage(stage: StageCost, device: Device, settings: KernelSettings,
                  model: KernelModel | None = None) -> StageTime:
    """The kernel model's seconds of one forward of ``stage`` on ``device``."""
    km = model or load_kernel_model()
    opts = settings.options(device.precision)
    times = []
    fallbacks = bcast = 0
    seen: dict[tuple[object, ...], tuple[NodeTime, bool]] = {}  # one kernel_time per distinct call (a pure function)
    for n in stage.nodes:
        call = call_of(n, compiled=settings.compile)
        bcast += call.broadcast and call.launches > 0
        key = (call.family, call.tensor_core_flops, call.cuda_core_flops, call.bytes, tuple(sorted(call.shape.items())),
               call.dtype, call.launches, call.broadcast)
        got = seen.get(key)
        if got is None:
            t = kernel_time(call, device.hw, opts, km)
            got = seen[key] = (NodeTime(t.seconds, t.limiter), bool(t.fallback))
        times.append(got[0])
        fallbacks += got[1]
    host = ""
    if km.host is not None:
        times = timeline(stage.nodes, times, [host_seconds(n, km.host, compiled=settings.compile) for n in stage.nodes])
        host = ("; the GPU waits for the host's dispatch where Python issues nodes more slowly than they run "
                + ("(Inductor launcher + CUDA launch per fused kernel)" if settings.compile else
                   "(eager: an ATen dispatch per node + a CUDA launch per kernel)"))
    text = (f"kernel model (fxmeter/data/kernels.json): GEMMs at the measured efficiency x tile/wave quantization, "
            f"attention from published {ATTENTION.get(settings.attention, settings.attention)} tables, memory-bound ops at "
            f"a measured bandwidth fraction, a launch cost per kernel{' (fused under --compile)' if settings.compile else ''}"
            f"{host}"
            + ("" if not bcast or km.broadcast is None else
               f"; {bcast} eager broadcast op(s) at {km.broadcast.value:.2f} of that bandwidth (PyTorch's non-vectorized "
               f"loop, {km.broadcast.key}: measured on {', '.join(km.broadcast.devices)})")
            + f"; {fallbacks} node(s) priced from a stand-in device's measurement"
            + ("" if not fallbacks else "".join(f"; {si.text()}" for si in stand_ins(km, device.hw, opts))))
    return assemble(stage, times, "predicted", text)
