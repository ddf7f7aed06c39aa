"""The meta-kernel memo (fxmeter.model.metamemo): a repeat returns what the kernel makes, nothing else is touched."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fxmeter.model.metamemo import MetaMemo, _memoisable, meta_memo


def meta(*shape: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    return torch.empty(*shape, device="meta", dtype=dtype)


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (a.shape, a.stride(), a.dtype, a.device, a.storage_offset()) == \
        (b.shape, b.stride(), b.dtype, b.device, b.storage_offset())


def test_which_ops_are_memoised() -> None:
    aten = torch.ops.aten
    assert _memoisable(aten.add.Tensor) and _memoisable(aten.mm.default) and _memoisable(aten.gelu.default)
    assert _memoisable(aten.native_layer_norm.default)  # several tensor returns
    assert _memoisable(aten._scaled_dot_product_flash_attention_for_cpu.default)  # seeded (dropout): nothing drawn on meta
    assert not _memoisable(aten.add_.Tensor)  # in place: (a!)
    assert not _memoisable(aten.view.default)  # a view: (a)
    assert not _memoisable(aten.transpose.int)
    assert not _memoisable(aten.split.Tensor)  # Tensor[] returns (views)
    assert not _memoisable(aten.nonzero.default)  # dynamic output shape
    assert not _memoisable(aten._local_scalar_dense.default)  # returns a Scalar


def test_a_repeat_gets_the_kernels_metadata() -> None:
    x, w = meta(4, 77, 64), meta(128, 64)
    cases = [
        lambda: torch.nn.functional.linear(x, w),
        lambda: torch.nn.functional.gelu(x, approximate="tanh"),
        lambda: x.float() * 2,
        lambda: x.transpose(1, 2).contiguous(),  # a strided input: the key holds strides
        lambda: x.transpose(1, 2) + 1,  # elementwise on a transposed input keeps its memory format
        lambda: torch.nn.functional.layer_norm(x, (64,)),
        lambda: x[:, 5:].sum(-1),  # a sliced input (storage offset)
        lambda: torch.cat([x, x], dim=1),
        lambda: torch.nn.functional.scaled_dot_product_attention(meta(2, 8, 77, 64), meta(2, 8, 77, 64), meta(2, 8, 77, 64)),
    ]
    plain = [f() for f in cases]
    with meta_memo() as memo:
        first = [f() for f in cases]
        again = [f() for f in cases]
    assert memo.hits > 0 and memo.misses > 0
    for p, a, b in zip(plain, first, again, strict=True):
        assert same(p, a) and same(p, b), (p.shape, p.stride(), b.shape, b.stride())
        assert b.device.type == "meta"


def test_other_calls_run_their_kernels() -> None:
    with meta_memo() as memo:
        x = meta(3, 4)
        v = x.view(12)
        assert v._base is x  # views still alias
        y = x.clone()
        y.add_(1)  # in place: not memoised, returns its argument
        assert y.add_(1) is y
        c = torch.ones(3, 4) + 1  # CPU: values, never from the memo
        c2 = torch.ones(3, 4) + 1
        assert torch.equal(c, c2) and c.device.type == "cpu" and c[0, 0].item() == 2.0
        with pytest.raises(RuntimeError):  # a kernel that raises is not memoised: the repeat raises too
            torch.mm(meta(3, 4), meta(5, 6))
        with pytest.raises(RuntimeError):
            torch.mm(meta(3, 4), meta(5, 6))
    assert memo.hits == 0 or all(k[0] is not torch.ops.aten.mm.default for k in memo.entries)


def test_the_counts_under_flop_counter_mode_are_unchanged() -> None:
    """FlopCounterMode (pushed inside the memo) counts the same FLOPs per module with and without it."""
    from torch.utils.flop_counter import FlopCounterMode

    layer = torch.nn.TransformerEncoderLayer(64, 4, 256, batch_first=True, device="meta", dtype=torch.bfloat16)
    x = meta(2, 33, 64)

    def count() -> dict[str, dict[str, int]]:
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            for _ in range(3):
                layer(x)
        return {m: {str(k): v for k, v in d.items()} for m, d in fc.get_flop_counts().items()}

    plain = count()
    with MetaMemo() as memo:
        memoised = count()
    assert memoised == plain and memo.hits > 0


def test_an_observation_is_the_same_without_the_memo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``fxmeter observe`` runs the pipeline under the memo: every call it records (inputs' shapes, dtypes, runs)
    is the one the plain meta kernels give (a tiny Wan folder, two workloads)."""
    from contextlib import nullcontext
    from dataclasses import replace

    import fxmeter.model.metamemo as mm
    from fxmeter.model import observe as ob
    from fxmeter.model.workload import get_preset
    from tests.test_observe import folder

    model = ob.observe_model(str(folder(tmp_path / "tiny-wan")), "ci-tiny")[0]
    wls = (get_preset("ci-tiny"), replace(get_preset("ci-tiny"), name="other", frames=13, height=96, batch=2))
    built = ob.build(model, wls[0])
    memoised = [ob.run(built, wl, model.id) for wl in wls]
    monkeypatch.setattr(mm, "meta_memo", nullcontext)
    plain = [ob.run(built, wl, model.id) for wl in wls]
    assert memoised == plain and memoised[0] != memoised[1]
