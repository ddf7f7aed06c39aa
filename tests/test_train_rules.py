"""Backward rules (rules/backward.py): the arithmetic written out."""

from __future__ import annotations

from fxmeter import rules
from fxmeter.rules import Cost, OpCall, TensorMeta


def t(*shape: int, dtype: str = "bfloat16", itemsize: int = 2) -> TensorMeta:
    return TensorMeta(tuple(shape), dtype, itemsize)


def cost(target: str, args: tuple, outputs: tuple, kwargs: dict | None = None) -> Cost:
    rule = rules.lookup(target)
    assert rule is not None, target
    out = rule.fn(OpCall(target, args, kwargs or {}, tuple(o for o in outputs if o is not None)))
    assert out is not None
    return out


def test_flash_attention_backward_is_five_matmuls() -> None:
    # Q,K,V [1, 12, 512, 128]: 2*12*512*512*(3*128 + 2*128) = 4,026,531,840 (torch's sdpa_backward_flop_count)
    q = t(1, 12, 512, 128)
    lse = t(1, 12, 512, dtype="float32", itemsize=4)
    args = (q, q, q, q, q, lse, None, None, 512, 512, 0.0, False, t(2), t(2))
    c = cost("aten._scaled_dot_product_flash_attention_backward.default", args, (q, q, q))
    assert c.tensor_core_flops == 2 * 12 * 512 * 512 * (3 * 128 + 2 * 128) == 4_026_531_840
    assert c.cuda_core_flops == 5 * 12 * 512 * 512 + 2 * 12 * 512 * 128
    assert c.bytes_read == 5 * q.nbytes + lse.nbytes
    assert c.bytes_written == 3 * q.nbytes


def test_efficient_attention_backward_cross_attention() -> None:
    # Q [1,12,512,128], K,V [1,12,64,128]: 2*12*512*64*(5*128)
    q, k = t(1, 12, 512, 128), t(1, 12, 64, 128)
    lse = t(1, 12, 512, dtype="float32", itemsize=4)
    args = (q, q, k, k, None, q, lse, t(2), t(2), 0.0, (True, True, True, False), False)
    c = cost("aten._scaled_dot_product_efficient_attention_backward.default", args, (q, k, k, None))
    assert c.tensor_core_flops == 2 * 12 * 512 * 64 * 640 == 503_316_480


def test_attention_backward_with_an_output_that_takes_no_gradient() -> None:
    # a None in the graph's call (no gradient flows into that output: Z-Image's padded caption tokens) is not read
    q = t(1, 12, 512, 128)
    lse = t(1, 12, 512, dtype="float32", itemsize=4)
    args = (None, q, q, q, None, q, lse, t(2), t(2), 0.0, (True, True, True, False), False)
    c = cost("aten._scaled_dot_product_efficient_attention_backward.default", args, (q, q, q, None))
    assert c.tensor_core_flops == 2 * 12 * 512 * 512 * (5 * 128)
    assert c.bytes_read == 4 * q.nbytes + lse.nbytes  # q, k, v, out and the logsumexp; no grad_out


def test_convolution_backward_input_and_weight_grads() -> None:
    # Wan patch embedding: x [1,16,2,32,32], W [1536,16,1,2,2], stride (1,2,2): out [1,1536,2,16,16]
    x, w, g = t(1, 16, 2, 32, 32), t(1536, 16, 1, 2, 2), t(1, 1536, 2, 16, 16)
    args = (g, x, w, [1536], [1, 2, 2], [0, 0, 0], [1, 1, 1], False, [0, 0, 0], 1, [True, True, True])
    c = cost("aten.convolution_backward.default", args, (x, w, t(1536)))
    fwd = 2 * 1 * (1536 * 16 * 1 * 2 * 2) * (2 * 16 * 16)  # 100,663,296: the forward's count
    assert fwd == 100_663_296
    assert c.tensor_core_flops == 2 * fwd  # grad_input + grad_weight (groups 1)
    assert c.cuda_core_flops == 1536 * 2 * 16 * 16  # the bias gradient: a sum over N x out spatial
    only_input = cost("aten.convolution_backward.default", args[:10] + ([True, False, False],), (x,))
    assert only_input.tensor_core_flops == fwd and only_input.cuda_core_flops == 0


def test_transposed_convolution_backward_is_refused() -> None:
    x, w = t(1, 16, 8, 8), t(16, 8, 2, 2)
    args = (t(1, 8, 16, 16), x, w, None, [2, 2], [0, 0], [1, 1], True, [0, 0], 1, [True, True, False])
    rule = rules.lookup("aten.convolution_backward.default")
    assert rule is not None
    assert rule.fn(OpCall("aten.convolution_backward.default", args, {}, (x, w, None))) is None


def test_norm_and_activation_backward_per_element() -> None:
    x = t(1, 512, 1536)
    n, r = 512 * 1536, 512
    ln = cost("aten.native_layer_norm_backward.default",
              (x, x, [1536], t(1, 512, 1), t(1, 512, 1), None, None, [True, False, False]), (x,))
    assert ln.cuda_core_flops == 9 * n + 2 * r
    lnw = cost("aten.native_layer_norm_backward.default",
               (x, x, [1536], t(1, 512, 1), t(1, 512, 1), t(1536), t(1536), [True, True, True]), (x, t(1536), t(1536)))
    assert lnw.cuda_core_flops == 9 * n + 3 * n + n + 2 * r
    rms = cost("aten._fused_rms_norm_backward.default", (x, x, [1536], t(1, 512, 1), t(1536), [True, True]),
               (x, t(1536)))
    assert rms.cuda_core_flops == 6 * n + 3 * n + 2 * r
    assert cost("aten.gelu_backward.default", (x, x), (x,), {"approximate": "tanh"}).cuda_core_flops == 14 * n
    assert cost("aten.gelu_backward.default", (x, x), (x,)).cuda_core_flops == 9 * n
    assert cost("aten.silu_backward.default", (x, x), (x,)).cuda_core_flops == 8 * n
    assert cost("aten._softmax_backward_data.default", (x, x, -1, "bfloat16"), (x,)).cuda_core_flops == 4 * n
    sc = cost("aten.slice_scatter.default", (x, t(1, 256, 1536), 1, 0, 256), (x,))
    assert sc == Cost(0, 0, x.nbytes + 256 * 1536 * 2, x.nbytes)
