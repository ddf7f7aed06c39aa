"""The library facade: ``trace``, ``estimate_workload`` and friends; the CLI is a thin layer over these.

One path through the stages, each returning a new value:

    model.resolve_model -> model.Workload/Geometry -> StagePlans
    -> cost.store.get (shipped / cached / traced SymbolicModel per stage)
    -> estimate.generation.estimate (costs, time, memory, fit)
    -> report.build (the typed Report)
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fxmeter.errors import FxmeterError, UnmodeledOpError
from fxmeter.estimate.options import Options, check_traffic
from fxmeter.model.registry import ResolvedModel, resolve_model
from fxmeter.model.workload import Workload, normalize_dtype, resolve

if TYPE_CHECKING:
    from fxmeter.cost.analyze import Overlay
    from fxmeter.cost.store import Progress
    from fxmeter.estimate.generation import Estimate, StageInput
    from fxmeter.estimate.hardware import Hardware
    from fxmeter.model.adapters import Geometry
    from fxmeter.report.files import Report
    from fxmeter.report.sweep import SweepResult

LOG = logging.getLogger(__name__)


def default_run_id() -> str:
    """UTC timestamp plus a random suffix (``20250101T120000Z-3f9a1c07``): sorts by time, and
    two runs started in the same second get different ids."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(4)


@dataclass(frozen=True)
class Request:
    """A resolved request: model, workload, geometry, options and device (validated, nothing traced yet)."""

    model: ResolvedModel
    workload: Workload
    geometry: Geometry
    options: Options
    hardware: Hardware | None
    efficiency: Mapping[str, float] | None


def request(
    model: str | None = None,
    workload: str | Workload | None = None,
    *,
    config: str | Path | None = None,
    dtype: str = "bf16",
    hardware: str | None = None,
    hardware_file: str | Path | None = None,
    precision: str = "bf16",
    traffic: str = "eager",
    efficiency: str | Mapping[str, float] | None = None,
    batched_cfg: bool = False,
    replicate: bool = True,
    stages: str | Sequence[str] | None = None,
    stage_dtype: str | Mapping[str, str] | None = None,
    offload: str = "none",
    t5_cpu: bool = False,
    **overrides: Any,
) -> Request:
    """Resolve and validate everything a trace needs, before anything is traced (bad input fails fast).

    ``stages``: ``all`` (None) or stage names (``text_encoder,vae``; ``transformer`` names every
    denoising stage); ``stage_dtype``: ``vae=fp32,...`` (a component's dtype instead of the
    pipeline's); ``offload``: the residency policy; ``t5_cpu``: Wan's ``--t5_cpu``.
    """
    from fxmeter.estimate.hardware import HardwareError, get, parse_efficiency

    traffic = check_traffic(traffic)
    if precision not in ("bf16", "fp8"):
        raise HardwareError(f"unknown precision {precision!r}; use bf16 or fp8")
    hw, eff = None, None
    if efficiency is not None and hardware is None and hardware_file is None:
        raise HardwareError("--efficiency scales a device's peaks: it needs --hardware (see `fxmeter hardware`)")
    if hardware is not None or hardware_file is not None:
        hw = get(hardware, hardware_file)
        eff = parse_efficiency(dict(efficiency) if isinstance(efficiency, Mapping) else efficiency) \
            if efficiency is not None else None
        hw.tc_peak(precision)  # fail before tracing when the device lacks this precision
    resolved = resolve_model(model, config)
    wl = resolve(workload, resolved.default_workload or None, **overrides)
    d = normalize_dtype(dtype)
    geometry = resolved.geometry(wl)
    plans = resolved.stages(wl, batched_cfg=bool(batched_cfg))
    chosen = select_stages(resolved, plans, stages)
    dtypes = stage_dtypes(resolved, plans, stage_dtype)
    from fxmeter.estimate.residency import check_policy, policies_for

    policy = check_policy(offload, bool(t5_cpu), policies_for(resolved.adapter.extra_policies), resolved.id)
    if t5_cpu and not any(p.name.startswith("text_encoder") and (chosen is None or p.name in chosen) for p in plans):
        from fxmeter.errors import StageError

        raise StageError("--t5-cpu moves the text encoder to the host, but the pipeline asked for has none "
                         "(--stages without text_encoder)")
    for p in plans:  # a selected stage whose component config the model folder lacks: one line now
        if (chosen is None or p.name in chosen) and p.component in resolved.missing:
            resolved.stage_component(p)
    options = Options(dtype=d, precision=precision, traffic=traffic, batched_cfg=bool(batched_cfg),
                      full_trace=not replicate, hardware=hw.name if hw is not None else None, efficiency=eff,
                      stages=chosen, stage_dtypes=dtypes or None, offload=policy, t5_cpu=bool(t5_cpu))
    return Request(resolved, wl, geometry, options, hw, eff)


def _names(value: str | Sequence[str] | Mapping[str, str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v).strip() for v in value]


def select_stages(model: ResolvedModel, plans: Sequence[Any], stages: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """The stage names ``--stages`` asks for (None: all), checked against the model's pipeline."""
    from fxmeter.errors import StageError

    names = _names(stages)
    if not names or names == ["all"]:
        return None
    have = [p.name for p in plans]
    denoisers = [p.name for p in plans if p.denoiser]
    chosen: list[str] = []
    for n in names:
        if n == "all":
            raise StageError("--stages all cannot be combined with stage names")
        if n == "transformer":
            chosen += denoisers
        elif n in have:
            chosen.append(n)
        else:
            import difflib

            close = difflib.get_close_matches(n, have + ["all"], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise StageError(f"unknown stage {n!r}{hint}: {model.id}'s pipeline has {', '.join(have)} (or all)")
    return tuple(p for p in have if p in chosen)


def stage_dtypes(model: ResolvedModel, plans: Sequence[Any], spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """``--stage-dtype vae=fp32,text_encoder=bf16`` -> component -> dtype (a stage name names its component)."""
    from fxmeter.errors import StageError

    if spec is None:
        return {}
    items = list(spec.items()) if isinstance(spec, Mapping) else []
    if isinstance(spec, str):
        for part in _names(spec):
            name, sep, value = part.partition("=")
            if not sep or not name.strip() or not value.strip():
                raise StageError(f"--stage-dtype takes STAGE=DTYPE pairs (vae=fp32,text_encoder=bf16), got {part!r}")
            items.append((name.strip(), value.strip()))
    out: dict[str, str] = {}
    for name, value in items:
        plan = next((p for p in plans if name in (p.name, p.component)), None)
        if plan is None:
            raise StageError(f"--stage-dtype: unknown stage {name!r}; {model.id}'s pipeline has "
                             f"{', '.join(p.name for p in plans)}")
        if plan.denoiser:
            raise StageError(f"--stage-dtype {name}: the denoiser's dtype is --dtype")
        out[plan.component] = normalize_dtype(str(value))
    return out


def stage_inputs(req: Request, *, cache: bool = True, rules: Overlay | None = None,
                 progress: Progress | None = None,
                 memo: dict[tuple[str, ...], list[StageInput]] | None = None) -> list[StageInput]:
    """Each stage of ``req``'s generation with its symbolic model (shipped, cached or traced now).

    Every denoising stage is evaluated (the report's totals describe it); the other stages
    only when ``--stages`` asks for them.  ``memo`` (sweeps) keeps the symbolic models already
    fetched: one is reused for every workload inside its guards.
    """
    from fxmeter.cost import store
    from fxmeter.estimate.generation import StageInput

    out = []
    chosen = req.options.stages
    for plan in req.model.stages(req.workload, batched_cfg=req.options.batched_cfg):
        selected = chosen is None or plan.name in chosen
        if not selected and not plan.denoiser:
            continue
        comp = req.model.stage_component(plan)
        dims = req.model.stage_dims(plan, req.geometry)
        dtype = (req.options.stage_dtypes or {}).get(plan.component) or plan.dtype or req.options.dtype
        replicate = not req.options.full_trace if plan.denoiser else True
        key = (comp.config_sha256, comp.adapter.name, plan.root, dtype, str(plan.batch_factor))
        known = [i for i in (memo or {}).get(key, []) if not i.model.guard_problems(dims)]
        if known:
            out.append(StageInput(plan, known[0].model, dims, known[0].source, 0.0, selected))
            continue
        got = store.get(comp, dtype, dims, replicate=replicate, cache=cache,
                        overlay=rules, progress=progress, root=plan.root)
        inp = StageInput(plan, got.model, dims, got.source, got.seconds, selected)
        if memo is not None:
            memo.setdefault(key, []).append(inp)
        out.append(inp)
    return out


def estimate_request(req: Request, inputs: list[StageInput], *, nodes: bool = True, modules: bool = True) -> Estimate:
    """The pure estimate of ``req`` from its stage inputs."""
    from fxmeter.estimate.generation import estimate
    from fxmeter.estimate.residency import policies_for

    adapter = req.model.adapter
    return estimate(inputs, req.options, steps=req.workload.steps,
                    passes_per_step=req.model.passes_per_step(req.workload), hardware=req.hardware,
                    efficiency=req.efficiency, nodes=nodes, modules=modules, offload_seq=adapter.offload_seq,
                    policies=policies_for(adapter.extra_policies), i2v=adapter.name == "wan-i2v")


def trace(
    model: str | None = None,
    workload: str | Workload | None = None,
    *,
    config: str | Path | None = None,
    dtype: str = "bf16",
    run_id: str | None = None,
    strict: bool = False,
    cache: bool = True,
    replicate: bool = True,
    include_nodes: bool = True,
    hardware: str | None = None,
    hardware_file: str | Path | None = None,
    precision: str = "bf16",
    traffic: str = "eager",
    efficiency: str | Mapping[str, float] | None = None,
    batched_cfg: bool = False,
    rules: Overlay | None = None,
    progress: Progress | None = None,
    stages: str | Sequence[str] | None = None,
    stage_dtype: str | Mapping[str, str] | None = None,
    offload: str = "none",
    t5_cpu: bool = False,
    **overrides: Any,
) -> Report:
    """Trace ``model`` for ``workload`` and return the :class:`~fxmeter.report.Report` (see :func:`fxmeter.trace`)."""
    from fxmeter.report.build import build
    from fxmeter.report.document import check_run_id

    rid = check_run_id(default_run_id() if run_id is None else run_id)
    req = request(model, workload, config=config, dtype=dtype, hardware=hardware, hardware_file=hardware_file,
                  precision=precision, traffic=traffic, efficiency=efficiency, batched_cfg=batched_cfg,
                  replicate=replicate, stages=stages, stage_dtype=stage_dtype, offload=offload, t5_cpu=t5_cpu,
                  **overrides)
    inputs = stage_inputs(req, cache=cache, rules=rules, progress=progress)
    if strict:
        unmodeled = [u for inp in inputs for u in inp.model.unmodeled]
        if unmodeled:
            ops = ", ".join(f"{u['op']} (x{u['count']})" for u in unmodeled)
            raise UnmodeledOpError(f"--strict: ops without a rule: {ops}")
    est = estimate_request(req, inputs)
    notes = ["Costs use a per-call rule overlay (rules=...): " + ", ".join(sorted(rules))] if rules else []
    notes += list(req.model.pipeline_notes(req.workload))
    return build(est, model=req.model, workload=req.workload, geometry=req.geometry, run_id=rid,
                 include_nodes=include_nodes, notes=notes)


def sweep(
    model: str | None,
    *,
    grid: Mapping[str, Sequence[int | None]],
    workload: str | Workload | None = None,
    config: str | Path | None = None,
    dtype: str = "bf16",
    hardware: str | None = None,
    hardware_file: str | Path | None = None,
    efficiency: str | Mapping[str, float] | None = None,
    cache: bool = True,
    replicate: bool = True,
    guidance_scale: float | None = None,
    progress: Progress | None = None,
    stages: str | Sequence[str] | None = None,
    stage_dtype: str | Mapping[str, str] | None = None,
    offload: str = "none",
    t5_cpu: bool = False,
) -> SweepResult:
    """Evaluate every combination of ``grid`` (knob -> values; None = the preset's value).

    The symbolic model is fetched once and reused for every point inside its guards (one
    call of the compiled formulas per point); a point outside them is traced statically.
    """
    import itertools
    import math

    from fxmeter.errors import WorkloadError
    from fxmeter.report.build import build
    from fxmeter.report.sweep import MAX_POINTS, SweepResult, row_of

    knobs = sorted(grid)
    count = math.prod(len(grid[k]) for k in knobs)
    if count > MAX_POINTS:
        sizes = " x ".join(f"{len(grid[k])} {k.replace('_', '-')}" for k in knobs if len(grid[k]) > 1)
        raise WorkloadError(f"sweep of {count:,} workloads ({sizes}) is over the limit of {MAX_POINTS:,}; "
                            "sweep fewer values or split the sweep")
    base = None
    points = []
    for combo in itertools.product(*(grid[k] for k in knobs)):
        ov: dict[str, Any] = {k: v for k, v in zip(knobs, combo) if v is not None}
        if guidance_scale is not None:
            ov["guidance_scale"] = guidance_scale
        try:
            req = request(model, workload, config=config, dtype=dtype, hardware=hardware, hardware_file=hardware_file,
                          efficiency=efficiency, replicate=replicate, stages=stages, stage_dtype=stage_dtype,
                          offload=offload, t5_cpu=t5_cpu, **ov) if base is None else \
                with_workload(base, resolve(workload, base.model.default_workload or None, **ov))
        except WorkloadError as e:
            raise WorkloadError(f"{ov.get('height', '')}x{ov.get('width', '')}, {ov.get('frames', '')} frames: {e}") from None
        base = base or req
        points.append(req)
    if not points:
        raise WorkloadError("empty sweep")
    memo: dict[tuple[str, ...], list[StageInput]] = {}
    rows = []
    first_source = ""
    for req in points:
        inputs = stage_inputs(req, cache=cache, progress=progress, memo=memo)
        first_source = first_source or next(i.source for i in inputs if i.plan.denoiser)
        light = req.hardware is None  # totals only; the roofline needs every node
        est = estimate_request(req, inputs, nodes=not light, modules=not light)
        rows.append(row_of(build(est, model=req.model, workload=req.workload, geometry=req.geometry, run_id="sweep",
                                 include_nodes=False)))
    main_key = next((k for k, v in memo.items() if v[0].plan.denoiser), None)
    sm = memo[main_key][0].model if main_key is not None else None
    trace = {"mode": sm.meta["mode"] if sm else "", "cache": first_source,
             "guards": dict(sm.meta.get("guards", {})) if sm else {}, "symbols": list(sm.symbols) if sm else []}
    return SweepResult(points[0].model.id, points[0].options.dtype, points[0].options.hardware, rows, trace)


def with_workload(req: Request, wl: Workload) -> Request:
    """``req`` for another workload of the same model (sweeps)."""
    return replace(req, workload=wl, geometry=req.model.geometry(wl))


def describe_error(e: BaseException) -> str:
    """One line for an unexpected error (the CLI's boundary)."""
    if isinstance(e, FxmeterError):
        return str(e)
    return f"{type(e).__name__}: {e}"


# -- verify: trace (or reuse the run's report), run FlopCounterMode, compare ---------------------
@dataclass
class VerifyResult:
    """What :func:`verify` found: the layers and end-to-end documents, the report it checked."""

    layers: dict[str, Any]
    end2end: dict[str, Any]
    report: Report
    out_dir: Path
    files: list[Path] = field(default_factory=list)
    traced: bool = True
    stages: list[dict[str, Any]] = field(default_factory=list)  # the other pipeline stages: name, layers, end2end

    @property
    def passed(self) -> bool:
        return bool(self.layers["passed"] and self.end2end["passed"]
                    and all(s["layers"]["passed"] and s["end2end"]["passed"] for s in self.stages))


#: The named keywords of :func:`verify` (besides the workload knobs).
VERIFY_KEYWORDS = ("model", "workload", "device", "reference", "config", "dtype", "run_id", "tolerance",
                   "output_root", "cache", "write", "stages")


def verify(
    model: str | None = None,
    workload: str | None = None,
    *,
    device: str = "meta",
    reference: str = "eager",
    config: str | Path | None = None,
    dtype: str = "bf16",
    run_id: str | None = None,
    tolerance: float | None = None,
    output_root: str | Path = "tmp/profile-output",
    cache: bool = True,
    write: bool = True,
    progress: Progress | None = None,
    stages: str | Sequence[str] | None = None,
    **overrides: Any,
) -> VerifyResult:
    """Trace (or reuse the run's report.json), run FlopCounterMode, compare, write verify/*.json.

    Every pipeline stage of the report is checked: the transformer on ``device`` (layers.json,
    end2end.json), each other stage (text encoders, VAE...) on meta as its pipeline calls it
    (stages.json); the gate passes when all of them do.

    Args:
        model: a registered model id, or None with ``config``.
        workload: a preset name; the model's default when None.
        device: where the reference runs: ``meta``, ``cpu`` or ``cuda``.
        reference: ``eager`` (the module) or ``graph`` (the exported graph through an fx Interpreter).
        config: a local diffusers config.json.
        dtype: parameter dtype (bf16, fp16, fp32).
        run_id: the run folder; its report.json is reused when it exists.
        tolerance: overrides both scopes of ``tolerances.toml``.
        output_root: where run folders go.
        cache: use the trace cache when tracing.
        write: write report.json (if traced now) and verify/layers.json, verify/end2end.json, verify/stages.json.
        stages: the pipeline stages to trace and check (default all; see :func:`request`).
        **overrides: workload knobs (frames, height, width, steps, text_len, batch, guidance_scale).
    """
    from fxmeter.base import fileio
    from fxmeter.errors import OutputExistsError, VerifyError, check_keywords
    from fxmeter.model.workload import OVERRIDABLE
    from fxmeter.report.document import check_output_root, check_run_id
    from fxmeter.report.files import Report, check_writable, write_files
    from fxmeter.verify.compare import (
        DEVICES,
        REFERENCES,
        check_cpu_budget,
        check_same,
        compare,
        load_settings,
        tolerances,
    )

    check_keywords(overrides, (*VERIFY_KEYWORDS, *OVERRIDABLE), "fxmeter.api.verify")
    if device not in DEVICES:
        raise VerifyError(f"unknown device {device!r}; use one of {', '.join(DEVICES)}")
    if reference not in REFERENCES:
        raise VerifyError(f"unknown reference {reference!r}; use one of {', '.join(REFERENCES)}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise VerifyError("--device cuda: no CUDA GPU here (torch.cuda.is_available() is False); "
                              "use --device meta or cpu")
    settings = load_settings()
    tol = tolerances(tolerance, settings)
    rid = check_run_id(default_run_id() if run_id is None else run_id)
    if write:
        check_writable(output_root)
    req = request(model, workload, config=config, dtype=dtype, stages=stages, **overrides)
    out_dir = check_output_root(output_root) / rid / "static_analysis" / req.model.slug

    rep: Report | None = None
    traced = False
    if (out_dir / "report.json").exists():
        rep = Report.load(out_dir / "report.json")  # validated; a folder or a malformed file is one error line
        check_same(rep.data, req.model, req.workload, req.options.dtype, dict(req.geometry.dims), out_dir)
    if rep is None:
        rep = trace(model, req.workload, config=config, dtype=dtype, run_id=rid, cache=cache, progress=progress,
                    stages=stages)
        traced = True
    if device == "cpu":
        check_cpu_budget(rep.data, settings)
    from fxmeter.verify.reference import run_reference

    ref = run_reference(req.model.component("transformer"), dict(req.geometry.dims), req.options.dtype, device, reference)
    layers, end2end = compare(rep.data, ref, tol)
    checked = verify_stages(req, rep.data, tol, progress)
    result = VerifyResult(layers, end2end, rep, out_dir, traced=traced, stages=checked)
    if write:  # the report (if traced now) and the verify files appear together, or nothing does
        files = rep.files() if traced else {}
        files.update({f"verify/{n}": fileio.dumps(d) for n, d in (("layers.json", layers), ("end2end.json", end2end))})
        if checked:
            files["verify/stages.json"] = fileio.dumps({
                "stages": checked, "passed": all(s["layers"]["passed"] and s["end2end"]["passed"] for s in checked)})
        try:
            written = write_files(out_dir, files, "the verify files", claim="report.json" if traced else None,
                                  whole=True, drop="verify".__eq__)
        except OutputExistsError:
            raise VerifyError(f"{out_dir / 'report.json'} was written by another run meanwhile; "
                              "run verify again to check it, or choose another --run-id") from None
        result.files += written
    return result


def verify_stages(req: Request, data: Mapping[str, Any], tol: Mapping[str, float],
                  progress: Progress | None = None) -> list[dict[str, Any]]:
    """Each pipeline stage of report ``data`` other than the denoisers against FlopCounterMode on meta.

    The stage is built and called as the report's trace did (same config, call, dtype and
    symbol values); its module rows are compared per module (``layers``) and per run / end to
    end over its runs (``end2end``) with the same tolerances as the transformer.
    """
    from fxmeter.verify.compare import compare
    from fxmeter.verify.reference import run_stage_reference

    pipeline = data.get("pipeline") or {}
    plans = {p.name: p for p in req.model.stages(req.workload, batched_cfg=req.options.batched_cfg)}
    out = []
    for row in pipeline.get("stages", ()):
        if row["denoiser"] or row["name"] not in plans:
            continue
        if progress:
            progress(f"verifying stage {row['name']} ({row['class']}) under FlopCounterMode on meta...")
        comp = req.model.stage_component(plans[row["name"]])
        ref = run_stage_reference(comp, dict(row["dims"]), row["dtype"], row["root"])
        stage_data = {
            "run_id": data["run_id"], "model": data["model"], "modules": row["modules"],
            "unmodeled_ops": row.get("unmodeled_ops", []),
            "workload": {**data["workload"], "steps": 1, "passes_per_step": row["runs"]},
            "totals": {"per_forward": row["per_run"]},
        }
        layers, end2end = compare(stage_data, ref, dict(tol))
        out.append({"name": row["name"], "class": row["class"], "runs": row["runs"], "dims": row["dims"],
                    "dtype": row["dtype"], "layers": layers, "end2end": end2end})
    return out
