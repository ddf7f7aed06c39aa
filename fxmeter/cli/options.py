"""Click options generated from the one declaration of every option (:mod:`fxmeter.base.knobs`),
plus the output options every writing command shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from fxmeter.base.knobs import Knob, knobs
from fxmeter.model.workload import OVERRIDABLE

F = Callable[..., Any]


def _apply(fn: F, opts: list[Callable[[F], F]]) -> F:
    for o in reversed(opts):
        fn = o(fn)
    return fn


def _click_option(k: Knob) -> Callable[[F], F]:
    """The click option of a declared knob (as one command offers it)."""
    decls = [k.cli_flag, *([k.short] if k.short else []), k.cli_param]
    extra: dict[str, Any] = {}
    if k.kind == "flag":
        extra["is_flag"] = True
    else:
        extra["default"] = k.default
        extra["type"] = {"int": int, "float": float, "path": click.Path(), "choice": click.Choice(list(k.choices)),
                         "str": None}[k.kind]
    return click.option(*decls, help=k.help, show_default=k.show_default, required=k.required, **extra)


def knob_options(command: str, *groups: str) -> Callable[[F], F]:
    """Every option ``command`` offers (of ``groups`` when given), generated from
    :class:`fxmeter.base.knobs.TraceOptions` in declaration order."""
    opts = [_click_option(k) for k in knobs(command, *groups)]
    return lambda fn: _apply(fn, opts)


def api_kwargs(command: str, kw: dict[str, Any], *groups: str) -> dict[str, Any]:
    """Pop the declared options of ``command`` out of a click command's keyword arguments, as the
    library takes them (``--no-cache`` -> ``cache=False``, ``--compile`` -> ``compile=True``)."""
    out: dict[str, Any] = {}
    for k in knobs(command, *groups):
        if k.cli_param in kw:
            v = kw.pop(k.cli_param)
            out[k.name] = (not v) if k.invert else v
    return out


def model_options(fn: F) -> F:
    """``--workload``, the workload knobs, ``--dtype`` and ``--config`` (as ``fxmeter trace`` offers them)."""
    return knob_options("trace", "model", "workload")(fn)


def overrides_from(kw: dict[str, Any]) -> dict[str, Any]:
    """Pop the workload knobs out of a command's keyword arguments."""
    return {k: kw.pop(k) for k in OVERRIDABLE if k in kw}


def output_options(fn: F) -> F:
    """``--run-id``, ``--output-root``, ``--force``."""
    return _apply(fn, [
        click.option("--run-id", default=None,
                     help="Run id ([A-Za-z0-9._-], at most 128); default: UTC timestamp + random suffix."),
        click.option("--output-root", default="tmp/profile-output", show_default=True, type=click.Path(),
                     help="Where run folders go."),
        click.option("--force", is_flag=True, help="Overwrite an existing run of the same id."),
    ])


def device_options(fn: F) -> F:
    """The device options of ``fxmeter trace`` (``--hardware``, ``--precision``, ``--attention``...)."""
    return knob_options("trace", "device")(fn)


def parallel_options(fn: F) -> F:
    """``--gpus``, ``--parallel``, ``--fsdp``, ``--batched-cfg`` (a generation on several GPUs)."""
    return knob_options("trace", "parallel")(fn)


def device_kwargs(kw: dict[str, Any]) -> dict[str, Any]:
    """Pop the device and parallel options out of a command's keyword arguments (as api.trace takes them)."""
    return api_kwargs("trace", kw, "device", "parallel")


def progress_line(text: str) -> None:
    """What a command prints on stderr before something slow (a trace)."""
    click.echo(f"fxmeter: {text}", err=True)


def pipeline_options(fn: F) -> F:
    """``--stages``, ``--stage-dtype``, ``--offload``, ``--t5-cpu``, ``--runtime``, ``--vae-tiling``."""
    return knob_options("trace", "pipeline")(fn)
