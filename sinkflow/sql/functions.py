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
for every kind DuckDB accepts, or one that fails loudly in DuckDB for the others.

The DuckDB connection that runs the rendered SQL must use ``SET TimeZone='UTC'`` (date parts and
truncation of ``TIMESTAMPTZ`` follow the session time zone; Timeplus streams are UTC).

:data:`AGGREGATES` describes every aggregate function for the incremental engine: whether partial
aggregates can be merged and the DuckDB expressions that compute, merge and finish them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB

from sinkflow.errors import Position, SqlError
from sinkflow.streams.types import TP_TIME, DataType, parse_type
from sinkflow.errors import InvalidInput

__all__ = [
    "AGGREGATES",
    "AggregateInfo",
    "aggregate_call",
    "function_name",
    "is_aggregate",
    "node_position",
    "supported_functions",
    "to_duckdb",
    "duckdb_type",
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


def _schema_kind(value: DataType | pa.DataType | str) -> str | None:
    if isinstance(value, str):
        value = parse_type(value)
    if isinstance(value, DataType):
        value = value.arrow
    return _arrow_kind(value)


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
        return _schema_kind(found) if found is not None else None
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
            return TIME
        if left == right:
            return left
        if {left, right} <= {INT, FLOAT}:
            return FLOAT
        return None
    if isinstance(node, exp.Case):
        ifs = node.args.get("ifs") or []
        return _kind(ifs[0].args["true"], schema) if ifs else None
    return None


def _mark(node: exp.Expression, kind: str | None) -> exp.Expression:
    if kind is not None:
        node.meta[_KIND] = kind
    return node


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


# --- position of a node in the SQL text --------------------------------------------------------
def node_position(node: exp.Expression) -> Position | None:
    """The 1-based line/column of ``node`` (or of its first token that carries one), if known."""
    for candidate in node.walk():
        meta = candidate.meta if candidate._meta else None  # noqa: SLF001 - avoid creating empty metas
        if meta and "line" in meta and "col" in meta:
            # sqlglot's "col" is the column of the token's last character; report its first.
            start = meta.get("start")
            end = meta.get("end")
            width = (end - start) if isinstance(start, int) and isinstance(end, int) else 0
            return Position(meta["line"], max(1, meta["col"] - width))
    return None


def _error(message: str, node: exp.Expression) -> SqlError:
    position = node_position(node)
    where = f" at line {position.line}, column {position.column}" if position else ""
    return SqlError(f"{message}{where}", position=position)


# --- the function table -------------------------------------------------------------------------
Builder = Callable[[list[exp.Expression], list["str | None"], exp.Expression], exp.Expression]


@dataclass(frozen=True)
class _Fn:
    """How one Timeplus function is computed in DuckDB."""

    build: Builder
    min_args: int
    max_args: int | None  # None: any number
    returns: str | None = None  # kind of the result, when it does not depend on the arguments


_FUNCTIONS: dict[str, _Fn] = {}


def _register(names: str, build: Builder | str, min_args: int, max_args: int | None = -1,
              returns: str | None = None) -> None:
    if isinstance(build, str):
        template = build
        build = lambda args, kinds, node: _fill(template, args)  # noqa: E731
    top = min_args if max_args == -1 else max_args
    for name in names.split():
        _FUNCTIONS[name] = _Fn(build, min_args, top, returns)


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
_INT_TYPES = {
    "int8": "TINYINT", "int16": "SMALLINT", "int32": "INTEGER", "int64": "BIGINT",
    "uint8": "UTINYINT", "uint16": "USMALLINT", "uint32": "UINTEGER", "uint64": "UBIGINT",
}


def _to_integer(duck_type: str) -> Builder:
    def build(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
        kind = kinds[0]
        if kind in (INT, BOOL, STRING):
            return _fill(f"CAST({{0}} AS {duck_type})", args)
        if kind in (FLOAT, DECIMAL):
            # Timeplus truncates toward zero; DuckDB's CAST rounds.
            return _fill(f"CAST(TRUNC({{0}}) AS {duck_type})", args)
        # Unknown kind: DECIMAL(38, 9) accepts numbers, text and bools exactly enough for every
        # integer type, so one form truncates floats and parses text alike.
        return _fill(f"CAST(TRUNC(CAST({{0}} AS DECIMAL(38, 9))) AS {duck_type})", args)

    return build


for _name, _duck in _INT_TYPES.items():
    _register(f"to_{_name}", _to_integer(_duck), 1, returns=INT)
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


def _to_string(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    if kinds[0] == TIME:
        # Timeplus prints datetimes without zone: '2022-01-23 10:00:00' (DuckDB's CAST adds '+00').
        return _fill("STRFTIME({0}, '%Y-%m-%d %H:%M:%S')", args)
    return _fill("CAST({0} AS VARCHAR)", args)


_register("to_string", _to_string, 1, returns=STRING)


def _to_datetime(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    kind = kinds[0]
    if kind in (INT, FLOAT, DECIMAL):
        value = "TO_TIMESTAMP({0})"  # a number is seconds since the epoch
    elif len(args) > 1 and kind in (STRING, None):
        value = "TIMEZONE({1}, CAST({0} AS TIMESTAMP))"  # text read as wall-clock time in zone {1}
    else:
        value = "CAST({0} AS TIMESTAMPTZ)"
    return _fill(f"DATE_TRUNC('second', {value})", args)


_register("to_datetime", _to_datetime, 1, 2, returns=TIME)


def _to_time(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    if len(args) > 1:
        return _fill("TIMEZONE({1}, CAST({0} AS TIMESTAMP))", args)
    return _fill("CAST({0} AS TIMESTAMPTZ)", args)


# to_time is Timeplus's alias of parse_datetime_best_effort: ISO-8601 text with or without zone.
_register("to_time parse_datetime_best_effort parse_datetime64_best_effort", _to_time, 1, 2, returns=TIME)
_register("to_date", "CAST({0} AS DATE)", 1, returns=DATE)

# Date and time -----------------------------------------------------------------------------------
_register("now", "DATE_TRUNC('second', GET_CURRENT_TIMESTAMP())", 0, returns=TIME)
_register("now64", "GET_CURRENT_TIMESTAMP()", 0, returns=TIME)
_register("today", "CURRENT_DATE", 0, returns=DATE)
for _unit in ("second", "minute", "hour", "day", "month", "quarter", "year"):
    _register(f"to_start_of_{_unit}", f"DATE_TRUNC('{_unit}', {{0}})", 1,
              returns=DATE if _unit in ("month", "quarter", "year") else TIME)
_register("to_start_of_week", "DATE_TRUNC('week', {0})", 1, returns=DATE)  # weeks start on Monday
for _names, _part in (("to_year year", "year"), ("to_quarter quarter", "quarter"), ("to_month month", "month"),
                      ("to_day_of_month day to_day", "day"), ("to_day_of_year day_of_year", "doy"),
                      ("to_day_of_week day_of_week", "isodow"), ("to_hour hour", "hour"),
                      ("to_minute minute", "minute"), ("to_second second", "second")):
    _register(_names, f"CAST(DATE_PART('{_part}', {{0}}) AS INTEGER)", 1, returns=INT)


def _to_unix_timestamp(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    value = "CAST({0} AS TIMESTAMPTZ)" if kinds[0] == STRING else "{0}"
    return _fill(f"CAST(FLOOR(EPOCH({value})) AS BIGINT)", args)


_register("to_unix_timestamp", _to_unix_timestamp, 1, returns=INT)
_register("to_unix_timestamp64_milli", "EPOCH_MS({0})", 1, returns=INT)
_register("from_unix_timestamp", "TO_TIMESTAMP({0})", 1, returns=TIME)
_register("from_unix_timestamp64_milli", "CAST(EPOCH_MS({0}) AS TIMESTAMPTZ)", 1, returns=TIME)

_UNITS = {
    "second": "second", "seconds": "second", "ss": "second", "s": "second",
    "minute": "minute", "minutes": "minute", "mi": "minute", "n": "minute",
    "hour": "hour", "hours": "hour", "hh": "hour", "h": "hour",
    "day": "day", "days": "day", "dd": "day", "d": "day",
    "week": "week", "weeks": "week", "wk": "week", "ww": "week",
    "month": "month", "months": "month", "mm": "month", "m": "month",
    "quarter": "quarter", "quarters": "quarter", "qq": "quarter", "q": "quarter",
    "year": "year", "years": "year", "yyyy": "year", "yy": "year",
}


def _unit(node: exp.Expression) -> str:
    text = node.name if isinstance(node, (exp.Var, exp.Literal, exp.Column)) else ""
    unit = _UNITS.get(text.lower())
    if unit is None:
        raise _error(f"unknown time unit '{node.sql('clickhouse')}' (use second, minute, hour, day, week, "
                     "month, quarter or year)", node)
    return unit


def _date_diff(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    unit = _unit(args[0])
    if unit == "week":
        # Timeplus counts Monday week boundaries crossed; DuckDB's 'week' counts whole weeks.
        return _fill("DATE_DIFF('day', DATE_TRUNC('week', {0}), DATE_TRUNC('week', {1})) // 7", args[1:])
    return _fill(f"DATE_DIFF('{unit}', {{0}}, {{1}})", args[1:])


def _date_shift(sign: str) -> Builder:
    def build(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
        if len(args) == 2:  # date_add(t, INTERVAL 1 SECOND)
            return _fill(f"{{0}} {sign} {{1}}", args)
        unit = _unit(args[0])
        return _fill(f"{{1}} {sign} TO_{unit.upper()}S(CAST({{0}} AS INTEGER))" if unit not in ("week", "quarter")
                     else f"{{1}} {sign} INTERVAL ({{0}}) {unit.upper()}", args[1:])

    return build


_register("date_diff", _date_diff, 3, returns=INT)
_register("date_add", _date_shift("+"), 2, 3, returns=TIME)
_register("date_sub", _date_shift("-"), 2, 3, returns=TIME)


def _format_datetime(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    fmt = _literal_text(args[1], "format_datetime's format")
    # Timeplus (ClickHouse 22) and strftime agree on %Y %m %d %H %M %S %F %T %y %j %p %I %e %u %%;
    # %i is ClickHouse's minute. Anything else is refused rather than printed differently.
    out: list[str] = []
    i = 0
    while i < len(fmt):
        char = fmt[i]
        if char == "%" and i + 1 < len(fmt):
            spec = fmt[i + 1]
            if spec not in "YmdHMSFTyjpIeu%i":
                raise _error(f"format_datetime: unsupported format specifier '%{spec}'", args[1])
            out.append("%M" if spec == "i" else f"%{spec}")
            i += 2
            continue
        out.append(char)
        i += 1
    return _fill("STRFTIME({0}, {1})", [args[0], exp.Literal.string("".join(out))])


_register("format_datetime", _format_datetime, 2, returns=STRING)

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
_register("length_utf8 char_length", "LENGTH({0})", 1, returns=INT)


def _concat(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    # Timeplus's concat of a NULL is NULL, like DuckDB's ||, unlike DuckDB's CONCAT.
    parts = [arg if kind == STRING else _fill("CAST({0} AS VARCHAR)", [arg]) for arg, kind in zip(args, kinds)]
    result = parts[0]
    for part in parts[1:]:
        result = exp.DPipe(this=result, expression=part, safe=True)
    return result


_register("concat", _concat, 1, None, returns=STRING)
_register("substring substr", "SUBSTRING({0}, {1}, {2})", 2, 3, returns=STRING)
_FUNCTIONS["substring"] = _FUNCTIONS["substr"] = _Fn(
    lambda args, kinds, node: _fill("SUBSTRING({0}, {1})" if len(args) == 2 else "SUBSTRING({0}, {1}, {2})", args),
    2, 3, STRING)
_register("trim", "TRIM({0})", 1, returns=STRING)
_register("ltrim trim_left", "LTRIM({0})", 1, returns=STRING)
_register("rtrim trim_right", "RTRIM({0})", 1, returns=STRING)
_register("replace_all replace", "REPLACE({0}, {1}, {2})", 3, returns=STRING)
_register(
    "replace_one",
    # Only the first occurrence; an empty needle leaves the text unchanged as in Timeplus.
    "CASE WHEN {1} = '' OR STRPOS({0}, {1}) = 0 THEN {0} "
    "ELSE SUBSTRING({0}, 1, STRPOS({0}, {1}) - 1) || {2} || SUBSTRING({0}, STRPOS({0}, {1}) + LENGTH({1})) END",
    3, returns=STRING)
_register("replace_regex", "REGEXP_REPLACE({0}, {1}, {2}, 'g')", 3, returns=STRING)
_register("starts_with", "STARTS_WITH({0}, {1})", 2, returns=BOOL)
_register("ends_with", "ENDS_WITH({0}, {1})", 2, returns=BOOL)
_register("position", "STRPOS({0}, {1})", 2, returns=INT)
_register("split_by_string", "STRING_SPLIT({1}, {0})", 2, returns=ARRAY)  # (separator, text)


def _reverse(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    if kinds[0] == ARRAY:
        return _mark(_fill("LIST_REVERSE({0})", args), ARRAY)
    return _mark(_fill("REVERSE({0})", args), STRING if kinds[0] == STRING else None)


_register("reverse", _reverse, 1)
_register("lpad left_pad", "LPAD({0}, {1}, {2})", 3, returns=STRING)
_register("rpad right_pad", "RPAD({0}, {1}, {2})", 3, returns=STRING)
_register("format", "FORMAT({0}, {1})", 1, None, returns=STRING)
_FUNCTIONS["format"] = _Fn(
    lambda args, kinds, node: exp.Anonymous(this="FORMAT", expressions=[a.copy() for a in args]), 1, None, STRING)
_register("hex", "HEX({0})", 1, returns=STRING)
_register("md5", "UNHEX(MD5({0}))", 1, returns=BINARY)  # 16 raw bytes; hex(md5(s)) prints them
_register("sha256", "UNHEX(SHA256({0}))", 1, returns=BINARY)

# JSON (Timeplus takes a top-level key, not a path) ---------------------------------------------
def _json_path(key: exp.Expression) -> exp.Expression:
    if isinstance(key, exp.Literal) and key.is_string:
        return exp.Literal.string('$."' + key.this.replace('\\', '\\\\').replace('"', '\\"') + '"')
    return _fill("'$.\"' || REPLACE({0}, '\"', '\\\"') || '\"'", [key])


def _json(template: str) -> Builder:
    # Malformed JSON or a missing key gives the type's default ('' / 0 / false) as in Timeplus,
    # instead of failing the whole query on one bad row.
    def build(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
        return _fill(f"CASE WHEN {{0}} IS NULL THEN NULL WHEN NOT JSON_VALID({{0}}) THEN {template.split('|')[1]} "
                     f"ELSE {template.split('|')[0]} END", [args[0], _json_path(args[1])])

    return build


_register("json_extract_string", _json("COALESCE(JSON_EXTRACT_STRING({0}, {1}), '')|''"), 2, returns=STRING)
_register("json_extract_int", _json(
    "CASE JSON_TYPE({0}, {1}) WHEN 'BIGINT' THEN CAST(JSON_EXTRACT_STRING({0}, {1}) AS BIGINT) "
    "WHEN 'UBIGINT' THEN CAST(JSON_EXTRACT_STRING({0}, {1}) AS BIGINT) "
    "WHEN 'DOUBLE' THEN CAST(TRUNC(CAST(JSON_EXTRACT_STRING({0}, {1}) AS DOUBLE)) AS BIGINT) ELSE 0 END|0"),
    2, returns=INT)
_register("json_extract_float", _json(
    "CASE WHEN JSON_TYPE({0}, {1}) IN ('BIGINT', 'UBIGINT', 'DOUBLE') "
    "THEN CAST(JSON_EXTRACT_STRING({0}, {1}) AS DOUBLE) ELSE 0.0 END|0.0"), 2, returns=FLOAT)
_register("json_extract_bool", _json(
    "CASE WHEN JSON_TYPE({0}, {1}) = 'BOOLEAN' THEN CAST(JSON_EXTRACT_STRING({0}, {1}) AS BOOLEAN) "
    "ELSE FALSE END|FALSE"), 2, returns=BOOL)
_register("json_has", _json("JSON_EXISTS({0}, {1})|FALSE"), 2, returns=BOOL)


def _json_value(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    # json_value takes a JSONPath ('$.a.b') and yields scalars only; objects/arrays/missing give ''.
    return _fill("CASE WHEN {0} IS NULL THEN NULL WHEN NOT JSON_VALID({0}) THEN '' "
                 "WHEN JSON_TYPE({0}, {1}) IN ('OBJECT', 'ARRAY') THEN '' "
                 "ELSE COALESCE(JSON_EXTRACT_STRING({0}, {1}), '') END", args)


_register("json_value", _json_value, 2, returns=STRING)

# Arrays ---------------------------------------------------------------------------------------


def _lambda_call(duck: str) -> Builder:
    def build(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
        if not isinstance(args[0], exp.Lambda):
            raise _error(f"the first argument of {function_name(node)} must be a lambda such as x -> x + 1", node)
        if len(args[0].expressions) != 1:
            raise _error(f"{function_name(node)} over several arrays is not supported", node)
        return exp.Anonymous(this=duck, expressions=[args[1].copy(), args[0].copy()])

    return build


_register("array_map", _lambda_call("LIST_TRANSFORM"), 2, returns=ARRAY)
_register("array_filter", _lambda_call("LIST_FILTER"), 2, returns=ARRAY)
_register("array_element", "{0}[{1}]", 2)
_register("has", "LIST_CONTAINS({0}, {1})", 2, returns=BOOL)
_register("index_of", "COALESCE(LIST_POSITION({0}, {1}), 0)", 2, returns=INT)
_register("array_string_concat", "ARRAY_TO_STRING({0}, COALESCE({1}, ''))", 1, 2, returns=STRING)
_FUNCTIONS["array_string_concat"] = _Fn(
    lambda args, kinds, node: _fill("ARRAY_TO_STRING({0}, {1})", args if len(args) == 2
                                    else [args[0], exp.Literal.string("")]), 1, 2, STRING)
_register("array_sum", "LIST_SUM({0})", 1)
_register("array_min", "LIST_MIN({0})", 1)
_register("array_max", "LIST_MAX({0})", 1)
_register("array_avg", "LIST_AVG({0})", 1, returns=FLOAT)

# Conditionals ---------------------------------------------------------------------------------


def _multi_if(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    if len(args) < 3 or len(args) % 2 == 0:
        raise _error("multi_if takes pairs of condition, value and a final else value", node)
    case = exp.Case(ifs=[exp.If(this=args[i].copy(), true=args[i + 1].copy()) for i in range(0, len(args) - 1, 2)],
                    default=args[-1].copy())
    return _mark(case, kinds[1])


_register("multi_if", _multi_if, 3, None)
_FUNCTIONS["if"] = _Fn(lambda args, kinds, node: _mark(_fill("CASE WHEN {0} THEN {1} ELSE {2} END", args), kinds[1]),
                       3, 3)
_FUNCTIONS["coalesce"] = _Fn(
    lambda args, kinds, node: _mark(exp.Coalesce(this=args[0].copy(), expressions=[a.copy() for a in args[1:]]),
                                    next((k for k in kinds if k), None)), 1, None)
_FUNCTIONS["if_null"] = _Fn(lambda args, kinds, node: _mark(_fill("COALESCE({0}, {1})", args), kinds[0]), 2, 2)
_FUNCTIONS["null_if"] = _FUNCTIONS["nullif"] = _Fn(
    lambda args, kinds, node: _mark(_fill("NULLIF({0}, {1})", args), kinds[0]), 2, 2)
_register("is_null", "({0} IS NULL)", 1, returns=BOOL)
_register("is_not_null", "({0} IS NOT NULL)", 1, returns=BOOL)

# Math ---------------------------------------------------------------------------------------------
_FUNCTIONS["abs"] = _Fn(lambda args, kinds, node: _mark(_fill("ABS({0})", args), kinds[0]), 1, 1)


def _round(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    # Timeplus rounds floats half to even (banker's rounding) and decimals half away from zero.
    duck = "ROUND" if kinds[0] in (DECIMAL, INT) else "ROUND_EVEN"
    digits = args[1] if len(args) > 1 else exp.Literal.number(0)
    return _mark(_fill(f"{duck}({{0}}, {{1}})", [args[0], digits]), kinds[0])


_register("round", _round, 1, 2)
_register("floor", "FLOOR({0})", 1)
_register("ceil ceiling", "CEIL({0})", 1)
_register("sqrt", "SQRT({0})", 1, returns=FLOAT)
_register("pow power", "POW({0}, {1})", 2, returns=FLOAT)
_register("exp", "EXP({0})", 1, returns=FLOAT)
_register("log ln", "LN({0})", 1, returns=FLOAT)
_register("log2", "LOG2({0})", 1, returns=FLOAT)
_register("log10", "LOG10({0})", 1, returns=FLOAT)
_register("int_div", "({0} // {1})", 2, returns=INT)
_FUNCTIONS["greatest"] = _Fn(lambda args, kinds, node: _mark(exp.Greatest(
    this=args[0].copy(), expressions=[a.copy() for a in args[1:]]), kinds[0]), 2, None)
_FUNCTIONS["least"] = _Fn(lambda args, kinds, node: _mark(exp.Least(
    this=args[0].copy(), expressions=[a.copy() for a in args[1:]]), kinds[0]), 2, None)
# rand() is a random UInt32 in Timeplus, not a float in [0, 1).
_register("rand", "CAST(FLOOR(RANDOM() * 4294967296) AS UINTEGER)", 0, returns=INT)


# --- aggregates ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class AggregateInfo:
    """An aggregate function and how the engine computes it incrementally.

    Templates are DuckDB SQL whose ``{0}``, ``{1}`` … stand for expressions:

    - ``direct``: the one-shot aggregate over the (converted) arguments, for raw rows.
    - ``partials``: aggregates over the arguments, one per partial state column (decomposable only).
    - ``merges``: one aggregate per partial column, over the partial columns (``{i}`` = partial column i),
      combining partial states; merged states have the same shape, so merging can be repeated.
    - ``final``: a scalar over the merged partial columns giving the result.

    ``decomposable`` is False when partial states cannot be merged exactly (quantiles, distinct
    counts): the engine must keep the raw rows and apply ``direct``. ``implicit_args`` are column
    names appended to the user's arguments (``earliest(x)`` orders by ``_tp_time``).
    """

    name: str
    decomposable: bool
    direct: str
    partials: tuple[str, ...] = ()
    merges: tuple[str, ...] = ()
    final: str = "{0}"
    min_args: int = 1
    max_args: int = 1
    implicit_args: tuple[str, ...] = ()
    params: tuple[str, ...] = field(default=())  # names of trailing literal parameters (quantile level)

    def direct_expr(self, args: Sequence[exp.Expression]) -> exp.Expression:
        """The DuckDB aggregate over converted ``args`` (implicit columns included)."""
        return _fill(self.direct, args)

    def partial_exprs(self, args: Sequence[exp.Expression]) -> list[exp.Expression]:
        """DuckDB aggregates computing the partial state columns from raw rows."""
        return [_fill(t, args) for t in self.partials]

    def merge_exprs(self, columns: Sequence[exp.Expression]) -> list[exp.Expression]:
        """DuckDB aggregates combining partial state columns into new ones (same order as ``partials``)."""
        return [_fill(t, columns) for t in self.merges]

    def final_expr(self, columns: Sequence[exp.Expression]) -> exp.Expression:
        """The DuckDB scalar turning merged partial columns into the result."""
        return _fill(self.final, columns)


def _agg(name: str, **kwargs: object) -> AggregateInfo:
    return AggregateInfo(name=name, **kwargs)  # type: ignore[arg-type]


_SUM_MERGE = "SUM({0})"
AGGREGATES: dict[str, AggregateInfo] = {
    info.name: info
    for info in (
        _agg("count", decomposable=True, direct="COUNT({0})", partials=("COUNT({0})",), merges=(_SUM_MERGE,),
             final="CAST(COALESCE({0}, 0) AS BIGINT)", min_args=0),
        _agg("count_if", decomposable=True, direct="COUNT_IF({0})", partials=("COUNT_IF({0})",),
             merges=(_SUM_MERGE,), final="CAST(COALESCE({0}, 0) AS BIGINT)"),
        _agg("sum", decomposable=True, direct="SUM({0})", partials=("SUM({0})",), merges=(_SUM_MERGE,)),
        _agg("avg", decomposable=True, direct="AVG({0})", partials=("SUM({0})", "COUNT({0})"),
             merges=("SUM({0})", "SUM({1})"), final="CAST({0} AS DOUBLE) / NULLIF({1}, 0)"),
        _agg("min", decomposable=True, direct="MIN({0})", partials=("MIN({0})",), merges=("MIN({0})",)),
        _agg("max", decomposable=True, direct="MAX({0})", partials=("MAX({0})",), merges=("MAX({0})",)),
        _agg("any", decomposable=True, direct="ANY_VALUE({0})", partials=("ANY_VALUE({0})",),
             merges=("ANY_VALUE({0})",)),
        _agg("arg_min", decomposable=True, direct="ARG_MIN({0}, {1})", partials=("ARG_MIN({0}, {1})", "MIN({1})"),
             merges=("ARG_MIN({0}, {1})", "MIN({1})"), min_args=2, max_args=2),
        _agg("arg_max", decomposable=True, direct="ARG_MAX({0}, {1})", partials=("ARG_MAX({0}, {1})", "MAX({1})"),
             merges=("ARG_MAX({0}, {1})", "MAX({1})"), min_args=2, max_args=2),
        _agg("earliest", decomposable=True, direct="ARG_MIN({0}, {1})", partials=("ARG_MIN({0}, {1})", "MIN({1})"),
             merges=("ARG_MIN({0}, {1})", "MIN({1})"), implicit_args=(TP_TIME,)),
        _agg("latest", decomposable=True, direct="ARG_MAX({0}, {1})", partials=("ARG_MAX({0}, {1})", "MAX({1})"),
             merges=("ARG_MAX({0}, {1})", "MAX({1})"), implicit_args=(TP_TIME,)),
        _agg("group_array", decomposable=True, direct="LIST({0}) FILTER (WHERE {0} IS NOT NULL)",
             partials=("LIST({0}) FILTER (WHERE {0} IS NOT NULL)",), merges=("FLATTEN(LIST({0}))",)),
        _agg("count_distinct", decomposable=False, direct="COUNT(DISTINCT {0})"),
        _agg("unique_exact", decomposable=False, direct="COUNT(DISTINCT {0})"),
        _agg("unique", decomposable=False, direct="APPROX_COUNT_DISTINCT({0})"),
        _agg("median", decomposable=False, direct="QUANTILE_CONT({0}, 0.5)"),
        _agg("quantile", decomposable=False, direct="QUANTILE_CONT({0}, {1})", min_args=2, max_args=2,
             params=("level",)),
        *(
            _agg(f"p{p}", decomposable=False, direct=f"QUANTILE_CONT({{0}}, 0.{p})")
            for p in (50, 90, 95, 99)
        ),
    )
}
