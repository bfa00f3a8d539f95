"""``POST /api/v1beta2/queries``: any SQL statement; SELECTs answer with Server-Sent Events in
Timeplus's event shapes, or bounded ones with one JSON document for clients that ask for JSON.

The SSE answer, as Timeplus sends it: ``event: query`` first (the Query: ``id``, ``sql``,
``result.header``, ``analysis``, ``status: running``), then unnamed data events, each a JSON array
of rows (a row is an array of values in header order), ``event: metrics`` about every second
and before the end, and ``event: query`` again last with the final ``status`` (finished,
canceled, failed with its ``message``), ``end_time`` and ``duration``.
"""

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

from sinkflow.api import timeplus
from sinkflow.api.context import RunningQuery, Server, ServerDep
from sinkflow.api.query_records import QueryRecord
from sinkflow.engine import QueryExecution, QueryPlan, StatementResult
from sinkflow.engine.limits import CancelScope, QueryCancelled
from sinkflow.errors import InvalidInput, QueryStopped, QueryTimedOut, SinkflowError
from sinkflow.runtime.off_loop import run_step
from sinkflow.sinks.encode import json_documents

router = APIRouter(prefix="/api/v1beta2/queries")

#: How long one engine step may wait for input before the stream checks for a stop.
_STEP = 0.25
#: Seconds between two ``metrics`` events of a streaming query.
_METRICS_EVERY = 1.0
#: The User-Agent prefix of Timeplus's generated Python client, which sends ``Accept:
#: application/json`` yet reads every SELECT's answer as SSE (Timeplus always answers SSE).
_TIMEPLUS_CLIENT = "Swagger-Codegen/"
#: How often a computing statement checks whether it must stop.
_WATCH = 0.1


class BatchingPolicy(BaseModel):
    """Timeplus's batching policy: at most ``count`` rows per data event."""

    count: int | None = Field(default=None, gt=0)
    time_ms: int | None = Field(default=None, gt=0)


class QueryIn(BaseModel):
    """Timeplus's create-query request (``name``, ``description``, ``tags`` are accepted and unused);
    ``query_id`` names it for ``GET``/``DELETE /queries`` (default: a new id)."""

    sql: str
    batching_policy: BatchingPolicy | None = None
    query_id: str | None = Field(None, min_length=1, max_length=128)


async def execute_sql(srv: Server, sql: str) -> StatementResult:
    """Run one statement on the path every face shares (``POST /queries``, the views and external
    streams endpoints): what the statement answers, or its :class:`SinkflowError`."""
    return await srv.pipelines.execute(sql)


def table_rows(table: pa.Table) -> list[dict[str, Any]]:
    """A result table as JSON-ready row objects."""
    return [orjson.loads(doc) for batch in table.to_batches() for doc in json_documents(batch)]


def wants_event_stream(request: Request) -> bool:
    """Whether the client reads SSE: it accepts ``text/event-stream``, or it is Timeplus's SDK."""
    return ("text/event-stream" in request.headers.get("accept", "")
            or request.headers.get("user-agent", "").startswith(_TIMEPLUS_CLIENT))


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _data(payloads: list[bytes]) -> bytes:
    return b"".join(b"data: " + payload + b"\n\n" for payload in payloads)


@router.post("")
async def run_query(body: QueryIn, request: Request, srv: ServerDep) -> Response:
    """Run one statement. DDL and INSERT answer a JSON status; a bounded SELECT its rows as JSON,
    or SSE when the client reads SSE; a streaming SELECT answers SSE until its LIMIT is reached,
    it is cancelled or deleted, or the client goes away — then it is stopped.

    While it computes, a statement is listed by ``GET /queries`` and stopped by ``DELETE``, by
    its client going away, or after the server's ``query_timeout``: raises
    :class:`QueryTimedOut` or :class:`QueryStopped` then."""
    query_id = body.query_id or str(uuid.uuid4())
    if query_id in srv.queries:
        raise InvalidInput(f"a query with id '{query_id}' is already running")
    scope = CancelScope()
    srv.queries[query_id] = RunningQuery(body.sql, None, time.time(), scope)
    try:
        result = await _run_cancellable(query_id, body.sql, scope, request, srv)
    finally:
        srv.queries.pop(query_id, None)
    if result.kind == "status":
        return JSONResponse({"status": "ok", "message": result.message, "count": result.count})
    if result.kind == "rows" and not wants_event_stream(request):
        assert result.table is not None
        return JSONResponse({"columns": timeplus.header(result.table.schema), "rows": table_rows(result.table)})
    per_event = body.batching_policy.count if body.batching_policy else None
    if result.kind == "rows":
        assert result.table is not None
        record = QueryRecord(body.sql, timeplus.header(result.table.schema), await _analysis(srv, body.sql), id=query_id)
        events = _table_events(srv.query_records.add(record), result.table, per_event)
    else:
        execution = result.execution
        assert isinstance(execution, QueryExecution)
        record = srv.query_records.add(QueryRecord(body.sql, timeplus.header(execution.schema),
                                                   timeplus.analysis(execution.plan), id=query_id))
        srv.queries[record.id] = RunningQuery(body.sql, execution, time.time())
        events = _stream_events(record, execution, srv, per_event)
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _run_cancellable(query_id: str, sql: str, scope: CancelScope, request: Request,
                           srv: Server) -> StatementResult:
    """Run ``sql`` (the engine computes in worker threads: the event loop keeps serving),
    cancelling it when it is deleted, its client goes away or it runs too long."""

    async def work() -> StatementResult:
        with scope.active():  # a context variable: the worker threads the statement uses see it
            return await execute_sql(srv, sql)

    loop = asyncio.get_running_loop()
    timeout = srv.settings.query_timeout
    deadline = loop.time() + timeout
    worker = asyncio.ensure_future(work())
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


async def _analysis(srv: Server, sql: str) -> dict[str, Any]:
    """The analysis of a bounded statement's SQL: its plan's when it is a SELECT."""
    try:
        plan: QueryPlan = await asyncio.to_thread(srv.engine.plan, sql)
    except SinkflowError:  # SHOW, DESCRIBE …: statements answering rows, not SELECTs
        return {"original_query": sql, "query_type": sql.split(None, 1)[0].upper(), "is_streaming": False}
    return timeplus.analysis(plan)


def _metrics(record: QueryRecord) -> dict[str, Any]:
    elapsed_ms = max(time.time() * 1000 - record.start_time, 1)
    return {"count": record.rows, "eps": int(record.rows * 1000 / elapsed_ms), "processing_time": int(elapsed_ms),
            "last_event_time": record.last_result_time, "response_time": record.to_dict()["response_time"], "scanned_rows": record.rows_read, "scanned_bytes": 0}


def _row_events(batches: list[pa.RecordBatch], per_event: int | None) -> bytes:
    """The ``data:`` events of result batches, rows as arrays in header order."""
    return b"".join(_data(timeplus.row_arrays(batch, per_event)) for batch in batches)


async def _table_events(record: QueryRecord, table: pa.Table, per_event: int | None) -> AsyncIterator[bytes]:
    yield _event("query", record.to_dict())
    record.rows_read = table.num_rows
    for batch in table.to_batches():
        record.delivered(batch.num_rows)
        yield _data(timeplus.row_arrays(batch, per_event))
    yield _event("metrics", _metrics(record))
    record.end("finished")
    yield _event("query", record.to_dict())


async def _stream_events(record: QueryRecord, execution: QueryExecution, srv: Server,
                         per_event: int | None) -> AsyncIterator[bytes]:
    """Rows as they come; the query is stopped and its state freed however the stream ends
    (a client that goes away cancels this generator, and the query is then canceled)."""
    try:
        yield _event("query", record.to_dict())
        next_metrics = time.monotonic() + _METRICS_EVERY
        while not execution.finished and record.id in srv.queries:
            batches = [batch for batch in await run_step(execution, _STEP) if batch.num_rows]
            if batches:
                for batch in batches:
                    record.delivered(batch.num_rows)
                # Encoding makes dozens of Arrow calls, each giving the GIL up and waiting to get
                # it back from busy threads: in a worker thread, that waiting holds up no one.
                yield await asyncio.to_thread(_row_events, batches, per_event)
            record.rows_read = int(execution.stats().get("rows_read", 0))
            if time.monotonic() >= next_metrics:
                next_metrics = time.monotonic() + _METRICS_EVERY
                yield _event("metrics", _metrics(record))
        yield _event("metrics", _metrics(record))
        record.end("finished" if execution.finished else "canceled")
        yield _event("query", record.to_dict())
    except SinkflowError as exc:
        record.end("failed", exc.message)
        yield _event("query", {**record.to_dict(), "code": exc.to_dict().get("code")})
    finally:
        record.end("canceled", "the client went away")
        srv.queries.pop(record.id, None)
        execution.close()


@router.get("")
async def list_queries(srv: ServerDep) -> list[dict[str, Any]]:
    """The queries clients ran: statements still computing and running streaming queries first,
    then the recent finished ones."""
    computing = [{"id": qid, "sql": q.sql, "status": "running", "start_time": int(q.started_at * 1000)}
                 for qid, q in srv.queries.items() if q.execution is None]
    for running in srv.query_records.all():
        live = srv.queries.get(running.id)
        if live is not None and live.execution is not None:
            running.rows_read = int(live.execution.stats().get("rows_read", 0))
    return computing + [record.to_dict() for record in srv.query_records.all()]


@router.get("/{query_id}")
async def get_query(query_id: str, srv: ServerDep) -> dict[str, Any]:
    return srv.query_records.get(query_id).to_dict()


@router.post("/{query_id}/cancel", status_code=204)
async def cancel_query(query_id: str, srv: ServerDep) -> None:
    """Stop a running query (its status becomes ``canceled``); a query that is not running is left as it is."""
    running = srv.queries.pop(query_id, None)
    if running is not None and running.scope is not None:  # a statement still computing
        running.scope.cancel("it was deleted")
        return
    record = srv.query_records.get(query_id)
    if running is not None:
        record.end("canceled", "canceled by request")


@router.delete("/{query_id}", status_code=204)
async def delete_query(query_id: str, srv: ServerDep) -> None:
    """Stop the query if it runs, and forget it. Raises :class:`NotFound` for an unknown id."""
    computing = query_id in srv.queries and srv.queries[query_id].execution is None
    await cancel_query(query_id, srv)
    if not computing:
        srv.query_records.remove(query_id)
