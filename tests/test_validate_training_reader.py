"""`fxmeter validate` on trainer measurements: training rows read with anyone's spellings, routed beside inference rows.

Every predicted row here is Wan2.1-1.3B at 256x256x5 (one LoRA rank-8 trace and one full trace, a few seconds),
so the trace cache is shared; the readers' spellings of bigger models are checked without tracing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from fxmeter.cli.main import main
from fxmeter.validate_training_read import TrainRow, is_training_row, read_training_row

SMALL: dict[str, Any] = {"id": "t1", "source": "someone/trainer", "model": "Wan2.1 1.3B", "method": "LoRA",
                         "lora_rank": "8", "resolution": "256x256", "frames": 5, "gradient_checkpointing": "yes",
                         "optimizer": "bnb AdamW8bit", "base_precision": "fp8_scaled", "gpu": "RTX 4090 24GB",
                         "peak_vram_gb": "3.5", "vram_unit": "GiB", "vram_kind": "max_memory_allocated",
                         "seconds_per_step": "0.5"}
INFERENCE: dict[str, Any] = {"id": 99, "model": "Wan2.1", "variant": "T2V-1.3B", "height": 480, "width": 832,
                             "frames": 81, "steps": 50, "gpu": "TPU v5", "n_gpus": 1, "total_s": 100.0}


def cli(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.stdout, r.stderr


def train(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in {**SMALL, **kw}.items() if v is not None}


# -- reading: spellings ----------------------------------------------------------------------------------
@pytest.mark.parametrize("changes,attr,expect", [
    ({"model": "Wan2.1-T2V-14B"}, "model", "wan2.1-t2v-14b"),
    ({"model": "wan 14b"}, "model", "wan2.1-t2v-14b"),
    ({"model": "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"}, "model", "wan2.1-t2v-1.3b"),
    ({"model": "HunyuanVideo"}, "model", "hunyuanvideo"),
    ({"model": "Qwen-Image"}, "model", "qwen-image"),
    ({"gpu": "A100-SXM4-80GB"}, "gpu", "a100"),
    ({"gpu": "H100 80GB HBM3"}, "gpu", "h100"),
    ({"gpu": "2x H100", "n_gpus": None}, "gpus", 2),
    ({"optimizer": "adamw_8bit"}, "optimizer", "adamw8bit"),
    ({"optimizer": "8-bit AdamW"}, "optimizer", "adamw8bit"),
    ({"optimizer": "Adafactor"}, "optimizer", "adafactor"),
    ({"optimizer": "Prodigy"}, "optimizer", "prodigy"),
    ({"optimizer": "adamw"}, "optimizer", "adamw"),
    ({"base_precision": "float8_e4m3fn"}, "base_precision", "fp8"),
    ({"base_precision": "bfloat16"}, "base_precision", "bf16"),
    ({"gradient_checkpointing": True}, "checkpointing", "full"),
    ({"gradient_checkpointing": "none"}, "checkpointing", "none"),
    ({"gradient_checkpointing": False}, "checkpointing", "none"),
    ({"method": "full fine-tune", "lora_rank": None, "base_precision": None}, "method", "full"),
    ({"method": None}, "method", "lora"),
    ({"resolution": None, "height": "480", "width": "832"}, "width", 832),
    ({"resolution": "832x480"}, "height", 480),
    ({"vram_unit": "MiB", "peak_vram_gb": 3584}, "measured_bytes", 3584 * 2**20),
    ({"vram_unit": None, "peak_vram_gb": "3.5 GiB"}, "measured_bytes", 3.5 * 2**30),
    ({"vram_kind": "nvidia-smi"}, "vram_kind", "nvidia-smi"),
    ({"vram_kind": "task manager"}, "vram_kind", "nvidia-smi"),
    ({"vram_kind": "max_memory_reserved"}, "vram_kind", "reserved"),
    ({"seconds_per_step": "1.5 s/it"}, "measured_s", 1.5),
    ({"seconds_per_step": None, "it_per_s": "2"}, "measured_s", 0.5),
    ({"seconds_per_step": 4, "speed_unit": "it/s"}, "measured_s", 0.25),
    ({"grad_accum": "4", "batch_size": 2}, "batch", 2),
])
def test_spellings(changes: dict[str, Any], attr: str, expect: Any) -> None:
    got = read_training_row(train(**changes))
    assert isinstance(got, TrainRow), got
    value = getattr(got.setup, attr) if hasattr(got.setup, attr) and attr not in ("model",) else getattr(got, attr)
    assert value == pytest.approx(expect) if isinstance(expect, float) else value == expect


def test_an_image_model_without_frames_is_one_frame() -> None:
    got = read_training_row(train(model="FLUX.1-dev", frames=None, resolution="1024x1024"))
    assert isinstance(got, TrainRow) and got.frames == 1
    video = read_training_row(train(frames=None))
    assert video == ("unreadable", "no frames")


@pytest.mark.parametrize("changes,status,needle", [
    ({"lora_rank": "abc"}, "unreadable", "lora_rank must be a number, got 'abc'"),
    ({"frames": -5}, "unreadable", "frames must be an integer from 1"),
    ({"batch_size": "1.5"}, "unreadable", "batch_size must be an integer"),
    ({"resolution": "big"}, "unreadable", "resolution must be WIDTHxHEIGHT"),
    ({"vram_unit": "bananas"}, "unreadable", "vram_unit 'bananas'"),
    ({"seconds_per_step": [120, 180]}, "unreadable", "is a range"),
    ({"seconds_per_step": "fast"}, "unreadable", "must be a number"),
    ({"peak_vram_gb": None, "seconds_per_step": None}, "unreadable", "no measured peak memory"),
    ({"model": None}, "unreadable", "no model"),
    ({"method": "qlora"}, "not represented", "QLoRA"),
    ({"base_precision": "nf4"}, "not represented", "nf4"),
    ({"optimizer": "Lion"}, "not represented", "known: adamw, adamw8bit, adafactor, prodigy, sgd"),
    ({"gradient_checkpointing": "unsloth"}, "not represented", "CPU offload"),
    ({"gpu": "RTX A6000"}, "not represented", "no device in the table"),
    ({"model": "Stable Cascade"}, "not represented", "no bundled model"),
    ({"parallelism": "zero2", "n_gpus": 2}, "not represented", "ZeRO-2"),
    ({"method": "full", "base_precision": "fp8"}, "not represented", "fp8 base with full"),
])
def test_bad_rows_say_why(changes: dict[str, Any], status: str, needle: str) -> None:
    got = read_training_row(train(**changes))
    assert isinstance(got, tuple) and got[0] == status and needle in got[1], got


def test_training_and_inference_rows_are_told_apart() -> None:
    assert is_training_row(SMALL) and not is_training_row(INFERENCE)
    assert not is_training_row({**SMALL, "total_s": 10.0})  # an inference timing column: inference
    assert not is_training_row({"model": "x", "peak_vram_gb": 3})  # no training column


# -- the command line ------------------------------------------------------------------------------------
BAD = [train(id="t3", lora_rank="abc"), train(id="t4", optimizer="Lion"), train(id="t5", method="qlora")]


@pytest.mark.slow
def test_an_outside_file_is_read_and_predicted(tmp_path: Path) -> None:
    data = tmp_path / "theirs.json"
    data.write_text(json.dumps([SMALL, train(id="t2", model="wan-1.3b", method="full", lora_rank=None,
                                             base_precision="bf16", optimizer="Adafactor", gpu="A100-SXM4-80GB",
                                             vram_kind="reserved", peak_vram_gb=20, vram_unit="GB",
                                             seconds_per_step=None), *BAD]))
    code, out, err = cli("validate", "--data", str(data), "--json")
    assert code == 0, err
    doc = orjson.loads(out)
    assert doc["kind"] == "training" and doc["schema_version"] == 1
    assert set(doc) >= {"counts", "summary", "breakdowns", "rows", "data"}
    assert doc["counts"] == {"rows": 5, "predicted": 2, "represented": 2, "refused": 0, "not_represented": 2,
                             "unreadable": 1, "skipped": 3, "with_measured_peak": 2, "with_fits_bound": 0,
                             "with_seconds": 1}
    for block in ("peak_memory", "seconds_per_step"):
        assert set(doc["summary"][block]) >= {"n", "median_abs_error", "median_signed_error", "p90_abs_error"}
    assert doc["summary"]["peak_memory"]["n"] == 2 and doc["summary"]["seconds_per_step"]["n"] == 1
    assert set(doc["breakdowns"]) == {"source", "model", "gpu", "method", "vram_kind"}
    rows = {r["id"]: r for r in doc["rows"]}
    t1 = rows["t1"]
    assert set(t1) >= {"id", "source", "model", "gpu", "status", "reason", "predicted_peak_gib", "measured_peak_gib",
                       "peak_error", "predicted_s", "measured_s", "seconds_error"}
    assert (t1["model"], t1["gpu"], t1["status"], t1["source"]) == ("wan2.1-t2v-1.3b", "rtx4090", "predicted",
                                                                    "someone/trainer")
    assert t1["measured_peak_gib"] == pytest.approx(3.5)
    assert t1["peak_error"] == pytest.approx(t1["predicted_peak_gib"] / 3.5 - 1)
    assert t1["seconds_error"] == pytest.approx(t1["predicted_s"] / 0.5 - 1)
    assert rows["t2"]["method"] == "full" and rows["t2"]["gpu"] == "a100"
    assert rows["t3"]["status"] == "unreadable" and "lora_rank" in rows["t3"]["reason"]
    assert rows["t4"]["status"] == "not represented" and "adamw8bit" in rows["t4"]["reason"]
    assert rows["t5"]["status"] == "not represented" and "QLoRA" in rows["t5"]["reason"]
    # the console: the signed bias first, then the rows and the reasons
    code, out, _ = cli("validate", "--data", str(data))
    assert code == 0
    first = out.splitlines()[:3]
    assert first[0].startswith("training: predicted 2 of 5 rows")
    assert first[1].startswith("  peak memory per GPU (2 rows with a measured peak): median signed ")
    assert first[2].startswith("  seconds per step (1 rows): median signed ")
    assert "unreadable: t3: lora_rank must be a number" in out
    # train-validate: the same code path, the same document
    code, out2, _ = cli("train-validate", "--data", str(data), "--json")
    assert code == 0 and orjson.loads(out2)["rows"] == doc["rows"]


@pytest.mark.slow
def test_a_csv_file_is_read(tmp_path: Path) -> None:
    data = tmp_path / "theirs.csv"
    data.write_text("id,model,method,lora_rank,resolution,frames,gradient_checkpointing,optimizer,base_precision,gpu,"
                    "peak_vram_gb,vram_unit,vram_kind,seconds_per_step\n"
                    "c1,Wan2.1 1.3B,LoRA,8,256x256,5,yes,AdamW8bit,fp8_scaled,RTX 4090,3.5,GiB,allocated,0.5\n"
                    "c2,wan-1.3b,lora,abc,256x256,5,yes,AdamW8bit,bf16,RTX 4090,3.5,GiB,allocated,\n")
    code, out, err = cli("validate", "--data", str(data), "--json")
    assert code == 0, err
    doc = orjson.loads(out)
    assert doc["kind"] == "training" and [r["status"] for r in doc["rows"]] == ["predicted", "unreadable"]


@pytest.mark.slow
def test_a_mixed_file_gives_both(tmp_path: Path) -> None:
    data = tmp_path / "mixed.json"
    data.write_text(json.dumps({"rows": [INFERENCE, SMALL, BAD[1]]}))
    code, out, err = cli("validate", "--data", str(data), "--json")
    assert code == 0, err
    doc = orjson.loads(out)
    assert "kind" not in doc and doc["schema_version"] == 2  # the inference document, unchanged
    assert [r["id"] for r in doc["rows"]] == [99] and doc["counts"]["rows"] == 1
    assert doc["rows"][0]["reason"].startswith("no device in the table for 'TPU v5'")
    t = doc["training"]
    assert t["kind"] == "training" and t["counts"]["rows"] == 2 and t["counts"]["predicted"] == 1
    code, out, _ = cli("validate", "--data", str(data))
    assert code == 0 and out.startswith("predicted 0 of 1 rows") and "\ntraining: predicted 1 of 2 rows" in out


@pytest.mark.parametrize("content,needle", [
    ("hello, this is not a measurement file\nat all", "no row names a model"),
    ("{not json", "is not JSON"),
    ('{"rows": 3}', "expected a list of rows"),
    ("[]", "expected a list of rows"),
])
def test_a_file_that_is_not_a_measurement_file_is_one_line(tmp_path: Path, content: str, needle: str) -> None:
    data = tmp_path / "notes.txt"
    data.write_text(content)
    for cmd in ("validate", "train-validate"):
        code, out, err = cli(cmd, "--data", str(data))
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], (cmd, err)
        assert out == ""


def test_a_measured_peak_is_set_beside_the_predicted_figure_of_its_kind() -> None:
    """Like for like: allocated bytes for an allocated peak; the process-memory model of inference on the
    step's weights and transient memory for reserved and nvidia-smi (plus the CUDA context), as for inference."""
    from fxmeter.estimate.memory import CUDA_CONTEXT_LAZY
    from fxmeter.estimate.training import Memory
    from fxmeter.validate_training import process_peak

    gib = 1 << 30
    mem = Memory({"base_weights": 20 * gib, "optimizer_states": gib // 3, "saved_activations": 3 * gib + 12345},
                 20 * gib + gib // 3 + 3 * gib + 12345, "start of the backward", 0)
    alloc, kind = process_peak(mem, "allocated", "8.9", 1)
    assert (alloc, kind) == (mem.peak_bytes, "allocated")
    reserved, kind = process_peak(mem, "reserved", "8.9", 1)
    assert kind == "reserved" and alloc < reserved < alloc + 64 * (1 << 20)
    smi, kind = process_peak(mem, "nvidia-smi", "8.9", 1)
    assert kind == "nvidia-smi" and smi == reserved + CUDA_CONTEXT_LAZY
    assert process_peak(mem, "fits", "8.9", 1) == (smi, "nvidia-smi")
    assert process_peak(mem, "not stated", "8.9", 1) == (reserved, "reserved")
