"""Type conversions: ``to_int*``, ``to_float*``, ``to_decimal``, ``to_string``, ``to_datetime*``, ``to_date``.
"""

from __future__ import annotations

import pyarrow as pa
from sqlglot import exp

from sinkflow.errors import InvalidInput
from sinkflow.sql.functions.kinds import ARRAY, BOOL, DATE, DECIMAL, FLOAT, INT, STRING, TIME, mark, time_unit_of
from sinkflow.sql.functions.registry import Builder, error, fill, literal_number, register
from sinkflow.streams.types import DataType, parse_type


def duckdb_type(data_type: DataType) -> str:
    """The DuckDB SQL type that holds a Timeplus type (datetimes are UTC TIMESTAMPTZ)."""
    return duckdb_arrow_type(data_type.arrow)


def duckdb_arrow_type(arrow: pa.DataType) -> str:
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
        return f"{duckdb_arrow_type(arrow.value_type)}[]"
    raise InvalidInput(f"the type {arrow} has no DuckDB counterpart")


def to_integer(duck_type: str) -> Builder:
    def build(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
        kind = kinds[0]
        if kind in (INT, BOOL):
            return fill(f"CAST({{0}} AS {duck_type})", args)
        if kind in (FLOAT, DECIMAL):
            # Timeplus truncates toward zero; DuckDB's CAST rounds.
            return fill(f"CAST(TRUNC({{0}}) AS {duck_type})", args)
        # Text or unknown kind: DECIMAL(38, 9) reads numbers, text and bools exactly enough for
        # every integer type, so one form parses text ('7') and truncates fractions alike (DuckDB's
        # CAST('3.9' AS INTEGER) would round).
        return fill(f"CAST(TRUNC(CAST({{0}} AS DECIMAL(38, 9))) AS {duck_type})", args)

    return build


for _name in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"):
    register(f"to_{_name}", to_integer(duckdb_type(parse_type(_name))), 1, returns=INT)
register("to_int", to_integer("BIGINT"), 1, returns=INT)
register("to_float32", "CAST({0} AS FLOAT)", 1, returns=FLOAT)
register("to_float64 to_float", "CAST({0} AS DOUBLE)", 1, returns=FLOAT)
# Proton's spellings of a bool in text (case-insensitive); other text is an error.
_BOOL_TEXT = ("CASE WHEN {0} IS NULL THEN NULL "
              "WHEN LOWER(TRIM({0})) IN ('true', 't', 'on', 'yes', 'y', '1', 'enable', 'enabled') THEN TRUE "
              "WHEN LOWER(TRIM({0})) IN ('false', 'f', 'off', 'no', 'n', '0', 'disable', 'disabled') THEN FALSE "
              "ELSE ERROR('cannot read ' || {0} || ' as a bool') END")


def to_bool(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    return fill(_BOOL_TEXT if kinds[0] == STRING else "CAST({0} AS BOOLEAN)", args[:1])


register("to_bool", to_bool, 1, returns=BOOL)


def _to_decimal(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    scale = literal_number(args[1], "to_decimal's scale")
    if scale != int(scale) or not 0 <= scale <= 38:
        raise error("to_decimal's scale must be an integer 0..38", args[1])
    # Timeplus truncates extra digits (to_decimal('3.1415926', 2) = 3.14); DuckDB's CAST rounds.
    return fill(f"CAST(TRUNC(CAST({{0}} AS DECIMAL(38, 18)), {int(scale)}) AS DECIMAL(38, {int(scale)}))", args)


register("to_decimal", _to_decimal, 2, returns=DECIMAL)


_FRACTION = {"ms": ".%g", "us": ".%f", "ns": ".%n"}


def text_of(arg: exp.Expression, kind: str | None) -> exp.Expression:
    """``arg`` printed as Timeplus prints values of its kind."""
    if kind == STRING:
        return arg
    if kind == TIME:
        # '2022-01-23 10:00:00' for datetime, '2022-01-23 10:00:00.120' for datetime64(3): no zone
        # (DuckDB's CAST adds '+00' and drops trailing zeros of the fraction).
        return fill(f"STRFTIME({{0}}, '%Y-%m-%d %H:%M:%S{_FRACTION.get(time_unit_of(arg) or 's', '')}')", [arg])
    if kind == ARRAY:
        # Timeplus prints [1,2] and ['a','b\'c'] (no spaces, strings quoted); DuckDB [1, 2] and [a, b'c].
        item = exp.to_identifier("__tp_item")
        element = fill(
            "COALESCE(CASE WHEN TYPEOF({0}) = 'VARCHAR' "
            r"THEN '''' || REPLACE(REPLACE(CAST({0} AS VARCHAR), '\', '\\'), '''', '\''') || '''' "
            "ELSE CAST({0} AS VARCHAR) END, 'NULL')",
            [exp.column(item.copy())],
        )
        texts = exp.Anonymous(this="LIST_TRANSFORM", expressions=[arg.copy(), exp.Lambda(this=element, expressions=[item])])
        return fill("'[' || ARRAY_TO_STRING({0}, ',') || ']'", [texts])
    if kind == FLOAT:
        # Timeplus prints a whole float without '.0' (1.0 → '1'); DuckDB keeps it.
        return fill("CASE WHEN ISFINITE({0}) AND {0} = TRUNC({0}) AND ABS({0}) < 1e15 "
                     "THEN CAST(CAST({0} AS BIGINT) AS VARCHAR) ELSE CAST({0} AS VARCHAR) END", [arg])
    return fill("CAST({0} AS VARCHAR)", [arg])


def to_string(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    return text_of(args[0], kinds[0])


register("to_string", to_string, 1, returns=STRING)


# Text Timeplus's parse_datetime_best_effort reads (ISO-8601 with or without a zone, US m/d/y, epoch
# seconds or, with 13 digits, milliseconds). Anything else is an error, never a guess: DuckDB's own
# CAST would read '1/2/22' as the year 1.
_ISO = r"\d{4}-\d{1,2}-\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?"
_ZONE = r"(Z|z|[+-]\d{2}(:?\d{2})?)"
_US_DATE = r"\d{1,2}/\d{1,2}/(\d{2}|\d{4})"
_EPOCH_TEXT = r"\d{9,10}"
_EPOCH_MS_TEXT = r"\d{13}"  # milliseconds, as Debezium's ts_ms
_US_FORMATS = "['%m/%d/%y', '%m/%d/%Y']"


def parse_text_time(text: exp.Expression, zone: exp.Expression | None) -> exp.Expression:
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
        "WHEN REGEXP_FULL_MATCH({0}, {6}) THEN MAKE_TIMESTAMPTZ(CAST({0} AS BIGINT) * 1000) "
        "ELSE ERROR('cannot read ''' || {0} || ''' as a datetime') END"
    )
    patterns = [exp.Literal.string(p) for p in (_ISO + _ZONE, _ISO, _US_DATE, _EPOCH_TEXT, _EPOCH_MS_TEXT)]
    return fill(template, [text, zone if zone is not None else exp.Null(), *patterns])


def moment(value: exp.Expression, kind: str | None, zone: exp.Expression | None = None) -> exp.Expression:
    """``value`` of any kind as a TIMESTAMPTZ (numbers are seconds since the epoch)."""
    if kind in (INT, FLOAT, DECIMAL):
        return fill("TO_TIMESTAMP({0})", [value])
    if kind == STRING:
        return parse_text_time(value, zone)
    # A datetime, a date, or a kind not known here (DuckDB's CAST then reads ISO text leniently).
    return fill("CAST({0} AS TIMESTAMPTZ)", [value])


def _to_datetime(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    zone = args[1] if len(args) > 1 else None
    return fill("DATE_TRUNC('second', {0})", [moment(args[0], kinds[0], zone)])


register("to_datetime", _to_datetime, 1, 2, returns=TIME)


def _to_time(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    return moment(args[0], kinds[0], args[1] if len(args) > 1 else None)


# to_time is Timeplus's alias of parse_datetime_best_effort.
register("to_time parse_datetime_best_effort", _to_time, 1, 2, returns=TIME)


def _to_date(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    value = parse_text_time(args[0], None) if kinds[0] == STRING else args[0]
    return fill("CAST({0} AS DATE)", [value])


register("to_date", _to_date, 1, returns=DATE)
_PRECISION_UNITS = {0: ("s", "second"), 3: ("ms", "milliseconds"), 6: ("us", None)}


def _to_datetime64(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    precision = literal_number(args[1], "to_datetime64's precision")
    if precision not in _PRECISION_UNITS:
        raise error("to_datetime64's precision must be 0, 3 or 6", args[1])
    unit, truncate = _PRECISION_UNITS[int(precision)]
    value = moment(args[0], kinds[0], args[2] if len(args) > 2 else None)
    result = fill(f"DATE_TRUNC('{truncate}', {{0}})", [value]) if truncate else value
    return mark(result, TIME, unit)


register("to_datetime64", _to_datetime64, 2, 3, returns=TIME)

# decimalN(s): the same conversion as to_decimal, the width only bounds the precision in Proton.
register("to_decimal32 to_decimal64 to_decimal128", _to_decimal, 2, returns=DECIMAL)
# A fixed_string(n) is its text padded with zero bytes to n bytes.
register("to_fixed_string", "RPAD(CAST({0} AS VARCHAR), {1}, CHR(0))", 2, returns=STRING)

# DuckDB's type names (typeof) as Proton spells its types; others are given in lower case.
_TYPE_NAMES = {
    "VARCHAR": "string", "BOOLEAN": "bool", "TINYINT": "int8", "SMALLINT": "int16", "INTEGER": "int32",
    "BIGINT": "int64", "HUGEINT": "int128", "UTINYINT": "uint8", "USMALLINT": "uint16", "UINTEGER": "uint32",
    "UBIGINT": "uint64", "UHUGEINT": "uint128", "FLOAT": "float32", "DOUBLE": "float64", "DATE": "date",
    "TIMESTAMP WITH TIME ZONE": "datetime64(6, 'UTC')", "TIMESTAMP": "datetime64(6)", "TIMESTAMP_S": "datetime",
    "TIMESTAMP_MS": "datetime64(3)", "UUID": "uuid", '"NULL"': "nullable(nothing)", "BLOB": "string",
}


def _to_type_name(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    whens = " ".join(f"WHEN '{duck}' THEN '{proton.replace(chr(39), chr(39) * 2)}'" for duck, proton in _TYPE_NAMES.items())
    return fill(f"CASE TYPEOF({{0}}) {whens} ELSE LOWER(TYPEOF({{0}})) END", args)


register("to_type_name", _to_type_name, 1, returns=STRING)

# to_<type>_or_zero / _or_null: the conversion, or 0 (the type's zero) / NULL for text it cannot read.
for _name in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64", "date"):
    _duck = duckdb_type(parse_type(_name))
    _kind = DATE if _name == "date" else FLOAT if _name.startswith("float") else INT
    _zero = "DATE '1970-01-01'" if _name == "date" else "0"
    register(f"to_{_name}_or_null", f"TRY_CAST({{0}} AS {_duck})", 1, returns=_kind)
    register(f"to_{_name}_or_zero", f"COALESCE(TRY_CAST({{0}} AS {_duck}), CAST({_zero} AS {_duck}))", 1, returns=_kind)
    register(f"to_{_name}_or_default", f"COALESCE(TRY_CAST({{0}} AS {_duck}), CAST({{1}} AS {_duck}))", 2,
             returns=_kind)
register("to_datetime_or_null", "TRY_CAST({0} AS TIMESTAMPTZ)", 1, returns=TIME)
register("to_datetime_or_zero", "COALESCE(TRY_CAST({0} AS TIMESTAMPTZ), TIMESTAMPTZ '1970-01-01 00:00:00+00')", 1,
         returns=TIME)


def _to_wide_integer(duck_type: str) -> Builder:
    """to_int128 / to_uint128 (and to_int256 / to_uint256, held in 128 bits: wider values fail):
    numbers as to_integer converts them; text is read as a whole number of up to 39 digits."""
    narrow = to_integer(duck_type)

    def build(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
        if kinds[0] == STRING:
            return fill(f"CAST({{0}} AS {duck_type})", args)
        return narrow(args, kinds, node)

    return build


register("to_int128 to_int256", _to_wide_integer("HUGEINT"), 1, returns=INT)
register("to_uint128 to_uint256", _to_wide_integer("UHUGEINT"), 1, returns=INT)
