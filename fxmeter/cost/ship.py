"""Build the symbolic traces shipped inside the package: ``python -m fxmeter.cost.ship``.

For every bundled model (``fxmeter models``) and every component its pipeline loads, this
traces the real class on meta (dynamic shapes where the adapter supports them, else static
at the model's default workload) and writes ``fxmeter/data/traces/<digest>.fxc.xz``: the
store's file format (:mod:`fxmeter.cost.store`), xz-compressed.  The digest holds the
torch/diffusers/transformers versions and the rules fingerprint, so a shipped trace is used
only with the code and versions it was built with; ``tests/test_shipped.py`` re-traces every
model and fails when a shipped file is missing, stale or differs.

Run it after changing a rule, an adapter or the analysis (the test says when).  ``--check``
only reports what is missing or stale.
"""

from __future__ import annotations

import argparse
import lzma
import sys
import time
from pathlib import Path
from typing import Any

from fxmeter.cost import store

TARGET = Path(__file__).resolve().parent.parent / "data" / "traces"


def planned() -> list[tuple[str, Any, str, dict[str, int] | None, bool]]:
    """(model id, component, dtype, static dims or None, dynamic) of every trace to ship."""
    from fxmeter.model.registry import MODELS, resolve_model
    from fxmeter.model.workload import normalize_dtype, resolve

    dtype = normalize_dtype("bf16")
    out: list[tuple[str, Any, str, dict[str, int] | None, bool]] = []
    seen: set[str] = set()
    for mid in MODELS:
        model = resolve_model(mid)
        wl = resolve(None, model.default_workload)
        geometry = model.geometry(wl)
        for plan in model.stages(wl):
            comp = model.component(plan.component)
            dynamic = comp.adapter.supports_dynamic(dict(comp.config))
            dims = None if dynamic else dict(geometry.dims)
            k = store.key(comp, dtype, dims=dims)
            d = store.digest(k)
            if d in seen:
                continue
            seen.add(d)
            out.append((mid, comp, dtype, dims, dynamic))
    return out


def build(target: Path = TARGET, *, check: bool = False, out=sys.stdout) -> int:  # type: ignore[no-untyped-def]
    """Write every planned trace into ``target``; remove files no plan needs.  Returns how many are (or were) stale."""
    target.mkdir(parents=True, exist_ok=True)
    keep: set[str] = set()
    stale = 0
    for mid, comp, dtype, dims, _dynamic in planned():
        k = store.key(comp, dtype, dims=dims)  # type: ignore[arg-type]
        name = store.digest(k) + store.SUFFIX + ".xz"
        keep.add(name)
        path = target / name
        if path.is_file():
            print(f"ok       {mid} {comp.name} -> {name}", file=out)  # type: ignore[attr-defined]
            continue
        stale += 1
        if check:
            print(f"MISSING  {mid} {comp.name} ({'static ' + str(dims) if dims else 'dynamic'})", file=out)  # type: ignore[attr-defined]
            continue
        t0 = time.perf_counter()
        sm = store.trace(comp, dtype, dims)  # type: ignore[arg-type]
        blob = lzma.compress(store.encode(k, sm), preset=9)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(blob)
        tmp.replace(path)
        print(f"traced   {mid} {comp.name} in {time.perf_counter() - t0:.1f} s -> {name} ({len(blob):,} bytes)",  # type: ignore[attr-defined]
              file=out)
    for p in sorted(target.glob("*" + store.SUFFIX + ".xz")):
        if p.name not in keep:
            stale += 1
            print(f"{'STALE  ' if check else 'removed'}  {p.name}", file=out)  # type: ignore[attr-defined]
            if not check:
                p.unlink()
    return stale


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fxmeter.cost.ship", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report missing or stale traces (exit 1 if any)")
    ap.add_argument("--target", type=Path, default=TARGET, help="where the traces go (default: the package's)")
    args = ap.parse_args(argv)
    stale = build(args.target, check=args.check)
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
