"""How result values leave sinkflow: JSON documents and Timeplus-style text.

Two encodings, used by every destination so that one row reads the same everywhere:

* :func:`json_document_array` (one contiguous binary array) / :func:`json_documents` (bytes
  objects) — one JSON object per row: numbers as numbers, booleans as booleans, decimals exact
  (no float noise), datetimes as ISO-8601 with milliseconds and time zone
  (``2022-01-23T10:00:00.123+00:00``), dates as ``2022-01-23``, lists as arrays.
* :func:`text` — a value as Timeplus prints it, for templates: datetime
  ``2022-01-23 10:00:00.123`` (as many fraction digits as its column's precision),
  ``true``/``false``, a float32 as its shortest text (``126.95``).

``docs/sinks.md`` shows every type's rendering beside Timeplus's.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
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


def _float32_replaced(typ: pa.DataType, by: pa.DataType) -> pa.DataType:
    """``typ`` with every float32 in it (top level, list items, map values, struct fields)
    replaced by ``by``."""
    if pa.types.is_float32(typ):
        return by
    if pa.types.is_map(typ):
        return pa.map_(_float32_replaced(typ.key_type, by), _float32_replaced(typ.item_type, by))
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        item = typ.value_field.with_type(_float32_replaced(typ.value_type, by))
        return pa.list_(item) if pa.types.is_list(typ) else pa.large_list(item)
    if pa.types.is_struct(typ):
        return pa.struct([field.with_type(_float32_replaced(field.type, by)) for field in typ])
    return typ


def holds_float32(typ: pa.DataType) -> bool:
    """True when values of ``typ`` include float32 ones (see :func:`as_printed`)."""
    return _float32_replaced(typ, pa.string()) != typ


def as_printed(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """``column`` with its float32 values (also inside lists, maps and structs) widened to the
    float64 of their shortest round-trip text, as Timeplus prints a float32: ``126.95``, not
    ``126.94999694824219``. Any other column is returned as it is.

    Widening through the text keeps every later encoding (JSON, templates, CSV, ClickHouse)
    identical to what the query showed; the float32 itself is unchanged by a round trip back.
    """
    typ = column.type
    if not holds_float32(typ):
        return column
    return column.cast(_float32_replaced(typ, pa.string())).cast(_float32_replaced(typ, pa.float64()))


class _Millis(dt.datetime):
    """A value of a ``datetime64(3)`` column: :func:`text` prints its 3 fraction digits."""

    digits = 3


class _Micros(dt.datetime):
    """A value of a ``datetime64(6)`` (or finer) column: :func:`text` prints 6 fraction digits."""

    digits = 6


def _with_precision(values: list[Any], unit: str) -> list[Any]:
    """``values`` of a timestamp column of ``unit``, as datetimes that print its precision."""
    if unit == "s":
        return values
    kind = _Millis if unit == "ms" else _Micros
    return [v if v is None else kind.combine(v.date(), v.timetz()) for v in values]


def column_texts(column: pa.Array | pa.ChunkedArray) -> list[str | None]:
    """Every value of ``column`` as :func:`text` prints it (with the column's float32 and
    datetime precision, as in :func:`row_dicts`); None for a null."""
    column = as_printed(column)
    values = column.to_pylist(maps_as_pydicts="lossy")
    if pa.types.is_timestamp(column.type):
        values = _with_precision(values, column.type.unit)
    return [None if value is None else text(value) for value in values]


def row_dicts(batch: pa.RecordBatch | pa.Table) -> list[dict[str, Any]]:
    """The batch's rows as Python dicts keyed by column name: values as pyarrow converts them,
    but float32 values as printed (see :func:`as_printed`), maps as dicts, and datetimes that
    :func:`text` prints with their column's precision (``datetime64(3)``: ``10:00:02.000``)."""
    if any(holds_float32(field.type) for field in batch.schema):
        batch = type(batch).from_arrays([as_printed(column) for column in batch.columns], names=batch.schema.names)
    rows = batch.to_pylist(maps_as_pydicts="lossy")  # a map is a dict: a JSON object, {'k':v} as text
    for field in batch.schema:
        if pa.types.is_timestamp(field.type) and field.type.unit != "s":
            values = _with_precision([row[field.name] for row in rows], field.type.unit)
            for row, value in zip(rows, values, strict=True):
                row[field.name] = value
    return rows


def json_document(row: dict[str, Any]) -> bytes:
    """One row as a JSON object (UTF-8 bytes), per the module's encoding rules."""
    return orjson.dumps({k: _json_value(v) for k, v in row.items()}, default=_json_default)


def json_document_array(batch: pa.RecordBatch | pa.Table) -> pa.Array:
    """Every row of ``batch`` as a JSON object, in row order, as ONE ``pa.binary()`` array.

    The documents lie back to back in the array's data buffer (int32 offsets, offset 0, no
    nulls, no Python object per row), and each is byte for byte what :func:`json_document`
    gives for the same row of :func:`row_dicts`. Built column by column: each column becomes
    JSON text with numpy, orjson or Arrow compute, and one Arrow join puts the rows together.

    Raises ``TypeError`` (orjson's ``JSONEncodeError`` is one) for a value that
    :func:`json_document` cannot encode either (binary, an interval, ...).
    """
    rows = batch.num_rows
    if rows == 0:
        return pa.array([], pa.binary())
    if batch.num_columns == 0:
        return pa.array([b"{}"] * rows, pa.binary())
    fragments = [_json_fragments(column) for column in batch.columns]
    # literals[i] is the constant text before column i's value; literals[-1] closes the object.
    names = batch.schema.names
    literals = [("{" if i == 0 else ",") + orjson.dumps(name).decode() + ":" for i, name in enumerate(names)]
    literals.append("}")
    # Each part of the final join costs ~15-20 ns a row, about as much as making a column's text,
    # so constant text goes into a column's values wherever that is free.
    count = len(fragments)
    plain: list[pa.Array | None] = [None] * count
    for i, fragment in enumerate(fragments):
        if not fragment.absorbs:
            literals[i] += fragment.prefix
            plain[i], literals[i + 1] = fragment.plain(fragment.suffix + literals[i + 1])
    parts: list[pa.Array | str] = []
    before = ""
    for i, fragment in enumerate(fragments):
        literal, after = literals[i], ""
        if fragment.absorbs:
            before, literal = literal, ""
            if i + 1 == count or not fragments[i + 1].absorbs:
                after, literals[i + 1] = literals[i + 1], ""
        if literal:
            parts.append(literal)
        values = plain[i]
        parts.append(values if values is not None else fragment.decorate(before, after))
    if literals[count]:
        parts.append(literals[count])
    docs = parts[0] if len(parts) == 1 else _concat(parts)
    assert isinstance(docs, pa.Array)
    # Same bytes as UTF-8 text and as binary: a view, not a cast.
    return docs.view(pa.binary())


def json_documents(batch: pa.RecordBatch | pa.Table) -> list[bytes]:
    """Every row of ``batch`` as a JSON object (bytes), in row order: :func:`json_document_array`
    as a list, byte for byte what :func:`json_document` gives for each of :func:`row_dicts`."""
    docs: list[bytes] = json_document_array(batch).to_pylist()
    return docs


# Arrow compute functions called directly, with their options and constant scalars made once:
# the pyarrow.compute wrappers turn every Python argument into a scalar on each call, which
# cost more than the work itself on a 1000-row batch (~40 us against ~10 us per call).
_JOIN = pc.get_function("binary_join_element_wise")
_JOIN_OPTIONS = pc.JoinOptions()  # a null part makes the result null
_CAST = pc.get_function("cast")
_TO_TEXT = pc.CastOptions.safe(pa.string())
_COALESCE = pc.get_function("coalesce")
_TAKE = pc.get_function("take")
_NAN = pa.scalar(math.nan, pa.float64())
_ZERO = pa.scalar(0, pa.int64())
_BOOLEAN_TEXTS = pa.array(["false", "true"], pa.string())
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "GMT", "Z", "+00:00"})
_ISO_WIDTH = len("2022-01-23 10:00:00.123")  # Arrow's text of a millisecond timestamp, years 1-9999
_FEW_TEXTS = 64  # up to this many distinct texts, Python strings beat an Arrow kernel's fixed cost


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


def _validity(column: pa.Array) -> pa.Buffer | None:
    """``column``'s validity bitmap starting at its first row (None: no nulls)."""
    if column.null_count == 0:
        return None
    bitmap: pa.Buffer = column.is_valid().buffers()[1]  # a new array: its bits start at 0
    return bitmap


def _string_array(offsets: np.ndarray, data: np.ndarray, validity: pa.Buffer | None = None) -> pa.Array:
    """A string array over numpy ``offsets`` (int32) and ``data`` (UTF-8 bytes), no copy."""
    return pa.StringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(data), validity)


class _Fragments:
    """A column as JSON text, in the form that is cheapest to make for its type.

    ``absorbs``: :meth:`decorate` costs no more than the values alone (the nulls need a pass
    anyway, or the values are made from a few texts), so the constant text around the column
    rides along in its values instead of being a part of the final join. Otherwise the column
    has no nulls and ``prefix + value + suffix`` is each value's text (see :meth:`plain`).
    """

    prefix: str = ""
    suffix: str = ""

    @property
    def absorbs(self) -> bool:
        return True

    def decorate(self, before: str, after: str) -> pa.Array:
        """Per row ``before + <JSON text of the value> + after`` (JSON ``null`` for a null); no nulls."""
        raise NotImplementedError

    def plain(self, follow: str) -> tuple[pa.Array, str]:
        """For a column that does not absorb: its values between ``prefix`` and ``suffix``,
        followed by a start of the constant text ``follow`` that comes next; and the rest of it."""
        raise NotImplementedError


@dataclass(frozen=True)
class _Text(_Fragments):
    """``prefix + values[i] + suffix`` per value; a null value for JSON null."""

    values: pa.Array
    prefix: str = ""
    suffix: str = ""

    @property
    def absorbs(self) -> bool:
        return self.values.null_count > 0

    def plain(self, follow: str) -> tuple[pa.Array, str]:
        return self.values, follow

    def decorate(self, before: str, after: str) -> pa.Array:
        values, lead, tail = self.values, before + self.prefix, self.suffix + after
        if lead or tail:
            values = _concat([lead, values, tail])
        if self.values.null_count:
            # Filling the few nullable columns is cheaper than the join's own null handling.
            values = _COALESCE.call([values, _scalar(before + "null" + after)])
        return values


@dataclass(frozen=True)
class _Numbers(_Fragments):
    """orjson's text of each of ``numbers`` (1-D, native byte order); null where ``validity``
    says. ``point`` > 0: the numbers are decimals spelled as integers with placeholder digits,
    the digit ``point`` places from the end becomes ``.``, and where ``zero_whole`` the first
    digit (after a minus) becomes ``0`` (see :func:`_decimals`)."""

    numbers: np.ndarray
    validity: pa.Buffer | None = None
    point: int = 0
    zero_whole: np.ndarray | None = None

    @property
    def absorbs(self) -> bool:
        return self.validity is not None

    def plain(self, follow: str) -> tuple[pa.Array, str]:
        return self._texts(follow[:1]), follow[1:]

    def decorate(self, before: str, after: str) -> pa.Array:
        values, after_rest = self._texts(after[:1]), after[1:]
        if before or after_rest:
            values = _concat([before, values, after_rest])
        if self.validity is not None:
            values = _COALESCE.call([values, _scalar(before + "null" + after)])
        return values

    def _texts(self, terminator: str) -> pa.Array:
        """The numbers' text, each followed by ``terminator`` (one ASCII character, or none)."""
        # One dumps of the whole array, split at its commas (a number has none). A terminator
        # takes the commas' places, which saves removing them.
        raw = np.frombuffer(orjson.dumps(self.numbers, option=orjson.OPT_SERIALIZE_NUMPY), np.uint8)
        is_comma = raw == ord(",")
        commas = np.flatnonzero(is_comma)
        offsets = np.empty(len(self.numbers) + 1, np.int32)
        offsets[0] = 0
        if terminator:
            data = raw[1:].copy()  # without "[", and "]" becomes the last terminator
            offsets[1:-1] = commas  # a comma's place in data is one past the number before it
            offsets[-1] = len(data)
            if terminator != ",":
                data[commas - 1] = ord(terminator)
            data[-1] = ord(terminator)
            ends = offsets[1:] - 1
        else:
            data = raw[1:-1][~is_comma[1:-1]]
            offsets[1:-1] = commas - np.arange(1, len(commas) + 1)  # a comma's place among the digits
            offsets[-1] = len(data)
            ends = offsets[1:]
        if self.point:
            data[ends - self.point - 1] = ord(".")
            if self.zero_whole is not None and self.zero_whole.any():
                starts = offsets[:-1] + (self.numbers < 0)
                data[starts[self.zero_whole]] = ord("0")
        return _string_array(offsets, data, self.validity)


@dataclass(frozen=True)
class _Coded(_Fragments):
    """Value ``i`` is ``texts[indices[i]]`` (a null index for JSON null): few distinct texts,
    made once each; decorating changes only ``texts``."""

    indices: pa.Array  # integers
    texts: pa.Array  # strings, no nulls

    def decorate(self, before: str, after: str) -> pa.Array:
        texts, indices = self.texts, self.indices
        null = before + "null" + after
        if len(texts) <= _FEW_TEXTS:
            texts = pa.array([before + text + after for text in texts.to_pylist()] + [null], pa.string())
        else:
            if before or after:
                texts = _concat([before, texts, after])
            texts = pa.concat_arrays([texts, pa.array([null], pa.string())])
        if indices.null_count:
            indices = _COALESCE.call([indices, pa.scalar(len(texts) - 1, indices.type)])
        return _TAKE.call([texts, indices])


@dataclass(frozen=True)
class _Fixed(_Fragments):
    """Every value's text has the same width: row ``i`` of ``core`` (UTF-8 bytes), wrapped in
    ``prefix``/``suffix``; null where ``validity`` says. Decorating is one copy into a wider matrix."""

    core: np.ndarray  # (rows, width) uint8
    validity: pa.Buffer | None
    prefix: str = ""
    suffix: str = ""

    def decorate(self, before: str, after: str) -> pa.Array:
        lead, tail = (before + self.prefix).encode(), (self.suffix + after).encode()
        rows, width = self.core.shape
        out = np.empty((rows, len(lead) + width + len(tail)), np.uint8)
        out[:, : len(lead)] = np.frombuffer(lead, np.uint8)
        out[:, len(lead) : len(lead) + width] = self.core
        out[:, len(lead) + width :] = np.frombuffer(tail, np.uint8)
        values = _string_array(np.arange(0, out.size + 1, out.shape[1], dtype=np.int32), out, self.validity)
        if self.validity is not None:
            values = _COALESCE.call([values, _scalar(before + "null" + after)])
        return values


def _json_fragments(column: pa.Array | pa.ChunkedArray) -> _Fragments:
    """``column``'s values as JSON text."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    typ = column.type
    if pa.types.is_dictionary(typ):
        if len(column.dictionary) > len(column):  # cheaper to encode the values used
            return _json_fragments(column.dictionary_decode())
        return _Coded(column.indices, _json_fragments(column.dictionary).decorate("", ""))
    if pa.types.is_integer(typ):
        return _integers(column)
    if pa.types.is_decimal(typ) and typ.scale >= 0:
        return _decimals(column)
    if pa.types.is_boolean(typ):
        return _booleans(column)
    if pa.types.is_float32(typ) or pa.types.is_float64(typ):
        return _floats(column)
    if pa.types.is_timestamp(typ):
        return _iso_datetimes(column)
    if pa.types.is_date(typ):
        return _Text(_text(column), '"', '"')
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ):
        return _strings(column)
    return _Text(_fragments_by_value(as_printed(column)))


def _booleans(column: pa.Array) -> _Fragments:
    """``true``/``false``: the bits themselves index the two texts."""
    bits = np.frombuffer(column.buffers()[1], np.uint8)
    values = np.unpackbits(bits, count=column.offset + len(column), bitorder="little")[column.offset :]
    indices = pa.Array.from_buffers(pa.int8(), len(column), [_validity(column), pa.py_buffer(values)])
    return _Coded(indices, _BOOLEAN_TEXTS)


def _floats(column: pa.Array) -> _Fragments:
    """orjson's float text: shortest round-trip (of a float32 as a float32: ``126.95``), ``1.0``
    not ``1``, NaN/inf (and null) as null."""
    if column.type != pa.float64():
        column = as_printed(column)  # as json_document sees it through row_dicts
    if column.null_count:
        column = _COALESCE.call([column, _NAN])  # orjson writes NaN as null, our null
    return _Numbers(column.to_numpy(zero_copy_only=False))


def _integers(column: pa.Array) -> _Fragments:
    """Integers as orjson writes them (Arrow's cast to text costs 7x more)."""
    validity = _validity(column)
    if validity is not None:
        column = _COALESCE.call([column, _ZERO.cast(column.type)])
    return _Numbers(column.to_numpy(zero_copy_only=False), validity)


def _decimals(column: pa.Array) -> _Fragments:
    """Exact decimal text: ``format(value, "f")`` of the Decimal, all ``scale`` digits kept."""
    typ = column.type
    if not isinstance(typ, pa.Decimal128Type) or typ.precision > 17:
        texts = _text(column)  # Arrow's own cast: 5x slower, and the same text ...
        if b"E" in _string_bytes(texts):  # ... but for |value| < 1e-6, which it writes as 1E-7
            return _Text(_fragments_by_value(column))
        return _Text(texts)
    # Precision <= 17: the unscaled value is the low 64 bits of each 128-bit value.
    unscaled = np.frombuffer(column.buffers()[1], np.int64, count=2 * len(column), offset=16 * column.offset)[::2]
    validity = _validity(column)
    if validity is not None:  # what lies under a null is undefined: zero it, it is not shown
        unscaled = np.where(column.is_valid().to_numpy(zero_copy_only=False), unscaled, 0)
    scale = typ.scale
    if scale == 0:
        return _Numbers(np.ascontiguousarray(unscaled), validity)
    # One integer with a placeholder digit where the point goes, and "11" (to become "0.")
    # when the whole part is 0: 12.30 -> 12130 -> "12.30"; -0.05 -> -1105 -> "-0.05".
    unit = 10**scale
    whole, fraction = np.divmod(np.abs(unscaled), unit)
    zero_whole = whole == 0
    spelled = np.where(zero_whole, 11 * unit, whole * (10 * unit) + unit) + fraction
    return _Numbers(np.where(unscaled < 0, -spelled, spelled), validity, scale, zero_whole)


def _strings(column: pa.Array) -> _Fragments:
    """Quoted text with orjson's escapes."""
    column = _text(column)  # DuckDB may hand over string views
    # One scan of the bytes (numpy, memchr) is far cheaper than a regex or a kernel per value.
    data = _string_bytes(column)
    if data and np.frombuffer(data, np.uint8).min() < 0x20:
        return _Text(_fragments_by_value(column))  # rare: orjson's \uXXXX escapes are the reference
    if b'"' in data or b"\\" in data:
        column = pc.replace_substring(pc.replace_substring(column, "\\", "\\\\"), '"', '\\"')
    return _Text(column, '"', '"')


def _string_bytes(column: pa.Array) -> bytes:
    """The UTF-8 bytes of every value of ``column`` (a slice sees only its own values)."""
    _validity_buffer, offsets, data = column.buffers()
    if data is None or len(column) == 0:
        return b""
    first, = struct.unpack_from("<i", offsets, 4 * column.offset)
    end, = struct.unpack_from("<i", offsets, 4 * (column.offset + len(column)))
    return data[first:end].to_pybytes()


def _iso_datetimes(column: pa.Array) -> _Fragments:
    """Quoted ISO-8601 text with milliseconds and offset, as ``isoformat(timespec="milliseconds")``."""
    # Truncate to milliseconds the way isoformat does (towards the past, also before 1970).
    unit, tz = column.type.unit, column.type.tz
    millis = column
    if unit != "ms":
        millis = column if unit == "s" else pc.floor_temporal(column, unit="millisecond")
        millis = millis.cast(pa.timestamp("ms", tz))
    # Results of windowed queries share a timestamp per window: then each distinct value is
    # formatted once. (Encoding costs ~0.015 us a row when every value is distinct.)
    encoded = millis.dictionary_encode()
    if 4 * len(encoded.dictionary) <= len(millis):
        return _Coded(encoded.indices, _formatted_iso(encoded.dictionary).decorate("", ""))
    return _formatted_iso(millis)


def _formatted_iso(millis: pa.Array) -> _Fragments:
    """``millis`` (timestamp[ms]) as quoted ISO text with the offset."""
    tz = millis.type.tz
    if tz is not None and tz not in _UTC_NAMES:
        if len(millis) <= _FEW_TEXTS:  # the reference itself: Python's zoneinfo knows DST after 2037
            return _Text(pa.array([json_document_value(value) for value in millis.to_pylist()], pa.string()))
        # Arrow's tz database gives the same offsets, except for DST in years after 2037.
        return _Text(pc.strftime(millis, format="%Y-%m-%dT%H:%M:%S%Ez"), '"', '"')
    # Naive datetimes are UTC, as json_document treats them.
    validity = _validity(millis)
    numbers = millis.view(pa.int64())
    if validity is not None:
        numbers = _COALESCE.call([numbers, _ZERO])  # masked anyway; 0 keeps the text fixed-width
    if len(numbers) <= _FEW_TEXTS:  # numpy's formatter has the smaller fixed cost
        texts = np.datetime_as_string(numbers.to_numpy().astype("datetime64[ms]"), unit="ms").tolist()
        nulls = None if validity is None else millis.is_null().to_numpy(zero_copy_only=False)
        return _Text(pa.array(texts, pa.string(), mask=nulls), '"', '+00:00"')
    # Arrow's cast to text is ~20x faster than strftime, which consults the tz database per value.
    texts = _text(numbers.view(pa.timestamp("ms")))  # "2022-01-23 10:00:00.123"
    _unused, offsets_buffer, data_buffer = texts.buffers()
    offsets = np.frombuffer(offsets_buffer, np.int32, count=len(texts) + 1)
    if not np.all(np.diff(offsets) == _ISO_WIDTH):  # a year outside 1-9999: no datetime holds it
        return _Text(_fragments_by_value(millis))  # raises as json_document does
    # One matrix of fixed-width text: the "T" goes in in one stroke.
    core = np.frombuffer(data_buffer, np.uint8, count=int(offsets[-1])).reshape(len(texts), _ISO_WIDTH).copy()
    core[:, _ISO_WIDTH - 13] = ord("T")
    return _Fixed(core, validity, '"', '+00:00"')


def json_document_value(value: Any) -> str:
    """One value's JSON text, per the module's encoding rules (the row-by-row reference)."""
    return orjson.dumps(_json_value(value), default=_json_default).decode()


def _fragments_by_value(column: pa.Array) -> pa.Array:
    """The general path for types without a vectorized encoding (lists, structs, times, ...)."""
    values = column.to_pylist(maps_as_pydicts="lossy")  # a map is a JSON object, as in row_dicts
    return pa.array([json_document_value(value) for value in values], pa.string())


def text(value: Any) -> str:
    """``value`` as Timeplus prints it (for templates and e-mail bodies)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        base = value.strftime("%Y-%m-%d %H:%M:%S")
        digits = getattr(value, "digits", None)  # the column's precision, when row_dicts knew it
        if digits:
            base += "." + f"{value.microsecond:06d}"[:digits]
        elif value.microsecond:
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
    if isinstance(value, dict):
        return "{" + ",".join(f"{_quoted(k)}:{_quoted(v)}" for k, v in value.items()) + "}"
    return str(value)


def _quoted(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else text(value)


_CSV_NULL = pa.scalar("\\N", pa.string())  # ClickHouse's CSV spelling of NULL


def csv_line_array(batch: pa.RecordBatch | pa.Table) -> pa.Array:
    """Every row of ``batch`` as one CSV line (no line end), in row order, as ONE ``pa.binary()``
    array, as ClickHouse's CSV output writes it: values in column order joined by ``,``; numbers
    and booleans bare, every other value (text, dates, times, lists) in double quotes with inner
    quotes doubled; null as ``\\N``. Values are :func:`text`'s (what templates and e-mails show).

    Built column by column with Arrow compute; only types without an Arrow rendering identical to
    :func:`text` (lists, maps, time zones other than UTC, nanoseconds) go value by value."""
    rows = batch.num_rows
    if rows == 0:
        return pa.array([], pa.binary())
    parts = [_csv_field(column) for column in batch.columns]
    if not parts:
        return pa.array([b""] * rows, pa.binary())
    lines = parts[0] if len(parts) == 1 else _JOIN.call([*parts, _scalar(",")], _JOIN_OPTIONS)
    # One array from offset 0, as the batch producer takes it.
    return pa.concat_arrays([lines.view(pa.binary())])


def _csv_field(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``column``'s values as CSV fields (see :func:`csv_line_array`); never null."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    typ = column.type
    if pa.types.is_dictionary(typ):
        column, typ = column.dictionary_decode(), typ.value_type
    if pa.types.is_integer(typ):
        return _COALESCE.call([_text(column), _CSV_NULL])
    if pa.types.is_boolean(typ):
        return _COALESCE.call([_TAKE.call([_BOOLEAN_TEXTS, column.cast(pa.int8())]), _CSV_NULL])
    if pa.types.is_floating(typ) or (pa.types.is_decimal(typ) and typ.scale >= 0):
        texts = _text(as_printed(column))  # Arrow's shortest round trip: 1 for 1.0, as text() prints it
        if pa.types.is_decimal(typ) and b"E" in _string_bytes(texts):  # Arrow writes |value| < 1e-6 as 1E-7
            texts = pa.array(column_texts(column), pa.string())
        return _COALESCE.call([texts, _CSV_NULL])
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ):
        texts = _text(column)
        if b'"' in _string_bytes(texts):
            texts = pc.replace_substring(texts, '"', '""')
    elif pa.types.is_date(typ):
        texts = _text(column)
    elif pa.types.is_timestamp(typ) and typ.unit != "ns" and (typ.tz is None or typ.tz in _UTC_NAMES):
        texts = _text(column.view(pa.int64()).view(pa.timestamp(typ.unit)))  # wall time, no zone suffix
    else:
        texts = pa.array(column_texts(column), pa.string())
    return _COALESCE.call([_concat(['"', texts, '"']), _CSV_NULL])
