"""The stored FlopCounterMode counts (``tests/references/``, read by ``conftest._stored_reference``) are what
FlopCounterMode counts now: a sample of stages is counted afresh on meta and compared with its stored count,
whole (total, per module, per op)."""

from __future__ import annotations

import dataclasses
import gzip
import json
from typing import Any

import pytest

from tests.conftest import LIVE, REFERENCES, reference_environment, stage_reference_key, stored_reference_path

#: a sample of stages of different kinds (a T5 encoder, an image VAE, a video VAE): seconds each on meta
SAMPLE = [("wan2.1-t2v-1.3b", "text_encoder"), ("flux.1-dev", "vae"), ("wan2.1-t2v-1.3b", "vae")]


def test_every_stored_count_names_its_call_and_environment() -> None:
    files = sorted(REFERENCES.glob("*.json.gz"))
    assert files, "tests/references/ holds the recorded counts (FXMETER_RECORD_REFERENCES=1 pytest)"
    for f in files:
        doc = json.loads(gzip.decompress(f.read_bytes()))
        assert set(doc) == {"call", "environment", "reference"}, f.name
        assert set(doc["environment"]) == {"torch", "diffusers", "transformers", "code"}, f.name
        ref = doc["reference"]
        assert ref["device"] == "meta" and isinstance(ref["total"], int) and ref["total"] >= 0, f.name
        assert ref["total"] == sum(ref["ops"].get("Global", {}).values()), f.name


@pytest.mark.slow  # each stage counted on meta now (seconds)
@pytest.mark.parametrize(("model_id", "stage"), SAMPLE)
def test_a_stored_count_is_what_flop_counter_counts_now(model_id: str, stage: str) -> None:
    from fxmeter.api import request, stage_inputs

    req = request(model_id, stages=stage)
    inp = next(i for i in stage_inputs(req) if i.plan.name == stage)
    comp = req.model.stage_component(inp.plan)
    dims, dtype, root = dict(inp.dims), str(inp.model.meta["dtype"]), inp.plan.root
    path = stored_reference_path(stage_reference_key(comp, dims, dtype, root), comp)
    assert path is not None, "the call's text is the same in every process"
    if not path.exists():
        pytest.skip(f"no count stored under this environment ({reference_environment(comp)}): every test counts live")
    stored: dict[str, Any] = json.loads(gzip.decompress(path.read_bytes()))["reference"]
    assert "run_stage_reference" in LIVE, "the session fixture keeps the reference runner itself"
    now = LIVE["run_stage_reference"](comp, dims, dtype, root)
    assert dataclasses.asdict(now) == stored


def test_every_stored_observation_reads_back() -> None:
    """Each stored observation (``tests/references/observations/``, ``tests/stored.py``) is a whole
    observation that writes back to the same document."""
    from tests.stored import STORE, from_dict, to_dict

    files = sorted(STORE.glob("*.json.gz"))
    assert files, "tests/references/observations/ holds the recorded observations (FXMETER_RECORD_REFERENCES=1 pytest)"
    for f in files:
        doc = json.loads(gzip.decompress(f.read_bytes()))
        o = from_dict(doc)
        assert o.calls and o.stages(), f.name
        assert to_dict(o) == doc, f.name


@pytest.mark.slow  # the pipeline built and run on meta now (seconds)
def test_a_stored_observation_is_what_the_pipeline_calls_now() -> None:
    """The stored observation of Wan2.1-1.3B at its smaller observe workload (the axes test's base) equals one
    made now."""
    from dataclasses import replace

    from fxmeter.model import observe as ob
    from fxmeter.model.registry import resolve_model
    from fxmeter.model.workload import get_preset
    from tests.observe_cases import second_workload
    from tests.stored import observed, path_of

    m = resolve_model("wan2.1-t2v-1.3b")
    wl = replace(second_workload(get_preset(m.default_workload)), steps=2)
    p = path_of(m.id, wl, wl, "bfloat16")
    if p is None or not p.exists():
        pytest.skip("no observation stored under this environment: every observe test observes live")
    stored = observed(m, [wl])[0]
    now = ob.run(ob.build(m, wl), wl, m.id)
    assert now == stored


@pytest.mark.slow  # Wan2.1-1.3B's training step traced and counted on meta now (seconds)
def test_a_stored_training_count_is_what_flop_counter_counts_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stored FlopCounterMode count of Wan2.1-1.3B's LoRA step (``tests/test_train.py``) equals a count made now."""
    from tests import stored
    from tests.test_train import _reference

    reads: list[bool] = []
    real = stored.stored_json

    def spy(kind: str, key: Any, compute: Any) -> Any:
        p = stored.stored_path(kind, key, compute)
        reads.append(p is not None and p.exists())
        return real(kind, key, compute)

    monkeypatch.setattr(stored, "stored_json", spy)
    import tests.test_train as tt

    monkeypatch.setattr(tt, "stored_json", spy)
    _, from_store, _ = _reference("wan2.1-t2v-1.3b", "ci-tiny", 16)
    if not reads[0]:
        pytest.skip("no count stored under this environment: every training test counts live")
    monkeypatch.setenv("FXMETER_LIVE_REFERENCES", "1")
    _, now, _ = _reference("wan2.1-t2v-1.3b", "ci-tiny", 16)
    assert now == from_store
