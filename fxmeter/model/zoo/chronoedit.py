"""ChronoEdit-14B image editing (diffusers ``ChronoEditTransformer3DModel`` driven by ``ChronoEditPipeline``).

The transformer is Wan2.1-I2V-14B's architecture under its own class (``ChronoEditAttention``, the same block
layout: ``blocks.N.attn1/attn2/ffn``, 257 CLIP image tokens in front of 512 text tokens in the cross-attention),
with one difference: ``ChronoEditRotaryPosEmbed`` takes the temporal RoPE angles of a 2-latent-frame video from
positions 0 and ``rope_temporal_skip_len - 1`` (``freqs[:temporal_skip_len][[0, -1]]``: the input image and the
edited image as the first and last frames of a longer clip) instead of 0 and 1.  That branch is a Python
comparison on the latent frame count, so the trace keeps ``latent_frames`` constant (``fixed_symbols``): one
trace per latent frame count, dynamic in batch and size.  The blocks are identical: traced once, replicated.

What one generation runs, as ``ChronoEditPipeline.__call__`` (diffusers 0.42.1) does with its defaults
(832 x 480, 50 steps, CFG 5.0, ``max_sequence_length`` 512, ``enable_temporal_reasoning=False``; the image
encoder and the VAE in float32 and the transformer in bfloat16 as the docstring loads them):

* **Frames.**  Without temporal reasoning the pipeline sets ``num_frames = 5`` whatever is asked: 2 latent
  frames (the input image's and the edit's).  A workload's other frame count is noted and replaced by 5.
  Temporal reasoning (``enable_temporal_reasoning=True``: ``num_frames`` frames for the first
  ``num_temporal_reasoning_steps`` steps, then the first and last latent frames only, and two decodes) is not
  modeled.
* ``text_encoder``: UMT5-XXL on the prompt and the negative prompt (``""`` when none is given; CFG), padded to
  512 tokens with the mask (``_get_t5_prompt_embeds``, Wan's).
* ``image_encoder``: CLIP ViT-H/14 (``CLIPVisionModel``) on the input image at 224 px, ``hidden_states[-2]``
  (``encode_image``, Wan I2V's), once.
* ``vae_encode``: ``prepare_latents`` encodes the image followed by 4 zero frames (5 frames, whole, once;
  ``retrieve_latents(..., "argmax")``) and concatenates the 4-channel frame mask: 36 input channels.
* ``transformer``: two separate forwards per step (cond, uncond), ``timestep = t.expand(B)`` (float32), the
  image embeddings and ``cat([latents, condition])`` in the transformer dtype.
* ``vae``: ``vae.decode`` of the 2 latent frames (``AutoencoderKLWan``, Wan2.1's VAE).

So the stages are the wan2.1-i2v models' (the same Wan adapters: ``UMT5_MASKED``, ``CLIP_VISION``,
``VAE_ENCODE``, ``VAE_DECODE``, via ``plans.wan``) at ChronoEdit's 5 frames.

Config: reconstructed (the diffusers-format ``transformer/config.json`` of nvidia/ChronoEdit-14B-Diffusers is on
the hub, not in the store): Wan2.1-I2V-14B-720P's transformer config, the checkpoint ChronoEdit-14B is fine-tuned
from (its README's LoRA recipe loads Wan2.1-I2V-14B-720P's UMT5, VAE and CLIP with the ChronoEdit transformer),
and ``rope_temporal_skip_len`` 8 at the class default.  The UMT5, CLIP image encoder and VAE configs are the
bundled Wan2.1 I2V ones.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from fxmeter.model.adapters import plans
from fxmeter.model.adapters.base import Adapter, Geometry
from fxmeter.model.adapters.wan import WanAdapter
from fxmeter.model.pipeline import ModelSpec, StagePlan
from fxmeter.model.workload import Workload

EDIT_FRAMES = 5  # ChronoEditPipeline.__call__: num_frames = 5 if not enable_temporal_reasoning


@dataclass
class ChronoEditAdapter(WanAdapter):
    """``ChronoEditTransformer3DModel`` as ``ChronoEditPipeline`` (temporal reasoning off) calls it."""

    name: str = "chronoedit"
    diffusers_class: str = "ChronoEditTransformer3DModel"
    family: str = "chronoedit"
    default_slug: str = "chronoedit"
    default_workload: str | None = "chronoedit-480p"
    # text is always 512 tokens (the I2V attention processor splits the 257 image tokens off at shape[1] - 512)
    symbols: tuple[str, ...] = ("batch", "latent_frames", "patches_h", "patches_w")
    # ChronoEditRotaryPosEmbed branches on the latent frame count (== 2): one trace per count
    fixed_symbols: tuple[str, ...] = ("latent_frames",)
    offload_seq: tuple[str, ...] = ("text_encoder", "image_encoder", "transformer", "vae")  # model_cpu_offload_seq
    extra_policies: tuple[str, ...] = ()
    pipelines: tuple[str, ...] = ("ChronoEditPipeline",)
    positive_keys: tuple[str, ...] = (*WanAdapter.positive_keys, "rope_temporal_skip_len")

    def specialize(self, config: dict[str, Any]) -> Adapter:
        return self  # one pipeline (check_config requires the I2V inputs)

    def check_config(self, config: dict[str, Any]) -> list[str]:
        """Wan's checks, and ChronoEditPipeline's inputs: a CLIP image embedding (``image_dim``) and the 20
        condition channels (``in_channels`` = ``out_channels`` + 20)."""
        bad = super().check_config(config)
        if not config.get("image_dim"):
            bad.append("image_dim is not set: ChronoEditPipeline always passes CLIP image embeddings "
                       "(encoder_hidden_states_image)")
        cin, cout = config.get("in_channels"), config.get("out_channels")
        if isinstance(cin, int) and isinstance(cout, int) and cin != cout + 20:
            bad.append(f"in_channels = {cin}: ChronoEditPipeline concatenates 4 mask + 16 image-latent channels to the "
                       f"{cout} noise channels ({cout + 20})")
        return bad

    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        """Wan I2V's geometry at the pipeline's 5 frames (its ``num_frames`` is replaced without temporal reasoning)."""
        if wl.frames == EDIT_FRAMES:
            return super().geometry(config, wl)
        g = super().geometry(config, replace(wl, frames=EDIT_FRAMES))
        note = (f"frames={wl.frames} replaced by {EDIT_FRAMES}: ChronoEditPipeline generates {EDIT_FRAMES} frames "
                "without temporal reasoning (enable_temporal_reasoning=False, its default; temporal reasoning is not "
                "modeled)")
        return replace(g, notes=(note, *g.notes))

    def pipeline_stages(self, config: dict[str, Any], wl: Workload,
                        geometry: Geometry) -> tuple[tuple[StagePlan, ...], tuple[StagePlan, ...]]:
        """UMT5 (prompt and negative with CFG), CLIP image encoder, VAE encode of the 5-frame condition video,
        VAE decode of the 2 latent frames: WanImageToVideoPipeline's stages (``plans.wan``)."""
        return plans.wan(config, wl, geometry, i2v=True, clip=True)


ADAPTERS = (ChronoEditAdapter(),)

MODELS = (
    ModelSpec("chronoedit-14b", "chronoedit-14b/transformer/config.json", "chronoedit", "chronoedit-480p",
              "https://github.com/nv-tlabs/ChronoEdit/blob/077553c72ef08c0c08dc5a1067bdfa6b6c8c5c8c/README.md",
              "ChronoEdit-14B image editing (Wan2.1-I2V-14B architecture; 5 frames; CFG: 2 passes/step)",
              {"text_encoder": "wan2.1/text_encoder", "image_encoder": "wan2.1-i2v/image_encoder",
               "vae": "wan2.1/vae"}),
)

PRESETS = (
    Workload("chronoedit-480p", EDIT_FRAMES, 480, 832, 50, 512, guidance_scale=5.0, family="chronoedit",
             description="ChronoEditPipeline __call__ defaults: 832x480, 5 frames (temporal reasoning off), 50 steps, "
                         "CFG 5.0, text 512"),
)
