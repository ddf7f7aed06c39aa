"""Published trainer measurements (``fxmeter/data/published-training.json`` or a file like it) vs ``fxmeter train``.

Every representable row is predicted with the same code ``fxmeter train`` runs (trace the step once per
model x sample x rank, then memory and seconds for the row's setup on its GPU); a row fxmeter cannot
represent is listed with its reason.  Rows are for validating only: nothing is fitted to them.

Memory rows whose ``vram_kind`` is ``fits`` are upper bounds (the source says the setup fits a card of that
size): the check is predicted <= bound.  The others give a signed error (predicted / measured - 1);
fxmeter predicts allocated bytes, so a ``reserved`` or ``nvidia-smi`` row is compared as it is and says so.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from fxmeter.base.fileio import loads, read_text
from fxmeter.errors import FxmeterError

GIB = 1024**3
GB = 1e9
UNITS = {"GB": GB, "GiB": GIB}
KINDS = ("allocated", "reserved", "nvidia-smi", "fits")
MAX_BYTES = 16 * 1024 * 1024


class TrainingDataError(FxmeterError):
    """A training measurements file that is not one."""


def load_rows(path: str | Path | None = None) -> tuple[list[dict[str, Any]], str]:
    if path is None:
        text = resources.files("fxmeter.data").joinpath("published-training.json").read_text()
        origin = "fxmeter/data/published-training.json"
    else:
        text = read_text(Path(path), "training measurements file", limit=MAX_BYTES, error=TrainingDataError,
                         missing=f"training measurements file {path} does not exist")
        origin = str(path)
    try:
        doc = loads(text)
    except ValueError as e:
        raise TrainingDataError(f"{origin} is not JSON: {e}") from None
    rows = doc.get("rows") if isinstance(doc, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise TrainingDataError(f"{origin} has no 'rows' list of objects")
    return rows, origin


def _reason(row: dict[str, Any]) -> str | None:
    """Why fxmeter cannot represent ``row`` (None: it can)."""
    if row.get("unrepresentable"):
        return str(row["unrepresentable"])
    for key in ("model", "height", "width", "frames", "method", "gpu"):
        if row.get(key) in (None, ""):
            return f"no {key}"
    if row.get("method") not in ("lora", "full"):
        return f"method {row.get('method')!r} (fxmeter models lora and full)"
    if row.get("peak_vram_gb") is None and not isinstance(row.get("seconds_per_step"), (int, float)):
        return "neither peak_vram_gb nor a single seconds_per_step"
    if row.get("peak_vram_gb") is not None and row.get("vram_kind") not in KINDS:
        return f"vram_kind {row.get('vram_kind')!r} (known: {', '.join(KINDS)})"
    if row.get("peak_vram_gb") is not None and row.get("vram_unit", "GB") not in UNITS:
        return f"vram_unit {row.get('vram_unit')!r}"
    return None


def _setup(row: dict[str, Any]) -> Any:
    from fxmeter.estimate.training import TrainSetup

    ck = row.get("gradient_checkpointing", "none")
    ck = {True: "full", False: "none"}.get(ck, ck)
    targets = row.get("lora_targets") or ["blocks"]
    return TrainSetup(method=row["method"], lora_rank=int(row.get("lora_rank") or 16), optimizer=row.get("optimizer", "adamw"),
                      lora_targets=tuple(targets),
                      checkpointing=ck, blocks_to_swap=int(row.get("blocks_to_swap") or 0),
                      base_precision=row.get("base_precision", "bf16"), gpus=int(row.get("n_gpus") or 1),
                      fsdp=row.get("parallelism") == "fsdp", batch=int(row.get("batch_size") or 1),
                      grad_accum=int(row.get("grad_accum") or 1))


def validate(path: str | Path | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Predict every representable row; errors per row, per source and overall."""
    from fxmeter.estimate import hardware as hwmod
    from fxmeter.estimate.train_plan import trace_step
    from fxmeter.estimate.training import memory, step_time

    rows, origin = load_rows(path)
    out: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    traces: dict[tuple[Any, ...], Any] = {}
    for row in rows:
        rid = str(row.get("id", f"row {len(out) + len(skipped) + 1}"))
        why = _reason(row)
        if why is None:
            try:
                setup = _setup(row)
                hw = hwmod.get(str(row["gpu"]))
                key = (row["model"], row["height"], row["width"], row["frames"], setup.lora_rank if setup.method == "lora" else 0,
                       setup.lora_targets)
                if key not in traces:
                    if progress:
                        progress(f"tracing {row['model']} {row['frames']}x{row['height']}x{row['width']} for {rid} ...")
                    traces[key] = trace_step(row["model"], height=row["height"], width=row["width"], frames=row["frames"],
                                             lora_rank=key[4], lora_targets=setup.lora_targets)[0]
                costs = traces[key]
                setup.check(sum(costs.blocks.values()))
            except FxmeterError as e:
                why = str(e)
        if why is not None:
            skipped.append({"id": rid, "reason": why})
            continue
        mem = memory(setup, costs)
        res: dict[str, Any] = {"id": rid, "source": row.get("source", {}).get("repo", "?"),
                               "predicted_peak_gib": mem.peak_bytes / GIB, "predicted_kind": "allocated"}
        if row.get("peak_vram_gb") is not None:
            measured = float(row["peak_vram_gb"]) * UNITS[row.get("vram_unit", "GB")]
            res["measured_peak_gib"] = measured / GIB
            res["vram_kind"] = row["vram_kind"]
            if row["vram_kind"] == "fits":
                res["fits_bound_ok"] = mem.peak_bytes <= measured
            else:
                res["peak_error"] = mem.peak_bytes / measured - 1
        if isinstance(row.get("seconds_per_step"), (int, float)):
            t = step_time(setup, costs, hw).predicted_s
            res["predicted_s"] = t
            res["measured_s"] = float(row["seconds_per_step"])
            res["seconds_error"] = t / float(row["seconds_per_step"]) - 1
        out.append(res)
    return {"data": origin, "rows": out, "unrepresentable": skipped, "summary": _summary(out)}


def _stats(errs: list[float]) -> dict[str, Any]:
    if not errs:
        return {"n": 0}
    return {"n": len(errs), "median_abs_error": statistics.median(abs(e) for e in errs),
            "median_signed_error": statistics.median(errs)}


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["source"], []).append(r)

    def block(rs: list[dict[str, Any]]) -> dict[str, Any]:
        fits = [r["fits_bound_ok"] for r in rs if "fits_bound_ok" in r]
        return {"peak_memory": _stats([r["peak_error"] for r in rs if "peak_error" in r]),
                "seconds_per_step": _stats([r["seconds_error"] for r in rs if "seconds_error" in r]),
                "fits_bounds": {"n": len(fits), "ok": sum(fits)}}

    return {"all": block(rows), "per_source": {k: block(v) for k, v in sorted(by.items())}}


def render(res: dict[str, Any]) -> str:
    lines = [f"training measurements: {res['data']}"]
    for r in res["rows"]:
        s = f"  {r['id']}: predicted peak {r['predicted_peak_gib']:.2f} GiB allocated"
        if "fits_bound_ok" in r:
            s += f" vs 'fits' {r['measured_peak_gib']:.2f} GiB: {'ok' if r['fits_bound_ok'] else 'OVER'}"
        if "peak_error" in r:
            s += f" vs {r['measured_peak_gib']:.2f} GiB ({r['vram_kind']}): {r['peak_error']:+.1%}"
        if "seconds_error" in r:
            s += f"; {r['predicted_s']:.2f} s/step vs {r['measured_s']:.2f}: {r['seconds_error']:+.1%}"
        lines.append(s)
    for u in res["unrepresentable"]:
        lines.append(f"  not represented: {u['id']}: {u['reason']}")
    for name, b in [("all", res["summary"]["all"]), *res["summary"]["per_source"].items()]:
        pm, ss, fb = b["peak_memory"], b["seconds_per_step"], b["fits_bounds"]
        part = [f"fits bounds {fb['ok']}/{fb['n']}"]
        if pm["n"]:
            part.append(f"peak memory median |err| {pm['median_abs_error']:.1%} (signed {pm['median_signed_error']:+.1%}, n={pm['n']})")
        if ss["n"]:
            part.append(f"s/step median |err| {ss['median_abs_error']:.1%} (signed {ss['median_signed_error']:+.1%}, n={ss['n']})")
        lines.append(f"  {name}: " + "; ".join(part))
    return "\n".join(lines)
