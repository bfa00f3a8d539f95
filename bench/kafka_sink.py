"""Rows/s delivered to Kafka by the kafka sink vs a bare confluent-kafka producer, in one run.

The headline side runs the whole pipeline: the rows are appended to a sinkflow stream and a
kafka sink defined on ``select … from car_results`` (SinkManager, engine, runtime batching with
encoding ahead, flushes and checkpoints) delivers them; its time runs from the first append to
the status counting every row delivered. It pays for JSON encoding and for waiting on every
acknowledgement. The bare producer sends the same JSON documents ready-made (encoded outside
the timing), with librdkafka's defaults, and flushes once at the end: the client's limit here;
a second bare run flushes as often as the sink, to show what waiting for those
acknowledgements alone costs.

The "sink" side calls the Sink protocol directly, batch by batch: Arrow result batches of
``batch_count`` rows, one ``write`` per batch (each encoding its own batch), and a ``flush``
once the unflushed rows reach the runtime's bound (``BatchPolicy.flush_rows``); without the
runtime's encoding ahead (in chunks, during flushes) it shows what that adds.

Rounds alternate between the sides on fresh topics; rates are medians over rounds, ratios the
median of each round's side/bare (the machine's load drifts between rounds more than between
the sides of one round).

    python bench/kafka_sink.py [--rows 200000] [--rounds 3] [--brokers host:port]
                               [--guarantee at_least_once]
                               [--sides bare,bare_epochs,sink,pipeline,pipeline_alo]

The ``pipeline_alo`` side is the pipeline with ``at_least_once`` whatever ``--guarantee`` says:
with ``--guarantee exactly_once`` the ratio pipeline/pipeline_alo is what transactions cost
(goal: at least 0.8).

Without ``--brokers`` a throwaway Tansu broker is started on 127.0.0.1 (tests/servers/tansu.py).
Goal: pipeline/bare >= 0.7 and >= 100k rows/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
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

from sinkflow.catalog import Catalog  # noqa: E402
from sinkflow.engine import Engine  # noqa: E402
from sinkflow.runtime.manager import SinkDefinition, SinkManager  # noqa: E402
from sinkflow.sinks.base import SinkEnv, WriteContext  # noqa: E402
from sinkflow.sinks.config import BatchPolicy  # noqa: E402
from sinkflow.sinks.encode import json_document_array, json_documents  # noqa: E402
from sinkflow.sinks.kafka import KafkaSink  # noqa: E402
from sinkflow.sinks.registry import parse_properties  # noqa: E402
from sinkflow.streams.store import StreamSettings, StreamStore  # noqa: E402
from sinkflow.streams.types import Column, from_arrow  # noqa: E402
from tests.clickhouse.car_results import SCHEMA, car_batch  # noqa: E402
from tests.servers.process import throwaway  # noqa: E402
from tests.servers.tansu import TansuBroker  # noqa: E402


def result_batches(count: int, size: int) -> list[pa.RecordBatch]:
    """``count`` result rows of the car query in batches of ``size`` rows (100 cars per window)."""
    table = pa.Table.from_batches([car_batch(window, cars=100) for window in range(count // 100)], schema=SCHEMA)
    table = table.combine_chunks()  # so that each slice is one batch of ``size`` rows
    return [batch for start in range(0, table.num_rows, size) for batch in table.slice(start, size).to_batches()]


def encode_seconds(batches: list[pa.RecordBatch]) -> float:
    """Seconds to encode every batch as JSON documents (one array per batch, as the sink does)."""
    started = time.perf_counter()
    for batch in batches:
        json_document_array(batch)
    return time.perf_counter() - started


def create_topic(brokers: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": brokers})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(10)


def flush_rows(batch_rows: int) -> int:
    """How many unflushed rows make the runtime flush (``BatchPolicy.flush_rows``)."""
    return BatchPolicy(max_rows=batch_rows, max_wait=0.0).flush_rows


async def run_sink(brokers: str, topic: str, batches: list[pa.RecordBatch], guarantee: str) -> float:
    """Seconds to write every batch and flush as the runtime does (open excluded: the runtime opens once)."""
    config = parse_properties(
        "kafka", {"brokers": brokers, "topic": topic, "tls.disable": True, "delivery_guarantee": guarantee}
    )
    sink = KafkaSink(config, SinkEnv("bench", "bench", SCHEMA))  # type: ignore[arg-type]
    await sink.open()
    # One warm-up message outside the timing: the idempotent producer's id is fetched once.
    await sink.write(batches[0].slice(0, 1), WriteContext("bench", 0))
    await sink.flush(0)
    flush_at = flush_rows(batches[0].num_rows)
    started = time.perf_counter()
    row = unflushed = 0
    for epoch, batch in enumerate(batches, start=1):
        await sink.write(batch, WriteContext("bench", epoch, row))
        row += batch.num_rows
        unflushed += batch.num_rows
        if unflushed >= flush_at:
            await sink.flush(epoch)
            unflushed = 0
    await sink.flush(len(batches))
    elapsed = time.perf_counter() - started
    await sink.close()
    return elapsed


async def run_pipeline(brokers: str, topic: str, batches: list[pa.RecordBatch], guarantee: str) -> float:
    """Seconds from appending the rows to a stream until the kafka sink's status counts them all."""
    with tempfile.TemporaryDirectory(prefix="bench-kafka-pipeline-") as directory:
        store = StreamStore(Path(directory))
        engine = Engine(store)
        catalog = Catalog(Path(directory))
        manager = SinkManager(engine, store, catalog)
        await manager.start()
        try:
            stream = store.create(
                "car_results", [Column(f.name, from_arrow(f.type)) for f in SCHEMA], StreamSettings()
            )
            record = await manager.create(
                SinkDefinition(
                    name="to_kafka",
                    type="kafka",
                    sql=f"select {', '.join(SCHEMA.names)} from car_results",
                    properties={"brokers": brokers, "topic": topic, "tls.disable": True, "delivery_guarantee": guarantee},
                )
            )
            total = sum(batch.num_rows for batch in batches)
            await asyncio.sleep(1.0)  # the pipeline opens its producer before the clock starts
            started = time.perf_counter()
            for batch in batches:
                stream.append_batch(batch)
            while manager.status(record.id).rows_delivered < total:
                await asyncio.sleep(0.005)
            return time.perf_counter() - started
        finally:
            await manager.stop()
            catalog.close()
            store.close()


def run_bare(brokers: str, topic: str, documents: list[bytes], flush_every: int | None = None) -> float:
    """Seconds to produce every document and flush (librdkafka defaults): once at the end, or
    every ``flush_every`` messages as the runtime flushes the sink."""
    producer = Producer({"bootstrap.servers": brokers})
    producer.produce(topic, documents[0])  # warm-up, as for the sink
    producer.flush()
    started = time.perf_counter()
    for index, document in enumerate(documents, start=1):
        while True:
            try:
                producer.produce(topic, document)
                break
            except BufferError:
                producer.poll(0.01)
        if flush_every and index % flush_every == 0:
            producer.flush(60)
    remaining = producer.flush(60)
    elapsed = time.perf_counter() - started
    assert remaining == 0, f"{remaining} bare messages undelivered"
    return elapsed


@contextmanager
def broker(brokers: str | None) -> Iterator[str]:
    if brokers:
        yield brokers
        return
    with throwaway(TansuBroker, "bench-kafka-") as server:
        yield server.bootstrap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows per side per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--brokers", help="an existing cluster (default: start a Tansu broker)")
    parser.add_argument("--guarantee", default="at_least_once", choices=["at_least_once", "exactly_once"])
    parser.add_argument("--sides", default="bare,bare_epochs,sink,pipeline",
                        help="comma-separated subset of bare,bare_epochs,sink,pipeline,pipeline_alo (bare is always run)")
    args = parser.parse_args()
    chosen = ["bare", *(side for side in args.sides.split(",") if side != "bare")]

    batch_rows = parse_properties("kafka", {"brokers": "h:1", "topic": "t"}).batch_policy().max_rows
    batches = result_batches(args.rows, batch_rows)
    documents = [document for batch in batches for document in json_documents(batch)]
    encode_rate = max(len(documents) / encode_seconds(batches) for _ in range(3))  # the least disturbed pass
    with broker(args.brokers) as brokers:
        rates: dict[str, list[float]] = {side: [] for side in chosen}
        for round_no in range(args.rounds):
            for side in chosen if round_no % 2 == 0 else chosen[::-1]:
                topic = f"bench-{side}-{round_no}-{time.time_ns()}"
                create_topic(brokers, topic)
                if side == "bare":
                    seconds = run_bare(brokers, topic, documents)
                elif side == "bare_epochs":
                    seconds = run_bare(brokers, topic, documents, flush_every=flush_rows(batch_rows))
                elif side == "sink":
                    seconds = asyncio.run(run_sink(brokers, topic, batches, args.guarantee))
                elif side == "pipeline_alo":
                    seconds = asyncio.run(run_pipeline(brokers, topic, batches, "at_least_once"))
                else:
                    seconds = asyncio.run(run_pipeline(brokers, topic, batches, args.guarantee))
                rates[side].append(len(documents) / seconds)
    median = {side: statistics.median(values) for side, values in rates.items()}
    # Each side against the bare producer of the same round (the machine's load drifts between
    # rounds, and both sides of a round see about the same), then the median of those ratios.
    ratio = {side: statistics.median(r / b for r, b in zip(values, rates["bare"])) for side, values in rates.items()}
    bare = median["bare"]
    print(
        f"kafka: {len(documents)} rows x {args.rounds} alternating rounds, medians (ratios: per round, then "
        f"median); "
        f"sink writes of {batch_rows} rows, a flush every {flush_rows(batch_rows)} rows, {args.guarantee}; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    print(f"JSON encoding alone   {encode_rate:>10,.0f} rows/s  (batches of {batch_rows} rows)")
    print(f"bare producer         {bare:>10,.0f} msgs/s  (one flush at the end)")
    if "bare_epochs" in median:
        print(f"bare, flush as sink   {median['bare_epochs']:>10,.0f} msgs/s  (what waiting for the acks costs)")
    if "sink" in median:
        print(f"sink (Sink protocol)  {median['sink']:>10,.0f} rows/s  ratio sink/bare {ratio['sink']:.2f}"
              "  (no encoding ahead)")
    if "pipeline" in median:
        print(f"pipeline from stream  {median['pipeline']:>10,.0f} rows/s  ratio pipeline/bare {ratio['pipeline']:.2f}"
              "  (headline)")
    if "pipeline_alo" in median:
        print(f"pipeline, at_least_once {median['pipeline_alo']:>8,.0f} rows/s  ratio pipeline_alo/bare "
              f"{ratio['pipeline_alo']:.2f}")
    if "pipeline" in median and "pipeline_alo" in median:
        versus = statistics.median(g / a for g, a in zip(rates["pipeline"], rates["pipeline_alo"]))
        print(f"pipeline {args.guarantee} ÷ pipeline at_least_once: {versus:.2f} (per round, then median;"
              " goal for exactly_once: >= 0.8)")
    print("goal: ratio >= 0.7 and >= 100k rows/s")


if __name__ == "__main__":
    main()
