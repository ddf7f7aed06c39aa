"""Lumina-Image-2.0 (diffusers ``Lumina2Transformer2DModel``, 2.6B), as ``Lumina2Pipeline`` drives it.

Everything copied from diffusers 0.42.1 ``pipelines/lumina2/pipeline_lumina2.py``:

* **Text.**  Gemma-2-2B's decoder (``Gemma2Model``).  ``encode_prompt`` prefixes the prompt with the pipeline's
  system prompt (``system_prompt + " <Prompt Start> " + prompt``), ``_get_gemma_prompt_embeds`` tokenizes with
  ``padding="max_length"`` to ``max_sequence_length`` (256; at most 512) and keeps
  ``text_encoder(ids, attention_mask=mask, output_hidden_states=True).hidden_states[-2]``: every layer runs on
  the padded 256 tokens.  With CFG (``guidance_scale > 1``; 4.0 by default) the negative prompt (``""``, *not*
  prefixed) is encoded the same way: two calls of 256 tokens.
* **Latents.**  The FLUX.1 ``AutoencoderKL`` (16 channels, ``vae_scale_factor`` 8): ``(B, 16, H/8, W/8)``; the
  transformer patchifies 2x2 itself: ``(H/16) * (W/16)`` image tokens (4,096 at 1024 x 1024; the default size is
  ``sample_size`` 128 x 8).  Height and width must be multiples of 16 (``check_inputs``).
* **Denoiser.**  ``timestep = (1 - t / 1000).expand(B)`` (float32, the flow-matching scheduler's float ``t``);
  ``encoder_hidden_states`` the 256 padded embeddings and ``encoder_attention_mask`` the tokenizer's mask (int64).
  Two context-refiner blocks run on the 256 padded text tokens (masked), two noise-refiner blocks on the image
  tokens, then ``num_layers`` blocks on one joint sequence of the *valid* text tokens (``mask.sum()``, read with
  ``.tolist()``) followed by the image tokens.  CFG: ``cfg_trunc_ratio`` 1.0 (default) keeps guidance on every
  step, and the conditional and unconditional passes are **two separate forwards** (not batched).  The
  unconditional pass sees the empty negative prompt: 1 valid token (Gemma's BOS), so its joint sequence is
  ``1 + image_tokens`` long and it is a denoising stage of its own, ``transformer_uncond``.
  ``cfg_normalization`` (default on) rescales by two ``torch.norm`` of the predictions: pipeline-side
  elementwise work, not counted (as no scheduler arithmetic is).
* **VAE.**  ``vae.decode(latents / scaling_factor + shift_factor, return_dict=False)[0]``: a plain
  ``AutoencoderKL`` decode.

The workload's ``text_len`` is the prompt's valid token count *after* the system prompt (the joint sequence's text
part); the preset takes 256, a prompt that fills ``max_sequence_length`` (the most the transformer sees; the
tokenizer is not bundled, so the docstring prompt's own count is not claimed).  Everything runs in the pipeline's
``torch_dtype`` (the docstring loads bfloat16).

**The data-dependent piece of the forward.**  ``Lumina2RotaryPosEmbed.forward`` reads the valid text lengths with
``attention_mask.sum(dim=1).tolist()``: no value exists on meta, so neither torch.export nor FlopCounterMode can
run it.  The pipeline's mask is right-padded (``tokenizer.padding_side = "right"``) with ``text_len`` ones per
prompt; :func:`lumina2_class` is the real class with exactly that expression replaced by those lengths
(``[valid_text_len] * batch_size``), handed to the forward as the keyword ``valid_text_len`` (the one argument
added; each replaced expression must occur once, else nothing is built).  Every other line, module and op is the
class's own; capture and ``fxmeter verify``'s FlopCounterMode reference both build this class (``model_class``).  The lengths are
Python ints, so the export is static (one trace per workload, the preset's shipped).

``fxmeter observe lumina-image-2.0`` records the same calls, shapes and dtypes; it counts the unconditional
forwards under ``transformer`` (60 calls of equal shapes: only the mask's values differ), the plan's
``transformer_uncond``.

Configs: the transformer's from a public copy of the published ``transformer/config.json``; Gemma-2-2B the one
bundled for Sana (``sana-1600m-1024/text_encoder``, itself from kohya-ss' Lumina-2 loader, whose GEMMA2_CONFIG is
the google/gemma-2-2b config Lumina-Image-2.0 ships); the VAE the FLUX.1 one (``flux.1-dev/vae``).  Each
``_source`` says which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fxmeter.errors import WorkloadError
from fxmeter.model.adapters._common import ANY, ATTN, MATMUL, NORM, Rules, divisible, image_only
from fxmeter.model.adapters.base import Adapter, Geometry, SymbolAxis
from fxmeter.model.adapters.gemma import GemmaSana
from fxmeter.model.adapters.plans import Plans, cfg_runs, decode, text
from fxmeter.model.adapters.stage import meta_tensor
from fxmeter.model.adapters.vaes import VAE_DECODE
from fxmeter.model.pipeline import ModelSpec, StagePlan
from fxmeter.model.workload import Workload

if TYPE_CHECKING:
    import torch

VAE_SCALE = 8  # Lumina2Pipeline.vae_scale_factor
PATCH = 2
MAX_SEQUENCE_LENGTH = 256  # Lumina2Pipeline.__call__ default (check_inputs: at most 512)
MAX_ALLOWED_LENGTH = 512
NEGATIVE_TOKENS = 1  # "" -> Gemma's <bos>: the unconditional pass's valid text tokens
HIDDEN_STATE = -2  # _get_gemma_prompt_embeds keeps hidden_states[-2]

_ALL = r"^(layers|noise_refiner|context_refiner)\.\d+"
LUMINA2_CATEGORIES: Rules = (
    (rf"{_ALL}\.attn(\.|$)", ATTN, "attention_core"),
    (rf"{_ALL}\.attn(\.|$)", MATMUL, "attention_proj"),
    (r".", NORM, "norms"),
    (r"^$", NORM, "norms"),
    (rf"{_ALL}\.attn(\.|$)", ANY, "rope"),  # complex RoPE products, GQA repeat of k/v
    (rf"{_ALL}\.feed_forward(\.|$)", ANY, "ffn"),
    (rf"{_ALL}(\.|$)", ANY, "modulation"),  # norm1 (adaLN), gates, residuals
    (r"^(time_caption_embed|x_embedder|rope_embedder)(\.|$)", ANY, "embeddings"),
    (r"^norm_out(\.|$)", ANY, "head"),
    (r"^$", ANY, "head"),  # the joint sequence's assembly, unpatchify
)

#: (expression, replacement) in ``Lumina2RotaryPosEmbed.forward``
_ROPE_REPLACEMENTS: tuple[tuple[str, str], ...] = (
    ("self, hidden_states: torch.Tensor, attention_mask: torch.Tensor\n",
     "self, hidden_states: torch.Tensor, attention_mask: torch.Tensor, valid_text_len: int = 256\n"),
    # the right-padded mask's row sums: valid_text_len for every prompt of the batch
    ("l_effective_cap_len = attention_mask.sum(dim=1).tolist()", "l_effective_cap_len = [valid_text_len] * batch_size"),
)
#: (expression, replacement) in ``Lumina2Transformer2DModel.forward``
_FORWARD_REPLACEMENTS: tuple[tuple[str, str], ...] = (
    ("return_dict: bool = True,\n", "return_dict: bool = True,\n    valid_text_len: int = 256,\n"),
    ("self.rope_embedder(hidden_states, encoder_attention_mask)",
     "self.rope_embedder(hidden_states, encoder_attention_mask, valid_text_len)"),
)


def _patched(fn: Any, replacements: tuple[tuple[str, str], ...]) -> Any:
    """``fn`` recompiled from its source with ``replacements`` (each must occur exactly once), in its module."""
    import inspect
    import sys
    import textwrap

    src = textwrap.dedent(inspect.getsource(fn))
    for old, new in replacements:
        n = src.count(old)
        if n != 1:
            raise RuntimeError(f"{fn.__qualname__}: {old!r} occurs {n} times (expected once); this diffusers "
                               "version's source is not the one the Lumina2 patch was written for")
        src = src.replace(old, new)
    mod = sys.modules[fn.__module__]
    scope: dict[str, Any] = {}
    exec(compile(src, mod.__file__ or fn.__module__, "exec"), vars(mod), scope)
    return scope[fn.__name__]


_CLASS: Any = None


def lumina2_class() -> Any:
    """``Lumina2Transformer2DModel`` with :func:`_patched` forwards for itself and its ``rope_embedder`` (built once).

    The same class names (reports and FlopCounterMode's module keys read as the real classes'); ``__init__`` is the
    real one (its config signature included), then swaps the RoPE module's class: modules and parameters untouched.
    """
    global _CLASS
    if _CLASS is None:
        import functools

        import diffusers.models.transformers.transformer_lumina2 as mod

        base = mod.Lumina2Transformer2DModel
        rope = type("Lumina2RotaryPosEmbed", (mod.Lumina2RotaryPosEmbed,),
                    {"forward": _patched(mod.Lumina2RotaryPosEmbed.forward, _ROPE_REPLACEMENTS), "__module__": __name__})

        @functools.wraps(base.__init__)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            base.__init__(self, *args, **kwargs)
            self.rope_embedder.__class__ = rope

        _CLASS = type("Lumina2Transformer2DModel", (base,),
                      {"__init__": __init__, "forward": _patched(base.forward, _FORWARD_REPLACEMENTS),
                       "__module__": __name__,
                       "__doc__": "Lumina2Transformer2DModel, the valid text length an argument (not read from the mask)"})
    return _CLASS


@dataclass
class Lumina2Adapter(Adapter):
    name: str = "lumina2"
    diffusers_class: str = "Lumina2Transformer2DModel"
    # the blocks of each list are identical (refiners: modulation on / off)
    repeated: dict[str, str] = field(default_factory=lambda: {
        "layers": "num_layers", "noise_refiner": "num_refiner_layers", "context_refiner": "num_refiner_layers"})
    symbols: tuple[str, ...] = ("batch", "latent_h", "latent_w", "text_len", "seq_len")
    required_keys: tuple[str, ...] = ("in_channels", "hidden_size", "num_layers", "num_refiner_layers",
                                      "num_attention_heads", "num_kv_heads", "cap_feat_dim", "patch_size")
    category_rules: Rules = LUMINA2_CATEGORIES
    default_slug: str = "lumina2"
    family: str = "lumina2"
    default_workload: str | None = "lumina-image-2.0-1024"
    offload_seq: tuple[str, ...] = ("text_encoder", "transformer", "vae")  # model_cpu_offload_seq
    pipelines: tuple[str, ...] = ("Lumina2Pipeline",)
    positive_keys: tuple[str, ...] = ("in_channels", "hidden_size", "num_layers", "num_refiner_layers",
                                      "num_attention_heads", "num_kv_heads", "cap_feat_dim", "patch_size",
                                      "multiple_of", "axes_dim_rope", "axes_lens")
    sequence_symbols: tuple[str, ...] = ("latent_h", "latent_w")

    @property
    def model_class(self) -> Any:
        """The class capture and verify's reference build (:func:`lumina2_class`)."""
        return lumina2_class()

    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        p = int(config["patch_size"])
        divisible(wl.height, wl.width, VAE_SCALE * p, "VAE 8 x 2x2 patches (Lumina2Pipeline.check_inputs)")
        if not 1 <= wl.text_len <= MAX_ALLOWED_LENGTH:
            raise WorkloadError(f"text_len is the prompt's valid Gemma tokens after the system prompt, 1..{MAX_ALLOWED_LENGTH}"
                                f" (max_sequence_length is at most {MAX_ALLOWED_LENGTH}); got {wl.text_len}")
        notes = image_only(wl.frames, "Lumina-Image-2.0")
        lh, lw = wl.height // VAE_SCALE, wl.width // VAE_SCALE
        n = (lh // p) * (lw // p)
        seq = max(MAX_SEQUENCE_LENGTH, wl.text_len)
        if wl.text_len > MAX_SEQUENCE_LENGTH:
            notes.append(f"text_len {wl.text_len} > max_sequence_length {MAX_SEQUENCE_LENGTH}: the encoder is padded "
                         f"to {seq} (max_sequence_length={seq})")
        notes.append(f"Gemma runs {seq} padded tokens; the transformer's context refiner sees all {seq}, its "
                     f"{int(config['num_layers'])} main blocks one joint sequence of {wl.text_len} valid text + {n} "
                     f"image tokens ({NEGATIVE_TOKENS} + {n} for the unconditional pass)")
        dims = {"batch": wl.batch, "latent_h": lh, "latent_w": lw, "text_len": wl.text_len, "seq_len": seq}
        return Geometry(dims, (wl.batch, int(config["in_channels"]), lh, lw), n, 1, tuple(notes))

    def supports_dynamic(self, config: dict[str, Any]) -> bool:
        """No: the valid text lengths and the joint sequence's length are Python ints (lists, a Python loop)."""
        return False

    def model_dims(self, config: dict[str, Any], geometry: Geometry) -> dict[str, int | None] | None:
        """``num_attention_heads`` x ``hidden / heads``, SwiGLU FFN ``4 * hidden`` rounded up to ``multiple_of``
        (``LuminaFeedForward``), ``num_layers`` main blocks over the joint valid-text + image sequence."""
        hidden, heads, m = int(config["hidden_size"]), int(config["num_attention_heads"]), int(config["multiple_of"])
        ffn = 4 * hidden
        if config.get("ffn_dim_multiplier") is not None:
            ffn = int(float(config["ffn_dim_multiplier"]) * ffn)
        return {"heads": heads, "head_dim": hidden // heads, "hidden": hidden, "ffn": m * ((ffn + m - 1) // m),
                "layers": int(config["num_layers"]), "text_len": geometry.dims["text_len"], "tokens": geometry.tokens}

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        b, s = dims["batch"], dims["seq_len"]
        return {
            "hidden_states": meta_tensor(b, int(config["in_channels"]), dims["latent_h"], dims["latent_w"], dtype=dtype),
            "timestep": meta_tensor(b, dtype=torch.float32),  # (1 - t / 1000).expand(B), float32
            "encoder_hidden_states": meta_tensor(b, s, int(config["cap_feat_dim"]), dtype=dtype),  # hidden_states[-2]
            "encoder_attention_mask": meta_tensor(b, s, dtype=torch.long),  # the tokenizer's attention_mask
            "return_dict": False,
            "valid_text_len": int(dims["text_len"]),  # what mask.sum(dim=1).tolist() reads
        }

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        """The inputs' axes (the export is static)."""
        return {
            "hidden_states": {0: SymbolAxis("batch"), 2: SymbolAxis("latent_h"), 3: SymbolAxis("latent_w")},
            "timestep": {0: SymbolAxis("batch")},
            "encoder_hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("seq_len")},
            "encoder_attention_mask": {0: SymbolAxis("batch"), 1: SymbolAxis("seq_len")},
        }

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 1024), "latent_h": (2, 1 << 12), "latent_w": (2, 1 << 12),
                "text_len": (1, MAX_ALLOWED_LENGTH), "seq_len": (1, MAX_ALLOWED_LENGTH)}

    def stages(self, config: dict[str, Any], wl: Workload, *, batched_cfg: bool = False) -> tuple[StagePlan, ...]:
        """Conditional and unconditional passes: two forwards per step (never batched by this pipeline); the
        unconditional one sees the empty negative prompt's 1 valid token, so it is a stage of its own."""
        dims = self.geometry(config, wl).dims
        if wl.guidance_scale <= 1.0 or dims["text_len"] == NEGATIVE_TOKENS:
            return super().stages(config, wl, batched_cfg=batched_cfg)
        return (StagePlan("transformer", "transformer", "denoiser (conditional pass)", runs=wl.steps, steps=wl.steps),
                StagePlan("transformer_uncond", "transformer",
                          f"denoiser (unconditional pass: the empty negative prompt, {NEGATIVE_TOKENS} valid text token)",
                          runs=wl.steps, steps=wl.steps, root="transformer_uncond",
                          dims={**dims, "text_len": NEGATIVE_TOKENS},
                          notes=("transformer_uncond: cfg_trunc_ratio 1.0 (default): CFG on every step",)))

    def pipeline_stages(self, config: dict[str, Any], wl: Workload, geometry: Geometry) -> Plans:
        """Gemma-2-2B at the padded length (prompt, and the negative prompt with CFG); AutoencoderKL decode."""
        b, s = geometry.dims["batch"], geometry.dims["seq_len"]
        before = (text("text_encoder", GEMMA_HIDDEN, f"Gemma-2-2B, {s} tokens (padded to max_sequence_length)",
                       cfg_runs(wl), {"batch": b, "seq_len": s},
                       notes=(f"text_encoder: Gemma2Model(ids, mask, output_hidden_states=True).hidden_states[{HIDDEN_STATE}]"
                              f" at the padded {s} tokens",)),)
        after = (decode(VAE_DECODE, "AutoencoderKL (FLUX.1), 16 channels",
                        {"batch": b, "latent_h": geometry.dims["latent_h"], "latent_w": geometry.dims["latent_w"]}),)
        return before, after


def _hidden_state_wrapper(model: torch.nn.Module, index: int) -> torch.nn.Module:
    import torch

    class GemmaHiddenStateCall(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.component: Any = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            # Lumina2Pipeline._get_gemma_prompt_embeds
            out = self.component(input_ids, attention_mask=attention_mask, output_hidden_states=True)
            return out.hidden_states[index]

    return GemmaHiddenStateCall()


@dataclass
class GemmaHiddenState(GemmaSana):
    """``Gemma2Model(ids, attention_mask=mask, output_hidden_states=True).hidden_states[-2]`` (Lumina-Image-2.0)."""

    name: str = "gemma2-hidden-states"
    index: int = HIDDEN_STATE

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return _hidden_state_wrapper(model, self.index)


GEMMA_HIDDEN = GemmaHiddenState()

ADAPTERS = (Lumina2Adapter(),)
MODELS = (
    ModelSpec("lumina-image-2.0", "lumina-image-2.0/transformer/config.json", "lumina2", "lumina-image-2.0-1024",
              "https://github.com/sgl-project/sglang/blob/8fe33ced6bf87f1b68b257696e9f4546ce4601fc/python/sglang/"
              "multimodal_gen/test/unit/test_lumina2.py",
              "Lumina-Image-2.0 text-to-image, 2.6B (Gemma-2-2B text; CFG: 2 separate passes/step)",
              {"text_encoder": "sana-1600m-1024/text_encoder", "vae": "flux.1-dev/vae"}),
)
PRESETS = (
    Workload("lumina-image-2.0-1024", 1, 1024, 1024, 30, MAX_SEQUENCE_LENGTH, guidance_scale=4.0,
             description="Lumina2Pipeline defaults: 1024x1024 (sample_size 128 x 8), 30 steps, CFG 4.0 on every step "
                         "(cfg_trunc_ratio 1.0), a prompt filling the 256 Gemma tokens", family="lumina2"),
)
