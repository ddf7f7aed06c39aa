"""Allegro (diffusers ``AllegroTransformer3DModel``), every stage as ``AllegroPipeline`` (diffusers 0.42.1) runs it.

``AllegroPipeline.__call__`` at its defaults: ``num_frames`` = ``sample_frames`` (22) x 4 = 88, 720 x 1280
(``sample_height/width`` x 8), 100 steps, ``guidance_scale`` 7.5, ``max_sequence_length`` 512:

* ``text_encoder``: T5 v1.1 XXL (``T5EncoderModel``) on the prompt and on the negative prompt,
  ``text_encoder(ids, attention_mask=mask)[0]`` on 512 padded tokens (``encode_prompt``: two calls).
* ``transformer``: CFG batched (the pipeline concatenates negative and positive: one forward of 2x the batch
  per step).  Latents ``(B, 4, F', H/8, W/8)`` with ``F' = ceil(88 / 4) = 22`` (an even frame count; odd:
  ``ceil((F - 1) / 4) + 1``), patch 2 x 2: 22 x 45 x 80 = 79,200 tokens.  The pipeline passes the text as
  ``(B, 1, L, 4096)`` with its mask, and the RoPE (``_prepare_rotary_positional_embeddings``: the frequency
  tables and the token grid of ``get_3d_rotary_pos_embed_allegro``) built outside the transformer from the
  latent sizes, so each workload is exported once (static).
* ``vae``: ``AutoencoderKLAllegro.decode(latents).sample`` in float32 with tiling on, as the pipeline's
  docstring loads and sets it (``torch_dtype=torch.float32``, ``pipe.vae.enable_tiling()``; without tiling the
  class raises ``NotImplementedError``): ``tiled_decode`` runs the decoder once per (6, 40, 40)-latent tile at
  stride (4, 25, 30), 5 x 3 x 5 = 75 tiles at the defaults, and blends them.

Configs: the transformer's and the VAE's from rhymes-ai/Allegro (the diffusers-format files of the model
repo's refs/pr/10); the T5 v1.1 XXL text encoder's is the one LTX-Video bundles (``ltx-video/text_encoder``,
google/t5-v1_1-xxl, the encoder Allegro's pipeline loads).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fxmeter.errors import WorkloadError
from fxmeter.model.adapters._common import ANY, ATTN, MATMUL, NORM, Rules, attention_dims, divisible, tp_roles
from fxmeter.model.adapters.base import Adapter, Geometry, SymbolAxis
from fxmeter.model.adapters.stage import meta_tensor
from fxmeter.model.adapters.text_encoders import UMT5_MASKED
from fxmeter.model.adapters.vaes import VaeDecode
from fxmeter.model.pipeline import ModelSpec, StagePlan
from fxmeter.model.workload import Workload

if TYPE_CHECKING:
    import torch

VAE_T, VAE_S = 4, 8  # AllegroPipeline vae_scale_factor_temporal / _spatial
TEXT_LEN = 512  # max_sequence_length

ALLEGRO_CATEGORIES: Rules = (
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
    (r"^(pos_embed|adaln_single|caption_projection)(\.|$)", ANY, "embeddings"),
    (r"^(norm_out|proj_out)(\.|$)", ANY, "head"),
    (r"^$", ANY, "head"),
)


def latent_frames(frames: int) -> int:
    """``AllegroPipeline.prepare_latents``: ``ceil(F / 4)`` for an even frame count, ``ceil((F - 1) / 4) + 1`` else."""
    return math.ceil(frames / VAE_T) if frames % 2 == 0 else math.ceil((frames - 1) / VAE_T) + 1


@dataclass
class AllegroAdapter(Adapter):
    name: str = "allegro"
    diffusers_class: str = "AllegroTransformer3DModel"
    repeated: dict[str, str] = field(default_factory=lambda: {"transformer_blocks": "num_layers"})
    symbols: tuple[str, ...] = ("batch", "latent_frames", "latent_h", "latent_w", "text_len")
    required_keys: tuple[str, ...] = ("in_channels", "num_layers", "attention_head_dim", "num_attention_heads",
                                      "caption_channels", "patch_size", "patch_size_t")
    category_rules: Rules = ALLEGRO_CATEGORIES
    default_slug: str = "allegro"
    family: str = "allegro"
    default_workload: str | None = "allegro-720p"
    offload_seq: tuple[str, ...] = ("text_encoder", "transformer", "vae")
    positive_keys: tuple[str, ...] = (
        "in_channels", "out_channels", "patch_size", "patch_size_t", "num_attention_heads", "attention_head_dim",
        "cross_attention_dim", "num_layers", "caption_channels", "sample_height", "sample_width", "sample_frames",
    )
    sequence_symbols: tuple[str, ...] = ("latent_frames", "latent_h", "latent_w")
    tp_roles: tuple[tuple[str, str], ...] = tp_roles(("transformer_blocks",))

    def model_dims(self, config: dict[str, Any], geometry: Geometry) -> dict[str, int | None] | None:
        return attention_dims(config, int(config["num_layers"]), geometry.dims["text_len"], geometry.tokens)

    def supports_dynamic(self, config: dict[str, Any]) -> bool:
        """No: the pipeline's RoPE tables and token grid follow the latent sizes (one export per workload)."""
        return False

    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        if wl.frames < 1:
            raise WorkloadError(f"frames must be positive, got {wl.frames}")
        divisible(wl.height, wl.width, VAE_S, "AllegroPipeline.check_inputs")
        p, pt = int(config["patch_size"]), int(config["patch_size_t"])
        lf, lh, lw = latent_frames(wl.frames), wl.height // VAE_S, wl.width // VAE_S
        if lf % pt or lh % p or lw % p:
            raise WorkloadError(f"latent {lf}x{lh}x{lw} is not divisible by the patch ({pt}, {p}, {p})")
        dims = {"batch": wl.batch, "latent_frames": lf, "latent_h": lh, "latent_w": lw, "text_len": wl.text_len}
        tokens = (lf // pt) * (lh // p) * (lw // p)
        return Geometry(dims, (wl.batch, int(config["in_channels"]), lf, lh, lw), tokens, wl.frames)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch
        from diffusers.models.embeddings import get_3d_rotary_pos_embed_allegro

        b, t = dims["batch"], dims["text_len"]
        f, h, w = dims["latent_frames"], dims["latent_h"], dims["latent_w"]
        p = int(config["patch_size"])
        # AllegroPipeline._prepare_rotary_positional_embeddings (height // (8 * p) = latent_h // p)
        gh, gw = h // p, w // p
        rope: Any = get_3d_rotary_pos_embed_allegro(
            embed_dim=int(config["attention_head_dim"]), crops_coords=((0, 0), (gh, gw)), grid_size=(gh, gw),
            temporal_size=f, interpolation_scale=(float(config.get("interpolation_scale_t", 2.2)),
                                                  float(config.get("interpolation_scale_h", 2.0)),
                                                  float(config.get("interpolation_scale_w", 2.0))),
            device=torch.device("meta"))
        freqs_t, freqs_h, freqs_w, grid_t, grid_h, grid_w = rope
        pos = torch.cartesian_prod(grid_t.to(torch.long), grid_h.to(torch.long), grid_w.to(torch.long))
        pos = pos.reshape(-1, 3).transpose(0, 1).reshape(3, 1, -1).contiguous()
        return {
            "hidden_states": meta_tensor(b, int(config["in_channels"]), f, h, w, dtype=dtype),
            "encoder_hidden_states": meta_tensor(b, 1, t, int(config["caption_channels"]), dtype=dtype),  # b 1 l d
            "timestep": meta_tensor(b, dtype=torch.float32),  # t.expand(batch)
            "encoder_attention_mask": meta_tensor(b, t, dtype=torch.long),
            "image_rotary_emb": ((freqs_t, freqs_h, freqs_w), (pos[0], pos[1], pos[2])),
            "return_dict": False,
        }

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        return {}

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {s: (1, 1 << 16) for s in self.symbols}

    def stages(self, config: dict[str, Any], wl: Workload, *, batched_cfg: bool = False) -> tuple[StagePlan, ...]:
        """The pipeline always batches CFG: one forward of 2x the batch per step (of the batch without CFG)."""
        cfg = self.passes_per_step(config, wl) == 2
        return (StagePlan("transformer", "transformer",
                          "denoiser (CFG: negative and positive prompts in one forward of 2x the batch)" if cfg
                          else "denoiser", runs=wl.steps, batch_factor=2 if cfg else 1, steps=wl.steps),)

    def pipeline_stages(self, config: dict[str, Any], wl: Workload,
                        geometry: Geometry) -> tuple[tuple[StagePlan, ...], tuple[StagePlan, ...]]:
        d = geometry.dims
        runs = 2 if wl.guidance_scale > 1.0 else 1
        before = (StagePlan("text_encoder", "text_encoder",
                            f"text encoder (T5-XXL, masked, {d['text_len']} tokens; "
                            f"{'prompt and negative prompt' if runs == 2 else 'prompt'})",
                            runs=runs, root="text_encoder", adapter=UMT5_MASKED,
                            dims={"batch": d["batch"], "seq_len": d["text_len"]}),)
        after = (StagePlan("vae", "vae", "VAE decode (AutoencoderKLAllegro, tiled as the pipeline's docstring enables)",
                           runs=1, root="vae", adapter=VAE_DECODE_ALLEGRO, dtype="float32",
                           dims={"batch": d["batch"], "latent_frames": d["latent_frames"], "latent_h": d["latent_h"],
                                 "latent_w": d["latent_w"]},
                           notes=("vae: float32 and vae.enable_tiling() as the AllegroPipeline docstring loads and sets it "
                                  "(AutoencoderKLAllegro decodes only tiled)",)),)
        return before, after


def _allegro_decode_wrapper(vae: torch.nn.Module) -> torch.nn.Module:
    import torch

    class AllegroDecode(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.component: Any = vae
            enable_tiling: Any = vae.enable_tiling
            enable_tiling()  # pipe.vae.enable_tiling()

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return self.component.decode(z).sample  # AllegroPipeline.decode_latents

    return AllegroDecode()


@dataclass
class AllegroVaeDecode(VaeDecode):
    """``AutoencoderKLAllegro.decode(z).sample`` with tiling on: Python loops over tiles (static export)."""

    name: str = "vae-decode-allegro"
    classes: tuple[str, ...] = ("AutoencoderKLAllegro",)

    def specialize(self, config: dict[str, Any]) -> VaeDecode:
        return self

    def supports_dynamic(self, config: dict[str, Any]) -> bool:
        return False

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return _allegro_decode_wrapper(model)

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        return {}


VAE_DECODE_ALLEGRO = AllegroVaeDecode()

ADAPTERS = (AllegroAdapter(),)
MODELS = (
    ModelSpec(
        "allegro",
        "allegro/transformer/config.json",
        "allegro",
        "allegro-720p",
        "https://huggingface.co/rhymes-ai/Allegro/blob/refs%2Fpr%2F10/transformer/config.json",
        "Allegro text-to-video, 2.8B (CFG batched: one forward of 2x the batch per step)",
        {"text_encoder": "ltx-video/text_encoder", "vae": "allegro/vae"},
    ),
)
PRESETS = (
    Workload("allegro-720p", 88, 720, 1280, 100, TEXT_LEN, guidance_scale=7.5, family="allegro",
             description="AllegroPipeline defaults: 1280x720, 88 frames (22 latent), 100 steps, CFG 7.5, 512 text tokens"),
)
STAGE_ADAPTERS = {"AutoencoderKLAllegro": VAE_DECODE_ALLEGRO}
