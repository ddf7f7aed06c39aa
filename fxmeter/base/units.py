"""Numbers for people: SI prefixes, bytes in GB and GiB, seconds, money.

Exact integers stay in report.json; everything a person reads goes through here.
"""

from __future__ import annotations

from decimal import Decimal


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23 M'; past a million E (1e24), exact scientific notation (never a 20-digit 'E' figure)."""
    for div, suffix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            if abs(n) >= 1e24:
                return f"{Decimal(n):.2e} {unit}".strip()
            return f"{n / div:.2f} {suffix}{unit}"
    return f"{n:g} {unit}".strip()


def human_bytes(n: float) -> str:
    """28635351168 -> '26.67 GiB' (binary prefixes)."""
    for div, suffix in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(n) >= div:
            if abs(n) >= 1e300:
                return f"{Decimal(n):.2e} B"
            return f"{n / div:.2f} {suffix}"
    return f"{int(n)} B"


def si_bytes(n: float) -> str:
    """28635351168 -> '28.64 GB / 26.67 GiB' (decimal and binary); under 1 kB just bytes."""
    if abs(n) < 1000:
        return f"{int(n)} B"
    return f"{human(n, 'B')} / {human_bytes(n)}"


def with_unit(n: float, metric: str) -> str:
    """A value of a named quantity: FLOPs in FLOP (SI), bytes in GB / GiB, seconds in s, counts as is."""
    if "bytes" in metric:
        return si_bytes(n)
    if "flops" in metric or metric == "flop":
        return human(n, "FLOP")
    if "seconds" in metric:
        return seconds(n)
    return f"{n:,}" if isinstance(n, int) else f"{n:g}"


def seconds(s: float) -> str:
    """1234.5 -> '1,234.5 s'; 0.0123 -> '12.30 ms'; 2e-6 -> '2.0 us'; 1.6e26 -> '1.60e+26 s';
    a difference keeps its sign (-238.0 s)."""
    if s == 0:
        return "0 s"
    if s < 0:
        return "-" + seconds(-s)
    if s >= 1e9:  # past ~32 years: a 30-digit figure of seconds says less than its exponent
        return f"{s:.2e} s"
    if s >= 1:
        return f"{s:,.1f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"
