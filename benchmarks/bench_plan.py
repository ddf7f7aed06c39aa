"""``fxmeter plan``'s search against pricing each deployment on its own, measured in the same run.

Run from the repository root::

    python benchmarks/bench_plan.py [--model wan2.1-t2v-14b] [--hardware h100,l40s] [--max-gpus 8] [--sample 12]

* ``search``: :func:`fxmeter.advise.planner.search` over the whole space (device x GPUs x parallel plan x
  offload x kernels x compile x step cache / fewer steps), from the shipped traces: seconds, setups priced,
  seconds per setup;
* ``baseline``: ``--sample`` setups drawn from the same space (fixed seed), each priced as ``fxmeter trace``
  with that setup's options prices it (:func:`fxmeter.advise.planner.price_setup`: a request, the stage
  inputs, the estimate, the deployment): seconds per setup.  Every sampled setup's seconds must agree with the
  search's to 1e-9 (the search is exact, not sampled), or the script fails.

Printed: both rates, their ratio (the speed-up of the search per setup) and the search's seconds per 10,000
setups; the script fails when that exceeds 10 s.  Both are measured by wall clock in one process on the same
machine, so the ratio holds on a loaded machine where absolute seconds do not.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="wan2.1-t2v-14b")
    ap.add_argument("--hardware", default="h100,l40s")
    ap.add_argument("--max-gpus", type=int, default=8)
    ap.add_argument("--sample", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from fxmeter.advise.planner import Space, price_setup, search
    from fxmeter.estimate.hardware import get_many

    t0 = time.perf_counter()
    res = search(args.model, space=Space(get_many(args.hardware), args.max_gpus))
    search_s = time.perf_counter() - t0
    n = len(res.rows)
    rng = random.Random(args.seed)
    sample = rng.sample(res.rows, min(args.sample, n))
    t1 = time.perf_counter()
    worst = 0.0
    for r in sample:
        ref = price_setup(args.model, None, r.setup)
        worst = max(worst, abs(ref.seconds - r.seconds) / ref.seconds)
    base_s = (time.perf_counter() - t1) / len(sample)
    per = search_s / n
    doc = {"model": args.model, "hardware": args.hardware, "max_gpus": args.max_gpus, "setups": n,
           "kernel_points": res.kernel_points, "search_seconds": round(search_s, 3),
           "search_seconds_per_setup": per, "baseline_seconds_per_setup": base_s,
           "speedup_per_setup": round(base_s / per, 1), "search_seconds_per_10000": round(per * 10_000, 3),
           "sampled": len(sample), "worst_relative_difference": worst}
    print(json.dumps(doc, indent=2))
    ok = worst <= 1e-9 and per * 10_000 < 10.0
    if not ok:
        print("FAIL: " + ("the search disagrees with the api path" if worst > 1e-9 else
                          f"{per * 10_000:.1f} s per 10,000 setups (target < 10 s)"), file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
