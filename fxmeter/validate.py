"""``fxmeter validate``: predicted seconds against published, measured generation times.

Each row of a measurement file (the shipped ``fxmeter/data/published-timings.json``, copied
from the project's shared data with every source, setting and caveat kept) is mapped to
the fxmeter request that reproduces it: the bundled model, the workload (size, frames,
steps, guidance, batch), the device(s), the parallel plan, the offload policy, the
attention kernel, compilation and precision.  A row fxmeter can represent is predicted
(the kernel model, never fitted to these rows: they are the yardstick) and compared with
the measured seconds; a row it cannot represent is listed with the reason, never dropped.

Sits above the api (it calls it) and below the command line.
"""

from __future__ import annotations

import inspect
import math
import re
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fxmeter.base import fileio
from fxmeter.errors import FxmeterError

#: Largest measurement file fxmeter reads.
MAX_DATA_BYTES = 16 * fileio.MiB
REQUIRED = ("model", "variant", "height", "width", "frames", "steps", "gpu", "n_gpus", "total_s")

#: Published model names -> bundled model ids (the variant decides).
MODELS: tuple[tuple[str, str, str], ...] = (
    ("wan2.1", r"^t2v-14b", "wan2.1-t2v-14b"),
    ("wan2.1", r"^t2v-1\.3b", "wan2.1-t2v-1.3b"),
    ("wan2.1", r"^i2v-14b-480p", "wan2.1-i2v-14b-480p"),
    ("wan2.1", r"^i2v-14b-720p", "wan2.1-i2v-14b-720p"),
    ("wan2.1", r"^i2v-14b$", "wan2.1-i2v-14b-{res}"),
    ("wan2.2", r"^ti2v-5b", "wan2.2-ti2v-5b"),
    ("wan2.2", r"^t2v-a14b", "wan2.2-t2v-a14b"),
    ("wan2.2", r"^i2v-a14b", "wan2.2-i2v-a14b"),
    ("flux.1-dev", r".", "flux.1-dev"),
)
#: Published GPU names -> device table names (the first of "A/B" is taken; the note says so).
GPUS = {"h100/h800": "h800", "h800/h100": "h800", "a100/a800": "a800", "a800/a100": "a800", "h20": "h20",
        "rtx 4090": "rtx4090", "h100 80gb": "h100", "h100": "h100", "a100-80gb": "a100", "a100": "a100",
        "h200 (~140gb)": "h200", "h200": "h200"}
HOPPER = {"h100", "h800", "h20", "h200"}


class ValidationDataError(FxmeterError):
    """A measurement file that cannot be read or has the wrong shape."""


@dataclass(frozen=True)
class Scenario:
    """One row as an fxmeter request (keyword arguments of :func:`fxmeter.api.request`) and what was assumed."""

    model: str
    kwargs: Mapping[str, Any]
    assumptions: tuple[str, ...] = ()


@dataclass(frozen=True)
class RowResult:
    """One measurement and fxmeter's prediction of it (or why there is none)."""

    id: Any
    label: str
    measured_s: float
    predicted_s: float | None = None
    bound_s: float | None = None
    error: float | None = None  # (predicted - measured) / measured
    reason: str | None = None  # why it was not predicted
    assumptions: tuple[str, ...] = ()
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "measured_s": self.measured_s, "predicted_s": self.predicted_s,
                "bound_s": self.bound_s, "error": self.error, "reason": self.reason,
                "assumptions": list(self.assumptions), "source": self.source}


@dataclass(frozen=True)
class Validation:
    rows: tuple[RowResult, ...]
    data: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def predicted(self) -> list[RowResult]:
        return [r for r in self.rows if r.error is not None]

    @property
    def median_abs_error(self) -> float | None:
        errs = [abs(r.error) for r in self.predicted if r.error is not None]
        return statistics.median(errs) if errs else None

    @property
    def worst(self) -> RowResult | None:
        rows = self.predicted
        return max(rows, key=lambda r: abs(r.error or 0.0)) if rows else None

    def to_dict(self) -> dict[str, Any]:
        w = self.worst
        return {"data": self.data, "rows": [r.to_dict() for r in self.rows], "predicted": len(self.predicted),
                "not_represented": len(self.rows) - len(self.predicted), "median_abs_error": self.median_abs_error,
                "worst": w.to_dict() if w else None, "notes": list(self.notes)}


# -- reading --------------------------------------------------------------------------------------
def shipped_path() -> Path:
    return Path(str(resources.files("fxmeter.data").joinpath("published-timings.json")))


def load_rows(path: str | Path | None = None) -> tuple[list[Mapping[str, Any]], str]:
    """The rows of a measurement file (the shipped one by default), checked: one error line when it is bad."""
    p = Path(path) if path is not None else shipped_path()
    text = fileio.read_text(p, "measurement file", limit=MAX_DATA_BYTES, error=ValidationDataError)
    try:
        doc = fileio.loads(text.encode())
    except ValueError as e:
        raise ValidationDataError(f"measurement file {p} is not JSON: {str(e).splitlines()[0][:200]}") from None
    rows = doc.get("rows") if isinstance(doc, dict) else doc
    if not isinstance(rows, list) or not rows:
        raise ValidationDataError(f"measurement file {p}: expected {{\"rows\": [...]}} or a list of rows")
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise ValidationDataError(f"measurement file {p}: row {i} is not an object")
        missing = [k for k in REQUIRED if k not in r]
        if missing:
            raise ValidationDataError(f"measurement file {p}: row {r.get('id', i)} has no {', '.join(missing)}")
        n = r["n_gpus"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValidationDataError(f"measurement file {p}: row {r.get('id', i)}: n_gpus must be a positive integer, "
                                      f"got {n!r}")
        t = r["total_s"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 1e-6:
            raise ValidationDataError(f"measurement file {p}: row {r.get('id', i)}: total_s must be a positive number "
                                      f"of seconds (at least 1e-6), got {t!r}")
    return rows, str(p)


# -- mapping a row to a request -------------------------------------------------------------------
def _int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    m = re.match(r"\s*(\d+)", str(v))
    return int(m.group(1)) if m else None


def _capabilities() -> set[str]:
    from fxmeter import api

    return set(inspect.signature(api.request).parameters)


def scenario(row: Mapping[str, Any], caps: set[str] | None = None) -> Scenario | str:
    """The request reproducing ``row``, or the reason fxmeter cannot represent it."""
    caps = caps if caps is not None else _capabilities()
    model_name, variant = str(row["model"]).lower(), str(row["variant"]).lower()
    height, width = _int(row["height"]), _int(row["width"])
    mid = None
    for name, pattern, target in MODELS:
        if model_name == name and re.search(pattern, variant):
            mid = target.format(res="720p" if (height or 0) >= 720 else "480p")
            break
    if mid is None:
        return f"no bundled model for {row['model']} {row['variant']}"
    gpu = GPUS.get(str(row["gpu"]).strip().lower())
    if gpu is None:
        return f"no device in the table for {row['gpu']!r}"
    assumptions: list[str] = []
    if "/" in str(row["gpu"]):
        assumptions.append(f"GPU {row['gpu']!r} taken as {gpu}")
    frames, steps = _int(row["frames"]), _int(row["steps"])
    if None in (height, width, frames, steps):
        return "height, width, frames or steps is not a number"
    kw: dict[str, Any] = {"height": height, "width": width, "frames": frames, "steps": steps, "hardware": gpu}
    cfg = str(row.get("cfg") or "").lower()
    passes = row.get("passes_per_step")
    m = re.search(r"guide_?scale\s*([\d.]+)|guide\s*([\d.]+)", cfg)
    if passes == 1 and mid != "flux.1-dev":
        kw["guidance_scale"] = 1.0
    elif m and mid not in ("flux.1-dev", "wan2.2-t2v-a14b"):
        kw["guidance_scale"] = float(m.group(1) or m.group(2))
    parallel = str(row.get("parallel") or "none").lower()
    mb = re.search(r"batch_size=(\d+)", parallel)
    if mb:
        kw["batch"] = int(mb.group(1))
    n = int(row["n_gpus"])
    if n > 1:
        if "gpus" not in caps:
            return "multi-GPU deployments are not modeled by this fxmeter"
        mu, mr = re.search(r"ulysses_size\s*(\d+)", parallel), re.search(r"ring_size\s*(\d+)", parallel)
        musp = re.search(r"usp degree\s*(\d+)", parallel)
        if mu or mr:
            u, r = int(mu.group(1)) if mu else 1, int(mr.group(1)) if mr else 1
        elif musp:
            u, r = int(musp.group(1)), 1
            assumptions.append("USP split not stated: taken as Ulysses")
        else:
            return f"parallel plan {row.get('parallel')!r} is not stated"
        if u * r != n:
            return f"parallel plan {row.get('parallel')!r} does not use {n} GPUs"
        kw.update(gpus=n, parallel=f"ulysses={u},ring={r},cfg=1,tp=1", fsdp="dit_fsdp" in parallel)
    precision = str(row.get("precision") or "bf16").lower()
    if "int8dq" in precision:
        kw["precision"] = "int8"
        assumptions.append("torchao int8dq taken as --precision int8: matmuls at the int8 tensor-core peak, weights "
                           "1 byte each; the per-token activation quantization is not counted")
    if "tiled vae" in precision:
        return "tiled VAE decoding is not modeled"
    if "fp8" in precision:
        kw["precision"] = "fp8"
    attention = str(row.get("attention") or "").lower()
    if "sage" in attention or "sageattention" in precision:
        kw.update(attention="sage", attention_precision="int8")
    elif "flashattention3 on hopper" in attention or "fa3 if" in attention:
        kw["attention"] = "fa3" if gpu in HOPPER else "fa2"
        if "not stated" in attention or "presumably" in attention:
            assumptions.append(f"attention taken as {kw['attention']} (FA3 on Hopper when installed; the source "
                               "does not say which)")
    elif attention in ("sdpa", "default", ""):
        kw["attention"] = "sdpa"
    else:
        kw["attention"] = "sdpa"
        assumptions.append(f"attention {row.get('attention')!r} taken as torch SDPA")
    compile_ = row.get("compile")
    if compile_ not in (False, None, 0) and str(compile_).strip().lower() not in ("false", "no", "none", "off", "0", ""):
        kw["compile"] = True
    offload = str(row.get("offload") or "").lower()
    scope = str(row.get("timing_scope") or "").lower()
    whole = any(w in scope for w in ("total", "full pipeline", "end-to-end", "inference time"))
    if whole:
        if "stages" not in caps:
            return "the time covers the whole pipeline (text encoder, VAE): only the transformer is modeled here"
        kw["stages"] = "all"
    elif "stages" in caps:
        kw["stages"] = "transformer"  # a denoising-only time: on N GPUs too, only the denoisers are deployed
        assumptions.append("timing scope not a whole generation: the denoising stages only")
    if "offload_model true" in offload:
        if "offload" not in caps:
            return "model offload (--offload_model True) is not modeled by this fxmeter"
        kw["offload"] = "wan"
        if "t5_cpu" in offload:
            if "t5_cpu" not in caps:
                return "Wan's --t5_cpu (T5 on the host CPU) is not modeled by this fxmeter"
            kw["t5_cpu"] = True
            assumptions.append("--t5_cpu: the T5 encode runs on the host CPU, whose time is not modeled")
    elif "t5_cpu" in offload and "t5_cpu" in caps:
        kw["t5_cpu"] = True
        assumptions.append("--t5_cpu without --offload_model: T5 on the host CPU (time not modeled), the rest resident")
    elif offload in ("", "none", "none stated") or offload.startswith("none"):
        if offload in ("", "none stated"):
            assumptions.append("offload not stated: taken as none")
    return Scenario(mid, kw, tuple(assumptions))


# -- predicting -------------------------------------------------------------------------------------
def _label(row: Mapping[str, Any]) -> str:
    par = "" if int(row["n_gpus"]) == 1 else f" x{row['n_gpus']}"
    return f"{row['model']} {row['variant']} {row['width']}x{row['height']} {row['steps']}st {row['gpu']}{par}"


def predict(sc: Scenario, memo: dict[Any, Any]) -> tuple[float, float]:
    """(predicted, bound) seconds of one scenario's whole generation (shared traces memoised)."""
    from fxmeter import api

    req = api.request(sc.model, **sc.kwargs)
    inputs = api.stage_inputs(req, memo=memo.setdefault("stage_inputs", {}))
    est = api.estimate_request(req, inputs, nodes=True, modules=True)
    dep = getattr(est, "deployment", None)
    if dep is not None:
        return float(dep.predicted_seconds), float(dep.bound_seconds)
    if sc.kwargs.get("stages") == "all":
        pred, bound = est.pipeline_seconds("predicted"), est.pipeline_seconds("bound")
    else:
        pred, bound = est.seconds("predicted"), est.seconds("bound")
    if pred is None or bound is None:
        raise FxmeterError("no device time")
    return float(pred), float(bound)


def validate(data: str | Path | None = None, *, progress: Callable[[str], None] | None = None) -> Validation:
    """Predict every representable row of the measurement file and compare."""
    rows, where = load_rows(data)
    caps = _capabilities()
    memo: dict[Any, Any] = {}
    out = []
    for row in rows:
        measured = float(row["total_s"])
        src = str(row.get("source_repo") or row.get("url") or "")
        sc = scenario(row, caps)
        if isinstance(sc, str):
            out.append(RowResult(row.get("id"), _label(row), measured, reason=sc, source=src))
            continue
        try:
            pred, bound = predict(sc, memo)
        except FxmeterError as e:
            out.append(RowResult(row.get("id"), _label(row), measured, reason=f"fxmeter refused it: {e}",
                                 assumptions=sc.assumptions, source=src))
            continue
        if progress:
            progress(f"row {row.get('id')}: {pred:,.1f} s predicted, {measured:,.1f} s measured")
        out.append(RowResult(row.get("id"), _label(row), measured, pred, bound, (pred - measured) / measured,
                             assumptions=sc.assumptions, source=src))
    return Validation(tuple(out), where)


def render(v: Validation, *, reasons: bool = True) -> str:
    """The console table: predicted vs measured per row, the median and worst absolute error, unrepresented rows."""
    lines = [f"{'id':>4}  {'row':<52} {'measured s':>11} {'predicted s':>12} {'bound s':>10} {'error':>8}"]
    for r in v.rows:
        if r.error is None:
            continue
        lines.append(f"{str(r.id):>4}  {r.label[:52]:<52} {r.measured_s:>11,.1f} {r.predicted_s or 0:>12,.1f} "
                     f"{r.bound_s or 0:>10,.1f} {100 * r.error:>+7.1f}%")
    med = v.median_abs_error
    worst = v.worst
    lines.append("")
    lines.append(f"predicted {len(v.predicted)} of {len(v.rows)} rows; median absolute error "
                 f"{'-' if med is None else f'{100 * med:.1f}%'}"
                 + (f"; worst {100 * abs(worst.error or 0):.1f}% (row {worst.id}: {worst.label})" if worst else ""))
    skipped = [r for r in v.rows if r.error is None]
    if skipped and reasons:
        lines.append("")
        lines.append(f"not represented ({len(skipped)} rows):")
        by: dict[str, list[str]] = {}
        for r in skipped:
            by.setdefault(r.reason or "?", []).append(str(r.id))
        for reason, ids in sorted(by.items(), key=lambda kv: -len(kv[1])):
            lines.append(f"  {len(ids):>3} rows: {reason} (ids {', '.join(ids[:12])}{' ...' if len(ids) > 12 else ''})")
    lines.append(f"(measurements: {v.data}; nothing in fxmeter is fitted to them)")
    return "\n".join(lines)


__all__ = ["RowResult", "Scenario", "Validation", "load_rows", "render", "scenario", "validate"]
