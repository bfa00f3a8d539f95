"""The engine's single entry to the Timeplus→DuckDB function map (:mod:`sinkflow.sql.functions`).

``to_duckdb`` rewrites Timeplus function calls in a parsed expression into DuckDB ones and raises
:class:`SqlError` naming an unknown function; ``aggregate_names`` lists the names the map knows
as aggregates (so an aggregate the engine cannot compute incrementally is named, not mistaken
for a scalar function).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from sinkflow.sql import functions
from sinkflow.streams.types import DataType


def to_duckdb(node: exp.Expression, schema: Mapping[str, DataType]) -> str:
    """``node`` in DuckDB SQL, Timeplus function calls rewritten (SqlError for unknown functions).

    ``schema`` (column name → type) lets type-dependent functions (``length``) pick the right form.
    """
    return _convert(node.transform(_case_as_if), schema).sql(dialect="duckdb")


_CONNECTOR = "__connector{}"


def _convert(node: exp.Expression, schema: Mapping[str, DataType]) -> exp.Expression:
    """The function map applied around AND/OR/XOR.

    sqlglot 30 makes connectors subclasses of ``exp.Func`` and the function map refuses them as
    unknown functions, so each connector is converted here, operand by operand, and hidden from
    the map behind a placeholder column while the expression around it is converted.
    """
    hidden: dict[str, exp.Expression] = {}

    def hide(n: exp.Expression) -> exp.Expression:
        if isinstance(n, exp.Connector):
            name = _CONNECTOR.format(len(hidden))
            hidden[name] = type(n)(this=_convert(n.this, schema), expression=_convert(n.expression, schema))
            return exp.column(name)
        return n

    def reveal(n: exp.Expression) -> exp.Expression:
        if isinstance(n, exp.Column) and not n.table and n.name in hidden:
            return hidden[n.name]
        return n

    converted = functions.to_duckdb(node.transform(hide), schema)
    return converted.transform(reveal) if hidden else converted


def _case_as_if(node: exp.Expression) -> exp.Expression:
    """``CASE [x] WHEN a THEN b … ELSE c END`` → ``if(x = a, b, if(…, c))``.

    The function map reads every ``exp.If`` node as the 3-argument ``if()`` call, including the
    2-part WHEN branches inside a CASE, and rejects them; nested ``if`` calls mean the same.
    """
    if not isinstance(node, exp.Case):
        return node
    def inner(part: exp.Expression) -> exp.Expression:
        return part.transform(_case_as_if)  # the replacement's children are not visited again

    result: exp.Expression = inner(node.args.get("default") or exp.Null())
    operand = node.this
    for branch in reversed(node.args.get("ifs") or []):
        cond = inner(branch.this) if operand is None else exp.EQ(this=inner(operand.copy()), expression=inner(branch.this))
        result = exp.If(this=cond, true=inner(branch.args["true"]), false=result)
    return result


def aggregate_names() -> frozenset[str]:
    """Lower-case names of every aggregate function the function map knows."""
    return frozenset(name.lower() for name in functions.AGGREGATES)
