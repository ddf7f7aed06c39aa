"""The training-step cache (:mod:`fxmeter.cost.training_store`): exact round trip, reuse, staleness, bad files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

from fxmeter.cost import training_store as ts
from fxmeter.cost.store import digest
from fxmeter.rules import OpCall, TensorMeta

MODEL, WORKLOAD, RANK = "wan2.1-t2v-1.3b", "ci-tiny", 8


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FXMETER_CACHE_DIR", str(tmp_path))
    return tmp_path


def _step(**kw: Any) -> Any:
    from fxmeter.estimate.train_plan import trace_step

    return trace_step(MODEL, workload=WORKLOAD, lora_rank=RANK, **kw)


def _forbid_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    import fxmeter.model.training as training

    def boom(*a: Any, **k: Any) -> Any:
        raise AssertionError("traced although a current copy is stored")

    monkeypatch.setattr(training, "capture_training", boom)


@pytest.mark.parametrize("value", [
    None, True, 0, -3, 1 << 40, "x", "f", 1.5, -0.0, float("inf"), float("-inf"), 1e-300, (1, 2), [3, (4,)], (),
    {"dim": (1, -1), "keepdim": True}, TensorMeta((2, 3), "bfloat16", 2), (TensorMeta((), "float32", 4), None),
])
def test_every_record_value_round_trips_exactly(value: Any) -> None:
    back = ts._dec(orjson.loads(orjson.dumps(ts._enc(value))))
    assert back == value and type(back) is type(value)
    if isinstance(value, float):
        assert back.hex() == value.hex()  # -0.0 stays -0.0


def test_nan_round_trips() -> None:
    back = ts._dec(orjson.loads(orjson.dumps(ts._enc(float("nan")))))
    assert back != back


@pytest.mark.parametrize("value", [object(), TensorMeta((__import__("sympy").Symbol("n"),), "bfloat16", 2), 1 << 70,
                                   {1: 2}])
def test_a_value_it_cannot_round_trip_is_refused(value: Any) -> None:
    with pytest.raises(ts.Unstorable):
        ts._enc(value)


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """(a cache folder holding the step, the step as traced (live graphs) when it was stored): traced once."""
    import os

    folder = tmp_path_factory.mktemp("training-cache")
    old = os.environ.get("FXMETER_CACHE_DIR")
    os.environ["FXMETER_CACHE_DIR"] = str(folder)
    try:
        first = _step()
    finally:
        if old is not None:
            os.environ["FXMETER_CACHE_DIR"] = old
    return folder, first


def _replay(stored: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """``capture_training`` answers with the stored step's graphs, counting its calls (a trace without the seconds)."""
    import fxmeter.model.training as training

    path = next((stored[0] / "training").glob("*" + ts.SUFFIX))
    graphs = ts.decode(path.read_bytes(), orjson.loads(path.read_bytes().partition(b"\n")[0])["key"])
    assert isinstance(graphs, dict)
    calls: list[int] = []

    def replay(*a: Any, **k: Any) -> Any:
        calls.append(1)
        return graphs

    monkeypatch.setattr(training, "capture_training", replay)
    return calls


def _entry(stored: tuple[Path, Any], cache: Path) -> tuple[Path, dict[str, Any]]:
    """The stored step copied into this test's cache: (its path, its key)."""
    import shutil

    src = next((stored[0] / "training").glob("*" + ts.SUFFIX))
    (cache / "training").mkdir()
    path = Path(shutil.copy(src, cache / "training" / src.name))
    return path, orjson.loads(path.read_bytes().partition(b"\n")[0])["key"]


@pytest.mark.slow  # the module's one traced step (~8 s)
def test_a_stored_step_equals_a_fresh_trace_and_is_not_traced_again(stored: tuple[Path, Any], cache: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _, (first, traced_first) = stored
    path, k = _entry(stored, cache)
    assert path.name == digest(k) + ts.SUFFIX
    _forbid_tracing(monkeypatch)
    again, traced_again = _step()
    assert again == first  # every cost, every node record of every graph: the live trace's, read back
    assert traced_again == traced_first
    # another rank, targets, attention kernel, dims, dtype or torch is another entry
    for field, other in (("lora_rank", 4), ("lora_targets", ["all"]), ("attention", "math"), ("dims", {"batch": 2}),
                         ("dtype", "float16"), ("torch", "2.0")):
        assert digest(dict(k, **{field: other})) != digest(k)


@pytest.mark.slow  # the module's one traced step (~8 s)
def test_a_changed_dependency_traces_again_and_says_why(stored: tuple[Path, Any], cache: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = _entry(stored, cache)
    head, _, payload = path.read_bytes().partition(b"\n")
    header = orjson.loads(head)
    lib = next(n for n in header["deps"] if n.startswith("diffusers/models/transformers/"))
    assert "fxmeter/model/training.py" in header["deps"] and "fxmeter/cost/training_store.py" in header["deps"]
    header["deps"][lib] = ["0" * 16, "0" * 16]  # as if diffusers had changed the transformer's code
    path.write_bytes(orjson.dumps(header) + b"\n" + payload)
    calls = _replay(stored, monkeypatch)
    lines: list[str] = []
    got, _ = _step(progress=lines.append)
    assert calls == [1] and got == stored[1][0]
    assert len(lines) == 1 and f"diffusers changed {lib.partition('/')[2]}" in lines[0] and "again" in lines[0]
    _forbid_tracing(monkeypatch)
    assert _step()[0] == got  # the file was rewritten, current


@pytest.mark.slow  # the module's one traced step (~8 s)
@pytest.mark.parametrize("damage", ["truncate", "garbage", "fifo", "other_key", "bad_payload", "bomb"])
def test_an_unusable_file_is_ignored_with_a_warning(stored: tuple[Path, Any], cache: Path, damage: str,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    import os
    import zlib

    path, k = _entry(stored, cache)
    blob = path.read_bytes()
    head, _, payload = blob.partition(b"\n")
    header = orjson.loads(head)
    if damage == "truncate":
        path.write_bytes(blob[: len(blob) - 100])
    elif damage == "garbage":
        path.write_bytes(b"\x00\xffnot a header\n" + os.urandom(64))
    elif damage == "fifo":
        path.unlink()
        os.mkfifo(path)
    elif damage == "other_key":
        header["key"]["lora_rank"] = 99
        path.write_bytes(orjson.dumps(header) + b"\n" + payload)
    else:  # a payload with a consistent hash that is not graphs, or inflates beyond the bound
        if damage == "bomb":
            monkeypatch.setattr(ts, "MAX_PAYLOAD_BYTES", 1 << 16)  # a bound this file's bytes pass, inflated they do not
        bad = zlib.compress(b'{"base": {"forward": 3}}' if damage == "bad_payload" else b" " * (1 << 20))
        import hashlib

        header.update(payload_bytes=len(bad), payload_sha256=hashlib.sha256(bad).hexdigest())
        path.write_bytes(orjson.dumps(header) + b"\n" + bad)
    with caplog.at_level(logging.WARNING, logger="fxmeter.cost.training_store"):
        assert ts.load(k) is None
    assert "training-step cache" in caplog.text


@pytest.mark.slow  # the module's one traced step (~8 s)
def test_a_graph_with_a_value_it_cannot_store_is_not_stored(stored: tuple[Path, Any], cache: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    from fxmeter.model.registry import resolve_model

    src, k = _entry(stored, cache)
    graphs = ts.load(k)
    assert isinstance(graphs, dict)
    src.unlink()
    g = graphs["base"]
    r = g.forward[0]
    g.forward[0] = type(r)(r.name, r.target, r.module, OpCall(r.target, (object(),), {}, r.call.outputs), r.uses)
    with caplog.at_level(logging.INFO, logger="fxmeter.cost.training_store"):
        assert ts.save(k, graphs, resolve_model(MODEL).component("transformer").adapter, 1.0) is None
    assert "not storing the training step" in caplog.text
    assert not list((cache / "training").glob("*" + ts.SUFFIX))


@pytest.mark.slow  # the module's one traced step (~8 s)
def test_cache_info_and_clear_count_training_steps(stored: tuple[Path, Any], cache: Path) -> None:
    from click.testing import CliRunner

    from fxmeter.cli.main import main

    _entry(stored, cache)
    r = CliRunner().invoke(main, ["cache", "info"])
    assert r.exit_code == 0 and "training steps    1 (" in r.output
    r = CliRunner().invoke(main, ["cache", "clear"])
    assert r.exit_code == 0 and "removed 1 cache entries" in r.output
    assert not list((cache / "training").glob("*" + ts.SUFFIX))


@pytest.mark.slow  # the module's one traced step (~8 s)
def test_train_no_cache_traces_and_stores_nothing(stored: tuple[Path, Any], cache: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from fxmeter.cli.main import main

    path, _ = _entry(stored, cache)  # a current copy is stored: --no-cache neither reads it nor writes one
    before = path.stat().st_mtime_ns
    calls = _replay(stored, monkeypatch)
    r = CliRunner().invoke(main, ["train", MODEL, "-w", WORKLOAD, "--lora-rank", str(RANK), "--no-cache",
                                  "--output-root", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert calls == [1] and "cached afterwards" not in r.output
    assert [p.name for p in (cache / "training").iterdir()] == [path.name] and path.stat().st_mtime_ns == before


def _rehash(path: Path, mutate: Any) -> None:
    """Rewrite the stored step's payload through ``mutate`` with a matching header (as anyone with write access
    to the cache could): what the payload says must be checked, not only its hash."""
    import hashlib
    import zlib

    head, _, payload = path.read_bytes().partition(b"\n")
    header = orjson.loads(head)
    d = orjson.loads(zlib.decompress(payload))
    out = mutate(d)
    d = d if out is None else out
    bad = zlib.compress(orjson.dumps(d))
    header.update(payload_bytes=len(bad), payload_sha256=hashlib.sha256(bad).hexdigest())
    path.write_bytes(orjson.dumps(header) + b"\n" + bad)


def _drop_graph(d: Any) -> None:
    d.pop("blocks")


def _wrong_type(d: Any) -> None:
    d["base"]["input_bytes"] = "x"


def _bool_count(d: Any) -> None:
    d["base"]["parameters"] = True


def _empty(d: Any) -> Any:
    return {}


def _bad_tag(d: Any) -> None:
    d["base"]["forward"][0][4] = ["d", 5]


def _huge_float(d: Any) -> None:
    d["base"]["forward"][0][3] = ["t", ["f", "0x1p99999"]]


def _short_record(d: Any) -> None:
    d["base"]["backward"][0] = d["base"]["backward"][0][:5]


def _negative_shape(d: Any) -> None:
    d["base"]["forward"][0][5] = ["t", ["m", "bfloat16", 2, -4]]


@pytest.mark.slow  # the module's one traced step (~8 s)
@pytest.mark.parametrize("mutate", [_drop_graph, _wrong_type, _bool_count, _empty, _bad_tag, _huge_float, _short_record,
                                    _negative_shape])
def test_a_rehashed_payload_is_checked_field_by_field(stored: tuple[Path, Any], cache: Path, mutate: Any,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """A payload whose hash was made to match is still refused when it is not the key's graphs, field by field:
    never an exception, and ``trace_step`` traces over it (a missing graph used to cost a one-block model)."""
    path, k = _entry(stored, cache)
    _rehash(path, mutate)
    with caplog.at_level(logging.WARNING, logger="fxmeter.cost.training_store"):
        assert ts.load(k) is None
    assert "ignoring unusable training-step cache" in caplog.text
    calls = _replay(stored, monkeypatch)
    assert _step()[0] == stored[1][0] and calls == [1]


@pytest.mark.parametrize("name", ["this.x/y.py", "fxmeter//tmp/x.py", "fxmeter/../etc/passwd", "diffusers/../../x.py",
                                  "fxmeter/cost/../cost/store.py", "fxmeter/cost\\store.py", "fxmeter/py.typed", "x/"])
def test_a_dependency_name_outside_a_package_is_no_file(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A stored header's file names are read before they are trusted: a dotted package (find_spec would import
    ``this``, printing to stdout), an absolute or ``..`` path or a non-Python file is no file (the entry is stale)."""
    from fxmeter.cost import deps

    assert deps.resolve(name) is None
    assert deps.changed({name: ["0" * 16, "0" * 16]}) == [name]
    assert capsys.readouterr().out == ""
    assert deps.resolve("fxmeter/cost/store.py") is not None and deps.resolve("fxmeter.rules/conv.py") is not None
