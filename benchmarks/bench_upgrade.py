"""Shipped traces survive a library upgrade that leaves the traced code alone.

Run from the repository root::

    python benchmarks/bench_upgrade.py [--reps 3] [--installed]

Side by side, interleaved, each a whole process timed by wall clock:

* ``baseline``: benchmarks/baseline_flopcounter.py (import torch + diffusers, build the 14B on meta,
  one forward under FlopCounterMode);
* ``upgraded``: ``fxmeter trace wan2.1-t2v-14b -w 720p`` with an empty user cache in an environment
  whose transformers and diffusers report other versions.  Nothing is installed: a folder put first
  on ``PYTHONPATH`` holds ``transformers-<next>.dist-info`` and ``diffusers-<next>.dist-info``
  metadata, so ``importlib.metadata`` sees an upgrade while the code is the one installed (what a
  release that does not touch the traced files is).  ``--installed`` skips the simulation and
  measures the environment as it is (e.g. after ``pip install transformers==5.25.0``).

The shipped traces are keyed by what they depend on (the traced files' code, the rules their ops
use, torch major.minor), not by package versions, so ``upgraded`` reads them all: target <= 0.25x
the baseline.  The script fails when the run re-traced a stage (its stderr names the change).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent


def fake_upgrade(root: Path) -> dict[str, str]:
    """dist-info folders that make importlib.metadata report the next minor version of each package."""
    out = {}
    for pkg in ("transformers", "diffusers"):
        major, minor, *_ = version(pkg).split(".")
        new = f"{major}.{int(minor) + 1}.0"
        info = root / f"{pkg}-{new}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {pkg}\nVersion: {new}\n")
        out[pkg] = new
    return out


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    return wall, p.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--installed", action="store_true", help="measure the installed versions (no simulated upgrade)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fxmeter-upgrade-") as tmp:
        root = Path(tmp)
        env = dict(os.environ)
        env.pop("FXMETER_CACHE_DIR", None)
        if args.installed:
            seen = {p: version(p) for p in ("torch", "diffusers", "transformers")}
        else:
            fake = root / "site"
            seen = dict(fake_upgrade(fake), torch=version("torch"))
            env["PYTHONPATH"] = os.pathsep.join([str(fake), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        check = subprocess.run([sys.executable, "-c", "from importlib.metadata import version as v;"
                                "print(v('transformers'), v('diffusers'))"], env=env, capture_output=True, text=True)
        print(f"environment: {' '.join(f'{k}={v}' for k, v in sorted(seen.items()))} "
              f"(importlib.metadata in the run: transformers, diffusers = {check.stdout.split()})")
        base: list[float] = []
        ours: list[float] = []
        for i in range(args.reps):
            base.append(timed([sys.executable, str(HERE / "baseline_flopcounter.py")], dict(os.environ))[0])
            run_env = dict(env, FXMETER_CACHE_DIR=str(root / f"cache-{i}"))
            wall, err = timed([sys.executable, "-m", "fxmeter", "trace", "wan2.1-t2v-14b", "-w", "720p", "--run-id",
                               f"up{i}", "--output-root", str(root / "out")], run_env)
            if "re-tracing" in err or "tracing " in err:
                raise SystemExit(f"the upgraded run traced again:\n{err.strip()}")
            ours.append(wall)
            print(f"rep {i}: baseline {base[-1]:.2f} s, fxmeter trace (fresh cache, upgraded) {wall:.2f} s")
        b, o = statistics.median(base), statistics.median(ours)
        print(f"median: baseline {b:.2f} s, fxmeter trace {o:.2f} s, ratio {o / b:.3f}x (target <= 0.25x)")
        if o > 0.25 * b:
            raise SystemExit("slower than 0.25x the baseline")


if __name__ == "__main__":
    main()
