"""Will it fit? The largest workload that fits a device per residency policy, and the cheapest policy.

An exact search over the legal workload grid: a probe evaluates each stage's activation peak
(the liveness formula of its shipped trace at the probe's symbol values), places the weights with
every residency policy (:func:`fxmeter.estimate.residency.plan`) and prices the process
(:func:`fxmeter.estimate.memory.process_memory`: allocated, reserved, device).  The peak grows with
every axis (resolution, frames, batch), so a bisection over each axis's legal sizes finds the
largest size that fits; the size one step up is checked not to fit.

A probe outside a shipped trace's guards is "unknown": the search stops below it (the answer is
then marked ``>=``).  One exception, stated where it is used: the frame-by-frame VAEs traced at one
latent frame count (HunyuanVideo; Wan below the 4 latent frames its composed model starts at,
:mod:`fxmeter.cost.compose`): their decode's working set does not grow with the frame count, only
its output does, so another frame count is the traced peak plus the output's difference.

``--gpus N`` (one node): the denoiser's activations split over N GPUs along the sequence (Ulysses,
each GPU ``ceil(S/N)`` of ``S`` tokens), its weights whole on every GPU (no FSDP), the other stages
on one GPU whole, one NCCL communicator of N ranks.  Pure Python.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fxmeter.cost.compose import meta_value
from fxmeter.cost.formula import compile_table
from fxmeter.errors import FxmeterError
from fxmeter.estimate.memory import ProcessMemory, process_memory
from fxmeter.estimate.residency import StageLoad, plan
from fxmeter.estimate.tiling import Tiling, tile_grid, tiled_decode_bytes

FRAME_LOOP_VAES = ("AutoencoderKLWan", "AutoencoderKLHunyuanVideo")


@dataclass(frozen=True)
class PolicyPeak:
    """One policy at one workload: the process peak per GPU and the weight bytes it copies (both directions)."""

    policy: str
    memory: ProcessMemory
    copied_bytes: int
    fits: bool
    host_fits: bool


class Prober:
    """Peaks of every residency policy at any workload of one model, from its symbolic models.

    ``model``: the resolved model (geometry, stage plans, stage dims); ``inputs``: the stage inputs at
    the base workload (their symbolic models); ``weights``: component -> weight bytes (at the runtime's
    dtype policy); ``policies``: (policy, t5_cpu) pairs; ``device_bytes``; ``host_ram`` (bytes or None);
    ``preload``: ``--quantize-on-device``'s checkpoint bytes on the GPU before ``quantize_`` (a peak of policy none).
    """

    def __init__(self, model: Any, inputs: Sequence[Any], weights: Mapping[str, int], policies: Sequence[tuple[str, bool]],
                 *, device_bytes: int, compute_capability: str | None, host_ram: int | None = None, gpus: int = 1,
                 tiling: int | None = None, batched_cfg: bool = False, expandable_segments: bool = False,
                 preload: int | None = None) -> None:
        self.model, self.weights, self.policies = model, dict(weights), tuple(policies)
        self.by_name = {i.plan.name: i for i in inputs}
        self.device_bytes, self.cc, self.host_ram, self.gpus = device_bytes, compute_capability, host_ram, gpus
        self.tiling, self.batched_cfg, self.expandable = tiling, batched_cfg, expandable_segments
        self.preload = preload  # --quantize-on-device: the checkpoint's bytes on the GPU before quantize_ (policy none)
        self._fns: dict[int, Callable[..., list[int]]] = {}
        self._memo: dict[tuple[Any, ...], tuple[PolicyPeak, ...] | None] = {}
        self.probes = 0

    def _vals(self, sm: Any, dims: Mapping[str, int], *, guarded: bool = False) -> list[int] | None:
        """The formula table at ``dims`` (``guarded``: None outside the model's guards)."""
        if guarded and sm.guard_problems(dims):
            return None
        fn = self._fns.get(id(sm))
        if fn is None:  # the whole table: compiled once per model and shared with evaluate (compile_table's cache)
            fn = self._fns[id(sm)] = compile_table(sm.formulas, list(sm.symbols))
        return fn(**{s: dims[s] for s in sm.symbols})  # type: ignore[no-any-return]

    def _live(self, sm: Any, dims: Mapping[str, int]) -> int:
        vals = self._vals(sm, dims) or []
        return max((vals[i] for i in sm.liveness.get("after_node", [])), default=0)

    def _activation(self, inp: Any, dims: dict[str, int]) -> int | None:
        sm = inp.model
        bad = sm.guard_problems(dims)
        cls = str(sm.meta.get("diffusers_class"))
        if bad and cls in FRAME_LOOP_VAES and "latent_frames" in dims:
            traced = dict(inp.dims)
            if all(b.startswith("latent_frames") for b in bad) and not sm.guard_problems({**dims, "latent_frames": traced["latent_frames"]}):
                base = self._activation(inp, {**dims, "latent_frames": traced["latent_frames"]})
                if base is None:
                    return None
                per = 3 * 8 * dims["latent_h"] * 8 * dims["latent_w"] * dims.get("batch", 1) * _bytes(sm)
                return base + per * 4 * (dims["latent_frames"] - traced["latent_frames"])
        if bad:
            return None
        if self.tiling is not None and inp.plan.name == "vae":
            grid = tile_grid(cls, dims, Tiling(self.tiling or None), self.model.stage_component(inp.plan).config)
            if grid is not None:
                return tiled_decode_bytes(grid, dims, _bytes(sm), lambda d: self._live(sm, d))[0]
        return self._live(sm, dims)

    def peaks(self, wl: Any) -> tuple[PolicyPeak, ...] | None:
        """Every policy at workload ``wl`` (None: not a legal workload, or outside the shipped traces)."""
        key = (wl.frames, wl.height, wl.width, wl.batch, wl.steps, wl.text_len, wl.guidance_scale)
        if key in self._memo:
            return self._memo[key]
        self.probes += 1
        out = self._memo[key] = self._peaks(wl)
        return out

    def _peaks(self, wl: Any) -> tuple[PolicyPeak, ...] | None:
        try:
            geometry = self.model.geometry(wl)
            plans = self.model.stages(wl, batched_cfg=self.batched_cfg)
        except FxmeterError:
            return None
        loads = []
        for p in plans:
            inp = self.by_name.get(p.name)
            if inp is None:
                continue
            dims = self.model.stage_dims(p, geometry)
            act = self._activation(inp, dims)
            if act is None:
                return None
            if p.denoiser and self.gpus > 1:
                tokens = int(geometry.tokens)
                act = math.ceil(act * math.ceil(tokens / self.gpus) / tokens)
            meta = inp.model.meta
            w = self.weights.get(p.component, int(meta.get("weight_bytes") or 0))
            scale = w / int(meta.get("weight_bytes") or w or 1)
            read = meta_value(inp.model, "weight_read_bytes", self._vals(inp.model, dims, guarded=True))
            loads.append(StageLoad(p.name, p.component, p.runs, w, act,
                                   int(int(read or w) * scale),
                                   int(int(meta.get("largest_module_bytes") or w) * scale),
                                   text_encoder=p.name.startswith("text_encoder"), denoiser=p.denoiser))
        rows = []
        total = sum(self.weights.values())
        seq = self.model.adapter.offload_seq
        i2v = self.model.adapter.name == "wan-i2v"
        for name, t5 in self.policies:
            r = plan(name, loads, seq, t5_cpu=t5, i2v=i2v)
            pk = r.peak
            on_host = [s for s in loads if r.on_host(s.name)]
            host = sum({s.component: s.weight_bytes for s in on_host}.values()) + max((s.activation_bytes for s in on_host), default=0)
            if name != "none":
                host += max((total - s.resident_bytes for s in r.stages if not s.on_host), default=0)
            m = process_memory(pk.stage, pk.resident_bytes, pk.activation_bytes, compute_capability=self.cc,
                               nccl_groups=(self.gpus,) if self.gpus > 1 else (), host_bytes=host,
                               expandable_segments=self.expandable)
            if self.preload is not None and name == "none":  # the load before quantize_: a stage of its own
                first = process_memory("load (before quantize_)", self.preload, 0, compute_capability=self.cc,
                                       host_bytes=host, expandable_segments=self.expandable)
                m = first if first.peak_device_bytes > m.peak_device_bytes else m
            rows.append(PolicyPeak(r.name, m, r.host_to_device_bytes + r.device_to_host_bytes, m.peak_device_bytes <= self.device_bytes,
                                   self.host_ram is None or host <= self.host_ram))
        return tuple(rows)


def _bytes(sm: Any) -> int:
    return {"float32": 4, "float16": 2, "bfloat16": 2}.get(str(sm.meta.get("dtype")), 4)


# -- the search -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Largest:
    """The largest size of one axis that fits (``value`` None: not even the smallest)."""

    axis: str
    value: int | None
    label: str
    bounded: bool  # True: the next size does not fit; False: the search hit the end of the legal / shipped range


def _fits(prober: Prober, wl: Any, policy: str) -> bool | None:
    got = prober.peaks(wl)
    if got is None:
        return None
    p = next(x for x in got if x.policy == policy)
    return p.fits and p.host_fits


def largest(prober: Prober, wl: Any, policy: str, axis: str, sizes: Sequence[int],
            make: Callable[[Any, int], Any], label: Callable[[int], str]) -> Largest:
    """Bisection over ``sizes`` (ascending, the peak grows along them) for the largest that fits."""
    lo, hi = -1, len(sizes)  # sizes[lo] fits (or lo == -1); sizes[hi] does not fit or is unknown (or hi == len)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        f = _fits(prober, make(wl, sizes[mid]), policy)
        if f:
            lo = mid
        else:
            hi = mid
    if lo < 0:
        return Largest(axis, None, "-", True)
    bounded = hi < len(sizes) and _fits(prober, make(wl, sizes[hi]), policy) is False
    return Largest(axis, sizes[lo], label(sizes[lo]), bounded)


def resolution_sizes(wl: Any, limit: int = 4096) -> list[tuple[int, int]]:
    """(height, width) pairs with the workload's aspect ratio, heights in steps of 16 up to ``limit``."""
    aspect = wl.width / wl.height
    out = []
    for k in range(1, limit // 16 + 1):
        h = 16 * k
        w = max(16, round(h * aspect / 16) * 16)
        if w <= limit:
            out.append((h, w))
    return out


@dataclass(frozen=True)
class FitRow:
    policy: str
    at_workload: PolicyPeak | None
    resolution: Largest
    frames: Largest | None
    batch: Largest


def search(prober: Prober, wl: Any, *, video: bool, max_frames: int = 1001, max_batch: int = 64) -> tuple[FitRow, ...]:
    """Per policy: the peak at ``wl`` and the largest resolution, frame count and batch that fit."""
    here = prober.peaks(wl)
    rows = []
    res = resolution_sizes(wl)
    for name, t5 in prober.policies:
        pname = name + ("+t5_cpu" if t5 else "")
        at = None if here is None else next(x for x in here if x.policy == pname)
        r_idx = list(range(len(res)))
        r = largest(prober, wl, pname, "resolution", r_idx, lambda w, i: replace(w, height=res[i][0], width=res[i][1]),
                    lambda i: f"{res[i][1]}x{res[i][0]}")
        fr = None
        if video:
            frames = list(range(1, max_frames + 1, 4))
            fr = largest(prober, wl, pname, "frames", frames, lambda w, f: replace(w, frames=f), str)
        b = largest(prober, wl, pname, "batch", list(range(1, max_batch + 1)), lambda w, n: replace(w, batch=n), str)
        rows.append(FitRow(pname, at, r, fr, b))
    return tuple(rows)


def cheapest(rows: Sequence[FitRow]) -> PolicyPeak | None:
    """The policy that fits at the workload with the fewest weight bytes copied between host and device (then: the
    text encoder on the device rather than the host, whose CPU time fxmeter does not model); margin = device - peak."""
    fitting = [r.at_workload for r in rows if r.at_workload is not None and r.at_workload.fits and r.at_workload.host_fits]
    return min(fitting, key=lambda p: (p.copied_bytes, "t5_cpu" in p.policy)) if fitting else None


__all__ = ["FitRow", "Largest", "PolicyPeak", "Prober", "cheapest", "largest", "resolution_sizes", "search"]
