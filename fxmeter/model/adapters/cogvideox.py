"""CogVideoX (diffusers ``CogVideoXTransformer3DModel``), as ``CogVideoXPipeline`` drives it.

Latents are ``(B, F, 16, H/8, W/8)`` with ``F = (frames - 1) / 4 + 1``; the
patch embedding projects text (226 T5 tokens) and 2x2 video patches into one
sequence.  The pipeline computes the 3D RoPE *outside* the model
(``_prepare_rotary_positional_embeddings``, Python ints from the geometry) and
passes ``image_rotary_emb``: this adapter calls that very pipeline method, so
the export is static (one per workload).  Classifier-free guidance: two passes
per step (the pipeline batches them; same cost).
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

VAE_T, VAE_S = 4, 8

COGVIDEOX_CATEGORIES: tuple[tuple[str, frozenset[str] | None, str], ...] = (
    (r"^transformer_blocks\.\d+\.attn1(\.|$)", ATTN, "attention_core"),
    (r"^transformer_blocks\.\d+\.attn1(\.|$)", MATMUL, "attention_proj"),
    (r".", NORM, "norms"),
    (r"^$", NORM, "norms"),
    (r"^transformer_blocks\.\d+\.attn1$", ANY, "rope"),
    (r"^transformer_blocks\.\d+\.ff(\.|$)", ANY, "ffn"),
    (r"^transformer_blocks\.\d+(\.|$)", ANY, "modulation"),
    (r"^(patch_embed|time_proj|time_embedding|embedding_dropout)(\.|$)", ANY, "embeddings"),
    (r"^(norm_final|norm_out|proj_out)(\.|$)", ANY, "head"),
    (r"^$", ANY, "head"),
)


def resize_crop_region_for_grid(
    src: tuple[int, int], tgt_width: int, tgt_height: int
) -> tuple[tuple[int, int], tuple[int, int]]:
    """diffusers.pipelines.cogvideo.pipeline_cogvideox.get_resize_crop_region_for_grid (same arithmetic)."""
    tw, th = tgt_width, tgt_height
    h, w = src
    if h / w > th / tw:
        resize_height, resize_width = th, int(round(th / h * w))
    else:
        resize_width, resize_height = tw, int(round(tw / w * h))
    crop_top = int(round((th - resize_height) / 2.0))
    crop_left = int(round((tw - resize_width) / 2.0))
    return (crop_top, crop_left), (crop_top + resize_height, crop_left + resize_width)


@dataclass
class CogVideoXAdapter(Adapter):
    name: str = "cogvideox"
    diffusers_class: str = "CogVideoXTransformer3DModel"
    repeated: dict[str, str] = field(default_factory=lambda: {"transformer_blocks": "num_layers"})
    symbols: tuple[str, ...] = ("batch", "latent_frames", "patches_h", "patches_w", "text_len")
    required_keys: tuple[str, ...] = (
        "in_channels", "num_layers", "attention_head_dim", "num_attention_heads", "text_embed_dim", "patch_size",
        "sample_height", "sample_width",
    )
    category_rules: tuple[tuple[str, frozenset[str] | None, str], ...] = COGVIDEOX_CATEGORIES
    default_slug: str = "cogvideox"
    family: str = "cogvideox"
    default_workload: str | None = "cogvideox-480p"
    offload_seq: tuple[str, ...] = ("text_encoder", "transformer", "vae")
    positive_keys: tuple[str, ...] = (
        "num_attention_heads", "attention_head_dim", "in_channels", "time_embed_dim", "text_embed_dim", "num_layers",
        "sample_width", "sample_height", "sample_frames", "patch_size", "temporal_compression_ratio", "max_text_seq_length",
    )

    sequence_symbols: tuple[str, ...] = ("latent_frames", "patches_h", "patches_w")
    joint_text_symbols: tuple[str, ...] = ("text_len",)

    def supports_dynamic(self, config: dict[str, Any]) -> bool:
        """No: ``image_rotary_emb`` is built from Python ints of the geometry (static export)."""
        return not config.get("use_rotary_positional_embeddings", False)

    def model_dims(self, config: dict[str, Any], geometry: Geometry) -> dict[str, int | None] | None:
        """``num_attention_heads`` x ``attention_head_dim``, FFN 4 x hidden (diffusers ``FeedForward`` default in
        ``CogVideoXBlock``), ``num_layers`` blocks; text and video tokens form one joint sequence (xDiT
        ``xFuserCogVideoXPipeline`` splits the video tokens, CFG-parallel splits the two passes)."""
        return attention_dims(config, int(config["num_layers"]), geometry.dims["text_len"], geometry.tokens)

    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        p = int(config["patch_size"])
        pt = int(config.get("patch_size_t") or 1)
        frames, notes = video_frames(wl.frames, VAE_T, "CogVideoXPipeline")
        divisible(wl.height, wl.width, VAE_S * p, "VAE 8 x patch")
        lf = (frames - 1) // VAE_T + 1
        if lf % pt:  # CogVideoX 1.5 pads latent frames to a multiple of patch_size_t
            lf += pt - lf % pt
            notes.append(f"latent frames padded to {lf} (multiple of patch_size_t) as CogVideoXPipeline does")
        lh, lw = wl.height // VAE_S, wl.width // VAE_S
        dims = {"batch": wl.batch, "latent_frames": lf // pt, "patches_h": lh // p, "patches_w": lw // p, "text_len": wl.text_len}
        tokens = dims["latent_frames"] * dims["patches_h"] * dims["patches_w"]
        return Geometry(dims, (wl.batch, lf, int(config["in_channels"]), lh, lw), tokens, frames, tuple(notes))

    def rotary_emb(self, config: dict[str, Any], dims: dict[str, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``CogVideoXPipeline._prepare_rotary_positional_embeddings``, step for step, on CPU, moved to meta.

        (Importing the pipeline module needs ``transformers``; the model package does not.)
        """
        import torch
        from diffusers.models.embeddings import get_3d_rotary_pos_embed

        p, pt = int(config["patch_size"]), config.get("patch_size_t")
        grid_h, grid_w = dims["patches_h"], dims["patches_w"]
        base_w, base_h = int(config["sample_width"]) // p, int(config["sample_height"]) // p
        head = int(config["attention_head_dim"])
        if pt is None:  # CogVideoX 1.0
            crops = resize_crop_region_for_grid((grid_h, grid_w), base_w, base_h)
            cos, sin = get_3d_rotary_pos_embed(
                embed_dim=head, crops_coords=crops, grid_size=(grid_h, grid_w), temporal_size=dims["latent_frames"], device=torch.device("cpu")
            )
        else:  # CogVideoX 1.5
            cos, sin = get_3d_rotary_pos_embed(
                embed_dim=head, crops_coords=None, grid_size=(grid_h, grid_w), temporal_size=dims["latent_frames"],
                grid_type="slice", max_size=(base_h, base_w), device=torch.device("cpu"),
            )
        return cos.to("meta"), sin.to("meta")

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        p, pt, b = int(config["patch_size"]), int(config.get("patch_size_t") or 1), dims["batch"]
        kw: dict[str, Any] = {
            "hidden_states": torch.empty(
                b, dims["latent_frames"] * pt, int(config["in_channels"]), dims["patches_h"] * p, dims["patches_w"] * p,
                device="meta", dtype=dtype,
            ),
            "encoder_hidden_states": torch.empty(b, dims["text_len"], int(config["text_embed_dim"]), device="meta", dtype=dtype),
            "timestep": torch.empty(b, device="meta", dtype=torch.int64),  # t.expand(batch); DPM/DDIM timesteps are int64
        }
        if config.get("use_rotary_positional_embeddings", False):
            kw["image_rotary_emb"] = self.rotary_emb(config, dims)
        kw["return_dict"] = False
        return kw

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        p, pt = int(config["patch_size"]), int(config.get("patch_size_t") or 1)
        return {
            "hidden_states": {
                0: SymbolAxis("batch"), 1: SymbolAxis("latent_frames", pt),
                3: SymbolAxis("patches_h", p), 4: SymbolAxis("patches_w", p),
            },
            "encoder_hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("text_len")},
            "timestep": {0: SymbolAxis("batch")},
        }

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 1024), "latent_frames": (1, 4096), "patches_h": (1, 4096), "patches_w": (1, 4096), "text_len": (1, 1 << 16)}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 2, "latent_frames": 3, "patches_h": 4, "patches_w": 5, "text_len": 7}

    def pipeline_stages(self, config: dict[str, Any], wl: Workload,
                        geometry: Geometry) -> tuple[tuple[StagePlan, ...], tuple[StagePlan, ...]]:
        from fxmeter.model.adapters import plans

        return plans.cogvideox(config, wl, geometry)
