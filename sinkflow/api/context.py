"""What every API route works with: the server's parts, built once at start-up."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from sinkflow.api.query_records import QueryRecords
from sinkflow.catalog import CatalogStore
from sinkflow.engine import Engine, QueryExecution
from sinkflow.runtime.loop_lag import LoopLagMonitor
from sinkflow.engine.limits import CancelScope
from sinkflow.runtime.manager import SinkManager
from sinkflow.runtime.sql_pipelines import SqlPipelines
from sinkflow.streams.store import StreamStore

if TYPE_CHECKING:
    from sinkflow.cluster.node import ClusterNode
    from sinkflow.cluster.settings import ClusterSettings


@dataclass(frozen=True)
class ServerSettings:
    """How the server runs. ``api_key`` is required whenever ``host`` is not a loopback address.
    ``query_timeout``: seconds a bounded query may run; ``memory_limit``: bytes for the query
    engine (None: half of the machine's memory)."""

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("sinkflow-data")
    demo: bool = True
    api_key: str | None = None
    cluster: ClusterSettings | None = None  # None: the embedded single-process mode
    query_timeout: float = 60.0
    memory_limit: int | None = None

    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @functools.cached_property
    def auth_required(self) -> bool:
        # Cached: every request asks, and parsing the host as an address cost a few percent of
        # a small ingest request's time on the event loop.
        return self.api_key is not None or not self.is_loopback()


@dataclass(frozen=True)
class RunningQuery:
    """A query answering a client: a streaming one (its ``execution``, over SSE) or a bounded
    one still computing (its ``scope``, to cancel it)."""

    sql: str
    execution: QueryExecution | None
    started_at: float
    scope: CancelScope | None = None


@dataclass
class Server:
    """The running parts. ``queries`` holds live streaming queries by id, for ``DELETE``;
    ``query_records`` the running and recent queries as clients see them;
    ``stopping`` is set when the server shuts down, ending its background tasks (among them
    ``loop_lag``'s sampling, shown on ``/metrics``)."""

    settings: ServerSettings
    store: StreamStore
    engine: Engine
    catalog: CatalogStore
    sinks: SinkManager
    pipelines: SqlPipelines
    queries: dict[str, RunningQuery] = field(default_factory=dict)
    query_records: QueryRecords = field(default_factory=QueryRecords)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    loop_lag: LoopLagMonitor = field(default_factory=LoopLagMonitor)
    cluster: ClusterNode | None = None


async def server(request: Request) -> Server:
    """The :class:`Server` of the app handling ``request`` (a FastAPI dependency; ``async`` so
    FastAPI calls it on the event loop, where a plain function would cost a thread hop per request)."""
    return request.app.state.server  # type: ignore[no-any-return]


#: A route parameter receiving the :class:`Server`.
ServerDep = Annotated[Server, Depends(server)]
