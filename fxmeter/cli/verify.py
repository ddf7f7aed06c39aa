"""``fxmeter verify``: fxmeter's FLOPs against FlopCounterMode, per module and end to end."""

from __future__ import annotations

import re
import sys
from typing import Any

import click

from fxmeter.cli.options import api_kwargs, knob_options, progress_line
from fxmeter.verify.compare import DEVICES, REFERENCES


# -- presentation --------------------------------------------------------------------
def _fmt_err(e: float | None) -> str:
    return "n/a" if e is None else f"{e:.2e}"


def table(layers: dict[str, Any], *, fold: bool = True) -> list[str]:
    """Text rows: module id, analytic, reference, rel err, pass; identical blocks folded."""
    rows = layers["layers"]
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        key = re.sub(r"\.(\d+)(?=\.|$)", ".*", r["id"]) if fold else r["id"]
        groups.setdefault(key, []).append(r)
    lines = [f"{'module (tensor-core FLOPs per forward)':<58} {'analytic':>26} {'reference':>26} {'rel err':>9}  pass"]
    for key, members in groups.items():
        same = len({(m["analytic_flops"], m["reference_flops"], m["pass"]) for m in members}) == 1
        # a folded row shows ONE instance's value, identical in each block (top's folded rows are sums)
        shown = [(f"{key} (each of {len(members)})" if len(members) > 1 else members[0]["id"], members[0])] if same else [(m["id"], m) for m in members]
        for label, r in shown:
            lines.append(
                f"{label:<58} {r['analytic_flops']:>26,} {r['reference_flops']:>26,} {_fmt_err(r['rel_err']):>9}  {'ok' if r['pass'] else 'FAIL'}"
            )
    return lines




@click.command("verify")
@click.argument("model", required=False)
@knob_options("verify")
@click.option("--device", type=click.Choice(DEVICES), default="meta", show_default=True, help="Where FlopCounterMode runs the reference.")
@click.option("--reference", type=click.Choice(REFERENCES), default="eager", show_default=True,
              help="eager: run the module; graph: run the torch.export graph through an fx Interpreter.")
@click.option("--run-id", default=None, help="Run id; an existing report.json of this run is reused.")
@click.option("--tolerance", type=float, default=None, help="Relative tolerance for every scope (default: tolerances.toml, 0.05).")
@click.option("--output-root", default="tmp/profile-output", show_default=True, type=click.Path(), help="Where run folders go.")
@click.option("--all-rows", is_flag=True, help="Print every module instead of folding identical blocks.")
def verify(model: str | None, device: str, reference: str, run_id: str | None, tolerance: float | None,
           output_root: str, all_rows: bool, **kw: Any) -> None:
    """Check fxmeter's FLOPs against FlopCounterMode per module and end to end (exit 1 if the gate fails)."""
    from fxmeter.api import verify as api_verify
    from fxmeter.cli.console import print_then_commit

    opts = api_kwargs("verify", kw)
    written: list[Any] = []

    def console(res: Any, paths: list[Any]) -> None:  # printed before the files are published
        written.append(True)
        print_then_commit(lambda ps: report_lines(res, ps, all_rows))(paths)

    res = api_verify(model, opts.pop("workload"), device=device, reference=reference, run_id=run_id, tolerance=tolerance,
                     output_root=output_root, progress=progress_line, before_commit=console, **opts)
    if not written:
        print_then_commit(lambda ps: report_lines(res, ps, all_rows))([])
    if not res.passed:
        sys.exit(1)


def report_lines(res: Any, paths: list[Any], all_rows: bool) -> list[str]:
    """The console report of a verify result, then a "wrote" line per path."""
    out: list[str] = []
    lay, e2e = res.layers, res.end2end
    out += table(lay, fold=not all_rows)
    for u in lay["unmodeled"]:
        out.append(f"FAIL {u['message']}")
    for r in lay["layers"]:
        if not r["pass"]:
            out.append(f"FAIL {r['id']}: {r['message']}")
    pf, ee = e2e["per_forward"], e2e["end_to_end"]
    from fxmeter.base.units import human

    def flop(n: int) -> str:
        return f"{n:,} ({human(n, 'FLOP')})"

    out.append(f"per forward : analytic {flop(pf['analytic_flops'])} reference {flop(pf['reference_flops'])} "
               f"rel err {_fmt_err(pf['rel_err'])}")
    out.append(
        f"end to end  : analytic {flop(ee['analytic_flops'])} reference {flop(ee['reference_flops'])} rel err {_fmt_err(ee['rel_err'])} "
        f"({e2e.get('forwards_text') or str(e2e['steps']) + ' steps x ' + str(e2e['passes_per_step']) + ' passes'})"
    )
    out.append(f"not compared: cuda_core_flops ({flop(lay['analytic_cuda_core_flops_per_forward'])} per forward in fxmeter); "
               "FlopCounterMode counts them as 0")
    for st in res.stages:
        sl, se = st["layers"], st["end2end"]
        ok = sl["passed"] and se["passed"]
        out.append(f"stage {st['name']} ({st['class']}, {st['dtype']}, x{st['runs']}): {sl['compared']} modules compared "
                   f"on meta ({sl['reference']['mode']}), {sl['failed']} failed, max rel err {_fmt_err(sl['max_rel_err'])}; "
                   f"per run analytic {flop(se['per_forward']['analytic_flops'])} reference "
                   f"{flop(se['per_forward']['reference_flops'])} {'ok' if ok else 'FAIL'}")
        for r in sl["layers"]:
            if not r["pass"]:
                out.append(f"FAIL {r['id']}: {r['message']}")
        for u in sl["unmodeled"]:
            out.append(f"FAIL {u['message']}")
    tol = lay["tolerance"]
    verdict = "PASS" if res.passed else "FAIL"
    out.append(
        f"verify {verdict}: {lay['compared']} modules compared on {lay['device']} ({lay['reference']['mode']}, SDPA {lay['reference']['sdpa_backend']}), "
        f"{lay['failed']} failed, max rel err {_fmt_err(lay['max_rel_err'])} (tolerance layers {tol['layers']:g}, end2end {tol['end2end']:g})"
    )
    out += [f"wrote {p}" for p in paths]
    return out


COMMANDS = (verify,)
