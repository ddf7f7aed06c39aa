"""Where the weights live during a generation: residency policies, host<->device transfers, the fit.

A policy says which components sit in device memory while each stage runs, and which
weights cross the PCIe link, when.  The peak a device must hold is, over the stages,
the weights resident during the stage plus that stage's activation peak (liveness walk of
one run); tensors handed from one stage to the next (prompt embeddings, latents) are
small and not counted, except the decoded video, which is the VAE stage's own output.

Policies (``--offload``):

* ``none``: every component on the device for the whole generation (``pipe.to("cuda")``).
* ``model``: diffusers ``enable_model_cpu_offload()``: hooks chained in the pipeline's
  ``model_cpu_offload_seq``; calling a component first offloads the one before it in that
  sequence (device -> host copy), then moves it to the device (host -> device); at the end
  ``maybe_free_model_hooks()`` offloads what is left.  Simulated call by call, so a
  component that the sequence does not offload in time stays resident (Wan I2V's VAE after
  its encode).
* ``sequential``: diffusers ``enable_sequential_cpu_offload()`` (accelerate ``cpu_offload``):
  each module's weights are copied to the device when its forward runs and dropped after, so
  a stage streams its weights once per module call (a Wan VAE decode streams its decoder
  once per latent frame) and holds one module's weights at a time; nothing is copied back.
* ``wan``: Wan's ``generate.py`` on one GPU (``--offload_model True``, its default there),
  first generation of a fresh process: the VAE always on the device (and the CLIP image
  encoder, placed there at load); the DiT placed there at load (T2V; image-to-video loads it
  on the host and moves it before the loop); T5 moved to the device for its two calls and
  back; the DiT moved back to the host after the loop, before the VAE decode.  Loading the
  models (and the moves it makes) is not part of the generation's time.
  ``t5_cpu`` (Wan's ``--t5_cpu``): T5 stays on the host and runs there; its time is host CPU
  time, which fxmeter does not model (the stage has no device seconds), and it takes no
  device memory.

Transfer time: each copy is a ``host_to_device`` / ``device_to_host`` collective of
:mod:`fxmeter.estimate.comm` over the device's PCIe link (its measured fraction of the line
rate, sourced in ``comms.json``), on the critical path (every move above is a blocking
``.to()``).  Pure Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fxmeter.errors import StageError
from fxmeter.estimate.headroom import headroom
from fxmeter.estimate.memory import GIB

POLICIES = ("none", "model", "sequential", "wan")
DESCRIPTIONS = {
    "none": "everything on the device (pipe.to('cuda'))",
    "model": "diffusers enable_model_cpu_offload(): one model at a time, moved when its stage runs",
    "sequential": "diffusers enable_sequential_cpu_offload(): each module's weights streamed to the device per call",
    "wan": "Wan generate.py --offload_model True (single GPU): T5 moved in for its calls, the DiT moved out before the VAE decode",
}


@dataclass(frozen=True)
class StageLoad:
    """What residency needs to know about one stage."""

    name: str
    component: str
    runs: int
    weight_bytes: int  # the component's weights at the deployment precision (all of them: what a load puts there)
    activation_bytes: int  # peak live activations of one run
    weight_read_bytes: int  # bytes of every weight read of one run (sequential offload streams these)
    largest_module_bytes: int  # the largest single module's own weights (sequential offload's resident set)
    text_encoder: bool = False
    denoiser: bool = False
    passes: int = 1  # text encoders: calls per prompt pass order (SD3 interleaves prompt / negative)


@dataclass(frozen=True)
class Transfer:
    """Copies of one component's weights in one direction over a generation."""

    component: str
    direction: str  # host_to_device | device_to_host
    bytes: int  # per copy
    count: int
    when: str
    seconds: float | None = None  # all copies; None without a device (or without its PCIe link)

    @property
    def total_bytes(self) -> int:
        return self.bytes * self.count


@dataclass(frozen=True)
class StageResidency:
    stage: str
    resident_bytes: int  # weights on the device while it runs (largest over its calls)
    activation_bytes: int
    on_host: bool = False  # runs on the host CPU (Wan --t5_cpu): no device memory, no device time

    @property
    def peak_bytes(self) -> int:
        return 0 if self.on_host else self.resident_bytes + self.activation_bytes


@dataclass(frozen=True)
class Residency:
    """One policy applied to one generation."""

    policy: str
    t5_cpu: bool
    stages: tuple[StageResidency, ...]
    transfers: tuple[Transfer, ...]
    description: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return self.policy + ("+t5_cpu" if self.t5_cpu else "")

    @property
    def peak(self) -> StageResidency:
        return max(self.stages, key=lambda s: s.peak_bytes)

    @property
    def peak_bytes(self) -> int:
        return self.peak.peak_bytes

    @property
    def host_to_device_bytes(self) -> int:
        return sum(t.total_bytes for t in self.transfers if t.direction == "host_to_device")

    @property
    def device_to_host_bytes(self) -> int:
        return sum(t.total_bytes for t in self.transfers if t.direction == "device_to_host")

    @property
    def transfer_seconds(self) -> float | None:
        if not self.transfers:
            return 0.0
        if any(t.seconds is None for t in self.transfers):
            return None
        return sum(t.seconds or 0.0 for t in self.transfers)

    def on_host(self, stage: str) -> bool:
        return any(s.stage == stage and s.on_host for s in self.stages)


def policies_for(extra: Sequence[str]) -> tuple[str, ...]:
    """The policies a pipeline has: none, model and sequential (diffusers) plus its own (``wan``)."""
    return ("none", "model", "sequential") + tuple(p for p in extra if p in POLICIES)


def check_policy(policy: str, t5_cpu: bool, available: Sequence[str], model: str) -> str:
    """``policy`` if the pipeline has it (one-line :class:`StageError` otherwise)."""
    key = (policy or "none").strip().lower()
    if key not in POLICIES:
        raise StageError(f"unknown --offload policy {policy!r}; use one of {', '.join(POLICIES)}")
    if key not in available:
        raise StageError(f"--offload {key} is {DESCRIPTIONS[key].split(':')[0]}; {model}'s pipeline has: "
                             f"{', '.join(available)}")
    if t5_cpu and "wan" not in available:
        raise StageError(f"--t5-cpu is Wan's generate.py --t5_cpu; {model}'s pipeline has no such option")
    return key


def call_order(stages: Sequence[StageLoad]) -> list[StageLoad]:
    """The pipeline's calls in order: text encoders prompt pass then negative pass (SD3:
    CLIP-L, CLIP-G, T5, then again), then every other stage's runs in stage order."""
    texts = [s for s in stages if s.text_encoder]
    calls: list[StageLoad] = []
    for k in range(max((s.runs for s in texts), default=0)):
        calls += [s for s in texts if s.runs > k]
    for s in stages:
        if not s.text_encoder:
            calls += [s] * min(s.runs, 1)  # one entry per stage is enough: repeated calls move nothing new
    return calls


def plan(policy: str, stages: Sequence[StageLoad], offload_seq: Sequence[str], *, t5_cpu: bool = False,
         i2v: bool = False, copy_seconds: Any = None) -> Residency:
    """Apply ``policy`` to the stages of one generation (in pipeline order).

    ``copy_seconds(direction, bytes, count)`` gives the seconds of ``count`` copies (None:
    no device); ``i2v``: Wan's image-to-video loads the DiT on the host (``wan`` policy).
    """
    weights = {s.component: s.weight_bytes for s in stages}
    moves: dict[tuple[str, str], list[Any]] = {}  # (component, direction) -> [bytes, count, when]

    def move(comp: str, direction: str, when: str, nbytes: int | None = None) -> None:
        entry = moves.setdefault((comp, direction), [weights[comp] if nbytes is None else nbytes, 0, when])
        entry[1] += 1

    host = {s.name for s in stages if t5_cpu and s.text_encoder}
    resident_by_stage: dict[str, int] = {}
    resident: set[str] = set()

    def run(call: StageLoad) -> None:
        """``call`` runs: its component is moved in if it is not resident; record what is resident then."""
        if call.component not in resident:
            resident.add(call.component)
            move(call.component, "host_to_device", f"before {call.name}")
        now = sum(weights[x] for x in resident)
        resident_by_stage[call.name] = max(resident_by_stage.get(call.name, 0), now)
    notes: list[str] = []
    if policy == "none":
        on_device = sum(w for c, w in weights.items() if not any(s.component == c and s.name in host for s in stages))
        resident_by_stage = {s.name: on_device for s in stages}
    elif policy == "sequential":
        for s in stages:
            resident_by_stage[s.name] = s.largest_module_bytes
            if s.weight_read_bytes:
                entry = moves.setdefault((s.component, "host_to_device"), [0, 1, "each module's weights at each of its calls"])
                entry[0] += s.weight_read_bytes * s.runs
        notes.append("sequential offload: a stage holds one module's weights at a time and streams every module's "
                     "weights at each call; the counts are bytes of every weight read of every run")
    elif policy == "model":
        present = [c for c in offload_seq if c in weights]
        prev = {c: present[i - 1] for i, c in enumerate(present) if i}
        for call in call_order(stages):
            c = call.component
            p = prev.get(c)
            if p is not None and p in resident:
                resident.discard(p)
                move(p, "device_to_host", f"when {c} runs (enable_model_cpu_offload hook)")
            run(call)
        for c in sorted(resident):
            move(c, "device_to_host", "at the end (maybe_free_model_hooks)")
    elif policy == "wan":
        denoisers = [s.component for s in stages if s.denoiser]
        resident |= {s.component for s in stages if s.component == "vae" or s.component == "image_encoder"}
        if not i2v and len(set(denoisers)) == 1:
            resident |= set(denoisers)  # WanT2V places the DiT on the device at load
        order = call_order(stages)
        last_call = {s.name: i for i, s in enumerate(order)}
        for i, call in enumerate(order):
            c = call.component
            if call.name in host:
                resident_by_stage[call.name] = 0
                continue
            if call.denoiser:
                for other in [d for d in resident if d in denoisers and d != c]:
                    resident.discard(other)
                    move(other, "device_to_host", f"when {c} takes over")
            run(call)
            if call.text_encoder and last_call[call.name] == i:
                resident.discard(c)
                move(c, "device_to_host", f"after {call.name} (offload_model)")
            elif c == "image_encoder":
                resident.discard(c)
                move(c, "device_to_host", "after the image embedding (offload_model)")
            elif call.denoiser and not any(s.denoiser for s in order[i + 1:]):
                resident.discard(c)
                move(c, "device_to_host", "after the denoising loop, before the VAE decode (offload_model)")
        notes.append("wan: the first generation of a fresh generate.py process; moves made while loading the "
                     "models are not part of the generation")
    else:  # pragma: no cover - check_policy refuses it first
        raise StageError(f"unknown residency policy {policy!r}")
    if host:
        notes.append(f"{', '.join(sorted(host))} runs on the host CPU (--t5-cpu): no device memory; its time is CPU "
                     "time, which fxmeter does not model (not in the end-to-end seconds)")
    transfers = []
    for (comp, direction), (nbytes, count, when) in moves.items():
        secs = copy_seconds(direction, nbytes, count) if copy_seconds is not None else None
        transfers.append(Transfer(comp, direction, nbytes, count, when, secs))
    rows = tuple(StageResidency(s.name, resident_by_stage.get(s.name, 0), s.activation_bytes, s.name in host)
                 for s in stages)
    return Residency(policy, t5_cpu, rows, tuple(transfers), DESCRIPTIONS[policy], tuple(notes))


@dataclass(frozen=True)
class PolicyFit:
    """The device memory one policy needs, against a device."""

    policy: str
    peak_bytes: int
    peak_stage: str
    fits: bool | None  # None without a device
    h2d_bytes: int
    transfer_seconds: float | None


def fit_line(r: Residency, device_bytes: int, label: str) -> str:
    need = r.peak_bytes
    peak = r.peak
    parts = f"{peak.resident_bytes / GIB:.1f} GiB weights + {peak.activation_bytes / GIB:.1f} GiB activations"
    if need <= device_bytes:
        return (f"fits on one {label} with --offload {r.name}: peak {need / GIB:.1f} GiB during {peak.stage} "
                f"({parts}) of {device_bytes / GIB:.0f} GiB, {headroom(need, device_bytes).text()}")
    return (f"does NOT fit on one {label} with --offload {r.name}: peak {need / GIB:.1f} GiB during {peak.stage} "
            f"({parts}) > {device_bytes / GIB:.0f} GiB")


def compare_policies(results: Mapping[str, Residency], device_bytes: int | None) -> tuple[PolicyFit, ...]:
    return tuple(PolicyFit(name, r.peak_bytes, r.peak.stage, None if device_bytes is None else r.peak_bytes <= device_bytes,
                           r.host_to_device_bytes, r.transfer_seconds) for name, r in results.items())


def transfer_timer(hardware: Any) -> Any:
    """``f(direction, bytes, count) -> seconds`` over the device's PCIe link (comm model), or None:
    no device, or a device entry without a PCIe link (the seconds are then unknown, the bytes known)."""
    if hardware is None:
        return None
    link = getattr(hardware, "pcie", None)
    if link is None:
        return lambda direction, nbytes, count: None
    from fxmeter.estimate.comm import Collective, collective_seconds, load_comm_model

    model = load_comm_model()

    def seconds(direction: str, nbytes: int, count: int) -> float | None:
        c = Collective(direction, nbytes, 1, count, "offload")
        return collective_seconds(c, link, model) * count

    return seconds
