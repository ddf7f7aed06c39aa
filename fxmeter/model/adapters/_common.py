"""Shared pieces of the DiT adapters: category tables and small geometry helpers."""

from __future__ import annotations

from typing import Any

from fxmeter.errors import WorkloadError

ANY = None
MATMUL = frozenset({"matmul"})
ATTN = frozenset({"attention"})
NORM = frozenset({"norm"})
CONV = frozenset({"conv"})

Rules = tuple[tuple[str, frozenset[str] | None, str], ...]


def joint_dit_categories(blocks: tuple[str, ...], embed: str, head: str = r"norm_out|proj_out") -> Rules:
    """Categories of an MM-DiT (joint text+image attention: Flux, SD3, HunyuanVideo).

    ``blocks`` are the top-level ModuleList names; ``embed`` a regex of the
    top-level embedding modules.
    """
    b = "|".join(blocks)
    return (
        (rf"^({b})\.\d+\.attn(\.|$)", ATTN, "attention_core"),
        (rf"^({b})\.\d+\.attn(\.|$)", MATMUL, "attention_proj"),
        (r".", NORM, "norms"),
        (r"^$", NORM, "norms"),
        (rf"^({b})\.\d+\.attn$", ANY, "rope"),
        (rf"^({b})\.\d+\.(ff|ff_context|proj_mlp|act_mlp)(\.|$)", ANY, "ffn"),
        (rf"^({b})\.\d+\.proj_out(\.|$)", ANY, "fused_out_proj"),
        (rf"^({b})\.\d+(\.|$)", ANY, "modulation"),
        (rf"^({embed})(\.|$)", ANY, "embeddings"),
        (rf"^({head})(\.|$)", ANY, "head"),
        (r"^$", ANY, "head"),
    )


def tp_roles(blocks: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Megatron-style TP roles of the linear layers of diffusers' ``Attention`` and ``FeedForward`` inside
    the repeated ``blocks`` (xDiT ``ColumnParallelLinear`` / ``RowParallelLinear``): q/k/v (and the joint
    text's ``add_*_proj``) and the FFN's first layer split their outputs (column), the output projections
    and the FFN's second layer their inputs (row, then an all-reduce); q/k norms, RoPE and the activation
    work on the column shard (sharded)."""
    b = rf"^({'|'.join(blocks)})\.\d+"
    return (
        (rf"{b}\.attn\d?\.(to_q|to_k|to_v|add_q_proj|add_k_proj|add_v_proj)$", "column"),
        (rf"{b}\.attn\d?\.(to_out\.0|to_add_out)$", "row"),
        (rf"{b}\.attn\d?\.norm_(q|k|added_q|added_k)$", "sharded"),
        (rf"{b}\.attn\d?$", "sharded"),
        (rf"{b}\.(ff|ffn|ff_context)\.net\.0\.proj$", "column"),
        (rf"{b}\.(ff|ffn|ff_context)\.net\.0$", "sharded"),
        (rf"{b}\.(ff|ffn|ff_context)\.net\.2$", "row"),
        (rf"{b}\.proj_mlp$", "column"),
        (rf"{b}\.act_mlp$", "sharded"),
        (rf"{b}\.proj_out$", "row"),
    )


def attention_dims(config: dict[str, Any], layers: int, text_len: int, tokens: int,
                   mlp_ratio: float = 4.0) -> dict[str, int | None]:
    """ModelDims of a diffusers DiT from ``num_attention_heads`` x ``attention_head_dim`` (hidden) and an FFN
    of ``mlp_ratio`` x hidden (diffusers ``FeedForward(mult=4)``, ``mlp_ratio`` of the single blocks)."""
    heads, head_dim = int(config["num_attention_heads"]), int(config["attention_head_dim"])
    hidden = heads * head_dim
    return {"heads": heads, "head_dim": head_dim, "hidden": hidden, "ffn": int(hidden * mlp_ratio), "layers": layers,
            "text_len": text_len, "tokens": tokens}


def video_frames(frames: int, temporal: int, label: str) -> tuple[int, list[str]]:
    """``frames`` rounded down to ``temporal * k + 1`` (as the video pipelines do), with a note."""
    notes: list[str] = []
    if frames % temporal != 1 and temporal > 1:
        rounded = max(frames // temporal * temporal + 1, 1)
        notes.append(f"frames={frames} is not {temporal}k+1; rounded to {rounded} as diffusers' {label} does")
        frames = rounded
    return frames, notes


def divisible(height: int, width: int, by: int, why: str) -> None:
    if height % by or width % by:
        raise WorkloadError(f"height and width must be divisible by {by} ({why}); got {height}x{width}")


#: ``qk_norm`` values diffusers' ``Attention`` accepts (attention_processor.Attention.__init__)
QK_NORMS = (None, "layer_norm", "fp32_layer_norm", "layer_norm_across_heads", "rms_norm", "rms_norm_across_heads", "l2")


def image_only(frames: int, label: str) -> list[str]:
    """An image model takes ``frames`` = 1 (one image per batch item): anything else is refused."""
    if frames != 1:
        raise WorkloadError(f"{label} generates images: frames must be 1, got {frames} (use --batch for several images)")
    return []
