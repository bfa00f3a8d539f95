"""The Kafka sink against a real Kafka-protocol broker (Tansu), driven through the Sink protocol."""

from __future__ import annotations

import json
import re
from typing import Any

import pyarrow as pa
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from sinkflow.sinks.base import SinkError, WriteContext
from sinkflow.sinks.encode import json_documents
from tests.clickhouse.car_results import car_batch
from tests.kafka.kafka_support import Record, consume, deliver, make_sink, partitions_of
from tests.servers.tansu import TansuBroker


def expected_documents(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    """What a consumer should read for each row: numbers, booleans, null, ISO times with ms and zone."""
    return [
        {**row, "time": row["time"].isoformat(timespec="milliseconds"), "fee": float(row["fee"])}
        for row in batch.to_pylist()
    ]


def window_and_cid(record: Record) -> tuple[str, str]:
    doc = json.loads(record.value)
    return doc["time"], doc["cid"]


async def test_every_row_arrives_once_as_a_json_document_on_a_created_topic(
    tansu_broker: TansuBroker, topic: str
) -> None:
    assert partitions_of(tansu_broker.bootstrap, topic) is None
    batches = [car_batch(window, cars=4) for window in range(5)]
    sink = make_sink({"brokers": tansu_broker.bootstrap, "topic": topic, "tls.disable": True})
    await sink.open()
    assert partitions_of(tansu_broker.bootstrap, topic) is not None  # created by open()
    await deliver(sink, batches)
    await sink.close()

    records = consume(tansu_broker.bootstrap, topic, 20)
    received = [json.loads(r.value) for r in records]
    expected = [doc for batch in batches for doc in expected_documents(batch)]
    assert len(received) == 20
    assert sorted(received, key=lambda d: (d["time"], d["cid"])) == expected
    first = received[0]
    assert isinstance(first["speed_kmh"], float) and isinstance(first["locked"], bool)
    # Decimals keep their exact text, datetimes carry milliseconds and the zone.
    by_row = {window_and_cid(r): r.value.decode() for r in records}
    assert '"fee":3.01' in by_row[("2022-01-23T10:00:08.000+00:00", "c0001")]
    assert '"note":null' in by_row[("2022-01-23T10:00:08.000+00:00", "c0001")]
    # Order within each partition is the order the rows were written in.
    for partition in {r.partition for r in records}:
        in_partition = [window_and_cid(r) for r in records if r.partition == partition]
        assert in_partition == sorted(in_partition)


async def test_an_existing_topic_is_used_as_it_is(tansu_broker: TansuBroker, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": tansu_broker.bootstrap})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(10)
    sink = make_sink({"brokers": tansu_broker.bootstrap, "topic": topic, "tls.disable": True, "partitions": 5})
    await sink.open()
    await deliver(sink, [car_batch(0), car_batch(1)])
    await sink.close()

    assert partitions_of(tansu_broker.bootstrap, topic) == 2
    records = consume(tansu_broker.bootstrap, topic, 6)
    assert sorted(window_and_cid(r) for r in records) == sorted(
        (doc["time"], doc["cid"]) for b in (car_batch(0), car_batch(1)) for doc in expected_documents(b)
    )


async def test_a_created_topic_gets_the_partitions_asked_for(tansu_broker: TansuBroker, topic: str) -> None:
    sink = make_sink({"brokers": tansu_broker.bootstrap, "topic": topic, "tls.disable": True, "partitions": 2})
    await sink.open()
    await sink.close()
    assert partitions_of(tansu_broker.bootstrap, topic) == 2


@pytest.mark.parametrize(
    ("message_key", "key_of"),
    [
        ("cid", lambda doc: doc["cid"]),
        # Templates print values as Timeplus does: a whole-second time without ".000".
        ("{{ .cid }}@{{ .time }}", lambda doc: f"{doc['cid']}@{doc['time'][:23].replace('T', ' ')}"),
    ],
)
async def test_message_key_from_a_column_or_a_template_keeps_a_key_in_one_partition(
    tansu_broker: TansuBroker, topic: str, message_key: str, key_of: Any
) -> None:
    batches = [car_batch(window, cars=5) for window in range(4)]
    sink = make_sink(
        {"brokers": tansu_broker.bootstrap, "topic": topic, "tls.disable": True, "message_key": message_key}
    )
    await sink.open()
    await deliver(sink, batches)
    await sink.close()

    records = consume(tansu_broker.bootstrap, topic, 20)
    assert len(records) == 20
    for record in records:
        assert record.key is not None and record.key.decode() == key_of(json.loads(record.value))
    if message_key == "cid":
        partitions_by_car: dict[str, set[int]] = {}
        for record in records:
            partitions_by_car.setdefault(record.key.decode(), set()).add(record.partition)  # type: ignore[union-attr]
        assert all(len(parts) == 1 for parts in partitions_by_car.values())
        for car in partitions_by_car:  # a car's windows arrive in time order
            times = [json.loads(r.value)["time"] for r in records if r.key == car.encode()]
            assert times == sorted(times) and len(times) == 4


async def test_exactly_once_a_read_committed_consumer_sees_each_row_once_across_a_restart(
    tansu_broker: TansuBroker, topic: str
) -> None:
    props = {"brokers": tansu_broker.bootstrap, "topic": topic, "tls.disable": True, "delivery_guarantee": "exactly_once"}
    batches = [car_batch(window) for window in range(4)]
    first = make_sink(props, sink_id="eos-sink")
    await first.open()
    await deliver(first, batches[:2])
    # Epoch 3 is written but never flushed: the sink goes away with the epoch unacknowledged.
    await first.write(batches[2], WriteContext("eos-sink", 3, 6))
    await first.close()

    restarted = make_sink(props, sink_id="eos-sink")
    await restarted.open()
    await deliver(restarted, batches[2:], first_epoch=3, first_row=6)  # the runtime replays epoch 3, goes on
    await restarted.close()

    expected = sorted((doc["time"], doc["cid"]) for b in batches for doc in expected_documents(b))
    committed = consume(tansu_broker.bootstrap, topic, 12, isolation="read_committed")
    assert sorted(window_and_cid(r) for r in committed) == expected
    # Not even a read_uncommitted consumer sees the abandoned epoch: it never left the sink.
    everything = consume(tansu_broker.bootstrap, topic, 12, isolation="read_uncommitted")
    assert sorted(window_and_cid(r) for r in everything) == expected


async def test_exactly_once_a_crashed_sink_is_fenced_by_its_successor(tansu_broker: TansuBroker, topic: str) -> None:
    props = {"brokers": tansu_broker.bootstrap, "topic": topic, "tls.disable": True, "delivery_guarantee": "exactly_once"}
    crashed = make_sink(props, sink_id="eos-fenced")
    await crashed.open()
    await deliver(crashed, [car_batch(0)])
    successor = make_sink(props, sink_id="eos-fenced")
    await successor.open()  # same transactional.id: the crashed producer is fenced
    await deliver(successor, [car_batch(1)], first_epoch=2, first_row=3)
    # The zombie's next epoch is refused by the broker, never committed beside the successor's.
    with pytest.raises(SinkError):
        await deliver(crashed, [car_batch(2)], first_epoch=3, first_row=6)
    await crashed.close()
    await successor.close()

    committed = consume(tansu_broker.bootstrap, topic, 6, isolation="read_committed")
    assert sorted(window_and_cid(r) for r in committed) == sorted(
        (doc["time"], doc["cid"]) for b in (car_batch(0), car_batch(1)) for doc in expected_documents(b)
    )


async def test_exactly_once_rows_replayed_after_a_crash_past_the_commit_are_not_sent_again(
    tansu_broker: TansuBroker, topic: str
) -> None:
    props = {"brokers": tansu_broker.bootstrap, "topic": topic, "tls.disable": True, "delivery_guarantee": "exactly_once"}
    batches = [car_batch(window) for window in range(3)]
    first = make_sink(props, sink_id="eos-replay")
    await first.open()
    await deliver(first, batches[:2])  # row positions 0..5, committed in Kafka
    # The process dies before the runtime checkpoints epoch 2: after the restart the runtime
    # replays from position 3, this time cut as one batch of epoch 2's rows and new ones.
    restarted = make_sink(props, sink_id="eos-replay")
    await restarted.open()
    replay = pa.Table.from_batches(batches[1:]).combine_chunks().to_batches()[0]
    await deliver(restarted, [replay], first_epoch=2, first_row=3)
    await restarted.close()
    await first.close()

    expected = sorted((doc["time"], doc["cid"]) for b in batches for doc in expected_documents(b))
    everything = consume(tansu_broker.bootstrap, topic, 9, isolation="read_uncommitted")
    assert sorted(window_and_cid(r) for r in everything) == expected


def test_decimal_text_is_exact_in_the_documents() -> None:
    # The decimal column is encoded from its text, never through a float.
    batch = car_batch(7, cars=2)
    assert [re.search(r'"fee":([^,]+)', doc.decode()).group(1) for doc in json_documents(batch)] == ["7.00", "7.01"]  # type: ignore[union-attr]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
async def test_compressed_messages_arrive_as_the_same_documents(tansu_broker: TansuBroker, topic: str, codec: str) -> None:
    batches = [car_batch(window, cars=50) for window in range(3)]
    sink = make_sink({"brokers": tansu_broker.bootstrap, "topic": topic, "tls.disable": True, "compression": codec})
    await sink.open()
    await deliver(sink, batches)
    await sink.close()

    records = consume(tansu_broker.bootstrap, topic, 150)
    expected = sorted(json_documents(batch)[i] for batch in batches for i in range(batch.num_rows))
    assert sorted(r.value for r in records) == expected
