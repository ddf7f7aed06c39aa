"""report.json's ``plan`` section (``fxmeter plan --write``), typed, and how summary.md shows it.

``fxmeter plan`` searches every deployment of one model and workload (:mod:`fxmeter.advise.planner`) and
prints the Pareto frontier.  With ``--write`` it also writes a run folder: report.json is the report of
the frontier's fastest exact row (what that row's ``fxmeter trace ...`` line writes) with the search as
its ``plan`` section, the same document ``fxmeter plan --json`` prints; summary.md gets a "Plan" section
and report.html a frontier chart (predicted seconds against cost per generation).

Every seconds figure here is ``predicted`` (the kernel model) for the WHOLE generation, as ``plan``
prints it; the cost axis is $ per generation with prices, else GPU-seconds per generation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fxmeter.base.records import Count, Derived, Positive, Ratio, Record, Seconds, key, omit_none

GIB = 2**30


@dataclass(frozen=True)
class PlanRow(Record):
    """One priced setup on the frontier (or among the output-changing rows that beat it)."""

    json_def = "plan_row"
    json_coerce = True
    json_derived = (Derived("peak_gib", Ratio, after="peak_bytes", required=False),)

    seconds: Seconds = field(metadata=key(doc="predicted (kernel model), whole generation, on the row's GPUs"))
    dollars: float | None = field(metadata=key(schema={"minimum": 0}, doc="$ per generation (null without a price)"))
    gpu_seconds: Seconds  # GPUs x seconds per generation
    gpus: Positive
    device: str
    peak_bytes: Count = field(metadata=key(doc="allocated peak per GPU"))
    setup: Mapping[str, Any] = field(metadata=key(doc="the keywords of fxmeter.trace that make this setup"))
    changes_output: tuple[str, ...]
    command: str  # the row's exact `fxmeter trace ...` line
    why: str

    @property
    def peak_gib(self) -> float:
        return self.peak_bytes / GIB

    def cost(self) -> float:
        """The cost axis: $ per generation with a price, else GPU-seconds."""
        return self.gpu_seconds if self.dollars is None else self.dollars


@dataclass(frozen=True)
class PlanInfo(Record):
    """The search of ``fxmeter plan``: how much was priced, the constraints, the frontier, and the fleet."""

    json_doc = ("fxmeter plan --write: every deployment searched; this report is the frontier's fastest row "
                "(the same document as fxmeter plan --json)")
    json_coerce = True

    model: str
    workload: str
    priced: Count  # setups priced exactly
    fit: Count  # of which fit in memory
    meeting_constraints: Count  # of which meet --slo / --budget
    search_seconds: Seconds
    cost_axis: str = field(metadata=key(schema={"enum": ["dollars", "gpu_seconds"]}))  # "dollars" or "gpu_seconds"
    # what the user asked: slo, budget, max_gpus, hardware, exact_only, rate, p95
    constraints: Mapping[str, Any] = field(metadata=key(missing={}, falsy_missing=True))
    frontier: tuple[PlanRow, ...] = field(metadata=key(schema={"minItems": 1}))  # exact: the same output as the default setup
    changes_output: tuple[PlanRow, ...]  # faster or cheaper still, but changing the output
    notes: tuple[str, ...] = field(default=(), metadata=key(falsy_missing=True))
    fleet: Mapping[str, Any] | None = field(default=None, metadata=omit_none())  # --rate: replicas x GPUs x batch (fxmeter.advise.fleet)

    @property
    def priced_axis(self) -> bool:
        return self.cost_axis == "dollars"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _rows_markdown(rows: Sequence[PlanRow], priced: bool) -> list[str]:
    cost = "$/generation" if priced else "GPU-seconds/generation"
    out = [f"| predicted s/generation | {cost} | GPUs | GiB per GPU (allocated) | setup | why |",
           "|---:|---:|---:|---:|---|---|"]
    for r in rows:
        c = f"{r.dollars:,.4f}" if priced and r.dollars is not None else f"{r.gpu_seconds:,.0f}"
        out.append(f"| {r.seconds:,.1f} | {c} | {r.gpus} | {r.peak_bytes / GIB:,.1f} | `{_cell(r.command)}` | "
                   f"{_cell(r.why)} |")
    return out


def markdown(plan: PlanInfo) -> str:
    """summary.md's "Plan" section."""
    cons = ", ".join(f"{k} {v}" for k, v in plan.constraints.items() if v not in (None, False))
    out = ["## Plan: every deployment, searched exactly\n",
           f"`fxmeter plan` priced {plan.priced:,} setups of {plan.model} @ {plan.workload} in "
           f"{plan.search_seconds:.1f} s: {plan.fit:,} fit in memory, {plan.meeting_constraints:,} meet the constraints"
           + (f" ({_cell(cons)})" if cons else "") + ". This report is the frontier's fastest row. Seconds are "
           "predicted (kernel model) for the whole generation on the row's GPUs; "
           + ("cost is $ per generation at the given prices." if plan.priced_axis else
              "no prices were given, so cost is GPU-seconds per generation.") + "\n",
           "### Pareto frontier (same output as the default setup)\n", *_rows_markdown(plan.frontier, plan.priced_axis)]
    if plan.changes_output:
        out += ["\n### Faster or cheaper still, but CHANGING THE OUTPUT\n",
                *_rows_markdown(plan.changes_output, plan.priced_axis)]
    fleet = plan.fleet
    if fleet is not None:
        unit = "$" if fleet.get("cost_unit") == "dollars" else "GPU-hours"
        out.append(f"\n### Fleet for {fleet.get('rate_per_hour', 0):,g} generations per hour"
                   + (f", p95 <= {fleet['p95_target']:g} s" if fleet.get("p95_target") is not None else "") + "\n")
        if fleet.get("impossible"):
            out.append(f"Impossible: {_cell(str(fleet['impossible']))}")
        else:
            out += [f"| replicas | GPUs per replica | batch | utilisation | p95 s | {unit} per 1,000 | command |",
                    "|---:|---:|---:|---:|---:|---:|---|"]
            for o in fleet.get("options") or ():
                out.append(f"| {o['replicas']} | {o['gpus_per_replica']} | {o['batch']} | {100 * o['utilisation']:.0f}% | "
                           f"{o['p95']:,.1f} | {o['cost_per_1000']:,.2f} | `{_cell(str(o['command']))}` |")
            out += [f"- {_cell(str(a))}" for a in fleet.get("assumptions") or ()]
    if plan.notes:
        out.append("")
        out += [f"- {_cell(n)}" for n in plan.notes]
    return "\n".join(out) + "\n"


def chart_rows(plan: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The frontier chart's data (report.html): one point per row, exact and output-changing apart."""
    if not isinstance(plan, Mapping) or not plan.get("frontier"):
        return None
    dollars = plan.get("cost_axis") == "dollars"

    def pts(rows: Any) -> list[dict[str, Any]]:
        out = []
        for r in rows or ():
            if isinstance(r, Mapping):
                cost = r.get("dollars") if dollars else r.get("gpu_seconds")
                out.append({"seconds": r.get("seconds"), "cost": cost, "gpus": r.get("gpus"),
                            "label": str(r.get("command", "")), "why": str(r.get("why", ""))})
        return out

    return {"cost_axis": "$ per generation" if dollars else "GPU-seconds per generation",
            "exact": pts(plan.get("frontier")), "quality": pts(plan.get("changes_output"))}
