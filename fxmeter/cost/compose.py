"""One symbolic model for every frame count of a VAE that decodes one chunk at a time.

Wan's VAE decodes (and encodes) its latent video causally, one latent frame per call of its
decoder, in a Python loop (``AutoencoderKLWan._decode``).  ``torch.export`` unrolls the loop,
so an exported graph holds one copy of the decoder per latent frame and its frame count is a
constant: each new ``--frames`` used to cost a new export (33 s for the 14B's VAE at 49 frames).

The unrolled graph has a simple structure once the feature cache is warm: the graph at ``T``
latent frames is a head ``A`` (the first chunks, whose cache is still filling), ``T - T0``
copies of one body ``B`` (a steady chunk) and a tail ``Z``, node for node::

    G(T) = A + B * (T - T0) + Z          for T >= T0

This module checks that structure on traces at ``T0, T0+1, ..., T0+m`` (node targets, modules,
families and categories equal position by position) and builds the model for any ``T > T0``:

* a node of ``A`` or ``Z`` keeps its position; each of its formulas (costs, fused bytes, kernel
  shape, live bytes) is the polynomial in ``T`` through the traced values, fitted on all traces
  but the last and checked exactly on the last (``T`` enters through sizes only: the output
  grows with ``T``, the per-chunk work does not);
* a node of ``B`` whose formulas are the same in every copy of every trace runs ``T - T0`` times
  (``repeat``, a formula: one row, issued ``T - T0`` times, as a replicated block's node is);
* a node of ``B`` whose cost changes from copy to copy (the ``torch.cat`` that appends each
  decoded chunk to the output reads a longer output each time) is one row costing the sum over
  its copies, a polynomial in ``T`` (quadratic for the ``cat``) fitted and checked the same way;
* live bytes of a ``B`` node are those of its last copy (the output only grows), checked to grow
  monotonically from copy to copy;
* module and category totals are fitted the same way, and the composed model must add up
  exactly as a traced one does (:func:`fxmeter.cost.symbolic.check`).

Any mismatch raises :class:`ComposeError` and the caller traces the frame count itself, so a
composed model is never an approximation: it equals the direct trace at every ``T`` for which the
structure holds (``tests/test_compose.py`` compares it with direct traces at frame counts it was
not built from).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from fxmeter.cost.symbolic import SymbolicModel
from fxmeter.errors import TraceError

#: traces a composition is built from: T0 .. T0 + POINTS - 1 (degree <= POINTS - 3 fitted, one check)
POINTS = 5
#: meta values that grow with the loop (fitted like the costs; :func:`meta_value` reads them)
META_FORMULAS = ("weight_read_bytes",)
#: the largest head a loop may have (T0): Wan's decoder is steady from its third latent frame (T0 = 2)
MAX_HEAD = 3
MAX_FRAMES = 1024


class ComposeError(TraceError):
    """The traces do not have the head + body x (T - T0) + tail structure (or their costs are not polynomial)."""


def _sig(n: Mapping[str, Any]) -> tuple[str, str, str, str]:
    return (n["target"], n["module"], n["family"], n["category"])


@lru_cache(maxsize=65536)
def _expr(s: str) -> Any:
    import sympy

    return sympy.sympify(s, locals={}) if s != "0" else sympy.Integer(0)


def _string(e: Any) -> str:
    """An integer-valued polynomial as the store's formula language: ``(integer polynomial)//d``."""
    import sympy

    e = sympy.expand(e)
    if e.is_Integer:
        return str(int(e))
    syms = sorted(e.free_symbols, key=str)
    poly = sympy.Poly(e, *syms)
    den = math.lcm(*[int(sympy.Rational(c).q) for c in poly.coeffs()])
    num = sympy.expand(e * den)
    return str(num) if den == 1 else f"({num})//{den}"


class _Fitter:
    """Polynomials in ``T`` through per-trace formula strings, memoised (most tuples repeat)."""

    def __init__(self, symbol: str, ts: Sequence[int]):
        import sympy

        self.T = sympy.Symbol(symbol, integer=True)
        self.ts = list(ts)
        self.memo: dict[tuple[str, ...], str] = {}

    def fit(self, values: Sequence[str], ts: Sequence[int] | None = None, what: str = "") -> str:
        """The polynomial in T through ``values`` at ``ts`` (all but the last fit it; the last checks it)."""
        ts = list(ts if ts is not None else self.ts)
        key = (*values, "@", *map(str, ts))
        got = self.memo.get(key)
        if got is not None:
            return got
        if len(set(values)) == 1:
            self.memo[key] = values[0]
            return values[0]
        import sympy

        exprs = [_expr(v) for v in values]
        fit_t, fit_v = ts[:-1], exprs[:-1]
        poly = sympy.Integer(0)
        for i, (ti, vi) in enumerate(zip(fit_t, fit_v)):  # Lagrange: exact over the rationals
            term = vi
            for j, tj in enumerate(fit_t):
                if j != i:
                    term = term * (self.T - tj) / sympy.Integer(ti - tj)
            poly += term
        poly = sympy.expand(poly)
        if sympy.expand(poly.subs(self.T, ts[-1]) - exprs[-1]) != 0:
            raise ComposeError(f"{what or 'a cost'} is not a polynomial of degree < {len(fit_t)} in "
                               f"{self.T} over {ts}: the loop's cost does not compose")
        out = _string(poly)
        self.memo[key] = out
        return out


def _structure(graphs: Mapping[int, list[tuple[str, str, str, str]]]) -> tuple[int, int, int, int]:
    """(T0, len A, len B, len Z) with every graph at T equal to A + B * (T - T0) + Z, the head A as
    short as that allows; else ComposeError."""
    ts = sorted(graphs)
    g0, g1 = graphs[ts[0]], graphs[ts[1]]
    body = len(g1) - len(g0)
    if body <= 0:
        raise ComposeError(f"the graph does not grow from {ts[0]} to {ts[1]} frames")
    p = 0
    while p < len(g0) and g0[p] == g1[p]:
        p += 1
    if g0[p:] != g1[p + body:]:
        raise ComposeError(f"the graphs at {ts[0]} and {ts[1]} frames differ by more than one inserted chunk")
    b = g1[p:p + body]
    head, tail = p, len(g0) - p
    while head >= body and g0[head - body:head] == b:  # earlier copies of the chunk belong to the body
        head -= body
    a, z = g0[:head], g0[len(g0) - tail:]
    t0 = ts[0] - (len(g0) - head - tail) // body
    for t, g in graphs.items():
        k = t - t0
        if len(g) != head + k * body + tail or g[:head] != a or g[head + k * body:] != z or any(
                g[head + i * body:head + (i + 1) * body] != b for i in range(k)):
            raise ComposeError(f"the graph at {t} frames is not head + {k} x chunk + tail")
    return t0, head, body, tail


def compose(models: Mapping[int, SymbolicModel], symbol: str) -> SymbolicModel:
    """The model of every ``symbol`` >= T0 + 2 from traces at consecutive values (see the module doc).

    Each model is a trace with ``symbol`` fixed (its guard ``[T, T]``) and everything else as traced;
    each must hold at least two copies of the chunk (the last copy differs: its cache writes are dead).
    """
    ts = sorted(models)
    if ts != list(range(ts[0], ts[0] + len(ts))) or len(ts) < 4:
        raise ComposeError(f"need traces at 4 or more consecutive values of {symbol}; got {ts}")
    sms = [models[t] for t in ts]
    first = sms[0]
    if any(sm.symbols != first.symbols for sm in sms) or symbol not in first.symbols:
        raise ComposeError(f"the traces do not share their symbols, or {symbol!r} is not one of them")
    if any([m["id"] for m in sm.modules] != [m["id"] for m in first.modules] for sm in sms):
        raise ComposeError("the traces do not share their modules")
    if any(sorted(sm.categories) != sorted(first.categories) for sm in sms):
        raise ComposeError("the traces do not share their categories")
    if any(sm.unmodeled for sm in sms):
        raise ComposeError("a trace has ops without a rule")
    t0, head, body, tail = _structure({t: [_sig(n) for n in sm.nodes] for t, sm in zip(ts, sms)})
    why = None
    for lead in range(ts[0] - t0 - 1):  # chunk copies counted in the head (the first can fuse into it)
        try:
            return _build(models, symbol, t0 + lead, head + lead * body, body, tail)
        except ComposeError as e:
            why = why or e
    raise why or ComposeError(f"the trace at {ts[0]} frames has fewer than two copies of the chunk")


def _build(models: Mapping[int, SymbolicModel], symbol: str, t0: int, head: int, body: int, tail: int) -> SymbolicModel:
    """The composed model for the structure head + chunk x (T - t0) + tail (see :func:`compose`)."""
    ts = sorted(models)
    sms = [models[t] for t in ts]
    first = sms[0]
    fit = _Fitter(symbol, ts)
    formulas: list[str] = ["0"]
    index: dict[str, int] = {"0": 0}

    def add(s: str) -> int:
        i = index.get(s)
        if i is None:
            i = index[s] = len(formulas)
            formulas.append(s)
        return i

    def strings(sm: SymbolicModel, idx: Sequence[int]) -> list[str]:
        return [sm.formulas[i] for i in idx]

    def fit_rows(rows: Sequence[Sequence[str]], what: str) -> list[int]:
        return [add(fit.fit([r[k] for r in rows], what=what)) for k in range(len(rows[0]))]

    def fields(t: int, j: int) -> list[str]:
        """Node ``j`` of the trace at ``t``: cost (4), fused bytes (2), kernel shape, live bytes."""
        sm = models[t]
        n = sm.nodes[j]
        return [*strings(sm, n["cost"]), *strings(sm, n["fused"]), *strings(sm, list(n["shape"].values())),
                sm.formulas[sm.liveness["after_node"][j]]]

    def middle(t: int) -> int:
        """Copies of the chunk before the last one in the trace at ``t``."""
        return t - t0 - 1

    def composed_index(t: int, j: int) -> int:
        """Position in the composed list (head, one middle chunk, last chunk + tail) of node ``j`` at ``t``."""
        if j < head:
            return j
        end = head + middle(t) * body
        return head + (j - head) % body if j < end else head + body + (j - end)

    def kernel_of(at: Sequence[tuple[int, int]], own: int) -> int:
        """The composed ``kernel`` of a row (``own``: its index) standing for the nodes ``at``.

        A node's kernel is the node whose fused kernel runs it (-1: none); only whether a node opens its
        own kernel counts (a launch), and that must hold for every node the row stands for.  A kernel
        that opens in an earlier chunk (the encoder fuses across its cache) points to that chunk's row.
        """
        opens = set()
        last = -1
        for t, j in at:
            kern = models[t].nodes[j].get("kernel", -1)
            opens.add(kern in (-1, j))
            if kern not in (-1, j):
                last = composed_index(t, kern)
        if len(opens) != 1:
            raise ComposeError("a node opens its own fused kernel in one chunk and not in another")
        return (-1 if all(models[t].nodes[j].get("kernel", -1) == -1 for t, j in at) else own) if opens.pop() else last

    nodes: list[dict[str, Any]] = []
    live: list[int] = []
    ref = models[ts[0]]
    repeat = add(_string(_expr(symbol) - (t0 + 1)))

    def emit(n: Mapping[str, Any], values: list[int], kernel: int, extra: Mapping[str, Any]) -> None:
        nodes.append({**n, "cost": values[:4], "fused": values[4:6], "shape": dict(zip(n["shape"], values[6:-1])),
                      "kernel": kernel, **extra})
        live.append(values[-1])

    def fixed(at: Mapping[int, int]) -> None:
        """A node at one position per trace (head, last chunk, tail): each formula fitted in T."""
        n = ref.nodes[at[ts[0]]]
        emit(n, fit_rows([fields(t, j) for t, j in at.items()], f"node {n['name']}"),
             kernel_of(list(at.items()), len(nodes)), {})

    for j in range(head):
        fixed(dict.fromkeys(ts, j))
    for b in range(body):  # the middle copies of the chunk
        copies = {t: [head + i * body + b for i in range(middle(t))] for t in ts}
        n = ref.nodes[head + b]
        rows = {t: [fields(t, j) for j in copies[t]] for t in ts}
        for t in ts:  # live bytes: the largest is the last middle copy's (the decoded output only grows)
            lives = [_expr(r[-1]) for r in rows[t]]
            if any(not _nonnegative(y - x) for x, y in zip(lives, lives[1:])):
                raise ComposeError(f"live bytes at node {n['name']} do not grow from chunk to chunk")
        last_live = add(fit.fit([rows[t][-1][-1] for t in ts], what=f"live bytes at node {n['name']}"))
        kernel = kernel_of([(t, j) for t in ts for j in copies[t]], len(nodes))
        costs = {tuple(r[:-1]) for t in ts for r in rows[t]}
        if len(costs) == 1:  # the same in every copy: one row that runs T - T0 - 1 times
            emit(n, [*(add(s) for s in costs.pop()), last_live], kernel, {"repeat": repeat})
            continue
        import sympy  # a cost that changes from copy to copy: one row costing the sum over the copies

        sums = [[str(sympy.expand(sum((_expr(r[k]) for r in rows[t]), sympy.Integer(0)))) for k in range(6)]
                for t in ts]
        shapes = fit_rows([rows[t][-1][6:-1] for t in ts], f"node {n['name']} shape") if n["shape"] else []
        emit(n, [*fit_rows(sums, f"node {n['name']} (summed over chunks)"), *shapes, last_live], kernel, {})
    for r in range(body + tail):  # the last copy of the chunk (its cache writes are dead), then the tail
        fixed({t: head + middle(t) * body + r for t in ts})

    modules = []
    for i, m in enumerate(first.modules):
        row = dict(m)
        for k in ("self", "total", "self_fused", "total_fused"):
            row[k] = fit_rows([strings(sm, sm.modules[i][k]) for sm in sms], f"module {m['id']} {k}")
        modules.append(row)
    categories = {c: fit_rows([strings(sm, sm.categories[c]) for sm in sms], f"category {c}")
                  for c in first.categories}
    meta = dict(ref.meta)
    # weights read per run: each chunk reads the decoder's weights again (sequential offload streams them)
    per_run = {k: add(fit.fit([str(int(sm.meta[k])) for sm in sms], what=f"meta {k}"))
               for k in META_FORMULAS if isinstance(ref.meta.get(k), int)}
    meta.update(
        meta_formulas=per_run,
        guards={**first.meta["guards"], symbol: [t0 + 2, MAX_FRAMES]},
        dims={k: v for k, v in (first.meta.get("dims") or {}).items() if k != symbol},
        graph_nodes=len(nodes),
        seconds=round(sum(float(sm.meta.get("seconds", 0)) for sm in sms), 3),
        composed={"symbol": symbol, "t0": t0, "traced": ts, "head": head, "chunk": body, "tail": tail},
    )
    out = SymbolicModel(meta, tuple(formulas), tuple(nodes), tuple(modules), categories, (),
                        {**first.liveness, "after_node": live})
    from fxmeter.cost.symbolic import PayloadError

    try:
        return check(out.to_dict(), {})
    except PayloadError as e:
        raise ComposeError(f"the composed model does not add up: {e}") from None


def check(d: Any, expect: Mapping[str, Any], *, walk: bool = True) -> SymbolicModel:
    """A composed model read from disk, checked as a traced one is (:func:`fxmeter.cost.symbolic.check`),
    each repeated row's cost multiplied out by its ``repeat`` for the check; :class:`PayloadError` if unusable."""
    from fxmeter.cost.symbolic import PayloadError
    from fxmeter.cost.symbolic import check as check_traced

    if not isinstance(d, dict) or not isinstance(d.get("nodes"), list) or not isinstance(d.get("formulas"), list):
        raise PayloadError("payload: not a symbolic model")
    formulas, n = list(d["formulas"]), len(d["formulas"])
    nodes = []
    for i, row in enumerate(d["nodes"]):
        if isinstance(row, dict) and "repeat" in row:
            r, cost = row["repeat"], row.get("cost")
            if type(r) is not int or not 0 <= r < n or not isinstance(cost, list) or not all(
                    type(c) is int and 0 <= c < n for c in cost):
                raise PayloadError(f"nodes[{i}].repeat: expected a formula index in [0, {n}) and cost indices")
            row = {**row, "cost": [len(formulas) + k for k in range(len(cost))]}
            formulas += [f"({d['formulas'][c]})*({d['formulas'][r]})" for c in cost]
            row.pop("repeat")
        nodes.append(row)
    check_traced({**d, "formulas": formulas, "nodes": nodes}, expect, walk=walk)
    return SymbolicModel.from_dict(d)


#: (call adapter, VAE class) whose loop runs one latent frame per iteration: their traces compose over
#: the frame count.  CogVideoX decodes two-frame batches and HunyuanVideo (1.5) overlapping temporal
#: tiles: those keep one trace per frame count.
COMPOSABLE = frozenset({("vae-decode", "AutoencoderKLWan"), ("vae-encode", "AutoencoderKLWan")})


def composable(adapter: Any, config: Mapping[str, Any]) -> bool:
    """Whether ``adapter``'s traces of ``config`` compose over the frame count (an adapter can say so itself)."""
    return bool(getattr(adapter, "composable", False)) or (adapter.name, config.get("_class_name")) in COMPOSABLE


def meta_value(sm: SymbolicModel, key: str, vals: Sequence[int] | None) -> Any:
    """``sm.meta[key]``, or for a composed model the value of its formula at the workload (``vals``: the
    evaluated formula table; None gives the stored value, the first traced frame count's)."""
    idx = (sm.meta.get("meta_formulas") or {}).get(key)
    return sm.meta.get(key) if idx is None or vals is None else vals[idx]


def _nonnegative(e: Any) -> bool:
    """Every coefficient of a polynomial in non-negative symbols is >= 0 (so its value is, too)."""
    import sympy

    e = sympy.expand(e)
    if e.is_Number:
        return bool(e >= 0)
    return all(c >= 0 for c in sympy.Poly(e, *sorted(e.free_symbols, key=str)).coeffs())
