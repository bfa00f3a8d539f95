"""The seed's car query running as a sink into a real Pulsar broker, through sinkflow's runtime."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sinkflow.runtime.manager import SinkDefinition
from tests.clickhouse.car_pipeline import SEED_SQL, car_runtime, expected_windows, ingest
from tests.runtime.support import Runtime, eventually
from tests.servers.pulsar import PulsarServer, consume


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    async with car_runtime(tmp_path / "data") as rt:
        yield rt


async def test_the_seed_query_publishes_one_json_message_per_result_row(
    runtime: Runtime, pulsar_server: PulsarServer, topic: str
) -> None:
    properties = {"topic": topic, "broker_url": pulsar_server.url, "auth_type": "", "message_key": "cid"}
    definition = SinkDefinition(name="car_feed", sql=SEED_SQL, type="pulsar", properties=properties)
    record = await runtime.sinks.create(definition)
    ingest(runtime, range(0, 20))
    expected = expected_windows(range(0, 20))
    status = runtime.sinks.status(record.id)
    await eventually(lambda: status.rows_delivered >= len(expected), what="every row acknowledged")

    messages = consume(pulsar_server, topic, len(expected))
    received = sorted(
        ((json.loads(m.data()), m.partition_key()) for m in messages), key=lambda pair: (pair[0]["time"], pair[0]["cid"])
    )
    assert [doc for doc, _ in received] == [
        {"time": end.isoformat(timespec="milliseconds"), "cid": cid, "speed_kmh": speed, "total_km": km,
         "gas_percent": gas, "locked": bool(locked), "in_use": bool(in_use)}
        for end, cid, speed, km, gas, locked, in_use in expected
    ]
    assert all(key == doc["cid"] for doc, key in received)
