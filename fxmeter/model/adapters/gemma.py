"""Gemma-2 text encoder of the Sana pipelines (``SanaPipeline``, ``SanaVideoPipeline``), as they call it.

``SanaPipeline._get_gemma_prompt_embeds`` (diffusers 0.42): the tokenizer pads to ``max_length`` on the
right, then ``text_encoder(input_ids, attention_mask=mask)[0]`` on the ``Gemma2Model`` decoder of
gemma-2-2b-it (``AutoModelForCausalLM.from_pretrained(...).get_decoder()`` in the conversion script):
the last hidden state of every padded token.  The prompt is prefixed with the pipeline's
*complex human instruction* (CHI), so the prompt call runs ``chi_tokens + max_sequence_length - 2``
tokens; the negative prompt is encoded without it (``complex_human_instruction=False``) at
``max_sequence_length``.  ``encode_prompt`` then keeps the first and the last ``max_sequence_length - 1``
hidden states of the prompt (``select_index``): the transformer sees ``max_sequence_length`` tokens.

CHI token counts: ``len(tokenizer.encode("\\n".join(complex_human_instruction)))`` (BOS included) with
the Gemma tokenizer (256,000-entry SentencePiece vocabulary; Gemma 2 uses Gemma 1's tokenizer, Gemma 2
report section 2), counted on the default instruction of each pipeline's ``__call__``: 208 for
``SanaPipeline`` (text-to-image), 221 for ``SanaVideoPipeline`` (its instruction speaks of video and
motion).  The tokenizer files are not bundled (17 MB); the count is the only thing fxmeter uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fxmeter.errors import ConfigError
from fxmeter.model.adapters.base import Builder, SymbolAxis
from fxmeter.model.adapters.stage import StageAdapter, class_config, hf_dtype_policy, meta_tensor, torch_dtype
from fxmeter.model.adapters.text_encoders import TEXT_CATEGORIES

if TYPE_CHECKING:
    import torch

#: Gemma tokens of SanaPipeline's default complex human instruction (BOS included)
SANA_CHI_TOKENS = 208
#: Gemma tokens of SanaVideoPipeline's default complex human instruction (BOS included)
SANA_VIDEO_CHI_TOKENS = 221


def chi_length(chi_tokens: int, max_sequence_length: int) -> int:
    """The padded length of the prompt call: ``num_chi_prompt_tokens + max_sequence_length - 2``."""
    return chi_tokens + max_sequence_length - 2


def _gemma_wrapper(model: torch.nn.Module) -> torch.nn.Module:
    import torch

    class GemmaCall(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.component: Any = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            # SanaPipeline._get_gemma_prompt_embeds: self.text_encoder(ids, attention_mask=mask)[0]
            return self.component(input_ids, attention_mask=attention_mask)[0]

    return GemmaCall()


@dataclass
class GemmaSana(StageAdapter):
    """``Gemma2Model(ids, attention_mask=mask)[0]``: dynamic in batch and padded length."""

    name: str = "gemma2-sana"
    library: str = "transformers"
    classes: tuple[str, ...] = ("Gemma2Model",)
    symbols: tuple[str, ...] = ("batch", "seq_len")
    category_rules: Any = TEXT_CATEGORIES
    # transformers' mask construction reads tensor values (.item() on meta): verify counts the exported graph
    reference_on_graph: bool = True

    def build_component(self, config: dict[str, Any], dtype: str, build_diffusers: Builder) -> torch.nn.Module:
        """``Gemma2Model`` on meta with the attention ``from_pretrained`` picks: eager (Gemma 2 declares
        ``_supports_sdpa = False``, SDPA has no logit soft-capping, and flash-attention is not installed)."""
        import warnings

        import torch
        import transformers

        cls = getattr(transformers, str(config["_class_name"]))
        try:
            cfg = cls.config_class(**class_config(config))
            cfg._attn_implementation = "sdpa" if getattr(cls, "_supports_sdpa", False) else "eager"
            with warnings.catch_warnings(), torch.device("meta"):
                warnings.simplefilter("ignore")
                model = cls(cfg)
        except Exception as e:  # the class's own validation: this config cannot build it
            raise ConfigError(f"{cls.__name__} rejected the config: {type(e).__name__}: {e}") from None
        hf_dtype_policy(model, torch_dtype(dtype))
        return model.eval()  # type: ignore[no-any-return]

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return _gemma_wrapper(model)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        b, n = dims["batch"], dims["seq_len"]
        return {"input_ids": meta_tensor(b, n, dtype=torch.long), "attention_mask": meta_tensor(b, n, dtype=torch.long)}

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        axes = {0: SymbolAxis("batch"), 1: SymbolAxis("seq_len")}
        return {"input_ids": axes, "attention_mask": dict(axes)}

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        # the sliding-window mask slices ``-sliding_window`` positions: a dynamic export holds below the window
        # (a longer prompt is traced statically)
        top = min(int(config.get("max_position_embeddings", 8192)), int(config.get("sliding_window") or 1 << 30) - 2)
        return {"batch": (1, 1024), "seq_len": (2, top)}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 2, "seq_len": 7}


GEMMA_SANA = GemmaSana()
