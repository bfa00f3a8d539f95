"""Result rows in Proton's text formats, value for value as ``proton-client`` prints them.

Formats (the ``FORMAT`` clause of a statement, :func:`split_format`): ``TabSeparated`` (``TSV``),
``TabSeparatedWithNames`` (``TSVWithNames``: a first line of column names), ``TabSeparatedRaw``
(``TSVRaw``: nothing escaped), ``CSV``, ``CSVWithNames`` and ``Null`` (no rows at all).

The TabSeparated rules, from ClickHouse's text serializations (Proton's ``*.reference`` test
outputs are in this format):

* null is ``\\N`` (``NULL`` inside an array, tuple or map); booleans are ``true``/``false``.
* floats print their shortest round-trip digits, in plain notation from 1e-6 up to 1e21 and as
  ``1e-7`` / ``1e21`` outside it; ``inf``, ``-inf``, ``nan``; a float32 its own shortest text.
* decimals print without trailing zeros (``128`` for ``128.00`` of a ``decimal(38, 2)``).
* ``datetime`` prints ``2020-01-01 00:00:00``; ``datetime64(p)`` ``p`` fraction digits. A
  computed time of microsecond unit (DuckDB's ``TIMESTAMP``) prints the digits its column's
  values need: none when they are whole seconds, 3 when whole milliseconds, else 6.
* arrays ``[1,2]``, tuples ``(1,'a')``, maps ``{'a':1}``; text and times inside them are quoted
  with ``'`` (a quote or backslash in them escaped by a backslash).
* a top-level value has tab, newline and backslash escaped (``\\t``, ``\\n``, ``\\\\``).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
import struct
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sinkflow.sinks.encode import csv_line_array
from sinkflow.streams.types import from_arrow

__all__ = ["TEXT_FORMATS", "format_header", "format_rows", "split_format", "tab_separated_lines", "value_text"]

_DISPLAY_NAMES = ("JSONEachRow", "JSONCompactEachRow", "NDJSON", "JSONLines", "Values", "TSKV", "Vertical", "Pretty",
                  "PrettyCompact", "PrettySpace", "PrettyNoEscapes", "PrettyCompactNoEscapes", "PrettySpaceNoEscapes",
                  "PrettyCompactMonoBlock", "PrettyMonoBlock", "PrettySpaceMonoBlock")
#: Each text format's names, as written in FORMAT, → its canonical name.
TEXT_FORMATS = {
    "TabSeparated": "TabSeparated", "TSV": "TabSeparated", "TabSeparatedWithNames": "TabSeparatedWithNames",
    "TSVWithNames": "TabSeparatedWithNames", "TabSeparatedRaw": "TabSeparatedRaw", "TSVRaw": "TabSeparatedRaw",
    "CSV": "CSV", "CSVWithNames": "CSVWithNames", "Null": "Null",
    "TabSeparatedWithNamesAndTypes": "TabSeparatedWithNamesAndTypes",
    "TSVWithNamesAndTypes": "TabSeparatedWithNamesAndTypes", "CSVWithNamesAndTypes": "CSVWithNamesAndTypes",
    # Drawn by sinkflow.api.display_formats (JSONEachRow, Values, Vertical, Pretty …).
    **{name: name for name in _DISPLAY_NAMES},
}
_TYPED = {"TabSeparatedWithNamesAndTypes": "TabSeparatedWithNames", "CSVWithNamesAndTypes": "CSVWithNames"}
_FORMAT_CLAUSE = re.compile(r"\s+FORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0", "\b": "\\b",
                          "\f": "\\f"})
_QUOTED_ESCAPES = str.maketrans({"\\": "\\\\", "'": "\\'", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0",
                                 "\b": "\\b", "\f": "\\f"})


def split_format(sql: str) -> tuple[str, str | None]:
    """``sql`` without a trailing ``FORMAT name`` clause, and that name (None without one); a
    text format's name written in another case (``format null``) is given as it is spelled here."""
    found = _FORMAT_CLAUSE.search(sql)
    if found is None:
        return sql, None
    spelled = {name.lower(): name for name in TEXT_FORMATS}
    return sql[:found.start()], spelled.get(found[1].lower(), found[1])


def format_header(schema: pa.Schema, fmt: str) -> str:
    """The line a format writes before the rows: the column names for the ``…WithNames`` ones."""
    fmt = TEXT_FORMATS.get(fmt, fmt)
    if fmt in _TYPED:
        types = [from_arrow(field.type, field.nullable).name for field in schema]
        names = format_header(schema, _TYPED[fmt])
        return names + format_rows(pa.RecordBatch.from_pylist([dict(zip(schema.names, types, strict=True))],
                                                               schema=pa.schema([(n, pa.string()) for n in schema.names])),
                                   "CSV" if fmt.startswith("CSV") else "TabSeparated")
    if fmt == "TabSeparatedWithNames":
        return "\t".join(_escape(name) for name in schema.names) + "\n"
    if fmt == "CSVWithNames":
        return ",".join('"' + name.replace('"', '""') + '"' for name in schema.names) + "\n"
    return ""


def format_rows(batch: pa.RecordBatch | pa.Table, fmt: str) -> str:
    """Every row of ``batch`` in the text format ``fmt`` (a name of :data:`TEXT_FORMATS`)."""
    fmt = TEXT_FORMATS[fmt]
    if fmt == "Null" or batch.num_rows == 0:
        return ""
    if fmt in _DISPLAY_NAMES:
        from sinkflow.api.display_formats import display_rows  # it builds on this module's value texts

        return display_rows(batch, fmt)
    fmt = _TYPED.get(fmt, fmt)
    if fmt.startswith("CSV"):
        return "".join(line.decode() + "\n" for line in csv_line_array(batch).to_pylist())
    return tab_separated_lines(batch, escape=fmt != "TabSeparatedRaw")


def tab_separated_lines(batch: pa.RecordBatch | pa.Table, escape: bool = True) -> str:
    """Every row of ``batch`` as one TabSeparated line (ending in a newline), in row order;
    ``escape=False`` writes the values' text as it is (TabSeparatedRaw)."""
    if batch.num_rows == 0:
        return ""
    columns = []
    for column in batch.columns:
        digits = _fraction_digits(column)
        values = _in_time_range(column).to_pylist()
        texts = [value_text(v, column.type, digits, False) if v is not None else "\\N" for v in values]
        columns.append([_escape(t) if escape and t != "\\N" else t for t in texts])
    return "".join("\t".join(row) + "\n" for row in zip(*columns, strict=True))


def _in_time_range(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """``column`` with times saturated to Proton's ``datetime64`` range (1900-01-01 to
    2299-12-31), as Proton saturates them; other columns as they are. Without this a computed
    time beyond Python's years 1–9999 could not be printed at all (nanoseconds cannot reach it)."""
    typ = column.type
    if not pa.types.is_timestamp(typ) or typ.unit == "ns":
        return column
    per_second = {"s": 1, "ms": 1000, "us": 1_000_000}[typ.unit]
    ticks = column.cast(pa.int64())
    clipped = pc.min_element_wise(pc.max_element_wise(ticks, _FIRST_SECOND * per_second, skip_nulls=False),
                                  (_LAST_SECOND + 1) * per_second - 1, skip_nulls=False)
    return clipped.cast(typ)


#: Proton's datetime64 range, in seconds since the epoch.
_FIRST_SECOND = int(dt.datetime(1900, 1, 1, tzinfo=dt.timezone.utc).timestamp())
_LAST_SECOND = int(dt.datetime(2299, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc).timestamp())


def _escape(text: str) -> str:
    return text.translate(_ESCAPES)


def _fraction_digits(column: pa.Array | pa.ChunkedArray) -> int | None:
    """The fraction digits of a timestamp column: its unit's, or for microseconds the digits its
    values need (see the module docstring). None for other columns."""
    typ = column.type
    if not pa.types.is_timestamp(typ):
        return None
    if typ.unit != "us":
        return {"s": 0, "ms": 3, "ns": 9}[typ.unit]
    micros = column.cast(pa.timestamp("us")).cast(pa.int64()).to_pylist()
    present = [m for m in micros if m is not None]
    if all(m % 1_000_000 == 0 for m in present):
        return 0
    return 3 if all(m % 1000 == 0 for m in present) else 6


def value_text(value: Any, typ: pa.DataType, digits: int | None = None, nested: bool = True) -> str:
    """One value of Arrow type ``typ`` as Proton prints it; ``nested`` values (inside an array,
    tuple or map) quote text and times. ``digits`` is a timestamp's fraction digits (default:
    its unit's)."""
    if value is None:
        return "NULL" if nested else "\\N"
    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    if isinstance(value, bool):
        return "true" if value else "false"
    if pa.types.is_floating(typ):
        return float_text(value, single=pa.types.is_float32(typ))
    if isinstance(value, decimal.Decimal):
        return decimal_text(value)
    if isinstance(value, dt.datetime):
        unit_digits = {"s": 0, "ms": 3, "us": 6, "ns": 9}.get(getattr(typ, "unit", "us"), 6)
        return _quoted(datetime_text(value, unit_digits if digits is None else digits), nested)
    if isinstance(value, dt.date):
        return _quoted(value.isoformat(), nested)
    if pa.types.is_map(typ):
        pairs = value.items() if isinstance(value, dict) else value
        return "{" + ",".join(f"{value_text(k, typ.key_type)}:{value_text(v, typ.item_type)}"
                              for k, v in pairs) + "}"
    if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ):
        return "[" + ",".join(value_text(v, typ.value_type) for v in value) + "]"
    if pa.types.is_struct(typ):
        return "(" + ",".join(value_text(value.get(field.name), field.type) for field in typ) + ")"
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return f"'{value.translate(_QUOTED_ESCAPES)}'" if nested else value
    return str(value)


def _quoted(text: str, nested: bool) -> str:
    return f"'{text}'" if nested else text


def datetime_text(value: dt.datetime, digits: int) -> str:
    """``2020-01-01 00:00:00`` with ``digits`` fraction digits (at most 6: Python's precision)."""
    base = value.strftime("%Y-%m-%d %H:%M:%S")
    if digits:
        base += "." + f"{value.microsecond:06d}{'0' * max(0, digits - 6)}"[:digits]
    return base


def decimal_text(value: decimal.Decimal) -> str:
    """A decimal in plain notation without trailing zeros: ``1.5``, ``128``, ``-0.001``."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def float_text(value: float, single: bool = False) -> str:
    """A float's shortest round-trip digits, in plain notation for 1e-6 ≤ |x| < 1e21 and as
    ``1e-7`` / ``1.5e21`` beyond (ClickHouse's rule); ``single`` takes a float32's digits."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    text = _shortest_float32(value) if single else repr(value)
    mantissa, _, exponent = text.partition("e")
    digits, point = _digits_and_point(mantissa, int(exponent or 0))
    sign = "-" if value < 0 else ""
    if -6 < point <= 21:
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        if point >= len(digits):
            return sign + digits + "0" * (point - len(digits))
        return f"{sign}{digits[:point]}.{digits[point:]}"
    rest = f".{digits[1:]}" if len(digits) > 1 else ""
    return f"{sign}{digits[0]}{rest}e{point - 1}"


def _digits_and_point(mantissa: str, exponent: int) -> tuple[str, int]:
    """The significant digits of ``mantissa × 10^exponent`` and where the decimal point falls
    among them (``0.0012`` → ``("12", -2)``)."""
    mantissa = mantissa.lstrip("-")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    point = len(whole) + exponent - (len(whole + fraction) - len((whole + fraction).lstrip("0")))
    return digits.rstrip("0") or "0", point


def _shortest_float32(value: float) -> str:
    """The fewest significant digits that read back as the same float32."""
    packed = struct.pack("<f", value)
    for precision in range(1, 10):
        text = f"{value:.{precision}g}"
        if struct.pack("<f", float(text)) == packed:
            return text
    return repr(value)
