"""Rules -> per-node costs -> module tree (networkx) -> a cacheable symbolic model.

:func:`analyze` turns a :class:`~fxmeter.capture.Capture` into a
:class:`SymbolicModel`: every node's cost, every module's own and rolled-up cost,
the categories, the unmodeled ops and the liveness profile, all as formula
indices.  The symbolic model is plain data (JSON-ready); evaluating it for a
workload needs neither torch nor sympy.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

import rules
from rules import METRICS, Cost

from .adapters import Adapter
from .capture import Capture
from .formula import FormulaTable

LOG = logging.getLogger(__name__)

ROOT = "transformer"
SCHEMA = 1


def module_id(path: str) -> str:
    """``blocks.0.attn1`` -> ``transformer.blocks.0.attn1``; ``""`` -> ``transformer``."""
    return f"{ROOT}.{path}" if path else ROOT


def parent_path(path: str) -> str | None:
    if not path:
        return None
    return path.rpartition(".")[0]


@dataclass
class SymbolicModel:
    """Everything needed to report any workload of one traced model (plain data)."""

    meta: dict[str, Any]
    formulas: list[str]
    nodes: list[dict[str, Any]]
    modules: list[dict[str, Any]]
    categories: dict[str, list[int]]
    unmodeled: list[dict[str, Any]]
    liveness: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "formulas": self.formulas,
            "nodes": self.nodes,
            "modules": self.modules,
            "categories": self.categories,
            "unmodeled": self.unmodeled,
            "liveness": self.liveness,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SymbolicModel:
        return cls(d["meta"], d["formulas"], d["nodes"], d["modules"], d["categories"], d["unmodeled"], d.get("liveness", {}))


def node_cost(target: str, call: rules.OpCall) -> tuple[str, Cost | None]:
    """(family, cost) of one node; cost None means no rule (unmodeled)."""
    if rules.is_free(target):
        return "free", rules.ZERO
    rule = rules.lookup(target)
    if rule is None:
        return "unmodeled", None
    return rule.family, rule.fn(call)


def _replica_count(path: str, replicas: dict[str, int]) -> int:
    for lst, n in replicas.items():
        if path == f"{lst}.0" or path.startswith(f"{lst}.0."):
            return n
    return 1


def _representative(path: str, replicas: dict[str, int]) -> str:
    """``blocks.7.attn1`` -> ``blocks.0.attn1`` when blocks were replicated."""
    for lst in replicas:
        prefix = f"{lst}."
        if path.startswith(prefix):
            head, _, rest = path[len(prefix) :].partition(".")
            if head.isdigit():
                return f"{lst}.0" + (f".{rest}" if rest else "")
    return path


def build_tree(cap: Capture) -> nx.DiGraph:
    """The module tree of the full model, keyed by module path, root ``""``."""
    g = nx.DiGraph()
    for m in cap.modules:
        g.add_node(m.path, cls=m.cls, params=m.params, weight_bytes=m.weight_bytes, buffer_bytes=m.buffer_bytes)
    for m in cap.modules:
        p = parent_path(m.path)
        if p is not None:
            g.add_edge(p if p in g else "", m.path)
    return g


def analyze(cap: Capture, adapter: Adapter, meta: dict[str, Any], *, liveness: bool = True) -> SymbolicModel:
    """Cost every node, roll costs up the module tree, intern the formulas."""
    table = FormulaTable()
    tree = build_tree(cap)
    known = set(tree.nodes)

    self_cost: dict[str, Cost] = defaultdict(Cost)
    cat_cost: dict[str, Cost] = defaultdict(Cost)
    unmodeled: dict[str, dict[str, Any]] = {}
    node_rows: list[dict[str, Any]] = []
    for rec in cap.nodes:
        path = rec.module
        while path not in known and path:
            path = parent_path(path) or ""
        family, cost = node_cost(rec.target, rec.call)
        n = _replica_count(path, cap.replicas)
        if cost is None:
            u = unmodeled.setdefault(rec.target, {"op": rec.target, "count": 0, "modules": set()})
            u["count"] += n
            u["modules"].add(module_id(path))
            cost = rules.ZERO
        category = "free" if family == "free" else adapter.category(path, family)
        if family != "free":
            self_cost[path] = self_cost[path] + cost
            cat_cost[category] = cat_cost[category] + cost.scale(n)
        node_rows.append(
            {
                "name": rec.name,
                "target": rec.target,
                "module": module_id(path),
                "family": family,
                "category": category,
                "replicas": n,
                "cost": [table.add(v) for v in cost],
            }
        )

    # roll up: total = own + children's totals, computed once, leaves first
    total: dict[str, Cost] = {}
    for path in nx.dfs_postorder_nodes(tree, ""):
        own = self_cost.get(_representative(path, cap.replicas), rules.ZERO) if path not in self_cost else self_cost[path]
        acc = own
        for child in tree.successors(path):
            acc = acc + total[child]
        total[path] = acc
        self_cost.setdefault(path, own)
        tree.nodes[path]["params_total"] = tree.nodes[path]["params"] + sum(
            tree.nodes[c]["params_total"] for c in tree.successors(path)
        )
        tree.nodes[path]["weight_bytes_total"] = tree.nodes[path]["weight_bytes"] + sum(
            tree.nodes[c]["weight_bytes_total"] for c in tree.successors(path)
        )

    modules: list[dict[str, Any]] = []
    for m in cap.modules:
        a = tree.nodes[m.path]
        parent = next(iter(tree.predecessors(m.path)), None)
        modules.append(
            {
                "id": module_id(m.path),
                "parent": module_id(parent) if parent is not None else None,
                "class": a["cls"],
                "depth": 0 if not m.path else m.path.count(".") + 1,
                "parameters": a["params_total"],
                "weight_bytes": a["weight_bytes_total"],
                "self": [table.add(v) for v in self_cost[m.path]],
                "total": [table.add(v) for v in total[m.path]],
            }
        )

    live = liveness_profile(cap, table) if liveness else {}
    return SymbolicModel(
        meta=meta,
        formulas=table.strings,
        nodes=node_rows,
        modules=modules,
        categories={k: [table.add(v) for v in c] for k, c in sorted(cat_cost.items())},
        unmodeled=[
            {"op": u["op"], "count": u["count"], "modules": sorted(u["modules"])}
            for u in sorted(unmodeled.values(), key=lambda u: u["op"])
        ],
        liveness=live,
    )


def liveness_profile(cap: Capture, table: FormulaTable) -> dict[str, Any]:
    """Live activation bytes after each node (inference: no autograd).

    Each output is allocated when produced and freed after its last use; views
    (``rules.free.VIEW_OPS``) share their input's storage.  Returns formula indices
    of the live set after each node, and the node/module each belongs to.
    """
    from rules.free import VIEW_OPS

    storage: dict[str, str] = {}  # value name -> storage name
    size: dict[str, Any] = {}  # storage name -> bytes
    for name, nbytes in cap.inputs.items():
        storage[name] = name
        size[name] = nbytes
    last_use: dict[str, int] = {}
    for i, rec in enumerate(cap.nodes):
        for u in rec.uses:
            last_use[u] = i
    refs: dict[str, set[str]] = defaultdict(set)  # storage -> value names still alive
    for name in cap.inputs:
        refs[name].add(name)
    live: Any = sum(size.values(), 0)
    steps: list[int] = []
    for i, rec in enumerate(cap.nodes):
        if not rec.call.outputs:
            pass
        elif _aliases_input(rec, VIEW_OPS) and rec.uses and rec.uses[0] in storage:
            st = storage[rec.uses[0]]
            storage[rec.name] = st
            refs[st].add(rec.name)
        else:
            nbytes = sum((t.nbytes for t in rec.call.outputs), 0)
            storage[rec.name] = rec.name
            size[rec.name] = nbytes
            refs[rec.name].add(rec.name)
            live = live + nbytes
        steps.append(table.add(live))
        # free what this node was the last user of
        for u in set(rec.uses):
            if last_use.get(u) == i and u in storage:
                st = storage[u]
                refs[st].discard(u)
                if not refs[st] and st in size:
                    live = live - size.pop(st)
        if rec.name in storage and rec.name not in last_use:
            st = storage[rec.name]
            refs[st].discard(rec.name)
            if not refs[st] and st in size and st not in cap.inputs:
                live = live - size.pop(st)
    return {"after_node": steps}


def _aliases_input(rec: Any, view_ops: frozenset[str]) -> bool:
    """Views, in-place ops, inference dropout and no-op casts return their input's storage."""
    t = rec.target
    if t in view_ops or t.startswith("aten.dropout") or t.startswith("aten.feature_dropout"):
        return True
    op = t.split(".")[1] if t.count(".") >= 2 else ""
    if op.endswith("_") and not op.startswith("_"):
        return True
    if t.startswith("aten.to.") or t == "aten.type_as.default":
        args = rec.call.args
        return bool(args) and hasattr(args[0], "dtype") and args[0].dtype == rec.call.outputs[0].dtype
    return False
