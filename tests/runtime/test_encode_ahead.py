"""EncodeAhead: batches cut exactly as the Batcher cuts them, encoded in chunks, also while a flush waits."""

from __future__ import annotations

import asyncio
from typing import Any

import pyarrow as pa

from sinkflow.runtime.batching import Batcher
from sinkflow.runtime.encode_ahead import EncodeAhead
from sinkflow.sinks.base import Sink, SinkEnv, WriteContext
from sinkflow.sinks.config import BatchPolicy, SinkConfig

SCHEMA = pa.schema([("n", pa.int64())])


class Encoding(Sink):
    """Encodes each row as the text of ``n``; refuses to encode a batch holding ``refuse``."""

    config_class = SinkConfig

    def __init__(self, refuse: int | None = None) -> None:
        super().__init__(SinkConfig(), SinkEnv("s", "s", SCHEMA))
        self.calls: list[int] = []
        self.refuse = refuse

    def encode(self, batch: pa.RecordBatch) -> tuple[Any, ...]:
        self.calls.append(batch.num_rows)
        values = batch.column(0).to_pylist()
        if self.refuse in values:
            raise TypeError("cannot encode")
        return pa.array([str(v) for v in values]), None

    async def write(self, batch: pa.RecordBatch, ctx: WriteContext) -> None:
        raise AssertionError("not called here")


def batches_of(sizes: list[int], max_rows: int) -> Batcher:
    batcher = Batcher(BatchPolicy(max_rows=max_rows, max_wait=60), SCHEMA)
    start = 0
    for size in sizes:
        batcher.add(pa.RecordBatch.from_pydict({"n": list(range(start, start + size))}, schema=SCHEMA))
        start += size
    return batcher


async def take_all(ahead: EncodeAhead) -> list[tuple[list[int], Any]]:
    taken = []
    while len(ahead):
        batch, encoded = await ahead.take()
        taken.append((batch.column(0).to_pylist(), encoded))
    return taken


async def test_batches_are_cut_as_the_batcher_cuts_them_and_each_gets_its_own_rows_encoding() -> None:
    sink = Encoding()
    # 10-row batches; full ones are encoded up to depth (200) batches per call.
    ahead = EncodeAhead(batches_of([7, 3000, 45, 1], max_rows=10), sink, depth=200)
    taken = await take_all(ahead)
    assert [rows for rows, _ in taken] == [list(range(s, min(s + 10, 3053))) for s in range(0, 3053, 10)]
    for rows, encoded in taken[:-1]:
        documents, keys = encoded
        assert documents.to_pylist() == [str(n) for n in rows] and keys is None
    # The last, partial batch is left to its write; the full ones took 2 encoding calls, not 305.
    assert taken[-1][1] is None
    assert sink.calls == [2000, 1050]


async def test_without_a_sink_that_encodes_it_is_the_batcher_alone() -> None:
    taken = await take_all(EncodeAhead(batches_of([25], max_rows=10), None, depth=16))
    assert [(len(rows), encoded) for rows, encoded in taken] == [(10, None), (10, None), (5, None)]


async def test_a_chunk_that_cannot_be_encoded_is_left_to_its_writes() -> None:
    sink = Encoding(refuse=15)
    taken = await take_all(EncodeAhead(batches_of([40], max_rows=10), sink, depth=16))
    assert [rows[0] for rows, _ in taken] == [0, 10, 20, 30]
    assert all(encoded is None for _, encoded in taken)


async def test_the_next_batches_are_encoded_while_a_flush_waits_and_no_further_than_depth() -> None:
    sink = Encoding()
    ahead = EncodeAhead(batches_of([20_000], max_rows=100), sink, depth=30)
    flushed = asyncio.Event()

    async def flush() -> str:
        await asyncio.sleep(0.05)
        flushed.set()
        return "acknowledged"

    assert await ahead.meanwhile(flush()) == "acknowledged"
    assert flushed.is_set()
    # 30 batches (depth) were encoded ahead, in chunks of at most 16,000 rows / 100 = 160 batches.
    assert sink.calls == [3000]
    assert len(ahead) == 20_000
    first, encoded = await ahead.take()
    assert first.column(0).to_pylist() == list(range(100))
    assert encoded[0].to_pylist() == [str(n) for n in range(100)]
