"""MiniMax-H3 (``fxmeter/model/zoo/minimax_h3.py``): the ``t2va`` pipeline's stages, its geometry written out, its
shipped traces, and every stage's tensor-core FLOPs against FlopCounterMode on the full meta component."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from fxmeter.errors import WorkloadError
from fxmeter.model.registry import resolve_model
from fxmeter.model.workload import get_preset, resolve

MODEL = "minimax-h3"


def _plans(**overrides: Any) -> dict[str, Any]:
    m = resolve_model(MODEL)
    return {p.name: p for p in m.stages(resolve(None, m.default_workload, **overrides))}


def test_listed_with_its_preset() -> None:
    from fxmeter.cli.main import main

    out = CliRunner().invoke(main, ["models"]).output
    line = next(ln for ln in out.splitlines() if ln.startswith(MODEL + " "))
    assert "minimax-h3-768p" in line
    assert resolve_model(MODEL).default_workload == "minimax-h3-768p"
    wl = get_preset("minimax-h3-768p")
    assert (wl.frames, wl.height, wl.width, wl.steps, wl.text_len, wl.batch) == (124, 768, 1344, 49, 128, 1)


@pytest.mark.slow  # imports diffusers' modular pipelines (~15 s)
def test_default_canvas_and_frames_are_the_pipelines() -> None:
    """t2va without height/width: the 16:9 canvas of short edge 768 under 768 x 1344 pixels; 124 frames is 17*7+5."""
    from diffusers.modular_pipelines.minimax_h3.modular_pipeline import (
        align_num_frames,
        audio_latent_num_frames,
        resolve_canvas_size,
        video_latent_num_frames,
    )

    wl = get_preset("minimax-h3-768p")
    assert resolve_canvas_size(16, 9, 32, 768, 768 * 1344) == (wl.height, wl.width) == (768, 1344)
    assert align_num_frames(wl.frames, 17, 5) == 124
    assert video_latent_num_frames(124, 17, 5) == 37
    assert audio_latent_num_frames(124) == 207


def test_geometry_written_out() -> None:
    m = resolve_model(MODEL)
    g = m.geometry(get_preset("minimax-h3-768p"))
    # 124 frames -> 5*7+2 = 37 latent frames; 768x1344 / 16 = 48x84 latents; patch 1x2x2 -> 24x42 per frame
    assert g.latent_shape == (1, 24, 37, 48, 84)
    assert g.dims == {"batch": 1, "text_len": 128, "audio_tokens": 2 * 207, "video_tokens": 37 * 24 * 42,
                      "seq_len": 128 + 414 + 37_296, "timesteps": 2}
    assert g.tokens == 37_838 and g.frames == 124
    # frames round *up* to 17n+5 (MiniMaxH3PrepareLayoutStep), with a note
    g2 = m.geometry(resolve(None, "minimax-h3-768p", frames=121))
    assert g2.frames == 124 and any("rounded up to 124" in n for n in g2.notes)


@pytest.mark.parametrize(("overrides", "needle"), [
    ({"batch": 2}, "batch must be 1"),
    ({"height": 760}, "multiples of 32"),
    ({"frames": 100}, "5-15 s"),
    ({"frames": 362}, "5-15 s"),
])
def test_workloads_the_pipeline_refuses(overrides: dict[str, int], needle: str) -> None:
    m = resolve_model(MODEL)
    with pytest.raises(WorkloadError, match=needle):
        m.geometry(resolve(None, "minimax-h3-768p", **overrides))


def test_forwards_and_their_distinct_timesteps() -> None:
    """num_inference_steps 50 = 49 forwards; the first has video and audio at t = 0 (one timestep), the rest two."""
    from fxmeter.model.zoo.minimax_h3 import distinct_timesteps

    assert distinct_timesteps(49) == [1] + [2] * 48
    assert distinct_timesteps(1) == [1]


def test_stage_list_as_the_pipeline_runs_it() -> None:
    plans = _plans()
    assert list(plans) == ["text_encoder", "transformer", "transformer_t1", "vae", "audio_vae"]
    te, tr, t1, vae, audio = plans.values()
    assert (te.runs, te.dims, te.adapter.name) == (1, {"batch": 1, "seq_len": 128}, "qwen3vl-h3")  # no negative prompt
    assert (tr.runs, tr.steps, tr.component, tr.dims["timesteps"]) == (48, 48, "transformer", 2)
    assert (t1.runs, t1.steps, t1.component, t1.dims["timesteps"]) == (1, 1, "transformer", 1)
    assert tr.dims["seq_len"] == t1.dims["seq_len"] == 37_838
    # the tiled decode: 7 chunks of 7 latent frames x (4 x 7) tiles of 256 x 256 pixels = 196 decoder calls
    assert (vae.runs, vae.dims, vae.adapter.name) == (196, {"batch": 1, "latent_frames": 7, "latent_h": 16,
                                                            "latent_w": 16}, "vae-tile-decode-minimax-h3")
    assert (audio.runs, audio.dims, audio.adapter.name) == (1, {"batch": 2, "latent_frames": 207},
                                                            "audio-vae-decode-minimax-h3")
    m = resolve_model(MODEL)
    assert m.passes_per_step(get_preset("minimax-h3-768p")) == 1  # guidance-distilled
    assert not m.pipeline_notes(get_preset("minimax-h3-768p"))  # every component has a bundled config


@pytest.mark.parametrize(("frames", "height", "width"), [
    (124, 768, 1344),
    pytest.param(192, 480, 864, marks=pytest.mark.slow),
    pytest.param(124, 256, 448, marks=pytest.mark.slow),  # a canvas axis of one tile
])
def test_tile_plan_is_what_the_vae_decode_calls(frames: int, height: int, width: int) -> None:
    """AutoencoderKLMiniMaxH3.decode (tiling on, as shipped) on meta with its decoder counting calls: the stage's runs
    and per-call latent shape are the class's own."""
    import torch
    from diffusers import AutoencoderKLMiniMaxH3

    plan = _plans(frames=frames, height=height, width=width)["vae"]
    m = resolve_model(MODEL)
    cfg = {k: v for k, v in m.components["vae"].config.items() if not k.startswith("_")}
    with torch.device("meta"):
        vae = AutoencoderKLMiniMaxH3(**cfg)
    class CountingDecoder(torch.nn.Module):
        """Stands in for the ViT decoder: records each call's input shape, returns a tensor of the real output's."""

        def __init__(self) -> None:
            super().__init__()
            self.calls: list[tuple[int, ...]] = []

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            self.calls.append(tuple(z.shape))
            b, _, t, h, w = z.shape
            return torch.empty(b, 3, 4 * t, 16 * h, 16 * w, device=z.device, dtype=z.dtype)

    counting = CountingDecoder()
    vae.decoder = counting
    _, _, lf, lh, lw = m.geometry(resolve(None, "minimax-h3-768p", frames=frames, height=height, width=width)).latent_shape
    out = vae.decode(torch.empty(1, 24, lf, lh, lw, device="meta"), return_dict=False)[0]
    assert out.shape[2:] == (m.geometry(resolve(None, "minimax-h3-768p", frames=frames)).frames, height, width)
    d = plan.dims
    assert counting.calls == [(1, 24, d["latent_frames"], d["latent_h"], d["latent_w"])] * plan.runs


def test_trace_from_the_shipped_traces() -> None:
    """Every stage of the default workload comes from the package's shipped traces, every op costed."""
    from fxmeter.api import request, stage_inputs

    inputs = stage_inputs(request(MODEL))
    assert [i.plan.name for i in inputs] == ["text_encoder", "transformer", "transformer_t1", "vae", "audio_vae"]
    assert {i.source for i in inputs} == {"shipped"}
    assert all(i.model.unmodeled == () for i in inputs)


def test_cli_trace_uses_the_shipped_trace(tmp_path: Any) -> None:
    from fxmeter.cli.main import main

    res = CliRunner().invoke(main, ["trace", MODEL, "--stages", "transformer", "--strict", "--output-root",
                                    str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "37,838 tokens" in res.output and "49 steps x 1 passes" in res.output
    assert "tracing" not in res.output  # shipped: nothing traced now


def _flop_counter_denoiser(dims: dict[str, int]) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fxmeter.model.capture import build_model

    m = resolve_model(MODEL)
    net = build_model(m.config, "bfloat16")
    kwargs = m.adapter.inputs(m.config, dims, torch.bfloat16)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(**kwargs)
    return int(counter.get_total_flops())


@pytest.mark.slow  # FlopCounterMode over each full stage on meta (the tiled VAE decode runs 196 ViT decoder calls)
@pytest.mark.parametrize("stage", ["text_encoder", "transformer", "transformer_t1", "vae", "audio_vae"])
def test_every_stage_counts_what_flop_counter_counts(stage: str) -> None:
    from fxmeter.api import request, stage_inputs
    from fxmeter.estimate.evaluate import evaluate
    from fxmeter.verify.reference import run_stage_reference

    req = request(MODEL, stages=stage)
    inp = next(i for i in stage_inputs(req) if i.plan.name == stage)
    ours = evaluate(inp.model, inp.dims)
    assert ours.unmodeled == ()
    if inp.plan.denoiser:
        assert ours.total.tensor_core_flops == _flop_counter_denoiser(dict(inp.dims)) > 0
        return
    comp = req.model.stage_component(inp.plan)
    ref = run_stage_reference(comp, dict(inp.dims), str(inp.model.meta["dtype"]), inp.plan.root)
    assert ours.total.tensor_core_flops == ref.total > 0
    by_id = {m.id: m.total.tensor_core_flops for m in ours.modules}
    for mid, n in ref.modules.items():
        if n and mid in by_id:
            assert by_id[mid] == n, mid


@pytest.mark.slow  # the whole tiled decode on meta: 28 calls of the 36-layer ViT decoder
def test_whole_tiled_decode_counts_runs_times_one_call() -> None:
    """FlopCounterMode over the real ``vae.decode`` (tiles, chunks, blending) counts exactly the stage's runs x one
    call's tensor-core FLOPs: the blending left out has no matmul.  At 448 x 384 x 124 frames (2 x 2 tiles of every
    one of the 7 temporal chunks, the fewest frames MiniMax-H3 makes): the same tiling and chunking code as the default
    workload's 196 calls, in a seventh of the time (``test_tile_plan_is_what_the_vae_decode_calls`` checks the default's
    196 calls against the real class)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fxmeter.api import request, stage_inputs
    from fxmeter.estimate.evaluate import evaluate
    from fxmeter.model.capture import build_model

    req = request(MODEL, stages="vae", frames=124, height=384, width=448)
    inp = next(i for i in stage_inputs(req) if i.plan.name == "vae")
    assert inp.plan.runs == 7 * 2 * 2
    one = evaluate(inp.model, inp.dims).total.tensor_core_flops
    m = resolve_model(MODEL)
    vae = build_model(dict(m.components["vae"].config), "bfloat16")
    _, _, lf, lh, lw = m.geometry(resolve(None, "minimax-h3-768p", frames=124, height=384, width=448)).latent_shape
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        vae.decode(torch.empty(1, 24, lf, lh, lw, device="meta", dtype=torch.float32), return_dict=False)
    assert int(counter.get_total_flops()) == inp.plan.runs * one > 0


def test_new_rules_arithmetic() -> None:
    """index_copy (the row packing) and tile move bytes only; _weight_norm is 3*N + 2*R CUDA-core FLOPs."""
    from fxmeter.rules import OpCall, TensorMeta, lookup

    def t(*shape: int, dtype: str = "bfloat16") -> TensorMeta:
        return TensorMeta(tuple(shape), dtype, {"bfloat16": 2, "float32": 4, "int64": 8}[dtype])

    dst, idx, src = t(1, 10, 8), t(4, dtype="int64"), t(1, 4, 8)
    rule = lookup("aten.index_copy.default")
    assert rule is not None
    c = rule.fn(OpCall("aten.index_copy.default", (dst, 1, idx, src), {}, (t(1, 10, 8),)))
    assert (c.tensor_core_flops, c.cuda_core_flops) == (0, 0)
    assert (c.bytes_read, c.bytes_written) == (160 + 32 + 64, 160)
    tile = lookup("aten.tile.default")
    assert tile is not None
    c = tile.fn(OpCall("aten.tile.default", (t(1, 5, 8), [3, 1, 1]), {}, (t(3, 5, 8),)))
    assert (c.tensor_core_flops, c.cuda_core_flops, c.bytes_read, c.bytes_written) == (0, 0, 80, 240)
    v, g = t(64, 32, 7, dtype="float32"), t(64, 1, 1, dtype="float32")
    wn = lookup("aten._weight_norm.default")
    assert wn is not None
    c = wn.fn(OpCall("aten._weight_norm.default", (v, g, 0), {}, (t(64, 32, 7, dtype="float32"),)))
    assert c.cuda_core_flops == 3 * 64 * 32 * 7 + 2 * 64
    assert (c.bytes_read, c.bytes_written) == (64 * 32 * 7 * 4 + 64 * 4, 64 * 32 * 7 * 4)
    c = wn.fn(OpCall("aten._weight_norm.default", (v, g, -1), {}, (t(64, 32, 7, dtype="float32"),)))
    assert c.cuda_core_flops == 3 * 64 * 32 * 7 + 2


@pytest.mark.parametrize("steps", [1, 2, 7, 49, 50, 333])
def test_distinct_timesteps_written_out_equal_the_scheduler(steps: int) -> None:
    """The per-forward timestep counts the stage plan uses without importing diffusers equal MiniMaxH3Scheduler's."""
    from fxmeter.model.zoo.minimax_h3 import distinct_timesteps, scheduler_timesteps

    assert distinct_timesteps(steps) == scheduler_timesteps(steps)
