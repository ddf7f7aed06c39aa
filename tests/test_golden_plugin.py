"""The fxmeter_golden pytest plugin: missing golden, mismatch, update, volatile fields, options."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from fxmeter.errors import ReportError
from fxmeter.pytest_plugin import diff, dumps, project
from tests.reports_for_tests import make_report

pytest_plugins = ["pytester"]

TEST_FILE = """
import orjson
from pathlib import Path

def test_cost(fxmeter_golden):
    data = orjson.loads(Path(__file__).with_name("report.json").read_bytes())
    fxmeter_golden.check(data, "toy.json", rtol=RTOL)
"""


def setup_project(pytester: pytest.Pytester, data: dict[str, object], rtol: float = 0.0) -> Path:
    pytester.makepyfile(test_toy=TEST_FILE.replace("RTOL", repr(rtol)))
    report = pytester.path / "report.json"
    report.write_bytes(orjson.dumps(data))
    return report


def test_missing_golden_is_written_and_fails(pytester: pytest.Pytester) -> None:
    setup_project(pytester, make_report())
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*golden*toy.json did not exist; wrote it*"])
    golden = pytester.path / "goldens" / "toy.json"
    assert golden.exists()
    # the second run compares against what was written and passes
    pytester.runpytest().assert_outcomes(passed=1)


def test_mismatch_fails_naming_module_and_metric(pytester: pytest.Pytester) -> None:
    report = setup_project(pytester, make_report())
    pytester.runpytest()  # writes the golden
    report.write_bytes(orjson.dumps(make_report(attn_tc=110)))
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    # blocks.*.attn own cost 3 x 100 -> 3 x 110: the module total grows by 30 (+10%)
    result.stdout.fnmatch_lines([
        "*report differs from golden*",
        "*totals.per_forward.tensor_core_flops: 500 -> 530 (+30, +6%)*",
        "*modules[[]t.blocks.*.attn[]].per_forward.tensor_core_flops: 300 -> 330 (+30, +10%)*",
        "*--fxmeter-update-goldens*",
    ])
    assert "Traceback" not in result.stdout.str()


def test_update_flag_rewrites_and_passes(pytester: pytest.Pytester) -> None:
    report = setup_project(pytester, make_report())
    pytester.runpytest()
    report.write_bytes(orjson.dumps(make_report(attn_tc=110)))
    pytester.runpytest("--fxmeter-update-goldens").assert_outcomes(passed=1)
    golden = json.loads((pytester.path / "goldens" / "toy.json").read_text())
    assert golden["totals"]["per_forward"]["tensor_core_flops"] == 530
    pytester.runpytest().assert_outcomes(passed=1)


def test_volatile_fields_are_ignored(pytester: pytest.Pytester) -> None:
    report = setup_project(pytester, make_report())
    pytester.runpytest()
    data = make_report(run_id="another-run")
    data["tool"]["torch"] = "9.9"
    data["trace"]["seconds"] = 99.0
    data["trace"]["cache"] = "cache"
    report.write_bytes(orjson.dumps(data))
    pytester.runpytest().assert_outcomes(passed=1)


def test_rtol_allows_small_changes(pytester: pytest.Pytester) -> None:
    report = setup_project(pytester, make_report(), rtol=0.1)
    pytester.runpytest()
    report.write_bytes(orjson.dumps(make_report(attn_tc=101)))  # totals move by 3 / 500 = 0.6% < 10%
    pytester.runpytest().assert_outcomes(passed=1)


def test_ini_golden_dir(pytester: pytest.Pytester) -> None:
    setup_project(pytester, make_report())
    pytester.makeini("[pytest]\nfxmeter_golden_dir = ci/goldens\n")
    pytester.runpytest("--fxmeter-update-goldens").assert_outcomes(passed=1)
    assert (pytester.path / "ci" / "goldens" / "toy.json").exists()
    assert not (pytester.path / "goldens").exists()


def test_help_shows_the_option(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*--fxmeter-update-goldens*", "*fxmeter_golden_dir*"])


def test_projection_is_small_and_stable() -> None:
    p = project(make_report())
    assert sorted(p) == ["categories", "fxmeter_golden", "memory", "model", "modules", "schema_version",
                         "totals", "unmodeled_ops", "workload"]
    # depth <= 2 plus one level under the fold; no node lists, no run id, no tool versions
    assert list(p["modules"]) == ["t", "t.blocks", "t.blocks.*", "t.blocks.*.attn", "t.blocks.*.ff", "t.proj_out"]
    assert p["modules"]["t.blocks.*"]["count"] == 3
    assert b"run_id" not in dumps(p) and b"seconds" not in dumps(p) and b"0.0.test" not in dumps(p)
    assert project(p) == p
    assert diff(p, project(make_report(run_id="x"))) == []


def test_diff_exclude_and_refusal() -> None:
    a, b = project(make_report()), project(make_report(attn_tc=110))
    assert diff(a, b, exclude=("totals", "modules", "categories")) == []
    with pytest.raises(ReportError):
        project({"not": "a report"})
