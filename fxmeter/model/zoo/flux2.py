"""FLUX.2 (diffusers ``Flux2Transformer2DModel``): FLUX.2-dev in ``Flux2Pipeline``, FLUX.2-klein in ``Flux2KleinPipeline``.

What the pipelines do (diffusers 0.42.1, ``pipelines/flux2/pipeline_flux2.py`` and ``pipeline_flux2_klein.py``):

* **Latents.** ``AutoencoderKLFlux2`` compresses space by ``2 ** (len(block_out_channels) - 1)`` = 8 into 32
  channels; the pipeline patchifies 2x2 latent pixels into one token of ``in_channels`` = 128 features, so an
  HxW image has ``(H/16) * (W/16)`` image tokens.  Position ids are 4-D (T, H, W, L) int64 tensors of shape
  ``(batch, tokens, 4)`` (``_prepare_latent_ids`` / ``_prepare_text_ids``: ``torch.cartesian_prod`` of
  ``arange``, never cast); the model takes ``ids[0]`` and computes its RoPE tables from them.
* **Text.** ``max_sequence_length`` 512 tokens, ``padding="max_length"``: the encoder always runs 512.
  FLUX.2-dev: ``Mistral3ForConditionalGeneration`` (Mistral-Small-3.x 24B; the vision tower is loaded but
  not run: no image is passed) called as ``text_encoder(input_ids=, attention_mask=, output_hidden_states=True,
  use_cache=False)``; the hidden states of layers (10, 20, 30) are stacked and reshaped to ``3 x 5120 = 15360``
  features per token (``joint_attention_dim``).  FLUX.2-klein: ``Qwen3ForCausalLM``, layers (9, 18, 27).
  Both are ``*ForCausalLM``-style calls, so the LM head runs on every position (``logits_to_keep`` 0): counted.
* **Denoiser.** ``timestep = t.expand(batch).to(latents.dtype) / 1000`` (latents in the text embeddings'
  dtype).  FLUX.2-dev is guidance-distilled: ``guidance = torch.full([1], scale, float32).expand(batch)``,
  one transformer pass per step.  FLUX.2-klein passes ``guidance=None`` (its transformer has no guidance
  embedder: ``guidance_embeds`` False) and runs classifier-free guidance (a second pass on the empty
  negative prompt, encoded by a second text-encoder call) when ``guidance_scale > 1`` and the pipeline is not
  ``is_distilled``; the distilled klein checkpoints (FLUX.2-klein-4B/9B) run 4 steps at scale 1.0: one pass.
* **VAE.** The latents are un-normalised by the VAE's BatchNorm statistics and un-patchified (a few
  elementwise ops outside the VAE, not counted), then ``vae.decode(latents, return_dict=False)[0]`` on
  ``(batch, 32, H/8, W/8)``, in the pipeline's dtype.

Models: ``flux.2-dev`` (preset ``flux2-1024``: the pipeline's defaults, 1024x1024 from ``default_sample_size``
128 x 8, 50 steps, guidance 4.0) and ``flux.2-klein-4b``, the step-distilled 4B (``model_index.json``:
``Flux2KleinPipeline``, ``is_distilled`` true, kept in its config's ``_pipeline``; preset ``flux2-klein-1024``:
1024x1024, 4 steps, guidance 1.0, as BFL runs the distilled klein models).  Both share the FLUX.2 VAE.
The 9B klein and the undistilled "base" klein checkpoints run the same code with other configs
(``--config``); they are not bundled.

Configs: the transformer values of ``scripts/convert_flux2_to_diffusers.py`` (``get_flux2_transformer_config``:
``flux2-dev``, ``klein-4b``), the VAE as that script builds it (``AutoencoderKLFlux2()``, the class defaults),
the text encoders' configs from the public copies named in each ``_source``.  FLUX.2-dev's Mistral config has
no ``tie_word_embeddings`` key, so transformers' default (tied) applies and the encoder counts 23.34B
parameters; the FLOPs do not depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fxmeter.model.adapters._common import ANY, divisible, image_only, joint_dit_categories
from fxmeter.model.adapters.base import Adapter, Geometry, SymbolAxis
from fxmeter.model.adapters.plans import decode, text
from fxmeter.model.adapters.stage import StageAdapter, meta_tensor
from fxmeter.model.adapters.text_encoders import TEXT_CATEGORIES
from fxmeter.model.adapters.vaes import VaeDecode
from fxmeter.model.pipeline import ModelSpec, StagePlan
from fxmeter.model.workload import Workload

if TYPE_CHECKING:
    import torch

PACK = 2
TEXT_LEN = 512  # Flux2Pipeline / Flux2KleinPipeline max_sequence_length
MISTRAL_LAYERS = (10, 20, 30)  # Flux2Pipeline text_encoder_out_layers
QWEN3_LAYERS = (9, 18, 27)  # Flux2KleinPipeline text_encoder_out_layers
_BLOCKS = ("transformer_blocks", "single_transformer_blocks")


# -- text encoders: the hidden states of three layers, stacked ----------------------------------------------------
def _stack_wrapper(model: torch.nn.Module, layers: tuple[int, ...]) -> torch.nn.Module:
    import torch

    class HiddenStatesStack(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.component: Any = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            # Flux2Pipeline._get_mistral_3_small_prompt_embeds / Flux2KleinPipeline._get_qwen3_prompt_embeds
            output = self.component(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True,
                                    use_cache=False)
            out = torch.stack([output.hidden_states[k] for k in layers], dim=1)
            b, c, n, d = out.shape
            return out.permute(0, 2, 1, 3).reshape(b, n, c * d)

    return HiddenStatesStack()


@dataclass
class HiddenStatesEncoder(StageAdapter):
    """A decoder LLM as a text encoder: ``output_hidden_states=True``, three layers stacked per token.

    Dynamic in batch and length; FlopCounterMode cannot run transformers' padding-mask check eagerly on
    meta, so ``verify`` counts the exported graph (``reference_on_graph``)."""

    name: str = "mistral3-hidden-stack"
    library: str = "transformers"
    classes: tuple[str, ...] = ("Mistral3ForConditionalGeneration",)
    symbols: tuple[str, ...] = ("batch", "seq_len")
    category_rules: tuple[tuple[str, frozenset[str] | None, str], ...] = (
        (r"(^|\.)lm_head$", ANY, "head"), *TEXT_CATEGORIES)
    reference_on_graph: bool = True
    layers: tuple[int, ...] = MISTRAL_LAYERS

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return _stack_wrapper(model, self.layers)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        b, n = dims["batch"], dims["seq_len"]
        return {"input_ids": meta_tensor(b, n, dtype=torch.long), "attention_mask": meta_tensor(b, n, dtype=torch.long)}

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        axes = {0: SymbolAxis("batch"), 1: SymbolAxis("seq_len")}
        return {"input_ids": axes, "attention_mask": dict(axes)}

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 1024), "seq_len": (2, 1 << 15)}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 2, "seq_len": 7}


MISTRAL3_STACK = HiddenStatesEncoder()
QWEN3_STACK = HiddenStatesEncoder(name="qwen3-hidden-stack", classes=("Qwen3ForCausalLM",), layers=QWEN3_LAYERS)


# -- VAE --------------------------------------------------------------------------------------------------------------
@dataclass
class Flux2VaeDecode(VaeDecode):
    """``AutoencoderKLFlux2.decode(z, return_dict=False)[0]`` on ``(batch, 32, H/8, W/8)``: an image VAE."""

    name: str = "vae-decode-flux2"
    classes: tuple[str, ...] = ("AutoencoderKLFlux2",)

    def video(self, config: dict[str, Any]) -> bool:
        return False


FLUX2_VAE_DECODE = Flux2VaeDecode()


def vae_scale(vae_config: dict[str, Any] | None = None) -> int:
    """``Flux2Pipeline.vae_scale_factor``: ``2 ** (len(vae.config.block_out_channels) - 1)`` (8)."""
    return 2 ** (len((vae_config or {}).get("block_out_channels", (128, 256, 512, 512))) - 1)


# -- the transformer ------------------------------------------------------------------------------------------------
def klein(config: dict[str, Any]) -> bool:
    """FLUX.2-klein: the transformer without a guidance embedder, run by ``Flux2KleinPipeline``."""
    return not config.get("guidance_embeds", True)


def _is_distilled(config: dict[str, Any]) -> bool:
    pipe = config.get("_pipeline")
    return isinstance(pipe, dict) and bool(pipe.get("is_distilled", False))


@dataclass
class Flux2Adapter(Adapter):
    name: str = "flux2"
    diffusers_class: str = "Flux2Transformer2DModel"
    repeated: dict[str, str] = field(
        default_factory=lambda: {"transformer_blocks": "num_layers", "single_transformer_blocks": "num_single_layers"})
    symbols: tuple[str, ...] = ("batch", "image_tokens", "text_len")
    required_keys: tuple[str, ...] = (
        "in_channels", "num_layers", "num_single_layers", "attention_head_dim", "num_attention_heads",
        "joint_attention_dim",
    )
    category_rules: tuple[tuple[str, frozenset[str] | None, str], ...] = (
        (r"^(double_stream_modulation_img|double_stream_modulation_txt|single_stream_modulation)(\.|$)", ANY,
         "modulation"),
        *joint_dit_categories(_BLOCKS, r"pos_embed|time_guidance_embed|context_embedder|x_embedder"),
    )
    default_slug: str = "flux2"
    family: str = "flux2"
    default_workload: str | None = "flux2-1024"
    offload_seq: tuple[str, ...] = ("text_encoder", "transformer", "vae")
    positive_keys: tuple[str, ...] = (
        "patch_size", "in_channels", "num_layers", "attention_head_dim", "num_attention_heads", "joint_attention_dim",
        "timestep_guidance_channels", "axes_dims_rope",
    )
    sequence_symbols: tuple[str, ...] = ("image_tokens",)
    joint_text_symbols: tuple[str, ...] = ("text_len",)
    tp_roles: tuple[tuple[str, str], ...] = (
        (r"^transformer_blocks\.\d+\.attn\.(to_q|to_k|to_v|add_q_proj|add_k_proj|add_v_proj)$", "column"),
        (r"^transformer_blocks\.\d+\.attn\.(to_out\.0|to_add_out)$", "row"),
        (r"^transformer_blocks\.\d+\.(ff|ff_context)\.linear_in$", "column"),
        (r"^transformer_blocks\.\d+\.(ff|ff_context)\.act_fn$", "sharded"),
        (r"^transformer_blocks\.\d+\.(ff|ff_context)\.linear_out$", "row"),
        (r"^single_transformer_blocks\.\d+\.attn\.to_qkv_mlp_proj$", "column"),
        (r"^single_transformer_blocks\.\d+\.attn\.to_out$", "row"),
        (r"^(transformer_blocks|single_transformer_blocks)\.\d+\.attn\.norm_(q|k|added_q|added_k)$", "sharded"),
        (r"^(transformer_blocks|single_transformer_blocks)\.\d+\.attn$", "sharded"),
    )

    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        scale = vae_scale()
        divisible(wl.height, wl.width, scale * PACK, f"VAE {scale} x 2x2 patchify")
        h, w = wl.height // (scale * PACK), wl.width // (scale * PACK)
        notes = image_only(wl.frames, "FLUX.2")
        dims = {"batch": wl.batch, "image_tokens": h * w, "text_len": wl.text_len}
        return Geometry(dims, (wl.batch, h * w, int(config["in_channels"])), h * w, 1, tuple(notes))

    def model_dims(self, config: dict[str, Any], geometry: Geometry) -> dict[str, int | None] | None:
        """heads x head_dim; SwiGLU FFN of ``mlp_ratio`` (3.0) x hidden in the double and the single blocks."""
        heads, head_dim = int(config["num_attention_heads"]), int(config["attention_head_dim"])
        hidden = heads * head_dim
        return {"heads": heads, "head_dim": head_dim, "hidden": hidden,
                "ffn": int(hidden * float(config.get("mlp_ratio", 3.0))),
                "layers": int(config["num_layers"]) + int(config["num_single_layers"]),
                "text_len": geometry.dims["text_len"], "tokens": geometry.tokens}

    def passes_per_step(self, config: dict[str, Any], wl: Workload) -> int:
        """FLUX.2-dev: 1 (guidance-distilled, the ``guidance`` input).  FLUX.2-klein: 2 when
        ``guidance_scale > 1`` and the pipeline is not ``is_distilled`` (``do_classifier_free_guidance``)."""
        if klein(config):
            return 2 if wl.guidance_scale > 1.0 and not _is_distilled(config) else 1
        return 1

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        b, n, t = dims["batch"], dims["image_tokens"], dims["text_len"]

        def e(*shape: int, dt: torch.dtype = dtype) -> torch.Tensor:
            return torch.empty(*shape, device="meta", dtype=dt)

        kw: dict[str, Any] = {
            "hidden_states": e(b, n, int(config["in_channels"])),
            "encoder_hidden_states": e(b, t, int(config["joint_attention_dim"])),
            "timestep": e(b),  # t.expand(batch).to(latents.dtype) / 1000
            "img_ids": e(b, n, 4, dt=torch.long),  # cartesian_prod(arange...) expanded to the batch: int64
            "txt_ids": e(b, t, 4, dt=torch.long),
        }
        if not klein(config):
            kw["guidance"] = e(b, dt=torch.float32)  # torch.full([1], scale, float32).expand(batch)
        kw["return_dict"] = False
        return kw

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        axes = {
            "hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("image_tokens")},
            "encoder_hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("text_len")},
            "timestep": {0: SymbolAxis("batch")},
            "img_ids": {0: SymbolAxis("batch"), 1: SymbolAxis("image_tokens")},
            "txt_ids": {0: SymbolAxis("batch"), 1: SymbolAxis("text_len")},
        }
        if not klein(config):
            axes["guidance"] = {0: SymbolAxis("batch")}
        return axes

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 1024), "image_tokens": (1, 1 << 20), "text_len": (1, 1 << 16)}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 2, "image_tokens": 12, "text_len": 7}

    def pipeline_stages(self, config: dict[str, Any], wl: Workload,
                        geometry: Geometry) -> tuple[tuple[StagePlan, ...], tuple[StagePlan, ...]]:
        """Flux2Pipeline: Mistral3 (one call: guidance-distilled); Flux2KleinPipeline: Qwen3, a second call on
        the empty negative prompt under CFG.  Then the VAE decode of ``(batch, 32, H/8, W/8)``."""
        b, n = geometry.dims["batch"], geometry.dims["text_len"]
        if klein(config):
            runs = 2 if self.passes_per_step(config, wl) == 2 else 1
            enc = text("text_encoder", QWEN3_STACK, f"Qwen3, {n} tokens, layers {QWEN3_LAYERS} stacked", runs,
                       {"batch": b, "seq_len": n})
        else:
            enc = text("text_encoder", MISTRAL3_STACK, f"Mistral-Small-3 24B, {n} tokens, layers {MISTRAL_LAYERS} "
                       "stacked", 1, {"batch": b, "seq_len": n})
        scale = vae_scale()
        after = decode(FLUX2_VAE_DECODE, "AutoencoderKLFlux2, 32 channels",
                       {"batch": b, "latent_h": wl.height // scale, "latent_w": wl.width // scale})
        return (enc,), (after,)


ADAPTERS = (Flux2Adapter(),)

MODELS = (
    ModelSpec("flux.2-dev", "flux.2-dev/transformer/config.json", "flux_2", "flux2-1024",
              "https://github.com/huggingface/diffusers/blob/207bae7a5e772ce97e6a446cdf16fba5b9acca24/scripts/"
              "convert_flux2_to_diffusers.py",
              "FLUX.2-dev text-to-image, 32B (Mistral-Small-3 24B text encoder; guidance-distilled: 1 pass/step)",
              {c: f"flux.2-dev/{c}" for c in ("text_encoder", "vae")}),
    ModelSpec("flux.2-klein-4b", "flux.2-klein-4b/transformer/config.json", "flux_2_klein", "flux2-klein-1024",
              "https://github.com/huggingface/diffusers/blob/207bae7a5e772ce97e6a446cdf16fba5b9acca24/scripts/"
              "convert_flux2_to_diffusers.py",
              "FLUX.2-klein-4B text-to-image, 4B (Qwen3-4B text encoder; step-distilled: 4 steps, 1 pass/step)",
              {"text_encoder": "flux.2-klein-4b/text_encoder", "vae": "flux.2-dev/vae"}),
)

PRESETS = (
    Workload("flux2-1024", 1, 1024, 1024, 50, TEXT_LEN, guidance_scale=4.0,
             description="FLUX.2-dev Flux2Pipeline: 1024x1024 (default_sample_size 128 x 8), 50 steps, distilled "
                         "guidance 4.0 (1 pass), Mistral 512 tokens", family="flux2"),
    Workload("flux2-klein-1024", 1, 1024, 1024, 4, TEXT_LEN, guidance_scale=1.0,
             description="FLUX.2-klein-4B (distilled) Flux2KleinPipeline: 1024x1024, 4 steps, guidance 1.0 (no CFG: "
                         "1 pass), Qwen3 512 tokens", family="flux2"),
)

STAGE_ADAPTERS = {
    "Mistral3ForConditionalGeneration": MISTRAL3_STACK,
    "Qwen3ForCausalLM": QWEN3_STACK,
    "AutoencoderKLFlux2": FLUX2_VAE_DECODE,
}

__all__ = ["ADAPTERS", "MODELS", "PRESETS", "STAGE_ADAPTERS", "Flux2Adapter", "HiddenStatesEncoder"]
