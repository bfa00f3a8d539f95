"""Ingest request bodies in Timeplus's formats, decoded into an Arrow batch of a stream's schema.

``POST /api/v1beta2/streams/{name}/ingest`` takes four formats, chosen by the ``format`` query
parameter or else by the Content-Type (:func:`ingest_format`):

* ``compact`` — ``{"columns": [...], "data": [[...], ...]}`` (``application/json``,
  ``application/vnd.timeplus+json``, ``…;format=compact``; the default);
* ``streaming`` — JSON objects, one event each, usually one per line (``application/x-ndjson``,
  ``application/json;format=streaming``, ``application/vnd.timeplus+json;format=streaming``);
  an object may also span lines, and objects may follow each other without a line break. A
  key the object lacks, or a null in a non-nullable column, gets the column's default, as in
  Timeplus;
* ``lines`` — each non-empty line of the body is one event (``text/plain;format=lines``);
* ``raw`` — the whole body is one event (``text/plain``, ``text/plain;format=raw``).

``lines`` and ``raw`` put the text into the stream's string column named ``raw``, or into its
only string column when it has no ``raw``; other columns get their defaults.

Bodies are decoded straight into columns: orjson for ``compact`` (one Arrow conversion per
column), Arrow's JSON reader for ``streaming`` (no Python object per row) with a fallback that
parses object by object only when Arrow refuses the body, Arrow's string kernels for ``lines``.
Every value follows the conversion rules of :mod:`sinkflow.streams.ingest`, and a bad one
rejects the whole body with an :class:`InvalidInput` naming its row and column.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from enum import Enum
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from sinkflow.errors import InvalidInput
from sinkflow.streams.ingest import assemble_batch, column_lookup, convert_column, rows_to_batch, show_value
from sinkflow.streams.types import TP_TIME, Column


class IngestFormat(str, Enum):
    """Timeplus's ingest formats (the ``format`` query parameter)."""

    COMPACT = "compact"
    STREAMING = "streaming"
    LINES = "lines"
    RAW = "raw"


_BY_MEDIA_TYPE = {
    "application/x-ndjson": IngestFormat.STREAMING,
    "application/ndjson": IngestFormat.STREAMING,
    "text/plain": IngestFormat.RAW,
}
#: Spellings Timeplus's API reference also lists (``format=stream``, ``format=compat``).
_ALIASES = {"stream": IngestFormat.STREAMING, "compat": IngestFormat.COMPACT}


#: The Arrow type the JSON reader is asked for, per Arrow type of a stream column: what it
#: parses exactly as the ingest rules do. A value of another JSON kind makes the reader refuse
#: the body, and the fallback parses it object by object. Decimals and uuids are read as text;
#: dates, datetimes and arrays are left to the reader's inference (epoch numbers, text).
_READ_AS = {
    pa.int8(): pa.int64(), pa.int16(): pa.int64(), pa.int32(): pa.int64(), pa.int64(): pa.int64(),
    pa.uint8(): pa.int64(), pa.uint16(): pa.int64(), pa.uint32(): pa.int64(), pa.uint64(): pa.uint64(),
    pa.float32(): pa.float64(), pa.float64(): pa.float64(), pa.bool_(): pa.bool_(), pa.string(): pa.string(),
}


def _read_as(arrow: pa.DataType) -> pa.DataType | None:
    if arrow in _READ_AS:
        return _READ_AS[arrow]
    if pa.types.is_decimal(arrow):
        return pa.string()
    return None


def ingest_format(query_format: str | None, content_type: str | None) -> IngestFormat:
    """The body's format: the ``format`` query parameter when given, else the Content-Type's
    ``format=`` parameter (``application/json;format=streaming``, ``text/plain;format=lines``…),
    else its media type (``application/x-ndjson``: streaming, ``text/plain``: raw), else
    ``compact``.

    Raises :class:`InvalidInput` for an unknown format name."""
    if query_format:
        return _named(query_format)
    media, *params = (part.strip().lower() for part in (content_type or "").split(";"))
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "format":
            return _named(value.strip().strip('"'))
    return _BY_MEDIA_TYPE.get(media, IngestFormat.COMPACT)


def _named(name: str) -> IngestFormat:
    key = name.strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    try:
        return IngestFormat(key)
    except ValueError:
        known = ", ".join(f.value for f in IngestFormat)
        raise InvalidInput(f"unknown ingest format '{name}': use one of {known}") from None


def decode_body(stream: str, columns: Sequence[Column], fmt: IngestFormat, body: bytes) -> pa.RecordBatch:
    """The rows of ``body`` (in format ``fmt``) as a batch of the stream's columns (and
    ``_tp_time`` when the body gives it), ready for :meth:`Stream.append_batch`.

    Raises :class:`InvalidInput` for a body that is not in the format, an unknown column, or a
    value that does not convert (naming the row, counted from 1, and the column)."""
    if fmt is IngestFormat.COMPACT:
        return _compact(stream, columns, body)
    if fmt is IngestFormat.STREAMING:
        return _streaming(stream, columns, body)
    return _text(columns, body, fmt)


# --------------------------------------------------------------------------- compact


def _compact(stream: str, columns: Sequence[Column], body: bytes) -> pa.RecordBatch:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidInput('the body must be a JSON object {"columns": [...], "data": [[...], ...]}')
    names = document.get("columns")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise InvalidInput("'columns' must be a list of column names")
    if "data" not in document:
        raise InvalidInput("'data': Field required")
    data = document["data"]
    if not isinstance(data, list):
        raise InvalidInput("'data' must be a list of rows")
    return rows_to_batch(stream, columns, names, data)


# --------------------------------------------------------------------------- streaming


def _streaming(stream: str, columns: Sequence[Column], body: bytes) -> pa.RecordBatch:
    user = [c for c in columns if c.name != TP_TIME]
    try:
        table = _read_json_lines(user, body)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _streaming_by_object(stream, user, body)
    if table.num_rows == 0:
        return assemble_batch(user, {}, 0)
    names = [name for name in table.column_names]
    by_name = column_lookup(stream, user, names)
    given = {name: convert_column(by_name[name], table.column(name).combine_chunks(), null_is_default=True)
             for name in names}
    # Columns the schema named but no object held came back all null: they get their defaults.
    return assemble_batch(user, given, table.num_rows)


def _read_json_lines(columns: Sequence[Column], body: bytes) -> pa.Table:
    """Arrow's JSON reader over one object per line, asked for the types it reads exactly as
    the ingest rules do (:func:`_read_as`). Raises ``ArrowInvalid`` for anything else (an
    object spanning lines, a value of another kind, datetime text the reader took for a
    timestamp: it cannot tell a zone-less text from one in UTC), and the caller then parses
    object by object."""
    fields = [(c.name, _read_as(c.type.arrow)) for c in columns]
    schema = pa.schema([(name, arrow) for name, arrow in fields if arrow is not None])
    read = pa_json.ReadOptions(use_threads=False, block_size=max(1 << 20, len(body) + 1))
    parse = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
    table = pa_json.read_json(io.BytesIO(body), read_options=read, parse_options=parse)
    if any(pa.types.is_timestamp(field.type) or pa.types.is_date(field.type) for field in table.schema):
        raise pa.ArrowInvalid("datetime text inferred by the reader")
    # Keys the body never held come back as all-null columns of the schema: not given.
    present = [name for name in table.column_names
               if name not in schema.names or table.column(name).null_count < table.num_rows]
    return table.select(present)


def _streaming_by_object(stream: str, columns: Sequence[Column], body: bytes) -> pa.RecordBatch:
    """The slow, exact path: each object parsed on its own, so an error names its row."""
    objects = _json_objects(body)
    names: dict[str, None] = {}
    for record in objects:
        names.update(dict.fromkeys(record))
    by_name = column_lookup(stream, columns, list(names))
    given = {name: convert_column(by_name[name], [record.get(name) for record in objects], null_is_default=True)
             for name in names}
    return assemble_batch(columns, given, len(objects))


def _json_objects(body: bytes) -> list[dict[str, Any]]:
    """The JSON objects of a streaming body, in order, wherever the line breaks fall.
    Raises :class:`InvalidInput` naming the row (the object's position) that is not an object."""
    try:
        values = [orjson.loads(line) for line in body.splitlines() if line.strip()]
    except orjson.JSONDecodeError:  # an object spans lines, or objects share one: scan the text
        values = _scan_json_values(body)
    for row, value in enumerate(values, start=1):
        if not isinstance(value, dict):
            raise InvalidInput(f"row {row}: expected a JSON object, got {show_value(value)}")
    return values


def _scan_json_values(body: bytes) -> list[Any]:
    """Every JSON value of ``body`` in order, separated by any whitespace (or none)."""
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the body is not UTF-8 text: {exc.reason}") from None
    decoder = json.JSONDecoder()
    values: list[Any] = []
    position = 0
    while True:
        while position < len(text) and text[position] in " \t\r\n":
            position += 1
        if position >= len(text):
            return values
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"row {len(values) + 1}: not valid JSON: {exc.msg}") from None
        values.append(value)


# --------------------------------------------------------------------------- lines and raw


def _text_column(columns: Sequence[Column]) -> Column:
    """The column text events go into: ``raw``, else the stream's only string column."""
    strings = [c for c in columns if c.name != TP_TIME and pa.types.is_string(c.type.arrow)]
    for column in strings:
        if column.name == "raw":
            return column
    if len(strings) == 1:
        return strings[0]
    raise InvalidInput("formats 'lines' and 'raw' need a string column named 'raw' (or a single string column)")


def _text(columns: Sequence[Column], body: bytes, fmt: IngestFormat) -> pa.RecordBatch:
    target = _text_column(columns)
    try:
        whole = pa.array([body.decode()], pa.string())
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the body is not UTF-8 text: {exc.reason}") from None
    if fmt is IngestFormat.RAW:
        events = whole
    else:
        # Split and drop empty lines with Arrow kernels: no Python string per line.
        lines = pc.list_flatten(pc.split_pattern(whole, "\n"))
        lines = pc.utf8_rtrim(lines, "\r")
        events = lines.filter(pc.not_equal(pc.utf8_length(lines), 0))
    user = [c for c in columns if c.name != TP_TIME]
    return assemble_batch(user, {target.name: events}, len(events))
