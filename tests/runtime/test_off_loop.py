"""Engine steps and ingest decoding run off the event loop; the loop's lag is measured."""

from __future__ import annotations

import asyncio
import threading
import time

import pyarrow as pa
import pytest

from sinkflow.engine import QueryExecution
from sinkflow.runtime import off_loop
from sinkflow.runtime.loop_lag import LoopLagMonitor
from sinkflow.streams.types import Column, parse_type
from tests.runtime.support import Runtime


def streaming(runtime: Runtime, sql: str) -> QueryExecution:
    execution = runtime.engine.execute(sql).execution
    assert isinstance(execution, QueryExecution)
    return execution


def make_events(runtime: Runtime) -> None:
    runtime.store.create("ev", [Column("id", parse_type("int64"))])


async def test_a_step_computes_on_the_engine_thread_while_the_loop_keeps_running(runtime: Runtime) -> None:
    make_events(runtime)
    execution = streaming(runtime, "select id * 10 as x from ev")
    ticked = asyncio.Event()

    async def tick() -> None:
        for _ in range(5):
            await asyncio.sleep(0.01)
        ticked.set()

    try:
        # The step waits for input on the engine thread's loop; this loop goes on ticking
        # (however slowly a busy machine runs it), and the step cannot end without input.
        step = asyncio.create_task(off_loop.run_step(execution, 30.0))
        await asyncio.wait_for(tick(), 30.0)
        assert ticked.is_set() and not step.done()
        runtime.store.get("ev").append_rows(["id"], [[1], [2]])
        batches = await asyncio.wait_for(step, 30.0)
    finally:
        execution.close()
    assert [row["x"] for batch in batches for row in batch.to_pylist()] == [10, 20]


@pytest.fixture
def contended(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> QueryExecution:
    """``select id from ev`` on an engine thread counted as contended whatever it does."""
    monkeypatch.setattr(off_loop, "CONTENDED", -1.0)
    make_events(runtime)
    return streaming(runtime, "select id from ev")


async def test_steps_of_one_query_are_paced_while_input_keeps_coming_to_a_contended_engine(
    runtime: Runtime, contended: QueryExecution, monkeypatch: pytest.MonkeyPatch
) -> None:
    execution = contended
    stream = runtime.store.get("ev")
    started: list[float] = []
    step = execution.step

    async def timed_step(timeout: float) -> list[pa.RecordBatch]:
        started.append(time.monotonic())
        return await step(timeout)

    monkeypatch.setattr(execution, "step", timed_step)
    rows: list[int] = []
    try:
        for i in range(4):
            stream.append_rows(["id"], [[i]])
            rows += [r["id"] for b in await off_loop.run_step(execution, 1.0) for r in b.to_pylist()]
    finally:
        execution.close()
    assert rows == [0, 1, 2, 3]
    # Input was waiting each time, yet no step started sooner than the interval after the last.
    gaps = [later - earlier for earlier, later in zip(started, started[1:])]
    assert min(gaps) >= off_loop.STEP_INTERVAL * 0.9  # measured a few lines after the runtime's own clock


async def test_a_cancelled_step_has_stopped_when_the_cancellation_arrives(runtime: Runtime) -> None:
    make_events(runtime)
    execution = streaming(runtime, "select id from ev")
    step = asyncio.create_task(off_loop.run_step(execution, 30.0))
    await asyncio.sleep(0.1)
    step.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(step, 5.0)
    assert step.cancelled()
    execution.close()  # the step has stopped: closing cannot pull DuckDB from under it
    # The engine thread is free for the next query.
    other = streaming(runtime, "select id + 1 as y from ev")
    runtime.store.get("ev").append_rows(["id"], [[1]])
    try:
        batches = await asyncio.wait_for(off_loop.run_step(other, 5.0), 5.0)
    finally:
        other.close()
    assert [r["y"] for b in batches for r in b.to_pylist()] == [2]


async def test_a_small_ingest_body_is_decoded_on_the_loop_and_a_large_one_on_the_ingest_thread() -> None:
    def name() -> str:
        return threading.current_thread().name

    limit = off_loop.INLINE_INGEST_BYTES
    assert await off_loop.run_ingest(name, limit) == threading.current_thread().name
    assert {await off_loop.run_ingest(name, limit + 1) for _ in range(3)} == {"sinkflow-ingest_0"}
    assert await off_loop.run_ingest(name) == "sinkflow-ingest_0"  # an unknown size is taken as large


async def test_ingest_takes_its_share_of_the_time_while_the_queries_are_behind(
    runtime: Runtime, contended: QueryExecution, monkeypatch: pytest.MonkeyPatch
) -> None:
    execution = contended
    gate = off_loop.ingest_gate()
    starts: list[float] = []
    spent = 0.05

    def work() -> str:
        starts.append(time.monotonic())
        time.sleep(spent)  # a body that takes this long
        return threading.current_thread().name

    release = threading.Event()
    step = execution.step

    async def held_step(timeout: float) -> list[pa.RecordBatch]:
        await asyncio.to_thread(release.wait)  # busy until the test lets it go
        return await step(timeout)

    monkeypatch.setattr(execution, "step", held_step)
    try:
        waited = gate.waited
        for _ in range(2):
            await off_loop.run_ingest(work, 1)
        assert gate.waited == waited  # no query is behind: ingest never waits
        runtime.store.get("ev").append_rows(["id"], [[1]])
        stepping = asyncio.create_task(off_loop.run_step(execution, 5.0))
        await asyncio.sleep(0)  # handed over with input waiting to a contended engine: busy
        busy_starts = len(starts)
        threads = {await off_loop.run_ingest(work, 1) for _ in range(3)}
        release.set()
        batches = await asyncio.wait_for(stepping, 5.0)
        assert gate.waited > waited  # held back: /metrics shows it
        assert f"sinkflow_ingest_throttled_seconds_total {gate.waited:.6f}" in off_loop.ingest_prometheus_text()
        waited = gate.waited
        # The step returned: ingest runs freely again, on the loop.
        assert await off_loop.run_ingest(work, 1) == threading.current_thread().name
        assert gate.waited == waited
    finally:
        release.set()
        execution.close()
    assert [r["id"] for b in batches for r in b.to_pylist()] == [1]
    assert threads == {"sinkflow-ingest_0"}  # small bodies too leave the loop to the queries meanwhile
    # While the step was busy, each body started no sooner than its share allowed after the last.
    busy = starts[busy_starts:busy_starts + 3]
    pause = spent * (1 - off_loop.INGEST_SHARE) / off_loop.INGEST_SHARE
    assert all(later - earlier >= spent + pause * 0.9 for earlier, later in zip(busy, busy[1:]))


async def test_loop_lag_histogram_counts_a_blocked_loop() -> None:
    monitor = LoopLagMonitor(interval=0.01)

    def samples() -> dict[str, str]:
        return dict(line.rsplit(" ", 1) for line in monitor.prometheus_text().splitlines() if not line.startswith("#"))

    async def counted(at_least: int) -> None:
        while int(samples()["sinkflow_event_loop_lag_seconds_count"]) < at_least:
            await asyncio.sleep(0.01)

    stop = asyncio.Event()
    sampling = asyncio.create_task(monitor.run(stop))
    await counted(5)
    time.sleep(0.3)  # hold the loop, as a long computation on it would
    stop.set()
    await sampling  # its last sample is the wake-up the block delayed
    lines = samples()
    assert int(lines['sinkflow_event_loop_lag_seconds_bucket{le="+Inf"}']) >= 6
    assert int(lines['sinkflow_event_loop_lag_seconds_bucket{le="0.25"}']) < int(
        lines['sinkflow_event_loop_lag_seconds_bucket{le="+Inf"}'])  # the blocked wake-up is above 250 ms
    assert float(lines["sinkflow_event_loop_lag_seconds_sum"]) >= 0.25
