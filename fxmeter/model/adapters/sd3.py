"""Stable Diffusion 3 / 3.5 (diffusers ``SD3Transformer2DModel``), as ``StableDiffusion3Pipeline`` drives it.

Latents are ``(B, 16, H/8, W/8)``, patchified 2x2 by a conv; the position
embedding is cropped from a ``pos_embed_max_size`` grid.  Text: CLIP-L/G (77
tokens) concatenated with T5 (``max_sequence_length`` 256) -> 333 tokens, and a
2048-wide pooled vector.  Classifier-free guidance runs two passes per step.

Blocks are *not* replicated: the last joint block is ``context_pre_only`` (no
context FFN) and SD3.5-medium's ``dual_attention_layers`` differ by index, so
every block is traced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fxmeter.errors import WorkloadError
from fxmeter.model.adapters._common import (
    QK_NORMS,
    attention_dims,
    divisible,
    image_only,
    joint_dit_categories,
    tp_roles,
)
from fxmeter.model.adapters.base import Adapter, Geometry, SymbolAxis
from fxmeter.model.pipeline import StagePlan
from fxmeter.model.workload import Workload

if TYPE_CHECKING:
    import torch

VAE_SCALE = 8


@dataclass
class SD3Adapter(Adapter):
    name: str = "sd3"
    diffusers_class: str = "SD3Transformer2DModel"
    repeated: dict[str, str] = field(default_factory=dict)
    symbols: tuple[str, ...] = ("batch", "patches_h", "patches_w", "text_len")
    required_keys: tuple[str, ...] = (
        "in_channels", "num_layers", "attention_head_dim", "num_attention_heads", "joint_attention_dim",
        "pooled_projection_dim", "patch_size",
    )
    category_rules: tuple[tuple[str, frozenset[str] | None, str], ...] = joint_dit_categories(
        ("transformer_blocks",), r"pos_embed|time_text_embed|context_embedder"
    )
    default_slug: str = "sd3"
    family: str = "sd3"
    default_workload: str | None = "sd3.5-1024"
    offload_seq: tuple[str, ...] = ("text_encoder", "text_encoder_2", "text_encoder_3", "image_encoder", "transformer", "vae")
    positive_keys: tuple[str, ...] = (
        "sample_size", "patch_size", "in_channels", "num_layers", "attention_head_dim", "num_attention_heads",
        "joint_attention_dim", "caption_projection_dim", "pooled_projection_dim", "out_channels", "pos_embed_max_size",
    )
    choices: dict[str, tuple[Any, ...]] = field(default_factory=lambda: {"qk_norm": QK_NORMS})
    sequence_symbols: tuple[str, ...] = ("patches_h", "patches_w")
    joint_text_symbols: tuple[str, ...] = ("text_len",)
    tp_roles: tuple[tuple[str, str], ...] = tp_roles(("transformer_blocks",))

    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        p = int(config["patch_size"])
        divisible(wl.height, wl.width, VAE_SCALE * p, "VAE 8 x patch")
        ph, pw = wl.height // (VAE_SCALE * p), wl.width // (VAE_SCALE * p)
        pmax = config.get("pos_embed_max_size")
        if pmax is not None and max(ph, pw) > int(pmax):
            raise WorkloadError(f"{max(ph, pw)} patches per side exceed pos_embed_max_size {pmax}; use a smaller resolution")
        dims = {"batch": wl.batch, "patches_h": ph, "patches_w": pw, "text_len": wl.text_len}
        shape = (wl.batch, int(config["in_channels"]), ph * p, pw * p)
        return Geometry(dims, shape, ph * pw, 1, tuple(image_only(wl.frames, "SD3")))

    def model_dims(self, config: dict[str, Any], geometry: Geometry) -> dict[str, int | None] | None:
        """``num_attention_heads`` x ``attention_head_dim``, FFN 4 x hidden (``FeedForward``), ``num_layers``."""
        return attention_dims(config, int(config["num_layers"]), geometry.dims["text_len"], geometry.tokens)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        p, b = int(config["patch_size"]), dims["batch"]
        return {
            "hidden_states": torch.empty(
                b, int(config["in_channels"]), dims["patches_h"] * p, dims["patches_w"] * p, device="meta", dtype=dtype
            ),
            "encoder_hidden_states": torch.empty(b, dims["text_len"], int(config["joint_attention_dim"]), device="meta", dtype=dtype),
            "pooled_projections": torch.empty(b, int(config["pooled_projection_dim"]), device="meta", dtype=dtype),
            "timestep": torch.empty(b, device="meta", dtype=torch.float32),  # t.expand(batch), fp32 scheduler timesteps
            "return_dict": False,
        }

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        p = int(config["patch_size"])
        return {
            "hidden_states": {0: SymbolAxis("batch"), 2: SymbolAxis("patches_h", p), 3: SymbolAxis("patches_w", p)},
            "encoder_hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("text_len")},
            "pooled_projections": {0: SymbolAxis("batch")},
            "timestep": {0: SymbolAxis("batch")},
        }

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        pmax = int(config.get("pos_embed_max_size") or 1024)
        return {"batch": (1, 1024), "patches_h": (1, pmax), "patches_w": (1, pmax), "text_len": (1, 1 << 16)}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 2, "patches_h": 4, "patches_w": 5, "text_len": 7}

    def pipeline_stages(self, config: dict[str, Any], wl: Workload,
                        geometry: Geometry) -> tuple[tuple[StagePlan, ...], tuple[StagePlan, ...]]:
        from fxmeter.model.adapters import plans

        return plans.sd3(config, wl, geometry)
