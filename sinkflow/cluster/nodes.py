"""The nodes of the cluster as they describe themselves: one heartbeat a second per node.

Each node writes its heartbeat (address, start time, the sinks it runs and their status) to the
compacted nodes topic under its id, and a tombstone when it stops cleanly; every node follows the
topic. A node whose last heartbeat is older than the group's session timeout is shown as not
alive (by then Kafka has given its sinks to others). Heartbeats inform the API only; which node
runs a sink is decided by the workers' consumer group (:mod:`sinkflow.cluster.work`).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message

from sinkflow.cluster.replica import Replica


@dataclass(frozen=True)
class NodeInfo:
    """One node's last heartbeat. ``sinks`` maps the id of each sink it runs to its status."""

    id: str
    address: str
    started_at: float
    seen_at: float
    sinks: dict[str, dict[str, Any]]

    def alive(self, session_timeout: float) -> bool:
        return time.time() - self.seen_at <= session_timeout

    def to_dict(self, session_timeout: float) -> dict[str, Any]:
        """The node as the API shows it; ``heartbeat_age_s`` is measured here (this node's clock
        against the heartbeat's Kafka timestamp, as ``alive`` is), so a console in a browser
        needs no clock of its own to say how late a node is."""
        return {"id": self.id, "address": self.address, "alive": self.alive(session_timeout),
                "started_at": self.started_at, "last_heartbeat_at": self.seen_at,
                "heartbeat_age_s": round(max(0.0, time.time() - self.seen_at), 1), "sinks": sorted(self.sinks)}


class NodeDirectory:
    """Every node's latest heartbeat, kept from the nodes topic."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self.topic = replica.settings.nodes_topic
        self.session_timeout = replica.settings.session_timeout_ms / 1000
        self._nodes: dict[str, NodeInfo] = {}
        self._lock = threading.Lock()

    def beat(self, address: str, started_at: float, sinks: dict[str, dict[str, Any]]) -> None:
        """Publish this node's heartbeat (without waiting for Kafka)."""
        node = self.replica.settings.node_id
        body = {"id": node, "address": address, "started_at": started_at, "sinks": sinks}
        self.replica.send(self.topic, node.encode(), json.dumps(body).encode())

    def leave(self) -> None:
        """Remove this node from the directory (a clean stop); returns once Kafka acknowledged."""
        self.replica.publish(self.topic, self.replica.settings.node_id.encode(), None, timeout=5.0)

    def nodes(self) -> list[NodeInfo]:
        with self._lock:
            return sorted(self._nodes.values(), key=lambda n: n.id)

    def runner(self, sink_id: str) -> tuple[str, dict[str, Any]] | None:
        """The live node that last said it runs ``sink_id``, and the status it reported."""
        for node in self.nodes():
            if sink_id in node.sinks and node.alive(self.session_timeout):
                return node.id, node.sinks[sink_id]
        return None

    def apply(self, message: Message) -> None:
        node = (message.key() or b"").decode()
        value = message.value()
        with self._lock:
            if value is None:
                self._nodes.pop(node, None)
                return
            body = json.loads(value)
            kind, stamp = message.timestamp()
            seen = stamp / 1000 if kind != TIMESTAMP_NOT_AVAILABLE else time.time()
            self._nodes[node] = NodeInfo(body["id"], body["address"], body["started_at"], seen, body["sinks"])
