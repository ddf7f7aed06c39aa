"""Image encoders: the CLIP vision tower of Wan2.1 image-to-video.

``WanImageToVideoPipeline.encode_image``: ``image_encoder(**image_processor(images=image),
output_hidden_states=True).hidden_states[-2]`` on ``CLIPVisionModel`` (ViT-H/14): the image
resized and cropped to 224 x 224 by its ``CLIPImageProcessor``, 257 tokens (16 x 16 patches +
class token), the penultimate layer's hidden states kept.  Every layer still runs: the full
model's cost is the real cost.  Called once per generation (one conditioning image).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fxmeter.model.adapters.base import SymbolAxis
from fxmeter.model.adapters.stage import StageAdapter, meta_tensor
from fxmeter.model.adapters.text_encoders import TEXT_CATEGORIES

if TYPE_CHECKING:
    import torch

CLIP_IMAGE_SIZE = 224  # CLIPImageProcessor crop_size of the Wan2.1 I2V image encoder


def _vision_wrapper(model: torch.nn.Module) -> torch.nn.Module:
    import torch

    class ClipVisionCall(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.component: Any = model

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return self.component(pixel_values=pixel_values, output_hidden_states=True).hidden_states[-2]

    return ClipVisionCall()


@dataclass
class ClipVision(StageAdapter):
    """``CLIPVisionModel`` at 224 px, penultimate hidden states."""

    name: str = "clip-vision-penultimate"
    library: str = "transformers"
    classes: tuple[str, ...] = ("CLIPVisionModel",)
    symbols: tuple[str, ...] = ("batch",)
    category_rules: tuple[tuple[str, frozenset[str] | None, str], ...] = TEXT_CATEGORIES

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return _vision_wrapper(model)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        size = int(config.get("image_size", CLIP_IMAGE_SIZE))
        return {"pixel_values": meta_tensor(dims["batch"], int(config.get("num_channels", 3)), size, size, dtype=dtype)}

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        return {"pixel_values": {0: SymbolAxis("batch")}}

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 1024)}

    def example_dims(self, config: dict[str, Any]) -> dict[str, int]:
        return {"batch": 2}


CLIP_VISION = ClipVision()
