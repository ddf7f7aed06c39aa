"""The module tree: one place that owns module ids, parents, replicas, roll-ups, order and folding.

A module id is the model's own dotted path from ``named_modules()`` under the stage's root
name: ``transformer``, ``transformer.blocks.0.attn1``.  Repeated blocks (diffusers'
``_repeated_blocks``) are traced once and *replicated*: ``blocks.7.attn1`` has the costs of its
*representative* ``blocks.0.attn1``.  Totals roll up once, leaves first: a module's total is
its own nodes' cost plus its children's totals.  ``natural_key`` orders ``blocks.2`` before
``blocks.10``; folding maps the numbered instances of one class to one id
(``transformer.blocks.*.attn1``).

Analysis builds the tree with networkx (:func:`build`); everything else here is plain Python
over ids, so the warm path (evaluating a cached trace) imports neither networkx nor torch.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import networkx as nx

T = TypeVar("T")
_DIGITS = re.compile(r"\d+")
_BLOCK = re.compile(r"^(.*?\.[A-Za-z_]\w*\.\d+)(?:\.|$)")


# -- ids ----------------------------------------------------------------------------------
def module_id(root: str, path: str) -> str:
    """``blocks.0.attn1`` -> ``transformer.blocks.0.attn1``; ``""`` -> ``transformer``."""
    return f"{root}.{path}" if path else root


def path_of(root: str, mid: str) -> str:
    """The inverse of :func:`module_id`."""
    return mid[len(root) + 1 :] if mid.startswith(root + ".") else ""


def parent_path(path: str) -> str | None:
    """``blocks.0.attn1`` -> ``blocks.0``; ``blocks`` -> ``""``; ``""`` -> None."""
    if not path:
        return None
    return path.rpartition(".")[0]


# -- replicas ---------------------------------------------------------------------------
def replica_count(path: str, replicas: Mapping[str, int]) -> int:
    """How many instances a module path of the *traced* (reduced) model stands for."""
    for lst, n in replicas.items():
        if path == f"{lst}.0" or path.startswith(f"{lst}.0."):
            return n
    return 1


def representative(path: str, replicas: Mapping[str, int]) -> str:
    """``blocks.7.attn1`` -> ``blocks.0.attn1`` when ``blocks`` was traced once and replicated."""
    for lst in replicas:
        prefix = f"{lst}."
        if path.startswith(prefix):
            head, _, rest = path[len(prefix) :].partition(".")
            if head.isdigit():
                return f"{lst}.0" + (f".{rest}" if rest else "")
    return path


def representative_id(mid: str, root: str, replicas: Mapping[str, int]) -> str:
    """:func:`representative` on a module id."""
    if not mid.startswith(root + "."):
        return mid
    return module_id(root, representative(path_of(root, mid), replicas))


def block_of(mid: str) -> str | None:
    """``transformer.blocks.3.attn1`` -> ``transformer.blocks.3``; None outside numbered lists."""
    m = _BLOCK.match(mid)
    return m.group(1) if m else None


# -- order and folding -------------------------------------------------------------------
def natural_key(mid: str) -> tuple[Any, ...]:
    """``blocks.2`` before ``blocks.10`` (``*`` of a folded id sorts as 0)."""
    return tuple((0, int(p), "") if p.isdigit() else (0, 0, "") if p == "*" else (1, 0, p) for p in mid.split("."))


def foldable_parents(modules: Iterable[tuple[str, str]]) -> set[str]:
    """Parents whose numbered children are >= 2 instances of one class (``transformer.blocks``).

    ``modules`` are (id, class) pairs.  ``ff.net.0`` (GELU) and ``ff.net.2`` (Linear) differ in
    class, so ``ff.net`` does not fold.
    """
    classes: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    for mid, cls in modules:
        parent, _, last = mid.rpartition(".")
        if parent and _DIGITS.fullmatch(last):
            classes.setdefault(parent, set()).add(cls)
            counts[parent] = counts.get(parent, 0) + 1
    return {p for p, c in classes.items() if len(c) == 1 and counts[p] >= 2}


def fold_id(mid: str, parents: set[str]) -> str:
    """``transformer.blocks.7.attn1`` -> ``transformer.blocks.*.attn1`` when ``transformer.blocks`` folds."""
    parts = mid.split(".")
    for i in range(1, len(parts)):
        if _DIGITS.fullmatch(parts[i]) and ".".join(parts[:i]) in parents:
            parts[i] = "*"
    return ".".join(parts)


def folded_label(key: str, count: int, how: str = "summed") -> str:
    """``blocks.*.attn1 (40 blocks, summed)``; ``how="each"`` when the value is one instance's."""
    if count <= 1:
        return key
    return f"{key} (each of {count})" if how == "each" else f"{key} ({count} blocks, summed)"


# -- roll-ups ---------------------------------------------------------------------------
def rollup(
    ids: Sequence[str],
    parents: Sequence[str | None],
    depths: Sequence[int],
    own: Callable[[int], T],
    add: Callable[[T, T], T],
) -> list[T]:
    """Each module's total = its own value + its children's totals, deepest modules first.

    ``own(i)`` is module ``i``'s own value (e.g. the costs of its nodes, or of its
    representative's nodes for a replica).  Returns the totals in ``ids`` order.
    """
    index = {m: i for i, m in enumerate(ids)}
    total: list[T | None] = [None] * len(ids)
    children: dict[int, list[int]] = {}
    for i, p in enumerate(parents):
        if p is not None:
            children.setdefault(index[p], []).append(i)
    for i in sorted(range(len(ids)), key=lambda j: -depths[j]):
        acc = own(i)
        for c in children.get(i, ()):
            acc = add(acc, total[c])  # type: ignore[arg-type]
        total[i] = acc
    return total  # type: ignore[return-value]


def build(paths: Sequence[str], attrs: Sequence[Mapping[str, Any]]) -> nx.DiGraph:
    """The module tree as a networkx DiGraph keyed by path (root ``""``), edges parent -> child.

    A path whose parent module is missing (a function-level module) hangs off the closest
    existing ancestor.
    """
    import networkx as nx

    g = nx.DiGraph()
    for p, a in zip(paths, attrs):
        g.add_node(p, **a)
    for p in paths:
        q = parent_path(p)
        while q is not None and q not in g:
            q = parent_path(q)
        if q is not None:
            g.add_edge(q, p)
    return g


def postorder(g: nx.DiGraph) -> Iterable[str]:
    """Children before parents (networkx's DFS post-order from the root)."""
    import networkx as nx

    return nx.dfs_postorder_nodes(g, "")  # type: ignore[no-any-return]
