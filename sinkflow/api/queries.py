"""``POST /api/v1beta2/queries``: any SQL statement; streaming SELECTs answer with Server-Sent Events."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pyarrow as pa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from sinkflow.api.context import RunningQuery, Server, ServerDep
from sinkflow.engine import QueryExecution, StatementResult
from sinkflow.engine.limits import CancelScope, QueryCancelled
from sinkflow.errors import InvalidInput, NotFound, QueryStopped, QueryTimedOut, SinkflowError
from sinkflow.sinks.encode import json_documents
from sinkflow.streams.types import from_arrow

router = APIRouter(prefix="/api/v1beta2/queries")

#: How long one engine step may wait for input before the stream checks for a stop.
_STEP = 0.25
#: How often a computing statement checks whether it must stop.
_WATCH = 0.1


class QueryIn(BaseModel):
    """A statement to run; ``query_id`` names it for ``GET``/``DELETE /queries`` (default: a new id)."""

    sql: str
    query_id: str | None = Field(None, min_length=1, max_length=128)


def columns_of(schema: pa.Schema) -> list[dict[str, str]]:
    return [{"name": f.name, "type": from_arrow(f.type, f.nullable).name} for f in schema]


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


@router.post("")
async def run_query(body: QueryIn, request: Request, srv: ServerDep) -> Response:
    """Run one statement. DDL and INSERT answer a JSON status; a bounded SELECT its rows (or
    SSE when asked with ``Accept: text/event-stream``); a streaming SELECT answers SSE until
    its LIMIT is reached, it is deleted, or the client goes away — then it is stopped.

    While it computes, a statement is listed by ``GET /queries`` and stopped by ``DELETE``, by
    its client going away, or after the server's ``query_timeout``: raises
    :class:`QueryTimedOut` or :class:`QueryCancelled` then."""
    query_id = body.query_id or str(uuid.uuid4())
    if query_id in srv.queries:
        raise InvalidInput(f"a query with id '{query_id}' is already running")
    scope = CancelScope()
    srv.queries[query_id] = RunningQuery(body.sql, None, time.time(), scope)
    try:
        result = await _run_cancellable(query_id, body.sql, scope, request, srv)
    finally:
        srv.queries.pop(query_id, None)
    wants_sse = "text/event-stream" in request.headers.get("accept", "")
    if result.kind == "status":
        return JSONResponse({"status": "ok", "message": result.message, "count": result.count})
    if result.kind == "rows" and not wants_sse:
        table = result.table
        assert table is not None
        rows = [orjson.loads(doc) for batch in table.to_batches() for doc in json_documents(batch)]
        return JSONResponse({"columns": columns_of(table.schema), "rows": rows})
    if result.kind == "rows":
        assert result.table is not None
        events = _table_events(query_id, result.table)
    else:
        execution = result.execution
        assert isinstance(execution, QueryExecution)
        srv.queries[query_id] = RunningQuery(body.sql, execution, time.time())
        events = _stream_events(query_id, execution, srv)
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _run_cancellable(query_id: str, sql: str, scope: CancelScope, request: Request,
                           srv: Server) -> StatementResult:
    """Run ``sql`` in a worker thread (a bounded query computes for a while: the event loop keeps
    serving), cancelling it when it is deleted, its client goes away or it runs too long."""

    def work() -> StatementResult:
        with scope.active():
            return srv.engine.execute(sql)

    loop = asyncio.get_running_loop()
    timeout = srv.settings.query_timeout
    deadline = loop.time() + timeout
    worker = asyncio.ensure_future(asyncio.to_thread(work))
    while not worker.done():
        await asyncio.wait({worker}, timeout=_WATCH)
        if worker.done():
            break
        if scope.reason is None:
            if query_id not in srv.queries:
                scope.cancel("it was deleted")
            elif await request.is_disconnected():
                scope.cancel("its client went away")
            elif loop.time() >= deadline:
                scope.cancel(f"it ran longer than the query timeout of {timeout:g}s")
        else:
            scope.interrupt()  # a cancel that fell between two engine calls: again
    try:
        return worker.result()
    except QueryCancelled as exc:
        if loop.time() >= deadline:
            raise QueryTimedOut(f"the query was stopped: {exc.reason} (bound the query with a LIMIT or a "
                                "narrower table(), or raise the server's --query-timeout)") from None
        raise QueryStopped(f"the query was stopped: {exc.reason}") from None


async def _table_events(query_id: str, table: pa.Table) -> AsyncIterator[bytes]:
    yield _event("query", {"id": query_id, "columns": columns_of(table.schema)})
    for batch in table.to_batches():
        yield b"".join(b"data: " + doc + b"\n\n" for doc in json_documents(batch))
    yield _event("end", {"id": query_id})


async def _stream_events(query_id: str, execution: QueryExecution, srv: Server) -> AsyncIterator[bytes]:
    """Rows as they come; the query is stopped and its state freed however the stream ends
    (a client that goes away cancels this generator)."""
    try:
        yield _event("query", {"id": query_id, "columns": columns_of(execution.schema)})
        while not execution.finished and query_id in srv.queries:
            for batch in await execution.step(_STEP):
                if batch.num_rows:
                    yield b"".join(b"data: " + doc + b"\n\n" for doc in json_documents(batch))
        yield _event("end", {"id": query_id})
    except SinkflowError as exc:
        yield _event("error", exc.to_dict())
    finally:
        srv.queries.pop(query_id, None)
        execution.close()


@router.get("")
async def list_queries(srv: ServerDep) -> list[dict[str, Any]]:
    """The queries running for clients right now: streaming ones, and statements still computing."""
    return [{"id": qid, "sql": q.sql, "started_at": q.started_at,
             "rows_read": q.execution.stats().get("rows_read", 0) if q.execution is not None else 0}
            for qid, q in srv.queries.items()]


@router.delete("/{query_id}", status_code=204)
async def stop_query(query_id: str, srv: ServerDep) -> None:
    query = srv.queries.pop(query_id, None)
    if query is None:
        raise NotFound(f"query '{query_id}' is not running")
    if query.scope is not None:
        query.scope.cancel("it was deleted")
