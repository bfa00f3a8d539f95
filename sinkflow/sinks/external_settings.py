"""Timeplus external-stream SETTINGS mapped onto the sink property models.

An external stream is a named destination: ``CREATE EXTERNAL STREAM … SETTINGS type='kafka',
brokers='…', topic='…'`` holds what a sink of type ``kafka`` holds in its properties, under
Timeplus's setting names. :func:`sink_properties` translates the settings into the properties of
the sink type that writes there; the sink's own model (:func:`registry.parse_properties`) then
validates them exactly as it validates a REST sink, and every error names the *setting* the user
wrote. Settings that sinkflow cannot honour are refused by name rather than ignored.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from sinkflow.errors import ConfigError, InvalidInput
from sinkflow.sinks import registry

#: external stream type → the sink type that writes there.
SINK_TYPE = {"kafka": "kafka", "http": "http", "pulsar": "pulsar", "timeplus": "timeplus", "clickhouse": "clickhouse"}
#: Types created with CREATE EXTERNAL TABLE rather than STREAM.
TABLE_TYPES = frozenset({"clickhouse"})
#: Settings that are secrets: passwords, tokens, and headers that carry credentials.
_SECRET_SETTING = re.compile(r"^(password|jwt)$|^http_header_.*(auth|token|key|secret)", re.IGNORECASE)
_TEMPLATE_FIELD = re.compile(r"\$\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::\s*([A-Za-z]+)\s*)?\}")


class SettingError(ConfigError):
    """A setting of an external stream is missing, unknown or invalid; ``prop`` names the setting."""

    def __init__(self, setting: str, message: str) -> None:
        InvalidInput.__init__(self, f"setting '{setting}': {message}")
        self.prop = setting


@dataclass
class SinkSettings:
    """What an external stream's settings mean for a sink: its type, its properties, which of
    them are secret (dotted paths), and which setting each property came from (for errors)."""

    sink_type: str
    properties: dict[str, Any] = field(default_factory=dict)
    secret_paths: set[str] = field(default_factory=set)
    origin: dict[str, str] = field(default_factory=dict)

    def put(self, prop: str, value: Any, setting: str, secret: bool = False) -> None:
        """Set ``prop`` from ``setting`` (a None value is left out, so a required one is reported missing)."""
        self.origin[prop] = setting
        if value is None:
            return
        self.properties[prop] = value
        if secret:
            self.secret_paths.add(prop)


def is_secret_setting(name: str) -> bool:
    """Whether a setting holds a secret (passwords, tokens, keys, Authorization headers)."""
    return bool(_SECRET_SETTING.search(name))


def split_settings(settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(public, secret) settings; secrets are stored apart and never shown back."""
    public = {k: v for k, v in settings.items() if not is_secret_setting(k)}
    return public, {k: v for k, v in settings.items() if is_secret_setting(k)}


#: An external stream's columns: (name, type name) pairs.
Columns = Sequence[tuple[str, str]]


def sink_properties(settings: dict[str, Any], columns: Columns, table: bool = False) -> SinkSettings:
    """The sink that writes to an external stream with these ``settings`` and ``columns``.

    Raises :class:`SettingError` naming the setting: ``type`` missing or unknown, a setting
    unknown for the type or unsupported, a value the sink's model refuses.
    """
    kind = settings.get("type")
    if not isinstance(kind, str) or not kind:
        raise SettingError("type", f"is required (one of {', '.join(sorted(SINK_TYPE))})")
    kind = kind.lower()
    if kind not in SINK_TYPE:
        raise SettingError("type", f"unknown external stream type '{kind}' (supported: {', '.join(sorted(SINK_TYPE))})")
    if (kind in TABLE_TYPES) != table:
        statement = "CREATE EXTERNAL TABLE" if kind in TABLE_TYPES else "CREATE EXTERNAL STREAM"
        raise SettingError("type", f"type '{kind}' is created with {statement}")
    result = SinkSettings(SINK_TYPE[kind])
    rest = {k: v for k, v in settings.items() if k != "type"}
    _MAPPERS[kind](rest, columns, result)
    for setting in rest:
        reason = _UNSUPPORTED.get(setting) or _UNSUPPORTED_PER_TYPE[kind].get(setting)
        if reason:
            raise SettingError(setting, f"Timeplus's setting is not supported here: {reason}")
        raise SettingError(setting, f"unknown for type '{kind}' (supported: {', '.join(_KNOWN[kind])})")
    try:
        registry.parse_properties(result.sink_type, result.properties)
    except ConfigError as err:
        setting = result.origin.get(err.prop) or result.origin.get(err.prop.split(".")[0], err.prop)
        detail = err.message.split(": ", 1)[1] if ": " in err.message else err.message
        raise SettingError(setting, detail) from None
    return result


def _take(rest: dict[str, Any], name: str, default: Any = None) -> Any:
    return rest.pop(name, default)


def _boolean(rest: dict[str, Any], name: str, default: bool = False) -> bool:
    value = rest.pop(name, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise SettingError(name, f"must be true or false (got {value!r})")


def _only(rest: dict[str, Any], name: str, allowed: Sequence[Any], why: str) -> None:
    """Refuse a setting whose value sinkflow cannot honour (``allowed`` are the values it can)."""
    if name in rest:
        value = rest.pop(name)
        normal = value.lower() if isinstance(value, str) else value
        if normal not in allowed:
            raise SettingError(name, f"{value!r} is not supported: {why}")


def data_format(rest: dict[str, Any], columns: Columns, allowed: Sequence[str]) -> str:
    """The ``data_format`` setting, defaulted as Timeplus does: RawBLOB for one string column
    (besides a Kafka message's key and headers), else JSONEachRow."""
    value = rest.pop("data_format", None)
    if value is None:
        columns = [c for c in columns if c[0] not in ("_tp_message_key", "_tp_message_headers")]
        single_text = len(columns) == 1 and columns[0][1].lower() == "string"
        return "RawBLOB" if single_text and "RawBLOB" in allowed else "JSONEachRow"
    for name in allowed:
        if isinstance(value, str) and value.lower() == name.lower():
            return name
    raise SettingError("data_format", f"{value!r} is not supported here (supported: {', '.join(allowed)})")


# -- per type -------------------------------------------------------------------------------------

_KAFKA_SASL = {"plain": "plain", "scram-sha-256": "scram-sha-256", "scram-sha-512": "scram-sha-512"}
#: sinkflow sink properties an external stream may set directly, per type (no Timeplus equivalent).
_PASS_THROUGH = {
    "kafka": ("batch_count", "compression", "delivery_guarantee", "partitions", "replication_factor"),
    "http": ("paralism", "retries", "retry_interval", "timeout"),
    "pulsar": (),
    "clickhouse": ("batch_count", "batch_duration", "engine"),
    "timeplus": (),
}


def _pass_through(kind: str, rest: dict[str, Any], out: SinkSettings) -> None:
    for name in _PASS_THROUGH[kind]:
        if name in rest:
            out.put(name, rest.pop(name), name)


def _kafka(rest: dict[str, Any], columns: Columns, out: SinkSettings) -> None:
    out.put("brokers", _take(rest, "brokers"), "brokers")
    out.put("topic", _take(rest, "topic"), "topic")
    fmt = data_format(rest, columns, ("JSONEachRow", "RawBLOB", "CSV"))
    out.put("data_type", {"RawBLOB": "raw", "CSV": "csv"}.get(fmt, "json"), "data_format")
    protocol = str(_take(rest, "security_protocol", "PLAINTEXT")).upper()
    if protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        raise SettingError("security_protocol", f"{protocol!r} is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL")
    out.put("tls.disable", protocol in ("PLAINTEXT", "SASL_PLAINTEXT"), "security_protocol")
    mechanism = str(_take(rest, "sasl_mechanism", "PLAIN")).lower()
    if protocol.startswith("SASL"):
        if mechanism not in _KAFKA_SASL:
            raise SettingError("sasl_mechanism", f"{mechanism!r} is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512")
        out.put("sasl", _KAFKA_SASL[mechanism], "sasl_mechanism")
    for name in ("username", "password"):
        if name in rest:
            out.put(name, rest.pop(name), name, secret=name == "password")
    if "skip_ssl_cert_check" in rest:
        out.put("tls.skip_verify_server", _boolean(rest, "skip_ssl_cert_check"), "skip_ssl_cert_check")
    if "ssl_ca_cert_file" in rest:
        out.put("tls.ca_file", rest.pop("ssl_ca_cert_file"), "ssl_ca_cert_file")
    if "message_key" in rest:
        out.put("message_key", rest.pop("message_key"), "message_key")
    elif any(name == "_tp_message_key" for name, _ in columns):
        out.put("message_key", "_tp_message_key", "columns")  # as in Timeplus: the key, not in the value
    _only(rest, "one_message_per_row", (True, 1, "true", "1"), "sinkflow writes one message per row")
    _pass_through("kafka", rest, out)


def _http(rest: dict[str, Any], columns: Columns, out: SinkSettings) -> None:
    out.put("url", _take(rest, "url"), "url")
    fmt = data_format(rest, columns, ("JSONEachRow", "RawBLOB", "Template"))
    if "write_method" in rest:
        out.put("http_method", rest.pop("write_method"), "write_method")
    headers: dict[str, str] = {}
    for name in [k for k in rest if k.lower().startswith("http_header_")]:
        # Setting names cannot hold '-': http_header_x_algolia_api_key sends x-algolia-api-key.
        headers[name[len("http_header_"):].replace("_", "-")] = str(rest.pop(name))
    if "username" in rest or "password" in rest:
        if any(h.lower() == "authorization" for h in headers):
            raise SettingError("username", "conflicts with http_header_Authorization")
        user, password = str(rest.pop("username", "")), str(rest.pop("password", ""))
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    if headers:
        out.put("http_header", headers, "http_header_Authorization" if "Authorization" in headers else "http_header_")
        for name in headers:
            if is_secret_setting(f"http_header_{name}"):
                out.secret_paths.add(f"http_header.{name}")
    row = rest.pop("format_template_row_format", None)
    resultset = rest.pop("format_template_resultset_format", None)
    rest.pop("format_template_rows_between_delimiter", None)  # one request per row: no delimiter between rows
    if fmt == "Template":
        if not row:
            raise SettingError("format_template_row_format", "is required when data_format is 'Template'")
        body = template_payload(str(row), str(resultset) if resultset else None)
        out.put("payload_field", body, "format_template_row_format")
    elif fmt == "RawBLOB":
        if len(columns) != 1:
            raise SettingError("data_format", "RawBLOB needs exactly one column (its text is the request body)")
        out.put("payload_field", "{{ .%s }}" % columns[0][0], "data_format")
    _only(rest, "one_message_per_row", (True, 1, "true", "1"), "sinkflow sends one request per row")
    _only(rest, "compression_method", ("none",), "request bodies are sent uncompressed")
    _only(rest, "skip_ssl_cert_check", (False, 0, "false", "0"), "certificates are always verified")
    _pass_through("http", rest, out)


def template_payload(row_format: str, resultset_format: str | None) -> str:
    """A ``{{ .col }}`` request body from Timeplus's Template format: ``${col:Raw}`` becomes
    ``{{ .col }}``, ``${col:JSON}`` ``{{ json .col }}``, and the row replaces ``${data}`` in
    the result-set format. Raises :class:`SettingError` for another escaping rule or a result
    set without ``${data}``."""

    def render(match: re.Match[str]) -> str:
        column, rule = match.group(1), (match.group(2) or "Escaped")
        if rule.lower() == "raw":
            return "{{ .%s }}" % column
        if rule.lower() == "json":
            return "{{ json .%s }}" % column
        raise SettingError("format_template_row_format",
                           f"escaping rule '{rule}' of column '{column}' is not supported (use Raw or JSON)")

    row = _TEMPLATE_FIELD.sub(render, row_format)
    if resultset_format is None:
        return row
    if "${data}" not in resultset_format:
        raise SettingError("format_template_resultset_format", "must contain ${data} (where the rows go)")
    return resultset_format.replace("${data}", row)


def _pulsar(rest: dict[str, Any], columns: Columns, out: SinkSettings) -> None:
    out.put("broker_url", _take(rest, "service_url"), "service_url")
    out.put("topic", _take(rest, "topic"), "topic")
    data_format(rest, [], ("JSONEachRow",))
    if "jwt" in rest:
        out.put("auth_type", "token", "jwt")
        out.put("auth_params", {"token": rest.pop("jwt")}, "jwt")
        out.secret_paths.add("auth_params.token")
        out.origin["auth_params.token"] = "jwt"
    else:
        out.put("auth_type", "", "jwt")
    if "message_key" in rest:
        out.put("message_key", rest.pop("message_key"), "message_key")
    _only(rest, "one_message_per_row", (True, 1, "true", "1"), "sinkflow sends one message per row")
    _pass_through("pulsar", rest, out)


def _clickhouse(rest: dict[str, Any], columns: Columns, out: SinkSettings) -> None:
    address = _take(rest, "address")
    if not address:
        raise SettingError("address", "is required (host:port of the native protocol, e.g. 'localhost:9000')")
    user = str(_take(rest, "user", "default"))
    password = str(_take(rest, "password", ""))
    database = str(_take(rest, "database", "default"))
    if _boolean(rest, "secure"):
        # Only the DSN can ask for TLS; it carries the password, so it is a secret as a whole.
        dsn = f"clickhouses://{quote(user, safe='')}:{quote(password, safe='')}@{address}/{database}"
        out.put("dsn", dsn, "address", secret=True)
    else:
        out.put("hosts", [str(address)], "address")
        out.put("username", user, "user")
        out.put("password", password, "password", secret=True)
        out.put("database", database, "database")
    out.put("table_name", _take(rest, "table"), "table")
    # An external table names a table that exists; should it not, it is made like a sink makes it.
    out.put("engine", "MergeTree() ORDER BY tuple()", "table")
    _pass_through("clickhouse", rest, out)


def _timeplus(rest: dict[str, Any], columns: Columns, out: SinkSettings) -> None:
    if "hosts" in rest:
        raise SettingError("hosts", "only this server's streams can be written (leave hosts out)")
    out.put("stream_name", _take(rest, "stream"), "stream")
    _pass_through("timeplus", rest, out)


_MAPPERS: dict[str, Callable[[dict[str, Any], Columns, SinkSettings], None]] = {
    "kafka": _kafka, "http": _http, "pulsar": _pulsar, "clickhouse": _clickhouse, "timeplus": _timeplus,
}
#: Settings Timeplus documents that sinkflow cannot honour, with what to do instead: refused by
#: name rather than accepted without effect.
_UNSUPPORTED = {
    "config_file": "write the settings in the statement (secrets are stored apart and never shown)",
    "named_collection": "write the settings in the statement (secrets are stored apart and never shown)",
    "format_schema": "Protobuf and Avro are not supported; use JSONEachRow, CSV or RawBLOB",
    "ssl_ca_pem": "write the PEM to a file and name it with ssl_ca_cert_file",
}
_UNSUPPORTED_PER_TYPE: dict[str, dict[str, str]] = {
    "kafka": {
        "properties": "librdkafka properties cannot be passed through; the settings listed cover the connection",
        "kafka_schema_registry_url": "schema registries are not supported; use JSONEachRow, CSV or RawBLOB",
        "kafka_schema_registry_credentials": "schema registries are not supported",
        "sharding_expr": "messages with a key go to the key's partition (a _tp_message_key column or message_key), "
                         "the others are spread over the partitions",
    },
    "http": {
        "use_chunked_encoding": "each request carries one row with its Content-Length",
        "output_format_json_array_of_rows": "each request carries one row; use data_format='Template' with "
                                            "format_template_resultset_format='[${data}]' for an array",
        "ssl_ca_cert_file": "the system's certificate authorities verify the endpoint",
        "client_key": "client certificates are not supported",
    },
    "pulsar": {
        "skip_server_cert_check": "certificates are always verified",
        "validate_hostname": "host names are always validated",
        "ca_cert": "the system's certificate authorities verify the brokers",
        "client_cert": "client certificates are not supported",
        "client_key": "client certificates are not supported",
        "connections_per_broker": "the client's own connection pool is used",
        "memory_limit": "the client's own limit is used",
        "io_threads": "the client's own threads are used",
        "max_insert_block_size": "each row is sent as one message",
        "max_insert_block_bytes": "each row is sent as one message",
    },
    "clickhouse": {"pooled_connections": "the sink keeps one connection per view"},
    "timeplus": {
        "db": "only this server's streams can be written (leave db out)",
        "user": "only this server's streams can be written (leave user out)",
        "password": "only this server's streams can be written (leave password out)",
        "secure": "only this server's streams can be written (leave secure out)",
    },
}
_KNOWN = {
    "kafka": ("brokers", "topic", "data_format", "security_protocol", "sasl_mechanism", "username", "password",
              "skip_ssl_cert_check", "ssl_ca_cert_file", "message_key", "one_message_per_row",
              *_PASS_THROUGH["kafka"]),
    "http": ("url", "data_format", "write_method", "http_header_<Name>", "username", "password",
             "format_template_row_format", "format_template_resultset_format",
             "format_template_rows_between_delimiter", "one_message_per_row", "compression_method",
             "skip_ssl_cert_check", *_PASS_THROUGH["http"]),
    "pulsar": ("service_url", "topic", "data_format", "jwt", "message_key", "one_message_per_row"),
    "clickhouse": ("address", "user", "password", "database", "table", "secure", *_PASS_THROUGH["clickhouse"]),
    "timeplus": ("stream",),
}

