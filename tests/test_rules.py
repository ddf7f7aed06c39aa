"""Per-rule tests, the arithmetic written out beside each expected number."""

from __future__ import annotations

from typing import Any

import pytest
import sympy

from fxmeter import rules
from fxmeter.rules import Cost, OpCall, TensorMeta
from tests.rule_schema import schema_checked_args  # noqa: F401  (fixture)

# every argument a rule reads by position or name is checked against the op's real schema
pytestmark = pytest.mark.usefixtures("schema_checked_args")


def t(*shape: int | sympy.Expr, dtype: str = "bfloat16") -> TensorMeta:
    size = {"bfloat16": 2, "float16": 2, "float32": 4, "float64": 8, "int64": 8}[dtype]
    return TensorMeta(tuple(shape), dtype, size)


def cost(target: str, *args: object, out: TensorMeta | tuple[TensorMeta, ...], **kwargs: object) -> Any:
    """The rule's Cost for this call (None where the rule refuses it)."""
    outs = out if isinstance(out, tuple) else (out,)
    rule = rules.lookup(target)
    assert rule is not None, target
    return rule.fn(OpCall(target, args, kwargs, outs))


def cost_into(target: str, *args: object, out: TensorMeta, **kwargs: object) -> Any:
    """An out variant: ``out`` passed as the ``out=`` argument and produced as the output."""
    rule = rules.lookup(target)
    assert rule is not None, target
    return rule.fn(OpCall(target, args, {**kwargs, "out": out}, (out,)))


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


# --- regressions from the outside audit (issue 10): each reads its arguments where the schema has them ---


def test_underscore_convolution_reads_transposed_from_its_schema() -> None:
    # aten._convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups, ...):
    # x[2, 4, 9, 9], W[4, 6, 3, 3], stride 2, padding 1, output_padding 1 -> out[2, 6, 18, 18].
    # Transposed: 2 * N * prod(W) * prod(input spatial) = 2 * 2 * 216 * 81 = 69,984 (the output's 18*18 gave 4x that)
    x, w, out = t(2, 4, 9, 9), t(4, 6, 3, 3), t(2, 6, 18, 18)
    tail = ([2, 2], [1, 1], [1, 1], True, [1, 1], 1)
    assert cost("aten._convolution.default", x, w, None, *tail, False, False, True, True, out=out).tensor_core_flops == 69_984
    assert cost("aten._convolution.deprecated", x, w, None, *tail, False, False, True, out=out).tensor_core_flops == 69_984
    assert cost("aten.convolution.default", x, w, None, *tail, out=out).tensor_core_flops == 69_984
    assert cost_into("aten.convolution.out", x, w, None, *tail, out=out) == cost("aten.convolution.default", x, w, None, *tail, out=out)
    # not transposed: x[2, 4, 9, 9] * W[6, 4, 3, 3] -> out[2, 6, 7, 7]: 2 * 2 * 216 * 49 = 42,336
    fwd = ([1, 1], [0, 0], [1, 1], False, [0, 0], 1)
    assert cost("aten._convolution.default", x, t(6, 4, 3, 3), None, *fwd, False, False, True, True, out=t(2, 6, 7, 7)).tensor_core_flops == 42_336


def test_unbatched_convolutions_count_a_batch_of_one() -> None:
    # conv2d on x[4, 9, 9] (no batch dim), W[6, 4, 3, 3] -> out[6, 7, 7]: 2 * 1 * (6*4*9) * (7*7) = 21,168
    assert cost("aten.conv2d.default", t(4, 9, 9), t(6, 4, 3, 3), out=t(6, 7, 7)).tensor_core_flops == 21_168
    # conv_transpose2d on x[4, 9, 9], W[4, 6, 3, 3] -> out[6, 11, 11]: 2 * 1 * (4*6*9) * (9*9) = 34,992
    assert cost("aten.conv_transpose2d.input", t(4, 9, 9), t(4, 6, 3, 3), out=t(6, 11, 11)).tensor_core_flops == 34_992
    # grouped, strided transposed conv with output_padding: x[2, 4, 5, 5], W[4, 3, 3, 3] (groups 2 -> Cout 6),
    # stride 2, padding 1, output_padding 1 -> out[2, 6, 10, 10]: 2 * 2 * (4*3*9) * (5*5) = 10,800
    c = cost("aten.conv_transpose2d.input", t(2, 4, 5, 5), t(4, 3, 3, 3), t(6), [2, 2], [1, 1], [1, 1], 2, out=t(2, 6, 10, 10))
    assert (c.tensor_core_flops, c.cuda_core_flops) == (10_800, 2 * 6 * 10 * 10)  # + one bias add per output


def test_einsum_of_three_contracts_left_to_right() -> None:
    # "ij,jk,kl->il" over i=3, j=4, k=5, l=6, as torch runs it: (ij,jk) -> bmm 2*3*4*5 = 120, then
    # (ik,kl) -> bmm 2*3*5*6 = 180: 300 (FlopCounterMode's count; one 5-index contraction, 2*3*4*5*6 = 720, is not)
    ops = [t(3, 4), t(4, 5), t(5, 6)]
    assert cost("aten.einsum.default", "ij,jk,kl->il", ops, out=t(3, 6)).tensor_core_flops == 300
    # the path opt_einsum would put in the graph, (jk,kl) first: 2*4*5*6 = 240, then (ij,jl): 2*3*4*6 = 144
    assert cost("aten.einsum.default", "ij,jk,kl->il", ops, path=[1, 2, 0, 1], out=t(3, 6)).tensor_core_flops == 384


def test_einsum_diagonals_traces_and_lone_dims() -> None:
    # "ii->" is a trace: the diagonal is a view, then 4 elements summed
    assert cost("aten.einsum.default", "ii->", [t(4, 4)], out=t()).cuda_core_flops == 4
    # "ij->" sums all 3*4 = 12 elements (a full reduction is still a reduction)
    assert cost("aten.einsum.default", "ij->", [t(3, 4)], out=t()).cuda_core_flops == 12
    # "ijk,jl->il": k is only in the first operand, so torch sums it out first (2*3*4 = 24 adds),
    # then contracts j: bmm 2 * 2*3*5 = 60
    c = cost("aten.einsum.default", "ijk,jl->il", [t(2, 3, 4), t(3, 5)], out=t(2, 5))
    assert (c.tensor_core_flops, c.cuda_core_flops) == (60, 24)
    # "ij,kl->ijkl" contracts nothing: one broadcast multiply per output element, 2*3*4*5 = 120
    c = cost("aten.einsum.default", "ij,kl->ijkl", [t(2, 3), t(4, 5)], out=t(2, 3, 4, 5))
    assert (c.tensor_core_flops, c.cuda_core_flops) == (0, 120)


def test_an_einsum_torch_would_reject_is_unmodeled_not_guessed() -> None:
    from fxmeter.cost.analyze import node_cost

    call = OpCall("aten.einsum.default", ("ij,jk->k", [t(2, 3)]), {}, (t(3),))  # one operand for two subscripts
    assert node_cost(call.target, call) == ("matmul", None)  # None: listed in unmodeled_ops


def test_matrix_vector_products_run_on_cuda_cores() -> None:
    # FlopCounterMode counts dot and mv as 0: they are GEMV, not tensor-core work; 2*M*K on CUDA cores
    assert cost("aten.matmul.default", t(5), t(5), out=t()) == Cost(0, 2 * 5, 10 * 2, 2)
    assert cost("aten.matmul.default", t(3, 5), t(5), out=t(3)).cuda_core_flops == 2 * 3 * 5
    assert cost("aten.mv.default", t(3, 5), t(5), out=t(3)).cuda_core_flops == 2 * 3 * 5
    # 1-D @ 2-D is unsqueeze(0).mm: tensor cores, 2*1*5*4 = 40
    assert cost("aten.matmul.default", t(5), t(5, 4), out=t(4)).tensor_core_flops == 40
    # a vector times a 3-D tensor runs as mv or bmm depending on strides: refused, not guessed
    assert cost("aten.matmul.default", t(2, 3, 5), t(5), out=t(2, 3)) is None
    assert cost("aten.linear.default", t(2, 3, 5), t(5), None, out=t(2, 3)) is None


def test_addmm_beta_and_alpha() -> None:
    bias, a, b = t(5), t(3, 4), t(4, 5)
    # beta=0: BLAS ignores self: 2*3*4*5 = 120 tensor-core, no add, self not read ((12 + 20) bf16 elements)
    assert cost("aten.addmm.default", bias, a, b, beta=0, out=t(3, 5)) == Cost(120, 0, (12 + 20) * 2, 15 * 2)
    # beta=0.5, alpha=2: scale self, scale the product, add: 3 per output element, 3*15 = 45
    assert cost("aten.addmm.default", bias, a, b, beta=0.5, alpha=2, out=t(3, 5)).cuda_core_flops == 45
    # baddbmm(self[2, 3, 5], batch1[2, 3, 4], batch2[2, 4, 5]): 2*2*3*4*5 = 240 and 2*3*5 = 30 adds
    c = cost("aten.baddbmm.default", t(2, 3, 5), t(2, 3, 4), t(2, 4, 5), out=t(2, 3, 5))
    assert (c.tensor_core_flops, c.cuda_core_flops) == (240, 30)


def test_attention_masks_where_each_overload_takes_them() -> None:
    q, k, v, mask = t(1, 2, 10, 8), t(1, 2, 7, 8), t(1, 2, 7, 4), t(10, 7)
    scores = 2 * 10 * 7  # B*H*Lq*Lk = 140
    tc = 2 * scores * 8 + 2 * scores * 4  # Q K^T with E = 8, P V with Ev = 4: 3360
    # _scaled_dot_product_flash_attention_for_cpu takes attn_mask by keyword only: +1 per score
    c = cost("aten._scaled_dot_product_flash_attention_for_cpu.default", q, k, v, attn_mask=mask, out=(t(1, 2, 10, 4), t(1, 2, 10)))
    assert (c.tensor_core_flops, c.cuda_core_flops) == (tc, 7 * scores)
    # efficient attention's position 3 is attn_bias
    c = cost("aten._scaled_dot_product_efficient_attention.default", q, k, v, mask, False, out=(t(1, 2, 10, 4), t(1, 2, 0)))
    assert c.cuda_core_flops == 7 * scores
    # quantized flash attention's position 3 is q_descale, not a mask
    c = cost("aten._scaled_dot_product_flash_attention.quantized", q, k, v, t(1), t(1), t(1), out=(t(1, 2, 10, 8), t(1, 2, 10)))
    assert c.cuda_core_flops == 6 * scores
    # grouped-query attention: 8 query heads over 2 KV heads: 2*1*8*10*7*16 + 2*1*8*10*7*12 = 31,360
    gqa = cost("aten.scaled_dot_product_attention.default", t(1, 8, 10, 16), t(1, 2, 7, 16), t(1, 2, 7, 12), enable_gqa=True, out=t(1, 8, 10, 12))
    assert gqa.tensor_core_flops == 17_920 + 13_440 == 31_360
    # broadcast batch (q batch 1, k/v batch 2 -> out batch 2): 2 * (2*4*5*7) * (8 + 6) = 7,840
    b = cost("aten.scaled_dot_product_attention.default", t(1, 4, 5, 8), t(2, 4, 7, 8), t(2, 4, 7, 6), out=t(2, 4, 5, 6))
    assert b.tensor_core_flops == 7_840


def test_casts_read_copy_where_the_schema_puts_it() -> None:
    x = t(4, 4)
    # to.dtype(self, dtype, non_blocking, copy): copy=True given positionally forces a 16-element copy
    assert cost("aten.to.dtype", x, "bfloat16", False, True, out=t(4, 4)) == Cost(0, 0, 32, 32)
    # to.device(self, device, dtype, non_blocking, copy)
    assert cost("aten.to.device", x, "cpu", "bfloat16", False, True, out=t(4, 4)) == Cost(0, 0, 32, 32)
    assert cost("aten.to.device", x, "cpu", "bfloat16", False, False, out=t(4, 4)) == Cost()  # returns self
    # _to_copy.out: a copy into out=, which is written, not read
    assert cost_into("aten._to_copy.out", x, out=t(4, 4)) == Cost(0, 0, 32, 32)


def test_group_norm_and_native_group_norm_agree() -> None:
    # x[2, 8, 4, 4] fp32, 4 groups: N = 256, rows = batch*groups = 8
    x, w, b = t(2, 8, 4, 4, dtype="float32"), t(8, dtype="float32"), t(8, dtype="float32")
    stats = (t(2, 4, dtype="float32"), t(2, 4, dtype="float32"))
    gn = cost("aten.group_norm.default", x, 4, w, b, 1e-5, True, out=x)
    # native_group_norm(input, weight, bias, N, C, HxW, group, eps) -> (out, mean, rstd)
    native = cost("aten.native_group_norm.default", x, w, b, 2, 8, 16, 4, 1e-5, out=(x, *stats))
    assert gn.cuda_core_flops == native.cuda_core_flops == 5 * 256 + 256 + 256 + 2 * 8 == 1808
    assert cost("aten.native_group_norm.default", x, None, None, 2, 8, 16, 4, 1e-5, out=(x, *stats)).cuda_core_flops == 5 * 256 + 16


def test_layer_norm_and_native_layer_norm_agree() -> None:
    # native_layer_norm also returns mean and rstd; only the normalised output counts as written
    x, w, b = t(2, 3, 8), t(8), t(8)
    plain = cost("aten.layer_norm.default", x, [8], w, b, 1e-6, out=x)
    native = cost("aten.native_layer_norm.default", x, [8], w, b, 1e-6, out=(x, t(2, 3, 1, dtype="float32"), t(2, 3, 1, dtype="float32")))
    assert plain == native == Cost(0, 5 * 48 + 48 + 48 + 2 * 6, (48 + 8 + 8) * 2, 48 * 2)


def test_in_place_and_out_variants_cost_what_their_op_costs() -> None:
    x = t(3, 4)
    # x.pow_(2) is aten.pow_.Scalar (the in-place pow.Tensor_Scalar): 12 elements, 1 each
    assert cost("aten.pow_.Scalar", x, 2, out=x) == cost("aten.pow.Tensor_Scalar", x, 2, out=x) == Cost(0, 12, 24, 24)
    assert cost("aten.pow_.Tensor", x, t(4), out=x).cuda_core_flops == 12
    # max(x, dim=1, out=(values, indices)): 12 compares; the out tensors are written, not read
    values, idx = t(3), t(3, dtype="int64")
    c = cost("aten.max.dim_max", x, 1, out=(values, idx), **{"max": values, "max_values": idx})
    assert c == Cost(0, 12, 24, 3 * 2 + 3 * 8)


def test_functional_copy_reads_only_its_source() -> None:
    # copy(self[8] bf16, src[8] f64): self only lends its shape and dtype: 8 conversions, src read (64 B), 16 B written
    assert cost("aten.copy.default", t(8), t(8, dtype="float64"), out=t(8)) == Cost(0, 8, 64, 16)
