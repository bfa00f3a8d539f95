"""EMIT policies end to end, with Proton's results (tests/stream/test_stream_smoke/0034_emit_mode.yaml
and 0029_emit_changelog.yaml in Proton's repository) and their timing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from sinkflow.engine import Engine, QueryExecution
from sinkflow.streams.store import Stream, StreamStore
from sinkflow.streams.types import Column, parse_type

from .conftest import ManualClock, drain, emitted_after

INSERTS = [(1, "10:00:00"), (2, "10:00:05"), (3, "10:00:10")]


def _at(clock: str) -> datetime:
    return datetime.fromisoformat(f"2024-01-24 {clock}+00:00")


@pytest.fixture
def ints(store: StreamStore) -> Stream:
    return store.create("test_35_stream", [Column("i", parse_type("int32"))])


async def _each_insert(stream: Stream, execution: QueryExecution) -> list[list]:
    """Insert Proton's three rows one at a time, stepping after each; every output row as a list."""
    out: list[list] = []
    for value, clock in INSERTS:
        stream.append_rows(["i", "_tp_time"], [[value, _at(clock)]])
        out += [list(r.values()) for r in await drain(execution)]
    return out


def _clock(row: list) -> list:
    return [v.strftime("%H:%M:%S") if isinstance(v, datetime) else v for v in row]


@pytest.mark.parametrize(("sql", "expected"), [
    ("select min(i), max(i), count() from test_35_stream emit on update", [[1, 1, 1], [1, 2, 2], [1, 3, 3]]),
    ("select i, count() from test_35_stream group by i emit on update", [[1, 1], [2, 1], [3, 1]]),
    ("select window_start, window_end, min(i), max(i), count() from tumble(test_35_stream, 10s) "
     "group by window_start, window_end emit on update",
     [["10:00:00", "10:00:10", 1, 1, 1], ["10:00:00", "10:00:10", 1, 2, 2], ["10:00:10", "10:00:20", 3, 3, 1]]),
    ("select window_start, window_end, i, count() from tumble(test_35_stream, 10s) "
     "group by window_start, window_end, i emit on update",
     [["10:00:00", "10:00:10", 1, 1], ["10:00:00", "10:00:10", 2, 1], ["10:00:10", "10:00:20", 3, 1]]),
    ("select window_start, window_end, min(i), max(i), count() from hop(test_35_stream, 10s, 30s) "
     "group by window_start, window_end emit on update",
     [["09:59:40", "10:00:10", 1, 1, 1], ["09:59:50", "10:00:20", 1, 1, 1], ["10:00:00", "10:00:30", 1, 1, 1],
      ["09:59:40", "10:00:10", 1, 2, 2], ["09:59:50", "10:00:20", 1, 2, 2], ["10:00:00", "10:00:30", 1, 2, 2],
      ["09:59:50", "10:00:20", 1, 3, 3], ["10:00:00", "10:00:30", 1, 3, 3], ["10:00:10", "10:00:40", 3, 3, 1]]),
    ("select count(), _tp_delta from test_35_stream emit changelog", [[1, 1], [1, -1], [2, 1], [2, -1], [3, 1]]),
    ("select i % 2 as odd, count() as n from test_35_stream group by odd emit changelog",
     [[1, 1, 1], [0, 1, 1], [1, 1, -1], [1, 2, 1]]),
    ("select emit_version() as v, window_start, count() from tumble(test_35_stream, 5s) group by window_start",
     [[0, "10:00:00", 1], [1, "10:00:05", 1]]),
    ("select count() from test_35_stream emit per event", [[1], [2], [3]]),
])
async def test_update_policies_emit_what_proton_emits(engine: Engine, ints: Stream, sql: str, expected: list) -> None:
    execution = engine.start(engine.plan(sql))
    got = await _each_insert(ints, execution)
    assert [_clock(r) for r in got] == expected
    execution.close()


async def test_per_event_emits_once_per_row_of_one_batch(engine: Engine, ints: Stream) -> None:
    execution = engine.start(engine.plan("select count() as n, max(i) as top from test_35_stream emit per event"))
    ints.append_rows(["i", "_tp_time"], [[5, _at("10:00:00")], [3, _at("10:00:01")], [9, _at("10:00:02")]])
    assert await drain(execution) == [{"n": 1, "top": 5}, {"n": 2, "top": 5}, {"n": 3, "top": 9}]


async def test_windows_emit_periodically_then_once_more_at_close(engine: Engine, ints: Stream,
                                                                 clock: ManualClock) -> None:
    execution = engine.start(engine.plan(
        "select window_start, i, count() from tumble(test_35_stream, 10s) group by window_start, i emit periodic 200ms"))
    ints.append_rows(["i", "_tp_time"], [[1, _at("10:00:00")]])
    first = await emitted_after(execution, clock, 0.2)
    assert [(_clock([r["window_start"]])[0], r["i"], r["count()"]) for r in first] == [("10:00:00", 1, 1)]
    ints.append_rows(["i", "_tp_time"], [[2, _at("10:00:05")]])
    second = await emitted_after(execution, clock, 0.2)
    assert [(r["i"], r["count()"]) for r in second] == [(1, 1), (2, 1)]  # every group of the open window
    clock.advance(1.0)
    assert await drain(execution) == []  # no new rows: nothing more until something changes
    ints.append_rows(["i", "_tp_time"], [[3, _at("10:00:10")]])
    closing = await drain(execution)  # no period is due: only the closed window's final rows
    assert [(_clock([r["window_start"]])[0], r["i"], r["count()"]) for r in closing] == [
        ("10:00:00", 1, 1), ("10:00:00", 2, 1)]
    # The idle second fired an (empty) period, so the next one is a whole period after it.
    clock.advance(0.2)
    opened = await drain(execution)
    assert [(_clock([r["window_start"]])[0], r["i"]) for r in opened] == [("10:00:10", 3)]
    execution.close()


async def test_on_update_with_batch_emits_changed_groups_once_per_period(engine: Engine, ints: Stream,
                                                                         clock: ManualClock) -> None:
    execution = engine.start(engine.plan("select i, count() as n from test_35_stream group by i "
                                         "emit on update with batch 300ms"))
    ints.append_rows(["i", "_tp_time"], [[1, _at("10:00:00")]])
    ints.append_rows(["i", "_tp_time"], [[1, _at("10:00:01")], [2, _at("10:00:02")]])
    assert await emitted_after(execution, clock, 0.3) == [{"i": 1, "n": 2}, {"i": 2, "n": 1}]
    ints.append_rows(["i", "_tp_time"], [[2, _at("10:00:03")]])
    assert await emitted_after(execution, clock, 0.3) == [{"i": 2, "n": 2}]  # only the changed group
    clock.advance(0.3)
    assert await drain(execution) == []  # nothing changed in that period
    execution.close()


async def test_periodic_repeat_emits_without_new_rows(engine: Engine, ints: Stream, clock: ManualClock) -> None:
    execution = engine.start(engine.plan("select count() as n from test_35_stream emit periodic 100ms repeat"))
    ints.append_rows(["i", "_tp_time"], [[1, _at("10:00:00")]])
    for _ in range(3):
        assert await emitted_after(execution, clock, 0.1) == [{"n": 1}]
    execution.close()


async def test_emit_timeout_closes_the_last_window_of_a_quiet_stream(engine: Engine, ints: Stream,
                                                                     clock: ManualClock) -> None:
    execution = engine.start(engine.plan("select window_start, count() as n from tumble(test_35_stream, 5s) "
                                         "group by window_start emit timeout 300ms"))
    ints.append_rows(["i", "_tp_time"], [[1, _at("10:00:00")], [2, _at("10:00:01")]])
    assert await drain(execution) == []
    clock.advance(0.2)
    ints.append_rows(["i", "_tp_time"], [[3, _at("10:00:02")]])
    assert await drain(execution) == []
    # The timeout counts from the last row read, not the first.
    rows = await emitted_after(execution, clock, 0.3)
    assert [(_clock([r["window_start"]])[0], r["n"]) for r in rows] == [("10:00:00", 3)]
    execution.close()


async def test_after_window_close_with_delay_waits_for_late_rows(engine: Engine, ints: Stream) -> None:
    execution = engine.start(engine.plan("select window_start, count() as n from tumble(test_35_stream, 5s) "
                                         "group by window_start emit after window close with delay 2s"))
    ints.append_rows(["i", "_tp_time"], [[1, _at("10:00:01")]])
    ints.append_rows(["i", "_tp_time"], [[2, _at("10:00:06")]])  # past the window's end, not past the delay
    ints.append_rows(["i", "_tp_time"], [[3, _at("10:00:04")]])  # late, but within the delay: counted
    assert await drain(execution) == []
    ints.append_rows(["i", "_tp_time"], [[4, _at("10:00:07")]])
    assert [(r["window_start"].strftime("%H:%M:%S"), r["n"]) for r in await drain(execution)] == [("10:00:00", 2)]


async def test_a_changelog_survives_a_snapshot(engine: Engine, ints: Stream) -> None:
    plan = engine.plan("select i % 2 as odd, count() as n from test_35_stream group by odd emit changelog")
    first = engine.start(plan)
    ints.append_rows(["i", "_tp_time"], [[1, _at("10:00:00")]])
    assert await drain(first) == [{"odd": 1, "n": 1, "_tp_delta": 1}]
    snapshot = first.snapshot()
    first.close()
    second = engine.start(plan, snapshot)
    ints.append_rows(["i", "_tp_time"], [[3, _at("10:00:01")]])
    assert await drain(second) == [{"odd": 1, "n": 1, "_tp_delta": -1}, {"odd": 1, "n": 2, "_tp_delta": 1}]


async def test_emit_last_starts_the_query_that_long_ago(engine: Engine, ints: Stream, clock: ManualClock) -> None:
    now = datetime.now(timezone.utc)
    ints.append_rows(["i", "_tp_time"], [[1, now - timedelta(hours=3)]])
    ints.append_rows(["i", "_tp_time"], [[2, now - timedelta(minutes=10)], [3, now - timedelta(minutes=5)]])
    execution = engine.start(engine.plan("select count() as n, sum(i) as total from test_35_stream "
                                         "emit periodic 100ms last 1h"))
    assert await emitted_after(execution, clock, 0.1) == [{"n": 2, "total": 5}]
    execution.close()
