"""The default call of each stage component class (a component's identity; a stage's plan names its own call)."""

from __future__ import annotations

from fxmeter.errors import ConfigError
from fxmeter.model.adapters.image_encoders import CLIP_VISION
from fxmeter.model.adapters.stage import StageAdapter
from fxmeter.model.adapters.text_encoders import CLIP_POOLED, CLIP_SD3, LLAMA_HUNYUAN, T5_PLAIN, UMT5_MASKED
from fxmeter.model.adapters.vaes import VAE_DECODE, VAE_DECODE_COGVIDEOX, VAE_DECODE_LTX

STAGE_ADAPTERS: dict[str, StageAdapter] = {
    "UMT5EncoderModel": UMT5_MASKED,
    "T5EncoderModel": T5_PLAIN,
    "CLIPTextModel": CLIP_POOLED,
    "CLIPTextModelWithProjection": CLIP_SD3,
    "LlamaModel": LLAMA_HUNYUAN,
    "CLIPVisionModel": CLIP_VISION,
    "AutoencoderKL": VAE_DECODE,
    "AutoencoderKLWan": VAE_DECODE,
    "AutoencoderKLHunyuanVideo": VAE_DECODE,
    "AutoencoderKLCogVideoX": VAE_DECODE_COGVIDEOX,
    "AutoencoderKLLTXVideo": VAE_DECODE_LTX,
}


def default_stage_adapter(class_name: str, source: str) -> StageAdapter:
    """The adapter of a text encoder, image encoder or VAE class (a ConfigError for any other class)."""
    try:
        return STAGE_ADAPTERS[class_name]
    except KeyError:
        raise ConfigError(f"{source}: unsupported pipeline component class {class_name!r}; supported: "
                          f"{', '.join(sorted(STAGE_ADAPTERS))}") from None
