"""``CAST(x AS type)`` and ``cast(x, 'type')`` with Timeplus's conversion rules.
"""

from __future__ import annotations

import pyarrow as pa
from sqlglot import exp

from sinkflow.errors import InvalidInput
from sinkflow.sql.functions.conversions import duckdb_arrow_type, moment, to_bool, to_integer, to_string
from sinkflow.sql.functions.kinds import BOOL, DECIMAL, INT, STRING, TIME, arrow_kind, mark
from sinkflow.sql.functions.registry import error, fill
from sinkflow.streams.types import parse_type


_TIME_UNIT_TRUNC = {"s": "second", "ms": "milliseconds", "us": None, "ns": None}


def cast(node: exp.Expression, target_text: str, value: exp.Expression, kind: str | None) -> exp.Expression:
    try:
        target = parse_type(target_text)
    except InvalidInput as err:
        raise error(f"CAST: {err.message}", node) from None
    arrow = target.arrow
    if pa.types.is_integer(arrow):
        return mark(to_integer(duckdb_arrow_type(arrow))([value], [kind], node), INT)
    if pa.types.is_timestamp(arrow):
        truncate = _TIME_UNIT_TRUNC[arrow.unit]
        result = moment(value, kind)
        if truncate:
            result = fill(f"DATE_TRUNC('{truncate}', {{0}})", [result])
        return mark(result, TIME, arrow.unit)
    if pa.types.is_string(arrow):
        text = to_string([value], [kind], node)
        if target.name.startswith("fixed_string("):  # padded with zero bytes, as to_fixed_string
            text = fill(f"RPAD({{0}}, {target.name[len('fixed_string('):-1]}, CHR(0))", [text])
        return mark(text, STRING)
    if pa.types.is_boolean(arrow):
        return mark(to_bool([value], [kind], node), BOOL)
    if pa.types.is_decimal(arrow):
        return mark(fill(f"CAST(TRUNC(CAST({{0}} AS DECIMAL(38, 18)), {arrow.scale}) AS "
                           f"DECIMAL({arrow.precision}, {arrow.scale}))", [value]), DECIMAL)
    return mark(fill(f"CAST({{0}} AS {duckdb_arrow_type(arrow)})", [value]), arrow_kind(arrow))


# The precision of the datetimes functions return, as Timeplus types them (datetime: seconds).
RESULT_UNITS = {
    "to_datetime": "s", "now": "s", "from_unix_timestamp": "s", "to_start_of_minute": "s",
    "to_start_of_hour": "s", "to_start_of_day": "s", "now64": "ms", "to_time": "ms",
    "parse_datetime_best_effort": "ms", "from_unix_timestamp64_milli": "ms", "to_start_of_second": "ms",
    "parse_datetime": "s", "earliest_timestamp": "ms", "earliest_ts": "ms", "from_unix_timestamp64_micro": "us",
    "from_unix_timestamp64_nano": "us", "to_start_of_five_minutes": "s", "to_start_of_ten_minutes": "s",
    "to_start_of_fifteen_minutes": "s",
}

