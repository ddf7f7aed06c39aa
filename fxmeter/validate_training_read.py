"""Reading one trainer measurement (a training row) with the alias table, before anything is predicted.

A row of anyone's measurement file is a *training* row when it has a training column (method, lora_rank,
optimizer, gradient_checkpointing, ... : ``markers`` of ``[training_fields]`` in ``fxmeter/data/aliases.toml``)
and none of the inference timing columns (:func:`is_training_row`).  :func:`read_training_row` maps it to a
:class:`TrainRow` (the bundled model, one sample's size, the :class:`~fxmeter.estimate.training.TrainSetup`
spelled as ``fxmeter train`` spells it, the device, the measured peak in bytes and seconds per step), or
returns ``(status, reason)``: ``unreadable`` for a value that is not one (a count of "abc", a negative
height, a unit or kind that is no spelling in the table), ``not represented`` for a setup fxmeter does not
model (QLoRA, an nf4 base, an optimizer it does not price, a device not in the table).  Models and GPUs are
read by :func:`fxmeter.validate.resolve_model` and :func:`fxmeter.validate.resolve_gpu`, the inference
reader's own.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import tomllib

from fxmeter.validate import GIB, aliases, aliases_path, norm, resolve_gpu, resolve_model

#: Largest plausible values of a training row's counts.
LIMITS = {"height": 65536, "width": 65536, "frames": 100_000, "batch_size": 100_000, "grad_accum": 100_000,
          "n_gpus": 100_000, "lora_rank": 65536, "blocks_to_swap": 10_000}
#: Seconds-per-step units a value or a ``speed_unit`` column may name -> (factor, inverted: a rate).
SPEED_UNITS = {"s": (1.0, False), "sec": (1.0, False), "s/it": (1.0, False), "s/step": (1.0, False),
               "sec/it": (1.0, False), "ms": (1e-3, False), "ms/it": (1e-3, False), "ms/step": (1e-3, False),
               "it/s": (1.0, True), "step/s": (1.0, True), "steps/s": (1.0, True)}
NOT_RECORDED = "not stated"


@dataclass(frozen=True)
class TrainingAliases:
    fields: Mapping[str, tuple[str, ...]]
    markers: tuple[str, ...]
    tables: Mapping[str, Mapping[str, Any]]  # section -> {normalised spelling: value}


@lru_cache(maxsize=1)
def training_aliases() -> TrainingAliases:
    doc = tomllib.loads(aliases_path().read_text(encoding="utf-8"))
    f = {k: tuple(v) for k, v in doc["training_fields"].items() if k != "markers"}
    markers = tuple(c for name in doc["training_fields"]["markers"] for c in f.get(name, (name,)))
    names = ("training_methods", "training_methods_unsupported", "optimizers", "base_precision",
             "base_precision_unsupported", "gradient_checkpointing", "gradient_checkpointing_unsupported",
             "vram_kinds", "vram_units", "training_parallelism", "training_parallelism_unsupported")
    return TrainingAliases(f, markers, {n: {norm(k): v for k, v in doc[n].items()} for n in names})


def _get(row: Mapping[str, Any], name: str) -> tuple[str | None, Any]:
    """(column, value) of a quantity under any of its column names (empty cells are absent)."""
    for k in training_aliases().fields.get(name) or aliases().fields.get(name) or (name,):
        if k in row and row[k] not in (None, ""):
            return k, row[k]
    return None, None


def _names(v: Any) -> Any:
    """A list cell as written, or a comma-separated one split (``"norm, _mod"`` -> ``["norm", "_mod"]``)."""
    return [t.strip() for t in v.split(",") if t.strip()] if isinstance(v, str) else v


def is_training_row(row: Any) -> bool:
    """A row with a training column and no inference timing column (total, per-forward, per-step with steps)."""
    if not isinstance(row, dict):
        return False
    if not any(row.get(k) not in (None, "") for k in training_aliases().markers):
        return False
    inf = aliases().fields
    timing = {*inf["total_s"], *inf["per_forward_s"], *inf["steps"], "per_step_s", "step_s"}
    return not any(row.get(k) not in (None, "") for k in timing)


class Unreadable(Exception):
    """A value that is not one: the row is listed ``unreadable`` with this reason."""


class NotRepresented(Exception):
    """A setup fxmeter does not model: the row is listed ``not represented`` with this reason."""


def number(v: Any, what: str) -> float:
    """A finite number from a number or a numeric string ("24", "1,024", "1.5")."""
    if isinstance(v, bool):
        raise Unreadable(f"{what} must be a number, got {v!r}")
    if isinstance(v, (int, float)):
        x = float(v)
    else:
        try:
            x = float(str(v).strip().replace(",", ""))
        except ValueError:
            raise Unreadable(f"{what} must be a number, got {v!r}") from None
    if not math.isfinite(x):
        raise Unreadable(f"{what} must be a finite number, got {v!r}")
    return x


def count(row: Mapping[str, Any], name: str, default: int | None, *, zero: bool = False) -> int | None:
    col, v = _get(row, name)
    if v is None:
        return default
    x = number(v, col or name)
    lo = 0 if zero else 1
    if not x.is_integer() or not lo <= x <= LIMITS[name]:
        raise Unreadable(f"{col} must be an integer from {lo} to {LIMITS[name]:,}, got {v!r}")
    return int(x)


def _lookup(section: str, value: Any, what: str, known: str) -> str:
    """The table's value for a spelling; unsupported spellings raise NotRepresented, unknown ones ``known``."""
    t = training_aliases().tables
    key = norm(str(value).lower() if isinstance(value, bool) else value)
    bad = t.get(f"{section}_unsupported", {}).get(key)
    if bad:
        raise NotRepresented(str(bad))
    if key in t[section]:
        return str(t[section][key])
    raise NotRepresented(f"{what} {value!r} is not a spelling fxmeter knows ({known})")


@dataclass(frozen=True)
class TrainRow:
    """One training row as fxmeter reads it."""

    model: str
    height: int
    width: int
    frames: int
    setup: Any  # TrainSetup
    gpu: str | None
    encoders_resident: tuple[str, ...]  # "text_encoder" / "vae" when the row says they are not cached
    measured_bytes: float | None
    vram_kind: str
    measured_s: float | None
    assumptions: tuple[str, ...]


def _model(row: Mapping[str, Any], height: int | None) -> str:
    from fxmeter.model.registry import MODELS

    _, name = _get(row, "model")
    if name is None:
        raise Unreadable("no model")
    mid = resolve_model(name, row.get("variant"), height)
    if mid is None and norm(name) in MODELS:
        mid = norm(name)
    if mid is None:
        spelled = f"{name} {row.get('variant') or ''}".strip()
        raise NotRepresented(f"no bundled model for {spelled!r}")
    return mid


@lru_cache(maxsize=64)
def _is_image_model(mid: str) -> bool:
    from fxmeter.model.registry import resolve_model as registry_model
    from fxmeter.model.workload import get_preset

    m = registry_model(mid)
    return bool(m.default_workload) and get_preset(m.default_workload).frames == 1


def _size(row: Mapping[str, Any]) -> tuple[int | None, int | None]:
    h, w = count(row, "height", None), count(row, "width", None)
    col, res = _get(row, "resolution")
    if (h is None or w is None) and res is not None:
        m = re.fullmatch(r"\s*(\d+)\s*(?:[x×*,]\s*(\d+))?\s*(?:px)?\s*", str(res), re.I)
        if not m:
            raise Unreadable(f"{col} must be WIDTHxHEIGHT or one side in pixels, got {res!r}")
        w, h = int(m.group(1)), int(m.group(2) or m.group(1))
        for side, v in (("width", w), ("height", h)):
            if not 1 <= v <= LIMITS[side]:
                raise Unreadable(f"{col} {side} must be 1 to {LIMITS[side]:,}, got {v}")
    return h, w


def _with_unit(v: Any, what: str) -> tuple[float, str]:
    """(number, unit written after it or "") of "24", 24, "23.5 GiB", "1.5 s/it"."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return number(v, what), ""
    m = re.fullmatch(r"\s*([-+]?[\d,]*\.?\d+(?:[eE][-+]?\d+)?)\s*([A-Za-z/]*)\s*", str(v))
    if not m:
        raise Unreadable(f"{what} must be a number, got {v!r}")
    return number(m.group(1), what), m.group(2).lower()


def _peak(row: Mapping[str, Any], source: Mapping[str, Any], notes: list[str]) -> tuple[float | None, str]:
    col, v = _get(row, "peak_vram")
    if v is None:
        return None, NOT_RECORDED
    x, unit = _with_unit(v, col or "peak_vram_gb")
    units = training_aliases().tables["vram_units"]
    _, stated = _get(row, "vram_unit")
    from_col = (col or "").rsplit("_", 1)[-1] if (col or "").rsplit("_", 1)[-1] in units else ""
    unit_text = str(stated or unit or from_col or source.get("vram_unit") or "GB")
    if norm(unit_text) not in units:
        raise Unreadable(f"vram_unit {unit_text!r} is not one of GB, GiB, MB, MiB")
    if not 0 < x < 1e7:
        raise Unreadable(f"{col} must be a positive amount of memory, got {v!r}")
    _, kind_v = _get(row, "vram_kind")
    kind_v = kind_v if kind_v is not None else source.get("vram_kind")
    if kind_v is None:
        kind = NOT_RECORDED
        notes.append("vram_kind not stated: compared with the predicted reserved peak (the middle of allocated, reserved and nvidia-smi, as for inference rows)")
    else:
        kinds = training_aliases().tables["vram_kinds"]
        if norm(kind_v) not in kinds:
            raise Unreadable(f"vram_kind {kind_v!r} is not a spelling fxmeter knows (allocated, reserved, "
                             "nvidia-smi, fits, and their spellings in aliases.toml [vram_kinds])")
        kind = str(kinds[norm(kind_v)])
    return x * float(units[norm(unit_text)]), kind


def _seconds(row: Mapping[str, Any]) -> float | None:
    col, v = _get(row, "seconds_per_step")
    rate_col, rate = _get(row, "it_per_s")
    if v is None and rate is None:
        return None
    if isinstance(v if v is not None else rate, (list, tuple)):
        raise Unreadable(f"{col or rate_col} {v if v is not None else rate!r} is a range, not one number")
    x, unit = _with_unit(v if v is not None else rate, col or rate_col or "seconds_per_step")
    _, unit_col = _get(row, "speed_unit")
    unit = str(unit_col).lower().replace(" ", "") if unit_col is not None else unit
    if not unit:
        if col == "speed":
            raise Unreadable(f"speed {v!r} does not say s/it or it/s (a unit after it or a speed_unit column)")
        unit = "it/s" if v is None else "s"
    if unit not in SPEED_UNITS:
        raise Unreadable(f"seconds-per-step unit {unit!r} is not one of {', '.join(SPEED_UNITS)}")
    factor, inverted = SPEED_UNITS[unit]
    if x <= 0:
        raise Unreadable(f"{col or rate_col} must be positive, got {v if v is not None else rate!r}")
    s = 1.0 / (x * factor) if inverted else x * factor
    if not 1e-6 <= s <= 1e7:
        raise Unreadable(f"{col or rate_col} {v if v is not None else rate!r} is not a plausible time per step")
    return s


def _flag(row: Mapping[str, Any], name: str) -> bool | None:
    col, v = _get(row, name)
    if v is None:
        return None
    t = norm(str(v).lower() if isinstance(v, bool) else v)
    if t in ("true", "yes", "y", "1", "on", "cached"):
        return True
    if t in ("false", "no", "n", "0", "off", "resident", "not-cached"):
        return False
    raise Unreadable(f"{col} must be true or false, got {v!r}")


def read_training_row(row: Any) -> TrainRow | tuple[str, str]:
    """A training row as a :class:`TrainRow`, or (status, reason); never raises on a bad value."""
    if not isinstance(row, dict):
        return "unreadable", "the row is not an object"
    if row.get("unrepresentable"):
        return "not represented", str(row["unrepresentable"])
    try:
        return _read(row)
    except Unreadable as e:
        return "unreadable", str(e)
    except NotRepresented as e:
        return "not represented", str(e)
    except Exception as e:  # a value no rule above expected: the row, never the file, fails
        return "unreadable", f"could not read the row: {type(e).__name__}: {e}"


def _read(row: dict[str, Any]) -> TrainRow:
    from fxmeter.estimate.training import FP8_KEEP, OPTIMIZERS, TrainSetup

    notes: list[str] = []
    h, w = _size(row)
    mid = _model(row, h)
    frames = count(row, "frames", None)
    if frames is None and _is_image_model(mid):
        frames = 1
    for name, v in (("height", h), ("width", w), ("frames", frames)):
        if v is None:
            raise Unreadable(f"no {name}")
    assert h is not None and w is not None and frames is not None
    col, mv = _get(row, "method")
    rank = count(row, "lora_rank", None)
    if mv is None and rank is None:
        raise Unreadable("no method (lora or full) and no lora_rank")
    method = _lookup("training_methods", mv, "method", "lora, full") if mv is not None else "lora"
    if mv is None:
        notes.append("method not stated: LoRA (the row has a rank)")
    if method == "lora" and rank is None:
        rank = 16
        notes.append("LoRA rank not stated: 16")
    _, ov = _get(row, "optimizer")
    opt = "adamw" if ov is None else _lookup("optimizers", ov, "optimizer", f"known: {', '.join(OPTIMIZERS)} and their "
                                                                            "spellings in aliases.toml [optimizers]")
    if ov is None:
        notes.append("optimizer not stated: adamw")
    _, cv = _get(row, "gradient_checkpointing")
    ck = "none" if cv is None else _lookup("gradient_checkpointing", cv, "gradient_checkpointing", "none, full, selective")
    _, pv = _get(row, "base_precision")
    prec = "bf16" if pv is None else _lookup("base_precision", pv, "base_precision", "bf16, fp8")
    if method == "full" and prec == "fp8":
        raise NotRepresented("an fp8 base with full fine-tuning (fxmeter's fp8 base is for LoRA: full trains it)")
    _, mp = _get(row, "mixed_precision")
    if mp is not None and norm(mp) not in ("bf16", "bfloat16", "fp16", "float16", "torch.bfloat16", "amp"):
        raise NotRepresented(f"mixed_precision {mp!r}: fxmeter prices bf16 compute")
    _, off = _get(row, "offload")
    if off is not None and norm(str(off).lower() if isinstance(off, bool) else off) not in ("", "none", "no", "false",
                                                                                             "0", "off"):
        raise NotRepresented(f"offload {off!r} is not modeled (block swap: blocks_to_swap)")
    _, par = _get(row, "parallelism")
    plan = "ddp" if par is None else _lookup("training_parallelism", par, "parallelism", "none, ddp, fsdp, zero3")
    source = _source_defaults(row)
    _, gv = _get(row, "gpu")
    gpu, in_name = _device(gv) if gv is not None else (None, None)
    n = count(row, "n_gpus", None)
    if in_name is not None and n is not None and n != in_name:
        raise Unreadable(f"GPU {gv!r} names {in_name} GPUs, n_gpus says {n}")
    n = n or in_name or 1
    targets = _names(_get(row, "lora_targets")[1]) or ["blocks"]
    keep = _names(_get(row, "fp8_keep")[1]) or None
    if keep is not None and not (isinstance(keep, list) and all(isinstance(k, str) and k for k in keep)):
        raise Unreadable(f"fp8_keep {keep!r}: a list of module-path substrings")
    if prec == "fp8" and keep is None:
        notes.append(f"fp8 exclude list not stated: {', '.join(FP8_KEEP)} kept in bf16")
    setup = TrainSetup(method=method, lora_rank=int(rank or 16), optimizer=opt, lora_targets=tuple(str(t) for t in targets),
                       checkpointing=ck, blocks_to_swap=count(row, "blocks_to_swap", 0, zero=True) or 0,
                       base_precision=prec, fp8_keep=FP8_KEEP if keep is None else tuple(keep), gpus=n, fsdp=plan == "fsdp", batch=count(row, "batch_size", 1) or 1,
                       grad_accum=count(row, "grad_accum", 1) or 1)
    resident = tuple(k for k, name in (("text_encoder", "te_cached"), ("vae", "vae_cached")) if _flag(row, name) is False)
    peak, kind = _peak(row, source, notes)
    secs = _seconds(row)
    if peak is None and secs is None:
        raise Unreadable("no measured peak memory (peak_vram_gb) and no seconds per step")
    if secs is not None and gv is None:
        raise Unreadable("seconds per step without a GPU")
    if gv is not None and gpu is None:
        raise NotRepresented(resolve_gpu(gv)[2] or f"no device in the table for {gv!r}")
    return TrainRow(mid, h, w, frames, setup, gpu, resident, peak, kind, secs, tuple(notes))


def _device(gv: Any) -> tuple[str | None, int | None]:
    """(device, GPU count written in the name) of a GPU column: the alias table, else a device name as is."""
    from fxmeter.errors import FxmeterError
    from fxmeter.estimate import hardware as hwmod

    gpu, in_name, _ = resolve_gpu(gv)
    if gpu is None:
        try:
            gpu = hwmod.get(str(gv).strip()).name
        except FxmeterError:
            gpu = None
    return gpu, in_name


def _source_defaults(row: Mapping[str, Any]) -> Mapping[str, Any]:
    """The alias table's ``[sources]`` entry for the row's source repository (vram_unit, vram_kind), or {}."""
    return aliases().sources.get(source_of(row).lower(), {})


def source_of(row: Mapping[str, Any]) -> str:
    s = row.get("source")
    if isinstance(s, dict):
        s = s.get("repo") or s.get("url")
    return str(s or row.get("source_repo") or row.get("url") or "?")


__all__ = ["GIB", "NotRepresented", "TrainRow", "Unreadable", "is_training_row", "read_training_row", "source_of",
           "training_aliases"]
