"""The sink manager of a cluster node: every sink is known here, only this node's share runs here.

The catalog and the workers' group change under the manager's feet (another node created a
sink, Kafka moved partitions); :meth:`ClusterSinkManager.reconcile` brings the pipelines in line
with both, and runs whenever either changes. It is the only place pipelines start or stop
because of the cluster; the user's actions (create, update, delete, pause, resume) go through
the catalog topic and reach the node running the sink through the same reconcile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from sinkflow.catalog import SinkRecord
from sinkflow.cluster.catalog import ClusterCatalog
from sinkflow.cluster.nodes import NodeDirectory
from sinkflow.cluster.settings import ClusterSettings
from sinkflow.engine import Engine
from sinkflow.errors import InvalidInput
from sinkflow.runtime.manager import SinkManager
from sinkflow.runtime.pipeline import Pipeline, RuntimeSettings
from sinkflow.runtime.status import SinkState, SinkStatus
from sinkflow.streams.store import StreamStore

log = logging.getLogger("sinkflow.cluster")


class ClusterSinkManager(SinkManager):
    """A :class:`SinkManager` whose pipelines run only for the work partitions this node holds."""

    def __init__(self, engine: Engine, store: StreamStore, catalog: ClusterCatalog, settings: ClusterSettings,
                 nodes: NodeDirectory, runtime: RuntimeSettings | None = None) -> None:
        super().__init__(engine, store, catalog, runtime)
        self.cluster = settings
        self.nodes = nodes
        self.owned: frozenset[int] = frozenset()
        self._cluster_catalog = catalog
        self._running: set[str] = set()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: Called after each reconcile: the node announces at once what it runs now.
        self.on_reconciled: Callable[[], None] = lambda: None

    # -- the cluster's side ----------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._reconcile_forever(), name="cluster:reconcile")
        self.changed()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.stop_all()

    def changed(self) -> None:
        """Ask for a reconcile (the catalog or the assignment changed). Event-loop thread only."""
        self._wake.set()

    async def stop_all(self) -> None:
        """Stop every pipeline running here (the group is revoking this node's partitions)."""
        async with self._lock:
            for sink_id in list(self._running):
                await self._stop(sink_id)

    def runs(self, sink_id: str) -> bool:
        return sink_id in self._running

    def holds(self, unit: str) -> bool:
        """Whether this node holds the unit of work ``unit`` hashes to (as a sink's id does)."""
        return self.cluster.work_partition(unit) in self.owned

    async def _reconcile_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.reconcile()
                if self.on_work_moved is not None:
                    await self.on_work_moved()
                self.on_reconciled()
            except Exception:  # a failed round is retried by the next change or in a second
                log.exception("cluster: reconciling sinks failed")
                await asyncio.sleep(1.0)
                self._wake.set()

    async def reconcile(self) -> None:
        """Make the pipelines match the catalog (added, changed, paused, deleted sinks) and start
        or stop them to match the work partitions held."""
        async with self._lock:
            records = {r.id: r for r in self.catalog.sinks()}
            for sink_id in [s for s in self._pipelines if s not in records]:
                await self._stop(sink_id)
                del self._pipelines[sink_id]
            waiting = False
            for record in records.values():
                pipeline = self._pipelines.get(record.id)
                if pipeline is None or pipeline.record.updated_at != record.updated_at:
                    if pipeline is not None:
                        await self._stop(record.id)
                    pipeline = self._pipelines[record.id] = Pipeline(record, self.engine, self.store, self.catalog,
                                                                     self.settings)
                elif pipeline.record.paused != record.paused:
                    pipeline.pause() if record.paused else pipeline.resume()
                mine = self.cluster.work_partition(record.id) in self.owned
                if mine and record.id not in self._running:
                    if self._cluster_catalog.awaits_first_checkpoint(record):
                        waiting = True
                        continue
                    self._cluster_catalog.started(record.id, record.updated_at)
                    pipeline.start()
                    self._running.add(record.id)
                    log.info("cluster: node %s runs sink %s", self.cluster.node_id, record.name)
                elif not mine and record.id in self._running:
                    await self._stop(record.id)
        if waiting:
            await asyncio.sleep(0.5)
            self._wake.set()

    async def _stop(self, sink_id: str) -> None:
        if sink_id in self._running:
            self._running.discard(sink_id)
            await self._pipelines[sink_id].stop()

    # -- SinkManager, where a cluster differs ------------------------------------------------------

    def _launch(self, record: SinkRecord) -> None:
        """Known at once on this node; started by :meth:`reconcile` on the node that holds it."""
        self._pipelines[record.id] = Pipeline(record, self.engine, self.store, self.catalog, self.settings)
        self._running.discard(record.id)
        self.changed()

    async def update(self, sink_id: str, definition: Any) -> SinkRecord:
        pipeline = self._get(sink_id)
        if pipeline.record.id in self._running:
            await self._stop(pipeline.record.id)
        else:
            # Counters carry over to the new definition: here they are the last checkpoint's.
            checkpoint = self.catalog.checkpoint(pipeline.record.id)
            pipeline.status.restore_counters(checkpoint.counters if checkpoint else {})
        changed = await super().update(sink_id, definition)
        await self._acknowledged(changed.id, lambda reported: reported.get("generation") == changed.updated_at)
        return changed

    async def delete(self, sink_id: str, drop_dead_letters: bool = False) -> None:
        record = self._get(sink_id).record
        await self._stop(record.id)
        await super().delete(sink_id, drop_dead_letters)
        await self._acknowledged(record.id, lambda reported: False)

    async def _acknowledged(self, sink_id: str, done: Callable[[dict[str, Any]], bool]) -> None:
        """Return once the node running ``sink_id`` elsewhere reports ``done`` of the sink's entry
        in its heartbeat, or no live node runs it any more, or after the session timeout (the
        node may have died meanwhile). An update or delete answered from this node then means
        the previous definition no longer delivers, as in the embedded mode."""
        deadline = time.monotonic() + self.cluster.session_timeout_ms / 1000
        while time.monotonic() < deadline:
            runner = self.nodes.runner(sink_id)
            if runner is None or runner[0] == self.cluster.node_id or done(runner[1]):
                return
            await asyncio.sleep(0.05)

    async def restart(self, sink_id: str) -> SinkRecord:
        pipeline = self._get(sink_id)
        if pipeline.record.id not in self._running:
            runner = self.nodes.runner(pipeline.record.id)
            where = f"node '{runner[0]}'" if runner else "another node"
            raise InvalidInput(f"sink '{pipeline.record.name}' runs on {where}: restart it there")
        return await super().restart(sink_id)

    def status(self, sink_id: str) -> SinkStatus:
        """The sink's status where it runs: here, or as its node's last heartbeat reported it."""
        pipeline = self._get(sink_id)
        if pipeline.record.id in self._running:
            pipeline.status.node = self.cluster.node_id
            return pipeline.status
        runner = self.nodes.runner(pipeline.record.id)
        if runner is None:
            return SinkStatus(state=SinkState.PAUSED if pipeline.record.paused else SinkState.STARTING,
                              reason="waiting for a node to take it over")
        known = {f.name for f in fields(SinkStatus)}
        reported = {k: v for k, v in runner[1].items() if k in known}
        reported["state"] = SinkState(reported.get("state", SinkState.STARTING.value))
        return SinkStatus(**{**reported, "node": runner[0]})

    def statuses(self) -> dict[str, tuple[str, SinkStatus]]:
        """The sinks running on this node (each node's ``/metrics`` shows its own)."""
        return {sid: (p.record.name, p.status) for sid, p in self._pipelines.items() if sid in self._running}

    def running_statuses(self) -> dict[str, dict[str, Any]]:
        """The status of each sink running here, and the generation of its definition, for the heartbeat."""
        return {sid: {**self.status(sid).to_dict(), "generation": self._pipelines[sid].record.updated_at}
                for sid in list(self._running)}


