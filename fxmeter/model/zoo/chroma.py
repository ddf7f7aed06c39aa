"""Chroma (diffusers ``ChromaTransformer2DModel``), as ``ChromaPipeline`` drives it (diffusers 0.42.1).

Chroma is FLUX.1-schnell's architecture with the per-block modulation replaced by one "distilled guidance
layer" (``ChromaApproximator``: an MLP run over ``3 * num_single_layers + 12 * num_layers + 2`` positions,
one per modulation vector) and no CLIP text encoder.  What ``pipelines/chroma/pipeline_chroma.py`` does:

* **Latents.** The FLUX.1 VAE (``AutoencoderKL``, 16 channels, 8x) and 2x2 packing: an HxW image has
  ``(H/16) * (W/16)`` image tokens of ``in_channels`` = 64 features; ``img_ids`` ``(tokens, 3)`` and
  ``txt_ids`` (zeros, ``(text_len, 3)``) in the latents' dtype.
* **Text.** T5-XXL at ``max_sequence_length`` 512 (``padding="max_length"``), called with the padding mask:
  ``text_encoder(ids, output_hidden_states=False, attention_mask=mask)[0]`` (fxmeter's ``t5-masked`` call);
  with classifier-free guidance (``guidance_scale`` > 1, 5.0 by default) the negative prompt too (2 calls).
* **Denoiser.** ``timestep = t.expand(batch).to(latents.dtype) / 1000``; the transformer also takes
  ``attention_mask``: the text mask (all but the first padding token) concatenated with ones for the image
  tokens, ``(batch, text_len + image_tokens)`` in the latents' dtype (``_prepare_attention_mask``); two
  passes per step under CFG (``do_classifier_free_guidance``: ``guidance_scale > 1``).  The mask's length is
  a *sum* of two workload symbols, which a dynamic export cannot name, so the transformer is exported once
  per workload (static; the preset's trace ships).  The approximator's length depends on the block counts,
  so the blocks are traced whole (no replication: a one-block copy would change the approximator).
* **VAE.** ``vae.decode(latents / scaling_factor + shift_factor, return_dict=False)[0]`` on
  ``(batch, 16, H/8, W/8)``.

Config: only class defaults are available here.  ``ChromaTransformer2DModel``'s defaults in diffusers 0.42.1
(``models/transformers/transformer_chroma.py``, whose docstring names ``lodestones/Chroma1-HD``), which the
diffusers Chroma docs load as ``ChromaPipeline.from_pretrained("lodestones/Chroma1-HD")``; InvokeAI's Chroma
loader writes the same values as its ``CHROMA_TRANSFORMER_CONFIG``.  The T5-XXL encoder and the FLUX.1 VAE
are the configs bundled for FLUX.1-dev (``flux.1-dev/text_encoder_2``, ``flux.1-dev/vae``): Chroma1-HD loads
the same ``T5EncoderModel`` (t5-v1_1-xxl) and FLUX.1 ``AutoencoderKL``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fxmeter.model.adapters._common import ANY, attention_dims, divisible, image_only, joint_dit_categories, tp_roles
from fxmeter.model.adapters.base import Adapter, Geometry, SymbolAxis
from fxmeter.model.adapters.plans import cfg_runs, decode, text
from fxmeter.model.adapters.text_encoders import UMT5_MASKED
from fxmeter.model.adapters.vaes import VAE_DECODE
from fxmeter.model.pipeline import ModelSpec, StagePlan
from fxmeter.model.workload import Workload

if TYPE_CHECKING:
    import torch

VAE_SCALE = 8
PACK = 2
TEXT_LEN = 512  # ChromaPipeline max_sequence_length (at most 512)
_BLOCKS = ("transformer_blocks", "single_transformer_blocks")


@dataclass
class ChromaAdapter(Adapter):
    name: str = "chroma"
    diffusers_class: str = "ChromaTransformer2DModel"
    #: no replication: the approximator's length is 3 * num_single_layers + 12 * num_layers + 2
    repeated: dict[str, str] = field(default_factory=dict)
    symbols: tuple[str, ...] = ("batch", "image_tokens", "text_len")
    required_keys: tuple[str, ...] = (
        "in_channels", "num_layers", "num_single_layers", "attention_head_dim", "num_attention_heads",
        "joint_attention_dim",
    )
    category_rules: tuple[tuple[str, frozenset[str] | None, str], ...] = (
        (r"^(time_text_embed|distilled_guidance_layer)(\.|$)", ANY, "modulation"),
        *joint_dit_categories(_BLOCKS, r"pos_embed|context_embedder|x_embedder"),
    )
    default_slug: str = "chroma"
    family: str = "chroma"
    default_workload: str | None = "chroma-1024"
    offload_seq: tuple[str, ...] = ("text_encoder", "image_encoder", "transformer", "vae")
    positive_keys: tuple[str, ...] = (
        "patch_size", "in_channels", "num_layers", "num_single_layers", "attention_head_dim", "num_attention_heads",
        "joint_attention_dim", "axes_dims_rope", "approximator_num_channels", "approximator_hidden_dim",
        "approximator_layers",
    )
    sequence_symbols: tuple[str, ...] = ("image_tokens",)
    joint_text_symbols: tuple[str, ...] = ("text_len",)
    tp_roles: tuple[tuple[str, str], ...] = tp_roles(_BLOCKS)

    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        divisible(wl.height, wl.width, VAE_SCALE * PACK, "VAE 8 x 2x2 packing")
        h, w = wl.height // (VAE_SCALE * PACK), wl.width // (VAE_SCALE * PACK)
        notes = image_only(wl.frames, "Chroma")
        dims = {"batch": wl.batch, "image_tokens": h * w, "text_len": wl.text_len}
        return Geometry(dims, (wl.batch, h * w, int(config["in_channels"])), h * w, 1, tuple(notes))

    def model_dims(self, config: dict[str, Any], geometry: Geometry) -> dict[str, int | None] | None:
        """FLUX.1's blocks: heads x 128, FFN 4 x hidden (``FeedForward`` and the single blocks' ``mlp_ratio`` 4.0)."""
        layers = int(config["num_layers"]) + int(config["num_single_layers"])
        return attention_dims(config, layers, geometry.dims["text_len"], geometry.tokens)

    def supports_dynamic(self, config: dict[str, Any]) -> bool:
        """False: ``attention_mask`` is ``text_len + image_tokens`` long (a sum of symbols)."""
        return False

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        b, n, t = dims["batch"], dims["image_tokens"], dims["text_len"]

        def e(*shape: int) -> torch.Tensor:
            return torch.empty(*shape, device="meta", dtype=dtype)

        return {
            "hidden_states": e(b, n, int(config["in_channels"])),
            "encoder_hidden_states": e(b, t, int(config["joint_attention_dim"])),
            "timestep": e(b),  # t.expand(batch).to(latents.dtype) / 1000
            "img_ids": e(n, 3),  # _prepare_latent_image_ids(...).to(dtype): 2-D
            "txt_ids": e(t, 3),  # torch.zeros(text_len, 3).to(dtype)
            # _prepare_attention_mask: cat([text mask (dtype), ones(batch, image_tokens, bool)]) -> dtype
            "attention_mask": e(b, t + n),
            "return_dict": False,
        }

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        """The inputs' axes (the export is static: ``attention_mask``'s ``text_len + image_tokens`` has no axis)."""
        return {
            "hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("image_tokens")},
            "encoder_hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("text_len")},
            "timestep": {0: SymbolAxis("batch")},
            "img_ids": {0: SymbolAxis("image_tokens")},
            "txt_ids": {0: SymbolAxis("text_len")},
            "attention_mask": {0: SymbolAxis("batch")},
        }

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 1024), "image_tokens": (1, 1 << 20), "text_len": (1, 1 << 16)}

    def pipeline_stages(self, config: dict[str, Any], wl: Workload,
                        geometry: Geometry) -> tuple[tuple[StagePlan, ...], tuple[StagePlan, ...]]:
        """ChromaPipeline: T5-XXL with its padding mask (prompt, and the negative prompt under CFG); VAE decode."""
        b, n = geometry.dims["batch"], geometry.dims["text_len"]
        before = (text("text_encoder", UMT5_MASKED, f"T5-XXL, masked, {n} tokens", cfg_runs(wl),
                       {"batch": b, "seq_len": n}),)
        after = (decode(VAE_DECODE, "AutoencoderKL, 16 channels",
                        {"batch": b, "latent_h": wl.height // VAE_SCALE, "latent_w": wl.width // VAE_SCALE}),)
        return before, after


ADAPTERS = (ChromaAdapter(),)

MODELS = (
    ModelSpec("chroma", "chroma/transformer/config.json", "chroma", "chroma-1024",
              "https://github.com/huggingface/diffusers/blob/v0.42.1/src/diffusers/models/transformers/"
              "transformer_chroma.py",
              "Chroma1-HD text-to-image, 8.9B (FLUX.1-schnell-based; T5-XXL; CFG: 2 passes/step)",
              {"text_encoder": "flux.1-dev/text_encoder_2", "vae": "flux.1-dev/vae"}),
)

PRESETS = (
    Workload("chroma-1024", 1, 1024, 1024, 35, TEXT_LEN, guidance_scale=5.0,
             description="Chroma ChromaPipeline: 1024x1024 (default_sample_size 128 x 8), 35 steps, CFG 5.0, "
                         "T5 512 tokens", family="chroma"),
)
