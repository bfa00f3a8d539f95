"""The ASGI application: parts started in order, routes, errors as JSON, API-key check, console."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

import sinkflow
from sinkflow.api import queries, sinks, streams
from sinkflow.api.context import Server, ServerSettings
from sinkflow.catalog import Catalog
from sinkflow.engine import Engine
from sinkflow.errors import SinkflowError
from sinkflow.runtime.manager import SinkManager
from sinkflow.runtime.status import prometheus_text
from sinkflow.streams.demo import run_demo
from sinkflow.streams.store import StreamStore

log = logging.getLogger("sinkflow.api")

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
_OPEN_PATHS = ("/api/v1beta2/info",)


def create_app(settings: ServerSettings) -> FastAPI:
    """Build the app. Start-up opens the streams, the catalog and every stored sink (from its
    last checkpoint) and, with ``settings.demo``, starts the demo data; shutdown stops them."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = StreamStore(settings.data_dir)
        engine = Engine(store)
        catalog = Catalog(settings.data_dir)
        srv = Server(settings, store, engine, catalog, SinkManager(engine, store, catalog))
        app.state.server = srv
        demo = asyncio.create_task(run_demo(store, srv.stop_demo)) if settings.demo else None
        await srv.sinks.start()
        try:
            yield
        finally:
            srv.stop_demo.set()
            if demo is not None:
                await demo
            await srv.sinks.stop()
            catalog.close()
            store.close()

    app = FastAPI(title="sinkflow", version=sinkflow.__version__, lifespan=lifespan)

    @app.exception_handler(SinkflowError)
    async def sinkflow_error(_: Request, exc: SinkflowError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def request_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"] if part != "body") or "body"
        return JSONResponse({"code": "INVALID_INPUT", "message": f"'{where}': {first['msg']}"}, status_code=400)

    @app.middleware("http")
    async def require_api_key(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        guarded = (path.startswith("/api/") and path not in _OPEN_PATHS) or path == "/metrics"
        if settings.auth_required and guarded:
            given = request.headers.get("x-api-key", "")
            if not settings.api_key or not hmac.compare_digest(given, settings.api_key):
                return JSONResponse({"code": "UNAUTHORIZED", "message": "a valid X-Api-Key header is required"},
                                    status_code=401)
        return await call_next(request)

    @app.get("/api/v1beta2/info")
    async def info() -> dict[str, object]:
        return {"version": sinkflow.__version__, "auth_required": settings.auth_required}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics(request: Request) -> str:
        return prometheus_text(request.app.state.server.sinks.statuses())

    app.include_router(streams.router)
    app.include_router(queries.router)
    app.include_router(sinks.router)
    app.mount("/", StaticFiles(directory=CONSOLE_DIR, html=True), name="console")
    return app
