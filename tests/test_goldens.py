"""This project's own golden reports: both Wan2.1 sizes at the standard workloads and presets.

Each model is traced once per test session (one dynamic export) and every workload is
evaluated from it.  Regenerate with ``pytest tests/test_goldens.py --fxmeter-update-goldens``
and review the diff of ``tests/goldens/*.json``.
"""

from __future__ import annotations

import pytest

from tests.reports_for_tests import WORKLOADS, wan_reports

MODELS = {"wan2.1-t2v-14b": "wan14b", "wan2.1-t2v-1.3b": "wan13b"}


@pytest.mark.slow
@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("workload", WORKLOADS)
def test_golden_report(fxmeter_golden, model: str, workload: str) -> None:  # type: ignore[no-untyped-def]
    fxmeter_golden.check(wan_reports(model)[workload], f"{MODELS[model]}_{workload}.json", rtol=0.0)
