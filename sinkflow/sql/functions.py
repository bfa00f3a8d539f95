"""Timeplus function names mapped onto DuckDB, on sqlglot expression trees.

:func:`to_duckdb` takes an expression parsed with sqlglot's ClickHouse dialect and returns a tree
that, rendered with ``.sql(dialect="duckdb")``, computes what Timeplus computes. Every function call
is looked up in one table (:data:`_FUNCTIONS`), whether sqlglot parsed it into a typed node
(``exp.Substring``) or left it anonymous (``to_datetime``); a function that is not in the table is a
:class:`SqlError` naming it. sqlglot's own ClickHouse→DuckDB transpilation is never trusted blindly:
measured here, it turns ``length(array)`` into the length of the array's text, ``split_by_string``
and ``array_filter`` into calls with swapped arguments, and lambdas into the arrow syntax DuckDB 2
rejects.

Where Timeplus's result depends on the argument's type (``length`` of a string counts bytes, of an
array elements; ``to_int32(3.9)`` truncates while ``to_int32('7')`` parses), the argument's kind is
taken from literals, from the functions that produced it, and from the optional ``schema`` (column
name → type) the planner passes. Without a known kind the mapping picks a DuckDB form that is right
for every kind DuckDB accepts, or one that fails loudly in DuckDB for the others — with one
exception: ``length`` of text of unknown kind counts characters (= bytes for ASCII text).

Known differences, all outside ASCII text: Timeplus's ``position``, ``substr``, ``lpad``/``rpad``
and ``reverse`` count bytes where DuckDB counts characters, and its ``lower``/``upper`` change ASCII
letters only where DuckDB's change every letter.

The DuckDB connection that runs the rendered SQL must use ``SET TimeZone='UTC'`` (date parts and
truncation of ``TIMESTAMPTZ`` follow the session time zone; Timeplus streams are UTC).

Aggregate calls are rendered one-shot from their description in :mod:`sinkflow.sql.aggregates`
(the engine computes the same descriptions incrementally); :func:`aggregate_call` and
:func:`is_aggregate` recognise them for the planner.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB

from sinkflow.errors import InvalidInput, SqlError
from sinkflow.sql.aggregates import AGGREGATES, Aggregate, render
from sinkflow.sql.parse import DIALECT
from sinkflow.sql.positions import error_at
from sinkflow.streams.types import TP_TIME, DataType, parse_type

__all__ = [
    "AggregateCall",
    "aggregate_call",
    "duckdb_type",
    "function_name",
    "is_aggregate",
    "supported_functions",
    "to_duckdb",
]


# --- DuckDB 2 lambda syntax -------------------------------------------------------------------
# sqlglot 30 renders lambdas as `x -> x + 1`, which DuckDB 2 rejects ("Deprecated lambda arrow").
# Render them the way DuckDB 2 wants, for every DuckDB rendering in the process.
def _duckdb_lambda_sql(self: sqlglot.generator.Generator, expression: exp.Lambda) -> str:
    return f"lambda {self.expressions(expression, flat=True)}: {self.sql(expression, 'this')}"


DuckDB.Generator.TRANSFORMS[exp.Lambda] = _duckdb_lambda_sql
# sqlglot caches a dispatch table per generator class; drop it so the entry above is used even if
# DuckDB SQL was rendered before this module was imported.
getattr(sqlglot.generator, "_DISPATCH_CACHE", {}).pop(DuckDB.Generator, None)


# --- kinds: the coarse type of an expression, for type-dependent mappings ----------------------
STRING, INT, FLOAT, DECIMAL, BOOL, TIME, DATE, ARRAY, BINARY = (
    "string", "int", "float", "decimal", "bool", "time", "date", "array", "binary",
)
_KIND = "tp_kind"  # key in a node's meta where the mapping records the kind it produced
_UNIT = "tp_unit"  # … and, for datetimes, the Arrow unit ("s", "ms", "us", "ns") of its type

Schema = Mapping[str, "DataType | pa.DataType | str"]


def _arrow_kind(arrow: pa.DataType) -> str | None:
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


def _schema_arrow(value: DataType | pa.DataType | str) -> pa.DataType:
    if isinstance(value, str):
        value = parse_type(value)
    return value.arrow if isinstance(value, DataType) else value


def _kind(node: exp.Expression, schema: Schema | None) -> str | None:
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
        arrow = _schema_arrow(found)
        if pa.types.is_timestamp(arrow):
            node.meta[_UNIT] = arrow.unit  # to_string prints a datetime64(3) with milliseconds
        return _arrow_kind(arrow)
    if isinstance(node, (exp.Paren, exp.Neg)):
        return _kind(node.this, schema)
    if isinstance(node, (exp.Predicate, exp.Not, exp.And, exp.Or)):
        return BOOL
    if isinstance(node, exp.Div):
        return FLOAT
    if isinstance(node, exp.DPipe):
        return STRING
    if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Mod)):
        left, right = _kind(node.this, schema), _kind(node.expression, schema)
        if TIME in (left, right):
            return TIME if left != right else None  # a datetime minus a datetime is an interval
        if left == right:
            return left
        if {left, right} <= {INT, FLOAT}:
            return FLOAT
        return None
    if isinstance(node, exp.Case):
        ifs = node.args.get("ifs") or []
        return _kind(ifs[0].args["true"], schema) if ifs else None
    return None


def _mark(node: exp.Expression, kind: str | None, unit: str | None = None) -> exp.Expression:
    if kind is not None:
        node.meta[_KIND] = kind
    if kind == TIME and unit is not None:
        node.meta[_UNIT] = unit
    return node


def _time_unit_of(node: exp.Expression) -> str | None:
    """The recorded Arrow unit of a datetime expression (after :func:`_kind` looked at it)."""
    return node.meta.get(_UNIT) if node.meta else None


# --- templates --------------------------------------------------------------------------------
_PLACEHOLDER = "__tp_arg{}"


@lru_cache(maxsize=None)
def _parsed_template(sql: str) -> exp.Expression:
    text = sql
    for i in range(10):
        text = text.replace("{%d}" % i, _PLACEHOLDER.format(i))
    return sqlglot.parse_one(text, read="duckdb")


def _fill(template: str, args: Sequence[exp.Expression]) -> exp.Expression:
    """Instantiate a DuckDB SQL template whose placeholders ``{0}``, ``{1}`` … stand for ``args``."""
    tree = _parsed_template(template).copy()
    names = {_PLACEHOLDER.format(i): arg for i, arg in enumerate(args)}

    def substitute(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and not node.table and node.name in names:
            return names[node.name].copy()
        return node

    return tree.transform(substitute)


def _error(message: str, node: exp.Expression) -> SqlError:
    return error_at(node, message)


# --- the function table -------------------------------------------------------------------------
Builder = Callable[[list[exp.Expression], list["str | None"], exp.Expression], exp.Expression]


@dataclass(frozen=True)
class _Fn:
    """How one Timeplus function is computed in DuckDB."""

    build: Builder
    min_args: int
    max_args: int | None  # None: any number
    # Kind of the result: a kind, the index of the argument whose kind it has, or None (unknown).
    returns: str | int | None = None


_FUNCTIONS: dict[str, _Fn] = {}


def _register(names: str, build: Builder | str, min_args: int, max_args: int | None = -1,
              returns: str | int | None = None) -> None:
    """Map each of the space-separated Timeplus ``names`` (lower case) to ``build``.

    ``build`` is a builder or a DuckDB SQL template (see :func:`_fill`); ``max_args`` defaults to
    ``min_args`` and None means any number."""
    if isinstance(build, str):
        template = build
        build = lambda args, kinds, node: _fill(template, args)  # noqa: E731
    top = min_args if max_args == -1 else max_args
    for name in names.split():
        _FUNCTIONS[name] = _Fn(build, min_args, top, returns)


def _same_args(duck: str) -> Builder:
    """A builder calling DuckDB's ``duck`` with the arguments as given (any number of them)."""
    return lambda args, kinds, node: exp.Anonymous(this=duck, expressions=[a.copy() for a in args])


def _literal_text(node: exp.Expression, what: str) -> str:
    if not isinstance(node, exp.Literal) or not node.is_string:
        raise _error(f"{what} must be a string literal", node)
    return node.this


def _literal_number(node: exp.Expression, what: str) -> float:
    value = node.this if isinstance(node, exp.Neg) else node
    if not isinstance(value, exp.Literal) or value.is_string:
        raise _error(f"{what} must be a number literal", node)
    number = float(value.this)
    return -number if isinstance(node, exp.Neg) else number


# Conversions ---------------------------------------------------------------------------------------
def duckdb_type(data_type: DataType) -> str:
    """The DuckDB SQL type that holds a Timeplus type (datetimes are UTC TIMESTAMPTZ)."""
    return _duckdb_arrow_type(data_type.arrow)


def _duckdb_arrow_type(arrow: pa.DataType) -> str:
    simple = {
        pa.int8(): "TINYINT", pa.int16(): "SMALLINT", pa.int32(): "INTEGER", pa.int64(): "BIGINT",
        pa.uint8(): "UTINYINT", pa.uint16(): "USMALLINT", pa.uint32(): "UINTEGER", pa.uint64(): "UBIGINT",
        pa.float32(): "FLOAT", pa.float64(): "DOUBLE", pa.bool_(): "BOOLEAN", pa.string(): "VARCHAR",
        pa.date32(): "DATE",
    }
    if arrow in simple:
        return simple[arrow]
    if pa.types.is_decimal(arrow):
        return f"DECIMAL({arrow.precision}, {arrow.scale})"
    if pa.types.is_timestamp(arrow):
        return "TIMESTAMPTZ"
    if pa.types.is_list(arrow):
        return f"{_duckdb_arrow_type(arrow.value_type)}[]"
    raise InvalidInput(f"the type {arrow} has no DuckDB counterpart")


def _to_integer(duck_type: str) -> Builder:
    def build(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
        kind = kinds[0]
        if kind in (INT, BOOL):
            return _fill(f"CAST({{0}} AS {duck_type})", args)
        if kind in (FLOAT, DECIMAL):
            # Timeplus truncates toward zero; DuckDB's CAST rounds.
            return _fill(f"CAST(TRUNC({{0}}) AS {duck_type})", args)
        # Text or unknown kind: DECIMAL(38, 9) reads numbers, text and bools exactly enough for
        # every integer type, so one form parses text ('7') and truncates fractions alike (DuckDB's
        # CAST('3.9' AS INTEGER) would round).
        return _fill(f"CAST(TRUNC(CAST({{0}} AS DECIMAL(38, 9))) AS {duck_type})", args)

    return build


for _name in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"):
    _register(f"to_{_name}", _to_integer(duckdb_type(parse_type(_name))), 1, returns=INT)
_register("to_int", _to_integer("BIGINT"), 1, returns=INT)
_register("to_float32", "CAST({0} AS FLOAT)", 1, returns=FLOAT)
_register("to_float64 to_float", "CAST({0} AS DOUBLE)", 1, returns=FLOAT)
_register("to_bool", "CAST({0} AS BOOLEAN)", 1, returns=BOOL)


def _to_decimal(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    scale = _literal_number(args[1], "to_decimal's scale")
    if scale != int(scale) or not 0 <= scale <= 38:
        raise _error("to_decimal's scale must be an integer 0..38", args[1])
    # Timeplus truncates extra digits (to_decimal('3.1415926', 2) = 3.14); DuckDB's CAST rounds.
    return _fill(f"CAST(TRUNC(CAST({{0}} AS DECIMAL(38, 18)), {int(scale)}) AS DECIMAL(38, {int(scale)}))", args)


_register("to_decimal", _to_decimal, 2, returns=DECIMAL)


_FRACTION = {"ms": ".%g", "us": ".%f", "ns": ".%n"}


def _text(arg: exp.Expression, kind: str | None) -> exp.Expression:
    """``arg`` printed as Timeplus prints values of its kind."""
    if kind == STRING:
        return arg
    if kind == TIME:
        # '2022-01-23 10:00:00' for datetime, '2022-01-23 10:00:00.120' for datetime64(3): no zone
        # (DuckDB's CAST adds '+00' and drops trailing zeros of the fraction).
        return _fill(f"STRFTIME({{0}}, '%Y-%m-%d %H:%M:%S{_FRACTION.get(_time_unit_of(arg) or 's', '')}')", [arg])
    if kind == ARRAY:
        # Timeplus prints [1,2] and ['a','b\'c'] (no spaces, strings quoted); DuckDB [1, 2] and [a, b'c].
        item = exp.to_identifier("__tp_item")
        element = _fill(
            "COALESCE(CASE WHEN TYPEOF({0}) = 'VARCHAR' "
            r"THEN '''' || REPLACE(REPLACE(CAST({0} AS VARCHAR), '\', '\\'), '''', '\''') || '''' "
            "ELSE CAST({0} AS VARCHAR) END, 'NULL')",
            [exp.column(item.copy())],
        )
        texts = exp.Anonymous(this="LIST_TRANSFORM", expressions=[arg.copy(), exp.Lambda(this=element, expressions=[item])])
        return _fill("'[' || ARRAY_TO_STRING({0}, ',') || ']'", [texts])
    if kind == FLOAT:
        # Timeplus prints a whole float without '.0' (1.0 → '1'); DuckDB keeps it.
        return _fill("CASE WHEN ISFINITE({0}) AND {0} = TRUNC({0}) AND ABS({0}) < 1e15 "
                     "THEN CAST(CAST({0} AS BIGINT) AS VARCHAR) ELSE CAST({0} AS VARCHAR) END", [arg])
    return _fill("CAST({0} AS VARCHAR)", [arg])


def _to_string(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    return _text(args[0], kinds[0])


_register("to_string", _to_string, 1, returns=STRING)


# Text Timeplus's parse_datetime_best_effort reads (ISO-8601 with or without a zone, US m/d/y, an
# epoch number). Anything else is an error, never a guess: DuckDB's own CAST would read '1/2/22'
# as the year 1.
_ISO = r"\d{4}-\d{1,2}-\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?"
_ZONE = r"(Z|z|[+-]\d{2}(:?\d{2})?)"
_US_DATE = r"\d{1,2}/\d{1,2}/(\d{2}|\d{4})"
_EPOCH_TEXT = r"\d{9,10}"
_US_FORMATS = "['%m/%d/%y', '%m/%d/%Y']"


def _parse_text_time(text: exp.Expression, zone: exp.Expression | None) -> exp.Expression:
    """A TIMESTAMPTZ from Timeplus datetime text; wall-clock text is read in ``zone`` (else UTC)."""

    def wall(timestamp: str) -> str:
        return f"TIMEZONE({{1}}, {timestamp})" if zone is not None else f"CAST({timestamp} AS TIMESTAMPTZ)"

    # The patterns are arguments, not template text: their braces ({4}) would read as placeholders.
    template = (
        "CASE WHEN {0} IS NULL THEN NULL "
        "WHEN REGEXP_FULL_MATCH({0}, {2}) THEN CAST({0} AS TIMESTAMPTZ) "
        f"WHEN REGEXP_FULL_MATCH({{0}}, {{3}}) THEN {wall('CAST({0} AS TIMESTAMP)')} "
        f"WHEN REGEXP_FULL_MATCH({{0}}, {{4}}) THEN {wall('STRPTIME({0}, ' + _US_FORMATS + ')')} "
        "WHEN REGEXP_FULL_MATCH({0}, {5}) THEN TO_TIMESTAMP(CAST({0} AS BIGINT)) "
        "ELSE ERROR('cannot read ''' || {0} || ''' as a datetime') END"
    )
    patterns = [exp.Literal.string(p) for p in (_ISO + _ZONE, _ISO, _US_DATE, _EPOCH_TEXT)]
    return _fill(template, [text, zone if zone is not None else exp.Null(), *patterns])


def _moment(value: exp.Expression, kind: str | None, zone: exp.Expression | None = None) -> exp.Expression:
    """``value`` of any kind as a TIMESTAMPTZ (numbers are seconds since the epoch)."""
    if kind in (INT, FLOAT, DECIMAL):
        return _fill("TO_TIMESTAMP({0})", [value])
    if kind == STRING:
        return _parse_text_time(value, zone)
    # A datetime, a date, or a kind not known here (DuckDB's CAST then reads ISO text leniently).
    return _fill("CAST({0} AS TIMESTAMPTZ)", [value])


def _to_datetime(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    zone = args[1] if len(args) > 1 else None
    return _fill("DATE_TRUNC('second', {0})", [_moment(args[0], kinds[0], zone)])


_register("to_datetime", _to_datetime, 1, 2, returns=TIME)


def _to_time(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    return _moment(args[0], kinds[0], args[1] if len(args) > 1 else None)


# to_time is Timeplus's alias of parse_datetime_best_effort.
_register("to_time parse_datetime_best_effort", _to_time, 1, 2, returns=TIME)


def _to_date(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    value = _parse_text_time(args[0], None) if kinds[0] == STRING else args[0]
    return _fill("CAST({0} AS DATE)", [value])


_register("to_date", _to_date, 1, returns=DATE)
_PRECISION_UNITS = {0: ("s", "second"), 3: ("ms", "milliseconds"), 6: ("us", None)}


def _to_datetime64(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    precision = _literal_number(args[1], "to_datetime64's precision")
    if precision not in _PRECISION_UNITS:
        raise _error("to_datetime64's precision must be 0, 3 or 6", args[1])
    unit, truncate = _PRECISION_UNITS[int(precision)]
    value = _moment(args[0], kinds[0], args[2] if len(args) > 2 else None)
    result = _fill(f"DATE_TRUNC('{truncate}', {{0}})", [value]) if truncate else value
    return _mark(result, TIME, unit)


_register("to_datetime64", _to_datetime64, 2, 3, returns=TIME)

# Date and time -----------------------------------------------------------------------------------
_register("now", "DATE_TRUNC('second', GET_CURRENT_TIMESTAMP())", 0, returns=TIME)
_register("now64", "GET_CURRENT_TIMESTAMP()", 0, returns=TIME)
_register("today", "CURRENT_DATE", 0, returns=DATE)
for _trunc in ("second", "minute", "hour", "day"):
    _register(f"to_start_of_{_trunc}", f"DATE_TRUNC('{_trunc}', {{0}})", 1, returns=TIME)
# Timeplus answers a date for these (weeks start on Monday in both).
for _trunc in ("week", "month", "quarter", "year"):
    _register(f"to_start_of_{_trunc}", f"CAST(DATE_TRUNC('{_trunc}', {{0}}) AS DATE)", 1, returns=DATE)


def _to_start_of_interval(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    interval = args[1]
    unit = interval.args.get("unit") if isinstance(interval, exp.Interval) else None
    if unit is None or unit.name.upper() not in ("MILLISECOND", "SECOND", "MINUTE", "HOUR", "DAY"):
        raise _error("to_start_of_interval takes an interval of milliseconds, seconds, minutes, hours or days "
                     "such as INTERVAL 5 MINUTE", interval)
    # Buckets are aligned to the epoch, as in Timeplus.
    return _fill("TIME_BUCKET({1}, {0}, TIMESTAMPTZ '1970-01-01 00:00:00+00')", args)


_register("to_start_of_interval", _to_start_of_interval, 2, returns=0)


def _date_trunc(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    unit = _unit_literal(args[0])
    if unit == "microsecond":
        raise _error("date_trunc takes year, quarter, month, week, day, hour, minute or second", args[0])
    # A datetime in every case: date_trunc('month', now()) is the first instant of the month.
    return _fill(f"DATE_TRUNC('{unit}', CAST({{0}} AS TIMESTAMPTZ))", args[1:2])


_register("date_trunc", _date_trunc, 2, returns=TIME)
for _names, _part in (("to_year year", "year"), ("to_quarter quarter", "quarter"), ("to_month month", "month"),
                      ("to_day_of_month day", "day"), ("to_day_of_year day_of_year", "doy"),
                      ("to_day_of_week day_of_week weekday", "isodow"), ("to_hour hour", "hour"),
                      ("to_minute minute", "minute"), ("to_second second", "second")):
    _register(_names, f"CAST(DATE_PART('{_part}', {{0}}) AS INTEGER)", 1, returns=INT)


def _to_unix_timestamp(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    value = _parse_text_time(args[0], None) if kinds[0] == STRING else args[0]
    return _fill("CAST(FLOOR(EPOCH({0})) AS BIGINT)", [value])


_register("to_unix_timestamp", _to_unix_timestamp, 1, returns=INT)
_register("to_unix_timestamp64_milli", "EPOCH_MS({0})", 1, returns=INT)
_register("from_unix_timestamp", "TO_TIMESTAMP({0})", 1, returns=TIME)
_register("from_unix_timestamp64_milli", "CAST(EPOCH_MS({0}) AS TIMESTAMPTZ)", 1, returns=TIME)

# Unit names, with the short ones Timeplus documents for date_diff (m is minutes, not months).
_UNITS = {
    "microsecond": "microsecond", "microseconds": "microsecond", "us": "microsecond",
    "millisecond": "millisecond", "milliseconds": "millisecond", "ms": "millisecond",
    "second": "second", "seconds": "second", "s": "second",
    "minute": "minute", "minutes": "minute", "m": "minute",
    "hour": "hour", "hours": "hour", "h": "hour",
    "day": "day", "days": "day", "d": "day",
    "week": "week", "weeks": "week",
    "month": "month", "months": "month",
    "quarter": "quarter", "quarters": "quarter",
    "year": "year", "years": "year",
}


def _unit_literal(node: exp.Expression) -> str:
    text = node.name if isinstance(node, (exp.Var, exp.Literal, exp.Column)) else ""
    unit = _UNITS.get(text.lower())
    if unit is None:
        raise _error(f"unknown time unit '{text.lower() or node.sql(DIALECT)}' (use us, ms, second, minute, hour, "
                     "day, week, month, quarter or year)", node)
    return unit


def _date_diff(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    unit = _unit_literal(args[0])
    if unit == "week":
        # Timeplus counts Monday week boundaries crossed; DuckDB's 'week' counts whole weeks.
        return _fill("DATE_DIFF('day', DATE_TRUNC('week', {0}), DATE_TRUNC('week', {1})) // 7", args[1:])
    return _fill(f"DATE_DIFF('{unit}', {{0}}, {{1}})", args[1:])


def _date_shift(sign: str) -> Builder:
    def build(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
        if len(args) == 2:  # date_add(t, INTERVAL 1 SECOND)
            moment, kind, whole_days = args[0], kinds[0], False
            result = _fill(f"{{0}} {sign} {{1}}", args)
        else:  # date_add(unit, n, t)
            unit = _unit_literal(args[0])
            moment, kind = args[2], kinds[2]
            whole_days = unit in ("day", "week", "month", "quarter", "year")
            result = _fill(f"{{1}} {sign} TO_{unit.upper()}S(CAST({{0}} AS BIGINT))", args[1:])
        if kind == DATE and whole_days:
            return _mark(_fill("CAST({0} AS DATE)", [result]), DATE)  # a date stays a date
        return _mark(result, TIME, _time_unit_of(moment))

    return build


_register("date_diff", _date_diff, 3, returns=INT)
_register("date_add", _date_shift("+"), 2, 3)
_register("date_sub", _date_shift("-"), 2, 3)


# format_datetime placeholders that strftime spells differently; the others listed in
# _SAME_SPECIFIERS mean the same in both. %i is ClickHouse's minute.
_SPECIFIERS = {"i": "%M", "F": "%Y-%m-%d", "T": "%H:%M:%S", "D": "%m/%d/%y"}
_SAME_SPECIFIERS = "YymdHMSjpIeuw%"


def _format_datetime(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    fmt = _literal_text(args[1], "format_datetime's format")
    out: list[str] = []
    i = 0
    while i < len(fmt):
        char = fmt[i]
        if char == "%" and i + 1 < len(fmt):
            spec = fmt[i + 1]
            if spec not in _SPECIFIERS and spec not in _SAME_SPECIFIERS:
                # Refused rather than printed differently from Timeplus.
                raise _error(f"format_datetime: unsupported format specifier '%{spec}'", args[1])
            out.append(_SPECIFIERS.get(spec, f"%{spec}"))
            i += 2
            continue
        out.append(char)
        i += 1
    # The optional third argument is the time zone the wall-clock time is printed in.
    value = _fill("TIMEZONE({1}, {0})", [args[0], args[2]]) if len(args) > 2 else args[0]
    return _fill("STRFTIME({0}, {1})", [value, exp.Literal.string("".join(out))])


_register("format_datetime", _format_datetime, 2, 3, returns=STRING)

# Strings ---------------------------------------------------------------------------------------
_register("lower", "LOWER({0})", 1, returns=STRING)
_register("upper", "UPPER({0})", 1, returns=STRING)


def _length(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    if kinds[0] == STRING:
        return _fill("STRLEN({0})", args)  # Timeplus counts bytes of a string
    if kinds[0] == BINARY:
        return _fill("OCTET_LENGTH({0})", args)
    # An array counts elements; for text of unknown kind DuckDB's LENGTH counts characters, which
    # equals Timeplus's byte count for ASCII text (pass the schema to the planner for exact bytes).
    return _fill("LENGTH({0})", args)


_register("length", _length, 1, returns=INT)


def _concat(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    # Timeplus's concat of a NULL is NULL, like DuckDB's ||, unlike DuckDB's CONCAT.
    parts = [_text(arg, kind) for arg, kind in zip(args, kinds)]
    result = parts[0]
    for part in parts[1:]:
        result = exp.DPipe(this=result, expression=part, safe=True)
    return result


_register("concat", _concat, 1, None, returns=STRING)
_register("substring substr", _same_args("SUBSTRING"), 2, 3, returns=STRING)
_register("trim", "TRIM({0})", 1, returns=STRING)
_register("replace_all replace", "REPLACE({0}, {1}, {2})", 3, returns=STRING)
_register(
    "replace_one",
    # Only the first occurrence; an empty needle leaves the text unchanged as in Timeplus.
    "CASE WHEN {1} = '' OR STRPOS({0}, {1}) = 0 THEN {0} "
    "ELSE SUBSTRING({0}, 1, STRPOS({0}, {1}) - 1) || {2} || SUBSTRING({0}, STRPOS({0}, {1}) + LENGTH({1})) END",
    3, returns=STRING)
_register("match", "REGEXP_MATCHES({0}, {1})", 2, returns=BOOL)  # both are RE2
_register("replace_regex", "REGEXP_REPLACE({0}, {1}, {2}, 'g')", 3, returns=STRING)  # \\1 back-references in both
# DuckDB's LENGTH counts a string's characters and an array's elements: zero either way.
_register("empty", "(LENGTH({0}) = 0)", 1, returns=BOOL)
_register("not_empty", "(LENGTH({0}) > 0)", 1, returns=BOOL)
_register("starts_with", "STARTS_WITH({0}, {1})", 2, returns=BOOL)
_register("ends_with", "ENDS_WITH({0}, {1})", 2, returns=BOOL)
_register("position", "STRPOS({0}, {1})", 2, returns=INT)
_register("split_by_string", "STRING_SPLIT({1}, {0})", 2, returns=ARRAY)  # (separator, text)


def _reverse(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    return _fill("LIST_REVERSE({0})" if kinds[0] == ARRAY else "REVERSE({0})", args)


_register("reverse", _reverse, 1, returns=0)
#: The longest string lpad/rpad may make: a larger length is an error, not gigabytes of memory
#: in one value (DuckDB's memory limit does not bound a single string).
MAX_PAD_LENGTH = 16 * 1024 * 1024
_PAD_LENGTH = (f"CAST(IF({{1}} > {MAX_PAD_LENGTH}, ERROR('a padded length over {MAX_PAD_LENGTH:,} characters "
               f"is refused'), {{1}}) AS INTEGER)")
_register("lpad", f"LPAD({{0}}, {_PAD_LENGTH}, {{2}})", 3, returns=STRING)
_register("rpad", f"RPAD({{0}}, {_PAD_LENGTH}, {{2}})", 3, returns=STRING)
_register("format", _same_args("FORMAT"), 1, None, returns=STRING)  # both use {} / {0} placeholders
_register("hex", "HEX({0})", 1, returns=STRING)
_register("base64_encode", "TO_BASE64(ENCODE({0}))", 1, returns=STRING)
_register("base64_decode", "DECODE(FROM_BASE64({0}))", 1, returns=STRING)
_register("uuid", "CAST(UUID() AS VARCHAR)", 0, returns=STRING)


def _extract(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    # Timeplus returns the first capture group when the pattern has one, else the whole match,
    # and '' without a match (so does DuckDB's REGEXP_EXTRACT).
    pattern = _literal_text(args[1], "extract's pattern")
    group = 1 if re.search(r"(?<!\\)\((?!\?)", pattern) else 0
    return _fill(f"REGEXP_EXTRACT({{0}}, {{1}}, {group})", args)


_register("extract", _extract, 2, returns=STRING)


def _multi_search_any(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    needle = exp.to_identifier("__tp_needle")
    contains = exp.Anonymous(this="CONTAINS", expressions=[args[0].copy(), exp.column(needle.copy())])
    matches = exp.Anonymous(this="LIST_TRANSFORM", expressions=[args[1].copy(), exp.Lambda(this=contains, expressions=[needle])])
    return _fill("COALESCE(LIST_BOOL_OR({0}), FALSE)", [matches])


_register("multi_search_any", _multi_search_any, 2, returns=BOOL)
_register("md5", "UNHEX(MD5({0}))", 1, returns=BINARY)  # 16 raw bytes; hex(md5(s)) prints them
_register("sha256", "UNHEX(SHA256({0}))", 1, returns=BINARY)

# JSON (Timeplus takes a top-level key, not a path) ---------------------------------------------
def _json_path(key: exp.Expression) -> exp.Expression:
    if isinstance(key, exp.Literal) and key.is_string:
        return exp.Literal.string('$."' + key.this.replace('\\', '\\\\').replace('"', '\\"') + '"')
    return _fill("'$.\"' || REPLACE({0}, '\"', '\\\"') || '\"'", [key])


def _json(value: str, default: str) -> Builder:
    """``value`` (a template over the document {0} and the key's JSON path {1}) for valid JSON.

    Malformed JSON gives the type's ``default`` as in Timeplus, instead of failing the whole
    query on one bad row; a NULL document gives NULL."""
    template = f"CASE WHEN {{0}} IS NULL THEN NULL WHEN NOT JSON_VALID({{0}}) THEN {default} ELSE {value} END"
    return lambda args, kinds, node: _fill(template, [args[0], _json_path(args[1])])


# A missing key or a value of another JSON type also gives the default ('' / 0 / false).
_register("json_extract_string", _json("COALESCE(JSON_EXTRACT_STRING({0}, {1}), '')", "''"), 2, returns=STRING)
_register("json_extract_int", _json(
    "CASE JSON_TYPE({0}, {1}) WHEN 'BIGINT' THEN CAST(JSON_EXTRACT_STRING({0}, {1}) AS BIGINT) "
    "WHEN 'UBIGINT' THEN CAST(JSON_EXTRACT_STRING({0}, {1}) AS BIGINT) "
    "WHEN 'DOUBLE' THEN CAST(TRUNC(CAST(JSON_EXTRACT_STRING({0}, {1}) AS DOUBLE)) AS BIGINT) ELSE 0 END", "0"),
    2, returns=INT)
_register("json_extract_float", _json(
    "CASE WHEN JSON_TYPE({0}, {1}) IN ('BIGINT', 'UBIGINT', 'DOUBLE') "
    "THEN CAST(JSON_EXTRACT_STRING({0}, {1}) AS DOUBLE) ELSE 0.0 END", "0.0"), 2, returns=FLOAT)
_register("json_extract_bool", _json(
    "CASE WHEN JSON_TYPE({0}, {1}) = 'BOOLEAN' THEN CAST(JSON_EXTRACT_STRING({0}, {1}) AS BOOLEAN) "
    "ELSE FALSE END", "FALSE"), 2, returns=BOOL)
_register("json_has", _json("JSON_EXISTS({0}, {1})", "FALSE"), 2, returns=BOOL)


def _json_value(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    # json_value takes a JSONPath ('$.a.b') and yields scalars only; objects/arrays/missing give ''.
    return _fill("CASE WHEN {0} IS NULL THEN NULL WHEN NOT JSON_VALID({0}) THEN '' "
                 "WHEN JSON_TYPE({0}, {1}) IN ('OBJECT', 'ARRAY') THEN '' "
                 "ELSE COALESCE(JSON_EXTRACT_STRING({0}, {1}), '') END", args)


_register("json_value", _json_value, 2, returns=STRING)
_register("is_valid_json", "COALESCE(JSON_VALID({0}), FALSE)", 1, returns=BOOL)

# Arrays ---------------------------------------------------------------------------------------


def _lambda_and_array(args: list[exp.Expression], node: exp.Expression) -> tuple[exp.Lambda | None, exp.Expression]:
    """The optional one-parameter lambda and the array of ``(func, array)`` / ``(array)`` calls.

    sqlglot keeps the lambda first or second depending on how the function name was spelled."""
    lambdas = [arg for arg in args if isinstance(arg, exp.Lambda)]
    arrays = [arg for arg in args if not isinstance(arg, exp.Lambda)]
    if len(arrays) != 1 or len(lambdas) > 1 or (lambdas and len(lambdas[0].expressions) != 1):
        raise _error(f"{function_name(node)} takes one array, after a one-parameter lambda such as x -> x * 2 "
                     "where one applies", node)
    return (lambdas[0] if lambdas else None), arrays[0]


def _lambda_call(duck: str) -> Builder:
    """DuckDB's ``duck(array, lambda)`` for Timeplus's ``f(lambda, array)``; the lambda is required."""

    def build(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
        func, array = _lambda_and_array(args, node)
        if func is None:
            raise _error(f"the first argument of {function_name(node)} must be a lambda such as x -> x + 1", node)
        return exp.Anonymous(this=duck, expressions=[array.copy(), func.copy()])

    return build


_register("array_map", _lambda_call("LIST_TRANSFORM"), 2, returns=ARRAY)
_register("array_filter", _lambda_call("LIST_FILTER"), 2, returns=ARRAY)
_register("array_element", "LIST_EXTRACT({0}, {1})", 2)  # 1-based, negative from the end, as arr[i]
_register("has", "LIST_CONTAINS({0}, {1})", 2, returns=BOOL)
_register("index_of", "COALESCE(LIST_POSITION({0}, {1}), 0)", 2, returns=INT)
_register("array_string_concat", lambda args, kinds, node: _fill(
    "ARRAY_TO_STRING({0}, {1})", [args[0], args[1] if len(args) > 1 else exp.Literal.string("")]), 1, 2,
    returns=STRING)  # the separator defaults to ''
# Without a lambda, array_exists / array_all / array_count test the elements for being non-zero.
_NON_ZERO = "lambda __tp_x: CAST(__tp_x AS BOOLEAN)"


def _array_fold(duck: str, default: str | None = None, predicate: bool = False) -> Builder:
    """``duck`` over the array, or over ``func`` applied to each element for ``(func, array)``."""

    def build(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
        func, array = _lambda_and_array(args, node)
        if func is not None:
            values = exp.Anonymous(this="LIST_TRANSFORM", expressions=[array.copy(), func.copy()])
        else:
            values = _fill(f"LIST_TRANSFORM({{0}}, {_NON_ZERO})", [array]) if predicate else array.copy()
        result = exp.Anonymous(this=duck, expressions=[values])
        # An empty array gives Timeplus's neutral value where DuckDB answers NULL.
        return _fill(f"COALESCE({{0}}, {default})", [result]) if default is not None else result

    return build


_register("array_sum", _array_fold("LIST_SUM", "0"), 1, 2)
_register("array_avg", _array_fold("LIST_AVG"), 1, 2, returns=FLOAT)
_register("array_min", _array_fold("LIST_MIN"), 1, 2)
_register("array_max", _array_fold("LIST_MAX"), 1, 2)
_register("array_product", _array_fold("LIST_PRODUCT"), 1, returns=FLOAT)
_register("array_exists", _array_fold("LIST_BOOL_OR", "FALSE", predicate=True), 1, 2, returns=BOOL)
_register("array_all", _array_fold("LIST_BOOL_AND", "TRUE", predicate=True), 1, 2, returns=BOOL)


def _array_count(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    func, array = _lambda_and_array(args, node)
    if func is not None:
        return _fill("LENGTH({0})", [exp.Anonymous(this="LIST_FILTER", expressions=[array.copy(), func.copy()])])
    return _fill(f"LENGTH(LIST_FILTER({{0}}, {_NON_ZERO}))", [array])


_register("array_count", _array_count, 1, 2, returns=INT)
_register("array_uniq", "LIST_UNIQUE({0})", 1, returns=INT)
_register("array_concat", _same_args("LIST_CONCAT"), 2, None, returns=ARRAY)
_register("array_reverse", "LIST_REVERSE({0})", 1, returns=ARRAY)
_register("array_sort", "LIST_SORT({0})", 1, returns=ARRAY)
_register("array_push_back", "LIST_APPEND({0}, {1})", 2, returns=ARRAY)
_register("array_push_front", "LIST_PREPEND({1}, {0})", 2, returns=ARRAY)
_register("array_pop_back", "LIST_SLICE({0}, 1, -2)", 1, returns=ARRAY)
_register("array_pop_front", "LIST_SLICE({0}, 2, 2147483647)", 1, returns=ARRAY)
_register("array_cast", lambda args, kinds, node: exp.Array(expressions=[a.copy() for a in args]), 1, None,
          returns=ARRAY)


def _array_distinct(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    # Keep each value's first occurrence in order, as Timeplus does (DuckDB's LIST_DISTINCT reorders).
    value, index = exp.to_identifier("__tp_v"), exp.to_identifier("__tp_i")
    first = _fill("LIST_POSITION({0}, {1}) = {2}", [args[0], exp.column(value.copy()), exp.column(index.copy())])
    return exp.Anonymous(this="LIST_FILTER", expressions=[args[0].copy(), exp.Lambda(this=first, expressions=[value, index])])


_register("array_distinct", _array_distinct, 1, returns=ARRAY)


def _array_slice(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    if len(args) == 2:
        return _fill("LIST_SLICE({0}, {1}, 2147483647)", args)
    # Timeplus's third argument is a length; DuckDB's is the (inclusive) end position.
    return _fill("LIST_SLICE({0}, {1}, CASE WHEN {1} < 0 AND {1} + {2} > 0 THEN -1 ELSE {1} + {2} - 1 END)", args)


_register("array_slice", _array_slice, 2, 3, returns=ARRAY)

# Conditionals ---------------------------------------------------------------------------------


def _multi_if(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    if len(args) < 3 or len(args) % 2 == 0:
        raise _error("multi_if takes pairs of condition, value and a final else value", node)
    return exp.Case(ifs=[exp.If(this=args[i].copy(), true=args[i + 1].copy()) for i in range(0, len(args) - 1, 2)],
                    default=args[-1].copy())


_register("multi_if", _multi_if, 3, None, returns=1)
_register("if", "CASE WHEN {0} THEN {1} ELSE {2} END", 3, returns=1)
_register("coalesce", _same_args("COALESCE"), 1, None, returns=0)
_register("if_null", "COALESCE({0}, {1})", 2, returns=0)
_register("nullif", "NULLIF({0}, {1})", 2, returns=0)
_register("is_null", "({0} IS NULL)", 1, returns=BOOL)
_register("is_not_null", "({0} IS NOT NULL)", 1, returns=BOOL)

# Math ---------------------------------------------------------------------------------------------
_register("abs", "ABS({0})", 1, returns=0)


def _round(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    # Timeplus rounds floats half to even (banker's rounding) and decimals half away from zero.
    duck = "ROUND" if kinds[0] in (DECIMAL, INT) else "ROUND_EVEN"
    digits = args[1] if len(args) > 1 else exp.Literal.number(0)
    return _fill(f"{duck}({{0}}, {{1}})", [args[0], digits])


_register("round", _round, 1, 2, returns=0)
_register("floor", "FLOOR({0})", 1, returns=0)
_register("ceil ceiling", "CEIL({0})", 1, returns=0)
_register("sqrt", "SQRT({0})", 1, returns=FLOAT)
_register("pow power", "POW({0}, {1})", 2, returns=FLOAT)
_register("exp", "EXP({0})", 1, returns=FLOAT)
_register("log ln", "LN({0})", 1, returns=FLOAT)
_register("log2", "LOG2({0})", 1, returns=FLOAT)
_register("log10", "LOG10({0})", 1, returns=FLOAT)
_register("int_div", "({0} // {1})", 2, returns=INT)
_register("greatest", _same_args("GREATEST"), 2, None, returns=0)
_register("least", _same_args("LEAST"), 2, None, returns=0)
# rand() is a random UInt32 in Timeplus, not a float in [0, 1).
_register("rand", "CAST(FLOOR(RANDOM() * 4294967296) AS UINTEGER)", 0, returns=INT)
_register("e", "EXP(1)", 0, returns=FLOAT)
_register("pi", "PI()", 0, returns=FLOAT)
_register("exp2", "POW(2, {0})", 1, returns=FLOAT)
_register("exp10", "POW(10, {0})", 1, returns=FLOAT)
for _fn in ("cbrt", "sin", "cos", "tan", "asin", "acos", "atan", "degrees", "radians"):
    _register(_fn, f"{_fn.upper()}(CAST({{0}} AS DOUBLE))", 1, returns=FLOAT)
_register("sign", "SIGN({0})", 1, returns=INT)
_register("is_finite", "ISFINITE(CAST({0} AS DOUBLE))", 1, returns=BOOL)
_register("is_infinite", "ISINF(CAST({0} AS DOUBLE))", 1, returns=BOOL)
_register("is_nan", "ISNAN(CAST({0} AS DOUBLE))", 1, returns=BOOL)
# xor of values taken as booleans (non-zero is true), as Timeplus does.
_register("xor", "(CAST({0} AS BOOLEAN) <> CAST({1} AS BOOLEAN))", 2, returns=BOOL)


# --- aggregates ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class AggregateCall:
    """One aggregate call of a query: its description, its arguments and its quantile level.

    ``args`` are the call's argument expressions as they were given (the planner converts them
    itself; :func:`to_duckdb` passes converted ones); ``level`` is a quantile's constant level
    as SQL text ("" for other aggregates).
    """

    spec: Aggregate
    args: tuple[exp.Expression, ...]
    level: str = ""

    @property
    def name(self) -> str:
        return self.spec.name


def is_aggregate(node: exp.Expression) -> bool:
    """True for a call of an aggregate function: one this module maps, or any sqlglot knows as one."""
    if isinstance(node, exp.AggFunc):
        return True
    call = _call(node)
    return call is not None and call[0] in AGGREGATES


def aggregate_call(node: exp.Expression) -> AggregateCall:
    """Describe an aggregate call node (``count(*)``, ``p90(x)``, ``quantile(x, 0.9)``, ``earliest(x)`` …).

    Raises :class:`SqlError` at the node for an aggregate this module does not map (naming it),
    a wrong number of arguments, ``DISTINCT``/``*`` where they don't apply, or a quantile level
    that is not a constant between 0 and 1.
    """
    call = _call(node)
    if call is None or call[0] not in AGGREGATES:
        raise _unknown(node)
    name, args = call
    spec = AGGREGATES[name]
    if any(isinstance(arg, (exp.Distinct, exp.Star)) for arg in args):
        raise _error(f"DISTINCT or * is not supported in {name}()", node)
    extra = 1 if spec.level else 0
    _check_arity(name, spec.min_args + extra, spec.max_args + extra, args, node)
    if not spec.level:
        return AggregateCall(spec, tuple(args))
    level = _literal_number(args[-1], f"{name}'s level")
    if not 0 <= level <= 1:
        raise _error(f"{name}'s level must be between 0 and 1", args[-1])
    return AggregateCall(spec, tuple(args[:-1]), repr(level))


def _direct(call: AggregateCall, schema: Schema | None) -> exp.Expression:
    """The one-shot DuckDB aggregate of ``call`` over raw rows (its args already converted)."""
    floats = any(_kind(arg, schema) == FLOAT for arg in call.args)
    text = render(call.spec.direct, [f"{{{i}}}" for i in range(len(call.args))],
                  time=f"epoch_us({TP_TIME})", sum_function="fsum" if floats else "sum", level=call.level)
    return _fill(text, call.args)


# --- typed sqlglot nodes → Timeplus name and arguments ------------------------------------------
def _keys(*keys: str) -> Callable[[exp.Expression], list[exp.Expression]]:
    def extract(node: exp.Expression) -> list[exp.Expression]:
        out: list[exp.Expression] = []
        for key in keys:
            value = node.args.get(key)
            if isinstance(value, list):
                out.extend(value)
            elif value is not None:
                out.append(value)
        return out

    return extract


def _pad_name(node: exp.Expression) -> str:
    return "lpad" if node.args.get("is_left") else "rpad"


def _trim_name(node: exp.Expression) -> str:
    # ltrim/rtrim and trim(BOTH 'x' FROM s) come out as Trim with a position or characters.
    return "trim" if not node.args.get("position") and not node.args.get("expression") else "trim_with_options"


def _sha_name(node: exp.Expression) -> str:
    length = node.args.get("length")
    return "sha256" if length is None or length.name == "256" else f"sha{length.name}"


def _log_name(node: exp.Expression) -> str:
    # log2(x) / log10(x) come out as Log(this=<base>, expression=x).
    base = node.this.name if isinstance(node.this, exp.Literal) else ""
    return {"2": "log2", "10": "log10"}.get(base, "log_with_base")


def _date_shift_args(node: exp.Expression) -> list[exp.Expression]:
    unit = node.args.get("unit")
    if unit is None:  # date_add(t, INTERVAL 1 MINUTE)
        return [node.this, node.expression]
    return [unit, node.expression, node.this]


def _count_args(node: exp.Expression) -> list[exp.Expression]:
    this = node.this
    if this is None or isinstance(this, exp.Star):
        return []
    if isinstance(this, exp.Distinct):
        return list(this.expressions)
    return [this]


def _count_name(node: exp.Expression) -> str:
    return "count_distinct" if isinstance(node.this, exp.Distinct) else "count"


# Every typed node sqlglot's ClickHouse parser produces for a function this module maps, with the
# Timeplus name it stands for. A typed node not listed here is refused, never passed through.
_TYPED: dict[type[exp.Expression], tuple[str | Callable[[exp.Expression], str], Callable[[exp.Expression], list]]] = {
    exp.Length: ("length", _keys("this")),
    exp.Lower: ("lower", _keys("this")),
    exp.Upper: ("upper", _keys("this")),
    exp.Concat: ("concat", _keys("expressions")),
    exp.Substring: ("substring", _keys("this", "start", "length")),
    exp.StrPosition: ("position", _keys("this", "substr")),
    exp.StartsWith: ("starts_with", _keys("this", "expression")),
    exp.RegexpLike: ("match", _keys("this", "expression")),
    exp.EndsWith: ("ends_with", _keys("this", "expression")),
    exp.StringToArray: ("split_by_string", _keys("this", "expression")),
    exp.Trim: (_trim_name, _keys("this")),
    exp.SHA2: (_sha_name, _keys("this")),
    exp.Quarter: ("quarter", _keys("this")),
    exp.ArraySum: ("array_sum", _keys("this")),
    exp.ArrayMin: ("array_min", _keys("this")),
    exp.ArrayMax: ("array_max", _keys("this")),
    exp.Reverse: ("reverse", _keys("this")),
    exp.Pad: (_pad_name, _keys("this", "expression", "fill_pattern")),
    exp.Replace: ("replace", _keys("this", "expression", "replacement")),
    exp.Format: ("format", _keys("this", "expressions")),
    exp.Hex: ("hex", _keys("this")),
    exp.MD5Digest: ("md5", _keys("this")),
    exp.Round: ("round", _keys("this", "decimals")),
    exp.Pow: ("pow", _keys("this", "expression")),
    exp.Ln: ("log", _keys("this")),
    exp.Log: (_log_name, _keys("expression")),
    exp.Abs: ("abs", _keys("this")),
    exp.Exp: ("exp", _keys("this")),
    exp.Ceil: ("ceil", _keys("this")),
    exp.Floor: ("floor", _keys("this")),
    exp.Sqrt: ("sqrt", _keys("this")),
    exp.Greatest: ("greatest", _keys("this", "expressions")),
    exp.Least: ("least", _keys("this", "expressions")),
    exp.Rand: ("rand", _keys()),
    exp.Coalesce: ("coalesce", _keys("this", "expressions")),
    exp.Nullif: ("nullif", _keys("this", "expression")),
    exp.If: ("if", _keys("this", "true", "false")),
    exp.ArrayContains: ("has", _keys("this", "expression")),
    exp.ArraySum: ("array_sum", _keys("this", "expression")),
    exp.ArrayAll: ("array_all", _keys("this", "expression")),
    exp.ArrayConcat: ("array_concat", _keys("this", "expressions")),
    exp.ArraySlice: ("array_slice", _keys("this", "start", "end")),  # "end" is Timeplus's length
    exp.ArraySort: ("array_sort", _keys("this")),
    exp.ArrayReverse: ("array_reverse", _keys("this")),
    exp.ArrayDistinct: ("array_distinct", _keys("this")),
    exp.Base64Encode: ("base64_encode", _keys("this")),
    exp.Uuid: ("uuid", _keys()),
    exp.Sign: ("sign", _keys("this")),
    exp.IsNan: ("is_nan", _keys("this")),
    exp.Pi: ("pi", _keys()),
    exp.Cbrt: ("cbrt", _keys("this")),
    exp.Sin: ("sin", _keys("this")),
    exp.Cos: ("cos", _keys("this")),
    exp.Tan: ("tan", _keys("this")),
    exp.Asin: ("asin", _keys("this")),
    exp.Acos: ("acos", _keys("this")),
    exp.Atan: ("atan", _keys("this")),
    exp.Degrees: ("degrees", _keys("this")),
    exp.Radians: ("radians", _keys("this")),
    exp.Xor: ("xor", _keys("this", "expression")),
    exp.DateTrunc: ("date_trunc", _keys("unit", "this")),
    exp.Transform: ("array_map", lambda n: [n.expression, n.this]),
    exp.ArrayFilter: ("array_filter", _keys("this", "expression")),
    # date_diff('unit', a, b) is DateDiff(this=b, expression=a); date_add('unit', n, t) is DateAdd(this=t, expression=n)
    exp.DateDiff: ("date_diff", lambda n: [n.args["unit"], n.expression, n.this]),
    exp.DateAdd: ("date_add", _date_shift_args),
    exp.DateSub: ("date_sub", _date_shift_args),
    # toStartOfMinute(t) and its twins (unit SECOND … YEAR)
    exp.TimestampTrunc: (lambda n: f"to_start_of_{n.args['unit'].name.lower()}", _keys("this")),
    exp.Year: ("year", _keys("this")),
    exp.DayOfYear: ("day_of_year", _keys("this")),
    exp.DayOfWeek: ("day_of_week", _keys("this")),  # Monday is 1, from day_of_week or toDayOfWeek
    exp.Month: ("month", _keys("this")),
    exp.Day: ("day", _keys("this")),
    exp.Hour: ("hour", _keys("this")),
    exp.Minute: ("minute", _keys("this")),
    exp.Second: ("second", _keys("this")),
    exp.Count: (_count_name, _count_args),
    exp.CountIf: ("count_if", _keys("this")),
    exp.Sum: ("sum", _keys("this")),
    exp.Avg: ("avg", _keys("this")),
    exp.Min: ("min", _keys("this")),
    exp.Max: ("max", _keys("this")),
    exp.AnyValue: ("any", _keys("this")),
    exp.ArgMin: ("arg_min", _keys("this", "expression")),
    exp.ArgMax: ("arg_max", _keys("this", "expression")),
    exp.Quantile: ("quantile", _keys("this", "quantile")),
    exp.ApproxDistinct: ("unique", _keys("this")),
}


def _call(node: exp.Expression) -> tuple[str, list[exp.Expression]] | None:
    """The Timeplus function name and arguments of a function-call node, None if it is no call."""
    if isinstance(node, (exp.Anonymous, exp.AnonymousAggFunc)):
        return node.name.lower(), list(node.expressions)
    typed = _TYPED.get(type(node))
    if typed is not None:
        name, extract = typed
        return (name if isinstance(name, str) else name(node)), extract(node)
    return None


def function_name(node: exp.Expression) -> str:
    """The Timeplus name of a function-call node, else as written (or as sqlglot spells it in ClickHouse)."""
    call = _call(node)
    if call is not None:
        return call[0]
    text = node.sql(dialect=DIALECT)
    return text.split("(", 1)[0] if "(" in text else type(node).__name__


def _unknown(node: exp.Expression) -> SqlError:
    """The error for a function call that is not mapped, with a hint at Timeplus's spelling."""
    written = node.name if isinstance(node, (exp.Anonymous, exp.AnonymousAggFunc)) else function_name(node)
    if written.lower() == "array_join" or isinstance(node, exp.Explode):
        return _error("array_join is not supported (it turns one row into several)", node)
    squashed = written.replace("_", "").lower()
    # ClickHouse's toDateTime is Timeplus's to_datetime: point at the name that works.
    twin = next((n for n in supported_functions() if n.replace("_", "") == squashed), None)
    hint = f" (Timeplus spells it {twin})" if twin and twin != written.lower() else ""
    return _error(f"unknown function '{written}'{hint}", node)


def supported_functions() -> list[str]:
    """Every Timeplus function name :func:`to_duckdb` maps (scalar and aggregate), sorted."""
    return sorted(set(_FUNCTIONS) | set(AGGREGATES))


# --- casts ------------------------------------------------------------------------------------
_TIME_UNIT_TRUNC = {"s": "second", "ms": "milliseconds", "us": None, "ns": None}


def _cast(node: exp.Expression, target_text: str, value: exp.Expression, kind: str | None) -> exp.Expression:
    try:
        target = parse_type(target_text)
    except InvalidInput as err:
        raise _error(f"CAST: {err.message}", node) from None
    arrow = target.arrow
    if pa.types.is_integer(arrow):
        return _mark(_to_integer(_duckdb_arrow_type(arrow))([value], [kind], node), INT)
    if pa.types.is_timestamp(arrow):
        truncate = _TIME_UNIT_TRUNC[arrow.unit]
        result = _moment(value, kind)
        if truncate:
            result = _fill(f"DATE_TRUNC('{truncate}', {{0}})", [result])
        return _mark(result, TIME, arrow.unit)
    if pa.types.is_string(arrow):
        return _mark(_to_string([value], [kind], node), STRING)
    if pa.types.is_decimal(arrow):
        return _mark(_fill(f"CAST(TRUNC(CAST({{0}} AS DECIMAL(38, 18)), {arrow.scale}) AS "
                           f"DECIMAL({arrow.precision}, {arrow.scale}))", [value]), DECIMAL)
    return _mark(_fill(f"CAST({{0}} AS {_duckdb_arrow_type(arrow)})", [value]), _arrow_kind(arrow))


# The precision of the datetimes functions return, as Timeplus types them (datetime: seconds).
_RESULT_UNITS = {
    "to_datetime": "s", "now": "s", "from_unix_timestamp": "s", "to_start_of_minute": "s",
    "to_start_of_hour": "s", "to_start_of_day": "s", "now64": "ms", "to_time": "ms",
    "parse_datetime_best_effort": "ms", "from_unix_timestamp64_milli": "ms", "to_start_of_second": "ms",
}


# --- the conversion ----------------------------------------------------------------------------
def to_duckdb(node: exp.Expression, schema: Schema | None = None) -> exp.Expression:
    """Map a Timeplus expression tree (sqlglot, ClickHouse dialect) onto DuckDB.

    Returns a new tree; ``node`` is not modified. Table sources (``exp.Table``, e.g.
    ``tumble(...)`` in FROM) are left as they are: they are the planner's. ``schema`` maps column
    names to their types (:class:`DataType`, Arrow type or type text) and makes type-dependent
    functions exact.

    Raises :class:`SqlError` naming the function (and its position when the node carries one) for
    an unknown function, a wrong number of arguments or an argument that must be a literal.
    """
    return _convert(node.copy(), schema)


def _convert(node: exp.Expression, schema: Schema | None) -> exp.Expression:
    if isinstance(node, exp.Table):
        return node
    for key, value in list(node.args.items()):
        if isinstance(value, exp.Expression):
            node.set(key, _convert(value, schema))
        elif isinstance(value, list):
            node.set(key, [_convert(v, schema) if isinstance(v, exp.Expression) else v for v in value])
    return _map(node, schema)


# Operators sqlglot 30 types as functions: AND and OR mean the same in DuckDB (xor() is mapped).
_OPERATORS = (exp.And, exp.Or, exp.Array, exp.Extract, exp.Distinct)


def _map(node: exp.Expression, schema: Schema | None) -> exp.Expression:
    if isinstance(node, exp.Cast):
        return _cast(node, node.to.sql(dialect=DIALECT), node.this, _kind(node.this, schema))
    if isinstance(node, exp.CastToStrType):
        target = node.args["to"]
        return _cast(node, _literal_text(target, "the type of cast(x, 'type')"), node.this, _kind(node.this, schema))
    if isinstance(node, exp.Bracket):
        return node  # arr[i]: 1-based in both, negative counts from the end in both
    if isinstance(node, exp.Case) or (isinstance(node, exp.If) and node.arg_key == "ifs"):
        # CASE means the same in DuckDB; its WHEN … THEN branches are exp.If nodes too, but no
        # if() calls (their parts are mapped like any expression).
        return node
    call = _call(node)
    if call is None:
        if isinstance(node, exp.Func) and not isinstance(node, _OPERATORS):
            raise _unknown(node)
        return node
    name, args = call
    if name in AGGREGATES:
        return _direct(aggregate_call(node), schema)
    spec = _FUNCTIONS.get(name)
    if spec is None:
        raise _unknown(node)
    _check_arity(name, spec.min_args, spec.max_args, args, node)
    kinds = [_kind(arg, schema) for arg in args]
    result = spec.build(args, kinds, node)
    returns = spec.returns
    if isinstance(returns, int):
        return _mark(result, kinds[returns], _time_unit_of(args[returns])) if returns < len(args) else result
    return _mark(result, returns, _RESULT_UNITS.get(name))


def _check_arity(name: str, low: int, high: int | None, args: Sequence[exp.Expression], node: exp.Expression) -> None:
    if len(args) < low or (high is not None and len(args) > high):
        if high is None:
            expected = f"at least {low}"
        elif low == high:
            expected = str(low)
        else:
            expected = f"{low} to {high}"
        raise _error(f"function '{name}' takes {expected} argument{'s' if expected != '1' else ''}, "
                     f"got {len(args)}", node)
