"""Properties of the http, webhook and slack sinks: the spec's defaults, and a clear error per bad property."""

from __future__ import annotations

from typing import Any

import pytest

from sinkflow.errors import ConfigError
from sinkflow.sinks.registry import masked, parse_properties

URL = "https://api.example.com/ingest"


def test_http_defaults_from_the_spec() -> None:
    cfg = parse_properties("http", {"url": URL})
    assert cfg.model_dump(by_alias=True) == {
        "url": URL,
        "content_type": None,
        "http_method": "POST",
        "payload_field": None,
        "http_header": {},
        "oauth2": {"enabled": False, "client_key": None, "client_secret": None, "token_url": None, "scopes": []},
        "paralism": 1,
        "retries": 0,
        "retry_interval": "10s",
        "timeout": "10s",
        "idle_timeout": None,
    }
    assert cfg.concurrency() == 1
    assert cfg.retry_policy().max_retries == 0


def test_http_values_are_parsed() -> None:
    cfg = parse_properties(
        "http",
        {
            "url": URL,
            "http_method": "patch",
            "parallelism": 4,
            "retries": 3,
            "retry_interval": "250ms",
            "timeout": "2s",
            "oauth2": {"enabled": True, "client_key": "k", "client_secret": "s", "token_url": URL, "scopes": "a,b"},
        },
    )
    assert (cfg.http_method, cfg.paralism, cfg.concurrency()) == ("PATCH", 4, 4)  # type: ignore[attr-defined]
    assert cfg.oauth2.scopes == ["a", "b"]  # type: ignore[attr-defined]
    policy = cfg.retry_policy()
    assert (policy.max_retries, policy.initial_backoff) == (3, 0.25)
    assert cfg.batch_policy().max_wait == 0.0


def test_template_properties_are_declared() -> None:
    assert parse_properties("http", {"url": URL, "payload_field": "{{.a}}"}).templates() == {"payload_field": "{{.a}}"}
    assert parse_properties("webhook", {"url": URL, "body": "{{.b}}"}).templates() == {"body": "{{.b}}"}
    assert parse_properties("slack", {"url": URL, "template": "{{.c}}"}).templates() == {"template": "{{.c}}"}
    assert parse_properties("slack", {"url": URL, "template": ""}).templates() == {}


def test_secrets_are_masked() -> None:
    props = {
        "url": URL,
        "http_header": {"Authorization": "Bearer abc", "X-Team": "ops"},
        "oauth2": {"enabled": True, "client_key": "k", "client_secret": "s3cret", "token_url": URL},
    }
    shown = masked("http", props)
    assert shown["oauth2"]["client_secret"] == "********"
    assert shown["http_header"] == {"Authorization": "********", "X-Team": "ops"}
    assert shown["oauth2"]["client_key"] == "k"


def test_slack_and_webhook_defaults() -> None:
    slack = parse_properties("slack", {"url": URL})
    assert slack.model_dump() == {"url": URL, "template": None, "header": {}, "messages_per_second": 1.0, "timeout": "10s",
                                 "idle_timeout": None}
    assert slack.retry_policy().max_retries is None
    webhook = parse_properties("webhook", {"url": URL})
    assert webhook.model_dump() == {"url": URL, "body": None, "content_type": None, "headers": {}, "paralism": 1, "timeout": "10s",
                                   "idle_timeout": None}


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("http", {}, "property 'url': is required"),
    ("http", {"url": "ftp://x.org/a"}, "property 'url': must be an http:// or https:// URL with a host"),
    ("http", {"url": "http://"}, "property 'url': "),
    ("http", {"url": URL, "http_method": "FETCH"}, "property 'http_method': must be one of GET, POST, PUT, PATCH, DELETE"),
    ("http", {"url": URL, "paralism": 0}, "property 'paralism': Input should be greater than or equal to 1"),
    ("http", {"url": URL, "parallelism": "many"}, "property 'parallelism': Input should be a valid integer"),
    ("http", {"url": URL, "retries": -1}, "property 'retries': Input should be greater than or equal to 0"),
    ("http", {"url": URL, "retry_interval": "soon"}, "property 'retry_interval': expected a duration such as '10s'"),
    ("http", {"url": URL, "timeout": "0s"}, "property 'timeout': Input should be greater than 0"),
    ("http", {"url": URL, "http_header": ["a"]}, "property 'http_header': Input should be a valid dictionary"),
    ("http", {"url": URL, "http_header": {"Bad Name": "x"}}, "property 'http_header': header name 'Bad Name' is not a valid"),
    ("http", {"url": URL, "http_header": {"X": "a\r\nInjected: 1"}}, "property 'http_header': the value of header 'X' contains a line break"),
    ("http", {"url": URL, "payload_field": "{{ if .a }}"}, "property 'payload_field': template: unsupported construct '{{ if .a }}' at line 1, column 1"),
    ("http", {"url": URL, "oauth2": {"enabled": True, "client_key": "k", "client_secret": "s"}},
     "property 'oauth2.token_url': is required when oauth2.enabled is true"),
    ("http", {"url": URL, "oauth2": {"enabled": True, "token_url": URL, "client_secret": "s"}},
     "property 'oauth2.client_key': is required when oauth2.enabled is true"),
    ("http", {"url": URL, "oauth2": {"enabled": True, "token_url": URL, "client_key": "k"}},
     "property 'oauth2.client_secret': is required when oauth2.enabled is true"),
    ("http", {"url": URL, "oauth2": {"enabled": "maybe"}}, "property 'oauth2.enabled': Input should be a valid boolean"),
    ("http", {"url": URL, "oauth2": {"grant": "x"}}, "property 'oauth2.grant': unknown property"),
    ("http", {"url": URL, "timeput": "1s"}, "property 'timeput': unknown property"),
    ("webhook", {"url": URL, "body": "{{ .a "}, "property 'body': template: '{{' is not closed by '}}'"),
    ("webhook", {"url": URL, "headers": {"": "x"}}, "property 'headers': header name '' is not a valid"),
    ("slack", {"template": "x"}, "property 'url': is required"),
    ("slack", {"url": URL, "template": "{{ range . }}"}, "property 'template': template: unsupported construct '{{ range . }}'"),
    ("slack", {"url": URL, "messages_per_second": 0}, "property 'messages_per_second': Input should be greater than 0"),
    ("slack", {"url": URL, "header": {"X": 1}}, "property 'header.X': Input should be a valid string"),
]


@pytest.mark.parametrize(("sink_type", "props", "message"), BAD)
def test_bad_property_is_named(sink_type: str, props: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_properties(sink_type, props)
    assert caught.value.message.startswith(message)


def test_a_bad_slack_url_is_not_repeated_in_the_error() -> None:
    secret = "htps://hooks.slack.com/services/T0/B0/s3cr3t"
    with pytest.raises(ConfigError) as caught:
        parse_properties("slack", {"url": secret})
    assert caught.value.prop == "url"
    assert "s3cr3t" not in caught.value.message
