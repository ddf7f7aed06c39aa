"""Sana 1600M at 1024 px (diffusers ``SanaTransformer2DModel``), as ``SanaPipeline`` drives it.

The pipeline (diffusers 0.42.1, ``pipelines/sana/pipeline_sana.py``), copied here:

* **Text**: Gemma-2-2B-it's decoder (``Gemma2Model``), bf16 (the docstring loads the pipeline in fp32 and
  casts ``text_encoder`` and ``transformer`` to bf16).  The prompt is prefixed with the default complex
  human instruction: one call of ``208 + 300 - 2 = 506`` tokens; with CFG the empty negative prompt is
  encoded without it: a second call of 300 tokens (``max_sequence_length``); see
  :mod:`fxmeter.model.adapters.gemma`.  The transformer gets 300 text tokens and the padding mask.
* **Latents**: ``AutoencoderDC`` compresses 32x (``2 ** (len(encoder_block_out_channels) - 1)``), 32
  channels: ``(B, 32, H/32, W/32)``; ``patch_size`` 1, so a 1024x1024 image is 32 x 32 = 1,024 tokens.
  ``use_resolution_binning`` (default) first maps height x width to the nearest aspect-ratio bin of
  ``ASPECT_RATIO_1024_BIN`` (``sample_size`` 32), generates at the bin and resizes the image back after
  decoding: fxmeter does the same (:mod:`fxmeter.model.adapters.binning`: transformer and VAE at the bin, a
  ``resize`` stage when it differs; 1024 x 1024, the preset, is a bin).
* **Denoiser**: linear self-attention (``SanaLinearAttnProcessor2_0``: ReLU kernels, fp32 ``v @ k^T``
  then ``@ q``), SDPA cross-attention over the 300 text tokens (masked), a GLU-MBConv FFN (1x1, depthwise
  3x3, 1x1 convs over the ``H/32 x W/32`` grid).  ``timestep``: the DPM-Solver's int64 timestep
  expanded to the batch times ``timestep_scale`` (a float32 tensor).  CFG 4.5 (default): two passes per
  step (the pipeline concatenates them into one forward of twice the batch; ``--batched-cfg``), 20 steps.
* **VAE**: ``vae.decode(latents / scaling_factor, return_dict=False)[0]`` on the DC-AE, fp32 (the docstring
  leaves it in the pipeline's fp32); no tiling.

Configs: the transformer from diffusers' Sana conversion script (``SanaMS_1600M_P1_D20`` at 1024 px),
the DC-AE from diffusers' DC-AE conversion script (``dc-ae-f32c32-sana-1.0``), Gemma-2-2B from a public
copy of its ``config.json``; each config's ``_source`` names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from fxmeter.errors import WorkloadError
from fxmeter.model.adapters._common import ANY, ATTN, MATMUL, NORM, QK_NORMS, Rules, image_only
from fxmeter.model.adapters.base import Adapter, Geometry, SymbolAxis
from fxmeter.model.adapters.binning import binned_size, binning_note, resize_stage
from fxmeter.model.adapters.gemma import GEMMA_SANA, SANA_CHI_TOKENS, chi_length
from fxmeter.model.adapters.vaes import VaeDecode
from fxmeter.model.pipeline import ModelSpec, StagePlan
from fxmeter.model.workload import Workload

if TYPE_CHECKING:
    import torch

SANA_CATEGORIES: Rules = (
    (r"^transformer_blocks\.\d+\.attn[12]$", ATTN | MATMUL, "attention_core"),  # linear attention's matmuls, SDPA
    (r"^transformer_blocks\.\d+\.attn[12]\.", MATMUL, "attention_proj"),
    (r".", NORM, "norms"),
    (r"^$", NORM, "norms"),
    (r"^transformer_blocks\.\d+\.attn[12](\.|$)", ANY, "attention_core"),  # ReLU kernels, padding, normaliser
    (r"^transformer_blocks\.\d+\.ff(\.|$)", ANY, "ffn"),
    (r"^transformer_blocks\.\d+(\.|$)", ANY, "modulation"),
    (r"^(patch_embed|time_embed|caption_projection|caption_norm)(\.|$)", ANY, "embeddings"),
    (r"^(norm_out|proj_out)(\.|$)", ANY, "head"),
    (r"^$", ANY, "head"),
)


@dataclass
class DcaeDecode(VaeDecode):
    """``AutoencoderDC.decode(z, return_dict=False)[0]``: an image VAE, dynamic in height and width."""

    name: str = "vae-decode-dcae"
    classes: tuple[str, ...] = ("AutoencoderDC",)

    def video(self, config: dict[str, Any]) -> bool:
        return False

    def specialize(self, config: dict[str, Any]) -> DcaeDecode:
        return replace(self, symbols=("batch", "latent_h", "latent_w"), fixed_symbols=("batch",))


DCAE_DECODE = DcaeDecode()

MAX_SEQUENCE_LENGTH = 300  # SanaPipeline.__call__ max_sequence_length
PIPELINE = "SanaPipeline"


def sample_size(config: dict[str, Any]) -> int:
    """``transformer.config.sample_size``, which picks the pipeline's aspect-ratio bins (32: the class default)."""
    return int(config.get("sample_size", 32))


@dataclass
class SanaAdapter(Adapter):
    name: str = "sana"
    diffusers_class: str = "SanaTransformer2DModel"
    repeated: dict[str, str] = field(default_factory=lambda: {"transformer_blocks": "num_layers"})
    symbols: tuple[str, ...] = ("batch", "patches_h", "patches_w", "text_len")
    required_keys: tuple[str, ...] = (
        "in_channels", "num_layers", "num_attention_heads", "attention_head_dim", "caption_channels", "patch_size",
    )
    category_rules: Rules = SANA_CATEGORIES
    default_slug: str = "sana"
    family: str = "sana"
    default_workload: str | None = "sana-1024"
    offload_seq: tuple[str, ...] = ("text_encoder", "transformer", "vae")  # SanaPipeline.model_cpu_offload_seq
    positive_keys: tuple[str, ...] = (
        "in_channels", "num_attention_heads", "attention_head_dim", "num_layers", "num_cross_attention_heads",
        "cross_attention_head_dim", "cross_attention_dim", "caption_channels", "sample_size", "patch_size",
    )
    choices: dict[str, tuple[Any, ...]] = field(default_factory=lambda: {"qk_norm": QK_NORMS})
    sequence_symbols: tuple[str, ...] = ("patches_h", "patches_w")

    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        scale, p, size = 32, int(config["patch_size"]), sample_size(config)
        height, width = binned_size(PIPELINE, size, wl.height, wl.width)  # use_resolution_binning=True
        if height % (scale * p) or width % (scale * p):
            raise WorkloadError(f"height and width must be divisible by {scale * p} (DC-AE 32x compression x patch "
                                f"{p}); got {width}x{height}")
        lh, lw = height // scale, width // scale
        notes = image_only(wl.frames, "Sana")
        notes.append(binning_note(PIPELINE, size, wl.height, wl.width))
        dims = {"batch": wl.batch, "patches_h": lh // p, "patches_w": lw // p, "text_len": wl.text_len}
        tokens = (lh // p) * (lw // p)
        return Geometry(dims, (wl.batch, int(config["in_channels"]), lh, lw), tokens, 1, tuple(notes))

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        b, t, p = dims["batch"], dims["text_len"], int(config["patch_size"])

        def e(*shape: int, dt: torch.dtype = dtype) -> torch.Tensor:
            return torch.empty(*shape, device="meta", dtype=dt)

        kw: dict[str, Any] = {
            "hidden_states": e(b, int(config["in_channels"]), dims["patches_h"] * p, dims["patches_w"] * p),
            "encoder_hidden_states": e(b, t, int(config["caption_channels"])),
            "encoder_attention_mask": e(b, t, dt=torch.long),  # the tokenizer's attention_mask
            "timestep": e(b, dt=torch.float32),  # int64 t.expand(B) * timestep_scale (a Python float)
            "return_dict": False,
        }
        if config.get("guidance_embeds", False):  # Sana-Sprint: guidance as an input (not this pipeline)
            kw["guidance"] = e(b, dt=torch.float32)
        return kw

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        p = int(config["patch_size"])
        axes = {
            "hidden_states": {0: SymbolAxis("batch"), 2: SymbolAxis("patches_h", p), 3: SymbolAxis("patches_w", p)},
            "encoder_hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("text_len")},
            "encoder_attention_mask": {0: SymbolAxis("batch"), 1: SymbolAxis("text_len")},
            "timestep": {0: SymbolAxis("batch")},
        }
        if config.get("guidance_embeds", False):
            axes["guidance"] = {0: SymbolAxis("batch")}
        return axes

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 1024), "patches_h": (2, 1024), "patches_w": (2, 1024), "text_len": (2, 1 << 14)}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 2, "patches_h": 5, "patches_w": 7, "text_len": 9}

    def pipeline_stages(self, config: dict[str, Any], wl: Workload,
                        geometry: Geometry) -> tuple[tuple[StagePlan, ...], tuple[StagePlan, ...]]:
        b, t = geometry.dims["batch"], geometry.dims["text_len"]
        n = chi_length(SANA_CHI_TOKENS, t)
        before = [StagePlan("text_encoder", "text_encoder",
                            f"text encoder (Gemma-2-2B, prompt after the complex human instruction: {n} tokens)",
                            runs=1, root="text_encoder", adapter=GEMMA_SANA, dims={"batch": b, "seq_len": n},
                            dtype="bfloat16",
                            notes=(f"text_encoder: {SANA_CHI_TOKENS} instruction tokens + {t} - 2 (SanaPipeline."
                                   "_get_gemma_prompt_embeds); bf16 as the SanaPipeline docstring casts it",))]
        if wl.guidance_scale > 1.0:
            before.append(StagePlan("text_encoder_negative", "text_encoder",
                                    f"text encoder (Gemma-2-2B, negative prompt without the instruction: {t} tokens)",
                                    runs=1, root="text_encoder", adapter=GEMMA_SANA, dims={"batch": b, "seq_len": t},
                                    dtype="bfloat16"))
        _, _, lh, lw = geometry.latent_shape
        after = (StagePlan("vae", "vae", "VAE decode (AutoencoderDC f32c32, one pass)", runs=1, root="vae",
                           adapter=DCAE_DECODE, dims={"batch": b, "latent_h": lh, "latent_w": lw}, dtype="float32",
                           notes=("vae: float32 as the SanaPipeline docstring leaves it; tiling off",)),
                 *resize_stage(PIPELINE, sample_size(config), wl.height, wl.width, b, dtype="float32"))
        return tuple(before), after


ADAPTERS = (SanaAdapter(),)

MODELS = (
    ModelSpec("sana-1600m-1024", "sana-1600m-1024/transformer/config.json", "sana", "sana-1024",
              "https://github.com/huggingface/diffusers/blob/main/scripts/convert_sana_to_diffusers.py",
              "Sana 1600M text-to-image, 1024 px (linear DiT, Gemma-2 text, DC-AE 32x; CFG: 2 passes/step)",
              {c: f"sana-1600m-1024/{c}" for c in ("text_encoder", "vae")}),
)

PRESETS = (
    Workload("sana-1024", 1, 1024, 1024, 20, MAX_SEQUENCE_LENGTH, guidance_scale=4.5,
             description="SanaPipeline: 1024x1024, 20 steps, CFG 4.5, Gemma 300 tokens (+ complex human instruction)",
             family="sana"),
)

STAGE_ADAPTERS = {"Gemma2Model": GEMMA_SANA, "AutoencoderDC": DCAE_DECODE}
