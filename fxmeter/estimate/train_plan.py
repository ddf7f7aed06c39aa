"""A training request -> the ``training`` document: the traced step, memory and seconds per device, the fit.

:func:`plan` resolves the model and the workload (one training sample: frames x height x width at batch
1, scaled by ``--batch`` afterwards), traces the forward + backward graphs once
(:func:`fxmeter.model.training.capture_training`), and evaluates every setup from the same costs:
the requested one on each device, and for ``--fit`` the cheapest setup of a small search space that
fits a device's memory.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from fxmeter.estimate import hardware as hwmod
from fxmeter.estimate.training import (
    OPTIMIZERS,
    GiB,
    StepCosts,
    TrainingError,
    TrainSetup,
    epoch,
    memory,
    step_costs,
    step_time,
)

TRAINING_SCHEMA_VERSION = 1

#: the search space of ``fit``: cheapest (predicted seconds per step) setup whose peak fits the device
FIT_OPTIMIZERS = ("adamw", "adamw8bit", "adafactor")
FIT_CHECKPOINTING = ("none", "full")
FIT_PRECISIONS = ("bf16", "fp8")


def trace_step(model_id: str | None, *, config: str | None = None, workload: str | None = None,
               height: int | None = None, width: int | None = None, frames: int | None = None,
               text_len: int | None = None, lora_rank: int = 0, lora_targets: tuple[str, ...] = ("blocks",),
               attention: str = "flash", progress: Callable[[str], None] | None = None,
               cache: bool = True) -> tuple[StepCosts, dict[str, Any]]:
    """The model's training step at one sample of the workload, traced or read from the user cache
    (:mod:`fxmeter.cost.training_store`; ``cache=False``: traced, nothing read or written); (costs, what was traced)."""
    from fxmeter.cost import training_store
    from fxmeter.model.registry import resolve_model
    from fxmeter.model.workload import resolve, validate

    m = resolve_model(model_id, config)
    over = {k: v for k, v in (("height", height), ("width", width), ("frames", frames), ("text_len", text_len))
            if v is not None}
    wl = resolve(workload, m.default_workload, **over)
    wl = replace(wl, batch=1)
    validate(wl)
    geo = m.geometry(wl)
    plans = [p for p in m.stages(wl, denoise_only=True) if p.component == "transformer"]
    if not plans:
        raise TrainingError(f"{m.id} has no transformer stage to train")
    dims = m.stage_dims(plans[0], geo)
    comp = m.component("transformer")
    cfg = dict(comp.config)
    graphs = training_store.get(comp, "bfloat16", dims, lora_rank=lora_rank, lora_targets=lora_targets,
                                attention=attention, cache=cache, progress=progress)
    blocks = {lst: int(cfg[key]) for lst, key in comp.adapter.repeated.items()
              if isinstance(cfg.get(key), int) and cfg[key] > 1}
    costs = step_costs(graphs, blocks)
    traced = {"model": m.id, "class": cfg.get("_class_name"), "workload": wl.to_dict(), "dims": dims,
              "tokens": geo.tokens if hasattr(geo, "tokens") else None, "attention": attention,
              "graphs": {k: {"forward_nodes": len(g.forward), "backward_nodes": len(g.backward),
                             "blocks": g.blocks} for k, g in graphs.items()}}
    return costs, traced


def encoder_bytes(model_id: str | None, config: str | None = None, workload: str | None = None) -> dict[str, int]:
    """Weight bytes of the pipeline's other stages (text encoders, image encoder, VAE), built on meta in the
    dtype the pipeline runs them: what stays on the GPU when they are resident instead of cached."""
    from fxmeter.model.capture import build_model
    from fxmeter.model.registry import resolve_model
    from fxmeter.model.workload import resolve

    m = resolve_model(model_id, config)
    wl = resolve(workload, m.default_workload)
    out: dict[str, int] = {}
    for plan in m.stages(wl):
        if plan.component == "transformer" or plan.component in out:
            continue
        comp = m.stage_component(plan)
        module = comp.adapter.build_module(dict(comp.config), plan.dtype or "bfloat16", build_model)
        if module is None:
            module = build_model(dict(comp.config), plan.dtype or "bfloat16")
        seen: set[int] = set()
        total = 0
        for p in module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel() * p.element_size()
        out[plan.component] = int(total)
    return out


def costs_dict(c: StepCosts) -> dict[str, Any]:
    def cost(x: Any) -> dict[str, int]:
        return {"tensor_core_flops": int(x.tensor_core_flops), "cuda_core_flops": int(x.cuda_core_flops),
                "bytes_read": int(x.bytes_read), "bytes_written": int(x.bytes_written)}

    return {
        "per_sample": {"forward": cost(c.forward), "backward": cost(c.backward), "total": cost(c.total)},
        "blocks": dict(c.blocks),
        "saved_activation_bytes": int(c.saved_bytes),
        "block_saved_activation_bytes": {k: int(v) for k, v in c.block_saved_bytes.items()},
        "block_input_bytes": {k: int(v) for k, v in c.block_input_bytes.items()},
        "backward_transient_bytes": int(c.transient_bytes),
        "parameters": int(c.parameters),
        "trainable_parameters": int(c.trainable_parameters),
        "lora_layers": int(c.lora_layers),
        "unmodeled_ops": dict(c.unmodeled),
    }


def evaluate(setup: TrainSetup, c: StepCosts, devices: Sequence[hwmod.Hardware], *, clips: int | None = None,
             prices: dict[str, float] | None = None, steps: int | None = None,
             encoder_total: int = 0) -> list[dict[str, Any]]:
    """The setup on each device: memory per GPU, seconds per step, epoch."""
    setup.check(sum(c.blocks.values()))
    mem = memory(setup, c, encoder_total)
    rows = []
    for hw in devices:
        t = step_time(setup, c, hw)
        row: dict[str, Any] = {"device": hw.name, "label": hw.label, "memory_bytes": hw.memory_bytes,
                               "memory": mem.to_dict(), "fits": mem.peak_bytes <= hw.memory_bytes,
                               "seconds_per_step": t.to_dict()}
        if clips is not None:
            price = (prices or {}).get(hw.name)
            row["epoch"] = epoch(setup, t, clips, price).to_dict()
        if steps is not None:  # a run of --steps optimizer steps
            price = (prices or {}).get(hw.name)
            sec = steps * t.predicted_s
            gh = sec * setup.gpus / 3600
            row["run"] = {"steps": steps, "seconds": sec, "gpu_hours": gh, "dollars": None if price is None else gh * price}
        rows.append(row)
    return rows


def fit(base: TrainSetup, c: StepCosts, hw: hwmod.Hardware, encoder_total: int = 0) -> dict[str, Any]:
    """The setup of the search space with the fewest predicted seconds per step whose peak fits ``hw`` (within 1%
    of the fewest, the one that moves the fewest knobs away from ``base``)."""
    n = sum(c.blocks.values())
    swaps = sorted({0, *range(0, max(n - 1, 1), max(n // 8, 1))} | ({n - 2} if n > 2 else set()))
    fitting: list[tuple[float, TrainSetup, int]] = []
    tried = 0
    for opt, ck, prec, swap in itertools.product(FIT_OPTIMIZERS, FIT_CHECKPOINTING, FIT_PRECISIONS, swaps):
        s = replace(base, optimizer=opt, checkpointing=ck, base_precision=prec, blocks_to_swap=swap, fsdp=False)
        if s.method == "full" and prec == "fp8":
            continue  # an fp8 base is frozen: LoRA only
        tried += 1
        mem = memory(s, c, encoder_total)
        if mem.peak_bytes > hw.memory_bytes:
            continue
        fitting.append((step_time(s, c, hw).predicted_s, s, mem.peak_bytes))

    def changes(s: TrainSetup) -> int:  # knobs moved away from what was asked for
        return sum(getattr(s, k) != getattr(base, k) for k in ("optimizer", "checkpointing", "base_precision",
                                                                  "blocks_to_swap"))

    # the fastest, where "as fast" is within 1% (a LoRA's optimizer step is microseconds whatever the optimizer):
    # among those, the one closest to the asked-for setup, then the faster
    fastest = min((f[0] for f in fitting), default=None)
    best = None if fastest is None else min((f for f in fitting if f[0] <= fastest * 1.01),
                                            key=lambda f: (changes(f[1]), f[0]))
    if best is None:
        return {"device": hw.name, "fits": False, "tried": tried,
                "answer": f"no setup of the search space fits {hw.label} ({hw.memory_bytes / GiB:.0f} GiB)"}
    t, s, peak = best
    return {"device": hw.name, "fits": True, "tried": tried, "setup": s.to_dict(), "predicted_s_per_step": t,
            "peak_bytes": peak,
            "answer": (f"{s.optimizer}, gradient checkpointing {s.checkpointing}, base {s.base_precision}, "
                       f"{s.blocks_to_swap} blocks swapped: {peak / GiB:.1f} GiB of {hw.memory_bytes / GiB:.0f} GiB, "
                       f"{t:.2f} s per step (predicted)")}


def optimizer_sources() -> dict[str, str]:
    return {k: v[1] for k, v in OPTIMIZERS.items()}
