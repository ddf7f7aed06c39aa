"""What each bundled model's observation is checked against, shared by the observe test files.

The heavy checks (every bundled model's pipeline on meta, slow) live in their own files so that
pytest-xdist's ``--dist loadfile`` spreads them over the workers: ``test_observe_hand.py``,
``test_observe_axes.py``, ``test_observe_zoo.py`` and ``test_observe_zoo2.py``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fxmeter.model.registry import MODELS

#: the models whose hand adapters predate the observation (a zoo model checks itself in its own test file)
HAND_PLANNED = ("wan2.1-t2v-14b", "wan2.1-t2v-1.3b", "wan2.1-i2v-14b-480p", "wan2.1-i2v-14b-720p", "wan2.2-ti2v-5b",
                "wan2.2-t2v-a14b", "wan2.2-i2v-a14b", "flux.1-dev", "sd3.5-large", "hunyuanvideo", "cogvideox-5b",
                "ltx-video")
#: the hand-planned models less the ones whose class, pipeline and expert layout another one has: observed at a small
#: workload and one variant per knob (``test_observe_axes.py``), the other two at both workloads (``test_observe_hand.py``)
AXES_MODELS = tuple(m for m in HAND_PLANNED if m not in ("wan2.1-t2v-14b", "wan2.1-i2v-14b-720p"))


# -- the tiny folder -------------------------------------------------------------------------------------

# -- every bundled model (slow: full-size components on meta) -----------------------------------------------
#: what the observation found that the hand adapters say otherwise, per model (stage, what) -> why
KNOWN: dict[str, dict[tuple[str, str], str]] = {
    # Wan2.2-A14B ships UniPCMultistepScheduler (its scheduler_config.json, bundled): integer timesteps, so the
    # pipeline's t.expand(batch) is int64; the adapter feeds float32 (FlowMatchEuler's, Wan2.1 without a config)
    "wan2.2-t2v-a14b": {("transformer", "input timestep"): "int64 UniPC timesteps",
                        ("transformer_2", "input timestep"): "int64 UniPC timesteps"},
    "wan2.2-i2v-a14b": {("transformer", "input timestep"): "int64 UniPC timesteps",
                        ("transformer_2", "input timestep"): "int64 UniPC timesteps"},
    # HunyuanVideoPipeline casts prompt_attention_mask to the transformer dtype; the adapter passes int64
    "hunyuanvideo": {("transformer", "input encoder_attention_mask"): "the pipeline passes the mask in bf16"},
    # SkyReels-V2 ships UniPCMultistepScheduler as Wan2.2 does: int64 timesteps; the adapter feeds float32
    "skyreels-v2-t2v-14b-540p": {("transformer", "input timestep"): "int64 UniPC timesteps"},
    "skyreels-v2-t2v-14b-720p": {("transformer", "input timestep"): "int64 UniPC timesteps"},
    # Sana / SANA-Video prefix the prompt with a complex human instruction and size the encoder call by
    # len(tokenizer.encode(instruction)) (208 / 221 Gemma tokens, fxmeter.model.adapters.gemma): the count needs
    # Gemma's vocabulary; the shape-only tokenizer counts PROMPT_TOKENS, so the prompt's encoder call has other
    # lengths (the negative prompt's call, without the instruction, agrees)
    **{mid: {("text_encoder", "runs"): "instruction tokens need Gemma's vocabulary",
             ("text_encoder", "input input_ids"): "instruction tokens need Gemma's vocabulary",
             ("text_encoder", "input attention_mask"): "instruction tokens need Gemma's vocabulary",
             ("text_encoder", "calls no plan stage's inputs match"): "instruction tokens need Gemma's vocabulary"}
       for mid in ("sana-1600m-1024", "sana-video-2b-480p")},
}
#: bundled models observe refuses, each with the one error line's reason (a substring of it)
REFUSED: dict[str, str] = {
    # a modular pipeline (MiniMax-H3's blocks), not a DiffusionPipeline class observe can call
    "minimax-h3": "no known diffusers pipeline",
    # QwenImage21Pipeline needs a Qwen3VLProcessor (its chat template and vision preprocessing), not bundled
    "qwen-image-2.1": "needs processor",
    # HiDream's MoE router counts tokens per expert (torch.bincount of the routing's values) inside the
    # transformer forward: data-dependent, no meta kernel (the plan costs an even routing)
    "hidream-i1-full": "bincount",
}
#: pipelines that concatenate the two CFG branches (one forward of 2x the batch per step): their
#: __call__ does torch.cat([latents] * 2); fxmeter's default (separate passes) is --batched-cfg for them
BATCHED_CFG = {"sd3.5-large", "cogvideox-5b", "ltx-video"}


def second_workload(wl: Any) -> Any:
    """A smaller second workload of the same family (other sizes, fewer steps)."""
    video = wl.frames > 1
    return replace(wl, name=f"{wl.name}-small", frames=(25 if video else 1), height=max(wl.height // 2 // 64 * 64, 64),
                   width=max(wl.width // 2 // 64 * 64, 64), steps=4,
                   text_len=wl.text_len // 2 if wl.text_len > 256 else wl.text_len)


#: zoo models observed at their preset only, not at :func:`second_workload`'s smaller workload, and why (found by the
#: observation; the plans cost the workload as given).  None today: PixArt-Sigma, Sana and SANA-Video's plans
#: follow use_resolution_binning (the transformer and VAE at the bin, a resize stage back); Z-Image and
#: ChronoEdit pad the prompt to max_sequence_length 512 whatever text_len is, and the observation passes
#: what the plan costs (``ob.MAX_SEQUENCE_LENGTHS``)
PRESET_ONLY: dict[str, str] = {}
#: every other bundled model (a zoo model): observed at its preset
ZOO = tuple(m for m in MODELS if m not in HAND_PLANNED)
