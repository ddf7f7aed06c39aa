"""fxmeter verify: the FlopCounterMode gate (meta and cpu here; cuda when a GPU is there)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
import torch
from click.testing import CliRunner

from fxmeter import rules
from fxmeter.api import verify
from fxmeter.cli.main import main
from fxmeter.errors import VerifyError
from fxmeter.rules import Cost, OpCall, Rule, numel
from fxmeter.verify.compare import compare_values, load_settings, tolerances

NO_CUDA = "no CUDA GPU here (torch.cuda.is_available() is False): the cuda reference needs one"


def _load(p: Path) -> dict[str, Any]:
    return orjson.loads(p.read_bytes())  # type: ignore[no-any-return]


# -- the comparison rules, arithmetic written out --------------------------------
def test_rel_err_rules() -> None:
    c = compare_values("m", 105, 100, 0.05)  # |105 - 100| / 100 = 0.05 <= 0.05
    assert c.passed and c.rel_err == pytest.approx(0.05)
    c = compare_values("m", 94, 100, 0.05)  # |94 - 100| / 100 = 0.06 > 0.05
    assert not c.passed and c.rel_err == pytest.approx(0.06) and "0.06 > tolerance 0.05" in c.message
    assert compare_values("m", 0, 0, 0.05).passed  # both zero: nothing to disagree on
    c = compare_values("m", 7, 0, 0.05)  # reference 0, analytic 7: cannot be a ratio
    assert not c.passed and c.rel_err is None and "FlopCounterMode counts 0" in c.message
    for bad in (math.nan, math.inf):
        c = compare_values("m", bad, 100, 0.05)
        assert not c.passed and "non-finite" in c.message
        assert not compare_values("m", 100, bad, 0.05).passed


def test_tolerances_shipped_and_override() -> None:
    assert load_settings()["tolerance"] == {"layers": 0.05, "end2end": 0.05}
    assert tolerances() == {"layers": 0.05, "end2end": 0.05}
    assert tolerances(0.1) == {"layers": 0.1, "end2end": 0.1}
    assert tolerances(settings={"tolerance": {"layers": 0.01}}) == {"layers": 0.01, "end2end": 0.05}
    with pytest.raises(VerifyError, match="finite number >= 0"):
        tolerances(-1)


# -- tiny model: real tensors on cpu, meta, and the exported graph -------------------------
@pytest.mark.parametrize(("device", "reference"), [("cpu", "eager"), ("meta", "eager"), ("cpu", "graph"), ("meta", "graph")])
def test_tiny_passes(tiny_config: Path, tmp_path: Path, device: str, reference: str) -> None:
    res = verify(config=tiny_config, workload="ci-tiny", device=device, reference=reference, run_id="t", output_root=tmp_path)
    assert res.passed, [r for r in res.layers["layers"] if not r["pass"]]
    lay, e2e = res.layers, res.end2end
    assert lay["max_rel_err"] == 0.0 and lay["failed"] == 0 and lay["unmodeled"] == []
    assert lay["device"] == device and lay["reference"]["mode"] == reference
    assert lay["tolerance"] == {"layers": 0.05, "end2end": 0.05}
    assert lay["compared_metric"] == "tensor_core_flops" and "cuda_core_flops" in lay["not_compared"]
    if device == "cpu":
        assert lay["reference"]["sdpa_backend"] == "math"
        assert "aten.bmm" in lay["reference"]["ops"]  # attention counted via the math backend
    ids = {r["id"] for r in lay["layers"]}
    for i in range(3):  # TINY_WAN has 3 blocks: every block's attention, ffn and linears are compared
        for sub in ("", ".attn1", ".attn2", ".ffn", ".attn1.to_q", ".attn2.to_k", ".ffn.net.2"):
            assert f"transformer.blocks.{i}{sub}" in ids
    for top in ("transformer", "transformer.patch_embedding", "transformer.condition_embedder", "transformer.proj_out"):
        assert top in ids
    # end to end = per forward x steps x passes: ci-tiny is 1 step x 2 passes (CFG 5.0)
    pf = e2e["per_forward"]["reference_flops"]
    assert e2e["end_to_end"]["reference_flops"] == pf * 1 * 2
    assert e2e["end_to_end"]["analytic_flops"] == e2e["per_forward"]["analytic_flops"] * 2
    assert pf == res.report.per_forward["tensor_core_flops"]
    out = tmp_path / "t" / "static_analysis" / "wan"
    assert _load(out / "verify" / "layers.json") == orjson.loads(orjson.dumps(lay))
    assert _load(out / "verify" / "end2end.json")["passed"] is True
    assert (out / "report.json").exists()


def test_reuses_the_runs_report(tiny_config: Path, tmp_path: Path) -> None:
    first = verify(config=tiny_config, workload="ci-tiny", run_id="r", output_root=tmp_path)
    again = verify(config=tiny_config, workload="ci-tiny", run_id="r", output_root=tmp_path)
    assert first.traced and not again.traced and again.passed
    with pytest.raises(VerifyError, match="not this run; choose another --run-id"):
        verify(config=tiny_config, workload="ci-tiny", frames=8, run_id="r", output_root=tmp_path)


# -- planted mistakes ------------------------------------------------------------------
def _undercounting_linear(call: OpCall) -> Cost:
    """2*M*K*N scaled by 9/10 (rounded down on the per-row coefficient): ~10% too low."""
    x, w = call.arg(0, "input"), call.arg(1, "weight")
    n, k = w.shape
    m = numel(x.shape[:-1])
    return Cost(m * (2 * k * n * 9 // 10), 0, call.read_bytes(), call.written_bytes())


@pytest.mark.slow
def test_planted_linear_undercount_fails_and_names_module(tiny_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(rules.REGISTRY, "aten.linear.default", Rule(_undercounting_linear, "matmul", __name__))
    res = verify(config=tiny_config, workload="ci-tiny", run_id="bad", output_root=tmp_path, cache=False)
    assert not res.passed and not res.layers["passed"]
    assert 0 < res.end2end["rel_err"]  # in the tiny model attention dominates: the total is off by less
    failed = {r["id"]: r for r in res.layers["layers"] if not r["pass"]}
    # to_q: 24 -> 24, K*N = 576: 2*576 = 1152 per row, 1152*9//10 = 1036: rel err 116/1152 = 0.1007 > 0.05
    row = failed["transformer.blocks.0.attn1.to_q"]
    assert row["rel_err"] == pytest.approx(116 / 1152)
    assert "relative error" in row["message"] and "aten.addmm" in row["message"]
    assert "transformer.blocks.2.ffn.net.0.proj" in failed


@pytest.mark.slow
def test_unmodeled_op_fails_by_name(tiny_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(rules.REGISTRY, "aten.linear.default")
    res = verify(config=tiny_config, workload="ci-tiny", run_id="unm", output_root=tmp_path, cache=False)
    assert not res.passed
    unm = {u["id"]: u for u in res.layers["unmodeled"]}
    assert unm["transformer.blocks.0.attn1.to_q"]["ops"] == ["aten.linear.default"]
    assert "aten.linear.default" in unm["transformer.blocks.0.attn1.to_q"]["message"]
    row = next(r for r in res.layers["layers"] if r["id"] == "transformer.blocks.0.attn1.to_q")
    assert not row["pass"] and "fxmeter has no rule for aten.linear.default" in row["message"]


# -- the real model at full 14B size on meta -----------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("workload", ["w-002", "w-003", "720p"])
def test_wan14b_full_size_meta(workload: str, tmp_path: Path) -> None:
    res = verify("wan2.1-t2v-14b", workload, device="meta", run_id="full", output_root=tmp_path)
    lay = res.layers
    assert res.passed and lay["max_rel_err"] <= 0.05 and lay["unmodeled"] == []
    rows = {r["id"]: r for r in lay["layers"]}
    for i in range(40):
        for sub in ("attn1", "attn2", "ffn"):
            assert rows[f"transformer.blocks.{i}.{sub}"]["pass"]
    assert res.end2end["passed"] and res.end2end["rel_err"] <= 0.05
    if workload == "720p":  # FlopCounterMode on meta, whole forward
        assert res.end2end["per_forward"]["reference_flops"] == 6_523_436_592_005_120
        # 50 steps x 2 passes (CFG)
        assert res.end2end["end_to_end"]["reference_flops"] == 6_523_436_592_005_120 * 50 * 2


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
@pytest.mark.parametrize("reference", ["eager", "graph"])
def test_cuda_tiny(tiny_config: Path, tmp_path: Path, reference: str) -> None:
    res = verify(config=tiny_config, workload="ci-tiny", device="cuda", reference=reference, run_id="c", output_root=tmp_path)
    assert res.passed and res.layers["device_name"] != "cuda"


# -- CLI -----------------------------------------------------------------------------------
def test_cli_pass_writes_files(tiny_config: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["verify", "--config", str(tiny_config), "-w", "ci-tiny", "--device", "cpu",
                                  "--run-id", "cli", "--output-root", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "verify PASS" in r.output and "not compared: cuda_core_flops" in r.output
    assert "transformer.blocks.* (each of 3)" in r.output  # identical blocks folded
    for name in ("layers.json", "end2end.json"):
        assert (tmp_path / "cli" / "static_analysis" / "wan" / "verify" / name).exists()
        assert f"wrote {tmp_path / 'cli' / 'static_analysis' / 'wan' / 'verify' / name}" in r.output
    r = CliRunner().invoke(main, ["verify", "--config", str(tiny_config), "-w", "ci-tiny", "--run-id", "cli",
                                  "--output-root", str(tmp_path), "--all-rows", "--tolerance", "0"])
    assert r.exit_code == 0, r.output
    assert "transformer.blocks.2.attn1" in r.output and "(each of 3)" not in r.output
    assert _load(tmp_path / "cli" / "static_analysis" / "wan" / "verify" / "layers.json")["tolerance"] == {"layers": 0.0, "end2end": 0.0}


@pytest.mark.slow
def test_cli_gate_failure_exits_1(tiny_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(rules.REGISTRY, "aten.linear.default", Rule(_undercounting_linear, "matmul", __name__))
    r = CliRunner().invoke(main, ["verify", "--config", str(tiny_config), "-w", "ci-tiny", "--no-cache",
                                  "--run-id", "bad", "--output-root", str(tmp_path)])
    assert r.exit_code == 1, r.output
    assert "verify FAIL" in r.output
    assert re.search(r"FAIL transformer\.blocks\.0\.attn1\.to_q: relative error", r.output)
    assert (tmp_path / "bad" / "static_analysis" / "wan" / "verify" / "layers.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tolerance", "-1"], "tolerance (layers) must be a finite number >= 0"),
        (["--tolerance", "nan"], "must be a finite number"),
        (["-w", "nope"], "unknown workload"),
        (["--run-id", "../x"], "unsafe run id"),
        (["--dtype", "int8"], "unknown dtype"),
        (["--height", "250"], "divisible"),
    ],
)
def test_cli_bad_input_exits_2(tiny_config: Path, tmp_path: Path, args: list[str], message: str) -> None:
    base = ["verify", "--config", str(tiny_config), "--output-root", str(tmp_path), "--run-id", "bad-input"]
    if "-w" not in args:
        base += ["-w", "ci-tiny"]
    r = CliRunner().invoke(main, base + args)
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output


def test_cli_bad_model_and_device(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["verify", "no-such-model", "--output-root", str(tmp_path)])
    assert r.exit_code == 2 and "unknown model" in r.output
    r = CliRunner().invoke(main, ["verify", "wan2.1-t2v-14b", "--device", "tpu", "--output-root", str(tmp_path)])
    assert r.exit_code == 2 and "tpu" in r.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cli_cuda_without_gpu_is_a_clear_error(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["verify", "wan2.1-t2v-14b", "--device", "cuda", "--output-root", str(tmp_path)])
    assert r.exit_code == 2
    assert "no CUDA GPU here (torch.cuda.is_available() is False)" in r.output


@pytest.mark.slow
def test_cli_cpu_refuses_full_size(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["verify", "wan2.1-t2v-14b", "-w", "ci-tiny", "--device", "cpu", "--output-root", str(tmp_path)])
    assert r.exit_code == 2, r.output
    assert "--device cpu is for small configs" in r.output and "Traceback" not in r.output


def test_a_forward_reading_values_on_meta_is_one_error_line() -> None:
    """A stage whose forward reads tensor values (``.item()``, ``nonzero``) cannot run on meta: one VerifyError
    line naming it (the CLI prints ``error: ...``), not a traceback; other errors pass through unchanged."""
    import torch

    from fxmeter.cli.main import error_line
    from fxmeter.errors import VerifyError
    from fxmeter.verify.reference import _meta_values

    for read in (lambda x: x.sum().item(), lambda x: torch.nonzero(x)):
        with pytest.raises(VerifyError) as e:
            with _meta_values("stage text_encoder_2 (CLIPTextModel)"):
                read(torch.ones(3, device="meta"))
        line = error_line(e.value)
        assert line is not None and "\n" not in line and line.startswith("stage text_encoder_2 (CLIPTextModel) reads")
    with pytest.raises(RuntimeError, match="boom"):  # not a meta value read: surfaces as it is
        with _meta_values("stage x"):
            raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="meta"):  # on cpu/cuda a meta message is not ours to rewrite
        with _meta_values("stage x", on_meta=False):
            torch.ones(3, device="meta").sum().item()


def test_end_to_end_runs_the_transformer_stage_as_often_as_the_pipeline_does() -> None:
    """verify's end-to-end line multiplies the compared forward by its own stage's runs: a denoiser split into
    stages of different forwards (Lumina's unconditional pass, Wan2.2's second expert) names the others, which
    are verified as stages; a bare transformer (no pipeline) is steps x passes."""
    from fxmeter.verify.compare import forwards_of_this_forward

    wl = {"steps": 30, "passes_per_step": 2}
    lumina = {"workload": wl, "pipeline": {"stages": [
        {"name": "text_encoder", "runs": 2, "denoiser": False}, {"name": "transformer", "runs": 30, "denoiser": True},
        {"name": "transformer_uncond", "runs": 30, "denoiser": True}]}}
    assert forwards_of_this_forward(lumina) == (30, "transformer x30 forwards; transformer_uncond x30: stages of "
                                                    "their own")
    batched = {"workload": wl, "pipeline": {"stages": [{"name": "transformer", "runs": 60, "denoiser": True}]}}
    assert forwards_of_this_forward(batched) == (60, "transformer x60 forwards")
    assert forwards_of_this_forward({"workload": wl}) == (60, "30 steps x 2 passes")
