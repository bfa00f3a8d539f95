"""Pulsar sink properties: validation errors, secrets, and the authentication built from them."""

from __future__ import annotations

import base64
import json

import pulsar
import pyarrow as pa
import pytest

from sinkflow.errors import ConfigError
from sinkflow.sinks.base import SinkEnv
from sinkflow.sinks.pulsar import PulsarAuth, PulsarSink, pulsar_auth
from sinkflow.sinks.registry import masked, parse_properties

BASE = {"topic": "cars", "broker_url": "pulsar://127.0.0.1:6650"}


def config_error(props: dict[str, object]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_properties("pulsar", props)
    return caught.value


def test_unknown_auth_type_is_named() -> None:
    error = config_error({**BASE, "auth_type": "kerberos"})
    assert error.prop == "auth_type"
    assert "'token'" in error.message and "'oauth2'" in error.message and "kerberos" in error.message


def test_auth_type_is_required_and_empty_means_none() -> None:
    assert config_error(dict(BASE)).prop == "auth_type"
    config = parse_properties("pulsar", {**BASE, "auth_type": ""})
    assert pulsar_auth(config.auth_type, config.auth_params) is None  # type: ignore[attr-defined]


def test_token_auth_needs_its_token() -> None:
    error = config_error({**BASE, "auth_type": "token", "auth_params": {}})
    assert error.prop == "auth_params.token" and "required" in error.message


def test_auth_params_unknown_to_the_auth_type_are_named() -> None:
    error = config_error({**BASE, "auth_type": "token", "auth_params": {"token": "t", "tokn": "t"}})
    assert error.prop == "auth_params.tokn"


def test_oauth2_needs_issuer_and_credentials() -> None:
    assert config_error({**BASE, "auth_type": "oauth2", "auth_params": {"client_id": "a"}}).prop == "auth_params.issuer_url"
    error = config_error({**BASE, "auth_type": "oauth2", "auth_params": {"issuer_url": "https://idp", "client_id": "a"}})
    assert error.prop == "auth_params.client_secret"


def test_broker_url_must_be_a_pulsar_url() -> None:
    assert config_error({**BASE, "broker_url": "http://127.0.0.1:6650", "auth_type": ""}).prop == "broker_url"


def test_token_auth_passes_its_token_to_the_client() -> None:
    config = parse_properties("pulsar", {**BASE, "auth_type": "token", "auth_params": {"token": "tok-123"}})
    auth = pulsar_auth(config.auth_type, config.auth_params)  # type: ignore[attr-defined]
    assert auth == PulsarAuth("token", "tok-123")
    assert isinstance(auth.build(), pulsar.AuthenticationToken)
    assert "tok-123" not in repr(auth)


def test_oauth2_client_credentials_become_the_clients_credentials_file() -> None:
    params = {"issuer_url": "https://idp.example/", "client_id": "app", "client_secret": "s3cr3t", "audience": "urn:pulsar"}
    config = parse_properties("pulsar", {**BASE, "auth_type": "oauth2", "auth_params": params})
    auth = pulsar_auth(config.auth_type, config.auth_params)  # type: ignore[attr-defined]
    assert auth is not None and auth.method == "oauth2"
    built = json.loads(auth.params)
    prefix = "data:application/json;base64,"
    assert built["private_key"].startswith(prefix)
    assert json.loads(base64.b64decode(built["private_key"][len(prefix) :])) == {"client_id": "app", "client_secret": "s3cr3t"}
    assert {k: v for k, v in built.items() if k != "private_key"} == {"issuer_url": "https://idp.example/", "audience": "urn:pulsar"}
    assert isinstance(auth.build(), pulsar.AuthenticationOauth2)


def test_oauth2_private_key_file_is_passed_as_is() -> None:
    params = {"issuer_url": "https://idp.example/", "private_key": "file:///etc/pulsar/creds.json"}
    auth = pulsar_auth("oauth2", params)
    assert auth is not None and json.loads(auth.params) == params


def test_secrets_are_masked() -> None:
    props = {**BASE, "auth_type": "oauth2", "auth_params": {"issuer_url": "https://idp", "client_id": "a", "client_secret": "s3cr3t"}}
    shown = masked("pulsar", props)
    assert shown["auth_params"] == {"issuer_url": "https://idp", "client_id": "a", "client_secret": "********"}
    token = masked("pulsar", {**BASE, "auth_type": "token", "auth_params": {"token": "tok-123"}})
    assert token["auth_params"] == {"token": "********"}


def test_message_key_must_be_an_output_column() -> None:
    config = parse_properties("pulsar", {**BASE, "auth_type": "", "message_key": "car"})
    schema = pa.schema([("cid", pa.string()), ("speed", pa.float64())])
    with pytest.raises(ConfigError) as caught:
        PulsarSink(config, SinkEnv("s", "s", schema))  # type: ignore[arg-type]
    assert caught.value.prop == "message_key" and "'car'" in caught.value.message and "cid" in caught.value.message
