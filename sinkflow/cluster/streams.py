"""Streams on Kafka topics.

Every stream has a topic (named ``<cluster>.stream.<stream>.<incarnation>``; ``shards``
partitions, default 1) and its definition in the catalog topic. An append on any node is
produced as Arrow IPC record batches, ``_tp_time`` already set by the ingesting node: one message
of the topic for a stream of one partition, whose offset order is then the stream's order; for
a sharded stream, one message per partition plus a record of its order topic
(:mod:`sinkflow.cluster.shards`). Every node applies the appends in that order to a local copy
of the stream's log, which the engine reads exactly as in the embedded mode. Since every node
applies the same batches in the same order from the topics' start, a row has the same sequence
number on every node: a sink's checkpoint (offsets included) taken on one node is valid on any
other.

The local copies are a cache: a node starting in cluster mode empties its ``streams`` directory
and rebuilds them from Kafka. Stream topics (order topics too) are created with
``retention.ms=-1``; a stream's own
retention settings bound the local copies only.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
from confluent_kafka import Message

from sinkflow.cluster.catalog import ClusterCatalog
from sinkflow.cluster.replica import PUBLISH_TIMEOUT, ClusterUnavailable, Outgoing, Replica
from sinkflow.cluster.shards import Partitioner, Sequencer, Sharding, order_record
from sinkflow.errors import AlreadyExists
from sinkflow.streams.defaults import DefaultsCompiler
from sinkflow.streams.log import LogOptions, StreamLog
from sinkflow.streams.store import Stream, StreamSettings, StreamStore, _validate
from sinkflow.streams.types import Column


class ReplicatedLog:
    """A stream's log whose appends go through Kafka; reads are served by the local copy.

    One partition: an append is one message of the stream's topic, applied in offset order.
    Several (see :mod:`sinkflow.cluster.shards`): an append is one message per shard it touches
    plus one record of the order topic, applied by the :class:`Sequencer`."""

    def __init__(self, local: StreamLog, replica: Replica, topics: StreamTopics, partitioner: Partitioner) -> None:
        self.local = local
        self.replica = replica
        self.topics = topics
        self.partitioner = partitioner
        self.sequencer = Sequencer(local.schema, local.append)

    def __getattr__(self, name: str) -> Any:
        """Everything but appending (reads, waits, sizes, retention, damage counters) is the
        local copy's."""
        return getattr(self.local, name)

    def append(self, batch: pa.RecordBatch, time_range: tuple[int, int] | None = None) -> int:
        """Produce ``batch`` to the stream's topic(s); return its first sequence number once this
        node applied it. Raises :class:`ValueError` for a schema mismatch, :class:`InvalidInput`
        when ``sharding_expr`` fails on the rows, :class:`~sinkflow.cluster.replica.ClusterUnavailable`
        when Kafka does not take it."""
        if not batch.schema.equals(self.local.schema):
            raise ValueError(f"batch schema {batch.schema} does not match the log's {self.local.schema}")
        if self.topics.order is None:
            return int(self.replica.publish(self.topics.data, None, batch.serialize().to_pybytes()))
        parts = self.partitioner.split(batch)
        offsets = self.replica.publish_many([Outgoing(self.topics.data, None, part.serialize().to_pybytes(),
                                                      partition=partition) for partition, part in parts])
        applied: Future[int] = self.replica.publish(
            self.topics.order, None, order_record([(p, o) for (p, _), o in zip(parts, offsets, strict=True)]))
        try:
            return applied.result(PUBLISH_TIMEOUT)
        except FutureTimeout:
            raise ClusterUnavailable(f"cluster: the parts of an append to '{self.topics.data}' were not read back "
                                     f"within {PUBLISH_TIMEOUT:.0f}s") from None

    def apply(self, message: Message) -> int:
        """Append one message of a one-partition stream's topic to the local copy; return its
        first sequence number."""
        batch = pa.ipc.read_record_batch(pa.py_buffer(message.value()), self.local.schema)
        return self.local.append(batch)

    def follow(self) -> None:
        """Start applying the stream's topics here."""
        if self.topics.order is None:
            self.replica.follow(self.topics.data, self.apply)
            return
        self.replica.follow(self.topics.data, self.sequencer.on_part, self.topics.shards)
        self.replica.follow(self.topics.order, self.sequencer.on_order)

    def unfollow(self) -> None:
        self.replica.unfollow(self.topics.data, self.topics.shards)
        if self.topics.order is not None:
            self.replica.unfollow(self.topics.order)

    def catch_up(self, timeout: float) -> None:
        """Return once every append made before this call is in the local copy (the order
        topic first: the parts its records name were written before them)."""
        if self.topics.order is not None:
            self.replica.sync(self.topics.order, timeout)
        self.replica.sync(self.topics.data, timeout, self.topics.shards)


@dataclass(frozen=True)
class StreamTopics:
    """A stream's topics: ``data`` (``shards`` partitions) and, when sharded, ``order``."""

    data: str
    shards: int = 1
    order: str | None = None

    @classmethod
    def from_record(cls, value: dict[str, Any]) -> StreamTopics:
        """The topics named in a stream's catalog record (a record without ``shards`` is one partition)."""
        return cls(value["topic"], int(value.get("shards", 1)), value.get("order_topic"))


class ClusterStreamStore(StreamStore):
    """The streams of the cluster: created, dropped and appended to through Kafka; read locally."""

    def __init__(self, data_dir: Path, replica: Replica, catalog: ClusterCatalog,
                 defaults: DefaultsCompiler, log_options: LogOptions | None = None) -> None:
        shutil.rmtree(Path(data_dir) / "streams", ignore_errors=True)  # a cache, rebuilt from Kafka
        super().__init__(data_dir, log_options, defaults=defaults)
        self.replica = replica
        self.catalog = catalog
        self._logs: dict[str, ReplicatedLog] = {}
        self._defaults_compiler = defaults
        #: Whether this node holds the unit of work named by a key (set by the node once it joins).
        self.holds: Callable[[str], bool] = lambda unit: False
        catalog.stream_handler = self._apply

    def generates(self, name: str) -> bool:
        """Random stream ``name`` is generated by one node: the one holding ``random/<name>``'s
        unit of work, as a sink's (the replicated stream would otherwise get every node's rows)."""
        return self.holds(f"random/{name}")

    def create(self, name: str, columns: list[Column], settings: StreamSettings | None = None) -> Stream:
        """Create a stream on every node; returns once it exists here.

        Raises :class:`InvalidInput` for a bad name, column or setting, :class:`AlreadyExists`."""
        user, tp_time, checked = _validate(name, columns, settings or StreamSettings())
        if self.exists(name):
            raise AlreadyExists(f"stream '{name}' already exists")
        sharding = Sharding.from_settings(name, dict(checked.ignored))
        Partitioner(name, [*user, tp_time], sharding, self._defaults_compiler)  # refuses a bad sharding_expr now
        topic = self.replica.settings.stream_topic(name, uuid.uuid4().hex[:8])
        kept = {"retention.ms": "-1", "cleanup.policy": "delete"}
        self.replica.ensure_topic(topic, sharding.shards, kept)
        record: dict[str, Any] = {"columns": [c.to_dict() for c in [*user, tp_time]], "settings": checked.to_dict(),
                                  "topic": topic}
        if sharding.shards > 1:
            record.update(shards=sharding.shards, order_topic=f"{topic}.order")
            self.replica.ensure_topic(record["order_topic"], 1, kept)
        self.catalog.publish_stream(name, record)
        created = self._logs.get(name)
        if created is None or created.topics.data != topic:  # another node created it first
            raise AlreadyExists(f"stream '{name}' already exists")
        return self.get(name)

    def catch_up(self, timeout: float) -> None:
        """Return once every stream's local copy holds every append made before this call.
        Raises :class:`~sinkflow.cluster.replica.ClusterUnavailable` past ``timeout`` seconds."""
        for log in list(self._logs.values()):
            log.catch_up(timeout)

    def drop(self, name: str) -> None:
        """Drop a stream on every node. Raises :class:`NotFound`.

        Its topic is left in Kafka: other nodes may still be reading it, and deleting a topic
        under a consumer crashed librdkafka against Tansu here. docs/cluster.md says how to
        remove the topics of dropped streams."""
        self.get(name)
        self.catalog.publish_stream(name, None)

    def _apply(self, name: str, value: dict[str, Any] | None) -> None:
        """Apply a stream record of the catalog topic (on the replica's thread)."""
        if value is None:
            dropped = self._logs.pop(name, None)
            if dropped is not None:
                dropped.unfollow()
                super().drop(name)
            return
        if self.exists(name):
            return  # a concurrent create of the same name: the first one applied wins
        columns = [Column.from_dict(c) for c in value["columns"]]
        stream = super().create(name, columns, StreamSettings.from_dict(value["settings"]))
        topics = StreamTopics.from_record(value)
        sharding = Sharding.from_settings(name, dict(stream.settings.ignored))
        partitioner = Partitioner(name, stream.columns, replace(sharding, shards=topics.shards),
                                  self._defaults_compiler)
        log = ReplicatedLog(stream.log, self.replica, topics, partitioner)
        stream.log = log  # type: ignore[assignment]
        self._logs[name] = log
        log.follow()
