"""Numbers a user can give, bounded by physics: one function, each bound stated with its reason.

A value outside its bounds is not a harder question but a typo or an attack (``1e-300``
FLOP/s, a 1e308 $ price): it would print ``inf s`` or 300-digit figures, or write a report
that other commands then refuse.  :func:`bounded` turns it into one project error that names
the value, the accepted range and why the range is what it is.
"""

from __future__ import annotations

import math
from typing import Any

from fxmeter.errors import FxmeterError

#: Peak FLOP/s of one device (tensor or CUDA cores): from 1 GFLOP/s (no accelerator is slower) to
#: 1 EFLOP/s (~200x a B200's dense FP8 peak of 4.5e15, NVIDIA B200 datasheet).
PEAK_FLOPS = (1e9, 1e18, "one device's peak FLOP/s lies between 1 GFLOP/s and 1 EFLOP/s "
                         "(~200x a B200's dense FP8 4.5e15)")
#: Memory or link bandwidth of one device (bytes/s): 100 MB/s (a USB-2 link) to 1 PB/s (~100x HBM3e's 8 TB/s).
BANDWIDTH = (1e8, 1e15, "one device's memory or link bandwidth lies between 100 MB/s and 1 PB/s "
                        "(~100x a B200's 8 TB/s HBM3e)")
#: Device memory (GiB): 1/4 GiB to 1 PiB-ish (~3,600x a B300's 288 GB).
MEMORY_GIB = (0.25, 1e6, "one device's memory lies between 0.25 GiB and 1e6 GiB (~3,600x a B300's 288 GB)")
#: Kernel efficiency (fraction of a peak): 0.1 % to 100 %.
EFFICIENCY = (1e-3, 1.0, "an efficiency is the fraction of the peak a kernel reaches, between 0.001 (0.1%) "
                         "and 1 (the peak); below 0.1% it is a typo, not a kernel")
#: Price of one GPU-hour in US dollars: 0 (owned hardware) to $1,000 (~100x the dearest cloud GPU-hour today).
PRICE_PER_HOUR = (0.0, 1000.0, "a GPU-hour costs between $0 (owned hardware) and $1,000 "
                               "(~100x the dearest cloud GPU rental)")


def bounded(name: str, value: Any, lo: float, hi: float, why: str, *,
            error: type[FxmeterError] = FxmeterError, lo_open: bool = False) -> float:
    """``value`` as a float when finite and within ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``), else one ``error``.

    Args:
        name: how the message names the value (``"--efficiency tc"``, ``"device 'x' memory_bandwidth"``).
        value: a number (an int of any size, a float); a bool or a non-number is refused.
        lo, hi: the accepted range.
        why: the physical reason for the range, shown in the message.
        error: the project error class raised.
        lo_open: exclude ``lo`` itself.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"{name} must be a number, got {value!r}")
    try:
        v = float(value)
    except OverflowError:  # an int past a float: surely past hi
        v = math.inf if value > 0 else -math.inf
    below = v <= lo if lo_open else v < lo
    if not math.isfinite(v) or below or v > hi:
        shown = f"{v:g}" if math.isfinite(v) or isinstance(value, float) else \
            f"an integer of about 10^{int(abs(value).bit_length() * 0.30103)}"
        left = "(" if lo_open else "["
        raise error(f"{name} = {shown} is out of range {left}{lo:g}, {hi:g}]: {why}")
    return v


def check(name: str, value: Any, bounds: tuple[float, float, str], *,
          error: type[FxmeterError] = FxmeterError, lo_open: bool = False) -> float:
    """:func:`bounded` with one of this module's ``(lo, hi, why)`` triples."""
    lo, hi, why = bounds
    return bounded(name, value, lo, hi, why, error=error, lo_open=lo_open)
