"""Kernel shapes: what a kernel-time model needs to know of a node beyond its FLOPs and bytes.

* GEMMs (``linear``, ``mm``, ``addmm``, ``bmm``, ``baddbmm``, ``matmul``): ``b`` (independent
  matrix products), ``m``, ``n``, ``k`` of ``C[m, n] = A[m, k] @ B[k, n]``.
* Convolutions, as the implicit GEMM cuDNN runs: ``b`` = groups, ``m`` = batch x output
  positions, ``n`` = output channels per group, ``k`` = input channels per group x kernel size.
* Attention (every SDPA overload): ``b`` (batch dims), ``h`` (query heads), ``lq``, ``lk``,
  ``d`` (query/key head dim), ``dv`` (value head dim).

Values are ints (static trace) or sympy expressions of the workload symbols (dynamic trace);
the analysis interns them as formulas.  Nodes of other families have no shape (``{}``).
"""

from __future__ import annotations

from typing import Any

from fxmeter.rules import OpCall, TensorMeta, numel

Shape = dict[str, Any]


def _matmul(call: OpCall, a: TensorMeta, b: TensorMeta) -> Shape:
    """torch.matmul's dispatch: a 2-D right operand folds the left's batch dims into m (one GEMM);
    otherwise the broadcast batch dims are independent products (a bmm)."""
    k = a.shape[-1]
    n = b.shape[-1]
    if b.ndim == 2:
        return {"b": 1, "m": numel(a.shape[:-1]), "n": n, "k": k}
    out = call.out
    return {"b": numel(out.shape[:-2]), "m": a.shape[-2] if a.ndim >= 2 else 1, "n": n, "k": k}


def gemm_shape(call: OpCall) -> Shape:
    """(b, m, n, k) of a matrix-multiply node ({} for matrix-vector products and einsum)."""
    t = call.target
    try:
        if t.startswith("aten.linear"):
            x, w = call.arg(0, "input"), call.arg(1, "weight")
            if w.ndim != 2:
                return {}
            return {"b": 1, "m": numel(x.shape[:-1]) if x.ndim >= 2 else 1, "n": w.shape[0], "k": x.shape[-1]}
        if t.startswith(("aten.mm", "aten.bmm")):
            a, b = call.args[0], call.args[1]
        elif t.startswith(("aten.addmm", "aten.baddbmm")):
            a, b = call.args[1], call.args[2]
        elif t.startswith("aten.matmul"):
            a, b = call.args[0], call.args[1]
        else:
            return {}
        if a.ndim < 2 or b.ndim < 2:
            return {}
        if a.ndim == 3 and b.ndim == 3:
            return {"b": a.shape[0], "m": a.shape[1], "n": b.shape[2], "k": a.shape[2]}
        return _matmul(call, a, b)
    except (AttributeError, IndexError, TypeError):
        return {}


def conv_shape(call: OpCall) -> Shape:
    """Implicit GEMM of a (possibly transposed, grouped) convolution."""
    try:
        x, w = call.args[0], call.args[1]
        out = call.out
        t = call.target
        groups = call.arg(8, "groups", 1) if t.startswith(("aten.convolution", "aten._convolution")) else None
        if groups is None:
            groups = call.arg(6, "groups", 1)
        groups = groups if isinstance(groups, int) or hasattr(groups, "free_symbols") else 1
        batched = x.ndim == w.ndim
        n_batch = x.shape[0] if batched else 1
        spatial = out.shape[2:] if batched else out.shape[1:]
        kernel = numel(w.shape[2:])
        transposed = "transpose" in t or (t.startswith(("aten.convolution", "aten._convolution")) and bool(call.arg(6, "transposed", False)))
        if transposed:  # dgrad-style GEMM over input positions: m = N x input positions, n = Cout/g x kernel
            in_spatial = x.shape[2:] if batched else x.shape[1:]
            return {"b": groups, "m": n_batch * numel(in_spatial), "n": w.shape[1] * kernel, "k": w.shape[0] // groups}
        return {"b": groups, "m": n_batch * numel(spatial), "n": w.shape[0] // groups, "k": w.shape[1] * kernel}
    except (AttributeError, IndexError, TypeError, ZeroDivisionError):
        return {}


def attention_shape(call: OpCall) -> Shape:
    try:
        q, k, v = call.args[0], call.args[1], call.args[2]
        b = numel(q.shape[:-3]) if q.ndim >= 4 else 1
        return {"b": b, "h": q.shape[-3], "lq": q.shape[-2], "lk": k.shape[-2], "d": q.shape[-1], "dv": v.shape[-1]}
    except (AttributeError, IndexError, TypeError):
        return {}


def kernel_shape(family: str, call: OpCall) -> Shape:
    """The kernel shape of a node of ``family`` (``{}`` when it has none)."""
    if family == "matmul":
        return gemm_shape(call)
    if family == "conv":
        return conv_shape(call)
    if family == "attention":
        return attention_shape(call)
    return {}


def out_dtype(call: OpCall) -> str:
    """The dtype of the node's first output ("" when it has none)."""
    return call.outputs[0].dtype if call.outputs else ""
