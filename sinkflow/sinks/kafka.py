"""The ``kafka`` sink: every result row as one JSON document on a Kafka topic.

Works against Apache Kafka, Confluent Platform and Confluent Cloud through librdkafka
(confluent-kafka): PLAINTEXT, TLS, SASL PLAIN / SCRAM over TLS or not (:func:`librdkafka_config`).

Delivery guarantee:

* ``at_least_once`` (default): an idempotent producer (no duplicates from librdkafka's own
  retries, order kept per partition); ``flush(epoch)`` returns only when every message of the
  epoch has a successful delivery report. A failed epoch is written again by the runtime, so
  rows of an unacknowledged epoch may appear twice on the topic, never zero times.
* ``exactly_once``: a transactional producer with the stable ``transactional.id``
  ``sinkflow-<sink id>``. ``write`` only encodes; ``flush`` sends the epoch's messages as one
  transaction and commits it (a commit call that timed out is resumed), aborting it on any
  other failure, so an epoch abandoned before its flush never reaches the broker, and a
  restarted sink fences its previous incarnation (the broker aborts that one's open
  transaction). The transaction also commits the sink's
  progress, the output position (:meth:`WriteContext.row_number`) after its last row, as the
  offset of consumer group ``sinkflow-<sink id>`` on partition 0 of the topic (as Kafka
  Streams commits its input offsets). Rows the runtime replays after a crash that are
  already committed are recognised by their position and not sent again. A
  ``read_committed`` consumer sees every row exactly once, provided the broker hides aborted
  transactions from it (Kafka, Confluent, Redpanda do; Tansu 0.6.0 does not, and shows it the
  records of a transaction cut by a crash during its flush: docs/delivery.md). Every
  transactional call is bounded (:mod:`sinkflow.sinks.rdkafka`): a call that hangs fails the
  epoch retryably and the producer is replaced.

Messages go to librdkafka a batch at a time (:class:`~sinkflow.sinks.rdkafka.BatchProducer`: the
documents as one Arrow array, no Python object per message); the topic check and the committed
progress use confluent-kafka's clients. Enqueueing never waits and runs on the event loop;
librdkafka calls that block (a full queue, flushes, transactions, topic checks) run in worker
threads (``asyncio.to_thread``), one at a time: a worker thread outlives a cancelled task, and
``close()`` must not destroy the producer while a flush still runs in it. ``close()`` stops a
running flush instead of waiting out its delivery timeout: that flush fails the epoch
retryably. librdkafka's error callback (broker down, TLS handshake or
authentication failure) is surfaced in the raised error instead of waiting silently for
``message.timeout.ms``. The password never appears in an error message or a log line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

import certifi
import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from pydantic import Field, field_validator, model_validator

from sinkflow.errors import ConfigError
from sinkflow.sinks.base import PermanentError, RetryableError, Sink, SinkEnv, SinkError, WriteContext
from sinkflow.sinks.config import BatchPolicy, SinkConfig, StrList
from sinkflow.sinks.encode import column_texts, csv_line_array, json_document_array, row_dicts
from sinkflow.sinks.rdkafka import ANY_PARTITION, BatchProducer
from sinkflow.sinks.template import Template, TemplateText, check_columns
from sinkflow.sql.plan import KAFKA_METADATA_COLUMNS
from sinkflow.streams.types import TP_TIME

#: Timeplus's column for the message key of a Kafka external stream.
MESSAGE_KEY = KAFKA_METADATA_COLUMNS[0]

log = logging.getLogger(__name__)

T = TypeVar("T")

_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
# librdkafka's " (after 12ms in state CONNECT, 2 identical error(s) suppressed)": noise in a message.
_TIMING = re.compile(r" \(after \d+ms in state [A-Z_]+[^)]*\)")
_SASL_MECHANISMS = {"plain": "PLAIN", "scram-sha-256": "SCRAM-SHA-256", "scram-sha-512": "SCRAM-SHA-512"}

#: How long the sink waits for the brokers' first answer in ``open()``.
CONNECT_TIMEOUT = 15.0
#: With a connection error reported, how long flush waits without any delivery before giving up.
STALL_TIMEOUT = 5.0
#: librdkafka's own bound on a message's delivery (after it, the message fails).
MESSAGE_TIMEOUT_MS = 60_000
#: How long write() waits for room in librdkafka's local queue before failing the batch.
QUEUE_FULL_TIMEOUT = 30.0
#: Registering the producer (init_transactions), and committing an epoch (its progress and
#: the commit, resumed after a timeout while this lasts).
TRANSACTION_TIMEOUT = 30.0
#: Aborting a failed epoch's transaction: only tidiness, the next producer's init_transactions
#: aborts it anyway.
ABORT_TIMEOUT = 5.0

# Errors that no retry fixes: the configuration (credentials, certificates, permissions) is wrong.
_PERMANENT_CODES = frozenset(
    {
        KafkaError._AUTHENTICATION,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.TOPIC_EXCEPTION,
        KafkaError.POLICY_VIOLATION,
        KafkaError.INVALID_REPLICATION_FACTOR,
        KafkaError.INVALID_PARTITIONS,
        KafkaError.INVALID_CONFIG,
    }
)




def _is_permanent(code: int, message: str) -> bool:
    """Whether no retry can fix this error: credentials, certificates, permissions, sizes."""
    # A TLS error is permanent when the certificate is refused; a reset handshake is not.
    return code in _PERMANENT_CODES or (code == KafkaError._SSL and "certificate" in message)


class KafkaConfig(SinkConfig):
    """The ``kafka`` sink's properties: the spec's table plus what Kafka users expect
    (``message_key``, ``partitions``, ``replication_factor``, ``delivery_guarantee``, ``compression``,
    ``tls.ca_file``)."""

    brokers: StrList = Field(description="comma-separated broker list, e.g. kafka1:9092,kafka2:9092")
    topic: str = Field(description="topic to send to; created when absent")
    batch_count: int = Field(1000, ge=1, description="events per batch (one epoch)")
    data_type: Literal["json", "raw", "csv"] = Field(
        "json",
        description="encoding of each row: json, raw (the text of the query's one column as is), or csv "
        "(one CSV line, as ClickHouse writes it)",
    )
    sasl: Literal["none", "plain", "scram-sha-256", "scram-sha-512"] = Field("none", description="SASL mechanism")
    username: str | None = Field(None, description="SASL user name (Confluent Cloud: the API key)")
    password: str | None = Field(None, description="SASL password (Confluent Cloud: the API secret)")
    tls_disable: bool = Field(False, alias="tls.disable", description="true turns TLS off")
    tls_skip_verify_server: bool = Field(
        False, alias="tls.skip_verify_server", description="true skips server certificate verification"
    )
    tls_ca_file: str | None = Field(
        None, alias="tls.ca_file", description="PEM file of the CA that signed the brokers' certificates"
    )
    message_key: TemplateText = Field(
        None, description="message key: a column name, or a template such as '{{ .cid }}-{{ .time }}'"
    )
    partitions: int | None = Field(None, ge=1, description="partitions of a topic the sink creates (broker default)")
    replication_factor: int | None = Field(
        None, ge=1, description="replication factor of a topic the sink creates (broker default)"
    )
    delivery_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once", description="exactly_once uses Kafka transactions (consumers read_committed)"
    )
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "none", description="compression of the messages on the wire and on the brokers' disks"
    )

    secret_fields: ClassVar[tuple[str, ...]] = ("password",)
    template_fields: ClassVar[tuple[str, ...]] = ("message_key",)

    @field_validator("sasl", "data_type", "delivery_guarantee", "compression", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("brokers")
    @classmethod
    def _brokers(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one broker host:port is required, e.g. 'kafka1:9092'")
        for broker in value:
            if any(ch.isspace() for ch in broker):
                raise ValueError(f"'{broker}' is not a host:port")
        return value

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        if not _TOPIC_NAME.match(value) or value in (".", ".."):
            raise ValueError("a topic name is 1-249 characters among letters, digits, '.', '_' and '-'")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> KafkaConfig:
        if self.sasl != "none":
            for prop in ("username", "password"):
                if not getattr(self, prop):
                    raise ConfigError(prop, f"is required when sasl is '{self.sasl}'")
        if self.tls_ca_file is not None:
            if self.tls_disable:
                raise ConfigError("tls.ca_file", "cannot be used with tls.disable=true")
            if not os.path.isfile(self.tls_ca_file):
                raise ConfigError("tls.ca_file", f"no such file: {self.tls_ca_file}")
        return self

    def templates(self) -> dict[str, str]:
        """The message key as a template, a bare column name included (``cid`` as ``{{ .cid }}``),
        so that creation checks the column against the query's output like any template."""
        key = self.message_key
        if key and "{{" not in key and key.isidentifier():
            return {"message_key": f"{{{{ .{key} }}}}"}
        return super().templates()

    def batch_policy(self) -> BatchPolicy:
        """``batch_count`` rows per write (and per epoch), or what arrived within 100 ms."""
        return BatchPolicy(max_rows=self.batch_count, max_wait=0.1)


def librdkafka_config(config: KafkaConfig) -> dict[str, Any]:
    """The librdkafka connection and security settings for ``config``.

    ``sasl=none``: ``SSL``, or ``PLAINTEXT`` with ``tls.disable``; a SASL mechanism:
    ``SASL_SSL``, or ``SASL_PLAINTEXT`` with ``tls.disable``. With TLS, the server
    certificate is verified against ``tls.ca_file`` (default: the public CAs of certifi, as
    Confluent Cloud needs) unless ``tls.skip_verify_server`` turns verification off.
    """
    tls = not config.tls_disable
    conf: dict[str, Any] = {"bootstrap.servers": ",".join(config.brokers)}
    if config.sasl == "none":
        conf["security.protocol"] = "SSL" if tls else "PLAINTEXT"
    else:
        conf["security.protocol"] = "SASL_SSL" if tls else "SASL_PLAINTEXT"
        conf["sasl.mechanism"] = _SASL_MECHANISMS[config.sasl]
        conf["sasl.username"] = config.username
        conf["sasl.password"] = config.password
    if tls:
        if config.tls_skip_verify_server:
            conf["enable.ssl.certificate.verification"] = False
            conf["ssl.endpoint.identification.algorithm"] = "none"
        else:
            conf["enable.ssl.certificate.verification"] = True
            conf["ssl.endpoint.identification.algorithm"] = "https"
            conf["ssl.ca.location"] = config.tls_ca_file or certifi.where()
    return conf


@dataclass(frozen=True)
class _Incident:
    """One error librdkafka reported through its error callback."""

    code: int
    text: str
    at: float


#: How long the TLS probe of a broker waits for the TCP connection and for the handshake.
_TLS_PROBE_TIMEOUT = 2.0


def _plaintext_broker(brokers: Sequence[str]) -> str | None:
    """The first of ``brokers`` that accepts a TCP connection but no TLS handshake (a plain-text
    listener: it takes the ClientHello for a Kafka request and waits, or answers garbage), or
    None. librdkafka only says "brokers are down" in that case."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    for broker in brokers:
        host, _, port = broker.rpartition(":")
        try:
            raw = socket.create_connection((host.strip("[]"), int(port)), timeout=_TLS_PROBE_TIMEOUT)
        except (OSError, ValueError):
            continue  # really down (or not host:port): librdkafka's message says so
        try:
            with context.wrap_socket(raw, server_hostname=host.strip("[]")):
                continue  # TLS works: the problem is elsewhere
        except (ssl.SSLError, OSError):
            return broker
        finally:
            raw.close()
    return None


class _Scrubbed:
    """A logger for librdkafka's own log lines: password removed, at DEBUG level, because
    what matters in them also reaches the error callback, which is logged once per change."""

    def __init__(self, scrub: Callable[[str], str]) -> None:
        self._scrub = scrub

    def log(self, level: int, msg: str, *args: Any, **_: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("librdkafka: %s", self._scrub(msg % args if args else msg))


class KafkaSink(Sink):
    """One message per result row on ``topic``: a JSON document, with ``data_type`` raw the text
    of the query's one column, with csv one CSV line; see the module docstring for the guarantee.

    ``open()`` creates the topic when absent (PermanentError when the broker refuses) and
    starts the producer; ``write()`` enqueues; ``flush(epoch)`` waits for every delivery
    report (RetryableError while the brokers are unreachable, PermanentError for what no
    retry fixes) and, with ``exactly_once``, commits the epoch's transaction.
    """

    config_class = KafkaConfig
    config: KafkaConfig

    def __init__(self, config: KafkaConfig, env: SinkEnv) -> None:
        super().__init__(config, env)
        #: Timeplus's message key column, when it keys the messages, is no part of their values.
        self._key_in_value = config.message_key != MESSAGE_KEY
        columns = [name for name in env.output_schema.names
                   if name != TP_TIME and (self._key_in_value or name != MESSAGE_KEY)]
        if config.data_type == "raw" and len(columns) != 1:
            raise ConfigError("data_type", f"raw sends the text of one column; the query has {len(columns)}")
        self._key_column: str | None = None
        self._key_template: Template | None = None
        key = config.message_key
        if key is not None:
            columns = env.output_schema.names
            for prop, template in config.templates().items():
                check_columns(template, prop, columns)
            if "{{" in key:
                self._key_template = Template.parse(key)
            elif key in columns:
                self._key_column = key
            else:
                raise ConfigError("message_key", f"unknown column '{key}' (columns: {', '.join(columns)})")
        self._transactional = config.delivery_guarantee == "exactly_once"
        self._producer: BatchProducer | None = None
        self._incident: _Incident | None = None
        self._failures: list[KafkaError] = []
        self._in_transaction = False
        self._topic_checked = False
        #: The topic's partition count when the topic was checked (0: unknown), and the next
        #: partition a batch without message keys goes to.
        self._partitions = 0
        self._next_partition = 0
        #: at_least_once: messages enqueued since the last flush, and whether a failed write
        #: discarded some of them (the runtime retries only the failed batch: see _write).
        self._since_flush = 0
        self._dropped = False
        #: exactly_once: the epoch's encoded (documents, keys), produced in flush().
        self._pending: list[tuple[pa.Array, pa.Array | None]] = []
        #: exactly_once: the group whose committed offset is the sink's progress, and that progress.
        self._progress: Consumer | None = None
        self._next_row = 0
        self._epoch_end = 0
        #: Held by the worker thread of each blocking part: one at a time (see the module docstring).
        self._one_at_a_time = threading.Lock()
        #: close() was called: a flush waiting for deliveries gives up at once.
        self._closing = False

    # ------------------------------------------------------------------ protocol

    async def open(self) -> None:
        """Create the topic when absent and start the producer (and its transactions)."""
        self._closing = False
        await self._blocking(self._open)

    def encode(self, batch: pa.RecordBatch) -> tuple[pa.Array, pa.Array | None]:
        """The batch's messages: one JSON document per row (``raw``: the one column's text, null
        as empty; ``csv``: one CSV line of the columns but ``_tp_time``), and their keys (None
        without ``message_key``)."""
        keys = self._keys(batch)
        if not self._key_in_value and MESSAGE_KEY in batch.schema.names:
            batch = batch.drop_columns([MESSAGE_KEY])
        if self.config.data_type == "raw":
            column = batch.column(next(i for i, n in enumerate(batch.schema.names) if n != TP_TIME))
            values = pc.fill_null(column.cast(pa.string()), "").cast(pa.binary())
            # One array from offset 0, as the batch producer takes it.
            return pa.concat_arrays([values]), keys
        if self.config.data_type == "csv":
            values = batch.drop_columns([TP_TIME]) if TP_TIME in batch.schema.names else batch
            return csv_line_array(values), keys
        return json_document_array(batch), keys

    async def write(self, batch: pa.RecordBatch, ctx: WriteContext) -> None:
        """Encode the rows and enqueue one message per row (exactly_once: in the open
        transaction, skipping rows a committed transaction already sent).

        Enqueueing never waits, so it runs on the event loop; only while librdkafka's local
        queue is full does a worker thread wait for room.
        """
        if self._transactional:
            await self._keep(batch, ctx)
            return
        documents, keys = await self.encoding(batch, ctx)
        if self._producer is None or not self._topic_checked:
            await self._blocking(self._ready_producer)
        producer = self._producer
        assert producer is not None
        try:
            partition = self._partition(keys)
            try:
                enqueued = producer.produce(self.config.topic, documents, keys, partition)
            except KafkaException as exc:
                raise self._error(exc.args[0], "producing") from None
            if enqueued < len(documents):
                rest = None if keys is None else keys.slice(enqueued)
                await self._blocking(self._produce, producer, documents.slice(enqueued), rest, partition)
        except SinkError:
            # Discarding the producer also drops the messages of the earlier writes since the
            # last flush, which the runtime holds as written: that flush must fail, so that the
            # runtime writes them again.
            self._dropped = self._dropped or self._since_flush > 0
            await self._blocking(self._fail_epoch, producer)
            raise
        self._since_flush += len(documents)

    async def flush(self, epoch: int) -> None:
        """Return once every message since the last flush is delivered (exactly_once: committed).
        Raises RetryableError when close() is called meanwhile."""
        await self._blocking(self._flush)

    async def close(self) -> None:
        """Abort an uncommitted transaction, drop undelivered messages and release the producer.

        A flush running in its worker thread (its task may be cancelled already) gives up and
        fails its epoch first: the producer is released only after every call on it returned."""
        self._closing = True
        await self._blocking(self._close)

    async def _blocking(self, part: Callable[..., T], *args: Any) -> T:
        """``part(*args)`` in a worker thread, once no other blocking part of this sink runs."""
        def alone() -> T:
            with self._one_at_a_time:
                return part(*args)

        return await asyncio.to_thread(alone)

    # ------------------------------------------------------------------ blocking parts (worker threads)

    def _open(self) -> None:
        self._ensure_topic()
        self._producer = self._new_producer()
        if self._transactional:
            self._progress = Consumer({**self._common_config(), "group.id": self._transactional_id(),
                                       "enable.auto.commit": False, "isolation.level": "read_committed"})
            self._next_row = self._committed_progress()

    async def _keep(self, batch: pa.RecordBatch, ctx: WriteContext) -> None:
        """exactly_once: keep the batch's messages for the epoch's transaction. Rows at positions
        the sink committed before (a replay after a crash) are skipped."""
        fresh: Sequence[int]
        if ctx.row_ids is None and ctx.row_number(0) >= self._next_row:
            fresh = range(batch.num_rows)  # the usual case, without a look at every row
        else:
            fresh = [i for i in range(batch.num_rows) if ctx.row_number(i) >= self._next_row]
        if not fresh:
            return
        if len(fresh) == batch.num_rows:
            messages = await self.encoding(batch, ctx)
        else:  # the encoding ahead is of the whole batch
            messages = await self.encoding(batch.take(pa.array(fresh)))
        # The epoch's transaction is opened, filled and committed in flush(): an epoch
        # abandoned before its flush (a crash, a close) never reaches the broker at all, which
        # does not rely on the broker filtering aborted transactions for read_committed readers.
        self._pending.append(messages)
        self._epoch_end = max(self._epoch_end, ctx.row_number(fresh[-1]) + 1)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        dropped, self._dropped, self._since_flush = self._dropped, False, 0
        if dropped:
            if self._producer is not None:
                self._fail_epoch(self._producer)
            raise RetryableError(
                f"kafka topic '{self.config.topic}': messages written since the last flush were dropped "
                "after a failed write; the epoch is sent again"
            )
        if self._transactional and not pending:
            return
        producer = self._ready_producer() if pending else self._producer
        if producer is None:
            return
        try:
            if pending:
                self._call(producer.begin_transaction)
                self._in_transaction = True
                for documents, keys in pending:
                    self._produce(producer, documents, keys, self._partition(keys))
            self._await_deliveries(producer)
            failures, self._failures = self._failures, []
            if failures:
                raise self._classify(failures)
            if self._in_transaction:
                self._commit(producer)
            self._incident = None  # delivered: earlier broker trouble is over
        except SinkError:
            self._fail_epoch(producer)
            raise

    def _commit(self, producer: BatchProducer) -> None:
        """Commit the epoch's messages together with the sink's new progress, within
        TRANSACTION_TIMEOUT. A call that timed out is called again (librdkafka resumes it), not
        the transaction aborted: an aborted epoch is sent again, and a broker that shows aborted
        records to read_committed consumers (Tansu) would show its rows twice."""
        deadline = time.monotonic() + TRANSACTION_TIMEOUT
        self._resumed(deadline, producer.send_offsets_to_transaction, self.config.topic, 0, self._epoch_end,
                      self._transactional_id())
        self._resumed(deadline, producer.commit_transaction)
        self._in_transaction = False
        self._next_row = self._epoch_end

    def _resumed(self, deadline: float, method: Callable[..., None], *args: Any) -> None:
        """``method(*args, timeout)``, called again after a retriable timeout until ``deadline``;
        its failure as a SinkError."""
        while True:
            try:
                method(*args, max(deadline - time.monotonic(), 1.0))
                return
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if (error.retriable() and not error.fatal() and not error.txn_requires_abort()
                        and time.monotonic() < deadline):
                    log.info("kafka sink %s: %s", self.env.sink_name, self._scrub(error.str()))
                    time.sleep(0.1)
                    continue
                raise self._transaction_error(error, method) from None

    def _committed_progress(self) -> int:
        """The output position after the last row a committed transaction of this sink sent."""
        assert self._progress is not None
        try:
            [position] = self._progress.committed([TopicPartition(self.config.topic, 0)], timeout=CONNECT_TIMEOUT)
        except KafkaException as exc:
            raise self._error(exc.args[0], "reading the sink's committed progress") from None
        return max(position.offset, 0)  # no commit yet: a negative "invalid offset"

    def _transactional_id(self) -> str:
        return f"sinkflow-{self.env.sink_id}"

    def _ready_producer(self) -> BatchProducer:
        """The producer, after re-checking the topic when an epoch failed since (the topic may be
        gone, or the broker replaced), and a new producer when the last one was discarded."""
        if not self._topic_checked:
            self._ensure_topic()
        if self._producer is None:
            self._producer = self._new_producer()
        return self._producer

    def _produce(self, producer: BatchProducer, documents: pa.Array, keys: pa.Array | None, partition: int) -> None:
        """Enqueue one message per document; waits for room while librdkafka's queue is full."""
        try:
            producer.produce_all(self.config.topic, documents, keys, QUEUE_FULL_TIMEOUT, partition)
        except BufferError:
            raise self._unreachable("the local queue stayed full") from None
        except KafkaException as exc:
            raise self._error(exc.args[0], "producing") from None

    def _close(self) -> None:
        self._pending = []
        self._since_flush, self._dropped = 0, False
        progress, self._progress = self._progress, None
        if progress is not None:
            progress.close()
        producer, self._producer = self._producer, None
        if producer is None:
            return
        in_transaction, self._in_transaction = self._in_transaction, False
        try:
            if not producer.hung:
                if self._transactional and in_transaction:
                    producer.abort_transaction(ABORT_TIMEOUT)
                producer.purge()
                producer.flush(1.0)  # collect the purge reports so the producer can be destroyed
        except KafkaException as exc:
            log.info("kafka sink %s: abort on close failed: %s", self.env.sink_name, self._scrub(str(exc)))
        producer.close()

    # ------------------------------------------------------------------ helpers

    def _client_config(self) -> dict[str, Any]:
        """librdkafka settings shared by the producer and confluent-kafka's admin and consumer."""
        return {
            **librdkafka_config(self.config),
            "client.id": f"sinkflow-{self.env.sink_name}",
            "socket.connection.setup.timeout.ms": 10_000,
            "reconnect.backoff.max.ms": 1_000,
        }

    def _common_config(self) -> dict[str, Any]:
        """A confluent-kafka client's configuration: the settings plus its Python callbacks."""
        return {**self._client_config(), "error_cb": self._on_error, "logger": _Scrubbed(self._scrub)}

    def _new_producer(self) -> BatchProducer:
        conf = {
            **self._client_config(),
            "enable.idempotence": True,
            "acks": "all",
            # Requests are full anyway (a write enqueues a whole batch to one partition), so a
            # short linger only lets the broker work while the next batches are encoded; a long
            # one left it idle until the flush (measured on Tansu: 50 -> 5 ms, +20% rows/s).
            "linger.ms": 5,
            "message.timeout.ms": MESSAGE_TIMEOUT_MS,
            "compression.type": self.config.compression,
        }
        if self._transactional:
            conf["transactional.id"] = self._transactional_id()
            conf["transaction.timeout.ms"] = MESSAGE_TIMEOUT_MS
        logger = _Scrubbed(self._scrub)
        try:
            # Only failed deliveries are reported: flush() waiting for the queue to drain is the
            # acknowledgement, which keeps Python out of the per-message path.
            producer = BatchProducer(conf, self._on_error, lambda _level, facility, line: logger.log(
                logging.DEBUG, "%s %s", facility, line), self._on_delivery)
        except KafkaException as exc:
            raise PermanentError(f"kafka producer: {self._scrub(str(exc.args[0].str()))}") from None
        if self._transactional:
            # Fences any earlier producer with the same transactional.id and aborts its open transaction.
            try:
                self._call(producer.init_transactions, TRANSACTION_TIMEOUT)
            except SinkError:
                producer.close()
                raise
        return producer

    def _ensure_topic(self) -> None:
        """Create the topic when the cluster does not have it; raise when the brokers can't say or refuse."""
        admin = AdminClient(self._common_config())
        topic = self.config.topic
        started = time.monotonic()
        while True:
            try:
                metadata = admin.list_topics(timeout=1.0)
                break
            except KafkaException as exc:
                admin.poll(0)  # serve the error callback: it says why (refused, TLS, authentication)
                incident = self._incident
                if incident is not None and _is_permanent(incident.code, incident.text) and incident.at >= started:
                    raise PermanentError(f"kafka brokers {self._brokers()}: {incident.text}") from None
                if self._stalled(started) or time.monotonic() - started >= CONNECT_TIMEOUT:
                    if not self.config.tls_disable and (plain := _plaintext_broker(self.config.brokers)):
                        raise RetryableError(f"kafka broker {plain}: TLS handshake failed: is the broker plain text? "
                                             "set tls.disable=true") from None
                    detail = incident.text if incident is not None else exc.args[0].str()
                    raise RetryableError(f"kafka brokers {self._brokers()} unreachable: {detail}") from None
        if topic not in metadata.topics:
            new_topic = NewTopic(topic, self.config.partitions or -1, self.config.replication_factor or -1)
            future = admin.create_topics([new_topic], operation_timeout=10.0, request_timeout=CONNECT_TIMEOUT)[topic]
            try:
                future.result()
                log.info("kafka sink %s: created topic %s", self.env.sink_name, topic)
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    err = self._error(error, f"creating topic '{topic}'")
                    raise type(err)(f"the broker refused to create topic '{topic}': {self._scrub(error.str())}") from None
            try:
                metadata = admin.list_topics(topic=topic, timeout=CONNECT_TIMEOUT)
            except KafkaException:
                pass  # the count below stays unknown: librdkafka's partitioner chooses
        found = metadata.topics.get(topic)
        self._partitions = len(found.partitions) if found is not None and found.error is None else 0
        self._topic_checked = True

    def _partition(self, keys: pa.Array | None) -> int:
        """Where a batch's messages go: keyed ones where librdkafka's partitioner puts their key;
        a batch without keys all to one partition, the next batch to the next partition.

        Spreading batches instead of messages is what librdkafka's sticky partitioner does over
        time; naming the partition spares it choosing one per message (measured: half the
        enqueueing cost, and fewer requests for the broker).
        """
        if keys is not None or not self._partitions:
            return ANY_PARTITION
        partition = self._next_partition % self._partitions
        self._next_partition += 1
        return partition

    def _keys(self, batch: pa.RecordBatch) -> pa.Array | None:
        """Each row's message key as :func:`text` prints the key column (or the rendered template),
        as binary values; None without a key; a null key column value is a null key."""
        if self._key_column is not None:
            column = batch.column(self._key_column)
            if pa.types.is_dictionary(column.type):
                column = column.dictionary_decode()
            typ = column.type
            if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ) \
                    or pa.types.is_integer(typ):
                # Text as Timeplus prints it is Arrow's own for these: no Python object per row.
                return column.cast(pa.string())
            return pa.array([None if v is None else v.encode() for v in column_texts(column)], pa.binary())
        if self._key_template is not None:
            return pa.array([self._key_template.render(row).encode() for row in row_dicts(batch)], pa.binary())
        return None

    def _await_deliveries(self, producer: BatchProducer) -> None:
        """Wait until librdkafka has a delivery report for every message; raise RetryableError
        when the brokers are reported unreachable and nothing was delivered for STALL_TIMEOUT, or
        when close() is called meanwhile."""
        remaining = len(producer)
        last_progress = time.monotonic()
        while remaining:
            if self._closing:
                raise RetryableError(f"kafka topic '{self.config.topic}': the sink was closed with {remaining} "
                                     "message(s) undelivered")
            now_remaining = producer.flush(0.2)
            now = time.monotonic()
            if now_remaining < remaining:
                remaining, last_progress = now_remaining, now
                continue
            if self._stalled(last_progress):
                raise self._unreachable(f"{remaining} message(s) undelivered")
            remaining = now_remaining

    def _stalled(self, since: float) -> bool:
        """Nothing happened since ``since`` for STALL_TIMEOUT while librdkafka keeps reporting errors."""
        now, incident = time.monotonic(), self._incident
        return now - since >= STALL_TIMEOUT and incident is not None and now - incident.at <= STALL_TIMEOUT

    def _unreachable(self, what: str) -> SinkError:
        incident = self._incident
        detail = f": {incident.text}" if incident is not None else ""
        if incident is not None and _is_permanent(incident.code, incident.text):
            return PermanentError(f"kafka brokers {self._brokers()}{detail}")
        return RetryableError(f"kafka brokers {self._brokers()} unreachable ({what}){detail}")

    def _fail_epoch(self, producer: BatchProducer) -> None:
        """Forget the failed epoch: abort its transaction or drop its undelivered messages, and
        discard the producer.

        Dropping the messages keeps a retry of the epoch from adding yet another copy. A fresh
        producer on the next write starts from a clean idempotence state (a purged or fatal
        idempotent producer may otherwise wait for a broker that forgot it).
        """
        self._topic_checked = False
        self._producer = None
        self._epoch_end = self._next_row
        in_transaction, self._in_transaction = self._in_transaction, False
        self._failures = []
        try:
            if producer.hung:
                pass  # it refuses every call; its successor fences it
            elif self._transactional and in_transaction:
                producer.abort_transaction(ABORT_TIMEOUT)
            else:
                producer.purge()
                producer.flush(0.5)
        except KafkaException as exc:
            log.info("kafka sink %s: cleanup after a failed epoch: %s", self.env.sink_name, self._scrub(str(exc)))
        producer.close()

    def _call(self, method: Callable[..., None], *args: Any) -> None:
        """A transactional call; its KafkaException becomes a SinkError."""
        try:
            method(*args)
        except KafkaException as exc:
            raise self._transaction_error(exc.args[0], method) from None

    def _transaction_error(self, error: KafkaError, method: Callable[..., None]) -> SinkError:
        doing = method.__name__.replace("_", " ")
        return self._fatal(error, doing) if error.fatal() else self._error(error, doing)

    def _fatal(self, error: KafkaError, doing: str) -> SinkError:
        """A producer in a fatal state (fenced, a broker that forgot its producer id, or a call
        that hung) is retryable: the failed epoch discards it and the retry starts a new one,
        whose init_transactions fences the old one."""
        return RetryableError(f"kafka {doing}: {self._scrub(error.str())}; the producer is restarted")

    def _classify(self, failures: list[KafkaError]) -> SinkError:
        first = failures[0]
        err = self._error(first, "delivery")
        return type(err)(f"{len(failures)} message(s) not delivered to topic '{self.config.topic}': {err.message}")

    def _error(self, error: KafkaError, doing: str) -> SinkError:
        text_ = self._scrub(error.str())
        incident = self._incident
        if error.code() in (KafkaError._MSG_TIMED_OUT, KafkaError._TIMED_OUT, KafkaError._TRANSPORT) and incident:
            text_ = f"{text_} ({incident.text})"  # the broker-level cause, e.g. a TLS handshake failure
        if _is_permanent(error.code(), text_):
            return PermanentError(f"kafka {doing}: {text_}")
        return RetryableError(f"kafka {doing}: {text_}")

    def _on_error(self, error: KafkaError) -> None:
        """librdkafka's error callback: remember the latest broker-level problem, for messages."""
        previous, now = self._incident, time.monotonic()
        if error.code() == KafkaError._ALL_BROKERS_DOWN and previous is not None:
            # "1/1 brokers are down" says less than the connection error that preceded it.
            self._incident = _Incident(previous.code, previous.text, now)
            return
        self._incident = _Incident(error.code(), self._scrub(_TIMING.sub("", error.str())), now)
        if previous is None or previous.text != self._incident.text:  # librdkafka repeats itself every reconnect
            log.warning("kafka sink %s: %s", self.env.sink_name, self._incident.text)

    def _on_delivery(self, error: KafkaError) -> None:
        """A message that failed. Purged ones belong to an epoch already failed and discarded."""
        if error.code() not in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
            self._failures.append(error)

    def _brokers(self) -> str:
        return ",".join(self.config.brokers)

    def _scrub(self, message: str) -> str:
        password = self.config.password
        # A very short password is not scrubbed: replacing every "p" would garble the message.
        return message.replace(password, "***") if password and len(password) >= 4 else message
