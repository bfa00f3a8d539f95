"""SELECT planning fixtures in the sqlglot style: input SQL → expected plan, or expected error and position."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sinkflow.engine import Engine
from sinkflow.errors import SqlError
from sinkflow.streams.store import StreamStore
from sinkflow.streams.types import Column, parse_type

CARS = "cid string, speed_kmh float64, total_km float64, gas_percent float64, locked bool, in_use bool, _tp_time datetime64(3, 'UTC')"

PLANS: list[tuple[str, str]] = [
    (
        "select window_end as time,cid,avg(speed_kmh) as speed_kmh,max(total_km) as total_km, avg(gas_percent) as "
        "gas_percent,min(locked) as locked,min(in_use) as in_use from tumble(car_live_data,2s) group by cid, window_end",
        "source=car_live_data | tumble(_tp_time, 2s) | group by 1 key(s): avg, max, avg, min, min | emit watermark delay 0s"
        " | -> time datetime64(3, 'UTC'), cid string, speed_kmh float64, total_km float64, gas_percent float64,"
        " locked bool, in_use bool",
    ),
    ("select * from car_live_data", f"source=car_live_data | emit rows | -> {CARS}"),
    (
        "select cid from car_live_data where speed_kmh > 100 and (cid in ('a', 'b') or not locked)",
        "source=car_live_data | where | emit rows | -> cid string",
    ),
    (
        "select median(speed_kmh), COUNT( * ),  p90(gas_percent) * 2, quantile(total_km, 0.5) from car_live_data",
        "source=car_live_data | group by 0 key(s): quantile, count, p90, quantile | emit periodic 2s"
        " | -> median(speed_kmh) float64, COUNT( * ) int64, p90(gas_percent) * 2 float64, quantile(total_km, 0.5) float64",
    ),
    (
        "select cid, speed_kmh from car_live_data where speed_kmh > 100 limit 10",
        "source=car_live_data | where | emit rows | limit 10 | -> cid string, speed_kmh float64",
    ),
    (
        "select window_start, count() from hop(car_live_data, 1s, 5s) group by window_start\n"
        "emit after watermark with delay 2s",
        "source=car_live_data | hop(_tp_time, 1s, 5s) | group by 0 key(s): count | emit watermark delay 2s"
        " | -> window_start datetime64(3, 'UTC'), count() int64",
    ),
    (
        "select window_start, cid, p90(speed_kmh) from tumble(car_live_data, _tp_time, interval 1 minute) "
        "group by window_start, cid having p90(speed_kmh) > 10 emit after watermark and delay 500ms",
        "source=car_live_data | tumble(_tp_time, 60s) | group by 1 key(s): p90 | having | emit watermark delay 0.5s"
        " | -> window_start datetime64(3, 'UTC'), cid string, p90(speed_kmh) float64",
    ),
    (
        "select count(), count_distinct(cid) from car_live_data emit periodic 5s",
        "source=car_live_data | group by 0 key(s): count, count_distinct | emit periodic 5s"
        " | -> count() int64, count_distinct(cid) int64",
    ),
    (
        "select cid, count(*) from car_live_data group by cid",
        "source=car_live_data | group by 1 key(s): count | emit periodic 2s | -> cid string, count(*) int64",
    ),
    (
        "select cid, count() as n from table(car_live_data) group by cid",
        "source=table(car_live_data) | group by 1 key(s): count | emit final | -> cid string, n int64",
    ),
    (
        "select window_start, sum(total_km) from tumble(table(car_live_data), 1h) group by window_start",
        "source=table(car_live_data) | tumble(_tp_time, 3600s) | group by 0 key(s): sum | emit final"
        " | -> window_start datetime64(3, 'UTC'), sum(total_km) float64",
    ),
    (
        "select cid, speed_kmh from dedup(car_live_data, cid, 1m)",
        "source=car_live_data | dedup(cid, 60s) | emit rows | -> cid string, speed_kmh float64",
    ),
    (
        "select c.cid, license_plate from car_live_data c left join table(dim_car_info) d on c.cid = d.cid",
        "source=car_live_data | left join table(dim_car_info) | emit rows | -> cid string, license_plate string",
    ),
    (
        "select cid, count() from table(car_live_data) group by cid order by count() desc, 1 limit 3",
        "source=table(car_live_data) | group by 1 key(s): count | emit final | order by 2 key(s) | limit 3"
        " | -> cid string, count() int64",
    ),
    (
        "select cid, d.cid, d.license_plate from car_live_data join table(dim_car_info) as d using (cid)",
        "source=car_live_data | inner join table(dim_car_info) | emit rows | -> cid string, d.cid string, license_plate string",
    ),
    (
        "select window_start, window_end, cid from tumble(car_live_data, 10s)",
        "source=car_live_data | tumble(_tp_time, 10s) | emit rows"
        " | -> window_start datetime64(3, 'UTC'), window_end datetime64(3, 'UTC'), cid string",
    ),
    (
        "select cid from car_live_data settings seek_to='-1h'",
        "source=car_live_data | emit rows | seek_to -3600000000us | -> cid string",
    ),
    (
        "select cid from car_live_data settings seek_to='earliest', idle_timeout='5s'",
        "source=car_live_data | emit rows | idle_timeout 5s | seek_to earliest | -> cid string",
    ),
    (
        "select to_string(speed_kmh) as s, lower(cid), round(speed_kmh, 1), "
        "case when locked then 'L' else 'U' end as lock from car_live_data",
        "source=car_live_data | emit rows | -> s string, lower(cid) string, round(speed_kmh, 1) float64, lock string",
    ),
    (
        "select cid, latest(speed_kmh), earliest(total_km), arg_max(cid, speed_kmh), quantile(speed_kmh, 0.99), "
        "any(locked), sum(total_km), min_by(speed_kmh, total_km) from car_live_data group by cid",
        "source=car_live_data | group by 1 key(s): latest, earliest, arg_max, quantile, any, sum, arg_min"
        " | emit periodic 2s | -> cid string, latest(speed_kmh) float64, earliest(total_km) float64,"
        " arg_max(cid, speed_kmh) string, quantile(speed_kmh, 0.99) float64, any(locked) bool,"
        " sum(total_km) float64, min_by(speed_kmh, total_km) float64",
    ),
    (
        "select cid, unique(cid) as u, group_array(speed_kmh) as speeds, quantile(speed_kmh, 0.9) as q from car_live_data"
        " where in_use and xor(locked, speed_kmh > 100) group by cid",
        "source=car_live_data | where | group by 1 key(s): unique, group_array, quantile | emit periodic 2s"
        " | -> cid string, u int64, speeds array(float64), q float64",
    ),
    (
        "select case cid when 'a' then 1 when 'b' then 2 else 0 end as k, "
        "case when speed_kmh > 100 and not locked then 'fast' end as f from car_live_data",
        "source=car_live_data | emit rows | -> k int32, f string",
    ),
]

ERRORS: list[tuple[str, str, tuple[int, int] | None]] = [
    ("select speed from car_live_data", "unknown column 'speed' in stream 'car_live_data'", (1, 8)),
    ("select *\nfrom nope", "unknown stream 'nope'", (2, 6)),
    ("select cid from nope", "unknown stream 'nope'", (1, 17)),
    ("select count() from tumble(table(nope), 2s)", "unknown stream 'nope'", (1, 34)),
    ("select cid from car_live_data join table(nope) on cid = x", "unknown stream 'nope'", (1, 42)),
    ("select cid,\n  speed_kmh +\nfrom car_live_data", "invalid SQL at line 3, column 1 near 'from'", (3, 1)),
    ("select cid from car_live_data emit changelog", "EMIT CHANGELOG is not supported", (1, 31)),
    ("select cid, speed_kmh, count() from car_live_data group by cid",
     "column 'speed_kmh' must appear in GROUP BY or be used inside an aggregate function", (1, 13)),
    ("select window_start, count() from tumble(car_live_data, 2s) group by window_start emit periodic 1s",
     "EMIT PERIODIC with a tumble/hop window is not supported", (1, 83)),
    ("select cid from car_live_data order by cid", "ORDER BY is not supported in streaming queries", (1, 40)),
    ("select cid from table(car_live_data) order by speed_kmh", "ORDER BY 'speed_kmh' must name an output column", (1, 47)),
    ("select cid from car_live_data settings foo=1", "unknown setting 'foo'", (1, 40)),
    ("select cid from car_live_data join dim_car_info on car_live_data.cid = dim_car_info.cid",
     "a stream can only be joined with a dimension written table(stream)", (1, 36)),
    ("select count() from session(car_live_data, 5s)", "session windows are not supported", (1, 21)),
    ("select x from (select cid as x from car_live_data)", "subqueries are not supported", None),
    ("select top_k(cid, 3) from car_live_data", "unknown function 'top_k'", (1, 8)),
    ("select array_join(cid) from car_live_data", "array_join is not supported", (1, 8)),
    ("select quantile(speed_kmh) from car_live_data", "function 'quantile' takes 2 arguments, got 1", (1, 8)),
    # Multi-line SQL: every name error points at the name it names.
    ("select bogus,\n  cid from nope", "unknown stream 'nope' at line 2, column 12", (2, 12)),
    ("select cid,\n  bogus from car_live_data", "unknown column 'bogus' in stream 'car_live_data' at line 2, column 3", (2, 3)),
    ("select cid,\n  lower(cid) as l,\n    nosuch(cid) from car_live_data", "unknown function 'nosuch' at line 3, column 5",
     (3, 5)),
    ("select cid,\n  uniqExact(cid) from car_live_data group by cid", "unknown function 'uniqExact'", (2, 3)),
    ("select cid\nfrom car_live_data\nwhere speed_kmh > 1 and\n      d.x > 2", "unknown table 'd' in column 'd.x'", (4, 7)),
    ("select c.cid\nfrom car_live_data c\n  join table(dim_car_info) d\n  on c.cid = d.nope", "unknown column 'nope'",
     (4, 16)),
    ("select c.cid\nfrom car_live_data c\n  join table(\n    nope) d on c.cid = d.cid", "unknown stream 'nope'", (4, 5)),
    ("select cid from car_live_data join table(dim_car_info) d\n  using (cid, nope)", "USING column 'nope'", (2, 15)),
    ("select cid, count()\nfrom car_live_data group by cid\nhaving max(\n  bogus) > 1", "unknown column 'bogus'", (4, 3)),
    ("select window_start, count()\nfrom tumble(\n  nope, 2s)\ngroup by window_start", "unknown stream 'nope'", (3, 3)),
    ("select count()\nfrom tumble(car_live_data,\n  bogus, 2s)", "unknown column 'bogus'", (3, 3)),
    ("select cid\nfrom dedup(car_live_data,\n   bogus)", "dedup key 'bogus' must be a column", (3, 4)),
    ("select cid\nfrom car_live_data\nsettings seek_to='earliest',\n  fooo=1", "unknown setting 'fooo'", (4, 3)),
    ("select cid, count()\nfrom car_live_data group by cid\nemit changelog", "EMIT CHANGELOG is not supported", (3, 1)),
    ("select cid,\n  speed_kmh\nfrom car_live_data\ngroup by\n  cid", "column 'speed_kmh' must appear in GROUP BY", (2, 3)),
    ("select nosuchfn(cid) from car_live_data", "unknown function 'nosuchfn'", (1, 8)),
    ("select sum(cid) from car_live_data", "sum(VARCHAR)", None),
    ("select count() from tumble(car_live_data, 0s) group by window_start",
     "the tumble() interval must be a positive interval", (1, 43)),
    ("select avg(sum(speed_kmh)) from car_live_data",
     "aggregate function sum() cannot be nested in another aggregate", (1, 12)),
    ("select cid from car_live_data where count() > 1", "count() is not allowed in WHERE; use HAVING", (1, 37)),
    ("select cid from car_live_data emit after watermark", "EMIT needs an aggregation", (1, 31)),
    ("select count() from car_live_data emit after watermark", "EMIT AFTER WATERMARK needs a tumble() or hop() window", (1, 35)),
    ("select d.nope from car_live_data join table(dim_car_info) d on car_live_data.cid = d.cid",
     "unknown column 'nope'", (1, 10)),
    ("select cid from tumble(car_live_data, nope_col, 2s)", "unknown column 'nope_col' in stream 'car_live_data'", (1, 39)),
    ("select cid from tumble(car_live_data, cid, 2s)", "the time column 'cid' of tumble() must be a datetime", (1, 39)),
    ("select count() from hop(car_live_data, 5s, 1s) group by window_start", "hop() slide must not be larger than its size", None),
    ("select cid from hop(car_live_data, 1s, 5s)", "hop() without aggregation is not supported", None),
    ("select cid, row_number() over (partition by cid) from car_live_data", "window functions (OVER …) are not supported", (1, 13)),
    ("select cid from car_live_data union all select cid from car_live_data", "UNION is not supported", None),
    ("select cid from car_live_data settings seek_to='yesterday'", "seek_to must be 'earliest', 'latest', a timestamp", (1, 48)),
    ("select cid from table(car_live_data) settings seek_to='earliest'", "seek_to applies to streaming queries", None),
    ("select cid, cid from car_live_data", "duplicate output column 'cid'", None),
    ("select cid from dedup(car_live_data, nope, 5s)", "dedup key 'nope' must be a column of stream 'car_live_data'", (1, 38)),
    ("select cid from car_live_data limit 5 offset 2", "OFFSET is not supported", None),
    ("select cid from car_live_data emit periodic soon", "EMIT PERIODIC: 'soon' is not an interval", (1, 45)),
    ("select distinct cid from car_live_data", "SELECT DISTINCT is not supported", None),
    ("", "empty SQL statement", None),
    ("insert into car_live_data (cid) values ('a')", "expected a SELECT statement", None),
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    store = StreamStore(Path(tmp_path_factory.mktemp("data")))
    car_columns = [c.split(" ", 1) for c in CARS.split(", _tp_time")[0].split(", ")]
    store.create("car_live_data", [Column(n, parse_type(t)) for n, t in car_columns])
    store.create("dim_car_info", [Column("cid", parse_type("string")), Column("license_plate", parse_type("string"))])
    yield Engine(store)
    store.close()


@pytest.mark.parametrize(("sql", "expected"), PLANS, ids=[f"plan{i}" for i in range(len(PLANS))])
def test_plan(engine: Engine, sql: str, expected: str) -> None:
    assert engine.plan(sql).describe() == expected


@pytest.mark.parametrize(("sql", "message", "position"), ERRORS, ids=[f"error{i}" for i in range(len(ERRORS))])
def test_error(engine: Engine, sql: str, message: str, position: tuple[int, int] | None) -> None:
    with pytest.raises(SqlError) as caught:
        engine.plan(sql)
    assert message in caught.value.message
    if position is not None:
        assert caught.value.position is not None
        assert (caught.value.position.line, caught.value.position.column) == position
