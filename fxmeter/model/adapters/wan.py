"""Wan2.1 / Wan2.2 transformers (diffusers ``WanTransformer3DModel``).

Geometry follows diffusers' ``WanPipeline``: the VAE compresses time by 4 and
space by 8, the transformer patchifies by ``patch_size`` (1, 2, 2); a frame count
that is not 4k+1 is rounded down to one the way the pipeline does; height and
width must be multiples of 16.

One class, several pipelines (chosen from the config by :meth:`WanAdapter.specialize`):

* T2V (Wan2.1, Wan2.2-A14B): text only.
* I2V (``image_dim`` set, Wan2.1-I2V-14B): 36 input channels (16 noise + 20
  condition latents), 257 CLIP image tokens fed through ``encoder_hidden_states_image``
  and concatenated in front of the text inside the model.  diffusers' attention
  processor splits them off with a hard-coded 512 text tokens
  (``encoder_hidden_states.shape[1] - 512``), so text is always 512 tokens.
* TI2V (Wan2.2-TI2V-5B, ``_pipeline.expand_timesteps``): VAE 16x spatial, one
  timestep per latent token (``timestep`` of shape ``(B, tokens)``, a product
  of the geometry symbols): static export per workload.
* Two experts (``_pipeline.experts``, Wan2.2-T2V-A14B): a high-noise and a
  low-noise transformer of the same architecture switch at
  ``boundary_ratio * num_train_timesteps``; the report gets a ``components``
  section (each expert's steps and share) and weight memory counts both.
* Two I2V experts (Wan2.2-I2V-A14B, ``in_channels`` 36 > ``out_channels`` 16,
  no ``image_dim``): ``WanImageToVideoPipeline`` with ``transformer_2`` and no
  CLIP image encoder; the image conditions only through the VAE-encoded
  condition video (mask + image latents) concatenated to the noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from fxmeter.errors import ConfigError, WorkloadError
from fxmeter.model.adapters._common import QK_NORMS, attention_dims, tp_roles
from fxmeter.model.adapters.base import Adapter, Geometry, SymbolAxis
from fxmeter.model.pipeline import StagePlan
from fxmeter.model.workload import Workload

if TYPE_CHECKING:
    import torch

VAE_SCALE_TEMPORAL = 4
VAE_SCALE_SPATIAL = 8
I2V_TEXT_LEN = 512  # diffusers WanAttnProcessor: image_context_length = encoder_hidden_states.shape[1] - 512
CLIP_IMAGE_TOKENS = 257  # CLIP ViT-H/14 at 224px: 16 x 16 patches + class token

_ANY = None
_MATMUL = frozenset({"matmul"})
_ATTN = frozenset({"attention"})
_NORM = frozenset({"norm"})

WAN_CATEGORIES: tuple[tuple[str, frozenset[str] | None, str], ...] = (
    (r"^blocks\.\d+\.attn1(\.|$)", _ATTN, "self_attention_core"),
    (r"^blocks\.\d+\.attn1(\.|$)", _MATMUL, "self_attention_proj"),
    (r"^blocks\.\d+\.attn2(\.|$)", _ATTN, "cross_attention_core"),
    (r"^blocks\.\d+\.attn2(\.|$)", _MATMUL, "cross_attention_proj"),
    (r".", _NORM, "norms"),
    (r"^$", _NORM, "norms"),
    (r"^blocks\.\d+\.attn1$", _ANY, "rope"),
    (r"^blocks\.\d+\.attn2$", _ANY, "cross_attention_core"),
    (r"^blocks\.\d+\.ffn(\.|$)", _ANY, "ffn"),
    (r"^blocks\.\d+$", _ANY, "modulation"),
    (r"^(rope|condition_embedder)(\.|$)", _ANY, "embeddings"),
    (r"^patch_embedding(\.|$)", _ANY, "conv"),
    (r"^(norm_out|proj_out)(\.|$)", _ANY, "head"),
    (r"^$", _ANY, "head"),
)


@dataclass
class WanAdapter(Adapter):
    name: str = "wan"
    diffusers_class: str = "WanTransformer3DModel"
    repeated: dict[str, str] = field(default_factory=lambda: {"blocks": "num_layers"})
    symbols: tuple[str, ...] = ("batch", "latent_frames", "patches_h", "patches_w", "text_len")
    required_keys: tuple[str, ...] = (
        "patch_size",
        "num_attention_heads",
        "attention_head_dim",
        "in_channels",
        "out_channels",
        "text_dim",
        "freq_dim",
        "ffn_dim",
        "num_layers",
    )
    category_rules: tuple[tuple[str, frozenset[str] | None, str], ...] = WAN_CATEGORIES
    default_slug: str = "wan"
    family: str = "wan"
    default_workload: str | None = "480p"
    offload_seq: tuple[str, ...] = ("text_encoder", "transformer", "transformer_2", "vae")
    extra_policies: tuple[str, ...] = ("wan",)
    positive_keys: tuple[str, ...] = (
        "patch_size", "num_attention_heads", "attention_head_dim", "in_channels", "out_channels", "text_dim", "freq_dim",
        "ffn_dim", "num_layers", "rope_max_seq_len",
    )
    choices: dict[str, tuple[Any, ...]] = field(default_factory=lambda: {"qk_norm": QK_NORMS})
    sequence_symbols: tuple[str, ...] = ("latent_frames", "patches_h", "patches_w")
    tp_roles: tuple[tuple[str, str], ...] = tp_roles(("blocks",))

    # -- variants -------------------------------------------------------
    def specialize(self, config: dict[str, Any]) -> Adapter:
        if config.get("image_dim"):
            return replace(self, name="wan-i2v", symbols=("batch", "latent_frames", "patches_h", "patches_w"),
                           default_workload="i2v-480p",
                           offload_seq=("text_encoder", "image_encoder", "transformer", "transformer_2", "vae"))
        if self._expand_timesteps(config):
            return replace(self, name="wan-ti2v", default_workload="ti2v-720p")
        if len(self._pipeline(config).get("experts") or ()) > 1:
            if self._image_latents(config):
                return replace(self, name="wan-i2v-experts", default_workload="a14b-i2v-720p")
            return replace(self, name="wan-experts", default_workload="a14b-720p")
        return self

    def check_config(self, config: dict[str, Any]) -> list[str]:
        """The base checks, plus ``patch_size``: three positive integers (t, h, w)."""
        bad = super().check_config(config)
        ps = config.get("patch_size")
        if "patch_size" in config and not (isinstance(ps, (list, tuple)) and len(ps) == 3):
            bad.append(f"patch_size = {ps!r}: expected 3 positive integers (t, h, w)")
        return bad

    @staticmethod
    def _pipeline(config: dict[str, Any]) -> dict[str, Any]:
        p = config.get("_pipeline")
        return p if isinstance(p, dict) else {}

    def _expand_timesteps(self, config: dict[str, Any]) -> bool:
        # Wan2.2's 48-channel VAE ships with expand_timesteps pipelines (TI2V-5B)
        return bool(self._pipeline(config).get("expand_timesteps", int(config.get("in_channels", 16)) == 48))

    @staticmethod
    def _image_latents(config: dict[str, Any]) -> bool:
        """True for ``WanImageToVideoPipeline``: it concatenates the VAE-encoded condition video (4 mask + the
        image's latent channels) to the noise, so the transformer takes more channels than it predicts."""
        return bool(config.get("image_dim")) or int(config.get("in_channels", 16)) > int(config.get("out_channels") or 16)

    def _vae_spatial(self, config: dict[str, Any]) -> int:
        default = 16 if int(config.get("out_channels") or config.get("in_channels", 16)) == 48 else VAE_SCALE_SPATIAL
        return int(self._pipeline(config).get("vae_scale_factor_spatial", default))

    def model_dims(self, config: dict[str, Any], geometry: Geometry) -> dict[str, int | None] | None:
        """``num_attention_heads`` x ``attention_head_dim``, ``ffn_dim``, ``num_layers``; the video tokens are split
        (Wan2.1 ``xdit_context_parallel.py``; the text stays whole for the cross-attention)."""
        dims = attention_dims(config, int(config["num_layers"]), geometry.dims.get("text_len", I2V_TEXT_LEN),
                              geometry.tokens)
        return {**dims, "ffn": int(config["ffn_dim"])}

    def supports_dynamic(self, config: dict[str, Any]) -> bool:
        """Not with per-token timesteps (their length is a product of geometry symbols)."""
        return not self._expand_timesteps(config)

    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        p_t, p_h, p_w = config["patch_size"]
        notes: list[str] = []
        vae_s = self._vae_spatial(config)
        vae_t = int(self._pipeline(config).get("vae_scale_factor_temporal", VAE_SCALE_TEMPORAL))
        frames = wl.frames
        if frames % vae_t != 1:
            rounded = frames // vae_t * vae_t + 1
            notes.append(
                f"frames={frames} is not {vae_t}k+1; rounded to {rounded} as diffusers' WanPipeline does"
            )
            frames = rounded
        sh, sw = vae_s * p_h, vae_s * p_w
        if wl.height % sh or wl.width % sw:
            raise WorkloadError(
                f"height and width must be divisible by {sh}x{sw} (VAE x patch); got {wl.height}x{wl.width}"
            )
        latent_frames = (frames - 1) // vae_t + 1
        lh, lw = wl.height // vae_s, wl.width // vae_s
        if latent_frames % p_t:
            raise WorkloadError(f"latent frames {latent_frames} not divisible by temporal patch {p_t}")
        ppf, pph, ppw = latent_frames // p_t, lh // p_h, lw // p_w
        rope_max = int(config.get("rope_max_seq_len", 1024))
        for label, v in (("latent frames", ppf), ("height patches", pph), ("width patches", ppw)):
            if v > rope_max:
                raise WorkloadError(
                    f"{label} = {v} exceeds the RoPE table ({rope_max} positions, rope_max_seq_len); "
                    "use fewer frames or a smaller resolution"
                )
        latent_shape = (wl.batch, int(config["in_channels"]), latent_frames, lh, lw)
        dims = {
            "batch": wl.batch,
            "latent_frames": latent_frames,
            "patches_h": pph,
            "patches_w": ppw,
            "text_len": wl.text_len,
        }
        if config.get("image_dim"):
            if wl.text_len != I2V_TEXT_LEN:
                notes.append(f"text_len={wl.text_len} ignored: Wan I2V always uses {I2V_TEXT_LEN} text tokens "
                             "(diffusers' WanAttnProcessor hard-codes it)")
            dims["text_len"] = I2V_TEXT_LEN
        return Geometry(dims, latent_shape, ppf * pph * ppw, frames, tuple(notes))

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        import torch

        p_t, p_h, p_w = config["patch_size"]
        b = dims["batch"]
        x = torch.empty(
            b,
            int(config["in_channels"]),
            dims["latent_frames"] * p_t,
            dims["patches_h"] * p_h,
            dims["patches_w"] * p_w,
            device="meta",
            dtype=dtype,
        )
        if self._expand_timesteps(config):
            # WanPipeline with expand_timesteps: one timestep per latent token, (B, tokens)
            tokens = dims["latent_frames"] * dims["patches_h"] * dims["patches_w"]
            t = torch.empty(b, tokens, device="meta", dtype=torch.float32)
        else:
            # WanPipeline: timestep = t.expand(batch) (float32 scheduler timesteps)
            t = torch.empty(b, device="meta", dtype=torch.float32)
        text_len = I2V_TEXT_LEN if config.get("image_dim") else dims["text_len"]
        e = torch.empty(b, text_len, int(config["text_dim"]), device="meta", dtype=dtype)
        kw: dict[str, Any] = {"hidden_states": x, "timestep": t, "encoder_hidden_states": e}
        if config.get("image_dim"):
            # WanImageToVideoPipeline: CLIP image_embeds (penultimate hidden states), repeated to the batch
            kw["encoder_hidden_states_image"] = torch.empty(
                b, CLIP_IMAGE_TOKENS, int(config["image_dim"]), device="meta", dtype=dtype
            )
        kw["return_dict"] = False
        return kw

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        p_t, p_h, p_w = config["patch_size"]
        axes = {
            "hidden_states": {
                0: SymbolAxis("batch"),
                2: SymbolAxis("latent_frames", p_t),
                3: SymbolAxis("patches_h", p_h),
                4: SymbolAxis("patches_w", p_w),
            },
            "timestep": {0: SymbolAxis("batch")},
            "encoder_hidden_states": {0: SymbolAxis("batch"), 1: SymbolAxis("text_len")},
        }
        if config.get("image_dim"):  # text fixed at 512 tokens
            axes["encoder_hidden_states"] = {0: SymbolAxis("batch")}
            axes["encoder_hidden_states_image"] = {0: SymbolAxis("batch")}
        return axes

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        rope_max = int(config.get("rope_max_seq_len", 1024))
        return {
            "batch": (1, 1024),
            "latent_frames": (1, rope_max),
            "patches_h": (1, rope_max),
            "patches_w": (1, rope_max),
            "text_len": (1, 1 << 16),
        }

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        dims = {"batch": 2, "latent_frames": 3, "patches_h": 4, "patches_w": 5, "text_len": 7}
        return {s: dims[s] for s in self.symbols}

    # -- two experts (Wan2.2-A14B) -----------------------------------------
    def expert_timesteps(self, config: dict[str, Any], steps: int) -> tuple[list[list[float]], float, dict[str, Any]]:
        """Each expert's timesteps, the boundary timestep and the scheduler config used.

        As ``WanPipeline.__call__``: ``boundary_timestep = boundary_ratio *
        scheduler.config.num_train_timesteps``; a step whose timestep ``t >= boundary``
        runs ``transformer`` (high noise), the others ``transformer_2``.  The timesteps
        are those of the pipeline's own scheduler config (``_pipeline.scheduler``, read
        from ``scheduler/scheduler_config.json``), in pure Python for the flow-sigma UniPC
        scheduler Wan ships (:mod:`fxmeter.adapters.scheduler`).
        """
        from fxmeter.model.adapters import scheduler

        p = self._pipeline(config)
        sched = p.get("scheduler")
        if not isinstance(sched, dict):
            raise ConfigError("two experts need the pipeline's scheduler config (_pipeline.scheduler, from "
                              "scheduler/scheduler_config.json) to split the steps")
        ratio = p.get("boundary_ratio")
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio <= 1:
            raise ConfigError(f"boundary_ratio must be a number in [0, 1], got {ratio!r}")
        ts = scheduler.timesteps(sched, steps)
        boundary = float(ratio) * int(sched.get("num_train_timesteps", 1000))
        return [[t for t in ts if t >= boundary], [t for t in ts if t < boundary]], boundary, sched

    def expert_steps(self, config: dict[str, Any], steps: int) -> list[int]:
        """Steps run by each expert: timesteps >= boundary go to the first (high-noise) one."""
        return [len(t) for t in self.expert_timesteps(config, steps)[0]]

    def components(self, config: dict[str, Any]) -> tuple[tuple[str, dict[str, Any]], ...]:
        """The transformer, and with two experts (``_pipeline.experts``) the second one: from its
        own config when ``_pipeline.expert_configs`` has one (a model folder whose
        ``transformer_2/config.json`` differs), else the same architecture."""
        p = self._pipeline(config)
        experts = list(p.get("experts") or ())
        if len(experts) < 2:
            return (("transformer", config),)
        own: dict[str, Any] = p["expert_configs"] if isinstance(p.get("expert_configs"), dict) else {}
        sub = {k: v for k, v in p.items() if k not in ("experts", "expert_configs")}
        out = []
        for i, name in enumerate(experts):
            if i and name in own:
                out.append((name, dict(own[name], _class_name=config["_class_name"], _pipeline=sub)))
            else:
                out.append((name, config))
        return tuple(out)

    def stages(self, config: dict[str, Any], wl: Workload, *, batched_cfg: bool = False) -> tuple[StagePlan, ...]:
        """One denoiser, or two experts splitting the steps at the scheduler's boundary timestep.

        As ``WanPipeline.__call__``: ``boundary_timestep = boundary_ratio *
        scheduler.config.num_train_timesteps``; a step whose timestep ``t >= boundary`` runs
        ``transformer`` (high noise), the others ``transformer_2``, each with the pipeline's
        passes per step.
        """
        experts = list(self._pipeline(config).get("experts") or ())
        if len(experts) < 2:
            return super().stages(config, wl, batched_cfg=batched_cfg)
        from fxmeter.model.adapters.scheduler import describe

        (high, low), boundary, sched = self.expert_timesteps(config, wl.steps)
        passes = self.passes_per_step(config, wl)
        batched = batched_cfg and passes == 2
        per_step, factor = (1, 2) if batched else (passes, 1)
        roles = ("high-noise expert (t >= boundary)", "low-noise expert (t < boundary)")
        note = (f"{len(experts)} experts ({', '.join(experts)}) switch at boundary_ratio "
                f"{self._pipeline(config).get('boundary_ratio')} x {sched.get('num_train_timesteps', 1000)} = timestep "
                f"{boundary:g} of the pipeline's scheduler {describe(sched)} (its scheduler_config.json, as "
                f"WanPipeline.from_pretrained loads it): steps {[len(high), len(low)]}; weight memory counts every expert")
        plans = []
        for i, name in enumerate(experts[:2]):
            ts = (high, low)[i]
            plans.append(StagePlan(name, name, roles[i], runs=len(ts) * per_step, batch_factor=factor, steps=len(ts),
                                   timesteps=tuple(int(t) if float(t).is_integer() else t for t in ts),
                                   notes=(note,) if i == 0 else ()))
        return tuple(plans)

    def pipeline_stages(self, config: dict[str, Any], wl: Workload,
                        geometry: Geometry) -> tuple[tuple[StagePlan, ...], tuple[StagePlan, ...]]:
        """WanPipeline (T2V, TI2V, two experts) or WanImageToVideoPipeline (more input than output channels;
        the CLIP image encoder only with ``image_dim``, Wan2.1-I2V)."""
        from fxmeter.model.adapters import plans

        return plans.wan(config, wl, geometry, i2v=self._image_latents(config), clip=bool(config.get("image_dim")))
