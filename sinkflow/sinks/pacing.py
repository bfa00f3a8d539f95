"""Pacing sends to a rate: :class:`Pacer` spaces the starts of sends (Slack: about one message
per second per webhook) and holds them back after a 429's ``Retry-After``."""

from __future__ import annotations

import asyncio
import time


class Pacer:
    """Spaces the actual starts of sends at least ``1 / rate`` seconds apart, across concurrent
    callers: callers pass one at a time, so a caller woken late never crowds the next one.

    :meth:`hold` pushes the next start back (after a 429 with ``Retry-After``).
    """

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self._last_start = float("-inf")
        self._held_until = 0.0
        self._turn = asyncio.Lock()

    async def wait(self) -> None:
        """Return when the caller may start its send."""
        async with self._turn:
            while (delay := max(self._last_start + self.interval, self._held_until) - time.monotonic()) > 0:
                await asyncio.sleep(delay)  # may wake a little early: check again
            self._last_start = time.monotonic()

    def hold(self, seconds: float) -> None:
        """Start no send before ``seconds`` from now."""
        self._held_until = max(self._held_until, time.monotonic() + seconds)


_PACERS: dict[tuple[str, float], Pacer] = {}


def shared_pacer(url: str, rate: float) -> Pacer:
    """The process's pacer for ``url``: every sink posting to one webhook shares its rate limit
    (Slack allows about one message per second per webhook, not per sink)."""
    return _PACERS.setdefault((url, rate), Pacer(rate))
