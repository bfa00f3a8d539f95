"""The kafka sink run by the runtime on a stream: encoding ahead, batches rotating over the
partitions, flushes and checkpoints, with every row on the topic once and in order."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
from confluent_kafka.admin import AdminClient, NewTopic

from sinkflow.runtime.manager import SinkDefinition
from sinkflow.streams.store import StreamSettings
from sinkflow.streams.types import Column, from_arrow
from tests.clickhouse.car_results import SCHEMA, car_batch
from tests.kafka.kafka_support import consume
from tests.runtime.support import eventually, open_runtime
from tests.servers.tansu import TansuBroker


async def test_a_stream_of_many_batches_reaches_the_topic_once_in_order(tansu_broker: TansuBroker, topic: str,
                                                                        tmp_path: Path) -> None:
    admin = AdminClient({"bootstrap.servers": tansu_broker.bootstrap})  # kept alive until the topic exists
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(10)
    # 200 windows of 100 cars: 20,000 rows, 40 batches of 500 rows, several flushes.
    rows = pa.Table.from_batches([car_batch(window, cars=100) for window in range(200)], schema=SCHEMA)
    async with open_runtime(tmp_path) as runtime:
        stream = runtime.store.create("car_results", [Column(f.name, from_arrow(f.type)) for f in SCHEMA],
                                      StreamSettings())
        record = await runtime.sinks.create(SinkDefinition(
            name="to_kafka", type="kafka", sql=f"select {', '.join(SCHEMA.names)} from car_results",
            properties={"brokers": tansu_broker.bootstrap, "topic": topic, "tls.disable": True, "batch_count": 500},
        ))
        for batch in rows.to_batches(max_chunksize=5_000):
            stream.append_batch(batch)
        await eventually(lambda: runtime.sinks.status(record.id).rows_delivered == rows.num_rows, what="every row")
        status = runtime.sinks.status(record.id)
        assert status.rows_delivered == rows.num_rows and status.epochs == 40

    records = consume(tansu_broker.bootstrap, topic, rows.num_rows)
    documents = [json.loads(r.value) for r in records]
    assert len(documents) == rows.num_rows
    expected = [(row["time"], row["cid"]) for row in rows.to_pylist()]
    assert sorted((d["time"], d["cid"]) for d in documents) == sorted(
        (t.isoformat(timespec="milliseconds"), c) for t, c in expected
    )
    # Every partition got batches, and holds its rows in the order they were written.
    assert {r.partition for r in records} == {0, 1, 2}
    for partition in range(3):
        in_partition = [(d["time"], d["cid"]) for r, d in zip(records, documents) if r.partition == partition]
        assert in_partition == sorted(in_partition)
