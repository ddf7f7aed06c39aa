"""The typed report: frozen dataclasses <-> report.json (schema 2), validated by a shipped JSON Schema.

:class:`ReportDocument` is the value every renderer (summary.md, ``top``, ``compare``, charts,
HTML) reads; :func:`fxmeter.report.build.build` makes it from an estimate, and
:meth:`ReportDocument.load` from a report.json (checked against
``fxmeter/data/report.schema.json`` first, so a malformed file is one clear error, never a
crash in a renderer).  ``to_dict()`` is the JSON document (sorted keys when written);
``.data`` is that dict, built once.  Field names documented in the README are a contract.

The sections and rows are typed records (:mod:`fxmeter.report.sections`,
:mod:`fxmeter.report.deployment`, :mod:`fxmeter.report.plan`); their JSON keys, readers and the JSON
Schema are all generated from the dataclasses by :mod:`fxmeter.base.records`
(``python -m fxmeter.report.schema --write`` regenerates the shipped schema file).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import orjson

from fxmeter.base import fileio, records
from fxmeter.base.records import FIRST, Derived, Record, Schema, key, omit_none
from fxmeter.errors import ReportError, RunIdError
from fxmeter.report.checker import report_schema, schema_problem, schema_validator, short
from fxmeter.report.deployment import DeploymentInfo, ScalingRow
from fxmeter.report.plan import PlanInfo
from fxmeter.report.sections import (
    CategoryRow,
    ComponentInfo,
    DeviceInfo,
    FitInfo,
    HardwareInfo,
    MemoryInfo,
    ModelInfo,
    ModuleRow,
    ModuleTimes,
    NodeRow,
    OpRow,
    PipelineInfo,
    StageRow,
    Total,
    Totals,
    TraceInfo,
    Unmodeled,
    WorkloadInfo,
)

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


_TOOL = {"required": ["name", "fxmeter", "torch", "diffusers"], "properties": {
    "name": {"const": "fxmeter"}, "fxmeter": {"type": "string"}, "torch": {"type": "string"},
    "diffusers": {"type": "string"}}}
_ACTIVATION_BLOCKS = {"properties": {"live_bytes_max": {"$ref": "#/$defs/countMap"}, "note": {"type": "string"}}}


# -- the report ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportDocument(Record):
    """One fxmeter report (typed).  ``to_dict()``/``data`` is report.json's document."""

    json_doc = ("What fxmeter writes as report.json and what every reader (top, compare, summary, verify, the golden "
                "plugin) relies on. Counts and bytes are integers of unbounded size; shares, seconds and peaks are numbers. "
                "Keys not listed here are allowed (forward-compatible additions within schema_version 2).")
    json_derived = (Derived("schema_version", Annotated[int, Schema(const=SCHEMA_VERSION)], after=FIRST),)
    json_schema = {"dependentSchemas": {"hardware": {
        "description": "A report with a device has bound seconds (the roofline at 100% of the peaks) in its totals and "
                       "names its traffic model.",
        "properties": {"counting": {"required": ["traffic_model"]},
                       "totals": {"properties": {k: {"required": ["bound_seconds"]}
                                                 for k in ("per_forward", "per_step", "end_to_end")}}}}}}

    run_id: str = field(metadata=key(schema={"minLength": 1}))
    tool: Mapping[str, str] = field(metadata=key(schema=_TOOL))
    model: ModelInfo
    workload: WorkloadInfo
    trace: TraceInfo
    counting: Mapping[str, str]
    totals: Totals
    memory: MemoryInfo
    activation_blocks: Mapping[str, Any] = field(metadata=key(missing={}, schema=_ACTIVATION_BLOCKS))
    modules: tuple[ModuleRow, ...] = field(metadata=key(schema={"minItems": 1}))
    categories: Mapping[str, CategoryRow]
    unmodeled_ops: tuple[Unmodeled, ...]
    nodes: tuple[NodeRow, ...] = field(metadata=key(missing=(), required=True))
    notes: tuple[str, ...]
    hardware: HardwareInfo | None = field(default=None, metadata=omit_none())
    components: tuple[ComponentInfo, ...] | None = field(default=None, metadata=omit_none(falsy_missing=True))
    devices: tuple[DeviceInfo, ...] | None = field(default=None, metadata=omit_none(falsy_missing=True, doc="a whole generation on each device of --hardware a,b,c"))
    # a generation on several GPUs (--gpus)
    deployment: DeploymentInfo | None = field(default=None, metadata=omit_none())
    # one row per GPU count (fxmeter scale)
    scaling: tuple[ScalingRow, ...] | None = field(default=None, metadata=omit_none(falsy_missing=True, doc="one row per GPU count (fxmeter scale)"))
    pipeline: PipelineInfo | None = field(default=None, metadata=omit_none())
    plan: PlanInfo | None = field(default=None, metadata=omit_none())  # fxmeter plan --write: the search this report is the fastest row of
    # sections of later schemas this fxmeter passes through (every key no field above claims)
    extra: Mapping[str, Any] = field(default_factory=dict, metadata=key(rest=True))
    path: Path | None = field(default=None, compare=False, metadata=key(skip=True))  # the report.json it was loaded from

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

    # -- serialisation (fxmeter.base.records: to_dict() is the inherited walker) ---------------
    def to_json(self) -> bytes:
        """Sorted keys, 2-space indent; integers exact at any size."""
        return fileio.dumps(self.data)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: Path | None = None) -> Any:  # type: ignore[override]
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
        return records.from_dict(cls, d, path=path)

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
__all__ = ["SCHEMA_VERSION", "CategoryRow", "ComponentInfo", "DeviceInfo", "FitInfo", "HardwareInfo", "MemoryInfo",
           "ModelInfo", "ModuleRow", "ModuleTimes", "NodeRow", "OpRow", "PipelineInfo", "ReportDocument", "StageRow",
           "Total", "Totals", "TraceInfo", "Unmodeled", "WorkloadInfo", "report_schema", "schema_problem",
           "schema_validator", "validate"]
