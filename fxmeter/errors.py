"""Project errors: a user mistake raises one of these, the CLI prints one line."""

from __future__ import annotations


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


class UnmodeledOpError(FxmeterError):
    pass


class TraceError(FxmeterError):
    pass


class ReportError(FxmeterError):
    pass


class VerifyError(FxmeterError):
    pass
