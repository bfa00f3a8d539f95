"""Session windows end to end: per key, closed by the watermark passing last row + timeout, by max
length, by EMIT TIMEOUT; their state survives snapshots. Rows as Proton's session smoke tests
(tests/stream/test_stream_smoke/0006_session_window.json) expect them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from sinkflow.engine import Engine
from sinkflow.streams.store import Stream, StreamStore
from sinkflow.streams.types import Column, parse_type

from .conftest import drain

T = datetime(2020, 2, 2, 20, tzinfo=timezone.utc)
QUERY = ("select count() as n, window_start, window_end, id from session(test7_session, timestamp, 2s) "
         "partition by id group by window_start, window_end")


@pytest.fixture
def devices(store: StreamStore) -> Stream:
    return store.create("test7_session", [Column("id", parse_type("string")), Column("value", parse_type("float64")),
                                          Column("timestamp", parse_type("datetime64(3)"))])


def _send(stream: Stream, device: str, seconds: float, value: float = 1.0) -> None:
    stream.append_rows(["id", "value", "timestamp"], [[device, value, T + timedelta(seconds=seconds)]])


def _rows(rows: list[dict]) -> list[tuple]:
    return sorted((r["id"], r["n"], (r["window_start"] - T).total_seconds(), (r["window_end"] - T).total_seconds())
                  for r in rows)


async def test_sessions_per_device_close_by_their_own_rows(engine: Engine, devices: Stream) -> None:
    """Proton's smoke test 3: with PARTITION BY each device's sessions close by its own watermark."""
    execution = engine.start(engine.plan(QUERY))
    for device, second in [("dev1", 0), ("dev2", 0), ("dev3", 0), ("dev1", 1), ("dev2", 1), ("dev3", 1), ("dev4", 5)]:
        _send(devices, device, second)
        assert await drain(execution) == []  # dev4's row closes no other device's session
    for device in ("dev1", "dev2", "dev3"):
        _send(devices, device, 6)
    assert _rows(await drain(execution)) == [("dev1", 2, 0, 3), ("dev2", 2, 0, 3), ("dev3", 2, 0, 3)]
    _send(devices, "dev4", 11)
    assert _rows(await drain(execution)) == [("dev4", 1, 5, 7)]


async def test_a_gap_of_the_timeout_starts_a_new_session(engine: Engine, devices: Stream) -> None:
    execution = engine.start(engine.plan("select id, count() as n, max(value) as top, window_start, window_end "
                                         "from session(test7_session, timestamp, 2s) group by id, window_start"))
    _send(devices, "dev1", 0, 57.3)
    _send(devices, "dev1", 1, 66)
    _send(devices, "dev1", 3.5, 68)  # 2.5s after the previous row: a new session
    _send(devices, "dev1", 9, 70)
    rows = await drain(execution)
    assert [(r["n"], r["top"], (r["window_start"] - T).total_seconds(), (r["window_end"] - T).total_seconds())
            for r in rows] == [(2, 66.0, 0, 3), (1, 68.0, 3.5, 5.5)]


async def test_max_length_closes_a_busy_session(engine: Engine, devices: Stream) -> None:
    execution = engine.start(engine.plan("select count() as n, window_start from session(test7_session, timestamp, 2s, 3s) "
                                         "group by window_start"))
    for second in range(0, 6):
        _send(devices, "dev1", second)
    rows = await drain(execution)
    # Rows 0s, 1s, 2s: the row at 3s is the max length after the start, and opens the next session.
    assert [(r["n"], (r["window_start"] - T).total_seconds()) for r in rows] == [(3, 0)]


async def test_sessions_survive_a_snapshot(engine: Engine, devices: Stream) -> None:
    plan = engine.plan(QUERY)
    first = engine.start(plan)
    _send(devices, "dev1", 0)
    _send(devices, "dev2", 0.5)
    assert await drain(first) == []
    snapshot = first.snapshot()
    first.close()
    second = engine.start(plan, snapshot)
    _send(devices, "dev1", 1)  # continues dev1's open session
    _send(devices, "dev1", 4)
    _send(devices, "dev2", 4)
    assert _rows(await drain(second)) == [("dev1", 2, 0, 3), ("dev2", 1, 0.5, 2.5)]


async def test_a_late_row_for_a_closed_session_is_dropped(engine: Engine, devices: Stream) -> None:
    execution = engine.start(engine.plan("select count() as n, window_start, window_end, id "
                                         "from session(test7_session, timestamp, 2s) group by id, window_start"))
    _send(devices, "dev1", 0)
    _send(devices, "dev1", 10)
    # The row at 10s reaches the session's max length (5 times its timeout): it ends there, as in Proton.
    assert _rows(await drain(execution)) == [("dev1", 1, 0, 10)]
    _send(devices, "dev1", 0.5)  # its session closed at 2s, and the watermark is at 10s
    assert await drain(execution) == []
    assert execution.stats()["late_rows_dropped"] == 1


# Proton's 0006_session_window smoke tests 16, 17 and 21: one device's rows in one batch.
_RANGE_ROWS = [("sh", 60.3, -4.738), ("ca", 57.3, 0.261), ("ca", 58.3, 5.260), ("sh", 59.3, 8.262),
               ("ca", 66, 10.263), ("da", 67, 13.262), ("ca", 68, 16.262), ("sh", 69, 18.261)]


@pytest.fixture
def located(store: StreamStore) -> Stream:
    return store.create("located", [Column("id", parse_type("string")), Column("location", parse_type("string")),
                                    Column("value", parse_type("float64")),
                                    Column("timestamp", parse_type("datetime64(3)"))])


@pytest.mark.parametrize(("bounds", "expected"), [
    # [start, end]: both boundary rows belong to the session; it ends just after the end row.
    ("[location='ca', location='sh']", [(57.3, 59.3, 3, 0.261, 8.263), (66, 69, 4, 10.263, 18.262)]),
    # [start, end): the end row closes the session without joining it; it ends at that row.
    ("[location='ca', location='sh')", [(57.3, 58.3, 2, 0.261, 8.262), (66, 68, 3, 10.263, 18.261)]),
    # (start, end]: the opening row is left out.
    ("(location='ca', location='sh']", [(58.3, 59.3, 2, 5.26, 8.263), (67, 69, 3, 13.262, 18.262)]),
    # Without brackets, as [start, end].
    ("location='ca', location='sh'", [(57.3, 59.3, 3, 0.261, 8.263), (66, 69, 4, 10.263, 18.262)]),
])
async def test_session_start_and_end_conditions(engine: Engine, located: Stream, bounds: str,
                                                expected: list[tuple]) -> None:
    plan = engine.plan(f"select min(value) as lo, max(value) as hi, count(location) as n, window_start, window_end, id "
                       f"from session(located, timestamp, 5s, {bounds}) partition by id "
                       f"group by window_start, window_end")
    execution = engine.start(plan)
    located.append_rows(["id", "location", "value", "timestamp"],
                        [["dev1", loc, value, T + timedelta(seconds=at)] for loc, value, at in _RANGE_ROWS])
    rows = await drain(execution)
    assert [(r["lo"], r["hi"], r["n"], round((r["window_start"] - T).total_seconds(), 3),
             round((r["window_end"] - T).total_seconds(), 3)) for r in rows] == expected


async def test_conditioned_sessions_survive_a_snapshot_and_close_by_timeout(engine: Engine, located: Stream) -> None:
    plan = engine.plan("select count() as n, window_start, window_end, id from "
                       "session(located, timestamp, 2s, [location='ca', location='sh']) partition by id "
                       "group by window_start, window_end")
    first = engine.start(plan)
    located.append_rows(["id", "location", "value", "timestamp"],
                        [["dev1", "xx", 1.0, T], ["dev1", "ca", 1.0, T + timedelta(seconds=1)]])
    assert await drain(first) == []
    snapshot = first.snapshot()
    first.close()
    second = engine.start(plan, snapshot)
    located.append_rows(["id", "location", "value", "timestamp"],
                        [["dev1", "xx", 1.0, T + timedelta(seconds=2)], ["dev2", "xx", 1.0, T + timedelta(seconds=9)]])
    assert await drain(second) == []  # another device's row closes no session of dev1
    located.append_rows(["id", "location", "value", "timestamp"], [["dev1", "xx", 1.0, T + timedelta(seconds=9)]])
    # dev1's session (opened at 1s, newest row 2s) timed out at 4s: its row at 9s closes it.
    assert _rows(await drain(second)) == [("dev1", 2, 1, 4)]


async def test_a_session_at_its_max_length_ends_there(engine: Engine, devices: Stream) -> None:
    """Proton's smoke test 15: session(…, 5s, 10s) over one device's rows."""
    execution = engine.start(engine.plan("select max(value) as top, window_start, window_end, id from "
                                         "session(test7_session, timestamp, 5s, 10s) partition by id "
                                         "group by window_start, window_end"))
    for seconds, value in [(0.262, 57.3), (5.261, 58.3), (8.262, 59.3), (10.263, 66), (13.262, 67), (16.262, 68),
                           (21.262, 69)]:
        _send(devices, "dev1", seconds, value)
    rows = await drain(execution)
    assert [(r["top"], round((r["window_start"] - T).total_seconds(), 3), round((r["window_end"] - T).total_seconds(), 3))
            for r in rows] == [(59.3, 0.262, 10.262), (68, 10.263, 20.263)]
