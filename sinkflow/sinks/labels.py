"""What users read about each sink type's properties in forms and in ``sinkflow sink types``:
a label and a line of help per property, a sentence about the destination, and the groups
of alternatives of which one is required (ClickHouse's ``dsn`` or ``hosts``), and the optional
properties most users set.

The property models stay the validators; this is their user-facing wording, merged into
the JSON schemas the API serves (``x-label``, ``x-help``, ``x-about``, ``x-one-of``). A
property without an entry here is labelled from its name and helped by its model's
description.
"""

from __future__ import annotations

from typing import Any

#: type → sentence shown above the form.
ABOUT: dict[str, str] = {
    "http": "Calls an HTTP API once per result row.",
    "webhook": "Calls a webhook once per result row, to trigger an action.",
    "slack": "Posts a message per result row to a Slack channel through an incoming webhook.",
    "email": "Sends an e-mail per result row over SMTP.",
    "timeplus": "Appends every result row to a sinkflow stream.",
    "kafka": "Writes each result row as a JSON document to a Kafka topic "
             "(Apache Kafka, Confluent Platform, Confluent Cloud, Redpanda).",
    "pulsar": "Writes each result row as a JSON message to a Pulsar topic.",
    "clickhouse": "Inserts the result rows into a ClickHouse table, creating it when it does not exist.",
    "snowflake": "Inserts the result rows into a Snowflake table, creating it when it does not exist.",
}

#: type → required choices, shown up front: each is a list of alternatives, and an alternative
#: is the properties given together (its first one decides: ClickHouse's ``hosts`` comes with
#: the user name, password and database).
ONE_OF: dict[str, list[list[list[str]]]] = {
    "clickhouse": [[["dsn"], ["hosts", "username", "password", "database"]], [["init_sql"], ["engine", "suffix"]]],
}

#: type → optional properties most users set, shown up front rather than among the others.
PROMINENT: dict[str, list[str]] = {
    "kafka": ["sasl", "username", "password", "tls.disable", "tls.skip_verify_server"],
    "email": ["port", "tls", "username", "password"],
    "http": ["http_method", "content_type"],
    "pulsar": ["auth_params"],
    "snowflake": ["password", "private_key", "warehouse", "schema"],
}

#: Properties every sink shares.
_COMMON: dict[str, tuple[str, str]] = {
    "idle_timeout": ("Close idle windows after",
                     "close open windows after this long without new input, so a quiet stream's last "
                     "results still arrive (processing time; off by default, as in Timeplus)"),
    "timeout": ("Timeout", "how long to wait for an answer, e.g. 10s"),
    "paralism": ("Requests in flight", "1 keeps rows in result order; more sends faster (also spelled parallelism)"),
    "batch_count": ("Rows per batch", ""),
    "batch_duration": ("Longest wait per batch", "how long rows wait before a batch is sent, e.g. 100ms"),
}

#: type → property → (label, help); an empty help keeps the model's description.
LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "http": {
        "url": ("URL", ""),
        "content_type": ("Content type", ""),
        "http_method": ("HTTP method", ""),
        "payload_field": ("Request body", "template with {{ .column }}; empty: the row as a JSON document"),
        "http_header": ("Headers", "extra HTTP headers; an Authorization value is kept secret"),
        "oauth2": ("OAuth2", "client-credentials grant: the sink fetches and refreshes a bearer token"),
        "oauth2.enabled": ("Use OAuth2", ""),
        "oauth2.client_key": ("Client ID", ""),
        "oauth2.client_secret": ("Client secret", ""),
        "oauth2.token_url": ("Token URL", ""),
        "oauth2.scopes": ("Scopes", ""),
        "retries": ("Retries", "retries of a row after a retryable failure (0: the row goes to the dead letters)"),
        "retry_interval": ("Retry interval", "wait before the first retry, then backing off"),
    },
    "webhook": {
        "url": ("Webhook URL", ""),
        "body": ("Body", "template with {{ .column }}; empty: the row as a JSON document"),
        "content_type": ("Content type", "default: application/json when the body is JSON, else text/plain"),
        "headers": ("Headers", "extra HTTP headers; an Authorization value is kept secret"),
    },
    "slack": {
        "url": ("Webhook URL", "the channel's incoming-webhook URL, https://hooks.slack.com/services/…"),
        "template": ("Message", "template with {{ .column }}; empty: the row as JSON"),
        "header": ("Headers", "extra HTTP headers"),
        "messages_per_second": ("Messages per second", "Slack accepts about one per second per channel"),
    },
    "email": {
        "host": ("SMTP host", ""),
        "port": ("Port", "default: 587 with starttls, 465 with ssl, 25 with none"),
        "username": ("User name", ""),
        "password": ("Password", ""),
        "tls": ("Encryption", "starttls upgrades a plain connection (port 587); ssl is TLS from the start "
                              "(port 465); none only on a network you trust"),
        "tls_skip_verify": ("Skip certificate check", "for a server with a self-signed certificate you trust"),
        "from": ("From", "sender address, e.g. Alerts <alerts@example.org>"),
        "to": ("To", "recipient addresses"),
        "subject": ("Subject", "template with {{ .column }}; default: '<sink name>: new result'"),
        "body": ("Body", "template with {{ .column }}; empty: the row as JSON"),
    },
    "timeplus": {
        "stream_name": ("Stream", "the stream the rows are appended to; created from the query's columns "
                                  "when it does not exist"),
    },
    "kafka": {
        "brokers": ("Brokers", ""),
        "topic": ("Topic", ""),
        "batch_count": ("Rows per batch", "rows per produce batch"),
        "data_type": ("Encoding", ""),
        "sasl": ("SASL mechanism", "none, plain (Confluent Cloud), scram-sha-256 or scram-sha-512"),
        "username": ("SASL user name", ""),
        "password": ("SASL password", ""),
        "tls.disable": ("Turn TLS off", "for a broker listening without TLS (plaintext)"),
        "tls.skip_verify_server": ("Skip certificate check", "for a broker with a self-signed certificate you trust"),
        "tls.ca_file": ("CA file", ""),
        "message_key": ("Message key", ""),
        "partitions": ("Partitions", ""),
        "replication_factor": ("Replication factor", ""),
        "delivery_guarantee": ("Delivery guarantee", ""),
        "compression": ("Compression", ""),
    },
    "pulsar": {
        "topic": ("Topic", "e.g. persistent://public/default/results"),
        "broker_url": ("Broker URL", "e.g. pulsar://host:6650"),
        "auth_type": ("Authentication", "none, token or oauth2"),
        "auth_params": ("Authentication parameters", "e.g. token=…, or the OAuth2 issuer_url, private_key, audience"),
        "message_key": ("Message key", "an output column whose value keys each message"),
    },
    "clickhouse": {
        "table_name": ("Table", "target table"),
        "dsn": ("DSN", "clickhouse://user:password@host:9000/database; replaces hosts, user name, password "
                       "and database"),
        "hosts": ("Hosts", "host:port of the native protocol (9000), one or more"),
        "username": ("User name", "with hosts"),
        "password": ("Password", "with hosts"),
        "database": ("Database", "with hosts"),
        "engine": ("Table engine", "used when the sink creates the table, e.g. MergeTree()"),
        "suffix": ("After the engine", "appended to the generated CREATE TABLE, e.g. ORDER BY time"),
        "init_sql": ("CREATE TABLE statement", "creates the table your way; replaces engine and suffix"),
        "batch_count": ("Rows per insert", ""),
    },
    "snowflake": {
        "account": ("Account", ""),
        "user": ("User", ""),
        "password": ("Password", ""),
        "private_key": ("Private key", ""),
        "role": ("Role", ""),
        "warehouse": ("Warehouse", ""),
        "database": ("Database", ""),
        "schema": ("Schema", ""),
        "table": ("Table", ""),
        "host": ("Host", ""),
        "port": ("Port", ""),
        "protocol": ("Protocol", ""),
    },
}


def _default_label(name: str) -> str:
    return name.replace("_", " ").replace(".", " ").capitalize()


def annotate(sink_type: str, schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (a sink type's JSON schema, changed in place and returned) with ``x-label``
    and ``x-help`` on every property (nested ones too), ``x-about``, ``x-one-of`` and
    ``x-prominent``."""
    labels = LABELS.get(sink_type, {})
    definitions = schema.get("$defs", {})

    def label(path: str, prop: dict[str, Any]) -> None:
        text, help_text = labels.get(path) or _COMMON.get(path) or (_default_label(path.rsplit(".", 1)[-1]), "")
        prop["x-label"] = text
        prop["x-help"] = help_text or prop.get("description", "")
        nested = prop
        ref = prop.get("$ref") or next((o.get("$ref") for o in prop.get("anyOf", []) if "$ref" in o), None)
        if ref:
            nested = definitions.get(ref.rsplit("/", 1)[-1], {})
        for name, inner in nested.get("properties", {}).items():
            label(f"{path}.{name}", inner)

    for name, prop in schema.get("properties", {}).items():
        label(name, prop)
    schema["x-about"] = ABOUT.get(sink_type, "")
    schema["x-one-of"] = ONE_OF.get(sink_type, [])
    schema["x-prominent"] = PROMINENT.get(sink_type, [])
    return schema
