"""Multi-GPU deployments of a DiT: who computes what, and what they send each other.

A plan splits ``gpus`` into Ulysses x ring x CFG x tensor-parallel degrees (``U*R*C*T = N``), as
xDiT's USP and Wan2.1's ``generate.py`` do; ``fsdp`` shards the DiT's weights block by block over
all N GPUs (Wan2.1 ``wan/distributed/fsdp.py``: the default process group).

Per graph node (a :class:`NodeView` the estimate pipeline builds from its evaluated nodes):

* self-attention under Ulysses: every GPU runs all tokens for H/U heads; under ring: Lq/R queries
  against all Lk in R steps; so per-GPU attention = total / (U*R) (and / T: TP splits heads).
  Communication: an all-to-all of q, k and v before it and of o after it (Ulysses group), K/V blocks
  passed around the ring R-1 times (overlapping the attention).
* cross-attention to text: the query is the GPU's sequence shard, the text K/V are computed on every
  GPU (replicated, no communication; Wan2.1 ``xdit_context_parallel.py`` keeps ``cross_attn``
  unpatched, xDiT's ``xFuserWanAttnProcessor`` runs it without USP).
* every other node whose cost scales with the video tokens (``seq_split``): / (U*R) of its token
  part (a linear layer's weight is read whole by every GPU).
* replicated nodes (timestep and text embeddings, ...): full cost on every GPU.
* TP (Megatron style, xDiT's ``ColumnParallelLinear``/``RowParallelLinear``): a column-parallel
  linear computes N/T outputs, a row-parallel one K/T inputs and all-reduces its output.
* CFG parallel: each of the C=2 groups runs one of the two passes of a step and the noise
  predictions are all-gathered once per step (xDiT ``pipeline_wan_i2v.py``).

The sequence is padded up to a multiple of U*R before the split (Wan2.1 ``text2video.py``:
``seq_len = ceil(.../sp_size) * sp_size``; xDiT ``_chunk_and_pad_sequence``), so per-GPU token
counts are ``ceil(S / (U*R))`` and the padding is computed like real tokens.

Pure Python: no torch.

Why one long module: the plan, the per-node split rules and the collectives they imply are one
model; the bytes of each collective follow from the same split that shrinks the node, so they
are derived side by side.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, NamedTuple

from fxmeter.errors import ParallelError
from fxmeter.estimate.comm import Collective, CommModel, LinkLike, collective_seconds

#: ``--parallel`` keys, in the order plans are written.
DEGREES = ("ulysses", "ring", "cfg", "tp")
#: Largest GPU count (and degree) a plan may name: far beyond any deployment, small enough to stay exact and fast.
MAX_GPUS = 1 << 20
#: TP roles of linear layers (from the adapter's table) and of the nodes that consume their sharded output.
TP_ROLES = ("column", "row", "sharded")
#: Overlap windows: the compute an overlappable collective may hide behind.
RING_STEP = "ring_step"
BLOCK = "block"
#: FSDP keeps this many whole blocks gathered at once: the one computing and the one being prefetched
#: (torch FSDP1 ``limit_all_gathers``: "GPU memory usage from only two consecutive FSDP instances").
FSDP_GATHERED_BLOCKS = 2

OVERLAP_RULES = (
    "ring K/V p2p of step i+1 runs while the attention of step i computes (yunchang ring_flash_attn: "
    "send_recv + commit before the block, wait after): exposed = max(0, p2p - attention per ring step)",
    "FSDP all-gather of block i+1 runs while block i computes (torch FSDP1 issues it ahead, two blocks "
    "in flight; xDiT passes forward_prefetch=True): exposed = max(0, all-gather - one block's compute); "
    "block 0's all-gather has nothing before it and is exposed",
    "Ulysses all-to-alls, TP all-reduces, the sequence all-gather and the CFG all-gather are exposed: "
    "the next op needs their result",
    "overlapped communication is assumed not to slow the compute it hides behind (NCCL kernels "
    "share the SMs; not modeled)",
)


# -- the plan --------------------------------------------------------------------------
@dataclass(frozen=True)
class ParallelPlan:
    """Degrees of a multi-GPU plan; ``ulysses * ring * cfg * tp == gpus``."""

    gpus: int
    ulysses: int = 1
    ring: int = 1
    cfg: int = 1
    tp: int = 1
    fsdp: bool = False

    @property
    def sp(self) -> int:
        """Sequence-parallel degree: the sequence is split into U*R shards."""
        return self.ulysses * self.ring

    def spec(self) -> str:
        """``ulysses=4,ring=2,cfg=1,tp=1`` (``--parallel`` syntax)."""
        return ",".join(f"{k}={getattr(self, k)}" for k in DEGREES)

    def to_dict(self) -> dict[str, Any]:
        return {"gpus": self.gpus, **{k: getattr(self, k) for k in DEGREES}, "fsdp": self.fsdp}


def _positive(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ParallelError(f"{what} must be a positive integer, got {v!r}")
    if not 1 <= v <= MAX_GPUS:
        raise ParallelError(f"{what} must be between 1 and {MAX_GPUS:,}, got {v}")
    return v


def _parse_spec(spec: str) -> dict[str, int]:
    items: dict[str, int] = {}
    if not spec.strip():
        raise ParallelError("--parallel is empty: use KEY=N items, e.g. ulysses=4,ring=2,cfg=1,tp=1")
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or not key:
            raise ParallelError(f"bad --parallel item {part.strip()!r}: use KEY=N, e.g. ulysses=4,ring=2,cfg=1,tp=1")
        if key not in DEGREES:
            close = difflib.get_close_matches(key, DEGREES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ParallelError(f"unknown --parallel key {key!r}{hint}; keys: {', '.join(DEGREES)}")
        if key in items:
            raise ParallelError(f"--parallel names {key} twice")
        if not re.fullmatch(r"[+-]?\d{1,20}", value):
            raise ParallelError(f"--parallel {key}={value!r} is not an integer")
        n = int(value)
        if n < 1:
            raise ParallelError(f"--parallel {key}={n}: a degree must be a positive integer (1 = not split)")
        if n > MAX_GPUS:
            raise ParallelError(f"--parallel {key}={n} is beyond {MAX_GPUS:,} GPUs")
        items[key] = n
    return items


def plan_passes(passes_per_step: int) -> int:
    """The passes per step a plan splits: CFG's one or two; guidance beyond CFG (LTX-2: CFG batched, then STG and
    modality forwards, each a denoising stage of its own) is no cond/uncond pair, so each stage runs one forward per
    step on every GPU, like a one-pass workload."""
    return passes_per_step if passes_per_step <= 2 else 1


def parse_plan(gpus: int, spec: str | None, *, passes_per_step: int, fsdp: bool = False,
               heads: int | None = None, one_pass_why: str | None = None) -> ParallelPlan:
    """``--gpus N --parallel ulysses=U,ring=R,cfg=C,tp=T [--fsdp]`` -> a checked :class:`ParallelPlan`.

    Omitted keys are 1, except ``ulysses``, which takes what the others leave of N. With no spec:
    cfg=2 when the model runs two passes per step and N is even, the rest Ulysses; given ``heads``,
    the Ulysses degree is the largest that divides the heads and ring takes the rest (Ulysses
    scatters whole heads).  Every impossible plan is one :class:`ParallelError`; ``one_pass_why`` replaces
    the generic reason a one-pass workload refuses cfg=2.
    """
    gpus = _positive(gpus, "--gpus")
    if passes_per_step not in (1, 2):
        raise ParallelError(f"passes per step must be 1 or 2 (classifier-free guidance), got {passes_per_step!r}")
    if not isinstance(fsdp, bool):
        raise ParallelError(f"fsdp must be true or false, got {fsdp!r}")
    if spec is None:
        cfg = 2 if passes_per_step == 2 and gpus % 2 == 0 else 1
        rest = gpus // cfg
        ulysses = math.gcd(rest, heads) if heads else rest
        plan = ParallelPlan(gpus, ulysses=ulysses, ring=rest // ulysses, cfg=cfg, fsdp=fsdp)
    else:
        if not isinstance(spec, str):
            raise ParallelError(f"--parallel takes a string like ulysses=4,ring=2, got {spec!r}")
        items = _parse_spec(spec)
        if "ulysses" not in items:
            others = items.get("ring", 1) * items.get("cfg", 1) * items.get("tp", 1)
            if gpus % others:
                raise ParallelError(f"ring x cfg x tp = {others} does not divide --gpus {gpus}; "
                                    "the degrees must multiply to --gpus")
            items["ulysses"] = gpus // others
        plan = ParallelPlan(gpus, fsdp=fsdp, **items)
    if plan.cfg > 2:
        raise ParallelError(f"cfg={plan.cfg}: classifier-free guidance runs 2 passes per step, so cfg is 1 or 2")
    if plan.cfg == 2 and passes_per_step != 2:
        raise ParallelError(one_pass_why or "cfg=2 splits the two passes of a guided step over two GPU groups, but this "
                            "workload runs one pass per step (guidance scale <= 1, or CFG batched into one forward); use "
                            "cfg=1 and split it with ulysses/ring (or tp) instead")
    product = plan.ulysses * plan.ring * plan.cfg * plan.tp
    if product != gpus:
        raise ParallelError(f"ulysses={plan.ulysses} x ring={plan.ring} x cfg={plan.cfg} x tp={plan.tp} = {product} "
                            f"GPUs, but --gpus is {gpus}; the degrees must multiply to --gpus")
    if fsdp and gpus == 1:
        raise ParallelError("--fsdp shards the weights over the GPUs and needs --gpus > 1 "
                            "(Wan2.1 generate.py: dit_fsdp is 'not supported in non-distributed environments')")
    if fsdp and plan.tp > 1:
        raise ParallelError(f"--fsdp with tp={plan.tp}: tensor parallelism and fully sharded weights cannot be "
                            "combined (xDiT FullyShardConfig asserts tp_degree == 1 or fs_degree == 1)")
    return plan


@dataclass(frozen=True)
class ModelDims:
    """The sizes a plan must fit (from the model config and the workload geometry)."""

    heads: int
    head_dim: int
    hidden: int
    ffn: int | None
    layers: int
    text_len: int
    tokens: int  # video/image tokens of one forward (before padding)


def check_plan(plan: ParallelPlan, dims: ModelDims) -> None:
    """One :class:`ParallelError` when the model cannot be split as ``plan`` says.

    * Ulysses scatters whole heads: ``heads % ulysses == 0`` (Wan2.1 generate.py asserts
      ``num_heads % ulysses_size == 0``; xDiT's all-to-all scatters the head dimension).
    * TP splits heads and the hidden/FFN widths: ``heads % (ulysses*tp)``, ``hidden % tp``, ``ffn % tp``.
    * The sequence needs no divisibility: it is padded to a multiple of U*R (Wan2.1 text2video.py,
      xDiT ``_chunk_and_pad_sequence``); per-GPU token counts are ``ceil(tokens / (U*R))``.
    """
    for name in ("heads", "head_dim", "hidden", "layers", "tokens"):
        v = getattr(dims, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ParallelError(f"model dims: {name} must be a positive integer, got {v!r}")
    u, t = plan.ulysses, plan.tp
    if dims.heads % u:
        g = math.gcd(dims.heads, u)
        raise ParallelError(
            f"ulysses={u} does not divide the model's {dims.heads} attention heads (Ulysses gives each GPU whole "
            f"heads; Wan2.1 generate.py asserts num_heads % ulysses_size == 0); try ulysses={g},ring={plan.ring * u // g} "
            "(ring splits the sequence instead)")
    if dims.heads % (u * t):
        raise ParallelError(f"ulysses={u} x tp={t} = {u * t} does not divide the model's {dims.heads} attention heads "
                            "(both give each GPU whole heads)")
    if dims.hidden % t:
        raise ParallelError(f"tp={t} does not divide the hidden size {dims.hidden}")
    if dims.ffn is not None and dims.ffn % t:
        raise ParallelError(f"tp={t} does not divide the FFN size {dims.ffn}")


# -- per-GPU work ---------------------------------------------------------------------------
@dataclass(frozen=True)
class NodeView:
    """One evaluated graph node, as the deployment model needs it (one instance; ``replicas`` instances per forward).

    ``shape``: attention ``b, h, lq, lk, d, dv``; matmul ``b, m, n, k`` (input ``b*m*k`` elements, weight
    ``n*k``).  ``seq_split``: the cost scales with the video token sequence.  ``tp_role``: ``column`` /
    ``row`` for linear layers under TP, ``sharded`` for nodes that work on a column-parallel output
    (activation, q/k norm, RoPE), None otherwise.
    """

    name: str
    target: str
    module: str
    family: str
    category: str
    replicas: int
    tensor_core_flops: int
    cuda_core_flops: int
    bytes_read: int
    bytes_written: int
    shape: Mapping[str, int]
    seq_split: bool
    out_bytes: int
    itemsize: int
    tp_role: str | None = None


@dataclass(frozen=True)
class BlockView:
    """An FSDP unit: a repeated block, or (``root=True``) the rest of the model."""

    id: str
    weight_bytes: int
    root: bool = False


@dataclass(frozen=True)
class NodeShare:
    """One node's work on one GPU (per instance): integers rounded up from ``flops_scale`` etc."""

    name: str
    module: str
    category: str
    replicas: int
    rule: str  # how it was split: self_attention / cross_attention / sequence / replicated (+ tp role)
    tensor_core_flops: int
    cuda_core_flops: int
    bytes_read: int
    bytes_written: int
    flops_scale: Fraction  # per-GPU FLOPs / single-GPU FLOPs

    def cost(self) -> dict[str, int]:
        """The node's per-GPU metrics, keyed as a report node's ``per_forward``."""
        return {"tensor_core_flops": self.tensor_core_flops, "cuda_core_flops": self.cuda_core_flops,
                "bytes_read": self.bytes_read, "bytes_written": self.bytes_written}


@dataclass(frozen=True)
class PlanResult:
    """What each GPU computes, holds and sends under ``plan``."""

    plan: ParallelPlan
    nodes: tuple[NodeShare, ...]
    per_forward: tuple[Collective, ...]  # each GPU, every forward it runs
    per_step: tuple[Collective, ...]  # once per denoising step (CFG all-gather)
    per_generation: tuple[Collective, ...]  # once per generation (FSDP root unit)
    forwards_per_step: int  # forwards each GPU runs per step: passes / cfg
    tokens_per_gpu: int  # ceil(tokens / (U*R))
    weight_bytes: int  # on one GPU alone
    weight_bytes_per_gpu: int  # at the peak (FSDP: shards + root + gathered blocks)
    activation_scale: Fraction  # per-GPU token share: ceil(S/P)/S
    notes: tuple[str, ...] = field(default=())

    def generation_collectives(self, steps: int) -> tuple[Collective, ...]:
        """Every collective of one generation of ``steps`` steps, ``count`` scaled to it."""
        per_forward = self.forwards_per_step * steps
        return (*(replace(c, count=c.count * per_forward) for c in self.per_forward),
                *(replace(c, count=c.count * steps) for c in self.per_step), *self.per_generation)

    def compute_totals(self) -> dict[str, int]:
        """Per-GPU metrics of one forward (every node x its replicas)."""
        keys = ("tensor_core_flops", "cuda_core_flops", "bytes_read", "bytes_written")
        return {k: sum(getattr(n, k) * n.replicas for n in self.nodes) for k in keys}


def _ceil(x: Fraction) -> int:
    return math.ceil(x)


def _block_pattern(module: str) -> str:
    """``transformer.blocks.7.attn1.to_out.0`` -> ``transformer.blocks.*.attn1.to_out.0``: the first index is the
    repeated block's (one name for every block); later ones are the block's own modules."""
    return re.sub(r"\.\d+(?=\.|$)", ".*", module, count=1)


def _need(n: NodeView, keys: str) -> dict[str, int]:
    out = {}
    for k in keys.split():
        v = n.shape.get(k)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ParallelError(f"node {n.name} ({n.module}): its shape needs a positive integer {k!r}, "
                                f"got {dict(n.shape)!r}")
        out[k] = v
    return out


class _Split:
    """Builds the per-node shares and the collectives of one forward."""

    def __init__(self, plan: ParallelPlan, tokens: int):
        self.plan, self.tokens = plan, tokens
        self.p, self.t = plan.sp, plan.tp
        self.collectives: list[Collective] = []
        self.notes: list[str] = []

    def pad(self, length: int) -> int:
        """Per-GPU rows of a length-``length`` sequence split P ways (zero-padded to a multiple of P)."""
        return -(-length // self.p)

    def attention(self, n: NodeView, *, self_attention: bool) -> NodeShare:
        s = _need(n, "b h lq lk d")
        b, h, lq, lk, d = s["b"], s["h"], s["lq"], s["lk"], s["d"]
        dv = _need(n, "dv")["dv"] if "dv" in n.shape else d
        p, t, u, r = self.p, self.t, self.plan.ulysses, self.plan.ring
        if h % (u * t if self_attention else t):
            raise ParallelError(f"node {n.name} ({n.module}): its {h} heads do not split over "
                                f"{'ulysses x tp = ' + str(u * t) if self_attention else 'tp = ' + str(t)} GPUs")
        kv = b * h * lk * (d + dv) * n.itemsize
        rest = max(n.bytes_read - kv, 0)
        kv = min(kv, n.bytes_read)
        q_scale = Fraction(self.pad(lq) * p, lq) / (p * t)  # queries: this GPU's shard, its heads
        if self_attention:
            kv_scale = Fraction(self.pad(lk) * p, lk) / (u * t)  # K/V: every (padded) key of its H/(U*T) heads
            # H/(U*T) heads x Lq_pad/R queries x Lk_pad keys of H x Lq x Lk
            scale = Fraction(self.pad(lq) * p * self.pad(lk) * p, lq * lk) / (u * r * t)
            rule = "self_attention"
        else:
            kv_scale = Fraction(1, t)  # text K/V: replicated, only split by TP heads
            scale = q_scale
            rule = "cross_attention"
        if self_attention and p > 1:
            self._ulysses_ring(n, b, h, lq, lk, d, dv)
        return NodeShare(
            n.name, n.module, n.category, n.replicas, rule + ("" if t == 1 else " + tp heads"),
            _ceil(n.tensor_core_flops * scale), _ceil(n.cuda_core_flops * scale),
            _ceil(rest * q_scale + kv * kv_scale), _ceil(n.bytes_written * q_scale), scale)

    def _ulysses_ring(self, n: NodeView, b: int, h: int, lq: int, lk: int, d: int, dv: int) -> None:
        u, r, t, e = self.plan.ulysses, self.plan.ring, self.t, n.itemsize
        where = _block_pattern(n.module)
        # each rank holds [b, S/P, h/T, d] before the all-to-all and [b, S/R, h/(U*T), d] after: same bytes
        heads = h // t
        q, k = b * heads * self.pad(lq) * d * e, b * heads * self.pad(lk) * d * e
        v, o = b * heads * self.pad(lk) * dv * e, b * heads * self.pad(lq) * dv * e
        if u > 1:
            for name, size, when in (("q", q, "before"), ("k", k, "before"), ("v", v, "before"), ("o", o, "after")):
                self.collectives.append(Collective("all_to_all", size, u, n.replicas,
                                                   f"ulysses {name} all-to-all {when} {where}"))
        if r > 1:
            self.collectives.append(Collective(
                "p2p", k + v, r, (r - 1) * n.replicas,
                f"ring K/V send/recv per ring step in {where} ({r - 1} of {r} steps)", True, RING_STEP))

    def other(self, n: NodeView) -> NodeShare:
        s = Fraction(self.pad(self.tokens) * self.p, self.tokens) / self.p if n.seq_split else Fraction(1)
        role, t = n.tp_role if self.t > 1 else None, self.t
        tc, cc = Fraction(n.tensor_core_flops), Fraction(n.cuda_core_flops)
        written = Fraction(n.bytes_written)
        has_shape = all(isinstance(n.shape.get(k), int) for k in ("m", "n", "k"))
        if n.family == "matmul" and has_shape:
            m, k = n.shape["m"], n.shape["k"]
            rows = _need(n, "b")["b"] * m if "b" in n.shape else m
            act = min(rows * k * n.itemsize, n.bytes_read)  # the input rows
            weight = Fraction(n.bytes_read - act)  # weight (+ bias): read whole by every GPU
        else:
            act, weight = n.bytes_read, Fraction(0)
            if n.family == "matmul" and n.seq_split:
                self.notes.append(f"{n.name} ({n.module}): no matmul shape, its weight reads were scaled with the sequence")
        read = act * s + weight
        flops_scale = s
        if role == "column":
            flops_scale, read, written = s / t, act * s + weight / t, written * s / t
        elif role == "row":
            flops_scale, read, written = s / t, act * s / t + weight / t, written * s  # full-size partial sums
            self.collectives.append(Collective("all_reduce", _ceil(n.out_bytes * s), t, n.replicas,
                                               f"tp all-reduce of the row-parallel {_block_pattern(n.module)} output"))
        elif role == "sharded":
            flops_scale, read, written = s / t, (act * s + weight) / t, written * s / t
        else:
            written = written * s
        rule = ("sequence" if n.seq_split else "replicated") + (f" + tp {role}" if role else "")
        return NodeShare(n.name, n.module, n.category, n.replicas, rule,
                         _ceil(tc * flops_scale), _ceil(cc * flops_scale), _ceil(read), _ceil(written), flops_scale)


def _check_node(n: NodeView) -> None:
    for k in ("replicas", "tensor_core_flops", "cuda_core_flops", "bytes_read", "bytes_written", "out_bytes", "itemsize"):
        v, least = getattr(n, k), 1 if k in ("replicas", "itemsize") else 0
        if isinstance(v, bool) or not isinstance(v, int) or v < least:
            raise ParallelError(f"node {n.name} ({n.module}): {k} must be an integer >= {least}, got {v!r}")
    if n.tp_role is not None and n.tp_role not in TP_ROLES:
        raise ParallelError(f"node {n.name} ({n.module}): tp_role must be one of {', '.join(TP_ROLES)} or None, "
                            f"got {n.tp_role!r}")


def _fsdp(blocks: Sequence[BlockView], plan: ParallelPlan) -> tuple[list[Collective], list[Collective], int, list[str]]:
    n = plan.gpus
    roots = [b for b in blocks if b.root]
    units = [b for b in blocks if not b.root]
    per_forward: list[Collective] = []
    per_gen = [Collective("all_gather", -(-b.weight_bytes // n) * n, n, 1,
                          f"fsdp all-gather of the root unit {b.id} (first forward; FSDP1 keeps the root gathered)")
               for b in roots if b.weight_bytes]
    # block 0 has no block before it to hide behind; the others prefetch during their predecessor
    groups: dict[tuple[str, int], int] = {}  # (block list, padded bytes) -> blocks: Flux's double and single blocks apart
    for i, b in enumerate(units):
        size = -(-b.weight_bytes // n) * n  # the flat parameter is padded to a multiple of N
        if i == 0:
            per_forward.append(Collective("all_gather", size, n, 1, f"fsdp all-gather of {b.id} (first block, exposed)"))
        else:
            key = (_block_pattern(b.id), size)
            groups[key] = groups.get(key, 0) + 1
    for (pattern, size), count in groups.items():
        per_forward.append(Collective("all_gather", size, n, count,
                                      f"fsdp all-gather of {pattern} (prefetched during the previous block)", True, BLOCK))
    shards = sum(-(-b.weight_bytes // n) for b in units)
    gathered = sorted((b.weight_bytes for b in units), reverse=True)[:FSDP_GATHERED_BLOCKS]
    per_gpu = sum(b.weight_bytes for b in roots) + shards + sum(gathered)
    notes = [
        f"FSDP: each block's weights sharded over all {n} GPUs (Wan2.1 wan/distributed/fsdp.py: FULL_SHARD, one unit per "
        "block, the default process group); the root unit stays gathered after the first forward (torch FSDP1 "
        "_post_forward_reshard keeps the root's parameters); a GPU holds its shards + the root + "
        f"{FSDP_GATHERED_BLOCKS} gathered blocks (torch FSDP1 limit_all_gathers: the computing block and the prefetched one)",
        "FSDP all-gathers are counted at the blocks' stored bytes; Wan's MixedPrecision(param_dtype=bf16) gathers fp32 "
        "parameters (modulation table, norm3) in bf16, a little less",
    ]
    return per_forward, per_gen, per_gpu, notes


def per_gpu(nodes: Sequence[NodeView], blocks: Sequence[BlockView], plan: ParallelPlan, passes_per_step: int, *,
            dims: ModelDims | None = None, output_bytes: int | None = None) -> PlanResult:
    """Each GPU's share of every node, the collectives of a forward/step/generation, and per-GPU memory.

    ``nodes`` in graph order (the last node with ``seq_split`` is where the sequence is gathered, the
    last node is the model's output: the noise prediction, unless ``output_bytes`` says otherwise);
    ``blocks``: the FSDP units (every repeated block and a ``root`` for the rest of the model);
    ``dims``: checked with :func:`check_plan`, and its ``tokens`` pads the sequence split (without it,
    the first self-attention's query length is the token count).
    """
    if passes_per_step not in (1, 2):
        raise ParallelError(f"passes per step must be 1 or 2, got {passes_per_step!r}")
    if plan.cfg == 2 and passes_per_step != 2:
        raise ParallelError("cfg=2 needs two passes per step")
    if not nodes:
        raise ParallelError("no graph nodes to split over GPUs")
    for n in nodes:
        _check_node(n)
    for b in blocks:
        if isinstance(b.weight_bytes, bool) or not isinstance(b.weight_bytes, int) or b.weight_bytes < 0:
            raise ParallelError(f"block {b.id}: weight_bytes must be a non-negative integer, got {b.weight_bytes!r}")
    if dims is not None:
        check_plan(plan, dims)
        tokens = dims.tokens
    else:
        attn = [n for n in nodes if n.family == "attention" and n.category == "self_attention_core" and n.seq_split]
        tokens = int(attn[0].shape.get("lq", 0)) if attn else 0
        if tokens < 1 and plan.sp > 1:
            raise ParallelError("sequence parallelism needs the token count: pass dims, or a self-attention node with lq")
    tokens = max(tokens, 1)
    split = _Split(plan, tokens)
    shares = []
    for n in nodes:
        if n.family == "attention" and n.seq_split:
            shares.append(split.attention(n, self_attention=n.category != "cross_attention_core"))
        else:
            shares.append(split.other(n))
    per_forward = list(split.collectives)
    notes = [
        f"plan {plan.spec()}{' + fsdp' if plan.fsdp else ''} on {plan.gpus} GPUs: sequence split {plan.sp} ways "
        f"({-(-tokens // plan.sp)} of {tokens} tokens per GPU{', zero-padded' if tokens % plan.sp else ''}), "
        f"{passes_per_step // plan.cfg} forward(s) per GPU per step",
        "cross-attention text K/V and the timestep/text embeddings run on every GPU (replicated, no communication)",
        *dict.fromkeys(split.notes),
    ]
    if plan.sp > 1:
        last = [n for n in nodes if n.seq_split]
        if last:
            head = last[-1]
            gathered = _ceil(head.out_bytes * Fraction(split.pad(tokens) * plan.sp, tokens))
            per_forward.append(Collective("all_gather", gathered, plan.sp, 1,
                                          f"sequence all-gather after {head.module} (once per forward)"))
            notes.append("after the gather the latents are whole on every GPU: the scheduler step and the VAE "
                         "input need no further communication (Wan2.1 decodes on rank 0; xDiT on every rank)")
    if plan.ulysses > 1:
        notes.append("Ulysses: q, k, v all-to-all before and o after each self-attention, one call each "
                     "(xDiT use_pack_qkv / combine_qkv_a2a default False)")
    if plan.ring > 1:
        notes.append("ring: K/V passed step by step (yunchang P2P, the Wan2.1 path); xDiT's torch ring path "
                     "all-gathers K/V once instead")
    if plan.tp > 1:
        notes.append("TP: Wan's q/k RMSNorm spans all heads, so a TP split of it would need a per-token all-reduce "
                     "that is not counted")
    per_step: list[Collective] = []
    if plan.cfg == 2:
        out = nodes[-1].out_bytes if output_bytes is None else output_bytes
        per_step.append(Collective("all_gather", 2 * out, 2, 1, "cfg all-gather of the two noise predictions (per step)"))
    per_gen: list[Collective] = []
    total = sum(b.weight_bytes for b in blocks)
    if plan.fsdp and plan.gpus > 1 and blocks:
        fwd, per_gen, weights_gpu, fsdp_notes = _fsdp(blocks, plan)
        per_forward += fwd
        notes += fsdp_notes
    else:
        weights_gpu = total
        if plan.tp > 1:
            tp_weights = Fraction(0)
            for n in nodes:
                if n.tp_role in ("column", "row") and n.family == "matmul" and all(
                        isinstance(n.shape.get(k), int) for k in ("m", "k")):
                    rows = _need(n, "b")["b"] * n.shape["m"] if "b" in n.shape else n.shape["m"]
                    act = min(rows * n.shape["k"] * n.itemsize, n.bytes_read)
                    tp_weights += (n.bytes_read - act) * n.replicas
            weights_gpu = _ceil(total - tp_weights * (1 - Fraction(1, plan.tp)))
            notes.append("TP: column/row linear weights (read bytes less their input) split over the TP group; "
                         "the other weights replicated")
    merged: dict[tuple[Any, ...], int] = {}
    for c in per_forward:
        key = (c.kind, c.bytes, c.ranks, c.what, c.overlappable, c.window)
        merged[key] = merged.get(key, 0) + c.count
    per_forward = [Collective(k[0], k[1], k[2], count, k[3], k[4], k[5]) for k, count in merged.items()]
    return PlanResult(
        plan=plan,
        nodes=tuple(shares),
        per_forward=tuple(per_forward),
        per_step=tuple(per_step),
        per_generation=tuple(per_gen),
        forwards_per_step=passes_per_step // plan.cfg,
        tokens_per_gpu=split.pad(tokens),
        weight_bytes=total,
        weight_bytes_per_gpu=weights_gpu,
        activation_scale=Fraction(split.pad(tokens), tokens),
        notes=tuple(notes),
    )


# -- time ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class OverlapRules:
    """Compute seconds per occurrence that an overlappable collective of each window may hide behind.

    ``ring_step``: one GPU's self-attention compute per ring step (attention / R); ``block``: one
    block's compute on one GPU.  A window not given hides nothing.
    """

    windows: Mapping[str, float] = field(default_factory=dict)
    rules: tuple[str, ...] = OVERLAP_RULES


def overlap_windows(result: PlanResult, seconds: Mapping[str, float], blocks: Sequence[BlockView]) -> OverlapRules:
    """The windows of :class:`OverlapRules` from per-GPU seconds of each node (one instance, by node name)."""
    attn = [n for n in result.nodes if n.rule.startswith("self_attention")]
    windows: dict[str, float] = {}
    reps = sum(n.replicas for n in attn)
    if reps:
        windows[RING_STEP] = sum(seconds.get(n.name, 0.0) * n.replicas for n in attn) / reps / result.plan.ring
    units = [b.id for b in blocks if not b.root]
    if units:
        inside = [n for n in result.nodes if any(n.module == u or n.module.startswith(u + ".") for u in units)]
        windows[BLOCK] = sum(seconds.get(n.name, 0.0) * n.replicas for n in inside) / len(units)
    return OverlapRules(windows)


class CollectiveTime(NamedTuple):
    collective: Collective
    seconds: float  # one call
    exposed: float  # all calls: on the critical path
    overlapped: float  # all calls: hidden behind compute


class DeploymentTime(NamedTuple):
    total: float
    exposed_comm: float
    overlapped_comm: float


LinkChoice = LinkLike | Callable[[Collective], LinkLike]


def collective_times(collectives: Sequence[Collective], link: LinkChoice, model: CommModel,
                     overlap_rules: OverlapRules | None = None) -> tuple[CollectiveTime, ...]:
    """Each collective's time per call, and its exposed / overlapped seconds over its ``count`` calls.

    ``link``: the link every collective uses, or a function of the collective (e.g.
    ``lambda c: pick_link(hw, c.ranks)`` where the fabric depends on the group size).
    """
    windows = (overlap_rules or OverlapRules()).windows
    out = []
    for c in collectives:
        lk = link(c) if callable(link) else link
        t = collective_seconds(c, lk, model)
        hidden = min(t, max(windows.get(c.window, 0.0), 0.0)) if c.overlappable else 0.0
        out.append(CollectiveTime(c, t, (t - hidden) * c.count, hidden * c.count))
    return tuple(out)


def deployment_seconds(compute_seconds_per_gpu: float, collectives: Sequence[Collective], link: LinkChoice,
                       model: CommModel, overlap_rules: OverlapRules | None = None) -> DeploymentTime:
    """(total, exposed communication, overlapped communication) seconds of one GPU.

    ``total = compute + exposed``; a collective is exposed unless it is ``overlappable`` and its
    window's compute can hide it (``exposed = max(0, comm - window)`` per call; see :data:`OVERLAP_RULES`).
    ``compute_seconds_per_gpu`` and the collectives' counts must cover the same span (a forward, a step...).
    """
    rows = collective_times(collectives, link, model, overlap_rules)
    exposed = sum(r.exposed for r in rows)
    overlapped = sum(r.overlapped for r in rows)
    return DeploymentTime(compute_seconds_per_gpu + exposed, exposed, overlapped)
