"""LTX-2 (diffusers ``LTX2VideoTransformer3DModel``), every stage as ``LTX2Pipeline`` (diffusers 0.42.1) runs it.

Why one long module: a model is one file (fxmeter/model/zoo): LTX-2's eight stages, their
adapters and presets are that one declaration.

One generation of ``LTX2Pipeline.__call__`` at its defaults (512 x 768, 121 frames at 24 fps, 30 steps,
``max_sequence_length`` 1024, ``guidance_scale`` 3.0 / ``audio_guidance_scale`` 7.0, ``stg_scale`` 1.0 with
``spatio_temporal_guidance_blocks=[28]``, ``modality_scale`` 3.0):

* ``text_encoder``: Gemma 3 12B (``Gemma3ForConditionalGeneration``) on the prompt, then on the negative
  prompt (``encode_prompt``: two calls), each ``text_encoder(input_ids, attention_mask,
  output_hidden_states=True)`` on 1024 left-padded tokens; the 49 hidden states are stacked and
  flattened (``_get_gemma_prompt_embeds``).  The call computes the language-model head's logits over every
  token (transformers' ``logits_to_keep=0``), which the pipeline discards: counted, as it runs.
* ``connectors``: ``LTX2TextConnectors`` once on the negative and positive embeddings concatenated (batch 2):
  masked mean/range norm, ``text_proj_in``, the video and the audio 1D connector transformers.
* ``transformer``: per step one forward of the CFG batch (negative + positive, 2x the batch: the pipeline
  concatenates them), one spatio-temporal-guidance forward (``transformer_stg``: batch 1,
  ``spatio_temporal_guidance_blocks=[28]``; LTX-2.0 has ``perturbed_attn`` False, so block 28 runs as the
  others and the pass costs a plain forward) and one modality-isolation forward (``transformer_modality``:
  batch 1, ``isolate_modalities=True``: no audio-to-video / video-to-audio cross-attention).  The pipeline
  passes ``video_coords`` / ``audio_coords`` (its RoPE positions, built once outside the transformer) and
  ``use_cross_timestep=True``.  The workload's guidance scale stands for both CFG scales: <= 1 drops the
  CFG batch to one forward of the batch (the STG and modality passes stay, as their scales are separate).
* ``vae``: ``AutoencoderKLLTX2Video.decode(latents, None)`` in one pass (no timestep conditioning).
* ``audio_vae``: ``AutoencoderKLLTX2Audio.decode`` of the audio latents (8 channels x 16 mel bins x
  ``round(frames / 24 * 16000 / 160 / 4)`` latent frames) to a 64-bin mel spectrogram of ``4 A - 3`` frames.
* ``vocoder``: ``LTX2Vocoder`` on that spectrogram (24 kHz stereo waveform).

Geometry: the video VAE compresses time by 8 and space by 32, patch 1: ``F' H' W'`` video tokens
(16 x 16 x 24 = 6,144 at the defaults) and ``A`` audio tokens (126).  The forward's inputs are built from the
latent sizes, so each workload is exported once (static), as LTX-Video.

Configs: diffusers' ``scripts/convert_ltx2_to_diffusers.py`` (version ``"2.0"``, the Lightricks/LTX-2
checkpoint) for the transformer, connectors, video VAE, audio VAE and vocoder; keys it does not write take the
class defaults of diffusers 0.42.1.  Gemma 3 12B's config from a public copy of google/gemma-3-12b-it's.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from fxmeter.model.adapters._common import (
    ANY,
    ATTN,
    MATMUL,
    NORM,
    Rules,
    attention_dims,
    divisible,
    tp_roles,
    video_frames,
)
from fxmeter.model.adapters.base import Adapter, Builder, Geometry, SymbolAxis
from fxmeter.model.adapters.stage import StageAdapter, meta_tensor
from fxmeter.model.adapters.text_encoders import TEXT_CATEGORIES
from fxmeter.model.adapters.vaes import VAE_CATEGORIES, VaeDecode
from fxmeter.model.pipeline import ModelSpec, StagePlan
from fxmeter.model.workload import Workload

if TYPE_CHECKING:
    import torch

VAE_T, VAE_S = 8, 32
FRAME_RATE = 24.0  # LTX2Pipeline.__call__ frame_rate (motion_speed 1.0: conditioning frame rate 24)
AUDIO_SAMPLE_RATE, AUDIO_HOP, AUDIO_T = 16000, 160, 4  # audio_vae.config.sample_rate, mel_hop_length, temporal ratio
MEL_BINS, MEL_RATIO = 64, 4  # audio_vae.config.mel_bins, mel_compression_ratio
AUDIO_LATENT_CHANNELS = 8  # audio_vae.config.latent_channels
STG_BLOCKS = (28,)  # LTX2Pipeline.__call__ spatio_temporal_guidance_blocks default
TEXT_LEN = 1024  # max_sequence_length

_B = r"^transformer_blocks\.\d+"
LTX2_CATEGORIES: Rules = (
    (rf"{_B}\.(attn1|audio_attn1)(\.|$)", ATTN, "self_attention_core"),
    (rf"{_B}\.(attn1|audio_attn1)(\.|$)", MATMUL, "self_attention_proj"),
    (rf"{_B}\.(attn2|audio_attn2)(\.|$)", ATTN, "cross_attention_core"),
    (rf"{_B}\.(attn2|audio_attn2)(\.|$)", MATMUL, "cross_attention_proj"),
    (rf"{_B}\.(audio_to_video_attn|video_to_audio_attn)(\.|$)", ATTN, "av_cross_attention_core"),
    (rf"{_B}\.(audio_to_video_attn|video_to_audio_attn)(\.|$)", MATMUL, "av_cross_attention_proj"),
    (r".", NORM, "norms"),
    (r"^$", NORM, "norms"),
    (rf"{_B}\.(attn1|audio_attn1)$", ANY, "rope"),
    (rf"{_B}\.(attn2|audio_attn2)$", ANY, "cross_attention_core"),
    (rf"{_B}\.(audio_to_video_attn|video_to_audio_attn)$", ANY, "av_cross_attention_core"),
    (rf"{_B}\.(ff|audio_ff)(\.|$)", ANY, "ffn"),
    (rf"{_B}(\.|$)", ANY, "modulation"),
    (r"^(proj_in|audio_proj_in|time_embed|audio_time_embed|av_cross_attn_\w+|caption_projection|audio_caption_projection"
     r"|rope|audio_rope|cross_attn_rope|cross_attn_audio_rope)(\.|$)", ANY, "embeddings"),
    (r"^(norm_out|proj_out|audio_norm_out|audio_proj_out)(\.|$)", ANY, "head"),
    (r"^$", ANY, "head"),
)


def audio_frames(frames: int) -> int:
    """``audio_num_frames`` of LTX2Pipeline: ``round(num_frames / frame_rate * sample_rate / hop / 4)``."""
    return round(frames / FRAME_RATE * (AUDIO_SAMPLE_RATE / AUDIO_HOP / float(AUDIO_T)))


def mel_frames(audio_latent_frames: int) -> int:
    """Frames of the audio VAE's decoded mel spectrogram (causal: ``max(4 A - 3, 1)``)."""
    return max(audio_latent_frames * AUDIO_T - (AUDIO_T - 1), 1)


@dataclass
class LTX2Adapter(Adapter):
    """The audio-video transformer; ``pass_kind`` is the pipeline's call: ``cfg`` (the denoiser),
    ``stg`` (spatio-temporal guidance at ``STG_BLOCKS``) or ``modality`` (``isolate_modalities``)."""

    name: str = "ltx2"
    diffusers_class: str = "LTX2VideoTransformer3DModel"
    repeated: dict[str, str] = field(default_factory=lambda: {"transformer_blocks": "num_layers"})
    symbols: tuple[str, ...] = ("batch", "latent_frames", "latent_h", "latent_w", "audio_frames", "text_len")
    required_keys: tuple[str, ...] = ("in_channels", "num_layers", "attention_head_dim", "num_attention_heads",
                                      "caption_channels", "audio_in_channels")
    category_rules: Rules = LTX2_CATEGORIES
    default_slug: str = "ltx_2"
    family: str = "ltx2"
    default_workload: str | None = "ltx2-512p"
    offload_seq: tuple[str, ...] = ("text_encoder", "connectors", "transformer", "vae", "audio_vae", "vocoder")
    positive_keys: tuple[str, ...] = (
        "in_channels", "out_channels", "patch_size", "patch_size_t", "num_attention_heads", "attention_head_dim",
        "cross_attention_dim", "num_layers", "caption_channels", "audio_in_channels", "audio_out_channels",
        "audio_num_attention_heads", "audio_attention_head_dim", "audio_cross_attention_dim",
    )
    choices: dict[str, tuple[Any, ...]] = field(default_factory=lambda: {"rope_type": ("interleaved", "split")})
    sequence_symbols: tuple[str, ...] = ("latent_frames", "latent_h", "latent_w")
    tp_roles: tuple[tuple[str, str], ...] = tp_roles(("transformer_blocks",))
    pass_kind: str = "cfg"

    def specialize(self, config: dict[str, Any]) -> Adapter:
        # an STG pass perturbs block 28 only when the blocks have perturbed attention (LTX-2.3): then the
        # blocks differ and are traced one by one
        if self.pass_kind == "stg" and config.get("perturbed_attn"):
            return replace(self, repeated={})
        return self

    def model_dims(self, config: dict[str, Any], geometry: Geometry) -> dict[str, int | None] | None:
        return attention_dims(config, int(config["num_layers"]), geometry.dims["text_len"], geometry.tokens)

    def supports_dynamic(self, config: dict[str, Any]) -> bool:
        """No: one export per workload (the RoPE coordinates and audio length follow the geometry)."""
        return False

    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        frames, notes = video_frames(wl.frames, VAE_T, "LTX2Pipeline")
        divisible(wl.height, wl.width, VAE_S, "LTX2Pipeline: VAE 32")
        lf, lh, lw = (frames - 1) // VAE_T + 1, wl.height // VAE_S, wl.width // VAE_S
        a = audio_frames(frames)
        dims = {"batch": wl.batch, "latent_frames": lf, "latent_h": lh, "latent_w": lw, "audio_frames": a,
                "text_len": wl.text_len}
        notes.append(f"audio: {a} latent frames (round({frames} / {FRAME_RATE:g} fps x {AUDIO_SAMPLE_RATE} / "
                     f"{AUDIO_HOP} / {AUDIO_T})), {a} audio tokens beside {lf * lh * lw} video tokens")
        return Geometry(dims, (wl.batch, int(config["in_channels"]), lf, lh, lw), lf * lh * lw, frames, tuple(notes))

    def passes_per_step(self, config: dict[str, Any], wl: Workload) -> int:
        """Passes per step counting the CFG branches apart (as the other adapters do): negative and positive
        (or the prompt alone without CFG), STG, modality.  The pipeline batches the CFG branches, so one
        step runs one forward fewer (3 with CFG)."""
        return (2 if wl.guidance_scale > 1.0 else 1) + 2

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        b, t, a = dims["batch"], dims["text_len"], dims["audio_frames"]
        f, h, w = dims["latent_frames"], dims["latent_h"], dims["latent_w"]
        n = f * h * w
        f32 = torch.float32
        return {
            "hidden_states": meta_tensor(b, n, int(config["in_channels"]), dtype=dtype),
            "audio_hidden_states": meta_tensor(b, a, int(config["audio_in_channels"]), dtype=dtype),
            "encoder_hidden_states": meta_tensor(b, t, int(config["caption_channels"]), dtype=dtype),
            "audio_encoder_hidden_states": meta_tensor(b, t, int(config["caption_channels"]), dtype=dtype),
            "timestep": meta_tensor(b, dtype=f32),  # t.expand(batch)
            "sigma": meta_tensor(b, dtype=f32),
            "encoder_attention_mask": meta_tensor(b, t, dtype=torch.int64),  # the connectors' binary mask
            "audio_encoder_attention_mask": meta_tensor(b, t, dtype=torch.int64),
            "num_frames": f,
            "height": h,
            "width": w,
            "fps": FRAME_RATE,
            "audio_num_frames": a,
            "video_coords": meta_tensor(b, 3, n, 2, dtype=f32),  # rope.prepare_video_coords
            "audio_coords": meta_tensor(b, 1, a, 2, dtype=f32),  # audio_rope.prepare_audio_coords
            "isolate_modalities": self.pass_kind == "modality",
            "spatio_temporal_guidance_blocks": list(STG_BLOCKS) if self.pass_kind == "stg" else None,
            "perturbation_mask": None,
            "use_cross_timestep": True,
            "return_dict": False,
        }

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        return {}

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {s: (1, 1 << 16) for s in self.symbols}

    def stages(self, config: dict[str, Any], wl: Workload, *, batched_cfg: bool = False) -> tuple[StagePlan, ...]:
        """Per step: the CFG forward (2x the batch, batched as the pipeline always does), the STG forward and
        the modality-isolation forward (each 1x the batch)."""
        s = wl.steps
        cfg = wl.guidance_scale > 1.0
        first = StagePlan("transformer", "transformer",
                          "denoiser (CFG: negative and positive prompts in one forward of 2x the batch)" if cfg
                          else "denoiser (no CFG: one forward of the batch)",
                          runs=s, batch_factor=2 if cfg else 1, steps=s)
        stg = StagePlan("transformer_stg", "transformer",
                        f"spatio-temporal guidance pass (blocks {list(STG_BLOCKS)}, stg_scale 1.0)", runs=s, steps=s,
                        root="transformer_stg", adapter=replace(self, name="ltx2-stg", pass_kind="stg"),
                        notes=("transformer_stg: LTX2Pipeline's STG forward at its default stg_scale 1.0; with "
                               "perturbed_attn False (LTX-2.0) block 28 runs unperturbed, a plain forward",))
        mod = StagePlan("transformer_modality", "transformer",
                        "modality-isolation guidance pass (no audio<->video cross-attention, modality_scale 3.0)",
                        runs=s, steps=s, root="transformer_modality",
                        adapter=replace(self, name="ltx2-modality", pass_kind="modality"))
        return first, stg, mod

    def pipeline_stages(self, config: dict[str, Any], wl: Workload,
                        geometry: Geometry) -> tuple[tuple[StagePlan, ...], tuple[StagePlan, ...]]:
        b, d = geometry.dims["batch"], geometry.dims
        runs = 2 if wl.guidance_scale > 1.0 else 1
        t = d["text_len"]
        before = (
            StagePlan("text_encoder", "text_encoder",
                      f"text encoder (Gemma 3 12B, {t} left-padded tokens, all 49 hidden states; "
                      f"{'prompt and negative prompt' if runs == 2 else 'prompt'})",
                      runs=runs, root="text_encoder", adapter=GEMMA3_LTX2, dims={"batch": b, "seq_len": t}),
            StagePlan("connectors", "connectors",
                      f"text connectors (video and audio, {'negative + positive batched' if runs == 2 else 'prompt'})",
                      runs=1, root="connectors", adapter=CONNECTORS, dims={"batch": b * runs, "seq_len": t}),
        )
        after = (
            StagePlan("vae", "vae", "VAE decode (AutoencoderKLLTX2Video, one pass)", runs=1, root="vae",
                      adapter=VAE_DECODE_LTX2, dims={"batch": b, "latent_frames": d["latent_frames"],
                                                     "latent_h": d["latent_h"], "latent_w": d["latent_w"]}),
            StagePlan("audio_vae", "audio_vae", "audio VAE decode (AutoencoderKLLTX2Audio, latents to mel spectrogram)",
                      runs=1, root="audio_vae", adapter=AUDIO_VAE_DECODE,
                      dims={"batch": b, "audio_frames": d["audio_frames"]}),
            StagePlan("vocoder", "vocoder", "vocoder (LTX2Vocoder, mel spectrogram to 24 kHz stereo waveform)",
                      runs=1, root="vocoder", adapter=VOCODER,
                      dims={"batch": b, "mel_frames": mel_frames(d["audio_frames"])}),
        )
        return before, after


# -- the stages around the transformer ------------------------------------------------------------------


def _gemma_wrapper(model: torch.nn.Module) -> torch.nn.Module:
    import torch

    class GemmaCall(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.component: Any = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            # LTX2Pipeline._get_gemma_prompt_embeds
            out = self.component(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
            return torch.stack(out.hidden_states, dim=-1).flatten(2, 3)

    return GemmaCall()


@dataclass
class Gemma3Text(StageAdapter):
    """Gemma 3 (``Gemma3ForConditionalGeneration``) on token ids with their mask, every hidden state kept."""

    name: str = "gemma3-ltx2"
    library: str = "transformers"
    classes: tuple[str, ...] = ("Gemma3ForConditionalGeneration",)
    symbols: tuple[str, ...] = ("batch", "seq_len")
    category_rules: Rules = TEXT_CATEGORIES
    reference_on_graph: bool = True

    def supports_dynamic(self, config: dict[str, Any]) -> bool:
        return False  # the sliding-window masks specialise the length: one export per length

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return _gemma_wrapper(model)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        b, n = dims["batch"], dims["seq_len"]
        return {"input_ids": meta_tensor(b, n, dtype=torch.long), "attention_mask": meta_tensor(b, n, dtype=torch.long)}

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        return {}


def _build_ltx2_pipeline_module(config: dict[str, Any], dtype: str) -> torch.nn.Module:
    """``LTX2TextConnectors`` / ``LTX2Vocoder`` (diffusers.pipelines.ltx2, not top-level diffusers classes) on meta."""
    import warnings

    import torch
    from diffusers.pipelines import ltx2

    from fxmeter.errors import ConfigError
    from fxmeter.model.capture import DTYPES, apply_dtype_policy, check_signature

    name = str(config["_class_name"])
    cls = getattr(ltx2, name)
    cfg = {k: v for k, v in config.items() if not k.startswith("_")}
    check_signature(cls, cfg)
    try:
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")
            model = cls.from_config(cfg)
    except Exception as e:
        raise ConfigError(f"{name} rejected the config: {type(e).__name__}: {e}") from None
    apply_dtype_policy(model, DTYPES[dtype])
    return model.eval()  # type: ignore[no-any-return]


def _connectors_wrapper(model: torch.nn.Module) -> torch.nn.Module:
    import torch

    class ConnectorsCall(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.component: Any = model

        def forward(self, prompt_embeds: torch.Tensor, prompt_attention_mask: torch.Tensor) -> Any:
            # LTX2Pipeline.__call__: self.connectors(prompt_embeds, prompt_attention_mask, padding_side="left")
            return self.component(prompt_embeds, prompt_attention_mask, padding_side="left")

    return ConnectorsCall()


@dataclass
class LTX2Connectors(StageAdapter):
    """``LTX2TextConnectors`` on the packed Gemma hidden states (``caption_channels x text_proj_in_factor`` wide)."""

    name: str = "ltx2-connectors"
    classes: tuple[str, ...] = ("LTX2TextConnectors",)
    symbols: tuple[str, ...] = ("batch", "seq_len")
    category_rules: Rules = TEXT_CATEGORIES

    def build_component(self, config: dict[str, Any], dtype: str, build_diffusers: Builder) -> torch.nn.Module:
        return _build_ltx2_pipeline_module(config, dtype)

    def supports_dynamic(self, config: dict[str, Any]) -> bool:
        return False  # the learnable registers need the length divisible by their count

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return _connectors_wrapper(model)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        b, n = dims["batch"], dims["seq_len"]
        width = int(config.get("caption_channels", 3840)) * int(config.get("text_proj_in_factor", 49))
        return {"prompt_embeds": meta_tensor(b, n, width, dtype=dtype),
                "prompt_attention_mask": meta_tensor(b, n, dtype=torch.long)}

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        return {}


def _audio_decode_wrapper(model: torch.nn.Module) -> torch.nn.Module:
    import torch

    class AudioDecode(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.component: Any = model

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return self.component.decode(z, return_dict=False)[0]  # self.audio_vae.decode(audio_latents, ...)

    return AudioDecode()


@dataclass
class LTX2AudioDecode(StageAdapter):
    """``AutoencoderKLLTX2Audio.decode`` of ``(B, latent_channels, A, mel_bins / 4)`` latents."""

    name: str = "ltx2-audio-vae-decode"
    classes: tuple[str, ...] = ("AutoencoderKLLTX2Audio",)
    symbols: tuple[str, ...] = ("batch", "audio_frames")
    category_rules: Rules = VAE_CATEGORIES

    def supports_dynamic(self, config: dict[str, Any]) -> bool:
        return False

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return _audio_decode_wrapper(model)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        c = int(config.get("latent_channels", AUDIO_LATENT_CHANNELS))
        bins = int(config.get("mel_bins", MEL_BINS)) // MEL_RATIO
        return {"z": meta_tensor(dims["batch"], c, dims["audio_frames"], bins, dtype=dtype)}

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        return {}


def _vocoder_wrapper(model: torch.nn.Module) -> torch.nn.Module:
    import torch

    class VocoderCall(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.component: Any = model

        def forward(self, mel: torch.Tensor) -> torch.Tensor:
            return self.component(mel)  # audio = self.vocoder(generated_mel_spectrograms)

    return VocoderCall()


@dataclass
class LTX2VocoderCall(StageAdapter):
    """``LTX2Vocoder`` on the audio VAE's ``(B, 2, mel_frames, 64)`` mel spectrogram."""

    name: str = "ltx2-vocoder"
    classes: tuple[str, ...] = ("LTX2Vocoder",)
    symbols: tuple[str, ...] = ("batch", "mel_frames")
    category_rules: Rules = VAE_CATEGORIES

    def build_component(self, config: dict[str, Any], dtype: str, build_diffusers: Builder) -> torch.nn.Module:
        return _build_ltx2_pipeline_module(config, dtype)

    def supports_dynamic(self, config: dict[str, Any]) -> bool:
        return False

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return _vocoder_wrapper(model)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        channels = int(config.get("out_channels", 2))  # the audio VAE's output_channels (stereo)
        bins = int(config.get("in_channels", 128)) // channels
        return {"mel": meta_tensor(dims["batch"], channels, dims["mel_frames"], bins, dtype=dtype)}

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        return {}


GEMMA3_LTX2 = Gemma3Text()
CONNECTORS = LTX2Connectors()
VAE_DECODE_LTX2 = VaeDecode(name="vae-decode-ltx2", classes=("AutoencoderKLLTX2Video",), kind="ltx")
AUDIO_VAE_DECODE = LTX2AudioDecode()
VOCODER = LTX2VocoderCall()

ADAPTERS = (LTX2Adapter(),)
MODELS = (
    ModelSpec(
        "ltx-2",
        "ltx-2/transformer/config.json",
        "ltx_2",
        "ltx2-512p",
        "https://github.com/huggingface/diffusers/blob/8d8a65621412d66ba493717f8c4574a1af46732d/scripts/"
        "convert_ltx2_to_diffusers.py",
        "LTX-2 text-to-audio+video, 19B (CFG batched + STG + modality guidance: 3 forwards/step)",
        {c: f"ltx-2/{c}" for c in ("text_encoder", "connectors", "vae", "audio_vae", "vocoder")},
    ),
)
PRESETS = (
    Workload("ltx2-512p", 121, 512, 768, 30, TEXT_LEN, guidance_scale=3.0, family="ltx2",
             description="LTX2Pipeline defaults: 768x512, 121 frames at 24 fps (+ 5 s of audio), 30 steps, "
                         "CFG 3.0 (audio 7.0), STG 1.0 at block 28, modality 3.0, 1024 text tokens"),
)
STAGE_ADAPTERS = {
    "Gemma3ForConditionalGeneration": GEMMA3_LTX2,
    "LTX2TextConnectors": CONNECTORS,
    "AutoencoderKLLTX2Video": VAE_DECODE_LTX2,
    "AutoencoderKLLTX2Audio": AUDIO_VAE_DECODE,
    "LTX2Vocoder": VOCODER,
}
