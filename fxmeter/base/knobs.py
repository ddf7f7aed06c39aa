"""Every option of a trace, declared once.

:class:`TraceOptions` is the one declaration of what a user can ask of ``fxmeter trace``
(and of ``scale``, ``sweep``, ``fit``, ``verify`` where an option applies there): each field's
metadata is a :class:`Knob` saying its help, its command-line flag, its kind, which commands
offer it and how a command's variant differs (``scale --gpus 1,2,4,8`` is a list).  From it come

* the click options of every command (:func:`fxmeter.cli.options.knob_options`),
* the keywords of :func:`fxmeter.trace` (:data:`TRACE_KEYWORDS`, its checked signature and the
  ``Args`` of its docstring),
* the options a sweep passes unchanged to every point (:data:`SWEEP_OPTIONS`),
* the command-line spelling of any set of options (:func:`command_line`, used by ``fxmeter plan``
  and the reports to print the exact ``fxmeter trace ...`` that gives a number).

An option's *meaning* lives where it is checked and used (``fxmeter.api.request``); adding one
is a field here and its use there.  ``tests/test_knobs.py`` fails when a declared option is not
taken by ``request``/``trace``, not offered by its commands, or not in the README.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

#: the commands a knob can be offered by
COMMANDS = ("trace", "scale", "sweep", "fit", "verify", "plan")
KINDS = ("str", "int", "float", "flag", "path", "choice")


@dataclass(frozen=True)
class Knob:
    """How one option is spelt and offered (the field's metadata; ``name`` is the field's name).

    Attributes:
        help: the ``--help`` text (and the docstring line of :func:`fxmeter.trace`).
        kind: str, int, float, flag (a boolean switch), path, or choice (one of ``choices``).
        flag: the command-line flag (default ``--`` + the name with ``-`` for ``_``).
        short: a one-letter alias (``-w``).
        param: the click parameter name when it is not the name (``compile_``: ``compile`` is a builtin).
        invert: the flag turns the option off (``--no-cache`` sets ``cache=False``).
        show_default: print the default in ``--help``.
        group: model, workload, device, parallel, pipeline, run or api (the last: no flag).
        commands: the commands that offer the flag.
        sweep: a sweep passes it unchanged to every point (the device and deployment options).
        variants: command -> the Knob fields that differ there (``{"scale": {"kind": "str", ...}}``).
        api: the Python annotation of the keyword, as text (the generated signature shows it).
        required: the command needs it (``fit --hardware``); only through a variant.
    """

    help: str
    kind: str = "str"
    flag: str = ""
    short: str = ""
    param: str = ""
    invert: bool = False
    show_default: bool = False
    choices: tuple[str, ...] = ()
    group: str = "api"
    commands: tuple[str, ...] = ()
    sweep: bool = False
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    api: str = "Any"
    required: bool = False
    name: str = ""
    default: Any = None

    def for_command(self, command: str) -> Knob:
        """This knob as ``command`` offers it (its variant applied)."""
        from dataclasses import replace

        extra = self.variants.get(command)
        return replace(self, **extra) if extra else self

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def cli_param(self) -> str:
        return self.param or self.name


def knob(default: Any, help: str, **meta: Any) -> Any:
    """A :class:`TraceOptions` field: its default and its :class:`Knob`."""
    if meta.get("kind", "str") not in KINDS:
        raise ValueError(f"unknown kind {meta['kind']!r}")
    unknown = set(meta.get("commands", ())) - set(COMMANDS)
    if unknown:
        raise ValueError(f"unknown command(s) {sorted(unknown)}")
    return field(default=default, metadata={"knob": Knob(help, **meta)})


_ALL = ("trace", "scale", "sweep", "fit", "verify")
_DEPLOY = ("trace", "scale", "sweep")
_LIST = "Comma-separated {}, e.g. {}."


@dataclass(frozen=True)
class TraceOptions:
    """What a user can ask of a trace besides the model: one field per option (see the module docstring)."""

    # -- the workload and the model's build ---------------------------------------------------------------
    workload: Any = knob(None, "Workload preset (see `fxmeter workloads`); default: the model's.", short="-w",
                         group="model", commands=_ALL, api="str | Workload | None",
                         variants={"sweep": {"help": "Preset the unswept knobs come from; default: the model's."}})
    config: Any = knob(None, "Local diffusers config.json, model_index.json or model folder.", kind="path", group="model",
                       commands=_ALL, api="str | Path | None")
    dtype: str = knob("bf16", "Parameter dtype: bf16, fp16 or fp32.", show_default=True, group="model", commands=_ALL,
                      api="str")
    # -- how the trace is made (the library's keywords; the command line spells two of them inverted) -------
    cache: bool = knob(True, "Trace now: neither the shipped traces nor the user cache are used.", kind="flag",
                       flag="--no-cache", param="no_cache", invert=True, group="run",
                       commands=("trace", "scale", "sweep", "verify"), api="bool")
    replicate: bool = knob(True, "Trace every block instead of one per repeated list.", kind="flag", flag="--full-trace",
                           param="full_trace", invert=True, group="run", commands=("trace",), api="bool")
    strict: bool = knob(False, "Fail if any op has no rule.", kind="flag", group="run", commands=("trace",), api="bool")
    include_nodes: bool = knob(True, "List every costed graph node in the report.", group="api", api="bool")
    rules: Any = knob(None, "A per-call rule overlay, as FlopCounterMode's custom_mapping: aten target -> a rule "
                      "function OpCall -> Cost; used instead of the registry's for those targets.", group="api",
                      api="Mapping[str, Any] | None")
    run_id: str | None = knob(None, "Run id ([A-Za-z0-9._-], at most 128); default: UTC timestamp + random suffix.",
                              group="run", api="str | None")

    # -- the device and how the kernels run ---------------------------------------------------------------
    hardware: Any = knob(None, "Time and fit on this device, or several side by side: h100,a100,l40s (see `fxmeter hardware`).",
                         group="device", commands=("trace", "scale", "sweep", "fit"),
                         api="str | Sequence[str] | None",
                         variants={"fit": {"help": "The device (see `fxmeter hardware`).", "required": True}})
    hardware_file: Any = knob(None, "JSON file with more devices (or one device).", kind="path", group="device",
                              commands=("trace", "scale", "sweep", "fit"), api="str | Path | None")
    precision: str = knob("bf16", "Matmul precision: tensor-core peak and matmul weight bytes (int8: torchao int8 dynamic "
                          "quantization, W8A8).", kind="choice", choices=("bf16", "fp8", "int8"), show_default=True,
                          group="device", commands=(*_DEPLOY, "fit"), sweep=True, api="str",
                          variants={"fit": {"help": "Matmul weight bytes of the denoiser."}})
    traffic: str = knob("eager", "Memory-traffic model for bytes (fused: elementwise chains fused as torch.compile would).",
                        kind="choice", choices=("eager", "fused"), show_default=True, group="device", commands=_DEPLOY,
                        sweep=True, api="str")
    efficiency: Any = knob(None, "Override the kernel model: predicted seconds = the roofline at these fractions, e.g. "
                           "tc=0.6,bw=0.8.", group="device", commands=_DEPLOY, api="str | Mapping[str, float] | None")
    attention: str = knob("sdpa", "Attention kernel the time model prices (fa3: Hopper only).", kind="choice",
                          choices=("sdpa", "fa2", "fa3", "cudnn", "sage"), show_default=True, group="device",
                          commands=_DEPLOY, sweep=True, api="str")
    attention_precision: str = knob("bf16", "fp8: FA3/cuDNN fp8 attention; int8: SageAttention's INT8 QK.", kind="choice",
                                    choices=("bf16", "fp8", "int8"), show_default=True, group="device", commands=_DEPLOY,
                                    sweep=True, api="str")
    compile: bool = knob(False, "torch.compile: fused traffic and one kernel launch per fusion group.", kind="flag",
                         param="compile_", group="device", commands=_DEPLOY, sweep=True, api="bool")
    cache_skip: float = knob(0.0, "Fraction of transformer forwards a TeaCache/FBCache-style step cache skips.",
                             kind="float", show_default=True, group="device", commands=_DEPLOY, sweep=True, api="float")
    price_per_hour: Any = knob(None, "$ per GPU-hour: one number, or per device (h100=2.49,a100=1.29).", group="device",
                               commands=_DEPLOY, sweep=True, api="str | float | Mapping[str, float] | None")
    # -- several GPUs ----------------------------------------------------------------------------------------
    gpus: int | None = knob(None, "Run on N GPUs of the --hardware device: per-GPU work, communication and time.",
                            kind="int", group="parallel", commands=("trace", "scale", "sweep", "fit"),
                            sweep=True, api="int | None",
                            variants={"scale": {"kind": "str", "default": "1,2,4,8", "show_default": True,
                                                "help": "GPU counts, comma-separated."},
                                      "fit": {"default": 1, "show_default": True,
                                              "help": "GPUs of one node: the denoiser's activations split along the "
                                                      "sequence, weights whole on each."}})
    parallel: str | None = knob(None, "ulysses=U,ring=R,cfg=C,tp=T with U*R*C*T = --gpus (default: cfg=2 with two passes "
                                "per step, the rest Ulysses).", group="parallel",
                                commands=("trace", "scale", "sweep"), sweep=True, api="str | None",
                                variants={"scale": {"help": "ulysses=U,ring=R,cfg=C,tp=T for every count (omitted keys 1, "
                                                            "ulysses the rest); default: each count's default plan (cfg=2 "
                                                            "with two passes per step, the rest Ulysses)."}})
    fsdp: bool = knob(False, "Shard the denoiser's weights block by block over the GPUs (FSDP).", kind="flag",
                      group="parallel", commands=("trace", "scale", "sweep"), sweep=True, api="bool",
                      variants={"scale": {"help": "Shard the denoiser's weights over the GPUs (counts above 1)."}})
    batched_cfg: bool = knob(False, "CFG as one forward of 2x the batch (activation memory doubles).", kind="flag",
                             group="parallel", commands=("trace", "scale", "sweep", "fit"), sweep=True,
                             api="bool")
    # -- the pipeline around the transformer -----------------------------------------------------------------
    stages: Any = knob("all", "Pipeline stages to cost: all, or names (text_encoder,transformer,vae; transformer = every "
                       "denoising stage). The report's totals always describe the transformer.", show_default=True,
                       group="pipeline", commands=("trace", "scale", "sweep", "verify"),
                       api="str | Sequence[str] | None", variants={"verify": {"help": "Pipeline stages to check (the transformer on --device; text "
                                                    "encoders, VAE... on meta)."}})
    stage_dtype: Any = knob(None, "A stage's dtype instead of the pipeline's, e.g. vae=bf16 (Wan loads its VAE in fp32).",
                            group="pipeline", commands=("trace", "scale", "sweep"),
                            api="str | Mapping[str, str] | None")
    offload: str = knob("none", "Residency policy: none, model (enable_model_cpu_offload), sequential "
                        "(enable_sequential_cpu_offload), wan (Wan generate.py --offload_model True).", show_default=True,
                        group="pipeline", commands=("trace", "scale", "sweep"), api="str")
    t5_cpu: bool = knob(False, "Wan's --t5_cpu: the text encoder runs on the host CPU (no device memory; its time not "
                        "modeled).", kind="flag", group="pipeline", commands=("trace", "scale", "sweep"),
                        api="bool")
    runtime: str = knob("diffusers", "Dtype policy of the code that runs it: diffusers, wan (Wan's repository: the DiT in "
                        "fp32 under autocast), wan-bf16 (Wan's --convert_model_dtype).", show_default=True,
                        group="pipeline", commands=("trace", "fit"), api="str")
    fuse_qkv: bool = knob(False, "pipe.fuse_qkv_projections(): the fused Q/K/V copies are loaded beside the unfused "
                          "projections (diffusers keeps both); their time as three GEMMs.", kind="flag",
                          group="pipeline", commands=("trace", "fit"), api="bool")
    quantize_on_device: bool = knob(False, "--precision fp8/int8 applied on the GPU after the checkpoint is loaded there in "
                                    "its own dtype (torchao quantize_ after pipe.to('cuda')): the peak includes every "
                                    "unquantized weight.", kind="flag", group="pipeline", commands=("trace", "fit"),
                                    api="bool")
    vae_tiling: Any = knob(None, "vae.enable_tiling(): off, on (the VAE's own tile sizes) or a tile size in pixels.",
                           group="pipeline", commands=("trace", "fit"), api="str | int | None",
                           variants={"fit": {"default": "off", "show_default": True}})

    # -- the workload knobs: a preset's values overridden (None keeps the preset's) --------------------------
    frames: int | None = knob(None, "Video frames (rounded to 4k+1 as the pipeline does).", kind="int", group="workload",
                              commands=_ALL, api="int | None",
                              variants={"sweep": {"kind": "str", "help": _LIST.format("frame counts", "17,33,49")}})
    height: int | None = knob(None, "Height in pixels.", kind="int", group="workload", commands=_ALL, api="int | None",
                              variants={"sweep": {"kind": "str", "help": _LIST.format("heights in pixels", "480,720")}})
    width: int | None = knob(None, "Width in pixels.", kind="int", group="workload", commands=_ALL, api="int | None",
                             variants={"sweep": {"kind": "str", "help": _LIST.format("widths in pixels", "832,1280")}})
    steps: int | None = knob(None, "Denoising steps.", kind="int", group="workload", commands=_ALL, api="int | None",
                             variants={"sweep": {"kind": "str", "help": "Comma-separated denoising step counts."}})
    text_len: int | None = knob(None, "Text-encoder sequence length.", kind="int", group="workload", commands=_ALL,
                                api="int | None", variants={"sweep": {"kind": "str", "help": "Comma-separated text lengths."}})
    batch: int | None = knob(None, "Videos (images) per prompt batch.", kind="int", group="workload", commands=_ALL,
                             api="int | None", variants={"sweep": {"kind": "str", "help": "Comma-separated batch sizes."}})
    guidance_scale: float | None = knob(None, "CFG scale; <= 1 means one pass per step.", kind="float", group="workload",
                                        commands=_ALL, api="float | None",
                                        variants={"sweep": {"help": "CFG scale for every point."}})

def knobs(command: str | None = None, *groups: str) -> tuple[Knob, ...]:
    """The declared knobs (name and default filled in), in declaration order; those ``command`` offers
    (its variants applied) and of ``groups`` when given."""
    out = []
    for f in fields(TraceOptions):
        k = f.metadata["knob"]
        from dataclasses import replace

        k = replace(k, name=f.name, default=None if f.default is MISSING else f.default)
        if command is not None:
            if command not in k.commands:
                continue
            k = k.for_command(command)
        if groups and k.group not in groups:
            continue
        out.append(k)
    return tuple(out)


#: every keyword of :func:`fxmeter.trace`, in the order of its signature
TRACE_KEYWORDS: tuple[str, ...] = ("model", *(k.name for k in knobs()))
#: the keywords a sweep passes unchanged to every point
SWEEP_OPTIONS: tuple[str, ...] = tuple(k.name for k in knobs() if k.sweep)
#: the workload knobs (a preset's values a user may override)
WORKLOAD_KNOBS: tuple[str, ...] = tuple(k.name for k in knobs(None, "workload"))


def defaults() -> dict[str, Any]:
    """Every option at its default (what ``fxmeter trace MODEL`` uses)."""
    return {k.name: k.default for k in knobs()}


def command_line(model: str, options: Mapping[str, Any], command: str = "trace") -> str:
    """The ``fxmeter COMMAND MODEL ...`` line that asks for ``options`` (those not at their default).

    Flags are spelt as declared; a mapping value (``efficiency``, ``price_per_hour``, ``stage_dtype``)
    as ``k=v,k=v``; a sequence as ``a,b``.  An option the command does not offer is a ValueError.
    """
    import shlex

    by_name = {k.name: k for k in knobs()}
    parts = ["fxmeter", command, model]
    for name, value in options.items():
        if name not in by_name:
            raise ValueError(f"unknown option {name!r}")
        k = by_name[name]
        if command not in k.commands:
            raise ValueError(f"`fxmeter {command}` has no {k.cli_flag}")
        k = k.for_command(command)
        if value == k.default:
            continue
        if k.kind == "flag":
            if bool(value) != (not k.invert):
                continue
            parts.append(k.cli_flag)
            continue
        if isinstance(value, Mapping):
            text = ",".join(f"{a}={b}" for a, b in value.items())
        elif isinstance(value, (list, tuple)):
            text = ",".join(str(v) for v in value)
        else:
            text = str(value)
        parts += [k.cli_flag, text]
    return " ".join(shlex.quote(p) for p in parts)
