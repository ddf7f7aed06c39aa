"""``fxmeter plan``: every deployment of one model and workload, priced exactly, and its Pareto frontier.

Why one long module: the search space, its enumeration, the shared per-stage evaluation, the
frontier and the reasons are one algorithm over one set of records; split, each part would import
the others' private caches.

The space is a product: device x GPU count x parallel plan (Ulysses, Ring, their product, CFG, TP, FSDP)
x offload policy x matmul precision x attention kernel and precision x ``--compile`` x the quality knobs
(step cache, fewer steps).  Every point is priced by the same formulas as ``fxmeter trace`` (the kernel
model per graph node, the host dispatch timeline, the residency plan, the per-GPU split and the
communication model), from ONE symbolic trace per stage (the shipped one), evaluated once per traffic
model and reused.  Nothing is sampled: the search enumerates the whole product.

What makes 10,000 points cheap is sharing, not approximation:

* the cost of a stage is evaluated once per (workload variant, traffic model);
* a node's kernel time is a pure function of (its call, the device, the kernel options): one
  :func:`~fxmeter.estimate.kernels.kernel_time` per distinct call across the whole search;
* a stage's host timeline is a pure function of its nodes' kernel times: one per distinct tuple of times
  (a VAE whose attention kernel does not change its times is timed once for every attention choice);
* a parallel plan's per-GPU split (:func:`~fxmeter.estimate.parallel.per_gpu`) does not depend on the
  kernels: once per (stage, plan);
* the residency of every offload policy does not depend on the kernel times: once per device.

A stage's seconds per forward here are the sum of its nodes' (time x replicas); ``fxmeter trace`` rolls
the same node times up its module tree, so the two agree to float rounding (``tests/test_plan.py``
checks both paths on the same setups).  The frontier rows are priced again through :mod:`fxmeter.api`
(``price_setup``): what is printed is what the row's ``fxmeter trace ...`` line prints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from fxmeter.errors import FxmeterError, ParallelError
from fxmeter.estimate.comm import CommModel, LinkSpec, load_comm_model, pick_link
from fxmeter.estimate.host import host_seconds, timeline
from fxmeter.estimate.kernels import (
    ATTENTION_KERNELS,
    KernelModel,
    KernelOptions,
    check_kernel,
    kernel_time,
    load_kernel_model,
)
from fxmeter.estimate.parallel import ParallelPlan, collective_times, per_gpu
from fxmeter.estimate.predict import call_of
from fxmeter.estimate.roofline import NodeTime, StageTime
from fxmeter.estimate.split import gpu_call, node_views, scaled_units

if TYPE_CHECKING:
    from fxmeter.api import Request
    from fxmeter.estimate.evaluate import StageCost
    from fxmeter.estimate.generation import Estimate, Stage, StageInput
    from fxmeter.estimate.hardware import Hardware
    from fxmeter.estimate.residency import Residency
    from fxmeter.estimate.split import SplitRules


class PlanError(FxmeterError):
    """Invalid input to ``fxmeter plan`` / ``diagnose`` (exit 2)."""


#: matmul precisions, attention (kernel, precision) pairs the search tries; the checks of
#: :func:`~fxmeter.estimate.kernels.check_kernel` drop the ones a device cannot run
PRECISIONS = ("bf16", "fp8", "int8")
ATTENTIONS = tuple((k, p) for k in ATTENTION_KERNELS for p in ("bf16", "fp8", "int8"))


@dataclass(frozen=True)
class Setup:
    """One deployment: the options of ``fxmeter trace`` that make it (besides the model and workload)."""

    device: str
    gpus: int = 1
    parallel: str | None = None  # ulysses=U,ring=R,cfg=C,tp=T (None on one GPU)
    fsdp: bool = False
    offload: str = "none"
    t5_cpu: bool = False
    precision: str = "bf16"
    attention: str = "sdpa"
    attention_precision: str = "bf16"
    compile: bool = False
    cache_skip: float = 0.0
    steps: int | None = None  # None: the workload's

    @property
    def kernels(self) -> tuple[str, str, str, bool]:
        return (self.precision, self.attention, self.attention_precision, self.compile)

    def changes_output(self, default_steps: int) -> tuple[str, ...]:
        """The settings of this setup that change the generated output (not only its cost)."""
        out = []
        if self.precision != "bf16":
            out.append(f"{self.precision} matmuls")
        if self.attention == "sage":
            out.append(f"SageAttention (int8 Q K^T, {self.attention_precision} P V)")
        elif self.attention_precision != "bf16":
            out.append(f"{self.attention_precision} attention")
        if self.cache_skip:
            out.append(f"step cache skips {self.cache_skip:g} of forwards")
        if self.steps is not None and self.steps != default_steps:
            out.append(f"{self.steps} steps instead of {default_steps}")
        return tuple(out)

    def options(self, price: float | None = None) -> dict[str, Any]:
        """Keywords of :func:`fxmeter.trace` (and of :func:`fxmeter.base.knobs.command_line`)."""
        out: dict[str, Any] = {"hardware": self.device}
        if self.gpus > 1:
            out.update(gpus=self.gpus, parallel=self.parallel, fsdp=self.fsdp)
        out.update(offload=self.offload, t5_cpu=self.t5_cpu, precision=self.precision, attention=self.attention,
                   attention_precision=self.attention_precision, compile=self.compile, cache_skip=self.cache_skip)
        if self.steps is not None:
            out["steps"] = self.steps
        if price is not None:
            out["price_per_hour"] = price
        return out


@dataclass(frozen=True)
class Priced:
    """One setup's numbers."""

    setup: Setup
    seconds: float  # one generation
    peak_bytes: int  # per GPU
    memory_bytes: int  # of the device
    price_per_hour: float | None
    compute_seconds: float = 0.0
    comm_seconds: float = 0.0  # exposed
    transfer_seconds: float = 0.0  # host <-> device copies (offload)
    comm_bytes: int = 0  # per GPU per generation
    comm_link: str = ""
    quality: tuple[str, ...] = ()

    @property
    def fits(self) -> bool:
        return self.peak_bytes <= self.memory_bytes

    @property
    def gpus(self) -> int:
        return self.setup.gpus

    @property
    def gpu_seconds(self) -> float:
        return self.seconds * self.setup.gpus

    @property
    def dollars(self) -> float | None:
        return None if self.price_per_hour is None else self.gpu_seconds / 3600.0 * self.price_per_hour

    @property
    def exact(self) -> bool:
        return not self.quality

    def cost(self) -> float:
        """The frontier's cost axis: $ per generation when priced, else GPU-seconds."""
        d = self.dollars
        return self.gpu_seconds if d is None else d


def pareto(rows: Iterable[Priced]) -> list[Priced]:
    """The rows no other row beats on all of (seconds, cost, GPUs) while being strictly better on one;
    sorted by seconds.  Ties (same three numbers) keep the first row only."""
    pts = sorted(rows, key=lambda r: (r.seconds, r.cost(), r.gpus))
    out: list[Priced] = []
    for r in pts:
        dominated = False
        for q in out:
            if q.seconds <= r.seconds and q.cost() <= r.cost() and q.gpus <= r.gpus:
                dominated = True
                break
        if not dominated:
            out.append(r)
    return out


# -- the fast, exact pricing ---------------------------------------------------------------------------
class _Calls:
    """One stage's graph nodes as distinct kernel calls (one compile setting)."""

    def __init__(self, cost: StageCost, compiled: bool, km: KernelModel):
        self.keys: list[tuple[Any, ...]] = []
        self.calls: list[Any] = []
        self.index: list[int] = []
        seen: dict[tuple[Any, ...], int] = {}
        for n in cost.nodes:
            c = call_of(n, compiled=compiled)
            key = (c.family, c.tensor_core_flops, c.cuda_core_flops, c.bytes, tuple(sorted(c.shape.items())), c.dtype,
                   c.launches, c.broadcast)
            i = seen.get(key)
            if i is None:
                i = seen[key] = len(self.calls)
                self.keys.append(key)
                self.calls.append(c)
            self.index.append(i)
        self.hosts = None if km.host is None else [host_seconds(n, km.host, compiled=compiled) for n in cost.nodes]


class Pricer:
    """The caches of one search (see the module docstring); pure functions memoized."""

    def __init__(self, km: KernelModel | None = None, comm: CommModel | None = None):
        self.km = km or load_kernel_model()
        self.comm = comm or load_comm_model()
        self.kernel: dict[tuple[Any, ...], NodeTime] = {}
        self.calls: dict[tuple[int, bool], _Calls] = {}
        self.timelines: dict[tuple[Any, ...], float] = {}
        self.splits: dict[tuple[Any, ...], Any] = {}
        self.comm_cache: dict[tuple[Any, ...], tuple[float, int]] = {}
        self.forwards: dict[tuple[Any, ...], tuple[float, dict[str, float]]] = {}
        self.links: dict[tuple[str, int], LinkSpec] = {}
        self.kernel_calls = 0

    def node_time(self, key: tuple[Any, ...], call: Any, hw: Hardware, opts: KernelOptions) -> NodeTime:
        k = (key, hw.name, opts)
        got = self.kernel.get(k)
        if got is None:
            t = kernel_time(call, hw, opts, self.km)
            got = self.kernel[k] = NodeTime(t.seconds, t.limiter)
            self.kernel_calls += 1
        return got

    def stage_seconds(self, cost: StageCost, hw: Hardware, opts: KernelOptions) -> float:
        """One forward's predicted seconds (the kernel model + host timeline, as ``predict_stage``)."""
        ck = (id(cost), opts.compile)
        calls = self.calls.get(ck)
        if calls is None:
            calls = self.calls[ck] = _Calls(cost, opts.compile, self.km)
        distinct = tuple(self.node_time(k, c, hw, opts) for k, c in zip(calls.keys, calls.calls))
        tk = (id(cost), opts.compile, hw.name, tuple(t.seconds for t in distinct))
        got = self.timelines.get(tk)
        if got is None:
            times = [distinct[i] for i in calls.index]
            if calls.hosts is not None:
                times = timeline(cost.nodes, times, calls.hosts)
            got = self.timelines[tk] = sum(t.seconds * n.replicas for t, n in zip(times, cost.nodes))
        return got

    def link(self, hw: Hardware, ranks: int) -> LinkSpec:
        k = (hw.name, ranks)
        if k not in self.links:
            self.links[k] = pick_link(hw, ranks, self.comm)
        return self.links[k]


@dataclass
class _Denoised:
    """One denoising stage on a plan's GPUs (the policy-independent part of a deployment)."""

    name: str
    component: str
    seconds: float
    compute: float
    exposed: float
    comm_bytes: int
    weight_bytes: int
    activation_bytes: int


def fast_timeline(nodes: Sequence[Any], kernels: Sequence[float], hosts: Sequence[float]) -> list[float]:
    """:func:`fxmeter.estimate.host.timeline`'s per-node seconds, with one exact shortcut: once a replica of a
    repeated block runs without the GPU waiting for the host and the block's kernels take at least as long as
    its dispatch, every later replica is the same (the host only falls further behind), so the rest of the
    block is added at once instead of simulated replica by replica."""
    out: list[float] = []
    h_clock = g_clock = 0.0
    i = 0
    n_all = len(nodes)
    while i < n_all:
        r = nodes[i].replicas
        j = i + 1
        while j < n_all and nodes[j].replicas == r:
            j += 1
        reps = max(r, 1)
        inc = [0.0] * (j - i)
        kern_sum = sum(kernels[i:j])
        host_sum = sum(hosts[i:j])
        done = 0
        while done < reps:
            waited = False
            for k in range(i, j):
                h_clock += hosts[k]
                kt = kernels[k]
                if kt > 0:
                    if h_clock > g_clock:
                        waited = True
                        end = h_clock + kt
                    else:
                        end = g_clock + kt
                else:
                    end = g_clock
                inc[k - i] += end - g_clock
                g_clock = end
            done += 1
            if not waited and kern_sum >= host_sum and done < reps:
                rest = reps - done
                for k in range(i, j):
                    inc[k - i] += kernels[k] * rest
                g_clock += kern_sum * rest
                h_clock += host_sum * rest
                done = reps
        out.extend(x / reps for x in inc)
        i = j
    if h_clock > g_clock and out:
        out[-1] += (h_clock - g_clock) / max(nodes[-1].replicas, 1)
    return out


@dataclass
class _Split:
    """A denoising stage split by one plan (kernel-independent): its per-GPU calls and overlap windows."""

    result: Any
    keys: list[tuple[Any, ...]]
    calls: list[Any]
    index: list[int]
    repeats: list[int]
    hosts: list[float] | None
    attn: list[int]  # self-attention node indices (ring-step window)
    inside: list[int]  # nodes inside the FSDP units (block window)
    units: int
    replicas: list[int]


def _split(p: Pricer, s: Stage, est: Estimate, plan: ParallelPlan, rules: SplitRules, compiled: bool) -> _Split:
    wbytes = est.component_weights[s.plan.component].weight_bytes
    key = (id(s.cost), plan, wbytes, est.passes_per_step, compiled)
    got = p.splits.get(key)
    if got is not None:
        return got  # type: ignore[no-any-return]
    views, units, dims = node_views(s.cost, rules, plan)
    units = scaled_units(units, wbytes)
    result = per_gpu(views, units, plan, est.passes_per_step, dims=dims)
    keys: list[tuple[Any, ...]] = []
    calls: list[Any] = []
    index: list[int] = []
    repeats: list[int] = []
    hosts: list[float] | None = [] if p.km.host is not None else None
    seen: dict[tuple[Any, ...], int] = {}
    for n, share in zip(s.cost.nodes, result.nodes):
        call, rep = gpu_call(n, share, result.plan, result.activation_scale, compiled=compiled)
        ck = (call.family, call.tensor_core_flops, call.cuda_core_flops, call.bytes, tuple(sorted(call.shape.items())),
              call.dtype, call.launches, call.broadcast)
        i = seen.get(ck)
        if i is None:
            i = seen[ck] = len(calls)
            keys.append(ck)
            calls.append(call)
        index.append(i)
        repeats.append(rep)
        if hosts is not None and p.km.host is not None:
            hosts.append(host_seconds(n, p.km.host, compiled=compiled, repeats=rep))
    ids = [b.id for b in units if not b.root]
    attn = [i for i, n in enumerate(result.nodes) if n.rule.startswith("self_attention")]
    inside = [i for i, n in enumerate(result.nodes) if any(n.module == u or n.module.startswith(u + ".") for u in ids)]
    sp = _Split(result, keys, calls, index, repeats, hosts, attn, inside, len(ids), [n.replicas for n in result.nodes])
    p.splits[key] = sp
    return sp


def _denoiser_on(p: Pricer, s: Stage, est: Estimate, plan: ParallelPlan, rules: SplitRules, hw: Hardware,
                 opts: KernelOptions) -> _Denoised:
    """``deploy._denoiser``'s numbers for one stage (cached split, cached kernel times)."""
    from fxmeter.estimate.parallel import BLOCK, RING_STEP, OverlapRules

    sp = _split(p, s, est, plan, rules, opts.compile)
    result = sp.result
    fk = (id(sp), hw.name, opts)
    got = p.forwards.get(fk)  # one forward's per-GPU seconds and overlap windows: the same at every step count
    if got is None:
        distinct = [p.node_time(k, c, hw, opts).seconds for k, c in zip(sp.keys, sp.calls)]
        kern = [distinct[i] * r for i, r in zip(sp.index, sp.repeats)]
        secs = fast_timeline(s.cost.nodes, kern, sp.hosts) if sp.hosts is not None else kern
        reps = sp.replicas
        t_fwd = sum(t * n for t, n in zip(secs, reps))
        wins: dict[str, float] = {}
        ar = sum(reps[i] for i in sp.attn)
        if ar:
            wins[RING_STEP] = sum(secs[i] * reps[i] for i in sp.attn) / ar / plan.ring
        if sp.units:
            wins[BLOCK] = sum(secs[i] * reps[i] for i in sp.inside) / sp.units
        got = p.forwards[fk] = (t_fwd, wins)
    t_pred, windows = got
    forwards = -(-s.runs // plan.cfg)
    ck = ("comm", id(result), s.runs, s.plan.steps, hw.name, tuple(sorted(windows.items())))
    comm = p.comm_cache.get(ck)
    if comm is None:
        collectives = [*(replace(c, count=c.count * forwards) for c in result.per_forward),
                       *(replace(c, count=c.count * s.plan.steps) for c in result.per_step), *result.per_generation]
        timed = collective_times(collectives, lambda c: p.link(hw, c.ranks), p.comm, OverlapRules(windows))
        kept = [t for t in timed if t.collective.count and t.collective.ranks > 1]
        comm = p.comm_cache[ck] = (sum(t.exposed for t in kept), sum(t.collective.bytes * t.collective.count for t in kept))
    exposed, moved = comm
    act = s.activation_bytes(result.activation_scale, plan.sp)
    return _Denoised(s.name, s.plan.component, t_pred * forwards + exposed, t_pred * forwards, exposed, moved,
                     result.weight_bytes_per_gpu, act)


def deployment_numbers(p: Pricer, est: Estimate, res: Residency, plan: ParallelPlan, rules: Mapping[str, SplitRules],
                       hw: Hardware, opts: KernelOptions,
                       denoised: dict[str, _Denoised] | None = None) -> tuple[float, int, float, float, float, int]:
    """(seconds, peak bytes per GPU, compute, exposed comm, transfer seconds, comm bytes) of ``est`` under
    ``res`` on ``plan``'s GPUs: :func:`fxmeter.estimate.deploy.deploy`'s arithmetic, its split and kernel
    times cached.  ``denoised``: the stages already split for this (est, plan, kernels), reused across policies."""
    den = {} if denoised is None else denoised
    weights: dict[str, int] = {}
    act_of: dict[str, int] = {}
    total = compute = exposed = 0.0
    moved_bytes = 0
    activations = 0
    for s in est.stages:
        if res.on_host(s.name):
            continue
        if not s.plan.steps:
            assert s.predicted is not None
            single = s.predicted.per_run * s.runs
            total += single
            compute += single
            whole = est.component_weights[s.plan.component].weight_bytes
            if plan.fsdp and est.options.runtime != "diffusers" and s.name.startswith("text_encoder"):
                weights.setdefault(s.plan.component, -(-whole // plan.gpus))
            else:
                weights.setdefault(s.plan.component, whole)
            activations = max(activations, s.cost.activations.peak_bytes)
            act_of[s.name] = s.cost.activations.peak_bytes
            continue
        d = den.get(s.name)
        if d is None:
            try:
                r = rules[s.plan.component]
            except KeyError:
                raise ParallelError(f"no split rules for component {s.plan.component}") from None
            d = den[s.name] = _denoiser_on(p, s, est, plan, r, hw, opts)
        total += d.seconds
        compute += d.compute
        exposed += d.exposed
        moved_bytes += d.comm_bytes
        weights.setdefault(s.plan.component, d.weight_bytes)
        activations = max(activations, d.activation_bytes)
        act_of[s.name] = d.activation_bytes
    w = sum(weights.values())
    full = sum(est.component_weights[c].weight_bytes for c in weights)
    share = min(1.0, w / full) if full else 1.0
    if res.policy != "none":
        at_stage = [(int(r.resident_bytes * share), act_of.get(r.stage, r.activation_bytes)) for r in res.stages
                    if not r.on_host]
        if at_stage:
            rw, ra = max(at_stage, key=lambda x: x[0] + x[1])
            w, activations = min(w, rw), ra
    moves = res.transfer_seconds
    moved = 0.0
    if moves:
        moved = moves * share
        total += moved
    return total, w + activations, compute, exposed, moved, moved_bytes


def stage_times(p: Pricer, est: Estimate, hw: Hardware) -> Estimate:
    """``est`` with every stage's predicted seconds per forward from ``p`` on ``hw`` (the options' kernels)."""
    o = est.options
    stages = []
    for s in est.stages:
        k = KernelOptions(o.attention, o.precision if s.denoiser else "bf16", o.attention_precision, o.compile)
        stages.append(replace(s, predicted=StageTime("predicted", p.stage_seconds(s.cost, hw, k), (), (), {}, "fast")))
    return replace(est, stages=tuple(stages))


# -- the search ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """A workload variant: the steps and the step cache (quality knobs), and its stage inputs."""

    steps: int | None
    cache_skip: float
    request: Request
    inputs: tuple[StageInput, ...]


@dataclass
class Space:
    """What to enumerate."""

    devices: Sequence[Hardware]
    max_gpus: int = 8
    quality: bool = True
    prices: Mapping[str, float] = field(default_factory=dict)
    policies: Sequence[str] | None = None  # None: every policy the pipeline has


@dataclass
class SearchResult:
    model: str
    workload: Any
    default_steps: int
    rows: list[Priced]  # every priced setup (fitting or not)
    seconds: float  # wall seconds of the search
    kernel_points: int
    pricer: Pricer
    notes: list[str] = field(default_factory=list)

    @property
    def fitting(self) -> list[Priced]:
        return [r for r in self.rows if r.fits]


def kernel_points(hw: Hardware, quality: bool) -> list[KernelOptions]:
    """Every (matmul precision, attention kernel and precision, compile) ``hw`` can run."""
    out = []
    for prec in PRECISIONS if quality else ("bf16",):
        for att, aprec in ATTENTIONS:
            if not quality and (aprec != "bf16" or att == "sage"):
                continue
            for comp in (False, True):
                o = KernelOptions(attention=att, precision=prec, attention_precision=aprec, compile=comp)
                try:
                    check_kernel(o, hw)
                except FxmeterError:
                    continue
                out.append(o)
    return out


def parallel_plans(req: Request, max_gpus: int) -> list[ParallelPlan]:
    """Every plan of 2..max_gpus GPUs the model can run: U x R x C x T = N, with and without FSDP."""
    from fxmeter.estimate.split import plan_for

    out = []
    seen = set()
    for n in range(2, max_gpus + 1):
        for cfg in (1, 2):
            for tp in _divisors(n // cfg if n % cfg == 0 else 0):
                rest = n // cfg // tp
                for ring in _divisors(rest):
                    u = rest // ring
                    for fsdp in (False, True):
                        spec = f"ulysses={u},ring={ring},cfg={cfg},tp={tp}"
                        try:
                            plan = plan_for(req.model, req.workload, req.geometry, n, spec, fsdp=fsdp,
                                            batched_cfg=req.options.batched_cfg)
                        except ParallelError:
                            continue
                        if plan not in seen:
                            seen.add(plan)
                            out.append(plan)
    return out


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0] if n > 0 else []


def variants(req: Request, quality: bool) -> list[tuple[int | None, float]]:
    """(steps, cache_skip) of the search: the workload's, and with ``quality`` a step cache skipping half of
    the forwards and half the steps."""
    out: list[tuple[int | None, float]] = [(None, 0.0)]
    if quality:
        out.append((None, 0.5))
        if req.workload.steps >= 4:
            out.append((req.workload.steps // 2, 0.0))
    return out


def search(model: str | None, workload: Any = None, *, space: Space, config: Any = None, dtype: str = "bf16",
           pricer: Pricer | None = None, **overrides: Any) -> SearchResult:
    """Price every setup of ``space`` for ``model`` at ``workload`` (exact; see the module docstring)."""
    import time

    from fxmeter import api
    from fxmeter.estimate.generation import estimate, plan_residency
    from fxmeter.estimate.residency import policies_for
    from fxmeter.estimate.split import split_rules

    t0 = time.perf_counter()
    p = pricer or Pricer()
    base = api.request(model, workload, config=config, dtype=dtype, **overrides)
    m = base.model
    adapter = m.adapter
    policies = policies_for(adapter.extra_policies)
    if space.policies is not None:
        policies = tuple(x for x in policies if x in space.policies)
    i2v = adapter.name == "wan-i2v"
    memo: dict[tuple[str, ...], list[Any]] = {}
    evals: dict[tuple[Any, ...], Any] = {}
    rules = split_rules(m, base.geometry)
    rows: list[Priced] = []
    plans = parallel_plans(base, space.max_gpus) if space.max_gpus > 1 else []
    unpriced: dict[str, str] = {}
    points = 0
    for steps, skip in variants(base, space.quality):
        ov = dict(overrides)
        if steps is not None:
            ov["steps"] = steps
        req = api.request(model, workload, config=config, dtype=dtype, cache_skip=skip, **ov)
        inputs = api.stage_inputs(req, memo=memo)
        passes = m.passes_per_step(req.workload)
        bases: dict[tuple[str, str], Estimate] = {}
        for hw in space.devices:
            price = space.prices.get(hw.name, hw.price_per_hour)
            kps = kernel_points(hw, space.quality)
            residencies: dict[str, tuple[Residency, ...]] = {}
            for ko in kps:
                traffic = "fused" if ko.compile else "eager"
                bkey = (ko.precision, traffic)
                est0 = bases.get(bkey)
                if est0 is None:
                    opts0 = replace(req.options, precision=ko.precision, traffic=traffic)
                    est0 = bases[bkey] = estimate(inputs, opts0, steps=req.workload.steps, passes_per_step=passes,
                                                  offload_seq=adapter.offload_seq, policies=policies, i2v=i2v,
                                                  memo=evals)
                opts = replace(est0.options, attention=ko.attention, attention_precision=ko.attention_precision,
                               compile=ko.compile, hardware=hw.name)
                est = stage_times(p, replace(est0, options=opts), hw)
                rkey = ko.precision
                if rkey not in residencies:
                    residencies[rkey] = plan_residency(est, opts, adapter.offload_seq, policies, hw, i2v)[1]
                points += 1
                for res in residencies[rkey]:
                    one = replace(est, residency=res)
                    secs = one.pipeline_seconds("predicted") or 0.0
                    setup = Setup(hw.name, 1, None, False, res.policy, res.t5_cpu, ko.precision, ko.attention,
                                  ko.attention_precision, ko.compile, skip, steps)
                    rows.append(Priced(setup, secs, res.peak_bytes, hw.memory_bytes, price,
                                       compute_seconds=secs - (res.transfer_seconds or 0.0),
                                       transfer_seconds=res.transfer_seconds or 0.0,
                                       quality=setup.changes_output(base.workload.steps)))
                for plan in plans if hw.name not in unpriced else ():
                    denoised: dict[str, _Denoised] = {}
                    for res in residencies[rkey]:
                        try:
                            secs, peak, comp, exp, mv, cb = deployment_numbers(p, est, res, plan, rules, hw,
                                                                               ko, denoised)
                        except ParallelError:
                            break
                        except FxmeterError as e:  # e.g. a device whose GPU link has no communication constants
                            unpriced[hw.name] = str(e)
                            break
                        setup = Setup(hw.name, plan.gpus, plan.spec(), plan.fsdp, res.policy, res.t5_cpu,
                                      ko.precision, ko.attention, ko.attention_precision, ko.compile, skip, steps)
                        rows.append(Priced(setup, secs, peak, hw.memory_bytes, price, comp, exp, mv, cb,
                                           _link_name(p.link(hw, plan.gpus)),
                                           quality=setup.changes_output(base.workload.steps)))
    notes = [f"{d}: one GPU only; its multi-GPU setups cannot be priced ({why})" for d, why in unpriced.items()]
    return SearchResult(m.id, base.workload, base.workload.steps, rows, time.perf_counter() - t0, points, p, notes)


def _link_name(link: LinkSpec) -> str:
    from fxmeter.estimate.deploy import link_text

    return link_text(link)


__all__ = ["PlanError", "Priced", "Pricer", "SearchResult", "Setup", "Space", "deployment_numbers", "kernel_points",
           "parallel_plans", "pareto", "search"]


def price_setup(model: str | None, workload: Any, setup: Setup, *, config: Any = None, dtype: str = "bf16",
                price: float | None = None, memo: dict[str, Any] | None = None, **overrides: Any) -> Priced:
    """``setup`` priced through :mod:`fxmeter.api` (what its ``fxmeter trace`` line prints).  ``memo``: the
    stage inputs and evaluated stages of earlier calls (as a sweep shares them), reused where they repeat."""
    from fxmeter import api

    m = {} if memo is None else memo
    req = api.request(model, workload, config=config, dtype=dtype, **setup.options(price), **overrides)
    est = api.estimate_request(req, api.stage_inputs(req, memo=m.setdefault("inputs", {})), nodes=False,
                               modules=False, memo=m.setdefault("stages", {}))
    hw = req.devices[0]
    pr = req.prices.get(hw.name, hw.price_per_hour)
    q = setup.changes_output(api.request(model, workload, config=config, dtype=dtype, **overrides).workload.steps)
    if est.deployment is not None:
        d = est.deployment
        return Priced(setup, d.predicted_seconds, d.fit.required_bytes, hw.memory_bytes, pr, d.compute_seconds,
                      d.exposed_comm_seconds, 0.0, sum(c.bytes * c.count for c in d.communication),
                      _link_name(d.interconnect), q)
    res = est.residency
    assert res is not None
    secs = est.pipeline_seconds("predicted") or 0.0
    return Priced(setup, secs, res.peak_bytes, hw.memory_bytes, pr, secs - (res.transfer_seconds or 0.0), 0.0,
                  res.transfer_seconds or 0.0, 0, "", q)


# -- the frontier and why each row wins ---------------------------------------------------------------------
GIB = 2**30


@dataclass(frozen=True)
class Row:
    """One frontier row: the setup's numbers, its command line and why it is on the frontier."""

    priced: Priced
    command: str
    why: str


@dataclass
class Frontier:
    """What ``fxmeter plan`` prints: the exact frontier, the quality rows that beat it, or why nothing qualifies."""

    result: SearchResult
    exact: list[Row]
    quality: list[Row]
    kept: int  # setups that fit and meet the constraints
    impossible: str | None = None  # one line when the constraints leave nothing


def _setup_text(s: Setup) -> str:
    parts = [f"{s.gpus}x {s.device}"]
    if s.gpus > 1 and s.parallel:
        plan = ",".join(kv for kv in (s.parallel or "").split(",") if not kv.endswith("=1")) or "ulysses=1"
        parts.append(plan + (",fsdp" if s.fsdp else ""))
    parts.append(f"attn {s.attention}" + (f"/{s.attention_precision}" if s.attention_precision != "bf16" else ""))
    if s.precision != "bf16":
        parts.append(f"{s.precision} matmuls")
    if s.compile:
        parts.append("compile")
    if s.offload != "none" or s.t5_cpu:
        parts.append(f"offload {s.offload}" + ("+t5_cpu" if s.t5_cpu else ""))
    if s.cache_skip:
        parts.append(f"cache {s.cache_skip:g}")
    if s.steps is not None:
        parts.append(f"{s.steps} steps")
    return ", ".join(parts)


def describe(s: Setup) -> str:
    """A short label of a setup (``2x h100, cfg=2, attn fa3, compile``)."""
    return _setup_text(s)


def _pct(a: float, b: float) -> str:
    v = (b - a) / b * 100
    return f"{v:.0f}%" if abs(v) >= 1 else f"{v:.1f}%"


def _planless(s: Setup) -> Setup:
    return replace(s, parallel=None, fsdp=False)


def reason(r: Priced, index: Mapping[Setup, Priced], plans_of: Mapping[Setup, Sequence[Priced]], pos: int,
           front: Sequence[Priced]) -> str:
    """One line: where ``r`` sits on the frontier and the single setting that matters most to it."""
    if pos == 0:
        where = "fastest"
    else:
        prev = front[pos - 1]  # faster, and dearer or on more GPUs
        up = r.cost() / prev.cost()  # this row's cost as a multiple of the row above's
        if up < 1 and (up <= 0.995 or r.gpus >= prev.gpus):
            where = f"{_pct(r.cost(), prev.cost())} cheaper than the row above at {r.seconds / prev.seconds:.2f}x its time"
        else:  # on the frontier for its GPU count: say so, not "0% cheaper"
            cost = ((f"{up:.2f}x its cost" if up >= 2 else f"{(up - 1) * 100:.0f}% dearer") if up > 1.005 else
                    "about the same GPU-seconds" if up > 0.995 else f"{_pct(r.cost(), prev.cost())} cheaper")
            where = (f"{r.gpus} GPU{'s' if r.gpus > 1 else ''} instead of {prev.gpus} at {r.seconds / prev.seconds:.2f}x the time of the row "
                     f"above ({cost})")
    if pos == len(front) - 1 and len(front) > 1:
        where = "cheapest" + ("" if r.gpus > min(x.gpus for x in front) else " and fewest GPUs")
    s = r.setup
    found: list[tuple[float, str]] = []

    def consider(alt_setup: Setup, text: Callable[[Priced], str]) -> None:
        alt = index.get(alt_setup)
        if alt is None or alt is r:
            return
        if not alt.fits:
            gain = float("inf")
            line = f"{text(alt)} would not fit ({alt.peak_bytes / GIB:.1f} GiB > {alt.memory_bytes / GIB:.0f} GiB per GPU)"
        elif alt.seconds > r.seconds:
            gain = alt.seconds / r.seconds
            line = f"{text(alt)} would take {alt.seconds:,.1f} s"
        else:
            return
        found.append((gain, line))

    if s.attention != "sdpa" or s.attention_precision != "bf16":
        consider(replace(s, attention="sdpa", attention_precision="bf16"), lambda a: "with torch SDPA attention it")
    if s.compile:
        consider(replace(s, compile=False), lambda a: "eager (no --compile) it")
    if s.offload != "none" or s.t5_cpu:
        consider(replace(s, offload="none", t5_cpu=False), lambda a: "without offload it")
    if s.fsdp:
        consider(replace(s, fsdp=False), lambda a: "without --fsdp it")
    if s.gpus > 1:  # the best other plan of the same count, and why this one beats it
        others = [x for x in plans_of.get(_planless(s), ()) if x.fits and x.setup != s]
        if others:
            o = min(others, key=lambda x: x.seconds)
            if o.seconds > r.seconds:
                text = f"the best other plan, {o.setup.parallel}{',fsdp' if o.setup.fsdp else ''}, takes {o.seconds:,.1f} s"
                if o.comm_seconds > r.comm_seconds:
                    text += (f" (moves {o.comm_bytes / 1e9:,.1f} GB per GPU per generation over {o.comm_link}, "
                             f"{o.comm_seconds:,.1f} s exposed vs {r.comm_seconds:,.1f} s)")
                found.append((o.seconds / r.seconds, text))
        one = replace(s, gpus=1, parallel=None, fsdp=False)
        alt = index.get(one)
        if alt is not None and alt.fits:
            found.append((alt.seconds / r.seconds, f"one GPU takes {alt.seconds:,.1f} s"))
    found.sort(key=lambda x: -x[0])  # what this setup needs (would not fit without), then the largest time gain
    shown = found[:1] + [f for f in found[1:2] if math.isinf(found[0][0]) and not math.isinf(f[0])]
    why = where + "".join(f"; {line}" for _, line in shown)
    if s.t5_cpu:
        why += "; the T5 encode runs on the host CPU and its time is not modelled (optimistic)"
    if r.quality:
        why += "; changes the output: " + ", ".join(r.quality)
    return why


def frontier(result: SearchResult, *, slo: float | None = None, budget: float | None = None,
             command: Callable[[Setup], str] | None = None) -> Frontier:
    """The Pareto frontier of ``result`` (exact setups; then quality setups that beat every exact row at
    its cost) under ``slo`` (seconds per generation) and ``budget`` ($ per generation)."""
    rows = result.rows
    fit = [r for r in rows if r.fits]
    if not fit:
        near = min(rows, key=lambda r: r.peak_bytes / r.memory_bytes)
        return Frontier(result, [], [], 0, f"no setup fits: the nearest, {describe(near.setup)}, needs "
                        f"{near.peak_bytes / GIB:,.1f} GiB per GPU of {near.memory_bytes / GIB:,.0f} GiB "
                        "(try --max-gpus higher or a device with more memory)")
    index = {r.setup: r for r in rows}
    # --t5-cpu leaves the T5 encode's host time out (not modelled): such a setup is only offered where the same
    # setup with T5 on the device does not fit, never as a faster one (nor as the nearest setup of a refusal)
    fit = [r for r in fit if not r.setup.t5_cpu or not getattr(index.get(replace(r.setup, t5_cpu=False)), "fits", False)]
    ok = [r for r in fit if (slo is None or r.seconds <= slo) and (budget is None or (r.dollars or 0.0) <= budget)]
    if not ok:
        if slo is not None and not any(r.seconds <= slo for r in fit):
            near = min(fit, key=lambda r: r.seconds)
            msg = (f"no setup generates in {slo:g} s: the fastest that fits takes {near.seconds:,.1f} s "
                   f"({describe(near.setup)})")
        elif budget is not None and not any((r.dollars or 0.0) <= budget for r in fit):
            near = min(fit, key=lambda r: r.dollars or 0.0)
            msg = (f"no setup costs ${budget:g} or less per generation: the cheapest that fits costs "
                   f"${near.dollars or 0.0:,.4f} ({describe(near.setup)}, {near.seconds:,.1f} s)")
        else:
            within = [r for r in fit if budget is None or (r.dollars or 0.0) <= budget]
            near = min(within, key=lambda r: r.seconds)
            msg = (f"no setup meets both --slo {slo:g} s and --budget ${budget:g}: within the budget the fastest "
                   f"takes {near.seconds:,.1f} s ({describe(near.setup)}, ${near.dollars or 0.0:,.4f})")
        line = command(near.setup) if command else ""
        return Frontier(result, [], [], 0, msg + (f"; {line}" if line else ""))
    exact = pareto(r for r in ok if r.exact)
    every = pareto(ok)
    quality = [r for r in every if not r.exact]
    cmd = command or (lambda s: "")

    wanted = {(r.setup.device, r.setup.gpus) for r in (*exact, *quality) if r.setup.gpus > 1}
    plans_of: dict[Setup, list[Priced]] = {}
    for x in ok:  # the other plans of each frontier row's device, GPU count and settings
        if (x.setup.device, x.setup.gpus) in wanted:
            plans_of.setdefault(_planless(x.setup), []).append(x)

    def rows_of(front: list[Priced]) -> list[Row]:
        return [Row(r, cmd(r.setup), reason(r, index, plans_of, i, front)) for i, r in enumerate(front)]

    return Frontier(result, rows_of(exact), rows_of(quality), len(ok))
