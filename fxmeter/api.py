"""The library API; the CLI is a thin layer over these functions."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .analysis import SymbolicModel
from .errors import TraceError, UnmodeledOpError
from .evaluate import check_guards, evaluate
from .models import ResolvedModel, resolve_model
from .report import Report, check_run_id
from .workload import Workload, normalize_dtype, resolve

LOG = logging.getLogger(__name__)


def default_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


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
    from .analysis import analyze
    from .capture import capture

    t0 = time.perf_counter()
    try:
        cap = capture(model.config, model.adapter, dtype, dims, replicate=replicate)
    except TraceError as e:
        if dims is not None:
            raise
        LOG.warning("dynamic export failed (%s); falling back to a static export", e)
        raise
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
) -> SymbolicModel:
    """The symbolic model valid for ``dims``: from the cache, a dynamic trace, or a static one."""
    from . import cache as cache_mod

    if cache:
        sm = cache_mod.load(model, dtype, replicate=replicate)
        if sm is not None and not check_guards(sm, dims):
            sm.meta["cache"] = "hit"
            return sm
    try:
        sm = trace_symbolic(model, dtype, None, replicate=replicate)
    except TraceError:
        sm = None
    if sm is not None and not check_guards(sm, dims):
        sm.meta["cache"] = "miss" if cache else "disabled"
        if cache:
            cache_mod.store(model, dtype, sm, replicate=replicate)
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
        **overrides: frames, height, width, steps, text_len, batch, guidance_scale.
    """
    resolved = resolve_model(model, config)
    wl = resolve(workload, resolved.default_workload, **overrides)
    d = normalize_dtype(dtype)
    rid = check_run_id(run_id or default_run_id())
    geometry = resolved.adapter.geometry(resolved.config, wl)
    sm = symbolic_model(resolved, d, geometry.dims, cache=cache, replicate=replicate)
    if strict and sm.unmodeled:
        ops = ", ".join(f"{u['op']} (x{u['count']})" for u in sm.unmodeled)
        raise UnmodeledOpError(f"--strict: ops without a rule: {ops}")
    passes = resolved.adapter.passes_per_step(resolved.config, wl)
    return evaluate(sm, wl, geometry, passes, rid, include_nodes=include_nodes)
