"""The device table: tensor-core and CUDA-core peaks, memory bandwidth and capacity,
architecture, SM count and links.

The table ships as data (``fxmeter/data/hardware.json``), each number with the
document it comes from.  A user adds a device with a small JSON file of the
same shape (one device object, or ``{"devices": [...]}``) passed as
``--hardware-file``; ``arch``, ``compute_capability``, ``sm_count``, ``links`` and
``price_per_hour_usd`` are optional there.  Pure Python: the warm path must not
import torch or sympy.

Why one long module: the device table's schema, its checks (every number finite, sourced and
sane) and its lookups are one data file's contract, read by both the shipped table and user files.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fxmeter.base import bounds
from fxmeter.base.fileio import MAX_HARDWARE_BYTES, read_text
from fxmeter.errors import FxmeterError

LOG = logging.getLogger(__name__)

#: Largest peak, bandwidth or capacity a device file may state (1e30 FLOP/s is ~1e12 H100s): keeps arithmetic finite.
MAX_NUMBER = 1e30
#: Precisions a roofline can use for the tensor-core peak of matmul/conv nodes.
PRECISIONS = ("bf16", "fp8", "int8")
#: GPU architectures the kernel model knows (``arch`` in a device file).
ARCHS = ("ampere", "ada", "hopper", "blackwell", "cdna3")
#: Link kinds: the GPU-to-GPU fabric (NVIDIA NVLink, AMD xGMI / Infinity Fabric) and the host link.
LINK_KINDS = ("nvlink", "xgmi", "pcie")
#: ``"9.0"`` (NVIDIA major.minor) or ``"gfx942"`` (AMD LLVM target).
_CC = re.compile(r"(?:[1-9][0-9]?\.[0-9]|gfx[0-9a-f]{3,4})")
#: Largest SM count / link lane count / generation a device file may state.
MAX_UNITS = 100_000


class HardwareError(FxmeterError):
    """An unknown device, a bad hardware file or an unsupported precision."""


@dataclass(frozen=True)
class Link:
    """One link of a device: the GPU-to-GPU fabric or the host (PCIe) link.

    ``bandwidth`` is bytes/s per GPU per direction; ``bandwidth_bidirectional`` both
    directions together (the figure vendors quote), when a source gives it.
    """

    kind: str  # nvlink | xgmi | pcie
    generation: int | None
    bandwidth: float
    bandwidth_bidirectional: float | None = None
    sources: str = ""
    lanes: int | None = None

    @property
    def text(self) -> str:
        """``NVLink4 450 GB/s`` / ``PCIe5 x16 63 GB/s``: per direction."""
        name = {"nvlink": "NVLink", "xgmi": "xGMI", "pcie": "PCIe"}[self.kind]
        gen = str(self.generation) if self.generation is not None else ""
        lanes = f" x{self.lanes}" if self.lanes else ""
        return f"{name}{gen}{lanes} {self.bandwidth / 1e9:g} GB/s"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "generation": self.generation,
            "lanes": self.lanes,
            "bandwidth": self.bandwidth,
            "bandwidth_bidirectional": self.bandwidth_bidirectional,
            "sources": self.sources,
        }


@dataclass(frozen=True)
class Hardware:
    """One device's peaks (FLOP/s, bytes/s), capacity (bytes), architecture and links.

    ``nvlink`` is the GPU-to-GPU fabric whatever its vendor (``kind`` ``"xgmi"`` on AMD);
    ``pcie`` the host link.  Every field after ``origin`` may be None (a user's file
    may omit it); the kernel model then falls back and says so.
    """

    name: str
    label: str
    tensor_core: dict[str, float | None]  # precision -> dense FLOP/s (None: no such tensor cores)
    cuda_core_fp32: float
    memory_bandwidth: float
    memory_bytes: int
    aliases: tuple[str, ...] = ()
    sources: dict[str, str] = field(default_factory=dict)
    origin: str = "fxmeter/data/hardware.json"
    arch: str | None = None
    compute_capability: str | None = None
    sm_count: int | None = None
    nvlink: Link | None = None
    pcie: Link | None = None
    price_per_hour: float | None = None

    @property
    def gpu_link(self) -> Link | None:
        """The link GPUs talk over: the fabric when there is one, else PCIe."""
        return self.nvlink or self.pcie

    def tc_peak(self, precision: str) -> float:
        """Dense tensor-core FLOP/s (ops/s for int8) at ``precision`` (bf16, fp16, fp8, int8)."""
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
            "arch": self.arch,
            "compute_capability": self.compute_capability,
            "sm_count": self.sm_count,
            "links": {  # keyed as in a device file: nvlink (xgmi on AMD) and pcie
                (self.nvlink.kind if self.nvlink else "nvlink"): self.nvlink.to_dict() if self.nvlink else None,
                "pcie": self.pcie.to_dict() if self.pcie else None,
            },
            "price_per_hour_usd": self.price_per_hour,
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


def _optional_int(d: dict[str, Any], key: str, where: str) -> int | None:
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= MAX_UNITS:
        raise HardwareError(f"{where}: {key} must be a positive integer up to {MAX_UNITS:,} or null, got {v!r}")
    return v


def _sources_text(v: Any, where: str) -> str:
    if v is None:
        return ""
    if not isinstance(v, str):
        raise HardwareError(f"{where}: 'sources' must be a string")
    return v


def parse_link(kind: str, v: Any, where: str) -> Link | None:
    """``links.<kind>`` of a device file -> :class:`Link` (None for null)."""
    if v is None:
        return None
    w = f"{where} links.{kind}"
    if not isinstance(v, dict):
        raise HardwareError(f"{w} must be an object like {{\"generation\": 4, \"bandwidth\": 450e9}} or null")
    unknown = sorted(set(v) - {"generation", "lanes", "bandwidth", "bandwidth_bidirectional", "sources"})
    if unknown:
        raise HardwareError(f"{w}: unknown key {unknown[0]!r} (known: generation, lanes, bandwidth, "
                            "bandwidth_bidirectional, sources)")
    bw = _number(v, "bandwidth", w)
    bidi = _number(v, "bandwidth_bidirectional", w, allow_none=True) if v.get("bandwidth_bidirectional") is not None else None
    assert bw is not None
    return Link(
        kind=kind,
        generation=_optional_int(v, "generation", w),
        bandwidth=bw,
        bandwidth_bidirectional=bidi,
        sources=_sources_text(v.get("sources"), w),
        lanes=_optional_int(v, "lanes", w),
    )


def _parse_links(d: dict[str, Any], where: str) -> tuple[Link | None, Link | None]:
    links = d.get("links")
    if links is None:
        return None, None
    if not isinstance(links, dict):
        raise HardwareError(f"{where}: 'links' must be an object like {{\"nvlink\": {{...}}, \"pcie\": {{...}}}}")
    unknown = sorted(set(links) - set(LINK_KINDS))
    if unknown:
        raise HardwareError(f"{where}: unknown link {unknown[0]!r} (known: {', '.join(LINK_KINDS)})")
    if links.get("nvlink") is not None and links.get("xgmi") is not None:
        raise HardwareError(f"{where}: links has both 'nvlink' and 'xgmi'; a device has one GPU-to-GPU fabric")
    fabric = parse_link("nvlink", links.get("nvlink"), where) or parse_link("xgmi", links.get("xgmi"), where)
    return fabric, parse_link("pcie", links.get("pcie"), where)


def _parse_arch(d: dict[str, Any], where: str) -> tuple[str | None, str | None]:
    arch = d.get("arch")
    if arch is not None and (not isinstance(arch, str) or arch.strip().lower() not in ARCHS):
        raise HardwareError(f"{where}: arch must be one of {', '.join(ARCHS)} (or left out), got {arch!r}")
    cc = d.get("compute_capability")
    if cc is not None and (not isinstance(cc, str) or not _CC.fullmatch(cc.strip())):
        raise HardwareError(f"{where}: compute_capability must be a string like \"9.0\" (AMD: \"gfx942\") or left out, got {cc!r}")
    return (arch.strip().lower() if arch is not None else None), (cc.strip() if cc is not None else None)


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
    peaks.setdefault("int8", None)
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
    arch, cc = _parse_arch(d, where)
    nvlink, pcie = _parse_links(d, where)
    price = _number(d, "price_per_hour_usd", where, allow_none=True) if d.get("price_per_hour_usd") is not None else None
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
        arch=arch,
        compute_capability=cc,
        sm_count=_optional_int(d, "sm_count", where),
        nvlink=nvlink,
        pcie=pcie,
        price_per_hour=price,
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
    devices = parse_document(doc, str(p))
    for d in devices:
        check_physical(d)
    return devices


def check_physical(d: Hardware) -> None:
    """A user's device within physics (:mod:`fxmeter.base.bounds`): peaks, bandwidths, memory, price.

    ``parse_device`` accepts any positive number (the roofline's own tests use round toy
    devices); a device file is held to real hardware, so 1e-300 FLOP/s cannot print ``inf s``.
    """
    where = f"{d.origin}: device {d.name!r}"
    for prec, peak in d.tensor_core.items():
        if peak is not None:
            bounds.check(f"{where} tensor_core.{prec}", peak, bounds.PEAK_FLOPS, error=HardwareError)
    bounds.check(f"{where} cuda_core_fp32", d.cuda_core_fp32, bounds.PEAK_FLOPS, error=HardwareError)
    bounds.check(f"{where} memory_bandwidth", d.memory_bandwidth, bounds.BANDWIDTH, error=HardwareError)
    bounds.check(f"{where} memory_gib", d.memory_bytes / 2**30, bounds.MEMORY_GIB, error=HardwareError)
    for link in (d.nvlink, d.pcie):
        if link is not None:
            bounds.check(f"{where} links.{link.kind}.bandwidth", link.bandwidth, bounds.BANDWIDTH, error=HardwareError)
            if link.bandwidth_bidirectional is not None:
                bounds.check(f"{where} links.{link.kind}.bandwidth_bidirectional", link.bandwidth_bidirectional,
                             bounds.BANDWIDTH, error=HardwareError)
    if d.price_per_hour is not None:
        bounds.check(f"{where} price_per_hour_usd", d.price_per_hour, bounds.PRICE_PER_HOUR, error=HardwareError)


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


def get_many(names: str | Sequence[str] | None, hardware_file: str | Path | None = None) -> list[Hardware]:
    """Devices named by ``"h100,a100"`` or ``["h100", "a100"]`` (with only a file: its single device)."""
    parts: list[str | None]
    if names is None or isinstance(names, str):
        parts = [p.strip() for p in names.split(",")] if isinstance(names, str) else [None]
    elif isinstance(names, Sequence) and all(isinstance(n, str) for n in names):
        parts = [str(n).strip() for n in names]
    else:
        raise HardwareError(f"hardware takes device names (a string such as 'h100' or 'h100,a100', or a list of "
                            f"strings), got {names!r}")
    if any(p == "" for p in parts):
        raise HardwareError(f"empty device name in {names!r}; use names such as h100,a100 (see `fxmeter hardware`)")
    out = [get(p, hardware_file) for p in parts]
    seen: set[str] = set()
    for d in out:
        if d.name in seen:
            raise HardwareError(f"device {d.name} is named twice in {names!r}")
        seen.add(d.name)
    return out


def parse_prices(spec: str | float | Mapping[str, float] | None, devices: Sequence[Hardware]) -> dict[str, float]:
    """``--price-per-hour``: one $ per GPU-hour for every device (``2.49``) or per device
    (``h100=2.49,a100=1.29``); a device file's ``price_per_hour_usd`` fills the rest.

    Refused, each with one line saying why: an empty value; a decimal comma (``2,49``: two bare
    prices, suggesting ``2.49``); more than one bare price; a bare price beside ``NAME=PRICE``
    pairs (which devices would it price?); a device priced twice (``h100=2.49,h100=3``, aliases
    included); a name that is not among the devices; anything but a finite number >= 0.
    """
    out = {d.name: d.price_per_hour for d in devices if d.price_per_hour is not None}
    if spec is None:
        return out  # type: ignore[return-value]
    items: list[tuple[str | None, Any]]
    if isinstance(spec, Mapping):
        items = [(str(k), v) for k, v in spec.items()]
    elif isinstance(spec, (int, float)) and not isinstance(spec, bool):
        items = [(None, spec)]
    elif isinstance(spec, str):
        text = spec.strip()
        if not text:
            raise HardwareError("--price-per-hour is empty: give $ per GPU-hour, e.g. 2.49 or h100=2.49,a100=1.29")
        if re.fullmatch(r"\d+,\d+", text):
            whole, frac = text.split(",")
            also = f" (or {whole}{frac} if the comma separates thousands)" if len(frac) == 3 else ""
            raise HardwareError(f"--price-per-hour {text!r} looks like a decimal comma: write {whole}.{frac}{also} "
                                "(a comma separates NAME=PRICE pairs, e.g. h100=2.49,a100=1.29)")
        items = []
        for part in text.split(","):
            if not part.strip():
                raise HardwareError(f"--price-per-hour {text!r} has an empty item: use 2.49 or h100=2.49,a100=1.29")
            name, sep, v = part.strip().rpartition("=")
            if sep and not name.strip():
                raise HardwareError(f"--price-per-hour item {part.strip()!r} names no device: use NAME=PRICE")
            items.append((name.strip() if sep else None, v))
    else:
        raise HardwareError(f"--price-per-hour takes a number or NAME=NUMBER pairs, got {spec!r}")
    bare = [v for k, v in items if k is None]
    if len(bare) > 1:
        raise HardwareError(f"--price-per-hour has {len(bare)} bare prices ({', '.join(str(v).strip() for v in bare)}): "
                            "give one number for every device, or NAME=PRICE per device (h100=2.49,a100=1.29); "
                            "the decimal separator is '.'")
    if bare and len(items) > 1:
        raise HardwareError("--price-per-hour mixes a bare price with NAME=PRICE pairs: which devices would the bare one "
                            "price? name every device (h100=2.49,a100=1.29)")
    names = {d.name for d in devices} | {a for d in devices for a in d.aliases}
    canon = {a: d.name for d in devices for a in (d.name, *d.aliases)}
    seen: dict[str, str] = {}
    for k, v in items:
        try:
            price = float(v)
        except (TypeError, ValueError):
            hint = " (the decimal separator is '.')" if isinstance(v, str) and re.fullmatch(r"\s*\d+,\d+\s*", v) else ""
            raise HardwareError(f"--price-per-hour: {v!r} is not a number of dollars per GPU-hour{hint}") from None
        if not math.isfinite(price) or price < 0:
            raise HardwareError(f"--price-per-hour must be a finite number >= 0, got {v!r}")
        bounds.check("--price-per-hour", price, bounds.PRICE_PER_HOUR, error=HardwareError)
        if k is None:
            out.update({d.name: price for d in devices})
        elif k.lower() not in names:
            raise HardwareError(f"--price-per-hour names {k!r}, which is not among the devices ({', '.join(d.name for d in devices)})")
        else:
            dev = canon[k.lower()]
            if dev in seen:
                raise HardwareError(f"--price-per-hour prices {dev} twice ({seen[dev]} and {k}={str(v).strip()}): "
                                    "give each device one price")
            seen[dev] = f"{k}={str(v).strip()}"
            out[dev] = price
    return out  # type: ignore[return-value]


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
        bounds.check(f"--efficiency {key}", f, bounds.EFFICIENCY, error=HardwareError)
        eff[key] = f
    return eff


def tf32_peak(hw: Hardware) -> float:
    """Dense TF32 tensor-core FLOP/s: the device table's ``tf32`` entry, else half its bf16 peak
    (NVIDIA A100/H100/H200/B200 whitepapers and datasheets: TF32 = FP16/BF16 / 2 dense, e.g. H100 SXM
    494.7 vs 989.4 TFLOPS; AMD MI300X 653.7 vs 1307.4)."""
    v = hw.tensor_core.get("tf32")
    return float(v) if v else hw.tc_peak("bf16") / 2
