"""pytest plugin (registered through the ``pytest11`` entry point); filled in by the golden-report issue."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fxmeter")
    group.addoption(
        "--fxmeter-update-goldens",
        action="store_true",
        default=False,
        help="fxmeter: rewrite golden reports instead of comparing against them.",
    )
