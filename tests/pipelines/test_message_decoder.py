"""Decoding Kafka messages into rows of an external stream's columns."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from sinkflow.catalog import Catalog, ExternalStreamRecord
from sinkflow.runtime.kafka_source import MESSAGE_HEADERS, MESSAGE_KEY, OFFSET, SHARD, KafkaReader, MessageDecoder, Polled
from sinkflow.sinks.external_settings import SettingError
from sinkflow.streams.store import StreamStore
from sinkflow.streams.types import Column, parse_type

T0 = 1_767_225_600_000


def polled(values: list[bytes], keys: list[bytes | None], times: list[int | None]) -> Polled:
    """Messages of partition 0 at offsets 0, 1, …, the first one with a header."""
    count = len(values)
    headers: list[list[tuple[str, bytes | None]] | None] = [[("trace_id", b"t0"), ("empty", None)]]
    headers += [None] * (count - 1)
    return Polled(values, keys, times, [0] * count, list(range(count)), headers)


def decoder(columns: list[tuple[str, str]], **settings: object) -> MessageDecoder:
    return MessageDecoder(ExternalStreamRecord("k", "kafka", columns, {"type": "kafka", **settings}))


def test_json_messages_decode_by_name_and_a_bad_one_becomes_nulls() -> None:
    batch = decoder([("ip", "string"), ("n", "int32")]).decode(polled(
        [b'{"ip": "10.0.0.1", "n": 1, "extra": true}', b"not json", b'{"n": 3}'],
        [b"k1", None, b"k3"], [T0, T0 + 1000, None]))
    rows = batch.to_pylist()
    assert [(r["ip"], r["n"], r[MESSAGE_KEY]) for r in rows] == [("10.0.0.1", 1, "k1"), (None, None, ""), (None, 3, "k3")]
    assert rows[1]["_tp_time"].isoformat() == "2026-01-01T00:00:01+00:00" and rows[2]["_tp_time"] is None
    assert [(r[SHARD], r[OFFSET]) for r in rows] == [(0, 0), (0, 1), (0, 2)]
    assert [r[MESSAGE_HEADERS] for r in rows] == [[("trace_id", "t0"), ("empty", "")], [], []]


def test_raw_blob_and_csv() -> None:
    raw = decoder([("raw", "string")]).decode(polled([b'{"a":1}', b"plain text"], [None, None], [T0, T0]))
    assert raw.column("raw").to_pylist() == ['{"a":1}', "plain text"]
    csv = decoder([("cid", "string"), ("speed", "float64")], data_format="CSV").decode(polled(
        [b'c1,10.5', b'"c,2",7', b"c3,fast"], [None] * 3, [T0] * 3))
    assert csv.to_pylist()[0]["speed"] == 10.5 and csv.to_pylist()[1]["cid"] == "c,2"
    assert (csv.to_pylist()[2]["cid"], csv.to_pylist()[2]["speed"]) == (None, None)


def test_reading_needs_columns() -> None:
    with pytest.raises(SettingError, match="needs its columns"):
        decoder([])
    with pytest.raises(SettingError, match="RawBLOB reads each message into one column"):
        decoder([("a", "string"), ("b", "string")], data_format="RawBLOB")


def test_a_copy_made_before_the_metadata_columns_gets_them(tmp_path: Path) -> None:
    store = StreamStore(tmp_path / "streams")
    store.create("k", [Column("raw", parse_type("string")), Column(MESSAGE_KEY, parse_type("string"))])
    store.get("k").append_batch(pa.record_batch({"raw": ["old"], MESSAGE_KEY: ["k0"]}))
    record = ExternalStreamRecord("k", "kafka", [("raw", "string")],
                                  {"type": "kafka", "brokers": "127.0.0.1:9", "topic": "t"})
    reader = KafkaReader(record, store, Catalog(tmp_path))
    reader.ensure_stream()
    reader.store.get("k").append_batch(reader.decoder.decode(polled([b"new"], [b"k1"], [T0])))
    rows = store.get("k").table().to_pylist()
    assert [(r["raw"], r[MESSAGE_KEY], r[SHARD], r[OFFSET]) for r in rows] == [("old", "k0", 0, 0), ("new", "k1", 0, 0)]
    assert [r[MESSAGE_HEADERS] for r in rows] == [[], [("trace_id", "t0"), ("empty", "")]]


def test_json_fields_convert_one_by_one_and_objects_read_into_text() -> None:
    columns = [("url", "string"), ("response", "string"), ("status", "int32"), ("ok", "bool"), ("note", "string")]
    batch = decoder(columns, data_format="JSONEachRow").decode(polled(
        [b'{"url": "/a", "response": {"statusCode": 404, "size": 7}, "status": "404", "ok": true, "note": 5}',
         b'{"url": "/b", "response": [1, 2], "status": "fast", "ok": "yes"}'],
        [None, None], [T0, T0]))
    rows = [{k: r[k] for k, _ in columns} for r in batch.to_pylist()]
    assert rows == [
        {"url": "/a", "response": '{"statusCode":404,"size":7}', "status": 404, "ok": True, "note": "5"},
        {"url": "/b", "response": "[1,2]", "status": None, "ok": None, "note": None}]
