"""Cosmos Predict2 2B (diffusers ``CosmosTransformer3DModel``): text-to-image (``Cosmos2TextToImagePipeline``)
and video-to-world (``Cosmos2VideoToWorldPipeline``, one conditioning image).

What one generation runs, as ``Cosmos2TextToImagePipeline.__call__`` (diffusers 0.42.1) does with its defaults
(768 x 1360, one frame, 35 steps, ``guidance_scale`` 7.0, ``max_sequence_length`` 512; everything in the
pipeline's ``torch_dtype``, bfloat16 in the docstring):

* ``text_encoder``: ``T5EncoderModel`` (google-t5/t5-11b: d_model 1024, 24 layers, ReLU FFN of 65,536 -- the
  original T5 11B, *not* the T5 v1.1 XXL of SD3 / Flux) on the prompt and, with CFG (``guidance_scale > 1``),
  the negative prompt (``DEFAULT_NEGATIVE_PROMPT`` when none is given): ``text_encoder(ids,
  attention_mask=mask.bool()).last_hidden_state`` at ``padding="max_length"`` 512 tokens (the padded
  positions are zeroed afterwards, so the transformer gets no attention mask).
* ``transformer``: two separate forwards per step (cond, then uncond: not batched), ``hidden_states`` the
  latents ``(B, 16, 1, H/8, W/8)`` times ``c_in`` in bf16, ``timestep = current_t.expand(B)`` in bf16 (1-D:
  one timestep per sample), ``encoder_hidden_states`` ``(B, 512, 1024)``, and ``padding_mask`` a zero
  ``(1, 1, H, W)`` tensor at *pixel* size that the model resizes (torchvision ``resize``, nearest) to the
  latent grid and concatenates as a 17th channel (``concat_padding_mask``; without torchvision installed
  fxmeter gives the module torchvision's tensor path, :func:`ensure_padding_mask_resize`).  The 28 blocks are identical
  (no ``img_context``, no controlnet): traced once, replicated.
* ``vae``: ``vae.decode`` of the one latent frame (``AutoencoderKLWan``, Wan2.1's VAE: the script converts
  ``Wan-AI/Wan2.1-T2V-1.3B-Diffusers``' ``vae``), in the pipeline dtype.

Video-to-world (``Cosmos2VideoToWorldPipeline.__call__`` defaults: 704 x 1280, 93 frames, fps 16, 35 steps,
``guidance_scale`` 7.0, 512 tokens; the Video2World checkpoint has ``in_channels`` 17 = 16 + the condition mask):

* ``text_encoder``: as above.
* ``vae_encode``: ``prepare_latents`` pads the conditioning image to ``num_frames`` by repeating it and encodes
  each video of the batch on its own, ``retrieve_latents(vae.encode(vid.unsqueeze(0)), generator)``: a sample
  of the latent distribution (the one conditioned latent frame of the 24 keeps it; the other frames are noise).
* ``transformer``: two forwards per step, ``hidden_states`` ``(B, 16, 24, 88, 160)``, ``timestep`` of shape
  ``(B, 1, 24, 1, 1)`` (``t_conditioning`` on the conditioned frames), ``condition_mask`` ``(B, 1, 24, 88, 160)``
  concatenated inside the model, ``fps`` 16 (it scales the temporal RoPE), the padding mask as above.
* ``vae``: the 24 latent frames decoded.

The safety checker (``cosmos_guardrail``: text and video classifiers outside diffusers) is not modeled.

Configs: the transformers are ``TRANSFORMER_CONFIGS['Cosmos-2.0-Diffusion-2B-Text2Image']`` and
``['Cosmos-2.0-Diffusion-2B-Video2World']`` of diffusers' ``scripts/convert_cosmos_to_diffusers.py``
(huggingface/diffusers@58eb52c), the keys it leaves out at the class defaults.  The text encoder is google-t5/t5-11b (``T5EncoderModel.from_pretrained(args.text_encoder_path)``
with ``--text_encoder_path google-t5/t5-11b`` in the script's docstring): its own bundled config (the T5-XXL
configs of SD3.5 / Flux are a different model).  The VAE is the bundled Wan2.1 one (same checkpoint).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from fxmeter.errors import WorkloadError
from fxmeter.model.adapters import plans
from fxmeter.model.adapters._common import (
    ANY,
    ATTN,
    MATMUL,
    NORM,
    Rules,
    attention_dims,
    divisible,
    image_only,
    tp_roles,
    video_frames,
)
from fxmeter.model.adapters.base import Adapter, Builder, Geometry, SymbolAxis
from fxmeter.model.adapters.stage import meta_tensor
from fxmeter.model.adapters.text_encoders import T5Encoder
from fxmeter.model.adapters.vaes import VAE_DECODE, VaeEncode
from fxmeter.model.pipeline import ModelSpec, StagePlan
from fxmeter.model.workload import Workload

if TYPE_CHECKING:
    import torch

VAE_SCALE_SPATIAL = 8  # 2 ** len(vae.temperal_downsample) of Wan2.1's VAE
VAE_SCALE_TEMPORAL = 4  # 2 ** sum(vae.temperal_downsample)
V2W_FPS = 16  # Cosmos2VideoToWorldPipeline.__call__ fps default: the transformer's RoPE scales time by base_fps / fps
MAX_SEQUENCE_LENGTH = 512  # Cosmos2TextToImagePipeline.__call__ default (padding="max_length")

_B = r"^transformer_blocks\.\d+"
COSMOS_CATEGORIES: Rules = (
    (rf"{_B}\.attn1(\.|$)", ATTN, "self_attention_core"),
    (rf"{_B}\.attn1(\.|$)", MATMUL, "self_attention_proj"),
    (rf"{_B}\.attn2(\.|$)", ATTN, "cross_attention_core"),
    (rf"{_B}\.attn2(\.|$)", MATMUL, "cross_attention_proj"),
    (r".", NORM, "norms"),
    (r"^$", NORM, "norms"),
    (rf"{_B}\.attn1$", ANY, "rope"),
    (rf"{_B}\.attn2$", ANY, "cross_attention_core"),
    (rf"{_B}\.ff(\.|$)", ANY, "ffn"),
    (rf"{_B}(\.|$)", ANY, "modulation"),  # adaLN-LoRA (norm1/2/3), gates, residuals
    (r"^(rope|time_embed)(\.|$)", ANY, "embeddings"),
    (r"^patch_embed(\.|$)", ANY, "patch_embed"),
    (r"^(norm_out|proj_out)(\.|$)", ANY, "head"),
    (r"^$", ANY, "head"),  # padding-mask resize and concat, unpatchify
)


def _torchvision_resize(img: torch.Tensor, size: list[int], interpolation: str = "nearest",
                        max_size: int | None = None, antialias: bool | None = True) -> torch.Tensor:
    """torchvision's ``transforms.functional.resize`` on a tensor, the path ``CosmosTransformer3DModel`` takes
    (torchvision 0.2x ``functional.resize`` -> ``_functional_tensor.resize``): an image already at ``size`` is
    returned as is; otherwise a dtype other than float32 / float64 is cast to float32, ``F.interpolate`` runs
    (``align_corners`` None, no antialias for ``nearest``) and the result is cast back."""
    import torch

    if list(img.shape[-2:]) == list(size):
        return img
    mode = getattr(interpolation, "value", interpolation)
    out_dtype = img.dtype
    x = img if out_dtype in (torch.float32, torch.float64) else img.to(torch.float32)
    bilinear = mode in ("bilinear", "bicubic")
    x = torch.nn.functional.interpolate(x, size=list(size), mode=mode, align_corners=False if bilinear else None,
                                        antialias=bool(antialias) and bilinear)
    return x if x.dtype == out_dtype else x.to(out_dtype)


def ensure_padding_mask_resize() -> None:
    """Give diffusers' ``transformer_cosmos`` the ``transforms`` it resizes the padding mask with.

    The module imports ``torchvision.transforms`` only when torchvision is installed, and its forward calls
    ``transforms.functional.resize(padding_mask, ..., interpolation=NEAREST)`` whenever ``concat_padding_mask``
    is set (every Cosmos Predict2 checkpoint): without torchvision the model cannot run at all.  Where
    torchvision is missing (fxmeter does not depend on it) the same tensor path (:func:`_torchvision_resize`)
    is installed under that name; with torchvision present nothing changes.
    """
    import types

    from diffusers.models.transformers import transformer_cosmos as tc

    if hasattr(tc, "transforms"):
        return
    modes = types.SimpleNamespace(NEAREST="nearest", NEAREST_EXACT="nearest-exact", BILINEAR="bilinear",
                                  BICUBIC="bicubic")
    tc.transforms = types.SimpleNamespace(  # type: ignore[attr-defined]
        functional=types.SimpleNamespace(resize=_torchvision_resize), InterpolationMode=modes)


@dataclass
class CosmosAdapter(Adapter):
    """``CosmosTransformer3DModel`` as ``Cosmos2TextToImagePipeline`` calls it (Cosmos Predict2 text-to-image)."""

    name: str = "cosmos-predict2"
    diffusers_class: str = "CosmosTransformer3DModel"
    repeated: dict[str, str] = field(default_factory=lambda: {"transformer_blocks": "num_layers"})
    symbols: tuple[str, ...] = ("batch", "patches_h", "patches_w", "text_len")
    required_keys: tuple[str, ...] = ("in_channels", "out_channels", "num_attention_heads", "attention_head_dim",
                                      "num_layers", "text_embed_dim", "patch_size")
    category_rules: Rules = COSMOS_CATEGORIES
    default_slug: str = "cosmos_predict2"
    family: str = "cosmos-predict2"
    default_workload: str | None = "cosmos-predict2-t2i"
    offload_seq: tuple[str, ...] = ("text_encoder", "transformer", "vae")  # model_cpu_offload_seq
    positive_keys: tuple[str, ...] = ("in_channels", "out_channels", "num_attention_heads", "attention_head_dim",
                                      "num_layers", "text_embed_dim", "adaln_lora_dim", "patch_size", "max_size")
    sequence_symbols: tuple[str, ...] = ("patches_h", "patches_w")
    tp_roles: tuple[tuple[str, str], ...] = tp_roles(("transformer_blocks",))

    @staticmethod
    def video2world(config: dict[str, Any]) -> bool:
        """A Video2World checkpoint: one more input channel than it predicts (the condition mask)."""
        return int(config.get("in_channels", 16)) == int(config.get("out_channels", 16)) + 1

    def specialize(self, config: dict[str, Any]) -> Adapter:
        if self.video2world(config):
            return replace(self, name="cosmos-predict2-v2w", default_workload="cosmos-predict2-v2w",
                           symbols=("batch", "latent_frames", "patches_h", "patches_w", "text_len"),
                           sequence_symbols=("latent_frames", "patches_h", "patches_w"))
        return self

    def check_config(self, config: dict[str, Any]) -> list[str]:
        """The base checks, and the Predict2 checkpoints' settings (the other pipelines of the class --
        Cosmos 2.5's projections and image context, Transfer's
        controlnet, Cosmos 1.0's learnable position embedding -- are not modeled)."""
        bad = super().check_config(config)
        ps = config.get("patch_size")
        if "patch_size" in config and not (isinstance(ps, (list, tuple)) and len(ps) == 3):
            bad.append(f"patch_size = {ps!r}: expected 3 positive integers (t, h, w)")
        cin, cout = int(config.get("in_channels", 16)), int(config.get("out_channels", 16))
        if cin not in (cout, cout + 1):
            bad.append(f"in_channels {cin} is neither out_channels {cout} (text-to-image) nor out_channels + 1 "
                       "(Video2World's condition mask)")
        if config.get("extra_pos_embed_type"):
            bad.append("extra_pos_embed_type set: a Cosmos 1.0 checkpoint (CosmosTextToWorldPipeline, not modeled); "
                       "Cosmos Predict2 uses None")
        if config.get("use_crossattn_projection") or config.get("img_context_dim_in"):
            bad.append("use_crossattn_projection / img_context_dim_in set: a Cosmos 2.5 checkpoint "
                       "(Cosmos2_5_PredictBasePipeline / Cosmos2_5_TransferPipeline, not modeled)")
        if config.get("controlnet_block_every_n"):
            bad.append("controlnet_block_every_n set: Cosmos Transfer 2.5 (not modeled)")
        if not config.get("concat_padding_mask", True):
            bad.append("concat_padding_mask = false: Cosmos Predict2 concatenates the padding mask")
        return bad

    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        """Text-to-image: 768 x 1360 -> latents 96 x 170 (VAE 8x) -> 48 x 85 patches (2 x 2): 4,080 tokens.
        Video2World: 93 frames -> (93 - 1) / 4 + 1 = 24 latent frames, 704 x 1280 -> 88 x 160 -> 44 x 80:
        84,480 tokens."""
        p_t, p_h, p_w = (int(v) for v in config["patch_size"])
        divisible(wl.height, wl.width, 16, "the Cosmos2 pipelines' check_inputs raise otherwise")
        if self.video2world(config):
            frames, notes = video_frames(wl.frames, VAE_SCALE_TEMPORAL, "Cosmos2VideoToWorldPipeline")
            lf = (frames - 1) // VAE_SCALE_TEMPORAL + 1
        else:
            frames, notes, lf = 1, image_only(wl.frames, "Cosmos Predict2 text-to-image"), 1
        lh, lw = wl.height // VAE_SCALE_SPATIAL, wl.width // VAE_SCALE_SPATIAL
        if lh % p_h or lw % p_w or lf % p_t:
            raise WorkloadError(f"latent grid {lf} x {lh} x {lw} not divisible by the patch {p_t} x {p_h} x {p_w}")
        pf, ph, pw = lf // p_t, lh // p_h, lw // p_w
        _, max_h, max_w = (int(v) for v in config.get("max_size", (128, 240, 240)))
        if ph > max_h // p_h or pw > max_w // p_w:
            notes.append(f"{ph} x {pw} patches exceed the RoPE table of max_size {max_h // p_h} x {max_w // p_w}: "
                         "diffusers slices a shorter position range (the cost is unchanged)")
        dims = {"batch": wl.batch, "patches_h": ph, "patches_w": pw, "text_len": wl.text_len}
        if self.video2world(config):
            dims = {"batch": wl.batch, "latent_frames": pf, **{k: v for k, v in dims.items() if k != "batch"}}
        return Geometry(dims, (wl.batch, int(config["out_channels"]), lf, lh, lw), pf * ph * pw, frames, tuple(notes))

    def model_dims(self, config: dict[str, Any], geometry: Geometry) -> dict[str, int | None] | None:
        return attention_dims(config, int(config["num_layers"]), geometry.dims["text_len"], geometry.tokens,
                              float(config.get("mlp_ratio", 4.0)))

    def build_module(self, config: dict[str, Any], dtype: str, build_diffusers: Builder) -> torch.nn.Module | None:
        """The diffusers class as is (None), once its padding-mask resize can run (:func:`ensure_padding_mask_resize`)."""
        ensure_padding_mask_resize()
        return None

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        ensure_padding_mask_resize()  # the reference runs the model with these inputs without build_module
        p_t, p_h, p_w = (int(v) for v in config["patch_size"])
        b, ph, pw = dims["batch"], dims["patches_h"], dims["patches_w"]
        f, h, w = dims.get("latent_frames", 1) * p_t, ph * p_h, pw * p_w
        s = VAE_SCALE_SPATIAL
        kw: dict[str, Any] = {
            "hidden_states": meta_tensor(b, int(config["out_channels"]), f, h, w, dtype=dtype),
            # text-to-image: current_t.expand(B); Video2World: (B, 1, T, 1, 1), the conditioned frames at t_conditioning
            "timestep": meta_tensor(b, 1, f, 1, 1, dtype=dtype) if self.video2world(config) else meta_tensor(b, dtype=dtype),
            "encoder_hidden_states": meta_tensor(b, dims["text_len"], int(config["text_embed_dim"]), dtype=dtype),
        }
        if self.video2world(config):
            kw["condition_mask"] = meta_tensor(b, 1, f, h, w, dtype=dtype)  # cond_mask.to(transformer_dtype)
        # latents.new_zeros(1, 1, height, width, dtype=transformer_dtype): pixel size, batch 1
        kw["padding_mask"] = meta_tensor(1, 1, h * s, w * s, dtype=dtype)
        if self.video2world(config):
            # after every tensor: fxmeter's dynamic export pairs the tensor inputs with the graph's user inputs in order
            kw["fps"] = V2W_FPS
        kw["return_dict"] = False
        return kw

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        p_t, p_h, p_w = (int(v) for v in config["patch_size"])
        s = VAE_SCALE_SPATIAL
        hs = {0: SymbolAxis("batch"), 3: SymbolAxis("patches_h", p_h), 4: SymbolAxis("patches_w", p_w)}
        axes = {
            "hidden_states": hs,
            "timestep": {0: SymbolAxis("batch")},
            "encoder_hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("text_len")},
            "padding_mask": {2: SymbolAxis("patches_h", p_h * s), 3: SymbolAxis("patches_w", p_w * s)},
        }
        if self.video2world(config):
            hs[2] = SymbolAxis("latent_frames", p_t)
            axes["timestep"] = {0: SymbolAxis("batch"), 2: SymbolAxis("latent_frames", p_t)}
            axes["condition_mask"] = dict(hs)
        return axes

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        # the export guards latent_frames <= 128 (max_size[0], the RoPE table's frames)
        max_t = int(config.get("max_size", (128, 240, 240))[0]) // int(config["patch_size"][0])
        return {"batch": (1, 1024), "latent_frames": (2, max_t), "patches_h": (2, 1 << 10),
                "patches_w": (2, 1 << 10), "text_len": (2, 1 << 16)}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        dims = {"batch": 2, "latent_frames": 3, "patches_h": 4, "patches_w": 5, "text_len": 7}
        return {k: dims[k] for k in self.symbols}

    def pipeline_stages(self, config: dict[str, Any], wl: Workload, geometry: Geometry) -> plans.Plans:
        """T5 11B (prompt, and the negative prompt with CFG) at 512 padded tokens; Video2World: the condition
        video through the VAE encoder; one Wan2.1 VAE decode."""
        b, tl = geometry.dims["batch"], geometry.dims["text_len"]
        _, lf, lh, lw = geometry.latent_shape[1:]
        before: tuple[StagePlan, ...] = (
            plans.text("text_encoder", T5_BOOL_MASK, f"T5 11B (google-t5/t5-11b), masked, {tl} tokens",
                       plans.cfg_runs(wl), {"batch": b, "seq_len": tl}),)
        if self.video2world(config):
            before += (StagePlan(
                "vae_encode", "vae", f"VAE encode of the {geometry.frames}-frame condition video (the image, its last "
                "frame repeated)", runs=b, root="vae", adapter=VAE_ENCODE_SAMPLE,
                dims={"batch": 1, "latent_frames": lf, "latent_h": lh, "latent_w": lw},
                notes=("vae_encode: Cosmos2VideoToWorldPipeline.prepare_latents pads the one conditioning image to "
                       f"num_frames ({geometry.frames}) by repeating it and encodes each video of the batch on its own "
                       "(vae.encode(vid.unsqueeze(0)).latent_dist.sample())",)),)
        what = f"{lf} latent frames one at a time with its causal cache" if lf > 1 else "one latent frame"
        after = (plans.decode(VAE_DECODE, f"AutoencoderKLWan (Wan2.1), {what}",
                              {"batch": b, "latent_frames": lf, "latent_h": lh, "latent_w": lw}),)
        return before, after


def _encode_sample_wrapper(vae: torch.nn.Module) -> torch.nn.Module:
    import torch

    class VaeEncodeSample(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.component: Any = vae

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # retrieve_latents(vae.encode(vid), generator) with its default sample_mode="sample"
            return self.component.encode(x).latent_dist.sample()

    return VaeEncodeSample()


@dataclass
class VaeEncodeSample(VaeEncode):
    """``retrieve_latents(vae.encode(x), generator)``: a sample of the latent distribution (mean + std * noise)."""

    name: str = "vae-encode-sample"

    def supports_dynamic(self, config: dict[str, Any]) -> bool:
        """No: ``randn_tensor(mean.shape)`` needs concrete sizes (exported once per workload)."""
        return False

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return _encode_sample_wrapper(model)


VAE_ENCODE_SAMPLE = VaeEncodeSample()


@dataclass
class T5BoolMask(T5Encoder):
    """``Cosmos2TextToImagePipeline._get_t5_prompt_embeds``: ``text_encoder(ids, attention_mask=mask.bool())
    .last_hidden_state`` (Wan's call with a boolean mask)."""

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        b, n = dims["batch"], dims["seq_len"]
        return {"input_ids": meta_tensor(b, n, dtype=torch.long), "attention_mask": meta_tensor(b, n, dtype=torch.bool)}


# eager FlopCounterMode on meta cannot run transformers' padding-mask check (.item() on meta): verify counts the graph
T5_BOOL_MASK = T5BoolMask(name="t5-bool-mask", masked=True, reference_on_graph=True)

ADAPTERS = (CosmosAdapter(),)

_SCRIPT = ("https://github.com/huggingface/diffusers/blob/58eb52c0803ea9af3abec60841c2a093bdf1f951/scripts/"
           "convert_cosmos_to_diffusers.py")
_STAGES = {"text_encoder": "cosmos-predict2-2b/text_encoder", "vae": "wan2.1/vae"}

MODELS = (
    ModelSpec("cosmos-predict2-2b-t2i", "cosmos-predict2-2b/text2image/transformer/config.json", "cosmos_predict2",
              "cosmos-predict2-t2i", f"{_SCRIPT}#L336-L350",
              "Cosmos Predict2 text-to-image, 2B (T5 11B text encoder, Wan2.1 VAE)",
              _STAGES),
    ModelSpec("cosmos-predict2-2b-v2w", "cosmos-predict2-2b/video2world/transformer/config.json", "cosmos_predict2",
              "cosmos-predict2-v2w", f"{_SCRIPT}#L366-L380",
              "Cosmos Predict2 video-to-world (image-conditioned), 2B (T5 11B text encoder, Wan2.1 VAE)", _STAGES),
)

PRESETS = (
    Workload("cosmos-predict2-t2i", 1, 768, 1360, 35, MAX_SEQUENCE_LENGTH, guidance_scale=7.0, family="cosmos-predict2",
             description="Cosmos2TextToImagePipeline __call__ defaults: 1360x768, 35 steps, CFG 7.0, text 512"),
    Workload("cosmos-predict2-v2w", 93, 704, 1280, 35, MAX_SEQUENCE_LENGTH, guidance_scale=7.0, family="cosmos-predict2",
             description="Cosmos2VideoToWorldPipeline __call__ defaults: 1280x704, 93 frames (fps 16) from one image, "
                         "35 steps, CFG 7.0, text 512"),
)
