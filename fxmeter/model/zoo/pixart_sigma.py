"""PixArt-Sigma XL/2 at 1024 px (diffusers ``PixArtTransformer2DModel``, 0.6B), as ``PixArtSigmaPipeline`` drives it.

Everything copied from diffusers 0.42.1 ``pipelines/pixart_alpha/pipeline_pixart_sigma.py``:

* **Text.**  T5 v1.1 XXL (``T5EncoderModel``): ``encode_prompt`` tokenizes with ``padding="max_length"`` to
  ``max_sequence_length`` (300) and keeps ``text_encoder(ids, attention_mask=mask)[0]`` (fxmeter's ``t5-masked``
  call); with CFG (``guidance_scale > 1``, 4.5 by default) the negative prompt (``""``) is encoded the same way at
  the prompt's padded length: two calls of 300 tokens.
* **Latents.**  The SDXL ``AutoencoderKL`` (4 channels, 8x): ``(B, 4, H/8, W/8)``; ``patch_size`` 2: a 1024 x 1024
  image is 64 x 64 = 4,096 tokens.  ``use_resolution_binning`` (default) first maps height x width to the nearest
  bin of ``ASPECT_RATIO_1024_BIN`` (``sample_size`` 128), generates at the bin and resizes the decoded image
  back: fxmeter does the same (:mod:`fxmeter.model.adapters.binning`): the transformer and the VAE at the bin,
  then a ``resize`` stage (``resize_and_crop_tensor``: bilinear, centre crop) when the bin differs.  Requested
  height 1000 x width 700: bin 1216 x 832 (ratio key 1.46), 76 x 52 = 3,952 tokens.  A bin (1024 x 1024, every
  preset) is generated as asked.
* **Denoiser.**  CFG is **batched**: ``torch.cat([latents] * 2)`` and ``torch.cat([negative_prompt_embeds,
  prompt_embeds])``: one forward of twice the batch per step (of the batch without CFG).  Inputs: the latents,
  ``encoder_hidden_states`` ``(2B, 300, 4096)``, ``encoder_attention_mask`` the tokenizer's masks (int64; the
  model turns them into a ``-10000`` bias), ``timestep`` the DPM-Solver's int64 ``t`` expanded to ``2B``,
  ``added_cond_kwargs = {"resolution": None, "aspect_ratio": None}`` (PixArt-Sigma has no micro-conditions:
  ``use_additional_conditions`` false).  Self-attention over the image tokens (with the 2D sin-cos position
  embedding recomputed for a size other than ``sample_size``), cross-attention over the 300 text tokens, a
  GELU-tanh FFN, adaLN-single modulation.  ``out_channels`` 8 (learned sigma): the pipeline keeps the first 4.
  20 steps (DPM-Solver++), CFG 4.5.  The position embedding is built from Python ints of the latent size, so
  the export is static (one trace per workload, the preset's shipped).
* **VAE.**  ``vae.decode(latents / scaling_factor, return_dict=False)[0]``: a plain ``AutoencoderKL`` decode.

Everything runs in the pipeline's ``torch_dtype`` (the docstring loads float16).  ``fxmeter observe
pixart-sigma-1024`` agrees with this plan (the transformer config's ``_pipeline.scheduler`` names the conversion
script's ``DPMSolverMultistepScheduler``: the pipeline's annotation is an enum of names).

Configs: the transformer's as the PixArt-sigma repo's conversion script builds PixArt-Sigma-XL-2-1024-MS
(``tools/convert_pixart_to_diffusers.py``); the T5 v1.1 XXL encoder the one bundled for FLUX.1-dev
(``flux.1-dev/text_encoder_2``: PixArt-Sigma loads the same google/t5-v1_1-xxl encoder); the SDXL VAE from a
public copy of its config (each ``_source`` says which).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fxmeter.model.adapters._common import ANY, ATTN, MATMUL, NORM, Rules, attention_dims, divisible, image_only
from fxmeter.model.adapters.base import Adapter, Geometry, SymbolAxis
from fxmeter.model.adapters.binning import binned_size, binning_note, resize_stage
from fxmeter.model.adapters.plans import Plans, cfg_runs, decode, text
from fxmeter.model.adapters.stage import meta_tensor
from fxmeter.model.adapters.text_encoders import UMT5_MASKED
from fxmeter.model.adapters.vaes import VAE_DECODE
from fxmeter.model.pipeline import ModelSpec, StagePlan
from fxmeter.model.workload import Workload

if TYPE_CHECKING:
    import torch

VAE_SCALE = 8  # 2 ** (len(vae.config.block_out_channels) - 1)
MAX_SEQUENCE_LENGTH = 300  # PixArtSigmaPipeline.__call__ max_sequence_length
PIPELINE = "PixArtSigmaPipeline"

_BLOCKS = r"^transformer_blocks\.\d+"
PIXART_CATEGORIES: Rules = (
    (rf"{_BLOCKS}\.attn[12](\.|$)", ATTN, "attention_core"),
    (rf"{_BLOCKS}\.attn[12](\.|$)", MATMUL, "attention_proj"),
    (r".", NORM, "norms"),
    (r"^$", NORM, "norms"),
    (rf"{_BLOCKS}\.attn[12](\.|$)", ANY, "attention_core"),  # head reshapes, the mask bias
    (rf"{_BLOCKS}\.ff(\.|$)", ANY, "ffn"),
    (rf"{_BLOCKS}(\.|$)", ANY, "modulation"),  # scale_shift_table, gates, residuals
    (r"^(pos_embed|adaln_single|caption_projection)(\.|$)", ANY, "embeddings"),
    (r"^(proj_out|norm_out)(\.|$)", ANY, "head"),
    (r"^$", ANY, "head"),  # the mask bias, the final modulation, unpatchify
)


@dataclass
class PixArtAdapter(Adapter):
    name: str = "pixart"
    diffusers_class: str = "PixArtTransformer2DModel"
    repeated: dict[str, str] = field(default_factory=lambda: {"transformer_blocks": "num_layers"})
    symbols: tuple[str, ...] = ("batch", "latent_h", "latent_w", "text_len")
    required_keys: tuple[str, ...] = ("in_channels", "num_layers", "num_attention_heads", "attention_head_dim",
                                      "caption_channels", "patch_size", "sample_size")
    category_rules: Rules = PIXART_CATEGORIES
    default_slug: str = "pixart"
    family: str = "pixart"
    default_workload: str | None = "pixart-1024"
    offload_seq: tuple[str, ...] = ("text_encoder", "transformer", "vae")  # model_cpu_offload_seq
    pipelines: tuple[str, ...] = ("PixArtSigmaPipeline",)
    positive_keys: tuple[str, ...] = ("in_channels", "num_layers", "num_attention_heads", "attention_head_dim",
                                      "cross_attention_dim", "caption_channels", "patch_size", "sample_size")
    sequence_symbols: tuple[str, ...] = ("latent_h", "latent_w")

    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        p, size = int(config["patch_size"]), int(config["sample_size"])
        height, width = binned_size(PIPELINE, size, wl.height, wl.width)  # use_resolution_binning=True
        divisible(height, width, VAE_SCALE * p, "VAE 8 x 2x2 patches")
        notes = image_only(wl.frames, "PixArt-Sigma")
        notes.append(binning_note(PIPELINE, size, wl.height, wl.width))
        lh, lw = height // VAE_SCALE, width // VAE_SCALE
        dims = {"batch": wl.batch, "latent_h": lh, "latent_w": lw, "text_len": wl.text_len}
        return Geometry(dims, (wl.batch, int(config["in_channels"]), lh, lw), (lh // p) * (lw // p), 1, tuple(notes))

    def supports_dynamic(self, config: dict[str, Any]) -> bool:
        """No: ``PatchEmbed`` rebuilds its sin-cos table from Python ints of the latent size."""
        return False

    def model_dims(self, config: dict[str, Any], geometry: Geometry) -> dict[str, int | None] | None:
        """``num_attention_heads`` x ``attention_head_dim``, FFN 4 x hidden (``FeedForward``), ``num_layers`` blocks over
        the image tokens (the text is cross-attended)."""
        return attention_dims(config, int(config["num_layers"]), geometry.dims["text_len"], geometry.tokens)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        b, t = dims["batch"], dims["text_len"]
        return {
            "hidden_states": meta_tensor(b, int(config["in_channels"]), dims["latent_h"], dims["latent_w"], dtype=dtype),
            "encoder_hidden_states": meta_tensor(b, t, int(config["caption_channels"]), dtype=dtype),
            "encoder_attention_mask": meta_tensor(b, t, dtype=torch.long),  # the tokenizer's attention_mask
            "timestep": meta_tensor(b, dtype=torch.long),  # DPMSolverMultistepScheduler's int64 t.expand(2B)
            "added_cond_kwargs": {"resolution": None, "aspect_ratio": None},
            "return_dict": False,
        }

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        """The inputs' axes (the export is static)."""
        return {
            "hidden_states": {0: SymbolAxis("batch"), 2: SymbolAxis("latent_h"), 3: SymbolAxis("latent_w")},
            "encoder_hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("text_len")},
            "encoder_attention_mask": {0: SymbolAxis("batch"), 1: SymbolAxis("text_len")},
            "timestep": {0: SymbolAxis("batch")},
        }

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 1024), "latent_h": (2, 1 << 12), "latent_w": (2, 1 << 12), "text_len": (1, 1 << 14)}

    def stages(self, config: dict[str, Any], wl: Workload, *, batched_cfg: bool = False) -> tuple[StagePlan, ...]:
        """The pipeline always batches CFG: one forward of 2x the batch per step (of the batch without CFG)."""
        cfg = self.passes_per_step(config, wl) == 2
        return (StagePlan("transformer", "transformer",
                          "denoiser (CFG: negative and positive prompts in one forward of 2x the batch)" if cfg
                          else "denoiser", runs=wl.steps, batch_factor=2 if cfg else 1, steps=wl.steps),)

    def pipeline_stages(self, config: dict[str, Any], wl: Workload, geometry: Geometry) -> Plans:
        """T5-XXL with its padding mask (prompt, and the negative prompt under CFG); AutoencoderKL decode; the resize
        back to the requested size when resolution binning changed it."""
        b, t = geometry.dims["batch"], geometry.dims["text_len"]
        before = (text("text_encoder", UMT5_MASKED, f"T5-XXL, masked, {t} tokens", cfg_runs(wl),
                       {"batch": b, "seq_len": t}),)
        after = (decode(VAE_DECODE, "AutoencoderKL (SDXL), 4 channels",
                        {"batch": b, "latent_h": geometry.dims["latent_h"], "latent_w": geometry.dims["latent_w"]}),
                 *resize_stage(PIPELINE, int(config["sample_size"]), wl.height, wl.width, b))
        return before, after


ADAPTERS = (PixArtAdapter(),)
MODELS = (
    ModelSpec("pixart-sigma-1024", "pixart-sigma-1024/transformer/config.json", "pixart", "pixart-1024",
              "https://github.com/PixArt-alpha/PixArt-sigma/blob/0c8d02099ca0082a5d8b48772de8e0c9106aeda7/tools/"
              "convert_pixart_to_diffusers.py",
              "PixArt-Sigma XL/2 text-to-image, 1024 px, 0.6B (T5-XXL text, SDXL VAE; CFG batched: 1 forward of 2x)",
              {"text_encoder": "flux.1-dev/text_encoder_2", "vae": "pixart-sigma-1024/vae"}),
)
PRESETS = (
    Workload("pixart-1024", 1, 1024, 1024, 20, MAX_SEQUENCE_LENGTH, guidance_scale=4.5,
             description="PixArtSigmaPipeline defaults: 1024x1024 (sample_size 128 x 8), 20 steps, CFG 4.5 (batched), "
                         "T5 300 tokens", family="pixart"),
)
