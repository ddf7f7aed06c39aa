"""Kernel-efficiency model: predicted seconds of one kernel call, from published kernel benchmarks.

The roofline (:mod:`fxmeter.estimate.roofline`) runs every node at 100% of every
peak: a lower bound.  This model predicts what a kernel achieves instead.  Every
constant lives in ``fxmeter/data/kernels.json`` with its source; none is fitted to
generation timings.  Per call (one graph node, one instance):

* **GEMM** (``matmul``, and ``conv`` as an implicit GEMM):
  ``achieved = peak(precision) x e_asym x e_tile x e_wave`` where ``e_asym`` is the
  measured best-shape large-GEMM throughput over the peak (MAMF) of the device, or of
  a stand-in device (flagged ``fallback``); ``e_tile = m*n / (ceil(m/Tm)*Tm * ceil(n/Tn)*Tn)``
  and ``e_wave = C / (ceil(C/S)*S)`` for ``C = b*ceil(m/Tm)*ceil(n/Tn)`` output tiles
  on ``S`` SMs (``Tm x Tn = 128 x 256``: CUTLASS's default tensor-op tile).  Time =
  ``max(tc_flops/achieved, bytes/(bandwidth*f_bw), cuda_flops/cuda_peak) + launches*t_launch``.
  fp8 uses the device's fp8 MAMF where published, else its bf16 one (flagged); int8
  (torchao's int8 dynamic quantization) an int8 GEMM measurement where one is published
  (none is yet), else the fp8 efficiency, else the bf16 one, at the int8 peak (flagged).
  float32 operands run on CUDA cores (PyTorch's default: no TF32 for matmul);
  the same efficiencies apply (flagged).
* **Attention**: achieved TFLOP/s read from the published forward, non-causal table of
  the kernel (FA2 = torch SDPA's flash backend, FA3, cuDNN, SageAttention) on the
  device, at the head dim (log2-interpolated between tables) and at the **key**
  length ``Lk`` (log-interpolated, clamped at the ends): each thread block of 128
  query rows loops over all of K/V, so ``Lk`` sets the loop that the tables' rise
  with sequence length measures, while ``Lq`` sets the block count, modelled as
  wave quantization over ``b*h*ceil(Lq/128)`` blocks.  A device without its own
  table takes a stand-in device's fraction of peak (flagged, and named: :func:`stand_ins`);
  for FA2/SDPA (no softmax/matmul overlap) that fraction is rescaled for the two devices'
  tensor-core / exponential balance (:func:`exp_balance`, sources in kernels.json
  ``attention.stand_in_balance``).  A stand-in of another architecture is flagged
  ``cross_architecture``.  Capped at the peak.
* **Everything else** (elementwise, norms, softmax, casts, copies, reductions, sorts, top-k, ...):
  ``max(cuda_flops/cuda_peak, bytes/(bandwidth*f_bw)) + launches*t_launch`` with
  ``f_bw`` a measured copy-kernel (STREAM scale) bandwidth over the spec and
  ``t_launch`` a measured per-kernel launch cost of back-to-back launches.

``bound_seconds`` is the same call at 100% of every peak (no launch cost), so
``seconds >= bound_seconds`` always.  ``basis`` names the data entries used
(``[fallback]`` marks one measured on a stand-in device); ``fallback`` is True when
the limiting term rests on such a stand-in, on the GEMM model for a convolution, or
on no table at all.  ``efficiency`` is the limiting term at 100% of its peak over
``seconds`` (for a launch-bound call: ``bound_seconds / seconds``).

Not modelled (no published per-kernel source): split-K / stream-K (so a GEMM with
fewer output tiles than SMs and a long K is pessimistic on the compute side; such
GEMMs are usually memory- or launch-bound anyway), CUDA graphs (``compile`` changes
nothing here: the caller passes fused bytes and launches), CPU-side dispatch gaps of
eager PyTorch, and overlap between kernels.  Pure Python: no torch, no numpy.

Why one long module: the kernel model is one data file's reader and its one pricing function;
the parser, the stand-in search and the per-family pricing share the same constants and keys
(each priced node's basis names them), so they are kept together.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from fxmeter.base.fileio import MiB, read_text
from fxmeter.errors import FxmeterError
from fxmeter.estimate.hardware import ARCHS, Hardware, HardwareError, tf32_peak

LOG = logging.getLogger(__name__)

#: Op families of the rules (``fxmeter.rules``) the model accepts.
FAMILIES = (
    "matmul", "conv", "attention", "elementwise", "transcendental", "norm", "activation", "softmax",
    "reduction", "copy", "factory", "cast", "free", "resample", "sorting", "selection", "scatter_reduce", "unmodeled",
)
GEMM_FAMILIES = frozenset({"matmul", "conv"})
ATTENTION_KERNELS = ("sdpa", "fa2", "fa3", "cudnn", "sage")
MATMUL_PRECISIONS = ("bf16", "fp8", "int8")
ATTENTION_PRECISIONS = ("bf16", "fp8", "int8")
TABLE_PRECISIONS = ("bf16", "fp8", "int8")
LIMITERS = ("tensor_core", "cuda_core", "memory", "launch")
#: Largest kernel-model file fxmeter reads.
MAX_KERNELS_BYTES = 4 * MiB
_SHIPPED = "fxmeter/data/kernels.json"


class KernelModelError(FxmeterError):
    """A bad kernel-model file (``kernels.json``) or a call the model cannot take."""


# -- the interface --------------------------------------------------------------------------------
@dataclass(frozen=True)
class KernelCall:
    """What the model sees of one graph node (one instance).

    ``shape``: matmul ``{"b", "m", "n", "k"}`` (b = batch count, 1 for linear/mm; m =
    rows of the output, all leading dims folded in); conv: the implicit GEMM
    ``{"b": groups, "m": N*prod(out spatial) (prod(in spatial) if transposed),
    "n": Cout/groups, "k": Cin/groups*prod(kernel)}``; attention ``{"b", "h", "lq",
    "lk", "d", "dv"}``; other families ``{}``.
    """

    family: str
    tensor_core_flops: int
    cuda_core_flops: int
    bytes: int
    shape: Mapping[str, int] = field(default_factory=dict)
    dtype: str = "bfloat16"
    launches: int = 1
    #: an eager binary op with a broadcast operand (PyTorch's TensorIterator then skips its vectorized path)
    broadcast: bool = False


#: Binary (and ternary) ATen elementwise ops that broadcast an operand through TensorIterator.
BROADCASTING = frozenset({
    "aten.mul.Tensor", "aten.add.Tensor", "aten.sub.Tensor", "aten.div.Tensor", "aten.where.self",
    "aten.maximum.default", "aten.minimum.default", "aten.pow.Tensor_Tensor", "aten.lerp.Tensor",
    "aten.addcmul.default", "aten.addcdiv.default", "aten.rsub.Tensor",
})


def broadcast_op(family: str, target: str, bytes_read: int, bytes_written: int) -> bool:
    """A binary elementwise op with a broadcast operand: one operand much smaller than the output, so its bytes
    read are under 1.5x its bytes written (a same-shape binary op reads twice what it writes, at one dtype).
    Run eagerly it takes PyTorch's non-vectorized loop (kernels.json ``memory.broadcast``)."""
    return family == "elementwise" and target in BROADCASTING and bytes_written > 0 and 2 * bytes_read < 3 * bytes_written


@dataclass(frozen=True)
class KernelOptions:
    """Which kernels run: attention kernel and the precisions of matmul/conv and attention."""

    attention: str = "sdpa"  # sdpa | fa2 | fa3 | cudnn | sage
    precision: str = "bf16"  # bf16 | fp8 | int8: matmul/conv tensor-core precision
    attention_precision: str = "bf16"  # bf16 | fp8 (FA3 / cuDNN fp8) | int8 (SageAttention's INT8 QK)
    compile: bool = False  # torch.compile: the caller passes fused bytes and launches (no CUDA graphs modelled)


@dataclass(frozen=True)
class KernelTime:
    """The model's answer for one call."""

    seconds: float  # predicted
    bound_seconds: float  # the same call at 100% of every peak (roofline lower bound)
    limiter: str  # tensor_core | cuda_core | memory | launch
    efficiency: float  # achieved fraction of the limiting peak (bound term of the limiter / seconds)
    basis: str  # the data-file keys the prediction used
    fallback: bool = False  # the limiting term rests on a stand-in (another device's measurement, no table): see basis


# -- the data ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measured:
    """One measured constant: a fraction (GEMM efficiency, bandwidth fraction) or seconds (launch)."""

    key: str
    devices: tuple[str, ...]
    compute_capability: str
    value: float
    peak: float | None  # the measured device's peak (FLOP/s or bytes/s): ranks stand-ins by closeness
    precision: str | None
    source: str


@dataclass(frozen=True)
class AttentionTable:
    """Achieved forward attention FLOP/s vs sequence length: one kernel, device, head dim, precision."""

    key: str
    kernel: str
    device: str
    compute_capability: str
    headdim: int
    precision: str
    peak: float | None  # the measured device's peak at this precision (FLOP/s); None: not usable as a stand-in
    points: tuple[tuple[float, float], ...]  # (seq len, FLOP/s), seq increasing
    source: str

    def at(self, seq: float) -> float:
        """FLOP/s at ``seq``: linear in log(seq) between points, clamped at the ends."""
        pts = self.points
        if seq <= pts[0][0]:
            return pts[0][1]
        if seq >= pts[-1][0]:
            return pts[-1][1]
        for (s0, y0), (s1, y1) in zip(pts, pts[1:]):
            if seq <= s1:
                t = (math.log(seq) - math.log(s0)) / (math.log(s1) - math.log(s0))
                return y0 + t * (y1 - y0)
        return pts[-1][1]  # pragma: no cover - the loop returns


@dataclass(frozen=True)
class HostCosts:
    """Host (CPU) seconds of issuing work: one eager ATen op, one CUDA launch, one Inductor launcher call.

    Read from ``kernels.json``'s ``host`` section, each with its source; the timeline that turns
    them into GPU idle time is :mod:`fxmeter.estimate.host`.
    """

    eager_op: float
    launch: float
    compiled_launch: float
    keys: tuple[str, ...]
    #: host seconds per launched kernel of eager MODEL code, all in (the Python of the modules around it, its op's
    #: dispatch, the views and allocator calls between kernels, the launch); None: the bare op's floor only
    eager_kernel: float | None = None

    def node_seconds(self, *, launches: int, compiled: bool) -> float:
        """Host seconds of one graph node.  Eager: ``eager_kernel`` per kernel it launches, all in (a view or
        other kernel-less node costs nothing of its own: it is inside that figure), never less per kernel than the
        bare op's floor (an op's dispatch + a CUDA launch); without ``eager_kernel``, the floor alone (views at one
        dispatch each); compiled: an Inductor launcher call + a CUDA launch per fused kernel
        it leads, nothing else (the module code ran once, at compile time)."""
        if compiled:
            return launches * (self.compiled_launch + self.launch)
        if self.eager_kernel is None:
            return self.eager_op + launches * self.launch
        return launches * max(self.eager_kernel, self.eager_op + self.launch)

    def scaled(self, factor: float) -> HostCosts:
        """Every host cost ``factor`` times (a slower host: diagnose's host-bound cause)."""
        return replace(self, eager_op=self.eager_op * factor, launch=self.launch * factor,
                       compiled_launch=self.compiled_launch * factor,
                       eager_kernel=None if self.eager_kernel is None else self.eager_kernel * factor)


@dataclass(frozen=True)
class KernelModel:
    """The validated contents of ``kernels.json``."""

    gemm: tuple[Measured, ...]
    tile_m: int
    tile_n: int
    tile_q: int
    attention_kernels: Mapping[str, tuple[str, ...]]
    tables: tuple[AttentionTable, ...]
    bandwidth: tuple[Measured, ...]
    launch: tuple[Measured, ...]
    fallback_order: Mapping[str, tuple[str, ...]]
    sources: Mapping[str, str]  # every constant's source, by key (for tests and reports)
    origin: str = _SHIPPED
    _cache: dict[Any, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)
    host: HostCosts | None = None  # None: the file has no ``host`` section (no host-side term)
    same_silicon: Mapping[str, str] = field(default_factory=dict)  # device -> the device whose die it is
    prefer_sources: tuple[str, ...] = ()  # attention benchmarks preferred where one device has tables from several
    broadcast: Measured | None = None  # bandwidth of a broadcasting eager binary op / a same-shape one (None: 1)

    def order(self, hw: Hardware) -> tuple[str, ...]:
        """Compute-capability groups to search for a stand-in measurement, nearest first."""
        cc = hw.compute_capability
        if cc is not None and cc in self.fallback_order:
            return self.fallback_order[cc]
        return self.fallback_order["default"]


# -- loading ----------------------------------------------------------------------------------------
class _Reader:
    """Typed access to the JSON document with one-line errors naming the path."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def fail(self, where: str, msg: str) -> KernelModelError:
        return KernelModelError(f"kernel model file {self.origin}: {where}: {msg}")

    def obj(self, v: Any, where: str) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise self.fail(where, f"must be an object, got {type(v).__name__}")
        return v

    def get(self, d: dict[str, Any], key: str, where: str) -> Any:
        if key not in d:
            raise self.fail(where, f"missing {key!r}")
        return d[key]

    def list(self, v: Any, where: str, *, nonempty: bool = True) -> list[Any]:
        if not isinstance(v, list) or (nonempty and not v):
            raise self.fail(where, "must be a non-empty list")
        return v

    def text(self, d: dict[str, Any], key: str, where: str) -> str:
        v = self.get(d, key, where)
        if not isinstance(v, str) or not v.strip():
            raise self.fail(f"{where}.{key}", f"must be a non-empty string, got {v!r}")
        return v

    def number(self, d: dict[str, Any], key: str, where: str, *, lo: float = 0.0, hi: float = 1e30,
               allow_none: bool = False) -> float | None:
        v = self.get(d, key, where)
        if v is None and allow_none:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo < v <= hi:
            raise self.fail(f"{where}.{key}", f"must be a number in ({lo:g}, {hi:g}], got {v!r}")
        return float(v)

    def integer(self, d: dict[str, Any], key: str, where: str, *, hi: int = 1 << 20) -> int:
        v = self.get(d, key, where)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= hi:
            raise self.fail(f"{where}.{key}", f"must be a positive integer up to {hi}, got {v!r}")
        return v

    def devices(self, d: dict[str, Any], where: str) -> tuple[str, ...]:
        v = self.get(d, "devices", where)
        if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v):
            raise self.fail(f"{where}.devices", "must be a list of device names")
        return tuple(x.strip().lower() for x in v)


def _measured(r: _Reader, e: Any, where: str, value: Callable[[dict[str, Any], str], tuple[float, float | None]],
              *, precision: bool = False) -> Measured:
    e = r.obj(e, where)
    val, peak = value(e, where)
    prec = None
    if precision:
        prec = r.text(e, "precision", where)
        if prec not in MATMUL_PRECISIONS:
            raise r.fail(f"{where}.precision", f"must be one of {', '.join(MATMUL_PRECISIONS)}, got {prec!r}")
    return Measured(r.text(e, "key", where), r.devices(e, where), r.text(e, "compute_capability", where), val, peak,
                    prec, r.text(e, "source", where))


def _fraction(r: _Reader, achieved: str, spec: str, scale: float) -> Callable[[dict[str, Any], str], tuple[float, float | None]]:
    def value(e: dict[str, Any], where: str) -> tuple[float, float | None]:
        a = r.number(e, achieved, where)
        p = r.number(e, spec, where)
        assert a is not None and p is not None
        if a > p:
            raise r.fail(where, f"{achieved} {a:g} exceeds {spec} {p:g}: a fraction of peak must be at most 1")
        return a / p, p * scale

    return value


def parse_model(doc: Any, origin: str) -> KernelModel:
    """A kernel-model JSON document -> :class:`KernelModel` (validated; one-line :class:`KernelModelError`)."""
    r = _Reader(origin)
    doc = r.obj(doc, "top level")
    sources: dict[str, str] = {}

    fb = r.obj(r.get(doc, "fallback", "top level"), "fallback")
    sources["fallback"] = r.text(fb, "source", "fallback")
    order_doc = r.obj(r.get(fb, "order", "fallback"), "fallback.order")
    order: dict[str, tuple[str, ...]] = {}
    for cc, groups in order_doc.items():
        groups = r.list(groups, f"fallback.order.{cc}")
        if not all(isinstance(g, str) and g for g in groups):
            raise r.fail(f"fallback.order.{cc}", "must list compute capabilities as strings")
        order[str(cc)] = tuple(groups)
    if "default" not in order:
        raise r.fail("fallback.order", "missing 'default' (the search order for a device without compute_capability)")

    gemm_doc = r.obj(r.get(doc, "gemm", "top level"), "gemm")
    gemm = tuple(
        _measured(r, e, f"gemm.efficiency[{i}]", _fraction(r, "achieved_tflops", "peak_tflops", 1e12), precision=True)
        for i, e in enumerate(r.list(r.get(gemm_doc, "efficiency", "gemm"), "gemm.efficiency"))
    )
    tile = r.obj(r.get(gemm_doc, "tile", "gemm"), "gemm.tile")
    tile_m, tile_n = r.integer(tile, "m", "gemm.tile", hi=4096), r.integer(tile, "n", "gemm.tile", hi=4096)
    sources["gemm.tile"] = r.text(tile, "source", "gemm.tile")
    sources["gemm.wave"] = r.text(gemm_doc, "wave_source", "gemm")
    if not any(g.precision == "bf16" for g in gemm):
        raise r.fail("gemm.efficiency", "needs at least one bf16 entry")
    conv = r.obj(r.get(doc, "conv", "top level"), "conv")
    sources["conv"] = r.text(conv, "source", "conv")

    att = r.obj(r.get(doc, "attention", "top level"), "attention")
    tq = r.obj(r.get(att, "tile_q", "attention"), "attention.tile_q")
    tile_q = r.integer(tq, "value", "attention.tile_q", hi=4096)
    sources["attention.tile_q"] = r.text(tq, "source", "attention.tile_q")
    sg = r.obj(r.get(att, "seq_governs", "attention"), "attention.seq_governs")
    if sg.get("value") != "lk":
        raise r.fail("attention.seq_governs.value", f"must be 'lk' (the model reads tables at the key length), got {sg.get('value')!r}")
    sources["attention.seq_governs"] = r.text(sg, "source", "attention.seq_governs")
    if "stand_in_balance" in att:  # optional: documents exp_balance's constants (a file without it keeps the rule)
        sources["attention.stand_in_balance"] = r.text(r.obj(att["stand_in_balance"], "attention.stand_in_balance"),
                                                       "source", "attention.stand_in_balance")
    ks = r.obj(r.get(att, "kernels", "attention"), "attention.kernels")
    sources["attention.kernels"] = r.text(ks, "source", "attention.kernels")
    kernels: dict[str, tuple[str, ...]] = {}
    for k in ATTENTION_KERNELS:
        lst = r.list(r.get(ks, k, "attention.kernels"), f"attention.kernels.{k}")
        if not all(isinstance(x, str) and x for x in lst):
            raise r.fail(f"attention.kernels.{k}", "must list table kernel names")
        kernels[k] = tuple(lst)
    tables: list[AttentionTable] = []
    seen: set[tuple[str, str, int, str, str]] = set()
    for i, t in enumerate(r.list(r.get(att, "tables", "attention"), "attention.tables")):
        w = f"attention.tables[{i}]"
        t = r.obj(t, w)
        prec = r.text(t, "precision", w)
        if prec not in TABLE_PRECISIONS:
            raise r.fail(f"{w}.precision", f"must be one of {', '.join(TABLE_PRECISIONS)}, got {prec!r}")
        peak = r.number(t, "peak_tflops", w, allow_none=True)
        pts_doc = r.list(r.get(t, "points", w), f"{w}.points")
        pts: list[tuple[float, float]] = []
        for j, p in enumerate(pts_doc):
            if (not isinstance(p, list) or len(p) != 2 or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in p)
                    or not 0 < p[0] <= 1e9 or not 0 < p[1] <= 1e6):
                raise r.fail(f"{w}.points[{j}]", f"must be [seq len, TFLOP/s] with both positive, got {p!r}")
            if pts and p[0] <= pts[-1][0]:
                raise r.fail(f"{w}.points[{j}]", "sequence lengths must increase")
            if peak is not None and p[1] > peak * 1.05:
                raise r.fail(f"{w}.points[{j}]", f"{p[1]:g} TFLOP/s is more than 5% above the device's peak {peak:g}")
            pts.append((float(p[0]), float(p[1]) * 1e12))
        tab = AttentionTable(
            key=r.text(t, "key", w), kernel=r.text(t, "kernel", w), device=r.text(t, "device", w).lower(),
            compute_capability=r.text(t, "compute_capability", w), headdim=r.integer(t, "headdim", w, hi=4096),
            precision=prec, peak=peak * 1e12 if peak is not None else None, points=tuple(pts), source=r.text(t, "source", w),
        )
        ident = (tab.kernel, tab.device, tab.headdim, tab.precision, benchmark_of(tab.source))
        if ident in seen:
            raise r.fail(w, f"a second table for kernel {tab.kernel}, device {tab.device}, head dim {tab.headdim}, "
                            f"{tab.precision} from {ident[-1]}")
        seen.add(ident)
        tables.append(tab)

    mem = r.obj(r.get(doc, "memory", "top level"), "memory")
    bandwidth = tuple(
        _measured(r, e, f"memory.bandwidth_fraction[{i}]", _fraction(r, "achieved_gbps", "spec_gbps", 1e9))
        for i, e in enumerate(r.list(r.get(mem, "bandwidth_fraction", "memory"), "memory.bandwidth_fraction"))
    )
    broadcast = None
    if "broadcast" in mem:
        b = r.obj(mem["broadcast"], "memory.broadcast")
        broadcast = _measured(r, b, "memory.broadcast", _fraction(r, "broadcast_tbps", "same_shape_tbps", 1e12))
    lau = r.obj(r.get(doc, "launch", "top level"), "launch")

    def seconds(e: dict[str, Any], where: str) -> tuple[float, float | None]:
        s = r.number(e, "seconds", where, hi=1e-3)
        assert s is not None
        return s, None

    launch = tuple(_measured(r, e, f"launch.overhead[{i}]", seconds)
                   for i, e in enumerate(r.list(r.get(lau, "overhead", "launch"), "launch.overhead")))

    entries: list[Measured | AttentionTable] = [*gemm, *bandwidth, *launch, *tables, *([broadcast] if broadcast else [])]
    for m in entries:
        if m.key in sources:
            raise r.fail(m.key, "duplicate key")
        sources[m.key] = m.source
    host = _host(r, doc, sources) if "host" in doc else None
    twins: dict[str, str] = {}
    if "same_silicon" in doc:
        ss = r.obj(doc["same_silicon"], "same_silicon")
        sources["same_silicon"] = r.text(ss, "source", "same_silicon")
        for k, v in r.obj(r.get(ss, "devices", "same_silicon"), "same_silicon.devices").items():
            if not isinstance(v, str) or not v.strip() or v.strip().lower() == k.strip().lower():
                raise r.fail(f"same_silicon.devices.{k}", f"must name another device, got {v!r}")
            twins[k.strip().lower()] = v.strip().lower()
        prefer = r.list(ss.get("prefer_sources", []), "same_silicon.prefer_sources", nonempty=False)
        if not all(isinstance(x, str) and x.strip() for x in prefer):
            raise r.fail("same_silicon.prefer_sources", "must list source prefixes as strings")
        prefer_sources = tuple(prefer)
    else:
        prefer_sources = ()
    return KernelModel(gemm, tile_m, tile_n, tile_q, kernels, tuple(tables), bandwidth, launch, order, sources, origin,
                       host=host, same_silicon=twins, prefer_sources=prefer_sources, broadcast=broadcast)


def _host(r: _Reader, doc: dict[str, Any], sources: dict[str, str]) -> HostCosts:
    h = r.obj(doc["host"], "host")
    sources["host.timeline"] = r.text(h, "timeline", "host")
    vals, keys = [], []
    parts = ("eager_op", "launch", "compiled_launch", *(("eager_kernel",) if "eager_kernel" in h else ()))
    for part in parts:
        e = r.obj(r.get(h, part, "host"), f"host.{part}")
        s = r.number(e, "seconds", f"host.{part}", hi=1e-3)
        assert s is not None
        key = r.text(e, "key", f"host.{part}")
        if key in sources:
            raise r.fail(key, "duplicate key")
        sources[key] = r.text(e, "source", f"host.{part}")
        vals.append(s)
        keys.append(key)
    return HostCosts(vals[0], vals[1], vals[2], tuple(keys), vals[3] if len(vals) > 3 else None)


@lru_cache(maxsize=1)
def _shipped() -> KernelModel:
    text = resources.files("fxmeter.data").joinpath("kernels.json").read_text(encoding="utf-8")
    return parse_model(json.loads(text), _SHIPPED)


def load_kernel_model(path: str | Path | None = None) -> KernelModel:
    """The shipped kernel model, or the one in ``path`` (one-line :class:`KernelModelError` when bad)."""
    if path is None:
        return _shipped()
    p = Path(path)
    text = read_text(p, "kernel model file", limit=MAX_KERNELS_BYTES, error=KernelModelError)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise KernelModelError(f"kernel model file {p} is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except (RecursionError, ValueError) as e:
        raise KernelModelError(f"kernel model file {p} is not a kernel model ({str(e)[:80]})") from None
    return parse_model(doc, str(p))


# -- checks -------------------------------------------------------------------------------------------
def _vendor(hw: Hardware) -> str | None:
    if hw.arch == "cdna3" or (hw.compute_capability or "").startswith("gfx"):
        return "amd"
    if hw.arch is not None or hw.compute_capability is not None:
        return "nvidia"
    return None


def _sm(hw: Hardware) -> int | None:
    """``"9.0"`` -> 90; None for AMD or unknown."""
    cc = hw.compute_capability
    if cc is None or cc.startswith("gfx"):
        return {"ampere": 80, "ada": 89, "hopper": 90, "blackwell": 100}.get(hw.arch or "")
    major, _, minor = cc.partition(".")
    return int(major) * 10 + int(minor or 0)


def _what(hw: Hardware) -> str:
    parts = [p for p in (hw.arch, f"sm{_sm(hw)}" if _vendor(hw) == "nvidia" and _sm(hw) else hw.compute_capability) if p]
    return f"{hw.name} ({', '.join(parts)})" if parts else hw.name


def check_options(opts: KernelOptions) -> None:
    """Each option is one of its known values (one-line :class:`HardwareError` otherwise)."""
    if opts.attention not in ATTENTION_KERNELS:
        raise HardwareError(f"unknown attention kernel {opts.attention!r}: use {', '.join(ATTENTION_KERNELS)}")
    if opts.precision not in MATMUL_PRECISIONS:
        raise HardwareError(f"unknown precision {opts.precision!r}: use {' or '.join(MATMUL_PRECISIONS)}")
    if opts.attention_precision not in ATTENTION_PRECISIONS:
        raise HardwareError(f"unknown attention precision {opts.attention_precision!r}: use {', '.join(ATTENTION_PRECISIONS)}")


def check_kernel(opts: KernelOptions, hw: Hardware) -> None:
    """The kernels ``opts`` names can run on ``hw`` (one clear :class:`HardwareError` line otherwise).

    FA3 runs on Hopper only (flash-attention README: "Requirements: H100 / H800 GPU");
    FA2 on NVIDIA Ampere or newer and AMD MI200/MI300 (ROCm port); cuDNN attention on
    NVIDIA sm80+ ("cudnn SDPA operation requires SM80 (Ampere) or newer"; fp8 on
    Hopper and Blackwell B200/B300); SageAttention on NVIDIA Ampere, Ada, Hopper and
    Blackwell, always with INT8 Q K^T; fp8 attention needs FA3 / cuDNN on those, or
    Sage on a GPU with fp8 tensor cores.  A device whose file states neither ``arch``
    nor ``compute_capability`` passes (it cannot be checked); the model flags what it
    assumes.
    """
    check_options(opts)
    if opts.precision != "bf16":
        hw.tc_peak(opts.precision)  # one line: "<hw> has no fp8 (int8) tensor-core peak ..."
    vendor, sm, k = _vendor(hw), _sm(hw), opts.attention
    if vendor is not None:
        if k == "fa3" and (vendor != "nvidia" or sm != 90):
            raise HardwareError(f"--attention fa3 (FlashAttention-3) runs on Hopper GPUs only (sm90: h100, h200, h800, h20, "
                                f"h100-pcie); {_what(hw)} cannot run it: use fa2 or sdpa")
        if k == "fa2" and vendor == "nvidia" and (sm is None or sm < 80):
            raise HardwareError(f"--attention fa2 (FlashAttention-2) needs an NVIDIA Ampere GPU or newer (sm80+); {_what(hw)} is not")
        if k in ("cudnn", "sage") and vendor != "nvidia":
            name = "cudnn (cuDNN fused attention)" if k == "cudnn" else "sage (SageAttention)"
            raise HardwareError(f"--attention {name} runs on NVIDIA GPUs only; {_what(hw)} is AMD: use sdpa or fa2")
        if k in ("cudnn", "sage") and (sm is None or sm < 80):
            raise HardwareError(f"--attention {k} needs an NVIDIA Ampere GPU or newer (sm80+); {_what(hw)} is not")
    ap = opts.attention_precision
    if k == "sage" and ap == "bf16":
        raise HardwareError("--attention sage quantizes Q K^T to int8: use --attention-precision int8 "
                            "(or fp8 on GPUs with fp8 tensor cores)")
    if ap == "int8" and k != "sage":
        raise HardwareError(f"--attention-precision int8 is SageAttention's INT8 Q K^T: use --attention sage (not {k})")
    if ap == "fp8":
        if k not in ("fa3", "cudnn", "sage"):
            raise HardwareError(f"fp8 attention needs --attention fa3 (Hopper), cudnn (Hopper/Blackwell) or sage; "
                                f"{k} runs attention in bf16/fp16")
        if k == "cudnn" and vendor == "nvidia" and sm not in (90, 100, 103):
            raise HardwareError(f"cuDNN fp8 attention runs on Hopper and Blackwell B200/B300 (sm90/sm100); {_what(hw)} cannot: "
                                "use --attention-precision bf16")
        if not hw.tensor_core.get("fp8"):
            raise HardwareError(f"fp8 attention needs fp8 tensor cores; {_what(hw)} has none (use --attention-precision "
                                + ("int8 with sage" if k == "sage" else "bf16") + ")")


# -- the model ------------------------------------------------------------------------------------------
def _hw_key(hw: Hardware) -> tuple[Any, ...]:
    return (hw.name, hw.origin, hw.arch, hw.compute_capability, hw.sm_count, hw.memory_bandwidth, hw.cuda_core_fp32,
            tuple(sorted((k, v or 0.0) for k, v in hw.tensor_core.items())))


def _is_device(hw: Hardware, names: tuple[str, ...] | str, twins: Mapping[str, str] | None = None) -> bool:
    """``hw`` is one of ``names`` (by name or alias), or the same silicon as one of them (``twins``: device ->
    the device whose silicon it is, kernels.json ``same_silicon``)."""
    names = (names,) if isinstance(names, str) else names
    if hw.name in names or any(a in names for a in hw.aliases):
        return True
    if not twins:
        return False
    mine = {twins.get(x, x) for x in (hw.name, *hw.aliases)}
    return any(twins.get(x, x) in mine for x in names)


def _closeness(peak: float | None, target: float | None) -> float:
    if not peak or not target:
        return math.inf
    return abs(math.log(peak / target))


def _pick(entries: tuple[Measured, ...] | list[Measured], hw: Hardware, model: KernelModel,
          target: float | None) -> tuple[Measured, bool] | None:
    """The entry measured on ``hw`` (fallback False), else the nearest stand-in (fallback True)."""
    for e in entries:
        if _is_device(hw, e.devices, model.same_silicon):
            return e, False
    for group in model.order(hw):
        cands = [e for e in entries if e.compute_capability == group]
        if cands:
            return min(cands, key=lambda e: _closeness(e.peak, target)), True  # min keeps file order on ties
    return None


def _fastest_peak(hw: Hardware) -> float:
    return max(v for v in hw.tensor_core.values() if v)


def _gemm_efficiency(model: KernelModel, hw: Hardware, precision: str, peak: float) -> tuple[Measured, bool]:
    """The asymptotic GEMM efficiency serving ``hw`` at ``precision`` and whether it is a stand-in.

    fp8: the device's own fp8 measurement, else one of its compute capability, else
    whatever serves its bf16 GEMMs (always flagged: no fp8 measurement of its own).
    int8: the same over int8 measurements, then over fp8 ones (a stand-in, flagged), then
    whatever serves its bf16 GEMMs (flagged).
    """
    key = ("gemm", _hw_key(hw), precision)
    hit = model._cache.get(key)
    if hit is None:
        bf16 = [e for e in model.gemm if e.precision == "bf16"]
        for p in {"fp8": ("fp8",), "int8": ("int8", "fp8")}.get(precision, ()):
            entries = [e for e in model.gemm if e.precision == p]
            own = [e for e in entries if _is_device(hw, e.devices, model.same_silicon)]
            group = [e for e in entries if e.compute_capability == model.order(hw)[0]]
            if own:
                hit = (own[0], p != precision)
            elif group:
                hit = (min(group, key=lambda e: _closeness(e.peak, peak)), True)
            if hit is not None:
                break
        if hit is None:
            hit = _pick(bf16, hw, model, hw.tc_peak("bf16"))
            if hit is None:  # pragma: no cover - parse_model requires a bf16 entry; fallback.order lists every group
                raise KernelModelError(f"kernel model {model.origin} has no GEMM efficiency for {hw.name}")
            if precision != "bf16":
                hit = (hit[0], True)
        model._cache[key] = hit
    return hit


@dataclass(frozen=True)
class _Constant:
    """A resolved constant: its value, the data key it came from, and whether a stand-in device measured it."""

    value: float
    key: str
    fallback: bool

    @property
    def basis(self) -> str:
        return self.key + ("[fallback]" if self.fallback else "")


def _memory_constants(model: KernelModel, hw: Hardware) -> tuple[_Constant, _Constant]:
    """(bandwidth fraction, launch seconds) of ``hw``."""
    key = ("memory", _hw_key(hw))
    hit = model._cache.get(key)
    if hit is None:
        bw = _pick(model.bandwidth, hw, model, hw.memory_bandwidth)
        la = _pick(model.launch, hw, model, None)
        if bw is None or la is None:
            raise KernelModelError(f"kernel model {model.origin} has no bandwidth or launch measurement for {hw.name} "
                                   "(nor a stand-in in fallback.order)")
        hit = (_Constant(bw[0].value, bw[0].key, bw[1]), _Constant(la[0].value, la[0].key, la[1]))
        model._cache[key] = hit
    return hit


def _int(shape: Mapping[str, int], key: str) -> int | None:
    v = shape.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        return None
    return v


def _wave(blocks: int, sms: int | None) -> float:
    if not sms or blocks <= 0:
        return 1.0
    return blocks / (math.ceil(blocks / sms) * sms)


@dataclass(frozen=True)
class _Compute:
    """The compute side of a call: the peak of its bound and the rate it achieves."""

    peak: float  # FLOP/s at 100% (the bound's tensor-side peak)
    achieved: float  # FLOP/s predicted
    unit: str  # tensor_core | cuda_core (which peak)
    basis: str
    fallback: bool


def _gemm_compute(call: KernelCall, hw: Hardware, opts: KernelOptions, model: KernelModel) -> _Compute:
    prec = opts.precision  # fp8 / int8 override the traced dtype, as the roofline's matmul peak does
    fp32 = call.dtype == "float32" and prec == "bf16"
    tc_name = "fp16" if call.dtype == "float16" and prec == "bf16" else prec
    tf32 = fp32 and call.family == "conv"  # cuDNN runs fp32 convolutions as TF32 (torch.backends.cudnn.allow_tf32)
    if tf32:
        peak, unit = tf32_peak(hw), "tensor_core"
    elif fp32:
        peak, unit = hw.cuda_core_fp32, "cuda_core"
    else:
        peak, unit = hw.tc_peak(tc_name), "tensor_core"
    entry, fb = _gemm_efficiency(model, hw, prec, hw.tc_peak(prec) if not fp32 else hw.tc_peak("bf16"))
    eff = entry.value
    parts = [entry.key + ("[fallback]" if fb else "")]
    b, m, n = _int(call.shape, "b") or 1, _int(call.shape, "m"), _int(call.shape, "n")
    if m is None or n is None or _int(call.shape, "k") is None:
        parts.append("no-shape")
        fb = True
    else:
        tm, tn = math.ceil(m / model.tile_m), math.ceil(n / model.tile_n)
        eff *= (m * n) / (tm * model.tile_m * tn * model.tile_n)
        eff *= _wave(b * tm * tn, hw.sm_count)
        parts.append(f"tile{model.tile_m}x{model.tile_n}" + ("" if hw.sm_count else ".no-sm-count"))
    if call.family == "conv":
        parts.insert(0, "conv.implicit_gemm")
        fb = True
    if tf32:
        parts.append("fp32.tf32")  # the bf16 GEMM efficiency taken at the TF32 peak: a stand-in
        fb = True
    elif fp32:
        parts.append("fp32.cuda_core")
        fb = True
    return _Compute(peak, peak * eff, unit, "+".join(parts), fb)


def _attention_peak(hw: Hardware, call: KernelCall, opts: KernelOptions) -> float:
    ap = opts.attention_precision
    if opts.attention == "sage" or ap == "int8":
        return _fastest_peak(hw)
    if ap == "fp8":
        return hw.tc_peak("fp8")
    return hw.tc_peak("fp16" if call.dtype == "float16" else "bf16")


def _table_precision(opts: KernelOptions) -> str:
    if opts.attention == "sage":
        return "int8"
    return "fp8" if opts.attention_precision == "fp8" else "bf16"


_DERIVED = re.compile(r"derived: \S+ \(its source: ")


def _measured_source(source: str) -> str:
    """A table's source, through a derived table's ``derived: KEY (its source: ...`` to the measurement it scales."""
    m = _DERIVED.match(source)
    return source[m.end():] if m else source


def benchmark_of(source: str) -> str:
    """The benchmark a table comes from (its measured source's first word): one table per kernel, device, head
    dim and precision per benchmark."""
    rest = _measured_source(source)
    return rest.split(None, 1)[0] if rest.strip() else source


def _source_rank(model: KernelModel, source: str) -> int:
    """Position of a table's benchmark in kernels.json ``same_silicon.prefer_sources`` (unlisted: after all)."""
    source = _measured_source(source)
    for i, prefix in enumerate(model.prefer_sources):
        if source.startswith(prefix):
            return i
    return len(model.prefer_sources)


def _attention_tables(model: KernelModel, hw: Hardware, opts: KernelOptions) -> tuple[list[AttentionTable], float, bool]:
    """The tables of one device serving (kernel, precision) on ``hw``: (tables by head dim, scale, fallback).

    ``scale`` turns the tables' FLOP/s into ``hw``'s: 1 for ``hw``'s own tables, else the
    ratio of ``hw``'s peak to the measured device's (a fraction-of-peak stand-in).
    """
    prec = _table_precision(opts)
    key = ("attention", _hw_key(hw), opts.attention, prec)
    hit = model._cache.get(key)
    if hit is None:
        kinds = model.attention_kernels[opts.attention]
        cands = [t for t in model.tables if t.kernel in kinds and t.precision == prec]
        target = _attention_peak(hw, KernelCall("attention", 0, 0, 0), opts) if prec != "bf16" else hw.tc_peak("bf16")
        chosen: tuple[str, str, str] | None = None
        fallback = False
        # the tables of hw and its silicon twin are one pool (the same die gets the same seconds): the preferred
        # benchmark first, then the kernel order, then the pair's canonical device (same_silicon's target), then
        # file order
        own = [t for t in cands if _is_device(hw, t.device, model.same_silicon)]
        canon = set(model.same_silicon.values())
        if own:
            best = min(own, key=lambda t: (_source_rank(model, t.source), kinds.index(t.kernel), t.device not in canon))
            chosen = (best.kernel, best.device, benchmark_of(best.source))
        if chosen is None:
            fallback = True
            for group in model.order(hw):
                grp = [t for t in cands if t.compute_capability == group and t.peak]
                if grp:
                    best = min(grp, key=lambda t: (_closeness(t.peak, target), _source_rank(model, t.source)))
                    chosen = (best.kernel, best.device, benchmark_of(best.source))
                    break
        if chosen is None:
            hit = ([], 1.0, True)
        else:
            tabs = sorted((t for t in cands if (t.kernel, t.device, benchmark_of(t.source)) == chosen),
                          key=lambda t: t.headdim)
            peak = tabs[0].peak
            scale = target / peak if fallback and peak else 1.0
            hit = (tabs, scale, fallback)
        model._cache[key] = hit
    return hit


#: Arch of a compute capability (the stand-in names and the cross-architecture check).
ARCH_OF_CC = {"8.0": "Ampere", "8.6": "Ampere", "8.7": "Ampere", "8.9": "Ada", "9.0": "Hopper", "10.0": "Blackwell",
              "10.3": "Blackwell", "12.0": "Blackwell", "gfx942": "CDNA3", "gfx90a": "CDNA2"}
#: Results per clock per SM (CUDA C++ Programming Guide, "Arithmetic Instructions", throughput table):
#: 32-bit fp add/multiply/multiply-add: 64 on cc 8.0, 128 on 8.6 / 8.9 / 9.0 / 10.x / 12.0; base-2
#: exponential (exp2f, the special function unit): 16 on every cc 5.0-12.0.
FP32_LANES = {"8.0": 64}
SFU_PER_CLOCK = 16
#: Kernels whose softmax exponentials do not overlap their matmuls (FA2 and SDPA's flash backend, which is FA2);
#: FA3 and cuDNN overlap them (FA3 paper: ping-pong scheduling), SageAttention's tables are quantized kernels:
#: their stand-ins keep the plain fraction of peak.
NO_OVERLAP_KERNELS = frozenset({"fa2", "sdpa"})
EXP_SOURCE = ("FlashAttention-3 paper (arXiv 2407.08608) Sec. 3: 'the H100 SXM5 GPU has 989 TFLOPS of FP16 matmul but "
              "only 3.9 TFLOPS of special functions ... for head dimension 128, there are 512x more matmul FLOPS than "
              "exponential'; FA2 does not overlap the softmax with the matmuls; per-SM rates from the CUDA C++ "
              "Programming Guide throughput table (fp32 FMA 64/clk on cc 8.0, 128 on 8.6-12.0; exp2 16/clk)")


def _exp_rate(hw: Hardware) -> float | None:
    """Exponentials per second (the SFU): cuda_core_fp32 / (2 x FP32 lanes per SM) x 16 per SM per clock."""
    cc = hw.compute_capability
    if cc is None or cc.startswith("gfx") or not hw.cuda_core_fp32:
        return None
    return hw.cuda_core_fp32 / (2 * FP32_LANES.get(cc, 128)) * SFU_PER_CLOCK


@lru_cache(maxsize=1)
def _shipped_devices() -> dict[str, Hardware]:
    from fxmeter.estimate.hardware import table

    try:
        return table()
    except HardwareError:  # pragma: no cover - the shipped table parses
        return {}


def _measured_hw(name: str) -> Hardware | None:
    """The shipped device a kernels.json measurement was taken on (None: not in hardware.json)."""
    return _shipped_devices().get(name)


def exp_balance(fraction: float, source: Hardware, hw: Hardware, headdim: int, source_peak: float,
                peak: float) -> float:
    """The factor a stand-in's attention fraction of peak takes on ``hw`` (1 when either rate is unknown).

    A FlashAttention-2 forward spends per score element ``4*d`` tensor-core FLOPs and one
    exponential on the special function unit, not overlapped (:data:`EXP_SOURCE`), so
    ``1/f = 1/e_mm + P/(4*d*X)`` with ``P`` the tensor-core peak and ``X`` the exponential rate.
    The stand-in's measured ``f`` gives its ``e_mm``; the same ``e_mm`` on ``hw`` gives ``hw``'s
    fraction.  A device with faster tensor cores per SFU (L40S against an RTX 4090: full- against
    half-rate FP32 accumulate) loses more of its peak to the exponentials.  Counting only the
    exponentials (not the max / sum / rescale on the FP32 lanes) keeps it a small, optimistic correction.
    """
    xs, xt = _exp_rate(source), _exp_rate(hw)
    ps, pt = source_peak, peak  # the tensor-core peaks of the table's precision on each device
    if not xs or not xt or not ps or not pt or fraction <= 0:
        return 1.0
    inv = 1.0 / fraction
    return inv / max(inv - ps / (4 * headdim * xs) + pt / (4 * headdim * xt), 1e-9)


@dataclass(frozen=True)
class StandIn:
    """A constant measured on another device that prices ``used_for``: named wherever the number is shown."""

    kind: str  # GEMM | attention | memory bandwidth | launch
    key: str  # the data entry (kernels.json)
    measured_on: str  # its device, as the data file names it
    measured_label: str
    measured_arch: str
    used_for: str
    used_for_label: str
    used_for_arch: str
    what: str  # "MAMF efficiency", "FA2 efficiency", ...
    note: str = ""

    @property
    def cross_architecture(self) -> bool:
        return self.measured_arch != self.used_for_arch

    def text(self) -> str:
        """``attention: FA2 efficiency of NVIDIA GeForce RTX 4090 (Ada) used for NVIDIA L40S 48GB (Ada)``."""
        return (f"{self.kind}: {self.what} of {self.measured_label} ({self.measured_arch}) used for "
                f"{self.used_for_label} ({self.used_for_arch})"
                + (" -- ACROSS ARCHITECTURES" if self.cross_architecture else "") + (f", {self.note}" if self.note else ""))

    def short(self) -> str:
        """The text without the device it prices (for a row that names it)."""
        return (f"{self.kind}: {self.what} of {self.measured_label} ({self.measured_arch})"
                + (" ACROSS ARCHITECTURES" if self.cross_architecture else "") + (f", {self.note}" if self.note else ""))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key, "measured_on": self.measured_on, "measured_arch": self.measured_arch,
                "used_for": self.used_for, "used_for_arch": self.used_for_arch,
                "cross_architecture": self.cross_architecture, "text": self.text(), "short": self.short()}


def _arch(cc: str | None, arch: str | None) -> str:
    if cc is not None and cc in ARCH_OF_CC:
        return ARCH_OF_CC[cc]
    return (arch or "unknown arch").capitalize() if arch != "cdna3" else "CDNA3"


def _stand_in(kind: str, what: str, key: str, device: str, cc: str, hw: Hardware, note: str = "") -> StandIn:
    src = _measured_hw(device)
    return StandIn(kind, key, device, src.label if src is not None else device.upper(), _arch(cc, None), hw.name,
                   hw.label, _arch(hw.compute_capability, hw.arch), what, note)


def stand_ins(model: KernelModel, hw: Hardware, opts: KernelOptions) -> tuple[StandIn, ...]:
    """Every constant pricing ``hw`` that was measured on another device (GEMM, attention, memory, launch)."""
    out: list[StandIn] = []
    peak = hw.tc_peak(opts.precision) if hw.tensor_core.get(opts.precision) else hw.tc_peak("bf16")
    g, fb = _gemm_efficiency(model, hw, opts.precision, peak)
    if fb and not _is_device(hw, g.devices):
        out.append(_stand_in("GEMM", f"{g.precision} MAMF efficiency", g.key, g.devices[0], g.compute_capability, hw))
    tabs, scale, afb = _attention_tables(model, hw, opts)
    if afb and tabs:
        t = next((x for x in tabs if x.headdim == 128), tabs[-1])
        src = _measured_hw(t.device)
        note = ""
        if src is not None and t.kernel in NO_OVERLAP_KERNELS and _exp_rate(src) and _exp_rate(hw) and src.name != hw.name:
            f = t.points[-1][1] / (t.peak or 1.0)
            x = exp_balance(f, src, hw, t.headdim, t.peak or 0.0, (t.peak or 0.0) * scale)
            note = f"its fraction of peak scaled for the tensor-core / exponential balance (x{x:.3f} at hd{t.headdim})"
        out.append(_stand_in("attention", f"{t.kernel.upper() if t.kernel != 'sdpa' else 'SDPA (FA2)'} efficiency",
                             t.key, t.device, t.compute_capability, hw, note))
    for kind, entries, target in (("memory bandwidth", model.bandwidth, hw.memory_bandwidth), ("launch", model.launch, None)):
        hit = _pick(entries, hw, model, target)
        if hit is not None and hit[1]:
            e = hit[0]
            out.append(_stand_in(kind, "STREAM fraction" if kind != "launch" else "launch cost", e.key, e.devices[0],
                                 e.compute_capability, hw))
    return tuple(out)


def _attention_compute(call: KernelCall, hw: Hardware, opts: KernelOptions, model: KernelModel) -> _Compute:
    if call.dtype == "float32":  # no flash kernel takes fp32: SDPA falls back to its math path
        return _Compute(hw.cuda_core_fp32, hw.cuda_core_fp32, "cuda_core", "attention.float32.cuda_core(no table)", True)
    peak = _attention_peak(hw, call, opts)
    tabs, scale, fb = _attention_tables(model, hw, opts)
    if not tabs:
        return _Compute(peak, peak, "tensor_core", f"attention.{opts.attention}.{_table_precision(opts)}(no table: peak)", True)
    s = call.shape
    b, h, lq, lk = _int(s, "b") or 1, _int(s, "h") or 1, _int(s, "lq"), _int(s, "lk")
    d = _int(s, "d")
    notes = []
    if lk is None:
        lk = int(tabs[0].points[-1][0])
        notes.append("no-shape")
        fb = True
    # head dim: log2-interpolate between the tables around d, clamp outside
    if d is None or d <= tabs[0].headdim or len(tabs) == 1:
        val, used = tabs[0].at(lk), tabs[0].key
        if d is not None and d != tabs[0].headdim:
            notes.append(f"hd{d}->{tabs[0].headdim}")
    elif d >= tabs[-1].headdim:
        val, used = tabs[-1].at(lk), tabs[-1].key
        if d != tabs[-1].headdim:
            notes.append(f"hd{d}->{tabs[-1].headdim}")
    else:
        lo = max((t for t in tabs if t.headdim <= d), key=lambda t: t.headdim)
        hi = min((t for t in tabs if t.headdim >= d), key=lambda t: t.headdim)
        if lo.headdim == hi.headdim:
            val, used = lo.at(lk), lo.key
        else:
            t = (math.log2(d) - math.log2(lo.headdim)) / (math.log2(hi.headdim) - math.log2(lo.headdim))
            val = lo.at(lk) + t * (hi.at(lk) - lo.at(lk))
            used = f"{lo.key}|{hi.key}"
    achieved = val * scale
    if fb and tabs[0].peak and tabs[0].kernel in NO_OVERLAP_KERNELS and not _is_device(hw, tabs[0].device):
        src = _measured_hw(tabs[0].device)
        if src is not None:
            factor = exp_balance(val / tabs[0].peak, src, hw, d or tabs[0].headdim, tabs[0].peak, tabs[0].peak * scale)
            if factor != 1.0:
                achieved *= factor
                notes.append(f"exp-balance x{factor:.3f}")
    if achieved > peak:
        achieved = peak
        notes.append("capped-at-peak")
    if lq is not None:
        achieved *= _wave(b * h * math.ceil(lq / model.tile_q), hw.sm_count)
    basis = used + ("[fallback]" if fb else "") + "".join("+" + n for n in notes)
    return _Compute(peak, achieved, "tensor_core", basis, fb)


def kernel_time(call: KernelCall, hw: Hardware, opts: KernelOptions, model: KernelModel) -> KernelTime:
    """Predicted and bound seconds of one kernel call on ``hw`` (see the module docstring)."""
    if call.family not in FAMILIES:
        raise KernelModelError(f"unknown op family {call.family!r} (known: {', '.join(FAMILIES)})")
    check_options(opts)
    if min(call.tensor_core_flops, call.cuda_core_flops, call.bytes, call.launches) < 0:
        raise KernelModelError(f"a kernel call has negative costs: {call}")
    frac, t_launch = _memory_constants(model, hw)
    tc = call.tensor_core_flops
    if call.family in GEMM_FAMILIES and tc > 0:
        comp = _gemm_compute(call, hw, opts, model)
    elif call.family == "attention" and tc > 0:
        comp = _attention_compute(call, hw, opts, model)
    else:  # no tensor-core work expected here; an unmodeled op's is taken at the peak
        base = hw.tc_peak("fp16" if call.dtype == "float16" else "bf16")
        comp = _Compute(base, base, "tensor_core", "unmodeled(roofline terms)" if call.family == "unmodeled" else "",
                        call.family == "unmodeled")
    cuda = hw.cuda_core_fp32
    bw = hw.memory_bandwidth
    # an eager binary op with a broadcast operand runs PyTorch's non-vectorized loop (fused kernels index their own)
    bcast, bcast_basis = 1.0, ""
    if call.broadcast and not opts.compile and model.broadcast is not None:
        bcast, bcast_basis = model.broadcast.value, "*" + model.broadcast.key
    # (limiter, term at 100% of the peak, predicted term, the constants behind the prediction)
    terms = [
        (comp.unit, tc / comp.peak, tc / comp.achieved if tc else 0.0, comp.fallback, comp.basis),
        ("cuda_core", call.cuda_core_flops / cuda, call.cuda_core_flops / cuda, False, ""),
        ("memory", call.bytes / bw, call.bytes / (bw * frac.value * bcast), frac.fallback, frac.basis + bcast_basis),
    ]
    bound = max(t[1] for t in terms)
    work_limiter, bound_term, work, fallback, _ = max(terms, key=lambda t: t[2])
    launch = call.launches * t_launch.value
    seconds = work + launch
    if seconds == 0:  # a free op: no work, no launch
        limiter, eff = "memory", 1.0
    elif launch > work:
        limiter, eff, fallback = "launch", bound / seconds, t_launch.fallback
    else:
        limiter, eff = work_limiter, bound_term / seconds
    used = [t[4] for t in terms if t[2] > 0 and t[4]] + ([t_launch.basis] if launch else [])
    return KernelTime(seconds, bound, limiter, eff, "+".join(used), fallback)


__all__ = [
    "ARCHS", "ARCH_OF_CC", "ATTENTION_KERNELS", "StandIn", "exp_balance", "stand_ins", "ATTENTION_PRECISIONS", "FAMILIES",
    "BROADCASTING", "HostCosts", "KernelCall", "KernelModel", "KernelModelError", "broadcast_op",
    "KernelOptions", "KernelTime", "check_kernel", "check_options", "kernel_time", "load_kernel_model", "parse_model",
]
