"""Files in and out (audit issue 10): exact big integers, bounded reads of user files,
all-or-nothing run folders, atomic run claims, safe run ids, bounded sweeps, the set-up pins.

Every bad input must be ONE ``error: ...`` line on stderr and exit code 2.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import fxmeter
from fxmeter.base import fileio
from fxmeter.base.units import human, human_bytes
from fxmeter.cli.main import main
from fxmeter.errors import FxmeterError, OutputExistsError, ReportError, RunIdError, WorkloadError
from fxmeter.model.workload import resolve
from fxmeter.report import Report
from fxmeter.report.document import check_run_id, validate

from .reports_for_tests import make_report

ROOT = Path(__file__).resolve().parent.parent
LONG = "n" * 300  # one path component past NAME_MAX (255): ENAMETOOLONG


def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def assert_error_line(code: int, err: str, *needles: str) -> None:
    """Exit 2 and exactly one stderr line, ``error: ...``, holding every needle."""
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for n in needles:
        assert n in lines[0], (n, err)


@pytest.fixture
def no_hang() -> Iterator[None]:
    """Fail (instead of hanging the suite) if a read blocks, e.g. on a FIFO."""

    def boom(*_: Any) -> None:
        raise TimeoutError("blocked for 30 s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(30)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    p = tmp_path / "fifo"
    os.mkfifo(p)
    return p


def tiny(tiny_config: Path, root: Path, *more: str) -> tuple[str, ...]:
    return ("trace", "--config", str(tiny_config), "-w", "ci-tiny", "--output-root", str(root), *more)


def dead_pid() -> int:
    """The pid of a process that has exited."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# -- 1. JSON: exact integers at any size ------------------------------------------------------
def test_dumps_is_orjson_byte_for_byte_without_big_ints() -> None:
    doc = make_report()
    assert fileio.dumps(doc) == orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
    assert fileio.dumps(doc, indent=False) == orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def test_dumps_writes_big_ints_as_exact_digits_in_orjsons_layout() -> None:
    doc = make_report()
    doc["totals"]["end_to_end"]["flops"] = 123456789  # a marker orjson can write
    reference = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
    doc["totals"]["end_to_end"]["flops"] = 2**64 * 3 + 7  # 55340232221128654855: past 64 bits
    with pytest.raises(TypeError, match="64-bit"):
        orjson.dumps(doc)  # what crashed trace and sweep
    out = fileio.dumps(doc)
    assert out == reference.replace(b"123456789", b"55340232221128654855")
    assert json.loads(out)["totals"]["end_to_end"]["flops"] == 2**64 * 3 + 7


def test_loads_keeps_big_ints_exact_where_orjson_turns_them_into_floats() -> None:
    raw = b'{"a": 123456789012345678901234567890, "b": [-9223372036854775809, 1], "c": 18446744073709551615}'
    assert isinstance(orjson.loads(raw)["a"], float)  # the silent loss
    got = fileio.loads(raw)
    assert got == {"a": 123456789012345678901234567890, "b": [-(2**63) - 1, 1], "c": 2**64 - 1}
    assert isinstance(got["a"], int)
    assert fileio.loads(raw.decode()) == got
    small = orjson.dumps(make_report())
    assert fileio.loads(small) == orjson.loads(small)


@pytest.mark.parametrize("raw", [b'{"a": 123456789012345678901234567890', b'{"a": 123456789012345678901, "b": NaN}',
                                 b'{"a": 1, "b": NaN}', b'{"a": 123456789012345678901, "b": "\xff"}'])
def test_loads_malformed_is_orjson_decode_error_on_both_paths(raw: bytes) -> None:
    with pytest.raises(orjson.JSONDecodeError):
        fileio.loads(raw)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_dumps_loads_round_trip_any_integer(value: Any) -> None:
    out = fileio.dumps(value)
    assert fileio.loads(out) == value
    assert json.loads(out) == value  # plain JSON: any reader gets the exact numbers


def test_human_formats_numbers_past_a_float() -> None:
    assert human(10**400, "FLOP") == "1.00e+400 FLOP"
    assert human_bytes(10**400) == "1.00e+400 B"
    assert human(2**70, "FLOP") == "1180.59 EFLOP"  # 1,180,591,620,717,411,303,424 / 1e18


def test_trace_totals_past_64_bits_are_exact_integers(tiny_config: Path, tmp_path: Path) -> None:
    steps = 10**17
    code, out, err = run(*tiny(tiny_config, tmp_path, "--run-id", "big", "--steps", str(steps)))
    assert code == 0, err
    folder = tmp_path / "big" / "static_analysis" / "wan"
    rep = Report.load(folder)
    pf, e2e = rep.per_forward["flops"], rep.end_to_end["flops"]
    passes = rep["workload"]["passes_per_step"]
    assert e2e == pf * steps * passes and e2e > 2**64 and isinstance(e2e, int)
    assert f'"flops": {e2e}'.encode() in (folder / "report.json").read_bytes()
    assert f"{e2e:,}" in out
    # every reader of report.json: top, compare, summary, --json
    code, out, err = run("top", str(folder), "--json")
    assert code == 0, err
    code, out, err = run("compare", str(folder), str(folder))
    assert code == 0, err
    code, out, err = run("summary", str(folder), "--no-plots", "-o", str(tmp_path / "s"))
    assert code == 0, err
    assert f"{e2e:,}" in (tmp_path / "s" / "summary.md").read_text()
    code, out, err = run(*tiny(tiny_config, tmp_path, "--run-id", "big2", "--steps", str(steps), "--json"))
    assert code == 0, err
    assert fileio.loads(out)["totals"]["end_to_end"]["flops"] == e2e


def test_sweep_totals_past_64_bits_are_exact_in_json_and_csv(tiny_config: Path, tmp_path: Path) -> None:
    code, _, err = run("sweep", "--config", str(tiny_config), "-w", "ci-tiny", "--steps", f"1,{10**17}", "--run-id", "s",
                       "--output-root", str(tmp_path), "--no-plot")
    assert code == 0, err
    folder = tmp_path / "s" / "static_analysis" / "wan"
    rows = fileio.loads((folder / "sweep.json").read_bytes())["rows"]
    one, big = rows
    assert big["flops_end_to_end"] == one["flops_end_to_end"] * 10**17 > 2**64
    assert f",{big['flops_end_to_end']}," in (folder / "sweep.csv").read_text()


def test_results_past_a_float_or_past_pythons_digit_limit_are_one_line(tiny_config: Path, tmp_path: Path) -> None:
    code, _, err = run(*tiny(tiny_config, tmp_path, "--steps", str(10**400), "--hardware", "h100"))
    assert_error_line(code, err, "too large for a floating-point number")
    for command in ("trace", "sweep"):  # FLOPs of 10**4299 steps have more digits than int -> str allows
        code, _, err = run(command, "--config", str(tiny_config), "-w", "ci-tiny", "--steps", str(10**4299),
                           "--output-root", str(tmp_path))
        assert_error_line(code, err, "more than 4,300 digits")
    assert list(tmp_path.iterdir()) == []


# -- 2. over-long names -----------------------------------------------------------------------
def test_run_id_length_is_bounded() -> None:
    assert check_run_id("a" * 128) == "a" * 128
    with pytest.raises(RunIdError, match="129 characters"):
        check_run_id("a" * 129)


@pytest.mark.parametrize("where", ["config", "output-root", "hardware-file"])
def test_over_long_paths_are_one_line(where: str, tiny_config: Path, tmp_path: Path) -> None:
    long = str(tmp_path / LONG)
    args = {"config": ("trace", "--config", long, "--output-root", str(tmp_path)),
            "output-root": tiny(tiny_config, tmp_path / LONG / "x"),
            "hardware-file": (*tiny(tiny_config, tmp_path), "--hardware-file", long)}[where]
    code, _, err = run(*args)
    assert_error_line(code, err)
    assert "too long" in err


@pytest.mark.parametrize("command", ["top", "summary", "compare"])
def test_over_long_report_paths_are_one_line(command: str, tmp_path: Path) -> None:
    long = str(tmp_path / LONG)
    code, _, err = run(*((command, long, long) if command == "compare" else (command, long)))
    assert_error_line(code, err, "too long")


def test_over_long_sweep_and_summary_outputs_are_one_line(tiny_config: Path, tmp_path: Path) -> None:
    code, _, err = run("sweep", "--config", str(tiny_config), "-w", "ci-tiny", "--output-root", str(tmp_path / LONG))
    assert_error_line(code, err, "too long")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "report.json").write_bytes(orjson.dumps(make_report()))
    code, _, err = run("summary", str(tmp_path / "r"), "--no-plots", "-o", str(tmp_path / LONG))
    assert_error_line(code, err, "too long")


# -- 3. user files: regular, bounded, UTF-8 ----------------------------------------------------
def read_cases(tmp_path: Path, fifo: Path) -> list[tuple[Path, int, str]]:
    folder = tmp_path / "folder"
    folder.mkdir()
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(2 * fileio.MiB)  # sparse: no disk used
    return [
        (Path("/dev/zero"), 100, "not a regular file"),
        (fifo, 100, "not a regular file"),
        (folder, 100, "is a folder"),
        (tmp_path / "missing.json", 100, "not found"),
        (big, fileio.MiB, "the limit is 1.0 MiB"),
        (tmp_path / LONG, 100, "too long"),
    ]


def test_read_bytes_refuses_what_is_not_a_small_regular_file(tmp_path: Path, fifo: Path, no_hang: None) -> None:
    for path, limit, needle in read_cases(tmp_path, fifo):
        with pytest.raises(ReportError, match=needle):
            fileio.read_bytes(path, "report", limit=limit, error=ReportError)
    ok = tmp_path / "ok.json"
    ok.write_bytes(b"\xef\xbb\xbf{}")
    assert fileio.read_text(ok, "config file", limit=100) == "{}"  # a BOM is not an error
    ok.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(FxmeterError, match=r"not UTF-8 text \(invalid byte 0xff at offset 7\)"):
        fileio.read_text(ok, "config file", limit=100)


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "not-utf8", "oversize"])
def test_bad_config_files_are_one_line(kind: str, tmp_path: Path, fifo: Path, no_hang: None) -> None:
    path = {"dev-zero": Path("/dev/zero"), "fifo": fifo}.get(kind, tmp_path / "config.json")
    if kind == "not-utf8":
        path.write_bytes(b'{"_class_name": "WanTransformer3DModel\xff"}')
    elif kind == "oversize":
        with open(path, "wb") as f:
            f.truncate(fileio.MAX_CONFIG_BYTES + 1)
    needle = {"dev-zero": "not a regular file", "fifo": "not a regular file", "not-utf8": "not UTF-8",
              "oversize": "the limit is 8.0 MiB"}[kind]
    code, _, err = run("trace", "--config", str(path), "--output-root", str(tmp_path / "o"))
    assert_error_line(code, err, "config file", needle)
    code, _, err = run("sweep", "--config", str(path), "--output-root", str(tmp_path / "o"))
    assert_error_line(code, err, "config file", needle)


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "oversize"])
@pytest.mark.parametrize("command", ["top", "summary", "compare"])
def test_bad_report_files_are_one_line(command: str, kind: str, tmp_path: Path, fifo: Path, no_hang: None) -> None:
    path = {"dev-zero": Path("/dev/zero"), "fifo": fifo}.get(kind, tmp_path / "report.json")
    if kind == "oversize":
        with open(path, "wb") as f:
            f.truncate(fileio.MAX_REPORT_BYTES + 1)  # sparse
    code, _, err = run(*((command, str(path), str(path)) if command == "compare" else (command, str(path))))
    assert_error_line(code, err, "limit" if kind == "oversize" else "not a regular file")


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "not-utf8"])
def test_bad_hardware_files_are_one_line(kind: str, tiny_config: Path, tmp_path: Path, fifo: Path, no_hang: None) -> None:
    path = {"dev-zero": Path("/dev/zero"), "fifo": fifo}.get(kind, tmp_path / "hw.json")
    if kind == "not-utf8":
        path.write_bytes(b'{"name": "\xff"}')
    for args in (("hardware", "--hardware-file", str(path)),
                 (*tiny(tiny_config, tmp_path), "--hardware-file", str(path))):
        code, _, err = run(*args)
        assert_error_line(code, err, "hardware file")


def test_tolerance_file_is_read_safely(tmp_path: Path, no_hang: None) -> None:
    from fxmeter.errors import VerifyError
    from fxmeter.verify.compare import load_settings

    with pytest.raises(VerifyError, match="not a regular file"):
        load_settings("/dev/zero")
    with pytest.raises(VerifyError, match="not found"):
        load_settings(tmp_path / "missing.toml")


# -- 4. sweep size -------------------------------------------------------------------------------
def test_sweep_grid_over_the_cap_is_refused_before_any_work(tiny_config: Path, tmp_path: Path) -> None:
    heights = ",".join(str(16 * i) for i in range(1, 102))  # 101 values
    widths = ",".join(str(16 * i) for i in range(1, 101))  # 100 values: 10,100 points
    code, _, err = run("sweep", "--config", str(tiny_config), "--height", heights, "--width", widths,
                       "--output-root", str(tmp_path))
    assert_error_line(code, err, "10,100 workloads", "101 height x 100 width", "limit of 10,000")
    assert not (tmp_path).exists() or not any(tmp_path.iterdir())


def test_sweep_of_100_points_is_unaffected(tiny_config: Path, tmp_path: Path) -> None:
    ten = ",".join(str(i) for i in range(1, 11))
    code, out, err = run("sweep", "--config", str(tiny_config), "-w", "ci-tiny", "--steps", ten, "--batch", ten,
                         "--run-id", "s", "--output-root", str(tmp_path), "--no-plot")
    assert code == 0, err
    assert "100 workloads" in out
    assert len(fileio.loads((tmp_path / "s" / "static_analysis" / "wan" / "sweep.json").read_bytes())["rows"]) == 100


# -- 5. summary outputs --------------------------------------------------------------------------
@pytest.fixture
def report_dir(tmp_path: Path) -> Path:
    d = tmp_path / "rep"
    d.mkdir()
    (d / "report.json").write_bytes(orjson.dumps(make_report()))
    return d


def test_summary_output_onto_a_file_is_one_line(report_dir: Path) -> None:
    code, _, err = run("summary", str(report_dir), "--no-plots", "-o", str(report_dir / "report.json"))
    assert_error_line(code, err, "cannot write the summary", "Not a directory")
    code, _, err = run("summary", str(report_dir), "--no-plots", "-o", "")
    assert_error_line(code, err, "empty --output-dir")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; see the injected test below")
def test_summary_into_read_only_folders_is_one_line(report_dir: Path, tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    report_dir.chmod(0o555)
    try:
        for args in (("-o", str(ro)), ("-o", str(ro / "sub")), ()):
            code, _, err = run("summary", str(report_dir), "--no-plots", *args)
            assert_error_line(code, err, "cannot write the summary")
    finally:
        ro.chmod(0o755)
        report_dir.chmod(0o755)


@pytest.mark.parametrize("err_no", [errno.EACCES, errno.EROFS, errno.ENOSPC])
def test_summary_write_failures_are_one_line_and_leave_nothing(err_no: int, report_dir: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: Path, payload: bytes) -> None:
        raise OSError(err_no, os.strerror(err_no), str(path))

    monkeypatch.setattr(fileio, "_write_new", refuse)
    code, _, err = run("summary", str(report_dir))
    assert_error_line(code, err, "cannot write the summary", os.strerror(err_no))
    assert sorted(p.name for p in report_dir.iterdir()) == ["report.json"]


# -- 6. all or nothing ---------------------------------------------------------------------------
def fail_on(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Disk full when ``name`` is written (after the files before it were written)."""
    real = fileio._write_new

    def write(path: Path, payload: bytes) -> None:
        if path.name == name or path.name.startswith(f".{name}."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, payload)

    monkeypatch.setattr(fileio, "_write_new", write)


def entries(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_disk_full_writes_nothing_and_the_rerun_needs_no_force(tiny_config: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "out"
    fail_on("summary.md", monkeypatch)
    code, _, err = run(*tiny(tiny_config, root, "--run-id", "r"))
    assert_error_line(code, err, "cannot write the report", "No space left on device")
    assert not root.exists() or entries(root) == []  # no report.json, no temp or empty folders
    monkeypatch.undo()
    code, _, err = run(*tiny(tiny_config, root, "--run-id", "r"))
    assert code == 0, err
    assert entries(root / "r" / "static_analysis") == ["wan", "wan/report.json", "wan/summary.md"]


def test_force_replaces_the_run_folder_as_a_whole(tiny_config: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "out"
    assert run(*tiny(tiny_config, root, "--run-id", "r"))[0] == 0
    folder = root / "r" / "static_analysis" / "wan"
    (folder / "summary_blocks.png").write_bytes(b"stale chart")
    (folder / "verify").mkdir()
    (folder / "verify" / "layers.json").write_text("{}")  # verified the old report
    (folder / "sweep.json").write_text('{"rows": []}')  # another command's output: kept
    before = (folder / "report.json").read_bytes()
    # a failed --force leaves the old folder exactly as it was
    fail_on("summary.md", monkeypatch)
    code, _, err = run(*tiny(tiny_config, root, "--run-id", "r", "--force", "--steps", "3"))
    assert_error_line(code, err, "No space left")
    assert (folder / "report.json").read_bytes() == before and (folder / "summary_blocks.png").exists()
    assert entries(folder.parent) == ["wan", "wan/report.json", "wan/summary.md", "wan/summary_blocks.png",
                                      "wan/sweep.json", "wan/verify", "wan/verify/layers.json"]
    monkeypatch.undo()
    code, _, err = run(*tiny(tiny_config, root, "--run-id", "r", "--force", "--steps", "3"))
    assert code == 0, err
    assert entries(folder.parent) == ["wan", "wan/report.json", "wan/summary.md", "wan/sweep.json"]
    assert Report.load(folder)["workload"]["steps"] == 3


def test_stale_temp_folders_of_a_killed_run_are_removed(tiny_config: Path, tmp_path: Path) -> None:
    parent = tmp_path / "out" / "r" / "static_analysis"
    parent.mkdir(parents=True)
    pid = dead_pid()
    stale = parent / f".wan.tmp-{pid}-0-0badf00d"
    (stale / "verify").mkdir(parents=True)
    (stale / "report.json").write_text("half")
    live = parent / f".wan.tmp-{os.getpid()}-0-0badf00d"  # ours, i.e. a running writer's: kept
    live.mkdir()
    code, _, err = run(*tiny(tiny_config, tmp_path / "out", "--run-id", "r"))
    assert code == 0, err
    assert sorted(p.name for p in parent.iterdir()) == sorted([live.name, "wan"])


def test_a_swap_cut_between_its_two_renames_is_undone(tmp_path: Path) -> None:
    """Killed after renaming the old folder aside: the next write puts it back first."""
    aside = tmp_path / f".wan.old-{dead_pid()}-0-0badf00d"
    aside.mkdir()
    (aside / "report.json").write_text("old")
    with pytest.raises(OutputExistsError):
        fileio.publish(tmp_path / "wan", {"report.json": b"new"}, claim="report.json", whole=True)
    assert (tmp_path / "wan" / "report.json").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["wan"]


# -- 7. one run id, one writer -------------------------------------------------------------------
RACE = textwrap.dedent("""
    import sys, time
    from fxmeter.base import fileio
    from fxmeter.errors import OutputExistsError
    from fxmeter.report import Report
    from fxmeter.report.document import validate
    data = fileio.loads(open(sys.argv[1], "rb").read())
    start = float(sys.argv[3])
    while time.time() < start:
        pass
    try:
        Report.from_dict(validate(data)).write(output_root=sys.argv[2])
        print("won")
    except OutputExistsError as e:
        print("lost", e)
""")


@pytest.mark.slow
def test_concurrent_writers_of_one_run_id_exactly_one_wins(tmp_path: Path) -> None:
    import time

    doc = tmp_path / "doc.json"
    doc.write_bytes(orjson.dumps(make_report(run_id="same")))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.time() + 3  # every process waits for this instant, then writes
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(doc), str(tmp_path / "out"), str(start)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    verdicts = sorted(o.split()[0] for o, e in outs if o)
    assert verdicts == ["lost", "lost", "lost", "won"], outs
    folder = tmp_path / "out" / "same" / "static_analysis"
    assert entries(folder) == ["toy", "toy/report.json", "toy/summary.md"]


def test_two_cli_runs_with_one_run_id_one_wins_one_error_line(tiny_config: Path, tmp_path: Path) -> None:
    fxmeter.trace(config=tiny_config, workload="ci-tiny", run_id="warm")  # fill the session's trace cache
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "fxmeter", *tiny(tiny_config, tmp_path, "--run-id", "same")]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    results = sorted((p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in procs)
    (ok, _), (code, err) = results
    assert ok == 0, results
    assert_error_line(code, err, "exists", "--force")


def test_default_run_ids_are_unique_sortable_and_valid(tiny_config: Path, tmp_path: Path) -> None:
    from fxmeter.api import default_run_id

    ids = [default_run_id() for _ in range(100)]  # 32 random bits each: a clash ~ 100**2 / 2**33, 1e-6
    assert len(set(ids)) == len(ids)
    for rid in ids:
        assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", rid) and check_run_id(rid) == rid
    for _ in range(2):  # same second, default ids: two runs, two folders
        code, _, err = run(*tiny(tiny_config, tmp_path))
        assert code == 0, err
    assert len(list(tmp_path.iterdir())) == 2


# -- 8. run ids, output roots, guidance scale ------------------------------------------------------
@pytest.mark.parametrize("rid,needle", [("", "empty run id"), ("-rf", "unsafe run id"), (".hidden", "unsafe run id"),
                                        ("..", "unsafe run id"), ("a/b", "unsafe run id"), ("a" * 129, "at most 128")])
@pytest.mark.parametrize("command", ["trace", "sweep"])
def test_bad_run_ids_are_one_line(command: str, rid: str, needle: str, tiny_config: Path, tmp_path: Path) -> None:
    code, _, err = run(command, "--config", str(tiny_config), "-w", "ci-tiny", "--run-id", rid,
                       "--output-root", str(tmp_path))
    assert_error_line(code, err, needle)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["trace", "sweep"])
def test_empty_output_root_is_refused(command: str, tiny_config: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(command, "--config", str(tiny_config), "-w", "ci-tiny", "--output-root", "")
    assert_error_line(code, err, "empty --output-root")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ReportError, match="empty --output-root"):
        Report.from_dict(validate(make_report())).write(output_root="")


@pytest.mark.parametrize("value", ["inf", "-inf", "1e400", "nan"])
@pytest.mark.parametrize("command", ["trace", "sweep"])
def test_non_finite_guidance_scale_is_refused(command: str, value: str, tiny_config: Path, tmp_path: Path) -> None:
    code, _, err = run(command, "--config", str(tiny_config), "-w", "ci-tiny", "--guidance-scale", value,
                       "--output-root", str(tmp_path))
    assert_error_line(code, err, "guidance_scale must be a finite number")
    with pytest.raises(WorkloadError, match="finite"):
        resolve("ci-tiny", "ci-tiny", guidance_scale=float(value))


# -- 9. the set-up commands -------------------------------------------------------------------------
def test_ci_runs_the_readmes_test_command_with_the_cpu_torch_pin() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    # the whole suite: pytest -q, on two xdist workers (a file stays on one worker)
    install = [b for b in blocks if b.startswith("python3 -m venv .venv") and b.endswith("pytest -q -n 2 --dist loadfile")]
    assert len(install) == 1
    command = install[0].split(" && ", 2)[2]  # after creating and activating the venv
    assert command in (ROOT / ".ci" / "run").read_text().splitlines()
    # torch alone from PyTorch's CPU index (no deps: everything else comes from PyPI), then fxmeter
    index = "pip install -c constraints.txt --no-deps --index-url https://download.pytorch.org/whl/cpu torch && "
    assert all(index in b for b in blocks if "pip install" in b)
    assert 'torch==2.13.0+cpu; sys_platform != "darwin"' in (ROOT / "constraints.txt").read_text().splitlines()
    assert "PIP_EXTRA_INDEX_URL = https://download.pytorch.org/whl/cpu" in (ROOT / "tox.ini").read_text()
