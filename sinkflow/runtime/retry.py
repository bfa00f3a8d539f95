"""Retry classification and backoff, shared by every destination.

Destinations raise :class:`~sinkflow.sinks.base.SinkError` subclasses when they know what a
failure means; :func:`is_retriable` decides for everything else, so no connector carries
its own retry loop.
"""

from __future__ import annotations

import asyncio
import errno
import random
import sqlite3

from sinkflow.sinks.base import SinkError
from sinkflow.sinks.config import RetryPolicy


def is_retriable(error: BaseException) -> bool:
    """True when trying again may succeed: a retryable SinkError, a network error, a timeout,
    or a full disk (the stream log's or the catalog's: space may come back)."""
    if isinstance(error, SinkError):
        return error.retryable
    return isinstance(error, (OSError, TimeoutError, asyncio.TimeoutError, ConnectionError)) or is_disk_full(error)


def is_disk_full(error: BaseException) -> bool:
    """True for "no space left" from the file system or from SQLite."""
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(error, sqlite3.OperationalError) and getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL


def retry_after(error: BaseException) -> float | None:
    """The destination's own wait before a retry (an HTTP Retry-After), when it gave one."""
    return error.retry_after if isinstance(error, SinkError) else None


_RNG = random.Random()


class Backoff:
    """Exponential backoff with full jitter around the policy's curve.

    The n-th wait is uniform in [d/2, d] where d = min(max_backoff, initial * 2**(n-1)), and
    never shorter than a Retry-After the destination asked for.
    """

    def __init__(self, policy: RetryPolicy, rng: random.Random | None = None) -> None:
        self.policy = policy
        self.attempt = 0
        self._rng = rng or _RNG

    def exhausted(self) -> bool:
        """True once ``max_retries`` retries were spent (never for an unbounded policy)."""
        return self.policy.max_retries is not None and self.attempt >= self.policy.max_retries

    def next_delay(self, asked: float | None = None) -> float:
        """Count one retry and return how long to wait before it."""
        self.attempt += 1
        ceiling = min(self.policy.max_backoff, self.policy.initial_backoff * 2 ** (self.attempt - 1))
        delay = self._rng.uniform(ceiling / 2, ceiling)
        return max(delay, asked or 0.0)

    def reset(self) -> None:
        self.attempt = 0
