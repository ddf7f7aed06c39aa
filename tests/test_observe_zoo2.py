"""The other half of :data:`tests.observe_cases.ZOO` (every other model from the second), checked as in
``test_observe_zoo.py``: a file of its own so that a second pytest-xdist worker takes it."""

from __future__ import annotations

import pytest

from tests.observe_cases import ZOO
from tests.test_observe_zoo import check_zoo_model


@pytest.mark.slow
@pytest.mark.parametrize("mid", ZOO[1::2])
def test_zoo_observation_equals_the_hand_plan(mid: str) -> None:
    check_zoo_model(mid)
