"""Pipelines written in SQL: external streams, materialized views, views, INSERT … SELECT.

One catalog: a materialized view *is* a sink (same :class:`SinkManager`, same pipeline runtime
with batching, retries, dead letters, checkpoints, status, pause/resume and metrics) whose
destination is a stream, an external stream, or — created without INTO — a stream of its own
named like the view. An external stream is a named destination whose settings become a sink's
properties (:mod:`sinkflow.sinks.external_settings`), validated by the sink's model at CREATE.
A Kafka external stream is also a source (:mod:`sinkflow.runtime.kafka_source`).

:meth:`SqlPipelines.execute` runs any statement; what is not about pipelines goes to the engine.
The API's query endpoint (and through it the CLI) calls it; so can the REST resources for views
and external streams, by generating these statements.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from sinkflow.catalog import ExternalStreamRecord, FunctionRecord, ViewRecord
from sinkflow.engine import QueryPlan, StatementResult
from sinkflow.engine.statements import execute_statement, show_create
from sinkflow.engine.dictionaries import Dictionaries
from sinkflow.engine.user_functions import UserFunctions
from sinkflow.sql.dictionary_statements import DICTIONARY_STATEMENTS
from sinkflow.sql.function_statements import FUNCTION_STATEMENTS
from sinkflow.errors import AlreadyExists, InvalidInput, NotFound, SinkflowError, SqlError
from sinkflow.runtime.kafka_source import KafkaSources
from sinkflow.runtime.manager import SinkDefinition, SinkManager
from sinkflow.runtime.pipeline import Scrubber
from sinkflow.runtime.stream_target import StoreStreamTarget
from sinkflow.sinks import external_settings, registry
from sinkflow.sinks.base import SinkEnv, SinkError, WriteContext
from sinkflow.sinks.registry import MASK
from sinkflow.sql.pipeline_statements import (
    CreateExternalStream,
    CreateMaterializedView,
    CreateView,
    DropExternal,
    DropView,
    InsertSelect,
    Query,
    ShowCreate,
    ShowPipelines,
    SystemPipeline,
    pause_on_start,
    relocate,
)
from sinkflow.sql.functions import supported_functions
from sinkflow.sql.statements import (
    CreateFunction,
    CreateStream,
    DescribeStream,
    DropFunction,
    DropStream,
    Insert,
    ShowStreams,
    ValueExpression,
    parse_statement,
)
from sinkflow.sql.defaults import compile_default
from sinkflow.sql.user_functions import UserFunction, expand_functions
from sinkflow.sql.views import expand_views
from sinkflow.streams.defaults import ColumnDefaults
from sinkflow.streams.ingest import rows_to_batch
from sinkflow.streams.types import TP_TIME, Column, parse_type

__all__ = ["DeliveryFailed", "SqlPipelines"]

_MV_DESCRIPTION = "materialized view"


class DeliveryFailed(SinkflowError):
    """An INSERT into an external stream was not acknowledged by its destination."""

    code = "DELIVERY_FAILED"
    status = 502


def _rows(columns: dict[str, Sequence[Any]], types: dict[str, pa.DataType] | None = None) -> StatementResult:
    types = types or {}
    table = pa.table({name: pa.array(values, types.get(name, pa.string())) for name, values in columns.items()})
    return StatementResult("rows", table=table, count=table.num_rows)


class SqlPipelines:
    """Runs statements for one server (see the module docstring). All methods run on its event loop."""

    def __init__(self, sinks: SinkManager) -> None:
        self.sinks = sinks
        self.engine = sinks.engine
        self.store = sinks.store
        self.catalog = sinks.catalog
        self.sources = KafkaSources(self.store, self.catalog, sinks.holds)
        self.functions = UserFunctions(self.store.data_dir)
        self.dictionaries = Dictionaries(self.store.data_dir, self.store)
        sinks.on_work_moved = self.start  # a cluster node's readers follow the units of work it holds

    async def start(self) -> None:
        """Resume reading the Kafka external streams that views or queries read before (in
        cluster mode: those whose reader this node holds; the others' readers stop here)."""
        await self.sources.start(self._externals())

    async def stop(self) -> None:
        await self.sources.stop()

    # -- entry point --------------------------------------------------------------------------

    async def execute(self, sql: str) -> StatementResult:
        """Run one statement of any kind, as the query endpoint does.

        Raises :class:`SqlError` (with the position in ``sql``), :class:`ConfigError` naming the
        setting or property, :class:`AlreadyExists`, :class:`NotFound`, :class:`DeliveryFailed`;
        after an error nothing was changed.
        """
        statement = parse_statement(sql)
        if statement is None:
            query = await self._prepare(Query(sql, 0))
            try:
                return await asyncio.to_thread(self.engine.execute, query)
            except SqlError as err:
                raise self._unreadable(err) from None
        if isinstance(statement, FUNCTION_STATEMENTS):
            return await asyncio.to_thread(self.functions.execute, statement)
        if isinstance(statement, DICTIONARY_STATEMENTS):
            return await asyncio.to_thread(self.dictionaries.execute, statement)
        handler = getattr(self, "_" + type(statement).__name__, None)
        if handler is not None:
            result: StatementResult | None = await handler(statement, sql)
            if result is not None:
                return result
        return await asyncio.to_thread(execute_statement, statement, self.store)  # type: ignore[arg-type]

    # -- names ----------------------------------------------------------------------------------

    def _externals(self) -> dict[str, ExternalStreamRecord]:
        return {record.name: record for record in self.catalog.external_streams()}

    def _views(self) -> dict[str, ViewRecord]:
        return {record.name: record for record in self.catalog.views()}

    def _check_free(self, name: str) -> None:
        """Raise :class:`AlreadyExists` when ``name`` is a stream, external stream, view or sink."""
        if name in self._externals():
            raise AlreadyExists(f"an external stream named '{name}' already exists")
        if name in self._views():
            raise AlreadyExists(f"a view named '{name}' already exists")
        if self.store.exists(name):
            raise AlreadyExists(f"a stream named '{name}' already exists")
        if any(record.name == name for record in self.sinks.records()):
            raise AlreadyExists(f"a sink named '{name}' already exists")

    def _functions(self) -> dict[str, UserFunction]:
        return {r.name: UserFunction(r.name, r.params, r.body) for r in self.catalog.functions()}

    async def _prepare(self, query: Query) -> str:
        """The query text to plan: plain views and SQL functions expanded, Kafka external streams
        it reads being read."""
        plain = {name: v.query for name, v in self._views().items() if v.sink_id is None}
        text = expand_functions(expand_views(query.sql, plain), self._functions())
        words = _words(text)
        for name, record in self._externals().items():
            if record.type == "kafka" and name in words:
                await self.sources.ensure(record)
        return text

    def _plan(self, text: str, query: Query, sql: str) -> QueryPlan:
        try:
            return self.engine.plan(text)
        except SqlError as err:
            raise self._unreadable(relocate(err, sql, query) if text == query.sql else err) from None

    def _unreadable(self, err: SqlError) -> SqlError:
        """``err``, said plainly when the stream it does not know is an external stream that cannot be read."""
        for record in self._externals().values():
            prefix = f"unknown stream '{record.name}'"
            if record.type != "kafka" and err.message.startswith(prefix):
                kind = "external table" if record.is_table else "external stream"
                err.message = (f"{kind} '{record.name}' (type '{record.type}') cannot be read: only Kafka external "
                               f"streams are sources here; write to it with INSERT INTO {record.name} or CREATE "
                               f"MATERIALIZED VIEW … INTO {record.name}{err.message[len(prefix):]}")
                err.args = (err.message,)
        return err

    # -- SQL functions ----------------------------------------------------------------------------

    async def _CreateFunction(self, stmt: CreateFunction, sql: str) -> StatementResult:
        function = stmt.function
        if function.name.lower() in supported_functions():
            raise InvalidInput(f"function '{function.name}' is a built-in function: give yours another name")
        if function.name in self._functions() and not stmt.or_replace:
            if stmt.if_not_exists:
                return StatementResult("status", f"function '{function.name}' already exists")
            raise AlreadyExists(f"function '{function.name}' already exists (CREATE OR REPLACE FUNCTION replaces it)")
        self.catalog.put_function(FunctionRecord(function.name, function.params, function.body))
        return StatementResult("status", f"created function '{function.name}'")

    async def _DropFunction(self, stmt: DropFunction, sql: str) -> StatementResult:
        """Drop a SQL function (the catalog's) or a Python or remote one (:attr:`functions`)."""
        if stmt.name in self._functions():
            self.catalog.delete_function(stmt.name)
        elif not await asyncio.to_thread(self.functions.drop, stmt.name):
            if stmt.if_exists:
                return StatementResult("status", f"function '{stmt.name}' does not exist")
            raise NotFound(f"function '{stmt.name}' does not exist")
        return StatementResult("status", f"dropped function '{stmt.name}'")

    # -- external streams -------------------------------------------------------------------------

    async def _CreateStream(self, stmt: CreateStream, sql: str) -> StatementResult | None:
        """Refuse a stream named like an external stream or a view; the engine creates the others."""
        if stmt.name in self._externals() or stmt.name in self._views():
            if stmt.if_not_exists:
                return StatementResult("status", f"'{stmt.name}' already exists")
            self._check_free(stmt.name)
        return None

    async def _CreateExternalStream(self, stmt: CreateExternalStream, sql: str) -> StatementResult:
        if stmt.if_not_exists and stmt.name in self._externals():
            return StatementResult("status", f"external stream '{stmt.name}' already exists")
        self._check_free(stmt.name)
        columns = [(c.name, c.type.name) for c in stmt.columns]
        aliased = next((c.name for c in stmt.columns if c.alias), None)
        if aliased is not None:
            raise InvalidInput(f"column '{aliased}': an external stream's columns take DEFAULT expressions, not ALIAS")
        defaults = {c.name: c.default for c in stmt.columns if c.default is not None}
        if defaults:
            ColumnDefaults(stmt.name, list(stmt.columns), compile_default)  # refuses a bad expression by column
        try:
            mapped = external_settings.sink_properties(stmt.settings, columns, stmt.table)
        except external_settings.SettingError as err:
            position = stmt.positions.get(err.prop)
            if position is not None:
                err.message = f"{err.message} at line {position.line}, column {position.column}"
                err.args = (err.message,)
                err.position = position
            raise
        public, secrets = external_settings.split_settings(stmt.settings)
        self.catalog.add_external_stream(ExternalStreamRecord(
            name=stmt.name, type=str(stmt.settings["type"]).lower(), columns=columns, settings=public,
            secrets=secrets, is_table=stmt.table, defaults=defaults))
        what = "external table" if stmt.table else "external stream"
        return StatementResult("status", f"created {what} '{stmt.name}' ({mapped.sink_type})")

    async def _DropExternal(self, stmt: DropExternal, sql: str) -> StatementResult:
        """As DROP STREAM, for an external stream or table only (never a stream of this server)."""
        if stmt.name not in self._externals():
            if stmt.if_exists:
                return StatementResult("status", f"external stream '{stmt.name}' does not exist")
            raise NotFound(f"external stream '{stmt.name}' not found")
        result = await self._DropStream(DropStream(stmt.name, stmt.if_exists), sql)
        assert result is not None  # an external stream is always dropped here
        return result

    def _sink_settings(self, record: ExternalStreamRecord) -> external_settings.SinkSettings:
        return external_settings.sink_properties({**record.settings, **record.secrets}, record.columns,
                                                 record.is_table)

    async def _DropStream(self, stmt: DropStream, sql: str) -> StatementResult | None:
        externals = self._externals()
        views = self._views()
        if stmt.name in views:
            raise InvalidInput(f"'{stmt.name}' is a materialized view: drop it with DROP VIEW {stmt.name}")
        if stmt.name not in externals:
            return None
        users = sorted(v.name for v in views.values() if v.target == stmt.name or stmt.name in _words(v.query))
        if users:
            raise InvalidInput(f"external stream '{stmt.name}' is written or read by view(s) {', '.join(users)}: "
                               "drop them first")
        await self.sources.drop(stmt.name)
        self.catalog.delete_external_stream(stmt.name)
        return StatementResult("status", f"dropped external stream '{stmt.name}'")

    # -- views ------------------------------------------------------------------------------------

    async def _CreateMaterializedView(self, stmt: CreateMaterializedView, sql: str) -> StatementResult:
        if stmt.if_not_exists and stmt.name in self._views():
            return StatementResult("status", f"view '{stmt.name}' already exists")
        self._check_free(stmt.name)
        text = await self._prepare(stmt.query)
        plan = self._plan(text, stmt.query, sql)
        sink_type, properties, secret_paths = self._destination(stmt, plan)
        if stmt.target is None:
            # The view's own storage exists from now on, so `SELECT * FROM mv` works at once.
            StoreStreamTarget(self.store, self.catalog, "").ensure(stmt.name, plan.output_schema)
        try:
            record = await self.sinks.create(SinkDefinition(
                name=stmt.name, sql=text, type=sink_type, properties=properties, secret_paths=secret_paths,
                description=f"{_MV_DESCRIPTION} into {stmt.target}" if stmt.target else _MV_DESCRIPTION,
                paused=pause_on_start(text)))
        except BaseException:
            if stmt.target is None and self.store.exists(stmt.name):
                self.store.drop(stmt.name)
            raise
        self.catalog.add_view(ViewRecord(stmt.name, stmt.query.sql, stmt.target, record.id))
        into = f" into '{stmt.target}'" if stmt.target else ""
        return StatementResult("status", f"created materialized view '{stmt.name}'{into}")

    def _destination(self, stmt: CreateMaterializedView,
                     plan: QueryPlan) -> tuple[str, dict[str, Any], tuple[str, ...]]:
        """The sink type, properties and secret property paths that write the view's results where it says."""
        if stmt.target is None:
            return "timeplus", {"stream_name": stmt.name}, ()
        external = self._externals().get(stmt.target)
        if external is not None:
            _check_columns(external, [column.name for column in plan.columns])
            missing = sorted(set(external.defaults) - {column.name for column in plan.columns})
            if missing:
                # A view's rows go to the destination as the query gives them.
                raise InvalidInput(f"column '{missing[0]}' of external stream '{external.name}' has a DEFAULT, which "
                                   f"a view does not compute: add `{external.defaults[missing[0]]} AS {missing[0]}` "
                                   "to the query")
            mapped = self._sink_settings(external)
            return mapped.sink_type, mapped.properties, tuple(sorted(mapped.secret_paths))
        if self.store.exists(stmt.target):
            try:  # checks that every output column fits one of the stream's, as the view will
                StoreStreamTarget(self.store, self.catalog, "").ensure(stmt.target, plan.output_schema)
            except SinkError as err:
                raise InvalidInput(str(err)) from None
            return "timeplus", {"stream_name": stmt.target}, ()
        raise NotFound(f"materialized view '{stmt.name}' writes INTO '{stmt.target}', which is neither a stream "
                       "nor an external stream")

    async def _CreateView(self, stmt: CreateView, sql: str) -> StatementResult:
        if stmt.if_not_exists and stmt.name in self._views():
            return StatementResult("status", f"view '{stmt.name}' already exists")
        self._check_free(stmt.name)
        text = await self._prepare(stmt.query)
        self._plan(text, stmt.query, sql)
        self.catalog.add_view(ViewRecord(stmt.name, stmt.query.sql))
        return StatementResult("status", f"created view '{stmt.name}'")

    async def _DropView(self, stmt: DropView, sql: str) -> StatementResult:
        view = self._views().get(stmt.name)
        sink = next((r for r in self.sinks.records() if r.name == stmt.name), None)
        if view is None and sink is not None:
            # A sink made through the Sink API is a materialized view of the one catalog.
            await self.sinks.delete(sink.id)
            return StatementResult("status", f"dropped materialized view '{stmt.name}'")
        if view is None:
            if stmt.if_exists:
                return StatementResult("status", f"view '{stmt.name}' does not exist")
            raise NotFound(f"view '{stmt.name}' not found")
        readers = sorted(v.name for v in self._views().values()
                         if v.name != view.name and view.name in _words(v.query))
        if readers:
            raise InvalidInput(f"view '{view.name}' is read by view(s) {', '.join(readers)}: drop them first")
        if view.sink_id is not None and any(r.id == view.sink_id for r in self.sinks.records()):
            await self.sinks.delete(view.sink_id)
        if view.sink_id is not None and view.target is None and self.store.exists(view.name):
            self.store.drop(view.name)
        self.catalog.delete_view(view.name)
        return StatementResult("status", f"dropped view '{view.name}'")

    async def _SystemPipeline(self, stmt: SystemPipeline, sql: str) -> StatementResult:
        view = self._views().get(stmt.name)
        sink_id = view.sink_id if view is not None else stmt.name  # a REST sink is a view too
        if view is not None and sink_id is None:
            raise InvalidInput(f"view '{stmt.name}' is not materialized: it has nothing to pause")
        assert sink_id is not None
        if stmt.action == "pause":
            self.sinks.pause(sink_id)
        elif stmt.action == "resume":
            self.sinks.resume(sink_id)
        else:  # recover: as the Sink API's restart, from the last checkpoint (clears a failed state)
            await self.sinks.restart(sink_id)
            return StatementResult("status", f"recovered materialized view '{stmt.name}' from its last checkpoint")
        return StatementResult("status", f"{stmt.action}d materialized view '{stmt.name}'")

    # -- writing ----------------------------------------------------------------------------------

    async def _Insert(self, stmt: Insert, sql: str) -> StatementResult | None:
        external = self._externals().get(stmt.name)
        if external is None:
            return None
        if external.columns:
            columns = _external_columns(external)
            given = [c.name for c in columns if c.name not in external.defaults]
            names = list(stmt.columns) if stmt.columns is not None else given  # as for a stream: no defaulted ones
            batch = _with_defaults(external, rows_to_batch(stmt.name, columns, names, [list(row) for row in stmt.rows]))
        else:
            batch = _untyped_batch(stmt)
        count = await self._send(external, batch)
        return StatementResult("status", f"inserted {count} row{'' if count == 1 else 's'} into '{stmt.name}'",
                               count=count)

    async def _InsertSelect(self, stmt: InsertSelect, sql: str) -> StatementResult:
        text = await self._prepare(stmt.query)
        plan = self._plan(text, stmt.query, sql)
        if not plan.bounded:
            raise SqlError("INSERT … SELECT runs once and needs a bounded query: read table(stream); "
                           "for a continuous pipeline use CREATE MATERIALIZED VIEW … INTO")
        execution = self.engine.start(plan)
        try:
            table = await asyncio.to_thread(execution.run_to_end)
        finally:
            execution.close()
        external = self._externals().get(stmt.target)
        columns = stmt.columns
        names = [n for n in table.column_names if n != TP_TIME]
        if columns is None and external is None:
            # As Proton: the query's columns fill the stream's by position, unless they are named alike.
            stored = [c.name for c in self.store.get(stmt.target).user_columns if not c.alias]
            if not set(names) <= set(stored):
                columns = tuple(stored)
        if columns is not None:
            if len(names) != len(columns):
                raise InvalidInput(f"INSERT into '{stmt.target}' takes {len(columns)} column(s) "
                                   f"({', '.join(columns)}) but the query gives {len(names)}")
            table = table.select(names).rename_columns(list(columns))
        batch = table.combine_chunks().to_batches()[0] if table.num_rows else None
        if batch is None:
            count = 0
        elif external is not None:
            _check_columns(external, batch.schema.names)
            count = await self._send(external, _with_defaults(external, batch))
        else:
            count = self.store.get(stmt.target).append_batch(batch).count
        return StatementResult("status", f"inserted {count} row{'' if count == 1 else 's'} into '{stmt.target}'",
                               count=count)

    async def _send(self, external: ExternalStreamRecord, batch: pa.RecordBatch) -> int:
        """Deliver ``batch`` to an external stream once, acknowledged; return the rows sent.

        Raises :class:`DeliveryFailed` with the destination's reason (secrets removed)."""
        mapped = self._sink_settings(external)
        if mapped.sink_type == "timeplus":
            return self.store.get(mapped.properties["stream_name"]).append_batch(batch).count
        config = registry.parse_properties(mapped.sink_type, mapped.properties)
        sink_id = f"insert-{uuid.uuid4()}"
        sink = registry.sink_class(mapped.sink_type)(config, SinkEnv(sink_id, external.name, batch.schema))
        scrub = Scrubber(external.secrets.values())
        try:
            await sink.open()
            try:
                await sink.write(batch, WriteContext(sink_id, 1))
                await sink.flush(1)
            finally:
                await sink.close()
        except SinkError as err:
            raise DeliveryFailed(f"external stream '{external.name}': {scrub(str(err))}") from None
        return batch.num_rows

    # -- looking ----------------------------------------------------------------------------------

    async def _ShowStreams(self, stmt: ShowStreams, sql: str) -> StatementResult:
        """SHOW STREAMS with a ``type`` column: stream, materialized_view (its own storage),
        external_stream, external_table, view."""
        base = await asyncio.to_thread(execute_statement, stmt, self.store)
        assert base.table is not None
        views = self._views()
        externals = self._externals()
        kinds = []
        for name in base.table.column("name").to_pylist():
            kinds.append("materialized_view" if name in views else "external_stream" if name in externals else "stream")
        table = base.table.append_column("type", pa.array(kinds, pa.string()))
        extra: list[dict[str, Any]] = []
        listed = set(base.table.column("name").to_pylist())
        for name, record in externals.items():
            if name not in listed:
                extra.append({"name": name, "columns": len(record.columns),
                              "type": "external_table" if record.is_table else "external_stream"})
        for name, view in views.items():
            if name not in listed and view.target is None and view.sink_id is None:
                extra.append({"name": name, "type": "view"})
            elif name not in listed:
                extra.append({"name": name, "type": "materialized_view"})
        if extra:
            table = pa.concat_tables([table, _padded(table.schema, extra)])
        return StatementResult("rows", table=table, count=table.num_rows)

    async def _ShowPipelines(self, stmt: ShowPipelines, sql: str) -> StatementResult:
        if stmt.kind == "external_stream":
            externals = list(self._externals().values())
            return _rows({"name": [r.name for r in externals], "type": [r.type for r in externals],
                          "kind": ["external_table" if r.is_table else "external_stream" for r in externals],
                          "columns": [", ".join(f"{n} {t}" for n, t in r.columns) for r in externals]})
        views = self._views()
        if stmt.kind == "view":
            plain = [v for v in views.values() if v.sink_id is None]
            return _rows({"name": [v.name for v in plain], "query": [v.query for v in plain]})
        # Every sink is a materialized view of the one catalog, whether made in SQL or through REST.
        by_sink = {v.sink_id: v for v in views.values() if v.sink_id is not None}
        records = self.sinks.records()
        names, kinds, targets, states, delivered, queries = [], [], [], [], [], []
        for record in records:
            view = by_sink.get(record.id)
            status = self.sinks.status(record.id)
            names.append(record.name)
            kinds.append("materialized_view" if view is not None else "sink")
            targets.append((view.target or view.name) if view is not None else record.type)
            states.append(status.state.value)
            delivered.append(status.rows_delivered)
            queries.append(view.query if view is not None else record.sql)
        return _rows({"name": names, "kind": kinds, "target": targets, "status": states,
                      "rows_delivered": delivered, "query": queries}, {"rows_delivered": pa.int64()})

    async def _ShowCreate(self, stmt: ShowCreate, sql: str) -> StatementResult:
        return _rows({"statement": [self.show_create(stmt.name)]})

    def show_create(self, name: str) -> str:
        """The statement that creates ``name`` (secrets shown as ``********``). Raises :class:`NotFound`."""
        external = self._externals().get(name)
        if external is not None:
            written = [f"{n} {t}" + (f" DEFAULT {external.defaults[n]}" if n in external.defaults else "")
                       for n, t in external.columns]
            columns = f" ({', '.join(written)})" if written else ""
            values = {**external.settings, **{key: MASK for key in external.secrets}}
            settings = ", ".join(f"{key}={_literal(value)}" for key, value in values.items())
            kind = "TABLE" if external.is_table else "STREAM"
            return f"CREATE EXTERNAL {kind} {name}{columns} SETTINGS {settings}"
        view = self._views().get(name)
        if view is not None:
            if view.sink_id is None:
                return f"CREATE VIEW {name} AS {view.query}"
            into = f" INTO {view.target}" if view.target else ""
            return f"CREATE MATERIALIZED VIEW {name}{into} AS {view.query}"
        if self.store.exists(name):
            return show_create(self.store.get(name))
        raise NotFound(f"no stream, external stream or view named '{name}'")

    async def _DescribeStream(self, stmt: DescribeStream, sql: str) -> StatementResult | None:
        external = self._externals().get(stmt.name)
        if external is not None:
            return _rows({"name": [n for n, _ in external.columns], "type": [t for _, t in external.columns]})
        view = self._views().get(stmt.name)
        if view is not None and view.sink_id is None:
            text = await self._prepare(Query(view.query, 0))
            plan = self.engine.plan(text)
            return _rows({"name": [c.name for c in plan.columns], "type": [c.type.name for c in plan.columns]})
        return None


def _external_columns(external: ExternalStreamRecord) -> list[Column]:
    return [Column(name, parse_type(type_name), default=external.defaults.get(name))
            for name, type_name in external.columns]


def _with_defaults(external: ExternalStreamRecord, batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` with the columns it lacks that have a DEFAULT, computed from the others, in the
    external stream's column order. Raises :class:`InvalidInput` naming a column whose
    expression cannot be evaluated."""
    wanted = [name for name in external.defaults if name not in batch.schema.names]
    if not wanted:
        return batch
    columns = _external_columns(external)
    known = {name: batch.column(name) for name in batch.schema.names}
    computed = ColumnDefaults(external.name, columns, compile_default).evaluate(known, batch.num_rows, wanted)
    arrays = {**known, **computed}
    names = [c.name for c in columns]
    order = [n for n in names if n in arrays] + [n for n in arrays if n not in names]  # _tp_time last
    return pa.RecordBatch.from_pydict({name: arrays[name] for name in order})


def _untyped_batch(stmt: Insert) -> pa.RecordBatch:
    """The rows of an INSERT into an external table that declares no columns (a ClickHouse
    table): the columns it names, typed from their values; the destination converts them to its
    own types. Raises :class:`InvalidInput` without a column list, or for a column whose values
    mix types."""
    if stmt.columns is None:
        raise InvalidInput(f"external table '{stmt.name}' declares no columns: name them, "
                           f"INSERT INTO {stmt.name} (col, …) VALUES …")
    arrays = {}
    for i, name in enumerate(stmt.columns):
        values = [row[i] for row in stmt.rows]
        if any(isinstance(value, ValueExpression) for value in values):
            raise InvalidInput(f"column '{name}': write its values as literals (the table declares no column types)")
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            raise InvalidInput(f"column '{name}': its values mix types; write them all as one type") from None
    return pa.RecordBatch.from_pydict(arrays)


def _check_columns(external: ExternalStreamRecord, names: Sequence[str]) -> None:
    """Raise :class:`InvalidInput` naming a column written that the external stream does not have
    (an external stream without columns, such as a ClickHouse table, takes any)."""
    known = {name for name, _ in external.columns}
    if external.type == "kafka" and "_tp_message_headers" in names:
        raise InvalidInput(f"column '_tp_message_headers': writing Kafka headers is not supported (external stream "
                           f"'{external.name}' reads them); leave it out of what is written")
    for name in names:
        if known and name not in known and name != TP_TIME:
            raise InvalidInput(f"column '{name}' of the query is not a column of external stream "
                               f"'{external.name}' ({', '.join(sorted(known))})")


def _words(sql: str) -> set[str]:
    """The names a query mentions (a superset of the streams and views it reads)."""
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", sql))


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _padded(schema: pa.Schema, rows: list[dict[str, Any]]) -> pa.Table:
    """``rows`` in ``schema``: absent numbers are 0, absent text empty (the names are always given)."""
    arrays = []
    for f in schema:
        zero: Any = 0 if pa.types.is_integer(f.type) else "" if not f.nullable else None
        arrays.append(pa.array([row.get(f.name, zero) for row in rows], f.type))
    return pa.Table.from_arrays(arrays, schema=schema)
