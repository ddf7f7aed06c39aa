"""Verify: fxmeter's analytic FLOPs against FlopCounterMode on the same model and workload.

The analytic side is a fxmeter report (traced now, or the report.json already in
the run folder).  The reference side runs the *same* diffusers model (every
block, the same dtype policy) on the same workload inputs under
``torch.utils.flop_counter.FlopCounterMode``:

* ``meta``: meta tensors (no data, no weights); full size in seconds on any machine.
* ``cpu``: real random-weight tensors, math SDPA backend forced (FlopCounterMode
  does not count ``_scaled_dot_product_flash_attention_for_cpu``); small
  configs and workloads only (budgets in ``fxmeter/data/tolerances.toml``).
* ``cuda``: real random-weight tensors on a GPU, with whatever SDPA backend
  torch picks (FlopCounterMode counts flash, efficient and cuDNN attention).

``reference="graph"`` runs the exported graph itself (``torch.export`` on the
target device, then ``ep.module()`` through a :class:`torch.fx.Interpreter`) and
attributes each node's counted FLOPs to its ``nn_module_stack`` module, so the
literally-same graph is checked; ``"eager"`` (default) runs the module.

Only ``tensor_core_flops`` (matmul, conv, attention: what FlopCounterMode sees)
are compared; ``cuda_core_flops`` (elementwise, norms, softmax...) are counted by
fxmeter but FlopCounterMode counts them as 0, so they are *not compared* and the
files say so.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from fxmeter.base import fileio as fileio
from fxmeter.errors import OutputExistsError, VerifyError
from fxmeter.report.document import Report, check_run_id, check_writable, write_files

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - python 3.10
    import tomli as tomllib

if TYPE_CHECKING:
    import torch

    from fxmeter.model.registry import ResolvedModel

LOG = logging.getLogger(__name__)

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
    k = int(wl["steps"]) * int(wl["passes_per_step"])
    pf_a = data["totals"]["per_forward"][METRIC]
    pf = compare_values("per_forward", pf_a, ref.total, tol["end2end"])
    e2e = compare_values("end_to_end", pf_a * k, ref.total * k, tol["end2end"])
    end2end = dict(
        common,
        steps=wl["steps"],
        passes_per_step=wl["passes_per_step"],
        per_forward=pf.row(),
        end_to_end=e2e.row(),
        rel_err=e2e.rel_err,
        passed=pf.passed and e2e.passed,
    )
    return layers, end2end


def _natural(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


# -- the reference run ---------------------------------------------------------
def _map_key(key: str, root_class: str) -> str:
    """FlopCounterMode's ``WanTransformer3DModel.blocks.0.attn1`` -> ``transformer.blocks.0.attn1``."""
    if key == root_class:
        return ROOT
    if key.startswith(root_class + "."):
        return ROOT + key[len(root_class) :]
    return key  # "Global" and anything outside the model


def _op_name(op: Any) -> str:
    return str(getattr(op, "_qualified_op_name", None) or op).replace("::", ".")


def _backend(ops: dict[str, int], device: str) -> str:
    found = [name for pat, name in _SDPA_BACKENDS if any(pat in op for op in ops)]
    if found:
        return "+".join(found)
    return "math" if device != "meta" else "math (meta dispatch)"


def build_on_device(resolved: ResolvedModel, dtype: str, device: str) -> torch.nn.Module:
    """The full model with random weights on ``device`` (meta: no weights), deployment dtype policy."""
    import torch

    from fxmeter.model.capture import DTYPES, apply_dtype_policy, build_model, import_class

    if device == "meta":
        return build_model(resolved.config, dtype)
    cls = import_class(resolved.config["_class_name"])
    cfg = {k: v for k, v in resolved.config.items() if not k.startswith("_")}
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # weights initialised in the deployment dtype (no fp32 copy of the whole model: half the peak memory);
        # buffers (RoPE tables) computed on the device in the dtypes the class asks for
        torch.set_default_dtype(DTYPES[dtype])
        try:
            with torch.device(device):
                model = cls.from_config(cfg)
        finally:
            torch.set_default_dtype(default)
    apply_dtype_policy(model, DTYPES[dtype])
    model.eval()
    return model  # type: ignore[no-any-return]


def device_inputs(resolved: ResolvedModel, dims: dict[str, int], dtype: str, device: str) -> dict[str, Any]:
    """The adapter's forward inputs, as random tensors on ``device`` (meta stays meta)."""
    import torch

    from fxmeter.model.capture import DTYPES

    meta = resolved.adapter.inputs(resolved.config, dims, DTYPES[dtype])
    if device == "meta":
        return meta
    gen = torch.Generator().manual_seed(0)
    out: dict[str, Any] = {}
    for k, v in meta.items():
        if isinstance(v, torch.Tensor):
            t = torch.randn(v.shape, generator=gen, dtype=torch.float32)
            if v.ndim == 1:  # timesteps: scheduler values in [0, 1000)
                t = torch.rand(v.shape, generator=gen) * 999
            out[k] = t.to(device=device, dtype=v.dtype)
        else:
            out[k] = v
    return out


def _sdpa_context(device: str) -> Any:
    import contextlib

    if device != "cpu":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(SDPBackend.MATH)


def _ancestors(path: str) -> list[str]:
    parts = path.split(".") if path else []
    return [ROOT] + [ROOT + "." + ".".join(parts[: i + 1]) for i in range(len(parts))]


def run_reference(
    resolved: ResolvedModel,
    dims: dict[str, int],
    dtype: str,
    device: str,
    mode: str = "eager",
) -> Reference:
    """Run the full model (or its exported graph) under FlopCounterMode; counts per module id."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = build_on_device(resolved, dtype, device)
    kwargs = device_inputs(resolved, dims, dtype, device)
    root_class = type(model).__name__
    notes = []
    if device == "cpu":
        notes.append("math SDPA backend forced (FlopCounterMode does not count _scaled_dot_product_flash_attention_for_cpu)")
    if device != "meta":
        notes.append("random weights (torch.manual_seed(0)); FLOPs do not depend on values")
    modules: dict[str, int] = {}
    ops: dict[str, dict[str, int]] = {}
    with torch.no_grad(), _sdpa_context(device):
        if mode == "eager":
            with FlopCounterMode(display=False) as fc:
                model(**kwargs)
            for key, per_op in fc.get_flop_counts().items():
                mid = _map_key(key, root_class)
                ops[mid] = {_op_name(o): int(n) for o, n in sorted(per_op.items(), key=lambda kv: _op_name(kv[0]))}
                modules[mid] = sum(ops[mid].values())
            total = int(fc.get_total_flops())
        else:
            modules, ops, total = _run_graph(model, kwargs)
            notes.append("reference ran the torch.export graph (ep.module()) through torch.fx.Interpreter, FLOPs per node's nn_module_stack")
    ops.setdefault("Global", {})
    modules.pop("Global", None)
    if device == "cuda":
        torch.cuda.synchronize()
        name = torch.cuda.get_device_name()
    else:
        name = device
    return Reference(total, modules, ops, device, name, mode, _backend(ops["Global"], device), torch.__version__, notes)


def _run_graph(model: torch.nn.Module, kwargs: dict[str, Any]) -> tuple[dict[str, int], dict[str, dict[str, int]], int]:
    """Export ``model`` on its device and run the graph node by node under FlopCounterMode."""
    import torch
    from torch import fx
    from torch.utils import _pytree as pytree
    from torch.utils.flop_counter import FlopCounterMode

    from fxmeter.model.capture import _innermost

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep = torch.export.export(model, (), kwargs, strict=False)
    gm = ep.module()
    flat = [x for x in pytree.tree_leaves(((), kwargs))]
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != len(flat):  # constants (return_dict=False) are not graph inputs
        flat = [x for x in flat if isinstance(x, torch.Tensor)]

    modules: dict[str, int] = defaultdict(int)
    ops: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    class Counting(fx.Interpreter):
        def run_node(self, n: fx.Node) -> Any:
            before = {k: int(v) for k, v in fc.flop_counts["Global"].items()}
            out = super().run_node(n)
            after = fc.flop_counts["Global"]
            for op, v in after.items():
                d = int(v) - before.get(op, 0)
                if d:
                    for mid in _ancestors(_innermost(n)) + ["Global"]:
                        modules[mid] += d
                        ops[mid][_op_name(op)] += d
            return out

    with FlopCounterMode(display=False) as fc:
        Counting(gm).run(*flat)
    total = int(fc.get_total_flops())
    return dict(modules), {k: dict(sorted(v.items())) for k, v in ops.items()}, total


# -- the command's library function ------------------------------------------------
@dataclass
class VerifyResult:
    layers: dict[str, Any]
    end2end: dict[str, Any]
    report: Report
    out_dir: Path
    files: list[Path] = field(default_factory=list)
    traced: bool = True

    @property
    def passed(self) -> bool:
        return bool(self.layers["passed"] and self.end2end["passed"])


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


#: The named keywords of :func:`verify` (besides the workload knobs).
VERIFY_KEYWORDS = ("model", "workload", "device", "reference", "config", "dtype", "run_id", "tolerance",
                   "output_root", "cache", "write")


def verify(
    model: str | None = None,
    workload: str | None = None,
    *,
    device: str = "meta",
    reference: str = "eager",
    config: str | Path | None = None,
    dtype: str = "bf16",
    run_id: str | None = None,
    tolerance: float | None = None,
    output_root: str | Path = "tmp/profile-output",
    cache: bool = True,
    write: bool = True,
    **overrides: Any,
) -> VerifyResult:
    """Trace (or reuse the run's report.json), run FlopCounterMode, compare, write verify/*.json.

    Args:
        model: a registered model id, or None with ``config``.
        workload: a preset name; the model's default when None.
        device: where the reference runs: ``meta``, ``cpu`` or ``cuda``.
        reference: ``eager`` (the module) or ``graph`` (the exported graph through an fx Interpreter).
        config: a local diffusers config.json.
        dtype: parameter dtype (bf16, fp16, fp32).
        run_id: the run folder; its report.json is reused when it exists.
        tolerance: overrides both scopes of ``tolerances.toml``.
        output_root: where run folders go.
        cache: use the trace cache when tracing.
        write: write report.json (if traced now) and verify/layers.json, verify/end2end.json.
        **overrides: workload knobs (frames, height, width, steps, text_len, batch, guidance_scale).
    """
    from fxmeter.errors import check_keywords
    from fxmeter.model.workload import OVERRIDABLE

    check_keywords(overrides, (*VERIFY_KEYWORDS, *OVERRIDABLE), "fxmeter.verify.run.verify")
    import torch

    from fxmeter.api import default_run_id
    from fxmeter.api import trace as api_trace
    from fxmeter.model.registry import resolve_model
    from fxmeter.model.workload import normalize_dtype, resolve

    if device not in DEVICES:
        raise VerifyError(f"unknown device {device!r}; use one of {', '.join(DEVICES)}")
    if reference not in REFERENCES:
        raise VerifyError(f"unknown reference {reference!r}; use one of {', '.join(REFERENCES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise VerifyError("--device cuda: no CUDA GPU here (torch.cuda.is_available() is False); use --device meta or cpu")
    settings = load_settings()
    tol = tolerances(tolerance, settings)
    rid = check_run_id(default_run_id() if run_id is None else run_id)
    if write:
        check_writable(output_root)
    resolved = resolve_model(model, config)
    wl = resolve(workload, resolved.default_workload, **overrides)
    d = normalize_dtype(dtype)
    geometry = resolved.geometry(wl)
    out_dir = Path(output_root) / rid / "static_analysis" / resolved.slug

    rep: Report | None = None
    traced = False
    if (out_dir / "report.json").exists():
        rep = Report.load(out_dir / "report.json")  # validated; a folder or a malformed file is one error line
        _check_same(rep.data, resolved, wl, d, geometry.dims, out_dir)
    if rep is None:
        rep = api_trace(model, wl, config=config, dtype=d, run_id=rid, cache=cache)
        traced = True
    if device == "cpu":
        check_cpu_budget(rep.data, settings)
    ref = run_reference(resolved, geometry.dims, d, device, reference)
    layers, end2end = compare(rep.data, ref, tol)
    result = VerifyResult(layers, end2end, rep, out_dir, traced=traced)
    if write:  # the report (if traced now) and the verify files appear together, or nothing does
        files = rep.files() if traced else {}
        files.update({f"verify/{n}": fileio.dumps(d) for n, d in (("layers.json", layers), ("end2end.json", end2end))})
        try:
            written = write_files(out_dir, files, "the verify files", claim="report.json" if traced else None,
                                  whole=True, drop="verify".__eq__)
        except OutputExistsError:
            raise VerifyError(f"{out_dir / 'report.json'} was written by another run meanwhile; "
                              "run verify again to check it, or choose another --run-id") from None
        result.files += written
    return result


#: report options (``trace.options``) under which the report's tensor-core FLOPs are not the
#: ones verify's reference counts, with why.  The others (precision, traffic, hardware,
#: efficiency, full_trace) change times, bytes or weight memory, never tensor-core FLOPs per
#: forward, so a report traced with them is verified as it is.
NUMBER_CHANGING = {
    "batched_cfg": "--batched-cfg (one pass of 2x the batch: every module's per-forward FLOPs double)",
}


def _check_same(data: dict[str, Any], resolved: ResolvedModel, wl: Any, dtype: str, dims: dict[str, int], where: Path) -> None:
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
@click.option("--workload", "-w", default=None, help="Workload preset (see `fxmeter workloads`); default: the model's.")
@click.option("--device", type=click.Choice(DEVICES), default="meta", show_default=True, help="Where FlopCounterMode runs the reference.")
@click.option("--reference", type=click.Choice(REFERENCES), default="eager", show_default=True,
              help="eager: run the module; graph: run the torch.export graph through an fx Interpreter.")
@click.option("--run-id", default=None, help="Run id; an existing report.json of this run is reused.")
@click.option("--tolerance", type=float, default=None, help="Relative tolerance for every scope (default: tolerances.toml, 0.05).")
@click.option("--output-root", default="tmp/profile-output", show_default=True, type=click.Path(), help="Where run folders go.")
@click.option("--config", "config", type=click.Path(), default=None, help="Local diffusers config.json or model folder.")
@click.option("--dtype", default="bf16", show_default=True, help="Parameter dtype: bf16, fp16 or fp32.")
@click.option("--frames", type=int, help="Video frames.")
@click.option("--height", type=int, help="Height in pixels.")
@click.option("--width", type=int, help="Width in pixels.")
@click.option("--steps", type=int, help="Denoising steps.")
@click.option("--text-len", type=int, help="Text-encoder sequence length.")
@click.option("--batch", type=int, help="Videos per prompt batch.")
@click.option("--guidance-scale", type=float, help="CFG scale; <= 1 means one pass per step.")
@click.option("--all-rows", is_flag=True, help="Print every module instead of folding identical blocks.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the trace cache.")
def verify_command(model: str | None, workload: str | None, device: str, reference: str, run_id: str | None,
                   tolerance: float | None, output_root: str, config: str | None, dtype: str, all_rows: bool,
                   no_cache: bool, **ov: Any) -> None:
    """Check fxmeter's FLOPs against FlopCounterMode per module and end to end (exit 1 if the gate fails)."""
    from fxmeter.cli.main import handle_errors

    res = handle_errors(verify)(
        model, workload, device=device, reference=reference, config=config, dtype=dtype, run_id=run_id,
        tolerance=tolerance, output_root=output_root, cache=not no_cache, **ov,
    )
    lay, e2e = res.layers, res.end2end
    for line in table(lay, fold=not all_rows):
        click.echo(line)
    for u in lay["unmodeled"]:
        click.echo(f"FAIL {u['message']}")
    for r in lay["layers"]:
        if not r["pass"]:
            click.echo(f"FAIL {r['id']}: {r['message']}")
    pf, ee = e2e["per_forward"], e2e["end_to_end"]
    from fxmeter.report.summary import human

    def flop(n: int) -> str:
        return f"{n:,} ({human(n, 'FLOP')})"

    click.echo(f"per forward : analytic {flop(pf['analytic_flops'])} reference {flop(pf['reference_flops'])} "
               f"rel err {_fmt_err(pf['rel_err'])}")
    click.echo(
        f"end to end  : analytic {flop(ee['analytic_flops'])} reference {flop(ee['reference_flops'])} rel err {_fmt_err(ee['rel_err'])} "
        f"({e2e['steps']} steps x {e2e['passes_per_step']} passes)"
    )
    click.echo(f"not compared: cuda_core_flops ({flop(lay['analytic_cuda_core_flops_per_forward'])} per forward in fxmeter); "
               "FlopCounterMode counts them as 0")
    tol = lay["tolerance"]
    verdict = "PASS" if res.passed else "FAIL"
    click.echo(
        f"verify {verdict}: {lay['compared']} modules compared on {lay['device']} ({lay['reference']['mode']}, SDPA {lay['reference']['sdpa_backend']}), "
        f"{lay['failed']} failed, max rel err {_fmt_err(lay['max_rel_err'])} (tolerance layers {tol['layers']:g}, end2end {tol['end2end']:g})"
    )
    for p in res.files:
        click.echo(f"wrote {p}")
    if not res.passed:
        sys.exit(1)
