"""A frame-by-frame VAE's traces compose into one model for every frame count (fxmeter.cost.compose).

The composed model must equal a direct trace at frame counts it was not built from, number for
number: every category, every module's totals, the fused traffic, the activation peak; and the
FLOPs must equal FlopCounterMode's count of the real VAE decode on meta.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from fxmeter.cost import store
from fxmeter.cost.compose import ComposeError, _string, compose
from fxmeter.cost.formula import compile_table
from fxmeter.cost.symbolic import SymbolicModel
from fxmeter.estimate.evaluate import evaluate
from fxmeter.model.registry import stage_component
from tests.test_pipeline_cli import TINY_VAE

FIXED = {"batch": 1}


@pytest.fixture(scope="module")
def vae() -> Any:
    return stage_component("vae", TINY_VAE, "tests/test_pipeline_cli.py TINY_VAE")


@pytest.fixture(scope="module")
def traces(vae: Any) -> dict[int, SymbolicModel]:
    """Direct traces of the tiny Wan VAE decode at 3-8 latent frames (3: below the composed range; 8: not used to
    compose)."""
    return {t: store.trace(vae, "float32", None, root="vae", fixed={**FIXED, "latent_frames": t})
            for t in (3, *store.COMPOSE_FROM, 8)}


@pytest.fixture(scope="module")
def composed(traces: dict[int, SymbolicModel]) -> SymbolicModel:
    return compose({t: traces[t] for t in store.COMPOSE_FROM}, "latent_frames")


def _dims(t: int, h: int, w: int) -> dict[str, int]:
    return {"batch": 1, "latent_frames": t, "latent_h": h, "latent_w": w}


@pytest.mark.slow  # tiny VAE exports at 3-8 latent frames: ~2 min on 2 cores
def test_wan_decode_is_a_head_a_chunk_per_frame_and_a_tail(composed: SymbolicModel, traces: dict[int, SymbolicModel]) -> None:
    c = composed.meta["composed"]
    assert c["symbol"] == "latent_frames" and c["t0"] == 2 and c["traced"] == list(store.COMPOSE_FROM)
    # the graph at T latent frames: head + (T - 2) chunks + tail, node for node
    for t in (4, 5, 6, 7, 8):
        assert len(traces[t].nodes) == c["head"] + (t - 2) * c["chunk"] + c["tail"]
    assert composed.meta["guards"]["latent_frames"] == [4, 1024]
    assert composed.guard_problems(_dims(3, 8, 8)) and not composed.guard_problems(_dims(500, 8, 8))


@pytest.mark.parametrize("hw", [(6, 7), (60, 104), (2, 1024)])
@pytest.mark.slow  # tiny VAE exports at 3-8 latent frames: ~2 min on 2 cores
def test_composed_equals_the_direct_trace_at_a_frame_count_it_was_not_built_from(
        composed: SymbolicModel, traces: dict[int, SymbolicModel], hw: tuple[int, int]) -> None:
    dims = _dims(8, *hw)
    a, b = evaluate(traces[8], dims), evaluate(composed, dims)
    assert a.categories == b.categories
    assert [(m.id, m.total, m.own) for m in a.modules] == [(m.id, m.total, m.own) for m in b.modules]
    assert a.activations.peak_bytes == b.activations.peak_bytes > 0
    fa, fb = evaluate(traces[8], dims, traffic="fused"), evaluate(composed, dims, traffic="fused")
    assert fa.categories == fb.categories
    # every op of the direct graph runs as often in the composed one, except the rows summed over the
    # middle chunks (issued once instead of once per chunk: 8 - 2 - 1 = 5 middle chunks)
    ran_a = Counter((n.target, n.module) for n in a.nodes for _ in range(n.replicas))
    ran_b = Counter((n.target, n.module) for n in b.nodes for _ in range(n.replicas))
    assert set(ran_a) == set(ran_b)
    c = composed.meta["composed"]
    summed = [n for n in composed.nodes[c["head"]:c["head"] + c["chunk"]] if "repeat" not in n]
    assert sum(ran_a.values()) - sum(ran_b.values()) == len(summed) * (5 - 1)


@pytest.mark.slow  # tiny VAE exports at 3-8 latent frames: ~2 min on 2 cores
@pytest.mark.parametrize("compiled", [False, True])
def test_seconds_equal_the_direct_traces_bound_and_predicted_per_module(
        composed: SymbolicModel, traces: dict[int, SymbolicModel], compiled: bool) -> None:
    """A repeated row runs ``repeat`` times inside its module: module seconds, the forward's and the host's
    launches are the direct trace's (the summed rows differ only in their launch count: a few us)."""
    from fxmeter.estimate import hardware, roofline
    from fxmeter.estimate.predict import KernelSettings, predict_stage

    dims = _dims(8, 60, 104)
    a, b = evaluate(traces[8], dims), evaluate(composed, dims)
    dev = roofline.Device(hardware.get("h100"))
    ta, tb = roofline.stage_time(a, dev), roofline.stage_time(b, dev)
    assert tb.per_run == pytest.approx(ta.per_run, rel=1e-9)
    assert [m.seconds for m in tb.modules] == pytest.approx([m.seconds for m in ta.modules], rel=1e-9)
    pa = predict_stage(a, dev, KernelSettings(compile=compiled))
    pb = predict_stage(b, dev, KernelSettings(compile=compiled))
    assert pb.per_run == pytest.approx(pa.per_run, rel=2e-3)
    # the whole difference: the summed cat row is one launch where the direct trace has one per chunk (T - 2 chunks);
    # this tiny VAE is host-bound in eager mode, so each missing launch is a kernel's host time
    from fxmeter.estimate.kernels import load_kernel_model

    host = load_kernel_model().host
    assert host is not None and host.eager_kernel is not None
    per_kernel = max(host.eager_kernel, host.eager_op + host.launch) + host.compiled_launch
    assert abs(pb.per_run - pa.per_run) <= (8 - 2) * per_kernel


@pytest.mark.slow  # tiny VAE exports at 3-8 latent frames: ~2 min on 2 cores
def test_weights_read_per_run_grow_with_the_frame_count(composed: SymbolicModel,
                                                        traces: dict[int, SymbolicModel]) -> None:
    """Each chunk reads the decoder's weights again: what sequential offload streams grows with T."""
    got = evaluate(composed, _dims(8, 6, 7)).trace
    assert got["weight_read_bytes"] == traces[8].meta["weight_read_bytes"] > traces[4].meta["weight_read_bytes"]
    assert got["graph_weight_bytes"] == traces[8].meta["graph_weight_bytes"]


@pytest.mark.slow  # tiny VAE exports at 3-8 latent frames: ~2 min on 2 cores
def test_a_composed_model_depends_on_the_composition_code(vae: Any, traces: dict[int, SymbolicModel],
                                                          monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("FXMETER_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(store, "trace", _fake_trace(traces, []))
    sm = store.compose_traces(vae, "float32", {**FIXED, "latent_frames": 9}, root="vae")
    assert "fxmeter/cost/compose.py" in sm.meta["deps"]


@pytest.mark.slow  # tiny VAE exports at 3-8 latent frames: ~2 min on 2 cores
def test_the_cat_that_appends_each_chunk_is_summed_exactly(composed: SymbolicModel) -> None:
    """``out = torch.cat([out, out_], 2)`` reads the whole output so far: its bytes grow with the chunk
    index, so its row costs the sum over chunks, a quadratic in T with a rational leading coefficient."""
    c = composed.meta["composed"]
    body = composed.nodes[c["head"]:c["head"] + c["chunk"]]
    summed = [n for n in body if "repeat" not in n]
    assert summed and all(n["target"] == "aten.cat.default" for n in summed)
    reads = [composed.formulas[n["cost"][2]] for n in summed]
    assert any("latent_frames**2" in r for r in reads), reads


@pytest.mark.slow  # tiny VAE exports at 3-8 latent frames: ~2 min on 2 cores
def test_the_vae_decode_of_a_new_frame_count_matches_flop_counter_mode(vae: Any, composed: SymbolicModel) -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fxmeter.model.capture import build_model

    t, h, w = 9, 6, 10
    module = vae.adapter.wrap(build_model(dict(vae.config), "float32"), dict(vae.config))
    z = torch.empty(1, 4, t, h, w, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(z)
    got = evaluate(composed, _dims(t, h, w))
    assert got.modules[0].total.tensor_core_flops == counter.get_total_flops()


@pytest.mark.slow  # tiny VAE exports at 3-8 latent frames: ~2 min on 2 cores
def test_a_loop_of_two_frame_batches_is_refused(traces: dict[int, SymbolicModel]) -> None:
    """Only a graph that grows by the same chunk per frame composes: traces that skip a value are refused,
    and a trace whose graph is not head + chunks + tail (here: another frame count's graph) too."""
    with pytest.raises(ComposeError, match="consecutive"):
        compose({t: traces[t] for t in (4, 5, 7, 8)}, "latent_frames")
    with pytest.raises(ComposeError):
        compose({3: traces[8], 4: traces[4], 5: traces[5], 6: traces[6]}, "latent_frames")


def test_an_integer_valued_polynomial_is_stored_as_one_exact_division() -> None:
    import sympy

    t = sympy.Symbol("latent_frames")
    s = _string(t * (t - 1) / 2 * 3 + t)
    assert s == "(3*latent_frames**2 - latent_frames)//2"
    f = compile_table(["0", s], ["latent_frames"])
    assert [f(latent_frames=x)[1] for x in range(1, 6)] == [3 * x * (x - 1) // 2 + x for x in range(1, 6)]


def _fake_trace(traces: dict[int, SymbolicModel], log: list[int]) -> Any:
    """store.trace answered from the fixture's traces (the store's logic without exporting again)."""
    def trace(component: Any, dtype: str, dims: Any, **kw: Any) -> SymbolicModel:
        t = kw["fixed"]["latent_frames"]
        log.append(t)
        return traces[t]
    return trace


@pytest.mark.slow  # tiny VAE exports at 3-8 latent frames: ~2 min on 2 cores
def test_store_composes_once_then_answers_any_frame_count_from_the_cache(
        vae: Any, traces: dict[int, SymbolicModel], monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("FXMETER_CACHE_DIR", str(tmp_path))
    log: list[int] = []
    monkeypatch.setattr(store, "trace", _fake_trace(traces, log))
    first = store.get(vae, "float32", _dims(11, 6, 7), root="vae")
    assert first.source == "composed" and first.model.meta["composed"]["traced"] == list(store.COMPOSE_FROM)
    assert log == list(store.COMPOSE_FROM)  # each frame count once, then cached
    for t in (8, 17, 200):
        again = store.get(vae, "float32", _dims(t, 9, 5), root="vae")
        assert again.source == "cache" and "composed" in again.model.meta
    assert log == list(store.COMPOSE_FROM)
    assert store.get(vae, "float32", _dims(5, 9, 5), root="vae").source == "cache"  # the trace at 5 itself
    assert log == list(store.COMPOSE_FROM)


@pytest.mark.slow  # tiny VAE exports at 3-8 latent frames: ~2 min on 2 cores
def test_a_frame_count_below_the_composed_range_is_traced_itself(
        vae: Any, traces: dict[int, SymbolicModel], monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("FXMETER_CACHE_DIR", str(tmp_path))
    log: list[int] = []
    monkeypatch.setattr(store, "trace", _fake_trace(traces, log))
    got = store.get(vae, "float32", _dims(3, 6, 7), root="vae")
    assert got.source == "traced" and "composed" not in got.model.meta and log == [3]
    assert got.model.meta["guards"]["latent_frames"] == [3, 3]


@pytest.mark.slow  # tiny VAE exports at 3-8 latent frames: ~2 min on 2 cores
def test_a_loop_that_does_not_compose_is_remembered_and_traced_per_frame_count(
        vae: Any, traces: dict[int, SymbolicModel], monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """A VAE whose traces do not compose (here: every frame count answered with the same graph) falls back
    to one trace per frame count, and is not tried again."""
    monkeypatch.setenv("FXMETER_CACHE_DIR", str(tmp_path))
    log: list[int] = []

    def same(component: Any, dtype: str, dims: Any, **kw: Any) -> SymbolicModel:
        log.append((kw.get("fixed") or dims)["latent_frames"])
        return traces[8]
    monkeypatch.setattr(store, "trace", same)
    got = store.get(vae, "float32", _dims(8, 6, 7), root="vae")
    assert got.source == "traced" and log == [*store.COMPOSE_FROM, 8]
    log.clear()
    assert store.get(vae, "float32", _dims(8, 6, 7), root="vae").source == "cache" and not log
    store.get(vae, "float32", _dims(12, 6, 7), root="vae")
    assert log[0] == 12 and not set(log) & set(store.COMPOSE_FROM)  # the composition is not tried again


@pytest.mark.slow  # tiny VAE exports at 3-8 latent frames: ~2 min on 2 cores
def test_a_shipped_composed_model_is_checked_with_its_repeats_multiplied_out(composed: SymbolicModel) -> None:
    from fxmeter.cost import compose as comp
    from fxmeter.cost.symbolic import PayloadError

    d = composed.to_dict()
    assert comp.check(d, {}).formulas == composed.formulas
    bad = composed.to_dict()
    row = next(i for i, n in enumerate(bad["nodes"]) if "repeat" in n and n["cost"][0])
    bad["nodes"][row] = {**bad["nodes"][row], "repeat": 0}  # runs 0 times: the costs no longer add up
    with pytest.raises(PayloadError, match="sum of the nodes"):
        comp.check(bad, {})
    bad["nodes"][row]["repeat"] = len(bad["formulas"])
    with pytest.raises(PayloadError, match="repeat"):
        comp.check(bad, {})
