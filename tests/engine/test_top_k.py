"""top_k / min_k / max_k as Proton answers them: top_k(x, k, true) gives (value, count) tuples,
most frequent first and ties in arrival order (Proton's 0008_topmax_case smoke test); min_k and
max_k with context columns give (value, context…) tuples."""

from __future__ import annotations

import pytest

from sinkflow.engine import Engine
from sinkflow.streams.store import Stream, StreamStore
from sinkflow.streams.types import Column, parse_type

from .conftest import drain


@pytest.fixture
def ids(store: StreamStore) -> Stream:
    return store.create("test9_top_exact", [Column("id", parse_type("int32"))])


async def test_top_k_with_counts_as_proton_smoke_test(engine: Engine, ids: Stream) -> None:
    plan = engine.plan("select top_k_exact(id, 2, true) as top, top_k(id, 2) as values from test9_top_exact "
                       "emit on update")
    assert [c.type.name for c in plan.columns] == ["array(tuple(int32, uint64))", "array(int32)"]
    execution = engine.start(plan)
    ids.append_rows(["id"], [[n] for n in range(20)])
    assert await drain(execution) == [{"top": [{"1": 0, "2": 1}, {"1": 1, "2": 1}], "values": [0, 1]}]
    ids.append_rows(["id"], [[n] for n in range(11, 20)])
    assert await drain(execution) == [{"top": [{"1": 11, "2": 2}, {"1": 12, "2": 2}], "values": [11, 12]}]


def test_min_k_and_max_k_with_context_columns(engine: Engine, store: StreamStore) -> None:
    prices = store.create("prices", [Column("price", parse_type("float64")), Column("product_id", parse_type("string")),
                                     Column("qty", parse_type("int32"))])
    prices.append_rows(["price", "product_id", "qty"], [[15.36, "c84068", 1], [5.12, "c42664", 2]])
    prices.append_rows(["price", "product_id", "qty"], [[20.0, "c1", 3], [7.5, "c2", 4]])
    plan = engine.plan("select min_k(price, 3, product_id) as cheap, max_k(price, 2, product_id, qty) as dear, "
                       "max_k(price, 1) as top from table(prices)")
    assert [c.type.name for c in plan.columns] == ["array(tuple(float64, string))",
                                                   "array(tuple(float64, string, int32))", "array(float64)"]
    result = engine.execute("select min_k(price, 3, product_id) as cheap, max_k(price, 2, product_id, qty) as dear, "
                            "max_k(price, 1) as top from table(prices)")
    assert result.table is not None and result.table.to_pylist() == [{
        "cheap": [{"1": 5.12, "2": "c42664"}, {"1": 7.5, "2": "c2"}, {"1": 15.36, "2": "c84068"}],
        "dear": [{"1": 20.0, "2": "c1", "3": 3}, {"1": 15.36, "2": "c84068", "3": 1}],
        "top": [20.0]}]


async def test_top_k_per_tumble_window(engine: Engine, store: StreamStore) -> None:
    from datetime import datetime, timedelta, timezone

    t0 = datetime(2020, 1, 1, 11, 11, 10, tzinfo=timezone.utc)
    bookings = store.create("bookings", [Column("action", parse_type("string"))])
    execution = engine.start(engine.plan("select window_start, top_k(action, 2, true) as top from tumble(bookings, 10s) "
                                         "group by window_start"))
    for seconds, action in [(0, "add"), (1, "cancel"), (2, "add"), (3, "service"), (4, "cancel"), (5, "add"),
                            (11, "add")]:
        bookings.append_rows(["action", "_tp_time"], [[action, t0 + timedelta(seconds=seconds)]])
    assert await drain(execution) == [
        {"window_start": t0, "top": [{"1": "add", "2": 3}, {"1": "cancel", "2": 2}]}]
