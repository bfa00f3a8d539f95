"""``/api/v1beta2/views`` in Timeplus's shapes, as ``CREATE [MATERIALIZED] VIEW``, ``SHOW …
VIEWS``, ``SHOW CREATE`` and ``DROP VIEW`` statements on the path ``POST /queries`` uses."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from sinkflow.api import sql_faces, timeplus
from sinkflow.api.context import Server, ServerDep
from sinkflow.errors import InvalidInput, NotFound

router = APIRouter(prefix="/api/v1beta2/views")


class ViewIn(BaseModel):
    """Timeplus's create-view request. ``target_stream`` applies to materialized views only."""

    name: str
    query: str
    materialized: bool | None = False
    target_stream: str | None = None
    description: str | None = None
    logstore_retention_ms: int | None = None
    logstore_retention_bytes: int | None = None
    ttl_expression: str | None = None

    def statement(self) -> str:
        """The SQL that creates the view. Raises :class:`InvalidInput` naming a field that cannot apply."""
        name = sql_faces.identifier("name", self.name)
        limits = {"logstore_retention_ms": (self.logstore_retention_ms or 0) > 0,
                  "logstore_retention_bytes": (self.logstore_retention_bytes or 0) > 0,
                  "ttl_expression": bool(self.ttl_expression)}
        for field, given in limits.items():
            if given:  # Timeplus's non-positive retention means none
                raise InvalidInput(f"'{field}': set a view's retention on its target stream (target_stream)")
        if not self.materialized:
            if self.target_stream:
                raise InvalidInput("'target_stream': only a materialized view writes into a stream")
            return f"CREATE VIEW {name} AS {self.query}"
        into = f" INTO {sql_faces.identifier('target_stream', self.target_stream)}" if self.target_stream else ""
        return f"CREATE MATERIALIZED VIEW {name}{into} AS {self.query}"


async def _names(srv: Server) -> list[tuple[str, bool]]:
    """Every view's name and whether it is materialized (plain views first)."""
    plain = [(str(r["name"]), False) for r in await sql_faces.run(srv, "SHOW VIEWS")]
    materialized = [(str(r["name"]), True) for r in await sql_faces.run(srv, "SHOW MATERIALIZED VIEWS")
                    if r.get("kind") == "materialized_view"]
    return plain + materialized


async def _view(srv: Server, name: str, materialized: bool) -> dict[str, Any]:
    """A view in Timeplus's View shape (a materialized view without a target keeps its own storage)."""
    create_query, statement = await sql_faces.definition(srv, name)
    target = getattr(statement, "target", None) or ""
    storage = target or name
    stream = srv.store.get(storage) if materialized and srv.store.exists(storage) else None
    retention = timeplus.stream_fields(stream) if stream is not None else {}
    return {
        "name": name,
        "description": "",
        "materialized": materialized,
        "query": statement.query.sql,
        "create_query": create_query,
        "target_stream": target,
        "columns": await sql_faces.described_columns(srv, storage if materialized else name),
        "logstore_retention_ms": retention.get("logstore_retention_ms", timeplus.UNLIMITED),
        "logstore_retention_bytes": retention.get("logstore_retention_bytes", timeplus.UNLIMITED),
        "ttl_expression": retention.get("ttl_expression", ""),
        "ttl": retention.get("ttl", ""),
    }


@router.post("", status_code=201)
async def create_view(body: ViewIn, srv: ServerDep) -> dict[str, Any]:
    await sql_faces.run(srv, body.statement())
    return await _view(srv, body.name, bool(body.materialized))


@router.get("")
async def list_views(srv: ServerDep) -> list[dict[str, Any]]:
    return [await _view(srv, name, materialized) for name, materialized in await _names(srv)]


@router.get("/{name}")
async def get_view(name: str, srv: ServerDep) -> dict[str, Any]:
    for known, materialized in await _names(srv):
        if known == name:
            return await _view(srv, name, materialized)
    raise NotFound(f"view '{name}' not found")


@router.delete("/{name}", status_code=204)
async def drop_view(name: str, srv: ServerDep) -> None:
    await sql_faces.run(srv, f"DROP VIEW {sql_faces.identifier('name', name)}")
