"""The whole pipeline through the command line, on a tiny model folder (UMT5 + Wan transformer + Wan VAE).

Bad input is one ``error:`` line, exit 2; report, summary, top, compare and verify understand stages.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from fxmeter.cli.main import main
from tests.conftest import TINY_WAN

TINY_UMT5: dict[str, Any] = {
    "architectures": ["UMT5EncoderModel"], "model_type": "umt5", "d_model": 16, "d_kv": 4, "d_ff": 32, "num_layers": 2,
    "num_heads": 4, "vocab_size": 64, "feed_forward_proj": "gated-gelu", "is_gated_act": True,
    "relative_attention_num_buckets": 8, "relative_attention_max_distance": 16,
}
TINY_VAE: dict[str, Any] = {
    "_class_name": "AutoencoderKLWan", "base_dim": 8, "z_dim": 4, "dim_mult": [1, 2, 2, 2], "num_res_blocks": 1,
    "attn_scales": [], "temperal_downsample": [False, True, True], "dropout": 0.0,
    "latents_mean": [0.0] * 4, "latents_std": [1.0] * 4,
}
INDEX = {"_class_name": "WanPipeline", "transformer": ["diffusers", "WanTransformer3DModel"],
         "text_encoder": ["transformers", "UMT5EncoderModel"], "vae": ["diffusers", "AutoencoderKLWan"],
         "tokenizer": ["transformers", "T5TokenizerFast"]}


def folder(root: Path, *, vae: bool = True) -> Path:
    for name, cfg in (("transformer", TINY_WAN), ("text_encoder", TINY_UMT5), ("vae", TINY_VAE if vae else None)):
        if cfg is not None:
            (root / name).mkdir(parents=True, exist_ok=True)
            (root / name / "config.json").write_text(json.dumps(cfg))
    (root / "model_index.json").write_text(json.dumps(INDEX))
    return root


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return folder(tmp_path_factory.mktemp("tiny-pipeline") / "tiny")


def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def one_error(code: int, err: str, *needles: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def report(path: Path) -> dict[str, Any]:
    return orjson.loads(next(path.glob("*/static_analysis/*/report.json")).read_bytes())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def traced(tiny_pipeline: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out")
    code, stdout, err = run("trace", "--config", str(tiny_pipeline), "-w", "ci-tiny", "--run-id", "all",
                            "--output-root", str(out), "--hardware", "h100")
    assert code == 0, err
    assert "whole generation (text_encoder x2, transformer x2, vae x1)" in stdout
    return out / "all"


@pytest.mark.slow
def test_report_has_every_stage_and_totals_stay_the_transformer(traced: Path) -> None:
    d = report(traced.parent)
    p = d["pipeline"]
    assert [s["name"] for s in p["stages"]] == ["text_encoder", "transformer", "vae"]
    te, tr, vae = p["stages"]
    # ci-tiny: 1 step, CFG 5.0 -> the transformer twice; the prompt and the negative prompt -> UMT5 twice
    assert (te["runs"], tr["runs"], vae["runs"]) == (2, 2, 1)
    assert te["modules"][0]["id"] == "text_encoder" and vae["modules"][0]["id"] == "vae"
    assert any(m["id"].startswith("text_encoder.encoder.block.0.") for m in te["modules"])
    # totals.end_to_end is the denoising loop; the pipeline sums every stage's runs
    assert d["totals"]["end_to_end"]["flops"] == tr["end_to_end"]["flops"] == 2 * tr["per_run"]["flops"]
    assert p["end_to_end"]["flops"] == sum(s["end_to_end"]["flops"] for s in p["stages"])
    assert p["end_to_end"]["flops"] > d["totals"]["end_to_end"]["flops"]
    # the VAE in float32 (the pipeline's), the rest in bf16
    assert (te["dtype"], vae["dtype"]) == ("bfloat16", "float32")
    assert p["weight_bytes"] == sum(s["weight_bytes"] for s in p["stages"])
    assert d["memory"]["weight_bytes"] == tr["weight_bytes"]
    assert p["residency"]["policy"] == "none" and p["residency"]["fit"]["fits"] is True
    assert {x["policy"] for x in p["policies"]} == {"none", "model", "sequential", "wan", "wan+t5_cpu"}
    summary = (next(traced.glob("static_analysis/*")) / "summary.md").read_text()
    assert summary.index("## Pipeline") < summary.index("## Workload")


@pytest.mark.slow
def test_stages_subset_and_stage_dtype(tiny_pipeline: Path, tmp_path: Path) -> None:
    code, _, err = run("trace", "--config", str(tiny_pipeline), "-w", "ci-tiny", "--stages", "vae", "--stage-dtype",
                       "vae=bf16", "--output-root", str(tmp_path), "--run-id", "v")
    assert code == 0, err
    d = report(tmp_path)
    assert [s["name"] for s in d["pipeline"]["stages"]] == ["vae"]
    assert d["pipeline"]["stages"][0]["dtype"] == "bfloat16"
    assert d["trace"]["options"]["stages"] == ["vae"] and d["trace"]["options"]["stage_dtypes"] == {"vae": "bfloat16"}
    assert d["modules"][0]["id"] == "transformer"  # the transformer is still what totals and modules describe


def test_model_offload_moves_each_component_once(tiny_pipeline: Path, tmp_path: Path) -> None:
    code, _, err = run("trace", "--config", str(tiny_pipeline), "-w", "ci-tiny", "--offload", "model",
                       "--output-root", str(tmp_path), "--run-id", "m")
    assert code == 0, err
    r = report(tmp_path)["pipeline"]["residency"]
    weights = {s["component"]: s["weight_bytes"] for s in report(tmp_path)["pipeline"]["stages"]}
    assert r["policy"] == "model"
    assert r["host_to_device_bytes"] == r["device_to_host_bytes"] == sum(weights.values())


@pytest.mark.parametrize(("args", "needles"), [
    (("--stages", "vea"), ("unknown stage 'vea'", "did you mean 'vae'", "text_encoder, transformer, vae")),
    (("--stages", "all,vae"), ("cannot be combined",)),
    (("--offload", "disk"), ("unknown --offload policy 'disk'",)),
    (("--stage-dtype", "vae"), ("STAGE=DTYPE",)),
    (("--stage-dtype", "vae=fp64"), ("unknown dtype 'fp64'",)),
    (("--stage-dtype", "unet=fp16"), ("unknown stage 'unet'",)),
    (("--stage-dtype", "transformer=fp16"), ("--dtype",)),
    (("--stages", "transformer", "--t5-cpu"), ("--t5-cpu", "none")),
])
def test_bad_stage_options_are_one_line(tiny_pipeline: Path, tmp_path: Path, args: tuple[str, ...],
                                        needles: tuple[str, ...]) -> None:
    code, _, err = run("trace", "--config", str(tiny_pipeline), "-w", "ci-tiny", "--output-root", str(tmp_path), *args)
    one_error(code, err, *needles)
    assert not any(tmp_path.iterdir())


def test_policy_the_pipeline_does_not_have(tmp_path: Path) -> None:
    code, _, err = run("trace", "flux.1-dev", "--offload", "wan", "--output-root", str(tmp_path))
    one_error(code, err, "--offload wan", "flux.1-dev's pipeline has: none, model, sequential")
    code, _, err = run("trace", "flux.1-dev", "--t5-cpu", "--output-root", str(tmp_path))
    one_error(code, err, "--t5-cpu", "no such option")


def test_folder_missing_a_stage_config_names_the_file(tmp_path: Path) -> None:
    broken = folder(tmp_path / "broken", vae=False)
    code, _, err = run("trace", "--config", str(broken), "-w", "ci-tiny", "--output-root", str(tmp_path / "o"))
    one_error(code, err, "model_index.json lists 'vae' but vae/config.json is missing", "--stages")
    code, _, err = run("trace", "--config", str(broken), "-w", "ci-tiny", "--stages", "text_encoder,transformer",
                       "--output-root", str(tmp_path / "o"))
    assert code == 0, err


def test_a_transformer_config_alone_has_a_transformer_pipeline(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(TINY_WAN))
    code, _, err = run("trace", "--config", str(tmp_path / "config.json"), "-w", "ci-tiny", "--output-root", str(tmp_path / "o"))
    assert code == 0, err
    d = report(tmp_path / "o")
    assert [s["name"] for s in d["pipeline"]["stages"]] == ["transformer"]
    assert any("not modeled: text_encoder, vae" in n for n in d["notes"])


def test_top_by_stage_and_inside_a_stage(traced: Path) -> None:
    code, out, err = run("top", str(traced), "--by", "stage")
    assert code == 0, err
    assert "top stages by tensor_core_flops per generation" in out and "text_encoder (x2)" in out
    code, out, err = run("top", str(traced), "--stage", "vae", "-k", "3")
    assert code == 0, err
    assert "per run of stage vae" in out and "vae.decoder." in out
    code, out, err = run("top", str(traced), "--stage", "text_encoder", "--by", "op", "--json")
    assert code == 0, err
    t = json.loads(out)
    assert t["stage"] == "text_encoder" and {r["key"] for r in t["rows"]} >= {"aten.linear.default"}
    code, _, err = run("top", str(traced), "--stage", "unet")
    one_error(code, err, "unknown stage 'unet'", "text_encoder, transformer, vae")


def test_compare_shows_each_stage(traced: Path, tiny_pipeline: Path, tmp_path: Path) -> None:
    code, _, err = run("trace", "--config", str(tiny_pipeline), "-w", "ci-tiny", "--height", "512", "--width", "512",
                       "--output-root", str(tmp_path), "--run-id", "big")
    assert code == 0, err
    code, out, err = run("compare", str(traced), str(tmp_path / "big"), "--json")
    assert code == 0, err
    c = json.loads(out)
    keys = [r["key"] for r in c["stages"]]
    assert keys[:3] == ["stage text_encoder (tensor_core_flops)", "stage transformer (tensor_core_flops)",
                        "stage vae (tensor_core_flops)"]
    te = c["stages"][0]
    assert te["delta"] == 0  # the text encoder does not see the resolution
    vae = c["stages"][2]
    assert vae["b"] > vae["a"]


def test_verify_checks_every_stage(tiny_pipeline: Path, tmp_path: Path) -> None:
    code, out, err = run("verify", "--config", str(tiny_pipeline), "-w", "ci-tiny", "--output-root", str(tmp_path),
                         "--run-id", "v")
    assert code == 0, err + out
    assert "stage text_encoder (UMT5EncoderModel" in out and "stage vae (AutoencoderKLWan" in out
    doc = json.loads(next(tmp_path.glob("v/static_analysis/*/verify/stages.json")).read_text())
    assert doc["passed"] and [s["name"] for s in doc["stages"]] == ["text_encoder", "vae"]
    for s in doc["stages"]:
        assert s["layers"]["failed"] == 0 and s["end2end"]["per_forward"]["rel_err"] == 0.0
