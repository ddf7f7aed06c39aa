"""``fxmeter fit``: the largest workload that fits per residency policy (exact search over the legal grid) and
the cheapest policy that fits; the largest fitting size + one step does not fit."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
from click.testing import CliRunner

from fxmeter.cli.fit import run_fit
from fxmeter.cli.main import main
from fxmeter.estimate.fitsearch import resolution_sizes


def _fits(prober, wl, policy):  # type: ignore[no-untyped-def]
    got = prober.peaks(wl)
    assert got is not None
    p = next(x for x in got if x.policy == policy)
    return p.fits and p.host_fits


@pytest.mark.parametrize("model,device", [("wan2.1-t2v-1.3b", "rtx4090"), ("wan2.1-t2v-14b", "a100-40gb")])
def test_largest_fits_and_one_step_more_does_not(model: str, device: str) -> None:
    req, prober, rows, best, _ = run_fit(model, None, hardware=device)
    wl = req.workload
    res = resolution_sizes(wl)
    checked = 0
    for row in rows:
        r = row.resolution
        if r.value is not None and r.bounded:
            h, w = res[r.value]
            assert _fits(prober, replace(wl, height=h, width=w), row.policy)
            h2, w2 = res[r.value + 1]
            assert not _fits(prober, replace(wl, height=h2, width=w2), row.policy)
            checked += 1
        f = row.frames
        if f is not None and f.value is not None and f.bounded:
            assert _fits(prober, replace(wl, frames=f.value), row.policy)
            assert not _fits(prober, replace(wl, frames=f.value + 4), row.policy)  # the next 4k+1 frame count
            checked += 1
    assert checked >= 2


def test_peak_grows_with_resolution_and_frames() -> None:
    req, prober, rows, _, _ = run_fit("wan2.1-t2v-1.3b", "480p", hardware="rtx4090")
    wl = req.workload
    peaks = [prober.peaks(replace(wl, height=h, width=w)) for h, w in ((240, 416), (480, 832), (720, 1280))]
    for name in ("none", "model", "sequential"):
        dev = [next(p for p in got if p.policy == name).memory.peak_device_bytes for got in peaks if got]
        assert dev == sorted(dev) and dev[0] < dev[-1]


def test_cheapest_policy_and_margin() -> None:
    req, prober, rows, best, _ = run_fit("wan2.1-t2v-14b", "720p", hardware="rtx4090")
    at = {r.policy: r.at_workload for r in rows}
    assert at["none"] is not None and not at["none"].fits  # 26.7 GiB of weights alone exceed 24 GiB
    assert best is not None and best.fits
    fitting = [p for p in at.values() if p is not None and p.fits and p.host_fits]
    assert best.copied_bytes == min(p.copied_bytes for p in fitting)
    # a host RAM too small for the offloaded weights leaves no offload policy
    _, _, rows_small, best_small, _ = run_fit("wan2.1-t2v-14b", "720p", hardware="rtx4090", host_ram=1.0)
    assert best_small is None or best_small.memory.host_bytes <= 1e9


@pytest.mark.parametrize("model", ["wan2.1-t2v-1.3b", "wan2.1-t2v-14b", "hunyuanvideo", "flux.1-dev"])
@pytest.mark.parametrize("device", ["rtx4090", "l40s", "h100", "a100-40gb"])
@pytest.mark.slow
def test_fit_answers_for_every_device_and_model(model: str, device: str) -> None:
    res = CliRunner().invoke(main, ["fit", model, "--hardware", device, "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["policies"] and all("largest_resolution" in p for p in doc["policies"])


def test_fit_console_table_and_speed() -> None:
    run_fit("flux.1-dev", None, hardware="a100-40gb")  # warm: the shipped traces read once
    t = time.perf_counter()
    _, prober, rows, best, search_s = run_fit("flux.1-dev", None, hardware="a100-40gb")
    assert search_s < 1.0, f"search took {search_s:.2f} s"
    assert time.perf_counter() - t < 10
    res = CliRunner().invoke(main, ["fit", "wan2.1-t2v-1.3b", "--hardware", "rtx4090", "-w", "480p", "--vae-tiling", "on"])
    assert res.exit_code == 0, res.output
    assert "cheapest policy that fits: --offload none" in res.output
    assert "VAE tiling on" in res.output


def test_fit_takes_the_trace_memory_flags() -> None:
    """``fit --fuse-qkv`` and ``--quantize-on-device`` price what ``trace`` prices: the fused copies in the
    denoiser's weights (every policy), and the bf16 checkpoint on the GPU before quantize_ (one setup: policy none)."""
    from fxmeter import api
    from fxmeter.estimate.memory import loaded_before_quantize, predicted_peak

    def peak(**kw: object) -> object:
        _, _, rows, _, _ = run_fit("flux.1-dev", None, hardware="h100", **kw)
        return {r.policy: r.at_workload.memory for r in rows}  # type: ignore[union-attr]

    plain, fused = peak(), peak(fuse_qkv=True)
    assert set(plain) == set(fused) and len(plain) > 1
    for policy in ("none", "model"):
        assert fused[policy].peak_allocated_bytes > plain[policy].peak_allocated_bytes  # type: ignore[attr-defined]
    loaded = peak(precision="fp8", quantize_on_device=True)
    assert list(loaded) == ["none"]  # an offload policy is another setup, not a cheaper fit of this one
    req = api.request("flux.1-dev", hardware="h100", precision="fp8", quantize_on_device=True)
    est = api.estimate_request(req, api.stage_inputs(req), nodes=False, modules=False)
    want = predicted_peak(est)
    got = loaded["none"]
    assert got.stage == want.stage == "load (before quantize_)"  # type: ignore[attr-defined]
    assert got.peak_allocated_bytes == want.peak_allocated_bytes  # type: ignore[attr-defined]
    assert got.weights >= loaded_before_quantize(est)  # type: ignore[attr-defined]
    bad = CliRunner().invoke(main, ["fit", "flux.1-dev", "--hardware", "h100", "--precision", "fp8",
                                    "--quantize-on-device", "--gpus", "2"])
    assert bad.exit_code == 2 and bad.output.startswith("error: --quantize-on-device") and "Traceback" not in bad.output
