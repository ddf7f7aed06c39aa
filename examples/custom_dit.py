"""Add a DiT to fxmeter in one file: a small custom transformer, its adapter, a trace and a report.

Run it from the repository root::

    python examples/custom_dit.py            # writes tmp/profile-output/custom-dit-example/...

Three pieces, all below:

1. ``TinyDiT``: the model, a diffusers-style ``ModelMixin`` + ``ConfigMixin``
   class (patch embedding, N identical blocks of adaLN + self-attention + MLP,
   a linear head).  A model that already lives in diffusers skips this step.
2. ``TinyDiTAdapter``: what fxmeter needs to know about the class: the latent
   geometry of a workload, the forward's inputs as meta tensors, which input
   axes carry which workload symbol (for the dynamic export), passes per step,
   which ModuleList holds identical blocks, and module -> category rules.
3. ``register(TinyDiTAdapter())`` and ``fxmeter.trace(config=...)``.

Every op the graph contains must have a rule in ``rules/`` or be on the free
list; this model uses only covered ops (linear, SDPA, layer_norm, gelu, ...).
See docs/adding-a-model.md.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

import fxmeter
from fxmeter.model.adapters import ADAPTERS, Adapter, Geometry, SymbolAxis, register
from fxmeter.model.workload import Workload
from fxmeter.report.summary import headline

# --------------------------------------------------------------------------- 1. the model


class TinyBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(approximate="tanh"), nn.Linear(mlp_ratio * dim, dim))
        self.ada = nn.Linear(dim, 6 * dim)  # adaLN-zero modulation from the timestep embedding

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        s1, c1, g1, s2, c2, g2 = self.ada(F.silu(temb)).unsqueeze(1).chunk(6, dim=-1)
        h = self.norm1(x) * (1 + c1) + s1
        q, k, v = self.qkv(h).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)
        x = x + g1 * self.out(a)
        h = self.norm2(x) * (1 + c2) + s2
        return x + g2 * self.mlp(h)


class TinyDiT(ModelMixin, ConfigMixin):  # type: ignore[misc]
    """An image DiT: (B, C, H, W) latents -> (H/p)*(W/p) tokens -> blocks -> (B, C, H, W)."""

    @register_to_config
    def __init__(self, in_channels: int = 4, patch_size: int = 2, dim: int = 256, heads: int = 4,
                 num_layers: int = 6, mlp_ratio: int = 4, freq_dim: int = 256) -> None:
        super().__init__()
        self.patch_size, self.freq_dim = patch_size, freq_dim
        self.patch_embed = nn.Linear(in_channels * patch_size * patch_size, dim)
        self.time_embed = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.blocks = nn.ModuleList(TinyBlock(dim, heads, mlp_ratio) for _ in range(num_layers))
        self.norm_out = nn.LayerNorm(dim, elementwise_affine=False)
        self.proj_out = nn.Linear(dim, in_channels * patch_size * patch_size)

    def forward(self, hidden_states: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        b, c, h, w = hidden_states.shape
        x = hidden_states.view(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // p) * (w // p), c * p * p)
        x = self.patch_embed(x)
        half = self.freq_dim // 2
        freqs = torch.exp(-torch.arange(half, device=x.device, dtype=torch.float32) * (9.21 / half))
        args = timestep.float()[:, None] * freqs[None]
        temb = self.time_embed(torch.cat([args.cos(), args.sin()], dim=-1).to(x.dtype))
        for block in self.blocks:
            x = block(x, temb)
        x = self.proj_out(self.norm_out(x))
        return x.view(b, h // p, w // p, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


# --------------------------------------------------------------------------- 2. the adapter

VAE_SCALE = 8


@dataclass
class TinyDiTAdapter(Adapter):
    name: str = "tiny-dit"
    diffusers_class: str = "TinyDiT"
    model_class: type = TinyDiT  # only for models outside diffusers (fxmeter imports diffusers.<class> otherwise)
    repeated: dict[str, str] = field(default_factory=lambda: {"blocks": "num_layers"})  # identical blocks
    symbols: tuple[str, ...] = ("batch", "patches_h", "patches_w")
    required_keys: tuple[str, ...] = ("in_channels", "patch_size", "dim", "heads", "num_layers")
    category_rules: tuple[tuple[str, frozenset[str] | None, str], ...] = (
        (r"^blocks\.\d+$", frozenset({"attention"}), "attention_core"),
        (r"^blocks\.\d+\.(qkv|out)$", None, "attention_proj"),
        (r"^blocks\.\d+\.mlp(\.|$)", None, "ffn"),
        (r".", frozenset({"norm"}), "norms"),
        (r"^blocks\.\d+(\.|$)", None, "modulation"),
        (r"^(patch_embed|time_embed)(\.|$)", None, "embeddings"),
        (r"", None, "head"),
    )
    default_slug: str = "tiny_dit"

    def geometry(self, config: dict[str, Any], wl: Workload) -> Geometry:
        p = int(config["patch_size"])
        ph, pw = wl.height // (VAE_SCALE * p), wl.width // (VAE_SCALE * p)
        dims = {"batch": wl.batch, "patches_h": ph, "patches_w": pw}
        return Geometry(dims, (wl.batch, int(config["in_channels"]), ph * p, pw * p), ph * pw, 1)

    def inputs(self, config: dict[str, Any], dims: dict[str, int], dtype: torch.dtype) -> dict[str, Any]:
        p = int(config["patch_size"])
        shape = (dims["batch"], int(config["in_channels"]), dims["patches_h"] * p, dims["patches_w"] * p)
        return {
            "hidden_states": torch.empty(*shape, device="meta", dtype=dtype),
            "timestep": torch.empty(dims["batch"], device="meta", dtype=torch.float32),
        }

    def symbol_axes(self, config: dict[str, Any]) -> dict[str, dict[int, SymbolAxis]]:
        p = int(config["patch_size"])
        return {
            "hidden_states": {0: SymbolAxis("batch"), 2: SymbolAxis("patches_h", p), 3: SymbolAxis("patches_w", p)},
            "timestep": {0: SymbolAxis("batch")},
        }

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {"batch": (1, 1024), "patches_h": (1, 4096), "patches_w": (1, 4096)}


# --------------------------------------------------------------------------- 3. register, trace, report


def main(output_root: str = "tmp/profile-output") -> dict[str, Any]:
    if "TinyDiT" not in ADAPTERS:
        register(TinyDiTAdapter())
    config = {"_class_name": "TinyDiT", "in_channels": 4, "patch_size": 2, "dim": 256, "heads": 4, "num_layers": 6,
              "mlp_ratio": 4, "freq_dim": 256}
    workload = Workload("tiny-512", frames=1, height=512, width=512, steps=20, text_len=1, guidance_scale=4.0)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "tiny-dit" / "config.json"  # the report's model id: custom-tiny-dit
        path.parent.mkdir()
        path.write_text(json.dumps(config))
        report = fxmeter.trace(config=path, workload=workload, run_id="custom-dit-example", cache=False)
    out = report.write(force=True, output_root=output_root)
    print(headline(report))
    print(f"adapter {report['model']['adapter']}, trace mode {report['trace']['mode']}, "
          f"{report['workload']['tokens']} tokens, {report['workload']['passes_per_step']} passes/step")
    for name, cat in report["categories"].items():
        print(f"  {name:<16} {cat['tensor_core_flops']:>16,} tensor-core FLOP/forward")
    print(f"wrote {out / 'report.json'}")
    return report.data


if __name__ == "__main__":
    main()
