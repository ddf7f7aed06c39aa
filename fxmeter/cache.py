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
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from . import fileio
from .analysis import SCHEMA, SymbolicModel
from .errors import FxmeterError

if TYPE_CHECKING:
    from .models import ResolvedModel

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

    from . import __version__

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


def decode(blob: bytes, key: dict[str, Any]) -> SymbolicModel:
    """The symbolic model in ``blob``; ValueError says why the file is unusable."""
    head, sep, payload = blob.partition(b"\n")
    if not sep:
        raise ValueError("no header line")
    try:
        header = fileio.loads(head)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"header is not JSON ({e})") from None
    if not isinstance(header, dict) or header.get("magic") != MAGIC:
        raise ValueError("not an fxmeter cache file")
    if header.get("format") != FORMAT:
        raise ValueError(f"cache format {header.get('format')!r} != {FORMAT}")
    if header.get("key") != key:
        raise ValueError("key mismatch (other model, config, dtype or versions)")
    if header.get("payload_bytes") != len(payload) or header.get("payload_sha256") != hashlib.sha256(payload).hexdigest():
        raise ValueError("payload hash mismatch (truncated or modified)")
    d = fileio.loads(payload)
    sm = SymbolicModel.from_dict(d)
    _check_shape(sm)
    return sm


def _check_shape(sm: SymbolicModel) -> None:
    """Cheap structural checks: what evaluate() indexes must exist."""
    n = len(sm.formulas)
    if not sm.modules or not all(isinstance(f, str) for f in sm.formulas):
        raise ValueError("malformed symbolic model")
    for row in sm.modules:
        if not all(0 <= i < n for i in (*row["self"], *row["total"])):
            raise ValueError("formula index out of range")
    for row in sm.nodes:
        if not all(0 <= i < n for i in row["cost"]):
            raise ValueError("formula index out of range")
    if sm.meta.get("mode") != "dynamic":
        raise ValueError("only dynamic traces are cached")


def load(model: ResolvedModel, dtype: str, *, replicate: bool = True) -> SymbolicModel | None:
    """The cached symbolic model, or None (missing, stale, corrupted or foreign file)."""
    key = cache_key(model, dtype, replicate=replicate)
    path = cache_dir() / "symbolic" / (key_digest(key) + SUFFIX)
    try:
        if not path.exists():
            return None
        blob = fileio.read_bytes(path, "trace cache", limit=fileio.MAX_CACHE_BYTES)
    except (OSError, FxmeterError) as e:
        LOG.warning("cannot read trace cache %s (%s); tracing again", path, getattr(e, "strerror", None) or e)
        return None
    try:
        return decode(blob, key)
    except (ValueError, KeyError, TypeError, IndexError) as e:  # orjson.JSONDecodeError is a ValueError
        LOG.warning("ignoring unusable trace cache %s: %s", path, e)
        return None


def store(model: ResolvedModel, dtype: str, sm: SymbolicModel, *, replicate: bool = True) -> Path | None:
    """Write ``sm`` atomically; a failure to write is a warning, never an error."""
    from .report import atomic_write

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
            [sys.executable, "-m", "fxmeter.cache", str(lock), str(os.getpid() if after_exit else 0)],
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
        from .adapters import adapter_for_class
        from .api import trace_symbolic
        from .models import ResolvedModel

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
