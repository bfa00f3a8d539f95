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
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
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
    literal = ""  # constant text waiting to go before the next column's values
    for i, (name, column) in enumerate(zip(batch.schema.names, batch.columns)):
        literal += ("{" if i == 0 else ",") + orjson.dumps(name).decode() + ":"
        fragments = _json_fragments(column)
        values = fragments.values
        if values.null_count == 0:
            # The quotes around every value join the constant text: one pass over the values less.
            parts += [literal + fragments.prefix, values]
            literal = fragments.suffix
        else:
            if fragments.prefix or fragments.suffix:  # a null stays null here, then JSON null
                values = _concat([fragments.prefix, values, fragments.suffix])
            # Filling the few nullable columns is cheaper than the join's own null handling.
            parts += [literal, _COALESCE.call([values, _scalar("null")])]
            literal = ""
    parts.append(literal + "}")
    # Same bytes as UTF-8 text and as binary: a view, not a cast, gives bytes objects.
    docs: list[bytes] = _concat(parts).view(pa.binary()).to_pylist()
    return docs


# Arrow compute functions called directly, with their options and constant scalars made once:
# the pyarrow.compute wrappers turn every Python argument into a scalar on each call, which
# cost more than the work itself on a 1000-row batch (~40 us against ~10 us per call).
_JOIN = pc.get_function("binary_join_element_wise")
_JOIN_OPTIONS = pc.JoinOptions()  # a null part makes the result null
_CAST = pc.get_function("cast")
_TO_TEXT = pc.CastOptions.safe(pa.string())
_IF_ELSE = pc.get_function("if_else")
_COALESCE = pc.get_function("coalesce")
_REPLACE = pc.get_function("replace_substring")
_FIRST_SPACE_TO_T = pc.ReplaceSubstringOptions(" ", "T", max_replacements=1)


@lru_cache(maxsize=4096)
def _scalar(text: str) -> pa.Scalar:
    """``text`` as an Arrow string scalar (the constant parts of documents, made once)."""
    return pa.scalar(text, pa.string())


def _concat(parts: Sequence[pa.Array | str]) -> pa.Array:
    """Row by row concatenation of ``parts`` (arrays, or text the same in every row);
    null where any array part is null."""
    arguments = [part if isinstance(part, pa.Array) else _scalar(part) for part in parts]
    return _JOIN.call([*arguments, _scalar("")], _JOIN_OPTIONS)


def _text(column: pa.Array) -> pa.Array:
    """``column`` cast to UTF-8 text (Arrow's own formatting)."""
    return column if column.type == pa.string() else _CAST.call([column], _TO_TEXT)


_CONTROL_CHARS = re.compile(rb"[\x00-\x1f]")
_QUOTE_OR_BACKSLASH = re.compile(rb'["\\]')
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "GMT", "Z", "+00:00"})


@dataclass(frozen=True)
class _Fragments:
    """A column as JSON text: ``prefix + values[i] + suffix`` for each non-null value, null for
    a JSON null. The constant prefix and suffix (quotes, a UTC offset) are kept apart so that for
    a column without nulls they join the text between the columns instead of costing a pass."""

    values: pa.Array
    prefix: str = ""
    suffix: str = ""


def _json_fragments(column: pa.Array) -> _Fragments:
    """``column``'s values as JSON text."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    typ = column.type
    if pa.types.is_dictionary(typ):
        return _json_fragments(column.dictionary_decode())
    if pa.types.is_integer(typ) or (pa.types.is_decimal(typ) and typ.scale >= 0):
        return _Fragments(_text(column))
    if pa.types.is_boolean(typ):
        return _Fragments(_IF_ELSE.call([column, _scalar("true"), _scalar("false")]))
    if pa.types.is_floating(typ):
        # orjson's float text (shortest round-trip, 1.0 not 1, NaN/inf as null) is the contract;
        # floats never contain a comma, so one dumps of the whole column splits back into values.
        # (Arrow's cast writes other exponent forms, and fixing those up cost twice as much.)
        return _Fragments(pa.array(orjson.dumps(column.to_pylist()).decode()[1:-1].split(","), pa.string()))
    if pa.types.is_timestamp(typ):
        return _iso_datetimes(column)
    if pa.types.is_date(typ):
        return _Fragments(_text(column), '"', '"')
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ):
        column = _text(column)  # DuckDB may hand over string views
        # One scan of the characters is cheaper than a regex kernel per value.
        text = _string_bytes(column)
        if _CONTROL_CHARS.search(text):
            return _Fragments(_fragments_by_value(column))  # rare: orjson's \uXXXX escapes are the reference
        if _QUOTE_OR_BACKSLASH.search(text):
            column = pc.replace_substring(pc.replace_substring(column, "\\", "\\\\"), '"', '\\"')
        return _Fragments(column, '"', '"')
    return _Fragments(_fragments_by_value(column))


def _string_bytes(column: pa.StringArray) -> memoryview:
    """The UTF-8 bytes of every value of ``column`` (a slice sees only its own values)."""
    _validity, offsets, data = column.buffers()
    if data is None or len(column) == 0:
        return memoryview(b"")
    first, = struct.unpack_from("<i", offsets, 4 * column.offset)
    end, = struct.unpack_from("<i", offsets, 4 * (column.offset + len(column)))
    return memoryview(data)[first:end]


def _iso_datetimes(column: pa.Array) -> _Fragments:
    """Quoted ISO-8601 text with milliseconds and offset, as ``isoformat(timespec="milliseconds")``."""
    # Truncate to milliseconds the way isoformat does (towards the past, also before 1970).
    unit, tz = column.type.unit, column.type.tz
    millis = column if unit in ("s", "ms") else pc.floor_temporal(column, unit="millisecond")
    if tz is None or tz in _UTC_NAMES:  # naive datetimes are UTC, as json_document treats them
        # Casting to text is ~20x faster than strftime, which consults the tz database per value;
        # milliseconds without a zone are the same numbers: a view, no cast, when they are already.
        naive = millis.view(pa.timestamp("ms")) if unit == "ms" else millis.cast(pa.timestamp("ms"))
        return _Fragments(_REPLACE.call([_text(naive)], _FIRST_SPACE_TO_T), '"', '+00:00"')
    return _Fragments(pc.strftime(millis.cast(pa.timestamp("ms", tz)), format="%Y-%m-%dT%H:%M:%S%Ez"), '"', '"')


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
