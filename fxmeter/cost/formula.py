"""Closed-form costs: sympy expressions <-> strings <-> fast exact evaluation.

A dynamic trace yields every cost as an integer polynomial of the workload
symbols.  They are stored as strings (``str(sympy.expand(e))``), and a workload is
evaluated by one generated Python function over plain ints: exact, and free of
any torch/sympy import on the warm path.

Formulas may come from a cache file on disk, so :func:`compile_table` accepts
only a small expression language, checked on each formula's syntax tree
(``ast.parse(mode="eval")``) before anything is compiled: integer constants, the
trace's symbol names, ``+ - * //``, unary minus and ``**`` with a small constant
exponent.  A bound on each formula's degree and on the size of its constants
keeps evaluation fast for any workload (no ``9**9**9**9``).
"""

from __future__ import annotations

import ast
import keyword
import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from fxmeter.errors import TraceError

#: Largest constant exponent of ``**`` (Wan's formulas use 2).
MAX_EXPONENT = 8
#: Largest polynomial degree of a formula in the workload symbols (Wan's attention: 7).
MAX_DEGREE = 64
#: Bound on the bits of a formula's constant part (Wan: < 40 bits per coefficient).
MAX_CONSTANT_BITS = 4096
#: Longest formula string (Wan's longest: ~200 characters).
MAX_LENGTH = 100_000
_SYMBOL = re.compile(r"[a-z_][a-z0-9_]*")
_CHARS = re.compile(r"[0-9a-z_ +\-*/()]+")


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


def check_symbols(symbols: Sequence[str]) -> None:
    """Symbol names must be distinct lower-case identifiers (they become a function's parameters)."""
    if isinstance(symbols, str) or not all(isinstance(s, str) for s in symbols):
        raise TraceError(f"symbols must be a list of names, got {symbols!r:.80}")
    for s in symbols:
        if not _SYMBOL.fullmatch(s) or keyword.iskeyword(s) or s.startswith("__"):
            raise TraceError(f"refusing symbol name {s[:40]!r}: not a plain lower-case identifier")
    if len(set(symbols)) != len(symbols):
        raise TraceError(f"symbol names repeat: {list(symbols)}")


def _bound(node: ast.AST, names: frozenset[str]) -> tuple[int, int]:
    """(degree, constant bits) of an allowed expression; TraceError for anything else.

    A value is at most ``2**bits * S**degree`` for symbols up to ``S``: ``a + b``
    adds a bit, ``a * b`` adds both, ``a ** k`` multiplies by ``k``.
    """
    if isinstance(node, ast.Constant):
        v = node.value
        if type(v) is not int:
            raise TraceError(f"constant {v!r:.40} is not an integer")
        return 0, v.bit_length()
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise TraceError(f"unknown name {node.id!r:.40} (symbols: {', '.join(sorted(names))})")
        return 1, 0
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return _bound(node.operand, names)
    if isinstance(node, ast.BinOp):
        op = node.op
        if isinstance(op, ast.Pow):
            k = node.right
            if not (isinstance(k, ast.Constant) and type(k.value) is int and 0 <= k.value <= MAX_EXPONENT):
                raise TraceError(f"'**' needs a constant integer exponent in [0, {MAX_EXPONENT}]")
            d, b = _bound(node.left, names)
            return d * k.value, b * k.value
        if isinstance(op, ast.FloorDiv):
            k = node.right
            if not (isinstance(k, ast.Constant) and type(k.value) is int and k.value >= 1):
                raise TraceError("'//' needs a positive constant integer divisor")
            return _bound(node.left, names)
        if isinstance(op, (ast.Add, ast.Sub, ast.Mult)):
            (d1, b1), (d2, b2) = _bound(node.left, names), _bound(node.right, names)
            return (d1 + d2, b1 + b2) if isinstance(op, ast.Mult) else (max(d1, d2), max(b1, b2) + 1)
        raise TraceError(f"operator {type(op).__name__} is not allowed")
    raise TraceError(f"{type(node).__name__} is not allowed")


def parse_formula(s: Any, names: frozenset[str]) -> ast.expr:
    """The checked syntax tree of one formula (integer arithmetic over ``names`` only)."""
    if not isinstance(s, str):
        raise TraceError(f"formula {s!r:.60} is not a string")
    if len(s) > MAX_LENGTH:
        raise TraceError(f"formula of {len(s):,} characters (at most {MAX_LENGTH:,})")
    try:
        body = ast.parse(s, mode="eval").body
        degree, bits = _bound(body, names)
    except TraceError as e:
        raise TraceError(f"refusing formula {s[:60]!r}: {e}") from None
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        raise TraceError(f"refusing formula {s[:60]!r}: not one expression ({type(e).__name__})") from None
    if degree > MAX_DEGREE or bits > MAX_CONSTANT_BITS:
        raise TraceError(f"refusing formula {s[:60]!r}: degree {degree} / {bits}-bit constants exceed "
                         f"{MAX_DEGREE} / {MAX_CONSTANT_BITS}")
    return body


def compile_table(strings: Sequence[str], symbols: Sequence[str]) -> Callable[..., list[int]]:
    """One function ``f(**dims) -> [value of each formula]`` (exact ints).

    Every formula is checked on its own syntax tree first (:func:`parse_formula`),
    so a tampered cache file can never smuggle code, a float or a huge power into
    the evaluator; then the checked strings are joined into one generated function
    (the warm path's speed).  Compiled tables are memoised: checking a cached model
    and evaluating it compile once.  Raises :class:`TraceError` for anything refused.
    """
    if isinstance(strings, str) or isinstance(symbols, str):
        raise TraceError("formulas and symbols must be lists of strings")
    return _compile(tuple(strings), tuple(symbols))


@lru_cache(maxsize=8)
def _compile(strings: tuple[str, ...], symbols: tuple[str, ...]) -> Callable[..., list[int]]:
    check_symbols(symbols)
    names = frozenset(symbols)
    for s in strings:
        # the characters of integer arithmetic only: no comment, newline, comma or quote can change
        # how the joined source below splits into one expression per formula
        if not isinstance(s, str) or not _CHARS.fullmatch(s):
            raise TraceError(f"refusing formula {str(s)[:60]!r}: not integer arithmetic over {sorted(names)}")
        parse_formula(s, names)
    body = ",\n    ".join(strings)
    src = f"def _fx_eval({', '.join(symbols)}):\n  return [\n    {body}\n  ]\n"
    scope: dict[str, Any] = {"__builtins__": {}}
    try:
        exec(compile(src, "<fxmeter-formulas>", "exec"), scope)  # noqa: S102 - checked integer arithmetic only
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        raise TraceError(f"cannot compile the formula table ({type(e).__name__})") from None
    return scope["_fx_eval"]  # type: ignore[no-any-return]
