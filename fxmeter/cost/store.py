"""On-disk cache of symbolic models: trace once, report any workload in well under a second.

A dynamic trace of a model is plain data (:class:`~fxmeter.analysis.SymbolicModel`).
It is stored under the user cache directory (``platformdirs.user_cache_dir("fxmeter")``,
``FXMETER_CACHE_DIR`` overrides) in one file per key::

    <cache>/symbolic/<sha256 of the key>.fxc

The key holds the model id, the config hash, the dtype policy, the replicate flag,
the fxmeter/torch/diffusers versions (read with :mod:`importlib.metadata`, so the
warm path never imports torch) and the analysis schema.  A file is one JSON header
line (magic, format, key, payload sha256) followed by the orjson payload; a stale,
corrupted, truncated or foreign file is ignored (and later overwritten), never a
crash.  Writes are atomic (temp file + rename), so concurrent runs cannot leave a
half file behind.

The CLI's cold path may fill the cache from a detached background process
(:func:`fill_in_background`, ``python -m fxmeter.cache``) after it has written
the report from a static trace; see README "Speed and the trace cache".
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import orjson

from fxmeter.base import fileio as fileio
from fxmeter.cost.analyze import SCHEMA, SymbolicModel
from fxmeter.cost.formula import check_symbols
from fxmeter.errors import TraceError

if TYPE_CHECKING:
    from fxmeter.model.registry import ResolvedModel

LOG = logging.getLogger(__name__)

MAGIC = "fxmeter-symbolic-cache"
FORMAT = 1
SUFFIX = ".fxc"
LOCK_STALE_S = 600.0  # a background fill older than this is assumed dead


def cache_dir() -> Path:
    """``$FXMETER_CACHE_DIR`` or the user cache dir (XDG on Linux)."""
    env = os.environ.get("FXMETER_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("fxmeter"))


def versions() -> dict[str, str]:
    """fxmeter/torch/diffusers versions from package metadata (no heavy import)."""
    from importlib.metadata import PackageNotFoundError, version

    from fxmeter import __version__

    out = {"fxmeter": __version__}
    for pkg in ("torch", "diffusers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "missing"
    return out


def cache_key(model: ResolvedModel, dtype: str, *, replicate: bool = True) -> dict[str, Any]:
    """Everything a cached symbolic model depends on."""
    return {
        "model_id": model.id,
        "config_sha256": model.config_sha256,
        "config_source": model.config_source,
        "dtype": dtype,
        "replicate": bool(replicate),
        "versions": versions(),
        "analysis_schema": SCHEMA,
        "format": FORMAT,
    }


def key_digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(fileio.dumps(key, indent=False)).hexdigest()


def entry_path(model: ResolvedModel, dtype: str, *, replicate: bool = True) -> Path:
    return cache_dir() / "symbolic" / (key_digest(cache_key(model, dtype, replicate=replicate)) + SUFFIX)


def encode(key: dict[str, Any], sm: SymbolicModel) -> bytes:
    """Header line + payload (the bytes written to disk)."""
    payload = fileio.dumps(sm.to_dict(), indent=False)
    header = {"magic": MAGIC, "format": FORMAT, "key": key, "payload_sha256": hashlib.sha256(payload).hexdigest(),
              "payload_bytes": len(payload)}
    return fileio.dumps(header, indent=False) + b"\n" + payload


class CacheError(ValueError):
    """Why a cache file is unusable: it is ignored with a warning and rebuilt."""


def decode(blob: bytes, key: dict[str, Any]) -> SymbolicModel:
    """The symbolic model in ``blob``; :class:`CacheError` (a ValueError) says why the file is unusable."""
    head, sep, payload = blob.partition(b"\n")
    if not sep:
        raise CacheError("no header line")
    try:
        header = fileio.loads(head)
    except orjson.JSONDecodeError as e:
        raise CacheError(f"header is not JSON ({e})") from None
    if not isinstance(header, dict) or header.get("magic") != MAGIC:
        raise CacheError("not an fxmeter cache file")
    if header.get("format") != FORMAT:
        raise CacheError(f"cache format {header.get('format')!r} != {FORMAT}")
    if header.get("key") != key:
        raise CacheError("key mismatch (other model, config, dtype or versions)")
    if header.get("payload_bytes") != len(payload) or header.get("payload_sha256") != hashlib.sha256(payload).hexdigest():
        raise CacheError("payload hash mismatch (truncated or modified)")
    try:
        d = fileio.loads(payload)
    except orjson.JSONDecodeError as e:
        raise CacheError(f"payload is not JSON ({e})") from None
    return check_payload(d, key)


# -- what evaluate(), memory, traffic and roofline index: present, well typed, in range, consistent --
MAX_REPLICAS = 100_000  # blocks in one repeated list (Wan: 40); evaluation loops over them
MAX_CACHE_BYTES = 1 << 30
_SLUG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")  # a folder name under static_analysis/
_PROBE = (3, 5, 7, 11, 13, 17, 19, 23, 29, 31)


def _fail(where: str, what: str) -> NoReturn:
    raise CacheError(f"{where}: {what}")


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


def _indices(v: Any, where: str, length: int, n: int) -> None:
    for i in _list(v, where, length):
        if type(i) is not int or not 0 <= i < n:
            _fail(where, f"expected formula indices in [0, {n}), got {str(i)[:20]!r}")


def _check_meta(meta: Any, key: dict[str, Any]) -> None:
    m = _dict(meta, "meta")
    for k in ("model_id", "diffusers_class", "adapter", "config_sha256", "config_source", "slug", "dtype", "mode"):
        _str(m.get(k), f"meta.{k}")
    for k in ("model_id", "config_sha256", "config_source", "dtype"):  # the header's key pins these
        if m[k] != key[k]:
            _fail(f"meta.{k}", f"{str(m[k])[:40]!r} is not the key's {key[k]!r}")
    if m["mode"] != "dynamic":
        _fail("meta.mode", "only dynamic traces are cached")
    if not _SLUG.fullmatch(m["slug"]):
        _fail("meta.slug", f"{m['slug'][:40]!r} is not a folder name")
    _dict(m.get("config"), "meta.config")
    versions = _dict(m.get("versions"), "meta.versions")
    for k in ("torch", "diffusers"):
        _str(versions.get(k), f"meta.versions.{k}")
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


def check_payload(d: Any, key: dict[str, Any]) -> SymbolicModel:
    """The symbolic model of a cache payload, or :class:`CacheError` naming what is wrong.

    Every field evaluate(), memory, traffic and roofline read must be present, well
    typed and in range (formula indices, replica counts, guards, symbol names), and
    the numbers must add up at a probe workload: each module's total is its own cost
    plus its children's, and the root's total is the sum of the nodes (x replicas)
    and of the categories.  So an edited formula cannot give wrong numbers silently.
    """
    d = _dict(d, "payload")
    for k in ("meta", "formulas", "nodes", "modules", "categories", "unmodeled"):
        if k not in d:
            _fail("payload", f"no {k!r}")
    _check_meta(d["meta"], key)
    formulas = _list(d["formulas"], "formulas")
    n = len(formulas)
    if not n or not all(isinstance(f, str) for f in formulas):
        _fail("formulas", "expected a non-empty list of strings")
    nodes = _list(d["nodes"], "nodes")
    fused = bool(nodes) and isinstance(nodes[0], dict) and "fused" in nodes[0]
    for i, row in enumerate(nodes):
        w = f"nodes[{i}]"
        _dict(row, w)
        for k in ("name", "target", "module", "family", "category"):
            _str(row.get(k), f"{w}.{k}")
        _int(row.get("replicas"), f"{w}.replicas", 1, MAX_REPLICAS)
        _indices(row.get("cost"), f"{w}.cost", 4, n)
        if fused != ("fused" in row):
            _fail(w, "fused traffic rows on some nodes only")
        if fused:
            _indices(row["fused"], f"{w}.fused", 2, n)
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
        _indices(row.get("self"), f"{w}.self", 4, n)
        _indices(row.get("total"), f"{w}.total", 4, n)
        if fused != ("self_fused" in row and "total_fused" in row):
            _fail(w, "fused traffic rows on some rows only")
        if fused:
            _indices(row["self_fused"], f"{w}.self_fused", 2, n)
            _indices(row["total_fused"], f"{w}.total_fused", 2, n)
    for name, idx in _dict(d["categories"], "categories").items():
        _indices(idx, f"categories.{name}", 4, n)
    for i, u in enumerate(_list(d["unmodeled"], "unmodeled")):
        _dict(u, f"unmodeled[{i}]")
        _str(u.get("op"), f"unmodeled[{i}].op")
        _int(u.get("count"), f"unmodeled[{i}].count")
        if not all(isinstance(x, str) for x in _list(u.get("modules"), f"unmodeled[{i}].modules")):
            _fail(f"unmodeled[{i}].modules", "expected module ids")
    live = _dict(d.get("liveness", {}), "liveness")
    if live:
        _indices(live.get("after_node"), "liveness.after_node", len(nodes), n)
        _str(live.get("model"), "liveness.model")
    sm = SymbolicModel.from_dict(d)
    _check_numbers(sm, fused)
    return sm


def _check_numbers(sm: SymbolicModel, fused: bool) -> None:
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
    for own, tot in (("self", "total"),) + ((("self_fused", "total_fused"),) if fused else ()):
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


def load(model: ResolvedModel, dtype: str, *, replicate: bool = True) -> SymbolicModel | None:
    """The cached symbolic model, or None (missing, stale, corrupted, tampered or foreign file)."""
    key = cache_key(model, dtype, replicate=replicate)
    path = cache_dir() / "symbolic" / (key_digest(key) + SUFFIX)
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_CACHE_BYTES:  # never read a FIFO, a folder or a giant
            raise CacheError("not a regular file of sensible size")
        blob = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        LOG.warning("cannot read trace cache %s (%s); tracing again", path, e.strerror)
        return None
    except CacheError as e:
        LOG.warning("ignoring unusable trace cache %s: %s", path, e)
        return None
    try:
        return decode(blob, key)
    except (ValueError, RecursionError, MemoryError) as e:  # CacheError and orjson.JSONDecodeError are ValueErrors
        LOG.warning("ignoring unusable trace cache %s: %s", path, e)
        return None


def store(model: ResolvedModel, dtype: str, sm: SymbolicModel, *, replicate: bool = True) -> Path | None:
    """Write ``sm`` atomically; a failure to write is a warning, never an error."""
    from fxmeter.report.document import atomic_write

    if sm.meta.get("mode") != "dynamic":
        return None
    key = cache_key(model, dtype, replicate=replicate)
    path = cache_dir() / "symbolic" / (key_digest(key) + SUFFIX)
    saved = sm.meta.pop("cache", None)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, encode(key, sm))
    except OSError as e:
        LOG.warning("cannot write trace cache %s (%s)", path, e.strerror)
        return None
    finally:
        if saved is not None:
            sm.meta["cache"] = saved
    return path


# -- background fill (the CLI's fast cold path) ---------------------------


@dataclass(frozen=True)
class _Spec:
    """What the background process needs to rebuild the ResolvedModel."""

    id: str
    config: dict[str, Any]
    config_sha256: str
    config_source: str
    slug: str
    default_workload: str
    dtype: str
    replicate: bool


def lock_path(model: ResolvedModel, dtype: str, *, replicate: bool = True) -> Path:
    return entry_path(model, dtype, replicate=replicate).with_suffix(".lock")


def _take_lock(lock: Path) -> bool:
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        if time.time() - lock.stat().st_mtime > LOCK_STALE_S:
            lock.unlink(missing_ok=True)
    except FileNotFoundError:
        pass
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def fill_in_background(model: ResolvedModel, dtype: str, *, replicate: bool = True, after_exit: bool = True) -> bool:
    """Start a detached ``python -m fxmeter.cache`` that traces dynamically and stores the result.

    With ``after_exit`` the process waits until this one has exited before it traces.
    Returns False when a fill for the same key is already running (lock file) or
    could not be started.
    """
    lock = lock_path(model, dtype, replicate=replicate)
    try:
        if not _take_lock(lock):
            return False
    except OSError as e:
        LOG.warning("cannot create %s (%s); not filling the trace cache", lock, e.strerror)
        return False
    spec = _Spec(model.id, model.config, model.config_sha256, model.config_source, model.slug,
                 model.default_workload, dtype, replicate)
    env = dict(os.environ, FXMETER_CACHE_DIR=str(cache_dir()))
    try:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "fxmeter.cost.store", str(lock), str(os.getpid() if after_exit else 0)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, env=env, close_fds=True,
        )
        assert proc.stdin is not None
        proc.stdin.write(fileio.dumps(asdict(spec), indent=False, sort_keys=False))
        proc.stdin.close()
    except OSError as e:
        lock.unlink(missing_ok=True)
        LOG.warning("cannot start the background trace (%s)", e)
        return False
    return True


def _wait_for_exit(pid: int, timeout: float = 120.0) -> None:
    """Let the foreground run finish first: the fill then never competes with it for CPU."""
    deadline = time.monotonic() + timeout
    while pid > 0 and time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        except PermissionError:
            return
        time.sleep(0.05)


def _fill_main(lock: Path, parent: int = 0) -> int:
    """Entry of the background process: spec on stdin; stats next to the lock."""
    import resource

    spec_bytes = sys.stdin.buffer.read()
    _wait_for_exit(parent)
    t0 = time.perf_counter()
    stats: dict[str, Any] = {"ok": False}
    try:
        os.nice(10)  # never slow down the foreground run that started us
    except OSError:
        pass
    try:
        from fxmeter.api import trace_symbolic
        from fxmeter.model.adapters import adapter_for_class
        from fxmeter.model.registry import ResolvedModel

        d = fileio.loads(spec_bytes)
        spec = _Spec(**d)
        rm = ResolvedModel(spec.id, spec.config, spec.config_sha256, spec.config_source,
                           adapter_for_class(str(spec.config["_class_name"]), spec.config), spec.slug, spec.default_workload)
        sm = trace_symbolic(rm, spec.dtype, None, replicate=spec.replicate)
        stats["ok"] = store(rm, spec.dtype, sm, replicate=spec.replicate) is not None
    except Exception as e:  # a background helper must never leave a traceback on a terminal
        stats["error"] = f"{type(e).__name__}: {e}"
    finally:
        stats["seconds"] = round(time.perf_counter() - t0, 3)
        stats["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        stats["finished"] = time.time()
        try:
            fileio.atomic_write(lock.with_suffix(".fill.json"), json.dumps(stats, sort_keys=True).encode())
        except OSError:
            pass
        lock.unlink(missing_ok=True)
    return 0 if stats["ok"] else 1


if __name__ == "__main__":  # pragma: no cover - run by fill_in_background
    sys.exit(_fill_main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0))
