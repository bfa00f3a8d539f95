"""changelog(stream, key…) and aggregations that take retracted rows back, end to end (Proton's
0029_emit_changelog over versioned_kv re-expressed with changelog())."""

from __future__ import annotations

import pytest

from sinkflow.engine import Engine
from sinkflow.errors import SqlError
from sinkflow.streams.store import Stream, StreamSettings, StreamStore
from sinkflow.streams.types import Column, parse_type

from .conftest import drain


@pytest.fixture
def pairs(store: StreamStore) -> Stream:
    return store.create("pairs", [Column("i", parse_type("int32")), Column("k", parse_type("string"))])


async def test_changelog_retracts_a_keys_previous_row(engine: Engine, pairs: Stream) -> None:
    execution = engine.start(engine.plan("select i, k, _tp_delta from changelog(pairs, i)"))
    pairs.append_rows(["i", "k"], [[1, "k1"], [2, "k1"]])
    assert [list(r.values()) for r in await drain(execution)] == [[1, "k1", 1], [2, "k1", 1]]
    pairs.append_rows(["i", "k"], [[1, "k2"], [1, "k3"]])
    assert [list(r.values()) for r in await drain(execution)] == [[1, "k1", -1], [1, "k2", 1], [1, "k2", -1],
                                                                  [1, "k3", 1]]


async def test_an_aggregation_over_a_changelog_counts_each_key_once(engine: Engine, pairs: Stream) -> None:
    plan = engine.plan("select k, count() as n, sum(i) as total, _tp_delta from changelog(pairs, i) "
                       "group by k emit changelog")
    first = engine.start(plan)
    pairs.append_rows(["i", "k"], [[1, "k1"], [2, "k1"]])
    assert [list(r.values()) for r in await drain(first)] == [["k1", 2, 3, 1]]
    snapshot = first.snapshot()
    first.close()
    second = engine.start(plan, snapshot)
    pairs.append_rows(["i", "k"], [[1, "k2"]])  # key 1 moves from k1 to k2
    assert [list(r.values()) for r in await drain(second)] == [["k1", 2, 3, -1], ["k1", 1, 2, 1], ["k2", 1, 1, 1]]


def test_aggregates_that_cannot_retract_are_refused(engine: Engine, pairs: Stream) -> None:
    with pytest.raises(SqlError, match=r"group_array\(\) cannot take back retracted rows") as caught:
        engine.plan("select group_array(i) from changelog(pairs, i)")
    assert caught.value.position is not None and caught.value.position.column == 8


async def test_min_and_max_over_a_changelog_forget_retracted_values(engine: Engine, pairs: Stream) -> None:
    """As Proton: min/max keep a count per value alive, so a retraction can take the extreme back."""
    plan = engine.plan("select k, min(i) as lo, max(i) as hi from changelog(pairs, i) group by k emit on update")
    first = engine.start(plan)
    pairs.append_rows(["i", "k"], [[1, "k1"], [2, "k1"], [2, "k1"]])  # key 2's second row replaces its first
    assert await drain(first) == [{"k": "k1", "lo": 1, "hi": 2}]
    snapshot = first.snapshot()
    first.close()
    second = engine.start(plan, snapshot)
    pairs.append_rows(["i", "k"], [[1, "k2"]])  # key 1 moves to k2: k1's minimum goes with it
    assert await drain(second) == [{"k": "k1", "lo": 2, "hi": 2}, {"k": "k2", "lo": 1, "hi": 1}]
    pairs.append_rows(["i", "k"], [[3, "k1"], [2, "k2"]])  # key 2 moves to k2: k1 keeps 3 alone
    assert await drain(second) == [{"k": "k1", "lo": 3, "hi": 3}, {"k": "k2", "lo": 1, "hi": 2}]


async def test_a_global_aggregation_over_a_versioned_kv_stream_retracts_old_versions(engine: Engine,
                                                                                    store: StreamStore) -> None:
    settings = StreamSettings(mode="versioned_kv", primary_key=("i",))
    kv = store.create("kv", [Column("i", parse_type("int32")), Column("k", parse_type("string"))], settings)
    execution = engine.start(engine.plan("select k, count() as n from kv group by k emit on update"))
    kv.append_rows(["i", "k"], [[1, "a"], [2, "a"]])
    assert await drain(execution) == [{"k": "a", "n": 2}]
    kv.append_rows(["i", "k"], [[1, "b"]])
    assert await drain(execution) == [{"k": "a", "n": 1}, {"k": "b", "n": 1}]


async def test_a_streaming_query_over_a_versioned_kv_stream_starts_with_its_newest_rows(engine: Engine,
                                                                                          store: StreamStore) -> None:
    """Proton's 0014_versioned_kv_join smoke test 0: the newest row per key first, then new rows."""
    settings = StreamSettings(mode="versioned_kv", primary_key=("s",))
    kv = store.create("test15_versioned_kv_stream", [Column("i", parse_type("int32")), Column("s", parse_type("string"))],
                      settings)
    kv.append_rows(["i", "s"], [[1, "a"]])
    kv.append_rows(["i", "s"], [[2, "b"]])
    kv.append_rows(["i", "s"], [[2, "a"], [3, "b"], [4, "c"]])
    execution = engine.start(engine.plan("select i, s from test15_versioned_kv_stream"))
    assert await drain(execution) == [{"i": 2, "s": "a"}, {"i": 3, "s": "b"}, {"i": 4, "s": "c"}]
    snapshot = execution.snapshot()
    execution.close()
    resumed = engine.start(engine.plan("select i, s from test15_versioned_kv_stream"), snapshot)
    kv.append_rows(["i", "s"], [[5, "d"], [6, "c"]])
    assert await drain(resumed) == [{"i": 5, "s": "d"}, {"i": 6, "s": "c"}]
