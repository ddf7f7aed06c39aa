"""report.json's JSON Schema (draft 2020-12), generated from the typed records.

``fxmeter/data/report.schema.json`` is this module's output, shipped so that a reader of report.json
(fxmeter, or any JSON Schema tool) checks a document without importing the records; a test asserts
that the shipped file is what :func:`generate_schema` makes.  After changing a record::

    python -m fxmeter.report.schema --write    # regenerate the shipped file
    python -m fxmeter.report.schema --check    # exit 1 when it is stale (CI)

:mod:`fxmeter.report.checker` validates documents against the shipped file.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from fxmeter.base import fileio
from fxmeter.base.records import SchemaBuilder
from fxmeter.report.document import SCHEMA_VERSION, ReportDocument

SHIPPED = Path(__file__).parents[1] / "data" / "report.schema.json"


def generate_schema() -> dict[str, Any]:
    """The whole report schema: :class:`ReportDocument`'s type tree and the ``$defs`` it names."""
    b = SchemaBuilder()
    body = b.object(ReportDocument)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"urn:fxmeter:report-schema:{SCHEMA_VERSION}",
            "title": f"fxmeter report.json, schema_version {SCHEMA_VERSION}", **body, "$defs": b.defs}


def schema_bytes() -> bytes:
    """The shipped file's bytes: the schema as sorted, indented JSON with a final newline."""
    return fileio.dumps(generate_schema()) + b"\n"


def main(argv: list[str] | None = None) -> int:
    """``--write``: regenerate the shipped file; ``--check``: exit 1 when it differs from the records."""
    args = sys.argv[1:] if argv is None else argv
    if args not in (["--write"], ["--check"]):
        print("usage: python -m fxmeter.report.schema --write | --check", file=sys.stderr)
        return 2
    want = schema_bytes()
    have = SHIPPED.read_bytes() if SHIPPED.is_file() else b""
    if args == ["--check"]:
        if have != want:
            print(f"{SHIPPED} is stale: run python -m fxmeter.report.schema --write", file=sys.stderr)
            return 1
        print(f"{SHIPPED} is up to date")
        return 0
    if have != want:
        SHIPPED.write_bytes(want)
        print(f"wrote {SHIPPED}")
    else:
        print(f"{SHIPPED} is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
