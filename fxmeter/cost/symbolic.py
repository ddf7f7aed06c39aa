"""The symbolic model: everything needed to cost any workload of one traced model, as plain data.

It is what the cost stage produces (:func:`fxmeter.cost.analyze.analyze`), what the store
ships and caches, and what the estimate stage evaluates.  Costs are indices into
``formulas`` (integer polynomials of the workload symbols, or plain integers for a static
trace).  ``check`` validates a payload read from disk before anything indexes it: every
field present and well typed, indices in range, ids and parents consistent, and the
numbers adding up at a probe workload (an edited formula cannot give wrong numbers
silently).

Rows (``nodes``, ``modules``) are dicts because they are JSON-shaped data; the record
itself is frozen: a stage never changes another stage's value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from fxmeter.errors import TraceError

#: Version of the symbolic-model layout (part of every store key).
SCHEMA = 5  # 4: node kernel shapes and dtypes, meta without model identity; 5: fused kernel of each node
METRICS = ("tensor_core_flops", "cuda_core_flops", "bytes_read", "bytes_written")
MAX_REPLICAS = 100_000  # blocks in one repeated list (Wan: 40)
_SLUG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_PROBE = (3, 5, 7, 11, 13, 17, 19, 23, 29, 31)
_NAME = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass(frozen=True)
class SymbolicModel:
    """One traced model (one pipeline component) as formulas.

    Attributes:
        meta: what was traced: ``root`` (the stage name module ids start with), ``diffusers_class``,
            ``adapter``, ``config_sha256``, ``dtype``, ``versions``, ``rules`` (fingerprint), ``symbols``,
            ``guards`` (symbol ranges the trace is valid for), ``mode`` (dynamic/static), ``dims`` (a
            static trace's symbol values), ``replicas`` (repeated list -> blocks), ``graph_nodes``,
            ``weight_bytes``/``weight_bytes_by_dtype``/``parameters_by_dtype``, ``matmul_weights``,
            ``seconds`` (how long the trace took).
        formulas: interned formula strings; index 0 is ``"0"``.
        nodes: every graph node: ``name``, ``target``, ``module`` (id), ``family``, ``category``,
            ``replicas``, ``cost`` (4 indices: tensor-core FLOPs, CUDA-core FLOPs, bytes read, bytes
            written), ``fused`` (2 indices: bytes under the fused traffic model), ``kernel`` (index of the
            node whose fused kernel runs this one, -1 for none), ``shape`` (kernel
            shape: name -> index, e.g. m/n/k of a GEMM), ``dtype``.
        modules: the full model's modules (block replicas included) in natural order: ``id``,
            ``parent``, ``class``, ``depth``, ``parameters``, ``weight_bytes`` (with descendants),
            ``self``/``total`` (4 indices each), ``self_fused``/``total_fused`` (2 each).
        categories: category -> 4 indices (all instances, replicas included).
        unmodeled: ops without a rule: ``op``, ``count``, ``modules``.
        liveness: ``after_node`` (live activation bytes during each node, indices) and ``model``.
    """

    meta: Mapping[str, Any]
    formulas: tuple[str, ...]
    nodes: tuple[Mapping[str, Any], ...]
    modules: tuple[Mapping[str, Any], ...]
    categories: Mapping[str, list[int]]
    unmodeled: tuple[Mapping[str, Any], ...]
    liveness: Mapping[str, Any] = field(default_factory=dict)

    @property
    def root(self) -> str:
        return str(self.meta.get("root", "transformer"))

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self.meta["symbols"])

    @property
    def dynamic(self) -> bool:
        return self.meta.get("mode") == "dynamic"

    def guard_problems(self, dims: Mapping[str, int]) -> list[str]:
        """Symbols whose value lies outside what this trace is valid for (empty: usable for ``dims``)."""
        bad = []
        for s, (lo, hi) in self.meta.get("guards", {}).items():
            v = dims.get(s)
            if v is not None and not lo <= v <= hi:
                bad.append(f"{s}={v} outside [{lo}, {hi}]")
        if not self.dynamic:
            bad += [f"{s}={dims.get(s)} != traced {v}" for s, v in self.meta.get("dims", {}).items() if dims.get(s) != v]
        return bad

    def to_dict(self) -> dict[str, Any]:
        return {
            "meta": dict(self.meta),
            "formulas": list(self.formulas),
            "nodes": [dict(n) for n in self.nodes],
            "modules": [dict(m) for m in self.modules],
            "categories": dict(self.categories),
            "unmodeled": [dict(u) for u in self.unmodeled],
            "liveness": dict(self.liveness),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SymbolicModel:
        return cls(
            meta=d["meta"], formulas=tuple(d["formulas"]), nodes=tuple(d["nodes"]), modules=tuple(d["modules"]),
            categories=d["categories"], unmodeled=tuple(d["unmodeled"]), liveness=d.get("liveness", {}),
        )


# -- validation of a payload read from disk -------------------------------------------------
class PayloadError(ValueError):
    """Why a stored symbolic model is unusable (it is then discarded and traced again)."""


def _fail(where: str, what: str) -> NoReturn:
    raise PayloadError(f"{where}: {what}")


def _int(v: Any, where: str, lo: int = 0, hi: int | None = None) -> int:
    if type(v) is not int or v < lo or (hi is not None and v > hi):
        _fail(where, f"expected an integer >= {lo}{f' and <= {hi}' if hi is not None else ''}, got {str(v)[:40]!r}")
    return int(v)


def _str(v: Any, where: str) -> str:
    if not isinstance(v, str):
        _fail(where, f"expected a string, got {type(v).__name__}")
    return v


def _dict(v: Any, where: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        _fail(where, f"expected an object, got {type(v).__name__}")
    return v


def _list(v: Any, where: str, length: int | None = None) -> list[Any]:
    if not isinstance(v, list) or (length is not None and len(v) != length):
        _fail(where, f"expected a list{f' of {length}' if length is not None else ''}, got {str(v)[:40]!r}")
    return v


def _indices(v: Any, where: str, length: int | None, n: int) -> None:
    for i in _list(v, where, length):
        if type(i) is not int or not 0 <= i < n:
            _fail(where, f"expected formula indices in [0, {n}), got {str(i)[:20]!r}")


def _check_meta(m: Any, expect: Mapping[str, Any]) -> None:
    m = _dict(m, "meta")
    for k in ("root", "diffusers_class", "adapter", "config_sha256", "dtype", "mode", "rules"):
        _str(m.get(k), f"meta.{k}")
    for k, v in expect.items():  # the store key pins these
        if m.get(k) != v:
            _fail(f"meta.{k}", f"{str(m.get(k))[:40]!r} is not the key's {str(v)[:40]!r}")
    if m["mode"] not in ("dynamic", "static"):
        _fail("meta.mode", f"{m['mode']!r} is not dynamic or static")
    if not _SLUG.fullmatch(m["root"]):
        _fail("meta.root", f"{m['root'][:40]!r} is not a module name")
    versions = _dict(m.get("versions"), "meta.versions")
    for k, v in versions.items():
        _str(v, f"meta.versions.{k}")
    symbols = _list(m.get("symbols"), "meta.symbols")
    try:
        check_symbols(symbols)
    except TraceError as e:
        _fail("meta.symbols", str(e))
    for s, g in _dict(m.get("guards"), "meta.guards").items():
        if s not in symbols:
            _fail(f"meta.guards.{s}", "not a symbol")
        lo, hi = _list(g, f"meta.guards.{s}", 2)
        if type(lo) is not int or type(hi) is not int or lo > hi:
            _fail(f"meta.guards.{s}", f"expected [low, high] integers, got {str(g)[:40]}")
    for s, v in _dict(m.get("dims"), "meta.dims").items():
        _int(v, f"meta.dims.{s}")
    for lst, count in _dict(m.get("replicas"), "meta.replicas").items():
        _int(count, f"meta.replicas.{lst}", 1, MAX_REPLICAS)
    _int(m.get("graph_nodes"), "meta.graph_nodes")
    _int(m.get("weight_bytes"), "meta.weight_bytes")
    for k in ("weight_bytes_by_dtype", "parameters_by_dtype"):
        for dt, v in _dict(m.get(k), f"meta.{k}").items():
            _int(v, f"meta.{k}.{dt}")
    if m["weight_bytes"] != sum(m["weight_bytes_by_dtype"].values()):
        _fail("meta.weight_bytes", "is not the sum of weight_bytes_by_dtype")
    sec = m.get("seconds")
    if isinstance(sec, bool) or not isinstance(sec, (int, float)) or not 0 <= sec < float("inf"):
        _fail("meta.seconds", f"expected a number of seconds, got {str(sec)[:40]!r}")
    mw = _dict(m.get("matmul_weights"), "meta.matmul_weights")
    dt = m["dtype"]  # --precision fp8 moves these out of the traced dtype: never more than there is
    _int(mw.get("parameters"), "meta.matmul_weights.parameters", 0, m["parameters_by_dtype"].get(dt, 0))
    _int(mw.get("bytes"), "meta.matmul_weights.bytes", 0, m["weight_bytes_by_dtype"].get(dt, 0))


def check_symbols(symbols: Any) -> None:
    """Symbol names must be plain identifiers (they become argument names of the compiled function)."""
    from fxmeter.cost.formula import check_symbols as check

    check(symbols)


def check(d: Any, expect: Mapping[str, Any], *, walk: bool = True) -> SymbolicModel:
    """The symbolic model of a payload read from disk, or :class:`PayloadError` naming what is wrong.

    ``expect`` holds meta values the store key pins (config hash, dtype, rules...).  ``walk=False``
    (a shipped trace whose payload hash matched: its rows were checked when the package was built and
    by the test suite) checks the meta only and skips the row-by-row walk and the probe evaluation.
    """
    d = _dict(d, "payload")
    for k in ("meta", "formulas", "nodes", "modules", "categories", "unmodeled", "liveness"):
        if k not in d:
            _fail("payload", f"no {k!r}")
    _check_meta(d["meta"], expect)
    if not walk:
        try:
            return SymbolicModel.from_dict(d)
        except (KeyError, TypeError, IndexError, ValueError) as e:
            _fail("payload", f"unreadable ({type(e).__name__}: {str(e)[:80]})")
    formulas = _list(d["formulas"], "formulas")
    n = len(formulas)
    if not n or not all(isinstance(f, str) for f in formulas):
        _fail("formulas", "expected a non-empty list of strings")
    nodes = _list(d["nodes"], "nodes")
    for i, row in enumerate(nodes):
        w = f"nodes[{i}]"
        _dict(row, w)
        for k in ("name", "target", "module", "family", "category", "dtype"):
            _str(row.get(k), f"{w}.{k}")
        _int(row.get("replicas"), f"{w}.replicas", 1, MAX_REPLICAS)
        _indices(row.get("cost"), f"{w}.cost", 4, n)
        _indices(row.get("fused"), f"{w}.fused", 2, n)
        _int(row.get("kernel"), f"{w}.kernel", -1, len(nodes) - 1)
        for name, idx in _dict(row.get("shape"), f"{w}.shape").items():
            _indices([idx], f"{w}.shape.{name}", 1, n)
    modules = _list(d["modules"], "modules")
    if not modules:
        _fail("modules", "empty")
    depth: dict[str, int] = {}
    for i, row in enumerate(modules):
        w = f"modules[{i}]"
        _dict(row, w)
        mid = _str(row.get("id"), f"{w}.id")
        if mid in depth:
            _fail(f"{w}.id", f"{mid[:60]!r} repeats")
        parent, dep = row.get("parent"), _int(row.get("depth"), f"{w}.depth")
        if i == 0 and (parent is not None or dep != 0):
            _fail(w, "the first module must be the root (no parent, depth 0)")
        if i > 0 and (not isinstance(parent, str) or parent not in depth or depth[parent] >= dep):
            _fail(f"{w}.parent", f"{str(parent)[:60]!r} is not an earlier module of smaller depth")
        depth[mid] = dep
        _str(row.get("class"), f"{w}.class")
        _int(row.get("parameters"), f"{w}.parameters")
        _int(row.get("weight_bytes"), f"{w}.weight_bytes")
        for k, length in (("self", 4), ("total", 4), ("self_fused", 2), ("total_fused", 2)):
            _indices(row.get(k), f"{w}.{k}", length, n)
    for name, idx in _dict(d["categories"], "categories").items():
        _indices(idx, f"categories.{name}", 4, n)
    for i, u in enumerate(_list(d["unmodeled"], "unmodeled")):
        _dict(u, f"unmodeled[{i}]")
        _str(u.get("op"), f"unmodeled[{i}].op")
        _int(u.get("count"), f"unmodeled[{i}].count")
        if not all(isinstance(x, str) for x in _list(u.get("modules"), f"unmodeled[{i}].modules")):
            _fail(f"unmodeled[{i}].modules", "expected module ids")
    live = _dict(d["liveness"], "liveness")
    _indices(live.get("after_node"), "liveness.after_node", len(nodes), n)
    _str(live.get("model"), "liveness.model")
    sm = SymbolicModel.from_dict(d)
    _check_numbers(sm)
    return sm


def _check_numbers(sm: SymbolicModel) -> None:
    """Compile the formulas (each syntax-tree checked) and check that the costs add up at a probe workload."""
    from fxmeter.cost.formula import compile_table

    meta = sm.meta
    symbols = list(meta["symbols"])
    dims = {}
    for i, s in enumerate(symbols):
        lo, hi = meta["guards"].get(s, (1, 2**62))
        dims[s] = min(max(_PROBE[i % len(_PROBE)], lo), hi)
    try:
        vals = compile_table(sm.formulas, symbols)(**dims)
    except TraceError as e:
        _fail("formulas", str(e))
    if any(v < 0 for v in vals):
        _fail("formulas", f"a cost is negative at {dims}")
    for own, tot in (("self", "total"), ("self_fused", "total_fused")):
        kids: dict[str, list[int]] = {}  # module id -> its children's totals, summed
        for m in sm.modules:
            if m["parent"] is not None:
                acc = kids.setdefault(m["parent"], [0] * len(m[tot]))
                for k, i in enumerate(m[tot]):
                    acc[k] += vals[i]
        for m in sm.modules:
            acc = kids.get(m["id"]) or [0] * len(m[tot])
            if [vals[i] for i in m[tot]] != [vals[i] + a for i, a in zip(m[own], acc)]:
                _fail(f"module {m['id'][:60]}", f"{tot} is not {own} + the children's {tot} at {dims}")
    root = sm.modules[0]
    costed = [row for row in sm.nodes if row["family"] != "free"]
    for k in range(4):
        total = vals[root["total"][k]]
        if total != sum(vals[row["cost"][k]] * row["replicas"] for row in costed):
            _fail("nodes", f"the root's cost {k} is not the sum of the nodes' at {dims}")
        if total != sum(vals[c[k]] for c in sm.categories.values()):
            _fail("categories", f"the categories do not add up to the root's cost {k} at {dims}")
    if root["weight_bytes"] != meta["weight_bytes"] or root["parameters"] != sum(meta["parameters_by_dtype"].values()):
        _fail("modules[0]", "weights or parameters differ from meta")


def formula_symbols(formula: str) -> frozenset[str]:
    """The symbol names a formula string uses (``"2*batch*text_len"`` -> {batch, text_len})."""
    return frozenset(_NAME.findall(formula))
