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

Why one long module: building the model, checking its config against the class, exporting
it and converting the graph are one pass over the same objects (torch is imported only here).
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

from fxmeter.errors import ConfigError, TraceError
from fxmeter.model.adapters import Adapter
from fxmeter.rules import OpCall, TensorMeta

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
    weight_bytes: int  # own parameters' bytes + own persistent buffers' bytes (what a checkpoint stores)
    buffer_bytes: int  # own persistent buffers' bytes (non-persistent ones, e.g. RoPE tables, are not stored)


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
    #: bytes of the parameters and buffers the graph reads (each tensor once; a VAE decode reads the decoder only)
    graph_weight_bytes: int = 0
    #: bytes of every read of them (a weight read by k nodes counts k times: a module called k times per forward)
    weight_read_bytes: int = 0
    #: the largest own weights of one module (what sequential offload holds on the device at a time)
    largest_module_bytes: int = 0
    #: the files of the graph nodes' stack traces (the forward methods that produced an op)
    stack_files: tuple[str, ...] = ()
    #: those and the files defining the classes of the model's modules, attention processors and config
    sources: tuple[str, ...] = ()


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

    from fxmeter.model.adapters import ADAPTERS

    own = getattr(ADAPTERS.get(class_name), "model_class", None)  # a model defined outside diffusers
    if own is not None:
        return own
    cls = getattr(diffusers, class_name, None)
    if cls is None:
        raise ConfigError(f"diffusers {diffusers.__version__} has no class {class_name}")
    return cls  # type: ignore[no-any-return]


#: the most modules fxmeter traces and reports (each is a report row; ~1 KB of report.json each)
MAX_MODULES = 20_000


def _annotation_check(value: Any, annotation: Any) -> bool | None:
    """Whether ``value`` fits the type ``annotation`` (True/False), or None when it cannot tell."""
    import types
    import typing

    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        results = [_annotation_check(value, a) for a in typing.get_args(annotation)]
        return True if any(r is True for r in results) else (None if any(r is None for r in results) else False)
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        if len(args) == 1 or (origin is tuple and Ellipsis in typing.get_args(annotation)):
            results = [_annotation_check(v, args[0]) for v in value] if args else []
        elif args:
            if len(args) != len(value):
                return False
            results = [_annotation_check(v, a) for v, a in zip(value, args)]
        else:
            return True
        return False if any(r is False for r in results) else True
    return None


def _type_name(annotation: Any) -> str:
    return str(annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")


def check_signature(cls: Any, config: dict[str, Any]) -> None:
    """Each config value against the type in ``cls.__init__``'s signature (a ConfigError naming the key).

    Keys the signature does not name are ignored (``from_config`` ignores them too), and
    annotations fxmeter cannot read are not checked.
    """
    import inspect

    try:
        sig = inspect.signature(cls.__init__, eval_str=True)
    except Exception:  # unresolvable annotations: leave the check to the class
        return
    for name, param in sig.parameters.items():
        if name not in config or param.annotation is inspect.Parameter.empty:
            continue
        default = param.default
        if default is not inspect.Parameter.empty and default is not None and type(config[name]) is type(default):
            continue  # the class's own default has this type (AutoencoderKLCogVideoX: force_upcast: float = True)
        if _annotation_check(config[name], param.annotation) is False:
            raise ConfigError(f"config value {name} = {config[name]!r} does not fit {cls.__name__}: expected "
                              f"{_type_name(param.annotation)} (default {param.default!r})")


def build_model(config: dict[str, Any], dtype: str, overrides: dict[str, Any] | None = None) -> torch.nn.Module:
    """The diffusers model from ``config`` on meta, in the deployment dtype policy."""
    cls = import_class(config["_class_name"])
    cfg = {k: v for k, v in config.items() if not k.startswith("_")}
    check_signature(cls, cfg)
    cfg.update(overrides or {})
    from diffusers.utils import logging as dlogging

    level = dlogging.get_verbosity()
    dlogging.set_verbosity_error()  # "config attributes ... were passed ... but are not expected" (upstream configs)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.device("meta"):
                model = cls.from_config(cfg)
    except Exception as e:  # the class's own validation: any error means this config cannot build it
        raise ConfigError(f"{config['_class_name']} rejected the config: {type(e).__name__}: {e}") from None
    finally:
        dlogging.set_verbosity(level)
    apply_dtype_policy(model, DTYPES[dtype])
    model.eval()
    return model


def persistent_buffers(module: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """``module``'s own buffers that its state dict (and so a checkpoint) holds."""
    skip: set[str] = getattr(module, "_non_persistent_buffers_set", set())
    return [(n, b) for n, b in module.named_buffers(recurse=False) if n not in skip]


def apply_dtype_policy(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Parameters and persistent buffers to ``dtype`` except ``_keep_in_fp32_modules``, as
    ``from_pretrained(torch_dtype=...)`` loads the checkpoint (every floating state-dict entry is
    cast); non-persistent buffers (RoPE tables) are computed at init and keep their dtype."""
    keep = list(getattr(model, "_keep_in_fp32_modules", None) or [])

    def want(name: str) -> torch.dtype:
        return torch.float32 if (keep and any(m in name.split(".") for m in keep)) and dtype != torch.float32 else dtype

    for name, p in model.named_parameters():
        if p.is_floating_point() and p.dtype != want(name):
            p.data = p.data.to(want(name))
    for path, mod in model.named_modules():
        for n, b in persistent_buffers(mod):
            full = f"{path}.{n}" if path else n
            if b.is_floating_point() and b.dtype != want(full):
                setattr(mod, n, b.to(want(full)))


def module_records(model: torch.nn.Module, replicate: dict[str, int]) -> list[ModuleRecord]:
    """Modules of the full model; for a reduced model, ``blocks.0`` is copied to every block."""
    out: list[ModuleRecord] = []
    seen: set[int] = set()  # tied parameters (T5's shared / encoder.embed_tokens) belong to the first module
    for path, mod in model.named_modules():
        params = [(n, p) for n, p in mod.named_parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for _, p in params)
        buf_bytes = sum(b.numel() * b.element_size() for _, b in persistent_buffers(mod))
        rec = ModuleRecord(
            path,
            type(mod).__name__,
            sum(p.numel() for _, p in params),
            sum(p.numel() * p.element_size() for _, p in params) + buf_bytes,
            buf_bytes,
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


def _innermost(node: fx.Node, wrapped: str = "") -> str:
    """The innermost module path of ``node`` (``wrapped``: the wrapper attribute stripped from it)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = list(stack.values())[-1][0]
    if not isinstance(path, str) or path == _EMPTY_STACK or path.startswith(_EMPTY_STACK):
        return ""
    # strict-mode style L['self'].blocks[0].attn1 -> blocks.0.attn1
    path = re.sub(r"^L\['self'\]\.?", "", path)
    path = re.sub(r"\[(\d+)\]", r".\1", path)
    path = path.strip(".")
    return strip_wrapped(path, wrapped)


def strip_wrapped(path: str, wrapped: str) -> str:
    """``component.encoder.block.0`` -> ``encoder.block.0`` for a stage wrapper's ``component`` attribute."""
    if not wrapped:
        return path
    if path == wrapped:
        return ""
    return path[len(wrapped) + 1 :] if path.startswith(wrapped + ".") else path


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
    fixed: dict[str, int] | None = None,
) -> tuple[torch.export.ExportedProgram, dict[sympy.Symbol, sympy.Expr], dict[str, sympy.Symbol], dict[str, tuple[int, int]]]:
    """``torch.export`` the model: dynamic in the adapter's symbols when ``dims`` is None.

    ``fixed`` (dynamic exports only): symbols kept at these values (constants of the graph);
    their guards are ``[v, v]``.
    """
    from torch.export import Dim

    symbols = {s: sympy.Symbol(s, integer=True, positive=True) for s in adapter.symbols}
    axes = adapter.symbol_axes(config)
    dynamic = dims is None
    fixed = dict(fixed or {}) if dynamic else {}
    use = dict(adapter.example_dims(config), **fixed) if dims is None else dims
    kwargs = adapter.inputs(config, use, DTYPES[dtype])
    ds: dict[str, Any] | None = None
    if dynamic:
        bounds = adapter.symbol_bounds(config)
        tdims = {s: Dim(s, min=bounds[s][0], max=bounds[s][1]) for s in adapter.symbols if s not in fixed}
        ds = {}
        for name, v in kwargs.items():
            if not isinstance(v, torch.Tensor):
                ds[name] = None
                continue
            spec = {ax: (tdims[a.symbol] * a.multiplier if a.multiplier != 1 else tdims[a.symbol])
                    for ax, a in axes.get(name, {}).items() if a.symbol not in fixed}
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
                if a.symbol in fixed:
                    continue
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
        guards.update({s: (v, v) for s, v in fixed.items()})
    return ep, symmap, symbols, guards


def check_size(model: torch.nn.Module, replicas: dict[str, int], adapter: Adapter, config: dict[str, Any]) -> None:
    """Refuse a model whose full module tree exceeds MAX_MODULES, estimated before it is built.

    ``model`` has one block per repeated list (``replicas``: list -> blocks in the full
    model); each block's modules and parameters count once per block.
    """
    fixed = per_block = total = params = 0
    for path, mod in model.named_modules():
        k = 0
        for lst, n in replicas.items():
            if path == f"{lst}.0" or path.startswith(f"{lst}.0."):
                k = n
        if k:
            per_block += 1
        else:
            fixed += 1
        total += k or 1
        params += (k or 1) * sum(p.numel() for p in mod.parameters(recurse=False))
    if total > MAX_MODULES:
        sizes = ", ".join(f"{key}={config.get(key)}" for key in adapter.repeated.values() if key in config)
        blocks = max(MAX_MODULES - fixed, 0) // max(per_block // max(len(replicas), 1), 1)
        raise ConfigError(
            f"config {sizes}: an estimated {total:,} modules ({params:,} parameters) to trace and report; the limit is "
            f"{MAX_MODULES:,} modules (about {blocks:,} blocks of this class in all): use fewer layers"
        )


def capture(
    model_config: dict[str, Any],
    adapter: Adapter,
    dtype: str,
    dims: dict[str, int] | None = None,
    replicate: bool = True,
    fixed: dict[str, int] | None = None,
) -> Capture:
    """Build and export the model; ``dims=None`` asks for a dynamic export (``fixed``: symbols kept constant).

    A stage adapter (``adapter.build_module``) builds its own module: the component wrapped in
    the pipeline's call; module paths are the component's own (the wrapper attribute stripped).
    ``Capture.sources`` lists the files whose code shaped the graph (:func:`source_files`).
    """
    from dataclasses import replace

    cap, model = _capture(model_config, adapter, dtype, dims, replicate, fixed)
    return replace(cap, sources=source_files(cap.stack_files, model))


def source_files(stack_files: tuple[str, ...], model: torch.nn.Module) -> tuple[str, ...]:
    """The files whose code shaped the graph: those of the graph's stack traces (every ``forward`` that
    produced an op) and those defining the classes of the model's modules, attention processors and
    transformers config (their ``__init__`` builds the structure, their class attributes set dtypes)."""
    import sys

    mods: set[str] = set()
    for m in model.modules():
        mods.add(type(m).__module__)
        proc = getattr(m, "processor", None)
        if proc is not None:
            mods.add(type(proc).__module__)
        cfg = getattr(m, "config", None)
        if cfg is not None and hasattr(type(cfg), "model_type"):
            mods.add(type(cfg).__module__)
    files = set(stack_files)
    for name in mods:
        f = getattr(sys.modules.get(name), "__file__", None)
        if f:
            files.add(f)
    return tuple(sorted(f for f in files if f.endswith(".py")))


_FRAME = re.compile(r'File "([^"]+)", line \d+')


def _capture(
    model_config: dict[str, Any],
    adapter: Adapter,
    dtype: str,
    dims: dict[str, int] | None,
    replicate: bool,
    fixed: dict[str, int] | None,
) -> tuple[Capture, torch.nn.Module]:
    t0 = time.perf_counter()
    overrides: dict[str, Any] = {}
    replicas: dict[str, int] = {}
    custom = adapter.build_module(model_config, dtype, build_model)
    if custom is not None:
        model = custom
        inner: torch.nn.Module = getattr(custom, adapter.wrapped) if adapter.wrapped else custom
        check_size(inner, replicas, adapter, model_config)
    else:
        if replicate:
            for lst, key in adapter.repeated.items():
                n = model_config.get(key, 0) or 0
                if not isinstance(n, int) or isinstance(n, bool):
                    raise ConfigError(f"config key {key!r} must be an integer, got {n!r}")
                if n > 1:
                    overrides[key] = 1
                    replicas[lst] = n
        else:  # full trace: estimate its size from a reduced build before building every block
            reduced = {k: 1 for k in adapter.repeated.values() if isinstance(model_config.get(k), int) and model_config[k] > 1}
            counts = {lst: model_config[k] for lst, k in adapter.repeated.items() if k in reduced}
            check_size(build_model(model_config, dtype, reduced), counts, adapter, model_config)
        model = build_model(model_config, dtype, overrides)
        inner = model
        if replicate:
            check_size(model, replicas, adapter, model_config)
    modules = module_records(inner, replicas)
    wbytes: dict[str, int] = {}
    wcount: dict[str, int] = {}

    def copies(name: str) -> int:
        return replicas.get(name.split(".")[0], 1) if name.split(".")[1:2] == ["0"] else 1

    for name, p in inner.named_parameters():
        dt = str(p.dtype).removeprefix("torch.")
        wbytes[dt] = wbytes.get(dt, 0) + copies(name) * p.numel() * p.element_size()
        wcount[dt] = wcount.get(dt, 0) + copies(name) * p.numel()
    for path, mod in inner.named_modules():  # persistent buffers are checkpoint bytes too (not parameters)
        for _, b in persistent_buffers(mod):
            dt = str(b.dtype).removeprefix("torch.")
            wbytes[dt] = wbytes.get(dt, 0) + copies(path + ".") * b.numel() * b.element_size()
    try:
        ep, symmap, symbols, guards = export_graph(model, adapter, model_config, dtype, dims, fixed)
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
        nodes.append(NodeRecord(node.name, call.target, _innermost(node, adapter.wrapped), call, uses))
    user = set(ep.graph_signature.user_inputs)
    inputs = {
        n.name: sum((t.nbytes for t in _outputs(n.meta.get("val"), conv)), 0)
        for n in ep.graph.nodes
        if n.op == "placeholder" and n.name in user
    }
    graph_bytes, read_bytes = graph_weights(ep, adapter.wrapped, copies)
    stack: set[str] = set()
    for st in {n.meta.get("stack_trace") for n in ep.graph.nodes}:
        if isinstance(st, str):
            stack.update(_FRAME.findall(st))
    return Capture(
        stack_files=tuple(sorted(stack)),
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
        graph_weight_bytes=graph_bytes,
        weight_read_bytes=read_bytes,
        largest_module_bytes=max((m.weight_bytes for m in modules), default=0),
    ), model


def graph_weights(ep: torch.export.ExportedProgram, wrapped: str, copies: Any) -> tuple[int, int]:
    """(bytes of the parameters and buffers the graph reads, bytes of all their reads).

    Each tensor counts once in the first (tied tensors are one), once per reading node in the
    second; a replicated block's tensors count once per block.
    """
    sig = ep.graph_signature
    transient = set(getattr(sig, "non_persistent_buffers", ()) or ())  # RoPE tables, position ids: not weights
    names = {**sig.inputs_to_parameters, **{k: v for k, v in sig.inputs_to_buffers.items() if v not in transient}}
    state = ep.state_dict
    consts = getattr(ep, "constants", {}) or {}
    seen: set[int] = set()
    distinct = reads = 0
    for node in ep.graph.nodes:
        if node.op != "placeholder" or node.name not in names or not node.users:
            continue
        full = names[node.name]
        t = state.get(full, consts.get(full))
        if not isinstance(t, torch.Tensor):
            continue
        k = copies(strip_wrapped(full, wrapped))
        size = t.numel() * t.element_size() * k
        reads += size * len(node.users)
        if id(t) not in seen:
            seen.add(id(t))
            distinct += size
    return distinct, reads
