"""fxmeter compare: totals, module/category attribution, added/removed, refusals, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from fxmeter.cli.main import main
from fxmeter.errors import ReportError
from fxmeter.report.compare import compare, render_compare
from tests.reports_for_tests import make_report, wan_reports


def test_growth_is_attributed_to_the_folded_module() -> None:
    a, b = make_report(attn_tc=100), make_report(attn_tc=160)
    c = compare(a, b)
    # tensor-core per forward: 500 -> 3 x (160 + 50) + 50 = 680, all 180 of the growth in blocks.*.attn
    pf = {d.key: d for d in c.totals}["per_forward.tensor_core_flops"]
    assert (pf.a, pf.b, pf.delta) == (500, 680, 180) and pf.ratio == pytest.approx(1.36)
    top = c.modules[0]
    assert (top.key, top.a, top.b, top.delta, top.share) == ("t.blocks.*.attn", 300, 480, 180, 1.0)
    assert c.categories[0].key == "self_attention_core" and c.categories[0].share == 1.0
    assert "100.0% of the change is in t.blocks.*.attn (3 blocks, summed)" in c.headline
    # end to end = per forward x 2 steps x 2 passes: 4 x 180 = 720
    assert {d.key: d for d in c.totals}["end_to_end.tensor_core_flops"].delta == 720
    assert c.added == () and c.removed == () and c.modules_omitted == 0


def test_unchanged_rows_sort_after_changed_ones_ties_by_id() -> None:
    c = compare(make_report(), make_report(attn_tc=101), k=5)
    assert [m.key for m in c.modules] == ["t.blocks.*.attn", "t.blocks.*.ff.net.2", "t.proj_out"]
    assert [m.delta for m in c.modules] == [3, 0, 0]


def test_different_depth_models_share_folded_ids() -> None:
    c = compare(make_report(blocks=3), make_report(blocks=5))
    # 2 more blocks: attn 2 x 100 = 200 of a 300 growth (66.7%), ff.net.2 2 x 50 = 100
    assert [(m.key, m.delta, m.count_a, m.count_b) for m in c.modules[:2]] == [
        ("t.blocks.*.attn", 200, 3, 5), ("t.blocks.*.ff.net.2", 100, 3, 5)]
    assert c.modules[0].share == pytest.approx(2 / 3)
    assert any("repeated blocks differ in number: t.blocks.* x3 vs x5" in n for n in c.notes) and any("different models" in n for n in c.notes)
    assert c.added == () and c.removed == ()
    # unfolded, blocks 3 and 4 are new modules (6 each: block, attn, ff, ff.net, ff.net.0, ff.net.2)
    c = compare(make_report(blocks=3), make_report(blocks=5), fold=False)
    assert c.added[:2] == ("t.blocks.3", "t.blocks.3.attn") and len(c.added) == 12 and c.removed == ()


def test_added_and_removed_modules() -> None:
    a = make_report()
    b = make_report()
    b["modules"] = [m for m in b["modules"] if m["id"] != "t.proj_out"]
    c = compare(a, b)
    assert c.removed == ("t.proj_out",) and c.added == ()
    assert compare(b, a).added == ("t.proj_out",)
    assert "removed (in A only): 1 module(s)" in render_compare(c)


def test_refuses_non_reports(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="not an fxmeter report"):
        compare({"hello": 1}, make_report())
    wrong = make_report()
    wrong["schema_version"] = 1  # a report of the previous schema (predicted_seconds meant the bound then)
    with pytest.raises(ReportError, match="schema_version 1; this fxmeter reads 2"):
        compare(make_report(), wrong)
    with pytest.raises(ReportError, match="no such report"):
        compare(tmp_path / "nope.json", make_report())


def test_cli_compare(tmp_path: Path) -> None:
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    pa.write_bytes(orjson.dumps(make_report()))
    pb.write_bytes(orjson.dumps(make_report(attn_tc=160)))
    r = CliRunner().invoke(main, ["compare", str(pa), str(pb)])
    assert r.exit_code == 0, r.output
    assert "t.blocks.*.attn (3 blocks, summed)" in r.output and "+180 FLOP" in r.output and "+36.00%" in r.output
    r = CliRunner().invoke(main, ["compare", str(pa), str(pb), "--json", "--metric", "bytes"])
    doc = json.loads(r.output)
    assert doc["metric"] == "bytes" and {m["delta"] for m in doc["modules"]} == {0}  # bytes did not move
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    for args in ([str(bad), str(pb)], [str(pa), str(tmp_path / "none.json")], [str(pa), str(pb), "-k", "0"]):
        r = CliRunner().invoke(main, ["compare", *args])
        assert r.exit_code == 2 and r.output.startswith("error: ") and len(r.output.splitlines()) == 1, r.output


@pytest.mark.slow
def test_480p_to_720p_growth_is_in_the_attention_core() -> None:
    reps = wan_reports("wan2.1-t2v-14b")
    c = compare(reps["480p"], reps["720p"])
    pf = {d.key: d for d in c.totals}["per_forward.tensor_core_flops"]
    assert pf.b == 6_523_436_592_005_120 and pf.ratio == pytest.approx(3.887, abs=1e-3)
    # tokens 32,760 -> 75,600; attention is quadratic in tokens, so attn1 carries most of the growth
    assert c.modules[0].key == "transformer.blocks.*.attn1" and c.modules[0].count_b == 40
    assert c.modules[0].share == pytest.approx(0.785, abs=1e-3)
    assert sum(m.delta for m in compare(reps["480p"], reps["720p"], k=1000).modules) == pf.delta
    assert c.added == () and c.removed == ()
    assert {d.key: d for d in c.memory}["memory.weight_bytes"].delta == 0
