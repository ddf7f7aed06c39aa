"""Qwen-Image-2.1 (``fxmeter/model/zoo/qwen_image21.py``): the model as ``QwenImage21Pipeline`` runs it.

Fast lane: listed, the preset's geometry written out, the pipeline's stages (Qwen3-VL, step 0 prefilling the KV
cache, the 39 cached steps, the VAE), a report from the shipped traces, the patched forward against the real one on
CPU (a tiny model, the pipeline's real text-to-image ``img_mask``: identical output in every cache mode, the same
FlopCounterMode FLOPs), the guard on the replaced expressions.  Slow: every stage at the preset against
``FlopCounterMode`` on meta.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import fxmeter
from fxmeter.cli.main import main
from fxmeter.errors import WorkloadError
from fxmeter.model.registry import resolve_model
from fxmeter.model.workload import resolve

MODEL = "qwen-image-2.1"

# QwenImage21Transformer2DModel(4096 = 32 heads x 128, 32 blocks, SwiGLU 3 x 4096, context 4096, 64 channels), no biases:
#   img_in 64 x 4096                                                      =        262,144
#   txt_in: zero-centred RMSNorm 4096 + 2 x 4096^2                         =     33,558,528
#   time_text_embed: 256 -> 4096 -> 4096 (sample_proj_bias=False)          =     17,825,792
#   modulation (shared): 4096 -> 4 x 4096                                  =     67,108,864
#   block: q/k/v/out 4 x 4096^2, q/k RMSNorm 2 x 128, SwiGLU 3 x 4096 x 12288 = 218,104,064 (x 32 = 6,979,330,048)
#   norm_out.linear 4096^2 16,777,216; proj_out 4096 x 64 262,144
TRANSFORMER_PARAMETERS = 7_115_124_736
D, S, N, T = 4096, 4224, 4096, 128  # hidden; step 0's joint tokens (128 text + 4,096 image); image; text


def test_listed_with_its_preset() -> None:
    out = CliRunner().invoke(main, ["models"]).output
    assert MODEL in out and "qwen-image-2.1-1024" in out
    assert "qwen-image-2.1-1024" in CliRunner().invoke(main, ["workloads"]).output


def test_preset_geometry() -> None:
    rm = resolve_model(MODEL)
    wl = resolve(None, rm.default_workload)
    # QwenImage21Pipeline.__call__ defaults: output_resolution 1024, 40 steps, true_cfg_scale 1.0
    assert (wl.height, wl.width, wl.steps, wl.text_len, wl.guidance_scale) == (1024, 1024, 40, 128, 1.0)
    g = rm.geometry(wl)
    # VAE 16x, no patching: 64 x 64 = 4,096 tokens of 64 channels
    assert g.latent_shape == (1, 4096, 64)
    assert g.tokens == 4096
    assert g.dims == {"batch": 1, "image_tokens": 4096, "latent_h": 64, "latent_w": 64, "text_len": 128}
    assert rm.passes_per_step(wl) == 1
    with pytest.raises(WorkloadError, match="divisible by 32"):
        rm.geometry(resolve(None, rm.default_workload, height=1040))
    with pytest.raises(WorkloadError, match="frames must be 1"):
        rm.geometry(resolve(None, rm.default_workload, frames=5))


def test_stages_as_the_pipeline_runs_them() -> None:
    rm = resolve_model(MODEL)
    plans = rm.stages(resolve(None, rm.default_workload))
    # Qwen3-VL on the 14 system-turn + 128 tokens; step 0 extracts the KV cache, steps 1..39 decode from it
    assert [(p.name, p.component, p.root, p.runs, p.steps, dict(p.dims or {})) for p in plans] == [
        ("text_encoder", "text_encoder", "text_encoder", 1, 0, {"batch": 1, "seq_len": 142}),
        ("transformer", "transformer", "transformer", 1, 1, {}),
        ("transformer_cached", "transformer", "transformer_cached", 39, 39, {}),
        ("vae", "vae", "vae", 1, 0, {"batch": 1, "latent_frames": 1, "latent_h": 64, "latent_w": 64}),
    ]
    assert [getattr(p.adapter, "kv_mode", None) for p in plans[1:3]] == [None, "cached"]
    assert rm.adapter.kv_mode == "extract"
    # true CFG with a negative prompt: a second encoder call and a second, separate forward per step
    cfg = rm.stages(resolve(None, rm.default_workload, guidance_scale=4.0))
    assert [(p.name, p.runs) for p in cfg] == [("text_encoder", 2), ("transformer", 2), ("transformer_cached", 78),
                                               ("vae", 1)]
    assert [(p.name, p.runs) for p in rm.stages(resolve(None, rm.default_workload, steps=1))] == [
        ("text_encoder", 1), ("transformer", 1), ("vae", 1)]
    assert {c: rm.components[c].config["_class_name"] for c in ("text_encoder", "vae")} == {
        "text_encoder": "Qwen3VLForConditionalGeneration", "vae": "AutoencoderKLQwenImage21"}


def test_report_from_the_shipped_traces() -> None:
    d = fxmeter.trace(MODEL, run_id="zoo-qwen-image21").data
    assert d["trace"]["cache"] == "shipped" and d["trace"]["mode"] == "static"
    assert d["model"]["parameters"] == TRANSFORMER_PARAMETERS
    assert d["workload"]["tokens"] == 4096 and d["unmodeled_ops"] == []
    stages = d["pipeline"]["stages"]
    assert [(s["name"], s["class"], s["runs"]) for s in stages] == [
        ("text_encoder", "Qwen3VLForConditionalGeneration", 1), ("transformer", "QwenImage21Transformer2DModel", 1),
        ("transformer_cached", "QwenImage21Transformer2DModel", 39), ("vae", "AutoencoderKLQwenImage21", 1)]
    assert all(s["trace"]["cache"] == "shipped" and s["unmodeled_ops"] == [] for s in stages)
    st = {s["name"]: s["per_run"]["tensor_core_flops"] for s in stages}
    assert st["transformer"] == d["totals"]["per_forward"]["tensor_core_flops"]
    # written out: 32 blocks of q/k/v/out (4 x 2 S D^2) and SwiGLU (3 x 2 S D 3D) over the tokens each pass runs;
    # attention 4 D x (text T x T causal-segment keys + image N x (T + N) keys) in both passes (the text's K/V are
    # cached, the image queries see them); embeddings: img_in on N, txt_in on T (2 x 4096^2, only at step 0),
    # the time MLP and shared modulation on B + 1 = 2 rows, norm_out.linear on 2 rows, proj_out on the tokens
    time_mod = 2 * 2 * (256 * D + D * D + 4 * D * D + D * D)

    def forward(tokens: int, attn: int, txt: int) -> int:
        return (32 * (8 * tokens * D * D + 6 * tokens * D * 3 * D + attn) + 2 * N * 64 * D + txt + time_mod
                + 2 * tokens * D * 64)
    assert st["transformer"] == forward(S, 4 * D * (T * T + N * S), 2 * T * 2 * D * D)
    assert st["transformer_cached"] == forward(N, 4 * D * N * S, 2 * T * 2 * D * D)


def _tiny_config() -> dict[str, int | float | bool | list[int]]:
    return {"patch_size": 1, "in_channels": 8, "out_channels": 8, "num_layers": 2, "attention_head_dim": 16,
            "num_attention_heads": 2, "context_in_dim": 24, "mlp_ratio": 3, "axes_dims_rope": [4, 6, 6],
            "eps": 1e-6, "causal_condition": True}


def test_patched_forward_is_the_real_forward_in_every_cache_mode() -> None:
    import torch
    from diffusers import QwenImage21Transformer2DModel
    from diffusers.models.transformers.transformer_qwenimage21 import QwenImage21KVCache
    from torch.utils.flop_counter import FlopCounterMode

    from fxmeter.model.zoo.qwen_image21 import qwen_image21_class

    torch.manual_seed(0)
    real = QwenImage21Transformer2DModel(**_tiny_config()).eval()
    patched = qwen_image21_class()(**_tiny_config()).eval()
    patched.load_state_dict(real.state_dict())
    assert type(patched).__name__ == type(real).__name__ and type(patched.pos_embed).__name__ == "QwenImage21Rope"
    b, t, h, w = 2, 7, 4, 6
    # the pipeline's text-to-image img_mask: the prompt's image_pad_mask (no image slots), then N / 4 target slots
    img_mask = torch.cat([torch.zeros(b, t, dtype=torch.bool), torch.ones(b, h * w // 4, dtype=torch.bool)], dim=1)
    kw = {"hidden_states": torch.randn(b, h * w, 8), "encoder_hidden_states": torch.randn(b, t, 24),
          "img_shapes": [[(1, h, w)]] * b, "img_mask": img_mask, "return_dict": False}
    caches = {"real": QwenImage21KVCache(2), "patched": QwenImage21KVCache(2)}
    with torch.no_grad():
        for mode, step in ((None, 0.9), ("extract", 0.9), ("cached", 0.4)):
            timestep = torch.full((b,), step)
            out, flops = {}, {}
            for name, net in (("real", real), ("patched", patched)):
                cache = caches[name] if mode else None
                with FlopCounterMode(display=False) as counter:
                    out[name] = net(**kw, timestep=timestep, kv_cache=cache, kv_cache_mode=mode)[0]
                flops[name] = counter.get_total_flops()
            assert torch.equal(out["patched"], out["real"]), mode
            assert flops["patched"] == flops["real"] > 0, mode
            assert out["real"].shape == (b, h * w if mode == "cached" else t + h * w, 8)
        # the caches step 0 filled are the same tensors
        for a, c in zip(caches["real"].layer_caches, caches["patched"].layer_caches):
            assert torch.equal(a.k, c.k) and torch.equal(a.v, c.v) and a.k.shape == (b, t, 2, 16)


def test_a_changed_source_builds_nothing() -> None:
    from diffusers.models.transformers.transformer_qwenimage21 import QwenImage21Rope

    from fxmeter.model.zoo.qwen_image21 import _ROPE_REPLACEMENTS, _patched

    assert _patched(QwenImage21Rope.forward, _ROPE_REPLACEMENTS) is not None
    with pytest.raises(RuntimeError, match="occurs 0 times"):
        _patched(QwenImage21Rope.forward, (("image_pad_mask.nonzero()", "x"),))


@pytest.mark.slow  # FlopCounterMode over the full stages on meta (Qwen3-VL's exported graph, both transformer passes)
def test_every_stage_counts_what_flop_counter_counts() -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fxmeter.api import request, stage_inputs
    from fxmeter.estimate.evaluate import evaluate
    from fxmeter.model.capture import build_model
    from fxmeter.model.zoo.qwen_image21 import qwen_image21_class
    from fxmeter.verify.reference import run_stage_reference

    rm = resolve_model(MODEL)
    with torch.device("meta"):
        net = qwen_image21_class()(**{k: v for k, v in rm.config.items() if not k.startswith("_")})
    assert sum(p.numel() for p in net.parameters()) == TRANSFORMER_PARAMETERS
    req = request(MODEL)
    seen: dict[str, int] = {}
    for inp in stage_inputs(req):
        ours = evaluate(inp.model, inp.dims)
        assert ours.unmodeled == ()
        if inp.plan.denoiser:
            adapter = inp.plan.adapter or rm.adapter
            model = build_model(rm.config, "bfloat16")
            kw = adapter.inputs(rm.config, dict(inp.dims), torch.bfloat16)
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                model(**kw)
            ref_total = int(counter.get_total_flops())
        else:
            comp = req.model.stage_component(inp.plan)
            ref_total = run_stage_reference(comp, dict(inp.dims), str(inp.model.meta["dtype"]), inp.plan.root).total
        assert ours.total.tensor_core_flops == ref_total > 0, inp.plan.name
        seen[inp.plan.name] = ref_total
    assert set(seen) == {"text_encoder", "transformer", "transformer_cached", "vae"}
    assert seen["transformer"] > seen["transformer_cached"]
