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

``write`` and ``flush`` are never called concurrently on one sink instance.
Errors that are not :class:`SinkError` are classified by :func:`sinkflow.runtime.retry.is_retriable`
(network errors and timeouts retry; anything else is permanent).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

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
    """Where a batch sits in the pipeline's history, for destinations that deduplicate.

    ``sink_id`` and ``epoch`` identify the delivery batch; ``(sink_id, epoch, row_offset + i)``
    names row ``i`` of the batch stably across a replay of the same epoch after a restart.
    """

    sink_id: str
    epoch: int
    row_offset: int = 0

    def row_key(self, index: int) -> str:
        """A stable idempotency key for row ``index`` of the batch."""
        return f"{self.sink_id}-{self.epoch}-{self.row_offset + index}"


@dataclass(frozen=True)
class SinkEnv:
    """What the runtime gives a sink besides its properties.

    ``output_schema`` is the query's result schema. ``append_to_stream`` lets the stream
    sink append to a sinkflow stream without the sink importing the storage layer.
    """

    sink_id: str
    sink_name: str
    output_schema: pa.Schema
    streams: object | None = None


class Sink(abc.ABC):
    """A destination. Subclasses state their delivery guarantee in their docstring."""

    #: The property model class this sink is configured with.
    config_class: ClassVar[type[SinkConfig]]

    def __init__(self, config: SinkConfig, env: SinkEnv) -> None:
        self.config = config
        self.env = env

    async def open(self) -> None:  # noqa: B027 - most destinations need nothing here
        """Connect and prepare the destination; see the module contract."""

    @abc.abstractmethod
    async def write(self, batch: pa.RecordBatch, ctx: WriteContext) -> None:
        """Deliver (or enqueue) ``batch``; see the module contract."""

    async def flush(self, epoch: int) -> None:  # noqa: B027 - request/response sinks ack in write()
        """Return once everything written since the last flush is acknowledged; see the module contract."""

    async def close(self) -> None:  # noqa: B027
        """Release connections; never raises for delivery problems."""
