"""HiDream-I1-Full (``fxmeter/model/zoo/hidream.py``): HiDreamImagePipeline's stages, geometry and FLOPs, and the
routed-expert patch.

Fast lane: the model and its preset are listed, ``fxmeter trace`` runs from the shipped traces, the stage list is
HiDreamImagePipeline's (CLIP-L, CLIP-G, T5-XXL, Llama-3.1-8B at 128 tokens for the prompt and the negative
prompt, two transformer passes per step or one of twice the batch with ``--batched-cfg``, the FLUX.1 VAE decode
once), the geometry of the preset, every stage's tensor-core FLOPs written out by hand, and on CPU at a tiny size:
the patched ``moe_infer`` given the real routing's counts is bit-identical to diffusers' and has its FlopCounterMode
FLOPs, at the stated even routing the FLOPs are the same again (the routed FLOPs do not depend on the routing), and
fxmeter's graph of that tiny config costs exactly those FLOPs.  The guard refuses a ``moe_infer`` whose replaced
expression moved.  Slow: every stage against FlopCounterMode on the full-size meta model at the preset.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from click.testing import CliRunner

from fxmeter.cli.main import main
from fxmeter.model.registry import resolve_model
from fxmeter.model.workload import resolve

MODEL = "hidream-i1-full"

D = 20 * 128  # num_attention_heads x attention_head_dim = 2560
F_ROUTED = 6912  # HiDreamImageFeedForwardSwiGLU(D, 4 D): 256 * ceil(int(2 * 4 D / 3) / 256); also ff_t
F_SHARED = 3584  # the shared expert, hidden_dim 4 D // 2: 256 * ceil(int(2 * 2 D / 3) / 256)
EXPERTS, TOP_K = 4, 2


def transformer_flops(n: int, t: int) -> int:
    """Tensor-core FLOPs of one HiDreamImageTransformer2DModel forward (HiDream-I1-Full) at batch 1.

    ``n`` image tokens; each double block's text stream has ``3 t`` tokens (T5, the last Llama layer, its own
    Llama layer), the single blocks see ``n + 3 t``.  The MoE: a gate linear to 4 experts, the shared SwiGLU
    expert on every token, and ``top_k`` routed SwiGLU experts per token (``n x 2`` token-expert calls in all,
    whatever the routing)."""
    c = 3 * t
    s = n + c

    def moe(tokens: int) -> int:
        return 2 * tokens * D * EXPERTS + 3 * 2 * tokens * D * F_SHARED + TOP_K * tokens * 3 * 2 * D * F_ROUTED

    double = (2 * (n + c) * 4 * D * D  # q, k, v, out of each stream
              + 4 * s * s * D  # joint attention
              + 2 * D * 12 * D  # adaLN_modulation on the (1, D) embedding
              + moe(n) + 3 * 2 * c * D * F_ROUTED)  # image MoE, text SwiGLU
    single = 2 * s * 4 * D * D + 4 * s * s * D + 2 * D * 6 * D + moe(s)
    embed = (2 * n * 64 * D  # x_embedder (2x2x16 -> D)
             + 2 * 256 * D + 2 * D * D  # t_embedder
             + 2 * 2048 * D + 2 * D * D  # p_embedder (pooled CLIP-L + CLIP-G)
             + 49 * 2 * t * 4096 * D  # caption_projection: 48 Llama layers + T5
             + 2 * D * 2 * D + 2 * n * D * 64)  # final_layer
    return 16 * double + 32 * single + embed


def clip_flops(s: int, h: int, layers: int, ff: int) -> int:
    """A CLIP text tower at ``s`` tokens plus its projection of the pooled token (``h`` x ``h``)."""
    return layers * (4 * 2 * s * h * h + 4 * s * s * h + 2 * 2 * s * h * ff) + 2 * h * h


def t5_flops(s: int) -> int:
    """T5-v1.1-XXL encoder: 24 layers, 64 heads x 64, gated-GELU FFN 10240."""
    return 24 * (4 * 2 * s * 4096 * 4096 + 4 * s * s * 4096 + 3 * 2 * s * 4096 * 10240)


def llama_flops(s: int) -> int:
    """Llama-3.1-8B: 32 layers (q, o 4096 x 4096; k, v 4096 x 1024 (8 KV heads); SwiGLU 14336) + LM head 128256."""
    h, kv, ff = 4096, 1024, 14336
    return 32 * (2 * 2 * s * h * h + 2 * 2 * s * h * kv + 4 * s * s * h + 3 * 2 * s * h * ff) + 2 * s * h * 128256


def test_listed_with_its_preset() -> None:
    out = CliRunner().invoke(main, ["models"])
    assert out.exit_code == 0, out.output
    line = next(ln for ln in out.output.splitlines() if ln.startswith(MODEL + " "))
    assert "hidream-i1-full-1024" in line
    wl = resolve(None, resolve_model(MODEL).default_workload)
    assert (wl.name, wl.frames, wl.height, wl.width, wl.steps, wl.text_len, wl.guidance_scale) == (
        "hidream-i1-full-1024", 1, 1024, 1024, 50, 128, 5.0)


def test_geometry_of_the_preset() -> None:
    import torch

    m = resolve_model(MODEL)
    wl = resolve(None, m.default_workload)
    g = m.geometry(wl)
    # 1024 / (VAE 8 x patch 2) = 64 a side -> 4096 image tokens; 128 tokens from every text encoder
    assert (g.tokens, g.latent_shape, g.dims) == (
        4096, (1, 16, 128, 128), {"batch": 1, "patches_h": 64, "patches_w": 64, "text_len": 128})
    assert m.passes_per_step(wl) == 2  # CFG 5.0
    assert not m.adapter.supports_dynamic(m.config)
    kw = m.adapter.inputs(m.config, g.dims, torch.bfloat16)
    assert {k: (tuple(v.shape), v.dtype) for k, v in kw.items() if hasattr(v, "shape")} == {
        "hidden_states": ((1, 16, 128, 128), torch.bfloat16),
        "timesteps": ((1,), torch.float32),
        "encoder_hidden_states_t5": ((1, 128, 4096), torch.bfloat16),
        "encoder_hidden_states_llama3": ((32, 1, 128, 4096), torch.bfloat16),  # stack(hidden_states[1:])
        "pooled_embeds": ((1, 2048), torch.bfloat16)}
    # a non-square latent is padded to max_seq = 128 * 128 / 4 tokens by patchify
    assert m.geometry(resolve(None, m.default_workload, height=768, width=1344)).tokens == 4096


def test_stages_are_hidream_pipelines() -> None:
    m = resolve_model(MODEL)
    wl = resolve(None, m.default_workload)
    got = [(p.name, p.runs, dict(p.dims) if p.dims else None, p.adapter.name if p.adapter else None)
           for p in m.stages(wl)]
    text = {"batch": 1, "seq_len": 128}
    assert got == [
        ("text_encoder", 2, text, "clip-projected"),  # prompt + negative prompt
        ("text_encoder_2", 2, text, "clip-projected"),
        ("text_encoder_3", 2, text, "t5-masked"),
        ("text_encoder_4", 2, text, "llama-all-layers"),
        ("transformer", 100, None, None),  # 50 steps x 2 passes
        ("vae", 1, {"batch": 1, "latent_h": 128, "latent_w": 128}, "vae-decode"),
    ]
    assert [m.stage_component(p).config["_class_name"] for p in m.stages(wl)] == [
        "CLIPTextModelWithProjection", "CLIPTextModelWithProjection", "T5EncoderModel", "LlamaForCausalLM",
        "HiDreamImageTransformer2DModel", "AutoencoderKL"]
    assert [(p.name, p.runs) for p in m.stages(wl, batched_cfg=True)][4] == ("transformer", 50)  # as the pipeline


def test_trace_reads_the_shipped_traces_and_counts_by_hand(tmp_path: Any) -> None:
    out = CliRunner().invoke(main, ["trace", MODEL, "--output-root", str(tmp_path), "--run-id", "h", "--json",
                                    "--strict"])
    assert out.exit_code == 0, out.output
    data = json.loads((tmp_path / "h" / "static_analysis" / "hidream" / "report.json").read_text())
    assert data["trace"]["cache"] == "shipped"
    assert data["totals"]["per_forward"]["tensor_core_flops"] == transformer_flops(4096, 128) == 77_791_233_310_720
    per_run = {s["name"]: s["per_run"]["tensor_core_flops"] for s in data["pipeline"]["stages"]}
    assert per_run["text_encoder"] == clip_flops(128, 768, 12, 3072) == 22_348_431_360
    assert per_run["text_encoder_2"] == clip_flops(128, 1280, 32, 5120) == 163_748_904_960
    assert per_run["text_encoder_3"] == t5_flops(128) == 1_191_853_424_640
    assert per_run["text_encoder_4"] == llama_flops(128) == 1_929_782_493_184


# -- the routed experts, on CPU at a tiny size ------------------------------------------------------------------

TINY = {
    "_class_name": "HiDreamImageTransformer2DModel", "patch_size": 2, "in_channels": 4, "out_channels": 4,
    "num_layers": 1, "num_single_layers": 1, "attention_head_dim": 32, "num_attention_heads": 2,
    "caption_channels": [24, 24], "text_emb_dim": 16, "num_routed_experts": 4, "num_activated_experts": 2,
    "axes_dims_rope": [16, 8, 8], "max_resolution": [16, 16], "llama_layers": [0, 1],
}
TINY_DIMS = {"batch": 1, "patches_h": 4, "patches_w": 4, "text_len": 5}


def _tiny_inputs() -> dict[str, Any]:
    import torch

    g = torch.Generator().manual_seed(0)
    return {"hidden_states": torch.randn(1, 4, 8, 8, generator=g), "timesteps": torch.tensor([500.0]),
            "encoder_hidden_states_t5": torch.randn(1, 5, 24, generator=g),
            "encoder_hidden_states_llama3": torch.randn(2, 1, 5, 24, generator=g),
            "pooled_embeds": torch.randn(1, 16, generator=g), "return_dict": False}


def _flops(model: Any, kw: dict[str, Any]) -> tuple[Any, int]:
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    # the math backend: FlopCounterMode has no formula for the CPU flash kernel (verify's reference does the same)
    with FlopCounterMode(display=False) as fc, torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        out = model(**kw)[0]
    return out, fc.get_total_flops()


def test_routed_moe_is_diffusers_own_at_the_real_routing_and_costs_the_same_at_any() -> None:
    import torch
    from diffusers import HiDreamImageTransformer2DModel as Real

    from fxmeter.model.zoo.hidream import even_counts, routed_model_class, routed_moe_class

    cfg = {k: v for k, v in TINY.items() if not k.startswith("_")}
    torch.manual_seed(0)
    real = Real(**cfg).eval()
    ours = routed_model_class()(**cfg).eval()
    ours.load_state_dict(real.state_dict())
    moe = routed_moe_class()
    assert sum(type(m) is moe for m in ours.modules()) == 2  # the double block's and the single block's ff_i
    kw = _tiny_inputs()
    ref, ref_flops = _flops(real, kw)
    seen: list[list[int]] = []
    count = moe.tokens_per_expert

    def recorded(self: Any, flat: Any) -> Any:
        cum = count(self, flat)
        seen.append([int(c) for c in cum])
        return cum

    moe.routing = "real"
    moe.tokens_per_expert = recorded
    try:
        same, same_flops = _flops(ours, kw)
    finally:
        moe.routing = "even"
        moe.tokens_per_expert = count
    # the real routing of this input is not the even one (so the FLOP equality below says something)
    assert len(seen) == 2 and seen != [list(itertools.accumulate(even_counts(32, 4))),
                                       list(itertools.accumulate(even_counts(62, 4)))], seen
    assert torch.equal(same, ref)  # bit-identical: every op but the count expression is diffusers'
    assert same_flops == ref_flops > 0
    _, even_flops = _flops(ours, kw)  # the stated even routing: 16 + 31 tokens x 2 assignments over 4 experts
    assert even_flops == ref_flops


@pytest.mark.slow  # a static export of the tiny model (~5 s)
def test_the_graph_costs_the_tiny_config_as_flop_counter_does(tmp_path: Any) -> None:
    """fxmeter's export of the tiny config (even routing) against FlopCounterMode on diffusers' real class with its
    real routing, on CPU: the same tensor-core FLOPs."""
    import torch
    from diffusers import HiDreamImageTransformer2DModel as Real

    cfg_file = tmp_path / "config.json"
    cfg_file.write_text(json.dumps(TINY))
    out = CliRunner().invoke(main, ["trace", "--config", str(cfg_file), "-w", "hidream-i1-full-1024", "--height", "64",
                                    "--width", "64", "--text-len", "5", "--stages", "transformer", "--dtype", "fp32",
                                    "--output-root", str(tmp_path), "--run-id", "t", "--json", "--strict"])
    assert out.exit_code == 0, out.output
    data = json.loads(next((tmp_path / "t").rglob("report.json")).read_text())
    torch.manual_seed(0)
    real = Real(**{k: v for k, v in TINY.items() if not k.startswith("_")}).eval()
    _, ref_flops = _flops(real, _tiny_inputs())
    assert data["totals"]["per_forward"]["tensor_core_flops"] == ref_flops > 0


def test_guard_refuses_a_moved_expression(monkeypatch: pytest.MonkeyPatch) -> None:
    import fxmeter.model.zoo.hidream as z

    assert "self.tokens_per_expert(flat_expert_indices)" in z.routed_moe_infer_source()
    monkeypatch.setattr(z, "_ROUTING_REPLACEMENTS", (("tokens_per_expert = something_else()", "x"),))
    with pytest.raises(RuntimeError, match="occurs 0 times"):
        z.routed_moe_infer_source()


def test_even_counts() -> None:
    from fxmeter.model.zoo.hidream import even_counts

    assert even_counts(8192, 4) == [2048] * 4  # the preset's double block: 4096 tokens x top-2
    assert even_counts(62, 4) == [16, 16, 15, 15]


def _rule_cost(target: str, *args: object, out: tuple[Any, ...], **kwargs: object) -> Any:
    from fxmeter import rules

    rule = rules.lookup(target)
    assert rule is not None, target
    return rule.fn(rules.OpCall(target, args, kwargs, out))


def _t(*shape: int, dtype: str = "bfloat16") -> Any:
    from fxmeter.rules import TensorMeta

    return TensorMeta(tuple(shape), dtype, {"bfloat16": 2, "float32": 4, "int64": 8}[dtype])


def test_rules_of_the_moe_ops() -> None:
    from fxmeter.rules import Cost

    # MoEGate: topk(scores[4096, 4], k=2): 2 passes over 4096 x 4 scores = 32768 comparisons; reads 4096*4*4 B (fp32),
    # writes values 4096*2*4 B + indices 4096*2*8 B
    c = _rule_cost("aten.topk.default", _t(4096, 4, dtype="float32"), 2, -1, True, False,
                   out=(_t(4096, 2, dtype="float32"), _t(4096, 2, dtype="int64")))
    assert c == Cost(0, 4096 * 4 * 2, 4096 * 4 * 4, 4096 * 2 * 4 + 4096 * 2 * 8)
    # moe_infer: expert_cache[8192, 2560].scatter_reduce_(0, index[2048, 2560], src[2048, 2560], "sum"): one add per
    # src element (5,242,880); reads self + index (int64) + src, writes the cache
    n = 2048 * 2560
    c = _rule_cost("aten.scatter_reduce_.two", _t(8192, 2560), 0, _t(2048, 2560, dtype="int64"), _t(2048, 2560), "sum",
                   out=(_t(8192, 2560),))
    assert c == Cost(0, n, 8192 * 2560 * 2 + n * 8 + n * 2, 8192 * 2560 * 2)
    # "mean" adds one divide per output element
    c = _rule_cost("aten.scatter_reduce.two", _t(8, 4), 0, _t(2, 4, dtype="int64"), _t(2, 4), "mean", out=(_t(8, 4),))
    assert c.cuda_core_flops == 2 * 4 + 8 * 4


@pytest.mark.slow  # FlopCounterMode over every stage of the full-size models on meta at the preset
@pytest.mark.parametrize("stage", ["transformer", "text_encoder", "text_encoder_2", "text_encoder_3", "text_encoder_4",
                                   "vae"])
def test_stage_matches_flop_counter_at_the_preset(stage: str) -> None:
    from fxmeter.api import request, stage_inputs
    from fxmeter.estimate.evaluate import evaluate
    from fxmeter.verify.reference import run_stage_reference

    req = request(MODEL, stages=stage)
    inp = next(i for i in stage_inputs(req) if i.plan.name == stage)
    assert inp.source == "shipped"
    ours = evaluate(inp.model, inp.dims, nodes=False)
    assert ours.unmodeled == (), ours.unmodeled
    if stage == "transformer":
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        from fxmeter.model.capture import build_model

        net = build_model(req.model.config, "bfloat16")  # the routed class (model_class), even routing
        kw = req.model.adapter.inputs(req.model.config, dict(inp.dims), torch.bfloat16)
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            net(**kw)
        assert ours.total.tensor_core_flops == fc.get_total_flops() == transformer_flops(4096, 128)
        return
    comp = req.model.stage_component(inp.plan)
    ref = run_stage_reference(comp, dict(inp.dims), str(inp.model.meta["dtype"]), inp.plan.root)
    assert ours.total.tensor_core_flops == ref.total > 0
