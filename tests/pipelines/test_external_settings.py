"""Timeplus external-stream settings mapped onto sink properties, validated by the sinks' models,
with errors naming the setting the user wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from sinkflow.catalog import Catalog, ExternalStreamRecord
from sinkflow.errors import ConfigError
from sinkflow.sinks import registry
from sinkflow.sinks.base import SinkEnv
from sinkflow.sinks.external_settings import SettingError, sink_properties, split_settings, template_payload
from sinkflow.sinks.kafka import KafkaConfig, librdkafka_config

RAW = [("raw", "string")]
ROW = [("cid", "string"), ("speed", "float64")]


def test_kafka_settings_become_librdkafka_settings() -> None:
    mapped = sink_properties({"type": "kafka", "brokers": "a:9092,b:9092", "topic": "t",
                              "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                              "username": "u", "password": "p", "skip_ssl_cert_check": True,
                              "message_key": "cid"}, ROW)
    assert mapped.sink_type == "kafka"
    config = registry.parse_properties("kafka", mapped.properties)
    assert isinstance(config, KafkaConfig)
    conf = librdkafka_config(config)
    assert conf["bootstrap.servers"] == "a:9092,b:9092"
    assert conf["security.protocol"] == "SASL_SSL" and conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["sasl.username"] == "u" and conf["enable.ssl.certificate.verification"] is False
    assert config.message_key == "cid"


def test_kafka_plaintext_is_the_default() -> None:
    mapped = sink_properties({"type": "kafka", "brokers": "127.0.0.1:9092", "topic": "t"}, RAW)
    config = registry.parse_properties("kafka", mapped.properties)
    assert isinstance(config, KafkaConfig)
    assert librdkafka_config(config)["security.protocol"] == "PLAINTEXT"
    assert config.data_type == "raw"  # one string column: RawBLOB, the text as the message
    two = pa.schema([("a", pa.string()), ("b", pa.string())])
    with pytest.raises(ConfigError, match="raw sends the text of one column; the query has 2"):
        registry.sink_class("kafka")(config, SinkEnv("s", "s", two))


def test_http_template_becomes_the_request_body_template() -> None:
    mapped = sink_properties({
        "type": "http", "url": "http://127.0.0.1:1/hook", "data_format": "Template",
        "format_template_resultset_format": '{"blocks":[{"text":"${data}"}]}',
        "format_template_row_format": "${text:Raw} (${n:JSON})", "http_header_Authorization": "Bearer t0k3n",
        "write_method": "PUT"}, [("text", "string"), ("n", "int32")])
    assert mapped.properties["payload_field"] == '{"blocks":[{"text":"{{ .text }} ({{ json .n }})"}]}'
    assert mapped.properties["http_header"] == {"Authorization": "Bearer t0k3n"}
    assert mapped.properties["http_method"] == "PUT"


def test_http_basic_authentication_and_raw_blob() -> None:
    mapped = sink_properties({"type": "http", "url": "http://127.0.0.1:1/x", "username": "u", "password": "p"}, RAW)
    assert mapped.properties["http_header"] == {"Authorization": "Basic dTpw"}
    assert mapped.properties["payload_field"] == "{{ .raw }}"  # one string column: RawBLOB by default


def test_clickhouse_pulsar_and_timeplus() -> None:
    ch = sink_properties({"type": "clickhouse", "address": "127.0.0.1:9000", "user": "u", "password": "p",
                          "database": "db", "table": "t"}, [], table=True)
    assert ch.properties | {"engine": None} == {"hosts": ["127.0.0.1:9000"], "username": "u", "password": "p",
                                                "database": "db", "table_name": "t", "engine": None}
    secure = sink_properties({"type": "clickhouse", "address": "h:9440", "user": "u", "password": "p@ss",
                              "table": "t", "secure": True}, [], table=True)
    assert secure.properties["dsn"] == "clickhouses://u:p%40ss@h:9440/default"
    pulsar = sink_properties({"type": "pulsar", "service_url": "pulsar://127.0.0.1:6650", "topic": "t",
                              "jwt": "ey.token"}, ROW)
    assert pulsar.properties["auth_params"] == {"token": "ey.token"} and pulsar.properties["auth_type"] == "token"
    local = sink_properties({"type": "timeplus", "stream": "s"}, ROW)
    assert (local.sink_type, local.properties) == ("timeplus", {"stream_name": "s"})


REFUSED: list[tuple[dict[str, Any], bool, str]] = [
    ({"brokers": "b:1"}, False, "setting 'type': is required"),
    ({"type": "kafka", "brokers": "b:1"}, False, "setting 'topic': is required"),
    ({"type": "kafka", "brokers": "b:1", "topic": "t", "security_protocol": "SASL_SSL", "username": "u"}, False,
     "setting 'password': is required when sasl is 'plain'"),
    ({"type": "kafka", "brokers": "b:1", "topic": "t", "one_message_per_row": False}, False,
     "setting 'one_message_per_row': False is not supported"),
    ({"type": "kafka", "brokers": "b:1", "topic": "t", "kafka_schema_registry_url": "x"}, False,
     "setting 'kafka_schema_registry_url': Timeplus's setting is not supported here: schema registries"),
    ({"type": "kafka", "brokers": "b:1", "topic": "t", "properties": "queue.buffering.max.ms=1"}, False,
     "setting 'properties': Timeplus's setting is not supported here: librdkafka properties"),
    ({"type": "kafka", "brokers": "b:1", "topic": "t", "rows_between_delimiter": "x"}, False,
     "setting 'rows_between_delimiter': unknown for type 'kafka' (supported: brokers,"),
    ({"type": "http", "url": "http://127.0.0.1/", "output_format_json_array_of_rows": 1}, False,
     "setting 'output_format_json_array_of_rows': Timeplus's setting is not supported here: each request carries one row"),
    ({"type": "http", "url": "http://127.0.0.1/", "use_chunked_encoding": True}, False,
     "setting 'use_chunked_encoding': Timeplus's setting is not supported here"),
    ({"type": "pulsar", "service_url": "pulsar://h:6650", "topic": "t", "io_threads": 4}, False,
     "setting 'io_threads': Timeplus's setting is not supported here"),
    ({"type": "clickhouse", "address": "h:9000", "table": "t", "pooled_connections": 3}, True,
     "setting 'pooled_connections': Timeplus's setting is not supported here"),
    ({"type": "timeplus", "stream": "s", "db": "default"}, False, "setting 'db': Timeplus's setting is not supported"),
    ({"type": "http", "url": "ftp://x"}, False, "setting 'url':"),
    ({"type": "http", "url": "http://127.0.0.1/", "data_format": "Template"}, False,
     "setting 'format_template_row_format': is required when data_format is 'Template'"),
    ({"type": "http", "url": "http://127.0.0.1/", "data_format": "Template", "format_template_row_format": "${a:Raw}",
      "format_template_resultset_format": "{}"}, False, "must contain ${data}"),
    ({"type": "http", "url": "http://127.0.0.1/", "data_format": "Avro"}, False, "'Avro' is not supported here"),
    ({"type": "clickhouse", "address": "h:9000", "table": "t"}, False, "is created with CREATE EXTERNAL TABLE"),
    ({"type": "clickhouse", "table": "t"}, True, "setting 'address': is required"),
    ({"type": "pulsar", "service_url": "http://x", "topic": "t"}, False, "setting 'service_url': must start with pulsar://"),
    ({"type": "timeplus", "stream": "s", "hosts": "h:8463"}, False, "setting 'hosts': only this server's streams"),
]


@pytest.mark.parametrize(("settings", "table", "message"), REFUSED, ids=[r[2][:40] for r in REFUSED])
def test_refused_settings_are_named(settings: dict[str, Any], table: bool, message: str) -> None:
    with pytest.raises(SettingError) as info:
        sink_properties(settings, ROW, table)
    assert message in info.value.message


def test_secrets_are_split_by_name_and_never_echoed() -> None:
    public, secrets = split_settings({"type": "kafka", "password": "pw", "jwt": "j", "http_header_Authorization": "a",
                                      "http_header_X_Api_Key": "k", "topic": "t", "message_key": "cid",
                                      "http_header_Content_Type": "text/plain"})
    assert public == {"type": "kafka", "topic": "t", "message_key": "cid", "http_header_Content_Type": "text/plain"}
    assert set(secrets) == {"password", "jwt", "http_header_Authorization", "http_header_X_Api_Key"}
    with pytest.raises(SettingError) as info:
        sink_properties({"type": "kafka", "brokers": "b:1", "topic": "t", "security_protocol": "SASL_SSL",
                         "sasl_mechanism": "PLAIN", "username": "u", "password": "s3cret-pw",
                         "ssl_ca_cert_file": "/no/such/file"}, ROW)
    assert "s3cret-pw" not in info.value.message and "ssl_ca_cert_file" in info.value.message


def test_template_escaping_rules() -> None:
    with pytest.raises(SettingError, match="escaping rule 'Escaped'"):
        template_payload("${a}", None)  # no rule means Escaped, which has no counterpart
    assert template_payload("${ a : raw }-${b:Json}", None) == "{{ .a }}-{{ json .b }}"


def test_column_defaults_of_an_external_stream_are_stored(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path)
    catalog.add_external_stream(ExternalStreamRecord("a", "http", [("id", "string"), ("n", "int32")],
                                                     {"type": "http", "url": "http://127.0.0.1/"},
                                                     defaults={"id": "uuid()"}))
    catalog.add_external_stream(ExternalStreamRecord("b", "http", [("n", "int32")], {"type": "http"}))
    stored = {r.name: r for r in Catalog(tmp_path).external_streams()}
    assert (stored["a"].columns, stored["a"].defaults) == ([("id", "string"), ("n", "int32")], {"id": "uuid()"})
    assert (stored["b"].columns, stored["b"].defaults) == ([("n", "int32")], {})
