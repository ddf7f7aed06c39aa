"""Shared fixtures: an isolated trace cache, a tiny Wan config, the 14B 720p report."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import pytest


def _threads_per_worker() -> None:
    """Under pytest-xdist, each worker gets its share of the cores for torch's intra-op pool (OpenMP/MKL).

    Left at the default, every worker starts one thread per core, and their spinning OpenMP threads take the
    cores from the other workers' Python: on 2 cores and 2 workers the observe tests ran 1.5x slower."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if workers <= 1:
        return
    per = str(max(1, (os.cpu_count() or 1) // workers))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, per)  # subprocesses (the CLI run as a program) inherit it
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


_threads_per_worker()

TINY_WAN: dict[str, Any] = {
    "_class_name": "WanTransformer3DModel",
    "patch_size": [1, 2, 2],
    "num_attention_heads": 2,
    "attention_head_dim": 12,
    "in_channels": 4,
    "out_channels": 4,
    "text_dim": 16,
    "freq_dim": 16,
    "ffn_dim": 32,
    "num_layers": 3,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-6,
    "image_dim": None,
    "added_kv_proj_dim": None,
    "rope_max_seq_len": 64,
}


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test session gets its own trace cache (never the user's)."""
    os.environ["FXMETER_CACHE_DIR"] = str(tmp_path_factory.mktemp("fxmeter-cache"))


@pytest.fixture(scope="session", autouse=True)
def _one_reference_per_session(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """FlopCounterMode's count of one full-size stage on meta, computed once per test session and shared by the
    workers (pytest-xdist), however many tests compare with it.

    The zoo tests (``fxmeter verify`` on a model: every stage) and ``test_pipeline_stages.py`` (every stage of
    every model) compare fxmeter with the same reference: the same component config, call, symbol values and
    dtype on meta. The count is deterministic in those, so the second test reads the first one's count
    instead of running the stage again (the Allegro VAE alone is 35 s). Nothing is kept between sessions: a
    change to the code under test is always counted afresh. Only meta references are shared (CPU and CUDA runs
    are what their tests time and check).

    Between sessions, counts are kept in ``tests/references/`` (:func:`_stored_reference`): a count made under
    the same torch, diffusers and transformers and the same reference and adapter code is read from there
    instead of being counted again. ``FXMETER_RECORD_REFERENCES=1`` writes the counts a run makes;
    ``FXMETER_LIVE_REFERENCES=1`` counts everything afresh (the store is neither read nor written)."""
    import hashlib
    import pickle

    try:
        import fcntl
    except ImportError:  # not POSIX: every test counts its own
        yield
        return
    from fxmeter.verify import reference as ref

    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "flop-counter-references"
    shared.mkdir(exist_ok=True)

    def memo(run: Any, key: tuple[Any, ...], component: Any) -> Any:
        path = shared / hashlib.sha256(repr(key).encode()).hexdigest()
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # a worker counting this stage now: wait for its count
            if path.exists():
                return pickle.loads(path.read_bytes())
            out = _stored_reference(run, key, component)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(pickle.dumps(out))
            tmp.replace(path)
            return out

    real_stage, real_model = ref.run_stage_reference, ref.run_reference
    LIVE.update(run_stage_reference=real_stage, run_reference=real_model)

    def run_stage_reference(component: Any, dims: dict[str, int], dtype: str, root: str, mode: str | None = None) -> Any:
        key = stage_reference_key(component, dims, dtype, root, mode)
        return memo(lambda: real_stage(component, dims, dtype, root, mode), key, component)

    def run_reference(component: Any, dims: dict[str, int], dtype: str, device: str, mode: str = "eager",
                      root: str = ref.ROOT) -> Any:
        if device != "meta":
            return real_model(component, dims, dtype, device, mode, root)
        key = ("model", component_key(component), sorted(dims.items()), dtype, device, mode, root)
        return memo(lambda: real_model(component, dims, dtype, device, mode, root), key, component)

    mp = pytest.MonkeyPatch()
    mp.setattr(ref, "run_stage_reference", run_stage_reference)
    mp.setattr(ref, "run_reference", run_reference)
    yield
    mp.undo()


#: the reference runners themselves (fxmeter.verify.reference's, before the session fixture shares their counts)
LIVE: dict[str, Any] = {}


def _canonical(x: Any) -> str:
    """``repr`` with sets and dicts in sorted order: the same text in every process (a frozenset's repr follows
    the process's string hash seed)."""
    import dataclasses

    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        inner = ", ".join(f"{f.name}={_canonical(getattr(x, f.name))}" for f in dataclasses.fields(x) if f.repr)
        return f"{type(x).__qualname__}({inner})"
    if isinstance(x, (set, frozenset)):
        return "{" + ", ".join(sorted(_canonical(v) for v in x)) + "}"
    if isinstance(x, dict):
        return "{" + ", ".join(sorted(f"{_canonical(k)}: {_canonical(v)}" for k, v in x.items())) + "}"
    if isinstance(x, (list, tuple)):
        return "(" + ", ".join(_canonical(v) for v in x) + ")"
    return repr(x)


def component_key(c: Any) -> tuple[Any, ...]:
    return (c.config_sha256, type(c.adapter).__module__, type(c.adapter).__qualname__, _canonical(c.adapter))


def stage_reference_key(component: Any, dims: dict[str, int], dtype: str, root: str, mode: str | None = None) -> tuple[Any, ...]:
    """The call of ``run_stage_reference`` a count answers (with :func:`reference_environment`, its stored name)."""
    return ("stage", component_key(component), sorted(dims.items()), dtype, root, mode)


#: FlopCounterMode counts on meta kept between sessions (one gzipped JSON per count; see _stored_reference)
REFERENCES = Path(__file__).parent / "references"
#: the code a meta count runs besides the adapter's own classes: the reference runner, the model builder
REFERENCE_CODE = ("fxmeter.verify.reference", "fxmeter.verify.compare", "fxmeter.model.capture",
                  "fxmeter.model.adapters", "fxmeter.model.adapters._common")


def reference_environment(component: Any) -> dict[str, str]:
    """What a FlopCounterMode count on meta depends on besides its call (config, adapter, dims, dtype, root,
    mode): the packages whose code runs (torch's op decompositions and flop formulas, the diffusers class, the
    transformers encoder) and the source of fxmeter's code that builds the module and its inputs (the modules of
    the adapter's classes, the builder, the reference runner)."""
    from importlib.metadata import version

    names = set(REFERENCE_CODE) | {c.__module__ for c in type(component.adapter).__mro__ if c.__module__.startswith("fxmeter.")}
    return {"torch": version("torch"), "diffusers": version("diffusers"), "transformers": version("transformers"),
            "code": _code_digest(tuple(sorted(names)))}


@functools.cache
def _code_digest(names: tuple[str, ...]) -> str:
    """A digest of the source files of modules ``names`` (read once per process)."""
    import hashlib
    import importlib

    h = hashlib.sha256()
    for name in names:
        h.update(name.encode() + b"\0" + Path(importlib.import_module(name).__file__ or "").read_bytes() + b"\0")
    return h.hexdigest()[:16]


def stored_reference_path(key: tuple[Any, ...], component: Any) -> Path | None:
    """Where the count of call ``key`` under this environment is stored (None: the call's text names an object's
    address, so no other process would find it)."""
    import hashlib
    import re

    text = repr((key, sorted(reference_environment(component).items())))
    if re.search(r"0x[0-9a-fA-F]{6,}", text):
        return None
    return REFERENCES / (hashlib.sha256(text.encode()).hexdigest()[:24] + ".json.gz")


def _stored_reference(run: Any, key: tuple[Any, ...], component: Any) -> Any:
    """The count of ``run`` (a meta reference), read from :data:`REFERENCES` when one was recorded under the same
    environment (:func:`reference_environment`), else counted now (and written with ``FXMETER_RECORD_REFERENCES``).

    A stored count is FlopCounterMode's own output for the same call under the same code: reading it skips the
    minutes of re-running the stage on meta, not the comparison. A library upgrade or an edit to the code that
    builds the module or its inputs changes the environment, so the count is made again (and should be recorded
    again). ``tests/test_references.py`` counts a sample afresh and checks the store agrees."""
    import dataclasses
    import gzip

    from fxmeter.verify.compare import Reference

    if os.environ.get("FXMETER_LIVE_REFERENCES"):
        return run()
    path = stored_reference_path(key, component)
    if path is None:
        return run()
    if path.exists():
        doc = json.loads(gzip.decompress(path.read_bytes()))
        return Reference(**doc["reference"])
    out = run()
    if os.environ.get("FXMETER_RECORD_REFERENCES"):
        from tests.stored import write_doc

        # insertion order: FlopCounterMode's own
        write_doc(path, {"call": repr(key), "environment": reference_environment(component),
                         "reference": dataclasses.asdict(out)})
    return out


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-block, 24-wide Wan transformer config on disk."""
    path = tmp_path_factory.mktemp("tiny-wan") / "config.json"
    path.write_text(json.dumps(TINY_WAN))
    return path


@pytest.fixture(scope="session")
def report_720p() -> Any:
    """The 14B model at 720p (one dynamic trace per session)."""
    import fxmeter

    return fxmeter.trace("wan2.1-t2v-14b", workload="720p", run_id="test-720p")


def stable_report(data: Any) -> dict[str, Any]:
    """A report's JSON minus what changes from run to run: the run id, where each trace came from, how long
    it took and the rules package's fingerprint when it was made (``trace.cache``/``seconds``/``rules``,
    and each pipeline stage's)."""
    import orjson

    d = orjson.loads(data.to_json() if hasattr(data, "to_json") else orjson.dumps(data))
    d.pop("run_id", None)
    # ``rules`` is the whole rules package's fingerprint when the trace was made: a shipped trace is current
    # by its own key (the rule files its graph uses), so adding an unrelated rule file changes only this
    d["trace"].pop("seconds", None)
    d["trace"].pop("cache", None)
    d["trace"].pop("rules", None)
    for st in (d.get("pipeline") or {}).get("stages", []):
        st["trace"].pop("cache", None)
        st["trace"].pop("seconds", None)
        st["trace"].pop("rules", None)
    return d  # type: ignore[no-any-return]
