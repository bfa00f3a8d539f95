"""Ingest bodies in Timeplus's formats (compact, streaming, lines, raw), decoded into stored rows."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sinkflow.errors import InvalidInput
from sinkflow.streams.ingest_formats import IngestFormat, decode_body, ingest_format
from sinkflow.streams.store import Stream, StreamStore
from sinkflow.streams.types import TP_TIME, Column, parse_type
from tests.streams.test_ingest import ALL_TYPES, UUID

#: One value of every type, as a user sends it, and one row of nulls and gaps.
SAMPLE = {
    "i8": -128, "i16": -32768, "i32": 2_147_483_647, "i64": -(2**63), "u8": 255, "u16": 65535,
    "u32": 4_294_967_295, "u64": 2**64 - 1, "f32": 1.5, "f64": 2.25, "dec": "12.34", "b": True,
    "s": "héllo", "d": "2022-01-23", "dt": "2022-01-23 10:00:01", "dt64": "2022-01-23T10:00:00.123Z",
    "dt64z": "2022-01-23 05:00:00.5", "dt6": "2022-01-23T10:00:00.123456Z", "u": UUID.upper(),
    "arr": [1, 2, 3], "narr": ["x", None], "ni": 7, "ns": "n", "nd": 1.5,
}


def stream_of(store: StreamStore, types: dict[str, str]) -> Stream:
    if store.exists("t"):
        store.drop("t")
    return store.create("t", [Column(n, parse_type(t)) for n, t in types.items()])


def stored(store: StreamStore, stream: Stream, fmt: IngestFormat, body: bytes) -> dict[str, list[Any]]:
    stream.append_batch(decode_body(stream.name, stream.user_columns, fmt, body))
    return store.get(stream.name).table().drop_columns([TP_TIME]).to_pydict()


def compact(rows: list[dict[str, Any]]) -> bytes:
    names = list(ALL_TYPES)
    return orjson.dumps({"columns": names, "data": [[row.get(n) for n in names] for row in rows]})


def json_lines(rows: list[dict[str, Any]]) -> bytes:
    return b"\n".join(orjson.dumps(row) for row in rows) + b"\n"


def test_streaming_stores_what_compact_stores_for_every_type(store: StreamStore) -> None:
    rows = [SAMPLE, {**SAMPLE, "i8": 5, "ni": None, "ns": None, "nd": None}]
    expected = stored(store, stream_of(store, ALL_TYPES), IngestFormat.COMPACT, compact(rows))
    got = stored(store, stream_of(store, ALL_TYPES), IngestFormat.STREAMING, json_lines(rows))
    assert got == expected
    assert got["i8"] == [-128, 5] and got["u"] == [UUID, UUID] and got["ni"] == [7, None]


def test_streaming_objects_across_lines_and_back_to_back(store: StreamStore) -> None:
    body = b'{\n  "i64": 1,\n  "s": "a"\n}\n{"i64": 2, "s": "b"}{"i64": 3,\n "s": "c"}'
    got = stored(store, stream_of(store, {"i64": "int64", "s": "string"}), IngestFormat.STREAMING, body)
    assert got == {"i64": [1, 2, 3], "s": ["a", "b", "c"]}


def test_streaming_missing_keys_and_nulls_get_defaults(store: StreamStore) -> None:
    types = {"i": "int32", "s": "string", "n": "nullable(float64)", "b": "bool"}
    body = b'{"i": 1, "s": "x", "n": 0.5, "b": true}\n{"i": null}\n{"s": "only"}\n'
    got = stored(store, stream_of(store, types), IngestFormat.STREAMING, body)
    assert got == {"i": [1, 0, 0], "s": ["x", "", "only"], "n": [0.5, None, None], "b": [True, False, False]}


def test_streaming_lenient_values_take_the_value_by_value_rules(store: StreamStore) -> None:
    # Numbers as text, 1.0 as an integer, epoch numbers: Arrow's reader refuses them, the rules accept them.
    types = {"i": "int64", "f": "float64", "t": "datetime64(3)", "s": "string"}
    body = b'{"i": "12", "f": "2.5", "t": 1642932000123, "s": 5}\n{"i": 3.0, "f": 1, "t": "2022-01-23 10:00:00", "s": "x"}\n'
    got = stored(store, stream_of(store, types), IngestFormat.STREAMING, body)
    assert got["i"] == [12, 3] and got["f"] == [2.5, 1.0] and got["s"] == ["5", "x"]
    assert [t.isoformat() for t in got["t"]] == ["2022-01-23T10:00:00.123000+00:00", "2022-01-23T10:00:00+00:00"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"i": 1}\n{"i": 1.5}\n', "row 2, column 'i': cannot convert 1.5 to int32"),
        (b'{"i": 1}\n{"i": 99999999999}\n', "row 2, column 'i': cannot convert 99999999999 to int32"),
        (b'{"i": 1}\n{"i": 2, "nope": 3}\n', "unknown column 'nope' in stream 't'"),
        (b'{"i": 1}\n[1, 2]\n', "row 2: expected a JSON object, got [1, 2]"),
        (b'{"i": 1}\n{"i": \n', "row 2: not valid JSON"),
        (b'{"i": 1}\n{"i": "x"}\n', "row 2, column 'i': cannot convert 'x' to int32"),
    ],
)
def test_streaming_errors_name_the_row_and_column_and_store_nothing(store: StreamStore, body: bytes,
                                                                    message: str) -> None:
    stream = stream_of(store, {"i": "int32"})
    with pytest.raises(InvalidInput) as caught:
        stored(store, stream, IngestFormat.STREAMING, body)
    assert message in caught.value.message
    assert stream.head == 0


def test_lines_and_raw_fill_the_raw_column(store: StreamStore) -> None:
    types = {"raw": "string", "n": "int32"}
    body = b'{"key1": "value11"}\r\n\nplain text event\n{"key1": "value21"}\n'
    got = stored(store, stream_of(store, types), IngestFormat.LINES, body)
    assert got == {"raw": ['{"key1": "value11"}', "plain text event", '{"key1": "value21"}'], "n": [0, 0, 0]}
    got = stored(store, stream_of(store, types), IngestFormat.RAW, body)
    assert got == {"raw": [body.decode()], "n": [0]}


def test_lines_into_the_only_string_column_and_refused_without_one(store: StreamStore) -> None:
    got = stored(store, stream_of(store, {"message": "string"}), IngestFormat.LINES, b"a\nb")
    assert got == {"message": ["a", "b"]}
    with pytest.raises(InvalidInput) as caught:
        stored(store, stream_of(store, {"a": "string", "b": "string"}), IngestFormat.LINES, b"x")
    assert "string column named 'raw'" in caught.value.message


def test_compact_body_shape_errors(store: StreamStore) -> None:
    stream = stream_of(store, {"i": "int32"})
    for body, message in [
        (b"{not json", "the body is not valid JSON"),
        (b"[1, 2]", 'the body must be a JSON object {"columns"'),
        (b'{"columns": ["i"]}', "'data': Field required"),
        (b'{"columns": [1], "data": []}', "'columns' must be a list of column names"),
        (b'{"columns": ["i"], "data": [[1], [2, 3]]}', "row 2: expected 1 values (i), got 2 values"),
    ]:
        with pytest.raises(InvalidInput) as caught:
            stored(store, stream, IngestFormat.COMPACT, body)
        assert message in caught.value.message, body
    assert stream.head == 0


@pytest.mark.parametrize(
    ("query", "content_type", "expected"),
    [
        (None, None, IngestFormat.COMPACT),
        (None, "application/json", IngestFormat.COMPACT),
        (None, "application/vnd.timeplus+json;format=compact", IngestFormat.COMPACT),
        (None, "application/json;format=compat", IngestFormat.COMPACT),
        (None, "application/x-ndjson", IngestFormat.STREAMING),
        (None, "application/vnd.timeplus+json; format=streaming", IngestFormat.STREAMING),
        (None, "application/json;format=stream", IngestFormat.STREAMING),
        (None, "text/plain", IngestFormat.RAW),
        (None, "text/plain; charset=utf-8", IngestFormat.RAW),
        (None, "text/plain;format=lines", IngestFormat.LINES),
        ("streaming", "application/json", IngestFormat.STREAMING),  # what the timeplus SDK sends
        ("lines", "text/plain", IngestFormat.LINES),
        ("raw", None, IngestFormat.RAW),
    ],
)
def test_format_from_query_or_content_type(query: str | None, content_type: str | None,
                                           expected: IngestFormat) -> None:
    assert ingest_format(query, content_type) is expected


def test_unknown_format_is_named() -> None:
    with pytest.raises(InvalidInput) as caught:
        ingest_format("csv", None)
    assert "unknown ingest format 'csv'" in caught.value.message
