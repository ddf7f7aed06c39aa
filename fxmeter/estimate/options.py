"""Options that change the numbers: one frozen record that travels with every result.

Any consumer can tell two results apart by their options (``verify`` refuses to reuse a
report made with options that change what it compares; report.json records them as
``trace.options``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fxmeter.errors import FxmeterError, WorkloadError

PRECISIONS = ("bf16", "fp8", "int8")
TRAFFIC = ("eager", "fused")


@dataclass(frozen=True)
class Options:
    """How a generation is estimated (besides the model and the workload).

    Attributes:
        dtype: parameter dtype of the deployment (bfloat16, float16, float32).
        precision: matmul precision on the device: ``bf16``, ``fp8`` or ``int8`` (torchao's int8
            dynamic quantization, W8A8): tensor-core peak of matmul/conv nodes, and 1 byte per
            matmul/conv weight.
        traffic: ``eager`` (every op reads its inputs, writes its output) or ``fused``.
        batched_cfg: run the two CFG passes as one forward of twice the batch.
        full_trace: every block traced (no replication).
        hardware: the device's name, or None (no time, no fit).
        efficiency: user fractions of the peaks (``tc``, ``cuda``, ``bw``): the predicted
            seconds then are the roofline at those fractions instead of the kernel model's.
        attention: the attention kernel the kernel model prices (sdpa, fa2, fa3, cudnn, sage).
        attention_precision: bf16, fp8 (FA3/cuDNN fp8) or int8 (SageAttention's INT8 QK).
        compile: torch.compile: fused traffic and one kernel launch per fusion group.
        cache_skip: the fraction of transformer forwards a TeaCache/FBCache-style cache skips.
        gpus: GPUs of the deployment (``--gpus``; None: one GPU, no deployment section).
        parallel: the resolved plan (``ulysses=U,ring=R,cfg=C,tp=T``) when ``gpus`` is set.
        fsdp: the denoiser's weights sharded block by block over the GPUs (``--fsdp``).
        stages: the pipeline stages asked for (``--stages``; None: all of them).
        stage_dtypes: dtypes that replace the pipeline's for some stages (``--stage-dtype vae=fp32``).
        offload: the residency policy (``--offload``: none, model, sequential, wan).
        t5_cpu: the text encoder runs on the host CPU (Wan's ``--t5_cpu``).
        runtime: whose code runs the pipeline, for its dtype policy (``diffusers``, ``wan``: Wan's
            repository with the DiT's parameters in float32, ``wan-bf16``: with ``--convert_model_dtype``).
        vae_tiling: ``vae.enable_tiling()``: None (off), 0 (the VAE's own tile sizes) or a tile size in pixels.
        quantize_on_device: ``--precision`` applied on the GPU after loading the checkpoint there in its dtype
            (torchao ``quantize_`` after ``pipe.to("cuda")``): the process peak includes the unquantized weights.
        fuse_qkv: ``pipe.fuse_qkv_projections()``: the fused Q/K/V copies are loaded beside the projections.
    """

    dtype: str = "bfloat16"
    precision: str = "bf16"
    traffic: str = "eager"
    batched_cfg: bool = False
    full_trace: bool = False
    hardware: str | None = None
    efficiency: Mapping[str, float] | None = field(default=None)
    attention: str = "sdpa"
    attention_precision: str = "bf16"
    compile: bool = False
    cache_skip: float = 0.0
    gpus: int | None = None
    parallel: str | None = None
    fsdp: bool = False
    stages: tuple[str, ...] | None = None
    stage_dtypes: Mapping[str, str] | None = None
    offload: str = "none"
    t5_cpu: bool = False
    runtime: str = "diffusers"
    vae_tiling: int | None = None
    quantize_on_device: bool = False
    fuse_qkv: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise FxmeterError(f"unknown precision {self.precision!r}; use {' or '.join(PRECISIONS)}")
        if self.traffic not in TRAFFIC:
            raise WorkloadError(f"unknown traffic model {self.traffic!r}; use eager or fused")
        if isinstance(self.cache_skip, bool) or not isinstance(self.cache_skip, (int, float)) \
                or not 0 <= self.cache_skip < 1:
            raise WorkloadError(f"--cache-skip must be a fraction in [0, 1), got {self.cache_skip!r}")

    @property
    def attention_peak(self) -> str:
        """The tensor-core precision attention runs at (the roofline's peak for it): SageAttention's QK^T is INT8."""
        return "int8" if self.attention == "sage" else self.attention_precision

    def record(self) -> dict[str, Any]:
        """``trace.options`` of report.json (``gpus``, ``parallel``, ``fsdp`` only for a multi-GPU deployment)."""
        out = {
            "dtype": self.dtype, "precision": self.precision, "traffic": self.traffic, "batched_cfg": self.batched_cfg,
            "hardware": self.hardware, "efficiency": dict(sorted(self.efficiency.items())) if self.efficiency else None,
            "full_trace": self.full_trace, "attention": self.attention, "attention_precision": self.attention_precision,
            "compile": self.compile, "cache_skip": self.cache_skip,
            "stages": list(self.stages) if self.stages is not None else "all",
            "stage_dtypes": dict(sorted(self.stage_dtypes.items())) if self.stage_dtypes else None,
            "offload": self.offload, "t5_cpu": self.t5_cpu,
        }
        if self.runtime != "diffusers":
            out["runtime"] = self.runtime
        if self.vae_tiling is not None:
            out["vae_tiling"] = self.vae_tiling
        if self.quantize_on_device:
            out["quantize_on_device"] = True
        if self.fuse_qkv:
            out["fuse_qkv"] = True
        if self.gpus is not None:
            out.update(gpus=self.gpus, parallel=self.parallel, fsdp=self.fsdp)
        return out


def check_traffic(name: str | None) -> str:
    """Validate a ``--traffic`` value."""
    key = (name or "eager").strip().lower()
    if key not in TRAFFIC:
        raise WorkloadError(f"unknown traffic model {name!r}; use eager or fused")
    return key
