"""The stages around the denoising loop of each diffusers pipeline, as data (diffusers 0.42.1).

Each function returns ``(before, after)``: the stages that run before the loop (text
encoders, image encoder, VAE encode of a conditioning video) and after it (VAE decode),
each a :class:`~fxmeter.model.pipeline.StagePlan` naming its component, the call
(``adapter``), how many times one generation runs it, its symbol values and the dtype the
pipeline loads it in (None: the pipeline's ``torch_dtype``, fxmeter's ``--dtype``).

Text encoders run on the prompt batch (``wl.batch``) at the pipeline's padded length; with
classifier-free guidance the pipelines that encode the negative prompt (Wan, SD3,
CogVideoX, LTX-Video) call each encoder a second time (``runs`` 2).  Flux and
HunyuanVideo are guidance-distilled: one call (a negative prompt is encoded only with
``true_cfg_scale > 1``, not a default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fxmeter.model.adapters.base import Adapter, Geometry
from fxmeter.model.adapters.image_encoders import CLIP_VISION
from fxmeter.model.adapters.text_encoders import (
    CLIP_POOLED,
    CLIP_SD3,
    CLIP_TOKENS,
    HUNYUAN_CROP_START,
    LLAMA_HUNYUAN,
    T5_PLAIN,
    UMT5_MASKED,
)
from fxmeter.model.adapters.vaes import VAE_DECODE, VAE_DECODE_COGVIDEOX, VAE_DECODE_LTX, VAE_ENCODE
from fxmeter.model.pipeline import StagePlan
from fxmeter.model.workload import Workload

Plans = tuple[tuple[StagePlan, ...], tuple[StagePlan, ...]]


def text(name: str, adapter: Adapter, what: str, runs: int, dims: Mapping[str, int], dtype: str | None = None,
         notes: tuple[str, ...] = ()) -> StagePlan:
    why = "prompt and negative prompt" if runs == 2 else "prompt"
    return StagePlan(name, name, f"text encoder ({what}; {why})", runs=runs, root=name, adapter=adapter,
                     dims=dict(dims), dtype=dtype, notes=notes)


def decode(adapter: Adapter, what: str, dims: Mapping[str, int], dtype: str | None = None,
           notes: tuple[str, ...] = ()) -> StagePlan:
    return StagePlan("vae", "vae", f"VAE decode ({what})", runs=1, root="vae", adapter=adapter, dims=dict(dims),
                     dtype=dtype, notes=notes)


def cfg_runs(wl: Workload) -> int:
    """Encoder calls per prompt: 2 with classifier-free guidance (the negative prompt too), else 1."""
    return 2 if wl.guidance_scale > 1.0 else 1


def wan(config: Mapping[str, Any], wl: Workload, g: Geometry, *, i2v: bool, clip: bool) -> Plans:
    """WanPipeline / WanImageToVideoPipeline: UMT5 (512 tokens), [[CLIP image] + VAE encode], VAE decode.

    ``i2v``: WanImageToVideoPipeline encodes the condition video; ``clip``: and the image with its CLIP
    image encoder (Wan2.1-I2V, ``image_dim`` set; Wan2.2-I2V-A14B has none: ``transformer.config.image_dim``
    is None, so the pipeline skips ``encode_image``).

    The pipelines' docstrings load the VAE (and the CLIP image encoder) in float32 and the rest in
    the pipeline dtype (``AutoencoderKLWan.from_pretrained(..., torch_dtype=torch.float32)``).
    """
    b, _, lf, lh, lw = g.latent_shape
    before = [text("text_encoder", UMT5_MASKED, "UMT5-XXL, masked, {} tokens".format(g.dims["text_len"]), cfg_runs(wl),
                   {"batch": b, "seq_len": g.dims["text_len"]})]
    if i2v and clip:
        before.append(StagePlan("image_encoder", "image_encoder", "image encoder (CLIP ViT-H/14, 224 px, penultimate layer)",
                                runs=1, root="image_encoder", adapter=CLIP_VISION, dims={"batch": 1}, dtype="float32",
                                notes=("image_encoder: one conditioning image (WanImageToVideoPipeline.encode_image), "
                                       "float32 as the pipeline's docstring loads it",)))
    if i2v:
        before.append(StagePlan("vae_encode", "vae", f"VAE encode of the {g.frames}-frame condition video (image + zeros)",
                                runs=1, root="vae", adapter=VAE_ENCODE,
                                dims={"batch": 1, "latent_frames": lf, "latent_h": lh, "latent_w": lw}, dtype="float32",
                                notes=("vae_encode: WanImageToVideoPipeline.prepare_latents encodes the image followed by "
                                       f"{g.frames - 1} zero frames, whole, once (its latents are repeated to the batch)",)))
    after = [decode(VAE_DECODE, f"AutoencoderKLWan, {lf} latent frames one at a time with its causal cache", {
        "batch": b, "latent_frames": lf, "latent_h": lh, "latent_w": lw}, "float32",
        notes=("vae: float32 as the WanPipeline docstring loads it (--stage-dtype vae=bf16 to change); tiling off "
               "(--vae-tiling on: vae.enable_tiling()'s tiles)",))]
    return tuple(before), tuple(after)


def flux(config: Mapping[str, Any], wl: Workload, g: Geometry) -> Plans:
    """FluxPipeline: CLIP-L pooled (77 tokens) + T5-XXL (``max_sequence_length``), one call each; VAE decode."""
    b = g.dims["batch"]
    before = (text("text_encoder", CLIP_POOLED, f"CLIP-L pooled, {CLIP_TOKENS} tokens", 1, {"batch": b}),
              text("text_encoder_2", T5_PLAIN, f"T5-XXL, {g.dims['text_len']} tokens", 1,
                   {"batch": b, "seq_len": g.dims["text_len"]}))
    after = (decode(VAE_DECODE, "AutoencoderKL, 16 channels", {"batch": b, "latent_h": wl.height // 8,
                                                               "latent_w": wl.width // 8}),)
    return before, after


def sd3(config: Mapping[str, Any], wl: Workload, g: Geometry) -> Plans:
    """StableDiffusion3Pipeline: CLIP-L, CLIP-G (77 tokens, pooled + penultimate), T5-XXL (text_len - 77); VAE decode."""
    b, runs = g.dims["batch"], cfg_runs(wl)
    t5 = max(g.dims["text_len"] - CLIP_TOKENS, 1)
    before = (text("text_encoder", CLIP_SD3, f"CLIP-L, {CLIP_TOKENS} tokens", runs, {"batch": b}),
              text("text_encoder_2", CLIP_SD3, f"CLIP-G, {CLIP_TOKENS} tokens", runs, {"batch": b}),
              text("text_encoder_3", T5_PLAIN, f"T5-XXL, {t5} tokens", runs, {"batch": b, "seq_len": t5}))
    after = (decode(VAE_DECODE, "AutoencoderKL, 16 channels", {"batch": b, "latent_h": g.latent_shape[2],
                                                               "latent_w": g.latent_shape[3]}),)
    return before, after


def hunyuan(config: Mapping[str, Any], wl: Workload, g: Geometry) -> Plans:
    """HunyuanVideoPipeline: Llama (template + text_len tokens) and CLIP-L pooled, once; VAE decode (framewise).

    The pipeline's docstring loads the pipeline in float16 (the transformer in bfloat16): the
    text encoders and the VAE run in float16.
    """
    b, _, lf, lh, lw = g.latent_shape
    n = g.dims["text_len"] + HUNYUAN_CROP_START
    before = (text("text_encoder", LLAMA_HUNYUAN, f"Llama-3-8B, {n} tokens (template {HUNYUAN_CROP_START} + "
                   f"{g.dims['text_len']})", 1, {"batch": b, "seq_len": n}, "float16"),
              text("text_encoder_2", CLIP_POOLED, f"CLIP-L pooled, {CLIP_TOKENS} tokens", 1, {"batch": b}, "float16"))
    after = (decode(VAE_DECODE, "AutoencoderKLHunyuanVideo, framewise (temporal tiles) as by default",
                    {"batch": b, "latent_frames": lf, "latent_h": lh, "latent_w": lw}, "float16",
                    notes=("vae: float16 as the HunyuanVideoPipeline docstring loads the pipeline; default framewise "
                           "decoding; the docstring's vae.enable_tiling() (spatial tiles): --vae-tiling on",)),)
    return before, after


def cogvideox(config: Mapping[str, Any], wl: Workload, g: Geometry) -> Plans:
    """CogVideoXPipeline: T5-XXL (226 tokens), prompt and negative; VAE decode in 2-latent-frame batches."""
    b, lf, _, lh, lw = g.latent_shape
    before = (text("text_encoder", T5_PLAIN, f"T5-XXL, {g.dims['text_len']} tokens", cfg_runs(wl),
                   {"batch": b, "seq_len": g.dims["text_len"]}),)
    after = (decode(VAE_DECODE_COGVIDEOX, "AutoencoderKLCogVideoX, 2 latent frames per decoder call",
                    {"batch": b, "latent_frames": lf, "latent_h": lh, "latent_w": lw}),)
    return before, after


def ltx(config: Mapping[str, Any], wl: Workload, g: Geometry) -> Plans:
    """LTXPipeline: T5-XXL (128 tokens), prompt and negative; VAE decode in one pass."""
    b = g.dims["batch"]
    before = (text("text_encoder", T5_PLAIN, f"T5-XXL, {g.dims['text_len']} tokens", cfg_runs(wl),
                   {"batch": b, "seq_len": g.dims["text_len"]}),)
    after = (decode(VAE_DECODE_LTX, "AutoencoderKLLTXVideo, one pass", {
        "batch": b, "latent_frames": g.dims["latent_frames"], "latent_h": g.dims["latent_h"],
        "latent_w": g.dims["latent_w"]}),)
    return before, after
