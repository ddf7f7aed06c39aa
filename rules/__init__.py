"""Per-op cost rules: one op family per module, one registry for all of them.

A rule is a small pure function from an :class:`OpCall` (shapes and dtypes, never
tensor data) to a :class:`Cost`.  Shapes are ints or sympy expressions of the
workload symbols, so the same rule yields an exact integer for a static trace and
a closed-form formula for a dynamic one.

Counting semantics (also in the README):

* FLOP = 2 x multiply-accumulate for matmul-class ops (torch.utils.flop_counter's
  convention), so ``tensor_core_flops`` equals FlopCounterMode's count.
* ``cuda_core_flops`` counts elementwise/normalisation/softmax/activation work with
  a per-element cost stated in each rule's docstring.
* ``bytes_read``/``bytes_written`` are the logical sizes of the tensors an op
  consumes and produces (dtype-aware); views move nothing.

Every registered name is a real ``torch.ops`` overload (``aten.<op>.<overload>``),
and every in-place and ``out=`` sibling of a modelled op is registered too:
tests/test_rules_registry.py resolves each name against torch's schemas.  The check
lives in the tests, not in :func:`register`, because this package is imported on the
warm path (``fxmeter.cost.analyze``), which must not import torch.

A rule returns ``None`` to refuse a call it cannot model exactly (an exotic einsum,
a matmul whose kernel depends on strides): the node is then listed as unmodeled,
never silently counted as a guess.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import reduce, wraps
from typing import Any, NamedTuple

__all__ = [
    "Cost",
    "TensorMeta",
    "OpCall",
    "Rule",
    "REGISTRY",
    "FREE_OPS",
    "register",
    "register_rows",
    "lookup",
    "is_free",
    "numel",
    "ZERO",
]

Num = Any  # int or sympy.Expr


def numel(shape: Iterable[Num]) -> Num:
    """Number of elements of a shape (works for ints and sympy expressions)."""
    return reduce(operator.mul, shape, 1)


@dataclass(frozen=True)
class TensorMeta:
    """Shape and dtype of one tensor flowing through the graph."""

    shape: tuple[Num, ...]
    dtype: str
    itemsize: int

    @property
    def numel(self) -> Num:
        return numel(self.shape)

    @property
    def nbytes(self) -> Num:
        return self.numel * self.itemsize

    @property
    def ndim(self) -> int:
        return len(self.shape)


class Cost(NamedTuple):
    """What one node costs. Values are ints or sympy expressions."""

    tensor_core_flops: Num = 0
    cuda_core_flops: Num = 0
    bytes_read: Num = 0
    bytes_written: Num = 0

    def __add__(self, other: object) -> Cost:  # type: ignore[override]
        if not isinstance(other, Cost):
            return NotImplemented
        return Cost(*(a + b for a, b in zip(self, other)))

    def scale(self, k: Num) -> Cost:
        return Cost(*(k * v for v in self))


ZERO = Cost()
METRICS: tuple[str, ...] = Cost._fields


@dataclass(frozen=True)
class OpCall:
    """One graph node as a rule sees it.

    ``args``/``kwargs`` mirror the node's arguments with every tensor replaced by
    its :class:`TensorMeta` and every SymInt by its expression.  ``outputs`` lists
    the tensors the op produces (a tuple of one for most ops).
    """

    target: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    outputs: tuple[TensorMeta, ...]

    def arg(self, i: int | None, name: str, default: Any = None) -> Any:
        """Argument ``name`` at schema position ``i`` (``None``: keyword-only)."""
        if i is not None and i < len(self.args):
            return self.args[i]
        return self.kwargs.get(name, default)

    def tensor_args(self) -> Iterator[TensorMeta]:
        """Every tensor among the arguments, nested lists included, in order."""
        yield from _tensors(self.args)
        yield from _tensors(tuple(self.kwargs.values()))

    @property
    def out(self) -> TensorMeta:
        return self.outputs[0]

    def read_bytes(self) -> Num:
        return sum((t.nbytes for t in self.tensor_args()), 0)

    def written_bytes(self) -> Num:
        return sum((t.nbytes for t in self.outputs), 0)


def _tensors(values: Iterable[Any]) -> Iterator[TensorMeta]:
    for v in values:
        if isinstance(v, TensorMeta):
            yield v
        elif isinstance(v, (list, tuple)):
            yield from _tensors(v)


RuleFn = Callable[[OpCall], Cost | None]  # None: the rule refuses (the op is listed as unmodeled)


@dataclass(frozen=True)
class Rule:
    """A registered cost formula and the op family it belongs to.

    ``out_args`` names the ``out=`` tensors of an out variant (``aten.add.out``):
    ``fn`` drops them before the formula sees the call, so they are written, not read.
    """

    fn: RuleFn
    family: str
    module: str
    out_args: tuple[str, ...] = ()


REGISTRY: dict[str, Rule] = {}


def register(*targets: str, family: str, out_args: Iterable[str] = ()) -> Callable[[RuleFn], RuleFn]:
    """Register ``fn`` as the rule for each op ``target`` (e.g. ``"aten.linear.default"``).

    ``out_args``: for out variants (``"aten.add.out"``), the keyword-only output
    tensors (``("out",)``); the rule then sees the functional call.  Registering a
    target twice is an error: one registry, one source of truth.
    """
    outs = tuple(out_args)

    def deco(fn: RuleFn) -> RuleFn:
        stored = _functional(fn, outs) if outs else fn
        for t in targets:
            if t in REGISTRY or t in FREE_OPS:
                raise RuntimeError(f"duplicate registrations for {t}")
            REGISTRY[t] = Rule(stored, family, fn.__module__, outs)
        return fn

    return deco


def register_rows(rows: Iterable[tuple[str, str | None, str | None]], rule: RuleFn, family: str) -> None:
    """Register ``rule`` for each ``(functional, in-place, out=)`` row of ``aten`` overload names
    (``None``: torch has no such variant); the out variants take a single ``out=`` tensor.

    Names are spelled out: torch's in-place and out overloads are not derivable from the
    functional name (``pow.Tensor_Scalar`` -> ``pow_.Scalar``, ``pow.Tensor_Scalar_out``).
    """
    rows = list(rows)
    register(*(f"aten.{n}" for f, i, _ in rows for n in (f, i) if n), family=family)(rule)
    register(*(f"aten.{o}" for _, _, o in rows if o), family=family, out_args=("out",))(rule)


def _functional(fn: RuleFn, outs: tuple[str, ...]) -> RuleFn:
    """``fn`` applied to the call without its ``out=`` tensors."""

    @wraps(fn)
    def rule(call: OpCall) -> Cost | None:
        kwargs = {k: v for k, v in call.kwargs.items() if k not in outs}
        return fn(OpCall(call.target, call.args, kwargs, call.outputs))

    return rule


def lookup(target: str) -> Rule | None:
    return REGISTRY.get(target)


from .free import FREE_OPS  # noqa: E402  (the free list must exist before rules register)


def is_free(target: str) -> bool:
    return target in FREE_OPS


def _register_all() -> None:
    """Import every rule module of this package (each registers its rules when imported), in name
    order: a new op family is a new file here, and no list to edit (nor a trace to re-key)."""
    import importlib
    import pkgutil

    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_") and info.name != "free":
            importlib.import_module(f"{__name__}.{info.name}")


_register_all()
