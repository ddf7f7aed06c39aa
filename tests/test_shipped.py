"""The symbolic traces shipped in the package are current: one per planned stage, none stale.

A shipped trace is found by its key (class, config, dtype, stage, torch major.minor) and used only while
the code it lists in its header (library files, the rules its ops use, adapter, engine) is unchanged, so
a rule edited without re-running ``python -m fxmeter.cost.ship`` silently turns the first run of every
graph that uses it into a trace: these tests fail instead, naming the command and the change.  That a
shipped trace equals a trace made now is checked on the 14B's whole pipeline in
tests/test_cache.py::test_warm_14b_report_equals_cold; that each passes the full payload checks in
tests/test_audit_cache.py::test_every_shipped_trace_passes_the_full_checks.
"""

from __future__ import annotations

from importlib import resources

import pytest

from fxmeter.cost import ship, store

FIX = "run `python -m fxmeter.cost.ship` (about 6 minutes) and commit fxmeter/data/traces"


def test_every_planned_trace_is_shipped_and_current() -> None:
    missing = [f"{p.model_id}:{p.stage}" for p in ship.planned() if store.shipped_path(p.key()) is None]
    assert not missing, f"no shipped trace for {', '.join(missing)}: {FIX}"
    stale = {f"{p.model_id}:{p.stage}": why for p in ship.planned() if (why := store.shipped_stale(p.key()))}
    assert not stale, f"stale shipped traces {stale}: {FIX} (it re-traces only these)"


def test_shipped_traces_list_only_the_rules_they_use() -> None:
    """Editing one rule re-ships only the graphs that use it: the VAE decode lists the upsampling rules,
    the transformer (no upsampling) does not."""
    import lzma

    by_stage = {}
    for p in ship.planned():
        if p.model_id == "wan2.1-t2v-14b":
            path = store.shipped_path(p.key())
            assert path is not None
            by_stage[p.stage] = store.header_of(lzma.decompress(path.read_bytes()))["deps"]
    assert "fxmeter.rules/resample.py" in by_stage["vae"]
    assert "fxmeter.rules/resample.py" not in by_stage["transformer"]
    assert "diffusers/models/transformers/transformer_wan.py" in by_stage["transformer"]
    assert not any(f.startswith("transformers/") for f in by_stage["transformer"])  # a transformers upgrade keeps it


def test_no_stale_shipped_trace() -> None:
    want = {store.digest(p.key()) + store.SUFFIX + ".xz" for p in ship.planned()}
    have = {f.name for f in resources.files(store.SHIPPED_PACKAGE).iterdir() if f.name.endswith(".xz")}
    assert not have - want, f"stale shipped traces {sorted(have - want)[:3]}...: {FIX}"


@pytest.mark.slow
def test_every_bundled_model_reports_from_shipped_traces_alone() -> None:
    """A fresh install (empty user cache) traces nothing at a bundled model's default workload."""
    from fxmeter.api import request, stage_inputs
    from fxmeter.model.registry import MODELS

    for mid in MODELS:
        inputs = stage_inputs(request(mid), cache=True)
        assert {i.source for i in inputs} <= {"shipped", "cache"}, (mid, [(i.plan.name, i.source) for i in inputs])
