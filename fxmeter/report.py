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
        return dumps(self.data)

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
        from .summary import human

        return f"<Report {head}: {human(tc, 'FLOP')}/forward (tensor-core), run {d.get('run_id')}>"


#: Larger than any report fxmeter writes (a --full-trace 14B report is a few MB).
MAX_REPORT_BYTES = 1 << 30
_BIG_INT = re.compile(rb"\d{20,}")


def find_report(path: str | Path) -> Path:
    """``path`` itself, ``path/report.json``, or the single ``path/static_analysis/*/report.json`` of a run folder."""
    p = Path(path)
    if not p.is_dir():
        return p
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
    import stat

    try:
        st = p.stat()
    except FileNotFoundError:
        raise ReportError(f"no such {what} file: {p}") from None
    except OSError as e:
        raise ReportError(f"cannot read {p}: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ReportError(f"{p} is a folder, not a {what} file")
    if not stat.S_ISREG(st.st_mode):
        raise ReportError(f"{p} is not a regular file")
    if st.st_size > limit:
        raise ReportError(f"{p} is {st.st_size:,} bytes, larger than any {what} ({limit:,} at most)")
    try:
        return p.read_bytes()
    except OSError as e:
        raise ReportError(f"cannot read {p}: {e.strerror or e}") from None


def loads(blob: bytes, where: str | Path = "report") -> Any:
    """Parse JSON bytes; integers of any size stay exact (orjson reads 64 bits, json the rest)."""
    try:
        if _BIG_INT.search(blob):  # orjson turns integers beyond 64 bits into floats
            import json

            return json.loads(blob, parse_constant=_no_constant)
        return orjson.loads(blob)
    except orjson.JSONDecodeError as e:
        raise ReportError(f"{where} is not a JSON file: {e}") from None
    except (ValueError, RecursionError) as e:  # json: JSONDecodeError, UnicodeDecodeError, int-string limit
        raise ReportError(f"{where} is not a JSON file: {str(e).splitlines()[0][:200]}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")  # as orjson: no NaN or Infinity


def dumps(obj: Any, *, indent: bool = True) -> bytes:
    """JSON bytes with sorted keys; integers beyond 64 bits (legal-but-huge workloads) stay exact."""
    opt = orjson.OPT_SORT_KEYS | (orjson.OPT_INDENT_2 if indent else 0)
    try:
        return orjson.dumps(obj, option=opt)
    except TypeError as e:
        if "64-bit" not in str(e):
            raise
        import json

        return json.dumps(obj, sort_keys=True, indent=2 if indent else None, ensure_ascii=False).encode()


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
