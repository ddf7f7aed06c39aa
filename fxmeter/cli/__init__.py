"""The ``fxmeter`` command line (click): one module per command, one error boundary."""

from fxmeter.cli.main import main

__all__ = ["main"]
