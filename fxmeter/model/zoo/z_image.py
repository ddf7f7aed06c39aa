"""Z-Image-Turbo (diffusers ``ZImageTransformer2DModel``, 6B), as ``ZImagePipeline`` drives it.

Everything copied from diffusers 0.42.1 ``pipelines/z_image/pipeline_z_image.py``:

* **Latents.**  The FLUX.1 ``AutoencoderKL`` compresses space by 8 (16 channels); the transformer
  takes a *list* of per-image latents ``(16, 1, H/8, W/8)`` (``latents.unsqueeze(2).unbind(0)``) and
  patchifies them 2x2 itself: ``(H/16) * (W/16)`` image tokens, padded to a multiple of 32
  (``SEQ_MULTI_OF``) with a learned pad token.
* **Text.**  ``_encode_prompt`` applies the Qwen chat template, tokenizes with
  ``padding="max_length"`` to ``max_sequence_length`` (512), runs the Qwen3-4B ``Qwen3Model`` with
  the boolean mask and ``output_hidden_states=True``, keeps ``hidden_states[-2]`` and hands the
  transformer each prompt's *unpadded* tokens (``prompt_embeds[i][prompt_masks[i]]``): the encoder
  always runs 512 tokens, the transformer sees the prompt's ``text_len`` (padded to a multiple of
  32 inside the model, after its own two ``context_refiner`` blocks).  Every encoder layer runs, as
  the model computes them.
* **Guidance.**  CFG runs when ``guidance_scale > 0`` (not ``> 1``): the negative prompt is encoded
  and the two branches are *concatenated into one transformer call* of twice the batch (fxmeter
  costs two forwards of the batch unless ``--batched-cfg``; equal FLOPs when both prompts have
  ``text_len`` tokens).  Z-Image-Turbo is guidance-distilled (``guidance_scale=0.0``): one call per step.
* **Transformer inputs.**  ``x`` the list of bf16 latents, ``t = (1000 - t) / 1000`` in float32,
  ``cap_feats`` the list of ``(text_len, 2560)`` embeddings.  Every length is a Python int (lists,
  padding to 32), so the export is static, one per workload.
* **VAE.**  ``vae.decode(latents / scaling_factor + shift_factor)``: a plain ``AutoencoderKL`` decode.

Preset ``z-image-turbo-1024``: the ``ZImagePipeline`` docstring's call (1024x1024, 8 steps,
``guidance_scale=0.0``: the model card's "9 steps, 8 DiT forwards" in diffusers' own example) with
512 text tokens (``max_sequence_length``: the most the transformer sees).  Everything in the
pipeline's ``torch_dtype`` (the docstring loads bfloat16).

Configs: the transformer from a public copy of the published ``transformer/config.json``, the
text encoder Qwen3-4B, the VAE the FLUX.1 one (each file's ``_source``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fxmeter.model.adapters._common import ANY, ATTN, MATMUL, NORM, Rules, divisible, image_only
from fxmeter.model.adapters.base import Adapter, Builder, Geometry, SymbolAxis
from fxmeter.model.adapters.plans import Plans, decode, text
from fxmeter.model.adapters.stage import StageAdapter, meta_tensor
from fxmeter.model.adapters.text_encoders import TEXT_CATEGORIES
from fxmeter.model.adapters.vaes import VAE_DECODE
from fxmeter.model.pipeline import ModelSpec
from fxmeter.model.workload import Workload

if TYPE_CHECKING:
    import torch

VAE_SCALE = 8  # 2 ** (len(block_out_channels) - 1) of the FLUX.1 VAE
MAX_SEQUENCE_LENGTH = 512  # ZImagePipeline.__call__ default: the encoder's padded length
SEQ_MULTI_OF = 32  # transformer_z_image.SEQ_MULTI_OF: token sequences are padded to a multiple of it
HIDDEN_STATE = -2  # _encode_prompt keeps hidden_states[-2]

_ALL = r"^(layers|noise_refiner|context_refiner)\.\d+"
Z_IMAGE_CATEGORIES: Rules = (
    (rf"{_ALL}\.attention(\.|$)", ATTN, "attention_core"),
    (rf"{_ALL}\.attention(\.|$)", MATMUL, "attention_proj"),
    (r".", NORM, "norms"),
    (r"^$", NORM, "norms"),
    (rf"{_ALL}\.attention$", ANY, "rope"),  # the complex RoPE products
    (rf"{_ALL}\.feed_forward(\.|$)", ANY, "ffn"),
    (rf"{_ALL}(\.|$)", ANY, "modulation"),  # adaLN_modulation, gates, residuals
    (r"^(t_embedder|cap_embedder|all_x_embedder)(\.|$)", ANY, "embeddings"),
    (r"^all_final_layer(\.|$)", ANY, "head"),
    (r"^$", ANY, "head"),  # patchify, padding, RoPE tables, unpatchify
)


def _pad32(n: int) -> int:
    return n + (-n) % SEQ_MULTI_OF


@dataclass
class ZImageAdapter(Adapter):
    name: str = "z_image"
    diffusers_class: str = "ZImageTransformer2DModel"
    # layer_id is stored, never used: the blocks of each list are identical (refiners: modulation on / off)
    repeated: dict[str, str] = field(default_factory=lambda: {
        "layers": "n_layers", "noise_refiner": "n_refiner_layers", "context_refiner": "n_refiner_layers"})
    symbols: tuple[str, ...] = ("batch", "image_tokens", "latent_h", "latent_w", "text_len")
    required_keys: tuple[str, ...] = ("in_channels", "dim", "n_layers", "n_refiner_layers", "n_heads", "cap_feat_dim")
    category_rules: Rules = Z_IMAGE_CATEGORIES
    default_slug: str = "z_image"
    family: str = "z_image"
    default_workload: str | None = "z-image-turbo-1024"
    offload_seq: tuple[str, ...] = ("text_encoder", "transformer", "vae")  # model_cpu_offload_seq
    positive_keys: tuple[str, ...] = ("in_channels", "dim", "n_layers", "n_refiner_layers", "n_heads", "n_kv_heads",
                                      "cap_feat_dim", "axes_dims", "axes_lens", "all_patch_size", "all_f_patch_size")
    sequence_symbols: tuple[str, ...] = ("image_tokens",)

    def build_module(self, config: dict[str, Any], dtype: str, build_diffusers: Builder) -> torch.nn.Module | None:
        """The diffusers model, its autocast blocks traced inline (:func:`_autocast_regions_inline`).

        Built whole (a custom module is not block-replicated): 30 + 2 + 2 blocks on meta."""
        return _autocast_regions_inline(build_diffusers(config, dtype))

    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        divisible(wl.height, wl.width, VAE_SCALE * 2, "VAE 8 x 2x2 patches (ZImagePipeline raises otherwise)")
        notes = image_only(wl.frames, "Z-Image")
        lh, lw = wl.height // VAE_SCALE, wl.width // VAE_SCALE
        n = (lh // 2) * (lw // 2)
        if wl.text_len > MAX_SEQUENCE_LENGTH:
            notes.append(f"text_len {wl.text_len} > max_sequence_length {MAX_SEQUENCE_LENGTH}: the encoder is padded to "
                         f"{wl.text_len} (max_sequence_length={wl.text_len})")
        notes.append(f"the transformer pads the {n} image tokens to {_pad32(n)} and the {wl.text_len} text tokens to "
                     f"{_pad32(wl.text_len)} (multiples of {SEQ_MULTI_OF}): one sequence of {_pad32(n) + _pad32(wl.text_len)}")
        dims = {"batch": wl.batch, "image_tokens": n, "latent_h": lh, "latent_w": lw, "text_len": wl.text_len}
        return Geometry(dims, (wl.batch, int(config["in_channels"]), 1, lh, lw), n, 1, tuple(notes))

    def passes_per_step(self, config: dict[str, Any], wl: Workload) -> int:
        """2 with ``guidance_scale > 0`` (``do_classifier_free_guidance``), else 1 (Turbo: 0.0)."""
        return 2 if wl.guidance_scale > 0 else 1

    def supports_dynamic(self, config: dict[str, Any]) -> bool:
        """No: the inputs are lists and every length (padding to 32 included) is a Python int."""
        return False

    def model_dims(self, config: dict[str, Any], geometry: Geometry) -> dict[str, int | None] | None:
        """``n_heads`` x ``dim / n_heads``, SwiGLU FFN ``int(dim / 3 * 8)``, ``n_layers`` main blocks over the padded
        image + text sequence."""
        dim, heads = int(config["dim"]), int(config["n_heads"])
        return {"heads": heads, "head_dim": dim // heads, "hidden": dim, "ffn": int(dim / 3 * 8),
                "layers": int(config["n_layers"]), "text_len": geometry.dims["text_len"], "tokens": geometry.tokens}

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        b, t = dims["batch"], dims["text_len"]
        c, lh, lw = int(config["in_channels"]), dims["latent_h"], dims["latent_w"]
        return {
            "x": [meta_tensor(c, 1, lh, lw, dtype=dtype) for _ in range(b)],  # latents.unsqueeze(2).unbind(0)
            "t": meta_tensor(b, dtype=torch.float32),  # (1000 - t.expand(B)) / 1000, float32
            "cap_feats": [meta_tensor(t, int(config["cap_feat_dim"]), dtype=dtype) for _ in range(b)],
            "return_dict": False,
        }

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        return {"t": {0: SymbolAxis("batch")}}

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 1024), "image_tokens": (1, 1 << 20), "latent_h": (2, 1 << 12), "latent_w": (2, 1 << 12),
                "text_len": (1, 1 << 16)}

    def pipeline_stages(self, config: dict[str, Any], wl: Workload, geometry: Geometry) -> Plans:
        """Qwen3-4B at max_sequence_length (prompt, and the negative prompt with CFG), AutoencoderKL decode."""
        b, t = geometry.dims["batch"], geometry.dims["text_len"]
        n = max(MAX_SEQUENCE_LENGTH, t)
        runs = self.passes_per_step(config, wl)
        before = (text("text_encoder", QWEN3_HIDDEN, f"Qwen3-4B, {n} tokens (padded to max_sequence_length)", runs,
                       {"batch": b, "seq_len": n},
                       notes=(f"text_encoder: Qwen3Model(ids, bool mask, output_hidden_states=True).hidden_states[{HIDDEN_STATE}]"
                              f" at the padded {n} tokens; the transformer gets the prompt's {t}",)),)
        after = (decode(VAE_DECODE, "AutoencoderKL (FLUX.1), 16 channels",
                        {"batch": b, "latent_h": geometry.dims["latent_h"], "latent_w": geometry.dims["latent_w"]}),)
        return before, after


def _autocast_regions_inline(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with its ``forward`` run while ``torch.amp.autocast`` is a null context.

    ``ZImageTransformer2DModel`` computes its timestep embedding and applies RoPE inside
    ``torch.amp.autocast("cuda", enabled=False)``; ``torch.export`` turns each such block into a
    ``wrap_with_autocast`` higher-order op whose subgraph fxmeter's capture does not enter (its ops
    would go uncosted).  Disabling CUDA autocast changes nothing where none is enabled (meta, and the
    pipeline's bf16 model run without ``torch.autocast``): the same ops are traced, inline.
    """
    import contextlib
    import functools

    import torch

    original = model.forward

    @functools.wraps(original)
    def forward(*args: Any, **kwargs: Any) -> Any:
        saved = torch.amp.autocast
        torch.amp.autocast = lambda *a, **k: contextlib.nullcontext()  # type: ignore[assignment,misc]
        try:
            return original(*args, **kwargs)
        finally:
            torch.amp.autocast = saved  # type: ignore[misc]

    model.forward = forward  # type: ignore[method-assign]
    return model


def _hidden_state_wrapper(model: torch.nn.Module, index: int) -> torch.nn.Module:
    import torch

    class HiddenStateCall(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.component: Any = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            # ZImagePipeline._encode_prompt: text_encoder(ids, attention_mask=bool mask, output_hidden_states=True)
            out = self.component(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
            return out.hidden_states[index]

    return HiddenStateCall()


@dataclass
class HiddenStateText(StageAdapter):
    """A decoder-only text model run with a boolean mask, one hidden state kept (Z-Image's Qwen3-4B)."""

    name: str = "qwen3-hidden-states"
    library: str = "transformers"
    classes: tuple[str, ...] = ("Qwen3Model",)
    symbols: tuple[str, ...] = ("batch", "seq_len")
    category_rules: Rules = TEXT_CATEGORIES
    # eager FlopCounterMode on meta cannot run transformers' mask checks (.item() on meta): verify counts the graph
    reference_on_graph: bool = True
    index: int = HIDDEN_STATE

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return _hidden_state_wrapper(model, self.index)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        b, n = dims["batch"], dims["seq_len"]
        return {"input_ids": meta_tensor(b, n, dtype=torch.long), "attention_mask": meta_tensor(b, n, dtype=torch.bool)}

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        axes = {0: SymbolAxis("batch"), 1: SymbolAxis("seq_len")}
        return {"input_ids": axes, "attention_mask": dict(axes)}

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 1024), "seq_len": (2, int(config.get("max_position_embeddings", 1 << 15)))}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 2, "seq_len": 7}


QWEN3_HIDDEN = HiddenStateText()

ADAPTERS = (ZImageAdapter(),)
MODELS = (
    ModelSpec("z-image-turbo", "z-image-turbo/transformer/config.json", "z_image", "z-image-turbo-1024",
              "https://github.com/uqer1244/MLX_z-image/blob/92eb681cd68ac77f94119bb4a6f3af1469af9ad9/converting/convert_comfy.py",
              "Z-Image-Turbo text-to-image, 6B (guidance-distilled: 1 pass/step)",
              {c: f"z-image-turbo/{c}" for c in ("text_encoder", "vae")}),
)
PRESETS = (
    Workload("z-image-turbo-1024", 1, 1024, 1024, 8, MAX_SEQUENCE_LENGTH, guidance_scale=0.0,
             description="ZImagePipeline docstring (Z-Image-Turbo): 1024x1024, 8 steps, guidance_scale 0.0 (1 pass), "
                         "text 512 (max_sequence_length)", family="z_image"),
)
STAGE_ADAPTERS: dict[str, StageAdapter] = {"Qwen3Model": QWEN3_HIDDEN}
