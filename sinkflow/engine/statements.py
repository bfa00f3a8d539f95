"""Executing the non-SELECT statements of :mod:`sinkflow.sql.statements` against a StreamStore."""

from __future__ import annotations

from dataclasses import asdict
from functools import singledispatch

import pyarrow as pa

from sinkflow.engine.result import StatementResult
from sinkflow.sql.statements import CreateStream, DescribeStream, DropStream, Insert, ShowStreams, Statement
from sinkflow.streams.store import StreamSettings, StreamStore

__all__ = ["execute_statement"]

_SHOW_SCHEMA = pa.schema([
    pa.field("name", pa.string(), nullable=False),
    pa.field("columns", pa.int64(), nullable=False),
    pa.field("rows", pa.int64(), nullable=False),
    pa.field("event_time_column", pa.string()),
    pa.field("description", pa.string(), nullable=False),
])
_DESCRIBE_SCHEMA = pa.schema([
    pa.field("name", pa.string(), nullable=False),
    pa.field("type", pa.string(), nullable=False),
])


def execute_statement(stmt: Statement, store: StreamStore) -> StatementResult:
    """Perform ``stmt`` on ``store``.

    CREATE/DROP STREAM and INSERT answer ``kind="status"`` (INSERT with ``count``); SHOW STREAMS
    answers rows (name, columns, rows, event_time_column, description), DESCRIBE rows (name, type)
    including ``_tp_time``. Raises what the store raises: :class:`InvalidInput` for bad
    columns, settings or values (an INSERT with one bad value stores nothing and names its row,
    column and value), :class:`AlreadyExists`, :class:`NotFound`.
    """
    return _execute(stmt, store)


@singledispatch
def _execute(stmt: object, store: StreamStore) -> StatementResult:
    raise TypeError(f"not a statement: {stmt!r}")


@_execute.register
def _create(stmt: CreateStream, store: StreamStore) -> StatementResult:
    if stmt.if_not_exists and store.exists(stmt.name):
        return StatementResult("status", f"stream '{stmt.name}' already exists")
    store.create(stmt.name, list(stmt.columns), StreamSettings(**asdict(stmt.settings)))
    return StatementResult("status", f"created stream '{stmt.name}'")


@_execute.register
def _drop(stmt: DropStream, store: StreamStore) -> StatementResult:
    if stmt.if_exists and not store.exists(stmt.name):
        return StatementResult("status", f"stream '{stmt.name}' does not exist")
    store.drop(stmt.name)
    return StatementResult("status", f"dropped stream '{stmt.name}'")


@_execute.register
def _show(stmt: ShowStreams, store: StreamStore) -> StatementResult:
    streams = store.list()
    table = pa.table(
        [
            [s.name for s in streams],
            [len(s.columns) for s in streams],
            [s.head - s.start for s in streams],
            [s.settings.event_time_column for s in streams],
            [s.settings.description for s in streams],
        ],
        schema=_SHOW_SCHEMA,
    )
    return StatementResult("rows", table=table, count=table.num_rows)


@_execute.register
def _describe(stmt: DescribeStream, store: StreamStore) -> StatementResult:
    stream = store.get(stmt.name)
    table = pa.table(
        [[c.name for c in stream.columns], [c.type.name for c in stream.columns]],
        schema=_DESCRIBE_SCHEMA,
    )
    return StatementResult("rows", table=table, count=table.num_rows)


@_execute.register
def _insert(stmt: Insert, store: StreamStore) -> StatementResult:
    stream = store.get(stmt.name)
    result = stream.append_rows(list(stmt.columns) if stmt.columns is not None else None,
                                [list(row) for row in stmt.rows])
    plural = "" if result.count == 1 else "s"
    return StatementResult("status", f"inserted {result.count} row{plural} into '{stmt.name}'", count=result.count)
