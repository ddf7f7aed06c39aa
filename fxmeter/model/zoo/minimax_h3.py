"""MiniMax-H3 (diffusers ``MiniMaxH3Transformer3DModel``), as ``MiniMaxH3ModularPipeline``'s ``t2va`` workflow runs it.

Why one long module: a model is one file (fxmeter/model/zoo): the packed-sequence layout, the
scheduler's timestep counts, the tiled VAE plan and the stages are that one declaration.

MiniMax-H3 generates a 24 fps video with a 32 kHz stereo soundtrack from one transformer that denoises
**one packed sequence** ``[text | target audio (L then R) | target video]`` with full self-attention
(no cross-attention, no CFG: the checkpoint is guidance-distilled, one forward per step).  Everything
below is copied from diffusers 0.42.1 (``modular_pipelines/minimax_h3/*``, the model classes):

* **Canvas and length** (``MiniMaxH3PrepareLayoutStep``): height and width multiples of
  ``canvas_multiple`` = VAE 16 x patch 2 = 32 (the default t2va canvas is 16:9 at short edge 768 under
  768 x 1344 pixels: 1344 x 768); ``num_frames`` (default 124) is rounded *up* to ``17 n + 5`` and the
  duration must stay within 5-15 s at 24 fps; the video VAE gives ``5 n + 2`` latent frames and
  ``round(frames / 24 * 40)`` audio latents per channel.
* **Rows**: video ``latent_frames x (H/32) x (W/32)`` (patch 1x2x2 of the 16x latent), audio
  ``2 x audio latents`` (stereo, channel-major), text = the prompt's tokens (``t2va`` tokenizes the
  prompt verbatim, no template, no padding: the workload's ``text_len`` *is* the prompt length).
  ``seq_len`` = text + audio + video.  The forward's structural inputs (``position_ids`` (S, 3) float64,
  ``token_tags``/``timestep_indices`` (S,), the three row-index tensors) are built as the layout step builds them.
* **Steps** (``MiniMaxH3SetTimestepsStep``): ``num_inference_steps`` (50, the modular default and SGLang's)
  counts grid points, terminal 0 included, so it runs ``num_inference_steps - 1`` forwards.  The workload's
  ``steps`` are the forwards (the denoising steps, 49 by default): the schedule is built over ``steps + 1``
  grid points (``MiniMaxH3Scheduler`` collapses float32 duplicates of its shifted grid, which can only
  lower the count).  Video (shift 12) and audio (shift 3) rows step their own schedules
  inside one forward, so ``timestep`` holds the *distinct* noise levels of the step: one at the first
  step (both at t = 0), two after.  The AdaLN table (``adaln_proj``, 18 x 5376 per timestep) is computed
  per distinct timestep, so the stages are planned per distinct count (the schedules themselves come
  from the real ``MiniMaxH3Scheduler``).
* **Text encoder** (``get_qwen3vl_prompt_embeds``): ``text_encoder.model(input_ids, attention_mask=ones,
  mm_token_type_ids=zeros, use_cache=False, output_hidden_states=True).hidden_states[50]`` on Qwen3-VL-32B:
  the language model runs every layer (the hidden state is read after it), the vision tower does not run
  for a text-only prompt and the LM head is not called.
* **Video VAE decode** (``MiniMaxH3VideoDecodeStep``): ``vae.decode(z, return_dict=False)[0]`` with
  MiniMax-H3's defaults: **spatial tiling on** (256-pixel tiles, 64-pixel minimum overlap) and the
  temporal chunking of ``clip_length`` 17 / ``token_drop`` 3: every tile of every 7-latent-frame chunk
  runs ``decoder(post_quant_conv(tile))``, the 36-layer ViT (196 calls at the default 1344 x 768 x 124).
  All calls have one shape, so the stage is that real call, traced once and run once per tile and
  chunk (``tile_count``/``decode_chunks`` copy ``_split_tiles``/``_decode``; a test checks them against
  the class); exporting the whole decode would be ~700k graph nodes.  What is left out: the linear
  blending of tile overlaps and chunk cross-fades (elementwise, no matmul: FlopCounterMode's count of
  the whole ``decode`` equals the calls', a slow test checks it) and the latents' cast on entry.
* **Audio VAE decode** (``MiniMaxH3AudioDecodeStep``): ``audio_vae.decode(z, return_dict=False)[0]`` on the
  two stereo channels as a batch of 2.

Components load as ``pipe.load_components(dtype=torch.bfloat16)`` (the pipeline docstring): the
deployment ``--dtype``; each class's ``_keep_in_fp32_modules`` (the transformer's patch projections,
timestep MLP and heads; the video VAE's norms) stay float32.

Configs: the transformer's from MiniMax-AI/MiniMax-H3 on GitHub (the ref2va partition, same architecture
as t2va's, equal to the class defaults); the audio VAE's from the same repository; the video VAE's are
the class defaults (no public copy found; the defaults are the released geometry); the text encoder's
the Qwen3-VL-32B values (see each ``_source``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from fxmeter.errors import WorkloadError
from fxmeter.model.adapters._common import ANY, ATTN, MATMUL, NORM, Rules
from fxmeter.model.adapters.base import Adapter, Geometry, SymbolAxis
from fxmeter.model.adapters.plans import Plans, decode, text
from fxmeter.model.adapters.stage import StageAdapter, meta_tensor
from fxmeter.model.adapters.text_encoders import TEXT_CATEGORIES
from fxmeter.model.adapters.vaes import VAE_CATEGORIES, VaeDecode
from fxmeter.model.pipeline import ModelSpec, StagePlan
from fxmeter.model.workload import Workload

if TYPE_CHECKING:
    import torch

FPS = 24  # MINIMAX_H3_FPS
CLIP_LENGTH, LATENTS_PER_CHUNK = 17, 5  # vae.config.clip_length, vae.tokens_chunk_size
VAE_S = 16  # vae.spatial_compression_ratio
AUDIO_LATENTS_PER_S, AUDIO_CHANNELS = 40, 2
MIN_SECONDS, MAX_SECONDS = 5.0, 15.0
VIDEO_SHIFT, AUDIO_SHIFT = 12.0, 3.0  # the two MiniMaxH3Scheduler configs of the release
TEXT_ENCODER_LAYER = 50  # MiniMaxH3ModularPipeline.text_encoder_layer
MODALITIES = 3  # MINIMAX_H3_MODALITY_NUM: AdaLN rows per timestep


def aligned_frames(frames: int) -> int:
    """``align_num_frames``: ``frames`` rounded up to the next ``17 n + 5``."""
    while frames % CLIP_LENGTH != LATENTS_PER_CHUNK:
        frames += 1
    return frames


def video_latent_frames(frames: int) -> int:
    """``video_latent_num_frames``: ``17 n + 5`` frames -> ``5 n + 2`` latent frames."""
    return (frames - LATENTS_PER_CHUNK) // CLIP_LENGTH * LATENTS_PER_CHUNK + 2


def audio_latents(frames: int) -> int:
    """``audio_latent_num_frames``: audio latents per channel covering ``frames`` at 24 fps."""
    return int(round(frames / FPS * AUDIO_LATENTS_PER_S))


def distinct_timesteps(steps: int) -> list[int]:
    """Per forward, how many distinct timesteps ``MiniMaxH3SetTimestepsStep`` hands the transformer for ``steps``
    denoising steps (``num_inference_steps = steps + 1`` grid points): the video and audio schedules of
    ``MiniMaxH3Scheduler`` (shift 12 and 3) zipped, text rows on the video timestep.

    Both grids start at sigma 1 (``s * 1 / (1 + (s - 1) * 1)`` is exactly 1 in float32: one timestep, 0) and
    differ at every later point (``12b/(1+11b)`` and ``3b/(1+2b)`` meet only at b = 0 and 1, and adjacent
    float32 grid points stay distinct below about a million points), so below that the answer is written
    out without importing the scheduler (a warm trace imports no torch); above it the real scheduler
    decides (its ``unique_consecutive`` may collapse grid points).  ``tests/test_zoo_minimax_h3.py`` checks
    both against the scheduler."""
    if steps + 1 < 1_000_000:
        return [1] + [2] * (steps - 1)
    return scheduler_timesteps(steps)


def scheduler_timesteps(steps: int) -> list[int]:
    """:func:`distinct_timesteps` from the real ``MiniMaxH3Scheduler`` grids."""
    from diffusers.schedulers.scheduling_minimax_h3 import MiniMaxH3Scheduler

    video, audio = MiniMaxH3Scheduler(shift=VIDEO_SHIFT), MiniMaxH3Scheduler(shift=AUDIO_SHIFT)
    video.set_timesteps(steps + 1)
    audio.set_timesteps(steps + 1)
    return [len({float(t), float(a)}) for t, a in zip(video.timesteps.tolist(), audio.timesteps.tolist())]


_BLOCKS = r"^(transformer_blocks|token_refiner\.refiner_blocks)\.\d+"


@dataclass
class MiniMaxH3Adapter(Adapter):
    name: str = "minimax_h3"
    diffusers_class: str = "MiniMaxH3Transformer3DModel"
    repeated: dict[str, str] = field(default_factory=lambda: {"transformer_blocks": "num_layers"})
    symbols: tuple[str, ...] = ("batch", "text_len", "audio_tokens", "video_tokens", "seq_len", "timesteps")
    required_keys: tuple[str, ...] = (
        "num_attention_heads", "attention_head_dim", "hidden_size", "num_layers", "in_channels",
        "audio_in_channels", "patch_size", "text_dim",
    )
    category_rules: Rules = (
        (rf"{_BLOCKS}\.attn(\.|$)", ATTN, "attention_core"),
        (rf"{_BLOCKS}\.attn(\.|$)", MATMUL, "attention_proj"),
        (r".", NORM, "norms"),
        (r"^$", NORM, "norms"),
        (rf"{_BLOCKS}\.attn$", ANY, "rope"),  # the rotary application inside the processor
        (rf"{_BLOCKS}\.ff(\.|$)", ANY, "ffn"),
        (rf"{_BLOCKS}(\.|$)", ANY, "modulation"),  # adaln_proj and the per-row shift/scale/gate
        (r"^(proj_in|audio_proj_in|context_embedder|time_proj|time_embedder|rope|token_refiner)(\.|$)", ANY,
         "embeddings"),
        (r"^(norm_out|proj_out|audio_proj_out)(\.|$)", ANY, "head"),
        (r"^$", ANY, "head"),  # packing the rows (index_copy), the AdaLN row index, selecting the outputs
    )
    default_slug: str = "minimax_h3"
    family: str = "minimax_h3"
    default_workload: str | None = "minimax-h3-768p"
    positive_keys: tuple[str, ...] = (
        "num_attention_heads", "attention_head_dim", "hidden_size", "num_layers", "num_refiner_layers", "ffn_dim",
        "in_channels", "audio_in_channels", "patch_size", "text_dim", "freq_dim", "time_embed_hidden_dim",
        "time_embed_dim", "rope_freq_dim",
    )
    offload_seq: tuple[str, ...] = ("text_encoder", "transformer", "vae", "audio_vae")

    # -- geometry -----------------------------------------------------------------------------------
    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        pt, ph, pw = (int(p) for p in config["patch_size"])
        multiple = VAE_S * pw
        if wl.batch != 1:
            raise WorkloadError("MiniMax-H3 packs one request into one sequence (its pipeline takes a single prompt "
                                f"string): batch must be 1, got {wl.batch}")
        if wl.height % multiple or wl.width % multiple:
            raise WorkloadError(f"height and width must be multiples of {multiple} (VAE {VAE_S} x patch {pw}, "
                                f"MiniMaxH3ModularPipeline.canvas_multiple); got {wl.height}x{wl.width}")
        notes: list[str] = []
        frames = aligned_frames(wl.frames)
        if frames != wl.frames:
            notes.append(f"frames={wl.frames} is not 17n+5; rounded up to {frames} as MiniMaxH3PrepareLayoutStep does")
        seconds = frames / FPS
        if not MIN_SECONDS <= seconds <= MAX_SECONDS:
            raise WorkloadError(f"MiniMax-H3 generates {MIN_SECONDS:g}-{MAX_SECONDS:g} s at {FPS} fps: frames rounded "
                                f"up to 17n+5 must be {int(MIN_SECONDS * FPS)}-{int(MAX_SECONDS * FPS)}, got {frames}")
        lf, lh, lw = video_latent_frames(frames), wl.height // VAE_S, wl.width // VAE_S
        if lf % pt:
            raise WorkloadError(f"latent frames {lf} not divisible by patch_size[0] {pt}")
        video = (lf // pt) * (lh // ph) * (lw // pw)
        audio = AUDIO_CHANNELS * audio_latents(frames)
        dims = {"batch": 1, "text_len": wl.text_len, "audio_tokens": audio, "video_tokens": video,
                "seq_len": wl.text_len + audio + video, "timesteps": 2}
        return Geometry(dims, (1, int(config["in_channels"]), lf, lh, lw), dims["seq_len"], frames, tuple(notes))

    def passes_per_step(self, config: dict[str, Any], wl: Workload) -> int:
        """One: the checkpoint is guidance-distilled (no guider, no negative prompt)."""
        return 1

    def stages(self, config: dict[str, Any], wl: Workload, *, batched_cfg: bool = False) -> tuple[StagePlan, ...]:
        """``steps`` forwards (``num_inference_steps = steps + 1``), grouped by the number of distinct timesteps."""
        counts = distinct_timesteps(wl.steps)
        seq = self.geometry(config, wl).dims
        plans = []
        for n in sorted(set(counts)):
            runs = counts.count(n)
            name = "transformer" if n == max(counts) else f"transformer_t{n}"
            role = (f"denoiser ({runs} of the {len(counts)} forwards carry {n} distinct "
                    f"timestep{'s' if n > 1 else ''}: video and audio {'at t = 0' if n == 1 else 'on their own schedules'})")
            plans.append(StagePlan(name, "transformer", role, runs=runs, steps=runs, dims={**seq, "timesteps": n},
                                   notes=(f"{name}: MiniMaxH3Scheduler over {wl.steps + 1} grid points (terminal 0 included) "
                                          f"gives {len(counts)} forwards; video shift {VIDEO_SHIFT:g}, audio shift "
                                          f"{AUDIO_SHIFT:g}",)))
        # the steady-state forward first: the report's per-forward figures (and verify's reference, which runs the
        # geometry's dims) describe it; the first step's forward follows
        return tuple(sorted(plans, key=lambda p: p.name != "transformer"))

    # -- export -----------------------------------------------------------------------------------------
    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        pt, ph, pw = (int(p) for p in config["patch_size"])
        b, t, a, v, s = dims["batch"], dims["text_len"], dims["audio_tokens"], dims["video_tokens"], dims["seq_len"]
        long = torch.long
        return {
            # patchify_video_latents / the audio rows: float32 latents (MiniMaxH3PrepareLatentsStep), latents[None]
            "hidden_states": meta_tensor(b, v, int(config["in_channels"]) * pt * ph * pw, dtype=torch.float32),
            "audio_hidden_states": meta_tensor(b, a, int(config["audio_in_channels"]), dtype=torch.float32),
            "encoder_hidden_states": meta_tensor(b, t, int(config["text_dim"]), dtype=dtype),  # the encoder's dtype
            "timestep": meta_tensor(dims["timesteps"], dtype=torch.float32),  # torch.unique of float32 row timesteps
            "timestep_indices": meta_tensor(s, dtype=long),
            "token_tags": meta_tensor(s, dtype=long),
            "position_ids": meta_tensor(s, 3, dtype=torch.float64),  # the fp64 rotary grid
            "video_indices": meta_tensor(v, dtype=long),
            "audio_indices": meta_tensor(a, dtype=long),
            "text_indices": meta_tensor(t, dtype=long),
            "return_dict": False,
        }

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        return {
            "hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("video_tokens")},
            "audio_hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("audio_tokens")},
            "encoder_hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("text_len")},
            "timestep": {0: SymbolAxis("timesteps")},
            "timestep_indices": {0: SymbolAxis("seq_len")},
            "token_tags": {0: SymbolAxis("seq_len")},
            "position_ids": {0: SymbolAxis("seq_len")},
            "video_indices": {0: SymbolAxis("video_tokens")},
            "audio_indices": {0: SymbolAxis("audio_tokens")},
            "text_indices": {0: SymbolAxis("text_len")},
        }

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 64), "text_len": (1, 1 << 16), "audio_tokens": (1, 1 << 16), "video_tokens": (1, 1 << 20),
                "seq_len": (3, 1 << 21), "timesteps": (1, 8)}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 2, "text_len": 5, "audio_tokens": 6, "video_tokens": 8, "seq_len": 19, "timesteps": 3}


# -- the stages around the transformer ----------------------------------------------------------------


def _qwen3vl_wrapper(model: torch.nn.Module, layer: int) -> torch.nn.Module:
    import torch

    class Qwen3VLCall(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.component: Any = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    mm_token_type_ids: torch.Tensor) -> torch.Tensor:
            # get_qwen3vl_prompt_embeds: text_encoder.model(...) (no LM head), hidden_states[50]
            out = self.component.model(input_ids=input_ids, attention_mask=attention_mask,
                                       mm_token_type_ids=mm_token_type_ids, use_cache=False, output_hidden_states=True)
            return out.hidden_states[layer]  # type: ignore[no-any-return]

    return Qwen3VLCall()


@dataclass
class Qwen3VLText(StageAdapter):
    """Qwen3-VL's language model on a text-only prompt (no vision inputs: the vision tower does not run)."""

    name: str = "qwen3vl-h3"
    library: str = "transformers"
    classes: tuple[str, ...] = ("Qwen3VLForConditionalGeneration",)
    symbols: tuple[str, ...] = ("batch", "seq_len")
    fixed_symbols: tuple[str, ...] = ("batch",)
    category_rules: Rules = TEXT_CATEGORIES
    reference_on_graph: bool = True
    layer: int = TEXT_ENCODER_LAYER

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return _qwen3vl_wrapper(model, self.layer)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        b, n = dims["batch"], dims["seq_len"]
        return {"input_ids": meta_tensor(b, n, dtype=torch.long), "attention_mask": meta_tensor(b, n, dtype=torch.long),
                "mm_token_type_ids": meta_tensor(b, n, dtype=torch.long)}

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        axes = {0: SymbolAxis("batch"), 1: SymbolAxis("seq_len")}
        return {"input_ids": axes, "attention_mask": dict(axes), "mm_token_type_ids": dict(axes)}

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 64), "seq_len": (2, 1 << 16)}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 1, "seq_len": 7}


#: AutoencoderKLMiniMaxH3's default spatial tiling (use_tiling = True): tile and minimum overlap, in pixels
TILE, TILE_OVERLAP = 256, 64


def tile_count(length: int, tile: int = TILE, overlap: int = TILE_OVERLAP) -> tuple[int, int]:
    """(tiles, tile length in pixels) of ``AutoencoderKLMiniMaxH3._split_tiles`` over ``length`` pixels: one tile
    of the whole length when it fits, else the fewest ``tile``-pixel tiles overlapping by >= ``overlap``."""
    if tile >= length:
        return 1, length
    n = -(-length // tile)
    while tile * n - overlap * (n - 1) - length < 0:
        n += 1
    return n, tile


def decode_chunks(latent_frames: int, token_drop: int = 3) -> int:
    """Temporal chunks ``AutoencoderKLMiniMaxH3._decode`` decodes: ``tokens_chunk_size`` (5) latent frames each,
    plus ``token_overlap`` (2): every chunk is 7 latent frames (the tail is padded by repetition)."""
    tokens = latent_frames + token_drop
    pad = (-tokens) % LATENTS_PER_CHUNK
    return (tokens + pad) // LATENTS_PER_CHUNK - int(token_drop > 0)


def _tile_decode_wrapper(vae: torch.nn.Module) -> torch.nn.Module:
    import torch

    class TileDecode(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.component: Any = vae

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            # AutoencoderKLMiniMaxH3._decode_clip, per tile: self.decoder(self.post_quant_conv(tile))
            return self.component.decoder(self.component.post_quant_conv(z))  # type: ignore[no-any-return]

    return TileDecode()


@dataclass
class MiniMaxH3TileDecode(VaeDecode):
    """One call of the ViT decoder on one spatial tile of one temporal chunk, as ``AutoencoderKLMiniMaxH3.decode``
    makes it (``decoder(post_quant_conv(tile))``, ``tile`` 7 latent frames x the tile's latent size); the stage
    runs it once per tile and chunk.  Static: the decoder's register tokens and RoPE are built from Python ints."""

    name: str = "vae-tile-decode-minimax-h3"
    classes: tuple[str, ...] = ("AutoencoderKLMiniMaxH3",)
    category_rules: Rules = VAE_CATEGORIES

    def specialize(self, config: dict[str, Any]) -> MiniMaxH3TileDecode:
        return replace(self, fixed_symbols=self.symbols)

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return _tile_decode_wrapper(model)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        # decode() has cast the latents to post_quant_conv's dtype (the deployment's) before slicing the tiles
        return {"z": meta_tensor(dims["batch"], int(config.get("latent_channels", 24)), dims["latent_frames"],
                                 dims["latent_h"], dims["latent_w"], dtype=dtype)}


def _audio_decode_wrapper(vae: torch.nn.Module) -> torch.nn.Module:
    import torch

    class AudioDecode(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.component: Any = vae

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return self.component.decode(z, return_dict=False)[0]  # type: ignore[no-any-return]

    return AudioDecode()


@dataclass
class MiniMaxH3AudioDecode(StageAdapter):
    """``audio_vae.decode(z, return_dict=False)[0]``: the two stereo channels as a batch, ``latent_frames`` long."""

    name: str = "audio-vae-decode-minimax-h3"
    classes: tuple[str, ...] = ("AutoencoderKLMiniMaxH3Audio",)
    symbols: tuple[str, ...] = ("batch", "latent_frames")
    fixed_symbols: tuple[str, ...] = ("batch",)
    category_rules: Rules = VAE_CATEGORIES

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return _audio_decode_wrapper(model)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        # MiniMaxH3AfterDenoiseStep: the denoised float32 audio rows, denormalised (float32) before the call
        import torch

        return {"z": meta_tensor(dims["batch"], int(config.get("latent_channels", 32)), dims["latent_frames"],
                                 dtype=torch.float32)}

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        return {"z": {0: SymbolAxis("batch"), 2: SymbolAxis("latent_frames")}}

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 64), "latent_frames": (2, 1 << 14)}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 2, "latent_frames": 7}


QWEN3VL_H3 = Qwen3VLText()
VAE_DECODE_H3 = MiniMaxH3TileDecode()
AUDIO_DECODE_H3 = MiniMaxH3AudioDecode()


def _pipeline_stages(config: dict[str, Any], wl: Workload, g: Geometry) -> Plans:
    """Qwen3-VL-32B on the prompt (once: no negative prompt); the video VAE decode, then the audio VAE decode."""
    _, _, lf, lh, lw = g.latent_shape
    n = g.dims["text_len"]
    before = (text("text_encoder", QWEN3VL_H3, f"Qwen3-VL-32B language model, {n} prompt tokens, hidden_states"
                   f"[{TEXT_ENCODER_LAYER}]", 1, {"batch": 1, "seq_len": n},
                   notes=(f"text_encoder: the prompt verbatim (no template, no padding): text_len is the prompt's "
                          f"token count; every language-model layer runs, hidden_states[{TEXT_ENCODER_LAYER}] is kept",)),)
    th_n, th = tile_count(lh * VAE_S)
    tw_n, tw = tile_count(lw * VAE_S)
    chunks = decode_chunks(lf)
    calls = chunks * th_n * tw_n
    after = (replace(decode(VAE_DECODE_H3, f"AutoencoderKLMiniMaxH3 ViT decoder, {calls} calls: {chunks} temporal chunks of "
                    f"{LATENTS_PER_CHUNK + 2} latent frames x {th_n} x {tw_n} tiles of {th}x{tw} pixels (tiling on by "
                    "default)", {"batch": 1, "latent_frames": LATENTS_PER_CHUNK + 2, "latent_h": th // VAE_S,
                                 "latent_w": tw // VAE_S},
                    notes=(f"vae: MiniMax-H3's VAE ships with spatial tiling on (use_tiling = True): decode() runs "
                           f"decoder(post_quant_conv(tile)) {calls} times ({chunks} chunks x {th_n * tw_n} tiles), each "
                           "costed as one call of the real decoder; the linear blending of tile overlaps and chunk "
                           "cross-fades (elementwise, no matmul) is not counted",)), runs=calls),
             StagePlan("audio_vae", "audio_vae", "audio VAE decode (AutoencoderKLMiniMaxH3Audio, stereo as a batch of 2)",
                       runs=1, root="audio_vae", adapter=AUDIO_DECODE_H3,
                       dims={"batch": AUDIO_CHANNELS, "latent_frames": g.dims["audio_tokens"] // AUDIO_CHANNELS}))
    return before, after


@dataclass
class MiniMaxH3Pipeline(MiniMaxH3Adapter):
    """The adapter with the pipeline's stages (text encoder, video and audio VAE decode)."""

    def pipeline_stages(self, config: dict[str, Any], wl: Workload,
                        geometry: Geometry) -> tuple[tuple[StagePlan, ...], tuple[StagePlan, ...]]:
        return _pipeline_stages(config, wl, geometry)


ADAPTERS = (MiniMaxH3Pipeline(),)
MODELS = (
    ModelSpec(
        "minimax-h3",
        "minimax-h3/transformer/config.json",
        "minimax_h3",
        "minimax-h3-768p",
        "https://github.com/MiniMax-AI/MiniMax-H3/blob/bad8f78d0fca453c9647bdeec4e0cc4ae0b5c0d1/Ref2VA/transformer/config.json",
        "MiniMax-H3 text-to-video+audio, 33B (one packed sequence, guidance-distilled: 1 pass/step)",
        {c: f"minimax-h3/{c}" for c in ("text_encoder", "vae", "audio_vae")},
    ),
)
PRESETS = (
    Workload("minimax-h3-768p", 124, 768, 1344, 49, 128, guidance_scale=1.0,
             description="MiniMaxH3ModularPipeline t2va defaults: 1344x768 (16:9 canvas), 124 frames (5.2 s at 24 fps, "
                         "37 latent frames, 207 audio latents x 2 channels), num_inference_steps 50 = 49 denoising steps, "
                         "no CFG; text 128 = an assumed prompt length (the prompt is not padded)",
             family="minimax_h3"),
)
STAGE_ADAPTERS = {
    "Qwen3VLForConditionalGeneration": QWEN3VL_H3,
    "AutoencoderKLMiniMaxH3": VAE_DECODE_H3,
    "AutoencoderKLMiniMaxH3Audio": AUDIO_DECODE_H3,
}
