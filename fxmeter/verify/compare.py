"""Verify, the pure part: fxmeter's analytic FLOPs against what FlopCounterMode counted.

Only ``tensor_core_flops`` (matmul, conv, attention: what FlopCounterMode sees) are compared;
``cuda_core_flops`` (elementwise, norms, softmax...) are counted by fxmeter but FlopCounterMode
counts them as 0, so they are *not compared* and the files say so.  The tolerances live in
``fxmeter/data/tolerances.toml``.
"""

from __future__ import annotations

import math
import re
import sys
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fxmeter.base import fileio
from fxmeter.errors import VerifyError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - python 3.10
    import tomli as tomllib

if TYPE_CHECKING:
    from fxmeter.model.registry import ResolvedModel

DEVICES = ("meta", "cpu", "cuda")
REFERENCES = ("eager", "graph")
METRIC = "tensor_core_flops"
ROOT = "transformer"
VERIFY_SCHEMA = 1
NOT_COMPARED = (
    "cuda_core_flops (elementwise, norms, softmax, activations, RoPE, casts) are not compared: "
    "FlopCounterMode counts them as 0; only tensor_core_flops (matmul, conv, attention) are compared"
)
_SDPA_BACKENDS = (
    ("_scaled_dot_product_flash_attention", "flash"),
    ("_scaled_dot_product_efficient_attention", "efficient"),
    ("_scaled_dot_product_cudnn_attention", "cudnn"),
)



# -- settings ----------------------------------------------------------------
def load_settings(path: str | Path | None = None) -> dict[str, Any]:
    """The shipped ``tolerances.toml`` (or ``path``) as a dict."""
    try:
        if path is None:
            text = (resources.files("fxmeter.data") / "tolerances.toml").read_text()
        else:
            text = fileio.read_text(path, "tolerance file", limit=fileio.MAX_SETTINGS_BYTES, error=VerifyError)
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise VerifyError(f"tolerance file {path or 'tolerances.toml'} is not valid TOML: {e}") from None


def tolerances(override: float | None = None, settings: dict[str, Any] | None = None) -> dict[str, float]:
    """Per-scope tolerance (``layers``, ``end2end``); ``override`` replaces both."""
    s = settings if settings is not None else load_settings()
    tol = {k: float(s.get("tolerance", {}).get(k, 0.05)) for k in ("layers", "end2end")}
    if override is not None:
        tol = {k: float(override) for k in tol}
    for k, v in tol.items():
        if not math.isfinite(v) or v < 0:
            raise VerifyError(f"tolerance ({k}) must be a finite number >= 0, got {v}")
    return tol


# -- comparison (pure) -------------------------------------------------------
@dataclass(frozen=True)
class Check:
    """One analytic-vs-reference comparison."""

    id: str
    analytic: float
    reference: float
    rel_err: float | None  # None when it cannot be computed (reference 0, non-finite)
    passed: bool
    message: str = ""

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "analytic_flops": self.analytic,
            "reference_flops": self.reference,
            "rel_err": self.rel_err,
            "pass": self.passed,
            "message": self.message,
        }


def compare_values(key: str, analytic: float, reference: float, tolerance: float) -> Check:
    """Relative error ``|analytic - reference| / reference`` against ``tolerance``.

    Reference 0 and analytic 0 passes; reference 0 and analytic > 0 fails;
    a non-finite number fails.
    """
    if not (math.isfinite(analytic) and math.isfinite(reference)):
        return Check(key, analytic, reference, None, False, f"non-finite value (analytic {analytic}, reference {reference})")
    if reference == 0:
        if analytic == 0:
            return Check(key, analytic, reference, 0.0, True)
        return Check(key, analytic, reference, None, False, f"FlopCounterMode counts 0 here but fxmeter counts {analytic:,}")
    err = abs(analytic - reference) / abs(reference)
    ok = err <= tolerance
    msg = "" if ok else f"relative error {err:.4g} > tolerance {tolerance:g}"
    return Check(key, analytic, reference, err, ok, msg)


@dataclass
class Reference:
    """What FlopCounterMode counted: inclusive FLOPs per fxmeter module id, per op."""

    total: int
    modules: dict[str, int]
    ops: dict[str, dict[str, int]]  # module id -> op -> FLOPs (inclusive)
    device: str
    device_name: str
    mode: str  # eager | graph
    sdpa_backend: str
    torch_version: str
    notes: list[str] = field(default_factory=list)


def _self_flops(module_id: str, inclusive: dict[str, int]) -> int:
    """Own FLOPs of ``module_id``: inclusive minus its direct children's inclusive."""
    prefix = module_id + "."
    children = [k for k in inclusive if k.startswith(prefix) and "." not in k[len(prefix) :]]
    return inclusive.get(module_id, 0) - sum(inclusive[c] for c in children)


def compare(data: dict[str, Any], ref: Reference, tol: dict[str, float]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(layers document, end2end document) for a report ``data`` and a :class:`Reference`."""
    analytic = {m["id"]: m["per_forward"][METRIC] for m in data["modules"]}
    analytic_self = {m["id"]: m["self"][METRIC] for m in data["modules"]}
    unmodeled: dict[str, list[str]] = defaultdict(list)  # module id -> ops without a rule
    for u in data.get("unmodeled_ops", []):
        for mid in u["modules"]:
            unmodeled[mid].append(u["op"])

    # containers whose forward never runs (ModuleList, Sequential used by index) are invisible to
    # FlopCounterMode's module tracker: their reference is the sum of their children's
    children: dict[str, list[str]] = defaultdict(list)
    for m in data["modules"]:
        if m["parent"] is not None:
            children[m["parent"]].append(m["id"])
    reference: dict[str, int] = dict(ref.modules)
    derived: set[str] = set()

    def ref_of(mid: str) -> int:
        if mid not in reference:
            reference[mid] = sum(ref_of(c) for c in children.get(mid, []))
            derived.add(mid)
        return reference[mid]

    for m in data["modules"]:
        ref_of(m["id"])
    order = {m["id"]: i for i, m in enumerate(data["modules"])}
    nonzero = {k for k, v in analytic.items() if v} | {k for k, v in reference.items() if v}
    ids = sorted(nonzero, key=lambda k: (order.get(k, len(order)), _natural(k)))  # the report's module order
    checks: list[Check] = []
    for mid in ids:
        a, r = analytic.get(mid, 0), reference.get(mid, 0)
        c = compare_values(mid, a, r, tol["layers"])
        extra = []
        if mid in derived and r:
            extra.append("reference = sum of children (container not called by forward)")
        if mid not in analytic:
            extra.append("module not in the fxmeter report")
        near = [op for k, ops in unmodeled.items() if k == mid or k.startswith(mid + ".") for op in ops]
        if near and not c.passed:
            extra.append("fxmeter has no rule for " + ", ".join(sorted(set(near))))
        if not c.passed and r:
            extra.append("FlopCounterMode ops: " + ", ".join(f"{op} {n:,}" for op, n in sorted(ref.ops.get(mid, {}).items())))
        if extra:
            c = Check(c.id, c.analytic, c.reference, c.rel_err, c.passed, "; ".join([c.message, *extra]).strip("; "))
        checks.append(c)

    # an op without a rule where FlopCounterMode counts FLOPs fails by name, whatever its size
    unmodeled_rows = []
    for mid, ops in sorted(unmodeled.items()):
        r_self = _self_flops(mid, reference)
        a_self = analytic_self.get(mid, 0)
        if r_self > a_self:
            unmodeled_rows.append(
                {
                    "id": mid,
                    "ops": sorted(set(ops)),
                    "analytic_self_flops": a_self,
                    "reference_self_flops": r_self,
                    "pass": False,
                    "message": f"unmodeled op(s) {', '.join(sorted(set(ops)))} in {mid}: fxmeter counts {a_self:,} "
                    f"own tensor-core FLOPs there, FlopCounterMode {r_self:,}",
                }
            )

    finite = [c.rel_err for c in checks if c.rel_err is not None]
    max_err: float | None = max(finite) if finite else 0.0
    if any(c.rel_err is None and not c.passed for c in checks):
        max_err = None  # an error that cannot be a number (reference 0, non-finite)
    passed = all(c.passed for c in checks) and not unmodeled_rows
    wl = data["workload"]
    common = {
        "schema_version": VERIFY_SCHEMA,
        "run_id": data["run_id"],
        "model": data["model"]["id"],
        "workload": wl,
        "device": ref.device,
        "device_name": ref.device_name,
        "reference": {
            "tool": "torch.utils.flop_counter.FlopCounterMode",
            "mode": ref.mode,
            "sdpa_backend": ref.sdpa_backend,
            "torch": ref.torch_version,
            "ops": ref.ops.get("Global", {}),
        },
        "tolerance": tol,
        "compared_metric": METRIC,
        "not_compared": NOT_COMPARED,
        "analytic_cuda_core_flops_per_forward": data["totals"]["per_forward"]["cuda_core_flops"],
        "notes": list(ref.notes),
    }
    layers = dict(
        common,
        layers=[c.row() for c in checks],
        unmodeled=unmodeled_rows,
        compared=len(checks),
        failed=sum(not c.passed for c in checks) + len(unmodeled_rows),
        max_rel_err=max_err,
        passed=passed,
    )
    k, runs_text = forwards_of_this_forward(data)
    pf_a = data["totals"]["per_forward"][METRIC]
    pf = compare_values("per_forward", pf_a, ref.total, tol["end2end"])
    e2e = compare_values("end_to_end", pf_a * k, ref.total * k, tol["end2end"])
    end2end = dict(
        common,
        steps=wl["steps"],
        passes_per_step=wl["passes_per_step"],
        forwards=k,
        forwards_text=runs_text,
        per_forward=pf.row(),
        end_to_end=e2e.row(),
        rel_err=e2e.rel_err,
        passed=pf.passed and e2e.passed,
    )
    return layers, end2end


def forwards_of_this_forward(data: Mapping[str, Any]) -> tuple[int, str]:
    """How many times a generation runs the forward ``verify`` compared, and those words.

    With a pipeline, the runs of its ``transformer`` stage: a denoiser split into stages of different forwards
    (Wan2.2's second expert, Lumina-Image-2.0's unconditional pass, LTX-2's STG and modality passes) has each
    other stage verified on its own line, so steps x passes x this forward would count them at this forward's
    cost.  Without one (a bare transformer config), steps x passes.
    """
    wl = data["workload"]
    stages = [st for st in (data.get("pipeline") or {}).get("stages") or () if st.get("denoiser")]
    main = next((st for st in stages if st.get("name") == "transformer"), None)
    if main is None:
        return int(wl["steps"]) * int(wl["passes_per_step"]), f"{wl['steps']} steps x {wl['passes_per_step']} passes"
    others = [f"{st['name']} x{st['runs']}" for st in stages if st is not main]
    text = f"transformer x{main['runs']} forwards" + (f"; {', '.join(others)}: stages of their own" if others else "")
    return int(main["runs"]), text


def _natural(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


#: resident memory of the process before the model is built (python, torch, diffusers), measured
CPU_BASE_BYTES = 1 << 29


def cpu_estimate(data: dict[str, Any]) -> tuple[int, int]:
    """(tensor-core FLOPs, peak bytes) of one ``--device cpu`` reference forward of report ``data``.

    Peak bytes: the weights as built (the report's weight bytes: parameters and persistent
    buffers in the deployment dtype; ``build_on_device`` initialises them in that dtype), the
    activation peak of the liveness walk, the math SDPA backend's score and probability
    matrices of *one* attention call (it materialises ``B x H x Lq x Lk`` per call, in fp32 at
    worst; calls run one after another), and the interpreter with torch and diffusers loaded.
    """
    flops = int(data["totals"]["per_forward"][METRIC])
    wl = data["workload"]
    heads = int(data["model"]["config"].get("num_attention_heads", 1))
    attn = 2 * 4 * int(wl["batch"]) * heads * int(wl["tokens"]) ** 2
    mem = int(data["memory"]["weight_bytes"]) + int(data["memory"]["activation_peak_bytes"]) + attn + CPU_BASE_BYTES
    return flops, mem


def check_cpu_budget(data: dict[str, Any], settings: dict[str, Any]) -> None:
    """Refuse a ``--device cpu`` run that would take too long or too much memory (:func:`cpu_estimate`)."""
    cpu = settings.get("cpu", {})
    max_gflop, max_gib = float(cpu.get("max_gflop", 5000)), float(cpu.get("max_gib", 8))
    flops, mem = cpu_estimate(data)
    if flops > max_gflop * 1e9 or mem > max_gib * 2**30:
        raise VerifyError(
            f"--device cpu is for small configs: this needs {flops / 1e9:,.1f} GFLOP and ~{mem / 2**30:,.2f} GiB per forward "
            f"(budget {max_gflop:g} GFLOP, {max_gib:g} GiB in tolerances.toml); use --device meta, --device cuda or a smaller --config/workload"
        )


#: report options (``trace.options``) under which the report's tensor-core FLOPs are not the
#: ones verify's reference counts, with why.  The others (precision, traffic, hardware,
#: efficiency, full_trace) change times, bytes or weight memory, never tensor-core FLOPs per
#: forward, so a report traced with them is verified as it is.
NUMBER_CHANGING = {
    "batched_cfg": "--batched-cfg (one pass of 2x the batch: every module's per-forward FLOPs double)",
}


def check_same(data: dict[str, Any], resolved: ResolvedModel, wl: Any, dtype: str, dims: dict[str, int], where: Path) -> None:
    """A reused report must describe this model, workload, dtype and the options verify runs with."""
    got = data["workload"]
    diffs = []
    if data["model"].get("config_sha256") != resolved.config_sha256:
        diffs.append(f"model {data['model'].get('id')} (another config)")
    if got.get("dims") != dims:
        diffs.append(f"workload dims {got.get('dims')}")
    if got.get("dtype") != dtype:
        diffs.append(f"dtype {got.get('dtype')}")
    if (got.get("steps"), got.get("guidance_scale")) != (wl.steps, wl.guidance_scale):
        diffs.append(f"steps {got.get('steps')} / guidance {got.get('guidance_scale')}")
    options = dict(data.get("trace", {}).get("options") or {})
    options.setdefault("batched_cfg", got.get("cfg") == "batched")  # reports written before trace.options
    for key, what in NUMBER_CHANGING.items():
        if options.get(key):
            diffs.append(what)
    if diffs:
        raise VerifyError(f"{where / 'report.json'} is for {', '.join(diffs)}, not this run; choose another --run-id")

