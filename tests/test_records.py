"""report.json's records declared once: the walker's writing, reading and schema (fxmeter.base.records),
the shipped schema generated from the records, and one clear line per kind of constraint."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import jsonschema
import pytest

from fxmeter.base import records
from fxmeter.base.records import (
    Count,
    Derived,
    Positive,
    Record,
    SchemaBuilder,
    Seconds,
    flatten,
    json_name,
    key,
    omit_none,
)
from fxmeter.errors import ReportError
from fxmeter.estimate.metrics import Metrics
from fxmeter.report import deployment, plan, sections
from fxmeter.report.document import ReportDocument, as_document, validate
from fxmeter.report.schema import SHIPPED, generate_schema, main, schema_bytes
from tests.reports_for_tests import make_report


# -- a toy record: what one declaration gives -----------------------------------------------------------
@dataclass(frozen=True)
class Inner(Record):
    a: Count
    b: Seconds | None = field(default=None, metadata=omit_none())


@dataclass(frozen=True)
class Toy(Record):
    json_derived = (Derived("total", Count, after="n"),)

    n: Positive
    kind: str = field(metadata=json_name("class", schema={"enum": ["x", "y"]}))
    inner: Inner = field(metadata=flatten())
    note: str | None = None  # written as null
    extra: str | None = field(default=None, metadata=omit_none(doc="left out when None"))
    tags: tuple[str, ...] = field(default=(), metadata=key(missing=(), falsy_missing=True))

    @property
    def total(self) -> int:
        return self.n + self.inner.a


def _toy_schema(cls: type[Record]) -> dict[str, Any]:
    b = SchemaBuilder()
    return {**b.object(cls), "$defs": b.defs}


def test_toy_record_dict_schema_and_round_trip() -> None:
    t = Toy(2, "x", Inner(3))
    d = t.to_dict()
    assert d == {"n": 2, "total": 5, "class": "x", "a": 3, "note": None, "tags": []}  # flattened, renamed, derived
    assert list(d) == ["n", "total", "class", "a", "note", "tags"]
    assert Toy.from_dict(d) == t and Toy.from_dict(None) is None
    s = _toy_schema(Toy)
    assert s["required"] == ["n", "class", "a", "total"]  # omitted / defaulted keys are optional
    assert s["properties"]["class"] == {"type": "string", "enum": ["x", "y"]}
    assert s["properties"]["note"] == {"type": ["string", "null"]}  # written as null
    assert s["properties"]["extra"] == {"type": "string", "description": "left out when None"}  # never null
    assert s["properties"]["b"] == {"$ref": "#/$defs/seconds"}
    assert s["$defs"]["positive"] == {"type": "integer", "minimum": 1}
    jsonschema.Draft202012Validator(s).validate(d)
    # omit_none: the key is there only with a value; falsy_missing: null reads as the default
    full = Toy(2, "y", Inner(3, 0.5), "n", "e", ("t",))
    assert full.to_dict()["extra"] == "e" and full.to_dict()["b"] == 0.5
    assert Toy.from_dict(full.to_dict()) == full
    assert Toy.from_dict({**d, "tags": None}).tags == ()
    with pytest.raises(KeyError, match="class"):
        Toy.from_dict({"n": 1, "a": 1})


def test_a_field_added_to_a_record_is_in_the_dict_the_reader_and_the_schema() -> None:
    @dataclass(frozen=True)
    class Grown(Toy):
        added: Count = 7

    g = Grown(2, "x", Inner(3), added=9)
    assert g.to_dict()["added"] == 9
    assert Grown.from_dict(g.to_dict()) == g
    s = _toy_schema(Grown)
    assert s["properties"]["added"] == {"$ref": "#/$defs/count"} and "added" not in s["required"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(s).validate({**g.to_dict(), "added": -1})


# -- every record of report.json round-trips --------------------------------------------------------------
M = Metrics(1, 2, 3, 4)
TOTAL = sections.Total(M, 0.5, 0.75)
TIMES = sections.ModuleTimes(0.1, "memory", 0.05, None, 2.5, 0.2, None)
MODULE = sections.ModuleRow("t", None, "Toy", 0, 10, 20, M, M, {"x": "2*a"}, TIMES)
CATEGORY = sections.CategoryRow(M, 0.5, 0.25)
UNMODELED = sections.Unmodeled("aten.foo", 2, ("t.a", "t.b"))
FIT = sections.FitInfo(True, 10, 30, "fits")
HARDWARE = sections.HardwareInfo({"name": "h100", "label": "H100", "memory_bytes": 8}, "bf16", {"tc": 0.6},
                                 {"bytes_per_s": 1e12}, {"tensor_core": 2.0}, "roofline", {"memory": 0.1},
                                 ({"kind": "k", "key": "x"},))
STAGE = sections.StageRow("vae", "vae", "AutoencoderKL", "decode", "vae", "decode", 1, 1, "bf16", False, TOTAL, TOTAL,
                          5, 10, 10, 100, None, {"h": 2}, {"mode": "dynamic"}, (MODULE,), {"conv": CATEGORY},
                          (sections.OpRow("aten.conv", 3, M),), (UNMODELED,), True)
DEP_STAGE = deployment.StageRow("transformer", True, 4, M, M, 0.1, 0.05, 0.3, 0.01, 0.0, 0.4, 1.2, None, 100, 50)
COMM = deployment.CommInfo("transformer", "all_to_all", "q", 4, "nvlink", 8, 1024, 0.001, 0.002, 0.0, False)
ROW = plan.PlanRow(12.5, None, 25.0, 2, "h100", 3 * 2**30, {"gpus": 2}, ("fp8",), "fxmeter trace x", "fast")
RECORDS: dict[str, Record] = {
    "Metrics": M, "Total": TOTAL, "Totals": sections.Totals(TOTAL, TOTAL, TOTAL, "fused"), "ModuleTimes": TIMES,
    "ModuleRow": MODULE, "ModuleRow-untimed": sections.ModuleRow("t.a", "t", "A", 1, 0, 0, M, M),
    "NodeRow": sections.NodeRow("mm", "aten.mm", "t", "matmul", "ffn", 3, M, 0.1, "tensor_core", 0.2),
    "CategoryRow": CATEGORY, "Unmodeled": UNMODELED,
    "ModelInfo": sections.ModelInfo("m", "C", "wan", {"a": 1}, "sha", "shipped", 10, "m", 5),
    "WorkloadInfo": sections.WorkloadInfo("w", 1, 1, 8, 8, 2, 4, 1, 5.0, 2, (1, 2, 3), 6, {"f": 1}, "bf16", "batched"),
    "TraceInfo": sections.TraceInfo("dynamic", "export", 9, {"blocks": 2}, ("s0",), {"s0": (1, 8)}, 0.5, "cache", 3,
                                    {"dtype": "bf16"}, "abc"),
    "FitInfo": FIT,
    "MemoryInfo": sections.MemoryInfo(10, {"bf16": 10}, {"bf16": 5}, 20, "n", "t", "liveness", "fp8", "int8", FIT, 2),
    "HardwareInfo": HARDWARE,
    "ComponentInfo": sections.ComponentInfo("t2", "low", 3, 0.5, (1.0, 0.5), 10, 20, M, M, "t2/config.json"),
    "DeviceInfo": sections.DeviceInfo("h100", "H100", 1.0, 2.0, "kernels", 1800.0, 0.001, True, "fits", 2.0, 0.01,
                                      "wan", ({"kind": "k"},)),
    "OpRow": sections.OpRow("aten.mm", 2, M), "StageRow": STAGE,
    "StageRow-denoiser": sections.StageRow("transformer", "transformer", "T", "denoise", "t", "forward", 4, 2, "bf16",
                                           True, TOTAL, TOTAL, 5, 10, 10, 100, "t.a", {"h": 2}, {}),
    "PipelineInfo": sections.PipelineInfo((STAGE,), TOTAL, 1.0, None, 10, 5, {"policy": "none"},
                                          ({"policy": "none", "peak_bytes": 1, "peak_stage": "vae"},), ("n",)),
    "deployment.StageRow": DEP_STAGE, "CommInfo": COMM,
    "DeploymentInfo": deployment.DeploymentInfo(
        4, {"spec": "ulysses=4"}, {"name": "h100", "label": "H100"}, {"kind": "nvlink"},
        {"stage": "transformer", "per_forward": M, "single_gpu_per_forward": M, "tokens": 10}, {"fits": True},
        (DEP_STAGE,), (COMM,), {"all_to_all": {"count": 8, "bytes": 1024}}, 1.0, 0.5, 3.0, 0.9, 0.1, 0.0, 3.0, 0.75,
        0.1, 4.0, "kernels", ("rule",), ("note",)),
    "ScalingRow": deployment.ScalingRow(4, "ulysses=4", 1.0, 3.0, 0.75, 100, True, 0.1, 0.1, 0.5),
    "PlanRow": ROW,
    "PlanInfo": plan.PlanInfo("m", "w", 10, 8, 5, 0.5, "gpu_seconds", {"slo": None}, (ROW,), (), ("a note",),
                              {"rate_per_hour": 3}),
}


def _plain(x: Any) -> Any:
    """``x`` with tuples as lists (free-form values are compared as JSON)."""
    if isinstance(x, Mapping):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def test_every_report_record_is_declared_and_round_trips() -> None:
    declared = {c.__name__ for m in (sections, deployment, plan) for c in vars(m).values()
                if isinstance(c, type) and issubclass(c, Record) and c.__module__ == m.__name__}
    assert {n.split(".")[-1].split("-")[0] for n in RECORDS} >= declared
    for name, rec in RECORDS.items():
        d = rec.to_dict()
        again = type(rec).from_dict(d)
        assert again.to_dict() == d, name
        for f in fields(rec):  # type: ignore[arg-type]  # typed values equal; free-form ones equal as JSON
            assert _plain(getattr(again, f.name)) == _plain(getattr(rec, f.name)), (name, f.name)


def test_special_cases_of_reading() -> None:
    assert sections.Totals.from_dict({k: M.to_dict() for k in ("per_forward", "per_step", "end_to_end")}).traffic_model \
        == "eager"
    row = MODULE.to_dict()
    del row["self_bound_seconds"]
    assert sections.ModuleRow.from_dict(row).times.self_bound_seconds == 0.0  # type: ignore[union-attr]
    del row["bound_seconds"]
    assert sections.ModuleRow.from_dict(row).times is None  # no bound seconds: no times at all
    denoiser = RECORDS["StageRow-denoiser"].to_dict()
    assert "modules" not in denoiser and "ops" not in denoiser and "modules" in STAGE.to_dict()
    hw = HARDWARE.to_dict()
    assert hw["name"] == "h100" and "device" not in hw  # the device's keys sit beside the others
    assert sections.HardwareInfo.from_dict({**hw, "stand_ins": None}).stand_ins == ()
    assert "stand_ins" not in sections.HardwareInfo.from_dict({**hw, "stand_ins": []}).to_dict()
    mem = RECORDS["MemoryInfo"].to_dict()
    assert mem["total_bytes"] == 30 and mem["peak_activation_bytes"] == 20 and mem["fit"]["headroom_bytes"] == 20
    assert ROW.to_dict()["peak_gib"] == 3.0
    assert plan.PlanRow.from_dict({**ROW.to_dict(), "seconds": 12, "gpus": 2.0}).seconds == 12.0  # coerced as before
    assert isinstance(deployment.DeploymentInfo.from_dict(RECORDS["DeploymentInfo"].to_dict()).per_gpu["per_forward"],
                      Metrics)


def test_report_document_round_trip_extra_keys_and_path(tmp_path: Any) -> None:
    data = make_report()
    data["later_section"] = {"x": 1}  # a key of a later schema: passed through
    rep = ReportDocument.from_dict(validate(data), path=tmp_path)
    assert rep.path == tmp_path and rep.extra == {"later_section": {"x": 1}}
    d = rep.to_dict()
    assert d["later_section"] == {"x": 1} and list(d)[0] == "schema_version"
    assert d["totals"]["traffic_model"] == "eager" and d["memory"]["precision"] == "bf16"  # defaults of an older writer
    assert ReportDocument.from_dict(d) == rep and ReportDocument.from_dict(d).to_dict() == d  # path is not compared


# -- the shipped schema is generated ----------------------------------------------------------------------
def test_shipped_schema_is_the_generated_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert SHIPPED.read_bytes() == schema_bytes(), "run: python -m fxmeter.report.schema --write"
    assert main(["--check"]) == 0
    assert main([]) == 2
    schema = generate_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(schema["$defs"]) >= {"count", "positive", "seconds", "metrics", "module", "node", "category", "hardware",
                                    "timed_metrics", "limiter", "stage", "plan_row", "deployment_stage", "collective"}
    # the cross-field rules: times of a module go together; a report with a device has bound seconds
    assert schema["$defs"]["module"]["dependentRequired"]["bound_seconds"] == [
        "limiter", "self_bound_seconds", "self_limiter", "arithmetic_intensity"]
    assert "hardware" in schema["dependentSchemas"]


def test_check_says_when_the_shipped_file_is_stale(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from fxmeter.report import schema as gen

    stale = tmp_path / "report.schema.json"
    stale.write_text("{}")
    monkeypatch.setattr(gen, "SHIPPED", stale)
    assert main(["--check"]) == 1
    assert main(["--write"]) == 0 and stale.read_bytes() == schema_bytes()
    assert main(["--check"]) == 0


# -- one bad document per kind of constraint: one line naming the path ------------------------------------
def _at(path: str, value: Any = None, drop: bool = False) -> Any:
    def edit(d: dict[str, Any]) -> None:
        *head, last = path.split(".")
        for k in head:
            d = d[int(k)] if k.isdigit() else d[k]  # type: ignore[index]
        if drop:
            del d[last]
        else:
            d[last] = value

    return edit


@pytest.mark.parametrize("edit,needle", [
    (_at("modules.0.id", 7), "$.modules[0].id: expected string, got integer 7"),  # type
    (_at("workload", {"name": "w"}), "$.workload: missing key 'frames'"),  # required
    (_at("modules.0.depth", -1), "$.modules[0].depth: must be >= 0"),  # $ref count (minimum)
    (_at("workload.steps", 0), "$.workload.steps: must be >= 1"),  # $ref positive
    (_at("trace.mode", "lazy"), "$.trace.mode: must be one of"),  # enum
    (_at("model.slug", "a/b"), "$.model.slug: \"a/b\" does not match"),  # pattern
    (_at("modules", []), "$.modules: must have at least 1 item(s)"),  # minItems
    (_at("tool.name", "other"), "is not an fxmeter report"),  # const (checked first)
    (_at("modules.0.limiter", "gpu"), "$.modules[0].limiter: must be one of"),  # named enum
    (_at("model.id", ""), "$.model.id"),  # minLength
    (_at("modules.0.predicted_seconds", 1.0), "$.modules[0]"),  # dependentRequired (predicted without bound)
])
def test_a_bad_document_is_one_line(edit: Any, needle: str) -> None:
    bad = copy.deepcopy(make_report())
    edit(bad)
    with pytest.raises(ReportError) as e:
        as_document(bad)
    msg = str(e.value)
    assert "\n" not in msg and needle in msg, msg


def test_the_walker_refuses_a_wrong_shape_and_validate_names_it() -> None:
    data = make_report()
    data["unmodeled_ops"] = "none"
    with pytest.raises(TypeError):
        records.from_dict(ReportDocument, data)
    with pytest.raises(ReportError, match=r"\$\.unmodeled_ops: expected array"):
        ReportDocument.from_dict(data)
