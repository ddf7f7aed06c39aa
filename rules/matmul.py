"""Matrix multiplies: tensor-core FLOPs = 2 x multiply-accumulates, as FlopCounterMode.

``linear(x[..., K], W[N, K], b[N])``: 2*M*K*N tensor-core FLOPs (M = rows of x),
plus M*N CUDA-core FLOPs for the bias add when there is a bias (FlopCounterMode
counts ``addmm`` as the matmul alone, so the bias never enters the tensor-core
count).  Bytes: x, W, b read once; the output written once.

Each rule counts what the op dispatches to in torch, because that is what
FlopCounterMode (and a GPU) sees:

* ``matmul``/``linear`` mirror ``at::native::_matmul_impl``: a matrix-vector product
  (``dot``, ``mv``) is GEMV work on CUDA cores (FlopCounterMode counts it as 0),
  everything else is ``mm``/``bmm``.  With one operand 1-D and the other at least
  3-D, torch picks ``mv`` or ``bmm`` from strides and ``requires_grad``, which a
  trace does not record: the rule refuses (the op is listed as unmodeled).
* ``einsum`` mirrors ``at::native::einsum``: operands aligned, diagonals taken,
  then contracted pairwise (left to right, or along the ``path`` the graph
  carries when opt_einsum chose one), each pair by ``sumproduct_pair`` as one
  ``bmm``, with dimensions that only one operand holds summed first.
* ``addmm``/``baddbmm``: ``beta*self + alpha*(a @ b)``: the add is 1 CUDA-core FLOP
  per output element (none when ``beta == 0``, which does not read ``self``), and
  each scale other than 1 is one more.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from . import Cost, Num, OpCall, numel, register

OUT = ("out",)


def _io(call: OpCall, tc: Num, cc: Num = 0, unread: Any = None) -> Cost:
    read = call.read_bytes() - (unread.nbytes if unread is not None else 0)
    return Cost(tc, cc, read, call.written_bytes())


def _matmul(a: Sequence[Num], b: Sequence[Num], out_numel: Num) -> tuple[Num, Num] | None:
    """(tensor-core, CUDA-core) FLOPs of ``torch.matmul(a, b)``; None where torch's kernel is layout-dependent."""
    k = a[-1]
    if len(a) == 1 and len(b) == 1:  # dot
        return 0, 2 * k
    if len(a) == 2 and len(b) == 1:  # mv
        return 0, 2 * a[0] * k
    if (len(a) == 1 and len(b) >= 3) or (len(a) >= 3 and len(b) == 1):
        return None  # mv after folding or bmm: decided by strides/requires_grad (at::native::should_fold)
    # 1-D @ 2-D is unsqueeze(0).mm; the rest is mm or bmm over the broadcast batch: 2*out*K either way
    return 2 * out_numel * k, 0


@register("aten.linear.default", family="matmul")
@register("aten.linear.out", family="matmul", out_args=OUT)
def linear(call: OpCall) -> Cost | None:
    """2*M*K*N (+ M*N bias adds on CUDA cores); a 1-D weight is ``matmul(x, w)``."""
    x, w = call.arg(0, "input"), call.arg(1, "weight")
    bias = call.arg(2, "bias")
    adds = call.out.numel if bias is not None else 0
    if w.ndim == 1:
        flops = _matmul(x.shape, w.shape, call.out.numel)
        return None if flops is None else _io(call, flops[0], flops[1] + adds)
    n, k = w.shape
    m = numel(x.shape[:-1])
    return _io(call, 2 * m * k * n, adds)


@register("aten.mm.default", "aten.mm.dtype", family="matmul")
@register("aten.mm.out", "aten.mm.dtype_out", family="matmul", out_args=OUT)
def mm(call: OpCall) -> Cost:
    """a[M,K] @ b[K,N]: 2*M*K*N."""
    a, b = call.arg(0, "self"), call.arg(1, "mat2")
    m, k = a.shape
    n = b.shape[1]
    return _io(call, 2 * m * k * n)


def _scaled_add(call: OpCall, out_numel: Num) -> tuple[Num, Any]:
    """CUDA-core FLOPs of ``beta*self + alpha*product`` and the tensor left unread."""
    beta, alpha = call.arg(None, "beta", 1), call.arg(None, "alpha", 1)
    if beta == 0:  # BLAS ignores self: nothing added, nothing read
        return (out_numel if alpha != 1 else 0), call.arg(0, "self")
    return out_numel * (1 + (beta != 1) + (alpha != 1)), None


@register("aten.addmm.default", "aten.addmm_.default", "aten.addmm.dtype", family="matmul")
@register("aten.addmm.out", "aten.addmm.dtype_out", family="matmul", out_args=OUT)
def addmm(call: OpCall) -> Cost:
    """beta*bias + alpha*(a[M,K] @ b[K,N]): 2*M*K*N tensor-core, M*N CUDA-core for the add."""
    a, b = call.arg(1, "mat1"), call.arg(2, "mat2")
    m, k = a.shape
    n = b.shape[1]
    cc, unread = _scaled_add(call, m * n)
    return _io(call, 2 * m * k * n, cc, unread)


@register("aten.bmm.default", "aten.bmm.dtype", family="matmul")
@register("aten.bmm.out", "aten.bmm.dtype_out", family="matmul", out_args=OUT)
def bmm(call: OpCall) -> Cost:
    """a[B,M,K] @ b[B,K,N]: 2*B*M*K*N."""
    a, b = call.arg(0, "self"), call.arg(1, "mat2")
    bb, m, k = a.shape
    n = b.shape[2]
    return _io(call, 2 * bb * m * k * n)


@register("aten.baddbmm.default", "aten.baddbmm_.default", "aten.baddbmm.dtype", family="matmul")
@register("aten.baddbmm.out", "aten.baddbmm.dtype_out", family="matmul", out_args=OUT)
def baddbmm(call: OpCall) -> Cost:
    """beta*bias + alpha*(a[B,M,K] @ b[B,K,N]): 2*B*M*K*N tensor-core, B*M*N CUDA-core."""
    a, b = call.arg(1, "batch1"), call.arg(2, "batch2")
    bb, m, k = a.shape
    n = b.shape[2]
    cc, unread = _scaled_add(call, bb * m * n)
    return _io(call, 2 * bb * m * k * n, cc, unread)


@register("aten.matmul.default", family="matmul")
@register("aten.matmul.out", family="matmul", out_args=OUT)
def matmul(call: OpCall) -> Cost | None:
    """Broadcasting matmul: 2 * (batch of the output) * M * K * N; matrix-vector on CUDA cores."""
    a, b = call.arg(0, "self"), call.arg(1, "other")
    flops = _matmul(a.shape, b.shape, call.out.numel)
    return None if flops is None else _io(call, *flops)


@register("aten.mv.default", "aten.dot.default", "aten.vdot.default", family="matmul")
@register("aten.mv.out", "aten.dot.out", "aten.vdot.out", family="matmul", out_args=OUT)
def matvec(call: OpCall) -> Cost:
    """GEMV / dot: 2*M*K on CUDA cores (no tensor cores; FlopCounterMode counts 0)."""
    a = call.arg(0, "self")
    return _io(call, 0, 2 * a.numel)


# ---------------------------------------------------------------------------------------------
# einsum: a transcription of at::native::einsum and sumproduct_pair (aten/src/ATen/native/Linear.cpp)
# on shapes.  An operand's dims are aligned to one index space (output labels, then contraction
# labels); a size of 1 is a broadcast (absent) dim, exactly as torch tests it.

_ELL = "..."


def _parse(spec: str) -> list[str] | None:
    """Labels of one operand (``"..."`` for an ellipsis); None for what torch rejects."""
    out: list[str] = []
    i = 0
    while i < len(spec):
        c = spec[i]
        if c == " ":
            i += 1
        elif c == ".":
            if spec[i : i + 3] != _ELL or _ELL in out:
                return None
            out.append(_ELL)
            i += 3
        elif c.isascii() and c.isalpha():
            out.append(c)
            i += 1
        else:
            return None
    return out


def _subscript(label: str) -> tuple[bool, str]:
    """torch's label order: A-Z before a-z."""
    return label.islower(), label


def _sumproduct_pair(left: list[Num], right: list[Num], sum_dims: list[int]) -> tuple[list[Num], Num, Num]:
    """(result shape, tensor-core, CUDA-core) of ``(left * right).sum(sum_dims, keepdim=True)``."""
    if not sum_dims:  # at::mul with broadcasting
        out = [lt if lt != 1 else rt for lt, rt in zip(left, right)]
        return out, 0, numel(out)
    left, right = list(left), list(right)
    cc: Num = 0
    lro: Num = 1
    lo: Num = 1
    ro: Num = 1
    summed: Num = 1
    out = []
    for i in range(len(left)):
        sl, sr = left[i] != 1, right[i] != 1
        if i in sum_dims:
            if sl and sr:
                summed = summed * left[i]
            elif sl:  # only in left: summed right away
                cc = cc + numel(left)
                left[i] = 1
            elif sr:
                cc = cc + numel(right)
                right[i] = 1
            out.append(1)
        elif sl and sr:
            lro = lro * left[i]
            out.append(left[i])
        elif sl:
            lo = lo * left[i]
            out.append(left[i])
        else:
            ro = ro * right[i]
            out.append(right[i])
    return out, 2 * lro * lo * summed * ro, cc  # bmm([lro, lo, sum], [lro, sum, ro])


def einsum_flops(
    equation: str, shapes: Sequence[Sequence[Num]], path: Sequence[int] | None = None
) -> tuple[Num, Num] | None:
    """(tensor-core, CUDA-core) FLOPs of ``torch.einsum``; None where torch would reject the call."""
    lhs, arrow, rhs = equation.partition("->")
    specs = lhs.split(",")
    if len(specs) != len(shapes) or not shapes:
        return None
    op_labels = [_parse(s) for s in specs]
    count: dict[str, int] = {}
    ell_num_dim = 0
    for labels, shape in zip(op_labels, shapes):
        if labels is None:
            return None
        named = [lb for lb in labels if lb != _ELL]
        if _ELL in labels:
            if len(named) > len(shape):
                return None
            ell_num_dim = max(ell_num_dim, len(shape) - len(named))
        elif len(named) != len(shape):
            return None
        for lb in named:
            count[lb] = count.get(lb, 0) + 1

    # index of each label in the aligned shape: output dims first, then contraction dims
    perm: dict[str, int] = {}
    ell_index = 0
    if not arrow:  # implicit output: the ellipsis, then labels seen once, in subscript order
        ell_in_output, index = True, ell_num_dim
        for lb in sorted(count, key=_subscript):
            if count[lb] == 1:
                perm[lb], index = index, index + 1
    else:
        out_labels = _parse(rhs)
        if out_labels is None:
            return None
        ell_in_output, index = False, 0
        for lb in out_labels:
            if lb == _ELL:
                ell_index, index, ell_in_output = index, index + ell_num_dim, True
            elif lb not in count or lb in perm:
                return None
            else:
                perm[lb], index = index, index + 1
    out_num_dim = index
    if not ell_in_output:
        ell_index, index = index, index + ell_num_dim
    for lb in sorted(count, key=_subscript):
        if lb not in perm:
            perm[lb], index = index, index + 1

    # align every operand (diagonals for repeated labels are views); count the operands holding each dim
    dim_counts = [0] * index
    ops: deque[list[Num]] = deque()
    for labels, shape in zip(op_labels, shapes):
        assert labels is not None
        aligned: list[Num] = [1] * index
        placed = [False] * index
        d = 0
        for lb in labels:
            if lb == _ELL:
                covered = len(shape) - (len(labels) - 1)
                slots = [ell_index + j for j in range(ell_num_dim - covered, ell_num_dim)]
            elif placed[perm[lb]]:
                d += 1  # repeated label: torch takes the diagonal, a view
                continue
            else:
                slots = [perm[lb]]
            for slot in slots:
                if shape[d] != 1:
                    dim_counts[slot] += 1
                aligned[slot], placed[slot] = shape[d], True
                d += 1
        ops.append(aligned)

    steps = list(path) if path is not None else None
    if steps is not None and len(steps) != (1 if len(shapes) == 1 else 2 * (len(shapes) - 1)):
        return None
    tc: Num = 0
    cc: Num = 0
    while len(ops) > 1:
        i, j = 0, 1
        if steps is not None:
            i, j = sorted(steps[:2])
            steps = steps[2:]
            if i == j or i < 0 or j >= len(ops):
                return None
        a, b = ops[i], ops[j]
        del ops[j]
        del ops[i]
        sum_dims: list[int] = []
        a_sum: list[int] = []
        b_sum: list[int] = []
        for dim in range(out_num_dim, index):
            if a[dim] != 1 and b[dim] != 1:
                dim_counts[dim] -= 1
                if dim_counts[dim] == 1:  # no other operand holds it: contract now
                    sum_dims.append(dim)
                    dim_counts[dim] = 0
            elif dim_counts[dim] == 1:  # only this operand holds it: sum it out first
                if a[dim] != 1:
                    a_sum.append(dim)
                    dim_counts[dim] = 0
                elif b[dim] != 1:
                    b_sum.append(dim)
                    dim_counts[dim] = 0
        if a_sum:
            cc = cc + numel(a)
            a = [1 if dim in a_sum else s for dim, s in enumerate(a)]
        if b_sum:
            cc = cc + numel(b)
            b = [1 if dim in b_sum else s for dim, s in enumerate(b)]
        result, t, c = _sumproduct_pair(a, b, sum_dims)
        tc, cc = tc + t, cc + c
        if steps is not None:
            ops.append(result)
        else:
            ops.appendleft(result)
    if len(shapes) == 1 and index > out_num_dim:  # one operand: a sum over the contraction dims
        cc = cc + numel(ops[0])
    return tc, cc


@register("aten.einsum.default", family="matmul")
def einsum(call: OpCall) -> Cost | None:
    """What ``torch.einsum`` dispatches: one ``bmm`` per contracted pair (tensor cores), ``sum``/``mul``
    on CUDA cores (1 per element summed, 1 per product).

    One operand (``"nhwpqc->nchpwq"``, SD3's unpatchify) multiplies nothing: a pure
    permutation is counted as a copy (0 FLOPs), a reduction costs 1 CUDA-core FLOP per
    element it sums.  An equation torch would reject is refused (unmodeled).
    """
    equation: str = call.arg(0, "equation")
    operands = call.arg(1, "tensors")
    path = call.arg(None, "path")
    flops = einsum_flops(equation, [t.shape for t in operands], path)
    return None if flops is None else _io(call, *flops)
