"""The report object: a symbolic model evaluated for one workload.

:class:`Report` wraps the JSON document (``.data``); ``to_json()`` gives the
orjson bytes with sorted keys, ``write(dir)`` writes report.json and summary.md
atomically.  The field names documented in the README are a contract.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from .errors import OutputExistsError, ReportError, RunIdError

SCHEMA_VERSION = 1
METRICS = ("tensor_core_flops", "cuda_core_flops", "bytes_read", "bytes_written")
RUN_ID_RE = re.compile(r"[A-Za-z0-9._-]+")

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
    if not run_id or not RUN_ID_RE.fullmatch(run_id) or run_id in (".", "..") or ".." in run_id:
        raise RunIdError(f"unsafe run id {run_id!r}: use only letters, digits, '.', '_' and '-' (no '..', no '/')")
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
        return orjson.dumps(self.data, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)

    def summary_markdown(self) -> str:
        from .summary import render

        return render(self.data)

    def output_dir(self, output_root: str | Path = "tmp/profile-output") -> Path:
        return Path(output_root) / check_run_id(self.run_id) / "static_analysis" / self.slug

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
        """
        out = Path(directory) if directory is not None else self.output_dir(output_root)
        if (out / "report.json").exists() and not force:
            raise OutputExistsError(f"{out / 'report.json'} exists; pass --force or choose another --run-id")
        files: dict[str, bytes] = {"report.json": self.to_json()}
        from .summary import render_files

        files.update(render_files(self.data, plots=plots))
        write_files(out, files, "the report")
        return out

    @classmethod
    def load(cls, path: str | Path) -> Report:
        """Read and validate a report.json (or the run folder holding one)."""
        p = Path(path)
        if p.is_dir():
            p = p / "report.json"
        try:
            data = orjson.loads(p.read_bytes())
        except FileNotFoundError:
            raise ReportError(f"no such report: {p}") from None
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


def check_writable(folder: str | Path) -> None:
    """Fail early (before a trace) when ``folder`` cannot be created or written."""
    p = Path(folder).absolute()
    while not p.exists():
        p = p.parent
    if not p.is_dir():
        raise ReportError(f"cannot write under {folder}: {p} is not a folder")
    if not os.access(p, os.W_OK | os.X_OK):
        raise ReportError(f"cannot write under {folder}: {p} is not writable")


def write_files(out: Path, files: Mapping[str, bytes], what: str) -> list[Path]:
    """Create ``out`` and write each file atomically; an OS error is one ReportError line."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, payload in files.items():
            atomic_write(out / name, payload)
    except OSError as e:
        raise ReportError(f"cannot write {what} into {out}: {e.strerror or e}") from None
    return [out / n for n in files]


def atomic_write(path: Path, payload: bytes) -> None:
    """Write via a temp file in the same folder and rename: never a half file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; a report is an ordinary file
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
