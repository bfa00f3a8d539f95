"""BatchProducer (librdkafka's C API fed Arrow arrays) against the real Tansu broker."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from sinkflow.sinks.rdkafka import BatchProducer
from tests.kafka.kafka_support import consume
from tests.servers.process import free_port
from tests.servers.tansu import TansuBroker


class Recorder:
    """The producer's callbacks, recorded."""

    def __init__(self) -> None:
        self.errors: list[KafkaError] = []
        self.logs: list[str] = []
        self.failed: list[KafkaError] = []

    def producer(self, config: dict[str, Any]) -> BatchProducer:
        return BatchProducer(config, self.errors.append, lambda _level, facility, line: self.logs.append(line),
                             self.failed.append)


def one_partition_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the topic exists
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(10)


def test_every_value_arrives_in_order_with_its_key_also_when_the_local_queue_fills(
    tansu_broker: TansuBroker, topic: str
) -> None:
    one_partition_topic(tansu_broker.bootstrap, topic)
    recorder = Recorder()
    # A queue of 300 messages: 5,000 values need many rounds of "queue full, wait, the rest".
    producer = recorder.producer({"bootstrap.servers": tansu_broker.bootstrap, "queue.buffering.max.messages": 300,
                                  "enable.idempotence": True})
    values = pa.array([f'{{"n":{n}}}' for n in range(5_000)], pa.string())
    keys = pa.array([None if n % 3 == 0 else f"k{n}".encode() for n in range(5_000)], pa.binary())
    try:
        # Slices too: the values of a slice start at its own offset in the shared buffers.
        producer.produce_all(topic, values.slice(0, 1_000), keys.slice(0, 1_000), room_timeout=30)
        producer.produce_all(topic, values.slice(1_000), keys.slice(1_000), room_timeout=30)
        assert producer.flush(30) == 0
    finally:
        producer.close()
    records = consume(tansu_broker.bootstrap, topic, 5_000)
    assert [r.value for r in records] == [f'{{"n":{n}}}'.encode() for n in range(5_000)]
    assert [r.key for r in records] == keys.to_pylist()
    assert recorder.failed == [] and recorder.errors == []


def test_a_full_queue_with_the_broker_gone_raises_buffer_error_and_purged_messages_are_reported() -> None:
    recorder = Recorder()
    producer = recorder.producer({"bootstrap.servers": f"127.0.0.1:{free_port()}", "queue.buffering.max.messages": 10,
                                  "reconnect.backoff.max.ms": 100})
    try:
        with pytest.raises(BufferError, match="stayed full"):
            producer.produce_all("nowhere", pa.array([b"x"] * 25, pa.binary()), None, room_timeout=0.2)
        assert len(producer) == 10  # the first ten stay enqueued
        # Without waiting: a full queue takes none of the next values, and says so.
        assert producer.produce("nowhere", pa.array([b"y"] * 5, pa.binary()), None) == 0
        producer.purge()
        assert producer.flush(5) == 0
    finally:
        producer.close()
    assert [e.code() for e in recorder.failed] == [KafkaError._PURGE_QUEUE] * 10
    # The refused connection was reported through the error callback, as a transport error.
    assert any(e.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN) for e in recorder.errors)


def test_a_configuration_librdkafka_refuses_is_named_in_the_error() -> None:
    with pytest.raises(KafkaException) as caught:
        Recorder().producer({"bootstrap.servers": "127.0.0.1:1", "linger.ms": "soon"})
    error: KafkaError = caught.value.args[0]
    assert error.code() == KafkaError._INVALID_ARG
    assert "linger.ms" in error.str()


def test_a_message_over_the_size_limit_is_refused_with_its_error_code(tansu_broker: TansuBroker, topic: str) -> None:
    producer = Recorder().producer({"bootstrap.servers": tansu_broker.bootstrap, "message.max.bytes": 1_000})
    try:
        with pytest.raises(KafkaException) as caught:
            producer.produce(topic, pa.array([b"small", b"x" * 5_000], pa.binary()), None)
        assert caught.value.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE
    finally:
        producer.purge()
        producer.flush(5)
        producer.close()


def test_values_must_be_binary_or_text() -> None:
    producer = Recorder().producer({"bootstrap.servers": "127.0.0.1:1"})
    try:
        with pytest.raises(TypeError, match="binary or string"):
            producer.produce("t", pa.array([1, 2]), None)
    finally:
        producer.close()
