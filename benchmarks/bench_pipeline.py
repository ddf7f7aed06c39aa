"""Whole-pipeline speed: a warm report of every stage, and a 100-point sweep of the whole pipeline.

Run from the repository root::

    python benchmarks/bench_pipeline.py [--reps 3] [--model wan2.1-t2v-14b]

Each case is a whole process (``sys.executable -m fxmeter``), wall clock, peak RSS from
``os.wait4``, median of ``--reps``.  "Warm" means the traces the command needs are in the
package (shipped) or the user cache: a warm-up run of each command fills the cache first
(for the sweep: one VAE trace per latent-frame count, the VAE's Python frame loop makes the
frame count a constant of its trace), then the timed runs read it.

* ``report``: ``fxmeter trace MODEL --hardware h100`` at the model's default workload: every
  stage (text encoder, transformer, VAE), residency and fit, report.json + summary.md.
* ``report-new-workload``: the same at another resolution (the shipped dynamic traces serve it).
* ``sweep``: ``fxmeter sweep`` over 2 heights x 2 widths x 5 frame counts x 5 step counts = 100
  workloads, whole pipeline, CSV + JSON (no plot).

Targets (issue 12): a warm whole-pipeline report well under 1 s; the 100-point sweep under 3 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-m", "fxmeter"]


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    """(wall seconds, peak RSS in MB) of one whole process; fails loudly on a non-zero exit."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode() if p.stderr else ""
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({code}): {err.strip()}")
    return wall, ru.ru_maxrss // 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--model", default="wan2.1-t2v-14b")
    ap.add_argument("--cache", default=None, help="FXMETER_CACHE_DIR to use (default: a fresh temporary one)")
    args = ap.parse_args()
    out = Path(tempfile.mkdtemp(prefix="fxmeter-bench-pipeline-"))
    env = dict(os.environ, FXMETER_CACHE_DIR=args.cache or str(out / "cache"))
    cases = {
        "report": [*CLI, "trace", args.model, "--hardware", "h100", "--output-root", str(out), "--force",
                   "--run-id", "r"],
        "report-new-workload": [*CLI, "trace", args.model, "--hardware", "h100", "--height", "544", "--width", "960",
                                "--output-root", str(out), "--force", "--run-id", "n"],
        "sweep": [*CLI, "sweep", args.model, "--height", "480,720", "--width", "832,1280", "--frames",
                  "17,33,49,65,81", "--steps", "10,20,30,40,50", "--no-plot", "--output-root", str(out), "--force",
                  "--run-id", "s"],
    }
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs; cache {env['FXMETER_CACHE_DIR']}")
    for name, cmd in cases.items():
        t0 = time.perf_counter()
        run(cmd, env)  # warm-up: fills the cache with whatever the shipped traces do not cover
        warmup = time.perf_counter() - t0
        walls, rss = [], []
        for _ in range(args.reps):
            w, r = run(cmd, env)
            walls.append(w)
            rss.append(r)
        print(f"  {name:<22} {statistics.median(walls):6.2f} s  peak RSS {max(rss):5d} MB   (warm-up {warmup:.1f} s)")
    print("targets: report < 1 s, sweep of 100 workloads < 3 s (warm)")


if __name__ == "__main__":
    main()
