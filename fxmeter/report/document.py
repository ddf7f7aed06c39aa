"""The typed report: frozen dataclasses <-> report.json (schema 2), validated by a shipped JSON Schema.

:class:`ReportDocument` is the value every renderer (summary.md, ``top``, ``compare``, charts,
HTML) reads; :func:`fxmeter.report.build.build` makes it from an estimate, and
:meth:`ReportDocument.load` from a report.json (checked against
``fxmeter/data/report.schema.json`` first, so a malformed file is one clear error, never a
crash in a renderer).  ``to_dict()`` is the JSON document (sorted keys when written);
``.data`` is that dict, built once.  Field names documented in the README are a contract.

Seconds are labelled for what they are: ``bound_seconds`` is the roofline at 100% of every
peak (no real kernel is faster), ``predicted_seconds`` a model of what real kernels reach.

Why one long module: every section of report.json is one small dataclass here, next to its
``to_dict``/``from_dict``; keeping them together keeps the document's shape readable in one place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any

import orjson

from fxmeter.base import fileio
from fxmeter.errors import ReportError, RunIdError
from fxmeter.estimate.metrics import Metrics
from fxmeter.report.deployment import DeploymentInfo, ScalingRow
from fxmeter.report.plan import PlanInfo
from fxmeter.report.schema import report_schema, schema_problem, schema_validator, short

SCHEMA_VERSION = 2
RUN_ID_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
MAX_RUN_ID = 128
#: Larger than any report fxmeter writes (a --full-trace 14B report is a few MB).
MAX_REPORT_BYTES = fileio.MAX_REPORT_BYTES


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is a safe folder name, else a RunIdError."""
    if not isinstance(run_id, str) or not run_id:
        raise RunIdError(f"empty run id {run_id!r}: name the run, or leave --run-id out for a timestamp")
    if len(run_id) > MAX_RUN_ID:
        raise RunIdError(f"run id of {len(run_id)} characters: at most {MAX_RUN_ID}")
    if not RUN_ID_RE.fullmatch(run_id) or ".." in run_id:
        raise RunIdError(
            f"unsafe run id {run_id!r}: use only letters, digits, '.', '_' and '-', "
            "starting with a letter, digit or '_' (no '..', no '/')"
        )
    return run_id


def check_output_root(output_root: str | Path) -> Path:
    """``output_root`` as a Path; an empty one (which would mean the current folder) is refused."""
    if not str(output_root).strip():
        raise ReportError("empty --output-root: name a folder (default tmp/profile-output)")
    return Path(output_root)


# -- rows --------------------------------------------------------------------------------------
def _opt(d: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """``d`` plus the keyword values that are not None."""
    d.update({k: v for k, v in kw.items() if v is not None})
    return d


@dataclass(frozen=True)
class Total:
    """A cost with its seconds on the device (when the report has one)."""

    metrics: Metrics
    bound_seconds: float | None = None
    predicted_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return _opt(self.metrics.to_dict(), bound_seconds=self.bound_seconds, predicted_seconds=self.predicted_seconds)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Total:
        return cls(Metrics.from_dict(d), d.get("bound_seconds"), d.get("predicted_seconds"))


@dataclass(frozen=True)
class Totals:
    per_forward: Total
    per_step: Total
    end_to_end: Total
    traffic_model: str = "eager"

    def to_dict(self) -> dict[str, Any]:
        return {"per_forward": self.per_forward.to_dict(), "per_step": self.per_step.to_dict(),
                "end_to_end": self.end_to_end.to_dict(), "traffic_model": self.traffic_model}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Totals:
        return cls(Total.from_dict(d["per_forward"]), Total.from_dict(d["per_step"]), Total.from_dict(d["end_to_end"]),
                   d.get("traffic_model", "eager"))


@dataclass(frozen=True)
class ModuleTimes:
    """A module's seconds per forward on the device: with descendants and of its own nodes."""

    bound_seconds: float
    limiter: str | None
    self_bound_seconds: float
    self_limiter: str | None
    arithmetic_intensity: float | None
    predicted_seconds: float | None = None
    self_predicted_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return _opt({"bound_seconds": self.bound_seconds, "limiter": self.limiter, "self_bound_seconds": self.self_bound_seconds,
                     "self_limiter": self.self_limiter, "arithmetic_intensity": self.arithmetic_intensity},
                    predicted_seconds=self.predicted_seconds, self_predicted_seconds=self.self_predicted_seconds)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModuleTimes | None:
        if "bound_seconds" not in d:
            return None
        return cls(d["bound_seconds"], d.get("limiter"), d.get("self_bound_seconds", 0.0), d.get("self_limiter"),
                   d.get("arithmetic_intensity"), d.get("predicted_seconds"), d.get("self_predicted_seconds"))


@dataclass(frozen=True)
class ModuleRow:
    """One module of the full model (``per_forward`` with descendants; ``own`` = its own nodes, JSON ``self``)."""

    id: str
    parent: str | None
    cls: str
    depth: int
    parameters: int
    weight_bytes: int
    per_forward: Metrics
    own: Metrics
    formula: Mapping[str, str] | None = None
    times: ModuleTimes | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "parent": self.parent, "class": self.cls, "depth": self.depth,
                             "parameters": self.parameters, "weight_bytes": self.weight_bytes,
                             "per_forward": self.per_forward.to_dict(), "self": self.own.to_dict()}
        if self.formula is not None:
            d["formula"] = dict(self.formula)
        if self.times is not None:
            d.update(self.times.to_dict())
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModuleRow:
        return cls(d["id"], d["parent"], d["class"], d["depth"], d["parameters"], d["weight_bytes"],
                   Metrics.from_dict(d["per_forward"]), Metrics.from_dict(d["self"]), d.get("formula"),
                   ModuleTimes.from_dict(d))


@dataclass(frozen=True)
class NodeRow:
    """One costed graph node (one instance; ``replicas`` instances in the model)."""

    name: str
    target: str
    module: str
    family: str
    category: str
    replicas: int
    per_forward: Metrics
    bound_seconds: float | None = None
    limiter: str | None = None
    predicted_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return _opt({"name": self.name, "target": self.target, "module": self.module, "family": self.family,
                     "category": self.category, "replicas": self.replicas, "per_forward": self.per_forward.to_dict()},
                    bound_seconds=self.bound_seconds, limiter=self.limiter, predicted_seconds=self.predicted_seconds)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NodeRow:
        return cls(d["name"], d["target"], d["module"], d["family"], d["category"], d["replicas"],
                   Metrics.from_dict(d["per_forward"]), d.get("bound_seconds"), d.get("limiter"), d.get("predicted_seconds"))


@dataclass(frozen=True)
class CategoryRow:
    metrics: Metrics
    tensor_core_share: float
    flops_share: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.metrics.to_dict(), tensor_core_share=self.tensor_core_share, flops_share=self.flops_share)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CategoryRow:
        return cls(Metrics.from_dict(d), d["tensor_core_share"], d["flops_share"])


@dataclass(frozen=True)
class Unmodeled:
    op: str
    count: int
    modules: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "count": self.count, "modules": list(self.modules)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Unmodeled:
        return cls(d["op"], d["count"], tuple(d["modules"]))


# -- sections ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelInfo:
    id: str
    diffusers_class: str
    adapter: str
    config: Mapping[str, Any]
    config_sha256: str
    config_source: str
    parameters: int
    slug: str
    parameters_per_expert: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return _opt({"id": self.id, "diffusers_class": self.diffusers_class, "adapter": self.adapter,
                     "config": dict(self.config), "config_sha256": self.config_sha256, "config_source": self.config_source,
                     "parameters": self.parameters, "slug": self.slug}, parameters_per_expert=self.parameters_per_expert)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelInfo:
        return cls(d["id"], d["diffusers_class"], d["adapter"], d["config"], d["config_sha256"], d["config_source"],
                   d["parameters"], d["slug"], d.get("parameters_per_expert"))


@dataclass(frozen=True)
class WorkloadInfo:
    name: str
    frames: int
    frames_requested: int
    height: int
    width: int
    steps: int
    text_len: int
    batch: int
    guidance_scale: float
    passes_per_step: int
    latent_shape: tuple[int, ...]
    tokens: int
    dims: Mapping[str, int]
    dtype: str
    cfg: str | None = None  # "batched" when the CFG passes run as one forward of 2x the batch

    def to_dict(self) -> dict[str, Any]:
        return _opt({"name": self.name, "frames": self.frames, "frames_requested": self.frames_requested,
                     "height": self.height, "width": self.width, "steps": self.steps, "text_len": self.text_len,
                     "batch": self.batch, "guidance_scale": self.guidance_scale, "passes_per_step": self.passes_per_step,
                     "latent_shape": list(self.latent_shape), "tokens": self.tokens, "dims": dict(self.dims),
                     "dtype": self.dtype}, cfg=self.cfg)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> WorkloadInfo:
        return cls(d["name"], d["frames"], d["frames_requested"], d["height"], d["width"], d["steps"], d["text_len"],
                   d["batch"], d["guidance_scale"], d["passes_per_step"], tuple(d["latent_shape"]), d["tokens"],
                   d["dims"], d["dtype"], d.get("cfg"))


@dataclass(frozen=True)
class TraceInfo:
    mode: str
    exporter: str
    graph_nodes: int
    replicated_blocks: Mapping[str, int]
    symbols: tuple[str, ...]
    guards: Mapping[str, tuple[int, int]]
    seconds: float
    cache: str
    analysis_schema: int
    options: Mapping[str, Any]
    rules: str

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "exporter": self.exporter, "graph_nodes": self.graph_nodes,
                "replicated_blocks": dict(self.replicated_blocks), "symbols": list(self.symbols),
                "guards": {k: list(v) for k, v in self.guards.items()}, "seconds": self.seconds, "cache": self.cache,
                "analysis_schema": self.analysis_schema, "options": dict(self.options), "rules": self.rules}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TraceInfo:
        return cls(d["mode"], d["exporter"], d["graph_nodes"], d["replicated_blocks"], tuple(d["symbols"]),
                   {k: (v[0], v[1]) for k, v in d["guards"].items()}, d["seconds"], d["cache"], d.get("analysis_schema", 0),
                   d.get("options", {}), d.get("rules", ""))  # the schema leaves the last three optional


@dataclass(frozen=True)
class FitInfo:
    fits: bool
    required_bytes: int
    device_bytes: int
    statement: str

    @property
    def headroom_bytes(self) -> int:
        """Device memory left after weights + peak activations (negative: short by that much)."""
        return self.device_bytes - self.required_bytes

    def to_dict(self) -> dict[str, Any]:
        return {"fits": self.fits, "required_bytes": self.required_bytes, "device_bytes": self.device_bytes,
                "statement": self.statement, "headroom_bytes": self.headroom_bytes}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> FitInfo | None:
        return None if d is None else cls(d["fits"], d["required_bytes"], d["device_bytes"], d["statement"])


@dataclass(frozen=True)
class MemoryInfo:
    weight_bytes: int
    weight_bytes_by_dtype: Mapping[str, int]
    parameters_by_dtype: Mapping[str, int]
    activation_peak_bytes: int
    activation_peak_node: str | None
    activation_peak_module: str | None
    activation_model: str
    precision: str
    weight_precision: str
    fit: FitInfo | None = None
    activation_batch: int | None = None

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.activation_peak_bytes

    def to_dict(self) -> dict[str, Any]:
        return _opt({"weight_bytes": self.weight_bytes, "weight_bytes_by_dtype": dict(self.weight_bytes_by_dtype),
                     "parameters_by_dtype": dict(self.parameters_by_dtype),
                     "activation_peak_bytes": self.activation_peak_bytes, "peak_activation_bytes": self.activation_peak_bytes,
                     "activation_peak_node": self.activation_peak_node, "activation_peak_module": self.activation_peak_module,
                     "activation_model": self.activation_model, "total_bytes": self.total_bytes,
                     "precision": self.precision, "weight_precision": self.weight_precision},
                    fit=self.fit.to_dict() if self.fit else None, activation_batch=self.activation_batch)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MemoryInfo:
        return cls(d["weight_bytes"], d["weight_bytes_by_dtype"], d["parameters_by_dtype"], d["activation_peak_bytes"],
                   d.get("activation_peak_node"), d.get("activation_peak_module"), d.get("activation_model", ""),
                   d.get("precision", "bf16"), d.get("weight_precision", "as traced"), FitInfo.from_dict(d.get("fit")),
                   d.get("activation_batch"))


@dataclass(frozen=True)
class HardwareInfo:
    """The device a report's seconds are for, its peaks and the time model."""

    device: Mapping[str, Any]  # the device table's entry (name, label, peaks, sources...)
    precision: str
    efficiency: Mapping[str, float]
    peaks_used: Mapping[str, float]
    ridge_point_flop_per_byte: Mapping[str, float]
    model: str
    seconds_by_limiter_per_forward: Mapping[str, float]
    stand_ins: tuple[Mapping[str, Any], ...] = ()  # kernel-model constants measured on another device (StandIn.to_dict)

    @property
    def label(self) -> str:
        return str(self.device.get("label", self.device.get("name", "")))

    def to_dict(self) -> dict[str, Any]:
        return _opt({**self.device, "precision": self.precision, "efficiency": dict(self.efficiency),
                     "peaks_used": dict(self.peaks_used), "ridge_point_flop_per_byte": dict(self.ridge_point_flop_per_byte),
                     "model": self.model, "seconds_by_limiter_per_forward": dict(self.seconds_by_limiter_per_forward)},
                    stand_ins=[dict(x) for x in self.stand_ins] or None)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> HardwareInfo | None:
        if d is None:
            return None
        own = {"precision", "efficiency", "peaks_used", "ridge_point_flop_per_byte", "model", "seconds_by_limiter_per_forward",
               "stand_ins"}
        return cls({k: v for k, v in d.items() if k not in own}, d["precision"], d["efficiency"], d["peaks_used"],
                   d["ridge_point_flop_per_byte"], d.get("model", ""), d["seconds_by_limiter_per_forward"],
                   tuple(d.get("stand_ins") or ()))


@dataclass(frozen=True)
class ComponentInfo:
    """One model of a multi-model pipeline (the experts of Wan2.2-A14B): its steps and cost."""

    name: str
    role: str
    steps: int
    step_share: float
    timesteps: tuple[float, ...]
    parameters: int
    weight_bytes: int
    end_to_end: Metrics
    per_forward: Metrics | None = None
    config: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _opt({"name": self.name, "role": self.role, "steps": self.steps, "step_share": self.step_share,
                     "timesteps": list(self.timesteps), "parameters": self.parameters, "weight_bytes": self.weight_bytes,
                     "end_to_end": self.end_to_end.to_dict()},
                    per_forward=self.per_forward.to_dict() if self.per_forward else None, config=self.config)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ComponentInfo:
        return cls(d["name"], d.get("role", ""), d["steps"], d.get("step_share", 0.0), tuple(d.get("timesteps", ())),
                   d.get("parameters", 0), d.get("weight_bytes", 0), Metrics.from_dict(d["end_to_end"]),
                   Metrics.from_dict(d["per_forward"]) if d.get("per_forward") else None, d.get("config"))


@dataclass(frozen=True)
class DeviceInfo:
    """One device of the side-by-side table (``--hardware h100,a100``): a whole generation on it."""

    name: str
    label: str
    bound_seconds: float
    predicted_seconds: float
    predicted_by: str
    generations_per_hour: float
    gpu_hours: float
    fits: bool
    fit: str
    price_per_hour: float | None = None
    dollars: float | None = None
    fits_with: str | None = None  # the offload policy that makes it fit, when the report's does not
    stand_ins: tuple[Mapping[str, Any], ...] = ()  # kernel-model constants measured on another device (StandIn.to_dict)

    def to_dict(self) -> dict[str, Any]:
        return _opt({"name": self.name, "label": self.label, "bound_seconds": self.bound_seconds,
                     "predicted_seconds": self.predicted_seconds, "predicted_by": self.predicted_by,
                     "generations_per_hour": self.generations_per_hour, "gpu_hours": self.gpu_hours,
                     "fits": self.fits, "fit": self.fit},
                    price_per_hour=self.price_per_hour, dollars=self.dollars, fits_with=self.fits_with,
                    stand_ins=[dict(x) for x in self.stand_ins] or None)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DeviceInfo:
        return cls(d["name"], d["label"], d["bound_seconds"], d["predicted_seconds"], d.get("predicted_by", ""),
                   d["generations_per_hour"], d["gpu_hours"], d["fits"], d.get("fit", ""), d.get("price_per_hour"),
                   d.get("dollars"), d.get("fits_with"), tuple(d.get("stand_ins") or ()))


@dataclass(frozen=True)
class OpRow:
    """One aten op of a stage: how many calls and what they cost together (one run)."""

    op: str
    count: int
    per_run: Metrics

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "count": self.count, "per_run": self.per_run.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OpRow:
        return cls(d["op"], d["count"], Metrics.from_dict(d["per_run"]))


@dataclass(frozen=True)
class StageRow:
    """One stage of the pipeline: what one run costs, how many runs, its weights and activations.

    ``modules``, ``categories`` and ``ops`` describe a stage other than the denoisers (whose
    modules are the report's top-level ``modules``); ``per_run`` holds its bound (and
    predicted) seconds with a device.
    """

    name: str
    component: str
    cls: str
    role: str
    root: str
    call: str  # the adapter making the pipeline's call
    runs: int
    batch_factor: int
    dtype: str
    denoiser: bool
    per_run: Total
    end_to_end: Total
    parameters: int
    weight_bytes: int  # the component's weights (as loaded: a VAE's encoder too)
    graph_weight_bytes: int  # the weights this stage's graph reads
    activation_peak_bytes: int
    activation_peak_module: str | None
    dims: Mapping[str, int]
    trace: Mapping[str, Any]
    modules: tuple[ModuleRow, ...] = ()
    categories: Mapping[str, CategoryRow] = field(default_factory=dict)
    ops: tuple[OpRow, ...] = ()
    unmodeled: tuple[Unmodeled, ...] = ()
    on_host: bool = False

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name, "component": self.component, "class": self.cls, "role": self.role, "root": self.root,
            "call": self.call, "runs": self.runs, "batch_factor": self.batch_factor, "dtype": self.dtype,
            "denoiser": self.denoiser, "per_run": self.per_run.to_dict(), "end_to_end": self.end_to_end.to_dict(),
            "parameters": self.parameters, "weight_bytes": self.weight_bytes,
            "graph_weight_bytes": self.graph_weight_bytes, "activation_peak_bytes": self.activation_peak_bytes,
            "activation_peak_module": self.activation_peak_module, "dims": dict(self.dims), "trace": dict(self.trace),
            "unmodeled_ops": [u.to_dict() for u in self.unmodeled], "on_host": self.on_host,
        }
        if not self.denoiser:
            d["modules"] = [m.to_dict() for m in self.modules]
            d["categories"] = {k: c.to_dict() for k, c in self.categories.items()}
            d["ops"] = [o.to_dict() for o in self.ops]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StageRow:
        return cls(
            d["name"], d["component"], d["class"], d["role"], d["root"], d["call"], d["runs"], d["batch_factor"],
            d["dtype"], d["denoiser"], Total.from_dict(d["per_run"]), Total.from_dict(d["end_to_end"]),
            d["parameters"], d["weight_bytes"], d["graph_weight_bytes"], d["activation_peak_bytes"],
            d.get("activation_peak_module"), d["dims"], d.get("trace", {}),
            tuple(ModuleRow.from_dict(m) for m in d.get("modules", ())),
            {k: CategoryRow.from_dict(c) for k, c in d.get("categories", {}).items()},
            tuple(OpRow.from_dict(o) for o in d.get("ops", ())),
            tuple(Unmodeled.from_dict(u) for u in d.get("unmodeled_ops", ())), d.get("on_host", False),
        )


@dataclass(frozen=True)
class PipelineInfo:
    """The whole generation: every stage asked for (``--stages``), end to end, and where the weights live.

    ``end_to_end``: the stages' runs summed; its seconds are the stages' plus the residency's
    host<->device copies (``transfer_seconds``).  ``residency``: the ``--offload`` policy, stage by
    stage; ``policies``: the device memory every policy of this pipeline needs (the fit check).
    """

    stages: tuple[StageRow, ...]
    end_to_end: Total
    compute_seconds: float | None
    transfer_seconds: float | None
    weight_bytes: int
    parameters: int
    residency: Mapping[str, Any]
    policies: tuple[Mapping[str, Any], ...]
    notes: tuple[str, ...] = ()

    def stage(self, name: str) -> StageRow:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"stages": [s.to_dict() for s in self.stages], "end_to_end": self.end_to_end.to_dict(),
                "compute_seconds": self.compute_seconds, "transfer_seconds": self.transfer_seconds,
                "weight_bytes": self.weight_bytes, "parameters": self.parameters, "residency": dict(self.residency),
                "policies": [dict(p) for p in self.policies], "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> PipelineInfo | None:
        if d is None:
            return None
        return cls(tuple(StageRow.from_dict(s) for s in d["stages"]), Total.from_dict(d["end_to_end"]),
                   d.get("compute_seconds"), d.get("transfer_seconds"), d["weight_bytes"], d["parameters"],
                   d.get("residency", {}), tuple(d.get("policies", ())), tuple(d.get("notes", ())))


# -- the report ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportDocument:
    """One fxmeter report (typed).  ``to_dict()``/``data`` is report.json's document."""

    run_id: str
    tool: Mapping[str, str]
    model: ModelInfo
    workload: WorkloadInfo
    trace: TraceInfo
    counting: Mapping[str, str]
    totals: Totals
    memory: MemoryInfo
    activation_blocks: Mapping[str, Any]
    modules: tuple[ModuleRow, ...]
    categories: Mapping[str, CategoryRow]
    unmodeled_ops: tuple[Unmodeled, ...]
    nodes: tuple[NodeRow, ...]
    notes: tuple[str, ...]
    hardware: HardwareInfo | None = None
    components: tuple[ComponentInfo, ...] | None = None
    devices: tuple[DeviceInfo, ...] | None = None
    deployment: DeploymentInfo | None = None  # a generation on several GPUs (--gpus)
    scaling: tuple[ScalingRow, ...] | None = None  # one row per GPU count (fxmeter scale)
    pipeline: PipelineInfo | None = None
    plan: PlanInfo | None = None  # fxmeter plan --write: the search this report is the fastest row of
    extra: Mapping[str, Any] = field(default_factory=dict)  # sections of later schemas this fxmeter passes through
    path: Path | None = field(default=None, compare=False)  # the report.json it was loaded from

    schema_version = SCHEMA_VERSION

    # -- access ---------------------------------------------------------------------------
    @cached_property
    def data(self) -> dict[str, Any]:
        """The JSON document (built once; treat it as read-only)."""
        return self.to_dict()

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    @property
    def slug(self) -> str:
        return self.model.slug

    @property
    def per_forward(self) -> dict[str, Any]:
        """One forward of the denoising transformer (the transformer ALONE): counts and, with a device, seconds."""
        return self.totals.per_forward.to_dict()

    @property
    def end_to_end(self) -> dict[str, Any]:
        """The denoising transformer ALONE over every forward of the generation (steps x passes, fewer under
        ``--cache-skip``), on one GPU: counts and, with a device, ``bound_seconds``/``predicted_seconds``.

        Not the whole generation: the text encoder, the VAE and the host<->device copies of an
        ``--offload`` policy are left out.  :attr:`generation` is the whole generation; with ``--gpus N``
        ``deployment.predicted_seconds`` is the whole generation on the N GPUs."""
        return self.totals.end_to_end.to_dict()

    @property
    def generation(self) -> dict[str, Any] | None:
        """The WHOLE generation on one GPU: every pipeline stage asked for (text encoder, transformer, VAE, ...)
        summed, its seconds including the ``--offload`` policy's host<->device copies.

        Keys: the counts and seconds of :attr:`end_to_end`, plus ``stages`` (name -> runs), ``scope``
        (``"whole generation"``, or ``"stages asked for"`` under ``--stages``), ``transfer_seconds`` and
        ``gpus`` (1; with ``--gpus N`` also ``deployment_gpus`` and ``deployment_predicted_seconds``, the
        same generation on the N GPUs).  None when the report has no pipeline (a bare transformer
        config: the text encoder and VAE were not modeled, see ``notes``)."""
        p = self.pipeline
        if p is None:
            return None
        d = p.end_to_end.to_dict()
        chosen = self.trace.options.get("stages")
        d.update(stages={st.name: st.runs for st in p.stages},
                 scope="whole generation" if not chosen or chosen == "all" else "stages asked for",
                 transfer_seconds=p.transfer_seconds, gpus=1)
        if self.deployment is not None:
            d.update(deployment_gpus=self.deployment.gpus, deployment_predicted_seconds=self.deployment.predicted_seconds)
        return d

    def module(self, module_id: str) -> ModuleRow:
        for m in self.modules:
            if m.id == module_id:
                return m
        raise KeyError(module_id)

    def __repr__(self) -> str:
        from fxmeter.base.units import human

        tc = self.totals.per_forward.metrics.tensor_core_flops
        return f"<Report {self.model.id} @ {self.workload.name}: {human(tc, 'FLOP')}/forward (tensor-core), run {self.run_id}>"

    # -- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "tool": dict(self.tool),
            "model": self.model.to_dict(),
            "workload": self.workload.to_dict(),
            "trace": self.trace.to_dict(),
            "counting": dict(self.counting),
            "totals": self.totals.to_dict(),
            "memory": self.memory.to_dict(),
            "activation_blocks": dict(self.activation_blocks),
            "modules": [m.to_dict() for m in self.modules],
            "categories": {k: c.to_dict() for k, c in self.categories.items()},
            "unmodeled_ops": [u.to_dict() for u in self.unmodeled_ops],
            "nodes": [n.to_dict() for n in self.nodes],
            "notes": list(self.notes),
        }
        if self.hardware is not None:
            d["hardware"] = self.hardware.to_dict()
        if self.components is not None:
            d["components"] = [c.to_dict() for c in self.components]
        if self.devices is not None:
            d["devices"] = [x.to_dict() for x in self.devices]
        if self.deployment is not None:
            d["deployment"] = self.deployment.to_dict()
        if self.scaling is not None:
            d["scaling"] = [r.to_dict() for r in self.scaling]
        if self.pipeline is not None:
            d["pipeline"] = self.pipeline.to_dict()
        if self.plan is not None:
            d["plan"] = self.plan.to_dict()
        for k, v in self.extra.items():
            d.setdefault(k, v)
        return d

    def to_json(self) -> bytes:
        """Sorted keys, 2-space indent; integers exact at any size."""
        return fileio.dumps(self.data)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: Path | None = None) -> Any:
        """The typed report of a report.json document.

        Raises:
            ReportError: ``d`` is not a valid fxmeter report (the message names what is wrong);
                a document :func:`validate` accepts is read without a second check.
        """
        try:
            return cls._from_dict(d, path)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            validate(d, "the document")  # names the first wrong JSON path
            raise ReportError(f"the document is not a report fxmeter can read ({type(e).__name__}: {e})") from None

    @classmethod
    def _from_dict(cls, d: Mapping[str, Any], path: Path | None = None) -> Any:
        known = {f.name for f in fields(cls)} | {"schema_version", "unmodeled_ops"}
        return cls(
            run_id=d["run_id"], tool=d["tool"], model=ModelInfo.from_dict(d["model"]),
            workload=WorkloadInfo.from_dict(d["workload"]), trace=TraceInfo.from_dict(d["trace"]),
            counting=d["counting"], totals=Totals.from_dict(d["totals"]), memory=MemoryInfo.from_dict(d["memory"]),
            activation_blocks=d.get("activation_blocks", {}),
            modules=tuple(ModuleRow.from_dict(m) for m in d["modules"]),
            categories={k: CategoryRow.from_dict(c) for k, c in d["categories"].items()},
            unmodeled_ops=tuple(Unmodeled.from_dict(u) for u in d["unmodeled_ops"]),
            nodes=tuple(NodeRow.from_dict(n) for n in d.get("nodes", ())), notes=tuple(d["notes"]),
            hardware=HardwareInfo.from_dict(d.get("hardware")),
            components=tuple(ComponentInfo.from_dict(c) for c in d["components"]) if d.get("components") else None,
            devices=tuple(DeviceInfo.from_dict(x) for x in d["devices"]) if d.get("devices") else None,
            deployment=DeploymentInfo.from_dict(d.get("deployment")),
            scaling=tuple(ScalingRow.from_dict(r) for r in d["scaling"]) if d.get("scaling") else None,
            pipeline=PipelineInfo.from_dict(d.get("pipeline")),
            plan=PlanInfo.from_dict(d.get("plan")),
            extra={k: v for k, v in d.items() if k not in known},
            path=path,
        )

    @classmethod
    def load(cls, path: str | Path) -> Any:
        """Read and validate a report.json, the folder holding it, or a run folder.

        A run folder (``<output-root>/<run_id>``) must hold exactly one
        ``static_analysis/*/report.json``.  A missing, unreadable, truncated or malformed
        file raises :class:`ReportError` with a one-line message naming the file (and, for
        a document of the wrong shape, the JSON path).
        """
        p = find_report(path)
        data = validate(loads(read_regular(p, "report"), p), str(p))
        return cls.from_dict(data, path=p)


def as_document(obj: Any) -> ReportDocument:
    """A :class:`ReportDocument` from a report, a report.json document (validated) or a path."""
    if isinstance(obj, ReportDocument):
        return obj
    if isinstance(obj, (str, Path)):
        return ReportDocument.load(obj)  # type: ignore[no-any-return]
    return ReportDocument.from_dict(validate(obj))  # type: ignore[no-any-return]


# -- reading files -----------------------------------------------------------------------------
def find_report(path: str | Path) -> Path:
    """``path`` itself, ``path/report.json``, or the single ``path/static_analysis/*/report.json`` of a run folder."""
    p = Path(path)
    try:
        if not p.is_dir():
            return p
    except OSError as e:
        raise ReportError(f"cannot use {p}: {e.strerror or e}") from None
    if p.suffix == ".json":
        raise ReportError(f"{p} is a folder, not a report file")
    if (p / "report.json").is_file():
        return p / "report.json"
    found = sorted(p.glob("static_analysis/*/report.json"))
    if not found and p.name == "static_analysis":
        found = sorted(p.glob("*/report.json"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise ReportError(f"no report.json in {p} (nor in a run folder's static_analysis/*/)")
    raise ReportError(f"{p} holds {len(found)} reports; name one: {', '.join(str(f) for f in found)}")


def read_regular(p: Path, what: str, limit: int = MAX_REPORT_BYTES) -> bytes:
    """The bytes of a regular file (never a folder, a FIFO or a device), one-line errors."""
    return fileio.read_bytes(p, what, limit=limit, error=ReportError, missing=f"no such {what} file: {p}")


def loads(blob: bytes, where: str | Path = "report") -> Any:
    """Parse JSON bytes; integers of any size stay exact (see :func:`fxmeter.base.fileio.loads`)."""
    try:
        return fileio.loads(blob)
    except orjson.JSONDecodeError as e:
        raise ReportError(f"{where} is not a JSON file: {str(e).splitlines()[0][:200]}") from None
    except (ValueError, RecursionError) as e:  # int-string limit, nesting
        raise ReportError(f"{where} is not a JSON file: {str(e).splitlines()[0][:200]}") from None


def dumps(obj: Any, *, indent: bool = True) -> bytes:
    """JSON bytes with sorted keys; integers beyond 64 bits stay exact (see :func:`fxmeter.base.fileio.dumps`)."""
    return fileio.dumps(obj, indent=indent)


# -- the schema ----------------------------------------------------------------------------------
def validate(data: Any, where: str = "report") -> dict[str, Any]:
    """``data`` if it is an fxmeter report of this schema_version, else a one-line :class:`ReportError`.

    The shape is checked against ``fxmeter/data/report.schema.json`` (JSON Schema
    2020-12); the message names the first JSON path that is wrong.
    """
    tool = data.get("tool") if isinstance(data, dict) else None
    if not isinstance(tool, dict) or tool.get("name") != "fxmeter":
        raise ReportError(f"{where} is not an fxmeter report")
    version = data.get("schema_version")
    if type(version) is not int or version != SCHEMA_VERSION:
        raise ReportError(f"{where} has schema_version {short(version)}; this fxmeter reads {SCHEMA_VERSION} "
                          "(re-run the trace with this fxmeter)")
    problem = schema_problem(data)
    if problem:
        raise ReportError(f"{where} is not a valid fxmeter report: {problem}")
    return data  # type: ignore[no-any-return]
__all__ = ["ReportDocument", "report_schema", "schema_problem", "schema_validator", "validate"]
