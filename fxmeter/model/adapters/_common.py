"""Shared pieces of the DiT adapters: category tables and small geometry helpers."""

from __future__ import annotations

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
