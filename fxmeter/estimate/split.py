"""How a stage's graph splits over GPUs: the adapter's rules, each node as the plan model sees it, the
FSDP units, the checked plan of a request, and the kernel call one GPU makes for its share of a node.

* a node is split with the token sequence when its cost depends on one of the adapter's sequence
  symbols (``Adapter.sequence_symbols``, read off the node's own formulas) and it comes after the
  sequence is split, right before the first repeated block (Wan2.1 ``usp_dit_forward`` chunks the
  sequence after the patch, time and text embeddings; xDiT's Wan wrapper after the patch embedding and
  condition embedder, ``_chunk_and_pad_sequence``); joint-attention text tokens go with it when their
  count divides the SP degree (xDiT ``split_text_embed_in_sp``);
* its TP role comes from the adapter's table (``Adapter.tp_roles``);
* the repeated blocks (children of the top-level ``ModuleList``) are the FSDP units, the rest the root
  unit (Wan2.1 ``wan/distributed/fsdp.py``: one unit per block).

Pure Python: no torch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from fxmeter.errors import ParallelError
from fxmeter.estimate.evaluate import NodeCost, StageCost
from fxmeter.estimate.kernels import KernelCall
from fxmeter.estimate.metrics import Metrics
from fxmeter.estimate.parallel import (
    BlockView,
    ModelDims,
    NodeShare,
    NodeView,
    ParallelPlan,
    check_plan,
    parse_plan,
    plan_passes,
)
from fxmeter.estimate.predict import call_of

if TYPE_CHECKING:
    from fxmeter.model.adapters import Geometry
    from fxmeter.model.registry import ResolvedModel
    from fxmeter.model.workload import Workload

#: bytes per element of the dtypes a graph node carries
ITEMSIZE = {"bfloat16": 2, "float16": 2, "float32": 4, "float64": 8, "float8_e4m3fn": 1, "float8_e5m2": 1,
            "int8": 1, "uint8": 1, "int32": 4, "int64": 8, "bool": 1}


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


def rules_of(dims: Mapping[str, Any], sequence_symbols: Sequence[str], joint_text_symbols: Sequence[str] = (),
             tp_roles: Sequence[tuple[str, str]] = ()) -> SplitRules:
    """:class:`SplitRules` from an adapter's ``model_dims`` mapping and tables."""
    try:
        md = ModelDims(**{k: dims[k] for k in ("heads", "head_dim", "hidden", "ffn", "layers", "text_len", "tokens")})
    except KeyError as e:
        raise ParallelError(f"model dims lack {e.args[0]!r}: cannot check a multi-GPU plan") from None
    return SplitRules(md, frozenset(sequence_symbols), frozenset(joint_text_symbols), tuple(tp_roles))





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


def _widths(cost: StageCost) -> frozenset[int]:
    """The per-token widths of a graph: every GEMM's ``k`` and ``n`` and every attention's ``h*d`` / ``h*dv``."""
    out: set[int] = set()
    for n in cost.nodes:
        s = n.shape
        if n.family in ("matmul", "conv"):
            out |= {v for k in ("k", "n") if isinstance(v := s.get(k), int) and v > 0}
        elif n.family == "attention" and isinstance(s.get("h"), int):
            out |= {s["h"] * v for k in ("d", "dv") if isinstance(v := s.get(k), int) and v > 0}
    return frozenset(out)


def _lengths(cost: StageCost, tokens: int) -> tuple[int, ...]:
    """The sequence lengths a graph's attentions run over, beyond the tokens: a padded or joint sequence
    (HunyuanVideo-1.5 pads video + text to a multiple; its masks and concatenations have that length)."""
    return tuple(sorted({q for n in cost.nodes if n.family == "attention" and isinstance(q := n.shape.get("lq"), int)
                         and q > tokens}))


def static_kind(n: NodeCost, tokens: int, text_len: int, widths: frozenset[int], *, joint: bool,
                lengths: Sequence[int] = ()) -> str | None:
    """What a node of a static trace (concrete shapes, no workload symbols) runs over: ``"seq"`` (the token
    sequence: the video/image tokens, or those and the text as one joint sequence), ``"text"`` (the text tokens
    alone), or None (neither, or a node that moves nothing).

    An attention's queries cover the sequence (at least its tokens: HunyuanVideo-1.5 pads the joint sequence);
    a GEMM's rows or the elements a node writes (else, for a node fused away under ``--compile``, its CUDA-core
    FLOPs or the elements it reads) are a multiple of the sequence length; where a count is a multiple of both the
    sequence and the text length (FLUX: 512 text tokens, 4096 image tokens), the length that leaves a per-token
    width of the graph (a GEMM's ``k``/``n``, an attention's ``h*d``) names it.  A count can still be a multiple
    by chance (FLUX's [1, 6*3072] modulation is 4 x 4,608 joint tokens): such nodes move next to nothing, and the
    rule is checked against the workload symbols of the dynamically traced models, which deploy to the same seconds
    when read this way (tests/test_parallel_static.py).  ``joint``: the model runs text and video tokens as one
    sequence somewhere (joint attention, single-stream blocks); ``lengths``: the longer sequences its attentions
    run over (:func:`_lengths`)."""
    s = n.shape
    seqs = (tokens, *((tokens + text_len,) if joint and text_len else ()), *lengths)
    if n.family == "attention" and isinstance(s.get("lq"), int):
        q = s["lq"]  # the queries: the sequence (padded or joined with the text: at least the tokens), or the text
        return "seq" if q >= tokens or any(q % L == 0 for L in seqs) else "text" if text_len and q % text_len == 0 else None
    if n.family in ("matmul", "conv") and isinstance(s.get("m"), int):
        q = int(s.get("b", 1)) * s["m"] if n.family == "matmul" else s["m"]
    else:
        size = ITEMSIZE.get(n.dtype or "bfloat16", 2)
        q = n.cost.bytes_written // size or n.cost.cuda_core_flops or n.cost.bytes_read // size
    if q <= 0:
        return None
    is_seq = [L for L in seqs if q % L == 0]
    # text rows of a width of the graph (a [B, 6*D] modulation is a multiple of 512 text tokens, but no text rows)
    is_text = bool(text_len) and q % text_len == 0 and (n.family in ("matmul", "conv") or q // text_len in widths)
    if is_seq and is_text:
        seq_width = any(q // L in widths for L in is_seq)
        if (q // text_len in widths) and not seq_width:
            return "text"
        return "seq"
    return "seq" if is_seq else "text" if is_text else None


def node_views(cost: StageCost, rules: SplitRules, plan: ParallelPlan) -> tuple[list[NodeView], list[BlockView], ModelDims]:
    """The stage's graph nodes and FSDP units as :mod:`~fxmeter.estimate.parallel` takes them, and the dims
    it splits (with joint text tokens in the sequence when they divide the SP degree).

    A dynamic trace says which nodes scale with the sequence by their workload symbols; a static one (its
    forward needs Python ints of the geometry: Wan2.2-TI2V-5B, CogVideoX, LTX-Video...) by its concrete
    shapes (:func:`static_kind`)."""
    dims = rules.dims
    seq = set(rules.sequence_symbols)
    joint = bool(rules.joint_text_symbols and plan.sp > 1 and dims.text_len % plan.sp == 0)
    if joint:
        seq |= rules.joint_text_symbols
        dims = ModelDims(dims.heads, dims.head_dim, dims.hidden, dims.ffn, dims.layers, dims.text_len,
                         dims.tokens + dims.text_len)
    static = cost.trace.get("mode") == "static"
    widths = _widths(cost) if static else frozenset()
    lengths = _lengths(cost, rules.dims.tokens) if static else ()
    joint_model = bool(rules.joint_text_symbols)  # text and video run as one sequence somewhere
    blocks = block_ids(cost)
    first = next((i for i, n in enumerate(cost.nodes) if _inside(n.module, blocks)), len(cost.nodes))
    roles = [(re.compile(p), r) for p, r in rules.tp_roles]
    views = []
    for i, n in enumerate(cost.nodes):
        size = ITEMSIZE.get(n.dtype or "bfloat16", 2)
        if static:
            kind = (static_kind(n, rules.dims.tokens, rules.dims.text_len, widths, joint=joint_model, lengths=lengths)
                    if i >= first else None)
            split = kind == "seq" or (kind == "text" and joint)
        else:
            split = i >= first and bool(n.symbols & seq)
        views.append(NodeView(
            name=n.name, target=n.target, module=n.module, family=n.family, category=n.category, replicas=n.replicas,
            tensor_core_flops=n.cost.tensor_core_flops, cuda_core_flops=n.cost.cuda_core_flops,
            bytes_read=n.cost.bytes_read, bytes_written=n.cost.bytes_written, shape=dict(n.shape),
            seq_split=split, out_bytes=_out_bytes(n, size), itemsize=size,
            tp_role=_role(n.module, cost.root, roles),
        ))
    if plan.tp > 1 and not any(v.tp_role for v in views if v.tensor_core_flops):
        raise ParallelError(f"{cost.diffusers_class} ({cost.root}): no GEMM of its graph matches the adapter's tensor-"
                            "parallel roles, so tp would split nothing; tensor parallelism is not modelled for it")
    return views, _units(cost, blocks), dims


def _units(cost: StageCost, blocks: Sequence[str]) -> list[BlockView]:
    by_id = {m.id: m for m in cost.modules}
    units = [BlockView(b, by_id[b].weight_bytes) for b in blocks]
    rest = cost.weights.weight_bytes - sum(u.weight_bytes for u in units)
    return [BlockView(cost.root, max(rest, 0), root=True), *units]


def scaled_units(units: Sequence[BlockView], total: int) -> list[BlockView]:
    """``units`` with their bytes scaled to add up to ``total`` (the component's weights at ``--precision``):
    each block by the ratio (rounded up), the root unit the rest."""
    have = sum(u.weight_bytes for u in units)
    if have == total or not have:
        return list(units)
    factor = Fraction(total, have)
    blocks = [BlockView(u.id, math.ceil(u.weight_bytes * factor)) for u in units if not u.root]
    roots = [u for u in units if u.root]
    rest = max(total - sum(b.weight_bytes for b in blocks), 0)
    return [*(BlockView(r.id, rest if i == 0 else 0, True) for i, r in enumerate(roots)), *blocks]


def share_metrics(s: NodeShare) -> Metrics:
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
    m = share_metrics(share)
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
                      shape=shape, dtype=base.dtype, launches=base.launches, broadcast=base.broadcast)
    return call, repeats


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
    run = model.passes_per_step(wl)
    passes = plan_passes(run)
    beyond = (f"{model.id} runs {run} transformer passes per step (CFG batched into one forward, STG and modality "
              "guidance as forwards of their own): there is no cond/uncond pair for cfg=2 to split; every pass runs on "
              "all GPUs: use ulysses/ring (or tp)") if run > 2 else None
    # a pipeline that always batches CFG (Allegro, PixArt: batch_factor 2 whatever --batched-cfg says) runs it the same way
    batched = batched_cfg or any(p.batch_factor == 2 for p in model.stages(wl, batched_cfg=batched_cfg, denoise_only=True))
    if batched and passes == 2:
        passes = 1  # one forward of 2x the batch per step (parse_plan refuses cfg=2 on it)
    rules = split_rules(model, geometry)
    main = model.component("transformer")
    if "transformer" not in rules:
        advice = ("leave --gpus out: one GPU is the default, and --gpus 1 asks for a deployment fxmeter cannot "
                  "model for it" if gpus == 1 else "use one GPU (leave --gpus out)")
        raise ParallelError(f"fxmeter does not know how {main.adapter.diffusers_class} splits over GPUs "
                            f"(its adapter has no model_dims); {advice}")
    plan = parse_plan(gpus, spec, passes_per_step=passes, fsdp=fsdp, heads=rules["transformer"].dims.heads,
                      one_pass_why=beyond)
    for name, r in rules.items():
        check_plan(plan, r.dims)
        comp = model.component(name)
        if plan.tp > 1 and not r.tp_roles:
            other = "/".join(["ulysses", "ring"] + (["cfg"] if passes == 2 else []))
            raise ParallelError(f"{comp.adapter.diffusers_class} ({name}): tensor parallelism is not modelled for it "
                                f"(its adapter names no tensor-parallel roles); use {other} instead")
        if plan.sp > 1 and not comp.adapter.sequence_symbols:
            raise ParallelError(f"{comp.adapter.diffusers_class} ({name}) names no sequence symbols: sequence "
                                "parallelism (ulysses/ring) is not modelled for it")
    return plan


__all__ = ["ITEMSIZE", "SplitRules", "block_ids", "gpu_call", "node_views", "plan_for", "rules_of", "scaled_units", "static_kind",
           "share_metrics", "split_rules"]
