"""Executing the non-SELECT statements of :mod:`sinkflow.sql.statements` against a StreamStore."""

from __future__ import annotations

import re
from dataclasses import replace
from functools import singledispatch

import duckdb
import pyarrow as pa
from sqlglot import exp

from sinkflow.engine.result import StatementResult
from sinkflow.errors import AlreadyExists, InvalidInput
from sinkflow.sql.defaults import parse_expression
from sinkflow.sql.functions import to_duckdb
from sinkflow.sql.pipeline_statements import ShowCreate
from sinkflow.sql.statements import (
    AddColumn,
    AlterStream,
    CreateStream,
    DescribeStream,
    DropStream,
    Insert,
    Maintenance,
    ShowCreateStream,
    SetSettings,
    ShowStreams,
    Statement,
    TruncateStream,
    ValueExpression,
)
from sinkflow.streams.store import Stream, StreamSettings, StreamStore
from sinkflow.streams.types import TP_TIME, Column

__all__ = ["execute_statement"]

_SHOW_SCHEMA = pa.schema([
    pa.field("name", pa.string(), nullable=False),
    pa.field("columns", pa.int64(), nullable=False),
    pa.field("rows", pa.int64(), nullable=False),
    pa.field("event_time_column", pa.string()),
    pa.field("description", pa.string(), nullable=False),
    pa.field("mode", pa.string(), nullable=False),
    pa.field("primary_key", pa.list_(pa.string()), nullable=False),
])
# As Timeplus describes a stream: default_type is '', 'DEFAULT' or 'ALIAS'.
_DESCRIBE_SCHEMA = pa.schema([
    pa.field("name", pa.string(), nullable=False),
    pa.field("type", pa.string(), nullable=False),
    pa.field("default_type", pa.string(), nullable=False),
    pa.field("default_expression", pa.string(), nullable=False),
    pa.field("comment", pa.string(), nullable=False),
])
_SHOW_CREATE_SCHEMA = pa.schema([pa.field("statement", pa.string(), nullable=False)])
# The event time's DEFAULT when it is the time of ingest, as Timeplus shows it.
_INGEST_TIME = "now64(3, 'UTC')"
_NUMBER = re.compile(r"-?\d+(\.\d+)?\Z")


def execute_statement(stmt: Statement, store: StreamStore) -> StatementResult:
    """Perform ``stmt`` on ``store``.

    CREATE/DROP/ALTER STREAM and INSERT answer ``kind="status"`` (INSERT with ``count``); SHOW STREAMS
    answers rows (name, columns, rows, event_time_column, description, mode, primary_key),
    DESCRIBE rows (name, type, default_type, default_expression, comment) including ``_tp_time``,
    SHOW CREATE one row holding the CREATE statement. Raises what the store raises: :class:`InvalidInput` for bad
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
    store.create(stmt.name, list(stmt.columns), StreamSettings.from_dict(dict(stmt.settings)))
    return StatementResult("status", f"created stream '{stmt.name}'")


@_execute.register
def _add_column(stmt: AddColumn, store: StreamStore) -> StatementResult:
    stream = store.get(stmt.name)
    if stmt.if_not_exists and any(c.name == stmt.column.name for c in stream.columns):
        return StatementResult("status", f"column '{stmt.column.name}' already exists in stream '{stmt.name}'")
    store.add_column(stmt.name, stmt.column, stmt.position)
    return StatementResult("status", f"added column '{stmt.column.name}' to stream '{stmt.name}'")


@_execute.register
def _set(stmt: SetSettings, store: StreamStore) -> StatementResult:  # noqa: ARG001 - same signature as the others
    names = ", ".join(name for name, _ in stmt.settings)
    return StatementResult("status", f"SET {names}: sinkflow keeps no session settings; this changes nothing "
                                     "(write SETTINGS name=value at the end of a query)")


@_execute.register
def _drop(stmt: DropStream, store: StreamStore) -> StatementResult:
    if stmt.if_exists and not store.exists(stmt.name):
        return StatementResult("status", f"stream '{stmt.name}' does not exist")
    store.drop(stmt.name)
    return StatementResult("status", f"dropped stream '{stmt.name}'")


@_execute.register
def _truncate(stmt: TruncateStream, store: StreamStore) -> StatementResult:
    if stmt.if_exists and not store.exists(stmt.name):
        return StatementResult("status", f"stream '{stmt.name}' does not exist")
    store.truncate(stmt.name)
    return StatementResult("status", f"emptied stream '{stmt.name}'")


@_execute.register
def _alter(stmt: AlterStream, store: StreamStore) -> StatementResult:
    stream = store.get(stmt.name)
    if stmt.column and not any(c.name == stmt.column for c in stream.user_columns):
        if stmt.if_exists:
            return StatementResult("status", f"column '{stmt.column}' does not exist in stream '{stmt.name}'")
        raise InvalidInput(f"column '{stmt.column}' does not exist in stream '{stmt.name}'")
    if stmt.action in ("update", "delete"):
        before = stream.head - stream.start
        store.rewrite(stmt.name, lambda rows: _mutated(stmt, stream, rows))
        after = store.get(stmt.name).head
        done = "deleted" if stmt.action == "delete" else "rewrote"
        count = before - after if stmt.action == "delete" else after
        return StatementResult("status", f"{done} {count} row(s) of stream '{stmt.name}'", count=count)
    if stmt.action == "drop":
        store.rewrite(stmt.name, lambda rows: rows.drop_columns([stmt.column]) if stmt.column in rows.column_names
                      else rows, lambda columns: [c for c in columns if c.name != stmt.column])
        return StatementResult("status", f"dropped column '{stmt.column}' of stream '{stmt.name}'")
    if stmt.action == "rename":
        if any(c.name == stmt.new_name for c in stream.columns):
            raise AlreadyExists(f"column '{stmt.new_name}' already exists in stream '{stmt.name}'")
        store.rewrite(stmt.name, lambda rows: rows.rename_columns([stmt.new_name if n == stmt.column else n
                                                                    for n in rows.column_names]),
                      lambda columns: [replace(c, name=stmt.new_name) if c.name == stmt.column else c
                                       for c in columns])
        return StatementResult("status", f"renamed column '{stmt.column}' of stream '{stmt.name}' to "
                                         f"'{stmt.new_name}'")
    definition = stmt.definition
    assert stmt.action == "modify" and definition is not None
    store.rewrite(stmt.name, lambda rows: rows,
                  lambda columns: [definition if c.name == stmt.column else c for c in columns])
    return StatementResult("status", f"modified column '{stmt.column}' of stream '{stmt.name}'")


def _mutated(stmt: AlterStream, stream: Stream, rows: pa.Table) -> pa.Table:
    """``rows`` after ``stmt``'s UPDATE (each assigned column recomputed where the condition
    holds, cast to its type) or DELETE (the rows where it holds removed). Raises
    :class:`InvalidInput` for an expression that does not run over the stream's columns."""
    schema = {c.name: c.type for c in stream.columns}
    condition = to_duckdb(parse_expression(stmt.where), schema).sql(dialect="duckdb")
    if stmt.action == "delete":
        query = f"SELECT * FROM mutated_rows WHERE NOT coalesce(({condition}), false)"
    else:
        assigned = dict(stmt.assignments)
        for column in assigned:
            if column not in rows.column_names:
                raise InvalidInput(f"UPDATE: column '{column}' is not a stored column of stream '{stmt.name}'")
        items = []
        for name in rows.column_names:
            if name not in assigned:
                items.append(f'"{name}"')
                continue
            typed = exp.CastToStrType(this=parse_expression(assigned[name]), to=exp.Literal.string(
                schema[name].name))
            value = to_duckdb(typed, schema).sql(dialect="duckdb")
            items.append(f'CASE WHEN coalesce(({condition}), false) THEN {value} ELSE "{name}" END AS "{name}"')
        query = f"SELECT {', '.join(items)} FROM mutated_rows"
    with duckdb.connect() as con:
        con.execute("SET TimeZone='UTC'")
        con.register("mutated_rows", rows)
        try:
            return con.sql(query).to_arrow_table()
        except duckdb.Error as err:
            raise InvalidInput(f"ALTER STREAM {stmt.name} {stmt.action.upper()}: {err}") from None


@_execute.register
def _maintenance(stmt: Maintenance, store: StreamStore) -> StatementResult:
    if stmt.stream is not None:
        store.get(stmt.stream)  # NotFound for a stream that does not exist, as Proton
    if stmt.check:
        return StatementResult("rows", table=pa.table({"result": pa.array([1], pa.uint8())}))
    return StatementResult("status", f"{stmt.what}: nothing to do (sinkflow's storage needs no maintenance and "
                                     "has one namespace of streams)")


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
            [s.settings.mode for s in streams],
            [list(s.settings.primary_key) for s in streams],
        ],
        schema=_SHOW_SCHEMA,
    )
    return StatementResult("rows", table=table, count=table.num_rows)


@_execute.register
def _describe(stmt: DescribeStream, store: StreamStore) -> StatementResult:
    stream = store.get(stmt.name)
    columns = stream.columns
    table = pa.table(
        [
            [c.name for c in columns],
            [c.type.name for c in columns],
            [_default_type(c) for c in columns],
            [_expression(c) or "" for c in columns],
            [c.comment for c in columns],
        ],
        schema=_DESCRIBE_SCHEMA,
    )
    return StatementResult("rows", table=table, count=table.num_rows)


def _expression(column: Column) -> str | None:
    if column.name == TP_TIME and column.default is None:
        return _INGEST_TIME
    return column.default


def _default_type(column: Column) -> str:
    if _expression(column) is None:
        return ""
    return "ALIAS" if column.alias else "DEFAULT"


@_execute.register(ShowCreate)
@_execute.register(ShowCreateStream)
def _show_create(stmt: ShowCreateStream | ShowCreate, store: StreamStore) -> StatementResult:
    """SHOW CREATE of a stream; the runtime answers it first for views and external streams."""
    table = pa.table([[show_create(store.get(stmt.name))]], schema=_SHOW_CREATE_SCHEMA)
    return StatementResult("rows", table=table, count=1)


def show_create(stream: Stream) -> str:
    """The CREATE statement that makes ``stream`` again (Timeplus's SHOW CREATE STREAM)."""
    settings = stream.settings
    kind = "RANDOM STREAM" if settings.random else "MUTABLE STREAM" if settings.mode == "mutable" else "STREAM"
    lines = []
    for column in stream.columns:
        line = f"  `{column.name}` {column.type.name}"
        expression = _expression(column)
        if expression is not None:
            line += f" {_default_type(column)} {expression}"
        if column.comment:
            line += f" COMMENT {_quote(column.comment)}"
        lines.append(line)
    text = f"CREATE {kind} {stream.name}\n(\n" + ",\n".join(lines) + "\n)"
    if settings.primary_key:
        text += f"\nPRIMARY KEY ({', '.join(settings.primary_key)})"
    pairs: list[tuple[str, object]] = []
    if settings.mode not in ("append", "mutable"):
        pairs.append(("mode", settings.mode))
    if settings.version_column is not None:
        pairs.append(("version_column", settings.version_column))
    etc = settings.event_time_column
    if etc is not None and stream.columns[-1].default != etc:
        pairs.append(("event_time_column", etc))
    pairs += [("logstore_retention_ms", settings.retention_ms), ("logstore_retention_bytes", settings.retention_bytes)]
    if settings.random:
        pairs.append(("eps", settings.eps))
    pairs += list(settings.ignored)
    shown = [f"{k}={_quote(v) if isinstance(v, str) and not _NUMBER.match(v) else v}"
             for k, v in pairs if v is not None]
    if shown:
        text += "\nSETTINGS " + ", ".join(shown)
    if settings.description:
        text += f"\nCOMMENT {_quote(settings.description)}"
    return text


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@_execute.register
def _insert(stmt: Insert, store: StreamStore) -> StatementResult:
    stream = store.get(stmt.name)
    result = stream.append_rows(list(stmt.columns) if stmt.columns is not None else None, _values(stmt.rows))
    plural = "" if result.count == 1 else "s"
    return StatementResult("status", f"inserted {result.count} row{plural} into '{stmt.name}'", count=result.count)


def _values(rows: tuple[tuple[object, ...], ...]) -> list[list[object]]:
    """The rows with every :class:`ValueExpression` replaced by its value (one DuckDB query for all).

    Raises :class:`InvalidInput` naming the expression DuckDB cannot evaluate."""
    expressions = [value for row in rows for value in row if isinstance(value, ValueExpression)]
    if not expressions:
        return [list(row) for row in rows]
    select = ", ".join(to_duckdb(parse_expression(e.padded)).sql(dialect="duckdb") for e in expressions)
    connection = duckdb.connect()
    try:
        connection.execute("SET TimeZone = 'UTC'")
        values = iter(connection.execute(f"SELECT {select}").fetchone() or ())
    except duckdb.Error as exc:
        raise InvalidInput(f"a VALUES expression cannot be evaluated: {str(exc).splitlines()[0]}") from None
    finally:
        connection.close()
    return [[next(values) if isinstance(value, ValueExpression) else value for value in row] for row in rows]
