"""A cluster node at start-up and shutdown: Kafka clients, catalog, streams, sinks, membership."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from sinkflow.cluster.catalog import ClusterCatalog
from sinkflow.cluster.manager import ClusterSinkManager
from sinkflow.cluster.nodes import NodeDirectory
from sinkflow.cluster.replica import Replica
from sinkflow.cluster.settings import ClusterSettings
from sinkflow.cluster.streams import ClusterStreamStore
from sinkflow.cluster.work import WorkGroup
from sinkflow.engine import Engine
from sinkflow.sql.defaults import compile_default

log = logging.getLogger("sinkflow.cluster")

HEARTBEAT_INTERVAL = 1.0
#: How long a starting node may take to read the catalog and every stream from Kafka.
CATCH_UP_TIMEOUT = 600.0
#: How long a revoked node may take to stop its sinks before the group moves on regardless.
REVOKE_TIMEOUT = 30.0


class ClusterNode:
    """One node. After :meth:`start`: ``store``, ``engine``, ``catalog`` and ``sinks`` are the
    server's parts, backed by Kafka; :meth:`stop` leaves the cluster cleanly."""

    def __init__(self, settings: ClusterSettings, data_dir: Path, address: str) -> None:
        self.settings = settings
        self.address = address
        self.started_at = time.time()
        self.replica = Replica(settings)
        self.catalog = ClusterCatalog(self.replica, settings.secret_key)
        self.store = ClusterStreamStore(data_dir, self.replica, self.catalog, compile_default)
        self.engine = Engine(self.store)
        self.nodes = NodeDirectory(self.replica)
        self.sinks = ClusterSinkManager(self.engine, self.store, self.catalog, settings, self.nodes)
        self.work = WorkGroup(settings, self._assigned, self._revoked)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Join: create the internal topics when absent, catch up with the catalog (every stream
        and sink defined so far) and with every stream's rows, then join the workers' group and
        start heartbeats.

        Raises :class:`~sinkflow.cluster.replica.ClusterUnavailable` when Kafka cannot be reached."""
        self._loop = asyncio.get_running_loop()
        s = self.settings
        self.replica.start()
        await asyncio.to_thread(self.replica.ensure_topic, s.catalog_topic, 1, {"cleanup.policy": "compact"})
        await asyncio.to_thread(self.replica.ensure_topic, s.nodes_topic, 1, {"cleanup.policy": "compact"})
        await asyncio.to_thread(self.replica.ensure_topic, s.work_topic, s.work_partitions)
        # The topic's partition count (fixed by the first node) maps sinks to units on every node.
        partitions = await asyncio.to_thread(self.replica.partition_count, s.work_topic)
        self.sinks.cluster = replace(s, work_partitions=partitions)
        self.replica.follow(s.nodes_topic, self.nodes.apply)
        self.replica.follow(s.catalog_topic, self.catalog.apply)
        await asyncio.to_thread(self.replica.sync, s.catalog_topic, CATCH_UP_TIMEOUT)
        # Every stream's local copy complete before the first query or sink reads it.
        await asyncio.to_thread(self.store.catch_up, CATCH_UP_TIMEOUT)
        loop = self._loop
        self.catalog.on_change = lambda: loop.call_soon_threadsafe(self.sinks.changed)
        self.sinks.on_reconciled = self._beat_once
        self.store.holds = self.sinks.holds
        await self.sinks.start()
        self.work.start()
        self._heartbeat = asyncio.create_task(self._beat(), name="cluster:heartbeat")
        log.info("cluster: node %s joined cluster %s on %s", s.node_id, s.name, s.bootstrap)

    async def stop(self) -> None:
        """Leave the group (the others take this node's sinks at once), stop every sink, say goodbye."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        await asyncio.to_thread(self.work.close)
        await self.sinks.stop()
        with contextlib.suppress(Exception):  # the broker may be gone: heartbeats then time out
            await asyncio.to_thread(self.nodes.leave)
        await asyncio.to_thread(self.replica.close)

    def describe(self) -> dict[str, Any]:
        """The cluster as ``GET /api/v1beta2/cluster`` shows it."""
        timeout = self.settings.session_timeout_ms / 1000
        nodes = [n.to_dict(timeout) for n in self.nodes.nodes()]
        return {"mode": "cluster", "name": self.settings.name, "node": self.settings.node_id,
                "session_timeout_ms": self.settings.session_timeout_ms,
                "work_partitions": self.sinks.cluster.work_partitions,
                "owned_partitions": sorted(self.sinks.owned), "nodes": nodes}

    def metrics_text(self) -> str:
        """Prometheus text of the cluster as this node sees it (appended to its ``/metrics``)."""
        timeout = self.settings.session_timeout_ms / 1000
        alive = sum(1 for n in self.nodes.nodes() if n.alive(timeout))
        labels = f'cluster="{self.settings.name}",node="{self.settings.node_id}"'
        return "".join(f"# HELP {metric} {text}\n# TYPE {metric} gauge\n{metric}{{{labels}}} {value}\n"
                       for metric, text, value in (
                           ("sinkflow_cluster_nodes_alive", "Nodes whose last heartbeat is within the session timeout.",
                            alive),
                           ("sinkflow_cluster_work_partitions_owned", "Units of work this node holds.",
                            len(self.sinks.owned)),
                           ("sinkflow_cluster_sinks_running", "Sinks running on this node.", len(self.sinks.statuses())),
                       ))

    async def _beat(self) -> None:
        while True:
            self._beat_once()
            await asyncio.sleep(HEARTBEAT_INTERVAL)

    def _beat_once(self) -> None:
        try:
            self.nodes.beat(self.address, self.started_at, self.sinks.running_statuses())
        except Exception:  # e.g. the producer's queue is full while Kafka is away
            log.exception("cluster: heartbeat failed")

    # -- the workers' group (called on its thread) -----------------------------------------------

    def _assigned(self, owned: frozenset[int]) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._own, owned)

    def _own(self, owned: frozenset[int]) -> None:
        self.sinks.owned = owned
        self.sinks.changed()

    def _revoked(self) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._own, frozenset())
        future = asyncio.run_coroutine_threadsafe(self.sinks.stop_all(), self._loop)
        try:
            future.result(REVOKE_TIMEOUT)
        except Exception:
            log.exception("cluster: stopping sinks at a rebalance failed")
