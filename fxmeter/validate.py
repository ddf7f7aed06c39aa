"""``fxmeter validate``: predicted seconds (and peak memory) against published, measured runs.

Why one long module: reading a row, mapping it to a request, predicting it and summarising
the errors share one alias table and one row record, and a reader of the errors needs to see
how each row was mapped; the parts are sections in file order (reading, mapping, predicting,
results, rendering).

Each row of a measurement file (the shipped ``fxmeter/data/published-timings.json``, or anyone's
list of rows as JSON or CSV) is read with the one alias table ``fxmeter/data/aliases.toml`` (model,
GPU, parallel, precision, compile, attention and column spellings) and mapped to the fxmeter
request that reproduces it: the bundled model, the workload (size, frames, steps, guidance, batch),
the device(s), the parallel plan, the offload policy, the attention kernel, compilation and
precision, and what the measured seconds cover (``timing_scope``: the denoising loop alone, or a
whole generation).  A row fxmeter can represent is predicted (the kernel model, never fitted to
these rows: they are the yardstick) and compared with the measured seconds, and with its measured
peak memory where it has one; a row it cannot read or represent is listed with the reason, never
dropped, and never rejects the rest of the file.  Trainer measurements (training rows) are read and predicted
by :mod:`fxmeter.validate_training`, which routes a file's rows between the two (``only``).

Sits above the api (it calls it) and below the command line.
"""

from __future__ import annotations

import csv
import inspect
import io
import math
import re
import statistics
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import tomllib

from fxmeter.base import fileio
from fxmeter.errors import FxmeterError

#: Largest measurement file fxmeter reads.
MAX_DATA_BYTES = 16 * fileio.MiB
#: Version of the ``--json`` document (bump when a key changes meaning or goes away).
SCHEMA_VERSION = 2
HOPPER = {"h100", "h800", "h20", "h200", "h100-pcie"}
#: Models that take no classifier-free guidance passes from a row's guide scale (guidance-distilled or
#: embedded guidance; the A14B pair follows its own schedule).
NO_CFG_FROM_ROW = {"flux.1-dev", "hunyuanvideo", "wan2.2-t2v-a14b"}
IMAGE_MODELS = {"flux.1-dev", "sd3.5-large"}
#: Largest plausible values of a row's numbers (beyond them the row is nonsense, not a measurement).
LIMITS = {"height": 65536, "width": 65536, "frames": 100_000, "steps": 100_000, "n_gpus": 100_000, "batch": 100_000}
GB, GIB = 10**9, 2**30
#: The breakdowns of the summary (row attribute -> title).
BREAKDOWNS = (("source", "source"), ("model", "model"), ("gpu", "GPU"), ("n_gpus", "GPU count"),
              ("compile", "compile"), ("scope", "timing scope"))


class ValidationDataError(FxmeterError):
    """A measurement file that cannot be read at all, or is not a measurement file."""


# -- the alias table ------------------------------------------------------------------------------
def norm(text: Any) -> str:
    """A spelling as the alias table compares it: lower case, vendor words (NVIDIA, Tesla, GeForce, AMD Instinct)
    and parenthesised remarks dropped, runs of spaces / ``_`` / ``-`` made one ``-``."""
    s = re.sub(r"\([^)]*\)", " ", str(text).lower())
    s = re.sub(r"\b(nvidia|tesla|geforce|amd|instinct)\b", " ", s)
    return re.sub(r"[\s_\-]+", "-", s).strip("-")


@dataclass(frozen=True)
class Aliases:
    """``fxmeter/data/aliases.toml``, normalised once."""

    models: Mapping[str, str]
    model_rules: tuple[tuple[str, re.Pattern[str], str], ...]
    gpus: Mapping[str, str]
    gpus_absent: Mapping[str, str]
    parallel: Mapping[str, tuple[str, ...]]
    parallel_unsupported: Mapping[str, str]
    precision: Mapping[str, str]
    precision_unsupported: Mapping[str, str]
    compile_yes: frozenset[str]
    compile_no: frozenset[str]
    attention: tuple[tuple[str, tuple[str, ...]], ...]
    fields: Mapping[str, tuple[str, ...]]
    scopes: tuple[tuple[str, tuple[str, ...]], ...]
    sources: Mapping[str, Mapping[str, str]]
    fp32: tuple[str, ...] = ()
    vae_tiling: tuple[str, ...] = ()
    offload: tuple[tuple[str, tuple[str, ...]], ...] = ()


def aliases_path() -> Path:
    return Path(str(resources.files("fxmeter.data").joinpath("aliases.toml")))


@lru_cache(maxsize=1)
def aliases() -> Aliases:
    """The shipped alias table (read once)."""
    doc = tomllib.loads(aliases_path().read_text(encoding="utf-8"))

    def longest_first(xs: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted({norm(x) for x in xs}, key=lambda x: (-len(x), x)))

    scopes = doc["timing_scopes"]
    return Aliases(
        models={norm(k): v for k, v in doc["models"].items()},
        model_rules=tuple((norm(r["family"]), re.compile(r["variant"]), r["model"]) for r in doc["model_rules"]),
        gpus={norm(k): v for k, v in doc["gpus"].items()},
        gpus_absent={norm(k): v for k, v in doc["gpus_absent"].items()},
        parallel={k: longest_first(v) for k, v in doc["parallel"].items()},
        parallel_unsupported={norm(k): v for k, v in doc["parallel_unsupported"].items()},
        precision={norm(k): v for k, v in doc["precision"].items()},
        precision_unsupported={norm(k): v for k, v in doc["precision_unsupported"].items()},
        compile_yes=frozenset(norm(x) for x in doc["compile"]["yes"]),
        compile_no=frozenset(norm(x) for x in doc["compile"]["no"]),
        attention=tuple((k, longest_first(v)) for k, v in doc["attention"].items()),
        fields={k: tuple(v) for k, v in doc["fields"].items()},
        scopes=(("all", longest_first(scopes["all"])), ("transformer", longest_first(scopes["transformer"]))),
        sources={k.lower(): v for k, v in doc["sources"].items()},
        fp32=longest_first(doc["precision_fp32"]["spellings"]),
        vae_tiling=longest_first(doc["vae_tiling"]["spellings"]),
        offload=tuple((k, longest_first(v)) for k, v in doc["offload"].items()),
    )


def _word(spelling: str, text: str) -> re.Match[str] | None:
    """``spelling`` as a whole word of the normalised ``text``."""
    return re.search(rf"(?<![a-z0-9]){re.escape(spelling)}(?![a-z0-9])", text)


def _first(spellings: Mapping[str, str], text: str) -> tuple[str, str] | None:
    """The longest spelling of ``spellings`` found as a word in ``text``, with its value."""
    for key in sorted(spellings, key=lambda k: (-len(k), k)):
        if _word(key, text):
            return key, spellings[key]
    return None


@lru_cache(maxsize=1)
def _bundled_names() -> dict[str, str]:
    """Every bundled model by its own id, and by the Hugging Face repository its config came from (its id and
    its name, without a trailing ``-Diffusers``), beside the alias table's [models]."""
    from fxmeter.model.registry import MODELS

    out: dict[str, str] = {}
    for mid, spec in MODELS.items():
        out[norm(mid)] = mid
        m = re.match(r"https://huggingface\.co/([^/]+)/([^/]+)/", spec.source)
        if m:
            repo = norm(f"{m.group(1)}/{m.group(2)}")
            for name in (repo, repo.rsplit("/", 1)[-1]):
                out.setdefault(_undiffusers(name), mid)
    return out


def _undiffusers(key: str) -> str:
    return re.sub(r"-diffusers$", "", key)


@lru_cache(maxsize=1)
def _model_names() -> dict[str, str]:
    """:func:`_bundled_names` with the alias table's [models] over it (read once)."""
    return {**_bundled_names(), **aliases().models}


def resolve_model(model: Any, variant: Any, height: int | None) -> str | None:
    """The bundled model id a row's model (and variant) names, or None: the alias table's [models], every bundled
    model's id and Hugging Face repository (:func:`_bundled_names`), then its [[model_rules]] (family + variant)."""
    a = aliases()
    names = _model_names()
    m, v = norm(model), norm(variant) if variant not in (None, "") else ""
    for key in (f"{m}-{v}" if v else None, m, m.rsplit("/", 1)[-1], v or None):
        if key and (hit := names.get(key) or names.get(_undiffusers(key))):
            return hit
    for family, pattern, target in a.model_rules:
        if m in (family, family.replace(".", "")) and pattern.search(v):
            return target.format(res="720p" if (height or 0) >= 720 else "480p")
    return None


@lru_cache(maxsize=1)
def _device_table() -> tuple[dict[str, str], dict[str, int]]:
    """(spelling -> device, device -> memory in GiB) of the shipped hardware.json: every device is
    known by its own name and its aliases without restating them in aliases.toml."""
    from fxmeter.estimate.hardware import builtin

    devs = builtin()
    names = {norm(a): d.name for d in devs for a in (d.name, *d.aliases)}
    return names, {d.name: round(d.memory_bytes / 2**30) for d in devs}


def resolve_gpu(name: Any) -> tuple[str | None, int | None, str | None]:
    """(device, count written in the name ("8xH100"), reason when there is no device).

    Suffixes are stripped one at a time ("h100-sxm5-80gb-hbm3" -> "h100-sxm5-80gb" -> ...): a form
    factor or memory type suffix (SXM, HBM3) names the same part; a memory size names it only when
    the device has that memory, give or take 10% (GB vs GiB, "~140GB"; "a100-40gb" is never the 80GB a100); PCIe and NVL are other parts
    (other clocks and power) and are never stripped to a device."""
    text = str(name).strip()
    count = None
    m = re.match(r"^\s*(\d+)\s*[x×*]\s*(.+)$", text, re.I) or re.match(r"^(.+?)\s+[x×*]\s*(\d+)\s*$", text, re.I)
    if m:
        a, b = m.groups()
        count, text = (int(a), b) if a.isdigit() else (int(b), a)
    elif (m := re.match(r"^(.+?\d)\s*[x×*](\d{1,2})\s*$", text, re.I)) and resolve_gpu(m.group(1))[0]:
        count, text = int(m.group(2)), m.group(1)  # "H100x8" (never "RTX4090": the part before the x names a GPU)
    key = norm(text)
    a = aliases()
    devices, memory = _device_table()
    if key in a.gpus:
        return a.gpus[key], count, None
    if key in a.gpus_absent:
        return None, count, a.gpus_absent[key]
    if key in devices:
        return devices[key], count, None
    sizes: set[int] = set()
    other_part = False
    suffix = re.compile(r"-(sxm\d?|pcie|nvl|hbm\d?e?|\d+gb?)$")
    while (s := suffix.search(key)) is not None:
        tail, key = s.group(1), key[:s.start()]
        if tail in ("pcie", "nvl"):
            other_part = True
        elif tail[0].isdigit():
            sizes.add(int(tail.rstrip("gb")))
        if key in a.gpus_absent:
            return None, count, a.gpus_absent[key]
        dev = a.gpus.get(key) or devices.get(key)
        if dev and other_part:
            return None, count, (f"{str(name)!r} is a PCIe/NVL part; the device table has {dev} only "
                                 "(other clocks and power), never borrowed")
        if dev and all(0.9 <= g / max(memory.get(dev, 1), 1) <= 1.1 for g in sizes):  # 141 vs "~140GB"
            return dev, count, None
    return None, count, f"no device in the table for {str(name)!r} (see `fxmeter hardware`)"


def resolve_parallel(text: Any, n: int) -> tuple[dict[str, Any], list[str]] | str:
    """({ulysses, ring, cfg, tp, fsdp}, assumptions) of a parallel column on ``n`` GPUs, or the reason."""
    first = _parallel(text, n, norm(text if text is not None else ""))
    if isinstance(first, str) and "not stat" in first and "(" in str(text):  # "para-attn (ring)": look inside
        again = _parallel(text, n, norm(re.sub(r"[()]", " ", str(text))))
        return again if not isinstance(again, str) or "not stat" not in again else first
    return first


def _parallel(text: Any, n: int, t: str) -> tuple[dict[str, Any], list[str]] | str:
    a = aliases()
    t = re.sub(r"batch-size\s*=?\s*\d+", " ", t)  # "none; batch_size=4" names a batch, not a method
    hit = _first(a.parallel_unsupported, t)
    if hit:
        return hit[1]
    found: dict[str, int | None] = {}
    assumptions: list[str] = []
    fsdp = any(_word(s, t) for s in a.parallel["fsdp"])
    for method in ("ulysses", "ring", "cfg", "tp", "usp"):
        for s in a.parallel[method]:
            m = re.search(rf"(?<![a-z0-9]){re.escape(s)}(?![a-z])(?:[\s\-=:x]|degree|size|parallel)*(\d+)?(?![a-z0-9])", t)
            if m:
                found[method] = int(m.group(1)) if m.group(1) else None
                t = t[:m.start()] + " " + t[m.end():]  # "usp" and "sp" are not found twice
                break
    if "usp" in found:
        u = found.pop("usp")
        if "ulysses" not in found and "ring" not in found:
            found["ulysses"] = u
            assumptions.append("USP split into Ulysses and Ring not stated: taken as Ulysses")
    if "cfg" in found and found["cfg"] is None:
        found["cfg"] = 2
    if n == 1:
        if any((v or 1) > 1 for v in found.values()):
            return f"parallel plan {text!r} needs more than 1 GPU"
        return {"ulysses": 1, "ring": 1, "cfg": 1, "tp": 1, "fsdp": False}, assumptions
    if not found:
        if any(_word(s, t) for s in a.parallel["unstated"]) or fsdp:
            return f"parallel plan {text!r} does not state the split over {n} GPUs"
        return f"parallel plan {text!r} is not stated for {n} GPUs"
    known = math.prod(v for v in found.values() if v)
    unknown = [k for k, v in found.items() if v is None]
    if len(unknown) > 1:
        return f"parallel plan {text!r}: the split between {' and '.join(unknown)} is not stated"
    if unknown:
        if n % known:
            return f"parallel plan {text!r} does not use {n} GPUs"
        found[unknown[0]] = n // known
        assumptions.append(f"{unknown[0]} degree not stated: {n // known} (what {n} GPUs leave)")
    deg = {k: int(found.get(k) or 1) for k in ("ulysses", "ring", "cfg", "tp")}
    if math.prod(deg.values()) != n:
        return f"parallel plan {text!r} does not use {n} GPUs"
    return {**deg, "fsdp": fsdp}, assumptions


def resolve_precision(text: Any) -> tuple[str, str | None]:
    """(--precision, reason it cannot be represented or None) of a precision column; ``fp32`` when it names
    float32 and no lower precision (a --dtype, not a --precision)."""
    a = aliases()
    t = norm(text if text not in (None, "") else "bf16")
    bad = _first(a.precision_unsupported, t)
    if bad:
        return "bf16", bad[1]
    hit = _first(a.precision, t)
    # a low precision named anywhere wins over the base dtype ("bf16 + fp8dq")
    for p in ("fp8", "int8"):
        if any(_word(k, t) for k, v in a.precision.items() if v == p):
            return p, None
    if hit is None and any(_word(k, t) for k in a.fp32):
        return "fp32", None  # float32 throughout ("bf16, VAE fp32" names bf16: the pipeline's dtype)
    return (hit[1] if hit else "bf16"), None


def resolve_compile(value: Any) -> bool | None:
    """True / False for a compile column; None when the spelling is not in the table."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, (int, float)):
        return bool(value)
    a = aliases()
    t = norm(re.sub(r"^\s*(?:torch[._])?compiled?\s*[=:]\s*", "", str(value), flags=re.I) or value)
    if t in a.compile_no:
        return False
    if t in a.compile_yes:
        return True
    parts = [p for p in re.split(r"[,;+/]\s*|\s+", str(value).lower()) if p]
    if parts and any(norm(p) in a.compile_yes for p in parts):
        return True
    if parts and all(norm(p) in a.compile_no for p in parts):
        return False
    return None


def resolve_attention(text: Any, gpu: str) -> tuple[str, list[str]]:
    """(--attention, assumptions) of an attention column.

    "FA3 on Hopper" (stated): fa3 on a Hopper GPU.  "FA3 if installed, else FA2" with the source silent on
    which: fa2, what the code's own requirements install (``flash_attn`` on PyPI is FlashAttention-2; FA3's
    ``flash_attn_interface`` is a separate build from flash-attention's hopper/ folder), said in the assumptions.
    """
    a = aliases()
    raw = str(text or "").lower()
    t = norm(raw)
    if "flashattention3 on hopper" in raw or "fa3 on hopper" in raw:
        k = "fa3" if gpu in HOPPER else "fa2"
        return k, [f"attention taken as {k} (the source deploys FA3 on Hopper GPUs)"] if k == "fa2" else []
    if "fa3 if" in raw or ("fa3" in t and "fa2" in t):
        return "fa2", ["attention taken as fa2: the source does not say FA3 was installed, and `pip install flash_attn` "
                       "(its requirements) is FlashAttention-2; FA3 (flash_attn_interface) is a separate source build"]
    if not t:
        return "sdpa", []
    for kernel, spellings in a.attention:
        if any(_word(s, t) or (len(s) > 4 and s in t) for s in spellings):
            if kernel == "fa3" and gpu not in HOPPER:
                return "fa2", [f"attention {text!r} on a non-Hopper GPU taken as fa2"]
            return kernel, []
    return "sdpa", [f"attention {text!r} taken as torch SDPA"]


def resolve_scope(text: Any, *, per_step: bool = False) -> tuple[str, list[str]]:
    """("all" | "transformer", assumptions): what a row's seconds cover."""
    t = norm(text or "")
    if per_step:
        return "transformer", ["seconds from per-step times x steps: the denoising loop alone"]
    for scope, words in aliases().scopes:
        if any(w in t for w in words):
            return scope, []
    if not t:
        return "all", ["timing scope not stated: taken as a whole generation"]
    return "all", [f"timing scope {text!r} not recognised: taken as a whole generation"]


# -- reading a file ---------------------------------------------------------------------------------
def shipped_path() -> Path:
    return Path(str(resources.files("fxmeter.data").joinpath("published-timings.json")))


def _parse_csv(text: str, p: Path) -> list[Any]:
    try:
        rows = list(csv.DictReader(io.StringIO(text)))
    except csv.Error as e:
        raise ValidationDataError(f"measurement file {p} is not CSV: {e}") from None
    out = []
    for r in rows:  # CSV cells are text: numbers become numbers, empty cells absent
        d: dict[str, Any] = {}
        for k, v in r.items():
            if k is None or v is None or str(v).strip() == "":
                continue
            s = str(v).strip()
            try:
                d[k.strip()] = int(s) if re.fullmatch(r"-?\d+", s) else float(s) if re.fullmatch(
                    r"-?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?", s) else s
            except ValueError:
                d[k.strip()] = s
        out.append(d)
    return out


def load_rows(path: str | Path | None = None) -> tuple[list[Any], str]:
    """The rows of a measurement file (the shipped one by default).

    A JSON list of rows, ``{"rows": [...]}``, or CSV with a header.  Only a file that is not a
    measurement file at all (unreadable, neither JSON nor CSV, the wrong top-level shape, no row
    naming a model) raises :class:`ValidationDataError`; a bad row is returned as it is and
    listed later with its reason.
    """
    p = Path(path) if path is not None else shipped_path()
    text = fileio.read_text(p, "measurement file", limit=MAX_DATA_BYTES, error=ValidationDataError)
    stripped = text.lstrip()
    if p.suffix.lower() == ".csv" or (stripped and stripped[0] not in "[{" and "," in stripped.split("\n", 1)[0]):
        rows: Any = _parse_csv(text, p)
    else:
        try:
            doc = fileio.loads(text.encode())
        except ValueError as e:
            raise ValidationDataError(f"measurement file {p} is not JSON: {str(e).splitlines()[0][:200]}") from None
        rows = doc.get("rows") if isinstance(doc, dict) else doc
    if not isinstance(rows, list) or not rows:
        raise ValidationDataError(f"measurement file {p}: expected a list of rows, {{\"rows\": [...]}} or CSV "
                                  "with a header, with at least one row")
    model_keys = aliases().fields["model"]
    if not any(isinstance(r, dict) and any(r.get(k) not in (None, "") for k in model_keys) for r in rows):
        raise ValidationDataError(f"measurement file {p}: no row names a model (a 'model' column); "
                                  "not a measurement file")
    return rows, str(p)


# -- a row, read ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measurement:
    """One row as fxmeter reads it (before it is mapped to a request)."""

    model: str | None  # bundled model id, None when no bundled model
    model_name: str  # as published
    variant: str
    height: int
    width: int
    frames: int
    steps: int
    batch: int
    gpu: str | None  # device name, None when not in the table
    gpu_name: str
    n_gpus: int
    measured_s: float
    scope: str  # "all" | "transformer"
    scope_text: str
    compile: bool | None
    attention_text: str
    precision_text: str
    parallel_text: str
    source: str
    peak_gb: float | None  # measured peak per GPU in GB (10^9 bytes), converted from the source's unit
    peak_kind: str  # allocated | reserved | nvidia-smi | not stated
    assumptions: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()  # settings that tell rows apart (fused QKV: --fuse-qkv's memory; compiled VAE)


def _get(row: Mapping[str, Any], name: str) -> Any:
    """A row's value for a quantity, under any of its column names."""
    for k in aliases().fields.get(name, (name,)):
        if k in row and row[k] not in (None, ""):
            return row[k]
    return None


def _int(v: Any) -> int | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, float):
        return int(v) if v.is_integer() else None
    if isinstance(v, int):
        return v
    m = re.match(r"\s*(\d+)", str(v))
    return int(m.group(1)) if m else None


@lru_cache(maxsize=64)
def _model_presets(mid: str) -> tuple[Any, ...]:
    """The bundled model's presets: its default workload first (when it is a preset), then its family's."""
    from fxmeter.errors import FxmeterError
    from fxmeter.model.registry import MODELS
    from fxmeter.model.registry import resolve_model as registry_model
    from fxmeter.model.workload import get_preset, presets_for

    a = registry_model(mid).adapter
    out = []
    for name in dict.fromkeys((MODELS[mid].default_workload, *presets_for(a.name, a.family or a.name))):
        try:
            out.append(get_preset(name))
        except FxmeterError:
            continue
    return tuple(out)


def _default_workload(mid: str) -> Any:
    """The bundled model's default workload (None when it is not a preset)."""
    from fxmeter.model.registry import MODELS

    return next((w for w in _model_presets(mid) if w.name == MODELS[mid].default_workload), None)


def _named_resolution(mid: str | None, text: str) -> tuple[int, int] | str:
    """(height, width) of a resolution named by its height ("720p": the model's own workload of that height, from
    its presets; "1024px": a square image), or why it names none."""
    m = re.fullmatch(r"\s*(\d{3,4})\s*(p|px)\s*", text, re.I)
    if m is None or mid is None:
        return f"resolution {text!r} is not a size"
    n = int(m.group(1))
    if m.group(2).lower() == "px":
        return n, n
    presets = _model_presets(mid)
    default = _default_workload(mid)
    # the model's own preset of that name first (Wan2.2 TI2V-5B's "720P" is its ti2v-720p, 1280x704), then any
    # preset named so, then any of that height
    named = [w for w in presets if re.search(rf"(?<!\d){n}p$", w.name, re.I)]
    for group in ([w for w in named if w is default], named, [w for w in presets if w.height == n]):
        sizes = {(w.height, w.width) for w in group}
        if len(sizes) == 1:
            return sizes.pop()
    return f"resolution {text!r} names no single width for {mid} (give width and height)"


def _seconds(v: Any, what: str) -> float | str:
    """A positive finite number of seconds, or the reason it is not."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        if isinstance(v, str):
            m = re.fullmatch(r"\s*([\d.,]+)\s*(ms|s/it|s/step|it/s|steps?/s|sec|seconds?|s)?\s*", v.lower())
            try:
                if m is None:
                    raise ValueError(v)
                x = float(m.group(1).replace(",", ""))
                unit = m.group(2) or "s"
                v = x / 1000 if unit == "ms" else (1 / x if x and unit in ("it/s", "step/s", "steps/s") else x)
            except (ValueError, ZeroDivisionError):
                return f"{what} must be a positive number of seconds, got {v!r}"
        else:
            return f"{what} must be a positive number of seconds, got {v!r}"
    if not math.isfinite(v) or v < 1e-6 or v > 1e9:
        return f"{what} must be a positive number of seconds (1e-6 to 1e9), got {v!r}"
    return float(v)


def read_row(row: Any, index: int) -> Measurement | str:
    """A row as a :class:`Measurement`, or why it cannot be read (wrong types, nonsense values)."""
    if not isinstance(row, dict):
        return f"row {index} is not an object"
    a = aliases()
    assumptions: list[str] = []
    model_name = _get(row, "model")
    if model_name is None:
        return "no model"
    variant = str(row.get("variant") or "")
    height, width = _int(row.get("height")), _int(row.get("width"))
    if (height is None or width is None) and row.get("resolution"):
        m = re.match(r"\s*(\d+)\s*[x×*]\s*(\d+)", str(row["resolution"]))
        if m:
            width, height = int(m.group(1)), int(m.group(2))
    named = next((str(v) for v in (row.get("resolution"), row.get("height")) if v not in (None, "")
                  and re.fullmatch(r"\s*\d{3,4}\s*(p|px)\s*", str(v), re.I)), None)
    if width is None and named is not None:
        size = _named_resolution(resolve_model(model_name, variant, int(re.sub(r"\D", "", named))), named)
        if isinstance(size, str):
            return size
        height, width = size
        assumptions.append(f"resolution {named.strip()!r} taken as {width}x{height}")
    steps_v = _get(row, "steps")
    steps = _int(steps_v)
    frames_v = _get(row, "frames")
    frames = _int(frames_v)
    bundled = resolve_model(model_name, variant, height)
    if frames is None and frames_v is None and bundled in IMAGE_MODELS:
        frames = 1
    # not stated at all (not nonsense): the model's default workload's, said so
    unstated = [k for k, v in (("frames", frames_v if frames is None else frames), ("steps", steps_v)) if v is None]
    default = _default_workload(bundled) if unstated and bundled is not None else None
    if default is not None:
        if "frames" in unstated:
            frames = default.frames
        if "steps" in unstated:
            steps = default.steps
        assumptions.extend(f"{k} not stated: {getattr(default, k)}, the default of {bundled} ({default.name})"
                           for k in unstated)
    batch_v = _get(row, "batch")
    batch = _int(batch_v) if batch_v is not None else None
    mb = re.search(r"batch[_ ]size\s*=?\s*(\d+)", str(row.get("parallel") or ""))
    if batch is None:
        batch = int(mb.group(1)) if mb else 1
    for name, v in (("height", height), ("width", width), ("frames", frames), ("steps", steps), ("batch", batch)):
        if v is None:
            return f"{name} is missing or not a number"
        if not 1 <= v <= LIMITS[name]:
            return f"{name} must be 1 to {LIMITS[name]:,}, got {v}"
    assert height and width and frames and steps and batch
    gpu_v = _get(row, "gpu")
    if gpu_v is None:
        return "no GPU"
    gpu, count_in_name, gpu_reason = resolve_gpu(gpu_v)
    n_v = _get(row, "n_gpus")
    if n_v is None:
        n = count_in_name or 1
        if count_in_name is None:
            assumptions.append("GPU count not stated: 1")
    else:
        if isinstance(n_v, bool) or not isinstance(n_v, int) and not (isinstance(n_v, str) and n_v.strip().isdigit()):
            return f"n_gpus must be a positive integer, got {n_v!r}"
        n = int(n_v)
        if count_in_name is not None and count_in_name != n:
            return f"GPU {gpu_v!r} names {count_in_name} GPUs, n_gpus says {n}"
    if not 1 <= n <= LIMITS["n_gpus"]:
        return f"n_gpus must be a positive integer, got {n_v!r}"
    if gpu_reason is None and "/" in str(gpu_v):
        assumptions.append(f"GPU {gpu_v!r} taken as {gpu}")
    # what was measured
    total, per_step, per_forward = _get(row, "total_s"), _get(row, "per_step_s"), _get(row, "per_forward_s")
    if total is not None:
        s = _seconds(total, "total_s")
        if isinstance(s, str):
            return s
        scope, notes = resolve_scope(row.get("timing_scope"))
        measured = s
    elif per_step is not None:
        s = _seconds(per_step, "per_step_s")
        if isinstance(s, str):
            return s
        scope, notes = resolve_scope(row.get("timing_scope"), per_step=True)
        measured = s * steps
    elif per_forward is not None:
        s = _seconds(per_forward, "per_forward_s")
        if isinstance(s, str):
            return s
        passes = _int(row.get("passes_per_step")) or 1
        scope, notes = "transformer", [f"seconds from per-forward times x {steps} steps x {passes} pass(es): "
                                       "the denoising loop alone"]
        measured = s * steps * passes
    else:
        return "no measured time (total_s, per_step_s or per_forward_s)"
    assumptions.extend(notes)
    # measured memory, in GB, as the source means it
    peak_gb, kind = None, "not stated"
    peak_v = _get(row, "peak_mem_gb")
    if peak_v is not None:
        if isinstance(peak_v, bool) or not isinstance(peak_v, (int, float)) or not math.isfinite(peak_v) \
                or not 0 < peak_v < 1e6:
            assumptions.append(f"peak memory {peak_v!r} is not a number of GB: not compared")
        else:
            src = a.sources.get(str(row.get("source_repo") or "").lower(), {})
            unit = str(row.get("vram_unit") or src.get("vram_unit") or "GB")
            kind = str(row.get("vram_kind") or src.get("vram_kind") or "not stated")
            if unit.lower() not in ("gb", "gib"):
                assumptions.append(f"vram_unit {unit!r} is not GB or GiB: peak not compared")
            else:
                peak_gb = float(peak_v) * (GIB / GB if unit.lower() == "gib" else 1.0)
    return Measurement(
        model=bundled, model_name=str(model_name), variant=variant, height=height, width=width, frames=frames,
        steps=steps, batch=batch, gpu=gpu, gpu_name=str(gpu_v) if gpu is None else str(gpu_v), n_gpus=n,
        measured_s=measured, scope=scope, scope_text=str(row.get("timing_scope") or ""),
        compile=resolve_compile(row.get("compile")), attention_text=str(row.get("attention") or ""),
        precision_text=str(row.get("precision") or ""), parallel_text=str(row.get("parallel") or ""),
        source=str(row.get("source_repo") or row.get("source") or row.get("url") or ""),
        peak_gb=peak_gb, peak_kind=kind, assumptions=tuple(assumptions), extras=_extras(row))


def _extras(row: Mapping[str, Any]) -> tuple[str, ...]:
    text = f"{row.get('compile') or ''} {row.get('precision') or ''}".lower()
    out = []
    if row.get("fuse_qkv") is True or "fuse_qkv" in text or "fuse-qkv" in text:
        out.append("fused-qkv")
    if "compile_vae" in text or "compile-vae" in text:
        out.append("compiled-vae")
    return tuple(out)


# -- mapping a row to a request -------------------------------------------------------------------
@dataclass(frozen=True)
class Scenario:
    """One row as an fxmeter request (keyword arguments of :func:`fxmeter.api.request`) and what was assumed."""

    model: str
    kwargs: Mapping[str, Any]
    assumptions: tuple[str, ...] = ()
    runtime: str | None = None  # the measuring code's --runtime (alias table [sources]), for the memory comparison


def _capabilities() -> set[str]:
    from fxmeter import api

    return set(inspect.signature(api.request).parameters)


def scenario(row: Mapping[str, Any], caps: set[str] | None = None, m: Measurement | None = None) -> Scenario | str:
    """The request reproducing ``row``, or the reason fxmeter cannot represent (or read) it."""
    caps = caps if caps is not None else _capabilities()
    if m is None:
        got = read_row(row, 0)
        if isinstance(got, str):
            return got
        m = got
    if m.model is None:
        return f"no bundled model for {m.model_name} {m.variant}".rstrip()
    if m.gpu is None:
        return resolve_gpu(m.gpu_name)[2] or f"no device in the table for {m.gpu_name!r}"
    mid, gpu = m.model, m.gpu
    assumptions = list(m.assumptions)
    kw: dict[str, Any] = {"height": m.height, "width": m.width, "frames": m.frames, "steps": m.steps,
                          "hardware": gpu}
    if m.batch != 1:
        kw["batch"] = m.batch
    cfg = str(row.get("cfg") or "").lower()
    passes = row.get("passes_per_step")
    g = row.get("guidance_scale")
    mg = re.search(r"guid(?:e|ance)_?\s*scale\s*=?\s*([\d.]+)|guide\s*([\d.]+)", cfg)
    if mid not in NO_CFG_FROM_ROW:
        if passes == 1:
            kw["guidance_scale"] = 1.0
        elif isinstance(g, (int, float)) and not isinstance(g, bool) and math.isfinite(g) and 0 <= g <= 100:
            kw["guidance_scale"] = float(g)
        elif mg:
            kw["guidance_scale"] = float(mg.group(1) or mg.group(2))
    if "batched" in cfg and "sequential" not in cfg:  # diffusers pipelines that concatenate cond + uncond
        kw["batched_cfg"] = True
    par = resolve_parallel(row.get("parallel"), m.n_gpus)
    if isinstance(par, str):
        return par
    plan, notes = par
    assumptions.extend(notes)
    if m.n_gpus > 1:
        if "gpus" not in caps:
            return "multi-GPU deployments are not modeled by this fxmeter"
        kw.update(gpus=m.n_gpus, parallel=f"ulysses={plan['ulysses']},ring={plan['ring']},cfg={plan['cfg']},"
                                         f"tp={plan['tp']}", fsdp=plan["fsdp"])
    precision, why = resolve_precision(row.get("precision"))
    if why:
        return why
    if precision == "fp32":
        kw["dtype"] = "fp32"
        assumptions.append("float32 throughout: --dtype fp32 (its trace is made now if not cached)")
        precision = "bf16"
    tiling_text = norm(f"{row.get('precision') or ''} {row.get('offload') or ''} {row.get('vae') or ''}")
    if row.get("vae_tiling") in (True, "true", "yes", "on") or any(_word(w, tiling_text) for w in aliases().vae_tiling):
        kw["vae_tiling"] = "on"
        assumptions.append("VAE tiling: --vae-tiling on (the VAE's own tile sizes)")
    if precision != "bf16":
        kw["precision"] = precision
        if precision == "int8":
            assumptions.append("int8 dynamic quantization taken as --precision int8: matmuls at the int8 tensor-core "
                               "peak, weights 1 byte each; the per-token activation quantization is not counted")
    attention, notes = resolve_attention(row.get("attention"), gpu)
    if "sage" in norm(row.get("precision") or ""):
        attention = "sage"
    kw["attention"] = attention
    if attention == "sage":
        kw["attention_precision"] = "int8"
    assumptions.extend(notes)
    if m.compile is None:
        return f"compile value {row.get('compile')!r} is not a spelling in the alias table"
    if m.compile:
        kw["compile"] = True
    if m.scope == "all":
        if "stages" not in caps:
            return "the time covers the whole pipeline (text encoder, VAE): only the transformer is modeled here"
        kw["stages"] = "all"
    elif "stages" in caps:
        kw["stages"] = "transformer"  # a denoising-only time: on N GPUs too, only the denoisers are deployed
        assumptions.append("timing scope: the denoising stages only")
    offload = str(row.get("offload") or "").lower()
    offload_key = norm(offload)
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
    elif (policy := next((p for p, words in aliases().offload if any(_word(w, offload_key) for w in words)), None)):
        if "offload" not in caps:
            return f"offload {row.get('offload')!r} is not modeled by this fxmeter"
        kw["offload"] = policy
        assumptions.append(f"offload {row.get('offload')!r}: --offload {policy}")
    elif "cpu_offload" in offload or "cpu-offload" in offload or "sequential" in offload:
        return f"offload {row.get('offload')!r} is not a policy fxmeter can map"
    elif offload in ("", "none stated"):
        assumptions.append("offload not stated: taken as none")
    src = aliases().sources.get(str(row.get("source_repo") or "").lower(), {})
    runtime = src.get("runtime") if isinstance(src.get("runtime"), str) else None
    if runtime == "wan" and "convert_model_dtype" in f"{row.get('offload')} {row.get('precision')}".lower():
        runtime = "wan-bf16"
    if runtime is not None and "runtime" not in caps:
        runtime = None
    if "fused-qkv" in _extras(row) and "fuse_qkv" in caps:
        kw["fuse_qkv"] = True
        assumptions.append("fuse_qkv_projections(): --fuse-qkv (the fused copies loaded beside the projections)")
    if row.get("quantize_on_device") is True:  # the script moves the checkpoint to the GPU, then quantizes it there
        if kw.get("precision", "bf16") != "bf16" and kw.get("offload", "none") == "none" and not kw.get("gpus"):
            kw["quantize_on_device"] = True
            assumptions.append("quantized on the GPU after loading there in its dtype: --quantize-on-device")
        else:
            assumptions.append("quantize_on_device ignored: it needs fp8/int8 weights, no offload and one GPU")
    return Scenario(mid, kw, tuple(assumptions), runtime)


# -- predicting -------------------------------------------------------------------------------------
def _predicted_peak(est: Any, kind: str) -> int | None:
    """The predicted peak memory per GPU in bytes for a measured peak of ``kind``.

    The ONE place validate reads a memory figure from an estimate: the process-memory model
    (:func:`fxmeter.estimate.memory.predicted_peak`: weights, activations, library workspaces and the
    caching allocator's rounding, plus the CUDA context and NCCL buffers for what the driver shows).
    ``allocated`` -> ``torch.cuda.max_memory_allocated``; ``reserved`` -> ``max_memory_reserved``;
    ``nvidia-smi`` -> reserved + context + NCCL; a kind the source does not state -> reserved (the
    middle of the three; the figure each kind gives is in the JSON beside it).
    """
    from fxmeter.estimate.memory import predicted_peak

    return int(predicted_peak(est).peak_of(kind))


def predict(sc: Scenario, memo: dict[Any, Any], kind: str = "not stated") -> tuple[float, float, int | None]:
    """(predicted, bound) seconds of one scenario and its predicted peak bytes per GPU (traces memoised)."""
    from fxmeter import api

    req = api.request(sc.model, **sc.kwargs)
    inputs = api.stage_inputs(req, memo=memo.setdefault("stage_inputs", {}))
    # rows that repeat a stage's workload (one model and workload on several devices or GPU counts) share its
    # evaluation and its time per device (the memo a sweep uses): the same objects a fresh evaluation gives
    est = api.estimate_request(req, inputs, nodes=True, modules=True, memo=memo.setdefault("stages", {}))
    peak = _memory_peak(sc, est, memo, kind)
    dep = getattr(est, "deployment", None)
    if dep is not None:
        return float(dep.predicted_seconds), float(dep.bound_seconds), peak
    if sc.kwargs.get("stages") == "all":
        pred, bound = est.pipeline_seconds("predicted"), est.pipeline_seconds("bound")
    else:
        pred, bound = est.seconds("predicted"), est.seconds("bound")
    if pred is None or bound is None:
        raise FxmeterError("no device time")
    return float(pred), float(bound), peak


def _memory_peak(sc: Scenario, est: Any, memo: dict[Any, Any], kind: str) -> int | None:
    """The peak per GPU of the whole generation as the measuring runtime holds it (a peak covers every stage,
    whatever the time's scope), read by :func:`_predicted_peak`."""
    from fxmeter import api

    kw = dict(sc.kwargs)
    if kw.get("stages") == "all" and sc.runtime is None:
        return _predicted_peak(est, kind)
    kw["stages"] = "all"
    if sc.runtime is not None:
        kw["runtime"] = sc.runtime
    try:
        req = api.request(sc.model, **kw)
        mem_est = api.estimate_request(req, api.stage_inputs(req, memo=memo.setdefault("stage_inputs", {})),
                                       memo=memo.setdefault("stages", {}))
    except FxmeterError:
        return _predicted_peak(est, kind)
    return _predicted_peak(mem_est, kind)


# -- results --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RowResult:
    """One measurement and fxmeter's prediction of it (or why there is none)."""

    id: Any
    label: str
    measured_s: float | None
    predicted_s: float | None = None
    bound_s: float | None = None
    error: float | None = None  # (predicted - measured) / measured
    reason: str | None = None  # why it was not predicted
    assumptions: tuple[str, ...] = ()
    source: str = ""
    status: str = "predicted"  # predicted | refused | not represented | unreadable
    model: str = ""
    gpu: str = ""
    n_gpus: int | None = None
    compile: str = ""
    scope: str = ""
    measured_peak_gb: float | None = None
    predicted_peak_gb: float | None = None
    peak_error: float | None = None
    peak_kind: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "status": self.status, "measured_s": self.measured_s,
                "predicted_s": self.predicted_s, "bound_s": self.bound_s, "error": self.error, "reason": self.reason,
                "assumptions": list(self.assumptions), "source": self.source, "model": self.model, "gpu": self.gpu,
                "n_gpus": self.n_gpus, "compile": self.compile, "timing_scope": self.scope,
                "measured_peak_gb": self.measured_peak_gb, "predicted_peak_gb": self.predicted_peak_gb,
                "peak_error": self.peak_error, "peak_kind": self.peak_kind}


def _pct(xs: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``xs`` by linear interpolation (statistics' 'inclusive' method)."""
    s = sorted(xs)
    if len(s) == 1:
        return s[0]
    pos = q * (len(s) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summarize(errors: list[float]) -> dict[str, Any]:
    """n, median signed error, median |error|, P90 |error| and how many over-/under-predicted."""
    if not errors:
        return {"n": 0, "median_signed_error": None, "median_abs_error": None, "p90_abs_error": None,
                "too_fast": 0, "too_slow": 0}
    ab = [abs(e) for e in errors]
    return {"n": len(errors), "median_signed_error": statistics.median(errors), "median_abs_error": statistics.median(ab),
            "p90_abs_error": _pct(ab, 0.9), "too_fast": sum(e < 0 for e in errors), "too_slow": sum(e > 0 for e in errors)}


@dataclass(frozen=True)
class Validation:
    rows: tuple[RowResult, ...]
    data: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def predicted(self) -> list[RowResult]:
        return [r for r in self.rows if r.error is not None]

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.rows)

    @property
    def median_abs_error(self) -> float | None:
        return summarize([r.error for r in self.predicted if r.error is not None])["median_abs_error"]

    @property
    def median_signed_error(self) -> float | None:
        return summarize([r.error for r in self.predicted if r.error is not None])["median_signed_error"]

    @property
    def worst(self) -> RowResult | None:
        rows = self.predicted
        return max(rows, key=lambda r: abs(r.error or 0.0)) if rows else None

    def summary(self) -> dict[str, Any]:
        return summarize([r.error for r in self.predicted if r.error is not None])

    def multi_gpu(self) -> dict[str, Any]:
        return summarize([r.error for r in self.predicted if r.error is not None and (r.n_gpus or 1) > 1])

    def memory(self) -> dict[str, Any]:
        return summarize([r.peak_error for r in self.rows if r.peak_error is not None])

    def breakdowns(self) -> dict[str, list[dict[str, Any]]]:
        """Per source, model, GPU, GPU count, compile and timing scope: the same figures as the summary."""
        out: dict[str, list[dict[str, Any]]] = {}
        for attr, _title in BREAKDOWNS:
            groups: dict[str, list[float]] = {}
            for r in self.predicted:
                groups.setdefault(str(getattr(r, attr)), []).append(r.error or 0.0)
            out[attr] = [{"key": k, **summarize(v)} for k, v in sorted(groups.items(), key=lambda kv: (
                -len(kv[1]), _sort_key(kv[0])))]
        return out

    def to_dict(self) -> dict[str, Any]:
        w = self.worst
        s = self.summary()
        return {
            "schema_version": SCHEMA_VERSION, "data": self.data,
            "counts": {"rows": len(self.rows), "predicted": self.count("predicted"),
                       "represented": self.count("predicted") + self.count("refused"), "refused": self.count("refused"),
                       "not_represented": self.count("not represented"), "unreadable": self.count("unreadable"),
                       "skipped": len(self.rows) - self.count("predicted"),
                       "with_measured_peak": sum(r.measured_peak_gb is not None for r in self.rows)},
            "summary": s, "multi_gpu": self.multi_gpu(), "memory": self.memory(), "breakdowns": self.breakdowns(),
            "rows": [r.to_dict() for r in self.rows],
            # kept from schema 1
            "predicted": self.count("predicted"), "not_represented": len(self.rows) - self.count("predicted"),
            "median_abs_error": s["median_abs_error"], "median_signed_error": s["median_signed_error"],
            "worst": w.to_dict() if w else None, "notes": list(self.notes),
        }


def _sort_key(k: str) -> tuple[int, str]:
    return (int(k), "") if k.isdigit() else (10**9, k)


def _compile_text(m: Measurement) -> str:
    return "compiled" if m.compile else "eager" if m.compile is False else "?"


def _plan_text(m: Measurement) -> str:
    """The parallel plan as the label shows it ("ulysses4 ring2", "cfg2", "+fsdp"; "plan?" when unreadable)."""
    if m.n_gpus == 1:
        return ""
    got = resolve_parallel(m.parallel_text, m.n_gpus)
    if isinstance(got, str):
        return "plan?"
    plan = got[0]
    parts = [f"{k}{plan[k]}" for k in ("ulysses", "ring", "cfg", "tp") if plan[k] > 1]
    return " ".join(parts + (["fsdp"] if plan["fsdp"] else []))


def _spelling(text: str, *tables: Mapping[str, str]) -> str:
    """The longest alias-table spelling found in ``text`` (what tells "fp8dq" from "fp8dqrow"), or ""."""
    t = norm(text)
    for table in tables:
        hit = _first(table, t)
        if hit:
            return hit[0]
    return ""


def label(m: Measurement) -> str:
    """A row's label: every setting that tells two rows apart (size, frames, steps, batch, GPU and count,
    parallel plan, compile, attention kernel, precision), in words that are never cut."""
    a = aliases()
    frames = f"x{m.frames}f" if m.frames > 1 else ""
    att = resolve_attention(m.attention_text, m.gpu or "")[0]
    prec = _spelling(m.precision_text, a.precision_unsupported, a.precision) or resolve_precision(m.precision_text)[0]
    name = f"{m.model_name} {m.variant}".strip()
    plan = _plan_text(m)
    return " ".join(x for x in (name, f"{m.width}x{m.height}{frames}", f"{m.steps}st", f"b{m.batch}", m.gpu_name,
                                f"x{m.n_gpus}", plan, _compile_text(m), att, prec, *m.extras) if x)


def _raw_label(row: Any, index: int) -> str:
    if not isinstance(row, dict):
        return f"row {index}"
    bits = [str(row.get(k)) for k in ("model", "variant", "gpu") if row.get(k) not in (None, "")]
    return " ".join(bits)[:200] or f"row {index}"


def validate(data: str | Path | None = None, *, progress: Callable[[str], None] | None = None,
             only: Collection[int] | None = None) -> Validation:
    """Read every row of the measurement file; predict each representable one and compare.

    ``only``: the indexes of the rows to read (the rest are another validator's: a mixed file's training rows)."""
    rows, where = load_rows(data)
    caps = _capabilities()
    memo: dict[Any, Any] = {}
    out = []
    for i, row in enumerate(rows):
        if only is not None and i not in only:
            continue
        rid = row.get("id", i) if isinstance(row, dict) else i
        m = read_row(row, i)
        if isinstance(m, str):
            out.append(RowResult(rid, _raw_label(row, i), None, reason=m, status="unreadable",
                                 source=str(row.get("source_repo") or "") if isinstance(row, dict) else ""))
            continue
        base: dict[str, Any] = {"source": m.source, "model": m.model or m.model_name, "gpu": m.gpu or m.gpu_name, "n_gpus": m.n_gpus,
                "compile": _compile_text(m), "scope": m.scope,
                "measured_peak_gb": None if m.peak_gb is None else round(m.peak_gb, 3), "peak_kind": m.peak_kind}
        sc = scenario(row, caps, m)
        if isinstance(sc, str):
            out.append(RowResult(rid, label(m), m.measured_s, reason=sc, status="not represented",
                                 assumptions=m.assumptions, **base))
            continue
        try:
            pred, bound, peak = predict(sc, memo, m.peak_kind)
        except FxmeterError as e:
            out.append(RowResult(rid, label(m), m.measured_s, reason=f"fxmeter refused it: {e}", status="refused",
                                 assumptions=sc.assumptions, **base))
            continue
        if progress:
            progress(f"row {rid}: {pred:,.1f} s predicted, {m.measured_s:,.1f} s measured")
        ppk = None if peak is None else peak / GB
        perr = None if ppk is None or m.peak_gb is None else (ppk - m.peak_gb) / m.peak_gb
        out.append(RowResult(rid, label(m), m.measured_s, pred, bound, (pred - m.measured_s) / m.measured_s,
                             assumptions=sc.assumptions, predicted_peak_gb=None if ppk is None else round(ppk, 3),
                             peak_error=perr, **base))
    return Validation(tuple(out), where)


# -- rendering --------------------------------------------------------------------------------------
def fit_words(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters at a word boundary, "..." marking the cut (never mid-word)."""
    if len(text) <= width:
        return text
    cut = text[: width - 3].rsplit(" ", 1)[0] if " " in text[: width - 3] else ""
    return (cut.rstrip() + "...") if cut else text[: width - 3] + "..."


def wrap_words(text: str, width: int) -> list[str]:
    """``text`` over several lines of at most ``width`` characters, broken between words."""
    lines: list[str] = []
    cur = ""
    for w in text.split():
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    if cur:
        lines.append(cur)
    return [ln if len(ln) <= width else fit_words(ln, width) for ln in lines] or [""]


def _p(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.1f}%"


def _a(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _figures(s: Mapping[str, Any], low: str = "too fast", high: str = "too slow") -> str:
    return (f"median signed {_p(s['median_signed_error'])}, median |error| {_a(s['median_abs_error'])}, "
            f"P90 |error| {_a(s['p90_abs_error'])} ({s['too_fast']} {low}, {s['too_slow']} {high})")


LABEL_WIDTH = 64


def render(v: Validation, *, reasons: bool = True) -> str:
    """The console table: the bias first, then every predicted row (seconds and peak memory), the breakdowns
    and the rows fxmeter could not read or represent."""
    s = v.summary()
    lines = [f"predicted {s['n']} of {len(v.rows)} rows: {_figures(s)}"]
    mg = v.multi_gpu()
    if mg["n"]:
        lines.append(f"  multi-GPU rows ({mg['n']}): {_figures(mg)}")
    mem = v.memory()
    if mem["n"]:
        lines.append(f"  peak memory per GPU ({mem['n']} rows with a measured peak): "
                     f"{_figures(mem, 'under', 'over')}")
    lines.append(f"  rows: {v.count('predicted')} predicted, {v.count('refused')} refused by fxmeter, "
                 f"{v.count('not represented')} not represented, {v.count('unreadable')} unreadable")
    lines.append("")
    lines.append(f"{'id':>4}  {'row':<{LABEL_WIDTH}} {'measured s':>11} {'predicted s':>12} {'bound s':>10} "
                 f"{'error':>8} {'peak GB':>8} {'pred GB':>8} {'mem err':>8}")
    for r in v.rows:
        if r.error is None:
            continue
        parts = wrap_words(r.label, LABEL_WIDTH)
        mem_cols = (f" {r.measured_peak_gb:>8.1f} {r.predicted_peak_gb or 0:>8.1f} {_p(r.peak_error):>8}"
                    if r.peak_error is not None else "")
        lines.append(f"{str(r.id):>4}  {parts[0]:<{LABEL_WIDTH}} {r.measured_s or 0:>11,.1f} {r.predicted_s or 0:>12,.1f} "
                     f"{r.bound_s or 0:>10,.1f} {100 * r.error:>+7.1f}%{mem_cols}")
        lines.extend(f"{'':>4}    {p}" for p in parts[1:])
    for attr, title in BREAKDOWNS:
        groups = v.breakdowns()[attr]
        if len(groups) < 1:
            continue
        lines.append("")
        lines.append(f"by {title}:")
        for g in groups:
            lines.append(f"  {fit_words(g['key'] or '-', 36):<36} {g['n']:>4} rows  signed {_p(g['median_signed_error']):>7}  "
                         f"|err| {_a(g['median_abs_error']):>6}  P90 {_a(g['p90_abs_error']):>6}")
    worst = v.worst
    if worst:
        lines.append("")
        lines.append(f"worst {_a(abs(worst.error or 0))} (row {worst.id}: {worst.label})")
    skipped = [r for r in v.rows if r.error is None]
    if skipped and reasons:
        lines.append("")
        lines.append(f"not predicted ({len(skipped)} rows):")
        by: dict[tuple[str, str], list[str]] = {}
        for r in skipped:
            by.setdefault((r.status, r.reason or "?"), []).append(str(r.id))
        for (status, reason), ids in sorted(by.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            lines.append(f"  {len(ids):>3} rows {status}: {reason} (ids {', '.join(ids[:12])}"
                         f"{' ...' if len(ids) > 12 else ''})")
    lines.append(f"(measurements: {v.data}; memory in GB = 10^9 bytes, GiB sources converted; "
                 "nothing in fxmeter is fitted to them)")
    return "\n".join(lines)


__all__ = ["Aliases", "Measurement", "RowResult", "Scenario", "Validation", "aliases", "fit_words", "label",
           "load_rows", "read_row", "render", "resolve_attention", "resolve_compile", "resolve_gpu", "resolve_model",
           "resolve_parallel", "resolve_precision", "resolve_scope", "scenario", "summarize", "validate", "wrap_words"]
