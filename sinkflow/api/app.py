"""The ASGI application: parts started in order, routes, errors as JSON, API-key check, console."""

from __future__ import annotations

import asyncio
import fcntl
import hmac
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

import sinkflow
from sinkflow.api import queries, sinks, streams
from sinkflow.api.context import Server, ServerSettings
from sinkflow.catalog import Catalog
from sinkflow.engine import Engine, limits
from sinkflow.errors import InvalidInput, SinkflowError
from sinkflow.runtime.manager import SinkManager
from sinkflow.runtime.retry import is_disk_full
from sinkflow.runtime.status import prometheus_text, stream_prometheus_text
from sinkflow.streams.demo import run_demo
from sinkflow.streams.store import StreamStore

log = logging.getLogger("sinkflow.api")

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
_OPEN_PATHS = ("/api/v1beta2/info",)
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


def create_app(settings: ServerSettings) -> FastAPI:
    """Build the app. Start-up opens the streams, the catalog and every stored sink (from its
    last checkpoint) and, with ``settings.demo``, starts the demo data; shutdown stops them."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limits.configure(settings.memory_limit, settings.data_dir / "engine-spill")
        store = StreamStore(settings.data_dir)
        engine = Engine(store)
        catalog = Catalog(settings.data_dir)
        srv = Server(settings, store, engine, catalog, SinkManager(engine, store, catalog))
        app.state.server = srv
        background = [asyncio.create_task(_enforce_retention(store, srv.stopping))]
        if settings.demo:
            background.append(asyncio.create_task(run_demo(store, srv.stopping)))
        await srv.sinks.start()
        try:
            yield
        finally:
            srv.stopping.set()
            await asyncio.gather(*background)
            await srv.sinks.stop()
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

    @app.middleware("http")
    async def require_api_key(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        guarded = (path.startswith("/api/") and path not in _OPEN_PATHS) or path == "/metrics"
        if settings.auth_required and guarded:
            # Compared as bytes (headers arrive as latin-1 text): compare_digest refuses non-ASCII text.
            given = request.headers.get("x-api-key", "").encode("latin-1")
            if not settings.api_key or not hmac.compare_digest(given, settings.api_key.encode()):
                return JSONResponse({"code": "UNAUTHORIZED", "message": "a valid X-Api-Key header is required"},
                                    status_code=401)
        return await call_next(request)

    @app.get("/api/v1beta2/info")
    async def info() -> dict[str, object]:
        return {"version": sinkflow.__version__, "auth_required": settings.auth_required}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics(request: Request) -> str:
        srv = request.app.state.server
        damaged = {stream.name: stream.log.damaged_rows for stream in srv.store.list()}
        return prometheus_text(srv.sinks.statuses()) + stream_prometheus_text(damaged)

    app.include_router(streams.router)
    app.include_router(queries.router)
    app.include_router(sinks.router)
    app.mount("/", StaticFiles(directory=CONSOLE_DIR, html=True), name="console")
    return app
