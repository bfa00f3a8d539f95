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
from pydantic import BaseModel

from sinkflow.api.context import RunningQuery, Server, ServerDep
from sinkflow.engine import QueryExecution
from sinkflow.errors import NotFound, SinkflowError
from sinkflow.runtime.off_loop import run_step
from sinkflow.sinks.encode import json_documents
from sinkflow.streams.types import from_arrow

router = APIRouter(prefix="/api/v1beta2/queries")

#: How long one engine step may wait for input before the stream checks for a stop.
_STEP = 0.25


class QueryIn(BaseModel):
    sql: str


def columns_of(schema: pa.Schema) -> list[dict[str, str]]:
    return [{"name": f.name, "type": from_arrow(f.type, f.nullable).name} for f in schema]


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


@router.post("")
async def run_query(body: QueryIn, request: Request, srv: ServerDep) -> Response:
    """Run one statement. DDL and INSERT answer a JSON status; a bounded SELECT its rows (or
    SSE when asked with ``Accept: text/event-stream``); a streaming SELECT answers SSE until
    its LIMIT is reached, it is deleted, or the client goes away — then it is stopped."""
    # A bounded query over a large stream computes for a while: keep the event loop serving.
    result = await asyncio.to_thread(srv.engine.execute, body.sql)
    wants_sse = "text/event-stream" in request.headers.get("accept", "")
    if result.kind == "status":
        return JSONResponse({"status": "ok", "message": result.message, "count": result.count})
    if result.kind == "rows" and not wants_sse:
        table = result.table
        assert table is not None
        rows = [orjson.loads(doc) for batch in table.to_batches() for doc in json_documents(batch)]
        return JSONResponse({"columns": columns_of(table.schema), "rows": rows})
    query_id = str(uuid.uuid4())
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


def _row_events(batches: list[pa.RecordBatch]) -> bytes:
    """One SSE ``data:`` event per row, the row as a JSON document."""
    return b"".join(b"data: " + doc + b"\n\n" for batch in batches for doc in json_documents(batch))


async def _table_events(query_id: str, table: pa.Table) -> AsyncIterator[bytes]:
    yield _event("query", {"id": query_id, "columns": columns_of(table.schema)})
    for batch in table.to_batches():
        yield _row_events([batch])
    yield _event("end", {"id": query_id})


async def _stream_events(query_id: str, execution: QueryExecution, srv: Server) -> AsyncIterator[bytes]:
    """Rows as they come; the query is stopped and its state freed however the stream ends
    (a client that goes away cancels this generator)."""
    try:
        yield _event("query", {"id": query_id, "columns": columns_of(execution.schema)})
        while not execution.finished and query_id in srv.queries:
            batches = [batch for batch in await run_step(execution, _STEP) if batch.num_rows]
            if batches:
                # Encoding makes dozens of Arrow calls, each giving the GIL up and waiting to get
                # it back from busy threads: in a worker thread, that waiting holds up no one.
                yield await asyncio.to_thread(_row_events, batches)
        yield _event("end", {"id": query_id})
    except SinkflowError as exc:
        yield _event("error", exc.to_dict())
    finally:
        srv.queries.pop(query_id, None)
        execution.close()


@router.get("")
async def list_queries(srv: ServerDep) -> list[dict[str, Any]]:
    """The streaming queries running for clients right now."""
    return [{"id": qid, "sql": q.sql, "started_at": q.started_at, "rows_read": q.execution.stats().get("rows_read", 0)}
            for qid, q in srv.queries.items()]


@router.delete("/{query_id}", status_code=204)
async def stop_query(query_id: str, srv: ServerDep) -> None:
    if srv.queries.pop(query_id, None) is None:
        raise NotFound(f"query '{query_id}' is not running")
