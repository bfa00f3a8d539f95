"""The coarse type ("kind") of an expression, for mappings whose result depends on it.

A kind is read from literals, from the kind a mapped function recorded in the node's meta, and from
the optional schema (column name → type) the planner passes.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
from sqlglot import exp

from sinkflow.streams.types import DataType, parse_type


STRING, INT, FLOAT, DECIMAL, BOOL, TIME, DATE, ARRAY, BINARY = (
    "string", "int", "float", "decimal", "bool", "time", "date", "array", "binary",
)
_KIND = "tp_kind"  # key in a node's meta where the mapping records the kind it produced
_UNIT = "tp_unit"  # … and, for datetimes, the Arrow unit ("s", "ms", "us", "ns") of its type

Schema = Mapping[str, "DataType | pa.DataType | str"]


def arrow_kind(arrow: pa.DataType) -> str | None:
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow) or pa.types.is_string_view(arrow):
        return STRING
    if pa.types.is_integer(arrow):
        return INT
    if pa.types.is_floating(arrow):
        return FLOAT
    if pa.types.is_decimal(arrow):
        return DECIMAL
    if pa.types.is_boolean(arrow):
        return BOOL
    if pa.types.is_timestamp(arrow):
        return TIME
    if pa.types.is_date(arrow):
        return DATE
    if pa.types.is_list(arrow) or pa.types.is_large_list(arrow):
        return ARRAY
    if pa.types.is_binary(arrow) or pa.types.is_fixed_size_binary(arrow):
        return BINARY
    return None


def schema_arrow(value: DataType | pa.DataType | str) -> pa.DataType:
    if isinstance(value, str):
        value = parse_type(value)
    return value.arrow if isinstance(value, DataType) else value


def kind_of(node: exp.Expression, schema: Schema | None) -> str | None:
    """The kind of an already-converted expression, or None when it cannot be told."""
    recorded = node.meta.get(_KIND) if node.meta else None
    if recorded:
        return recorded
    if isinstance(node, exp.Literal):
        if node.is_string:
            return STRING
        return FLOAT if any(c in node.this for c in ".eE") else INT
    if isinstance(node, exp.Boolean):
        return BOOL
    if isinstance(node, exp.Array):
        return ARRAY
    if isinstance(node, exp.Column) and schema is not None:
        found = schema.get(node.name)
        if found is None:
            return None
        arrow = schema_arrow(found)
        if pa.types.is_timestamp(arrow):
            node.meta[_UNIT] = arrow.unit  # to_string prints a datetime64(3) with milliseconds
        return arrow_kind(arrow)
    if isinstance(node, (exp.Paren, exp.Neg)):
        return kind_of(node.this, schema)
    if isinstance(node, (exp.Predicate, exp.Not, exp.And, exp.Or)):
        return BOOL
    if isinstance(node, exp.Div):
        return FLOAT
    if isinstance(node, exp.DPipe):
        return STRING
    if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Mod)):
        left, right = kind_of(node.this, schema), kind_of(node.expression, schema)
        if TIME in (left, right):
            return TIME if left != right else None  # a datetime minus a datetime is an interval
        if left == right:
            return left
        if {left, right} <= {INT, FLOAT}:
            return FLOAT
        return None
    if isinstance(node, exp.Case):
        ifs = node.args.get("ifs") or []
        return kind_of(ifs[0].args["true"], schema) if ifs else None
    return None


def mark(node: exp.Expression, kind: str | None, unit: str | None = None) -> exp.Expression:
    if kind is not None:
        node.meta[_KIND] = kind
    if kind == TIME and unit is not None:
        node.meta[_UNIT] = unit
    return node


def time_unit_of(node: exp.Expression) -> str | None:
    """The recorded Arrow unit of a datetime expression (after :func:`kind_of` looked at it)."""
    return node.meta.get(_UNIT) if node.meta else None

