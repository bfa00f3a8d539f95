"""One sink at work: its streaming query feeding its destination, with nothing lost.

The loop, written once for every destination::

    engine step → Batcher (rows / age) → [EncodeAhead: sink.encode in chunks, during flushes]
                → sink.write (retries, dead-letter) → sink.flush at each checkpoint
                → checkpoint (engine snapshot incl. source offsets + counters) in the catalog

A sink that acknowledges in ``write`` (it does not override ``flush``) has delivered its rows
when ``write`` returns; the others' rows are held until ``flush`` succeeds, and written again
with their original keys when it fails. Checkpoints come about once a second while rows flow,
at once when the query goes quiet (no new input within the batch policy's ``max_wait``), and
never when nothing moved.

A checkpoint is committed only when every row the query produced up to it was acknowledged
by the destination (or dead-lettered), so a restart from it — after a stop, a crash or a
``kill -9`` — loses no result row; rows delivered after the last checkpoint may be delivered
again (at-least-once). The query is not stepped while a batch is being delivered, so a slow
destination slows its query instead of growing memory.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from sinkflow.catalog import CatalogStore, Checkpoint, SinkRecord
from sinkflow.engine import Engine, QueryExecution
from sinkflow.errors import SecretsUnavailable
from sinkflow.runtime.batching import Batcher
from sinkflow.runtime.dead_letter import DeadLetters
from sinkflow.runtime.encode_ahead import EncodeAhead
from sinkflow.runtime.lag import LagMeter
from sinkflow.runtime.off_loop import run_step
from sinkflow.runtime.retry import Backoff, is_retriable, retry_after
from sinkflow.runtime.status import SinkState, SinkStatus
from sinkflow.runtime.stream_target import StoreStreamTarget
from sinkflow.sinks import registry
from sinkflow.sinks.base import NotAttempted, PartialWriteError, Sink, SinkEnv, WriteContext
from sinkflow.sinks.config import RetryPolicy, SinkConfig
from sinkflow.sinks.redact import scrub
from sinkflow.streams.store import StreamStore

log = logging.getLogger("sinkflow.runtime")

#: Retries of a sink that cannot start (destination unreachable at open, or a failing step).
_SETUP_RETRY = RetryPolicy(max_retries=None, initial_backoff=0.5, max_backoff=15.0)


#: How a retried operation is called: (pending rows, their positions, whether this is the first try).
_Send = Callable[[pa.RecordBatch, Sequence[int], bool], Awaitable[None]]


@dataclass(frozen=True)
class _Written:
    """Rows written but not yet flushed, with what their keys were made of."""

    rows: pa.RecordBatch
    epoch: int
    first_row: int
    positions: Sequence[int]


@dataclass(frozen=True)
class RuntimeSettings:
    """Knobs shared by every pipeline. ``checkpoint_interval``: the longest time between two
    checkpoints while rows flow (the most a restart may deliver twice)."""

    checkpoint_interval: float = 1.0
    step_timeout: float = 0.5


async def _off_loop(start: Callable[[], tuple[SinkConfig, QueryExecution]]) -> tuple[SinkConfig, QueryExecution]:
    """``start()`` run in a worker thread. When the caller is cancelled meanwhile, the thread
    still finishes, and the execution it started is closed then."""
    started = asyncio.ensure_future(asyncio.to_thread(start))
    try:
        return await asyncio.shield(started)
    except asyncio.CancelledError:
        started.add_done_callback(_close_unused)
        raise


def _close_unused(started: asyncio.Future[tuple[SinkConfig, QueryExecution]]) -> None:
    if not started.cancelled() and started.exception() is None:
        started.result()[1].close()


class Scrubber:
    """Removes a sink's secret values from any text before it is shown or logged."""

    def __init__(self, secrets: Iterable[Any]) -> None:
        self._values = sorted({str(v) for v in _flatten(secrets) if str(v)}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        return scrub(text, self._values)


def _flatten(values: Iterable[Any]) -> Iterable[Any]:
    for value in values:
        if isinstance(value, dict):
            yield from _flatten(value.values())
        elif isinstance(value, (list, tuple)):
            yield from _flatten(value)
        elif value is not None and len(str(value)) >= 4:  # short values would scrub ordinary words
            yield value


class Pipeline:
    """Runs one stored sink until stopped; restarts itself after retryable failures.

    ``status`` is live: the API reads it at any time.
    """

    def __init__(self, record: SinkRecord, engine: Engine, store: StreamStore, catalog: CatalogStore,
                 settings: RuntimeSettings) -> None:
        self.record = record
        self.engine = engine
        self.store = store
        self.catalog = catalog
        self.settings = settings
        self.status = SinkStatus()
        self.scrub = Scrubber(record.secrets.values())
        self._running = asyncio.Event()
        if not record.paused:
            self._running.set()
        self._task: asyncio.Task[None] | None = None
        self._unflushed: list[_Written] = []
        self._lag: LagMeter | None = None
        # The first output position no write has used, also by an earlier run (kept in the catalog).
        self._used_rows = catalog.reserved_rows(record.id)
        self._acks_on_write = registry.sink_class(record.type).flush is Sink.flush
        self._encodes = registry.sink_class(record.type).encode is not Sink.encode

    # -- control -------------------------------------------------------------------------

    def start(self) -> None:
        """Start (or restart after :meth:`stop`) in the background, from the last checkpoint."""
        self.status.state = SinkState.PAUSED if self.record.paused else SinkState.STARTING
        self.status.reason = ""
        self._task = asyncio.create_task(self._run(), name=f"sink:{self.record.name}")

    async def stop(self) -> None:
        """Stop and wait until the destination is closed. Undelivered rows stay in the log."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self.status.state not in (SinkState.FAILED, SinkState.FINISHED):
            self.status.state = SinkState.STOPPED

    def pause(self) -> None:
        """From now on nothing more is written: a write in progress finishes and what was
        written is acknowledged; rows produced meanwhile wait for :meth:`resume`. The query's
        state is kept."""
        self._running.clear()
        self.record.paused = True
        if self.status.state in (SinkState.RUNNING, SinkState.STARTING):
            self.status.state = SinkState.PAUSED

    def resume(self) -> None:
        self._running.set()
        self.record.paused = False
        if self.status.state is SinkState.PAUSED:
            self.status.state = SinkState.RUNNING

    def final_counters(self) -> dict[str, int]:
        """The counters a redefinition of this (stopped) sink continues from: its output
        position is past every position a write ever used, acknowledged or not, so the
        idempotency keys of the new definition's rows never repeat an old row's."""
        counters = self.status.counters()
        counters["rows_emitted"] = max(counters["rows_emitted"], self._used_rows)
        return counters

    # -- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = Backoff(_SETUP_RETRY)
        while True:
            try:
                await self._run_once()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every failure is classified; none escapes the task
                message = self._error_text(exc)
                self.status.last_error = message
                if not is_retriable(exc):
                    log.error("sink %s failed: %s", self.record.name, message)
                    self.status.state = SinkState.FAILED
                    self.status.reason = message
                    return
                self.status.state = SinkState.RETRYING
                self.status.retries += 1  # connecting again is a retry too: users watch this count
                delay = backoff.next_delay(retry_after(exc))
                log.warning("sink %s: %s; retrying in %.1fs", self.record.name, message, delay)
                await asyncio.sleep(delay)

    def _error_text(self, exc: BaseException) -> str:
        text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return self.scrub(text)

    async def _run_once(self) -> None:
        record = self.record
        if record.secrets_error:
            raise SecretsUnavailable(record.secrets_error)
        checkpoint = self.catalog.checkpoint(record.id)
        if checkpoint is not None:
            retries = self.status.retries
            self.status.restore_counters(checkpoint.counters)
            # Retries made since that checkpoint happened: the count never goes back.
            self.status.retries = max(retries, self.status.retries)
        config, execution = await _off_loop(lambda: self._start_query(checkpoint))
        self._lag = LagMeter(execution, self.status.rows_read)
        self.status.lag_probe = self._lag.measure
        streams = StoreStreamTarget(self.store, self.catalog, record.id) if record.type == "timeplus" else None
        sink = registry.sink_class(record.type)(config, SinkEnv(record.id, record.name, execution.schema, streams))
        dead = DeadLetters(self.store, record.name)
        batching = config.batch_policy()
        # Rows written but unflushed are held for a re-write: bound them (and the batches encoded ahead).
        flush_at = batching.flush_rows
        batches = EncodeAhead(Batcher(batching, execution.schema), sink if self._encodes else None,
                              depth=max(1, flush_at // batching.max_rows))
        try:
            await sink.open()
            self.status.state = SinkState.RUNNING if self._running.is_set() else SinkState.PAUSED
            self.status.reason = ""
            await self._pump(execution, sink, dead, batches, config.retry_policy(), flush_at)
            self.status.state = SinkState.FINISHED
        finally:
            self.status.lag_probe = self._lag = None
            await sink.close()
            execution.close()

    def _start_query(self, checkpoint: Checkpoint | None) -> tuple[SinkConfig, QueryExecution]:
        """The sink's properties parsed, its query planned and started from ``checkpoint`` (None:
        the query's own start), and its dead-letter stream made. Run in a worker thread: loading
        the destination's client library the first time, planning and restoring the query's
        state take from milliseconds to seconds under load, which on the event loop would hold
        every other sink and the API's answers (the console lists a sink right after creating it)."""
        record = self.record
        config = registry.parse_properties(record.type, registry.join_secrets(record.properties, record.secrets))
        plan = self.engine.plan(record.sql)
        execution = self.engine.start(plan, snapshot=checkpoint.snapshot if checkpoint else None,
                                      idle_timeout=config.idle_timeout)
        try:
            DeadLetters(self.store, record.name).ensure()
        except BaseException:
            execution.close()
            raise
        return config, execution

    async def _pump(self, execution: QueryExecution, sink: Sink, dead: DeadLetters, batches: EncodeAhead,
                    policy: RetryPolicy, flush_at: int) -> None:
        last_checkpoint = time.monotonic()
        checkpointed = self._progress()
        self._unflushed = []
        while not (execution.finished and len(batches) == 0):
            if not self._running.is_set():
                await self._hold(execution, sink, dead, policy, batches)
            wait = self.settings.step_timeout
            if len(batches):
                wait = min(wait, max(batches.wait_left(), 0.0))
            elif self._progress() != checkpointed:
                # Results were written since the checkpoint: wait for more input no longer than
                # a batch waits for rows, then the query is quiet and they are checkpointed
                # (also when the last write emptied the batcher).
                wait = min(wait, batches.batcher.policy.max_wait)
            outputs = await run_step(execution, wait) if not execution.finished else []
            for batch in outputs:
                batches.batcher.add(batch)
            stats = execution.stats()
            self.status.rows_read = int(stats.get("rows_read", 0))
            self.status.refresh()
            if not self._running.is_set():
                continue  # paused during the step: what it read waits for the resume
            while batches.due() and self._running.is_set():
                await self._deliver(*await batches.take(), sink, dead, policy)
                if sum(w.rows.num_rows for w in self._unflushed) >= flush_at:
                    # The next batches are encoded while the destination acknowledges.
                    await batches.meanwhile(self._flush(sink, dead, policy))
            if self._unflushed and len(batches) == 0 and execution.lag() == 0:
                # The input is drained: no rows are coming now to fill the flush window, and
                # holding what was written until the query goes quiet (a whole batch wait,
                # measured: 100 ms after a burst of any size) would only delay its
                # acknowledgement. The checkpoint still waits for the quiet or the timer.
                await self._flush(sink, dead, policy)
            # Checkpoint on a timer while rows flow, and at once when the query goes quiet
            # (then nothing delivered is left to replay after a crash); never when nothing moved.
            moved = self._progress() != checkpointed
            quiet = not outputs and len(batches) == 0
            timer = time.monotonic() - last_checkpoint >= self.settings.checkpoint_interval
            if execution.finished or (moved and (quiet or timer)):
                await self._deliver_all(batches, sink, dead, policy)
                self._checkpoint(execution)
                last_checkpoint = time.monotonic()
                checkpointed = self._progress()

    async def _hold(self, execution: QueryExecution, sink: Sink, dead: DeadLetters, policy: RetryPolicy,
                    batches: EncodeAhead) -> None:
        """Paused: acknowledge what was already written, then send nothing until resumed. Rows
        the query produced but not yet written wait in ``batches`` (then the query's state is
        ahead of the acknowledged rows and is not checkpointed: a restart replays them)."""
        await self._flush(sink, dead, policy)
        if len(batches) == 0:
            self._checkpoint(execution)
        self.status.state = SinkState.PAUSED
        await self._running.wait()
        self.status.state = SinkState.RUNNING

    def _progress(self) -> tuple[int, int]:
        """What a checkpoint would record that can change: input read, epochs delivered."""
        return self.status.rows_read, self.status.epochs

    async def _deliver_all(self, batches: EncodeAhead, sink: Sink, dead: DeadLetters, policy: RetryPolicy) -> None:
        """Write and flush every waiting row: afterwards everything produced is acknowledged."""
        while len(batches):
            await self._deliver(*await batches.take(), sink, dead, policy)
        await self._flush(sink, dead, policy)

    def _checkpoint(self, execution: QueryExecution) -> None:
        """Commit the query's state; called only when every produced row is acknowledged."""
        now = time.time()
        self.catalog.save_checkpoint(
            self.record.id, Checkpoint(self.status.epochs, execution.snapshot(), self.status.counters(), now)
        )
        self.status.last_checkpoint_at = now
        if self._lag is not None:
            self._lag.delivered(self.status.rows_read)

    async def _deliver(self, batch: pa.RecordBatch, encoded: Any, sink: Sink, dead: DeadLetters,
                       policy: RetryPolicy) -> None:
        """Write one epoch's batch (``encoded``: what ``sink.encode`` made of it, or None),
        retrying write failures per ``policy`` and dead-lettering what cannot be written. A sink
        that acknowledges in ``write`` has then delivered the rows; the others' rows wait in
        ``_unflushed`` for :meth:`_flush`."""
        epoch = self.status.epochs + 1
        first_row = self.status.rows_emitted
        self._use_rows(first_row + batch.num_rows)

        async def write(rows: pa.RecordBatch, positions: Sequence[int], first: bool) -> None:
            whole = len(positions) == batch.num_rows
            # The encoding is of the whole batch: a retry of some rows encodes them itself.
            await sink.write(rows, WriteContext(self.record.id, epoch, first_row, None if whole else tuple(positions),
                                                encoded if whole else None))

        written = await self._retrying(batch, write, dead, policy)
        self.status.epochs = epoch
        self.status.rows_emitted += batch.num_rows
        if self._acks_on_write:
            self.status.rows_delivered += len(written)
        elif written:
            rows = batch if len(written) == batch.num_rows else batch.take(pa.array(written, pa.int64()))
            self._unflushed.append(_Written(rows, epoch, first_row, written))

    def _use_rows(self, end: int) -> None:
        """Record durably, before a write uses them, that output positions below ``end`` are
        used (a redefinition after a crash must not reuse them either)."""
        if end > self._used_rows:
            self._used_rows = end
            self.catalog.reserve_rows(self.record.id, end)

    async def _flush(self, sink: Sink, dead: DeadLetters, policy: RetryPolicy) -> None:
        """Flush everything written since the last flush. When the destination fails some of
        it, those rows are written again (with their original keys) and flushed again, per
        ``policy``; what cannot be delivered is dead-lettered. Returns with nothing unflushed."""
        if not self._unflushed:
            return
        try:
            await sink.flush(self.status.epochs)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # classified by _retrying, which writes the rows again
            await self._reflush(sink, dead, policy, exc)
        else:
            self.status.rows_delivered += sum(len(w.positions) for w in self._unflushed)
        self._unflushed.clear()

    async def _reflush(self, sink: Sink, dead: DeadLetters, policy: RetryPolicy, failure: Exception) -> None:
        """After a failed flush: write the unacknowledged rows again, flush, until done."""
        rows = pa.Table.from_batches([w.rows for w in self._unflushed]).combine_chunks().to_batches()[0]
        origin = [(w.epoch, w.first_row, position) for w in self._unflushed for position in w.positions]

        async def rewrite_and_flush(pending: pa.RecordBatch, indexes: Sequence[int], first: bool) -> None:
            for (epoch, first_row), group in itertools.groupby(indexes, key=lambda k: origin[k][:2]):
                members = list(group)
                ctx = WriteContext(self.record.id, epoch, first_row, tuple(origin[k][2] for k in members))
                try:
                    await sink.write(rows.take(pa.array(members, pa.int64())), ctx)
                except PartialWriteError as exc:  # indexes of a re-write are not the flush's
                    raise next(iter(exc.failures.values())) from None
            await sink.flush(self.status.epochs)

        delivered = await self._retrying(rows, rewrite_and_flush, dead, policy, failure)
        self.status.rows_delivered += len(delivered)

    async def _retrying(self, rows: pa.RecordBatch, send: _Send, dead: DeadLetters, policy: RetryPolicy,
                        failure: Exception | None = None) -> Sequence[int]:
        """Call ``send`` until every row of ``rows`` succeeded or was dead-lettered; return the
        positions (in ``rows``) of the rows that succeeded, ascending.

        ``send(subset, positions, first)`` gets the rows still pending. A PartialWriteError
        names failed rows by their index in ``subset``. Rows that were not sent because an
        earlier row failed (ordered delivery) spend no retries of their own. ``failure`` is
        the outcome of a first attempt already made by the caller.
        """
        # A range, not a list: when the first try succeeds (the common case) no per-row list is made.
        positions: Sequence[int] = range(rows.num_rows)
        pending, succeeded = rows, list[int]()
        done: Sequence[int] | None = None  # every position that succeeded, once the rest went through
        backoff = Backoff(policy)
        attempts, first = 1, failure is None
        while positions:
            try:
                if failure is not None:
                    raise failure
                await send(pending, positions, first)
                done = positions if not succeeded else sorted([*succeeded, *positions])
                break
            except asyncio.CancelledError:
                raise
            except PartialWriteError as exc:
                failures: dict[int, BaseException] = dict(exc.failures)
            except Exception as exc:
                failures = dict.fromkeys(range(len(positions)), exc)
            failure = None
            succeeded.extend(p for i, p in enumerate(positions) if i not in failures)
            refused = sorted(i for i, err in failures.items() if not is_retriable(err))
            if refused:
                self._dead_letter(dead, pending.take(pa.array(refused)), failures[refused[0]], attempts)
            again = sorted(i for i, err in failures.items() if is_retriable(err))
            if again and backoff.exhausted():
                tried = [i for i in again if not isinstance(failures[i], NotAttempted)]
                if tried:
                    self._dead_letter(dead, pending.take(pa.array(tried)), failures[tried[0]], attempts,
                                      prefix=f"gave up after {attempts} attempts: ")
                again = [i for i in again if isinstance(failures[i], NotAttempted)]
                backoff.reset()
                attempts = 0
            elif again:
                error = failures[again[0]]
                delay = backoff.next_delay(retry_after(error))
                self.status.retries += 1
                self.status.state = SinkState.RETRYING
                self.status.last_error = self._error_text(error)
                log.warning("sink %s: %s; retrying %d row(s) in %.2fs", self.record.name, self.status.last_error,
                            len(again), delay)
                await asyncio.sleep(delay)
            pending, positions = pending.take(pa.array(again, pa.int64())), [positions[i] for i in again]
            attempts, first = attempts + 1, False
        if self.status.state is SinkState.RETRYING:
            self.status.state = SinkState.RUNNING
        return done if done is not None else sorted(succeeded)

    def _dead_letter(self, dead: DeadLetters, rows: pa.RecordBatch, error: BaseException, attempts: int,
                     prefix: str = "") -> None:
        message = prefix + self._error_text(error)
        dead.write(rows, message, attempts)
        self.status.dead_lettered += rows.num_rows
        self.status.last_error = message
        log.warning("sink %s: %d row(s) dead-lettered: %s", self.record.name, rows.num_rows, message)
