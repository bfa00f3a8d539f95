"""Streams on Kafka topics.

Every stream has a topic (one partition; named ``<cluster>.stream.<stream>.<incarnation>``) and
its definition in the catalog topic. An append on any node is produced to the stream's topic
as one message (an Arrow IPC record batch, ``_tp_time`` already set by the ingesting node);
every node applies the topic's messages in offset order to a local copy of the stream's log,
which the engine reads exactly as in the embedded mode. Since every node applies the same
messages in the same order from the topic's start, a row has the same sequence number on every
node: a sink's checkpoint (offsets included) taken on one node is valid on any other.

The local copies are a cache: a node starting in cluster mode empties its ``streams`` directory
and rebuilds them from Kafka. Stream topics are created with ``retention.ms=-1``; a stream's own
retention settings bound the local copies only.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
from confluent_kafka import Message

from sinkflow.cluster.catalog import ClusterCatalog
from sinkflow.cluster.replica import Replica
from sinkflow.errors import AlreadyExists
from sinkflow.streams.defaults import DefaultsCompiler
from sinkflow.streams.log import LogOptions, StreamLog
from sinkflow.streams.store import Stream, StreamSettings, StreamStore, _validate
from sinkflow.streams.types import Column


class ReplicatedLog:
    """A stream's log whose appends go through Kafka; reads are served by the local copy."""

    def __init__(self, local: StreamLog, replica: Replica, topic: str) -> None:
        self.local = local
        self.replica = replica
        self.topic = topic

    def __getattr__(self, name: str) -> Any:
        """Everything but appending (reads, waits, sizes, retention, damage counters) is the
        local copy's."""
        return getattr(self.local, name)

    def append(self, batch: pa.RecordBatch, time_range: tuple[int, int] | None = None) -> int:
        """Produce ``batch`` to the stream's topic; return its first sequence number once this
        node applied it. Raises :class:`ValueError` for a schema mismatch, :class:`~sinkflow.cluster.replica.ClusterUnavailable`
        when Kafka does not take it."""
        if not batch.schema.equals(self.local.schema):
            raise ValueError(f"batch schema {batch.schema} does not match the log's {self.local.schema}")
        return int(self.replica.publish(self.topic, None, batch.serialize().to_pybytes()))

    def apply(self, message: Message) -> int:
        """Append one message of the topic to the local copy; return its first sequence number."""
        batch = pa.ipc.read_record_batch(pa.py_buffer(message.value()), self.local.schema)
        return self.local.append(batch)


class ClusterStreamStore(StreamStore):
    """The streams of the cluster: created, dropped and appended to through Kafka; read locally."""

    def __init__(self, data_dir: Path, replica: Replica, catalog: ClusterCatalog,
                 log_options: LogOptions | None = None, defaults: DefaultsCompiler | None = None) -> None:
        shutil.rmtree(Path(data_dir) / "streams", ignore_errors=True)  # a cache, rebuilt from Kafka
        super().__init__(data_dir, log_options, defaults=defaults)
        self.replica = replica
        self.catalog = catalog
        self._topics: dict[str, str] = {}
        catalog.stream_handler = self._apply

    def create(self, name: str, columns: list[Column], settings: StreamSettings | None = None) -> Stream:
        """Create a stream on every node; returns once it exists here.

        Raises :class:`InvalidInput` for a bad name, column or setting, :class:`AlreadyExists`."""
        user, tp_time, checked = _validate(name, columns, settings or StreamSettings())
        if self.exists(name):
            raise AlreadyExists(f"stream '{name}' already exists")
        topic = self.replica.settings.stream_topic(name, uuid.uuid4().hex[:8])
        self.replica.ensure_topic(topic, 1, {"retention.ms": "-1", "cleanup.policy": "delete"})
        self.catalog.publish_stream(name, {"columns": [c.to_dict() for c in [*user, tp_time]], "settings": checked.to_dict(),
                                           "topic": topic})
        if self._topics.get(name) != topic:  # another node created it first
            raise AlreadyExists(f"stream '{name}' already exists")
        return self.get(name)

    def topics(self) -> list[str]:
        """The topics of the streams this node has (their copies may still be catching up)."""
        return list(self._topics.values())

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
            topic = self._topics.pop(name, None)
            if topic is not None:
                self.replica.unfollow(topic)
                super().drop(name)
            return
        if self.exists(name):
            return  # a concurrent create of the same name: the first one applied wins
        columns = [Column.from_dict(c) for c in value["columns"]]
        stream = super().create(name, columns, StreamSettings.from_dict(value["settings"]))
        log = ReplicatedLog(stream.log, self.replica, value["topic"])
        stream.log = log  # type: ignore[assignment]
        self._topics[name] = value["topic"]
        self.replica.follow(value["topic"], log.apply)
