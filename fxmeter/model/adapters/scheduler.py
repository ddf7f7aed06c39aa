"""The denoising timesteps a pipeline's scheduler runs, from its ``scheduler_config.json``.

The Wan2.2-A14B expert split needs the timesteps of the pipeline's scheduler (each
step runs the expert whose range holds its timestep).  For the flow-sigma
``UniPCMultistepScheduler`` that Wan pipelines ship, :func:`flow_sigma_timesteps`
reproduces ``UniPCMultistepScheduler.set_timesteps`` (diffusers 0.42) in pure
Python, float operation for float operation, so a warm report needs neither
torch, numpy nor diffusers; a differential test compares it with diffusers for
many step counts and shifts.  Any other scheduler configuration is handed to
diffusers itself (imported lazily).
"""

from __future__ import annotations

from typing import Any

from fxmeter.errors import ConfigError

#: scheduler config keys that, set, take UniPC off the plain flow-sigma path
_OTHER_SIGMAS = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "use_dynamic_shifting", "shift_terminal")


def flow_sigma_timesteps(steps: int, num_train_timesteps: int = 1000, flow_shift: float = 1.0) -> list[int]:
    """``UniPCMultistepScheduler(use_flow_sigmas=True, flow_shift=s).set_timesteps(steps)``, as ints.

    diffusers::

        sigmas = np.linspace(1, 1 / N, steps + 1)[:-1]
        sigmas = s * sigmas / (1 + (s - 1) * sigmas)
        if np.fabs(sigmas[0] - 1) < 1e-6: sigmas[0] -= 1e-6
        timesteps = torch.from_numpy(sigmas * N).to(torch.int64)   # truncation toward zero

    ``np.linspace(a, b, n)`` is ``i * ((b - a) / (n - 1)) + a`` for ``i < n - 1`` (the last
    point, dropped here, is set to ``b``): the same IEEE double operations as below.
    """
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    n = num_train_timesteps
    start, stop = 1.0, 1.0 / n
    delta = (stop - start) / steps
    sigmas = [i * delta + start for i in range(steps)]
    sigmas = [flow_shift * s / (1 + (flow_shift - 1) * s) for s in sigmas]
    if abs(sigmas[0] - 1) < 1e-6:  # diffusers: avoid log(0) in the first UniPC update
        sigmas[0] -= 1e-6
    return [int(s * n) for s in sigmas]


def is_plain_flow_unipc(config: dict[str, Any]) -> bool:
    """True when ``config`` is a UniPC scheduler on the plain flow-sigma path (pure Python)."""
    return (
        config.get("_class_name") == "UniPCMultistepScheduler"
        and bool(config.get("use_flow_sigmas", False))
        and not any(config.get(k) for k in _OTHER_SIGMAS)
    )


def describe(config: dict[str, Any]) -> str:
    """``UniPCMultistepScheduler(flow_shift=3.0, use_flow_sigmas=True, num_train_timesteps=1000)``."""
    keys = ("flow_shift", "use_flow_sigmas", "num_train_timesteps", "shift", "prediction_type")
    args = ", ".join(f"{k}={config[k]!r}" for k in keys if k in config)
    return f"{config.get('_class_name', '?')}({args})"


def timesteps(config: dict[str, Any], steps: int) -> list[float]:
    """The timesteps a pipeline's scheduler (``scheduler_config.json`` contents) runs for ``steps`` steps."""
    if not isinstance(config, dict) or not config.get("_class_name"):
        raise ConfigError("the pipeline's scheduler config (scheduler/scheduler_config.json, with _class_name) is needed "
                          "to split steps between experts")
    if is_plain_flow_unipc(config):
        shift = config.get("flow_shift", 1.0)
        n = config.get("num_train_timesteps", 1000)
        if isinstance(shift, bool) or not isinstance(shift, (int, float)) or shift <= 0:
            raise ConfigError(f"scheduler flow_shift must be a positive number, got {shift!r}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"scheduler num_train_timesteps must be a positive integer, got {n!r}")
        return [float(t) for t in flow_sigma_timesteps(steps, n, float(shift))]
    return diffusers_timesteps(config, steps)


def diffusers_timesteps(config: dict[str, Any], steps: int) -> list[float]:
    """The timesteps from diffusers' own scheduler class (imports torch and diffusers)."""
    import diffusers

    cls = getattr(diffusers, str(config["_class_name"]), None)
    if cls is None or not hasattr(cls, "set_timesteps"):
        raise ConfigError(f"diffusers {diffusers.__version__} has no scheduler {config['_class_name']!r}")
    try:
        sched = cls.from_config({k: v for k, v in config.items() if not k.startswith("_")})
        sched.set_timesteps(steps, device="cpu")
        return [float(t) for t in sched.timesteps.tolist()]
    except Exception as e:  # the scheduler's own validation: this config cannot run
        raise ConfigError(f"scheduler {describe(config)} cannot set {steps} timesteps: {type(e).__name__}: {e}") from None
