"""Turning rows as users send them (REST, SQL INSERT, CLI files) into Arrow batches of a stream's schema.

Values arrive as JSON gives them: numbers, strings, booleans, null and lists (CSV gives strings).
:func:`rows_to_batch` converts them column by column with one ``pa.array`` call per column (the
fast path); only when a column fails does it walk that column value by value, to convert what
the lenient rules allow (numbers as strings, ``0``/``1`` as booleans, datetimes without a zone…)
or to name the first bad value. A batch with any bad value raises :class:`InvalidInput`
``row N, column 'c': cannot convert V to T`` and nothing of it is kept.

Conversion rules (following Timeplus/ClickHouse input formats):

* integers: whole numbers (``1.0`` is 1) or their text, range-checked; ``true``/``false`` as 1/0;
* floats: numbers or their text (``nan``, ``inf`` included);
* bool: ``true``/``false``, ``0``/``1`` and their text;
* string: text; numbers and booleans become their JSON text, lists and objects their JSON;
* decimal(p, s): exact, from text or numbers (a JSON number is taken as written: ``0.1`` is 0.1);
  more than ``s`` decimal places or more than ``p - s`` integer digits is an error;
* uuid: the canonical 8-4-4-4-12 hex form (or what :class:`uuid.UUID` reads), stored lower case;
* date: ``YYYY-MM-DD`` or a number of days since 1970-01-01;
* datetime / datetime64(p): ISO-8601 text (``T`` or space, optional fraction, optional zone;
  without a zone the column's time zone applies; extra sub-unit digits are truncated) or an epoch
  number in the column's unit (seconds for datetime, milliseconds for datetime64(3));
* array(T): a list whose elements follow T's rules;
* null only for nullable columns (and inside arrays of nullable elements); an empty string counts
  as null for a nullable non-string column (CSV has no other null spelling besides ``\\N``).

A stream column missing from ``columns`` gets null when nullable, else its type's default
(0, '', false, the epoch, an empty array), as Timeplus does.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa
import pyarrow.compute as pc

from sinkflow.errors import InvalidInput
from sinkflow.streams.types import TP_TIME, TP_TIME_TYPE, Column, DataType, from_arrow, parse_type

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DATE = date(1970, 1, 1)
_UUID_RE = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_TICKS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_TRUE = {"true", "1"}
_FALSE = {"false", "0"}


class _Bad(Exception):
    """One value cannot be converted; ``reason`` (optional) says why beyond 'cannot convert'."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


def show_value(value: object, limit: int = 80) -> str:
    """A value as an error message shows it: strings quoted, JSON spelling for the rest."""
    if isinstance(value, str):
        text = "'" + value + "'"
    elif value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = repr(value)
    else:
        try:
            text = json.dumps(value, default=str, ensure_ascii=False)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _base_type(dtype: DataType) -> DataType:
    """The type without its ``nullable(...)`` wrapper."""
    if dtype.nullable and dtype.name.startswith("nullable("):
        return parse_type(dtype.name[len("nullable(") : -1])
    return dtype


@dataclass(frozen=True)
class _Converter:
    """How one Timeplus type converts: ``fast`` for a whole column (raises anything on failure),
    ``one`` for a single non-null value (raises :class:`_Bad`). Both produce values ``pa.array``
    accepts for ``arrow``."""

    name: str
    arrow: pa.DataType
    nullable: bool
    is_string: bool
    fast: Callable[[Sequence[Any]], pa.Array]
    one: Callable[[Any], Any]
    default: Any

    def convert_one(self, value: Any) -> Any:
        """One value, nulls included (raises :class:`_Bad`)."""
        if value is None or (value == "" and self.nullable and not self.is_string):
            if self.nullable:
                return None
            raise _Bad("not nullable")
        return self.one(value)


def _inferred(values: Sequence[Any] | pa.Array) -> pa.Array:
    """The values as Arrow infers them (an Arrow array as it is)."""
    return values if isinstance(values, pa.Array) else pa.array(values, from_pandas=False)


def _text(values: Sequence[Any] | pa.Array) -> pa.Array:
    """The values as an Arrow string array; an Arrow array of another type raises TypeError
    (numbers become text by the value-by-value rules, not Arrow's)."""
    if isinstance(values, pa.Array):
        if not (pa.types.is_string(values.type) or pa.types.is_null(values.type)):
            raise TypeError(values.type)
        return values.cast(pa.string())
    return pa.array(values, pa.string())


def _numeric_or_text(arrow: pa.DataType) -> bool:
    """Whether a column inferred as ``arrow`` may take the vectorized numeric cast (text included:
    Arrow parses numbers from CSV-style text; anything it can't parse falls back value by value)."""
    return bool(
        pa.types.is_integer(arrow)
        or pa.types.is_floating(arrow)
        or pa.types.is_null(arrow)
        or pa.types.is_string(arrow)
    )


def _int_converter(arrow: pa.DataType) -> tuple[Callable[[Sequence[Any]], pa.Array], Callable[[Any], Any]]:
    bits = arrow.bit_width
    lo, hi = (0, 2**bits - 1) if pa.types.is_unsigned_integer(arrow) else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)

    def fast(values: Sequence[Any]) -> pa.Array:
        arr = _inferred(values)
        if arr.type == arrow:  # already the column's type (JSON integers into int64): no cast to pay
            return arr
        if not _numeric_or_text(arr.type):
            raise TypeError(arr.type)
        return arr.cast(arrow)  # safe cast: overflow and fractions raise; text is parsed

    def one(value: Any) -> int:
        if isinstance(value, bool):
            result = int(value)
        elif isinstance(value, int):
            result = value
        elif isinstance(value, float):
            if not value.is_integer():
                raise _Bad()
            result = int(value)
        elif isinstance(value, str):
            text = value.strip()
            try:
                # Hexadecimal as Arrow's vectorized text parsing reads it, so both paths agree.
                result = int(text, 16) if text.lower().startswith(("0x", "-0x")) else int(text)
            except ValueError:
                raise _Bad() from None
        else:
            raise _Bad()
        if not lo <= result <= hi:
            raise _Bad(f"out of range {lo}..{hi}")
        return result

    return fast, one


def _float_converter(arrow: pa.DataType) -> tuple[Callable[[Sequence[Any]], pa.Array], Callable[[Any], Any]]:
    def fast(values: Sequence[Any]) -> pa.Array:
        arr = _inferred(values)
        if arr.type == arrow:
            return arr
        if not _numeric_or_text(arr.type):
            raise TypeError(arr.type)
        return arr.cast(arrow, safe=False)  # floats are approximate by nature: rounding is the point

    def one(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise _Bad()
        try:
            return float(value)
        except (ValueError, OverflowError):
            raise _Bad() from None

    return fast, one


def _bool_one(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise _Bad()


def _bool_fast(values: Sequence[Any]) -> pa.Array:
    arr = _inferred(values)
    # Arrow parses exactly true/false/1/0 (any case) from text, as _bool_one does.
    if pa.types.is_boolean(arr.type):
        return arr
    if not (pa.types.is_null(arr.type) or pa.types.is_string(arr.type)):
        raise TypeError(arr.type)
    return arr.cast(pa.bool_())


def _string_one(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    raise _Bad()


def _string_fast(values: Sequence[Any]) -> pa.Array:
    return _text(values)


def _uuid_one(value: Any) -> str:
    if not isinstance(value, str):
        raise _Bad()
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise _Bad() from None


def _uuid_fast(values: Sequence[Any]) -> pa.Array:
    arr = _text(values)
    if not pc.all(pc.match_substring_regex(arr, _UUID_RE)).as_py():  # nulls are skipped
        raise ValueError("not a uuid")
    return pc.utf8_lower(arr)


def _decimal_converter(arrow: pa.Decimal128Type) -> tuple[Callable[[Sequence[Any]], pa.Array], Callable[[Any], Any]]:
    precision, scale = arrow.precision, arrow.scale
    max_int_digits = precision - scale

    def one(value: Any) -> Decimal:
        if isinstance(value, bool):
            raise _Bad()
        if isinstance(value, float):
            text = repr(value)  # the shortest text that reads back as this float: what the JSON said
        elif isinstance(value, int | str | Decimal):
            text = str(value).strip()
        else:
            raise _Bad()
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise _Bad() from None
        if not number.is_finite():
            raise _Bad()
        _, digits, exponent = number.normalize().as_tuple() if number else (0, (0,), 0)
        assert isinstance(exponent, int)
        if -exponent > scale:
            raise _Bad(f"more than {scale} decimal places")
        if len(digits) + exponent > max_int_digits:
            raise _Bad(f"more than {max_int_digits} digits before the decimal point")
        return number

    def fast(values: Sequence[Any]) -> pa.Array:
        return pa.array([None if v is None else one(v) for v in values], arrow)

    return fast, one


def _date_one(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return _EPOCH_DATE + timedelta(days=value)
        except OverflowError:
            raise _Bad() from None
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise _Bad() from None
    raise _Bad()


def _date_fast(values: Sequence[Any]) -> pa.Array:
    arr = _inferred(values)
    if pa.types.is_string(arr.type):
        return arr.cast(pa.date32())
    if pa.types.is_integer(arr.type) or pa.types.is_null(arr.type):
        return arr.cast(pa.int32()).cast(pa.date32())
    raise TypeError(arr.type)


def _zone(tz: str) -> ZoneInfo | Any:
    if tz.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone '{tz}'") from None


def _timestamp_converter(arrow: pa.TimestampType) -> tuple[Callable[[Sequence[Any]], pa.Array], Callable[[Any], Any]]:
    unit, tz = arrow.unit, arrow.tz or "UTC"
    zone = _zone(tz)
    naive_type = pa.timestamp(unit)
    per_second = _TICKS_PER_SECOND[unit]

    def fast(values: Sequence[Any]) -> pa.Array:
        arr = _inferred(values)
        if arr.type == pa.int64():
            return arr.view(arrow)  # epoch ticks as JSON gives them: the same bits, no cast to pay
        if pa.types.is_integer(arr.type) or pa.types.is_null(arr.type):
            return arr.cast(pa.int64()).cast(arrow)
        if not pa.types.is_string(arr.type):
            raise TypeError(arr.type)
        try:
            return arr.cast(arrow)  # every string carries a zone
        except pa.ArrowInvalid:
            naive = arr.cast(naive_type)  # no string carries a zone: they are in the column's zone
            return pc.assume_timezone(naive, tz) if tz != "UTC" else naive.cast(arrow)

    def ticks(moment: datetime) -> int:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
        delta = moment - _EPOCH
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        # Truncate toward the past (floor), as a clock reading at that unit would show.
        return micros * per_second // 1_000_000

    def one(value: Any) -> int:
        if isinstance(value, bool):
            raise _Bad()
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                raise _Bad()
            return int(value)
        if isinstance(value, datetime):
            return ticks(value)
        if isinstance(value, str):
            text = value.strip()
            if text.endswith(("z", "Z")):
                text = text[:-1] + "+00:00"
            try:
                return ticks(datetime.fromisoformat(text))
            except ValueError:
                raise _Bad() from None
        raise _Bad()

    return fast, one


_SIMPLE_LISTS = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean, pa.types.is_string)


def _array_converter(
    arrow: pa.ListType, inner: _Converter
) -> tuple[Callable[[Sequence[Any]], pa.Array], Callable[[Any], Any]]:
    # Only element types whose Arrow cast follows the rules above may take the vectorized path.
    vectorizable = inner.name not in ("uuid",) and not pa.types.is_decimal(inner.arrow)

    def fast(values: Sequence[Any]) -> pa.Array:
        arr = _inferred(values)
        if not vectorizable or not pa.types.is_list(arr.type):
            raise TypeError(arr.type)
        value_type = arr.type.value_type
        if not (pa.types.is_null(value_type) or any(check(value_type) for check in _SIMPLE_LISTS)):
            raise TypeError(arr.type)
        if pa.types.is_floating(value_type) and pa.types.is_integer(inner.arrow):
            raise TypeError(arr.type)  # let the one-by-one path reject fractions precisely
        if pa.types.is_boolean(value_type) != pa.types.is_boolean(inner.arrow):
            raise TypeError(arr.type)
        result = arr.cast(arrow)
        if not inner.nullable and result.flatten().null_count:
            raise ValueError("null element")
        return result

    def one(value: Any) -> list[Any]:
        if not isinstance(value, list | tuple):
            raise _Bad()
        converted: list[Any] = []
        for position, element in enumerate(value, start=1):
            try:
                converted.append(inner.convert_one(element))
            except _Bad as bad:
                detail = f": {bad.reason}" if bad.reason else ""
                raise _Bad(
                    f"element {position}: cannot convert {show_value(element)} to {inner.name}{detail}"
                ) from None
        return converted

    return fast, one


def _compound_one(arrow: pa.DataType) -> Callable[[Any], Any]:
    """A map or tuple value checked by Arrow (a tuple given as a list is matched to its items in order)."""

    def one(value: Any) -> Any:
        if pa.types.is_struct(arrow) and isinstance(value, list | tuple):
            value = {f.name: v for f, v in zip(arrow, value, strict=False)}
        if pa.types.is_map(arrow) and isinstance(value, dict):
            value = list(value.items())
        try:
            pa.array([value], arrow)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise _Bad(str(exc)) from None
        return value

    return one


def _compound_default(arrow: pa.DataType) -> Any:
    if pa.types.is_map(arrow):
        return []
    return {f.name: (None if f.nullable else converter(from_arrow(f.type, False)).default) for f in arrow}


@functools.lru_cache(maxsize=512)
def converter(dtype: DataType) -> _Converter:
    """The converter for a Timeplus type (see the module's rules); cached, as converters are stateless."""
    base = _base_type(dtype)
    arrow = base.arrow
    name = base.name
    fast: Callable[[Sequence[Any]], pa.Array]
    one: Callable[[Any], Any]
    default: Any
    if name == "uuid":
        fast, one, default = _uuid_fast, _uuid_one, "00000000-0000-0000-0000-000000000000"
    elif pa.types.is_integer(arrow):
        (fast, one), default = _int_converter(arrow), 0
    elif pa.types.is_floating(arrow):
        (fast, one), default = _float_converter(arrow), 0.0
    elif pa.types.is_boolean(arrow):
        fast, one, default = _bool_fast, _bool_one, False
    elif pa.types.is_string(arrow):
        fast, one, default = _string_fast, _string_one, ""
    elif pa.types.is_decimal(arrow):
        (fast, one), default = _decimal_converter(arrow), Decimal(0)
    elif pa.types.is_date(arrow):
        fast, one, default = _date_fast, _date_one, _EPOCH_DATE
    elif pa.types.is_timestamp(arrow):
        (fast, one), default = _timestamp_converter(arrow), 0
    elif pa.types.is_list(arrow):
        inner = converter(parse_type(name[len("array(") : -1]))
        (fast, one), default = _array_converter(arrow, inner), []
    elif pa.types.is_map(arrow) or pa.types.is_struct(arrow):
        # Maps (JSON objects or key/value pairs) and tuples (objects or lists) as Arrow reads them.
        fast, one, default = functools.partial(pa.array, type=arrow), _compound_one(arrow), _compound_default(arrow)
    else:
        raise InvalidInput(f"type {name} cannot be ingested")
    return _Converter(name, arrow, dtype.nullable, name == "string", fast, one, default)


def default_array(dtype: DataType, length: int) -> pa.Array:
    """``length`` copies of the value a missing column gets: null when nullable, else the type's default."""
    if dtype.nullable:
        return pa.nulls(length, dtype.arrow)
    return pa.array([converter(dtype).default] * length, dtype.arrow)


def fill_defaults(dtype: DataType, array: pa.Array) -> pa.Array:
    """``array`` with its nulls replaced by the type's default when ``dtype`` is not nullable
    (Timeplus stores a null sent to a non-nullable column as the default)."""
    if dtype.nullable or array.null_count == 0:
        return array
    return pc.fill_null(array, pa.scalar(converter(dtype).default, dtype.arrow))


def convert_column(column: Column, values: Sequence[Any] | pa.Array, first_row: int = 1,
                   null_is_default: bool = False) -> pa.Array:
    """Convert one column's values (row ``first_row`` is ``values[0]``) to its Arrow type.

    ``values`` may be an Arrow array (as a JSON reader gives it): its cast takes the vectorized
    path, and only a column that fails there is walked value by value. With
    ``null_is_default`` a null (or missing) value in a non-nullable column becomes the type's
    default, as Timeplus stores it; without, it is an error.

    Raises :class:`InvalidInput` ``row N, column 'c': cannot convert V to T[: reason]`` for the
    first bad value."""
    conv = converter(column.type)
    try:
        arr = conv.fast(values)
        if conv.nullable or arr.null_count == 0:
            return arr
        if null_is_default:
            return fill_defaults(column.type, arr)
    except Exception:  # any failure of the vectorized path means: go value by value
        pass
    if isinstance(values, pa.Array | pa.ChunkedArray):
        values = values.to_pylist()
    converted: list[Any] = []
    for index, value in enumerate(values):
        if value is None and null_is_default:
            converted.append(None)
            continue
        try:
            converted.append(conv.convert_one(value))
        except _Bad as bad:
            reason = f": {bad.reason}" if bad.reason else ""
            raise InvalidInput(
                f"row {first_row + index}, column '{column.name}': cannot convert {show_value(value)} "
                f"to {conv.name}{reason}"
            ) from None
    try:
        arr = pa.array(converted, conv.arrow)
    except (pa.ArrowException, OverflowError, ValueError) as exc:
        # Every value passed its own check, so this is a range the Arrow type can't hold.
        raise InvalidInput(f"column '{column.name}': values out of range for {conv.name}: {exc}") from None
    return fill_defaults(column.type, arr) if null_is_default else arr


def column_lookup(stream: str, columns: Sequence[Column], names: Sequence[str]) -> dict[str, Column]:
    """The stream's columns (and ``_tp_time``) by name, checking that ``names`` (the columns a
    body gives) are known and not repeated. Raises :class:`InvalidInput` naming the column."""
    by_name = {c.name: c for c in columns if c.name != TP_TIME}
    by_name[TP_TIME] = Column(TP_TIME, TP_TIME_TYPE)
    seen: set[str] = set()
    for name in names:
        if name not in by_name:
            raise InvalidInput(f"unknown column '{name}' in stream '{stream}'")
        if name in seen:
            raise InvalidInput(f"column '{name}' is given twice")
        seen.add(name)
    return by_name


def assemble_batch(columns: Sequence[Column], given: dict[str, pa.Array], count: int) -> pa.RecordBatch:
    """The batch of ``count`` rows holding the columns a body gave (``given``, by name,
    ``_tp_time`` included when given), in the stream's column order.

    A column the body did not give is left out: the stream fills it when the batch is appended
    (its DEFAULT or ALIAS expression, else null when nullable, else its type's zero value), so
    that is decided in one place for every way rows arrive."""
    arrays: list[pa.Array] = []
    fields: list[pa.Field] = []
    for column in columns:
        if column.name != TP_TIME and column.name in given:
            arrays.append(given[column.name])
            fields.append(column.arrow_field())
    if TP_TIME in given:
        arrays.append(given[TP_TIME])
        fields.append(pa.field(TP_TIME, TP_TIME_TYPE.arrow, nullable=False))
    if not arrays:  # no column given: only the row count
        return pa.RecordBatch.from_struct_array(pa.array([{}] * count, pa.struct([])))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def rows_to_batch(
    stream: str,
    columns: Sequence[Column],
    names: Sequence[str] | None,
    rows: Sequence[Sequence[Any]],
    first_row: int = 1,
) -> pa.RecordBatch:
    """Convert ``rows`` (each a list of values in the order of ``names``; ``None`` = every column of
    ``columns`` in order) to a batch of the named columns in stream order, plus ``_tp_time``
    when ``names`` includes it (see :func:`assemble_batch` for the columns not named). Rows are numbered from ``first_row`` in error messages.

    Raises :class:`InvalidInput` for an unknown or repeated column name, a row of the wrong length
    or a value that does not convert (naming row, column and value)."""
    user_columns = [c for c in columns if c.name != TP_TIME]
    names = [c.name for c in user_columns] if names is None else list(names)
    by_name = column_lookup(stream, user_columns, names)
    width = len(names)
    if not isinstance(rows, list | tuple):
        raise InvalidInput("data must be a list of rows")
    # Checked with C-level map() first: the per-row Python loop runs only to name a bad row.
    if not set(map(type, rows)) <= {list, tuple} or not set(map(len, rows)) <= {width}:
        for index, row in enumerate(rows):
            if not isinstance(row, list | tuple) or len(row) != width:
                got = f"{len(row)} values" if isinstance(row, list | tuple) else f"{show_value(row)}"
                raise InvalidInput(f"row {first_row + index}: expected {width} values ({', '.join(names)}), got {got}")
    count = len(rows)
    given: dict[str, pa.Array] = {}
    if count:
        for name, values in zip(names, zip(*rows, strict=True), strict=True):
            given[name] = convert_column(by_name[name], values, first_row)
    else:
        given = {name: pa.array([], by_name[name].type.arrow) for name in names}
    return assemble_batch(user_columns, given, count)


class FileChunks:
    """Rows of a JSON-lines (``.jsonl``, ``.ndjson``, ``.json``: one object per line) or CSV
    (``.csv``: a header row names the columns) file, as ``(columns, rows)`` chunks of at most
    ``chunk_rows`` rows, for ``sinkflow ingest name FILE``.

    While iterating, :attr:`first_row` is the 1-based data-row number of the current chunk's first
    row (for :func:`rows_to_batch`'s error messages) and :attr:`bytes_read` / :attr:`total_bytes`
    drive a progress bar. CSV values are strings (``\\N`` is null) and convert by the same rules.
    JSON-lines chunks break where the set of keys changes, so every chunk has one column list.

    Raises :class:`InvalidInput` for an unknown file kind, a line that is not a JSON object
    (naming the line) or a CSV row of the wrong width."""

    def __init__(self, path: Path, chunk_rows: int = 10_000, kind: str | None = None) -> None:
        self.path = path
        self.chunk_rows = chunk_rows
        self.kind = (kind or path.suffix.lstrip(".")).lower()
        if self.kind in ("jsonl", "ndjson", "json"):
            self.kind = "jsonl"
        elif self.kind != "csv":
            raise InvalidInput(f"cannot ingest '{path.name}': use a .csv or .jsonl file (or name the format)")
        self.total_bytes = path.stat().st_size
        self.bytes_read = 0
        self.first_row = 1

    def __iter__(self) -> Iterator[tuple[list[str], list[list[Any]]]]:
        with open(self.path, "rb") as raw:
            # utf-8-sig: a byte-order mark (as spreadsheet exports write) must not become part of a name.
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            source = self._jsonl(text) if self.kind == "jsonl" else self._csv(text)
            while True:
                try:
                    columns, rows = next(source)
                except StopIteration:
                    break
                except UnicodeDecodeError as exc:
                    raise InvalidInput(f"'{self.path.name}' is not UTF-8 text: {exc.reason}") from None
                self.bytes_read = raw.tell()
                yield columns, rows
                self.first_row += len(rows)
            self.bytes_read = self.total_bytes

    def _jsonl(self, text: io.TextIOWrapper) -> Iterator[tuple[list[str], list[list[Any]]]]:
        columns: list[str] | None = None
        rows: list[list[Any]] = []
        for line_no, line in enumerate(text, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"line {line_no}: not valid JSON: {exc.msg}") from None
            if not isinstance(record, dict):
                raise InvalidInput(f"line {line_no}: expected a JSON object, got {show_value(record)}")
            keys = list(record)
            if columns is not None and (keys != columns or len(rows) >= self.chunk_rows):
                if rows:
                    yield columns, rows
                rows = []
            columns = keys
            rows.append(list(record.values()))
        if columns is not None and rows:
            yield columns, rows

    def _csv(self, text: io.TextIOWrapper) -> Iterator[tuple[list[str], list[list[Any]]]]:
        reader = csv.reader(text)
        header = next(reader, None)
        if header is None:
            return
        columns = [name.strip() for name in header]
        rows: list[list[Any]] = []
        for row in reader:
            if not row:
                continue
            if len(row) != len(columns):
                raise InvalidInput(
                    f"CSV line {reader.line_num}: expected {len(columns)} fields ({', '.join(columns)}), got {len(row)}"
                )
            rows.append([None if v == "\\N" else v for v in row])
            if len(rows) >= self.chunk_rows:
                yield columns, rows
                rows = []
        if rows:
            yield columns, rows
