"""Training capture: the real model's forward *and* backward on ``meta``, as aten graphs.

The model is built as :func:`fxmeter.model.capture.build_model` builds it (meta, deployment dtype
policy), put in ``train()`` mode, optionally wrapped with LoRA adapters (:class:`LoRALinear`),
and run through AOTAutograd (``functorch.compile.aot_module``) with compilers that only keep the
graphs: the forward graph, the backward graph, and the tensors the forward saves for the backward
(the forward graph's outputs beyond the model's own, as AOTAutograd's ``default_partition`` splits
them: what eager autograd saves, nothing recomputed).  Shapes are static (the workload's), so every cost is an integer.

Only trainable parameters get gradients: for LoRA the frozen base weights have no weight-gradient
matmul, but the input gradient flows through them.

Attention: on ``meta`` (and in eager FlopCounterMode runs on meta) ``scaled_dot_product_attention``
runs torch's *math* path (two bmm, a softmax, the L x L probabilities saved for the backward).
A GPU trainer runs a fused kernel (flash), whose forward saves only the output and the
log-sum-exp and whose backward recomputes the scores (5 matmuls of the forward's size).
``attention="flash"`` (the default) traces ``aten._scaled_dot_product_flash_attention`` (and its
``_backward``) in place of ``F.scaled_dot_product_attention`` for mask-free calls (the efficient
kernel for masked ones); ``attention="math"`` keeps torch's meta dispatch.

Repeated blocks: the graphs are traced at one block per repeated list, and once more per list at
two blocks; :func:`fxmeter.estimate.training` extrapolates (block k costs what the second block
added), which is exact because the blocks are identical.  ``replicate=False`` traces every block.

Why one long module: the LoRA wrapper, the attention-kernel and tensor-attribute preparations and the
joint-graph capture are one trace of one model; split apart, each would only be called from here.
"""

from __future__ import annotations

import contextlib
import math
import re
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from fxmeter.errors import ConfigError, TraceError
from fxmeter.model.adapters import Adapter
from fxmeter.model.capture import (
    DTYPES,
    NodeRecord,
    _Converter,
    _outputs,
    build_model,
    source_files,
    target_name,
)
from fxmeter.rules import OpCall

#: LoRA targets by default: every nn.Linear inside the repeated blocks (attention q/k/v/o of self- and
#: cross-attention, the FFN, the block's modulation projections), as musubi-tuner's networks/lora_wan.py
#: (WAN_TARGET_REPLACE_MODULES = ["WanAttentionBlock"]) and lora_flux.py target every Linear of the blocks.
DEFAULT_TARGETS = ("blocks",)
ATTENTION = ("flash", "math")


class LoRALinear(torch.nn.Module):
    """``base(x) + B(A(x)) * alpha / r``: a frozen Linear plus a trainable low-rank update (LoRA,
    Hu et al. 2021, arXiv:2106.09685; as peft's ``lora.Linear`` without dropout)."""

    def __init__(self, base: torch.nn.Linear, rank: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.base = base
        self.lora_A = torch.nn.Linear(base.in_features, rank, bias=False, device="meta", dtype=dtype)
        self.lora_B = torch.nn.Linear(rank, base.out_features, bias=False, device="meta", dtype=dtype)
        self.scale = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.lora_B(self.lora_A(x)) * self.scale


def target_patterns(targets: tuple[str, ...], repeated: dict[str, str]) -> list[re.Pattern[str]]:
    """``--lora-targets`` -> regexes over Linear module paths (``blocks`` = every Linear in the repeated blocks)."""
    pats = []
    for t in targets:
        if t == "blocks":
            pats += [re.compile(rf"^{re.escape(lst)}\.\d+\.") for lst in repeated]
        else:
            try:
                pats.append(re.compile(t))
            except re.error as e:
                raise ConfigError(f"--lora-targets {t!r} is not a regular expression: {e}") from None
    return pats


def apply_lora(model: torch.nn.Module, rank: int, targets: tuple[str, ...], repeated: dict[str, str],
               dtype: torch.dtype) -> list[str]:
    """Freeze every parameter and wrap each targeted ``nn.Linear`` in a :class:`LoRALinear`; the wrapped paths."""
    pats = target_patterns(targets, repeated)
    for p in model.parameters():
        p.requires_grad_(False)
    wrapped = []
    for path, mod in list(model.named_modules()):
        if not isinstance(mod, torch.nn.Linear) or not any(p.search(path) for p in pats):
            continue
        parent_path, _, name = path.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        setattr(parent, name, LoRALinear(mod, rank, dtype))
        wrapped.append(path)
    if not wrapped:
        raise ConfigError(f"--lora-targets {','.join(targets)} matches no Linear layer of the model")
    return wrapped


def _flash_sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attn_mask: Any = None,
                dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                enable_gqa: bool = False) -> torch.Tensor:
    """F.scaled_dot_product_attention as a GPU runs it: the flash kernel (efficient with a mask)."""
    if enable_gqa and key.shape[-3] != query.shape[-3]:
        rep = query.shape[-3] // key.shape[-3]
        key, value = key.repeat_interleave(rep, -3), value.repeat_interleave(rep, -3)
    if attn_mask is None:
        return torch.ops.aten._scaled_dot_product_flash_attention(query, key, value, dropout_p, is_causal,
                                                                  False, scale=scale)[0]
    if attn_mask.dtype == torch.bool:
        attn_mask = torch.zeros(attn_mask.shape, dtype=query.dtype, device=query.device).masked_fill(
            attn_mask.logical_not(), -math.inf)
    return torch.ops.aten._scaled_dot_product_efficient_attention(query, key, value, attn_mask.to(query.dtype), True,
                                                                  dropout_p, is_causal, scale=scale)[0]


@contextlib.contextmanager
def attention_kernel(attention: str) -> Iterator[None]:
    """Trace ``F.scaled_dot_product_attention`` as ``attention`` runs it (see the module docstring)."""
    if attention == "math":
        yield
        return
    import torch.nn.functional as F

    orig = F.scaled_dot_product_attention
    F.scaled_dot_product_attention = _flash_sdpa  # type: ignore[assignment]
    try:
        yield
    finally:
        F.scaled_dot_product_attention = orig


def lift_tensor_attributes(model: torch.nn.Module) -> list[str]:
    """Register every plain tensor attribute of a submodule as a non-persistent buffer; the lifted paths.

    AOTAutograd passes parameters and buffers to the traced function as fake tensors; a tensor held in a
    plain attribute (Qwen-Image's ``QwenEmbedRope.pos_freqs``, Lumina2's RoPE tables) would enter the trace
    as a real ``meta`` tensor and fail it ("Please convert all Tensors to FakeTensors first").
    ``torch.export`` (the inference trace) lifts them as constants itself."""
    lifted = []
    for path, mod in model.named_modules():
        for name, val in list(vars(mod).items()):
            where = f"{path}.{name}" if path else name
            if isinstance(val, torch.Tensor) and not isinstance(val, torch.nn.Parameter):
                delattr(mod, name)
                mod.register_buffer(name, val, persistent=False)
                lifted.append(where)
            elif (isinstance(val, (list, tuple)) and val and not name.startswith("_")
                  and all(isinstance(t, torch.Tensor) and not isinstance(t, torch.nn.Parameter) for t in val)):
                for i, t in enumerate(val):  # a list of tensors (Lumina2's freqs_cis): one buffer each
                    mod.register_buffer(f"_fxmeter_{name}_{i}", t, persistent=False)
                setattr(mod, name, _BufferList(mod, name, len(val)))
                lifted.append(where)
            elif not isinstance(val, (torch.Tensor, torch.nn.Module, _BufferList)) and hasattr(val, "__dict__") \
                    and not isinstance(val, type):
                # a plain helper object that caches tensors on its first call (Z-Image's ``RopeEmbedder.freqs_cis``):
                # its tensors become the owning module's buffers, read through the same attribute
                for sub, t in list(vars(val).items()):
                    key = f"{name}__{sub}"
                    if isinstance(t, (list, tuple)) and t and all(isinstance(x, torch.Tensor) and
                                                                not isinstance(x, torch.nn.Parameter) for x in t):
                        for i, x in enumerate(t):
                            mod.register_buffer(f"_fxmeter_{key}_{i}", x, persistent=False)
                        setattr(val, sub, _BufferList(mod, key, len(t)))
                        lifted.append(f"{where}.{sub}")
    return lifted


class _BufferList:
    """A lifted list of tensors: item ``i`` read from the module's buffer each time (AOTAutograd swaps buffers)."""

    def __init__(self, mod: torch.nn.Module, name: str, n: int) -> None:
        self._mod, self._name, self._n = mod, name, n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> torch.Tensor:
        if not -self._n <= i < self._n:
            raise IndexError(i)
        return getattr(self._mod, f"_fxmeter_{self._name}_{i % self._n}")  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (self[i] for i in range(self._n))


@contextlib.contextmanager
def as_exporting() -> Iterator[None]:
    """``torch.compiler.is_exporting()`` True while tracing, as under ``torch.export``: diffusers'
    ``lru_cache_unless_export`` (Qwen-Image's RoPE frequencies) then recomputes instead of returning a tensor
    cached by an earlier run (a real tensor inside the fake trace)."""
    orig = torch.compiler.is_exporting
    torch.compiler.is_exporting = lambda: True  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.compiler.is_exporting = orig  # type: ignore[assignment]


@dataclass
class JointGraph:
    """The forward and backward graphs of one training step (one micro-batch), static shapes."""

    forward: list[NodeRecord]
    backward: list[NodeRecord]
    #: name -> bytes of each tensor the forward saves for the backward (distinct storages)
    saved: dict[str, int]
    #: bytes of the model inputs (latents, text embeddings, timestep)
    input_bytes: int
    #: bytes of the forward's output (the prediction the loss reads)
    output_bytes: int
    blocks: dict[str, int]  # repeated list -> blocks in this graph
    parameters: int = 0
    trainable_parameters: int = 0
    parameter_bytes: int = 0  # every parameter at its traced dtype
    trainable_bytes: int = 0
    #: per repeated list: bytes of the activations a block receives from the previous one (what a
    #: checkpointed block keeps: its hidden-state inputs; tensors shared by every block count once)
    block_input_bytes: dict[str, int] = field(default_factory=dict)
    lora_layers: list[str] = field(default_factory=list)
    #: shape -> how many trainable parameter tensors have it (Adafactor factors 2-D ones)
    trainable_shapes: dict[tuple[int, ...], int] = field(default_factory=dict)
    #: parameters of the Linear weights the base model holds
    linear_weight_parameters: int = 0
    #: one block's Linear weights per repeated list, by path inside the block (``"transformer_blocks"`` ->
    #: ``{"img_mod.1": 56623104, "attn.to_q": 9437184, ...}``): what an fp8 base may store in 1 byte
    #: (trainers quantize the blocks' Linears, less the ones whose paths they exclude)
    block_linear_weights: dict[str, dict[str, int]] = field(default_factory=dict)
    #: trainable parameter tensors
    trainable_tensors: int = 0
    #: the files whose code shaped the graphs: every file a function of the (eager, warm-up) forward came from and
    #: those defining the model's module classes (:func:`fxmeter.model.capture.source_files`): what a stored copy
    #: of the graph depends on (:mod:`fxmeter.cost.training_store`)
    sources: tuple[str, ...] = ()


def _records(gm: torch.fx.GraphModule) -> list[NodeRecord]:
    conv = _Converter({})
    out = []
    for node in gm.graph.nodes:
        if node.op != "call_function":
            continue
        args = tuple(conv.arg(a) for a in node.args)
        kwargs = {k: conv.arg(v) for k, v in node.kwargs.items()}
        call = OpCall(target_name(node.target), args, kwargs, _outputs(node.meta.get("val"), conv))
        out.append(NodeRecord(node.name, call.target, "", call, tuple(a.name for a in node.all_input_nodes)))
    return out


def _nbytes(t: Any) -> int:
    return int(t.numel() * t.element_size()) if isinstance(t, torch.Tensor) else 0


def _block_linear_weights(model: torch.nn.Module, repeated: dict[str, str]) -> dict[str, dict[str, int]]:
    """The first block's Linear weights per repeated list, by path inside the block (the blocks are identical)."""
    out: dict[str, dict[str, int]] = {}
    for lst in repeated:
        blocks = getattr(model, lst, None)
        if isinstance(blocks, torch.nn.ModuleList) and len(blocks):
            out[lst] = {name: m.weight.numel() for name, m in blocks[0].named_modules()
                        if isinstance(m, torch.nn.Linear)}
    return out


def _block_inputs(model: torch.nn.Module, repeated: dict[str, str], kwargs: dict[str, Any]) -> dict[str, int]:
    """Bytes of the tensors each block receives that no earlier block received (a forward on meta with hooks)."""
    seen: set[int] = set()
    per: dict[str, list[int]] = {}
    hooks = []

    def hook(lst: str) -> Any:
        def fn(_mod: Any, args: tuple[Any, ...], kw: dict[str, Any]) -> None:
            tot = 0
            for v in list(args) + list(kw.values()):
                for t in (v if isinstance(v, (tuple, list)) else (v,)):
                    if isinstance(t, torch.Tensor) and id(t) not in seen:
                        seen.add(id(t))
                        tot += _nbytes(t)
            per.setdefault(lst, []).append(tot)
        return fn

    for lst in repeated:
        blocks = getattr(model, lst, None)
        if isinstance(blocks, torch.nn.ModuleList):
            for b in blocks:
                hooks.append(b.register_forward_pre_hook(hook(lst), with_kwargs=True))
    try:
        with torch.no_grad():
            model(**kwargs)
    finally:
        for h in hooks:
            h.remove()
    # the last block's count: the first block also brings the shared tensors (temb, RoPE), counted once
    return {lst: v[-1] for lst, v in per.items()}


def capture_joint(
    model_config: dict[str, Any],
    adapter: Adapter,
    dtype: str,
    dims: dict[str, int],
    blocks: dict[str, int] | None = None,
    *,
    lora_rank: int = 0,
    lora_targets: tuple[str, ...] = DEFAULT_TARGETS,
    attention: str = "flash",
) -> JointGraph:
    """Trace forward + backward of the model (``blocks``: repeated list -> block count, None: the config's).

    ``lora_rank`` 0: full fine-tuning (every parameter trainable); otherwise LoRA of that rank
    on the Linear layers ``lora_targets`` names.
    """
    from functorch.compile import aot_module, default_partition

    if attention not in ATTENTION:
        raise ConfigError(f"unknown attention kernel {attention!r} (known: {', '.join(ATTENTION)})")
    overrides = {adapter.repeated[lst]: n for lst, n in (blocks or {}).items()}
    model = build_model(model_config, dtype, overrides)
    model.train()
    kwargs = adapter.inputs(model_config, dims, DTYPES[dtype])
    for v in kwargs.values():
        if isinstance(v, torch.Tensor):
            v.requires_grad_(False)
    lift_tensor_attributes(model)
    ran: set[str] = set()  # the Python files of every function the forward calls (AOTAutograd's graphs carry no stack traces)

    def called(frame: Any, _event: str, _arg: Any) -> None:  # a 'call' event per Python function; no line tracing
        ran.add(frame.f_code.co_filename)

    before = sys.gettrace()
    sys.settrace(called)
    try:
        with attention_kernel(attention), as_exporting():
            block_inputs = _block_inputs(model, adapter.repeated, kwargs)
    finally:
        sys.settrace(before)
    lift_tensor_attributes(model)  # what that forward cached lazily (Z-Image's RoPE table) is lifted too
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    block_linear = _block_linear_weights(model, adapter.repeated)
    lora_layers: list[str] = []
    if lora_rank:
        lora_layers = apply_lora(model, lora_rank, lora_targets, adapter.repeated, DTYPES[dtype])
    params = list(model.parameters())
    graphs: dict[str, torch.fx.GraphModule] = {}

    def keep(name: str) -> Any:
        def compiler(gm: torch.fx.GraphModule, _example: Any) -> Any:
            graphs[name] = gm
            return gm
        return compiler

    try:
        with warnings.catch_warnings(), attention_kernel(attention), as_exporting():
            warnings.simplefilter("ignore")
            compiled = aot_module(model, fw_compiler=keep("forward"), bw_compiler=keep("backward"),
                                  partition_fn=default_partition)  # what eager saves; no recompute
            out = compiled(**kwargs)
            pred = out[0] if isinstance(out, (tuple, list)) else out.sample
            preds = list(pred) if isinstance(pred, (tuple, list)) else [pred]  # Z-Image: one tensor per image
            losses = [torch.nn.functional.mse_loss(p.float(), torch.zeros_like(p, dtype=torch.float32)) for p in preds]
            loss = torch.stack(losses).sum() if len(losses) > 1 else losses[0]
            loss.backward()
    except ConfigError:
        raise
    except Exception as e:  # torch raises many kinds; one project error
        raise TraceError(f"forward+backward trace failed for {model_config['_class_name']}: {type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}") from e
    fw = graphs["forward"]
    outputs = [n for n in fw.graph.nodes if n.op == "output"][0].args[0]
    n_user = len(outputs) - len([n for n in graphs["backward"].graph.nodes if n.op == "placeholder"
                                 and not n.name.startswith("tangents")])
    saved: dict[str, int] = {}
    storages: set[Any] = set()
    for node in outputs[n_user:]:
        val = node.meta.get("val") if isinstance(node, torch.fx.Node) else None
        if not isinstance(val, torch.Tensor):
            continue
        key = node.name
        base = node
        while base.op == "call_function" and target_name(base.target) in _VIEWS:  # views share the storage
            base = base.args[0]
        if base.name in storages or base.op == "placeholder":  # parameters and inputs: counted as weights / inputs
            continue
        storages.add(base.name)
        bval = base.meta.get("val")
        saved[key] = max(_nbytes(val), _nbytes(bval))
    backward = _records(graphs["backward"])
    # AOTAutograd's partition re-runs a fused attention forward in the backward graph to regenerate its RNG
    # outputs (philox seed/offset: unused at dropout 0); eager autograd saves the output and the log-sum-exp
    # instead.  Those calls are dropped from the backward and their two tensors counted as saved.
    rerun = {r.name for r in backward if r.target in _FUSED_FORWARD}
    for r in backward:
        if r.name in rerun:
            saved[r.name] = int(r.call.outputs[0].nbytes + r.call.outputs[1].nbytes)
    backward = [r for r in backward if r.name not in rerun and not (r.target == "operator.getitem" and r.uses
                                                                     and r.uses[0] in rerun)]
    pred_bytes = sum(_nbytes(o.meta.get("val")) for o in outputs[:1] if isinstance(o, torch.fx.Node))
    counts = {lst: len(getattr(model, lst)) for lst in adapter.repeated if isinstance(getattr(model, lst, None),
                                                                                      torch.nn.ModuleList)}
    return JointGraph(
        forward=_records(fw),
        backward=backward,
        saved=saved,
        input_bytes=sum(_nbytes(v) for v in kwargs.values()),
        output_bytes=pred_bytes,
        blocks=counts,
        parameters=sum(p.numel() for p in params),
        trainable_parameters=sum(p.numel() for p in params if p.requires_grad),
        parameter_bytes=sum(_nbytes(p) for p in params),
        trainable_bytes=sum(_nbytes(p) for p in params if p.requires_grad),
        block_input_bytes=block_inputs,
        lora_layers=lora_layers,
        trainable_shapes=_shapes([p for p in params if p.requires_grad]),
        linear_weight_parameters=linear,
        block_linear_weights=block_linear,
        trainable_tensors=sum(1 for p in params if p.requires_grad),
        sources=source_files(tuple(sorted(ran)), model),
    )


def _shapes(params: list[torch.Tensor]) -> dict[tuple[int, ...], int]:
    out: dict[tuple[int, ...], int] = {}
    for p in params:
        key = tuple(int(d) for d in p.shape)
        out[key] = out.get(key, 0) + 1
    return out


def capture_training(
    model_config: dict[str, Any],
    adapter: Adapter,
    dtype: str,
    dims: dict[str, int],
    *,
    lora_rank: int = 0,
    lora_targets: tuple[str, ...] = DEFAULT_TARGETS,
    attention: str = "flash",
    replicate: bool = True,
) -> dict[str, JointGraph]:
    """The graphs to cost a training step of the full model: ``"base"`` at one block per repeated list and,
    per list, the graph with two blocks of it (``replicate=False``: ``"full"``, every block traced)."""
    kw = {"lora_rank": lora_rank, "lora_targets": lora_targets, "attention": attention}
    names = graph_names(model_config, adapter, replicate)
    if names == ("full",):
        return {"full": capture_joint(model_config, adapter, dtype, dims, None, **kw)}  # type: ignore[arg-type]
    lists = names[1:]
    base = dict.fromkeys(lists, 1)
    out = {"base": capture_joint(model_config, adapter, dtype, dims, base, **kw)}  # type: ignore[arg-type]
    for lst in lists:
        out[lst] = capture_joint(model_config, adapter, dtype, dims, dict(base, **{lst: 2}), **kw)  # type: ignore[arg-type]
    return out


def graph_names(model_config: dict[str, Any], adapter: Adapter, replicate: bool = True) -> tuple[str, ...]:
    """The graphs :func:`capture_training` makes: ``("full",)``, or ``("base", <each repeated list of 2+ blocks>)``."""
    lists = [lst for lst, key in adapter.repeated.items()
             if isinstance(n := model_config.get(key), int) and not isinstance(n, bool) and n > 1]
    return ("base", *lists) if replicate and lists else ("full",)


_FUSED_FORWARD = frozenset({"aten._scaled_dot_product_flash_attention.default",
                            "aten._scaled_dot_product_efficient_attention.default"})
_VIEWS = frozenset({"aten.view.default", "aten._unsafe_view.default", "aten.t.default", "aten.transpose.int",
                    "aten.permute.default", "aten.expand.default", "aten.slice.Tensor", "aten.select.int",
                    "aten.unsqueeze.default", "aten.squeeze.dim", "aten.squeeze.default", "aten.alias.default",
                    "aten.detach.default", "aten.unflatten.int", "aten.split.Tensor", "aten.split_with_sizes.default"})
