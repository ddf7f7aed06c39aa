"""Residency policies on small made-up pipelines: which weights sit on the device, which cross PCIe, when.

Weights in GB-ish round numbers so the arithmetic reads off the comments.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fxmeter.errors import StageError
from fxmeter.estimate.residency import StageLoad, call_order, check_policy, plan, policies_for

G = 10**9
#: a Wan-like T2V pipeline: T5 11 GB (2 calls), DiT 28 GB (100 calls), VAE 0.5 GB (1 call)
WAN = (
    StageLoad("text_encoder", "text_encoder", 2, 11 * G, 1 * G, 11 * G, 1 * G, text_encoder=True),
    StageLoad("transformer", "transformer", 100, 28 * G, 6 * G, 28 * G, G // 2, denoiser=True),
    StageLoad("vae", "vae", 1, G // 2, 15 * G, 6 * G, G // 100),
)
WAN_SEQ = ("text_encoder", "transformer", "transformer_2", "vae")


def test_none_keeps_everything_resident() -> None:
    r = plan("none", WAN, WAN_SEQ)
    # every stage holds 11 + 28 + 0.5 = 39.5 GB of weights; the VAE's 15 GB of activations make the peak
    assert [s.resident_bytes for s in r.stages] == [39_500_000_000] * 3
    assert r.peak.stage == "vae" and r.peak_bytes == 39_500_000_000 + 15 * G
    assert r.transfers == () and r.transfer_seconds == 0.0


def test_model_offload_moves_one_model_at_a_time() -> None:
    r = plan("model", WAN, WAN_SEQ)
    # T5 alone (11), then the DiT (its hook offloads T5 first: 28), then the VAE (offloads the DiT: 0.5)
    assert {s.stage: s.resident_bytes for s in r.stages} == {"text_encoder": 11 * G, "transformer": 28 * G, "vae": G // 2}
    assert r.peak.stage == "transformer" and r.peak_bytes == 34 * G  # 28 + 6
    # each model in once and out once (the VAE at the end, by maybe_free_model_hooks): 2 x 39.5 GB
    assert r.host_to_device_bytes == r.device_to_host_bytes == 39_500_000_000
    assert all(t.count == 1 for t in r.transfers)


def test_model_offload_follows_the_sequence_not_the_call_order() -> None:
    # Wan I2V: the VAE encodes before the DiT runs, but its hook is last in model_cpu_offload_seq, so nobody
    # offloads it before the denoising loop: it stays resident next to the DiT
    i2v = (
        StageLoad("text_encoder", "text_encoder", 2, 11 * G, G, 11 * G, G, text_encoder=True),
        StageLoad("image_encoder", "image_encoder", 1, 2 * G, G, 2 * G, G),
        StageLoad("vae_encode", "vae", 1, G, 5 * G, G, G),
        StageLoad("transformer", "transformer", 80, 32 * G, 6 * G, 32 * G, G, denoiser=True),
        StageLoad("vae", "vae", 1, G, 9 * G, G, G),
    )
    r = plan("model", i2v, ("text_encoder", "image_encoder", "transformer", "transformer_2", "vae"))
    by = {s.stage: s.resident_bytes for s in r.stages}
    assert by["image_encoder"] == 2 * G  # its hook offloaded T5
    # absent components drop out of the hook chain: the VAE's previous hook is the DiT's
    assert by["vae_encode"] == 3 * G  # the VAE's hook offloads the DiT (not there yet): CLIP (2) stays, 2 + 1
    assert by["transformer"] == 33 * G  # the DiT's hook offloads CLIP; the VAE (1) stays: 32 + 1
    assert by["vae"] == G  # the VAE's hook offloads the DiT: 1


def test_sequential_streams_every_weight_read_and_holds_one_module() -> None:
    r = plan("sequential", WAN, WAN_SEQ)
    assert {s.stage: s.resident_bytes for s in r.stages} == {"text_encoder": G, "transformer": G // 2, "vae": G // 100}
    # weight reads x runs: 11 x 2 + 28 x 100 + 6 x 1 = 2,828 GB host -> device, nothing back
    assert r.host_to_device_bytes == 2828 * G and r.device_to_host_bytes == 0
    assert r.peak.stage == "vae" and r.peak_bytes == G // 100 + 15 * G


def test_wan_offload_model_t2v() -> None:
    r = plan("wan", WAN, WAN_SEQ)
    by = {s.stage: s.resident_bytes for s in r.stages}
    # WanT2V places the DiT and the VAE on the device at load; T5 joins them for its two calls
    assert by["text_encoder"] == 39_500_000_000
    assert by["transformer"] == 28_500_000_000
    assert by["vae"] == G // 2  # the DiT went back to the host after the loop
    moved = {(t.component, t.direction): t.count for t in r.transfers}
    assert moved == {("text_encoder", "host_to_device"): 1, ("text_encoder", "device_to_host"): 1,
                     ("transformer", "device_to_host"): 1}


def test_wan_t5_cpu_takes_t5_off_the_device() -> None:
    r = plan("wan", WAN, WAN_SEQ, t5_cpu=True)
    assert r.on_host("text_encoder") and not r.on_host("transformer")
    assert r.stages[0].peak_bytes == 0
    assert all(t.component != "text_encoder" for t in r.transfers)
    assert r.name == "wan+t5_cpu"


def test_copy_seconds_add_up() -> None:
    # 1 s per GB per copy: T5 in and out (11 + 11) and the DiT out (28): 50 s
    r = plan("wan", WAN, WAN_SEQ, copy_seconds=lambda direction, nbytes, count: nbytes / G * count)
    assert r.transfer_seconds == pytest.approx(50.0)


def test_call_order_interleaves_text_encoders_by_prompt_pass() -> None:
    # SD3 encodes the prompt with CLIP-L, CLIP-G, T5, then the negative prompt with the three again
    sd3 = tuple(StageLoad(n, n, 2, G, 0, G, G, text_encoder=True) for n in ("text_encoder", "text_encoder_2", "text_encoder_3"))
    assert [s.name for s in call_order(sd3)] == ["text_encoder", "text_encoder_2", "text_encoder_3"] * 2


def test_policies_a_pipeline_does_not_have_are_refused() -> None:
    assert policies_for(()) == ("none", "model", "sequential")
    assert policies_for(("wan",)) == ("none", "model", "sequential", "wan")
    with pytest.raises(StageError, match="flux's pipeline has: none, model, sequential"):
        check_policy("wan", False, policies_for(()), "flux")
    with pytest.raises(StageError, match="no such option"):
        check_policy("none", True, policies_for(()), "flux")
    with pytest.raises(StageError, match="unknown --offload policy 'disk'"):
        check_policy("disk", False, policies_for(("wan",)), "wan")
    assert check_policy(" Model ", False, policies_for(()), "flux") == "model"


def test_t5_cpu_under_diffusers_model_offload_is_priced_not_a_traceback(tmp_path: Path) -> None:
    """--t5-cpu beside --offload model (not Wan's own policy): T5 on the host, the rest offloaded per model."""
    from click.testing import CliRunner

    from fxmeter.cli.main import main

    out = CliRunner().invoke(main, ["trace", "wan2.1-t2v-1.3b", "--hardware", "h100", "--offload", "model", "--t5-cpu",
                                    "--output-root", str(tmp_path), "--run-id", "t5"])
    assert out.exit_code == 0, out.output
    assert "--offload model+t5_cpu" in out.output
