"""The car demo: plausible, deterministic data, and the feeder that writes it into a store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyarrow as pa

from sinkflow.streams.demo import CAR_STREAM, DIM_STREAM, CarSimulator, run_demo
from sinkflow.streams.store import StreamStore
from sinkflow.streams.types import TP_TIME


def simulate(seed: int, ticks: int, cars: int = 50) -> pa.Table:
    sim = CarSimulator(cars, seed)
    batches = [sim.tick(1_700_000_000_000 + i * 500, 0.5, 1) for i in range(ticks)]
    return pa.Table.from_batches(batches)


def test_values_are_plausible_per_car() -> None:
    cars = 30
    table = simulate(seed=7, ticks=1600, cars=cars)  # 13 simulated minutes, one event per car per 0.5 s
    # The simulator emits the cars in the same order every tick: column k::cars is car k's history.
    columns = table.to_pydict()
    moved = refuels = trips = 0
    for k in range(cars):
        cid = set(columns["cid"][k::cars])
        assert len(cid) == 1
        speed, km, gas = columns["speed_kmh"][k::cars], columns["total_km"][k::cars], columns["gas_percent"][k::cars]
        locked, in_use = columns["locked"][k::cars], columns["in_use"][k::cars]
        for i in range(1, len(km)):
            assert km[i] >= km[i - 1]
            # Distance grows only with speed: at most the top speed for half a second.
            assert km[i] - km[i - 1] <= 140 * 0.5 / 3600 + 1e-3
            if speed[i - 1] == 0 and speed[i] == 0:
                assert km[i] == km[i - 1]
            assert abs(speed[i] - speed[i - 1]) < 10  # smooth, no jumps
            refuels += gas[i] > gas[i - 1] + 5
            trips += locked[i - 1] and not locked[i]
        for i in range(len(km)):
            assert 0 <= gas[i] <= 100
            assert 0 <= speed[i] <= 140
            if locked[i]:
                assert speed[i] == 0 and not in_use[i]
            else:
                assert in_use[i]
        moved += km[-1] > km[0]
    assert moved >= cars * 0.8  # in 13 minutes nearly every car drives somewhere
    assert trips >= 20 and refuels >= 1
    assert 0 < sum(columns["locked"]) < len(table)


def test_same_seed_same_data() -> None:
    assert simulate(seed=3, ticks=50).equals(simulate(seed=3, ticks=50))
    assert not simulate(seed=3, ticks=50).equals(simulate(seed=4, ticks=50))
    assert CarSimulator(10, 1).dim_rows() == CarSimulator(10, 1).dim_rows()


def test_events_per_tick_are_spread_over_the_tick() -> None:
    sim = CarSimulator(3, seed=1)
    batch = sim.tick(10_000, 0.5, events_per_car=2)
    times = [t.value for t in batch.column("time")]
    assert batch.num_rows == 6
    assert sorted(set(times)) == [9_750, 10_000]


async def test_run_demo_creates_and_feeds_streams(tmp_path: Path) -> None:
    store = StreamStore(tmp_path)
    stop = asyncio.Event()
    task = asyncio.create_task(run_demo(store, stop, rate_per_car=20.0, cars=10, seed=1, interval=0.05))
    cars = store.get(CAR_STREAM) if store.exists(CAR_STREAM) else None
    for _ in range(100):
        await asyncio.sleep(0.02)
        cars = store.get(CAR_STREAM) if store.exists(CAR_STREAM) else None
        if cars is not None and cars.head >= 30:
            break
    stop.set()
    await asyncio.wait_for(task, 5)
    assert cars is not None and cars.head >= 30
    assert cars.schema.names == ["cid", "speed_kmh", "total_km", "gas_percent", "locked", "in_use", "time", TP_TIME]
    assert cars.settings.event_time_column == "time"
    table = cars.table()
    assert table.column(TP_TIME).equals(table.column("time").cast(pa.timestamp("ms", tz="UTC")))
    assert set(table.column("cid").to_pylist()) == {f"c{i:05d}" for i in range(1, 11)}
    # One append per tick: each batch holds one event per car per step.
    assert all(b.num_rows % 10 == 0 for _, b in cars.read(0, 10_000))
    dim = store.get(DIM_STREAM).table()
    assert dim.num_rows == 10
    assert dim.schema.names == ["cid", "license_plate", "model", "owner", TP_TIME]
    last_km = {r["cid"]: r["total_km"] for r in table.to_pylist()}
    store.close()

    # A restart keeps the dimension rows (no second fill) and continues each car's odometer.
    store = StreamStore(tmp_path)
    stop = asyncio.Event()
    before = store.get(CAR_STREAM).head
    task = asyncio.create_task(run_demo(store, stop, rate_per_car=20.0, cars=10, seed=2, interval=0.05))
    for _ in range(100):
        await asyncio.sleep(0.02)
        if store.get(CAR_STREAM).head > before:
            break
    stop.set()
    await asyncio.wait_for(task, 5)
    assert store.get(DIM_STREAM).head == 10
    new_rows = store.get(CAR_STREAM).table().slice(before).to_pylist()
    assert new_rows
    first_new = {}
    for row in new_rows:
        first_new.setdefault(row["cid"], row["total_km"])
    assert all(first_new[cid] >= last_km[cid] for cid in first_new)
    store.close()
