"""The Sink API: ``/api/v1beta2/sinks`` in Timeplus's shape, plus status, pause, resume, restart."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from fastapi import APIRouter
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from sinkflow.api import timeplus
from sinkflow.api.context import Server, ServerDep
from sinkflow.catalog import SinkRecord
from sinkflow.errors import InvalidInput
from sinkflow.runtime.manager import SinkDefinition
from sinkflow.runtime.status import SinkState
from sinkflow.sinks import registry
from sinkflow.sinks.config import did_you_mean

router = APIRouter(prefix="/api/v1beta2")


#: Fields of a sink as the API answers it that are not part of a definition: accepted back (a
#: client may send what it read) and ignored.
_READ_ONLY = frozenset({"id", "created_at", "updated_at", "status", "message", "stats", "warnings"})
_FIELDS = ("name", "description", "sql", "type", "properties")


class BoundedQuery(InvalidInput):
    """A sink over a bounded query was submitted without ``confirm_bounded``."""

    code = "BOUNDED_QUERY"


def _refuse_unknown_fields(extra: dict[str, Any] | None) -> None:
    """Raise :class:`InvalidInput` naming the first field of a sink body that means nothing."""
    for key in extra or {}:
        if key not in _READ_ONLY:
            hint = did_you_mean(key, [*_FIELDS, "query"])
            raise InvalidInput(f"unknown field '{key}' in the sink definition{hint} "
                               f"(fields: {', '.join(_FIELDS)}; sink properties go inside 'properties')")


class SinkIn(BaseModel):
    """A sink definition. ``sql`` may also be sent as ``query`` (what the API answers with)."""

    model_config = ConfigDict(extra="allow")

    name: str
    description: str | None = ""
    sql: str = Field(validation_alias=AliasChoices("sql", "query"))
    type: str
    properties: dict[str, Any] = Field(default_factory=dict)

    def definition(self) -> SinkDefinition:
        """The definition to validate. Raises :class:`InvalidInput` for an unknown field."""
        _refuse_unknown_fields(self.model_extra)
        return SinkDefinition(name=self.name, description=self.description or "", sql=self.sql, type=self.type,
                              properties=self.properties)


class SinkPatch(BaseModel):
    """A partial change of a sink: only the fields given change. ``properties`` is merged into
    the stored ones (nested objects too; ``null`` removes a property), and a secret sent back
    as the mask ``********`` keeps its stored value."""

    model_config = ConfigDict(extra="allow")

    description: str | None = None
    sql: str | None = Field(None, validation_alias=AliasChoices("sql", "query"))
    properties: dict[str, Any] = Field(default_factory=dict)

    def applied_to(self, record: SinkRecord) -> SinkDefinition:
        """The whole definition after this change. Raises :class:`InvalidInput` for a field that
        cannot change here (``name``, ``type``) or an unknown one."""
        extra = dict(self.model_extra or {})
        for fixed in ("name", "type"):
            if fixed in extra and extra.pop(fixed) != getattr(record, fixed):
                raise InvalidInput(f"a sink's {fixed} cannot be changed; create a new sink instead")
        _refuse_unknown_fields(extra)
        stored = registry.join_secrets(record.properties, record.secrets)
        return SinkDefinition(name=record.name, type=record.type,
                              description=record.description if self.description is None else self.description,
                              sql=record.sql if self.sql is None else self.sql,
                              properties=merge_properties(stored, self.properties))


def merge_properties(stored: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """``stored`` with ``change`` merged in (JSON merge patch: objects merge key by key, ``null``
    removes); a value equal to the mask keeps what was stored. Neither argument is mutated."""
    merged = copy.deepcopy(stored)
    for key, value in change.items():
        if value is None:
            merged.pop(key, None)
        elif value == registry.MASK and key in merged:
            continue
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_properties(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


async def bounded_warnings(srv: Server, sql: str, confirmed: bool) -> list[str]:
    """The warning for a sink over a bounded query (``table(...)``), which sends the streams'
    whole history once and then stops. Raises :class:`BoundedQuery` unless ``confirmed``.
    The query is planned in a worker thread, as the sink's creation plans it."""
    if not await asyncio.to_thread(srv.sinks.is_bounded, sql):
        return []
    warning = ("the query is bounded (it reads table(...)): the sink sends every row the streams hold now, "
               "once, and then stops; use the stream itself (no table()) to keep sending new rows")
    if not confirmed:
        raise BoundedQuery(f"{warning}. To create it anyway, confirm with ?confirm_bounded=true")
    return [warning]


def sink_out(srv: Server, record: SinkRecord, warnings: list[str] | None = None) -> dict[str, Any]:
    """A sink as the API shows it: the SQL as ``query``, secrets masked, Timeplus's ``status``
    and ``message``, the live counters as ``stats``, and the ``warnings`` of the request that
    changed it (only when there are some)."""
    properties = registry.shown(record.type, record.properties, record.secrets)
    live = srv.sinks.status(record.id)
    status, message = timeplus.sink_status(live)
    return {
        "id": record.id,
        "name": record.name,
        "description": record.description,
        "query": record.sql,
        "type": record.type,
        "properties": properties,
        "created_at": record.created_at,
        "status": status,
        "message": message,
        "stats": live.to_dict(),
    } | ({"warnings": warnings} if warnings else {})


@router.get("/sink-types")
async def sink_types() -> dict[str, Any]:
    """Each sink type's property schema (required, defaults, secrets, templates), for forms.
    Made in a worker thread: the first call imports every destination's client library, seconds
    under load, which would otherwise hold the event loop (and every answer waiting on it)."""
    return await asyncio.to_thread(registry.property_schemas)


@router.post("/sinks", status_code=201)
async def create_sink(body: SinkIn, srv: ServerDep, confirm_bounded: bool = False) -> dict[str, Any]:
    definition = body.definition()
    warnings = await bounded_warnings(srv, definition.sql, confirm_bounded)
    return sink_out(srv, await srv.sinks.create(definition), warnings)


@router.get("/sinks")
async def list_sinks(srv: ServerDep) -> list[dict[str, Any]]:
    return [sink_out(srv, record) for record in srv.sinks.records()]


@router.get("/sinks/{sink_id}")
async def get_sink(sink_id: str, srv: ServerDep) -> dict[str, Any]:
    return sink_out(srv, srv.sinks.record(sink_id))


@router.put("/sinks/{sink_id}")
async def update_sink(sink_id: str, body: SinkIn, srv: ServerDep, confirm_bounded: bool = False) -> dict[str, Any]:
    definition = body.definition()
    warnings = await bounded_warnings(srv, definition.sql, confirm_bounded)
    return sink_out(srv, await srv.sinks.update(sink_id, definition), warnings)


@router.patch("/sinks/{sink_id}")
async def patch_sink(sink_id: str, body: SinkPatch, srv: ServerDep, confirm_bounded: bool = False) -> dict[str, Any]:
    definition = body.applied_to(srv.sinks.record(sink_id))
    warnings = await bounded_warnings(srv, definition.sql, confirm_bounded)
    return sink_out(srv, await srv.sinks.update(sink_id, definition), warnings)


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


@router.post("/sinks/{sink_id}/start")
async def start_sink(sink_id: str, srv: ServerDep) -> dict[str, Any]:
    """Timeplus's start: a paused sink resumes, a failed or finished one restarts, a running one is left be."""
    state = srv.sinks.status(sink_id).state
    if state is SinkState.PAUSED:
        return sink_out(srv, srv.sinks.resume(sink_id))
    if state in (SinkState.FAILED, SinkState.FINISHED, SinkState.STOPPED):
        return sink_out(srv, await srv.sinks.restart(sink_id))
    return sink_out(srv, srv.sinks.record(sink_id))


@router.post("/sinks/{sink_id}/stop")
async def stop_sink(sink_id: str, srv: ServerDep) -> dict[str, Any]:
    """Timeplus's stop: the sink pauses (its position is kept; start resumes it)."""
    if srv.sinks.status(sink_id).state is SinkState.PAUSED:
        return sink_out(srv, srv.sinks.record(sink_id))
    return sink_out(srv, srv.sinks.pause(sink_id))


@router.post("/sinks/{sink_id}/restart")
async def restart_sink(sink_id: str, srv: ServerDep) -> dict[str, Any]:
    return sink_out(srv, await srv.sinks.restart(sink_id))
