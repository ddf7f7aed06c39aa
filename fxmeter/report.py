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

from . import fileio
from .errors import ReportError, RunIdError
from .fileio import atomic_write

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
        from .summary import render

        return render(self.data)

    def output_dir(self, output_root: str | Path = "tmp/profile-output") -> Path:
        return check_output_root(output_root) / check_run_id(self.run_id) / "static_analysis" / self.slug

    def files(self, *, plots: bool = False) -> dict[str, bytes]:
        """report.json, summary.md and (with ``plots``) its charts, as bytes."""
        from .summary import render_files

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
        """Read and validate a report.json (or the run folder holding one)."""
        p = Path(path)
        try:
            if p.is_dir():
                p = p / "report.json"
            data = fileio.loads(fileio.read_bytes(p, "report", limit=fileio.MAX_REPORT_BYTES, error=ReportError,
                                                  missing=f"no such report: {p}"))
        except orjson.JSONDecodeError as e:
            raise ReportError(f"{p} is not a JSON file: {e}") from None
        except OSError as e:
            raise ReportError(f"cannot read {p}: {e.strerror or e}") from None
        return cls(validate(data, str(p)))


#: Top-level keys every reader (top, compare, summary, the golden plugin) relies on.
REQUIRED_KEYS = ("model", "workload", "totals", "memory", "modules", "categories", "unmodeled_ops", "notes")


def validate(data: Any, where: str = "report") -> dict[str, Any]:
    """``data`` if it is an fxmeter report of this schema_version, else a ReportError."""
    tool = data.get("tool") if isinstance(data, dict) else None
    if not isinstance(tool, dict) or tool.get("name") != "fxmeter":
        raise ReportError(f"{where} is not an fxmeter report")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ReportError(f"{where} has schema_version {data.get('schema_version')!r}; this fxmeter reads {SCHEMA_VERSION}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ReportError(f"{where} is an incomplete fxmeter report (no {', '.join(missing)})")
    return data  # type: ignore[no-any-return]


def check_output_root(output_root: str | Path) -> Path:
    """``output_root`` as a Path; an empty one (which would mean the current folder) is refused."""
    if not str(output_root).strip():
        raise ReportError("empty --output-root: name a folder (default tmp/profile-output)")
    return Path(output_root)


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
