"""Bounds on the engine's work: DuckDB's memory, and cancelling a running query.

DuckDB gets a memory limit (:func:`configure`; by default half of the machine's memory, or of
the container's when that is smaller) so one query cannot take the whole server down. A query
run inside a :class:`CancelScope` can be stopped from another thread: every DuckDB connection
it opens is interrupted, and keeps being interrupted until the query gives up.
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

_memory_limit: int | None = None
_spill_dir: Path | None = None
_current: contextvars.ContextVar[CancelScope | None] = contextvars.ContextVar("sinkflow_cancel_scope", default=None)


def machine_memory() -> int:
    """Bytes of memory this process may use: the machine's, or its cgroup's limit when lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")):
        try:
            text = limit_file.read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def default_memory_limit() -> int:
    """Half of :func:`machine_memory`: the rest is for streams, sinks and the OS."""
    return machine_memory() // 2


def configure(memory_limit: int | None, spill_dir: Path | None = None) -> None:
    """Set DuckDB's memory limit in bytes (None: :func:`default_memory_limit`) and the directory
    where it may spill what does not fit (None: DuckDB's ``.tmp`` in the working directory). It
    applies when the engine's database opens, at the first query: the server calls this at
    start-up."""
    global _memory_limit, _spill_dir
    _memory_limit, _spill_dir = memory_limit, spill_dir


def database_config() -> dict[str, str]:
    """The configuration the engine's DuckDB database is opened with."""
    config = {"memory_limit": f"{_memory_limit or default_memory_limit()}B"}
    if _spill_dir is not None:
        config["temp_directory"] = str(_spill_dir)
    return config


class QueryCancelled(Exception):
    """Raised in place of the query's own error when its scope was cancelled; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CancelScope:
    """The DuckDB connections of one query, so another thread can stop it.

    :meth:`cancel` interrupts them; DuckDB then raises in the query's thread, and the engine
    fails the query. A cancel arriving between two DuckDB calls is repeated by the caller's
    :meth:`interrupt` until the query's thread is done.
    """

    def __init__(self) -> None:
        self._connections: list[duckdb.DuckDBPyConnection] = []
        self._lock = threading.Lock()
        self.reason: str | None = None

    def track(self, con: duckdb.DuckDBPyConnection) -> None:
        with self._lock:
            self._connections.append(con)
        if self.reason is not None:
            con.interrupt()

    def cancel(self, reason: str) -> None:
        """Stop the query (the first reason given is kept)."""
        if self.reason is None:
            self.reason = reason
        self.interrupt()

    def interrupt(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for con in connections:
            try:
                con.interrupt()
            except duckdb.Error:  # already closed: nothing left to stop
                pass

    @contextmanager
    def active(self) -> Iterator[None]:
        """Run the block inside this scope: connections it opens are tracked. When the scope
        was cancelled, whatever the block raised becomes :class:`QueryCancelled`."""
        token = _current.set(self)
        try:
            yield
        except Exception as exc:
            if self.reason is not None:
                raise QueryCancelled(self.reason) from exc
            raise
        finally:
            _current.reset(token)
        if self.reason is not None:
            raise QueryCancelled(self.reason)


def check_cancelled() -> None:
    """Raise :class:`QueryCancelled` when the current :class:`CancelScope` was cancelled: for work
    that runs no DuckDB call a cancel could interrupt (generating rows)."""
    scope = _current.get()
    if scope is not None and scope.reason is not None:
        raise QueryCancelled(scope.reason)


def track(con: duckdb.DuckDBPyConnection) -> None:
    """Let the current :class:`CancelScope`, if any, interrupt ``con``."""
    scope = _current.get()
    if scope is not None:
        scope.track(con)
