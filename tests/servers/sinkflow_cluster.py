"""sinkflow nodes of one cluster as subprocesses: ``sinkflow server --cluster`` against a Tansu broker.

Every node of a :class:`ClusterNodes` set shares the cluster name, the secret key and short group
timeouts (Tansu's group joins take about half the session timeout: see TESTING notes).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from cryptography.fernet import Fernet

from tests.servers.sinkflow import SinkflowServer

T = TypeVar("T")
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_MS = 500
_clusters = itertools.count()


class SinkflowNode(SinkflowServer):
    """One node: a sinkflow server with its own data dir, joined to ``cluster`` on ``bootstrap``."""

    def __init__(self, data_dir: Path, bootstrap: str, cluster: str, node_id: str, secret_key: str,
                 work_partitions: int) -> None:
        super().__init__(data_dir)
        self.bootstrap = bootstrap
        self.cluster = cluster
        self.node_id = node_id
        self.secret_key = secret_key
        self.work_partitions = work_partitions

    def command(self) -> list[str]:
        return [*super().command(), "--cluster", self.bootstrap, "--cluster-name", self.cluster,
                "--node-id", self.node_id, "--cluster-property", "tls.disable=true"]

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "SINKFLOW_SECRET_KEY": self.secret_key,
                "SINKFLOW_CLUSTER_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
                "SINKFLOW_CLUSTER_HEARTBEAT_MS": str(HEARTBEAT_MS),
                "SINKFLOW_CLUSTER_WORK_PARTITIONS": str(self.work_partitions)}


class ClusterNodes:
    """Makes the nodes of one new cluster (a name no other test uses) under ``directory``."""

    def __init__(self, directory: Path, bootstrap: str, work_partitions: int = 4) -> None:
        self.directory = directory
        self.bootstrap = bootstrap
        self.name = f"test{next(_clusters)}"
        self.secret_key = Fernet.generate_key().decode()
        self.work_partitions = work_partitions

    def node(self, node_id: str) -> SinkflowNode:
        return SinkflowNode(self.directory / node_id, self.bootstrap, self.name, node_id, self.secret_key,
                            self.work_partitions)


def call(server: SinkflowServer, method: str, path: str, **kwargs: Any) -> Any:
    """``method`` on ``/api/v1beta2{path}`` of ``server``: the JSON answer (None when empty).
    Raises :class:`httpx.HTTPStatusError` on an error status."""
    with server.client() as api:
        response = api.request(method, f"/api/v1beta2{path}", **kwargs)
    response.raise_for_status()
    return response.json() if response.content else None


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """``check()``'s first truthy result; raises :class:`AssertionError` naming ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def sql(node: SinkflowServer, text: str) -> Any:
    """The answer of the query endpoint of ``node`` to ``text``."""
    return call(node, "POST", "/queries", json={"sql": text})


def ingest(node: SinkflowServer, stream: str, numbers: range) -> None:
    """Append one row ``(n)`` per number of ``numbers`` to ``stream`` through ``node``."""
    call(node, "POST", f"/streams/{stream}/ingest", json={"columns": ["n"], "data": [[n] for n in numbers]})


class Feeder:
    """Ingests ``batch`` rows ``(n)``, numbered from 0, into ``stream`` through ``node`` every
    ``pause`` seconds until the ``with`` block ends; ``sent`` is how many."""

    def __init__(self, node: SinkflowServer, stream: str, batch: int = 10, pause: float = 0.05) -> None:
        self.node, self.stream, self.batch, self.pause = node, stream, batch, pause
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> Feeder:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            ingest(self.node, self.stream, range(self.sent, self.sent + self.batch))
            self.sent += self.batch
            time.sleep(self.pause)
