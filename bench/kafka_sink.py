"""Rows/s delivered to Kafka by the kafka sink vs a bare confluent-kafka producer, in one run.

The sink is driven as the runtime drives it: Arrow result batches of ``batch_count`` rows
(the car query's columns), ``write`` then ``flush(epoch)`` per batch, so every epoch waits for
its delivery reports. It pays for JSON encoding and the per-epoch acknowledgement. The bare
producer sends the same JSON documents ready-made (encoded outside the timing), with
librdkafka's defaults, and flushes once at the end: the client's limit here. Rounds alternate
between the two on fresh topics; medians are reported.

    python bench/kafka_sink.py [--rows 200000] [--rounds 3] [--brokers host:port] [--guarantee at_least_once]

Without ``--brokers`` a throwaway Tansu broker is started on 127.0.0.1 (tests/servers/tansu.py).
Goal: sink/bare >= 0.7 and >= 100k rows/s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.servers

from sinkflow.sinks.base import SinkEnv, WriteContext  # noqa: E402
from sinkflow.sinks.encode import json_documents  # noqa: E402
from sinkflow.sinks.kafka import KafkaSink  # noqa: E402
from sinkflow.sinks.registry import parse_properties  # noqa: E402
from tests.clickhouse.car_results import SCHEMA, car_batch  # noqa: E402
from tests.servers.tansu import TansuBroker  # noqa: E402


def result_batches(count: int, size: int) -> list[pa.RecordBatch]:
    """``count`` result rows of the car query in batches of ``size`` rows (100 cars per window)."""
    table = pa.Table.from_batches([car_batch(window, cars=100) for window in range(count // 100)], schema=SCHEMA)
    table = table.combine_chunks()  # so that each slice is one batch of ``size`` rows
    return [batch for start in range(0, table.num_rows, size) for batch in table.slice(start, size).to_batches()]


def create_topic(brokers: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": brokers})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(10)


async def run_sink(brokers: str, topic: str, batches: list[pa.RecordBatch], guarantee: str) -> float:
    """Seconds to write and flush every epoch (open excluded: the runtime opens once)."""
    config = parse_properties(
        "kafka", {"brokers": brokers, "topic": topic, "tls.disable": True, "delivery_guarantee": guarantee}
    )
    sink = KafkaSink(config, SinkEnv("bench", "bench", SCHEMA))  # type: ignore[arg-type]
    await sink.open()
    # One warm-up message outside the timing: the idempotent producer's id is fetched once.
    await sink.write(batches[0].slice(0, 1), WriteContext("bench", 0))
    await sink.flush(0)
    started = time.perf_counter()
    row = 0
    for epoch, batch in enumerate(batches, start=1):
        await sink.write(batch, WriteContext("bench", epoch, row))
        await sink.flush(epoch)
        row += batch.num_rows
    elapsed = time.perf_counter() - started
    await sink.close()
    return elapsed


def run_bare(brokers: str, topic: str, documents: list[bytes]) -> float:
    """Seconds to produce every document and flush once (librdkafka defaults)."""
    producer = Producer({"bootstrap.servers": brokers})
    producer.produce(topic, documents[0])  # warm-up, as for the sink
    producer.flush()
    started = time.perf_counter()
    for document in documents:
        while True:
            try:
                producer.produce(topic, document)
                break
            except BufferError:
                producer.poll(0.01)
    remaining = producer.flush(60)
    elapsed = time.perf_counter() - started
    assert remaining == 0, f"{remaining} bare messages undelivered"
    return elapsed


@contextmanager
def broker(brokers: str | None) -> Iterator[str]:
    if brokers:
        yield brokers
        return
    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as directory:
        server = TansuBroker(Path(directory))
        server.start()
        try:
            yield server.bootstrap
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows per side per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--brokers", help="an existing cluster (default: start a Tansu broker)")
    parser.add_argument("--guarantee", default="at_least_once", choices=["at_least_once", "exactly_once"])
    args = parser.parse_args()

    batch_rows = parse_properties("kafka", {"brokers": "h:1", "topic": "t"}).batch_policy().max_rows
    batches = result_batches(args.rows, batch_rows)
    documents = [document for batch in batches for document in json_documents(batch)]
    encode_started = time.perf_counter()
    for batch in batches:
        json_documents(batch)
    encode_rate = len(documents) / (time.perf_counter() - encode_started)
    with broker(args.brokers) as brokers:
        sink_rates, bare_rates = [], []
        for round_no in range(args.rounds):
            for side in ("bare", "sink") if round_no % 2 == 0 else ("sink", "bare"):
                topic = f"bench-{side}-{round_no}-{time.time_ns()}"
                create_topic(brokers, topic)
                if side == "bare":
                    bare_rates.append(len(documents) / run_bare(brokers, topic, documents))
                else:
                    sink_rates.append(len(documents) / asyncio.run(run_sink(brokers, topic, batches, args.guarantee)))
    sink, bare = statistics.median(sink_rates), statistics.median(bare_rates)
    print(
        f"kafka: {len(documents)} rows x {args.rounds} alternating rounds, medians; "
        f"sink epochs of {batch_rows} rows (write + flush each), {args.guarantee}"
    )
    print(f"JSON encoding alone {encode_rate:>10,.0f} rows/s")
    print(
        f"sink {sink:>10,.0f} rows/s  bare producer {bare:>10,.0f} msgs/s  ratio sink/bare {sink / bare:.2f} "
        "(goal >= 0.7 and >= 100k rows/s)"
    )


if __name__ == "__main__":
    main()
