"""Each zoo model's real pipeline on meta equals its plan (slow): every other model of :data:`tests.observe_cases.ZOO`
from the first (the rest in ``test_observe_zoo2.py``; two files, so that two workers share them)."""

from __future__ import annotations

import pytest

from fxmeter.model import observe as ob
from fxmeter.model.registry import resolve_model
from fxmeter.model.workload import get_preset
from tests.observe_cases import KNOWN, PRESET_ONLY, REFUSED, ZOO, second_workload
from tests.stored import observed


def check_zoo_model(mid: str) -> None:
    """A zoo model's pipeline on meta at its preset and a smaller second workload (not for
    :data:`PRESET_ONLY`): the same stages, runs, steps, batch and input shapes
    and dtypes as its hand plan (CFG batching as the pipeline ran it), but for :data:`KNOWN`; the models in
    :data:`REFUSED` stop with one error naming why."""
    from fxmeter.errors import ConfigError, TraceError

    if mid in REFUSED:
        with pytest.raises((ConfigError, TraceError), match=REFUSED[mid]):
            ob.observe_model(mid)
        return
    m = resolve_model(mid)
    wl = get_preset(m.default_workload)
    runs = (wl,) if mid in PRESET_ONLY else (wl, second_workload(wl))
    for w, obs in zip(runs, observed(m, runs)):
        diffs = ob.compare_with_plan(m, obs, batched_cfg=ob.cfg_batched(obs))
        assert {(d.stage, d.what) for d in diffs} == set(KNOWN.get(mid, {})), (mid, w.name, [str(d) for d in diffs])


@pytest.mark.slow
@pytest.mark.parametrize("mid", ZOO[::2])
def test_zoo_observation_equals_the_hand_plan(mid: str) -> None:
    check_zoo_model(mid)
