"""The device table: tensor-core and CUDA-core peaks, memory bandwidth and capacity.

The table ships as data (``fxmeter/data/hardware.json``), each number with the
document it comes from.  A user adds a device with a small JSON file of the
same shape (one device object, or ``{"devices": [...]}``) passed as
``--hardware-file``.  Pure Python: the warm path must not import torch or sympy.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fxmeter.base.fileio import MAX_HARDWARE_BYTES, read_text
from fxmeter.errors import FxmeterError

LOG = logging.getLogger(__name__)

#: Largest peak, bandwidth or capacity a device file may state (1e30 FLOP/s is ~1e12 H100s): keeps arithmetic finite.
MAX_NUMBER = 1e30
#: Precisions a roofline can use for the tensor-core peak of matmul/conv nodes.
PRECISIONS = ("bf16", "fp8")


class HardwareError(FxmeterError):
    """An unknown device, a bad hardware file or an unsupported precision."""


@dataclass(frozen=True)
class Hardware:
    """One device's peaks (FLOP/s, bytes/s) and capacity (bytes)."""

    name: str
    label: str
    tensor_core: dict[str, float | None]  # precision -> dense FLOP/s (None: no such tensor cores)
    cuda_core_fp32: float
    memory_bandwidth: float
    memory_bytes: int
    aliases: tuple[str, ...] = ()
    sources: dict[str, str] = field(default_factory=dict)
    origin: str = "fxmeter/data/hardware.json"

    def tc_peak(self, precision: str) -> float:
        """Dense tensor-core FLOP/s at ``precision`` (bf16, fp16, fp8)."""
        v = self.tensor_core.get(precision)
        if not v:
            have = ", ".join(k for k, x in sorted(self.tensor_core.items()) if x)
            raise HardwareError(f"{self.name} has no {precision} tensor-core peak (it has: {have}); choose another --precision")
        return float(v)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "tensor_core": dict(sorted(self.tensor_core.items())),
            "cuda_core_fp32": self.cuda_core_fp32,
            "memory_bandwidth": self.memory_bandwidth,
            "memory_bytes": self.memory_bytes,
            "sources": dict(sorted(self.sources.items())),
            "origin": self.origin,
        }


def _number(d: dict[str, Any], key: str, where: str, *, allow_none: bool = False) -> float | None:
    if key not in d:
        raise HardwareError(f"{where}: missing {key!r}")
    v = d[key]
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= MAX_NUMBER:
        raise HardwareError(f"{where}: {key} must be a positive number up to {MAX_NUMBER:g}, got {v!r}")
    return float(v)


def parse_device(d: Any, origin: str) -> Hardware:
    """One device object of a hardware file -> :class:`Hardware` (validated)."""
    if not isinstance(d, dict):
        raise HardwareError(f"{origin}: a device must be a JSON object, got {type(d).__name__}")
    name = d.get("name")
    if not isinstance(name, str) or not name.strip():
        raise HardwareError(f"{origin}: every device needs a non-empty string 'name'")
    where = f"{origin}: device {name!r}"
    tc = d.get("tensor_core")
    if not isinstance(tc, dict) or not tc:
        raise HardwareError(f"{where}: 'tensor_core' must be an object like {{\"bf16\": 989.4e12, \"fp8\": 1978.9e12}}")
    peaks = {str(k): _number(tc, k, where + " tensor_core", allow_none=True) for k in tc}
    if not peaks.get("bf16") and not peaks.get("fp16"):
        raise HardwareError(f"{where}: tensor_core needs a bf16 (or fp16) peak")
    peaks.setdefault("bf16", peaks.get("fp16"))
    peaks.setdefault("fp16", peaks.get("bf16"))
    peaks.setdefault("fp8", None)
    cuda = _number(d, "cuda_core_fp32", where)
    bw = _number(d, "memory_bandwidth", where)
    gib = _number(d, "memory_gib", where)
    aliases = d.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise HardwareError(f"{where}: 'aliases' must be a list of strings")
    sources = d.get("sources", {})
    if not isinstance(sources, dict):
        raise HardwareError(f"{where}: 'sources' must be an object of strings")
    assert cuda is not None and bw is not None and gib is not None
    return Hardware(
        name=name.strip().lower(),
        label=str(d.get("label", name)),
        tensor_core=peaks,
        cuda_core_fp32=cuda,
        memory_bandwidth=bw,
        memory_bytes=int(gib * 2**30),
        aliases=tuple(a.lower() for a in aliases),
        sources={str(k): str(v) for k, v in sources.items()},
        origin=origin,
    )


def parse_document(doc: Any, origin: str) -> list[Hardware]:
    """A hardware file's JSON: one device object or ``{"devices": [...]}``."""
    if isinstance(doc, dict) and "devices" in doc:
        devs = doc["devices"]
        if not isinstance(devs, list) or not devs:
            raise HardwareError(f"{origin}: 'devices' must be a non-empty list")
        return [parse_device(x, origin) for x in devs]
    return [parse_device(doc, origin)]


def read_file(path: str | Path) -> list[Hardware]:
    """Devices of a user's hardware file (one-line :class:`HardwareError` when it is bad)."""
    p = Path(path)
    text = read_text(p, "hardware file", limit=MAX_HARDWARE_BYTES, error=HardwareError)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise HardwareError(f"hardware file {p} is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except (RecursionError, ValueError) as e:  # nesting deeper than the parser's stack; a 5,000-digit integer
        raise HardwareError(f"hardware file {p} is not a device table ({str(e)[:80]})") from None
    return parse_document(doc, str(p))


def builtin() -> list[Hardware]:
    """The shipped table."""
    text = resources.files("fxmeter.data").joinpath("hardware.json").read_text(encoding="utf-8")
    return parse_document(json.loads(text), "fxmeter/data/hardware.json")


def table(hardware_file: str | Path | None = None) -> dict[str, Hardware]:
    """Name -> device: the shipped table, then the user's file (its devices win)."""
    devs = builtin() + (read_file(hardware_file) if hardware_file else [])
    return {d.name: d for d in devs}


def get(name: str | None, hardware_file: str | Path | None = None) -> Hardware:
    """The device called ``name`` (or an alias); with only a file, its single device."""
    if name is not None and not isinstance(name, str):
        raise HardwareError(f"hardware takes one device name here (a string such as 'h100'), got {name!r}; "
                            "to compare devices, trace once per device")
    if hardware_file is not None and not isinstance(hardware_file, (str, Path)):
        raise HardwareError(f"hardware_file takes one path, got {hardware_file!r}")
    tab = table(hardware_file)
    if name is None:
        if hardware_file is None:
            raise HardwareError("no device: pass --hardware NAME (see `fxmeter hardware`) or --hardware-file PATH")
        user = read_file(hardware_file)
        if len(user) != 1:
            raise HardwareError(f"{hardware_file} holds {len(user)} devices; choose one with --hardware NAME")
        return user[0]
    key = name.strip().lower()
    if key in tab:
        return tab[key]
    for d in tab.values():
        if key in d.aliases:
            return d
    raise HardwareError(f"unknown hardware {name!r}; known: {', '.join(sorted(tab))} (see `fxmeter hardware`)")


def parse_efficiency(spec: str | dict[str, float] | None) -> dict[str, float]:
    """``"tc=0.6,bw=0.8"`` -> ``{"tc": 0.6, "cuda": 1.0, "bw": 0.8}`` (each in (0, 1])."""
    eff = {"tc": 1.0, "cuda": 1.0, "bw": 1.0}
    if spec is None or spec == "":
        return eff
    names = {"tc": "tc", "tensor": "tc", "tensor_core": "tc", "cuda": "cuda", "cc": "cuda", "cuda_core": "cuda",
             "bw": "bw", "mem": "bw", "memory": "bw"}
    items: list[tuple[str, Any]]
    if isinstance(spec, dict):
        items = list(spec.items())
    else:
        items = []
        for part in str(spec).split(","):
            if not part.strip():
                continue
            k, sep, v = part.partition("=")
            if not sep:
                raise HardwareError(f"bad --efficiency item {part.strip()!r}: use KEY=VALUE, e.g. tc=0.6,bw=0.8")
            items.append((k, v))
    for k, v in items:
        key = names.get(str(k).strip().lower())
        if key is None:
            raise HardwareError(f"unknown efficiency {str(k).strip()!r}: use tc, cuda or bw (e.g. tc=0.6,bw=0.8)")
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise HardwareError(f"efficiency {key}={v!r} is not a number") from None
        if not 0 < f <= 1:
            raise HardwareError(f"efficiency {key}={f:g} must be in (0, 1] (1 = the peak)")
        eff[key] = f
    return eff
