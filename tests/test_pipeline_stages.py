"""The stages of each bundled pipeline: what runs, how often, at which length and dtype; and their counts.

The acceptance test: for every bundled model, every stage around the transformer (text and image
encoders, VAE encode and decode) counts exactly the tensor-core FLOPs FlopCounterMode counts on
the full stage on meta at the model's default workload (the transformers themselves are checked
by the verify tests).
"""

from __future__ import annotations

from typing import Any

import pytest

from fxmeter.model.registry import MODELS, resolve_model
from fxmeter.model.workload import resolve


def plans(model_id: str, workload: str | None = None, **overrides: Any) -> dict[str, Any]:
    m = resolve_model(model_id)
    wl = resolve(workload, m.default_workload, **overrides)
    return {p.name: p for p in m.stages(wl)}


def test_wan_t2v_runs_umt5_twice_and_decodes_once_in_fp32() -> None:
    p = plans("wan2.1-t2v-14b", "720p")
    assert list(p) == ["text_encoder", "transformer", "vae"]
    te, vae = p["text_encoder"], p["vae"]
    # prompt + negative prompt (guidance 5.0 > 1), padded to max_sequence_length 512, batch 1
    assert (te.runs, te.dims, te.dtype, te.adapter.name) == (2, {"batch": 1, "seq_len": 512}, None, "t5-masked")
    # 81 frames -> 21 latent frames; 720 x 1280 / 8 -> 90 x 160; the docstring's float32 VAE
    assert (vae.runs, vae.dims, vae.dtype) == (1, {"batch": 1, "latent_frames": 21, "latent_h": 90, "latent_w": 160}, "float32")
    assert p["transformer"].runs == 50 * 2


def test_no_cfg_means_one_text_encoder_call() -> None:
    assert plans("wan2.1-t2v-1.3b", guidance_scale=1.0)["text_encoder"].runs == 1


def test_wan_i2v_adds_the_clip_image_encoder_and_the_condition_encode() -> None:
    p = plans("wan2.1-i2v-14b-480p")
    assert list(p) == ["text_encoder", "image_encoder", "vae_encode", "transformer", "vae"]
    assert (p["image_encoder"].runs, p["image_encoder"].dtype, p["image_encoder"].dims) == (1, "float32", {"batch": 1})
    enc = p["vae_encode"]
    # one conditioning video of 81 frames at 480 x 832 -> latent 21 x 60 x 104, encoded on the VAE component
    assert (enc.component, enc.root, enc.dims) == ("vae", "vae", {"batch": 1, "latent_frames": 21, "latent_h": 60, "latent_w": 104})


def test_ti2v_decodes_with_the_48_channel_16x_vae() -> None:
    m = resolve_model("wan2.2-ti2v-5b")
    vae = m.component("vae")
    assert vae.config["z_dim"] == 48 and vae.config["scale_factor_spatial"] == 16
    # 1280 x 704 / 16 -> 80 x 44; 121 frames -> 31 latent frames
    assert plans("wan2.2-ti2v-5b")["vae"].dims == {"batch": 1, "latent_frames": 31, "latent_h": 44, "latent_w": 80}


def test_flux_sd3_hunyuan_cogvideox_ltx_plans() -> None:
    f = plans("flux.1-dev")
    # guidance-distilled: one call each; CLIP 77 tokens (no seq_len symbol), T5 512; VAE latent 1024 / 8 = 128
    assert [(n, s.runs) for n, s in f.items()] == [("text_encoder", 1), ("text_encoder_2", 1), ("transformer", 28), ("vae", 1)]
    assert f["text_encoder_2"].dims == {"batch": 1, "seq_len": 512} and f["vae"].dims == {"batch": 1, "latent_h": 128, "latent_w": 128}
    s = plans("sd3.5-large")
    # CFG 3.5: six encoder calls (three encoders x prompt and negative); T5 gets 333 - 77 = 256 tokens
    assert [s[n].runs for n in ("text_encoder", "text_encoder_2", "text_encoder_3")] == [2, 2, 2]
    assert s["text_encoder_3"].dims["seq_len"] == 256
    h = plans("hunyuanvideo")
    # Llama: 256 + the template's 95 tokens = 351; embedded guidance: one call; fp16 as the docstring loads it
    assert (h["text_encoder"].runs, h["text_encoder"].dims["seq_len"], h["text_encoder"].dtype) == (1, 351, "float16")
    assert h["vae"].dtype == "float16" and h["vae"].dims["latent_frames"] == 33
    c = plans("cogvideox-5b")
    assert (c["text_encoder"].runs, c["text_encoder"].dims["seq_len"]) == (2, 226)
    assert c["vae"].adapter.name == "vae-decode-cogvideox"
    lt = plans("ltx-video")
    # 161 frames / 8 -> 21 latent frames; 512 x 704 / 32 -> 16 x 22
    assert lt["vae"].dims == {"batch": 1, "latent_frames": 21, "latent_h": 16, "latent_w": 22}


def test_transformers_dtype_rule_keeps_t5_wo_in_fp32_only_under_fp16() -> None:
    import torch

    from fxmeter.model.adapters.stage import build_transformers

    cfg = {"_class_name": "T5EncoderModel", "d_model": 16, "d_kv": 4, "d_ff": 32, "num_layers": 2, "num_heads": 4,
           "vocab_size": 64, "feed_forward_proj": "gated-gelu", "is_gated_act": True}
    bf16 = dict(build_transformers(cfg, "bfloat16").named_parameters())
    fp16 = dict(build_transformers(cfg, "float16").named_parameters())
    wo = "encoder.block.0.layer.1.DenseReluDense.wo.weight"
    # T5's _keep_in_fp32_modules = ["wo"]: honoured for fp16 only (transformers' _get_dtype_plan)
    assert bf16[wo].dtype == torch.bfloat16 and fp16[wo].dtype == torch.float32
    assert fp16["encoder.block.0.layer.1.DenseReluDense.wi_0.weight"].dtype == torch.float16


def _stages() -> list[tuple[str, str]]:
    seen: set[tuple[Any, ...]] = set()
    out = []
    for mid in MODELS:
        m = resolve_model(mid)
        wl = resolve(None, m.default_workload)
        for p in m.stages(wl):
            if p.denoiser:
                continue
            comp = m.stage_component(p)
            key = (comp.config_sha256, comp.adapter.name, tuple(sorted((p.dims or {}).items())), p.dtype)
            if key not in seen:
                seen.add(key)
                out.append((mid, p.name))
    return out


@pytest.mark.slow  # FlopCounterMode over every full stage on meta (the VAEs at their default frame counts)
@pytest.mark.parametrize(("model_id", "stage"), _stages())
def test_every_stage_counts_what_flop_counter_counts(model_id: str, stage: str) -> None:
    """fxmeter's tensor-core FLOPs of the stage (shipped trace, or traced now) == FlopCounterMode on the full meta stage."""
    import fxmeter
    from fxmeter.api import request, stage_inputs
    from fxmeter.estimate.evaluate import evaluate
    from fxmeter.verify.reference import run_stage_reference

    req = request(model_id, stages=stage)
    inp = next(i for i in stage_inputs(req) if i.plan.name == stage)
    ours = evaluate(inp.model, inp.dims)
    assert ours.unmodeled == (), ours.unmodeled
    comp = req.model.stage_component(inp.plan)
    ref = run_stage_reference(comp, dict(inp.dims), str(inp.model.meta["dtype"]), inp.plan.root)
    assert ours.total.tensor_core_flops == ref.total > 0
    # every module FlopCounterMode saw with FLOPs is one of ours with the same count (5% gate: here exact)
    by_id = {m.id: m.total.tensor_core_flops for m in ours.modules}
    for mid, n in ref.modules.items():
        if n and mid in by_id:
            assert by_id[mid] == n, mid
    assert fxmeter is not None


def test_t5_is_traced_whole_block_0_alone_computes_the_position_bias() -> None:
    from fxmeter.api import request, stage_inputs
    from fxmeter.estimate.evaluate import evaluate

    req = request("flux.1-dev", stages="text_encoder_2")
    inp = next(i for i in stage_inputs(req) if i.plan.name == "text_encoder_2")
    assert inp.model.meta["replicas"] == {}  # no block replication
    c = evaluate(inp.model, inp.dims)
    blocks = {m.id: m.total for m in c.modules if m.id.count(".") == 3 and ".block." in m.id}
    assert len(blocks) == 24
    b0, b1 = blocks["text_encoder_2.encoder.block.0"], blocks["text_encoder_2.encoder.block.1"]
    assert b0.tensor_core_flops == b1.tensor_core_flops  # the same matmuls
    assert b0.bytes_written > b1.bytes_written  # block 0 also builds the (1, 64, L, L) relative position bias
    assert all(blocks[f"text_encoder_2.encoder.block.{i}"] == b1 for i in range(2, 24))


def test_module_ids_carry_the_stage_and_a_decode_reads_the_decoder_only() -> None:
    from fxmeter.api import request, stage_inputs
    from fxmeter.estimate.evaluate import evaluate

    req = request("flux.1-dev", stages="vae")
    inp = next(i for i in stage_inputs(req) if i.plan.name == "vae")
    c = evaluate(inp.model, inp.dims)
    ids = [m.id for m in c.modules]
    assert ids[0] == "vae" and "vae.decoder.up_blocks.0.upsamplers.0.conv" in ids and "vae.encoder" in ids
    # the whole VAE is loaded (83,819,683 parameters in bf16), the decode reads the decoder and post_quant_conv
    assert c.weights.weight_bytes == 83_819_683 * 2
    assert 0 < inp.model.meta["graph_weight_bytes"] < c.weights.weight_bytes
    enc = next(m for m in c.modules if m.id == "vae.encoder")
    assert enc.total.flops == 0 and enc.parameters > 0
