"""The seed's car query running as a sink into a real ClickHouse, through sinkflow's runtime.

What a user checks: the downsampled rows in the table, a server outage that loses nothing,
and rows ClickHouse can't take ending up in the sink's dead-letter stream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sinkflow.runtime.manager import SinkDefinition
from sinkflow.runtime.status import SinkState
from tests.clickhouse.car_pipeline import CARS, SEED_SQL, car_runtime, expected_windows, ingest
from tests.runtime.support import Runtime, eventually
from tests.servers.clickhouse import ClickHouseServer


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    async with car_runtime(tmp_path / "data") as rt:
        yield rt


def clickhouse_sink(server: ClickHouseServer, name: str, table: str, **props: Any) -> SinkDefinition:
    properties = {"table_name": table, "hosts": [server.address], "username": server.user, "password": server.password,
                  "engine": "MergeTree()", "suffix": "ORDER BY (cid, time)", **props}
    return SinkDefinition(name=name, sql=SEED_SQL, type="clickhouse", properties=properties)


def stored(server: ClickHouseServer, table: str) -> list[tuple[Any, ...]]:
    """The table's rows; none while the sink has not created it yet."""
    client = server.client()
    if not client.execute(f"EXISTS TABLE {table}")[0][0]:
        return []
    return client.execute(
        f"SELECT time, cid, speed_kmh, total_km, gas_percent, locked, in_use FROM {table} ORDER BY time, cid"
    )


async def test_the_seed_query_fills_a_clickhouse_table(
    runtime: Runtime, clickhouse_server: ClickHouseServer, table_name: str
) -> None:
    await runtime.sinks.create(clickhouse_sink(clickhouse_server, "car_stats", table_name))
    ingest(runtime, range(0, 20))
    expected = expected_windows(range(0, 20))
    assert len(expected) == 4 * CARS
    await eventually(lambda: len(stored(clickhouse_server, table_name)) >= len(expected), what="rows in ClickHouse")
    assert stored(clickhouse_server, table_name) == expected


async def test_a_server_outage_loses_no_row(
    runtime: Runtime, private_clickhouse_server: ClickHouseServer, table_name: str
) -> None:
    server = private_clickhouse_server
    record = await runtime.sinks.create(clickhouse_sink(server, "car_stats", table_name))
    ingest(runtime, range(0, 10))
    await eventually(lambda: len(stored(server, table_name)) == 2 * CARS, what="the first windows")

    server.stop()
    ingest(runtime, range(10, 20))
    status = runtime.sinks.status(record.id)
    await eventually(lambda: status.state is SinkState.RETRYING, what="the sink to retry")
    assert "unreachable" in status.last_error and server.password not in status.last_error

    server.start()
    expected = expected_windows(range(0, 20))
    await eventually(lambda: len(stored(server, table_name)) >= len(expected), timeout=40, what="every window")
    assert stored(server, table_name) == expected
    assert status.dead_lettered == 0


async def test_rows_the_table_cannot_take_go_to_the_dead_letter_stream(
    runtime: Runtime, clickhouse_server: ClickHouseServer, table_name: str
) -> None:
    clickhouse_server.client().execute(
        f"CREATE TABLE {table_name} (time DateTime, cid UInt32, speed_kmh Float64, total_km Float64, "
        "gas_percent Float64, locked UInt8, in_use UInt8) ENGINE = Memory"
    )
    record = await runtime.sinks.create(clickhouse_sink(clickhouse_server, "wrong_types", table_name))
    ingest(runtime, range(0, 10))  # readings up to 4.5 s close the windows ending at 2 s and 4 s
    expected = expected_windows(range(0, 10))
    assert len(expected) == 2 * CARS
    status = runtime.sinks.status(record.id)
    await eventually(lambda: status.dead_lettered == len(expected), what="every row dead-lettered")
    dead = runtime.store.get("wrong_types_dlq").table().to_pylist()
    documents = [json.loads(row["row"]) for row in dead]
    assert sorted((doc["time"], doc["cid"]) for doc in documents) == [
        (end.isoformat(timespec="milliseconds"), cid) for end, cid, *_ in expected
    ]
    assert all("cid" in row["error"] for row in dead)
    assert clickhouse_server.client().execute(f"SELECT count() FROM {table_name}") == [(0,)]
