"""The rule registry against torch's own op table: every name is a real overload, every in-place and
``out=`` sibling of a modelled op is modelled too, and each variant reads the call its schema describes.

Registration itself does not check names: ``fxmeter.rules`` is imported on the warm path, which must not
import torch (tests/test_cache.py::test_warm_path_imports_no_torch), so the check lives here.
"""

from __future__ import annotations

import inspect

import pytest
import torch

from fxmeter import rules
from fxmeter.model.capture import target_name
from fxmeter.rules import Cost, OpCall, TensorMeta
from tests.rule_schema import check_arg, host_callable, is_host, resolve, schema, schema_checked_args  # noqa: F401  (fixture)

NAMES = sorted(set(rules.REGISTRY) | set(rules.FREE_OPS))
ATEN = [n for n in NAMES if not is_host(n)]

#: overloads of a modelled op that are deliberately not registered, and why
NOT_MODELLED = {
    "aten.copy.Dict_Tensor": "TorchScript dict copy: no tensor data moves",
    "aten.einsum.sublist": "TorchScript varargs form; torch.einsum turns sublists into an equation before dispatch",
    "aten.eq.Tensor_list": "TorchScript list equality, returns a Python bool",
    "aten.ne.Tensor_list": "TorchScript list inequality, returns a Python bool",
    "aten.index.list_Tensor": "TorchScript list.index, returns an int",
    "aten.where.default": "where(condition) is nonzero(): a data-dependent shape, not an elementwise select",
}

#: in-place / out variants without a functional twin of the same schema, and what they are instead
OWN_SCHEMA = {
    "aten.copy_.Tensor": "copy_(self, other): the TorchScript spelling of copy_(self, src)",
    "aten.copy_.int": "TorchScript's copy_ from a number: a fill",
    "aten.copy_.float": "TorchScript's copy_ from a number: a fill",
    "aten._unsafe_view.out": "the out variant of a (free) view: a copy",
    "aten.scalar_tensor.out": "free like scalar_tensor",
    "aten.empty.out": "allocation: free like empty",
    "aten.empty_like.out": "allocation: free like empty_like",
    "aten.empty_strided.out": "allocation: free like empty_strided",
    "aten.new_empty.out": "allocation: free like new_empty",
}


def _base(op: str) -> str:
    """The functional name of an op: ``add_`` -> ``add``, ``__iand__`` -> ``__and__``."""
    if op.startswith("__i") and op.endswith("__"):
        return "__" + op[3:]
    if op.endswith("_") and not op.endswith("__"):
        return op[:-1]
    return op


def _has_tensor(s: torch.FunctionSchema) -> bool:
    return any("Tensor" in str(a.type) for a in [*s.arguments, *s.returns])


def _is_variant(name: str) -> bool:
    """In place (mutates self) or an out variant (writes keyword-only out tensors)."""
    s = schema(name)
    return any(a.is_out for a in s.arguments) or _base(name.split(".")[1]) != name.split(".")[1]


@pytest.mark.parametrize("name", NAMES)
def test_every_registered_name_is_a_real_op(name: str) -> None:
    if is_host(name):
        assert callable(host_callable(name)), f"{name} is not a Python callable"
        return
    op = resolve(name)
    assert op is not None, f"{name} is not an overload in torch.ops (torch {torch.__version__})"
    # and it is the name capture gives that op in a graph, so the rule is found
    assert target_name(op) == name


def test_host_names_are_what_capture_names_them() -> None:
    import math
    import operator

    assert {target_name(f) for f in (operator.getitem, operator.mul, math.ceil, torch.sym_int)} <= set(rules.FREE_OPS)
    assert target_name(torch._C._set_grad_enabled) in rules.FREE_OPS


def test_every_sibling_of_a_modelled_op_is_modelled() -> None:
    """In-place (``pow_.Scalar``) and out (``pow.Tensor_Scalar_out``) overloads of every modelled op."""
    registered = set(NAMES)
    missing = []
    for base in sorted({_base(n.split(".")[1]) for n in ATEN}):
        for packet in (base, base + "_", "__i" + base[2:] if base.startswith("__") else ""):
            ops = getattr(torch.ops.aten, packet, None) if packet else None
            for overload in ops.overloads() if ops is not None else ():
                name = f"aten.{packet}.{overload}"
                if name not in registered and name not in NOT_MODELLED and _has_tensor(getattr(ops, overload)._schema):
                    missing.append(f"{name}: {getattr(ops, overload)._schema}")
    assert not missing, "unmodelled overloads of modelled ops:\n" + "\n".join(missing)


@pytest.mark.parametrize("name", sorted(rules.REGISTRY))
def test_out_variants_drop_exactly_their_out_tensors(name: str) -> None:
    """``add.out``'s ``out=`` is written, not read: the rule sees the functional call."""
    s = schema(name)
    if s is None:
        return
    outs = tuple(a.name for a in s.arguments if a.is_out)
    assert rules.REGISTRY[name].out_args == outs, (
        f"{name}: schema out args {outs}, registered {rules.REGISTRY[name].out_args}"
    )


def _signature(s: torch.FunctionSchema) -> tuple[list[tuple[str, str]], set[tuple[str, str]]]:
    """(positional arguments, keyword-only arguments), out tensors left out."""
    args = [a for a in s.arguments if not a.is_out]
    return [(a.name, str(a.type)) for a in args if not a.kwarg_only], {
        (a.name, str(a.type)) for a in args if a.kwarg_only
    }


@pytest.mark.parametrize("name", [n for n in ATEN if n in rules.REGISTRY and _is_variant(n)])
def test_variants_share_rule_and_schema_with_their_functional_op(name: str) -> None:
    """``pow_.Scalar`` is ``pow.Tensor_Scalar`` in place: same rule, same arguments in the same places
    (an out variant may drop keyword-only options such as ``dtype`` that ``out=`` supplies)."""
    if name in OWN_SCHEMA:
        return
    positional, keywords = _signature(schema(name))
    fn = inspect.unwrap(rules.REGISTRY[name].fn)
    base = _base(name.split(".")[1])
    twins = []
    for other, rule in rules.REGISTRY.items():
        if other.split(".")[1] != base or other == name or _is_variant(other):
            continue
        other_positional, other_keywords = _signature(schema(other))
        if other_positional == positional and keywords <= other_keywords:
            twins.append(other)
            assert inspect.unwrap(rule.fn) is fn, f"{name} and its functional {other} have different rules"
            assert rule.family == rules.REGISTRY[name].family
    assert twins, f"{name} has no registered functional op with its arguments {positional} {keywords}"


def test_register_refuses_duplicates_of_variants_too() -> None:
    with pytest.raises(RuntimeError, match="duplicate registrations for aten.pow_.Scalar"):
        rules.register("aten.pow_.Scalar", family="transcendental")(lambda call: Cost())
    with pytest.raises(RuntimeError, match="duplicate registrations for aten.add.out"):
        rules.register("aten.add.out", family="elementwise", out_args=("out",))(lambda call: Cost())
    assert rules.lookup("aten.pow_.Scalar") is not None  # the failed registration left the registry alone


def test_an_out_variant_reads_what_its_functional_reads() -> None:
    # add.out(a[4, 8], b[8], *, out=c[4, 8]) fp32: reads a and b (32 + 8 elements), writes c (32): the same as add
    a, b, c = TensorMeta((4, 8), "float32", 4), TensorMeta((8,), "float32", 4), TensorMeta((4, 8), "float32", 4)
    out = rules.lookup("aten.add.out").fn(OpCall("aten.add.out", (a, b), {"out": c}, (c,)))  # type: ignore[union-attr]
    plain = rules.lookup("aten.add.Tensor").fn(OpCall("aten.add.Tensor", (a, b), {}, (c,)))  # type: ignore[union-attr]
    assert out == plain == Cost(0, 32, (32 + 8) * 4, 32 * 4)


def test_argument_tables_match_the_schemas() -> None:
    """The per-overload argument positions the rules keep (conv's ``transposed``, casts' ``copy``,
    attention masks, native_group_norm's ``group``) are where torch's schemas put them."""
    from fxmeter.rules import attention, casts, conv, norms

    for target in conv.GENERIC:
        check_arg(target, 6, "transposed")
    for target, index in casts.COPY_ARG.items():
        check_arg(target, index, "copy")
    for target, spec in attention.MASK.items():
        if spec is None:  # no mask argument at all (flash attention)
            assert not {"attn_mask", "attn_bias"} & {a.name for a in schema(target).arguments}, target
        else:
            check_arg(target, *spec)
    for target in norms.NATIVE_GROUP_NORM:
        check_arg(target, 6, "group")
        check_arg(target, 1, "weight")
        check_arg(target, 2, "bias")
    from fxmeter.rules import backward

    for target in backward.CONV_BACKWARD:  # the training step's backward ops (rules/backward.py)
        check_arg(target, 7, "transposed")
        check_arg(target, 10, "output_mask")
    for target, (_, iq, ik, iv, io, il) in backward.ATTENTION_BACKWARD.items():
        for i, name in ((iq, "query"), (ik, "key"), (iv, "value"), (io, "out"), (il, "logsumexp")):
            check_arg(target, i, name)
    # and the tables name every overload their rule is registered for
    assert set(conv.GENERIC | conv.FORWARD | conv.TRANSPOSED | backward.CONV_BACKWARD) == {
        n for n, r in rules.REGISTRY.items() if r.family == "conv"
    }
    assert set(attention.MASK) | set(backward.ATTENTION_BACKWARD) == {
        n for n, r in rules.REGISTRY.items() if r.family == "attention"
    }


def _placeholder(arg: torch.Argument, rank: int) -> object:
    """A plausible value for a schema argument: every tensor ``rank``-D, every list short."""
    kind = str(arg.type)
    if "Tensor" in kind:
        tensor = TensorMeta((2,) * rank, "float32", 4)
        return [tensor, tensor] if kind.startswith(("List", "Optional[List")) else tensor
    if kind.startswith(("List", "Optional[List")):
        return [1]
    return {"str": "none", "bool": False, "float": 1.0, "number": 1, "int": 1, "SymInt": 1}.get(
        kind.removeprefix("Optional[").rstrip("]")
    )


@pytest.mark.usefixtures("schema_checked_args")
@pytest.mark.parametrize("name", sorted(rules.REGISTRY))
def test_rules_read_arguments_where_every_overload_has_them(name: str) -> None:
    """Each registered overload, called with every schema argument in its place (ranks 1-4, so each rule
    runs through), under the schema check: a rule reading ``attn_mask`` at position 3 of an overload whose
    position 3 is ``q_descale``, or ``approximate`` positionally where it is keyword-only, fails here."""
    s = schema(name)
    rule = rules.REGISTRY[name]
    for rank in range(1, 5):
        args = tuple(_placeholder(a, rank) for a in s.arguments if not a.kwarg_only)
        kwargs = {a.name: _placeholder(a, rank) for a in s.arguments if a.kwarg_only}
        outputs = tuple(TensorMeta((2,) * rank, "float32", 4) for r in s.returns if "Tensor" in str(r.type))
        try:
            rule.fn(OpCall(name, args, kwargs, outputs))
        except AssertionError:
            raise
        except Exception:  # a shape this rule cannot take: its reads up to here were checked
            continue
