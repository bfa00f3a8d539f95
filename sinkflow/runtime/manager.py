"""The sinks of a server: validated creation, storage, pipelines, control and status."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sinkflow.catalog import CatalogStore, Checkpoint, SinkRecord
from sinkflow.engine import Engine, Plan
from sinkflow.errors import ConfigError, InvalidInput, NotFound
from sinkflow.runtime.dead_letter import DeadLetters, dead_letter_stream
from sinkflow.runtime.pipeline import Pipeline, RuntimeSettings
from sinkflow.runtime.status import SinkStatus
from sinkflow.sinks import registry
from sinkflow.sinks.base import SinkEnv
from sinkflow.sinks.template import check_columns
from sinkflow.streams.store import MAX_NAME_LENGTH, StreamStore

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class SinkDefinition:
    """What a user submits: the Timeplus Sink API's ``{name, description, sql, type, properties}``."""

    name: str
    sql: str
    type: str
    description: str = ""
    properties: dict[str, Any] = field(default_factory=dict)
    #: Dotted property paths that are secret beyond the type's own (an external stream's
    #: ``http_header_X_Api_Key`` setting, say): stored apart and masked like them.
    secret_paths: tuple[str, ...] = ()
    #: Created paused (a view's ``pause_on_start``): it starts on resume.
    paused: bool = False


class SinkManager:
    """Owns every sink's pipeline. All methods run on the server's event loop."""

    def __init__(self, engine: Engine, store: StreamStore, catalog: CatalogStore,
                 settings: RuntimeSettings | None = None) -> None:
        self.engine = engine
        self.store = store
        self.catalog = catalog
        self.settings = settings or RuntimeSettings()
        self._pipelines: dict[str, Pipeline] = {}
        #: Awaited when the units of work this process holds may have changed (never, embedded).
        self.on_work_moved: Callable[[], Awaitable[None]] | None = None

    def holds(self, unit: str) -> bool:  # noqa: ARG002 - a cluster node answers per unit
        """Whether this process runs the unit of work named ``unit`` (a Kafka external stream's
        reader, a random stream's generator): always, embedded."""
        return True

    async def start(self) -> None:
        """Start every stored sink from its last checkpoint (paused ones stay paused)."""
        for record in self.catalog.sinks():
            self._launch(record)

    async def stop(self) -> None:
        for pipeline in list(self._pipelines.values()):
            await pipeline.stop()

    def validate(self, definition: SinkDefinition) -> Plan:
        """Check everything before anything is stored; return the query's plan.

        Raises :class:`InvalidInput` (bad name or type), :class:`ConfigError` naming the
        property (or the template column), or :class:`SqlError` with the SQL position.
        """
        longest = MAX_NAME_LENGTH - len(dead_letter_stream(""))
        if len(definition.name or "") > longest:
            raise InvalidInput(f"sink name '{definition.name[:24]}…' is {len(definition.name):,} characters long; "
                               f"the limit is {longest} (its dead-letter stream adds '{dead_letter_stream('')}')")
        if not _NAME.match(definition.name or ""):
            raise InvalidInput(
                f"sink name '{definition.name}' is invalid: use letters, digits and '_', not starting with a digit"
            )
        config = registry.parse_properties(definition.type, definition.properties)
        plan = self.engine.plan(definition.sql)
        columns = [column.name for column in plan.columns]
        for prop, text in config.templates().items():
            check_columns(text, prop, columns)
        if definition.type == "timeplus" and getattr(config, "stream_name", None) in plan.sources:
            raise ConfigError("stream_name", "a sink cannot write to a stream its own query reads")
        # Constructing a sink has no side effects; it checks what depends on the query's output
        # (a key column, a type the destination cannot store) and raises ConfigError.
        registry.sink_class(definition.type)(config, SinkEnv("", definition.name, plan.output_schema))
        return plan

    def is_bounded(self, sql: str) -> bool:
        """True when ``sql`` is a bounded query (``table(...)``): it ends after the rows stored now.
        Raises :class:`SqlError` for SQL that does not plan."""
        return self.engine.plan(sql).bounded

    async def create(self, definition: SinkDefinition) -> SinkRecord:
        """Validate, store and start a sink. Its query starts at the streams' current head
        (or where its SQL's ``seek_to`` says); the starting offsets are checkpointed before
        this returns, so no row produced from now on is lost even if the server dies.

        Returns once the sink is stored; its pipeline starts after, in the background. The
        checks and the query's starting state are made in a worker thread: planning, loading
        the destination's client library the first time and starting the query take from
        milliseconds to seconds under load, and neither should the answer queue behind the
        event loop's other work nor that work behind them. Storing and starting stay on the
        loop, in one go, so nothing sees the sink stored but not started."""
        start = await asyncio.to_thread(self._prepare, definition)
        public, secrets = registry.split_secrets(definition.type, definition.properties, definition.secret_paths)
        record = SinkRecord(id=str(uuid.uuid4()), name=definition.name, description=definition.description,
                            sql=definition.sql, type=definition.type, properties=public, secrets=secrets,
                            paused=definition.paused)
        self.catalog.add_sink(record)
        self._initial_checkpoint(record, start)
        DeadLetters(self.store, record.name).ensure()  # there from the answer on, to be queried at once
        self._launch(record)
        return record

    def _prepare(self, definition: SinkDefinition) -> bytes:
        """:meth:`validate`, then the state the query starts from (its starting offsets)."""
        return self._starting_state(self.validate(definition))

    async def update(self, sink_id: str, definition: SinkDefinition) -> SinkRecord:
        """Replace a sink's definition (validated first); it restarts with its new query.

        A secret sent back masked (``********``, or a URL with masked credentials, as the API
        shows them) keeps its stored value. Raises what :meth:`validate` raises, and
        :class:`ConfigError` for a masked property that has no stored value.
        """
        pipeline = self._get(sink_id)
        stored = registry.join_secrets(pipeline.record.properties, pipeline.record.secrets)
        definition.properties = registry.keep_masked(definition.type, definition.properties, stored)
        plan = self.validate(definition)
        public, secrets = registry.split_secrets(definition.type, definition.properties, definition.secret_paths)
        record = pipeline.record
        changed = SinkRecord(id=record.id, name=record.name, description=definition.description, sql=definition.sql,
                             type=definition.type, properties=public, secrets=secrets, paused=record.paused,
                             created_at=record.created_at)
        await pipeline.stop()
        self.catalog.update_sink(changed)
        # Counters carry over from the stopped pipeline's final position (past rows written but
        # not yet acknowledged), so output positions and the idempotency keys made from them
        # never repeat for this sink.
        self._initial_checkpoint(changed, self._starting_state(plan), pipeline.final_counters())
        self._launch(changed)
        return changed

    async def delete(self, sink_id: str, drop_dead_letters: bool = False) -> None:
        """Stop and remove a sink; with ``drop_dead_letters`` its dead-letter stream goes too
        (else it stays, to be queried or dropped later). Raises :class:`NotFound`."""
        pipeline = self._get(sink_id)
        await pipeline.stop()
        self.catalog.delete_sink(pipeline.record.id)
        del self._pipelines[pipeline.record.id]
        if drop_dead_letters:
            DeadLetters(self.store, pipeline.record.name).drop()

    def pause(self, sink_id: str) -> SinkRecord:
        pipeline = self._get(sink_id)
        self.catalog.set_paused(pipeline.record.id, True)  # first: if it cannot be stored, nothing changes
        pipeline.pause()
        return pipeline.record

    def resume(self, sink_id: str) -> SinkRecord:
        pipeline = self._get(sink_id)
        self.catalog.set_paused(pipeline.record.id, False)
        pipeline.resume()
        return pipeline.record

    async def restart(self, sink_id: str) -> SinkRecord:
        """Stop the sink and start it again from its last checkpoint (clears a failed state)."""
        pipeline = self._get(sink_id)
        await pipeline.stop()
        pipeline.start()
        return pipeline.record

    def records(self) -> list[SinkRecord]:
        return [p.record for p in self._pipelines.values()]

    def record(self, sink_id: str) -> SinkRecord:
        return self._get(sink_id).record

    def status(self, sink_id: str) -> SinkStatus:
        return self._get(sink_id).status

    def statuses(self) -> dict[str, tuple[str, SinkStatus]]:
        return {sid: (p.record.name, p.status) for sid, p in self._pipelines.items()}

    def _get(self, sink_id: str) -> Pipeline:
        """A sink by id, or by name for convenience. Raises :class:`NotFound`."""
        pipeline = self._pipelines.get(sink_id)
        if pipeline is None:
            pipeline = next((p for p in self._pipelines.values() if p.record.name == sink_id), None)
        if pipeline is None:
            raise NotFound(f"sink '{sink_id}' not found")
        return pipeline

    def _starting_state(self, plan: Plan) -> bytes:
        """The snapshot of ``plan`` started now: where its query starts reading."""
        execution = self.engine.start(plan)
        try:
            return execution.snapshot()
        finally:
            execution.close()

    def _initial_checkpoint(self, record: SinkRecord, start: bytes, counters: dict[str, int] | None = None) -> None:
        """Commit where the sink's query starts (``start``: :meth:`_starting_state`), before the
        sink is announced."""
        counters = counters or {}
        self.catalog.save_checkpoint(record.id, Checkpoint(counters.get("epochs", 0), start, counters, 0.0))

    def _launch(self, record: SinkRecord) -> None:
        pipeline = Pipeline(record, self.engine, self.store, self.catalog, self.settings)
        self._pipelines[record.id] = pipeline
        pipeline.start()

