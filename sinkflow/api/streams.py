"""Streams and ingest: ``/api/v1beta2/streams`` in Timeplus's request shapes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from sinkflow.api.context import ServerDep
from sinkflow.errors import InvalidInput
from sinkflow.runtime.dead_letter import is_dead_letter_stream
from sinkflow.streams.store import Stream, StreamSettings
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


class IngestIn(BaseModel):
    """Timeplus's ingest request: column names and rows of values in that order."""

    columns: list[str] | None = None
    data: list[list[Any]]


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


@router.post("/{name}/ingest")
async def ingest(name: str, body: IngestIn, srv: ServerDep) -> dict[str, Any]:
    """Append the rows; a bad value rejects the whole batch (400 naming row, column, value)."""
    result = srv.store.get(name).append_rows(body.columns, body.data)
    return {"first_seq": result.first_seq, "count": result.count}
