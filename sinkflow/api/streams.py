"""Streams and ingest: ``/api/v1beta2/streams`` in Timeplus's request shapes."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import AliasChoices, BaseModel, Field
from starlette.routing import Route

from sinkflow.api import timeplus
from sinkflow.api.context import Server, ServerDep
from sinkflow.errors import InvalidInput
from sinkflow.runtime.dead_letter import is_dead_letter_stream
from sinkflow.runtime.off_loop import run_ingest
from sinkflow.streams.ingest_formats import decode_body, ingest_format
from sinkflow.streams.store import AppendResult, Stream, StreamSettings
from sinkflow.streams.types import TP_TIME, Column, parse_type

router = APIRouter(prefix="/api/v1beta2/streams")


class ColumnIn(BaseModel):
    """A column: ``default`` is a DEFAULT expression (an ALIAS one with ``alias``), evaluated at ingest."""

    name: str
    type: str
    default: str | None = None
    alias: bool = False
    comment: str = ""


class StreamIn(BaseModel):
    """Timeplus's create-stream request; its clients send every optional field, as null when unset.

    Retention may be given with Timeplus's names (``logstore_retention_*``), where a non-positive
    value means unlimited, and as a ``ttl_expression``; only the ``append`` mode exists here."""

    name: str
    columns: list[ColumnIn] = Field(min_length=1)
    event_time_column: str | None = None
    event_time_timezone: str | None = None
    description: str | None = ""
    retention_ms: int | None = Field(default=None, validation_alias=AliasChoices("retention_ms", "logstore_retention_ms"))
    retention_bytes: int | None = Field(default=None,
                                        validation_alias=AliasChoices("retention_bytes", "logstore_retention_bytes"))
    ttl_expression: str | None = None
    mode: str | None = None
    primary_key: list[str] | str | None = None
    version_column: str | None = None

    def settings(self) -> StreamSettings:
        """The stream's settings (Timeplus's nulls and -1/0 retentions mean "none").

        Raises :class:`InvalidInput` naming a field sinkflow cannot honour or a bad value."""
        if self.event_time_timezone not in (None, "", "UTC"):
            raise InvalidInput(f"'event_time_timezone': event times are kept in UTC, not {self.event_time_timezone!r}")
        retention_ms = self.retention_ms if self.retention_ms and self.retention_ms > 0 else None
        if self.ttl_expression:
            ttl = timeplus.ttl_ms(self.ttl_expression, self.event_time_column)
            retention_ms = min(ttl, retention_ms) if retention_ms else ttl
        return StreamSettings.from_dict({
            "event_time_column": self.event_time_column, "retention_ms": retention_ms,
            "retention_bytes": self.retention_bytes if self.retention_bytes and self.retention_bytes > 0 else None,
            "description": self.description or "", "mode": self.mode or "append",
            "primary_key": self.primary_key or [], "version_column": self.version_column,
        })


def stream_info(stream: Stream) -> dict[str, Any]:
    """A stream as the API shows it, with the fields of Timeplus's stream model."""
    return {**timeplus.stream_fields(stream),
        "name": stream.name,
        "columns": [c.to_dict() for c in stream.columns],
        "event_time_column": stream.settings.event_time_column or TP_TIME,
        "description": stream.settings.description,
        "retention_ms": stream.settings.retention_ms,
        "retention_bytes": stream.settings.retention_bytes,
        "mode": stream.settings.mode,
        "primary_key": list(stream.settings.primary_key),
        "version_column": stream.settings.version_column,
        "row_count": stream.head - stream.start,
        "head": stream.head,
        # Rows found damaged on disk (checksum mismatch): skipped by every reader, never sent on.
        "damaged_rows": stream.log.damaged_rows,
        # A stream sinkflow keeps for itself (a sink's dead letters), listed apart from the user's.
        "internal": is_dead_letter_stream(stream.name, stream.settings.description),
    }


@router.get("")
async def list_streams(srv: ServerDep, internal: bool | None = None) -> list[dict[str, Any]]:
    """Every stream, the user's first, then internal ones (dead letters); ``?internal=false``
    lists only the user's, ``?internal=true`` only the internal ones."""
    infos = [stream_info(s) for s in srv.store.list()]
    infos.sort(key=lambda info: info["internal"])  # stable: by name within each group
    return [info for info in infos if internal is None or info["internal"] == internal]


@router.post("", status_code=201)
async def create_stream(body: StreamIn, srv: ServerDep) -> dict[str, Any]:
    columns = []
    for i, col in enumerate(body.columns):
        try:
            columns.append(Column(col.name, parse_type(col.type), col.default or None, col.alias, col.comment))
        except InvalidInput as exc:
            raise InvalidInput(f"columns[{i}] '{col.name}': {exc.message}") from None
    return stream_info(srv.store.create(body.name, columns, body.settings()))


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
    row, column, value). A small body is decoded on the event loop, a large one on the ingest
    thread, and ingest yields its time to the queries' steps while they are behind (see
    :func:`run_ingest`).

    A plain Starlette endpoint, not a FastAPI one: ingest is the busiest request, and FastAPI's
    dependency and parameter handling cost a sizeable share of a small batch's time."""
    srv: Server = request.app.state.server
    stream = srv.store.get(request.path_params["name"])
    # Most requests have no query string: parsing an empty one cost a few percent of a small request.
    query_format = request.query_params.get("format") if request.scope.get("query_string") else None
    body_format = ingest_format(query_format, request.headers.get("content-type"))
    body = await request.body()

    def append() -> AppendResult:
        return stream.append_batch(decode_body(stream.name, stream.user_columns, body_format, body))

    result = await run_ingest(append, len(body))
    return Response(orjson.dumps({"first_seq": result.first_seq, "count": result.count}),
                    media_type="application/json")


#: The ingest endpoint as a route of its own: the app matches it before every other route (a
#: request walking FastAPI's routers to it cost more than a tenth of a 500-row request).
ingest_route = Route(f"{router.prefix}/{{name}}/ingest", ingest, methods=["POST"])
