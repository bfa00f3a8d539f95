"""The ASGI application: parts started in order, routes, errors as JSON, API-key check, console."""

from __future__ import annotations

import asyncio
import fcntl
import gc
import hmac
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

import sinkflow
from sinkflow.api import clickhouse_http, cluster, external_streams, queries, sinks, sql_analyze, streams, views
from sinkflow.api.context import Server, ServerSettings
from sinkflow.catalog import Catalog, CatalogStore
from sinkflow.engine import Engine, limits
from sinkflow.errors import InvalidInput, SinkflowError
from sinkflow.runtime.manager import SinkManager
from sinkflow.runtime.off_loop import ingest_prometheus_text
from sinkflow.runtime.retry import is_disk_full
from sinkflow.runtime.sql_pipelines import SqlPipelines
from sinkflow.runtime.status import prometheus_text, stream_prometheus_text
from sinkflow.sql.defaults import compile_default
from sinkflow.streams.demo import run_demo
from sinkflow.streams.random_streams import run_random_streams
from sinkflow.streams.store import StreamStore

log = logging.getLogger("sinkflow.api")

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
_OPEN_PATHS = ("/api/v1beta2/info",)
#: Timeplus's clients put a workspace before the API (``/<workspace>/api/v1beta2/…``); sinkflow has one.
_WORKSPACE_PATH = re.compile(r"^/[A-Za-z0-9_-]+(/api/v1beta2/.*)$")
RETENTION_INTERVAL = 10.0


@contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``data_dir`` so two servers never write the same streams.

    The kernel releases it when the process dies, even by ``kill -9``. Raises
    :class:`InvalidInput` when another process holds it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InvalidInput(f"another sinkflow server is using the data dir {data_dir}") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


async def _enforce_retention(store: StreamStore, stop: asyncio.Event) -> None:
    """Expire old data of quiet streams too (appends expire their own stream's data)."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), RETENTION_INTERVAL)
        except TimeoutError:
            store.enforce_retention()


#: Allocations between two young-generation collections (Python's default: 700). An ingest
#: body of 500 rows makes thousands of short-lived objects; with the default, collections ran
#: several times per request and cost about a third of its decoding.
GC_YOUNG_THRESHOLD = 10_000


def _settle_garbage_collector() -> None:
    """Move everything alive after start-up (modules, parsers' tables, the catalog) out of the
    garbage collector's sight and collect the young generation less often, so full
    collections no longer walk hundreds of thousands of objects that never die."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


class _RequireApiKey:
    """ASGI middleware answering 401 to a guarded path (``/api/…`` but the open ones, and
    ``/metrics``) without a valid ``X-Api-Key`` when the server requires one. Plain ASGI, not
    Starlette's ``BaseHTTPMiddleware``, which costs a task and a body copy per request."""

    def __init__(self, app: ASGIApp, settings: ServerSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.settings.auth_required:
            path = scope["path"]
            if (path.startswith("/api/") and path not in _OPEN_PATHS) or path == "/metrics":
                # Compared as bytes (headers arrive as latin-1 text): compare_digest refuses non-ASCII text.
                given = Headers(scope=scope).get("x-api-key", "").encode("latin-1")
                key = self.settings.api_key
                if not key or not hmac.compare_digest(given, key.encode()):
                    response = JSONResponse(
                        {"code": "UNAUTHORIZED", "message": "a valid X-Api-Key header is required"}, status_code=401
                    )
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


class _DropWorkspace:
    """ASGI middleware serving ``/<workspace>/api/v1beta2/…`` as ``/api/v1beta2/…``: Timeplus's
    clients put a workspace in their paths; sinkflow has one workspace."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            match = _WORKSPACE_PATH.match(scope["path"])
            if match is not None:
                scope = {**scope, "path": match[1]}
        await self.app(scope, receive, send)


def create_app(settings: ServerSettings) -> FastAPI:
    """Build the app. Start-up opens the streams, the catalog and every stored sink (from its
    last checkpoint), feeds the random streams and, with ``settings.demo``, starts the demo data;
    shutdown stops them."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limits.configure(settings.memory_limit, settings.data_dir / "engine-spill")
        if settings.cluster is None:
            store = StreamStore(settings.data_dir, defaults=compile_default)
            engine = Engine(store)
            catalog: CatalogStore = Catalog(settings.data_dir)
            sinks = SinkManager(engine, store, catalog)
            srv = Server(settings, store, engine, catalog, sinks, SqlPipelines(sinks))
        else:
            from sinkflow.cluster.node import ClusterNode

            node = ClusterNode(settings.cluster, settings.data_dir, f"http://{settings.host}:{settings.port}")
            await node.start()
            store, engine, catalog = node.store, node.engine, node.catalog
            srv = Server(settings, store, engine, catalog, node.sinks, SqlPipelines(node.sinks), cluster=node)
        app.state.server = srv
        background = [asyncio.create_task(_enforce_retention(store, srv.stopping)),
                      asyncio.create_task(run_random_streams(store, srv.stopping)),
                      asyncio.create_task(srv.loop_lag.run(srv.stopping))]
        if settings.demo:
            background.append(asyncio.create_task(run_demo(store, srv.stopping)))
        await srv.pipelines.start()
        await srv.sinks.start()
        _settle_garbage_collector()
        try:
            yield
        finally:
            srv.stopping.set()
            await asyncio.gather(*background)
            if srv.cluster is not None:
                await srv.cluster.stop()
            await srv.sinks.stop()
            await srv.pipelines.stop()
            catalog.close()
            store.close()

    app = FastAPI(title="sinkflow", version=sinkflow.__version__, lifespan=lifespan)

    @app.exception_handler(SinkflowError)
    async def sinkflow_error(_: Request, exc: SinkflowError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status)

    async def storage_error(_: Request, exc: Exception) -> JSONResponse:
        if is_disk_full(exc):
            return JSONResponse({"code": "INSUFFICIENT_STORAGE",
                                 "message": f"no space left on the disk of the data dir {settings.data_dir}: nothing "
                                            "of this request was stored; free some space and send it again"},
                                status_code=507)
        log.error("storage error: %s", exc, exc_info=exc)
        return JSONResponse({"code": "INTERNAL_ERROR", "message": f"storage error: {exc}"}, status_code=500)

    app.add_exception_handler(OSError, storage_error)
    app.add_exception_handler(sqlite3.OperationalError, storage_error)

    @app.exception_handler(RecursionError)
    async def too_deep(_: Request, exc: RecursionError) -> JSONResponse:
        # A last guard: SQL limits refuse deep nesting first (sinkflow.sql.limits).
        return JSONResponse({"code": "INVALID_INPUT", "message": "the request is nested too deeply to process"},
                            status_code=400)

    @app.exception_handler(RequestValidationError)
    async def request_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            reason = first.get("ctx", {}).get("error", "")
            return JSONResponse({"code": "INVALID_INPUT", "message": f"the request body is not valid JSON: {reason}"},
                                status_code=400)
        where = ".".join(str(part) for part in first["loc"] if part != "body") or "body"
        return JSONResponse({"code": "INVALID_INPUT", "message": f"'{where}': {first['msg']}"}, status_code=400)

    app.add_middleware(_RequireApiKey, settings=settings)

    app.add_middleware(_DropWorkspace)  # added last, so it runs first: before the key check

    @app.get("/api/v1beta2/info")
    async def info() -> dict[str, object]:
        return {"version": sinkflow.__version__, "auth_required": settings.auth_required}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics(request: Request) -> str:
        srv = request.app.state.server
        damaged = {stream.name: stream.log.damaged_rows for stream in srv.store.list()}
        text = (prometheus_text(srv.sinks.statuses()) + stream_prometheus_text(damaged)
                + srv.loop_lag.prometheus_text() + ingest_prometheus_text())
        return text if srv.cluster is None else text + srv.cluster.metrics_text()

    app.router.routes.insert(0, streams.ingest_route)
    app.include_router(streams.router)
    app.include_router(queries.router)
    app.include_router(sql_analyze.router)
    app.include_router(sinks.router)
    app.include_router(views.router)
    app.include_router(external_streams.router)
    app.include_router(clickhouse_http.router)
    app.include_router(cluster.router)
    app.mount("/", StaticFiles(directory=CONSOLE_DIR, html=True), name="console")
    return app
