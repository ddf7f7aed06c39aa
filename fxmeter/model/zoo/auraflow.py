"""AuraFlow v0.3 (diffusers ``AuraFlowTransformer2DModel``, 6.8B), as ``AuraFlowPipeline`` drives it.

Everything copied from diffusers 0.42.1 ``pipelines/aura_flow/pipeline_aura_flow.py``:

* **Text.**  ``encode_prompt`` tokenizes with ``padding="max_length"`` to ``max_sequence_length`` (256 by
  default) and calls the Pile-T5-XL encoder (``UMT5EncoderModel``) with the padding mask,
  ``text_encoder(input_ids=..., attention_mask=...)[0]`` (fxmeter's ``t5-masked`` call), then zeroes the
  padded positions (a pipeline-side multiply, not costed).  With classifier-free guidance
  (``guidance_scale > 1``, 3.5 by default) the negative prompt (``""``) is encoded by a second call padded to
  the same length.
* **Latents.**  The SDXL ``AutoencoderKL`` (4 channels, 8x): ``(B, 4, H/8, W/8)``.  The transformer
  patchifies 2x2 with a linear layer and adds a learned position embedding cropped from a
  ``sqrt(pos_embed_max_size)`` = 96 x 96 grid (at most 1536 x 1536 pixels): ``(H/16) * (W/16)`` image tokens.
  It prepends 8 learned register tokens to the ``text_len`` caption tokens (``text_len + 8``).
* **Denoiser.**  ``timestep = t / 1000`` expanded to the batch in the latents' dtype.  Under CFG the
  pipeline concatenates ``[negative, prompt]`` and the latents twice: *one* transformer call of twice the
  batch per step.  fxmeter costs two forwards of the batch unless ``--batched-cfg`` (the same FLOPs: every op
  is per sample).  4 joint (MMDiT) blocks, then 32 single blocks over the concatenated sequence; each list's
  blocks are identical (traced once, replicated).
* **VAE.**  ``vae.decode(latents / scaling_factor)``; with a float16 VAE and ``force_upcast`` (set in this
  VAE's config) the pipeline first casts the VAE to float32 (``--stage-dtype vae=fp32`` for that case; the
  FLOPs are the same).

Preset ``auraflow-1024``: ``AuraFlowPipeline.__call__``'s defaults (1024 x 1024, 50 steps, guidance 3.5,
``max_sequence_length`` 256), as its docstring calls it (``pipe(prompt)``).

Configs: the transformer from a public AuraFlow-v0.3 fine-tuning repository's denoiser config (the hub's
``fal/AuraFlow-v0.3/transformer/config.json`` was not reachable), the text encoder ComfyUI's Pile-T5-XL
config, the VAE the SDXL VAE config of AuraFlow-v0.3 (each file's ``_source``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fxmeter.errors import WorkloadError
from fxmeter.model.adapters._common import ANY, ATTN, MATMUL, NORM, Rules, attention_dims, divisible, image_only
from fxmeter.model.adapters.base import Adapter, Geometry, SymbolAxis
from fxmeter.model.adapters.plans import Plans, cfg_runs, decode, text
from fxmeter.model.adapters.text_encoders import UMT5_MASKED
from fxmeter.model.adapters.vaes import VAE_DECODE
from fxmeter.model.pipeline import ModelSpec
from fxmeter.model.workload import Workload

if TYPE_CHECKING:
    import torch

VAE_SCALE = 8  # 2 ** (len(vae.config.block_out_channels) - 1)
MAX_SEQUENCE_LENGTH = 256  # AuraFlowPipeline.__call__ default
REGISTER_TOKENS = 8  # AuraFlowTransformer2DModel.register_tokens (1, 8, inner_dim)

_BLOCKS = r"^(joint_transformer_blocks|single_transformer_blocks)\.\d+"
AURAFLOW_CATEGORIES: Rules = (
    (rf"{_BLOCKS}\.attn(\.|$)", ATTN, "attention_core"),
    (rf"{_BLOCKS}\.attn(\.|$)", MATMUL, "attention_proj"),
    (r".", NORM, "norms"),
    (r"^$", NORM, "norms"),
    (rf"{_BLOCKS}\.attn$", ANY, "attention_core"),  # the joint sequence's cat / split around the attention
    (rf"{_BLOCKS}\.(ff|ff_context)(\.|$)", ANY, "ffn"),
    (rf"{_BLOCKS}(\.|$)", ANY, "modulation"),  # AdaLayerNormZero, gates, residuals
    (r"^(pos_embed|time_step_embed|time_step_proj|context_embedder)(\.|$)", ANY, "embeddings"),
    (r"^(norm_out|proj_out)(\.|$)", ANY, "head"),
    (r"^$", ANY, "head"),  # register tokens, the single blocks' concatenation, unpatchify
)


@dataclass
class AuraFlowAdapter(Adapter):
    name: str = "auraflow"
    diffusers_class: str = "AuraFlowTransformer2DModel"
    # every joint block is built alike (context_pre_only=False for all), and so is every single block
    repeated: dict[str, str] = field(default_factory=lambda: {
        "joint_transformer_blocks": "num_mmdit_layers", "single_transformer_blocks": "num_single_dit_layers"})
    symbols: tuple[str, ...] = ("batch", "patches_h", "patches_w", "text_len")
    required_keys: tuple[str, ...] = (
        "patch_size", "in_channels", "num_mmdit_layers", "num_single_dit_layers", "attention_head_dim",
        "num_attention_heads", "joint_attention_dim", "pos_embed_max_size",
    )
    category_rules: Rules = AURAFLOW_CATEGORIES
    default_slug: str = "auraflow"
    family: str = "auraflow"
    default_workload: str | None = "auraflow-1024"
    offload_seq: tuple[str, ...] = ("text_encoder", "transformer", "vae")  # model_cpu_offload_seq
    pipelines: tuple[str, ...] = ("AuraFlowPipeline",)  # fxmeter.model.folder.pipelines_for
    positive_keys: tuple[str, ...] = (
        "sample_size", "patch_size", "in_channels", "num_mmdit_layers", "num_single_dit_layers", "attention_head_dim",
        "num_attention_heads", "joint_attention_dim", "caption_projection_dim", "out_channels", "pos_embed_max_size",
    )
    sequence_symbols: tuple[str, ...] = ("patches_h", "patches_w")
    joint_text_symbols: tuple[str, ...] = ("text_len",)

    def _grid(self, config: dict[str, Any]) -> int:
        """The side of the learned position-embedding grid: ``int(pos_embed_max_size ** 0.5)`` (96)."""
        return int(int(config["pos_embed_max_size"]) ** 0.5)

    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        p = int(config["patch_size"])
        divisible(wl.height, wl.width, VAE_SCALE * p, "VAE 8 x 2x2 patches")
        ph, pw = wl.height // (VAE_SCALE * p), wl.width // (VAE_SCALE * p)
        grid = self._grid(config)
        if max(ph, pw) > grid:
            raise WorkloadError(f"{max(ph, pw)} patches per side exceed the {grid} x {grid} position-embedding grid "
                                f"(pos_embed_max_size {config['pos_embed_max_size']}); at most {grid * p * VAE_SCALE} px")
        notes = image_only(wl.frames, "AuraFlow")
        notes.append(f"the transformer prepends {REGISTER_TOKENS} register tokens to the {wl.text_len} text tokens: "
                     f"{ph * pw} image + {wl.text_len + REGISTER_TOKENS} text tokens")
        dims = {"batch": wl.batch, "patches_h": ph, "patches_w": pw, "text_len": wl.text_len}
        shape = (wl.batch, int(config["in_channels"]), ph * p, pw * p)
        return Geometry(dims, shape, ph * pw, 1, tuple(notes))

    def model_dims(self, config: dict[str, Any], geometry: Geometry) -> dict[str, int | None] | None:
        """``num_attention_heads`` x ``attention_head_dim``; the SwiGLU FFN ``find_multiple(int(2 * 4 * hidden / 3),
        256)`` wide (8192 at hidden 3072); 4 + 32 blocks over image + (text + 8 register) tokens."""
        layers = int(config["num_mmdit_layers"]) + int(config["num_single_dit_layers"])
        dims = attention_dims(config, layers, geometry.dims["text_len"] + REGISTER_TOKENS, geometry.tokens)
        ffn = int(2 * 4 * int(dims["hidden"] or 0) / 3)
        dims["ffn"] = ffn + (-ffn) % 256
        return dims

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        p, b = int(config["patch_size"]), dims["batch"]

        def e(*shape: int) -> torch.Tensor:
            return torch.empty(*shape, device="meta", dtype=dtype)

        return {
            "hidden_states": e(b, int(config["in_channels"]), dims["patches_h"] * p, dims["patches_w"] * p),
            "encoder_hidden_states": e(b, dims["text_len"], int(config["joint_attention_dim"])),
            "timestep": e(b),  # torch.tensor([t / 1000]).expand(batch).to(latents.dtype)
            "return_dict": False,
        }

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        p = int(config["patch_size"])
        return {
            "hidden_states": {0: SymbolAxis("batch"), 2: SymbolAxis("patches_h", p), 3: SymbolAxis("patches_w", p)},
            "encoder_hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("text_len")},
            "timestep": {0: SymbolAxis("batch")},
        }

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        grid = self._grid(config)
        return {"batch": (1, 1024), "patches_h": (1, grid), "patches_w": (1, grid), "text_len": (1, 1 << 16)}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 2, "patches_h": 4, "patches_w": 6, "text_len": 7}

    def pipeline_stages(self, config: dict[str, Any], wl: Workload, geometry: Geometry) -> Plans:
        """Pile-T5-XL with its padding mask (prompt, and the negative prompt under CFG); SDXL VAE decode."""
        b, n = geometry.dims["batch"], geometry.dims["text_len"]
        p = int(config["patch_size"])
        before = (text("text_encoder", UMT5_MASKED, f"Pile-T5-XL (UMT5), masked, {n} tokens", cfg_runs(wl),
                       {"batch": b, "seq_len": n}),)
        after = (decode(VAE_DECODE, "AutoencoderKL (SDXL), 4 channels",
                        {"batch": b, "latent_h": geometry.dims["patches_h"] * p,
                         "latent_w": geometry.dims["patches_w"] * p},
                        notes=("vae: in the pipeline dtype; a float16 pipeline upcasts it to float32 (force_upcast): "
                               "--stage-dtype vae=fp32 for that case",)),)
        return before, after


ADAPTERS = (AuraFlowAdapter(),)

MODELS = (
    ModelSpec("auraflow-v0.3", "auraflow-v0.3/transformer/config.json", "auraflow", "auraflow-1024",
              "https://github.com/p1atdev/vision-ft/blob/42f25f48d0bb782b427d7ef84de09f1cfd0a8f9f/src/models/auraflow/"
              "config.py",
              "AuraFlow v0.3 text-to-image, 6.8B (Pile-T5-XL; CFG 3.5: 2 passes/step, batched by the pipeline)",
              {c: f"auraflow-v0.3/{c}" for c in ("text_encoder", "vae")}),
)

PRESETS = (
    Workload("auraflow-1024", 1, 1024, 1024, 50, MAX_SEQUENCE_LENGTH, guidance_scale=3.5,
             description="AuraFlowPipeline defaults: 1024x1024, 50 steps, CFG 3.5 (prompt + negative batched), "
                         "Pile-T5-XL 256 tokens (max_sequence_length)", family="auraflow"),
)
