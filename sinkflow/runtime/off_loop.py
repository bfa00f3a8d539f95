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

Ingest bodies are decoded and appended by :func:`run_ingest` on one thread of their own, in
arrival order: decoding is mostly Python work that holds the GIL, and more threads doing it
at once would only take the GIL from the event loop more often, not decode faster.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import Callable
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
    if (last is not None and _ENGINE.delay > CONTENDED and execution.lag() > 0
            and (delay := last + STEP_INTERVAL - time.monotonic()) > 0):
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


async def run_ingest(work: Callable[[], T]) -> T:
    """``work()`` (decoding and appending one ingest body) run on the ingest thread; returns
    its result or raises what it raises."""
    return await asyncio.get_running_loop().run_in_executor(_INGEST, work)
