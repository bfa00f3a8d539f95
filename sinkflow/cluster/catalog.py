"""The catalog in a compacted Kafka topic, replicated in memory on every node.

Keys of the catalog topic (one partition, so every node applies changes in one order):

- ``sink/<id>``: the sink's definition as JSON; its secrets are a Fernet token made with
  ``SINKFLOW_SECRET_KEY`` (never clear text in Kafka); a tombstone deletes the sink.
- ``checkpoint/<id>``: the engine snapshot as the value; epoch, counters, commit time and the
  sink's *generation* (its definition's ``updated_at``) as headers. A checkpoint of an older
  generation (written by a pipeline still running the previous definition) is ignored.
- ``progress/<id>``: a stream sink's next output position.
- ``reservation/<id>``: the first output position no write of the sink may have used yet.
- ``stream/<name>``: a stream's columns, settings and topics (see :mod:`sinkflow.cluster.streams`).
- ``view/<name>``: a view; a materialized view also names the sink that runs it.
- ``external/<name>``: an external stream; its secrets a Fernet token, as a sink's.
- ``kafka_offsets/<name>``: the next offset per partition a Kafka external stream has not read.

:class:`ClusterCatalog` implements :class:`sinkflow.catalog.CatalogStore`, as the embedded
catalog does; each write returns once Kafka acknowledged it and this node applied it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

from confluent_kafka import Message
from cryptography.fernet import Fernet, InvalidToken

from sinkflow.catalog import CatalogStore, Checkpoint, ExternalStreamRecord, FunctionRecord, SinkRecord, ViewRecord
from sinkflow.cluster.replica import Replica, header
from sinkflow.errors import AlreadyExists, InvalidInput, NotFound

#: How long a sink stays unstarted while its first checkpoint is on its way from the node that
#: created it; past that (that node died in between) the sink starts from the streams' head.
FIRST_CHECKPOINT_WAIT = 5.0
#: The kinds of output position kept per sink.
_POSITION_KINDS = ("progress", "reservation")


def secret_box(key: str) -> Fernet:
    """The cipher of sink secrets. Raises :class:`InvalidInput` when ``key`` is not a Fernet key."""
    try:
        return Fernet(key.encode())
    except ValueError:
        raise InvalidInput("SINKFLOW_SECRET_KEY is not a Fernet key (32 url-safe base64-encoded bytes)") from None


class ClusterCatalog(CatalogStore):
    """Sinks, checkpoints, output positions (stream-sink progress, reservations), views,
    external streams and their source offsets, kept in the catalog topic.

    ``on_change`` is called (on the replica's thread) after any record is applied, so the node
    can start, stop or move pipelines and readers. Streams' records are handed to
    ``stream_handler`` (set by the stream store)."""

    def __init__(self, replica: Replica, secret_key: str) -> None:
        self.replica = replica
        self.topic = replica.settings.catalog_topic
        self._box = secret_box(secret_key)
        self._lock = threading.Lock()
        self._sinks: dict[str, SinkRecord] = {}
        self._checkpoints: dict[str, Checkpoint] = {}
        #: Output positions by kind (``progress``, ``reservation``) and sink id.
        self._positions: dict[str, dict[str, int]] = {kind: {} for kind in _POSITION_KINDS}
        #: The generation each sink's pipeline on this node was started with.
        self._running: dict[str, float] = {}
        self._views: dict[str, ViewRecord] = {}
        self._externals: dict[str, ExternalStreamRecord] = {}
        self._kafka_offsets: dict[str, dict[int, int]] = {}
        self._functions: dict[str, FunctionRecord] = {}
        #: The records kept by name, by the kind of their key.
        self._named: dict[str, dict[str, Any]] = {"view": self._views, "external": self._externals,
                                                  "kafka_offsets": self._kafka_offsets, "function": self._functions}
        self.on_change: Callable[[], None] = lambda: None
        self.stream_handler: Callable[[str, dict[str, Any] | None], None] = lambda name, value: None

    def close(self) -> None:
        """Nothing to release: the replica is closed by the node."""

    # -- pipelines made in SQL ------------------------------------------------------------------
    # A materialized view is a sink (it runs where its sink runs); these records only name it.

    def views(self) -> list[ViewRecord]:
        """Every view, oldest first."""
        with self._lock:
            return sorted((replace(v) for v in self._views.values()), key=lambda v: v.created_at)

    def add_view(self, record: ViewRecord) -> None:
        """Store a view. Raises :class:`AlreadyExists` when the name is taken."""
        with self._lock:
            if record.name in self._views:
                raise AlreadyExists(f"a view named '{record.name}' already exists")
        record.created_at = time.time()
        self.replica.publish(self.topic, f"view/{record.name}".encode(), json.dumps(asdict(record)).encode())

    def delete_view(self, name: str) -> None:
        """Forget a view (its sink, if any, is deleted with :meth:`delete_sink`)."""
        self.replica.publish(self.topic, f"view/{name}".encode(), None)

    def functions(self) -> list[FunctionRecord]:
        """Every SQL function, in the order they were stored."""
        with self._lock:
            return list(self._functions.values())

    def put_function(self, record: FunctionRecord) -> None:
        """Store a SQL function, replacing one of the same name; returns once applied here."""
        self.replica.publish(self.topic, f"function/{record.name}".encode(), json.dumps(asdict(record)).encode())

    def delete_function(self, name: str) -> None:
        """Forget a SQL function (nothing happens when there is none of that name)."""
        self.replica.publish(self.topic, f"function/{name}".encode(), None)

    def external_streams(self) -> list[ExternalStreamRecord]:
        """Every external stream, oldest first, with its secrets."""
        with self._lock:
            records = sorted(self._externals.values(), key=lambda r: r.created_at)
            return [replace(r, settings=dict(r.settings), secrets=dict(r.secrets)) for r in records]

    def add_external_stream(self, record: ExternalStreamRecord) -> None:
        """Store a new external stream (its secrets encrypted). Raises :class:`AlreadyExists`."""
        with self._lock:
            if record.name in self._externals:
                raise AlreadyExists(f"an external stream named '{record.name}' already exists")
        record.created_at = time.time()
        body = asdict(record)
        body["secrets"] = self._seal(record.secrets)
        self.replica.publish(self.topic, f"external/{record.name}".encode(), json.dumps(body).encode())

    def delete_external_stream(self, name: str) -> None:
        """Remove an external stream, its secrets and its source offsets. Raises :class:`NotFound`."""
        with self._lock:
            if name not in self._externals:
                raise NotFound(f"external stream '{name}' not found")
        for kind in ("external", "kafka_offsets"):
            self.replica.publish(self.topic, f"{kind}/{name}".encode(), None)

    def kafka_offsets(self, name: str) -> dict[int, int]:
        """Partition → the next offset the Kafka external stream ``name`` has not stored yet."""
        with self._lock:
            return dict(self._kafka_offsets.get(name, {}))

    def set_kafka_offsets(self, name: str, offsets: dict[int, int]) -> None:
        """Record the next offsets of the partitions in ``offsets`` (the others keep theirs)."""
        merged = {**self.kafka_offsets(name), **offsets}
        self.replica.publish(self.topic, f"kafka_offsets/{name}".encode(),
                             json.dumps({str(p): o for p, o in merged.items()}).encode())

    # -- sinks ---------------------------------------------------------------------------------

    def add_sink(self, record: SinkRecord) -> None:
        """Store a new sink. Raises :class:`AlreadyExists` when the name is taken."""
        with self._lock:
            if any(s.name == record.name for s in self._sinks.values()):
                raise AlreadyExists(f"a sink named '{record.name}' already exists")
        record.created_at = record.updated_at = time.time()
        self._publish_sink(record)

    def update_sink(self, record: SinkRecord) -> None:
        """Replace a sink's definition; its checkpoint is dropped (the new query starts afresh).
        Raises :class:`NotFound`."""
        self._get(record.id)
        record.updated_at = time.time()
        with self._lock:
            self._running.pop(record.id, None)
        self._publish_sink(record)

    def set_paused(self, sink_id: str, paused: bool) -> None:
        record = replace(self._get(sink_id), paused=paused)
        self._publish_sink(record)

    def delete_sink(self, sink_id: str) -> None:
        """Remove a sink, its secrets, checkpoint, positions and the view it runs. Raises :class:`NotFound`."""
        self._get(sink_id)
        # The sink first: a checkpoint its pipeline still writes after it is then ignored.
        for kind in ("sink", "checkpoint", *_POSITION_KINDS):
            self.replica.publish(self.topic, f"{kind}/{sink_id}".encode(), None)
        for view in self.views():  # a materialized view is gone with its sink
            if view.sink_id == sink_id:
                self.delete_view(view.name)

    def sinks(self) -> list[SinkRecord]:
        """Every sink, oldest first, with its secrets (copies: changing one changes nothing stored)."""
        with self._lock:
            records = sorted(self._sinks.values(), key=lambda r: r.created_at)
            return [replace(r, properties=dict(r.properties), secrets=dict(r.secrets)) for r in records]

    def started(self, sink_id: str, generation: float) -> None:
        """Note that this node started the sink's pipeline for the definition of ``generation``:
        its checkpoints are tagged with it."""
        with self._lock:
            self._running[sink_id] = generation

    def _get(self, sink_id: str) -> SinkRecord:
        with self._lock:
            record = self._sinks.get(sink_id)
        if record is None:
            raise NotFound(f"sink '{sink_id}' not found")
        return record

    def _seal(self, secrets: dict[str, Any]) -> str:
        return self._box.encrypt(json.dumps(secrets).encode()).decode()

    def _unseal(self, what: str, token: str) -> dict[str, Any]:
        """Secrets sealed by :meth:`_seal`. Raises :class:`InvalidInput` naming ``what`` when
        another key sealed them."""
        try:
            return json.loads(self._box.decrypt(token.encode()))  # type: ignore[no-any-return]
        except InvalidToken:
            raise InvalidInput(f"{what}: its secrets were encrypted with another SINKFLOW_SECRET_KEY than "
                               "this node's") from None

    def _publish_sink(self, record: SinkRecord) -> None:
        body = asdict(record)
        body["secrets"] = self._seal(record.secrets)
        self.replica.publish(self.topic, f"sink/{record.id}".encode(), json.dumps(body).encode())

    # -- checkpoints -------------------------------------------------------------------------

    def save_checkpoint(self, sink_id: str, checkpoint: Checkpoint) -> None:
        """Commit ``checkpoint`` to Kafka; returns once acknowledged (and applied here)."""
        with self._lock:
            record = self._sinks.get(sink_id)
            generation = self._running.get(sink_id, record.updated_at if record else 0.0)
        headers = [("epoch", str(checkpoint.epoch).encode()), ("counters", json.dumps(checkpoint.counters).encode()),
                   ("committed_at", repr(checkpoint.committed_at).encode()), ("generation", repr(generation).encode())]
        self.replica.publish(self.topic, f"checkpoint/{sink_id}".encode(), checkpoint.snapshot, headers)

    def checkpoint(self, sink_id: str) -> Checkpoint | None:
        with self._lock:
            return self._checkpoints.get(sink_id)

    def awaits_first_checkpoint(self, record: SinkRecord) -> bool:
        """Whether ``record`` was created so recently that its first checkpoint may still be on its way."""
        return self.checkpoint(record.id) is None and time.time() - record.updated_at < FIRST_CHECKPOINT_WAIT

    # -- output positions ----------------------------------------------------------------------

    def _position(self, kind: str, sink_id: str) -> int:
        with self._lock:
            return self._positions[kind].get(sink_id, 0)

    def _set_position(self, kind: str, sink_id: str, position: int) -> None:
        self.replica.publish(self.topic, f"{kind}/{sink_id}".encode(), str(position).encode())

    def stream_progress(self, sink_id: str) -> int:
        return self._position("progress", sink_id)

    def set_stream_progress(self, sink_id: str, next_row: int) -> None:
        self._set_position("progress", sink_id, next_row)

    def reserved_rows(self, sink_id: str) -> int:
        """As :meth:`sinkflow.catalog.Catalog.reserved_rows`."""
        return self._position("reservation", sink_id)

    def reserve_rows(self, sink_id: str, next_row: int) -> None:
        """As :meth:`sinkflow.catalog.Catalog.reserve_rows`: durable once Kafka acknowledged it."""
        self._set_position("reservation", sink_id, next_row)

    # -- streams -----------------------------------------------------------------------------

    def publish_stream(self, name: str, value: dict[str, Any] | None) -> None:
        """Record a stream's definition (``None``: its drop); returns once applied here."""
        body = None if value is None else json.dumps(value).encode()
        self.replica.publish(self.topic, f"stream/{name}".encode(), body)

    # -- replication ---------------------------------------------------------------------------

    def apply(self, message: Message) -> None:
        """Apply one record of the catalog topic (on the replica's thread)."""
        kind, _, ident = (message.key() or b"").decode().partition("/")
        value = message.value()
        if kind == "stream":
            self.stream_handler(ident, None if value is None else json.loads(value))
        else:
            with self._lock:
                if kind in self._named:
                    self._apply_named(kind, ident, value)
                elif kind == "sink":
                    self._apply_sink(ident, value)
                elif kind == "checkpoint":
                    self._apply_checkpoint(ident, message)
                elif kind in self._positions:
                    if value is None:
                        self._positions[kind].pop(ident, None)
                    elif ident in self._sinks:
                        self._positions[kind][ident] = int(value)
        self.on_change()

    def _apply_named(self, kind: str, name: str, value: bytes | None) -> None:
        """A view, external stream or Kafka source's offsets (keyed by name); None deletes it."""
        table = self._named[kind]
        if value is None:
            table.pop(name, None)
            return
        body = json.loads(value)
        if kind == "view":
            table[name] = ViewRecord(**body)
        elif kind == "function":
            table[name] = FunctionRecord(body["name"], tuple(body["params"]), body["body"])
        elif kind == "external":
            body["secrets"] = self._unseal(f"external stream '{name}'", body["secrets"])
            body["columns"] = [tuple(c) for c in body["columns"]]
            table[name] = ExternalStreamRecord(**body)
        else:
            table[name] = {int(p): int(o) for p, o in body.items()}

    def _apply_sink(self, sink_id: str, value: bytes | None) -> None:
        if value is None:
            for table in (self._sinks, self._checkpoints, self._running, *self._positions.values()):
                table.pop(sink_id, None)
            return
        body = json.loads(value)
        body["secrets"] = self._unseal(f"sink '{body.get('name')}'", body["secrets"])
        record = SinkRecord(**body)
        previous = self._sinks.get(sink_id)
        if previous is not None and previous.updated_at != record.updated_at:
            self._checkpoints.pop(sink_id, None)  # a new definition starts from its own first checkpoint
        self._sinks[sink_id] = record

    def _apply_checkpoint(self, sink_id: str, message: Message) -> None:
        snapshot = message.value()
        record = self._sinks.get(sink_id)
        if snapshot is None or record is None:
            self._checkpoints.pop(sink_id, None)
            return
        if float(header(message, "generation") or b"0") != record.updated_at:
            return  # from a pipeline still running the sink's previous definition
        self._checkpoints[sink_id] = Checkpoint(
            epoch=int(header(message, "epoch") or b"0"), snapshot=snapshot,
            counters=json.loads(header(message, "counters") or b"{}"),
            committed_at=float(header(message, "committed_at") or b"0"),
        )
