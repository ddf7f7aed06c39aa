"""Reports for the top / compare / golden tests (helpers, not tests).

``make_report()`` is a small hand-written report.json document (schema 2) whose numbers
can be checked by hand; ``wan_reports(model)`` traces a real Wan model once per test
process and evaluates every standard workload from that one symbolic model.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from fxmeter.estimate.metrics import Metrics
from fxmeter.report import Report
from fxmeter.report.document import SCHEMA_VERSION

WORKLOADS = ("ci-tiny", "w-002", "w-003", "480p", "720p")

# own (self) cost per module instance: tensor_core_flops, cuda_core_flops, bytes_read, bytes_written
_SELF = {
    "t": (0, 10, 0, 0),
    "t.blocks.N.attn": (100, 5, 40, 20),
    "t.blocks.N.ff.net.0": (0, 7, 8, 8),
    "t.blocks.N.ff.net.2": (50, 0, 30, 10),
    "t.proj_out": (50, 0, 12, 6),
}
_CLASSES = {
    "t": "Toy", "t.blocks": "ModuleList", "t.blocks.N": "Block", "t.blocks.N.attn": "Attention",
    "t.blocks.N.ff": "FeedForward", "t.blocks.N.ff.net": "ModuleList", "t.blocks.N.ff.net.0": "GELU",
    "t.blocks.N.ff.net.2": "Linear", "t.proj_out": "Linear",
}


def metrics_dict(values: list[int] | tuple[int, ...]) -> dict[str, int]:
    """tensor_core_flops, cuda_core_flops, bytes_read, bytes_written -> the report's metrics (``flops`` added)."""
    return Metrics.of(tuple(values)).to_dict()


def make_report(blocks: int = 3, attn_tc: int = 100, run_id: str = "toy") -> dict[str, Any]:
    """A toy report: ``blocks`` blocks of (attn, ff.net.0 GELU, ff.net.2 Linear) and a proj_out.

    Per forward with 3 blocks: tensor-core 3 x (100 + 50) + 50 = 500,
    CUDA-core 10 + 3 x (5 + 7) = 46, bytes read 3 x (40 + 8 + 30) + 12 = 246,
    bytes written 3 x (20 + 8 + 10) + 6 = 120.
    """
    self_cost = dict(_SELF, **{"t.blocks.N.attn": (attn_tc, 5, 40, 20)})
    ids: list[tuple[str, str]] = [("t", "t"), ("t.blocks", "t.blocks")]
    for i in range(blocks):
        for tmpl in ("t.blocks.N", "t.blocks.N.attn", "t.blocks.N.ff", "t.blocks.N.ff.net",
                     "t.blocks.N.ff.net.0", "t.blocks.N.ff.net.2"):
            ids.append((tmpl.replace(".N", f".{i}", 1), tmpl))
    ids.append(("t.proj_out", "t.proj_out"))
    modules = []
    for mid, tmpl in ids:
        own = list(self_cost.get(tmpl, (0, 0, 0, 0)))
        modules.append({
            "id": mid, "parent": mid.rpartition(".")[0] or None, "class": _CLASSES[tmpl], "depth": mid.count("."),
            "parameters": 10 if _CLASSES[tmpl] == "Linear" else 0, "weight_bytes": 20 if _CLASSES[tmpl] == "Linear" else 0,
            "self": metrics_dict(own), "per_forward": metrics_dict(own),
        })
    for m in sorted(modules, key=lambda m: -m["depth"]):  # roll children up into parents
        if m["parent"]:
            p = next(x for x in modules if x["id"] == m["parent"])
            p["per_forward"] = {k: p["per_forward"][k] + v for k, v in m["per_forward"].items()}
    pf = modules[0]["per_forward"]
    cats = {
        "self_attention_core": metrics_dict([blocks * attn_tc, blocks * 5, blocks * 40, blocks * 20]),
        "ffn": metrics_dict([blocks * 50, blocks * 7, blocks * 38, blocks * 18]),
        "head": metrics_dict([50, 0, 12, 6]),
        "modulation": metrics_dict([0, 10, 0, 0]),
    }
    for c in cats.values():
        c["tensor_core_share"] = c["tensor_core_flops"] / (pf["tensor_core_flops"] or 1)
        c["flops_share"] = c["flops"] / (pf["flops"] or 1)

    def node(name: str, target: str, module: str, replicas: int, cost: tuple[int, int, int, int], cat: str) -> dict[str, Any]:
        return {"name": name, "target": target, "module": module, "family": "x", "category": cat,
                "replicas": replicas, "per_forward": metrics_dict(list(cost))}

    nodes = [
        node("add", "aten.add.Tensor", "t", 1, self_cost["t"], "modulation"),
        node("sdpa", "aten.scaled_dot_product_attention.default", "t.blocks.0.attn", blocks,
             self_cost["t.blocks.N.attn"], "self_attention_core"),
        node("gelu", "aten.gelu.default", "t.blocks.0.ff.net.0", blocks, self_cost["t.blocks.N.ff.net.0"], "ffn"),
        node("linear", "aten.linear.default", "t.blocks.0.ff.net.2", blocks, self_cost["t.blocks.N.ff.net.2"], "ffn"),
        node("linear_1", "aten.linear.default", "t.proj_out", 1, self_cost["t.proj_out"], "head"),
    ]
    weights = sum(m["weight_bytes"] for m in modules)
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "tool": {"name": "fxmeter", "fxmeter": "0.0.test", "torch": "x", "diffusers": "y"},
        "model": {"id": f"toy-{blocks}", "diffusers_class": "Toy", "adapter": "toy", "config": {},
                  "config_sha256": f"sha-{blocks}", "config_source": "test", "parameters": 10 * (blocks + 1), "slug": "toy"},
        "workload": {"name": "toy", "frames": 1, "frames_requested": 1, "height": 16, "width": 16, "steps": 2,
                     "text_len": 4, "batch": 1, "guidance_scale": 5.0, "passes_per_step": 2, "latent_shape": [1, 4, 1, 2, 2],
                     "tokens": 1, "dims": {"batch": 1}, "dtype": "bfloat16"},
        "trace": {"mode": "dynamic", "exporter": "torch.export.export(strict=False)", "seconds": 1.234, "cache": "traced",
                  "graph_nodes": 9, "replicated_blocks": {"blocks": blocks}, "symbols": ["batch"],
                  "guards": {"batch": [1, 1024]}, "analysis_schema": 4, "rules": "f00dfeedf00dfeed",
                  "options": {"dtype": "bfloat16", "precision": "bf16", "traffic": "eager", "batched_cfg": False,
                              "hardware": None, "efficiency": None, "full_trace": False}},
        "counting": {},
        "totals": {"per_forward": pf, "per_step": {k: 2 * v for k, v in pf.items()},
                   "end_to_end": {k: 4 * v for k, v in pf.items()}},
        "memory": {"weight_bytes": weights, "weight_bytes_by_dtype": {"bfloat16": weights}, "parameters_by_dtype": {},
                   "activation_peak_bytes": 64, "activation_peak_node": "sdpa", "activation_peak_module": "t.blocks.0.attn",
                   "total_bytes": weights + 64},
        "modules": modules,
        "categories": cats,
        "unmodeled_ops": [],
        "nodes": nodes,
        "notes": ["toy report"],
    }


def with_changes(data: dict[str, Any], **top_level: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    out.update(top_level)
    return out


@functools.cache
def wan_reports(model: str) -> dict[str, Report]:
    """Every standard workload of ``model`` from ONE dynamic trace (about 10 s for the 14B).

    The stages of each workload are fetched with one memo (as ``fxmeter.api.sweep`` does): the
    symbolic model is reused for every workload inside its guards.
    """
    from fxmeter import api
    from fxmeter.estimate.generation import StageInput
    from fxmeter.report.build import build

    memo: dict[tuple[str, int], list[StageInput]] = {}
    out = {}
    for name in reversed(WORKLOADS):  # 720p first: the dynamic trace
        req = api.request(model, name)
        inputs = api.stage_inputs(req, memo=memo)
        out[name] = build(api.estimate_request(req, inputs), model=req.model, workload=req.workload,
                          geometry=req.geometry, run_id=f"test-{name}")
    return {name: out[name] for name in WORKLOADS}
