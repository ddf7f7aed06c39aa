"""Issue 19 (a new user's first hour, numbers part): each finding pinned by a test that failed before its fix.

Items: 2 (--price-per-hour parsing), 3 (stand-in devices named, cross-architecture stand-ins said, an
architecture-aware attention stand-in), 4 (no seconds / GPU-hours / $ for setups that do not fit; offload copies
in the seconds), 5 (transformer-only vs whole generation labels, ``Report.generation``), 7 (--cache-skip arithmetic),
11 (fit headroom), 15 (more GPUs than one NVLink node; --stages vae console lines).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import fxmeter
from fxmeter.cli.main import main
from fxmeter.estimate.hardware import HardwareError, get, parse_prices


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.stdout, r.stderr


def one_error(code: int, err: str, needle: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert needle in lines[0], lines[0]


# -- item 2: --price-per-hour ------------------------------------------------------------------------
H100, A100 = get("h100"), get("a100")


@pytest.mark.parametrize(("spec", "devices", "needle"), [
    ("2,49", [H100], "decimal comma: write 2.49"),           # was $49 (the last of two bare prices)
    ("2,49", [H100, A100], "decimal comma: write 2.49"),
    ("2,490", [H100], "write 2.490 (or 2490 if the comma separates thousands)"),
    ("h100=2.49,h100=3", [H100, A100], "prices h100 twice"),  # was 3, silently
    ("h100=2.49,h100-sxm=3", [H100], "prices h100 twice"),   # an alias is the same device
    ("", [H100], "is empty"),                                # was no price at all, silently
    ("  ", [H100], "is empty"),
    ("2.49,3", [H100, A100], "2 bare prices"),
    ("2.49,a100=1.29", [H100, A100], "mixes a bare price"),
    ("2.49,", [H100], "empty item"),
    ("=2.49", [H100], "names no device"),
    ("h100=2,49", [H100, A100], "mixes a bare price"),       # '49' is a bare price beside h100=2
])
def test_price_per_hour_refuses_ambiguous_input(spec: str, devices: list[Any], needle: str) -> None:
    with pytest.raises(HardwareError, match=None) as e:
        parse_prices(spec, devices)
    assert needle in str(e.value)


def test_price_per_hour_accepts_the_unambiguous_forms() -> None:
    # one bare number: every device (README "Time on a GPU"); NAME=PRICE per device, aliases canonicalised
    assert parse_prices("2.49", [H100, A100]) == {"h100": 2.49, "a100": 2.49}
    assert parse_prices(" h100=2.49 , a100-sxm=1.29 ", [H100, A100]) == {"h100": 2.49, "a100": 1.29}
    assert parse_prices(3, [H100]) == {"h100": 3.0}
    assert parse_prices(None, [H100]) == {}


def test_price_per_hour_decimal_comma_on_the_cli() -> None:
    code, _, err = run("trace", "wan2.1-t2v-14b", "-w", "720p", "--hardware", "h100", "--price-per-hour", "2,49",
                       "--output-root", "/nonexistent-never-written")
    one_error(code, err, "write 2.49")


# -- item 7: --cache-skip arithmetic ------------------------------------------------------------------
def test_cache_skip_end_to_end_line_is_true(tiny_config: Path) -> None:
    from fxmeter.report.summary import headline, render

    rep = fxmeter.trace(config=tiny_config, workload="ci-tiny", steps=4, cache_skip=0.5, run_id="skip")
    pf, e2e = rep.totals.per_forward.metrics.flops, rep.totals.end_to_end.metrics.flops
    # 4 steps x 2 passes = 8 forwards; --cache-skip 0.5 skips floor(8 x 0.5) = 4: per forward x 4 = end to end
    assert e2e == 4 * pf
    md = render(rep)
    line = next(ln for ln in md.splitlines() if ln.startswith("End to end ="))
    assert "per forward x 4 forwards run" in line and "= 8 forwards" in line and "skips 4" in line, line
    assert "x 4 steps x 2 passes per step =" not in md  # the old line: 8 forwards' arithmetic beside 4 forwards' FLOPs
    assert "(4 of 8 forwards run" in headline(rep)


# -- item 11: fit headroom -----------------------------------------------------------------------------
def test_fit_says_how_much_is_left_and_warns_when_tight() -> None:
    from fxmeter.estimate.headroom import CONTEXT_BYTES, headroom
    from fxmeter.estimate.memory import GIB, fit

    # Wan2.2-A14B's whole generation on an H100: 78.6 of 80 GiB -> 1.4 GiB (1.8%) to spare, under a context + slack
    h = headroom(int(78.6 * GIB), 80 * GIB)
    assert h.bytes == 80 * GIB - int(78.6 * GIB) and not h.tight
    assert h.text().startswith("1.4 GiB (1.8%) to spare (tight: a CUDA context takes ~0.5-1 GiB")
    assert "too tight" in headroom(80 * GIB - CONTEXT_BYTES // 2, 80 * GIB).text()  # less than a context left
    assert headroom(40 * GIB, 80 * GIB).text() == "40.0 GiB (50.0%) to spare"  # roomy: no warning
    assert headroom(81 * GIB, 80 * GIB).text() == ""
    f = fit(70 * GIB, 9 * GIB, 80 * GIB, "X")  # 79 of 80 GiB
    assert f.fits and f.headroom_bytes == GIB and "1.0 GiB (1.2%) to spare (tight" in f.statement


def test_report_fit_carries_headroom_bytes(tiny_config: Path) -> None:
    rep = fxmeter.trace(config=tiny_config, workload="ci-tiny", hardware="h100", run_id="hr")
    fit = rep.to_dict()["memory"]["fit"]
    assert fit["headroom_bytes"] == fit["device_bytes"] - fit["required_bytes"] > 0
    assert "to spare" in fit["statement"]


# -- item 5: transformer-only vs whole generation -------------------------------------------------------
def test_report_generation_is_the_whole_generation_end_to_end_the_transformer() -> None:
    rep = fxmeter.trace("wan2.1-t2v-14b", workload="720p", hardware="h100", include_nodes=False, run_id="gen")
    gen, e2e = rep.generation, rep.end_to_end
    assert gen is not None and rep.pipeline is not None
    assert gen["scope"] == "whole generation" and gen["stages"] == {"text_encoder": 2, "transformer": 100, "vae": 1}
    # the whole generation = the stages' sum (+ copies, none here); the transformer alone is end_to_end
    assert gen["flops"] == sum(st.end_to_end.metrics.flops for st in rep.pipeline.stages) > e2e["flops"]
    assert gen["predicted_seconds"] > e2e["predicted_seconds"]
    assert "transformer ALONE" in (type(rep).end_to_end.__doc__ or "")
    assert "WHOLE generation" in (type(rep).generation.__doc__ or "")


def test_gpus_console_ends_with_the_n_gpu_lines(tmp_path: Path) -> None:
    code, out, err = run("trace", "wan2.1-t2v-14b", "-w", "720p", "--hardware", "h100", "--gpus", "4",
                         "--output-root", str(tmp_path), "--run-id", "g4")
    assert code == 0, err
    lines = [ln for ln in out.splitlines() if not ln.startswith("wrote ")]
    n_gpu = next(i for i, ln in enumerate(lines) if ln.startswith("  on 4 x "))
    # after the 4-GPU block nothing falls back to one GPU; the one-GPU lines before it say they are one GPU's
    assert all("fits on one" not in ln and "whole generation" not in ln for ln in lines[n_gpu:]), lines[n_gpu:]
    assert "per generation (text_encoder, transformer, vae)" in lines[n_gpu + 1]
    assert any(ln.startswith("  whole generation on ONE GPU") for ln in lines[:n_gpu])
    assert any(ln.startswith("  on ONE GPU: fits on one") for ln in lines[:n_gpu])


def test_offload_console_does_not_print_the_transformer_alone_fit(tmp_path: Path) -> None:
    code, out, err = run("trace", "wan2.1-t2v-14b", "-w", "720p", "--hardware", "rtx4090", "--offload", "sequential",
                         "--output-root", str(tmp_path), "--run-id", "seq")
    assert code == 0, err
    assert "transformer alone: does NOT fit" not in out  # the policy was given: its fit is the one that counts
    assert "fits on one NVIDIA GeForce RTX 4090 24GB with --offload sequential" in out


def test_bare_config_console_says_the_text_encoder_and_vae_are_missing(tiny_config: Path, tmp_path: Path) -> None:
    code, out, err = run("trace", "--config", str(tiny_config), "-w", "ci-tiny", "--output-root", str(tmp_path),
                         "--run-id", "bare")
    assert code == 0, err
    line = next(ln for ln in out.splitlines() if "NOT modeled" in ln)
    assert "transformer's alone" in line and "text_encoder, vae" in line and "no config for" in line


# -- item 15: more GPUs than one NVLink node; --stages vae ------------------------------------------------
def test_more_gpus_than_one_nvlink_node_warns(tmp_path: Path) -> None:
    from fxmeter.estimate.deploy import NVLINK_NODE_GPUS, multi_node_warning

    assert NVLINK_NODE_GPUS == 8 and multi_node_warning(8) is None
    assert "at least 125 servers" in (multi_node_warning(1000) or "")  # ceil(1000 / 8)
    code, out, err = run("trace", "wan2.1-t2v-14b", "-w", "720p", "--hardware", "h100", "--gpus", "16",
                         "--output-root", str(tmp_path), "--run-id", "g16")
    assert code == 0, err
    warn = next(ln for ln in out.splitlines() if ln.strip().startswith("warning: 16 GPUs"))
    assert "8-GPU NVLink node" in warn and "no inter-node network is modelled" in warn


def test_stages_vae_prints_the_vae(tmp_path: Path) -> None:
    code, out, err = run("trace", "wan2.1-t2v-14b", "-w", "720p", "--hardware", "h100", "--stages", "vae",
                         "--output-root", str(tmp_path), "--run-id", "vae")
    assert code == 0, err
    assert "stages asked for (--stages vae) (vae x1)" in out
    vae = next(ln for ln in out.splitlines() if ln.startswith("    vae (AutoencoderKLWan) x1:"))
    assert "predicted" in vae and "bound" in vae
    assert "the denoising transformer alone (the stages asked for below)" in out


# -- item 4: no seconds, GPU-hours or $ as if valid for setups that do not fit ----------------------------
@pytest.fixture(scope="module")
def side_by_side() -> Any:
    return fxmeter.trace("wan2.1-t2v-14b", workload="720p", hardware="h100,rtx4090", price_per_hour="h100=2,rtx4090=1",
                         include_nodes=False, run_id="sbs")


def test_offload_row_seconds_include_that_policys_copies(side_by_side: Any) -> None:
    seq = fxmeter.trace("wan2.1-t2v-14b", workload="720p", hardware="rtx4090", offload="sequential",
                        include_nodes=False, run_id="seq")
    row = next(d for d in side_by_side.devices if d.name == "rtx4090")
    assert row.fits_with == "sequential" and not row.fits
    # the row is the generation under --offload sequential: its stages plus its ~106 s of PCIe copies
    gen = seq.generation
    assert gen is not None and seq.pipeline is not None and seq.pipeline.transfer_seconds > 100
    assert row.predicted_seconds == pytest.approx(gen["predicted_seconds"], rel=1e-9)
    assert row.bound_seconds == pytest.approx(gen["bound_seconds"], rel=1e-9)


def test_device_table_gives_no_numbers_for_a_setup_that_fits_nowhere() -> None:
    from fxmeter.report.document import DeviceInfo, ReportDocument
    from fxmeter.report.summary import devices_table

    rows = (DeviceInfo("h100", "NVIDIA H100 SXM5 80GB", 778.4, 1653.4, "kernel model", 2.18, 0.4593, True, "fits",
                       2.0, 0.9186),
            DeviceInfo("l4", "NVIDIA L4 24GB", 6822.5, 7172.0, "kernel model", 0.5, 1.9922, False, "does NOT fit", 1.0,
                       None))

    class Fake:
        devices = rows

    table = devices_table(Fake())  # type: ignore[arg-type]
    l4 = next(ln for ln in table if "L4" in ln)
    assert "7,172" not in l4 and "1.9922" not in l4 and "NO: does not fit" in l4
    assert any("no seconds, GPU-hours or $ are given" in ln for ln in table)
    assert ReportDocument  # the table renders from the report's rows alone


def test_non_fitting_main_device_lines_say_so(tmp_path: Path) -> None:
    code, out, err = run("trace", "wan2.1-t2v-14b", "-w", "720p", "--hardware", "rtx4090", "--output-root",
                         str(tmp_path), "--run-id", "nofit")
    assert code == 0, err
    assert "(does NOT fit in this device's memory" in out
    assert next(ln for ln in out.splitlines() if ln.startswith("  whole generation")).endswith(
        "does NOT fit (seconds as if it did)")


def test_non_fitting_deployment_prints_no_gpu_hours() -> None:
    from fxmeter.report.deployment import console_lines

    rep = fxmeter.trace("wan2.1-t2v-14b", workload="720p", hardware="rtx4090", gpus=4, parallel="cfg=2,ulysses=2",
                        price_per_hour=1.0, include_nodes=False, run_id="dep-nofit")
    assert rep.deployment is not None and not rep.deployment.memory["fits"]
    lines = console_lines(rep.deployment, 1.0)
    assert not any("GPU-hours per generation" in ln or re.search(r"\$\d", ln) for ln in lines)
    assert "does NOT fit (seconds as if it did)" in lines[1]
    assert any("does NOT fit in each GPU's memory" in ln for ln in lines)


# -- item 3: stand-in devices named; cross-architecture stand-ins said; an arch-aware attention stand-in -----
def test_attention_stand_in_is_rescaled_for_the_exponential_balance() -> None:
    from fxmeter.estimate.kernels import KernelCall, KernelOptions, exp_balance, kernel_time, load_kernel_model

    m, l40s, rtx4090 = load_kernel_model(), get("l40s"), get("rtx4090")
    # RTX 4090 SDPA hd128 at 32k: 164 of 165.2 TFLOP/s; exponentials (SFU, 16/clk/SM; 128 FP32 lanes/SM on Ada):
    #   4090: X = 82.6e12 / 256 * 16 = 5.1625e12/s, P/(4*128*X) = 165.2e12 / (512 * 5.1625e12) = 0.06250
    #   L40S: X = 91.6e12 / 256 * 16 = 5.725e12/s,  P/(4*128*X) = 362.05e12 / (512 * 5.725e12) = 0.123516
    #   1/f_s = 165.2/164 = 1.007317; factor = 1.007317 / (1.007317 - 0.062500 + 0.123516) = 0.942887
    f_s = 164 / 165.2
    x_s, x_t = 165.2e12 / (512 * 82.6e12 / 256 * 16), 362.05e12 / (512 * 91.6e12 / 256 * 16)
    factor = (1 / f_s) / (1 / f_s - x_s + x_t)
    assert exp_balance(f_s, rtx4090, l40s, 128, 165.2e12, 362.05e12) == pytest.approx(factor, rel=1e-12)
    assert factor == pytest.approx(0.942887, abs=1e-6)
    # one self-attention of Wan2.1-14B at 720p (40 heads of 128, 75,600 tokens); no memory / launch term matters
    flops = 4 * 40 * 128 * 75_600 * 75_600
    call = KernelCall("attention", flops, 0, 0, {"b": 1, "h": 40, "lq": 75_600, "lk": 75_600, "d": 128, "dv": 128},
                      launches=0)
    t = kernel_time(call, l40s, KernelOptions(), m)
    waves = (40 * 591) / (-(-(40 * 591) // 142) * 142)  # ceil(75,600/128) = 591 query blocks per head on 142 SMs
    assert t.seconds == pytest.approx(flops / (164e12 / 165.2e12 * 362.05e12 * factor * waves), rel=1e-9)
    assert "rtx4090" in t.basis and "exp-balance x0.943" in t.basis  # was the 4090's plain 99% fraction of peak
    # an own table is untouched, and FA3 (softmax overlapped) keeps the plain fraction
    assert "exp-balance" not in kernel_time(call, rtx4090, KernelOptions(), m).basis
    assert "exp-balance" not in kernel_time(call, get("h200"), KernelOptions(attention="fa3"), m).basis


def test_stand_ins_name_the_measured_device_and_its_architecture() -> None:
    from fxmeter.estimate.kernels import KernelOptions, load_kernel_model, stand_ins

    subs = {s.kind: s for s in stand_ins(load_kernel_model(), get("l40s"), KernelOptions())}
    att, gemm = subs["attention"], subs["GEMM"]
    assert att.text().startswith("attention: SDPA (FA2) efficiency of NVIDIA GeForce RTX 4090 24GB (Ada) used for "
                                 "NVIDIA L40S 48GB (Ada)") and not att.cross_architecture
    assert gemm.cross_architecture and gemm.measured_on == "a100"
    assert "of NVIDIA A100 SXM4 80GB (Ampere) used for NVIDIA L40S 48GB (Ada) -- ACROSS ARCHITECTURES" in gemm.text()
    assert not stand_ins(load_kernel_model(), get("a100"), KernelOptions())  # every A100 constant is its own


def test_stand_ins_are_shown_in_report_console_and_summary(tmp_path: Path) -> None:
    code, out, err = run("trace", "wan2.1-t2v-14b", "-w", "720p", "--hardware", "l40s,a100", "--output-root",
                         str(tmp_path), "--run-id", "si")
    assert code == 0, err
    lines = out.splitlines()
    head = next(ln for ln in lines if ln.startswith("  NVIDIA L40S 48GB"))
    assert "ANOTHER ARCHITECTURE" in head  # the device's headline line says it
    assert any(ln.startswith("    stand-in: attention: SDPA (FA2) efficiency of NVIDIA GeForce RTX 4090") for ln in lines)
    row = next(ln for ln in lines if ln.startswith("  NVIDIA L40S 48GB  "))
    assert "[stand-in across architectures]" in row
    assert not any(ln.startswith("  NVIDIA A100 SXM4 80GB ") and "stand-in" in ln for ln in lines)
    import json

    rep = json.loads((tmp_path / "si" / "static_analysis" / "wan2_1" / "report.json").read_text())
    kinds = {s["kind"]: s for s in rep["hardware"]["stand_ins"]}
    assert kinds["GEMM"]["cross_architecture"] and kinds["attention"]["measured_on"] == "rtx4090"
    assert rep["devices"][0]["stand_ins"] == rep["hardware"]["stand_ins"] and "stand_ins" not in rep["devices"][1]
    md = (tmp_path / "si" / "static_analysis" / "wan2_1" / "summary.md").read_text()
    assert "used for NVIDIA L40S 48GB (Ada)" in md and "priced with stand-ins" in md
    assert "**Priced with another architecture's measurements:** GEMM: bf16 MAMF efficiency of NVIDIA A100" in md
