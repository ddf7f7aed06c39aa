"""Build the symbolic traces shipped inside the package: ``python -m fxmeter.cost.ship``.

For every bundled model (``fxmeter models``) and every stage of its pipeline (text encoders,
image encoder, VAE encode, transformer(s), VAE decode), this traces the real class on meta as
the stage calls it (dynamic shapes where the adapter supports them, with the symbols it keeps
constant, e.g. a VAE's latent frames, at the default workload; else static at the default
workload) and writes ``fxmeter/data/traces/<digest>.fxc.xz``: the store's file format
(:mod:`fxmeter.cost.store`), xz-compressed.  The digest says what the trace is (class, config,
dtype, stage, torch major.minor); its header lists the files it depends on (library code, the
rules its ops use, adapter, engine), so only the traces whose dependencies changed are traced
again: editing one rule re-ships the graphs that use it, a library upgrade the stages whose code
it changed.  ``tests/test_shipped.py`` fails when a shipped file is missing or stale.

Run it after changing a rule, an adapter or the analysis (the test says when).  ``--check``
only reports what is missing or stale.
"""

from __future__ import annotations

import argparse
import lzma
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fxmeter.cost import store

TARGET = Path(__file__).resolve().parent.parent / "data" / "traces"


@dataclass(frozen=True)
class Planned:
    """One trace to ship: a stage of a bundled model at its default workload."""

    model_id: str
    stage: str
    component: Any  # fxmeter.model.pipeline.Component, with the stage's call as its adapter
    dtype: str
    dims: dict[str, int]  # the stage's symbol values at the default workload
    dynamic: bool
    root: str
    composed: bool = False  # the model for every frame count of a frame-by-frame VAE (fxmeter.cost.compose)

    def fixed(self) -> dict[str, int]:
        return {s: self.dims[s] for s in self.component.adapter.fixed_symbols if s in self.dims}

    def key(self) -> dict[str, Any]:
        if self.composed:
            k = store.composed_key(self.component, self.dtype, self.fixed(), root=self.root)
            assert k is not None
            return k
        if self.dynamic:
            fixed = {s: self.dims[s] for s in self.component.adapter.fixed_symbols if s in self.dims}
            return store.key(self.component, self.dtype, root=self.root, fixed=fixed)
        return store.key(self.component, self.dtype, dims=self.dims, root=self.root)

    def describe(self) -> str:
        if self.composed:
            return f"composed over {store.loop_symbol(self.component, self.fixed())}"
        return f"dynamic, fixed {self.fixed()}" if self.dynamic else f"static {self.dims}"

    def trace(self) -> Any:
        if self.composed:
            return store.compose_traces(self.component, self.dtype, self.fixed(), root=self.root, cache=False)
        if self.dynamic:
            fixed = {s: self.dims[s] for s in self.component.adapter.fixed_symbols if s in self.dims}
            return store.trace(self.component, self.dtype, None, root=self.root, fixed=fixed)
        return store.trace(self.component, self.dtype, self.dims, root=self.root)


def planned(only: tuple[str, ...] = ()) -> list[Planned]:
    """Every stage of every bundled model's pipeline at its default workload, each trace once
    (Wan2.1-14B and -1.3B share one UMT5 trace); ``only``: those models alone."""
    from fxmeter.model.registry import MODELS, resolve_model
    from fxmeter.model.workload import normalize_dtype, resolve

    base = normalize_dtype("bf16")
    out: list[Planned] = []
    seen: set[str] = set()
    for mid in MODELS:
        if only and mid not in only:
            continue
        model = resolve_model(mid)
        wl = resolve(None, model.default_workload)
        geometry = model.geometry(wl)
        for plan in model.stages(wl):
            comp = model.stage_component(plan)
            item = Planned(mid, plan.name, comp, plan.dtype or base, model.stage_dims(plan, geometry),
                           comp.adapter.supports_dynamic(dict(comp.config)), plan.root)
            loop = store.loop_symbol(comp, item.fixed()) if item.dynamic else None
            items = [item]
            if loop is not None:  # a frame-by-frame VAE: the composed model, and the frame counts below its range
                items = [replace(item, composed=True), *(replace(item, dims={**item.dims, loop: t})
                                                         for t in range(1, store.COMPOSE_FROM[0]))]
            for it in items:
                d = store.digest(it.key())
                if d not in seen:
                    seen.add(d)
                    out.append(it)
    return out


def build(target: Path = TARGET, *, check: bool = False, out=sys.stdout,  # type: ignore[no-untyped-def]
          only: tuple[str, ...] = ()) -> int:
    """Write every planned trace into ``target``; remove files no plan needs (never with ``only``:
    the other models' traces are kept).  Returns how many are (or were) stale."""
    target.mkdir(parents=True, exist_ok=True)
    keep: set[str] = set()
    stale = 0
    for item in planned(only):
        k = item.key()
        name = store.digest(k) + store.SUFFIX + ".xz"
        keep.add(name)
        path = target / name
        what = f"{item.model_id} {item.stage}" + (" (any frames)" if item.composed else
                                                  f" ({item.describe()})" if item.dynamic and item.fixed() else "")
        changed = _changed(path, k) if path.is_file() else "missing"
        if changed is None:
            print(f"ok       {what} -> {name} ({path.stat().st_size:,} bytes)", file=out)  # type: ignore[attr-defined]
            continue
        stale += 1
        if check:
            print(f"{'MISSING' if changed == 'missing' else 'STALE  '}  {what} "  # type: ignore[attr-defined]
                  f"({item.describe()}): {changed}", file=out)
            continue
        t0 = time.perf_counter()
        sm = item.trace()
        blob = lzma.compress(store.encode(k, sm), preset=9)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(blob)
        tmp.replace(path)
        print(f"traced   {what} in {time.perf_counter() - t0:.1f} s -> {name} ({len(blob):,} bytes)",  # type: ignore[attr-defined]
              file=out)
    for p in sorted(target.glob("*" + store.SUFFIX + ".xz")):
        if p.name not in keep and not only:
            stale += 1
            print(f"{'STALE  ' if check else 'removed'}  {p.name}", file=out)  # type: ignore[attr-defined]
            if not check:
                p.unlink()
    total = sum(p.stat().st_size for p in target.glob("*" + store.SUFFIX + ".xz"))
    print(f"{len(keep)} traces, {total:,} bytes", file=out)  # type: ignore[attr-defined]
    return stale


def _changed(path: Path, k: dict[str, Any]) -> str | None:
    """None when the shipped file at ``path`` is current for key ``k``, else why not."""
    try:
        blob = lzma.decompress(path.read_bytes())
        header = store.header_of(blob)
    except (OSError, lzma.LZMAError, ValueError) as e:
        return f"unreadable ({e})"
    if header.get("format") != store.FORMAT or header.get("key") != k:
        return "other format or key"
    return store.current(header)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fxmeter.cost.ship", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report missing or stale traces (exit 1 if any)")
    ap.add_argument("--target", type=Path, default=TARGET, help="where the traces go (default: the package's)")
    ap.add_argument("--models", default="", help="comma-separated model ids: ship (or check) only these")
    args = ap.parse_args(argv)
    only = tuple(m for m in args.models.split(",") if m)
    from fxmeter.model.registry import MODELS

    unknown = [m for m in only if m not in MODELS]
    if unknown:
        print(f"error: unknown model(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    stale = build(args.target, check=args.check, only=only)
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
