"""How much device memory a fitting setup leaves, and whether that is enough for what fxmeter does not count.

fxmeter's fit check adds weights and peak activations (bytes the caching allocator hands out).  A
real process also holds a CUDA context (the driver's per-process state and the kernels of every
loaded library: cuBLAS, cuDNN, PyTorch's own) and the caching allocator reserves more than it
allocates (blocks split and rounded; PyTorch docs, "CUDA semantics: Memory management": reserved
memory >= allocated memory).  Neither is modelled here (a fuller allocator/context model may plug in
through :data:`CONTEXT_BYTES` and :func:`headroom`); a fit with less spare memory than a CUDA context
is flagged as too tight, one with less than :data:`SLACK_BYTES` as tight.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1 << 30

#: What a CUDA context with PyTorch's kernels loaded takes on the device before the first tensor:
#: ~1 GB per process (pytorch/pytorch issue #12873, "each process adds a GPU memory overhead (~1GB)
#: due to PyTorch's CUDA kernels", as quoted in the skrl docs; pytorch/pytorch issue #34323: 781 MB
#: in nvidia-smi right after start).  CUDA 11.7+ lazy module loading lowers it (0.5 GiB is common);
#: the upper figure is the margin below which a fit is called tight.
CONTEXT_BYTES = 1 * GIB
#: Below this much to spare a fit is called tight: a CUDA context plus as much again for the allocator's
#: rounding and fragmentation (a modelling choice: no published per-workload fragmentation figure was found).
SLACK_BYTES = 2 * CONTEXT_BYTES
CONTEXT_SOURCE = ("pytorch/pytorch issues #12873 (~1 GB per process for PyTorch's CUDA kernels) and #34323 (781 MB "
                  "at start-up); PyTorch docs 'CUDA semantics: Memory management' (the caching allocator reserves "
                  "more than it allocates)")


@dataclass(frozen=True)
class Headroom:
    """Device memory left after weights + peak activations (negative: short by that much)."""

    bytes: int
    device_bytes: int
    tight: bool  # fits, but with less to spare than a CUDA context needs (likely out of memory in practice)

    @property
    def fraction(self) -> float:
        return self.bytes / self.device_bytes if self.device_bytes else 0.0

    def text(self) -> str:
        """``1.4 GiB (1.8%) to spare`` (+ a warning when tight); empty when it does not fit."""
        if self.bytes < 0:
            return ""
        out = f"{self.bytes / GIB:.1f} GiB ({100 * self.fraction:.1f}%) to spare"
        if self.tight:
            out += (" (too tight: less than the ~0.5-1 GiB a CUDA context takes, and the caching allocator reserves "
                    "more than it allocates; neither is counted here)")
        elif self.bytes < SLACK_BYTES:
            out += (" (tight: a CUDA context takes ~0.5-1 GiB of it and the caching allocator reserves more than it "
                    "allocates; neither is counted here)")
        return out


def headroom(required_bytes: int, device_bytes: int) -> Headroom:
    """The spare memory of a setup needing ``required_bytes`` on a device of ``device_bytes``."""
    spare = device_bytes - required_bytes
    return Headroom(spare, device_bytes, 0 <= spare < CONTEXT_BYTES)


__all__ = ["CONTEXT_BYTES", "CONTEXT_SOURCE", "SLACK_BYTES", "Headroom", "headroom"]
