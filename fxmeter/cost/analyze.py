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
from typing import TYPE_CHECKING, Any

from fxmeter.cost.formula import FormulaTable
from fxmeter.model.adapters import Adapter
from fxmeter.rules import ZERO, Cost, OpCall, is_free, lookup

if TYPE_CHECKING:  # the warm path (cache -> evaluate) imports this module: keep torch/networkx out
    import networkx as nx

    from fxmeter.model.capture import Capture

LOG = logging.getLogger(__name__)

ROOT = "transformer"
SCHEMA = 3  # 2: fused traffic rows, liveness v2, meta.matmul_weights; 3: fp32-kept weights stay out of fp8


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


def node_cost(target: str, call: OpCall) -> tuple[str, Cost | None]:
    """(family, cost) of one node; cost None means no rule (unmodeled)."""
    if is_free(target):
        return "free", ZERO
    rule = lookup(target)
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
    import networkx as nx

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
    import networkx as nx

    table = FormulaTable()
    tree = build_tree(cap)
    known = set(tree.nodes)

    self_cost: dict[str, Cost] = defaultdict(Cost)
    cat_cost: dict[str, Cost] = defaultdict(Cost)
    unmodeled: dict[str, dict[str, Any]] = {}
    node_rows: list[dict[str, Any]] = []
    node_costs: list[Cost] = []
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
            cost = ZERO
        category = "free" if family == "free" else adapter.category(path, family)
        if family != "free":
            self_cost[path] = self_cost[path] + cost
            cat_cost[category] = cat_cost[category] + cost.scale(n)
        node_costs.append(cost)
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
        own = self_cost.get(_representative(path, cap.replicas), ZERO) if path not in self_cost else self_cost[path]
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

    from fxmeter.cost import liveness as memory
    from fxmeter.cost import traffic as traffic

    traffic.attach_fused(cap, node_rows, modules, table, node_costs)
    meta["matmul_weights"] = memory.matmul_weights(
        cap.nodes, [r["family"] for r in node_rows], [r["replicas"] for r in node_rows], meta.get("dtype")
    )
    live = memory.liveness_profile(cap, table) if liveness else {}
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
