"""Materialized views survive a restart and a ``kill -9`` with the guarantee of sinks: the seed's
car query, one view keeping its results (no INTO) and one writing INTO a Kafka external stream,
the server killed mid-stream; afterwards every window row is there (compared with a one-shot
DuckDB computation over the same data).

The two views are two pipelines: neither waits for the other, so the Kafka view may acknowledge
its last rows a moment after the kept view shows them (it opens a producer after a restart, and
waits for the broker's acknowledgements). A server stopped in that moment cancels the Kafka view
with rows unacknowledged; they are sent again after the next start, not before. The tests read
the topic only once the view says every row is acknowledged, and one test stops the server in
exactly that moment, on purpose."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.crash.test_kill9 import BATCHES, CAR_QUERY, COLUMNS, car_key, expected, generate
from tests.kafka.kafka_support import consume
from tests.servers.chaos_proxy import ChaosProxy
from tests.servers.process import running
from tests.servers.sinkflow import SinkflowServer
from tests.servers.tansu import TansuBroker, proxied_broker  # noqa: F401 - fixture

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


def create_kafka_view(api: httpx.Client, brokers: str, topic: str) -> None:
    """The stream ``cars``, the Kafka external stream ``car_topic`` and the view ``car_to_kafka``
    writing the car query's windows into it."""
    sql(api, f"CREATE STREAM cars ({CAR_COLUMNS}) SETTINGS event_time_column='time'")
    sql(api, f"CREATE EXTERNAL STREAM car_topic ({RESULT_COLUMNS}) SETTINGS type='kafka', "
             f"brokers='{brokers}', topic='{topic}'")
    sql(api, f"CREATE MATERIALIZED VIEW car_to_kafka INTO car_topic AS {CAR_QUERY}")


def kafka_stats(api: httpx.Client) -> dict[str, Any]:
    return api.get("/api/v1beta2/sinks/car_to_kafka").json()["stats"]  # type: ignore[no-any-return]


def kafka_acknowledged(api: httpx.Client, rows: int) -> bool:
    """Whether the Kafka view's first ``rows`` output rows are acknowledged by the broker. The
    counter is checkpointed with the query's state, so after a restart it counts each output
    row once, also one sent again (at-least-once)."""
    return int(kafka_stats(api)["rows_delivered"]) >= rows


def test_views_survive_kill_9_mid_stream(tmp_path: Path, tansu_broker: TansuBroker) -> None:
    batches = generate()
    car_rows, _ = expected(batches)
    server = SinkflowServer(tmp_path / "data")
    with running(server):
        with server.client() as api:
            create_kafka_view(api, tansu_broker.bootstrap, "car-windows-kill9")
            sql(api, f"CREATE MATERIALIZED VIEW car_windows AS {CAR_QUERY}")
            ingest(api, batches[: BATCHES // 2])
            deadline = time.monotonic() + 30
            while not kept(api):
                assert time.monotonic() < deadline, "the view kept nothing before the crash"
                time.sleep(0.05)
        server.kill()
        server.start()
        with server.client() as api:
            ingest(api, batches[BATCHES // 2:])
            # Both views finish within the one deadline: the Kafka view's results are not
            # complete when the kept view's are (see the module docstring).
            deadline = time.monotonic() + 60
            while {car_key(r) for r in kept(api)} < car_rows:
                assert time.monotonic() < deadline, "the view's results are incomplete"
                time.sleep(0.2)
            kept_at = time.monotonic()
            while not kafka_acknowledged(api, len(car_rows)):
                assert time.monotonic() < deadline, f"the Kafka view did not deliver every row: {kafka_stats(api)}"
                time.sleep(0.05)
            waited = time.monotonic() - kept_at
            shown = {r["name"]: r["status"] for r in sql(api, "SHOW MATERIALIZED VIEWS")["rows"]}
            got_kept = Counter(car_key(r) for r in kept(api))
            got_kafka = Counter(car_key(json.loads(r.value))
                                for r in consume(tansu_broker.bootstrap, "car-windows-kill9", len(car_rows)))
            kafka_status = kafka_stats(api)
    assert shown == {"car_windows": "running", "car_to_kafka": "running"}
    assert set(got_kept) == car_rows
    assert sum(got_kept.values()) == len(car_rows), "a view's own stream is appended idempotently"
    assert set(got_kafka) == car_rows, f"{len(got_kafka)} of {len(car_rows)} rows in Kafka; the view: {kafka_status}"
    print(f"\nkill -9: {len(car_rows)} window rows kept and sent to Kafka; "
          f"{sum(got_kafka.values()) - len(car_rows)} sent twice (at-least-once); Kafka complete "
          f"{waited:.1f}s after the kept view")


def test_a_view_stopped_before_kafka_acknowledged_its_rows_sends_them_after_the_restart(
        tmp_path: Path, proxied_broker: tuple[TansuBroker, int]) -> None:
    """The moment the kill -9 test once stopped the server in, forced: rows written to the
    producer and not acknowledged (the path to the broker holds every byte), then a clean stop,
    which drops them with the producer. The view's checkpoint is older than those rows, so after
    the restart the view sends them again and the topic holds every window row."""
    broker, proxy_port = proxied_broker
    batches = generate()
    car_rows, _ = expected(batches)
    first_rows, _ = expected(batches[: BATCHES // 2])  # the windows the first half closes
    server = SinkflowServer(tmp_path / "data")
    with ChaosProxy(broker.port, port=proxy_port) as proxy:
        with running(server):
            with server.client() as api:
                create_kafka_view(api, f"127.0.0.1:{proxy_port}", "car-windows-stopped")
                ingest(api, batches[: BATCHES // 2])
                deadline = time.monotonic() + 60
                while not kafka_acknowledged(api, len(first_rows)):
                    assert time.monotonic() < deadline, f"the first windows were not delivered: {kafka_stats(api)}"
                    time.sleep(0.05)
                proxy.set(blackhole=True)
                ingest(api, batches[BATCHES // 2:])
                # rows_emitted counts the rows handed to the producer: later windows are written,
                # and none of them can have reached the broker.
                while kafka_stats(api)["rows_emitted"] <= len(first_rows):
                    assert time.monotonic() < deadline, f"the Kafka view wrote nothing more: {kafka_stats(api)}"
                    time.sleep(0.05)
            stopping = server.process
            assert stopping is not None
        assert stopping.returncode != -signal.SIGKILL, "the server did not stop within its grace: it was killed"
        proxy.cut()  # the bytes it held never reach the broker: only a resend can deliver those rows
        proxy.heal()
        with running(server), server.client() as api:
            deadline = time.monotonic() + 60
            while not kafka_acknowledged(api, len(car_rows)):
                assert time.monotonic() < deadline, f"the Kafka view did not deliver every row: {kafka_stats(api)}"
                time.sleep(0.05)
        # Through the proxy: the broker's metadata sends every client there.
        got = Counter(car_key(json.loads(r.value)) for r in consume(broker.bootstrap, "car-windows-stopped",
                                                                     len(car_rows)))
    assert set(got) == car_rows, f"{len(got)} of {len(car_rows)} rows in Kafka"
