"""Roofline time, the hardware table and the acceptance numbers of the 14B model at 720p."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fxmeter.cli.main import main
from fxmeter.estimate import hardware, roofline
from fxmeter.estimate.hardware import HardwareError
from fxmeter.estimate.metrics import Metrics

ONE = {"tc": 1.0, "cuda": 1.0, "bw": 1.0}


def cost(tc: int = 0, cc: int = 0, rd: int = 0, wr: int = 0) -> Metrics:
    return Metrics(tc, cc, rd, wr)


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
    assert d.tensor_core["int8"] is None  # optional like fp8: absent -> no int8 peak
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


# -- bound and predicted seconds on the tiny model -----------------------------


def test_predicted_seconds_by_the_kernel_model_or_the_efficiency(tiny_config: Path) -> None:
    """With a device, every report has both seconds: the bound (roofline at 100%) and the prediction (the kernel
    model, never below the bound); with --efficiency the prediction is the roofline at those fractions."""
    import fxmeter

    bound = fxmeter.trace(config=tiny_config, workload="ci-tiny", hardware="h100", run_id="b")
    data = bound.data
    for scope in ("per_forward", "per_step", "end_to_end"):
        t = data["totals"][scope]
        assert 0 < t["bound_seconds"] <= t["predicted_seconds"]
    assert "kernel model" in data["hardware"]["model"]
    assert all(m["bound_seconds"] <= m["predicted_seconds"] + 1e-15 for m in data["modules"])
    assert all(n["limiter"] in roofline.LIMITERS and n["bound_seconds"] <= n["predicted_seconds"] + 1e-15
               for n in data["nodes"])
    assert data["trace"]["options"]["efficiency"] is None
    assert data["hardware"]["efficiency"] == ONE
    # every peak at half: each node's max() of its three terms doubles, and so does every sum of them
    half = fxmeter.trace(config=tiny_config, workload="ci-tiny", hardware="h100", efficiency="tc=0.5,cuda=0.5,bw=0.5",
                         run_id="h").data
    assert half["trace"]["options"]["efficiency"] == {"bw": 0.5, "cuda": 0.5, "tc": 0.5}
    for scope in ("per_forward", "per_step", "end_to_end"):
        t = half["totals"][scope]
        assert t["bound_seconds"] == pytest.approx(data["totals"][scope]["bound_seconds"])
        assert t["predicted_seconds"] == pytest.approx(2 * t["bound_seconds"])
    for m in half["modules"]:
        assert m["predicted_seconds"] == pytest.approx(2 * m["bound_seconds"])
        assert m["self_predicted_seconds"] == pytest.approx(2 * m["self_bound_seconds"])
    for n in half["nodes"]:
        assert n["predicted_seconds"] == pytest.approx(2 * n["bound_seconds"])
    # seconds per forward x steps x passes = end to end (ci-tiny: 1 step x 2 CFG passes)
    assert data["totals"]["end_to_end"]["bound_seconds"] == pytest.approx(2 * data["totals"]["per_forward"]["bound_seconds"])


def test_stage_time_on_a_hand_made_stage() -> None:
    """A root ``r`` with a list ``r.l`` of 2 blocks traced once (``r.l.0``, replicated to ``r.l.1``).

    Device: 1000 FLOP/s tensor cores, 100 FLOP/s CUDA cores, 10 B/s.  The block's matmul takes
    10,000 / 1000 = 10 s (its 100 B take 10 s too: ties go to compute); the root's own gelu
    500 / 100 = 5 s on CUDA cores (10 B: 1 s).
    """
    from fxmeter.estimate.evaluate import Activations, ModuleCost, NodeCost, StageCost, Weights
    from fxmeter.estimate.metrics import ZERO, Metrics

    dev = hardware.parse_device({"name": "round", "tensor_core": {"bf16": 1000}, "cuda_core_fp32": 100,
                                 "memory_bandwidth": 10, "memory_gib": 1}, "test")
    a, b = Metrics(10_000, 0, 50, 50), Metrics(0, 500, 5, 5)
    nodes = (NodeCost("mm", "aten.mm.default", "r.l.0", "matmul", "x", 2, a, {}, "bfloat16", frozenset()),
             NodeCost("gelu", "aten.gelu.default", "r", "activation", "x", 1, b, {}, "bfloat16", frozenset()))
    mods = (ModuleCost("r", None, "R", 0, 0, 0, a.scale(2) + b, b), ModuleCost("r.l", "r", "L", 1, 0, 0, a.scale(2), ZERO),
            ModuleCost("r.l.0", "r.l", "B", 2, 0, 0, a, a), ModuleCost("r.l.1", "r.l", "B", 2, 0, 0, a, a))
    stage = StageCost("r", "R", "x", {}, "eager", mods, nodes, {}, (), Activations(0, None, None, {}, ""),
                      Weights(0, {}, {}, 0, 0, "bfloat16"), {"replicas": {"l": 2}})
    t = roofline.stage_time(stage, roofline.Device(dev))
    assert t.kind == "bound" and [(n.seconds, n.limiter) for n in t.nodes] == [(10.0, "tensor_core"), (5.0, "cuda_core")]
    # per forward: 2 blocks x 10 s on tensor cores + 5 s on CUDA cores = 25 s
    assert t.by_limiter == {"cuda_core": 5.0, "memory": 0.0, "tensor_core": 20.0} and t.per_run == 25.0
    secs = [(m.seconds, m.limiter, m.own_seconds, m.own_limiter) for m in t.modules]
    assert secs == [(25.0, "tensor_core", 5.0, "cuda_core"), (20.0, "tensor_core", 0.0, None),
                    (10.0, "tensor_core", 10.0, "tensor_core"), (10.0, "tensor_core", 10.0, "tensor_core")]
    assert t.modules[2].arithmetic_intensity == 100.0  # 10,000 FLOP / 100 B
    # at half the tensor-core peak: the matmul's 20 s; the gelu is unchanged
    slow = roofline.stage_time(stage, roofline.Device(dev, efficiency={"tc": 0.5}))
    assert slow.kind == "predicted" and [n.seconds for n in slow.nodes] == [20.0, 5.0] and slow.per_run == 45.0


# -- acceptance: 14B at 720p, bf16, H100, efficiency 1 ------------------------


@pytest.fixture(scope="module")
def h100_720p(report_720p: Any) -> Any:
    import fxmeter

    return fxmeter.trace("wan2.1-t2v-14b", workload="720p", hardware="h100", run_id="h100")  # warm: the session's trace


def test_720p_cannot_beat_the_peak(h100_720p: Any) -> None:
    tot = h100_720p["totals"]
    floor = tot["end_to_end"]["tensor_core_flops"] / 989.4e12  # 6.52e17 / 989.4e12 = 659.3 s
    assert tot["end_to_end"]["bound_seconds"] >= floor > 659
    pf = tot["per_forward"]["bound_seconds"]
    assert tot["end_to_end"]["bound_seconds"] == pytest.approx(pf * 2 * 50)
    by = h100_720p["hardware"]["seconds_by_limiter_per_forward"]
    assert sum(by.values()) == pytest.approx(pf)


def test_720p_limiters(h100_720p: Any) -> None:
    mods = h100_720p["modules"]
    attn = [m for m in mods if m["class"] == "WanAttention"]
    norms = [m for m in mods if "Norm" in m["class"]]
    assert attn and all(m["limiter"] == "tensor_core" for m in attn)
    assert norms and all(m["limiter"] == "memory" for m in norms)
    sdpa = [n for n in h100_720p["nodes"] if n["family"] == "attention"]
    elementwise = [n for n in h100_720p["nodes"] if n["family"] in ("elementwise", "norm", "cast", "activation")
                   and n["per_forward"]["bytes_read"]]
    assert all(n["limiter"] == "tensor_core" for n in sdpa)
    assert all(n["limiter"] == "memory" for n in elementwise)
    for m in mods:
        assert 0 <= m["bound_seconds"] <= m["predicted_seconds"] + 1e-12 and ("arithmetic_intensity" in m)


def test_roofline_markdown_and_chart(h100_720p: Any) -> None:
    from fxmeter.report.charts import CHART_ROOFLINE, roofline_png
    from fxmeter.report.summary import device_lines, render

    md = render(h100_720p)
    assert "## Time on the device" in md and "| end_to_end |" in md and "**Fit:**" in md
    section = md.split("## Time on the device")[1].split("## Unmodeled ops")[0]
    assert "**predicted (kernel model)**" in section and "| scope | bound seconds | predicted seconds |" in section
    lines = device_lines(h100_720p)
    # the device, the stand-ins it is priced with (named), then both seconds labelled for what they are, then the fit
    stand_ins = [ln for ln in lines if ln.strip().startswith("stand-in:")]
    assert all(" used for " in ln for ln in stand_ins)
    rest = [ln for ln in lines if ln not in stand_ins]
    assert "predicted (kernel model)" in rest[1] and "bound (roofline at 100% of every peak" in rest[2]
    assert "fits on one" in rest[3] and len(rest) == 4
    assert roofline_png(h100_720p).startswith(b"\x89PNG")
    assert CHART_ROOFLINE in h100_720p.files(plots=True)
