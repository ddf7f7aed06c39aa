"""Multi-GPU plans: parsing, checks, per-GPU work, collectives from the graph's shapes, overlap."""

from __future__ import annotations

import json
from fractions import Fraction
from importlib import resources
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fxmeter.errors import ParallelError
from fxmeter.estimate.comm import Collective, LinkSpec, collective_seconds, load_comm_model, parse_comm_model
from fxmeter.estimate.parallel import (
    BLOCK,
    OVERLAP_RULES,
    RING_STEP,
    BlockView,
    ModelDims,
    NodeView,
    OverlapRules,
    ParallelPlan,
    check_plan,
    collective_times,
    deployment_seconds,
    overlap_windows,
    parse_plan,
    per_gpu,
)

BF16 = 2
NV4 = LinkSpec("nvlink", 4, 450e9, 900e9, "test")


# -- parsing ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("gpus", "passes", "heads", "expected"),
    [
        (1, 1, None, (1, 1, 1, 1)),
        (1, 2, None, (1, 1, 1, 1)),  # one GPU runs both passes
        (2, 1, None, (2, 1, 1, 1)),
        (2, 2, None, (1, 1, 2, 1)),  # cfg=2: one pass per GPU
        (4, 1, None, (4, 1, 1, 1)),
        (4, 2, None, (2, 1, 2, 1)),
        (8, 1, None, (8, 1, 1, 1)),
        (8, 2, None, (4, 1, 2, 1)),
        (3, 2, None, (3, 1, 1, 1)),  # odd: no CFG split
        (8, 1, 12, (4, 2, 1, 1)),  # 12 heads: ulysses = gcd(8, 12) = 4, ring takes the rest
        (8, 2, 12, (4, 1, 2, 1)),
        (8, 1, 40, (8, 1, 1, 1)),
    ],
)
def test_default_plan(gpus: int, passes: int, heads: int | None, expected: tuple[int, int, int, int]) -> None:
    p = parse_plan(gpus, None, passes_per_step=passes, heads=heads)
    assert (p.ulysses, p.ring, p.cfg, p.tp) == expected
    assert p.gpus == gpus and not p.fsdp


@pytest.mark.parametrize(
    ("gpus", "spec", "passes", "expected"),
    [
        (8, "ulysses=4,ring=2,cfg=1,tp=1", 1, (4, 2, 1, 1)),
        (8, "ring=2", 1, (4, 2, 1, 1)),  # ulysses takes the rest
        (8, "ring=2,cfg=2", 2, (2, 2, 2, 1)),
        (4, " Ulysses = 2 , cfg=2 ", 2, (2, 1, 2, 1)),
        (8, "tp=2,ulysses=2,ring=2", 1, (2, 2, 1, 2)),
        (8, "ulysses=8", 2, (8, 1, 1, 1)),  # both passes on every GPU
    ],
)
def test_plan_spec(gpus: int, spec: str, passes: int, expected: tuple[int, int, int, int]) -> None:
    p = parse_plan(gpus, spec, passes_per_step=passes)
    assert (p.ulysses, p.ring, p.cfg, p.tp) == expected
    assert parse_plan(gpus, p.spec(), passes_per_step=passes) == p


@pytest.mark.parametrize(
    ("gpus", "spec", "passes", "fsdp", "fragment"),
    [
        (8, "ulysses=4,ring=1,cfg=1,tp=1", 1, False, r"ulysses=4 x ring=1 x cfg=1 x tp=1 = 4 GPUs, but --gpus is 8"),
        (8, "ulysses=4,ring=4", 1, False, "= 16 GPUs, but --gpus is 8"),
        (8, "ulyses=8", 1, False, r"unknown --parallel key 'ulyses' \(did you mean 'ulysses'\?\)"),
        (8, "pp=2,ulysses=4", 1, False, "unknown --parallel key 'pp'"),
        (8, "ulysses=four", 1, False, r"--parallel ulysses='four' is not an integer"),
        (8, "ulysses=2.5,ring=4", 1, False, "is not an integer"),
        (8, "ulysses=", 1, False, "is not an integer"),
        (8, "ulysses=0", 1, False, "a degree must be a positive integer"),
        (8, "ulysses=-8", 1, False, "a degree must be a positive integer"),
        (8, "ulysses=99999999999999999999", 1, False, "is beyond"),
        (8, "ulysses=8,ulysses=8", 1, False, "names ulysses twice"),
        (8, "ulysses", 1, False, "bad --parallel item 'ulysses'"),
        (8, "ulysses=8,", 1, False, "bad --parallel item ''"),
        (8, "", 1, False, "--parallel is empty"),
        (8, "ring=3", 1, False, "ring x cfg x tp = 3 does not divide --gpus 8"),
        (8, "ulysses=4,cfg=2", 1, False, "this workload runs one pass per step"),
        (6, "ulysses=2,cfg=3", 2, False, "cfg=3: classifier-free guidance runs 2 passes per step"),
        (0, None, 1, False, "--gpus must be between 1 and"),
        (-4, None, 1, False, "--gpus must be between 1 and"),
        (2**21, None, 1, False, "--gpus must be between 1 and"),
        (True, None, 1, False, "--gpus must be a positive integer"),
        ("8", None, 1, False, "--gpus must be a positive integer"),
        (8, 8, 1, False, "--parallel takes a string"),
        (8, None, 3, False, "passes per step must be 1 or 2"),
        (1, None, 2, True, "--fsdp shards the weights over the GPUs and needs --gpus > 1"),
        (8, "ulysses=4,tp=2", 1, True, "tensor parallelism and fully sharded weights cannot be combined"),
    ],
)
def test_plan_errors(gpus: Any, spec: Any, passes: int, fsdp: bool, fragment: str) -> None:
    with pytest.raises(ParallelError, match=fragment) as e:
        parse_plan(gpus, spec, passes_per_step=passes, fsdp=fsdp)
    assert "\n" not in str(e.value)


WAN14 = ModelDims(heads=40, head_dim=128, hidden=5120, ffn=13824, layers=40, text_len=512, tokens=75600)
WAN13 = ModelDims(heads=12, head_dim=128, hidden=1536, ffn=8960, layers=30, text_len=512, tokens=32760)


@pytest.mark.parametrize(
    ("dims", "spec", "fragment"),
    [
        (WAN13, "ulysses=8", r"ulysses=8 does not divide the model's 12 attention heads .* try ulysses=4,ring=2"),
        (WAN14, "ulysses=16", r"does not divide the model's 40 attention heads .* try ulysses=8,ring=2"),
        (WAN13, "ulysses=4,tp=2", r"ulysses=4 x tp=2 = 8 does not divide the model's 12 attention heads"),
        (ModelDims(8, 64, 510, 1024, 2, 16, 64), "ulysses=1,tp=4", "tp=4 does not divide the hidden size 510"),
        (ModelDims(8, 64, 512, 1022, 2, 16, 64), "ulysses=1,tp=4", "tp=4 does not divide the FFN size 1022"),
        (ModelDims(8, 64, 512, None, 2, 16, 0), "ulysses=1", "tokens must be a positive integer"),
    ],
)
def test_check_plan_errors(dims: ModelDims, spec: str, fragment: str) -> None:
    gpus = 1
    for part in spec.split(","):
        gpus *= int(part.split("=")[1])
    plan = parse_plan(gpus, spec, passes_per_step=1)
    with pytest.raises(ParallelError, match=fragment):
        check_plan(plan, dims)


@pytest.mark.parametrize("spec", ["ulysses=8", "ulysses=4,ring=2", "ulysses=2,ring=4", "ring=8,ulysses=1", "ulysses=4,tp=2"])
def test_check_plan_accepts(spec: str) -> None:
    gpus = 1
    for part in spec.split(","):
        gpus *= int(part.split("=")[1])
    # 75,600 tokens are not divisible by 64 (ring=8 x ulysses=8 would pad): no divisibility asked of the sequence
    check_plan(parse_plan(gpus, spec, passes_per_step=2), WAN14)


# -- a tiny model, by hand ------------------------------------------------------------------
# one block (replicated 3 times): b=1, h=4 heads of d=8, L=64 video tokens, 16 text tokens, hidden 32, bf16
B, H, D, L, TXT, HID, REPS = 1, 4, 8, 64, 16, 32, 3
DIMS = ModelDims(heads=H, head_dim=D, hidden=HID, ffn=64, layers=REPS, text_len=TXT, tokens=L)


def attention(name: str, lq: int, lk: int, category: str, module: str = "transformer.blocks.0.attn1") -> NodeView:
    scores = B * H * lq * lk
    return NodeView(name, "aten.scaled_dot_product_attention.default", module, "attention", category, REPS,
                    4 * scores * D, 6 * scores, B * H * (lq + 2 * lk) * D * BF16, B * H * lq * D * BF16,
                    {"b": B, "h": H, "lq": lq, "lk": lk, "d": D, "dv": D}, True, B * H * lq * D * BF16, BF16)


def linear(name: str, module: str, m: int, n: int, k: int, *, seq: bool = True, role: str | None = None,
           reps: int = REPS) -> NodeView:
    # input m*k, weight n*k, bias n; output m*n (bf16)
    return NodeView(name, "aten.linear.default", module, "matmul", "ffn", reps, 2 * m * n * k, m * n,
                    (m * k + n * k + n) * BF16, m * n * BF16, {"b": 1, "m": m, "n": n, "k": k}, seq, m * n * BF16, BF16, role)


def tiny_nodes(lq: int = L) -> list[NodeView]:
    return [
        linear("time", "transformer.condition_embedder", 1, HID, HID, seq=False, reps=1),  # replicated
        linear("to_q", "transformer.blocks.0.attn1.to_q", lq, HID, HID, role="column"),
        attention("sdpa", lq, lq, "self_attention_core"),
        linear("to_out", "transformer.blocks.0.attn1.to_out.0", lq, HID, HID, role="row"),
        attention("sdpa_1", lq, TXT, "cross_attention_core", "transformer.blocks.0.attn2"),
        linear("proj_out", "transformer.proj_out", lq, 16, HID, reps=1),  # the head: 16 channels per token
    ]


BLOCKS = [BlockView("transformer", 1000, root=True)] + [BlockView(f"transformer.blocks.{i}", 1001) for i in range(REPS)]


def by_what(cs: tuple[Collective, ...]) -> dict[str, Collective]:
    return {c.what: c for c in cs}


def test_one_gpu_has_no_communication() -> None:
    r = per_gpu(tiny_nodes(), BLOCKS, parse_plan(1, None, passes_per_step=2), 2, dims=DIMS)
    assert r.per_forward == r.per_step == r.per_generation == ()
    assert r.forwards_per_step == 2 and r.tokens_per_gpu == L
    assert all(s.flops_scale == 1 for s in r.nodes)
    assert r.weight_bytes_per_gpu == r.weight_bytes == 1000 + 3 * 1001
    assert deployment_seconds(1.5, r.per_forward, NV4, load_comm_model()) == (1.5, 0.0, 0.0)


def test_ulysses_2_by_hand() -> None:
    r = per_gpu(tiny_nodes(), BLOCKS, parse_plan(2, "ulysses=2", passes_per_step=1), 1, dims=DIMS)
    cs = by_what(r.per_forward)
    # the whole q tensor is b*h*L*d*2 = 1*4*64*8*2 = 4096 bytes; each of 2 ranks holds 1*32*4*8*2 = 2048 of it
    # ([b, L/2, h, d]) and sends (U-1)/U = 1024 of them; 4 all-to-alls (q, k, v, o) per self-attention, 3 blocks
    for name, when in (("q", "before"), ("k", "before"), ("v", "before"), ("o", "after")):
        c = cs[f"ulysses {name} all-to-all {when} transformer.blocks.*.attn1"]
        assert (c.kind, c.bytes, c.ranks, c.count, c.overlappable) == ("all_to_all", 2048, 2, 3, False)
    # one sequence all-gather after the head: gathered output [1, 64, 16] bf16 = 2048 bytes per rank
    head = cs["sequence all-gather after transformer.proj_out (once per forward)"]
    assert (head.kind, head.bytes, head.ranks, head.count) == ("all_gather", 64 * 16 * 2, 2, 1)
    assert len(cs) == 5
    # one q all-to-all on NVLink4 (450 GB/s): 39.96 us + (1/2) * 2048 / (0.711 * 450e9) = 39.96e-6 + 3.2005e-9 s
    q = cs["ulysses q all-to-all before transformer.blocks.*.attn1"]
    assert collective_seconds(q, NV4, load_comm_model()) == pytest.approx(39.96e-6 + 1024 / (0.711 * 450e9), rel=1e-12)

    share = {s.name: s for s in r.nodes}
    # self-attention: 4*b*h*L*L*d = 4*1*4*64*64*8 = 524,288 FLOPs; each GPU runs 2 heads x 64 queries x 64 keys: half
    assert share["sdpa"].tensor_core_flops == 524_288 // 2 and share["sdpa"].rule == "self_attention"
    # cross-attention: the GPU's 32 queries x all 16 text keys x 4 heads: 4*4*32*16*8 = 65,536 of 131,072
    assert share["sdpa_1"].tensor_core_flops == 4 * 4 * 32 * 16 * 8
    # its bytes: Q, O of its 32 tokens (4*32*8*2 = 2048 each), the whole text K and V (4*16*8*2 = 1024 each)
    assert share["sdpa_1"].bytes_read == 2048 + 2 * 1024 and share["sdpa_1"].bytes_written == 2048
    # a linear on the sequence: half the rows, the whole weight: input 32*32*2 = 2048 + weight (32*32+32)*2 = 2112
    assert share["to_q"].tensor_core_flops == 2 * 32 * 32 * 32 and share["to_q"].bytes_read == 2048 + 2112
    # the timestep embedding runs whole on every GPU
    assert share["time"].tensor_core_flops == 2 * 1 * 32 * 32 and share["time"].rule == "replicated"
    assert r.tokens_per_gpu == 32 and r.activation_scale == Fraction(1, 2)


def test_ring_2_by_hand() -> None:
    r = per_gpu(tiny_nodes(), BLOCKS, parse_plan(2, "ulysses=1,ring=2", passes_per_step=1), 1, dims=DIMS)
    cs = by_what(r.per_forward)
    assert not any(c.kind == "all_to_all" for c in r.per_forward)  # pure ring: no all-to-all
    # K and V blocks of [b, L/2, h, d] = 1*32*4*8*2 = 2048 bytes each, sent together at R-1 = 1 of the 2 steps
    c = cs["ring K/V send/recv per ring step in transformer.blocks.*.attn1 (1 of 2 steps)"]
    assert (c.kind, c.bytes, c.ranks, c.count, c.overlappable, c.window) == ("p2p", 4096, 2, 3, True, RING_STEP)
    share = {s.name: s for s in r.nodes}
    # 32 queries x 64 keys x 4 heads: half the FLOPs; reads its Q (2048) and every K, V (4096 each)
    assert share["sdpa"].tensor_core_flops == 524_288 // 2
    assert share["sdpa"].bytes_read == 2048 + 2 * 4096 and share["sdpa"].bytes_written == 2048


def test_ulysses_2_ring_2_by_hand() -> None:
    r = per_gpu(tiny_nodes(), BLOCKS, parse_plan(4, "ulysses=2,ring=2", passes_per_step=1), 1, dims=DIMS)
    cs = by_what(r.per_forward)
    # each rank holds [b, L/4, h, d] = 1*16*4*8*2 = 1024 bytes before the all-to-all, [b, L/2, h/2, d] after
    assert cs["ulysses q all-to-all before transformer.blocks.*.attn1"].bytes == 1024
    assert cs["ulysses q all-to-all before transformer.blocks.*.attn1"].ranks == 2
    ring = cs["ring K/V send/recv per ring step in transformer.blocks.*.attn1 (1 of 2 steps)"]
    assert (ring.bytes, ring.ranks) == (2 * 1024, 2)
    assert cs["sequence all-gather after transformer.proj_out (once per forward)"].ranks == 4
    assert {s.name: s for s in r.nodes}["sdpa"].tensor_core_flops == 524_288 // 4  # total / (U*R)


def test_padding_when_tokens_do_not_divide() -> None:
    # 63 tokens over 2 GPUs: padded to 64, 32 rows each (Wan2.1 pads seq_len to a multiple of sp_size)
    dims = ModelDims(heads=H, head_dim=D, hidden=HID, ffn=64, layers=REPS, text_len=TXT, tokens=63)
    r = per_gpu(tiny_nodes(63), BLOCKS, parse_plan(2, "ulysses=2", passes_per_step=1), 1, dims=dims)
    share = {s.name: s for s in r.nodes}
    # 2 heads x 64 (padded) queries x 64 keys: 4*2*64*64*8 = 262,144 (more than half of 4*4*63*63*8 = 508,032)
    assert share["sdpa"].tensor_core_flops == 262_144
    assert share["sdpa"].flops_scale == Fraction(64 * 64, 63 * 63) / 2
    assert by_what(r.per_forward)["ulysses q all-to-all before transformer.blocks.*.attn1"].bytes == 1 * 32 * 4 * 8 * 2
    # the head's output is gathered at its padded size: 64 rows x 16 x 2 bytes
    assert by_what(r.per_forward)["sequence all-gather after transformer.proj_out (once per forward)"].bytes == 2048
    assert r.tokens_per_gpu == 32 and r.activation_scale == Fraction(32, 63)


def test_cfg_parallel_by_hand() -> None:
    r = per_gpu(tiny_nodes(), BLOCKS, parse_plan(2, None, passes_per_step=2), 2, dims=DIMS)
    assert (r.plan.cfg, r.plan.ulysses) == (2, 1)
    assert r.per_forward == ()  # each GPU runs a whole forward: no sequence split
    assert r.forwards_per_step == 1  # one of the two passes
    assert [x.count for x in r.generation_collectives(50)] == [50]  # one gather per step
    # per step: all-gather of the two noise predictions, [1, 64, 16] bf16 = 2048 bytes each -> 4096 gathered
    (c,) = r.per_step
    assert (c.kind, c.bytes, c.ranks, c.count) == ("all_gather", 4096, 2, 1)
    assert all(s.flops_scale == 1 for s in r.nodes)


def test_tensor_parallel_by_hand() -> None:
    r = per_gpu(tiny_nodes(), BLOCKS, parse_plan(2, "ulysses=1,tp=2", passes_per_step=1), 1, dims=DIMS)
    share = {s.name: s for s in r.nodes}
    # column to_q: 16 of 32 outputs: FLOPs 2*64*16*32; reads the whole input (64*32*2 = 4096) + half the weight
    # ((32*32+32)*2/2 = 1056); writes half the output (64*16*2 = 2048)
    assert share["to_q"].tensor_core_flops == 2 * 64 * 16 * 32
    assert (share["to_q"].bytes_read, share["to_q"].bytes_written) == (4096 + 1056, 2048)
    # row to_out: 16 of 32 inputs; reads half the input (2048) + half the weight (1056); writes full partial sums (4096)
    assert (share["to_out"].bytes_read, share["to_out"].bytes_written) == (2048 + 1056, 4096)
    # ... and all-reduces them: 64*32*2 = 4096 bytes per rank, once per block
    (c,) = r.per_forward
    assert (c.kind, c.bytes, c.ranks, c.count) == ("all_reduce", 4096, 2, 3)
    assert c.what == "tp all-reduce of the row-parallel transformer.blocks.*.attn1.to_out.0 output"
    # attention splits heads: half
    assert share["sdpa"].tensor_core_flops == 524_288 // 2 and share["sdpa"].rule == "self_attention + tp heads"
    # weights: the column/row linears' weights (2 x (32*32+32)*2 = 4224 bytes per block, 3 blocks) are halved
    assert r.weight_bytes_per_gpu == 1000 + 3 * 1001 - 3 * 4224 // 2


def test_fsdp_by_hand() -> None:
    r = per_gpu(tiny_nodes(), BLOCKS, parse_plan(4, "ulysses=4", passes_per_step=1, fsdp=True), 1, dims=DIMS)
    fsdp = [c for c in r.per_forward if c.what.startswith("fsdp")]
    # a block of 1001 bytes is a flat parameter padded to 1004 (a multiple of 4); block 0 exposed, blocks 1, 2 prefetched
    first, rest = fsdp
    assert (first.kind, first.bytes, first.ranks, first.count, first.overlappable) == ("all_gather", 1004, 4, 1, False)
    assert (rest.bytes, rest.count, rest.overlappable, rest.window) == (1004, 2, True, BLOCK)
    (root,) = r.per_generation
    assert (root.bytes, root.ranks, root.count) == (1000, 4, 1)
    # over a generation of 50 steps x 1 forward: every per-forward count x 50, the root once
    gen = {c.what: c.count for c in r.generation_collectives(50)}
    assert gen[first.what] == 50 and gen[rest.what] == 100 and gen[root.what] == 1
    # a GPU holds the root (1000) + its shards (3 x 251) + 2 gathered blocks (2 x 1001)
    assert r.weight_bytes_per_gpu == 1000 + 3 * 251 + 2 * 1001


def test_full_trace_blocks_merge_into_one_collective() -> None:
    """Blocks traced one by one (replicas 1) give the same collectives as one block with replicas 3."""
    one = per_gpu(tiny_nodes(), BLOCKS, parse_plan(2, "ulysses=2", passes_per_step=1), 1, dims=DIMS)
    full = []
    for n in tiny_nodes():
        if n.replicas == REPS:
            full += [NodeView(**{**n.__dict__, "name": f"{n.name}_{i}", "replicas": 1,
                                 "module": n.module.replace("blocks.0", f"blocks.{i}")}) for i in range(REPS)]
        else:
            full.append(n)
    many = per_gpu(full, BLOCKS, parse_plan(2, "ulysses=2", passes_per_step=1), 1, dims=DIMS)
    assert sorted(many.per_forward, key=str) == sorted(one.per_forward, key=str)
    assert many.compute_totals() == one.compute_totals()


def test_bad_node_records_are_one_error() -> None:
    bad = NodeView("sdpa", "t", "m", "attention", "self_attention_core", 1, 1, 1, 1, 1, {"b": 1, "h": 4}, True, 1, 2)
    with pytest.raises(ParallelError, match="its shape needs a positive integer 'lq'"):
        per_gpu([bad], [], parse_plan(2, "ulysses=2", passes_per_step=1), 1, dims=DIMS)
    neg = NodeView("x", "t", "m", "matmul", "ffn", 1, -1, 0, 0, 0, {}, True, 0, 2)
    with pytest.raises(ParallelError, match="tensor_core_flops must be an integer >= 0"):
        per_gpu([neg], [], parse_plan(1, None, passes_per_step=1), 1)
    role = NodeView("x", "t", "m", "matmul", "ffn", 1, 0, 0, 0, 0, {}, True, 0, 2, "diagonal")
    with pytest.raises(ParallelError, match="tp_role must be one of column, row, sharded"):
        per_gpu([role], [], parse_plan(1, None, passes_per_step=1), 1)
    odd = attention("sdpa", L, L, "self_attention_core")  # 4 heads over ulysses=8 (no dims to check the plan first)
    with pytest.raises(ParallelError, match="its 4 heads do not split over ulysses x tp = 8 GPUs"):
        per_gpu([odd], [], parse_plan(8, "ulysses=8", passes_per_step=1), 1)
    with pytest.raises(ParallelError, match="no graph nodes"):
        per_gpu([], [], parse_plan(1, None, passes_per_step=1), 1)


@settings(max_examples=60, deadline=None)
@given(
    u=st.sampled_from([1, 2, 4, 8]), r=st.sampled_from([1, 2, 3]), heads_per=st.integers(1, 3),
    rows=st.integers(1, 20), d=st.sampled_from([8, 64, 128]),
)
def test_split_conserves_work_and_bytes(u: int, r: int, heads_per: int, rows: int, d: int) -> None:
    """Tokens divisible by U*R: per-GPU attention x U*R = the whole; all-to-all bytes x U*R = the whole tensor."""
    h, lq = u * heads_per, u * r * rows
    n = NodeView("sdpa", "t", "transformer.blocks.0.attn1", "attention", "self_attention_core", 1,
                 4 * h * lq * lq * d, 6 * h * lq * lq, 3 * h * lq * d * 2, h * lq * d * 2,
                 {"b": 1, "h": h, "lq": lq, "lk": lq, "d": d}, True, h * lq * d * 2, 2)
    dims = ModelDims(heads=h, head_dim=d, hidden=h * d, ffn=None, layers=1, text_len=1, tokens=lq)
    res = per_gpu([n], [], parse_plan(u * r, f"ulysses={u},ring={r}", passes_per_step=1), 1, dims=dims)
    (s,) = res.nodes
    assert s.tensor_core_flops * u * r == n.tensor_core_flops
    assert s.bytes_written * u * r == n.bytes_written
    # Q read once over all GPUs; K and V read R times over (every ring step reads another block)
    assert s.bytes_read * u * r == h * lq * d * 2 + 2 * h * lq * d * 2 * r
    a2a = [c for c in res.per_forward if c.kind == "all_to_all"]
    assert len(a2a) == (4 if u > 1 else 0)
    assert all(c.bytes * u * r == h * lq * d * 2 for c in a2a)
    p2p = [c for c in res.per_forward if c.kind == "p2p"]
    assert [c.count for c in p2p] == ([r - 1] if r > 1 else [])


# -- time and overlap ---------------------------------------------------------------------
def flat_model() -> Any:
    """Latency 0, fraction 1 everywhere: a collective takes factor * bytes / bandwidth."""
    doc = json.loads(resources.files("fxmeter.data").joinpath("comms.json").read_text(encoding="utf-8"))
    for fab in doc["links"].values():
        for e in fab["fraction"].values():
            e["value"] = 1.0
        for e in fab["latency_us"].values():
            e["value"] = 0.0
    return parse_comm_model(doc, "flat")


LINK100 = LinkSpec("nvlink", 4, 100e9, 200e9, "test")


@pytest.mark.parametrize(
    ("c", "window", "exposed", "overlapped"),
    [
        # p2p of 1 GB on 100 GB/s: 10 ms a call; a 4 ms ring step hides 4: exposed 6 ms x 3 calls, hidden 4 x 3
        (Collective("p2p", 10**9, 2, 3, "ring", True, RING_STEP), {RING_STEP: 4e-3}, 18e-3, 12e-3),
        # a 20 ms ring step hides all of it: exposed max(0, 10 - 20) = 0
        (Collective("p2p", 10**9, 2, 3, "ring", True, RING_STEP), {RING_STEP: 20e-3}, 0.0, 30e-3),
        # FSDP all-gather of 2 GB over 8 ranks: 7/8 * 2e9 / 100e9 = 17.5 ms; a 10 ms block hides 10
        (Collective("all_gather", 2 * 10**9, 8, 39, "fsdp", True, BLOCK), {BLOCK: 10e-3}, 39 * 7.5e-3, 39 * 10e-3),
        # no window given: nothing hidden
        (Collective("all_gather", 2 * 10**9, 8, 1, "fsdp", True, BLOCK), {}, 17.5e-3, 0.0),
        # an all-to-all is on the critical path even with a window: 7/8 * 8e8 / 100e9 = 7 ms x 4
        (Collective("all_to_all", 8 * 10**8, 8, 4, "ulysses"), {BLOCK: 1.0, RING_STEP: 1.0}, 28e-3, 0.0),
        # a TP all-reduce likewise: 2 * 1/2 * 1e9 / 100e9 = 10 ms
        (Collective("all_reduce", 10**9, 2, 1, "tp"), {BLOCK: 1.0}, 10e-3, 0.0),
    ],
)
def test_overlap_rules(c: Collective, window: dict[str, float], exposed: float, overlapped: float) -> None:
    total, e, o = deployment_seconds(1.0, [c], LINK100, flat_model(), OverlapRules(window))
    assert e == pytest.approx(exposed, rel=1e-12) and o == pytest.approx(overlapped, rel=1e-12)
    assert total == pytest.approx(1.0 + exposed, rel=1e-12)


def test_link_per_collective() -> None:
    """The link may depend on the group (an NVLink bridge joins 2 GPUs): a function of the collective."""
    pcie = LinkSpec("pcie", 5, 50e9, 100e9, "test")
    cs = [Collective("all_reduce", 10**9, 2), Collective("all_reduce", 10**9, 4)]
    rows = collective_times(cs, lambda c: LINK100 if c.ranks <= 2 else pcie, flat_model())
    # 2 ranks on 100 GB/s: 2*(1/2)*1e9/100e9 = 10 ms; 4 ranks on PCIe 50 GB/s: 2*(3/4)*1e9/50e9 = 30 ms
    assert [r.seconds for r in rows] == pytest.approx([10e-3, 30e-3], rel=1e-12)


def test_overlap_windows_from_node_seconds() -> None:
    r = per_gpu(tiny_nodes(), BLOCKS, parse_plan(4, "ulysses=2,ring=2", passes_per_step=1), 1, dims=DIMS)
    seconds = {"time": 1.0, "to_q": 0.1, "sdpa": 0.4, "to_out": 0.1, "sdpa_1": 0.2, "proj_out": 1.0}
    w = overlap_windows(r, seconds, BLOCKS).windows
    # ring step: self-attention 0.4 s / R=2; block: its nodes 0.1 + 0.4 + 0.1 + 0.2 = 0.8 s (3 blocks x 0.8 / 3)
    assert w == {RING_STEP: pytest.approx(0.2), BLOCK: pytest.approx(0.8)}
    assert OverlapRules().rules == OVERLAP_RULES


# -- Wan2.1-14B, 720p, 8 x H800, ulysses=8 + FSDP ---------------------------------------------
def test_wan14b_720p_h800_ulysses8_fsdp() -> None:
    S, E = 75600, 2
    scores = 40 * S * S
    sdpa = NodeView("sdpa", "aten.scaled_dot_product_attention.default", "transformer.blocks.0.attn1", "attention",
                    "self_attention_core", 40, 4 * scores * 128, 6 * scores, 3 * S * 5120 * E, S * 5120 * E,
                    {"b": 1, "h": 40, "lq": S, "lk": S, "d": 128, "dv": 128}, True, S * 5120 * E, E)
    head = NodeView("linear_15", "aten.linear.default", "transformer.proj_out", "matmul", "head", 1, 2 * S * 64 * 5120,
                    S * 64, (S * 5120 + 64 * 5120 + 64) * E, S * 64 * E, {"b": 1, "m": S, "n": 64, "k": 5120}, True,
                    S * 64 * E, E)
    # fxmeter's weight bytes of the traced model: 28,635,351,168 in all, 702,870,528 per block
    blocks = [BlockView("transformer", 28_635_351_168 - 40 * 702_870_528, root=True)] + [
        BlockView(f"transformer.blocks.{i}", 702_870_528) for i in range(40)]
    r = per_gpu([sdpa, head], blocks, parse_plan(8, "ulysses=8", passes_per_step=2, fsdp=True), 2, dims=WAN14)
    cs = by_what(r.per_forward)
    # q/k/v/o: [1, 75600/8, 40, 128] bf16 = 9450 * 5120 * 2 = 96,768,000 bytes per rank, 40 blocks
    q = cs["ulysses q all-to-all before transformer.blocks.*.attn1"]
    assert (q.bytes, q.ranks, q.count) == (96_768_000, 8, 40)
    h800 = LinkSpec("nvlink", 4, 200e9, 400e9, "docs/research/hardware.json h800")
    m = load_comm_model()
    # 39.96 us + 7/8 * 96,768,000 / (0.711 * 200e9) = 39.96 us + 595.44 us = 635.40 us
    assert collective_seconds(q, h800, m) == pytest.approx(39.96e-6 + 84_672_000 / 142.2e9, rel=1e-12)
    first = cs["fsdp all-gather of transformer.blocks.0 (first block, exposed)"]
    rest = cs["fsdp all-gather of transformer.blocks.* (prefetched during the previous block)"]
    assert (first.bytes, first.count, rest.bytes, rest.count) == (702_870_528, 1, 702_870_528, 39)
    # 39.96 us + 7/8 * 702,870,528 / (0.822 * 200e9) = 39.96 us + 3,740.95 us
    assert collective_seconds(rest, h800, m) == pytest.approx(39.96e-6 + 615_011_712 / 164.4e9, rel=1e-12)
    gather = cs["sequence all-gather after transformer.proj_out (once per forward)"]
    assert (gather.bytes, gather.ranks) == (S * 64 * 2, 8)  # 9,676,800 bytes gathered per rank
    assert r.forwards_per_step == 2 and r.per_step == ()
    # per GPU: root 520,530,048 + 40 shards of 87,858,816 + 2 gathered blocks
    assert r.weight_bytes_per_gpu == 520_530_048 + 40 * 87_858_816 + 2 * 702_870_528


def test_plan_round_trips_to_dict() -> None:
    p = ParallelPlan(8, ulysses=2, ring=2, cfg=2, tp=1, fsdp=True)
    assert p.to_dict() == {"gpus": 8, "ulysses": 2, "ring": 2, "cfg": 2, "tp": 1, "fsdp": True}
    assert p.sp == 4 and p.spec() == "ulysses=2,ring=2,cfg=2,tp=1"
