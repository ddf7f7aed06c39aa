"""Rules the pipeline stages need (VAE upsamplers), the arithmetic written out; and the ops of every stage graph covered."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from fxmeter import rules
from fxmeter.model.capture import _Converter, _outputs, target_name
from fxmeter.rules import Cost, OpCall, TensorMeta
from tests.rule_schema import schema_checked_args  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("schema_checked_args")


def t(*shape: int, dtype: str = "float32") -> TensorMeta:
    return TensorMeta(tuple(shape), dtype, {"float32": 4, "bfloat16": 2, "float16": 2}[dtype])


def cost(target: str, *args: object, out: TensorMeta, **kwargs: object) -> Cost | None:
    rule = rules.lookup(target)
    assert rule is not None, target
    return rule.fn(OpCall(target, args, kwargs, (out,)))


def test_nearest_2d_reads_the_input_once_and_writes_the_output() -> None:
    # AutoencoderKL Upsample2D: [1, 512, 64, 64] bf16 -> x2 -> [1, 512, 128, 128]
    # read 512*64*64 = 2,097,152 elements * 2 B = 4,194,304; written 512*128*128 = 8,388,608 * 2 B = 16,777,216
    c = cost("aten.upsample_nearest2d.vec", t(1, 512, 64, 64, dtype="bfloat16"), None, (2.0, 2.0),
             out=t(1, 512, 128, 128, dtype="bfloat16"))
    assert c == Cost(0, 0, 4_194_304, 16_777_216)


def test_nearest_3d_and_nearest_exact() -> None:
    # HunyuanVideo's 3-D upsampler: [1, 8, 4, 6, 7] fp16 -> [1, 8, 4, 12, 14]: read 1,344 x 2 B, write 5,376 x 2 B
    c = cost("aten.upsample_nearest3d.vec", t(1, 8, 4, 6, 7, dtype="float16"), None, (1.0, 2.0, 2.0),
             out=t(1, 8, 4, 12, 14, dtype="float16"))
    assert c == Cost(0, 0, 2_688, 10_752)
    # Wan's WanResample (nearest-exact) per frame: [1, 384, 90, 160] fp32 -> [1, 384, 180, 320]
    # read 384*90*160 = 5,529,600 * 4 B = 22,118,400; written 4x that = 88,473,600
    c = cost("aten._upsample_nearest_exact2d.vec", t(1, 384, 90, 160), None, (2.0, 2.0), out=t(1, 384, 180, 320))
    assert c == Cost(0, 0, 22_118_400, 88_473_600)


def test_out_variants_write_out_not_read_it() -> None:
    # upsample_nearest2d.out(x[1, 2, 3, 4], output_size, out=y[1, 2, 6, 8]): read 24 x 4 B, write 96 x 4 B
    x, y = t(1, 2, 3, 4), t(1, 2, 6, 8)
    rule = rules.lookup("aten.upsample_nearest2d.out")
    assert rule is not None
    assert rule.fn(OpCall("aten.upsample_nearest2d.out", (x, (6, 8)), {"out": y}, (y,))) == Cost(0, 0, 96, 384)


@pytest.mark.parametrize(("fn", "shape", "mode"), [
    (torch.nn.functional.interpolate, (1, 3, 5, 7), "nearest"),
    (torch.nn.functional.interpolate, (2, 3, 4, 5, 6), "nearest"),
    (torch.nn.functional.interpolate, (1, 3, 5, 7), "nearest-exact"),
    (torch.nn.functional.interpolate, (1, 2, 3, 4, 5), "nearest-exact"),
])
def test_flop_counter_counts_no_flops_where_the_rule_counts_none(fn, shape, mode) -> None:  # type: ignore[no-untyped-def]
    """Differential: the op torch dispatches for nn.Upsample, counted by FlopCounterMode and by the rule."""
    x = torch.empty(shape, device="meta")
    seen: list[OpCall] = []

    class Record(torch.utils._python_dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            out = func(*args, **(kwargs or {}))
            conv = _Converter({})
            seen.append(OpCall(target_name(func), tuple(conv.value(a) for a in args),
                               {k: conv.value(v) for k, v in (kwargs or {}).items()}, _outputs(out, conv)))
            return out

    with FlopCounterMode(display=False) as fc, Record():
        y = fn(x, scale_factor=2, mode=mode)
    calls = [c for c in seen if "upsample" in c.target]
    assert calls, [c.target for c in seen]
    for c in calls:
        got = rules.lookup(c.target)
        assert got is not None, c.target
        r = got.fn(c)
        assert r is not None
        assert r.tensor_core_flops == fc.get_total_flops() == 0
        assert r.bytes_written == y.numel() * 4 and r.bytes_read == x.numel() * 4
