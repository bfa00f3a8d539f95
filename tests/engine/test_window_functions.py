"""Window functions (``f(…) OVER (…)``): DuckDB's over every row of a bounded query; Proton's
streaming forms (an aggregate or lag ``OVER (PARTITION BY k)``) per key; the rest refused."""

from __future__ import annotations

import pytest

from sinkflow.engine import Engine
from sinkflow.errors import SqlError
from sinkflow.streams.store import Stream, StreamStore
from sinkflow.streams.types import Column, parse_type

from .conftest import drain


@pytest.fixture
def sales(store: StreamStore) -> Stream:
    stream = store.create("sales", [Column("shop", parse_type("string")), Column("amount", parse_type("int32"))])
    # Two ingest batches: a bounded window function must still see every row at once.
    stream.append_rows(["shop", "amount"], [["a", 5], ["b", 7], ["a", 3]])
    stream.append_rows(["shop", "amount"], [["b", 1], ["a", 9]])
    return stream


def _rows(engine: Engine, sql: str) -> list[dict]:
    result = engine.execute(sql)
    assert result.table is not None
    return result.table.to_pylist()


def test_row_number_rank_and_running_sums_over_a_table(engine: Engine, sales: Stream) -> None:
    rows = _rows(engine, "select shop, amount, row_number() over (partition by shop order by amount desc) as rn, "
                         "sum(amount) over (partition by shop order by amount) as running, "
                         "sum(amount) over () as total from table(sales) order by shop, amount")
    assert rows == [
        {"shop": "a", "amount": 3, "rn": 3, "running": 3, "total": 25},
        {"shop": "a", "amount": 5, "rn": 2, "running": 8, "total": 25},
        {"shop": "a", "amount": 9, "rn": 1, "running": 17, "total": 25},
        {"shop": "b", "amount": 1, "rn": 2, "running": 1, "total": 25},
        {"shop": "b", "amount": 7, "rn": 1, "running": 8, "total": 25},
    ]


def test_lag_and_lead_over_a_table(engine: Engine, sales: Stream) -> None:
    rows = _rows(engine, "select amount, lag(amount) over (order by _tp_sn) as prev, "
                         "lead(amount, 1, 0) over (order by _tp_sn) as next from table(sales) where shop = 'a'")
    assert rows == [{"amount": 5, "prev": None, "next": 3}, {"amount": 3, "prev": 5, "next": 9},
                    {"amount": 9, "prev": 3, "next": 0}]


def test_a_window_function_over_the_groups_of_a_table(engine: Engine, sales: Stream) -> None:
    rows = _rows(engine, "select shop, sum(amount) as total, rank() over (order by sum(amount) desc) as place "
                         "from table(sales) group by shop order by place")
    assert rows == [{"shop": "a", "total": 17, "place": 1}, {"shop": "b", "total": 8, "place": 2}]


async def test_streaming_aggregate_over_partition_by_is_per_key(engine: Engine, sales: Stream) -> None:
    execution = engine.start(engine.plan("select shop, sum(amount) over (partition by shop) as total from sales "
                                         "emit on update settings seek_to='earliest'"))
    rows = await drain(execution)
    newest = {r["shop"]: r["total"] for r in rows}  # each update of a shop's total, the newest last
    assert newest == {"a": 17, "b": 8}
    sales.append_rows(["shop", "amount"], [["b", 2]])
    assert await drain(execution) == [{"shop": "b", "total": 10}]


async def test_streaming_lag_over_partition_by_looks_back_per_key(engine: Engine, sales: Stream) -> None:
    execution = engine.start(engine.plan("select shop, amount, lag(amount) over (partition by shop) as prev "
                                         "from sales settings seek_to='earliest'"))
    rows = await drain(execution)
    assert [(r["shop"], r["amount"], r["prev"]) for r in rows] == [
        ("a", 5, 0), ("b", 7, 0), ("a", 3, 5), ("b", 1, 7), ("a", 9, 3)]  # no earlier row: 0, as Proton


@pytest.mark.parametrize(("sql", "where"), [
    ("select shop, row_number() over (partition by shop) from sales", (1, 14)),
    ("select shop,\n  sum(amount) over (order by _tp_time) from sales", (2, 3)),
])
def test_streaming_window_functions_proton_cannot_run_are_refused(engine: Engine, sales: Stream, sql: str,
                                                                  where: tuple[int, int]) -> None:
    with pytest.raises(SqlError, match="OVER .* in a streaming query is not supported.*table\\(stream\\)") as info:
        engine.plan(sql)
    assert (info.value.position.line, info.value.position.column) == where
