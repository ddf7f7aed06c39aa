"""Capture: the real diffusers model on ``meta`` -> one torch.export graph.

The model is built from its config under ``torch.device("meta")`` (no weights,
buffers on meta too) with the deployment dtype policy of
``from_pretrained(torch_dtype=...)``: parameters in the requested dtype except the
modules diffusers keeps in fp32 (``_keep_in_fp32_modules``).

Repeated blocks (``Adapter.repeated``, diffusers' ``_repeated_blocks``) are traced
once: the export runs on a copy of the config with one block per repeated list and
the block's costs are replicated onto every block id.  ``replicate=False`` traces
the full model (a test proves both agree).

Every graph node becomes a :class:`NodeRecord` holding what the rules need
(target, shapes, dtypes) with SymInts turned into sympy expressions of the
adapter's workload symbols.
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import sympy
import torch
from torch import fx

from fxmeter.rules import OpCall, TensorMeta

from .adapters import Adapter
from .errors import ConfigError, TraceError

LOG = logging.getLogger(__name__)

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


@dataclass(frozen=True)
class NodeRecord:
    """One graph node: its name, op, innermost module path and the rule's view of it."""

    name: str
    target: str
    module: str  # path in named_modules() of the traced model ("" = root)
    call: OpCall
    uses: tuple[str, ...] = ()  # names of the graph values this node reads


@dataclass(frozen=True)
class ModuleRecord:
    """One module of the *full* model."""

    path: str
    cls: str
    params: int  # own parameters (not descendants')
    weight_bytes: int
    buffer_bytes: int


@dataclass
class Capture:
    nodes: list[NodeRecord]
    modules: list[ModuleRecord]
    symbols: dict[str, sympy.Symbol]
    guards: dict[str, tuple[int, int]]
    mode: str  # "dynamic" | "static"
    seconds: float
    replicas: dict[str, int]  # repeated ModuleList path -> number of blocks in the full model
    dims: dict[str, int] = field(default_factory=dict)  # symbol values of a static trace
    graph_nodes: int = 0
    inputs: dict[str, Any] = field(default_factory=dict)  # user input name -> bytes (int or sympy)
    weight_bytes_by_dtype: dict[str, int] = field(default_factory=dict)
    parameters_by_dtype: dict[str, int] = field(default_factory=dict)


def target_name(target: Any) -> str:
    """Stable string for an fx call target: ``aten.linear.default``, ``operator.getitem``."""
    if isinstance(target, torch._ops.OpOverload):
        return str(target)
    if isinstance(target, torch._ops.OpOverloadPacket):
        return f"{target}.default"
    mod = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", None) or repr(target)
    if mod in ("_operator", "operator"):
        mod = "operator"
    return f"{mod}.{name}" if mod else name


def import_class(class_name: str) -> Any:
    import diffusers

    from .adapters import ADAPTERS

    own = getattr(ADAPTERS.get(class_name), "model_class", None)  # a model defined outside diffusers
    if own is not None:
        return own
    cls = getattr(diffusers, class_name, None)
    if cls is None:
        raise ConfigError(f"diffusers {diffusers.__version__} has no class {class_name}")
    return cls  # type: ignore[no-any-return]


def build_model(config: dict[str, Any], dtype: str, overrides: dict[str, Any] | None = None) -> torch.nn.Module:
    """The diffusers model from ``config`` on meta, in the deployment dtype policy."""
    cls = import_class(config["_class_name"])
    cfg = {k: v for k, v in config.items() if not k.startswith("_")}
    cfg.update(overrides or {})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.device("meta"):
                model = cls.from_config(cfg)
    except Exception as e:  # the class's own validation: any error means this config cannot build it
        raise ConfigError(f"{config['_class_name']} rejected the config: {type(e).__name__}: {e}") from None
    apply_dtype_policy(model, DTYPES[dtype])
    model.eval()
    return model


def apply_dtype_policy(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Parameters to ``dtype`` except ``_keep_in_fp32_modules`` (as from_pretrained does)."""
    keep = list(getattr(model, "_keep_in_fp32_modules", None) or [])
    for name, p in model.named_parameters():
        if not p.is_floating_point():
            continue
        want = torch.float32 if (keep and any(m in name.split(".") for m in keep)) and dtype != torch.float32 else dtype
        if p.dtype != want:
            p.data = p.data.to(want)


def module_records(model: torch.nn.Module, replicate: dict[str, int]) -> list[ModuleRecord]:
    """Modules of the full model; for a reduced model, ``blocks.0`` is copied to every block."""
    out: list[ModuleRecord] = []
    for path, mod in model.named_modules():
        params = list(mod.named_parameters(recurse=False))
        bufs = list(mod.named_buffers(recurse=False))
        rec = ModuleRecord(
            path,
            type(mod).__name__,
            sum(p.numel() for _, p in params),
            sum(p.numel() * p.element_size() for _, p in params),
            sum(b.numel() * b.element_size() for _, b in bufs),
        )
        out.append(rec)
        for lst, n in replicate.items():
            if path == f"{lst}.0" or path.startswith(f"{lst}.0."):
                for i in range(1, n):
                    out.append(ModuleRecord(f"{lst}.{i}" + path[len(lst) + 2 :], rec.cls, rec.params, rec.weight_bytes, rec.buffer_bytes))
    order = {r.path: i for i, r in enumerate(out)}
    return sorted(out, key=lambda r: (_block_key(r.path), order[r.path]))


def _block_key(path: str) -> tuple[Any, ...]:
    # keep named_modules() order but put blocks.i before blocks.(i+1) subtrees
    m = re.match(r"^(.*?)\.(\d+)(\..*)?$", path)
    return (m.group(1), int(m.group(2))) if m else (path, -1)


_EMPTY_STACK = "_empty_nn_module_stack_from_metadata_hook"


def _innermost(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = list(stack.values())[-1][0]
    if not isinstance(path, str) or path == _EMPTY_STACK or path.startswith(_EMPTY_STACK):
        return ""
    # strict-mode style L['self'].blocks[0].attn1 -> blocks.0.attn1
    path = re.sub(r"^L\['self'\]\.?", "", path)
    path = re.sub(r"\[(\d+)\]", r".\1", path)
    return path.strip(".")


class _Converter:
    """fx argument values -> rule-side values (TensorMeta, sympy, plain python)."""

    def __init__(self, symmap: dict[sympy.Symbol, sympy.Expr]):
        self.symmap = symmap

    def size(self, d: Any) -> Any:
        if isinstance(d, torch.SymInt):
            e = d.node.expr
            if e.is_number:
                return int(e)
            return sympy.expand(e.xreplace(self.symmap))
        return int(d)

    def tensor(self, v: torch.Tensor) -> TensorMeta:
        return TensorMeta(tuple(self.size(d) for d in v.shape), str(v.dtype).removeprefix("torch."), v.dtype.itemsize)

    def value(self, v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return self.tensor(v)
        if isinstance(v, (torch.SymInt, int)) and not isinstance(v, bool):
            return self.size(v)
        if isinstance(v, torch.SymFloat):
            return float(v.node.hint) if v.node.hint is not None else 0.0
        if isinstance(v, torch.SymBool):
            return bool(v.node.hint)
        if isinstance(v, (list, tuple)):
            return tuple(self.value(x) for x in v)
        if isinstance(v, torch.dtype):
            return str(v).removeprefix("torch.")
        if isinstance(v, (torch.device, torch.layout, torch.memory_format)):
            return str(v)
        return v

    def arg(self, a: Any) -> Any:
        if isinstance(a, fx.Node):
            return self.value(a.meta.get("val"))
        if isinstance(a, (list, tuple)):
            return tuple(self.arg(x) for x in a)
        if isinstance(a, dict):
            return {k: self.arg(v) for k, v in a.items()}
        return self.value(a)


def _outputs(val: Any, conv: _Converter) -> tuple[TensorMeta, ...]:
    if isinstance(val, torch.Tensor):
        return (conv.tensor(val),)
    if isinstance(val, (list, tuple)):
        return tuple(t for v in val for t in _outputs(v, conv))
    return ()


def export_graph(
    model: torch.nn.Module,
    adapter: Adapter,
    config: dict[str, Any],
    dtype: str,
    dims: dict[str, int] | None,
) -> tuple[torch.export.ExportedProgram, dict[sympy.Symbol, sympy.Expr], dict[str, sympy.Symbol], dict[str, tuple[int, int]]]:
    """``torch.export`` the model: dynamic in the adapter's symbols when ``dims`` is None."""
    from torch.export import Dim

    symbols = {s: sympy.Symbol(s, integer=True, positive=True) for s in adapter.symbols}
    axes = adapter.symbol_axes(config)
    dynamic = dims is None
    use = adapter.example_dims(config) if dims is None else dims
    kwargs = adapter.inputs(config, use, DTYPES[dtype])
    ds: dict[str, Any] | None = None
    if dynamic:
        bounds = adapter.symbol_bounds(config)
        tdims = {s: Dim(s, min=bounds[s][0], max=bounds[s][1]) for s in adapter.symbols}
        ds = {}
        for name, v in kwargs.items():
            if not isinstance(v, torch.Tensor):
                ds[name] = None
                continue
            spec = {ax: (tdims[a.symbol] * a.multiplier if a.multiplier != 1 else tdims[a.symbol]) for ax, a in axes.get(name, {}).items()}
            ds[name] = spec or None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep = torch.export.export(model, (), kwargs, dynamic_shapes=ds, strict=False)
    symmap: dict[sympy.Symbol, sympy.Expr] = {}
    guards: dict[str, tuple[int, int]] = {}
    if dynamic:
        placeholders = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
        user_inputs = list(ep.graph_signature.user_inputs)
        names = [k for k, v in kwargs.items() if isinstance(v, torch.Tensor)]
        for name, ph_name in zip(names, user_inputs):
            val = placeholders[ph_name].meta["val"]
            for ax, a in axes.get(name, {}).items():
                e = val.shape[ax]
                if not isinstance(e, torch.SymInt):
                    raise TraceError(f"export specialised {name} axis {ax} ({a.symbol}) to {e}")
                expr = e.node.expr
                base = sympy.simplify(expr / a.multiplier)
                if isinstance(base, sympy.Symbol):
                    symmap[base] = symbols[a.symbol]
        for expr, vr in ep.range_constraints.items():
            if isinstance(expr, sympy.Symbol) and expr in symmap:
                name = str(symmap[expr])
                guards[name] = (int(vr.lower), int(vr.upper))
    return ep, symmap, symbols, guards


def capture(
    model_config: dict[str, Any],
    adapter: Adapter,
    dtype: str,
    dims: dict[str, int] | None = None,
    replicate: bool = True,
) -> Capture:
    """Build and export the model; ``dims=None`` asks for a dynamic export."""
    t0 = time.perf_counter()
    overrides: dict[str, Any] = {}
    replicas: dict[str, int] = {}
    if replicate:
        for lst, key in adapter.repeated.items():
            n = model_config.get(key, 0) or 0
            if not isinstance(n, int) or isinstance(n, bool):
                raise ConfigError(f"config key {key!r} must be an integer, got {n!r}")
            if n > 1:
                overrides[key] = 1
                replicas[lst] = n
    model = build_model(model_config, dtype, overrides)
    modules = module_records(model, replicas)
    wbytes: dict[str, int] = {}
    wcount: dict[str, int] = {}
    for name, p in model.named_parameters():
        k = replicas.get(name.split(".")[0], 1) if name.split(".")[1:2] == ["0"] else 1
        dt = str(p.dtype).removeprefix("torch.")
        wbytes[dt] = wbytes.get(dt, 0) + k * p.numel() * p.element_size()
        wcount[dt] = wcount.get(dt, 0) + k * p.numel()
    try:
        ep, symmap, symbols, guards = export_graph(model, adapter, model_config, dtype, dims)
    except Exception as e:  # torch raises many kinds; re-raise as one project error
        raise TraceError(f"torch.export failed for {model_config['_class_name']}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
    conv = _Converter(symmap)
    nodes: list[NodeRecord] = []
    count = 0
    for node in ep.graph.nodes:
        if node.op != "call_function":
            continue
        count += 1
        args = tuple(conv.arg(a) for a in node.args)
        kwargs = {k: conv.arg(v) for k, v in node.kwargs.items()}
        call = OpCall(target_name(node.target), args, kwargs, _outputs(node.meta.get("val"), conv))
        uses = tuple(a.name for a in node.all_input_nodes)
        nodes.append(NodeRecord(node.name, call.target, _innermost(node), call, uses))
    user = set(ep.graph_signature.user_inputs)
    inputs = {
        n.name: sum((t.nbytes for t in _outputs(n.meta.get("val"), conv)), 0)
        for n in ep.graph.nodes
        if n.op == "placeholder" and n.name in user
    }
    return Capture(
        weight_bytes_by_dtype=dict(sorted(wbytes.items())),
        parameters_by_dtype=dict(sorted(wcount.items())),
        inputs=inputs,
        nodes=nodes,
        modules=modules,
        symbols=symbols,
        guards=guards,
        mode="dynamic" if dims is None else "static",
        seconds=time.perf_counter() - t0,
        replicas=replicas,
        dims=dict(dims or {}),
        graph_nodes=count,
    )
