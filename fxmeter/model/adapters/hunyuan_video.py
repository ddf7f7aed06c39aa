"""HunyuanVideo (diffusers ``HunyuanVideoTransformer3DModel``), as ``HunyuanVideoPipeline`` drives it.

The VAE compresses time by 4 and space by 8; the transformer patchifies by
(``patch_size_t``, ``patch_size``, ``patch_size``) = (1, 2, 2) and computes its
3D RoPE inside the forward from the latent shape.  Text: the Llama prompt
template cropped to ``max_sequence_length`` (256) tokens with their attention
mask, plus the CLIP pooled vector (768).  Guidance is embedded (``guidance``
input = scale x 1000): one pass per step; diffusers' ``true_cfg_scale`` (off by
default) would add a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fxmeter.model.adapters._common import (
    QK_NORMS,
    attention_dims,
    divisible,
    joint_dit_categories,
    tp_roles,
    video_frames,
)
from fxmeter.model.adapters.base import Adapter, Geometry, SymbolAxis
from fxmeter.model.pipeline import StagePlan
from fxmeter.model.workload import Workload

if TYPE_CHECKING:
    import torch

VAE_T, VAE_S = 4, 8


@dataclass
class HunyuanVideoAdapter(Adapter):
    name: str = "hunyuan_video"
    diffusers_class: str = "HunyuanVideoTransformer3DModel"
    repeated: dict[str, str] = field(
        default_factory=lambda: {"transformer_blocks": "num_layers", "single_transformer_blocks": "num_single_layers"}
    )
    symbols: tuple[str, ...] = ("batch", "latent_frames", "patches_h", "patches_w", "text_len")
    required_keys: tuple[str, ...] = (
        "in_channels", "num_layers", "num_single_layers", "attention_head_dim", "num_attention_heads",
        "text_embed_dim", "pooled_projection_dim", "patch_size", "patch_size_t",
    )
    category_rules: tuple[tuple[str, frozenset[str] | None, str], ...] = joint_dit_categories(
        ("transformer_blocks", "single_transformer_blocks"), r"x_embedder|context_embedder|time_text_embed|rope"
    )
    default_slug: str = "hunyuan_video"
    family: str = "hunyuan_video"
    default_workload: str | None = "hunyuan-720p"
    offload_seq: tuple[str, ...] = ("text_encoder", "text_encoder_2", "transformer", "vae")
    positive_keys: tuple[str, ...] = (
        "in_channels", "out_channels", "num_attention_heads", "attention_head_dim", "num_layers", "patch_size",
        "patch_size_t", "text_embed_dim", "pooled_projection_dim", "rope_axes_dim",
    )
    choices: dict[str, tuple[Any, ...]] = field(default_factory=lambda: {"qk_norm": QK_NORMS})
    sequence_symbols: tuple[str, ...] = ("latent_frames", "patches_h", "patches_w")
    joint_text_symbols: tuple[str, ...] = ("text_len",)
    tp_roles: tuple[tuple[str, str], ...] = tp_roles(("transformer_blocks", "single_transformer_blocks"))

    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        p, pt = int(config["patch_size"]), int(config["patch_size_t"])
        frames, notes = video_frames(wl.frames, VAE_T, "HunyuanVideoPipeline")
        divisible(wl.height, wl.width, VAE_S * p, "VAE 8 x patch 2")
        lf = (frames - 1) // VAE_T + 1
        lh, lw = wl.height // VAE_S, wl.width // VAE_S
        if lf % pt:
            from fxmeter.errors import WorkloadError

            raise WorkloadError(f"latent frames {lf} not divisible by patch_size_t {pt}")
        dims = {"batch": wl.batch, "latent_frames": lf // pt, "patches_h": lh // p, "patches_w": lw // p, "text_len": wl.text_len}
        tokens = dims["latent_frames"] * dims["patches_h"] * dims["patches_w"]
        return Geometry(dims, (wl.batch, int(config["in_channels"]), lf, lh, lw), tokens, frames, tuple(notes))

    def passes_per_step(self, config: dict[str, Any], wl: Workload) -> int:
        """One when guidance is embedded (``guidance_embeds``); two with classic CFG otherwise."""
        if config.get("guidance_embeds", False):
            return 1
        return super().passes_per_step(config, wl)

    def model_dims(self, config: dict[str, Any], geometry: Geometry) -> dict[str, int | None] | None:
        """``num_attention_heads`` x ``attention_head_dim``, FFN ``mlp_ratio`` x hidden, double + single blocks."""
        layers = int(config["num_layers"]) + int(config["num_single_layers"])
        return attention_dims(config, layers, geometry.dims["text_len"], geometry.tokens,
                              float(config.get("mlp_ratio", 4.0)))

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        p, pt, b, t = int(config["patch_size"]), int(config["patch_size_t"]), dims["batch"], dims["text_len"]
        kw: dict[str, Any] = {
            "hidden_states": torch.empty(
                b, int(config["in_channels"]), dims["latent_frames"] * pt, dims["patches_h"] * p, dims["patches_w"] * p,
                device="meta", dtype=dtype,
            ),
            "timestep": torch.empty(b, device="meta", dtype=dtype),  # t.expand(batch).to(latents.dtype)
            "encoder_hidden_states": torch.empty(b, t, int(config["text_embed_dim"]), device="meta", dtype=dtype),
            "encoder_attention_mask": torch.empty(b, t, device="meta", dtype=torch.int64),  # tokenizer mask
            "pooled_projections": torch.empty(b, int(config["pooled_projection_dim"]), device="meta", dtype=dtype),
        }
        if config.get("guidance_embeds", False):
            kw["guidance"] = torch.empty(b, device="meta", dtype=dtype)  # tensor([scale]*batch, dtype) * 1000
        kw["return_dict"] = False
        return kw

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        p, pt = int(config["patch_size"]), int(config["patch_size_t"])
        axes = {
            "hidden_states": {
                0: SymbolAxis("batch"), 2: SymbolAxis("latent_frames", pt),
                3: SymbolAxis("patches_h", p), 4: SymbolAxis("patches_w", p),
            },
            "timestep": {0: SymbolAxis("batch")},
            "encoder_hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("text_len")},
            "encoder_attention_mask": {0: SymbolAxis("batch"), 1: SymbolAxis("text_len")},
            "pooled_projections": {0: SymbolAxis("batch")},
        }
        if config.get("guidance_embeds", False):
            axes["guidance"] = {0: SymbolAxis("batch")}
        return axes

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 1024), "latent_frames": (1, 4096), "patches_h": (1, 4096), "patches_w": (1, 4096), "text_len": (1, 1 << 16)}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 2, "latent_frames": 3, "patches_h": 4, "patches_w": 5, "text_len": 7}

    def pipeline_stages(self, config: dict[str, Any], wl: Workload,
                        geometry: Geometry) -> tuple[tuple[StagePlan, ...], tuple[StagePlan, ...]]:
        from fxmeter.model.adapters import plans

        return plans.hunyuan(config, wl, geometry)
