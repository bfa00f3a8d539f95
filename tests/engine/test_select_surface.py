"""The SELECT surface on the operator graph: top_k/min_k/max_k, aggregate FILTER, LIMIT BY, ORDER BY
of each emit, OFFSET and reused aliases, end to end."""

from __future__ import annotations

from datetime import timedelta

from sinkflow.engine import Engine
from sinkflow.streams.store import Stream

from .conftest import T0, drain, to_batch


def _row(cid: str, speed: float, ms: int, locked: bool = False) -> dict:
    return {"cid": cid, "speed_kmh": speed, "total_km": 1.0, "gas_percent": 50.0, "locked": locked, "in_use": True,
            "_tp_time": T0 + timedelta(milliseconds=ms)}


ROWS = [_row("a", 10, 0), _row("b", 50, 100, True), _row("a", 30, 200), _row("c", 70, 300, True),
        _row("a", 20, 400), _row("b", 40, 500)]


def _table(engine: Engine, sql: str) -> list[dict]:
    result = engine.execute(sql)
    assert result.kind == "rows" and result.table is not None
    return result.table.to_pylist()


def test_top_k_min_k_max_k(engine: Engine, cars: Stream) -> None:
    cars.append_batch(to_batch(ROWS))
    assert _table(engine, "select top_k(cid, 2) as top, min_k(speed_kmh, 2) as low, max_k(speed_kmh, 3) as high "
                          "from table(car_live_data)") == [{"top": ["a", "b"], "low": [10.0, 20.0], "high": [70.0, 50.0, 40.0]}]


async def test_max_k_in_a_streaming_window(engine: Engine, cars: Stream) -> None:
    execution = engine.start(engine.plan("select window_start, max_k(speed_kmh, 2) as fastest, latest(cid) as last "
                                         "from tumble(car_live_data, 1s) group by window_start"))
    cars.append_batch(to_batch(ROWS))
    cars.append_batch(to_batch([_row("z", 1, 5000)]))
    assert [(r["fastest"], r["last"]) for r in await drain(execution)] == [([70.0, 50.0], "b")]


def test_aggregate_filter_where(engine: Engine, cars: Stream) -> None:
    cars.append_batch(to_batch(ROWS))
    assert _table(engine, "select count() filter (where locked) as locked_n, avg(speed_kmh) filter (where cid = 'a') "
                          "as a_speed, count(cid) filter (where speed_kmh > 25) as fast from table(car_live_data)") == [
        {"locked_n": 2, "a_speed": 20.0, "fast": 4}]


def test_limit_by_offset_and_reused_aliases(engine: Engine, cars: Stream) -> None:
    cars.append_batch(to_batch(ROWS))
    assert _table(engine, "select cid, speed_kmh from table(car_live_data) order by speed_kmh desc limit 1 by cid") == [
        {"cid": "c", "speed_kmh": 70.0}, {"cid": "b", "speed_kmh": 50.0}, {"cid": "a", "speed_kmh": 30.0}]
    assert _table(engine, "select cid, speed_kmh from table(car_live_data) order by speed_kmh limit 2 offset 1") == [
        {"cid": "a", "speed_kmh": 20.0}, {"cid": "a", "speed_kmh": 30.0}]
    assert _table(engine, "select speed_kmh * 2 as double, double + 1 as more from table(car_live_data) "
                          "where double > 100") == [{"double": 140.0, "more": 141.0}]
    assert _table(engine, "select cid, min(_tp_time) as first, max(_tp_time) as last, date_diff('ms', first, last) as span "
                          "from table(car_live_data) group by cid order by cid")[0]["span"] == 400


async def test_order_by_and_limit_by_apply_to_each_emit_of_a_window(engine: Engine, cars: Stream) -> None:
    execution = engine.start(engine.plan(
        "select window_start, cid, max(speed_kmh) as top from tumble(car_live_data, 1s) group by window_start, cid "
        "order by top desc limit 2 by window_start"))
    cars.append_batch(to_batch(ROWS + [_row("a", 99, 1100), _row("b", 5, 1200)]))
    cars.append_batch(to_batch([_row("z", 1, 5000)]))
    got = [((r["window_start"] - T0).seconds, r["cid"], r["top"]) for r in await drain(execution)]
    assert got == [(0, "c", 70.0), (0, "b", 50.0), (1, "a", 99.0), (1, "b", 5.0)]


async def test_limit_by_of_a_streaming_query_counts_across_batches(engine: Engine, cars: Stream) -> None:
    execution = engine.start(engine.plan("select cid, speed_kmh from car_live_data limit 1 by cid"))
    cars.append_batch(to_batch(ROWS[:3]))
    cars.append_batch(to_batch(ROWS[3:]))
    assert [r["cid"] for r in await drain(execution)] == ["a", "b", "c"]


async def test_lag_looks_back_across_batches_and_snapshots(engine: Engine, cars: Stream) -> None:
    plan = engine.plan("select cid, speed_kmh, lag(speed_kmh) as prev, lag(speed_kmh, 2, -1) as before "
                       "from car_live_data where cid != 'b'")
    first = engine.start(plan)
    cars.append_batch(to_batch(ROWS[:3]))  # a, b (filtered out), a
    assert [(r["speed_kmh"], r["prev"], r["before"]) for r in await drain(first)] == [(10.0, 0.0, -1.0),
                                                                                      (30.0, 10.0, -1.0)]
    snapshot = first.snapshot()
    first.close()
    second = engine.start(plan, snapshot)
    cars.append_batch(to_batch(ROWS[3:]))  # c, a, b (filtered out)
    assert [(r["cid"], r["prev"], r["before"]) for r in await drain(second)] == [("c", 30.0, 10.0), ("a", 70.0, 30.0)]


def test_order_by_columns_and_aggregates_that_are_not_selected(engine: Engine, cars: Stream) -> None:
    cars.append_batch(to_batch(ROWS))
    assert _table(engine, "select cid from table(car_live_data) order by _tp_time desc limit 2") == [
        {"cid": "b"}, {"cid": "a"}]
    assert _table(engine, "select cid from table(car_live_data) group by cid order by max(speed_kmh) desc") == [
        {"cid": "c"}, {"cid": "b"}, {"cid": "a"}]


async def test_lag_partitioned_by_a_key(engine: Engine, cars: Stream) -> None:
    execution = engine.start(engine.plan("select cid, speed_kmh, lag(speed_kmh) as prev from car_live_data "
                                         "partition by cid"))
    cars.append_batch(to_batch(ROWS[:3]))
    cars.append_batch(to_batch(ROWS[3:]))
    assert [(r["cid"], r["prev"]) for r in await drain(execution)] == [
        ("a", 0.0), ("b", 0.0), ("a", 10.0), ("c", 0.0), ("a", 30.0), ("b", 50.0)]


async def test_aggregate_state_ttl_drops_groups_without_recent_rows(engine: Engine, cars: Stream) -> None:
    execution = engine.start(engine.plan("select cid, count() as n from car_live_data group by cid "
                                         "emit on update settings aggregate_state_ttl_sec=10"))
    cars.append_batch(to_batch([_row("a", 1, 0), _row("b", 1, 1000)]))
    assert [(r["cid"], r["n"]) for r in await drain(execution)] == [("a", 1), ("b", 1)]
    cars.append_batch(to_batch([_row("b", 1, 10_500)]))  # 'a' last seen 10.5s before the newest row
    assert [(r["cid"], r["n"]) for r in await drain(execution)] == [("b", 2)]
    assert execution.stats()["groups_expired"] == 1
    cars.append_batch(to_batch([_row("a", 1, 11_000)]))  # 'a' starts over
    assert [(r["cid"], r["n"]) for r in await drain(execution)] == [("a", 1)]


async def test_limit_by_a_key_the_select_does_not_output(engine: Engine, cars: Stream) -> None:
    execution = engine.start(engine.plan(
        "select cid, max(speed_kmh) as top from tumble(car_live_data, 1s) group by window_start, cid "
        "order by top desc limit 1 by window_start"))
    cars.append_batch(to_batch(ROWS + [_row("a", 99, 1100), _row("b", 5, 1200)]))
    cars.append_batch(to_batch([_row("z", 1, 5000)]))
    assert await drain(execution) == [{"cid": "c", "top": 70.0}, {"cid": "a", "top": 99.0}]


async def test_subqueries_in_expressions_read_a_snapshot_taken_at_the_start(engine: Engine, cars: Stream) -> None:
    cars.append_batch(to_batch(ROWS))
    assert _table(engine, "select cid, speed_kmh from table(car_live_data) "
                          "where speed_kmh in (select max(speed_kmh) from table(car_live_data))") == [
        {"cid": "c", "speed_kmh": 70.0}]
    # The average of the six speeds is 36.67; the subquery reads its stream as table().
    assert _table(engine, "select cid, round(speed_kmh - (select avg(speed_kmh) from car_live_data), 2) as above "
                          "from table(car_live_data) where cid = 'b'") == [{"cid": "b", "above": 13.33},
                                                                           {"cid": "b", "above": 3.33}]
    execution = engine.start(engine.plan("select cid from car_live_data "
                                         "where cid in (select cid from table(car_live_data) where locked)"))
    cars.append_batch(to_batch([_row("a", 1, 900), _row("c", 1, 901), _row("b", 1, 902)]))
    assert [r["cid"] for r in await drain(execution)] == ["c", "b"]


async def test_lag_in_an_aggregation_looks_back_over_emitted_rows(engine: Engine, cars: Stream) -> None:
    plan = engine.plan("select window_start, count(*) as n, lag(n) as prev, n - lag(n, 1, 0) as diff "
                       "from tumble(car_live_data, 1s) group by window_start")
    first = engine.start(plan)
    counts = [3, 1, 4]
    cars.append_batch(to_batch([_row("a", 1, second * 1000 + k) for second, n in enumerate(counts) for k in range(n)]))
    cars.append_batch(to_batch([_row("a", 1, 3000)]))
    assert [(r["n"], r["prev"], r["diff"]) for r in await drain(first)] == [(3, None, 3), (1, 3, -2), (4, 1, 3)]
    snapshot = first.snapshot()
    first.close()
    second = engine.start(plan, snapshot)
    cars.append_batch(to_batch([_row("a", 1, 9000)]))
    assert [(r["n"], r["prev"], r["diff"]) for r in await drain(second)] == [(1, 4, -3)]
