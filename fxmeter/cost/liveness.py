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
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from fxmeter.cost.formula import FormulaTable
    from fxmeter.model.capture import Capture
    from fxmeter.rules import OpCall

LOG = logging.getLogger(__name__)

#: Op families whose weights ``--precision fp8`` (or ``int8``) stores in one byte per parameter.
MATMUL_FAMILIES = frozenset({"matmul", "conv"})


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
    if in_place(t):
        return rec.uses[0]
    if t.endswith(".out") and "out" in rec.call.kwargs:
        return rec.uses[-1]  # an out= variant writes into its out tensor (keyword arguments come last)
    if t.startswith("aten.to.") or t == "aten.type_as.default":
        from fxmeter.rules.casts import COPY_ARG

        args = rec.call.args
        key = t.rsplit(".", 1)[0] if t.count(".") > 2 else t
        copy = bool(rec.call.arg(COPY_ARG.get(key), "copy", False)) if key in COPY_ARG else False
        if args and hasattr(args[0], "dtype") and args[0].dtype == rec.call.outputs[0].dtype and not copy:
            return rec.uses[0]
    return None


#: Python's in-place operators as aten names them (``x &= m``): they write into their first argument.
_DUNDER_IN_PLACE = frozenset({"__iand__", "__ior__", "__ixor__", "__ilshift__", "__irshift__"})


def in_place(target: str) -> bool:
    """``aten.add_.Tensor`` and ``aten.__iand__.Tensor`` write into their first argument."""
    op = target.split(".")[1] if target.count(".") >= 2 else ""
    return (op.endswith("_") and not op.startswith("_")) or op in _DUNDER_IN_PLACE


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
        weights = rec.uses[1:2] if rec.target.startswith(("aten.linear", "aten.conv", "aten._conv")) else rec.uses
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
