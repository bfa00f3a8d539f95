"""Batches already in a stream's column layout (what the engine and sinks append) are stored like any other."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from sinkflow.streams.store import StreamStore
from sinkflow.streams.types import TP_TIME, Column, parse_type

from .conftest import FakeClock


def test_a_batch_in_the_stream_layout_gets_defaults_ingest_time_and_a_time_index(
        store: StreamStore, clock: FakeClock) -> None:
    stream = store.create("s", [Column("a", parse_type("int32")), Column("b", parse_type("nullable(string)"))])
    layout = pa.schema([("a", pa.int32()), ("b", pa.string())])
    assert layout.types == [c.type.arrow for c in stream.user_columns]
    first_time = datetime.fromtimestamp(clock.now, UTC)
    stream.append_batch(pa.record_batch({"a": pa.array([None, 1], pa.int32()), "b": [None, "x"]}, schema=layout))
    clock.advance(60)
    stream.append_batch(pa.record_batch({"a": pa.array([2], pa.int32()), "b": ["y"]}, schema=layout))
    assert stream.table().to_pylist() == [
        {"a": 0, "b": None, TP_TIME: first_time},  # a null in a non-nullable column: its default
        {"a": 1, "b": "x", TP_TIME: first_time},
        {"a": 2, "b": "y", TP_TIME: datetime.fromtimestamp(clock.now, UTC)},
    ]
    # The log's time index knows each append's ingest time.
    assert stream.seek_time(datetime.fromtimestamp(clock.now - 30, UTC)) == 2
    assert stream.seek_time(first_time) == 0
