"""What every API route works with: the server's parts, built once at start-up."""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from sinkflow.catalog import Catalog
from sinkflow.engine import Engine, QueryExecution
from sinkflow.runtime.manager import SinkManager
from sinkflow.streams.store import StreamStore

if TYPE_CHECKING:
    from sinkflow.cluster.node import ClusterNode
    from sinkflow.cluster.settings import ClusterSettings


@dataclass(frozen=True)
class ServerSettings:
    """How the server runs. ``api_key`` is required whenever ``host`` is not a loopback address."""

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("sinkflow-data")
    demo: bool = True
    api_key: str | None = None
    cluster: ClusterSettings | None = None  # None: the embedded single-process mode

    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def auth_required(self) -> bool:
        return self.api_key is not None or not self.is_loopback()


@dataclass(frozen=True)
class RunningQuery:
    """A streaming query answering a client over SSE."""

    sql: str
    execution: QueryExecution
    started_at: float


@dataclass
class Server:
    """The running parts. ``queries`` holds live streaming queries by id, for ``DELETE``;
    ``stopping`` is set when the server shuts down, ending its background tasks."""

    settings: ServerSettings
    store: StreamStore
    engine: Engine
    catalog: Catalog
    sinks: SinkManager
    queries: dict[str, RunningQuery] = field(default_factory=dict)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    cluster: ClusterNode | None = None


def server(request: Request) -> Server:
    """The :class:`Server` of the app handling ``request`` (a FastAPI dependency)."""
    return request.app.state.server  # type: ignore[no-any-return]


#: A route parameter receiving the :class:`Server`.
ServerDep = Annotated[Server, Depends(server)]
