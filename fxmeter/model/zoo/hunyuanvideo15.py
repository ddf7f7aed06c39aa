"""HunyuanVideo-1.5 480p text-to-video (diffusers ``HunyuanVideo15Transformer3DModel``, 8.3B), as
``HunyuanVideo15Pipeline`` drives it.

Everything copied from diffusers 0.42.1 (``pipelines/hunyuan_video1_5/pipeline_hunyuan_video1_5.py``, the
model classes):

* **Canvas.**  ``height``/``width`` default to ``calculate_default_height_width(9, 16, target_size=640)``:
  848 x 480; ``num_frames`` 121, 50 steps.  The VAE (``AutoencoderKLHunyuanVideo15``) compresses time by 4
  and space by 16 (32 latent channels); the transformer's patch is 1x1x1, so every latent voxel is a token
  (31 x 30 x 53 = 49,290 at the default).  Its input is ``cat([latents, cond_latents (zeros), mask (zeros)])``:
  65 channels, in the transformer's dtype.
* **Text.**  ``_get_mllm_prompt_embeds``: Qwen2.5-VL-7B's language model (``Qwen2_5_VLTextModel``) on the
  chat-templated prompt padded to ``tokenizer_max_length + crop_start`` = 1000 + 108 tokens (``padding=
  "max_length"``, right padding), ``hidden_states[-3]``, cropped to the last 1000: the encoder always runs
  1108 tokens, the transformer always gets 1000 with the tokenizer's mask.  ByT5 (``text_encoder_2``) runs
  only on quoted text in the prompt (``extract_glyph_texts``); for a plain prompt the pipeline hands the
  transformer 256 zero embeddings with an all-zero mask and **does not run ByT5**: no stage.
* **Guidance.**  ``ClassifierFreeGuidance(guidance_scale=6.0)`` (the conversion script's 480p_t2v guider):
  the negative prompt is encoded too and the transformer runs twice per step (cond, uncond), each a batch of
  the prompts.  ``guidance_scale`` 1.0 turns it off (one pass, one encoder call).
* **Transformer call.**  ``transformer(hidden_states, image_embeds=zeros(B, 729, 1152), timestep=t.expand(B)
  .to(dtype), encoder_hidden_states, encoder_attention_mask, encoder_hidden_states_2, encoder_attention_mask_2,
  return_dict=False)``, the masks cast to the transformer's dtype as ``encode_prompt`` does.
* **VAE.**  ``vae.decode(latents / scaling_factor)`` with the pipeline's defaults (tiling off: the docstring's
  ``enable_tiling()`` is the user's choice): one ``decoder`` call on the whole latent video.  Its mid block's
  causal attention mask is built by a Python loop over every latent token (49,290 at 480p); the stage builds
  the same mask in one ``masked_fill`` (:func:`vectorized_causal_mask`, checked equal in the tests): no FLOP
  either way.

**The data-dependent pieces of the forward.**  ``HunyuanVideo15Transformer3DModel.forward`` branches on
``torch.all(image_embeds == 0)`` and reorders the joint text sequence with boolean masks (``text[text_mask]``,
...): on meta tensors neither can run (``.item()``), under torch.export nor FlopCounterMode.  The text-to-video
pipeline fixes their values: ``image_embeds`` is all zeros (t2v), the ByT5 mask is all zeros (plain prompt) and
the Qwen mask is ``1`` on the first ``valid_text_len`` tokens then ``0`` (right padding).  For exactly those
values, :class:`HunyuanVideo15T2VTransformer3DModel` runs the real forward's source with *only* those
expressions replaced by their shape-equivalent (``_T2V_REPLACEMENTS``: ``is_t2v`` is ``True``, ``x[mask]`` /
``x[~mask]`` become the slices ``x[:n]`` / ``x[n:]``); every other line, module and op is the class's own,
and each replaced expression must occur exactly once (a diffusers change that moves them refuses to build).
The reordered sequence is ``[valid ByT5 (0), valid Qwen (n), image (729), ByT5 padding (256), Qwen padding
(1000 - n)]``: always 1985 tokens, so the valid length moves no FLOP.  Capture and ``fxmeter verify``'s
FlopCounterMode reference both build this class (``model_class``), so they run the same call.

Configs: the transformer's is the conversion script's ``TRANSFORMER_CONFIGS["480p_t2v"]``; the VAE is
``AutoencoderKLHunyuanVideo15()`` (the script builds the class defaults); the text encoder is the language model
of Qwen2.5-VL-7B-Instruct (the script's ``load_mllm``), sizes as bundled for Qwen-Image (each ``_source``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fxmeter.errors import WorkloadError
from fxmeter.model.adapters._common import attention_dims, joint_dit_categories, tp_roles, video_frames
from fxmeter.model.adapters.base import Adapter, Geometry, SymbolAxis
from fxmeter.model.adapters.plans import Plans, decode, text
from fxmeter.model.adapters.stage import meta_tensor
from fxmeter.model.adapters.vaes import VaeDecode
from fxmeter.model.pipeline import ModelSpec
from fxmeter.model.workload import Workload
from fxmeter.model.zoo.z_image import HiddenStateText

if TYPE_CHECKING:
    import torch

VAE_T, VAE_S = 4, 16  # AutoencoderKLHunyuanVideo15 temporal / spatial compression
TOKENIZER_MAX_LENGTH = 1000  # HunyuanVideo15Pipeline.tokenizer_max_length: the Qwen tokens the transformer gets
CROP_START = 108  # prompt_template_encode_start_idx: the chat template's tokens, cropped after the encoder
SKIP_LAYERS = 2  # _get_mllm_prompt_embeds num_hidden_layers_to_skip: hidden_states[-(2 + 1)]
BYT5_MAX_LENGTH = 256  # tokenizer_2_max_length
IMAGE_TOKENS = 729  # vision_num_semantic_tokens: the zero image_embeds of text-to-video

#: (expression of ``HunyuanVideo15Transformer3DModel.forward``, its value for the text-to-video pipeline's inputs)
_T2V_REPLACEMENTS: tuple[tuple[str, str], ...] = (
    # image_embeds is torch.zeros(...) in HunyuanVideo15Pipeline.__call__
    ("is_t2v = torch.all(image_embeds == 0)", "is_t2v = True"),
    # encoder_attention_mask_3 is then all False: no valid image token, all of them padding
    ("image[image_mask],", "image[:0],"),
    ("image[~image_mask],", "image,"),
    ("image_mask[image_mask],", "image_mask[:0],"),
    ("image_mask[~image_mask],", "image_mask,"),
    # a plain prompt: _get_byt5_prompt_embeds hands zeros with an all-zero mask
    ("text_2[text_mask_2],", "text_2[:0],"),
    ("torch.zeros_like(text_2[~text_mask_2]),", "torch.zeros_like(text_2),"),
    ("text_mask_2[text_mask_2],", "text_mask_2[:0],"),
    ("text_mask_2[~text_mask_2],", "text_mask_2,"),
    # the Qwen mask: 1 on the first valid_text_len tokens (right padding), 0 after
    ("text[text_mask],", "text[:valid_text_len],"),
    ("torch.zeros_like(text[~text_mask]),", "torch.zeros_like(text[valid_text_len:]),"),
    ("text_mask[text_mask],", "text_mask[:valid_text_len],"),
    ("text_mask[~text_mask],", "text_mask[valid_text_len:],"),
    # the valid length is an argument of the call (the pipeline's mask carries it)
    ("return_dict: bool = True,\n", "return_dict: bool = True,\n    valid_text_len: int = 1000,\n"),
)


def t2v_forward_source() -> str:
    """The real ``forward``'s source with :data:`_T2V_REPLACEMENTS` applied (each must match exactly once)."""
    import inspect
    import textwrap

    from diffusers.models.transformers.transformer_hunyuan_video15 import HunyuanVideo15Transformer3DModel

    src = textwrap.dedent(inspect.getsource(HunyuanVideo15Transformer3DModel.forward))
    for old, new in _T2V_REPLACEMENTS:
        n = src.count(old)
        if n != 1:
            raise RuntimeError(f"HunyuanVideo15Transformer3DModel.forward: {old!r} occurs {n} times (expected once); "
                               "this diffusers version's forward is not the one the t2v patch was written for")
        src = src.replace(old, new)
    return src


_T2V_CLASS: Any = None


def t2v_class() -> Any:
    """``HunyuanVideo15Transformer3DModel`` whose ``forward`` is :func:`t2v_forward_source` (built once)."""
    global _T2V_CLASS
    if _T2V_CLASS is None:
        import diffusers.models.transformers.transformer_hunyuan_video15 as mod

        scope: dict[str, Any] = {}
        exec(compile(t2v_forward_source(), mod.__file__ or "transformer_hunyuan_video15.py", "exec"),
             vars(mod), scope)  # the module's globals: torch, apply_lora_scale, Transformer2DModelOutput
        # the same class name: reports and FlopCounterMode's module keys read as the real class's
        _T2V_CLASS = type("HunyuanVideo15Transformer3DModel", (mod.HunyuanVideo15Transformer3DModel,),
                          {"forward": scope["forward"], "__module__": __name__,
                           "__doc__": "HunyuanVideo15Transformer3DModel, forward fixed to text-to-video's mask values"})
    return _T2V_CLASS



@dataclass
class HunyuanVideo15Adapter(Adapter):
    """``HunyuanVideo15Transformer3DModel`` as ``HunyuanVideo15Pipeline`` (text-to-video) calls it."""

    name: str = "hunyuan_video15"
    diffusers_class: str = "HunyuanVideo15Transformer3DModel"
    repeated: dict[str, str] = field(default_factory=lambda: {"transformer_blocks": "num_layers"})
    symbols: tuple[str, ...] = ("batch", "latent_frames", "latent_h", "latent_w", "text_len")
    # text_len, the valid prompt length, only moves slices of the reorder (no FLOP, no shape of any costed op): a constant
    # batch: the reorder loop iterates over the batch (zip over tensors unbinds dim 0), a Python-level count
    fixed_symbols: tuple[str, ...] = ("batch", "text_len")
    required_keys: tuple[str, ...] = (
        "in_channels", "out_channels", "num_attention_heads", "attention_head_dim", "num_layers", "text_embed_dim",
        "text_embed_2_dim", "image_embed_dim", "patch_size", "patch_size_t",
    )
    category_rules: tuple[tuple[str, frozenset[str] | None, str], ...] = joint_dit_categories(
        ("transformer_blocks",),
        r"x_embedder|image_embedder|context_embedder|context_embedder_2|time_embed|cond_type_embed|rope")
    default_slug: str = "hunyuan_video15"
    family: str = "hunyuan_video15"
    default_workload: str | None = "hunyuanvideo1.5-480p"
    offload_seq: tuple[str, ...] = ("text_encoder", "transformer", "vae")  # model_cpu_offload_seq, ByT5 idle
    pipelines: tuple[str, ...] = ("HunyuanVideo15Pipeline",)  # fxmeter.model.folder.pipelines_for
    positive_keys: tuple[str, ...] = (
        "in_channels", "out_channels", "num_attention_heads", "attention_head_dim", "num_layers", "patch_size",
        "patch_size_t", "text_embed_dim", "text_embed_2_dim", "image_embed_dim", "rope_axes_dim",
    )
    sequence_symbols: tuple[str, ...] = ("latent_frames", "latent_h", "latent_w")
    tp_roles: tuple[tuple[str, str], ...] = tp_roles(("transformer_blocks",))

    @property
    def model_class(self) -> Any:
        """The class capture and verify's reference build (:func:`t2v_class`)."""
        return t2v_class()

    def check_config(self, config: dict[str, Any]) -> list[str]:
        bad = super().check_config(config)
        if config.get("task_type", "i2v") != "t2v":
            bad.append(f"task_type = {config.get('task_type', 'i2v')!r}: an image-to-video checkpoint "
                       "(HunyuanVideo15ImageToVideoPipeline, not modeled); the text-to-video pipeline's is 't2v'")
        if config.get("use_meanflow"):
            bad.append("use_meanflow = true: a distilled checkpoint's timestep_r input (not modeled)")
        return bad

    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        p, pt = int(config["patch_size"]), int(config["patch_size_t"])
        frames, notes = video_frames(wl.frames, VAE_T, "HunyuanVideo15Pipeline")
        if wl.height % VAE_S or wl.width % VAE_S:
            raise WorkloadError(f"height and width must be multiples of {VAE_S} (the VAE's spatial compression); "
                                f"got {wl.height}x{wl.width}")
        if not 1 <= wl.text_len <= TOKENIZER_MAX_LENGTH:
            raise WorkloadError(f"text_len is the prompt's valid tokens after the template, 1..{TOKENIZER_MAX_LENGTH} "
                                f"(the tokenizer pads and truncates to {TOKENIZER_MAX_LENGTH} + {CROP_START}); "
                                f"got {wl.text_len}")
        lf, lh, lw = (frames - 1) // VAE_T + 1, wl.height // VAE_S, wl.width // VAE_S
        if lf % pt or lh % p or lw % p:
            raise WorkloadError(f"latent {lf}x{lh}x{lw} not divisible by the patch ({pt}, {p}, {p})")
        dims = {"batch": wl.batch, "latent_frames": lf, "latent_h": lh, "latent_w": lw, "text_len": wl.text_len}
        tokens = (lf // pt) * (lh // p) * (lw // p)
        notes.append(f"the transformer's text sequence is always {IMAGE_TOKENS + BYT5_MAX_LENGTH + TOKENIZER_MAX_LENGTH}"
                     f" tokens ({TOKENIZER_MAX_LENGTH} Qwen, {text_len_note(wl.text_len)}; {BYT5_MAX_LENGTH} ByT5 and "
                     f"{IMAGE_TOKENS} image, all masked out in text-to-video), joint with {tokens} video tokens")
        return Geometry(dims, (wl.batch, int(config["in_channels"]), lf, lh, lw), tokens, frames, tuple(notes))

    def passes_per_step(self, config: dict[str, Any], wl: Workload) -> int:
        """Two (cond, uncond) unless ``guidance_scale`` is 1.0 (``ClassifierFreeGuidance._is_cfg_enabled``)."""
        return 1 if math.isclose(wl.guidance_scale, 1.0) else 2

    def model_dims(self, config: dict[str, Any], geometry: Geometry) -> dict[str, int | None] | None:
        """``num_attention_heads`` x ``attention_head_dim``, FFN ``mlp_ratio`` x hidden, ``num_layers`` double-stream
        blocks over the video tokens and the 1985-token text sequence."""
        return attention_dims(config, int(config["num_layers"]), IMAGE_TOKENS + BYT5_MAX_LENGTH + TOKENIZER_MAX_LENGTH,
                              geometry.tokens, float(config.get("mlp_ratio", 4.0)))

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        b = dims["batch"]
        return {
            # cat([latents, cond_latents_concat, mask_concat], dim=1), all in transformer.dtype
            "hidden_states": meta_tensor(b, int(config["in_channels"]), dims["latent_frames"], dims["latent_h"],
                                         dims["latent_w"], dtype=dtype),
            "timestep": meta_tensor(b, dtype=dtype),  # t.expand(B).to(latent_model_input.dtype)
            "encoder_hidden_states": meta_tensor(b, TOKENIZER_MAX_LENGTH, int(config["text_embed_dim"]), dtype=dtype),
            "encoder_attention_mask": meta_tensor(b, TOKENIZER_MAX_LENGTH, dtype=dtype),  # .to(dtype) in encode_prompt
            "encoder_hidden_states_2": meta_tensor(b, BYT5_MAX_LENGTH, int(config["text_embed_2_dim"]), dtype=dtype),
            "encoder_attention_mask_2": meta_tensor(b, BYT5_MAX_LENGTH, dtype=dtype),
            "image_embeds": meta_tensor(b, IMAGE_TOKENS, int(config["image_embed_dim"]), dtype=dtype),
            "return_dict": False,
            "valid_text_len": int(dims["text_len"]),
        }

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        batch = {0: SymbolAxis("batch")}
        return {
            "hidden_states": {0: SymbolAxis("batch"), 2: SymbolAxis("latent_frames"), 3: SymbolAxis("latent_h"),
                              4: SymbolAxis("latent_w")},
            "timestep": dict(batch),
            "encoder_hidden_states": dict(batch),
            "encoder_attention_mask": dict(batch),
            "encoder_hidden_states_2": dict(batch),
            "encoder_attention_mask_2": dict(batch),
            "image_embeds": dict(batch),
        }

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 1024), "latent_frames": (1, 4096), "latent_h": (1, 4096), "latent_w": (1, 4096),
                "text_len": (1, TOKENIZER_MAX_LENGTH)}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 2, "latent_frames": 3, "latent_h": 4, "latent_w": 5, "text_len": 7}

    def pipeline_stages(self, config: dict[str, Any], wl: Workload, geometry: Geometry) -> Plans:
        """Qwen2.5-VL's language model at 1108 tokens (prompt, and the negative prompt with CFG); no ByT5 for a
        plain prompt; ``AutoencoderKLHunyuanVideo15`` decode of the whole latent video."""
        d = geometry.dims
        n = TOKENIZER_MAX_LENGTH + CROP_START
        runs = self.passes_per_step(config, wl)
        before = (text("text_encoder", QWEN25_VL_TEXT_HV15, f"Qwen2.5-VL-7B language model, {n} tokens (padded)", runs,
                       {"batch": d["batch"], "seq_len": n},
                       notes=(f"text_encoder: Qwen2_5_VLTextModel(ids, mask, output_hidden_states=True).hidden_states"
                              f"[-{SKIP_LAYERS + 1}] at {TOKENIZER_MAX_LENGTH} + {CROP_START} tokens, the template's "
                              f"{CROP_START} cropped",
                              "text_encoder_2 (ByT5) does not run: the prompt has no quoted text (extract_glyph_texts); "
                              "the transformer gets its 256 zero embeddings"),),)
        after = (decode(VAE_DECODE_HV15, "AutoencoderKLHunyuanVideo15, the whole latent video in one decoder call",
                        {"batch": d["batch"], "latent_frames": d["latent_frames"], "latent_h": d["latent_h"],
                         "latent_w": d["latent_w"]},
                        notes=("vae: tiling off (HunyuanVideo15Pipeline's default; the docstring's enable_tiling() is "
                               "the user's choice)",)),)
        return before, after


def text_len_note(n: int) -> str:
    return f"{n} valid" if n < TOKENIZER_MAX_LENGTH else "all valid"


@dataclass
class QwenTextHiddenState(HiddenStateText):
    """``Qwen2_5_VLTextModel`` as ``_get_mllm_prompt_embeds`` calls it: the tokenizer's int64 mask,
    ``hidden_states[-3]`` (the crop of the template's first 108 tokens is a view, no op)."""

    name: str = "qwen2.5-vl-text-hv15"
    classes: tuple[str, ...] = ("Qwen2_5_VLTextModel",)
    index: int = -(SKIP_LAYERS + 1)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        b, n = dims["batch"], dims["seq_len"]
        return {"input_ids": meta_tensor(b, n, dtype=torch.long), "attention_mask": meta_tensor(b, n, dtype=torch.long)}


def vectorized_causal_mask(n_frame: int, n_hw: int, dtype: Any, device: Any, batch_size: int | None = None) -> Any:
    """``HunyuanVideo15AttnBlock.prepare_causal_attention_mask``'s mask without its Python loop over the
    ``n_frame * n_hw`` rows: row ``i`` may see column ``j`` iff ``j // n_hw <= i // n_hw`` (0, else -inf)."""
    import torch

    seq_len = n_frame * n_hw
    frame = torch.arange(seq_len, device=device) // n_hw
    mask = torch.full((seq_len, seq_len), float("-inf"), dtype=dtype, device=device)
    mask = mask.masked_fill(frame[None, :] <= frame[:, None], 0)
    if batch_size is not None:
        mask = mask.unsqueeze(0).expand(batch_size, -1, -1)
    return mask


def _vectorized_mask_wrapper(vae: torch.nn.Module) -> torch.nn.Module:
    import torch
    from diffusers.models.autoencoders.autoencoder_kl_hunyuanvideo15 import HunyuanVideo15AttnBlock

    class VaeDecode(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.component: Any = vae

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            # HunyuanVideo15Pipeline: vae.decode(latents, return_dict=False)[0], the mid block's causal mask built
            # at once (the class's loop runs 49,290 Python iterations at 480p: one fill per row, no FLOP)
            saved = HunyuanVideo15AttnBlock.__dict__["prepare_causal_attention_mask"]
            HunyuanVideo15AttnBlock.prepare_causal_attention_mask = staticmethod(vectorized_causal_mask)  # type: ignore[method-assign,assignment]
            try:
                return self.component.decode(z, return_dict=False)[0]
            finally:
                HunyuanVideo15AttnBlock.prepare_causal_attention_mask = saved  # type: ignore[method-assign]

    return VaeDecode()


@dataclass
class HunyuanVideo15VaeDecode(VaeDecode):
    """``vae.decode(z)`` of ``AutoencoderKLHunyuanVideo15``: one ``decoder`` call on the whole latent video, its
    mid-block attention mask built by :func:`vectorized_causal_mask` (the same values; the class's row loop
    would put one graph node per latent token into the export).  Mask building costs no FLOP either way; its
    memory traffic is the one fill, not a fill per row."""

    name: str = "vae-decode-hv15"
    classes: tuple[str, ...] = ("AutoencoderKLHunyuanVideo15",)

    def specialize(self, config: dict[str, Any]) -> VaeDecode:
        from dataclasses import replace

        return replace(self, fixed_symbols=("batch", "latent_frames"))  # the causal temporal up-sampling specialises it

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return _vectorized_mask_wrapper(model)


QWEN25_VL_TEXT_HV15 = QwenTextHiddenState()
VAE_DECODE_HV15 = HunyuanVideo15VaeDecode()

ADAPTERS = (HunyuanVideo15Adapter(),)
_SCRIPT = ("https://github.com/huggingface/diffusers/blob/38c42b4de1b98bee31cb35d98aa0bf3398a960cb/scripts/"
           "convert_hunyuan_video1_5_to_diffusers.py")
MODELS = (
    ModelSpec("hunyuanvideo1.5-480p-t2v", "hunyuanvideo1.5-480p-t2v/transformer/config.json", "hunyuan_video15",
              "hunyuanvideo1.5-480p", _SCRIPT,
              "HunyuanVideo-1.5 text-to-video, 480p, 8.3B (CFG: 2 passes/step)",
              {c: f"hunyuanvideo1.5-480p-t2v/{c}" for c in ("text_encoder", "vae")}),
)
PRESETS = (
    Workload("hunyuanvideo1.5-480p", 121, 480, 848, 50, 128, guidance_scale=6.0, family="hunyuan_video15",
             description="HunyuanVideo15Pipeline __call__ defaults: 848x480 (16:9 at target_size 640), 121 frames, "
                         "50 steps, CFG 6.0 (the 480p_t2v guider); text 128 = an assumed prompt length (the encoder "
                         "always runs 1108 tokens, the transformer always sees 1985)"),
)
STAGE_ADAPTERS = {
    "Qwen2_5_VLTextModel": QWEN25_VL_TEXT_HV15,
    "AutoencoderKLHunyuanVideo15": VAE_DECODE_HV15,
}
