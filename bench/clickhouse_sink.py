"""Rows/s into ClickHouse through the sink vs bare clickhouse-driver inserts, measured in one run.

Both sides insert the same car-query result rows into identical tables with the same rows per
INSERT. The tables use the Memory engine by default: a MergeTree part written per INSERT costs
both sides the same disk time and its background merges make the shared machine noisier, which
would hide the sink's own overhead (``--engine "MergeTree() ORDER BY (cid, time)"`` to see it). The sink starts from Arrow batches (as the runtime hands them over) and pays
for converting them; the bare client gets ready-made Python column lists (built outside the
timing), as a program holding its rows in Python would pass them. Rounds alternate between
the two and the median of each is reported, since the machine is shared.

    python bench/clickhouse_sink.py [--rows 50000] [--large-rows 200000] [--rounds 3] [--engine Memory] [--dsn clickhouse://…]

Without ``--dsn`` a throwaway clickhouse-server is started on 127.0.0.1 (tests/servers/clickhouse.py).
Goal: sink/bare ≥ 0.8 at batch_count 128.
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
from clickhouse_driver import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.servers

from sinkflow.sinks.base import SinkEnv, WriteContext  # noqa: E402
from sinkflow.sinks.clickhouse import ClickHouseSink  # noqa: E402
from sinkflow.sinks.registry import parse_properties  # noqa: E402
from tests.clickhouse.car_results import SCHEMA, car_batch  # noqa: E402
from tests.servers.clickhouse import ClickHouseServer  # noqa: E402

DDL = (
    "CREATE TABLE {table} (time DateTime('UTC'), cid String, speed_kmh Float64, total_km Float64, "
    "gas_percent Float64, locked UInt8, in_use UInt8, fee Decimal(10, 2), note Nullable(String)) ENGINE = {engine}"
)


def result_rows(count: int) -> pa.Table:
    """``count`` result rows of the car query (100 cars per window)."""
    batches = [car_batch(window, cars=100) for window in range(count // 100)]
    return pa.Table.from_batches(batches, schema=SCHEMA)


def batches_of(table: pa.Table, size: int) -> list[pa.RecordBatch]:
    return [batch for start in range(0, table.num_rows, size) for batch in table.slice(start, size).to_batches()]


async def run_sink(dsn: str, table: str, batches: list[pa.RecordBatch], batch_count: int) -> float:
    """Seconds to deliver every batch through the sink (open excluded, as the runtime opens once)."""
    # The table exists already: engine is required by the properties but not used.
    config = parse_properties("clickhouse", {"table_name": table, "dsn": dsn, "engine": "Memory", "batch_count": batch_count})
    sink = ClickHouseSink(config, SinkEnv("bench", "bench", SCHEMA))  # type: ignore[arg-type]
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


def run_bare(client: Client, table: str, columns: list[list[list[object]]]) -> float:
    """Seconds for plain columnar INSERTs of the same rows, one per batch."""
    sql = f"INSERT INTO {table} ({', '.join(SCHEMA.names)}) VALUES"
    started = time.perf_counter()
    for values in columns:
        client.execute(sql, [list(column) for column in values], columnar=True)
    return time.perf_counter() - started


@contextmanager
def server_dsn(dsn: str | None) -> Iterator[str]:
    if dsn:
        yield dsn
        return
    with tempfile.TemporaryDirectory(prefix="bench-clickhouse-") as directory:
        server = ClickHouseServer(Path(directory))
        server.start()
        try:
            yield server.dsn()
        finally:
            server.stop()


def measure(dsn: str, engine: str, rows: pa.Table, batch_count: int, rounds: int) -> tuple[float, float]:
    """Median rows/s of (sink, bare) at ``batch_count`` rows per INSERT."""
    client = Client.from_url(dsn)
    batches = batches_of(rows, batch_count)
    # The bare client's input: Python column lists (datetimes as datetime objects), prepared untimed.
    columns = [[batch.column(i).to_pylist() for i in range(batch.num_columns)] for batch in batches]
    sink_rates, bare_rates = [], []
    for round_no in range(rounds):
        # Alternate which side goes first, so neither always follows the other's leftovers.
        for side in ("bare", "sink") if round_no % 2 == 0 else ("sink", "bare"):
            table = f"bench_{side}_{batch_count}_{round_no}"
            client.execute(f"DROP TABLE IF EXISTS {table}")
            client.execute(DDL.format(table=table, engine=engine))
            if side == "bare":
                bare_rates.append(rows.num_rows / run_bare(client, table, columns))
            else:
                sink_rates.append(rows.num_rows / asyncio.run(run_sink(dsn, table, batches, batch_count)))
            stored = client.execute(f"SELECT count() FROM {table}")[0][0]
            assert stored == rows.num_rows, f"{table}: {stored} rows stored, {rows.num_rows} sent"
            client.execute(f"DROP TABLE {table}")
    client.disconnect()
    return statistics.median(sink_rates), statistics.median(bare_rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=50_000, help="rows per side per round at batch_count 128")
    parser.add_argument("--large-rows", type=int, default=200_000, help="rows per side per round at batch_count 10000")
    parser.add_argument("--engine", default="Memory", help="table engine of both sides' tables")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dsn", help="an existing server (default: start one)")
    args = parser.parse_args()

    with server_dsn(args.dsn) as dsn:
        version = Client.from_url(dsn).execute("SELECT version()")[0][0]
        print(f"ClickHouse {version}, ENGINE = {args.engine}; {args.rounds} alternating rounds, medians")
        results = {}
        for batch_count, count in ((128, args.rows), (10_000, args.large_rows)):
            sink, bare = measure(dsn, args.engine, result_rows(count), batch_count, args.rounds)
            results[batch_count] = sink
            print(f"batch_count={batch_count:>6}: {count} rows  sink {sink:>10,.0f} rows/s  "
                  f"bare driver {bare:>10,.0f} rows/s  ratio sink/bare {sink / bare:.2f} (goal >= 0.8)")
        print(f"sink at batch_count 10000 vs 128: {results[10_000] / results[128]:.1f}x the rows/s")


if __name__ == "__main__":
    main()
