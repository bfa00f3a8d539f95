"""Messages/s to Pulsar through the sink vs bare async sends, measured in one run.

Both sides publish the same car-query result rows, one JSON document per message, with the
same client and producer settings (batching on, ``block_if_queue_full``) and wait until the
broker acknowledged every message. The sink gets Arrow batches of its batch policy's size and
pays for JSON encoding; the bare producer gets the documents ready-made (encoded outside the
timing), sends them all asynchronously and flushes once. The sink runs two ways: "one flush"
(every batch written, one flush at the end: the runtime flushes a sink with asynchronous
acknowledgements at checkpoints, after many writes) and "flush per write" (the most demanding
pattern, each batch acknowledged before the next). Rounds rotate the order of the sides;
medians are reported.

    python bench/pulsar_sink.py [--rows 50000] [--rounds 5] [--broker-url pulsar://…]

Without ``--broker-url`` a throwaway pulsar-lite broker is started on 127.0.0.1
(tests/servers/pulsar.py). Goal: sink/bare ≥ 0.7.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
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
from sinkflow.sinks.pulsar import PUBLISH_DELAY_MS, PulsarConfig, PulsarSink  # noqa: E402
from sinkflow.sinks.registry import parse_properties  # noqa: E402
from tests.clickhouse.car_results import SCHEMA, car_batch  # noqa: E402
from tests.servers.process import throwaway  # noqa: E402
from tests.servers.pulsar import PulsarServer  # noqa: E402

def result_batches(count: int, size: int) -> list[pa.RecordBatch]:
    """``count`` result rows of the car query in batches of ``size`` rows (100 cars per window)."""
    table = pa.Table.from_batches([car_batch(window, cars=100) for window in range(count // 100)], schema=SCHEMA)
    table = table.combine_chunks()  # one chunk, so that each slice is one batch of ``size`` rows
    return [batch for start in range(0, table.num_rows, size) for batch in table.slice(start, size).to_batches()]


async def run_sink(url: str, topic: str, batches: list[pa.RecordBatch], flush_each: bool) -> float:
    """Seconds to deliver every batch (open excluded: the runtime opens once).

    ``flush_each``: each batch an epoch, written then flushed; otherwise every batch is
    written and one flush ends the run.
    """
    config = parse_properties("pulsar", {"topic": topic, "broker_url": url, "auth_type": ""})
    sink = PulsarSink(config, SinkEnv("bench", "bench", SCHEMA))  # type: ignore[arg-type]
    await sink.open()
    started = time.perf_counter()
    offset = 0
    for epoch, batch in enumerate(batches, start=1):
        await sink.write(batch, WriteContext("bench", epoch if flush_each else 1, offset))
        if flush_each:
            await sink.flush(epoch)
        offset += batch.num_rows
    await sink.flush(len(batches))
    elapsed = time.perf_counter() - started
    await sink.close()
    return elapsed


def max_pending() -> int:
    config = parse_properties("pulsar", {"topic": "t", "broker_url": "pulsar://h:1", "auth_type": ""})
    assert isinstance(config, PulsarConfig)
    return config.max_pending()


def run_bare(url: str, topic: str, documents: list[bytes]) -> float:
    """Seconds for send_async of every document plus waiting for every acknowledgement."""
    client = pulsar.Client(url, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn))  # as the sink does
    producer = client.create_producer(
        topic, batching_enabled=True, batching_max_publish_delay_ms=PUBLISH_DELAY_MS, block_if_queue_full=True,
        max_pending_messages=max_pending(),  # as the sink's producer
    )
    results: list[pulsar.Result] = []
    done = threading.Event()
    total = len(documents)

    def callback(result: pulsar.Result, _msg_id: object) -> None:
        # As little as a callback can do (list.append is atomic): the baseline is the client's speed.
        results.append(result)
        if len(results) == total:
            done.set()

    started = time.perf_counter()
    for document in documents:
        producer.send_async(document, callback)
    producer.flush()
    done.wait()
    elapsed = time.perf_counter() - started
    client.close()
    failures = [result for result in results if result != pulsar.Result.Ok]
    assert not failures, f"{len(failures)} bare sends failed: {failures[0]}"
    return elapsed


@contextmanager
def broker_url(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    with throwaway(PulsarServer, "bench-pulsar-") as server:
        yield server.url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=50_000, help="messages per side per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--broker-url", help="an existing broker (default: start pulsar-lite)")
    args = parser.parse_args()

    # The sink's write size is what its batch policy hands over.
    batch_rows = parse_properties("pulsar", {"topic": "t", "broker_url": "pulsar://h:1", "auth_type": ""}).batch_policy().max_rows
    batches = result_batches(args.rows, batch_rows)
    documents = [document for batch in batches for document in json_documents(batch)]
    sides = ("bare", "sink one flush", "sink flush per write")
    with broker_url(args.broker_url) as url:
        rates: dict[str, list[float]] = {side: [] for side in sides}
        for round_no in range(args.rounds):
            # Rotate the order, so no side always follows the same other side.
            for side in sides[round_no % 3 :] + sides[: round_no % 3]:
                topic = f"persistent://public/default/bench-{round_no}-{time.time_ns()}"
                if side == "bare":
                    seconds = run_bare(url, topic, documents)
                else:
                    seconds = asyncio.run(run_sink(url, topic, batches, flush_each=side == "sink flush per write"))
                rates[side].append(len(documents) / seconds)
        rate = {side: statistics.median(values) for side, values in rates.items()}
        print(f"pulsar: {len(documents)} messages x {args.rounds} rounds (order rotating), medians; "
              f"sink writes of {batch_rows} rows")
        print(f"bare async sends {rate['bare']:>9,.0f} msgs/s")
        for side in sides[1:]:
            print(f"{side:<21} {rate[side]:>9,.0f} msgs/s  ratio sink/bare {rate[side] / rate['bare']:.2f} (goal >= 0.7)")


if __name__ == "__main__":
    main()
