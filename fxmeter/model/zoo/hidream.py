"""HiDream-I1-Full (diffusers ``HiDreamImageTransformer2DModel``, 17B, MoE), as ``HiDreamImagePipeline`` drives it.

Why one long module: a model is one file (fxmeter/model/zoo): HiDream's four text encoders, the MoE routing replacement, its stages and presets are that one declaration.

Everything copied from diffusers 0.42.1 ``pipelines/hidream_image/pipeline_hidream_image.py``:

* **Text.**  Four encoders, every one at ``max_sequence_length`` 128 (``padding="max_length"``):
  CLIP-L and CLIP-G (``CLIPTextModelWithProjection``, ``min(128, 218)`` tokens, ``text_encoder(ids,
  output_hidden_states=True)[0]``: the projected pooled vectors, concatenated to the 2048-wide ``pooled_embeds``);
  T5-XXL (``T5EncoderModel(ids, attention_mask=mask)[0]``); Llama-3.1-8B-Instruct (``LlamaForCausalLM(ids,
  attention_mask=mask, output_hidden_states=True, output_attentions=True)``: every layer's hidden state,
  ``torch.stack(hidden_states[1:])``: ``(32, B, 128, 4096)``; the causal-LM head runs too, as the pipeline calls
  the whole ``LlamaForCausalLM``; ``output_attentions`` is ignored by the default SDPA attention).  With classifier-free guidance (``guidance_scale > 1``, 5.0 by default) each
  encoder runs a second time on the negative prompt (``""``).
* **Latents.**  The FLUX.1 ``AutoencoderKL`` (16 channels, 8x): ``(B, 16, H/8, W/8)``, patchified 2x2 inside the
  transformer.  A square latent gives ``(H/16) * (W/16)`` image tokens; a non-square one is padded to
  ``max_seq`` = 128 * 128 / 4 = 4096 tokens with a mask (``patchify``), so a non-square image always costs 4096.
* **Denoiser.**  ``timesteps = t.expand(batch)`` (the scheduler's float32 timesteps).  Under CFG the pipeline
  concatenates ``[negative, prompt]`` and the latents twice: one transformer call of twice the batch per step
  (fxmeter costs two forwards of the batch unless ``--batched-cfg``: the same FLOPs).  16 double-stream blocks
  see the image tokens and ``t5 (128) + last Llama layer (128) + this block's Llama layer (128)`` text tokens; 32
  single-stream blocks see the joint sequence (image + 384).  Each block's image FFN is a mixture of experts:
  a shared SwiGLU expert on every token, plus ``num_activated_experts`` (2) of ``num_routed_experts`` (4) routed
  SwiGLU experts per token, chosen by a softmax gate (``MoEGate``, top-k).
* **VAE.**  ``vae.decode(latents / scaling_factor + shift_factor)``.

**The routed experts (an assumption, stated).**  In inference mode ``MOEFeedForwardSwiGLU.moe_infer`` sorts the
token-expert assignments (``argsort``), counts them per expert (``bincount().cpu().numpy()``: the values leave
the device) and runs each expert on its own tokens, skipping an expert with none.  The counts are data: on
``meta`` they cannot be read, under torch.export nor FlopCounterMode.  :class:`HiDreamImageTransformer2DModel`
here (``model_class``) runs the real ``moe_infer``'s source with *only* that expression replaced
(``_ROUTING_REPLACEMENTS``, each must occur exactly once or the build refuses: a diffusers change is caught) by
the counts of a **routing assumption: the ``tokens x top_k`` assignments spread evenly over the experts**
(``tokens x 2 / 4`` each, the remainder to the first experts).  Every other op is the class's own, on the
shapes these counts give.  What this assumption moves:

* **FLOPs: nothing.**  Top-k picks exactly ``top_k`` distinct experts per token, so the experts together
  always run ``tokens x top_k`` token-calls, and the experts are the same size: the routed matmul FLOPs are
  ``tokens x top_k x 3 x 2 x dim x ffn`` for *any* routing (the tests compare FlopCounterMode on the real
  ``moe_infer`` with real routing against this graph, on CPU at a tiny size: equal FLOPs, and bit-identical
  outputs when the graph is given the real counts).
* **Bytes and per-expert shapes: yes.**  Under the assumption every expert runs (its weights are read) on
  ``tokens / 2`` tokens; a routing that leaves an expert idle reads fewer weights, an unbalanced one runs
  bigger and smaller matmuls (time on a device may differ).

``fxmeter observe hidream-i1-full`` runs the real pipeline on meta and agrees on every stage, run count, batch and
dtype; it reports 77 T5 / Llama tokens where this plan has 128 only because its stand-in tokenizer's
``model_max_length`` is 77 and the pipeline pads to ``min(128, tokenizer.model_max_length)``: the T5 v1.1 and
Llama-3.1 tokenizers' limits (512; 131,072) are above 128 (the hub's tokenizer files were not reachable to check
HiDream's copies).

Preset ``hidream-i1-full-1024``: the ``HiDreamImagePipeline`` docstring's call for HiDream-I1-Full
(1024 x 1024, 50 steps, ``guidance_scale`` 5.0; ``max_sequence_length`` 128, the default).

Configs: the transformer from diffusers' HiDream conversion script (a public copy); the text encoders and the
VAE as each file's ``_source`` says (the hub's HiDream-ai/HiDream-I1-Full folder was not reachable).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fxmeter.errors import WorkloadError
from fxmeter.model.adapters._common import ANY, ATTN, MATMUL, NORM, Rules, divisible, image_only
from fxmeter.model.adapters.base import Adapter, Geometry, SymbolAxis
from fxmeter.model.adapters.plans import Plans, cfg_runs, decode, text
from fxmeter.model.adapters.stage import StageAdapter, meta_tensor
from fxmeter.model.adapters.text_encoders import TEXT_CATEGORIES, UMT5_MASKED
from fxmeter.model.adapters.vaes import VAE_DECODE
from fxmeter.model.pipeline import ModelSpec
from fxmeter.model.workload import Workload

if TYPE_CHECKING:
    import torch

VAE_SCALE = 8  # the FLUX.1 AutoencoderKL
MAX_SEQUENCE_LENGTH = 128  # HiDreamImagePipeline.__call__ default, for every encoder (CLIP: min(128, 218))
LLAMA_LAYERS = 32  # Llama-3.1-8B's hidden states after each layer: hidden_states[1:]

#: (expression of ``MOEFeedForwardSwiGLU.moe_infer``, its replacement)
_ROUTING_REPLACEMENTS: tuple[tuple[str, str], ...] = (
    # the decorator only switches autograd off; HiDreamImagePipeline.__call__ runs under torch.no_grad() already, and
    # torch.export would turn it into a wrap_with_set_grad_enabled region fxmeter's capture does not enter
    ("@torch.no_grad()\n", ""),
    # the per-expert counts leave the device (.cpu().numpy()): the stated routing's counts instead
    ("tokens_per_expert = flat_expert_indices.bincount().cpu().numpy().cumsum(0)",
     "tokens_per_expert = self.tokens_per_expert(flat_expert_indices)"),
)


def routed_moe_infer_source() -> str:
    """The real ``moe_infer``'s source with :data:`_ROUTING_REPLACEMENTS` applied (each must match exactly once)."""
    import inspect
    import textwrap

    from diffusers.models.transformers.transformer_hidream_image import MOEFeedForwardSwiGLU

    src = textwrap.dedent(inspect.getsource(MOEFeedForwardSwiGLU.moe_infer))
    for old, new in _ROUTING_REPLACEMENTS:
        n = src.count(old)
        if n != 1:
            raise RuntimeError(f"MOEFeedForwardSwiGLU.moe_infer: {old!r} occurs {n} times (expected once); this "
                               "diffusers version's moe_infer is not the one the routing patch was written for")
        src = src.replace(old, new)
    return src


def even_counts(assignments: int, experts: int) -> list[int]:
    """``assignments`` token-expert pairs spread evenly over ``experts``, the remainder to the first ones."""
    q, r = divmod(assignments, experts)
    return [q + (1 if i < r else 0) for i in range(experts)]


_CLASSES: dict[str, Any] = {}


def routed_moe_class() -> Any:
    """``MOEFeedForwardSwiGLU`` whose ``moe_infer`` is :func:`routed_moe_infer_source` (built once).

    ``routing`` (a class attribute) picks the counts: ``"even"`` (the stated assumption, the default) or
    ``"real"`` (the counts of the actual assignments, exactly the original expression; CPU only)."""
    if "moe" not in _CLASSES:
        import itertools

        import diffusers.models.transformers.transformer_hidream_image as mod

        scope: dict[str, Any] = {}
        exec(compile(routed_moe_infer_source(), mod.__file__ or "transformer_hidream_image.py", "exec"),
             vars(mod), scope)  # the module's globals: torch

        def tokens_per_expert(self: Any, flat_expert_indices: Any) -> Any:
            if self.routing == "real":
                return flat_expert_indices.bincount().cpu().numpy().cumsum(0)
            counts = even_counts(int(flat_expert_indices.shape[0]), len(self.experts))
            return list(itertools.accumulate(counts))

        _CLASSES["moe"] = type("MOEFeedForwardSwiGLU", (mod.MOEFeedForwardSwiGLU,), {
            "moe_infer": scope["moe_infer"], "tokens_per_expert": tokens_per_expert, "routing": "even",
            "__module__": __name__,
            "__doc__": "MOEFeedForwardSwiGLU, moe_infer's per-expert counts from a stated routing (module docstring)"})
    return _CLASSES["moe"]


def routed_model_class() -> Any:
    """``HiDreamImageTransformer2DModel`` whose MoE feed-forwards are :func:`routed_moe_class` (built once)."""
    if "model" not in _CLASSES:
        import functools
        import inspect

        import diffusers.models.transformers.transformer_hidream_image as mod

        base = mod.HiDreamImageTransformer2DModel
        moe = routed_moe_class()

        @functools.wraps(base.__init__)  # the same signature: ConfigMixin.from_config reads it
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            base.__init__(self, *args, **kwargs)
            for m in self.modules():
                if type(m) is mod.MOEFeedForwardSwiGLU:
                    m.__class__ = moe

        # the signature ConfigMixin and fxmeter's config check read: the class's own, except that its annotation
        # tuple[int, int] of axes_dims_rope / max_resolution is narrower than the published config (three RoPE axes)
        sig = inspect.signature(base.__init__)
        __init__.__signature__ = sig.replace(parameters=[  # type: ignore[attr-defined]
            p.replace(annotation=list[int] | tuple[int, ...]) if p.name in ("axes_dims_rope", "max_resolution") else p
            for p in sig.parameters.values()])

        def patchify(self: Any, hidden_states: Any) -> Any:
            # the class's patchify; its img_sizes, a tensor of the Python ints (patch_height, patch_width) per sample,
            # handed on as those ints (the forward's documented list[tuple[int, int]]): unpatchify slices by them,
            # and a tensor's values cannot be read on meta
            out, masks, _, img_ids = base.patchify(self, hidden_states)
            p = self.config.patch_size
            grid = (hidden_states.shape[-2] // p, hidden_states.shape[-1] // p)
            return out, masks, [grid] * hidden_states.shape[0], img_ids

        # the same class name: reports and FlopCounterMode's module keys read as the real class's
        _CLASSES["model"] = type("HiDreamImageTransformer2DModel", (base,), {
            "__init__": __init__, "patchify": patchify, "__module__": __name__,
            "__doc__": "HiDreamImageTransformer2DModel, its MoE routing counts from a stated assumption"})
    return _CLASSES["model"]


_BLOCKS = r"^(double_stream_blocks|single_stream_blocks)\.\d+\.block"
HIDREAM_CATEGORIES: Rules = (
    (rf"{_BLOCKS}\.attn1(\.|$)", ATTN, "attention_core"),
    (rf"{_BLOCKS}\.attn1(\.|$)", MATMUL, "attention_proj"),
    (r".", NORM, "norms"),
    (r"^$", NORM, "norms"),
    (rf"{_BLOCKS}\.attn1$", ANY, "rope"),  # RoPE application, the joint sequence's cat / split
    (rf"{_BLOCKS}\.ff_i\.(gate|experts)(\.|$)", ANY, "moe_routed"),
    (rf"{_BLOCKS}\.ff_i$", ANY, "moe_routed"),  # moe_infer: sort, gather, weight, scatter
    (rf"{_BLOCKS}\.(ff_i|ff_t)(\.|$)", ANY, "ffn"),  # the shared expert, the text FFN
    (rf"{_BLOCKS}(\.|$)", ANY, "modulation"),
    (r"^(double_stream_blocks|single_stream_blocks)\.\d+(\.|$)", ANY, "modulation"),
    (r"^(t_embedder|p_embedder|x_embedder|pe_embedder|caption_projection)(\.|$)", ANY, "embeddings"),
    (r"^final_layer(\.|$)", ANY, "head"),
    (r"^$", ANY, "head"),  # patchify, RoPE ids, the text concatenations, unpatchify
)


@dataclass
class HiDreamAdapter(Adapter):
    """``HiDreamImageTransformer2DModel`` as ``HiDreamImagePipeline`` calls it (routed experts: module docstring)."""

    name: str = "hidream"
    diffusers_class: str = "HiDreamImageTransformer2DModel"
    #: no replication: the forward projects one Llama layer per block (``caption_projection``, as long as
    #: ``llama_layers``), so a one-block copy would not run; every block is traced
    repeated: dict[str, str] = field(default_factory=dict)
    symbols: tuple[str, ...] = ("batch", "patches_h", "patches_w", "text_len")
    required_keys: tuple[str, ...] = (
        "patch_size", "in_channels", "num_layers", "num_single_layers", "attention_head_dim", "num_attention_heads",
        "caption_channels", "text_emb_dim", "num_routed_experts", "num_activated_experts", "llama_layers",
        "max_resolution",
    )
    category_rules: Rules = HIDREAM_CATEGORIES
    default_slug: str = "hidream"
    family: str = "hidream"
    default_workload: str | None = "hidream-i1-full-1024"
    offload_seq: tuple[str, ...] = ("text_encoder", "text_encoder_2", "text_encoder_3", "text_encoder_4",
                                    "transformer", "vae")  # model_cpu_offload_seq
    pipelines: tuple[str, ...] = ("HiDreamImagePipeline",)  # fxmeter.model.folder.pipelines_for
    positive_keys: tuple[str, ...] = (
        "patch_size", "in_channels", "num_layers", "num_single_layers", "attention_head_dim", "num_attention_heads",
        "text_emb_dim", "num_activated_experts", "axes_dims_rope", "max_resolution", "caption_channels",
    )
    sequence_symbols: tuple[str, ...] = ("patches_h", "patches_w")
    joint_text_symbols: tuple[str, ...] = ("text_len",)

    @property
    def model_class(self) -> Any:
        """The class capture and verify's reference build (:func:`routed_model_class`)."""
        return routed_model_class()

    def check_config(self, config: dict[str, Any]) -> list[str]:
        bad = super().check_config(config)
        if config.get("force_inference_output"):
            bad.append("force_inference_output = true: a training-mode checkpoint option (not modeled)")
        n = int(config.get("num_layers", 0) or 0) + int(config.get("num_single_layers", 0) or 0)
        if len(config.get("llama_layers") or []) < n:
            bad.append(f"llama_layers lists {len(config.get('llama_layers') or [])} layers; the forward reads one "
                       f"per block ({n})")
        return bad

    def _max_seq(self, config: dict[str, Any]) -> int:
        h, w = (int(v) for v in config["max_resolution"])
        p = int(config["patch_size"])
        return h * w // (p * p)

    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        p = int(config["patch_size"])
        divisible(wl.height, wl.width, VAE_SCALE * p, "VAE 8 x 2x2 patches")
        ph, pw = wl.height // (VAE_SCALE * p), wl.width // (VAE_SCALE * p)
        notes = image_only(wl.frames, "HiDream-I1")
        tokens = ph * pw
        if ph != pw:
            max_seq = self._max_seq(config)
            if tokens > max_seq:
                raise WorkloadError(f"a non-square latent is padded to max_seq {max_seq} tokens; {ph}x{pw} = {tokens} "
                                    "patches do not fit (HiDreamImageTransformer2DModel.patchify)")
            notes.append(f"non-square: the transformer pads the {tokens} image tokens to max_seq {max_seq} (patchify)")
            tokens = max_seq
        notes.append(f"text per double block: T5 {wl.text_len} + the last Llama layer {wl.text_len} + its own Llama "
                     f"layer {wl.text_len} tokens; single blocks: {tokens} image + {3 * wl.text_len} text")
        dims = {"batch": wl.batch, "patches_h": ph, "patches_w": pw, "text_len": wl.text_len}
        return Geometry(dims, (wl.batch, int(config["in_channels"]), ph * p, pw * p), tokens, 1, tuple(notes))

    def supports_dynamic(self, config: dict[str, Any]) -> bool:
        """False: the routed experts' token counts are Python ints of the token count, and ``patchify`` branches on
        the latent being square: one export per workload."""
        return False

    def model_dims(self, config: dict[str, Any], geometry: Geometry) -> dict[str, int | None] | None:
        """20 heads x 128; the image FFN: shared expert + ``num_activated_experts`` routed SwiGLU experts of
        ``256 * ceil(int(2 * 4 * dim / 3) / 256)``; 16 + 32 blocks over image + 3 x text tokens."""
        heads, hd = int(config["num_attention_heads"]), int(config["attention_head_dim"])
        dim = heads * hd
        ffn = int(2 * 4 * dim / 3)
        ffn = 256 * ((ffn + 255) // 256)
        return {"heads": heads, "head_dim": hd, "hidden": dim, "ffn": ffn,
                "layers": int(config["num_layers"]) + int(config["num_single_layers"]),
                "text_len": 3 * geometry.dims["text_len"], "tokens": geometry.tokens}

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        p, b, t = int(config["patch_size"]), dims["batch"], dims["text_len"]
        # caption_projection: caption_channels[1] (Llama) for each block, caption_channels[0] (T5) last
        t5_dim, llama_dim = (int(c) for c in config["caption_channels"])
        return {
            "hidden_states": meta_tensor(b, int(config["in_channels"]), dims["patches_h"] * p, dims["patches_w"] * p,
                                         dtype=dtype),
            "timesteps": meta_tensor(b, dtype=torch.float32),  # t.expand(batch): the scheduler's float32 timesteps
            "encoder_hidden_states_t5": meta_tensor(b, t, t5_dim, dtype=dtype),
            # torch.stack(llama(...).hidden_states[1:]): every layer's output
            "encoder_hidden_states_llama3": meta_tensor(LLAMA_LAYERS, b, t, llama_dim, dtype=dtype),
            "pooled_embeds": meta_tensor(b, int(config["text_emb_dim"]), dtype=dtype),  # cat(CLIP-L, CLIP-G) pooled
            "return_dict": False,
        }

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        p = int(config["patch_size"])
        return {
            "hidden_states": {0: SymbolAxis("batch"), 2: SymbolAxis("patches_h", p), 3: SymbolAxis("patches_w", p)},
            "timesteps": {0: SymbolAxis("batch")},
            "encoder_hidden_states_t5": {0: SymbolAxis("batch"), 1: SymbolAxis("text_len")},
            "encoder_hidden_states_llama3": {1: SymbolAxis("batch"), 2: SymbolAxis("text_len")},
            "pooled_embeds": {0: SymbolAxis("batch")},
        }

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 1024), "patches_h": (1, 4096), "patches_w": (1, 4096), "text_len": (1, 1 << 16)}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 2, "patches_h": 4, "patches_w": 4, "text_len": 7}

    def pipeline_stages(self, config: dict[str, Any], wl: Workload, geometry: Geometry) -> Plans:
        """CLIP-L, CLIP-G, T5-XXL, Llama-3.1-8B at 128 tokens (prompt, and the negative prompt under CFG); FLUX.1
        VAE decode."""
        b, n = geometry.dims["batch"], geometry.dims["text_len"]
        p = int(config["patch_size"])
        runs = cfg_runs(wl)
        before = (
            text("text_encoder", CLIP_PROJECTED, f"CLIP-L with projection, pooled, {n} tokens", runs,
                 {"batch": b, "seq_len": n}),
            text("text_encoder_2", CLIP_PROJECTED, f"CLIP-G with projection, pooled, {n} tokens", runs,
                 {"batch": b, "seq_len": n}),
            text("text_encoder_3", UMT5_MASKED, f"T5-XXL, masked, {n} tokens", runs, {"batch": b, "seq_len": n}),
            text("text_encoder_4", LLAMA_ALL_LAYERS, f"Llama-3.1-8B-Instruct, all {LLAMA_LAYERS} hidden states, "
                 f"{n} tokens", runs, {"batch": b, "seq_len": n},
                 notes=("text_encoder_4: LlamaForCausalLM(ids, mask, output_hidden_states=True, output_attentions=True):"
                        " every layer's hidden state is kept; the causal-LM head's logits are computed too (the "
                        "pipeline calls the whole LlamaForCausalLM)",)),
        )
        after = (decode(VAE_DECODE, "AutoencoderKL (FLUX.1), 16 channels",
                        {"batch": b, "latent_h": geometry.dims["patches_h"] * p,
                         "latent_w": geometry.dims["patches_w"] * p}),)
        return before, after


def _clip_projected_wrapper(model: torch.nn.Module) -> torch.nn.Module:
    import torch

    class ClipProjectedCall(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.component: Any = model

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            # HiDreamImagePipeline._get_clip_prompt_embeds: text_encoder(ids, output_hidden_states=True)[0]
            return self.component(input_ids, output_hidden_states=True)[0]

    return ClipProjectedCall()


@dataclass
class ClipProjected(StageAdapter):
    """``CLIPTextModelWithProjection`` at ``seq_len`` tokens (HiDream's long-context CLIPs: 128), ``text_embeds``."""

    name: str = "clip-projected"
    library: str = "transformers"
    classes: tuple[str, ...] = ("CLIPTextModelWithProjection",)
    symbols: tuple[str, ...] = ("batch", "seq_len")
    category_rules: Rules = TEXT_CATEGORIES

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return _clip_projected_wrapper(model)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        return {"input_ids": meta_tensor(dims["batch"], dims["seq_len"], dtype=torch.long)}

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        return {"input_ids": {0: SymbolAxis("batch"), 1: SymbolAxis("seq_len")}}

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 1024), "seq_len": (2, int(config.get("max_position_embeddings", 77)))}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 2, "seq_len": 7}


def _llama_all_layers_wrapper(model: torch.nn.Module) -> torch.nn.Module:
    import torch

    class LlamaAllLayersCall(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.component: Any = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            # HiDreamImagePipeline._get_llama3_prompt_embeds
            out = self.component(input_ids, attention_mask=attention_mask, output_hidden_states=True,
                                 output_attentions=True)
            return torch.stack(out.hidden_states[1:], dim=0)

    return LlamaAllLayersCall()


@dataclass
class LlamaAllLayers(StageAdapter):
    """``LlamaForCausalLM`` as HiDream calls it: every hidden state after the embeddings, stacked; the LM head's
    logits computed.  ``output_attentions=True`` changes nothing under the default ``sdpa`` attention (transformers
    5 warns and returns no weights): the attention runs as SDPA."""

    name: str = "llama-all-layers"
    library: str = "transformers"
    classes: tuple[str, ...] = ("LlamaForCausalLM",)
    symbols: tuple[str, ...] = ("batch", "seq_len")
    category_rules: Rules = TEXT_CATEGORIES
    # eager FlopCounterMode on meta cannot run transformers' mask checks (.item() on meta): verify counts the graph
    reference_on_graph: bool = True

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return _llama_all_layers_wrapper(model)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        b, n = dims["batch"], dims["seq_len"]
        return {"input_ids": meta_tensor(b, n, dtype=torch.long), "attention_mask": meta_tensor(b, n, dtype=torch.long)}

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        axes = {0: SymbolAxis("batch"), 1: SymbolAxis("seq_len")}
        return {"input_ids": axes, "attention_mask": dict(axes)}

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 1024), "seq_len": (2, int(config.get("max_position_embeddings", 8192)))}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 2, "seq_len": 7}


CLIP_PROJECTED = ClipProjected()
LLAMA_ALL_LAYERS = LlamaAllLayers()

ADAPTERS = (HiDreamAdapter(),)
MODELS = (
    ModelSpec("hidream-i1-full", "hidream-i1-full/transformer/config.json", "hidream", "hidream-i1-full-1024",
              "https://github.com/hlky/diffusers/blob/bd3e1965714fa791aa9f5f595782800e5ec82c8d/scripts/"
              "convert_hidream_to_diffusers.py",
              "HiDream-I1-Full text-to-image, 17B MoE (CLIP-L, CLIP-G, T5-XXL, Llama-3.1-8B; CFG 5.0: 2 passes/step, "
              "batched by the pipeline; routed experts costed at an even routing)",
              {"text_encoder": "hidream-i1-full/text_encoder", "text_encoder_2": "hidream-i1-full/text_encoder_2",
               "text_encoder_3": "flux.1-dev/text_encoder_2", "text_encoder_4": "hidream-i1-full/text_encoder_4",
               "vae": "flux.1-dev/vae"}),
)
PRESETS = (
    Workload("hidream-i1-full-1024", 1, 1024, 1024, 50, MAX_SEQUENCE_LENGTH, guidance_scale=5.0,
             description="HiDreamImagePipeline docstring (HiDream-I1-Full): 1024x1024, 50 steps, CFG 5.0 (prompt + "
                         "negative batched), every text encoder at 128 tokens (max_sequence_length)", family="hidream"),
)
STAGE_ADAPTERS: dict[str, StageAdapter] = {
    "LlamaForCausalLM": LLAMA_ALL_LAYERS,
}
