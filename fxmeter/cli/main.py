"""The ``fxmeter`` command group and its one error boundary.

Every command lives in its own module of this package and is a thin click layer over a
library function (:mod:`fxmeter.api`, the report renderers).  Errors are handled once, here:
a project error (:class:`~fxmeter.errors.FxmeterError`), a usage error, an OS error on a path
or a float overflow becomes one ``error: ...`` line on stderr and exit code 2; nothing is
half-written and no traceback is shown.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from fxmeter.errors import FxmeterError

LOG = logging.getLogger("fxmeter")


def os_error_line(e: OSError) -> str:
    """``cannot use PATH: reason`` for an OSError (one line)."""
    what = f"cannot use {e.filename}" if e.filename else "file system error"
    return f"{what}: {e.strerror or e}".replace("\n", " ")


def error_line(e: BaseException) -> str | None:
    """The one line a handled error prints (None: not one of ours, let it surface)."""
    if isinstance(e, FxmeterError):
        return str(e).replace("\n", " ")
    if isinstance(e, click.ClickException):
        return e.format_message().replace("\n", " ")
    if isinstance(e, BrokenPipeError):
        return None
    if isinstance(e, OSError):
        return os_error_line(e)
    if isinstance(e, OverflowError):  # e.g. seconds of 10**400 steps: past what a float holds
        return f"a result is too large for a floating-point number ({e}); use smaller workload values"
    return None


class OneLineErrors(click.Group):
    """The group's error boundary: every handled error is one ``error:`` line, exit 2."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            click.echo("aborted", err=True)
            sys.exit(130)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as e:
            line = error_line(e)
            if line is None:
                raise
            if isinstance(e, OSError) and not e.filename:  # e.g. stdout on a full disk: no second failure at exit
                from fxmeter.cli.console import silence_stdout

                silence_stdout()
            click.echo(f"error: {line}", err=True)
            sys.exit(e.exit_code if isinstance(e, click.ClickException) else 2)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="fxmeter")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """fxmeter: compute, memory, traffic and time of a diffusion transformer, from its torch.fx graph."""
    level = logging.WARNING - 10 * min(verbose, 2)  # -v INFO, -vv DEBUG (which trace was used and why)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    LOG.setLevel(level)  # fxmeter's loggers only: torch's and matplotlib's debug output stays out


def _register() -> None:
    from fxmeter.cli import cache, catalog, compare, hardware, html, scale, summary, sweep, top, trace, validate, verify

    for mod in (trace, verify, validate, top, compare, summary, html, sweep, scale, hardware, catalog, cache):
        for cmd in getattr(mod, "COMMANDS", ()):
            main.add_command(cmd)
    from fxmeter.cli import fit, observe, plan, train  # `fxmeter fit` (will it fit?), `fxmeter train` (training
    # cost), `fxmeter observe` (the pipeline's calls), `fxmeter plan` / `diagnose` (which deployment; what explains a run)

    for cmd in (*fit.COMMANDS, *train.COMMANDS, *observe.COMMANDS, *plan.COMMANDS):
        main.add_command(cmd)


_register()


if __name__ == "__main__":  # pragma: no cover
    main()
