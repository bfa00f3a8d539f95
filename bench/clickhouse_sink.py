"""Rows/s into ClickHouse through the sink vs bare clickhouse-driver inserts, measured in one run.

Three sides insert the same car-query result rows, with the same rows per INSERT, into three
identical tables:

* **sink** — ``ClickHouseSink.write`` of the Arrow batches the runtime hands over (it converts
  them to Python values and runs the INSERT in a worker thread);
* **bare** — ``Client.execute(..., columnar=True)`` with the rows as a Python program holds
  them (datetime objects, Decimals), prepared outside the timing;
* **limit** — the same bare call with exactly the values the sink hands the driver (times as
  epoch seconds), prepared outside the timing: sink/limit is the sink's own overhead.

The sides take turns batch by batch (the order rotating), so the shared machine's noise hits
all three alike. Tables use the Memory engine by default: a MergeTree part per INSERT costs
every side the same disk time and would hide the sink's overhead
(``--engine "MergeTree() ORDER BY (cid, time)"`` to include it).

    python bench/clickhouse_sink.py [--rows 30000] [--large-rows 200000] [--engine Memory] [--dsn clickhouse://…]

Without ``--dsn`` a throwaway clickhouse-server is started on 127.0.0.1 (tests/servers/clickhouse.py).
Goal: sink/bare ≥ 0.8; also compares batch_count 128 with 10,000.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
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
from tests.servers.process import throwaway  # noqa: E402

DDL = (
    "CREATE TABLE {table} (time DateTime('UTC'), cid String, speed_kmh Float64, total_km Float64, "
    "gas_percent Float64, locked UInt8, in_use UInt8, fee Decimal(10, 2), note Nullable(String)) ENGINE = {engine}"
)
SIDES = ("sink", "bare", "limit")


def batches_of(count: int, size: int) -> list[pa.RecordBatch]:
    """``count`` result rows of the car query (100 cars per window) in batches of ``size`` rows."""
    table = pa.Table.from_batches([car_batch(window, cars=100) for window in range(count // 100)], schema=SCHEMA)
    table = table.combine_chunks()  # one chunk, so that each slice is one batch of ``size`` rows
    return [batch for start in range(0, table.num_rows, size) for batch in table.slice(start, size).to_batches()]


async def measure(dsn: str, engine: str, batches: list[pa.RecordBatch]) -> dict[str, float]:
    """Rows/s of each side over the same batches, the sides taking turns batch by batch."""
    client = Client.from_url(dsn)
    tables = {side: f"bench_{side}_{time.time_ns()}" for side in SIDES}
    for table in tables.values():
        client.execute(DDL.format(table=table, engine=engine))
    table_types = [row[1] for row in client.execute(f"DESCRIBE TABLE {tables['limit']}")]
    inputs = {
        "bare": [[batch.column(i).to_pylist() for i in range(batch.num_columns)] for batch in batches],
        "limit": [
            [converter(field.type, ch_type)(batch.column(i)) for i, (field, ch_type) in enumerate(zip(SCHEMA, table_types))]
            for batch in batches
        ],
    }
    # The prepared inputs are millions of live objects; without freezing them, every garbage
    # collection the sink's fresh values trigger would walk them all (an artefact of the harness).
    gc.freeze()
    # The table exists already: engine is required by the properties but not used.
    config = parse_properties("clickhouse", {"table_name": tables["sink"], "dsn": dsn, "engine": "Memory"})
    sink = ClickHouseSink(config, SinkEnv("bench", "bench", SCHEMA))  # type: ignore[arg-type]
    await sink.open()
    sql = {side: f"INSERT INTO {tables[side]} ({', '.join(SCHEMA.names)}) VALUES" for side in ("bare", "limit")}
    spent = dict.fromkeys(SIDES, 0.0)
    offset = 0
    for n, batch in enumerate(batches):
        for side in SIDES[n % 3 :] + SIDES[: n % 3]:
            started = time.perf_counter()
            if side == "sink":
                await sink.write(batch, WriteContext("bench", 1, offset))
            else:
                # Copies: the driver converts the lists in place.
                client.execute(sql[side], [list(column) for column in inputs[side][n]], columnar=True)
            spent[side] += time.perf_counter() - started
        offset += batch.num_rows
    await sink.close()
    rows = sum(batch.num_rows for batch in batches)
    for side, table in tables.items():
        stored = client.execute(f"SELECT count() FROM {table}")[0][0]
        assert stored == rows, f"{side}: {stored} rows stored, {rows} sent"
        client.execute(f"DROP TABLE {table}")
    client.disconnect()
    gc.unfreeze()
    return {side: rows / seconds for side, seconds in spent.items()}


@contextmanager
def server_dsn(dsn: str | None) -> Iterator[str]:
    if dsn:
        yield dsn
        return
    with throwaway(ClickHouseServer, "bench-clickhouse-") as server:
        yield server.dsn()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=30_000, help="rows per side at batch_count 128")
    parser.add_argument("--large-rows", type=int, default=200_000, help="rows per side at batch_count 10000")
    parser.add_argument("--engine", default="Memory", help="table engine of the three tables")
    parser.add_argument("--dsn", help="an existing server (default: start one)")
    args = parser.parse_args()

    with server_dsn(args.dsn) as dsn:
        version = Client.from_url(dsn).execute("SELECT version()")[0][0]
        print(f"ClickHouse {version}, ENGINE = {args.engine}; sides interleaved batch by batch")
        sink_rates = {}
        for batch_count, count in ((128, args.rows), (10_000, args.large_rows)):
            rate = asyncio.run(measure(dsn, args.engine, batches_of(count, batch_count)))
            sink_rates[batch_count] = rate["sink"]
            print(f"batch_count={batch_count:>6}: {count} rows  sink {rate['sink']:>9,.0f} rows/s  "
                  f"bare {rate['bare']:>9,.0f} rows/s  limit {rate['limit']:>9,.0f} rows/s  "
                  f"ratio sink/bare {rate['sink'] / rate['bare']:.2f} (goal >= 0.8)  sink/limit {rate['sink'] / rate['limit']:.2f}")
        print(f"sink at batch_count 10000 vs 128: {sink_rates[10_000] / sink_rates[128]:.1f}x the rows/s")


if __name__ == "__main__":
    main()
