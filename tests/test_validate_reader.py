"""``fxmeter validate`` reads anyone's measurement file: the alias table, bad files and bad rows, per-step
rows, the summary and its breakdowns, the ``--json`` document, memory against measured peaks, labels.

Almost everything here is the reader and the arithmetic, without predicting: one CLI test predicts
a single cheap row (Wan2.1 1.3B, the shipped trace) to show a bad row never stops the good ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
import tomllib
from click.testing import CliRunner

from fxmeter.cli.main import main
from fxmeter.estimate.hardware import builtin
from fxmeter.validate import (
    GB,
    GIB,
    Measurement,
    RowResult,
    Scenario,
    Validation,
    _predicted_peak,
    aliases_path,
    fit_words,
    label,
    load_rows,
    read_row,
    render,
    resolve_attention,
    resolve_compile,
    resolve_gpu,
    resolve_model,
    resolve_parallel,
    resolve_precision,
    scenario,
    shipped_path,
    summarize,
    wrap_words,
)

ROW: dict[str, Any] = {
    "id": 1, "model": "Wan2.1", "variant": "T2V-1.3B", "height": 480, "width": 832, "frames": 81, "steps": 50,
    "cfg": "guide_scale 6.0", "passes_per_step": 2, "gpu": "H100", "n_gpus": 1, "parallel": "none",
    "precision": "bf16", "attention": "sdpa", "compile": False, "offload": "none",
    "timing_scope": "total generate.py time (s) incl. T5 encode, denoise, VAE decode", "total_s": 100.0,
}


def row(**kw: Any) -> dict[str, Any]:
    out = {**ROW, **kw}
    return {k: v for k, v in out.items() if v is not None}


def cli(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.stdout, r.stderr


# -- the alias table --------------------------------------------------------------------------------
def test_the_alias_table_maps_only_to_bundled_models_and_known_devices() -> None:
    from fxmeter.estimate.hardware import get_many
    from fxmeter.model.registry import MODELS

    doc = tomllib.loads(aliases_path().read_text())
    for name, mid in doc["models"].items():
        assert mid in MODELS, (name, mid)
    for rule in doc["model_rules"]:
        assert rule["model"].replace("{res}", "480p") in MODELS, rule
    for name, dev in doc["gpus"].items():
        (hw,) = get_many(dev, None)
        assert hw.name == dev, (name, dev)
    assert not set(doc["gpus"]) & set(doc["gpus_absent"])
    # a spelling declared absent must really be absent: neither a device's name nor one of its aliases
    table = {a for d in builtin() for a in (d.name, *d.aliases)}
    assert not set(doc["gpus_absent"]) & table


def test_the_alias_table_holds_only_spellings_that_cannot_be_derived(monkeypatch: pytest.MonkeyPatch) -> None:
    """Declared once: a [gpus] entry that resolve_gpu derives without it (a device's name or alias, or one with
    SXM/HBM/memory suffixes) does not belong in aliases.toml."""
    from dataclasses import replace

    from fxmeter import validate

    full = validate.aliases()
    for key, dev in full.gpus.items():
        without = replace(full, gpus={k: v for k, v in full.gpus.items() if k != key})
        monkeypatch.setattr(validate, "aliases", lambda without=without: without)
        assert resolve_gpu(key)[0] != dev, f"{key!r} = {dev!r} is derivable: drop it from aliases.toml"


def test_every_device_is_read_by_its_own_name_and_aliases() -> None:
    """hardware.json declares a device's spellings once; validate reads them without aliases.toml."""
    for d in builtin():
        for spelling in (d.name, *d.aliases, d.name.upper()):
            assert resolve_gpu(spelling) == (d.name, None, None), spelling


@pytest.mark.parametrize("model,variant,height,expect", [
    ("HunyuanVideo", "", 720, "hunyuanvideo"),
    ("hunyuanvideo-community/HunyuanVideo", "", 720, "hunyuanvideo"),
    ("tencent/HunyuanVideo", "T2V 13B (720p checkpoint)", 720, "hunyuanvideo"),
    ("CogVideoX-5B", "", 480, "cogvideox-5b"),
    ("THUDM/CogVideoX-5b", "", 480, "cogvideox-5b"),
    ("CogVideoX", "5B", 480, "cogvideox-5b"),
    ("CogVideoX1.5-5B", "", 768, None),  # another config: not bundled
    ("CogVideoX-2B", "", 480, None),
    ("LTX-Video", "", 512, "ltx-video"),
    ("Lightricks/LTX-Video", "", 512, "ltx-video"),
    ("FLUX.1-dev", "", 1024, "flux.1-dev"),
    ("black-forest-labs/FLUX.1-dev", "", 1024, "flux.1-dev"),
    ("FLUX.1-schnell", "", 1024, None),  # no bundled schnell
    ("Wan2.1-T2V-14B", "", 720, "wan2.1-t2v-14b"),
    ("Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "", 480, "wan2.1-t2v-1.3b"),
    ("Wan2.1", "I2V-14B", 720, "wan2.1-i2v-14b-720p"),
    ("Wan2.1", "I2V-14B", 480, "wan2.1-i2v-14b-480p"),
    ("Wan2.2", "TI2V-5B", 704, "wan2.2-ti2v-5b"),
    ("SD3.5-large", "", 1024, "sd3.5-large"),
    ("stabilityai/stable-diffusion-3.5-large", "", 1024, "sd3.5-large"),
    ("Mochi", "1", 480, None),
])
def test_model_spellings(model: str, variant: str, height: int, expect: str | None) -> None:
    assert resolve_model(model, variant, height) == expect


@pytest.mark.parametrize("name,device,count", [
    ("A100-SXM4-80GB", "a100", None), ("A100 80GB", "a100", None), ("NVIDIA A100-SXM4-80GB", "a100", None),
    ("H100 80GB HBM3", "h100", None), ("NVIDIA H100 SXM5 80GB", "h100", None), ("H100", "h100", None),
    ("H100 PCIe", "h100-pcie", None), ("A800", "a800", None), ("H800", "h800", None), ("H20", "h20", None),
    ("L40S", "l40s", None), ("RTX 4090", "rtx4090", None), ("GeForce RTX 4090", "rtx4090", None),
    ("H200 (~140GB)", "h200", None), ("H100/H800", "h800", None), ("8xH100", "h100", 8),
    ("A100-SXM4-80GB x 4", "a100", 4), ("8 x H20", "h20", 8),
    # the 40GB SXM4 part is its own device (1,555 GB/s, 40 GiB), never the 80GB a100
    ("A100-SXM4-40GB", "a100-40gb", None), ("A100 40GB", "a100-40gb", None), ("4x A100 40GB", "a100-40gb", 4),
    ("A100-40G", "a100-40gb", None), ("A100 SXM4 40GB HBM2", "a100-40gb", None),
    # a memory size within 10% of the device's (GB vs GiB, vendor rounding) names the same part
    ("H200 141GB", "h200", None), ("B200 192GB", "b200", None), ("L20", "l20", None), ("L40", "l40", None), ("L40S", "l40s", None), ("8xL40 (PCIe)", "l40", 8), ("8x L20 48GB", "l20", 8),
])
def test_gpu_spellings(name: str, device: str, count: int | None) -> None:
    assert resolve_gpu(name) == (device, count, None)


@pytest.mark.parametrize("name,needle", [
    ("A10G", "A10G is not in the device table"),
    ("A100 PCIe", "A100 PCIe"), ("A100-PCIE-40GB", "A100 PCIe"), ("TPU v5", "no device in the table for 'TPU v5'"),
    ("A100-80GB-PCIe", "PCIe/NVL part"), ("H100 NVL 94GB", "PCIe/NVL part"), ("H100 40GB", "no device in the table"),
])
def test_gpus_not_in_the_table_say_why(name: str, needle: str) -> None:
    dev, _, reason = resolve_gpu(name)
    assert dev is None and reason is not None and needle in reason


@pytest.mark.parametrize("text,n,expect", [
    ("Ulysses-2", 2, (2, 1, 1, 1, False)),
    ("Ring-2 x Ulysses-4", 8, (4, 2, 1, 1, False)),
    ("Ulysses-2 x Ring-2", 4, (2, 2, 1, 1, False)),
    ("ulysses_degree=4", 4, (4, 1, 1, 1, False)),
    ("--ulysses-degree 8 --ring-degree 1", 8, (8, 1, 1, 1, False)),
    ("CFG parallel", 2, (1, 1, 2, 1, False)),
    ("cfg=2, ulysses=2", 4, (2, 1, 2, 1, False)),
    ("use_cfg_parallel, ulysses_degree 2", 4, (2, 1, 2, 1, False)),
    ("USP", 4, (4, 1, 1, 1, False)),
    ("USP degree 2 (ulysses/ring split not stated)", 2, (2, 1, 1, 1, False)),
    ("--dit_fsdp --t5_fsdp --ulysses_size 8", 8, (8, 1, 1, 1, True)),
    ("FSDP + Ulysses-4", 4, (4, 1, 1, 1, True)),
    ("para-attn (ring)", 2, (1, 2, 1, 1, False)),  # a method without a degree takes what the GPUs leave
    ("tp=2", 2, (1, 1, 1, 2, False)),
    ("none; batch_size=4", 1, (1, 1, 1, 1, False)),
])
def test_parallel_spellings(text: str, n: int, expect: tuple[int, int, int, int, bool]) -> None:
    got = resolve_parallel(text, n)
    assert not isinstance(got, str), got
    plan, _ = got
    assert (plan["ulysses"], plan["ring"], plan["cfg"], plan["tp"], plan["fsdp"]) == expect


@pytest.mark.parametrize("text,n,needle", [
    ("PipeFusion", 4, "PipeFusion"), ("pipefusion_parallel=4", 4, "PipeFusion"),
    ("xDiT", 4, "does not state the split"), ("para-attn (ulysses + ring)", 4, "not stat"),
    ("none", 8, "is not stated"), ("ulysses_size 4", 8, "does not use 8 GPUs"), ("Ulysses-4", 1, "more than 1 GPU"),
])
def test_parallel_plans_fxmeter_cannot_take_say_why(text: str, n: int, needle: str) -> None:
    got = resolve_parallel(text, n)
    assert isinstance(got, str) and needle in got, got


def test_usp_without_a_split_is_written_down() -> None:
    got = resolve_parallel("USP", 4)
    assert not isinstance(got, str) and any("taken as Ulysses" in a for a in got[1])


@pytest.mark.parametrize("text,precision,reason", [
    ("bf16", "bf16", None), ("torch.bfloat16", "bf16", None), ("fp16", "bf16", None), (None, "bf16", None),
    ("fp8dq (torchao)", "fp8", None), ("fp8dqrow (torchao) + compile_vae", "fp8", None), ("FP8 e4m3", "fp8", None),
    ("int8dq (torchao)", "int8", None), ("SageAttention2, BF16+FP32", "bf16", None),
    ("int8wo", "bf16", "weight-only int8"), ("FP8 quant + tiled VAE", "fp8", None), ("NVFP4", "bf16", "fp4"), ("fp32", "fp32", None),
        ("bf16, VAE fp32", "bf16", None),
    ("autoquant", "bf16", "autoquant"), ("nf4", "bf16", "nf4"),
])
def test_precision_spellings(text: str | None, precision: str, reason: str | None) -> None:
    p, why = resolve_precision(text)
    assert p == precision
    assert (why is None) if reason is None else (why is not None and reason in why)


@pytest.mark.parametrize("value,expect", [
    (True, True), (False, False), (None, False), ("yes", True), ("no", False), ("torch.compile", True),
    ("max-autotune", True), ("max-autotune, fullgraph; fuse_qkv", True), ("reduce-overhead", True),
    ("eager", False), ("PyTorch", False), ("sometimes", None),
])
def test_compile_spellings(value: Any, expect: bool | None) -> None:
    assert resolve_compile(value) is expect


@pytest.mark.parametrize("text,gpu,kernel", [
    ("sdpa", "h100", "sdpa"), ("default", "a100", "sdpa"), ("", "h100", "sdpa"),
    ("SageAttention2.2.0", "h100", "sage"), ("flash-attn 2", "h100", "fa2"), ("flash_attn", "a100", "fa2"),
    ("FlashAttention-3", "h100", "fa3"), ("FlashAttention-3", "a100", "fa2"),
    # not stated which: what the requirements install (flash_attn = FA2), on Hopper too
    ("flash_attn (FA3 if flash_attn_interface installed, else FA2; not stated which)", "h20", "fa2"),
    ("flash_attn (FA3 if flash_attn_interface installed, else FA2; not stated which)", "rtx4090", "fa2"),
    # stated (Wan2.2's README: "FlashAttention3 deployed on Hopper architecture GPUs")
    ("FlashAttention3 on Hopper (H100/H800/H20); FA2 presumably elsewhere", "h800", "fa3"),
    ("FlashAttention3 on Hopper (H100/H800/H20); FA2 presumably elsewhere", "a800", "fa2"),
    ("xformers", "h100", "sdpa"),
])
def test_attention_spellings(text: str, gpu: str, kernel: str) -> None:
    assert resolve_attention(text, gpu)[0] == kernel


# -- per-step and per-forward rows, timing scopes -------------------------------------------------
def test_a_row_without_total_uses_per_step_times_over_the_denoising_loop() -> None:
    m = read_row(row(total_s=None, per_step_s=2.5), 0)
    assert isinstance(m, Measurement)
    assert m.measured_s == pytest.approx(2.5 * 50)  # 50 steps x 2.5 s
    assert m.scope == "transformer"
    sc = scenario(row(total_s=None, per_step_s=2.5))
    assert isinstance(sc, Scenario) and sc.kwargs["stages"] == "transformer"


def test_a_row_with_per_forward_times_counts_every_pass() -> None:
    m = read_row(row(total_s=None, per_forward_s=0.5), 0)
    assert isinstance(m, Measurement)
    assert m.measured_s == pytest.approx(0.5 * 50 * 2)  # 50 steps x 2 passes (CFG) x 0.5 s
    assert m.scope == "transformer"


@pytest.mark.parametrize("scope,expect", [
    ("total generate.py time (s) incl. T5 encode, denoise, VAE decode", "all"),
    ("end-to-end (warmup excluded) and per-step s/it (denoise only)", "all"),  # a total quoting a per-step figure
    ("full pipeline call", "all"), ("denoising loop only", "transformer"), ("transformer only", "transformer"),
    ("", "all"), ("something else", "all"),
])
def test_timing_scopes(scope: str, expect: str) -> None:
    m = read_row(row(timing_scope=scope or None), 0)
    assert isinstance(m, Measurement) and m.scope == expect


def test_other_column_names_and_a_gpu_count_in_the_name() -> None:
    r = {"model_id": "black-forest-labs/FLUX.1-dev", "resolution": "1024x768", "num_inference_steps": 28,
         "gpu": "4x H100", "latency_s": 2.0, "parallel": "Ulysses-4", "compile": "torch.compile", "batch_size": 2}
    m = read_row(r, 0)
    assert isinstance(m, Measurement)
    assert (m.model, m.width, m.height, m.frames, m.steps, m.n_gpus, m.batch, m.measured_s, m.compile) == \
        ("flux.1-dev", 1024, 768, 1, 28, 4, 2, 2.0, True)
    sc = scenario(r)
    assert isinstance(sc, Scenario)
    assert sc.kwargs["gpus"] == 4 and sc.kwargs["parallel"] == "ulysses=4,ring=1,cfg=1,tp=1" and sc.kwargs["batch"] == 2


def test_cogvideox_rows_batch_their_cfg() -> None:
    sc = scenario(row(model="CogVideoX-5B", variant="", height=480, width=720, frames=49,
                      cfg="guidance_scale 6 (cond+uncond batched in one forward)"))
    assert isinstance(sc, Scenario) and sc.model == "cogvideox-5b"
    assert sc.kwargs["batched_cfg"] is True and sc.kwargs["guidance_scale"] == 6.0


# -- bad rows are listed, bad files are one line ------------------------------------------------------
@pytest.mark.parametrize("bad,needle", [
    ("not a row", "row 0 is not an object"),
    ({"variant": "x"}, "no model"),
    (row(total_s=-3), "total_s must be a positive number"),
    (row(total_s="fast"), "total_s must be a positive number"),
    (row(total_s=1e-300), "1e-6 to 1e9"),
    (row(total_s=None), "no measured time"),
    (row(n_gpus="eight"), "n_gpus must be a positive integer"),
    (row(n_gpus=0), "n_gpus must be a positive integer"),
    (row(height="tall"), "height is missing or not a number"),
    (row(steps=10**9), "steps must be 1 to"),
    (row(gpu=None), "no GPU"),
    (row(gpu="8xH100", n_gpus=4), "names 8 GPUs, n_gpus says 4"),
])
def test_a_bad_row_is_read_as_its_reason(bad: Any, needle: str) -> None:
    got = read_row(bad, 0)
    assert isinstance(got, str) and needle in got, got


def test_bad_rows_are_listed_and_the_good_row_still_validates(tmp_path: Path) -> None:
    data = tmp_path / "mixed.json"
    data.write_text(json.dumps([row(), "nonsense", row(id=3, total_s="fast"), row(id=4, model="Mochi"),
                                row(id=5, n_gpus=4, parallel="PipeFusion")]))
    code, out, err = cli("validate", "--data", str(data), "--json")
    assert code == 0, err
    doc = orjson.loads(out)
    assert doc["counts"] == {"rows": 5, "predicted": 1, "represented": 1, "refused": 0, "not_represented": 2,
                             "unreadable": 2, "skipped": 4, "with_measured_peak": 0}
    good, nonsense, fast, mochi, pipefusion = doc["rows"]  # in file order (the nonsense row's id is its index, 1)
    assert good["status"] == "predicted" and good["error"] is not None
    assert nonsense["status"] == "unreadable" and nonsense["reason"] == "row 1 is not an object"
    assert fast["status"] == "unreadable" and "total_s" in fast["reason"]
    assert mochi["reason"].startswith("no bundled model for Mochi")
    assert "PipeFusion" in pipefusion["reason"]
    code, out, _ = cli("validate", "--data", str(data))
    assert code == 0
    assert out.splitlines()[0].startswith("predicted 1 of 5 rows: median signed ")
    assert "unreadable: row 1 is not an object" in out and "not represented: no bundled model for Mochi" in out


@pytest.mark.parametrize("content,needle", [
    ("{not json", "is not JSON"),
    ("42", "expected a list of rows"),
    ("{\"rows\": 3}", "expected a list of rows"),
    ("{\"rows\": []}", "expected a list of rows"),
    ("[]", "expected a list of rows"),
    ("[1, 2]", "no row names a model"),
    (json.dumps([{"gpu": "H100", "total_s": 3}]), "no row names a model"),
    (json.dumps([row(total_s=float("nan"))]), "is not JSON"),  # NaN is not JSON (RFC 8259)
])
def test_a_file_that_is_not_a_measurement_file_is_one_line(tmp_path: Path, content: str, needle: str) -> None:
    data = tmp_path / "bad.json"
    data.write_text(content)
    code, out, err = cli("validate", "--data", str(data))
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert out == ""


def test_csv_rows_are_read(tmp_path: Path) -> None:
    data = tmp_path / "runs.csv"
    data.write_text("model,height,width,frames,steps,gpu,n_gpus,parallel,per_step_s,timing_scope\n"
                    "HunyuanVideo,720,1280,129,50,H100,8,Ulysses-8,6.5,denoising only\n"
                    "Mochi,480,848,163,64,H100,1,none,3.0,\n")
    rows, _ = load_rows(data)
    assert rows[0]["n_gpus"] == 8 and rows[0]["per_step_s"] == 6.5 and "timing_scope" in rows[0]
    assert "timing_scope" not in rows[1]  # an empty cell is absent
    m = read_row(rows[0], 0)
    assert isinstance(m, Measurement) and m.model == "hunyuanvideo" and m.measured_s == pytest.approx(325.0)
    sc = scenario(rows[0])
    assert isinstance(sc, Scenario) and sc.kwargs["parallel"] == "ulysses=8,ring=1,cfg=1,tp=1"


# -- summary, breakdowns, JSON document -----------------------------------------------------------------
def _result(rid: int, err: float, **kw: Any) -> RowResult:
    base: dict[str, Any] = {"source": "a/b", "model": "flux.1-dev", "gpu": "h100", "n_gpus": 1, "compile": "eager",
                            "scope": "all"}
    base.update(kw)
    return RowResult(rid, f"row {rid}", 10.0, 10.0 * (1 + err), 5.0, err, **base)


def test_summary_figures_written_out() -> None:
    s = summarize([-0.2, -0.1, 0.0, 0.1, 0.4])
    # signed median: the middle of -0.2 -0.1 0.0 0.1 0.4 = 0.0; |error| sorted 0.0 0.1 0.1 0.2 0.4 -> median 0.1;
    # P90 by linear interpolation: position 0.9 x 4 = 3.6 -> 0.2 + 0.6 x (0.4 - 0.2) = 0.32
    assert s["median_signed_error"] == 0.0 and s["median_abs_error"] == pytest.approx(0.1)
    assert s["p90_abs_error"] == pytest.approx(0.32) and (s["too_fast"], s["too_slow"]) == (2, 2)
    assert summarize([])["median_signed_error"] is None


def test_breakdowns_group_by_source_model_gpu_count_compile_and_scope() -> None:
    v = Validation((_result(1, -0.2), _result(2, 0.1, n_gpus=8, compile="compiled", source="x/y"),
                    _result(3, -0.3, n_gpus=8, gpu="a100", scope="transformer", model="hunyuanvideo"),
                    RowResult(4, "row 4", 1.0, reason="no device", status="not represented")), "f")
    b = v.breakdowns()
    assert set(b) == {"source", "model", "gpu", "n_gpus", "compile", "scope"}
    assert [(g["key"], g["n"]) for g in b["n_gpus"]] == [("8", 2), ("1", 1)]
    eight = b["n_gpus"][0]
    assert eight["median_signed_error"] == pytest.approx(-0.1)  # median of -0.3 and +0.1
    assert {g["key"] for g in b["scope"]} == {"all", "transformer"}
    mg = v.multi_gpu()
    assert mg["n"] == 2 and mg["median_abs_error"] == pytest.approx(0.2)  # |+0.1| and |-0.3|


def test_json_document_schema() -> None:
    v = Validation((_result(1, -0.2, measured_peak_gb=40.0, predicted_peak_gb=36.0, peak_error=-0.1,
                            peak_kind="allocated"),
                    RowResult(2, "row 2", None, reason="row 2 is not an object", status="unreadable")), "f")
    doc = v.to_dict()
    assert doc["schema_version"] == 2
    assert set(doc) >= {"data", "counts", "summary", "multi_gpu", "memory", "breakdowns", "rows", "predicted",
                        "not_represented", "median_abs_error", "median_signed_error", "worst", "notes"}
    assert set(doc["summary"]) == {"n", "median_signed_error", "median_abs_error", "p90_abs_error", "too_fast",
                                   "too_slow"}
    assert doc["memory"]["n"] == 1 and doc["memory"]["median_signed_error"] == pytest.approx(-0.1)
    r0 = doc["rows"][0]
    assert set(r0) == {"id", "label", "status", "measured_s", "predicted_s", "bound_s", "error", "reason", "assumptions",
                       "source", "model", "gpu", "n_gpus", "compile", "timing_scope", "measured_peak_gb",
                       "predicted_peak_gb", "peak_error", "peak_kind"}
    assert (r0["measured_peak_gb"], r0["predicted_peak_gb"], r0["peak_error"]) == (40.0, 36.0, -0.1)
    assert doc["rows"][1]["status"] == "unreadable" and doc["rows"][1]["measured_s"] is None
    orjson.dumps(doc)  # serialisable


def test_the_console_prints_the_signed_bias_first() -> None:
    v = Validation((_result(1, -0.2), _result(2, 0.1, n_gpus=2)), "f")
    out = render(v)
    first = out.splitlines()[0]
    assert first.startswith("predicted 2 of 2 rows: median signed -5.0%")
    assert first.index("median signed") < first.index("median |error|") < first.index("P90")
    assert "multi-GPU rows (1):" in out and "by GPU count:" in out and "by timing scope:" in out


# -- memory -----------------------------------------------------------------------------------------------
def test_measured_peak_in_gib_is_converted_and_source_defaults_apply() -> None:
    m = read_row(row(peak_mem_gb=10.0, vram_unit="GiB", vram_kind="reserved"), 0)
    assert isinstance(m, Measurement) and m.peak_gb == pytest.approx(10.0 * GIB / GB) and m.peak_kind == "reserved"
    m = read_row(row(peak_mem_gb=10.0, source_repo="sayakpaul/diffusers-torchao"), 0)
    assert isinstance(m, Measurement) and m.peak_gb == pytest.approx(10.737418) and m.peak_kind == "allocated"
    m = read_row(row(peak_mem_gb=10.0), 0)
    assert isinstance(m, Measurement) and m.peak_gb == 10.0 and m.peak_kind == "not stated"
    m = read_row(row(peak_mem_gb="lots"), 0)
    assert isinstance(m, Measurement) and m.peak_gb is None and any("not compared" in a for a in m.assumptions)


def test_predicted_peak_reads_one_place() -> None:
    """validate's memory figure is the process-memory model's, chosen by the kind the source measured."""
    from fxmeter import api
    from fxmeter.estimate.memory import predicted_peak

    req = api.request("wan2.1-t2v-1.3b", workload="480p", hardware="h100", stages="all")
    est = api.estimate_request(req, api.stage_inputs(req))
    pm = predicted_peak(est)
    assert _predicted_peak(est, "allocated") == pm.peak_allocated_bytes
    assert _predicted_peak(est, "reserved") == pm.peak_reserved_bytes
    assert _predicted_peak(est, "nvidia-smi") == pm.peak_device_bytes
    assert _predicted_peak(est, "not stated") == pm.peak_reserved_bytes
    # allocated <= reserved <= what the driver shows (reserved + CUDA context)
    assert pm.peak_allocated_bytes <= pm.peak_reserved_bytes < pm.peak_device_bytes


def test_wan_repository_rows_are_priced_under_wans_runtime() -> None:
    row = {"model": "Wan2.1", "variant": "T2V-14B", "height": 720, "width": 1280, "frames": 81, "steps": 50,
           "gpu": "H800", "n_gpus": 1, "total_s": 1000.0, "peak_mem_gb": 70.0, "source_repo": "Wan-Video/Wan2.1"}
    sc = scenario(row)
    assert not isinstance(sc, str) and sc.runtime == "wan"
    sc2 = scenario({**row, "offload": "--convert_model_dtype"})
    assert not isinstance(sc2, str) and sc2.runtime == "wan-bf16"
    sc3 = scenario({**row, "source_repo": "xdit-project/xDiT"})
    assert not isinstance(sc3, str) and sc3.runtime is None


# -- labels ------------------------------------------------------------------------------------------------
def test_the_shipped_flux_rows_have_distinct_labels() -> None:
    rows, _ = load_rows(shipped_path())
    labels = []
    for i, r in enumerate(rows):
        m = read_row(r, i)
        if isinstance(m, Measurement) and m.model == "flux.1-dev" and r.get("source_repo") == "sayakpaul/diffusers-torchao":
            labels.append(label(m))
    assert len(labels) >= 10
    assert len(set(labels)) == len(labels), sorted(labels)
    for lab in labels:  # batch, compile, GPU count and attention are in every label
        assert " b" in lab and (" eager " in lab or " compiled " in lab) and " x1 " in lab and " sdpa " in lab


def test_labels_are_never_cut_mid_word() -> None:
    text = "Wan2.1 T2V-1.3B (Diffusers weights, FastVideo runtime) 832x480x81f 50st b1 A100-80GB x1 eager sdpa bf16"
    words = set(text.split())
    for width in (20, 33, 52, 64):
        lines = wrap_words(text, width)
        assert " ".join(lines) == text
        assert all(len(ln) <= width for ln in lines)
        cut = fit_words(text, width)
        assert len(cut) <= width and cut.endswith("...")
        assert all(w in words for w in cut[:-3].split())
    v = Validation((RowResult(7, text, 10.0, 9.0, 5.0, -0.1),), "f")
    table = [ln for ln in render(v).splitlines() if ln.startswith("   7") or ln.startswith("        ")]
    assert " ".join(ln.split(None, 1)[1] if ln.startswith("   7") else ln.strip() for ln in table).startswith(text[:40])


# -- multi-GPU: CogVideoX and LTX-Video split by CFG and by the sequence ----------------------------------------
def test_cogvideox_and_ltx_take_cfg_and_sequence_parallel_on_a_static_trace() -> None:
    from fxmeter import api

    for model in ("cogvideox-5b", "ltx-video"):
        for spec in ("cfg=2", "ulysses=2"):
            req = api.request(model, hardware="h100", gpus=2, parallel=spec)
            assert req.plan is not None and req.plan.gpus == 2


def test_the_multi_gpu_refusal_ends_with_a_whole_flag() -> None:
    code, _, err = cli("trace", "minimax-h3", "--hardware", "h100", "--gpus", "2")  # no split rules: one GPU
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].rstrip().endswith("(leave --gpus out)"), err


# -- every bundled model by its published names -------------------------------------------------------------
def test_every_bundled_model_is_known_by_its_own_id() -> None:
    from fxmeter.model.registry import MODELS

    for mid in MODELS:
        assert resolve_model(mid, None, 720) == mid
        assert resolve_model(mid.upper(), "", 480) == mid


@pytest.mark.parametrize("name,model", [
    # the Hugging Face repository a config came from, with or without "-Diffusers" (derived from the registry)
    ("Wan-AI/Wan2.2-T2V-A14B-Diffusers", "wan2.2-t2v-a14b"), ("Wan2.1-I2V-14B-720P-Diffusers", "wan2.1-i2v-14b-720p"),
    ("Wan-AI/Wan2.1-T2V-1.3B", "wan2.1-t2v-1.3b"), ("hunyuanvideo-community/HunyuanVideo", "hunyuanvideo"),
    # the alias table's published names of the models added since
    ("black-forest-labs/FLUX.2-dev", "flux.2-dev"), ("FLUX.2 [dev]", "flux.2-dev"),
    ("FLUX.2 [klein] 4B", "flux.2-klein-4b"), ("Tongyi-MAI/Z-Image-Turbo", "z-image-turbo"),
    ("Lightricks/LTX-2", "ltx-2"), ("tencent/HunyuanVideo-1.5", "hunyuanvideo1.5-480p-t2v"),
    ("Wan-AI/Wan2.1-VACE-14B-diffusers", "wan2.1-vace-14b"), ("Wan2.1-VACE-1.3B", "wan2.1-vace-1.3b"),
    ("Efficient-Large-Model/Sana_1600M_1024px_diffusers", "sana-1600m-1024"), ("PixArt-Sigma", "pixart-sigma-1024"),
    ("THUDM/CogView4-6B", "cogview4-6b"), ("Alpha-VLLM/Lumina-Image-2.0", "lumina-image-2.0"),
    ("HiDream-ai/HiDream-I1-Full", "hidream-i1-full"), ("lodestones/Chroma1-HD", "chroma"),
    ("fal/AuraFlow-v0.3", "auraflow-v0.3"), ("rhymes-ai/Allegro", "allegro"),
    ("nvidia/Cosmos-Predict2-2B-Video2World", "cosmos-predict2-2b-v2w"),
    ("Kandinsky 5.0 T2V Lite", "kandinsky5-t2v-lite"), ("MiniMax-AI/MiniMax-H3", "minimax-h3"),
    ("nvidia/ChronoEdit-14B-Diffusers", "chronoedit-14b"), ("Skywork/SkyReels-V2-T2V-14B-720P", "skyreels-v2-t2v-14b-720p"),
    # other checkpoints of a family stay unknown: another config
    ("FLUX.1-schnell", None), ("CogVideoX1.5-5B", None), ("Wan2.2-Animate-14B", None),
])
def test_published_model_names(name: str, model: str | None) -> None:
    assert resolve_model(name, None, 720) == model


@pytest.mark.parametrize("name,expect", [
    ("AMD Instinct MI300X", ("mi300x", None)), ("H100x8", ("h100", 8)), ("RTX4090", ("rtx4090", None)),
    ("rtx 4090 x2", ("rtx4090", 2)), ("8xH100", ("h100", 8)),
])
def test_gpu_counts_and_vendor_words(name: str, expect: tuple[str, int | None]) -> None:
    assert resolve_gpu(name)[:2] == expect


@pytest.mark.parametrize("text,n,degrees", [
    ("ulysses4", 4, (4, 1, 1)), ("sp4", 4, (4, 1, 1)), ("cfg2 x ulysses4", 8, (4, 1, 2)),
    ("ulysses2 ring2", 4, (2, 2, 1)), ("Ring-2 x Ulysses-4", 8, (4, 2, 1)),
])
def test_degrees_written_onto_the_method(text: str, n: int, degrees: tuple[int, int, int]) -> None:
    plan = resolve_parallel(text, n)
    assert not isinstance(plan, str), plan
    assert (plan[0]["ulysses"], plan[0]["ring"], plan[0]["cfg"]) == degrees


@pytest.mark.parametrize("value,seconds", [
    ("1.5 s/it", 1.5), ("2 it/s", 0.5), ("1500 ms", 1.5), ("3,400.5 s", 3400.5), ("12", 12.0),
])
def test_times_with_their_units(value: str, seconds: float) -> None:
    from fxmeter.validate import _seconds

    assert _seconds(value, "per_step_s") == pytest.approx(seconds)


@pytest.mark.parametrize("value,compiled", [("compile=True", True), ("torch_compile: yes", True), ("compiled: no", False),
                                            ("TensorRT", None)])
def test_compile_written_as_a_setting(value: str, compiled: bool | None) -> None:
    assert resolve_compile(value) is compiled


def test_the_alias_table_holds_only_model_names_that_cannot_be_derived() -> None:
    """Declared once: a [models] entry that the registry already gives (a bundled id, its Hugging Face repository)
    does not belong in aliases.toml."""
    from fxmeter import validate

    derived = validate._bundled_names()
    for key, mid in validate.aliases().models.items():
        assert (derived.get(key) or derived.get(validate._undiffusers(key))) != mid, \
            f"{key!r} = {mid!r} is derivable: drop it from aliases.toml"


@pytest.mark.parametrize("model,variant,resolution,size", [
    ("Wan2.1", "T2V-14B", "720p", (720, 1280)), ("Wan2.1", "I2V-14B", "480P", (480, 832)),
    ("HunyuanVideo", "", "720p", (720, 1280)), ("CogVideoX-5B", "", "480p", (480, 720)),
    # the model's own preset of that name first: Wan2.2 TI2V-5B's 720P is 1280x704
    ("Wan2.2-TI2V-5B", "", "720p", (704, 1280)), ("FLUX.1-dev", "", "1024px", (1024, 1024)),
])
def test_a_resolution_named_by_its_height(model: str, variant: str, resolution: str, size: tuple[int, int]) -> None:
    m = read_row({"model": model, "variant": variant, "resolution": resolution, "frames": 1, "steps": 10,
                  "gpu": "H100", "total_s": 10.0}, 0)
    assert not isinstance(m, str), m
    assert (m.height, m.width) == size and any("resolution" in a for a in m.assumptions)


def test_a_resolution_with_no_single_width_says_so() -> None:
    got = read_row({"model": "HunyuanVideo", "resolution": "540p", "frames": 129, "steps": 50, "gpu": "H100",
                    "total_s": 10.0}, 0)
    assert isinstance(got, str) and "names no single width" in got


def test_frames_and_steps_not_stated_are_the_models_defaults_and_said_so() -> None:
    m = read_row({"model": "HunyuanVideo", "height": 720, "width": 1280, "gpu": "8xH100", "parallel": "ulysses8",
                  "per_step_s": 5.6}, 0)
    assert not isinstance(m, str), m
    assert (m.frames, m.steps) == (129, 50)
    assert any("frames not stated: 129" in a for a in m.assumptions)
    # stated but nonsense is still the row's error, never a default
    got = read_row({"model": "HunyuanVideo", "height": 720, "width": 1280, "gpu": "H100", "frames": "lots",
                    "total_s": 5.6}, 0)
    assert isinstance(got, str) and "frames" in got


def test_a_row_quantized_on_the_gpu_is_predicted_with_quantize_on_device() -> None:
    r = {"model": "FLUX.1-dev", "height": 1024, "width": 1024, "steps": 28, "gpu": "H100", "total_s": 1.5,
         "precision": "fp8dq (torchao)", "quantize_on_device": True}
    sc = scenario(r)
    assert isinstance(sc, Scenario)
    assert sc.kwargs["precision"] == "fp8" and sc.kwargs["quantize_on_device"] is True
    assert any("--quantize-on-device" in a for a in sc.assumptions)
    # bf16 weights: nothing is quantized, the flag is set aside and said so (never a refused row)
    sc = scenario({**r, "precision": "bf16"})
    assert isinstance(sc, Scenario) and "quantize_on_device" not in sc.kwargs
    assert any("quantize_on_device ignored" in a for a in sc.assumptions)


def test_a_fused_qkv_row_is_predicted_with_fuse_qkv() -> None:
    r = {"model": "FLUX.1-dev", "height": 1024, "width": 1024, "steps": 28, "gpu": "H100", "total_s": 1.5,
         "precision": "bf16", "fuse_qkv": True}
    sc = scenario(r)
    assert isinstance(sc, Scenario) and sc.kwargs["fuse_qkv"] is True
    sc = scenario({**r, "fuse_qkv": False})
    assert isinstance(sc, Scenario) and "fuse_qkv" not in sc.kwargs
