"""LTX-Video (diffusers ``LTXVideoTransformer3DModel``), as ``LTXPipeline`` drives it.

The VAE compresses time by 8 and space by 32; latents are packed to
``(B, F*H*W, 128)`` tokens (patch 1).  The forward takes the latent
``num_frames``, ``height`` and ``width`` as Python ints and builds its RoPE from
them (with ``rope_interpolation_scale = (8 / frame_rate, 32, 32)``), so the
export is static (one per workload).  Text: T5, ``max_sequence_length`` 128
tokens with their mask.  Classifier-free guidance: two passes per step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fxmeter.model.adapters._common import ANY, ATTN, MATMUL, NORM, attention_dims, divisible, video_frames
from fxmeter.model.adapters.base import Adapter, Geometry, SymbolAxis
from fxmeter.model.pipeline import StagePlan
from fxmeter.model.workload import Workload

if TYPE_CHECKING:
    import torch

VAE_T, VAE_S = 8, 32
FRAME_RATE = 25  # LTXPipeline default

LTX_CATEGORIES: tuple[tuple[str, frozenset[str] | None, str], ...] = (
    (r"^transformer_blocks\.\d+\.attn1(\.|$)", ATTN, "self_attention_core"),
    (r"^transformer_blocks\.\d+\.attn1(\.|$)", MATMUL, "self_attention_proj"),
    (r"^transformer_blocks\.\d+\.attn2(\.|$)", ATTN, "cross_attention_core"),
    (r"^transformer_blocks\.\d+\.attn2(\.|$)", MATMUL, "cross_attention_proj"),
    (r".", NORM, "norms"),
    (r"^$", NORM, "norms"),
    (r"^transformer_blocks\.\d+\.attn1$", ANY, "rope"),
    (r"^transformer_blocks\.\d+\.attn2$", ANY, "cross_attention_core"),
    (r"^transformer_blocks\.\d+\.ff(\.|$)", ANY, "ffn"),
    (r"^transformer_blocks\.\d+(\.|$)", ANY, "modulation"),
    (r"^(proj_in|time_embed|caption_projection|rope)(\.|$)", ANY, "embeddings"),
    (r"^(norm_out|proj_out)(\.|$)", ANY, "head"),
    (r"^$", ANY, "head"),
)


@dataclass
class LTXVideoAdapter(Adapter):
    name: str = "ltx_video"
    diffusers_class: str = "LTXVideoTransformer3DModel"
    repeated: dict[str, str] = field(default_factory=lambda: {"transformer_blocks": "num_layers"})
    symbols: tuple[str, ...] = ("batch", "latent_frames", "latent_h", "latent_w", "text_len")
    required_keys: tuple[str, ...] = ("in_channels", "num_layers", "attention_head_dim", "num_attention_heads", "caption_channels")
    category_rules: tuple[tuple[str, frozenset[str] | None, str], ...] = LTX_CATEGORIES
    default_slug: str = "ltx_video"
    family: str = "ltx_video"
    default_workload: str | None = "ltx-512p"
    offload_seq: tuple[str, ...] = ("text_encoder", "transformer", "vae")
    positive_keys: tuple[str, ...] = (
        "in_channels", "out_channels", "patch_size", "patch_size_t", "num_attention_heads", "attention_head_dim",
        "cross_attention_dim", "num_layers", "caption_channels",
    )
    # LTXAttention raises NotImplementedError for anything else
    choices: dict[str, tuple[Any, ...]] = field(default_factory=lambda: {"qk_norm": ("rms_norm_across_heads",)})

    sequence_symbols: tuple[str, ...] = ("latent_frames", "latent_h", "latent_w")

    def supports_dynamic(self, config: dict[str, Any]) -> bool:
        """No: the forward takes num_frames/height/width as Python ints for its RoPE."""
        return False

    def model_dims(self, config: dict[str, Any], geometry: Geometry) -> dict[str, int | None] | None:
        """``num_attention_heads`` x ``attention_head_dim``, FFN 4 x hidden (diffusers ``FeedForward`` default in
        ``LTXVideoTransformerBlock``), ``num_layers`` blocks, the video tokens as the split sequence (text is
        cross-attended)."""
        return attention_dims(config, int(config["num_layers"]), geometry.dims["text_len"], geometry.tokens)

    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        frames, notes = video_frames(wl.frames, VAE_T, "LTXPipeline")
        divisible(wl.height, wl.width, VAE_S, "VAE 32")
        lf, lh, lw = (frames - 1) // VAE_T + 1, wl.height // VAE_S, wl.width // VAE_S
        dims = {"batch": wl.batch, "latent_frames": lf, "latent_h": lh, "latent_w": lw, "text_len": wl.text_len}
        return Geometry(dims, (wl.batch, int(config["in_channels"]), lf, lh, lw), lf * lh * lw, frames, tuple(notes))

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        b, t = dims["batch"], dims["text_len"]
        f, h, w = dims["latent_frames"], dims["latent_h"], dims["latent_w"]
        return {
            "hidden_states": torch.empty(b, f * h * w, int(config["in_channels"]), device="meta", dtype=dtype),
            "encoder_hidden_states": torch.empty(b, t, int(config["caption_channels"]), device="meta", dtype=dtype),
            "timestep": torch.empty(b, device="meta", dtype=torch.float32),  # t.expand(batch)
            "encoder_attention_mask": torch.empty(b, t, device="meta", dtype=torch.bool),
            "num_frames": f,
            "height": h,
            "width": w,
            "rope_interpolation_scale": (VAE_T / FRAME_RATE, VAE_S, VAE_S),
            "return_dict": False,
        }

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        return {
            "encoder_hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("text_len")},
            "timestep": {0: SymbolAxis("batch")},
            "encoder_attention_mask": {0: SymbolAxis("batch"), 1: SymbolAxis("text_len")},
        }

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {s: (1, 1 << 16) for s in self.symbols}

    def pipeline_stages(self, config: dict[str, Any], wl: Workload,
                        geometry: Geometry) -> tuple[tuple[StagePlan, ...], tuple[StagePlan, ...]]:
        from fxmeter.model.adapters import plans

        return plans.ltx(config, wl, geometry)
