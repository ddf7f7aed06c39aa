"""``fxmeter diagnose``: which single setting explains a measured run.

The run is described as fxmeter's setup for it (the device, the GPU count and plan, the options the user
states; everything else at fxmeter's defaults).  Each candidate cause is that setup with ONE setting
changed, priced exactly as ``fxmeter trace`` prices it (:func:`fxmeter.advise.planner.price_options`):

* the attention kernel (sdpa, fa2, fa3, cudnn, sage: FA3 is Hopper-only; a run that silently fell back to FA2);
* an offload policy (diffusers ``enable_model_cpu_offload`` / ``enable_sequential_cpu_offload``, Wan's
  ``--offload_model``, with and without ``--t5_cpu``);
* eager vs ``torch.compile``;
* fp32 weights (``--dtype fp32``) and the VAE in fp32 (``--stage-dtype vae=fp32``): each needs a trace at
  that dtype; one that is neither shipped nor cached is listed as not priced (``fxmeter trace --dtype fp32``
  once makes it);
* Ring instead of Ulysses (or the reverse) on several GPUs;
* host-bound dispatch: the host issuing kernels ``HOST_FACTOR`` times slower than kernels.json's measured
  costs (a slower CPU, a busy Python thread, debug hooks); priced by the same host timeline.

Each cause's score is ``|ln(predicted / measured)|`` (plus ``|ln(peak / measured peak)|`` when a peak is
given); causes are ranked by it, those that move the prediction TOWARD the measurement first (a faster
prediction for a run faster than the setup's, a slower one for a slower run; or the peak toward a measured
peak): a change that moves both away from the measurement widens the gap it is asked to explain.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fxmeter.errors import FxmeterError
from fxmeter.estimate.memory import PEAK_KINDS

#: how much slower the host is in the host-bound cause
HOST_FACTOR = 3.0
#: the setup "explains" the run when its prediction is within this fraction of the measurement
WITHIN = 0.15
#: a change that moves the prediction (and the peak, when one was measured) by at most this fraction is "the same
#: prediction": not ranked
SAME = 0.005
#: the setup's peak "explains" a measured peak within this fraction (fxmeter's memory model: P90 |error| ~23% on the
#: shipped rows, median ~7%; a policy that changes what is resident moves it by far more)
PEAK_WITHIN = 0.25


class NeedsTrace(FxmeterError):
    """A candidate needs a symbolic trace that is neither shipped nor cached."""


@dataclass(frozen=True)
class Cause:
    name: str  # "attention fa2"
    options: Mapping[str, Any]  # the run's options under this cause
    fix: str  # the change to make
    seconds: float | None
    peak_bytes: int | None
    score: float
    note: str = ""


@dataclass
class Diagnosis:
    model: str
    device: str
    gpus: int
    measured: float
    measured_peak_bytes: int | None
    setup: Mapping[str, Any]
    seconds: float  # the setup's prediction
    peak_bytes: int
    score: float
    causes: list[Cause] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    peak_kind: str | None = None  # what the measured peak is (PEAK_KINDS); None: no peak measured

    @property
    def off_by(self) -> float:
        return self.measured / self.seconds - 1.0

    @property
    def peak_off_by(self) -> float | None:
        """Measured peak over the setup's predicted peak, less one (None: no peak measured)."""
        if not self.measured_peak_bytes or not self.peak_bytes:
            return None
        return self.measured_peak_bytes / self.peak_bytes - 1.0

    def _explains(self, seconds: float | None, peak: int | None) -> bool:
        """A prediction of ``seconds`` (and ``peak``) is within :data:`WITHIN` of the measured time and, when a peak
        was measured, within :data:`PEAK_WITHIN` of it."""
        if not seconds or abs(self.measured / seconds - 1) > WITHIN:
            return False
        return not self.measured_peak_bytes or not peak or abs(self.measured_peak_bytes / peak - 1) <= PEAK_WITHIN

    @property
    def explained(self) -> bool:
        """The setup itself explains the run (:meth:`_explains`; a cause may still be closer: the difference is
        then inside what the model can tell apart)."""
        return self._explains(self.seconds, self.peak_bytes)

    def lines(self) -> list[str]:
        kind = f" {self.peak_kind}" if self.peak_kind else ""
        out = [f"{self.model} on {self.gpus}x {self.device}: measured {self.measured:,.1f} s; fxmeter predicts "
               f"{self.seconds:,.1f} s for this setup ({_text(self.setup)})"
               + (f", peak{kind} {self.peak_bytes / 1e9:,.1f} GB vs {self.measured_peak_bytes / 1e9:,.1f} GB measured"
                  if self.measured_peak_bytes else "")]
        p = self.peak_off_by
        what = f"{abs(self.off_by) * 100:.0f}% {'slower' if self.off_by > 0 else 'faster'}"
        if p is not None and abs(p) > PEAK_WITHIN:
            what += f" and its peak {abs(p) * 100:.0f}% {'higher' if p > 0 else 'lower'}"
        if self.explained:
            out.append(f"your run is within {abs(self.off_by) * 100:.0f}% of what this setup should take"
                       + ("" if p is None else f" (its peak within {abs(p) * 100:.0f}%)")
                       + ": nothing stands out (the settings closest to the measurement, for reference:)")
        elif self.causes and self._explains(self.causes[0].seconds, self.causes[0].peak_bytes):
            out.append(f"the run is {what} than this setup should take; single settings that explain it, best first:")
        else:
            out.append(f"the run is {what} than this setup should take, and no single setting fxmeter prices "
                       f"explains it within {WITHIN * 100:.0f}%"
                       + ("" if p is None else f" (peak {PEAK_WITHIN * 100:.0f}%)")
                       + " (more than one may be off, or something fxmeter does not model); the closest, best first:")
        for i, c in enumerate(self.causes, 1):
            pred = "-" if c.seconds is None else f"{c.seconds:,.1f} s"
            peak = "" if c.peak_bytes is None or not self.measured_peak_bytes else f", peak {c.peak_bytes / 1e9:,.1f} GB"
            off = "" if c.seconds is None else f" ({(c.seconds / self.measured - 1) * 100:+.0f}% vs measured)"
            out.append(f"  {i}. {c.name}: predicts {pred}{peak}{off}; fix: {c.fix}" + (f" [{c.note}]" if c.note else ""))
        for s in self.skipped:
            out.append(f"  not ranked: {s}" if "(the same prediction" in s else f"  not priced: {s}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "device": self.device, "gpus": self.gpus, "measured_seconds": self.measured,
                "measured_peak_bytes": self.measured_peak_bytes, "peak_kind": self.peak_kind, "setup": dict(self.setup),
                "predicted_seconds": self.seconds, "predicted_peak_bytes": self.peak_bytes,
                "explained": self.explained, "off_by": self.off_by,
                "causes": [{"name": c.name, "options": dict(c.options), "fix": c.fix, "predicted_seconds": c.seconds,
                            "predicted_peak_bytes": c.peak_bytes, "score": c.score, "note": c.note}
                           for c in self.causes],
                "not_priced": list(self.skipped)}


def _text(opts: Mapping[str, Any]) -> str:
    from fxmeter.base.knobs import defaults

    d = defaults()
    shown = {k: v for k, v in opts.items() if k != "hardware" and v is not None and v != d.get(k)}
    return ", ".join(f"{k}={v}" if v is not True else k for k, v in shown.items()) or "fxmeter's defaults"


def _toward(c: Cause, secs: float, peak: int, measured: float, measured_peak: int | None) -> bool:
    """``c`` moves the setup's predicted seconds, or its peak when one was measured, toward the measurement."""
    def sign(x: float) -> int:
        return (x > 0) - (x < 0)

    if c.seconds is not None and c.seconds != secs and sign(c.seconds - secs) == sign(measured - secs):
        return True
    if not measured_peak or c.peak_bytes is None or c.peak_bytes == peak:
        return False
    return sign(c.peak_bytes - peak) == sign(measured_peak - peak)


def _score(seconds: float, peak: int, measured: float, measured_peak: int | None) -> float:
    s = abs(math.log(seconds / measured)) if seconds > 0 else math.inf
    if measured_peak:
        s += abs(math.log(peak / measured_peak)) if peak > 0 else math.inf
    return s


def price_options(model: str | None, workload: Any, options: Mapping[str, Any], *, config: Any = None,
                  host_factor: float = 1.0, trace: bool = False, peak_kind: str | None = None) -> tuple[float, int]:
    """(predicted seconds, peak bytes per GPU) of ``fxmeter trace MODEL`` with ``options`` (its deployment's
    when ``gpus`` > 1).  ``host_factor``: host dispatch costs scaled (the host-bound cause); ``trace``:
    trace now when the trace is neither shipped nor cached (else :class:`NeedsTrace`).  ``peak_kind``: the peak
    as a measurement of that kind reads it (:data:`PEAK_KINDS`, the process-memory model that ``validate``
    reads); None: the residency's peak (weights + activations, what the planner's fit uses)."""
    from fxmeter import api

    req = api.request(model, workload, config=config, **options)

    def refuse(line: str) -> None:
        if "tracing" in line and not trace:
            raise NeedsTrace(line)

    inputs = api.stage_inputs(req, progress=refuse)
    est = api.estimate_request(req, inputs, nodes=host_factor != 1.0, modules=host_factor != 1.0)
    if peak_kind is not None:
        from fxmeter.estimate.memory import predicted_peak

        secs, _ = _priced(req, est, host_factor)
        return secs, int(predicted_peak(est).peak_of(peak_kind))
    return _priced(req, est, host_factor)


def _priced(req: Any, est: Any, host_factor: float) -> tuple[float, int]:
    """(seconds, residency or deployment peak) of an estimate, its host costs scaled by ``host_factor``."""
    from dataclasses import replace

    if host_factor != 1.0:
        from fxmeter.advise.planner import Pricer, deployment_numbers, stage_times
        from fxmeter.estimate.kernels import load_kernel_model
        from fxmeter.estimate.split import split_rules

        km = load_kernel_model()
        assert km.host is not None
        slow = replace(km, host=km.host.scaled(host_factor))
        p = Pricer(km=slow)
        hw = req.devices[0]
        est = stage_times(p, est, hw)
        res = est.residency
        assert res is not None
        if req.plan is not None:
            secs, peak, *_ = deployment_numbers(p, est, res, req.plan, split_rules(req.model, req.geometry), hw,
                                                _kernel_options(est))
            return secs, peak
        return est.pipeline_seconds("predicted") or 0.0, res.peak_bytes
    if est.deployment is not None:
        return est.deployment.predicted_seconds, est.deployment.fit.required_bytes
    assert est.residency is not None
    return est.pipeline_seconds("predicted") or 0.0, est.residency.peak_bytes


def _kernel_options(est: Any) -> Any:
    from fxmeter.estimate.kernels import KernelOptions

    o = est.options
    return KernelOptions(o.attention, o.precision, o.attention_precision, o.compile)


def candidates(req: Any, setup: Mapping[str, Any]) -> list[tuple[str, dict[str, Any], str, str]]:
    """(name, options, fix, note) of every single-setting change of ``setup`` fxmeter can price."""
    from fxmeter.errors import FxmeterError as _E
    from fxmeter.estimate.kernels import KernelOptions, check_kernel
    from fxmeter.estimate.residency import policies_for

    hw = req.devices[0]
    out: list[tuple[str, dict[str, Any], str, str]] = []
    att = setup.get("attention", "sdpa")
    for k in ("fa2", "fa3", "sdpa", "cudnn", "sage"):
        if k == att:
            continue
        ap = "int8" if k == "sage" else "bf16"  # SageAttention: INT8 Q K^T
        try:
            check_kernel(KernelOptions(attention=k, precision=setup.get("precision", "bf16"), attention_precision=ap), hw)
        except _E:
            continue
        out.append((f"attention {k} instead of {att}", {**setup, "attention": k, "attention_precision": ap},
                    f"--attention {att}", "FA3 needs Hopper and flash_attn_interface; without it FA2 or SDPA runs"
                    if k in ("fa2", "sdpa") and att == "fa3" else ""))
    off = setup.get("offload", "none")
    for pol in policies_for(req.model.adapter.extra_policies):
        if pol != off:  # --t5-cpu is a policy of Wan's (residency plans it with `wan` only)
            out.append((f"offload {pol}", {**setup, "offload": pol, "t5_cpu": bool(setup.get("t5_cpu")) and pol == "wan"},
                        f"--offload {off}",
                        "weights copied between host and device during the run"))
        if pol == "wan" and not setup.get("t5_cpu"):
            out.append(("offload wan + t5_cpu", {**setup, "offload": "wan", "t5_cpu": True}, f"--offload {off}",
                        "the text encoder on the host CPU: its time is not modelled"))
    comp = bool(setup.get("compile"))
    out.append(("torch.compile" if not comp else "eager (no torch.compile)", {**setup, "compile": not comp},
                "--compile" if not comp else "drop --compile",
                "" if comp else "compiled kernels: a faster run than this setup"))
    if setup.get("dtype", "bf16") != "fp32":
        out.append(("fp32 weights", {**setup, "dtype": "fp32"}, "--dtype bf16 (torch_dtype=torch.bfloat16)", ""))
    vae = next((p for p in req.model.stages(req.workload) if p.name == "vae"), None)
    if vae is not None and (vae.dtype or "") not in ("fp32", "float32") and "vae=fp32" not in str(setup.get("stage_dtype") or ""):
        out.append(("VAE in fp32", {**setup, "stage_dtype": "vae=fp32"}, "load the VAE in bf16 (--stage-dtype vae=bf16)",
                    ""))
    plan = req.plan
    if plan is not None and plan.sp > 1:
        cfg = f",cfg={plan.cfg},tp={plan.tp}"
        if plan.ulysses > 1:
            out.append((f"ring={plan.sp} instead of ulysses={plan.ulysses}",
                        {**setup, "parallel": f"ulysses=1,ring={plan.sp}{cfg}"}, f"--parallel {plan.spec()}",
                        "ring attention passes K/V around the GPUs every step"))
        if plan.ring > 1:
            from math import gcd

            heads = None
            try:
                from fxmeter.estimate.split import split_rules

                heads = split_rules(req.model, req.geometry)["transformer"].dims.heads
            except (KeyError, _E):
                heads = None
            u = gcd(plan.sp, heads) if heads else plan.sp
            if u == plan.sp:
                out.append((f"ulysses={plan.sp} instead of ring={plan.ring}",
                            {**setup, "parallel": f"ulysses={plan.sp},ring=1{cfg}"}, f"--parallel {plan.spec()}", ""))
    out.append((f"host-bound dispatch (host {HOST_FACTOR:g}x slower at issuing kernels)", dict(setup),
                "a faster CPU, torch.compile or CUDA graphs (fewer launches)", "host"))
    return out


def diagnose(model: str | None, workload: Any = None, *, measured: float, measured_peak_gb: float | None = None,
             peak_kind: str = "reserved", config: Any = None, trace: bool = False, top: int = 6,
             **setup: Any) -> Diagnosis:
    """Rank the single-setting changes of ``setup`` (the options of ``fxmeter trace``, ``hardware`` among them)
    by how well their predicted time (and peak) explains ``measured`` seconds (and ``measured_peak_gb``, a peak
    of ``peak_kind``: :data:`PEAK_KINDS`)."""
    from fxmeter import api

    if peak_kind not in PEAK_KINDS:
        raise FxmeterError(f"peak kind {peak_kind!r}: one of {', '.join(PEAK_KINDS)}")
    setup = {k: v for k, v in setup.items() if v is not None}
    req = api.request(model, workload, config=config, **setup)
    if len(req.devices) != 1:
        raise FxmeterError("fxmeter diagnose needs one --hardware device: the one the run was measured on")
    mpeak = None if measured_peak_gb is None else int(measured_peak_gb * 1e9)
    kind = None if mpeak is None else peak_kind  # no measured peak: the residency's, for reference
    secs, peak = price_options(model, workload, setup, config=config, trace=trace, peak_kind=kind)
    causes: list[Cause] = []
    skipped: list[str] = []
    for name, opts, fix, note in candidates(req, setup):
        try:
            if note == "host":
                s, pk = price_options(model, workload, opts, config=config, host_factor=HOST_FACTOR, trace=trace,
                                      peak_kind=kind)
                note = "kernels wait for the host's dispatch"
            else:
                s, pk = price_options(model, workload, opts, config=config, trace=trace, peak_kind=kind)
        except NeedsTrace:
            skipped.append(f"{name} (needs a trace at that dtype: run `fxmeter trace {req.model.id} "
                           f"{'--dtype fp32' if 'dtype' in opts and opts['dtype'] == 'fp32' else '--stage-dtype vae=fp32'}"
                           "` once, or pass --trace)")
            continue
        except FxmeterError as e:
            skipped.append(f"{name} ({e})")
            continue
        if (mpeak is None or abs(pk - peak) <= SAME * peak) and abs(s - secs) <= SAME * max(secs, 1e-12):
            # the same numbers as the stated setup, within 0.5% (FA2 where torch SDPA runs FlashAttention-2; a slow
            # host under GPU-bound kernels): in fxmeter's model this change changes nothing, so it cannot explain a
            # difference; never ranked
            skipped.append(f"{name} (the same prediction as the stated setup in fxmeter's model, within "
                           f"{SAME * 100:g}%: it cannot explain a difference)")
            continue
        if s < secs:
            # a setting that makes the run FASTER than the stated setup explains a fast run; there is nothing to
            # revert, only the flag that describes it
            fix = f"nothing to fix (a faster run than this setup); to model it: {_flags(opts, setup)}"
        causes.append(Cause(name, opts, fix, s, pk, _score(s, pk, measured, mpeak), note))
    causes.sort(key=lambda c: (not _toward(c, secs, peak, measured, mpeak), c.score))
    hw = req.devices[0]
    return Diagnosis(req.model.id, hw.name, req.plan.gpus if req.plan else 1, measured, mpeak, setup, secs, peak,
                     _score(secs, peak, measured, mpeak), causes[:top], skipped, kind)


def _flags(opts: Mapping[str, Any], setup: Mapping[str, Any]) -> str:
    """The command-line flags of ``opts`` that differ from ``setup``."""
    out = []
    for k in ("attention", "attention_precision", "offload", "parallel", "dtype", "stage_dtype"):
        if opts.get(k) is not None and opts.get(k) != setup.get(k):
            out.append(f"--{k.replace('_', '-')} {opts[k]}")
    if bool(opts.get("t5_cpu")) != bool(setup.get("t5_cpu")):
        out.append("--t5-cpu" if opts.get("t5_cpu") else "(no --t5-cpu)")
    if bool(opts.get("compile")) != bool(setup.get("compile")):
        out.append("--compile" if opts.get("compile") else "(no --compile)")
    return " ".join(out) or "(the stated setup)"


__all__ = ["HOST_FACTOR", "SAME", "WITHIN", "Cause", "Diagnosis", "NeedsTrace", "candidates", "diagnose", "price_options"]
