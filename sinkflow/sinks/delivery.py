"""Sending the rows of a batch one by one, as the row-at-a-time sinks (http, webhook, slack,
e-mail) do: :func:`deliver_rows` keeps up to ``paralism`` sends in flight, in result order when
``paralism`` is 1, and reports the failed rows in one :class:`PartialWriteError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sinkflow.sinks.base import NotAttempted, PartialWriteError, SinkError


async def deliver_rows(
    count: int, send: Callable[[int], Awaitable[None]], paralism: int, *, will_retry: bool = True
) -> None:
    """Call ``send(i)`` for every row index ``i`` in ``range(count)``, at most ``paralism`` at once.

    ``send`` raises :class:`SinkError` for a row it could not deliver. With ``paralism`` 1
    rows go strictly one after another in result order; at the first *retryable* failure
    sending stops and every later row is reported as a retryable "not sent" failure, so the
    runtime's retry delivers them in order after the failed one. A failure that will not be
    retried (a permanent one, or any when ``will_retry`` is false because the sink's retry
    policy allows no retries) does not stop the batch: that row goes to the dead-letter
    stream, so sending the next rows keeps the order of everything that is delivered.

    With ``paralism`` N > 1 every row is tried, N at a time, in no guaranteed order.

    Raises :class:`PartialWriteError` mapping each failed row index to its error; other
    exceptions from ``send`` (bugs) propagate and cancel the sends in flight.
    """
    failures: dict[int, SinkError] = {}
    if paralism <= 1:
        for index in range(count):
            try:
                await send(index)
            except SinkError as exc:
                failures[index] = exc
                if exc.retryable and will_retry:
                    not_sent = NotAttempted(
                        f"not sent: row {index} before it failed and rows are sent in order (paralism 1)",
                        retry_after=exc.retry_after,
                    )
                    failures.update(dict.fromkeys(range(index + 1, count), not_sent))
                    break
    else:
        indexes = iter(range(count))

        async def worker() -> None:
            # Workers share one iterator, so each row is taken exactly once, N in flight.
            for index in indexes:
                try:
                    await send(index)
                except SinkError as exc:
                    failures[index] = exc

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(paralism, count)):
                    group.create_task(worker())
        except ExceptionGroup as errors:  # a bug in send: surface it as itself, like paralism 1 does
            raise errors.exceptions[0] from None
    if failures:
        raise PartialWriteError(dict(sorted(failures.items())))
