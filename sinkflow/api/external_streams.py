"""``/api/v1beta2/external_streams`` in Timeplus's shapes, as ``CREATE EXTERNAL STREAM``,
``SHOW EXTERNAL STREAMS``, ``SHOW CREATE`` and ``DROP STREAM`` statements on the path
``POST /queries`` uses. Secret settings (passwords, tokens) answer masked, as ``SHOW CREATE`` does."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from sinkflow.api import sql_faces
from sinkflow.api.context import Server, ServerDep
from sinkflow.errors import NotFound

router = APIRouter(prefix="/api/v1beta2/external_streams")


class ColumnIn(BaseModel):
    name: str
    type: str


class SettingIn(BaseModel):
    key: str
    value: Any


class ExternalStreamIn(BaseModel):
    """Timeplus's create-external-stream request: settings as ``{key, value}`` pairs (``type``
    among them: kafka, pulsar, http, …)."""

    name: str
    columns: list[ColumnIn] = Field(min_length=1)
    settings: list[SettingIn] = Field(min_length=1)
    description: str | None = None

    def statement(self) -> str:
        """The SQL that creates the external stream. Raises :class:`InvalidInput` naming a bad field."""
        name = sql_faces.identifier("name", self.name)
        columns = sql_faces.column_list([(c.name, c.type) for c in self.columns])
        settings = ", ".join(f"{sql_faces.identifier(f'settings[{i}].key', s.key)}={sql_faces.literal(s.value)}"
                             for i, s in enumerate(self.settings))
        return f"CREATE EXTERNAL STREAM {name} {columns} SETTINGS {settings}"


async def _names(srv: Server) -> list[str]:
    return [str(r["name"]) for r in await sql_faces.run(srv, "SHOW EXTERNAL STREAMS")
            if r.get("kind", "external_stream") == "external_stream"]


async def _external_stream(srv: Server, name: str) -> dict[str, Any]:
    """An external stream in Timeplus's ExternalStream shape (also valid as its ExternalStreamDef)."""
    create_query, statement = await sql_faces.definition(srv, name)
    settings: dict[str, object] = statement.settings
    return {
        "name": name,
        "description": "",
        "type": str(settings.get("type", "")),
        "create_query": create_query,
        "columns": [{"name": c.name, "type": c.type.name} for c in statement.columns],
        "settings": [{"key": key, "value": _text(value)} for key, value in settings.items()],
    }


def _text(value: object) -> str:
    """A setting's value as Timeplus's settings carry it: text (true/false for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@router.post("", status_code=201)
async def create_external_stream(body: ExternalStreamIn, srv: ServerDep) -> dict[str, Any]:
    await sql_faces.run(srv, body.statement())
    return await _external_stream(srv, body.name)


@router.get("")
async def list_external_streams(srv: ServerDep) -> list[dict[str, Any]]:
    return [await _external_stream(srv, name) for name in await _names(srv)]


@router.get("/{name}")
async def get_external_stream(name: str, srv: ServerDep) -> dict[str, Any]:
    if name not in await _names(srv):
        raise NotFound(f"external stream '{name}' not found")
    return await _external_stream(srv, name)


@router.delete("/{name}", status_code=204)
async def drop_external_stream(name: str, srv: ServerDep) -> None:
    if name not in await _names(srv):
        raise NotFound(f"external stream '{name}' not found")
    await sql_faces.run(srv, f"DROP STREAM {sql_faces.identifier('name', name)}")
