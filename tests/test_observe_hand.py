"""Each hand-planned model's real pipeline on meta, at its preset and at a smaller workload: its calls equal the hand plan (slow).

The smaller workload is :func:`tests.observe_cases.second_workload`; ``test_observe_axes.py`` observes it (and one
variant per knob) for every model of ``AXES_MODELS`` and compares each with the hand plan, so here those models
are observed at their preset only and the two that share another's class and pipeline at both."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fxmeter.model import observe as ob
from fxmeter.model.registry import resolve_model
from fxmeter.model.workload import get_preset
from tests.observe_cases import AXES_MODELS, BATCHED_CFG, HAND_PLANNED, KNOWN, second_workload
from tests.stored import observed


@pytest.mark.slow
@pytest.mark.parametrize("mid", HAND_PLANNED)
def test_observation_equals_the_hand_plan(mid: str) -> None:
    m = resolve_model(mid)
    wl = get_preset(m.default_workload)
    runs = [replace(w, text_len=512) if "i2v" in mid else w  # Wan I2V: fxmeter pins 512 text tokens (the attention
            for w in ((wl,) if mid in AXES_MODELS else (wl, second_workload(wl)))]  # processor hard-codes them)
    for w, obs in zip(runs, observed(m, runs, built_at=wl)):
        assert ob.cfg_batched(obs) == (mid in BATCHED_CFG), (mid, w.name)
        diffs = ob.compare_with_plan(m, obs, batched_cfg=mid in BATCHED_CFG)
        assert {(d.stage, d.what) for d in diffs} == set(KNOWN.get(mid, {})), (mid, w.name, [str(d) for d in diffs])
        plans = m.stages(w, denoise_only=True)
        if len(plans) == 2:  # Wan2.2-A14B: the low-noise expert takes over after the high-noise expert's steps
            switch = obs.expert_switch()
            assert switch is not None and switch[0] == plans[0].steps and switch[1] == plans[1].timesteps[0]
