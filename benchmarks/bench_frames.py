"""Any frame count, height and width of a bundled model from the shipped traces, from an empty cache.

Run from the repository root::

    python benchmarks/bench_frames.py [--reps 3] [--seed 0]

Side by side, interleaved, each a whole process timed by wall clock, each fxmeter run with an empty
user cache (``FXMETER_CACHE_DIR`` a new folder):

* ``baseline``: benchmarks/baseline_flopcounter.py (import torch + diffusers, build the 14B on meta,
  one forward under FlopCounterMode);
* ``trace``: ``fxmeter trace MODEL --frames F --height H --width W`` for a workload drawn at random
  (frames 4k+1 in [13, 241], height and width multiples of 16 in [256, 1280]) for each bundled
  Wan-family video model (Wan2.1 14B, 1.3B and I2V, Wan2.2 A14B, SkyReels-V2); Wan2.2 TI2V-5B is left out:
  its transformer is a static trace (a new frame count exports it);
* ``sweep``: ``fxmeter sweep wan2.1-t2v-14b --frames 17,33,49,65 --height 480,720 --width 832,1280``
  (4x2x2 = 16 workloads, the whole pipeline).

The Wan VAE's traces compose over the latent frame count (``fxmeter.cost.compose``), so no run may
trace anything (the script fails when stderr says it traced).  Targets (issue 20): a trace <= 1 s and
the sweep <= 3 s on this 2-core machine; reported as ratios to the baseline of the same run as well,
since absolute seconds move with the machine.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = ("wan2.1-t2v-14b", "wan2.1-t2v-1.3b", "wan2.1-i2v-14b-480p", "wan2.2-t2v-a14b", "skyreels-v2-t2v-14b-720p")
SWEEP = ["--frames", "17,33,49,65", "--height", "480,720", "--width", "832,1280"]


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    if "tracing " in p.stderr:
        raise SystemExit(f"{' '.join(cmd)} traced:\n{p.stderr.strip()}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    fx = [sys.executable, "-m", "fxmeter"]
    with tempfile.TemporaryDirectory(prefix="fxmeter-frames-") as tmp:
        root = Path(tmp)
        n = 0

        def env() -> dict[str, str]:
            nonlocal n
            n += 1
            return dict(os.environ, FXMETER_CACHE_DIR=str(root / f"cache-{n}"))

        out = ["--output-root", str(root / "out")]
        base, traces, sweeps = [], [], []
        for i in range(args.reps):
            base.append(timed([sys.executable, str(HERE / "baseline_flopcounter.py")], dict(os.environ)))
            for model in MODELS:
                f, h, w = 4 * rng.randint(3, 60) + 1, 16 * rng.randint(16, 80), 16 * rng.randint(16, 80)
                wall = timed([*fx, "trace", model, "--frames", str(f), "--height", str(h), "--width", str(w),
                              "--run-id", f"t{i}-{model}", *out], env())
                traces.append(wall)
                print(f"rep {i}: fxmeter trace {model} --frames {f} --height {h} --width {w}: {wall:.2f} s")
            sweeps.append(timed([*fx, "sweep", "wan2.1-t2v-14b", *SWEEP, "--run-id", f"s{i}", *out], env()))
            print(f"rep {i}: baseline {base[-1]:.2f} s, sweep 4x2x2 {sweeps[-1]:.2f} s")
        b, t, s = statistics.median(base), max(traces), statistics.median(sweeps)
        print(f"baseline (FlopCounterMode on meta, 14B) median {b:.2f} s")
        print(f"trace, any frames/height/width, empty cache: median {statistics.median(traces):.2f} s, "
              f"slowest {t:.2f} s ({t / b:.3f}x the baseline; target <= 1 s)")
        print(f"sweep 4x2x2 frames x height x width, empty cache: median {s:.2f} s ({s / b:.3f}x; target <= 3 s)")
        if t > 1.0 or s > 3.0:
            raise SystemExit("over target")


if __name__ == "__main__":
    main()
