"""The time model's terms besides kernels: host-side dispatch, same-silicon devices, collectives, multi-GPU
for every bundled model.  Every expected number is written out by hand."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fxmeter.cli import main
from fxmeter.estimate.comm import Collective, LinkSpec, collective_seconds, load_comm_model
from fxmeter.estimate.evaluate import NodeCost
from fxmeter.estimate.hardware import get as get_hardware
from fxmeter.estimate.host import host_seconds, timeline
from fxmeter.estimate.kernels import (
    HostCosts,
    KernelCall,
    KernelModelError,
    KernelOptions,
    kernel_time,
    load_kernel_model,
    parse_model,
)
from fxmeter.estimate.metrics import Metrics
from fxmeter.estimate.roofline import NodeTime

US = 1e-6
HOST = HostCosts(eager_op=2.0 * US, launch=2.2 * US, compiled_launch=2.2 * US, keys=("a", "b", "c"))


def node(index: int, family: str, *, kernel: int = -1, replicas: int = 1) -> NodeCost:
    return NodeCost(f"n{index}", "aten.x", "m", family, "other", replicas, Metrics(), {}, "bfloat16", frozenset(),
                    index=index, kernel=kernel)


# -- host-side dispatch -------------------------------------------------------------------------------
def test_shipped_host_costs_and_their_sources() -> None:
    km = load_kernel_model()
    assert km.host is not None
    assert (km.host.eager_op, km.host.launch, km.host.compiled_launch) == (2.0e-6, 2.2e-6, 2.2e-6)
    for key in (*km.host.keys, "host.timeline"):
        assert len(km.sources[key]) > 40, key
    assert "pytorch/pytorch issue #41383" in km.sources["host.eager.op"]
    # eager model code: 53.7 ms of host time for 1,185 kernels in a torch.profiler trace of a whole model
    assert km.host.eager_kernel == 4.53e-5 and round(53.7e-3 / 1185, 7) == 4.53e-5
    assert "facebookresearch/sam2 issue #768" in km.sources["host.eager.model_kernel"]


def test_host_seconds_of_eager_model_code_per_kernel() -> None:
    """With a whole-model figure per launched kernel, an eager kernel costs it all in, a view nothing of its own,
    and never less per kernel than the bare op's floor (2.0 + 2.2 us); compiled code is unchanged."""
    from dataclasses import replace

    model = replace(HOST, eager_kernel=45.3 * US)
    mm, view = node(0, "matmul"), node(1, "free")
    assert host_seconds(mm, model, compiled=False) == pytest.approx(45.3 * US)
    assert host_seconds(view, model, compiled=False) == 0.0
    assert host_seconds(mm, model, compiled=False, repeats=4) == pytest.approx(4 * 45.3 * US)  # ring steps
    assert host_seconds(mm, replace(HOST, eager_kernel=1.0 * US), compiled=False) == pytest.approx(4.2 * US)  # the floor
    leader = node(3, "elementwise", kernel=3)
    assert host_seconds(leader, model, compiled=True) == host_seconds(leader, HOST, compiled=True) == pytest.approx(4.4 * US)


def test_eager_flux_on_four_gpus_waits_for_its_host() -> None:
    """FLUX.1-dev at 1024 px on 4 H100 with Ulysses: each GPU's share of a forward runs faster than the host can
    issue it in eager mode, so a forward takes the host's time (one per launched kernel); compiled, it does not."""
    from fxmeter import api

    def forward(**kw: object) -> tuple[float, int]:
        req = api.request("flux.1-dev", hardware="h100", gpus=4, parallel="ulysses=4", **kw)
        est = api.estimate_request(req, api.stage_inputs(req))
        st = next(s for s in est.deployment.stages if s.name == "transformer")  # type: ignore[union-attr]
        kernels = sum(n.replicas for n in est.main.cost.nodes if n.family != "free")
        return st.predicted_seconds_per_forward, kernels

    eager, kernels = forward()
    assert kernels > 2000 and eager >= kernels * 4.53e-5 * (1 - 1e-9)
    compiled, _ = forward(compile=True)
    assert compiled < kernels * 4.53e-5


def test_host_seconds_per_node() -> None:
    mm, view, add = node(0, "matmul"), node(1, "free"), node(2, "elementwise")
    # eager: an ATen dispatch for every node (2.0 us) + a CUDA launch per kernel (2.2 us)
    assert host_seconds(mm, HOST, compiled=False) == pytest.approx(4.2 * US)
    assert host_seconds(view, HOST, compiled=False) == pytest.approx(2.0 * US)
    # ring attention: 4 kernel calls of one node -> 4 x 4.2 us
    assert host_seconds(mm, HOST, compiled=False, repeats=4) == pytest.approx(16.8 * US)
    # compiled: the fusion leader pays Inductor's launcher (2.2 us) + the CUDA launch (2.2 us); members and views nothing
    leader, member = node(3, "elementwise", kernel=3), node(4, "elementwise", kernel=3)
    assert host_seconds(leader, HOST, compiled=True) == pytest.approx(4.4 * US)
    assert host_seconds(member, HOST, compiled=True) == 0.0
    assert host_seconds(view, HOST, compiled=True) == 0.0
    assert host_seconds(add, HOST, compiled=True) == pytest.approx(4.4 * US)  # kernel -1: runs alone


def test_timeline_of_a_tiny_graph() -> None:
    """G_i = max(G_(i-1), H_i) + kernel_i; a node's time is its increment of G."""
    nodes = [node(0, "matmul"), node(1, "free"), node(2, "elementwise"), node(3, "elementwise"),
             node(4, "elementwise"), node(5, "elementwise")]
    kernels = [NodeTime(10 * US, "tensor_core"), NodeTime(0.0, "memory")] + [NodeTime(1 * US, "memory")] * 4
    hosts = [host_seconds(n, HOST, compiled=False) for n in nodes]  # 4.2, 2.0, 4.2, 4.2, 4.2, 4.2 us
    t = timeline(nodes, kernels, hosts)
    # mm:   H = 4.2,  G = max(0, 4.2) + 10     = 14.2 -> 14.2 (it waited 4.2 us for the host: launch-bound)
    # view: H = 6.2,  no kernel                       -> 0
    # add:  H = 10.4, G = max(14.2, 10.4) + 1  = 15.2 -> 1   (the host ran ahead during the GEMM)
    # add:  H = 14.6, G = max(15.2, 14.6) + 1  = 16.2 -> 1
    # add:  H = 18.8, G = max(16.2, 18.8) + 1  = 19.8 -> 3.6 (the GPU idled 2.6 us)
    # add:  H = 23.0, G = max(19.8, 23.0) + 1  = 24.0 -> 4.2
    assert [x.seconds / US for x in t] == pytest.approx([14.2, 0.0, 1.0, 1.0, 3.6, 4.2])
    assert [x.limiter for x in t] == ["launch", "memory", "memory", "memory", "launch", "launch"]
    assert sum(x.seconds for x in t) == pytest.approx(24.0 * US)  # 14 us of kernels, 10 us waiting for the host
    # long kernels hide the host completely: every increment is the kernel itself
    slow = timeline(nodes, [NodeTime(100 * US, "memory")] * 6, hosts)
    assert [x.seconds / US for x in slow] == pytest.approx([104.2, 100, 100, 100, 100, 100])


def test_timeline_of_a_replicated_block() -> None:
    """Two nodes of a block repeated 3 times, 1 us kernels, 4.2 us host each: the host sets the pace.
    Issued in a row: H = 4.2, 8.4, ..., 25.2; G = 5.2, 9.4, 13.6, 17.8, 22.0, 26.2 (each H + 1)."""
    nodes = [node(0, "elementwise", replicas=3), node(1, "elementwise", replicas=3)]
    t = timeline(nodes, [NodeTime(1 * US, "memory")] * 2, [4.2 * US] * 2)
    # node 0: increments 5.2, 4.2, 4.2 -> mean 4.5333; node 1: 4.2, 4.2, 4.2 -> 4.2
    assert [x.seconds / US for x in t] == pytest.approx([13.6 / 3, 4.2])
    assert sum(x.seconds * 3 for x in t) == pytest.approx(26.2 * US)


def test_timeline_ends_with_the_host() -> None:
    """Views after the last kernel: the forward ends when the host has issued them."""
    nodes = [node(0, "elementwise"), node(1, "free"), node(2, "free")]
    t = timeline(nodes, [NodeTime(1 * US, "memory"), NodeTime(0.0, "memory"), NodeTime(0.0, "memory")],
                 [4.2 * US, 2.0 * US, 2.0 * US])
    # G = 4.2 + 1 = 5.2 after the kernel; the host finishes at 4.2 + 2 + 2 = 8.2: 3 us more, on the last node
    assert sum(x.seconds for x in t) == pytest.approx(8.2 * US)
    assert t[-1].limiter == "launch" and t[-1].seconds == pytest.approx(3.0 * US)


def test_a_bad_host_section_is_one_line() -> None:
    doc = json.loads((Path(__file__).parents[1] / "fxmeter" / "data" / "kernels.json").read_text())
    bad = copy.deepcopy(doc)
    bad["host"]["launch"]["seconds"] = -1
    with pytest.raises(KernelModelError, match=r"host\.launch\.seconds: must be a number"):
        parse_model(bad, "x.json")
    bad = copy.deepcopy(doc)
    del bad["host"]["eager_op"]
    with pytest.raises(KernelModelError, match="missing 'eager_op'"):
        parse_model(bad, "x.json")
    bad = copy.deepcopy(doc)
    bad["same_silicon"]["devices"]["h800"] = "h800"
    with pytest.raises(KernelModelError, match="must name another device"):
        parse_model(bad, "x.json")
    del doc["host"]  # a file without the section: no host term
    assert parse_model(doc, "x.json").host is None


# -- same silicon, same numbers -------------------------------------------------------------------------
@pytest.mark.parametrize(("a", "b"), [("h100", "h800"), ("a100", "a800")])
def test_same_silicon_same_kernel_seconds(a: str, b: str) -> None:
    """Twins share every measurement: GEMM, bandwidth, launch and attention (one pool of tables, the preferred
    benchmark first, the pair's canonical device first), so the same work gets the same seconds, never a stand-in."""
    hw = {d: get_hardware(d) for d in (a, b)}
    km = load_kernel_model()
    shared = [
        KernelCall("matmul", 2 * 4096 * 5120 * 5120, 0, 3 * 2 * 4096 * 5120, {"b": 1, "m": 4096, "n": 5120, "k": 5120}),
        KernelCall("elementwise", 0, 5120 * 32760, 2 * 2 * 5120 * 32760),
    ]
    attn = KernelCall("attention", 4 * 40 * 128 * 32760 * 32760, 0, 4 * 2 * 40 * 32760 * 128,
                      {"b": 1, "h": 40, "lq": 32760, "lk": 32760, "d": 128, "dv": 128})
    for attention in ("sdpa", "fa2"):
        opts = KernelOptions(attention=attention)
        for c in shared:
            ta, tb = kernel_time(c, hw[a], opts, km), kernel_time(c, hw[b], opts, km)
            assert ta.seconds == tb.seconds and ta.basis == tb.basis, (c.family, ta, tb)
            assert not tb.fallback or ta.fallback  # the twin's measurement is its own, not a stand-in
    for opts in (KernelOptions(attention="sdpa"), KernelOptions(attention="fa2"), KernelOptions(attention="sage"),
                 *([KernelOptions(attention="fa3"), KernelOptions(attention="fa3", attention_precision="fp8")]
                   if a == "h100" else [])):
        ta, tb = kernel_time(attn, hw[a], opts, km), kernel_time(attn, hw[b], opts, km)
        assert ta.seconds == tb.seconds and ta.basis == tb.basis, (opts, ta, tb)
        assert not ta.fallback and not tb.fallback, (opts, ta.basis)
    assert hw[a].sm_count == hw[b].sm_count


def test_alpha_beta_collectives_by_hand() -> None:
    m = load_comm_model()
    h800 = LinkSpec("nvlink", 4, 200e9, 400e9, "H800 NVLink4")
    # Ulysses q all-to-all over 8 H800s, 64 MiB per rank: 39.96 us + (7/8) * 67108864 / (0.711 * 200e9)
    #   = 39.96e-6 + 412.96e-6 = 452.92 us
    t = collective_seconds(Collective("all_to_all", 64 * 2**20, 8), h800, m)
    assert t == pytest.approx(39.96e-6 + 7 / 8 * 67108864 / (0.711 * 200e9), rel=1e-12)
    assert t == pytest.approx(452.92e-6, rel=1e-4)
    # a 4 KiB message is all latency: 39.96 us + (7/8) * 4096 / 142.2e9 = 39.985 us
    assert collective_seconds(Collective("all_to_all", 4096, 8), h800, m) == pytest.approx(39.985e-6, rel=1e-4)


# -- multi-GPU for every bundled model ------------------------------------------------------------------
TINY_COGVIDEOX: dict[str, Any] = {
    "_class_name": "CogVideoXTransformer3DModel", "activation_fn": "gelu-approximate", "attention_bias": True,
    "attention_head_dim": 16, "dropout": 0.0, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4,
    "max_text_seq_length": 8, "norm_elementwise_affine": True, "norm_eps": 1e-05, "num_attention_heads": 2,
    "num_layers": 2, "out_channels": 4, "patch_size": 2, "sample_frames": 9, "sample_height": 8, "sample_width": 8,
    "spatial_interpolation_scale": 1.875, "temporal_compression_ratio": 4, "temporal_interpolation_scale": 1.0,
    "text_embed_dim": 16, "time_embed_dim": 16, "timestep_activation_fn": "silu",
    "use_learned_positional_embeddings": False, "use_rotary_positional_embeddings": True,
}


@pytest.mark.slow
def test_cogvideox_cfg_parallel_cli(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(TINY_COGVIDEOX))
    base = ["trace", "--config", str(cfg), "--frames", "9", "--height", "64", "--width", "64", "--steps", "2",
            "--text-len", "8", "--stages", "transformer", "--hardware", "h100", "--gpus", "2", "--output-root", str(tmp_path)]
    res = CliRunner().invoke(main, [*base, "--parallel", "cfg=2", "--run-id", "c"], catch_exceptions=False)
    assert res.exit_code == 0, res.stderr
    assert "on 2 x NVIDIA H100 SXM5 80GB (ulysses=1,ring=1,cfg=2,tp=1" in res.stdout and "speed-up" in res.stdout
    # sequence parallelism on a static trace (CogVideoX's RoPE is built from Python ints): split by its shapes
    res = CliRunner().invoke(main, [*base, "--parallel", "ulysses=2", "--run-id", "u"], catch_exceptions=False)
    assert res.exit_code == 0, res.stderr
    assert "(ulysses=2,ring=1,cfg=1,tp=1" in res.stdout and "speed-up" in res.stdout


def test_every_bundled_model_has_split_rules() -> None:
    from fxmeter.estimate.split import split_rules
    from fxmeter.model.registry import resolve_model
    from fxmeter.model.workload import get_preset

    for name in ("cogvideox-5b", "ltx-video", "wan2.2-ti2v-5b"):
        model = resolve_model(name)
        wl = get_preset(model.component("transformer").adapter.default_workload or "")
        assert "transformer" in split_rules(model, model.geometry(wl)), name


# -- eager broadcast ops ---------------------------------------------------------------------------------
def test_flux_adaln_and_rope_products_are_eager_broadcasts() -> None:
    """On the shipped FLUX.1-dev graph, AdaLN's scale/shift/gate products and RoPE's cos/sin products are the
    broadcasting binary ops (one operand a row or a table), residual adds are not, and none is under --compile."""
    from fxmeter import api
    from fxmeter.estimate.predict import broadcasts, call_of

    req = api.request("flux.1-dev", workload="flux-1024", stages="transformer")
    est = api.estimate_request(req, api.stage_inputs(req), nodes=True, modules=True)
    nodes = est.main.cost.nodes
    flagged = [n for n in nodes if broadcasts(n)]
    assert any(n.target == "aten.mul.Tensor" and ".norm1" in n.module for n in flagged)  # x * (1 + scale)
    assert any(n.target == "aten.mul.Tensor" and n.module.endswith(".attn") for n in flagged)  # RoPE x * cos
    same = [n for n in nodes if n.target == "aten.add.Tensor" and not broadcasts(n)]
    assert same and all(2 * n.cost.bytes_read >= 3 * n.cost.bytes_written for n in same)
    assert all(call_of(n, compiled=False).broadcast == broadcasts(n) for n in nodes)
    assert not any(call_of(n, compiled=True).broadcast for n in nodes)
    # named where the seconds are shown, with the device it was measured on
    from fxmeter.estimate.predict import KernelSettings, predict_stage
    from fxmeter.estimate.roofline import Device

    dev = Device(get_hardware("h100"))
    eager = predict_stage(est.main.cost, dev, KernelSettings()).model
    launched = sum(1 for n in flagged if call_of(n, compiled=False).launches)
    assert f"; {launched} eager broadcast op(s) at 0.46 of that bandwidth" in eager and "measured on h200" in eager
    assert "eager broadcast" not in predict_stage(est.main.cost, dev, KernelSettings(compile=True)).model
