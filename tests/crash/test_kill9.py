"""A sink survives ``kill -9``: the server dies mid-stream, restarts, and the receiver still
gets every result row (compared with a one-shot DuckDB computation over the same data).

Rows of the epoch that was in flight may arrive twice (at-least-once); the test reports how
many did.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.servers.process import running
from tests.servers.sinkflow import SinkflowServer

CARS = 20
BATCHES = 60
STEP_MS = 250
START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)

CAR_QUERY = (
    "select window_end as time,cid,avg(speed_kmh) as speed_kmh,max(total_km) as total_km,"
    "avg(gas_percent) as gas_percent,min(locked) as locked,min(in_use) as in_use "
    "from tumble(cars,2s) group by cid, window_end"
)
FILTER_QUERY = "select cid, time, speed_kmh from cars where speed_kmh > 50"


def generate() -> list[list[list[Any]]]:
    """BATCHES ingest batches of one event per car, event time advancing STEP_MS a batch."""
    rng = random.Random(42)
    km = {f"c{i:02d}": rng.uniform(1000, 5000) for i in range(CARS)}
    batches = []
    for b in range(BATCHES):
        at = START + dt.timedelta(milliseconds=b * STEP_MS)
        rows = []
        for cid in km:
            speed = round(rng.uniform(0, 100), 2)
            km[cid] += speed * STEP_MS / 3_600_000
            rows.append([cid, speed, round(km[cid], 3), round(rng.uniform(5, 95), 2), speed == 0, speed > 0,
                         at.isoformat(timespec="milliseconds")])
        batches.append(rows)
    return batches


COLUMNS = ["cid", "speed_kmh", "total_km", "gas_percent", "locked", "in_use", "time"]


def expected(batches: list[list[list[Any]]]) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    rows = [row for batch in batches for row in batch]
    columns = {name: [r[i] for r in rows] for i, name in enumerate(COLUMNS)}
    columns["time"] = [dt.datetime.fromisoformat(t) for t in columns["time"]]
    table = pa.table(columns).set_column(6, "time", pa.array(columns["time"], pa.timestamp("ms", tz="UTC")))
    watermark = max(table["time"].to_pylist())
    con = duckdb.connect()
    con.register("cars", table)
    windows = con.execute(
        """
        select to_timestamp((epoch_ms(time) // 2000 + 1) * 2) as window_end, cid, avg(speed_kmh), max(total_km),
               avg(gas_percent), min(locked), min(in_use)
        from cars group by all having window_end <= ?
        """,
        [watermark],
    ).fetchall()
    car_rows = {(w.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds"), cid, round(s, 6), round(k, 6),
                 round(g, 6), locked, in_use) for w, cid, s, k, g, locked, in_use in windows}
    filtered = {(r[0], r[6], r[1]) for r in rows if r[1] > 50}
    return car_rows, filtered


def car_key(body: dict[str, Any]) -> tuple[Any, ...]:
    at = dt.datetime.fromisoformat(body["time"]).astimezone(dt.timezone.utc).isoformat(timespec="milliseconds")
    return (at, body["cid"], round(body["speed_kmh"], 6), round(body["total_km"], 6), round(body["gas_percent"], 6),
            body["locked"], body["in_use"])


def filter_key(body: dict[str, Any]) -> tuple[Any, ...]:
    at = dt.datetime.fromisoformat(body["time"]).astimezone(dt.timezone.utc).isoformat(timespec="milliseconds")
    return (body["cid"], at, body["speed_kmh"])


def test_kill_9_mid_stream_loses_no_result_row(tmp_path: Path, httpserver: HTTPServer) -> None:
    received: dict[str, list[dict[str, Any]]] = {"/cars": [], "/fast": []}
    lock = threading.Lock()

    def record(request: Request) -> Response:
        with lock:
            received[request.path].append(json.loads(request.get_data()))
        return Response("ok")

    httpserver.expect_request("/cars").respond_with_handler(record)
    httpserver.expect_request("/fast").respond_with_handler(record)
    batches = generate()
    with running(SinkflowServer(tmp_path / "data")) as server:
        with server.client() as api:
            api.post("/api/v1beta2/queries", json={"sql": (
                "CREATE STREAM cars (cid string, speed_kmh float64, total_km float64, gas_percent float64, "
                "locked bool, in_use bool, time datetime64(3, 'UTC')) SETTINGS event_time_column='time'")}
            ).raise_for_status()
            for name, query in (("cars", CAR_QUERY), ("fast", FILTER_QUERY)):
                api.post("/api/v1beta2/sinks", json={"name": name, "type": "webhook", "sql": query,
                                                     "properties": {"url": httpserver.url_for(f"/{name}")}}
                         ).raise_for_status()
            for rows in batches[: BATCHES // 2]:
                api.post("/api/v1beta2/streams/cars/ingest", json={"columns": COLUMNS, "data": rows}).raise_for_status()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (received["/cars"] and len(received["/fast"]) > 50):
            time.sleep(0.05)
        assert received["/cars"] and received["/fast"], "the sinks delivered nothing before the crash"
        server.kill()
        before_crash = {path: len(bodies) for path, bodies in received.items()}
        server.start()
        with server.client() as api:
            for rows in batches[BATCHES // 2:]:
                api.post("/api/v1beta2/streams/cars/ingest", json={"columns": COLUMNS, "data": rows}).raise_for_status()
        car_rows, fast_rows = expected(batches)

        def complete() -> bool:
            with lock:
                return ({car_key(b) for b in received["/cars"]} >= car_rows
                        and {filter_key(b) for b in received["/fast"]} >= fast_rows)

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not complete():
            time.sleep(0.1)

    got_cars = Counter(car_key(b) for b in received["/cars"])
    got_fast = Counter(filter_key(b) for b in received["/fast"])
    assert set(got_cars) == car_rows, f"missing {len(car_rows - set(got_cars))}, unexpected {len(set(got_cars) - car_rows)}"
    assert set(got_fast) == fast_rows, f"missing {len(fast_rows - set(got_fast))}"
    duplicates = sum(n - 1 for n in got_cars.values()) + sum(n - 1 for n in got_fast.values())
    print(f"\nkill -9 after {before_crash}: {len(car_rows)} window rows and {len(fast_rows)} filtered rows "
          f"all arrived; {duplicates} duplicate(s) re-sent from the unacknowledged epoch")
