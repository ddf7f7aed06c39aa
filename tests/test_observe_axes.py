"""Which input axes follow which workload knob, inferred from observations of the hand-planned models (slow).

One model per pipeline class and expert layout: the axes follow from the pipeline's code and the adapter,
which two configs of one class share (Wan2.1 T2V 14B is the 1.3B's class and pipeline at other widths; I2V
720p is the 480p checkpoint's config), so those two are observed at their presets only (test_observe_hand.py).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from fxmeter.model import observe as ob
from fxmeter.model.registry import resolve_model
from fxmeter.model.workload import get_preset
from tests.observe_cases import AXES_MODELS, BATCHED_CFG, KNOWN, second_workload
from tests.stored import observed


@pytest.mark.slow
@pytest.mark.parametrize("mid", AXES_MODELS)
def test_inferred_axes_agree_with_the_adapter(mid: str) -> None:
    """One workload per knob at a small size: the denoiser's axes follow the adapter's symbols, and the
    plan agrees with every variant (Wan I2V: fxmeter pins 512 text tokens, so its text knob is not varied)."""
    m = resolve_model(mid)
    wl = replace(second_workload(get_preset(m.default_workload)), steps=2)
    knobs = tuple(k for k in ob.KNOBS if not ("i2v" in mid and k == "text_len"))
    if "i2v" in mid:
        wl = replace(wl, text_len=512)
    variants = {k: v for k, v in ob.variants(wl, wl.frames > 1).items() if k in knobs}
    obs = dict(zip(("base", *variants), observed(m, (wl, *variants.values()))))
    axes = ob.axes_of(obs)
    assert set(obs) == {"base", *(k for k in knobs if k != "frames" or wl.frames > 1)}
    assert ob.check_axes(m, axes, wl) == [], mid
    assert any(a.follows == ("batch",) for a in axes if a.stage == "transformer")
    for knob, o in obs.items():
        assert ob.cfg_batched(o) == (mid in BATCHED_CFG), (mid, knob)
        diffs = ob.compare_with_plan(m, o, batched_cfg=mid in BATCHED_CFG)
        assert {(d.stage, d.what) for d in diffs} == set(KNOWN.get(mid, {})), (mid, knob, [str(d) for d in diffs])
