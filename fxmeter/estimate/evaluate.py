"""A symbolic model evaluated at one workload's symbol values -> typed costs of one forward.

Pure Python over plain ints: the formulas are compiled once into one function of the
workload symbols (``fxmeter.cost.formula``), so neither torch nor sympy is imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fxmeter.cost import tree
from fxmeter.cost.compose import meta_value
from fxmeter.cost.formula import compile_table
from fxmeter.cost.symbolic import SymbolicModel, formula_symbols
from fxmeter.errors import WorkloadError
from fxmeter.estimate.metrics import FIELDS, ZERO, Metrics


@dataclass(frozen=True)
class NodeCost:
    """One graph node at this workload (one instance; ``replicas`` instances in the model)."""

    name: str
    target: str
    module: str
    family: str
    category: str
    replicas: int
    cost: Metrics
    shape: Mapping[str, int]
    dtype: str
    symbols: frozenset[str]  # the workload symbols its cost depends on
    index: int = -1  # position in the graph (symbolic model's node list)
    kernel: int = -1  # index of the node whose fused kernel runs it (torch.compile); == index: it launches one
    #: runs inside one instance of its module (a composed frame loop's middle chunks; already in ``replicas``)
    repeat: int = 1


@dataclass(frozen=True)
class ModuleCost:
    """One module of the full model: its cost with descendants (``total``) and of its own nodes (``own``)."""

    id: str
    parent: str | None
    cls: str
    depth: int
    parameters: int
    weight_bytes: int
    total: Metrics
    own: Metrics
    formula: Mapping[str, str] | None = None  # closed forms of ``total`` (dynamic traces)


@dataclass(frozen=True)
class Activations:
    """Peak live activation bytes of one forward and where it happens."""

    peak_bytes: int
    peak_node: str | None
    peak_module: str | None
    live_bytes_max_per_block: Mapping[str, int]
    note: str


@dataclass(frozen=True)
class Weights:
    """What a checkpoint of the stage's model stores, as traced (before ``--precision``)."""

    weight_bytes: int
    weight_bytes_by_dtype: Mapping[str, int]
    parameters_by_dtype: Mapping[str, int]
    matmul_parameters: int
    matmul_bytes: int
    dtype: str

    @property
    def parameters(self) -> int:
        return sum(self.parameters_by_dtype.values())


@dataclass(frozen=True)
class StageCost:
    """One forward of one stage's model at one workload (exact integers)."""

    root: str
    diffusers_class: str
    adapter: str
    dims: Mapping[str, int]
    traffic: str
    modules: tuple[ModuleCost, ...]
    nodes: tuple[NodeCost, ...]
    categories: Mapping[str, Metrics]
    unmodeled: tuple[Mapping[str, Any], ...]
    activations: Activations
    weights: Weights
    trace: Mapping[str, Any] = field(default_factory=dict)  # mode, graph_nodes, replicas, symbols, guards, seconds

    @property
    def total(self) -> Metrics:
        return self.modules[0].total


def instances(node: Mapping[str, Any], vals: list[int]) -> int:
    """How many times a node runs per forward: its block's ``replicas`` x its ``repeat`` (a formula index:
    the middle chunks of a composed frame loop, :mod:`fxmeter.cost.compose`; 1 when absent)."""
    r = int(node["replicas"])
    return r * vals[node["repeat"]] if "repeat" in node else r


def evaluate(sm: SymbolicModel, dims: Mapping[str, int], *, traffic: str = "eager", modules: bool = True,
             nodes: bool = True) -> StageCost:
    """``sm`` at the symbol values ``dims``; ``traffic``: eager bytes or the fused model's.

    ``modules=False`` keeps only the root row and ``nodes=False`` no node rows (sweeps
    need totals only).
    """
    symbols = list(sm.symbols)
    bad = sm.guard_problems(dims)
    if bad:
        raise WorkloadError(f"workload outside the traced model's guards: {', '.join(bad)}")
    missing = [s for s in symbols if s not in dims]
    if missing:
        raise WorkloadError(f"no value for workload symbol(s) {', '.join(missing)}")
    vals: list[int] = compile_table(sm.formulas, symbols)(**{s: dims[s] for s in symbols})
    fused = traffic == "fused"

    def metrics(idx: list[int], fidx: list[int] | None = None) -> Metrics:
        v = [vals[i] for i in idx]
        if fused and fidx is not None:
            v[2], v[3] = vals[fidx[0]], vals[fidx[1]]
        return Metrics(*v)

    dynamic = sm.dynamic
    mods = []
    for m in sm.modules if modules else sm.modules[:1]:
        mods.append(ModuleCost(
            id=m["id"], parent=m["parent"], cls=m["class"], depth=m["depth"], parameters=m["parameters"],
            weight_bytes=m["weight_bytes"], total=metrics(m["total"], m.get("total_fused")),
            own=metrics(m["self"], m.get("self_fused")),
            formula={k: sm.formulas[i] for k, i in zip(FIELDS, m["total"])} if dynamic else None,
        ))
    node_rows = []
    cats: dict[str, Metrics] = {}
    sym_cache: dict[int, frozenset[str]] = {}

    def syms(i: int) -> frozenset[str]:
        s = sym_cache.get(i)
        if s is None:
            s = sym_cache[i] = formula_symbols(sm.formulas[i])
        return s

    for j, n in enumerate(sm.nodes if (nodes or fused) else ()):  # a sweep row needs neither node rows nor their sums
        if n["family"] == "free":
            continue
        c = metrics(n["cost"], n.get("fused"))
        if fused:
            cats[n["category"]] = cats.get(n["category"], ZERO) + c.scale(instances(n, vals))
        if nodes:
            node_rows.append(NodeCost(
                name=n["name"], target=n["target"], module=n["module"], family=n["family"], category=n["category"],
                replicas=instances(n, vals), cost=c, shape={k: vals[i] for k, i in n["shape"].items()}, dtype=n["dtype"],
                symbols=frozenset().union(*(syms(i) for i in n["cost"])), index=j, kernel=int(n.get("kernel", j)),
                repeat=vals[n["repeat"]] if "repeat" in n else 1,
            ))
    if not fused:
        cats = {k: Metrics(*(vals[i] for i in v)) for k, v in sm.categories.items()}
    meta = sm.meta
    mw = meta.get("matmul_weights") or {}
    return StageCost(
        root=sm.root,
        diffusers_class=str(meta["diffusers_class"]),
        adapter=str(meta["adapter"]),
        dims=dict(dims),
        traffic=traffic,
        modules=tuple(mods),
        nodes=tuple(node_rows),
        categories={k: v for k, v in sorted(cats.items()) if v != ZERO},
        unmodeled=tuple(sm.unmodeled),
        activations=activations(sm, vals, modules),
        weights=Weights(int(meta["weight_bytes"]), dict(meta["weight_bytes_by_dtype"]), dict(meta["parameters_by_dtype"]),
                        int(mw.get("parameters", 0)), int(mw.get("bytes", 0)), str(meta["dtype"])),
        trace={k: meta_value(sm, k, vals) for k in ("mode", "graph_nodes", "replicas", "symbols", "guards", "seconds",
                                                    "versions", "rules", "graph_weight_bytes", "weight_read_bytes",
                                                    "largest_module_bytes")},
    )


#: id(model) -> (model, the block of each node): computed once per symbolic model (sweeps evaluate one many times)
_BLOCKS: dict[int, tuple[SymbolicModel, list[str | None]]] = {}


def _node_blocks(sm: SymbolicModel) -> list[str | None]:
    got = _BLOCKS.get(id(sm))
    if got is None or got[0] is not sm:
        got = _BLOCKS[id(sm)] = (sm, [tree.block_of(n["module"]) for n in sm.nodes])
    return got[1]


def activations(sm: SymbolicModel, vals: list[int], blocks_too: bool = True) -> Activations:
    """Peak live bytes, where it happens, and (``blocks_too``) the largest live set inside each block."""
    after = sm.liveness.get("after_node", [])
    root, replicas = sm.root, sm.meta.get("replicas", {})
    peak, at = 0, None
    per_block: dict[str, int] = {}
    if not blocks_too:
        live = [vals[idx] for idx in after]
        if live:
            i = max(range(len(live)), key=live.__getitem__)
            peak, at = (live[i], sm.nodes[i]) if live[i] > 0 else (0, None)
        after = []
    blocks = _node_blocks(sm) if after else []
    for i, idx in enumerate(after):
        v = vals[idx]
        if v > peak:
            peak, at = v, sm.nodes[i]
        b = blocks[i]
        if b is not None and v > per_block.get(b, -1):
            per_block[b] = v
    for lst, count in replicas.items():  # replicated blocks share block 0's live set
        first = per_block.get(f"{root}.{lst}.0")
        if first is not None:
            per_block.update({f"{root}.{lst}.{k}": first for k in range(1, count)})
    replicated = [f"{root}.{k}" for k in sorted(replicas)]
    note = (
        f"blocks of {', '.join(replicated)} were traced once and replicated: every block has the live set of "
        f"{', '.join(f'{r}.0' for r in replicated)}" if replicated else "every block traced"
    )
    return Activations(
        peak_bytes=peak,
        peak_node=at["name"] if at else None,
        peak_module=at["module"] if at else None,
        live_bytes_max_per_block=dict(sorted(per_block.items(), key=lambda kv: tree.natural_key(kv[0]))),
        note=note + "; the largest live set inside each block, bytes",
    )
