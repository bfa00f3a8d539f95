"""Queries that only pick stored columns run without DuckDB: same rows, order and types as through it."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from sinkflow.engine import Engine
from sinkflow.streams.store import Stream, StreamStore
from sinkflow.streams.types import Column, parse_type

from .conftest import drain

COLUMNS = [("id", "int32"), ("name", "nullable(string)"), ("fee", "decimal(10, 2)"), ("tags", "array(string)"),
           ("seen", "datetime64(3, 'UTC')")]
PICK = "select name as who, id, fee, id as again, tags, seen, _tp_time from readings"


def _stream(store: StreamStore) -> Stream:
    return store.create("readings", [Column(n, parse_type(t)) for n, t in COLUMNS])


def _append(stream: Stream, start: int, count: int) -> None:
    stream.append_rows(None, [
        [i, None if i % 3 == 0 else f"n{i}", Decimal(f"{i}.{i % 100:02d}"), [f"t{i}", "x"],
         datetime(2024, 1, 1, 0, 0, i % 60, 123000, tzinfo=timezone.utc)]
        for i in range(start, start + count)
    ])


async def test_a_column_pick_equals_the_same_query_through_duckdb(store: StreamStore, engine: Engine) -> None:
    stream = _stream(store)
    picked = engine.plan(PICK + " settings seek_to='earliest'")
    through_duckdb = engine.plan(PICK + " where true settings seek_to='earliest'")
    assert picked.passthrough is not None and through_duckdb.passthrough is None
    assert picked.output_schema == through_duckdb.output_schema
    for start, count in ((0, 5), (5, 1), (6, 40)):
        _append(stream, start, count)
    fast, slow = engine.start(picked), engine.start(through_duckdb)
    got = await drain(fast)
    assert got == await drain(slow)
    assert [r["again"] for r in got] == list(range(46))  # every row, in arrival order
    assert got[3] == {"who": None, "id": 3, "fee": Decimal("3.03"), "again": 3, "tags": ["t3", "x"],
                      "seen": datetime(2024, 1, 1, 0, 0, 3, 123000, tzinfo=timezone.utc),
                      "_tp_time": got[3]["_tp_time"]}
    assert fast.stats()["rows_emitted"] == 46


async def test_a_column_pick_keeps_limit_and_snapshot(store: StreamStore, engine: Engine) -> None:
    stream = _stream(store)
    plan = engine.plan("select id from readings limit 7")
    assert plan.passthrough is not None
    execution = engine.start(plan)
    _append(stream, 0, 4)
    assert [r["id"] for r in await drain(execution)] == [0, 1, 2, 3]
    restored = engine.start(plan, snapshot=execution.snapshot())
    _append(stream, 4, 10)
    assert [r["id"] for r in await drain(restored)] == [4, 5, 6]
    assert restored.finished


def test_only_plain_column_picks_skip_duckdb(store: StreamStore, engine: Engine) -> None:
    _stream(store)
    assert engine.plan("select * from readings").passthrough is not None
    for sql in ("select id + 1 as id from readings", "select id from readings where id > 3",
                "select cast(id as string) as id from readings",
                "select window_start, id from tumble(readings, seen, 1s)",
                "select count() as n from readings"):
        assert engine.plan(sql).passthrough is None, sql

