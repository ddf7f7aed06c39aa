"""SkyReels-V2 text-to-video (diffusers ``SkyReelsV2Transformer3DModel`` driven by ``SkyReelsV2Pipeline``), 14B.

The transformer is Wan2.1-T2V-14B's architecture under its own class (``SkyReelsV2Attention``, the same
block layout: ``blocks.N.attn1/attn2/ffn``), with options the T2V checkpoints leave off:
``inject_sample_info`` (an fps embedding, the diffusion-forcing 1.3B), ``num_frame_per_block`` > 1 (the
block-causal mask of diffusion forcing) and ``image_dim`` / 36 input channels (image-to-video).  Those
belong to ``SkyReelsV2DiffusionForcingPipeline`` and ``SkyReelsV2ImageToVideoPipeline``, which are not
modeled here: a config that sets them is refused.  The blocks are identical: traced once, replicated.

What one generation runs, as ``SkyReelsV2Pipeline.__call__`` (diffusers 0.42.1) does with its defaults
(544x960, 97 frames, 50 steps, CFG 6.0, ``max_sequence_length`` 512; the VAE in float32 and the rest in
bfloat16 as the docstring loads them):

* ``text_encoder``: UMT5-XXL on the prompt and the negative prompt (``encode_prompt``; CFG), 512 tokens.
* ``transformer``: two forwards per step (cond, uncond), ``timestep = t.expand(batch)`` in float32.
* ``vae``: ``vae.decode`` of the latents (``AutoencoderKLWan``, Wan2.1's VAE).

Config: the ``diffusers_config`` of ``SkyReels-V2-T2V-14B-540P`` (and ``-720P``: the same values) in diffusers'
``scripts/convert_skyreelsv2_to_diffusers.py`` (huggingface/diffusers@58eb52c), the keys it leaves out at
the class defaults.  The script converts ``google/umt5-xxl`` and Wan2.1's VAE (``convert_vae()``:
``AutoencoderKLWan()`` defaults), so the bundled Wan2.1 text encoder and VAE configs are reused.  The 720P
preset is the pipeline docs' (``docs/source/en/api/pipelines/skyreels_v2.md``: 720 x 1280, 121 frames).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fxmeter.model.adapters import plans
from fxmeter.model.adapters.base import Adapter, Geometry
from fxmeter.model.adapters.text_encoders import UMT5_MASKED
from fxmeter.model.adapters.vaes import VAE_DECODE
from fxmeter.model.adapters.wan import WanAdapter
from fxmeter.model.pipeline import ModelSpec, StagePlan
from fxmeter.model.workload import Workload


@dataclass
class SkyReelsV2Adapter(WanAdapter):
    """``SkyReelsV2Transformer3DModel`` as ``SkyReelsV2Pipeline`` (text-to-video) calls it."""

    name: str = "skyreels-v2"
    diffusers_class: str = "SkyReelsV2Transformer3DModel"
    family: str = "skyreels-v2"
    default_slug: str = "skyreels_v2"
    default_workload: str | None = "skyreels-540p"
    offload_seq: tuple[str, ...] = ("text_encoder", "transformer", "vae")  # SkyReelsV2Pipeline.model_cpu_offload_seq
    extra_policies: tuple[str, ...] = ()

    def specialize(self, config: dict[str, Any]) -> Adapter:
        return self  # the text-to-video pipeline only (check_config refuses the other variants)

    def check_config(self, config: dict[str, Any]) -> list[str]:
        """Wan's checks, and the text-to-video checkpoint's settings: no image conditioning, no fps
        injection, one frame per causal block (the other pipelines of the class are not modeled)."""
        bad = super().check_config(config)
        if config.get("image_dim") or config.get("added_kv_proj_dim"):
            bad.append("image_dim / added_kv_proj_dim set: an image-to-video checkpoint (SkyReelsV2ImageToVideoPipeline, "
                       "not modeled); the text-to-video pipeline takes neither")
        if int(config.get("in_channels", 16)) != int(config.get("out_channels") or config.get("in_channels", 16)):
            bad.append("in_channels != out_channels: an image-to-video checkpoint (SkyReelsV2ImageToVideoPipeline, not "
                       "modeled)")
        if config.get("inject_sample_info"):
            bad.append("inject_sample_info = true: the diffusion-forcing checkpoint's fps embedding "
                       "(SkyReelsV2DiffusionForcingPipeline, not modeled)")
        nfb = config.get("num_frame_per_block", 1)
        if nfb != 1:
            bad.append(f"num_frame_per_block = {nfb!r}: a block-causal diffusion-forcing setting "
                       "(SkyReelsV2DiffusionForcingPipeline, not modeled); the text-to-video pipeline uses 1")
        return bad

    def pipeline_stages(self, config: dict[str, Any], wl: Workload,
                        geometry: Geometry) -> tuple[tuple[StagePlan, ...], tuple[StagePlan, ...]]:
        """SkyReelsV2Pipeline: UMT5 (prompt and negative prompt with CFG), VAE decode in float32."""
        b, _, lf, lh, lw = geometry.latent_shape
        tl = geometry.dims["text_len"]
        before = (plans.text("text_encoder", UMT5_MASKED, f"UMT5-XXL, masked, {tl} tokens", plans.cfg_runs(wl),
                             {"batch": b, "seq_len": tl}),)
        after = (plans.decode(VAE_DECODE, f"AutoencoderKLWan, {lf} latent frames one at a time with its causal cache",
                              {"batch": b, "latent_frames": lf, "latent_h": lh, "latent_w": lw}, "float32",
                              notes=("vae: float32 as the SkyReelsV2Pipeline docstring loads it; tiling off",)),)
        return before, after


ADAPTERS = (SkyReelsV2Adapter(),)

_SCRIPT = ("https://github.com/huggingface/diffusers/blob/58eb52c0803ea9af3abec60841c2a093bdf1f951/scripts/"
           "convert_skyreelsv2_to_diffusers.py")
_STAGES = {"text_encoder": "wan2.1/text_encoder", "vae": "wan2.1/vae"}

MODELS = (
    ModelSpec("skyreels-v2-t2v-14b-540p", "skyreels-v2-t2v-14b/transformer/config.json", "skyreels_v2", "skyreels-540p",
              f"{_SCRIPT}#L165-L184", "SkyReels-V2 text-to-video, 14B, 540P (Wan2.1-14B architecture)", _STAGES),
    ModelSpec("skyreels-v2-t2v-14b-720p", "skyreels-v2-t2v-14b/transformer/config.json", "skyreels_v2", "skyreels-720p",
              f"{_SCRIPT}#L145-L164", "SkyReels-V2 text-to-video, 14B, 720P (same transformer config as 540P)", _STAGES),
)

PRESETS = (
    Workload("skyreels-540p", 97, 544, 960, 50, 512, guidance_scale=6.0, family="skyreels-v2",
             description="SkyReelsV2Pipeline __call__ defaults: 960x544, 97 frames, 50 steps, CFG 6.0, text 512"),
    Workload("skyreels-720p", 121, 720, 1280, 50, 512, guidance_scale=6.0, family="skyreels-v2",
             description="SkyReels-V2 720P (diffusers docs: 1280x720, 121 frames), 50 steps, CFG 6.0, text 512"),
)
