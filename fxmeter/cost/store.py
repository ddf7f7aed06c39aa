"""Where symbolic models come from: traces shipped in the package, the user cache, or a trace now.

Looking up a component's symbolic model for a workload tries, in order:

1. **shipped**: ``fxmeter/data/traces/<digest>.fxc.xz``, built by ``python -m fxmeter.cost.ship``
   for every bundled model (dynamic traces, and static traces at the default workload of
   the models that only export statically);
2. **cache**: ``<cache dir>/symbolic/<digest>.fxc`` (``platformdirs.user_cache_dir("fxmeter")``,
   ``FXMETER_CACHE_DIR`` overrides);
3. **traced**: an in-process trace (dynamic where the adapter supports it, else static for this
   workload), stored in the cache.  A dynamic export that failed is remembered
   (``<digest>.failed``) and not retried.

The key (``<digest>`` is its sha256) says what a trace *is*: the component's class, adapter
name and config hash, the dtype, replication, the stage, and torch's major.minor (torch.export's
behaviour).  No package versions: the file's header lists what the trace *depends on*
(:mod:`fxmeter.cost.deps`: the library files whose code ran in the graph or defines its modules,
the rule modules its ops use, the adapter's code and the capture/analysis engine, each with its
digest), and a stored trace is used only while those files' code is unchanged.  So a library
upgrade that leaves the traced code alone keeps every trace, one that changes it re-traces
just the stages it touches (one line names the change), and editing one rule re-traces only
the graphs that use it.  Files are a JSON header line (magic, key, dependencies, payload
sha256) and the payload; anything unusable is ignored with a warning and rebuilt
(:func:`fxmeter.cost.symbolic.check`).  No background processes: what a command
prints never depends on a process it left behind.

Why one long module: the three sources of a symbolic model (shipped, cache, trace now) share one
key, one file format and one set of checks; keeping them together keeps the lookup order and the
format in one place.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import lzma
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from fxmeter.base import fileio
from fxmeter.cost.fingerprint import rules_fingerprint
from fxmeter.cost.symbolic import SCHEMA, PayloadError, SymbolicModel, check
from fxmeter.errors import TraceError

if TYPE_CHECKING:
    from fxmeter.cost.analyze import Overlay
    from fxmeter.model.pipeline import Component

LOG = logging.getLogger(__name__)

MAGIC = "fxmeter-symbolic-model"
FORMAT = 3  # 3: keyed by identity, with the header's dependencies (no package versions in the key)
SUFFIX = ".fxc"
SHIPPED_PACKAGE = "fxmeter.data.traces"
MAX_CACHE_BYTES = fileio.MAX_CACHE_BYTES
#: Packages whose versions change what torch.export produces.
VERSIONED = ("torch", "diffusers", "transformers")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Traced:
    """A symbolic model and where it came from (``shipped``, ``cache``, ``traced``, ``disabled``)."""

    model: SymbolicModel
    source: str
    seconds: float  # time spent getting it (load or trace)


def cache_dir() -> Path:
    """``$FXMETER_CACHE_DIR`` or the user cache dir (XDG on Linux)."""
    env = os.environ.get("FXMETER_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("fxmeter"))


@functools.cache
def torch_minor() -> str:
    """torch's major.minor (what decides torch.export's behaviour), from package metadata."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return ".".join(version("torch").split("+")[0].split(".")[:2])
    except PackageNotFoundError:
        return "missing"


@functools.cache
def _versions() -> tuple[tuple[str, str], ...]:
    from importlib.metadata import PackageNotFoundError, version

    from fxmeter import __version__

    out = [("fxmeter", __version__)]
    for pkg in VERSIONED:
        try:
            out.append((pkg, version(pkg)))
        except PackageNotFoundError:
            out.append((pkg, "missing"))
    return tuple(out)


def versions() -> dict[str, str]:
    """fxmeter and the versions that shape an export, from package metadata (no heavy import; read once
    per process: importlib.metadata scans site-packages on every call)."""
    return dict(_versions())


def overlay_digest(overlay: Overlay | None) -> str | None:
    """A hash of a per-call rule overlay's targets and sources (None: no overlay; "" : not hashable)."""
    if not overlay:
        return None
    import inspect

    h = hashlib.sha256()
    for target in sorted(overlay):
        rule = overlay[target]
        fn: Any = getattr(rule, "fn", rule)
        try:
            src = inspect.getsource(fn)
        except (OSError, TypeError):
            return ""
        h.update(target.encode() + b"\0" + src.encode() + b"\0" + str(getattr(rule, "family", "")).encode())
    return h.hexdigest()[:16]


def key(component: Component, dtype: str, *, replicate: bool = True, dims: Mapping[str, int] | None = None,
        overlay: str | None = None, root: str = "transformer", fixed: Mapping[str, int] | None = None,
        composed: str | None = None) -> dict[str, Any]:
    """What a stored symbolic model is (``dims``: a static trace's workload); what it depends on is
    in its header (:func:`current`).

    ``root`` (a stage other than the transformer: ``text_encoder_2``, ``vae``) and ``fixed`` (the
    symbols a dynamic trace keeps constant, e.g. a VAE's latent frames) are part of the key when
    set, so two stages with one config (Flux's and HunyuanVideo's CLIP-L) never share a file.
    ``composed``: the loop symbol of a model composed from traces at several of its values
    (:mod:`fxmeter.cost.compose`; ``fixed`` then leaves it out).
    """
    k: dict[str, Any] = {
        "format": FORMAT,
        "schema": SCHEMA,
        "class": str(component.config.get("_class_name")),
        "adapter": component.adapter.name,
        "config_sha256": component.config_sha256,
        "dtype": dtype,
        "replicate": bool(replicate),
        "torch": torch_minor(),
    }
    if dims is not None:
        k["dims"] = dict(sorted(dims.items()))
    if overlay:
        k["overlay"] = overlay
    if root != "transformer":
        k["root"] = root
    if fixed:
        k["fixed"] = dict(sorted(fixed.items()))
    if composed:
        k["composed"] = composed
    return k


#: the loop symbol a frame-by-frame VAE's traces are composed over, and the values traced to compose it
LOOP_SYMBOL = "latent_frames"
COMPOSE_FROM = (4, 5, 6, 7)
#: the code a composed model depends on besides its traces' (listed in its header)
COMPOSE_FILES = ("fxmeter/cost/compose.py",)


def loop_symbol(component: Component, fixed: Mapping[str, int]) -> str | None:
    """The symbol a dynamic trace keeps constant because a Python loop runs once per value of it
    (a VAE's latent frames), when the stage's traces can be composed over it; else None."""
    from fxmeter.cost.compose import composable

    return LOOP_SYMBOL if LOOP_SYMBOL in fixed and composable(component.adapter, component.config) else None


def composed_key(component: Component, dtype: str, fixed: Mapping[str, int], *, replicate: bool = True,
                 overlay: str | None = None, root: str = "transformer") -> dict[str, Any] | None:
    """The key of the model composed over the stage's loop symbol (None: the stage has none)."""
    loop = loop_symbol(component, fixed)
    if loop is None:
        return None
    return key(component, dtype, replicate=replicate, overlay=overlay, root=root,
               fixed={s: v for s, v in fixed.items() if s != loop}, composed=loop)


def compose_traces(component: Component, dtype: str, fixed: Mapping[str, int], *, replicate: bool = True,
                   overlay: Overlay | None = None, root: str = "transformer", cache: bool = True) -> SymbolicModel:
    """The stage's model for every value of its loop symbol, from traces at :data:`COMPOSE_FROM`
    (each read from the cache or traced and cached); :class:`~fxmeter.cost.compose.ComposeError` when
    the loop does not compose."""
    from fxmeter.cost.compose import ComposeError, compose

    loop = loop_symbol(component, fixed)
    if loop is None:
        raise ComposeError(f"{component.name} has no loop symbol to compose over")
    ov = overlay_digest(overlay)
    models = {}
    for t in COMPOSE_FROM:
        at = {**fixed, loop: t}
        k = key(component, dtype, replicate=replicate, overlay=ov, root=root, fixed=at)
        got = (load_shipped(k) or load(k)) if cache and ov != "" and not overlay else None
        if got is None:
            got = trace(component, dtype, None, replicate=replicate, overlay=overlay, root=root, fixed=at)
            if cache and ov != "":
                store(k, got)
        models[t] = got
    sm = compose(models, loop)
    from fxmeter.cost import deps

    own = deps.digests({n: p for n, p in ((n, deps.resolve(n)) for n in COMPOSE_FILES) if p is not None})
    deps.save_memo()  # the composition's own code is a dependency too: editing it composes again
    return SymbolicModel(dict(sm.meta, deps=dict(sorted({**dict(sm.meta.get("deps") or {}), **own}.items()))),
                         sm.formulas, sm.nodes, sm.modules, sm.categories, sm.unmodeled, sm.liveness)


def digest(k: Mapping[str, Any]) -> str:
    return hashlib.sha256(fileio.dumps(dict(k), indent=False)).hexdigest()


def _expect(k: Mapping[str, Any]) -> dict[str, Any]:
    """Meta values a payload must carry for key ``k`` (a key with ``dims`` is a static trace of those dims)."""
    return {"config_sha256": k["config_sha256"], "dtype": k["dtype"], "adapter": k["adapter"],
            "mode": "static" if "dims" in k else "dynamic", "dims": dict(k.get("dims") or {})}


class Stale(PayloadError):
    """A stored trace whose dependencies changed here: ``what`` names them, ``seconds`` its trace time."""

    def __init__(self, what: str, seconds: float, cls: str):
        super().__init__(f"{what} (stale)")
        self.what, self.seconds, self.cls = what, seconds, cls

    @classmethod
    def of(cls, header: Mapping[str, Any], what: str) -> Stale:
        """The stale file of ``header`` (its ``seconds`` and ``class``, whatever their types)."""
        sec = header.get("seconds")
        return cls(what, float(sec) if isinstance(sec, (int, float)) and not isinstance(sec, bool) else 0.0,
                   str(header.get("class") or ""))


def encode(k: Mapping[str, Any], sm: SymbolicModel) -> bytes:
    """Header line + payload (the bytes written to disk); the header carries the trace's dependencies."""
    payload = fileio.dumps(sm.to_dict(), indent=False)
    header = {"magic": MAGIC, "format": FORMAT, "key": dict(k), "payload_sha256": hashlib.sha256(payload).hexdigest(),
              "payload_bytes": len(payload), "deps": dict(sm.meta.get("deps") or {}),
              "rule_map": dict(sm.meta.get("rule_map") or {}), "seconds": sm.meta.get("seconds", 0),
              "class": sm.meta.get("diffusers_class", "")}
    return fileio.dumps(header, indent=False) + b"\n" + payload


def current(header: Mapping[str, Any]) -> str | None:
    """None when the trace's dependencies (files and rule map) are unchanged here, else what changed."""
    from fxmeter.cost import deps

    files, rule_map = header.get("deps"), header.get("rule_map")
    if not isinstance(files, dict) or not files or not isinstance(rule_map, dict):
        return "no dependency list"
    what = deps.changed(files)
    now = deps.rule_modules(rule_map)
    moved = sorted(t for t in rule_map if now.get(t) != rule_map[t])
    deps.save_memo()
    if what or moved:
        text = deps.describe(what)
        if moved:
            text += ("; " if text else "") + f"fxmeter.rules changed the rule of {', '.join(moved[:2])}" + (
                f" and {len(moved) - 2} more" if len(moved) > 2 else "")
        return text
    return None


def header_of(blob: bytes) -> dict[str, Any]:
    """The header of a stored trace (:class:`PayloadError` when there is none)."""
    head, sep, _ = blob.partition(b"\n")
    if not sep:
        raise PayloadError("no header line")
    try:
        header = fileio.loads(head)
    except orjson.JSONDecodeError as e:
        raise PayloadError(f"header is not JSON ({e})") from None
    if not isinstance(header, dict) or header.get("magic") != MAGIC:
        raise PayloadError("not an fxmeter symbolic model file")
    return header


def decode(blob: bytes, k: Mapping[str, Any], *, shipped: bool = False, check_deps: bool = True) -> SymbolicModel:
    """The symbolic model in ``blob``; :class:`PayloadError` (a ValueError) says why it is unusable,
    :class:`Stale` (one) that its dependencies changed here.

    ``shipped``: a trace of the package itself; once its payload hash matches, its rows are the
    ones the build checked (``python -m fxmeter.cost.ship --check``, and a test), so only its meta is
    checked again."""
    header = header_of(blob)
    payload = blob.partition(b"\n")[2]
    if header.get("format") != FORMAT:
        raise PayloadError(f"format {header.get('format')!r} != {FORMAT}")
    if header.get("key") != dict(k):
        raise PayloadError("key mismatch (other config, dtype, stage or torch version)")
    if header.get("payload_bytes") != len(payload) or header.get("payload_sha256") != hashlib.sha256(payload).hexdigest():
        raise PayloadError("payload hash mismatch (truncated or modified)")
    if check_deps:
        what = current(header)
        if what is not None:
            raise Stale.of(header, what)
    try:
        d = fileio.loads(payload)
    except orjson.JSONDecodeError as e:
        raise PayloadError(f"payload is not JSON ({e})") from None
    meta = d.get("meta") if isinstance(d, dict) else None
    if not isinstance(meta, dict) or meta.get("deps") != header.get("deps") or meta.get("rule_map") != header.get("rule_map"):
        raise PayloadError("the payload's dependencies are not the header's")
    if isinstance(meta.get("composed"), dict) or "composed" in k:
        from fxmeter.cost import compose

        return compose.check(d, _expect(k), walk=not shipped)
    return check(d, _expect(k), walk=not shipped)


# -- the user cache ----------------------------------------------------------------------------
def entry_path(k: Mapping[str, Any]) -> Path:
    return cache_dir() / "symbolic" / (digest(k) + SUFFIX)


def read_entry(path: Path, what: str = "trace cache", log: logging.Logger = LOG) -> bytes | None:
    """The bytes of a cache file; None when missing or unreadable (a FIFO, a folder, a giant: logged), never an error."""
    import stat

    try:  # opened without blocking and checked on the open file: a FIFO swapped in after a check never hangs it
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except OSError as e:
        log.warning("cannot read %s %s (%s); tracing again", what, path, e.strerror)
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_CACHE_BYTES:  # never read a FIFO, a folder or a giant
            log.warning("ignoring unusable %s %s: not a regular file of sensible size", what, path)
            return None
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(MAX_CACHE_BYTES + 1)
    except OSError as e:
        log.warning("cannot read %s %s (%s); tracing again", what, path, e.strerror)
        return None
    finally:
        os.close(fd)


def _read_cache(path: Path, k: Mapping[str, Any]) -> SymbolicModel | Stale | None:
    blob = read_entry(path)
    if blob is None:
        return None
    try:
        return decode(blob, k)
    except Stale as e:
        return e
    except (ValueError, RecursionError, MemoryError) as e:  # PayloadError and orjson.JSONDecodeError are ValueErrors
        LOG.warning("ignoring unusable trace cache %s: %s", path, e)
        return None


def load(k: Mapping[str, Any]) -> SymbolicModel | None:
    """The cached symbolic model of key ``k``, or None (missing, stale, corrupted, tampered or foreign)."""
    got = _read_cache(entry_path(k), k)
    return got if isinstance(got, SymbolicModel) else None


def store(k: Mapping[str, Any], sm: SymbolicModel) -> Path | None:
    """Write ``sm`` atomically; a failure to write is a warning, never an error."""
    path = entry_path(k)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fileio.atomic_write(path, encode(k, sm))
    except OSError as e:
        LOG.warning("cannot write trace cache %s (%s)", path, e.strerror)
        return None
    LOG.debug("stored the trace in %s", path)
    return path


def _failed_path(k: Mapping[str, Any]) -> Path:
    return cache_dir() / "symbolic" / (digest(k) + ".failed")


def _versions_line() -> str:
    return "versions: " + " ".join(f"{k}={v}" for k, v in _versions())


def remember_failure(k: Mapping[str, Any], why: str) -> None:
    """Record that the dynamic export of key ``k`` failed (not retried until a package version changes)."""
    try:
        path = _failed_path(k)
        path.parent.mkdir(parents=True, exist_ok=True)
        fileio.atomic_write(path, (_versions_line() + "\n" + why).encode()[:2000])
    except OSError:
        pass


def failed(k: Mapping[str, Any]) -> str | None:
    """Why the dynamic export of key ``k`` failed before with these package versions, or None."""
    try:
        text = _failed_path(k).read_text(errors="replace")
    except OSError:
        return None
    first, sep, rest = text.partition("\n")
    if first.startswith("versions: "):
        return rest if first == _versions_line() else None
    return text


# -- traces shipped in the package -------------------------------------------------------------
def shipped_path(k: Mapping[str, Any]) -> Path | None:
    try:
        p = resources.files(SHIPPED_PACKAGE).joinpath(digest(k) + SUFFIX + ".xz")
    except ModuleNotFoundError:
        return None
    return Path(str(p)) if p.is_file() else None


def _read_shipped(k: Mapping[str, Any]) -> SymbolicModel | Stale | None:
    p = shipped_path(k)
    if p is None:
        return None
    try:
        return decode(lzma.decompress(p.read_bytes()), k, shipped=True)
    except Stale as e:
        return e
    except (OSError, lzma.LZMAError, ValueError, RecursionError) as e:
        LOG.warning("ignoring unusable shipped trace %s: %s", p, e)
        return None


def load_shipped(k: Mapping[str, Any]) -> SymbolicModel | None:
    """The shipped symbolic model of key ``k`` (None when none matches, or its dependencies changed here)."""
    got = _read_shipped(k)
    return got if isinstance(got, SymbolicModel) else None


def shipped_stale(k: Mapping[str, Any]) -> str | None:
    """What changed here since the shipped trace of ``k`` was built (None: current, or none shipped)."""
    got = _read_shipped(k)
    return got.what if isinstance(got, Stale) else None


# -- tracing -----------------------------------------------------------------------------------
def trace(component: Component, dtype: str, dims: Mapping[str, int] | None, *, replicate: bool = True,
          overlay: Overlay | None = None, root: str = "transformer", fixed: Mapping[str, int] | None = None) -> SymbolicModel:
    """Export and analyse ``component`` now: dynamic when ``dims`` is None (``fixed``: symbols kept
    constant), else static for ``dims``."""
    from fxmeter.cost.analyze import analyze
    from fxmeter.model.capture import capture

    t0 = time.perf_counter()
    cap = capture(dict(component.config), component.adapter, dtype, dict(dims) if dims is not None else None,
                  replicate=replicate, fixed=dict(fixed or {}) if dims is None else None)
    meta = {
        "diffusers_class": str(component.config.get("_class_name")),
        "adapter": component.adapter.name,
        "config_sha256": component.config_sha256,
        "dtype": dtype,
        "versions": versions(),
        "rules": rules_fingerprint(),
        "symbols": list(cap.symbols),
        "guards": {k: list(v) for k, v in cap.guards.items()},
        "mode": cap.mode,
        "dims": cap.dims,
        "replicas": cap.replicas,
        "graph_nodes": cap.graph_nodes,
        "weight_bytes": sum(cap.weight_bytes_by_dtype.values()),
        "weight_bytes_by_dtype": cap.weight_bytes_by_dtype,
        "parameters_by_dtype": cap.parameters_by_dtype,
        "graph_weight_bytes": cap.graph_weight_bytes,
        "weight_read_bytes": cap.weight_read_bytes,
        "largest_module_bytes": cap.largest_module_bytes,
    }
    sm = analyze(cap, component.adapter, meta, root=root, overlay=overlay)
    rule_map, files = dependencies(cap.sources, component.adapter, (n["target"] for n in sm.nodes))
    return SymbolicModel(dict(sm.meta, seconds=round(time.perf_counter() - t0, 3), deps=files, rule_map=rule_map),
                         sm.formulas, sm.nodes, sm.modules, sm.categories, sm.unmodeled, sm.liveness)


def dependencies(sources: Any, adapter: Any, targets: Any) -> tuple[dict[str, str], dict[str, list[Any]]]:
    """(target -> rule module, file -> digest) of a trace (:mod:`fxmeter.cost.deps`): the library files
    that shaped its graph (``sources``), the rule modules its ops use, the adapter's code and the engine,
    whole; of the library functions those files import from elsewhere in their package, the definitions."""
    from fxmeter.cost import deps

    rule_map = deps.rule_modules(targets)
    named = deps.name_files([*sources, *deps.rule_files(rule_map), *deps.adapter_files(adapter)])
    named.update(deps.engine_files())
    helpers: dict[str, tuple[Path, set[str]]] = {}
    for name, path in named.items():
        if name.split("/", 1)[0] in ("fxmeter", "fxmeter.rules"):
            continue
        for hname, (hpath, fns) in deps.imported_functions(name, path).items():
            if hname not in named:
                helpers.setdefault(hname, (hpath, set()))[1].update(fns)
    files = deps.digests(named, {n: (p, sorted(f)) for n, (p, f) in helpers.items()})
    deps.save_memo()
    return rule_map, files


def get(component: Component, dtype: str, dims: Mapping[str, int], *, replicate: bool = True, cache: bool = True,
        overlay: Overlay | None = None, progress: Progress | None = None, root: str = "transformer") -> Traced:
    """The symbolic model of ``component`` valid for ``dims``: shipped, cached, or traced now.

    Args:
        component: the model to trace.
        dtype: parameter dtype (bfloat16, float16, float32).
        dims: the workload's symbol values (the result is valid for them).
        replicate: trace one block per repeated list and replicate it.
        cache: read and write the user cache and read the shipped traces.
        overlay: per-call rules (the cache is keyed by their sources; unhashable ones bypass it).
        progress: called with one line before a trace that takes seconds (the CLI prints it).
        root: the stage name module ids start with.
    """
    t0 = time.perf_counter()
    ov = overlay_digest(overlay)
    use_cache = cache and ov != ""
    fixed = {s: dims[s] for s in component.adapter.fixed_symbols if s in dims}
    dyn_key = key(component, dtype, replicate=replicate, overlay=ov, root=root, fixed=fixed)
    static_key = key(component, dtype, replicate=replicate, dims=dims, overlay=ov, root=root)
    comp_key = composed_key(component, dtype, fixed, replicate=replicate, overlay=ov, root=root)
    keys = (dyn_key, static_key) if comp_key is None else (dyn_key, static_key, comp_key)

    def done(sm: SymbolicModel, source: str) -> Traced:
        if sm.root != root:
            raise TraceError(f"stored trace of {component.name} has root {sm.root!r}, not {root!r}")
        LOG.debug("%s: using the %s trace (%.2f s)", component.name, source, time.perf_counter() - t0)
        return Traced(sm, source, time.perf_counter() - t0)

    def kind(k: Mapping[str, Any]) -> str:
        return f"{'dynamic' if k is dyn_key else 'composed' if k is comp_key else 'static'} {digest(k)[:12]}"

    LOG.debug("%s (%s, %s): looking for a trace; dims %s; cache %s", component.name,
              component.config.get("_class_name"), dtype, dict(dims),
              "on" if use_cache else ("off (--no-cache)" if not cache else "off (the rule overlay has no source to hash)"))

    have_dynamic = False  # a stored dynamic trace whose guards exclude dims: exporting it again gives the same guards
    stale: Stale | None = None  # a stored trace whose dependencies changed here (named before tracing again)
    if use_cache and not overlay:
        for k in keys:
            got = _read_shipped(k)
            if isinstance(got, Stale):
                LOG.debug("%s: shipped %s trace is stale: %s", component.name, kind(k), got.what)
                stale = stale or got
                continue
            if got is None:
                LOG.debug("%s: no shipped %s trace", component.name, kind(k))
            elif got.guard_problems(dims):
                LOG.debug("%s: shipped %s trace does not hold for dims: %s", component.name, kind(k),
                          "; ".join(got.guard_problems(dims)))
            else:
                return done(got, "shipped")
            have_dynamic = have_dynamic or (got is not None and k is dyn_key)
    if use_cache:
        for k in keys:
            got = _read_cache(entry_path(k), k)
            if isinstance(got, Stale):
                LOG.debug("%s: cached %s trace is stale: %s", component.name, kind(k), got.what)
                stale = stale or got
                continue
            if got is None:
                LOG.debug("%s: no cached %s trace in %s", component.name, kind(k), entry_path(k))
            elif got.guard_problems(dims):
                LOG.debug("%s: cached %s trace does not hold for dims: %s", component.name, kind(k),
                          "; ".join(got.guard_problems(dims)))
            else:
                LOG.debug("%s: cached trace %s", component.name, entry_path(k))
                return done(got, "cache")
            have_dynamic = have_dynamic or (got is not None and k is dyn_key)
    cls = str(component.config.get("_class_name"))
    if stale is not None and progress:
        progress(f"{stale.what} ({stale.cls or cls}, {component.name}): re-tracing, ~{max(stale.seconds, 1):.0f} s")
        progress = None  # one line per stage
    loop = loop_symbol(component, fixed)
    if (comp_key is not None and loop is not None and dims[loop] >= COMPOSE_FROM[0]
            and not (use_cache and failed(comp_key))):
        from fxmeter.cost.compose import ComposeError

        if progress:
            progress(f"tracing {cls} ({component.name}) at {COMPOSE_FROM[0]}-{COMPOSE_FROM[-1]} {loop} to cost "
                     f"any {loop} (once per config; cached afterwards)...")
            progress = None
        try:
            sm = compose_traces(component, dtype, fixed, replicate=replicate, overlay=overlay, root=root,
                                cache=use_cache)
        except ComposeError as e:
            LOG.info("%s does not compose over %s (%s); tracing this value", cls, loop, e)
            if use_cache:
                remember_failure(comp_key, str(e))
        else:
            if use_cache:
                store(comp_key, sm)
            if not sm.guard_problems(dims):
                return done(sm, "composed" if use_cache else "disabled")
    if (component.adapter.supports_dynamic(dict(component.config)) and not have_dynamic
            and not (use_cache and failed(dyn_key))):
        if progress:
            progress(f"tracing {cls} ({component.name}) on meta with dynamic shapes (once per config and "
                     f"the code it runs; cached afterwards)...")
        try:
            sm = trace(component, dtype, None, replicate=replicate, overlay=overlay, root=root, fixed=fixed)
        except TraceError as e:
            LOG.warning("dynamic export of %s failed (%s); tracing this workload statically", cls, e)
            if use_cache:
                remember_failure(dyn_key, str(e))
        else:
            if use_cache:
                store(dyn_key, sm)
            if not sm.guard_problems(dims):
                return done(sm, "traced" if use_cache else "disabled")
    LOG.debug("%s: tracing statically for dims %s (%s)", component.name, dict(dims),
              "no dynamic export for this adapter" if not component.adapter.supports_dynamic(dict(component.config))
              else "the dynamic trace failed before or its guards exclude these dims")
    if progress:
        progress(f"tracing {cls} ({component.name}) on meta for this workload (static shapes)...")
    sm = trace(component, dtype, dims, replicate=replicate, overlay=overlay, root=root)
    if use_cache:
        store(static_key, sm)
    return done(sm, "traced-static" if use_cache else "disabled")


# -- cache maintenance (``fxmeter cache info|clear|warm``) -------------------------------------
def info() -> dict[str, Any]:
    """What the cache and the shipped traces hold."""
    d = cache_dir() / "symbolic"
    entries = sorted(d.glob("*" + SUFFIX)) if d.is_dir() else []
    failed_entries = sorted(d.glob("*.failed")) if d.is_dir() else []
    shipped: list[Path] = []
    try:
        root = resources.files(SHIPPED_PACKAGE)
        shipped = sorted(Path(str(p)) for p in root.iterdir() if p.name.endswith(SUFFIX + ".xz"))
    except ModuleNotFoundError:
        pass
    return {
        "cache_dir": str(d),
        "entries": len(entries),
        "bytes": sum(p.stat().st_size for p in entries),
        "failed_dynamic_exports": len(failed_entries),
        "shipped": len(shipped),
        "shipped_bytes": sum(p.stat().st_size for p in shipped),
        "versions": versions(),
        "rules": rules_fingerprint(),
    }


def remove_entries(d: Path, patterns: tuple[str, ...], log: logging.Logger = LOG) -> int:
    """Remove the files of folder ``d`` matching ``patterns``; returns how many (a failure is logged)."""
    n = 0
    if d.is_dir():
        for p in [p for pat in patterns for p in d.glob(pat)]:
            try:
                p.unlink()
                n += 1
            except OSError as e:
                log.warning("cannot remove %s (%s)", p, e.strerror)
    return n


def clear() -> int:
    """Remove every cache entry (shipped traces are part of the package and stay); returns how many."""
    return remove_entries(cache_dir() / "symbolic", ("*" + SUFFIX, "*.failed", ".*" + SUFFIX + ".*"))
