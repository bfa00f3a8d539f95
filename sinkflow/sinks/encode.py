"""How result values leave sinkflow: JSON documents and Timeplus-style text.

Two encodings, used by every destination so that one row reads the same everywhere:

* :func:`json_documents` — one JSON object per row: numbers as numbers, booleans as
  booleans, decimals exact (no float noise), datetimes as ISO-8601 with milliseconds and
  time zone (``2022-01-23T10:00:00.123+00:00``), dates as ``2022-01-23``, lists as arrays.
* :func:`text` — a value as Timeplus prints it, for templates: datetime
  ``2022-01-23 10:00:00.123``, ``true``/``false``, floats without noise digits.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return orjson.Fragment(format(value, "f"))
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _json_value(value: Any) -> Any:
    """Values orjson would encode differently from our contract, converted."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.isoformat(timespec="milliseconds")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


def row_dicts(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    """The batch's rows as Python dicts keyed by column name (values as pyarrow converts them)."""
    return batch.to_pylist()


def json_document(row: dict[str, Any]) -> bytes:
    """One row as a JSON object (UTF-8 bytes), per the module's encoding rules."""
    return orjson.dumps({k: _json_value(v) for k, v in row.items()}, default=_json_default)


def json_documents(batch: pa.RecordBatch) -> list[bytes]:
    """Every row of ``batch`` as a JSON object, in row order.

    Byte for byte what :func:`json_document` gives for each of :func:`row_dicts`, but built
    column by column with Arrow compute: each column becomes an array of JSON fragments and
    the fragments are joined per row, so a row never becomes a Python dict (the cost that
    dominates a Kafka or Pulsar sink).
    """
    if batch.num_rows == 0:
        return []
    if batch.num_columns == 0:
        return [b"{}"] * batch.num_rows
    parts: list[pa.Array | str] = []
    for i, (name, column) in enumerate(zip(batch.schema.names, batch.columns)):
        key = orjson.dumps(name).decode()
        parts.append(("{" if i == 0 else ",") + key + ":")
        parts.append(_json_fragments(column))
    parts.append("}")
    joined = pc.binary_join_element_wise(*parts, "")
    docs: list[bytes] = joined.cast(pa.binary()).to_pylist()
    return docs


_CONTROL_CHARS = r"[\x00-\x1f]"
_QUOTE_OR_BACKSLASH = r'["\\]'
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "GMT", "Z", "+00:00"})


def _json_fragments(column: pa.Array) -> pa.Array:
    """``column``'s values as JSON text (a string array without nulls), per the module's rules."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    typ = column.type
    if pa.types.is_dictionary(typ):
        return _json_fragments(column.dictionary_decode())
    if pa.types.is_integer(typ):
        frags = column.cast(pa.string())
    elif pa.types.is_boolean(typ):
        frags = pc.if_else(column, "true", "false")
    elif pa.types.is_decimal(typ) and typ.scale >= 0:
        frags = column.cast(pa.string())
    elif pa.types.is_floating(typ):
        # orjson's float text (shortest round-trip, 1.0 not 1, NaN/inf as null) is the contract;
        # floats never contain a comma, so one dumps of the whole column splits back into values.
        return pa.array(orjson.dumps(column.to_pylist()).decode()[1:-1].split(","), pa.string())
    elif pa.types.is_timestamp(typ):
        frags = _in_quotes(_iso_datetimes(column))
    elif pa.types.is_date(typ):
        frags = _in_quotes(column.cast(pa.string()))
    elif pa.types.is_string(typ) or pa.types.is_large_string(typ):
        column = column.cast(pa.string())
        if pc.any(pc.match_substring_regex(column, _CONTROL_CHARS)).as_py():
            return _fragments_by_value(column)  # rare: orjson's \uXXXX escapes are the reference
        if pc.any(pc.match_substring_regex(column, _QUOTE_OR_BACKSLASH)).as_py():
            column = pc.replace_substring(pc.replace_substring(column, "\\", "\\\\"), '"', '\\"')
        frags = _in_quotes(column)
    else:
        return _fragments_by_value(column)
    return pc.fill_null(frags, "null")


def _iso_datetimes(column: pa.Array) -> pa.Array:
    """ISO-8601 text with milliseconds and offset, as ``datetime.isoformat(timespec="milliseconds")``."""
    # Truncate to milliseconds the way isoformat does (towards the past, also before 1970).
    millis = pc.floor_temporal(column, unit="millisecond")
    tz = column.type.tz
    if tz is None or tz in _UTC_NAMES:  # naive datetimes are UTC, as json_document treats them
        # Casting to text is ~20x faster than strftime, which consults the tz database per value.
        plain = millis.cast(pa.timestamp("ms")).cast(pa.string())
        return pc.binary_join_element_wise(pc.replace_substring(plain, " ", "T", max_replacements=1), "+00:00", "")
    return pc.strftime(millis.cast(pa.timestamp("ms", tz)), format="%Y-%m-%dT%H:%M:%S%Ez")


def _in_quotes(strings: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise('"', strings, '"', "")


def _fragments_by_value(column: pa.Array) -> pa.Array:
    """The general path for types without a vectorized encoding (lists, structs, times, ...)."""
    return pa.array(
        [orjson.dumps(_json_value(v), default=_json_default).decode() for v in column.to_pylist()], pa.string()
    )


def text(value: Any) -> str:
    """``value`` as Timeplus prints it (for templates and e-mail bodies)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        base = value.strftime("%Y-%m-%d %H:%M:%S")
        if value.microsecond:
            base += f".{value.microsecond // 1000:03d}"
        return base
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, list):
        return "[" + ",".join(_quoted(v) for v in value) + "]"
    return str(value)


def _quoted(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else text(value)
