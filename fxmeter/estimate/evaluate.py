"""Evaluate a symbolic model for one workload -> the report document.

Needs neither torch nor sympy: formulas are compiled to one Python function of
the workload symbols (``fxmeter.formula``).
"""

from __future__ import annotations

from typing import Any

from fxmeter import __version__
from fxmeter.cost.analyze import SCHEMA, SymbolicModel
from fxmeter.cost.formula import compile_table
from fxmeter.cost.traffic import has_fused
from fxmeter.errors import WorkloadError
from fxmeter.model.adapters import Geometry
from fxmeter.model.workload import Workload
from fxmeter.report.document import NOTES, SCHEMA_VERSION, Report, metrics_dict, scale

COUNTING = {
    "flop": "2 x multiply-accumulate (FLOP = 2 MAC), as torch.utils.flop_counter",
    "tensor_core_flops": "matmul, conv and scaled-dot-product attention",
    "cuda_core_flops": "elementwise, norms, softmax, activations, RoPE, casts: per-element costs in rules/",
    "bytes": "logical tensor bytes read and written per op, dtype-aware; views free; attention IO-aware (Q,K,V in, O out)",
    "traffic_model": "eager",
}


def check_guards(sm: SymbolicModel, dims: dict[str, int]) -> list[str]:
    """Symbols whose value lies outside the range the trace is valid for."""
    bad = []
    for s, (lo, hi) in sm.meta.get("guards", {}).items():
        v = dims.get(s)
        if v is not None and not lo <= v <= hi:
            bad.append(f"{s}={v} outside [{lo}, {hi}]")
    if sm.meta.get("mode") == "static":
        want = sm.meta.get("dims", {})
        bad += [f"{s}={dims[s]} != traced {v}" for s, v in want.items() if dims.get(s) != v]
    return bad


def evaluate(
    sm: SymbolicModel,
    wl: Workload,
    geometry: Geometry,
    passes_per_step: int,
    run_id: str,
    *,
    include_nodes: bool = True,
    include_modules: bool = True,
    extra_notes: tuple[str, ...] = (),
    evaluator: Any = None,
    traffic: str = "eager",
) -> Report:
    """The report document for ``wl`` (exact integers throughout); ``traffic``: eager or fused bytes.

    ``include_modules=False`` keeps only the root module row (sweeps need totals only).
    """
    meta = sm.meta
    symbols = list(meta["symbols"])
    bad = check_guards(sm, geometry.dims)
    if bad:
        raise WorkloadError(f"workload outside the traced model's guards: {', '.join(bad)}")
    fn = evaluator or compile_table(sm.formulas, symbols)
    vals: list[int] = fn(**{s: geometry.dims[s] for s in symbols})

    fused = traffic == "fused"
    if fused and not has_fused(sm.nodes):
        raise WorkloadError("this symbolic model has no fused traffic model; rerun with --no-cache")

    def m(idx: list[int], fidx: list[int] | None = None) -> dict[str, int]:
        v = [vals[i] for i in idx]
        if fused and fidx is not None:  # fused traffic: bytes from the fused rows (fxmeter.traffic)
            v[2], v[3] = vals[fidx[0]], vals[fidx[1]]
        return metrics_dict(v)

    def f(idx: list[int]) -> dict[str, str]:
        return {k: sm.formulas[i] for k, i in zip(("tensor_core_flops", "cuda_core_flops", "bytes_read", "bytes_written"), idx)}

    dynamic = meta["mode"] == "dynamic"
    modules = []
    for mod in sm.modules if include_modules else sm.modules[:1]:
        row = {
            "id": mod["id"],
            "parent": mod["parent"],
            "class": mod["class"],
            "depth": mod["depth"],
            "parameters": mod["parameters"],
            "weight_bytes": mod["weight_bytes"],
            "per_forward": m(mod["total"], mod.get("total_fused")),
            "self": m(mod["self"], mod.get("self_fused")),
        }
        if dynamic:
            row["formula"] = f(mod["total"])
        modules.append(row)
    root = modules[0]
    per_forward = root["per_forward"]
    steps = wl.steps
    per_step = scale(per_forward, passes_per_step)
    end_to_end = scale(per_step, steps)

    cat_vals = {k: m(v) for k, v in sm.categories.items()}
    if fused:
        from fxmeter.cost.traffic import category_bytes

        category_bytes(cat_vals, sm.nodes, vals)
    tc_total = per_forward["tensor_core_flops"] or 1
    fl_total = per_forward["flops"] or 1
    categories = {
        k: dict(v, tensor_core_share=v["tensor_core_flops"] / tc_total, flops_share=v["flops"] / fl_total)
        for k, v in sorted(cat_vals.items())
        if any(v.values())
    }

    from fxmeter.cost.liveness import activation_summary

    act = activation_summary(sm.nodes, sm.liveness.get("after_node", []), vals, meta.get("replicas", {}))
    peak_bytes = act["activation_peak_bytes"]
    memory = {
        "weight_bytes": meta["weight_bytes"],
        "weight_bytes_by_dtype": meta["weight_bytes_by_dtype"],
        "parameters_by_dtype": meta["parameters_by_dtype"],
        **{k: v for k, v in act.items() if k != "blocks"},
        "activation_model": "liveness walk over one forward (inference, views share storage); CFG as separate passes",
        "total_bytes": meta["weight_bytes"] + peak_bytes,
    }

    nodes = []
    if include_nodes:
        for n in sm.nodes:
            if n["family"] == "free":
                continue
            row = {k: n[k] for k in ("name", "target", "module", "family", "category", "replicas")}
            row["per_forward"] = m(n["cost"], n.get("fused"))
            nodes.append(row)

    data: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "tool": {"name": "fxmeter", "fxmeter": __version__, "torch": meta["versions"]["torch"], "diffusers": meta["versions"]["diffusers"]},
        "model": {
            "id": meta["model_id"],
            "diffusers_class": meta["diffusers_class"],
            "adapter": meta["adapter"],
            "config": meta["config"],
            "config_sha256": meta["config_sha256"],
            "config_source": meta["config_source"],
            "parameters": root["parameters"],
            "slug": meta["slug"],
        },
        "workload": {
            "name": wl.name,
            "frames": geometry.frames,
            "frames_requested": wl.frames,
            "height": wl.height,
            "width": wl.width,
            "steps": wl.steps,
            "text_len": wl.text_len,
            "batch": wl.batch,
            "guidance_scale": wl.guidance_scale,
            "passes_per_step": passes_per_step,
            "latent_shape": list(geometry.latent_shape),
            "tokens": geometry.tokens,
            "dims": geometry.dims,
            "dtype": meta["dtype"],
        },
        "trace": {
            "mode": meta["mode"],
            "exporter": "torch.export.export(strict=False)",
            "graph_nodes": meta["graph_nodes"],
            "replicated_blocks": meta["replicas"],
            "symbols": symbols,
            "guards": meta.get("guards", {}),
            "seconds": round(meta["seconds"], 3),
            "cache": meta.get("cache", "none"),
            "analysis_schema": SCHEMA,
        },
        "counting": dict(COUNTING, traffic_model=traffic),
        "totals": {"per_forward": per_forward, "per_step": per_step, "end_to_end": end_to_end, "traffic_model": traffic},
        "memory": memory,
        "activation_blocks": act["blocks"],
        "modules": modules,
        "categories": categories,
        "unmodeled_ops": sm.unmodeled,
        "nodes": nodes,
        "notes": list(NOTES) + list(geometry.notes) + list(extra_notes),
    }
    return Report(data)
