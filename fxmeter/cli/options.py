"""Option decorators shared by several commands (one definition each)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from fxmeter.model.workload import OVERRIDABLE

F = Callable[..., Any]


def _apply(fn: F, opts: list[Callable[[F], F]]) -> F:
    for o in reversed(opts):
        fn = o(fn)
    return fn


def model_options(fn: F) -> F:
    """``--workload``, the workload knobs, ``--dtype`` and ``--config``."""
    return _apply(fn, [
        click.option("--workload", "-w", default=None, help="Workload preset (see `fxmeter workloads`); default: the model's."),
        click.option("--frames", type=int, help="Video frames (rounded to 4k+1 as the pipeline does)."),
        click.option("--height", type=int, help="Height in pixels."),
        click.option("--width", type=int, help="Width in pixels."),
        click.option("--steps", type=int, help="Denoising steps."),
        click.option("--text-len", type=int, help="Text-encoder sequence length."),
        click.option("--batch", type=int, help="Videos (images) per prompt batch."),
        click.option("--guidance-scale", type=float, help="CFG scale; <= 1 means one pass per step."),
        click.option("--dtype", default="bf16", show_default=True, help="Parameter dtype: bf16, fp16 or fp32."),
        click.option("--config", "config", type=click.Path(), default=None,
                     help="Local diffusers config.json, model_index.json or model folder."),
    ])


def overrides_from(kw: dict[str, Any]) -> dict[str, Any]:
    """Pop the workload knobs out of a command's keyword arguments."""
    return {k: kw.pop(k) for k in OVERRIDABLE if k in kw}


def output_options(fn: F) -> F:
    """``--run-id``, ``--output-root``, ``--force``."""
    return _apply(fn, [
        click.option("--run-id", default=None,
                     help="Run id ([A-Za-z0-9._-], at most 128); default: UTC timestamp + random suffix."),
        click.option("--output-root", default="tmp/profile-output", show_default=True, type=click.Path(),
                     help="Where run folders go."),
        click.option("--force", is_flag=True, help="Overwrite an existing run of the same id."),
    ])


def device_options(fn: F) -> F:
    """``--hardware``, ``--hardware-file``, ``--precision``, ``--traffic``, ``--efficiency``."""
    return _apply(fn, [
        click.option("--hardware", default=None,
                     help="Time and fit on this device, or several side by side: h100,a100,l40s (see `fxmeter hardware`)."),
        click.option("--hardware-file", type=click.Path(), default=None, help="JSON file with more devices (or one device)."),
        click.option("--precision", type=click.Choice(["bf16", "fp8", "int8"]), default="bf16", show_default=True,
                     help="Matmul precision: tensor-core peak and matmul weight bytes (int8: torchao int8 dynamic "
                          "quantization, W8A8)."),
        click.option("--traffic", type=click.Choice(["eager", "fused"]), default="eager", show_default=True,
                     help="Memory-traffic model for bytes (fused: elementwise chains fused as torch.compile would)."),
        click.option("--efficiency", default=None,
                     help="Override the kernel model: predicted seconds = the roofline at these fractions, e.g. tc=0.6,bw=0.8."),
        click.option("--attention", type=click.Choice(["sdpa", "fa2", "fa3", "cudnn", "sage"]), default="sdpa",
                     show_default=True, help="Attention kernel the time model prices (fa3: Hopper only)."),
        click.option("--attention-precision", type=click.Choice(["bf16", "fp8", "int8"]), default="bf16",
                     show_default=True, help="fp8: FA3/cuDNN fp8 attention; int8: SageAttention's INT8 QK."),
        click.option("--compile", "compile_", is_flag=True,
                     help="torch.compile: fused traffic and one kernel launch per fusion group."),
        click.option("--cache-skip", type=float, default=0.0, show_default=True,
                     help="Fraction of transformer forwards a TeaCache/FBCache-style step cache skips."),
        click.option("--price-per-hour", default=None,
                     help="$ per GPU-hour: one number, or per device (h100=2.49,a100=1.29)."),
    ])


def parallel_options(fn: F) -> F:
    """``--gpus``, ``--parallel``, ``--fsdp`` (a generation on several GPUs of the ``--hardware`` device)."""
    return _apply(fn, [
        click.option("--gpus", type=int, default=None,
                     help="Run on N GPUs of the --hardware device: per-GPU work, communication and time."),
        click.option("--parallel", default=None,
                     help="ulysses=U,ring=R,cfg=C,tp=T with U*R*C*T = --gpus (default: cfg=2 with two passes per "
                          "step, the rest Ulysses)."),
        click.option("--fsdp", is_flag=True, help="Shard the denoiser's weights block by block over the GPUs (FSDP)."),
    ])


def device_kwargs(kw: dict[str, Any]) -> dict[str, Any]:
    """Pop the device options out of a command's keyword arguments (as api.trace takes them)."""
    out: dict[str, Any] = {k: kw.pop(k) for k in ("hardware", "hardware_file", "precision", "traffic", "efficiency", "attention",
                                  "attention_precision", "cache_skip", "price_per_hour", "gpus", "parallel", "fsdp")
                           if k in kw}
    if "compile_" in kw:
        out["compile"] = kw.pop("compile_")
    return out


def progress_line(text: str) -> None:
    """What a command prints on stderr before something slow (a trace)."""
    click.echo(f"fxmeter: {text}", err=True)


def pipeline_options(fn: F) -> F:
    """``--stages``, ``--stage-dtype``, ``--offload``, ``--t5-cpu``."""
    return _apply(fn, [
        click.option("--stages", default="all", show_default=True,
                     help="Pipeline stages to cost: all, or names (text_encoder,transformer,vae; transformer = every "
                          "denoising stage). The report's totals always describe the transformer."),
        click.option("--stage-dtype", default=None,
                     help="A stage's dtype instead of the pipeline's, e.g. vae=bf16 (Wan loads its VAE in fp32)."),
        click.option("--offload", default="none", show_default=True,
                     help="Residency policy: none, model (enable_model_cpu_offload), sequential "
                          "(enable_sequential_cpu_offload), wan (Wan generate.py --offload_model True)."),
        click.option("--t5-cpu", "t5_cpu", is_flag=True,
                     help="Wan's --t5_cpu: the text encoder runs on the host CPU (no device memory; its time not modeled)."),
    ])
