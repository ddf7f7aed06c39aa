"""The symbolic-model store: hit, miss, invalidation, corruption, guards, no torch when warm.

No background processes: a cold run traces in-process and stores what it traced before it
returns; a failed dynamic export is remembered and not retried; a stored trace lists the code it
depends on (library files, the rules its ops use, adapter, engine), so editing a rule retraces the
graphs that use it and a library upgrade only the stages whose code it changed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from fxmeter import api
from fxmeter.cost import fingerprint, store
from fxmeter.cost.symbolic import SymbolicModel
from fxmeter.errors import TraceError
from fxmeter.model.pipeline import Component
from fxmeter.model.registry import resolve_model
from tests.conftest import stable_report


def stable(data: Any) -> dict[str, Any]:
    return stable_report(data)


def component(config: Path | str) -> Component:
    return resolve_model(None, config).component("transformer")


@pytest.fixture(scope="module")
def tiny_sm(tiny_config: Path) -> SymbolicModel:
    """One dynamic trace of the tiny model, shared by the unit tests below."""
    return store.trace(component(tiny_config), "bfloat16", None)


@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FXMETER_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.slow
def test_store_then_load_round_trips(tiny_config: Path, tiny_sm: SymbolicModel, cache_dir: Path) -> None:
    k = store.key(component(tiny_config), "bfloat16")
    assert store.load(k) is None  # miss: nothing there
    path = store.store(k, tiny_sm)
    assert path is not None and path.parent == cache_dir / "symbolic" and path == store.entry_path(k)
    got = store.load(k)
    assert got is not None and got.to_dict() == orjson.loads(orjson.dumps(tiny_sm.to_dict()))
    # the meta holds no model identity: one trace serves every model id with this config
    assert not {"model_id", "config", "slug", "config_source"} & set(tiny_sm.meta)
    assert tiny_sm.meta["rules"] == fingerprint.rules_fingerprint()  # recorded, not keyed: deps say what it used
    assert k["torch"] == store.torch_minor() and tiny_sm.meta["deps"] and tiny_sm.meta["rule_map"]


def test_key_separates_dtype_replicate_config_and_torch(
    tiny_config: Path, tiny_sm: SymbolicModel, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    comp = component(tiny_config)
    store.store(store.key(comp, "bfloat16"), tiny_sm)
    assert store.load(store.key(comp, "bfloat16")) is not None
    assert store.load(store.key(comp, "float16")) is None
    assert store.load(store.key(comp, "bfloat16", replicate=False)) is None
    assert store.load(store.key(comp, "bfloat16", dims={"batch": 1})) is None  # a static trace's key
    # a config change (same path, other content) is a miss
    cfg = json.loads(tiny_config.read_text())
    cfg["ffn_dim"] = 64
    other = tmp_path / "other" / "config.json"
    other.parent.mkdir()
    other.write_text(json.dumps(cfg))
    comp2 = component(other)
    assert comp2.config_sha256 != comp.config_sha256
    assert store.load(store.key(comp2, "bfloat16")) is None
    # the same config under another model id is the same entry (the key holds no model id)
    assert store.key(resolve_model("wan2.1-t2v-14b").component("transformer"), "bfloat16") != store.key(comp, "bfloat16")
    # torch's major.minor (its export behaviour) is part of the key: another one is a miss
    real_minor = store.torch_minor()
    monkeypatch.setattr(store, "torch_minor", lambda: "99.0")
    assert store.load(store.key(comp, "bfloat16")) is None
    monkeypatch.setattr(store, "torch_minor", lambda: real_minor)
    # package versions are not: an upgrade that leaves the traced code alone keeps the trace
    real = store.versions()
    monkeypatch.setattr(store, "versions", lambda: dict(real, diffusers="99.0", transformers="99.0"))
    monkeypatch.setattr(store, "rules_fingerprint", lambda: "0" * 16)  # nor the global rules fingerprint
    assert "versions" not in store.key(comp, "bfloat16") and "rules" not in store.key(comp, "bfloat16")
    assert store.load(store.key(comp, "bfloat16")) is not None


def test_trace_lists_what_it_depends_on(tiny_sm: SymbolicModel) -> None:
    """A trace's dependencies: the library files that shaped its graph, the rule modules its ops use
    (only those), its adapter's code and the engine; never torch's files."""
    from fxmeter.cost import deps

    files = tiny_sm.meta["deps"]
    assert "diffusers/models/transformers/transformer_wan.py" in files  # the traced class
    assert any(f.startswith("diffusers/models/attention") for f in files)  # its attention code ran
    assert "fxmeter/model/adapters/wan.py" in files and "fxmeter/model/adapters/base.py" in files
    assert set(deps.ENGINE) <= set(files)
    assert "fxmeter.rules/matmul.py" in files and "fxmeter.rules/resample.py" not in files  # no upsampling here
    assert not any(f.startswith(("torch/", "sympy/")) for f in files)
    assert all(len(d) in (2, 3) and all(len(x) == 16 for x in d[:2]) for d in files.values())
    # a shared helper file is kept to the definitions that ran (a release editing the rest keeps the trace)
    helpers = {n: d[2] for n, d in files.items() if len(d) == 3}
    assert helpers and all(isinstance(q, str) and q for qs in helpers.values() for q in qs), helpers
    assert tiny_sm.meta["rule_map"]["aten.linear.default"] == "fxmeter.rules.matmul"
    assert deps.changed(files) == []


@pytest.mark.slow
def test_changed_code_is_named_and_retraced(tiny_config: Path, tiny_sm: SymbolicModel, cache_dir: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A stored trace whose library code changed is not used: one line names the change, then it is traced
    again and stored; the next run reads it."""
    comp = component(tiny_config)
    name = "diffusers/models/transformers/transformer_wan.py"
    old = {n: (["0" * 16, "0" * 16] if n == name else d) for n, d in tiny_sm.meta["deps"].items()}
    stale = SymbolicModel(dict(tiny_sm.meta, deps=old, seconds=12.3), tiny_sm.formulas, tiny_sm.nodes,
                          tiny_sm.modules, tiny_sm.categories, tiny_sm.unmodeled, tiny_sm.liveness)
    k = store.key(comp, "bfloat16")
    store.store(k, stale)
    assert store.load(k) is None
    with pytest.raises(store.Stale, match="diffusers changed models/transformers/transformer_wan.py"):
        store.decode(store.entry_path(k).read_bytes(), k)
    lines: list[str] = []
    got = store.get(comp, "bfloat16", dict(api.request(None, "ci-tiny", config=tiny_config).geometry.dims),
                    progress=lines.append)
    assert got.source == "traced"
    assert lines == ["diffusers changed models/transformers/transformer_wan.py (WanTransformer3DModel, transformer): "
                     "re-tracing, ~12 s"]
    assert store.load(k) is not None  # stored with this environment's digests
    # a rule that moves to another module (or a new rule for an op that had none) is a change too
    header = store.header_of(store.entry_path(k).read_bytes())
    assert store.current(header) is None
    assert "fxmeter.rules changed the rule of aten.linear.default" in (
        store.current(dict(header, rule_map=dict(header["rule_map"], **{"aten.linear.default": "elsewhere"}))) or "")


def test_dependency_digest_follows_code_not_docstrings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A release that edits only docstrings or comments of a traced file keeps the trace; a code edit does not.
    Files are found again by package name, without importing the package."""
    from fxmeter.cost import deps

    pkg = tmp_path / "fxm_fakepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    mod = pkg / "layer.py"
    mod.write_text('def forward(x):\n    """Twice."""\n    return 2 * x  # double\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    importlib.import_module("fxm_fakepkg")
    deps.root_of.cache_clear()
    try:
        named = deps.name_files([mod])
        assert list(named) == ["fxm_fakepkg/layer.py"]
        recorded = deps.digests(named)
        assert deps.changed(recorded) == []
        mod.write_text('def forward(x):\n    """Two times x."""\n    return 2 * x  # twice\n')
        assert deps.changed(recorded) == []  # bytes differ, code does not
        mod.write_text('def forward(x):\n    """Two times x."""\n    return 3 * x\n')
        assert deps.changed(recorded) == ["fxm_fakepkg/layer.py"]
        # a helper file: only the definitions that ran count
        helper = pkg / "utils.py"
        helper.write_text("def used(x):\n    return x + 1\n\n\nclass Other:\n    def unused(self):\n        return 0\n")
        ran = deps.enclosing(helper, [2])
        assert ran == ["used"] and deps.enclosing(helper, [7]) == ["Other.unused"]
        kept = deps.digests({}, {"fxm_fakepkg/utils.py": (helper, ran)})
        assert kept["fxm_fakepkg/utils.py"][2] == ["used"] and deps.changed(kept) == []
        helper.write_text("import os\n\n\ndef used(x):\n    return x + 1\n\n\nclass Other:\n    def unused(self):\n"
                          "        return 1\n")
        assert deps.changed(kept) == []  # moved and surrounded by other edits: the same code ran
        helper.write_text("def used(x):\n    return x + 2\n")
        assert deps.changed(kept) == ["fxm_fakepkg/utils.py"]
        mod.unlink()
        assert deps.changed(recorded) == ["fxm_fakepkg/layer.py"]  # a file gone is a change
        assert deps.describe(["diffusers/a.py", "diffusers/b.py", "diffusers/c.py", "transformers/x.py"]) == (
            "diffusers changed a.py, b.py and 1 more; transformers changed x.py")
    finally:
        sys.modules.pop("fxm_fakepkg", None)
        deps.root_of.cache_clear()


def test_fingerprint_follows_code_not_comments_or_docstrings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Editing a rule's code changes the fingerprint (so the store key: the next trace recomputes);
    a comment or a docstring does not."""
    code = 'def flops(m, n, k):\n    """2 x MAC."""\n    return 2 * m * n * k  # FLOP\n'
    base = fingerprint.source_digest(code)
    assert fingerprint.source_digest(code.replace("# FLOP", "# two per MAC")) == base
    assert fingerprint.source_digest(code.replace("2 x MAC.", "Multiply-accumulate, twice.")) == base
    assert fingerprint.source_digest(code.replace("2 * m", "3 * m")) != base
    files = fingerprint.files()
    assert "fxmeter.rules/matmul.py" in files and "fxmeter.cost/analyze.py" in files
    # a rule edited on disk: another fingerprint, another store key
    real_sources = fingerprint._sources
    before = fingerprint.rules_fingerprint()
    copy = tmp_path / "matmul.py"  # the rule file as a user would edit it in a checkout
    copy.write_text(next(p for n, p in real_sources() if n == "fxmeter.rules/matmul.py").read_text() + "\nEDITED = 1\n")

    def edited() -> list[tuple[str, Path]]:
        return [(n, copy if n == "fxmeter.rules/matmul.py" else p) for n, p in real_sources()]

    monkeypatch.setattr(fingerprint, "_sources", edited)
    fingerprint.rules_fingerprint.cache_clear()
    try:
        after = fingerprint.rules_fingerprint()
        assert after != before
    finally:
        monkeypatch.undo()
        fingerprint.rules_fingerprint.cache_clear()
    assert fingerprint.rules_fingerprint() == before


@pytest.mark.parametrize(
    "damage",
    ["garbage", "truncated", "foreign_json", "tampered_payload", "empty", "wrong_key", "bad_index"],
)
def test_corrupted_file_is_ignored(
    damage: str, tiny_config: Path, tiny_sm: SymbolicModel, cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    k = store.key(component(tiny_config), "bfloat16")
    path = store.store(k, tiny_sm)
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
        header["key"]["config_sha256"] = "someone-else"
        new = orjson.dumps(header) + b"\n" + payload
    else:  # a consistent header over a payload whose indices point nowhere
        d = orjson.loads(payload)
        d["modules"][0]["total"] = [10**6, 0, 0, 0]
        p2 = orjson.dumps(d, option=orjson.OPT_SORT_KEYS)
        import hashlib

        header.update(payload_sha256=hashlib.sha256(p2).hexdigest(), payload_bytes=len(p2))
        new = orjson.dumps(header) + b"\n" + p2
    path.write_bytes(new)
    assert store.load(k) is None  # ignored, no exception
    # store() overwrites it with a good file again
    store.store(k, tiny_sm)
    assert store.load(k) is not None


@pytest.mark.slow
def test_cold_then_warm_gives_the_identical_report(tiny_config: Path, cache_dir: Path) -> None:
    cold = api.trace(config=tiny_config, workload="ci-tiny", run_id="r")
    assert cold["trace"]["cache"] == "traced"
    assert cold["trace"]["rules"] == fingerprint.rules_fingerprint()  # what the numbers were costed with
    assert list((cache_dir / "symbolic").glob("*.fxc"))  # stored before trace() returned
    warm = api.trace(config=tiny_config, workload="ci-tiny", run_id="r")
    assert warm["trace"]["cache"] == "cache"
    assert stable(warm.data) == stable(cold.data)
    # a corrupted entry is rebuilt: traced again, then from the cache
    for f in (cache_dir / "symbolic").glob("*.fxc"):
        f.write_bytes(b"\x00garbage")
    again = api.trace(config=tiny_config, workload="ci-tiny", run_id="r")
    assert again["trace"]["cache"] == "traced"
    assert stable(again.data) == stable(cold.data)
    # without the cache: traced now, nothing stored, the same numbers
    off = api.trace(config=tiny_config, workload="ci-tiny", run_id="r", cache=False)
    assert off["trace"]["cache"] == "disabled" and stable(off.data) == stable(cold.data)


@pytest.mark.slow  # the 14B's three stages exported now, with no cache
def test_warm_14b_report_equals_cold(report_720p: Any) -> None:
    """The session's 14B report (from the shipped traces, or traced and stored) equals a trace made now
    with no cache at all, every stage (text encoder, transformer, VAE): the shipped traces are current."""
    import fxmeter

    assert report_720p["trace"]["cache"] in ("shipped", "traced", "cache")
    fresh = fxmeter.trace("wan2.1-t2v-14b", workload="720p", run_id="test-720p", cache=False)
    assert fresh["trace"]["cache"] == "disabled"
    assert stable(fresh.data) == stable(report_720p.data)
    warm = fxmeter.trace("wan2.1-t2v-14b", workload="720p", run_id="test-720p")
    assert warm["trace"]["cache"] in ("shipped", "cache") and stable(warm.data) == stable(report_720p.data)


@pytest.mark.slow
def test_workload_outside_guards_is_traced_statically(tiny_config: Path, tiny_sm: SymbolicModel, cache_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    comp = component(tiny_config)
    store.store(store.key(comp, "bfloat16"), tiny_sm)
    # the dynamic export specialised patches_h >= 2; height 16 -> latent 2 -> 1 patch row
    assert tiny_sm.meta["guards"]["patches_h"][0] == 2
    traces: list[str] = []
    real = store.trace

    def counted(*a: Any, **k: Any) -> SymbolicModel:
        traces.append("dynamic" if a[2] is None else "static")
        return real(*a, **k)

    monkeypatch.setattr(store, "trace", counted)
    rep = api.trace(config=tiny_config, workload="ci-tiny", height=16, run_id="r")
    assert rep["workload"]["dims"]["patches_h"] == 1
    assert rep["trace"]["cache"] == "traced-static" and rep["trace"]["mode"] == "static"
    # the cached dynamic trace's guards exclude this workload: it is traced statically, not exported again
    assert traces == ["static"]
    again = api.trace(config=tiny_config, workload="ci-tiny", height=16, run_id="r")  # the static trace is stored too
    assert again["trace"]["cache"] == "cache" and again["trace"]["mode"] == "static" and traces == ["static"]
    inside = api.trace(config=tiny_config, workload="ci-tiny", run_id="r")
    assert inside["trace"]["cache"] == "cache" and inside["trace"]["mode"] == "dynamic"


def _report_of(sm: SymbolicModel, config: Path, workload: str) -> Any:
    """The report of ``workload`` from a given symbolic model (the stages of api.trace, one input)."""
    from fxmeter.estimate.generation import StageInput
    from fxmeter.report.build import build

    req = api.request(None, workload, config=config)
    (plan,) = req.model.stages(req.workload)
    inp = StageInput(plan, sm, dict(req.geometry.dims), "test", 0.0)
    return build(api.estimate_request(req, [inp]), model=req.model, workload=req.workload, geometry=req.geometry,
                 run_id="r")


@pytest.mark.slow
def test_static_trace_has_the_dynamic_numbers(tiny_config: Path, tiny_sm: SymbolicModel) -> None:
    """A workload traced statically (outside the guards, or a model without a dynamic export)
    reports exactly the numbers of the dynamic trace."""
    req = api.request(None, "ci-tiny", config=tiny_config)
    static = store.trace(component(tiny_config), "bfloat16", dict(req.geometry.dims))
    a, b = stable(_report_of(static, tiny_config, "ci-tiny").data), stable(_report_of(tiny_sm, tiny_config, "ci-tiny").data)
    assert a["trace"]["mode"] == "static" and b["trace"]["mode"] == "dynamic"
    for k in ("totals", "memory", "categories", "unmodeled_ops", "workload", "model", "activation_blocks"):
        assert a[k] == b[k], k
    strip = [{k: v for k, v in m.items() if k != "formula"} for m in b["modules"]]
    assert a["modules"] == strip
    # node names differ between a static and a dynamic graph (sym_size nodes); their costs do not
    key = lambda n: (n["module"], n["target"], sorted(n["per_forward"].items()))  # noqa: E731
    assert sorted(map(key, a["nodes"])) == sorted(map(key, b["nodes"]))


@pytest.mark.slow
def test_cold_run_starts_no_process_and_stores_its_trace(tiny_config: Path, cache_dir: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """No detached cache fill: a cold run traces in-process, stores the dynamic trace itself,
    and the next run (another workload inside the guards) reads it."""
    import multiprocessing

    def refuse(*a: Any, **k: Any) -> Any:
        raise AssertionError("a cold trace started a process")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(os, "fork", refuse)
    monkeypatch.setattr(os, "posix_spawn", refuse)
    monkeypatch.setattr(multiprocessing.Process, "start", refuse)
    cold = api.trace(config=tiny_config, workload="ci-tiny", run_id="r")
    assert cold["trace"]["cache"] == "traced" and cold["trace"]["mode"] == "dynamic"
    sm = store.load(store.key(component(tiny_config), "bfloat16"))
    assert sm is not None and sm.dynamic
    warm = api.trace(config=tiny_config, workload="ci-tiny", frames=8, run_id="r")
    assert warm["trace"]["cache"] == "cache"


@pytest.mark.slow
def test_failed_dynamic_export_is_remembered_and_not_retried(tiny_config: Path, cache_dir: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    comp = component(tiny_config)
    calls: list[str] = []
    real = store.trace

    def dynamic_fails(*a: Any, **k: Any) -> SymbolicModel:
        if a[2] is None:
            calls.append("dynamic")
            raise TraceError("torch.export failed for WanTransformer3DModel: planted")
        calls.append("static")
        return real(*a, **k)

    monkeypatch.setattr(store, "trace", dynamic_fails)
    first = api.trace(config=tiny_config, workload="ci-tiny", run_id="r")
    assert calls == ["dynamic", "static"] and first["trace"]["cache"] == "traced-static"
    assert "planted" in (store.failed(store.key(comp, "bfloat16")) or "")
    assert store.info()["failed_dynamic_exports"] == 1
    # another workload: the dynamic export is not tried again
    second = api.trace(config=tiny_config, workload="ci-tiny", frames=8, run_id="r")
    assert calls == ["dynamic", "static", "static"] and second["trace"]["mode"] == "static"
    # without the cache nothing is remembered: the dynamic export is tried
    api.trace(config=tiny_config, workload="ci-tiny", frames=8, run_id="r", cache=False)
    assert calls[3:] == ["dynamic", "static"]
    # clearing the cache forgets the failure
    assert store.clear() == 3  # two static traces and the failure
    assert store.failed(store.key(comp, "bfloat16")) is None


@pytest.mark.slow
def test_per_call_rules_are_part_of_the_key(tiny_config: Path, cache_dir: Path) -> None:
    """A rule overlay changes the numbers; its traces never mix with the registry's."""
    from fxmeter.rules import Cost, OpCall

    def free_gelu(call: OpCall) -> Cost:
        return Cost(0, 0, 0, 0)

    plain = api.trace(config=tiny_config, workload="ci-tiny", run_id="r")
    over = api.trace(config=tiny_config, workload="ci-tiny", run_id="r", rules={"aten.gelu.default": free_gelu})
    assert over["trace"]["cache"] == "traced"  # its own key: not the registry's trace
    assert over["totals"]["per_forward"]["cuda_core_flops"] < plain["totals"]["per_forward"]["cuda_core_flops"]
    assert any("rule overlay" in n for n in over["notes"])
    again = api.trace(config=tiny_config, workload="ci-tiny", run_id="r", rules={"aten.gelu.default": free_gelu})
    assert again["trace"]["cache"] == "cache" and again["totals"] == over["totals"]
    assert api.trace(config=tiny_config, workload="ci-tiny", run_id="r")["totals"] == plain["totals"]


def _clean_env(cache_dir: Path) -> dict[str, str]:
    env = dict(os.environ, FXMETER_CACHE_DIR=str(cache_dir))
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def test_warm_path_imports_no_torch(tiny_config: Path, tiny_sm: SymbolicModel, cache_dir: Path) -> None:
    store.store(store.key(component(tiny_config), "bfloat16"), tiny_sm)
    code = (
        "import sys, fxmeter\n"
        f"r = fxmeter.trace(config={str(tiny_config)!r}, workload='ci-tiny', frames=8, run_id='w')\n"
        "heavy = sorted(m for m in ('torch', 'diffusers', 'sympy', 'networkx') if m in sys.modules)\n"
        "print(r['trace']['cache'], heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_clean_env(cache_dir), check=True)
    assert out.stdout.strip() == "cache []", out.stdout + out.stderr


def test_cache_info_and_clear_commands(tiny_config: Path, tiny_sm: SymbolicModel, cache_dir: Path) -> None:
    from click.testing import CliRunner

    from fxmeter.cli.main import main

    store.store(store.key(component(tiny_config), "bfloat16"), tiny_sm)
    r = CliRunner().invoke(main, ["cache", "info"])
    assert r.exit_code == 0, r.output
    assert str(cache_dir / "symbolic") in r.output and "cached traces     1" in r.output
    assert f"rules fingerprint {fingerprint.rules_fingerprint()}" in r.output
    r = CliRunner().invoke(main, ["cache", "clear"])
    assert r.exit_code == 0 and "removed 1 cache entries" in r.output
    assert store.info()["entries"] == 0


def test_cache_warm_command_fills_the_session_cache() -> None:
    """``fxmeter cache warm MODEL`` traces the model at its default workload (or finds it stored);
    a second warm reads it from the cache."""
    from click.testing import CliRunner

    from fxmeter.cli.main import main

    r = CliRunner().invoke(main, ["cache", "warm", "wan2.1-t2v-1.3b"])
    assert r.exit_code == 0, r.output
    # one line per stage of the pipeline: its trace shipped in the package, stored, or traced now
    lines = r.stdout.splitlines()
    assert [ln.split(":")[1].split()[0] for ln in lines] == ["text_encoder", "transformer", "vae"], r.output
    assert all(re.search(r"dynamic trace from (shipped|cache|traced) \(", ln) for ln in lines), r.output
    r = CliRunner().invoke(main, ["cache", "warm", "wan2.1-t2v-1.3b"])
    # the second time every trace is found: none is traced again
    assert r.exit_code == 0 and "from traced" not in r.stdout and len(r.stdout.splitlines()) == 3, r.output
    r = CliRunner().invoke(main, ["cache", "warm", "no-such-model"])
    assert r.exit_code == 2 and r.stderr.startswith("error: unknown model")
