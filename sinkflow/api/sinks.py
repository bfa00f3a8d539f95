"""The Sink API: ``/api/v1beta2/sinks`` in Timeplus's shape, plus status, pause, resume, restart."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import AliasChoices, BaseModel, Field

from sinkflow.api.context import Server, ServerDep
from sinkflow.catalog import SinkRecord
from sinkflow.runtime.manager import SinkDefinition
from sinkflow.sinks import registry

router = APIRouter(prefix="/api/v1beta2")


class SinkIn(BaseModel):
    """A sink definition. ``sql`` may also be sent as ``query`` (what the API answers with)."""

    name: str
    description: str = ""
    sql: str = Field(validation_alias=AliasChoices("sql", "query"))
    type: str
    properties: dict[str, Any] = Field(default_factory=dict)

    def definition(self) -> SinkDefinition:
        return SinkDefinition(name=self.name, description=self.description, sql=self.sql, type=self.type,
                              properties=self.properties)


def sink_out(srv: Server, record: SinkRecord) -> dict[str, Any]:
    """A sink as the API shows it: the SQL as ``query``, secrets masked, live status."""
    properties = registry.shown(record.type, record.properties, record.secrets)
    return {
        "id": record.id,
        "name": record.name,
        "description": record.description,
        "query": record.sql,
        "type": record.type,
        "properties": properties,
        "created_at": record.created_at,
        "status": srv.sinks.status(record.id).to_dict(),
    }


@router.get("/sink-types")
async def sink_types() -> dict[str, Any]:
    """Each sink type's property schema (required, defaults, secrets, templates), for forms."""
    return registry.property_schemas()


@router.post("/sinks", status_code=201)
async def create_sink(body: SinkIn, srv: ServerDep) -> dict[str, Any]:
    return sink_out(srv, await srv.sinks.create(body.definition()))


@router.get("/sinks")
async def list_sinks(srv: ServerDep) -> list[dict[str, Any]]:
    return [sink_out(srv, record) for record in srv.sinks.records()]


@router.get("/sinks/{sink_id}")
async def get_sink(sink_id: str, srv: ServerDep) -> dict[str, Any]:
    return sink_out(srv, srv.sinks.record(sink_id))


@router.put("/sinks/{sink_id}")
async def update_sink(sink_id: str, body: SinkIn, srv: ServerDep) -> dict[str, Any]:
    return sink_out(srv, await srv.sinks.update(sink_id, body.definition()))


@router.patch("/sinks/{sink_id}")
async def patch_sink(sink_id: str, body: dict[str, Any], srv: ServerDep) -> dict[str, Any]:
    """Change part of a sink; ``properties`` merge into the stored ones (JSON merge patch)."""
    return sink_out(srv, await srv.sinks.patch(sink_id, body))


@router.delete("/sinks/{sink_id}", status_code=204)
async def delete_sink(sink_id: str, srv: ServerDep, drop_dead_letters: bool = False) -> None:
    """Delete a sink; ``?drop_dead_letters=true`` drops its dead-letter stream with it."""
    await srv.sinks.delete(sink_id, drop_dead_letters)


@router.get("/sinks/{sink_id}/status")
async def sink_status(sink_id: str, srv: ServerDep) -> dict[str, Any]:
    return srv.sinks.status(sink_id).to_dict()


@router.post("/sinks/{sink_id}/pause")
async def pause_sink(sink_id: str, srv: ServerDep) -> dict[str, Any]:
    return sink_out(srv, srv.sinks.pause(sink_id))


@router.post("/sinks/{sink_id}/resume")
async def resume_sink(sink_id: str, srv: ServerDep) -> dict[str, Any]:
    return sink_out(srv, srv.sinks.resume(sink_id))


@router.post("/sinks/{sink_id}/restart")
async def restart_sink(sink_id: str, srv: ServerDep) -> dict[str, Any]:
    return sink_out(srv, await srv.sinks.restart(sink_id))
