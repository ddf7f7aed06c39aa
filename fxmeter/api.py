"""The library API; the CLI is a thin layer over these functions."""

from __future__ import annotations

import logging
import secrets
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fxmeter.cost.analyze import SymbolicModel  # light: no torch, sympy or networkx at import
from fxmeter.errors import TraceError, UnmodeledOpError
from fxmeter.estimate.evaluate import check_guards, evaluate
from fxmeter.model.registry import ResolvedModel, resolve_model
from fxmeter.model.workload import Workload, normalize_dtype, resolve
from fxmeter.report.document import Report, check_run_id

LOG = logging.getLogger(__name__)


def default_run_id() -> str:
    """UTC timestamp plus a random suffix (``20250101T120000Z-3f9a1c07``): sorts by time, and
    two runs started in the same second get different ids."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(4)


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {"torch": version("torch"), "diffusers": version("diffusers")}


def trace_symbolic(
    model: ResolvedModel,
    dtype: str,
    dims: dict[str, int] | None = None,
    *,
    replicate: bool = True,
) -> SymbolicModel:
    """Export and analyse ``model``: dynamic when ``dims`` is None (static fallback)."""
    from fxmeter.cost.analyze import analyze
    from fxmeter.model.capture import capture

    t0 = time.perf_counter()
    cap = capture(model.config, model.adapter, dtype, dims, replicate=replicate)
    meta = {
        "model_id": model.id,
        "diffusers_class": model.diffusers_class,
        "adapter": model.adapter.name,
        "config": model.config,
        "config_sha256": model.config_sha256,
        "config_source": model.config_source,
        "slug": model.slug,
        "dtype": dtype,
        "versions": _versions(),
        "symbols": list(cap.symbols),
        "guards": cap.guards,
        "mode": cap.mode,
        "dims": cap.dims,
        "replicas": cap.replicas,
        "graph_nodes": cap.graph_nodes,
        "weight_bytes": sum(cap.weight_bytes_by_dtype.values()),
        "weight_bytes_by_dtype": cap.weight_bytes_by_dtype,
        "parameters_by_dtype": cap.parameters_by_dtype,
    }
    sm = analyze(cap, model.adapter, meta)
    sm.meta["seconds"] = time.perf_counter() - t0
    return sm


def symbolic_model(
    model: ResolvedModel,
    dtype: str,
    dims: dict[str, int],
    *,
    cache: bool = True,
    replicate: bool = True,
    background: bool = False,
) -> SymbolicModel:
    """The symbolic model valid for ``dims``: from the cache, a dynamic trace, or a static one.

    With ``background`` (the CLI's fast cold path), a cache miss traces only this
    workload statically (same numbers, no formulas) and leaves the dynamic trace
    that fills the cache to a detached process (:func:`fxmeter.cache.fill_in_background`).
    """
    from fxmeter.cost import store as cache_mod

    if cache:
        sm = cache_mod.load(model, dtype, replicate=replicate)
        if sm is not None:
            if not check_guards(sm, dims):
                sm.meta["cache"] = "hit"
                return sm
            # the cached dynamic trace specialised and excludes this workload: trace it statically
            sm = trace_symbolic(model, dtype, dims, replicate=replicate)
            sm.meta["cache"] = "static-retrace"
            return sm
        if background and model.adapter.supports_dynamic(model.config):
            sm = trace_symbolic(model, dtype, dims, replicate=replicate)
            started = cache_mod.fill_in_background(model, dtype, replicate=replicate)
            sm.meta["cache"] = "miss-background-fill" if started else "miss-fill-running"
            return sm
    sm = None
    if model.adapter.supports_dynamic(model.config):
        try:
            sm = trace_symbolic(model, dtype, None, replicate=replicate)
        except TraceError as e:
            LOG.warning("dynamic export failed (%s); tracing this workload statically", e)
    if sm is not None:
        sm.meta["cache"] = "miss" if cache else "disabled"
        if cache:  # valid for every workload inside its guards, this one or not
            cache_mod.store(model, dtype, sm, replicate=replicate)
        if not check_guards(sm, dims):
            return sm
    # dynamic export failed or its guards exclude this workload: trace this workload statically
    sm = trace_symbolic(model, dtype, dims, replicate=replicate)
    sm.meta["cache"] = "static-retrace"
    return sm


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
    background: bool = False,
    hardware: str | None = None,
    hardware_file: str | Path | None = None,
    precision: str = "bf16",
    traffic: str = "eager",
    efficiency: str | dict[str, float] | None = None,
    batched_cfg: bool = False,
    **overrides: Any,
) -> Report:
    """Trace ``model`` for ``workload`` and return the :class:`Report`.

    Args:
        model: a registered model id (``fxmeter models``), or None with ``config``.
        workload: a preset name (``fxmeter workloads``) or a :class:`Workload`;
            the model's default preset when None.
        config: a local diffusers config.json (or a folder with transformer/config.json).
        dtype: deployment dtype of the parameters (bf16, fp16, fp32).
        run_id: the report's id (default: a UTC timestamp).
        strict: raise :class:`UnmodeledOpError` if any op has no rule.
        cache: reuse / store the symbolic trace in the user cache.
        replicate: trace one instance of each repeated block list and replicate it.
        include_nodes: list every costed graph node in the report.
        background: on a cache miss, report from a static trace of this workload and
            fill the cache from a detached background process (the CLI's default).
        hardware: a device of `fxmeter hardware` (or of ``hardware_file``): adds the
            roofline time, the fit check and ``hardware`` to the report.
        hardware_file: a JSON file with more devices (``fxmeter/data/hardware.json`` shape).
        precision: bf16 or fp8: the tensor-core peak of matmul/conv nodes and the
            weight bytes (fp8: matmul/conv weights in 1 byte each).
        traffic: eager (every op reads its inputs, writes its output) or fused.
        efficiency: fractions of the peaks, e.g. ``"tc=0.6,bw=0.8"`` (default 1.0 each).
        batched_cfg: run CFG as one pass of twice the batch: activation memory at 2x
            the batch; FLOPs, bytes and time end to end unchanged.
        **overrides: frames, height, width, steps, text_len, batch, guidance_scale.
    """
    from fxmeter.cost.liveness import check_precision, finish_report
    from fxmeter.cost.traffic import check_model

    traffic = check_model(traffic)
    check_precision(precision)
    hw, eff = None, None
    if efficiency is not None and hardware is None and hardware_file is None:
        from fxmeter.estimate.hardware import HardwareError

        raise HardwareError("--efficiency scales a device's peaks: it needs --hardware (see `fxmeter hardware`)")
    if hardware is not None or hardware_file is not None:
        from fxmeter.estimate.hardware import get, parse_efficiency

        hw = get(hardware, hardware_file)
        eff = parse_efficiency(efficiency)
        hw.tc_peak(precision)  # fail before tracing when the device lacks this precision
    resolved = resolve_model(model, config)
    wl = resolve(workload, resolved.default_workload, **overrides)
    d = normalize_dtype(dtype)
    rid = check_run_id(default_run_id() if run_id is None else run_id)
    geometry = resolved.geometry(wl)
    sm = symbolic_model(resolved, d, geometry.dims, cache=cache, replicate=replicate, background=background)
    if strict and sm.unmodeled:
        ops = ", ".join(f"{u['op']} (x{u['count']})" for u in sm.unmodeled)
        raise UnmodeledOpError(f"--strict: ops without a rule: {ops}")
    passes = resolved.adapter.passes_per_step(resolved.config, wl)
    rep = evaluate(sm, wl, geometry, passes, rid, include_nodes=include_nodes or hw is not None, traffic=traffic)
    batched = None
    if batched_cfg and passes == 2:
        batched = _batched_activations(resolved, d, wl, sm, cache=cache, replicate=replicate)
    finish_report(rep.data, sm.meta, precision=precision, traffic=traffic, batched=batched, batched_cfg=batched_cfg,
                  hw=hw, efficiency=eff, include_nodes=include_nodes)
    rep.data["trace"]["options"] = trace_options(
        dtype=d, precision=precision, traffic=traffic, batched_cfg=bool(batched_cfg and passes == 2),
        hardware=hw.name if hw is not None else None, efficiency=dict(eff) if isinstance(eff, dict) else eff,
        full_trace=not replicate,
    )
    resolved.adapter.annotate_report(resolved.config, wl, rep.data)  # model-specific sections (e.g. experts)
    mem = rep.data["memory"]
    if hw is not None and mem.get("fit"):  # the adapter may have changed the weights (two experts): fit again
        from fxmeter.cost.liveness import fit_check

        mem["fit"] = fit_check(mem["weight_bytes"], mem["activation_peak_bytes"], hw.memory_bytes, hw.label)
    return rep


def _batched_activations(resolved: ResolvedModel, dtype: str, wl: Workload, sm: SymbolicModel, *, cache: bool,
                         replicate: bool) -> dict[str, Any]:
    """Activation memory of one CFG pass of twice the batch (the liveness walk at 2x batch)."""
    from dataclasses import replace

    from fxmeter.cost.formula import compile_table
    from fxmeter.cost.liveness import activation_summary

    wl2 = replace(wl, batch=2 * wl.batch)
    geo2 = resolved.geometry(wl2)
    dynamic_ok = sm.meta.get("mode") == "dynamic" and not check_guards(sm, geo2.dims)
    sm2 = sm if dynamic_ok else symbolic_model(resolved, dtype, geo2.dims, cache=cache, replicate=replicate)
    symbols = list(sm2.meta["symbols"])
    vals = compile_table(sm2.formulas, symbols)(**{k: geo2.dims[k] for k in symbols})
    out = activation_summary(sm2.nodes, sm2.liveness.get("after_node", []), vals, sm2.meta.get("replicas", {}))
    out["activation_batch"] = wl2.batch
    return out


#: options of :func:`trace` that change a report's numbers, with their defaults (``trace.options`` in report.json)
OPTION_DEFAULTS: dict[str, Any] = {
    "dtype": "bfloat16", "precision": "bf16", "traffic": "eager", "batched_cfg": False, "hardware": None,
    "efficiency": None, "full_trace": False,
}


def trace_options(**options: Any) -> dict[str, Any]:
    """The record of the number-changing options a report was made with (every key of OPTION_DEFAULTS)."""
    unknown = set(options) - set(OPTION_DEFAULTS)
    assert not unknown, unknown
    return {k: options.get(k, v) for k, v in OPTION_DEFAULTS.items()}


def component_costs(config: dict[str, Any], component_id: str, source: str, wl: Workload,
                    data: dict[str, Any]) -> dict[str, Any]:
    """Per-forward cost, parameters, weights and activation peak of one pipeline component
    (e.g. a second expert with its own config) at ``wl``, in the dtype and precision of ``data``.

    Traced through the trace cache like any model, so a warm run imports no torch.
    """
    from fxmeter.cost.liveness import weights_for_precision
    from fxmeter.model.adapters import adapter_for_class
    from fxmeter.model.registry import _sha256

    adapter = adapter_for_class(str(config["_class_name"]), config)
    rm = ResolvedModel(component_id, config, _sha256(config), source, adapter, str(data["model"].get("slug", "")), "")
    geometry = rm.geometry(wl)
    sm = symbolic_model(rm, str(data["workload"]["dtype"]), geometry.dims)
    passes = adapter.passes_per_step(config, wl)
    sub = evaluate(sm, wl, geometry, passes, "component", include_nodes=False, include_modules=False).data
    w = weights_for_precision(sm.meta, str(data["memory"].get("precision", "bf16")))
    return {
        "per_forward": sub["totals"]["per_forward"],
        "parameters": sub["model"]["parameters"],
        "weight_bytes": w["weight_bytes"],
        "weight_bytes_by_dtype": w["weight_bytes_by_dtype"],
        "parameters_by_dtype": sub["memory"]["parameters_by_dtype"],
        "activation_peak_bytes": sub["memory"]["activation_peak_bytes"],
    }
