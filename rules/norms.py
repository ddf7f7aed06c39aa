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


# layer_norm(input, normalized_shape, weight, bias, eps) and native_layer_norm (same positions; it also
# returns mean and rstd, R values each, which are not counted as traffic: layer_norm computes them too)
@register("aten.layer_norm.default", "aten.native_layer_norm.default", family="norm")
@register("aten.native_layer_norm.out", family="norm", out_args=("out0", "out1", "out2"))
def layer_norm(call: OpCall) -> Cost:
    """5*N + N (weight) + N (bias) + 2*R."""
    x = call.arg(0, "input")
    normalized = call.arg(1, "normalized_shape")
    n = x.numel
    rows = numel(x.shape[: x.ndim - len(normalized)])
    cc = 5 * n + _affine(call, 2, 3, n) + 2 * rows
    return Cost(0, cc, call.read_bytes(), call.outputs[0].nbytes)


# rms_norm(input, normalized_shape, weight, eps) and _fused_rms_norm (same positions; also returns rstd)
@register("aten.rms_norm.default", "aten._fused_rms_norm.default", family="norm")
def rms_norm(call: OpCall) -> Cost:
    """3*N + N (weight) + 3*R."""
    x = call.arg(0, "input")
    normalized = call.arg(1, "normalized_shape")
    n = x.numel
    rows = numel(x.shape[: x.ndim - len(normalized)])
    cc = 3 * n + _affine(call, 2, None, n) + 3 * rows
    return Cost(0, cc, call.read_bytes(), call.outputs[0].nbytes)


#: native_group_norm(input, weight, bias, N, C, HxW, group, eps): weight 1, bias 2, groups 6
NATIVE_GROUP_NORM = frozenset({"aten.native_group_norm.default", "aten.native_group_norm.out"})


# group_norm(input, num_groups, weight, bias, eps, cudnn_enabled)
@register("aten.group_norm.default", "aten.native_group_norm.default", family="norm")
@register("aten.native_group_norm.out", family="norm", out_args=("out0", "out1", "out2"))
def group_norm(call: OpCall) -> Cost:
    """5*N + N (weight) + N (bias) + 2*(batch*groups)."""
    x = call.arg(0, "input")
    native = call.target in NATIVE_GROUP_NORM
    groups = call.arg(6, "group") if native else call.arg(1, "num_groups")
    n = x.numel
    w_idx, b_idx = (1, 2) if native else (2, 3)
    cc = 5 * n + _affine(call, w_idx, b_idx, n) + 2 * x.shape[0] * groups
    return Cost(0, cc, call.read_bytes(), call.outputs[0].nbytes)
