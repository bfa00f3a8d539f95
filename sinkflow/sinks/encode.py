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
    return value


def row_dicts(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    """The batch's rows as Python dicts keyed by column name (values as pyarrow converts them)."""
    return batch.to_pylist()


def json_document(row: dict[str, Any]) -> bytes:
    """One row as a JSON object (UTF-8 bytes), per the module's encoding rules."""
    return orjson.dumps({k: _json_value(v) for k, v in row.items()}, default=_json_default)


def json_documents(batch: pa.RecordBatch) -> list[bytes]:
    """Every row of ``batch`` as a JSON object, in row order."""
    return [json_document(row) for row in row_dicts(batch)]


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
