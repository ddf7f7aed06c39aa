"""fxmeter: what a diffusion transformer costs, derived from its real torch.fx graph.

``fxmeter.trace("wan2.1-t2v-14b", workload="720p")`` returns a :class:`Report`.
Heavy imports (torch, diffusers) happen only when a model is traced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .report import Report

__all__ = ["__version__", "trace", "Report"]


def trace(*args: Any, **kwargs: Any) -> Report:
    from .api import trace as _trace

    return _trace(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "Report":
        from .report import Report

        return Report
    raise AttributeError(name)
