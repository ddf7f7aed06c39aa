"""Hardware truth on one GPU: fxmeter's CUDA verify, allocator peaks, forward latencies and kernel tables.

One run (about 8 minutes on an H100/H200) writes everything to one folder (``$OUT`` if set, else
``--out``): ``gpu_truth.json`` (every measurement, flushed after each step), ``log.txt``,
``predictions.json`` + ``predict_log.txt`` (fxmeter's own numbers for the same device, computed at run
time in a CPU-only subprocess while the GPU is measured) and one ``profile_<case>.txt`` per profiled
forward: at most 8 files.  Steps run in order of value, each wrapped so that a failure is recorded and
the rest still run; a step that would not fit the ``--budget-s`` left is skipped (recorded as such).

    verify_wan13_480p, verify_wan14_720p      fxmeter verify --device cuda (per module, end to end, SDPA backend)
    memory_wan13_480p, memory_wan14            max_memory_allocated/reserved around one forward (480p, 720p)
    latency_wan13_480p, profile_wan13_480p     CUDA events, median of 5; torch.profiler per kernel class
    latency_wan14_720p, profile_wan14_720p
    vae_decode_480p, umt5_encode               memory and latency of the other pipeline stages
    kernels                                    GEMM / SDPA at the graphs' shapes, attention tables, bandwidth,
                                               launch and host dispatch, in kernels.json's form
    compile_wan13_480p, compile_wan14_720p     torch.compile'd forwards (optional: budget permitting)
    predictions                                join with fxmeter's predictions, print the comparison

``--dry-run`` runs every step on the CPU at toy sizes (tiny Wan/UMT5/VAE/Flux configs, perf_counter
timers) in well under a minute, with the same files and schema (tests/test_gpu_truth.py).
``--ingest RESULT_DIR`` writes ``examples/gpu-truth/<device>/README.md`` (measured vs fxmeter, ratio per
row) beside a copy of the raw files and prints the kernels.json entries to merge (``--kernels-out PATH``
writes the merged, validated file).

The device machine (no network, Python 3.12, torch 2.11+cu130, transformers, accelerate, numpy; no
diffusers, orjson, jsonschema, jsonschema-rs or platformdirs) gets the missing packages as wheels.
Once, here, in the repository root (``/.whl/`` is in .gitignore; 13 MiB)::

    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \\
      -d .whl diffusers==0.42.1 orjson==3.13.0 jsonschema==4.26.0 jsonschema-rs==0.61.2 platformdirs==4.14.9 \\
      referencing==0.37.0 rpds-py==2026.9.1 jsonschema-specifications==2025.9.1

Then one device ``run`` (carry ``[".whl"]``, timeout_s 600; fxmeter travels as the working tree and is
imported from the repository root, no ``pip install``)::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site
      .whl/*.whl && export PYTHONPATH=$PWD:/tmp/site PYTHONUNBUFFERED=1 || exit; nvidia-smi;
      timeout 570 python3 benchmarks/gpu_truth.py --budget-s 480

A rerun of failed steps only: ``... gpu_truth.py --budget-s 240 --only verify_wan14_720p,kernels``.

Afterwards, here: ``python benchmarks/gpu_truth.py --ingest <files_at>`` (examples/gpu-truth/README.md).

Why one long module: the script is carried to a machine with no network as one file that a session runs
once; its steps, the dry run that tests them and the ingest that reads their output share one schema.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCHEMA = 1
TOOL = "benchmarks/gpu_truth.py"
RESULT = "gpu_truth.json"
PREDICTIONS = "predictions.json"
GIB = 2**30


def bootstrap() -> None:
    """Import fxmeter from the repository root; map ``fxmeter.rules`` to ``rules/`` where fxmeter is not installed
    (pip install maps it; the device machine runs the working tree as it is)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import fxmeter

    try:
        import fxmeter.rules  # noqa: F401
    except ModuleNotFoundError:
        init = REPO / "rules" / "__init__.py"
        spec = importlib.util.spec_from_file_location("fxmeter.rules", init, submodule_search_locations=[str(init.parent)])
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules["fxmeter.rules"] = mod
        spec.loader.exec_module(mod)
        fxmeter.rules = mod  # type: ignore[attr-defined]


# -- what is measured: cases and their toy twins ---------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One transformer at one workload: a registered model, or (dry run) a tiny config folder."""

    key: str
    model: str | None
    workload: str
    config: str | None = None
    overrides: dict[str, int] = field(default_factory=dict)

    def kw(self) -> dict[str, Any]:
        return {"config": self.config, **self.overrides}


REAL = {
    "wan13_480p": Case("wan13_480p", "wan2.1-t2v-1.3b", "480p"),
    "wan14_480p": Case("wan14_480p", "wan2.1-t2v-14b", "480p"),
    "wan14_720p": Case("wan14_720p", "wan2.1-t2v-14b", "720p"),
    "flux_1024": Case("flux_1024", "flux.1-dev", "flux-1024"),
}
TINY_WAN: dict[str, Any] = {  # tests/conftest.py TINY_WAN
    "_class_name": "WanTransformer3DModel", "patch_size": [1, 2, 2], "num_attention_heads": 2, "attention_head_dim": 12,
    "in_channels": 4, "out_channels": 4, "text_dim": 16, "freq_dim": 16, "ffn_dim": 32, "num_layers": 3,
    "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "image_dim": None,
    "added_kv_proj_dim": None, "rope_max_seq_len": 64,
}
TINY_UMT5: dict[str, Any] = {  # tests/test_pipeline_cli.py
    "_class_name": "UMT5EncoderModel", "architectures": ["UMT5EncoderModel"], "model_type": "umt5", "d_model": 16,
    "d_kv": 4, "d_ff": 32, "num_layers": 2, "num_heads": 4, "vocab_size": 64, "feed_forward_proj": "gated-gelu",
    "is_gated_act": True, "relative_attention_num_buckets": 8, "relative_attention_max_distance": 16,
}
TINY_VAE: dict[str, Any] = {
    "_class_name": "AutoencoderKLWan", "base_dim": 8, "z_dim": 4, "dim_mult": [1, 2, 2, 2], "num_res_blocks": 1,
    "attn_scales": [], "temperal_downsample": [False, True, True], "dropout": 0.0,
    "latents_mean": [0.0] * 4, "latents_std": [1.0] * 4,
}
TINY_FLUX: dict[str, Any] = {  # tests/test_models.py
    "_class_name": "FluxTransformer2DModel", "patch_size": 1, "in_channels": 16, "num_layers": 1,
    "num_single_layers": 2, "attention_head_dim": 16, "num_attention_heads": 2, "joint_attention_dim": 32,
    "pooled_projection_dim": 8, "guidance_embeds": True, "axes_dims_rope": [4, 6, 6],
}
WAN_INDEX = {"_class_name": "WanPipeline", "transformer": ["diffusers", "WanTransformer3DModel"],
             "text_encoder": ["transformers", "UMT5EncoderModel"], "vae": ["diffusers", "AutoencoderKLWan"],
             "tokenizer": ["transformers", "T5TokenizerFast"]}


def tiny_cases(root: Path) -> dict[str, Case]:
    """The dry run's cases: one tiny pipeline folder (a 3-block Wan, UMT5, VAE) at two small sizes (one trace
    serves the "1.3B" and the "14B" cases), and a tiny Flux."""
    for comp, cfg in (("transformer", TINY_WAN), ("text_encoder", TINY_UMT5), ("vae", TINY_VAE)):
        (root / "wan" / comp).mkdir(parents=True, exist_ok=True)
        (root / "wan" / comp / "config.json").write_text(json.dumps(cfg))
    (root / "wan" / "model_index.json").write_text(json.dumps(WAN_INDEX))
    (root / "flux").mkdir(parents=True, exist_ok=True)
    (root / "flux" / "config.json").write_text(json.dumps(TINY_FLUX))
    small, larger = {"height": 64, "width": 64, "frames": 1}, {"height": 96, "width": 96, "frames": 5}
    return {
        "wan13_480p": Case("wan13_480p", None, "ci-tiny", str(root / "wan"), small),
        "wan14_480p": Case("wan14_480p", None, "ci-tiny", str(root / "wan"), small),
        "wan14_720p": Case("wan14_720p", None, "ci-tiny", str(root / "wan"), larger),
        "flux_1024": Case("flux_1024", None, "flux-1024", str(root / "flux" / "config.json")),
    }


def fx_hardware(gpu_name: str, memory_bytes: int = 0) -> str | None:
    """fxmeter's hardware.json name of a GPU as torch names it (None: not in the table)."""
    n = gpu_name.lower().replace(" ", "")
    for needle, name in (("h200", "h200"), ("h800", "h800"), ("h20", "h20"), ("b200", "b200"), ("l40s", "l40s"),
                         ("rtx5090", "rtx5090"), ("5090", "rtx5090"), ("4090", "rtx4090"), ("3090", "rtx3090"),
                         ("mi300x", "mi300x")):
        if needle in n:
            return name
    if "h100" in n:
        return "h100-pcie" if "pcie" in n else "h100"
    if "a100" in n:
        return "a100" if memory_bytes > 50 * GIB or "80gb" in n else "a100-40gb"
    if "a800" in n:
        return "a800"
    if "l4" in n:
        return "l4"
    return None


# -- the run's context ---------------------------------------------------------------------------------------------
class StepTimeout(Exception):
    """A step ran past its share of the budget."""


class Ctx:
    """Output folder, budget, the result document (flushed after every step) and the model in hand."""

    def __init__(self, args: argparse.Namespace, out: Path) -> None:
        import torch

        self.torch = torch
        self.args = args
        self.dry = bool(args.dry_run)
        self.out = out
        self.budget = float(args.budget_s)
        self.t0 = time.monotonic()
        self.tmp = Path(tempfile.mkdtemp(prefix="gpu_truth-"))
        self.cuda = not self.dry and torch.cuda.is_available()
        self.device = "cuda" if self.cuda else "cpu"
        self.cases = tiny_cases(self.tmp / "tiny") if self.dry else dict(REAL)
        self.gpu_name = torch.cuda.get_device_name() if self.cuda else "cpu (dry run)"
        mem = torch.cuda.get_device_properties(0).total_memory if self.cuda else 0
        self.hardware: str | None = args.hardware or (fx_hardware(self.gpu_name, mem) if self.cuda else "h100")
        self.slug = (self.hardware or "".join(c if c.isalnum() else "-" for c in self.gpu_name.lower()).strip("-")) \
            if not self.dry else "dry-run-cpu"
        self.date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        self.doc: dict[str, Any] = {
            "schema": SCHEMA, "tool": TOOL, "dry_run": self.dry, "started": datetime.now(timezone.utc).isoformat(),
            "budget_s": self.budget, "argv": sys.argv[1:], "device": {}, "steps": {},
        }
        self._log = (out / "log.txt").open("a", encoding="utf-8")
        self.held: tuple[str, Any, int | None] | None = None  # (key, model, weight bytes allocated; None on the cpu)
        self.predict_proc: subprocess.Popen[bytes] | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def remaining(self) -> float:
        return self.budget - self.elapsed()

    def log(self, msg: str) -> None:
        line = f"[{self.elapsed():7.1f}s] {msg}"
        print(line, flush=True)
        self._log.write(line + "\n")
        self._log.flush()

    def flush(self) -> None:
        self.doc["elapsed_s"] = round(self.elapsed(), 2)
        tmp = self.out / (RESULT + ".tmp")
        tmp.write_text(json.dumps(self.doc, indent=1, default=str))
        os.replace(tmp, self.out / RESULT)

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def free(self) -> None:
        gc.collect()
        if self.cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.empty_cache()

    def drop(self) -> None:
        self.held = None
        self.free()

    def hold(self, key: str, build: Callable[[], Any]) -> tuple[Any, int | None]:
        """The model ``key`` (built once, kept until another is asked for: one model on the device at a time)."""
        if self.held is not None and self.held[0] == key:
            return self.held[1], self.held[2]
        self.drop()
        before = self.allocated()
        model = build()
        self.sync()
        self.held = (key, model, self.allocated() - before if self.cuda else None)
        return model, self.held[2]

    def allocated(self) -> int:
        return int(self.torch.cuda.memory_allocated()) if self.cuda else 0


def timed(ctx: Ctx, fn: Callable[[], Any], *, warmup: int = 1, reps: int = 5, inner: int = 1,
          queued: bool = False) -> dict[str, Any]:
    """Median seconds per call: CUDA events (``queued``: the calls enqueued behind a sleep kernel, so they run
    back to back on the GPU, host dispatch hidden), or perf_counter on the CPU."""
    torch = ctx.torch
    for _ in range(warmup):
        fn()
    ctx.sync()
    times = []
    for _ in range(reps):
        if ctx.cuda:
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            if queued:
                torch.cuda._sleep(min(int(inner * 100_000), 200_000_000))  # ~50 us per queued call at 2 GHz
            s.record()
            for _ in range(inner):
                fn()
            e.record()
            e.synchronize()
            times.append(s.elapsed_time(e) / 1e3 / inner)
        else:
            t = time.perf_counter()
            for _ in range(inner):
                fn()
            times.append((time.perf_counter() - t) / inner)
    return {"median_s": statistics.median(times), "min_s": min(times), "times_s": times, "warmup": warmup,
            "reps": reps, "inner": inner, "timer": ("cuda events" + (", queued" if queued else "")) if ctx.cuda
            else "perf_counter (cpu)"}


def kernel_timed(ctx: Ctx, fn: Callable[[], Any], target_s: float = 2e-3, reps: int = 5) -> dict[str, Any]:
    """A kernel microbenchmark: enough calls per timing to last ``target_s``, queued on the GPU."""
    fn()
    ctx.sync()
    t = time.perf_counter()
    fn()
    ctx.sync()
    one = max(time.perf_counter() - t, 1e-7)
    inner = max(1, min(200, int(target_s / one)))
    return timed(ctx, fn, warmup=1, reps=reps, inner=inner, queued=True)


def adaptive_reps(ctx: Ctx, first_s: float, want: int = 5) -> int:
    """5 timed calls, 3 when 5 would take over a quarter of the budget left (2 in a dry run: toy sizes)."""
    if ctx.dry:
        return 2
    return want if first_s * want < max(ctx.remaining(), 0) * 0.25 else 3


@contextlib.contextmanager
def alarm(seconds: float) -> Iterator[None]:
    """Raise :class:`StepTimeout` in the main thread after ``seconds`` (POSIX)."""
    if not hasattr(signal, "setitimer") or seconds <= 0:
        yield
        return

    def fire(signum: int, frame: Any) -> None:
        raise StepTimeout(f"step ran past its {seconds:.0f} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def tensor_bytes(x: Any) -> int:
    torch = sys.modules["torch"]
    if isinstance(x, torch.Tensor):
        return int(x.numel() * x.element_size())
    if isinstance(x, (list, tuple)):
        return sum(tensor_bytes(v) for v in x)
    if isinstance(x, dict):
        return sum(tensor_bytes(v) for v in x.values())
    return 0


# -- building the real modules with random weights -----------------------------------------------------------------
def transformer_parts(case: Case) -> tuple[Any, dict[str, int], str]:
    """(component, symbol values, dtype) of ``case``'s denoiser as fxmeter's verify builds it."""
    from fxmeter import api

    req = api.request(case.model, case.workload, stages="transformer", **case.kw())
    main = next(p for p in req.model.stages(req.workload) if p.denoiser)
    return req.model.stage_component(main), req.model.stage_dims(main, req.geometry), req.options.dtype


def stage_parts(case: Case, name: str) -> tuple[Any, dict[str, int], str]:
    """(component, symbol values, dtype) of a pipeline stage (``text_encoder``, ``vae``) of ``case``."""
    from fxmeter import api

    req = api.request(case.model, case.workload, **case.kw())
    plan = next(p for p in req.model.stages(req.workload) if p.name == name)
    return req.model.stage_component(plan), req.model.stage_dims(plan, req.geometry), plan.dtype or req.options.dtype


def build_transformer(ctx: Ctx, case: Case) -> tuple[Any, int | None]:
    from fxmeter.verify.reference import build_on_device

    comp, _, dtype = transformer_parts(case)
    return ctx.hold(f"{comp.config_sha256}:{dtype}", lambda: build_on_device(comp, dtype, ctx.device))


def transformer_inputs(ctx: Ctx, case: Case) -> dict[str, Any]:
    from fxmeter.verify.reference import device_inputs

    comp, dims, dtype = transformer_parts(case)
    return device_inputs(comp, dims, dtype, ctx.device)


def build_stage(ctx: Ctx, comp: Any, dtype: str) -> Any:
    """A stage module (the pipeline's call around the component) with random weights on the device."""
    torch = ctx.torch
    from fxmeter.model.capture import DTYPES
    from fxmeter.verify.reference import build_on_device

    adapter, config = comp.adapter, dict(comp.config)
    if getattr(adapter, "library", "diffusers") == "transformers":
        import transformers

        from fxmeter.model.adapters.stage import class_config, hf_dtype_policy

        cls = getattr(transformers, str(config["_class_name"]))
        cfg = cls.config_class(**class_config(config))
        cfg._attn_implementation = "sdpa"
        default = torch.get_default_dtype()
        torch.manual_seed(0)
        torch.set_default_dtype(DTYPES[dtype])
        try:
            with torch.device(ctx.device):
                model = cls(cfg)
        finally:
            torch.set_default_dtype(default)
        hf_dtype_policy(model, DTYPES[dtype])
        model = model.eval()
    else:
        model = build_on_device(comp, dtype, ctx.device)
    return adapter.wrap(model, config).eval()


def stage_inputs(ctx: Ctx, comp: Any, dims: dict[str, int], dtype: str) -> dict[str, Any]:
    """The stage's call inputs as real tensors: floats random normal, token ids random, masks ones."""
    torch = ctx.torch
    from fxmeter.model.capture import DTYPES

    config = dict(comp.config)
    meta = comp.adapter.inputs(config, dims, DTYPES[dtype])
    gen = torch.Generator().manual_seed(0)
    vocab = int(config.get("vocab_size") or 1000)
    out: dict[str, Any] = {}
    for k, v in meta.items():
        if not isinstance(v, torch.Tensor):
            out[k] = v
        elif v.is_floating_point():
            out[k] = torch.randn(v.shape, generator=gen).to(device=ctx.device, dtype=v.dtype)
        elif "mask" in k:
            out[k] = torch.ones(v.shape, dtype=v.dtype, device=ctx.device)
        else:
            out[k] = torch.randint(0, vocab, v.shape, generator=gen).to(device=ctx.device, dtype=v.dtype)
    return out


def memory_around(ctx: Ctx, call: Callable[[], Any]) -> dict[str, Any]:
    """The allocator's peaks around one call (weights and inputs, resident before it, counted in ``base``)."""
    torch = ctx.torch
    ctx.free()
    if not ctx.cuda:
        t = time.perf_counter()
        out = call()
        return {"seconds": time.perf_counter() - t, "output_bytes": tensor_bytes(out), "peak_allocated_bytes": None,
                "peak_reserved_bytes": None, "base_allocated_bytes": None, "base_reserved_bytes": None,
                "activation_allocated_bytes": None, "activation_reserved_bytes": None,
                "note": "cpu dry run: no allocator counters"}
    torch.cuda.reset_peak_memory_stats()
    base, base_res = torch.cuda.memory_allocated(), torch.cuda.memory_reserved()
    t = time.perf_counter()
    out = call()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    peak, peak_res = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()
    rec = {"seconds": seconds, "output_bytes": tensor_bytes(out), "peak_allocated_bytes": int(peak),
           "peak_reserved_bytes": int(peak_res), "base_allocated_bytes": int(base), "base_reserved_bytes": int(base_res),
           "activation_allocated_bytes": int(peak - base), "activation_reserved_bytes": int(peak_res - base_res)}
    del out
    return rec


# -- steps -----------------------------------------------------------------------------------------------------------
def step_device(ctx: Ctx, rec: dict[str, Any]) -> None:
    torch = ctx.torch
    import platform

    d: dict[str, Any] = {"gpu_name": ctx.gpu_name, "fxmeter_hardware": ctx.hardware, "slug": ctx.slug,
                         "torch": torch.__version__, "cuda": torch.version.cuda, "python": sys.version.split()[0],
                         "platform": platform.platform(), "cpu_count": os.cpu_count(), "dry_run": ctx.dry}
    if ctx.cuda:
        p = torch.cuda.get_device_properties(0)
        d.update(total_memory_bytes=int(p.total_memory), sm_count=int(p.multi_processor_count),
                 compute_capability=f"{p.major}.{p.minor}", l2_cache_bytes=getattr(p, "L2_cache_size", None),
                 cudnn=torch.backends.cudnn.version(),
                 allow_tf32={"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32},
                 sdp_enabled={"flash": torch.backends.cuda.flash_sdp_enabled(),
                              "mem_efficient": torch.backends.cuda.mem_efficient_sdp_enabled(),
                              "cudnn": torch.backends.cuda.cudnn_sdp_enabled(), "math": torch.backends.cuda.math_sdp_enabled()})
    try:
        q = "name,memory.total,driver_version,clocks.max.sm,clocks.max.mem,power.limit,pstate"
        smi = subprocess.run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
        d["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
        if smi.returncode == 0 and smi.stdout.strip():
            d["driver"] = smi.stdout.split(",")[2].strip()
    except (OSError, subprocess.SubprocessError) as e:
        d["nvidia_smi"] = f"not available: {e}"
    from importlib.metadata import PackageNotFoundError, version

    pk: dict[str, str | None] = {}
    for name in ("diffusers", "transformers", "accelerate", "triton", "numpy", "orjson", "jsonschema-rs", "sympy"):
        try:
            pk[name] = version(name)
        except PackageNotFoundError:
            pk[name] = None
    d["packages"] = pk
    d["env"] = {k: os.environ.get(k) for k in ("PYTORCH_CUDA_ALLOC_CONF", "CUDA_MODULE_LOADING", "CUBLAS_WORKSPACE_CONFIG")}
    import hashlib

    d["kernels_json_sha256"] = hashlib.sha256((REPO / "fxmeter" / "data" / "kernels.json").read_bytes()).hexdigest()
    ctx.doc["device"] = d
    rec.update(d)


def start_predictions(ctx: Ctx) -> None:
    """fxmeter's predictions for this device in a CPU-only subprocess (its traces run on the host's other cores;
    it shares this process's trace cache: Flux first, so that verify's Wan traces are there when it needs them)."""
    if ctx.predict_proc is not None or "predictions_error" in ctx.doc:
        return
    try:
        _start_predictions(ctx)
    except Exception as e:  # no predictions: the measurements still stand (ingest computes them)
        ctx.doc["predictions_error"] = f"{type(e).__name__}: {e}"
        ctx.log(f"predictions: could not start: {e}")


def _start_predictions(ctx: Ctx) -> None:
    if ctx.hardware is None:
        ctx.log(f"no fxmeter hardware entry for {ctx.gpu_name!r}: predictions skipped (pass --hardware NAME)")
        return
    cmd = [sys.executable, str(Path(__file__).resolve()), "--predict", str(ctx.out / PREDICTIONS),
           "--hardware", ctx.hardware, "--max-gemm-shapes", str(ctx.args.max_gemm_shapes)] + (["--dry-run"] if ctx.dry else [])
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    log = (ctx.out / "predict_log.txt").open("ab")
    ctx.predict_proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO))
    ctx.log(f"predictions: started pid {ctx.predict_proc.pid} for {ctx.hardware}")


def step_verify(case_key: str) -> Callable[[Ctx, dict[str, Any]], None]:
    def run(ctx: Ctx, rec: dict[str, Any]) -> None:
        from fxmeter import api

        torch = ctx.torch
        ctx.drop()
        case = ctx.cases[case_key]
        if ctx.cuda:
            torch.cuda.reset_peak_memory_stats()
        base = ctx.allocated()
        res = api.verify(case.model, case.workload, device=ctx.device, stages="transformer", write=False,
                         run_id=f"gpu-truth-{case_key}", output_root=str(ctx.tmp / "verify"), **case.kw())
        lay, e2e = res.layers, res.end2end
        weights = int(res.report.data["memory"]["weight_bytes"])
        rec.update(case=case_key, model=case.model, workload=case.workload, passed=res.passed, device_name=lay.get("device_name"),
                   sdpa_backend=lay["reference"]["sdpa_backend"], compared=lay["compared"], failed=lay["failed"],
                   max_rel_err=lay["max_rel_err"], per_forward=e2e["per_forward"], end_to_end=e2e["end_to_end"],
                   weight_bytes_predicted=weights, layers=lay, end2end=e2e)
        if ctx.cuda:
            peak = int(torch.cuda.max_memory_allocated()) - base
            rec.update(peak_allocated_bytes=peak, no_fp32_copy=peak < 1.9 * weights,
                       fp32_copy_note="build_on_device makes the weights in the deployment dtype (torch.set_default_dtype): "
                                      "an fp32 copy of the model would put the peak above 2x the bf16 weights")
        ctx.log(f"verify {case_key}: {'PASS' if res.passed else 'FAIL'}, {lay['compared']} modules, SDPA "
                f"{lay['reference']['sdpa_backend']}, max rel err {lay['max_rel_err']}")
    return run


def step_memory(case_keys: tuple[str, ...]) -> Callable[[Ctx, dict[str, Any]], None]:
    def run(ctx: Ctx, rec: dict[str, Any]) -> None:
        torch = ctx.torch
        for key in case_keys:
            case = ctx.cases[key]
            model, weights = build_transformer(ctx, case)
            inputs = transformer_inputs(ctx, case)
            r: dict[str, Any] = {"weights_allocated_bytes": weights, "input_bytes": tensor_bytes(inputs), "forwards": []}
            rec[key] = r
            call = functools.partial(model, **inputs)
            with torch.no_grad():
                for _ in range(2):
                    m = memory_around(ctx, call)
                    r["forwards"].append(m)
                    ctx.flush()
                    if m["seconds"] > 5 or ctx.remaining() < 60 or ctx.dry:
                        break  # the first forward is the one a generation's peak has (workspaces allocated in it)
            first = r["forwards"][0]
            ctx.log(f"memory {key}: weights {(weights or 0) / GIB:.2f} GiB, peak allocated "
                    f"{(first['peak_allocated_bytes'] or 0) / GIB:.2f} GiB, reserved {(first['peak_reserved_bytes'] or 0) / GIB:.2f} GiB")
            del call, inputs
    return run


def step_latency(case_key: str) -> Callable[[Ctx, dict[str, Any]], None]:
    def run(ctx: Ctx, rec: dict[str, Any]) -> None:
        torch = ctx.torch
        case = ctx.cases[case_key]
        model, _ = build_transformer(ctx, case)
        inputs = transformer_inputs(ctx, case)
        with torch.no_grad():
            t = time.perf_counter()
            model(**inputs)
            ctx.sync()
            first = time.perf_counter() - t
            rec["first_call_s"] = first
            rec["eager"] = timed(ctx, lambda: model(**inputs), warmup=0, reps=adaptive_reps(ctx, first))
        ctx.log(f"latency {case_key} eager: median {rec['eager']['median_s']:.4f} s ({rec['eager']['reps']} reps)")
    return run


KERNEL_CLASSES = ("gemm", "conv", "attention", "elementwise")


def kernel_class(name: str, cpu: bool) -> str:
    """GEMM, convolution, attention or the rest (elementwise, norms, copies, reductions) from a kernel / op name."""
    n = name.lower()
    if any(s in n for s in ("flash", "fmha", "attention", "sdpa", "_efficient_attention", "cudnn_generated_fort_native_sdpa")):
        return "attention"
    if any(s in n for s in ("conv", "fprop", "dgrad", "implicit_gemm", "winograd")):
        return "conv"
    gemm = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_mkldnn", "mkldnn_linear") if cpu else \
        ("gemm", "cutlass", "xmma", "nvjet", "cublas", "s16816", "sm90_", "sm80_", "wgmma")
    if any(s in n for s in gemm):
        return "gemm"
    return "elementwise"


def profile_classes(ctx: Ctx, call: Callable[[], Any], label: str) -> dict[str, Any]:
    """One call under torch.profiler: device seconds per kernel class (CPU: self time per op class)."""
    torch = ctx.torch
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if ctx.cuda else [])
    with torch.no_grad(), profile(activities=acts) as prof:
        call()
        ctx.sync()
    classes = dict.fromkeys(KERNEL_CLASSES, 0.0)
    counts = dict.fromkeys(KERNEL_CLASSES, 0)
    launches = []
    top = []
    for ev in prof.key_averages():
        dev = str(getattr(ev, "device_type", "")).upper()
        if ctx.cuda:
            t = float(getattr(ev, "self_device_time_total", 0) or getattr(ev, "self_cuda_time_total", 0) or 0)
            if "CUDA" not in dev or t <= 0:
                if ev.key in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx") and ev.count:
                    launches.append((ev.cpu_time_total / ev.count, ev.count))
                continue
        else:
            t = float(ev.self_cpu_time_total or 0)
            if not ev.key.startswith("aten::") or t <= 0:
                continue
        c = kernel_class(ev.key, not ctx.cuda)
        classes[c] += t / 1e6
        counts[c] += int(ev.count)
        top.append((t / 1e6, ev.key, int(ev.count)))
    top.sort(reverse=True)
    sort = "self_device_time_total" if ctx.cuda else "self_cpu_time_total"
    try:
        table = prof.key_averages().table(sort_by=sort, row_limit=60, max_name_column_width=90)
    except Exception:  # an older profiler without device_time columns
        table = prof.key_averages().table(sort_by="self_cuda_time_total" if ctx.cuda else sort, row_limit=60)
    (ctx.out / f"profile_{label}.txt").write_text(table)
    out: dict[str, Any] = {"seconds_by_class": classes, "kernels_by_class": counts, "total_s": sum(classes.values()),
                           "top": [{"seconds": s, "name": n[:160], "count": c} for s, n, c in top[:25]],
                           "what": "summed kernel device time per class (cuda)" if ctx.cuda else
                           "summed self CPU time of aten ops per class (cpu dry run)", "file": f"profile_{label}.txt"}
    if launches:
        n = sum(c for _, c in launches)
        out["launch_host_us_mean"] = sum(t * c for t, c in launches) / n
    return out


def step_profile(case_key: str) -> Callable[[Ctx, dict[str, Any]], None]:
    def run(ctx: Ctx, rec: dict[str, Any]) -> None:
        case = ctx.cases[case_key]
        model, _ = build_transformer(ctx, case)
        inputs = transformer_inputs(ctx, case)
        rec.update(profile_classes(ctx, lambda: model(**inputs), case_key))
        ctx.log(f"profile {case_key}: " + ", ".join(f"{k} {v:.4f} s" for k, v in rec["seconds_by_class"].items()))
    return run


def step_stage(stage: str) -> Callable[[Ctx, dict[str, Any]], None]:
    def run(ctx: Ctx, rec: dict[str, Any]) -> None:
        torch = ctx.torch
        ctx.drop()
        comp, dims, dtype = stage_parts(ctx.cases["wan13_480p"], stage)
        before = ctx.allocated()
        module = build_stage(ctx, comp, dtype)
        ctx.sync()
        inputs = stage_inputs(ctx, comp, dims, dtype)
        rec.update(stage=stage, cls=str(comp.config.get("_class_name")), dtype=dtype, dims=dims, input_bytes=tensor_bytes(inputs),
                   weights_allocated_bytes=ctx.allocated() - before - tensor_bytes(inputs) if ctx.cuda else None)
        with torch.no_grad():
            m = memory_around(ctx, lambda: module(**inputs))
            rec["memory"] = m
            ctx.flush()
            rec["latency"] = timed(ctx, lambda: module(**inputs), warmup=0 if m["seconds"] > 1 else 1,
                                   reps=adaptive_reps(ctx, m["seconds"]))
        ctx.log(f"{stage}: first call {m['seconds']:.3f} s, median {rec['latency']['median_s']:.4f} s, peak allocated "
                f"{(m['peak_allocated_bytes'] or 0) / GIB:.2f} GiB")
    return run


def step_compile(case_key: str) -> Callable[[Ctx, dict[str, Any]], None]:
    def run(ctx: Ctx, rec: dict[str, Any]) -> None:
        torch = ctx.torch
        case = ctx.cases[case_key]
        model, _ = build_transformer(ctx, case)
        inputs = transformer_inputs(ctx, case)
        kw: dict[str, Any] = {"backend": "eager"} if ctx.dry else {}
        try:
            model.compile_repeated_blocks(fullgraph=True, **kw)
            rec["how"] = "diffusers compile_repeated_blocks(fullgraph=True): torch.compile (Inductor, default mode) per block"
        except (AttributeError, ValueError) as e:  # no _repeated_blocks on this class (or an older diffusers)
            rec["regional_compile_error"] = str(e)[:200]
            model = torch.compile(model, **kw)
            rec["how"] = "torch.compile(model) (Inductor, default mode)"
        if ctx.dry:
            rec["how"] += "; dry run: backend='eager' (dynamo only)"
        try:
            with torch.no_grad():
                t = time.perf_counter()
                model(**inputs)
                ctx.sync()
                rec["compile_s"] = time.perf_counter() - t
                ctx.flush()
                ctx.log(f"compile {case_key}: first call (compile) {rec['compile_s']:.1f} s")
                t = time.perf_counter()
                model(**inputs)
                ctx.sync()
                rec["second_call_s"] = time.perf_counter() - t
                rec["compiled"] = timed(ctx, lambda: model(**inputs), warmup=0, reps=adaptive_reps(ctx, rec["second_call_s"]))
            ctx.log(f"compile {case_key}: median {rec['compiled']['median_s']:.4f} s")
        finally:
            ctx.drop()  # the held model's blocks are compiled now
            torch._dynamo.reset()
    return run


# -- kernel tables ----------------------------------------------------------------------------------------------------
def collect_shapes(ctx: Ctx) -> dict[str, Any]:
    """bf16 GEMM and attention shapes of the Wan and Flux graphs (fxmeter's own traces), deduplicated."""
    from fxmeter import api

    gemm: dict[tuple[int, ...], dict[str, Any]] = {}
    att: dict[tuple[int, ...], dict[str, Any]] = {}
    for key in ("wan13_480p", "wan14_480p", "wan14_720p", "flux_1024"):
        case = ctx.cases[key]
        req = api.request(case.model, case.workload, stages="transformer", **case.kw())
        est = api.estimate_request(req, api.stage_inputs(req))
        st = next(s for s in est.stages if s.plan.denoiser)
        for n in st.cost.nodes:
            if n.dtype != "bfloat16" or n.family not in ("matmul", "attention"):
                continue
            if n.family == "matmul":
                k = tuple(int(n.shape.get(x, 1)) for x in ("b", "m", "n", "k"))
                tab = gemm
            else:
                k = tuple(int(n.shape.get(x, 0)) for x in ("b", "h", "lq", "lk", "d", "dv"))
                tab = att
            row = tab.setdefault(k, {"shape": dict(n.shape), "cases": [], "count": 0, "tensor_core_flops": 0,
                                     "cost": n.cost.to_dict(), "family": n.family})
            row["count"] += n.replicas
            row["tensor_core_flops"] += n.cost.tensor_core_flops * n.replicas
            if key not in row["cases"]:
                row["cases"].append(key)
    cap = int(ctx.args.max_gemm_shapes)
    g = sorted(gemm.values(), key=lambda r: -r["tensor_core_flops"])[:cap]
    a = sorted(att.values(), key=lambda r: -r["tensor_core_flops"])[:16]
    return {"gemm": g, "attention": a, "gemm_total": len(gemm), "attention_total": len(att)}


def _predict_call(ctx: Ctx, family: str, tc: int, cuda: int, nbytes: int, shape: dict[str, int],
                  dtype: str = "bfloat16") -> dict[str, Any] | None:
    """fxmeter's kernel model for one call on this device (None: no hardware entry)."""
    if ctx.hardware is None:
        return None
    from fxmeter.estimate.hardware import get as get_hw
    from fxmeter.estimate.kernels import KernelCall, KernelOptions, kernel_time, load_kernel_model

    t = kernel_time(KernelCall(family, tc, cuda, nbytes, shape, dtype), get_hw(ctx.hardware), KernelOptions(),
                    load_kernel_model())
    return {"seconds": t.seconds, "bound_seconds": t.bound_seconds, "limiter": t.limiter, "basis": t.basis,
            "fallback": t.fallback}


def _sdpa_backend_ran(ctx: Ctx, fn: Callable[[], Any]) -> str:
    from torch.utils.flop_counter import FlopCounterMode

    from fxmeter.verify.compare import _SDPA_BACKENDS

    with FlopCounterMode(display=False) as fc:
        fn()
    ops = [str(o) for o in fc.get_flop_counts().get("Global", {})]
    found = [name for pat, name in _SDPA_BACKENDS if any(pat in o for o in ops)]
    return "+".join(found) or "math"


SDPA_BACKENDS = (("default", None), ("flash", "FLASH_ATTENTION"), ("efficient", "EFFICIENT_ATTENTION"),
                 ("cudnn", "CUDNN_ATTENTION"))


def _sdpa(ctx: Ctx, b: int, h: int, lq: int, lk: int, d: int, backend: str | None) -> Callable[[], Any]:
    torch = ctx.torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    dt = torch.bfloat16
    q = torch.randn(b, h, lq, d, device=ctx.device, dtype=dt)
    k = torch.randn(b, h, lk, d, device=ctx.device, dtype=dt)
    v = torch.randn(b, h, lk, d, device=ctx.device, dtype=dt)
    if backend is None and ctx.cuda:
        return lambda: F.scaled_dot_product_attention(q, k, v)
    be = getattr(SDPBackend, backend or "MATH")

    def call() -> Any:
        with sdpa_kernel(be):
            return F.scaled_dot_product_attention(q, k, v)

    return call


def kernels_gemm(ctx: Ctx, shapes: dict[str, Any]) -> dict[str, Any]:
    torch = ctx.torch
    import torch.nn.functional as F

    rows = []
    extra = [] if ctx.dry else [{"shape": {"b": 1, "m": 8192, "n": 8192, "k": 8192}, "cases": ["mamf-square"], "count": 1,
                                 "cost": None}]
    for r in shapes["gemm"] + extra:
        s = r["shape"]
        b, m, n, k = (int(s.get(x, 1)) for x in ("b", "m", "n", "k"))
        if ctx.dry:
            m, n, k = min(m, 256), min(n, 256), min(k, 256)
        try:
            if b == 1:
                x = torch.randn(m, k, device=ctx.device, dtype=torch.bfloat16)
                w = torch.randn(n, k, device=ctx.device, dtype=torch.bfloat16)
                fn: Callable[[], Any] = functools.partial(F.linear, x, w)
            else:
                x = torch.randn(b, m, k, device=ctx.device, dtype=torch.bfloat16)
                w = torch.randn(b, k, n, device=ctx.device, dtype=torch.bfloat16)
                fn = functools.partial(torch.bmm, x, w)
            t = kernel_timed(ctx, fn)
            flops = 2 * b * m * n * k
            row = {"b": b, "m": m, "n": n, "k": k, "cases": r["cases"], "count": r["count"], "median_s": t["median_s"],
                   "tflops": flops / t["median_s"] / 1e12, "timing": {k2: v for k2, v in t.items() if k2 != "times_s"}}
            nbytes = 2 * b * (m * k + k * n + m * n)
            cost = r.get("cost") or {}
            p = _predict_call(ctx, "matmul", flops, int(cost.get("cuda_core_flops", 0)),
                              int(cost.get("bytes_read", 0) + cost.get("bytes_written", 0)) or nbytes, {"b": b, "m": m, "n": n, "k": k})
            if p:
                row["fxmeter"] = p
                row["ratio_measured_over_predicted"] = t["median_s"] / p["seconds"]
            rows.append(row)
            del x, w
        except Exception as e:  # one shape (out of memory, say) does not stop the table
            rows.append({"b": b, "m": m, "n": n, "k": k, "error": f"{type(e).__name__}: {e}"[:300]})
        if ctx.remaining() < 20:
            break
    ctx.free()
    return {"rows": rows, "shapes_total": shapes.get("gemm_total"), "op": "F.linear(x[m,k], w[n,k]) (b = 1), torch.bmm (b > 1), bf16"}


def kernels_attention(ctx: Ctx, shapes: dict[str, Any]) -> dict[str, Any]:
    """SDPA at the graphs' shapes (each backend) and tables in the FA3 paper's setting (b*s = 16k, h*d = 2048)."""
    at_shapes = []
    for r in shapes["attention"][: 4 if ctx.dry else None]:
        s = r["shape"]
        b, h, lq, lk, d = (int(s.get(x, 1)) for x in ("b", "h", "lq", "lk", "d"))
        if ctx.dry:
            lq, lk = min(lq, 256), min(lk, 256)
        row: dict[str, Any] = {"b": b, "h": h, "lq": lq, "lk": lk, "d": d, "cases": r["cases"], "count": r["count"], "backends": {}}
        flops = 4 * b * h * d * lq * lk
        for name, be in SDPA_BACKENDS if ctx.cuda else (("default", None),):
            try:
                fn = _sdpa(ctx, b, h, lq, lk, d, be)
                if name == "default":
                    row["default_backend"] = _sdpa_backend_ran(ctx, fn)
                t = kernel_timed(ctx, fn, reps=5)
                row["backends"][name] = {"median_s": t["median_s"], "tflops": flops / t["median_s"] / 1e12}
            except Exception as e:
                row["backends"][name] = {"error": f"{type(e).__name__}: {e}"[:200]}
            ctx.free()
        cost = r.get("cost") or {}
        p = _predict_call(ctx, "attention", flops, int(cost.get("cuda_core_flops", 0)),
                          int(cost.get("bytes_read", 0) + cost.get("bytes_written", 0)),
                          {"b": b, "h": h, "lq": lq, "lk": lk, "d": d, "dv": d})
        if p:
            row["fxmeter"] = p
            dm = row["backends"].get("default", {}).get("median_s")
            if dm:
                row["ratio_measured_over_predicted"] = dm / p["seconds"]
        at_shapes.append(row)
    tables: list[dict[str, Any]] = []
    seqs = (128, 256) if ctx.dry else (512, 1024, 2048, 4096, 8192, 16384, 32768, 75600)
    for d in (64, 128):
        for name, be in SDPA_BACKENDS if ctx.cuda else (("default", None),):
            pts = []
            for s in seqs:
                b = max(1, 16384 // s) if not ctx.dry else 1
                h = 2048 // d if not ctx.dry else 2
                try:
                    fn = _sdpa(ctx, b, h, s, s, d, be)
                    t = kernel_timed(ctx, fn, reps=5)
                    pts.append([s, 4 * b * h * d * s * s / t["median_s"] / 1e12, b, h])
                except Exception as e:
                    pts.append([s, None, b, h, f"{type(e).__name__}: {e}"[:160]])
                ctx.free()
            tables.append({"backend": name, "headdim": d, "points": pts})
            if ctx.remaining() < 30:
                break
    return {"shapes": at_shapes, "tables": tables,
            "setting": "b = 16384 // s (at least 1), h = 2048 // d, non-causal forward, bf16; FLOPs = 4*b*h*d*s^2"}


def kernels_bandwidth(ctx: Ctx) -> dict[str, Any]:
    """Copy-like kernels on 1 GiB bf16 tensors: GB/s counting bytes read and written."""
    torch = ctx.torch
    import torch.nn.functional as F

    n = (1 << 29) if ctx.cuda else (1 << 21)
    a = torch.randn(n, device=ctx.device, dtype=torch.bfloat16)
    b = torch.randn(n, device=ctx.device, dtype=torch.bfloat16)
    o = torch.empty_like(a)
    o32 = torch.empty(n, device=ctx.device, dtype=torch.float32)
    x2 = a.view(-1, 5120) if n % 5120 == 0 else a[: (n // 5120) * 5120].view(-1, 5120)
    ops: dict[str, tuple[Callable[[], Any], int, str, int]] = {
        "copy": (lambda: o.copy_(a), 4 * n, "copy", 0),
        "scale": (lambda: torch.mul(a, 1.5, out=o), 4 * n, "elementwise", n),
        "add": (lambda: torch.add(a, b, out=o), 6 * n, "elementwise", n),
        "cast_bf16_to_fp32": (lambda: o32.copy_(a), 6 * n, "cast", 0),
        "gelu_tanh": (lambda: F.gelu(a, approximate="tanh"), 4 * n, "activation", 8 * n),
        "layer_norm_5120": (lambda: F.layer_norm(x2, (5120,)), 4 * x2.numel(), "norm", 5 * x2.numel()),
    }
    rows = {}
    for name, (fn, nbytes, family, flops) in ops.items():
        try:
            t = kernel_timed(ctx, fn, target_s=5e-3, reps=5)
            row = {"bytes": nbytes, "median_s": t["median_s"], "gbps": nbytes / t["median_s"] / 1e9, "family": family}
            p = _predict_call(ctx, family, 0, flops, nbytes, {})
            if p:
                row["fxmeter"] = p
                row["ratio_measured_over_predicted"] = t["median_s"] / p["seconds"]
            rows[name] = row
        except Exception as e:
            rows[name] = {"error": f"{type(e).__name__}: {e}"[:200]}
    ctx.free()
    return {"elements": n, "rows": rows}


def kernels_launch(ctx: Ctx) -> dict[str, Any]:
    """Per-kernel GPU time of back-to-back tiny kernels (queued behind a sleep: host hidden), and the host's cost
    per eager op (a Python loop of small ops, wall clock), with the profiler's cudaLaunchKernel time."""
    torch = ctx.torch
    x = torch.zeros(1, device=ctx.device)
    y = torch.zeros(1, device=ctx.device)
    out: dict[str, Any] = {}
    t = timed(ctx, lambda: x.add_(1.0), warmup=10, reps=5, inner=500, queued=True)
    out["gpu_per_kernel_s"] = t["median_s"]
    n = 20000 if ctx.cuda else 2000
    for name, fn in (("mul", lambda: torch.mul(x, y)), ("add_", lambda: x.add_(y)), ("view", lambda: x.view(1, 1))):
        for _ in range(200):
            fn()
        ctx.sync()
        ws = []
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            ws.append((time.perf_counter() - t0) / n)
            ctx.sync()
        out[f"host_per_op_s_{name}"] = statistics.median(ws)
    if ctx.cuda:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(2000):
                torch.mul(x, y)
            ctx.sync()
        for ev in prof.key_averages():
            if ev.key in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC") and ev.count:
                out["host_launch_s_profiler"] = ev.cpu_time_total / ev.count / 1e6
    launch = out.get("host_launch_s_profiler")
    out["host_eager_op_s"] = out["host_per_op_s_mul"] - (launch or 0.0)
    out["how"] = ("gpu_per_kernel_s: 500 x x.add_(1) on one element queued behind torch.cuda._sleep, CUDA events; "
                  f"host_per_op_s_*: wall clock of {n} eager calls from Python (median of 3); host_launch_s_profiler: "
                  "torch.profiler's mean cudaLaunchKernel CPU time over 2000 torch.mul; host_eager_op_s = mul - launch")
    return out


def _sig(x: float) -> float:
    """Four significant digits (a toy dry-run rate stays positive)."""
    return float(f"{x:.4g}")


def kernel_entries(ctx: Ctx, rec: dict[str, Any]) -> dict[str, Any]:
    """The measurements in kernels.json's form (fxmeter/estimate/kernels.py parse_model)."""
    dev = ctx.hardware if not ctx.dry else "dry-run-cpu"
    cc = ctx.doc["device"].get("compute_capability") or ("cpu" if ctx.dry else "unknown")
    src = f"measured on {ctx.gpu_name} by {TOOL}, {ctx.date}"
    torch_v = ctx.torch.__version__
    peak_bf16 = 1000.0
    spec_gbps = 1000.0
    if ctx.hardware:
        from fxmeter.estimate.hardware import get as get_hw

        hw = get_hw(ctx.hardware)
        peak_bf16 = hw.tc_peak("bf16") / 1e12
        spec_gbps = hw.memory_bandwidth / 1e9
    out: dict[str, Any] = {}
    g = [r for r in rec.get("gemm", {}).get("rows", []) if r.get("tflops")]
    if g:
        best = max(g, key=lambda r: r["tflops"])
        out["gemm.efficiency"] = [{
            "key": f"gemm.gpu_truth.bf16.{dev}", "devices": [dev], "compute_capability": cc, "precision": "bf16",
            "achieved_tflops": _sig(min(best["tflops"], peak_bf16)), "peak_tflops": _sig(peak_bf16),
            "source": f"{src}: best of {len(g)} shapes (the Wan/Flux graphs' bf16 GEMMs and 8192^3), F.linear/bmm on random "
                      f"data, median of 5 CUDA-event timings of back-to-back calls; best shape {best['m']}x{best['n']}x{best['k']}; torch {torch_v}"}]
    tabs = []
    for t in rec.get("attention", {}).get("tables", []):
        kernel = {"default": "sdpa", "flash": "fa2", "cudnn": "cudnn"}.get(t["backend"])
        pts = [[p[0], _sig(min(p[1], peak_bf16 * 1.04))] for p in t["points"] if p[1]]
        if kernel is None or len(pts) < 2:
            continue
        tabs.append({"key": f"attention.{kernel}.{dev}.hd{t['headdim']}.bf16.gpu_truth", "kernel": kernel, "device": dev,
                     "compute_capability": cc, "headdim": t["headdim"], "precision": "bf16", "peak_tflops": _sig(peak_bf16),
                     "points": pts, "series": f"torch SDPA ({t['backend']} backend)",
                     "settings": rec["attention"]["setting"], "source": f"{src}: torch {torch_v}, median of 5 CUDA-event timings"})
    if tabs:
        out["attention.tables"] = tabs
    bw = rec.get("bandwidth", {}).get("rows", {}).get("scale", {})
    if bw.get("gbps"):
        out["memory.bandwidth_fraction"] = [{
            "key": f"memory.stream.{dev}.gpu_truth", "devices": [dev], "compute_capability": cc,
            "achieved_gbps": _sig(min(bw["gbps"], spec_gbps)), "spec_gbps": _sig(spec_gbps),
            "source": f"{src}: torch.mul(a, 1.5, out=o) on 2^29 bf16 elements (one load + one store stream, STREAM scale), "
                      "bytes read + written over the median of 5 CUDA-event timings"}]
    la = rec.get("launch", {})
    if la.get("gpu_per_kernel_s"):
        out["launch.overhead"] = [{
            "key": f"launch.{dev}.gpu_truth", "devices": [dev], "compute_capability": cc,
            "seconds": min(float(la["gpu_per_kernel_s"]), 1e-3),
            "source": f"{src}: GPU time per kernel of 500 back-to-back one-element x.add_(1) queued behind a sleep kernel"}]
    if la.get("host_eager_op_s"):
        host = {"eager_op": {"key": "host.eager.op", "seconds": min(max(la["host_eager_op_s"], 1e-8), 1e-3),
                             "source": f"{src}: wall clock per eager torch.mul on one-element tensors from Python minus the "
                                       f"profiler's cudaLaunchKernel time; host CPU {ctx.doc['device'].get('platform')}"}}
        if la.get("host_launch_s_profiler"):
            host["launch"] = {"key": "host.cuda_launch", "seconds": min(la["host_launch_s_profiler"], 1e-3),
                              "source": f"{src}: torch.profiler's mean cudaLaunchKernel CPU time over 2000 torch.mul"}
        out["host"] = host
    return out


def step_kernels(ctx: Ctx, rec: dict[str, Any]) -> None:
    ctx.drop()
    proc = ctx.predict_proc
    if proc is not None and proc.poll() is None:  # its shapes come with fxmeter's numbers: wait a little for them
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(1.0, min(90.0, ctx.remaining() * 0.3)))
    pred = read_predictions(ctx.out)
    if pred and pred.get("shapes"):
        shapes, rec["shapes_from"] = pred["shapes"], "predictions.json (fxmeter at run time)"
    else:
        shapes, rec["shapes_from"] = collect_shapes(ctx), "fxmeter traces in this process"
    for name, fn in (("gemm", lambda: kernels_gemm(ctx, shapes)), ("attention", lambda: kernels_attention(ctx, shapes)),
                     ("bandwidth", lambda: kernels_bandwidth(ctx)), ("launch", lambda: kernels_launch(ctx))):
        t = time.perf_counter()
        try:
            rec[name] = fn()
        except StepTimeout:
            raise
        except Exception as e:
            rec[name] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-2000:]}
        rec[name]["seconds"] = time.perf_counter() - t
        ctx.log(f"kernels {name}: {rec[name]['seconds']:.1f} s" + (f" ERROR {rec[name]['error']}" if "error" in rec[name] else ""))
        ctx.flush()
    rec["kernels_json"] = kernel_entries(ctx, rec)


# -- fxmeter's predictions (a CPU-only subprocess) ------------------------------------------------------------------
def _class_sums(stage: Any) -> dict[str, dict[str, float]]:
    fam = {"matmul": "gemm", "conv": "conv", "attention": "attention"}
    out = {k: {"predicted_s": 0.0, "bound_s": 0.0} for k in KERNEL_CLASSES}
    for n, p, b in zip(stage.cost.nodes, stage.predicted.nodes, stage.bound.nodes):
        c = fam.get(n.family, "elementwise")
        out[c]["predicted_s"] += p.seconds * n.replicas
        out[c]["bound_s"] += b.seconds * n.replicas
    return out


def _stage_record(stage: Any, hw: Any) -> dict[str, Any]:
    from fxmeter.estimate.memory import process_memory

    w = stage.weights.weight_bytes if stage.weights is not None else stage.cost.weights.weight_bytes
    a = stage.cost.activations.peak_bytes
    pm = process_memory(stage.plan.name, w, a, compute_capability=hw.compute_capability)
    return {"name": stage.plan.name, "class": stage.cost.diffusers_class, "dtype": stage.plan.dtype, "runs": stage.plan.runs,
            "dims": dict(stage.cost.dims), "predicted_s": stage.predicted.per_run, "bound_s": stage.bound.per_run,
            "by_class": _class_sums(stage), "weight_bytes": w, "activation_peak_bytes": a,
            "activation_peak_module": stage.cost.activations.peak_module,
            "process": {"peak_allocated_bytes": pm.peak_allocated_bytes, "peak_reserved_bytes": pm.peak_reserved_bytes,
                        "breakdown": pm.breakdown()}}


def predict_all(cases: dict[str, Case], hardware: str) -> dict[str, Any]:
    """fxmeter's numbers for every measured case on ``hardware``: seconds (eager, --compile), classes, memory."""
    from fxmeter import api
    from fxmeter.cost.store import versions
    from fxmeter.estimate.hardware import get as get_hw

    hw = get_hw(hardware)
    out: dict[str, Any] = {"hardware": hardware, "label": hw.label, "versions": versions(), "cases": {}, "stages": {},
                           "made": datetime.now(timezone.utc).isoformat()}
    order = ["flux_1024", *(k for k in cases if k != "flux_1024")]  # verify traces the Wan transformers meanwhile
    for key in order:
        case = cases[key]
        rec: dict[str, Any] = {}
        for mode in ("eager", "compile"):
            req = api.request(case.model, case.workload, hardware=hardware, compile=mode == "compile", stages="transformer",
                              **case.kw())
            est = api.estimate_request(req, api.stage_inputs(req))
            st = next(s for s in est.stages if s.plan.denoiser)
            assert st.predicted is not None and st.bound is not None, "a device estimate times every stage"
            rec[mode] = {"predicted_s": st.predicted.per_run, "bound_s": st.bound.per_run}
            if mode == "eager":
                rec.update(_stage_record(st, hw))
        out["cases"][key] = rec
    case = cases["wan13_480p"]
    req = api.request(case.model, case.workload, hardware=hardware, **case.kw())
    est = api.estimate_request(req, api.stage_inputs(req))
    for st in est.stages:
        if not st.plan.denoiser:
            out["stages"][st.plan.name] = _stage_record(st, hw)
    return out


def predict_main(args: argparse.Namespace) -> int:
    bootstrap()
    cases = tiny_cases(Path(tempfile.mkdtemp(prefix="gpu_truth-predict-"))) if args.dry_run else dict(REAL)
    t = time.perf_counter()
    doc = predict_all(cases, args.hardware)
    ctx_stub = argparse.Namespace(max_gemm_shapes=args.max_gemm_shapes)
    doc["shapes"] = collect_shapes(_ShapeCtx(cases, ctx_stub))  # type: ignore[arg-type]
    doc["seconds"] = time.perf_counter() - t
    path = Path(args.predict)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=str))
    os.replace(tmp, path)
    print(f"predictions written in {doc['seconds']:.1f} s: {path}", flush=True)
    return 0


@dataclass
class _ShapeCtx:
    cases: dict[str, Case]
    args: argparse.Namespace


def read_predictions(folder: Path) -> dict[str, Any] | None:
    p = folder / PREDICTIONS
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def step_predictions(ctx: Ctx, rec: dict[str, Any]) -> None:
    """Wait for the predictions subprocess (within the budget), attach them, and print the comparison."""
    proc = ctx.predict_proc
    if proc is not None and proc.poll() is None:
        wait = max(5.0, ctx.remaining() - 5)
        ctx.log(f"predictions: waiting up to {wait:.0f} s for pid {proc.pid}")
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            rec["note"] = "the predictions subprocess was still running at the end of the budget: killed"
    rec["returncode"] = None if proc is None else proc.returncode
    pred = read_predictions(ctx.out)
    ctx.doc["predictions"] = pred
    rows = comparisons(ctx.doc, pred)
    rec["comparisons"] = rows
    for line in comparison_lines(rows):
        ctx.log(line)


STEPS: list[tuple[str, Callable[[Ctx, dict[str, Any]], None], float, float]] = [
    # name, function, estimated seconds on an H100 (skipped when the budget left is smaller), most seconds allowed
    ("device", step_device, 1, 60),
    ("verify_wan13_480p", step_verify("wan13_480p"), 15, 120),
    ("verify_wan14_720p", step_verify("wan14_720p"), 40, 180),
    ("memory_wan13_480p", step_memory(("wan13_480p",)), 6, 90),
    ("latency_wan13_480p", step_latency("wan13_480p"), 8, 90),
    ("profile_wan13_480p", step_profile("wan13_480p"), 4, 60),
    ("memory_wan14", step_memory(("wan14_480p", "wan14_720p")), 30, 150),
    ("latency_wan14_720p", step_latency("wan14_720p"), 60, 150),
    ("profile_wan14_720p", step_profile("wan14_720p"), 15, 60),
    ("vae_decode_480p", step_stage("vae"), 20, 90),
    ("umt5_encode", step_stage("text_encoder"), 10, 60),
    ("kernels", step_kernels, 60, 180),
    ("compile_wan13_480p", step_compile("wan13_480p"), 120, 240),
    ("compile_wan14_720p", step_compile("wan14_720p"), 200, 300),
    ("predictions", step_predictions, 0, 120),
]


def run_steps(ctx: Ctx) -> None:
    only = set(filter(None, (ctx.args.only or "").split(",")))
    skip = set(filter(None, (ctx.args.skip or "").split(",")))
    chosen = [s for s in STEPS if not ((only and s[0] not in only and s[0] not in ("device", "predictions")) or s[0] in skip)]
    for name, fn, est, most in chosen:
        if name == "predictions":
            start_predictions(ctx)  # not started yet when every step before it was left out
        left = ctx.remaining()
        if name not in ("device", "predictions") and not ctx.dry and left < est:
            ctx.doc["steps"][name] = {"status": "skipped", "reason": f"budget: {left:.0f} s left, the step needs ~{est:.0f} s"}
            ctx.log(f"step {name}: skipped ({left:.0f} s left, needs ~{est:.0f} s)")
            ctx.flush()
            continue
        rec: dict[str, Any] = {"status": "running"}
        ctx.doc["steps"][name] = rec
        ctx.log(f"step {name}: start")
        t = time.perf_counter()
        try:
            limit = most if ctx.dry or name in ("device", "predictions") else min(most, max(left, 5.0))
            with alarm(limit):
                fn(ctx, rec)
            rec["status"] = "ok"
        except StepTimeout as e:
            rec.update(status="timeout", error=str(e))
        except BaseException as e:  # a failed step is recorded; the next one runs
            if isinstance(e, KeyboardInterrupt):
                raise
            rec.update(status="error", error=f"{type(e).__name__}: {str(e)[:1000]}", traceback=traceback.format_exc()[-4000:])
        rec["seconds"] = round(time.perf_counter() - t, 3)
        ctx.log(f"step {name}: {rec['status']} in {rec['seconds']:.1f} s" + (f": {rec.get('error')}" if rec["status"] != "ok" else ""))
        ctx.doc["steps"][name] = {"status": rec.pop("status"), "seconds": rec.pop("seconds"), **rec}
        ctx.flush()
        try:
            ctx.free()
        except Exception as e:  # a broken CUDA context: recorded by the next step
            ctx.log(f"cleanup after {name} failed: {e}")
        if name == "device":
            start_predictions(ctx)


# -- measured vs fxmeter ----------------------------------------------------------------------------------------------
def _row(section: str, item: str, measured: float | None, predicted: float | None, unit: str,
         bound: float | None = None, note: str = "") -> dict[str, Any]:
    ratio = measured / predicted if measured and predicted else None
    return {"section": section, "item": item, "measured": measured, "predicted": predicted, "bound": bound, "unit": unit,
            "ratio": ratio, "note": note}


def comparisons(doc: dict[str, Any], pred: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Measured vs fxmeter, one row each (ratio = measured / predicted)."""
    steps = doc.get("steps", {})
    pc = (pred or {}).get("cases", {})
    ps = (pred or {}).get("stages", {})
    rows: list[dict[str, Any]] = []
    for key in ("wan13_480p", "wan14_720p"):
        v = steps.get(f"verify_{key}", {})
        if v.get("per_forward"):
            rows.append(_row("verify", f"{key} tensor-core FLOPs per forward (SDPA {v.get('sdpa_backend')}, "
                             f"{v.get('compared')} modules, {v.get('failed')} failed)",
                             v["per_forward"].get("reference_flops"), v["per_forward"].get("analytic_flops"), "FLOP"))
    for step, keys in (("memory_wan13_480p", ("wan13_480p",)), ("memory_wan14", ("wan14_480p", "wan14_720p"))):
        for key in keys:
            m = steps.get(step, {}).get(key)
            p = pc.get(key, {})
            if not m or not m.get("forwards"):
                continue
            f = m["forwards"][0]
            proc = p.get("process", {})
            rows.append(_row("memory", f"{key} weights", m.get("weights_allocated_bytes"), p.get("weight_bytes"), "bytes"))
            rows.append(_row("memory", f"{key} activations (peak allocated - weights - inputs)", f.get("activation_allocated_bytes"),
                             p.get("activation_peak_bytes"), "bytes"))
            rows.append(_row("memory", f"{key} peak allocated (weights included)", f.get("peak_allocated_bytes"),
                             proc.get("peak_allocated_bytes"), "bytes"))
            rows.append(_row("memory", f"{key} peak reserved (weights included)", f.get("peak_reserved_bytes"),
                             proc.get("peak_reserved_bytes"), "bytes"))
    for key in ("wan13_480p", "wan14_720p"):
        lat = steps.get(f"latency_{key}", {}).get("eager")
        p = pc.get(key, {})
        if lat:
            e = p.get("eager", {})
            rows.append(_row("latency", f"{key} forward, eager", lat["median_s"], e.get("predicted_s"), "s", e.get("bound_s")))
        comp = steps.get(f"compile_{key}", {}).get("compiled")
        if comp:
            c = p.get("compile", {})
            rows.append(_row("latency", f"{key} forward, torch.compile", comp["median_s"], c.get("predicted_s"), "s",
                             c.get("bound_s")))
        prof = steps.get(f"profile_{key}", {}).get("seconds_by_class")
        if prof:
            for cls, t in prof.items():
                bc = p.get("by_class", {}).get(cls, {})
                if t or bc.get("predicted_s"):
                    rows.append(_row("kernel class", f"{key} {cls}", t, bc.get("predicted_s"), "s", bc.get("bound_s"),
                                     "kernel time from torch.profiler"))
    for step, stage, what in (("vae_decode_480p", "vae", "VAE decode 480p"), ("umt5_encode", "text_encoder", "UMT5 encode")):
        s = steps.get(step, {})
        p = ps.get(stage, {})
        if s.get("latency"):
            rows.append(_row("latency", f"{what} ({s.get('dtype')})", s["latency"]["median_s"], p.get("predicted_s"), "s",
                             p.get("bound_s")))
        m = s.get("memory") or {}
        if m.get("peak_allocated_bytes") is not None:
            rows.append(_row("memory", f"{what} activations", m.get("activation_allocated_bytes"),
                             p.get("activation_peak_bytes"), "bytes"))
            rows.append(_row("memory", f"{what} peak allocated", m.get("peak_allocated_bytes"),
                             (p.get("process") or {}).get("peak_allocated_bytes"), "bytes"))
            rows.append(_row("memory", f"{what} peak reserved", m.get("peak_reserved_bytes"),
                             (p.get("process") or {}).get("peak_reserved_bytes"), "bytes"))
    k = steps.get("kernels", {})
    for r in k.get("gemm", {}).get("rows", []):
        if r.get("fxmeter"):
            rows.append(_row("gemm", f"{r['b']}x{r['m']}x{r['n']}x{r['k']} ({'+'.join(r['cases'])}, x{r['count']})",
                             r["median_s"], r["fxmeter"]["seconds"], "s", r["fxmeter"]["bound_seconds"],
                             f"{r['tflops']:.0f} TFLOP/s"))
    for r in k.get("attention", {}).get("shapes", []):
        d = r.get("backends", {}).get("default", {})
        if r.get("fxmeter") and d.get("median_s"):
            rows.append(_row("attention", f"b{r['b']} h{r['h']} lq{r['lq']} lk{r['lk']} d{r['d']} ({r.get('default_backend')})",
                             d["median_s"], r["fxmeter"]["seconds"], "s", r["fxmeter"]["bound_seconds"], f"{d['tflops']:.0f} TFLOP/s"))
    for name, r in k.get("bandwidth", {}).get("rows", {}).items():
        if r.get("fxmeter"):
            rows.append(_row("bandwidth", name, r["median_s"], r["fxmeter"]["seconds"], "s", r["fxmeter"]["bound_seconds"],
                             f"{r['gbps']:.0f} GB/s"))
    return rows


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "n/a"
    if unit == "bytes":
        return f"{v / GIB:.3f} GiB"
    if unit == "FLOP":
        return f"{v:,.0f}"
    return f"{v * 1e3:.3f} ms" if v < 1 else f"{v:.3f} s"


def comparison_lines(rows: list[dict[str, Any]]) -> list[str]:
    out = [f"{'section':<12} {'item':<70} {'measured':>16} {'fxmeter':>16} {'ratio':>7}"]
    for r in rows:
        ratio = f"{r['ratio']:.3f}" if r["ratio"] else "n/a"
        out.append(f"{r['section']:<12} {r['item'][:70]:<70} {_fmt(r['measured'], r['unit']):>16} "
                   f"{_fmt(r['predicted'], r['unit']):>16} {ratio:>7}")
    return out


# -- ingest: fold a result folder into examples/gpu-truth/<device>/ and kernels.json ----------------------------------
def merge_kernels(doc: dict[str, Any], entries: dict[str, Any], merge_host: bool = False) -> dict[str, Any]:
    """``doc`` (kernels.json) with ``entries``: a measured device's own entries replace what served it before."""
    import copy

    out = copy.deepcopy(doc)

    def take(lst: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
        mine = {d for e in new for d in e["devices"]}
        prec = {e.get("precision") for e in new}
        kept = []
        for e in lst:
            if e.get("precision") in prec or "precision" not in e:
                e["devices"] = [d for d in e["devices"] if d not in mine]
            if e["devices"]:
                kept.append(e)
        return kept + new

    if "gemm.efficiency" in entries:
        out["gemm"]["efficiency"] = take(out["gemm"]["efficiency"], entries["gemm.efficiency"])
    if "memory.bandwidth_fraction" in entries:
        out["memory"]["bandwidth_fraction"] = take(out["memory"]["bandwidth_fraction"], entries["memory.bandwidth_fraction"])
    if "launch.overhead" in entries:
        out["launch"]["overhead"] = take(out["launch"]["overhead"], entries["launch.overhead"])
    if "attention.tables" in entries:
        ids = {(t["kernel"], t["device"], t["headdim"], t["precision"]) for t in entries["attention.tables"]}
        out["attention"]["tables"] = [t for t in out["attention"]["tables"]
                                      if (t["kernel"], t["device"], t["headdim"], t["precision"]) not in ids] + entries["attention.tables"]
    if merge_host and "host" in entries:
        for part, e in entries["host"].items():
            out["host"][part] = e
    return out


def ingest(result: Path, examples_root: Path, kernels_out: Path | None, repredict: bool) -> Path:
    bootstrap()
    doc = json.loads((result / RESULT).read_text())
    pred = doc.get("predictions") or read_predictions(result)
    dev = doc.get("device", {})
    slug = dev.get("slug") or "unknown-device"
    if (pred is None or repredict) and dev.get("fxmeter_hardware"):
        cases = tiny_cases(Path(tempfile.mkdtemp(prefix="gpu_truth-ingest-"))) if doc.get("dry_run") else dict(REAL)
        pred = predict_all(cases, dev["fxmeter_hardware"])
    rows = comparisons(doc, pred)
    folder = examples_root / slug
    folder.mkdir(parents=True, exist_ok=True)
    for f in sorted(result.iterdir()):
        if f.is_file() and f.resolve() != (folder / f.name).resolve():
            shutil.copy2(f, folder / f.name)
    steps = doc.get("steps", {})
    lines = [f"# Hardware truth: {dev.get('gpu_name')}", "",
             f"Measured by `{TOOL}` ({'dry run on the CPU: toy sizes, not a measurement' if doc.get('dry_run') else 'one run'}), "
             f"started {doc.get('started')}; the raw output is beside this file (`{RESULT}`, `log.txt`, "
             f"`{PREDICTIONS}`, `profile_*.txt`).", "",
             "## Device", "", "| | |", "|---|---|"]
    for k in ("gpu_name", "fxmeter_hardware", "total_memory_bytes", "sm_count", "compute_capability", "l2_cache_bytes",
              "driver", "nvidia_smi", "torch", "cuda", "cudnn", "python", "packages", "kernels_json_sha256"):
        if k in dev:
            lines.append(f"| {k} | {json.dumps(dev[k]) if isinstance(dev[k], dict) else dev[k]} |")
    lines += ["", "## Steps", "", "| step | status | seconds | note |", "|---|---|---:|---|"]
    for name, s in steps.items():
        lines.append(f"| {name} | {s.get('status')} | {s.get('seconds', '')} | {(s.get('error') or s.get('reason') or '')[:120]} |")
    lines += ["", "## Measured vs fxmeter", "",
              f"fxmeter's numbers for `{(pred or {}).get('hardware')}` ({'recomputed at ingest' if repredict else 'computed at run time'}, "
              "the same device). ratio = measured / fxmeter.", "",
              "| section | item | measured | fxmeter | ratio | bound | note |", "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        ratio = f"{r['ratio']:.3f}" if r["ratio"] else "n/a"
        lines.append(f"| {r['section']} | {r['item']} | {_fmt(r['measured'], r['unit'])} | {_fmt(r['predicted'], r['unit'])} | "
                     f"{ratio} | {_fmt(r['bound'], r['unit']) if r['bound'] is not None else ''} | {r['note']} |")
    entries = steps.get("kernels", {}).get("kernels_json", {})
    lines += ["", "## kernels.json entries", "", "Merge with `python benchmarks/gpu_truth.py --ingest DIR --kernels-out "
              "fxmeter/data/kernels.json` (this device's entries replace the stand-ins that served it; `host` is merged "
              "only with `--merge-host`).", "", "```json", json.dumps(entries, indent=1), "```", ""]
    readme = folder / "README.md"
    readme.write_text("\n".join(lines))
    print(json.dumps(entries, indent=1))
    if kernels_out is not None:
        from fxmeter.estimate.kernels import parse_model

        shipped = json.loads((REPO / "fxmeter" / "data" / "kernels.json").read_text())
        merged = merge_kernels(shipped, entries, merge_host=bool(os.environ.get("GPU_TRUTH_MERGE_HOST")))
        parse_model(merged, str(kernels_out))  # one-line KernelModelError when the merge is not a valid model
        kernels_out.write_text(json.dumps(merged, indent=1) + "\n")
        print(f"wrote {kernels_out}")
    print(f"wrote {readme}")
    return readme


# -- entry point --------------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else "")
    ap.add_argument("out", nargs="?", help="output folder (default: $OUT)")
    ap.add_argument("--dry-run", action="store_true", help="every step on the CPU at toy sizes")
    ap.add_argument("--budget-s", type=float, default=480.0, help="seconds the steps may take (optional steps are skipped)")
    ap.add_argument("--hardware", default=None, help="fxmeter hardware name for the predictions (default: from the GPU name)")
    ap.add_argument("--only", default="", help="comma-separated step names (device and predictions always run)")
    ap.add_argument("--skip", default="", help="comma-separated step names to leave out")
    ap.add_argument("--max-gemm-shapes", type=int, default=32, help="cap on the distinct GEMM shapes measured")
    ap.add_argument("--predict", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--ingest", default=None, metavar="RESULT_DIR", help="fold a result folder into examples/gpu-truth/")
    ap.add_argument("--examples-root", default=str(REPO / "examples" / "gpu-truth"))
    ap.add_argument("--kernels-out", default=None, help="with --ingest: write kernels.json merged with the measured entries")
    ap.add_argument("--repredict", action="store_true", help="with --ingest: fxmeter's numbers from this checkout")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.predict:
        return predict_main(args)
    if args.ingest:
        ingest(Path(args.ingest), Path(args.examples_root), Path(args.kernels_out) if args.kernels_out else None,
               args.repredict)
        return 0
    target = args.out or os.environ.get("OUT")
    if not target:
        print("error: name an output folder (or set $OUT)", file=sys.stderr)
        return 2
    out = Path(target)
    out.mkdir(parents=True, exist_ok=True)
    bootstrap()
    ctx = Ctx(args, out)
    os.environ.setdefault("FXMETER_CACHE_DIR", str(ctx.tmp / "cache-main"))
    ctx.log(f"{TOOL}: {ctx.gpu_name}, fxmeter hardware {ctx.hardware}, budget {ctx.budget:.0f} s, out {out}")
    try:
        run_steps(ctx)
    finally:
        if ctx.predict_proc is not None and ctx.predict_proc.poll() is None:
            ctx.predict_proc.kill()
        ctx.doc["finished"] = datetime.now(timezone.utc).isoformat()
        ctx.flush()
        shutil.rmtree(ctx.tmp, ignore_errors=True)
    bad = [n for n, s in ctx.doc["steps"].items() if s.get("status") not in ("ok", "skipped")]
    ctx.log(f"done in {ctx.elapsed():.0f} s; {len(ctx.doc['steps'])} steps, not ok: {', '.join(bad) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
