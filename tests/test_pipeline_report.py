"""The report's pipeline section: its numbers add up, it round-trips through the schema, goldens keep their version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import fxmeter
from fxmeter.pytest_plugin import GOLDEN_SCHEMA, GoldenReports, dumps, project
from fxmeter.report.document import ReportDocument, validate
from tests.test_pipeline_cli import folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = folder(tmp_path_factory.mktemp("tiny-report") / "tiny")
    return fxmeter.trace(config=path, workload="ci-tiny", run_id="t", hardware="h100", offload="wan")


def test_stage_numbers_add_up(tiny: Any) -> None:
    p = tiny.pipeline
    for st in p.stages:
        # end to end = per run x runs, for every metric
        assert st.end_to_end.metrics == st.per_run.metrics.scale(st.runs)
        assert st.end_to_end.bound_seconds == pytest.approx(st.per_run.bound_seconds * st.runs)
        if not st.denoiser:  # a stage's modules roll up to its per-run totals
            assert st.modules[0].per_forward == st.per_run.metrics
            assert sum((o.per_run for o in st.ops), start=type(st.per_run.metrics)()).tensor_core_flops == \
                st.per_run.metrics.tensor_core_flops
    assert p.end_to_end.metrics.flops == sum(s.end_to_end.metrics.flops for s in p.stages)
    # bound seconds of the generation: the stages' plus the residency's copies (none known without a PCIe link)
    assert p.end_to_end.bound_seconds == pytest.approx(sum(s.end_to_end.bound_seconds for s in p.stages)
                                                       + (p.transfer_seconds or 0.0))
    assert tiny.totals.end_to_end.metrics == p.stage("transformer").end_to_end.metrics


def test_wan_policy_residency_in_the_report(tiny: Any) -> None:
    r = tiny.pipeline.residency
    assert r["policy"] == "wan"
    weights = {s.component: s.weight_bytes for s in tiny.pipeline.stages}
    by = {x["stage"]: x["resident_weight_bytes"] for x in r["stages"]}
    # load: DiT + VAE on the device; T5 joins for its calls; the DiT leaves before the decode
    assert by["text_encoder"] == sum(weights.values())
    assert by["vae"] == weights["vae"]
    moved = {(t["component"], t["direction"]) for t in r["transfers"]}
    assert moved == {("text_encoder", "host_to_device"), ("text_encoder", "device_to_host"),
                     ("transformer", "device_to_host")}
    assert r["fit"]["fits"] and "--offload wan" in r["fit"]["statement"]


def test_round_trip_and_schema(tiny: Any) -> None:
    data = tiny.to_dict()
    validate(data)
    again = ReportDocument.from_dict(data)
    assert again.to_dict() == data
    bad = dict(data, pipeline=dict(data["pipeline"], stages=[]))
    from fxmeter.errors import ReportError

    with pytest.raises(ReportError, match=r"pipeline"):
        validate(bad)


def test_golden_projection_versions(tiny: Any, tmp_path: Path) -> None:
    v1, v2 = project(tiny, 1), project(tiny, GOLDEN_SCHEMA)
    assert "pipeline" not in v1 and v1["fxmeter_golden"] == 1
    assert v2["fxmeter_golden"] == 2 and list(v2["pipeline"]["stages"]) == ["text_encoder", "transformer", "vae"]
    assert {k: v for k, v in v2.items() if k not in ("pipeline", "fxmeter_golden")} == \
        {k: v for k, v in v1.items() if k != "fxmeter_golden"}
    # a version-1 golden is compared in version 1 and stays byte-identical, even when goldens are updated
    (tmp_path / "old.json").write_bytes(dumps(v1))
    before = (tmp_path / "old.json").read_bytes()
    GoldenReports(tmp_path, update=False).check(tiny, "old.json")
    GoldenReports(tmp_path, update=True).check(tiny, "old.json")
    assert (tmp_path / "old.json").read_bytes() == before
    # a new golden is written in the current version, with the pipeline
    GoldenReports(tmp_path, update=True).check(tiny, "new.json")
    assert b'"pipeline"' in (tmp_path / "new.json").read_bytes()


def test_sweep_rows_carry_the_whole_pipeline(tmp_path: Path) -> None:
    path = folder(tmp_path / "tiny")
    res = fxmeter.api.sweep(None, config=path, workload="ci-tiny", grid={"height": [256, 512], "steps": [1, 2]})
    rows = res.rows
    assert len(rows) == 4
    for r in rows:
        assert r["pipeline_flops"] > r["flops_end_to_end"] and r["offload"] == "none"
    # more steps: only the transformer's runs grow; the text encoder and the VAE are paid once
    a, b = (r for r in rows if r["height"] == 256)
    assert b["pipeline_flops"] - a["pipeline_flops"] == b["flops_end_to_end"] - a["flops_end_to_end"]


def test_the_models_parameters_stay_the_denoisers() -> None:
    # Wan2.2-A14B: model.parameters counts both experts (2 x 14,288,491,584), not UMT5 or the VAE;
    # the pipeline counts every component once: + 5,680,910,336 (UMT5-XXL encoder) + 126,892,531 (Wan2.1 VAE)
    rep = fxmeter.trace("wan2.2-t2v-a14b", include_nodes=False)
    assert rep.model.parameters == 2 * 14_288_491_584
    assert rep.pipeline.parameters == 2 * 14_288_491_584 + 5_680_910_336 + 126_892_531
    assert [s.name for s in rep.pipeline.stages] == ["text_encoder", "transformer", "transformer_2", "vae"]


def test_devices_table_names_the_offload_policy_that_fits() -> None:
    """14B at 720p: everything resident needs 51.9 GiB; an RTX 4090 (24 GiB) or an L40S (48 GiB) does not hold
    it, so the table names the policy (fewest host->device bytes) whose peak does fit there."""
    import fxmeter
    from fxmeter.report.summary import devices_table

    rep = fxmeter.trace("wan2.1-t2v-14b", workload="720p", hardware="h100,rtx4090,l40s", include_nodes=False,
                        run_id="fitw")
    assert rep.devices is not None and rep.pipeline is not None
    h100, rtx, l40s = rep.devices
    assert h100.fits and h100.fits_with is None
    policies = {p["policy"]: p for p in rep.pipeline.policies}
    for d, mem_gib in ((rtx, 24), (l40s, 48)):
        assert not d.fits and d.fits_with is not None
        assert policies["none"]["peak_bytes"] > mem_gib * 2**30  # what the report's --offload none needs
        assert policies[d.fits_with]["peak_bytes"] <= mem_gib * 2**30  # what the named policy needs
    lines = devices_table(rep)
    assert any("with --offload sequential" in ln for ln in lines if "4090" in ln), lines
