"""A generation on N GPUs: each GPU's work, memory and time, what the GPUs send each other, and the
parallel efficiency against one GPU (``--gpus N --parallel ... [--fsdp]``).

The pieces are pure steps over values the estimate already has:

1. every evaluated graph node of a denoising stage becomes a :class:`~fxmeter.estimate.parallel.NodeView`:
   it is split with the token sequence when its cost depends on one of the adapter's sequence symbols
   (``Adapter.sequence_symbols``; read off the node's own formulas) and it comes after the sequence is
   split, right before the first repeated block (Wan2.1 ``usp_dit_forward`` chunks the sequence after the
   patch, time and text embeddings; xDiT's Wan wrapper after the patch embedding and condition embedder,
   ``_chunk_and_pad_sequence``); its TP role comes from the adapter's table (``Adapter.tp_roles``);
2. the repeated blocks (children of the top-level ``ModuleList``) are the FSDP units, the rest the root
   unit (Wan2.1 ``wan/distributed/fsdp.py``: one unit per block);
3. :func:`~fxmeter.estimate.parallel.per_gpu` gives each node's per-GPU share, the collectives and the
   per-GPU weights; each share is priced by the kernel model at the **per-GPU shape** (H/U heads, the
   GPU's query rows, the ring step's keys, N/T or K/T for TP), so smaller kernels run at their own
   efficiency; the collectives by the latency + bandwidth model of the device's link
   (:func:`~fxmeter.estimate.comm.pick_link` for the group size) under the overlap rules of
   :data:`~fxmeter.estimate.parallel.OVERLAP_RULES`;
4. stages outside the denoising loop (text encoders, VAEs) run on one GPU at their single-GPU time (Wan2.1
   encodes the prompt on every rank, sharded with ``--t5_fsdp`` but computed whole, and decodes on rank 0:
   research/xdit.md).

Time of a denoising stage on one GPU = per-GPU forward x forwards it runs (runs / cfg) + exposed
communication; the generation's time = the sum over stages (every GPU runs the same schedule).
Parallel efficiency = t(1 GPU) / (N x t(N GPUs)), both from the same kernel model.

Pure Python: no torch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from fxmeter.errors import ParallelError
from fxmeter.estimate.comm import CommModel, LinkSpec, load_comm_model, pick_link
from fxmeter.estimate.evaluate import NodeCost, StageCost
from fxmeter.estimate.kernels import KernelCall, KernelModel, KernelOptions, kernel_time, load_kernel_model
from fxmeter.estimate.memory import GIB, Fit
from fxmeter.estimate.metrics import Metrics
from fxmeter.estimate.parallel import (
    OVERLAP_RULES,
    BlockView,
    ModelDims,
    NodeShare,
    NodeView,
    ParallelPlan,
    PlanResult,
    check_plan,
    collective_times,
    overlap_windows,
    parse_plan,
    per_gpu,
)
from fxmeter.estimate.predict import call_of
from fxmeter.estimate.roofline import ONE, PRECISION_FAMILIES, Device, NodeTime, assemble, node_time

if TYPE_CHECKING:
    from fxmeter.estimate.generation import Estimate, Stage
    from fxmeter.estimate.hardware import Hardware
    from fxmeter.model.adapters import Geometry
    from fxmeter.model.registry import ResolvedModel
    from fxmeter.model.workload import Workload

#: bytes per element of the dtypes a graph node carries
ITEMSIZE = {"bfloat16": 2, "float16": 2, "float32": 4, "float64": 8, "float8_e4m3fn": 1, "float8_e5m2": 1,
            "int8": 1, "uint8": 1, "int32": 4, "int64": 8, "bool": 1}

NOTES = (
    "all GPUs in one node: every collective runs over the device's NVLink (or PCIe) fabric, never a network",
    "bound_seconds on N GPUs: the roofline of each GPU's share at 100% of every peak, communication not counted "
    "(a lower bound); predicted_seconds: the kernel model at the per-GPU shapes + exposed communication",
    "activations per GPU: the single-GPU peak x the GPU's token share (ceil(S/P)/S); the Ulysses all-to-all "
    "buffers and NCCL workspaces are not counted",
)


@dataclass(frozen=True)
class SplitRules:
    """How one component's graph splits over GPUs (from its adapter).

    ``dims``: the sizes a plan must fit (heads, hidden, FFN, tokens...); ``sequence_symbols``: the
    workload symbols of the split sequence; ``joint_text_symbols``: joint-attention text tokens, split
    with the sequence only when their count divides the SP degree (xDiT ``split_text_embed_in_sp``);
    ``tp_roles``: (module regex under the root, role).
    """

    dims: ModelDims
    sequence_symbols: frozenset[str]
    joint_text_symbols: frozenset[str] = frozenset()
    tp_roles: tuple[tuple[str, str], ...] = ()


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


# -- the graph, as the plan model sees it ---------------------------------------------------------
def block_ids(cost: StageCost) -> list[str]:
    """The repeated blocks: children of the model's top-level ``ModuleList``s (the FSDP units)."""
    lists = {m.id for m in cost.modules if m.parent == cost.root and m.cls == "ModuleList"}
    return [m.id for m in cost.modules if m.parent in lists]


def _inside(module: str, prefixes: Sequence[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _role(module: str, root: str, roles: Sequence[tuple[re.Pattern[str], str]]) -> str | None:
    rel = module[len(root) + 1:] if module.startswith(root + ".") else ""
    for pattern, role in roles:
        if pattern.search(rel):
            return role
    return None


def _out_bytes(n: NodeCost, itemsize: int) -> int:
    """The node's output bytes: from its shape for matmul/attention (whatever the traffic model), else bytes written."""
    s = n.shape
    if n.family == "matmul" and all(isinstance(s.get(k), int) for k in ("m", "n")):
        return int(s.get("b", 1)) * s["m"] * s["n"] * itemsize
    if n.family == "attention" and all(isinstance(s.get(k), int) for k in ("b", "h", "lq")):
        return s["b"] * s["h"] * s["lq"] * int(s.get("dv", s.get("d", 1))) * itemsize
    return n.cost.bytes_written


def node_views(cost: StageCost, rules: SplitRules, plan: ParallelPlan) -> tuple[list[NodeView], list[BlockView], ModelDims]:
    """The stage's graph nodes and FSDP units as :mod:`~fxmeter.estimate.parallel` takes them, and the dims
    it splits (with joint text tokens in the sequence when they divide the SP degree)."""
    dims = rules.dims
    seq = set(rules.sequence_symbols)
    if rules.joint_text_symbols and plan.sp > 1 and dims.text_len % plan.sp == 0:
        seq |= rules.joint_text_symbols
        dims = ModelDims(dims.heads, dims.head_dim, dims.hidden, dims.ffn, dims.layers, dims.text_len,
                         dims.tokens + dims.text_len)
    blocks = block_ids(cost)
    first = next((i for i, n in enumerate(cost.nodes) if _inside(n.module, blocks)), len(cost.nodes))
    roles = [(re.compile(p), r) for p, r in rules.tp_roles]
    views = []
    for i, n in enumerate(cost.nodes):
        size = ITEMSIZE.get(n.dtype or "bfloat16", 2)
        views.append(NodeView(
            name=n.name, target=n.target, module=n.module, family=n.family, category=n.category, replicas=n.replicas,
            tensor_core_flops=n.cost.tensor_core_flops, cuda_core_flops=n.cost.cuda_core_flops,
            bytes_read=n.cost.bytes_read, bytes_written=n.cost.bytes_written, shape=dict(n.shape),
            seq_split=i >= first and bool(n.symbols & seq), out_bytes=_out_bytes(n, size), itemsize=size,
            tp_role=_role(n.module, cost.root, roles),
        ))
    return views, _units(cost, blocks), dims


def _units(cost: StageCost, blocks: Sequence[str]) -> list[BlockView]:
    by_id = {m.id: m for m in cost.modules}
    units = [BlockView(b, by_id[b].weight_bytes) for b in blocks]
    rest = cost.weights.weight_bytes - sum(u.weight_bytes for u in units)
    return [BlockView(cost.root, max(rest, 0), root=True), *units]


def _scaled_units(units: Sequence[BlockView], factor: Fraction) -> list[BlockView]:
    if factor == 1:
        return list(units)
    return [BlockView(u.id, math.ceil(u.weight_bytes * factor), u.root) for u in units]


# -- per-GPU time ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Pricing:
    hw: Hardware
    device: Device
    kernels: KernelOptions | None  # None: the roofline at ``device.efficiency`` predicts
    model: KernelModel | None
    compiled: bool


def _metrics(s: NodeShare) -> Metrics:
    return Metrics(s.tensor_core_flops, s.cuda_core_flops, s.bytes_read, s.bytes_written)


def gpu_call(n: NodeCost, share: NodeShare, plan: ParallelPlan, seq_fraction: Fraction, *,
             compiled: bool) -> tuple[KernelCall, int]:
    """The kernel call one GPU makes for its share of ``n``, and how many times it makes it.

    The shape is the per-GPU one: a self-attention runs H/(U*T) heads of its S/R queries against each
    ring step's S/R keys, R times (Ulysses: all S keys at once); a cross-attention its query rows
    against every text key with H/T heads; a linear layer on the sequence its rows (``m`` x the GPU's
    token share), N/T outputs (column) or K/T inputs (row).  An unsplit node is the single-GPU call.
    """
    base = call_of(n, compiled=compiled)
    m = _metrics(share)
    if share.flops_scale == 1 and m == n.cost:
        return base, 1
    shape = dict(n.shape)
    u, r, t, p = plan.ulysses, plan.ring, plan.tp, plan.sp
    repeats = 1
    rule = share.rule
    if n.family == "attention" and all(isinstance(shape.get(k), int) for k in ("h", "lq", "lk")):
        if rule.startswith("self_attention"):
            shape["h"] = max(shape["h"] // (u * t), 1)
            shape["lq"] = -(-shape["lq"] // p) * u
            shape["lk"] = -(-shape["lk"] // p) * u
            repeats = r
        elif rule.startswith("cross_attention"):
            shape["h"] = max(shape["h"] // t, 1)
            shape["lq"] = -(-shape["lq"] // p)
        elif "tp" in rule:
            shape["h"] = max(shape["h"] // t, 1)
    elif n.family in ("matmul", "conv") and isinstance(shape.get("m"), int):
        if rule.startswith("sequence"):
            shape["m"] = max(math.ceil(shape["m"] * seq_fraction), 1)
        if rule.endswith("tp column") and isinstance(shape.get("n"), int):
            shape["n"] = max(-(-shape["n"] // t), 1)
        if rule.endswith("tp row") and isinstance(shape.get("k"), int):
            shape["k"] = max(-(-shape["k"] // t), 1)
    call = KernelCall(family=base.family, tensor_core_flops=-(-m.tensor_core_flops // repeats),
                      cuda_core_flops=-(-m.cuda_core_flops // repeats), bytes=-(-m.bytes // repeats),
                      shape=shape, dtype=base.dtype, launches=base.launches)
    return call, repeats


def _times(stage: Stage, result: PlanResult, pricing: _Pricing) -> tuple[list[NodeTime], list[NodeTime]]:
    """(predicted, bound) seconds of each node's per-GPU share, one instance each."""
    p = pricing.device.peaks()
    tc_base, tc_prec = p["tensor_core_flops_per_s"], p["tensor_core_flops_per_s_matmul"]
    cuda, bw = p["cuda_core_flops_per_s"], p["bytes_per_s"]
    eff = {**ONE, **pricing.device.efficiency}
    seq_fraction = result.activation_scale
    pred, bound = [], []
    for n, share in zip(stage.cost.nodes, result.nodes):
        m = _metrics(share)
        tc = tc_prec if n.family in PRECISION_FAMILIES else tc_base
        bound.append(NodeTime(*node_time(m, tc, cuda, bw, ONE)))
        if pricing.kernels is None or pricing.model is None:
            pred.append(NodeTime(*node_time(m, tc, cuda, bw, eff)))
            continue
        call, repeats = gpu_call(n, share, result.plan, seq_fraction, compiled=pricing.compiled)
        kt = kernel_time(call, pricing.hw, pricing.kernels, pricing.model)
        pred.append(NodeTime(kt.seconds * repeats, kt.limiter))
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
        hw=hw, device=Device(hw, opts.precision, {**ONE, **(efficiency or {})}, opts.dtype),
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
        single = s.predicted.per_run * s.runs
        if not s.plan.steps:  # outside the denoising loop: one GPU
            stages.append(StageDeployment(
                s.name, False, s.runs, s.cost.total, s.cost.total, s.predicted.per_run, s.bound.per_run,
                s.predicted.per_run, 0.0, 0.0, single, single, None, 0, s.cost.activations.peak_bytes))
            weights.setdefault(s.plan.component, est.component_weights[s.plan.component].weight_bytes)
            activations = max(activations, s.cost.activations.peak_bytes)
            notes.append(f"{s.name} runs outside the denoising loop on one GPU at its single-GPU time (Wan2.1 "
                         "encodes the prompt on every rank, sharded with --t5_fsdp but computed whole, and decodes "
                         "on rank 0: research/xdit.md)")
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
    one_gpu = est.seconds("predicted")
    assert one_gpu is not None
    w = sum(weights.values())
    if len(weights) > 1:
        notes.append(f"weights per GPU add every component's share ({', '.join(weights)}), each at its own peak")
    if opts.precision == "fp8":
        notes.append("--precision fp8: each FSDP unit's bytes scaled by the component's fp8/traced weight ratio")
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
    if plan.sp > 1 and s.cost.trace.get("mode") == "static":
        raise ParallelError(f"{s.name} was traced with static shapes here (no workload symbols per node), so which "
                            "nodes scale with the token sequence is unknown; sequence parallelism needs a dynamic "
                            "trace (a workload inside the trace's guards)")
    views, units, dims = node_views(s.cost, r, plan)
    w = est.component_weights[s.plan.component].weight_bytes
    factor = Fraction(w, s.cost.weights.weight_bytes) if s.cost.weights.weight_bytes else Fraction(1)
    units = _scaled_units(units, factor)
    result = per_gpu(views, units, plan, est.passes_per_step, dims=dims)
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
    act = math.ceil(s.cost.activations.peak_bytes * result.activation_scale)
    single = s.predicted.per_run if s.predicted else 0.0
    st = StageDeployment(
        s.name, True, forwards, pf, s.cost.total, t_pred, t_bound, single, exposed, overlapped,
        t_pred * forwards + exposed, single * s.runs, result.tokens_per_gpu, result.weight_bytes_per_gpu, act)
    return st, rows, [*result.notes], result.weight_bytes_per_gpu


def _fit(weights: int, activations: int, hw: Hardware) -> Fit:
    need, have = weights + activations, hw.memory_bytes
    ok = need <= have
    text = (f"{'fits' if ok else 'does NOT fit'} on each {hw.label}: weights {weights / GIB:.1f} GiB + activations "
            f"{activations / GIB:.1f} GiB = {need / GIB:.1f} GiB per GPU {'of' if ok else '>'} {have / GIB:.0f} GiB"
            + ("" if ok else f" (short by {(need - have) / GIB:.1f} GiB: more GPUs, --fsdp or fp8 weights)"))
    return Fit(ok, need, have, text)


def rules_of(dims: Mapping[str, Any], sequence_symbols: Sequence[str], joint_text_symbols: Sequence[str] = (),
             tp_roles: Sequence[tuple[str, str]] = ()) -> SplitRules:
    """:class:`SplitRules` from an adapter's ``model_dims`` mapping and tables."""
    try:
        md = ModelDims(**{k: dims[k] for k in ("heads", "head_dim", "hidden", "ffn", "layers", "text_len", "tokens")})
    except KeyError as e:
        raise ParallelError(f"model dims lack {e.args[0]!r}: cannot check a multi-GPU plan") from None
    return SplitRules(md, frozenset(sequence_symbols), frozenset(joint_text_symbols), tuple(tp_roles))




# -- from a model and a workload ------------------------------------------------------------------
def split_rules(model: ResolvedModel, geometry: Geometry) -> dict[str, SplitRules]:
    """The split rules of every component of ``model`` whose adapter knows how it splits over GPUs."""
    out = {}
    for name in list(model.components) or ["transformer"]:
        comp = model.component(name)
        dims = comp.adapter.model_dims(dict(comp.config), geometry)
        if dims is not None:
            a = comp.adapter
            out[name] = rules_of(dims, a.sequence_symbols, a.joint_text_symbols, a.tp_roles)
    return out


def plan_for(model: ResolvedModel, wl: Workload, geometry: Geometry, gpus: int, spec: str | None, *,
             fsdp: bool = False, batched_cfg: bool = False) -> ParallelPlan:
    """``--gpus N --parallel SPEC [--fsdp]`` for ``model`` at ``wl``: parsed and checked before anything is traced.

    With no ``spec``: cfg=2 when the workload runs two separate passes per step, the rest Ulysses (as
    many as divide the heads, ring the remainder: :func:`~fxmeter.estimate.parallel.parse_plan`).
    """
    passes = model.passes_per_step(wl)
    if batched_cfg and passes == 2:
        passes = 1  # one forward of 2x the batch per step
    rules = split_rules(model, geometry)
    main = model.component("transformer")
    if "transformer" not in rules:
        raise ParallelError(f"fxmeter does not know how {main.adapter.diffusers_class} splits over GPUs "
                            "(its adapter has no model_dims); use --gpus 1")
    plan = parse_plan(gpus, spec, passes_per_step=passes, fsdp=fsdp, heads=rules["transformer"].dims.heads)
    for name, r in rules.items():
        check_plan(plan, r.dims)
        comp = model.component(name)
        if plan.sp > 1 and not comp.adapter.supports_dynamic(dict(comp.config)):
            raise ParallelError(
                f"{comp.adapter.diffusers_class} ({name}) is traced with static shapes (its forward needs Python ints "
                "of the geometry), so which graph nodes scale with the token sequence is unknown; sequence "
                "parallelism (ulysses/ring) needs a dynamic trace: use cfg/tp only, or --gpus 1")
        if plan.sp > 1 and not comp.adapter.sequence_symbols:
            raise ParallelError(f"{comp.adapter.diffusers_class} ({name}) names no sequence symbols: sequence "
                                "parallelism (ulysses/ring) is not modelled for it")
    return plan


__all__ = ["CommRow", "Deployment", "SplitRules", "StageDeployment", "block_ids", "deploy", "gpu_call", "node_views",
           "link_text", "plan_for", "rules_of", "split_rules"]
