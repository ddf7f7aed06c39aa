"""Sequence parallelism on a static trace: which nodes run over the token sequence, read off concrete shapes.

A static trace (Wan2.2-TI2V-5B's per-token timesteps, CogVideoX's RoPE tables, LTX-Video's packed tokens: forwards
that need Python ints of the geometry) has no workload symbols per node, so :func:`fxmeter.estimate.split.static_kind`
reads the split off the node's shapes.  It is checked here against the symbols of the dynamically traced models:
the same model's stage, marked static, deploys to the same seconds.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from fxmeter import api
from fxmeter.estimate.evaluate import NodeCost
from fxmeter.estimate.metrics import Metrics
from fxmeter.estimate.split import static_kind


def node(family: str, *, shape: dict[str, int] | None = None, written: int = 0, cuda: int = 0,
         dtype: str = "bfloat16") -> NodeCost:
    return NodeCost(name="n", target="aten.x", module="m", family=family, category="other", replicas=1,
                    cost=Metrics(0, cuda, 0, written), shape=shape or {}, dtype=dtype, symbols=frozenset())


# FLUX.1-dev at 1024 px: 4096 image tokens, 512 text tokens, hidden 3072, FFN 12288
FLUX_WIDTHS = frozenset({3072, 9216, 12288, 15360, 64})


@pytest.mark.parametrize("n,kind", [
    # a GEMM's rows: batch x image tokens -> the sequence; batch x text tokens -> the text
    (node("matmul", shape={"b": 1, "m": 4096, "n": 3072, "k": 3072}), "seq"),
    (node("matmul", shape={"b": 1, "m": 512, "n": 3072, "k": 3072}), "text"),
    # single-stream blocks: text and image as one sequence of 4608 rows
    (node("matmul", shape={"b": 1, "m": 4608, "n": 15360, "k": 3072}), "seq"),
    # the modulation GEMM: one row per sample
    (node("matmul", shape={"b": 1, "m": 1, "n": 18432, "k": 3072}), None),
    # attention: the joint queries, or the image queries of a cross-attention
    (node("attention", shape={"b": 1, "h": 24, "lq": 4608, "lk": 4608, "d": 128, "dv": 128}), "seq"),
    # 4096 x 3072 elements written (2 bytes each): the image stream
    (node("elementwise", written=4096 * 3072 * 2), "seq"),
    # 512 x 3072 = 384 x 4096: a multiple of both lengths; 3072 is a width of the graph, 384 is not -> the text
    (node("elementwise", written=512 * 3072 * 2), "text"),
    # a [1, 7 x 512] tensor: a multiple of 512, but 7 is no width -> not text rows, and no multiple of the sequence
    (node("elementwise", written=7 * 512 * 2), None),
    # a node fused away under --compile writes nothing: its CUDA-core FLOPs (one per element) decide
    (node("elementwise", cuda=4096 * 3072), "seq"),
    (node("elementwise"), None),
])
def test_static_kind_by_hand(n: NodeCost, kind: str | None) -> None:
    assert static_kind(n, 4096, 512, FLUX_WIDTHS, joint=True) == kind


def test_a_model_without_joint_text_has_no_joint_sequence() -> None:
    # Wan: 4096 + 512 rows are not a sequence it runs (cross-attention keeps the text apart)
    n = node("matmul", shape={"b": 1, "m": 4608, "n": 3072, "k": 3072})
    assert static_kind(n, 4096, 512, FLUX_WIDTHS, joint=False) != "seq"  # 9 x 512: text rows, never split
    assert static_kind(n, 4096, 512, FLUX_WIDTHS, joint=True) == "seq"


#: dynamically traced models, each with a plan it takes (joint text that divides the degree, and one that does not)
DYNAMIC = [("wan2.1-t2v-1.3b", "ulysses=2"), ("wan2.1-t2v-14b", "ulysses=2,ring=2"), ("flux.1-dev", "ulysses=2"),
           ("sd3.5-large", "ulysses=2"), ("hunyuanvideo", "ulysses=4"), ("hunyuanvideo1.5-480p-t2v", "ulysses=2"),
           ("cogview4-6b", "ulysses=2"), ("flux.2-klein-4b", "ring=2")]


def _deployed(model: str, spec: str, compile: bool, static: bool) -> Any:
    from fxmeter.estimate.deploy import deploy
    from fxmeter.estimate.split import split_rules

    req = api.request(model, hardware="h100", gpus=2 * (2 if "," in spec or "=4" in spec else 1), parallel=spec,
                      compile=compile, stages="transformer")
    one = api.request(model, hardware="h100", compile=compile, stages="transformer")
    est = api.estimate_request(one, api.stage_inputs(one))
    if static:
        stages = tuple(replace(s, cost=replace(s.cost, trace={**s.cost.trace, "mode": "static"})) if s.denoiser else s
                       for s in est.stages)
        assert all(s.cost.trace["mode"] == "static" for s in stages if s.denoiser)
        est = replace(est, stages=stages)
    assert req.plan is not None and req.hardware is not None
    return deploy(est, req.plan, split_rules(req.model, req.geometry), req.hardware)


@pytest.mark.slow  # 8 shipped transformers deployed twice, eager and compiled (~30 s)
@pytest.mark.parametrize("model,spec", DYNAMIC)
@pytest.mark.parametrize("compile", [False, True])
def test_a_dynamic_model_read_as_static_deploys_to_the_same_seconds(model: str, spec: str, compile: bool) -> None:
    """The shape rule against the symbols: each dynamic model's transformer, its trace marked static (so the split
    is read off the shapes), deploys to the seconds its workload symbols give, within 0.1% (the differences are
    nodes that move almost nothing: modulation vectors, the padded joint sequence's bookkeeping)."""
    sym = _deployed(model, spec, compile, static=False)
    shp = _deployed(model, spec, compile, static=True)
    assert shp.predicted_seconds == pytest.approx(sym.predicted_seconds, rel=1e-3), model
    assert shp.bound_seconds == pytest.approx(sym.bound_seconds, rel=1e-3), model
    assert sum(r.bytes * r.count for r in shp.communication) == pytest.approx(
        sum(r.bytes * r.count for r in sym.communication), rel=1e-3)


@pytest.mark.slow  # the TI2V-5B's shipped static trace on 4 and 8 GPUs (~5 s)
def test_ti2v_5b_takes_ulysses_as_wan22_runs_it() -> None:
    """Wan2.2's README runs TI2V-5B on 4 and 8 RTX 4090s with --ulysses_size; fxmeter used to refuse it (static
    trace).  Per GPU: the 1280x704x121 video's 27,280 tokens over 4 (6,820), and the speed-up grows with the GPUs."""
    import fxmeter

    four = fxmeter.trace("wan2.2-ti2v-5b", hardware="rtx4090", gpus=4, parallel="ulysses=4",
                         run_id="t4")["deployment"]
    eight = fxmeter.trace("wan2.2-ti2v-5b", hardware="rtx4090", gpus=8, parallel="ulysses=8", run_id="t8")["deployment"]
    assert four["per_gpu"]["tokens"] == 6820
    assert 1.5 < four["speedup"] < eight["speedup"] < 8
