"""Matrix multiplies: tensor-core FLOPs = 2 x multiply-accumulates.

``linear(x[..., K], W[N, K], b[N])``: 2*M*K*N tensor-core FLOPs (M = rows of x),
plus M*N CUDA-core FLOPs for the bias add when there is a bias (FlopCounterMode
counts ``addmm`` as the matmul alone, so the bias never enters the tensor-core
count).  Bytes: x, W, b read once; the output written once.
"""

from __future__ import annotations

from . import Cost, OpCall, numel, register


def _io(call: OpCall, tc: object, cc: object = 0) -> Cost:
    return Cost(tc, cc, call.read_bytes(), call.written_bytes())


@register("aten.linear.default", family="matmul")
def linear(call: OpCall) -> Cost:
    """2*M*K*N (+ M*N bias adds on CUDA cores)."""
    x, w = call.arg(0, "input"), call.arg(1, "weight")
    bias = call.arg(2, "bias")
    n, k = w.shape
    m = numel(x.shape[:-1])
    return _io(call, 2 * m * k * n, m * n if bias is not None else 0)


@register("aten.mm.default", family="matmul")
def mm(call: OpCall) -> Cost:
    """a[M,K] @ b[K,N]: 2*M*K*N."""
    a, b = call.args[0], call.args[1]
    m, k = a.shape
    n = b.shape[1]
    return _io(call, 2 * m * k * n)


@register("aten.addmm.default", family="matmul")
def addmm(call: OpCall) -> Cost:
    """bias + a[M,K] @ b[K,N]: 2*M*K*N tensor-core, M*N CUDA-core for the add."""
    a, b = call.args[1], call.args[2]
    m, k = a.shape
    n = b.shape[1]
    return _io(call, 2 * m * k * n, m * n)


@register("aten.bmm.default", family="matmul")
def bmm(call: OpCall) -> Cost:
    """a[B,M,K] @ b[B,K,N]: 2*B*M*K*N."""
    a, b = call.args[0], call.args[1]
    bb, m, k = a.shape
    n = b.shape[2]
    return _io(call, 2 * bb * m * k * n)


@register("aten.baddbmm.default", family="matmul")
def baddbmm(call: OpCall) -> Cost:
    """bias + a[B,M,K] @ b[B,K,N]: 2*B*M*K*N tensor-core, B*M*N CUDA-core."""
    a, b = call.args[1], call.args[2]
    bb, m, k = a.shape
    n = b.shape[2]
    return _io(call, 2 * bb * m * k * n, bb * m * n)


@register("aten.matmul.default", family="matmul")
def matmul(call: OpCall) -> Cost:
    """Broadcasting matmul: 2 * (batch of the output) * M * K * N."""
    a, b = call.args[0], call.args[1]
    k = a.shape[-1]
    out = call.out
    if a.ndim == 1 and b.ndim == 1:
        return _io(call, 2 * k)
    return _io(call, 2 * out.numel * k)


@register("aten.einsum.default", family="matmul")
def einsum(call: OpCall) -> Cost:
    """Two or more operands: 2 x the product of every distinct index extent (one contraction).

    One operand (``"nhwpqc->nchpwq"``, SD3's unpatchify) multiplies nothing: a pure
    permutation is a copy (0 FLOPs), a reduction costs 1 CUDA-core FLOP per input element.
    """
    equation: str = call.args[0]
    operands = call.args[1]
    lhs, _, rhs = equation.replace(" ", "").partition("->")
    extents: dict[str, object] = {}
    for spec, t in zip(lhs.split(","), operands):
        for ch, size in zip(spec, t.shape):
            extents.setdefault(ch, size)
    if len(operands) == 1:
        reduces = bool(rhs) and len(set(rhs)) < len(set(lhs))
        return Cost(0, operands[0].numel if reduces else 0, call.read_bytes(), call.written_bytes())
    return _io(call, 2 * numel(extents.values()))
