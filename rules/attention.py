"""Scaled dot-product attention, counted as one IO-aware fused kernel.

For Q[B, H, Lq, E], K[B, Hk, Lk, E], V[B, Hk, Lk, Ev] (Hk = H, or a divisor of it
with grouped-query attention; any number of batch dims):

* tensor-core FLOPs: 2*B*H*Lq*Lk*E (Q K^T) + 2*B*H*Lq*Lk*Ev (P V), exactly
  torch.utils.flop_counter's ``sdpa_flop_count`` (no causal halving, as there).
  FlopCounterMode counts 0 for ``_scaled_dot_product_flash_attention_for_cpu``,
  ``_scaled_dot_product_fused_attention_overrideable`` and
  ``_scaled_dot_product_attention_math_for_mps`` (it has no formula for them);
  fxmeter counts them as the attention they compute.  The batch is the output's
  (query heads under GQA; broadcast batch dims as torch broadcasts them).
* CUDA-core FLOPs: 6 per score, B*H*Lq*Lk scores: scale, running max, subtract,
  exp, running sum, normalise; plus 1 per score for an additive mask.
* bytes: reads Q, K, V (and the mask), writes O; the Lq x Lk score matrix never
  touches memory (what flash / memory-efficient / cuDNN SDPA do on a GPU).
"""

from __future__ import annotations

from . import Cost, OpCall, numel, register

#: CUDA-core operations per attention score (scale, max, sub, exp, sum, div).
SOFTMAX_OPS_PER_SCORE = 6

#: where each overload takes its additive mask (schema position, None: keyword-only; and name); None: it has none
MASK: dict[str, tuple[int | None, str] | None] = {
    "aten.scaled_dot_product_attention.default": (3, "attn_mask"),
    "aten._scaled_dot_product_attention_math.default": (3, "attn_mask"),
    "aten._scaled_dot_product_attention_math_for_mps.default": (3, "attn_mask"),
    "aten._scaled_dot_product_flash_attention.default": None,
    "aten._scaled_dot_product_flash_attention.quantized": None,
    "aten._scaled_dot_product_flash_attention_for_cpu.default": (None, "attn_mask"),
    "aten._scaled_dot_product_efficient_attention.default": (3, "attn_bias"),
    "aten._scaled_dot_product_cudnn_attention.default": (3, "attn_bias"),
    "aten._scaled_dot_product_fused_attention_overrideable.default": (3, "attn_bias"),
}


def sdpa_cost(call: OpCall) -> Cost:
    """4*B*H*Lq*Lk*E tensor-core (E for Q K^T, Ev for P V), 6 (+1 masked) CUDA-core per score."""
    q, k, v = call.arg(0, "query"), call.arg(1, "key"), call.arg(2, "value")
    out = call.outputs[0]  # [*batch, Lq, Ev]: batch = B x query heads (GQA), broadcast as torch does
    lq, e = q.shape[-2], q.shape[-1]
    lk, ev = k.shape[-2], v.shape[-1]
    scores = numel(out.shape[:-2]) * lq * lk
    tc = 2 * scores * e + 2 * scores * ev
    spec = MASK[call.target]
    mask = call.arg(*spec) if spec is not None else None
    cc = SOFTMAX_OPS_PER_SCORE * scores + (scores if mask is not None and not isinstance(mask, (bool, float)) else 0)
    # IO-aware: outputs other than O (logsumexp, rng state) are not counted as traffic.
    return Cost(tc, cc, call.read_bytes(), out.nbytes)


register(*MASK, family="attention")(sdpa_cost)
