"""fxmeter: what a diffusion transformer costs, derived from its real torch.fx graph.

``fxmeter.trace("wan2.1-t2v-14b", workload="720p")`` returns a :class:`Report`.
Heavy imports (torch, diffusers) happen only when a model is traced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from fxmeter.model.workload import Workload
    from fxmeter.report.files import Report

__all__ = ["__version__", "trace", "Report"]

#: Every keyword :func:`trace` takes (the order of its signature).
TRACE_KEYWORDS = (
    "model", "workload", "config", "dtype", "run_id", "strict", "cache", "replicate", "include_nodes",
    "hardware", "hardware_file", "precision", "traffic", "efficiency", "batched_cfg", "attention",
    "attention_precision", "compile", "cache_skip", "price_per_hour", "gpus", "parallel", "fsdp", "rules",
    "stages", "stage_dtype", "offload", "t5_cpu",
    "frames", "height", "width", "steps", "text_len", "batch", "guidance_scale",
)


def trace(
    model: str | None = None,
    workload: str | Workload | None = None,
    *,
    config: str | Path | None = None,
    dtype: str = "bf16",
    run_id: str | None = None,
    strict: bool = False,
    cache: bool = True,
    replicate: bool = True,
    include_nodes: bool = True,
    hardware: str | Sequence[str] | None = None,
    hardware_file: str | Path | None = None,
    precision: str = "bf16",
    traffic: str = "eager",
    efficiency: str | dict[str, float] | None = None,
    batched_cfg: bool = False,
    attention: str = "sdpa",
    attention_precision: str = "bf16",
    compile: bool = False,
    cache_skip: float = 0.0,
    price_per_hour: str | float | Mapping[str, float] | None = None,
    gpus: int | None = None,
    parallel: str | None = None,
    fsdp: bool = False,
    rules: Mapping[str, Any] | None = None,
    stages: str | Sequence[str] | None = None,
    stage_dtype: str | Mapping[str, str] | None = None,
    offload: str = "none",
    t5_cpu: bool = False,
    frames: int | None = None,
    height: int | None = None,
    width: int | None = None,
    steps: int | None = None,
    text_len: int | None = None,
    batch: int | None = None,
    guidance_scale: float | None = None,
    **unknown: Any,
) -> Report:
    """Trace ``model`` for ``workload`` and return the :class:`~fxmeter.report.Report`.

    Example: ``fxmeter.trace("wan2.1-t2v-14b", workload="720p", steps=30)``.

    Args:
        model: a registered model id (``fxmeter models``), or None with ``config``.
        workload: a preset name (``fxmeter workloads``) or a :class:`~fxmeter.workload.Workload`;
            the model's default preset when None.
        config: a local diffusers config.json (or a folder with transformer/config.json).
        dtype: deployment dtype of the parameters (bf16, fp16, fp32).
        run_id: the report's id (default: a UTC timestamp).
        strict: raise :class:`~fxmeter.errors.UnmodeledOpError` if any op has no rule.
        cache: use the symbolic traces shipped in the package and the user cache (and store
            new traces there); False traces now and stores nothing.
        replicate: trace one instance of each repeated block list and replicate it.
        include_nodes: list every costed graph node in the report.
        hardware: a device of ``fxmeter hardware`` (or of ``hardware_file``), or several
            (``"h100,a100"`` or a list: the first is the report's main device, all are compared
            in ``devices``): adds bound and predicted seconds, the fit check and ``hardware``.
        hardware_file: a JSON file with more devices (``fxmeter/data/hardware.json`` shape).
        precision: bf16, fp8 or int8 (torchao int8 dynamic quantization, W8A8): the tensor-core
            peak of matmul/conv nodes and the weight bytes (fp8, int8: matmul/conv weights in 1 byte each).
        traffic: eager (every op reads its inputs, writes its output) or fused.
        efficiency: fractions of the peaks, e.g. ``"tc=0.6,bw=0.8"``: the predicted seconds are
            then the roofline at them instead of the kernel model's.
        batched_cfg: run CFG as one forward of twice the batch (evaluated at 2x the batch:
            activation memory doubles; batch-independent work runs once per step).
        attention: the attention kernel the kernel model prices: sdpa, fa2, fa3, cudnn, sage.
        attention_precision: bf16, fp8 (FA3/cuDNN fp8) or int8 (SageAttention's INT8 QK).
        compile: torch.compile: fused traffic and one kernel launch per fusion group.
        cache_skip: the fraction of transformer forwards a TeaCache/FBCache-style cache skips.
        price_per_hour: $ per GPU-hour (one number, or ``"h100=2.49,a100=1.29"``).
        rules: a per-call rule overlay, as FlopCounterMode's ``custom_mapping``: aten target
            (``"aten.linear.default"``) -> a rule function ``OpCall -> Cost`` (or a
            ``fxmeter.rules.Rule``); used instead of the registry's for those targets.
        gpus: run on this many GPUs of the ``hardware`` device: the report gains ``deployment``
            (per-GPU work, memory, communication, time and parallel efficiency).
        parallel: ``"ulysses=U,ring=R,cfg=C,tp=T"`` (U*R*C*T = gpus); None: cfg=2 when the
            workload runs two passes per step, the rest Ulysses.
        fsdp: shard the denoiser's weights block by block over the GPUs.
        frames, height, width, steps, text_len, batch, guidance_scale: override the
            preset's knob (None keeps the preset's value).
        stages: the pipeline stages to cost besides the transformer (``report.pipeline``):
            None / ``"all"``, or names such as ``"text_encoder,vae"``.
        stage_dtype: a component's dtype instead of the pipeline's (``"vae=bf16"``).
        offload: residency policy: none, model, sequential, or wan (Wan's generate.py).
        t5_cpu: Wan's ``--t5_cpu`` (the text encoder on the host CPU).

    Raises:
        FxmeterError: a bad argument (one clear line; an unknown keyword names the
            closest accepted one), an unknown model or workload, a failed trace.
    """
    from fxmeter.errors import check_keywords

    check_keywords(unknown, TRACE_KEYWORDS, "fxmeter.trace")
    from fxmeter.api import trace as _trace

    return _trace(
        model, workload, config=config, dtype=dtype, run_id=run_id, strict=strict, cache=cache, replicate=replicate,
        include_nodes=include_nodes, hardware=hardware, hardware_file=hardware_file,
        precision=precision, traffic=traffic, efficiency=efficiency, batched_cfg=batched_cfg, attention=attention,
        attention_precision=attention_precision, compile=compile, cache_skip=cache_skip, price_per_hour=price_per_hour,
        rules=rules, gpus=gpus, parallel=parallel, fsdp=fsdp,
        frames=frames, height=height, width=width, steps=steps, text_len=text_len, batch=batch,
        guidance_scale=guidance_scale, stages=stages, stage_dtype=stage_dtype, offload=offload, t5_cpu=t5_cpu,
    )


def __getattr__(name: str) -> Any:
    if name == "Report":
        from fxmeter.report.files import Report

        return Report
    raise AttributeError(name)
