"""fxmeter train: forward+backward FLOPs equal FlopCounterMode over loss.backward() on meta; memory and time."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from fxmeter.estimate.training import (
    OPTIMIZERS,
    StepCosts,
    TrainingError,
    TrainSetup,
    fp8_weight_parameters,
    memory,
    optimizer_state_bytes,
)
from fxmeter.rules import Cost
from tests.stored import stored_json


def _reference(model_id: str, workload: str | None, rank: int, attention: str = "flash",
               **over: Any) -> tuple[int, int, dict[str, Any]]:
    """(our forward+backward tensor-core FLOPs, FlopCounterMode's over loss.backward() on the full meta model)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fxmeter.estimate.train_plan import trace_step
    from fxmeter.model.capture import build_model
    from fxmeter.model.registry import resolve_model
    from fxmeter.model.training import DEFAULT_TARGETS, apply_lora, attention_kernel

    costs, traced = trace_step(model_id, workload=workload, lora_rank=rank, attention=attention, **over)
    m = resolve_model(model_id)
    comp = m.component("transformer")
    cfg = dict(comp.config)

    def count() -> int:
        model = build_model(cfg, "bfloat16")
        model.train()
        if rank:
            apply_lora(model, rank, DEFAULT_TARGETS, comp.adapter.repeated, torch.bfloat16)
        kw = comp.adapter.inputs(cfg, traced["dims"], torch.bfloat16)
        with attention_kernel(attention), FlopCounterMode(display=False) as fc:
            out = model(**kw)
            pred = out[0] if isinstance(out, (tuple, list)) else out.sample
            preds = list(pred) if isinstance(pred, (tuple, list)) else [pred]  # Z-Image: one tensor per image
            sum(torch.nn.functional.mse_loss(p.float(), torch.zeros_like(p, dtype=torch.float32)) for p in preds).backward()
        return int(fc.get_total_flops())

    # FlopCounterMode's count (the reference side) is kept between sessions under the code it ran (tests/stored.py)
    ref = stored_json("training", [comp.config_sha256, comp.adapter.name, traced["dims"], rank, list(DEFAULT_TARGETS),
                                   attention], count)
    return int(costs.total.tensor_core_flops), int(ref), {"costs": costs, "traced": traced}


@pytest.mark.slow
@pytest.mark.parametrize("rank", [0, 16])
def test_wan_1_3b_forward_backward_equals_flopcountermode(rank: int) -> None:
    ours, ref, info = _reference("wan2.1-t2v-1.3b", "ci-tiny", rank)
    assert ours == ref
    c: StepCosts = info["costs"]
    assert not c.unmodeled
    if rank:  # LoRA: frozen base, only the adapters train (every Linear of the 30 blocks: 10 per block)
        assert c.lora_layers == 300
        assert c.trainable_parameters < c.parameters // 50
    else:
        assert c.trainable_parameters == c.parameters
    assert c.backward.tensor_core_flops > c.forward.tensor_core_flops


@pytest.mark.slow
def test_math_attention_matches_eager_meta_dispatch() -> None:
    """attention=math keeps torch's meta dispatch: plain loss.backward() on meta counts the same."""
    ours, ref, _ = _reference("wan2.1-t2v-1.3b", "ci-tiny", 16, attention="math")
    assert ours == ref


@pytest.mark.slow
@pytest.mark.parametrize("model_id,workload,over", [
    ("wan2.1-t2v-1.3b", "480p", {}),
    ("wan2.1-t2v-14b", "480p", {}),
    ("flux.1-dev", None, {}),
])
@pytest.mark.parametrize("rank", [0, 32])
def test_default_training_workloads_equal_flopcountermode(model_id: str, workload: str | None, over: dict[str, Any],
                                                          rank: int) -> None:
    ours, ref, _ = _reference(model_id, workload, rank, **over)
    assert ours == ref


# -- memory and optimizer states: arithmetic on a hand-made step ---------------------------------------
def _costs(**kw: Any) -> StepCosts:
    base = dict(forward=Cost(10, 0, 0, 0), backward=Cost(20, 0, 0, 0), block_forward={"blocks": Cost(1, 0, 0, 0)},
                blocks={"blocks": 10}, saved_bytes=1000 * 10 + 100, block_saved_bytes={"blocks": 1000},
                block_input_bytes={"blocks": 50}, transient_bytes=300, parameters=10_000, trainable_parameters=1_000,
                trainable_tensors=20, linear_weight_parameters=8_000, block_parameters={"blocks": 900},
                trainable_shapes={(10, 50): 2}, input_bytes=7, unmodeled={}, graphs={},
                block_linear_weights={"blocks": {"attn.to_q": 300, "attn.to_k": 300, "norm1.linear": 100, "ff.proj": 100}})
    base.update(kw)
    return StepCosts(**base)


def test_optimizer_state_bytes() -> None:
    c = _costs()
    assert optimizer_state_bytes("adamw", c) == 8 * 1000
    assert optimizer_state_bytes("sgd", c) == 0
    assert optimizer_state_bytes("prodigy", c) == 16 * 1000
    assert optimizer_state_bytes("adamw8bit", c) == 2000 + 4  # 2 bytes + one fp32 absmax per 2048 values
    assert optimizer_state_bytes("adafactor", c) == 2 * 4 * (10 + 50)  # a row and a column per 10x50 matrix
    assert all(src for _, src in OPTIMIZERS.values())


def test_lora_memory_parts() -> None:
    c = _costs()
    mem = memory(TrainSetup(method="lora", lora_rank=4), c)
    # frozen 9,000 params: 8,000 Linear weights + 1,000 others... minus the trainable: 9,000 frozen, of which
    # min(8,000 linear, 9,000) at 2 bytes (bf16) and the rest at 2
    assert mem.parts["base_weights"] == 9_000 * 2
    assert mem.parts["trainable_weights"] == 1_000 * 4 and mem.parts["gradients"] == 1_000 * 4
    assert mem.parts["optimizer_states"] == 8_000
    assert mem.parts["saved_activations"] == 10_100 and mem.parts["backward_transient"] == 300
    fp8 = memory(TrainSetup(method="lora", base_precision="fp8"), c)
    # the blocks' Linears in 1 byte (10 x 800) but the kept ones ('norm' in norm1.linear: 10 x 100): 7,000 in fp8,
    # the other 2,000 frozen parameters in bf16
    assert fp8_weight_parameters(TrainSetup(base_precision="fp8"), c) == 7_000
    assert fp8.parts["base_weights"] == 7_000 * 1 + 2_000 * 2
    none_kept = memory(TrainSetup(method="lora", base_precision="fp8", fp8_keep=()), c)
    assert none_kept.parts["base_weights"] == 8_000 * 1 + 1_000 * 2
    mod = TrainSetup(base_precision="fp8", fp8_keep=("norm", "attn.to_k"))  # a trainer that also keeps to_k in bf16
    assert fp8_weight_parameters(mod, c) == 10 * (300 + 100)
    ck = memory(TrainSetup(checkpointing="full"), c)
    # 10 blocks checkpointed: each keeps its 50-byte input instead of its 1,000 bytes; one block live again
    assert ck.parts["saved_activations"] == 10_100 - 10 * 1000 + 10 * 50 + 1000
    sel = memory(TrainSetup(checkpointing="selective", checkpoint_blocks=4), c)
    assert sel.parts["saved_activations"] == 10_100 - 4 * 1000 + 4 * 50 + 1000
    sw = memory(TrainSetup(blocks_to_swap=3), c)
    # one block: 900 of the 10,000 parameters; the frozen base (9,000 params, 18,000 bytes) at its mean bytes/param
    assert sw.host_bytes == 3 * (18_000 * 9_000 // (10_000 * 10))
    assert sw.parts["base_weights"] == 9_000 * 2 - sw.host_bytes
    assert memory(replace(TrainSetup(), batch=2), c).parts["saved_activations"] == 2 * 10_100


def test_full_fsdp_shards_states() -> None:
    c = _costs(trainable_parameters=10_000, trainable_shapes={(100, 100): 1})
    one = memory(TrainSetup(method="full"), c)
    four = memory(TrainSetup(method="full", gpus=4, fsdp=True), c)
    assert one.parts["optimizer_states"] == 80_000 and four.parts["optimizer_states"] == 20_000
    assert four.parts["gradients"] == one.parts["gradients"] // 4
    assert four.parts["gathered_weights"] == 2 * 900 * 2


@pytest.mark.parametrize("setup,match", [
    (TrainSetup(lora_rank=0), "lora-rank"),
    (TrainSetup(optimizer="lion"), "unknown optimizer"),
    (TrainSetup(checkpointing="some"), "unknown gradient checkpointing"),
    (TrainSetup(blocks_to_swap=9), "blocks-to-swap"),
    (TrainSetup(grad_accum=0), "grad-accum"),
    (TrainSetup(fsdp=True), "--fsdp needs"),
])
def test_setup_check(setup: TrainSetup, match: str) -> None:
    with pytest.raises(TrainingError, match=match):
        setup.check(10)


def test_backward_peak_liveness() -> None:
    """Saved a (100 B) live at the start; n1 = f(a) 50 B; n2 = view(n1); n3 = g(n2, a) 50 B: peak 100 + 50 + 50,
    then a and n1 (through its view) die at n3, their last use."""
    from fxmeter.estimate.training import _backward_peak
    from fxmeter.model.capture import NodeRecord
    from fxmeter.rules import OpCall, TensorMeta

    def rec(name: str, target: str, uses: tuple[str, ...], nbytes: int) -> NodeRecord:
        out = TensorMeta((nbytes,), "uint8", 1)
        return NodeRecord(name, target, "", OpCall(target, (), {}, (out,)), uses)

    records = [rec("n1", "aten.mul.Tensor", ("a",), 50), rec("n2", "aten.view.default", ("n1",), 50),
               rec("n3", "aten.add.Tensor", ("n2", "a"), 50), rec("n4", "aten.mul.Tensor", ("n3",), 10)]
    assert _backward_peak(records, {"a": 100}) == 100 + 50 + 50
    # a saved tensor the backward never reads stays live (it was saved): 30 more at the peak
    assert _backward_peak(records, {"a": 100, "b": 30}) == 230


def test_tensor_attributes_are_lifted_for_the_training_trace() -> None:
    """A plain tensor attribute (Qwen-Image's RoPE tables) becomes a non-persistent buffer: AOTAutograd then
    passes it as a fake input instead of meeting a real meta tensor inside the trace."""
    import torch

    from fxmeter.model.training import as_exporting, lift_tensor_attributes

    m = torch.nn.Sequential(torch.nn.Linear(2, 2))
    m[0].table = torch.zeros(3)
    assert lift_tensor_attributes(m) == ["0.table"]
    assert "table" in dict(m[0].named_buffers()) and "0.table" not in m.state_dict()
    before = torch.compiler.is_exporting
    with as_exporting():
        assert torch.compiler.is_exporting()
    assert torch.compiler.is_exporting is before


def test_a_helper_objects_cached_tensors_are_lifted() -> None:
    """Z-Image's RopeEmbedder is a plain object (not a Module) that caches its RoPE tables on the first call: they
    become buffers of the module that holds it, read through the same attribute."""
    import torch

    from fxmeter.model.training import _BufferList, lift_tensor_attributes

    class Rope:  # like diffusers' RopeEmbedder
        def __init__(self) -> None:
            self.theta, self.freqs_cis = 256.0, [torch.zeros(4, 2), torch.ones(8, 2)]

    m = torch.nn.Sequential(torch.nn.Linear(2, 2))
    m[0].rope = Rope()
    assert lift_tensor_attributes(m) == ["0.rope.freqs_cis"]
    assert isinstance(m[0].rope.freqs_cis, _BufferList) and len(m[0].rope.freqs_cis) == 2
    assert torch.equal(m[0].rope.freqs_cis[1], torch.ones(8, 2)) and m[0].rope.theta == 256.0
    assert {"_fxmeter_rope__freqs_cis_0", "_fxmeter_rope__freqs_cis_1"} <= set(dict(m[0].named_buffers()))
    assert lift_tensor_attributes(m) == []  # a second pass (after the warm-up forward) lifts nothing twice


@pytest.mark.slow
def test_z_image_traces_for_training() -> None:
    """Z-Image caches its RoPE tables in a helper object on the first call and returns one tensor per image: the
    training trace runs (it was an error: 'convert all Tensors to FakeTensors').  Its forward equals FlopCounterMode
    exactly; its backward is 1.1% of the step short of eager autograd's (13,454,195,294,208 vs 13,607,537,737,728
    at 128x128: the whole-model trace gives the same, so it is not the block extrapolation).  Not explained yet:
    kept as a bound here, listed as open in the README's training section."""
    ours, ref, info = _reference("z-image-turbo", None, 4, height=128, width=128)
    c: StepCosts = info["costs"]
    assert c.forward.tensor_core_flops == 6_705_440_817_152  # = FlopCounterMode's forward (checked when written)
    assert ours <= ref and (ref - ours) / ref < 0.012


@pytest.mark.slow
def test_lumina2_traces_for_training() -> None:
    """Lumina2 keeps its RoPE tables in a plain list of tensors: lifted, the training trace runs and is exact."""
    ours, ref, _ = _reference("lumina-image-2.0", None, 4, height=128, width=128)
    assert ours == ref


@pytest.mark.slow
def test_qwen_image_traces_for_training() -> None:
    """Qwen-Image (a tensor attribute and lru-cached RoPE) traces for training.  Known, not yet explained:
    at 128x128 ours is 0.53% below eager FlopCounterMode (16,407,819,190,272 vs 16,494,943,272,960); the
    block extrapolation is not the cause (every block traced gives the same count)."""
    ours, ref, got = _reference("qwen-image", None, 4, height=128, width=128)
    assert 0 < ref - ours < ref // 100
    # an fp8 base: the 60 blocks' Linears, less what the trainer keeps in bf16 (musubi-tuner @36f3a98 kept the
    # img_mod / txt_mod modulation, 3,072 -> 18,432 each, two per block: 6.8B of the 20.4B parameters)
    c = got["costs"]
    block = c.block_linear_weights["transformer_blocks"]
    assert block["img_mod.1"] == block["txt_mod.1"] == 3072 * 18432 and c.blocks["transformer_blocks"] == 60
    everything = fp8_weight_parameters(TrainSetup(base_precision="fp8", fp8_keep=()), c)
    assert everything == 60 * sum(block.values())
    musubi_aug_2025 = fp8_weight_parameters(TrainSetup(base_precision="fp8", fp8_keep=("norm", "_mod")), c)
    assert everything - musubi_aug_2025 == 60 * 2 * 3072 * 18432
