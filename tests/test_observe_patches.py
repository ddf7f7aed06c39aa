"""The narrow patches ``fxmeter observe`` runs a pipeline on meta with (``fxmeter.model.observe``), one by one:
known values of small meta tensors, the scheduler patch that survives ``copy.deepcopy``, the shape-only
tokenizer's prompt length and ``model_max_length``, list inputs' batch, and the stand-ins for components a
pipeline takes but does not run (HunyuanVideo-1.5's ByT5, Cosmos's guardrail)."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from fxmeter.errors import TraceError
from fxmeter.model import observe as ob


def test_known_values_answer_value_reads_of_a_tokenizer_mask() -> None:
    """Qwen-Image / Z-Image / Kandinsky 5 read the mask's values: hidden[mask], mask.sum(1).tolist(),
    cu_seqlens.max().item(); the answers are those of the CPU mask it came from."""
    hidden = torch.empty(2, 6, 4, device="meta")
    with ob._known_values_mode():
        mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]]).to("meta")
        assert mask.device.type == "meta"
        assert hidden[mask.bool()].shape == (5, 4)
        assert mask.sum(dim=1).tolist() == [3, 2]
        cu = torch.nn.functional.pad(torch.cumsum(mask.sum(1), dim=0), (1, 0))
        assert cu.diff().max().item() == 3
        assert int(torch.arange(7, device="meta").max()) == 6  # factories on meta keep their values
        lengths = mask.sum(dim=1).cpu()  # Cosmos: lengths on the CPU, then prompt_embeds[i, length:] = 0
        assert lengths.device.type == "cpu" and lengths.tolist() == [3, 2]
        # a CPU tensor (the scheduler's sigmas) meets a meta one: both on meta, as on a real device
        assert (torch.ones(2, 3, device="meta") * torch.tensor([[0.5], [0.25]])).device.type == "meta"
        with pytest.raises(RuntimeError):  # a tensor of no known values (an activation) stays value-less
            hidden.sum().item()


def test_known_values_leave_the_source_tensor_alone() -> None:
    cpu = torch.zeros(3)
    with ob._known_values_mode():
        m = cpu.to("meta")
        m[0] = 1  # in place on the meta tensor: its twin changes, not the CPU tensor it was copied from
        assert m.tolist() == [1.0, 0.0, 0.0]
    assert cpu.tolist() == [0.0, 0.0, 0.0]


def test_scheduler_patch_survives_deepcopy() -> None:
    """LTX-2 deep-copies the pipeline's scheduler for its audio latents: the copy keeps its own state and the
    patch (one step counter advance per step, from the pipeline's own scheduler only)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    rec = ob._Recorder()
    sched: Any = FlowMatchEulerDiscreteScheduler()
    rec.scheduler(sched)
    assert type(sched).__name__ == "FlowMatchEulerDiscreteScheduler"
    audio = copy.deepcopy(sched)
    audio.set_timesteps(4, device="meta")
    sched.set_timesteps(4, device="meta")
    assert sched.timesteps.device.type == "cpu" and rec.step == 0
    x = torch.empty(1, 8, 16, device="meta")
    a = torch.empty(1, 3, 16, device="meta")
    for t in sched.timesteps:
        x = sched.step(x, t, x, return_dict=False)[0]
        a = audio.step(a, t, a, return_dict=False)[0]
    assert rec.step == 4 and x.shape == (1, 8, 16) and a.shape == (1, 3, 16) and a.device.type == "meta"


def test_shape_tokenizer_prompt_fills_text_len_after_the_template_prefix() -> None:
    tok = ob.ShapeTokenizer()
    tok.prompt_tokens, tok.prefix_tokens = 20, 34
    out = tok(["a"], padding=True, max_length=1058, truncation=True, return_tensors="pt")  # Qwen-Image's call
    assert out["input_ids"].shape == (1, 54) and int(out["attention_mask"].sum()) == 54
    out = tok(["a"], padding="max_length", max_length=64, truncation=True, return_tensors="pt")
    assert out["input_ids"].shape == (1, 64) and int(out["attention_mask"].sum()) == 54
    out = tok(["a"], padding="max_length", max_length=40, truncation=True, return_tensors="pt")
    assert int(out["attention_mask"].sum()) == 40


def test_model_max_length_follows_the_paired_encoder() -> None:
    def enc(model_type: str, **kw: int) -> SimpleNamespace:
        return SimpleNamespace(config=SimpleNamespace(model_type=model_type, **kw))

    assert ob._model_max_length(enc("clip_text_model", max_position_embeddings=77)) == 77
    assert ob._model_max_length(enc("t5")) == 512
    assert ob._model_max_length(enc("llama")) > 1 << 20  # HiDream's Llama: min(128, this) = 128
    assert ob._model_max_length(None) > 1 << 20


def test_batch_of_a_list_input_is_its_length() -> None:
    spec = ob.TensorSpec((16, 1, 8, 8), "bfloat16")
    call = ob.Call("transformer", "forward", (("x[0]", spec), ("x[1]", spec), ("t", ob.TensorSpec((2,), "float32"))),
                   0, None)
    assert call.batch == 2
    assert ob.Call("transformer", "forward", (("x", spec),), 0, None).batch == 16


def test_unused_component_and_guardrail_stand_ins() -> None:
    byt5 = ob._Unused("text_encoder_2", {"d_model": 1472, "_source": "x"}, "bfloat16")
    assert byt5.config.d_model == 1472 and byt5.dtype == torch.bfloat16 and byt5.to("meta") is byt5
    with pytest.raises(TraceError, match="text_encoder_2"):
        byt5(torch.zeros(1))
    pipe = SimpleNamespace(safety_checker=None)
    guard = ob._PassGuardrail()
    pipe.safety_checker, guard.pipe = guard, pipe
    assert guard.to("meta") is guard and pipe.safety_checker is guard and guard.check_text_safety("x")
    guard.to("cpu")  # the pipeline moves it back after the prompt check: it leaves the pipeline
    assert pipe.safety_checker is None


def test_guider_from_config_takes_the_workloads_guidance() -> None:
    from dataclasses import replace

    from fxmeter.model.workload import get_preset

    wl = replace(get_preset("480p"), guidance_scale=3.5)
    g = ob._from_config({"_class_name": "ClassifierFreeGuidance", "guidance_scale": 6.0}, wl)
    assert type(g).__name__ == "ClassifierFreeGuidance" and g.guidance_scale == wl.guidance_scale
