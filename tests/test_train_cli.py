"""fxmeter train: every bad input is one error: line and exit 2, before any tracing; nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fxmeter.cli.main import main


@pytest.mark.parametrize("args,needle", [
    (["--lora-rank", "0"], "--lora-rank must be a positive integer"),
    (["--lora-rank", "-3"], "--lora-rank must be a positive integer"),
    (["--optimizer", "lion"], "unknown optimizer 'lion'"),
    (["--dataset-clips", "-5"], "--dataset-clips must be a positive integer"),
    (["--dataset-clips", "0"], "--dataset-clips must be a positive integer"),
    (["--grad-accum", "0"], "--grad-accum must be a positive integer"),
    (["--steps", "0"], "--steps must be a positive integer"),
    (["--steps", "-2"], "--steps must be a positive integer"),
    (["--batch", "0"], "--batch must be a positive integer"),
    (["--gradient-checkpointing", "half"], "unknown gradient checkpointing"),
    (["--blocks-to-swap", "29"], "--blocks-to-swap must be between 0 and 28"),
    (["--blocks-to-swap", "-1"], "--blocks-to-swap must be a non-negative integer"),
    (["--base-precision", "int4"], "unknown base precision"),
    (["--full", "--lora-rank", "8"], "exclude each other"),
    (["--full", "--base-precision", "fp8"], "needs LoRA"),
    (["--fsdp"], "--fsdp needs --gpus 2"),
    (["--gpus", "0"], "--gpus must be a positive integer"),
    (["--attention", "sage"], "unknown --attention"),
    (["--hardware", "nosuchgpu"], "nosuchgpu"),
    (["--lora-targets", ","], "--lora-targets is empty"),
    (["--encoders", "gpu"], "unknown --encoders"),
])
def test_bad_input_is_one_error_line(tmp_path: Path, args: list[str], needle: str) -> None:
    r = CliRunner().invoke(main, ["train", "wan2.1-t2v-1.3b", "-w", "ci-tiny", "--output-root", str(tmp_path),
                                  "--run-id", "r", *args])
    assert r.exit_code == 2, r.output
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], r.output
    assert not (tmp_path / "r").exists()


def test_unknown_model(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["train", "nosuchmodel", "--output-root", str(tmp_path)])
    assert r.exit_code == 2 and r.output.startswith("error:")


@pytest.mark.slow
def test_train_writes_training_json_and_summary(tmp_path: Path) -> None:
    from fxmeter.base.fileio import loads

    r = CliRunner().invoke(main, ["train", "wan2.1-t2v-1.3b", "-w", "ci-tiny", "--lora-rank", "8",
                                  "--gradient-checkpointing", "full", "--hardware", "h100,rtx4090",
                                  "--dataset-clips", "100", "--steps", "50", "--encoders", "resident", "--price-per-hour", "h100=2.0,rtx4090=0.5", "--fit",
                                  "--output-root", str(tmp_path), "--run-id", "r"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "r" / "training" / "wan2_1"
    doc = loads((out / "training.json").read_bytes())
    assert doc["setup"]["lora_rank"] == 8 and doc["setup"]["checkpointing"] == "full"
    assert [d["device"] for d in doc["devices"]] == ["h100", "rtx4090"]
    h100 = doc["devices"][0]
    assert h100["epoch"]["steps"] == 100 and h100["epoch"]["dollars"] == pytest.approx(h100["epoch"]["gpu_hours"] * 2.0)
    assert h100["run"]["steps"] == 50 and h100["run"]["seconds"] == pytest.approx(50 * h100["seconds_per_step"]["predicted_s"])
    # resident encoders: UMT5-XXL in bf16 and the Wan VAE in fp32 (as WanPipeline loads it) stay on the GPU
    enc = doc["encoders"]["weight_bytes"]
    assert set(enc) == {"text_encoder", "vae"} and enc["vae"] % 4 == 0 and enc["text_encoder"] > 10 * 2**30
    assert h100["memory"]["parts"]["encoders"] == sum(enc.values())
    assert sum(h100["memory"]["parts"].values()) == h100["memory"]["peak_bytes"]
    assert h100["seconds_per_step"]["predicted_s"] >= h100["seconds_per_step"]["bound_s"] > 0
    assert h100["seconds_per_step"]["predicted_parts_s"]["recompute"] > 0
    assert doc["fit"][0]["fits"] is True
    # --fit drops the checkpointing (it fits without and saves the recompute) but keeps adamw: adafactor's smaller
    # optimizer step on a LoRA's few parameters is a gain under 1%, not a reason to move a knob
    best = doc["fit"][0]["setup"]
    assert (best["optimizer"], best["checkpointing"], best["base_precision"], best["blocks_to_swap"]) == \
        ("adamw", "none", "bf16", 0)
    assert doc["fit"][0]["predicted_s_per_step"] < h100["seconds_per_step"]["predicted_s"]
    assert "training step (LoRA rank 8)" in (out / "summary.md").read_text()
    again = CliRunner().invoke(main, ["train", "wan2.1-t2v-1.3b", "-w", "ci-tiny", "--output-root", str(tmp_path),
                                      "--run-id", "r"])
    assert again.exit_code == 2 and "exists" in again.output


@pytest.mark.slow
def test_fp8_keep_is_the_trainers_exclude_list(tmp_path: Path) -> None:
    """--fp8-keep: the block Linears an fp8 base keeps in bf16; keeping more of them costs more base bytes."""
    from fxmeter.base.fileio import loads

    def base_bytes(*keep: str) -> tuple[int, list[str]]:
        run = f"k{len(keep)}"
        r = CliRunner().invoke(main, ["train", "wan2.1-t2v-1.3b", "-w", "ci-tiny", "--base-precision", "fp8",
                                      *keep, "--output-root", str(tmp_path), "--run-id", run])
        assert r.exit_code == 0, r.output
        doc = loads((tmp_path / run / "training" / "wan2_1" / "training.json").read_bytes())
        return doc["devices"][0]["memory"]["parts"]["base_weights"], doc["setup"]["fp8_keep"]

    default, keep = base_bytes()
    assert keep == ["norm", "modulation"]
    more, keep = base_bytes("--fp8-keep", "norm,ffn")
    assert keep == ["norm", "ffn"] and more > default  # Wan's feed-forward Linears back in bf16


@pytest.mark.slow  # one forward + backward trace (~9 s)
def test_a_setup_that_does_not_fit_says_its_seconds_are_hypothetical_and_points_to_fit(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["train", "wan2.1-t2v-1.3b", "-w", "ci-tiny", "--batch", "4096", "--hardware", "rtx4090",
                                  "--output-root", str(tmp_path), "--run-id", "r"])
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if "RTX 4090" in x)
    assert "GiB allocated (does NOT fit)" in line and "(as if it fit: no such run is possible as configured)" in line
    assert "add --fit to search the fastest setup that fits" in r.output
    peak = line.split("peak ")[1].split(" GiB")[0]
    assert "," in peak  # thousands separated: 5,871.02 GiB, not 5871.02
