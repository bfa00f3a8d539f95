"""Stateless queries, seek_to, idle timeout, periodic emit, table(), dedup, lookups, LIMIT, execute()."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
import pytest

from sinkflow.engine import Engine
from sinkflow.streams.store import Stream

from .conftest import T0, ManualClock, car_rows, drain, emitted_after, to_batch

BASE = {"cid": "c1", "speed_kmh": 10.0, "total_km": 1.0, "gas_percent": 50.0, "locked": False, "in_use": True}


def row(ms: int, **values: object) -> dict:
    return {**BASE, **values, "_tp_time": T0 + timedelta(milliseconds=ms)}


async def test_filter_and_projection_see_only_new_events(engine: Engine, cars: Stream) -> None:
    cars.append_batch(to_batch([row(0, speed_kmh=99.0)]))  # before the query: not seen
    execution = engine.start(engine.plan(
        "select cid, speed_kmh * 2 as double_speed, if(locked, 'locked', 'open') as state, "
        "multi_if(speed_kmh > 50, 'fast', speed_kmh > 20, 'medium', 'slow') as pace, "
        "case when in_use then 1 else 0 end as used from car_live_data "
        "where speed_kmh > 20 and (cid in ('c1', 'c2') or total_km > 100)"
    ))
    cars.append_batch(to_batch([row(1, speed_kmh=30.0), row(2, speed_kmh=5.0), row(3, speed_kmh=60.0, locked=True, in_use=False),
                                row(4, speed_kmh=70.0, cid="c9")]))
    got = await drain(execution)
    assert got == [
        {"cid": "c1", "double_speed": 60.0, "state": "open", "pace": "medium", "used": 1},
        {"cid": "c1", "double_speed": 120.0, "state": "locked", "pace": "fast", "used": 0},
    ]
    assert [c.to_dict() for c in engine.plan("select cid, _tp_time from car_live_data").columns] == [
        {"name": "cid", "type": "string"}, {"name": "_tp_time", "type": "datetime64(3, 'UTC')"}]


async def test_seek_to_earliest_and_to_a_timestamp(engine: Engine, cars: Stream) -> None:
    cars.append_batch(to_batch([row(0, total_km=1.0), row(1000, total_km=2.0)]))
    cars.append_batch(to_batch([row(5000, total_km=3.0)]))
    earliest = engine.start(engine.plan("select total_km from car_live_data settings seek_to='earliest'"))
    assert [r["total_km"] for r in await drain(earliest)] == [1.0, 2.0, 3.0]
    since = engine.start(engine.plan("select total_km from car_live_data settings seek_to='2024-01-01 00:00:04'"))
    assert [r["total_km"] for r in await drain(since)] == [3.0]


async def test_idle_timeout_closes_open_windows_of_a_quiet_stream(engine: Engine, cars: Stream,
                                                                  clock: ManualClock) -> None:
    query = "select window_start, count() as n from tumble(car_live_data, 10s) group by window_start"
    with_setting = engine.start(engine.plan(query + " settings idle_timeout='300ms'"))
    engine_default = engine.start(engine.plan(query), idle_timeout=0.3)
    without = engine.start(engine.plan(query))
    executions = (with_setting, engine_default, without)
    cars.append_batch(to_batch([row(100), row(200), row(300)]))
    assert [await drain(execution) for execution in executions] == [[], [], []]
    clock.advance(0.299)
    assert [await drain(execution) for execution in executions] == [[], [], []]  # not quiet long enough yet
    clock.advance(0.002)
    closed = [[(r["window_start"] - T0, r["n"]) for r in await drain(execution)] for execution in executions]
    # Without the opt-in the window stays open, as in Timeplus.
    assert closed == [[(timedelta(0), 3)], [(timedelta(0), 3)], []]
    clock.advance(10.0)
    assert await drain(without) == []
    # A row for the window closed by the timeout is late now.
    cars.append_batch(to_batch([row(400)]))
    await drain(with_setting)
    assert with_setting.stats()["late_rows_dropped"] == 1


async def test_global_aggregation_emits_running_totals_periodically(engine: Engine, cars: Stream,
                                                                    clock: ManualClock) -> None:
    execution = engine.start(engine.plan(
        "select cid, count() as n, sum(total_km) as km from car_live_data group by cid emit periodic 200ms"))
    cars.append_batch(to_batch([row(0, cid="a", total_km=1.0), row(1, cid="b", total_km=2.0), row(2, cid="a", total_km=3.0)]))
    first = await emitted_after(execution, clock, 0.2)
    assert first == [{"cid": "a", "n": 2, "km": 4.0}, {"cid": "b", "n": 1, "km": 2.0}]
    cars.append_batch(to_batch([row(3, cid="b", total_km=5.0)]))
    second = await emitted_after(execution, clock, 0.2)
    assert second == [{"cid": "a", "n": 2, "km": 4.0}, {"cid": "b", "n": 2, "km": 7.0}]


async def test_periodic_state_survives_a_snapshot(engine: Engine, cars: Stream, clock: ManualClock) -> None:
    plan = engine.plan("select count() as n, count_distinct(cid) as cars from car_live_data emit periodic 100ms")
    execution = engine.start(plan)
    cars.append_batch(to_batch([row(0, cid="a"), row(1, cid="b")]))
    assert await emitted_after(execution, clock, 0.1) == [{"n": 2, "cars": 2}]
    restored = engine.start(plan, snapshot=execution.snapshot())
    cars.append_batch(to_batch([row(2, cid="a"), row(3, cid="c")]))
    assert await emitted_after(restored, clock, 0.1) == [{"n": 4, "cars": 3}]


def test_table_is_bounded_and_ends(engine: Engine, cars: Stream) -> None:
    rows = car_rows(3, 500, keys=4, span_ms=10_000)
    for i in range(0, 500, 100):
        cars.append_batch(to_batch(rows[i:i + 100]))
    result = engine.execute("select count() as n, sum(total_km) as km, max(speed_kmh) as top from table(car_live_data)")
    assert result.kind == "rows"
    assert result.table.to_pylist() == [{"n": 500, "km": pytest.approx(sum(r["total_km"] for r in rows)),
                                         "top": max(r["speed_kmh"] for r in rows)}]
    windows = engine.execute("select window_start, count() as n from tumble(table(car_live_data), 5s) group by window_start")
    assert [r["n"] for r in windows.table.to_pylist()] == [
        sum(1 for r in rows if r["_tp_time"] < T0 + timedelta(seconds=5)),
        sum(1 for r in rows if r["_tp_time"] >= T0 + timedelta(seconds=5)),
    ]
    plan = engine.plan("select cid from table(car_live_data) where speed_kmh > 60")
    assert plan.bounded
    execution = engine.start(plan)
    got = execution.run_to_end()
    assert execution.finished
    assert got.num_rows == sum(1 for r in rows if r["speed_kmh"] > 60)


def test_count_over_an_empty_table_is_zero(engine: Engine, cars: Stream) -> None:
    assert engine.execute("select count() as n from table(car_live_data)").table.to_pylist() == [{"n": 0}]


async def test_dedup_drops_repeated_keys_within_the_ttl(engine: Engine, cars: Stream) -> None:
    plan = engine.plan("select cid, total_km from dedup(car_live_data, cid, 10s)")
    execution = engine.start(plan)
    cars.append_batch(to_batch([row(0, cid="a", total_km=1.0), row(1, cid="b", total_km=2.0), row(2, cid="a", total_km=3.0)]))
    assert await drain(execution) == [{"cid": "a", "total_km": 1.0}, {"cid": "b", "total_km": 2.0}]
    restored = engine.start(plan, snapshot=execution.snapshot())
    cars.append_batch(to_batch([row(5000, cid="a", total_km=4.0), row(11_000, cid="a", total_km=5.0)]))
    assert await drain(restored) == [{"cid": "a", "total_km": 5.0}]  # 5s: still within 10s; 11s: expired
    assert restored.stats()["dedup_rows_dropped"] == 2


async def test_join_with_a_dimension_table_looks_up_and_follows_updates(engine: Engine, cars: Stream, dims: Stream) -> None:
    dims.append_rows(["cid", "license_plate", "model"], [["a", "KA-01", "tesla"], ["b", "KB-02", "bmw"]])
    execution = engine.start(engine.plan(
        "select c.cid, d.license_plate, speed_kmh from car_live_data as c "
        "join table(dim_car_info) as d on c.cid = d.cid"))
    left = engine.start(engine.plan(
        "select cid, model from car_live_data left join table(dim_car_info) as d on car_live_data.cid = d.cid"))
    cars.append_batch(to_batch([row(0, cid="a", speed_kmh=1.0), row(1, cid="x", speed_kmh=2.0), row(2, cid="b", speed_kmh=3.0)]))
    assert await drain(execution) == [{"cid": "a", "license_plate": "KA-01", "speed_kmh": 1.0},
                                      {"cid": "b", "license_plate": "KB-02", "speed_kmh": 3.0}]
    assert await drain(left) == [{"cid": "a", "model": "tesla"}, {"cid": "x", "model": None}, {"cid": "b", "model": "bmw"}]
    dims.append_rows(["cid", "license_plate", "model"], [["x", "KX-99", "vw"]])
    cars.append_batch(to_batch([row(3, cid="x", speed_kmh=4.0)]))
    assert await drain(execution) == [{"cid": "x", "license_plate": "KX-99", "speed_kmh": 4.0}]


async def test_limit_ends_a_streaming_query(engine: Engine, cars: Stream) -> None:
    execution = engine.start(engine.plan("select total_km from car_live_data limit 3"))
    cars.append_batch(to_batch([row(0, total_km=1.0), row(1, total_km=2.0)]))
    assert await drain(execution) == [{"total_km": 1.0}, {"total_km": 2.0}]
    assert not execution.finished
    cars.append_batch(to_batch([row(2, total_km=3.0), row(3, total_km=4.0)]))
    assert await drain(execution) == [{"total_km": 3.0}]
    assert execution.finished
    assert await execution.step(0) == []
    restored = engine.start(engine.plan("select total_km from car_live_data limit 3"), snapshot=execution.snapshot())
    assert restored.finished


def test_execute_runs_statements_and_starts_streaming_selects(engine: Engine, store) -> None:
    status = engine.execute("create stream s (a int32, b string)")
    assert status.kind == "status"
    assert store.exists("s")
    engine.execute("insert into s (a, b) values (1, 'x'), (2, 'y')")
    rows = engine.execute("select a, b from table(s) where a > 1")
    assert rows.kind == "rows" and rows.table.to_pylist() == [{"a": 2, "b": "y"}]
    stream = engine.execute("select a from s")
    assert stream.kind == "stream" and stream.execution is not None
    assert stream.execution.schema == pa.schema([pa.field("a", pa.int32())])
    stream.execution.close()


def test_bounded_order_by_and_limit_sort_all_rows_first(engine: Engine, cars: Stream) -> None:
    cars.append_batch(to_batch([row(0, cid="b", total_km=2.0), row(1, cid="a", total_km=3.0)]))
    cars.append_batch(to_batch([row(2, cid="c", total_km=1.0), row(3, cid="a", total_km=0.5)]))
    result = engine.execute("select cid, total_km from table(car_live_data) order by total_km desc limit 3")
    assert result.table.to_pylist() == [{"cid": "a", "total_km": 3.0}, {"cid": "b", "total_km": 2.0},
                                        {"cid": "c", "total_km": 1.0}]
    counts = engine.execute("select cid, count() as n from table(car_live_data) group by cid order by n desc, cid")
    assert counts.table.to_pylist() == [{"cid": "a", "n": 2}, {"cid": "b", "n": 1}, {"cid": "c", "n": 1}]


def test_bounded_windows_keep_out_of_order_rows(engine: Engine, cars: Stream) -> None:
    # In a bounded query nothing is late: every stored row counts, as in a one-shot GROUP BY.
    cars.append_batch(to_batch([row(9000), row(500)]))
    cars.append_batch(to_batch([row(100), row(2100)]))
    result = engine.execute("select window_start, count() as n from tumble(table(car_live_data), 2s) group by window_start")
    assert [((r["window_start"] - T0).total_seconds(), r["n"]) for r in result.table.to_pylist()] == [
        (0.0, 2), (2.0, 1), (8.0, 1)]


async def test_windowed_aggregation_over_a_lookup_join(engine: Engine, cars: Stream, dims: Stream) -> None:
    dims.append_rows(None, [["a", "KA", "tesla"], ["b", "KB", "bmw"], ["c", "KC", "tesla"]])
    execution = engine.start(engine.plan(
        "select window_start, d.model, count() as n, max(c._tp_time) as last from tumble(car_live_data, 5s) as c "
        "join table(dim_car_info) as d on c.cid = d.cid group by window_start, d.model"))
    cars.append_batch(to_batch([row(0, cid="a"), row(1, cid="b"), row(2, cid="c"), row(3, cid="a"), row(4, cid="x")]))
    cars.append_batch(to_batch([row(9000, cid="a")]))
    got = await drain(execution)
    assert [(r["model"], r["n"], r["last"]) for r in got] == [
        ("bmw", 1, T0 + timedelta(milliseconds=1)), ("tesla", 3, T0 + timedelta(milliseconds=3))]
    assert str(execution.schema.field("last").type) == "timestamp[ms, tz=UTC]"  # max keeps the column's type


async def test_rows_dropped_by_dedup_still_move_the_watermark(engine: Engine, cars: Stream) -> None:
    execution = engine.start(engine.plan(
        "select window_start, cid, count() as n from tumble(dedup(car_live_data, cid, 1h), 5s) group by window_start, cid"))
    cars.append_batch(to_batch([row(0, cid="a"), row(1, cid="b"), row(2, cid="a")]))
    cars.append_batch(to_batch([row(9000, cid="a")]))  # a duplicate of 'a': dropped, but time moved on
    assert [(r["cid"], r["n"]) for r in await drain(execution)] == [("a", 1), ("b", 1)]


async def test_a_query_failing_on_the_data_reports_it_and_stays_failed(engine: Engine, store) -> None:
    from sinkflow.errors import SqlError
    from sinkflow.streams.types import Column, parse_type

    texts = store.create("texts", [Column("v", parse_type("string"))])
    execution = engine.start(engine.plan("select to_int32(v) as n from texts"))
    texts.append_rows(["v"], [["7"]])
    assert await drain(execution) == [{"n": 7}]
    texts.append_rows(["v"], [["seven"]])
    for _ in range(2):  # the failure sticks: the state is not trusted after it
        with pytest.raises(SqlError, match="the query failed on the data read from 'texts'"):
            await execution.step(0)


async def test_group_array_keeps_arrival_order_across_steps_and_snapshots(engine: Engine, cars: Stream,
                                                                          clock: ManualClock) -> None:
    plan = engine.plan("select cid, group_array(total_km) as kms from car_live_data group by cid emit periodic 100ms")
    execution = engine.start(plan)
    cars.append_batch(to_batch([row(5, cid="a", total_km=3.0), row(1, cid="b", total_km=9.0), row(0, cid="a", total_km=1.0)]))
    assert await emitted_after(execution, clock, 0.1) == [{"cid": "a", "kms": [3.0, 1.0]}, {"cid": "b", "kms": [9.0]}]
    restored = engine.start(plan, snapshot=execution.snapshot())
    cars.append_batch(to_batch([row(2, cid="a", total_km=2.0)]))
    assert await emitted_after(restored, clock, 0.1) == [{"cid": "a", "kms": [3.0, 1.0, 2.0]},
                                                         {"cid": "b", "kms": [9.0]}]


def test_boolean_connectives_and_case_filter_and_project_rows(engine: Engine, cars: Stream) -> None:
    cars.append_batch(to_batch([row(0, cid="a", speed_kmh=50.0, locked=True), row(1, cid="b", speed_kmh=50.0, locked=False),
                                row(2, cid="c", speed_kmh=5.0, locked=False), row(3, cid="d", speed_kmh=150.0, locked=True)]))
    result = engine.execute(
        "select cid, case when speed_kmh > 100 then 'fast' when speed_kmh > 10 then 'ok' else 'slow' end as pace,\n"
        "  case cid when 'a' then 1 when 'd' then 4 else 0 end as code, xor(locked, speed_kmh > 100) as odd\n"
        "from table(car_live_data)\nwhere speed_kmh > 1 and (speed_kmh < 100 or not in_use) and not (cid = 'c')")
    assert result.table.to_pylist() == [
        {"cid": "a", "pace": "ok", "code": 1, "odd": True},
        {"cid": "b", "pace": "ok", "code": 0, "odd": False},
    ]
