"""Sink types by name: their classes, their property validation, and secret masking.

Destination modules are imported lazily, so a server that never uses Pulsar never loads
its client library.
"""

from __future__ import annotations

import copy
import importlib
from typing import Any

from pydantic import ValidationError

from sinkflow.errors import ConfigError, InvalidInput
from sinkflow.sinks import labels
from sinkflow.sinks.base import Sink
from sinkflow.sinks.config import SinkConfig, normalize_properties, validation_message
from sinkflow.sinks.credentials import (
    CREDENTIAL_NAME_PATTERN,
    MASK,
    is_credential_name,
    mask_url,
    unmask_url,
    url_has_credentials,
)

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
    """True when the value at ``prop`` is, or may contain, a secret: never repeat it."""
    return any(prop == field or prop.startswith(field + ".")
               for field in (*model.secret_fields, *model.header_fields, *model.url_fields))


def secret_paths(sink_type: str, properties: dict[str, Any]) -> list[str]:
    """The dotted paths of the secrets present in raw ``properties``: the type's secret
    properties, each header of its header maps whose name suggests a credential (any case),
    and each URL property that carries credentials."""
    model = sink_class(sink_type).config_class
    paths = [path for path in model.secret_fields if _holder(properties, path)[0] is not None]
    for prop in model.header_fields:
        headers = properties.get(prop)
        if isinstance(headers, dict):
            paths.extend(f"{prop}.{name}" for name in headers if is_credential_name(str(name)))
    for prop in model.url_fields:
        parent, key = _holder(properties, prop)
        if parent is not None and isinstance(parent[key], str) and url_has_credentials(parent[key]):
            paths.append(prop)
    return paths


def split_secrets(sink_type: str, properties: dict[str, Any],
                  extra: tuple[str, ...] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split raw properties into (public, secrets) by the type's secrets (:func:`secret_paths`)
    and the dotted paths ``extra`` (secrets only the caller knows of); neither is mutated.

    Secrets are keyed by their dotted path so :func:`join_secrets` can put them back. A URL
    with credentials stays in the public part masked (:func:`mask_url`), whole in the secrets.
    """
    public = copy.deepcopy(properties)
    secrets: dict[str, Any] = {}
    urls = sink_class(sink_type).config_class.url_fields
    for path in secret_paths(sink_type, properties):
        parent, key = _holder(public, path)
        assert parent is not None  # secret_paths found it
        secrets[path] = parent[key]
        if path in urls:
            parent[key] = mask_url(parent[key])
        else:
            del parent[key]
    for path in extra:
        parent, key = _holder(public, path)
        if parent is not None and path not in secrets:
            secrets[path] = parent.pop(key)
    return public, secrets


def join_secrets(public: dict[str, Any], secrets: dict[str, Any]) -> dict[str, Any]:
    """The raw properties again, from what :func:`split_secrets` returned."""
    whole = copy.deepcopy(public)
    for path, value in secrets.items():
        node, rest = whole, path
        # Descend while the path continues into an existing object (a header name may hold dots).
        while "." in rest and isinstance(node.get(rest.split(".", 1)[0]), dict) and rest not in node:
            head, rest = rest.split(".", 1)
            node = node[head]
        node[rest] = value
    return whole


def shown(sink_type: str, public: dict[str, Any], secrets: dict[str, Any]) -> dict[str, Any]:
    """Properties as the API shows them: each secret masked (a URL with only its credentials masked)."""
    urls = sink_class(sink_type).config_class.url_fields
    return join_secrets(public, {path: MASK for path in secrets if path not in urls})


def masked(sink_type: str, properties: dict[str, Any]) -> dict[str, Any]:
    """A copy of raw ``properties`` with every secret that is present masked."""
    public, secrets = split_secrets(sink_type, properties)
    return shown(sink_type, public, secrets)


def keep_masked(sink_type: str, properties: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """``properties`` of an update with each masked value replaced by the stored one.

    A client may send back what the API showed: a value equal to the mask (or a URL with masked
    parts) means "unchanged". Raises :class:`ConfigError` naming a masked property that has no
    stored value.
    """
    whole = copy.deepcopy(properties)
    urls = sink_class(sink_type).config_class.url_fields
    for path, keys in _string_leaves(whole):
        parent = _at(whole, keys[:-1])
        value = parent[keys[-1]]
        if MASK not in value:
            continue
        old_parent = _at(stored, keys[:-1])
        old = old_parent.get(keys[-1]) if isinstance(old_parent, dict) else None
        if path in urls and value != MASK:
            try:
                parent[keys[-1]] = unmask_url(value, old if isinstance(old, str) else "")
            except ValueError as exc:
                raise ConfigError(path, str(exc)) from None
        elif value == MASK:
            if old is None:
                raise ConfigError(path, f"is the mask '{MASK}' but no value is stored for it")
            parent[keys[-1]] = old
    return whole


def _string_leaves(props: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, tuple[str, ...]]]:
    """(dotted path, keys) of every string value inside ``props``, nested objects included."""
    leaves: list[tuple[str, tuple[str, ...]]] = []
    for key, value in props.items():
        keys = (*prefix, str(key))
        if isinstance(value, dict):
            leaves.extend(_string_leaves(value, keys))
        elif isinstance(value, str):
            leaves.append((".".join(keys), keys))
    return leaves


def _at(props: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        props = props.get(key) if isinstance(props, dict) else None
    return props


def _holder(props: dict[str, Any], path: str) -> tuple[dict[str, Any] | None, str]:
    """The dict holding the value at ``path`` and its key there, or (None, key) when absent.
    Property names may contain dots themselves (``tls.disable``), so a path is first tried
    whole, then as nested keys."""
    if path in props:
        return props, path
    parts = path.split(".")
    node: Any = props
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict) and parts[-1] in node:
        return node, parts[-1]
    return None, parts[-1]


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
        # Header maps whose credential-like headers (X-Api-Key, Authorization, *token*, ...) are secrets.
        schema["secret_headers"] = list(model.header_fields)
        schema["credential_pattern"] = CREDENTIAL_NAME_PATTERN
        schema["templates"] = list(model.template_fields)
        schemas[sink_type] = labels.annotate(sink_type, schema)
    return schemas
