"""Rows/s of the seed's car query through ``CREATE MATERIALIZED VIEW … INTO kafka_ext`` vs the
same query through a REST-style Kafka sink, in one run.

Both sides are the same runtime, so the goal is parity: each side gets a fresh stream of car
events (one per car per second, so every 2 s window holds two events per car), its pipeline
created first — through :meth:`SqlPipelines.execute` with ``CREATE EXTERNAL STREAM`` and
``CREATE MATERIALIZED VIEW … INTO`` on one side, through :meth:`SinkManager.create` with the
Sink API's ``{name, sql, type, properties}`` on the other — then the events appended; the time
runs from the first append until the pipeline's status counts every window row delivered to
Kafka. Rounds alternate the order of the sides on fresh topics; the ratio is the median of each
round's view/sink, and beside it the ratio of each side's best round and of the CPU time this
process spent per round (sink/view): on a shared machine a round's wall time is mostly other
people's load, while the CPU time is what the pipeline itself costs.

    python bench/mv_kafka.py [--events 400000] [--cars 2000] [--rounds 5] [--brokers host:port]

Without ``--brokers`` a throwaway Tansu broker is started on 127.0.0.1 (tests/servers/tansu.py).
Goal: view/sink >= 0.95.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for sinkflow and tests.servers

from sinkflow.runtime.manager import SinkDefinition  # noqa: E402
from sinkflow.runtime.sql_pipelines import SqlPipelines  # noqa: E402
from kafka_sink import broker  # noqa: E402 - a bench next to this one
from pipelines_env import temporary_pipelines  # noqa: E402

CAR_COLUMNS = ("cid string, speed_kmh float64, total_km float64, gas_percent float64, locked bool, in_use bool, "
               "time datetime64(3, 'UTC')")
RESULT_COLUMNS = ("time datetime64(3, 'UTC'), cid string, speed_kmh float64, total_km float64, gas_percent float64, "
                  "locked bool, in_use bool")
#: The seed's query (the car_live_data dashboard's 2 s windows), over the stream ``{cars}``.
CAR_QUERY = (
    "select window_end as time,cid,avg(speed_kmh) as speed_kmh,max(total_km) as total_km,"
    "avg(gas_percent) as gas_percent,min(locked) as locked,min(in_use) as in_use "
    "from tumble({cars},2s) group by cid, window_end"
)
BATCH = 10_000
START_MS = 1_767_225_600_000


def car_events(events: int, cars: int) -> list[pa.RecordBatch]:
    """``events`` car events, one per car per second, in ingest batches of ``BATCH`` rows; one
    more second of events closes the last full window."""
    seconds = events // cars + 2
    n = seconds * cars
    index = pa.array(range(n), pa.int64()).to_numpy()
    table = pa.table({
        "cid": pa.array([f"c{i % cars:05d}" for i in range(n)]),
        "speed_kmh": pa.array((index % 97).astype("float64")),
        "total_km": pa.array((index // cars).astype("float64") + 1000.0),
        "gas_percent": pa.array((index % 50).astype("float64") + 10.0),
        "locked": pa.array(index % 2 == 0),
        "in_use": pa.array(index % 3 == 0),
        "time": pa.array(START_MS + (index // cars) * 1000, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
    })
    return table.combine_chunks().to_batches(max_chunksize=BATCH)


def expected_rows(batches: list[pa.RecordBatch], cars: int) -> int:
    """Window rows the query emits: a 2 s window closes when an event at or past its end arrives."""
    seconds = sum(b.num_rows for b in batches) // cars
    return (seconds - 1) // 2 * cars


async def timed(create: Callable[[SqlPipelines, str], Awaitable[str]], batches: list[pa.RecordBatch],
                want: int) -> tuple[float, float]:
    """Seconds from the first append until the pipeline made by ``create`` delivered ``want`` rows,
    and the CPU seconds this process spent meanwhile."""
    async with temporary_pipelines("bench-mv-kafka-") as pipelines:
        await pipelines.execute(f"CREATE STREAM cars ({CAR_COLUMNS}) SETTINGS event_time_column='time'")
        name = await create(pipelines, CAR_QUERY.format(cars="cars"))
        await asyncio.sleep(1.0)  # the pipeline opens its producer before the clock starts
        stream = pipelines.store.get("cars")
        started, cpu = time.perf_counter(), time.process_time()
        for batch in batches:
            stream.append_batch(batch)
        status = pipelines.sinks.status(name)
        while status.rows_delivered < want:
            await asyncio.sleep(0.005)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert status.rows_delivered == want, f"{status.rows_delivered} rows delivered, {want} expected"
        return elapsed, cpu


def view_side(brokers: str, topic: str) -> Callable[[SqlPipelines, str], Awaitable[str]]:
    async def create(pipelines: SqlPipelines, query: str) -> str:
        await pipelines.execute(f"CREATE EXTERNAL STREAM car_topic ({RESULT_COLUMNS}) SETTINGS type='kafka', "
                                f"brokers='{brokers}', topic='{topic}'")
        await pipelines.execute(f"CREATE MATERIALIZED VIEW to_kafka INTO car_topic AS {query}")
        return "to_kafka"
    return create


def sink_side(brokers: str, topic: str) -> Callable[[SqlPipelines, str], Awaitable[str]]:
    async def create(pipelines: SqlPipelines, query: str) -> str:
        record = await pipelines.sinks.create(SinkDefinition(
            name="to_kafka", sql=query, type="kafka",
            properties={"brokers": brokers, "topic": topic, "tls.disable": True}))
        return record.id
    return create




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=400_000, help="car events per side per round")
    parser.add_argument("--cars", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--brokers", help="an existing cluster (default: start a Tansu broker)")
    args = parser.parse_args()
    batches = car_events(args.events, args.cars)
    events = sum(b.num_rows for b in batches)
    want = expected_rows(batches, args.cars)
    rates: dict[str, list[float]] = {"view": [], "sink": []}
    cpu: dict[str, list[float]] = {"view": [], "sink": []}
    with broker(args.brokers) as brokers:
        for round_no in range(args.rounds):
            for side in ("view", "sink") if round_no % 2 == 0 else ("sink", "view"):
                topic = f"bench-{side}-{round_no}-{time.time_ns()}"
                make = view_side(brokers, topic) if side == "view" else sink_side(brokers, topic)
                elapsed, used = asyncio.run(timed(make, batches, want))
                rates[side].append(events / elapsed)
                cpu[side].append(used)
    ratios = [v / s for v, s in zip(rates["view"], rates["sink"])]
    ratio = statistics.median(ratios)
    print(f"mv_kafka: the seed's car query over {events:,} events ({args.cars} cars, {want:,} window rows to Kafka) "
          f"x {args.rounds} alternating rounds; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"REST kafka sink             {statistics.median(rates['sink']):>10,.0f} events/s")
    print(f"MATERIALIZED VIEW INTO ext  {statistics.median(rates['view']):>10,.0f} events/s  ratio view/sink {ratio:.2f}")
    best = max(rates["view"]) / max(rates["sink"])
    print(f"best round: sink {max(rates['sink']):,.0f}, view {max(rates['view']):,.0f} events/s, ratio {best:.2f}")
    cpu_ratio = statistics.median(cpu["sink"]) / statistics.median(cpu["view"])
    print(f"CPU seconds per round (median): sink {statistics.median(cpu['sink']):.2f}, "
          f"view {statistics.median(cpu['view']):.2f}, ratio sink/view {cpu_ratio:.2f}")
    print(f"per-round ratios {', '.join(f'{r:.2f}' for r in ratios)}; goal: ratio >= 0.95 (the same runtime)")


if __name__ == "__main__":
    main()
