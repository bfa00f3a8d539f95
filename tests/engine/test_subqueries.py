"""CTEs, subqueries in FROM, UNION ALL, SELECT without FROM and the hidden _tp_sn column, end to end."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sinkflow.engine import Engine
from sinkflow.streams.store import Stream

from .conftest import T0, append_in_batches, car_rows, drain, step_until, to_batch


def _row(cid: str, speed: float, ms: int) -> dict:
    return {"cid": cid, "speed_kmh": speed, "total_km": 1.0, "gas_percent": 50.0, "locked": False, "in_use": True,
            "_tp_time": T0 + timedelta(milliseconds=ms)}


async def test_a_cte_filters_before_a_tumble_window_over_it(engine: Engine, cars: Stream) -> None:
    sql = ("with fast as (select cid, speed_kmh, _tp_time from car_live_data where speed_kmh > 50) "
           "select window_start, cid, count() as n, max(speed_kmh) as top from tumble(fast, 2s) "
           "group by window_start, cid")
    execution = engine.start(engine.plan(sql))
    cars.append_batch(to_batch([_row("a", 60, 0), _row("a", 10, 100), _row("b", 70, 500), _row("a", 80, 1500)]))
    cars.append_batch(to_batch([_row("a", 90, 2100)]))
    cars.append_batch(to_batch([_row("z", 99, 9000)]))  # moves the watermark past both windows
    rows = await drain(execution)
    got = [(r["window_start"] - T0, r["cid"], r["n"], r["top"]) for r in rows]
    assert got == [(timedelta(0), "a", 2, 80.0), (timedelta(0), "b", 1, 70.0), (timedelta(seconds=2), "a", 1, 90.0)]
    execution.close()


async def test_windows_over_windows_and_their_snapshot(engine: Engine, cars: Stream) -> None:
    sql = ("with w as (select window_end, cid, count() as n from tumble(car_live_data, 1s) group by window_end, cid) "
           "select window_start, sum(n) as total, count() as groups from tumble(w, window_end, 4s) group by window_start")
    plan = engine.plan(sql + " settings seek_to='earliest'")
    rows = car_rows(7, 200, keys=3, span_ms=12_000)
    append_in_batches(cars, rows[:100], 25)
    first = engine.start(plan)
    got = await drain(first)
    snapshot = first.snapshot()
    first.close()
    append_in_batches(cars, rows[100:], 25)
    cars.append_batch(to_batch([_row("z", 1, 60_000)]))
    second = engine.start(plan, snapshot)
    got += await drain(second)
    second.close()
    # An event's 1s window ends at the next whole second; that end falls into one 4s window. The
    # outer watermark is the newest inner window end (12s), so the 4s windows up to 12s are emitted.
    per_window: dict[int, int] = {}
    for r in rows:
        start = ((r["_tp_time"] - T0) // timedelta(seconds=1) + 1) // 4
        if (start + 1) * 4 <= 12:
            per_window[start] = per_window.get(start, 0) + 1
    assert [(r["window_start"] - T0) // timedelta(seconds=4) for r in got] == sorted(per_window)
    assert [r["total"] for r in got] == [per_window[k] for k in sorted(per_window)]


def test_a_subquery_in_from_aggregated_then_filtered(engine: Engine, cars: Stream) -> None:
    cars.append_batch(to_batch([_row("a", 1, 0), _row("a", 2, 1), _row("b", 3, 2), _row("c", 4, 3), _row("c", 5, 4)]))
    result = engine.execute("select cid, n from (select cid, count() as n from table(car_live_data) group by cid) "
                            "where n > 1 order by cid")
    assert result.table is not None
    assert result.table.to_pylist() == [{"cid": "a", "n": 2}, {"cid": "c", "n": 2}]


def test_table_of_a_cte_reads_its_streams_as_tables(engine: Engine, cars: Stream) -> None:
    cars.append_batch(to_batch([_row("a", 1, 0), _row("b", 90, 1), _row("c", 95, 2)]))
    result = engine.execute("with fast as (select cid from car_live_data where speed_kmh > 50) "
                            "select count() as n from table(fast)")
    assert result.kind == "rows" and result.table is not None
    assert result.table.to_pylist() == [{"n": 2}]


async def test_dedup_over_a_cte(engine: Engine, cars: Stream) -> None:
    execution = engine.start(engine.plan("with c as (select * from car_live_data where speed_kmh > 0) "
                                         "select cid, speed_kmh from dedup(c, cid)"))
    cars.append_batch(to_batch([_row("a", 1, 0), _row("a", 2, 1), _row("b", 3, 2), _row("a", 0, 3)]))
    cars.append_batch(to_batch([_row("b", 4, 4), _row("c", 5, 5)]))
    assert await drain(execution) == [{"cid": "a", "speed_kmh": 1.0}, {"cid": "b", "speed_kmh": 3.0},
                                      {"cid": "c", "speed_kmh": 5.0}]


async def test_union_all_merges_two_queries_and_keeps_the_first_names(engine: Engine, cars: Stream, dims: Stream) -> None:
    dims.append_rows(["cid", "license_plate", "model"], [["a", "AB-1", "m1"]])
    execution = engine.start(engine.plan(
        "select cid, speed_kmh as value from car_live_data where speed_kmh > 10 "
        "union all select cid, total_km from car_live_data where speed_kmh <= 10"))
    cars.append_batch(to_batch([_row("a", 50, 0), _row("b", 5, 1)]))
    rows = await step_until(execution, lambda out: len(out) >= 2)
    assert sorted((r["cid"], r["value"]) for r in rows) == [("a", 50.0), ("b", 1.0)]
    assert execution.schema.names == ["cid", "value"]
    execution.close()


async def test_null_goes_through_union_all_of_streams(engine: Engine, cars: Stream, dims: Stream) -> None:
    """A column that is NULL in one query of a UNION ALL takes the other queries' type (as Proton)."""
    execution = engine.start(engine.plan(
        "select null as cid, speed_kmh from car_live_data union all select cid, null from dim_car_info"))
    assert [c.type.name for c in execution.plan.columns] == ["string", "float64"]
    cars.append_batch(to_batch([_row("a", 50, 0)]))
    dims.append_rows(["cid", "license_plate", "model"], [["d", "AB-1", "m1"]])
    rows = await step_until(execution, lambda out: len(out) >= 2)
    assert sorted(rows, key=lambda r: r["speed_kmh"] is None) == [{"cid": None, "speed_kmh": 50.0},
                                                                  {"cid": "d", "speed_kmh": None}]
    execution.close()


def test_select_without_from_answers_one_row(engine: Engine) -> None:
    result = engine.execute("select to_int('1') as one, 1 + 1 as two, lower('AB') as s")
    assert result.kind == "rows" and result.table is not None
    assert result.table.to_pylist() == [{"one": 1, "two": 2, "s": "ab"}]


async def test_tp_sn_is_the_log_sequence_number_and_a_where_on_it_seeks(engine: Engine, cars: Stream) -> None:
    cars.append_batch(to_batch([_row(f"c{i}", i, i) for i in range(5)]))
    execution = engine.start(engine.plan("select _tp_sn, cid from car_live_data where _tp_sn >= 3"))
    assert await drain(execution) == [{"_tp_sn": 3, "cid": "c3"}, {"_tp_sn": 4, "cid": "c4"}]
    cars.append_batch(to_batch([_row("c5", 5, 5)]))
    assert await drain(execution) == [{"_tp_sn": 5, "cid": "c5"}]
    execution.close()


async def test_seek_to_a_sequence_number_and_a_where_on_tp_time_rewinds(engine: Engine, cars: Stream) -> None:
    cars.append_batch(to_batch([_row(f"c{i}", i, i * 1000) for i in range(4)]))
    by_sn = engine.start(engine.plan("select cid from car_live_data settings seek_to='2'"))
    assert [r["cid"] for r in await drain(by_sn)] == ["c2", "c3"]
    by_time = engine.start(engine.plan("select cid from car_live_data where _tp_time >= '2024-01-01 00:00:01'"))
    assert [r["cid"] for r in await drain(by_time)] == ["c1", "c2", "c3"]
    tail = engine.start(engine.plan("select cid from car_live_data where speed_kmh >= 0"))
    assert await drain(tail) == []  # without such a bound, a streaming query reads new rows only


def test_query_mode_table_makes_a_query_bounded(engine: Engine, cars: Stream) -> None:
    cars.append_batch(to_batch([_row("a", 1, 0), _row("b", 2, 1)]))
    result = engine.execute("select count() as n from car_live_data settings query_mode='table'")
    assert result.kind == "rows" and result.table is not None
    assert result.table.to_pylist() == [{"n": 2}]


def test_explain_answers_the_operator_tree(engine: Engine, cars: Stream) -> None:
    result = engine.execute("EXPLAIN select window_start, count() as n from tumble(car_live_data, 2s) "
                            "where speed_kmh > 1 group by window_start")
    assert result.kind == "rows" and result.table is not None
    assert result.table.column("explain").to_pylist() == [
        "Project window_start datetime64(3, 'UTC'), n int64", "  Emit watermark delay 0s",
        "    Aggregate 0 key(s): count", "      Window tumble(_tp_time, 2s)", "        Filter",
        "          Scan car_live_data"]


@pytest.mark.parametrize(("where", "expected"), [
    ("_tp_sn = 1", ["c1"]), ("_tp_sn < 2", ["c0", "c1"]), ("_tp_sn <= 2", ["c0", "c1", "c2"]), ("_tp_sn > 2", ["c3"]),
    ("_tp_sn != 2", ["c0", "c1", "c3"]), ("_tp_time = '2024-01-01 00:00:01'", ["c1"]),
    ("_tp_time < '2024-01-01 00:00:02'", ["c0", "c1"]), ("_tp_time >= earliest_ts()", ["c0", "c1", "c2", "c3"]),
    ("_tp_time = '2024-01-01 00:00:00' or _tp_time = '2024-01-01 00:00:03'", ["c0", "c3"]),
])
async def test_a_where_on_tp_sn_or_tp_time_reads_the_rows_it_names(engine: Engine, cars: Stream, where: str,
                                                                  expected: list[str]) -> None:
    """As Proton's 0020_seek_to smoke tests: such a predicate rewinds a streaming query."""
    cars.append_batch(to_batch([_row(f"c{i}", i, i * 1000) for i in range(4)]))
    execution = engine.start(engine.plan(f"select cid from car_live_data where {where}"))
    assert [r["cid"] for r in await drain(execution)] == expected


async def test_a_where_on_tp_sn_rewinds_the_stream_under_a_subquery(engine: Engine, cars: Stream) -> None:
    cars.append_batch(to_batch([_row(f"c{i}", i, i * 1000) for i in range(4)]))
    execution = engine.start(engine.plan("select cid from (select *, _tp_sn from car_live_data) where _tp_sn = 0"))
    assert [r["cid"] for r in await drain(execution)] == ["c0"]


async def test_dedup_with_a_zero_ttl_and_a_key_limit_forgets_the_oldest_keys(engine: Engine, cars: Stream) -> None:
    execution = engine.start(engine.plan("select cid from dedup(car_live_data, cid, 0s, 2)"))
    cars.append_batch(to_batch([_row("a", 1, 0), _row("b", 1, 1), _row("a", 1, 2)]))
    cars.append_batch(to_batch([_row("c", 1, 3)]))  # a third key: 'a', kept longest ago, is forgotten
    cars.append_batch(to_batch([_row("a", 1, 4), _row("c", 1, 5)]))
    assert [r["cid"] for r in await drain(execution)] == ["a", "b", "c", "a"]
