"""Qwen-Image-2.1 (diffusers ``QwenImage21Transformer2DModel``, 7B single-stream), as ``QwenImage21Pipeline`` drives it.

Why one long module: a model is one file (fxmeter/model/zoo): Qwen-Image-2.1's prompt layout, the mask-value replacement, the KV-cache stages and presets are that one declaration.

Everything copied from diffusers 0.42.1 ``pipelines/qwenimage21/pipeline_qwenimage21.py`` (text-to-image: no
condition ``image``):

* **Text.**  ``_get_qwen_prompt_embeds`` formats the prompt into ``prompt_template_t2i`` (system turn
  "Comprehend and analyze the provided prompt.", then ``<|im_start|>user\\n{prompt}<|im_end|>\\n<|im_start|>assistant\\n``),
  tokenizes with the ``Qwen3VLProcessor`` (``padding=True``, left: to the longest prompt, not to a fixed length), and
  runs the full ``Qwen3VLForConditionalGeneration`` (Qwen3-VL-8B-Instruct) with ``input_ids``, ``attention_mask``,
  ``mm_token_type_ids`` (the processor returns them) and ``output_hidden_states=True``, a forward hook on the language
  model's final ``norm`` returning its input (so ``hidden_states[-1]`` is the last layer's output before the norm; the
  norm still runs).  Its ``lm_head`` computes logits over every position (``logits_to_keep=0``): counted, as they
  run.  The system turn's ``_drop_idx`` tokens are dropped (``len(apply_chat_template(system message))``: 14 for the
  published processor, as public ports assert against its tokenizer; not measured here, the tokenizer is not
  bundled).  The workload's ``text_len`` is what the transformer sees (the prompt's tokens plus the template's 8 user
  and closing tokens); the encoder runs ``text_len + 14``.  The vision tower does not run (no ``pixel_values``).
* **Latents.**  ``vae_scale_factor`` 16 and no patching: an HxW image (floored to multiples of 32) is
  ``(H/16) * (W/16)`` tokens of 64 channels; ``img_mask`` is the prompt's ``image_pad_mask`` (no image slots in
  text-to-image) followed by ``latents.shape[1] // 4`` ones (``append_target_slots``).
* **Denoiser and its KV cache.**  ``use_kv_cache`` (default True) with ``causal_condition`` (the config's): step 0
  runs ``kv_cache_mode="extract"``: the whole joint sequence (``text_len`` text + image tokens), block-causal attention
  as ``QwenImage21AttnProcessor`` (the default processor; flex is opt-in) runs it: the text segment attends causally
  to itself, the image queries to every key; each block stores the text K/V.  Steps 1..N-1 run
  ``kv_cache_mode="cached"``: only the image tokens, attending to the cached text K/V plus their own (stage
  ``transformer_cached``).  ``timestep = t.expand(B).to(latents.dtype) / 1000``; ``encoder_hidden_states_mask`` is None
  (``encode_prompt`` drops an all-ones mask, which it is for prompts of one length).
* **Guidance.**  ``true_cfg_scale`` defaults to 1.0 ("meant to be sampled without guidance"): one pass.  Above 1 with
  a negative prompt, a second, separate forward per step with its own cache (and a second encoder call), costed at
  ``text_len`` like the prompt.
* **VAE.**  ``AutoencoderKLQwenImage21`` (not Qwen-Image's: 64 latent channels, 16x spatial, ``DupUp3D`` shortcuts,
  4 output channels) decodes the one-frame latent ``(B, 64, 1, H/16, W/16)``: ``vae.decode(latents)[0][:, :, 0]``.

**The data-dependent pieces of the forward.**  ``QwenImage21Transformer2DModel.forward`` places the image tokens by
the *values* of ``img_mask`` (``repeat_interleave`` with tensor repeats, boolean-mask assignment, ``nonzero`` in
``build_token_metadata``, ``int(mask.sum())`` for the prefix length, ``.tolist()`` for the attention segments), and
``QwenImage21Rope.forward`` reads ``image_pad_mask.tolist()`` and assigns through the mask: none of it runs on meta.
In text-to-image the pipeline guarantees the layout: ``img_mask[0]`` is ``text_len`` zeros then ``N / 4`` ones, so the
joint sequence is the ``text_len`` text tokens followed by the ``N`` image tokens, one image block, one text
segment.  :func:`qwen_image21_class` is the real class with exactly those expressions replaced by that layout (read
from the inputs' static shapes, ``text_len = encoder_hidden_states.shape[1]``; no argument added); each replaced
expression must occur once in this diffusers' source, else nothing is built.  Every other line, module and op is
the class's own; capture and ``fxmeter verify``'s reference both build this class.  The CPU test at a tiny config
checks the patched forward is bit-identical to the real class in all three cache modes and counts the same
FlopCounterMode FLOPs.  The cache (``QwenImage21KVCache``, a plain object) enters the export as a pytree of its
per-layer K/V (registered once, :func:`_register_cache_pytree`); for the cached stage it holds meta K/V of
``(B, text_len, heads, head_dim)``, what step 0 stored.

``fxmeter observe qwen-image-2.1`` refuses (one error line): ``QwenImage21Pipeline`` needs a ``Qwen3VLProcessor``
(its ``__init__`` calls ``apply_chat_template`` and ``tokenizer.encode``), which is not bundled, and
``_extract_masked_hidden`` splits the encoder output by the mask's values; the stage plan here is read off the
pipeline's source instead.

Preset ``qwen-image-2.1-1024``: the pipeline's defaults: ``output_resolution`` 1024 (1024x1024), 40 steps
(``num_inference_steps``; the published ``model_index.json``'s ``sample_sigmas``, when set, fix the count: the ports
read the card's 40), ``true_cfg_scale`` 1.0 (one pass), KV cache on; ``text_len`` 128 is an assumed prompt of 120
tokens (the pipeline has no ``max_sequence_length``; ``--text-len`` for another).  Everything runs in the pipeline's
``torch_dtype`` (the docstring loads bfloat16).

Configs: the transformer and VAE are their diffusers classes' defaults (the published configs were not reachable;
public ports describe the checkpoint with those values); the text encoder is Qwen3-VL-8B-Instruct.  Each
``_source`` says where its values come from.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from fxmeter.errors import WorkloadError
from fxmeter.model.adapters._common import ANY, ATTN, MATMUL, NORM, Rules, divisible, image_only
from fxmeter.model.adapters.base import Adapter, Geometry, SymbolAxis
from fxmeter.model.adapters.plans import Plans, cfg_runs, decode, text
from fxmeter.model.adapters.stage import StageAdapter, meta_tensor
from fxmeter.model.pipeline import ModelSpec, StagePlan
from fxmeter.model.workload import Workload
from fxmeter.model.zoo.qwen_image import OneFrameVaeDecode, QwenVLPrompt

if TYPE_CHECKING:
    import torch

VAE_SCALE = 16  # QwenImage21Pipeline.vae_scale_factor (no patching: one token per latent pixel)
MULTIPLE_OF = 32  # __call__: width // (vae_scale_factor * 2) * (vae_scale_factor * 2)
SLOT = 4  # _IMG_TOKENS_PER_SLOT: one img_mask slot per 2x2 latent tokens
DROP_IDX = 14  # QwenImage21Pipeline._drop_idx: the system turn's tokens (published processor)
TEMPLATE_TOKENS = 8  # "<|im_start|>user\n" (3) + "<|im_end|>\n<|im_start|>assistant\n" (5) around the prompt
DEFAULT_TEXT_LEN = 128
MODES = ("extract", "cached")

_BLOCKS = r"^transformer_blocks\.\d+"
QWEN_IMAGE21_CATEGORIES: Rules = (
    (rf"{_BLOCKS}\.attn(\.|$)", ATTN, "attention_core"),
    (rf"{_BLOCKS}\.attn(\.|$)", MATMUL, "attention_proj"),
    (r".", NORM, "norms"),
    (r"^$", NORM, "norms"),
    (rf"{_BLOCKS}\.attn(\.|$)", ANY, "rope"),  # complex RoPE products, the segment masks, the cache's K/V concat
    (rf"{_BLOCKS}\.img_mlp(\.|$)", ANY, "ffn"),
    (rf"{_BLOCKS}(\.|$)", ANY, "modulation"),  # the shared modulation's rows per token, tanh gates, residuals
    (r"^(pos_embed|time_text_embed|txt_in|img_in|modulation)(\.|$)", ANY, "embeddings"),
    (r"^(norm_out|proj_out)(\.|$)", ANY, "head"),
    (r"^$", ANY, "head"),  # the joint sequence's assembly
)

#: (expression, replacement) in ``QwenImage21Transformer2DModel.forward``: the text-to-image layout
#: (``text_len`` text tokens, then the target image's ``prod(img_shapes[0][-1])`` tokens) in place of reading it
#: from ``img_mask``'s values
_FORWARD_REPLACEMENTS: tuple[tuple[str, str], ...] = (
    ("image_pad_mask = torch.repeat_interleave(img_mask[0], repeats)\n",
     "text_len = encoder_hidden_states.shape[1]\n"
     "    image_pad_mask = torch.arange(text_len + math.prod(img_shapes[0][-1]), device=img_mask.device) >= text_len\n"),
    ("joint_hidden_states = joint_hidden_states.repeat_interleave(repeats, dim=1)\n"
     "    joint_hidden_states[:, image_pad_mask] = hidden_states\n",
     "joint_hidden_states = torch.cat([joint_hidden_states[:, :text_len], hidden_states], dim=1)\n"),
    # one image block (id 0) after the text (-1); the target's tokens are all the image tokens
    ("self.build_token_metadata(image_pad_mask, img_shapes[0])",
     "torch.where(image_pad_mask, 0, -1), image_pad_mask.clone()"),
    ("prefix_len = int((~target_token_mask).sum())", "prefix_len = text_len"),
    # the prefix is one text segment
    ("_qwenimage21_prefix_segments(image_ids, prefix_len)", "[(0, prefix_len, True)]"),
)
#: (expression, replacement) in ``QwenImage21Rope.forward``: the image tokens are the last ``h * w``
_ROPE_REPLACEMENTS: tuple[tuple[str, str], ...] = (
    ("is_image_token = image_pad_mask.tolist()",
     "is_image_token = [False] * (total_len - math.prod(img_shapes[-1])) + [True] * math.prod(img_shapes[-1])"),
    ("height_index[image_pad_mask] = ", "height_index[total_len - len(image_height_index):] = "),
    ("width_index[image_pad_mask] = ", "width_index[total_len - len(image_width_index):] = "),
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
                               "version's source is not the one the Qwen-Image-2.1 patch was written for")
        src = src.replace(old, new)
    mod = sys.modules[fn.__module__]
    scope: dict[str, Any] = {}
    exec(compile(src, mod.__file__ or fn.__module__, "exec"), vars(mod), scope)
    return scope[fn.__name__]


def _register_cache_pytree() -> None:
    """``QwenImage21KVCache`` as a pytree of its layers' (k, v) (None before step 0 fills them), so the cache the
    pipeline hands the forward can be an input of torch.export."""
    import torch.utils._pytree as pytree
    from diffusers.models.transformers.transformer_qwenimage21 import QwenImage21KVCache

    if QwenImage21KVCache in pytree.SUPPORTED_NODES:
        return

    def flatten(cache: Any) -> tuple[list[Any], int]:
        return [t for lc in cache.layer_caches for t in (lc.k, lc.v)], len(cache.layer_caches)

    def flatten_with_keys(cache: Any) -> tuple[list[tuple[Any, Any]], int]:
        values, n = flatten(cache)
        return [(pytree.SequenceKey(i), v) for i, v in enumerate(values)], n

    def unflatten(values: Any, n: int) -> Any:
        cache = QwenImage21KVCache(n)
        values = list(values)
        for i, lc in enumerate(cache.layer_caches):
            lc.k, lc.v = values[2 * i], values[2 * i + 1]
        return cache

    pytree.register_pytree_node(QwenImage21KVCache, flatten, unflatten,
                                serialized_type_name="diffusers.QwenImage21KVCache",
                                flatten_with_keys_fn=flatten_with_keys)


_CLASS: Any = None


def qwen_image21_class() -> Any:
    """``QwenImage21Transformer2DModel`` with :func:`_patched` forwards for itself and its ``pos_embed`` (built once).

    The same class names (reports and FlopCounterMode's module keys read as the real classes'); ``__init__`` is the
    real one (its config signature included), then swaps the RoPE module's class: modules and parameters untouched.
    """
    global _CLASS
    if _CLASS is None:
        import functools

        import diffusers.models.transformers.transformer_qwenimage21 as mod

        base = mod.QwenImage21Transformer2DModel
        rope = type("QwenImage21Rope", (mod.QwenImage21Rope,),
                    {"forward": _patched(mod.QwenImage21Rope.forward, _ROPE_REPLACEMENTS), "__module__": __name__})

        @functools.wraps(base.__init__)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            base.__init__(self, *args, **kwargs)
            self.pos_embed.__class__ = rope

        _register_cache_pytree()
        _CLASS = type("QwenImage21Transformer2DModel", (base,),
                      {"__init__": __init__, "forward": _patched(base.forward, _FORWARD_REPLACEMENTS),
                       "__module__": __name__,
                       "__doc__": "QwenImage21Transformer2DModel, the text-to-image token layout read from the inputs' "
                                  "shapes (not from img_mask's values)"})
    return _CLASS


def empty_cache(num_layers: int) -> Any:
    from diffusers.models.transformers.transformer_qwenimage21 import QwenImage21KVCache

    _register_cache_pytree()
    return QwenImage21KVCache(num_layers)


@dataclass
class QwenImage21Adapter(Adapter):
    name: str = "qwen_image21"
    diffusers_class: str = "QwenImage21Transformer2DModel"
    # causal_condition changes which modulation row a token reads, never one block: the 32 blocks are identical
    repeated: dict[str, str] = field(default_factory=lambda: {"transformer_blocks": "num_layers"})
    symbols: tuple[str, ...] = ("batch", "image_tokens", "latent_h", "latent_w", "text_len")
    required_keys: tuple[str, ...] = ("in_channels", "num_layers", "attention_head_dim", "num_attention_heads",
                                      "context_in_dim", "mlp_ratio", "patch_size")
    category_rules: Rules = QWEN_IMAGE21_CATEGORIES
    default_slug: str = "qwen_image21"
    family: str = "qwen_image21"
    default_workload: str | None = "qwen-image-2.1-1024"
    offload_seq: tuple[str, ...] = ("text_encoder", "transformer", "vae")  # model_cpu_offload_seq
    pipelines: tuple[str, ...] = ("QwenImage21Pipeline",)
    positive_keys: tuple[str, ...] = ("in_channels", "num_layers", "attention_head_dim", "num_attention_heads",
                                      "context_in_dim", "mlp_ratio", "axes_dims_rope", "patch_size")
    sequence_symbols: tuple[str, ...] = ("image_tokens",)
    joint_text_symbols: tuple[str, ...] = ("text_len",)
    #: the KV-cache mode of this stage's forward: "extract" (step 0) or "cached" (the later steps)
    kv_mode: str = "extract"

    @property
    def model_class(self) -> Any:
        """The class capture and verify's reference build (:func:`qwen_image21_class`)."""
        return qwen_image21_class()

    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        if int(config["patch_size"]) != 1:
            raise WorkloadError("QwenImage21Pipeline packs latents unpatched (patch_size 1); "
                                f"this config has patch_size {config['patch_size']}")
        divisible(wl.height, wl.width, MULTIPLE_OF, "VAE 16 x the img_mask's 2x2 slots (QwenImage21Pipeline)")
        if wl.text_len < 1:
            raise WorkloadError(f"text_len is the prompt's tokens after the system turn (>= 1); got {wl.text_len}")
        notes = image_only(wl.frames, "Qwen-Image-2.1")
        lh, lw = wl.height // VAE_SCALE, wl.width // VAE_SCALE
        n = lh * lw
        notes.append(f"Qwen3-VL runs {wl.text_len + DROP_IDX} tokens ({DROP_IDX} system-turn tokens dropped); step 0 "
                     f"runs the joint {wl.text_len} text + {n} image tokens (block-causal) and caches the text K/V, "
                     f"the later steps the {n} image tokens over the cached text")
        dims = {"batch": wl.batch, "image_tokens": n, "latent_h": lh, "latent_w": lw, "text_len": wl.text_len}
        return Geometry(dims, (wl.batch, n, int(config["in_channels"])), n, 1, tuple(notes))

    def supports_dynamic(self, config: dict[str, Any]) -> bool:
        """No: ``img_shapes`` are Python ints (RoPE index lists, segment bounds)."""
        return False

    def model_dims(self, config: dict[str, Any], geometry: Geometry) -> dict[str, int | None] | None:
        """``num_attention_heads`` x ``attention_head_dim``, SwiGLU ``mlp_ratio`` x hidden, ``num_layers``
        single-stream blocks over text + image tokens (step 0; the cached steps run the image tokens)."""
        heads, head_dim = int(config["num_attention_heads"]), int(config["attention_head_dim"])
        hidden = heads * head_dim
        return {"heads": heads, "head_dim": head_dim, "hidden": hidden, "ffn": hidden * int(config["mlp_ratio"]),
                "layers": int(config["num_layers"]), "text_len": geometry.dims["text_len"], "tokens": geometry.tokens}

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        if self.kv_mode not in MODES:
            raise ValueError(f"kv_mode is one of {MODES}; got {self.kv_mode!r}")
        b, n, t = dims["batch"], dims["image_tokens"], dims["text_len"]
        layers, heads = int(config["num_layers"]), int(config["num_attention_heads"])
        cache = empty_cache(layers)
        if self.kv_mode == "cached":  # what step 0's extract stored: the text tokens' K/V (post-RoPE), per layer
            for lc in cache.layer_caches:
                lc.store(meta_tensor(b, t, heads, int(config["attention_head_dim"]), dtype=dtype),
                         meta_tensor(b, t, heads, int(config["attention_head_dim"]), dtype=dtype))
        return {
            "hidden_states": meta_tensor(b, n, int(config["in_channels"]), dtype=dtype),  # packed latents
            "encoder_hidden_states": meta_tensor(b, t, int(config["context_in_dim"]), dtype=dtype),
            "timestep": meta_tensor(b, dtype=dtype),  # t.expand(B).to(latents.dtype) / 1000
            "img_shapes": [[(1, dims["latent_h"], dims["latent_w"])]] * b,
            "img_mask": meta_tensor(b, t + n // SLOT, dtype=torch.bool),  # image_pad_mask + append_target_slots
            "kv_cache": cache,
            "kv_cache_mode": self.kv_mode,
            "return_dict": False,
        }

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        """The inputs' axes (the export is static)."""
        return {
            "hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("image_tokens")},
            "encoder_hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("text_len")},
            "timestep": {0: SymbolAxis("batch")},
        }

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 1024), "image_tokens": (4, 1 << 20), "latent_h": (2, 1 << 12), "latent_w": (2, 1 << 12),
                "text_len": (1, 1 << 16)}

    def stages(self, config: dict[str, Any], wl: Workload, *, batched_cfg: bool = False) -> tuple[StagePlan, ...]:
        """Step 0 (``extract``: the joint sequence) and steps 1..N-1 (``cached``: the image tokens); with true CFG
        each a second, separate forward on the negative prompt (the pipeline never batches them)."""
        passes = 2 if wl.guidance_scale > 1.0 else 1
        why = "prompt and negative prompt: 2 separate forwards" if passes == 2 else "one pass, no guidance"
        first = StagePlan("transformer", "transformer",
                          f"denoiser, step 0 (kv_cache_mode='extract': text + image tokens, block-causal; {why})",
                          runs=passes, steps=1,
                          notes=("transformer: step 0 prefills the KV cache (use_kv_cache=True, causal_condition)",))
        if wl.steps <= 1:
            return (first,)
        return (first, StagePlan(
            "transformer_cached", "transformer",
            f"denoiser, steps 1..{wl.steps - 1} (kv_cache_mode='cached': image tokens over the cached text K/V; {why})",
            runs=(wl.steps - 1) * passes, steps=wl.steps - 1, root="transformer_cached",
            adapter=replace(self, name="qwen_image21-cached", kv_mode="cached")))

    def pipeline_stages(self, config: dict[str, Any], wl: Workload, geometry: Geometry) -> Plans:
        """Qwen3-VL-8B (the system turn + ``text_len`` tokens; prompt and negative with true CFG), VAE decode."""
        b, t = geometry.dims["batch"], geometry.dims["text_len"]
        n = t + DROP_IDX
        before = (text("text_encoder", QWEN3_VL_PROMPT, f"Qwen3-VL-8B, {n} tokens (system turn {DROP_IDX} dropped + {t})",
                       cfg_runs(wl), {"batch": b, "seq_len": n},
                       notes=("text_encoder: Qwen3VLForConditionalGeneration forward as the pipeline calls it (final "
                              "norm hooked to its input, hidden_states[-1]; its lm_head logits over every token are "
                              "computed and counted)",)),)
        after = (decode(VAE_DECODE_QWENIMAGE21, "AutoencoderKLQwenImage21, one frame",
                        {"batch": b, "latent_frames": 1, "latent_h": geometry.dims["latent_h"],
                         "latent_w": geometry.dims["latent_w"]},
                        notes=("vae: tiling off (vae.enable_tiling() is not modeled)",)),)
        return before, after


# -- the pipeline's other stages --------------------------------------------------------------------


def _qwen3vl_prompt_wrapper(model: torch.nn.Module, drop: int) -> torch.nn.Module:
    import torch

    class Qwen3VLPromptCall(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.component: Any = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    mm_token_type_ids: torch.Tensor) -> torch.Tensor:
            # QwenImage21Pipeline._get_qwen_prompt_embeds: the final norm's output replaced by its input, the
            # ForConditionalGeneration forward, hidden_states[-1], the system turn's `drop` tokens dropped
            text_model = getattr(self.component.model, "language_model", self.component.model)
            handle = text_model.norm.register_forward_hook(lambda module, args, output: args[0])
            try:
                out = self.component(input_ids=input_ids, attention_mask=attention_mask,
                                     mm_token_type_ids=mm_token_type_ids, output_hidden_states=True)
            finally:
                handle.remove()
            return out.hidden_states[-1][:, drop:]  # type: ignore[no-any-return]

    return Qwen3VLPromptCall()


@dataclass
class Qwen3VLPrompt(QwenVLPrompt):
    """Qwen3-VL's ``ForConditionalGeneration`` on a templated text-only prompt (``QwenImage21Pipeline``)."""

    name: str = "qwen3-vl-prompt"
    classes: tuple[str, ...] = ("Qwen3VLForConditionalGeneration",)
    drop: int = DROP_IDX

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return _qwen3vl_prompt_wrapper(model, self.drop)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        b, n = dims["batch"], dims["seq_len"]
        return {"input_ids": meta_tensor(b, n, dtype=torch.long), "attention_mask": meta_tensor(b, n, dtype=torch.long),
                "mm_token_type_ids": meta_tensor(b, n, dtype=torch.long)}  # zeros: text only

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        axes = {0: SymbolAxis("batch"), 1: SymbolAxis("seq_len")}
        return {"input_ids": axes, "attention_mask": dict(axes), "mm_token_type_ids": dict(axes)}


QWEN3_VL_PROMPT = Qwen3VLPrompt()
VAE_DECODE_QWENIMAGE21 = OneFrameVaeDecode(name="vae-decode-qwenimage21", classes=("AutoencoderKLQwenImage21",))

ADAPTERS = (QwenImage21Adapter(),)
MODELS = (
    ModelSpec("qwen-image-2.1", "qwen-image-2.1/transformer/config.json", "qwen_image21", "qwen-image-2.1-1024",
              "https://github.com/huggingface/diffusers/blob/v0.42.1/src/diffusers/models/transformers/"
              "transformer_qwenimage21.py",
              "Qwen-Image-2.1 text-to-image, 7B single-stream (Qwen3-VL-8B text; step 0 prefills a text KV cache)",
              {c: f"qwen-image-2.1/{c}" for c in ("text_encoder", "vae")}),
)
PRESETS = (
    Workload("qwen-image-2.1-1024", 1, 1024, 1024, 40, DEFAULT_TEXT_LEN, guidance_scale=1.0,
             description="QwenImage21Pipeline defaults: 1024x1024 (output_resolution), 40 steps, true_cfg_scale 1.0 "
                         "(one pass), KV cache on; text 128 (an assumed 120-token prompt + 8 template tokens)",
             family="qwen_image21"),
)
#: (Qwen3VLForConditionalGeneration's default call is MiniMax-H3's, registered first; this pipeline's is explicit)
STAGE_ADAPTERS: dict[str, StageAdapter] = {"AutoencoderKLQwenImage21": VAE_DECODE_QWENIMAGE21}
