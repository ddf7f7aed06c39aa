"""Wan2.1 VACE (diffusers ``WanVACETransformer3DModel`` driven by ``WanVACEPipeline``), 1.3B and 14B.

The transformer is Wan2.1's (``blocks``: ``WanTransformerBlock``) plus the VACE context branch:
``vace_patch_embedding`` (a Conv3d of the ``vace_in_channels`` = 96 control channels) and
``len(vace_layers)`` ``WanVACETransformerBlock``s (``vace_blocks``; the first has a ``proj_in``, each a
``proj_out``) that run first, each producing a hint that is added (times its
``control_hidden_states_scale``) after block ``vace_layers[i]`` of the main stack.  Both stacks are traced
whole (``repeated`` is empty): the class refuses a config whose ``vace_layers`` exceed ``num_layers``, so
the one-block reduction of capture cannot build it, and the hint additions sit between main blocks.

What one generation runs, as ``WanVACEPipeline.__call__`` (diffusers 0.42.1) does with its defaults
(no ``video``, no ``mask``, no reference images; 832x480, 81 frames, 50 steps, CFG 5.0,
``max_sequence_length`` 512; the VAE in float32 as the docstring loads it):

* ``text_encoder``: UMT5-XXL on the prompt and the negative prompt (``encode_prompt``), 512 tokens.
* ``vae_encode``: ``preprocess_conditions`` makes the conditioning video (zeros when none is given) and a
  mask (ones when none is given); ``prepare_video_latents`` encodes ``video * (1 - mask)`` (inactive) and
  ``video * mask`` (reactive) with ``vae.encode``, two calls on the whole ``frames``-frame video;
  ``prepare_masks`` folds the 8x8 pixel mask into 64 channels at the latent size: 16 + 16 + 64 = 96
  control channels, cast to the transformer dtype.
* ``vae_encode_reference``: one more ``vae.encode`` of a single frame per reference image
  (``_pipeline.reference_images`` in the config: 0 by default, as the pipeline's default call); each adds
  one latent frame in front of the noise and of the control latents, dropped before the decode.
* ``transformer``: two forwards per step (cond, uncond; ``do_classifier_free_guidance``), each with the
  same ``control_hidden_states`` and ``control_hidden_states_scale`` (``conditioning_scale`` 1.0 repeated to
  ``len(vace_layers)``, in the transformer dtype).
* ``vae``: ``vae.decode`` of the generated latent frames (Wan2.1's VAE, as WanPipeline).

The pipeline generates one video at a time (``prepare_video_latents`` raises for a batch other than 1, and
so does ``num_videos_per_prompt`` != 1): a workload batch other than 1 is refused.  The pipeline's pixel
preprocessing and mask reshaping are tensor ops outside any module, not counted (as Wan's I2V condition
video).

Configs: the ``diffusers_config`` of ``Wan-VACE-1.3B`` / ``Wan-VACE-14B`` in diffusers'
``scripts/convert_wan_to_diffusers.py`` (huggingface/diffusers@58eb52c), the keys it leaves out at the class
defaults; UMT5 and the VAE are Wan2.1's bundled ones (the script converts the same ``google/umt5-xxl`` and
``Wan2.1_VAE.pth`` for every Wan2.1 model).  Wan2.2-VACE-Fun-A14B (two experts) is not bundled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fxmeter.errors import ConfigError, WorkloadError
from fxmeter.model.adapters import plans
from fxmeter.model.adapters._common import tp_roles
from fxmeter.model.adapters.base import Adapter, Geometry, SymbolAxis
from fxmeter.model.adapters.text_encoders import UMT5_MASKED
from fxmeter.model.adapters.vaes import VAE_DECODE, VAE_ENCODE
from fxmeter.model.adapters.wan import _ANY, _ATTN, _MATMUL, _NORM, WanAdapter
from fxmeter.model.pipeline import ModelSpec, StagePlan
from fxmeter.model.workload import Workload

if TYPE_CHECKING:
    import torch

#: main blocks and VACE context blocks share Wan's categories (their attention is the same WanAttention)
_B = r"^(vace_)?blocks\.\d+"
VACE_CATEGORIES: tuple[tuple[str, frozenset[str] | None, str], ...] = (
    (rf"{_B}\.attn1(\.|$)", _ATTN, "self_attention_core"),
    (rf"{_B}\.attn1(\.|$)", _MATMUL, "self_attention_proj"),
    (rf"{_B}\.attn2(\.|$)", _ATTN, "cross_attention_core"),
    (rf"{_B}\.attn2(\.|$)", _MATMUL, "cross_attention_proj"),
    (r".", _NORM, "norms"),
    (r"^$", _NORM, "norms"),
    (rf"{_B}\.attn1$", _ANY, "rope"),
    (rf"{_B}\.attn2$", _ANY, "cross_attention_core"),
    (rf"{_B}\.ffn(\.|$)", _ANY, "ffn"),
    (r"^vace_blocks\.\d+\.proj_(in|out)(\.|$)", _ANY, "vace_hints"),
    (rf"{_B}$", _ANY, "modulation"),
    (r"^(rope|condition_embedder)(\.|$)", _ANY, "embeddings"),
    (r"^(vace_)?patch_embedding(\.|$)", _ANY, "conv"),
    (r"^(norm_out|proj_out)(\.|$)", _ANY, "head"),
    (r"^$", _ANY, "head"),
)

WAN21_STAGES = {"text_encoder": "wan2.1/text_encoder", "vae": "wan2.1/vae"}


@dataclass
class WanVACEAdapter(WanAdapter):
    """``WanVACETransformer3DModel`` as ``WanVACEPipeline`` calls it (see the module docstring)."""

    name: str = "wan-vace"
    diffusers_class: str = "WanVACETransformer3DModel"
    family: str = "wan-vace"
    default_slug: str = "wan_vace"
    default_workload: str | None = "vace-480p"
    repeated: dict[str, str] = field(default_factory=dict)  # hints between main blocks: every block traced
    required_keys: tuple[str, ...] = (*WanAdapter.required_keys, "vace_layers", "vace_in_channels")
    positive_keys: tuple[str, ...] = (*WanAdapter.positive_keys, "vace_in_channels")
    category_rules: tuple[tuple[str, frozenset[str] | None, str], ...] = VACE_CATEGORIES
    offload_seq: tuple[str, ...] = ("text_encoder", "transformer", "transformer_2", "vae")
    tp_roles: tuple[tuple[str, str], ...] = tp_roles(("blocks", "vace_blocks"))

    def specialize(self, config: dict[str, Any]) -> Adapter:
        return self  # one pipeline (the Wan2.1 T2V variants of WanAdapter.specialize do not apply)

    def check_config(self, config: dict[str, Any]) -> list[str]:
        """Wan's checks, plus ``vace_layers``: distinct block indices below ``num_layers``, 0 among them (as
        the class's ``__init__`` requires); ``_pipeline.reference_images`` a count >= 0."""
        bad = super().check_config(config)
        layers = config.get("vace_layers")
        n = config.get("num_layers")
        if "vace_layers" in config:
            if (not isinstance(layers, list) or not layers
                    or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in layers)
                    or len(set(layers)) != len(layers)):
                bad.append(f"vace_layers = {layers!r}: expected a list of distinct block indices")
            elif 0 not in layers:
                bad.append(f"vace_layers = {layers!r}: must include block 0 (WanVACETransformer3DModel)")
            elif isinstance(n, int) and max(layers) >= n:
                bad.append(f"vace_layers = {layers!r}: every index must be below num_layers = {n}")
        refs = self._pipeline(config).get("reference_images", 0)
        if isinstance(refs, bool) or not isinstance(refs, int) or refs < 0:
            bad.append(f"_pipeline.reference_images = {refs!r}: expected a count >= 0")
        return bad

    def reference_images(self, config: dict[str, Any]) -> int:
        """Reference images of the call (``_pipeline.reference_images``; the pipeline's default: none)."""
        return int(self._pipeline(config).get("reference_images", 0))

    def model_dims(self, config: dict[str, Any], geometry: Geometry) -> dict[str, int | None] | None:
        dims = super().model_dims(config, geometry)
        assert dims is not None
        return {**dims, "layers": int(config["num_layers"]) + len(config["vace_layers"])}

    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        """WanPipeline's geometry of the generated video, plus one latent frame per reference image (the
        pipeline prepares ``num_frames + refs * vae_scale_factor_temporal`` frames of noise)."""
        if wl.batch != 1:
            raise WorkloadError(f"batch={wl.batch}: WanVACEPipeline generates one video per call "
                                "(prepare_video_latents raises for a batch other than 1)")
        g = super().geometry(config, wl)
        refs = self.reference_images(config)
        if not refs:
            return g
        p_t = int(config["patch_size"][0])
        b, c, lf, lh, lw = g.latent_shape
        total = lf + refs
        if total % p_t:
            raise WorkloadError(f"latent frames {total} (with {refs} reference images) not divisible by temporal "
                                f"patch {p_t}")
        dims = {**g.dims, "latent_frames": total // p_t}
        note = (f"{refs} reference image(s): {refs} more latent frame(s) in front of the noise and the control "
                "latents, dropped before the VAE decode")
        return Geometry(dims, (b, c, total, lh, lw), dims["latent_frames"] * dims["patches_h"] * dims["patches_w"],
                        g.frames, (*g.notes, note))

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        kw = super().inputs(config, dims, dtype)
        x = kw["hidden_states"]
        # WanVACEPipeline: conditioning_latents = cat([inactive, reactive, mask]).to(transformer_dtype), the
        # latent's frames and size; conditioning_scale [1.0] * len(vace_layers) in the transformer dtype
        kw["control_hidden_states"] = torch.empty(x.shape[0], int(config["vace_in_channels"]), *x.shape[2:],
                                                  device="meta", dtype=dtype)
        kw["control_hidden_states_scale"] = torch.empty(len(config["vace_layers"]), device="meta", dtype=dtype)
        kw["return_dict"] = kw.pop("return_dict")  # non-tensor inputs last (capture pairs tensors with placeholders)
        return kw

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        axes = super().symbol_axes(config)
        return {**axes, "control_hidden_states": dict(axes["hidden_states"])}

    def pipeline_stages(self, config: dict[str, Any], wl: Workload,
                        geometry: Geometry) -> tuple[tuple[StagePlan, ...], tuple[StagePlan, ...]]:
        """UMT5 (prompt and negative), the two encodes of the conditioning video (and one per reference image),
        the VAE decode of the generated frames."""
        if self._pipeline(config).get("experts"):
            raise ConfigError("WanVACEPipeline with two experts (Wan2.2-VACE-Fun) is not modeled")
        b, _, _, lh, lw = geometry.latent_shape
        refs = self.reference_images(config)
        vae_t = int(self._pipeline(config).get("vae_scale_factor_temporal", 4))
        lf = (geometry.frames - 1) // vae_t + 1  # the generated video's latent frames (WanVACEPipeline.prepare_latents)
        tl = geometry.dims["text_len"]
        before = [plans.text("text_encoder", UMT5_MASKED, f"UMT5-XXL, masked, {tl} tokens", plans.cfg_runs(wl),
                             {"batch": b, "seq_len": tl})]
        before.append(StagePlan(
            "vae_encode", "vae", f"VAE encode of the {geometry.frames}-frame conditioning video (inactive and reactive)",
            runs=2, root="vae", adapter=VAE_ENCODE, dims={"batch": 1, "latent_frames": lf, "latent_h": lh, "latent_w": lw},
            dtype="float32",
            notes=("vae_encode: WanVACEPipeline.prepare_video_latents encodes video * (1 - mask) and video * mask, "
                   "each whole (no video given: zeros; no mask: ones), in the VAE's float32",)))
        if refs:
            before.append(StagePlan(
                "vae_encode_reference", "vae", "VAE encode of each reference image (one frame)", runs=refs, root="vae",
                adapter=VAE_ENCODE, dims={"batch": 1, "latent_frames": 1, "latent_h": lh, "latent_w": lw},
                dtype="float32",
                notes=(f"vae_encode_reference: {refs} reference image(s), each pasted on a white canvas of the "
                       "video's size and encoded as one frame (WanVACEPipeline.prepare_video_latents)",)))
        after = [plans.decode(VAE_DECODE, f"AutoencoderKLWan, {lf} latent frames one at a time with its causal cache", {
            "batch": b, "latent_frames": lf, "latent_h": lh, "latent_w": lw}, "float32",
            notes=("vae: float32 as the WanVACEPipeline docstring loads it; the reference frames are dropped first; "
                   "tiling off",))]
        return tuple(before), tuple(after)


ADAPTERS = (WanVACEAdapter(),)

_SCRIPT = "https://github.com/huggingface/diffusers/blob/58eb52c0803ea9af3abec60841c2a093bdf1f951/scripts/convert_wan_to_diffusers.py"

MODELS = (
    ModelSpec("wan2.1-vace-1.3b", "wan2.1-vace-1.3b/transformer/config.json", "wan2_1_vace", "vace-480p",
              f"{_SCRIPT}#L439-L461", "Wan2.1 VACE all-in-one video creation/editing, 1.3B (15 VACE context blocks)",
              WAN21_STAGES),
    ModelSpec("wan2.1-vace-14b", "wan2.1-vace-14b/transformer/config.json", "wan2_1_vace", "vace-480p",
              f"{_SCRIPT}#L462-L484", "Wan2.1 VACE all-in-one video creation/editing, 14B (8 VACE context blocks)",
              WAN21_STAGES),
)

PRESETS = (
    Workload("vace-480p", 81, 480, 832, 50, 512, guidance_scale=5.0, family="wan-vace",
             description="WanVACEPipeline __call__ defaults: 832x480, 81 frames, 50 steps, CFG 5.0, text 512"),
    Workload("vace-720p", 81, 720, 1280, 50, 512, guidance_scale=5.0, family="wan-vace",
             description="Wan2.1 VACE at 720P (the 14B's other size): 1280x720, 81 frames, 50 steps, CFG 5.0, text 512"),
)
