"""Work run off the event loop that the sinks' I/O and the API share: engine steps, at a fair
pace (:func:`run_step`), and ingest decoding (:func:`run_ingest`).

A query's step reads what arrived and runs it through DuckDB and Arrow; called on the main
event loop, a few milliseconds per step and per query added up until webhooks and SSE clients
waited seconds behind an ingest load. :func:`run_step` therefore runs every step on the loop of
one engine thread (DuckDB and Arrow release the GIL while they compute, so the main loop keeps
serving meanwhile). The engine thread serves the queries' steps in turn (first come, first
served). When it is contended (steps wait for it) and input keeps coming, a query's steps
start at most every :data:`STEP_INTERVAL` seconds, each taking what arrived meanwhile: a
query then costs a bounded number of steps per second however many small batches are
ingested, instead of a fixed DuckDB cost per batch for every query. Otherwise a step starts
at once, waits for input on the engine thread's loop and the first row to arrive wakes it,
so a trickle of rows keeps its latency.

Ingest bodies are decoded and appended by :func:`run_ingest`. While no query is stepping, a
small body (at most :data:`INLINE_INGEST_BYTES`, a batch of a few thousand rows) is decoded
right on the event loop: it holds the loop about a millisecond, while handing it to a thread
and back (two wake-ups and the GIL passed to and fro) cost about as much CPU as decoding it.
Otherwise, and for a larger body, it goes to one ingest thread of its own, in arrival order:
with the engine thread also wanting the GIL, a body decoded on the loop would hold it up for
the GIL's switch intervals too (measured: loop lag p99 up to 1 s under the loaded benchmark).

Ingest and the queries' steps share the GIL and the cores, and ingest alone can take all of
both: a client posting as fast as it can would leave the sinks and live queries seconds
behind. So while the queries are behind (the engine thread is contended and a step was handed
over with input already waiting, the condition that also paces steps), ingest gets at most
:data:`INGEST_SHARE` of the time: after a body that took ``t`` seconds, the next starts no
sooner than ``t × (1 − share) / share`` later, and the requests wait (the clients see the
backpressure as a slower answer, nothing is refused). When the queries keep up, or there are
none, ingest runs unthrottled. A sink that cannot deliver (retrying) or is paused does not
step, so it never holds ingest back.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pyarrow as pa

from sinkflow.engine import QueryExecution

#: Seconds between the starts of two steps of one query while its input keeps arriving and
#: the engine thread is contended.
STEP_INTERVAL = 0.1
#: Seconds steps lately waited for the engine thread (smoothed) above which it counts as contended.
CONTENDED = 0.005


class _EngineThread:
    """A daemon thread running an event loop of its own, started on first use, and how long
    steps handed to it lately waited before they started (:attr:`delay`, smoothed): the
    measure of how contended it is."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self.delay = 0.0

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="sinkflow-engine", daemon=True).start()
                self._loop = loop
            return self._loop

    def started_after(self, seconds: float) -> None:
        """Note that a step started ``seconds`` after it was handed over."""
        self.delay = 0.8 * self.delay + 0.2 * seconds


T = TypeVar("T")

_ENGINE = _EngineThread()
#: Bytes of an ingest body up to which it is decoded on the event loop rather than the ingest
#: thread (a 500-row batch of eight columns takes about 30 KB and half a millisecond).
INLINE_INGEST_BYTES = 64 * 1024
#: The share of the time ingest may take while the queries' steps are behind (see above).
INGEST_SHARE = 0.5


class _IngestGate:
    """Ingest's share of the time while the queries are behind.

    Used from the main event loop only (no locks): :attr:`steps` counts the steps handed to
    the engine thread that have not returned, :attr:`busy_steps` those of them handed over
    while the queries were behind; :meth:`admit` and :meth:`spent` throttle ingest while
    ``busy_steps`` is positive, and :attr:`waited` sums the seconds ingest requests were held
    back (over all requests)."""

    def __init__(self) -> None:
        self.steps = 0
        self.busy_steps = 0
        self.waited = 0.0
        self._free_at = 0.0

    @contextlib.contextmanager
    def step(self, busy: bool) -> Iterator[None]:
        """Count a step while it runs, as busy when ``busy`` (handed over while the queries were behind)."""
        self.steps += 1
        self.busy_steps += busy
        try:
            yield
        finally:
            self.steps -= 1
            self.busy_steps -= busy

    async def admit(self) -> None:
        """Return once ingest may start: at once while no step is busy, else when its share allows."""
        while self.busy_steps and (wait := self._free_at - time.monotonic()) > 0:
            self.waited += wait
            await asyncio.sleep(wait)

    def spent(self, seconds: float) -> None:
        """Note that ingest just took ``seconds``: while steps are busy, the next body waits its share."""
        if self.busy_steps:
            self._free_at = time.monotonic() + seconds * (1 - INGEST_SHARE) / INGEST_SHARE


_GATE = _IngestGate()


def ingest_gate() -> _IngestGate:
    """The gate ingest passes (its :attr:`~_IngestGate.waited` is the backpressure so far)."""
    return _GATE


def ingest_prometheus_text() -> str:
    """Prometheus exposition text of ingest's backpressure: the seconds ingest requests were
    held back while the queries were behind."""
    return ("# HELP sinkflow_ingest_throttled_seconds_total Seconds ingest requests waited while the queries were behind.\n"
            "# TYPE sinkflow_ingest_throttled_seconds_total counter\n"
            f"sinkflow_ingest_throttled_seconds_total {_GATE.waited:.6f}\n")
_INGEST = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sinkflow-ingest")
_LAST_START: weakref.WeakKeyDictionary[QueryExecution, float] = weakref.WeakKeyDictionary()


async def run_step(execution: QueryExecution, timeout: float) -> list[pa.RecordBatch]:
    """``execution.step(timeout)`` run on the engine thread; while that thread is contended and
    input is already waiting, started no sooner than :data:`STEP_INTERVAL` after this
    execution's previous step.

    Returns the step's output batches and raises what the step raises. When the caller is
    cancelled, the step is cancelled too and this returns (re-raising the cancellation) only
    once it has stopped, so the caller may close the execution right after."""
    last = _LAST_START.get(execution)
    # Held back only while the engine thread is contended and input is already waiting: the
    # step then takes more at once. Otherwise it starts at once, and the first row wakes it.
    behind = _ENGINE.delay > CONTENDED and execution.lag() > 0
    if behind and last is not None and (delay := last + STEP_INTERVAL - time.monotonic()) > 0:
        await asyncio.sleep(delay)
    submitted = time.monotonic()
    here = asyncio.get_running_loop()
    outcome: asyncio.Future[list[pa.RecordBatch]] = here.create_future()
    engine = _ENGINE.loop()
    started: list[asyncio.Task[list[pa.RecordBatch]]] = []

    async def step() -> list[pa.RecordBatch]:
        # The pace counts from when steps start, not from when they were handed over.
        now = _LAST_START[execution] = time.monotonic()
        _ENGINE.started_after(now - submitted)
        return await execution.step(timeout)

    def start() -> None:
        task = engine.create_task(step())
        task.add_done_callback(lambda done: _report(here, outcome, done))
        started.append(task)

    with _GATE.step(behind):
        # Callbacks run in the order they were handed over: the task exists before any cancel.
        engine.call_soon_threadsafe(start)
        try:
            return await asyncio.shield(outcome)
        except asyncio.CancelledError:
            engine.call_soon_threadsafe(lambda: started[0].cancel())
            await asyncio.wait([outcome])
            raise


def _report(loop: asyncio.AbstractEventLoop, outcome: asyncio.Future[T], task: asyncio.Task[T]) -> None:
    """Hand a finished engine-thread task's result, error or cancellation to ``outcome`` on ``loop``."""

    def settle() -> None:
        if outcome.done():
            return
        if task.cancelled():
            outcome.cancel()
        elif (error := task.exception()) is not None:
            outcome.set_exception(error)
        else:
            outcome.set_result(task.result())

    with contextlib.suppress(RuntimeError):  # the caller's loop closed: nobody waits any more
        loop.call_soon_threadsafe(settle)


async def run_ingest(work: Callable[[], T], body_bytes: int | None = None) -> T:
    """``work()`` (decoding and appending one ingest body of ``body_bytes``) run right here on
    the loop when the body is at most :data:`INLINE_INGEST_BYTES` and no query is stepping,
    else (an unknown size too) on the ingest thread; started once ingest's share of the time
    allows (see the module's docstring). Returns its result or raises what it raises."""
    await _GATE.admit()
    started = time.monotonic()
    try:
        if body_bytes is not None and body_bytes <= INLINE_INGEST_BYTES and not _GATE.steps:
            return work()
        return await asyncio.get_running_loop().run_in_executor(_INGEST, work)
    finally:
        _GATE.spent(time.monotonic() - started)
