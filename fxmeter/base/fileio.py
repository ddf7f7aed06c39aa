"""Files in and out: bounded reading of user files, exact JSON, all-or-nothing writes.

* :func:`read_bytes` / :func:`read_text` read a file the user named: only a regular
  file (a FIFO, a device such as ``/dev/zero`` or a folder is refused without
  blocking), at most ``limit`` bytes, UTF-8; every failure is one project error.
* :func:`dumps` / :func:`loads` are orjson with exact integers of any size: orjson
  refuses integers beyond 64 bits when writing and turns them into floats when
  reading, so such documents take a slower exact path (the bytes of every other
  document are orjson's own).
* :func:`publish` writes a set of files into a folder all or nothing: a missing
  folder is built under a temporary name and renamed into place (an existing one
  makes the rename fail, so two writers cannot both claim it); an fxmeter run
  folder that exists is rebuilt beside it and swapped in; temporary files left by
  a killed process are removed by the next write.
* Writers are as careful as readers: a target that is not a regular file (a FIFO,
  socket, device node or folder) is never replaced (:class:`OutputPathError`), and a
  path the user named (``user_path``) replaces an existing file only with ``force``.
  ``before_commit`` runs after every byte is staged and before the first rename, so a
  command prints its console output there: a failing stdout (``/dev/full``) publishes
  nothing.

Why one long module: every byte fxmeter reads from or writes to disk goes through the
three halves here (bounded reads, exact JSON, all-or-nothing publishing), which share their checks.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from fxmeter.errors import FxmeterError, OutputExistsError, OutputPathError

KiB, MiB = 2**10, 2**20
#: Size limits of what fxmeter reads (bytes).
MAX_CONFIG_BYTES = 8 * MiB
MAX_HARDWARE_BYTES = 1 * MiB
MAX_SETTINGS_BYTES = 1 * MiB
MAX_REPORT_BYTES = 512 * MiB
MAX_CACHE_BYTES = 256 * MiB

#: Seconds to wait for another fxmeter process writing into the same folder.
LOCK_TIMEOUT_S = 60.0


# -- reading -------------------------------------------------------------------
def read_bytes(
    path: str | Path,
    what: str,
    *,
    limit: int,
    error: type[FxmeterError] = FxmeterError,
    missing: str | None = None,
) -> bytes:
    """The bytes of the regular file ``path`` (at most ``limit``), else one ``error``.

    Args:
        path: the file the user named.
        what: how messages name it ("config file", "report", ...).
        limit: the largest size accepted, in bytes.
        error: the project error class raised.
        missing: the message when the file does not exist (default ``"{what} not found: {path}"``).
    """
    p = Path(path)
    try:
        st = os.stat(p)
        _check_regular(p, st, what, limit, error)
        # O_NONBLOCK: a FIFO swapped in after the stat cannot block the open
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(missing or f"{what} not found: {p}") from None
    except OSError as e:
        raise error(f"cannot read {what} {p}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "rb") as f:
            _check_regular(p, os.fstat(f.fileno()), what, limit, error)
            data = f.read(limit + 1)
    except OSError as e:
        raise error(f"cannot read {what} {p}: {e.strerror or e}") from None
    if len(data) > limit:
        raise error(f"{what} {p} is larger than the limit of {_size(limit)}")
    return data


def _check_regular(p: Path, st: os.stat_result, what: str, limit: int, error: type[FxmeterError]) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{what} {p} is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} {p} is not a regular file (a pipe, socket or device); fxmeter reads files only")
    if st.st_size > limit:
        raise error(f"{what} {p} is {_size(st.st_size)}; the limit is {_size(limit)}")


def _size(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n:,} bytes"


def read_text(
    path: str | Path,
    what: str,
    *,
    limit: int,
    error: type[FxmeterError] = FxmeterError,
    missing: str | None = None,
) -> str:
    """:func:`read_bytes` decoded as UTF-8 (a leading BOM is dropped); bad bytes are one ``error``."""
    data = read_bytes(path, what, limit=limit, error=error, missing=missing)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise error(f"{what} {path} is not UTF-8 text (invalid byte 0x{data[e.start]:02x} at offset {e.start})") from None


# -- JSON with exact integers -------------------------------------------------------
_I64_MIN, _U64_MAX = -(2**63), 2**64 - 1
_BIG_BYTES = re.compile(rb"-\d{19}|\d{20}")
_BIG_TEXT = re.compile(r"-\d{19}|\d{20}")


def dumps(obj: Any, *, indent: bool = True, sort_keys: bool = True) -> bytes:
    """orjson's bytes for ``obj``; integers beyond 64 bits are written exactly, as digits."""
    option = (orjson.OPT_SORT_KEYS if sort_keys else 0) | (orjson.OPT_INDENT_2 if indent else 0)
    try:
        return orjson.dumps(obj, option=option)
    except orjson.JSONEncodeError as e:
        if "64-bit" not in str(e):
            raise
    big: list[int] = []
    mark = "fxmeter-bigint-" + secrets.token_hex(8)

    def sub(x: Any) -> Any:
        if isinstance(x, bool) or x is None or isinstance(x, float):
            return x
        if isinstance(x, int):
            if _I64_MIN <= x <= _U64_MAX:
                return x
            big.append(int(x))
            return f"{mark}:{len(big) - 1}"
        if isinstance(x, str):
            if mark in x:  # practically impossible (a random token); never splice a user's string
                raise ValueError("placeholder collision")
            return x
        if isinstance(x, Mapping):
            return {k: sub(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [sub(v) for v in x]
        return x

    raw = orjson.dumps(sub(obj), option=option)
    try:
        digits = [str(n).encode() for n in big]
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits(), 4300): unreadable too
        raise FxmeterError("a result has more than 4,300 digits and cannot be written as JSON; "
                           "use smaller workload values") from None
    return re.sub(b'"' + mark.encode() + rb':(\d+)"', lambda m: digits[int(m[1])], raw)


def loads(data: bytes | str) -> Any:
    """orjson.loads, except that a document holding an integer beyond 64 bits is read exactly.

    Raises:
        orjson.JSONDecodeError: (a ``ValueError``) on malformed JSON, on either path.
    """
    found = _BIG_TEXT.search(data) if isinstance(data, str) else _BIG_BYTES.search(data)
    if found is None:
        return orjson.loads(data)
    try:
        text = data if isinstance(data, str) else data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise orjson.JSONDecodeError(f"not UTF-8 ({e.reason})", "", 0) from None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise orjson.JSONDecodeError(e.msg, e.doc, e.pos) from None
    except (ValueError, RecursionError) as e:  # e.g. an integer of more than 4300 digits, deep nesting
        raise orjson.JSONDecodeError(str(e) or type(e).__name__, text, 0) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# -- writing -------------------------------------------------------------------------
def _start_time(pid: int) -> int:
    """The process's start time in clock ticks since boot (Linux), else 0."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


_TEMP_RE = re.compile(r"\.(tmp|old)-(\d+)-(\d+)-[0-9a-f]+$")
_ME: dict[int, str] = {}


def _temp_name(base: str, kind: str = "tmp") -> str:
    """``.<base>.<kind>-<pid>-<start>-<random>``: hidden, unique, and says who made it."""
    pid = os.getpid()
    if pid not in _ME:  # per pid: a forked child is another writer
        _ME[pid] = f"{pid}-{_start_time(pid)}"
    return f".{base}.{kind}-{_ME[pid]}-{secrets.token_hex(4)}"


def _is_stale(name: str) -> bool:
    """A temp entry whose process is gone (or whose pid now belongs to another process)."""
    m = _TEMP_RE.search(name)
    if m is None:
        return False
    pid, start = int(m[2]), int(m[3])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, another user's
    return start != 0 and _start_time(pid) not in (0, start)


def clean_stale(folder: Path, base: str) -> None:
    """Remove ``.<base>.tmp-*`` / ``.<base>.old-*`` left in ``folder`` by a killed process.

    An ``.old-`` folder whose swap did not finish is renamed back when ``base`` is missing.
    """
    try:
        names = [n for n in os.listdir(folder) if n.startswith(f".{base}.") and _is_stale(n)]
    except OSError:
        return
    for n in sorted(names):
        p = folder / n
        with contextlib.suppress(OSError):
            if n[len(base) + 2:].startswith("old-") and not (folder / base).exists():
                os.rename(p, folder / base)
            elif p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()


@contextlib.contextmanager
def _locked(folder: Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """An exclusive advisory lock on ``folder`` (flock: released when the process dies)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock (Windows): the rename claim still holds
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:  # an unreadable folder: no lock, the rename claim still holds
        yield
        return
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise OSError(errno.EBUSY, f"another process has been writing into {folder} for {timeout:g} s") from None
                time.sleep(0.05)
            except OSError:  # a file system without flock (some network mounts): the rename claim still holds
                break
        yield
    finally:
        os.close(fd)  # releases the lock


def _write_new(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    with os.fdopen(fd, "wb") as f:
        f.write(payload)


def _makedirs(folder: Path) -> list[Path]:
    """``mkdir -p folder``; the folders it created, outermost first."""
    made: list[Path] = []
    p = folder
    while not p.exists():
        made.append(p)
        if p.parent == p:
            break
        p = p.parent
    made.reverse()
    for d in made:
        try:
            d.mkdir()
        except FileExistsError:
            if not d.is_dir():
                raise
    return made


def _remove_empty(made: list[Path]) -> None:
    for d in reversed(made):
        with contextlib.suppress(OSError):
            d.rmdir()


def check_target(path: Path, *, user_path: bool = False, force: bool = False) -> None:
    """Refuse to replace ``path`` unless it is missing or a regular file (``user_path``: missing, or ``force``).

    A symlink is judged by what it points to (as readers do): one to ``/dev/null`` is refused.

    Raises:
        OutputPathError: ``path`` is a FIFO, socket, device node or folder.
        OutputExistsError: ``user_path`` and ``path`` is an existing file and not ``force``.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError:
        return  # e.g. a parent that is a file: the write itself reports it
    if stat.S_ISDIR(st.st_mode):
        raise OutputPathError(f"{path} is a folder; fxmeter writes files only and will not replace it")
    if not stat.S_ISREG(st.st_mode):
        raise OutputPathError(f"{path} is not a regular file (a pipe, socket or device); fxmeter will not replace it")
    if user_path and not force:
        raise OutputExistsError(f"{path} exists; pass --force to replace it, or name another file")


def publish(
    out: Path,
    files: Mapping[str, bytes],
    *,
    claim: str | None = None,
    force: bool = False,
    whole: bool = False,
    drop: Callable[[str], bool] | None = None,
    user_path: bool = False,
    before_commit: Callable[[list[Path]], None] | None = None,
) -> list[Path]:
    """Write ``files`` (relative names such as ``verify/layers.json``) into the folder ``out``, all or nothing.

    Args:
        out: the destination folder (created with its parents when missing).
        files: name -> bytes.
        claim: a file whose presence in ``out`` means "taken": :class:`OutputExistsError`
            unless ``force``. Checked under a lock and again by the rename, so of two
            concurrent writers exactly one wins.
        force: replace an existing ``claim``.
        whole: ``out`` is fxmeter's own folder (a run folder): an existing one is rebuilt
            beside it (its other entries hard-linked) and swapped in, so the folder changes
            in one step. Otherwise files are staged beside their targets and renamed in.
        drop: entries of an existing folder not to carry over (``whole`` only), e.g.
            outputs derived from the file being replaced.
        user_path: the files are at paths the user named (``-o FILE``, ``--html FILE``): an
            existing file is replaced only with ``force``, and a file that appears meanwhile is
            never overwritten.
        before_commit: called with the paths about to be published, after every byte is
            staged and before the first rename; an exception from it publishes nothing.

    Raises:
        OutputExistsError: ``claim`` exists and not ``force``; or (``user_path``) a target exists.
        OutputPathError: a target is a FIFO, socket, device node or folder.
        OSError: anything the file system refuses; nothing of ``files`` was published.
    """
    paths = [out / n for n in files]

    def commit() -> None:
        if before_commit is not None:
            before_commit(paths)

    made = _makedirs(out.parent)
    try:
        with _locked(out.parent):
            clean_stale(out.parent, out.name)
            if claim is not None and not force and (out / claim).exists():
                raise OutputExistsError(f"{out / claim} exists; pass --force or choose another --run-id")
            for p in paths:
                check_target(p, user_path=user_path, force=force)
            if not out.exists() and not out.is_symlink():
                _publish_new(out, files, claim, commit)
            elif not out.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(out))
            elif whole:
                _publish_swap(out, files, drop, commit)
            else:
                _publish_files(out, files, commit, no_replace=user_path and not force)
    except BaseException:
        _remove_empty(made)
        raise
    return paths


def _publish_new(out: Path, files: Mapping[str, bytes], claim: str | None, commit: Callable[[], None]) -> None:
    """Build ``out`` under a temporary name and rename it into place (fails if it appeared)."""
    tmp = out.parent / _temp_name(out.name)
    try:
        tmp.mkdir()
        for name, payload in files.items():
            _write_new(tmp / name, payload)
        commit()
        try:
            os.rename(tmp, out)  # an existing non-empty ``out`` makes this fail: the claim
        except OSError as e:
            if e.errno in (errno.EEXIST, errno.ENOTEMPTY) and claim is not None:
                raise OutputExistsError(f"{out / claim} exists; pass --force or choose another --run-id") from None
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _publish_swap(out: Path, files: Mapping[str, bytes], drop: Callable[[str], bool] | None,
                  commit: Callable[[], None]) -> None:
    """Rebuild ``out`` beside it (old entries linked, new files written), then swap the folders."""
    tmp = out.parent / _temp_name(out.name)
    old = out.parent / _temp_name(out.name, "old")
    try:
        tmp.mkdir()
        for entry in sorted(os.listdir(out)):
            if entry in files:
                continue  # replaced by a new file
            if drop is not None and drop(entry):
                continue
            if entry.startswith(".") and _TEMP_RE.search(entry):
                continue  # someone's staged file
            _link_tree(out / entry, tmp / entry)
        for name, payload in files.items():
            target = tmp / name
            if target.exists():
                target.unlink()  # a hard link to the old file: replace, never write through it
            _write_new(target, payload)
        commit()
        os.rename(out, old)
        try:
            os.rename(tmp, out)
        except BaseException:
            os.rename(old, out)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link ``src`` (a file or a folder tree) to ``dst``; copy where links are refused."""
    if src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dst, symlinks=True, copy_function=_link_or_copy)
    else:
        _link_or_copy(str(src), str(dst))


def _link_or_copy(src: str, dst: str) -> None:
    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _publish_files(out: Path, files: Mapping[str, bytes], commit: Callable[[], None], *,
                   no_replace: bool = False) -> None:
    """Stage every file beside its target, then rename each in (a failure before the first
    rename publishes nothing); ``no_replace``: link instead, so a file that appeared meanwhile stays."""
    for name in files:
        clean_stale((out / name).parent, Path(name).name)
    staged: list[tuple[Path, Path]] = []
    made: list[Path] = []
    try:
        for name, payload in files.items():
            target = out / name
            made += _makedirs(target.parent)
            tmp = target.parent / _temp_name(target.name)
            staged.append((tmp, target))
            _write_new(tmp, payload)
        commit()
        for tmp, target in staged:
            if no_replace:
                _link_new(tmp, target)
            else:
                check_target(target)  # a FIFO or device swapped in since the first check
                os.replace(tmp, target)
    except BaseException:
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                tmp.unlink()
        _remove_empty(made)
        raise


def _link_new(tmp: Path, target: Path) -> None:
    """Move ``tmp`` to ``target`` only if ``target`` does not exist (a hard link fails on EEXIST)."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise OutputExistsError(f"{target} appeared while fxmeter was writing; pass --force to replace it") from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        check_target(target, user_path=True)  # a file system without hard links: check, then rename
        os.replace(tmp, target)
        return
    with contextlib.suppress(OSError):
        tmp.unlink()


def atomic_write(path: Path, payload: bytes) -> None:
    """Write one file via a temp file in the same folder and a rename: never a half file.

    For fxmeter's own files (the trace cache): a FIFO planted at an entry's path is replaced
    (the cache heals itself); paths a user names go through :func:`publish`, which refuses them.
    """
    clean_stale(path.parent, path.name)
    tmp = path.parent / _temp_name(path.name)
    try:
        _write_new(tmp, payload)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
