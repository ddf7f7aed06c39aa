"""Qwen-Image (diffusers ``QwenImageTransformer2DModel``, 20B), as ``QwenImagePipeline`` drives it.

Everything copied from diffusers 0.42.1 ``pipelines/qwenimage/pipeline_qwenimage.py``:

* **VAE and packing.**  ``AutoencoderKLQwenImage`` compresses space by ``2 ** len(temperal_downsample)``
  = 8 and the pipeline packs 2x2 latent patches into one token of ``in_channels`` (64) features:
  an HxW image has ``(H/16) * (W/16)`` image tokens (``_pack_latents``).  The latent is one frame
  (``(B, 16, 1, H/8, W/8)`` unpacked), decoded by ``vae.decode(latents)[0][:, :, 0]``.
* **Text.**  ``_get_qwen_prompt_embeds`` formats the prompt into a chat template, tokenizes with
  ``padding=True`` (to the longest prompt, not to a fixed length), runs Qwen2.5-VL-7B
  (``Qwen2_5_VLForConditionalGeneration``) with ``output_hidden_states=True``, keeps
  ``hidden_states[-1]`` and drops the template's first ``prompt_template_encode_start_idx`` = 34
  tokens; the transformer sees at most ``max_sequence_length`` (512) of the rest.  The workload's
  ``text_len`` is what the transformer sees (the prompt's tokens plus the template's 5 closing
  tokens); the encoder runs ``text_len + 34`` tokens.  The call is the full
  ``...ForConditionalGeneration`` forward: its ``lm_head`` computes logits over every position
  (``logits_to_keep=0``) and they are counted, as they run; the vision tower does not run (no
  ``pixel_values``).
* **Guidance.**  ``true_cfg_scale`` (the workload's ``guidance_scale``) with a negative prompt runs a
  second, separate transformer forward per step and encodes the negative prompt (2 passes, 2
  encoder calls).  Both are costed at ``text_len``; the pipeline encodes the negative prompt at its
  own length (the model card's ``" "`` is 6 tokens after the drop), which the workload cannot
  express.
* **Transformer inputs.**  ``timestep = t.expand(B).to(latents.dtype) / 1000``; ``img_shapes =
  [[(1, H/16, W/16)]] * B`` (Python ints: the RoPE tables are sliced by them, so the export is
  static, one per workload); ``guidance=None`` (no guidance embeds); ``encoder_hidden_states_mask``
  is None: ``encode_prompt`` drops an all-ones mask, which it is for prompts of one length.

Preset ``qwen-image-1328``: the Qwen-Image model card's 1:1 size 1328x1328, 50 steps (the
pipeline's default), ``true_cfg_scale`` 4.0 with a negative prompt, 512 text tokens (the
pipeline's ``max_sequence_length``: the most the transformer sees; a shorter prompt runs fewer,
``--text-len``).  The text encoder and the VAE run in the pipeline's ``torch_dtype`` (the
docstring loads the whole pipeline in bfloat16).

Configs: the transformer and VAE are their diffusers classes' defaults (equal to the published
checkpoint, which the hub-less store does not hold); the text encoder is Qwen2.5-VL-7B-Instruct.
Each file's ``_source`` says where its values come from.
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
    image_only,
    tp_roles,
)
from fxmeter.model.adapters.base import Adapter, Geometry, SymbolAxis
from fxmeter.model.adapters.plans import Plans, cfg_runs, decode, text
from fxmeter.model.adapters.stage import StageAdapter, meta_tensor
from fxmeter.model.adapters.text_encoders import TEXT_CATEGORIES
from fxmeter.model.adapters.vaes import VaeDecode
from fxmeter.model.pipeline import ModelSpec
from fxmeter.model.workload import Workload

if TYPE_CHECKING:
    import torch

VAE_SCALE = 8  # 2 ** len(temperal_downsample) of the Qwen-Image VAE
PACK = 2  # _pack_latents: 2x2 latent patches per token
DROP_IDX = 34  # QwenImagePipeline.prompt_template_encode_start_idx
MAX_SEQUENCE_LENGTH = 512  # QwenImagePipeline.__call__ default (encode_prompt keeps at most this many tokens)

_BLOCKS = r"^transformer_blocks\.\d+"
QWEN_IMAGE_CATEGORIES: Rules = (
    (rf"{_BLOCKS}\.attn(\.|$)", ATTN, "attention_core"),
    (rf"{_BLOCKS}\.attn(\.|$)", MATMUL, "attention_proj"),
    (r".", NORM, "norms"),
    (r"^$", NORM, "norms"),
    (rf"{_BLOCKS}\.attn$", ANY, "rope"),  # the complex RoPE products, concatenation of the two streams
    (rf"{_BLOCKS}\.(img_mlp|txt_mlp)(\.|$)", ANY, "ffn"),
    (rf"{_BLOCKS}(\.|$)", ANY, "modulation"),  # img_mod / txt_mod, the gates and residuals
    (r"^(pos_embed|time_text_embed|txt_norm|txt_in|img_in)(\.|$)", ANY, "embeddings"),
    (r"^(norm_out|proj_out)(\.|$)", ANY, "head"),
    (r"^$", ANY, "head"),
)


@dataclass
class QwenImageAdapter(Adapter):
    name: str = "qwen_image"
    diffusers_class: str = "QwenImageTransformer2DModel"
    # zero_cond_t / use_layer3d_rope change what every block gets, never one block: the 60 blocks are identical
    repeated: dict[str, str] = field(default_factory=lambda: {"transformer_blocks": "num_layers"})
    symbols: tuple[str, ...] = ("batch", "image_tokens", "latent_h", "latent_w", "text_len")
    required_keys: tuple[str, ...] = ("in_channels", "num_layers", "attention_head_dim", "num_attention_heads",
                                      "joint_attention_dim")
    category_rules: Rules = QWEN_IMAGE_CATEGORIES
    default_slug: str = "qwen_image"
    family: str = "qwen_image"
    default_workload: str | None = "qwen-image-1328"
    offload_seq: tuple[str, ...] = ("text_encoder", "transformer", "vae")  # model_cpu_offload_seq
    positive_keys: tuple[str, ...] = ("patch_size", "in_channels", "out_channels", "num_layers", "attention_head_dim",
                                      "num_attention_heads", "joint_attention_dim", "axes_dims_rope")
    sequence_symbols: tuple[str, ...] = ("image_tokens",)
    joint_text_symbols: tuple[str, ...] = ("text_len",)
    tp_roles: tuple[tuple[str, str], ...] = (
        (rf"{_BLOCKS}\.(img_mlp|txt_mlp)\.net\.0\.proj$", "column"),
        (rf"{_BLOCKS}\.(img_mlp|txt_mlp)\.net\.0$", "sharded"),
        (rf"{_BLOCKS}\.(img_mlp|txt_mlp)\.net\.2$", "row"),
        *tp_roles(("transformer_blocks",)),
    )

    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        divisible(wl.height, wl.width, VAE_SCALE * PACK, "VAE 8 x 2x2 packing")
        notes = image_only(wl.frames, "Qwen-Image")
        if wl.text_len > MAX_SEQUENCE_LENGTH:
            notes.append(f"text_len {wl.text_len} > the pipeline's max_sequence_length {MAX_SEQUENCE_LENGTH} "
                         "(QwenImagePipeline raises above 1024; costed as asked)")
        h, w = wl.height // (VAE_SCALE * PACK), wl.width // (VAE_SCALE * PACK)
        dims = {"batch": wl.batch, "image_tokens": h * w, "text_len": wl.text_len,
                "latent_h": h * PACK, "latent_w": w * PACK}
        return Geometry(dims, (wl.batch, h * w, int(config["in_channels"])), h * w, 1, tuple(notes))

    def supports_dynamic(self, config: dict[str, Any]) -> bool:
        """No: ``img_shapes`` are Python ints that slice the RoPE tables."""
        return False

    def model_dims(self, config: dict[str, Any], geometry: Geometry) -> dict[str, int | None] | None:
        """24 heads x 128, FFN 4 x hidden (``FeedForward`` default) in both streams, ``num_layers`` dual-stream
        blocks; the image tokens are split."""
        return attention_dims(config, int(config["num_layers"]), geometry.dims["text_len"], geometry.tokens)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        b, n, t = dims["batch"], dims["image_tokens"], dims["text_len"]
        h, w = dims["latent_h"] // PACK, dims["latent_w"] // PACK
        return {
            "hidden_states": meta_tensor(b, n, int(config["in_channels"]), dtype=dtype),
            "encoder_hidden_states": meta_tensor(b, t, int(config["joint_attention_dim"]), dtype=dtype),
            "timestep": meta_tensor(b, dtype=dtype),  # t.expand(B).to(latents.dtype) / 1000
            "img_shapes": [[(1, h, w)]] * b,
            "return_dict": False,
        }

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        return {
            "hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("image_tokens")},
            "encoder_hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("text_len")},
            "timestep": {0: SymbolAxis("batch")},
        }

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 1024), "image_tokens": (1, 1 << 20), "latent_h": (2, 1 << 12), "latent_w": (2, 1 << 12),
                "text_len": (1, 1 << 16)}

    def pipeline_stages(self, config: dict[str, Any], wl: Workload, geometry: Geometry) -> Plans:
        """Qwen2.5-VL (template + text_len tokens; prompt and negative with true CFG), VAE decode of one frame."""
        b, t = geometry.dims["batch"], geometry.dims["text_len"]
        n = t + DROP_IDX
        before = (text("text_encoder", QWEN25_VL_PROMPT, f"Qwen2.5-VL-7B, {n} tokens (template {DROP_IDX} dropped + {t})",
                       cfg_runs(wl), {"batch": b, "seq_len": n},
                       notes=("text_encoder: Qwen2_5_VLForConditionalGeneration forward as the pipeline calls it "
                              "(hidden_states[-1]; its lm_head logits over every token are computed and counted)",)),)
        after = (decode(VAE_DECODE_QWENIMAGE, "AutoencoderKLQwenImage, one frame",
                        {"batch": b, "latent_frames": 1, "latent_h": geometry.dims["latent_h"],
                         "latent_w": geometry.dims["latent_w"]},
                        notes=("vae: tiling off (vae.enable_tiling() is not modeled)",)),)
        return before, after


# -- the pipeline's other stages --------------------------------------------------------------------


def _qwen_vl_wrapper(model: torch.nn.Module, drop: int) -> torch.nn.Module:
    import torch

    class QwenVLPromptCall(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.component: Any = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            # QwenImagePipeline._get_qwen_prompt_embeds: hidden_states[-1], the template's first `drop` tokens dropped
            out = self.component(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
            return out.hidden_states[-1][:, drop:]

    return QwenVLPromptCall()


@dataclass
class QwenVLPrompt(StageAdapter):
    """A Qwen-VL ``...ForConditionalGeneration`` run on a templated prompt: ``hidden_states[-1]`` minus the
    template's first ``drop`` tokens (``QwenImagePipeline._get_qwen_prompt_embeds``)."""

    name: str = "qwen2.5-vl-prompt"
    library: str = "transformers"
    classes: tuple[str, ...] = ("Qwen2_5_VLForConditionalGeneration",)
    symbols: tuple[str, ...] = ("batch", "seq_len")
    category_rules: Rules = ((r"^lm_head$", ANY, "head"), *TEXT_CATEGORIES)
    # eager FlopCounterMode on meta cannot run transformers' mask checks (.item() on meta): verify counts the graph
    reference_on_graph: bool = True
    drop: int = DROP_IDX

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return _qwen_vl_wrapper(model, self.drop)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        b, n = dims["batch"], dims["seq_len"]
        return {"input_ids": meta_tensor(b, n, dtype=torch.long), "attention_mask": meta_tensor(b, n, dtype=torch.long)}

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        axes = {0: SymbolAxis("batch"), 1: SymbolAxis("seq_len")}
        return {"input_ids": axes, "attention_mask": dict(axes)}

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        # the drop slice adds the guard seq_len - drop != 1
        return {"batch": (1, 1024), "seq_len": (self.drop + 2, 1 << 15)}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 2, "seq_len": self.drop + 7}


@dataclass
class OneFrameVaeDecode(VaeDecode):
    """``vae.decode(z)`` of a Wan-style causal VAE on a one-frame latent (its frame loop runs once)."""

    def specialize(self, config: dict[str, Any]) -> VaeDecode:
        return replace(self, fixed_symbols=("batch", "latent_frames"))


QWEN25_VL_PROMPT = QwenVLPrompt()
VAE_DECODE_QWENIMAGE = OneFrameVaeDecode(name="vae-decode-qwenimage", classes=("AutoencoderKLQwenImage",))

ADAPTERS = (QwenImageAdapter(),)
MODELS = (
    ModelSpec("qwen-image", "qwen-image/transformer/config.json", "qwen_image", "qwen-image-1328",
              "https://github.com/huggingface/diffusers/blob/v0.42.1/src/diffusers/models/transformers/transformer_qwenimage.py",
              "Qwen-Image text-to-image, 20B (true CFG: 2 passes/step)",
              {c: f"qwen-image/{c}" for c in ("text_encoder", "vae")}),
)
PRESETS = (
    Workload("qwen-image-1328", 1, 1328, 1328, 50, MAX_SEQUENCE_LENGTH, guidance_scale=4.0,
             description="Qwen-Image model card: 1328x1328 (1:1), 50 steps, true_cfg_scale 4.0 with a negative prompt "
                         "(2 passes), text 512 (max_sequence_length)", family="qwen_image"),
)
STAGE_ADAPTERS: dict[str, StageAdapter] = {
    "Qwen2_5_VLForConditionalGeneration": QWEN25_VL_PROMPT,
    "AutoencoderKLQwenImage": VAE_DECODE_QWENIMAGE,
}
