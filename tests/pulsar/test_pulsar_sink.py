"""The Pulsar sink against a real pulsar-lite broker, driven through the Sink protocol."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pyarrow as pa
import pytest

from sinkflow.sinks.base import PartialWriteError, PermanentError, SinkEnv, WriteContext
from sinkflow.sinks.pulsar import PulsarSink
from sinkflow.sinks.registry import parse_properties
from tests.clickhouse.car_results import SCHEMA, car_batch
from tests.servers.pulsar import PulsarServer, consume


def make_sink(props: dict[str, Any], schema: pa.Schema = SCHEMA) -> PulsarSink:
    config = parse_properties("pulsar", props)
    return PulsarSink(config, SinkEnv(sink_id="sink-1", sink_name="sink-1", output_schema=schema))  # type: ignore[arg-type]


def documents(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    """What a consumer should read for each row: the row as JSON (ISO times with ms, exact decimals)."""
    return [
        {
            **row,
            "time": row["time"].isoformat(timespec="milliseconds"),
            "fee": float(row["fee"]),
        }
        for row in batch.to_pylist()
    ]


async def test_every_row_arrives_as_one_json_message(pulsar_server: PulsarServer, topic: str) -> None:
    batches = [car_batch(0), car_batch(1), car_batch(2)]
    sink = make_sink({"topic": topic, "broker_url": pulsar_server.url, "auth_type": ""})
    await sink.open()
    for epoch, batch in enumerate(batches, start=1):
        await sink.write(batch, WriteContext("sink-1", epoch, 0))
        await sink.flush(epoch)
    await sink.close()

    received = [json.loads(message.data()) for message in consume(pulsar_server, topic, 9)]
    expected = [doc for batch in batches for doc in documents(batch)]
    key = lambda doc: (doc["cid"], doc["time"])  # noqa: E731
    assert sorted(received, key=key) == sorted(expected, key=key)
    assert received[0]["time"].endswith("+00:00")


async def test_message_key_comes_from_a_column(pulsar_server: PulsarServer, topic: str) -> None:
    sink = make_sink({"topic": topic, "broker_url": pulsar_server.url, "auth_type": "", "message_key": "cid"})
    await sink.open()
    await sink.write(car_batch(0, cars=4), WriteContext("sink-1", 1, 0))
    await sink.flush(1)
    await sink.close()

    messages = consume(pulsar_server, topic, 4)
    assert sorted((m.partition_key(), json.loads(m.data())["cid"]) for m in messages) == [
        (f"c{car:04d}", f"c{car:04d}") for car in range(4)
    ]


async def test_token_auth_connects_and_delivers(pulsar_server: PulsarServer, topic: str) -> None:
    # pulsar-lite accepts a token without checking it: the token itself is checked in test_pulsar_config.
    sink = make_sink(
        {"topic": topic, "broker_url": pulsar_server.url, "auth_type": "token", "auth_params": {"token": "tok-123"}}
    )
    await sink.open()
    await sink.write(car_batch(3), WriteContext("sink-1", 1, 0))
    await sink.flush(1)
    await sink.close()
    assert sorted(json.loads(m.data())["cid"] for m in consume(pulsar_server, topic, 3)) == ["c0000", "c0001", "c0002"]


async def test_a_message_too_big_fails_only_its_row(pulsar_server: PulsarServer, topic: str) -> None:
    schema = pa.schema([("cid", pa.string()), ("note", pa.string())])
    batch = pa.RecordBatch.from_pydict(
        {"cid": ["c1", "c2", "c3"], "note": ["small", "x" * (6 * 1024 * 1024), "small too"]}, schema=schema
    )
    sink = make_sink({"topic": topic, "broker_url": pulsar_server.url, "auth_type": ""}, schema=schema)
    await sink.open()
    await sink.write(batch, WriteContext("sink-1", 1, 0))
    with pytest.raises(PartialWriteError) as caught:
        await sink.flush(1)
    assert list(caught.value.failures) == [1]
    assert isinstance(caught.value.failures[1], PermanentError)
    assert "MessageTooBig" in caught.value.failures[1].message
    # The next epoch starts clean.
    await sink.write(batch.slice(0, 1), WriteContext("sink-1", 2, 0))
    await sink.flush(2)
    await sink.close()
    assert sorted(json.loads(m.data())["cid"] for m in consume(pulsar_server, topic, 3)) == ["c1", "c1", "c3"]


async def test_a_broker_restart_mid_stream_loses_nothing(private_pulsar_server: PulsarServer, topic: str) -> None:
    server = private_pulsar_server
    sink = make_sink({"topic": topic, "broker_url": server.url, "auth_type": ""})
    await sink.open()
    await sink.write(car_batch(0), WriteContext("sink-1", 1, 0))
    await sink.flush(1)

    server.stop()
    await sink.write(car_batch(1), WriteContext("sink-1", 2, 0))  # enqueued while the broker is down

    async def restart_later() -> None:
        await asyncio.sleep(1)
        await asyncio.to_thread(server.start)

    restart = asyncio.create_task(restart_later())
    await sink.flush(2)  # returns only once the broker has acknowledged the epoch's messages
    await restart
    await sink.close()
    received = [json.loads(m.data()) for m in consume(server, topic, 6)]
    expected = documents(car_batch(0)) + documents(car_batch(1))
    key = lambda doc: (doc["time"], doc["cid"])  # noqa: E731
    assert sorted(received, key=key) == sorted(expected, key=key)
