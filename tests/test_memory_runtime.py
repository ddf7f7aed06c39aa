"""Memory as a process allocates it: the caching allocator's rounding, workspaces, context, NCCL, the runtime's
dtype policy, VAE tiling, host RAM, and their bad values on the command line (arithmetic written out)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from fxmeter.cli.main import main
from fxmeter.errors import WorkloadError
from fxmeter.estimate import memory as mem
from fxmeter.estimate.memory import WeightMemory
from fxmeter.estimate.tiling import Tiling, parse_tiling, tile_grid, tiled_decode_bytes

MiB = 1 << 20


def test_request_rounding_is_512_bytes() -> None:
    # CUDACachingAllocator round_size: ceil(size / 512) * 512
    assert mem.round_request(0) == 0
    assert mem.round_request(1) == 512
    assert mem.round_request(512) == 512
    assert mem.round_request(513) == 1024  # 2 x 512


def test_segment_sizes_follow_get_allocation_size() -> None:
    assert mem.segment_bytes(1) == 2 * MiB  # small pool: packed in 2 MiB segments
    assert mem.segment_bytes(1 * MiB) == 2 * MiB  # kSmallSize is the largest small request
    assert mem.segment_bytes(1 * MiB + 1) == 20 * MiB  # 1-10 MiB: a 20 MiB kLargeBuffer
    assert mem.segment_bytes(10 * MiB - 1) == 20 * MiB
    assert mem.segment_bytes(10 * MiB) == 10 * MiB  # >= kMinLargeAlloc: rounded up to 2 MiB
    assert mem.segment_bytes(10 * MiB + 1) == 12 * MiB


def test_cublas_workspace_by_compute_capability() -> None:
    assert mem.cublas_workspace("9.0") == 33_554_432  # 4096 * 8 * 1024 (Hopper)
    assert mem.cublas_workspace("12.0") == 33_554_432  # Blackwell RTX
    assert mem.cublas_workspace("8.9") == 8_519_680  # 4096 * 1024 * 2 + 16 * 1024 * 8 = 8,388,608 + 131,072
    assert mem.cublas_workspace("8.0") == 8_519_680
    assert mem.cublas_workspace("gfx942") == 0  # not an NVIDIA device: no cuBLAS
    assert mem.cublas_workspace(None) == 0


def test_nccl_buffers_per_peer_and_channel() -> None:
    assert mem.nccl_buffers(()) == 0
    assert mem.nccl_buffers((1,)) == 0
    assert mem.nccl_buffers((8,)) == 58_720_256  # 7 peers x 2 channels x 4 MiB = 56 MiB
    assert mem.nccl_buffers((2, 4)) == 33_554_432  # (1 + 3) peers x 2 x 4 MiB = 32 MiB


def test_process_memory_allocated_reserved_device() -> None:
    pm = mem.process_memory("transformer", 1000, 3000, compute_capability="9.0")
    # allocated: 1000 -> 1024, 3000 -> 3072 (512-byte rounding) + the 32 MiB cuBLAS workspace
    assert pm.peak_allocated_bytes == 1024 + 3072 + 33_554_432
    # reserved: a 2 MiB segment each for weights and activations, the workspace's 32 MiB segment, one 20 MiB
    # kLargeBuffer: 2 + 2 + 32 + 20 = 56 MiB
    assert pm.peak_reserved_bytes == 56 * MiB
    assert pm.allocator_slack == 56 * MiB - (1024 + 3072 + 33_554_432)
    # device: reserved + the lazy-loading CUDA context (287,047,680 bytes), no NCCL on one GPU
    assert pm.peak_device_bytes == 56 * MiB + 287_047_680
    assert pm.breakdown() == {"weights": 1024, "activations": 3072, "workspaces": 33_554_432,
                              "allocator_slack": pm.allocator_slack, "context": 287_047_680, "nccl": 0}


def test_expandable_segments_drop_the_mid_size_buffer() -> None:
    pm = mem.process_memory("transformer", 1000, 3000, compute_capability="8.9", expandable_segments=True)
    # pages of 2 MiB: weights 2 + activations 2 + workspace 8,519,680 -> 10 MiB (5 pages) = 14 MiB, no 20 MiB buffer
    assert pm.peak_reserved_bytes == 14 * MiB
    eager = mem.process_memory("transformer", 1000, 3000, compute_capability="8.9", lazy_loading=False)
    assert eager.context == 666_632_192  # CUDA_MODULE_LOADING=DEFAULT (pytorch#86509)


def test_multi_gpu_adds_nccl_outside_reserved() -> None:
    pm = mem.process_memory("x", 10 * MiB, 10 * MiB, compute_capability="9.0", nccl_groups=(4,))
    assert pm.nccl == 3 * 2 * 4 * MiB
    assert pm.peak_device_bytes == pm.peak_reserved_bytes + pm.context + 24 * MiB


def _w(params: int, dtype: str = "bfloat16") -> WeightMemory:
    return WeightMemory(2 * params, {dtype: 2 * params}, {dtype: params}, "as traced")


def test_runtime_dtype_policy() -> None:
    w = _w(1_000)
    assert mem.runtime_weight_bytes(w, runtime="diffusers", denoiser=True, component="transformer") == 2_000
    assert mem.runtime_weight_bytes(w, runtime="wan", denoiser=True, component="transformer") == 4_000  # fp32
    assert mem.runtime_weight_bytes(w, runtime="wan-bf16", denoiser=True, component="transformer") == 2_000
    assert mem.runtime_weight_bytes(w, runtime="wan", denoiser=False, component="text_encoder") == 2_000  # T5 bf16
    clip = WeightMemory(4_000, {"float32": 4_000}, {"float32": 1_000}, "as traced")
    assert mem.runtime_weight_bytes(clip, runtime="wan", denoiser=False, component="image_encoder") == 2_000  # fp16
    got = mem.with_runtime(w, "wan", True, "transformer")
    assert got.weight_bytes == 4_000 and got.weight_bytes_by_dtype == {"float32": 4_000}
    assert mem.with_runtime(w, "diffusers", True, "transformer") is w


def test_check_runtime_and_tiling_values() -> None:
    assert mem.check_runtime(None) == "diffusers"
    assert mem.check_runtime(" WAN ") == "wan"
    with pytest.raises(WorkloadError, match="unknown --runtime"):
        mem.check_runtime("comfy")
    assert parse_tiling(None) is None
    assert parse_tiling("off") is None
    assert parse_tiling("on") == Tiling(None)
    assert parse_tiling("256") == Tiling(256)
    for bad in ("0", "-8", "12", "big"):
        with pytest.raises(WorkloadError, match="--vae-tiling"):
            parse_tiling(bad)


def test_tiled_decode_arithmetic() -> None:
    # Wan 480x832, 81 frames: latent 60 x 104, 21 latent frames; tiles of 256 px (32 latent), stride 192 (24)
    dims = {"batch": 1, "latent_frames": 21, "latent_h": 60, "latent_w": 104}
    seen = {}

    def tile_peak(d: dict[str, int]) -> int:
        seen.update(d)
        return 1_000

    grid = tile_grid("AutoencoderKLWan", dims, Tiling())
    assert grid is not None
    peak, note = tiled_decode_bytes(grid, dims, 4, tile_peak)
    assert seen["latent_h"] == 32 and seen["latent_w"] == 32  # the largest tile's decode
    # rows: range(0, 60, 24) = 3, cols: range(0, 104, 24) = 5 -> 15 tiles; frames 1 + 4 x 20 = 81
    tile_out = 1 * 3 * 81 * 256 * 256 * 4  # 63,700,992
    full_out = 1 * 3 * 81 * 480 * 832 * 4  # 388,177,920
    assert peak == max(1_000 + 14 * tile_out, 15 * tile_out + full_out) == 1_343_692_800
    assert "3x5 tiles" in note
    # a latent that fits one tile is decoded whole; a class without tiling keeps its peak
    assert tile_grid("AutoencoderKLWan", {**dims, "latent_h": 32, "latent_w": 32}, Tiling()) is None
    assert tile_grid("AutoencoderKLLTXVideo", dims, Tiling()) is None


def test_predicted_peak_of_a_shipped_estimate() -> None:
    from fxmeter import api

    def peak(**kw: object) -> mem.ProcessMemory:
        req = api.request("wan2.1-t2v-1.3b", "480p", hardware="rtx4090", **kw)
        est = api.estimate_request(req, api.stage_inputs(req), nodes=False, modules=False)
        return mem.predicted_peak(est)

    base = peak()
    r = base
    assert r.workspaces == 8_519_680  # Ada: the default cuBLAS workspace
    assert r.peak_allocated_bytes == r.weights + r.activations + r.workspaces
    assert r.peak_reserved_bytes >= r.peak_allocated_bytes
    assert r.peak_device_bytes == r.peak_reserved_bytes + mem.CUDA_CONTEXT_LAZY
    tiled = peak(vae_tiling="on")
    assert base.stage == "vae" and tiled.activations < base.activations  # tiling shrinks the VAE's peak
    wan = peak(runtime="wan", offload="wan", t5_cpu=True)
    assert wan.runtime == "wan" and wan.host_bytes > 0  # T5 on the host: its weights in host RAM


@pytest.mark.parametrize("args", [
    ["trace", "wan2.1-t2v-1.3b", "--runtime", "comfy"],
    ["trace", "wan2.1-t2v-1.3b", "--vae-tiling", "0"],
    ["fit", "wan2.1-t2v-1.3b", "--hardware", "rtx4090", "--host-ram", "-1"],
    ["fit", "wan2.1-t2v-1.3b", "--hardware", "rtx4090", "--runtime", "nope"],
    ["fit", "wan2.1-t2v-1.3b", "--hardware", "rtx4090", "--vae-tiling", "0"],
    ["fit", "wan2.1-t2v-1.3b", "--hardware", "rtx4090", "--gpus", "0"],
    ["fit", "wan2.1-t2v-1.3b", "--hardware", "rtx4090,h100"],
    ["fit", "wan2.1-t2v-1.3b", "--hardware", "nosuchgpu"],
    ["trace", "flux.1-dev", "--quantize-on-device"],  # bf16: nothing to quantize
    ["trace", "flux.1-dev", "--precision", "fp8", "--quantize-on-device", "--offload", "model"],
    ["trace", "flux.1-dev", "--precision", "fp8", "--quantize-on-device", "--stages", "transformer"],
    ["trace", "flux.1-dev", "--precision", "fp8", "--quantize-on-device", "--gpus", "2", "--hardware", "h100"],
])
def test_bad_values_are_one_error_line(args: list[str], tmp_path: object) -> None:
    res = CliRunner().invoke(main, [*args, *(["--output-root", str(tmp_path)] if args[0] == "trace" else [])])
    assert res.exit_code == 2, res.output
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output


def test_convert_model_dtype_only_without_fsdp() -> None:
    # Wan2.2 wan/text2video.py _configure_model: "convert_model_dtype ... Only works without FSDP"
    assert mem.effective_runtime("wan-bf16", fsdp=False) == "wan-bf16"
    assert mem.effective_runtime("wan-bf16", fsdp=True) == "wan"
    assert mem.effective_runtime("diffusers", fsdp=True) == "diffusers"


def test_wan22_runtime_holds_per_token_timestep_embeddings() -> None:
    """Wan2.2's WanModel.forward expands t to every token: e [L, dim] and e0 [L, 6, dim] in float32 over the whole
    sequence on every GPU, plus each block's modulation sum [L, 6, dim] float32 over the GPU's share."""
    from fxmeter.model.registry import resolve_model

    a14b = dict(resolve_model("wan2.2-t2v-a14b").components["transformer"].config)
    dim = 40 * 128  # num_attention_heads x attention_head_dim
    r = mem.runtime_activation("wan-bf16", a14b, 75_600)
    assert r is not None and (r.whole_per_token, r.block_per_token) == (7 * dim * 4, 6 * dim * 4) == (143_360, 122_880)
    assert r.bytes() == 75_600 * (143_360 + 122_880) == 20_127_744_000  # 720p on one GPU: 18.7 GiB
    # Ulysses over 8: e and e0 whole on every rank, the block's sum over 9,450 tokens
    assert r.bytes(8) == 9_450 * 8 * 143_360 + 9_450 * 122_880 == 11_999_232_000
    assert mem.runtime_activation("wan-bf16", a14b, 7).bytes(2) == 8 * 143_360 + 4 * 122_880  # padded to 8 = 2 x 4
    assert mem.runtime_activation("wan", a14b, 1) is not None  # --runtime wan (float32 DiT) too
    assert mem.runtime_activation("diffusers", a14b, 75_600) is None  # diffusers: one timestep per sample, as traced
    # Wan2.1 (one timestep per sample in its own repository too): nothing beyond the trace
    assert mem.runtime_activation("wan", dict(resolve_model("wan2.1-t2v-14b").components["transformer"].config), 75_600) is None
    # TI2V-5B: diffusers already holds e and e0 per token in bf16 and the block's sum in float32: the float32 upgrade
    ti2v = dict(resolve_model("wan2.2-ti2v-5b").components["transformer"].config)
    t = mem.runtime_activation("wan", ti2v, 1000)
    assert t is not None and (t.whole_per_token, t.block_per_token) == (7 * 3072 * 2, 0)


def test_wan22_runtime_activations_reach_the_fit_and_the_deployment() -> None:
    from fxmeter import api

    def est(**kw: object) -> object:
        req = api.request("wan2.2-t2v-a14b", "a14b-720p", hardware="h20", runtime="wan-bf16", **kw)
        return api.estimate_request(req, api.stage_inputs(req), nodes=False, modules=False)

    one = est(offload="wan")
    traced = one.main.cost.activations.peak_bytes  # type: ignore[attr-defined]
    assert one.main.activation_bytes() == traced + 20_127_744_000  # type: ignore[attr-defined]
    assert one.residency.peak.activation_bytes == traced + 20_127_744_000  # type: ignore[attr-defined]
    p = mem.predicted_peak(one)
    assert p.activations >= traced + 20_127_744_000 and any("WanModel.forward holds" in n for n in p.notes)
    eight = est(gpus=8, parallel="ulysses=8", fsdp=True)
    st = next(s for s in eight.deployment.stages if s.name == "transformer")  # type: ignore[attr-defined]
    assert st.activation_bytes_per_gpu >= 11_999_232_000
    plain = api.request("wan2.2-t2v-a14b", "a14b-720p", hardware="h20")
    assert all(i.runtime is None for i in api.stage_inputs(plain))  # the diffusers runtime: as traced


def test_quantize_on_device_loads_the_checkpoint_first() -> None:
    """--quantize-on-device: every component on the GPU in its load dtype before quantize_ (FLUX.1-dev: the transformer
    in bf16 as traced, T5-XXL and CLIP-L in bf16, the VAE), a residency stage of its own ahead of the generation."""
    from fxmeter import api

    def est(**kw: object) -> object:
        req = api.request("flux.1-dev", hardware="h100", precision="fp8", **kw)
        return api.estimate_request(req, api.stage_inputs(req), nodes=False, modules=False)

    plain, loaded = est(), est(quantize_on_device=True)
    den = next(s for s in loaded.stages if s.denoiser)  # type: ignore[attr-defined]
    want = sum(w.weight_bytes for c, w in loaded.component_weights.items() if c != den.plan.component)  # type: ignore[attr-defined]
    want += den.cost.weights.weight_bytes  # the transformer as loaded (bf16), not at --precision fp8
    assert mem.loaded_before_quantize(loaded) == want
    assert den.weights.weight_bytes < den.cost.weights.weight_bytes  # at fp8 once quantized
    first = loaded.residency.stages[0]  # type: ignore[attr-defined]
    assert (first.stage, first.resident_bytes, first.activation_bytes) == ("load (before quantize_)", want, 0)
    assert loaded.residency.peak.stage == "load (before quantize_)"  # type: ignore[attr-defined]
    assert loaded.residency.peak_bytes > plain.residency.peak_bytes  # type: ignore[attr-defined]
    assert plain.residency.stages[0].stage != "load (before quantize_)"  # type: ignore[attr-defined]
    # the policy table: only the setup the flag describes (an offload policy quantizes before the pipe is on the GPU)
    assert [r.policy for r in loaded.policies] == ["none"]  # type: ignore[attr-defined]
    assert len(plain.policies) > 1  # type: ignore[attr-defined]
    p = mem.predicted_peak(loaded)
    # rounded up to the caching allocator's 512-byte granularity
    assert p.stage == "load (before quantize_)" and 0 <= p.weights - want < MiB and p.activations == 0
    assert any("--quantize-on-device" in n for n in p.notes)
    # the seconds do not change: the load happens before the generation
    assert loaded.pipeline_seconds("predicted") == plain.pipeline_seconds("predicted")  # type: ignore[attr-defined]


def test_fused_qkv_copies_written_out() -> None:
    """fuse_qkv_projections() keeps the projections and adds fused copies, counted on the real class on meta:
    FLUX.1-dev's 19 double blocks fuse Q/K/V and the context's add_q/k/v, its 38 single blocks Q/K/V:
    19 x 6 + 38 x 3 = 228 Linear(3072, 3072); models whose attention diffusers does not fuse add nothing."""
    from fxmeter import api
    from fxmeter.model.fusion import fused_qkv_copies
    from fxmeter.model.registry import resolve_model

    per = 3072 * 3072 + 3072  # weight + bias

    def copies(mid: str) -> tuple[int, int]:
        c = resolve_model(mid).component("transformer")
        return fused_qkv_copies(c.config, c.config_sha256, "bfloat16")

    assert copies("flux.1-dev") == (228 * per, 228 * per * 2)
    # Qwen-Image's attention is the older Attention class, which AttentionMixin.fuse_qkv_projections skips
    assert copies("qwen-image") == (0, 0)
    # the trace: the transformer's weights grow by the copies, at --precision like every matmul weight
    def weights(**kw: object) -> int:
        req = api.request("flux.1-dev", hardware="h100", **kw)
        return int(api.estimate_request(req, api.stage_inputs(req), nodes=False, modules=False).weights.weight_bytes)

    assert weights(fuse_qkv=True) - weights() == 228 * per * 2
    assert weights(fuse_qkv=True, precision="fp8") - weights(precision="fp8") == 228 * per  # one byte each


def test_a_tile_outside_the_vae_guards_is_one_error_line() -> None:
    from fxmeter import api

    # CogVideoX at 208 px: latent 26 rows -> tiles of 25 and 1 rows; the VAE trace needs latent_h >= 2
    req = api.request("cogvideox-5b", hardware="h100", height=208, width=768, vae_tiling="on")
    with pytest.raises(WorkloadError, match=r"--vae-tiling: the 1x\d+ latent edge tile"):
        api.estimate_request(req, api.stage_inputs(req), nodes=False, modules=False)
