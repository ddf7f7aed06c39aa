"""Capture -> symbolic model: every node's cost by its rule, rolled up the module tree.

:func:`analyze` costs every graph node with its rule (``fxmeter.rules``; an op with no rule
is listed as unmodeled, never silently zero), attributes it to its innermost module, rolls
costs up the module tree (networkx), records each node's kernel shape, the fused traffic
model and the liveness profile, and interns every value as a formula of the workload
symbols.  The result (:class:`~fxmeter.cost.symbolic.SymbolicModel`) is plain data:
evaluating it for a workload needs neither torch nor sympy.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fxmeter.cost import tree
from fxmeter.cost.formula import FormulaTable
from fxmeter.cost.shapes import kernel_shape, out_dtype
from fxmeter.cost.symbolic import SymbolicModel
from fxmeter.errors import TraceError, UsageError
from fxmeter.rules import ZERO, Cost, OpCall, Rule, is_free, lookup

if TYPE_CHECKING:
    from fxmeter.model.adapters import Adapter
    from fxmeter.model.capture import Capture

LOG = logging.getLogger(__name__)

#: A per-call rule overlay, as FlopCounterMode's ``custom_mapping``: target -> rule function.
Overlay = Mapping[str, Any]


def check_overlay(overlay: Any) -> None:
    """A per-call rule overlay: a mapping of aten target strings to rule functions (or ``Rule``\\ s).

    Raises:
        UsageError: anything else (one line naming the bad entry), before any trace.
    """
    if overlay is None:
        return
    if not isinstance(overlay, Mapping):
        raise UsageError(f"rules must be a mapping of aten targets to rule functions, got {type(overlay).__name__}")
    for target, rule in overlay.items():
        if not isinstance(target, str) or not target.strip():
            raise UsageError(f"rules: every key must be an aten target string such as 'aten.linear.default', "
                             f"got {target!r}")
        fn = rule.fn if isinstance(rule, Rule) else rule
        if not callable(fn):
            raise UsageError(f"rules[{target!r}] must be a rule function OpCall -> Cost (or a fxmeter.rules.Rule), "
                             f"got {type(rule).__name__} {rule!r:.40}")


def node_cost(target: str, call: OpCall, overlay: Overlay | None = None) -> tuple[str, Cost | None]:
    """(family, cost) of one node; cost None means no rule (unmodeled) or a rule that refused the call."""
    if overlay and target in overlay:
        rule = overlay[target]
        fn, family = (rule.fn, rule.family) if isinstance(rule, Rule) else (rule, getattr(rule, "family", "custom"))
        try:
            return family, fn(call)
        except Exception as e:  # the user's rule: one project error naming it, not its traceback
            raise TraceError(f"rules[{target!r}] raised {type(e).__name__}: {e}") from None
    if is_free(target):
        return "free", ZERO
    found = lookup(target)
    if found is None:
        return "unmodeled", None
    return found.family, found.fn(call)


def analyze(cap: Capture, adapter: Adapter, meta: dict[str, Any], *, root: str = "transformer",
            overlay: Overlay | None = None) -> SymbolicModel:
    """Cost every node, roll costs up the module tree, intern the formulas.

    Args:
        cap: the captured graph and module tree.
        adapter: the model's adapter (categories).
        meta: what was traced (class, dtype, versions, rules fingerprint...): copied into the result.
        root: the stage name every module id starts with (``transformer``).
        overlay: per-call rules that replace the registry's for their targets.
    """
    from fxmeter.cost import liveness, traffic

    table = FormulaTable()
    g = tree.build([m.path for m in cap.modules],
                   [{"cls": m.cls, "params": m.params, "weight_bytes": m.weight_bytes} for m in cap.modules])
    known = set(g.nodes)

    self_cost: dict[str, Cost] = defaultdict(Cost)
    cat_cost: dict[str, Cost] = defaultdict(Cost)
    unmodeled: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    costs: list[Cost] = []
    for rec in cap.nodes:
        path = rec.module
        while path not in known and path:
            path = tree.parent_path(path) or ""
        family, cost = node_cost(rec.target, rec.call, overlay)
        n = tree.replica_count(path, cap.replicas)
        if cost is None:
            u = unmodeled.setdefault(rec.target, {"op": rec.target, "count": 0, "modules": set()})
            u["count"] += n
            u["modules"].add(tree.module_id(root, path))
            cost, family = ZERO, "unmodeled"
        category = "free" if family == "free" else adapter.category(path, family)
        if family != "free":
            self_cost[path] = self_cost[path] + cost
            cat_cost[category] = cat_cost[category] + cost.scale(n)
        costs.append(cost)
        rows.append({
            "name": rec.name,
            "target": rec.target,
            "module": tree.module_id(root, path),
            "family": family,
            "category": category,
            "replicas": n,
            "cost": [table.add(v) for v in cost],
            "shape": {k: table.add(v) for k, v in kernel_shape(family, rec.call).items()},
            "dtype": out_dtype(rec.call),
        })

    # roll up once, leaves first: total = own + children's totals; a replica's own cost is its representative's
    total: dict[str, Cost] = {}
    for path in tree.postorder(g):
        own = self_cost[path] if path in self_cost else self_cost.get(tree.representative(path, cap.replicas), ZERO)
        acc = own
        for child in g.successors(path):
            acc = acc + total[child]
        total[path] = acc
        self_cost.setdefault(path, own)
        a = g.nodes[path]
        a["params_total"] = a["params"] + sum(g.nodes[c]["params_total"] for c in g.successors(path))
        a["weight_bytes_total"] = a["weight_bytes"] + sum(g.nodes[c]["weight_bytes_total"] for c in g.successors(path))

    modules: list[dict[str, Any]] = []
    for m in cap.modules:
        a = g.nodes[m.path]
        parent = next(iter(g.predecessors(m.path)), None)
        modules.append({
            "id": tree.module_id(root, m.path),
            "parent": tree.module_id(root, parent) if parent is not None else None,
            "class": a["cls"],
            "depth": 0 if not m.path else m.path.count(".") + 1,
            "parameters": a["params_total"],
            "weight_bytes": a["weight_bytes_total"],
            "self": [table.add(v) for v in self_cost[m.path]],
            "total": [table.add(v) for v in total[m.path]],
        })

    traffic.attach_fused(cap, rows, modules, table, costs, root)
    meta = dict(meta, root=root)
    meta["matmul_weights"] = liveness.matmul_weights(
        cap.nodes, [r["family"] for r in rows], [r["replicas"] for r in rows], meta.get("dtype"))
    live = liveness.liveness_profile(cap, table)
    categories = {k: [table.add(v) for v in c] for k, c in sorted(cat_cost.items())}
    return SymbolicModel(  # formulas last: every value above is interned by now
        meta=meta,
        nodes=tuple(rows),
        modules=tuple(modules),
        categories=categories,
        unmodeled=tuple(
            {"op": u["op"], "count": u["count"], "modules": sorted(u["modules"])}
            for u in sorted(unmodeled.values(), key=lambda u: u["op"])
        ),
        liveness=live,
        formulas=tuple(table.strings),
    )
