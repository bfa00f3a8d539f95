"""The source of ``numbers(…)`` and ``system.numbers``: generated ``uint64`` numbers, read in
blocks as a stream's log is (see :mod:`sinkflow.sql.table_functions`)."""

from __future__ import annotations

import asyncio

import numpy as np
import pyarrow as pa

from sinkflow.engine.limits import check_cancelled
from sinkflow.engine.operators.base import Entries
from sinkflow.engine.operators.scan import MAX_ROWS_PER_STEP, Scan
from sinkflow.sql.plan import SourceSpec
from sinkflow.sql.table_functions import numbers_range
from sinkflow.streams.store import StreamStore

#: Rows per block at most, as Proton's default ``max_block_size``.
BLOCK_ROWS = 65_536
#: Rows of the first block: blocks grow fourfold from it, so ``LIMIT 10`` computes few rows.
FIRST_BLOCK_ROWS = 1_024


class Numbers(Scan):
    """``number`` values in blocks; the read position is the count of numbers read so far. Without
    a count it never ends (a query's LIMIT ends it)."""

    def __init__(self, spec: SourceSpec, store: StreamStore) -> None:  # noqa: ARG002 - same signature as Scan
        self.spec = spec
        self.name = spec.stream
        self.range = numbers_range(spec.stream)
        self.offset = 0
        self.end = self.range.count
        self.rows_read = 0
        self.ended_signalled = False

    def start(self) -> None:
        self.offset, self.end = 0, self.range.count

    def lag(self) -> int:
        return 0 if self.end is None else self.end - self.offset

    def read(self, max_rows: int = MAX_ROWS_PER_STEP) -> Entries:  # noqa: ARG002 - its own block sizes
        check_cancelled()  # a query without LIMIT over system.numbers may run no DuckDB call to interrupt
        block = min(BLOCK_ROWS, max(FIRST_BLOCK_ROWS, self.offset * 3))
        rows = block if self.end is None else min(block, self.end - self.offset)
        if rows <= 0:
            return []
        first = self.range.start + self.offset * self.range.step
        values = np.arange(first, first + rows * self.range.step, self.range.step, dtype=np.uint64)
        return [(self.offset, pa.record_batch([pa.array(values, pa.uint64())], names=["number"]))]

    async def wait(self, timeout: float) -> None:
        await asyncio.sleep(0)

    def describe(self) -> list[str]:
        r = self.range
        return [f"Numbers from {r.start} step {r.step}" + ("" if r.count is None else f" count {r.count}")]
