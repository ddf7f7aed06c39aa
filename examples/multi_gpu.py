"""Wan2.1-T2V-14B at 720p on 1/2/4/8 GPUs of H800, A800 and H20, beside the times Wan2.1's README publishes.

Prints the markdown tables of examples/multi-gpu/README.md (and Wan2.1-T2V-1.3B at 480p on 1/2/4/8
RTX 4090s, rows 1-4):

    python examples/multi_gpu.py

The plans are the README's (``--dit_fsdp --t5_fsdp --ulysses_size N`` on N > 1 GPUs; one GPU with
``--offload_model True``: this table's one-GPU row runs without it, to compare like with like across GPU
counts; ``fxmeter validate`` prices that row with ``--offload wan``, as published).
The measured rows are ids 5-8, 13-16 and 21-24 of the project's published-timings.json (shipped as
fxmeter/data/published-timings.json).  Nothing is fitted: every predicted number comes from the
shipped kernel (kernels.json) and collective (comms.json) models.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from fxmeter import api
from fxmeter.estimate.deploy import Deployment
from fxmeter.estimate.split import plan_for

#: (device, the README's GPU label, published-timings ids for 1, 2, 4, 8 GPUs)
DEVICES = (("h800", "H800/H100", (21, 22, 23, 24)), ("a800", "A800/A100", (13, 14, 15, 16)), ("h20", "H20", (5, 6, 7, 8)))
COUNTS = (1, 2, 4, 8)
HOPPER = {"h800", "h20"}  # FA3 runs on Hopper only


def measured() -> dict[int, dict[str, Any]]:
    doc = json.loads(resources.files("fxmeter.data").joinpath("published-timings.json").read_text(encoding="utf-8"))
    return {int(r["id"]): r for r in doc["rows"] if isinstance(r.get("id"), int)}


def predictions(device: str, attention: str) -> dict[int, Deployment]:
    """{gpus: deployment}: one single-GPU estimate, one deployment per GPU count (the README's plans)."""
    req = api.request("wan2.1-t2v-14b", "720p", hardware=device, attention=attention)
    est = api.estimate_request(req, api.stage_inputs(req))
    out = {}
    for n in COUNTS:
        plan = plan_for(req.model, req.workload, req.geometry, n, f"ulysses={n}", fsdp=n > 1)
        dep = api.with_plan(req, est, plan).deployment
        assert dep is not None
        out[n] = dep
    return out


def rtx4090(rows: dict[int, dict[str, Any]]) -> None:
    """Wan2.1-T2V-1.3B at 480p on RTX 4090s (PCIe, no GPU P2P): rows 1-4, the plans they state."""
    req = api.request("wan2.1-t2v-1.3b", "480p", hardware="rtx4090")
    est = api.estimate_request(req, api.stage_inputs(req))
    print("| GPUs | plan (published) | fxmeter plan | measured s | predicted s, SDPA/FA2 | ratio | exposed comm s | "
          "memory per GPU (DiT) | measured peak |")
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for rid, n, spec in ((1, 1, "ulysses=1"), (2, 2, "ulysses=2"), (3, 4, "ulysses=4"), (4, 8, "ulysses=1,ring=8")):
        r = rows[rid]
        plan = plan_for(req.model, req.workload, req.geometry, n, spec)
        d = api.with_plan(req, est, plan).deployment
        assert d is not None
        m = float(r["total_s"])
        mem = (d.weight_bytes_per_gpu + d.activation_bytes_per_gpu) / 2**30
        published = r["parallel"] if n > 1 else f"one GPU, {r['offload']}"
        print(f"| {n} | {published} | {plan.spec()} | {m:,.1f} | {d.predicted_seconds:,.1f} | {d.predicted_seconds / m:.2f} | "
              f"{d.exposed_comm_seconds:,.1f} | {mem:.1f} GiB | {r['peak_mem_gb']} GB |")


def main() -> None:
    rows = measured()
    print("| GPU (published) | fxmeter device | GPUs | plan | measured s | predicted s, SDPA/FA2 | ratio | "
          "predicted s, FA3 | ratio | exposed comm s | memory per GPU (DiT) | measured peak |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    ratios = []
    for device, label, ids in DEVICES:
        fa2 = predictions(device, "sdpa")
        fa3 = predictions(device, "fa3") if device in HOPPER else None
        for n, rid in zip(COUNTS, ids):
            r = rows[rid]
            m = float(r["total_s"])
            d2, d3 = fa2[n], (fa3[n] if fa3 else None)
            plan = "one GPU (published with offload)" if n == 1 else f"ulysses={n} + fsdp"
            mem = (d2.weight_bytes_per_gpu + d2.activation_bytes_per_gpu) / 2**30
            fa3_cells = f"{d3.predicted_seconds:,.1f} | {d3.predicted_seconds / m:.2f}" if d3 else "- | -"
            print(f"| {label} | {device} | {n} | {plan} | {m:,.1f} | {d2.predicted_seconds:,.1f} | "
                  f"{d2.predicted_seconds / m:.2f} | {fa3_cells} | {d2.exposed_comm_seconds:,.1f} | {mem:.1f} GiB | "
                  f"{r['peak_mem_gb']} GB |")
        t2, t8 = float(rows[ids[1]]["total_s"]), float(rows[ids[3]]["total_s"])
        ratios.append((label, t2 / t8, fa2[2].predicted_seconds / fa2[8].predicted_seconds,
                       fa3[2].predicted_seconds / fa3[8].predicted_seconds if fa3 else None,
                       (4 * t8 - t2) / 3, fa2[8]))
    print()
    print("| GPU | measured t(2 GPUs) / t(8 GPUs) | predicted, SDPA/FA2 | predicted, FA3 | "
          "fixed seconds if the rest scaled perfectly, (4 t8 - t2) / 3 | predicted efficiency on 8 vs 1 (FA2) |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, mr, p2, p3, fixed, d8 in ratios:
        print(f"| {label} | {mr:.2f} | {p2:.2f} | {'-' if p3 is None else f'{p3:.2f}'} | {fixed:,.1f} | "
              f"{100 * d8.efficiency:.1f}% |")
    print()
    rtx4090(rows)


if __name__ == "__main__":
    main()
