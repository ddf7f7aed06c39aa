"""Whole-model invariants: the tree sums exactly, replication and static/dynamic agree."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

import fxmeter
from fxmeter.estimate.metrics import NAMES as METRICS
from fxmeter.report import Report
from tests.conftest import stable_report


def stable(data: Any) -> dict[str, Any]:
    return stable_report(data)


@pytest.fixture(scope="module")
def tiny(tiny_config: Path) -> Report:
    return fxmeter.trace(config=tiny_config, workload="ci-tiny", run_id="tiny", cache=False)


@pytest.mark.slow
def test_tiny_trace_end_to_end(tiny: Report) -> None:
    assert tiny["trace"]["mode"] == "dynamic"
    assert tiny["trace"]["replicated_blocks"] == {"blocks": 3}
    assert tiny["model"]["diffusers_class"] == "WanTransformer3DModel"
    assert tiny["unmodeled_ops"] == []
    ids = {m["id"] for m in tiny["modules"]}
    for i in range(3):
        assert f"transformer.blocks.{i}.attn1.to_q" in ids
    assert tiny.per_forward["tensor_core_flops"] > 0


def test_parent_is_self_plus_children(tiny: Report) -> None:
    kids: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in tiny["modules"]:
        if m["parent"]:
            kids[m["parent"]].append(m)
    for m in tiny["modules"]:
        for k in METRICS:
            assert m["per_forward"][k] == m["self"][k] + sum(c["per_forward"][k] for c in kids[m["id"]]), (m["id"], k)


def test_root_equals_sum_of_nodes(tiny: Report) -> None:
    for k in METRICS:
        assert tiny.per_forward[k] == sum(n["per_forward"][k] * n["replicas"] for n in tiny["nodes"])


def test_categories_sum_to_total(tiny: Report) -> None:
    for k in METRICS:
        assert sum(c[k] for c in tiny["categories"].values()) == tiny.per_forward[k]


@pytest.mark.slow
def test_end_to_end_is_per_forward_times_steps_and_passes(tiny_config: Path) -> None:
    r = fxmeter.trace(config=tiny_config, workload="ci-tiny", steps=7, guidance_scale=3.0, cache=False)
    assert r["workload"]["passes_per_step"] == 2
    for k in METRICS:
        assert r.end_to_end[k] == r.per_forward[k] * 7 * 2
    assert r["memory"]["weight_bytes"] == r["memory"]["total_bytes"] - r["memory"]["activation_peak_bytes"]


@pytest.mark.slow
def test_replicated_trace_equals_full_trace(tiny: Report, tiny_config: Path) -> None:
    full = fxmeter.trace(config=tiny_config, workload="ci-tiny", run_id="tiny", cache=False, replicate=False)
    assert full["trace"]["replicated_blocks"] == {}
    a, b = stable(tiny), stable(full)
    for key in ("totals", "categories", "memory", "unmodeled_ops"):
        assert a[key] == b[key], key
    ma = {m["id"]: m["per_forward"] for m in a["modules"]}
    mb = {m["id"]: m["per_forward"] for m in b["modules"]}
    assert ma == mb


@pytest.mark.slow
def test_static_trace_equals_dynamic_evaluation(tiny_config: Path) -> None:
    from fxmeter.cost import store
    from fxmeter.estimate.evaluate import evaluate
    from fxmeter.model.registry import resolve_model
    from fxmeter.model.workload import resolve

    model = resolve_model(None, tiny_config)
    comp = model.component("transformer")
    g = model.geometry(resolve("w-002", "w-002"))
    dyn = store.trace(comp, "bfloat16", None)
    sta = store.trace(comp, "bfloat16", g.dims)
    assert dyn.meta["mode"] == "dynamic" and sta.meta["mode"] == "static"
    r1 = evaluate(dyn, g.dims)
    r2 = evaluate(sta, g.dims)
    assert r1.total == r2.total and r1.categories == r2.categories
    assert [(m.id, m.total, m.own) for m in r1.modules] == [(m.id, m.total, m.own) for m in r2.modules]
    assert r1.activations.peak_bytes == r2.activations.peak_bytes and r1.weights == r2.weights
    # a static trace has no closed forms; a dynamic one has one per module
    assert all(m.formula is None for m in r2.modules) and all(m.formula for m in r1.modules)


@pytest.mark.slow
def test_reports_are_deterministic(tiny: Report, tiny_config: Path) -> None:
    again = fxmeter.trace(config=tiny_config, workload="ci-tiny", run_id="tiny", cache=False)
    assert stable(again) == stable(tiny)


def test_write_is_atomic_and_refuses_overwrite(tiny: Report, tmp_path: Path) -> None:
    out = tiny.write(output_root=tmp_path)
    assert out == tmp_path / "tiny" / "static_analysis" / "wan"
    assert orjson.loads((out / "report.json").read_bytes())["run_id"] == "tiny"
    assert (out / "summary.md").read_text().startswith("# fxmeter")
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    with pytest.raises(fxmeter.errors.OutputExistsError):  # type: ignore[attr-defined]
        tiny.write(output_root=tmp_path)
    tiny.write(output_root=tmp_path, force=True)


# -- the 14B model at 720p: the acceptance numbers ---------------------------------


def test_720p_acceptance(report_720p: Report) -> None:
    r = report_720p
    assert r["workload"]["tokens"] == 75_600
    assert r.per_forward["tensor_core_flops"] == 6_523_436_592_005_120  # == FlopCounterMode on meta
    assert r.end_to_end["tensor_core_flops"] == 100 * 6_523_436_592_005_120  # 50 steps x 2 CFG passes
    assert r["model"]["parameters"] == 14_288_491_584
    assert r["unmodeled_ops"] == []
    assert r["trace"]["mode"] == "dynamic"


def test_720p_attn1_shows_projections_and_core(report_720p: Report) -> None:
    attn1 = report_720p.module("transformer.blocks.0.attn1")
    # attention core: 4 * H * L^2 * D = 4 * 40 * 75600^2 * 128 (QK^T and PV)
    core = 4 * 40 * 75_600**2 * 128
    # projections q, k, v, out: 4 x 2 * L * 5120 * 5120
    proj = 4 * 2 * 75_600 * 5120 * 5120
    assert attn1.own.tensor_core_flops == core
    assert attn1.per_forward.tensor_core_flops == core + proj
    for name in ("to_q", "to_k", "to_v", "to_out.0"):
        sub = report_720p.module(f"transformer.blocks.0.attn1.{name}")
        assert sub.per_forward.tensor_core_flops == 2 * 75_600 * 5120 * 5120
    assert attn1.formula is not None and "patches_h" in attn1.formula["tensor_core_flops"]


def test_720p_weight_memory_by_dtype(report_720p: Report) -> None:
    mem = report_720p["memory"]
    # fp32 keeps: per block scale_shift_table 6*5120 + norm2 affine 2*5120, time_embedder, head table
    assert mem["weight_bytes_by_dtype"]["float32"] == 4 * mem["parameters_by_dtype"]["float32"]
    assert mem["weight_bytes_by_dtype"]["bfloat16"] == 2 * mem["parameters_by_dtype"]["bfloat16"]
    assert sum(mem["parameters_by_dtype"].values()) == 14_288_491_584


def test_formulas_evaluate_other_workloads(report_720p: Report) -> None:
    from fxmeter.cost.formula import compile_table

    root = report_720p.module("transformer")
    assert root.formula is not None
    f = compile_table([root.formula["tensor_core_flops"]], report_720p["trace"]["symbols"])
    dims = report_720p["workload"]["dims"]
    assert f(**dims)[0] == 6_523_436_592_005_120
