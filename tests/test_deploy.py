"""Multi-GPU deployments end to end: the tiny Wan config through ``fxmeter.trace(..., gpus=..., parallel=...)``,
the CLI's errors, ``fxmeter scale``, and invariants (N=1 is the single-GPU prediction, FLOPs are conserved,
efficiency <= 1) on the tiny model and on Wan2.1-14B at 720p."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import fxmeter
from fxmeter import api
from fxmeter.cli.main import main
from fxmeter.errors import ParallelError
from fxmeter.estimate.comm import load_comm_model, pick_link
from fxmeter.estimate.hardware import get
from fxmeter.report.document import validate
from fxmeter.report.files import Report
from fxmeter.report.scale import COLUMNS
from tests.conftest import TINY_WAN

# The tiny Wan config (tests/conftest.py) at ci-tiny: 2 heads of d=12 (hidden 24), FFN 32, 3 blocks, patch (1, 2, 2);
# 4 frames -> 5 -> 2 latent frames of 32 x 32 -> 16 x 16 patches: L = 2*16*16 = 512 video tokens, 64 text tokens,
# 1 step x 2 passes (CFG) = 2 forwards per generation, bf16 (2 bytes).
L, H, D, TXT, BLOCKS, FORWARDS, E = 512, 2, 12, 64, 3, 2, 2


def tiny(tiny_config: Path, **kw: Any) -> Report:
    return fxmeter.trace(config=tiny_config, workload="ci-tiny", hardware="h100", run_id="dep", **kw)


def by_what(rep: Report) -> dict[str, Any]:
    assert rep.deployment is not None
    return {c.what: c for c in rep.deployment.communication}


# -- collective bytes written out by hand -----------------------------------------------------
def test_tiny_ulysses2_fsdp_collectives_by_hand(tiny_config: Path) -> None:
    rep = tiny(tiny_config, gpus=2, parallel="ulysses=2", fsdp=True)
    cs = by_what(rep)
    # q (and k, v, o): each rank holds [b, L/2, h, d] = 1 * 256 * 2 * 12 * 2 bytes = 12,288 before the all-to-all
    # ([b, L, h/2, d] after: the same bytes); one call per self-attention: 3 blocks x 2 forwards = 6 per generation
    for name, when in (("q", "before"), ("k", "before"), ("v", "before"), ("o", "after")):
        c = cs[f"ulysses {name} all-to-all {when} transformer.blocks.*.attn1"]
        assert (c.kind, c.bytes, c.ranks, c.count) == ("all_to_all", 12_288, 2, 6)
    # the head's output [b, L, p_t*p_h*p_w*C_out] = 512 * (1*2*2*4) * 2 bytes = 16,384 gathered per rank, once per forward
    g = cs["sequence all-gather after transformer.proj_out (once per forward)"]
    assert (g.kind, g.bytes, g.ranks, g.count) == ("all_gather", 16_384, 2, 2)
    # FSDP: one block's weights, 13,744 bytes (already a multiple of 2); block 0 exposed once per forward, blocks 1-2
    # prefetched (2 per forward); the root unit (56,288 - 3 x 13,744 = 15,056 bytes) once per generation
    first = cs["fsdp all-gather of transformer.blocks.0 (first block, exposed)"]
    rest = cs["fsdp all-gather of transformer.blocks.* (prefetched during the previous block)"]
    root = cs["fsdp all-gather of the root unit transformer (first forward; FSDP1 keeps the root gathered)"]
    assert (first.bytes, first.count, rest.bytes, rest.count, rest.overlappable) == (13_744, 2, 13_744, 4, True)
    assert (root.bytes, root.count) == (56_288 - 3 * 13_744, 1)
    assert rep.model.parameters and rep.memory.weight_bytes == 56_288
    dep = rep.deployment
    assert dep is not None
    # a GPU holds the root (15,056) + its 3 shards (3 x 6,872) + 2 gathered blocks (2 x 13,744)
    assert dep.memory["weight_bytes_per_gpu"] == 15_056 + 3 * 6_872 + 2 * 13_744
    # every collective over 2 H100s runs over NVLink 4: one q all-to-all = 39.96 us + (1/2) * 12,288 / (0.711 * 450e9)
    q = cs["ulysses q all-to-all before transformer.blocks.*.attn1"]
    assert q.seconds == pytest.approx(39.96e-6 + 6_144 / (0.711 * 450e9), rel=1e-9)
    assert q.exposed_seconds == pytest.approx(6 * q.seconds) and q.link == "NVLink4 450 GB/s"
    assert dep.exposed_comm_seconds == pytest.approx(sum(c.exposed_seconds for c in dep.communication))
    assert dep.per_gpu["tokens"] == 256 and dep.interconnect["kind"] == "nvlink"


def test_tiny_ring2_by_hand(tiny_config: Path) -> None:
    cs = by_what(tiny(tiny_config, gpus=2, parallel="ring=2,ulysses=1"))
    # K and V blocks of [b, L/2, h, d] = 1 * 256 * 2 * 12 * 2 = 12,288 bytes each, sent together at R-1 = 1 of the
    # 2 ring steps, once per block and forward
    c = cs["ring K/V send/recv per ring step in transformer.blocks.*.attn1 (1 of 2 steps)"]
    assert (c.kind, c.bytes, c.ranks, c.count, c.overlappable) == ("p2p", 2 * 12_288, 2, BLOCKS * FORWARDS, True)
    assert not any(x.kind == "all_to_all" for x in cs.values())


def test_tiny_tensor_parallel_by_hand(tiny_config: Path) -> None:
    cs = by_what(tiny(tiny_config, gpus=2, parallel="ulysses=1,tp=2"))
    # one all-reduce of each row-parallel linear's output [L, hidden] = 512 * 24 * 2 = 24,576 bytes per rank:
    # attn1.to_out.0, attn2.to_out.0 and ffn.net.2, once per block and forward
    for mod in ("attn1.to_out.0", "attn2.to_out.0", "ffn.net.2"):
        c = cs[f"tp all-reduce of the row-parallel transformer.blocks.*.{mod} output"]
        assert (c.kind, c.bytes, c.ranks, c.count) == ("all_reduce", 24_576, 2, BLOCKS * FORWARDS)
    assert len(cs) == 3


def test_tiny_cfg_parallel_is_a_perfect_split(tiny_config: Path) -> None:
    rep = tiny(tiny_config, gpus=2)  # default plan with two passes per step: cfg=2
    dep = rep.deployment
    assert dep is not None and dep.parallel["cfg"] == 2 and dep.parallel["ulysses"] == 1
    (c,) = dep.communication
    # per step: the two noise predictions [1, 512, 16] bf16 = 16,384 bytes each, all-gathered: 32,768 per rank
    assert (c.kind, c.bytes, c.ranks, c.count) == ("all_gather", 32_768, 2, 1)
    (st,) = dep.stages
    # each GPU runs one of the two forwards whole: the sum over GPUs is exactly the single-GPU work
    assert st.forwards_per_gpu == 1 and st.per_forward == st.single_gpu_per_forward
    assert 2 * st.forwards_per_gpu * st.per_forward.tensor_core_flops == FORWARDS * rep.per_forward["tensor_core_flops"]


# -- invariants ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [{}, {"efficiency": "tc=0.6,bw=0.8"}, {"compile": True}, {"attention": "fa3"},
                                {"precision": "fp8"}])
def test_one_gpu_is_the_single_gpu_prediction_exactly(tiny_config: Path, kw: dict[str, Any]) -> None:
    rep = api.trace(None, "ci-tiny", config=tiny_config, hardware="h100", run_id="one", gpus=1, **kw)
    dep = rep.deployment
    assert dep is not None and dep.communication == () and dep.speedup == 1.0 and dep.efficiency == 1.0
    assert dep.predicted_seconds == rep.totals.end_to_end.predicted_seconds == dep.single_gpu_seconds
    assert dep.bound_seconds == rep.totals.end_to_end.bound_seconds
    assert dep.per_gpu["per_forward"] == rep.totals.per_forward.metrics
    assert dep.memory["weight_bytes_per_gpu"] == rep.memory.weight_bytes
    assert dep.memory["activation_bytes_per_gpu"] == rep.memory.activation_peak_bytes


@pytest.mark.parametrize("gpus,spec,fsdp", [(2, "ulysses=2", False), (2, "ulysses=2", True), (2, "ulysses=1,ring=2", False),
                                            (4, "ulysses=2,cfg=2", False), (2, "ulysses=1,tp=2", False),
                                            (8, None, False), (4, "ulysses=1,ring=2,cfg=2", True)])
def test_tiny_conservation_and_efficiency(tiny_config: Path, gpus: int, spec: str | None, fsdp: bool) -> None:
    rep = tiny(tiny_config, gpus=gpus, parallel=spec, fsdp=fsdp)
    dep = rep.deployment
    assert dep is not None
    (st,) = dep.stages
    single = rep.totals.per_forward.metrics
    # summed over the GPUs, a generation does at least the single-GPU work (replicated nodes, zero padding)
    for k in ("tensor_core_flops", "cuda_core_flops", "bytes_read"):
        assert gpus * st.forwards_per_gpu * st.per_forward.value(k) >= FORWARDS * single.value(k), k
    assert 0 < dep.efficiency <= 1 and dep.speedup <= gpus
    assert dep.predicted_seconds >= dep.compute_seconds >= dep.bound_seconds
    validate(json.loads(rep.to_json()))  # the report, deployment included, matches the shipped schema


def test_self_attention_flops_split_exactly(tiny_config: Path) -> None:
    """512 tokens divide by 4: each GPU's self-attention is exactly 1/4 (H/U heads x L/R queries x L keys)."""
    rep = tiny(tiny_config, gpus=4, parallel="ulysses=2,ring=2")
    dep = rep.deployment
    assert dep is not None
    # 4*b*h*L*L*d = 4 * 1 * 2 * 512 * 512 * 12 = 25,165,824 per self-attention, 3 blocks
    sdpa = 4 * 1 * H * L * L * D
    assert rep.categories["self_attention_core"].metrics.tensor_core_flops == BLOCKS * sdpa
    node = next(n for n in rep.nodes if n.category == "self_attention_core")
    assert node.per_forward.tensor_core_flops == sdpa
    from fxmeter.estimate.parallel import per_gpu
    from fxmeter.estimate.split import node_views, split_rules

    req = api.request(None, "ci-tiny", config=str(tiny_config), hardware="h100", gpus=4, parallel="ulysses=2,ring=2")
    est = api.estimate_request(req, api.stage_inputs(req))
    assert req.plan is not None
    views, units, dims = node_views(est.stages[0].cost, split_rules(req.model, req.geometry)["transformer"], req.plan)
    shares = {s.name: s for s in per_gpu(views, units, req.plan, 2, dims=dims).nodes}
    assert shares[node.name].tensor_core_flops * 4 == sdpa
    # pre-block nodes (patch embedding, RoPE tables) run whole on every GPU; the head after the blocks is split
    assert shares["conv3d"].rule == "replicated" and shares["linear_15"].rule == "sequence"
    assert shares["linear_10"].rule == "replicated"  # attn2.to_k: the text, every GPU


@pytest.mark.parametrize("spec,gpus,text_split", [("ulysses=2", 2, True), ("ulysses=1,ring=3", 3, False)])
def test_joint_text_goes_with_the_sequence_when_it_divides(tiny_config: Path, spec: str, gpus: int,
                                                          text_split: bool) -> None:
    """Joint-attention text (Flux, SD3, HunyuanVideo) is split with the sequence when its length divides U*R
    (xDiT split_text_embed_in_sp), else it runs whole: shown on the tiny Wan graph with text as joint tokens."""
    from dataclasses import replace

    from fxmeter.estimate.parallel import parse_plan
    from fxmeter.estimate.split import node_views, split_rules

    req = api.request(None, "ci-tiny", config=str(tiny_config), hardware="h100")
    est = api.estimate_request(req, api.stage_inputs(req))
    rules = replace(split_rules(req.model, req.geometry)["transformer"], joint_text_symbols=frozenset({"text_len"}))
    views, _, dims = node_views(est.stages[0].cost, rules, parse_plan(gpus, spec, passes_per_step=2))
    seq = {v.name: v.seq_split for v in views}
    # attn2.to_k reads the 64 text tokens only: split when 64 % (U*R) == 0 (2: yes; 3: no)
    assert seq["linear_10"] is text_split and seq["linear_5"] is True
    assert dims.tokens == L + (TXT if text_split else 0)


def test_per_gpu_kernel_shapes(tiny_config: Path) -> None:
    """The kernel model sees each GPU's own shapes: H/U heads, S/R queries, the ring step's S/R keys, R calls."""
    from fxmeter.estimate.parallel import per_gpu
    from fxmeter.estimate.split import gpu_call, node_views, split_rules

    req = api.request(None, "ci-tiny", config=str(tiny_config), hardware="h100", gpus=4, parallel="ulysses=2,ring=2")
    est = api.estimate_request(req, api.stage_inputs(req))
    assert req.plan is not None
    cost = est.stages[0].cost
    views, units, dims = node_views(cost, split_rules(req.model, req.geometry)["transformer"], req.plan)
    res = per_gpu(views, units, req.plan, 2, dims=dims)
    calls = {n.name: gpu_call(n, s, req.plan, res.activation_scale, compiled=False) for n, s in zip(cost.nodes, res.nodes)}
    call, repeats = calls["scaled_dot_product_attention"]
    assert repeats == 2 and (call.shape["h"], call.shape["lq"], call.shape["lk"]) == (1, 256, 256)
    call, repeats = calls["scaled_dot_product_attention_1"]  # cross-attention: its 128 query rows, all 64 text keys
    assert repeats == 1 and (call.shape["h"], call.shape["lq"], call.shape["lk"]) == (2, 128, 64)
    call, _ = calls["linear_5"]  # attn1.to_q on the GPU's 128 rows
    assert (call.shape["m"], call.shape["n"], call.shape["k"]) == (128, 24, 24)


def test_stages_outside_the_loop_run_on_one_gpu(tiny_config: Path) -> None:
    """A stage with no denoising steps (a VAE decode, once) keeps its single-GPU time on N GPUs."""
    from dataclasses import replace

    from fxmeter.estimate.deploy import deploy
    from fxmeter.estimate.split import split_rules

    req = api.request(None, "ci-tiny", config=str(tiny_config), hardware="h100", gpus=2, parallel="ulysses=2")
    est = api.estimate_request(req, api.stage_inputs(req))
    den = est.stages[0]
    vae = replace(den, plan=replace(den.plan, name="vae", role="decoder", runs=1, steps=0))
    two = replace(est, stages=(den, vae), deployment=None)
    assert req.plan is not None and req.hardware is not None
    dep = deploy(two, req.plan, split_rules(req.model, req.geometry), req.hardware)
    d, v = dep.stages
    assert v.name == "vae" and not v.split and v.forwards_per_gpu == 1 and v.seconds == vae.predicted.per_run  # type: ignore[union-attr]
    assert d.seconds == est.deployment.predicted_seconds  # type: ignore[union-attr]
    assert dep.predicted_seconds == d.seconds + v.seconds
    assert dep.single_gpu_seconds == est.seconds("predicted") + v.single_gpu_seconds  # type: ignore[operator]
    assert any("outside the denoising loop on one GPU" in n for n in dep.notes)


def test_wan14b_720p_h800_ulysses8_fsdp() -> None:
    """The shipped 14B trace at 720p on 8 H800s (the Wan2.1 README's plan): bytes as docs/research/parallel-model.md."""
    rep = fxmeter.trace("wan2.1-t2v-14b", workload="720p", hardware="h800", gpus=8, parallel="ulysses=8", fsdp=True,
                        include_nodes=False, run_id="dep14")
    cs = by_what(rep)
    # 75,600 / 8 = 9,450 tokens x 40 heads x 128 x 2 bytes = 96,768,000 per rank; 40 blocks x 100 forwards
    q = cs["ulysses q all-to-all before transformer.blocks.*.attn1"]
    assert (q.bytes, q.ranks, q.count) == (96_768_000, 8, 4_000)
    # 39.96 us + 7/8 * 96,768,000 / (0.711 * 200e9) = 635.40 us
    assert q.seconds == pytest.approx(39.96e-6 + 84_672_000 / 142.2e9, rel=1e-9)
    rest = cs["fsdp all-gather of transformer.blocks.* (prefetched during the previous block)"]
    assert (rest.bytes, rest.count) == (702_870_528, 39 * 100) and rest.exposed_seconds == 0.0
    dep = rep.deployment
    assert dep is not None and 0 < dep.efficiency <= 1 and dep.memory["fits"]
    # every rank holds the whole T5 and VAE (Wan2.1 generate.py without --t5_fsdp) and its FSDP share of the DiT:
    # the root unit, its own 1/8 of the 40 blocks, and two gathered blocks (the running one and the prefetch)
    p = rep.pipeline
    assert p is not None
    te, vae = p.stage("text_encoder").weight_bytes, p.stage("vae").weight_bytes
    assert dep.memory["weight_bytes_per_gpu"] == te + vae + 520_530_048 + 40 * 87_858_816 + 2 * 702_870_528
    one = fxmeter.trace("wan2.1-t2v-14b", workload="720p", hardware="h800", include_nodes=False, run_id="one")
    assert one.pipeline is not None
    assert dep.single_gpu_seconds == one.pipeline.end_to_end.predicted_seconds  # the same stages on one GPU


def test_link_for_the_group() -> None:
    # an H100 PCIe's NVLink bridge joins 2 GPUs; 4 of them talk over PCIe
    hw = get("h100-pcie")
    assert pick_link(hw, 2, load_comm_model()).kind == "nvlink" and pick_link(hw, 4, load_comm_model()).kind == "pcie"


# -- bad input: one error line each --------------------------------------------------------------------
def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def one_error(code: int, err: str, *needles: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for n in needles:
        assert n in lines[0], (n, err)


@pytest.fixture(scope="module")
def odd_ffn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 heads of 6 (hidden 24) and an FFN of 30: tp=4 divides the heads and the hidden size, not the FFN."""
    p = tmp_path_factory.mktemp("odd") / "config.json"
    p.write_text(json.dumps({**TINY_WAN, "num_attention_heads": 4, "attention_head_dim": 6, "ffn_dim": 30}))
    return p


@pytest.mark.parametrize("extra,needles", [
    (("--gpus", "4", "--parallel", "ulysses=2"), ("ulysses=2 x ring=1 x cfg=1 x tp=1 = 2 GPUs", "--gpus is 4")),
    (("--gpus", "4", "--parallel", "ulysses=4"), ("ulysses=4 does not divide the model's 2 attention heads",)),
    (("--gpus", "2", "--parallel", "cfg=2", "--guidance-scale", "1"), ("cfg=2", "one pass per step")),
    (("--gpus", "2", "--parallel", "cfg=2", "--batched-cfg"), ("cfg=2", "batched")),
    (("--gpus", "1", "--fsdp"), ("--fsdp", "--gpus > 1")),
    (("--gpus", "2", "--parallel", "tp=2", "--fsdp"), ("tensor parallelism and fully sharded",)),
    (("--gpus", "2", "--parallel", "ulysess=2"), ("unknown --parallel key 'ulysess'", "did you mean 'ulysses'")),
    (("--gpus", "0"), ("--gpus must be between 1",)),
    (("--gpus", "2", "--parallel", "ulysses=two"), ("is not an integer",)),
    (("--parallel", "ulysses=2"), ("--gpus N",)),
])
def test_plan_errors_are_one_line(tiny_config: Path, tmp_path: Path, extra: tuple[str, ...],
                                  needles: tuple[str, ...]) -> None:
    code, _, err = run("trace", "--config", str(tiny_config), "-w", "ci-tiny", "--hardware", "h100",
                       "--output-root", str(tmp_path), *extra)
    one_error(code, err, *needles)
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("model,extra,needles", [
    # tp with no tensor-parallel roles once split nothing and printed a 1.00x "speed-up": refused now
    ("pixart-sigma-1024", ("--gpus", "2", "--parallel", "tp=2"), ("tensor parallelism is not modelled", "use ulysses/ring")),
    ("auraflow-v0.3", ("--gpus", "2", "--parallel", "ulysses=1,tp=2"), ("tensor parallelism is not modelled",
                                                                       "use ulysses/ring")),
    # a pipeline that always batches CFG refuses cfg=2 (it used to fail later with "needs two passes")
    ("allegro", ("--gpus", "2", "--parallel", "cfg=2"), ("batched", "ulysses/ring")),
    # guidance beyond CFG (LTX-2: CFG batched, STG and modality forwards): no cond/uncond pair for cfg=2 to split
    ("ltx-2", ("--gpus", "2", "--parallel", "cfg=2"), ("4 transformer passes per step", "no cond/uncond pair",
                                                       "ulysses/ring")),
])
def test_plans_a_model_cannot_run_are_one_line(tmp_path: Path, model: str, extra: tuple[str, ...],
                                               needles: tuple[str, ...]) -> None:
    code, _, err = run("trace", model, "--hardware", "h100", "--output-root", str(tmp_path), *extra)
    one_error(code, err, *needles)
    assert not any(tmp_path.iterdir())


@pytest.mark.slow  # three shipped pipelines priced (~4 s)
def test_a_static_trace_takes_the_default_plan(tmp_path: Path) -> None:
    """--gpus N without --parallel on a static-shape trace: the same default as a dynamic one (CFG where there are
    two passes, Ulysses for the rest), its sequence split read off the trace's concrete shapes."""
    import fxmeter

    r = fxmeter.trace("allegro", hardware="h100", gpus=2, run_id="a")  # CFG batched
    p = r["deployment"]["parallel"]
    assert (p["cfg"], p["tp"], p["ulysses"], p["ring"]) == (1, 1, 2, 1) and r["deployment"]["speedup"] > 1.5
    p = fxmeter.trace("cogvideox-5b", hardware="h100", gpus=4, run_id="c")["deployment"]["parallel"]
    assert (p["cfg"], p["tp"], p["ulysses"], p["ring"]) == (2, 1, 2, 1)
    r = fxmeter.trace("cogvideox-5b", hardware="h100", gpus=8, fsdp=True, run_id="f")  # once refused: TP and FSDP
    assert r["deployment"]["parallel"]["ulysses"] == 4 and r["deployment"]["speedup"] > 4


def test_tp_that_does_not_divide_the_ffn(odd_ffn: Path, tmp_path: Path) -> None:
    code, _, err = run("trace", "--config", str(odd_ffn), "-w", "ci-tiny", "--hardware", "h100", "--gpus", "4",
                       "--parallel", "ulysses=1,tp=4", "--output-root", str(tmp_path))
    one_error(code, err, "tp=4 does not divide the FFN size 30")


def test_gpus_needs_one_device(tiny_config: Path, tmp_path: Path) -> None:
    base = ("trace", "--config", str(tiny_config), "-w", "ci-tiny", "--output-root", str(tmp_path), "--gpus", "2")
    one_error(*run(*base)[::2], "--gpus needs --hardware")
    one_error(*run(*base, "--hardware", "h100,a100")[::2], "name one")


def test_plan_is_checked_before_tracing(tiny_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fxmeter.cost import store

    def boom(*a: Any, **k: Any) -> Any:
        raise AssertionError("traced before the plan was checked")

    monkeypatch.setattr(store, "get", boom)
    with pytest.raises(ParallelError, match="does not divide the model's 2 attention heads"):
        fxmeter.trace(config=tiny_config, workload="ci-tiny", hardware="h100", gpus=4, parallel="ulysses=4")


def test_static_models_take_sequence_parallelism() -> None:
    """Wan2.2-TI2V-5B and CogVideoX (static traces: their forwards need Python ints of the geometry) split the
    sequence as the dynamic models do (their tokens per GPU: the video tokens, and CogVideoX's 226 text tokens
    with them, over the SP degree)."""
    for model in ("wan2.2-ti2v-5b", "cogvideox-5b"):
        req = api.request(model, hardware="h100", gpus=2, parallel="ulysses=2")
        assert req.plan is not None and req.plan.ulysses == 2


# -- the command line -----------------------------------------------------------------------------------
def test_trace_cli_prints_and_writes_the_deployment(tiny_config: Path, tmp_path: Path) -> None:
    code, out, err = run("trace", "--config", str(tiny_config), "-w", "ci-tiny", "--hardware", "h100", "--gpus", "2",
                         "--parallel", "ulysses=2", "--fsdp", "--run-id", "d", "--output-root", str(tmp_path))
    assert code == 0, err
    assert "on 2 x NVIDIA H100 SXM5 80GB (ulysses=2,ring=1,cfg=1,tp=1 + fsdp" in out and "parallel efficiency" in out
    folder = tmp_path / "d" / "static_analysis" / "wan"
    rep = Report.load(folder)
    assert rep.deployment is not None and rep.deployment.gpus == 2
    assert rep.trace.options["gpus"] == 2 and rep.trace.options["fsdp"] is True
    md = (folder / "summary.md").read_text()
    assert "## Deployment on 2 GPUs" in md and "ulysses q all-to-all" in md


def test_scale_cli_columns(tiny_config: Path, tmp_path: Path) -> None:
    code, out, err = run("scale", "--config", str(tiny_config), "-w", "ci-tiny", "--hardware", "h100",
                         "--gpus", "1,2,4,8", "--run-id", "s", "--output-root", str(tmp_path), "--no-plot", "--html")
    assert code == 0, err
    folder = tmp_path / "s" / "static_analysis" / "wan"
    rows = list(csv.DictReader(io.StringIO((folder / "scale.csv").read_text())))
    assert tuple(rows[0]) == COLUMNS and [int(r["gpus"]) for r in rows] == [1, 2, 4, 8]
    assert float(rows[0]["speedup"]) == 1.0 and all(0 < float(r["efficiency"]) <= 1 for r in rows)
    # default plans: cfg=2 for the two passes, Ulysses up to the 2 heads, ring for the rest
    assert [r["parallel"] for r in rows] == ["ulysses=1,ring=1,cfg=1,tp=1", "ulysses=1,ring=1,cfg=2,tp=1",
                                             "ulysses=2,ring=1,cfg=2,tp=1", "ulysses=2,ring=2,cfg=2,tp=1"]
    doc = json.loads((folder / "scale.json").read_text())
    assert [d["gpus"] for d in doc["deployments"]] == [1, 2, 4, 8]
    assert "GPUs" in out and "efficiency" in out and (folder / "report.html").exists()
    assert 'id="scaling"' in (folder / "report.html").read_text()


def test_scale_names_the_count_the_plan_cannot_use(tiny_config: Path, tmp_path: Path) -> None:
    code, _, err = run("scale", "--config", str(tiny_config), "-w", "ci-tiny", "--hardware", "h100", "--gpus", "1,2,3",
                       "--parallel", "cfg=1", "--output-root", str(tmp_path))
    one_error(code, err, "--gpus 3:", "ulysses=3 does not divide the model's 2 attention heads")
    code, _, err = run("scale", "--config", str(tiny_config), "-w", "ci-tiny", "--gpus", "1,2",
                       "--output-root", str(tmp_path))
    one_error(code, err, "needs --hardware")
    code, _, err = run("scale", "--config", str(tiny_config), "-w", "ci-tiny", "--hardware", "h100", "--gpus", "1,x",
                       "--output-root", str(tmp_path))
    one_error(code, err, "'x' is not a positive integer")


def test_scale_prices_a_static_model_at_every_count_and_a_plan_no_count_runs_is_the_error(tmp_path: Path) -> None:
    """Without --parallel, a static-trace model (HiDream: no TP roles; once 2 GPUs via CFG only) is priced at every
    count, its sequence split read off the trace's shapes; a plan that no count can run (cfg=2 on LTX-2, whose four
    passes per step are no cond/uncond pair) is the error."""
    code, out, err = run("scale", "hidream-i1-full", "--hardware", "h100", "--gpus", "1,2,4", "--output-root",
                         str(tmp_path), "--run-id", "h")
    assert code == 0, err
    rows = [ln.split()[0] for ln in out.splitlines() if ln.strip() and ln.split()[0].isdigit()]
    assert rows == ["1", "2", "4"] and "not priced" not in out
    code, _, err = run("scale", "ltx-2", "--hardware", "h100", "--gpus", "2,4", "--parallel", "cfg=2",
                       "--output-root", str(tmp_path), "--run-id", "p")
    one_error(code, err, "--gpus 2:", "transformer passes per step")


@pytest.mark.slow  # LTX-2's pipeline priced on 1 and 4 GPUs (~10 s)
def test_guidance_beyond_cfg_runs_every_pass_on_every_gpu() -> None:
    """LTX-2 runs CFG batched plus STG and modality-isolation forwards (three denoising stages, four passes per
    step): on N GPUs every stage runs all its forwards on every GPU, split by sequence (Ulysses by default), never
    by CFG; each GPU's forward is a share of the single-GPU one and the generation is faster than on one GPU."""
    one = fxmeter.trace("ltx-2", hardware="h100", run_id="l1")
    four = fxmeter.trace("ltx-2", hardware="h100", gpus=4, run_id="l4")
    dep = four["deployment"]
    assert (dep["parallel"]["cfg"], dep["parallel"]["ulysses"], dep["parallel"]["ring"]) == (1, 4, 1)
    runs = {s["name"]: s["runs"] for s in one["pipeline"]["stages"]}
    den = {s["name"]: s for s in dep["stages"] if s["name"].startswith("transformer")}
    assert set(den) == {"transformer", "transformer_stg", "transformer_modality"}
    for name, s in den.items():
        assert s["forwards_per_gpu"] == runs[name] == 30  # every pass of every step, on every GPU
        per, whole = s["per_forward"]["tensor_core_flops"], s["single_gpu_per_forward"]["tensor_core_flops"]
        assert whole / 4 <= per < whole / 2  # the video tokens split 4 ways; the audio stream runs whole
    assert 1 < dep["speedup"] and dep["predicted_seconds"] < one["pipeline"]["end_to_end"]["predicted_seconds"]


def test_deployment_is_priced_in_gpu_hours_and_dollars(tiny_config: Path) -> None:
    """A generation on N GPUs costs N x its predicted seconds of GPU time, at the --price-per-hour of the device."""
    from fxmeter.report.summary import device_lines, render

    rep = fxmeter.trace(config=tiny_config, workload="ci-tiny", hardware="h100", gpus=2, parallel="ulysses=2",
                        price_per_hour=3.0, run_id="price")
    dep = rep.deployment
    assert dep is not None
    gpu_hours = 2 * dep.predicted_seconds / 3600
    line = next(ln for ln in device_lines(rep) if "GPU-hours per generation" in ln)
    assert f"{gpu_hours:.4f} GPU-hours per generation" in line and f"${gpu_hours * 3.0:,.4f} at $3 per GPU-hour" in line
    assert f"${gpu_hours * 3.0:,.4f}" in render(rep)


@pytest.mark.slow
def test_offload_on_several_gpus_holds_the_policys_weights() -> None:
    """--offload with --gpus: each GPU holds what the policy keeps resident at its peak stage (its share of it),
    not every weight; the copies it makes are in the seconds."""
    kw: dict[str, Any] = dict(workload="720p", include_nodes=False, gpus=4, parallel="cfg=2,ulysses=2")
    none = fxmeter.trace("wan2.1-t2v-14b", hardware="a100", run_id="o0", **kw)
    wan = fxmeter.trace("wan2.1-t2v-14b", hardware="a100", offload="wan", run_id="o1", **kw)
    d0, d1 = none.deployment, wan.deployment
    assert d0 is not None and d1 is not None and wan.pipeline is not None
    per_gpu = d1.memory["weight_bytes_per_gpu"] + d1.memory["activation_bytes_per_gpu"]
    # no FSDP: every GPU holds whole components, so its peak is the one-GPU policy's peak (T5's calls, DiT resident)
    assert per_gpu == wan.pipeline.residency["peak_bytes"]
    assert per_gpu < d0.memory["weight_bytes_per_gpu"] + d0.memory["activation_bytes_per_gpu"]
    assert d1.predicted_seconds > d0.predicted_seconds  # the host<->device copies of the policy
    assert any(n.startswith("--offload wan: memory per GPU") for n in d1.notes)
    seq = fxmeter.trace("wan2.1-t2v-14b", hardware="rtx4090", offload="sequential", run_id="o2", **kw)
    assert seq.deployment is not None and seq.deployment.memory["fits"]  # 24 GB cards: only with offload
    assert not fxmeter.trace("wan2.1-t2v-14b", hardware="rtx4090", run_id="o3", **kw).deployment.memory["fits"]  # type: ignore[union-attr]


@pytest.mark.slow
def test_compare_shows_the_generation_on_each_reports_gpus() -> None:
    """Two runs that differ only in --gpus differ in time: compare says by how much."""
    from fxmeter.report.compare import compare

    one = fxmeter.trace("wan2.1-t2v-14b", workload="720p", hardware="h800", include_nodes=False, run_id="c1")
    eight = fxmeter.trace("wan2.1-t2v-14b", workload="720p", hardware="h800", gpus=8, parallel="ulysses=8", fsdp=True,
                          include_nodes=False, run_id="c8")
    assert eight.deployment is not None and one.pipeline is not None
    row = next(r for r in compare(one, eight).stages if r.key.startswith("generation predicted_seconds"))
    assert "(1 -> 8)" in row.key
    assert (row.a, row.b) == (one.pipeline.end_to_end.predicted_seconds, eight.deployment.predicted_seconds)


@pytest.mark.parametrize("device,pv", [("a100", "int8"), ("rtx4090", "fp8"), ("h100", "fp8")])
def test_attention_sage_alone_takes_sageattentions_own_precision(device: str, pv: str) -> None:
    """SageAttention has no bf16 mode: --attention sage without --attention-precision once asked for one; it now
    records what SageAttention itself runs (INT8 Q K^T; P V in FP8 where there are FP8 tensor cores, else FP16)."""
    import fxmeter

    r = fxmeter.trace("wan2.1-t2v-1.3b", workload="ci-tiny", hardware=device, attention="sage", run_id="s")
    assert r["trace"]["options"]["attention_precision"] == pv
    explicit = fxmeter.trace("wan2.1-t2v-1.3b", workload="ci-tiny", hardware=device, attention="sage",
                             attention_precision="int8", run_id="s")
    assert r["pipeline"]["end_to_end"] == explicit["pipeline"]["end_to_end"]  # the label only: the same seconds
