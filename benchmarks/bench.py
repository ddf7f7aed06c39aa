"""fxmeter speed benchmark: cold, warm and sweep against the FlopCounterMode baseline.

Run from the repository root::

    python benchmarks/bench.py [--reps 3]

Every case is a whole process (``sys.executable``), timed by wall clock, with its
peak RSS from ``os.wait4``.  Cold runs get a fresh empty ``FXMETER_CACHE_DIR`` and
are interleaved with the baseline so both see the same machine load.  Cases:

* ``shipped``: ``fxmeter trace -w 720p`` with an empty user cache: the symbolic trace
  shipped in the package serves it (what a fresh install sees).
* ``cold``: the same with ``--no-cache``: the real torch.export of the 14B transformer,
  text encoder and VAE on meta, rules, report (what a model without a shipped trace costs).
* ``warm``: a new workload of the cached model; ``warm_report``: the python API only;
  ``sweep``: 100 workloads.

Medians of ``--reps`` repetitions; the ratios are against the baseline measured in the same run.
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

HERE = Path(__file__).resolve().parent
MODEL = "wan2.1-t2v-14b"
CLI = [sys.executable, "-m", "fxmeter"]


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    """(wall seconds, peak RSS in MB) of one whole process; fails loudly on a non-zero exit."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode() if p.stderr else ""
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {err.strip()}")
    return wall, ru.ru_maxrss // 1024


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fxmeter-bench-"))
    base_env = dict(os.environ)
    res: dict[str, list[tuple[float, int]]] = {"baseline": [], "shipped": [], "cold": [], "warm": [],
                                                "warm_report": [], "sweep": []}
    try:
        cache = root / "cache-0"
        for i in range(args.reps):
            res["baseline"].append(run([sys.executable, str(HERE / "baseline_flopcounter.py")], base_env))
            cache = root / f"cache-{i}"
            env = dict(base_env, FXMETER_CACHE_DIR=str(cache))
            res["shipped"].append(run([*CLI, "trace", MODEL, "-w", "720p", "--run-id", f"shipped{i}",
                                       "--output-root", str(root / "out")], env))
            res["cold"].append(run([*CLI, "trace", MODEL, "-w", "720p", "--no-cache", "--run-id", f"cold{i}",
                                    "--output-root", str(root / "out")], env))
        env = dict(base_env, FXMETER_CACHE_DIR=str(cache))
        sweep = [*CLI, "sweep", MODEL, "--height", "480,720", "--width", "832,1280", "--frames", "17,33,49,65,81",
                 "--steps", "10,20,30,40,50", "--output-root", str(root / "out")]
        # a warm-up sweep (the VAE is composed over the frame count and shipped, so it traces nothing now;
        # it warms the OS file cache as a user's first sweep would); benchmarks/bench_frames.py times the
        # empty-cache case
        run([*sweep, "--run-id", "sweep-warmup"], env)
        for i in range(args.reps):
            # a new workload of the cached model (a new size: the transformer's and VAE's shipped dynamic traces)
            res["warm"].append(run([*CLI, "trace", MODEL, "-w", "480p", "--height", str(496 + 16 * i),
                                    "--run-id", f"warm{i}", "--output-root", str(root / "out")], env))
            code = (
                "import fxmeter, pathlib\n"
                f"r = fxmeter.trace({MODEL!r}, workload='480p', width={848 + 16 * i}, run_id='wr{i}')\n"
                "assert r['trace']['cache'] in ('cache', 'shipped'), r['trace']['cache']\n"
                f"pathlib.Path({str(root / f'warm{i}.json')!r}).write_bytes(r.to_json())\n"
            )
            res["warm_report"].append(run([sys.executable, "-c", code], env))
            res["sweep"].append(run([*sweep, "--run-id", f"sweep{i}"], env))
        code = (f"import sys, fxmeter; fxmeter.trace({MODEL!r}, workload='480p', run_id='imp'); "
                "print(','.join(m for m in ('torch', 'diffusers', 'sympy', 'networkx') if m in sys.modules))")
        heavy = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                               check=True).stdout.strip()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    base = med([w for w, _ in res["baseline"]])
    print(f"fxmeter benchmark: {MODEL}, {args.reps} reps (medians); python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, {platform.machine()}")
    try:
        from importlib.metadata import version

        print(f"torch {version('torch')}, diffusers {version('diffusers')}")
    except Exception:  # pragma: no cover
        pass
    rows = [
        ("baseline (import torch+diffusers, 14B on meta, FlopCounterMode forward)", "baseline", None),
        ("fresh `fxmeter trace -w 720p` (empty cache: shipped traces)", "shipped", "shipped/baseline"),
        ("cold  `fxmeter trace -w 720p --no-cache` (every stage torch.export-ed)", "cold", "cold/baseline"),
        ("warm  `fxmeter trace -w 480p --height N` (new workload, default: no charts)", "warm", None),
        ("warm  report.json only (fxmeter.trace + to_json, new workload)", "warm_report", None),
        ("sweep `fxmeter sweep` 100 points, whole pipeline (CSV+JSON+PNG; after a warm-up)", "sweep", None),
    ]
    for label, key, ratio in rows:
        w = med([x for x, _ in res[key]])
        rss = max(r for _, r in res[key])
        extra = f"  ratio {w / base:.2f}" if ratio else ""
        print(f"  {label:<74} {w:6.2f} s  peak RSS {rss:4d} MB{extra}")
    print(f"  warm path heavy imports: {heavy or 'none'}")
    shipped = med([x for x, _ in res["shipped"]])
    print("targets: shipped/baseline <= 1.0: {}; shipped RSS <= 600 MB: {}; warm <= 1.0 s: {} (report only: {}); "
          "sweep <= 2.0 s: {}".format(
              shipped / base <= 1.0, max(r for _, r in res["shipped"]) <= 600, med([x for x, _ in res["warm"]]) <= 1.0,
              med([x for x, _ in res["warm_report"]]) <= 1.0, med([x for x, _ in res["sweep"]]) <= 2.0))


if __name__ == "__main__":
    main()
