"""Adapters of the pipeline stages around the transformer: text encoders, image encoders, VAEs.

A stage adapter never re-implements a model.  It builds the *real* component class
(``transformers.UMT5EncoderModel``, ``diffusers.AutoencoderKLWan``...) on ``meta`` from its
bundled config, in the dtype policy of the library that loads it, and wraps it in a small
module whose ``forward`` makes exactly the call the diffusers pipeline makes
(``text_encoder(ids, mask).last_hidden_state``, ``vae.decode(z, return_dict=False)[0]``...).
The wrapper holds the component as its ``component`` attribute, so capture strips that
prefix and module ids read ``text_encoder.encoder.block.0``, ``vae.decoder.up_blocks.0``
(the stage's root plus the component's own ``named_modules()`` path).

Workload symbols of a stage: ``batch`` and, per kind, ``seq_len`` (text encoders: the padded
token count) or ``latent_frames``/``latent_h``/``latent_w`` (VAE decode and encode; an encode's
input is those times the VAE's compression).  A symbol in ``fixed_symbols`` stays a constant of
the export (the VAEs' Python frame loops specialise the frame count): such a trace is dynamic in
the others and valid for that one value (its guard is ``[v, v]``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from fxmeter.errors import ConfigError
from fxmeter.model.adapters.base import Adapter, Builder

if TYPE_CHECKING:
    import torch

#: the wrapper attribute holding the component (capture strips it from module paths)
WRAPPED = "component"
#: config keys of a bundled or downloaded component config that are not the class's arguments
META_KEYS = ("architectures", "torch_dtype", "dtype", "transformers_version", "_name_or_path", "_commit_hash")

_DTYPES = ("bfloat16", "float16", "float32")


def torch_dtype(name: str) -> torch.dtype:
    import torch

    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]


def hf_dtype_policy(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """transformers' ``from_pretrained(dtype=...)`` policy (``PreTrainedModel._get_dtype_plan``).

    ``_keep_in_fp32_modules`` stay fp32 only when loading in fp16; ``_keep_in_fp32_modules_strict``
    in fp16 and bf16.  So T5's ``wo`` (``_keep_in_fp32_modules = ["wo"]``) is bf16 in a bf16
    pipeline and fp32 in an fp16 one.  Every other floating parameter and persistent buffer
    (checkpoint entries) is cast to ``dtype``.
    """
    import torch

    keep: set[str] = set()
    if dtype == torch.float16:
        keep |= set(getattr(model, "_keep_in_fp32_modules", None) or [])
    if dtype in (torch.float16, torch.bfloat16):
        keep |= set(getattr(model, "_keep_in_fp32_modules_strict", None) or [])

    def want(name: str) -> torch.dtype:
        return torch.float32 if keep and any(k in name.split(".") for k in keep) else dtype

    for name, p in model.named_parameters():
        if p.is_floating_point() and p.dtype != want(name):
            p.data = p.data.to(want(name))
    for path, mod in model.named_modules():
        skip: set[str] = getattr(mod, "_non_persistent_buffers_set", set())
        for n, b in list(mod.named_buffers(recurse=False)):
            full = f"{path}.{n}" if path else n
            if n not in skip and b.is_floating_point() and b.dtype != want(full):
                setattr(mod, n, b.to(want(full)))


def class_config(config: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of the component's config class (``_`` keys and load metadata dropped)."""
    return {k: v for k, v in config.items() if not k.startswith("_") and k not in META_KEYS}


def build_transformers(config: dict[str, Any], dtype: str) -> torch.nn.Module:
    """A ``transformers`` model on meta from its config (SDPA attention, transformers' dtype policy)."""
    import torch
    import transformers

    name = str(config["_class_name"])
    cls = getattr(transformers, name, None)
    if cls is None:
        raise ConfigError(f"transformers {transformers.__version__} has no class {name}")
    try:
        cfg = cls.config_class(**class_config(config))
        cfg._attn_implementation = "sdpa"  # what from_pretrained picks on torch >= 2.1.1
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")
            model = cls(cfg)
    except Exception as e:  # the class's own validation: this config cannot build it
        raise ConfigError(f"{name} rejected the config: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    hf_dtype_policy(model, torch_dtype(dtype))
    return model.eval()  # type: ignore[no-any-return]


@dataclass
class StageAdapter(Adapter):
    """A pipeline stage other than the denoiser: builds the component and the pipeline's call.

    Attributes:
        library: ``transformers`` or ``diffusers`` (whose loading rules apply).
        classes: the component classes this call is made on (a config of another class is refused).
        reference_on_graph: FlopCounterMode cannot run the module eagerly on meta (transformers'
            padding-mask check calls ``.item()``), so ``verify`` counts the exported graph instead.
    """

    library: str = "diffusers"
    classes: tuple[str, ...] = ()
    reference_on_graph: bool = False
    repeated: dict[str, str] = field(default_factory=dict)  # stages are traced whole (no block replication)

    wrapped: ClassVar[str] = WRAPPED

    # -- build -------------------------------------------------------------------------------------
    def check_class(self, config: dict[str, Any], where: str) -> None:
        cls = config.get("_class_name")
        if self.classes and cls not in self.classes:
            raise ConfigError(f"{where} is a {cls}; the pipeline's {self.name} call runs a "
                              f"{' or '.join(self.classes)}")

    def build_component(self, config: dict[str, Any], dtype: str, build_diffusers: Builder) -> torch.nn.Module:
        if self.library == "transformers":
            return build_transformers(config, dtype)
        return build_diffusers(config, dtype)

    def wrap(self, model: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        """The module whose forward makes the pipeline's call on ``model`` (held as ``component``)."""
        raise NotImplementedError

    def build_module(self, config: dict[str, Any], dtype: str, build_diffusers: Builder) -> torch.nn.Module | None:
        self.check_class(config, "the component")
        return self.wrap(self.build_component(config, dtype, build_diffusers), config)

    # -- shapes --------------------------------------------------------------------------------------
    def supports_dynamic(self, config: dict[str, Any]) -> bool:
        return bool(set(self.symbols) - set(self.fixed_symbols))

    def symbol_bounds(self, config: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {s: (1, 1 << 16) for s in self.symbols}


def meta_tensor(*shape: int, dtype: Any) -> torch.Tensor:
    import torch

    return torch.empty(*shape, device="meta", dtype=dtype)
