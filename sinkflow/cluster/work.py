"""Which sinks this node runs: the partitions Kafka's consumer group gives it.

Every node subscribes to the work topic (``work_partitions`` partitions, never written to) in one
consumer group. A sink belongs to the partition its id hashes to; the node holding that
partition runs the sink. Kafka's group coordinator decides: a node that joins takes a share, a
node that leaves gives its share back at once, and one that dies (``kill -9``) loses it after
the session timeout. The group uses the eager protocol, so partitions are revoked from every
member before any is assigned again: :func:`on_revoke` stops the sinks before returning, and no
sink ever runs on two nodes of a healthy group.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from sinkflow.cluster.settings import ClusterSettings

log = logging.getLogger("sinkflow.cluster")


class WorkGroup:
    """This node's membership in the workers' group. ``owned`` is the set of partitions it holds.

    ``on_assign(partitions)`` is called after an assignment; ``on_revoke()`` must stop every
    sink of the revoked partitions before it returns (both on the group's thread)."""

    def __init__(self, settings: ClusterSettings, on_assign: Callable[[frozenset[int]], None],
                 on_revoke: Callable[[], None]) -> None:
        self.settings = settings
        self.owned: frozenset[int] = frozenset()
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._consumer = Consumer({
            **settings.kafka_config(), "group.id": settings.group, "client.id": f"sinkflow-{settings.node_id}",
            "enable.auto.commit": False,
            "session.timeout.ms": settings.session_timeout_ms, "heartbeat.interval.ms": settings.heartbeat_interval_ms,
            "partition.assignment.strategy": "roundrobin",
        })
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cluster-work", daemon=True)

    def start(self) -> None:
        self._consumer.subscribe([self.settings.work_topic], on_assign=self._assigned, on_revoke=self._revoked,
                                 on_lost=self._revoked)
        self._thread.start()

    def close(self) -> None:
        """Leave the group: the other nodes take this node's sinks at once."""
        self._stop.set()
        self._thread.join(timeout=10.0)
        self._consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._consumer.poll(0.2)
            except KafkaException as exc:
                log.warning("cluster: workers' group: %s", exc)

    def _assigned(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        self.owned = frozenset(p.partition for p in partitions)
        log.info("cluster: node %s holds %d of %d work partitions", self.settings.node_id, len(self.owned),
                 self.settings.work_partitions)
        self._on_assign(self.owned)

    def _revoked(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        self.owned = frozenset()
        self._on_revoke()
