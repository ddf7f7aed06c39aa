"""Every option is declared once (fxmeter/base/knobs.py); these check that everything derived from the
declaration agrees with it: each command's --help, fxmeter.trace, api.request, the README."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import fxmeter
from fxmeter import api
from fxmeter.base import knobs
from fxmeter.cli import main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
COMMANDS = ("trace", "scale", "sweep", "fit", "verify")


def _help(command: str) -> str:
    out = CliRunner().invoke(main, [command, "--help"], terminal_width=400)
    assert out.exit_code == 0, out.output
    return out.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_declared_knob_is_offered_by_its_commands_and_only_those(command: str) -> None:
    # the flags of the option lines (a help text may mention another command's flag)
    offered = set(re.findall(r"^\s+(?:-\w, )?(--[\w-]+)", _help(command), flags=re.M))
    for k in knobs.knobs():
        if command in k.commands:
            assert k.cli_flag in offered, f"`fxmeter {command} --help` lacks {k.cli_flag}"
        elif k.commands:
            assert k.cli_flag not in offered, f"`fxmeter {command}` offers {k.cli_flag}, not declared for it"


def test_every_option_that_changes_the_estimate_is_a_keyword_of_request() -> None:
    params = set(inspect.signature(api.request).parameters)
    run_keywords = {"cache", "strict", "include_nodes", "rules", "run_id"}  # how, not what, is traced
    # the workload knobs arrive as request's **overrides, checked against WORKLOAD_KNOBS
    missing = [k.name for k in knobs.knobs()
               if k.name not in params and k.name not in run_keywords and k.name not in knobs.WORKLOAD_KNOBS]
    assert not missing, f"declared but not taken by fxmeter.api.request: {missing}"
    trace_params = set(inspect.signature(api.trace).parameters)
    assert run_keywords <= trace_params


def test_request_takes_no_undeclared_option() -> None:
    declared = {k.name for k in knobs.knobs()} | {"model"}
    extra = [p.name for p in inspect.signature(api.request).parameters.values()
             if p.name not in declared and p.kind is not p.VAR_KEYWORD]
    assert not extra, f"api.request takes {extra}, not declared in TraceOptions"


def test_every_flag_is_in_the_readme() -> None:
    missing = [k.cli_flag for k in knobs.knobs() if k.commands and k.cli_flag not in README]
    assert not missing, f"README does not mention {missing}"


def test_sweep_and_workload_sets_are_derived() -> None:
    assert api.SWEEP_OPTIONS == knobs.SWEEP_OPTIONS
    assert set(knobs.WORKLOAD_KNOBS) == {"frames", "height", "width", "steps", "text_len", "batch", "guidance_scale"}
    assert fxmeter.TRACE_KEYWORDS == knobs.TRACE_KEYWORDS
    assert knobs.defaults()["dtype"] == "bf16" and knobs.defaults()["cache"] is True


def test_unknown_keyword_names_the_closest_declared_one() -> None:
    from fxmeter.errors import FxmeterError

    with pytest.raises(FxmeterError, match="did you mean 'attention_precision'"):
        fxmeter.trace("wan2.1-t2v-1.3b", attention_precison="fp8")


def test_command_line_spells_each_option_as_its_flag() -> None:
    line = knobs.command_line("wan2.1-t2v-14b", {
        "workload": "720p", "hardware": "h100", "gpus": 8, "parallel": "ulysses=8", "compile": True,
        "cache": False, "price_per_hour": {"h100": 2.49}, "stages": ("transformer", "vae"), "dtype": "bf16",
    })
    assert line == ("fxmeter trace wan2.1-t2v-14b -w 720p --hardware h100 --gpus 8 --parallel ulysses=8 --compile "
                    "--no-cache --price-per-hour h100=2.49 --stages transformer,vae").replace("-w 720p", "--workload 720p")
    with pytest.raises(ValueError, match="has no --fsdp"):
        knobs.command_line("flux.1-dev", {"fsdp": True}, command="fit")
    with pytest.raises(ValueError, match="unknown option"):
        knobs.command_line("flux.1-dev", {"colour": 1})


def test_command_line_round_trips_through_the_cli_parser() -> None:
    """What command_line prints, parsed by the real click command, gives back the options (as api_kwargs reads them)."""
    import click

    from fxmeter.cli.options import api_kwargs

    opts = {"workload": "480p", "hardware": "a100", "gpus": 2, "parallel": "cfg=2", "attention": "fa2",
            "offload": "model", "t5_cpu": True, "frames": 33, "cache": False, "precision": "fp8"}
    line = knobs.command_line("wan2.1-t2v-1.3b", opts)
    cmd = main.commands["trace"]
    assert isinstance(cmd, click.Command)
    ctx = cmd.make_context("trace", line.split()[3:])
    got = api_kwargs("trace", dict(ctx.params))
    assert {k: got[k] for k in opts} == opts
