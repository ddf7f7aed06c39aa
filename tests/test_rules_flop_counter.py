"""Differential tests: every tensor-core rule against torch.utils.flop_counter.FlopCounterMode.

Each case runs the real op on meta tensors under FlopCounterMode and applies fxmeter's rule to
the :class:`OpCall` capture would build from the same values (capture's own converter), over
shapes drawn by hypothesis: broadcast batch dims, transposed and sliced (non-contiguous)
operands, grouped/dilated/strided/padded and unbatched convolutions, transposed convolutions
with output_padding, grouped-query attention with its own Lk and Ev.  A smaller set of cases
goes through ``torch.export`` and capture's node conversion end to end.

Where torch's kernel choice cannot be read from shapes (a vector times a >= 3-D tensor runs as
``mv`` or ``bmm`` depending on strides), the rule must refuse (None: unmodeled), never guess.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from fxmeter import rules
from fxmeter.model.capture import _Converter, _outputs, target_name
from fxmeter.rules import Cost, OpCall
from fxmeter.rules.matmul import einsum_flops
from tests.rule_schema import schema_checked_args  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("schema_checked_args")

aten = torch.ops.aten
# deterministic (derandomize, no example database); the schema-check fixture is stateless across examples
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
CONVERT = _Converter({})
size = st.integers(1, 4)


def meta(shape: tuple[int, ...], layout: str = "contiguous") -> torch.Tensor:
    """A meta tensor of ``shape``: contiguous, transposed (dims reversed in memory) or sliced (strided)."""
    if layout == "transposed" and len(shape) > 1:
        return torch.empty(*reversed(shape), device="meta").permute(*reversed(range(len(shape))))
    if layout == "sliced" and shape:
        return torch.empty(*shape[:-1], 2 * shape[-1], device="meta")[..., ::2]
    return torch.empty(shape, device="meta")


layouts = st.sampled_from(["contiguous", "transposed", "sliced"])


def flop_counter(fn: Callable[[], Any]) -> tuple[int, Any]:
    with FlopCounterMode(display=False) as fc:
        out = fn()
    return fc.get_total_flops(), out


def rule_cost(op: torch._ops.OpOverload, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> Cost | None:
    """The rule applied to the OpCall capture builds from these values (capture.py's node loop)."""
    call = OpCall(
        target_name(op),
        tuple(CONVERT.arg(a) for a in args),
        {k: CONVERT.arg(v) for k, v in kwargs.items()},
        _outputs(out, CONVERT),
    )
    rule = rules.lookup(call.target)
    assert rule is not None, call.target
    return rule.fn(call)


def check(op: torch._ops.OpOverload, *args: Any, reference: Callable[[], Any] | None = None, **kwargs: Any) -> Cost:
    """Run ``op`` under FlopCounterMode (or ``reference``, for ops it has no formula for); compare."""
    flops, out = flop_counter(lambda: op(*args, **kwargs))
    if reference is not None:
        flops, _ = flop_counter(reference)
    cost = rule_cost(op, args, kwargs, out)
    assert cost is not None, f"{op} refused {args} {kwargs}"
    assert cost.tensor_core_flops == flops, f"{op}: fxmeter {cost.tensor_core_flops}, FlopCounterMode {flops}"
    return cost


# --- matmul family ------------------------------------------------------------------------------------


@st.composite
def matmul_operands(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor]:
    """Two operands of torch.matmul (1-D to 4-D), batch dims broadcast (a 1 on either side)."""
    m, k, n = draw(size), draw(size), draw(size)
    batch = draw(st.lists(st.integers(2, 3), max_size=2))
    a_nd, b_nd = draw(st.integers(1, 2 + len(batch))), draw(st.integers(1, 2 + len(batch)))

    def operand(nd: int, core: tuple[int, ...]) -> torch.Tensor:
        lead = (
            tuple(d if draw(st.booleans()) else 1 for d in batch[len(batch) - (nd - len(core)) :])
            if nd > len(core)
            else ()
        )
        return meta(lead + core, draw(layouts))

    a = operand(a_nd, (m, k) if a_nd >= 2 else (k,))
    b = operand(b_nd, (k, n) if b_nd >= 2 else (k,))
    return a, b


@pytest.mark.slow
@SETTINGS
@given(matmul_operands())
def test_matmul(operands: tuple[torch.Tensor, torch.Tensor]) -> None:
    a, b = operands
    flops, out = flop_counter(lambda: aten.matmul.default(a, b))
    cost = rule_cost(aten.matmul.default, (a, b), {}, out)
    if (a.ndim == 1 and b.ndim >= 3) or (a.ndim >= 3 and b.ndim == 1):
        assert cost is None  # mv or bmm: torch decides from strides and requires_grad
    else:
        assert cost is not None and cost.tensor_core_flops == flops
        # a matrix-vector product is GEMV work on CUDA cores, 2*M*K, never dropped
        assert cost.tensor_core_flops + cost.cuda_core_flops == 2 * out.numel() * a.shape[-1]


@SETTINGS
@given(
    size,
    size,
    size,
    size,
    layouts,
    layouts,
    st.sampled_from([0, 1, 0.5]),
    st.sampled_from([1, 2]),
    st.sampled_from(["n", "mn", "1n"]),
)
def test_mm_addmm_bmm_baddbmm(
    b: int, m: int, k: int, n: int, la: str, lb: str, beta: float, alpha: float, bias: str
) -> None:
    x, y = meta((m, k), la), meta((k, n), lb)
    shape = {"n": (n,), "mn": (m, n), "1n": (1, n)}[bias]
    check(aten.mm.default, x, y)
    check(aten.mm.dtype, x, y, torch.float32)
    c = check(aten.addmm.default, meta(shape), x, y, beta=beta, alpha=alpha)
    # beta*bias + alpha*(x @ y): the add (unless beta == 0) and each scale != 1, per output element
    assert c.cuda_core_flops == m * n * ((beta != 0) + (beta not in (0, 1)) + (alpha != 1))
    xb, yb = meta((b, m, k), la), meta((b, k, n), lb)
    check(aten.bmm.default, xb, yb)
    check(aten.baddbmm.default, meta((b, *shape) if bias == "mn" else shape), xb, yb, beta=beta, alpha=alpha)
    # FlopCounterMode has no formula for the in-place forms (its registry holds aten.addmm, not aten.addmm_)
    check(
        aten.addmm_.default,
        meta((m, n)),
        x,
        y,
        beta=beta,
        alpha=alpha,
        reference=lambda: aten.addmm.default(meta((m, n)), x, y),
    )
    check(
        aten.baddbmm_.default,
        meta((b, m, n)),
        xb,
        yb,
        beta=beta,
        alpha=alpha,
        reference=lambda: aten.bmm.default(xb, yb),
    )
    check(aten.mm.out, x, y, out=meta((m, n)))
    check(aten.bmm.out, xb, yb, out=meta((b, m, n)))


@SETTINGS
@given(st.lists(st.integers(1, 3), max_size=3), size, size, st.booleans(), st.booleans(), layouts)
def test_linear(lead: list[int], k: int, n: int, vector_weight: bool, bias: bool, layout: str) -> None:
    x = meta((*lead, k), layout)
    w = meta((k,) if vector_weight else (n, k))
    b = meta(() if vector_weight else (n,)) if bias else None
    try:
        flops, out = flop_counter(lambda: aten.linear.default(x, w, b))
    except RuntimeError:  # torch rejects a 1-D weight with a bias where it would fuse into addmm
        assume(False)
        raise
    cost = rule_cost(aten.linear.default, (x, w, b), {}, out)
    if vector_weight and x.ndim >= 3:
        assert cost is None  # matmul(x, w): mv or bmm by strides
        return
    assert cost is not None and cost.tensor_core_flops == flops


# --- einsum -------------------------------------------------------------------------------------------


class DispatchCounter(TorchDispatchMode):
    """What torch actually runs for an einsum: bmm FLOPs, elements summed, products formed."""

    def __init__(self) -> None:
        super().__init__()
        self.tensor_core = 0
        self.cuda_core = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        packet = func._overloadpacket
        if packet is aten.bmm:
            (bb, m, k), n = args[0].shape, args[1].shape[2]
            self.tensor_core += 2 * bb * m * k * n
        elif packet is aten.sum:
            self.cuda_core += args[0].numel()
        elif packet is aten.mul:
            self.cuda_core += out.numel()
        else:  # everything else an einsum runs moves or views data
            assert packet in {
                aten.permute,
                aten.view,
                aten.unsqueeze,
                aten.diagonal,
                aten.movedim,
                aten._unsafe_view,
                aten.reshape,
                aten.clone,
                aten.squeeze,
                aten.expand,
                aten.alias,
            }, func
        return out


LABELS = "abcdeA"


@st.composite
def einsum_case(draw: st.DrawFn) -> tuple[str, list[tuple[int, ...]], list[int] | None]:
    """An equation torch accepts: repeated labels (diagonals, traces), size-1 broadcasting,
    ellipses, implicit or explicit output, and an explicit contraction path."""
    extent = {lb: draw(st.integers(2, 4)) for lb in LABELS}
    ell = [draw(st.integers(2, 3)) for _ in range(draw(st.integers(0, 2)))]
    n_ops = draw(st.integers(1, 4))
    specs, shapes, seen = [], [], []
    for _ in range(n_ops):
        labels = draw(st.lists(st.sampled_from(LABELS), max_size=4))
        with_ell = bool(ell) and draw(st.booleans())
        covered = draw(st.integers(0, len(ell))) if with_ell else 0
        own = {lb: extent[lb] if draw(st.integers(0, 3)) else 1 for lb in labels}  # some labels broadcast (size 1)
        shape = [d if draw(st.integers(0, 3)) else 1 for d in ell[len(ell) - covered :]] + [own[lb] for lb in labels]
        specs.append(("..." if with_ell else "") + "".join(labels))
        shapes.append(tuple(shape))
        seen += labels
    lhs = ",".join(specs)
    if draw(st.booleans()):
        equation = lhs  # implicit output
    else:
        out = draw(st.permutations(sorted(set(seen))))[: draw(st.integers(0, len(set(seen))))]
        use_ell = any("..." in s for s in specs) and draw(st.booleans())
        equation = lhs + "->" + ("..." if use_ell else "") + "".join(out)
    path = None
    if n_ops > 2 and draw(st.booleans()):
        path = []
        for left in range(n_ops, 1, -1):
            i = draw(st.integers(0, left - 1))
            j = draw(st.integers(0, left - 1).filter(lambda j, i=i: j != i))
            path += [i, j]
    return equation, shapes, path


@SETTINGS
@given(einsum_case())
def test_einsum_is_what_torch_dispatches(case: tuple[str, list[tuple[int, ...]], list[int] | None]) -> None:
    equation, shapes, path = case
    operands = [meta(s) for s in shapes]
    kwargs = {"path": path} if path is not None else {}
    counter = DispatchCounter()
    with counter:
        aten.einsum.default(equation, operands, **kwargs)
    cost = check(aten.einsum.default, equation, operands, **kwargs)
    # the CUDA-core part too: every element summed and every product formed, as torch runs them
    assert (cost.tensor_core_flops, cost.cuda_core_flops) == (counter.tensor_core, counter.cuda_core)


def test_einsum_refuses_what_torch_rejects() -> None:
    assert einsum_flops("ij,jk->ik", [(2, 3)]) is None  # one operand for two subscripts
    assert einsum_flops("ij->k", [(2, 3)]) is None  # output label not in any input
    assert einsum_flops("i.j->i", [(2, 3)]) is None  # a lone '.'
    assert (
        einsum_flops("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)], path=[0, 0, 0, 1]) is None
    )  # contracts an operand with itself


# --- convolutions -------------------------------------------------------------------------------------

CONV_ENTRIES = [
    "convNd",
    "convNd.padding",
    "conv_transposeNd",
    "convolution",
    "_convolution",
    "_convolution.deprecated",
]


@st.composite
def conv_case(draw: st.DrawFn) -> tuple[torch._ops.OpOverload, tuple[Any, ...], dict[str, Any]]:
    nd = draw(st.integers(1, 3))
    entry = draw(st.sampled_from(CONV_ENTRIES))
    transposed = entry == "conv_transposeNd" or (
        entry.startswith(("convolution", "_convolution")) and draw(st.booleans())
    )
    groups = draw(st.integers(1, 3))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = [draw(st.integers(1, 3)) for _ in range(nd)]
    stride = [draw(st.integers(1, 3)) for _ in range(nd)]
    dilation = [draw(st.integers(1, 2)) for _ in range(nd)]
    output_padding = [draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation)] if transposed else [0] * nd
    spatial = [d * (k - 1) + 1 + draw(st.integers(0, 3)) for k, d in zip(kernel, dilation)]
    # a transposed output ((in-1)*stride - 2*pad + dil*(k-1) + output_padding + 1) must stay >= 1
    limits = [
        ((i - 1) * s + d * (k - 1) + o) // 2 if transposed else 2
        for i, s, d, k, o in zip(spatial, stride, dilation, kernel, output_padding)
    ]
    padding = [draw(st.integers(0, min(2, lim))) for lim in limits]
    batched = entry.startswith(("convolution", "_convolution")) or draw(st.booleans())
    x = meta((*([draw(st.integers(1, 2))] if batched else []), cin, *spatial), draw(layouts))
    w = meta((cin, cout // groups, *kernel) if transposed else (cout, cin // groups, *kernel), draw(layouts))
    b = meta((cout,)) if draw(st.booleans()) else None
    if entry == "convNd":
        return getattr(aten, f"conv{nd}d").default, (x, w, b, stride, padding, dilation, groups), {}
    if entry == "convNd.padding":
        mode = draw(st.sampled_from(["valid", "same"]))
        return (
            getattr(aten, f"conv{nd}d").padding,
            (x, w, b, [1] * nd if mode == "same" else stride, mode, dilation, groups),
            {},
        )
    if entry == "conv_transposeNd":
        op = aten.conv_transpose1d.default if nd == 1 else getattr(aten, f"conv_transpose{nd}d").input
        return op, (x, w, b, stride, padding, output_padding, groups, dilation), {}
    common = (x, w, b, stride, padding, dilation, transposed, output_padding, groups)
    if entry == "convolution":
        return aten.convolution.default, common, {}
    if entry == "_convolution":
        return aten._convolution.default, (*common, False, False, True, True), {}
    return aten._convolution.deprecated, (*common, False, False, True), {}


@SETTINGS
@given(conv_case())
def test_convolutions(case: tuple[torch._ops.OpOverload, tuple[Any, ...], dict[str, Any]]) -> None:
    op, args, kwargs = case
    cost = check(op, *args, **kwargs)
    out_numel = cost.bytes_written // 4  # fp32 output
    assert cost.cuda_core_flops == (out_numel if args[2] is not None else 0)  # the bias add


def test_transposed_underscore_convolution_is_not_a_forward_one() -> None:
    # the audit's case: aten._convolution with transposed=True, x[2, 4, 9, 9], W[4, 6, 3, 3], stride 2, padding 1,
    # output_padding 1 -> out[2, 6, 18, 18].  Transposed: 2 * N * prod(W) * prod(input spatial)
    # = 2 * 2 * (4*6*3*3) * (9*9) = 69,984; counting the output's 18*18 instead gives 4x too much (279,936).
    x, w = meta((2, 4, 9, 9)), meta((4, 6, 3, 3))
    c = check(aten._convolution.default, x, w, None, [2, 2], [1, 1], [1, 1], True, [1, 1], 1, False, False, True, True)
    assert c.tensor_core_flops == 2 * 2 * 216 * 81 == 69_984


# --- attention ----------------------------------------------------------------------------------------


@st.composite
def attention_case(draw: st.DrawFn) -> tuple[str, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, bool]:
    op = draw(st.sampled_from(sorted(k.removeprefix("aten.") for k in rules.attention.MASK)))
    b, hk, group = draw(size), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    lq, lk, e, ev = draw(size), draw(size), draw(st.sampled_from([2, 4, 8])), draw(st.sampled_from([2, 4, 8]))
    lead: tuple[int, ...] = (b, hk * group)
    kv_lead: tuple[int, ...] = (b, hk)
    if op in ("scaled_dot_product_attention.default", "_scaled_dot_product_attention_math.default") and draw(
        st.booleans()
    ):
        lead = kv_lead = draw(st.sampled_from([(b,), (b, 2, hk)]))  # 3-D or 5-D: any batch dims
        group = 1
    q = meta((*lead, lq, e), draw(layouts))
    k = meta((*kv_lead, lk, e), draw(layouts))
    v = meta((*kv_lead, lk, ev), draw(layouts))
    mask = meta(draw(st.sampled_from([(lq, lk), (*lead, lq, lk)]))) if draw(st.booleans()) else None
    return op, q, k, v, mask, group > 1


def _call_sdpa(
    name: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, gqa: bool
) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    op = getattr(getattr(aten, name.split(".")[0]), name.split(".")[1])
    if name in (
        "scaled_dot_product_attention.default",
        "_scaled_dot_product_attention_math.default",
        "_scaled_dot_product_attention_math_for_mps.default",
    ):
        return op, (q, k, v, mask), {"enable_gqa": gqa}
    if name == "_scaled_dot_product_flash_attention_for_cpu.default":
        return op, (q, k, v), {"attn_mask": mask}
    if name in ("_scaled_dot_product_efficient_attention.default", "_scaled_dot_product_cudnn_attention.default"):
        return op, (q, k, v, mask, False), {}
    if name == "_scaled_dot_product_fused_attention_overrideable.default":
        return op, (q, k, v, mask), {}
    if name == "_scaled_dot_product_flash_attention.quantized":
        return op, (q, k, v, None, None, None), {}
    return op, (q, k, v), {}


#: FlopCounterMode has no formula for these and counts 0: they are checked against the composite op
UNCOUNTED = {
    "_scaled_dot_product_flash_attention_for_cpu.default",
    "_scaled_dot_product_fused_attention_overrideable.default",
    "_scaled_dot_product_attention_math_for_mps.default",
}


@SETTINGS
@given(attention_case())
def test_attention(case: tuple[str, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, bool]) -> None:
    name, q, k, v, mask, gqa = case
    op, args, kwargs = _call_sdpa(name, q, k, v, mask, gqa)
    reference = (
        (lambda: aten.scaled_dot_product_attention.default(q, k, v, enable_gqa=gqa)) if name in UNCOUNTED else None
    )
    cost = check(op, *args, reference=reference, **kwargs)
    scores = q.shape[:-1].numel() * k.shape[-2]
    masked = mask is not None and name not in (
        "_scaled_dot_product_flash_attention.default",
        "_scaled_dot_product_flash_attention.quantized",
    )
    assert cost.cuda_core_flops == 6 * scores + (scores if masked else 0)


def test_flop_counter_really_skips_the_ops_checked_against_a_reference() -> None:
    # if FlopCounterMode learns them, compare against it directly instead
    q = meta((1, 2, 3, 4))
    for name in sorted(UNCOUNTED):
        op, args, kwargs = _call_sdpa(name, q, q, q, None, False)
        assert flop_counter(lambda op=op, args=args, kwargs=kwargs: op(*args, **kwargs))[0] == 0, name
    assert flop_counter(lambda: aten.addmm_.default(meta((2, 2)), meta((2, 2)), meta((2, 2))))[0] == 0
    assert flop_counter(lambda: aten.baddbmm_.default(meta((1, 2, 2)), meta((1, 2, 2)), meta((1, 2, 2))))[0] == 0


# --- through torch.export and capture's conversion ----------------------------------------------------


class Ops(torch.nn.Module):
    def __init__(self, fn: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.fn(*xs)


F = torch.nn.functional
EXPORTED: dict[str, tuple[Callable[..., torch.Tensor], tuple[tuple[int, ...], ...]]] = {
    "einsum of three": (lambda a, b, c: torch.einsum("ij,jk,kl->il", a, b, c), ((3, 4), (4, 5), (5, 6))),
    "einsum diagonal and broadcast": (lambda a, b: torch.einsum("bii,bij->bj", a, b), ((2, 3, 3), (1, 3, 5))),
    "transposed conv, output_padding": (
        lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1, groups=2),
        ((2, 4, 5, 5), (4, 3, 3, 3)),
    ),
    "unbatched conv": (lambda x, w: F.conv1d(x, w, stride=2, dilation=2), ((4, 11), (6, 4, 3))),
    "aten._convolution": (
        lambda x, w: aten._convolution.default(
            x, w, None, [2, 2], [1, 1], [1, 1], True, [1, 1], 1, False, False, True, True
        ),
        ((2, 4, 9, 9), (4, 6, 3, 3)),
    ),
    "broadcast matmul of transposes": (lambda a, b: torch.matmul(a.transpose(-1, -2), b), ((2, 1, 5, 3), (4, 5, 6))),
    "linear": (lambda x, w, b: F.linear(x, w, b), ((2, 3, 8), (16, 8), (16,))),
    "addmm with beta": (lambda c, a, b: torch.addmm(c, a, b, beta=0.5, alpha=2), ((5,), (3, 4), (4, 5))),
    "GQA attention": (
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, enable_gqa=True),
        ((1, 4, 6, 8), (1, 2, 5, 8), (1, 2, 5, 4)),
    ),
}


@pytest.mark.parametrize("name", list(EXPORTED))
def test_exported_graph_matches_flop_counter(name: str) -> None:
    fn, shapes = EXPORTED[name]
    inputs = tuple(torch.empty(*s, device="meta") for s in shapes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep = torch.export.export(Ops(fn), inputs, strict=False)
    total = 0
    for node in ep.graph.nodes:  # as fxmeter.capture.capture converts them
        if node.op != "call_function":
            continue
        call = OpCall(
            target_name(node.target),
            tuple(CONVERT.arg(a) for a in node.args),
            {k: CONVERT.arg(v) for k, v in node.kwargs.items()},
            _outputs(node.meta.get("val"), CONVERT),
        )
        if rules.is_free(call.target):
            continue
        rule = rules.lookup(call.target)
        assert rule is not None, call.target
        cost = rule.fn(call)
        assert cost is not None, call.target
        total += cost.tensor_core_flops
    flops, _ = flop_counter(lambda: fn(*inputs))
    assert flops > 0 and total == flops
