"""Audit (issue 10), cache side: a tampered cache file (its hash recomputed) is discarded and rebuilt.

Never a crash outside ``store.load``, never a hang, never silently wrong numbers; and
the formula evaluator accepts integer arithmetic over the trace's symbols only.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

import fxmeter
from fxmeter.cli.main import main
from fxmeter.cost import store
from fxmeter.cost.formula import MAX_EXPONENT, compile_table
from fxmeter.cost.symbolic import PayloadError, SymbolicModel, check
from fxmeter.errors import TraceError
from fxmeter.model.registry import resolve_model
from tests.conftest import stable_report


def stable(data: Any) -> dict[str, Any]:
    return stable_report(data)


def key(config: Path) -> dict[str, Any]:
    """The store key of the tiny model's dynamic trace."""
    return store.key(resolve_model(None, config).component("transformer"), "bfloat16")


@pytest.fixture(scope="module")
def tiny_sm(tiny_config: Path) -> SymbolicModel:
    """One dynamic trace of the tiny model; the tests below rebuild from copies of it."""
    return store.trace(resolve_model(None, tiny_config).component("transformer"), "bfloat16", None)


@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FXMETER_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _leaf_cost_formula(d: dict[str, Any]) -> int:
    """The tensor-core formula of a costed node (shared with its module's self and total)."""
    return next(n["cost"][0] for n in d["nodes"] if n["family"] == "matmul" and n["cost"][0] != 0)


def _set_formula(pick: Callable[[dict[str, Any]], int], value: Callable[[str], str]) -> Callable[[dict[str, Any]], None]:
    def edit(d: dict[str, Any]) -> None:
        i = pick(d)
        d["formulas"][i] = value(d["formulas"][i])

    return edit


def _last(d: dict[str, Any]) -> int:
    return len(d["formulas"]) - 1


# name -> an edit of a good payload; the file's header is then rewritten with the payload's new hash
TAMPER: dict[str, Callable[[dict[str, Any]], None]] = {
    "payload-a-list": lambda d: d.update(__replace__=[1, 2]),
    "payload-without-formulas": lambda d: d.pop("formulas"),
    "formulas-a-string": lambda d: d.update(formulas="x"),
    "formula-not-a-string": _set_formula(_last, lambda s: 7),  # type: ignore[arg-type, return-value]
    "power-tower-would-hang": _set_formula(_last, lambda s: "9**9**9**9"),
    "nested-powers-would-blow-up": _set_formula(_last, lambda s: "((((9**8)**8)**8)**8)**8"),
    "code-in-a-formula": _set_formula(_last, lambda s: "__import__('os').system('echo pwned')"),
    "float-division": _set_formula(_leaf_cost_formula, lambda s: f"({s})/3"),
    "comment-swallows-a-comma": _set_formula(_last, lambda s: s + " # x"),
    "edited-formula-wrong-numbers": _set_formula(_leaf_cost_formula, lambda s: f"({s}) + 1"),
    "edited-liveness-negative": _set_formula(lambda d: d["liveness"]["after_node"][0], lambda s: f"({s}) - 1000000000000"),
    "formula-index-out-of-range": lambda d: d["modules"][1]["self"].__setitem__(0, len(d["formulas"]) + 5),
    "formula-index-negative": lambda d: d["nodes"][0]["cost"].__setitem__(0, -1),
    "formula-index-a-bool": lambda d: d["modules"][0]["total"].__setitem__(1, True),
    "formula-index-a-float": lambda d: d["categories"][next(iter(d["categories"]))].__setitem__(0, 1.0),
    "module-row-without-total": lambda d: d["modules"][1].pop("total"),
    "modules-empty": lambda d: d.update(modules=[]),
    "module-parent-unknown": lambda d: d["modules"][2].update(parent="nowhere"),
    "module-depth-a-string": lambda d: d["modules"][2].update(depth="2"),
    "node-replicas-zero": lambda d: d["nodes"][0].update(replicas=0),
    "node-fused-on-some-rows-only": lambda d: d["nodes"][3].pop("fused"),
    "category-of-three": lambda d: d["categories"].update({next(iter(d["categories"])): [0, 0, 0]}),
    "liveness-longer-than-nodes": lambda d: d["liveness"]["after_node"].extend([0, 0, 0]),
    "unmodeled-not-a-list": lambda d: d.update(unmodeled={"op": "x"}),
    "symbols-repeat": lambda d: d["meta"].update(symbols=[d["meta"]["symbols"][0]] * 2),
    "symbol-smuggles-code": lambda d: d["meta"]["symbols"].__setitem__(0, "batch=().__class__"),
    "guards-not-pairs": lambda d: d["meta"].update(guards={d["meta"]["symbols"][0]: 5}),
    "replicas-a-trillion": lambda d: d["meta"].update(replicas={"blocks": 10**12}),
    "weight-bytes-a-string": lambda d: d["meta"].update(weight_bytes="lots"),
    "weight-bytes-disagree": lambda d: d["meta"].update(weight_bytes=d["meta"]["weight_bytes"] + 1),
    "mode-static": lambda d: d["meta"].update(mode="static"),
    "mode-unknown": lambda d: d["meta"].update(mode="both"),
    "static-trace-under-the-dynamic-key": lambda d: d["meta"].update(mode="static", dims={"batch": 1}),
    "config-of-another-model": lambda d: d["meta"].update(config_sha256="0" * 64),
    "dtype-of-another-trace": lambda d: d["meta"].update(dtype="float16"),
    "deps-of-other-code": lambda d: d["meta"]["deps"].update({"fxmeter.rules/matmul.py": ["0" * 16, "0" * 16]}),
    "root-escapes-the-module-ids": lambda d: d["meta"].update(root="../../elsewhere"),
    "node-shape-index-out-of-range": lambda d: next(n for n in d["nodes"] if n["shape"])["shape"].update(m=10**9),
    "node-dtype-missing": lambda d: d["nodes"][0].pop("dtype"),
    "seconds-infinite": lambda d: d["meta"].update(seconds=float("inf")),
    "matmul-weights-missing": lambda d: d["meta"].pop("matmul_weights"),
    "matmul-weights-exceed-the-weights": lambda d: d["meta"]["matmul_weights"].update(bytes=10**15),
}


def _rewrite(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Edit the payload and recompute the header's hash, as a deliberate tamperer would."""
    head, _, payload = path.read_bytes().partition(b"\n")
    header, d = orjson.loads(head), orjson.loads(payload)
    edit(d)
    if "__replace__" in d:
        d = d["__replace__"]
    try:
        new = orjson.dumps(d, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # infinity and the like: the stdlib writes what orjson refuses
        import json

        new = json.dumps(d, sort_keys=True).encode()
    header.update(payload_sha256=hashlib.sha256(new).hexdigest(), payload_bytes=len(new))
    path.write_bytes(orjson.dumps(header) + b"\n" + new)


@pytest.fixture()
def rebuilds(monkeypatch: pytest.MonkeyPatch, tiny_sm: SymbolicModel) -> list[int]:
    """Count dynamic traces; each returns a copy of the known-good tiny trace (a real one takes seconds)."""
    calls: list[int] = []

    def fake(component: Any, dtype: str, dims: Any = None, **kw: Any) -> SymbolicModel:
        assert dims is None  # a dynamic trace: the cache entry is rebuilt, not worked around
        calls.append(1)
        return SymbolicModel.from_dict(copy.deepcopy(tiny_sm.to_dict()))

    monkeypatch.setattr(store, "trace", fake)
    return calls


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(TAMPER))
def test_tampered_cache_is_discarded_and_rebuilt(case: str, tiny_config: Path, tiny_sm: SymbolicModel,
                                                 cache_dir: Path, rebuilds: list[int],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    k = key(tiny_config)
    path = store.store(k, tiny_sm)
    assert path is not None
    good = fxmeter.trace(config=tiny_config, workload="ci-tiny", run_id="r")
    assert good["trace"]["cache"] == "cache" and rebuilds == []
    _rewrite(path, TAMPER[case])
    with caplog.at_level(logging.WARNING, logger="fxmeter.cost.store"):
        assert store.load(k) is None  # refused inside store.load, with a reason
        again = fxmeter.trace(config=tiny_config, workload="ci-tiny", run_id="r")
    assert "ignoring unusable trace cache" in caplog.text
    assert rebuilds == [1] and again["trace"]["cache"] == "traced"
    assert stable(again.data) == stable(good.data)  # the right report, from the rebuilt entry
    third = fxmeter.trace(config=tiny_config, workload="ci-tiny", frames=8, run_id="r")  # and the file is good again
    assert third["trace"]["cache"] == "cache" and rebuilds == [1]


@pytest.mark.slow
def test_power_tower_through_the_cli_rebuilds_without_hanging(tiny_config: Path, tiny_sm: SymbolicModel,
                                                              cache_dir: Path, tmp_path: Path) -> None:
    """End to end, no mocks: a real re-trace replaces the entry and the numbers are right."""
    k = key(tiny_config)
    path = store.store(k, tiny_sm)
    assert path is not None
    good = fxmeter.trace(config=tiny_config, workload="ci-tiny", run_id="r")
    _rewrite(path, TAMPER["power-tower-would-hang"])
    res = CliRunner().invoke(main, ["trace", "--config", str(tiny_config), "-w", "ci-tiny", "--run-id", "t",
                                    "--output-root", str(tmp_path / "out"), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.stderr
    data = orjson.loads(res.stdout[res.stdout.index("{"):])
    assert data["totals"] == good["totals"] and data["modules"] == good["modules"]
    assert data["trace"]["cache"] == "traced" and store.load(k) is not None


def test_cache_path_that_is_a_fifo_or_a_folder_is_never_read(tiny_config: Path, tiny_sm: SymbolicModel,
                                                              cache_dir: Path) -> None:
    k = key(tiny_config)
    path = store.entry_path(k)
    path.parent.mkdir(parents=True)
    os.mkfifo(path)  # reading it would block forever
    assert store.load(k) is None
    assert store.store(k, tiny_sm) == path and store.load(k) is not None
    path.unlink()
    path.mkdir()
    assert store.load(k) is None


def test_every_bundled_trace_passes_the_checks(tiny_sm: SymbolicModel, report_720p: Any) -> None:
    """The checks accept what fxmeter writes: the tiny model and the 14B (the session's trace)."""
    k14 = store.key(resolve_model("wan2.1-t2v-14b", None).component("transformer"), "bfloat16")
    assert (store.load(k14) or store.load_shipped(k14)) is not None  # cached this session, or shipped
    expect = {"config_sha256": tiny_sm.meta["config_sha256"], "dtype": "bfloat16", "rules": tiny_sm.meta["rules"],
              "adapter": tiny_sm.meta["adapter"]}
    payload = orjson.loads(orjson.dumps(tiny_sm.to_dict()))
    assert check(payload, expect).formulas == tiny_sm.formulas
    with pytest.raises(PayloadError, match="meta.dtype"):  # a payload of another key is refused by name
        check(payload, dict(expect, dtype="float16"))


@pytest.mark.slow
def test_every_shipped_trace_passes_the_full_checks() -> None:
    """At run time a shipped trace whose payload hash matches is checked by its meta only (the row-by-row walk
    costs ~0.1 s a trace); so every shipped file must pass the full walk and the probe evaluation here."""
    import lzma
    from importlib import resources

    from fxmeter.cost import compose

    files = [f for f in resources.files(store.SHIPPED_PACKAGE).iterdir() if f.name.endswith(store.SUFFIX + ".xz")]
    assert len(files) >= 20
    for f in files:
        head, _, payload = lzma.decompress(f.read_bytes()).partition(b"\n")
        k = orjson.loads(head)["key"]
        assert f.name == store.digest(k) + store.SUFFIX + ".xz"  # found by its key's digest
        # a composed frame loop is checked with its repeated rows multiplied out (fxmeter.cost.compose.check)
        full = (compose.check if "composed" in k else check)(orjson.loads(payload), store._expect(k))
        assert full.formulas == store.decode(head + b"\n" + payload, k, shipped=True).formulas


# -- the expression language of the formula table ----------------------------------------------------
@pytest.mark.parametrize("formula,value", [
    ("0", 0),
    ("7*batch*text_len**2 + 3*batch - 4", 7 * 2 * 9 + 6 - 4),  # batch=2, text_len=3: 126 + 6 - 4 = 128
    ("-batch + 10", 8),
    ("(batch + 1)*(text_len + 1)", 12),  # 3 x 4
    ("text_len**8 // 3", 3**8 // 3),  # 6561 // 3 = 2187
    ("batch**0", 1),
])
def test_formula_language_accepts_integer_arithmetic(formula: str, value: int) -> None:
    assert compile_table(["0", formula], ["batch", "text_len"])(batch=2, text_len=3) == [0, value]


@pytest.mark.parametrize("formula,reason", [
    ("9**9**9**9", "constant integer exponent"),
    (f"batch**{MAX_EXPONENT + 1}", "constant integer exponent"),
    ("batch**-1", "constant integer exponent"),
    ("batch**text_len", "constant integer exponent"),
    ("((((9**8)**8)**8)**8)**8", "exceed"),
    ("batch/2", "operator Div is not allowed"),
    ("batch//0", "positive constant integer divisor"),
    ("batch//text_len", "positive constant integer divisor"),
    ("batch % 2", "not integer arithmetic"),
    ("1.5*batch", "not integer arithmetic"),
    ("__import__('os')", "not integer arithmetic"),
    ("().__class__", "not integer arithmetic"),
    ("batch if text_len else 0", "IfExp is not allowed"),
    ("batch < text_len", "not integer arithmetic"),
    ("nope*2", "unknown name 'nope'"),
    ("", "not integer arithmetic"),
    ("batch +", "not one expression"),
    ("batch # , 1", "not integer arithmetic"),
    ("True", "not integer arithmetic"),
    ("batch and text_len", "BoolOp is not allowed"),
    ("(batch, text_len)", "not integer arithmetic"),
])
def test_formula_language_refuses_everything_else(formula: str, reason: str) -> None:
    with pytest.raises(TraceError, match="refusing formula") as e:
        compile_table(["0", formula], ["batch", "text_len"])
    assert reason in str(e.value), str(e.value)


@pytest.mark.parametrize("symbols", [["batch", "batch"], ["x=1"], ["lambda"], ["__class__"], "batch", ["Batch"]])
def test_symbol_names_are_plain_identifiers(symbols: Any) -> None:
    with pytest.raises(TraceError):
        compile_table(["0"], symbols)


def test_legal_but_huge_workload_values_stay_exact() -> None:
    fn = compile_table(["4*batch*tokens**2*heads*dim"], ["batch", "tokens", "heads", "dim"])
    big = 10**9
    assert fn(batch=big, tokens=big, heads=40, dim=128) == [4 * big * big**2 * 40 * 128]
