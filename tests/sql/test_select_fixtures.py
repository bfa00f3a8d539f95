"""SELECT planning fixtures in the sqlglot style: input SQL → expected operator tree (the pairs in
``fixtures/plans.txt``), or expected error and position."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sinkflow.engine import Engine
from sinkflow.errors import SqlError
from sinkflow.streams.store import StreamStore
from sinkflow.streams.types import Column, parse_type

CARS = "cid string, speed_kmh float64, total_km float64, gas_percent float64, locked bool, in_use bool, _tp_time datetime64(3, 'UTC')"

FIXTURES = Path(__file__).parent / "fixtures" / "plans.txt"
_HEADER_END = "\n\n"


def _read_fixtures() -> tuple[str, list[tuple[str, str]]]:
    """The fixture file's header and its (SQL, expected tree) pairs."""
    text = FIXTURES.read_text()
    header, _, body = text.partition(_HEADER_END)
    pairs = []
    for entry in body.split("====\n"):
        if entry.strip():
            sql, _, tree = entry.partition("\n----\n")
            pairs.append((sql.strip(), tree.rstrip("\n")))
    return header, pairs


PLANS = _read_fixtures()[1]


def test_the_fixture_file_is_what_the_planner_writes(engine: Engine) -> None:
    """The whole file, as the planner would write it today; with SINKFLOW_REGENERATE=1 it is
    rewritten first (then review the diff): the way to update the expected trees."""
    header, pairs = _read_fixtures()
    written = header + _HEADER_END + "".join(f"{sql}\n----\n{engine.plan(sql).describe()}\n====\n" for sql, _ in pairs)
    if os.environ.get("SINKFLOW_REGENERATE"):
        FIXTURES.write_text(written)
    assert FIXTURES.read_text() == written


ERRORS: list[tuple[str, str, tuple[int, int] | None]] = [
    ("select speed from car_live_data", "unknown column 'speed' in stream 'car_live_data'", (1, 8)),
    ("select 1 as a, b", "unknown column 'b' in a query without FROM", (1, 16)),
    ("select nope from numbers(3)", "unknown column 'nope' in numbers()", (1, 8)),
    ("select *\nfrom nope", "unknown stream 'nope'", (2, 6)),
    ("select cid from nope", "unknown stream 'nope'", (1, 17)),
    ("select count() from tumble(table(nope), 2s)", "unknown stream 'nope'", (1, 34)),
    ("select cid from car_live_data join table(nope) on cid = x", "unknown stream 'nope'", (1, 42)),
    ("select cid,\n  speed_kmh +\nfrom car_live_data", "invalid SQL at line 3, column 1 near 'from'", (3, 1)),
    ("select cid from car_live_data emit last soon", "EMIT LAST: 'soon' is not an interval", (1, 41)),
    ("select cid, speed_kmh, count() from car_live_data group by cid",
     "column 'speed_kmh' must appear in GROUP BY or be used inside an aggregate function", (1, 13)),
    ("select window_start, count() from tumble(car_live_data, 2s) group by window_start emit on updates",
     "expected UPDATE in EMIT clause, not 'updates'", (1, 91)),
    ("select count() from car_live_data emit after session close", "EMIT AFTER expects WINDOW CLOSE or WATERMARK (EMIT "
     "AFTER SESSION CLOSE is not supported", (1, 46)),
    ("select count() from car_live_data\nemit periodic 1s\n  boom", "unexpected 'boom' in EMIT clause", (3, 3)),
    ("select cid from car_live_data order by cid", "ORDER BY needs the end of the data (use table(stream)) or an "
     "aggregation", (1, 40)),
    ("select cid from table(car_live_data) order by 3", "ORDER BY '3' must name an output column", (1, 47)),
    ("select cid from table(car_live_data) order by nope", "unknown column 'nope'", (1, 47)),
    ("select cid from car_live_data settings foo=1", "unknown setting 'foo'", (1, 40)),
    ("select cid from car_live_data full join dim_car_info on car_live_data.cid = dim_car_info.cid",
     "FULL JOIN of a streaming query is not supported", (1, 41)),
    ("select cid from car_live_data join dim_car_info on car_live_data.cid = dim_car_info.cid\n"
     "  and date_diff_within(2m, nope, dim_car_info._tp_time)", "date_diff_within's time columns", (2, 28)),
    ("select count() from tumble(car_live_data, 2s) join dim_car_info using (cid) group by window_start",
     "a stream joins another stream straight from FROM", (1, 52)),
    ("select count() from session(car_live_data, 5s, is_start, is_end) group by window_start",
     "unknown column 'is_start' in stream 'car_live_data'", (1, 48)),
    ("select count() from session(car_live_data, 5s, [speed_kmh > 50]) group by window_start",
     "session() takes session(stream, [time_column,] timeout [, max_length] [, [start_condition, end_condition]])",
     (1, 49)),
    ("select count() from session(car_live_data, cid, 5s) group by window_start",
     "the time column 'cid' of session() must be a datetime", (1, 44)),
    ("select cid from session(car_live_data, 5s)", "session() without aggregation is not supported", None),
    ("select cid from car_live_data\nwhere cid in (select cid, license_plate from dim_car_info)",
     "a subquery in an expression answers 1 column, not 2", (2, 22)),
    ("with x as (select cid from car_live_data)\nselect count() from tumble(x, 2s) group by window_start",
     "'x' has no _tp_time column: name the time column", (2, 28)),
    ("select cid from car_live_data union select cid from car_live_data", "Expected DISTINCT or ALL for Union", (1, 37)),
    ("select cid from car_live_data union distinct select cid from car_live_data",
     "UNION DISTINCT is not supported; use UNION ALL", None),
    ("select cid from car_live_data union all select cid, speed_kmh from car_live_data",
     "UNION ALL: query 2 has 2 column(s), the first has 1", (1, 31)),
    ("select top_k(cid) from car_live_data", "function 'top_k' takes 2 to 4 arguments, got 1", (1, 8)),
    ("select array_join(cid, 1) from car_live_data", "function 'array_join' takes 1 argument, got 2", (1, 8)),
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
    ("select cid, count()\nfrom car_live_data group by cid\nemit periodic", "EMIT PERIODIC needs an interval", (3, 14)),
    ("select cid,\n  speed_kmh\nfrom car_live_data\ngroup by\n  cid", "column 'speed_kmh' must appear in GROUP BY", (2, 3)),
    ("select nosuchfn(cid) from car_live_data", "unknown function 'nosuchfn'", (1, 8)),
    ("select cid,\n  sum(cid) from car_live_data group by cid", "sum(VARCHAR)", (2, 3)),
    ("select count() from tumble(car_live_data, 0s) group by window_start",
     "the tumble() interval must be a positive interval", (1, 43)),
    ("select avg(sum(speed_kmh)) from car_live_data",
     "aggregate function sum() cannot be nested in another aggregate", (1, 12)),
    ("select cid from car_live_data where count() > 1", "count() is not allowed in WHERE; use HAVING", (1, 37)),
    ("select cid from car_live_data semi left join dim_car_info using (cid)",
     "SEMI JOIN runs in bounded queries", (1, 46)),
    ("select cid from table(car_live_data)\n  semi join table(dim_car_info) using (cid)",
     "SEMI JOIN needs a side: SEMI LEFT JOIN or SEMI RIGHT JOIN", (2, 13)),
    ("select cid from table(car_live_data) join table(dim_car_info) using (cid) settings join_use_nulls=2",
     "join_use_nulls must be 0 or 1, not '2'", (1, 99)),
    ("select cid from car_live_data c join dim_car_info d on c.cid = d.cid and date_diff_within(2m)\n"
     "  join (select cid as k from car_live_data) as s on c.cid = s.k and date_diff_within(1m)",
     "date_diff_within compares _tp_time of each side", (2, 69)),
    ("select cid from car_live_data emit after watermark", "EMIT AFTER WINDOW CLOSE / PERIODIC / ON UPDATE / TIMEOUT "
     "need an aggregation", (1, 31)),
    ("select count() from car_live_data emit after window close",
     "EMIT AFTER WINDOW CLOSE needs a tumble() or hop() window", (1, 35)),
    ("select cid from car_live_data\nwhere speed_kmh > 1 emit_version()", "invalid SQL", None),
    ("select emit_version(), cid from car_live_data", "emit_version() numbers the emits of a streaming aggregation", (1, 8)),
    ("select d.nope from car_live_data join table(dim_car_info) d on car_live_data.cid = d.cid",
     "unknown column 'nope'", (1, 10)),
    ("select cid from tumble(car_live_data, nope_col, 2s)", "unknown column 'nope_col' in stream 'car_live_data'", (1, 39)),
    ("select cid from tumble(car_live_data, cid, 2s)", "the time column 'cid' of tumble() must be a datetime", (1, 39)),
    ("select count() from hop(car_live_data, 5s, 1s) group by window_start", "hop() slide must not be larger than its size", None),
    ("select cid from hop(car_live_data, 1s, 5s)", "hop() without aggregation is not supported", (1, 17)),
    ("select cid, count() as n, lag(speed_kmh) from car_live_data group by cid",
     "column 'speed_kmh' must appear in GROUP BY", (1, 31)),
    ("select cid, row_number() over (partition by cid) from car_live_data", "row_number() OVER (…) in a streaming query is not supported", (1, 13)),
    ("select cid from car_live_data settings seek_to='yesterday'", "seek_to must be 'earliest', 'latest', a sequence number, a timestamp", (1, 48)),
    ("select cid from car_live_data\nsettings seek_to='5,3,11'",
     "seek_to '5,3,11': offsets per partition apply to a Kafka external stream, and 'car_live_data' is not one", (2, 18)),
    ("select cid from table(car_live_data) settings seek_to='earliest'", "seek_to applies to streaming queries", None),
    ("select cid, cid from car_live_data", "duplicate output column 'cid'", None),
    ("select * except (nope) from car_live_data", "* EXCEPT names 'nope', which is not a column", (1, 18)),
    ("select cid from dedup(car_live_data, nope, 5s)", "dedup key 'nope' must be a column of stream 'car_live_data'", (1, 38)),
    ("select cid from car_live_data limit x", "LIMIT needs a non-negative integer", (1, 37)),
    ("select cid from car_live_data limit 2 by nope", "unknown column 'nope'", (1, 42)),
    ("select cid from car_live_data limit 2 by 5", "LIMIT … BY '5' must name an output column", (1, 42)),
    ("select cid from car_live_data emit periodic soon", "EMIT PERIODIC: 'soon' is not an interval", (1, 45)),
    ("select distinct on (cid) cid from car_live_data", "SELECT DISTINCT ON is not supported; use LIMIT 1 BY", (1, 21)),
    ("select distinct cid, count() from car_live_data group by cid", "SELECT DISTINCT with GROUP BY", (1, 8)),
    ("select cid from car_live_data\nqualify speed_kmh > 1", "QUALIFY is not supported; filter in an outer query",
     (2, 1)),
    ("select cid,\n  avgg(speed_kmh) from car_live_data group by cid", "unknown function 'avgg'", (2, 3)),
    ("select cid from car_live_data union all select speed_kmh from car_live_data",
     "UNION ALL: column 'cid' is string in the first query and float64 in query 2", None),
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


@pytest.mark.parametrize(("sql", "expected"), PLANS, ids=[f"graph{i}" for i in range(len(PLANS))])
def test_the_running_graph_explains_as_its_plan(engine: Engine, sql: str, expected: str) -> None:
    """The operators a plan starts describe the same tree (each operator's describe())."""
    execution = engine.start(engine.plan(sql))
    try:
        assert "\n".join(execution.explain()) == expected
    finally:
        execution.close()


@pytest.mark.parametrize(("sql", "message", "position"), ERRORS, ids=[f"error{i}" for i in range(len(ERRORS))])
def test_error(engine: Engine, sql: str, message: str, position: tuple[int, int] | None) -> None:
    with pytest.raises(SqlError) as caught:
        engine.plan(sql)
    assert message in caught.value.message
    if position is not None:
        assert caught.value.position is not None
        assert (caught.value.position.line, caught.value.position.column) == position
