"""The slack and http sinks run by the real runtime: stream → streaming query → sink → real server."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from pytest_httpserver import HTTPServer

from sinkflow.errors import ConfigError
from sinkflow.runtime.manager import SinkDefinition
from sinkflow.streams.store import StreamSettings
from sinkflow.streams.types import Column, parse_type
from tests.runtime.conftest import runtime  # noqa: F401 - the runtime fixture over real parts
from tests.runtime.support import Runtime, eventually
from tests.servers.http import RecordingEndpoint
from tests.sinks_http.servers import SlackWebhook, TokenEndpoint

TEMPLATE = "传感器数据为 {{.time}} {{.number}}，并备注: {{.note}}"
BASE = dt.datetime(2022, 1, 23, 10, 0, 0, 123000)


def make_sensors(rt: Runtime) -> None:
    columns = [Column("time", parse_type("datetime64(3)")), Column("number", parse_type("int64")),
               Column("note", parse_type("string"))]
    rt.store.create("sensors", columns, StreamSettings())


def ingest(rt: Runtime, rows: list[tuple[int, int, str]]) -> None:
    rt.store.get("sensors").append_rows(
        ["time", "number", "note"], [[BASE + dt.timedelta(minutes=m), n, note] for m, n, note in rows]
    )


async def test_slack_gets_every_row_in_order_through_rate_limits(runtime: Runtime, receiver: HTTPServer) -> None:  # noqa: F811
    hook = SlackWebhook(limited=1, retry_after="1")
    receiver.expect_request("/services/T1/B1/secret").respond_with_handler(hook)
    make_sensors(runtime)
    definition = SinkDefinition(
        name="sensor_alerts", sql="select time, number, note from sensors where number > 10", type="slack",
        properties={"url": receiver.url_for("/services/T1/B1/secret"), "template": TEMPLATE,
                    "messages_per_second": 50},
    )
    record = await runtime.sinks.create(definition)
    ingest(runtime, [(0, 50, "foo"), (1, 5, "too small"), (5, 95, "Bar"), (6, 70, '"quoted"\nline')])
    await eventually(lambda: len(hook.texts) == 3, what="3 Slack messages")
    assert hook.texts == [
        "传感器数据为 2022-01-23 10:00:00.123 50，并备注: foo",
        "传感器数据为 2022-01-23 10:05:00.123 95，并备注: Bar",
        '传感器数据为 2022-01-23 10:06:00.123 70，并备注: "quoted"\nline',
    ]
    status = runtime.sinks.status(record.id)
    await eventually(lambda: status.rows_delivered == 3, what="3 delivered rows in the status")
    assert status.dead_lettered == 0 and status.retries >= 1
    assert "429" in status.last_error and "secret" not in status.last_error


async def test_http_with_oauth2_and_paralism_delivers_every_row_once(runtime: Runtime, receiver: HTTPServer) -> None:  # noqa: F811
    tokens = TokenEndpoint("sinkflow", "cl1ent-s3cret")
    api = RecordingEndpoint(answer=tokens.check, delay=0.01)
    receiver.expect_request("/token").respond_with_handler(tokens)
    receiver.expect_request("/api").respond_with_handler(api)
    make_sensors(runtime)
    properties = {
        "url": receiver.url_for("/api"), "paralism": 4, "payload_field": '{"n": {{ .number }}, "note": {{ json .note }}}',
        "oauth2": {"enabled": True, "client_key": "sinkflow", "client_secret": "cl1ent-s3cret",
                   "token_url": receiver.url_for("/token"), "scopes": ["write"]},
    }
    await runtime.sinks.create(SinkDefinition("to_api", "select time, number, note from sensors", "http", properties=properties))
    ingest(runtime, [(i, i, f"n{i}") for i in range(40)])
    await eventually(lambda: len(api.received) == 40, what="40 API calls")
    assert sorted(b["n"] for b in api.bodies()) == list(range(40))  # type: ignore[index]
    assert {r.headers["Authorization"] for r in api.received} == {"Bearer tok-1"}
    assert len({r.headers["Idempotency-Key"] for r in api.received}) == 40
    assert api.max_in_flight <= 4


@pytest.mark.parametrize(
    ("sink_type", "properties", "message"),
    [
        ("slack", {"url": "https://hooks.slack.com/services/T/B/X", "template": "{{ .number }} {{ .speed }}"},
         "property 'template': unknown column 'speed' (columns: time, number, note)"),
        ("http", {"url": "http://127.0.0.1:1/x", "payload_field": "{{ if .note }}"},
         "property 'payload_field': template: unsupported construct '{{ if .note }}' at line 1, column 1"),
        ("webhook", {"url": "http://127.0.0.1:1/x", "body": "{{ json .nope }}"},
         "property 'body': unknown column 'nope'"),
    ],
)
async def test_templates_are_checked_against_the_query_at_creation(
    runtime: Runtime, sink_type: str, properties: dict[str, object], message: str  # noqa: F811
) -> None:
    make_sensors(runtime)
    with pytest.raises(ConfigError) as caught:
        await runtime.sinks.create(SinkDefinition("bad", "select time, number, note from sensors", sink_type,
                                                  properties=properties))
    assert caught.value.message.startswith(message)
    assert runtime.catalog.sinks() == []


async def test_slow_answers_beyond_timeout_are_retried_until_every_row_arrives(
    runtime: Runtime, receiver: HTTPServer  # noqa: F811
) -> None:
    slow = {"left": 2}

    def answer(rec: object) -> None:
        if slow["left"] > 0:  # the first two requests hang past the sink's timeout
            slow["left"] -= 1
            time.sleep(0.6)
        return None

    api = RecordingEndpoint(answer=answer)
    receiver.expect_request("/api").respond_with_handler(api)
    make_sensors(runtime)
    properties = {"url": receiver.url_for("/api"), "timeout": "200ms", "retries": 5, "retry_interval": "50ms"}
    record = await runtime.sinks.create(SinkDefinition("slowpoke", "select number, note from sensors", "http",
                                                       properties=properties))
    ingest(runtime, [(i, i, f"n{i}") for i in range(5)])
    status = runtime.sinks.status(record.id)
    await eventually(lambda: status.rows_delivered == 5, what="5 delivered rows")
    # the answers that came too late may have been recorded too (at-least-once): every row is there, in order
    numbers = [b["number"] for b in api.bodies()]  # type: ignore[index]
    assert sorted(set(numbers)) == [0, 1, 2, 3, 4]
    assert [n for i, n in enumerate(numbers) if n not in numbers[:i]] == [0, 1, 2, 3, 4]
    assert status.dead_lettered == 0 and status.retries >= 1
    assert "did not answer within 0.2s" in status.last_error
