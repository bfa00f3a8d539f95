"""Feeding random streams (``CREATE RANDOM STREAM``) from their columns' DEFAULT expressions.

:func:`run_random_streams` runs beside the server: every ``tick`` seconds each random stream gets
``eps * tick`` new rows (fractions carried over), computed by :meth:`Stream.generate`, so streaming
queries tail it and ``table()`` reads what was generated so far. ``eps=0`` (Timeplus: as fast as
possible) generates :data:`UNBOUNDED_EPS` rows per second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sinkflow.errors import SinkflowError
from sinkflow.streams.store import StreamStore

logger = logging.getLogger(__name__)

UNBOUNDED_EPS = 100_000.0  # rows per second of a random stream with eps=0


async def run_random_streams(store: StreamStore, stop: asyncio.Event, tick: float = 0.1) -> None:
    """Generate rows into every random stream of ``store`` until ``stop`` is set. A stream that
    fails to generate is logged and tried again at the next tick; streams created or dropped
    meanwhile are picked up or left."""
    carry: dict[str, float] = {}
    next_at = time.monotonic()
    while not stop.is_set():
        for stream in store.list():
            if not stream.settings.random or not store.generates(stream.name):
                continue
            eps = stream.settings.eps or UNBOUNDED_EPS
            owed = carry.get(stream.name, 0.0) + eps * tick
            count = int(owed)
            carry[stream.name] = owed - count
            if count:
                try:
                    await asyncio.to_thread(stream.generate, count)
                except (SinkflowError, OSError, ValueError) as exc:
                    logger.error("random stream %s: generating rows failed: %s", stream.name, exc)
        next_at = max(next_at + tick, time.monotonic())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))
