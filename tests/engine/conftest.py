"""Fixtures for the engine tests: a real StreamStore in a temporary directory, the car streams, helpers."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from sinkflow.engine import Engine, QueryExecution
from sinkflow.streams.store import Stream, StreamStore
from sinkflow.streams.types import Column, parse_type

CAR_COLUMNS = [("cid", "string"), ("speed_kmh", "float64"), ("total_km", "float64"), ("gas_percent", "float64"),
               ("locked", "bool"), ("in_use", "bool")]
DIM_COLUMNS = [("cid", "string"), ("license_plate", "string"), ("model", "string")]
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
SEED_QUERY = (
    "select window_end as time,cid,avg(speed_kmh) as speed_kmh,max(total_km) as total_km, "
    "avg(gas_percent) as gas_percent,min(locked) as locked,min(in_use) as in_use "
    "from tumble(car_live_data,2s) group by cid, window_end"
)


class ManualClock:
    """A processing-time clock (seconds) that moves only when the test calls :meth:`advance`."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StreamStore]:
    s = StreamStore(tmp_path / "data")
    yield s
    s.close()


@pytest.fixture
def engine(store: StreamStore, clock: ManualClock) -> Engine:
    """The queries' timers read the test's clock, so their timing is asserted exactly at any machine load."""
    return Engine(store, clock)


@pytest.fixture
def cars(store: StreamStore) -> Stream:
    return store.create("car_live_data", [Column(n, parse_type(t)) for n, t in CAR_COLUMNS])


@pytest.fixture
def dims(store: StreamStore) -> Stream:
    return store.create("dim_car_info", [Column(n, parse_type(t)) for n, t in DIM_COLUMNS])


def car_rows(seed: int, n: int, keys: int = 5, start_ms: int = 0, span_ms: int = 20_000) -> list[dict]:
    """``n`` car events with distinct event times spread over ``span_ms`` from T0 + ``start_ms``, sorted by time."""
    rnd = random.Random(seed)
    offsets = sorted(rnd.sample(range(span_ms), n))
    return [
        {
            "cid": f"c{rnd.randrange(keys)}",
            "speed_kmh": round(rnd.uniform(0, 120), 3),
            "total_km": round(rnd.uniform(0, 5000), 1),
            "gas_percent": round(rnd.uniform(0, 100), 2),
            "locked": rnd.random() < 0.3,
            "in_use": rnd.random() < 0.7,
            "_tp_time": T0 + timedelta(milliseconds=start_ms + off),
        }
        for off in offsets
    ]


def disorder(rows: list[dict], seed: int, max_ms: int) -> list[dict]:
    """The rows reordered so no row arrives more than ``max_ms`` of event time after a newer one."""
    rnd = random.Random(seed)
    keyed = sorted(rows, key=lambda r: r["_tp_time"] + timedelta(milliseconds=rnd.uniform(0, max_ms)))
    return keyed


def to_batch(rows: list[dict]) -> pa.RecordBatch:
    schema = pa.schema([pa.field(n, parse_type(t).arrow) for n, t in CAR_COLUMNS]
                       + [pa.field("_tp_time", pa.timestamp("ms", tz="UTC"))])
    return pa.RecordBatch.from_pylist(rows, schema=schema)


def append_in_batches(stream: Stream, rows: list[dict], size: int) -> None:
    for i in range(0, len(rows), size):
        stream.append_batch(to_batch(rows[i:i + size]))


async def drain(execution: QueryExecution, max_steps: int = 1000) -> list[dict]:
    """Step until the execution has no lag; every output batch must match the declared schema."""
    out: list[dict] = []
    for _ in range(max_steps):
        for batch in await execution.step(0):
            assert batch.schema == execution.schema
            out.extend(batch.to_pylist())
        if execution.lag() == 0 or execution.finished:
            break
    return out


async def emitted_after(execution: QueryExecution, clock: ManualClock, seconds: float) -> list[dict]:
    """The rows emitted when ``seconds`` more pass on ``clock``, after asserting that nothing
    comes out a millisecond earlier: the timer fires within a millisecond of its time."""
    clock.advance(seconds - 0.001)
    assert await drain(execution) == []
    clock.advance(0.002)
    return await drain(execution)


async def step_until(execution: QueryExecution, predicate: Callable[[list[dict]], bool], timeout: float = 5.0,
                     wait: float = 0.05) -> list[dict]:
    """Step (waiting up to ``wait`` each) until ``predicate(rows so far)`` holds or ``timeout`` passes."""
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate(out):
        for batch in await execution.step(wait):
            assert batch.schema == execution.schema
            out.extend(batch.to_pylist())
    return out
