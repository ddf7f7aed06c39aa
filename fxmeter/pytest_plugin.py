"""Golden-report tests for pytest (registered through the ``pytest11`` entry point).

Any project that installs fxmeter gets the ``fxmeter_golden`` fixture::

    def test_my_dit_cost(fxmeter_golden):
        report = fxmeter.trace("wan2.1-t2v-1.3b", workload="480p")
        fxmeter_golden.check(report, "wan13b_480p.json", rtol=0.0)

Semantics follow pytest-regressions and syrupy: a missing golden is written and
the test fails (review it, commit it, re-run); ``--fxmeter-update-goldens``
rewrites goldens and passes; a mismatch fails with a short diff naming the
modules and metrics that moved.  Goldens live in ``goldens/`` beside the test
file, or in the folder named by the ini option ``fxmeter_golden_dir``
(relative to the rootdir).

A golden is not the whole report but :func:`project` of it: model identity,
workload, totals, memory, categories, unmodeled ops and the per-forward cost of
the top of the module tree (depth <= 2, repeated blocks folded to
``blocks.*`` plus one level below them).  Volatile fields (run id, tool
versions, trace seconds and cache state) are never part of it, so goldens stay
small, stable and reviewable in a diff.

The projection is versioned (``fxmeter_golden``): version 2 adds the whole
pipeline (each stage's runs, dtype, per-run and end-to-end costs, weights and
activation peak; the generation's total).  A golden is always compared (and
rewritten by ``--fxmeter-update-goldens``) in its own version, so a version-1
golden written before pipelines stays byte-identical; a new golden is written
in the current version.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

GOLDEN_SCHEMA = 2
GOLDEN_VERSIONS = (1, 2)
MODULE_DEPTH = 2
MAX_DIFF_LINES = 20
COST_KEYS = ("tensor_core_flops", "cuda_core_flops", "flops", "bytes_read", "bytes_written")
MODEL_KEYS = ("id", "diffusers_class", "config_sha256", "parameters")
WORKLOAD_KEYS = ("name", "frames", "height", "width", "steps", "text_len", "batch", "guidance_scale",
                 "passes_per_step", "latent_shape", "tokens", "dims", "dtype")
MEMORY_KEYS = ("weight_bytes", "weight_bytes_by_dtype", "activation_peak_bytes", "activation_peak_module", "total_bytes")


def _document(obj: Any) -> Any:
    """The typed report behind a Report, a report document, or a path to report.json (or its folder), validated."""
    from fxmeter.report.document import ReportDocument, validate

    if isinstance(obj, ReportDocument):
        return obj
    if isinstance(obj, (str, Path)):
        return ReportDocument.load(obj)
    return ReportDocument.from_dict(validate(getattr(obj, "data", obj), f"{type(obj).__name__} passed to fxmeter_golden"))


def _costs(d: Mapping[str, Any]) -> dict[str, int]:
    return {k: int(d[k]) for k in COST_KEYS}


def project(obj: Any, version: int = GOLDEN_SCHEMA) -> dict[str, Any]:
    """The reduced, stable view of a report that goldens store and compare.

    ``obj`` is a :class:`~fxmeter.report.Report`, a report document, a path,
    or an existing projection (returned as is).  ``version`` 1 leaves the pipeline out.
    """
    if isinstance(obj, Mapping) and "fxmeter_golden" in obj:
        return dict(obj)
    from fxmeter.report.top import group_modules

    rep = _document(obj)
    data = rep.data
    modules = {}
    for g in group_modules(rep, fold=True).values():
        below_fold = g.id.rsplit("*", 1)[-1].count(".") if "*" in g.id else None
        if g.depth <= MODULE_DEPTH or below_fold == 1:
            modules[g.id] = {"class": g.cls, "count": g.count, "parameters": g.parameters,
                             "per_forward": _costs(g.per_forward.to_dict())}
    out = {
        "fxmeter_golden": version,
        "schema_version": data["schema_version"],
        "model": {k: data["model"][k] for k in MODEL_KEYS if k in data["model"]},
        "workload": {k: data["workload"][k] for k in WORKLOAD_KEYS if k in data["workload"]},
        "totals": {s: _costs(data["totals"][s]) for s in ("per_forward", "per_step", "end_to_end")},
        "memory": {k: data["memory"][k] for k in MEMORY_KEYS if k in data["memory"]},
        "categories": {name: _costs(c) for name, c in sorted(data["categories"].items())},
        "unmodeled_ops": [{"op": u["op"], "count": u["count"]} for u in data["unmodeled_ops"]],
        "modules": modules,
    }
    if version >= 2 and rep.pipeline is not None:
        p = rep.pipeline
        out["pipeline"] = {
            "stages": {st.name: {"class": st.cls, "runs": st.runs, "dtype": st.dtype, "per_run": _costs(st.per_run.metrics.to_dict()),
                                 "end_to_end": _costs(st.end_to_end.metrics.to_dict()), "weight_bytes": st.weight_bytes,
                                 "activation_peak_bytes": st.activation_peak_bytes} for st in p.stages},
            "end_to_end": _costs(p.end_to_end.metrics.to_dict()),
            "weight_bytes": p.weight_bytes,
        }
    return out


def dumps(projection: Mapping[str, Any]) -> bytes:
    """Golden file bytes: sorted keys, 2-space indent, trailing newline (integers beyond 64 bits exact)."""
    from fxmeter.report.document import dumps as json_bytes

    return json_bytes(projection) + b"\n"


def _flatten(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(obj, Mapping):
        for k in sorted(obj):
            key = f"[{k}]" if "." in str(k) else f".{k}" if prefix else str(k)
            yield from _flatten(obj[k], prefix + key)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _flatten(v, f"{prefix}[{i}]")
    else:
        yield prefix, obj


def _close(a: Any, b: Any, rtol: float) -> bool:
    num = (int, float)
    if isinstance(a, num) and isinstance(b, num) and not isinstance(a, bool) and not isinstance(b, bool):
        if a == b:
            return True
        return rtol > 0 and math.isclose(a, b, rel_tol=rtol, abs_tol=0.0)
    return bool(a == b)


def _fmt(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else repr(v)


SECTION_ORDER = ("fxmeter_golden", "schema_version", "model", "workload", "totals", "pipeline", "modules", "memory",
                 "categories", "unmodeled_ops")


def _diff_order(path: str) -> tuple[int, str]:
    """Identity first, then totals and modules (what a reviewer looks for), then the rest."""
    head = path.split(".", 1)[0].split("[", 1)[0]
    return (SECTION_ORDER.index(head) if head in SECTION_ORDER else len(SECTION_ORDER), path)


def diff(expected: Mapping[str, Any], actual: Mapping[str, Any], rtol: float = 0.0,
         exclude: Iterable[str] = ()) -> list[str]:
    """Lines naming each value that moved (``path: old -> new (+delta, +rel%)``); empty when equal.

    ``exclude`` holds path prefixes as the lines print them (e.g. ``memory`` or
    ``modules[transformer.rope]``).
    """
    skip = tuple(exclude)
    fe = {k: v for k, v in _flatten(expected) if not k.startswith(skip)}
    fa = {k: v for k, v in _flatten(actual) if not k.startswith(skip)}
    lines = []
    for k in sorted(set(fe) | set(fa), key=_diff_order):
        if k not in fa:
            lines.append(f"{k}: {_fmt(fe[k])} -> (missing)")
        elif k not in fe:
            lines.append(f"{k}: (not in golden) -> {_fmt(fa[k])}")
        elif not _close(fe[k], fa[k], rtol):
            a, b = fe[k], fa[k]
            if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
                rel = f", {100 * (b - a) / a:+.4g}%" if a else ""
                lines.append(f"{k}: {_fmt(a)} -> {_fmt(b)} ({'+' if b >= a else ''}{_fmt(b - a)}{rel})")
            else:
                lines.append(f"{k}: {_fmt(a)} -> {_fmt(b)}")
    return lines


class GoldenReports:
    """The ``fxmeter_golden`` fixture: compare reports with golden files."""

    def __init__(self, directory: Path, update: bool):
        self.directory = directory
        self.update = update

    def path(self, name: str) -> Path:
        p = Path(name)
        if p.is_absolute() or ".." in p.parts or not name:
            raise ValueError(f"golden name {name!r} must be a relative path inside {self.directory}")
        return self.directory / p

    def check(self, report: Any, name: str, rtol: float = 0.0, *, exclude: Iterable[str] = ()) -> None:
        """Compare :func:`project` of ``report`` with the golden ``name``.

        Args:
            report: a Report, a report document, a path to report.json, or a projection.
            name: the golden's file name (``.json``), relative to the golden folder.
            rtol: relative tolerance for numbers (0.0: exact, the default for integer counts).
            exclude: path prefixes to leave out of the comparison (as the diff prints them).
        """
        if rtol < 0:
            raise ValueError(f"rtol must be >= 0, got {rtol}")
        from fxmeter.errors import ReportError

        path = self.path(name)
        if path.is_dir():
            pytest.fail(f"golden {path} is a folder, not a file; remove it or choose another golden name", pytrace=False)
        if path.exists() and not path.is_file():
            pytest.fail(f"golden {path} is not a regular file; remove it or choose another golden name", pytrace=False)
        from fxmeter.report.document import loads

        expected: Any = None
        version = GOLDEN_SCHEMA
        if path.exists():
            try:
                expected = loads(self._read(path), path)
            except ReportError as e:
                if not self.update:
                    pytest.fail(f"golden {e}; rewrite it with --fxmeter-update-goldens", pytrace=False)
            if isinstance(expected, dict) and expected.get("fxmeter_golden") in GOLDEN_VERSIONS:
                version = int(expected["fxmeter_golden"])  # compared (and rewritten) in its own version
            elif not self.update:
                pytest.fail(f"golden {path} is not an fxmeter golden (formats {', '.join(map(str, GOLDEN_VERSIONS))}); "
                            "rewrite it with --fxmeter-update-goldens", pytrace=False)
        try:
            actual = project(report, version)
        except ReportError as e:
            pytest.fail(f"fxmeter_golden: {e}", pytrace=False)
        payload = dumps(actual)
        if self.update or not path.exists():
            existed = path.exists()
            if not existed or self._read(path) != payload:
                self._write(path, payload)
            if not self.update:
                pytest.fail(f"golden {path} did not exist; wrote it. Review it, commit it and re-run.", pytrace=False)
            return
        lines = diff(expected, loads(payload), rtol, exclude)
        if lines:
            shown = lines[:MAX_DIFF_LINES]
            more = [f"... {len(lines) - MAX_DIFF_LINES} more"] if len(lines) > MAX_DIFF_LINES else []
            pytest.fail(
                "\n".join([f"report differs from golden {path} ({len(lines)} value(s), rtol={rtol}):"]
                          + [f"  {x}" for x in shown + more]
                          + ["run pytest --fxmeter-update-goldens to accept the new values"]),
                pytrace=False,
            )

    @staticmethod
    def _read(path: Path) -> bytes:
        try:
            return path.read_bytes()
        except OSError as e:
            pytest.fail(f"cannot read golden {path}: {e.strerror or e}", pytrace=False)

    @staticmethod
    def _write(path: Path, payload: bytes) -> None:
        """Atomically (temp file + rename): an interrupted run never leaves half a golden."""
        from fxmeter.base.fileio import atomic_write

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, payload)
        except OSError as e:
            pytest.fail(f"cannot write golden {path}: {e.strerror or e}", pytrace=False)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fxmeter")
    group.addoption(
        "--fxmeter-update-goldens",
        action="store_true",
        default=False,
        help="fxmeter: rewrite golden reports instead of comparing against them.",
    )
    parser.addini(
        "fxmeter_golden_dir",
        help="fxmeter: folder for golden reports, relative to the rootdir (default: goldens/ beside each test file).",
        default="",
    )


@pytest.fixture
def fxmeter_golden(request: pytest.FixtureRequest) -> GoldenReports:
    """Compare fxmeter reports with golden files: ``fxmeter_golden.check(report, "name.json")``."""
    configured = str(request.config.getini("fxmeter_golden_dir") or "")
    if configured:
        directory = Path(request.config.rootpath) / configured
    else:
        directory = Path(request.path).parent / "goldens"
    return GoldenReports(directory, bool(request.config.getoption("fxmeter_update_goldens")))
