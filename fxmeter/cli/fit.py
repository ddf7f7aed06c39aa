"""``fxmeter fit MODEL --hardware DEV [--gpus N]``: per residency policy, the largest resolution, frame count
and batch that fit one device, and the cheapest policy that fits the workload, with its margin."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from fxmeter.cli.options import api_kwargs, knob_options


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f}"


@click.command("fit")
@click.argument("model", required=False)
@knob_options("fit")
@click.option("--host-ram", type=float, default=None, help="Host RAM in GB (1e9 bytes): a policy must fit it too.")
@click.option("--expandable-segments", is_flag=True,
              help="PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True (reserved = live sets in 2 MiB pages).")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
def fit(model: str | None, host_ram: float | None, expandable_segments: bool, as_json: bool, **kw: Any) -> None:
    """Per residency policy (--offload), the largest resolution, frame count and batch of MODEL that fit one
    --hardware device (peak device memory per GPU: allocated + allocator slack + CUDA context + NCCL), and
    the cheapest policy that fits the workload."""
    t0 = time.perf_counter()
    opts = api_kwargs("fit", kw)
    gpus = opts["gpus"]
    got = run_fit(model, opts.pop("workload"), host_ram=host_ram, expandable_segments=expandable_segments, **opts)
    req, prober, rows, best, search_s = got
    m, hw, wl = req.model, req.devices[0], req.workload
    video = wl.frames > 1
    seconds = time.perf_counter() - t0
    if as_json:
        doc = {"model": m.id, "device": hw.name, "device_bytes": hw.memory_bytes, "gpus": gpus, "runtime": req.options.runtime,
               "workload": {"height": wl.height, "width": wl.width, "frames": wl.frames, "batch": wl.batch},
               "policies": [{"policy": r.policy, "at_workload": None if r.at_workload is None else {
                   **r.at_workload.memory.to_dict(), "fits": r.at_workload.fits, "host_fits": r.at_workload.host_fits,
                   "copied_bytes": r.at_workload.copied_bytes},
                   "largest_resolution": r.resolution.label, "largest_frames": r.frames.value if r.frames else None,
                   "largest_batch": r.batch.value} for r in rows],
               "cheapest": None if best is None else {"policy": best.policy,
                                                      "margin_bytes": hw.memory_bytes - best.memory.peak_device_bytes}}
        for p in doc["policies"]:
            if p["at_workload"]:
                p["at_workload"].pop("notes", None)
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
        return
    per = f" per GPU of {gpus}" if gpus > 1 else ""
    click.echo(f"{m.id} on {hw.label}{per}: {_gib(hw.memory_bytes)} GiB; workload {wl.width}x{wl.height}"
               + (f", {wl.frames} frames" if video else "") + f", batch {wl.batch}; runtime {req.options.runtime}"
               + (f"; VAE tiling {'on' if not req.options.vae_tiling else req.options.vae_tiling}"
                  if req.options.vae_tiling is not None else "")
               + ("; fused QKV" if req.options.fuse_qkv else "")
               + ("; quantized on the GPU after loading (the load is a stage)" if req.options.quantize_on_device else ""))
    head = f"  {'policy':<16} {'alloc GiB':>9} {'reserved':>9} {'device':>7}  {'fits':<4}  {'largest WxH':>12}"
    head += f" {'frames':>7}" if video else ""
    head += f" {'batch':>6}"
    click.echo(head)
    for r in rows:
        a = r.at_workload
        cells = ("-", "-", "-", "?") if a is None else (
            _gib(a.memory.peak_allocated_bytes), _gib(a.memory.peak_reserved_bytes), _gib(a.memory.peak_device_bytes),
            "yes" if a.fits and a.host_fits else ("host" if a.fits else "no"))
        line = f"  {r.policy:<16} {cells[0]:>9} {cells[1]:>9} {cells[2]:>7}  {cells[3]:<4}  " \
               f"{r.resolution.label + ('' if r.resolution.bounded else '+'):>12}"
        if video and r.frames is not None:
            line += f" {(str(r.frames.value) if r.frames.value else '-') + ('' if r.frames.bounded else '+'):>7}"
        line += f" {(str(r.batch.value) if r.batch.value else '-') + ('' if r.batch.bounded else '+'):>6}"
        click.echo(line)
    if best is None:
        click.echo("  no policy fits this workload")
    else:
        margin = hw.memory_bytes - best.memory.peak_device_bytes
        click.echo(f"  cheapest policy that fits: --offload {best.policy} (fewest weight bytes copied between host and "
                   f"device, {best.copied_bytes / 1e9:,.1f} GB): peak {_gib(best.memory.peak_device_bytes)} GiB on the device "
                   f"during {best.memory.stage}, margin {_gib(margin)} GiB")
    click.echo("  (alloc = torch max_memory_allocated; reserved = max_memory_reserved; device = reserved + CUDA context "
               "+ NCCL, what nvidia-smi shows; a '+' marks the end of the legal or shipped-trace range, not a misfit; "
               f"search: {prober.probes} workloads probed in {search_s:.2f} s; {seconds:.2f} s with loading the traces)")


def run_fit(model: str | None, workload: str | None = None, *, hardware: str, gpus: int = 1, host_ram: float | None = None,
            expandable_segments: bool = False, batched_cfg: bool = False, **kw: Any) -> tuple[Any, Any, Any, Any, float]:
    """The fit search of one model on one device: (request, prober, rows per policy, cheapest policy, search seconds)."""
    from fxmeter import api
    from fxmeter.errors import WorkloadError
    from fxmeter.estimate.fitsearch import Prober, cheapest, search
    from fxmeter.estimate.generation import estimate
    from fxmeter.estimate.memory import loaded_before_quantize
    from fxmeter.estimate.residency import policies_for

    if host_ram is not None and not host_ram > 0:
        raise WorkloadError(f"--host-ram must be a positive number of GB, got {host_ram:g}")
    if gpus < 1:
        raise WorkloadError(f"--gpus must be a positive integer, got {gpus}")
    if "," in hardware:
        raise WorkloadError("fxmeter fit takes one device: --hardware names one (e.g. rtx4090)")
    req = api.request(model, workload, hardware=hardware, batched_cfg=batched_cfg, **kw)
    if req.options.quantize_on_device and gpus > 1:
        raise WorkloadError("--quantize-on-device loads the whole pipeline on one GPU and quantizes it there: "
                            "it needs one GPU (--gpus 1)")
    inputs = api.stage_inputs(req)
    m = req.model
    # --quantize-on-device describes one setup (every component on the GPU, then quantize_): no offload policy
    names = ("none",) if req.options.quantize_on_device else policies_for(m.adapter.extra_policies)
    est = estimate(inputs, req.options, steps=req.workload.steps, passes_per_step=m.passes_per_step(req.workload),
                   nodes=False, modules=False, offload_seq=m.adapter.offload_seq, policies=names)
    hw = req.devices[0]
    pairs = [(p, False) for p in names] + ([("wan", True)] if "wan" in names else [])
    weights = {c: w.weight_bytes for c, w in est.component_weights.items()}
    prober = Prober(m, inputs, weights, pairs, device_bytes=hw.memory_bytes, compute_capability=hw.compute_capability,
                    host_ram=None if host_ram is None else int(host_ram * 1e9), gpus=gpus,
                    tiling=req.options.vae_tiling, batched_cfg=batched_cfg, expandable_segments=expandable_segments,
                    preload=loaded_before_quantize(est) if req.options.quantize_on_device else None)
    t1 = time.perf_counter()
    rows = search(prober, req.workload, video=req.workload.frames > 1)
    best = cheapest(rows)
    return req, prober, rows, best, time.perf_counter() - t1


COMMANDS = (fit,)
