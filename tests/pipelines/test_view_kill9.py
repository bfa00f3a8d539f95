"""Materialized views survive a restart and a ``kill -9`` with the guarantee of sinks: the seed's
car query, one view keeping its results (no INTO) and one writing INTO a Kafka external stream,
the server killed mid-stream; afterwards every window row is there (compared with a one-shot
DuckDB computation over the same data)."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.crash.test_kill9 import BATCHES, CAR_QUERY, COLUMNS, car_key, expected, generate
from tests.kafka.kafka_support import consume
from tests.servers.process import running
from tests.servers.sinkflow import SinkflowServer
from tests.servers.tansu import TansuBroker

CAR_COLUMNS = ("cid string, speed_kmh float64, total_km float64, gas_percent float64, locked bool, in_use bool, "
               "time datetime64(3, 'UTC')")
RESULT_COLUMNS = ("time datetime64(3, 'UTC'), cid string, speed_kmh float64, total_km float64, gas_percent float64, "
                  "locked bool, in_use bool")


def sql(api: httpx.Client, text: str) -> dict[str, Any]:
    response = api.post("/api/v1beta2/queries", json={"sql": text})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def ingest(api: httpx.Client, batches: list[list[list[Any]]]) -> None:
    for rows in batches:
        api.post("/api/v1beta2/streams/cars/ingest", json={"columns": COLUMNS, "data": rows}).raise_for_status()


def kept(api: httpx.Client) -> list[dict[str, Any]]:
    return sql(api, "SELECT * FROM table(car_windows)")["rows"]  # type: ignore[no-any-return]


def test_views_survive_kill_9_mid_stream(tmp_path: Path, tansu_broker: TansuBroker) -> None:
    batches = generate()
    car_rows, _ = expected(batches)
    server = SinkflowServer(tmp_path / "data")
    with running(server):
        with server.client() as api:
            sql(api, f"CREATE STREAM cars ({CAR_COLUMNS}) SETTINGS event_time_column='time'")
            sql(api, f"CREATE EXTERNAL STREAM car_topic ({RESULT_COLUMNS}) SETTINGS type='kafka', "
                     f"brokers='{tansu_broker.bootstrap}', topic='car-windows-kill9'")
            sql(api, f"CREATE MATERIALIZED VIEW car_windows AS {CAR_QUERY}")
            sql(api, f"CREATE MATERIALIZED VIEW car_to_kafka INTO car_topic AS {CAR_QUERY}")
            ingest(api, batches[: BATCHES // 2])
            deadline = time.monotonic() + 30
            while not kept(api):
                assert time.monotonic() < deadline, "the view kept nothing before the crash"
                time.sleep(0.05)
        server.kill()
        server.start()
        with server.client() as api:
            ingest(api, batches[BATCHES // 2:])
            deadline = time.monotonic() + 60
            while {car_key(r) for r in kept(api)} < car_rows:
                assert time.monotonic() < deadline, "the view's results are incomplete"
                time.sleep(0.2)
            shown = {r["name"]: r["status"] for r in sql(api, "SHOW MATERIALIZED VIEWS")["rows"]}
            got_kept = Counter(car_key(r) for r in kept(api))
            # librdkafka gives up on a message after its message.timeout.ms (60 s), then the
            # runtime sends the epoch again: the guarantee holds within that bound.
            waited = time.monotonic()
            while api.get("/api/v1beta2/sinks/car_to_kafka").json()["stats"]["rows_delivered"] < len(car_rows):
                assert time.monotonic() - waited < 120, "the Kafka view did not deliver every row"
                time.sleep(0.2)
            waited = time.monotonic() - waited
            got_kafka = Counter(car_key(json.loads(r.value))
                                for r in consume(tansu_broker.bootstrap, "car-windows-kill9", len(car_rows)))
            kafka_status = api.get("/api/v1beta2/sinks/car_to_kafka").json()["stats"]
    assert shown == {"car_windows": "running", "car_to_kafka": "running"}
    assert set(got_kept) == car_rows
    assert sum(got_kept.values()) == len(car_rows), "a view's own stream is appended idempotently"
    assert set(got_kafka) == car_rows, f"{len(got_kafka)} of {len(car_rows)} rows in Kafka; the view: {kafka_status}"
    print(f"\nkill -9: {len(car_rows)} window rows kept and sent to Kafka; "
          f"{sum(got_kafka.values()) - len(car_rows)} sent twice (at-least-once); Kafka complete "
          f"{waited:.1f}s after the kept view")
