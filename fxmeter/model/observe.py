"""Observe the real diffusers pipeline on ``meta``: which component it calls, how often, with what.

Why one long module: building the pipeline on meta, the narrow patches that let it run there
(tokenizers, scheduler, forwards) and the recorder they feed are one mechanism; the patches are
only correct together with the recorder's bookkeeping.

The hand adapters say what a pipeline runs (``Adapter.stages``, ``pipeline_stages``); this module
checks it by running the pipeline itself.  :func:`observe` builds the real pipeline class
(``model_index.json``'s ``_class_name``, or the class the model's adapter variant runs,
:data:`fxmeter.model.folder.PIPELINES`) with every component the real class on ``meta`` from the bundled (or the
folder's) configs, and calls it as a user would: a prompt (and a negative prompt with
classifier-free guidance), the workload's height, width, frames, steps, guidance scale and
``max_sequence_length`` (SanaVideoPipeline names its frame count ``frames``), a conditioning image for
image-to-video pipelines.  Every call the
pipeline makes on a component is recorded: component, method (``forward``, ``encode``,
``decode``), each tensor input's name, shape and dtype, the denoising step it falls in and the
timestep it was given.

What is patched, and why (nothing else is; the pipeline's own code runs unchanged):

* **Tokenizers** are :class:`ShapeTokenizer`: the pipeline never reads token *values* for shapes,
  only the padded ``input_ids`` / ``attention_mask`` it asks for (``padding="max_length"`` at its
  own ``max_length``), so a tokenizer that returns those shapes shows the text encoders exactly the
  shapes real tokenizers do.  The prompt fills the workload's ``text_len`` tokens (after the chat
  template's prefix the pipeline drops, its ``prompt_template_encode_start_idx``): pipelines that
  hand the transformer only the prompt's tokens (Z-Image, Qwen-Image, Kandinsky 5) see the
  ``text_len`` the plans cost.  Its ``model_max_length`` is the paired encoder's (CLIP 77, T5 512,
  else unbounded: HiDream reads it).  No tokenizer files exist offline; this is the one stand-in.
* **Known values** (:func:`_known_values_mode`): pipelines read mask values (``hidden[mask]``,
  ``mask.sum(1).tolist()``, ``cu_seqlens.max().item()``, ``torch.equal``), impossible on meta.  A
  small meta tensor whose values are fixed (moved from the CPU: the tokenizer's output; made by a
  factory: ``arange``, ``ones``) keeps a CPU twin, ops on such tensors keep theirs, and value reads
  are answered from it: what the pipeline computes from those masks on a device.  A CPU tensor that
  meets meta ones (the scheduler's sigmas) joins them on meta.  Activations, weights and latents
  have no values; reading theirs still fails.
* **The denoiser's forward** (``transformer``, ``transformer_2``) records its inputs and returns
  the output of the *real* forward on meta, run once per distinct input signature and reused
  (a 50-step generation makes one or two real meta forwards, not 100).
* **Text and image encoders, VAE encode/decode** run for real on meta.  transformers' padding
  mask check reads tensor values (``.item()``), impossible on meta: when a text encoder's call
  fails on meta it is re-run without its ``attention_mask`` (shapes do not depend on it); the
  recorded call keeps the mask.
* **Components the bundled configs lack** (:data:`PIPELINE_EXTRAS`, each cited): Allegro's scheduler
  (its reference script's ``EulerAncestralDiscreteScheduler()``; the pipeline annotates an enum),
  HunyuanVideo-1.5's guider (the workload's ``guidance_scale``) and its ByT5 ``text_encoder_2``, which
  runs only on quoted glyph text: :class:`_Unused` (its ``config.d_model`` and ``dtype``; calling it
  is an error).  Cosmos's guardrail (``cosmos_guardrail``, not installed, no plan stage) is
  :class:`_PassGuardrail`.  The VAEs of :data:`TILED_VAES` decode tiled as the plan (Allegro's only
  decodes tiled).  The denoiser is diffusers' own class, never an adapter's export class.
* **The scheduler** runs on CPU: ``set_timesteps`` puts its timesteps on the CPU whatever device
  the pipeline asks for (so ``for t in timesteps``, ``t >= boundary_timestep`` and
  ``t.expand(batch)`` are real numbers), and ``step`` / ``scale_model_input`` run the real
  scheduler code on 1-element CPU tensors (one per meta argument, same rank and dtype), then hand
  back meta tensors of the sample's shape: the scheduler's state (step index, multistep history)
  advances exactly as in a real generation.  The patch is a same-named subclass, so a copy the
  pipeline makes (LTX-2's ``copy.deepcopy(self.scheduler)`` for audio) keeps it and its own state.
* **The execution device** is meta (every component is on meta): latents, masks and embeddings are
  meta tensors; ``output_type="pt"`` keeps the decoded result on meta.
* **The resize back after resolution binning** (``image_processor`` / ``video_processor``
  ``.resize_and_crop_tensor``) runs unchanged and is recorded as stage ``resize`` when it changes the size.
* The progress bar is disabled.

What cannot be seen this way: the dtype a user loads each component in (taken from the model's plan:
``StagePlan.dtype``, else the workload dtype), tiling/slicing the user turns on, and anything the
pipeline does with token values (prompt length beyond :data:`PROMPT_TOKENS`).

What the observation found or cannot see, per bundled model (``tests/test_observe.py`` pins each one;
every other stage, run count, step, batch, input name, shape and dtype equals the hand plan at the
preset and at a second workload):

* every model: tokenizers are :class:`ShapeTokenizer` (the prompt's token count in the mask is a
  placeholder); a component's dtype is the plan's (what the pipeline's docstring loads); VAE
  tiling/slicing is off; the scheduler is the model's ``scheduler_config.json`` where one is bundled
  (Wan2.2-A14B's UniPC), else the class the pipeline's ``__init__`` names with its defaults (timestep
  *values* may differ from a checkpoint's; counts and shapes do not).
* Wan2.2-T2V/I2V-A14B: UniPC's timesteps are int64, so the transformer gets an int64 ``timestep``; the
  adapter builds float32 (found by the observation; the expert split and the timesteps agree).
* Wan2.1 T2V/I2V, Wan2.2-TI2V: no scheduler config is bundled; their checkpoints ship UniPC too (int64
  timesteps), which the class default (FlowMatchEuler, float32) does not show.
* Wan I2V: the pipeline takes any ``max_sequence_length``; fxmeter pins 512 text tokens (the attention
  processor hard-codes them), so the text_len knob is not observed there.  Its ``image_processor`` is
  ``CLIPImageProcessor()``'s defaults (224 px), as the checkpoint's.
* HunyuanVideo: the pipeline passes ``encoder_attention_mask`` in the transformer dtype (the adapter:
  int64), and step 0's ``timestep`` is float32 (the latents are float32 until the first scheduler step)
  while steps 1.. are bf16 (the adapter: bf16 for all).
* SD3.5, CogVideoX, LTX-Video: classifier-free guidance is one forward of twice the batch
  (``torch.cat([latents] * 2)``), i.e. fxmeter's ``--batched-cfg``; the default plan's two passes cost the
  same FLOPs.
* Zoo models (``tests/test_observe.py::test_zoo_observation_equals_the_hand_plan``, at the preset): every
  one agrees but these.  A plan that splits one component's calls into stages (CogView4's
  ``text_encoder_negative``, Lumina's ``transformer_uncond``, LTX-2's ``transformer_stg`` /
  ``transformer_modality``) is matched call by call (:func:`_compare_split`); where an export class names
  inputs otherwise, :data:`PIPELINE_INPUT_NAMES` maps them (Kandinsky 5, LTX-2's connectors and vocoder).
  SkyReels-V2: int64 UniPC timesteps, as Wan2.2.  Sana / SANA-Video: the prompt's encoder call is
  ``len(tokenizer.encode(instruction)) + max_sequence_length - 2`` tokens, and the instruction's count needs
  Gemma's vocabulary (the plan's 208 / 221); the shape tokenizer counts :data:`PROMPT_TOKENS`.  Refused,
  one error line each: MiniMax-H3 (a modular pipeline), Qwen-Image-2.1 (no ``Qwen3VLProcessor`` bundled),
  HiDream-I1 (its MoE router's ``bincount`` of routing values inside the forward has no meta kernel).
  At a size that is not a bin PixArt-Sigma, Sana and SANA-Video run the aspect-ratio bin of the requested size
  (``use_resolution_binning``) and resize the decoded output back, as their plans do
  (:mod:`fxmeter.model.adapters.binning`; the resize is recorded as stage ``resize``).  Z-Image and ChronoEdit
  pad the prompt to ``max_sequence_length`` 512 whatever its length: the observation passes the length the plan
  costs (:data:`MAX_SEQUENCE_LENGTHS`), the prompt filling ``text_len`` tokens.

:func:`infer_axes` runs the pipeline at the base workload and at one variant per workload knob
(frames, height, width, text_len, batch) and says which knobs each input axis follows.
:func:`compare_with_plan` checks an observation against the hand adapter's plan (components,
runs, steps, batch factor, input shapes); ``fxmeter observe`` prints an observation.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from fxmeter.errors import ConfigError, TraceError
from fxmeter.model.workload import Workload

if TYPE_CHECKING:
    import torch

    from fxmeter.model.registry import ResolvedModel

#: the denoising components (their forward is recorded and answered from a cached real meta forward)
DENOISERS = ("transformer", "transformer_2")
#: prompt tokens the stand-in tokenizer marks in the attention mask (the rest is padding)
PROMPT_TOKENS = 8
#: workload knobs :func:`infer_axes` varies, and how (a function of the base value)
KNOBS = ("frames", "height", "width", "text_len", "batch")


_HV15_SCRIPT = ("https://github.com/huggingface/diffusers/blob/38c42b4de1b98bee31cb35d98aa0bf3398a960cb/scripts/"
                "convert_hunyuan_video1_5_to_diffusers.py")
#: what a pipeline class needs that the bundled configs do not hold (each cited), merged under a model's
#: ``_pipeline``: a scheduler its ``__init__`` names no class of, a guider, a component it takes but does
#: not run for a plain prompt (``_stand_in``: :class:`_Unused`)
PIPELINE_EXTRAS: dict[str, dict[str, Any]] = {
    "AllegroPipeline": {"scheduler": {
        "_class_name": "EulerAncestralDiscreteScheduler",
        "_source": "https://github.com/rhymes-ai/Allegro single_inference.py: scheduler = EulerAncestralDiscreteScheduler() "
                   "(the class defaults)"}},
    "HunyuanVideo15Pipeline": {
        "guider": {"_class_name": "ClassifierFreeGuidance", "guidance_scale": 6.0,
                   "_source": f"{_HV15_SCRIPT} (the 480p_t2v guider; the workload's guidance_scale replaces 6.0)"},
        "text_encoder_2": {"_stand_in": "ByT5 runs only on quoted glyph text (_get_byt5_prompt_embeds); for a plain "
                                        "prompt the pipeline reads config.d_model and dtype for zero embeddings",
                           "d_model": 1472,
                           "_source": f"{_HV15_SCRIPT} (ByT5-small; d_model = the transformer's text_embed_2_dim)"}},
}
#: the denoiser inputs an adapter's export class takes under other names than the pipeline passes them
#: (Kandinsky 5's ``t2v_class`` takes ``visual_rope_pos`` as three tensors): compared under the pipeline's
PIPELINE_INPUT_NAMES: dict[str, dict[str, str]] = {
    "kandinsky5": {"visual_rope_t": "visual_rope_pos[0]", "visual_rope_h": "visual_rope_pos[1]",
                   "visual_rope_w": "visual_rope_pos[2]"},
    # LTX2Pipeline: connectors(prompt_embeds, attention_mask) binds to LTX2TextConnectors.forward(
    # text_encoder_hidden_states, attention_mask); vocoder(mel) to LTX2Vocoder.forward(hidden_states)
    "ltx2-connectors": {"prompt_embeds": "text_encoder_hidden_states", "prompt_attention_mask": "attention_mask"},
    "ltx2-vocoder": {"mel": "hidden_states"},
}
#: VAE stage adapters whose plan decodes tiled, as the pipeline's docstring sets (``pipe.vae.enable_tiling()``;
#: ``AutoencoderKLAllegro`` decodes only tiled): observe turns tiling on for them
TILED_VAES = frozenset({"vae-decode-allegro"})


# -- records -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TensorSpec:
    """A tensor input: its shape and dtype (``bfloat16``...)."""

    shape: tuple[int, ...]
    dtype: str

    def __str__(self) -> str:
        return f"{self.dtype}[{'x'.join(str(s) for s in self.shape)}]"


@dataclass(frozen=True)
class Call:
    """One call the pipeline made on a component."""

    component: str
    method: str  # forward, encode, decode
    inputs: tuple[tuple[str, TensorSpec], ...]  # tensor arguments by parameter name, in call order
    step: int | None  # denoising step (None: outside the loop)
    timestep: float | None  # the scalar timestep the denoiser got (None: none, or one per token)

    @property
    def stage(self) -> str:
        """The stage name fxmeter's plans use: ``vae_encode`` for an encode, ``vae`` for a decode."""
        if self.method == "encode":
            return f"{self.component}_encode"
        return self.component

    def input(self, name: str) -> TensorSpec | None:
        return dict(self.inputs).get(name)

    @property
    def batch(self) -> int | None:
        """The leading dimension of its first tensor input."""
        if not self.inputs:
            return None
        name, spec = self.inputs[0]
        if name.endswith("[0]"):  # a list of per-sample tensors (Z-Image's x, cap_feats): its length
            return sum(1 for n, _ in self.inputs if n.startswith(name[:-3] + "["))
        return spec.shape[0] if spec.shape else None


@dataclass(frozen=True)
class ObservedStage:
    """The calls of one stage, summarised: how many, in which steps, at which batch and shapes."""

    name: str
    component: str
    method: str
    runs: int
    steps: tuple[int, ...]  # the denoising steps it ran in (empty outside the loop)
    calls_per_step: int  # runs / steps (0 outside the loop)
    batch: int | None  # the batch of its first call
    inputs: tuple[tuple[str, TensorSpec], ...]  # the tensor inputs of most of its calls
    signatures: int  # distinct input signatures over its calls
    timesteps: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "component": self.component, "method": self.method, "runs": self.runs,
                "steps": len(self.steps), "step_range": [min(self.steps), max(self.steps)] if self.steps else None,
                "calls_per_step": self.calls_per_step, "batch": self.batch, "signatures": self.signatures,
                "inputs": {n: {"shape": list(t.shape), "dtype": t.dtype} for n, t in self.inputs},
                "timesteps": list(self.timesteps)}


@dataclass(frozen=True)
class Observation:
    """What one generation of ``workload`` called, in order."""

    model: str
    pipeline: str
    scheduler: str
    workload: Workload
    calls: tuple[Call, ...]
    patched: tuple[str, ...] = ()

    def stages(self) -> tuple[ObservedStage, ...]:
        """One :class:`ObservedStage` per stage name, in first-call order."""
        groups: dict[str, list[Call]] = {}
        for c in self.calls:
            groups.setdefault(c.stage, []).append(c)
        out = []
        for name, calls in groups.items():
            steps = tuple(sorted({c.step for c in calls if c.step is not None}))
            sigs = Counter(c.inputs for c in calls)
            last = {c.inputs: i for i, c in enumerate(calls)}
            # the most frequent, ties to the latest (the steady state: HunyuanVideo's step 0 differs)
            common = max(sigs, key=lambda k: (sigs[k], last[k]))
            first = next(c for c in calls if c.inputs == common)
            ts = tuple(dict.fromkeys(c.timestep for c in calls if c.timestep is not None))
            out.append(ObservedStage(name, calls[0].component, calls[0].method, len(calls), steps,
                                     len(calls) // len(steps) if steps else 0, first.batch, common,
                                     len(sigs), ts))
        return tuple(out)

    def expert_switch(self) -> tuple[int, float | None] | None:
        """(step, timestep) of the first ``transformer_2`` call (Wan2.2-A14B's low-noise expert), or None."""
        c = next((c for c in self.calls if c.component == "transformer_2"), None)
        return None if c is None or c.step is None else (c.step, c.timestep)

    def stage(self, name: str) -> ObservedStage | None:
        return next((s for s in self.stages() if s.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        switch = self.expert_switch()
        return {"model": self.model, "pipeline": self.pipeline, "scheduler": self.scheduler,
                "workload": self.workload.to_dict(), "stages": [s.to_dict() for s in self.stages()],
                "expert_switch": None if switch is None else {"step": switch[0], "timestep": switch[1]},
                "patched": list(self.patched)}


# -- stand-ins -----------------------------------------------------------------------------------------
class ShapeTokenizer:
    """A tokenizer that returns the shapes a real one returns (token values are placeholders).

    ``padding="max_length"`` gives ``(len(prompts), max_length)``; ``"longest"`` (the pipelines'
    truncation check) the prompt's :data:`PROMPT_TOKENS`.  The attention mask marks the prompt
    tokens; ``input_ids`` are 1 there and 0 (padding) after.
    """

    def __init__(self, model_max_length: int = 77) -> None:
        self.model_max_length = model_max_length
        #: tokens of the prompt (:func:`run` sets the workload's ``text_len``: the prompt fills it) and of the
        #: chat template's prefix the pipeline drops (its ``prompt_template_encode_start_idx``)
        self.prompt_tokens = PROMPT_TOKENS
        self.prefix_tokens = 0
        self.pad_token_id = 0
        self.eos_token_id = 1
        self.added_tokens_encoder: dict[str, int] = {}  # diffusers' textual-inversion prompt check reads it
        self.pad_token = "<pad>"  # LTX-2 sets pad_token = eos_token when it is None
        self.eos_token = "</s>"
        self.padding_side = "right"

    def __call__(self, text: str | list[str], padding: Any = False, max_length: int | None = None,
                 truncation: bool = False, return_tensors: str | None = None, **kw: Any) -> Any:
        import torch
        from transformers import BatchEncoding

        prompts = [text] if isinstance(text, str) else list(text)
        n = self.prompt_tokens + self.prefix_tokens
        n = n if max_length is None else min(n, max_length)
        length = max_length if padding == "max_length" and max_length else n
        if max_length and truncation:
            length = min(length, max_length)
        mask = torch.zeros(len(prompts), length, dtype=torch.long)
        mask[:, :n] = 1
        ids = mask.clone()
        data: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if kw.get("return_length"):
            data["length"] = mask.sum(dim=1)
        return BatchEncoding(data)

    def tokenize(self, text: str, **kw: Any) -> list[str]:
        return text.split()

    def encode(self, text: str, **kw: Any) -> list[int]:
        """:data:`PROMPT_TOKENS` placeholder ids: the real count needs the real vocabulary (Sana's
        instruction length is one; the observation reports the difference instead of guessing)."""
        return [1] * PROMPT_TOKENS

    def apply_chat_template(self, conversation: Any, tokenize: bool = True, **kw: Any) -> Any:
        """The conversation's text (``tokenize=False``: what Z-Image and FLUX.2-klein then tokenize with
        ``padding="max_length"``), or its tokens as :meth:`__call__` pads them (FLUX.2's batched call)."""
        batch = conversation if conversation and isinstance(conversation[0], (list, tuple)) else [conversation]

        def text(messages: Any) -> str:
            parts = []
            for m in messages:
                c = m.get("content", "") if isinstance(m, dict) else m
                if isinstance(c, list):  # multimodal content: the text items
                    c = " ".join(str(x.get("text", "")) for x in c if isinstance(x, dict))
                parts.append(str(c))
            return "\n".join(parts)

        texts = [text(m) for m in batch]
        if not tokenize:
            return texts if batch is conversation else texts[0]
        keep = {k: kw[k] for k in ("padding", "max_length", "truncation", "return_tensors") if k in kw}
        return self(texts, **keep)

    def batch_decode(self, ids: Any, **kw: Any) -> list[str]:
        return ["" for _ in range(len(ids))]

    def decode(self, ids: Any, **kw: Any) -> str:
        return ""


def _spec(t: torch.Tensor) -> TensorSpec:
    return TensorSpec(tuple(int(s) for s in t.shape), str(t.dtype).removeprefix("torch."))


def _tensors(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[str, TensorSpec], ...]:
    """The tensor arguments of a call, by parameter name (positional ones bound to ``fn``'s signature)."""
    import torch

    try:
        bound = inspect.signature(fn).bind_partial(*args, **kwargs).arguments
    except (TypeError, ValueError):
        bound = {**{f"arg{i}": a for i, a in enumerate(args)}, **kwargs}
    out: list[tuple[str, TensorSpec]] = []
    for name, v in bound.items():
        if isinstance(v, torch.Tensor):
            out.append((name, _spec(v)))
        elif isinstance(v, dict) and name in ("kwargs", "kw"):
            out += [(k, _spec(x)) for k, x in v.items() if isinstance(x, torch.Tensor)]
        elif isinstance(v, (list, tuple)) and v and all(isinstance(x, torch.Tensor) for x in v):
            out += [(f"{name}[{i}]", _spec(x)) for i, x in enumerate(v)]
    return tuple(out)


def _scalar_timestep(args: tuple[Any, ...], kwargs: dict[str, Any], fn: Any) -> float | None:
    import torch

    try:
        t = inspect.signature(fn).bind_partial(*args, **kwargs).arguments.get("timestep")
    except (TypeError, ValueError):
        t = kwargs.get("timestep")
    if isinstance(t, torch.Tensor) and t.device.type != "meta" and t.numel() >= 1 and bool((t == t.flatten()[0]).all()):
        return float(t.flatten()[0])
    return None


#: the largest tensor (elements) :class:`KnownValues` keeps CPU values for (masks, positions, lengths)
KNOWN_VALUES_MAX = 1 << 22
#: value reads: a known meta tensor answers them from its CPU values
_READS = frozenset({"item", "tolist", "__bool__", "__int__", "__float__", "__index__", "__len__",
                    "__format__", "__repr__", "numpy", "equal", "allclose", "is_nonzero"})


def _in_place(name: str) -> bool:
    """``add_``, ``__iand__``, ``__setitem__``: an op that writes its first argument."""
    return (name.endswith("_") and not name.endswith("__")) or (name.startswith("__i") and name != "__index__") \
        or name == "__setitem__"


def _known_values_mode() -> Any:
    """A ``TorchFunctionMode`` that keeps the CPU values of the small meta tensors whose values are known.

    A meta tensor has a shape and no values; the pipelines read values the shape-only tokenizer fixed
    (the attention mask: ``hidden_states[mask.bool()]``, ``mask.sum(1).tolist()``, ``cu_seqlens.max().item()``,
    ``torch.nonzero``) and that positions or lengths built from ``arange`` / ``ones`` on the execution
    device fix.  A tensor moved to meta from the CPU (the tokenizer's output), or made on meta by a
    factory (``arange``, ``ones``, ``full``, ``tensor``...), keeps its CPU twin; an op whose meta inputs
    all have twins runs on the twins and its meta result keeps that result as its twin.  Value reads
    (``item``, ``tolist``, ``bool``, a boolean-mask index) are answered from the twin: exactly what the
    pipeline computes from the tokenizer's mask on a real device.  Tensors with no known values (weights,
    activations, latents) stay meta-only; twins over :data:`KNOWN_VALUES_MAX` elements are dropped.
    """
    import torch
    from torch.overrides import TorchFunctionMode
    from torch.utils._pytree import tree_flatten, tree_map
    from torch.utils.weak import WeakIdKeyDictionary

    def is_meta(v: Any) -> bool:
        return isinstance(v, torch.Tensor) and v.device.type == "meta"

    def meta_device(v: Any) -> bool:
        return (isinstance(v, torch.device) and v.type == "meta") or (isinstance(v, str) and v == "meta")

    class KnownValues(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.twins: Any = WeakIdKeyDictionary()

        def twin(self, meta: Any, cpu: Any) -> Any:
            if isinstance(cpu, torch.Tensor) and cpu.numel() <= KNOWN_VALUES_MAX:
                self.twins[meta] = cpu
            return meta

        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            name = getattr(func, "__name__", "")
            flat, _ = tree_flatten((args, kwargs))
            metas = [v for v in flat if is_meta(v)]
            known = [v for v in metas if v in self.twins]
            if metas and len(known) == len(metas):
                if name not in _READS and not _in_place(name):
                    # the result's size first (on meta): values are kept for small tensors only, and computing a
                    # large one on the CPU (a sequence x sequence mask: HunyuanVideo-1.5) costs seconds per call
                    try:
                        probe = func(*args, **kwargs)
                    except Exception:
                        probe = None
                    if any(isinstance(o, torch.Tensor) and o.numel() > KNOWN_VALUES_MAX for o in tree_flatten(probe)[0]):
                        return probe
                cpu_args, cpu_kwargs = tree_map(lambda v: self.twins[v] if is_meta(v) else v, (args, kwargs))
                if name in ("to", "cuda", "new_empty", "new_zeros", "new_ones", "new_full", "new_tensor") \
                        or "device" in cpu_kwargs:
                    cpu_args, cpu_kwargs = tree_map(lambda v: "cpu" if meta_device(v) else v, (cpu_args, cpu_kwargs))
                try:
                    out = func(*cpu_args, **cpu_kwargs)
                except Exception:
                    return func(*args, **kwargs)
                if name in _READS:
                    return out
                if name == "cpu" or (name == "to" and not any(meta_device(v) for v in flat)
                                     and any(isinstance(v, (str, torch.device)) and str(v) == "cpu" for v in flat)):
                    return out.clone() if any(out is t for t in cpu_args + tuple(cpu_kwargs.values())) else out
                if isinstance(out, torch.Tensor) or (isinstance(out, (tuple, list)) and out
                                                     and all(isinstance(o, torch.Tensor) for o in out)):
                    ins = {id(self.twins[m]): m for m in known}

                    def back(o: Any) -> Any:
                        if not isinstance(o, torch.Tensor):
                            return o
                        if id(o) in ins:  # an in-place op returned its (twinned) input
                            return ins[id(o)]
                        return self.twin(o.to("meta"), o)

                    return tree_map(back, out)
                if out is None:  # in-place on the twins (__setitem__): the meta tensors keep their shapes
                    return func(*args, **kwargs) if name != "__setitem__" else None
                return func(*args, **kwargs)  # device, dtype, shape...: the meta tensor's own
            if known and name in ("__getitem__", "__setitem__"):  # an untwinned tensor indexed by a known mask
                idx = tree_map(lambda v: self.twins[v] if is_meta(v) and v in self.twins else v, args[1])
                return func(args[0], idx, *args[2:], **kwargs)
            try:
                out = func(*args, **kwargs)
            except RuntimeError as e:
                if not metas or "device" not in str(e):
                    raise
                # a CPU tensor (the scheduler's sigmas, kept on the CPU) meets meta ones: on a real device both
                # are there; it joins them on meta, its values known
                moved = tree_map(lambda v: self.twin(v.to("meta"), v) if isinstance(v, torch.Tensor)
                                 and v.device.type == "cpu" else v, (args, kwargs))
                return self.__torch_function__(func, types, moved[0], moved[1])
            if not metas and is_meta(out) and out.numel() <= KNOWN_VALUES_MAX:
                # made on meta from CPU values or from nothing: Tensor.to("meta"), arange/ones/full(device=meta)
                cpu_args, cpu_kwargs = tree_map(lambda v: "cpu" if meta_device(v) else v, (args, kwargs))
                try:
                    cpu = func(*cpu_args, **cpu_kwargs)
                except Exception:
                    return out
                if isinstance(cpu, torch.Tensor) and cpu.device.type == "cpu" and cpu.shape == out.shape:
                    self.twin(out, cpu.clone() if any(cpu is v for v in flat) else cpu)
            return out

    return KnownValues()


class _Recorder:
    """Holds the calls and the step counter; installs the patches on one pipeline."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.step: int | None = None  # set once the scheduler's timesteps are set (the loop has begun)
        self.cache: dict[tuple[Any, ...], Any] = {}
        self.patched: list[str] = []
        self.masked: list[str] = []  # text encoders whose meta call needed the mask dropped
        self.guardrail: Any = None  # Cosmos's _PassGuardrail

    def record(self, component: str, method: str, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ts = _scalar_timestep(args, kwargs, fn) if component in DENOISERS else None
        self.calls.append(Call(component, method, _tensors(fn, args, kwargs),
                               self.step if component in DENOISERS else None, ts))

    # -- components ------------------------------------------------------------------------------
    def denoiser(self, name: str, module: torch.nn.Module) -> None:
        real = module.forward

        def forward(*args: Any, **kwargs: Any) -> Any:
            import torch

            self.record(name, "forward", real, args, kwargs)
            key = (name, _tensors(real, args, kwargs),
                   tuple(sorted((k, repr(v)) for k, v in kwargs.items() if not isinstance(v, torch.Tensor))))
            if key not in self.cache:
                meta_args = tuple(a.to("meta") if isinstance(a, torch.Tensor) else a for a in args)
                meta_kwargs = {k: v.to("meta") if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
                try:
                    with torch.no_grad():
                        self.cache[key] = real(*meta_args, **meta_kwargs)
                except Exception as e:
                    raise TraceError(f"the {name} forward failed on meta with the pipeline's inputs: "
                                     f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
            return self.cache[key]

        module.forward = forward  # type: ignore[method-assign]
        self.patched.append(f"{name}.forward: recorded; output from the real forward on meta, once per input signature")

    def encoder(self, name: str, module: torch.nn.Module) -> None:
        real = module.forward

        def forward(*args: Any, **kwargs: Any) -> Any:
            self.record(name, "forward", real, args, kwargs)
            try:
                return real(*args, **kwargs)
            except Exception:
                try:
                    bound = inspect.signature(real).bind_partial(*args, **kwargs)
                except TypeError:
                    raise
                if bound.arguments.get("attention_mask") is None:
                    raise
                bound.arguments["attention_mask"] = None
                if name not in self.masked:
                    self.masked.append(name)
                return real(*bound.args, **bound.kwargs)

        module.forward = forward  # type: ignore[method-assign]

    def vae(self, name: str, module: torch.nn.Module) -> None:
        for method in ("encode", "decode"):
            real = getattr(module, method, None)
            if real is None:
                continue

            def call(*args: Any, _real: Any = real, _method: str = method, **kwargs: Any) -> Any:
                self.record(name, _method, _real, args, kwargs)
                return _real(*args, **kwargs)

            setattr(module, method, call)

    def resize(self, processor: Any) -> None:
        """Record ``processor.resize_and_crop_tensor`` (the resize back after resolution binning) as stage
        ``resize`` when it changes the size: a call at the size asked for returns its input, no op runs."""
        real = getattr(processor, "resize_and_crop_tensor", None)
        if real is None:
            return

        def call(samples: Any, new_width: int, new_height: int) -> Any:
            if tuple(samples.shape[-2:]) != (new_height, new_width):
                self.record("resize", "resize_and_crop_tensor", real, (samples, new_width, new_height), {})
            return real(samples, new_width, new_height)

        processor.resize_and_crop_tensor = call
        self.patched.append(f"{type(processor).__name__}.resize_and_crop_tensor: recorded as stage resize when it "
                            "resizes (use_resolution_binning)")

    # -- scheduler -------------------------------------------------------------------------------
    def scheduler(self, sched: Any) -> None:
        """Patch ``sched``'s class (a subclass of the same name): a copy the pipeline makes
        (``copy.deepcopy(self.scheduler)``: LTX-2's audio scheduler) keeps its own state and the patches."""
        import torch

        cls = type(sched)
        primary = sched
        rec = self

        def set_timesteps(self_: Any, *args: Any, **kwargs: Any) -> Any:
            if "device" in kwargs:
                kwargs["device"] = "cpu"
            else:
                try:
                    bound = inspect.signature(cls.set_timesteps).bind_partial(self_, *args, **kwargs)
                    if "device" in bound.arguments:
                        bound.arguments["device"] = "cpu"
                        args, kwargs = bound.args[1:], bound.kwargs
                except TypeError:
                    pass
            out = cls.set_timesteps(self_, *args, **kwargs)
            if self_ is primary:
                rec.step = 0
            return out

        def on_cpu(fn: Any, advance: bool) -> Any:
            @functools.wraps(fn)  # pipelines read the step's signature (eta, generator)
            def wrapped(self_: Any, *args: Any, **kwargs: Any) -> Any:
                shapes: dict[int, torch.Size] = {}

                def small(v: Any) -> Any:
                    if isinstance(v, torch.Tensor) and v.device.type == "meta":
                        shapes.setdefault(v.dim(), v.shape)
                        return torch.zeros((1,) * v.dim(), dtype=v.dtype)
                    return v

                out = fn(self_, *(small(a) for a in args), **{k: small(v) for k, v in kwargs.items()})

                def big(v: Any) -> Any:
                    if isinstance(v, torch.Tensor) and v.device.type == "cpu" and v.dim() in shapes \
                            and all(s == 1 for s in v.shape) and v.dim() > 0:
                        return torch.empty(shapes[v.dim()], dtype=v.dtype, device="meta")
                    return v

                if isinstance(out, tuple):
                    out = tuple(big(v) for v in out)
                elif hasattr(out, "__dataclass_fields__") or isinstance(out, dict):
                    for k in list(out.keys()) if isinstance(out, dict) else list(vars(out)):
                        v = out[k] if isinstance(out, dict) else getattr(out, k)
                        if isinstance(out, dict):
                            out[k] = big(v)
                        else:
                            setattr(out, k, big(v))
                else:
                    out = big(out)
                if advance and self_ is primary and rec.step is not None:
                    rec.step += 1
                return out

            return wrapped

        ns: dict[str, Any] = {"__module__": cls.__module__, "__qualname__": cls.__qualname__,
                              "set_timesteps": functools.wraps(cls.set_timesteps)(set_timesteps),
                              "step": on_cpu(cls.step, True)}
        if hasattr(cls, "scale_model_input"):
            ns["scale_model_input"] = on_cpu(cls.scale_model_input, False)
        sched.__class__ = type(cls.__name__, (cls,), ns)
        self.patched.append(f"scheduler {cls.__name__}: timesteps on CPU; step/scale_model_input run on "
                            "1-element CPU tensors and return meta tensors of the sample's shape")


# -- building ------------------------------------------------------------------------------------------
def pipeline_class_name(model: ResolvedModel) -> str:
    """model_index.json's ``_class_name`` (``_pipeline.class``), else the adapter's known pipeline
    (:func:`fxmeter.model.folder.pipelines_for`)."""
    p = model.config.get("_pipeline")
    if isinstance(p, dict) and isinstance(p.get("class"), str):
        return str(p["class"])
    from fxmeter.model.folder import pipelines_for

    names = pipelines_for(model.adapter)
    if not names:
        raise ConfigError(f"{model.id}: no known diffusers pipeline for {model.adapter.diffusers_class} (adapter "
                          f"{model.adapter.name}); a pipeline folder's model_index.json names it")
    name = names[0]
    return name


def pipeline_class(name: str) -> Any:
    import diffusers

    cls = getattr(diffusers, name, None)
    if cls is None or not isinstance(cls, type) or not issubclass(cls, diffusers.DiffusionPipeline):
        raise ConfigError(f"diffusers {diffusers.__version__} has no pipeline class {name!r}")
    return cls


def _scheduler(cls: Any, model: ResolvedModel) -> Any:
    """The pipeline's scheduler: from the model's scheduler config, else the class the pipeline's
    ``__init__`` names, with its defaults."""
    import typing

    import diffusers

    p = model.config.get("_pipeline")
    cfg = p.get("scheduler") if isinstance(p, dict) else None
    cfg = cfg if cfg is not None else PIPELINE_EXTRAS.get(cls.__name__, {}).get("scheduler")
    if isinstance(cfg, dict) and isinstance(cfg.get("_class_name"), str):
        scls = getattr(diffusers, cfg["_class_name"], None)
        if scls is None:
            raise ConfigError(f"diffusers has no scheduler class {cfg['_class_name']!r}")
        return scls.from_config({k: v for k, v in cfg.items() if not k.startswith("_")})
    ann = inspect.signature(cls.__init__, eval_str=True).parameters["scheduler"].annotation
    args = typing.get_args(ann) or (ann,)
    classes = [a for a in args if isinstance(a, type) and issubclass(a, diffusers.SchedulerMixin)]
    if not classes:  # e.g. AllegroPipeline: `scheduler: KarrasDiffusionSchedulers` (an enum of names)
        raise ConfigError(f"{cls.__name__} names no scheduler class ({ann!r}) and the model bundles no scheduler "
                          "config (its zoo file's _pipeline.scheduler)")
    return classes[0]()


def _dtype_of(model: ResolvedModel, wl: Workload, dtype: str) -> dict[str, str]:
    """The dtype each component is loaded in: the plan's (``StagePlan.dtype``), else ``dtype``."""
    out: dict[str, str] = {}
    for plan in model.stages(wl):
        out.setdefault(plan.component, plan.dtype or dtype)
    return out


class _Unused:
    """A component the pipeline takes but does not run for the observed prompt (the model's ``_pipeline``
    names it with ``_stand_in``: why, and the config values the pipeline reads from it, e.g.
    HunyuanVideo-1.5's ByT5, run only on quoted glyph text).  It has that ``config`` and ``dtype``; calling
    it is an error (the plan's claim that it does not run would be wrong)."""

    def __init__(self, name: str, values: Mapping[str, Any], dtype: str) -> None:
        import types

        from fxmeter.model.adapters.stage import torch_dtype

        self.name = name
        self.config = types.SimpleNamespace(**{k: v for k, v in values.items() if not k.startswith("_")})
        self.dtype = torch_dtype(dtype)

    def to(self, *args: Any, **kwargs: Any) -> _Unused:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TraceError(f"the pipeline ran {self.name}, which the model's plan says it does not run")


def _from_config(values: Mapping[str, Any], wl: Workload) -> Any:
    """A pipeline object from its config (``_pipeline.<name>``): a guider takes the workload's
    ``guidance_scale`` (HunyuanVideo-1.5's ``__call__`` has none; its guider holds it)."""
    import diffusers

    cls = getattr(diffusers, str(values["_class_name"]), None)
    if cls is None:
        raise ConfigError(f"diffusers has no class {values['_class_name']!r}")
    kw = {k: v for k, v in values.items() if not k.startswith("_")}
    if "guidance_scale" in inspect.signature(cls.__init__).parameters:
        kw["guidance_scale"] = wl.guidance_scale
    with _quiet():  # "Guiders are currently an experimental feature"
        return cls(**kw)


class _PassGuardrail:
    """Cosmos's ``CosmosSafetyChecker`` stand-in (``cosmos_guardrail`` is not installed; fxmeter's plan has no
    guardrail stage): it passes the prompt (``check_text_safety``), and once the pipeline moves it back to
    the CPU after that check it leaves the pipeline (``safety_checker = None``), so the decoded video is
    post-processed as without a guardrail (its video check reads pixel values on the CPU as NumPy)."""

    def __init__(self) -> None:
        self.pipe: Any = None

    def to(self, device: Any) -> _PassGuardrail:
        if str(device) == "cpu" and self.pipe is not None:
            self.pipe.safety_checker = None
        return self

    def check_text_safety(self, prompt: str) -> bool:
        return True

    def check_video_safety(self, video: Any) -> Any:
        return video


def _model_max_length(encoder: Any) -> int:
    """The ``model_max_length`` of the tokenizer paired with ``encoder``, which pipelines read (HiDream's
    ``min(max_sequence_length, tokenizer_3.model_max_length)``): CLIP's position count (77), T5's 512 (its
    tokenizers' ``max_model_input_sizes``), else unbounded (transformers' ``VERY_LARGE_INTEGER``, what a Llama /
    Qwen / Gemma tokenizer without a limit reports)."""
    cfg = getattr(encoder, "config", None)
    kind = str(getattr(cfg, "model_type", "") or "")
    if kind.startswith("clip"):
        return int(getattr(cfg, "max_position_embeddings", 77))
    if kind in ("t5", "umt5", "mt5"):
        return 512
    return int(1e30)


def _diffusers_denoiser(cfg: dict[str, Any], dtype: str) -> Any:
    """The denoiser as diffusers' own class (capture's builder, which may substitute an adapter's
    ``model_class`` with an export-friendly forward: Kandinsky 5's, HunyuanVideo-1.5's)."""
    import diffusers
    import torch

    from fxmeter.model.capture import DTYPES, apply_dtype_policy, build_model

    cls = getattr(diffusers, str(cfg.get("_class_name")), None)
    mod = build_model(cfg, dtype)
    if cls is None or type(mod) is cls:
        return mod
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")
        mod = cls.from_config({k: v for k, v in cfg.items() if not k.startswith("_")})
    apply_dtype_policy(mod, DTYPES[dtype])
    return mod.eval()


@dataclass
class Built:
    """A pipeline on meta with its recorder."""

    pipe: Any
    recorder: _Recorder
    pipeline: str
    scheduler: str
    missing: tuple[str, ...] = field(default_factory=tuple)
    image: bool = False  # the plan encodes a conditioning image (vae_encode): pass ``image`` even where optional


def build(model: ResolvedModel, wl: Workload, dtype: str = "bfloat16") -> Built:
    """The real pipeline class with every component on meta (from the model's configs), patched to record."""
    import torch

    from fxmeter.model.capture import build_model

    name = pipeline_class_name(model)
    cls = pipeline_class(name)
    params = inspect.signature(cls.__init__).parameters
    dtypes = _dtype_of(model, wl, dtype)
    rec = _Recorder()
    kwargs: dict[str, Any] = {}
    missing: list[str] = []
    p = model.config.get("_pipeline") if isinstance(model.config.get("_pipeline"), dict) else {}
    assert isinstance(p, dict)
    p = {**PIPELINE_EXTRAS.get(name, {}), **p}
    for pname, param in params.items():
        if pname == "self":
            continue
        if pname in model.components:
            comp = model.components[pname]
            cdtype = dtypes.get(pname, dtype)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if pname in DENOISERS:
                    cfg = {k: v for k, v in comp.config.items() if k != "_pipeline"}
                    mod = _diffusers_denoiser(cfg, cdtype)
                    # the adapter's module hook, for its side effect only (Cosmos installs the torchvision resize
                    # its forward calls); the module observed is always the diffusers class itself
                    comp.adapter.build_module(dict(cfg), cdtype, build_model)
                    rec.denoiser(pname, mod)
                else:
                    from fxmeter.model.adapters.stage import StageAdapter

                    call = comp.adapter
                    assert isinstance(call, StageAdapter)
                    mod = call.build_component(dict(comp.config), cdtype, build_model)
                    if call.name in TILED_VAES and hasattr(mod, "enable_tiling"):
                        tile: Any = mod.enable_tiling
                        tile()  # the plan's VAE decodes tiled (Allegro's: only tiled decoding exists)
                    if pname.startswith("vae") or pname.endswith("_vae"):  # LTX-2's audio_vae
                        rec.vae(pname, mod)
                    else:
                        rec.encoder(pname, mod)
            kwargs[pname] = mod
        elif pname.startswith("tokenizer"):
            kwargs[pname] = ShapeTokenizer()
        elif pname == "scheduler":
            kwargs[pname] = _scheduler(cls, model)
        elif pname in ("image_processor", "feature_extractor") and "image_encoder" in model.components:
            from transformers import CLIPImageProcessor

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kwargs[pname] = CLIPImageProcessor()  # class defaults: 224 px crop (Wan2.1-I2V's)
        elif isinstance(p.get(pname), dict) and p[pname].get("_stand_in"):
            kwargs[pname] = _Unused(pname, p[pname], dtypes.get(pname, dtype))
        elif isinstance(p.get(pname), dict) and isinstance(p[pname].get("_class_name"), str):
            kwargs[pname] = _from_config(p[pname], wl)
        elif pname == "safety_checker" and name.startswith("Cosmos"):
            kwargs[pname] = _PassGuardrail()
        elif pname in p and p[pname] is not None:
            kwargs[pname] = p[pname]
        elif param.default is inspect.Parameter.empty:
            if pname in model.missing:
                raise ConfigError(model.missing[pname])
            missing.append(pname)
            kwargs[pname] = None
    for pname, tok in kwargs.items():
        if isinstance(tok, ShapeTokenizer):
            tok.model_max_length = _model_max_length(kwargs.get(pname.replace("tokenizer", "text_encoder", 1)))
    absent = [m for m in missing if not m.startswith(("tokenizer", "image_processor", "feature_extractor"))]
    if absent:
        raise ConfigError(f"{model.id}: {name} needs {', '.join(absent)}, and {model.config_source} has no config for "
                          f"{'it' if len(absent) == 1 else 'them'}; observe a pipeline folder (model_index.json and "
                          "<component>/config.json) or a bundled model")
    if "expand_timesteps" in params and "expand_timesteps" not in kwargs and "transformer" in model.components:
        exp = getattr(model.adapter, "_expand_timesteps", None)
        if callable(exp) and exp(model.config):
            kwargs["expand_timesteps"] = True
    if "boundary_ratio" in params and "boundary_ratio" not in kwargs and p.get("boundary_ratio") is not None:
        kwargs["boundary_ratio"] = p["boundary_ratio"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = cls(**kwargs)
    pipe.set_progress_bar_config(disable=True)
    if isinstance(getattr(pipe, "safety_checker", None), _PassGuardrail):
        pipe.safety_checker.pipe = pipe
        rec.guardrail = pipe.safety_checker  # put back before each run (it leaves after the prompt check)
    rec.scheduler(pipe.scheduler)
    for attr in ("image_processor", "video_processor"):
        if getattr(pipe, attr, None) is not None and hasattr(getattr(pipe, attr), "resize_and_crop_tensor"):
            rec.resize(getattr(pipe, attr))
    del torch
    image = any(plan.name == "vae_encode" for plan in model.stages(wl))
    return Built(pipe, rec, name, type(pipe.scheduler).__name__, tuple(missing), image)


def _call_kwargs(built: Built, wl: Workload) -> dict[str, Any]:
    """The pipeline call of ``wl``: the arguments its ``__call__`` takes, as a user passes them."""
    params = inspect.signature(type(built.pipe).__call__).parameters
    kw: dict[str, Any] = {"prompt": "a photo"}
    if "negative_prompt" in params and wl.guidance_scale > 1.0:
        kw["negative_prompt"] = "blurry"
    for key, value in (("height", wl.height), ("width", wl.width), ("num_frames", wl.frames),
                       ("num_inference_steps", wl.steps), ("guidance_scale", wl.guidance_scale),
                       ("max_sequence_length", _max_sequence_length(built, wl))):
        if key in params and value is not None:
            kw[key] = value
    if "frames" in params and "num_frames" not in params:  # SanaVideoPipeline names its frame count ``frames``
        kw["frames"] = wl.frames
    for key in ("num_videos_per_prompt", "num_images_per_prompt"):
        if key in params:
            kw[key] = 1
    if wl.batch != 1:
        kw["prompt"] = [kw["prompt"]] * wl.batch
        if "negative_prompt" in kw:
            kw["negative_prompt"] = [kw["negative_prompt"]] * wl.batch
    if "image" in params and (params["image"].default is inspect.Parameter.empty or built.image):
        from PIL import Image

        kw["image"] = Image.new("RGB", (wl.width, wl.height))
    kw["output_type"] = "pt"
    return kw


#: pipelines whose plan does not take the workload's ``text_len`` as ``max_sequence_length`` -> the
#: ``max_sequence_length`` the plan costs for a workload.  Both pad the prompt to ``max_sequence_length``
#: (``padding="max_length"``, 512 by default) whatever its length:
#: * ZImagePipeline: the encoder runs ``max_sequence_length`` tokens and hands the transformer the prompt's own
#:   (``prompt_embeds[i][prompt_masks[i]]``): fxmeter's ``text_len`` is the prompt's tokens (the shape tokenizer
#:   fills that many), the encoder runs ``max(512, text_len)`` (fxmeter.model.zoo.z_image);
#: * ChronoEditPipeline: the encoder and the transformer always see 512 (Wan I2V's attention processor splits the
#:   image tokens off at ``shape[1] - 512``): fxmeter ignores ``text_len`` there (its note says so).
MAX_SEQUENCE_LENGTHS: dict[str, Any] = {
    "ZImagePipeline": lambda wl: max(512, wl.text_len),
    "ChronoEditPipeline": lambda wl: 512,
}


def _max_sequence_length(built: Built, wl: Workload) -> int:
    """The pipeline's ``max_sequence_length`` for a workload's ``text_len``: SD3 counts the 77 CLIP
    tokens in fxmeter's text_len (the transformer sees 77 + T5's), :data:`MAX_SEQUENCE_LENGTHS` pad to a
    fixed length, the others take it as is."""
    if built.pipeline.startswith("StableDiffusion3"):
        return max(wl.text_len - 77, 1)
    if built.pipeline in MAX_SEQUENCE_LENGTHS:
        return int(MAX_SEQUENCE_LENGTHS[built.pipeline](wl))
    return wl.text_len


def _tokenizers(pipe: Any) -> list[ShapeTokenizer]:
    return [v for v in vars(pipe).values() if isinstance(v, ShapeTokenizer)]


def run(built: Built, wl: Workload, model_id: str = "") -> Observation:
    """One generation of ``wl`` on the built pipeline; the calls it made."""
    import torch

    from fxmeter.model.metamemo import meta_memo

    rec = built.recorder
    if rec.guardrail is not None:
        built.pipe.safety_checker = rec.guardrail
    rec.calls = []
    rec.step = None
    for tok in _tokenizers(built.pipe):
        tok.prompt_tokens = wl.text_len
        tok.prefix_tokens = int(getattr(built.pipe, "prompt_template_encode_start_idx", 0) or 0)
    # meta_memo: a repeated functional op on the same metadata skips its (Python) meta kernel, ~1.4x faster
    with warnings.catch_warnings(), torch.no_grad(), _quiet(), _ftfy(built.pipe), _known_values_mode(), meta_memo():
        warnings.simplefilter("ignore")
        try:
            built.pipe(**_call_kwargs(built, wl))
        except (ConfigError, TraceError):
            raise
        except Exception as e:
            raise TraceError(f"{built.pipeline} failed on meta at {wl.name}: {type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''}") from e
    patched = list(rec.patched)
    if _needs_ftfy(built.pipe):
        patched.append("ftfy (not installed): fix_text is the identity (prompt cleaning; no shape depends on it)")
    patched.append("tokenizers: ShapeTokenizer (padded input_ids / attention_mask of the pipeline's max_length)")
    for name in rec.masked:
        patched.append(f"{name}: output computed without attention_mask on meta (transformers reads mask values)")
    return Observation(model_id, built.pipeline, built.scheduler, wl, tuple(rec.calls), tuple(patched))


def observe(model: ResolvedModel, wl: Workload, dtype: str = "bfloat16") -> Observation:
    """Build ``model``'s pipeline on meta and observe one generation of ``wl``."""
    return run(build(model, wl, dtype), wl, model.id)


# -- axes ----------------------------------------------------------------------------------------------
def variants(wl: Workload, video: bool) -> dict[str, Workload]:
    """One workload per knob, that knob changed and the others as ``wl``'s (frames only for video)."""
    out: dict[str, Workload] = {}
    if video:
        out["frames"] = replace(wl, name=f"{wl.name}+frames", frames=wl.frames + 8 if wl.frames > 1 else 9)
    out["height"] = replace(wl, name=f"{wl.name}+height", height=wl.height + 64)
    out["width"] = replace(wl, name=f"{wl.name}+width", width=wl.width + 128)
    # shorter text: pipelines cap max_sequence_length (Flux at 512)
    out["text_len"] = replace(wl, name=f"{wl.name}+text_len", text_len=wl.text_len - 16 if wl.text_len > 32 else wl.text_len + 16)
    out["batch"] = replace(wl, name=f"{wl.name}+batch", batch=wl.batch + 1)
    return out


@dataclass(frozen=True)
class Axis:
    """Input ``name``'s axis ``axis`` of a stage: its size at the base workload and the knobs it follows."""

    stage: str
    name: str
    axis: int
    size: int
    follows: tuple[str, ...]
    sizes: Mapping[str, int]  # knob -> size when that knob changed


def infer_axes(model: ResolvedModel, wl: Workload, dtype: str = "bfloat16", *,
               knobs: tuple[str, ...] | None = None) -> tuple[tuple[Axis, ...], dict[str, Observation]]:
    """Run the pipeline at ``wl`` and at one variant per knob; which knobs each input axis follows.

    Returns the axes (every tensor input axis of every stage's first call) and the observations
    (``base`` and one per knob).
    """
    built = build(model, wl, dtype)
    obs = {"base": run(built, wl, model.id)}
    for knob, v in variants(wl, wl.frames > 1).items():
        if knobs is not None and knob not in knobs:
            continue
        obs[knob] = run(built, v, model.id)
    return axes_of(obs), obs


def axes_of(obs: Mapping[str, Observation]) -> tuple[Axis, ...]:
    """The axes of observations ``obs`` (``base`` and one per knob, as :func:`infer_axes` makes them)."""
    base = obs["base"]
    axes: list[Axis] = []
    for st in base.stages():
        for name, spec in st.inputs:
            for i, size in enumerate(spec.shape):
                sizes: dict[str, int] = {}
                for knob, o in obs.items():
                    if knob == "base":
                        continue
                    other = o.stage(st.name)
                    t = dict(other.inputs).get(name) if other is not None else None
                    if t is not None and len(t.shape) == len(spec.shape):
                        sizes[knob] = t.shape[i]
                follows = tuple(k for k, s in sizes.items() if s != size)
                axes.append(Axis(st.name, name, i, size, follows, sizes))
    return tuple(axes)


# -- the hand plan ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mismatch:
    stage: str
    what: str
    planned: Any
    observed: Any

    def __str__(self) -> str:
        return f"{self.stage}: {self.what}: plan {self.planned!r}, observed {self.observed!r}"


def planned_inputs(model: ResolvedModel, wl: Workload, plan: Any, dtype: str) -> dict[str, TensorSpec]:
    """The tensor inputs the hand adapter builds for ``plan`` (its ``inputs`` at the plan's dims)."""
    from fxmeter.model.adapters.stage import torch_dtype

    comp = model.stage_component(plan)
    dims = model.stage_dims(plan, model.geometry(wl))
    kw = comp.adapter.inputs(dict(comp.config), dims, torch_dtype(plan.dtype or dtype))
    import torch

    out: dict[str, TensorSpec] = {}
    # an adapter whose export class takes a pipeline argument under other names says which (Kandinsky 5's
    # visual_rope_pos list as three tensors): compared under the pipeline's names
    names = PIPELINE_INPUT_NAMES.get(comp.adapter.name, {})
    kw = {names.get(k, k): v for k, v in kw.items()}
    for k, v in kw.items():
        if isinstance(v, torch.Tensor):
            out[k] = _spec(v)
        elif isinstance(v, (list, tuple)) and v and all(isinstance(x, torch.Tensor) for x in v):
            out.update({f"{k}[{i}]": _spec(x) for i, x in enumerate(v)})  # CogVideoX's (cos, sin) RoPE tables
    return out


def compare_with_plan(model: ResolvedModel, obs: Observation, dtype: str = "bfloat16", *,
                      batched_cfg: bool = False) -> list[Mismatch]:
    """Where the observation and the hand adapter's plan disagree (empty: they agree).

    Per stage of the plan: present, ``runs``, the steps of a denoiser, its batch (the
    workload's batch x ``batch_factor``) and every tensor input the adapter builds (name, shape
    and dtype).  Stages the pipeline ran that the plan lacks are mismatches too.

    A plan may split one component's calls into stages the pipeline does not name (CogView4's
    ``text_encoder`` and ``text_encoder_negative``, Lumina's ``transformer`` and
    ``transformer_uncond``, LTX-2's ``transformer`` / ``transformer_stg`` / ``transformer_modality``):
    plan stages of one component with no observed stage of their own are checked together against
    that component's calls (:func:`_compare_split`), each call matched to the plan stage whose inputs
    it has.
    """
    wl = obs.workload
    plans = model.stages(wl, batched_cfg=batched_cfg)
    out: list[Mismatch] = []
    seen = {s.name: s for s in obs.stages()}
    groups: dict[str, list[Any]] = {}
    for plan in plans:
        target = plan.name if plan.name in seen else plan.component if plan.component in seen else plan.name
        groups.setdefault(target, []).append(plan)
    for target, group in groups.items():
        st = seen.pop(target, None)
        if len(group) > 1 and st is not None:
            out += _compare_split(model, obs, st, group, dtype)
            continue
        plan = group[0]
        if st is None:
            out.append(Mismatch(plan.name, "stage", plan.runs, None))
            continue
        if st.runs != plan.runs:
            out.append(Mismatch(plan.name, "runs", plan.runs, st.runs))
        if plan.denoiser:
            if len(st.steps) != plan.steps:
                out.append(Mismatch(plan.name, "steps", plan.steps, len(st.steps)))
            if st.batch != wl.batch * plan.batch_factor:
                out.append(Mismatch(plan.name, "batch", wl.batch * plan.batch_factor, st.batch))
            if plan.timesteps and tuple(float(t) for t in plan.timesteps) != tuple(float(t) for t in st.timesteps):
                out.append(Mismatch(plan.name, "timesteps", plan.timesteps, st.timesteps))
        have = dict(st.inputs)
        for name, spec in planned_inputs(model, wl, plan, dtype).items():
            if have.get(name) != spec:
                out.append(Mismatch(plan.name, f"input {name}", str(spec), str(have.get(name))))
    for name, st in seen.items():
        out.append(Mismatch(name, "stage", None, st.runs))
    return out


def _compare_split(model: ResolvedModel, obs: Observation, st: ObservedStage, group: list[Any],
                   dtype: str) -> list[Mismatch]:
    """Plan stages that share one observed stage: each call counts for the plan stages whose inputs it
    has (plan stages with the same inputs, a prompt and its negative, share their calls); per plan
    stage the runs and, for a denoiser, the steps and batch must agree."""
    wl = obs.workload
    calls = [c for c in obs.calls if c.stage == st.name]
    want = [(plan, planned_inputs(model, wl, plan, dtype)) for plan in group]
    pools: dict[tuple[tuple[str, TensorSpec], ...], list[Any]] = {}
    for plan, spec in want:
        pools.setdefault(tuple(sorted(spec.items())), []).append(plan)
    out: list[Mismatch] = []
    used = 0
    for key, members in pools.items():
        spec = dict(key)
        hit = [c for c in calls if all(c.input(n) == s for n, s in spec.items())]
        used += len(hit)
        runs = sum(p.runs for p in members)
        if len(hit) != runs:
            for p in members:
                out.append(Mismatch(p.name, "runs", p.runs, len(hit) if len(members) == 1 else
                                    f"{len(hit)} calls with its inputs (shared by {', '.join(m.name for m in members)})"))
            if not hit and calls:
                have = dict(calls[0].inputs)
                out += [Mismatch(members[0].name, f"input {n}", str(s), str(have.get(n)))
                        for n, s in spec.items() if have.get(n) != s]
            continue
        for p in members:
            if p.denoiser:
                steps = {c.step for c in hit if c.step is not None}
                if len(steps) != p.steps:
                    out.append(Mismatch(p.name, "steps", p.steps, len(steps)))
                if hit[0].batch != wl.batch * p.batch_factor:
                    out.append(Mismatch(p.name, "batch", wl.batch * p.batch_factor, hit[0].batch))
    if used < len(calls):
        out.append(Mismatch(st.name, "calls no plan stage's inputs match", 0, len(calls) - used))
    return out


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    from diffusers.utils import logging as dlogging

    level = dlogging.get_verbosity()
    dlogging.set_verbosity_error()
    try:
        yield
    finally:
        dlogging.set_verbosity(level)


def _needs_ftfy(pipe: Any) -> bool:
    import sys

    mod = sys.modules.get(type(pipe).__module__)
    return mod is not None and "ftfy" not in vars(mod) and any(
        "ftfy" in getattr(getattr(f, "__code__", None), "co_names", ()) for f in vars(mod).values() if callable(f))


@contextlib.contextmanager
def _ftfy(pipe: Any) -> Iterator[None]:
    """Wan's ``prompt_clean`` calls ``ftfy.fix_text`` (an optional dependency, not installed here):
    the identity stands in while the pipeline runs (it cleans prompt text; no shape depends on it)."""
    import sys
    import types

    mod = sys.modules.get(type(pipe).__module__)
    if mod is None or not _needs_ftfy(pipe):
        yield
        return
    mod.ftfy = types.SimpleNamespace(fix_text=lambda text: text)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        del mod.ftfy  # type: ignore[attr-defined]


def cfg_batched(obs: Observation) -> bool:
    """True when the pipeline ran classifier-free guidance as one denoiser forward of twice the batch
    per step (SD3, CogVideoX, LTX-Video concatenate the two branches; Wan runs two forwards)."""
    dens = [s for s in obs.stages() if s.component in DENOISERS and s.steps]
    return bool(dens) and all(s.calls_per_step == 1 and s.batch == 2 * obs.workload.batch for s in dens)


def observe_model(model: str | None = None, workload: str | Workload | None = None, *, config: str | None = None,
                  dtype: str = "bf16", **overrides: Any) -> tuple[ResolvedModel, Observation]:
    """Resolve a model id or a pipeline folder (``model`` may be a path) and observe one generation."""
    from fxmeter.model.folder import looks_like_path, resolve_folder
    from fxmeter.model.registry import resolve_model
    from fxmeter.model.workload import normalize_dtype, resolve

    if model is not None and looks_like_path(model):
        if config is not None:
            raise ConfigError("give a pipeline folder or --config, not both")
        resolved = resolve_folder(model)
    else:
        resolved = resolve_model(model, config)
    wl = resolve(workload, resolved.default_workload or None, **overrides)
    resolved.geometry(wl)  # a workload the model cannot run is refused before anything is built
    return resolved, observe(resolved, wl, normalize_dtype(dtype))


#: the workload knobs each adapter symbol follows (a symbol not named here is not checked)
SYMBOL_KNOBS: dict[str, frozenset[str]] = {
    "batch": frozenset({"batch"}),
    "latent_frames": frozenset({"frames"}),
    "patches_h": frozenset({"height"}), "latent_h": frozenset({"height"}),
    "patches_w": frozenset({"width"}), "latent_w": frozenset({"width"}),
    "text_len": frozenset({"text_len"}), "seq_len": frozenset({"text_len"}),
    "image_tokens": frozenset({"height", "width"}),
}


def check_axes(model: ResolvedModel, axes: tuple[Axis, ...], wl: Workload) -> list[str]:
    """Where the inferred axes of the denoisers disagree with the adapter's ``symbol_axes``: an axis the
    adapter makes a symbol must follow that symbol's knobs (:data:`SYMBOL_KNOBS`), and an axis it keeps
    constant must follow none (only knobs the observation varied are compared).  An adapter that exports
    once per workload (``supports_dynamic`` False: LTX-Video's packed tokens, CogVideoX's RoPE tables)
    declares no axes to check; its inputs are compared per workload by :func:`compare_with_plan`."""
    if not model.adapter.supports_dynamic(model.config):
        return []
    declared = model.adapter.symbol_axes(model.config)
    out: list[str] = []
    for a in axes:
        if a.stage not in DENOISERS:
            continue
        sym = declared.get(a.name, {}).get(a.axis)
        varied = set(a.sizes)
        if sym is not None and sym.symbol not in SYMBOL_KNOBS:
            continue
        want = (SYMBOL_KNOBS[sym.symbol] if sym is not None else frozenset()) & varied
        if set(a.follows) != want:
            out.append(f"{a.stage}.{a.name}[{a.axis}]: adapter {sym.symbol if sym else 'constant'} "
                       f"({', '.join(sorted(want)) or 'no knob'}), observed {', '.join(a.follows) or 'no knob'}")
    return out


def plan_differences(model: str, workload: str | Workload | None = None, *, batched_cfg: bool | None = None,
                     dtype: str = "bf16", **overrides: Any) -> list[str]:
    """Observe ``model`` (an id or a pipeline folder) at ``workload`` (default: its preset) and return
    where its hand plan disagrees, one line each (empty: they agree).  ``batched_cfg`` None: as the
    pipeline ran it (:func:`cfg_batched`).  A zoo model's test can assert ``plan_differences(id) == []``."""
    from fxmeter.model.workload import normalize_dtype

    resolved, obs = observe_model(model, workload, dtype=dtype, **overrides)
    batched = cfg_batched(obs) if batched_cfg is None else batched_cfg
    return [str(m) for m in compare_with_plan(resolved, obs, normalize_dtype(dtype), batched_cfg=batched)]
