"""Encoding the next batches in chunks, and while the destination acknowledges earlier ones.

A sink whose encoding costs CPU (JSON documents for Kafka and Pulsar) overrides
:meth:`Sink.encode`. Two things make that encoding cheaper when rows flow fast:

* Chunks: the full batches waiting in the :class:`~sinkflow.runtime.batching.Batcher` are
  encoded with one call and the result sliced per batch. Encoding has a fixed cost per call
  (per column, per Arrow kernel): measured on car results, ten thousand rows at once cost half
  as much per row as a thousand.
* Overlap: waiting for a flush (the destination's acknowledgements) leaves the process idle,
  so the pipeline encodes the next chunks meanwhile, and their writes only enqueue.

Encoding runs on the event loop between its turns (:meth:`Sink.encoding`), not in a thread of
its own: a second Python thread competing for the GIL slowed encoding and the destination's
calls alike when measured.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable
from typing import Any, TypeVar

import pyarrow as pa

from sinkflow.runtime.batching import Batcher
from sinkflow.sinks.base import INLINE_ENCODE_ROWS, Sink

log = logging.getLogger(__name__)

T = TypeVar("T")


class EncodeAhead:
    """The batcher's batches in the batcher's order, each with what the sink's ``encode`` made
    of it (None: not encoded ahead; the sink's write encodes it).

    Only full batches (``max_rows``) are encoded ahead, so the batches are cut exactly as the
    batcher alone cuts them; a batch due by age is written as it is. Without a sink that
    encodes, this is the batcher alone. Memory stays bounded: at most ``depth`` batches ahead,
    out of rows the batcher already held.
    """

    def __init__(self, batcher: Batcher, sink: Sink | None, depth: int) -> None:
        self.batcher = batcher
        self._sink = sink
        self._depth = depth
        # Batches per encoding call: as many as stay within what is encoded on the event loop.
        self._chunk = max(1, INLINE_ENCODE_ROWS // batcher.policy.max_rows)
        self._ahead: deque[tuple[pa.RecordBatch, Any]] = deque()
        self._rows = 0

    def __len__(self) -> int:
        """Rows waiting: encoded ahead or still in the batcher."""
        return self._rows + len(self.batcher)

    def due(self) -> bool:
        """True when a batch is ready to be written."""
        return bool(self._ahead) or self.batcher.due()

    def wait_left(self) -> float:
        """Seconds until a batch is due (0 when one is)."""
        return 0.0 if self._ahead else self.batcher.wait_left()

    async def take(self) -> tuple[pa.RecordBatch, Any]:
        """The next batch and its encoding (or None). Call only when :meth:`due`."""
        if not self._ahead:
            await self._encode_chunk()
        if not self._ahead:
            return self.batcher.take(), None
        batch, encoded = self._ahead.popleft()
        self._rows -= batch.num_rows
        return batch, encoded

    async def meanwhile(self, work: Awaitable[T]) -> T:
        """Await ``work``; until it is done, encode the next chunks, one per turn of the loop."""
        task = asyncio.ensure_future(work)
        try:
            while not task.done() and await self._encode_chunk():
                await asyncio.sleep(0)  # let the work's completion be seen between chunks
            return await task
        finally:
            if not task.done():
                task.cancel()

    async def _encode_chunk(self) -> bool:
        """Encode the next full batches (up to a chunk, within ``depth``) with one call; False
        when there is nothing to encode ahead. A chunk whose encoding raises is kept
        unencoded: each batch's write encodes it again and raises where write failures are
        classified."""
        max_rows = self.batcher.policy.max_rows
        count = min(self._chunk, self._depth - len(self._ahead), len(self.batcher) // max_rows)
        if self._sink is None or count < 1:
            return False
        rows = self.batcher.take(count * max_rows)
        encoded: Any = None
        try:
            encoded = await self._sink.encoding(rows)
        except Exception as exc:
            log.debug("encoding ahead failed, left to write: %s", type(exc).__name__)
        for start in range(0, rows.num_rows, max_rows):
            part = None if encoded is None else tuple(
                None if item is None else item[start:start + max_rows] for item in encoded
            )
            self._ahead.append((rows.slice(start, max_rows), part))
        self._rows += rows.num_rows
        return True
