"""The kafka sink's properties: validation at creation, and the librdkafka security mapping."""

from __future__ import annotations

from typing import Any

import certifi
import pyarrow as pa
import pytest

from sinkflow.errors import ConfigError
from sinkflow.sinks.kafka import KafkaConfig, librdkafka_config
from sinkflow.sinks.registry import masked, parse_properties, split_secrets
from sinkflow.sinks.template import check_columns
from tests.kafka.kafka_support import make_sink

BASE = {"brokers": "kafka1:9092,kafka2:9092", "topic": "cars"}
MECHANISMS = {"plain": "PLAIN", "scram-sha-256": "SCRAM-SHA-256", "scram-sha-512": "SCRAM-SHA-512"}


def config(**props: Any) -> KafkaConfig:
    parsed = parse_properties("kafka", {**BASE, **props})
    assert isinstance(parsed, KafkaConfig)
    return parsed


def test_defaults_are_the_specs() -> None:
    cfg = config()
    assert cfg.brokers == ["kafka1:9092", "kafka2:9092"]
    assert (cfg.batch_count, cfg.data_type, cfg.sasl) == (1000, "json", "none")
    assert (cfg.tls_disable, cfg.tls_skip_verify_server, cfg.delivery_guarantee) == (False, False, "at_least_once")
    assert cfg.compression == "none"
    assert cfg.batch_policy().max_rows == 1000
    assert config(batch_count=50).batch_policy().max_rows == 50


@pytest.mark.parametrize("tls_disable", [False, True])
@pytest.mark.parametrize("sasl", ["none", "plain", "scram-sha-256", "scram-sha-512"])
def test_security_mapping_for_every_mechanism_with_and_without_tls(sasl: str, tls_disable: bool) -> None:
    props: dict[str, Any] = {"sasl": sasl, "tls.disable": tls_disable}
    if sasl != "none":
        props |= {"username": "user", "password": "secret"}
    conf = librdkafka_config(config(**props))

    expected_protocol = {
        ("none", False): "SSL",
        ("none", True): "PLAINTEXT",
    }.get((sasl, tls_disable), "SASL_PLAINTEXT" if tls_disable else "SASL_SSL")
    assert conf["security.protocol"] == expected_protocol
    assert conf["bootstrap.servers"] == "kafka1:9092,kafka2:9092"
    if sasl == "none":
        assert not any(key.startswith("sasl.") for key in conf)
    else:
        assert conf["sasl.mechanism"] == MECHANISMS[sasl]
        assert (conf["sasl.username"], conf["sasl.password"]) == ("user", "secret")
    if tls_disable:
        assert not any(key.startswith("ssl.") or "certificate" in key for key in conf)
    else:  # verified against the public CAs by default
        assert conf["enable.ssl.certificate.verification"] is True
        assert conf["ssl.endpoint.identification.algorithm"] == "https"
        assert conf["ssl.ca.location"] == certifi.where()


def test_skip_verify_turns_certificate_verification_off() -> None:
    conf = librdkafka_config(config(**{"tls.skip_verify_server": "true"}))
    assert conf["security.protocol"] == "SSL"
    assert conf["enable.ssl.certificate.verification"] is False
    assert conf["ssl.endpoint.identification.algorithm"] == "none"
    assert "ssl.ca.location" not in conf


def test_a_ca_file_is_what_the_server_certificate_is_verified_against(tmp_path: Any) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    conf = librdkafka_config(config(**{"tls.ca_file": str(ca)}))
    assert conf["ssl.ca.location"] == str(ca)
    assert conf["enable.ssl.certificate.verification"] is True


def test_confluent_cloud_needs_only_brokers_topic_sasl_plain_and_the_api_key() -> None:
    conf = librdkafka_config(
        config(brokers="pkc-abc.europe-west1.gcp.confluent.cloud:9092", sasl="plain", username="KEY", password="SECRET")
    )
    assert conf["security.protocol"] == "SASL_SSL"
    assert (conf["sasl.mechanism"], conf["sasl.username"], conf["sasl.password"]) == ("PLAIN", "KEY", "SECRET")
    assert conf["enable.ssl.certificate.verification"] is True


@pytest.mark.parametrize(
    ("props", "prop", "words"),
    [
        ({"sasl": "gssapi"}, "sasl", "'none', 'plain', 'scram-sha-256' or 'scram-sha-512'"),
        ({"brokers": ""}, "brokers", "at least one broker"),
        ({"brokers": " , "}, "brokers", "at least one broker"),
        ({"data_type": "avro"}, "data_type", "'json'"),
        ({"sasl": "plain", "password": "x"}, "username", "required when sasl is 'plain'"),
        ({"sasl": "scram-sha-256", "username": "u"}, "password", "required when sasl is 'scram-sha-256'"),
        ({"topic": "no spaces"}, "topic", "topic name"),
        ({"tls.disable": "maybe"}, "tls.disable", "boolean"),
        ({"tls.ca_file": "/no/such/ca.pem"}, "tls.ca_file", "no such file"),
        ({"partitions": 0}, "partitions", "greater than or equal to 1"),
        ({"delivery_guarantee": "at_most_once"}, "delivery_guarantee", "'exactly_once'"),
        ({"compression": "brotli"}, "compression", "'lz4' or 'zstd'"),
        ({"message_key": "{{ if .cid }}"}, "message_key", "unsupported construct"),
        ({"tls.verify": True}, "tls.verify", "unknown property"),
    ],
)
def test_bad_properties_are_refused_naming_the_property(props: dict[str, Any], prop: str, words: str) -> None:
    with pytest.raises(ConfigError) as failure:
        parse_properties("kafka", {**BASE, **props})
    assert failure.value.prop == prop
    assert words in failure.value.message


def test_missing_brokers_or_topic_are_named() -> None:
    for missing in ("brokers", "topic"):
        props = dict(BASE)
        del props[missing]
        with pytest.raises(ConfigError) as failure:
            parse_properties("kafka", props)
        assert failure.value.prop == missing and "required" in failure.value.message


@pytest.mark.parametrize("key", ["car_id", "{{ .car_id }}-x"])
def test_a_message_key_naming_no_output_column_is_refused_at_creation(key: str) -> None:
    config = parse_properties("kafka", {**BASE, "message_key": key})
    with pytest.raises(ConfigError) as failure:  # what sink creation checks, before anything is stored
        for prop, text in config.templates().items():
            check_columns(text, prop, ["cid", "time"])
    assert failure.value.prop == "message_key" and "unknown column 'car_id' (columns: cid, time)" in failure.value.message
    with pytest.raises(ConfigError):  # and the sink itself refuses it too
        make_sink({**BASE, "message_key": key}, schema=pa.schema([("cid", pa.string())]))


def test_the_password_is_a_secret_never_shown_back() -> None:
    props = {**BASE, "sasl": "plain", "username": "KEY", "password": "SECRET-123"}
    public, secrets = split_secrets("kafka", props)
    assert "password" not in public and secrets == {"password": "SECRET-123"}
    assert "SECRET-123" not in repr(masked("kafka", props))
    with pytest.raises(ConfigError) as failure:  # a wrongly typed password is refused without echoing it
        parse_properties("kafka", {**props, "password": ["SECRET-123"]})
    assert "SECRET-123" not in str(failure.value)
