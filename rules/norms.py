"""Normalisations, on CUDA cores.

Per normalised element (N = numel, R = N / prod(normalized_shape) rows):

* layer_norm: 5*N (sum for the mean, subtract, square, sum for the variance,
  scale by 1/std) + N per affine weight + N per affine bias + 2*R (eps add, rsqrt)
* rms_norm: 3*N (square, sum, scale) + N for the weight + 3*R (mean, eps add, rsqrt)
* group_norm: as layer_norm, with R = batch x groups

Bytes: input, weight and bias read once, output written once.
"""

from __future__ import annotations

from typing import Any

from . import Cost, OpCall, numel, register


def _affine(call: OpCall, weight_idx: int, bias_idx: int | None, n: Any) -> Any:
    extra: Any = 0
    if call.arg(weight_idx, "weight") is not None:
        extra = extra + n
    if bias_idx is not None and call.arg(bias_idx, "bias") is not None:
        extra = extra + n
    return extra


@register("aten.layer_norm.default", "aten.native_layer_norm.default", family="norm")
def layer_norm(call: OpCall) -> Cost:
    """5*N + N (weight) + N (bias) + 2*R."""
    x = call.args[0]
    normalized = call.arg(1, "normalized_shape")
    n = x.numel
    rows = numel(x.shape[: x.ndim - len(normalized)])
    cc = 5 * n + _affine(call, 2, 3, n) + 2 * rows
    return Cost(0, cc, call.read_bytes(), call.outputs[0].nbytes)


@register("aten.rms_norm.default", "aten._fused_rms_norm.default", family="norm")
def rms_norm(call: OpCall) -> Cost:
    """3*N + N (weight) + 3*R."""
    x = call.args[0]
    normalized = call.arg(1, "normalized_shape")
    n = x.numel
    rows = numel(x.shape[: x.ndim - len(normalized)])
    cc = 3 * n + _affine(call, 2, None, n) + 3 * rows
    return Cost(0, cc, call.read_bytes(), call.outputs[0].nbytes)


@register("aten.group_norm.default", "aten.native_group_norm.default", family="norm")
def group_norm(call: OpCall) -> Cost:
    """5*N + N (weight) + N (bias) + 2*(batch*groups)."""
    x = call.args[0]
    native = call.target.startswith("aten.native_group_norm")
    groups = call.args[6] if native else call.arg(1, "num_groups")
    n = x.numel
    w_idx, b_idx = (1, 2) if native else (2, 3)
    cc = 5 * n + _affine(call, w_idx, b_idx, n) + 2 * x.shape[0] * groups
    return Cost(0, cc, call.read_bytes(), call.outputs[0].nbytes)
