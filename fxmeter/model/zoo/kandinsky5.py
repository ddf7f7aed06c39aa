"""Kandinsky 5.0 T2V Lite (diffusers ``Kandinsky5Transformer3DModel``, 2B), as ``Kandinsky5T2VPipeline`` drives it.

Everything copied from diffusers 0.42.1 (``pipelines/kandinsky5/pipeline_kandinsky.py``, the model class):

* **Canvas.**  ``__call__`` defaults: 768 x 512, 121 frames (``num_frames`` rounded to ``4k + 1``), 50 steps,
  ``guidance_scale`` 5.0, ``max_sequence_length`` 512; height and width multiples of 16 (``check_inputs``).  The
  VAE (``AutoencoderKLHunyuanVideo``) compresses time by 4 and space by 8; the transformer patches
  ``(1, 2, 2)``: 31 x 32 x 48 = 47,616 video tokens at the default.  The latent is channels-last, ``(B, T, H, W,
  C)``; the Lite checkpoints have ``visual_cond`` set, so ``prepare_latents`` appends zeros and a zero mask:
  ``2 * 16 + 1`` = 33 input channels.
* **Text.**  ``_encode_prompt_qwen``: Qwen2.5-VL-7B (``Qwen2_5_VLForConditionalGeneration``) on the
  chat-templated prompt, tokenized with ``padding=True`` (one prompt: no padding) and truncated to
  ``prompt_template_encode_start_idx + max_sequence_length`` = 128 + 512, called with ``input_ids`` alone (no
  attention mask) and ``output_hidden_states=True``; ``hidden_states[-1][:, 128:]`` (the template's 128 system
  tokens dropped).  The workload's ``text_len`` is what the transformer sees (the prompt's tokens and the
  template's closing ``<|im_end|>``); the encoder runs ``text_len + 128`` tokens.  Its ``lm_head`` logits over
  every position run and are counted (the full ``...ForConditionalGeneration`` forward, as for Qwen-Image: the
  stage adapter is Qwen-Image's, without the mask).  ``_encode_prompt_clip``: CLIP-L
  (``CLIPTextModel``) at 77 tokens (``padding="max_length"``) with the tokenizer's attention mask,
  ``pooler_output``.
* **Guidance.**  ``guidance_scale > 1``: the negative prompt (the pipeline's default one when none is given) is
  encoded by both encoders and the transformer runs twice per step, two separate batch-``B`` forwards (cond, then
  uncond; not batched).  Both are costed at ``text_len``; the pipeline encodes the negative prompt at its own
  length, which the workload cannot express (as Qwen-Image).
* **Transformer inputs.**  ``hidden_states``, ``encoder_hidden_states``, ``pooled_projections`` and ``timestep``
  (``t.repeat(B)``) in the transformer's dtype; ``visual_rope_pos`` three ``arange``s (latent frames, H/16,
  W/16), ``text_rope_pos = arange(text_len)``; ``scale_factor`` (1, 2, 2) when both sides are within
  [480, 854] (the default), else (1, 3.16, 3.16): it divides the RoPE angles, so it changes values, never an op
  or a shape; ``sparse_params`` None (see below).  The capture builds the class with a ``forward`` that takes
  the three ``visual_rope_pos`` tensors as arguments (``export`` keeps a list argument's shapes static) and
  calls the class's ``forward`` with them as the list (:func:`t2v_class`; the same class name, modules and
  ops).
* **Attention.**  The bundled checkpoint is **Lite sft 5s**: its ``attention.type`` is ``flash`` (full
  attention), ``attention_type`` ``"regular"`` in diffusers, so ``get_sparse_params`` returns None and every
  visual block attends densely over all video tokens.  The 10s checkpoints set ``attention_type = "nabla"``
  (NABLA: a block-sparse ``flex_attention`` mask chosen from the data per step, ``P`` 0.9 of the attention mass
  plus a sliding-tile mask); its cost depends on the attention map's values, which a shape-only trace cannot
  know: a ``nabla`` config is refused.
* **VAE.**  ``vae.decode(latents / scaling_factor)`` of the whole latent video (``AutoencoderKLHunyuanVideo``,
  its default framewise decoding; tiling off), in the pipeline dtype (the docstring loads everything in
  bfloat16).

Preset ``kandinsky5-512``: the ``__call__`` defaults above, with ``text_len`` 512 (``max_sequence_length``:
the most the transformer sees; the prompt's real length is shorter, ``--text-len``).

Configs: the transformer is ``model.dit_params`` of ``configs/config_5s_sft.yaml`` in ai-forever/Kandinsky-5
(the diffusers-format file is on the hub, not in the store); the text encoder is Qwen-Image's bundled
Qwen2.5-VL-7B-Instruct, CLIP-L and the VAE are HunyuanVideo's bundled ones (the Kandinsky pipeline loads the
same ``clip-vit-large-patch14`` text tower and HunyuanVideo's VAE, per its docstring).  Each file's ``_source``
says where its values come from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fxmeter.errors import WorkloadError
from fxmeter.model.adapters._common import ANY, ATTN, MATMUL, NORM, Rules, video_frames
from fxmeter.model.adapters.base import Adapter, Geometry, SymbolAxis
from fxmeter.model.adapters.plans import Plans, cfg_runs, decode, text
from fxmeter.model.adapters.stage import meta_tensor
from fxmeter.model.adapters.text_encoders import CLIP_TOKENS, ClipText
from fxmeter.model.adapters.vaes import VAE_DECODE
from fxmeter.model.pipeline import ModelSpec
from fxmeter.model.workload import Workload
from fxmeter.model.zoo.qwen_image import QwenVLPrompt

if TYPE_CHECKING:
    import torch

VAE_T, VAE_S = 4, 8  # AutoencoderKLHunyuanVideo temporal / spatial compression
DROP_IDX = 128  # Kandinsky5T2VPipeline.prompt_template_encode_start_idx
MAX_SEQUENCE_LENGTH = 512  # __call__ default
MAX_TEXT = 1024  # check_inputs: max_sequence_length must be below 1024 (and Kandinsky5RoPE1D's max_pos)
SCALE_FACTOR = (1.0, 2.0, 2.0)  # Kandinsky5T2VPipeline._get_scale_factor for sides within [480, 854]

_V = r"^visual_transformer_blocks\.\d+"
_T = r"^text_transformer_blocks\.\d+"
KANDINSKY5_CATEGORIES: Rules = (
    (rf"{_V}\.self_attention(\.|$)", ATTN, "self_attention_core"),
    (rf"{_V}\.self_attention(\.|$)", MATMUL, "self_attention_proj"),
    (rf"{_V}\.cross_attention(\.|$)", ATTN, "cross_attention_core"),
    (rf"{_V}\.cross_attention(\.|$)", MATMUL, "cross_attention_proj"),
    (rf"{_T}\.self_attention(\.|$)", ATTN, "text_attention_core"),
    (rf"{_T}\.self_attention(\.|$)", MATMUL, "text_attention_proj"),
    (r".", NORM, "norms"),
    (r"^$", NORM, "norms"),
    (rf"({_V}|{_T})\.self_attention$", ANY, "rope"),  # the rotary products, the casts around them
    (rf"{_V}\.cross_attention$", ANY, "cross_attention_core"),
    (rf"({_V}|{_T})\.feed_forward(\.|$)", ANY, "ffn"),
    (rf"({_V}|{_T})(\.|$)", ANY, "modulation"),  # visual_/text_modulation, scale-shift, gates, residuals
    (r"^(time_embeddings|text_embeddings|pooled_text_embeddings|visual_embeddings|text_rope_embeddings|"
     r"visual_rope_embeddings)(\.|$)", ANY, "embeddings"),
    (r"^out_layer(\.|$)", ANY, "head"),
    (r"^$", ANY, "head"),
)

_B = r"^(visual|text)_transformer_blocks\.\d+"
KANDINSKY5_TP_ROLES: tuple[tuple[str, str], ...] = (
    (rf"{_B}\.(self|cross)_attention\.(to_query|to_key|to_value)$", "column"),
    (rf"{_B}\.(self|cross)_attention\.out_layer$", "row"),
    (rf"{_B}\.(self|cross)_attention\.(query|key)_norm$", "sharded"),
    (rf"{_B}\.(self|cross)_attention$", "sharded"),
    (rf"{_B}\.feed_forward\.in_layer$", "column"),
    (rf"{_B}\.feed_forward\.activation$", "sharded"),
    (rf"{_B}\.feed_forward\.out_layer$", "row"),
)

_T2V_CLASS: Any = None


def t2v_class() -> Any:
    """``Kandinsky5Transformer3DModel`` whose ``forward`` takes ``visual_rope_pos`` as three tensors (built once).

    The class's ``forward`` takes them as a list, whose shapes ``torch.export`` keeps static; this ``forward``
    passes them on as the list the pipeline builds, with the pipeline's ``scale_factor`` and no sparse
    attention, and returns the class's ``sample``."""
    global _T2V_CLASS
    if _T2V_CLASS is None:
        from diffusers.models.transformers.transformer_kandinsky import Kandinsky5Transformer3DModel

        def forward(self: Any, hidden_states: Any, encoder_hidden_states: Any, timestep: Any,
                    pooled_projections: Any, visual_rope_t: Any, visual_rope_h: Any, visual_rope_w: Any,
                    text_rope_pos: Any, return_dict: bool = False) -> Any:
            return Kandinsky5Transformer3DModel.forward(
                self, hidden_states=hidden_states, encoder_hidden_states=encoder_hidden_states, timestep=timestep,
                pooled_projections=pooled_projections, visual_rope_pos=[visual_rope_t, visual_rope_h, visual_rope_w],
                text_rope_pos=text_rope_pos, scale_factor=SCALE_FACTOR, sparse_params=None, return_dict=return_dict)

        _T2V_CLASS = type("Kandinsky5Transformer3DModel", (Kandinsky5Transformer3DModel,),
                          {"forward": forward, "__module__": __name__,
                           "__doc__": "Kandinsky5Transformer3DModel, visual_rope_pos as three tensor arguments"})
    return _T2V_CLASS


@dataclass
class Kandinsky5Adapter(Adapter):
    """``Kandinsky5Transformer3DModel`` as ``Kandinsky5T2VPipeline`` calls it (see the module docstring)."""

    name: str = "kandinsky5"
    diffusers_class: str = "Kandinsky5Transformer3DModel"
    # blocks of one list are identical (no index-dependent choice in __init__)
    repeated: dict[str, str] = field(default_factory=lambda: {"visual_transformer_blocks": "num_visual_blocks",
                                                              "text_transformer_blocks": "num_text_blocks"})
    symbols: tuple[str, ...] = ("batch", "latent_frames", "patches_h", "patches_w", "text_len")
    required_keys: tuple[str, ...] = ("in_visual_dim", "out_visual_dim", "model_dim", "ff_dim", "num_text_blocks",
                                      "num_visual_blocks", "axes_dims", "patch_size", "in_text_dim", "in_text_dim2")
    category_rules: Rules = KANDINSKY5_CATEGORIES
    default_slug: str = "kandinsky5"
    family: str = "kandinsky5"
    default_workload: str | None = "kandinsky5-512"
    offload_seq: tuple[str, ...] = ("text_encoder", "text_encoder_2", "transformer", "vae")  # model_cpu_offload_seq
    pipelines: tuple[str, ...] = ("Kandinsky5T2VPipeline",)
    positive_keys: tuple[str, ...] = ("in_visual_dim", "out_visual_dim", "time_dim", "model_dim", "ff_dim",
                                      "num_text_blocks", "num_visual_blocks", "axes_dims", "patch_size", "in_text_dim",
                                      "in_text_dim2")
    sequence_symbols: tuple[str, ...] = ("latent_frames", "patches_h", "patches_w")
    tp_roles: tuple[tuple[str, str], ...] = KANDINSKY5_TP_ROLES

    @property
    def model_class(self) -> Any:
        """The class capture and verify's reference build (:func:`t2v_class`)."""
        return t2v_class()

    def check_config(self, config: dict[str, Any]) -> list[str]:
        bad = super().check_config(config)
        if config.get("attention_type", "regular") != "regular":
            bad.append(f"attention_type = {config.get('attention_type')!r}: NABLA sparse attention (the 10s "
                       "checkpoints) picks its blocks from the attention map's values at run time; not modeled "
                       "(the 5s checkpoints' 'regular' is)")
        p = config.get("patch_size")
        if isinstance(p, list) and len(p) == 3 and p[0] != 1:
            bad.append(f"patch_size = {p!r}: Kandinsky5T2VPipeline.get_sparse_params asserts a temporal patch of 1")
        if config.get("visual_cond") is not True:
            bad.append("visual_cond is not true: the Lite T2V checkpoints set it (33 input channels); not modeled")
        return bad

    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        p = [int(x) for x in config["patch_size"]]
        frames, notes = video_frames(wl.frames, VAE_T, "Kandinsky5T2VPipeline")
        if wl.height % 16 or wl.width % 16:
            raise WorkloadError(f"height and width must be multiples of 16 (Kandinsky5T2VPipeline.check_inputs); "
                                f"got {wl.height}x{wl.width}")
        if not 1 <= wl.text_len < MAX_TEXT:
            raise WorkloadError(f"text_len must be 1..{MAX_TEXT - 1} (check_inputs refuses max_sequence_length >= "
                                f"{MAX_TEXT}; the text RoPE table has {MAX_TEXT} positions); got {wl.text_len}")
        if wl.text_len > MAX_SEQUENCE_LENGTH:
            notes.append(f"text_len {wl.text_len} > the pipeline's default max_sequence_length {MAX_SEQUENCE_LENGTH} "
                         "(costed as asked: max_sequence_length raised)")
        lf, lh, lw = (frames - 1) // VAE_T + 1, wl.height // VAE_S, wl.width // VAE_S
        if lh % p[1] or lw % p[2]:
            raise WorkloadError(f"latent {lh}x{lw} not divisible by the patch {p[1]}x{p[2]}")
        ph, pw = lh // p[1], lw // p[2]
        if not (480 <= wl.height <= 854 and 480 <= wl.width <= 854):
            notes.append("RoPE scale_factor (1, 3.16, 3.16) at this size (traced with (1, 2, 2)): it divides the "
                         "RoPE angles, the same ops either way")
        dims = {"batch": wl.batch, "latent_frames": lf, "patches_h": ph, "patches_w": pw, "text_len": wl.text_len}
        c = 2 * int(config["in_visual_dim"]) + 1
        return Geometry(dims, (wl.batch, lf, lh, lw, c), lf * ph * pw, frames, tuple(notes))

    def model_dims(self, config: dict[str, Any], geometry: Geometry) -> dict[str, int | None] | None:
        """``model_dim / sum(axes_dims)`` heads of ``sum(axes_dims)``, FFN ``ff_dim``, ``num_visual_blocks``
        visual blocks over the video tokens (cross-attending to the text)."""
        head_dim = sum(int(x) for x in config["axes_dims"])
        hidden = int(config["model_dim"])
        return {"heads": hidden // head_dim, "head_dim": head_dim, "hidden": hidden, "ffn": int(config["ff_dim"]),
                "layers": int(config["num_visual_blocks"]), "text_len": geometry.dims["text_len"],
                "tokens": geometry.tokens}

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        b, lf, ph, pw, t = (dims[s] for s in ("batch", "latent_frames", "patches_h", "patches_w", "text_len"))
        p = [int(x) for x in config["patch_size"]]
        c = 2 * int(config["in_visual_dim"]) + 1  # cat([latents, zeros, zero mask], -1): visual_cond
        return {
            "hidden_states": meta_tensor(b, lf, ph * p[1], pw * p[2], c, dtype=dtype),
            "encoder_hidden_states": meta_tensor(b, t, int(config["in_text_dim"]), dtype=dtype),
            "timestep": meta_tensor(b, dtype=dtype),  # t.unsqueeze(0).repeat(B).to(dtype)
            "pooled_projections": meta_tensor(b, int(config["in_text_dim2"]), dtype=dtype),
            # visual_rope_pos: arange(latent frames), arange(H / 8 / 2), arange(W / 8 / 2) (int64)
            "visual_rope_t": meta_tensor(lf, dtype=torch.long),
            "visual_rope_h": meta_tensor(ph, dtype=torch.long),
            "visual_rope_w": meta_tensor(pw, dtype=torch.long),
            "text_rope_pos": meta_tensor(t, dtype=torch.long),  # arange(cu_seqlens.diff().max())
            "return_dict": False,
        }

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        p = [int(x) for x in config["patch_size"]]
        return {
            "hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("latent_frames"),
                              2: SymbolAxis("patches_h", p[1]), 3: SymbolAxis("patches_w", p[2])},
            "encoder_hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("text_len")},
            "timestep": {0: SymbolAxis("batch")},
            "pooled_projections": {0: SymbolAxis("batch")},
            "visual_rope_t": {0: SymbolAxis("latent_frames")},
            "visual_rope_h": {0: SymbolAxis("patches_h")},
            "visual_rope_w": {0: SymbolAxis("patches_w")},
            "text_rope_pos": {0: SymbolAxis("text_len")},
        }

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 1024), "latent_frames": (2, 4096), "patches_h": (2, 4096), "patches_w": (2, 4096),
                "text_len": (2, MAX_TEXT - 1)}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 2, "latent_frames": 3, "patches_h": 4, "patches_w": 5, "text_len": 7}

    def pipeline_stages(self, config: dict[str, Any], wl: Workload, geometry: Geometry) -> Plans:
        """Qwen2.5-VL (template + text_len tokens) and CLIP-L pooled (prompt, and the negative prompt with CFG);
        ``AutoencoderKLHunyuanVideo`` decode of the whole latent video."""
        d = geometry.dims
        b, t = d["batch"], d["text_len"]
        n = t + DROP_IDX
        runs = cfg_runs(wl)
        before = (
            text("text_encoder", QWEN25_VL_K5, f"Qwen2.5-VL-7B, {n} tokens (template {DROP_IDX} dropped + {t})", runs,
                 {"batch": b, "seq_len": n},
                 notes=("text_encoder: Qwen2_5_VLForConditionalGeneration(input_ids, output_hidden_states=True) "
                        f"without an attention mask, hidden_states[-1][:, {DROP_IDX}:] (its lm_head logits over every "
                        "token are computed and counted)",)),
            text("text_encoder_2", CLIP_POOLED_MASKED, f"CLIP-L pooled, {CLIP_TOKENS} tokens", runs, {"batch": b},
                 notes=("text_encoder_2: CLIPTextModel(input_ids, attention_mask).pooler_output, padded to 77",)),
        )
        _, lf, lh, lw, _ = geometry.latent_shape
        after = (decode(VAE_DECODE, f"AutoencoderKLHunyuanVideo, {lf} latent frames, framewise as by default",
                        {"batch": b, "latent_frames": lf, "latent_h": lh, "latent_w": lw},
                        notes=("vae: the pipeline dtype (the docstring loads the pipeline in bfloat16); default "
                               "framewise decoding, tiling off",)),)
        return before, after


# -- the pipeline's other stages --------------------------------------------------------------------


def _qwen_no_mask_wrapper(model: torch.nn.Module, drop: int) -> torch.nn.Module:
    import torch

    class QwenVLPromptNoMask(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.component: Any = model

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            # Kandinsky5T2VPipeline._encode_prompt_qwen: no attention mask, hidden_states[-1][:, drop:]
            out = self.component(input_ids=input_ids, return_dict=True, output_hidden_states=True)
            return out["hidden_states"][-1][:, drop:]

    return QwenVLPromptNoMask()


@dataclass
class QwenVLPromptNoMask(QwenVLPrompt):
    """Qwen-Image's Qwen-VL prompt call, without the attention mask (``Kandinsky5T2VPipeline._encode_prompt_qwen``
    passes ``input_ids`` alone)."""

    name: str = "qwen2.5-vl-prompt-nomask"

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return _qwen_no_mask_wrapper(model, self.drop)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        return {"input_ids": meta_tensor(dims["batch"], dims["seq_len"], dtype=torch.long)}

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        return {"input_ids": {0: SymbolAxis("batch"), 1: SymbolAxis("seq_len")}}


def _clip_masked_wrapper(model: torch.nn.Module) -> torch.nn.Module:
    import torch

    class ClipMaskedCall(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.component: Any = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            # Kandinsky5T2VPipeline._encode_prompt_clip: text_encoder_2(**tokenizer_2(...))["pooler_output"]
            return self.component(input_ids=input_ids, attention_mask=attention_mask)["pooler_output"]

    return ClipMaskedCall()


@dataclass
class ClipPooledMasked(ClipText):
    """CLIP text tower at 77 tokens with the tokenizer's attention mask, ``pooler_output``."""

    name: str = "clip-pooled-masked"
    # eager FlopCounterMode on meta cannot run transformers' padding-mask check (.item() on meta): verify counts the graph
    reference_on_graph: bool = True

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return _clip_masked_wrapper(model)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        b = dims["batch"]
        return {"input_ids": meta_tensor(b, CLIP_TOKENS, dtype=torch.long),
                "attention_mask": meta_tensor(b, CLIP_TOKENS, dtype=torch.long)}

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        return {"input_ids": {0: SymbolAxis("batch")}, "attention_mask": {0: SymbolAxis("batch")}}


QWEN25_VL_K5 = QwenVLPromptNoMask(drop=DROP_IDX)
CLIP_POOLED_MASKED = ClipPooledMasked()

ADAPTERS = (Kandinsky5Adapter(),)
MODELS = (
    ModelSpec("kandinsky5-t2v-lite", "kandinsky5-t2v-lite/transformer/config.json", "kandinsky5", "kandinsky5-512",
              "https://github.com/ai-forever/Kandinsky-5/blob/8ad75bc185e5d43004e1468789a11fc6450cdb2b/configs/"
              "config_5s_sft.yaml",
              "Kandinsky 5.0 T2V Lite sft 5s, 2B (full attention; CFG: 2 passes/step)",
              {"text_encoder": "qwen-image/text_encoder", "text_encoder_2": "hunyuanvideo/text_encoder_2",
               "vae": "hunyuanvideo/vae"}),
)
PRESETS = (
    Workload("kandinsky5-512", 121, 512, 768, 50, MAX_SEQUENCE_LENGTH, guidance_scale=5.0, family="kandinsky5",
             description="Kandinsky5T2VPipeline __call__ defaults: 768x512, 121 frames, 50 steps, CFG 5.0 (2 passes), "
                         "text 512 (max_sequence_length: the most the transformer sees)"),
)
