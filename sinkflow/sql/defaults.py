"""Column DEFAULT / ALIAS expressions compiled from Timeplus SQL to DuckDB SQL.

:func:`compile_default` is the :data:`~sinkflow.streams.defaults.DefaultsCompiler` the server gives
its stream store: the expression is parsed with the Timeplus dialect, its functions mapped by
:mod:`sinkflow.sql.functions`, and its value converted to the column's type with Timeplus's
``cast`` rules (``hits uint32 DEFAULT 0`` is ``cast(0, 'uint32')``, as Timeplus documents).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from sinkflow.errors import InvalidInput, Position, SqlError
from sinkflow.sql import json_shortcuts
from sinkflow.sql.functions import to_duckdb
from sinkflow.sql.parse import DIALECT
from sinkflow.streams.defaults import CompiledDefault
from sinkflow.streams.types import Column

__all__ = ["compile_default", "parse_expression"]


def parse_expression(text: str) -> exp.Expression:
    """A Timeplus scalar expression parsed with the Timeplus dialect (positions relative to ``text``).

    Raises :class:`SqlError` for text that is not one expression."""
    hidden, shortcuts = json_shortcuts.hide(text)
    try:
        tree = json_shortcuts.restore(sqlglot.parse_one(hidden, dialect=DIALECT), shortcuts)
    except TokenError:
        raise SqlError(f"invalid expression '{text.strip()}': it cannot be split into tokens") from None
    except ParseError as err:
        first = err.errors[0] if err.errors else {}
        description = str(first.get("description") or "it does not parse").rstrip(".")
        if description.startswith("Required keyword"):
            description = "it is incomplete"  # sqlglot names its own node class here
        line, column = first.get("line"), first.get("col")
        position = Position(int(line), int(column)) if isinstance(line, int) and isinstance(column, int) else None
        raise SqlError(f"invalid expression '{text.strip()}': {description}", position=position) from None
    if tree is None or isinstance(tree, (exp.Select, exp.Query, exp.Command)):
        raise SqlError(f"invalid expression '{text.strip()}'")
    return tree


def compile_default(column: Column, columns: Sequence[Column]) -> CompiledDefault:
    """``column.default`` as DuckDB SQL of the column's type, and the columns it reads.

    Raises :class:`InvalidInput` naming the column for an expression that does not parse, calls an
    unknown function or has a wrong number of arguments."""
    assert column.default is not None
    what = "ALIAS" if column.alias else "DEFAULT"
    try:
        tree = parse_expression(column.default)
        references = frozenset(c.name for c in tree.find_all(exp.Column) if not c.table)
        schema = {c.name: c.type for c in columns}
        typed = exp.CastToStrType(this=tree, to=exp.Literal.string(column.type.name))
        sql = to_duckdb(typed, schema).sql(dialect="duckdb")
    except SqlError as err:
        raise InvalidInput(f"column '{column.name}': {what} {column.default}: {err.message}") from None
    return CompiledDefault(sql, references)
