"""Sink types by name: their classes, their property validation, and secret masking.

Destination modules are imported lazily, so a server that never uses Pulsar never loads
its client library.
"""

from __future__ import annotations

import copy
import importlib
from typing import Any

from pydantic import ValidationError

from sinkflow.errors import InvalidInput
from sinkflow.sinks import labels
from sinkflow.sinks.base import Sink
from sinkflow.sinks.config import SinkConfig, normalize_properties, validation_message

#: type name → "module:Class" of its Sink implementation.
SINK_TYPES: dict[str, str] = {
    "http": "sinkflow.sinks.http:HttpSink",
    "webhook": "sinkflow.sinks.webhook:WebhookSink",
    "slack": "sinkflow.sinks.slack:SlackSink",
    "email": "sinkflow.sinks.email:EmailSink",
    "timeplus": "sinkflow.sinks.stream:StreamSink",
    "kafka": "sinkflow.sinks.kafka:KafkaSink",
    "pulsar": "sinkflow.sinks.pulsar:PulsarSink",
    "clickhouse": "sinkflow.sinks.clickhouse:ClickHouseSink",
    "snowflake": "sinkflow.sinks.snowflake:SnowflakeSink",
}

MASK = "********"


def sink_class(sink_type: str) -> type[Sink]:
    """The Sink class for ``sink_type``. Raises :class:`InvalidInput` naming the unknown type."""
    target = SINK_TYPES.get(sink_type)
    if target is None:
        known = ", ".join(sorted(SINK_TYPES))
        raise InvalidInput(f"unknown sink type '{sink_type}' (known: {known})")
    module_name, class_name = target.split(":")
    cls: type[Sink] = getattr(importlib.import_module(module_name), class_name)
    return cls


def parse_properties(sink_type: str, properties: dict[str, Any]) -> SinkConfig:
    """Validate ``properties`` against the type's model, filling the spec's defaults.

    Raises :class:`ConfigError` naming the first bad property and why (missing, wrong type,
    not an allowed value, unknown property).
    """
    model = sink_class(sink_type).config_class
    try:
        return model.model_validate(normalize_properties(model, properties))
    except ValidationError as exc:
        raise validation_message(model, exc, lambda prop: _is_secret(model, prop)) from None


def _is_secret(model: type[SinkConfig], prop: str) -> bool:
    return any(prop == field or prop.startswith(field + ".") for field in model.secret_fields)


def split_secrets(sink_type: str, properties: dict[str, Any],
                  extra: tuple[str, ...] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split raw properties into (public, secrets) by the type's ``secret_fields`` and the
    dotted paths ``extra`` (secrets only the caller knows of); neither is mutated.

    Secrets are keyed by their dotted path so :func:`join_secrets` can put them back.
    """
    public = copy.deepcopy(properties)
    secrets: dict[str, Any] = {}
    for path in (*sink_class(sink_type).config_class.secret_fields, *extra):
        parent, key = _parent(public, path)
        if parent is not None and key in parent:
            secrets[path] = parent.pop(key)
    return public, secrets


def join_secrets(public: dict[str, Any], secrets: dict[str, Any]) -> dict[str, Any]:
    """The raw properties again, from what :func:`split_secrets` returned."""
    whole = copy.deepcopy(public)
    for path, value in secrets.items():
        parts = path.split(".")
        node = whole
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return whole


def masked(sink_type: str, properties: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``properties`` with every secret that is present replaced by a mask."""
    public, secrets = split_secrets(sink_type, properties)
    return join_secrets(public, {path: MASK for path in secrets})


def _parent(props: dict[str, Any], path: str) -> tuple[dict[str, Any] | None, str]:
    """The dict holding ``path``'s last part. Property names may contain dots themselves
    (``tls.disable``), so a path is first tried whole, then as nested keys."""
    if path in props:
        return props, path
    parts = path.split(".")
    node: Any = props
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    return (node if isinstance(node, dict) else None), parts[-1]


def property_schemas() -> dict[str, dict[str, Any]]:
    """Every sink type's JSON schema (required, defaults, secrets as ``format: password``) with
    its user-facing wording (:func:`sinkflow.sinks.labels.annotate`), for forms and the CLI."""
    schemas: dict[str, dict[str, Any]] = {}
    for sink_type in SINK_TYPES:
        try:
            model = sink_class(sink_type).config_class
        except ImportError:  # a destination whose client library is not installed is not offered
            continue
        # Serialization mode shows defaults as users write them (durations as "10s").
        schema = model.model_json_schema(by_alias=True, mode="serialization")
        # Properties every sink shares (the runtime's) come after the destination's own.
        own = {k: v for k, v in schema["properties"].items() if k not in SinkConfig.model_fields}
        schema["properties"] = own | {k: v for k, v in schema["properties"].items() if k not in own}
        schema["secrets"] = list(model.secret_fields)
        schema["templates"] = list(model.template_fields)
        schemas[sink_type] = labels.annotate(sink_type, schema)
    return schemas
