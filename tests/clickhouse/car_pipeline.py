"""The seed's car query run by sinkflow's runtime, for the ClickHouse and Pulsar pipeline tests:
a runtime with the ``car_live_data`` stream, readings to ingest, and the result rows
those readings must produce (computed here independently of the engine).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import statistics
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sinkflow.streams.demo import CAR_COLUMNS, CAR_STREAM
from sinkflow.streams.store import StreamSettings
from tests.runtime.support import Runtime, open_runtime

SEED_SQL = """select window_end as time,cid,avg(speed_kmh) as speed_kmh,max(total_km) as total_km,
avg(gas_percent) as gas_percent,min(locked) as locked,min(in_use) as in_use
from tumble(car_live_data,2s) group by cid, window_end"""
T0 = dt.datetime(2022, 1, 23, 10, 0, 0, tzinfo=dt.timezone.utc)
CARS = 3


@contextlib.asynccontextmanager
async def car_runtime(data: Path) -> AsyncIterator[Runtime]:
    """sinkflow's runtime over real streams, engine and catalog under ``data``, with the
    ``car_live_data`` stream; stopped on leaving the block."""
    async with open_runtime(data) as rt:
        rt.store.create(CAR_STREAM, CAR_COLUMNS, StreamSettings(event_time_column="time"))
        yield rt


def readings(steps: range) -> list[list[Any]]:
    """One reading per car every 0.5 s (step i at T0 + i/2 s); values exact in float32."""
    return [
        [f"c{car}", 40.0 + step + car, 1000.0 + 2 * step, 80.0 - step / 2, step % 4 == 0, car != 1,
         T0 + dt.timedelta(milliseconds=500 * step)]
        for step in steps
        for car in range(CARS)
    ]


def ingest(rt: Runtime, steps: range) -> None:
    names = [column.name for column in CAR_COLUMNS]
    rt.store.get(CAR_STREAM).append_rows(names, readings(steps))


def expected_windows(steps: range) -> list[tuple[Any, ...]]:
    """The seed query's rows for the windows the readings closed (a window closes once a later
    reading's time reaches its end), as (time, cid, speed_kmh, total_km, gas_percent, locked, in_use)."""
    rows = readings(steps)
    watermark = max(row[6] for row in rows)
    windows: dict[tuple[dt.datetime, str], list[list[Any]]] = {}
    for row in rows:
        end = T0 + dt.timedelta(seconds=2 * ((row[6] - T0).total_seconds() // 2 + 1))
        if end <= watermark:
            windows.setdefault((end, row[0]), []).append(row)
    return sorted(
        (end, cid, statistics.mean(r[1] for r in group), max(r[2] for r in group),
         statistics.mean(r[3] for r in group), int(min(r[4] for r in group)), int(min(r[5] for r in group)))
        for (end, cid), group in windows.items()
    )
