"""fxmeter top: ranking, folding, ties, metrics, and the CLI (toy report + the real 14B at 720p)."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from fxmeter.cli.main import main
from fxmeter.cost.tree import fold_id, foldable_parents
from fxmeter.errors import ReportError
from fxmeter.estimate.metrics import Metrics
from fxmeter.report import Report
from fxmeter.report.document import validate
from fxmeter.report.top import bar, group_modules, render_top, top
from tests.reports_for_tests import make_report, wan_reports


@pytest.fixture()
def toy_path(tmp_path: Path) -> Path:
    p = tmp_path / "report.json"
    p.write_bytes(orjson.dumps(make_report()))
    return p


def test_fold_only_same_class_numbered_children() -> None:
    data = make_report()
    # blocks.0..2 are all Block -> fold; ff.net.0 (GELU) and ff.net.2 (Linear) differ -> no fold
    assert foldable_parents((m["id"], m["class"]) for m in data["modules"]) == {"t.blocks"}
    assert fold_id("t.blocks.2.ff.net.0", {"t.blocks"}) == "t.blocks.*.ff.net.0"
    rep = Report.from_dict(validate(data))
    groups = group_modules(rep)
    assert groups["t.blocks.*.attn"].count == 3
    # own tensor-core FLOPs of the folded attention: 3 x 100 = 300
    assert groups["t.blocks.*.attn"].own.tensor_core_flops == 300
    assert "t.blocks.1.attn" in group_modules(rep, fold=False)


def test_top_modules_by_self_folded() -> None:
    t = top(make_report(), "module", "tensor_core_flops", k=10)
    # total 500: attn 3 x 100 = 300 (60%), ff.net.2 3 x 50 = 150 (30%), proj_out 50 (10%)
    assert [(r.key, r.value, r.count) for r in t.rows] == [
        ("t.blocks.*.attn", 300, 3), ("t.blocks.*.ff.net.2", 150, 3), ("t.proj_out", 50, 1)]
    assert t.total == 500 and t.rows[0].share == pytest.approx(0.6)
    assert t.omitted == 0


def test_top_unfolded_ties_in_natural_id_order() -> None:
    t = top(make_report(blocks=12), "module", "tensor_core_flops", k=12, fold=False)
    # 12 attentions tie at 100; natural order puts blocks.2 before blocks.10
    keys = [r.key for r in t.rows]
    assert keys[:3] == ["t.blocks.0.attn", "t.blocks.1.attn", "t.blocks.2.attn"]
    assert keys.index("t.blocks.2.attn") < keys.index("t.blocks.10.attn")
    assert t.omitted == 13  # 12 ff.net.2 + proj_out, all 50, cut by k=12


def test_top_depth_uses_totals() -> None:
    t = top(make_report(), "module", "flops", depth=2)
    # blocks.* at depth 2: 3 x (attn 100 + 5, ff.net.0 7, ff.net.2 50) = 3 x 162 = 486
    assert [(r.key, r.value) for r in t.rows] == [("t.blocks.*", 486)]
    assert t.total == 546  # 500 tensor-core + 46 CUDA-core


def test_top_categories_and_ops() -> None:
    cats = top(make_report(), "category", "cuda_core_flops")
    # ffn 3 x 7 = 21, self_attention_core 3 x 5 = 15, modulation 10; head has none
    assert [(r.key, r.value) for r in cats.rows] == [("ffn", 21), ("self_attention_core", 15), ("modulation", 10)]
    ops = top(make_report(), "op", "tensor_core_flops")
    # sdpa 100 x 3 replicas = 300; linear 50 x 3 + 50 x 1 = 200
    assert [(r.key, r.value, r.count) for r in ops.rows] == [
        ("aten.scaled_dot_product_attention.default", 300, 3), ("aten.linear.default", 200, 4)]


def test_bytes_metric_is_read_plus_written() -> None:
    assert Metrics(bytes_read=3, bytes_written=4).value("bytes") == 7
    t = top(make_report(), "category", "bytes")
    # ffn 3 x (38 + 18) = 168, self_attention_core 3 x (40 + 20) = 180, head 12 + 6 = 18
    assert [(r.key, r.value) for r in t.rows] == [("self_attention_core", 180), ("ffn", 168), ("head", 18)]
    assert t.total == 246 + 120


def test_bad_arguments_raise_report_error() -> None:
    with pytest.raises(ReportError, match="unknown metric"):
        top(make_report(), metric="watts")
    with pytest.raises(ReportError, match="--by"):
        top(make_report(), by="layer")
    with pytest.raises(ReportError, match="-k"):
        top(make_report(), k=0)
    data = make_report()
    data["nodes"] = []
    with pytest.raises(ReportError, match="no node list"):
        top(data, by="op")
    # seconds need a report traced with a device (and predicted seconds --efficiency too)
    with pytest.raises(ReportError, match="no device"):
        top(make_report(), metric="bound_seconds")
    with pytest.raises(ReportError, match="no predicted seconds"):
        top(make_report(), metric="predicted_seconds")


def test_bar() -> None:
    assert bar(1.0, 4) == "████"
    assert bar(0.5, 4) == "██"
    assert bar(0.0, 4) == ""


def test_render_top_shows_fold_count_and_share() -> None:
    text = render_top(top(make_report()))
    assert "t.blocks.*.attn (3 blocks, summed)" in text and "60.00%" in text and "Attention" in text


def test_cli_top_table_and_json(toy_path: Path) -> None:
    r = CliRunner().invoke(main, ["top", str(toy_path), "-k", "2"])
    assert r.exit_code == 0, r.output
    assert "t.blocks.*.attn (3 blocks, summed)" in r.output and "1 more nonzero modules" in r.output
    r = CliRunner().invoke(main, ["top", str(toy_path), "--by", "op", "--json"])
    assert r.exit_code == 0
    doc = json.loads(r.output)
    assert doc["rows"][0]["key"] == "aten.scaled_dot_product_attention.default" and doc["total"] == 500
    r = CliRunner().invoke(main, ["top", str(toy_path.parent), "--no-fold", "-k", "1"])
    assert "t.blocks.0.attn" in r.output


@pytest.mark.parametrize("args", [["--by", "layer"], ["--metric", "watts"], ["-k", "0"], ["--depth", "-1"]])
def test_cli_top_bad_options(toy_path: Path, args: list[str]) -> None:
    r = CliRunner().invoke(main, ["top", str(toy_path), *args])
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_cli_top_refuses_non_reports(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"hello": 1}')
    for path in (bad, tmp_path / "missing.json"):
        r = CliRunner().invoke(main, ["top", str(path)])
        assert r.exit_code == 2 and r.output.startswith("error: ") and len(r.output.splitlines()) == 1
    wrong = make_report()
    wrong["schema_version"] = 99
    bad.write_bytes(orjson.dumps(wrong))
    r = CliRunner().invoke(main, ["top", str(bad)])
    assert r.exit_code == 2 and "schema_version 99" in r.output


@pytest.mark.slow
def test_720p_top_category_is_self_attention_core() -> None:
    data = wan_reports("wan2.1-t2v-14b")["720p"]
    t = top(data, "category", "tensor_core_flops", k=3)
    # 40 blocks x 117,050,572,800,000 (one attention core) / 6,523,436,592,005,120 = 71.77%
    assert t.rows[0].key == "self_attention_core"
    assert t.rows[0].value == 40 * 117_050_572_800_000
    assert t.rows[0].share == pytest.approx(0.7177, abs=5e-4)
    m = top(data, "module", "tensor_core_flops", k=1)
    assert (m.rows[0].key, m.rows[0].count) == ("transformer.blocks.*.attn1", 40)
    assert m.rows[0].value == t.rows[0].value  # the attention core is attn1's own node
    # by op: the node list x replicas adds up to the total
    ops = top(data, "op", "tensor_core_flops", k=50)
    assert sum(r.value for r in ops.rows) == data["totals"]["per_forward"]["tensor_core_flops"]
