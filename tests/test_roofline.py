"""Roofline time, the hardware table and the acceptance numbers of the 14B model at 720p."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fxmeter.cli.main import main
from fxmeter.estimate import hardware, roofline
from fxmeter.estimate.hardware import HardwareError

ONE = {"tc": 1.0, "cuda": 1.0, "bw": 1.0}


def cost(tc: int = 0, cc: int = 0, rd: int = 0, wr: int = 0) -> dict[str, int]:
    return {"tensor_core_flops": tc, "cuda_core_flops": cc, "bytes_read": rd, "bytes_written": wr}


def test_node_on_each_side_of_the_ridge() -> None:
    # device: 1000 FLOP/s tensor cores, 100 FLOP/s CUDA cores, 10 B/s -> tensor-core ridge at 100 FLOP/byte
    t, b = roofline.node_time(cost(tc=10_000, rd=50, wr=50), 1000, 100, 10, ONE)
    assert (t, b) == (10.0, "tensor_core")  # at the ridge (100 FLOP/B): 10000 / 1000 = 10 s = 100 B / 10; ties go to compute
    t, b = roofline.node_time(cost(tc=20_000, rd=50, wr=50), 1000, 100, 10, ONE)
    assert (t, b) == (20.0, "tensor_core")  # intensity 200 > ridge: 20000 / 1000 = 20 s vs 10 s
    t, b = roofline.node_time(cost(tc=5_000, rd=50, wr=50), 1000, 100, 10, ONE)
    assert (t, b) == (10.0, "memory")  # intensity 50 < ridge: 100 B / 10 = 10 s vs 5 s
    t, b = roofline.node_time(cost(cc=500, rd=5, wr=5), 1000, 100, 10, ONE)
    assert (t, b) == (5.0, "cuda_core")  # 500 / 100 = 5 s vs 10 B / 10 = 1 s


def test_efficiency_divides_each_term() -> None:
    t, b = roofline.node_time(cost(tc=10_000, rd=50, wr=50), 1000, 100, 10, {"tc": 0.5, "cuda": 1.0, "bw": 0.8})
    assert b == "tensor_core" and t == pytest.approx(20.0)  # 10000 / (1000 * 0.5) = 20 s vs 100 / 8 = 12.5 s
    assert hardware.parse_efficiency("tc=0.6,bw=0.8") == {"tc": 0.6, "cuda": 1.0, "bw": 0.8}
    for bad in ("tc=2", "tc=0", "xx=0.5", "tc", "tc=abc"):
        with pytest.raises(HardwareError):
            hardware.parse_efficiency(bad)


def test_builtin_table() -> None:
    tab = hardware.table()
    assert {"h100", "h200", "h20", "a100", "b200", "l40s", "rtx4090"} <= set(tab)
    h100 = hardware.get("H100-SXM")
    assert h100.tc_peak("bf16") == 989.4e12 and h100.memory_bandwidth == 3.35e12
    assert all(d.sources for d in tab.values())
    with pytest.raises(HardwareError, match="no fp8"):
        hardware.get("a100").tc_peak("fp8")
    with pytest.raises(HardwareError, match="unknown hardware"):
        hardware.get("tpu-v9")


def test_hardware_file(tmp_path: Path) -> None:
    p = tmp_path / "dev.json"
    p.write_text(json.dumps({"name": "mygpu", "tensor_core": {"bf16": 100e12}, "cuda_core_fp32": 10e12,
                             "memory_bandwidth": 1e12, "memory_gib": 16}))
    d = hardware.get(None, p)
    assert d.name == "mygpu" and d.memory_bytes == 16 * 2**30 and d.tensor_core["fp8"] is None
    assert "mygpu" in hardware.table(p)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"name": "x", "tensor_core": {"bf16": -1}, "cuda_core_fp32": 1, "memory_bandwidth": 1, "memory_gib": 1}', "positive"),
        ('{"name": "x", "tensor_core": {"bf16": 1}, "cuda_core_fp32": 1, "memory_gib": 1}', "missing 'memory_bandwidth'"),
    ],
)
def test_bad_hardware_file_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "bad.json"
    p.write_text(text)
    res = CliRunner().invoke(main, ["hardware", "--hardware-file", str(p)])
    assert res.exit_code == 2
    assert message in res.output and res.output.count("\n") == 1 and "Traceback" not in res.output


def test_hardware_command_lists_devices() -> None:
    res = CliRunner().invoke(main, ["hardware", "--sources"])
    assert res.exit_code == 0, res.output
    assert "h100" in res.output and "989.4" in res.output and "whitepaper" in res.output


def test_trace_bad_hardware_options(tiny_config: Path) -> None:
    for args, msg in ((["--hardware", "nope"], "unknown hardware"), (["--hardware", "a100", "--precision", "fp8"], "no fp8"),
                      (["--hardware", "h100", "--efficiency", "tc=3"], "must be in (0, 1]")):
        res = CliRunner().invoke(main, ["trace", "--config", str(tiny_config), "-w", "ci-tiny", "--no-cache", *args])
        assert res.exit_code == 2 and msg in res.output, res.output


# -- acceptance: 14B at 720p, bf16, H100, efficiency 1 ------------------------


@pytest.fixture(scope="module")
def h100_720p(report_720p: Any) -> dict[str, Any]:
    data = copy.deepcopy(report_720p.data)
    roofline.apply(data, hardware.get("h100"))
    return data


def test_720p_cannot_beat_the_peak(h100_720p: dict[str, Any]) -> None:
    tot = h100_720p["totals"]
    floor = tot["end_to_end"]["tensor_core_flops"] / 989.4e12  # 6.52e17 / 989.4e12 = 659.3 s
    assert tot["end_to_end"]["predicted_seconds"] >= floor > 659
    pf = tot["per_forward"]["predicted_seconds"]
    assert tot["end_to_end"]["predicted_seconds"] == pytest.approx(pf * 2 * 50)


def test_720p_bounds(h100_720p: dict[str, Any]) -> None:
    mods = h100_720p["modules"]
    attn = [m for m in mods if m["class"] == "WanAttention"]
    norms = [m for m in mods if "Norm" in m["class"]]
    assert attn and all(m["bound"] == "tensor_core" for m in attn)
    assert norms and all(m["bound"] == "memory" for m in norms)
    sdpa = [n for n in h100_720p["nodes"] if n["family"] == "attention"]
    elementwise = [n for n in h100_720p["nodes"] if n["family"] in ("elementwise", "norm", "cast", "activation")
                   and n["per_forward"]["bytes_read"]]
    assert all(n["bound"] == "tensor_core" for n in sdpa)
    assert all(n["bound"] == "memory" for n in elementwise)
    for m in mods:
        assert m["predicted_seconds"] >= 0 and ("arithmetic_intensity" in m)


def test_roofline_markdown_and_chart(h100_720p: dict[str, Any]) -> None:
    h100_720p["memory"]["fit"] = {"statement": "fits"}
    md = roofline.render_markdown(h100_720p)
    assert "Predicted time (roofline)" in md and "end_to_end" in md
    png = roofline.render_files(h100_720p)[roofline.CHART]
    assert png.startswith(b"\x89PNG")
