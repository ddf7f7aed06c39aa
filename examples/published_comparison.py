"""Whole-pipeline predictions for the single-GPU Wan rows of examples/published-comparison.md.

    python examples/published_comparison.py

Prints, for each published configuration, fxmeter's whole-generation seconds stage by stage
(predicted: the kernel model; bound: the roofline at 100% of the peaks) with the host<->device
copies of the residency policy, the published time and the peak device memory of that policy.
Nothing here is fitted to the published numbers (``fxmeter validate`` covers every row).
"""

from __future__ import annotations

import json

import fxmeter
from fxmeter.validate import shipped_path

#: (published row id, model, workload knobs, device, offload policy, --t5_cpu)
ROWS = (
    (21, "wan2.1-t2v-14b", {"workload": "720p"}, "h100", "wan", False),
    (13, "wan2.1-t2v-14b", {"workload": "720p"}, "a100", "wan", False),
    (5, "wan2.1-t2v-14b", {"workload": "720p"}, "h20", "wan", False),
    (25, "wan2.1-i2v-14b-720p", {"workload": "i2v-720p"}, "h100", "wan", False),
    (17, "wan2.1-i2v-14b-720p", {"workload": "i2v-720p"}, "a100", "wan", False),
    (9, "wan2.1-i2v-14b-720p", {"workload": "i2v-720p"}, "h20", "wan", False),
    (1, "wan2.1-t2v-1.3b", {"workload": "480p"}, "rtx4090", "wan", True),
    (29, "wan2.2-ti2v-5b", {"workload": "ti2v-720p"}, "rtx4090", "wan", True),
    (62, "wan2.2-t2v-a14b", {"workload": "a14b-720p"}, "h100", "wan", False),
    (59, "wan2.2-t2v-a14b", {"workload": "a14b-720p", "height": 480, "width": 832}, "h100", "wan", False),
)


def main() -> None:
    published = {r["id"]: r for r in json.loads(shipped_path().read_text())["rows"]}
    print("| row | model | device | policy | stages: predicted s | copies s | whole predicted s | whole bound s | "
          "published s | error | peak GiB (stage) |")
    print("|---:|---|---|---|---|---:|---:|---:|---:|---:|---|")
    for rid, model, knobs, device, policy, t5_cpu in ROWS:
        rep = fxmeter.trace(model, **knobs, hardware=device, offload=policy, t5_cpu=t5_cpu, include_nodes=False)
        p = rep.pipeline
        assert p is not None
        parts = ", ".join(f"{s.name} {'host' if s.on_host else format(s.end_to_end.predicted_seconds, ',.1f')}"
                          for s in p.stages)
        pred, measured = p.end_to_end.predicted_seconds, published[rid]["total_s"]
        r = p.residency
        copies = "n/a" if p.transfer_seconds is None else f"{p.transfer_seconds:,.2f}"
        print(f"| {rid} | {model} | {device} | {r['policy']} | {parts} | {copies} | {pred:,.1f} | "
              f"{p.end_to_end.bound_seconds:,.1f} | {measured:,.1f} | {100 * (pred - measured) / measured:+.1f}% | "
              f"{r['peak_bytes'] / 2**30:.1f} ({r['peak_stage']}) |")


if __name__ == "__main__":
    main()
