"""Memory of a generation: weights at the deployment precision, peak activations, the fit check, and the
peak as a PyTorch process holds it.

Pure steps over typed values: weights come from the traced checkpoint bytes
(:class:`~fxmeter.estimate.evaluate.Weights`), activations from the liveness walk of one
forward (:class:`~fxmeter.estimate.evaluate.Activations`).  On top of them, the process model:
the caching allocator's rounding (allocated vs reserved), torch's cuBLAS workspace, the CUDA context,
NCCL's buffers (:func:`process_memory`, :func:`predicted_peak`), the runtime's dtype policy
(``--runtime``: Wan's repository keeps its DiT in float32), VAE tiling (``--vae-tiling``) and host RAM;
every constant with its source beside it.

Why one long module: every number that turns tensors into a process's memory lives here with its
source, so that a reader checks them in one place and ``validate`` / ``fit`` / the report read one
function (:func:`predicted_peak`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fxmeter.estimate.evaluate import Weights
from fxmeter.estimate.headroom import headroom

GIB = 2**30
#: ``--precision`` values that store matmul/conv weights in one byte per parameter, and the dtype they report.
ONE_BYTE_DTYPES = {"fp8": "float8_e4m3fn", "int8": "int8"}


@dataclass(frozen=True)
class WeightMemory:
    """Weight bytes of one model at a precision."""

    weight_bytes: int
    weight_bytes_by_dtype: Mapping[str, int]
    parameters_by_dtype: Mapping[str, int]
    precision: str  # "as traced" or what --precision changed

    def __add__(self, other: WeightMemory) -> WeightMemory:
        return WeightMemory(self.weight_bytes + other.weight_bytes, _add(self.weight_bytes_by_dtype, other.weight_bytes_by_dtype),
                            _add(self.parameters_by_dtype, other.parameters_by_dtype), self.precision)


def _add(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return dict(sorted(out.items()))


def at_precision(w: Weights, precision: str) -> WeightMemory:
    """Weight bytes with matmul/conv weights at ``precision``.

    ``bf16`` keeps the traced dtypes; ``fp8`` stores every matmul/conv weight of the traced
    dtype in one byte per parameter (float8_e4m3fn), ``int8`` likewise (int8: torchao's int8
    dynamic quantization keeps int8 weights with a per-channel scale, not counted), and both
    leave biases, norms, embeddings and the modules diffusers keeps in fp32 as they are.
    """
    one_byte = ONE_BYTE_DTYPES.get(precision)
    if one_byte is None:
        return WeightMemory(w.weight_bytes, dict(w.weight_bytes_by_dtype), dict(w.parameters_by_dtype), "as traced")
    by_dtype = dict(w.weight_bytes_by_dtype)
    by_dtype[w.dtype] = by_dtype.get(w.dtype, 0) - w.matmul_bytes
    by_dtype[one_byte] = by_dtype.get(one_byte, 0) + w.matmul_parameters
    by_dtype = {k: v for k, v in sorted(by_dtype.items()) if v}
    return WeightMemory(sum(by_dtype.values()), by_dtype, dict(w.parameters_by_dtype),
                        f"{precision}: {w.matmul_parameters:,} matmul/conv weight parameters in 1 byte each")


def with_fused_qkv(w: Weights, params: int, nbytes: int) -> Weights:
    """``w`` plus the ``params`` parameters (``nbytes`` as traced) that ``fuse_qkv_projections()`` adds
    (:mod:`fxmeter.model.fusion`), taken as matmul weights (biases with them): ``--precision`` stores them too."""
    from dataclasses import replace

    by_dtype = dict(w.weight_bytes_by_dtype)
    by_dtype[w.dtype] = by_dtype.get(w.dtype, 0) + nbytes
    per = dict(w.parameters_by_dtype)
    per[w.dtype] = per.get(w.dtype, 0) + params
    return replace(w, weight_bytes=w.weight_bytes + nbytes, weight_bytes_by_dtype=by_dtype, parameters_by_dtype=per,
                   matmul_parameters=w.matmul_parameters + params, matmul_bytes=w.matmul_bytes + nbytes)


@dataclass(frozen=True)
class Fit:
    """Weights + peak activations against a device's memory."""

    fits: bool
    required_bytes: int
    device_bytes: int
    statement: str

    @property
    def headroom_bytes(self) -> int:
        """Device memory left after weights + peak activations (negative: short by that much)."""
        return self.device_bytes - self.required_bytes


def fit(weight_bytes: int, activation_bytes: int, device_bytes: int, device: str) -> Fit:
    """The fit check with a one-line statement."""
    need = weight_bytes + activation_bytes
    ok = need <= device_bytes
    if ok:
        text = (f"fits on one {device}: weights {weight_bytes / GIB:.1f} GiB + peak activations "
                f"{activation_bytes / GIB:.1f} GiB = {need / GIB:.1f} GiB of {device_bytes / GIB:.0f} GiB, "
                f"{headroom(need, device_bytes).text()}")
    else:
        text = (f"does NOT fit on one {device}: weights {weight_bytes / GIB:.1f} GiB + peak activations "
                f"{activation_bytes / GIB:.1f} GiB = {need / GIB:.1f} GiB > {device_bytes / GIB:.0f} GiB "
                f"(short by {(need - device_bytes) / GIB:.1f} GiB: offload, fp8 weights, or more GPUs)")
    return Fit(ok, need, device_bytes, text)


# -- what a real process allocates ------------------------------------------------------------------
#: Each constant of the process model with its source.  ``allocated`` is what
#: ``torch.cuda.max_memory_allocated()`` counts (tensors, the cuBLAS workspace); ``reserved`` what
#: ``torch.cuda.max_memory_reserved()`` counts (the caching allocator's segments); ``device`` what
#: the process holds on the GPU (``nvidia-smi``): reserved + the CUDA context + NCCL's own buffers.
CACHING_ALLOCATOR = ("pytorch/pytorch c10/cuda/CUDACachingAllocator.cpp (constants kMinBlockSize, kSmallSize, "
                     "kSmallBuffer, kMinLargeAlloc, kLargeBuffer, kRoundLarge and get_allocation_size; the same "
                     "values in c10/core/AllocatorConfig.h)")
K_MIN_BLOCK = 512  # every request is rounded up to a multiple of 512 bytes
K_SMALL_SIZE = 1 << 20  # requests <= 1 MiB are "small"
K_SMALL_BUFFER = 2 << 20  # small requests are packed in 2 MiB segments
K_MIN_LARGE_ALLOC = 10 << 20  # requests between 1 MiB and 10 MiB get a 20 MiB segment
K_LARGE_BUFFER = 20 << 20
K_ROUND_LARGE = 2 << 20  # larger requests: a segment of the request rounded up to 2 MiB
#: torch's cuBLAS workspace per handle (one handle per device and stream on the main thread)
CUBLAS_WORKSPACE_HOPPER = 4096 * 8 * 1024  # 33,554,432: ":4096:8", compute capability 9.x / 10.x / 12.x
CUBLAS_WORKSPACE_DEFAULT = 4096 * 1024 * 2 + 16 * 1024 * 8  # 8,519,680: ":4096:2:16:8"
CUBLAS_SOURCE = ("pytorch/pytorch aten/src/ATen/cuda/CublasHandlePool.cpp parseChosenWorkspaceSize(): "
                 "':4096:2:16:8 default, 32MiB for Hopper and Blackwell' (CUBLAS_WORKSPACE_CONFIG overrides); "
                 "allocated through the caching allocator (getNewWorkspace), so it counts as allocated")
#: the CUDA context with lazy module loading (torch sets CUDA_MODULE_LOADING=LAZY since 1.13)
CUDA_CONTEXT_LAZY = 287_047_680
CUDA_CONTEXT_EAGER = 666_632_192
CUDA_CONTEXT_SOURCE = ("pytorch/pytorch#86509 (torch 1.13 sets CUDA_MODULE_LOADING=LAZY), measured total-free after "
                       "one small tensor: 287,047,680 bytes lazy vs 666,632,192 with CUDA_MODULE_LOADING=DEFAULT; "
                       "reports of 300-400 MB per process (pytorch/pytorch#107667, #109888). Not in torch's "
                       "allocated or reserved counters: nvidia-smi shows it")
#: NCCL's per-peer, per-channel buffers of the Simple protocol
NCCL_BUFFSIZE = 4 << 20
NCCL_CHANNELS = 2  # assumption: NCCL picks the channel count from the topology at run time
NCCL_SOURCE = ("NCCL_BUFFSIZE default 4194304 (4 MiB), NCCL docs, Environment Variables "
               "(https://docs.nvidia.com/deeplearning/nccl/user-guide/docs/env.html#nccl-buffsize); buffers per "
               "GPU = NCCL_BUFFSIZE x channels x connected peers, each communicator its own, allocated by NCCL "
               "(cudaMalloc/cuMem), outside torch's counters; the channel count (2 here) is an assumption")
WORKSPACE_NOTES = (
    "FlashAttention / SDPA: no workspace beyond the softmax log-sum-exp, an output of the traced attention node "
    "(already in the liveness walk)",
    "cuDNN convolution workspaces (the VAE's conv3d) are chosen by cuDNN's heuristics at run time: not counted",
)
EXPANDABLE_NOTE = ("PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True maps 2 MiB pages into one growing segment per "
                   "stream: no 20 MiB buffers for 1-10 MiB requests and no freed block too small to reuse; reserved is "
                   "then each live set rounded to 2 MiB pages")


def round_request(size: int) -> int:
    """A request's size as the caching allocator counts it (``round_size``: a multiple of 512 bytes, at least 512)."""
    if size <= 0:
        return 0
    return -(-size // K_MIN_BLOCK) * K_MIN_BLOCK


def segment_bytes(size: int) -> int:
    """The segment ``cudaMalloc`` gets for a request the cached blocks cannot serve (``get_allocation_size``)."""
    if size <= 0:
        return 0
    if size <= K_SMALL_SIZE:
        return K_SMALL_BUFFER
    if size < K_MIN_LARGE_ALLOC:
        return K_LARGE_BUFFER
    return -(-size // K_ROUND_LARGE) * K_ROUND_LARGE


def cublas_workspace(compute_capability: str | None) -> int:
    """torch's cuBLAS workspace of one handle on a device of this compute capability (0: not an NVIDIA device)."""
    if compute_capability is None or not compute_capability[:1].isdigit():
        return 0
    major = int(compute_capability.split(".")[0])
    return CUBLAS_WORKSPACE_HOPPER if major in (9, 10, 12) else CUBLAS_WORKSPACE_DEFAULT


def nccl_buffers(group_sizes: tuple[int, ...], channels: int = NCCL_CHANNELS) -> int:
    """NCCL's buffers on one GPU: per communicator of P > 1 ranks, P - 1 peers x channels x NCCL_BUFFSIZE."""
    return sum((p - 1) * channels * NCCL_BUFFSIZE for p in group_sizes if p > 1)


#: what a measured peak is: ``torch.cuda.max_memory_allocated``, ``max_memory_reserved``, or what ``nvidia-smi``
#: shows (reserved + the CUDA context + NCCL buffers)
PEAK_KINDS = ("allocated", "reserved", "nvidia-smi")


@dataclass(frozen=True)
class ProcessMemory:
    """Peak memory per GPU of one generation as a PyTorch process holds it, at the peak stage.

    ``peak_allocated_bytes``: ``torch.cuda.max_memory_allocated()``; ``peak_reserved_bytes``:
    ``torch.cuda.max_memory_reserved()``; ``peak_device_bytes``: what the process holds on the GPU
    (reserved + CUDA context + NCCL buffers, ``nvidia-smi``).  The fit check uses the device figure.
    """

    stage: str
    weights: int  # allocated: the weights resident during the peak stage
    activations: int  # allocated: that stage's live activations (liveness walk), each request rounded to 512 bytes
    workspaces: int  # allocated: the cuBLAS workspace
    allocator_slack: int  # reserved - allocated: segment rounding and the mid-size pool
    context: int  # device only: the CUDA context
    nccl: int  # device only: NCCL's buffers
    host_bytes: int  # host RAM the policy keeps (offloaded weights, a text encoder on the CPU and its activations)
    pinned_host_bytes: int
    expandable_segments: bool
    runtime: str
    notes: tuple[str, ...] = ()

    @property
    def peak_allocated_bytes(self) -> int:
        return self.weights + self.activations + self.workspaces

    @property
    def peak_reserved_bytes(self) -> int:
        return self.peak_allocated_bytes + self.allocator_slack

    @property
    def peak_device_bytes(self) -> int:
        return self.peak_reserved_bytes + self.context + self.nccl

    def peak_of(self, kind: str) -> int:
        """The peak a measurement of ``kind`` reads (:data:`PEAK_KINDS`; any other kind: reserved, the middle one)."""
        if kind == "allocated":
            return self.peak_allocated_bytes
        if kind == "nvidia-smi":
            return self.peak_device_bytes
        return self.peak_reserved_bytes

    def breakdown(self) -> dict[str, int]:
        return {"weights": self.weights, "activations": self.activations, "workspaces": self.workspaces,
                "allocator_slack": self.allocator_slack, "context": self.context, "nccl": self.nccl}

    def to_dict(self) -> dict[str, object]:
        return {"stage": self.stage, "peak_allocated_bytes": self.peak_allocated_bytes,
                "peak_reserved_bytes": self.peak_reserved_bytes, "peak_device_bytes": self.peak_device_bytes,
                "breakdown": self.breakdown(), "host_bytes": self.host_bytes, "pinned_host_bytes": self.pinned_host_bytes,
                "expandable_segments": self.expandable_segments, "runtime": self.runtime, "notes": list(self.notes)}


def process_memory(stage: str, weights: int, activations: int, *, compute_capability: str | None,
                   nccl_groups: tuple[int, ...] = (), host_bytes: int = 0, pinned_host_bytes: int = 0,
                   expandable_segments: bool = False, runtime: str = "diffusers", lazy_loading: bool = True,
                   notes: tuple[str, ...] = ()) -> ProcessMemory:
    """The allocated / reserved / device peak of one stage from its resident weights and live activations.

    Allocated: weights and activations each rounded up to 512 bytes (a sum of tensors, so a lower bound
    of the per-tensor rounding) + the cuBLAS workspace.  Reserved, without expandable segments: the
    weights and the activations each rounded up to 2 MiB segments, the workspace in its own segment, and
    one 20 MiB segment for the 1-10 MiB requests (biases, norms, the small activations); with
    expandable segments: the same live sets rounded to 2 MiB pages without the 20 MiB segment.
    """
    ws = round_request(cublas_workspace(compute_capability)) if weights or activations else 0
    w, a = round_request(weights), round_request(activations)
    allocated = w + a + ws
    if expandable_segments:
        reserved = _pages(w) + _pages(a) + _pages(ws)
    else:
        reserved = segment_bytes(w) + segment_bytes(a) + segment_bytes(ws) + (K_LARGE_BUFFER if allocated else 0)
    context = (CUDA_CONTEXT_LAZY if lazy_loading else CUDA_CONTEXT_EAGER) if allocated else 0
    return ProcessMemory(stage, w, a, ws, max(0, reserved - allocated), context, nccl_buffers(nccl_groups),
                         host_bytes, pinned_host_bytes, expandable_segments, runtime, notes)


def _pages(n: int) -> int:
    return -(-n // K_ROUND_LARGE) * K_ROUND_LARGE if n > 0 else 0


# -- the runtime's dtype policy ---------------------------------------------------------------------
RUNTIMES = ("diffusers", "wan", "wan-bf16")
RUNTIME_DESCRIPTIONS = {
    "diffusers": "the diffusers pipeline: every component in the dtype fxmeter traced it in",
    "wan": ("Wan's own repository (generate.py): WanModel.from_pretrained keeps the DiT's parameters in float32 and "
            "runs it under torch.cuda.amp.autocast(dtype=param_dtype) (wan/text2video.py WanT2V.__init__ / generate); "
            "T5 in bfloat16 (config.t5_dtype), the VAE in float32 (WanVAE dtype=torch.float), CLIP in float16"),
    "wan-bf16": "Wan's repository with --convert_model_dtype (Wan2.2 generate.py): the DiT's parameters converted to "
                "config.param_dtype (bfloat16); the rest as 'wan'",
}
RUNTIME_SOURCE = ("Wan-Video/Wan2.1 wan/text2video.py (WanModel.from_pretrained(checkpoint_dir), no dtype conversion; "
                  "generate() under amp.autocast(dtype=self.param_dtype)); Wan-Video/Wan2.2 generate.py "
                  "--convert_model_dtype")


def effective_runtime(runtime: str, fsdp: bool) -> str:
    """``wan-bf16`` with FSDP keeps the DiT in float32: Wan2.2's ``_configure_model`` applies
    ``--convert_model_dtype`` only without ``--dit_fsdp`` ("Only works without FSDP", wan/text2video.py)."""
    return "wan" if runtime == "wan-bf16" and fsdp else runtime


def check_runtime(name: str | None) -> str:
    """A ``--runtime`` value, checked (one-line :class:`WorkloadError` otherwise)."""
    from fxmeter.errors import WorkloadError

    key = (name or "diffusers").strip().lower()
    if key not in RUNTIMES:
        raise WorkloadError(f"unknown --runtime {name!r}; use one of {', '.join(RUNTIMES)}")
    return key


#: Wan2.2's own WanModel.forward: one timestep per token, its embeddings in float32 (the source of
#: :func:`runtime_activation`)
WAN22_TIMESTEPS_SOURCE = (
    "Wan-Video/Wan2.2 @42bf4cf wan/modules/model.py WanModel.forward: `if t.dim() == 1: t = t.expand(t.size(0), "
    "seq_len)`; e = time_embedding(sinusoidal_embedding_1d(freq_dim, t.flatten())).float() [B, L, dim] and e0 = "
    "time_projection(e).unflatten(2, (6, dim)) [B, L, 6, dim] under autocast(float32) ('assert e.dtype == "
    "torch.float32 and e0.dtype == torch.float32'), both live through every block (e feeds the head); "
    "WanAttentionBlock.forward: `e = (self.modulation.unsqueeze(0) + e).chunk(6, dim=2)` under autocast(float32), one "
    "more [B, L, 6, dim] float32 tensor live until the block returns; wan/distributed/sequence_parallel.py "
    "sp_dit_forward computes e and e0 over the whole padded sequence on every rank and keeps torch.chunk views of "
    "them (the whole tensors stay allocated), the blocks then run on the rank's chunk")


@dataclass(frozen=True)
class RuntimeActivation:
    """Live bytes a runtime's own code holds during a denoiser forward beyond the traced diffusers graph's.

    ``whole_per_token``: bytes per token over the whole (padded) sequence on every GPU; ``block_per_token``: bytes
    per token of the GPU's share of the sequence, live during each block (both on top of the traced peak, which
    lies inside a block)."""

    tokens: int
    whole_per_token: int
    block_per_token: int
    note: str

    def bytes(self, sp: int = 1) -> int:
        share = -(-self.tokens // sp)
        return share * sp * self.whole_per_token + share * self.block_per_token


def runtime_activation(runtime: str, config: Mapping[str, Any], tokens: int, batch: int = 1) -> RuntimeActivation | None:
    """What ``--runtime wan``/``wan-bf16`` holds beyond the traced graph for a Wan2.2 denoiser (two experts or
    per-token timesteps in its pipeline config); None for every other runtime and model (Wan2.1's repository keeps
    ``t`` of shape [B]: e0 is [B, 6, dim], as diffusers traces it).

    Wan2.2's repository expands the timestep to every token for every model (:data:`WAN22_TIMESTEPS_SOURCE`):
    e [B, L, dim] and e0 [B, L, 6, dim] in float32 over the whole sequence, and each block's modulation sum
    [B, L, 6, dim] in float32 over the GPU's share.  diffusers traces the two-expert models with one timestep per
    sample (none of these); for per-token models (TI2V-5B, ``expand_timesteps``) it already holds e and e0 per token
    in the model's dtype and the block's sum in float32, so only the float32 upgrade of e and e0 is added."""
    if runtime not in ("wan", "wan-bf16") or config.get("_class_name") != "WanTransformer3DModel":
        return None
    from fxmeter.model.adapters import adapter_for_class

    # the Wan adapter's variant of this config (its reading of the pipeline config: expand_timesteps, two experts)
    variant = adapter_for_class("WanTransformer3DModel", dict(config)).name
    expand = variant == "wan-ti2v"
    if not expand and variant not in ("wan-experts", "wan-i2v-experts"):
        return None
    dim = int(config["num_attention_heads"]) * int(config["attention_head_dim"])
    if expand:
        whole, block = batch * 7 * dim * 2, 0
        what = "e and e0 per token in float32 where diffusers holds them in the model's dtype (7 x dim x 2 bytes a token)"
    else:
        whole, block = batch * 7 * dim * 4, batch * 6 * dim * 4
        what = ("e and e0 per token in float32 (7 x dim x 4 bytes a token, the whole sequence) and each block's "
                "modulation sum (6 x dim x 4 bytes a token of the GPU's share); diffusers keeps one timestep per sample")
    return RuntimeActivation(tokens, whole, block, f"--runtime {runtime}: Wan2.2's WanModel.forward holds {what} "
                             f"({WAN22_TIMESTEPS_SOURCE})")


def runtime_weight_bytes(w: WeightMemory, *, runtime: str, denoiser: bool, component: str) -> int:
    """A component's weight bytes under the runtime's dtype policy.

    ``wan``: the DiT's parameters in float32 (4 bytes each, whatever ``--precision``); ``wan-bf16``:
    2 bytes each; the CLIP image encoder in float16 (Wan's ``clip_dtype``); every other component
    (T5 in bf16, the VAE in fp32) as the diffusers pipeline loads it.
    """
    params = sum(w.parameters_by_dtype.values())
    if runtime == "wan" and denoiser:
        return 4 * params
    if runtime == "wan-bf16" and denoiser:
        return 2 * params
    if runtime in ("wan", "wan-bf16") and component == "image_encoder":
        return 2 * params
    return w.weight_bytes


def with_runtime(w: WeightMemory, runtime: str, denoiser: bool, component: str) -> WeightMemory:
    """``w`` as the runtime loads it (:func:`runtime_weight_bytes`); diffusers: unchanged."""
    if runtime == "diffusers":
        return w
    n = runtime_weight_bytes(w, runtime=runtime, denoiser=denoiser, component=component)
    if n == w.weight_bytes:
        return w
    dtype = "float32" if n == 4 * sum(w.parameters_by_dtype.values()) else "bfloat16"
    if component == "image_encoder":
        dtype = "float16"
    return WeightMemory(n, {dtype: n}, dict(w.parameters_by_dtype),
                        f"--runtime {runtime}: {sum(w.parameters_by_dtype.values()):,} parameters in {dtype} "
                        f"({RUNTIME_SOURCE})")


# -- the predicted peak per GPU of an estimate ------------------------------------------------------
def host_bytes(est: Any, residency: Any) -> int:
    """Host RAM the residency keeps at its worst stage: the weights of every component not on the device
    then (offloaded copies; pageable: neither diffusers' hooks nor Wan's ``.cpu()`` pin them) plus a
    text encoder run on the host (``--t5-cpu``: its weights and its activation peak)."""
    if residency is None:
        return 0
    weights = {c: w.weight_bytes for c, w in est.component_weights.items()}
    stages = {s.name: s for s in est.pipeline}
    on_host_runs = [stages[r.stage] for r in residency.stages if r.on_host and r.stage in stages]
    host_only = sum(weights.get(s.plan.component, 0) for s in {s.plan.component: s for s in on_host_runs}.values())
    host_act = max((s.cost.activations.peak_bytes for s in on_host_runs), default=0)
    if residency.policy == "none":
        return host_only + host_act
    total = sum(weights.values())
    worst = max((total - r.resident_bytes for r in residency.stages if not r.on_host), default=total)
    return max(worst, host_only) + host_act


QUANTIZE_ON_DEVICE = ("every component is loaded on the GPU in the dtype its pipeline loads it in, then --precision "
                      "quantizes the denoisers in place (torchao quantize_ after pipe.to('cuda'), as "
                      "sayakpaul/diffusers-torchao inference/benchmark_image.py does after reset_memory and before "
                      "reading max_memory_allocated()): the peak is the larger of that load and the generation's")


def loaded_before_quantize(est: Any) -> int:
    """Weight bytes on the GPU once every component is loaded there in the dtype its pipeline loads it in, before
    ``--precision`` quantizes the denoisers in place (torchao ``quantize_`` after ``pipe.to("cuda")``, as
    sayakpaul/diffusers-torchao inference/benchmark_image.py does before reading ``max_memory_allocated()``)."""
    out = 0
    for name, w in est.component_weights.items():
        den = next((s for s in est.stages if s.plan.component == name and s.denoiser), None)
        out += den.cost.weights.weight_bytes if den is not None else w.weight_bytes
    return int(out)


def predicted_peak(est: Any, *, expandable_segments: bool = False, lazy_loading: bool = True) -> ProcessMemory:
    """The peak memory per GPU of ``est``'s generation, as a process allocates it.

    One GPU: the residency policy's peak stage (its resident weights + that stage's activation peak);
    ``--gpus N``: the deployment's per-GPU weights (FSDP shards, TP slices) and activations (the
    denoiser's split by the sequence-parallel degree; a stage outside the loop on one GPU whole), plus one
    NCCL communicator per parallel group.  Weights follow ``--runtime``'s dtype policy, the VAE decode
    ``--vae-tiling``.  h4's ``validate`` reads this one function.
    """
    opts = est.options
    hw = est.device.hw if est.device is not None else None
    cc = getattr(hw, "compute_capability", None) if hw is not None else None
    res = est.residency
    notes = [*WORKSPACE_NOTES, f"allocator: {CACHING_ALLOCATOR}", f"cuBLAS workspace: {CUBLAS_SOURCE}",
             f"CUDA context: {CUDA_CONTEXT_SOURCE}"]
    if expandable_segments:
        notes.append(EXPANDABLE_NOTE)
    groups: tuple[int, ...] = ()
    dep = getattr(est, "deployment", None)
    if dep is not None:
        p = dep.plan
        groups = tuple(g for g in (p.ulysses * p.ring, p.cfg, p.tp) if g > 1)
        if p.fsdp:
            groups = (*groups, p.gpus)
        notes.append(f"NCCL: {NCCL_SOURCE}")
        stage, w, a = f"{p.gpus} GPUs, per GPU", dep.weight_bytes_per_gpu, dep.activation_bytes_per_gpu
    elif res is not None:
        peak = res.peak
        stage, w, a = peak.stage, peak.resident_bytes, peak.activation_bytes
    else:
        stage, w, a = "transformer", est.weights.weight_bytes, est.activation_peak_bytes
    if getattr(opts, "quantize_on_device", False):
        notes.append(f"--quantize-on-device: {QUANTIZE_ON_DEVICE}")
    if opts.runtime != "diffusers":
        extra = next((s.runtime for s in est.stages if s.runtime is not None), None)
        notes.append(f"--runtime {opts.runtime}: {RUNTIME_DESCRIPTIONS[opts.runtime]}; activations as traced (autocast "
                     "keeps matmul outputs in bfloat16)" + ("" if extra is None else
                     f" plus {extra.bytes() / GIB:,.2f} GiB on one GPU: {extra.note}"))
    return process_memory(stage, w, a, compute_capability=cc, nccl_groups=groups, host_bytes=host_bytes(est, res),
                          expandable_segments=expandable_segments, runtime=opts.runtime, lazy_loading=lazy_loading,
                          notes=tuple(notes))
