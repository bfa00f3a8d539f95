"""The Sink protocol every destination implements, and the errors it raises.

A destination only moves rows; everything else (batching, retries with backoff, rate of
checkpoints, dead-lettering, metrics) belongs to the runtime and is written once for all.

Contract, in the order the runtime calls the methods:

* ``open()`` connects and prepares the destination (creates a topic or a table when the
  sink's properties ask for it). It raises :class:`RetryableError` when the destination is
  unreachable (the runtime waits and calls ``open()`` again) and :class:`PermanentError` when
  it can never work (wrong password, incompatible table): the sink is then *failed*.
* ``write(batch, ctx)`` hands over a non-empty Arrow batch of result rows. A request/response
  destination (HTTP, Slack, e-mail, ClickHouse) sends it before returning; a destination with
  asynchronous acknowledgements (Kafka, Pulsar) may only enqueue it. When some rows failed and
  others were delivered, it raises :class:`PartialWriteError` mapping the failed row indexes
  (into ``batch``) to their errors; the runtime retries or dead-letters exactly those rows.
  Any other :class:`SinkError` means no row of the batch can be counted as delivered.
* ``flush(epoch)`` returns only when every row written since the previous flush is
  acknowledged by the destination, and raises otherwise (:class:`PartialWriteError` indexes
  count rows in write order since the previous flush). After it returns, the runtime may
  commit the checkpoint: this is the delivery guarantee.
* ``close()`` releases connections; it never raises for delivery problems.
* ``encode(batch)`` (optional) makes what ``write`` sends of a batch, without I/O; the runtime
  may call it ahead of the batch's ``write`` while a ``flush`` is in progress, and passes the
  result as ``ctx.encoded``.

``write`` and ``flush`` are never called concurrently on one sink instance.
Errors that are not :class:`SinkError` are classified by :func:`sinkflow.runtime.retry.is_retriable`
(network errors and timeouts retry; anything else is permanent).
"""

from __future__ import annotations

import abc
import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import pyarrow as pa

if TYPE_CHECKING:
    from sinkflow.sinks.config import SinkConfig


class SinkError(Exception):
    """A delivery failure. ``retryable`` says whether trying again may succeed.

    ``retry_after`` (seconds) is the destination's own word on when to try again
    (an HTTP ``Retry-After`` header); the runtime waits at least that long.
    Messages must never contain a secret (password, token, webhook URL).
    """

    retryable: bool = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class RetryableError(SinkError):
    """The destination is unavailable for now (network, timeout, 5xx, 429, broker down)."""

    retryable = True


class PermanentError(SinkError):
    """The rows can never be delivered as they are (4xx other than 429, schema mismatch, refused login)."""

    retryable = False


class NotAttempted(RetryableError):
    """A row that was not sent because an earlier row failed and rows go in order (paralism 1).

    It spends no retry of its own: when the failed row is dead-lettered, the runtime goes on
    with the rows behind it.
    """


class PartialWriteError(SinkError):
    """Some rows of a write (or of the writes since the last flush) failed; the others were delivered.

    ``failures`` maps a row index to that row's error. Rows not in it were acknowledged.
    """

    def __init__(self, failures: dict[int, SinkError]) -> None:
        first = next(iter(failures.values()))
        super().__init__(f"{len(failures)} row(s) failed; first: {first.message}")
        self.failures = failures
        self.retryable = all(err.retryable for err in failures.values())


@dataclass(frozen=True)
class WriteContext:
    """Where a batch sits in the query's output, for destinations that deduplicate.

    ``first_row`` is the position of the epoch's first row in everything the sink's query has
    emitted since the sink was created; the engine is deterministic, so after a restart the
    same position holds the same row. ``row_ids`` are the positions of the written rows within
    the epoch's batch (``None``: 0..n-1), so a retry of some rows keeps each row's key.
    ``encoded`` is what :meth:`Sink.encode` made of exactly the written batch when the runtime
    encoded it ahead (``None``: not encoded, the sink encodes it itself).
    """

    sink_id: str
    epoch: int
    first_row: int = 0
    row_ids: tuple[int, ...] | None = None
    encoded: Any = field(default=None, compare=False, repr=False)

    def row_number(self, index: int) -> int:
        """The output position of row ``index`` of the written batch."""
        return self.first_row + (self.row_ids[index] if self.row_ids is not None else index)

    def row_key(self, index: int) -> str:
        """A stable idempotency key for row ``index`` of the written batch (an HTTP Idempotency-Key)."""
        return f"{self.sink_id}-{self.row_number(index)}"

    def batch_key(self, num_rows: int) -> str:
        """A stable key for a whole written batch of ``num_rows`` rows (ClickHouse's insert
        deduplication token): the same rows replayed in the same cut get the same key."""
        return f"{self.sink_id}-{self.row_number(0)}-{num_rows}"


class StreamTarget(Protocol):
    """What the stream sink may do with sinkflow's streams, provided by the runtime so that
    destinations never import the storage layer."""

    def ensure(self, name: str, schema: pa.Schema) -> None:
        """Create stream ``name`` with ``schema`` when absent; raise PermanentError naming the
        first column that does not fit when it exists with other columns."""

    def append(self, name: str, batch: pa.RecordBatch, ctx: WriteContext) -> int:
        """Append the rows of ``batch`` whose output positions (``ctx.row_number``) were not
        appended by this sink before; return how many were appended."""


@dataclass(frozen=True)
class SinkEnv:
    """What the runtime gives a sink besides its properties.

    ``output_schema`` is the query's result schema; ``streams`` is set for sinks that write to
    sinkflow's own streams.
    """

    sink_id: str
    sink_name: str
    output_schema: pa.Schema
    streams: StreamTarget | None = None


#: Batches up to this many rows are encoded on the event loop (about a millisecond per thousand
#: JSON rows): a worker thread would cost more in hand-offs and in contention for the GIL than it
#: saves. Larger batches are encoded in a worker thread so that the loop never stalls for long.
INLINE_ENCODE_ROWS = 16_000


class Sink(abc.ABC):
    """A destination. Subclasses state their delivery guarantee in their docstring."""

    #: The property model class this sink is configured with.
    config_class: ClassVar[type[SinkConfig]]

    def __init__(self, config: SinkConfig, env: SinkEnv) -> None:
        """Keep the configuration; no I/O. Subclasses may raise ConfigError for what depends on
        the query's output schema (``env.output_schema``): creation-time validation calls this."""
        self.config = config
        self.env = env

    async def open(self) -> None:  # noqa: B027 - most destinations need nothing here
        """Connect and prepare the destination; see the module contract."""

    def encode(self, batch: pa.RecordBatch) -> tuple[Any, ...] | None:
        """What ``write`` sends of ``batch`` (e.g. its JSON documents), made without I/O.

        A sink whose encoding costs CPU overrides this: the runtime then encodes several
        batches with one call, also while it waits for a flush (the destination's
        acknowledgements), and hands each batch's part to ``write`` as ``ctx.encoded``. So the
        result is a tuple of per-row sequences (Arrow arrays or lists, or None for a part
        absent), which the runtime slices per batch. It must not change the sink's state or
        use its connections. It may raise: ``write`` then gets ``ctx.encoded=None`` and
        encodes (and raises) itself, through :meth:`encoding`. The default is never called.
        """
        return None

    async def encoding(self, batch: pa.RecordBatch, ctx: WriteContext | None = None) -> Any:
        """``ctx.encoded`` when the runtime encoded the batch ahead, else :meth:`encode` of it:
        on the event loop up to INLINE_ENCODE_ROWS rows, in a worker thread beyond."""
        if ctx is not None and ctx.encoded is not None:
            return ctx.encoded
        if batch.num_rows <= INLINE_ENCODE_ROWS:
            return self.encode(batch)
        return await asyncio.to_thread(self.encode, batch)

    @abc.abstractmethod
    async def write(self, batch: pa.RecordBatch, ctx: WriteContext) -> None:
        """Deliver (or enqueue) ``batch``; see the module contract."""

    async def flush(self, epoch: int) -> None:  # noqa: B027 - request/response sinks ack in write()
        """Return once everything written since the last flush is acknowledged; see the module contract."""

    async def close(self) -> None:  # noqa: B027
        """Release connections; never raises for delivery problems."""
