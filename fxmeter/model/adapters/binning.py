"""Resolution binning: the size a pipeline generates at for a requested size, and the resize back.

``PixArtSigmaPipeline``, ``SanaPipeline`` and ``SanaVideoPipeline`` take ``use_resolution_binning=True`` by
default (diffusers 0.42.1).  Their ``__call__`` then

1. picks an aspect-ratio table by ``transformer.config.sample_size`` (:data:`BIN_TABLES`: the pipeline's
   if-chain, as data) and maps the requested height x width to the table's entry whose ratio key is
   nearest ``height / width`` (``classify_height_width_bin``);
2. generates at that binned size (latents, transformer, VAE decode);
3. resizes the decoded image (video: every frame) back to the requested size and centre-crops it
   (``image_processor.resize_and_crop_tensor`` / ``video_processor.resize_and_crop_tensor``: a bilinear
   ``F.interpolate`` and a slice, on the device, when the sizes differ).

fxmeter does the same: the zoo adapters cost the transformer and the VAE at the binned size and add a
``resize`` stage (:class:`ResizeAndCrop`, diffusers' own ``resize_and_crop_tensor`` traced) when the sizes
differ.  A request that is itself a bin (every preset) is generated as asked, with no resize: pass a bin's
size to cost a generation without binning.

The tables are diffusers' own, read from the installed diffusers' source files (:func:`bin_table`: the
module-level literal, found without importing the package: importing a pipeline module imports torch and
transformers, seconds that a warm report must not spend).  A request that is one of the table's sizes is
that bin (``tests/test_zoo_binning.py`` checks that ``classify_height_width_bin`` maps every bin of these
tables to itself, and that the tables read equal the ones diffusers imports); any other request is
classified by diffusers' ``classify_height_width_bin`` itself (imported then).
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from fxmeter.model.adapters._common import ANY, Rules
from fxmeter.model.adapters.base import Builder, SymbolAxis
from fxmeter.model.adapters.stage import StageAdapter, meta_tensor
from fxmeter.model.pipeline import StagePlan

if TYPE_CHECKING:
    import torch

_ALPHA = "pipelines/pixart_alpha/pipeline_pixart_alpha.py"
_SIGMA = "pipelines/pixart_alpha/pipeline_pixart_sigma.py"
_SANA = "pipelines/sana/pipeline_sana.py"
_SANA_VIDEO = "pipelines/sana_video/pipeline_sana_video.py"

#: pipeline class -> ``transformer.config.sample_size`` -> (diffusers file, table name): the if-chain at the top
#: of each ``__call__`` (diffusers 0.42.1); any other sample size raises ``ValueError("Invalid sample size")``
BIN_TABLES: dict[str, dict[int, tuple[str, str]]] = {
    "PixArtSigmaPipeline": {256: (_SIGMA, "ASPECT_RATIO_2048_BIN"), 128: (_ALPHA, "ASPECT_RATIO_1024_BIN"),
                            64: (_ALPHA, "ASPECT_RATIO_512_BIN"), 32: (_ALPHA, "ASPECT_RATIO_256_BIN")},
    "SanaPipeline": {128: (_SANA, "ASPECT_RATIO_4096_BIN"), 64: (_SIGMA, "ASPECT_RATIO_2048_BIN"),
                     32: (_ALPHA, "ASPECT_RATIO_1024_BIN"), 16: (_ALPHA, "ASPECT_RATIO_512_BIN")},
    "SanaVideoPipeline": {30: (_SANA_VIDEO, "ASPECT_RATIO_480_BIN"), 22: (_SANA_VIDEO, "ASPECT_RATIO_720_BIN")},
}
#: pipeline class -> the processor class whose ``classify_height_width_bin`` / ``resize_and_crop_tensor`` it calls
PROCESSORS = {"PixArtSigmaPipeline": ("diffusers.image_processor", "PixArtImageProcessor"),
              "SanaPipeline": ("diffusers.image_processor", "PixArtImageProcessor"),
              "SanaVideoPipeline": ("diffusers.video_processor", "VideoProcessor")}
#: the decoded image's channels (RGB: every VAE here decodes to 3)
RGB = 3


def _diffusers_root() -> Path:
    spec = importlib.util.find_spec("diffusers")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("diffusers is not installed: the aspect-ratio bins are its pipelines' tables")
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def bin_table(file: str, name: str) -> dict[str, tuple[int, int]]:
    """Table ``name`` of diffusers' ``file`` (ratio key -> (height, width)), read from its source."""
    path = _diffusers_root() / file
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            table = ast.literal_eval(node.value)
            return {str(k): (int(v[0]), int(v[1])) for k, v in table.items()}
    raise ValueError(f"diffusers {file} has no {name}: another diffusers version than fxmeter knows")


def table_of(pipeline: str, sample_size: int) -> tuple[str, dict[str, tuple[int, int]]]:
    """(name, table) the pipeline bins with for this ``sample_size``."""
    tables = BIN_TABLES[pipeline]
    if sample_size not in tables:
        raise ValueError(f"{pipeline} has no aspect-ratio bins for sample_size {sample_size} (it raises 'Invalid "
                         f"sample size'; it knows {', '.join(str(s) for s in tables)})")
    file, name = tables[sample_size]
    return name, bin_table(file, name)


def binned_size(pipeline: str, sample_size: int, height: int, width: int) -> tuple[int, int]:
    """(height, width) the pipeline generates at for a request of ``height`` x ``width``."""
    _, table = table_of(pipeline, sample_size)
    if (height, width) in table.values():  # a bin is its own bin (tests/test_zoo_binning.py)
        return height, width
    import importlib

    module, cls = PROCESSORS[pipeline]
    processor = getattr(importlib.import_module(module), cls)
    return processor.classify_height_width_bin(height, width, ratios=table)  # type: ignore[no-any-return]


def binning_note(pipeline: str, sample_size: int, height: int, width: int, video: bool = False) -> str:
    """What binning does to this request, in words (width x height, as fxmeter writes sizes)."""
    name, _ = table_of(pipeline, sample_size)
    bh, bw = binned_size(pipeline, sample_size, height, width)
    if (bh, bw) == (height, width):
        return (f"{width}x{height} is a bin of {name} ({pipeline}'s use_resolution_binning, its default): generated "
                "as requested, no resize")
    what = "every decoded frame" if video else "the decoded image"
    return (f"requested {width}x{height}, the pipeline generates at {bw}x{bh} (use_resolution_binning, its default: "
            f"the nearest aspect ratio of {name}) and resizes {what} back to {width}x{height} (stage resize); "
            f"pass {bw}x{bh} to cost it without the resize")


def _resize_module(video: bool) -> torch.nn.Module:
    import importlib

    import torch

    module, cls = PROCESSORS["SanaVideoPipeline" if video else "PixArtSigmaPipeline"]
    resize = getattr(importlib.import_module(module), cls).resize_and_crop_tensor

    class ResizeAndCropTensor(torch.nn.Module):
        def forward(self, samples: torch.Tensor, new_width: int, new_height: int) -> torch.Tensor:
            return resize(samples, new_width, new_height)  # type: ignore[no-any-return]

    return ResizeAndCropTensor()


@dataclass
class ResizeAndCrop(StageAdapter):
    """``processor.resize_and_crop_tensor(image, orig_width, orig_height)`` on the decoded image (``video``: the
    decoded video, frames resized as a batch): a bilinear resize to cover the requested size, then a centre
    crop.  No component runs (the stage's component is the VAE whose output it takes: its dtype, its config in
    the store key); the sizes are Python ints of the call, so the export is static."""

    name: str = "resize-and-crop"
    video: bool = False
    symbols: tuple[str, ...] = ("batch", "height", "width", "out_height", "out_width")
    category_rules: Rules = ((r"", frozenset({"resample"}), "resize"), (r"", ANY, "crop"))

    wrapped: ClassVar[str] = ""  # the exported module is the call itself (no component)

    def build_module(self, config: dict[str, Any], dtype: str, build_diffusers: Builder) -> torch.nn.Module | None:
        return _resize_module(self.video)

    def supports_dynamic(self, config: dict[str, Any]) -> bool:
        return False

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        size = (dims["frames"],) if self.video else ()
        return {"samples": meta_tensor(dims["batch"], RGB, *size, dims["height"], dims["width"], dtype=dtype),
                "new_width": dims["out_width"], "new_height": dims["out_height"]}

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        h = 3 if self.video else 2
        axes = {0: SymbolAxis("batch"), h: SymbolAxis("height"), h + 1: SymbolAxis("width")}
        if self.video:
            axes[2] = SymbolAxis("frames")
        return {"samples": axes}

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {s: (1, 1 << 16) for s in self.symbols}


RESIZE_AND_CROP = ResizeAndCrop()
RESIZE_AND_CROP_VIDEO = ResizeAndCrop(name="resize-and-crop-video", video=True,
                                      symbols=("batch", "frames", "height", "width", "out_height", "out_width"))


def resize_stage(pipeline: str, sample_size: int, height: int, width: int, batch: int, frames: int = 0,
                 dtype: str | None = None) -> tuple[StagePlan, ...]:
    """The ``resize`` stage after the VAE decode when binning changed the size (else none)."""
    bh, bw = binned_size(pipeline, sample_size, height, width)
    if (bh, bw) == (height, width):
        return ()
    dims = {"batch": batch, "height": bh, "width": bw, "out_height": height, "out_width": width}
    if frames:
        dims["frames"] = frames
    what = f"{frames} frames " if frames else ""
    return (StagePlan("resize", "vae", f"resize_and_crop_tensor: {what}{bw}x{bh} -> {width}x{height} (bilinear, "
                      "centre crop)", runs=1, root="resize", adapter=RESIZE_AND_CROP_VIDEO if frames else RESIZE_AND_CROP,
                      dims=dims, dtype=dtype,
                      notes=(f"resize: {pipeline} resizes the decoded output back to the requested size "
                             "(use_resolution_binning); it runs in the VAE's dtype",)),)
