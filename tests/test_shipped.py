"""The symbolic traces shipped in the package are current: one per planned stage, none stale.

A shipped trace is used only when its key (config, dtype, torch/diffusers/transformers versions, the
rules fingerprint) matches, so a rule edited without re-running ``python -m fxmeter.cost.ship`` silently
turns every first run into a minutes-long trace: these tests fail instead, naming the command.  That a
shipped trace equals a trace made now is checked on the 14B's whole pipeline in
tests/test_cache.py::test_warm_14b_report_equals_cold; that each passes the full payload checks in
tests/test_audit_cache.py::test_every_shipped_trace_passes_the_full_checks.
"""

from __future__ import annotations

from importlib import resources

from fxmeter.cost import ship, store

FIX = "run `python -m fxmeter.cost.ship` (about 6 minutes) and commit fxmeter/data/traces"


def test_every_planned_trace_is_shipped() -> None:
    missing = [f"{p.model_id}:{p.stage}" for p in ship.planned() if store.shipped_path(p.key()) is None]
    assert not missing, f"no current shipped trace for {', '.join(missing)}: {FIX}"


def test_no_stale_shipped_trace() -> None:
    want = {store.digest(p.key()) + store.SUFFIX + ".xz" for p in ship.planned()}
    have = {f.name for f in resources.files(store.SHIPPED_PACKAGE).iterdir() if f.name.endswith(".xz")}
    assert not have - want, f"stale shipped traces {sorted(have - want)[:3]}...: {FIX}"


def test_every_bundled_model_reports_from_shipped_traces_alone() -> None:
    """A fresh install (empty user cache) traces nothing at a bundled model's default workload."""
    from fxmeter.api import request, stage_inputs
    from fxmeter.model.registry import MODELS

    for mid in MODELS:
        inputs = stage_inputs(request(mid), cache=True)
        assert {i.source for i in inputs} <= {"shipped", "cache"}, (mid, [(i.plan.name, i.source) for i in inputs])
