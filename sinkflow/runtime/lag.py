"""A sink's lag: rows of its streams whose results are not delivered yet, and their age.

The engine knows how many rows it has not read (``QueryExecution.lag()``, from the live head of
the stream); the pipeline knows how many it had read when everything produced so far was
acknowledged (its last checkpoint). Rows read since then wait in batches, in retries or in a
slow destination's hands: they are lag too, even while the pipeline is blocked delivering.
"""

from __future__ import annotations

import collections
import time

from sinkflow.engine import QueryExecution


class LagMeter:
    """Measures one running query's lag on demand (any time, from the event loop)."""

    def __init__(self, execution: QueryExecution, rows_read: int) -> None:
        self._execution = execution
        self._read = rows_read
        self._delivered = rows_read
        # (rows available in the stream so far, wall time they were first seen), increasing.
        self._seen: collections.deque[tuple[int, float]] = collections.deque()

    def delivered(self, rows_read: int) -> None:
        """Every result of the first ``rows_read`` rows is acknowledged (a checkpoint)."""
        self._delivered = self._read = rows_read

    def measure(self) -> tuple[int, float]:
        """(rows not delivered, seconds the oldest of them has waited). The age counts from
        when the row was first seen in its stream, so it is at most one measurement late."""
        self._read = max(self._read, int(self._execution.stats().get("rows_read", self._read)))
        available = self._read + self._execution.lag()
        now = time.time()
        if not self._seen or available > self._seen[-1][0]:
            self._seen.append((available, now))
        while len(self._seen) > 1 and self._seen[0][0] <= self._delivered:
            self._seen.popleft()
        behind = available - self._delivered
        if behind <= 0:
            return 0, 0.0
        return behind, max(0.0, now - self._seen[0][1])
