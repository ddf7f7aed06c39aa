"""benchmarks/gpu_truth.py: its dry run (every step on the CPU at toy sizes) and the ingest of its output.

The GPU run itself happens on a lent device machine (examples/gpu-truth/README.md); here the same script
runs end to end on the CPU so that its schema, its kernels.json entries and the ingest are tested first.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_truth.py"
STEPS = ("device", "verify_wan13_480p", "verify_wan14_720p", "memory_wan13_480p", "latency_wan13_480p",
         "profile_wan13_480p", "memory_wan14", "latency_wan14_720p", "profile_wan14_720p", "vae_decode_480p",
         "umt5_encode", "kernels", "compile_wan13_480p", "compile_wan14_720p", "predictions")


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_truth", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_truth"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gpu-truth") / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), "OUT": str(out)}
    r = subprocess.run([sys.executable, str(SCRIPT), "--dry-run"], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out


@pytest.mark.slow  # the dry run traces tiny models: ~60 s on 2 cores
def test_dry_run_writes_every_step(dry_run: Path) -> None:
    files = sorted(p.name for p in dry_run.iterdir())
    assert len(files) <= 8 and {"gpu_truth.json", "log.txt", "predictions.json"} <= set(files), files
    assert all(p.stat().st_size < 16 * 2**20 for p in dry_run.iterdir())
    doc: dict[str, Any] = json.loads((dry_run / "gpu_truth.json").read_text())
    assert doc["schema"] == 1 and doc["dry_run"] is True and doc["finished"]
    dev = doc["device"]
    for k in ("gpu_name", "torch", "cuda", "python", "packages", "fxmeter_hardware", "nvidia_smi"):
        assert k in dev
    assert list(doc["steps"]) == list(STEPS)
    bad = {n: s.get("error") for n, s in doc["steps"].items() if s["status"] != "ok"}
    assert not bad, bad
    steps = doc["steps"]
    for key in ("wan13_480p", "wan14_720p"):
        v = steps[f"verify_{key}"]
        assert v["passed"] and v["failed"] == 0 and v["sdpa_backend"] and v["layers"]["layers"]
        assert steps[f"latency_{key}"]["eager"]["median_s"] > 0
        assert steps[f"compile_{key}"]["compiled"]["median_s"] > 0
        assert set(steps[f"profile_{key}"]["seconds_by_class"]) == {"gemm", "conv", "attention", "elementwise"}
    assert set(steps["memory_wan14"]) >= {"wan14_480p", "wan14_720p"}
    assert steps["vae_decode_480p"]["latency"]["median_s"] > 0 and steps["umt5_encode"]["memory"]["output_bytes"] > 0
    k = steps["kernels"]
    assert k["gemm"]["rows"] and all("tflops" in r for r in k["gemm"]["rows"])
    assert k["attention"]["shapes"] and k["attention"]["tables"] and k["bandwidth"]["rows"]["scale"]["gbps"] > 0
    assert k["launch"]["host_per_op_s_mul"] > 0
    pred = doc["predictions"]
    assert set(pred["cases"]) == {"wan13_480p", "wan14_480p", "wan14_720p", "flux_1024"}
    assert pred["cases"]["wan13_480p"]["eager"]["predicted_s"] > pred["cases"]["wan13_480p"]["eager"]["bound_s"] > 0
    assert {"text_encoder", "vae"} <= set(pred["stages"])
    rows = steps["predictions"]["comparisons"]
    assert {r["section"] for r in rows} >= {"verify", "memory", "latency", "kernel class", "gemm", "attention", "bandwidth"}


@pytest.mark.slow  # the dry run traces tiny models: ~60 s on 2 cores
def test_kernel_entries_load_with_fxmeters_validator(dry_run: Path) -> None:
    from fxmeter.estimate.kernels import load_kernel_model, parse_model

    mod = _module()
    entries = json.loads((dry_run / "gpu_truth.json").read_text())["steps"]["kernels"]["kernels_json"]
    assert {"gemm.efficiency", "attention.tables", "memory.bandwidth_fraction", "launch.overhead", "host"} <= set(entries)
    for e in [*entries["gemm.efficiency"], *entries["attention.tables"]]:
        assert e["source"].startswith("measured on cpu (dry run) by benchmarks/gpu_truth.py, ")
    shipped = json.loads((REPO / "fxmeter" / "data" / "kernels.json").read_text())
    merged = mod.merge_kernels(shipped, entries, merge_host=True)
    model = parse_model(merged, "merged")
    assert "gemm.gpu_truth.bf16.dry-run-cpu" in model.sources
    assert any(t.device == "dry-run-cpu" for t in model.tables)
    assert load_kernel_model().sources.keys() <= model.sources.keys() | {"host.eager.op", "host.cuda_launch"}


@pytest.mark.slow  # the dry run traces tiny models: ~60 s on 2 cores
def test_ingest_writes_the_device_folder(dry_run: Path, tmp_path: Path) -> None:
    from fxmeter.estimate.kernels import load_kernel_model

    mod = _module()
    kernels = tmp_path / "kernels.json"
    readme = mod.ingest(dry_run, tmp_path / "gpu-truth", kernels, False)
    assert readme == tmp_path / "gpu-truth" / "dry-run-cpu" / "README.md"
    text = readme.read_text()
    assert "| section | item | measured | fxmeter | ratio |" in text and "## kernels.json entries" in text
    assert (readme.parent / "gpu_truth.json").is_file() and (readme.parent / "predictions.json").is_file()
    assert any(t.device == "dry-run-cpu" for t in load_kernel_model(kernels).tables)


def test_device_names_map_to_the_hardware_table() -> None:
    from fxmeter.estimate.hardware import get

    mod = _module()
    for gpu, name in (("NVIDIA H200", "h200"), ("NVIDIA H100 80GB HBM3", "h100"), ("NVIDIA H100 PCIe", "h100-pcie"),
                      ("NVIDIA A100-SXM4-80GB", "a100"), ("NVIDIA GeForce RTX 4090", "rtx4090")):
        assert mod.fx_hardware(gpu, 80 * 2**30) == name
        assert get(name).name == name
    assert mod.fx_hardware("Some Other GPU") is None
