"""Audit (issue 10), reader side: report shapes, run folders, golden files, units, the Python API.

Every report fxmeter writes matches the shipped JSON Schema; every malformed report is
one ``error:`` line (exit 2) in top / compare / summary and a ReportError in the API.
"""

from __future__ import annotations

import copy
import inspect
import json
import re
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from click.testing import CliRunner

import fxmeter
from fxmeter import pytest_plugin
from fxmeter.base.units import si_bytes, with_unit
from fxmeter.cli.main import main
from fxmeter.errors import FxmeterError, ReportError, UsageError
from fxmeter.estimate.hardware import HardwareError
from fxmeter.report import Report
from fxmeter.report.compare import compare, render_compare
from fxmeter.report.document import as_document, loads, report_schema, schema_problem, schema_validator, validate
from fxmeter.report.summary import render
from fxmeter.report.top import render_top, top
from tests.conftest import TINY_WAN
from tests.reports_for_tests import make_report

pytest_plugins = ["pytester"]


def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def one_error_line(code: int, err: str, *needles: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


# -- 1. every report fxmeter produces matches the schema ------------------------------------------
def _pure_python_errors(data: dict[str, Any]) -> list[str]:
    return [f"{e.json_path}: {e.message[:100]}" for e in schema_validator().iter_errors(data)]


def test_schema_is_valid_draft_2020_12_and_shipped() -> None:
    text = resources.files("fxmeter.data").joinpath("report.schema.json").read_text()
    schema = json.loads(text)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert report_schema() == schema


def test_schema_describes_every_key_the_readme_documents() -> None:
    """The README's report.json table is the contract: each key it names is in the schema."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## report.json", 1)[1]
    table = "\n".join(ln for ln in section.split("\n\n|", 1)[1].split("\n\n", 1)[0].splitlines())
    schema = report_schema()
    props, defs = schema["properties"], schema["$defs"]
    sections = {
        "tool": props["tool"]["properties"], "model": props["model"]["properties"],
        "workload": props["workload"]["properties"], "trace": props["trace"]["properties"],
        "totals": {**props["totals"]["properties"], **defs["metrics"]["properties"]},
        "memory": props["memory"]["properties"],
        "modules": {**defs["module"]["properties"], **defs["metrics"]["properties"]},
        "categories": {**defs["category"]["properties"], **defs["metrics"]["properties"]},
        "unmodeled_ops": props["unmodeled_ops"]["items"]["properties"],
        "nodes": {**defs["node"]["properties"], **defs["metrics"]["properties"]},
    }
    seen = 0
    for row in table.splitlines():
        m = re.match(r"\| `(\w+)` \| (.*) \|$", row)
        if not m:
            continue
        key, text = m.groups()
        assert key in props, key
        if key not in sections:
            continue
        text = re.sub(r"\([^()]*\)", "", text)  # "(`dynamic`/`static`)": values, not keys
        for name in re.findall(r"`([a-z_]+)`", text):
            assert name in sections[key], f"README documents {key}.{name}; the schema does not"
            seen += 1
    assert seen > 50


TWO_EXPERTS = dict(TINY_WAN, _pipeline={
    "experts": ["transformer", "transformer_2"], "boundary_ratio": 0.875,
    "scheduler": {"_class_name": "UniPCMultistepScheduler", "flow_shift": 3.0, "num_train_timesteps": 1000,
                  "prediction_type": "flow_prediction", "use_flow_sigmas": True}})


def _produced(kind: str, tiny_config: Path, tmp_path: Path, report_720p: Report) -> Report:
    if kind == "14b-720p":
        return report_720p
    if kind == "14b-hardware-fp8-fused":  # warm: the session's 14B trace is cached
        return fxmeter.trace("wan2.1-t2v-14b", workload="720p", hardware="h100", precision="fp8", traffic="fused",
                             efficiency="tc=0.6,bw=0.8", run_id="hw")
    if kind == "14b-batched-cfg":
        return fxmeter.trace("wan2.1-t2v-14b", workload="720p", hardware="a100", batched_cfg=True, run_id="b")
    if kind == "tiny":
        return fxmeter.trace(config=tiny_config, workload="ci-tiny", run_id="t")
    if kind == "tiny-no-nodes-hardware":
        return fxmeter.trace(config=tiny_config, workload="ci-tiny", hardware="h100", include_nodes=False, run_id="t")
    if kind == "tiny-static":  # a workload outside a trace's guards is traced statically (no formulas, no guards)
        from fxmeter import api
        from fxmeter.cost import store
        from fxmeter.estimate.generation import StageInput
        from fxmeter.report.build import build

        req = api.request(None, "ci-tiny", config=tiny_config)
        (plan,) = req.model.stages(req.workload)
        sm = store.trace(req.model.component("transformer"), "bfloat16", dict(req.geometry.dims))
        est = api.estimate_request(req, [StageInput(plan, sm, dict(req.geometry.dims), "traced-static")])
        rep = build(est, model=req.model, workload=req.workload, geometry=req.geometry, run_id="s")
        assert rep["trace"]["mode"] == "static" and "formula" not in rep["modules"][0]
        return rep
    assert kind == "two-experts"
    cfg = tmp_path / "experts.json"
    cfg.write_text(json.dumps(TWO_EXPERTS))
    rep = fxmeter.trace(config=cfg, workload="ci-tiny", run_id="x")
    assert len(rep["components"]) == 2
    return rep


@pytest.mark.parametrize("kind", ["tiny", "tiny-static", "tiny-no-nodes-hardware", "two-experts", "14b-720p",
                                  "14b-hardware-fp8-fused", "14b-batched-cfg"])
@pytest.mark.slow
def test_every_produced_report_matches_the_schema(kind: str, tiny_config: Path, tmp_path: Path,
                                                  report_720p: Report) -> None:
    rep = _produced(kind, tiny_config, tmp_path, report_720p)
    assert schema_problem(rep.data) is None
    assert _pure_python_errors(rep.data) == []  # the pure-Python validator agrees with the compiled one
    assert _pure_python_errors(orjson.loads(rep.to_json())) == []
    path = rep.write(tmp_path / "out")
    again = Report.load(path)  # round trip through report.json
    assert again.data == orjson.loads(rep.to_json()) and again.path == path / "report.json"


def test_integers_beyond_64_bits_are_read_and_written_exactly(tmp_path: Path) -> None:
    """A legal-but-huge workload: end-to-end FLOPs above 2**64 stay exact integers (orjson stops at 64 bits)."""
    data = make_report()
    huge = 3 * 2**70 + 1
    e2e = data["totals"]["end_to_end"]
    e2e["tensor_core_flops"] = huge
    e2e["flops"] = huge + e2e["cuda_core_flops"]
    rep = Report.from_dict(validate(data))
    (tmp_path / "report.json").write_bytes(rep.to_json())
    back = Report.load(tmp_path)
    got = back.data["totals"]["end_to_end"]
    assert got["tensor_core_flops"] == huge and isinstance(got["tensor_core_flops"], int)
    assert got["flops"] == e2e["flops"] and back.totals.end_to_end.metrics.tensor_core_flops == huge
    assert loads(b'{"a": 123456789012345678901234567890}') == {"a": 123456789012345678901234567890}


# -- 1. malformed reports: one error line (CLI), ReportError (API) ----------------------------------
def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(d: dict[str, Any]) -> None:
        *head, last = path.split(".")
        for k in head:
            d = d[int(k)] if k.isdigit() else d[k]  # type: ignore[index]
        d[int(last) if last.isdigit() else last] = value  # type: ignore[index]

    return edit


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def edit(d: dict[str, Any]) -> None:
        *head, last = path.split(".")
        for k in head:
            d = d[int(k)] if k.isdigit() else d[k]  # type: ignore[index]
        del d[last]

    return edit


# name -> (edit of a valid report, what the error line must say)
MALFORMED: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "modules-a-string": (_set("modules", "x"), "$.modules: expected array"),
    "per-forward-null": (_set("totals.per_forward", None), "$.totals.per_forward: expected object, got null"),
    "workload-empty": (_set("workload", {}), "$.workload: missing key"),
    "categories-a-list": (_set("categories", [1, 2]), "$.categories: expected object"),
    "schema-version-true": (_set("schema_version", True), "schema_version true; this fxmeter reads 2"),
    "schema-version-1": (_set("schema_version", 1), "schema_version 1; this fxmeter reads 2"),
    "schema-version-string": (_set("schema_version", "2"), 'schema_version "2"'),
    "node-replicas-string": (_set("nodes.1.replicas", "3"), "$.nodes[1].replicas: expected integer"),
    "node-cost-float": (_set("nodes.1.per_forward.tensor_core_flops", 1.5), "$.nodes[1].per_forward.tensor_core_flops"),
    "nodes-an-object": (_set("nodes", {"a": 1}), "$.nodes: expected array"),
    "node-without-target": (_drop("nodes.0.target"), "$.nodes[0]: missing key 'target'"),
    "module-self-missing": (_drop("modules.3.self"), "$.modules[3]: missing key 'self'"),
    "module-flops-negative": (_set("modules.3.self.flops", -5), "$.modules[3].self.flops: must be >= 0"),
    "module-id-number": (_set("modules.2.id", 7), "$.modules[2].id: expected string"),
    "modules-empty": (_set("modules", []), "$.modules: must have at least 1"),
    "category-share-string": (_set("categories.ffn.tensor_core_share", "big"), "$.categories.ffn.tensor_core_share"),
    "memory-weights-string": (_set("memory.weight_bytes", "lots"), "$.memory.weight_bytes: expected integer"),
    "totals-without-end-to-end": (_drop("totals.end_to_end"), "$.totals: missing key 'end_to_end'"),
    "unmodeled-not-list": (_set("unmodeled_ops", "none"), "$.unmodeled_ops: expected array"),
    "notes-numbers": (_set("notes", [1]), "$.notes[0]: expected string"),
    "latent-shape-strings": (_set("workload.latent_shape", ["1"]), "$.workload.latent_shape[0]"),
    "slug-with-slash": (_set("model.slug", "../../etc"), "$.model.slug"),
    "hardware-without-seconds": (_set("hardware", {"name": "h100"}), "$.hardware: missing key"),
    "not-a-report": (lambda d: d.update(tool="x"), "is not an fxmeter report"),
}


@pytest.fixture(scope="module")
def valid_report() -> dict[str, Any]:
    data = make_report()
    assert schema_problem(data) is None
    return data


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_report_is_a_report_error_in_the_api(case: str, valid_report: dict[str, Any], tmp_path: Path) -> None:
    edit, needle = MALFORMED[case]
    bad = copy.deepcopy(valid_report)
    edit(bad)
    p = tmp_path / "report.json"
    p.write_bytes(orjson.dumps(bad))
    for call in (lambda: Report.load(p), lambda: validate(bad), lambda: compare(bad, valid_report),
                 lambda: compare(str(p), valid_report), lambda: top(bad), lambda: top(p),
                 lambda: pytest_plugin.project(bad), lambda: pytest_plugin.project(p)):
        with pytest.raises(ReportError) as e:
            call()
        assert needle in str(e.value) and "\n" not in str(e.value), str(e.value)


@pytest.mark.parametrize("command", ["top", "compare", "compare-b", "summary"])
@pytest.mark.parametrize("case", sorted(MALFORMED) + ["truncated-json", "empty-file", "a-folder-of-two-runs"])
def test_malformed_report_is_one_error_line_in_the_cli(case: str, command: str, valid_report: dict[str, Any],
                                                        tmp_path: Path) -> None:
    good = tmp_path / "good" / "report.json"
    good.parent.mkdir()
    good.write_bytes(orjson.dumps(valid_report))
    p = tmp_path / "bad" / "report.json"
    p.parent.mkdir()
    if case == "truncated-json":
        p.write_bytes(orjson.dumps(valid_report)[:200])
        needle = "is not a JSON file"
    elif case == "empty-file":
        p.write_bytes(b"")
        needle = "is not a JSON file"
    elif case == "a-folder-of-two-runs":
        for slug in ("a", "b"):
            (tmp_path / "bad" / "static_analysis" / slug).mkdir(parents=True)
            (tmp_path / "bad" / "static_analysis" / slug / "report.json").write_bytes(orjson.dumps(valid_report))
        p = tmp_path / "bad"
        needle = "holds 2 reports; name one"
    else:
        edit, needle = MALFORMED[case]
        bad = copy.deepcopy(valid_report)
        edit(bad)
        p.write_bytes(orjson.dumps(bad))
    args = {"top": ("top", str(p)), "compare": ("compare", str(p), str(good)), "compare-b": ("compare", str(good), str(p)),
            "summary": ("summary", str(p), "--no-plots")}[command]
    code, out, err = run(*args)
    one_error_line(code, err, needle)
    assert not (p.parent / "summary.md").exists()


def test_validation_is_fast_on_a_14b_report(report_720p: Report) -> None:
    """Not a timing test: the compiled validator answers for the whole 14B report (1,138 modules)."""
    assert len(report_720p["modules"]) > 1000 and schema_problem(report_720p.data) is None


# -- 4. a run folder is a REPORT --------------------------------------------------------------------
def test_run_folder_is_accepted_by_every_report_command(tiny_config: Path, tmp_path: Path) -> None:
    code, _, err = run("trace", "--config", str(tiny_config), "-w", "ci-tiny", "--run-id", "r1",
                       "--output-root", str(tmp_path))
    assert code == 0, err
    run_folder = tmp_path / "r1"
    for args in (("top", str(run_folder)), ("compare", str(run_folder), str(run_folder)),
                 ("summary", str(run_folder), "--no-plots"), ("top", str(run_folder / "static_analysis"))):
        code, out, err = run(*args)
        assert code == 0, (args, err)
    # summary writes beside the report it read, not into the run folder
    assert not (run_folder / "summary.md").exists()
    assert Report.load(run_folder).path == next(run_folder.glob("static_analysis/*/report.json"))
    code, _, err = run("top", str(tmp_path / "nothing-here"))
    one_error_line(code, err, "no such report file")
    (tmp_path / "empty").mkdir()
    code, _, err = run("top", str(tmp_path / "empty"))
    one_error_line(code, err, "no report.json in")


def test_a_report_path_that_is_a_folder_or_fifo_is_one_line(tmp_path: Path) -> None:
    import os

    (tmp_path / "r" / "report.json").mkdir(parents=True)
    code, _, err = run("top", str(tmp_path / "r" / "report.json"))
    one_error_line(code, err, "is a folder")
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    code, _, err = run("top", str(fifo))  # never opened: a FIFO would block the read forever
    one_error_line(code, err, "is not a regular file")


# -- 5. and 6. folded rows say what they are; human-facing numbers carry units ----------------------
def test_folded_rows_are_unambiguous_in_top_summary_and_verify(valid_report: dict[str, Any]) -> None:
    from fxmeter.cli.verify import table

    text = render_top(top(valid_report))
    assert "t.blocks.*.attn (3 blocks, summed)" in text and " x3" not in text
    md = render(as_document(valid_report))
    assert "`t.blocks.*.attn` (3 blocks, summed)" in md and "x3" not in md
    rows = [{"id": f"transformer.blocks.{i}.attn1", "analytic_flops": 100, "reference_flops": 100, "rel_err": 0.0,
             "pass": True} for i in range(3)]
    lines = table({"layers": rows})
    assert any("transformer.blocks.*.attn1 (each of 3)" in ln for ln in lines)


def test_units_beside_big_integers() -> None:
    assert with_unit(6_523_436_592_005_120, "tensor_core_flops") == "6.52 PFLOP"
    assert si_bytes(28_635_351_168) == "28.64 GB / 26.67 GiB"
    assert with_unit(512, "bytes_read") == "512 B" and with_unit(75_600, "tokens") == "75,600"


def test_compare_and_top_consoles_show_si_units(report_720p: Report) -> None:
    small = fxmeter.trace("wan2.1-t2v-14b", workload="480p", run_id="a")
    text = render_compare(compare(small, report_720p))
    assert "tensor_core_flops per forward 1.68 PFLOP -> 6.52 PFLOP" in text
    assert "28.64 GB / 26.67 GiB" in text  # weights
    assert not re.search(r"\d{1,3}(,\d{3}){5,}", text)  # no 16+ digit integers on the console
    top_text = render_top(top(report_720p))
    assert "4,682,022,912,000,000" in top_text and "4.68 PFLOP" in top_text
    md = render(report_720p)
    assert "| tensor_core_flops | 6,523,436,592,005,120 (6.52 PFLOP) |" in md
    for line in md.splitlines():  # every 16+ digit integer in summary.md has its unit beside it
        for m in re.finditer(r"\d{1,3}(,\d{3}){5,}", line):
            assert re.match(r" \(\d", line[m.end():]), line


def test_hardware_table_prints_a_dash_without_fp8() -> None:
    code, out, err = run("hardware")
    assert code == 0, err
    a100 = next(ln for ln in out.splitlines() if ln.startswith("a100"))
    assert "nan" not in out and a100.split()[2] == "-"


# -- 3. golden plugin: a folder where the golden should be; atomic writes ---------------------------
GOLDEN_TEST = """
import orjson
from pathlib import Path

def test_cost(fxmeter_golden):
    data = orjson.loads(Path(__file__).with_name("report.json").read_bytes())
    fxmeter_golden.check(data, "toy.json")
"""


@pytest.mark.parametrize("problem", ["golden-is-a-folder", "golden-not-a-golden", "golden-not-json", "report-malformed",
                                     "golden-folder-is-a-file"])
def test_golden_problems_fail_with_one_clear_message(problem: str, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_toy=GOLDEN_TEST)
    data = make_report()
    if problem == "golden-is-a-folder":
        (pytester.path / "goldens" / "toy.json").mkdir(parents=True)
        needle = "*golden*toy.json is a folder, not a file*"
    elif problem == "golden-not-a-golden":
        (pytester.path / "goldens").mkdir()
        (pytester.path / "goldens" / "toy.json").write_text("[1, 2]")
        needle = "*is not an fxmeter golden*"
    elif problem == "golden-not-json":
        (pytester.path / "goldens").mkdir()
        (pytester.path / "goldens" / "toy.json").write_text('{"fxmeter_golden": 1,')
        needle = "*golden*toy.json is not a JSON file*rewrite it with --fxmeter-update-goldens*"
    elif problem == "report-malformed":
        data["modules"] = "x"
        needle = "*fxmeter_golden: * is not a valid fxmeter report: $.modules: expected array*"
    else:
        (pytester.path / "goldens").write_text("a file where the golden folder goes")
        needle = "*cannot write golden*"
    (pytester.path / "report.json").write_bytes(orjson.dumps(data))
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([needle])
    assert "Traceback" not in result.stdout.str() and "IsADirectoryError" not in result.stdout.str()


def test_goldens_are_written_atomically(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """The golden is written through a temp file and a rename: an existing golden is never half-overwritten."""
    calls: list[Path] = []
    from fxmeter.base import fileio

    real = fileio.atomic_write

    def spy(path: Path, payload: bytes) -> None:
        calls.append(path)
        real(path, payload)

    monkeypatch.setattr(fileio, "atomic_write", spy)
    pytester.makepyfile(test_toy=GOLDEN_TEST)
    (pytester.path / "report.json").write_bytes(orjson.dumps(make_report()))
    result = pytester.runpytest_inprocess("--fxmeter-update-goldens")
    result.assert_outcomes(passed=1)
    golden = pytester.path / "goldens" / "toy.json"
    assert calls == [golden] and golden.read_bytes() == pytest_plugin.dumps(pytest_plugin.project(make_report()))
    assert [p.name for p in golden.parent.iterdir()] == ["toy.json"]  # no temp file left behind


def test_golden_of_a_huge_workload_keeps_exact_integers(pytester: pytest.Pytester) -> None:
    data = make_report()
    e2e = data["totals"]["end_to_end"]
    e2e["tensor_core_flops"] = 2**70 + 1  # beyond orjson's 64 bits
    e2e["flops"] = e2e["tensor_core_flops"] + e2e["cuda_core_flops"]
    pytester.makepyfile(test_toy="""
from pathlib import Path

def test_cost(fxmeter_golden):
    fxmeter_golden.check(Path(__file__).with_name("report.json"), "toy.json")  # a path: Report.load, exact ints
""")
    (pytester.path / "report.json").write_bytes(Report.from_dict(validate(data)).to_json())
    pytester.runpytest().assert_outcomes(failed=1)  # written
    assert b"1180591620717411303425" in (pytester.path / "goldens" / "toy.json").read_bytes()
    pytester.runpytest().assert_outcomes(passed=1)  # and read back equal


# -- 8. the Python API ------------------------------------------------------------------------------
def test_trace_has_its_real_signature_and_docstring() -> None:
    from fxmeter.base import knobs

    sig = inspect.signature(fxmeter.trace)
    named = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    # generated from the one declaration: model, workload, then every declared option with its default
    assert tuple(p.name for p in named) == fxmeter.TRACE_KEYWORDS
    declared = {k.name: k.default for k in knobs.knobs()}
    assert all(p.default == declared[p.name] for p in named if p.name != "model")
    assert [p.name for p in named[-7:]] == ["frames", "height", "width", "steps", "text_len", "batch", "guidance_scale"]
    doc = fxmeter.trace.__doc__ or ""
    assert "workload" in doc and "hardware" in doc
    assert all(f"{k.name}: " in doc for k in knobs.knobs() if k.name != "workload")


def test_import_fxmeter_imports_no_torch() -> None:
    import subprocess
    import sys

    code = "import sys, fxmeter, inspect; inspect.signature(fxmeter.trace); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("call,needle", [
    (lambda: fxmeter.trace("wan2.1-t2v-14b", hieght=480), "'hieght' (did you mean 'height'?)"),
    (lambda: fxmeter.trace("wan2.1-t2v-14b", hardwre="h100"), "'hardwre' (did you mean 'hardware'?)"),
    (lambda: fxmeter.trace("wan2.1-t2v-14b", colour=1), "it accepts: model, workload, config"),
])
def test_misspelled_keyword_lists_every_accepted_one(call: Callable[[], Any], needle: str) -> None:
    with pytest.raises(UsageError) as e:
        call()
    assert needle in str(e.value) and "batched_cfg" in str(e.value) and "height" in str(e.value)
    assert isinstance(e.value, TypeError) and isinstance(e.value, FxmeterError)


def test_verify_misspelled_keyword_lists_every_accepted_one() -> None:
    from fxmeter.api import VERIFY_KEYWORDS, verify

    with pytest.raises(UsageError, match=r"'devce' \(did you mean 'device'\?\).*tolerance.*frames"):
        verify("wan2.1-t2v-14b", devce="cpu")
    named = [p.name for p in inspect.signature(verify).parameters.values() if p.kind is not p.VAR_KEYWORD]
    assert tuple(named) == VERIFY_KEYWORDS


@pytest.mark.parametrize("hardware", [100, [1, 2], {"h100": 1}])
def test_hardware_takes_device_names(hardware: Any) -> None:
    # a name, "h100,a100" or a list of names (issue 14: devices side by side); anything else is one clear error
    with pytest.raises(HardwareError, match="hardware takes device names"):
        fxmeter.trace("wan2.1-t2v-14b", hardware=hardware)


@pytest.mark.parametrize("hardware", [["h100", "a100"], ("h100", "a100"), "h100,a100", "h100, a100"])
def test_hardware_list_compares_devices(hardware: Any) -> None:
    rep = fxmeter.trace("wan2.1-t2v-1.3b", workload="ci-tiny", hardware=hardware)
    assert rep.hardware is not None and rep.hardware.device["name"] == "h100"  # the first is the main device
    assert rep.devices is not None and [d.name for d in rep.devices] == ["h100", "a100"]
    for d in rep.devices:
        assert d.predicted_seconds >= d.bound_seconds > 0
        assert d.gpu_hours == pytest.approx(d.predicted_seconds / 3600)


def test_report_repr(valid_report: dict[str, Any], report_720p: Report) -> None:
    assert repr(report_720p) == "<Report wan2.1-t2v-14b @ 720p: 6.52 PFLOP/forward (tensor-core), run test-720p>"
    assert repr(as_document(valid_report)) == "<Report toy-3 @ toy: 500 FLOP/forward (tensor-core), run toy>"
    # an incomplete document never becomes a report: it is refused when read
    with pytest.raises(ReportError, match="not an fxmeter report"):
        as_document({"x": 1})


@pytest.mark.parametrize("k", [0, -1, True, 2.5])
def test_top_and_compare_refuse_bad_k(k: Any, valid_report: dict[str, Any]) -> None:
    with pytest.raises(ReportError, match="-k must be a positive integer"):
        top(valid_report, k=k)
    with pytest.raises(ReportError, match="-k must be a positive integer"):
        compare(valid_report, valid_report, k=k)


# -- 9. the same class elsewhere: what a hardware report's readers index, device files, NaN ---------
@pytest.mark.parametrize("edit,needle", [
    (_drop("counting.traffic_model"), "$.counting: missing key 'traffic_model'"),
    (_drop("totals.per_step.bound_seconds"), "$.totals.per_step: missing key 'bound_seconds'"),
    (_drop("modules.0.self_limiter"), "$.modules[0]"),
    (_set("modules.0.limiter", "gpu"), "$.modules[0].limiter: must be one of"),
    (_drop("modules.0.bound_seconds"), "$.modules[0]"),  # predicted seconds without the bound
    (_set("nodes.0.bound_seconds", -1.0), "$.nodes[0].bound_seconds: must be >= 0"),
    (_set("hardware.efficiency.tc", 0), "$.hardware.efficiency.tc: must be > 0"),
])
def test_hardware_report_shapes(edit: Callable[[dict[str, Any]], None], needle: str, tiny_config: Path,
                                tmp_path: Path) -> None:
    rep = fxmeter.trace(config=tiny_config, workload="ci-tiny", hardware="h100", efficiency="tc=0.6", run_id="h")
    bad = orjson.loads(rep.to_json())
    edit(bad)
    (tmp_path / "report.json").write_bytes(orjson.dumps(bad))
    code, _, err = run("summary", str(tmp_path), "--no-plots")  # summary.md's time table reads these
    one_error_line(code, err, needle)


def _key_paths(d: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key of a document (the first item of each list stands for all)."""
    if isinstance(d, dict):
        for k, v in d.items():
            yield (*path, k)
            yield from _key_paths(v, (*path, k))
    elif isinstance(d, list) and d:
        yield from _key_paths(d[0], (*path, 0))


def test_every_optional_key_may_be_missing(tiny_config: Path, tmp_path: Path) -> None:
    """A report the schema accepts loads and renders, whatever optional key it lacks (a report of an
    earlier fxmeter of this schema, or of another writer): never a KeyError or TypeError past validation."""
    import jsonschema_rs

    valid = jsonschema_rs.validator_for(report_schema()).is_valid  # the compiled validator: ~1 ms a document
    rep = fxmeter.trace(config=tiny_config, workload="ci-tiny", hardware="h100", efficiency="tc=0.6", run_id="o")
    blob = rep.to_json()
    full = orjson.loads(blob)
    tried = 0
    for path in _key_paths(full):
        d = orjson.loads(blob)  # a fresh copy (deepcopy is 10x slower)
        *head, last = path
        at: Any = d
        for k in head:
            at = at[k]
        del at[last]
        if not valid(d):
            continue  # required: refused with one line (tested above)
        tried += 1
        doc = as_document(d)
        render(doc)
        render_top(top(doc))
        render_compare(compare(doc, doc))
        for metric in ("bound_seconds", "predicted_seconds"):
            try:
                top(doc, "op", metric)
            except ReportError:
                pass  # e.g. a node list without seconds: one clear line
    assert tried > 20


def test_nan_is_not_a_json_number_even_beside_a_huge_integer(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_bytes(b'{"a": 123456789012345678901234567890, "b": NaN}')
    code, _, err = run("top", str(tmp_path))
    one_error_line(code, err, "is not a JSON file: NaN is not a JSON number")


@pytest.mark.parametrize("field,value", [("memory_gib", 1e300), ("memory_bandwidth", float("nan")),
                                         ("cuda_core_fp32", -1), ("memory_gib", True)])
def test_device_file_numbers_are_finite_and_sane(field: str, value: Any, tmp_path: Path) -> None:
    dev = {"name": "x", "tensor_core": {"bf16": 1e12}, "cuda_core_fp32": 1e12, "memory_bandwidth": 1e12, "memory_gib": 1}
    dev[field] = value
    p = tmp_path / "dev.json"
    p.write_text(json.dumps(dev))
    code, _, err = run("hardware", "--hardware-file", str(p))
    one_error_line(code, err, f"{field} must be a positive number")


@pytest.mark.parametrize("kind", ["folder", "fifo", "missing", "not-utf8", "nested-too-deep"])
def test_device_file_that_cannot_be_read_is_one_line(kind: str, tmp_path: Path) -> None:
    import os

    p = tmp_path / "dev.json"
    if kind == "folder":
        p.mkdir()
    elif kind == "fifo":
        os.mkfifo(p)
    elif kind == "not-utf8":
        p.write_bytes(b"\xff\xfe{}")
    elif kind == "nested-too-deep":
        p.write_text("[" * 100_000 + "]" * 100_000)
    code, _, err = run("hardware", "--hardware-file", str(p))
    one_error_line(code, err, "hardware file")


@pytest.mark.parametrize("value,text", [
    (1234.5, "1,234.5 s"), (0.0123, "12.30 ms"), (2e-6, "2.0 us"), (0.0, "0 s"),
    (-237.9648028, "-238.0 s"), (-0.0123, "-12.30 ms"), (-2e-6, "-2.0 us"),
])
def test_seconds_keep_their_unit_and_sign(value: float, text: str) -> None:
    """A compare delta of -238 s reads -238.0 s, not -237964802.8 us."""
    from fxmeter.base.units import seconds

    assert seconds(value) == text
