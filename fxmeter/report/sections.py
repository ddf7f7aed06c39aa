"""The sections and rows of report.json, typed: each is a :class:`fxmeter.base.records.Record`, so its
JSON keys, its reader and its part of the JSON Schema all come from the dataclass below.

To add a key to report.json: add the field here (with :func:`~fxmeter.base.records.key` when it is
optional, renamed or constrained), run ``python -m fxmeter.report.schema --write``, and document it in
the README's report.json table when it is part of the contract.

Seconds are labelled for what they are: ``bound_seconds`` is the roofline at 100% of every
peak (no real kernel is faster), ``predicted_seconds`` a model of what real kernels reach.

Why one long module: every section of report.json is one small record here, with the schema of its
free-form parts beside it; together they are the document's shape, readable in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from fxmeter.base.records import (
    OMIT_EMPTY,
    Count,
    CountMap,
    Derived,
    Limiter,
    Peak,
    Positive,
    Record,
    Schema,
    Seconds,
    flatten,
    json_name,
    key,
    omit_none,
)
from fxmeter.estimate.metrics import Metrics

_BOUND = "roofline at 100% of every peak: a lower bound"
_PRECISION = {"enum": ["bf16", "fp8", "int8"]}
_TRAFFIC = {"enum": ["eager", "fused"]}


# -- rows --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Total(Record):
    """A cost with its seconds on the device (when the report has one)."""

    json_def = "timed_metrics"

    metrics: Metrics = field(metadata=flatten())
    bound_seconds: Seconds | None = field(default=None, metadata=omit_none(doc=_BOUND))
    predicted_seconds: Seconds | None = field(default=None, metadata=omit_none(doc="the time model's prediction"))


@dataclass(frozen=True)
class Totals(Record):
    per_forward: Total
    per_step: Total
    end_to_end: Total
    traffic_model: str = field(default="eager", metadata=key(schema=_TRAFFIC))


@dataclass(frozen=True)
class ModuleTimes(Record):
    """A module's seconds per forward on the device: with descendants and of its own nodes.

    Flattened into its :class:`ModuleRow`; there when ``bound_seconds`` is (the rest then required)."""

    bound_seconds: Seconds
    limiter: Limiter = field(metadata=key(missing=None, required=True))
    self_bound_seconds: Seconds = field(metadata=key(missing=0.0, required=True))
    self_limiter: Limiter = field(metadata=key(missing=None, required=True))
    arithmetic_intensity: float | None = field(metadata=key(missing=None, required=True))
    predicted_seconds: Seconds | None = field(default=None, metadata=omit_none())
    self_predicted_seconds: Seconds | None = field(default=None, metadata=omit_none())


@dataclass(frozen=True)
class ModuleRow(Record):
    """One module of the full model (``per_forward`` with descendants; ``own`` = its own nodes, JSON ``self``)."""

    json_def = "module"

    id: str = field(metadata=key(schema={"minLength": 1}))
    parent: str | None
    cls: str = field(metadata=json_name("class"))
    depth: Count
    parameters: Count
    weight_bytes: Count
    per_forward: Metrics
    own: Metrics = field(metadata=json_name("self"))
    formula: Mapping[str, str] | None = field(default=None, metadata=omit_none())
    times: ModuleTimes | None = field(default=None, metadata=flatten(present_if="bound_seconds"))


@dataclass(frozen=True)
class NodeRow(Record):
    """One costed graph node (one instance; ``replicas`` instances in the model)."""

    json_def = "node"

    name: str
    target: str
    module: str
    family: str
    category: str
    replicas: Positive
    per_forward: Metrics
    bound_seconds: Seconds | None = field(default=None, metadata=omit_none())
    limiter: Limiter = field(default=None, metadata=omit_none())
    predicted_seconds: Seconds | None = field(default=None, metadata=omit_none())


@dataclass(frozen=True)
class CategoryRow(Record):
    json_def = "category"

    metrics: Metrics = field(metadata=flatten())
    tensor_core_share: float
    flops_share: float


@dataclass(frozen=True)
class Unmodeled(Record):
    op: str
    count: Count
    modules: tuple[str, ...]


# -- sections ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelInfo(Record):
    id: str = field(metadata=key(schema={"minLength": 1}))
    diffusers_class: str
    adapter: str
    config: Mapping[str, Any]
    config_sha256: str
    config_source: str
    parameters: Count
    slug: str = field(metadata=key(schema={"pattern": "^[A-Za-z0-9_][A-Za-z0-9._-]*$"}))
    parameters_per_expert: Count | None = field(default=None, metadata=omit_none())


@dataclass(frozen=True)
class WorkloadInfo(Record):
    name: str
    frames: Positive
    frames_requested: Positive
    height: Positive
    width: Positive
    steps: Positive
    text_len: Positive
    batch: Positive
    guidance_scale: float
    passes_per_step: Positive
    latent_shape: tuple[Positive, ...]
    tokens: Positive
    dims: Mapping[str, int]
    dtype: str
    cfg: str | None = field(default=None, metadata=omit_none())  # "batched" when the CFG passes run as one forward of 2x the batch


_OPTIONS = {"description": "the options that change the numbers, as the report was made with",
            "required": ["dtype", "precision", "traffic", "batched_cfg", "hardware", "efficiency", "full_trace"],
            "properties": {"dtype": {"type": "string"}, "precision": {"type": "string"}, "traffic": _TRAFFIC,
                           "batched_cfg": {"type": "boolean"}, "hardware": {"type": ["string", "null"]},
                           "efficiency": {"type": ["object", "string", "null"]}, "full_trace": {"type": "boolean"}}}


@dataclass(frozen=True)
class TraceInfo(Record):
    mode: str = field(metadata=key(schema={"enum": ["dynamic", "static"]}))
    exporter: str
    graph_nodes: Count
    replicated_blocks: Mapping[str, Positive]
    symbols: tuple[str, ...]
    guards: Mapping[str, tuple[int, int]]
    seconds: Seconds
    cache: str = field(metadata=key(doc="where the symbolic model came from: shipped, cache, traced, traced-static, disabled"))
    analysis_schema: int = field(metadata=key(missing=0))
    options: Mapping[str, Any] = field(metadata=key(missing={}, schema=_OPTIONS))
    rules: str = field(metadata=key(missing="", doc="fingerprint of the rules and analysis code the trace was costed with"))


@dataclass(frozen=True)
class FitInfo(Record):
    json_derived = (Derived("headroom_bytes", int, required=False, doc=(
        "device_bytes - required_bytes: memory left for what the fit does not count (CUDA context, allocator "
        "fragmentation); negative when it does not fit")),)

    fits: bool
    required_bytes: Count
    device_bytes: Count
    statement: str

    @property
    def headroom_bytes(self) -> int:
        """Device memory left after weights + peak activations (negative: short by that much)."""
        return self.device_bytes - self.required_bytes


@dataclass(frozen=True)
class MemoryInfo(Record):
    json_derived = (Derived("peak_activation_bytes", Count, after="activation_peak_bytes", required=False,
                            attr="activation_peak_bytes"),
                    Derived("total_bytes", Count, after="activation_model"))

    weight_bytes: Count
    weight_bytes_by_dtype: CountMap
    parameters_by_dtype: CountMap
    activation_peak_bytes: Count
    activation_peak_node: str | None = field(metadata=key(missing=None))
    activation_peak_module: str | None = field(metadata=key(missing=None))
    activation_model: str = field(metadata=key(missing=""))
    precision: str = field(metadata=key(missing="bf16", schema=_PRECISION))
    weight_precision: str = field(metadata=key(missing="as traced"))
    fit: FitInfo | None = field(default=None, metadata=omit_none())
    activation_batch: Positive | None = field(default=None, metadata=omit_none())

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.activation_peak_bytes


_HARDWARE_DEVICE = {"required": ["name", "label", "tensor_core", "cuda_core_fp32", "memory_bandwidth", "memory_bytes"],
                    "properties": {
                        "name": {"type": "string"}, "label": {"type": "string"},
                        "tensor_core": {"type": "object",
                                        "additionalProperties": {"anyOf": [{"$ref": "#/$defs/peak"}, {"type": "null"}]}},
                        "cuda_core_fp32": {"$ref": "#/$defs/peak"}, "memory_bandwidth": {"$ref": "#/$defs/peak"},
                        "memory_bytes": {"$ref": "#/$defs/count"},
                        "sources": {"type": "object", "additionalProperties": {"type": "string"}},
                        "origin": {"type": "string"}}}
_STAND_IN = Schema(required=["kind", "key", "measured_on", "cross_architecture", "text"])
_STAND_INS = ("kernel-model constants measured on another device that price this one (kind, key, measured_on, "
              "measured_arch, used_for, used_for_arch, cross_architecture, text, short)")


@dataclass(frozen=True)
class HardwareInfo(Record):
    """The device a report's seconds are for, its peaks and the time model.

    ``device`` is the device table's entry (name, label, peaks, sources...): its keys sit beside the others."""

    json_def = "hardware"

    device: Mapping[str, Any] = field(metadata=key(rest=True, schema=_HARDWARE_DEVICE))
    precision: str = field(metadata=key(schema=_PRECISION))
    efficiency: Mapping[str, Annotated[float, Schema(exclusiveMinimum=0, maximum=1)]] = field(metadata=key(schema={"required": ["tc", "cuda", "bw"]}))
    peaks_used: Mapping[str, Peak] = field(metadata=key(schema={"required": [
        "tensor_core_flops_per_s", "tensor_core_flops_per_s_matmul", "cuda_core_flops_per_s", "bytes_per_s"]}))
    ridge_point_flop_per_byte: Mapping[str, float] = field(metadata=key(schema={"required": ["tensor_core", "cuda_core"]}))
    model: str = field(metadata=key(missing=""))
    seconds_by_limiter_per_forward: Mapping[str, Seconds] = field(metadata=key(schema={"required": ["tensor_core", "cuda_core", "memory"]}))
    stand_ins: tuple[Annotated[Mapping[str, Any], _STAND_IN], ...] = field(default=(), metadata=key(omit=OMIT_EMPTY, falsy_missing=True, doc=_STAND_INS))

    @property
    def label(self) -> str:
        return str(self.device.get("label", self.device.get("name", "")))


@dataclass(frozen=True)
class ComponentInfo(Record):
    """One model of a multi-model pipeline (the experts of Wan2.2-A14B): its steps and cost."""

    name: str
    role: str = field(metadata=key(missing=""))
    steps: Count
    step_share: float = field(metadata=key(missing=0.0))
    timesteps: tuple[float, ...] = field(metadata=key(missing=()))
    parameters: Count = field(metadata=key(missing=0))
    weight_bytes: Count = field(metadata=key(missing=0))
    end_to_end: Metrics
    per_forward: Metrics | None = field(default=None, metadata=omit_none(falsy_missing=True))
    config: str | None = field(default=None, metadata=omit_none())  # "<component>/config.json (differs from ...)" when its config differs


@dataclass(frozen=True)
class DeviceInfo(Record):
    """One device of the side-by-side table (``--hardware h100,a100``): a whole generation on it."""

    name: str
    label: str
    bound_seconds: Seconds
    predicted_seconds: Seconds
    predicted_by: str = field(metadata=key(missing=""))
    generations_per_hour: float
    gpu_hours: float
    fits: bool
    fit: str = field(metadata=key(missing=""))
    price_per_hour: float | None = field(default=None, metadata=omit_none(schema={"minimum": 0}))
    dollars: float | None = field(default=None, metadata=omit_none(schema={"minimum": 0}))
    fits_with: str | None = field(default=None, metadata=omit_none(doc="the offload policy (fewest host-to-device bytes) that fits on this device when the report's --offload does "
        "not; the row's seconds are then that policy's"))
    stand_ins: tuple[Annotated[Mapping[str, Any], _STAND_IN], ...] = field(default=(), metadata=key(omit=OMIT_EMPTY, falsy_missing=True, doc=_STAND_INS))


@dataclass(frozen=True)
class OpRow(Record):
    """One aten op of a stage: how many calls and what they cost together (one run)."""

    op: str
    count: Count
    per_run: Metrics


def _denoiser(row: StageRow, _value: Any) -> bool:
    return row.denoiser


@dataclass(frozen=True)
class StageRow(Record):
    """One stage of the pipeline: what one run costs, how many runs, its weights and activations.

    ``modules``, ``categories`` and ``ops`` describe a stage other than the denoisers (whose
    modules are the report's top-level ``modules``; they are left out for a denoiser); ``per_run``
    holds its bound (and predicted) seconds with a device.
    """

    json_def = "stage"
    json_doc = "one stage of the pipeline: per run and end to end (runs per generation), weights, activations"

    name: str = field(metadata=key(schema={"minLength": 1}))
    component: str
    cls: str = field(metadata=json_name("class"))
    role: str
    root: str = field(metadata=key(schema={"minLength": 1}))
    call: str  # the adapter making the pipeline's call
    runs: Count
    batch_factor: Positive
    dtype: str
    denoiser: bool
    per_run: Total
    end_to_end: Total
    parameters: Count
    weight_bytes: Count  # the component's weights (as loaded: a VAE's encoder too)
    graph_weight_bytes: Count  # the weights this stage's graph reads
    activation_peak_bytes: Count
    activation_peak_module: str | None = field(metadata=key(missing=None))
    dims: CountMap
    trace: Mapping[str, Any] = field(metadata=key(missing={}))
    modules: tuple[ModuleRow, ...] = field(default=(), metadata=key(omit=_denoiser))
    categories: Mapping[str, CategoryRow] = field(default_factory=dict, metadata=key(omit=_denoiser))
    ops: tuple[OpRow, ...] = field(default=(), metadata=key(omit=_denoiser))
    unmodeled: tuple[Unmodeled, ...] = field(default=(), metadata=json_name("unmodeled_ops"))
    on_host: bool = False


_COUNT = {"$ref": "#/$defs/count"}
_SECONDS_OR_NULL = {"anyOf": [{"$ref": "#/$defs/seconds"}, {"type": "null"}]}
_FIT = {"type": "object", "required": ["fits", "required_bytes", "device_bytes", "statement"]}
_PROCESS = {
    "type": "object",
    "description": "peak per GPU as a PyTorch process holds it: peak_allocated_bytes (torch.cuda.max_memory_allocated), "
                   "peak_reserved_bytes (max_memory_reserved), peak_device_bytes (reserved + CUDA context + NCCL "
                   "buffers, nvidia-smi)",
    "required": ["stage", "peak_allocated_bytes", "peak_reserved_bytes", "peak_device_bytes", "breakdown"],
    "properties": {
        "stage": {"type": "string"}, "peak_allocated_bytes": _COUNT, "peak_reserved_bytes": _COUNT,
        "peak_device_bytes": _COUNT,
        "breakdown": {"type": "object", "required": ["weights", "activations", "workspaces", "allocator_slack", "context",
                                                     "nccl"], "additionalProperties": _COUNT},
        "host_bytes": _COUNT, "pinned_host_bytes": _COUNT, "expandable_segments": {"type": "boolean"},
        "runtime": {"type": "string"}}}
_RESIDENCY = {"properties": {
    "policy": {"type": "string"}, "peak_bytes": _COUNT, "peak_stage": {"type": "string"},
    "stages": {"type": "array", "items": {
        "type": "object", "required": ["stage", "resident_weight_bytes", "activation_bytes", "peak_bytes"],
        "properties": {"stage": {"type": "string"}, "resident_weight_bytes": _COUNT, "activation_bytes": _COUNT,
                       "peak_bytes": _COUNT, "on_host": {"type": "boolean"}}}},
    "transfers": {"type": "array", "items": {
        "type": "object", "required": ["component", "direction", "bytes", "count"],
        "properties": {"component": {"type": "string"}, "direction": {"enum": ["host_to_device", "device_to_host"]},
                       "bytes": _COUNT, "count": _COUNT, "total_bytes": _COUNT, "when": {"type": "string"},
                       "seconds": _SECONDS_OR_NULL}}},
    "host_to_device_bytes": _COUNT, "device_to_host_bytes": _COUNT, "transfer_seconds": _SECONDS_OR_NULL,
    "fit": _FIT, "process": _PROCESS}}
_POLICY = Schema(required=["policy", "peak_bytes", "peak_stage"], properties={
    "policy": {"type": "string"}, "peak_bytes": _COUNT, "peak_stage": {"type": "string"},
    "fits": {"type": ["boolean", "null"]}, "host_to_device_bytes": _COUNT, "transfer_seconds": _SECONDS_OR_NULL})


@dataclass(frozen=True)
class PipelineInfo(Record):
    """The whole generation: every stage asked for (``--stages``), end to end, and where the weights live.

    ``end_to_end``: the stages' runs summed; its seconds are the stages' plus the residency's
    host<->device copies (``transfer_seconds``).  ``residency``: the ``--offload`` policy, stage by
    stage; ``policies``: the device memory every policy of this pipeline needs (the fit check).
    """

    json_doc = ("the whole generation: every stage asked for (--stages), end to end, and the residency plan (--offload); "
                "totals/modules/categories/memory keep describing the denoising stages")

    stages: tuple[StageRow, ...] = field(metadata=key(schema={"minItems": 1}))
    end_to_end: Total
    compute_seconds: Seconds | None = field(metadata=key(missing=None))
    transfer_seconds: Seconds | None = field(metadata=key(missing=None))
    weight_bytes: Count
    parameters: Count
    residency: Mapping[str, Any] = field(metadata=key(missing={}, required=True, schema=_RESIDENCY))
    policies: tuple[Annotated[Mapping[str, Any], _POLICY], ...] = field(metadata=key(missing=(), required=True))
    notes: tuple[str, ...] = ()

    def stage(self, name: str) -> StageRow:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)


__all__ = ["CategoryRow", "ComponentInfo", "DeviceInfo", "FitInfo", "HardwareInfo", "MemoryInfo", "ModelInfo",
           "ModuleRow", "ModuleTimes", "NodeRow", "OpRow", "PipelineInfo", "StageRow", "Total", "Totals", "TraceInfo",
           "Unmodeled", "WorkloadInfo"]
