"""Backward ops of a training step (what AOTAutograd's backward graph dispatches).

Tensor-core FLOPs follow torch.utils.flop_counter exactly (so a forward+backward trace equals
FlopCounterMode over ``loss.backward()``):

* ``convolution_backward(grad_out, input, weight, ..., transposed, ..., groups, output_mask)``:
  grad_input (mask[0]) ``2*N*prod(W.shape)*prod(out spatial)`` (the forward's count);
  grad_weight (mask[1]) ``2*N*Cout*prod(out spatial)*Cin*prod(kernel)`` (torch's
  ``conv_backward_flop``: the forward's count times ``groups``); grad_bias (mask[2]) is a
  reduction: ``N*Cout*prod(out spatial)`` CUDA-core adds.  Transposed convolutions are refused.
* flash / efficient attention backward, Q[B,H,Lq,E], K[B,H,Lk,E], V[B,H,Lk,Ev]: five matmuls,
  ``2*B*H*Lq*Lk*(3*E + 2*Ev)`` (``sdpa_backward_flop_count``: the scores recomputed, dV, dP, dQ, dK).
  CUDA-core: 5 per score (scale, subtract the log-sum-exp, exp, dP - D, times P) plus
  ``2*B*H*Lq*Ev`` for D = rowsum(dO * O).  Bytes (IO-aware, as the forward): dO, Q, K, V, O and the
  log-sum-exp read; dQ, dK, dV written.

CUDA-core work of the elementwise backward ops, per element N (R rows for the norms):

* layer_norm backward: 9*N (x_hat = (x-mean)*rstd: 2; two row sums of g_hat and g_hat*x_hat: 3;
  dx = rstd*(g_hat - m1 - x_hat*m2): 4) + 3*N with a weight (g*w, g*x_hat, its sum) + N with a bias
  (sum of g) + 2*R (the two row means)
* rms_norm backward: 6*N (x*rstd: 1; row sum of g_hat*x: 2; dx = rstd*(g_hat - x*rstd^2*m): 3)
  + 3*N with a weight + 2*R
* gelu backward: 9 (erf form: erf, exp, 5 mul/add, times grad) or 14 (tanh form)
* silu backward: 8 (sigmoid: 4; s*(1 + x*(1 - s)): 3; times grad: 1)
* sigmoid / tanh backward from the output y: 3 (g*y*(1-y); g*(1-y*y))
* softmax backward from the output y: 4 (g*y, its row sum, subtract, times y)
* slice/select scatter: a copy (the input and the source read, the output written)

Bytes: every tensor argument read, every output written (the logical sizes, as everywhere).
"""

from __future__ import annotations

from . import Cost, OpCall, numel, register, register_rows


def _mask(call: OpCall, i: int | None, name: str, n: int) -> tuple[bool, ...]:
    m = call.arg(i, name)
    return tuple(bool(x) for x in m) if m is not None else (True,) * n


#: convolution_backward overloads (functional, out): grad_output 0, transposed 7, output_mask 10
CONV_BACKWARD = frozenset({"aten.convolution_backward.default", "aten.convolution_backward.out"})


@register("aten.convolution_backward.default", family="conv")
@register("aten.convolution_backward.out", family="conv", out_args=("out0", "out1", "out2"))
def convolution_backward(call: OpCall) -> Cost | None:
    """grad_input: the forward's FLOPs; grad_weight: the forward's x groups; grad_bias: a reduction."""
    g, x, w = call.arg(0, "grad_output"), call.arg(1, "input"), call.arg(2, "weight")
    if call.arg(7, "transposed"):
        return None
    first = 1 if x.ndim == w.ndim - 1 else 2
    batch = 1 if first == 1 else x.shape[0]
    out_sp = numel(g.shape[first:])
    kernel = numel(w.shape[2:])
    mask = _mask(call, 10, "output_mask", 3)
    tc = 0
    if mask[0]:
        tc += 2 * batch * numel(w.shape) * out_sp
    if mask[1]:
        tc += 2 * batch * w.shape[0] * out_sp * x.shape[first - 1] * kernel
    cc = batch * w.shape[0] * out_sp if mask[2] else 0
    return Cost(tc, cc, call.read_bytes(), call.written_bytes())


#: grad_out, query, key, value, out, logsumexp positions of each fused attention backward
ATTENTION_BACKWARD = {
    "aten._scaled_dot_product_flash_attention_backward.default": (0, 1, 2, 3, 4, 5),
    "aten._scaled_dot_product_efficient_attention_backward.default": (0, 1, 2, 3, 5, 6),
    "aten._scaled_dot_product_cudnn_attention_backward.default": (0, 1, 2, 3, 4, 5),
}
#: CUDA-core operations per score in the backward (scale, subtract lse, exp, dP - D, times P)
BACKWARD_OPS_PER_SCORE = 5


@register(*ATTENTION_BACKWARD, family="attention")
def attention_backward(call: OpCall) -> Cost:
    """2*B*H*Lq*Lk*(3*E + 2*Ev) tensor-core; 5 per score + 2*B*H*Lq*Ev CUDA-core."""
    ig, iq, ik, iv, io, il = ATTENTION_BACKWARD[call.target]
    dout, q, k, v, o, lse = (call.args[i] for i in (ig, iq, ik, iv, io, il))
    bh = numel(q.shape[:-2])
    lq, e, lk, ev = q.shape[-2], q.shape[-1], k.shape[-2], v.shape[-1]
    tc = 2 * bh * lq * lk * (3 * e + 2 * ev)
    cc = BACKWARD_OPS_PER_SCORE * bh * lq * lk + 2 * bh * lq * ev
    # a tensor the graph passes as None (no gradient flows into that output) is not read
    read = sum(t.nbytes for t in (dout, q, k, v, o, lse) if t is not None)
    return Cost(tc, cc, read, q.nbytes + k.nbytes + v.nbytes)


def _rows(x: object, normalized: tuple[object, ...]) -> object:
    return numel(x.shape[: x.ndim - len(normalized)])  # type: ignore[attr-defined]


@register("aten.native_layer_norm_backward.default", family="norm")
@register("aten.native_layer_norm_backward.out", family="norm", out_args=("out0", "out1", "out2"))
def layer_norm_backward(call: OpCall) -> Cost:
    """9*N + 3*N (weight) + N (bias) + 2*R."""
    x, normalized = call.arg(1, "input"), call.arg(2, "normalized_shape")
    n = x.numel
    mask = _mask(call, 7, "output_mask", 3)
    cc = 9 * n + 2 * _rows(x, normalized)  # type: ignore[operator]
    if call.arg(5, "weight") is not None:
        cc += 3 * n if mask[1] else n
    if call.arg(6, "bias") is not None and mask[2]:
        cc += n
    return Cost(0, cc, call.read_bytes(), call.written_bytes())


@register("aten._fused_rms_norm_backward.default", family="norm")
def rms_norm_backward(call: OpCall) -> Cost:
    """6*N + 3*N (weight) + 2*R."""
    x, normalized = call.arg(1, "input"), call.arg(2, "normalized_shape")
    n = x.numel
    mask = _mask(call, 5, "output_mask", 2)
    cc = 6 * n + 2 * _rows(x, normalized)  # type: ignore[operator]
    if call.arg(4, "weight") is not None:
        cc += 3 * n if mask[1] else n
    return Cost(0, cc, call.read_bytes(), call.written_bytes())


def _per_element(k: int):  # type: ignore[no-untyped-def]
    def rule(call: OpCall) -> Cost:
        return Cost(0, k * call.outputs[0].numel, call.read_bytes(), call.written_bytes())
    rule.__doc__ = f"{k} CUDA-core FLOPs per element."
    return rule


#: one rule object per cost (a variant and its functional op share their rule)
_PER_ELEMENT = {k: _per_element(k) for k in (3, 4, 8)}


GELU_BACKWARD_ERF = 9
GELU_BACKWARD_TANH = 14


@register("aten.gelu_backward.default", family="activation")
@register("aten.gelu_backward.grad_input", family="activation", out_args=("grad_input",))
def gelu_backward(call: OpCall) -> Cost:
    """9 per element (erf form), 14 (tanh form)."""
    per = GELU_BACKWARD_TANH if call.arg(None, "approximate", "none") == "tanh" else GELU_BACKWARD_ERF
    return Cost(0, per * call.outputs[0].numel, call.read_bytes(), call.written_bytes())


def _grad_input_rows(names: list[str], k: int, family: str) -> None:
    register(*(f"aten.{n}.default" for n in names), family=family)(_PER_ELEMENT[k])
    register(*(f"aten.{n}.grad_input" for n in names), family=family, out_args=("grad_input",))(_PER_ELEMENT[k])


_grad_input_rows(["silu_backward"], 8, "activation")
_grad_input_rows(["sigmoid_backward", "tanh_backward"], 3, "activation")
register("aten._softmax_backward_data.default", family="softmax")(_PER_ELEMENT[4])
register("aten._softmax_backward_data.out", family="softmax", out_args=("grad_input",))(_PER_ELEMENT[4])


def _scatter_copy(call: OpCall) -> Cost:
    """0 FLOPs: the input and the source read, the output written."""
    return Cost(0, 0, call.read_bytes(), call.written_bytes())


register_rows([("slice_scatter.default", None, "slice_scatter.out"),
               ("select_scatter.default", None, "select_scatter.out")], _scatter_copy, "copy")
