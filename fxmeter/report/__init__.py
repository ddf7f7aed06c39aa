"""The report stage: the typed Report <-> report.json, and its renderers (summary, top, compare, charts)."""

from fxmeter.report.files import Report

__all__ = ["Report"]
