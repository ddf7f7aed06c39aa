"""Console output that must reach the user before a command's files are published.

A command that writes files prints its console lines from the ``before_commit`` hook of
:func:`fxmeter.base.fileio.publish`: every byte is staged by then and nothing is renamed
yet, so a stdout that fails (``> /dev/full``, a closed pipe) is one ``error:`` line, exit 2,
and no file written.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import click

from fxmeter.errors import FxmeterError


class ConsoleError(FxmeterError):
    """Printing the console output failed; the command's files were not published."""


def emit(lines: Iterable[str], *, err: bool = False) -> None:
    """Echo ``lines`` and flush; an OS error (disk full, closed pipe) is one :class:`ConsoleError`."""
    stream = sys.stderr if err else sys.stdout
    try:
        for line in lines:
            click.echo(line, err=err)
        stream.flush()
    except OSError as e:
        silence_stdout()
        raise ConsoleError(f"cannot print the output ({e.strerror or e}); nothing was written") from None


def silence_stdout() -> None:
    """Point stdout at /dev/null so Python's exit-time flush of a failed stdout cannot fail again."""
    import os

    try:
        fd = sys.stdout.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)
    except (OSError, ValueError, AttributeError):  # no real file descriptor (CliRunner): nothing to flush later
        pass


def print_then_commit(lines: Callable[[list[Path]], Iterable[str]], *, err: bool = False) -> Callable[[list[Path]], None]:
    """A ``before_commit`` hook: print ``lines(paths)`` (the console output, "wrote" lines included)."""
    def hook(paths: list[Path]) -> None:
        emit(lines(paths), err=err)

    return hook
