"""Published trainer measurements (``fxmeter/data/published-training.json`` or anyone's file like it) vs ``fxmeter train``.

Every training row fxmeter can read and represent (:mod:`fxmeter.validate_training_read`: the alias table's
spellings of models, GPUs, methods, optimizers, precisions, checkpointing, memory units and kinds) is
predicted with the same code ``fxmeter train`` runs (trace the step once per model x sample x rank, then
memory and seconds for the row's setup on its GPU); every other row is listed with its reason.  Rows are
for validating only: nothing is fitted to them.

Memory rows whose ``vram_kind`` is ``fits`` are upper bounds (the source says the setup fits a card of that
size): the check is predicted <= bound.  The others give a signed error (predicted / measured - 1);
each is set beside the predicted figure of its kind (:func:`process_peak`: allocated, reserved, or what
``nvidia-smi`` shows; an unstated kind beside reserved, as for inference rows).

``fxmeter validate`` routes each row of a file: training rows here (:func:`is_training_row`), the rest to
:func:`fxmeter.validate.validate`; :func:`validate_file` / :func:`document` / :func:`render_file` join the two.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from importlib import resources
from pathlib import Path
from typing import Any

from fxmeter.errors import FxmeterError
from fxmeter.validate import Validation, load_rows, summarize
from fxmeter.validate import render as render_inference
from fxmeter.validate import validate as validate_inference
from fxmeter.validate_training_read import GIB, TrainRow, is_training_row, read_training_row, source_of

#: Version of the training document (``kind: training``).
SCHEMA_VERSION = 1
SHIPPED = "fxmeter/data/published-training.json"
#: The breakdowns of the training summary (row key -> title).
BREAKDOWNS = (("source", "source"), ("model", "model"), ("gpu", "GPU"), ("method", "method"),
              ("vram_kind", "vram kind"))


def shipped_path() -> Path:
    return Path(str(resources.files("fxmeter.data").joinpath("published-training.json")))


def _label(r: TrainRow) -> str:
    s = r.setup
    what = f"lora r{s.lora_rank}" if s.method == "lora" else "full"
    bits = [r.model, what, f"{r.width}x{r.height}" + (f"x{r.frames}f" if r.frames > 1 else ""), f"b{s.batch}",
            f"ga{s.grad_accum}" if s.grad_accum > 1 else "", f"ckpt-{s.checkpointing}",
            f"swap{s.blocks_to_swap}" if s.blocks_to_swap else "", s.base_precision, s.optimizer, r.gpu or "",
            f"x{s.gpus}" + (" fsdp" if s.fsdp else "") if s.gpus > 1 else ""]
    return " ".join(b for b in bits if b)


def _blank(rid: str, row: Any, status: str, reason: str | None) -> dict[str, Any]:
    d = row if isinstance(row, dict) else {}
    return {"id": rid, "label": " ".join(str(d[k]) for k in ("model", "variant", "gpu") if d.get(k) not in (None, "")),
            "status": status, "reason": reason, "assumptions": [], "source": source_of(d),
            "trainer": str(d.get("trainer") or ""), "model": str(d.get("model") or ""), "gpu": str(d.get("gpu") or ""),
            "n_gpus": None, "method": str(d.get("method") or ""), "vram_kind": "", "predicted_kind": "allocated",
            "predicted_peak_gib": None, "measured_peak_gib": None, "peak_error": None, "fits_bound_ok": None,
            "predicted_s": None, "measured_s": None, "seconds_error": None}


def _predict(r: TrainRow, res: dict[str, Any], traces: dict[Any, Any], progress: Callable[[str], None] | None) -> None:
    from fxmeter.estimate import hardware as hwmod
    from fxmeter.estimate.train_plan import encoder_bytes, trace_step
    from fxmeter.estimate.training import memory, step_time

    s = r.setup
    key = (r.model, r.height, r.width, r.frames, s.lora_rank if s.method == "lora" else 0, s.lora_targets)
    if key not in traces:
        if progress:
            progress(f"tracing {r.model} {r.frames}x{r.height}x{r.width} for {res['id']} ...")
        traces[key] = trace_step(r.model, height=r.height, width=r.width, frames=r.frames, lora_rank=key[4],
                                 lora_targets=s.lora_targets)[0]
    costs = traces[key]
    s.check(sum(costs.blocks.values()))
    enc = 0
    if r.encoders_resident:  # the text encoders and / or the VAE stay on the GPU: their weights
        if ("encoders", r.model) not in traces:
            traces[("encoders", r.model)] = encoder_bytes(r.model)
        enc = sum(v for k, v in traces[("encoders", r.model)].items() if k.startswith(r.encoders_resident))
    mem = memory(s, costs, enc)
    peak, kind = process_peak(mem, r.vram_kind, hwmod.get(r.gpu).compute_capability if r.gpu else None,
                              s.gpus)
    res["predicted_peak_gib"], res["predicted_kind"] = peak / GIB, kind
    if r.measured_bytes is not None:
        res["measured_peak_gib"] = r.measured_bytes / GIB
        if r.vram_kind == "fits":
            res["fits_bound_ok"] = peak <= r.measured_bytes
        else:
            res["peak_error"] = peak / r.measured_bytes - 1
    if r.measured_s is not None:
        assert r.gpu is not None
        t = step_time(s, costs, hwmod.get(r.gpu)).predicted_s
        res.update(predicted_s=t, measured_s=r.measured_s, seconds_error=t / r.measured_s - 1)


#: the parts of a training step's memory that are weights (held for the whole run); the rest is transient
WEIGHT_PARTS = ("base_weights", "trainable_weights", "gathered_weights", "gradients", "optimizer_states", "encoders")


def process_peak(mem: Any, vram_kind: str, compute_capability: str | None, gpus: int) -> tuple[int, str]:
    """The predicted peak per GPU to set beside a measured one of ``vram_kind``, like for like: allocated
    bytes for ``allocated``; else the process-memory model of inference (:func:`fxmeter.estimate.memory.
    process_memory`: cuBLAS workspace, the caching allocator's segments, and for ``nvidia-smi`` and ``fits``
    the CUDA context and NCCL buffers), with the step's weights and its transient memory as the two live sets."""
    from fxmeter.estimate.memory import process_memory

    if vram_kind == "allocated":
        return int(mem.peak_bytes), "allocated"
    # an unstated kind: reserved, the middle of the three (as inference validate does)
    weights = sum(v for k, v in mem.parts.items() if k in WEIGHT_PARTS)
    pm = process_memory("train", weights, int(mem.peak_bytes) - weights, compute_capability=compute_capability,
                        nccl_groups=(gpus,) if gpus > 1 else ())
    if vram_kind not in ("nvidia-smi", "fits"):
        return int(pm.peak_reserved_bytes), "reserved"
    return int(pm.peak_device_bytes), "nvidia-smi"


def validate(path: str | Path | None = None, progress: Callable[[str], None] | None = None, *,
             only: Collection[int] | None = None) -> dict[str, Any]:
    """Predict every representable training row of the file (default: the shipped one); the training document.

    ``only``: the indexes of the rows to take (a mixed file's training rows); default every row."""
    rows, where = load_rows(shipped_path() if path is None else path)
    out: list[dict[str, Any]] = []
    traces: dict[Any, Any] = {}
    for i, row in enumerate(rows):
        if only is not None and i not in only:
            continue
        rid = str(row.get("id", f"row {i + 1}")) if isinstance(row, dict) else f"row {i + 1}"
        got = read_training_row(row)
        if isinstance(got, tuple):
            out.append(_blank(rid, row, *got))
            continue
        res = _blank(rid, row, "predicted", None)
        res.update(label=_label(got), assumptions=list(got.assumptions), model=got.model, gpu=got.gpu or "",
                   n_gpus=got.setup.gpus, method=got.setup.method,
                   vram_kind=got.vram_kind if got.measured_bytes is not None else "")
        try:
            _predict(got, res, traces, progress)
        except FxmeterError as e:
            res.update(status="refused", reason=f"fxmeter refused it: {e}")
        except Exception as e:  # one row's failure never rejects the file
            res.update(status="refused", reason=f"fxmeter failed on it: {type(e).__name__}: {e}")
        if res["status"] != "predicted":
            for k in ("predicted_peak_gib", "measured_peak_gib", "peak_error", "fits_bound_ok", "predicted_s",
                      "measured_s", "seconds_error"):
                res[k] = None
        out.append(res)
    return _document(SHIPPED if path is None else where, out)


def _figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    fits = [r["fits_bound_ok"] for r in rows if r["fits_bound_ok"] is not None]
    return {"peak_memory": summarize([r["peak_error"] for r in rows if r["peak_error"] is not None]),
            "seconds_per_step": summarize([r["seconds_error"] for r in rows if r["seconds_error"] is not None]),
            "fits_bounds": {"n": len(fits), "ok": sum(fits)}}


def _document(where: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    def n(status: str) -> int:
        return sum(r["status"] == status for r in rows)

    predicted = [r for r in rows if r["status"] == "predicted"]
    breakdowns: dict[str, list[dict[str, Any]]] = {}
    for key, _title in BREAKDOWNS:
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in predicted:
            groups.setdefault(str(r[key] or "-"), []).append(r)
        breakdowns[key] = [{"key": k, "rows": len(v), **_figures(v)}
                           for k, v in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
    return {"kind": "training", "schema_version": SCHEMA_VERSION, "data": where,
            "counts": {"rows": len(rows), "predicted": n("predicted"), "represented": n("predicted") + n("refused"),
                       "refused": n("refused"), "not_represented": n("not represented"),
                       "unreadable": n("unreadable"), "skipped": len(rows) - n("predicted"),
                       "with_measured_peak": sum(r["peak_error"] is not None for r in rows),
                       "with_fits_bound": sum(r["fits_bound_ok"] is not None for r in rows),
                       "with_seconds": sum(r["seconds_error"] is not None for r in rows)},
            "summary": _figures(predicted), "breakdowns": breakdowns, "rows": rows}


# -- rendering --------------------------------------------------------------------------------------
def _p(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.1f}%"


def _a(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _line(s: dict[str, Any], low: str, high: str) -> str:
    return (f"median signed {_p(s['median_signed_error'])}, median |error| {_a(s['median_abs_error'])}, "
            f"P90 |error| {_a(s['p90_abs_error'])} ({s['too_fast']} {low}, {s['too_slow']} {high})")


def render(doc: dict[str, Any], *, reasons: bool = True) -> str:
    """The console table of a training document: the signed bias first, then every predicted row, the
    breakdowns and the rows fxmeter could not read or represent."""
    c, s = doc["counts"], doc["summary"]
    pm, ss, fb = s["peak_memory"], s["seconds_per_step"], s["fits_bounds"]
    lines = [f"training: predicted {c['predicted']} of {c['rows']} rows (fxmeter train; memory beside the measured kind: allocated, reserved or nvidia-smi)"]
    lines.append(f"  peak memory per GPU ({pm['n']} rows with a measured peak): {_line(pm, 'under', 'over')}"
                 if pm["n"] else "  peak memory per GPU: no row with a measured peak")
    lines.append(f"  seconds per step ({ss['n']} rows): {_line(ss, 'too fast', 'too slow')}"
                 if ss["n"] else "  seconds per step: no row with a measured time")
    if fb["n"]:
        lines.append(f"  'fits' bounds: {fb['ok']} of {fb['n']} predicted within the card")
    lines.append(f"  rows: {c['predicted']} predicted, {c['refused']} refused by fxmeter, {c['not_represented']} not "
                 f"represented, {c['unreadable']} unreadable")
    lines.append("")
    for r in doc["rows"]:
        if r["status"] != "predicted":
            continue
        line = f"  {r['id']}: {r['label']}: predicted peak {r['predicted_peak_gib']:.2f} GiB {r['predicted_kind']}"
        if r["fits_bound_ok"] is not None:
            line += f" vs 'fits' {r['measured_peak_gib']:.2f} GiB: {'ok' if r['fits_bound_ok'] else 'OVER'}"
        if r["peak_error"] is not None:
            line += f" vs {r['measured_peak_gib']:.2f} GiB ({r['vram_kind']}): {r['peak_error']:+.1%}"
        if r["seconds_error"] is not None:
            line += f"; {r['predicted_s']:.2f} s/step vs {r['measured_s']:.2f}: {r['seconds_error']:+.1%}"
        lines.append(line)
    for key, title in BREAKDOWNS:
        lines += ["", f"by {title}:"]
        for g in doc["breakdowns"][key]:
            gp, gs, gf = g["peak_memory"], g["seconds_per_step"], g["fits_bounds"]
            part = [f"{g['rows']} rows"]
            if gp["n"]:
                part.append(f"memory n={gp['n']} signed {_p(gp['median_signed_error'])} |err| {_a(gp['median_abs_error'])}")
            if gs["n"]:
                part.append(f"s/step n={gs['n']} signed {_p(gs['median_signed_error'])} |err| {_a(gs['median_abs_error'])}")
            if gf["n"]:
                part.append(f"fits {gf['ok']}/{gf['n']}")
            lines.append(f"  {g['key']}: " + "; ".join(part))
    skipped = [r for r in doc["rows"] if r["status"] != "predicted"]
    if skipped and reasons:
        lines += ["", f"not predicted ({len(skipped)} rows):"]
        lines += [f"  {r['status']}: {r['id']}: {r['reason']}" for r in skipped]
    lines.append(f"(measurements: {doc['data']}; memory in GiB = 2^30 bytes, GB sources converted; nothing in fxmeter "
                 "is fitted to them)")
    return "\n".join(lines)


# -- one file, both kinds of rows -----------------------------------------------------------------------
def validate_file(path: str | Path | None = None, progress: Callable[[str], None] | None = None
                  ) -> tuple[Validation | None, dict[str, Any] | None]:
    """(the inference validation, the training document) of a measurement file; None for a kind it has no row of.
    Without a file: the shipped inference measurements."""
    if path is None:
        return validate_inference(None, progress=progress), None
    rows, _ = load_rows(path)
    training = {i for i, r in enumerate(rows) if is_training_row(r)}
    inference = set(range(len(rows))) - training
    v = validate_inference(path, progress=progress, only=inference if training else None) if inference else None
    return v, validate(path, progress, only=training) if training else None


def document(v: Validation | None, t: dict[str, Any] | None) -> dict[str, Any]:
    """The ``--json`` document: the inference one (with a ``training`` section when the file has training rows),
    or the training one alone."""
    if v is None:
        assert t is not None
        return t
    d = v.to_dict()
    if t is not None:
        d["training"] = t
    return d


def render_file(v: Validation | None, t: dict[str, Any] | None, *, reasons: bool = True) -> str:
    parts = [render_inference(v, reasons=reasons)] if v is not None else []
    if t is not None:
        parts.append(render(t, reasons=reasons))
    return "\n\n".join(parts)


__all__ = ["BREAKDOWNS", "SCHEMA_VERSION", "document", "render", "render_file", "shipped_path", "validate",
           "validate_file"]
