"""The JSON Schema of report.json (``fxmeter/data/report.schema.json``, draft 2020-12) and its checker.

The verdict comes from jsonschema-rs (compiled: ~1 ms on a 14B report, where the
pure-Python jsonschema takes ~0.3 s); the one-line message from jsonschema's ``best_match``
over the same schema, naming the JSON path and what is wrong there.
"""

from __future__ import annotations

from typing import Any

import orjson

from fxmeter.base import fileio


def report_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of report.json, shipped as ``fxmeter/data/report.schema.json``."""
    return dict(_schema())


def _schema() -> dict[str, Any]:
    global _SCHEMA
    if _SCHEMA is None:
        from importlib import resources

        _SCHEMA = orjson.loads(resources.files("fxmeter.data").joinpath("report.schema.json").read_bytes())
    return _SCHEMA


_SCHEMA: dict[str, Any] | None = None
_FAST: Any = None


def schema_problem(data: Any) -> str | None:
    """None when ``data`` matches the report schema, else ``"<JSON path>: <what is wrong>"``.

    The verdict comes from jsonschema-rs (compiled: ~1 ms on a 14B report, where
    the pure-Python jsonschema takes ~0.3 s); the message from jsonschema's
    ``best_match`` over the same schema.  Without jsonschema-rs, jsonschema decides.
    """
    global _FAST
    if _FAST is None:
        try:
            import jsonschema_rs

            _FAST = jsonschema_rs.validator_for(_schema())
        except Exception:  # pragma: no cover - jsonschema-rs is a dependency; without it jsonschema decides
            _FAST = False
    fast_invalid = False
    if _FAST is not False:
        try:
            if _FAST.is_valid(data):
                return None
            fast_invalid = True
        except (ValueError, TypeError, OverflowError):  # a value the compiled validator cannot take: jsonschema decides
            pass
    from jsonschema.exceptions import best_match

    err = best_match(schema_validator().iter_errors(data))
    if err is not None:
        return f"{err.json_path}: {_what(err)}"
    if not fast_invalid:
        return None
    e = next(iter(_FAST.iter_errors(data)))  # the validators disagree: the stricter (compiled) one's finding
    path = "$" + "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in e.instance_path)
    return f"{path}: {e.message[:200]}"


def schema_validator() -> Any:
    """jsonschema's (pure-Python) validator of the report schema; tuples count as arrays (in-memory reports)."""
    from jsonschema import Draft202012Validator, validators

    checker = Draft202012Validator.TYPE_CHECKER.redefine("array", lambda _, v: isinstance(v, (list, tuple)))
    return validators.extend(Draft202012Validator, type_checker=checker)(_schema())


_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number",
               type(None): "null"}


def short(v: Any, width: int = 60) -> str:
    """A value as JSON, cut to ``width`` characters."""
    try:
        text = fileio.dumps(v, indent=False).decode()
    except TypeError:
        text = repr(v)
    return text if len(text) <= width else text[: width - 3] + "..."


def _what(err: Any) -> str:
    """One line saying what is wrong at ``err``'s path (never the whole, possibly huge, value)."""
    v, kind, inst = err.validator_value, err.validator, err.instance
    got = short(inst) if inst is None or isinstance(inst, bool) else f"{_JSON_TYPES.get(type(inst), 'value')} {short(inst)}"
    if kind == "type":
        want = " or ".join(v) if isinstance(v, list) else v
        return f"expected {want}, got {got}"
    if kind == "required":
        missing = [k for k in v if isinstance(inst, dict) and k not in inst]
        return f"missing key {missing[0]!r}" if missing else err.message[:200]
    if kind == "const":
        return f"must be {short(v)}, got {got}"
    if kind == "enum":
        return f"must be one of {', '.join(short(x) for x in v)}, got {got}"
    if kind in ("minimum", "exclusiveMinimum", "maximum"):
        op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<="}[kind]
        return f"must be {op} {v}, got {short(inst)}"
    if kind in ("minItems", "maxItems"):
        return f"must have {'at least' if kind == 'minItems' else 'at most'} {v} item(s), got {len(inst)}"
    if kind == "pattern":
        return f"{short(inst)} does not match {v}"
    return err.message[:200].replace("\n", " ")
