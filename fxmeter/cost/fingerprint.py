"""Fingerprint of the code that turns a graph into costs: rules, adapters, capture and analysis.

Part of every store key (the user cache and the traces shipped in the package): change a
rule's formula and the next trace is recomputed, never a stale cache hit.  The hash is
over each module's syntax tree without docstrings, so editing a comment or a docstring
keeps the cache; editing code does not.  Pure Python (``ast``), a few milliseconds, no
torch import: it runs on the warm path.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from importlib import resources
from pathlib import Path

#: Packages and modules whose code decides the numbers of a symbolic model.
SOURCES = (
    ("fxmeter.rules", None),
    ("fxmeter.model.adapters", None),
    ("fxmeter.model", "capture.py"),
    ("fxmeter.cost", "analyze.py"),
    ("fxmeter.cost", "shapes.py"),
    ("fxmeter.cost", "liveness.py"),
    ("fxmeter.cost", "traffic.py"),
    ("fxmeter.cost", "tree.py"),
    ("fxmeter.cost", "formula.py"),
    ("fxmeter.cost", "symbolic.py"),
)


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            first = body[0] if body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def source_digest(text: str) -> str:
    """sha256 of a module's code (its syntax tree without docstrings; comments never count)."""
    tree = _strip_docstrings(ast.parse(text))
    return hashlib.sha256(ast.dump(tree, include_attributes=False).encode()).hexdigest()


def _files() -> list[tuple[str, str]]:
    out = []
    for package, name in SOURCES:
        root = resources.files(package)
        if name is None:
            for entry in sorted(root.iterdir(), key=lambda e: e.name):
                if entry.name.endswith(".py"):
                    out.append((f"{package}/{entry.name}", entry.read_text(encoding="utf-8")))
        else:
            out.append((f"{package}/{name}", root.joinpath(name).read_text(encoding="utf-8")))
    return out


@lru_cache(maxsize=1)
def rules_fingerprint() -> str:
    """One hash over every source in :data:`SOURCES` (16 hex digits)."""
    h = hashlib.sha256()
    for name, text in _files():
        h.update(name.encode() + b"\0" + source_digest(text).encode() + b"\n")
    return h.hexdigest()[:16]


def files() -> list[str]:
    """The files the fingerprint covers (for ``fxmeter cache info``)."""
    return [name for name, _ in _files()]


def path_of(package: str) -> Path:
    return Path(str(resources.files(package)))
