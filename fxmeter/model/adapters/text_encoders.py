"""Text encoders, called exactly as their diffusers pipelines call them.

Every pipeline tokenizes with ``padding="max_length"``, so an encoder always runs on the
full ``max_sequence_length`` (the workload's ``text_len``), whatever the prompt; with
classifier-free guidance the negative prompt is encoded by a second call of the same
batch (the plan's ``runs``).  The calls (diffusers 0.42):

* ``t5-masked`` (``WanPipeline._get_t5_prompt_embeds``): ``text_encoder(ids, mask).last_hidden_state``
  on UMT5-XXL: the padding mask is materialised and every layer computes its own relative
  position bias.
* ``t5`` (Flux ``text_encoder_2``, SD3 ``text_encoder_3``, CogVideoX, LTX-Video):
  ``text_encoder(ids)[0]``, no mask; T5 v1.1 computes the position bias in block 0 only,
  so T5 is traced whole (replicating block 0 would be wrong).
* ``clip-pooled`` (Flux ``text_encoder``, HunyuanVideo ``text_encoder_2``):
  ``text_encoder(ids, output_hidden_states=False).pooler_output``, 77 tokens.
* ``clip-sd3`` (SD3 ``text_encoder`` / ``text_encoder_2``): ``out = text_encoder(ids,
  output_hidden_states=True)``; ``out[0]`` (pooled) and ``out.hidden_states[-2]``, 77 tokens.
* ``llama-hunyuan`` (HunyuanVideo ``text_encoder``): ``text_encoder(input_ids=..., attention_mask=...,
  output_hidden_states=True).hidden_states[-3]`` then the prompt template's first
  ``crop_start`` (95) tokens cropped; the encoder runs ``text_len + crop_start`` tokens.

Every layer runs even where the pipeline keeps an earlier hidden state: the full model's
cost is the real cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fxmeter.model.adapters._common import ANY, ATTN, MATMUL, NORM, Rules
from fxmeter.model.adapters.base import SymbolAxis
from fxmeter.model.adapters.stage import StageAdapter, meta_tensor

if TYPE_CHECKING:
    import torch

CLIP_TOKENS = 77  # CLIPTokenizer model_max_length: every pipeline pads CLIP prompts to it
HUNYUAN_CROP_START = 95  # HunyuanVideoPipeline DEFAULT_PROMPT_TEMPLATE["crop_start"]
HUNYUAN_SKIP_LAYERS = 2  # HunyuanVideoPipeline num_hidden_layers_to_skip: hidden_states[-(2 + 1)]

_ATTN_MOD = r"(SelfAttention|self_attn|attention)"
TEXT_CATEGORIES: Rules = (
    (rf"{_ATTN_MOD}$", ATTN | MATMUL, "attention_core"),  # sdpa, or T5's eager q @ k^T and probs @ v
    (rf"{_ATTN_MOD}\.", MATMUL, "attention_proj"),  # q/k/v/o projections
    (r"", NORM, "norms"),
    (r"(relative_attention_bias|rotary_emb)(\.|$)", ANY, "position"),
    (rf"{_ATTN_MOD}$", ANY, "attention_core"),  # masks, softmax, position bias add, RoPE application
    (r"(DenseReluDense|mlp)(\.|$)", ANY, "ffn"),
    (r"(embed_tokens|shared|embeddings)(\.|$)", ANY, "embeddings"),
    (r"(layer_norm\d?|final_layer_norm|input_layernorm|post_attention_layernorm|norm)$", ANY, "norms"),
    (r"projection", ANY, "head"),
    (r"", ANY, "other"),
)


def _t5_wrapper(model: torch.nn.Module, masked: bool) -> torch.nn.Module:
    import torch

    class T5Call(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.component: Any = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
            if masked:  # WanPipeline: self.text_encoder(ids, mask).last_hidden_state
                return self.component(input_ids, attention_mask).last_hidden_state
            return self.component(input_ids)[0]

    return T5Call()


@dataclass
class T5Encoder(StageAdapter):
    """UMT5 / T5 v1.1 encoders (``T5EncoderModel``, ``UMT5EncoderModel``): dynamic in batch and length."""

    name: str = "t5"
    library: str = "transformers"
    classes: tuple[str, ...] = ("T5EncoderModel", "UMT5EncoderModel")
    symbols: tuple[str, ...] = ("batch", "seq_len")
    category_rules: Rules = TEXT_CATEGORIES
    masked: bool = False

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return _t5_wrapper(model, self.masked)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        b, n = dims["batch"], dims["seq_len"]
        kw: dict[str, Any] = {"input_ids": meta_tensor(b, n, dtype=torch.long)}
        if self.masked:
            kw["attention_mask"] = meta_tensor(b, n, dtype=torch.long)
        return kw

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        axes = {0: SymbolAxis("batch"), 1: SymbolAxis("seq_len")}
        return {"input_ids": axes, "attention_mask": dict(axes)} if self.masked else {"input_ids": axes}

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 1024), "seq_len": (2, 1 << 15)}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 2, "seq_len": 7}


def _clip_wrapper(model: torch.nn.Module, sd3: bool) -> torch.nn.Module:
    import torch

    class ClipCall(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.component: Any = model

        def forward(self, input_ids: torch.Tensor) -> Any:
            if sd3:  # StableDiffusion3Pipeline._get_clip_prompt_embeds: pooled out[0], tokens hidden_states[-2]
                out = self.component(input_ids, output_hidden_states=True)
                return out[0], out.hidden_states[-2]
            return self.component(input_ids, output_hidden_states=False).pooler_output

    return ClipCall()


@dataclass
class ClipText(StageAdapter):
    """CLIP text towers at 77 tokens: pooled output (Flux, HunyuanVideo) or SD3's pooled + penultimate layer."""

    name: str = "clip-pooled"
    library: str = "transformers"
    classes: tuple[str, ...] = ("CLIPTextModel", "CLIPTextModelWithProjection")
    symbols: tuple[str, ...] = ("batch",)
    category_rules: Rules = TEXT_CATEGORIES
    sd3: bool = False

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return _clip_wrapper(model, self.sd3)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        return {"input_ids": meta_tensor(dims["batch"], CLIP_TOKENS, dtype=torch.long)}

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        return {"input_ids": {0: SymbolAxis("batch")}}

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 1024)}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 2}


def _llama_wrapper(model: torch.nn.Module, crop_start: int, skip: int) -> torch.nn.Module:
    import torch

    class LlamaCall(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.component: Any = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            h = self.component(input_ids=input_ids, attention_mask=attention_mask,
                               output_hidden_states=True).hidden_states[-(skip + 1)]
            return h[:, crop_start:]

    return LlamaCall()


@dataclass
class LlamaHunyuan(StageAdapter):
    """HunyuanVideo's Llama text encoder: the template's ``crop_start`` tokens plus ``text_len``."""

    name: str = "llama-hunyuan"
    library: str = "transformers"
    classes: tuple[str, ...] = ("LlamaModel",)
    symbols: tuple[str, ...] = ("batch", "seq_len")
    category_rules: Rules = TEXT_CATEGORIES
    reference_on_graph: bool = True
    crop_start: int = HUNYUAN_CROP_START
    skip_layers: int = HUNYUAN_SKIP_LAYERS

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return _llama_wrapper(model, self.crop_start, self.skip_layers)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        b, n = dims["batch"], dims["seq_len"]
        return {"input_ids": meta_tensor(b, n, dtype=torch.long), "attention_mask": meta_tensor(b, n, dtype=torch.long)}

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        axes = {0: SymbolAxis("batch"), 1: SymbolAxis("seq_len")}
        return {"input_ids": axes, "attention_mask": dict(axes)}

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        # the crop slice adds the guard seq_len - crop_start != 1
        return {"batch": (1, 1024), "seq_len": (self.crop_start + 2, int(config.get("max_position_embeddings", 8192)))}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 2, "seq_len": self.crop_start + 7}


# eager FlopCounterMode on meta cannot run transformers' padding-mask check (.item() on meta): verify counts the graph
UMT5_MASKED = T5Encoder(name="t5-masked", masked=True, reference_on_graph=True)
T5_PLAIN = T5Encoder(name="t5")
CLIP_POOLED = ClipText(name="clip-pooled")
CLIP_SD3 = ClipText(name="clip-sd3", sd3=True)
LLAMA_HUNYUAN = LlamaHunyuan()
