"""Wan2.1 / Wan2.2 transformers (diffusers ``WanTransformer3DModel``).

Geometry follows diffusers' ``WanPipeline``: the VAE compresses time by 4 and
space by 8, the transformer patchifies by ``patch_size`` (1, 2, 2); a frame count
that is not 4k+1 is rounded down to one the way the pipeline does; height and
width must be multiples of 16.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import WorkloadError
from ..workload import Workload
from .base import Adapter, Geometry, SymbolAxis

if TYPE_CHECKING:
    import torch

VAE_SCALE_TEMPORAL = 4
VAE_SCALE_SPATIAL = 8

_ANY = None
_MATMUL = frozenset({"matmul"})
_ATTN = frozenset({"attention"})
_NORM = frozenset({"norm"})

WAN_CATEGORIES: tuple[tuple[str, frozenset[str] | None, str], ...] = (
    (r"^blocks\.\d+\.attn1(\.|$)", _ATTN, "self_attention_core"),
    (r"^blocks\.\d+\.attn1(\.|$)", _MATMUL, "self_attention_proj"),
    (r"^blocks\.\d+\.attn2(\.|$)", _ATTN, "cross_attention_core"),
    (r"^blocks\.\d+\.attn2(\.|$)", _MATMUL, "cross_attention_proj"),
    (r".", _NORM, "norms"),
    (r"^$", _NORM, "norms"),
    (r"^blocks\.\d+\.attn1$", _ANY, "rope"),
    (r"^blocks\.\d+\.attn2$", _ANY, "cross_attention_core"),
    (r"^blocks\.\d+\.ffn(\.|$)", _ANY, "ffn"),
    (r"^blocks\.\d+$", _ANY, "modulation"),
    (r"^(rope|condition_embedder)(\.|$)", _ANY, "embeddings"),
    (r"^patch_embedding(\.|$)", _ANY, "conv"),
    (r"^(norm_out|proj_out)(\.|$)", _ANY, "head"),
    (r"^$", _ANY, "head"),
)


@dataclass
class WanAdapter(Adapter):
    name: str = "wan"
    diffusers_class: str = "WanTransformer3DModel"
    repeated: dict[str, str] = field(default_factory=lambda: {"blocks": "num_layers"})
    symbols: tuple[str, ...] = ("batch", "latent_frames", "patches_h", "patches_w", "text_len")
    required_keys: tuple[str, ...] = (
        "patch_size",
        "num_attention_heads",
        "attention_head_dim",
        "in_channels",
        "out_channels",
        "text_dim",
        "freq_dim",
        "ffn_dim",
        "num_layers",
    )
    category_rules: tuple[tuple[str, frozenset[str] | None, str], ...] = WAN_CATEGORIES
    default_slug: str = "wan"

    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        p_t, p_h, p_w = config["patch_size"]
        notes: list[str] = []
        frames = wl.frames
        if frames % VAE_SCALE_TEMPORAL != 1:
            rounded = frames // VAE_SCALE_TEMPORAL * VAE_SCALE_TEMPORAL + 1
            notes.append(
                f"frames={frames} is not 4k+1; rounded to {rounded} as diffusers' WanPipeline does"
            )
            frames = rounded
        sh, sw = VAE_SCALE_SPATIAL * p_h, VAE_SCALE_SPATIAL * p_w
        if wl.height % sh or wl.width % sw:
            raise WorkloadError(
                f"height and width must be divisible by {sh}x{sw} (VAE x patch); got {wl.height}x{wl.width}"
            )
        latent_frames = (frames - 1) // VAE_SCALE_TEMPORAL + 1
        lh, lw = wl.height // VAE_SCALE_SPATIAL, wl.width // VAE_SCALE_SPATIAL
        if latent_frames % p_t:
            raise WorkloadError(f"latent frames {latent_frames} not divisible by temporal patch {p_t}")
        ppf, pph, ppw = latent_frames // p_t, lh // p_h, lw // p_w
        rope_max = int(config.get("rope_max_seq_len", 1024))
        for label, v in (("latent frames", ppf), ("height patches", pph), ("width patches", ppw)):
            if v > rope_max:
                raise WorkloadError(
                    f"{label} = {v} exceeds the RoPE table ({rope_max} positions, rope_max_seq_len); "
                    "use fewer frames or a smaller resolution"
                )
        latent_shape = (wl.batch, int(config["in_channels"]), latent_frames, lh, lw)
        dims = {
            "batch": wl.batch,
            "latent_frames": latent_frames,
            "patches_h": pph,
            "patches_w": ppw,
            "text_len": wl.text_len,
        }
        return Geometry(dims, latent_shape, ppf * pph * ppw, frames, tuple(notes))

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        p_t, p_h, p_w = config["patch_size"]
        b = dims["batch"]
        x = torch.empty(
            b,
            int(config["in_channels"]),
            dims["latent_frames"] * p_t,
            dims["patches_h"] * p_h,
            dims["patches_w"] * p_w,
            device="meta",
            dtype=dtype,
        )
        # WanPipeline: timestep = t.expand(batch) (float32 scheduler timesteps)
        t = torch.empty(b, device="meta", dtype=torch.float32)
        e = torch.empty(b, dims["text_len"], int(config["text_dim"]), device="meta", dtype=dtype)
        return {"hidden_states": x, "timestep": t, "encoder_hidden_states": e, "return_dict": False}

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        p_t, p_h, p_w = config["patch_size"]
        return {
            "hidden_states": {
                0: SymbolAxis("batch"),
                2: SymbolAxis("latent_frames", p_t),
                3: SymbolAxis("patches_h", p_h),
                4: SymbolAxis("patches_w", p_w),
            },
            "timestep": {0: SymbolAxis("batch")},
            "encoder_hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("text_len")},
        }

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        rope_max = int(config.get("rope_max_seq_len", 1024))
        return {
            "batch": (1, 1024),
            "latent_frames": (1, rope_max),
            "patches_h": (1, rope_max),
            "patches_w": (1, rope_max),
            "text_len": (1, 1 << 16),
        }

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 2, "latent_frames": 3, "patches_h": 4, "patches_w": 5, "text_len": 7}
