"""What every API route works with: the server's parts, built once at start-up."""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from typing import Annotated

from fastapi import Depends, Request

from sinkflow.catalog import Catalog
from sinkflow.engine import Engine, QueryExecution
from sinkflow.engine.limits import CancelScope
from sinkflow.runtime.manager import SinkManager
from sinkflow.streams.store import StreamStore


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
    query_timeout: float = 60.0
    memory_limit: int | None = None

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
    """A query answering a client: a streaming one (its ``execution``, over SSE) or a bounded
    one still computing (its ``scope``, to cancel it)."""

    sql: str
    execution: QueryExecution | None
    started_at: float
    scope: CancelScope | None = None


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


def server(request: Request) -> Server:
    """The :class:`Server` of the app handling ``request`` (a FastAPI dependency)."""
    return request.app.state.server  # type: ignore[no-any-return]


#: A route parameter receiving the :class:`Server`.
ServerDep = Annotated[Server, Depends(server)]
