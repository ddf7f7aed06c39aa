"""Predicted peak memory per GPU vs the published ``peak_mem_gb`` rows (validation only: nothing is fitted).

    python benchmarks/memory_vs_published.py

"before": the residency / deployment fit figure (weights + activations) with diffusers' dtypes, the
stages validate picks; "after": :func:`fxmeter.estimate.memory.predicted_peak` over the whole generation,
``--runtime wan`` (or ``wan-bf16`` with ``--convert_model_dtype``) for rows of Wan's own repository.  The
sources do not say whether ``peak_mem_gb`` is GB or GiB, nor which counter they read, so every
combination is printed.
"""

from __future__ import annotations

import statistics
import sys
from typing import Any

from fxmeter import api, validate
from fxmeter.errors import FxmeterError
from fxmeter.estimate.memory import predicted_peak


def _wan_runtime(row: dict[str, Any]) -> str | None:
    if str(row.get("source_repo", "")).startswith("Wan-Video") or "Wan2.1 Official" in str(row.get("variant")):
        return "wan-bf16" if "convert_model_dtype" in f"{row.get('offload')} {row.get('precision')}" else "wan"
    return None


def main() -> None:
    rows, _ = validate.load_rows(None)
    memo: dict[Any, Any] = {}
    out: list[tuple[Any, dict[str, int], float, str]] = []
    for row in rows:
        if row.get("peak_mem_gb") is None:
            continue
        sc = validate.scenario(row)
        if isinstance(sc, str):
            continue
        got: dict[str, int] = {}
        try:
            req = api.request(sc.model, **sc.kwargs)
            est = api.estimate_request(req, api.stage_inputs(req, memo=memo.setdefault("si", {})))
            got["before"] = (est.deployment.fit.required_bytes if est.deployment is not None
                             else est.devices[0].fit.required_bytes)
            kw = {**sc.kwargs, "stages": "all"}
            rt = _wan_runtime(row)
            if rt:
                kw["runtime"] = rt
            req = api.request(sc.model, **kw)
            pm = predicted_peak(api.estimate_request(req, api.stage_inputs(req, memo=memo["si"])))
        except FxmeterError as e:
            print(row["id"], "refused:", e, file=sys.stderr)
            continue
        got.update(allocated=pm.peak_allocated_bytes, reserved=pm.peak_reserved_bytes, device=pm.peak_device_bytes)
        out.append((row["id"], got, float(row["peak_mem_gb"]),
                    f"{row['model']} {row['variant']} {row['width']}x{row['height']} {row['gpu']} x{row['n_gpus']}"))
    for unit, scale in (("GiB", 2**30), ("GB", 1e9)):
        for key in ("before", "allocated", "reserved", "device"):
            errs = [(g[key] - m * scale) / (m * scale) for _, g, m, _ in out]
            print(f"{key:>9} vs peak_mem_gb read as {unit}: n={len(errs)} median |error| "
                  f"{100 * statistics.median(abs(e) for e in errs):.1f}%, median signed "
                  f"{100 * statistics.median(errs):+.1f}%, mean signed {100 * statistics.mean(errs):+.1f}%")
    print()
    for i, g, m, label in out:
        print(f"{i:>4} {label[:60]:<60} measured {m:7.2f}  before {g['before'] / 2**30:6.1f} GiB  "
              f"allocated {g['allocated'] / 2**30:6.1f}  device {g['device'] / 2**30:6.1f} GiB")


if __name__ == "__main__":
    main()
