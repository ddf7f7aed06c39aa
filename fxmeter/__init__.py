"""fxmeter: what a diffusion transformer costs, derived from its real torch.fx graph.

``fxmeter.trace("wan2.1-t2v-14b", workload="720p")`` returns a :class:`Report`.
Heavy imports (torch, diffusers) happen only when a model is traced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from fxmeter.model.workload import Workload
    from fxmeter.report.files import Report

__all__ = ["__version__", "trace", "Report"]

from fxmeter.base.knobs import TRACE_KEYWORDS, knobs  # noqa: E402  (pure dataclasses: no torch)


def trace(model: str | None = None, workload: str | Workload | None = None, **options: Any) -> Report:
    """Trace ``model`` for ``workload`` and return the :class:`~fxmeter.report.Report`.

    Example: ``fxmeter.trace("wan2.1-t2v-14b", workload="720p", steps=30)``.

    Args:
        model: a registered model id (``fxmeter models``), or None with ``config``.
        workload: a preset name (``fxmeter workloads``) or a :class:`~fxmeter.workload.Workload`;
            the model's default preset when None.
        **options: the keywords below, each declared once in :class:`fxmeter.base.knobs.TraceOptions`
            (the command line's ``--flag`` of the same name; ``cache=False`` is ``--no-cache``,
            ``replicate=False`` is ``--full-trace``).

    Raises:
        FxmeterError: a bad argument (one clear line; an unknown keyword names the
            closest accepted one), an unknown model or workload, a failed trace.
    """
    from fxmeter.errors import check_keywords

    check_keywords(options, TRACE_KEYWORDS, "fxmeter.trace")
    from fxmeter.api import trace as _trace

    return _trace(model, workload, **options)


def _signature() -> Any:
    """``inspect.signature(fxmeter.trace)``: model and workload, then every declared option, keyword-only,
    with its default and annotation (generated from the declaration)."""
    import inspect

    P = inspect.Parameter
    params = [P("model", P.POSITIONAL_OR_KEYWORD, default=None, annotation="str | None"),
              P("workload", P.POSITIONAL_OR_KEYWORD, default=None, annotation="str | Workload | None")]
    params += [P(k.name, P.KEYWORD_ONLY, default=k.default, annotation=k.api) for k in knobs() if k.name != "workload"]
    return inspect.Signature(params, return_annotation="Report")


trace.__signature__ = _signature()  # type: ignore[attr-defined]
trace.__doc__ = (trace.__doc__ or "") + "\n    Options:\n" + "".join(
    f"        {k.name}: {k.help}\n" for k in knobs() if k.name != "workload")


def __getattr__(name: str) -> Any:
    if name == "Report":
        from fxmeter.report.files import Report

        return Report
    raise AttributeError(name)
