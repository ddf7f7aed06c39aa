"""The symbolic-model cache: hit, miss, invalidation, corruption, guards, no torch when warm."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from fxmeter import api
from fxmeter.cost import store as cache
from fxmeter.cost.analyze import SymbolicModel
from fxmeter.model.registry import resolve_model

VOLATILE = ("seconds", "cache")


def stable(data: dict[str, Any]) -> dict[str, Any]:
    """The report minus its volatile fields (trace.seconds, trace.cache, run_id)."""
    d = orjson.loads(orjson.dumps(data))
    for k in VOLATILE:
        d["trace"].pop(k, None)
    d.pop("run_id", None)
    return d  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def tiny_sm(tiny_config: Path) -> SymbolicModel:
    """One dynamic trace of the tiny model, shared by the unit tests below."""
    rm = resolve_model(None, tiny_config)
    return api.trace_symbolic(rm, "bfloat16", None)


@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FXMETER_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_store_then_load_round_trips(tiny_config: Path, tiny_sm: SymbolicModel, cache_dir: Path) -> None:
    rm = resolve_model(None, tiny_config)
    assert cache.load(rm, "bfloat16") is None  # miss: nothing there
    path = cache.store(rm, "bfloat16", tiny_sm)
    assert path is not None and path.parent == cache_dir / "symbolic"
    got = cache.load(rm, "bfloat16")
    assert got is not None and got.to_dict() == orjson.loads(orjson.dumps(tiny_sm.to_dict()))


def test_key_separates_dtype_replicate_config_and_versions(
    tiny_config: Path, tiny_sm: SymbolicModel, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rm = resolve_model(None, tiny_config)
    cache.store(rm, "bfloat16", tiny_sm)
    assert cache.load(rm, "float16") is None
    assert cache.load(rm, "bfloat16", replicate=False) is None
    # a config change (same path, other content) is a miss
    cfg = json.loads(tiny_config.read_text())
    cfg["ffn_dim"] = 64
    other = tmp_path / "other" / "config.json"
    other.parent.mkdir()
    other.write_text(json.dumps(cfg))
    rm2 = resolve_model(None, other)
    assert rm2.config_sha256 != rm.config_sha256
    assert cache.load(rm2, "bfloat16") is None
    # a torch upgrade is a miss
    real = cache.versions()
    monkeypatch.setattr(cache, "versions", lambda: dict(real, torch="99.0"))
    assert cache.load(rm, "bfloat16") is None
    monkeypatch.setattr(cache, "versions", lambda: real)
    assert cache.load(rm, "bfloat16") is not None


@pytest.mark.parametrize(
    "damage",
    ["garbage", "truncated", "foreign_json", "tampered_payload", "empty", "wrong_key", "bad_index"],
)
def test_corrupted_file_is_ignored(
    damage: str, tiny_config: Path, tiny_sm: SymbolicModel, cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rm = resolve_model(None, tiny_config)
    path = cache.store(rm, "bfloat16", tiny_sm)
    assert path is not None
    blob = path.read_bytes()
    head, _, payload = blob.partition(b"\n")
    header = orjson.loads(head)
    if damage == "garbage":
        new = os.urandom(4096)
    elif damage == "truncated":
        new = blob[: len(blob) // 2]
    elif damage == "foreign_json":
        new = b'{"hello": "world"}\n{"formulas": []}'
    elif damage == "tampered_payload":
        new = head + b"\n" + payload.replace(b'"0"', b'"1"', 1)
    elif damage == "empty":
        new = b""
    elif damage == "wrong_key":
        header["key"]["model_id"] = "someone-else"
        new = orjson.dumps(header) + b"\n" + payload
    else:  # a consistent header over a payload whose indices point nowhere
        d = orjson.loads(payload)
        d["modules"][0]["total"] = [10**6, 0, 0, 0]
        p2 = orjson.dumps(d, option=orjson.OPT_SORT_KEYS)
        import hashlib

        header.update(payload_sha256=hashlib.sha256(p2).hexdigest(), payload_bytes=len(p2))
        new = orjson.dumps(header) + b"\n" + p2
    path.write_bytes(new)
    assert cache.load(rm, "bfloat16") is None  # ignored, no exception
    # store() overwrites it with a good file again
    cache.store(rm, "bfloat16", tiny_sm)
    assert cache.load(rm, "bfloat16") is not None


def test_miss_then_hit_gives_the_identical_report(tiny_config: Path, cache_dir: Path) -> None:
    cold = api.trace(config=tiny_config, workload="ci-tiny", run_id="r")
    assert cold["trace"]["cache"] == "miss"
    assert list((cache_dir / "symbolic").glob("*.fxc"))
    warm = api.trace(config=tiny_config, workload="ci-tiny", run_id="r")
    assert warm["trace"]["cache"] == "hit"
    assert stable(warm.data) == stable(cold.data)
    # a corrupted entry is rebuilt: miss again, then hit
    for f in (cache_dir / "symbolic").glob("*.fxc"):
        f.write_bytes(b"\x00garbage")
    again = api.trace(config=tiny_config, workload="ci-tiny", run_id="r")
    assert again["trace"]["cache"] == "miss"
    assert stable(again.data) == stable(cold.data)


def test_warm_14b_report_equals_cold(report_720p: Any) -> None:
    """The session's cold 14B trace filled the session cache; a second trace is a hit."""
    import fxmeter

    warm = fxmeter.trace("wan2.1-t2v-14b", workload="720p", run_id="test-720p")
    assert warm["trace"]["cache"] == "hit"
    assert stable(warm.data) == stable(report_720p.data)


def test_workload_outside_guards_is_traced_again(tiny_config: Path, tiny_sm: SymbolicModel, cache_dir: Path) -> None:
    rm = resolve_model(None, tiny_config)
    cache.store(rm, "bfloat16", tiny_sm)
    # the dynamic export specialised patches_h >= 2; height 16 -> latent 2 -> 1 patch row
    assert tiny_sm.meta["guards"]["patches_h"][0] == 2
    rep = api.trace(config=tiny_config, workload="ci-tiny", height=16, run_id="r")
    assert rep["workload"]["dims"]["patches_h"] == 1
    assert rep["trace"]["cache"] == "static-retrace" and rep["trace"]["mode"] == "static"
    inside = api.trace(config=tiny_config, workload="ci-tiny", run_id="r")
    assert inside["trace"]["cache"] == "hit"


def test_static_cold_path_has_the_dynamic_numbers(tiny_config: Path, tiny_sm: SymbolicModel, cache_dir: Path) -> None:
    """The CLI's fast cold path reports from a static trace: every number equals the dynamic one."""
    rm = resolve_model(None, tiny_config)
    monkey_started: list[bool] = []
    orig = cache.fill_in_background
    cache.fill_in_background = lambda *a, **k: monkey_started.append(True) or True  # type: ignore[assignment]
    try:
        cold = api.trace(config=tiny_config, workload="ci-tiny", run_id="r", background=True)
    finally:
        cache.fill_in_background = orig  # type: ignore[assignment]
    assert monkey_started == [True] and cold["trace"]["cache"] == "miss-background-fill"
    cache.store(rm, "bfloat16", tiny_sm)
    warm = api.trace(config=tiny_config, workload="ci-tiny", run_id="r")
    a, b = stable(cold.data), stable(warm.data)
    for k in ("totals", "memory", "categories", "unmodeled_ops", "workload", "model"):
        assert a[k] == b[k], k
    strip = [{k: v for k, v in m.items() if k != "formula"} for m in b["modules"]]
    assert a["modules"] == strip
    # node names differ between a static and a dynamic graph (sym_size nodes); their costs do not
    key = lambda n: (n["module"], n["target"], sorted(n["per_forward"].items()))  # noqa: E731
    assert sorted(map(key, a["nodes"])) == sorted(map(key, b["nodes"]))


def _clean_env(cache_dir: Path) -> dict[str, str]:
    env = dict(os.environ, FXMETER_CACHE_DIR=str(cache_dir))
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def test_warm_path_imports_no_torch(tiny_config: Path, tiny_sm: SymbolicModel, cache_dir: Path) -> None:
    rm = resolve_model(None, tiny_config)
    cache.store(rm, "bfloat16", tiny_sm)
    code = (
        "import sys, fxmeter\n"
        f"r = fxmeter.trace(config={str(tiny_config)!r}, workload='ci-tiny', frames=8, run_id='w')\n"
        "heavy = sorted(m for m in ('torch', 'diffusers', 'sympy', 'networkx') if m in sys.modules)\n"
        "print(r['trace']['cache'], heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_clean_env(cache_dir), check=True)
    assert out.stdout.strip() == "hit []", out.stdout + out.stderr


def test_background_fill_writes_the_cache(tiny_config: Path, cache_dir: Path) -> None:
    rm = resolve_model(None, tiny_config)
    assert cache.fill_in_background(rm, "bfloat16", after_exit=False)
    assert not cache.fill_in_background(rm, "bfloat16", after_exit=False)  # one fill per key at a time (lock)
    entry = cache.entry_path(rm, "bfloat16")
    deadline = time.time() + 180
    while time.time() < deadline and cache.lock_path(rm, "bfloat16").exists():
        time.sleep(0.5)
    stats = json.loads(entry.with_suffix(".fill.json").read_text())
    assert stats["ok"], stats
    sm = cache.load(rm, "bfloat16")
    assert sm is not None and sm.meta["mode"] == "dynamic"
