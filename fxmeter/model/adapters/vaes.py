"""VAE decode and encode, through the VAE's own methods with the pipeline's defaults.

The wrapper calls the method the pipeline calls, so the VAE's own loops run as they do
at inference: Wan's causal decoder one latent frame at a time with its feature cache
(``AutoencoderKLWan._decode``), CogVideoX's two-latent-frame batches, HunyuanVideo's
default framewise (temporal-tile) decoding, LTX-Video's single pass.  Tiling and slicing
stay off, as every pipeline leaves them unless the user calls ``vae.enable_tiling()`` /
``enable_slicing()`` (HunyuanVideo's docstring example does; fxmeter does not model it).

* ``vae-decode``: ``vae.decode(z, return_dict=False)[0]`` (Wan, Flux, SD3, HunyuanVideo).
* ``vae-decode-cogvideox``: ``vae.decode(z).sample`` (``CogVideoXPipeline.decode_latents``).
* ``vae-decode-ltx``: ``vae.decode(z, timestep, return_dict=False)[0]``; ``timestep`` is None
  unless the VAE config has ``timestep_conditioning`` (LTX-Video 0.9.1+), as ``LTXPipeline`` does.
* ``vae-encode``: ``retrieve_latents(vae.encode(x), sample_mode="argmax")`` =
  ``vae.encode(x).latent_dist.mode()`` (``WanImageToVideoPipeline.prepare_latents``: the
  conditioning video, the image then ``frames - 1`` zero frames, encoded whole).

Symbols: ``batch``, ``latent_frames`` (video VAEs), ``latent_h``, ``latent_w``.  A Python loop
over frames specialises the frame count, so ``latent_frames`` is fixed per trace (Wan,
CogVideoX, HunyuanVideo), and so is ``batch`` (a dynamic batch specialises to >= 2); height
and width stay symbolic.  The pipeline's latent
(de)normalisation around the call is a few elementwise ops outside the VAE and not counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fxmeter.model.adapters._common import ANY, ATTN, CONV, MATMUL, NORM, Rules
from fxmeter.model.adapters.base import SymbolAxis
from fxmeter.model.adapters.stage import StageAdapter, meta_tensor

if TYPE_CHECKING:
    import torch

VAE_CATEGORIES: Rules = (
    (r"", CONV, "conv"),
    (r"", ATTN, "attention"),
    (r"", MATMUL, "attention"),  # the mid block's q/k/v/o projections
    (r"", NORM, "norms"),
    (r"", frozenset({"resample"}), "upsample"),
    (r"", frozenset({"activation"}), "activations"),
    (r"", frozenset({"copy", "factory", "cast"}), "data_movement"),
    (r"", ANY, "elementwise"),
)

#: classes with a Python loop over latent frames (the frame count is fixed per trace)
FRAME_LOOP = ("AutoencoderKLWan", "AutoencoderKLCogVideoX", "AutoencoderKLHunyuanVideo")
VIDEO = (*FRAME_LOOP, "AutoencoderKLLTXVideo")
IMAGE = ("AutoencoderKL",)


def _decode_wrapper(vae: torch.nn.Module, kind: str, temb: bool) -> torch.nn.Module:
    import torch

    class VaeDecode(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.component: Any = vae

        def forward(self, z: torch.Tensor, timestep: torch.Tensor | None = None) -> torch.Tensor:
            if kind == "cogvideox":
                return self.component.decode(z).sample
            if kind == "ltx":
                return self.component.decode(z, timestep if temb else None, return_dict=False)[0]
            return self.component.decode(z, return_dict=False)[0]

    return VaeDecode()


def _encode_wrapper(vae: torch.nn.Module) -> torch.nn.Module:
    import torch

    class VaeEncode(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.component: Any = vae

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.component.encode(x).latent_dist.mode()

    return VaeEncode()


def latent_channels(config: dict[str, Any]) -> int:
    return int(config.get("z_dim") or config.get("latent_channels") or 16)


def _timestep_conditioning(config: dict[str, Any]) -> bool:
    return bool(config.get("timestep_conditioning", False))


@dataclass
class VaeDecode(StageAdapter):
    """A VAE's ``decode`` as its pipeline calls it (``kind``: plain, cogvideox or ltx)."""

    name: str = "vae-decode"
    classes: tuple[str, ...] = (*VIDEO, *IMAGE)
    symbols: tuple[str, ...] = ("batch", "latent_frames", "latent_h", "latent_w")
    category_rules: Rules = VAE_CATEGORIES
    kind: str = "plain"

    def video(self, config: dict[str, Any]) -> bool:
        return config.get("_class_name") not in IMAGE

    def specialize(self, config: dict[str, Any]) -> VaeDecode:
        from dataclasses import replace

        # batch stays a constant too: a dynamic batch specialises to >= 2 (AutoencoderKL), so batch 1 would not fit
        if not self.video(config):
            return replace(self, symbols=("batch", "latent_h", "latent_w"), fixed_symbols=("batch",))
        fixed = ("batch", "latent_frames") if config.get("_class_name") in FRAME_LOOP else ("batch",)
        return replace(self, fixed_symbols=fixed)

    def supports_dynamic(self, config: dict[str, Any]) -> bool:
        # LTX-Video 0.9.1+ injects decoder noise with torch.randn(shape, generator=None): concrete sizes only
        return not (self.kind == "ltx" and _timestep_conditioning(config)) and super().supports_dynamic(config)

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return _decode_wrapper(model, self.kind, _timestep_conditioning(config))

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        c = latent_channels(config)
        if self.video(config):
            z = meta_tensor(dims["batch"], c, dims["latent_frames"], dims["latent_h"], dims["latent_w"], dtype=dtype)
        else:
            z = meta_tensor(dims["batch"], c, dims["latent_h"], dims["latent_w"], dtype=dtype)
        kw: dict[str, Any] = {"z": z}
        if self.kind == "ltx" and _timestep_conditioning(config):
            kw["timestep"] = meta_tensor(dims["batch"], dtype=dtype)  # decode_timestep per video
        return kw

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        if not self.video(config):
            return {"z": {0: SymbolAxis("batch"), 2: SymbolAxis("latent_h"), 3: SymbolAxis("latent_w")}}
        axes = {0: SymbolAxis("batch"), 2: SymbolAxis("latent_frames"), 3: SymbolAxis("latent_h"), 4: SymbolAxis("latent_w")}
        out = {"z": axes}
        if self.kind == "ltx" and _timestep_conditioning(config):
            out["timestep"] = {0: SymbolAxis("batch")}
        return out

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 64), "latent_frames": (1, 1024), "latent_h": (2, 1024), "latent_w": (2, 1024)}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        dims = {"batch": 2, "latent_frames": 3, "latent_h": 6, "latent_w": 7}
        return {s: dims[s] for s in self.symbols}


@dataclass
class VaeEncode(StageAdapter):
    """``vae.encode(x).latent_dist.mode()`` of the conditioning video (Wan image-to-video)."""

    name: str = "vae-encode"
    classes: tuple[str, ...] = ("AutoencoderKLWan",)
    symbols: tuple[str, ...] = ("batch", "latent_frames", "latent_h", "latent_w")
    fixed_symbols: tuple[str, ...] = ("batch", "latent_frames")
    category_rules: Rules = VAE_CATEGORIES

    @staticmethod
    def scales(config: dict[str, Any]) -> tuple[int, int]:
        """(temporal, spatial) compression of the Wan VAE (``scale_factor_*``; 4 and 8 for Wan2.1's)."""
        return int(config.get("scale_factor_temporal", 4)), int(config.get("scale_factor_spatial", 8))

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return _encode_wrapper(model)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        t, s = self.scales(config)
        frames = (dims["latent_frames"] - 1) * t + 1
        return {"x": meta_tensor(dims["batch"], 3, frames, dims["latent_h"] * s, dims["latent_w"] * s, dtype=dtype)}

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        _, s = self.scales(config)
        return {"x": {0: SymbolAxis("batch"), 3: SymbolAxis("latent_h", s), 4: SymbolAxis("latent_w", s)}}

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 64), "latent_frames": (1, 1024), "latent_h": (2, 1024), "latent_w": (2, 1024)}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 2, "latent_frames": 3, "latent_h": 6, "latent_w": 7}


VAE_DECODE = VaeDecode()
VAE_DECODE_COGVIDEOX = VaeDecode(name="vae-decode-cogvideox", classes=("AutoencoderKLCogVideoX",), kind="cogvideox")
VAE_DECODE_LTX = VaeDecode(name="vae-decode-ltx", classes=("AutoencoderKLLTXVideo",), kind="ltx")
VAE_ENCODE = VaeEncode()
