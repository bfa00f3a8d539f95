"""A node's Kafka clients: one producer, one consumer following every topic the node replicates.

:meth:`Replica.publish` returns only once the message is acknowledged by Kafka (``acks=all``)
*and* this node's consumer has applied it, so a node always reads its own writes, and the
value the topic's handler returned for that message comes back to the caller (a stream append
gets its sequence number this way). Each followed topic is read from its beginning, in order,
by one thread; handlers run on that thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from sinkflow.cluster.settings import ClusterSettings
from sinkflow.errors import SinkflowError

log = logging.getLogger("sinkflow.cluster")

#: Called with each message of a followed topic, on the replica's thread; its return value goes
#: to the publisher of that message.
Handler = Callable[[Message], Any]

_ID = "sinkflow-id"
_SYNC = b"__sync__"
#: Large enough for an engine snapshot or a big ingest batch in one message.
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
PUBLISH_TIMEOUT = 30.0


class ClusterUnavailable(SinkflowError, ConnectionError):
    """Kafka did not take a write of the cluster's (unreachable, refusing, or too slow). Retryable:
    the runtime retries a pipeline that meets it; the API answers 503."""

    code = "CLUSTER_UNAVAILABLE"
    status = 503


@dataclass
class _Waiter:
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


@dataclass(frozen=True)
class Outgoing:
    """One message to produce: to ``partition`` of ``topic`` (-1: the partitioner's choice)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    partition: int = -1


def _refused(waiter: _Waiter, topic: str) -> Callable[[KafkaError | None, Message], None]:
    """The delivery report of one produced message: a refusal ends its wait with the error."""

    def delivered(error: KafkaError | None, _: Message) -> None:
        if error is not None:
            waiter.error = ClusterUnavailable(f"cluster: Kafka refused a write to '{topic}': {error.str()}")
            waiter.done.set()

    return delivered


def header(message: Message, name: str) -> bytes | None:
    """The value of header ``name`` of ``message``, or None."""
    for key, value in message.headers() or ():
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


class Replica:
    """The producer and the following consumer of one node. Start with :meth:`start`."""

    def __init__(self, settings: ClusterSettings) -> None:
        self.settings = settings
        conf = settings.kafka_config()
        self._admin = AdminClient(conf)
        self._producer = Producer({
            **conf, "acks": "all", "enable.idempotence": True, "linger.ms": 1,
            "message.max.bytes": MAX_MESSAGE_BYTES, "compression.type": "lz4",
            "client.id": f"sinkflow-{settings.node_id}",
            # A stream's new topic is written to at once: learn its leader in milliseconds, not a second.
            "topic.metadata.refresh.fast.interval.ms": 20,
        })
        self._consumer = Consumer({
            **conf, "group.id": f"{settings.name}.replica.{settings.node_id}.{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False, "auto.offset.reset": "earliest", "fetch.wait.max.ms": 5,
            "fetch.message.max.bytes": MAX_MESSAGE_BYTES, "client.id": f"sinkflow-{settings.node_id}",
            # The first fetch of a just-created topic fails: retry it after 20 ms (default 500 ms).
            "topic.metadata.refresh.fast.interval.ms": 20, "fetch.error.backoff.ms": 20,
        })
        self._handlers: dict[str, Handler] = {}
        self._assignments: queue.SimpleQueue[tuple[bool, str, int]] = queue.SimpleQueue()
        self._waiters: dict[bytes, _Waiter] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._consume, name="cluster-replica", daemon=True),
                         threading.Thread(target=self._deliver, name="cluster-producer", daemon=True)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        """Stop following; flush what was produced (a few seconds at most)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5.0)
        self._producer.flush(5.0)
        self._consumer.close()

    # -- topics ------------------------------------------------------------------------------

    def ensure_topic(self, topic: str, partitions: int = 1, config: dict[str, str] | None = None) -> None:
        """Create ``topic`` unless it exists. Raises :class:`ClusterUnavailable` when Kafka cannot be
        reached or refuses."""
        futures = self._admin.create_topics([NewTopic(topic, partitions, -1, config=config or {})],
                                            operation_timeout=10.0, request_timeout=15.0)
        try:
            futures[topic].result()
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise ClusterUnavailable(f"cluster: cannot create topic '{topic}' on {self.settings.bootstrap}: "
                                     f"{error.str()}") from None

    def partition_count(self, topic: str) -> int:
        """How many partitions ``topic`` has. Raises :class:`ClusterUnavailable` when Kafka can't say."""
        try:
            found = self._admin.list_topics(topic=topic, timeout=15.0).topics.get(topic)
        except KafkaException as exc:
            raise ClusterUnavailable(f"cluster: cannot read topic '{topic}' on {self.settings.bootstrap}: "
                                     f"{exc.args[0].str()}") from None
        if found is None or found.error is not None or not found.partitions:
            raise ClusterUnavailable(f"cluster: topic '{topic}' has no partitions on {self.settings.bootstrap}")
        return len(found.partitions)

    def follow(self, topic: str, handler: Handler, partitions: int = 1) -> None:
        """Apply every message of ``topic`` (its first ``partitions`` partitions), from its
        beginning, with ``handler``: in offset order within a partition, in no set order across
        partitions."""
        with self._lock:
            self._handlers[topic] = handler
        self._assignments.put((True, topic, partitions))

    def unfollow(self, topic: str, partitions: int = 1) -> None:
        with self._lock:
            self._handlers.pop(topic, None)
        self._assignments.put((False, topic, partitions))

    # -- writing -----------------------------------------------------------------------------

    def publish(self, topic: str, key: bytes | None, value: bytes | None,
                headers: list[tuple[str, bytes]] | None = None, timeout: float = PUBLISH_TIMEOUT) -> Any:
        """Produce, then wait until Kafka acknowledged and this node applied the message; return
        what ``topic``'s handler returned for it.

        Raises :class:`ClusterUnavailable` when Kafka refuses or does not answer within ``timeout``,
        and what the handler raised."""
        return self.publish_many([Outgoing(topic, key, value, headers or [])], timeout)[0]

    def publish_many(self, messages: list[Outgoing], timeout: float = PUBLISH_TIMEOUT) -> list[Any]:
        """:meth:`publish` for several messages at once (produced together, awaited together);
        return what the handlers returned, in the order of ``messages``.

        Raises as :meth:`publish` (the first failure; the others may still have been written)."""
        waiters = [(uuid.uuid4().hex.encode(), _Waiter()) for _ in messages]
        with self._lock:
            self._waiters.update(waiters)
        try:
            for message, (message_id, waiter) in zip(messages, waiters, strict=True):
                self._producer.produce(message.topic, message.value, message.key,
                                       partition=message.partition, headers=[(_ID, message_id), *message.headers],
                                       on_delivery=_refused(waiter, message.topic))
            deadline = time.monotonic() + timeout
            for message, (_, waiter) in zip(messages, waiters, strict=True):
                if not waiter.done.wait(max(0.0, deadline - time.monotonic())):
                    raise ClusterUnavailable(f"cluster: no answer from Kafka ({self.settings.bootstrap}) within "
                                             f"{timeout:.0f}s writing to '{message.topic}'")
        finally:
            with self._lock:
                for message_id, _ in waiters:
                    self._waiters.pop(message_id, None)
        for _, waiter in waiters:
            if waiter.error is not None:
                raise waiter.error
        return [waiter.result for _, waiter in waiters]

    def send(self, topic: str, key: bytes, value: bytes | None) -> None:
        """Produce without waiting (heartbeats: a lost one is replaced by the next)."""
        self._producer.produce(topic, value, key)

    def sync(self, topic: str, timeout: float = PUBLISH_TIMEOUT, partitions: int = 1) -> None:
        """Return once everything written to ``topic`` (its first ``partitions`` partitions) before
        this call has been applied here."""
        self.publish_many([Outgoing(topic, _SYNC, b"", partition=p) for p in range(partitions)], timeout)

    # -- threads -----------------------------------------------------------------------------

    def _deliver(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def _consume(self) -> None:
        while not self._stop.is_set():
            self._apply_assignments()
            try:
                # poll returns at the first message (consume would wait for all 500 or the
                # timeout); what else has arrived is then taken without waiting.
                first = self._consumer.poll(0.05)
                messages = [] if first is None else [first, *self._consumer.consume(num_messages=500, timeout=0)]
            except KafkaException as exc:
                log.warning("cluster: reading from Kafka: %s", exc)
                continue
            for message in messages:
                self._dispatch(message)

    def _apply_assignments(self) -> None:
        while not self._assignments.empty():
            add, topic, count = self._assignments.get()
            partitions = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(count)]
            try:
                if add:
                    self._consumer.incremental_assign(partitions)
                else:
                    self._consumer.incremental_unassign(partitions)
            except KafkaException as exc:
                log.warning("cluster: %s topic %s: %s", "following" if add else "leaving", topic, exc)

    def _dispatch(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("cluster: reading %s: %s", message.topic(), error.str())
            return
        with self._lock:
            handler = self._handlers.get(message.topic())
        result: Any = None
        failure: BaseException | None = None
        if message.key() != _SYNC and handler is not None:
            try:
                result = handler(message)
            except Exception as exc:  # one bad record must not stop replication
                log.exception("cluster: applying a record of %s failed", message.topic())
                failure = exc
        message_id = header(message, _ID)
        if message_id is None:
            return
        with self._lock:
            waiter = self._waiters.get(message_id)
        if waiter is not None:
            waiter.result, waiter.error = result, failure
            waiter.done.set()
