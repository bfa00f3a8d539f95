"""The vectorized dedup decides exactly as the rule read row by row: keep a row unless its key was
last kept less than ttl of event time before it (without a ttl: unless its key was ever kept)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from sinkflow.engine import Engine
from sinkflow.engine.dedup import MAX_ROUNDS, DedupState
from sinkflow.streams.store import StreamStore
from sinkflow.streams.types import Column, parse_type

from .conftest import drain

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
SCHEMA = pa.schema([("a", pa.string()), ("b", pa.int32()), ("_tp_time", pa.timestamp("ms", tz="UTC"))])


def reference(batches: list[list[tuple]], ttl_ms: int | None) -> list[list[int]]:
    """The rule, row by row: per batch, the indices of the kept rows."""
    seen: dict[tuple, int] = {}
    out: list[list[int]] = []
    for rows in batches:
        kept = []
        for i, (a, b, t) in enumerate(rows):
            first = seen.get((a, b))
            if first is not None and (ttl_ms is None or t - first < ttl_ms):
                continue
            seen[(a, b)] = t
            kept.append(i)
        out.append(kept)
    return out


def random_batches(seed: int, n_batches: int, size: int, keys: int, span_ms: int) -> list[list[tuple]]:
    rnd = random.Random(seed)
    batches, clock = [], 0
    for _ in range(n_batches):
        rows = []
        for _ in range(size):
            clock += rnd.randrange(0, 3)
            a = rnd.choice(["x", "y", None]) if keys > 1 else "x"
            rows.append((a, rnd.randrange(keys), max(0, clock - rnd.randrange(span_ms))))  # out of order
        batches.append(rows)
    return batches


def run(batches: list[list[tuple]], ttl_ms: int | None, snapshot_between: bool) -> list[list[int]]:
    state = DedupState(["a", "b"], [pa.string(), pa.int32()], None if ttl_ms is None else ttl_ms * 1000)
    out = []
    for rows in batches:
        batch = pa.RecordBatch.from_pylist(
            [{"a": a, "b": b, "_tp_time": T0 + timedelta(milliseconds=t)} for a, b, t in rows], schema=SCHEMA)
        keep = state.filter(batch, "_tp_time")
        out.append(list(range(len(rows))) if keep is None else keep.to_pylist())
        if snapshot_between:  # a state restored from its snapshot table decides the same
            restored = DedupState(["a", "b"], [pa.string(), pa.int32()], state.ttl_us)
            restored.restore(state.to_table())
            state = restored
    return out


@pytest.mark.parametrize("ttl_ms", [None, 1, 5, 40, 10_000])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_vectorized_dedup_decides_as_the_row_by_row_rule(seed: int, ttl_ms: int | None) -> None:
    batches = random_batches(seed, n_batches=6, size=400, keys=7, span_ms=30)
    expected = reference(batches, ttl_ms)
    assert run(batches, ttl_ms, snapshot_between=seed == 2) == expected
    assert sum(map(len, expected)) < 6 * 400  # the data has duplicates to drop


def test_a_key_keeping_more_rows_than_the_vectorized_rounds_is_still_exact() -> None:
    rows = [("x", 1, t) for t in range(0, 100 * MAX_ROUNDS, 3)]  # one key, every 10 ms kept
    assert run([rows], 10, snapshot_between=False) == reference([rows], 10)
    assert len(reference([rows], 10)[0]) > 2 * MAX_ROUNDS


async def test_dedup_key_limit_forgets_the_earliest_arrived_key(engine: Engine, store: StreamStore) -> None:
    """Proton's 0017_dedup smoke test 2: rows of one ingest batch share their time; max_keys 2
    keeps the two that arrived last."""
    stream = store.create("dedup_stream", [Column("i", parse_type("int32")), Column("s", parse_type("string"))])
    execution = engine.start(engine.plan("select i, s from dedup(dedup_stream, s, 0s, 2)"))
    stream.append_rows(["i", "s"], [[1, "s1"], [2, "s2"], [3, "s3"]])
    assert [r["s"] for r in await drain(execution)] == ["s1", "s2", "s3"]
    stream.append_rows(["i", "s"], [[2, "s2"], [3, "s3"], [1, "s1"]])
    assert await drain(execution) == [{"i": 1, "s": "s1"}]
