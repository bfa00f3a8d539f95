"""Rows/s into ClickHouse through the sink vs bare clickhouse-driver inserts, measured in one run.

Both sides insert the same car-query result rows into identical tables with the same rows per
INSERT. The tables use the Memory engine by default: a MergeTree part written per INSERT costs
both sides the same disk time and its background merges make the shared machine noisier, which
would hide the sink's own overhead (``--engine "MergeTree() ORDER BY (cid, time)"`` to see it). The sink starts from Arrow batches (as the runtime hands them over) and pays
for converting them. Two bare baselines get ready-made Python column lists (built outside the
timing): "bare" holds the rows as a Python program would (datetime objects, Decimals), and
"limit" holds exactly the values the sink hands the driver (times as epoch seconds), so
sink/limit is the sink's own overhead (conversion from Arrow, the hop to a worker thread).
Rounds rotate the order of the three sides and the median of each is reported, since the
machine is shared.

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
from sinkflow.sinks.clickhouse import ClickHouseSink, converter  # noqa: E402
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
    """Seconds for plain columnar INSERTs of the same rows, one per batch (copies: the driver
    converts the lists in place)."""
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


def measure(dsn: str, engine: str, rows: pa.Table, batch_count: int, rounds: int) -> dict[str, float]:
    """Median rows/s of each side (sink, bare, limit) at ``batch_count`` rows per INSERT."""
    client = Client.from_url(dsn)
    batches = batches_of(rows, batch_count)
    client.execute(DDL.format(table="bench_types", engine=engine))
    table_types = [row[1] for row in client.execute("DESCRIBE TABLE bench_types")]
    client.execute("DROP TABLE bench_types")
    inputs = {
        "bare": [[batch.column(i).to_pylist() for i in range(batch.num_columns)] for batch in batches],
        "limit": [
            [converter(field.type, ch_type)(batch.column(i)) for i, (field, ch_type) in enumerate(zip(SCHEMA, table_types))]
            for batch in batches
        ],
    }
    rates: dict[str, list[float]] = {"sink": [], "bare": [], "limit": []}
    sides = list(rates)
    for round_no in range(rounds):
        # Rotate the order, so no side always follows the same other side's leftovers.
        for side in sides[round_no % 3 :] + sides[: round_no % 3]:
            table = f"bench_{side}_{batch_count}_{round_no}"
            client.execute(f"DROP TABLE IF EXISTS {table}")
            client.execute(DDL.format(table=table, engine=engine))
            if side == "sink":
                seconds = asyncio.run(run_sink(dsn, table, batches, batch_count))
            else:
                seconds = run_bare(client, table, inputs[side])
            rates[side].append(rows.num_rows / seconds)
            stored = client.execute(f"SELECT count() FROM {table}")[0][0]
            assert stored == rows.num_rows, f"{table}: {stored} rows stored, {rows.num_rows} sent"
            client.execute(f"DROP TABLE {table}")
    client.disconnect()
    return {side: statistics.median(values) for side, values in rates.items()}


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
        sink_rates = {}
        for batch_count, count in ((128, args.rows), (10_000, args.large_rows)):
            rate = measure(dsn, args.engine, result_rows(count), batch_count, args.rounds)
            sink_rates[batch_count] = rate["sink"]
            print(f"batch_count={batch_count:>6}: {count} rows  sink {rate['sink']:>9,.0f} rows/s  "
                  f"bare {rate['bare']:>9,.0f} rows/s  limit {rate['limit']:>9,.0f} rows/s  "
                  f"ratio sink/bare {rate['sink'] / rate['bare']:.2f} (goal >= 0.8)  sink/limit {rate['sink'] / rate['limit']:.2f}")
        print(f"sink at batch_count 10000 vs 128: {sink_rates[10_000] / sink_rates[128]:.1f}x the rows/s")


if __name__ == "__main__":
    main()
