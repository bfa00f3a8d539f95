"""Kafka external streams as sources: the topic read into a stream of the same name.

``SELECT raw, … FROM kafka_ext`` and materialized views over it plan against a sinkflow stream
named like the external stream, whose rows this reader appends from the topic: the external
stream's columns decoded from each message (``data_format`` JSONEachRow, CSV or RawBLOB),
``_tp_time`` from the message timestamp, and the message's metadata as Timeplus names it:
``_tp_message_key``, ``_tp_message_headers``, ``_tp_shard`` (the partition) and ``_tp_sn`` (the
offset, in place of the stream's own sequence number). The planner turns a query's
``seek_to='5,3,11'`` (offsets in partition order) and ``shards='0,2'`` into filters on the last
two. The reader starts the first
time a query or a view reads the external stream and runs, with the server, until the external
stream is dropped; it begins at the topic's earliest offset, so a query's ``seek_to`` picks
within everything the topic held since. The first read waits until the topic's history is
copied — every partition read up to the end offset it had when reading began — so that
``seek_to='latest'`` (the default) means the messages that come after it.

Offsets: after each append the next offset of every partition is recorded in the catalog, so a
restart — after a stop or a ``kill -9`` — continues where the stream stands. A crash between an
append and its record repeats those messages once (at-least-once). A view reading the stream
keeps its position in the stream in its own checkpoint, as it does for any stream, so the pair
neither loses nor (beyond that window) repeats a message.

In cluster mode the stream is replicated and the reader runs on one node: the one holding the
reader's unit of work (:func:`reader_unit`), as for a sink. When that unit moves (its node died
or left), the new node's reader continues from the offsets recorded in the catalog.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.json as pajson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from sinkflow.catalog import CatalogStore, ExternalStreamRecord
from sinkflow.errors import AlreadyExists
from sinkflow.sinks import external_settings, registry
from sinkflow.sinks.kafka import KafkaConfig, librdkafka_config
from sinkflow.sql.plan import KAFKA_METADATA_COLUMNS
from sinkflow.streams.store import StreamSettings, StreamStore
from sinkflow.streams.types import TP_TIME, TP_TIME_TYPE, Column, parse_type

log = logging.getLogger("sinkflow.runtime.kafka_source")

#: The message's key (text), headers, partition and offset: columns of the stream that Timeplus
#: has as virtual columns of the same names (``SELECT *`` leaves them out).
MESSAGE_KEY, MESSAGE_HEADERS, SHARD, OFFSET = KAFKA_METADATA_COLUMNS
METADATA = [Column(MESSAGE_KEY, parse_type("string")), Column(MESSAGE_HEADERS, parse_type("map(string, string)")),
            Column(SHARD, parse_type("int32")), Column(OFFSET, parse_type("int64"))]
_BATCH = 20_000
_POLL = 0.2
_RETRY = 1.0
#: How long the first read of an external stream waits for the topic's history to be copied.
CATCH_UP_TIMEOUT = 60.0


@dataclass
class Polled:
    """The messages of one poll, field by field, in order (error messages left out)."""

    values: list[bytes] = field(default_factory=list)
    keys: list[bytes | None] = field(default_factory=list)
    #: Message timestamps in ms; None without one (the stream then uses the ingest time).
    times: list[int | None] = field(default_factory=list)
    partitions: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    headers: list[list[tuple[str, bytes | None]] | None] = field(default_factory=list)

    @classmethod
    def of(cls, good: list[Any]) -> Polled:
        """The fields of confluent-kafka messages (none of which carries an error)."""
        times = [m.timestamp()[1] for m in good]
        return cls([m.value() or b"" for m in good], [m.key() for m in good],
                   [t if t >= 0 else None for t in times], [m.partition() for m in good],
                   [m.offset() for m in good], [m.headers() for m in good])

    def next_offsets(self) -> dict[int, int]:
        """Partition → the offset after its last message here."""
        return {p: o + 1 for p, o in zip(self.partitions, self.offsets)}


def _headers(headers: list[list[tuple[str, bytes | None]] | None]) -> pa.Array:
    """Kafka headers as ``map(string, string)`` (values as text; a header without a value maps to '')."""
    maptype = pa.map_(pa.string(), pa.string())
    if not any(headers):
        return pa.array([[]] * len(headers), maptype)
    return pa.array([[(k, (v or b"").decode("utf-8", "replace")) for k, v in h or ()] for h in headers], maptype)


def _field(value: Any, arrow_type: pa.DataType) -> pa.Array:
    """A JSON field's ``value`` as a one-row array of ``arrow_type`` (null when it does not convert)."""
    if value is None:
        return pa.nulls(1, arrow_type)
    if isinstance(value, (dict, list)) and pa.types.is_string(arrow_type):
        return pa.array([json.dumps(value, separators=(",", ":"), ensure_ascii=False)], arrow_type)
    try:
        return pa.array([value], arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        pass
    text = json.dumps(value) if isinstance(value, bool) else str(value)  # "12" into a number, 12 into text
    try:
        return pa.array([text], pa.string()).cast(arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return pa.nulls(1, arrow_type)


def _columns(record: ExternalStreamRecord) -> list[Column]:
    """The columns decoded from a message's value: those declared, but the message's timestamp
    and metadata (a declared ``_tp_message_key`` is the key, as in Timeplus)."""
    metadata = {TP_TIME, *KAFKA_METADATA_COLUMNS}
    return [Column(name, parse_type(type_name)) for name, type_name in record.columns if name not in metadata]


class MessageDecoder:
    """Turns a list of Kafka messages into one Arrow batch of the stream's columns."""

    def __init__(self, record: ExternalStreamRecord) -> None:
        self.columns = _columns(record)
        if not self.columns:
            raise external_settings.SettingError(
                "columns", f"reading external stream '{record.name}' needs its columns, e.g. (raw string)")
        self.format = external_settings.data_format(dict(record.settings), record.columns,
                                                    ("JSONEachRow", "RawBLOB", "CSV"))
        if self.format == "RawBLOB" and len(self.columns) != 1:
            raise external_settings.SettingError("data_format", "RawBLOB reads each message into one column")
        self.schema = pa.schema([pa.field(c.name, c.type.arrow) for c in self.columns])

    def decode(self, polled: Polled) -> pa.RecordBatch:
        """The stream's rows of ``polled`` (messages in order): the columns decoded from each
        value, then the message's metadata columns (:data:`METADATA`). A message that does not
        decode becomes a row of nulls, which the stream stores as the columns' defaults (zero
        values, empty text)."""
        values = polled.values
        try:
            table = self._values(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError, ValueError):
            # One bad message spoils a decode of the whole poll: decode them one by one.
            table = pa.concat_tables([self._one(value) for value in values])
        # Keys are text: invalid UTF-8 is replaced rather than failing the whole poll.
        keys = pa.array([k.decode("utf-8", "replace") if k is not None else "" for k in polled.keys], pa.string())
        metadata = {
            MESSAGE_KEY: keys,
            MESSAGE_HEADERS: _headers(polled.headers),
            SHARD: pa.array(polled.partitions, pa.int32()),
            OFFSET: pa.array(polled.offsets, pa.int64()),
            TP_TIME: pa.array(polled.times, pa.int64()).cast(TP_TIME_TYPE.arrow),
        }
        for name, array in metadata.items():
            table = table.append_column(name, array)
        return table.combine_chunks().to_batches()[0]

    def _one(self, value: bytes) -> pa.Table:
        """One message as a row. JSON is read field by field, as Timeplus reads it: an object or
        an array in a string column is its JSON text, and a field that does not convert (or a
        message that is no JSON object) is null. Another format's message that does not decode
        is a row of nulls."""
        if self.format != "JSONEachRow":
            try:
                return self._values([value])
            except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError, ValueError):
                return pa.table([pa.nulls(1, f.type) for f in self.schema], schema=self.schema)
        try:
            document = json.loads(value)
        except ValueError:
            document = None
        fields = document if isinstance(document, dict) else {}
        return pa.table([_field(fields.get(f.name), f.type) for f in self.schema], schema=self.schema)

    def _values(self, values: list[bytes]) -> pa.Table:
        """The columns decoded from ``values``; raises when any message does not decode."""
        if self.format == "RawBLOB":
            text = pa.array(values, pa.binary()).cast(pa.string())
            return pa.table([text.cast(self.schema.field(0).type)], schema=self.schema)
        if self.format == "JSONEachRow":
            options = pajson.ParseOptions(explicit_schema=self.schema, unexpected_field_behavior="ignore")
            return pajson.read_json(io.BytesIO(b"\n".join(v.replace(b"\n", b" ") for v in values)),
                                    parse_options=options)
        rows = [next(csv.reader(io.StringIO(v.decode("utf-8"))), []) for v in values]
        text = pa.table({c.name: pa.array([r[i] if i < len(r) else None for r in rows], pa.string())
                         for i, c in enumerate(self.columns)})
        return text.cast(self.schema)


class KafkaReader:
    """Reads one Kafka external stream into its stream until stopped (see the module docstring)."""

    def __init__(self, record: ExternalStreamRecord, store: StreamStore, catalog: CatalogStore) -> None:
        self.record = record
        self.store = store
        self.catalog = catalog
        self.decoder = MessageDecoder(record)
        mapped = external_settings.sink_properties({**record.settings, **record.secrets}, record.columns)
        config = registry.parse_properties("kafka", mapped.properties)
        assert isinstance(config, KafkaConfig)
        self.topic = config.topic
        self.conf = {**librdkafka_config(config), "group.id": f"sinkflow-{record.name}",
                     "enable.auto.commit": False, "enable.partition.eof": False}
        self.last_error = ""
        #: Set once every partition is read up to the end offset it had when reading began (or
        #: the topic is not there yet): the stream then holds what the topic held then.
        self.caught_up = asyncio.Event()
        #: The partitions not yet read up to that end offset, with the offset.
        self._behind: dict[int, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def ensure_stream(self) -> None:
        """Create the stream the messages are appended to, when absent (or made meanwhile by
        another cluster node); a stream copied by an earlier version gets the metadata columns it
        lacks (its rows read their zero values)."""
        if not self.store.exists(self.record.name):
            with contextlib.suppress(AlreadyExists):
                self.store.create(self.record.name, [*self.decoder.columns, *METADATA],
                                  StreamSettings(description=f"read from Kafka topic {self.topic}"))
                return
        for column in METADATA:
            self.store.add_column(self.record.name, column, if_not_exists=True)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"kafka-source:{self.record.name}")

    async def stop(self) -> None:
        """Stop after the poll in hand (a poll in a worker thread cannot be interrupted)."""
        self._stopping = True
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while not self._stopping:
            consumer = Consumer(self.conf)
            try:
                await asyncio.to_thread(self._assign, consumer)
                while not self._stopping:
                    if not self._behind:
                        # Not on an empty poll: a poll can come back empty before the first
                        # fetch of a topic with history has answered.
                        self.caught_up.set()
                    messages = await asyncio.to_thread(consumer.consume, _BATCH, _POLL)
                    if messages:
                        # Off the loop: in cluster mode an append waits for Kafka's acknowledgement.
                        await asyncio.to_thread(self._append, messages)
                    if self._behind:
                        self._catch_up(consumer)
            except Exception as exc:  # the reader outlives any one failure; it retries
                self.caught_up.set()
                if str(exc) != self.last_error:  # once per new problem, not once a second
                    log.warning("kafka external stream %s: %s; retrying", self.record.name, exc)
                self.last_error = str(exc)
                await asyncio.sleep(_RETRY)
            finally:
                await asyncio.to_thread(consumer.close)

    def _assign(self, consumer: Consumer) -> None:
        metadata = consumer.list_topics(self.topic, timeout=10)
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            raise KafkaException(f"topic '{self.topic}' is not available yet")
        done = self.catalog.kafka_offsets(self.record.name)
        if not self.caught_up.is_set():
            ends = {p: consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[1]
                    for p in topic.partitions}
            self._behind = {p: end for p, end in ends.items() if end > done.get(p, 0)}
        consumer.assign([TopicPartition(self.topic, p, done.get(p, OFFSET_BEGINNING)) for p in topic.partitions])

    def _catch_up(self, consumer: Consumer) -> None:
        """Forget the partitions read up to their end offset of when reading began. The
        consumer's position counts messages it skips too (transaction markers)."""
        positions = consumer.position([TopicPartition(self.topic, p) for p in self._behind])
        for position in positions:
            if position.offset >= self._behind[position.partition]:
                del self._behind[position.partition]

    def _append(self, messages: list[Any]) -> None:
        good = []
        for message in messages:
            if (error := message.error()) is not None:
                log.warning("kafka external stream %s: %s", self.record.name, error)
            else:
                good.append(message)
        polled = Polled.of(good)
        if not polled.values:
            return
        self.store.get(self.record.name).append_batch(self.decoder.decode(polled))
        self.catalog.set_kafka_offsets(self.record.name, polled.next_offsets())


def reader_unit(name: str) -> str:
    """The unit of work of external stream ``name``'s reader (a cluster runs it on one node)."""
    return f"kafka_source/{name}"


class KafkaSources:
    """The readers of a server's Kafka external streams, started on first use."""

    def __init__(self, store: StreamStore, catalog: CatalogStore,
                 holds: Callable[[str], bool] = lambda unit: True) -> None:
        self.store = store
        self.catalog = catalog
        #: Whether this process runs a unit of work (:func:`reader_unit`); always, embedded.
        self.holds = holds
        self._readers: dict[str, KafkaReader] = {}

    async def start(self, externals: dict[str, ExternalStreamRecord]) -> None:
        """Run the readers of external streams that were read before (their stream exists) and
        that this process holds (see :func:`reader_unit`); stop the others' (cluster mode: their
        unit of work moved to another node)."""
        for record in externals.values():
            if record.type != "kafka" or not self.store.exists(record.name):
                continue
            if self.holds(reader_unit(record.name)):
                await self.ensure(record)
            elif record.name in self._readers:
                await self._readers.pop(record.name).stop()

    async def ensure(self, record: ExternalStreamRecord) -> None:
        """Make sure ``record``'s topic is read into its stream: create the stream when absent and
        start the reader here when this process holds it (once; later calls do nothing). In
        cluster mode another node may hold it: its stream is then fed from there.

        Raises :class:`SettingError` when the external stream cannot be read (no columns)."""
        if record.name in self._readers:
            return
        reader = KafkaReader(record, self.store, self.catalog)
        first = not self.store.exists(record.name)
        reader.ensure_stream()
        if not self.holds(reader_unit(record.name)):
            return
        reader.start()
        self._readers[record.name] = reader
        if first:
            # The topic's history is copied before the first query plans, so that its default
            # seek_to='latest' means "messages from now on", as when reading the topic itself.
            try:
                await asyncio.wait_for(reader.caught_up.wait(), CATCH_UP_TIMEOUT)
            except TimeoutError:
                log.warning("kafka external stream %s: still copying the topic's history after %.0fs",
                            record.name, CATCH_UP_TIMEOUT)

    async def drop(self, name: str) -> None:
        """Stop reading ``name`` and drop its stream."""
        reader = self._readers.pop(name, None)
        if reader is not None:
            await reader.stop()
        if self.store.exists(name):
            self.store.drop(name)

    async def stop(self) -> None:
        for reader in self._readers.values():
            await reader.stop()
        self._readers.clear()
