"""Multi-GPU speed benchmark: a warm ``fxmeter trace --gpus 8`` and ``fxmeter scale`` over 4 GPU counts.

Whole processes, medians of ``--reps``; the 14B model comes from the traces shipped in the package
(no trace is made).  Targets (issue 13): a warm multi-GPU report well under 1 s; ``scale`` over 4 GPU
counts under 2 s.

    python benchmarks/bench_gpus.py --reps 5
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = "wan2.1-t2v-14b"
CLI = [sys.executable, "-m", "fxmeter"]


def run(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fxmeter-bench-gpus-"))
    env = dict(os.environ, FXMETER_CACHE_DIR=str(root / "cache"))
    out = ["--output-root", str(root / "out"), "--force"]
    res: dict[str, list[float]] = {"trace": [], "scale": [], "scale_plot": []}
    try:
        run([*CLI, "trace", MODEL, "-w", "720p", "--run-id", "prime", *out], env)  # the first load of the shipped trace
        for i in range(args.reps):
            res["trace"].append(run([*CLI, "trace", MODEL, "-w", "720p", "--hardware", "h800", "--gpus", "8",
                                     "--parallel", "ulysses=8", "--fsdp", "--run-id", f"t{i}", *out], env))
            res["scale"].append(run([*CLI, "scale", MODEL, "-w", "720p", "--hardware", "h100", "--gpus", "1,2,4,8",
                                     "--no-plot", "--run-id", f"s{i}", *out], env))
            res["scale_plot"].append(run([*CLI, "scale", MODEL, "-w", "720p", "--hardware", "h100", "--gpus", "1,2,4,8",
                                          "--run-id", f"p{i}", *out], env))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"fxmeter multi-GPU benchmark: {MODEL} 720p, {args.reps} reps (medians); python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, {platform.machine()}")
    print(f"  warm `fxmeter trace --gpus 8 --parallel ulysses=8 --fsdp --hardware h800`   {med['trace']:6.2f} s")
    print(f"  `fxmeter scale --gpus 1,2,4,8 --hardware h100 --no-plot`                   {med['scale']:6.2f} s")
    print(f"  `fxmeter scale --gpus 1,2,4,8 --hardware h100` (with scale.png)            {med['scale_plot']:6.2f} s")
    print(f"targets: warm multi-GPU report < 1 s: {med['trace'] < 1.0}; scale over 4 counts < 2 s: "
          f"{med['scale_plot'] < 2.0}")


if __name__ == "__main__":
    main()
