"""Streaming tumble/hop aggregation must equal a one-shot DuckDB GROUP BY over the same rows."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import duckdb
import pyarrow as pa
import pytest

from sinkflow.engine import Engine
from sinkflow.engine.compile import connect
from sinkflow.streams.store import Stream

from .conftest import SEED_QUERY, T0, append_in_batches, car_rows, disorder, drain, to_batch

FLUSH = {"cid": "flush", "speed_kmh": 0.0, "total_km": 0.0, "gas_percent": 0.0, "locked": False, "in_use": False}


def flush_row(minutes: int = 60) -> dict:
    """A row far in event time: its batch moves the watermark past every earlier window."""
    return {**FLUSH, "_tp_time": T0 + timedelta(minutes=minutes)}


def one_shot(rows: list[dict], sql: str) -> list[dict]:
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    table = to_batch(rows)
    con.register("t", pa.Table.from_batches([table]).append_column("arrival", pa.array(range(len(rows)), pa.int64())))
    return con.sql(sql).to_arrow_table().to_pylist()


def assert_same_rows(got: list[dict], expected: list[dict]) -> None:
    """Equal rows in equal order; floats within 1e-9 relative (incremental sums differ in the last bits)."""
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g.keys() == e.keys(), f"row {i}"
        for k in g:
            if isinstance(e[k], float) and isinstance(g[k], float):
                assert math.isclose(g[k], e[k], rel_tol=1e-9), f"row {i} column {k}: {g[k]} != {e[k]}"
            else:
                assert g[k] == e[k], f"row {i} column {k}: {g} != {e}"


def shuffled_within_batches(rows: list[dict], size: int, seed: int) -> list[dict]:
    """Rows out of order inside each ingest batch (never late: the watermark moves per batch)."""
    rnd = random.Random(seed)
    out: list[dict] = []
    for i in range(0, len(rows), size):
        chunk = rows[i:i + size]
        rnd.shuffle(chunk)
        out.extend(chunk)
    return out


SEED_REFERENCE = """
SELECT make_timestamp(ws + 2000000)::TIMESTAMPTZ AS time, cid, avg(speed_kmh) AS speed_kmh, max(total_km) AS total_km,
       avg(gas_percent) AS gas_percent, min(locked) AS locked, min(in_use) AS in_use
FROM (SELECT *, epoch_us(_tp_time) // 2000000 * 2000000 AS ws FROM t) GROUP BY ws, cid ORDER BY ws, cid
"""


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_seed_query_equals_one_shot_group_by(engine: Engine, cars: Stream, seed: int) -> None:
    rows = car_rows(seed, 1500, keys=7, span_ms=30_000)
    execution = engine.start(engine.plan(SEED_QUERY))
    append_in_batches(cars, shuffled_within_batches(rows, 100, seed), 100)
    cars.append_batch(to_batch([flush_row()]))
    got = await drain(execution)
    expected = one_shot(rows, SEED_REFERENCE)
    assert len(expected) > 50
    assert_same_rows(got, expected)
    assert execution.stats()["late_rows_dropped"] == 0
    assert [f.name for f in execution.schema] == ["time", "cid", "speed_kmh", "total_km", "gas_percent", "locked", "in_use"]
    assert str(execution.schema.field("time").type) == "timestamp[ms, tz=UTC]"


AGG_QUERY = """
select window_start, cid, count() as n, sum(speed_kmh) as s, min(total_km) as mn, max(total_km) as mx,
       count_distinct(in_use) as cd, earliest(speed_kmh) as e, latest(speed_kmh) as l,
       arg_min(total_km, speed_kmh) as amin, arg_max(total_km, speed_kmh) as amax, any(gas_percent) as a,
       p90(speed_kmh) as p, quantile(gas_percent, 0.5) as q, group_array(total_km) as ga, unique(in_use) as u
from tumble(car_live_data, 3s) where speed_kmh > 5 group by window_start, cid having count() > 1
emit after watermark with delay 1s
"""
AGG_REFERENCE = """
SELECT make_timestamp(ws)::TIMESTAMPTZ AS window_start, cid, count(*) AS n, sum(speed_kmh) AS s,
       min(total_km) AS mn, max(total_km) AS mx, count(DISTINCT in_use) AS cd,
       arg_min(speed_kmh, _tp_time) AS e, arg_max(speed_kmh, _tp_time) AS l,
       arg_min(total_km, speed_kmh) AS amin, arg_max(total_km, speed_kmh) AS amax, arg_min(gas_percent, arrival) AS a,
       quantile_cont(speed_kmh, 0.9) AS p, quantile_cont(gas_percent, 0.5) AS q,
       list(total_km ORDER BY arrival) AS ga, count(DISTINCT in_use) AS u
FROM (SELECT *, epoch_us(_tp_time) // 3000000 * 3000000 AS ws FROM t WHERE speed_kmh > 5)
GROUP BY ws, cid HAVING count(*) > 1 ORDER BY ws, cid
"""


@pytest.mark.parametrize("seed", [4, 5, 6])
async def test_tumble_aggregates_with_out_of_order_rows_equal_one_shot(engine: Engine, cars: Stream, seed: int) -> None:
    rows = car_rows(seed, 1200, keys=4, span_ms=30_000)
    arriving = disorder(rows, seed, max_ms=900)  # within the 1s delay: nothing may be late
    execution = engine.start(engine.plan(AGG_QUERY))
    append_in_batches(cars, arriving, 37)
    cars.append_batch(to_batch([flush_row()]))
    got = await drain(execution)
    expected = one_shot(arriving, AGG_REFERENCE)
    assert len(expected) > 20
    assert_same_rows(got, expected)
    assert execution.stats()["late_rows_dropped"] == 0


HOP_QUERY = """
select window_start, window_end, cid, count() as n, avg(speed_kmh) as a, max(gas_percent) as g
from hop(car_live_data, _tp_time, 1s, 3s) group by window_start, window_end, cid
emit after watermark with delay 500ms
"""


@pytest.mark.parametrize("seed", [7, 8])
async def test_hop_equals_one_shot_over_overlapping_windows(engine: Engine, cars: Stream, seed: int) -> None:
    rows = car_rows(seed, 800, keys=3, span_ms=20_000)
    arriving = disorder(rows, seed, max_ms=400)
    execution = engine.start(engine.plan(HOP_QUERY))
    append_in_batches(cars, arriving, 50)
    cars.append_batch(to_batch([flush_row()]))
    got = await drain(execution)
    first = int(T0.timestamp() * 1_000_000) - 3_000_000
    expected = one_shot(arriving, f"""
        WITH w AS (SELECT range AS ws FROM range({first}, {first + 30_000_000}, 1000000))
        SELECT make_timestamp(ws)::TIMESTAMPTZ AS window_start, make_timestamp(ws + 3000000)::TIMESTAMPTZ AS window_end,
               cid, count(*) AS n, avg(speed_kmh) AS a, max(gas_percent) AS g
        FROM t JOIN w ON epoch_us(_tp_time) >= ws AND epoch_us(_tp_time) < ws + 3000000
        GROUP BY ws, cid ORDER BY ws, cid
    """)
    assert len(expected) > 40
    assert_same_rows(got, expected)


async def test_output_does_not_depend_on_how_reads_are_grouped_into_steps(engine: Engine, cars: Stream) -> None:
    rows = disorder(car_rows(11, 600, keys=3), 11, max_ms=900)
    plan = engine.plan(AGG_QUERY)
    stepwise = engine.start(plan)
    at_once = engine.start(plan)
    got_stepwise: list[dict] = []
    for i in range(0, len(rows), 40):
        cars.append_batch(to_batch(rows[i:i + 40]))
        got_stepwise.extend(await drain(stepwise))
    cars.append_batch(to_batch([flush_row()]))
    got_stepwise.extend(await drain(stepwise))
    got_at_once = await drain(at_once)
    # Same rows, same order; a float sum folded in other chunks may differ in its last bit.
    assert_same_rows(got_stepwise, got_at_once)
    assert len(got_at_once) > 10


async def test_late_rows_are_dropped_and_counted(engine: Engine, cars: Stream) -> None:
    execution = engine.start(engine.plan("select window_start, count() as n from tumble(car_live_data, 2s) group by window_start"))
    base = {k: v for k, v in FLUSH.items() if k != "cid"}

    def at(ms: int, cid: str = "c1") -> dict:
        return {**base, "cid": cid, "_tp_time": T0 + timedelta(milliseconds=ms)}

    cars.append_batch(to_batch([at(100), at(1900), at(500)]))  # out of order inside a batch: not late
    cars.append_batch(to_batch([at(2500)]))  # watermark passes 2s: window [0, 2s) is emitted
    first = await drain(execution)
    assert [r["n"] for r in first] == [3]
    cars.append_batch(to_batch([at(700, "late"), at(1999, "late"), at(2100)]))  # two rows for the emitted window
    cars.append_batch(to_batch([at(4000)]))
    second = await drain(execution)
    assert [(r["window_start"] - T0).total_seconds() for r in second] == [2.0]
    assert [r["n"] for r in second] == [2]  # 2500 and 2100, not the late ones
    assert execution.stats()["late_rows_dropped"] == 2


async def test_seed_query_snapshot_restore_emits_what_an_uninterrupted_run_emits(engine: Engine, cars: Stream) -> None:
    rows = disorder(car_rows(21, 900, keys=5), 21, max_ms=900)
    query = SEED_QUERY + " emit after watermark with delay 1s"
    plan = engine.plan(query)
    uninterrupted = engine.start(plan)
    interrupted = engine.start(plan)
    half = len(rows) // 2
    append_in_batches(cars, rows[:half], 60)
    before = await drain(interrupted)
    snapshot = interrupted.snapshot()
    interrupted.close()
    append_in_batches(cars, rows[half:], 60)
    cars.append_batch(to_batch([flush_row()]))
    restored = Engine(engine.store).start(engine.plan(query), snapshot=snapshot)
    after = await drain(restored)
    expected = await drain(uninterrupted)
    assert before and after
    assert_same_rows(before + after, expected)
    assert restored.stats()["rows_read"] == uninterrupted.stats()["rows_read"]


async def test_the_same_reads_give_bit_identical_results(engine: Engine, cars: Stream) -> None:
    # Enough rows per group for DuckDB to sum in parallel threads: float sums are compensated
    # (fsum), so the threads' order does not change a result.
    con = connect()
    table = con.sql(f"""
        SELECT 'c' || (i % 3) AS cid, (i * 7919 % 10007) / 7.3 AS speed_kmh, (i * 104729 % 1000003) / 3.7 AS total_km,
               (i % 97) * 1.01 AS gas_percent, i % 5 = 0 AS locked, i % 2 = 0 AS in_use,
               make_timestamp({int(T0.timestamp() * 1_000_000)} + i * 1000)::TIMESTAMPTZ AS _tp_time
        FROM range(600000) t(i)""").to_arrow_table()
    con.close()
    plan = engine.plan("select window_start, cid, sum(speed_kmh) as s, avg(total_km) as a from tumble(car_live_data, 1h) "
                       "group by window_start, cid")
    runs = [engine.start(plan) for _ in range(4)]
    for batch in table.to_batches(max_chunksize=200_000):
        cars.append_batch(batch)
    cars.append_batch(to_batch([flush_row(minutes=600)]))
    first, *others = [await drain(run) for run in runs]
    assert len(first) == 3
    assert all(other == first for other in others)


async def test_snapshot_of_another_query_is_refused(engine: Engine, cars: Stream) -> None:
    from sinkflow.errors import InvalidInput

    snapshot = engine.start(engine.plan(SEED_QUERY)).snapshot()
    with pytest.raises(InvalidInput, match="different query"):
        engine.start(engine.plan("select cid from car_live_data"), snapshot=snapshot)


async def test_a_hop_row_late_for_some_windows_still_counts_in_its_open_ones(engine: Engine, cars: Stream) -> None:
    execution = engine.start(engine.plan(
        "select window_start, count() as n from hop(car_live_data, 1s, 2s) group by window_start"))
    base = {k: v for k, v in FLUSH.items() if k != "cid"}

    def at(ms: int) -> dict:
        return {**base, "cid": "c", "_tp_time": T0 + timedelta(milliseconds=ms)}

    cars.append_batch(to_batch([at(500)]))     # windows [-1s, 1s) and [0s, 2s)
    cars.append_batch(to_batch([at(1200)]))    # watermark 1.2s: [-1s, 1s) is emitted
    first = await drain(execution)
    assert [((r["window_start"] - T0).total_seconds(), r["n"]) for r in first] == [(-1.0, 1)]
    cars.append_batch(to_batch([at(900)]))     # late for [-1s, 1s), on time for [0s, 2s)
    cars.append_batch(to_batch([at(5000)]))
    second = await drain(execution)
    assert [((r["window_start"] - T0).total_seconds(), r["n"]) for r in second] == [(0.0, 3), (1.0, 1)]
    assert execution.stats()["late_rows_dropped"] == 0  # a row is late only when all its windows were emitted
    cars.append_batch(to_batch([at(300)]))     # every window of this row is emitted now
    await drain(execution)
    assert execution.stats()["late_rows_dropped"] == 1


LOOKUP_QUERY = ("select window_start, d.model, count() as n, max(speed_kmh) as top from tumble(car_live_data, 2s) as c "
                "join table(dim_car_info) as d on c.cid = d.cid group by window_start, d.model")


@pytest.mark.parametrize("query", [SEED_QUERY + " emit after watermark with delay 300ms", AGG_QUERY, HOP_QUERY,
                                   LOOKUP_QUERY])
async def test_a_large_step_folded_in_groups_emits_what_small_steps_emit(
        engine: Engine, cars: Stream, dims: Stream, monkeypatch: pytest.MonkeyPatch, query: str) -> None:
    # Groups of 100 rows: one step over every row is folded and closed group by group, the next
    # group's fold overlapping the previous one's close. Rows up to 3s out of order: some late.
    from sinkflow.engine.operators import select

    monkeypatch.setattr(select, "PIPELINE_ROWS", 100)
    dims.append_rows(["cid", "license_plate", "model"], [[f"c{i}", f"P{i}", f"m{i % 2}"] for i in range(6)])
    rows = disorder(car_rows(31, 2000, keys=6, span_ms=40_000), 31, max_ms=3000)
    plan = engine.plan(query)
    stepwise, at_once = engine.start(plan), engine.start(plan)
    got_stepwise: list[dict] = []
    for i in range(0, len(rows), 37):  # each step reads one batch of 37 rows: never in groups
        cars.append_batch(to_batch(rows[i:i + 37]))
        got_stepwise.extend(await drain(stepwise))
    cars.append_batch(to_batch([flush_row()]))
    got_stepwise.extend(await drain(stepwise))
    got_at_once = await drain(at_once)
    assert at_once.epoch == 1  # one step read every row
    assert_same_rows(got_at_once, got_stepwise)
    assert len(got_at_once) >= 40
    counters = ("late_rows_dropped", "windows_emitted", "rows_emitted", "open_groups")
    assert {k: at_once.stats()[k] for k in counters} == {k: stepwise.stats()[k] for k in counters}
    assert at_once.stats()["late_rows_dropped"] > 0
