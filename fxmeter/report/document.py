"""The report object: a symbolic model evaluated for one workload.

:class:`Report` wraps the JSON document (``.data``); ``to_json()`` gives the
orjson bytes with sorted keys, ``write(dir)`` writes report.json and summary.md
atomically.  The field names documented in the README are a contract.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

from fxmeter.base import fileio as fileio
from fxmeter.base.fileio import atomic_write
from fxmeter.errors import ReportError, RunIdError

__all__ = ["Report", "atomic_write", "check_run_id", "check_writable", "validate", "write_files"]

SCHEMA_VERSION = 1
METRICS = ("tensor_core_flops", "cuda_core_flops", "bytes_read", "bytes_written")
RUN_ID_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
MAX_RUN_ID = 128
#: What a run folder holds that is derived from its report.json (stale once it is replaced).
DERIVED_FROM_REPORT = ("summary.md", "summary_categories.png", "summary_blocks.png", "verify")

NOTES = (
    "Counts the diffusion transformer only: the text encoder, the VAE encode/decode and the scheduler are not modeled.",
    "FLOP = 2 x multiply-accumulate for matmul, conv and attention (tensor-core FLOPs, as torch.utils.flop_counter counts).",
    "CUDA-core FLOPs use the per-element costs documented in each rules/ module (README: Counting semantics).",
    "Bytes are logical tensor sizes read and written per op (eager traffic model); views move nothing; attention is one IO-aware kernel.",
    "end_to_end = per_forward x steps x passes_per_step; memory does not scale with steps.",
)


def metrics_dict(values: list[int]) -> dict[str, int]:
    d = dict(zip(METRICS, values))
    d["flops"] = d["tensor_core_flops"] + d["cuda_core_flops"]
    return d


def scale(d: Mapping[str, int], k: int) -> dict[str, int]:
    return {m: v * k for m, v in d.items()}


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


class Report:
    """One fxmeter report (the document is ``.data``)."""

    def __init__(self, data: dict[str, Any]):
        self.data = data
        self.path: Path | None = None  # the report.json it was loaded from (Report.load)

    # -- access -----------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    @property
    def run_id(self) -> str:
        return str(self.data["run_id"])

    @property
    def slug(self) -> str:
        return str(self.data["model"].get("slug", "model"))

    def module(self, module_id: str) -> dict[str, Any]:
        for m in self.data["modules"]:
            if m["id"] == module_id:
                return m  # type: ignore[no-any-return]
        raise KeyError(module_id)

    @property
    def per_forward(self) -> dict[str, int]:
        return self.data["totals"]["per_forward"]  # type: ignore[no-any-return]

    @property
    def end_to_end(self) -> dict[str, int]:
        return self.data["totals"]["end_to_end"]  # type: ignore[no-any-return]

    # -- serialisation ----------------------------------------------------
    def to_json(self) -> bytes:
        """Sorted keys, 2-space indent; integers exact at any size."""
        return fileio.dumps(self.data)

    def summary_markdown(self) -> str:
        from fxmeter.report.summary import render

        return render(self.data)

    def output_dir(self, output_root: str | Path = "tmp/profile-output") -> Path:
        return check_output_root(output_root) / check_run_id(self.run_id) / "static_analysis" / self.slug

    def files(self, *, plots: bool = False) -> dict[str, bytes]:
        """report.json, summary.md and (with ``plots``) its charts, as bytes."""
        from fxmeter.report.summary import render_files

        return {"report.json": self.to_json(), **render_files(self.data, plots=plots)}

    def write(
        self,
        directory: str | Path | None = None,
        *,
        force: bool = False,
        output_root: str | Path = "tmp/profile-output",
        plots: bool = False,
    ) -> Path:
        """Write report.json and summary.md (and, with ``plots``, its PNG charts) into ``directory``.

        ``directory`` defaults to ``<output_root>/<run_id>/static_analysis/<slug>``.
        An existing report there is not overwritten unless ``force``.  Charts are
        opt-in because matplotlib costs ~1 s; ``fxmeter summary REPORT`` draws them later.
        The files appear together or not at all (:func:`write_files`); the run folder
        is claimed atomically, so of two concurrent writers of one run exactly one wins.
        """
        out = self.output_dir(output_root) if directory is None else Path(directory)
        write_files(out, self.files(plots=plots), "the report", claim="report.json", force=force,
                    whole=directory is None, drop=DERIVED_FROM_REPORT.__contains__)
        return out

    @classmethod
    def load(cls, path: str | Path) -> Report:
        """Read and validate a report.json, the folder holding it, or a run folder.

        A run folder (``<output-root>/<run_id>``) must hold exactly one
        ``static_analysis/*/report.json``.  A missing, unreadable, truncated or
        malformed file raises :class:`ReportError` with a one-line message naming
        the file (and, for a document of the wrong shape, the JSON path).
        """
        p = find_report(path)
        rep = cls(validate(loads(read_regular(p, "report"), p), str(p)))
        rep.path = p
        return rep

    def __repr__(self) -> str:
        d: dict[str, Any] = self.data if isinstance(self.data, dict) else {}
        try:
            head = f"{d['model']['id']} @ {d['workload']['name']}"
            tc = int(d["totals"]["per_forward"]["tensor_core_flops"])
        except (KeyError, TypeError, ValueError):
            return f"<Report (not a complete fxmeter report: {len(d)} top-level keys)>"
        from fxmeter.report.summary import human

        return f"<Report {head}: {human(tc, 'FLOP')}/forward (tensor-core), run {d.get('run_id')}>"


#: Larger than any report fxmeter writes (a --full-trace 14B report is a few MB).
MAX_REPORT_BYTES = fileio.MAX_REPORT_BYTES


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
    """Parse JSON bytes; integers of any size stay exact (see :func:`fxmeter.fileio.loads`)."""
    try:
        return fileio.loads(blob)
    except orjson.JSONDecodeError as e:
        raise ReportError(f"{where} is not a JSON file: {str(e).splitlines()[0][:200]}") from None
    except (ValueError, RecursionError) as e:  # int-string limit, nesting
        raise ReportError(f"{where} is not a JSON file: {str(e).splitlines()[0][:200]}") from None


def dumps(obj: Any, *, indent: bool = True) -> bytes:
    """JSON bytes with sorted keys; integers beyond 64 bits stay exact (see :func:`fxmeter.fileio.dumps`)."""
    return fileio.dumps(obj, indent=indent)


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
        raise ReportError(f"{where} has schema_version {_short(version)}; this fxmeter reads {SCHEMA_VERSION}")
    problem = schema_problem(data)
    if problem:
        raise ReportError(f"{where} is not a valid fxmeter report: {problem}")
    return data  # type: ignore[no-any-return]


def check_output_root(output_root: str | Path) -> Path:
    """``output_root`` as a Path; an empty one (which would mean the current folder) is refused."""
    if not str(output_root).strip():
        raise ReportError("empty --output-root: name a folder (default tmp/profile-output)")
    return Path(output_root)
def report_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of report.json, shipped as ``fxmeter/data/report.schema.json``."""
    return dict(_schema())


def _schema() -> dict[str, Any]:
    global _SCHEMA
    if _SCHEMA is None:
        from importlib import resources

        _SCHEMA = orjson.loads(resources.files("fxmeter.data").joinpath("report.schema.json").read_bytes())
    return _SCHEMA


_SCHEMA: dict[str, Any] | None = None
_FAST: Any = None


def schema_problem(data: Any) -> str | None:
    """None when ``data`` matches the report schema, else ``"<JSON path>: <what is wrong>"``.

    The verdict comes from jsonschema-rs (compiled: ~1 ms on a 14B report, where
    the pure-Python jsonschema takes ~0.3 s); the message from jsonschema's
    ``best_match`` over the same schema.  Without jsonschema-rs, jsonschema decides.
    """
    global _FAST
    if _FAST is None:
        try:
            import jsonschema_rs

            _FAST = jsonschema_rs.validator_for(_schema())
        except Exception:  # pragma: no cover - jsonschema-rs is a dependency; without it jsonschema decides
            _FAST = False
    fast_invalid = False
    if _FAST is not False:
        try:
            if _FAST.is_valid(data):
                return None
            fast_invalid = True
        except (ValueError, TypeError, OverflowError):  # a value the compiled validator cannot take: jsonschema decides
            pass
    from jsonschema.exceptions import best_match

    err = best_match(schema_validator().iter_errors(data))
    if err is not None:
        return f"{err.json_path}: {_what(err)}"
    if not fast_invalid:
        return None
    e = next(iter(_FAST.iter_errors(data)))  # the validators disagree: the stricter (compiled) one's finding
    path = "$" + "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in e.instance_path)
    return f"{path}: {e.message[:200]}"


def schema_validator() -> Any:
    """jsonschema's (pure-Python) validator of the report schema; tuples count as arrays (in-memory reports)."""
    from jsonschema import Draft202012Validator, validators

    checker = Draft202012Validator.TYPE_CHECKER.redefine("array", lambda _, v: isinstance(v, (list, tuple)))
    return validators.extend(Draft202012Validator, type_checker=checker)(_schema())


_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number",
               type(None): "null"}


def _short(v: Any, width: int = 60) -> str:
    """A value as JSON, cut to ``width`` characters."""
    try:
        text = dumps(v, indent=False).decode()
    except TypeError:
        text = repr(v)
    return text if len(text) <= width else text[: width - 3] + "..."


def _what(err: Any) -> str:
    """One line saying what is wrong at ``err``'s path (never the whole, possibly huge, value)."""
    v, kind, inst = err.validator_value, err.validator, err.instance
    got = _short(inst) if inst is None or isinstance(inst, bool) else f"{_JSON_TYPES.get(type(inst), 'value')} {_short(inst)}"
    if kind == "type":
        want = " or ".join(v) if isinstance(v, list) else v
        return f"expected {want}, got {got}"
    if kind == "required":
        missing = [k for k in v if isinstance(inst, dict) and k not in inst]
        return f"missing key {missing[0]!r}" if missing else err.message[:200]
    if kind == "const":
        return f"must be {_short(v)}, got {got}"
    if kind == "enum":
        return f"must be one of {', '.join(_short(x) for x in v)}, got {got}"
    if kind in ("minimum", "exclusiveMinimum", "maximum"):
        op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<="}[kind]
        return f"must be {op} {v}, got {_short(inst)}"
    if kind in ("minItems", "maxItems"):
        return f"must have {'at least' if kind == 'minItems' else 'at most'} {v} item(s), got {len(inst)}"
    if kind == "pattern":
        return f"{_short(inst)} does not match {v}"
    return err.message[:200].replace("\n", " ")


def check_writable(folder: str | Path) -> None:
    """Fail early (before a trace) when ``folder`` cannot be created or written."""
    try:
        p = check_output_root(folder).absolute()
        while not p.exists():
            p = p.parent
        if not p.is_dir():
            raise ReportError(f"cannot write under {folder}: {p} is not a folder")
        if not os.access(p, os.W_OK | os.X_OK):
            raise ReportError(f"cannot write under {folder}: {p} is not writable")
    except OSError as e:  # e.g. a name too long for the file system
        raise ReportError(f"cannot write under {folder}: {e.strerror or e}") from None


def write_files(
    out: Path,
    files: Mapping[str, bytes],
    what: str,
    *,
    claim: str | None = None,
    force: bool = False,
    whole: bool = False,
    drop: Callable[[str], bool] | None = None,
) -> list[Path]:
    """Write ``files`` into ``out`` all or nothing (:func:`fxmeter.fileio.publish`).

    ``claim`` (e.g. ``report.json``) refuses an existing output unless ``force``;
    ``whole`` marks ``out`` as fxmeter's own run folder (swapped as a whole).
    An OS error is one ReportError line and leaves nothing of ``files`` behind.
    """
    try:
        return fileio.publish(Path(out), files, claim=claim, force=force, whole=whole, drop=drop)
    except OSError as e:
        raise ReportError(f"cannot write {what} into {out}: {e.strerror or e}") from None
