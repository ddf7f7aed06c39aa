"""Numbers for people: SI prefixes, bytes in GB and GiB, seconds, shares, money.

Exact integers stay in report.json; everything a person reads goes through here: the console,
summary.md and the static text of report.html use the forms at the top (``human``, ``si_bytes``,
``seconds``, ``with_unit``); the compact three-digit forms below label charts (report.html's
script mirrors them).
"""

from __future__ import annotations

import math
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


# -- compact forms: three significant digits, for chart labels and axis ticks ---------------------
# report.html's script (fxmeter/report/assets/app.js: si, siBytes, secs) draws its labels with the
# same rules; tests/test_html.py checks a drawn label against these.
_PREFIXES = ("", "k", "M", "G", "T", "P", "E", "Z", "Y")
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def _three(v: float) -> str:
    """Three significant digits (at least the integer part): 6.5234 -> 6.52, 26.67 -> 26.7, 775.03 -> 775."""
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def _finite(n: float) -> bool:
    return not isinstance(n, float) or math.isfinite(n)


def compact(n: float, unit: str = "") -> str:
    """``6523436592005120, "FLOP"`` -> ``6.52 PFLOP`` (SI prefixes, three significant digits)."""
    if not _finite(n):
        return f"{n} {unit}".strip()
    if abs(n) < 1000:
        return (f"{n:,}" if isinstance(n, int) else f"{n:.3g}") + (f" {unit}" if unit else "")
    if abs(n) >= 999.5e24:  # past yotta (and past a float's range): scientific, exact for integers
        return f"{Decimal(n):.2e} {unit}".strip()
    sign, v, i = "-" if n < 0 else "", abs(n), 0
    while v >= 999.5 and i < len(_PREFIXES) - 1:
        v, i = v / 1000, i + 1
    return f"{sign}{_three(v)} {_PREFIXES[i]}{unit}"


def compact_bytes(n: float) -> str:
    """``28635351168`` -> ``26.7 GiB`` (binary prefixes, three significant digits)."""
    if not _finite(n) or abs(n) < 1024:
        return f"{n:,} B" if isinstance(n, int) else f"{n:.3g} B"
    if abs(n) >= 999.5 * 2**80:  # past YiB: scientific
        return f"{Decimal(n):.2e} B"
    sign, v, i = "-" if n < 0 else "", abs(n), 0
    while v >= 999.5 and i < len(_BINARY) - 1:  # 1013 GiB reads 0.99 TiB: three digits at most
        v, i = v / 1024, i + 1
    return f"{sign}{_three(v)} {_BINARY[i]}"


def compact_seconds(s: float) -> str:
    """``775.04`` -> ``775 s``, ``7.7504`` -> ``7.75 s``, ``0.0123`` -> ``12.3 ms``; 1000 s and more: ``1,234 s``."""
    if not math.isfinite(s):
        return f"{s} s"
    a = abs(s)
    if a >= 1000:
        return f"{s:,.0f} s"
    if a >= 1 or a == 0:
        return f"{'-' if s < 0 else ''}{_three(a)} s" if a else "0 s"
    for div, unit in ((1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")):
        if a >= div * 0.9995:
            return f"{'-' if s < 0 else ''}{_three(a / div)} {unit}"
    return f"{s:.3g} s"


def log_tick(exponent: int, unit: str = "") -> str:
    """The label of the tick at ``10**exponent`` on a log axis, one format for every tick of an axis:
    SI prefixes from 1 k up (``1 k``, ``100 TFLOP/s``), plain decimals below 1 (``0.01``)."""
    if exponent < 0:
        return f"{Decimal(1).scaleb(exponent):f}" + (f" {unit}" if unit else "")
    i = min(exponent // 3, len(_PREFIXES) - 1)
    mantissa = 10 ** (exponent - 3 * i)
    return f"{mantissa} {_PREFIXES[i]}{unit}".strip() if i or unit else f"{mantissa}"


# -- shares and money -----------------------------------------------------------------------------
def percent(x: float, digits: int = 1) -> str:
    """``0.879`` -> ``87.9%``."""
    return f"{100 * x:.{digits}f}%"


def dollars(x: float, digits: int = 2) -> str:
    """``0.6213`` -> ``$0.62`` (``digits`` decimals; thousands separated)."""
    return f"${x:,.{digits}f}"


def count(n: float) -> str:
    """An exact count for people: ``1234567`` -> ``1,234,567`` (a float: four significant digits)."""
    return f"{n:,}" if isinstance(n, int) and not isinstance(n, bool) else f"{n:.4g}"


def decimal(x: float, digits: int) -> str:
    """A plain decimal with ``digits`` decimals and thousands separated: ``39649.6439, 2`` -> ``39,649.64``."""
    return f"{x:,.{digits}f}"


def times(x: float) -> str:
    """A ratio (speed-up, B over A): ``7.031`` -> ``7.03×``."""
    return f"{x:.2f}×"
