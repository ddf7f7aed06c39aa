"""Typed records <-> JSON documents and their JSON Schema, all from one declaration: the dataclass.

A record is a frozen dataclass deriving :class:`Record`.  Its fields' type hints say what each JSON
value is (``int`` -> integer, ``float`` -> number, ``X | None`` -> X or null, ``tuple[X, ...]`` ->
array, ``Mapping[str, X]`` -> object, a nested Record -> its object); ``typing.Annotated`` adds a
constraint or a named definition to a type (``Count = Annotated[int, Ref("count", {...})]``);
:func:`key` (the metadata of ``dataclasses.field``: ``field(default=None, metadata=key(omit=OMIT_NONE))``,
or the shorthands :func:`json_name`, :func:`omit_none`, :func:`flatten`) says how one field is written and read:

- ``field(metadata=json_name("class"))``: the JSON name when it is not the attribute's;
- ``omit=OMIT_NONE`` / ``OMIT_EMPTY`` / any ``(record, value) -> bool``: leave the key out (else a None
  is written as null); an omitted key is optional in the schema;
- ``missing=``: the value read when the key is absent (the key is then optional, unless
  ``required=True``); ``falsy_missing``: null, ``[]`` and ``{}`` read as absent too;
- ``flatten=True``: the nested record's keys are merged into this one's (``present_if``: an optional
  flattened record is read only when that key is there; its other keys depend on it in the schema);
- ``rest=True``: a Mapping holding every key no other field claims (a named key wins over its own);
- ``skip=True``: not part of the document;
- ``schema={...}``: keywords merged into the field's generated schema (``enum``, ``minimum``,
  ``required``/``properties`` of a free-form Mapping, ...); ``doc``: its ``description``;
- ``write``/``read``: explicit converters for a value the type hints cannot describe.

Class attributes: ``json_def`` (a named ``$defs`` entry used wherever the record appears),
``json_doc`` (its description), ``json_derived`` (:class:`Derived` keys computed from properties,
written but not read back), ``json_coerce`` (scalars read through ``int``/``float``/``str``) and
``json_schema`` (extra keywords such as ``dependentSchemas``).  :func:`to_dict`, :func:`from_dict`
and :class:`SchemaBuilder` walk the same declarations, so adding a field to the dataclass is adding it
to the document, its reader and its schema.

Why one long module: the writer, the reader and the schema generator share one reading of the
declarations (which key is required, omitted, flattened or renamed); apart, that rule would be
restated three times and could drift, which is what this module replaces.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, TypeVar, Union, cast, overload

if TYPE_CHECKING:  # typing.Self is Python 3.11+; annotations are not evaluated at run time
    from typing import Self

MISSING: Any = dataclasses.MISSING
NOTHING: Any = type("Nothing", (), {"__repr__": lambda self: "NOTHING"})()  #: no ``missing=`` value
FIRST = ""  #: ``Derived(after=FIRST)``: the document's first key
R = TypeVar("R", bound="Record")


@dataclass(frozen=True, eq=False)  # hashed by identity: a type hint's metadata must be hashable
class Ref:
    """A named schema: ``Annotated[int, Ref("count", {"type": "integer", "minimum": 0})]`` is
    ``{"$ref": "#/$defs/count"}``; ``schema`` is a JSON Schema, or a type whose schema is generated."""

    name: str
    schema: Any


class Schema:
    """Schema keywords for an annotated type: ``Annotated[float, Schema(minimum=0)]``."""

    def __init__(self, **kw: Any) -> None:
        self.kw = kw


def OMIT_NONE(_record: Any, value: Any) -> bool:  # noqa: N802 - a constant-like predicate
    return value is None


def OMIT_EMPTY(_record: Any, value: Any) -> bool:  # noqa: N802
    return value is None or len(value) == 0


@dataclass(frozen=True)
class Key:
    """How one field is written, read and described (see the module docstring)."""

    name: str | None = None
    omit: Callable[[Any, Any], bool] | None = None
    missing: Any = NOTHING
    falsy_missing: bool = False
    required: bool | None = None
    flatten: bool = False
    present_if: str | None = None
    rest: bool = False
    skip: bool = False
    schema: Mapping[str, Any] | None = None
    doc: str | None = None
    write: Callable[[Any], Any] | None = None
    read: Callable[[Any], Any] | None = None


def key(name: str | None = None, **kw: Any) -> dict[str, Key]:
    """A field's JSON metadata: ``field(metadata=key("class", doc=...))`` (``name``: the JSON key; ``kw``: :class:`Key`'s)."""
    return {"json": Key(name, **kw)}


def json_name(name: str, **kw: Any) -> dict[str, Key]:
    """A field written under another key: ``field(metadata=json_name("class"))``."""
    return key(name, **kw)


def omit_none(**kw: Any) -> dict[str, Key]:
    """A field left out of the document when None: ``field(default=None, metadata=omit_none())``."""
    return key(omit=OMIT_NONE, **kw)


def flatten(**kw: Any) -> dict[str, Key]:
    """A nested record whose keys are merged into the parent's: ``field(metadata=flatten())``."""
    return key(flatten=True, **kw)


@dataclass(frozen=True)
class Derived:
    """A key computed from a property (``attr``, default ``name``): written, not read back."""

    name: str
    type: Any
    after: str | None = None  # the key it follows in the document (default: last)
    required: bool = True
    attr: str | None = None
    doc: str | None = None


class Record:
    """Base of the typed records: ``to_dict``/``from_dict`` through :func:`to_dict`/:func:`from_dict`."""

    json_def: ClassVar[str | None] = None
    json_doc: ClassVar[str | None] = None
    json_derived: ClassVar[tuple[Derived, ...]] = ()
    json_coerce: ClassVar[bool] = False
    json_schema: ClassVar[Mapping[str, Any]] = {}

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @overload
    @classmethod
    def from_dict(cls, d: None) -> None: ...

    @overload
    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self: ...

    @overload
    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Self | None: ...

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Self | None:
        """The record of a JSON object (None for None)."""
        return None if d is None else from_dict(cls, d)


# -- the declarations, resolved once per class -----------------------------------------------------
@dataclass(frozen=True)
class _Field:
    attr: str
    name: str
    type: Any  # the type hint, Annotated kept
    key: Key
    has_default: bool

    @property
    def required(self) -> bool:
        k = self.key
        if k.required is not None:
            return k.required
        return not (self.has_default or k.omit is not None or k.missing is not NOTHING)


@functools.cache
def _fields(cls: Any) -> tuple[_Field, ...]:
    hints = typing.get_type_hints(cls, include_extras=True)
    out = []
    for f in dataclasses.fields(cls):
        k = f.metadata.get("json", Key())
        has_default = f.default is not MISSING or f.default_factory is not MISSING
        out.append(_Field(f.name, k.name or f.name, hints[f.name], k, has_default))
    return tuple(out)


def _strip(tp: Any) -> tuple[Any, list[Any]]:
    """``tp`` without Annotated, and the Annotated metadata."""
    meta: list[Any] = []
    while typing.get_origin(tp) is Annotated:
        meta = [*tp.__metadata__, *meta]
        tp = tp.__origin__
    return tp, meta


def _optional(tp: Any) -> tuple[Any, bool]:
    """``X`` and True for ``X | None``."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)):
            rest = args[0] if len(args) == 1 else Union[tuple(args)]  # noqa: UP007 - built at run time
            return rest, True
    return tp, False


def _is_record(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, Record)


@functools.cache
def _claimed(cls: Any) -> frozenset[str]:
    """Every key the fields (flattened ones included) and derived keys of ``cls`` write."""
    out = {d.name for d in getattr(cls, "json_derived", ())}
    for f in _fields(cls):
        if f.key.skip or f.key.rest:
            continue
        if f.key.flatten:
            out |= _claimed(_optional(_strip(f.type)[0])[0])
        else:
            out.add(f.name)
    return frozenset(out)


# -- writing -----------------------------------------------------------------------------------------
def _identity(v: Any) -> Any:
    return v


def _write_any(v: Any) -> Any:
    """A free-form value as it is, records inside it (a Mapping's values) converted."""
    if isinstance(v, Record):
        return to_dict(v)
    if isinstance(v, Mapping):
        return {k: _write_any(x) for k, x in v.items()}
    return v


@functools.cache
def _writer(tp: Any) -> Callable[[Any], Any]:
    """The function writing a value of type ``tp`` as JSON (None as None)."""
    tp = _optional(_strip(tp)[0])[0]
    if tp is Any:
        return _write_any
    if _is_record(tp):
        return lambda v: None if v is None else to_dict(v)
    if _is_mapping(tp):
        vt = _value_type(tp)
        if vt is Any:
            return lambda v: None if v is None else {k: _write_any(x) for k, x in v.items()}
        vw = _writer(vt)
        return lambda v: None if v is None else {k: vw(x) for k, x in v.items()}
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            iw = _writer(args[0])
            return (lambda v: None if v is None else list(v)) if iw is _identity else (
                lambda v: None if v is None else [iw(x) for x in v])
        ws = [_writer(a) for a in args]
        return lambda v: None if v is None else [w(x) for w, x in zip(ws, v, strict=True)]
    return _identity


@functools.cache
def _write_plan(cls: Any) -> tuple[tuple[Any, ...], ...]:
    """``cls``'s writing steps, in document order: (kind, attr, JSON name, omit, writer)."""
    steps: list[tuple[Any, ...]] = []
    derived = list(getattr(cls, "json_derived", ()))

    def place(after: str) -> None:
        for x in [x for x in derived if x.after == after]:
            derived.remove(x)
            steps.append(("field", x.attr or x.name, x.name, None, _writer(x.type)))
            place(x.name)

    place(FIRST)
    for f in _fields(cls):
        k = f.key
        if k.skip:
            continue
        if k.rest:
            steps.append(("rest", f.attr, None, None, _claimed(cls)))
        elif k.flatten:
            steps.append(("flatten", f.attr, None, None, None))
            for name in _claimed(_optional(_strip(f.type)[0])[0]):
                place(name)
        else:
            steps.append(("field", f.attr, f.name, k.omit, k.write or _writer(f.type)))
        place(f.name)
    for x in derived:
        steps.append(("field", x.attr or x.name, x.name, None, _writer(x.type)))
    return tuple(steps)


def to_dict(record: Any) -> dict[str, Any]:
    """The JSON object of ``record`` (fields in declaration order, derived keys where they are declared)."""
    d: dict[str, Any] = {}
    cls: Any = type(record)
    for kind, attr, name, omit, fn in _write_plan(cls):
        v = getattr(record, attr)
        if kind == "field":
            if omit is None or not omit(record, v):
                d[name] = fn(v)
        elif kind == "flatten":
            if v is not None:
                d.update(to_dict(v))
        else:  # the keys no other field claims, here (a named key's value wins)
            d.update((n, x) for n, x in v.items() if n not in fn)
    return d


def _value_type(tp: Any) -> Any:
    args = typing.get_args(tp)
    return args[1] if len(args) == 2 else Any


def _is_mapping(tp: Any) -> bool:
    o = typing.get_origin(tp)
    return isinstance(o, type) and issubclass(o, Mapping)


# -- reading -----------------------------------------------------------------------------------------
@functools.cache
def _reader(tp: Any, coerce: bool) -> Callable[[Any], Any]:
    """The function reading a JSON value as type ``tp`` (null as None)."""
    tp = _optional(_strip(tp)[0])[0]
    if _is_record(tp):
        return lambda v: None if v is None else from_dict(tp, v)
    if _is_mapping(tp):
        vr = _reader(_value_type(tp), coerce)
        if vr is _identity:
            return lambda v: None if v is None else dict(v)
        return lambda v: None if v is None else {k: vr(x) for k, x in v.items()}
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        many = len(args) == 2 and args[1] is Ellipsis
        rs = [_reader(a, coerce) for a in (args[:1] if many else args)]

        def read(v: Any) -> Any:
            if v is None:
                return None
            if not isinstance(v, (list, tuple)):
                raise TypeError(f"expected an array, got {type(v).__name__}")
            if many:
                return tuple(v) if rs[0] is _identity else tuple(map(rs[0], v))
            return tuple(r(x) for r, x in zip(rs, v, strict=True))

        return read
    if coerce and tp in (int, float, str):
        return lambda v: None if v is None else tp(v)
    return _identity


@functools.cache
def _read_plan(cls: Any) -> tuple[tuple[Any, ...], ...]:
    """``cls``'s reading steps: (kind, attr, JSON name, Key, reader, has_default)."""
    steps: list[tuple[Any, ...]] = []
    for f in _fields(cls):
        k = f.key
        if k.skip:
            continue
        if k.rest:
            steps.append(("rest", f.attr, None, k, _claimed(cls), True))
        elif k.flatten:
            steps.append(("flatten", f.attr, None, k, _optional(_strip(f.type)[0])[0], True))
        else:
            missing = NOTHING if k.missing is NOTHING else _reader(f.type, False)(k.missing)
            steps.append(("field", f.attr, f.name, k, k.read or _reader(f.type, cls.json_coerce), f.has_default, missing))
    return tuple(steps)


def from_dict(cls: type[R], d: Mapping[str, Any], **extra: Any) -> R:
    """The record ``cls`` of the JSON object ``d`` (``extra``: constructor arguments not in the document).

    Raises KeyError (a required key is absent), TypeError or ValueError on a document of the wrong
    shape; readers validate against the schema first, or after such an error for the message."""
    if not isinstance(d, Mapping):
        raise TypeError(f"expected an object for {cls.__name__}, got {type(d).__name__}")
    kw: dict[str, Any] = {}
    plan: Any = _read_plan  # (cached per class)
    for kind, attr, name, k, fn, has_default, *missing in plan(cls):
        if attr in extra:
            continue
        if kind == "field":
            if name in d and not (k.falsy_missing and not d[name]):
                kw[attr] = fn(d[name])
            elif missing[0] is not NOTHING:
                kw[attr] = copy.copy(missing[0])
            elif not has_default:
                raise KeyError(name)
        elif kind == "flatten":
            kw[attr] = None if k.present_if is not None and k.present_if not in d else from_dict(fn, d)
        else:
            kw[attr] = {n: v for n, v in d.items() if n not in fn}
    return cls(**kw, **extra)


# -- the schema --------------------------------------------------------------------------------------
class SchemaBuilder:
    """JSON Schemas of types and records, collecting the named ``$defs`` they refer to."""

    def __init__(self) -> None:
        self.defs: dict[str, dict[str, Any]] = {}

    def ref(self, name: str, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if name not in self.defs:
            self.defs[name] = {}  # a placeholder against recursion
            self.defs[name] = make()
        return {"$ref": f"#/$defs/{name}"}

    def of_type(self, tp: Any) -> dict[str, Any]:
        """The schema of the type ``tp`` (Annotated refs and keywords applied)."""
        tp, meta = _strip(tp)
        refs = [m for m in meta if isinstance(m, Ref)]
        if refs:
            r = refs[-1]
            s = self.ref(r.name, lambda: dict(r.schema) if isinstance(r.schema, Mapping) else self.of_type(r.schema))
        else:
            s = self._bare(tp)
        for m in meta:
            if isinstance(m, Schema):
                s = {**s, **m.kw}
        return s

    def _bare(self, tp: Any) -> dict[str, Any]:
        base, opt = _optional(tp)
        if opt:
            return _nullable(self.of_type(base))
        if tp is Any:
            return {}
        if _is_record(tp):
            return self.record(tp)
        simple = {str: "string", bool: "boolean", int: "integer", float: "number"}
        if tp in simple:
            return {"type": simple[tp]}
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin in (Union, types.UnionType) and all(a in simple for a in args):
            return {"type": sorted({simple[a] for a in args})}
        if _is_mapping(tp):
            vs = self.of_type(args[1]) if args else {}
            return {"type": "object", **({"additionalProperties": vs} if vs else {})}
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                its = self.of_type(args[0])
                return {"type": "array", **({"items": its} if its else {})}
            return {"type": "array", "prefixItems": [self.of_type(a) for a in args], "minItems": len(args),
                    "maxItems": len(args)}
        raise TypeError(f"no JSON Schema for {tp!r}")

    def record(self, cls: type[Record]) -> dict[str, Any]:
        """``{"$ref": ...}`` of a record with a ``json_def``, else its object schema."""
        if cls.json_def:
            return self.ref(cls.json_def, lambda: self.object(cls))
        return self.object(cls)

    def object(self, cls: type[Record]) -> dict[str, Any]:
        """The object schema of ``cls``, flattened records merged in."""
        s: dict[str, Any] = {"type": "object"}
        if cls.json_doc:
            s["description"] = cls.json_doc
        required, props, depends = self._members(cls)
        s["required"] = required
        s["properties"] = props
        if depends:
            s["dependentRequired"] = depends
        s.update(cls.json_schema)
        if not s["required"]:
            del s["required"]
        return s

    def _members(self, cls: type[Record]) -> tuple[list[str], dict[str, Any], dict[str, list[str]]]:
        required: list[str] = []
        props: dict[str, Any] = {}
        depends: dict[str, list[str]] = {}
        for f in _fields(cast(Any, cls)):
            k = f.key
            if k.skip:
                continue
            if k.rest:
                extra = k.schema or {}
                required += [n for n in extra.get("required", ()) if n not in required]
                props.update(extra.get("properties", {}))
                continue
            if k.flatten:
                sub, opt = _optional(_strip(f.type)[0])
                r, p, dep = self._members(sub)
                props.update(p)
                depends.update(dep)
                if opt and k.present_if:
                    depends[k.present_if] = [n for n in r if n != k.present_if]
                    for n in p:
                        if n not in r:
                            depends.setdefault(n, []).append(k.present_if)
                else:
                    required += r
                continue
            props[f.name] = self.field(f)
            if f.required:
                required.append(f.name)
        for x in cls.json_derived:
            props[x.name] = {**self.of_type(x.type), **({"description": x.doc} if x.doc else {})}
            if x.required:
                required.append(x.name)
        return required, props, depends

    def field(self, f: _Field) -> dict[str, Any]:
        k = f.key
        tp = f.type
        if k.omit is not None or k.falsy_missing:  # None is never written as null: the key is left out
            bare, meta = _strip(tp)
            base, opt = _optional(bare)
            if opt:
                tp = Annotated[(base, *meta)] if meta else base
        s = self.of_type(tp)
        if k.schema:
            s = {**s, **k.schema}
            if "properties" in k.schema and s.get("additionalProperties") == {}:
                del s["additionalProperties"]
        if k.doc:
            s["description"] = k.doc
        return s


def _nullable(s: dict[str, Any]) -> dict[str, Any]:
    """``s`` or null."""
    t = s.get("type")
    if isinstance(t, str) and "$ref" not in s:
        return {**s, "type": [t, "null"]}
    if isinstance(t, list) and "null" not in t:
        return {**s, "type": [*t, "null"]}
    if "enum" in s and None not in s["enum"]:
        return {**s, "enum": [*s["enum"], None]}
    return {"anyOf": [s, {"type": "null"}]}


# -- report.json's named definitions (``$defs``), the vocabulary of its records ------------------------
#: A count or a size in bytes: an exact integer >= 0.
Count = Annotated[int, Ref("count", {"type": "integer", "minimum": 0})]
#: A count of at least one (frames, steps, GPUs, ...).
Positive = Annotated[int, Ref("positive", {"type": "integer", "minimum": 1})]
#: Seconds (>= 0).
Seconds = Annotated[float, Ref("seconds", {"type": "number", "minimum": 0})]
#: A device peak (FLOP/s, bytes/s): > 0.
Peak = Annotated[float, Ref("peak", {"type": "number", "exclusiveMinimum": 0})]
#: Name -> count.
CountMap = Annotated[Mapping[str, Count], Ref("countMap", Mapping[str, Count])]
#: What bounds a time: the tensor cores, the CUDA cores or memory (null: nothing to bound).
Limiter = Annotated[str | None, Ref("limiter", {"enum": ["tensor_core", "cuda_core", "memory", None]})]
#: A share or a ratio (>= 0).
Ratio = Annotated[float, Schema(minimum=0)]
