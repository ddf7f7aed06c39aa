"""``--vae-tiling``: the tiles diffusers' ``tiled_decode`` runs (arithmetic written out), a tiled decode's cost as
the sum of its tiles, and that sum against FlopCounterMode on the real VAE with ``enable_tiling()``."""

from __future__ import annotations

from typing import Any

import pytest

from fxmeter import api
from fxmeter.estimate.evaluate import evaluate
from fxmeter.estimate.hardware import get
from fxmeter.estimate.metrics import ZERO
from fxmeter.estimate.roofline import ONE, Device, stage_time
from fxmeter.estimate.tiling import Tiling, class_tiles, tile_grid

WAN_720P = {"batch": 1, "latent_frames": 21, "latent_h": 90, "latent_w": 160}


def test_wan_720p_tiles_written_out() -> None:
    # 256 px tiles (32 latent rows at 8x), stride 192 px (24): rows at 0, 24, 48, 72 -> 32, 32, 32, 18 rows;
    # columns at 0, 24, ..., 144 -> six of 32 (160 - 120 = 40 > 32) and one of 16
    g = tile_grid("AutoencoderKLWan", WAN_720P, Tiling(), {"scale_factor_spatial": 8})
    assert g is not None and (g.rows, g.cols, g.count) == (4, 7, 28)
    assert dict(g.parts) == {(32, 32): 18, (32, 16): 3, (18, 32): 6, (18, 16): 1}
    # 114 x 208 latent cells decoded for 90 x 160: the overlap is decoded twice
    assert sum(h * w * n for (h, w), n in g.parts) == 114 * 208 == 23_712


def test_the_compression_is_the_configs() -> None:
    # Wan2.2 TI2V's VAE compresses 16x: 256 px tiles are 16 latent rows, stride 12; 704 x 1280 -> 44 x 80
    g = tile_grid("AutoencoderKLWan", {"batch": 1, "latent_frames": 31, "latent_h": 44, "latent_w": 80}, Tiling(),
                  {"scale_factor_spatial": 16, "scale_factor_temporal": 4})
    assert g is not None and g.compression == (16, 4)
    # rows 0, 12, 24, 36 -> 16, 16, 16, 8; columns 0, 12, ..., 72 -> six of 16 and one of 8
    assert dict(g.parts) == {(16, 16): 18, (16, 8): 3, (8, 16): 6, (8, 8): 1}


def test_each_class_reads_its_own_defaults() -> None:
    # AutoencoderKL (FLUX.1): tile_sample_min_size = sample_size 1024; 4 blocks -> 8x; overlap int(128 * 0.75) = 96
    assert class_tiles("AutoencoderKL", {"sample_size": 1024, "block_out_channels": [128, 256, 512, 512]}) == (
        1024, 1024, 768, 768, 8, 1)
    # CogVideoX: sample 480 x 720 // 2 = 240 x 360 px -> 30 x 45 latent; overlap int(30 * 5/6) = 25, int(45 * 4/5) = 36
    assert class_tiles("AutoencoderKLCogVideoX", {"sample_height": 480, "sample_width": 720,
                                                  "block_out_channels": [128, 256, 256, 512]}) == (240, 360, 200, 288, 8, 4)
    # AutoencoderDC (Sana): 512 px, stride 448; six encoder stages -> 32x
    assert class_tiles("AutoencoderDC", {"encoder_block_out_channels": [128, 256, 512, 512, 1024, 1024]}) == (
        512, 512, 448, 448, 32, 1)
    # Qwen-Image's VAE: 2 ** len(temperal_downsample) = 8
    assert class_tiles("AutoencoderKLQwenImage", {"temperal_downsample": [False, True, True]})[4] == 8
    assert class_tiles("AutoencoderKLLTXVideo", {}) is None  # temporal tiling as well: not modeled
    # a tile size given on the command line: square, stride 3/4 of it
    assert Tiling(512).tiles("AutoencoderKLWan", {}) == (512, 512, 384, 384, 8, 4)
    # FLUX at 1024 px: latent 128 fits one tile, decoded whole
    assert tile_grid("AutoencoderKL", {"batch": 1, "latent_h": 128, "latent_w": 128}, Tiling(),
                     {"sample_size": 1024, "block_out_channels": [128, 256, 512, 512]}) is None


def _vae(model_id: str, tiling: str | None, **wl: Any) -> tuple[Any, Any, Any]:
    req = api.request(model_id, stages="vae", hardware="h100", vae_tiling=tiling, **wl)
    inputs = api.stage_inputs(req)
    inp = next(i for i in inputs if i.plan.name == "vae")
    est = api.estimate_request(req, inputs)
    return req, inp, next(s for s in est.stages if s.plan.name == "vae")


def test_a_tiled_decode_is_the_sum_of_its_tiles() -> None:
    """The tiled stage's cost (every module, every node) and bound seconds == the same symbolic model evaluated at
    each tile's latent size, times the number of such tiles."""
    _, inp, tiled = _vae("wan2.1-t2v-1.3b", "on", workload="480p")
    _, _, whole = _vae("wan2.1-t2v-1.3b", None, workload="480p")
    g = inp.tiles
    assert g is not None and g.count == 15  # 60 x 104 latent: 3 x 5 tiles
    parts = [(evaluate(inp.model, d), n) for d, n in g.tile_dims(inp.dims)]
    want = ZERO
    for c, n in parts:
        want = want + c.total.scale(n)
    assert tiled.cost.total == want
    assert tiled.cost.total.tensor_core_flops > whole.cost.total.tensor_core_flops
    for i in (1, len(parts[0][0].modules) // 2, -1):  # any module row is the sum of its tile rows
        assert tiled.cost.modules[i].total == sum((c.modules[i].total.scale(n) for c, n in parts), ZERO)
    assert tiled.cost.dims == inp.dims and tiled.cost.modules[0].formula is None
    # seconds: the tiles one after another
    dev = Device(get("h100"), "bf16", dict(ONE), "float32")
    assert tiled.bound is not None and tiled.predicted is not None
    assert tiled.bound.per_run == pytest.approx(sum(stage_time(c, dev).per_run * n for c, n in parts), rel=1e-12)
    assert tiled.predicted.per_run > whole.predicted.per_run  # type: ignore[union-attr]
    assert "tiled decode: 3x5 tiles" in tiled.predicted.model
    # and the peak is the tiled one (smaller than decoding the whole latent at once)
    assert tiled.cost.activations.peak_bytes < whole.cost.activations.peak_bytes
    assert "VAE decode tiled (3x5 tiles" in tiled.cost.activations.note


def test_tiling_changes_only_the_decode() -> None:
    r0 = api.trace("wan2.1-t2v-1.3b", workload="480p", run_id="t")
    r1 = api.trace("wan2.1-t2v-1.3b", workload="480p", run_id="t", vae_tiling="on")
    s0 = {s["name"]: s["per_run"] for s in r0["pipeline"]["stages"]}
    s1 = {s["name"]: s["per_run"] for s in r1["pipeline"]["stages"]}
    assert s1["text_encoder"] == s0["text_encoder"] and s1["transformer"] == s0["transformer"]
    assert s1["vae"]["tensor_core_flops"] > s0["vae"]["tensor_core_flops"]
    assert r1["trace"]["options"]["vae_tiling"] == 0 and r0["trace"]["options"].get("vae_tiling") is None


@pytest.mark.slow  # FlopCounterMode over the real VAE's tiled decode on meta (a few seconds each)
@pytest.mark.parametrize(("model_id", "frames", "height", "width"), [
    ("wan2.1-t2v-1.3b", 5, 320, 320),       # AutoencoderKLWan: latent 40 -> tiles of 32 and 16 rows and columns
    ("wan2.2-ti2v-5b", 5, 320, 320),        # the 16x Wan2.2 VAE: latent 20 -> 16 and 8
    ("flux.1-dev", 1, 2048, 2048),          # AutoencoderKL: 3 x 3 tiles of 1024 px
    ("cogvideox-5b", 49, 256, 368),         # AutoencoderKLCogVideoX: 240 x 360 px tiles (latent 30 x 45)
    ("hunyuanvideo", 5, 320, 320),          # spatial tiles inside the framewise decode
])
def test_tiled_decode_counts_what_flop_counter_counts(model_id: str, frames: int, height: int, width: int) -> None:
    """Sum over the tiles of the VAE stage's shipped symbolic model == FlopCounterMode over the real VAE's decode
    with ``enable_tiling()`` on meta (the stage alone: no transformer trace for these small workloads)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fxmeter.cost import store
    from fxmeter.model.capture import DTYPES, build_model

    req = api.request(model_id, frames=frames, height=height, width=width, vae_tiling="on")
    plan = next(p for p in req.model.stages(req.workload) if p.name == "vae")
    comp = req.model.stage_component(plan)
    dims = req.model.stage_dims(plan, req.geometry)
    dtype = plan.dtype or req.options.dtype
    grid = tile_grid(str(comp.config["_class_name"]), dims, Tiling(), comp.config)
    assert grid is not None and grid.count > 1 and len(grid.parts) > 1
    sm = store.get(comp, dtype, dims, root=plan.root).model
    ours = sum(evaluate(sm, d).total.tensor_core_flops * n for d, n in grid.tile_dims(dims))
    module = comp.adapter.build_module(dict(comp.config), dtype, build_model)
    vae = next(m for m in module.modules() if hasattr(m, "enable_tiling"))
    vae.enable_tiling()
    kwargs = comp.adapter.inputs(dict(comp.config), dict(dims), DTYPES[dtype])
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        module(**kwargs)
    assert ours == fc.get_total_flops() > 0
