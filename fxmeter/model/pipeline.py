"""What a generation runs, as data: the components a pipeline loads and the stages that use them.

An adapter describes its pipeline with these values and never edits a report: a
:class:`Component` is one set of weights (the transformer, a second expert; later text
encoders and VAEs), a :class:`StagePlan` says which component runs, how many times per
generation and at which batch.  The estimate stage evaluates each plan on the component's
symbolic model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fxmeter.model.adapters import Adapter


@dataclass(frozen=True)
class Component:
    """One model a pipeline loads: its config (``_class_name``, ``_pipeline``) and its adapter."""

    name: str
    config: Mapping[str, Any]
    config_sha256: str
    adapter: Adapter
    source: str = ""  # where the config came from (a URL or a file)


@dataclass(frozen=True)
class StagePlan:
    """One stage of a generation.

    Attributes:
        name: the stage's name; module ids of its report rows start with it (``transformer``).
        component: the :class:`Component` it runs.
        role: what it does, in words ("denoiser", "high-noise expert (t >= boundary)").
        runs: forwards per generation (steps x passes for a denoiser).
        batch_factor: the batch of one forward relative to the workload's (2 for batched CFG).
        steps: denoising steps it takes part in (0 for a stage outside the loop).
        timesteps: the scheduler timesteps of those steps (experts), when known.
        notes: what the plan assumed, in words (copied into the report).
        root: the first part of its module ids (``transformer``, ``text_encoder``, ``vae``); two
            stages of one component (VAE encode and decode) share it.
        adapter: the call this stage makes (text encoder, VAE decode...); None: the component's
            own adapter (the denoisers).
        dims: the stage's symbol values; None: the workload geometry's (the denoisers).
        dtype: the dtype the pipeline loads the component in; None: the deployment's ``--dtype``.
    """

    name: str
    component: str
    role: str
    runs: int
    batch_factor: int = 1
    steps: int = 0
    timesteps: tuple[float, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    root: str = "transformer"
    adapter: Adapter | None = None
    dims: Mapping[str, int] | None = None
    dtype: str | None = None

    @property
    def denoiser(self) -> bool:
        """True for a stage of the denoising loop (the transformer, an expert)."""
        return self.steps > 0 or self.adapter is None


@dataclass(frozen=True)
class ModelSpec:
    """A model fxmeter knows by name."""

    id: str
    config_file: str
    slug: str  # artifact folder name under static_analysis/
    default_workload: str
    source: str
    description: str
    #: the other components the pipeline loads -> their bundled config folder (``configs/<folder>/config.json``)
    stage_configs: Mapping[str, str] = field(default_factory=dict)
