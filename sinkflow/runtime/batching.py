"""Accumulating query results into delivery batches by row count and age."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import pyarrow as pa

from sinkflow.sinks.config import BatchPolicy


class Batcher:
    """Holds result rows until a batch is due.

    A batch is due when ``max_rows`` rows are waiting or the oldest waited ``max_wait``
    seconds. Memory stays bounded because the pipeline stops pulling results while a batch
    is being delivered (backpressure): at most one query step's output waits here. ``clock``
    (seconds, monotonic) is what the age is measured on.
    """

    def __init__(self, policy: BatchPolicy, schema: pa.Schema, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self.schema = schema
        self._batches: deque[pa.RecordBatch] = deque()
        self._rows = 0
        self._since: float | None = None

    def __len__(self) -> int:
        return self._rows

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        if self._since is None:
            self._since = self._clock()
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
        return self.policy.max_wait - (self._clock() - self._since)

    def take(self, rows: int | None = None) -> pa.RecordBatch:
        """Remove and return up to ``rows`` (default ``max_rows``) of the oldest waiting rows as one batch.

        Only the rows returned are touched: a slice of the oldest batch when it holds enough
        (no copy, the common case under load), else the oldest batches joined."""
        need = self.policy.max_rows if rows is None else rows
        pieces: list[pa.RecordBatch] = []
        while need and self._batches:
            batch = self._batches.popleft()
            if batch.num_rows > need:
                self._batches.appendleft(batch.slice(need))
                batch = batch.slice(0, need)
            pieces.append(batch)
            need -= batch.num_rows
        head = pieces[0] if len(pieces) == 1 else pa.concat_batches(pieces)
        self._rows -= head.num_rows
        self._since = self._clock() if self._rows else None
        return head
