"""Project errors: a user mistake raises one of these, the CLI prints one line."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class FxmeterError(Exception):
    """Base class: the message says what was wrong and what to do."""


class UnknownModelError(FxmeterError):
    pass


class ConfigError(FxmeterError):
    pass


class WorkloadError(FxmeterError):
    pass


class RunIdError(FxmeterError):
    pass


class OutputExistsError(FxmeterError):
    pass


class OutputPathError(FxmeterError):
    """A path fxmeter would write is a FIFO, socket, device node or folder: never replaced."""


class UnmodeledOpError(FxmeterError):
    pass


class TraceError(FxmeterError):
    pass


class ReportError(FxmeterError):
    pass


class VerifyError(FxmeterError):
    pass


class ParallelError(FxmeterError):
    """A multi-GPU plan (--gpus / --parallel / --fsdp) the model or the deployment cannot run."""


class CommError(FxmeterError):
    """A bad collective-communication model file, or a link it has no constants for."""


class StageError(FxmeterError):
    """A pipeline stage, stage dtype or residency policy the model's pipeline does not have."""


class UsageError(FxmeterError, TypeError):
    """A library call with a keyword the function does not take (also a TypeError, as Python's own)."""


def check_keywords(given: Iterable[str], accepted: Sequence[str], where: str) -> None:
    """Raise :class:`UsageError` for keywords not in ``accepted``: the closest match and every accepted one."""
    unknown = [k for k in given if k not in accepted]
    if not unknown:
        return
    import difflib

    hints = []
    for k in unknown:
        close = difflib.get_close_matches(k, accepted, n=1)
        hints.append(f"{k!r} (did you mean {close[0]!r}?)" if close else repr(k))
    raise UsageError(f"{where}() got unknown keyword(s) {', '.join(hints)}; it accepts: {', '.join(accepted)}")
