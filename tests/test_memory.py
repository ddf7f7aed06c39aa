"""Memory and bytes: rule bytes written out, the liveness walk, fused traffic, batched CFG."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import pytest

import fxmeter
from fxmeter import rules
from fxmeter.cost import liveness as memory
from fxmeter.cost import traffic, tree
from fxmeter.estimate.evaluate import Weights
from fxmeter.estimate.memory import at_precision, fit
from fxmeter.rules import OpCall, TensorMeta


def bf16(*shape: int) -> TensorMeta:
    return TensorMeta(shape, "bfloat16", 2)


def f32(*shape: int) -> TensorMeta:
    return TensorMeta(shape, "float32", 4)


# -- bytes of single ops (rules/), arithmetic written out -------------------------


def test_linear_bytes() -> None:
    x, w, b, y = bf16(2, 8, 16), bf16(32, 16), bf16(32), bf16(2, 8, 32)
    cost = rules.lookup("aten.linear.default").fn(OpCall("aten.linear.default", (x, w, b), {}, (y,)))  # type: ignore[union-attr]
    # read x 2*8*16*2 = 512 + W 32*16*2 = 1024 + b 32*2 = 64 -> 1600; write y 2*8*32*2 = 1024
    assert (cost.bytes_read, cost.bytes_written) == (1600, 1024)
    assert cost.tensor_core_flops == 2 * 16 * 16 * 32  # 2 * M(16) * K(16) * N(32) = 16384


def test_attention_bytes_are_io_aware() -> None:
    q = k = v = bf16(1, 4, 64, 32)
    out = bf16(1, 4, 64, 32)
    t = "aten.scaled_dot_product_attention.default"
    cost = rules.lookup(t).fn(OpCall(t, (q, k, v), {}, (out,)))  # type: ignore[union-attr]
    # Q, K, V each 1*4*64*32*2 = 16384 bytes -> 49152 read; O 16384 written; the 64x64 scores never move
    assert (cost.bytes_read, cost.bytes_written) == (49152, 16384)


def test_cast_bytes() -> None:
    t = "aten._to_copy.default"
    cost = rules.lookup(t).fn(OpCall(t, (f32(10, 10),), {"dtype": "bfloat16"}, (bf16(10, 10),)))  # type: ignore[union-attr]
    # read 100 * 4 = 400, write 100 * 2 = 200, 1 conversion per element
    assert (cost.cuda_core_flops, cost.bytes_read, cost.bytes_written) == (100, 400, 200)
    same = rules.lookup("aten.to.dtype").fn(OpCall("aten.to.dtype", (bf16(10, 10), "bfloat16"), {}, (bf16(10, 10),)))  # type: ignore[union-attr]
    assert same == rules.ZERO  # Tensor.to(same dtype) returns self: moves nothing


# -- the liveness walk on a hand-made graph ------------------------------------


class Node(NamedTuple):
    name: str
    target: str
    call: OpCall
    uses: tuple[str, ...]


def node(name: str, target: str, uses: tuple[str, ...], args: tuple[Any, ...], out: TensorMeta) -> Node:
    return Node(name, target, OpCall(target, args, {}, (out,)), uses)


def hand_graph() -> list[Node]:
    x, w = bf16(50), bf16(10)  # input x: 100 bytes; weight: not an activation
    return [
        node("a", "aten.linear.default", ("x", "p_w"), (x, w), bf16(100)),  # 200 B
        node("v", "aten.view.default", ("a",), (bf16(100),), bf16(10, 10)),  # view: shares a
        node("c", "aten.gelu.default", ("v",), (bf16(10, 10),), bf16(10, 10)),  # 200 B; frees a after
        node("d", "aten.add_.Tensor", ("c", "x"), (bf16(10, 10), x), bf16(10, 10)),  # in place into c
        node("wv", "aten.t.default", ("p_w",), (w,), bf16(10)),  # view of a weight: no activation
        node("e", "aten.linear.default", ("d", "p_w"), (bf16(100), w), bf16(25)),  # 50 B
    ]


def test_liveness_walk_known_peak() -> None:
    live = memory.liveness_walk(hand_graph(), {"x": 100})
    # a: x 100 + a 200 = 300; v: view, 300; c: x + a + c = 500 (peak; a dies after c)
    # d: in place, x + c = 300; wv: weight view, 300; e: x + c(d) + e 50 = 350
    assert live == [300, 300, 500, 300, 300, 350]


def test_liveness_inputs_stay_live() -> None:
    g = [node("y", "aten.gelu.default", ("x",), (bf16(50),), bf16(50)),
         node("z", "aten.gelu.default", ("y",), (bf16(50),), bf16(50))]
    # x (100) is held by the caller: never freed; y freed after z
    assert memory.liveness_walk(g, {"x": 100}) == [200, 300]


def test_fused_traffic_chain() -> None:
    g = [
        node("a", "aten.linear.default", ("x", "p_w"), (bf16(50), bf16(50, 50)), bf16(50)),
        node("b", "aten.gelu.default", ("a",), (bf16(50),), bf16(50)),
        node("c", "aten.mul.Tensor", ("b", "a"), (bf16(50), bf16(50)), bf16(50)),
        node("d", "aten.linear.default", ("c", "p_w"), (bf16(50), bf16(50, 50)), bf16(50)),
    ]
    fams = ["matmul", "activation", "elementwise", "matmul"]
    costs = [rules.lookup(n.target).fn(n.call) for n in g]  # type: ignore[union-attr]
    pairs = traffic.fused_bytes(g, fams, costs)
    # gelu + mul fuse: read a (100 B) once, write c (100 B) once; matmuls keep their eager bytes
    assert pairs[1] == (100, 0) and pairs[2] == (0, 100)
    assert pairs[0] == (costs[0].bytes_read, costs[0].bytes_written)


def test_liveness_block_of() -> None:
    assert tree.block_of("transformer.blocks.3.attn1") == "transformer.blocks.3"
    assert tree.block_of("transformer.blocks.12") == "transformer.blocks.12"
    assert tree.block_of("transformer.norm_out") is None


def test_weights_fp8() -> None:
    w = Weights(weight_bytes=1000, weight_bytes_by_dtype={"bfloat16": 900, "float32": 100},
                parameters_by_dtype={"bfloat16": 450, "float32": 25}, matmul_parameters=400, matmul_bytes=800,
                dtype="bfloat16")
    m = at_precision(w, "fp8")
    # bf16 900 - 800 matmul bytes = 100; 400 matmul params in 1 byte; fp32 100 untouched -> 600
    assert m.weight_bytes_by_dtype == {"bfloat16": 100, "float32": 100, "float8_e4m3fn": 400}
    assert m.weight_bytes == 600 and m.parameters_by_dtype == w.parameters_by_dtype
    assert "400 matmul/conv weight parameters in 1 byte each" in m.precision
    same = at_precision(w, "bf16")  # bf16 keeps the traced dtypes
    assert (same.weight_bytes, same.weight_bytes_by_dtype, same.precision) == (1000, w.weight_bytes_by_dtype, "as traced")


def test_fit_statement() -> None:
    ok = fit(10 * 2**30, 5 * 2**30, 80 * 2**30, "H")
    bad = fit(70 * 2**30, 20 * 2**30, 80 * 2**30, "H")
    assert ok.fits and not bad.fits
    assert ok.required_bytes == 15 * 2**30 and bad.device_bytes == 80 * 2**30
    assert "does NOT fit" in bad.statement and "short by 10.0 GiB" in bad.statement


# -- on a real (tiny) model -----------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tiny_config: Path) -> dict[str, Any]:
    kw: dict[str, Any] = {"config": tiny_config, "workload": "ci-tiny", "guidance_scale": 5.0}
    return {
        "eager": fxmeter.trace(**kw, run_id="m-eager").data,
        "fused": fxmeter.trace(**kw, run_id="m-fused", traffic="fused").data,
        "batched": fxmeter.trace(**kw, run_id="m-batched", batched_cfg=True).data,
        "batch2": fxmeter.trace(**kw, run_id="m-batch2", batch=2).data,
    }


def test_fused_moves_fewer_bytes_same_flops(tiny: dict[str, Any]) -> None:
    e, f = tiny["eager"]["totals"]["per_forward"], tiny["fused"]["totals"]["per_forward"]
    assert tiny["fused"]["counting"]["traffic_model"] == "fused" and tiny["fused"]["totals"]["traffic_model"] == "fused"
    assert f["flops"] == e["flops"]
    assert 0 < f["bytes_read"] + f["bytes_written"] < e["bytes_read"] + e["bytes_written"]
    # modules roll up: root = sum of its children + its own
    mods = {m["id"]: m for m in tiny["fused"]["modules"]}
    root = mods["transformer"]
    kids = [m for m in mods.values() if m["parent"] == "transformer"]
    assert root["per_forward"]["bytes_read"] == root["self"]["bytes_read"] + sum(m["per_forward"]["bytes_read"] for m in kids)


def test_batched_cfg_is_one_forward_at_twice_the_batch(tiny: dict[str, Any]) -> None:
    """Batched CFG runs the two CFG passes as ONE forward of 2x the batch, evaluated at that batch.

    So its forward costs what a batch-2 forward costs (batch-independent work such as the RoPE
    tables runs once, not twice), tensor-core FLOPs end to end are those of two batch-1 passes
    (every matmul is linear in the batch), and activation memory is that of the batch-2 forward.
    """
    e, b, b2 = tiny["eager"], tiny["batched"], tiny["batch2"]
    assert b["workload"]["passes_per_step"] == 1 and e["workload"]["passes_per_step"] == 2
    assert b["workload"]["cfg"] == "batched" and b["memory"]["activation_batch"] == 2
    assert b["workload"]["dims"] == e["workload"]["dims"]  # the workload is batch 1; the forward runs at 2
    assert b["totals"]["per_forward"] == b2["totals"]["per_forward"]
    assert b["memory"]["activation_peak_bytes"] == b2["memory"]["activation_peak_bytes"]
    assert b["memory"]["activation_peak_bytes"] > e["memory"]["activation_peak_bytes"]
    assert b["memory"]["weight_bytes"] == e["memory"]["weight_bytes"]
    pe, pb = e["totals"]["per_forward"], b["totals"]["per_forward"]
    assert pb["tensor_core_flops"] == 2 * pe["tensor_core_flops"]
    assert b["totals"]["end_to_end"]["tensor_core_flops"] == e["totals"]["end_to_end"]["tensor_core_flops"]
    # batch-independent CUDA-core work (RoPE, timestep embedding) is no longer counted twice
    assert 0 < pb["cuda_core_flops"] < 2 * pe["cuda_core_flops"]
    assert b["totals"]["end_to_end"]["flops"] < e["totals"]["end_to_end"]["flops"]


def test_peak_reported(tiny: dict[str, Any]) -> None:
    mem = tiny["eager"]["memory"]
    assert mem["peak_activation_bytes"] == mem["activation_peak_bytes"] > 0
    assert mem["activation_peak_module"].startswith("transformer")
    per_block = tiny["eager"]["activation_blocks"]["live_bytes_max"]
    assert sorted(per_block) == ["transformer.blocks.0", "transformer.blocks.1", "transformer.blocks.2"]
    assert len(set(per_block.values())) == 1  # replicated blocks: the same live set


@pytest.mark.slow
def test_fp8_keeps_the_fp32_modules_fp32(tiny_config: Path) -> None:
    import fxmeter

    bf16 = fxmeter.trace(config=tiny_config, workload="ci-tiny", cache=False)["memory"]
    fp8 = fxmeter.trace(config=tiny_config, workload="ci-tiny", cache=False, precision="fp8")["memory"]
    by = fp8["weight_bytes_by_dtype"]
    assert all(v > 0 for v in by.values()), by
    # time_embedder linears are in _keep_in_fp32_modules: they stay in the fp32 bucket
    assert by["float32"] == bf16["weight_bytes_by_dtype"]["float32"]
    # each bf16 matmul weight moved to 1 byte: the bf16 bucket lost 2 bytes per fp8 parameter
    assert bf16["weight_bytes_by_dtype"]["bfloat16"] - by["bfloat16"] == 2 * by["float8_e4m3fn"]
    assert fp8["weight_bytes"] == sum(by.values())
