"""The Batcher cuts result chunks of any size into write batches of exactly ``max_rows``, in order."""

from __future__ import annotations

import pyarrow as pa
import pytest

from sinkflow.runtime.batching import Batcher
from sinkflow.sinks.config import BatchPolicy

SCHEMA = pa.schema([("n", pa.int64())])


def _chunk(start: int, count: int) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({"n": list(range(start, start + count))}, schema=SCHEMA)


def test_small_chunks_are_joined_into_exact_cuts() -> None:
    batcher = Batcher(BatchPolicy(max_rows=5, max_wait=60), SCHEMA)
    for start in range(0, 12, 2):
        batcher.add(_chunk(start, 2))
    cuts = []
    while batcher.due():
        cuts.append(batcher.take().column(0).to_pylist())
    assert cuts == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert len(batcher) == 2
    assert batcher.take().column(0).to_pylist() == [10, 11]
    assert len(batcher) == 0


def test_a_large_chunk_is_cut_then_its_rest_joined_with_the_next() -> None:
    batcher = Batcher(BatchPolicy(max_rows=4, max_wait=60), SCHEMA)
    batcher.add(_chunk(0, 10))
    batcher.add(_chunk(10, 3))
    cuts = [batcher.take().column(0).to_pylist() for _ in range(4)]
    assert cuts == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12]]


@pytest.mark.parametrize(("max_rows", "flush_rows"), [(1, 10_000), (1000, 64_000), (10_000, 100_000), (500_000, 500_000)])
def test_a_flush_comes_after_64_batches_within_10_000_to_100_000_rows(max_rows: int, flush_rows: int) -> None:
    assert BatchPolicy(max_rows=max_rows, max_wait=1).flush_rows == flush_rows
