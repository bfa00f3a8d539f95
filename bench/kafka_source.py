"""Messages/s read from Kafka into a materialized view vs a bare confluent-kafka consumer
decoding the same JSON messages, in one run.

The topic is filled once, outside the timing, with JSON car events (``{"cid": …, "speed_kmh":
…, …}``). The view side creates a Kafka external stream with the events' columns
(``data_format='JSONEachRow'``) and ``CREATE MATERIALIZED VIEW fast AS SELECT cid, speed_kmh,
total_km FROM cars_ext SETTINGS seek_to='earliest'`` (through :meth:`SqlPipelines.execute`),
and its time runs until the view's status counts every message's row stored in the view's
stream: consuming, decoding, appending to the source stream, the query, and appending to the
view's stream. The bare side consumes the topic from the start with its own group and decodes
each message with ``json.loads`` until it has them all. Rounds alternate the order of the sides;
the ratio is the median of each round's view/bare.

    python bench/kafka_source.py [--messages 300000] [--rounds 3] [--brokers host:port]

Without ``--brokers`` a throwaway Tansu broker is started on 127.0.0.1 (tests/servers/tansu.py).
Goal: view/bare >= 0.7.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for sinkflow and tests.servers

from kafka_sink import broker  # noqa: E402 - a bench next to this one
from pipelines_env import temporary_pipelines  # noqa: E402

PARTITIONS = 3
COLUMNS = "cid string, speed_kmh float64, total_km float64, gas_percent float64, locked bool, in_use bool"


def fill(brokers: str, topic: str, messages: int) -> None:
    """``messages`` JSON car events on a 3-partition ``topic``."""
    admin = AdminClient({"bootstrap.servers": brokers})  # kept alive until its future resolves
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(10)
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 20})
    for n in range(messages):
        value = json.dumps({"cid": f"c{n % 1000:04d}", "speed_kmh": n % 97 + 0.5, "total_km": 1000.0 + n,
                            "gas_percent": n % 50 + 10.0, "locked": n % 2 == 0, "in_use": n % 3 == 0})
        while True:
            try:
                producer.produce(topic, value.encode())
                break
            except BufferError:
                producer.poll(0.01)
    assert producer.flush(60) == 0


def run_bare(brokers: str, topic: str, messages: int) -> float:
    """Seconds for a fresh consumer to read and decode every message from the start."""
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"bench-bare-{time.time_ns()}",
                         "enable.auto.commit": False})
    started = time.perf_counter()
    # Partitions assigned, as the external stream's reader does: no group join in the timing.
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    decoded = 0
    try:
        while decoded < messages:
            for message in consumer.consume(10_000, 0.2):
                if message.error() is None:
                    json.loads(message.value())
                    decoded += 1
        return time.perf_counter() - started
    finally:
        consumer.close()


async def run_view(brokers: str, topic: str, messages: int) -> float:
    """Seconds from creating the view until it stored a row for every message."""
    async with temporary_pipelines("bench-kafka-source-") as pipelines:
        await pipelines.execute(f"CREATE EXTERNAL STREAM cars_ext ({COLUMNS}) SETTINGS type='kafka', "
                                f"brokers='{brokers}', topic='{topic}', data_format='JSONEachRow'")
        started = time.perf_counter()
        await pipelines.execute("CREATE MATERIALIZED VIEW fast AS SELECT cid, speed_kmh, total_km FROM cars_ext "
                                "SETTINGS seek_to='earliest'")
        status = pipelines.sinks.status("fast")
        while status.rows_delivered < messages:
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        assert status.rows_delivered == messages, f"{status.rows_delivered} rows, {messages} messages"
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--brokers", help="an existing cluster (default: start a Tansu broker)")
    args = parser.parse_args()
    rates: dict[str, list[float]] = {"view": [], "bare": []}
    with broker(args.brokers) as brokers:
        topic = f"bench-source-{time.time_ns()}"
        fill(brokers, topic, args.messages)
        for round_no in range(args.rounds):
            for side in ("view", "bare") if round_no % 2 == 0 else ("bare", "view"):
                seconds = (asyncio.run(run_view(brokers, topic, args.messages)) if side == "view"
                           else run_bare(brokers, topic, args.messages))
                rates[side].append(args.messages / seconds)
    ratio = statistics.median(v / b for v, b in zip(rates["view"], rates["bare"]))
    print(f"kafka_source: {args.messages:,} JSON messages (3 partitions) x {args.rounds} alternating rounds; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"bare consumer + json.loads     {statistics.median(rates['bare']):>10,.0f} msgs/s")
    print(f"external stream -> MV          {statistics.median(rates['view']):>10,.0f} msgs/s  ratio view/bare {ratio:.2f}")
    print("goal: ratio >= 0.7")


if __name__ == "__main__":
    main()
