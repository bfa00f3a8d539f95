"""The e-mail sink against a real SMTP server (aiosmtpd) with STARTTLS and AUTH."""

from __future__ import annotations

import datetime as dt
import socket
from typing import Any

import pyarrow as pa
import pytest

from sinkflow.errors import ConfigError
from sinkflow.sinks.base import PartialWriteError, PermanentError, RetryableError, WriteContext
from sinkflow.sinks.email import EmailSink
from sinkflow.sinks.registry import masked, parse_properties
from tests.servers.smtp import SmtpServer
from tests.sinks_http.support import deliver, make_sink

PASSWORD = "s3cret-pw"
ROWS = pa.record_batch(
    {
        "time": pa.array(
            [dt.datetime(2022, 1, 23, 10, 0, 0, 123000), dt.datetime(2022, 1, 23, 10, 5, 0, 123000)], pa.timestamp("ms")
        ),
        "number": [50, 95],
        "note": ["foo", "Bar"],
    }
)


def props(server: SmtpServer, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "tls": server.mode,
        "tls_skip_verify": True,
        "from": "Sinkflow Alerts <alerts@example.org>",
        "to": ["oncall@example.org", "The Boss <boss@example.org>"],
        "subject": "Sensor {{.number}} ({{.note}})",
        "body": "传感器数据为 {{.time}} {{.number}}，并备注: {{.note}}",
    }
    if server.mode != "none":
        base |= {"username": "alerts", "password": PASSWORD}
    return base | extra


def email_sink(properties: dict[str, Any]) -> EmailSink:
    sink = make_sink("email", properties, ROWS.schema)
    assert isinstance(sink, EmailSink)
    return sink


async def test_starttls_auth_one_message_per_row(smtp: SmtpServer) -> None:
    await deliver(email_sink(props(smtp)), [ROWS])
    assert [m.message["Subject"] for m in smtp.messages] == ["Sensor 50 (foo)", "Sensor 95 (Bar)"]
    assert [m.message.get_content().rstrip("\r\n") for m in smtp.messages] == [
        "传感器数据为 2022-01-23 10:00:00.123 50，并备注: foo",
        "传感器数据为 2022-01-23 10:05:00.123 95，并备注: Bar",
    ]
    for received in smtp.messages:
        assert received.login == "alerts"
        assert received.mail_from == "alerts@example.org"
        assert received.rcpt_tos == ["oncall@example.org", "boss@example.org"]
        assert received.message["To"] == "oncall@example.org, The Boss <boss@example.org>"
        assert received.message["From"] == "Sinkflow Alerts <alerts@example.org>"
    assert [m.message["Message-ID"] for m in smtp.messages] == ["<sink-1-0@sinkflow>", "<sink-1-1@sinkflow>"]


# aiosmtpd cannot tell that an SMTPS session is already encrypted and warns about AUTH without TLS.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_smtps_and_default_body(smtps: SmtpServer) -> None:
    await deliver(email_sink(props(smtps, body=None, subject=None, to="oncall@example.org")), [ROWS.slice(0, 1)])
    (received,) = smtps.messages
    assert received.message["Subject"] == "test_sink: new result"
    assert received.message.get_content().strip() == '{"time":"2022-01-23T10:00:00.123+00:00","number":50,"note":"foo"}'
    assert received.rcpt_tos == ["oncall@example.org"]


async def test_plain_smtp_without_tls(smtp_plain: SmtpServer) -> None:
    await deliver(email_sink(props(smtp_plain)), [ROWS])
    assert [m.message["Subject"] for m in smtp_plain.messages] == ["Sensor 50 (foo)", "Sensor 95 (Bar)"]


async def test_wrong_password_is_a_clear_permanent_error(smtp: SmtpServer) -> None:
    sink = email_sink(props(smtp, password="not-the-password"))
    with pytest.raises(PermanentError) as caught:
        await sink.open()
    await sink.close()
    message = caught.value.message
    assert "refused the login of user 'alerts'" in message and "535" in message
    assert "not-the-password" not in message
    assert smtp.refused_logins >= 1 and smtp.messages == []


async def test_self_signed_certificate_is_refused_unless_told_to_skip(smtp: SmtpServer) -> None:
    sink = email_sink(props(smtp, tls_skip_verify=False))
    with pytest.raises(PermanentError, match="TLS certificate verification failed"):
        await sink.open()
    await sink.close()
    assert smtp.messages == []


async def test_server_down_is_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sink = make_sink(
        "email", {"host": "127.0.0.1", "port": port, "from": "a@example.org", "to": "b@example.org"}, ROWS.schema
    )
    with pytest.raises(RetryableError) as caught:
        await sink.open()
    await sink.close()
    assert f"SMTP server 127.0.0.1:{port} unreachable" in caught.value.message


async def test_reconnects_after_the_server_restarts(smtp: SmtpServer) -> None:
    sink = email_sink(props(smtp))
    await sink.open()
    try:
        await sink.write(ROWS.slice(0, 1), WriteContext("sink-1", 1))
        smtp.stop()  # drops the sink's connection
        with pytest.raises(PartialWriteError) as caught:
            await sink.write(ROWS.slice(1, 1), WriteContext("sink-1", 2, first_row=1))
        assert isinstance(caught.value.failures[0], RetryableError)
        smtp.start()
        await sink.write(ROWS.slice(1, 1), WriteContext("sink-1", 2, first_row=1))
    finally:
        await sink.close()
    assert [m.message["Subject"] for m in smtp.messages] == ["Sensor 50 (foo)", "Sensor 95 (Bar)"]


def test_defaults_and_masking() -> None:
    cfg = parse_properties("email", {"host": "smtp.example.org", "from": "a@example.org", "to": "b@example.org, c@example.org"})
    assert (cfg.tls, cfg.effective_port(), cfg.to) == ("starttls", 587, ["b@example.org", "c@example.org"])  # type: ignore[attr-defined]
    assert parse_properties("email", {"host": "h", "from": "a@x.org", "to": "b@x.org", "tls": "ssl"}).effective_port() == 465  # type: ignore[attr-defined]
    assert cfg.templates() == {}
    shown = masked("email", {"host": "h", "from": "a@x.org", "to": "b@x.org", "username": "u", "password": "pw"})
    assert shown["password"] == "********" and shown["username"] == "u"


BAD = [
    ({}, "property 'host': is required"),
    ({"host": "h", "to": "b@x.org"}, "property 'from': is required"),
    ({"host": "h", "from": "a@x.org"}, "property 'to': is required"),
    ({"host": "h", "from": "a@x.org", "to": []}, "property 'to': List should have at least 1 item"),
    ({"host": "h", "from": "a@x.org", "to": "nobody"}, "property 'to': 'nobody' is not an e-mail address"),
    ({"host": "h", "from": "me", "to": "b@x.org"}, "property 'from': 'me' is not an e-mail address"),
    ({"host": "h", "from": "a@x.org", "to": "b@x.org", "tls": "tls1.3"}, "property 'tls': Input should be 'starttls', 'ssl' or 'none'"),
    ({"host": "h", "from": "a@x.org", "to": "b@x.org", "port": 70000}, "property 'port': Input should be less than or equal to 65535"),
    ({"host": "h", "from": "a@x.org", "to": "b@x.org", "username": "u"}, "property 'password': is required when username is set"),
    ({"host": "h", "from": "a@x.org", "to": "b@x.org", "subject": "{{ .a.b }}"}, "property 'subject': template: unsupported construct '{{ .a.b }}'"),
    ({"host": "h", "from": "a@x.org", "to": "b@x.org", "body": "{{"}, "property 'body': template: '{{' is not closed"),
    ({"host": "h", "from": "a@x.org", "to": "b@x.org", "timeout": "forever"}, "property 'timeout': expected a duration"),
]


@pytest.mark.parametrize(("properties", "message"), BAD)
def test_bad_property_is_named(properties: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_properties("email", properties)
    assert caught.value.message.startswith(message)


async def test_refused_recipients_are_a_permanent_error(smtp: SmtpServer) -> None:
    smtp.unknown_recipients = {"oncall@example.org", "boss@example.org"}
    with pytest.raises(PartialWriteError) as caught:
        await deliver(email_sink(props(smtp)), [ROWS])
    assert sorted(caught.value.failures) == [0, 1]
    error = caught.value.failures[0]
    assert isinstance(error, PermanentError)
    assert "refused the recipients" in error.message and "550" in error.message and "oncall@example.org" in error.message
    assert smtp.messages == []


async def test_a_server_without_starttls_is_named_and_tls_none_suggested(smtp_plain: SmtpServer) -> None:
    sink = email_sink(props(smtp_plain, tls="starttls"))
    with pytest.raises(PermanentError) as failure:
        await sink.open()
    await sink.close()
    message = failure.value.message
    assert f"SMTP server 127.0.0.1:{smtp_plain.port} is reachable but does not offer STARTTLS" in message
    assert "set tls=none" in message and "unreachable" not in message
