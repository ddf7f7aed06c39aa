"""Scaled dot-product attention, counted as one IO-aware fused kernel.

For Q[B, H, Lq, E], K[B, Hk, Lk, E], V[B, Hk, Lk, Ev]:

* tensor-core FLOPs: 2*B*H*Lq*Lk*E (Q K^T) + 2*B*H*Lq*Lk*Ev (P V), exactly
  torch.utils.flop_counter's ``sdpa_flop_count`` (no causal halving, as there).
* CUDA-core FLOPs: 6 per score, B*H*Lq*Lk scores: scale, running max, subtract,
  exp, running sum, normalise; plus 1 per score for an additive mask.
* bytes: reads Q, K, V (and the mask), writes O; the Lq x Lk score matrix never
  touches memory (what flash / memory-efficient / cuDNN SDPA do on a GPU).
"""

from __future__ import annotations

from . import Cost, OpCall, register

#: CUDA-core operations per attention score (scale, max, sub, exp, sum, div).
SOFTMAX_OPS_PER_SCORE = 6


def sdpa_cost(call: OpCall) -> Cost:
    q, k, v = call.args[0], call.args[1], call.args[2]
    *batch, lq, e = q.shape
    lk = k.shape[-2]
    ev = v.shape[-1]
    bh = 1
    for d in batch:
        bh = bh * d
    scores = bh * lq * lk
    tc = 2 * scores * e + 2 * scores * ev
    mask = call.arg(3, "attn_mask")
    cc = SOFTMAX_OPS_PER_SCORE * scores + (scores if mask is not None and not isinstance(mask, (bool, float)) else 0)
    # IO-aware: outputs other than O (logsumexp, rng state) are not counted as traffic.
    return Cost(tc, cc, call.read_bytes(), call.outputs[0].nbytes)


register(
    "aten.scaled_dot_product_attention.default",
    "aten._scaled_dot_product_flash_attention.default",
    "aten._scaled_dot_product_flash_attention_for_cpu.default",
    "aten._scaled_dot_product_efficient_attention.default",
    "aten._scaled_dot_product_cudnn_attention.default",
    "aten._scaled_dot_product_attention_math.default",
    "aten._scaled_dot_product_fused_attention_overrideable.default",
    family="attention",
)(sdpa_cost)
