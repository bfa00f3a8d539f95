"""Demo data: a fleet of shared cars, as in Timeplus's car-sharing demo.

``car_live_data`` carries telemetry (``cid``, ``speed_kmh``, ``total_km``, ``gas_percent``,
``locked``, ``in_use``, ``time`` — the event time) and ``dim_car_info`` one row per car
(``cid``, ``license_plate``, ``model``, ``owner``) for lookups with ``table(dim_car_info)``.

:class:`CarSimulator` is the deterministic model (a seed gives the same fleet and the same
drive); :func:`run_demo` feeds a store from it in real time. The model's promises, which tests
check: a car's ``total_km`` never decreases and grows only with its speed; ``gas_percent``
stays in 0..100, drains with distance and jumps back up at a refuel stop; a locked car stands
still and is not in use; a car in use is unlocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass

import pyarrow as pa

from sinkflow.errors import SinkflowError
from sinkflow.streams.store import Stream, StreamSettings, StreamStore
from sinkflow.streams.types import Column, parse_type

logger = logging.getLogger(__name__)

CAR_STREAM = "car_live_data"
DEMO_RETENTION_BYTES = 512 * 1024 * 1024
DIM_STREAM = "dim_car_info"

CAR_COLUMNS = [
    Column("cid", parse_type("string")),
    Column("speed_kmh", parse_type("float32")),
    Column("total_km", parse_type("float64")),
    Column("gas_percent", parse_type("float32")),
    Column("locked", parse_type("bool")),
    Column("in_use", parse_type("bool")),
    Column("time", parse_type("datetime64(3)")),
]
DIM_COLUMNS = [
    Column("cid", parse_type("string")),
    Column("license_plate", parse_type("string")),
    Column("model", parse_type("string")),
    Column("owner", parse_type("string")),
]
_CAR_SCHEMA = pa.schema([c.arrow_field() for c in CAR_COLUMNS])

_MODELS = [
    "Tesla Model 3",
    "Toyota Prius",
    "Nissan Leaf",
    "Volkswagen ID.3",
    "Honda Civic",
    "BMW i3",
    "Kia Niro",
    "Hyundai Ioniq",
    "Renault Zoe",
    "Ford Focus",
]
_FIRST = ["Ada", "Ben", "Chloe", "Dan", "Eva", "Finn", "Grace", "Hugo", "Iris", "Jack", "Kim", "Liam", "Mia", "Noah"]
_LAST = ["Smith", "Chen", "Garcia", "Müller", "Kowalski", "Rossi", "Dubois", "Tanaka", "Silva", "Novak"]

# Per-second rates and physics of the model.
_UNLOCK_RATE = 1 / 60  # a parked car starts a trip about every minute
_END_TRIP_RATE = 1 / 120  # a trip ends after about two minutes
_RETARGET_RATE = 1 / 8  # the driver picks a new cruising speed about every 8 s
_ACCEL_KMH_PER_S = 8.0
_MAX_SPEED = 140.0
_GAS_PER_KM = 1.0  # percent of the tank per km (a short-range city car, so refuels happen in a demo)
_REFUEL_BELOW = 8.0


@dataclass
class _Car:
    cid: str
    speed: float
    total_km: float
    gas: float
    locked: bool
    in_use: bool
    target: float
    ending: bool = False  # heading to a stop to lock the car
    refuel: bool = False  # heading to a stop to refuel


class CarSimulator:
    """A deterministic fleet model (same ``seed`` → same fleet and values)."""

    def __init__(self, cars: int = 100, seed: int | None = None) -> None:
        self.rng = random.Random(seed)
        self._dim_seed = self.rng.getrandbits(64)
        self.cars = [self._new_car(i) for i in range(cars)]

    def _new_car(self, index: int) -> _Car:
        rng = self.rng
        driving = rng.random() < 0.4
        target = rng.uniform(30, 110) if driving else 0.0
        return _Car(
            cid=f"c{index + 1:05d}",
            speed=target * rng.uniform(0.6, 1.0),
            total_km=round(rng.uniform(1_000, 60_000), 1),
            gas=rng.uniform(_REFUEL_BELOW + 1, 100),
            locked=not driving,
            in_use=driving,
            target=target,
        )

    def dim_rows(self) -> tuple[list[str], list[list[object]]]:
        """The ``dim_car_info`` rows: one per car."""
        rng = random.Random(self._dim_seed)
        rows: list[list[object]] = []
        for car in self.cars:
            plate = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(3)) + f"-{rng.randint(100, 9999)}"
            rows.append([car.cid, plate, rng.choice(_MODELS), f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"])
        return [c.name for c in DIM_COLUMNS], rows

    def resume(self, latest: pa.Table) -> None:
        """Continue from the newest stored state of each car (so ``total_km`` keeps growing across restarts)."""
        by_cid = {car.cid: car for car in self.cars}
        for row in latest.select(["cid", "speed_kmh", "total_km", "gas_percent", "locked", "in_use"]).to_pylist():
            car = by_cid.get(row["cid"])
            if car is None:
                continue
            car.total_km = row["total_km"]
            car.gas = row["gas_percent"]
            car.speed = row["speed_kmh"]
            car.locked = row["locked"]
            car.in_use = row["in_use"]
            car.target = car.speed

    def _step(self, car: _Car, seconds: float) -> None:
        rng = self.rng
        if car.locked:
            if rng.random() < _UNLOCK_RATE * seconds:
                car.locked, car.in_use, car.ending = False, True, False
                car.target = rng.uniform(30, 110)
            return
        if not car.ending and not car.refuel:
            if car.gas < _REFUEL_BELOW:
                car.refuel, car.target = True, 0.0
            elif rng.random() < _END_TRIP_RATE * seconds:
                car.ending, car.target = True, 0.0
            elif rng.random() < _RETARGET_RATE * seconds:
                car.target = rng.choice([rng.uniform(20, 60), rng.uniform(60, 130)])
        step = _ACCEL_KMH_PER_S * seconds
        speed = car.speed + max(-step, min(step, car.target - car.speed))
        if car.target > 0:
            speed += rng.gauss(0, 1.0) * min(seconds, 1.0)
        speed = max(0.0, min(_MAX_SPEED, speed))
        distance = (car.speed + speed) / 2 * seconds / 3600
        car.speed = speed
        car.total_km += distance
        car.gas = max(0.0, car.gas - distance * _GAS_PER_KM)
        if speed == 0.0 and car.refuel:
            car.gas = rng.uniform(85, 100)
            car.refuel = False
            car.target = rng.uniform(30, 110)
        elif speed == 0.0 and car.ending:
            car.locked, car.in_use, car.ending = True, False, False

    def tick(self, end_ms: int, seconds: float, events_per_car: int = 1) -> pa.RecordBatch:
        """Advance every car by ``seconds`` in ``events_per_car`` equal steps, one event per step,
        with event times spread evenly up to ``end_ms``; return the events as a batch."""
        cids: list[str] = []
        speed: list[float] = []
        total: list[float] = []
        gas: list[float] = []
        locked: list[bool] = []
        in_use: list[bool] = []
        times: list[int] = []
        step = seconds / max(events_per_car, 1)
        for k in range(events_per_car):
            at = end_ms - int((events_per_car - 1 - k) * step * 1000)
            for car in self.cars:
                self._step(car, step)
                cids.append(car.cid)
                speed.append(round(car.speed, 2))
                total.append(round(car.total_km, 3))
                gas.append(round(car.gas, 2))
                locked.append(car.locked)
                in_use.append(car.in_use)
                times.append(at)
        arrays = [
            pa.array(cids, pa.string()),
            pa.array(speed, pa.float32()),
            pa.array(total, pa.float64()),
            pa.array(gas, pa.float32()),
            pa.array(locked, pa.bool_()),
            pa.array(in_use, pa.bool_()),
            pa.array(times, pa.timestamp("ms", tz="UTC")),
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=_CAR_SCHEMA)


def ensure_demo_streams(store: StreamStore) -> tuple[Stream, Stream]:
    """Create ``car_live_data`` and ``dim_car_info`` unless they exist; return both."""
    if not store.exists(CAR_STREAM):
        # Bounded, so a demo left running for days does not fill the disk (~10 kB/s at the defaults).
        settings = StreamSettings(
            event_time_column="time", retention_bytes=DEMO_RETENTION_BYTES, description="car telemetry (demo)"
        )
        store.create(CAR_STREAM, CAR_COLUMNS, settings)
    if not store.exists(DIM_STREAM):
        store.create(DIM_STREAM, DIM_COLUMNS, StreamSettings(description="car dimension data (demo)"))
    return store.get(CAR_STREAM), store.get(DIM_STREAM)


async def run_demo(
    store: StreamStore,
    stop: asyncio.Event,
    rate_per_car: float = 2.0,
    cars: int = 100,
    seed: int | None = None,
    interval: float = 0.5,
) -> None:
    """Feed the demo streams until ``stop`` is set: about every ``interval`` seconds one batch with
    ``rate_per_car * interval`` events per car (fractions carried over). Fills ``dim_car_info``
    once, when it is empty. A failed append is logged and the demo goes on."""
    car_stream, dim_stream = ensure_demo_streams(store)
    sim = CarSimulator(cars, seed)
    if dim_stream.head == 0:
        columns, rows = sim.dim_rows()
        dim_stream.append_rows(columns, rows)
    if car_stream.head > car_stream.start:
        recent = car_stream.read(max(car_stream.start, car_stream.head - 4 * cars), 4 * cars)
        if recent:
            sim.resume(pa.Table.from_batches([b for _, b in recent]))
    carry = 0.0
    next_at = time.monotonic()
    while not stop.is_set():
        carry += rate_per_car * interval
        events = int(carry)
        carry -= events
        if events:
            batch = sim.tick(int(time.time() * 1000), interval, events)
            try:
                car_stream.append_batch(batch)
            except (SinkflowError, OSError, ValueError) as exc:
                logger.error("demo: append to %s failed: %s", CAR_STREAM, exc)
        next_at += interval
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))
