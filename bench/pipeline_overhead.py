"""Per-row cost of the engine and runtime for a pass-through query, without any destination, in one run.

The kafka benchmark's headline side (``bench/kafka_sink.py`` "pipeline") appends the car
results to a stream and runs a sink on ``select <its 9 columns> from car_results``. This runs
the same data through the same code with a sink that only counts rows (it overrides ``flush``,
as the Kafka sink does, so the runtime holds rows until a flush), and splits the time:

* ``append``   — appending the rows to the stream, ``--ingest`` rows per append (the stream log);
* ``read``     — reading them back from the log, as a query step does;
* ``engine``   — running the query over them (``QueryExecution.step``, including the read);
* ``batching`` — cutting the query's output into write batches (``Batcher``, ``batch_count`` rows);
* ``pipeline`` — the whole thing as the kafka benchmark times it: from the first append until the
  sink's status counts every row delivered (runtime ``Pipeline._pump``: steps, batching, writes,
  flushes, status, checkpoints).

The ratio printed is the pipeline's rate over the bare loop's (the bare loop: append the rows,
then hand the same batches to the counting sink's ``write``): the share of that limit the
engine and runtime keep. Each side runs ``--rounds`` times; the best round counts (the machine
is shared). ``--query`` measures another query on ``car_results`` that keeps every row (a WHERE
makes the engine run DuckDB; a plain column pick does not).

    python bench/pipeline_overhead.py [--rows 200000] [--ingest 1000] [--rounds 5] [--profile]
                                      [--query "select … from car_results where …"]

``--profile`` prints a cProfile of one pipeline run (the engine step then runs on the event loop
thread, so the profile sees it).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.clickhouse

from sinkflow.catalog import Catalog, SinkRecord  # noqa: E402
from sinkflow.engine import Engine  # noqa: E402
from sinkflow.engine import execution as engine_execution
from sinkflow.runtime.batching import Batcher  # noqa: E402
from sinkflow.runtime.dead_letter import DeadLetters  # noqa: E402
from sinkflow.runtime.encode_ahead import EncodeAhead  # noqa: E402
from sinkflow.runtime.pipeline import Pipeline, RuntimeSettings  # noqa: E402
from sinkflow.sinks.base import Sink, WriteContext  # noqa: E402
from sinkflow.sinks.config import SinkConfig  # noqa: E402
from sinkflow.sinks.registry import parse_properties  # noqa: E402
from sinkflow.streams.store import Stream, StreamSettings, StreamStore  # noqa: E402
from sinkflow.streams.types import Column, from_arrow  # noqa: E402
from tests.clickhouse.car_results import SCHEMA, car_batch  # noqa: E402

QUERY = f"select {', '.join(SCHEMA.names)} from car_results"
#: The Kafka sink's properties: its batch policy is the one measured.
KAFKA_PROPERTIES = {"brokers": "127.0.0.1:9", "topic": "bench"}


class CountingSink(Sink):
    """Counts rows; acknowledges them at ``flush`` (as the Kafka sink does)."""

    config_class = SinkConfig

    def __init__(self) -> None:
        self.rows = 0

    async def open(self) -> None:
        return None

    async def write(self, batch: pa.RecordBatch, ctx: WriteContext) -> None:
        self.rows += batch.num_rows

    async def flush(self, epoch: int) -> None:
        return None

    async def close(self) -> None:
        return None


def ingest_batches(rows: int, size: int) -> list[pa.RecordBatch]:
    """``rows`` car result rows (100 cars per window) in appends of ``size`` rows."""
    table = pa.Table.from_batches([car_batch(window, cars=100) for window in range(rows // 100)], schema=SCHEMA)
    table = table.combine_chunks()
    return [batch for start in range(0, table.num_rows, size) for batch in table.slice(start, size).to_batches()]


class Workspace:
    """A fresh store with the ``car_results`` stream, an engine and a catalog in a temporary directory."""

    def __init__(self) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="bench-pipeline-")
        path = Path(self._directory.name)
        self.store = StreamStore(path)
        self.catalog = Catalog(path)
        self.engine = Engine(self.store)
        columns = [Column(f.name, from_arrow(f.type)) for f in SCHEMA]
        self.stream: Stream = self.store.create("car_results", columns, StreamSettings())

    def close(self) -> None:
        self.catalog.close()
        self.store.close()
        self._directory.cleanup()


def append_all(stream: Stream, batches: list[pa.RecordBatch]) -> None:
    for batch in batches:
        stream.append_batch(batch)


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


async def stages(batches: list[pa.RecordBatch], config: SinkConfig, query: str) -> dict[str, float]:
    """Seconds of each stage run alone, one after the other, on one fresh stream."""
    space = Workspace()
    try:
        total = sum(b.num_rows for b in batches)
        seconds = {"append": timed(lambda: append_all(space.stream, batches))}
        seconds["read"] = timed(lambda: space.stream.read(0, total))
        execution = space.engine.start(space.engine.plan(query.replace("from car_results", "from table(car_results)")))
        outputs: list[pa.RecordBatch] = []
        started = time.perf_counter()
        while not execution.finished:
            outputs.extend(await execution.step(0))
        seconds["engine"] = time.perf_counter() - started
        execution.close()
        assert sum(b.num_rows for b in outputs) == total, "the query must keep every row"
        batcher = Batcher(config.batch_policy(), outputs[0].schema)

        def batching() -> None:
            for batch in outputs:
                batcher.add(batch)
                while batcher.due():
                    batcher.take()

        seconds["batching"] = timed(batching)
        return seconds
    finally:
        space.close()


async def bare(batches: list[pa.RecordBatch], config: SinkConfig) -> float:
    """Seconds to append the rows, then write the same batches to the counting sink."""
    space = Workspace()
    try:
        sink = CountingSink()
        size = config.batch_policy().max_rows
        started = time.perf_counter()
        append_all(space.stream, batches)
        for batch in batches:
            for start in range(0, batch.num_rows, size):
                await sink.write(batch.slice(start, size), WriteContext("bench", 0))
        await sink.flush(0)
        return time.perf_counter() - started
    finally:
        space.close()


async def pipeline(batches: list[pa.RecordBatch], config: SinkConfig, query: str,
                   wrap: Callable[[Awaitable[None]], Awaitable[None]] | None = None) -> float:
    """Seconds from the first append until the pipeline's status counts every result row delivered."""
    space = Workspace()
    record = SinkRecord(id="bench", name="bench", description="", sql=query, type="kafka", properties={})
    runner = Pipeline(record, space.engine, space.store, space.catalog, RuntimeSettings())
    execution = space.engine.start(space.engine.plan(query))
    dead = DeadLetters(space.store, record.name)
    dead.ensure()
    runner._running.set()
    policy = config.batch_policy()
    # A sink without encode(): nothing is encoded ahead; the runtime's own flush bound.
    pump = runner._pump(execution, CountingSink(), dead, EncodeAhead(Batcher(policy, execution.schema), None, 1),
                        config.retry_policy(), policy.flush_rows)
    task = asyncio.ensure_future(wrap(pump) if wrap else pump)
    try:
        # Every row passes the queries measured (a WHERE, if any, must keep them all).
        total = sum(b.num_rows for b in batches)
        # As in bench/kafka_sink.py: the pump runs idle for a second before the clock starts.
        await asyncio.sleep(1.0)
        started = time.perf_counter()
        append_all(space.stream, batches)
        while runner.status.rows_delivered < total:
            await asyncio.sleep(0.001)
        return time.perf_counter() - started
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        execution.close()
        space.close()


async def profiled(pump: Awaitable[None]) -> None:
    profile = cProfile.Profile()
    profile.enable()
    try:
        await pump
    finally:
        profile.disable()
        pstats.Stats(profile).sort_stats("cumulative").print_stats(35)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--ingest", type=int, default=1000, help="rows per append")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one pipeline run")
    parser.add_argument("--query", default=QUERY, help="a query on car_results that keeps every row")
    args = parser.parse_args()
    config = parse_properties("kafka", KAFKA_PROPERTIES)
    batches = ingest_batches(args.rows, args.ingest)
    rows = sum(b.num_rows for b in batches)
    if args.profile:
        engine_execution.THREAD_ROWS = 1 << 62  # keep the step on the profiled thread
        asyncio.run(pipeline(batches, config, args.query, wrap=profiled))
        return
    best: dict[str, float] = {}
    runs: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        measured = asyncio.run(stages(batches, config, args.query))
        measured["bare"] = asyncio.run(bare(batches, config))
        measured["pipeline"] = asyncio.run(pipeline(batches, config, args.query))
        for side, seconds in measured.items():
            best[side] = min(best.get(side, seconds), seconds)
            runs.setdefault(side, []).append(seconds)
    print(f"{args.query!r}: {rows} rows, appends of {args.ingest} rows, write batches of "
          f"{config.batch_policy().max_rows} rows; best of {args.rounds} rounds (us/row; every round)")
    for side in ("append", "read", "engine", "batching", "bare", "pipeline"):
        every = " ".join(f"{s * 1e6 / rows:.3f}" for s in runs[side])
        print(f"{side:<9} {best[side] * 1e6 / rows:7.3f} us/row  ({every})")
    overhead = (best["pipeline"] - best["bare"]) * 1e6 / rows
    print(f"pipeline {rows / best['pipeline']:,.0f} rows/s, bare {rows / best['bare']:,.0f} rows/s; "
          f"runtime overhead {overhead:.3f} us/row; ratio pipeline/bare {best['bare'] / best['pipeline']:.2f}")


if __name__ == "__main__":
    main()
