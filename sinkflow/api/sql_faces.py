"""What the REST faces of SQL-made records share: statements built from request fields, run on
the one statement path, and their answers read back — so a view or external stream made through
REST is the same record as one made in SQL or in the console."""

from __future__ import annotations

import re
from typing import Any

from sinkflow.api.context import Server
from sinkflow.api.queries import execute_sql, table_rows
from sinkflow.errors import InvalidInput
from sinkflow.sql.statements import parse_statement
from sinkflow.streams.types import parse_type

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def identifier(field: str, name: str) -> str:
    """``name`` when it is a plain SQL identifier. Raises :class:`InvalidInput` naming ``field``."""
    if not _IDENTIFIER.match(name):
        raise InvalidInput(f"'{field}': {name!r} is not a name (letters, digits and _, not starting with a digit)")
    return name


def column_list(columns: list[tuple[str, str]]) -> str:
    """``(name type, …)`` after checking each name and type. Raises :class:`InvalidInput` naming the column."""
    parts = []
    for i, (name, type_text) in enumerate(columns):
        identifier(f"columns[{i}].name", name)
        try:
            parse_type(type_text)
        except InvalidInput as exc:
            raise InvalidInput(f"columns[{i}] '{name}': {exc.message}") from None
        parts.append(f"{name} {type_text}")
    return f"({', '.join(parts)})"


def literal(value: object) -> str:
    """``value`` as a SQL literal: JSON booleans and numbers bare, anything else a quoted string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


async def run(srv: Server, sql: str) -> list[dict[str, Any]]:
    """Run ``sql`` on the shared statement path: the rows it answers (none for a status)."""
    result = await execute_sql(srv, sql)
    return table_rows(result.table) if result.kind == "rows" and result.table is not None else []


async def definition(srv: Server, name: str) -> tuple[str, Any]:
    """The statement that creates ``name`` now (``SHOW CREATE``; secrets masked), as text and parsed."""
    rows = await run(srv, f"SHOW CREATE {identifier('name', name)}")
    text = str(rows[0]["statement"])
    return text, parse_statement(text)


async def described_columns(srv: Server, name: str) -> list[dict[str, str]]:
    """``name``'s columns as ``DESCRIBE`` answers them."""
    return [{"name": str(r["name"]), "type": str(r["type"])}
            for r in await run(srv, f"DESCRIBE {identifier('name', name)}")]
