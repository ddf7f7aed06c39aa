"""Closed-form costs: sympy expressions <-> strings <-> fast exact evaluation.

A dynamic trace yields every cost as an integer polynomial of the workload
symbols.  They are stored as strings (``str(sympy.expand(e))``), and a workload is
evaluated by one generated Python function over plain ints: exact, and free of
any torch/sympy import on the warm path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from .errors import TraceError

_SAFE = re.compile(r"[0-9a-z_*+\- ]*")
_NAME = re.compile(r"[a-z_][a-z_0-9]*")


class FormulaTable:
    """Interned formula strings; index 0 is ``"0"``."""

    def __init__(self) -> None:
        self.strings: list[str] = ["0"]
        self._index: dict[str, int] = {"0": 0}

    def add(self, value: Any) -> int:
        s = to_string(value)
        i = self._index.get(s)
        if i is None:
            i = len(self.strings)
            self.strings.append(s)
            self._index[s] = i
        return i


def to_string(value: Any) -> str:
    """Canonical string of an int or an integer polynomial (sympy)."""
    if isinstance(value, int):
        return str(value)
    import sympy

    e = sympy.expand(value)
    if e.is_Integer:
        return str(int(e))
    if not e.is_polynomial(*e.free_symbols) or any(not c.is_Integer for c in sympy.Poly(e, *sorted(e.free_symbols, key=str)).coeffs()):
        raise TraceError(f"cost {e} is not an integer polynomial of the workload symbols")
    return str(e)


def compile_table(strings: Sequence[str], symbols: Sequence[str]) -> Callable[..., list[int]]:
    """One function ``f(**dims) -> [value of each formula]`` (exact ints).

    Only integer arithmetic over the named symbols is accepted, so a tampered
    cache file can never smuggle code into ``exec``.
    """
    allowed = set(symbols)
    for s in strings:
        if not _SAFE.fullmatch(s) or not set(_NAME.findall(s)) <= allowed:
            raise TraceError(f"refusing formula {s[:80]!r}: not integer arithmetic over {sorted(allowed)}")
    body = ",\n    ".join(strings)
    src = f"def _fx_eval({', '.join(symbols)}):\n  return [\n    {body}\n  ]\n"
    scope: dict[str, Any] = {"__builtins__": {}}
    exec(compile(src, "<fxmeter-formulas>", "exec"), scope)  # noqa: S102 - our own generated arithmetic
    return scope["_fx_eval"]  # type: ignore[no-any-return]
