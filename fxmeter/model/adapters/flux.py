"""Flux.1 (diffusers ``FluxTransformer2DModel``), as ``FluxPipeline`` drives it.

The VAE compresses space by 8 and the pipeline packs 2x2 latent patches into
one token of ``in_channels`` (64) features, so an HxW image has
``(H/16) * (W/16)`` image tokens.  Text: T5 ``max_sequence_length`` (512)
tokens plus the CLIP pooled vector.  Position ids: ``img_ids`` (one row per
image token) and ``txt_ids`` (zeros, one row per text token); the transformer
computes RoPE from them.  FLUX.1-dev is guidance-distilled: the guidance scale
is an input of the model (``guidance``), one transformer pass per step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fxmeter.model.adapters._common import attention_dims, divisible, image_only, joint_dit_categories, tp_roles
from fxmeter.model.adapters.base import Adapter, Geometry, SymbolAxis
from fxmeter.model.pipeline import StagePlan
from fxmeter.model.workload import Workload

if TYPE_CHECKING:
    import torch

VAE_SCALE = 8
PACK = 2


@dataclass
class FluxAdapter(Adapter):
    name: str = "flux"
    diffusers_class: str = "FluxTransformer2DModel"
    repeated: dict[str, str] = field(
        default_factory=lambda: {"transformer_blocks": "num_layers", "single_transformer_blocks": "num_single_layers"}
    )
    symbols: tuple[str, ...] = ("batch", "image_tokens", "text_len")
    required_keys: tuple[str, ...] = (
        "in_channels", "num_layers", "num_single_layers", "attention_head_dim", "num_attention_heads",
        "joint_attention_dim", "pooled_projection_dim",
    )
    category_rules: tuple[tuple[str, frozenset[str] | None, str], ...] = joint_dit_categories(
        ("transformer_blocks", "single_transformer_blocks"), r"pos_embed|time_text_embed|context_embedder|x_embedder"
    )
    default_slug: str = "flux"
    family: str = "flux"
    default_workload: str | None = "flux-1024"
    offload_seq: tuple[str, ...] = ("text_encoder", "text_encoder_2", "image_encoder", "transformer", "vae")
    positive_keys: tuple[str, ...] = (
        "patch_size", "in_channels", "num_layers", "attention_head_dim", "num_attention_heads", "joint_attention_dim",
        "pooled_projection_dim", "axes_dims_rope",
    )
    sequence_symbols: tuple[str, ...] = ("image_tokens",)
    joint_text_symbols: tuple[str, ...] = ("text_len",)
    tp_roles: tuple[tuple[str, str], ...] = tp_roles(("transformer_blocks", "single_transformer_blocks"))

    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        divisible(wl.height, wl.width, VAE_SCALE * PACK, "VAE 8 x 2x2 packing")
        h, w = wl.height // (VAE_SCALE * PACK), wl.width // (VAE_SCALE * PACK)
        notes = image_only(wl.frames, "Flux")
        dims = {"batch": wl.batch, "image_tokens": h * w, "text_len": wl.text_len}
        return Geometry(dims, (wl.batch, h * w, int(config["in_channels"])), h * w, 1, tuple(notes))

    def model_dims(self, config: dict[str, Any], geometry: Geometry) -> dict[str, int | None] | None:
        """24 heads x 128, FFN 4 x hidden (``FeedForward`` and the single blocks' ``mlp_ratio`` 4.0), double +
        single blocks; the image tokens are split (xDiT ``xFuserFluxTransformer2DWrapper``)."""
        layers = int(config["num_layers"]) + int(config["num_single_layers"])
        return attention_dims(config, layers, geometry.dims["text_len"], geometry.tokens)

    def passes_per_step(self, config: dict[str, Any], wl: Workload) -> int:
        """One: FLUX.1-dev's guidance is distilled into the model (the ``guidance`` input)."""
        return 1

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        b, n, t = dims["batch"], dims["image_tokens"], dims["text_len"]

        def e(*shape: int, dt: torch.dtype = dtype) -> torch.Tensor:
            return torch.empty(*shape, device="meta", dtype=dt)

        kw: dict[str, Any] = {
            "hidden_states": e(b, n, int(config["in_channels"])),
            "encoder_hidden_states": e(b, t, int(config["joint_attention_dim"])),
            "pooled_projections": e(b, int(config["pooled_projection_dim"])),
            "timestep": e(b),  # t.expand(batch).to(latents.dtype) / 1000
            "img_ids": e(n, 3),  # _prepare_latent_image_ids(...).to(dtype)
            "txt_ids": e(t, 3),  # torch.zeros(text_len, 3).to(dtype)
        }
        if config.get("guidance_embeds", False):
            kw["guidance"] = e(b, dt=torch.float32)  # torch.full([1], scale, float32).expand(batch)
        kw["return_dict"] = False
        return kw

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        axes = {
            "hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("image_tokens")},
            "encoder_hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("text_len")},
            "pooled_projections": {0: SymbolAxis("batch")},
            "timestep": {0: SymbolAxis("batch")},
            "img_ids": {0: SymbolAxis("image_tokens")},
            "txt_ids": {0: SymbolAxis("text_len")},
        }
        if config.get("guidance_embeds", False):
            axes["guidance"] = {0: SymbolAxis("batch")}
        return axes

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 1024), "image_tokens": (1, 1 << 20), "text_len": (1, 1 << 16)}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 2, "image_tokens": 12, "text_len": 7}

    def pipeline_stages(self, config: dict[str, Any], wl: Workload,
                        geometry: Geometry) -> tuple[tuple[StagePlan, ...], tuple[StagePlan, ...]]:
        from fxmeter.model.adapters import plans

        return plans.flux(config, wl, geometry)
