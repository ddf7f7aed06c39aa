"""Resolution binning (``fxmeter/model/adapters/binning.py``) and the fixed prompt padding of Z-Image / ChronoEdit.

PixArt-Sigma, Sana and SANA-Video generate at the aspect-ratio bin of the requested size and resize the decoded
output back, as their pipelines do by default (``use_resolution_binning=True``); Z-Image and ChronoEdit pad the
prompt to ``max_sequence_length`` 512 whatever its length.  Fast lane: the tables, the bins, one written-out
request per model.  Slow: the resize stage traced and counted against ``FlopCounterMode``.
"""

from __future__ import annotations

import importlib

import pytest

import fxmeter
from fxmeter.model import observe as ob
from fxmeter.model.adapters.binning import BIN_TABLES, PROCESSORS, bin_table, binned_size
from fxmeter.model.registry import resolve_model
from fxmeter.model.workload import resolve


def _processor(pipeline: str) -> type:
    module, cls = PROCESSORS[pipeline]
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def test_the_tables_are_the_ones_diffusers_imports() -> None:
    """fxmeter reads the tables from diffusers' source (no import on the warm path): the same dicts."""
    for tables in BIN_TABLES.values():
        for file, name in tables.values():
            module = importlib.import_module("diffusers." + file.removesuffix(".py").replace("/", "."))
            assert bin_table(file, name) == {k: (int(h), int(w)) for k, (h, w) in getattr(module, name).items()}


def test_every_bin_is_its_own_bin() -> None:
    """``binned_size`` answers a bin without importing diffusers: diffusers' classify_height_width_bin agrees."""
    for pipeline, tables in BIN_TABLES.items():
        classify = _processor(pipeline).classify_height_width_bin  # type: ignore[attr-defined]
        for file, name in tables.values():
            table = bin_table(file, name)
            for h, w in table.values():
                assert classify(h, w, ratios=table) == (h, w) == binned_size(pipeline, next(
                    s for s, (f, n) in tables.items() if (f, n) == (file, name)), h, w), (name, h, w)


def test_other_sizes_are_classified_by_diffusers() -> None:
    for pipeline, size, (h, w) in (("PixArtSigmaPipeline", 128, (1000, 700)), ("SanaPipeline", 32, (512, 512)),
                                   ("SanaVideoPipeline", 30, (240, 416)), ("PixArtSigmaPipeline", 256, (777, 1999))):
        file, name = BIN_TABLES[pipeline][size]
        ref = _processor(pipeline).classify_height_width_bin(h, w, ratios=bin_table(file, name))  # type: ignore[attr-defined]
        assert binned_size(pipeline, size, h, w) == ref
    with pytest.raises(ValueError, match="no aspect-ratio bins for sample_size 100"):
        binned_size("SanaPipeline", 100, 1024, 1024)


def test_pixart_sigma_requested_1000_high_700_wide() -> None:
    # height / width = 1000 / 700 = 1.43: the nearest ratio key of ASPECT_RATIO_1024_BIN (sample_size 128) is
    # "1.46" -> height 1216 x width 832.  Latents 1216/8 x 832/8 = 152 x 104; 2x2 patches: 76 x 52 = 3,952 image
    # tokens (the 1024 x 1024 preset: 4,096).  The decoded 832 x 1216 image is resized by max(1000/1216, 700/832)
    # = 0.841 to 700 x 1023 (bilinear) and centre-cropped to 700 x 1000.
    rm = resolve_model("pixart-sigma-1024")
    wl = resolve(None, "pixart-1024", height=1000, width=700)
    g = rm.geometry(wl)
    assert g.dims == {"batch": 1, "latent_h": 152, "latent_w": 104, "text_len": 300}
    assert g.latent_shape == (1, 4, 152, 104) and g.tokens == 3_952
    assert ("requested 700x1000, the pipeline generates at 832x1216 (use_resolution_binning, its default: the nearest "
            "aspect ratio of ASPECT_RATIO_1024_BIN)") in g.notes[0]
    plans = {p.name: p for p in rm.stages(wl)}
    assert list(plans) == ["text_encoder", "transformer", "vae", "resize"]
    assert rm.stage_dims(plans["transformer"], g) == {"batch": 2, "latent_h": 152, "latent_w": 104, "text_len": 300}
    assert plans["vae"].dims == {"batch": 1, "latent_h": 152, "latent_w": 104}
    assert plans["resize"].dims == {"batch": 1, "height": 1216, "width": 832, "out_height": 1000, "out_width": 700}
    assert (plans["resize"].component, plans["resize"].runs, plans["resize"].dtype) == ("vae", 1, None)
    # a bin (the preset) is generated as asked: no resize
    preset = rm.stages(resolve(None, "pixart-1024"))
    assert [p.name for p in preset] == ["text_encoder", "transformer", "vae"]
    assert "1024x1024 is a bin of ASPECT_RATIO_1024_BIN" in rm.geometry(resolve(None, "pixart-1024")).notes[0]


def test_sana_requested_1000_high_700_wide() -> None:
    # sample_size 32 bins with the same ASPECT_RATIO_1024_BIN: 1216 x 832; DC-AE 32x, patch 1: 38 x 26 = 988 tokens
    rm = resolve_model("sana-1600m-1024")
    wl = resolve(None, "sana-1024", height=1000, width=700)
    g = rm.geometry(wl)
    assert g.dims == {"batch": 1, "patches_h": 38, "patches_w": 26, "text_len": 300} and g.tokens == 988
    plans = {p.name: p for p in rm.stages(wl)}
    assert list(plans)[-2:] == ["vae", "resize"]
    assert plans["vae"].dims == {"batch": 1, "latent_h": 38, "latent_w": 26}
    assert plans["resize"].dims == {"batch": 1, "height": 1216, "width": 832, "out_height": 1000, "out_width": 700}
    assert plans["resize"].dtype == "float32"  # the DC-AE's output (fp32, as the docstring leaves the VAE)


def test_sana_video_requested_416_wide_240_high() -> None:
    # 240 / 416 = 0.577: ASPECT_RATIO_480_BIN's "0.57" -> 480 x 832, the preset's geometry (81 frames: 32,760
    # tokens); every one of the 81 decoded frames is resized back to 416 x 240
    rm = resolve_model("sana-video-2b-480p")
    wl = resolve(None, "sana-video-480p", height=240, width=416)
    g = rm.geometry(wl)
    assert g.dims == rm.geometry(resolve(None, "sana-video-480p")).dims and g.tokens == 32_760
    assert "resizes every decoded frame back to 416x240" in g.notes[0]
    plans = {p.name: p for p in rm.stages(wl)}
    assert plans["resize"].dims == {"batch": 1, "frames": 81, "height": 480, "width": 832, "out_height": 240,
                                    "out_width": 416}


def test_z_image_and_chronoedit_pad_the_prompt_to_512() -> None:
    """Both pipelines tokenize with ``padding="max_length"`` to ``max_sequence_length`` (512): a shorter prompt does
    not shorten the encoder call.  Z-Image hands the transformer the prompt's own tokens (text_len); ChronoEdit
    always 512 (text_len ignored, said in a note).  The observation passes the plan's ``max_sequence_length``."""
    z = resolve_model("z-image-turbo")
    wl = resolve(None, "z-image-turbo-1024", text_len=256)
    plans = {p.name: p for p in z.stages(wl)}
    assert plans["text_encoder"].dims == {"batch": 1, "seq_len": 512}
    assert z.stage_dims(plans["transformer"], z.geometry(wl))["text_len"] == 256
    assert ob.MAX_SEQUENCE_LENGTHS["ZImagePipeline"](wl) == 512
    assert ob.MAX_SEQUENCE_LENGTHS["ZImagePipeline"](resolve(None, "z-image-turbo-1024", text_len=600)) == 600
    c = resolve_model("chronoedit-14b")
    wl = resolve(None, "chronoedit-480p", text_len=256)
    g = c.geometry(wl)
    assert g.dims["text_len"] == 512 and any("text_len=256 ignored" in n for n in g.notes)
    assert {p.name: p for p in c.stages(wl)}["text_encoder"].dims == {"batch": 1, "seq_len": 512}
    assert ob.MAX_SEQUENCE_LENGTHS["ChronoEditPipeline"](wl) == 512


@pytest.mark.slow  # PixArt's transformer is a static export: 832 x 1216 is traced anew
def test_resize_stage_counts_what_flop_counter_counts() -> None:
    from fxmeter.api import request, stage_inputs
    from fxmeter.estimate.evaluate import evaluate
    from fxmeter.verify.reference import run_stage_reference

    rep = fxmeter.trace("pixart-sigma-1024", run_id="zoo-pixart-binned", height=1000, width=700)
    st = {s["name"]: s for s in rep.data["pipeline"]["stages"]}
    assert st["transformer"]["dims"] == {"batch": 2, "latent_h": 152, "latent_w": 104, "text_len": 300}
    resize = st["resize"]
    # bilinear: 9 FLOPs per output element of the resized 3 x 1023 x 700 image; the crop is a view
    assert resize["per_run"]["tensor_core_flops"] == 0
    assert resize["per_run"]["cuda_core_flops"] == 9 * 3 * 1023 * 700
    assert resize["unmodeled_ops"] == []
    req = request("pixart-sigma-1024", height=1000, width=700, stages="resize")
    (inp,) = [i for i in stage_inputs(req) if i.plan.name == "resize"]
    ours = evaluate(inp.model, inp.dims)
    assert ours.unmodeled == ()
    ref = run_stage_reference(req.model.stage_component(inp.plan), dict(inp.dims), str(inp.model.meta["dtype"]), "resize")
    assert ours.total.tensor_core_flops == ref.total == 0  # FlopCounterMode counts no FLOPs for a resize
