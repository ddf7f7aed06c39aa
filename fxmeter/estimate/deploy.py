"""A generation on N GPUs: each GPU's work, memory and time, what the GPUs send each other, and the
parallel efficiency against one GPU (``--gpus N --parallel ... [--fsdp]``).

The pieces are pure steps over values the estimate already has:

1. every evaluated graph node of a denoising stage becomes a :class:`~fxmeter.estimate.parallel.NodeView`
   (split with the sequence or not, its TP role) and the repeated blocks FSDP units
   (:mod:`fxmeter.estimate.split`);
2. :func:`~fxmeter.estimate.parallel.per_gpu` gives each node's per-GPU share, the collectives and the
   per-GPU weights; each share is priced by the kernel model at the **per-GPU shape** (H/U heads, the
   GPU's query rows, the ring step's keys, N/T or K/T for TP), so smaller kernels run at their own
   efficiency; the collectives by the latency + bandwidth model of the device's link
   (:func:`~fxmeter.estimate.comm.pick_link` for the group size) under the overlap rules of
   :data:`~fxmeter.estimate.parallel.OVERLAP_RULES`;
3. stages outside the denoising loop (text encoders, VAEs) run on one GPU at their single-GPU time (Wan2.1
   encodes the prompt on every rank, sharded with ``--t5_fsdp`` but computed whole, and decodes on rank 0:
   docs/research/xdit.md).

Time of a denoising stage on one GPU = per-GPU forward x forwards it runs (runs / cfg) + exposed
communication; the generation's time = the sum over stages (every GPU runs the same schedule).
Parallel efficiency = t(1 GPU) / (N x t(N GPUs)), both from the same kernel model.

Pure Python: no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from fxmeter.errors import ParallelError
from fxmeter.estimate.comm import CommModel, LinkSpec, load_comm_model, pick_link
from fxmeter.estimate.headroom import headroom
from fxmeter.estimate.host import host_seconds, timeline
from fxmeter.estimate.kernels import KernelModel, KernelOptions, kernel_time, load_kernel_model
from fxmeter.estimate.memory import GIB, Fit
from fxmeter.estimate.metrics import Metrics
from fxmeter.estimate.parallel import (
    OVERLAP_RULES,
    ParallelPlan,
    PlanResult,
    check_plan,
    collective_times,
    overlap_windows,
    per_gpu,
    plan_passes,
)
from fxmeter.estimate.roofline import ONE, Device, NodeTime, assemble, node_time, tensor_core_peak
from fxmeter.estimate.split import SplitRules, gpu_call, node_views, scaled_units, share_metrics

if TYPE_CHECKING:
    from fxmeter.estimate.generation import Estimate, Stage
    from fxmeter.estimate.hardware import Hardware

NOTES = (
    "all GPUs in one node: every collective runs over the device's NVLink (or PCIe) fabric, never a network",
    "bound_seconds on N GPUs: the roofline of each GPU's share at 100% of every peak, communication not counted "
    "(a lower bound); predicted_seconds: the kernel model at the per-GPU shapes + exposed communication",
    "activations per GPU: the single-GPU peak x the GPU's token share (ceil(S/P)/S); the Ulysses all-to-all "
    "buffers are not counted; NCCL's own buffers, the CUDA context and the allocator's slack are in the process peak "
    "(pipeline.residency.process: peak_allocated_bytes, peak_reserved_bytes, peak_device_bytes)",
)


@dataclass(frozen=True)
class CommRow:
    """One collective of the generation, on each GPU of its group."""

    stage: str
    kind: str
    what: str
    ranks: int
    link: str  # "NVLink4 200 GB/s" (per direction)
    count: int  # calls per generation
    bytes: int  # per call, per rank (nccl-tests' size convention for the kind)
    seconds: float  # one call
    exposed_seconds: float  # every call of the generation: on the critical path
    overlapped_seconds: float  # every call of the generation: hidden behind compute
    overlappable: bool


@dataclass(frozen=True)
class StageDeployment:
    """One stage of the generation on the plan's GPUs (per GPU)."""

    name: str
    split: bool  # False: runs on one GPU (outside the denoising loop)
    forwards_per_gpu: int  # per generation
    per_forward: Metrics  # one forward on one GPU (the whole forward when not split)
    single_gpu_per_forward: Metrics
    predicted_seconds_per_forward: float  # one GPU's compute of one forward
    bound_seconds_per_forward: float
    single_gpu_predicted_seconds_per_forward: float
    exposed_comm_seconds: float  # per generation
    overlapped_comm_seconds: float
    seconds: float  # the stage's share of the generation on N GPUs
    single_gpu_seconds: float
    tokens_per_gpu: int | None = None
    weight_bytes_per_gpu: int = 0
    activation_bytes_per_gpu: int = 0


@dataclass(frozen=True)
class Deployment:
    """A whole generation on ``plan.gpus`` GPUs of one device."""

    plan: ParallelPlan
    device: str  # label of the device
    device_name: str
    interconnect: LinkSpec  # the link the whole group of N GPUs uses
    stages: tuple[StageDeployment, ...]
    communication: tuple[CommRow, ...]
    predicted_seconds: float  # one generation on N GPUs
    bound_seconds: float
    single_gpu_seconds: float  # the same generation on one GPU (same model)
    compute_seconds: float  # per GPU, every stage
    exposed_comm_seconds: float
    overlapped_comm_seconds: float
    weight_bytes_per_gpu: int
    activation_bytes_per_gpu: int
    fit: Fit
    predicted_by: str
    notes: tuple[str, ...] = field(default_factory=tuple)
    overlap_rules: tuple[str, ...] = OVERLAP_RULES

    @property
    def gpus(self) -> int:
        return self.plan.gpus

    @property
    def speedup(self) -> float:
        return self.single_gpu_seconds / self.predicted_seconds if self.predicted_seconds else 0.0

    @property
    def efficiency(self) -> float:
        """t(1 GPU) / (N x t(N GPUs))."""
        return self.speedup / self.plan.gpus

    @property
    def comm_share(self) -> float:
        """Exposed communication over the generation's time on N GPUs."""
        return self.exposed_comm_seconds / self.predicted_seconds if self.predicted_seconds else 0.0

    @property
    def gpu_seconds(self) -> float:
        return self.predicted_seconds * self.plan.gpus

    def by_kind(self) -> dict[str, dict[str, float | int]]:
        """Per collective kind: calls, bytes per rank (summed over calls), exposed and overlapped seconds."""
        out: dict[str, dict[str, float | int]] = {}
        for c in self.communication:
            k = out.setdefault(c.kind, {"count": 0, "bytes": 0, "exposed_seconds": 0.0, "overlapped_seconds": 0.0})
            k["count"] += c.count
            k["bytes"] += c.bytes * c.count
            k["exposed_seconds"] += c.exposed_seconds
            k["overlapped_seconds"] += c.overlapped_seconds
        return dict(sorted(out.items()))


# -- per-GPU time ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Pricing:
    hw: Hardware
    device: Device
    kernels: KernelOptions | None  # None: the roofline at ``device.efficiency`` predicts
    model: KernelModel | None
    compiled: bool


def _times(stage: Stage, result: PlanResult, pricing: _Pricing) -> tuple[list[NodeTime], list[NodeTime]]:
    """(predicted, bound) seconds of each node's per-GPU share, one instance each."""
    p = pricing.device.peaks()
    cuda, bw = p["cuda_core_flops_per_s"], p["bytes_per_s"]
    eff = {**ONE, **pricing.device.efficiency}
    seq_fraction = result.activation_scale
    pred, bound, hosts = [], [], []
    km = pricing.model
    for n, share in zip(stage.cost.nodes, result.nodes):
        m = share_metrics(share)
        tc = tensor_core_peak(p, n.family)
        bound.append(NodeTime(*node_time(m, tc, cuda, bw, ONE)))
        if pricing.kernels is None or km is None:
            pred.append(NodeTime(*node_time(m, tc, cuda, bw, eff)))
            continue
        call, repeats = gpu_call(n, share, result.plan, seq_fraction, compiled=pricing.compiled)
        kt = kernel_time(call, pricing.hw, pricing.kernels, km)
        pred.append(NodeTime(kt.seconds * repeats, kt.limiter))
        if km.host is not None:
            hosts.append(host_seconds(n, km.host, compiled=pricing.compiled, repeats=repeats))
    if hosts:  # each GPU's host issues its own share of the graph (one process per GPU)
        pred = timeline(stage.cost.nodes, pred, hosts)
    return pred, bound


# -- the deployment ---------------------------------------------------------------------------------
def link_text(link: LinkSpec) -> str:
    """``NVLink4 200 GB/s`` (per direction)."""
    name = {"nvlink": "NVLink", "xgmi": "xGMI", "pcie": "PCIe"}.get(link.kind, link.kind)
    gen = "" if link.generation is None else str(link.generation)
    host = " (staged through host memory: no GPU P2P)" if link.via_host else ""
    return f"{name}{gen} {link.bandwidth / 1e9:g} GB/s{host}"


def deploy(est: Estimate, plan: ParallelPlan, rules: Mapping[str, SplitRules], hw: Hardware, *,
           efficiency: Mapping[str, float] | None = None, comm: CommModel | None = None,
           kernel_model: KernelModel | None = None) -> Deployment:
    """``est`` (one generation, timed on ``hw``) run on ``plan.gpus`` GPUs of ``hw``.

    ``rules``: the split rules of every component a denoising stage runs; ``efficiency``: the user's
    fractions of the peaks (the per-GPU nodes are then priced by the roofline at them, as the
    single-GPU estimate was).  One :class:`ParallelError` when the plan does not fit the model.
    """
    from fxmeter.estimate.predict import KernelSettings

    opts = est.options
    cm = comm or load_comm_model()
    pricing = _Pricing(
        hw=hw, device=Device(hw, opts.precision, {**ONE, **(efficiency or {})}, opts.dtype, opts.attention_peak),
        kernels=None if efficiency is not None else KernelSettings(
            opts.attention, opts.attention_precision, opts.compile).options(opts.precision),
        model=None if efficiency is not None else (kernel_model or load_kernel_model()), compiled=opts.compile)
    links: dict[int, LinkSpec] = {}

    def link(ranks: int) -> LinkSpec:
        if ranks not in links:
            links[ranks] = pick_link(hw, ranks, cm)
        return links[ranks]

    rows: list[CommRow] = []
    stages: list[StageDeployment] = []
    notes: list[str] = []
    weights: dict[str, int] = {}
    activations = 0
    for s in est.stages:
        if s.predicted is None or s.bound is None:
            raise ParallelError(f"stage {s.name} has no time on {hw.name}: a deployment needs the device's times")
        if est.residency is not None and est.residency.on_host(s.name):
            notes.append(f"{s.name} runs on the host (--t5-cpu): no device seconds")
            continue
        single = s.predicted.per_run * s.runs
        if not s.plan.steps:  # outside the denoising loop: one GPU
            stages.append(StageDeployment(
                s.name, False, s.runs, s.cost.total, s.cost.total, s.predicted.per_run, s.bound.per_run,
                s.predicted.per_run, 0.0, 0.0, single, single, None, 0, s.cost.activations.peak_bytes))
            whole = est.component_weights[s.plan.component].weight_bytes
            if plan.fsdp and opts.runtime != "diffusers" and s.name.startswith("text_encoder"):
                # Wan's multi-GPU command pairs --dit_fsdp with --t5_fsdp (Wan-Video/Wan2.1 README, "Multi-GPU
                # inference using FSDP + xDiT USP"): T5's weights are sharded over the GPUs too
                weights.setdefault(s.plan.component, -(-whole // plan.gpus))
                notes.append(f"--runtime {opts.runtime} with --fsdp: {s.name}'s weights sharded over {plan.gpus} GPUs "
                             "(Wan's --t5_fsdp)")
            else:
                weights.setdefault(s.plan.component, whole)
            activations = max(activations, s.cost.activations.peak_bytes)
            notes.append(f"{s.name} runs outside the denoising loop on one GPU at its single-GPU time (Wan2.1 "
                         "encodes the prompt on every rank, sharded with --t5_fsdp but computed whole, and decodes "
                         "on rank 0: docs/research/xdit.md)")
            continue
        st, st_rows, st_notes, w_gpu = _denoiser(s, est, plan, rules, pricing, link, cm)
        stages.append(st)
        rows += st_rows
        notes += st_notes
        weights.setdefault(s.plan.component, w_gpu)
        activations = max(activations, st.activation_bytes_per_gpu)
    compute = sum(st.predicted_seconds_per_forward * st.forwards_per_gpu for st in stages)
    exposed = sum(r.exposed_seconds for r in rows)
    overlapped = sum(r.overlapped_seconds for r in rows)
    total = sum(st.seconds for st in stages)
    bound = sum(st.bound_seconds_per_forward * st.forwards_per_gpu for st in stages)
    one_gpu = est.seconds("predicted", est.stages)  # the same stages on one GPU (every stage deployed above)
    assert one_gpu is not None
    w = sum(weights.values())
    res = est.residency
    full = sum(est.component_weights[c].weight_bytes for c in weights)
    share = min(1.0, w / full) if full else 1.0  # this GPU's part of the weights it would hold with no offload
    if res is not None and res.policy != "none":
        # stage by stage, the policy's resident weights (each GPU its share) + that stage's activations on one GPU
        act = {st.name: st.activation_bytes_per_gpu for st in stages}
        at_stage = [(int(r.resident_bytes * share), act.get(r.stage, r.activation_bytes), r.stage)
                    for r in res.stages if not r.on_host]
        if at_stage:
            rw, ra, where = max(at_stage, key=lambda x: x[0] + x[1])
            w, activations = min(w, rw), ra
            notes.append(f"--offload {res.name}: memory per GPU at the policy's peak stage ({where}): the weights "
                         "resident then, each GPU holding its share, plus that stage's activations on one GPU")
    moves = res.transfer_seconds if res is not None else None
    if res is not None and moves:  # --offload on every rank: each GPU copies its own weights over its own host link, concurrently
        moved = moves * share
        total += moved
        bound += moved
        one_gpu += moves
        notes.append(f"--offload {res.name}: each GPU moves its own weights between host and device over its "
                     f"own link, all at once ({moved:,.2f} s per GPU, {moves:,.2f} s on one GPU), added to the seconds")
    if len(weights) > 1:
        notes.append(f"weights per GPU add every component's share ({', '.join(weights)}), each at its own peak")
    warn = multi_node_warning(plan.gpus)
    if warn:
        notes.append(warn)
    if opts.precision != "bf16":
        p = opts.precision
        notes.append(f"--precision {p}: the FSDP units hold the component's {p} weight bytes (each block scaled by the "
                     f"{p}/traced ratio, the root unit the rest)")
    return Deployment(
        plan=plan, device=hw.label, device_name=hw.name, interconnect=link(plan.gpus), stages=tuple(stages),
        communication=tuple(rows), predicted_seconds=total, bound_seconds=bound, single_gpu_seconds=one_gpu,
        compute_seconds=compute, exposed_comm_seconds=exposed, overlapped_comm_seconds=overlapped,
        weight_bytes_per_gpu=w, activation_bytes_per_gpu=activations, fit=_fit(w, activations, hw),
        predicted_by=est.predicted_by or "kernel model", notes=tuple(dict.fromkeys([*notes, *NOTES])),
    )


def _denoiser(s: Stage, est: Estimate, plan: ParallelPlan, rules: Mapping[str, SplitRules], pricing: _Pricing,
              link: Callable[[int], LinkSpec], cm: CommModel) -> tuple[StageDeployment, list[CommRow], list[str], int]:
    try:
        r = rules[s.plan.component]
    except KeyError:
        raise ParallelError(f"no split rules for component {s.plan.component}: cannot run it on several GPUs") from None
    check_plan(plan, r.dims)
    views, units, dims = node_views(s.cost, r, plan)
    notes = []
    if r.joint_text_symbols and plan.sp > 1:
        t = r.dims.text_len
        notes.append(f"joint text: {t} text tokens split with the sequence ({t} % {plan.sp} == 0, xDiT split_text_embed_in_sp)"
                     if t % plan.sp == 0 else
                     f"joint text: {t} text tokens do not divide by {plan.sp}, so the text stream runs whole on every GPU "
                     "(xDiT keeps them as joint tensors); the joint attention still counts them in its query split")
    units = scaled_units(units, est.component_weights[s.plan.component].weight_bytes)
    result = per_gpu(views, units, plan, plan_passes(est.passes_per_step), dims=dims)
    pred, bound = _times(s, result, pricing)
    t_pred = assemble(s.cost, pred, "predicted", "per-GPU shares").per_run
    t_bound = assemble(s.cost, bound, "bound", "per-GPU shares").per_run
    forwards = -(-s.runs // plan.cfg)
    collectives = [*(replace(c, count=c.count * forwards) for c in result.per_forward),
                   *(replace(c, count=c.count * s.plan.steps) for c in result.per_step), *result.per_generation]
    seconds_by_node = {n.name: t.seconds for n, t in zip(s.cost.nodes, pred)}
    windows = overlap_windows(result, seconds_by_node, units)
    timed = collective_times(collectives, lambda c: link(c.ranks), cm, windows)
    rows = [CommRow(s.name, t.collective.kind, t.collective.what, t.collective.ranks, link_text(link(t.collective.ranks)),
                    t.collective.count, t.collective.bytes, t.seconds, t.exposed, t.overlapped, t.collective.overlappable)
            for t in timed if t.collective.count and t.collective.ranks > 1]
    exposed = sum(x.exposed_seconds for x in rows)
    overlapped = sum(x.overlapped_seconds for x in rows)
    pf = Metrics(**result.compute_totals())
    act = s.activation_bytes(result.activation_scale, plan.sp)
    single = s.predicted.per_run if s.predicted else 0.0
    st = StageDeployment(
        s.name, True, forwards, pf, s.cost.total, t_pred, t_bound, single, exposed, overlapped,
        t_pred * forwards + exposed, single * s.runs, result.tokens_per_gpu, result.weight_bytes_per_gpu, act)
    return st, rows, [*result.notes, *notes], result.weight_bytes_per_gpu


#: GPUs one NVLink domain holds on the boards fxmeter's devices ship on: NVIDIA HGX A100/H100/H200/B200
#: baseboards join 8 GPUs by NVLink through NVSwitch; more GPUs span several servers linked by the network.
NVLINK_NODE_GPUS = 8
NVLINK_NODE_SOURCE = ("NVIDIA HGX platform, https://www.nvidia.com/en-us/data-center/hgx/ : HGX H100/H200/B200 "
                      "'8-GPU' configurations, the GPUs joined by NVLink and NVSwitch (HGX A100 4- and 8-GPU); "
                      "PCIe cards (L40S, L4, GeForce) have no NVLink domain at all")


def multi_node_warning(gpus: int) -> str | None:
    """A warning when ``gpus`` exceed one NVLink node: the collectives are still priced on the GPU link."""
    if gpus <= NVLINK_NODE_GPUS:
        return None
    nodes = -(-gpus // NVLINK_NODE_GPUS)
    return (f"{gpus} GPUs are more than one {NVLINK_NODE_GPUS}-GPU NVLink node (at least {nodes} servers; NVIDIA HGX "
            f"boards join {NVLINK_NODE_GPUS} GPUs by NVLink): fxmeter still prices every collective on the device's own "
            "GPU link as if all shared one node; no inter-node network is modelled, so the communication seconds are "
            "optimistic")


def _fit(weights: int, activations: int, hw: Hardware) -> Fit:
    need, have = weights + activations, hw.memory_bytes
    ok = need <= have
    text = (f"{'fits' if ok else 'does NOT fit'} on each {hw.label}: weights {weights / GIB:.1f} GiB + activations "
            f"{activations / GIB:.1f} GiB = {need / GIB:.1f} GiB per GPU {'of' if ok else '>'} {have / GIB:.0f} GiB"
            + (f", {headroom(need, have).text()}" if ok else "")
            + ("" if ok else f" (short by {(need - have) / GIB:.1f} GiB: more GPUs, --fsdp, --offload or fp8 weights)"))
    return Fit(ok, need, have, text)




__all__ = ["NVLINK_NODE_GPUS", "CommRow", "Deployment", "StageDeployment", "deploy", "link_text", "multi_node_warning"]
