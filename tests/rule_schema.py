"""Test helpers: resolve a registered rule name to torch's real op, and hold rules to its schema.

Kept out of :mod:`fxmeter.rules` on purpose: the rules package is imported on the warm
path, which must not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
import torch

from fxmeter.rules import OpCall

#: registered names that are host-side Python callables, not torch.ops overloads
HOST_PREFIXES = ("operator.", "builtins.", "math.", "torch.sym_", "torch._C._set_grad_enabled")


def is_host(name: str) -> bool:
    return name.startswith(HOST_PREFIXES)


def host_callable(name: str) -> Any:
    """``operator.getitem`` -> the function, or None."""
    module, _, attr = name.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr, None)
    except ImportError:
        return None


def resolve(name: str) -> torch._ops.OpOverload | None:
    """``aten.pow_.Scalar`` -> ``torch.ops.aten.pow_.Scalar``, or None when torch has no such overload."""
    parts = name.split(".")
    if len(parts) != 3:
        return None
    ns, op, overload = parts
    try:
        found = getattr(getattr(getattr(torch.ops, ns), op), overload)
    except (AttributeError, RuntimeError):
        return None
    return found if isinstance(found, torch._ops.OpOverload) else None


def schema(name: str) -> Any:
    op = None if is_host(name) else resolve(name)
    return None if op is None else op._schema


def check_arg(target: str, i: int | None, name: str) -> None:
    """Fail unless ``target``'s schema has argument ``name`` at position ``i`` (None: keyword-only)."""
    s = schema(target)
    if s is None:
        return
    names = [a.name for a in s.arguments]
    assert name in names, f"rule reads {name!r}, which {target} does not have: {s}"
    arg = s.arguments[names.index(name)]
    if i is None:
        assert arg.kwarg_only, (
            f"rule reads {name!r} of {target} by keyword only, but it is positional {names.index(name)}: {s}"
        )
    else:
        assert not arg.kwarg_only and names.index(name) == i, f"rule reads {name!r} of {target} at position {i}: {s}"


@pytest.fixture
def schema_checked_args(monkeypatch: pytest.MonkeyPatch) -> None:
    """While active, every ``OpCall.arg(i, name)`` a rule makes is checked against the op's schema."""
    original = OpCall.arg

    def arg(self: OpCall, i: int | None, name: str, default: Any = None) -> Any:
        check_arg(self.target, i, name)
        return original(self, i, name, default)

    monkeypatch.setattr(OpCall, "arg", arg)
