"""The ``fxmeter`` command: a thin click layer over :mod:`fxmeter.api`.

Project errors become one line on stderr and exit code 2; nothing half-written.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

import click

from fxmeter.errors import FxmeterError

LOG = logging.getLogger("fxmeter")


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn :class:`FxmeterError` into ``error: ...`` and exit 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FxmeterError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        except BrokenPipeError:
            raise
        except OSError as e:  # a path the file system refuses that no check named (last resort)
            click.echo(f"error: {os_error_line(e)}", err=True)
            sys.exit(2)
        except OverflowError as e:  # e.g. seconds of 10**400 steps: past what a float holds
            click.echo(f"error: a result is too large for a floating-point number ({e}); use smaller workload values",
                       err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


def os_error_line(e: OSError) -> str:
    """``cannot use PATH: reason`` for an OSError (one line)."""
    what = f"cannot use {e.filename}" if e.filename else "file system error"
    return f"{what}: {e.strerror or e}".replace("\n", " ")


class OneLineErrors(click.Group):
    """A group whose usage errors (bad option, bad value type) are one ``error:`` line, exit 2."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except click.ClickException as e:
            click.echo(f"error: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            click.echo("aborted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            raise
        except OSError as e:  # last resort for commands without handle_errors
            click.echo(f"error: {os_error_line(e)}", err=True)
            sys.exit(2)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="fxmeter")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """fxmeter: compute, memory and traffic of a diffusion transformer, derived from its torch.fx graph."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def workload_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option("--workload", "-w", default=None, help="Workload preset (see `fxmeter workloads`); default: the model's."),
        click.option("--frames", type=int, help="Video frames (rounded to 4k+1 as the pipeline does)."),
        click.option("--height", type=int, help="Height in pixels (multiple of 16)."),
        click.option("--width", type=int, help="Width in pixels (multiple of 16)."),
        click.option("--steps", type=int, help="Denoising steps."),
        click.option("--text-len", type=int, help="Text-encoder sequence length."),
        click.option("--batch", type=int, help="Videos per prompt batch."),
        click.option("--guidance-scale", type=float, help="CFG scale; <= 1 means one pass per step."),
        click.option("--dtype", default="bf16", show_default=True, help="Parameter dtype: bf16, fp16 or fp32."),
        click.option("--config", "config", type=click.Path(), default=None, help="Local diffusers config.json or model folder."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def overrides_from(kw: dict[str, Any]) -> dict[str, Any]:
    keys = ("frames", "height", "width", "steps", "text_len", "batch", "guidance_scale")
    return {k: kw.pop(k) for k in keys if k in kw}


@main.command()
@click.argument("model", required=False)
@workload_options
@click.option("--run-id", default=None, help="Run id ([A-Za-z0-9._-], at most 128); default: UTC timestamp + random suffix.")
@click.option("--output-root", default="tmp/profile-output", show_default=True, type=click.Path(), help="Where run folders go.")
@click.option("--force", is_flag=True, help="Overwrite an existing report of the same run id.")
@click.option("--strict", is_flag=True, help="Fail if any op has no rule.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the trace cache.")
@click.option("--full-trace", is_flag=True, help="Trace every block instead of one per repeated list.")
@click.option("--json", "as_json", is_flag=True, help="Print the report JSON to stdout as well.")
@click.option("--plots", is_flag=True, help="Also draw summary.md's PNG charts (matplotlib, ~1 s; `fxmeter summary` draws them later).")
@click.option("--hardware", default=None, help="Predict time and check fit on this device (see `fxmeter hardware`).")
@click.option("--hardware-file", type=click.Path(), default=None, help="JSON file with more devices (or one device).")
@click.option("--precision", type=click.Choice(["bf16", "fp8"]), default="bf16", show_default=True,
              help="Matmul precision: tensor-core peak and matmul weight bytes.")
@click.option("--traffic", type=click.Choice(["eager", "fused"]), default="eager", show_default=True,
              help="Memory-traffic model for bytes (fused: elementwise chains fused as torch.compile would).")
@click.option("--efficiency", default=None, help="Fractions of the peaks, e.g. tc=0.6,bw=0.8 (default 1 = roofline bound).")
@click.option("--batched-cfg", is_flag=True, help="CFG as one pass of 2x the batch (activation memory doubles).")
@handle_errors
def trace(model: str | None, run_id: str | None, output_root: str, force: bool, strict: bool, no_cache: bool,
          full_trace: bool, as_json: bool, plots: bool, **kw: Any) -> None:
    """Trace MODEL for a workload; write report.json and summary.md."""
    from pathlib import Path

    from fxmeter.api import default_run_id
    from fxmeter.api import trace as api_trace
    from fxmeter.report.document import check_run_id, check_writable

    ov = overrides_from(kw)
    rid = check_run_id(default_run_id() if run_id is None else run_id)
    check_writable(output_root)
    out_dir = None
    # refuse an existing run before spending seconds on a trace
    if not force and model:
        from fxmeter.model.registry import get_spec

        slug = get_spec(model).slug
        out_dir = Path(output_root) / rid / "static_analysis" / slug
        if (out_dir / "report.json").exists():
            from fxmeter.errors import OutputExistsError

            raise OutputExistsError(f"{out_dir / 'report.json'} exists; pass --force or choose another --run-id")
    rep = api_trace(
        model, kw["workload"], config=kw["config"], dtype=kw["dtype"], run_id=rid, strict=strict,
        cache=not no_cache, replicate=not full_trace, background=background_fill(),
        **{k: kw.pop(k) for k in ("hardware", "hardware_file", "precision", "traffic", "efficiency", "batched_cfg")}, **ov,
    )
    for u in rep["unmodeled_ops"][:1]:
        click.echo(
            f"warning: {len(rep['unmodeled_ops'])} op(s) have no rule and count as 0 (first: {u['op']}); "
            "see unmodeled_ops in report.json, --strict to fail", err=True,
        )
    out = rep.write(force=force, output_root=output_root, plots=plots)
    if as_json:
        click.echo(rep.to_json().decode())
        return
    from fxmeter.report.summary import headline

    click.echo(headline(rep.data))
    if rep.data.get("hardware"):
        from fxmeter.estimate.roofline import console_lines

        click.echo("\n".join(console_lines(rep.data)))
    click.echo(f"wrote {out / 'report.json'}")
    click.echo(f"wrote {out / 'summary.md'}" + (" (+ PNG charts)" if plots else ""))


def background_fill() -> bool:
    """Cold CLI runs report from a static trace and fill the cache in the background
    (``FXMETER_BACKGROUND=0`` traces dynamically in-process instead)."""
    import os

    return os.environ.get("FXMETER_BACKGROUND", "1") != "0"


@main.command()
def workloads() -> None:
    """List the workload presets."""
    from fxmeter.model.workload import ALIASES, PRESETS

    alias = {v: k for k, v in ALIASES.items() if k.isupper()}
    click.echo(f"{'name':<9} {'alias':<6} {'frames':>6} {'height':>6} {'width':>6} {'steps':>5} {'text':>5} {'batch':>5} {'cfg':>4}")
    for w in PRESETS.values():
        click.echo(
            f"{w.name:<9} {alias.get(w.name, ''):<6} {w.frames:>6} {w.height:>6} {w.width:>6} {w.steps:>5} "
            f"{w.text_len:>5} {w.batch:>5} {w.guidance_scale:>4g}  {w.description}"
        )


@main.command()
def models() -> None:
    """List the models with bundled configs."""
    from fxmeter.model.registry import MODELS

    wid = max(len(m.id) for m in MODELS.values())
    wwl = max(len(m.default_workload) for m in MODELS.values())
    click.echo(f"{'model':<{wid}}  {'workload':<{wwl}}  description")
    for m in MODELS.values():
        click.echo(f"{m.id:<{wid}}  {m.default_workload:<{wwl}}  {m.description}")


# -- commands that live beside their logic (imported last: they use handle_errors) --
from fxmeter.cli.html import html_command  # noqa: E402
from fxmeter.estimate.hardware import hardware_command  # noqa: E402
from fxmeter.estimate.sweep import sweep_command  # noqa: E402
from fxmeter.report.compare import compare_command  # noqa: E402
from fxmeter.report.summary import summary_command  # noqa: E402
from fxmeter.report.top import top_command  # noqa: E402
from fxmeter.verify.run import verify_command  # noqa: E402

for _cmd in (verify_command, top_command, compare_command, summary_command, hardware_command, sweep_command, html_command):
    main.add_command(_cmd)


if __name__ == "__main__":  # pragma: no cover
    main()
