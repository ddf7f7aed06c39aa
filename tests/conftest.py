"""Shared fixtures: an isolated trace cache, a tiny Wan config, the 14B 720p report."""

from __future__ import annotations

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
    are what their tests time and check)."""
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

    def memo(run: Any, key: tuple[Any, ...]) -> Any:
        path = shared / hashlib.sha256(repr(key).encode()).hexdigest()
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # a worker counting this stage now: wait for its count
            if path.exists():
                return pickle.loads(path.read_bytes())
            out = run()
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(pickle.dumps(out))
            tmp.replace(path)
            return out

    real_stage, real_model = ref.run_stage_reference, ref.run_reference

    def component_key(c: Any) -> tuple[Any, ...]:
        return (c.config_sha256, type(c.adapter).__module__, type(c.adapter).__qualname__, repr(c.adapter))

    def run_stage_reference(component: Any, dims: dict[str, int], dtype: str, root: str, mode: str | None = None) -> Any:
        key = ("stage", component_key(component), sorted(dims.items()), dtype, root, mode)
        return memo(lambda: real_stage(component, dims, dtype, root, mode), key)

    def run_reference(component: Any, dims: dict[str, int], dtype: str, device: str, mode: str = "eager",
                      root: str = ref.ROOT) -> Any:
        if device != "meta":
            return real_model(component, dims, dtype, device, mode, root)
        key = ("model", component_key(component), sorted(dims.items()), dtype, device, mode, root)
        return memo(lambda: real_model(component, dims, dtype, device, mode, root), key)

    mp = pytest.MonkeyPatch()
    mp.setattr(ref, "run_stage_reference", run_stage_reference)
    mp.setattr(ref, "run_reference", run_reference)
    yield
    mp.undo()


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
