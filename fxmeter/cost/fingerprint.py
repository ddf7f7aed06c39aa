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


def _sources() -> list[tuple[str, Path]]:
    out = []
    for package, name in SOURCES:
        root = Path(str(resources.files(package)))
        if name is None:
            out += [(f"{package}/{p.name}", p) for p in sorted(root.glob("*.py"))]
        else:
            out.append((f"{package}/{name}", root / name))
    return out


def _memo_path() -> Path | None:
    import os

    env = os.environ.get("FXMETER_CACHE_DIR")
    try:
        if env:
            return Path(env) / "fingerprint.json"
        import platformdirs

        return Path(platformdirs.user_cache_dir("fxmeter")) / "fingerprint.json"
    except Exception:  # no usable cache folder: compute every time
        return None


@lru_cache(maxsize=1)
def rules_fingerprint() -> str:
    """One hash over every source in :data:`SOURCES` (16 hex digits).

    Each file's digest is remembered by (path, size, mtime) in the cache folder
    (``fingerprint.json``), so the warm path parses only files that changed.
    """
    import json

    memo_path = _memo_path()
    memo: dict[str, list[object]] = {}
    if memo_path is not None:
        try:
            memo = json.loads(memo_path.read_text())
            if not isinstance(memo, dict):
                memo = {}
        except (OSError, ValueError):
            memo = {}
    changed = False
    h = hashlib.sha256()
    for name, path in _sources():
        st = path.stat()
        stamp = [st.st_size, st.st_mtime_ns]
        got = memo.get(str(path))
        if isinstance(got, list) and len(got) == 3 and got[:2] == stamp and isinstance(got[2], str):
            digest = got[2]
        else:
            digest = source_digest(path.read_text(encoding="utf-8"))
            memo[str(path)] = [*stamp, digest]
            changed = True
        h.update(name.encode() + b"\0" + digest.encode() + b"\n")
    if changed and memo_path is not None:
        try:
            from fxmeter.base.fileio import atomic_write

            memo_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(memo_path, json.dumps(memo, sort_keys=True).encode())
        except OSError:
            pass
    return h.hexdigest()[:16]


def files() -> list[str]:
    """The files the fingerprint covers (for ``fxmeter cache info``)."""
    return [name for name, _ in _sources()]


def path_of(package: str) -> Path:
    return Path(str(resources.files(package)))
