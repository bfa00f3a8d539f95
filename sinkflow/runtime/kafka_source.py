"""Kafka external streams as sources: the topic read into a stream of the same name.

``SELECT raw, … FROM kafka_ext`` and materialized views over it plan against a sinkflow stream
named like the external stream, whose rows this reader appends from the topic: the external
stream's columns decoded from each message (``data_format`` JSONEachRow, CSV or RawBLOB),
``_tp_time`` from the message timestamp, and ``_tp_message_key``. The reader starts the first
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
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from typing import Any

import pyarrow as pa
import pyarrow.json as pajson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from sinkflow.catalog import Catalog, ExternalStreamRecord
from sinkflow.sinks import external_settings, registry
from sinkflow.sinks.kafka import KafkaConfig, librdkafka_config
from sinkflow.streams.store import StreamSettings, StreamStore
from sinkflow.streams.types import TP_TIME, TP_TIME_TYPE, Column, parse_type

log = logging.getLogger("sinkflow.runtime.kafka_source")

#: The message key as a column of the stream (Timeplus's virtual column of the same name).
MESSAGE_KEY = "_tp_message_key"
_BATCH = 20_000
_POLL = 0.2
_RETRY = 1.0
#: How long the first read of an external stream waits for the topic's history to be copied.
CATCH_UP_TIMEOUT = 60.0


def _columns(record: ExternalStreamRecord) -> list[Column]:
    return [Column(name, parse_type(type_name)) for name, type_name in record.columns]


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

    def decode(self, values: list[bytes], keys: list[bytes | None], times: list[int | None]) -> pa.RecordBatch:
        """Decode ``values`` (messages in order). A message that does not decode becomes a row
        of nulls, which the stream stores as the columns' defaults (zero values, empty text)."""
        try:
            table = self._values(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError, ValueError):
            # One bad message spoils a decode of the whole poll: decode them one by one.
            parts = []
            for value in values:
                try:
                    parts.append(self._values([value]))
                except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError, ValueError):
                    parts.append(pa.table([pa.nulls(1, f.type) for f in self.schema], schema=self.schema))
            table = pa.concat_tables(parts)
        key_array = pa.array([k.decode("utf-8", "replace") if k is not None else "" for k in keys], pa.string())
        time_array = pa.array(times, pa.int64()).cast(TP_TIME_TYPE.arrow)
        table = table.append_column(MESSAGE_KEY, key_array).append_column(TP_TIME, time_array)
        return table.combine_chunks().to_batches()[0]

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

    def __init__(self, record: ExternalStreamRecord, store: StreamStore, catalog: Catalog) -> None:
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
        """Create the stream the messages are appended to, when absent."""
        if not self.store.exists(self.record.name):
            columns = [*self.decoder.columns, Column(MESSAGE_KEY, parse_type("string"))]
            self.store.create(self.record.name, columns,
                              StreamSettings(description=f"read from Kafka topic {self.topic}"))

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
                        self._append(messages)
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
        values: list[bytes] = []
        keys: list[bytes | None] = []
        times: list[int | None] = []
        offsets: dict[int, int] = {}
        for message in messages:
            if message.error() is not None:
                log.warning("kafka external stream %s: %s", self.record.name, message.error())
                continue
            values.append(message.value() or b"")
            keys.append(message.key())
            stamp = message.timestamp()[1]
            times.append(stamp if stamp >= 0 else None)  # no timestamp: the stream uses the ingest time
            offsets[message.partition()] = message.offset() + 1
        if not values:
            return
        self.store.get(self.record.name).append_batch(self.decoder.decode(values, keys, times))
        self.catalog.set_kafka_offsets(self.record.name, offsets)


class KafkaSources:
    """The readers of a server's Kafka external streams, started on first use."""

    def __init__(self, store: StreamStore, catalog: Catalog) -> None:
        self.store = store
        self.catalog = catalog
        self._readers: dict[str, KafkaReader] = {}

    async def start(self, externals: dict[str, ExternalStreamRecord]) -> None:
        """Resume the readers of external streams that were read before (their stream exists)."""
        for record in externals.values():
            if record.type == "kafka" and self.store.exists(record.name):
                await self.ensure(record)

    async def ensure(self, record: ExternalStreamRecord) -> None:
        """Start reading ``record``'s topic into its stream (once; later calls do nothing).

        Raises :class:`SettingError` when the external stream cannot be read (no columns)."""
        if record.name in self._readers:
            return
        reader = KafkaReader(record, self.store, self.catalog)
        first = not self.store.exists(record.name)
        reader.ensure_stream()
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
