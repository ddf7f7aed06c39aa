"""Per-rule tests, the arithmetic written out beside each expected number."""

from __future__ import annotations

import pytest
import sympy

from fxmeter import rules
from fxmeter.rules import Cost, OpCall, TensorMeta


def t(*shape: int | sympy.Expr, dtype: str = "bfloat16") -> TensorMeta:
    size = {"bfloat16": 2, "float16": 2, "float32": 4, "float64": 8, "int64": 8}[dtype]
    return TensorMeta(tuple(shape), dtype, size)


def cost(target: str, *args: object, out: TensorMeta | tuple[TensorMeta, ...], **kwargs: object) -> Cost:
    outs = out if isinstance(out, tuple) else (out,)
    rule = rules.lookup(target)
    assert rule is not None, target
    return rule.fn(OpCall(target, args, kwargs, outs))


def test_linear_with_bias() -> None:
    # x[2, 3, 8] @ W[16, 8]^T + b[16]: M = 2*3 = 6 rows
    c = cost("aten.linear.default", t(2, 3, 8), t(16, 8), t(16), out=t(2, 3, 16))
    assert c.tensor_core_flops == 2 * 6 * 8 * 16 == 1536
    assert c.cuda_core_flops == 6 * 16 == 96  # bias adds
    assert c.bytes_read == (48 + 128 + 16) * 2 == 384  # x, W, b in bf16
    assert c.bytes_written == 96 * 2 == 192


def test_linear_without_bias_is_pure_tensor_core() -> None:
    c = cost("aten.linear.default", t(4, 8), t(16, 8), None, out=t(4, 16))
    assert c == Cost(2 * 4 * 8 * 16, 0, (32 + 128) * 2, 64 * 2)  # 1024 FLOPs, 320 B, 128 B


def test_linear_symbolic_is_a_polynomial() -> None:
    b, n = sympy.symbols("batch tokens", positive=True, integer=True)
    c = cost("aten.linear.default", t(b, n, 5120), t(5120, 5120), t(5120), out=t(b, n, 5120))
    assert sympy.expand(c.tensor_core_flops - 2 * 5120 * 5120 * b * n) == 0
    assert c.tensor_core_flops.subs({b: 1, n: 75600}) == 2 * 75600 * 5120 * 5120


def test_mm_bmm_addmm() -> None:
    assert cost("aten.mm.default", t(3, 4), t(4, 5), out=t(3, 5)).tensor_core_flops == 2 * 3 * 4 * 5  # 120
    assert cost("aten.bmm.default", t(2, 3, 4), t(2, 4, 5), out=t(2, 3, 5)).tensor_core_flops == 2 * 2 * 3 * 4 * 5
    c = cost("aten.addmm.default", t(5), t(3, 4), t(4, 5), out=t(3, 5))
    assert (c.tensor_core_flops, c.cuda_core_flops) == (120, 15)  # the bias add is 3*5 CUDA-core


def test_einsum_contraction_and_permutation() -> None:
    # "bij,bjk->bik" over b=2, i=3, j=4, k=5: 2 * 2*3*4*5 = 240, as FlopCounterMode's bmm
    c = cost("aten.einsum.default", "bij,bjk->bik", [t(2, 3, 4), t(2, 4, 5)], out=t(2, 3, 5))
    assert c.tensor_core_flops == 240
    # SD3's unpatchify "nhwpqc->nchpwq" is a permutation: a copy, no FLOPs (FlopCounterMode: 0)
    x = t(1, 64, 64, 2, 2, 16)
    c = cost("aten.einsum.default", "nhwpqc->nchpwq", [x], out=t(1, 16, 64, 2, 64, 2))
    assert c == Cost(0, 0, 262144 * 2, 262144 * 2)  # 1*64*64*2*2*16 = 262,144 bf16 elements in, same out
    # a one-operand reduction "ij->i": 1 add per input element
    assert cost("aten.einsum.default", "ij->i", [t(3, 4)], out=t(3)).cuda_core_flops == 12


def test_conv3d_patch_embedding() -> None:
    # Wan patch embedding: x[1, 16, 21, 90, 160], W[5120, 16, 1, 2, 2] stride (1,2,2) -> out[1, 5120, 21, 45, 80]
    c = cost("aten.conv3d.default", t(1, 16, 21, 90, 160), t(5120, 16, 1, 2, 2), t(5120), out=t(1, 5120, 21, 45, 80))
    # 2 * batch * prod(W) * prod(out spatial) = 2 * 1 * (5120*16*4) * (21*45*80)
    assert c.tensor_core_flops == 2 * 327680 * 75600 == 49_545_216_000
    assert c.cuda_core_flops == 5120 * 75600  # bias


def test_sdpa_matches_flop_counter_formula() -> None:
    # Q, K, V [1, 40, 75600, 128]: 2*B*H*L*L*E (QK^T) + 2*B*H*L*L*E (PV)
    q = t(1, 40, 75600, 128)
    c = cost("aten.scaled_dot_product_attention.default", q, q, q, out=q)
    scores = 40 * 75600 * 75600
    assert c.tensor_core_flops == 4 * scores * 128 == 117_050_572_800_000
    assert c.cuda_core_flops == 6 * scores  # scale, max, sub, exp, sum, div per score
    assert c.bytes_read == 3 * 40 * 75600 * 128 * 2  # Q, K, V once; never the L x L matrix
    assert c.bytes_written == 40 * 75600 * 128 * 2


def test_sdpa_cross_attention_lengths() -> None:
    q, kv = t(2, 4, 10, 8), t(2, 4, 7, 8)
    c = cost("aten.scaled_dot_product_attention.default", q, kv, kv, out=q)
    assert c.tensor_core_flops == 2 * (2 * 4 * 10 * 7 * 8) * 2  # two matmuls of B*H*Lq*Lk*E MACs = 3584


def test_flop_counter_agrees_on_linear_and_sdpa() -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        x, w, b = torch.empty(2, 3, 8), torch.empty(16, 8), torch.empty(16)
        q = torch.empty(1, 2, 10, 8)
        with FlopCounterMode(display=False) as fc:
            torch.nn.functional.linear(x, w, b)
            torch.nn.functional.scaled_dot_product_attention(q, q, q)
    lin = cost("aten.linear.default", t(2, 3, 8), t(16, 8), t(16), out=t(2, 3, 16)).tensor_core_flops
    att = cost("aten.scaled_dot_product_attention.default", t(1, 2, 10, 8), t(1, 2, 10, 8), t(1, 2, 10, 8), out=t(1, 2, 10, 8))
    assert fc.get_total_flops() == lin + att.tensor_core_flops  # 1536 + 3200


def test_layer_norm_and_rms_norm() -> None:
    # N = 2*3*8 = 48 elements, R = 6 rows
    ln = cost("aten.layer_norm.default", t(2, 3, 8, dtype="float32"), [8], None, None, 1e-6, out=t(2, 3, 8, dtype="float32"))
    assert ln.cuda_core_flops == 5 * 48 + 2 * 6 == 252
    ln_affine = cost("aten.layer_norm.default", t(2, 3, 8), [8], t(8), t(8), 1e-6, out=t(2, 3, 8))
    assert ln_affine.cuda_core_flops == 5 * 48 + 48 + 48 + 2 * 6 == 348
    assert ln_affine.bytes_read == (48 + 8 + 8) * 2
    rms = cost("aten.rms_norm.default", t(2, 3, 8), [8], t(8), 1e-6, out=t(2, 3, 8))
    assert rms.cuda_core_flops == 3 * 48 + 48 + 3 * 6 == 210


def test_activations() -> None:
    x = t(10, 10)
    assert cost("aten.gelu.default", x, approximate="tanh", out=x).cuda_core_flops == 9 * 100
    assert cost("aten.gelu.default", x, out=x).cuda_core_flops == 5 * 100
    assert cost("aten.silu.default", x, out=x).cuda_core_flops == 4 * 100
    assert cost("aten.softmax.int", x, -1, out=x).cuda_core_flops == 5 * 100


def test_elementwise_broadcast_reads_each_operand_at_its_own_size() -> None:
    # [B=2, T=5, C=4] fp32 * [2, 1, 4] fp32 -> 40 multiplies
    c = cost("aten.mul.Tensor", t(2, 5, 4, dtype="float32"), t(2, 1, 4, dtype="float32"), out=t(2, 5, 4, dtype="float32"))
    assert c == Cost(0, 40, (40 + 8) * 4, 40 * 4)
    # a python scalar operand reads nothing
    assert cost("aten.add.Tensor", t(3), 1.0, out=t(3)).bytes_read == 3 * 2


def test_casts() -> None:
    same = cost("aten.to.dtype", t(4, 4), "bfloat16", out=t(4, 4))
    assert same == Cost()  # Tensor.to returns self: free
    up = cost("aten.to.dtype", t(4, 4), "float32", out=t(4, 4, dtype="float32"))
    assert up == Cost(0, 16, 16 * 2, 16 * 4)  # 16 conversions, 32 B in, 64 B out
    ta = cost("aten.type_as.default", t(4, dtype="float32"), t(9), out=t(4))
    assert ta == Cost(0, 4, 4 * 4, 4 * 2)  # `other` only lends its dtype: not read


def test_copy_and_cat() -> None:
    assert cost("aten.copy_.default", t(8), t(8, dtype="float64"), out=t(8)) == Cost(0, 8, 64, 16)
    assert cost("aten.cat.default", [t(2, 3), t(2, 5)], 1, out=t(2, 8)) == Cost(0, 0, (6 + 10) * 2, 16 * 2)


def test_registry_refuses_duplicates() -> None:
    with pytest.raises(RuntimeError, match="duplicate registrations"):
        rules.register("aten.linear.default", family="matmul")(lambda call: Cost())
    with pytest.raises(RuntimeError, match="duplicate registrations"):
        rules.register("aten.view.default", family="free")(lambda call: Cost())


def test_free_ops_are_not_rules() -> None:
    assert not set(rules.FREE_OPS) & set(rules.REGISTRY)
    assert rules.is_free("aten.view.default") and rules.lookup("aten.view.default") is None
    assert rules.lookup("aten.linear.default").family == "matmul"  # type: ignore[union-attr]
