"""Memory: the activation liveness walk, weight bytes by dtype, the fit check.

The walk (analysis time) runs over the exported graph in execution order, for
inference (no autograd): each node's output is allocated when it is produced and
freed after its last use; views, ``getitem`` of multi-output ops, inference
dropout, same-dtype casts and in-place ops share the storage of their input;
the forward's inputs (latents, text embeddings, timestep) stay live for the whole
forward (the pipeline holds them); parameters and buffers, and ops that read nothing but them (a cast of a norm
weight, which export may hoist out of its block), are weights, not activations.  It records the live bytes *during* each node (its inputs and its
output together) as a formula of the workload symbols.

Evaluation (warm path, pure Python) turns those formulas into the peak, the node
and module where it happens and the largest live set inside each block.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from fxmeter.cost.formula import FormulaTable
    from fxmeter.model.capture import Capture
    from fxmeter.rules import OpCall

LOG = logging.getLogger(__name__)

#: Op families whose weights ``--precision fp8`` stores in one byte per parameter.
MATMUL_FAMILIES = frozenset({"matmul", "conv"})
_BLOCK = re.compile(r"^(.*?\.[A-Za-z_]\w*\.\d+)(?:\.|$)")


class NodeLike(Protocol):
    """What the walk needs of a graph node (``capture.NodeRecord`` has it)."""

    @property
    def name(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def call(self) -> OpCall: ...
    @property
    def uses(self) -> tuple[str, ...]: ...


def alias_source(rec: NodeLike, view_ops: frozenset[str] | None = None) -> str | None:
    """The value whose storage ``rec``'s output shares, or None for fresh storage.

    Views (``rules.free.VIEW_OPS``, ``getitem`` included), inference dropout, in-place
    ops (``add_``, ``copy_``: they write into their first argument) and casts that do
    not change the dtype (``Tensor.to`` returns self) alias their first input.
    """
    if view_ops is None:
        from fxmeter.rules.free import VIEW_OPS

        view_ops = VIEW_OPS
    if not rec.uses or not rec.call.outputs:
        return None
    t = rec.target
    if t in view_ops or t.startswith(("aten.dropout", "aten.feature_dropout", "aten.alpha_dropout")):
        return rec.uses[0]
    op = t.split(".")[1] if t.count(".") >= 2 else ""
    if op.endswith("_") and not op.startswith("_"):
        return rec.uses[0]
    if t.startswith("aten.to.") or t == "aten.type_as.default":
        args = rec.call.args
        copy = bool(rec.call.kwargs.get("copy", False))
        if args and hasattr(args[0], "dtype") and args[0].dtype == rec.call.outputs[0].dtype and not copy:
            return rec.uses[0]
    return None


def liveness_walk(nodes: Sequence[NodeLike], inputs: Mapping[str, Any], keep_until: Mapping[str, int] | None = None) -> list[Any]:
    """Live activation bytes during each node (its inputs and its output coexist).

    Args:
        nodes: graph nodes in execution order.
        inputs: the forward's input values -> bytes; they stay live throughout.
            Names read by a node but produced by no node and absent here are
            parameters, buffers or constants: weights, not activations.
        keep_until: value -> node index it must stay live to at least (a value that
            the traced block reads and that every replicated block would read again).

    Returns:
        one value (int or sympy expression) per node.
    """
    storage: dict[str, str | None] = {}  # value -> storage id (None: weight memory)
    size: dict[str, Any] = {}  # storage id -> bytes, while allocated
    refs: dict[str, set[str]] = defaultdict(set)  # storage id -> values still to be read
    for name, nbytes in inputs.items():
        storage[name] = name
        size[name] = nbytes
    pinned = set(inputs)
    last_use: dict[str, int] = {}
    for i, rec in enumerate(nodes):
        for u in rec.uses:
            last_use[u] = i
    for u, j in (keep_until or {}).items():
        last_use[u] = max(last_use.get(u, j), j)

    def storage_of(value: str) -> str | None:
        # parameters, buffers and constants (produced by no node, not inputs) are weights
        return storage.get(value)

    def release(value: str) -> Any:
        st = storage.get(value)
        if st is None:
            return 0
        refs[st].discard(value)
        if not refs[st] and st in size and st not in pinned:
            return size.pop(st)
        return 0

    produced = {n.name for n in nodes}
    live: Any = sum(inputs.values(), 0)
    out: list[Any] = []
    for i, rec in enumerate(nodes):
        weight_only = bool(rec.uses) and all(u not in produced and u not in inputs for u in rec.uses)
        if rec.call.outputs and weight_only:
            storage[rec.name] = None  # a transform of parameters alone (e.g. an fp32 cast of a norm weight): weights
        elif rec.call.outputs:
            src = alias_source(rec)
            if src is not None:
                st = storage_of(src)
                storage[rec.name] = st
                if st is not None:
                    refs[st].add(rec.name)
            else:
                nbytes = sum((t.nbytes for t in rec.call.outputs), 0)
                storage[rec.name] = rec.name
                size[rec.name] = nbytes
                refs[rec.name].add(rec.name)
                live = live + nbytes
        out.append(live)
        for u in set(rec.uses):
            if last_use.get(u) == i:
                live = live - release(u)
        if rec.call.outputs and rec.name not in last_use:  # never read: dead (or the forward's output, produced last)
            live = live - release(rec.name)
    return out


def liveness_profile(cap: Capture, table: FormulaTable) -> dict[str, Any]:
    """The walk over a capture, as formula indices (``SymbolicModel.liveness``)."""
    keep: dict[str, int] = {}
    for lst, n in cap.replicas.items():  # values read by block 0 but made outside it: blocks 1..n-1 read them too
        inside = [i for i, r in enumerate(cap.nodes) if r.module == f"{lst}.0" or r.module.startswith(f"{lst}.0.")]
        if n < 2 or not inside:
            continue
        names = {cap.nodes[i].name for i in inside}
        for i in inside:
            for u in cap.nodes[i].uses:
                if u not in names:
                    keep[u] = max(keep.get(u, 0), inside[-1])
    steps = liveness_walk(cap.nodes, cap.inputs, keep)
    return {"after_node": [table.add(v) for v in steps], "model": "v2"}


def matmul_weights(
    nodes: Sequence[NodeLike], families: Sequence[str], replicas: Sequence[int], dtype: str | None = None
) -> dict[str, int]:
    """Parameters (and their bytes) that matmul/conv nodes use as weights, full model.

    A weight is the second operand of ``linear``/``conv`` (any operand of another
    matmul) traced back through views to a parameter (a graph input named ``p_...``
    that no node produces); each is counted once, times its block's replica count.
    With ``dtype``, only weights of that dtype count: the modules diffusers keeps in
    fp32 stay fp32 under ``--precision fp8`` too.
    """
    produced = {n.name: n for n in nodes}

    def root(v: str) -> str:
        for _ in range(64):
            rec = produced.get(v)
            src = alias_source(rec) if rec is not None else None
            if src is None:
                return v
            v = src
        return v

    found: dict[str, tuple[int, int]] = {}
    for rec, fam, n in zip(nodes, families, replicas):
        if fam not in MATMUL_FAMILIES:
            continue
        weights = rec.uses[1:2] if rec.target.startswith(("aten.linear", "aten.conv")) else rec.uses
        tensors = list(rec.call.tensor_args())
        for u in weights:
            r = root(u)
            i = rec.uses.index(u)
            if r in produced or not r.startswith("p_") or r in found or i >= len(tensors):
                continue
            if dtype is not None and tensors[i].dtype != dtype:
                continue
            found[r] = (int(tensors[i].numel) * n, int(tensors[i].nbytes) * n)
    return {"parameters": sum(p for p, _ in found.values()), "bytes": sum(b for _, b in found.values())}


# -- evaluation (pure Python) -------------------------------------------------


def block_of(module_id: str) -> str | None:
    """``transformer.blocks.3.attn1`` -> ``transformer.blocks.3``; None outside numbered lists."""
    m = _BLOCK.match(module_id)
    return m.group(1) if m else None


def activation_summary(nodes: Sequence[Mapping[str, Any]], after_node: Sequence[int], vals: Sequence[int],
                       replicas: Mapping[str, int]) -> dict[str, Any]:
    """Peak live bytes, where it happens, and the largest live set inside each block."""
    from fxmeter.report.summary import natural_key

    peak, at = 0, None
    per_block: dict[str, int] = {}
    for i, idx in enumerate(after_node):
        v = vals[idx]
        if v > peak:
            peak, at = v, nodes[i]
        b = block_of(nodes[i]["module"])
        if b is not None and v > per_block.get(b, -1):
            per_block[b] = v
    for lst, count in replicas.items():  # replicated blocks share block 0's live set
        first = per_block.get(f"transformer.{lst}.0")
        if first is not None:
            per_block.update({f"transformer.{lst}.{k}": first for k in range(1, count)})
    replicated = [f"transformer.{k}" for k in sorted(replicas)]
    note = (
        f"blocks of {', '.join(replicated)} were traced once and replicated: every block has the live set of "
        f"{', '.join(f'{r}.0' for r in replicated)}"
        if replicated
        else "every block traced"
    )
    return {
        "activation_peak_bytes": peak,
        "peak_activation_bytes": peak,
        "activation_peak_node": at["name"] if at else None,
        "activation_peak_module": at["module"] if at else None,
        "blocks": {  # -> report["activation_blocks"]
            "live_bytes_max": dict(sorted(per_block.items(), key=lambda kv: natural_key(kv[0]))),
            "note": note + "; the largest live set inside each block, bytes",
        },
    }


def weights_for_precision(meta: Mapping[str, Any], precision: str) -> dict[str, Any]:
    """Weight bytes (total and by dtype) with matmul/conv weights at ``precision``.

    ``bf16`` keeps the traced dtypes; ``fp8`` stores every matmul/conv weight in one
    byte per parameter (float8_e4m3fn) and leaves biases, norms, embeddings and the
    modules diffusers keeps in fp32 as they are.
    """
    total = int(meta["weight_bytes"])
    by_dtype = dict(meta["weight_bytes_by_dtype"])
    if precision != "fp8":
        return {"weight_bytes": total, "weight_bytes_by_dtype": by_dtype, "weight_precision": "as traced"}
    mw = meta.get("matmul_weights")
    if not mw:
        from fxmeter.estimate.hardware import HardwareError

        raise HardwareError("this cached trace has no matmul weight count; rerun with --no-cache for --precision fp8")
    dt = meta.get("dtype", "bfloat16")
    by_dtype[dt] = by_dtype.get(dt, 0) - int(mw["bytes"])
    by_dtype["float8_e4m3fn"] = int(mw["parameters"])
    by_dtype = {k: v for k, v in sorted(by_dtype.items()) if v}
    return {
        "weight_bytes": sum(by_dtype.values()),
        "weight_bytes_by_dtype": by_dtype,
        "weight_precision": f"fp8: {int(mw['parameters']):,} matmul/conv weight parameters in 1 byte each",
    }


def fit_check(weight_bytes: int, activation_bytes: int, device_bytes: int, device: str) -> dict[str, Any]:
    """Weights + peak activations against the device memory, with a one-line statement."""
    need = weight_bytes + activation_bytes
    fits = need <= device_bytes
    gib = 2**30
    if fits:
        text = (f"fits on one {device}: weights {weight_bytes / gib:.1f} GiB + peak activations "
                f"{activation_bytes / gib:.1f} GiB = {need / gib:.1f} GiB of {device_bytes / gib:.0f} GiB")
    else:
        text = (f"does NOT fit on one {device}: weights {weight_bytes / gib:.1f} GiB + peak activations "
                f"{activation_bytes / gib:.1f} GiB = {need / gib:.1f} GiB > {device_bytes / gib:.0f} GiB "
                f"(short by {(need - device_bytes) / gib:.1f} GiB: offload, fp8 weights, or more GPUs)")
    return {"fits": fits, "required_bytes": need, "device_bytes": device_bytes, "statement": text}


def apply_batched_cfg(data: dict[str, Any], act: Mapping[str, Any]) -> None:
    """Turn a two-pass CFG report into one pass of twice the batch (in place).

    Per-forward costs double, ``passes_per_step`` becomes 1, so per step and end to
    end stay identical (the batched pass does the same arithmetic); the activation
    memory is the liveness walk at twice the batch (``act``).  Per-module formulas
    describe a pass of the original batch and are dropped.
    """
    from fxmeter.report.document import scale

    wl = data["workload"]
    wl["passes_per_step"] = 1
    wl["cfg"] = "batched"
    data["totals"]["per_forward"] = scale(data["totals"]["per_forward"], 2)
    for m in data["modules"]:
        m["per_forward"] = scale(m["per_forward"], 2)
        m["self"] = scale(m["self"], 2)
        m.pop("formula", None)
    for n in data["nodes"]:
        n["per_forward"] = scale(n["per_forward"], 2)
    for c in data["categories"].values():
        for k in ("tensor_core_flops", "cuda_core_flops", "bytes_read", "bytes_written", "flops"):
            c[k] *= 2
    data["memory"].update({k: v for k, v in act.items() if k != "blocks"})
    data["activation_blocks"] = act["blocks"]
    data["memory"]["activation_model"] = "liveness walk over one forward of 2x the batch (batched CFG)"
    data["notes"].append(
        "Batched CFG: one pass of 2x the batch per step; FLOPs and bytes end to end are those of the two separate "
        "passes (batch-independent work such as RoPE tables is not deduplicated); activation memory is at 2x the batch."
    )


def check_precision(precision: str) -> str:
    if precision not in ("bf16", "fp8"):
        from fxmeter.estimate.hardware import HardwareError

        raise HardwareError(f"unknown precision {precision!r}; use bf16 or fp8")
    return precision


def finish_report(data: dict[str, Any], meta: Mapping[str, Any], *, precision: str, traffic: str,
                  batched: Mapping[str, Any] | None, batched_cfg: bool, hw: Any, efficiency: Any,
                  include_nodes: bool) -> None:
    """Weights at ``precision``, batched CFG, roofline time and fit check on an evaluated report."""
    if traffic == "fused":
        data["notes"].append("Bytes use the fused traffic model (fxmeter.traffic): elementwise/norm chains between "
                             "matmul-class ops read their inputs once and write once; groups never span two blocks.")
    if batched is not None:
        apply_batched_cfg(data, batched)
    elif batched_cfg:
        data["notes"].append("--batched-cfg ignored: this workload runs one pass per step (no CFG).")
    w = weights_for_precision(meta, precision)
    mem = data["memory"]
    mem.update(w)
    mem["peak_activation_bytes"] = mem["activation_peak_bytes"]
    mem["total_bytes"] = w["weight_bytes"] + mem["activation_peak_bytes"]
    mem["precision"] = precision
    if hw is None:
        return
    from fxmeter.estimate import roofline as roofline

    roofline.apply(data, hw, precision=precision, efficiency=efficiency)
    mem["fit"] = fit_check(w["weight_bytes"], mem["activation_peak_bytes"], hw.memory_bytes, hw.label)
    if precision == "fp8":
        data["notes"].append("--precision fp8: matmul/conv nodes run at the fp8 tensor-core peak and their weights take "
                             "1 byte each in memory; attention stays at the bf16 peak; per-node bytes keep the traced dtypes.")
    if not include_nodes:
        data["nodes"] = []
