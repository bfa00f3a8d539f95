"""Streams and ingest: ``/api/v1beta2/streams`` in Timeplus's request shapes."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from starlette.routing import Route
from pydantic import BaseModel, Field

from sinkflow.api.context import Server, ServerDep
from sinkflow.errors import InvalidInput
from sinkflow.runtime.off_loop import run_ingest
from sinkflow.streams.ingest_formats import decode_body, ingest_format
from sinkflow.streams.store import AppendResult, Stream, StreamSettings
from sinkflow.streams.types import TP_TIME, Column, parse_type

router = APIRouter(prefix="/api/v1beta2/streams")


class ColumnIn(BaseModel):
    name: str
    type: str
    default: str | None = None


class StreamIn(BaseModel):
    """Timeplus's create-stream request."""

    name: str
    columns: list[ColumnIn] = Field(min_length=1)
    event_time_column: str | None = None
    description: str = ""
    retention_ms: int | None = Field(default=None, gt=0)
    retention_bytes: int | None = Field(default=None, gt=0)


def stream_info(stream: Stream) -> dict[str, Any]:
    """A stream as the API shows it."""
    return {
        "name": stream.name,
        "columns": [c.to_dict() for c in stream.columns],
        "event_time_column": stream.settings.event_time_column or TP_TIME,
        "description": stream.settings.description,
        "retention_ms": stream.settings.retention_ms,
        "retention_bytes": stream.settings.retention_bytes,
        "row_count": stream.head - stream.start,
        "head": stream.head,
    }


@router.get("")
async def list_streams(srv: ServerDep) -> list[dict[str, Any]]:
    return [stream_info(s) for s in srv.store.list()]


@router.post("", status_code=201)
async def create_stream(body: StreamIn, srv: ServerDep) -> dict[str, Any]:
    columns = []
    for i, col in enumerate(body.columns):
        if col.default:
            raise InvalidInput(f"columns[{i}] '{col.name}': column defaults are not supported; "
                               "a missing non-nullable value is stored as its type's zero value")
        try:
            columns.append(Column(col.name, parse_type(col.type)))
        except InvalidInput as exc:
            raise InvalidInput(f"columns[{i}] '{col.name}': {exc.message}") from None
    settings = StreamSettings(event_time_column=body.event_time_column, retention_ms=body.retention_ms,
                              retention_bytes=body.retention_bytes, description=body.description)
    return stream_info(srv.store.create(body.name, columns, settings))


@router.get("/{name}")
async def get_stream(name: str, srv: ServerDep) -> dict[str, Any]:
    return stream_info(srv.store.get(name))


@router.delete("/{name}", status_code=204)
async def drop_stream(name: str, srv: ServerDep) -> None:
    srv.store.drop(name)


async def ingest(request: Request) -> Response:
    """``POST /{name}/ingest``: append the body's rows, in one of Timeplus's formats
    (``compact``, ``streaming``, ``lines``, ``raw``: see :mod:`sinkflow.streams.ingest_formats`,
    chosen by ``?format=`` or the Content-Type); a bad value rejects the whole body (400 naming
    row, column, value). Decoding runs on the ingest thread, so a large body does not hold up
    the event loop that the sinks and live queries share.

    A plain Starlette endpoint, not a FastAPI one: ingest is the busiest request, and FastAPI's
    dependency and parameter handling cost a sizeable share of a small batch's time."""
    srv: Server = request.app.state.server
    stream = srv.store.get(request.path_params["name"])
    body_format = ingest_format(request.query_params.get("format"), request.headers.get("content-type"))
    body = await request.body()

    def append() -> AppendResult:
        return stream.append_batch(decode_body(stream.name, stream.user_columns, body_format, body))

    result = await run_ingest(append)
    return Response(orjson.dumps({"first_seq": result.first_seq, "count": result.count}),
                    media_type="application/json")


#: The ingest endpoint as a route of its own: the app matches it before every other route (a
#: request walking FastAPI's routers to it cost more than a tenth of a 500-row request).
ingest_route = Route(f"{router.prefix}/{{name}}/ingest", ingest, methods=["POST"])
