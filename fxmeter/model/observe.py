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
``max_sequence_length``, a conditioning image for image-to-video pipelines.  Every call the
pipeline makes on a component is recorded: component, method (``forward``, ``encode``,
``decode``), each tensor input's name, shape and dtype, the denoising step it falls in and the
timestep it was given.

What is patched, and why (nothing else is; the pipeline's own code runs unchanged):

* **Tokenizers** are :class:`ShapeTokenizer`: the pipeline never reads token *values* for shapes,
  only the padded ``input_ids`` / ``attention_mask`` it asks for (``padding="max_length"`` at its
  own ``max_length``), so a tokenizer that returns those shapes (the first
  :data:`PROMPT_TOKENS` positions marked as prompt in the mask) shows the text encoders exactly the
  shapes real tokenizers do.  No tokenizer files exist offline; this is the one stand-in.
* **The denoiser's forward** (``transformer``, ``transformer_2``) records its inputs and returns
  the output of the *real* forward on meta, run once per distinct input signature and reused
  (a 50-step generation makes one or two real meta forwards, not 100).
* **Text and image encoders, VAE encode/decode** run for real on meta.  transformers' padding
  mask check reads tensor values (``.item()``), impossible on meta: when a text encoder's call
  fails on meta it is re-run without its ``attention_mask`` (shapes do not depend on it); the
  recorded call keeps the mask.
* **The scheduler** runs on CPU: ``set_timesteps`` puts its timesteps on the CPU whatever device
  the pipeline asks for (so ``for t in timesteps``, ``t >= boundary_timestep`` and
  ``t.expand(batch)`` are real numbers), and ``step`` / ``scale_model_input`` run the real
  scheduler code on 1-element CPU tensors (one per meta argument, same rank and dtype), then hand
  back meta tensors of the sample's shape: the scheduler's state (step index, multistep history)
  advances exactly as in a real generation.
* **The execution device** is meta (every component is on meta): latents, masks and embeddings are
  meta tensors; ``output_type="pt"`` keeps the decoded result on meta.
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
        return self.inputs[0][1].shape[0] if self.inputs and self.inputs[0][1].shape else None


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
        n = PROMPT_TOKENS if max_length is None else min(PROMPT_TOKENS, max_length)
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


class _Recorder:
    """Holds the calls and the step counter; installs the patches on one pipeline."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.step: int | None = None  # set once the scheduler's timesteps are set (the loop has begun)
        self.cache: dict[tuple[Any, ...], Any] = {}
        self.patched: list[str] = []
        self.masked: list[str] = []  # text encoders whose meta call needed the mask dropped

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

    # -- scheduler -------------------------------------------------------------------------------
    def scheduler(self, sched: Any) -> None:
        import torch

        real_set = sched.set_timesteps

        @functools.wraps(real_set)
        def set_timesteps(*args: Any, **kwargs: Any) -> Any:
            if "device" in kwargs:
                kwargs["device"] = "cpu"
            else:
                try:
                    bound = inspect.signature(real_set).bind_partial(*args, **kwargs)
                    if "device" in bound.arguments:
                        bound.arguments["device"] = "cpu"
                        args, kwargs = bound.args, bound.kwargs
                except TypeError:
                    pass
            out = real_set(*args, **kwargs)
            self.step = 0
            return out

        def on_cpu(fn: Any, advance: bool) -> Any:
            @functools.wraps(fn)  # pipelines read the step's signature (eta, generator)
            def wrapped(*args: Any, **kwargs: Any) -> Any:
                shapes: dict[int, torch.Size] = {}
                devs: dict[int, tuple[torch.Size, torch.dtype]] = {}

                def small(v: Any) -> Any:
                    if isinstance(v, torch.Tensor) and v.device.type == "meta":
                        shapes.setdefault(v.dim(), v.shape)
                        devs.setdefault(v.dim(), (v.shape, v.dtype))
                        return torch.zeros((1,) * v.dim(), dtype=v.dtype)
                    return v

                out = fn(*(small(a) for a in args), **{k: small(v) for k, v in kwargs.items()})

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
                if advance and self.step is not None:
                    self.step += 1
                return out

            return wrapped

        sched.set_timesteps = set_timesteps
        sched.step = on_cpu(sched.step, True)
        if hasattr(sched, "scale_model_input"):
            sched.scale_model_input = on_cpu(sched.scale_model_input, False)
        self.patched.append(f"scheduler {type(sched).__name__}: timesteps on CPU; step/scale_model_input run on "
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


@dataclass
class Built:
    """A pipeline on meta with its recorder."""

    pipe: Any
    recorder: _Recorder
    pipeline: str
    scheduler: str
    missing: tuple[str, ...] = field(default_factory=tuple)


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
                    mod = build_model(cfg, cdtype)
                    rec.denoiser(pname, mod)
                else:
                    from fxmeter.model.adapters.stage import StageAdapter

                    call = comp.adapter
                    assert isinstance(call, StageAdapter)
                    mod = call.build_component(dict(comp.config), cdtype, build_model)
                    if pname.startswith("vae"):
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
        elif pname in p and p[pname] is not None:
            kwargs[pname] = p[pname]
        elif param.default is inspect.Parameter.empty:
            if pname in model.missing:
                raise ConfigError(model.missing[pname])
            missing.append(pname)
            kwargs[pname] = None
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
    rec.scheduler(pipe.scheduler)
    del torch
    return Built(pipe, rec, name, type(pipe.scheduler).__name__, tuple(missing))


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
    for key in ("num_videos_per_prompt", "num_images_per_prompt"):
        if key in params:
            kw[key] = 1
    if wl.batch != 1:
        kw["prompt"] = [kw["prompt"]] * wl.batch
        if "negative_prompt" in kw:
            kw["negative_prompt"] = [kw["negative_prompt"]] * wl.batch
    if "image" in params and inspect.signature(type(built.pipe).__call__).parameters["image"].default is inspect.Parameter.empty:
        from PIL import Image

        kw["image"] = Image.new("RGB", (wl.width, wl.height))
    kw["output_type"] = "pt"
    return kw


def _max_sequence_length(built: Built, wl: Workload) -> int:
    """The pipeline's ``max_sequence_length`` for a workload's ``text_len``: SD3 counts the 77 CLIP
    tokens in fxmeter's text_len (the transformer sees 77 + T5's), the others take it as is."""
    if built.pipeline.startswith("StableDiffusion3"):
        return max(wl.text_len - 77, 1)
    return wl.text_len


def run(built: Built, wl: Workload, model_id: str = "") -> Observation:
    """One generation of ``wl`` on the built pipeline; the calls it made."""
    import torch

    rec = built.recorder
    rec.calls = []
    rec.step = None
    with warnings.catch_warnings(), torch.no_grad(), _quiet(), _ftfy(built.pipe):
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
    base = run(built, wl, model.id)
    video = wl.frames > 1
    obs = {"base": base}
    for knob, v in variants(wl, video).items():
        if knobs is not None and knob not in knobs:
            continue
        obs[knob] = run(built, v, model.id)
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
    return tuple(axes), obs


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
    """
    wl = obs.workload
    plans = model.stages(wl, batched_cfg=batched_cfg)
    out: list[Mismatch] = []
    seen = {s.name: s for s in obs.stages()}
    for plan in plans:
        st = seen.pop(plan.name, None)
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
