"""Messages/s to Pulsar through the sink vs bare async sends, measured in one run.

Both sides publish the same car-query result rows, one JSON document per message, with the
same producer settings (batching on, ``block_if_queue_full``) and wait until the broker
acknowledged every message. The sink starts from Arrow batches (as the runtime hands them
over) and pays for JSON encoding; the bare producer gets the documents ready-made (encoded
outside the timing). Rounds alternate between the two; medians are reported.

    python bench/pulsar_sink.py [--rows 100000] [--rounds 3] [--broker-url pulsar://…]

Without ``--broker-url`` a throwaway pulsar-lite broker is started on 127.0.0.1
(tests/servers/pulsar.py). Goal: sink/bare ≥ 0.7.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pulsar
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.servers

from sinkflow.sinks.base import SinkEnv, WriteContext  # noqa: E402
from sinkflow.sinks.encode import json_documents  # noqa: E402
from sinkflow.sinks.pulsar import PulsarSink  # noqa: E402
from sinkflow.sinks.registry import parse_properties  # noqa: E402
from tests.clickhouse.car_results import SCHEMA, car_batch  # noqa: E402
from tests.servers.pulsar import PulsarServer  # noqa: E402

QUIET = logging.getLogger("bench.pulsar")


def result_batches(count: int, size: int) -> list[pa.RecordBatch]:
    """``count`` result rows of the car query in batches of ``size`` rows (100 cars per window)."""
    table = pa.Table.from_batches([car_batch(window, cars=100) for window in range(count // 100)], schema=SCHEMA)
    return [batch for start in range(0, table.num_rows, size) for batch in table.slice(start, size).to_batches()]


async def run_sink(url: str, topic: str, batches: list[pa.RecordBatch]) -> float:
    """Seconds to write every batch and flush (open excluded: the runtime opens once)."""
    config = parse_properties("pulsar", {"topic": topic, "broker_url": url, "auth_type": ""})
    sink = PulsarSink(config, SinkEnv("bench", "bench", SCHEMA))  # type: ignore[arg-type]
    await sink.open()
    started = time.perf_counter()
    offset = 0
    for batch in batches:
        await sink.write(batch, WriteContext("bench", 1, offset))
        offset += batch.num_rows
    await sink.flush(1)
    elapsed = time.perf_counter() - started
    await sink.close()
    return elapsed


def run_bare(url: str, topic: str, documents: list[bytes]) -> float:
    """Seconds for send_async of every document plus waiting for every acknowledgement."""
    client = pulsar.Client(url, logger=QUIET)
    producer = client.create_producer(topic, batching_enabled=True, batching_max_publish_delay_ms=10, block_if_queue_full=True)
    done = threading.Semaphore(0)
    failures = []

    def callback(result: pulsar.Result, _msg_id: object) -> None:
        if result != pulsar.Result.Ok:
            failures.append(result)
        done.release()

    started = time.perf_counter()
    for document in documents:
        producer.send_async(document, callback)
    producer.flush()
    for _ in documents:
        done.acquire()
    elapsed = time.perf_counter() - started
    client.close()
    assert not failures, f"{len(failures)} bare sends failed: {failures[0]}"
    return elapsed


@contextmanager
def broker_url(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="bench-pulsar-") as directory:
        server = PulsarServer(Path(directory))
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="messages per side per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--broker-url", help="an existing broker (default: start pulsar-lite)")
    args = parser.parse_args()

    # The sink's write size is what its batch policy hands over.
    batch_rows = parse_properties("pulsar", {"topic": "t", "broker_url": "pulsar://h:1", "auth_type": ""}).batch_policy().max_rows
    batches = result_batches(args.rows, batch_rows)
    documents = [document for batch in batches for document in json_documents(batch)]
    with broker_url(args.broker_url) as url:
        sink_rates, bare_rates = [], []
        for round_no in range(args.rounds):
            for side in ("bare", "sink") if round_no % 2 == 0 else ("sink", "bare"):
                topic = f"persistent://public/default/bench-{side}-{round_no}-{time.time_ns()}"
                if side == "bare":
                    bare_rates.append(len(documents) / run_bare(url, topic, documents))
                else:
                    sink_rates.append(len(documents) / asyncio.run(run_sink(url, topic, batches)))
        sink, bare = statistics.median(sink_rates), statistics.median(bare_rates)
        print(f"pulsar: {len(documents)} messages x {args.rounds} alternating rounds, medians; sink writes of {batch_rows} rows")
        print(f"sink {sink:>10,.0f} msgs/s  bare async sends {bare:>10,.0f} msgs/s  ratio sink/bare {sink / bare:.2f} (goal >= 0.7)")


if __name__ == "__main__":
    main()
