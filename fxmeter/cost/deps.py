"""What a trace depends on: the source files whose code shaped its graph and its numbers.

Why one long module: finding a dependency's files without importing its package, digesting
their code (docstrings stripped), and checking a stored header against them are one contract
that the store, the shipper and the tests read together; split, the three would drift apart.

A stored trace (shipped or cached) is looked up by what it *is* (class, config, dtype, stage,
adapter name, torch major.minor: :func:`fxmeter.cost.store.key`) and kept only while what it
*depends on* is unchanged.  Its header lists those files with their digests:

* the library code that ran: every file in the graph's stack traces (the forward methods,
  attention processors and helpers that produced an op) and the files defining the classes of
  the model's modules and its config class (their ``__init__`` decides the structure);
* fxmeter's code: the rule modules the graph's ops use (and the rule modules they import), the
  adapter's class and its bases, and the capture/analysis engine (:data:`ENGINE`).

torch's own files are not listed: torch's export behaviour is keyed by its major.minor version.
A file is named ``<package>/<path inside it>`` (``diffusers/models/transformers/transformer_wan.py``,
``fxmeter.rules/conv.py``) and found again without importing its package
(``importlib.util.find_spec`` of the top-level name), so checking a trace costs a few file reads.

Each digest is ``[raw, code]``: the sha256 of the bytes and of the syntax tree without docstrings
(:func:`fxmeter.cost.fingerprint.source_digest`), 16 hex digits each.  A check hashes the bytes
(cheap); only a file whose bytes changed is parsed, so a release that edits docstrings or
comments alone keeps the trace.  A shared helper file that appears only in stack traces
(``transformers/modeling_utils.py``, ``diffusers/models/attention_dispatch.py``) is kept to the
functions that ran: ``[raw, code, [qualified names]]``, the code digest over those definitions
only, so a release that changes other parts of a large shared file keeps the trace.  Digests are
remembered per (path, size, mtime) in the cache folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from fxmeter.cost.fingerprint import source_digest

LOG = logging.getLogger(__name__)

#: fxmeter files every trace depends on: how a graph is captured, costed and stored.
ENGINE = (
    "fxmeter/model/capture.py",
    "fxmeter/model/adapters/__init__.py",
    "fxmeter/model/adapters/_common.py",
    "fxmeter/cost/analyze.py",
    "fxmeter/cost/shapes.py",
    "fxmeter/cost/liveness.py",
    "fxmeter/cost/traffic.py",
    "fxmeter/cost/tree.py",
    "fxmeter/cost/formula.py",
    "fxmeter/cost/symbolic.py",
    "fxmeter.rules/__init__.py",
    "fxmeter.rules/free.py",
)
#: top-level packages whose files are never listed (torch is keyed by its version instead)
SKIP = frozenset({"torch", "torchgen", "functorch", "sympy", "mpmath", "triton"})
#: packages a file may belong to that are not top-level names (fxmeter.rules ships from rules/)
SUBPACKAGES = ("fxmeter.rules",)
Digest = list[Any]  # [raw sha256, code digest] (16 hex digits each), plus the definitions' names for a helper file


@cache
def root_of(package: str) -> Path | None:
    """The folder of ``package`` (a top-level name or one of :data:`SUBPACKAGES`), without importing it."""
    import importlib.util

    try:
        if package in SUBPACKAGES:
            from importlib import resources

            return Path(str(resources.files(package)))
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    locs = list(spec.submodule_search_locations or []) if spec is not None else []
    return Path(locs[0]).resolve() if locs else None


def _stdlib() -> Path:
    import sysconfig

    return Path(sysconfig.get_paths()["stdlib"]).resolve()


def name_files(paths: Iterable[str | Path]) -> dict[str, Path]:
    """``<package>/<relative path>`` -> path for each file of a non-torch, non-stdlib package."""
    roots: dict[Path, str] = {}
    for name, mod in list(sys.modules.items()):
        if "." in name or name in SKIP or not getattr(mod, "__path__", None):
            continue
        r = root_of(name)
        if r is not None:
            roots[r] = name
    for sub in SUBPACKAGES:
        r = root_of(sub)
        if r is not None:
            roots[r] = sub
    stdlib = _stdlib()
    out: dict[str, Path] = {}
    for p in paths:
        path = Path(p)
        if path.suffix != ".py" or not path.is_file():
            continue
        path = path.resolve()
        if path.is_relative_to(stdlib) and "site-packages" not in path.parts:
            continue
        best = max((r for r in roots if path.is_relative_to(r)), key=lambda r: len(r.parts), default=None)
        if best is not None:
            out[f"{roots[best]}/{path.relative_to(best).as_posix()}"] = path
    return dict(sorted(out.items()))


def resolve(name: str) -> Path | None:
    """The file named ``<package>/<relative path>`` in this environment (None: no such package or file, or a name
    that is not one: a dotted or odd package name, which ``find_spec`` would import the parent of, or a path
    outside the package's folder; a stored file's header is read before it is trusted)."""
    from pathlib import PurePosixPath

    package, _, rel = name.partition("/")
    if not rel or not (package.isidentifier() or package in SUBPACKAGES):
        return None
    relp = PurePosixPath(rel)
    if relp.is_absolute() or ".." in relp.parts or "\\" in rel or relp.suffix != ".py":
        return None
    root = root_of(package)
    if root is None:
        return None
    path = root / rel
    try:
        if not path.resolve().is_relative_to(root.resolve()):
            return None
    except (OSError, RuntimeError):
        return None
    return path if path.is_file() else None


# -- digests, remembered by (path, size, mtime) ------------------------------------------------
_MEMO: dict[str, list[object]] | None = None
_MEMO_DIRTY = False


def _memo_path() -> Path | None:
    env = os.environ.get("FXMETER_CACHE_DIR")
    try:
        if env:
            return Path(env) / "sources.json"
        import platformdirs

        return Path(platformdirs.user_cache_dir("fxmeter")) / "sources.json"
    except Exception:  # no usable cache folder: compute every time
        return None


def _memo() -> dict[str, list[object]]:
    global _MEMO
    if _MEMO is None:
        _MEMO = {}
        path = _memo_path()
        if path is not None:
            try:
                got = json.loads(path.read_text())
                _MEMO = got if isinstance(got, dict) else {}
            except (OSError, ValueError):
                pass
    return _MEMO


def save_memo() -> None:
    """Write the remembered digests back (a failure to write is ignored)."""
    global _MEMO_DIRTY
    path = _memo_path()
    if not _MEMO_DIRTY or path is None or _MEMO is None:
        return
    try:
        from fxmeter.base.fileio import atomic_write

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(_MEMO, sort_keys=True).encode())
        _MEMO_DIRTY = False
    except OSError:
        pass


def _stamp(path: Path) -> list[object]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def raw_digest(path: Path) -> str:
    """sha256 of the file's bytes (16 hex digits), remembered by its size and mtime."""
    global _MEMO_DIRTY
    memo = _memo()
    stamp = _stamp(path)
    got = memo.get(str(path))
    if isinstance(got, list) and len(got) == 4 and got[:2] == stamp and isinstance(got[2], str):
        return got[2]
    raw = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    memo[str(path)] = [*stamp, raw, None]
    _MEMO_DIRTY = True
    return raw


def code_digest(path: Path) -> str:
    """Digest of the file's code (syntax tree without docstrings; 16 hex digits), remembered."""
    global _MEMO_DIRTY
    raw = raw_digest(path)
    memo = _memo()
    got = memo[str(path)]
    if isinstance(got[3], str):
        return got[3]
    try:
        code = source_digest(path.read_text(encoding="utf-8"))[:16]
    except (SyntaxError, UnicodeDecodeError, ValueError):
        code = "raw:" + raw
    memo[str(path)] = [got[0], got[1], raw, code]
    _MEMO_DIRTY = True
    return code


def _definitions(text: str) -> list[tuple[str, int, int, Any]]:
    """(qualified name, first line, last line, node) of every function and class definition."""
    import ast

    out: list[tuple[str, int, int, Any]] = []

    def walk(node: Any, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                q = f"{prefix}{child.name}"
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])  # a code object starts there
                out.append((q, first, child.end_lineno or child.lineno, child))
                walk(child, q + ".")
            else:
                walk(child, prefix)

    walk(ast.parse(text), "")
    return out


def enclosing(path: Path, lines: Iterable[int]) -> list[str]:
    """The innermost definitions holding ``lines`` of ``path`` (``<module>``: a line outside any)."""
    defs = _definitions(path.read_text(encoding="utf-8"))
    out = set()
    for ln in lines:
        inside = [d for d in defs if d[1] <= ln <= d[2]]
        out.add(max(inside, key=lambda d: d[1])[0] if inside else "<module>")
    return sorted(out)


def defs_digest(path: Path, names: list[str]) -> str:
    """Digest of the definitions ``names`` in ``path`` (docstrings stripped; a missing one counts as
    missing), remembered by the file's size and mtime."""
    import ast

    from fxmeter.cost.fingerprint import _strip_docstrings

    global _MEMO_DIRTY
    memo = _memo()
    slot = f"{path}::{','.join(names)}"
    stamp = _stamp(path)
    got = memo.get(slot)
    if isinstance(got, list) and len(got) == 3 and got[:2] == stamp and isinstance(got[2], str):
        return got[2]
    try:
        text = path.read_text(encoding="utf-8")
        found = {q: node for q, _, _, node in _definitions(text)}
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return "unreadable"
    h = hashlib.sha256()
    for q in names:
        if q == "<module>":
            h.update(b"<module>" + code_digest(path).encode())
        elif q in found:
            h.update(q.encode() + b"\0" + ast.dump(_strip_docstrings(found[q]), include_attributes=False).encode())
        else:
            h.update(q.encode() + b"\0missing")
        h.update(b"\n")
    out = h.hexdigest()[:16]
    memo[slot] = [*stamp, out]
    _MEMO_DIRTY = True
    return out


def imported_functions(name: str, path: Path) -> dict[str, tuple[Path, set[str]]]:
    """The functions that file ``name`` (``<package>/<path>``) imports from other files of its package:
    ``name -> (path, function names)`` (``from ..attention_dispatch import dispatch_attention_fn``).
    Imported classes are left out: a traced module's class is listed whole by its own file, and base
    classes (``ModelMixin``) hold loading machinery, not the graph."""
    import ast

    package = name.split("/", 1)[0]
    root = root_of(package)
    if root is None:
        return {}
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return {}
    here = path.resolve().parent
    out: dict[str, tuple[Path, set[str]]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = here
            for _ in range(node.level - 1):
                base = base.parent
            parts = node.module.split(".") if node.module else []
        elif node.module and node.module.split(".")[0] == package:
            base, parts = root, node.module.split(".")[1:]
        else:
            continue
        target = base.joinpath(*parts)
        source = target.with_suffix(".py") if target.with_suffix(".py").is_file() else target / "__init__.py"
        if not source.is_file() or not source.resolve().is_relative_to(root):
            continue
        try:
            defs = {q for q, _, _, n in _definitions(source.read_text(encoding="utf-8"))
                    if "." not in q and isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
            continue
        wanted = {a.name for a in node.names} & defs
        if wanted:
            key = f"{package}/{source.resolve().relative_to(root).as_posix()}"
            out.setdefault(key, (source.resolve(), set()))[1].update(wanted)
    return out


def digests(files: Mapping[str, Path], helpers: Mapping[str, tuple[Path, list[str]]] | None = None) -> dict[str, Digest]:
    """``name -> [raw, code]`` of each whole file; ``name -> [raw, code, names]`` of each helper file
    (``helpers``: name -> (path, the definitions that ran))."""
    out: dict[str, Digest] = {name: [raw_digest(p), code_digest(p)] for name, p in files.items()}
    for name, (path, names) in (helpers or {}).items():
        if name not in out:
            out[name] = [raw_digest(path), defs_digest(path, names), list(names)]
    return dict(sorted(out.items()))


def changed(deps: Mapping[str, object]) -> list[str]:
    """The files of ``deps`` whose code differs here (or that are missing); empty: the trace is current."""
    out = []
    for name, want in deps.items():
        if not (isinstance(want, list) and len(want) in (2, 3) and all(isinstance(x, str) for x in want[:2])):
            out.append(name)
            continue
        names = want[2] if len(want) == 3 else None
        if names is not None and not (isinstance(names, list) and all(isinstance(x, str) for x in names)):
            out.append(name)
            continue
        path = resolve(name)
        try:
            if path is None:
                out.append(name)
            elif raw_digest(path) != want[0]:
                code = code_digest(path) if names is None else defs_digest(path, names)
                if code != want[1]:
                    out.append(name)
        except OSError:
            out.append(name)
    return out


def engine_files() -> dict[str, Path]:
    out = {}
    for name in ENGINE:
        p = resolve(name)
        if p is not None:
            out[name] = p
    return out


def module_files(modules: Iterable[str]) -> list[str]:
    """The source files of imported modules (those not imported are skipped)."""
    out = []
    for m in modules:
        f = getattr(sys.modules.get(m), "__file__", None)
        if f:
            out.append(f)
    return out


def rule_modules(targets: Iterable[str]) -> dict[str, str]:
    """target -> the rule module that costs it (``free``: on the free list, ``""``: no rule)."""
    from fxmeter.rules import is_free, lookup

    out = {}
    for t in sorted(set(targets)):
        if is_free(t):
            out[t] = "free"
        else:
            rule = lookup(t)
            out[t] = rule.module if rule is not None else ""
    return out


def rule_files(rule_map: Mapping[str, str]) -> list[str]:
    """The files of the rule modules in ``rule_map`` and of the rule modules they import from."""
    mods = {m for m in rule_map.values() if m and m != "free"}
    for m in list(mods):
        for v in vars(sys.modules[m]).values() if m in sys.modules else ():
            owner = getattr(v, "__module__", None) if not isinstance(v, type(sys)) else getattr(v, "__name__", None)
            if isinstance(owner, str) and owner.startswith("fxmeter.rules.") and owner != m:
                mods.add(owner)
    return module_files(sorted(mods))


def adapter_files(adapter: object) -> list[str]:
    """The files of the adapter's class and its fxmeter bases."""
    mods = [c.__module__ for c in type(adapter).__mro__ if c.__module__.startswith("fxmeter.")]
    return module_files(dict.fromkeys(mods))


def describe(names: Iterable[str], shown: int = 2) -> str:
    """``diffusers changed models/transformers/transformer_wan.py`` for a list of changed file names."""
    by_pkg: dict[str, list[str]] = {}
    for n in names:
        pkg, _, rel = n.partition("/")
        by_pkg.setdefault(pkg, []).append(rel)
    parts = []
    for pkg, rels in sorted(by_pkg.items()):
        more = f" and {len(rels) - shown} more" if len(rels) > shown else ""
        parts.append(f"{pkg} changed {', '.join(rels[:shown])}{more}")
    return "; ".join(parts)
