"""Accumulating query results into delivery batches by row count and age."""

from __future__ import annotations

import time

import pyarrow as pa

from sinkflow.sinks.config import BatchPolicy


class Batcher:
    """Holds result rows until a batch is due.

    A batch is due when ``max_rows`` rows are waiting or the oldest waited ``max_wait``
    seconds. Memory stays bounded because the pipeline stops pulling results while a batch
    is being delivered (backpressure): at most one query step's output waits here.
    """

    def __init__(self, policy: BatchPolicy, schema: pa.Schema) -> None:
        self.policy = policy
        self.schema = schema
        self._batches: list[pa.RecordBatch] = []
        self._rows = 0
        self._since: float | None = None

    def __len__(self) -> int:
        return self._rows

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        if self._since is None:
            self._since = time.monotonic()
        self._batches.append(batch)
        self._rows += batch.num_rows

    def due(self) -> bool:
        """True when a full batch is waiting or the oldest row waited long enough."""
        if self._rows == 0:
            return False
        return self._rows >= self.policy.max_rows or self.wait_left() <= 0

    def wait_left(self) -> float:
        """Seconds until the waiting rows are due by age (``max_wait`` when none wait)."""
        if self._since is None:
            return self.policy.max_wait
        return self.policy.max_wait - (time.monotonic() - self._since)

    def take(self) -> pa.RecordBatch:
        """Remove and return up to ``max_rows`` of the oldest waiting rows as one batch."""
        first = self._batches[0]
        if first.num_rows >= self.policy.max_rows or len(self._batches) == 1:
            # The common case under load: a slice of the oldest batch, no copy.
            head, rest = first.slice(0, self.policy.max_rows), first.slice(self.policy.max_rows)
            self._batches = ([rest] if rest.num_rows else []) + self._batches[1:]
            self._rows -= head.num_rows
            self._since = time.monotonic() if self._rows else None
            return head
        table = pa.Table.from_batches(self._batches, schema=self.schema)
        head = table.slice(0, self.policy.max_rows).combine_chunks()
        rest = table.slice(self.policy.max_rows)
        self._batches = rest.to_batches() if rest.num_rows else []
        self._rows = rest.num_rows
        self._since = time.monotonic() if self._rows else None
        batches = head.to_batches()
        return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=self.schema)
