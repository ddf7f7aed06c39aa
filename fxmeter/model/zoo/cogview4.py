"""CogView4-6B (diffusers ``CogView4Transformer2DModel``), as ``CogView4Pipeline`` drives it.

The pipeline (diffusers 0.42.1, ``pipelines/cogview4/pipeline_cogview4.py``), copied here:

* **Text**: GLM-4-9B's decoder as transformers ships it (``GlmModel``; the conversion script takes
  THUDM/glm-4-9b-hf).  ``_get_glm_embeds`` tokenizes with ``padding="longest"`` (no fixed length) and pads
  on the left to a multiple of 16, then ``text_encoder(ids, output_hidden_states=True).hidden_states[-2]``
  (no attention mask; every layer runs).  The workload's ``text_len`` is that padded length: 16 for the
  docstring's prompt ("A photo of an astronaut riding a horse on mars": ``[gMASK]<sop>`` and about ten
  words, under 16 tokens).  With CFG the empty negative prompt (``negative_prompt or ""``, two special
  tokens) is encoded too, padded to 16: a second call.
* **Latents**: ``AutoencoderKL`` 16 channels, 8x (``2 ** (len(block_out_channels) - 1)``); ``patch_size`` 2:
  1024 x 1024 (``sample_size`` 128 x 8, the default) is 64 x 64 = 4,096 image tokens.  Height and width
  must be multiples of 16 (``check_inputs``; a 32-multiple is asked for by the 2x2 patch over the 8x VAE).
* **Denoiser**: joint text-image attention (``CogView4AttnProcessor``) with 2D RoPE computed inside the
  model from the latent size; ``timestep`` the flow-matching float timestep expanded to the batch;
  ``original_size``/``target_size``/``crop_coords`` ``(B, 2)`` tensors in the text encoder's dtype.  CFG 5.0:
  the conditional and the unconditional pass are two separate forwards per step, 50 steps.  The
  unconditional pass sees the negative prompt's 16 tokens: with the default workload (``text_len`` 16)
  both passes are the same forward (2 passes per step); with a longer prompt the unconditional pass is a
  denoising stage of its own, ``transformer_uncond`` (the same weights, ``text_len`` 16, once per step).
* **VAE**: ``vae.decode(latents / scaling_factor, return_dict=False)[0]``, bf16 (the docstring loads the
  pipeline with ``torch_dtype=torch.bfloat16``; so are the text encoder and the transformer).

Configs: transformer and VAE from diffusers' CogView4 conversion script; the text encoder from
transformers' ``GlmConfig`` defaults (the glm-4-9b-chat configuration; class defaults: no public copy of
CogView4-6B's ``text_encoder/config.json`` was reachable), each config's ``_source`` says which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fxmeter.errors import WorkloadError
from fxmeter.model.adapters._common import ANY, ATTN, MATMUL, NORM, Rules, attention_dims, image_only
from fxmeter.model.adapters.base import Adapter, Geometry, SymbolAxis
from fxmeter.model.adapters.stage import StageAdapter, meta_tensor
from fxmeter.model.adapters.text_encoders import TEXT_CATEGORIES
from fxmeter.model.adapters.vaes import VAE_DECODE
from fxmeter.model.pipeline import ModelSpec, StagePlan
from fxmeter.model.workload import Workload

if TYPE_CHECKING:
    import torch

VAE_SCALE = 8
TEXT_PAD = 16  # CogView4Pipeline._get_glm_embeds pads the tokens on the left to a multiple of 16
NEGATIVE_TOKENS = 16  # "" -> [gMASK]<sop> (2 tokens) -> padded to 16


COGVIEW4_CATEGORIES: Rules = (
    (r"^transformer_blocks\.\d+\.attn1(\.|$)", ATTN, "attention_core"),
    (r"^transformer_blocks\.\d+\.attn1(\.|$)", MATMUL, "attention_proj"),
    (r".", NORM, "norms"),
    (r"^$", NORM, "norms"),
    (r"^transformer_blocks\.\d+\.attn1$", ANY, "rope"),  # RoPE application, the joint sequence's cat/split
    (r"^transformer_blocks\.\d+\.ff(\.|$)", ANY, "ffn"),
    (r"^transformer_blocks\.\d+(\.|$)", ANY, "modulation"),
    (r"^(rope|patch_embed|time_condition_embed)(\.|$)", ANY, "embeddings"),
    (r"^(norm_out|proj_out)(\.|$)", ANY, "head"),
    (r"^$", ANY, "head"),
)


def _glm_wrapper(model: torch.nn.Module) -> torch.nn.Module:
    import torch

    class GlmCall(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.component: Any = model

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            # CogView4Pipeline._get_glm_embeds: text_encoder(ids, output_hidden_states=True).hidden_states[-2]
            return self.component(input_ids, output_hidden_states=True).hidden_states[-2]

    return GlmCall()


@dataclass
class GlmCogView4(StageAdapter):
    """``GlmModel(ids, output_hidden_states=True).hidden_states[-2]``: dynamic in batch and length."""

    name: str = "glm-cogview4"
    library: str = "transformers"
    classes: tuple[str, ...] = ("GlmModel",)
    symbols: tuple[str, ...] = ("batch", "seq_len")
    category_rules: Any = TEXT_CATEGORIES
    reference_on_graph: bool = True  # transformers' mask construction on meta: verify counts the exported graph

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return _glm_wrapper(model)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        return {"input_ids": meta_tensor(dims["batch"], dims["seq_len"], dtype=torch.long)}

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        return {"input_ids": {0: SymbolAxis("batch"), 1: SymbolAxis("seq_len")}}

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 1024), "seq_len": (2, 1 << 15)}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 2, "seq_len": 7}


GLM_COGVIEW4 = GlmCogView4()


@dataclass
class CogView4Adapter(Adapter):
    name: str = "cogview4"
    diffusers_class: str = "CogView4Transformer2DModel"
    repeated: dict[str, str] = field(default_factory=lambda: {"transformer_blocks": "num_layers"})
    symbols: tuple[str, ...] = ("batch", "patches_h", "patches_w", "text_len")
    required_keys: tuple[str, ...] = (
        "in_channels", "num_layers", "num_attention_heads", "attention_head_dim", "text_embed_dim", "patch_size",
    )
    category_rules: Rules = COGVIEW4_CATEGORIES
    default_slug: str = "cogview4"
    family: str = "cogview4"
    default_workload: str | None = "cogview4-1024"
    offload_seq: tuple[str, ...] = ("text_encoder", "transformer", "vae")  # CogView4Pipeline.model_cpu_offload_seq
    positive_keys: tuple[str, ...] = (
        "patch_size", "in_channels", "out_channels", "num_layers", "attention_head_dim", "num_attention_heads",
        "text_embed_dim", "time_embed_dim", "condition_dim", "pos_embed_max_size", "sample_size", "rope_axes_dim",
    )
    sequence_symbols: tuple[str, ...] = ("patches_h", "patches_w")
    joint_text_symbols: tuple[str, ...] = ("text_len",)

    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        p = int(config["patch_size"])
        if wl.height % (VAE_SCALE * p) or wl.width % (VAE_SCALE * p):
            raise WorkloadError(f"height and width must be divisible by {VAE_SCALE * p} (VAE 8x, patch {p}); "
                                f"got {wl.height}x{wl.width}")
        if wl.text_len % TEXT_PAD:
            raise WorkloadError(f"text_len must be a multiple of {TEXT_PAD}: CogView4Pipeline pads the prompt's "
                                f"tokens on the left to one; got {wl.text_len}")
        notes = image_only(wl.frames, "CogView4")
        lh, lw = wl.height // VAE_SCALE, wl.width // VAE_SCALE
        dims = {"batch": wl.batch, "patches_h": lh // p, "patches_w": lw // p, "text_len": wl.text_len}
        tokens = (lh // p) * (lw // p)
        return Geometry(dims, (wl.batch, int(config["in_channels"]), lh, lw), tokens, 1, tuple(notes))

    def model_dims(self, config: dict[str, Any], geometry: Geometry) -> dict[str, int | None] | None:
        """32 heads x 128, FFN 4 x hidden (``FeedForward`` gelu-approximate), 28 blocks; image tokens split."""
        return attention_dims(config, int(config["num_layers"]), geometry.dims["text_len"], geometry.tokens)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        b, t, p = dims["batch"], dims["text_len"], int(config["patch_size"])

        def e(*shape: int, dt: torch.dtype = dtype) -> torch.Tensor:
            return torch.empty(*shape, device="meta", dtype=dt)

        return {
            "hidden_states": e(b, int(config["in_channels"]), dims["patches_h"] * p, dims["patches_w"] * p),
            "encoder_hidden_states": e(b, t, int(config["text_embed_dim"])),
            "timestep": e(b, dt=torch.float32),  # FlowMatchEulerDiscreteScheduler's float t.expand(B)
            "original_size": e(b, 2),  # torch.tensor([(h, w)], dtype=prompt_embeds.dtype).repeat(B, 1)
            "target_size": e(b, 2),
            "crop_coords": e(b, 2),
            "return_dict": False,
        }

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        p = int(config["patch_size"])
        return {
            "hidden_states": {0: SymbolAxis("batch"), 2: SymbolAxis("patches_h", p), 3: SymbolAxis("patches_w", p)},
            "encoder_hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("text_len")},
            "timestep": {0: SymbolAxis("batch")},
            "original_size": {0: SymbolAxis("batch")},
            "target_size": {0: SymbolAxis("batch")},
            "crop_coords": {0: SymbolAxis("batch")},
        }

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 1024), "patches_h": (2, 1024), "patches_w": (2, 1024), "text_len": (2, 1 << 14)}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 2, "patches_h": 5, "patches_w": 7, "text_len": 9}

    def stages(self, config: dict[str, Any], wl: Workload, *, batched_cfg: bool = False) -> tuple[StagePlan, ...]:
        """Two forwards per step with CFG; the unconditional one sees the empty negative prompt's 16 tokens, so a
        longer prompt makes it a stage of its own (same weights, ``text_len`` 16)."""
        dims = self.geometry(config, wl).dims
        if wl.guidance_scale <= 1.0 or dims["text_len"] == NEGATIVE_TOKENS:
            return super().stages(config, wl, batched_cfg=batched_cfg)
        return (StagePlan("transformer", "transformer", "denoiser (conditional pass)", runs=wl.steps, steps=wl.steps),
                StagePlan("transformer_uncond", "transformer",
                          f"denoiser (unconditional pass: the empty negative prompt, {NEGATIVE_TOKENS} text tokens)",
                          runs=wl.steps, steps=wl.steps, dims={**dims, "text_len": NEGATIVE_TOKENS}))

    def pipeline_stages(self, config: dict[str, Any], wl: Workload,
                        geometry: Geometry) -> tuple[tuple[StagePlan, ...], tuple[StagePlan, ...]]:
        b, t = geometry.dims["batch"], geometry.dims["text_len"]
        before = [StagePlan("text_encoder", "text_encoder", f"text encoder (GLM-4-9B, prompt: {t} tokens)", runs=1,
                            root="text_encoder", adapter=GLM_COGVIEW4, dims={"batch": b, "seq_len": t},
                            notes=("text_encoder: padding='longest', left-padded to a multiple of 16; hidden_states[-2]",))]
        if wl.guidance_scale > 1.0:
            before.append(StagePlan("text_encoder_negative", "text_encoder",
                                    f"text encoder (GLM-4-9B, empty negative prompt: {NEGATIVE_TOKENS} tokens)", runs=1,
                                    root="text_encoder", adapter=GLM_COGVIEW4,
                                    dims={"batch": b, "seq_len": NEGATIVE_TOKENS}))
        _, _, lh, lw = geometry.latent_shape
        after = (StagePlan("vae", "vae", "VAE decode (AutoencoderKL, 16 channels)", runs=1, root="vae",
                           adapter=VAE_DECODE, dims={"batch": b, "latent_h": lh, "latent_w": lw}),)
        return tuple(before), after


ADAPTERS = (CogView4Adapter(),)

MODELS = (
    ModelSpec("cogview4-6b", "cogview4-6b/transformer/config.json", "cogview4", "cogview4-1024",
              "https://github.com/huggingface/diffusers/blob/main/scripts/convert_cogview4_to_diffusers.py",
              "CogView4-6B text-to-image (GLM-4-9B text encoder; CFG: 2 passes/step)",
              {c: f"cogview4-6b/{c}" for c in ("text_encoder", "vae")}),
)

PRESETS = (
    Workload("cogview4-1024", 1, 1024, 1024, 50, 16, guidance_scale=5.0,
             description="CogView4Pipeline: 1024x1024, 50 steps, CFG 5.0, the docstring's prompt: 16 GLM tokens",
             family="cogview4"),
)

STAGE_ADAPTERS = {"GlmModel": GLM_COGVIEW4}
