"""``vae.enable_tiling()``: which tiles a VAE decode runs, what they cost and the peak they leave.

diffusers' ``tiled_decode`` cuts the latent into overlapping tiles (``for i in range(0, height,
stride)``, ``z[..., i:i + tile, j:j + tile]``: the last row and column are cut short by the latent's
edge) and runs the same decoder on each, one after the other.  So a tiled decode costs the sum over
its tiles of the untiled decode at each tile's latent size: the stage's own symbolic model evaluated
at every distinct tile size, times how many tiles have it (exact integers; the overlap is decoded
twice, which is what the GPU does).  The blend of the seams (a few elementwise ops over the output)
is not counted.  Seconds are the same sum: each tile is timed at its own shapes (its GEMMs and
convolutions are smaller) and the tiles run in sequence.

Tile sizes are each class's defaults in diffusers (``src/diffusers/models/autoencoders``), read with
the spatial / temporal compression of the component's own config (Wan2.2 TI2V's VAE compresses 16x,
not 8x).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fxmeter.estimate.evaluate import StageCost
    from fxmeter.estimate.roofline import StageTime

GIB = 2**30

#: what each class's ``enable_tiling()`` defaults are, and where they are in diffusers
TILING_SOURCE = ("diffusers src/diffusers/models/autoencoders (AutoencoderKLWan / AutoencoderKLQwenImage / "
                 "AutoencoderKLHunyuanVideo tile_sample_min_height=256, tile_sample_stride_height=192; "
                 "AutoencoderKLHunyuanVideo15 256 px tiles, tile_overlap_factor 0.25; AutoencoderKL / AutoencoderKLFlux2 "
                 "tile_sample_min_size = config.sample_size, tile_overlap_factor 0.25; AutoencoderKLCogVideoX "
                 "sample_height // 2 x sample_width // 2, overlap 1/6 x 1/5; AutoencoderDC 512 px, stride 448): "
                 "tiled_decode decodes one tile at a time, keeps every decoded tile in a list, blends them and "
                 "concatenates the result")

#: classes whose tiles are (tile px, stride px) squares at the config's spatial / temporal compression
_SQUARE = {
    # autoencoder_kl_wan.py AutoencoderKLWan.__init__: spatial_compression_ratio = scale_factor_spatial
    "AutoencoderKLWan": (256, 192, ("scale_factor_spatial", 8), ("scale_factor_temporal", 4)),
    # autoencoder_kl_hunyuan_video.py: spatial_compression_ratio / temporal_compression_ratio (config)
    "AutoencoderKLHunyuanVideo": (256, 192, ("spatial_compression_ratio", 8), ("temporal_compression_ratio", 4)),
    # autoencoder_kl_hunyuanvideo15.py: 256 px tiles, latent overlap int(256 // ratio * 0.75) = 192 px
    "AutoencoderKLHunyuanVideo15": (256, 192, ("spatial_compression_ratio", 16), ("temporal_compression_ratio", 4)),
}


def _sample_size(config: Mapping[str, Any], default: int) -> int:
    v = config.get("sample_size", default)
    return int(v[0] if isinstance(v, (list, tuple)) else v)


def class_tiles(cls: str, config: Mapping[str, Any] | None = None) -> tuple[int, int, int, int, int, int] | None:
    """(tile height, tile width, stride height, stride width) in pixels and the spatial / temporal compression of
    ``cls``'s ``enable_tiling()`` for a component ``config``; None: the class has no spatial tiling fxmeter models."""
    c = config or {}
    if cls in _SQUARE:
        tile, stride, (sk, sd), (tk, td) = _SQUARE[cls]
        return (tile, tile, stride, stride, int(c.get(sk) or sd), int(c.get(tk) or td))
    if cls == "AutoencoderKLQwenImage":  # spatial_compression_ratio = 2 ** len(temperal_downsample)
        return (256, 256, 192, 192, 2 ** len(c.get("temperal_downsample") or (False, True, True)), 4)
    if cls in ("AutoencoderKL", "AutoencoderKLFlux2"):
        # tile_latent_min_size = int(sample_size / 2 ** (len(block_out_channels) - 1)); overlap 0.25 in latent rows
        s = 2 ** (len(c.get("block_out_channels") or (128, 256, 512, 512)) - 1)
        size = _sample_size(c, 1024)
        tl = int(size / s)
        stride = int(tl * 0.75) * s
        return (tl * s, tl * s, stride, stride, s, 1)
    if cls == "AutoencoderKLCogVideoX":
        # tile_sample_min_height = sample_height // 2; tile_latent_min = int(that / 2 ** (len(block_out_channels) - 1));
        # latent overlap int(tile_latent * (1 - 1/6)) rows, int(tile_latent * (1 - 1/5)) columns
        s = 2 ** (len(c.get("block_out_channels") or (128, 256, 256, 512)) - 1)
        tlh, tlw = int(int(c.get("sample_height") or 480) // 2 / s), int(int(c.get("sample_width") or 720) // 2 / s)
        return (tlh * s, tlw * s, int(tlh * (1 - 1 / 6)) * s, int(tlw * (1 - 1 / 5)) * s, s,
                int(c.get("temporal_compression_ratio") or 4))
    if cls == "AutoencoderDC":  # tile_sample_min 512, stride 448; spatial 2 ** (len(encoder_block_out_channels) - 1)
        s = 2 ** (len(c.get("encoder_block_out_channels") or (128, 256, 512, 512, 1024, 1024)) - 1)
        return (512, 512, 448, 448, s, 1)
    return None


@dataclass(frozen=True)
class Tiling:
    """``--vae-tiling``: off, the pipeline's tile sizes, or a square tile of ``size`` pixels (stride 3/4 of it)."""

    size: int | None = None  # None: the VAE class's own tile sizes

    def tiles(self, cls: str, config: Mapping[str, Any] | None = None) -> tuple[int, int, int, int, int, int] | None:
        base = class_tiles(cls, config)
        if base is None:
            return None
        if self.size is None:
            return base
        stride = max(8, self.size * 3 // 4)
        return (self.size, self.size, stride, stride, base[4], base[5])


def parse_tiling(value: str | int | None) -> Tiling | None:
    """``--vae-tiling``: ``off`` (None), ``on`` (the pipeline's tile sizes) or a tile size in pixels (a multiple of 8)."""
    from fxmeter.errors import WorkloadError

    if value is None or value is False:
        return None
    text = str(value).strip().lower()
    if text in ("off", "none", "no", "false"):
        return None
    if text in ("on", "default", "yes", "true"):
        return Tiling()
    try:
        size = int(text)
    except ValueError:
        raise WorkloadError(f"--vae-tiling takes on, off or a tile size in pixels (e.g. 256), got {value!r}") from None
    if size <= 0 or size % 8:
        raise WorkloadError(f"--vae-tiling tile size must be a positive multiple of 8 pixels, got {size}")
    return Tiling(size)


@dataclass(frozen=True)
class TileGrid:
    """The tiles of one tiled decode: ``rows`` x ``cols`` tiles of ``tile_px`` pixels at ``stride_px``; ``parts``:
    each distinct tile latent size (height, width) with how many tiles have it."""

    cls: str
    rows: int
    cols: int
    tile_px: tuple[int, int]
    stride_px: tuple[int, int]
    compression: tuple[int, int]  # spatial, temporal
    parts: tuple[tuple[tuple[int, int], int], ...]

    @property
    def count(self) -> int:
        return self.rows * self.cols

    def tile_dims(self, dims: Mapping[str, int], sm: Any = None) -> list[tuple[dict[str, int], int]]:
        """``dims`` at each distinct tile's latent size, with its count; ``sm``: the decode's symbolic model, whose
        guards every tile must satisfy (one :class:`WorkloadError` line naming the tile otherwise)."""
        out = [({**dims, "latent_h": h, "latent_w": w}, n) for (h, w), n in self.parts]
        for d, _ in out if sm is not None else ():
            bad = sm.guard_problems(d)
            if bad:
                from fxmeter.errors import WorkloadError

                raise WorkloadError(f"--vae-tiling: the {d['latent_h']}x{d['latent_w']} latent edge tile of "
                                    f"{self.describe()} is outside the VAE trace's guards ({', '.join(bad)}); "
                                    "another --height/--width or tile size avoids it")
        return out

    def describe(self) -> str:
        return (f"{self.rows}x{self.cols} tiles of {self.tile_px[0]}x{self.tile_px[1]} px, "
                f"stride {self.stride_px[0]}x{self.stride_px[1]}")


def tile_grid(cls: str, dims: Mapping[str, int], tiling: Tiling, config: Mapping[str, Any] | None = None) -> TileGrid | None:
    """The tiles ``tiled_decode`` runs for a latent of ``dims``; None when the class has no tiling or the latent fits
    one tile (diffusers then decodes it whole)."""
    t = tiling.tiles(cls, config)
    if t is None:
        return None
    th, tw, sh, sw, s, ts = t
    lh, lw = int(dims["latent_h"]), int(dims["latent_w"])
    tlh, tlw, slh, slw = th // s, tw // s, max(1, sh // s), max(1, sw // s)
    if lh <= tlh and lw <= tlw:
        return None
    hs = [min(tlh, lh - i) for i in range(0, lh, slh)]
    ws = [min(tlw, lw - j) for j in range(0, lw, slw)]
    parts = Counter((h, w) for h in hs for w in ws)
    return TileGrid(cls, len(hs), len(ws), (th, tw), (sh, sw), (s, ts), tuple(sorted(parts.items(), reverse=True)))


def tiled_decode_bytes(grid: TileGrid, dims: Mapping[str, int], dtype_bytes: int, tile_peak: Any) -> tuple[int, str]:
    """Live bytes of ``tiled_decode`` at its peak.

    ``tile_peak(dims)``: the decode's activation peak at a tile's latent size (the liveness walk of
    the same trace).  Peak = max(the largest tile's decode + the tiles already decoded,
    every decoded tile + the concatenated output).
    """
    (th, tw), (s, ts) = grid.tile_px, grid.compression
    lh, lw = int(dims["latent_h"]), int(dims["latent_w"])
    n = grid.count
    b = int(dims.get("batch", 1))
    lf = int(dims.get("latent_frames", 1))
    frames = 1 + ts * (lf - 1) if ts > 1 else lf
    tile_out = b * 3 * frames * min(th, lh * s) * min(tw, lw * s) * dtype_bytes
    full_out = b * 3 * frames * lh * s * lw * s * dtype_bytes
    (h0, w0), _ = grid.parts[0]
    one = int(tile_peak({**dims, "latent_h": h0, "latent_w": w0}))
    peak = max(one + (n - 1) * tile_out, n * tile_out + full_out)
    note = (f"VAE decode tiled ({grid.describe()}): one tile's decode {one / GIB:.2f} GiB + decoded tiles, "
            f"or every tile + the {full_out / GIB:.2f} GiB output")
    return peak, note


_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


def tiled_vae(cost: StageCost, grid: TileGrid, tile_peak: int, dtype: str) -> StageCost:
    """``cost`` (the sum of the tiles' decodes) with the activation peak of the tiled decode; ``tile_peak``: the
    largest tile's own decode peak (its evaluation, already made)."""
    peak, note = tiled_decode_bytes(grid, cost.dims, _DTYPE_BYTES.get(dtype, 4), lambda dims: tile_peak)
    act = replace(cost.activations, peak_bytes=peak, peak_node=None, peak_module=None, note=f"{note}; {TILING_SOURCE}")
    return replace(cost, activations=act)


# -- the sum over tiles -----------------------------------------------------------------------------
def sum_costs(parts: Sequence[tuple[StageCost, int]], dims: Mapping[str, int]) -> StageCost:
    """One decode that runs ``n`` times each of the tile decodes ``parts`` (the same symbolic model at different
    latent sizes: their module and node rows line up), reported at the full latent ``dims``.

    Every module's and node's cost is the weighted sum (exact integers); a node keeps the largest tile's
    shape; closed forms are dropped (the sum is not one formula of the workload)."""
    from fxmeter.estimate.evaluate import ModuleCost
    from fxmeter.estimate.metrics import ZERO

    first = parts[0][0]
    for c, _ in parts[1:]:
        assert len(c.modules) == len(first.modules) and len(c.nodes) == len(first.nodes), "tiles of one model line up"

    def total(get: Any) -> Any:
        acc = ZERO
        for c, n in parts:
            acc = acc + get(c).scale(n)
        return acc

    mods = tuple(ModuleCost(m.id, m.parent, m.cls, m.depth, m.parameters, m.weight_bytes,
                            total(lambda c, i=i: c.modules[i].total), total(lambda c, i=i: c.modules[i].own), None)
                 for i, m in enumerate(first.modules))
    nodes = tuple(replace(n, cost=total(lambda c, i=i: c.nodes[i].cost)) for i, n in enumerate(first.nodes))
    cats = {k: total(lambda c, k=k: c.categories.get(k, ZERO)) for k in sorted({k for c, _ in parts for k in c.categories})}
    return replace(first, dims=dict(dims), modules=mods, nodes=nodes, categories={k: v for k, v in cats.items() if v != ZERO})


def sum_times(parts: Sequence[tuple[StageTime, int]], cost: StageCost, grid: TileGrid) -> StageTime:
    """The seconds of the tiles ``parts`` (each timed at its own shapes) run one after another: every node's and
    module's seconds add up; a row's limiter is the one of the tile that spends the most time in it."""
    from fxmeter.estimate.roofline import ModuleTime, NodeTime, StageTime

    first = parts[0][0]

    def heaviest(rows: Sequence[Any]) -> Any:
        return max(rows, key=lambda rn: rn[0].seconds * rn[1])[0]

    nodes = tuple(NodeTime(sum(p.nodes[i].seconds * n for p, n in parts), heaviest([(p.nodes[i], n) for p, n in parts]).limiter)
                  for i in range(len(first.nodes)))
    mods = []
    for i in range(len(first.modules)):
        rows = [(p.modules[i], n) for p, n in parts]
        big = heaviest(rows)
        own = max(rows, key=lambda rn: rn[0].own_seconds * rn[1])[0]
        moved = cost.modules[i].total.bytes if i < len(cost.modules) else 0
        mods.append(ModuleTime(
            seconds=sum(r.seconds * n for r, n in rows), limiter=big.limiter,
            own_seconds=sum(r.own_seconds * n for r, n in rows), own_limiter=own.own_limiter,
            arithmetic_intensity=cost.modules[i].total.flops / moved if moved else None))
    limiters = {k for p, _ in parts for k in p.by_limiter}
    by_limiter = {k: sum(p.by_limiter.get(k, 0.0) * n for p, n in parts) for k in sorted(limiters)}
    return StageTime(kind=first.kind, per_run=sum(p.per_run * n for p, n in parts), nodes=nodes, modules=tuple(mods),
                     by_limiter=by_limiter, model=f"{first.model}; tiled decode: {grid.describe()}, the tiles' seconds summed")
