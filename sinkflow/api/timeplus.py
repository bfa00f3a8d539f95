"""Timeplus's REST shapes for sinkflow's records: the fields Timeplus's clients (its Python SDK's
generated models) require, filled with sinkflow's real values.

sinkflow keeps one log per stream with one retention, where Timeplus has a streaming store
(``logstore_retention_*``) and a historical store (``ttl_expression``): both faces map onto the
one retention, and both are reported from it (``docs/clients.md``).
"""

from __future__ import annotations

import re
from typing import Any

import orjson
import pyarrow as pa

from sinkflow.engine import QueryPlan
from sinkflow.errors import InvalidInput
from sinkflow.runtime.status import SinkState, SinkStatus
from sinkflow.sinks.encode import json_documents
from sinkflow.streams.store import Stream
from sinkflow.streams.types import TP_TIME, from_arrow

#: Timeplus's answer for "no limit" in ``logstore_retention_bytes`` / ``logstore_retention_ms``.
UNLIMITED = -1

_UNIT_MS = {"second": 1_000, "minute": 60_000, "hour": 3_600_000, "day": 86_400_000, "week": 604_800_000}
_TTL = re.compile(
    r"^\s*(?:to_datetime\s*\(\s*(?P<wrapped>\w+)\s*\)|(?P<bare>\w+))\s*\+\s*interval\s+(?P<n>\d+)\s+(?P<unit>"
    + "|".join(_UNIT_MS) + r")s?\s*$", re.IGNORECASE)


def ttl_ms(expression: str, event_time_column: str | None) -> int:
    """The retention in milliseconds that Timeplus's ``ttl_expression`` asks for.

    Accepts ``[to_datetime(]col[)] + INTERVAL n UNIT`` (UNIT one of second, minute, hour, day,
    week, singular or plural) where ``col`` is ``_tp_time`` or the stream's event time column
    (which becomes ``_tp_time``). Raises :class:`InvalidInput` naming ``ttl_expression`` otherwise.
    """
    match = _TTL.match(expression)
    allowed = {TP_TIME, event_time_column} - {None}
    if match is None:
        raise InvalidInput(f"'ttl_expression': {expression!r} is not '<time column> + INTERVAL <n> <unit>' "
                           f"(units: {', '.join(_UNIT_MS)})")
    column = match["wrapped"] or match["bare"]
    if column not in allowed:
        raise InvalidInput(f"'ttl_expression': data expires by its event time, so the column must be "
                           f"{' or '.join(sorted(c for c in allowed if c))}, not '{column}'")
    number = int(match["n"])
    if number <= 0:
        raise InvalidInput(f"'ttl_expression': the interval must be positive, got {number}")
    return number * _UNIT_MS[match["unit"].lower()]


def ttl_expression(retention_ms: int | None) -> str:
    """The ``ttl_expression`` that keeps data ``retention_ms`` long ("" when kept forever), in the
    largest unit that states it exactly."""
    if not retention_ms:
        return ""
    for unit, size in sorted(_UNIT_MS.items(), key=lambda item: -item[1]):
        if retention_ms % size == 0:
            return f"to_datetime({TP_TIME}) + INTERVAL {retention_ms // size} {unit.upper()}"
    return f"to_datetime({TP_TIME}) + INTERVAL {retention_ms / 1000:g} SECOND"


def create_stream_sql(stream: Stream) -> str:
    """The ``CREATE STREAM`` statement that makes ``stream`` as it is."""
    columns = ", ".join(f"{c.name} {c.type.name}" for c in stream.user_columns)
    settings = stream.settings
    parts = [f"event_time_column='{settings.event_time_column}'"] if settings.event_time_column else []
    if settings.retention_ms:
        parts.append(f"logstore_retention_ms={settings.retention_ms}")
    if settings.retention_bytes:
        parts.append(f"logstore_retention_bytes={settings.retention_bytes}")
    return f"CREATE STREAM {stream.name} ({columns})" + (f" SETTINGS {', '.join(parts)}" if parts else "")


def stream_fields(stream: Stream) -> dict[str, Any]:
    """Timeplus's stream fields: an append-only ``Stream`` engine, its retention both ways."""
    settings = stream.settings
    expression = ttl_expression(settings.retention_ms)
    return {
        "engine": "Stream",
        "mode": "append",
        "primary_key": "",
        "is_external": False,
        "create_query": create_stream_sql(stream),
        "logstore_retention_ms": settings.retention_ms or UNLIMITED,
        "logstore_retention_bytes": settings.retention_bytes or UNLIMITED,
        "ttl_expression": expression,
        "ttl": expression,
    }


def sink_status(status: SinkStatus) -> tuple[str, str]:
    """Timeplus's ``status`` (running, stopped, error) and ``message`` for a sink's live status.

    A sink retrying a failing destination is still running (its rows wait); a paused, stopped or
    finished one is stopped; a failed one is in error, with its reason as the message.
    """
    state = status.state
    if state in (SinkState.STARTING, SinkState.RUNNING, SinkState.RETRYING):
        return "running", status.last_error if state is SinkState.RETRYING else ""
    if state is SinkState.FAILED:
        return "error", status.reason or status.last_error
    if state is SinkState.FINISHED:
        return "stopped", "finished: the bounded query delivered all its rows"
    return "stopped", status.reason


def header(schema: pa.Schema) -> list[dict[str, str]]:
    """Result columns as Timeplus's ``result.header``: name and Timeplus type."""
    return [{"name": f.name, "type": from_arrow(f.type, f.nullable).name} for f in schema]


def analysis(plan: QueryPlan) -> dict[str, Any]:
    """Timeplus's ``SQLAnalyzeResult`` of a planned SELECT."""
    logical = plan.logical
    source = logical.source.stream
    return {
        "original_query": plan.sql,
        "rewritten_query": plan.sql,
        "query_type": "SELECT",
        "is_streaming": not plan.bounded,
        "has_aggr": logical.aggregate is not None,
        "has_table_join": bool(logical.lookups),
        "has_subquery": False,
        "has_union": False,
        "group_by_columns": list(logical.aggregate.keys) if logical.aggregate else [],
        "result_columns": [{"column": c["name"], "column_type": c["type"]} for c in header(plan.output_schema)],
        "required_columns": [{"database": "default", "table": source, "column": c.name, "column_type": c.type.name,
                              "is_view": False} for c in logical.input_columns],
    }


def row_arrays(batch: pa.RecordBatch, per_event: int | None = None) -> list[bytes]:
    """``batch`` as Timeplus's data events' payloads: JSON arrays of rows, each row an array of its
    values in header order, ``per_event`` rows at most per payload (all when None)."""
    rows = [list(orjson.loads(doc).values()) for doc in json_documents(batch)]
    size = per_event or len(rows) or 1
    return [orjson.dumps(rows[i:i + size]) for i in range(0, len(rows), size)]
