"""Memory-traffic models: ``eager`` (the rules' bytes) and ``fused``.

``eager``: every op reads its inputs and writes its outputs (``rules/``).

``fused``: what a compiler such as torch.compile (Inductor) does to the ops
between two matmul-class ops.  Elementwise, norm, cast, activation, softmax,
reduction, copy and factory ops are grouped along producer -> consumer edges
(views are transparent) into fusion groups; two ops never share a group when one
depends on the other through a matmul, conv or attention (a kernel cannot wait
for a GEMM in its middle).  A group reads each external value once (attributed to
the first member that reads it) and writes a member's output only when something
outside the group reads it (or nothing reads it: a forward output).  Matmul, conv
and attention keep their eager bytes; views and metadata move nothing.

The result is a per-node ``[bytes_read, bytes_written]`` pair (formulas) that rolls
up over the module tree like every other cost.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fxmeter.cost.liveness import NodeLike, alias_source, in_place

if TYPE_CHECKING:
    from fxmeter.cost.formula import FormulaTable
    from fxmeter.rules import Cost

LOG = logging.getLogger(__name__)

MODELS = ("eager", "fused")
#: Families that bound fusion groups (tensor-core kernels of their own).
ANCHORS = frozenset({"matmul", "conv", "attention"})
#: Families that are neither fused nor costed.
OPAQUE = frozenset({"free", "unmodeled"})


def fused_bytes(nodes: Sequence[NodeLike], families: Sequence[str], costs: Sequence[Cost],
                regions: Sequence[str] | None = None, kernels: list[int] | None = None) -> list[tuple[Any, Any]]:
    """(bytes_read, bytes_written) of every node under the fused traffic model.

    Args:
        nodes: graph nodes in execution order.
        families: each node's op family (``free``, ``matmul``, ``norm``, ...).
        costs: each node's eager :class:`rules.Cost`.
        regions: each node's compile region (its block, e.g. ``transformer.blocks.0``,
            or one region for everything outside the blocks); groups never span two,
            as with diffusers' regional compilation of repeated blocks.
    """
    regions = regions if regions is not None else [""] * len(nodes)
    n = len(nodes)
    index = {rec.name: i for i, rec in enumerate(nodes)}
    alias = [alias_source(rec) for rec in nodes]
    fusible = [f not in ANCHORS and f not in OPAQUE for f in families]

    def producer(value: str) -> int | None:
        return index.get(value)

    def root(value: str) -> str:
        """The value owning ``value``'s storage (through views, in-place ops, no-op casts)."""
        for _ in range(256):
            i = producer(value)
            if i is None or alias[i] is None:
                return value
            value = alias[i]  # type: ignore[assignment]
        return value

    def is_tensor(value: str) -> bool:
        i = producer(value)
        return i is None or bool(nodes[i].call.outputs)

    # -- fusion groups: union-find along fusible edges, refusing merges across anchors
    anc = [0] * n  # ancestors (node-index bitsets)
    thru = [0] * n  # nodes with a path to i through an anchor
    for i, rec in enumerate(nodes):
        a = t = 0
        for u in rec.uses:
            p = producer(u)
            if p is None:
                continue
            a |= anc[p] | (1 << p)
            t |= thru[p] | ((anc[p] | (1 << p)) if families[p] in ANCHORS else 0)
        anc[i], thru[i] = a, t

    parent = list(range(n))
    members = [1 << i for i in range(n)]
    gthru = list(thru)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def fusible_producers(i: int) -> list[int]:
        out = []
        for u in nodes[i].uses:
            p = producer(u)
            while p is not None and families[p] == "free" and alias[p] is not None:
                p = producer(alias[p])  # type: ignore[arg-type]
            if p is not None and fusible[p]:
                out.append(p)
        return out

    producers = [fusible_producers(i) if fusible[i] else [] for i in range(n)]
    consumers = [0] * n
    for i in range(n):
        for p in set(producers[i]):
            consumers[p] += 1

    def merge(i: int, p: int) -> None:
        gi, gp = find(i), find(p)
        if gi == gp or regions[i] != regions[p] or members[gi] & gthru[gp] or members[gp] & gthru[gi]:
            return
        parent[gp] = gi
        members[gi] |= members[gp]
        gthru[gi] |= gthru[gp]

    # chains first (a producer with one consumer joins it, e.g. a cast into the add that
    # reads it), then every other producer -> consumer edge
    for single in (True, False):
        for i in range(n):
            for p in producers[i]:
                if consumers[p] == 1 or not single:
                    merge(i, p)

    group = [find(i) if fusible[i] else -1 for i in range(n)]
    if kernels is not None:  # the kernel each node runs in once fused: its group's first node (anchors: their own)
        first: dict[int, int] = {}
        for i in range(n):
            if families[i] == "free":
                kernels.append(-1)
            elif fusible[i]:
                kernels.append(first.setdefault(group[i], i))
            else:
                kernels.append(i)

    # -- who reads each storage (through aliases); what each group writes in place
    readers: dict[str, set[int]] = {}
    inplace_roots: dict[int, set[str]] = {}
    for i, rec in enumerate(nodes):
        if families[i] == "free":
            continue
        for k, u in enumerate(rec.uses):
            if not is_tensor(u):
                continue
            if alias[i] is not None and k == 0:
                # a view/no-op cast reads nothing; an in-place op writes into its first argument
                if fusible[i] and _in_place(rec):
                    inplace_roots.setdefault(group[i], set()).add(root(u))
                continue
            readers.setdefault(root(u), set()).add(i)

    def produced_in(g: int, r: str) -> bool:
        p = producer(r)
        return (p is not None and group[p] == g) or r in inplace_roots.get(g, ())

    def escapes(g: int, r: str) -> bool:
        rd = readers.get(r)
        if not rd:
            return True  # read by no node: a forward output
        return any(group[j] != g for j in rd)

    out: list[tuple[Any, Any]] = []
    seen_reads: dict[int, set[str]] = {}
    for i, rec in enumerate(nodes):
        fam = families[i]
        if fam in OPAQUE:
            out.append((0, 0))
            continue
        if fam in ANCHORS:
            out.append((costs[i].bytes_read, costs[i].bytes_written))
            continue
        if alias[i] is not None and not _in_place(rec):
            out.append((0, 0))  # a no-op cast: reads and writes nothing
            continue
        g = group[i]
        read: Any = 0
        seen = seen_reads.setdefault(g, set())
        tensors = list(rec.call.tensor_args())
        tensor_uses = [u for u in rec.uses if is_tensor(u)]
        if not costs[i].bytes_read:
            tensor_uses = []  # factories and *_like ops read no data
        elif fam == "cast":
            tensor_uses = tensor_uses[:1]  # type_as(x, other) reads x only
        for k, u in enumerate(tensor_uses):
            if k == 0 and alias[i] is not None:
                continue
            if produced_in(g, root(u)) or u in seen:
                continue
            seen.add(u)
            if k < len(tensors):
                read = read + tensors[k].nbytes
        r = root(rec.name) if alias[i] is None else root(rec.uses[0])
        written = costs[i].bytes_written if escapes(g, r) else 0
        out.append((read, written))
    return out


def _in_place(rec: NodeLike) -> bool:
    return in_place(rec.target)


def attach_fused(cap: Any, node_rows: list[dict[str, Any]], modules: list[dict[str, Any]], table: FormulaTable,
                 costs: Sequence[Cost], root: str) -> None:
    """Add the fused model to a symbolic model's rows (analysis time).

    Node rows gain ``fused`` (formula indices of [bytes_read, bytes_written]) and ``kernel``
    (the index of the node whose fused kernel runs this one: kernel launches under
    ``--compile``), module rows ``self_fused``/``total_fused``, rolled up like ``self``/``total``.
    """
    from fxmeter.cost import tree

    regions = [tree.block_of(r["module"]) or "" for r in node_rows]
    kernels: list[int] = []
    pairs = fused_bytes(cap.nodes, [r["family"] for r in node_rows], costs, regions, kernels)
    own: dict[str, list[Any]] = {}
    for i, (row, (rd, wr)) in enumerate(zip(node_rows, pairs)):
        row["fused"] = [table.add(rd), table.add(wr)]
        row["kernel"] = kernels[i]  # the node (index) whose fused kernel this node runs in; -1: none (a view)
        if row["family"] in OPAQUE:
            continue
        acc = own.setdefault(row["module"], [0, 0])
        acc[0], acc[1] = acc[0] + rd, acc[1] + wr

    def mine(i: int) -> list[Any]:
        mid = modules[i]["id"]
        return own.get(mid) or own.get(tree.representative_id(mid, root, cap.replicas)) or [0, 0]

    totals = tree.rollup([m["id"] for m in modules], [m["parent"] for m in modules], [m["depth"] for m in modules],
                         mine, lambda a, b: [a[0] + b[0], a[1] + b[1]])
    for i, m in enumerate(modules):
        m["self_fused"] = [table.add(v) for v in mine(i)]
        m["total_fused"] = [table.add(v) for v in totals[i]]


def check_model(name: str) -> str:
    """Validate a ``--traffic`` value."""
    from fxmeter.errors import WorkloadError

    key = (name or "eager").strip().lower()
    if key not in MODELS:
        raise WorkloadError(f"unknown traffic model {name!r}; use eager or fused")
    return key
