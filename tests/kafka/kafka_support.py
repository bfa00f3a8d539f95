"""Helpers of the Kafka sink tests: building a sink as the runtime does, reading a topic back."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from confluent_kafka import Consumer, KafkaError
from confluent_kafka.admin import AdminClient

from sinkflow.sinks.base import SinkEnv, WriteContext
from sinkflow.sinks.kafka import KafkaSink
from sinkflow.sinks.registry import parse_properties, sink_class
from tests.clickhouse.car_results import SCHEMA

_groups = itertools.count()


def make_sink(props: dict[str, Any], schema: pa.Schema = SCHEMA, sink_id: str = "sink-1") -> KafkaSink:
    """A kafka sink built the way the runtime builds one: properties validated by the registry."""
    config = parse_properties("kafka", props)
    sink = sink_class("kafka")(config, SinkEnv(sink_id=sink_id, sink_name=sink_id, output_schema=schema))
    assert isinstance(sink, KafkaSink)
    return sink


async def deliver(sink: KafkaSink, batches: list[pa.RecordBatch], first_epoch: int = 1, first_row: int = 0) -> None:
    """Write and flush one batch per epoch, as the runtime does: row positions continue across epochs."""
    for epoch, batch in enumerate(batches, start=first_epoch):
        await sink.write(batch, WriteContext(sink.env.sink_id, epoch, first_row))
        await sink.flush(epoch)
        first_row += batch.num_rows


@dataclass(frozen=True)
class Record:
    """One consumed message."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes


def consume(
    bootstrap: str, topic: str, expected: int, *, isolation: str = "read_uncommitted", extra: dict[str, Any] | None = None
) -> list[Record]:
    """Every message of ``topic`` from the start with a fresh group, in (partition, offset) order.

    Reads until ``expected`` messages arrived (or 20 s passed), then 1 s more so that a
    duplicate or an extra message is seen too.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{next(_groups)}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": isolation,
            "session.timeout.ms": 2000,
            "heartbeat.interval.ms": 300,
            **(extra or {}),
        }
    )
    records: list[Record] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 20.0
        settle_until: float | None = None
        while time.monotonic() < (settle_until or deadline):
            message = consumer.poll(0.2)
            if message is not None:
                error = message.error()
                if error is not None:
                    assert error.code() in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART), error
                    continue
                records.append(Record(message.partition(), message.offset(), message.key(), message.value()))
            if settle_until is None and len(records) >= expected:
                settle_until = time.monotonic() + 1.0
    finally:
        consumer.close()
    return sorted(records, key=lambda r: (r.partition, r.offset))


def partitions_of(bootstrap: str, topic: str) -> int | None:
    """How many partitions ``topic`` has, or None when the cluster does not have it."""
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    found = metadata.topics.get(topic)
    return None if found is None else len(found.partitions)
