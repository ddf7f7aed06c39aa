"""Verify, the reference runner: the same diffusers model under FlopCounterMode on meta, cpu or cuda.

* ``meta``: meta tensors (no data, no weights); full size in seconds on any machine.
* ``cpu``: real random-weight tensors, math SDPA backend forced (FlopCounterMode does not
  count ``_scaled_dot_product_flash_attention_for_cpu``); small configs and workloads only.
* ``cuda``: real random-weight tensors on a GPU, with whatever SDPA backend torch picks.

``mode="graph"`` runs the exported graph itself (``ep.module()`` through a
:class:`torch.fx.Interpreter`) and attributes each node's counted FLOPs to its
``nn_module_stack`` module, so the literally-same graph is checked.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from fxmeter.errors import VerifyError
from fxmeter.verify.compare import _SDPA_BACKENDS, ROOT, Reference

if TYPE_CHECKING:
    import torch

    from fxmeter.model.pipeline import Component

# -- the reference run ---------------------------------------------------------
def _map_key(key: str, root_class: str, root: str = ROOT, wrapped: str = "") -> str:
    """FlopCounterMode's ``WanTransformer3DModel.blocks.0.attn1`` -> ``transformer.blocks.0.attn1``
    (a stage wrapper's ``VaeDecode.component.decoder`` -> ``vae.decoder``)."""
    if key == root_class:
        return root
    if key.startswith(root_class + "."):
        rest = key[len(root_class) + 1 :]
        if wrapped:
            from fxmeter.model.capture import strip_wrapped

            rest = strip_wrapped(rest, wrapped)
        return f"{root}.{rest}" if rest else root
    return key  # "Global" and anything outside the model


def _op_name(op: Any) -> str:
    return str(getattr(op, "_qualified_op_name", None) or op).replace("::", ".")


def _backend(ops: dict[str, int], device: str) -> str:
    found = [name for pat, name in _SDPA_BACKENDS if any(pat in op for op in ops)]
    if found:
        return "+".join(found)
    return "math" if device != "meta" else "math (meta dispatch)"


def build_on_device(component: Component, dtype: str, device: str) -> torch.nn.Module:
    """The full model with random weights on ``device`` (meta: no weights), deployment dtype policy."""
    import torch

    from fxmeter.model.capture import DTYPES, apply_dtype_policy, build_model, import_class

    if device == "meta":
        return build_model(dict(component.config), dtype)
    cls = import_class(dict(component.config)["_class_name"])
    cfg = {k: v for k, v in dict(component.config).items() if not k.startswith("_")}
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


def device_inputs(component: Component, dims: dict[str, int], dtype: str, device: str) -> dict[str, Any]:
    """The adapter's forward inputs, as random tensors on ``device`` (meta stays meta)."""
    import torch

    from fxmeter.model.capture import DTYPES

    meta = component.adapter.inputs(dict(component.config), dims, DTYPES[dtype])
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


def _ancestors(path: str, root: str = ROOT) -> list[str]:
    parts = path.split(".") if path else []
    return [root] + [root + "." + ".".join(parts[: i + 1]) for i in range(len(parts))]


def run_reference(
    component: Component,
    dims: dict[str, int],
    dtype: str,
    device: str,
    mode: str = "eager",
    root: str = ROOT,
) -> Reference:
    """Run the full model (or its exported graph) under FlopCounterMode; counts per module id (under ``root``)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = build_on_device(component, dtype, device)
    kwargs = device_inputs(component, dims, dtype, device)
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
            with FlopCounterMode(display=False) as fc, _meta_values(root_class, device == "meta",
                                                                   "try --device cpu at a small workload"):
                model(**kwargs)
            for key, per_op in fc.get_flop_counts().items():
                mid = _map_key(key, root_class, root)
                ops[mid] = {_op_name(o): int(n) for o, n in sorted(per_op.items(), key=lambda kv: _op_name(kv[0]))}
                modules[mid] = sum(ops[mid].values())
            total = int(fc.get_total_flops())
        else:
            modules, ops, total = _run_graph(model, kwargs, root)
            notes.append("reference ran the torch.export graph (ep.module()) through torch.fx.Interpreter, FLOPs per node's nn_module_stack")
    ops.setdefault("Global", {})
    modules.pop("Global", None)
    if device == "cuda":
        torch.cuda.synchronize()
        name = torch.cuda.get_device_name()
    else:
        name = device
    return Reference(total, modules, ops, device, name, mode, _backend(ops["Global"], device), torch.__version__, notes)


@contextmanager
def _meta_values(what: str, on_meta: bool = True, hint: str = "a stage always runs on meta, so fxmeter cannot "
                 "check it against FlopCounterMode") -> Iterator[None]:
    """A forward that reads tensor values (``.item()``, ``nonzero``, a mask's sum) cannot run on meta: one
    :class:`VerifyError` line naming the module, not a traceback."""
    try:
        yield
    except (RuntimeError, NotImplementedError) as e:
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        if not on_meta or "meta" not in str(e):
            raise
        raise VerifyError(f"{what} reads tensor values, which the FlopCounterMode reference on meta cannot run "
                          f"({text[:160]}); {hint}") from None


def _run_graph(model: torch.nn.Module, kwargs: dict[str, Any], root: str = ROOT,
               wrapped: str = "") -> tuple[dict[str, int], dict[str, dict[str, int]], int]:
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
                    for mid in _ancestors(_innermost(n, wrapped), root) + ["Global"]:
                        modules[mid] += d
                        ops[mid][_op_name(op)] += d
            return out

    with FlopCounterMode(display=False) as fc:
        Counting(gm).run(*flat)
    total = int(fc.get_total_flops())
    return dict(modules), {k: dict(sorted(v.items())) for k, v in ops.items()}, total


def run_stage_reference(component: Component, dims: dict[str, int], dtype: str, root: str,
                        mode: str | None = None) -> Reference:
    """A pipeline stage (text encoder, VAE...) on meta under FlopCounterMode, as its pipeline calls it.

    ``mode`` None: the stage's adapter decides (``reference_on_graph``: transformers' padding-mask
    check cannot run eagerly on meta, so the exported graph is counted, node by node).
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fxmeter.model.capture import DTYPES, build_model

    adapter = component.adapter
    config = dict(component.config)
    model = adapter.build_module(config, dtype, build_model)
    assert model is not None, f"{adapter.name} builds no module of its own"
    kwargs = adapter.inputs(config, dims, DTYPES[dtype])
    if mode is None:
        mode = "graph" if getattr(adapter, "reference_on_graph", False) else "eager"
    notes = [f"stage {root}: the pipeline's call ({adapter.name}) on meta"]
    modules: dict[str, int] = {}
    ops: dict[str, dict[str, int]] = {}
    with torch.no_grad():
        if mode == "eager":
            with FlopCounterMode(display=False) as fc, _meta_values(f"stage {root} ({type(model).__name__})"):
                model(**kwargs)
            root_class = type(model).__name__
            for key, per_op in fc.get_flop_counts().items():
                mid = _map_key(key, root_class, root, adapter.wrapped)
                ops[mid] = {_op_name(o): int(n) for o, n in sorted(per_op.items(), key=lambda kv: _op_name(kv[0]))}
                modules[mid] = sum(ops[mid].values())
            total = int(fc.get_total_flops())
        else:
            modules, ops, total = _run_graph(model, kwargs, root, adapter.wrapped)
            notes.append("reference ran the torch.export graph (ep.module()) through torch.fx.Interpreter: eager "
                         "FlopCounterMode cannot run transformers' padding-mask check on meta (.item())")
    ops.setdefault("Global", {})
    modules.pop("Global", None)
    return Reference(total, modules, ops, "meta", "meta", mode, _backend(ops["Global"], "meta"), torch.__version__, notes)
