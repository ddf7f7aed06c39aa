"""Collective communication time: a latency plus the bytes over the link's achievable bandwidth.

One call of a collective over ``n`` ranks takes::

    t = latency(kind, link) + factor(kind, n) * bytes / (fraction(kind, link) * link.bandwidth)

the model behind NCCL's own benchmark numbers (nccl-tests ``doc/PERFORMANCE.md``: ``busbw =
algbw * factor``, time ~ overhead + size / bandwidth).  ``factor`` is NCCL's bus-bandwidth factor,
``fraction`` the bus bandwidth NCCL reaches on that fabric over the wire's line rate, ``latency``
its small-message time.  All constants live in ``fxmeter/data/comms.json``, each with its source.

``Collective.bytes`` follows nccl-tests' size convention, per kind (bytes per rank):

* ``all_to_all``: each rank's whole send buffer, the part it keeps included; ``(n-1)/n`` of it
  leaves the rank.
* ``all_gather``: the gathered output on each rank (``n`` x the input shard).
* ``reduce_scatter``: the input on each rank (the whole array before the scatter).
* ``all_reduce``: the buffer each rank reduces (input size = output size).
* ``p2p``: what each rank sends to its peer (it receives as much at the same time).
* ``host_to_device`` / ``device_to_host``: the bytes copied by each GPU over its own PCIe link.

Pure Python: no torch.

Why one long module: the collective cost model (NCCL's bus-bandwidth factors, per-fabric measured
fractions and latencies) and the link choice for a group are one data file's reader and its one
formula.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from fxmeter.base.fileio import MAX_HARDWARE_BYTES, read_text
from fxmeter.errors import CommError

LOG = logging.getLogger(__name__)

#: GPU-to-GPU collectives (a group of ``ranks`` GPUs) and host copies (each GPU over its own PCIe link).
GPU_KINDS = ("all_to_all", "all_gather", "reduce_scatter", "all_reduce", "p2p")
HOST_KINDS = ("host_to_device", "device_to_host")
KINDS = GPU_KINDS + HOST_KINDS
#: Fabric keys of the data file: ``nvlink<generation>``, PCIe with P2P, PCIe staged through host memory, AMD xGMI.
_LINK_KEY = r"nvlink\d+|pcie|pcie_host|xgmi"
_PER_RANK = ("(n-1)/n", "1")
#: Largest latency (us) and fraction the data file may state: keeps the arithmetic finite and catches unit slips.
MAX_LATENCY_US = 1e6
MAX_FRACTION = 2.0


# -- links ----------------------------------------------------------------------------
class LinkLike(Protocol):
    """What the model reads of a link (``fxmeter.estimate.hardware`` Link or :class:`LinkSpec`)."""

    @property
    def kind(self) -> str: ...  # "nvlink" | "pcie" | "xgmi"

    @property
    def generation(self) -> int | None: ...

    @property
    def bandwidth(self) -> float: ...  # bytes/s per direction, per GPU


class DeviceLike(Protocol):
    """A device with its links (``None``: it has no such link); ``name`` picks per-device facts."""

    @property
    def name(self) -> str: ...

    @property
    def nvlink(self) -> LinkLike | None: ...

    @property
    def pcie(self) -> LinkLike | None: ...


@dataclass(frozen=True)
class LinkSpec:
    """One GPU's link: ``bandwidth`` in bytes/s per direction (``bandwidth_bidirectional``: both).

    ``via_host``: GPU-to-GPU traffic is staged through host memory (no GPUDirect P2P);
    ``device``: the device it belongs to (for per-device facts of the comm model).
    """

    kind: str
    generation: int | None
    bandwidth: float
    bandwidth_bidirectional: float | None
    sources: str
    via_host: bool = False
    device: str = ""


@dataclass(frozen=True)
class Collective:
    """One collective of a deployment, issued ``count`` times (per forward, step or generation: the caller says).

    ``bytes``: bytes per rank in nccl-tests' convention for ``kind`` (see the module docstring);
    ``ranks``: the group size; ``what``: where and why it runs; ``overlappable``: it may run while
    the compute of ``window`` (a name of :class:`OverlapRules`) runs; otherwise it is on the critical path.
    """

    kind: str
    bytes: int
    ranks: int
    count: int = 1
    what: str = ""
    overlappable: bool = False
    window: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise CommError(f"unknown collective {self.kind!r}; known: {', '.join(KINDS)}")
        for name in ("bytes", "ranks", "count"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if name == "ranks" else 0):
                raise CommError(f"collective {self.what or self.kind}: {name} must be an integer >= "
                                f"{1 if name == 'ranks' else 0}, got {v!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "bytes": self.bytes, "ranks": self.ranks, "count": self.count,
                "what": self.what, "overlappable": self.overlappable, "window": self.window}


# -- the constants ----------------------------------------------------------------------
@dataclass(frozen=True)
class CommModel:
    """The validated constants of ``comms.json``."""

    factors: Mapping[str, tuple[int, bool]]  # kind -> (scale, times (n-1)/n)
    fractions: Mapping[str, Mapping[str, float]]  # link key -> kind -> busbw / line rate
    latency_s: Mapping[str, Mapping[str, float]]  # link key -> kind -> seconds per call
    mesh_links: Mapping[str, int]  # link key -> links of a full mesh (xgmi)
    p2p: Mapping[str, bool]  # device name -> GPUDirect P2P available
    nvlink_max_ranks: Mapping[str, int]  # device name -> largest group its NVLink joins (bridges)
    nvlink_fractions: Mapping[str, Mapping[str, float]]  # device name -> kind -> measured fraction
    sources: Mapping[str, str]  # dotted key -> source
    origin: str

    def factor(self, kind: str, ranks: int) -> float:
        """NCCL's bus-bandwidth factor of ``kind`` over ``ranks`` ranks."""
        scale, per_rank = self.factors[kind]
        return scale * (ranks - 1) / ranks if per_rank else float(scale)

    def link_key(self, link: LinkLike) -> str:
        """``nvlink4``, ``pcie``, ``pcie_host``, ``xgmi``: the fabric entry ``link`` uses."""
        kind = str(link.kind).lower()
        if kind == "nvlink":
            key = f"nvlink{link.generation}"
        elif kind == "pcie":
            key = "pcie_host" if getattr(link, "via_host", False) else "pcie"
        elif kind in ("xgmi", "infinity_fabric"):
            key = "xgmi"
        else:
            key = kind
        if key not in self.fractions:
            known = ", ".join(sorted(self.fractions))
            raise CommError(f"no collective constants for a {kind} link (generation {link.generation}) in {self.origin}; "
                            f"known fabrics: {known}")
        return key

    def fraction(self, kind: str, link: LinkLike) -> float:
        key = self.link_key(link)
        device = getattr(link, "device", "") or ""
        if key.startswith("nvlink") and kind in self.nvlink_fractions.get(device, {}):
            return self.nvlink_fractions[device][kind]
        try:
            return self.fractions[key][kind]
        except KeyError:
            raise CommError(f"{self.origin} has no {kind} fraction for {key} links") from None

    def latency(self, kind: str, link: LinkLike) -> float:
        key = self.link_key(link)
        try:
            return self.latency_s[key][kind]
        except KeyError:
            raise CommError(f"{self.origin} has no {kind} latency for {key} links") from None

    def effective_bandwidth(self, link: LinkLike, ranks: int, kind: str = "all_to_all") -> float:
        """The link's bandwidth per direction that one GPU of a group of ``ranks`` can use for ``kind``.

        Switched fabrics (NVSwitch, PCIe) give each GPU its whole bandwidth; a full mesh (xGMI) gives
        it min(n-1, links) of its links, and one link to a ``p2p`` peer.
        """
        key = self.link_key(link)
        bw = float(link.bandwidth)
        links = self.mesh_links.get(key)
        if links:
            used = 1 if kind == "p2p" else min(max(ranks - 1, 1), links)
            bw *= used / links
        return bw


def _entry(d: Any, where: str, check: Any) -> tuple[Any, str]:
    """A ``{"value": ..., "source": "..."}`` entry -> (value, source)."""
    if not isinstance(d, dict) or set(d) != {"value", "source"}:
        raise CommError(f"{where} must be an object with exactly 'value' and 'source'")
    src = d["source"]
    if not isinstance(src, str) or not src.strip():
        raise CommError(f"{where}.source must be a non-empty string naming where the number comes from")
    return check(d["value"], f"{where}.value"), src


def _number(lo: float, hi: float, *, open_lo: bool) -> Any:
    def check(v: Any, where: str) -> float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        ok = ok and (lo < v if open_lo else lo <= v) and v <= hi
        if not ok:
            raise CommError(f"{where} must be a number in {'(' if open_lo else '['}{lo:g}, {hi:g}], got {v!r}")
        return float(v)

    return check


def _integer(lo: int, hi: int) -> Any:
    def check(v: Any, where: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise CommError(f"{where} must be an integer in [{lo}, {hi}], got {v!r}")
        return v

    return check


def _boolean(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        raise CommError(f"{where} must be true or false, got {v!r}")
    return v


def _object(d: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise CommError(f"{where} must be a JSON object, got {type(d).__name__}")
    missing = [k for k in required if k not in d]
    if missing:
        raise CommError(f"{where} lacks {', '.join(repr(k) for k in missing)}")
    extra = sorted(set(d) - set(required) - set(optional))
    if extra:
        raise CommError(f"{where} has unknown key(s) {', '.join(repr(k) for k in extra)}; "
                        f"it takes: {', '.join(required + optional)}")
    return d


def parse_comm_model(doc: Any, origin: str) -> CommModel:
    """A comms.json document -> :class:`CommModel`; anything wrong is one :class:`CommError` naming the key."""
    import re

    doc = _object(doc, origin, ("schema", "busbw_factor", "links"), ("about", "units", "devices", "notes"))
    if doc["schema"] != 1:
        raise CommError(f"{origin}: schema {doc['schema']!r} is not supported (this fxmeter reads schema 1)")
    sources: dict[str, str] = {}

    factors: dict[str, tuple[int, bool]] = {}
    fdoc = _object(doc["busbw_factor"], f"{origin}: busbw_factor", KINDS)
    for kind in KINDS:
        where = f"{origin}: busbw_factor.{kind}"
        e = _object(fdoc[kind], where, ("scale", "per_rank", "source"))
        scale = _integer(1, 2)(e["scale"], f"{where}.scale")
        if e["per_rank"] not in _PER_RANK:
            raise CommError(f"{where}.per_rank must be one of {', '.join(repr(x) for x in _PER_RANK)}, got {e['per_rank']!r}")
        if not isinstance(e["source"], str) or not e["source"].strip():
            raise CommError(f"{where}.source must be a non-empty string")
        factors[kind] = (scale, e["per_rank"] == "(n-1)/n")
        sources[f"busbw_factor.{kind}"] = e["source"]

    fractions: dict[str, dict[str, float]] = {}
    latency: dict[str, dict[str, float]] = {}
    mesh: dict[str, int] = {}
    links = doc["links"]
    if not isinstance(links, dict) or "pcie" not in links:
        raise CommError(f"{origin}: links must be an object with at least a 'pcie' entry (host copies use it)")
    frac_check = _number(0.0, MAX_FRACTION, open_lo=True)
    lat_check = _number(0.0, MAX_LATENCY_US, open_lo=False)
    for key, ldoc in links.items():
        where = f"{origin}: links.{key}"
        if not re.fullmatch(_LINK_KEY, key):
            raise CommError(f"{where}: unknown fabric; use nvlink<generation>, pcie, pcie_host or xgmi")
        ldoc = _object(ldoc, where, ("fraction", "latency_us"), ("applies_to", "mesh_links"))
        kinds = KINDS if key == "pcie" else GPU_KINDS
        fr = _object(ldoc["fraction"], f"{where}.fraction", kinds)
        la = _object(ldoc["latency_us"], f"{where}.latency_us", kinds)
        fractions[key], latency[key] = {}, {}
        for kind in kinds:
            fractions[key][kind], sources[f"links.{key}.fraction.{kind}"] = _entry(fr[kind], f"{where}.fraction.{kind}", frac_check)
            us, sources[f"links.{key}.latency_us.{kind}"] = _entry(la[kind], f"{where}.latency_us.{kind}", lat_check)
            latency[key][kind] = us * 1e-6
        if "mesh_links" in ldoc:
            mesh[key], sources[f"links.{key}.mesh_links"] = _entry(ldoc["mesh_links"], f"{where}.mesh_links", _integer(1, 1024))

    p2p: dict[str, bool] = {}
    max_ranks: dict[str, int] = {}
    dev_fr: dict[str, dict[str, float]] = {}
    devices = doc.get("devices", {})
    if not isinstance(devices, dict):
        raise CommError(f"{origin}: devices must be an object of device name -> facts")
    for name, ddoc in devices.items():
        where = f"{origin}: devices.{name}"
        ddoc = _object(ddoc, where, (), ("p2p", "nvlink_max_ranks", "nvlink_fraction"))
        key = str(name).strip().lower()
        if "p2p" in ddoc:
            p2p[key], sources[f"devices.{name}.p2p"] = _entry(ddoc["p2p"], f"{where}.p2p", _boolean)
        if "nvlink_max_ranks" in ddoc:
            max_ranks[key], sources[f"devices.{name}.nvlink_max_ranks"] = _entry(
                ddoc["nvlink_max_ranks"], f"{where}.nvlink_max_ranks", _integer(2, 1 << 20))
        if "nvlink_fraction" in ddoc:
            fr = _object(ddoc["nvlink_fraction"], f"{where}.nvlink_fraction", (), GPU_KINDS)
            dev_fr[key] = {}
            for kind, e in fr.items():
                dev_fr[key][kind], sources[f"devices.{name}.nvlink_fraction.{kind}"] = _entry(
                    e, f"{where}.nvlink_fraction.{kind}", frac_check)
    notes = doc.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise CommError(f"{origin}: notes must be a list of strings")
    return CommModel(factors, fractions, latency, mesh, p2p, max_ranks, dev_fr, sources, origin)


@functools.lru_cache(maxsize=1)
def _builtin() -> CommModel:
    text = resources.files("fxmeter.data").joinpath("comms.json").read_text(encoding="utf-8")
    return parse_comm_model(json.loads(text), "fxmeter/data/comms.json")


def load_comm_model(path: str | Path | None = None) -> CommModel:
    """The shipped constants, or a user's file of the same shape (one-line :class:`CommError` when it is bad)."""
    if path is None:
        return _builtin()
    p = Path(path)
    text = read_text(p, "comm model file", limit=MAX_HARDWARE_BYTES, error=CommError)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise CommError(f"comm model file {p} is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except (RecursionError, ValueError) as e:  # nesting deeper than the parser's stack; a 5,000-digit integer
        raise CommError(f"comm model file {p} is not a comm model ({str(e)[:80]})") from None
    return parse_comm_model(doc, str(p))


# -- time ----------------------------------------------------------------------------
def collective_seconds(c: Collective, link: LinkLike, model: CommModel) -> float:
    """Seconds of ONE call of ``c`` over ``link``: latency + factor * bytes / (fraction * bandwidth).

    A GPU-to-GPU collective over one rank, or of zero bytes, is no call: 0.  Host copies run over
    the PCIe link (pass the device's ``pcie`` link).
    """
    if c.bytes == 0:
        return 0.0
    if c.kind in HOST_KINDS:
        if str(link.kind).lower() != "pcie":
            raise CommError(f"{c.kind} runs over the PCIe link; pass the device's pcie link, not {link.kind}")
        host = LinkSpec("pcie", link.generation, float(link.bandwidth), None, "")
        return model.latency(c.kind, host) + c.bytes / (model.fraction(c.kind, host) * host.bandwidth)
    if c.ranks == 1:
        return 0.0
    bw = model.effective_bandwidth(link, c.ranks, c.kind) * model.fraction(c.kind, link)
    return model.latency(c.kind, link) + model.factor(c.kind, c.ranks) * c.bytes / bw


def _link_attr(hw: Any, name: str) -> Any:
    v = getattr(hw, name, None)
    if v is None:  # a Hardware that keeps its links in a `links` record or mapping
        links = getattr(hw, "links", None)
        v = links.get(name) if isinstance(links, Mapping) else getattr(links, name, None)
    return v


def _spec(link: Any, *, kind: str | None = None, via_host: bool = False, device: str = "") -> LinkSpec:
    bidir = getattr(link, "bandwidth_bidirectional", None)
    return LinkSpec(
        kind=kind or str(link.kind).lower(),
        generation=getattr(link, "generation", None),
        bandwidth=float(link.bandwidth),
        bandwidth_bidirectional=None if bidir is None else float(bidir),
        sources=str(getattr(link, "sources", "") or ""),
        via_host=via_host,
        device=device,
    )


def pick_link(hw: DeviceLike, ranks: int, model: CommModel | None = None) -> LinkSpec:
    """The link a group of ``ranks`` GPUs of device ``hw`` talks over.

    NVLink when the device has it, its GPUs have GPUDirect P2P and the group fits it (an H100 PCIe
    NVLink bridge joins 2 GPUs); else xGMI (AMD); else PCIe, staged through host memory
    (``via_host``) on cards without P2P such as the RTX 4090 (``comms.json`` ``devices``).
    """
    model = model or load_comm_model()
    name = str(getattr(hw, "name", "") or "").lower()
    p2p_attr = getattr(hw, "p2p", None)
    p2p = p2p_attr if isinstance(p2p_attr, bool) else model.p2p.get(name, True)
    nvlink = _link_attr(hw, "nvlink")
    if nvlink is not None and p2p and ranks <= model.nvlink_max_ranks.get(name, ranks):
        # Hardware.nvlink is the GPU-to-GPU fabric whatever its vendor: an MI300X's is xGMI, not NVLink
        return _spec(nvlink, kind=str(getattr(nvlink, "kind", None) or "nvlink").lower(), device=name)
    xgmi = _link_attr(hw, "xgmi") or _link_attr(hw, "infinity_fabric")
    if xgmi is not None:
        return _spec(xgmi, kind="xgmi", device=name)
    pcie = _link_attr(hw, "pcie")
    if pcie is not None:
        return _spec(pcie, kind="pcie", via_host=not p2p, device=name)
    raise CommError(f"device {name or hw!r} has no nvlink, xgmi or pcie link in its hardware entry; "
                    "communication needs one (add 'interconnect' to the device)")
