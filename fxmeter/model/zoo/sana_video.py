"""SANA-Video 2B at 480p (diffusers ``SanaVideoTransformer3DModel``), as ``SanaVideoPipeline`` drives it.

The pipeline (diffusers 0.42.1, ``pipelines/sana_video/pipeline_sana_video.py``), copied here:

* **Text**: Gemma-2-2B-it's decoder (``Gemma2Model``, the same checkpoint as Sana's), bf16 as the docstring
  casts it.  The prompt is prefixed with the pipeline's own (video) complex human instruction: one call of
  ``221 + 300 - 2 = 519`` tokens; with CFG the empty negative prompt is encoded without it, 300 tokens
  (:mod:`fxmeter.model.adapters.gemma`).  The transformer gets 300 text tokens and the padding mask.
* **Latents**: the Wan2.1 VAE (``AutoencoderKLWan``, loaded by diffusers' conversion script from
  Wan2.1-T2V-1.3B): ``(B, 16, (F - 1) // 4 + 1, H/8, W/8)``; patch ``(1, 2, 2)``.  832 x 480 x 81 frames:
  21 x 30 x 52 = 32,760 tokens.  ``use_resolution_binning`` (default) maps height x width to the nearest bin
  of ``ASPECT_RATIO_480_BIN`` (``sample_size`` 30) first and resizes every decoded frame back: fxmeter does
  the same (:mod:`fxmeter.model.adapters.binning`: transformer and VAE at the bin, a ``resize`` stage when it
  differs; 832 x 480, the preset, is a bin).  Requested 416 x 240: bin 832 x 480, resized back.
* **Denoiser**: linear self-attention with 3D RoPE on the ReLU kernels (``SanaLinearAttnProcessor3_0``),
  masked SDPA cross-attention, a GLU-MBConv FFN with a temporal (3, 1) conv.  ``timestep``: the DPM-Solver's
  int64 timestep expanded to the batch (no ``timestep_scale`` here).  CFG 6.0: two passes per step
  (concatenated into one forward of twice the batch by the pipeline; ``--batched-cfg``), 50 steps.
* **VAE**: ``vae.decode(latents, return_dict=False)[0]`` after the Wan latent de-normalisation, fp32 (the
  docstring's ``pipe.vae.to(torch.float32)``); Wan's causal decoder runs one latent frame at a time.

Configs: the transformer from diffusers' SANA-Video conversion script (480p), the Gemma-2 text encoder
bundled with ``sana-1600m-1024``, the Wan2.1 VAE bundled with ``wan2.1-t2v-14b``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fxmeter.errors import WorkloadError
from fxmeter.model.adapters._common import QK_NORMS, Rules
from fxmeter.model.adapters.base import Adapter, Geometry, SymbolAxis
from fxmeter.model.adapters.binning import binned_size, binning_note, resize_stage
from fxmeter.model.adapters.gemma import GEMMA_SANA, SANA_VIDEO_CHI_TOKENS, chi_length
from fxmeter.model.adapters.vaes import VAE_DECODE
from fxmeter.model.pipeline import ModelSpec, StagePlan
from fxmeter.model.workload import Workload
from fxmeter.model.zoo.sana import MAX_SEQUENCE_LENGTH, SANA_CATEGORIES

if TYPE_CHECKING:
    import torch

VAE_T, VAE_S = 4, 8  # AutoencoderKLWan scale_factor_temporal / scale_factor_spatial (SanaVideoPipeline.__init__)
PIPELINE = "SanaVideoPipeline"


@dataclass
class SanaVideoAdapter(Adapter):
    name: str = "sana_video"
    diffusers_class: str = "SanaVideoTransformer3DModel"
    repeated: dict[str, str] = field(default_factory=lambda: {"transformer_blocks": "num_layers"})
    symbols: tuple[str, ...] = ("batch", "latent_frames", "patches_h", "patches_w", "text_len")
    required_keys: tuple[str, ...] = (
        "in_channels", "num_layers", "num_attention_heads", "attention_head_dim", "caption_channels", "patch_size",
    )
    category_rules: Rules = SANA_CATEGORIES
    default_slug: str = "sana_video"
    family: str = "sana_video"
    default_workload: str | None = "sana-video-480p"
    offload_seq: tuple[str, ...] = ("text_encoder", "transformer", "vae")  # SanaVideoPipeline.model_cpu_offload_seq
    positive_keys: tuple[str, ...] = (
        "in_channels", "num_attention_heads", "attention_head_dim", "num_layers", "num_cross_attention_heads",
        "cross_attention_head_dim", "cross_attention_dim", "caption_channels", "sample_size", "patch_size",
        "rope_max_seq_len",
    )
    choices: dict[str, tuple[Any, ...]] = field(default_factory=lambda: {"qk_norm": QK_NORMS})
    sequence_symbols: tuple[str, ...] = ("latent_frames", "patches_h", "patches_w")

    @staticmethod
    def _patch(config: dict[str, Any]) -> tuple[int, int, int]:
        pt, ph, pw = (int(x) for x in config["patch_size"])
        return pt, ph, pw

    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        pt, ph, pw = self._patch(config)
        size = int(config.get("sample_size", 30))  # SanaVideoTransformer3DModel's default
        height, width = binned_size(PIPELINE, size, wl.height, wl.width)  # use_resolution_binning=True
        if height % 32 or width % 32:  # SanaVideoPipeline.check_inputs
            raise WorkloadError(f"height and width must be divisible by 32 (SanaVideoPipeline); got {width}x{height}")
        lf = (wl.frames - 1) // VAE_T + 1  # SanaVideoPipeline.prepare_latents
        lh, lw = height // VAE_S, width // VAE_S
        if lf % pt or lh % ph or lw % pw:
            raise WorkloadError(f"latent {lf}x{lh}x{lw} is not divisible by the patch {pt}x{ph}x{pw}")
        dims = {"batch": wl.batch, "latent_frames": lf // pt, "patches_h": lh // ph, "patches_w": lw // pw,
                "text_len": wl.text_len}
        notes = (binning_note(PIPELINE, size, wl.height, wl.width, video=True),)
        tokens = (lf // pt) * (lh // ph) * (lw // pw)
        return Geometry(dims, (wl.batch, int(config["in_channels"]), lf, lh, lw), tokens, wl.frames, notes)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        pt, ph, pw = self._patch(config)
        b, t = dims["batch"], dims["text_len"]

        def e(*shape: int, dt: torch.dtype = dtype) -> torch.Tensor:
            return torch.empty(*shape, device="meta", dtype=dt)

        return {
            "hidden_states": e(b, int(config["in_channels"]), dims["latent_frames"] * pt, dims["patches_h"] * ph,
                               dims["patches_w"] * pw),
            "encoder_hidden_states": e(b, t, int(config["caption_channels"])),
            "encoder_attention_mask": e(b, t, dt=torch.long),  # the tokenizer's attention_mask
            "timestep": e(b, dt=torch.long),  # DPMSolverMultistepScheduler's int64 t.expand(B)
            "return_dict": False,
        }

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        pt, ph, pw = self._patch(config)
        return {
            "hidden_states": {0: SymbolAxis("batch"), 2: SymbolAxis("latent_frames", pt), 3: SymbolAxis("patches_h", ph),
                              4: SymbolAxis("patches_w", pw)},
            "encoder_hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("text_len")},
            "encoder_attention_mask": {0: SymbolAxis("batch"), 1: SymbolAxis("text_len")},
            "timestep": {0: SymbolAxis("batch")},
        }

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        top = int(config.get("rope_max_seq_len", 1024))  # the RoPE tables hold rope_max_seq_len positions per axis
        return {"batch": (1, 1024), "latent_frames": (2, top), "patches_h": (2, top), "patches_w": (2, top),
                "text_len": (2, 1 << 14)}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 2, "latent_frames": 3, "patches_h": 5, "patches_w": 7, "text_len": 9}

    def pipeline_stages(self, config: dict[str, Any], wl: Workload,
                        geometry: Geometry) -> tuple[tuple[StagePlan, ...], tuple[StagePlan, ...]]:
        b, t = geometry.dims["batch"], geometry.dims["text_len"]
        n = chi_length(SANA_VIDEO_CHI_TOKENS, t)
        before = [StagePlan("text_encoder", "text_encoder",
                            f"text encoder (Gemma-2-2B, prompt after the complex human instruction: {n} tokens)",
                            runs=1, root="text_encoder", adapter=GEMMA_SANA, dims={"batch": b, "seq_len": n},
                            dtype="bfloat16",
                            notes=(f"text_encoder: {SANA_VIDEO_CHI_TOKENS} instruction tokens + {t} - 2 (SanaVideoPipeline."
                                   "_get_gemma_prompt_embeds); bf16 as the SanaVideoPipeline docstring casts it",))]
        if wl.guidance_scale > 1.0:
            before.append(StagePlan("text_encoder_negative", "text_encoder",
                                    f"text encoder (Gemma-2-2B, negative prompt without the instruction: {t} tokens)",
                                    runs=1, root="text_encoder", adapter=GEMMA_SANA, dims={"batch": b, "seq_len": t},
                                    dtype="bfloat16"))
        _, _, lf, lh, lw = geometry.latent_shape
        after = (StagePlan("vae", "vae", f"VAE decode (AutoencoderKLWan, {lf} latent frames one at a time with its "
                           "causal cache)", runs=1, root="vae", adapter=VAE_DECODE,
                           dims={"batch": b, "latent_frames": lf, "latent_h": lh, "latent_w": lw}, dtype="float32",
                           notes=("vae: float32 as the SanaVideoPipeline docstring casts it; tiling off",)),
                 *resize_stage(PIPELINE, int(config.get("sample_size", 30)), wl.height, wl.width, b,
                               frames=(lf - 1) * VAE_T + 1, dtype="float32"))
        return tuple(before), after


ADAPTERS = (SanaVideoAdapter(),)

MODELS = (
    ModelSpec("sana-video-2b-480p", "sana-video-2b-480p/transformer/config.json", "sana_video", "sana-video-480p",
              "https://github.com/huggingface/diffusers/blob/main/scripts/convert_sana_video_to_diffusers.py",
              "SANA-Video 2B text-to-video, 480p (linear DiT + 3D RoPE, Gemma-2 text, Wan2.1 VAE; CFG: 2 passes/step)",
              {"text_encoder": "sana-1600m-1024/text_encoder", "vae": "wan2.1/vae"}),
)

PRESETS = (
    Workload("sana-video-480p", 81, 480, 832, 50, MAX_SEQUENCE_LENGTH, guidance_scale=6.0,
             description="SanaVideoPipeline: 832x480, 81 frames, 50 steps, CFG 6.0, Gemma 300 tokens "
                         "(+ complex human instruction)", family="sana_video"),
)
