"""``--precision int8`` (torchao's int8 dynamic quantization, W8A8): the dense INT8 peaks of the device
table, 1-byte matmul weights, matmul nodes at the int8 peak (roofline and kernel model), the one-line
refusal on a device without an int8 peak, and the validate mapping of ``int8dq`` rows."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from fxmeter.cli import main
from fxmeter.estimate import hardware
from fxmeter.estimate.evaluate import Weights
from fxmeter.estimate.hardware import HardwareError
from fxmeter.estimate.kernels import KernelCall, KernelOptions, check_kernel, kernel_time, load_kernel_model
from fxmeter.estimate.memory import at_precision
from fxmeter.estimate.metrics import Metrics
from fxmeter.estimate.roofline import Device, node_time, tensor_core_peak
from fxmeter.validate import Scenario, scenario

#: Dense INT8 tensor-core ops/s of every shipped device (fxmeter/data/hardware.json, each with its source there).
INT8_PEAKS = {
    "h100": 1979e12, "h200": 1979e12, "h20": 296e12, "h800": 1978.9e12, "h100-pcie": 1513e12,
    "a100": 624e12, "a100-40gb": 624e12, "a800": 624e12, "b200": 4500e12, "l40": 362e12, "l40s": 733e12, "l4": 242.5e12, "l20": 239e12,
    "rtx3090": 284e12, "rtx4090": 660.6e12, "rtx5090": 838e12, "mi300x": 2600e12,
}


def _no_int8_device(tmp_path: Path) -> Path:
    p = tmp_path / "dev.json"
    p.write_text(json.dumps({"name": "noint8", "tensor_core": {"bf16": 100e12, "fp8": 200e12}, "cuda_core_fp32": 10e12,
                             "memory_bandwidth": 1e12, "memory_gib": 16}))
    return p


@pytest.mark.parametrize(("device", "peak"), sorted(INT8_PEAKS.items()))
def test_int8_peak_per_device(device: str, peak: float) -> None:
    hw = hardware.get(device)
    assert hw.tc_peak("int8") == peak
    assert "int8" in hw.sources["tensor_core"].lower()  # every int8 peak names its source


def test_every_shipped_device_has_an_int8_peak() -> None:
    assert set(hardware.table()) == set(INT8_PEAKS)


def test_hardware_file_int8_is_optional(tmp_path: Path) -> None:
    hw = hardware.get(None, _no_int8_device(tmp_path))
    assert hw.tensor_core["int8"] is None
    with pytest.raises(HardwareError, match="noint8 has no int8 tensor-core peak"):
        hw.tc_peak("int8")
    p = tmp_path / "with.json"
    p.write_text(json.dumps({"name": "with8", "tensor_core": {"bf16": 100e12, "int8": 400e12}, "cuda_core_fp32": 10e12,
                             "memory_bandwidth": 1e12, "memory_gib": 16}))
    assert hardware.get(None, p).tc_peak("int8") == 400e12


def test_hardware_command_lists_int8() -> None:
    res = CliRunner().invoke(main, ["hardware"])
    assert res.exit_code == 0, res.output
    assert "int8 TOP/s" in res.output.splitlines()[0]
    rtx3090 = next(ln for ln in res.output.splitlines() if ln.startswith("rtx3090"))
    # name, bf16 71.0, fp8 "-" (no fp8 tensor cores on Ampere), int8 284.0
    assert rtx3090.split()[1:4] == ["71.0", "-", "284.0"]


# -- weights --------------------------------------------------------------------------------------------
def test_weights_int8() -> None:
    w = Weights(weight_bytes=1000, weight_bytes_by_dtype={"bfloat16": 900, "float32": 100},
                parameters_by_dtype={"bfloat16": 450, "float32": 25}, matmul_parameters=400, matmul_bytes=800,
                dtype="bfloat16")
    m = at_precision(w, "int8")
    # bf16 900 - 800 matmul bytes = 100; 400 matmul params in 1 byte (int8); fp32 100 untouched -> 600
    assert m.weight_bytes_by_dtype == {"bfloat16": 100, "float32": 100, "int8": 400}
    assert m.weight_bytes == 600 and m.parameters_by_dtype == w.parameters_by_dtype
    assert m.precision == "int8: 400 matmul/conv weight parameters in 1 byte each"


def test_int8_weights_of_the_tiny_model(tiny_config: Path) -> None:
    import fxmeter

    bf16 = fxmeter.trace(config=tiny_config, workload="ci-tiny", run_id="i8a")["memory"]
    int8 = fxmeter.trace(config=tiny_config, workload="ci-tiny", run_id="i8b", precision="int8")["memory"]
    by = int8["weight_bytes_by_dtype"]
    # the fp32 modules (time_embedder) stay fp32; each bf16 matmul weight went from 2 bytes to 1
    assert by["float32"] == bf16["weight_bytes_by_dtype"]["float32"]
    assert by["int8"] > 0 and bf16["weight_bytes_by_dtype"]["bfloat16"] - by["bfloat16"] == 2 * by["int8"]
    assert int8["weight_bytes"] == sum(by.values()) == bf16["weight_bytes"] - by["int8"]


# -- time -----------------------------------------------------------------------------------------------
def test_roofline_matmul_node_at_the_int8_peak() -> None:
    h100 = hardware.get("h100")
    peaks = Device(h100, "int8").peaks()
    assert tensor_core_peak(peaks, "matmul") == 1979e12
    assert tensor_core_peak(peaks, "attention") == 989.4e12  # attention keeps --attention-precision (bf16)
    # a 4096^3 GEMM: 2*4096^3 = 137,438,953,472 ops / 1979e12 ops/s = 6.9449e-5 s; its bytes
    # (3 * 4096^2 * 2 = 100,663,296 B / 3.35e12 B/s = 3.0e-5 s) and CUDA work are smaller: tensor-core bound
    cost = Metrics(2 * 4096**3, 0, 2 * 2 * 4096**2, 2 * 4096**2)
    t, limiter = node_time(cost, tensor_core_peak(peaks, "matmul"), peaks["cuda_core_flops_per_s"],
                           peaks["bytes_per_s"], {"tc": 1.0, "cuda": 1.0, "bw": 1.0})
    assert limiter == "tensor_core" and t == pytest.approx(137_438_953_472 / 1979e12, rel=1e-15)


def test_kernel_model_int8_gemm_takes_a_flagged_stand_in() -> None:
    model = load_kernel_model()
    opts = KernelOptions(precision="int8")
    call = KernelCall("matmul", 2 * 8192**3, 0, 2 * 3 * 8192**2, {"b": 1, "m": 8192, "n": 8192, "k": 8192})
    t = kernel_time(call, hardware.get("h100"), opts, model)
    # no int8 GEMM measurement is published: H100's fp8 MAMF 1402.6/1979 stands in (flagged), at the int8 peak
    # 1979e12; 64*32 = 2048 tiles of 128x256 on 132 SMs: 16 waves -> 2048/2112; e_tile = 1; launch 2.433 us
    e = (1402.6 / 1979) * (2048 / 2112)
    assert t.seconds == pytest.approx(2 * 8192**3 / (1979e12 * e) + 2.433e-6, rel=1e-12)
    assert t.bound_seconds == pytest.approx(2 * 8192**3 / 1979e12, rel=1e-12)
    assert t.fallback and t.basis.startswith("gemm.mamf.fp8.h100[fallback]")
    a100 = kernel_time(call, hardware.get("a100"), opts, model)  # no fp8 on Ampere: its bf16 MAMF, flagged
    assert a100.fallback and a100.basis.startswith("gemm.mamf.bf16.a100[fallback]")
    assert a100.bound_seconds == pytest.approx(2 * 8192**3 / 624e12, rel=1e-12)


def test_kernel_check_refuses_int8_without_a_peak(tmp_path: Path) -> None:
    with pytest.raises(HardwareError) as e:
        check_kernel(KernelOptions(precision="int8"), hardware.get(None, _no_int8_device(tmp_path)))
    assert "noint8 has no int8 tensor-core peak" in str(e.value) and "\n" not in str(e.value)


def test_cli_int8_on_a_device_without_an_int8_peak_is_one_line(tmp_path: Path, tiny_config: Path) -> None:
    res = CliRunner().invoke(main, ["trace", "--config", str(tiny_config), "-w", "ci-tiny", "--no-cache",
                                    "--hardware-file", str(_no_int8_device(tmp_path)), "--hardware", "noint8",
                                    "--precision", "int8", "--output-root", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    assert res.output.startswith("error: ") and res.output.count("\n") == 1 and "no int8 tensor-core peak" in res.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("report.json"))


def test_api_rejects_an_unknown_precision(tiny_config: Path) -> None:
    import fxmeter

    with pytest.raises(HardwareError, match="use bf16, fp8 or int8"):
        fxmeter.trace(config=tiny_config, workload="ci-tiny", precision="int4")


def test_trace_flux_int8_on_h100(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["trace", "flux.1-dev", "--hardware", "h100", "--precision", "int8",
                                    "--output-root", str(tmp_path)])
    assert res.exit_code == 0, res.output
    rep = orjson.loads(next(tmp_path.rglob("report.json")).read_bytes())
    assert rep["trace"]["options"]["precision"] == "int8" and rep["hardware"]["precision"] == "int8"
    assert rep["memory"]["weight_bytes_by_dtype"]["int8"] > 0
    assert any("--precision int8 (torchao int8 dynamic quantization" in n for n in rep["notes"])
    for n in rep["nodes"]:  # every matmul node's bound is at most its tensor-core ops at the int8 peak ...
        if n["family"] == "matmul":
            assert n["bound_seconds"] >= n["per_forward"]["tensor_core_flops"] / 1979e12 * (1 - 1e-12)
    # ... and exactly that where the tensor cores limit it
    tc = [n for n in rep["nodes"] if n["family"] == "matmul" and n["limiter"] == "tensor_core"]
    assert tc and all(n["bound_seconds"] == pytest.approx(n["per_forward"]["tensor_core_flops"] / 1979e12, rel=1e-12)
                      for n in tc)


# -- validate ---------------------------------------------------------------------------------------------
def test_validate_maps_torchao_int8dq_to_precision_int8() -> None:
    rows = json.loads(resources.files("fxmeter.data").joinpath("published-timings.json").read_text(encoding="utf-8"))
    row = next(r for r in rows["rows"] if r["id"] == 190)
    assert "int8dq" in row["precision"]
    sc = scenario(row)
    assert isinstance(sc, Scenario), sc
    assert sc.model == "flux.1-dev" and sc.kwargs["precision"] == "int8" and sc.kwargs["hardware"] == "h100"
    assert any("int8 dynamic quantization taken as --precision int8" in a for a in sc.assumptions)
