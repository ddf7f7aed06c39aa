"""Does ``fxmeter plan`` order published multi-GPU setups as they were measured?

Run from the repository root::

    python benchmarks/plan_vs_published.py [--json]

Every row of ``fxmeter/data/published-timings.json`` that ``fxmeter validate`` can represent is mapped to its
setup by the same code (:func:`fxmeter.validate.scenario`) and priced by the same model the plan's search uses
(:func:`fxmeter.validate.predict`, which is ``fxmeter trace``'s pricing; the search agrees with it to 1e-9,
``tests/test_plan.py``).  Rows are grouped by one model, one device and one workload (source, size, frames,
steps, batch); within a group, every pair of setups where at least one runs on several GPUs is a pair the plan
must order: it is concordant when the predicted seconds order the two setups as the measured seconds do.
Pairs whose measured times are within 2% of each other are counted apart (a tie in the measurement).

Printed: the pairs, the concordant share (acceptance: at least 80%), and each discordant pair.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections import defaultdict
from typing import Any

TIE = 0.02


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from fxmeter.errors import FxmeterError
    from fxmeter.validate import _capabilities, load_rows, predict, read_row, scenario

    rows, _ = load_rows(None)
    caps = _capabilities()
    memo: dict[Any, Any] = {}
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    skipped = 0
    for i, row in enumerate(rows):
        m = read_row(row, i)
        if isinstance(m, str):
            skipped += 1
            continue
        sc = scenario(row, caps, m)
        if isinstance(sc, str):
            skipped += 1
            continue
        key = (m.source, sc.model, sc.kwargs.get("hardware"), m.height, m.width, m.frames, m.steps, m.batch, m.scope)
        groups[key].append({"id": row.get("id", i), "row": row, "sc": sc, "measured": m.measured_s, "n": m.n_gpus})
    pairs = []
    for key, members in groups.items():
        if not any(x["n"] > 1 for x in members):
            continue
        for x in members:
            if "pred" not in x:
                try:
                    x["pred"] = predict(x["sc"], memo)[0]
                except FxmeterError as e:
                    x["pred"] = None
                    x["why"] = str(e)
        for a, b in itertools.combinations(members, 2):
            if a["n"] == 1 and b["n"] == 1:
                continue
            if a.get("pred") is None or b.get("pred") is None:
                continue
            tie = abs(a["measured"] - b["measured"]) <= TIE * max(a["measured"], b["measured"])
            ok = (a["pred"] < b["pred"]) == (a["measured"] < b["measured"])
            pairs.append({"model": key[1], "device": key[2], "a": a["id"], "b": b["id"],
                          "a_gpus": a["n"], "b_gpus": b["n"], "a_measured": a["measured"], "b_measured": b["measured"],
                          "a_predicted": round(a["pred"], 1), "b_predicted": round(b["pred"], 1), "concordant": ok,
                          "measured_tie": tie})
    strict = [p for p in pairs if not p["measured_tie"]]
    share = sum(p["concordant"] for p in strict) / len(strict) if strict else float("nan")
    same = [p for p in strict if p["a_gpus"] == p["b_gpus"]]  # two setups of one GPU count: the harder pairs
    doc = {"same_gpu_count_pairs": len(same), "same_gpu_count_concordant": sum(p["concordant"] for p in same),
           "pairs": len(strict), "measured_ties": len(pairs) - len(strict), "concordant": sum(p["concordant"] for p in strict),
           "concordant_share": share, "groups": sum(1 for g in groups.values() if any(x["n"] > 1 for x in g)),
           "rows_not_represented": skipped, "discordant": [p for p in strict if not p["concordant"]]}
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"{doc['concordant']} of {doc['pairs']} pairs ordered as measured ({share * 100:.1f}%; "
              f"{doc['measured_ties']} measured ties left out) over {doc['groups']} model/device/workload groups; "
              f"pairs of one GPU count: {doc['same_gpu_count_concordant']} of {doc['same_gpu_count_pairs']}")
        for p in doc["discordant"]:
            print(f"  discordant: {p['model']} on {p['device']}: rows {p['a']} ({p['a_gpus']} GPUs, {p['a_measured']} s "
                  f"measured, {p['a_predicted']} s predicted) vs {p['b']} ({p['b_gpus']} GPUs, {p['b_measured']} s, "
                  f"{p['b_predicted']} s)")
    return 0 if strict and share >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
