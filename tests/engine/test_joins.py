"""Joins of two streams end to end: bidirectional (with date_diff_within), LEFT, ASOF, LATEST, keyed
right sides, their state bound and snapshot."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from sinkflow.engine import Engine
from sinkflow.engine.operators.join import JoinOperator
from sinkflow.errors import SqlError
from sinkflow.streams.store import Stream, StreamSettings, StreamStore
from sinkflow.streams.types import Column, parse_type

from .conftest import drain

T = datetime(2024, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def orders(store: StreamStore) -> Stream:
    return store.create("orders", [Column("id", parse_type("string")), Column("amount", parse_type("float64"))])


@pytest.fixture
def payments(store: StreamStore) -> Stream:
    return store.create("payments", [Column("oid", parse_type("string")), Column("paid", parse_type("float64"))])


def _order(stream: Stream, oid: str, amount: float, seconds: float) -> None:
    stream.append_rows(["id", "amount", "_tp_time"], [[oid, amount, T + timedelta(seconds=seconds)]])


def _pay(stream: Stream, oid: str, paid: float, seconds: float) -> None:
    stream.append_rows(["oid", "paid", "_tp_time"], [[oid, paid, T + timedelta(seconds=seconds)]])


async def test_a_join_within_a_time_range_matches_either_arrival_order_and_expires(
        engine: Engine, orders: Stream, payments: Stream) -> None:
    plan = engine.plan("select o.id, amount, paid from orders as o join payments as p "
                       "on o.id = p.oid and date_diff_within(2m)")
    execution = engine.start(plan)
    _pay(payments, "a", 1.0, 0)
    _order(orders, "a", 10.0, 30)  # meets the payment held from before
    _order(orders, "b", 20.0, 40)
    assert await drain(execution) == [{"id": "a", "amount": 10.0, "paid": 1.0}]
    _pay(payments, "b", 2.0, 50)  # meets the order held from before
    _pay(payments, "a", 3.0, 300)  # 4.5 minutes after order a: too late to meet it
    assert await drain(execution) == [{"id": "b", "amount": 20.0, "paid": 2.0}]
    stats = execution.stats()
    # Orders a and b are over 2 minutes older than the newest payment: no later payment can meet them.
    assert (stats["join_rows_expired"], stats["join_rows_held"]) == (2, 3)
    snapshot = execution.snapshot()
    execution.close()
    resumed = engine.start(plan, snapshot)
    _order(orders, "a", 11.0, 360)
    assert await drain(resumed) == [{"id": "a", "amount": 11.0, "paid": 3.0}]


@pytest.mark.parametrize(("settings", "padding"), [("", 0.0), (" settings join_use_nulls=1", None)])
async def test_a_left_join_of_streams_pads_unmatched_rows(engine: Engine, orders: Stream, payments: Stream,
                                                          settings: str, padding: float | None) -> None:
    # As Proton (join_use_nulls = 0): a row without a match holds the type's default; NULL with the setting.
    execution = engine.start(engine.plan(f"select id, paid from orders left join payments on id = oid{settings}"))
    _pay(payments, "a", 1.0, 0)
    assert await drain(execution) == []
    _order(orders, "a", 10.0, 1)
    _order(orders, "b", 20.0, 2)
    assert await drain(execution) == [{"id": "a", "paid": 1.0}, {"id": "b", "paid": padding}]
    _pay(payments, "b", 2.0, 3)
    assert await drain(execution) == [{"id": "b", "paid": 2.0}]


async def test_asof_join_takes_the_closest_earlier_row(engine: Engine, orders: Stream, payments: Stream) -> None:
    execution = engine.start(engine.plan(
        "select id, amount, paid from orders asof join payments on id = oid and orders._tp_time >= payments._tp_time"))
    _pay(payments, "a", 1.0, 0)
    _pay(payments, "a", 2.0, 10)
    _pay(payments, "a", 3.0, 20)
    _order(orders, "a", 10.0, 15)
    _order(orders, "b", 20.0, 15)  # no payment: an inner ASOF join emits nothing for it
    assert await drain(execution) == [{"id": "a", "amount": 10.0, "paid": 2.0}]


async def test_latest_join_uses_the_newest_right_row_per_key(engine: Engine, orders: Stream, payments: Stream) -> None:
    execution = engine.start(engine.plan("select id, paid from orders latest join payments on id = oid"))
    _pay(payments, "a", 1.0, 0)
    _pay(payments, "a", 2.0, 1)
    _order(orders, "a", 10.0, 2)
    assert await drain(execution) == [{"id": "a", "paid": 2.0}]
    _pay(payments, "a", 3.0, 3)  # the right side's arrivals emit nothing themselves
    assert await drain(execution) == []
    _order(orders, "a", 11.0, 4)
    assert await drain(execution) == [{"id": "a", "paid": 3.0}]


async def test_an_aggregation_over_a_stream_join_in_a_cte(engine: Engine, orders: Stream, payments: Stream) -> None:
    execution = engine.start(engine.plan(
        "with j as (select id, amount, paid, _tp_time from orders join payments on id = oid and date_diff_within(1m)) "
        "select window_start, count() as n, sum(paid) as total from tumble(j, 10s) group by window_start"))
    _pay(payments, "a", 1.0, 0)
    _pay(payments, "b", 2.0, 1)
    _order(orders, "a", 10.0, 2)
    _order(orders, "b", 20.0, 3)
    _order(orders, "x", 0.0, 30)  # no match, but the window needs a later joined row to close
    _pay(payments, "x", 5.0, 31)
    rows = await drain(execution)
    assert [(r["n"], r["total"]) for r in rows] == [(2, 3.0)]


async def test_an_unbounded_join_is_limited_by_join_max_buffered_rows(engine: Engine, orders: Stream,
                                                                        payments: Stream) -> None:
    execution = engine.start(engine.plan("select id from orders join payments on id = oid "
                                         "settings join_max_buffered_rows=3"))
    for i in range(4):
        _order(orders, f"o{i}", 1.0, i)
    with pytest.raises(SqlError, match="join_max_buffered_rows"):
        await drain(execution)


def test_table_of_a_versioned_kv_stream_is_its_newest_row_per_key(engine: Engine, store: StreamStore) -> None:
    settings = StreamSettings(mode="versioned_kv", primary_key=("k",))
    kv = store.create("kv", [Column("k", parse_type("string")), Column("v", parse_type("int32"))], settings)
    kv.append_rows(["k", "v"], [["a", 1], ["b", 2], ["a", 3]])
    result = engine.execute("select k, v from table(kv) order by k")
    assert result.table is not None and result.table.to_pylist() == [{"k": "a", "v": 3}, {"k": "b", "v": 2}]


async def test_three_streams_and_subqueries_join(engine: Engine, orders: Stream, payments: Stream,
                                                 store: StreamStore) -> None:
    ships = store.create("ships", [Column("sid", parse_type("string")), Column("carrier", parse_type("string"))])
    chain = engine.start(engine.plan(
        "select id, paid, carrier from orders join payments on id = oid and date_diff_within(1m) "
        "join ships on id = sid"))
    sub = engine.start(engine.plan(
        "select o.id, p.paid from (select id, _tp_time from orders where amount > 5) as o "
        "join (select oid, paid, _tp_time from payments) as p on o.id = p.oid"))
    _order(orders, "a", 10.0, 0)
    _order(orders, "b", 1.0, 1)
    _pay(payments, "a", 1.0, 2)
    _pay(payments, "b", 2.0, 3)
    ships.append_rows(["sid", "carrier", "_tp_time"], [["a", "ups", T]])
    assert await drain(chain) == [{"id": "a", "paid": 1.0, "carrier": "ups"}]
    assert await drain(sub) == [{"id": "a", "paid": 1.0}]


async def test_each_side_of_a_stream_join_has_its_own_tp_sn_and_seek(engine: Engine, orders: Stream,
                                                                      payments: Stream) -> None:
    for i in range(4):
        _order(orders, f"o{i}", float(i), i)
        _pay(payments, f"o{i}", float(i), i)
    execution = engine.start(engine.plan(
        "select o.id, o._tp_sn as left_sn, p._tp_sn as right_sn from orders as o join payments as p on o.id = p.oid "
        "where orders._tp_sn > 1 and p._tp_sn >= 3"))
    assert await drain(execution) == [{"id": "o3", "left_sn": 3, "right_sn": 3}]


@pytest.fixture
def shops(store: StreamStore) -> tuple[Stream, Stream, Stream]:
    a = store.create("ja", [Column("k", parse_type("int32")), Column("v", parse_type("string"))])
    b = store.create("jb", [Column("k", parse_type("int32")), Column("w", parse_type("string"))])
    c = store.create("jc", [Column("k", parse_type("int32")), Column("x", parse_type("string"))])
    # Two ingest batches on the left: RIGHT and FULL joins must see all of its rows before padding.
    a.append_rows(["k", "v"], [[1, "a1"], [2, "a2"]])
    a.append_rows(["k", "v"], [[3, "a3"]])
    b.append_rows(["k", "w"], [[2, "b2"], [3, "b3"], [4, "b4"]])
    c.append_rows(["k", "x"], [[3, "c3"], [4, "c4"]])
    return a, b, c


def _table(engine: Engine, sql: str) -> list[dict]:
    result = engine.execute(sql)
    assert result.table is not None
    return result.table.to_pylist()


def test_full_and_right_joins_of_tables(engine: Engine, shops: tuple[Stream, Stream, Stream]) -> None:
    nulls = " settings join_use_nulls=1"
    assert _table(engine, "select ja.k, v, jb.k as bk, w from table(ja) full join table(jb) on ja.k = jb.k "
                          f"order by bk nulls first{nulls}") == [
        {"k": 1, "v": "a1", "bk": None, "w": None}, {"k": 2, "v": "a2", "bk": 2, "w": "b2"},
        {"k": 3, "v": "a3", "bk": 3, "w": "b3"}, {"k": None, "v": None, "bk": 4, "w": "b4"}]
    # Proton's default (join_use_nulls = 0): the side without a match holds its types' defaults.
    assert _table(engine, "select ja.k, v, jb.k as bk, w from table(ja) full join table(jb) on ja.k = jb.k "
                          "order by bk, k") == [
        {"k": 1, "v": "a1", "bk": 0, "w": ""}, {"k": 2, "v": "a2", "bk": 2, "w": "b2"},
        {"k": 3, "v": "a3", "bk": 3, "w": "b3"}, {"k": 0, "v": "", "bk": 4, "w": "b4"}]
    assert _table(engine, f"select v, w from table(ja) right outer join table(jb) on ja.k = jb.k{nulls}") == [
        {"v": "a2", "w": "b2"}, {"v": "a3", "w": "b3"}, {"v": None, "w": "b4"}]
    assert _table(engine, "select count() as n, count(v) as left_rows from table(ja) full join jb on ja.k = jb.k"
                          f"{nulls}") == [{"n": 4, "left_rows": 3}]


def test_cross_using_and_three_way_joins_of_tables(engine: Engine, shops: tuple[Stream, Stream, Stream]) -> None:
    assert _table(engine, "select v, w from table(ja) cross join table(jb) where v = 'a1' order by w") == [
        {"v": "a1", "w": "b2"}, {"v": "a1", "w": "b3"}, {"v": "a1", "w": "b4"}]
    # USING: SELECT * shows the key once.
    rows = _table(engine, "select * except (_tp_time) from table(ja) join table(jb) using (k) order by k")
    assert [{k: r[k] for k in ("k", "v", "w")} for r in rows] == [
        {"k": 2, "v": "a2", "w": "b2"}, {"k": 3, "v": "a3", "w": "b3"}]
    assert "jb.k" not in rows[0]
    assert _table(engine, "select k, v, w, x from table(ja) join table(jb) using (k) left join table(jc) using (k) "
                          "order by k") == [{"k": 2, "v": "a2", "w": "b2", "x": ""},
                                            {"k": 3, "v": "a3", "w": "b3", "x": "c3"}]


async def test_a_stream_cross_joins_a_table(engine: Engine, shops: tuple[Stream, Stream, Stream]) -> None:
    a, _, _ = shops
    execution = engine.start(engine.plan("select v, x from ja cross join table(jc)"))
    a.append_rows(["k", "v"], [[9, "a9"]])
    assert await drain(execution) == [{"v": "a9", "x": "c3"}, {"v": "a9", "x": "c4"}]


@pytest.mark.parametrize(("sql", "message"), [
    ("select v from ja full join jb on ja.k = jb.k", "FULL JOIN of a streaming query is not supported"),
    ("select v from ja right join table(jb) on ja.k = jb.k", "RIGHT JOIN of a streaming query is not supported"),
    ("select v from ja cross join jb", "CROSS JOIN of two streams is not supported"),
])
def test_streaming_joins_proton_does_not_run_are_refused(engine: Engine, shops: tuple[Stream, Stream, Stream],
                                                         sql: str, message: str) -> None:
    with pytest.raises(SqlError, match=message) as info:
        engine.plan(sql)
    assert info.value.position is not None and info.value.position.line == 1


async def test_inner_latest_and_left_asof_spellings(engine: Engine, orders: Stream, payments: Stream) -> None:
    latest = engine.start(engine.plan("select id, paid from orders inner latest join payments on id = oid"))
    asof = engine.start(engine.plan("select id, paid from orders left asof join payments "
                                    "on id = oid and orders._tp_time >= payments._tp_time"))
    _pay(payments, "a", 1.0, 0)
    _pay(payments, "a", 2.0, 10)
    _order(orders, "a", 10.0, 5)
    _order(orders, "b", 20.0, 6)
    assert await drain(latest) == [{"id": "a", "paid": 2.0}]
    assert await drain(asof) == [{"id": "a", "paid": 1.0}, {"id": "b", "paid": None}]


async def test_two_versioned_kv_streams_join_as_changelogs(engine: Engine, store: StreamStore) -> None:
    """Proton's versioned_kv JOIN versioned_kv: a new version of a row on either side retracts the
    joined rows of its previous one (_tp_delta −1) before the new ones; aggregations take them back."""
    left = store.create("lk", [Column("k", parse_type("string")), Column("i", parse_type("int32"))],
                        StreamSettings(mode="versioned_kv", primary_key=("k",)))
    right = store.create("rk", [Column("kk", parse_type("string")), Column("j", parse_type("int32"))],
                         StreamSettings(mode="versioned_kv", primary_key=("kk",)))
    plan = engine.plan("select k, i, j, _tp_delta from lk join rk on lk.k = rk.kk")
    assert plan.describe().splitlines()[1:] == ["  StreamJoin inner", "    Changelog by k", "      Scan lk",
                                                "    Changelog by kk", "      Scan rk"]
    first = engine.start(plan)
    left.append_rows(["k", "i"], [["a", 1], ["b", 2]])
    assert await drain(first) == []
    right.append_rows(["kk", "j"], [["a", 10]])
    assert await drain(first) == [{"k": "a", "i": 1, "j": 10, "_tp_delta": 1}]
    snapshot = first.snapshot()
    first.close()
    second = engine.start(plan, snapshot)
    left.append_rows(["k", "i"], [["a", 3]])
    assert await drain(second) == [{"k": "a", "i": 1, "j": 10, "_tp_delta": -1}, {"k": "a", "i": 3, "j": 10, "_tp_delta": 1}]
    right.append_rows(["kk", "j"], [["a", 20]])
    assert await drain(second) == [{"k": "a", "i": 3, "j": 10, "_tp_delta": -1}, {"k": "a", "i": 3, "j": 20, "_tp_delta": 1}]
    # Each side holds its rows alive only: one per key.
    assert second.stats()["join_rows_held"] == 3


async def test_an_aggregation_over_a_join_of_versioned_kv_streams_retracts(engine: Engine, store: StreamStore) -> None:
    left = store.create("lk", [Column("k", parse_type("string")), Column("i", parse_type("int32"))],
                        StreamSettings(mode="versioned_kv", primary_key=("k",)))
    right = store.create("rk", [Column("kk", parse_type("string")), Column("j", parse_type("int32"))],
                         StreamSettings(mode="versioned_kv", primary_key=("kk",)))
    execution = engine.start(engine.plan("select count() as n, sum(i) as si, max(j) as mj from lk join rk "
                                         "on lk.k = rk.kk emit on update"))
    left.append_rows(["k", "i"], [["a", 1], ["b", 2]])
    right.append_rows(["kk", "j"], [["a", 10], ["b", 30]])
    assert (await drain(execution))[-1] == {"n": 2, "si": 3, "mj": 30}
    right.append_rows(["kk", "j"], [["b", 5]])  # b's new version: the maximum 30 is gone
    assert await drain(execution) == [{"n": 2, "si": 3, "mj": 10}]


def test_a_left_join_of_versioned_kv_streams_is_refused(engine: Engine, store: StreamStore) -> None:
    for name in ("lk", "rk"):
        store.create(name, [Column("k", parse_type("string"))], StreamSettings(mode="versioned_kv", primary_key=("k",)))
    with pytest.raises(SqlError, match="LEFT JOIN of two keyed streams is not supported") as info:
        engine.plan("select * from lk left join rk on lk.k = rk.k")
    assert info.value.position is not None and info.value.position.column == 28


def test_a_bounded_join_holds_its_right_side_in_the_snapshot(engine: Engine, shops: tuple[Stream, Stream, Stream]) -> None:
    """The bounded join's state (the right side read so far, which inputs ended) survives a restore."""
    plan = engine.plan("select v, w from table(ja) full join table(jb) on ja.k = jb.k")
    join_plan = plan.inputs[0]
    a, b, _ = shops
    right = b.table().to_batches()
    first = JoinOperator(join_plan)
    assert first.push(1, [(0, right[0].slice(0, 2))]) == []  # k 2 and 3, the right side not ended
    meta, tables = first.snapshot()
    first.close()
    second = JoinOperator(join_plan)
    second.restore(meta, tables)
    assert second.push(1, [(2, right[0].slice(2))]) == [] and second.end(1) == []
    left = a.table().combine_chunks().to_batches()[0]
    assert second.push(0, [(0, left)]) == []  # a FULL join waits for the left's end
    out = pa.concat_tables(second.end(0))
    assert second.finished
    # Left rows in arrival order, then the right row no left row met; no match: the types' defaults.
    assert out.select(["v", "__r_w"]).to_pylist() == [
        {"v": "a1", "__r_w": ""}, {"v": "a2", "__r_w": "b2"}, {"v": "a3", "__r_w": "b3"}, {"v": "", "__r_w": "b4"}]
