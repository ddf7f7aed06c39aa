"""``fxmeter train``: one fine-tuning step (LoRA or full) -> training.json + summary.md, and the fit answer."""

from __future__ import annotations

from typing import Any

import click

from fxmeter.cli.options import progress_line


def _positive(name: str, v: int | None, *, zero: bool = False) -> None:
    from fxmeter.estimate.training import TrainingError

    if v is not None and (v < 0 or (v == 0 and not zero)):
        raise TrainingError(f"--{name} must be a {'non-negative' if zero else 'positive'} integer, got {v}")


def summary_md(doc: dict[str, Any]) -> str:
    """summary.md of a training document."""
    s = doc["setup"]
    c = doc["costs"]
    t = doc["traced"]
    what = f"LoRA rank {s['lora_rank']}" if s["method"] == "lora" else "full fine-tuning"
    wl = t["workload"]
    lines = [f"# {t['model']}: training step ({what})", "",
             f"One sample: {wl['frames']} frames x {wl['height']} x {wl['width']}, batch {s['batch']}, "
             f"gradient accumulation {s['grad_accum']}, optimizer {s['optimizer']}, gradient checkpointing "
             f"{s['checkpointing']}, {s['blocks_to_swap']} blocks swapped, base {s['base_precision']}, "
             f"{s['gpus']} GPU(s){' FSDP' if s['fsdp'] else ''}; attention kernel {t['attention']}.", "",
             "| per sample | tensor-core FLOPs | CUDA-core FLOPs |", "|---|---:|---:|"]
    for k in ("forward", "backward", "total"):
        p = c["per_sample"][k]
        lines.append(f"| {k} | {p['tensor_core_flops']:,} | {p['cuda_core_flops']:,} |")
    lines += ["", f"Parameters {c['parameters']:,}, trainable {c['trainable_parameters']:,}; activations saved for "
              f"the backward {c['saved_activation_bytes'] / 2**30:.2f} GiB per sample (no checkpointing).", ""]
    lines += ["| device | peak GiB (allocated) | fits | predicted s/step | bound s/step |", "|---|---:|---|---:|---:|"]
    for r in doc["devices"]:
        m = r["memory"]
        star = "" if r["fits"] else "*"
        lines.append(f"| {r['label']} | {m['peak_gib']:,.2f} | {'yes' if r['fits'] else 'no'} | "
                     f"{r['seconds_per_step']['predicted_s']:,.3f}{star} | {r['seconds_per_step']['bound_s']:,.3f}{star} |")
    if not all(r["fits"] for r in doc["devices"]):
        lines += ["", "\\* does not fit in the GPU's memory: the seconds assume it did; no such run is possible as configured "
                  "(`fxmeter train ... --fit` searches the fastest setup that fits)."]
    r0 = doc["devices"][0]
    lines += ["", "Memory per GPU (allocated bytes):", ""]
    lines += [f"- {k}: {v / 2**30:.3f} GiB" for k, v in r0["memory"]["parts"].items()]
    lines += [f"- peak at: {r0['memory']['peak_at']}"]
    for r in doc["devices"]:
        if "epoch" in r:
            e = r["epoch"]
            cost = f", ${e['dollars']:,.2f}" if e["dollars"] is not None else ""
            lines.append(f"- epoch on {r['label']}: {e['clips']:,} clips, {e['steps']:,} steps, "
                         f"{e['seconds'] / 3600:.2f} h, {e['gpu_hours']:.2f} GPU-hours{cost}")
    for f in doc.get("fit", []):
        lines += ["", f"Fit on {f['device']}: {f['answer']}"]
    if c["unmodeled_ops"]:
        lines += ["", "Unmodeled ops: " + ", ".join(f"{k} x{v}" for k, v in c["unmodeled_ops"].items())]
    lines += ["", "Optimizer states: " + doc["optimizer_source"], ""]
    return "\n".join(lines)


@click.command("train")
@click.argument("model", required=False)
@click.option("--config", "config", type=click.Path(), default=None, help="Local diffusers config.json or model folder.")
@click.option("--workload", "-w", default=None, help="Preset for the sample's resolution and frames; default: the model's.")
@click.option("--height", type=int, default=None, help="Training sample height in pixels.")
@click.option("--width", type=int, default=None, help="Training sample width in pixels.")
@click.option("--frames", type=int, default=None, help="Training sample frames.")
@click.option("--batch", type=int, default=1, show_default=True, help="Samples per micro-batch per GPU.")
@click.option("--grad-accum", type=int, default=1, show_default=True, help="Micro-batches per optimizer step.")
@click.option("--lora-rank", type=int, default=None, help="Train LoRA adapters of this rank (default 16 unless --full).")
@click.option("--lora-targets", default="blocks", show_default=True,
              help="Comma-separated: 'blocks' (every Linear of the repeated blocks) or regexes over Linear module paths.")
@click.option("--full", is_flag=True, help="Full fine-tuning: every parameter trainable.")
@click.option("--optimizer", default="adamw", show_default=True, help="adamw, adamw8bit, adafactor, prodigy or sgd.")
@click.option("--gradient-checkpointing", "checkpointing", default="none", show_default=True, help="none, full or selective.")
@click.option("--checkpoint-blocks", type=int, default=None, help="With selective: blocks checkpointed (default half).")
@click.option("--blocks-to-swap", type=int, default=0, show_default=True, help="Blocks whose weights live in host RAM.")
@click.option("--base-precision", default="bf16", show_default=True, help="Frozen base weights: bf16 or fp8 (LoRA).")
@click.option("--fp8-keep", default=None,
              help="With an fp8 base: comma-separated substrings of the block Linears' paths kept in bf16 (your "
                   "trainer's fp8 exclude list, e.g. musubi-tuner's FP8_OPTIMIZATION_EXCLUDE_KEYS; default: "
                   "fxmeter.estimate.training.FP8_KEEP, norm and modulation).")
@click.option("--param-dtype", default="fp32", show_default=True, help="Trainable parameters and gradients: fp32 or bf16.")
@click.option("--encoders", default="cached", show_default=True,
              help="cached (latents and text embeddings precomputed, as musubi-tuner requires) or resident (the text "
                   "encoders and the VAE stay on the GPU).")
@click.option("--gpus", type=int, default=1, show_default=True, help="Data-parallel GPUs.")
@click.option("--fsdp", is_flag=True, help="Shard parameters, gradients and optimizer states (ZeRO-3).")
@click.option("--attention", default="flash", show_default=True,
              help="flash (what a GPU runs) or math (torch's meta dispatch).")
@click.option("--hardware", default="h100", show_default=True, help="Device(s), comma-separated.")
@click.option("--dataset-clips", type=int, default=None, help="Clips in the dataset: steps, hours and $ per epoch.")
@click.option("--steps", type=int, default=None, help="Optimizer steps of the run to price (hours and $).")
@click.option("--price-per-hour", default=None, help="USD per GPU-hour: 2.49 or h100=2.49,a100=1.29.")
@click.option("--fit", "fit_flag", is_flag=True, help="Also search the cheapest setup that fits each device.")
@click.option("--run-id", default=None, help="Run id ([A-Za-z0-9._-], at most 128).")
@click.option("--output-root", default="tmp/profile-output", show_default=True, type=click.Path(), help="Where run folders go.")
@click.option("--force", is_flag=True, help="Overwrite an existing training.json of the same run id.")
@click.option("--no-cache", is_flag=True, help="Trace the step now; read and store nothing in the cache.")
@click.option("--json", "as_json", is_flag=True, help="Print training.json to stdout.")
def train(model: str | None, config: str | None, workload: str | None, height: int | None, width: int | None,
          frames: int | None, batch: int, grad_accum: int, lora_rank: int | None, lora_targets: str, full: bool,
          optimizer: str, checkpointing: str, checkpoint_blocks: int | None, blocks_to_swap: int,
          base_precision: str, fp8_keep: str | None, param_dtype: str, encoders: str, gpus: int, fsdp: bool, attention: str, hardware: str,
          dataset_clips: int | None, steps: int | None, price_per_hour: str | None, fit_flag: bool, run_id: str | None,
          output_root: str, force: bool, no_cache: bool, as_json: bool) -> None:
    """Cost one fine-tuning step of MODEL (forward + backward traced on meta): memory per GPU, seconds per step."""
    from fxmeter.api import default_run_id
    from fxmeter.base.fileio import dumps, publish
    from fxmeter.estimate import hardware as hwmod
    from fxmeter.estimate.train_plan import (
        TRAINING_SCHEMA_VERSION,
        costs_dict,
        encoder_bytes,
        evaluate,
        fit,
        trace_step,
    )
    from fxmeter.estimate.training import FP8_KEEP, OPTIMIZERS, TrainingError, TrainSetup
    from fxmeter.model.registry import resolve_model
    from fxmeter.model.training import ATTENTION
    from fxmeter.report.document import check_output_root, check_run_id
    from fxmeter.report.files import check_writable

    if full and lora_rank is not None:
        raise TrainingError("--full and --lora-rank exclude each other")
    rank = 0 if full else (16 if lora_rank is None else lora_rank)
    if not full and rank < 1:
        raise TrainingError(f"--lora-rank must be a positive integer, got {rank}")
    for name, v in (("batch", batch), ("grad-accum", grad_accum), ("gpus", gpus), ("height", height),
                    ("width", width), ("frames", frames), ("dataset-clips", dataset_clips), ("steps", steps)):
        _positive(name, v)
    _positive("blocks-to-swap", blocks_to_swap, zero=True)
    _positive("checkpoint-blocks", checkpoint_blocks, zero=True)
    if attention not in ATTENTION:
        raise TrainingError(f"unknown --attention {attention!r} (known: {', '.join(ATTENTION)})")
    if encoders not in ("cached", "resident"):
        raise TrainingError(f"unknown --encoders {encoders!r} (cached or resident)")
    targets = tuple(t.strip() for t in lora_targets.split(",") if t.strip())
    if not targets:
        raise TrainingError("--lora-targets is empty")
    setup = TrainSetup(method="full" if full else "lora", lora_rank=rank, lora_targets=targets, optimizer=optimizer,
                       checkpointing=checkpointing, checkpoint_blocks=checkpoint_blocks, blocks_to_swap=blocks_to_swap,
                       base_precision=base_precision, fp8_keep=FP8_KEEP if fp8_keep is None else tuple(k.strip() for k in fp8_keep.split(",") if k.strip()),
                       param_dtype=param_dtype, gpus=gpus, fsdp=fsdp, batch=batch,
                       grad_accum=grad_accum, attention=attention, encoders_cached=encoders == "cached")
    m = resolve_model(model, config)
    comp = m.component("transformer")
    n_blocks = sum(int(comp.config.get(k, 0) or 0) for k in comp.adapter.repeated.values())
    setup.check(n_blocks)  # every bad option before minutes of tracing
    if full and base_precision == "fp8":
        raise TrainingError("--base-precision fp8 needs LoRA: full fine-tuning trains the base weights")
    devices = hwmod.get_many(hardware)
    prices = hwmod.parse_prices(price_per_hour, devices) if price_per_hour is not None else {}
    rid = check_run_id(default_run_id() if run_id is None else run_id)
    check_writable(output_root)
    out = check_output_root(output_root) / rid / "training" / m.slug
    if (out / "training.json").exists() and not force:
        from fxmeter.errors import OutputExistsError

        raise OutputExistsError(f"{out / 'training.json'} exists; pass --force or choose another --run-id")
    costs, traced = trace_step(model, config=config, workload=workload, height=height, width=width, frames=frames,
                               lora_rank=rank, lora_targets=targets, attention=attention, progress=progress_line,
                               cache=not no_cache)
    enc = {} if encoders == "cached" else encoder_bytes(model, config, workload)
    doc: dict[str, Any] = {
        "schema_version": TRAINING_SCHEMA_VERSION,
        "traced": traced,
        "setup": setup.to_dict(),
        "costs": costs_dict(costs),
        "devices": evaluate(setup, costs, devices, clips=dataset_clips, prices=prices, steps=steps,
                            encoder_total=sum(enc.values())),
        "encoders": {"mode": encoders, "weight_bytes": enc},
        "optimizer_source": OPTIMIZERS[optimizer][1],
        "labels": {"memory": "allocated (PyTorch caching-allocator reserve not modeled)",
                   "predicted_s": "kernel model (fxmeter/data/kernels.json)",
                   "bound_s": "roofline at 100% of every peak"},
    }
    if fit_flag:
        doc["fit"] = [fit(setup, costs, hw, sum(enc.values())) for hw in devices]
    paths = publish(out, {"training.json": dumps(doc), "summary.md": summary_md(doc).encode()}, claim="training.json",
                    force=force)
    if as_json:
        click.echo(dumps(doc).decode())
        return
    what = f"LoRA rank {rank}" if rank else "full fine-tuning"
    click.echo(f"{m.id} training step ({what}), per sample: "
               f"{costs.total.tensor_core_flops:,} tensor-core FLOPs (forward {costs.forward.tensor_core_flops:,})")
    for r in doc["devices"]:
        mem = r["memory"]
        line = (f"  {r['label']}: peak {mem['peak_gib']:,.2f} GiB allocated ({'fits' if r['fits'] else 'does NOT fit'}), "
                f"predicted {r['seconds_per_step']['predicted_s']:.3f} s/step, bound {r['seconds_per_step']['bound_s']:.3f} s"
                + ("" if r["fits"] else " (as if it fit: no such run is possible as configured)"))
        if "epoch" in r:
            e = r["epoch"]
            line += f"; epoch {e['steps']:,} steps, {e['gpu_hours']:.2f} GPU-h"
            if e["dollars"] is not None:
                line += f", ${e['dollars']:,.2f}"
        if "run" in r:
            run = r["run"]
            line += f"; {run['steps']:,} steps {run['seconds'] / 3600:.2f} h, {run['gpu_hours']:.2f} GPU-h"
            if run["dollars"] is not None:
                line += f", ${run['dollars']:,.2f}"
        click.echo(line)
    for f in doc.get("fit", []):
        click.echo(f"  fit on {f['device']}: {f['answer']}")
    if not fit_flag and not all(r["fits"] for r in doc["devices"]):
        click.echo("  add --fit to search the fastest setup that fits (optimizer, gradient checkpointing, an fp8 base, "
                   "blocks to swap)")
    for p in paths:
        click.echo(f"wrote {p}")


@click.command("train-validate")
@click.option("--data", default=None, type=click.Path(), help="A training measurements file like fxmeter/data/published-training.json.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def train_validate(data: str | None, as_json: bool) -> None:
    """Predict every published trainer measurement fxmeter train can represent and print the errors."""
    from fxmeter.base.fileio import dumps
    from fxmeter.validate_training import render, validate

    res = validate(data, progress=progress_line)  # every row read as a training row (fxmeter validate routes a mix)
    click.echo(dumps(res).decode() if as_json else render(res))


COMMANDS = (train, train_validate)
