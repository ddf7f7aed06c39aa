"""Baseline: import torch + diffusers, build Wan2.1 14B on meta, one forward under FlopCounterMode.

Run as a whole process by benchmarks/bench.py; prints the tensor-core FLOPs of one
forward at 720p (81 frames, 1280x720 -> latent 21x90x160, 75,600 tokens, text 512).
"""

from __future__ import annotations

import json
import sys
from importlib import resources

import diffusers
import torch
from torch.utils.flop_counter import FlopCounterMode


def main() -> None:
    cfg = json.loads((resources.files("fxmeter.model.configs") / "wan2.1-t2v-14b.json").read_text())
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    with torch.device("meta"):
        model = diffusers.WanTransformer3DModel.from_config(cfg).to(torch.bfloat16).eval()
        x = torch.empty(1, 16, 21, 90, 160, dtype=torch.bfloat16)
        t = torch.empty(1, dtype=torch.long)
        enc = torch.empty(1, 512, 4096, dtype=torch.bfloat16)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(hidden_states=x, timestep=t, encoder_hidden_states=enc, return_dict=False)
    print(fc.get_total_flops())
    sys.stdout.flush()


if __name__ == "__main__":
    main()
