"""One training step: FLOPs, memory per GPU and seconds, from the traced forward + backward graphs.

Input: the joint graphs of :func:`fxmeter.model.training.capture_training` (one block per repeated
list, plus one graph per list with two blocks); every node is costed by its ``fxmeter.rules`` rule, and
block ``k`` of a list costs what the second block added (exact: the blocks are identical).  Pure Python
over the captured records (torch is not imported here).

Memory per GPU (allocated bytes; the CUDA caching allocator's reserve on top is not modeled):

* weights: the frozen base at ``--base-precision`` (fp8: the repeated blocks' Linear weights in 1 byte but
  those whose path inside the block contains a ``--fp8-keep`` string, as musubi-tuner's ``--fp8_base
  --fp8_scaled`` quantizes its FP8_OPTIMIZATION_TARGET_KEYS less its EXCLUDE_KEYS; the rest bf16), the trainable parameters at ``param_dtype`` (fp32 master weights by
  default: trainers keep trainable parameters in fp32 under bf16 autocast);
* gradients: one per trainable parameter, in ``param_dtype``;
* optimizer states per trainable parameter (:data:`OPTIMIZERS`, each with its source);
* activations: the tensors the forward saves for the backward (the joint graph's saved tensors, exact
  bytes) plus the backward's own transient peak (a liveness walk over the traced backward graph);
  with gradient checkpointing a checkpointed block keeps only its inputs and one block's activations
  are live again while it is recomputed;
* block swap (musubi-tuner ``--blocks_to_swap N``): N blocks' weights live in host RAM and are copied
  to the GPU and back in the forward and again in the backward;
* FSDP (ZeRO-3) over G GPUs: parameters, gradients and optimizer states sharded G ways, plus one block's
  parameters gathered (and the next prefetched);
* text encoder and VAE: cached (latents and embeddings precomputed: nothing on the GPU) or resident.

Seconds per step (``predicted``: the kernel model of :mod:`fxmeter.estimate.kernels`; ``bound``: every
node at 100% of the device's peaks): forward + backward of each micro-batch, the recompute of
checkpointed blocks, the optimizer step (memory-bound: parameters, gradients and states read and
written), block-swap copies over the host link (overlapped with compute: the slower of the two per
pass), gradient all-reduce (DDP) or all-gather + reduce-scatter (FSDP) from :mod:`fxmeter.estimate.comm`.

Why one long module: the step's costs, memory and time share the extrapolated graph costs and the setup.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fxmeter.cost.analyze import node_cost
from fxmeter.cost.shapes import kernel_shape, out_dtype
from fxmeter.errors import FxmeterError
from fxmeter.estimate.hardware import Hardware
from fxmeter.estimate.kernels import KernelCall, KernelOptions, broadcast_op, kernel_time, load_kernel_model
from fxmeter.rules import Cost, OpCall

if TYPE_CHECKING:
    from fxmeter.model.capture import NodeRecord
    from fxmeter.model.training import JointGraph

GiB = 1024**3


class TrainingError(FxmeterError):
    """A training setup fxmeter cannot cost (a bad option value)."""


#: optimizer -> (bytes of state per trainable parameter, or None when it depends on shapes; source)
OPTIMIZERS: dict[str, tuple[float | None, str]] = {
    "adamw": (8.0, "torch.optim.AdamW: exp_avg and exp_avg_sq, fp32 (torch/optim/adamw.py; ZeRO, "
                   "arXiv:1910.02054 sec. 3.1: 12 bytes/param with the fp32 master copy)"),
    "adamw8bit": (2.0 + 8.0 / 2048, "bitsandbytes AdamW8bit: both states in 8 bits, block-wise quantized "
                                    "with one fp32 absmax per 2048 values (Dettmers et al., arXiv:2110.02861)"),
    "adafactor": (None, "transformers.optimization.Adafactor (Shazeer & Stern, arXiv:1804.04235): beta1=None, "
                        "factored second moment: a row and a column vector (fp32) per 2-D parameter, a full "
                        "vector for the others"),
    "prodigy": (16.0, "prodigyopt.Prodigy (Mishchenko & Defazio, arXiv:2306.06101; konstmish/prodigy "
                      "prodigyopt/prodigy.py): exp_avg, exp_avg_sq, s and p0 per parameter (fp32 here)"),
    "sgd": (0.0, "torch.optim.SGD with momentum=0 (its default): no state"),
}
#: optimizer -> CUDA-core FLOPs per parameter of its update (documented arithmetic; the step is memory-bound)
OPTIMIZER_FLOPS = {"adamw": 14, "adamw8bit": 20, "adafactor": 12, "prodigy": 20, "sgd": 2}
CHECKPOINTING = ("none", "full", "selective")
PRECISIONS = {"bf16": 2, "fp8": 1}
#: --fp8-keep by default: Linears of the blocks an fp8 base keeps in bf16, by a substring of their path inside
#: the block. musubi-tuner (kohya-ss/musubi-tuner @30c658c) quantizes the Linears of the repeated blocks
#: (FP8_OPTIMIZATION_TARGET_KEYS: "blocks", "transformer_blocks", "double_blocks", "single_blocks", ...) except
#: the names in FP8_OPTIMIZATION_EXCLUDE_KEYS, which every model lists with "norm" (wan/modules/model.py,
#: qwen_image/qwen_image_model.py, flux_2/flux2_models.py, zimage/zimage_model.py, ...) and several with the
#: adaLN modulation ("_modulation": FLUX.2, Z-Image; "modulation": Wan, a parameter there). The lists change
#: per model and release (Qwen-Image excluded "_mod" until 8cf63b0, 2025-12-24, and quantizes it since), so a
#: run states its own with --fp8-keep
FP8_KEEP = ("norm", "modulation")
PARAM_DTYPES = {"fp32": 4, "bf16": 2}


@dataclass(frozen=True)
class TrainSetup:
    """Every option that changes a training step's cost."""

    method: str = "lora"  # lora | full
    lora_rank: int = 16
    lora_targets: tuple[str, ...] = ("blocks",)
    optimizer: str = "adamw"
    checkpointing: str = "none"
    checkpoint_blocks: int | None = None  # selective: how many blocks are checkpointed (None: half)
    blocks_to_swap: int = 0
    base_precision: str = "bf16"
    fp8_keep: tuple[str, ...] = FP8_KEEP  # an fp8 base's Linears kept in bf16 (substrings of their block paths)
    param_dtype: str = "fp32"
    gpus: int = 1
    fsdp: bool = False
    batch: int = 1
    grad_accum: int = 1
    encoders_cached: bool = True
    attention: str = "flash"

    def check(self, blocks: int) -> None:
        if self.method not in ("lora", "full"):
            raise TrainingError(f"unknown training method {self.method!r} (lora or full)")
        if self.method == "lora" and self.lora_rank < 1:
            raise TrainingError(f"--lora-rank must be a positive integer, got {self.lora_rank}")
        if self.optimizer not in OPTIMIZERS:
            raise TrainingError(f"unknown optimizer {self.optimizer!r} (known: {', '.join(OPTIMIZERS)})")
        if self.checkpointing not in CHECKPOINTING:
            raise TrainingError(f"unknown gradient checkpointing {self.checkpointing!r} (known: {', '.join(CHECKPOINTING)})")
        if self.base_precision not in PRECISIONS:
            raise TrainingError(f"unknown base precision {self.base_precision!r} (known: {', '.join(PRECISIONS)})")
        if self.param_dtype not in PARAM_DTYPES:
            raise TrainingError(f"unknown parameter dtype {self.param_dtype!r} (known: {', '.join(PARAM_DTYPES)})")
        for name in ("gpus", "batch", "grad_accum"):
            if getattr(self, name) < 1:
                raise TrainingError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        if self.blocks_to_swap < 0 or self.blocks_to_swap > max(blocks - 2, 0):
            raise TrainingError(f"--blocks-to-swap must be between 0 and {max(blocks - 2, 0)} (the model has {blocks} "
                                f"blocks; musubi-tuner keeps at least 2 on the GPU), got {self.blocks_to_swap}")
        if self.checkpoint_blocks is not None and not 0 <= self.checkpoint_blocks <= blocks:
            raise TrainingError(f"--checkpoint-blocks must be between 0 and {blocks}, got {self.checkpoint_blocks}")
        if self.fsdp and self.gpus < 2:
            raise TrainingError("--fsdp needs --gpus 2 or more")
        if self.fsdp and self.blocks_to_swap:
            raise TrainingError("--fsdp with --blocks-to-swap is not modeled: choose one")

    def checkpointed(self, blocks: int) -> int:
        if self.checkpointing == "full":
            return blocks
        if self.checkpointing == "selective":
            return blocks // 2 if self.checkpoint_blocks is None else self.checkpoint_blocks
        return 0

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


# -- graph costs --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Costed:
    """One graph's nodes with their rules' costs; unmodeled ops listed, never counted as zero silently."""

    nodes: tuple[tuple[NodeRecord, str, Cost], ...]
    unmodeled: Mapping[str, int]

    def total(self) -> Cost:
        acc = Cost()
        for _, _, c in self.nodes:
            acc = acc + c
        return acc


def cost_nodes(records: list[NodeRecord]) -> Costed:
    out = []
    unmodeled: dict[str, int] = {}
    for r in records:
        family, c = node_cost(r.target, r.call)
        if c is None:
            unmodeled[r.target] = unmodeled.get(r.target, 0) + 1
            family, c = "unmodeled", Cost()
        out.append((r, family, Cost(*(int(v) for v in c))))
    return Costed(tuple(out), unmodeled)


def _backward_peak(records: list[NodeRecord], saved: Mapping[str, int]) -> int:
    """Live bytes at the backward graph's peak: the saved tensors live at its start, each freed after its last use,
    every other output allocated when produced and freed after its last use (views and the getitems of a
    multi-output op alias their base, which holds every output)."""
    from fxmeter.model.training import _VIEWS

    last: dict[str, int] = {}
    for i, r in enumerate(records):
        for u in r.uses:
            last[u] = i
    base: dict[str, str] = {}
    size: dict[str, int] = {n: b for n, b in saved.items() if n in last}  # saved tensors: freed after their last use
    live = sum(saved.values())
    peak = live
    for i, r in enumerate(records):
        if (r.target in _VIEWS or r.target == "operator.getitem") and r.uses:  # an alias: its base stays live
            base[r.name] = base.get(r.uses[0], r.uses[0])
            last[base[r.name]] = max(last.get(base[r.name], i), last.get(r.name, i))
        else:
            size[r.name] = int(sum(int(t.nbytes) for t in r.call.outputs))
            live += size[r.name]
            peak = max(peak, live)
        for u in set(r.uses):
            b = base.get(u, u)
            if last.get(b, -1) == i and b in size:
                live -= size.pop(b)
    return peak


@dataclass(frozen=True)
class StepCosts:
    """A training step of the full model, one micro-batch: the forward, the backward, one block of each list."""

    forward: Cost
    backward: Cost
    block_forward: Mapping[str, Cost]  # list -> one block's forward
    blocks: Mapping[str, int]  # list -> blocks in the full model
    saved_bytes: int  # every tensor the forward saves for the backward
    block_saved_bytes: Mapping[str, int]  # one block's
    block_input_bytes: Mapping[str, int]
    transient_bytes: int  # the backward's own live bytes at its peak, beyond the saved tensors
    parameters: int
    trainable_parameters: int
    trainable_tensors: int
    linear_weight_parameters: int
    block_parameters: Mapping[str, int]  # one block's parameters (frozen + trainable)
    trainable_shapes: Mapping[tuple[int, ...], int]
    input_bytes: int
    unmodeled: Mapping[str, int]
    graphs: Mapping[str, tuple[Costed, Costed]]  # key -> (forward, backward) costed, for the time model
    lora_layers: int = 0
    #: one block's Linear weights per repeated list, by path inside the block (what an fp8 base may quantize)
    block_linear_weights: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    @property
    def total(self) -> Cost:
        return self.forward + self.backward


def _lin(base: Any, deltas: Mapping[str, Any], counts: Mapping[str, int]) -> Any:
    out = base
    for lst, d in deltas.items():
        out = out + d * (counts[lst] - 1) if not isinstance(d, Cost) else out + d.scale(counts[lst] - 1)
    return out


def _sub(a: Cost, b: Cost) -> Cost:
    return Cost(*(x - y for x, y in zip(a, b)))


def step_costs(graphs: Mapping[str, JointGraph], blocks: Mapping[str, int]) -> StepCosts:
    """Cost every graph and extrapolate to ``blocks`` (list -> blocks of the full model)."""
    costed = {k: (cost_nodes(g.forward), cost_nodes(g.backward)) for k, g in graphs.items()}
    unmodeled: dict[str, int] = {}
    for fw, bw in costed.values():
        for op, n in list(fw.unmodeled.items()) + list(bw.unmodeled.items()):
            unmodeled[op] = max(unmodeled.get(op, 0), n)
    transient = max(max(_backward_peak(g.backward, g.saved) - sum(g.saved.values()), 0) for g in graphs.values())
    if "full" in graphs:
        g = graphs["full"]
        fw, bw = costed["full"]
        counts = {lst: max(k, 1) for lst, k in g.blocks.items()}
        return StepCosts(fw.total(), bw.total(), {lst: Cost() for lst in counts}, counts, sum(g.saved.values()),
                         dict.fromkeys(counts, 0), g.block_input_bytes, transient, g.parameters, g.trainable_parameters,
                         g.trainable_tensors, g.linear_weight_parameters, dict.fromkeys(counts, 0), g.trainable_shapes,
                         g.input_bytes, unmodeled, costed, len(g.lora_layers), g.block_linear_weights)
    b = graphs["base"]
    fb, bb = costed["base"]
    lists = [k for k in graphs if k != "base"]
    d_fw = {lst: _sub(costed[lst][0].total(), fb.total()) for lst in lists}
    d_bw = {lst: _sub(costed[lst][1].total(), bb.total()) for lst in lists}
    d_saved = {lst: sum(graphs[lst].saved.values()) - sum(b.saved.values()) for lst in lists}
    d_params = {lst: graphs[lst].parameters - b.parameters for lst in lists}
    d_train = {lst: graphs[lst].trainable_parameters - b.trainable_parameters for lst in lists}
    d_tensors = {lst: graphs[lst].trainable_tensors - b.trainable_tensors for lst in lists}
    d_linear = {lst: graphs[lst].linear_weight_parameters - b.linear_weight_parameters for lst in lists}
    d_lora = {lst: len(graphs[lst].lora_layers) - len(b.lora_layers) for lst in lists}
    shapes = dict(b.trainable_shapes)
    for lst in lists:
        for s, k in graphs[lst].trainable_shapes.items():
            extra = k - b.trainable_shapes.get(s, 0)
            if extra:
                shapes[s] = shapes.get(s, 0) + extra * (blocks[lst] - 1)
    return StepCosts(
        forward=_lin(fb.total(), d_fw, blocks),
        backward=_lin(bb.total(), d_bw, blocks),
        block_forward=d_fw,
        blocks=dict(blocks),
        saved_bytes=_lin(sum(b.saved.values()), d_saved, blocks),
        block_saved_bytes=d_saved,
        block_input_bytes={lst: graphs[lst].block_input_bytes.get(lst, 0) for lst in lists},
        transient_bytes=transient,
        parameters=_lin(b.parameters, d_params, blocks),
        trainable_parameters=_lin(b.trainable_parameters, d_train, blocks),
        trainable_tensors=_lin(b.trainable_tensors, d_tensors, blocks),
        linear_weight_parameters=_lin(b.linear_weight_parameters, d_linear, blocks),
        block_parameters=d_params,
        trainable_shapes=shapes,
        input_bytes=b.input_bytes,
        unmodeled=unmodeled,
        graphs=costed,
        lora_layers=_lin(len(b.lora_layers), d_lora, blocks),
        block_linear_weights=b.block_linear_weights,
    )


# -- memory ---------------------------------------------------------------------------------------------
def optimizer_state_bytes(optimizer: str, costs: StepCosts) -> int:
    per, _ = OPTIMIZERS[optimizer]
    if per is not None:
        return math.ceil(per * costs.trainable_parameters)
    total = 0  # adafactor: factored second moment for 2-D (and higher: last two dims) parameters
    for shape, k in costs.trainable_shapes.items():
        if len(shape) >= 2:
            lead = math.prod(shape[:-2])
            total += k * 4 * lead * (shape[-2] + shape[-1])
        else:
            total += k * 4 * math.prod(shape)
    return total


def fp8_weight_parameters(setup: TrainSetup, c: StepCosts) -> int:
    """Base parameters an fp8 base stores in 1 byte: the repeated blocks' Linear weights but those whose path
    inside the block contains one of ``setup.fp8_keep`` (LoRA adapters are trainable, never among them)."""
    return sum(n * c.blocks.get(lst, 0) for lst, weights in c.block_linear_weights.items()
               for path, n in weights.items() if not any(k in path for k in setup.fp8_keep))


def swap_block_bytes(setup: TrainSetup, c: StepCosts) -> int:
    """Bytes of one block's weights as block swap moves them: the average block's parameters at the bytes per
    parameter of what is swapped (LoRA: the frozen base at --base-precision; full: the trained weights)."""
    n_blocks = sum(c.blocks.values())
    if not n_blocks or not c.parameters:
        return 0
    in_blocks = sum(c.block_parameters.get(lst, 0) * n for lst, n in c.blocks.items()) or c.parameters
    if setup.method == "full":
        return in_blocks * PARAM_DTYPES[setup.param_dtype] // n_blocks
    frozen_in_blocks = (c.parameters - c.trainable_parameters) * in_blocks // c.parameters
    linear = min(fp8_weight_parameters(setup, c), frozen_in_blocks)  # an fp8 base's quantized Linears are all in blocks
    return (linear * PRECISIONS[setup.base_precision] + (frozen_in_blocks - linear) * 2) // n_blocks


@dataclass(frozen=True)
class Memory:
    """Bytes per GPU (allocated), each part named; host RAM the step needs."""

    parts: Mapping[str, int]
    peak_bytes: int
    peak_at: str
    host_bytes: int
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"parts": dict(self.parts), "peak_bytes": self.peak_bytes, "peak_gib": round(self.peak_bytes / GiB, 3),
                "peak_at": self.peak_at, "host_bytes": self.host_bytes, "kind": "allocated", "notes": list(self.notes)}


def memory(setup: TrainSetup, c: StepCosts, encoder_bytes: int = 0) -> Memory:
    """Allocated bytes per GPU at the step's peak (the start of the backward, every saved tensor live)."""
    n_blocks = sum(c.blocks.values())
    pbytes = PARAM_DTYPES[setup.param_dtype]
    frozen = c.parameters - c.trainable_parameters if setup.method == "lora" else 0
    linear_frozen = min(fp8_weight_parameters(setup, c), frozen)
    base_bytes = (linear_frozen * PRECISIONS[setup.base_precision] + (frozen - linear_frozen) * 2)
    trainable = c.trainable_parameters * pbytes
    compute_copy = 0  # autocast casts fp32 master weights to bf16 per op (transient), no resident copy
    grads = c.trainable_parameters * pbytes
    states = optimizer_state_bytes(setup.optimizer, c)
    notes = []
    # block swap: the swapped blocks' weights live on the host (LoRA: the frozen base; full: the trained weights)
    swapped = setup.blocks_to_swap * swap_block_bytes(setup, c)
    host = swapped
    shard = setup.gpus if setup.fsdp else 1
    gathered = 0
    if setup.fsdp:
        biggest = max(c.block_parameters.values(), default=0)
        gathered = 2 * biggest * (2 if setup.method == "full" else PRECISIONS[setup.base_precision])
        notes.append("FSDP (ZeRO-3): parameters, gradients and optimizer states sharded over the GPUs; one block "
                     "gathered and the next prefetched")
    # activations
    k = setup.checkpointed(n_blocks)
    block_saved = max(c.block_saved_bytes.values(), default=0)
    per_saved = sum(c.block_saved_bytes[lst] * n for lst, n in c.blocks.items())
    avg_saved = per_saved // n_blocks if n_blocks else 0
    avg_input = sum(c.block_input_bytes.get(lst, 0) * n for lst, n in c.blocks.items()) // n_blocks if n_blocks else 0
    saved = c.saved_bytes - k * avg_saved + k * avg_input + (block_saved if k else 0)
    saved *= setup.batch
    transient = c.transient_bytes * setup.batch
    parts = {
        "base_weights": (base_bytes - (swapped if setup.method == "lora" else 0)) // shard,
        "trainable_weights": (trainable + compute_copy - (0 if setup.method == "lora" else swapped)) // shard,
        "gathered_weights": gathered,
        "gradients": grads // shard,
        "optimizer_states": states // shard,
        "saved_activations": saved,
        "backward_transient": transient,
        "encoders": 0 if setup.encoders_cached else encoder_bytes,
        "inputs": c.input_bytes * setup.batch,
    }
    peak = sum(parts.values())
    at = "start of the backward (every saved activation live, the first gradients allocated)"
    if k:
        at = f"backward of a checkpointed block (its activations recomputed; {k} of {n_blocks} blocks checkpointed)"
    if swapped:
        notes.append(f"{setup.blocks_to_swap} blocks' weights in host RAM ({swapped / GiB:.2f} GiB), copied in for "
                     "the forward and again for the backward")
    return Memory(parts, peak, at, host, tuple(notes))


# -- seconds --------------------------------------------------------------------------------------------
def _call(rec: NodeRecord, family: str, cost: Cost) -> KernelCall:
    call: OpCall = rec.call
    shape: dict[str, Any] = {}
    fam = family
    if rec.target.startswith("aten._scaled_dot_product") and rec.target.endswith("_backward.default"):
        shape = kernel_shape("attention", OpCall(call.target, call.args[1:4], {}, call.outputs))
    elif rec.target.startswith("aten.convolution_backward"):
        g, x, w = call.args[0], call.args[1], call.args[2]
        fwd = OpCall("aten.convolution.default", (x, w, None) + tuple(call.args[4:7]) + (False, call.args[8], call.args[9]),
                     {}, (g,))
        shape = kernel_shape("conv", fwd)
    else:
        shape = kernel_shape(family, call)
    if fam not in ("matmul", "conv", "attention") and cost.tensor_core_flops:
        fam = "unmodeled"
    if fam in ("matmul", "conv", "attention") and not shape:
        fam = "unmodeled"
    return KernelCall(family=fam, tensor_core_flops=cost.tensor_core_flops, cuda_core_flops=cost.cuda_core_flops,
                      bytes=cost.bytes_read + cost.bytes_written, shape={k: int(v) for k, v in shape.items()},
                      dtype=out_dtype(call) or "bfloat16", launches=0 if family == "free" else 1,
                      broadcast=broadcast_op(fam, rec.target, cost.bytes_read, cost.bytes_written))


def _graph_seconds(costed: Costed, hw: Hardware, opts: KernelOptions) -> tuple[float, float]:
    km = load_kernel_model()
    pred = bound = 0.0
    for rec, family, cost in costed.nodes:
        t = kernel_time(_call(rec, family, cost), hw, opts, km)
        pred += t.seconds
        bound += t.bound_seconds
    return pred, bound


@dataclass(frozen=True)
class StepTime:
    parts: Mapping[str, float]  # predicted seconds per step
    bound_parts: Mapping[str, float]
    predicted_s: float
    bound_s: float
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"predicted_s": self.predicted_s, "bound_s": self.bound_s, "predicted_parts_s": dict(self.parts),
                "bound_parts_s": dict(self.bound_parts), "notes": list(self.notes)}


def step_time(setup: TrainSetup, c: StepCosts, hw: Hardware) -> StepTime:
    """Seconds of one optimizer step (``grad_accum`` micro-batches of ``batch``) on one GPU of ``hw``."""
    from fxmeter.estimate.comm import Collective, collective_seconds, load_comm_model, pick_link

    opts = KernelOptions(attention="sdpa", precision="bf16")
    notes = ["matmuls priced at bf16 (an fp8 base is dequantized to bf16 for compute, as musubi-tuner's --fp8_base); "
             "backward attention priced with the forward kernel's measured throughput (no published backward table)"]
    secs = {k: (_graph_seconds(fw, hw, opts), _graph_seconds(bw, hw, opts)) for k, (fw, bw) in c.graphs.items()}
    if "full" in secs:
        (fp, fb), (bp, bb) = secs["full"]
        block_fw = dict.fromkeys(c.blocks, (0.0, 0.0))
    else:
        (fp0, fb0), (bp0, bb0) = secs["base"]
        fp, fb, bp, bb = fp0, fb0, bp0, bb0
        block_fw = {}
        for lst, n in c.blocks.items():
            (f2, fb2), (b2, bb2) = secs[lst]
            fp += (f2 - fp0) * (n - 1)
            fb += (fb2 - fb0) * (n - 1)
            bp += (b2 - bp0) * (n - 1)
            bb += (bb2 - bb0) * (n - 1)
            block_fw[lst] = (f2 - fp0, fb2 - fb0)
    n_blocks = sum(c.blocks.values())
    k = setup.checkpointed(n_blocks)
    avg_fw = (sum(block_fw[lst][0] * n for lst, n in c.blocks.items()) / n_blocks) if n_blocks else 0.0
    avg_fwb = (sum(block_fw[lst][1] * n for lst, n in c.blocks.items()) / n_blocks) if n_blocks else 0.0
    micro = setup.grad_accum * setup.batch  # batch scales every node linearly (a conservative, documented simplification)
    parts = {"forward": fp * micro, "backward": bp * micro, "recompute": k * avg_fw * micro}
    bparts = {"forward": fb * micro, "backward": bb * micro, "recompute": k * avg_fwb * micro}
    # optimizer step: parameters read + written, gradients read, states read + written
    shard = setup.gpus if setup.fsdp else 1
    pbytes = PARAM_DTYPES[setup.param_dtype]
    opt_bytes = (c.trainable_parameters * (3 * pbytes) + 2 * optimizer_state_bytes(setup.optimizer, c)) // shard
    km = load_kernel_model()
    ot = kernel_time(KernelCall("elementwise", 0, OPTIMIZER_FLOPS[setup.optimizer] * c.trainable_parameters // shard,
                                opt_bytes, {}, "float32", launches=c.trainable_tensors), hw, opts, km)
    parts["optimizer"] = ot.seconds
    bparts["optimizer"] = ot.bound_seconds
    # block swap: each swapped block in and out for the forward and for the backward, overlapped with compute
    comm = load_comm_model()
    if setup.blocks_to_swap:
        if hw.pcie is None:
            raise TrainingError(f"{hw.name} has no host link (pcie) in its hardware entry: block swap cannot be priced")
        block_bytes = swap_block_bytes(setup, c)
        per_pass = 0.0
        for kind in ("host_to_device", "device_to_host"):
            col = Collective(kind, int(block_bytes), 1, setup.blocks_to_swap, "block swap")
            per_pass += collective_seconds(col, hw.pcie, comm) * setup.blocks_to_swap
        # copies overlap the compute of the other blocks: the pass takes the slower of the two
        extra = 0.0
        for phase in ("forward", "backward"):
            extra += max(0.0, per_pass * setup.grad_accum - parts[phase])
        parts["swap_exposed"] = extra
        bparts["swap_exposed"] = 0.0
        notes.append(f"block swap: {setup.blocks_to_swap} blocks x {block_bytes / GiB:.3f} GiB in and out per pass "
                     f"over {hw.pcie.text}: {per_pass:.2f} s per pass, overlapped with compute (only the excess counts)")
    if setup.gpus > 1:
        link = pick_link(hw, setup.gpus, comm)
        gbytes = c.trainable_parameters * pbytes
        if setup.fsdp:
            wbytes = c.parameters * 2
            cols = [Collective("all_gather", int(wbytes), setup.gpus, 2 * setup.grad_accum, "FSDP parameters (fwd+bwd)"),
                    Collective("reduce_scatter", int(gbytes), setup.gpus, setup.grad_accum, "FSDP gradients")]
        else:
            cols = [Collective("all_reduce", int(gbytes), setup.gpus, 1, "DDP gradients")]
        comm_s = sum(collective_seconds(col, link, comm) * col.count for col in cols)
        # overlapped with the backward (DDP buckets / FSDP prefetch): only the excess is exposed
        parts["communication_exposed"] = max(0.0, comm_s - parts["backward"])
        bparts["communication_exposed"] = 0.0
        notes.append(f"communication {comm_s:.3f} s per step over {link.kind}, overlapped with the backward")
    return StepTime(parts, bparts, sum(parts.values()), sum(bparts.values()), tuple(notes))


@dataclass(frozen=True)
class Epoch:
    clips: int
    steps: int
    seconds: float
    gpu_hours: float
    dollars: float | None

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def epoch(setup: TrainSetup, t: StepTime, clips: int, price: float | None) -> Epoch:
    """Optimizer steps to see every clip once (each GPU its own micro-batches: data parallel)."""
    per_step = setup.batch * setup.grad_accum * setup.gpus
    steps = -(-clips // per_step)
    sec = steps * t.predicted_s
    gh = sec * setup.gpus / 3600
    return Epoch(clips, steps, sec, gh, None if price is None else gh * price)


__all__ = ["CHECKPOINTING", "OPTIMIZERS", "Epoch", "Memory", "StepCosts", "StepTime", "TrainSetup", "TrainingError",
           "epoch", "memory", "optimizer_state_bytes", "step_costs", "step_time"]
