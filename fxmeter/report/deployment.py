"""report.json's ``deployment`` (a generation on N GPUs) and ``scaling`` (one row per GPU count), typed,
and how summary.md and the console show them.

``deployment`` is written by ``fxmeter trace --gpus N --parallel ... [--fsdp] --hardware DEV``;
``scaling`` by ``fxmeter scale`` (the rows :func:`fxmeter.report.html` draws).  Both are built from
:class:`fxmeter.estimate.deploy.Deployment` by :func:`deployment_info` / :func:`scaling_row` and read
back by ``from_dict`` (:mod:`fxmeter.base.records`; the JSON Schema, generated from these records, has checked
the shape first).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fxmeter.base.records import Count, Positive, Ratio, Record, Schema, Seconds, key
from fxmeter.base.units import human, human_bytes, seconds, si_bytes
from fxmeter.estimate.deploy import link_text, multi_node_warning
from fxmeter.estimate.metrics import Metrics

if TYPE_CHECKING:
    from fxmeter.estimate.deploy import Deployment


def _read_per_gpu(d: Mapping[str, Any]) -> dict[str, Any]:
    """``per_gpu`` keeps its two forwards as Metrics (the rest of it is free-form)."""
    return {k: (Metrics.from_dict(v) if k in ("per_forward", "single_gpu_per_forward") else v) for k, v in d.items()}


@dataclass(frozen=True)
class StageRow(Record):
    """One stage on the plan's GPUs (per GPU)."""

    json_def = "deployment_stage"

    name: str
    split: bool = field(metadata=key(doc="false: runs on one GPU (outside the denoising loop)"))
    forwards_per_gpu: Count
    per_forward: Metrics
    single_gpu_per_forward: Metrics
    predicted_seconds_per_forward: Seconds
    bound_seconds_per_forward: Seconds
    single_gpu_predicted_seconds_per_forward: Seconds
    exposed_comm_seconds: Seconds
    overlapped_comm_seconds: Seconds
    seconds: Seconds
    single_gpu_seconds: Seconds
    tokens_per_gpu: int | None = field(metadata=key(schema={"minimum": 1}))
    weight_bytes_per_gpu: Count
    activation_bytes_per_gpu: Count


@dataclass(frozen=True)
class CommInfo(Record):
    """One collective: calls per generation, bytes per call per rank, seconds per call, exposed/overlapped seconds."""

    json_def = "collective"

    stage: str
    kind: str = field(metadata=key(schema={"enum": ["all_to_all", "all_gather", "reduce_scatter", "all_reduce", "p2p", "host_to_device",
                                     "device_to_host"]}))
    what: str
    ranks: Positive
    link: str
    count: Count = field(metadata=key(doc="calls per generation on each GPU of the group"))
    bytes: Count = field(metadata=key(doc="bytes per call per rank, nccl-tests' size convention for the kind"))
    seconds: Seconds = field(metadata=key(doc="one call"))
    exposed_seconds: Seconds = field(metadata=key(doc="every call of a generation, on the critical path"))
    overlapped_seconds: Seconds = field(metadata=key(doc="every call of a generation, hidden behind compute"))
    overlappable: bool


_PARALLEL = {"required": ["gpus", "ulysses", "ring", "cfg", "tp", "fsdp", "spec"], "properties": {
    "gpus": {"$ref": "#/$defs/positive"}, "ulysses": {"$ref": "#/$defs/positive"}, "ring": {"$ref": "#/$defs/positive"},
    "cfg": {"enum": [1, 2]}, "tp": {"$ref": "#/$defs/positive"}, "fsdp": {"type": "boolean"}, "spec": {"type": "string"}}}
_DEVICE = {"required": ["name", "label"], "properties": {"name": {"type": "string"}, "label": {"type": "string"}}}
_INTERCONNECT = {"required": ["kind", "bandwidth", "text"], "properties": {
    "kind": {"enum": ["nvlink", "xgmi", "pcie"]}, "generation": {"type": ["integer", "null"]},
    "bandwidth": {"type": "number", "exclusiveMinimum": 0, "description": "bytes/s per GPU per direction"},
    "bandwidth_bidirectional": {"type": ["number", "null"]}, "via_host": {"type": "boolean"},
    "text": {"type": "string"}, "sources": {"type": "string"}}}
_PER_GPU = {"required": ["stage", "per_forward", "single_gpu_per_forward"], "properties": {
    "stage": {"type": "string"}, "per_forward": {"$ref": "#/$defs/metrics"},
    "single_gpu_per_forward": {"$ref": "#/$defs/metrics"}, "tokens": {"type": ["integer", "null"]},
    "forwards_per_generation": {"$ref": "#/$defs/count"}}}
_MEMORY = {"required": ["weight_bytes_per_gpu", "activation_bytes_per_gpu", "total_bytes_per_gpu", "device_bytes", "fits",
                        "statement"], "properties": {
    "weight_bytes_per_gpu": {"$ref": "#/$defs/count"}, "activation_bytes_per_gpu": {"$ref": "#/$defs/count"},
    "total_bytes_per_gpu": {"$ref": "#/$defs/count"}, "device_bytes": {"$ref": "#/$defs/count"},
    "fits": {"type": "boolean"}, "statement": {"type": "string"}}}
_BY_KIND = Schema(required=["count", "bytes", "exposed_seconds", "overlapped_seconds"], properties={
    "count": {"$ref": "#/$defs/count"}, "bytes": {"$ref": "#/$defs/count"},
    "exposed_seconds": {"$ref": "#/$defs/seconds"}, "overlapped_seconds": {"$ref": "#/$defs/seconds"}})


@dataclass(frozen=True)
class DeploymentInfo(Record):
    """``deployment`` of report.json: the generation on ``gpus`` GPUs, per GPU, with its communication."""

    json_doc = "a generation on several GPUs (fxmeter trace --gpus N --parallel ... [--fsdp] --hardware DEV), per GPU"

    gpus: Positive
    parallel: Mapping[str, Any] = field(metadata=key(schema=_PARALLEL))  # ulysses, ring, cfg, tp, fsdp, spec
    device: Mapping[str, str] = field(metadata=key(schema=_DEVICE))  # name, label
    interconnect: Mapping[str, Any] = field(metadata=key(schema=_INTERCONNECT))  # kind, generation, bandwidth (per direction), text...
    # per_forward metrics of the first denoiser on one GPU, tokens, the single-GPU forward
    per_gpu: Mapping[str, Any] = field(metadata=key(schema=_PER_GPU, read=_read_per_gpu))
    memory: Mapping[str, Any] = field(metadata=key(schema=_MEMORY))  # weight / activation / total bytes per GPU, device bytes, fits...
    stages: tuple[StageRow, ...]
    communication: tuple[CommInfo, ...]
    communication_by_kind: Mapping[str, Annotated[Mapping[str, float | int], _BY_KIND]]
    predicted_seconds: Seconds
    bound_seconds: Seconds
    single_gpu_seconds: Seconds
    compute_seconds: Seconds
    exposed_comm_seconds: Seconds
    overlapped_comm_seconds: Seconds
    speedup: Ratio
    efficiency: Ratio
    comm_share: Ratio
    gpu_seconds: Seconds
    predicted_by: str
    overlap_rules: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def spec(self) -> str:
        return str(self.parallel.get("spec", "")) + (" + fsdp" if self.parallel.get("fsdp") else "")


@dataclass(frozen=True)
class ScalingRow(Record):
    """One GPU count of ``fxmeter scale`` (``scaling`` of report.json; the HTML page draws these)."""

    gpus: Positive
    parallel: str
    seconds: Seconds
    speedup: Ratio
    efficiency: Ratio
    memory_per_gpu: Count
    fits: bool
    comm_share: Ratio
    exposed_comm_seconds: Seconds
    bound_seconds: Seconds


# -- from the estimate ------------------------------------------------------------------------------
def deployment_info(dep: Deployment) -> DeploymentInfo:
    """The typed ``deployment`` section of ``dep``."""
    link = dep.interconnect
    split = [s for s in dep.stages if s.split]
    main = split[0] if split else dep.stages[0]
    return DeploymentInfo(
        gpus=dep.gpus,
        parallel={**dep.plan.to_dict(), "spec": dep.plan.spec()},
        device={"name": dep.device_name, "label": dep.device},
        interconnect={"kind": link.kind, "generation": link.generation, "bandwidth": link.bandwidth,
                      "bandwidth_bidirectional": link.bandwidth_bidirectional, "via_host": link.via_host,
                      "text": link_text(link) + " per direction",
                      "sources": link.sources},
        per_gpu={"stage": main.name, "per_forward": main.per_forward, "single_gpu_per_forward": main.single_gpu_per_forward,
                 "tokens": main.tokens_per_gpu, "forwards_per_generation": main.forwards_per_gpu},
        memory={"weight_bytes_per_gpu": dep.weight_bytes_per_gpu, "activation_bytes_per_gpu": dep.activation_bytes_per_gpu,
                "total_bytes_per_gpu": dep.weight_bytes_per_gpu + dep.activation_bytes_per_gpu,
                "device_bytes": dep.fit.device_bytes, "fits": dep.fit.fits, "statement": dep.fit.statement},
        stages=tuple(StageRow(s.name, s.split, s.forwards_per_gpu, s.per_forward, s.single_gpu_per_forward,
                              s.predicted_seconds_per_forward, s.bound_seconds_per_forward,
                              s.single_gpu_predicted_seconds_per_forward, s.exposed_comm_seconds,
                              s.overlapped_comm_seconds, s.seconds, s.single_gpu_seconds, s.tokens_per_gpu,
                              s.weight_bytes_per_gpu, s.activation_bytes_per_gpu) for s in dep.stages),
        communication=tuple(CommInfo(c.stage, c.kind, c.what, c.ranks, c.link, c.count, c.bytes, c.seconds,
                                     c.exposed_seconds, c.overlapped_seconds, c.overlappable) for c in dep.communication),
        communication_by_kind=dep.by_kind(),
        predicted_seconds=dep.predicted_seconds, bound_seconds=dep.bound_seconds,
        single_gpu_seconds=dep.single_gpu_seconds, compute_seconds=dep.compute_seconds,
        exposed_comm_seconds=dep.exposed_comm_seconds, overlapped_comm_seconds=dep.overlapped_comm_seconds,
        speedup=dep.speedup, efficiency=dep.efficiency, comm_share=dep.comm_share, gpu_seconds=dep.gpu_seconds,
        predicted_by=dep.predicted_by, overlap_rules=tuple(dep.overlap_rules), notes=tuple(dep.notes),
    )


def scaling_row(dep: Deployment) -> ScalingRow:
    return ScalingRow(dep.gpus, dep.plan.spec() + (" + fsdp" if dep.plan.fsdp else ""), dep.predicted_seconds,
                      dep.speedup, dep.efficiency, dep.weight_bytes_per_gpu + dep.activation_bytes_per_gpu, dep.fit.fits,
                      dep.comm_share, dep.exposed_comm_seconds, dep.bound_seconds)


# -- rendering ------------------------------------------------------------------------------------------
def _cost(d: DeploymentInfo, price_per_hour: float | None) -> str:
    """GPU-hours of one generation on the N GPUs (N x its predicted seconds) and, with a price, its dollars;
    none for a setup that does not fit (its seconds are what it would take if it did)."""
    if not d.memory.get("fits", True):
        return "no GPU-hours or $: it does NOT fit in each GPU's memory (the seconds above assume it did)"
    gpu_hours = d.gpu_seconds / 3600
    text = f"{gpu_hours:.4f} GPU-hours per generation ({d.gpus} x {seconds(d.predicted_seconds)})"
    if price_per_hour is not None:
        text += f", ${gpu_hours * price_per_hour:,.4f} at ${price_per_hour:g} per GPU-hour"
    return text


def console_lines(d: DeploymentInfo, price_per_hour: float | None = None) -> list[str]:
    """What ``fxmeter trace --gpus N`` prints under the device lines (``price_per_hour``: $ per GPU-hour)."""
    pf = d.per_gpu["per_forward"]
    lines = [
        f"  on {d.gpus} x {d.device['label']} ({d.spec}; {d.interconnect['text']}):",
        f"    predicted ({d.predicted_by}): {seconds(d.predicted_seconds)} per generation "
        f"({', '.join(s.name for s in d.stages)}); one GPU {seconds(d.single_gpu_seconds)}: "
        f"speed-up {d.speedup:.2f}x, parallel efficiency {100 * d.efficiency:.1f}%"
        + ("" if d.memory.get("fits", True) else " -- does NOT fit (seconds as if it did)"),
        f"    per GPU per forward: {human(pf.tensor_core_flops, 'FLOP')} tensor-core, {d.per_gpu.get('tokens') or '-'} tokens; "
        f"communication exposed {seconds(d.exposed_comm_seconds)} ({100 * d.comm_share:.1f}% of the time), "
        f"overlapped {seconds(d.overlapped_comm_seconds)}",
        f"    {_cost(d, price_per_hour)}",
        f"    {d.memory['statement']}",
    ]
    warn = multi_node_warning(d.gpus)
    if warn:
        lines.append(f"    warning: {warn}")
    return lines


def markdown(d: DeploymentInfo, price_per_hour: float | None = None) -> str:
    """summary.md's deployment section (``price_per_hour``: $ per GPU-hour, for the cost row)."""
    out = [f"## Deployment on {d.gpus} GPUs\n"]
    out.append(f"{d.gpus} x {d.device['label']}, plan `{d.spec}`, {d.interconnect['text']}. Predicted by the "
               f"{d.predicted_by} at each GPU's own shapes, plus the communication that compute cannot hide.\n")
    out.append("| | value |\n|---|---:|")
    rows = [("predicted seconds per generation", f"{d.predicted_seconds:,.2f}"),
            ("one GPU (same model)", f"{d.single_gpu_seconds:,.2f}"),
            ("speed-up", f"{d.speedup:.2f}x"), ("parallel efficiency = t1 / (N x tN)", f"{100 * d.efficiency:.1f}%"),
            ("cost", _cost(d, price_per_hour)),
            ("compute per GPU", f"{d.compute_seconds:,.2f} s"),
            ("communication exposed", f"{d.exposed_comm_seconds:,.2f} s ({100 * d.comm_share:.1f}%)"),
            ("communication overlapped", f"{d.overlapped_comm_seconds:,.2f} s"),
            ("bound (roofline per GPU, no communication)", f"{d.bound_seconds:,.2f} s"),
            ("weights per GPU", si_bytes(d.memory["weight_bytes_per_gpu"])),
            ("activations per GPU", si_bytes(d.memory["activation_bytes_per_gpu"])),
            ("fit", str(d.memory["statement"]))]
    out += [f"| {k} | {v.replace('|', '/')} |" for k, v in rows]
    out.append("\n| stage | forwards per GPU | tensor-core FLOPs per forward per GPU | s per forward | exposed comm s | "
               "stage s | one GPU s |\n|---|---:|---:|---:|---:|---:|---:|")
    for s in d.stages:
        out.append(f"| {s.name}{'' if s.split else ' (one GPU)'} | {s.forwards_per_gpu:,} | "
                   f"{s.per_forward.tensor_core_flops:,} | {s.predicted_seconds_per_forward:.4f} | "
                   f"{s.exposed_comm_seconds:,.3f} | {s.seconds:,.2f} | {s.single_gpu_seconds:,.2f} |")
    if d.communication:
        out.append("\n| collective | kind | ranks | calls per generation | bytes per call per rank | s per call | "
                   "exposed s | overlapped s |\n|---|---|---:|---:|---:|---:|---:|---:|")
        for c in d.communication:
            out.append(f"| {c.what.replace('|', '/')} | {c.kind} | {c.ranks} | {c.count:,} | {c.bytes:,} | "
                       f"{c.seconds * 1e3:.3f} ms | {c.exposed_seconds:,.3f} | {c.overlapped_seconds:,.3f} |")
    out.append("\nOverlap rules:\n")
    out += [f"- {r}" for r in d.overlap_rules]
    out.append("\nAssumptions:\n")
    out += [f"- {n}" for n in d.notes]
    return "\n".join(out) + "\n"


def scaling_table(rows: Sequence[ScalingRow]) -> list[str]:
    """The console table of ``fxmeter scale``: a GPU count that does not fit has its seconds starred and
    a note says what they mean (and, when no count fits, that none does)."""
    pw = max([len(r.parallel) for r in rows] + [36])
    head = (f"  {'GPUs':>4}  {'plan':<{pw}} {'predicted s':>12} {'speed-up':>9} {'efficiency':>10} "
            f"{'memory/GPU':>11} {'comm share':>10}  fits")
    out = [head]
    for r in rows:
        secs = f"{r.seconds:,.1f}" + ("" if r.fits else "*")
        out.append(f"  {r.gpus:>4}  {r.parallel:<{pw}} {secs:>12} {r.speedup:>8.2f}x {100 * r.efficiency:>9.1f}% "
                   f"{human_bytes(r.memory_per_gpu):>11} {100 * r.comm_share:>9.1f}%  "
                   f"{'yes' if r.fits else 'NO: does not fit'}")
    out += [f"  ({n})" for n in fit_notes(rows)]
    return out


def fit_notes(rows: Sequence[ScalingRow]) -> list[str]:
    """What the table, scale.png and report.html say about GPU counts that do not fit."""
    if all(r.fits for r in rows):
        return []
    notes = ["* does not fit in the GPU's memory: the seconds assume it did; no such run is possible as configured"]
    if not any(r.fits for r in rows):
        notes.append("no GPU count fits: try --offload model or sequential, --fsdp, more GPUs, or a larger device")
    return notes
