"""The webhook sink ("trigger actions") against a real HTTP server."""

from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

import sinkflow

from sinkflow.sinks.base import PartialWriteError, PermanentError, RetryableError
from tests.servers.http import RecordingEndpoint
from tests.sinks_http.support import deliver, make_sink

CARS = pa.record_batch(
    {
        "time": pa.array([dt.datetime(2022, 1, 23, 10, 0, 2), dt.datetime(2022, 1, 23, 10, 0, 4)], pa.timestamp("ms")),
        "cid": ["c00001", "c00002"],
        "speed_kmh": [88.5, 120.25],
        "total_km": pa.array([decimal.Decimal("1024.50"), decimal.Decimal("99.00")], pa.decimal128(10, 2)),
        "locked": [False, True],
    }
)


async def test_default_body_is_the_whole_row_as_json(receiver: HTTPServer) -> None:
    api = RecordingEndpoint()
    receiver.expect_request("/hook", method="POST").respond_with_handler(api)
    sink = make_sink("webhook", {"url": receiver.url_for("/hook"), "headers": {"X-Source": "sinkflow"}}, CARS.schema)
    await deliver(sink, [CARS])
    assert [r.body for r in api.received] == [
        b'{"time":"2022-01-23T10:00:02.000+00:00","cid":"c00001","speed_kmh":88.5,"total_km":1024.50,"locked":false}',
        b'{"time":"2022-01-23T10:00:04.000+00:00","cid":"c00002","speed_kmh":120.25,"total_km":99.00,"locked":true}',
    ]
    assert {r.headers["Content-Type"] for r in api.received} == {"application/json"}
    assert {r.headers["X-Source"] for r in api.received} == {"sinkflow"}
    assert [r.headers["Idempotency-Key"] for r in api.received] == ["sink-1-0", "sink-1-1"]


async def test_body_template(receiver: HTTPServer) -> None:
    api = RecordingEndpoint()
    receiver.expect_request("/hook", method="POST").respond_with_handler(api)
    props = {
        "url": receiver.url_for("/hook"),
        "body": "car {{.cid}} at {{ .speed_kmh }} km/h, locked={{.locked}}, at {{.time}}",
        "headers": {"Content-Type": "text/x-alert"},
    }
    await deliver(make_sink("webhook", props, CARS.schema), [CARS])
    assert [r.body.decode() for r in api.received] == [
        "car c00001 at 88.5 km/h, locked=false, at 2022-01-23 10:00:02.000",  # datetime64(3), as Timeplus prints it
        "car c00002 at 120.25 km/h, locked=true, at 2022-01-23 10:00:04.000",
    ]
    assert {r.headers["Content-Type"] for r in api.received} == {"text/x-alert"}


async def test_paralism_and_faults(receiver: HTTPServer) -> None:
    def answer(rec: object) -> Response | None:
        cid = rec.json()["cid"]  # type: ignore[attr-defined]
        return Response("gone", status=410) if cid == "c00002" else None

    api = RecordingEndpoint(answer=answer)
    receiver.expect_request("/hook").respond_with_handler(api)
    sink = make_sink("webhook", {"url": receiver.url_for("/hook"), "parallelism": 2}, CARS.schema)
    with pytest.raises(PartialWriteError) as caught:
        await deliver(sink, [CARS])
    assert list(caught.value.failures) == [1]
    assert isinstance(caught.value.failures[1], PermanentError)
    assert [r.json()["cid"] for r in api.received] == ["c00001"]  # type: ignore[index]


async def test_webhook_down_is_retryable_and_retried_without_limit(receiver: HTTPServer) -> None:
    receiver.expect_request("/hook").respond_with_data("busy", status=503)
    sink = make_sink("webhook", {"url": receiver.url_for("/hook")}, CARS.schema)
    with pytest.raises(PartialWriteError) as caught:
        await deliver(sink, [CARS])
    assert all(isinstance(e, RetryableError) for e in caught.value.failures.values())
    assert sink.config.retry_policy().max_retries is None
    assert len(receiver.log) == 1  # in order: the second row waits for the first


async def test_template_whitespace_is_content(receiver: HTTPServer) -> None:
    api = RecordingEndpoint()
    receiver.expect_request("/hook").respond_with_handler(api)
    props = {"url": receiver.url_for("/hook"), "body": "  {{.cid}}\n"}
    await deliver(make_sink("webhook", props, CARS.schema), [CARS.slice(0, 1)])
    assert [r.body for r in api.received] == [b"  c00001\n"]


async def test_a_json_body_template_is_sent_as_json_with_float32_as_timeplus_prints_it(receiver: HTTPServer) -> None:
    api = RecordingEndpoint()
    receiver.expect_request("/hook", method="POST").respond_with_handler(api)
    speeds = pa.record_batch({"cid": ["c1"], "speed_kmh": pa.array([126.95], pa.float32())})
    body = '{"text": "car {{ .cid }} at {{ .speed_kmh }} km/h", "speed": {{ .speed_kmh }}}'
    await deliver(make_sink("webhook", {"url": receiver.url_for("/hook"), "body": body}, speeds.schema), [speeds])
    await deliver(make_sink("webhook", {"url": receiver.url_for("/hook")}, speeds.schema), [speeds])
    templated, whole_row = api.received
    assert templated.body.decode() == '{"text": "car c1 at 126.95 km/h", "speed": 126.95}'
    assert whole_row.body.decode() == '{"cid":"c1","speed_kmh":126.95}'
    assert {r.headers["Content-Type"] for r in api.received} == {"application/json"}
    assert {r.headers["User-Agent"] for r in api.received} == {f"sinkflow/{sinkflow.__version__}"}


async def test_content_type_property_wins_and_plain_text_stays_plain(receiver: HTTPServer) -> None:
    api = RecordingEndpoint()
    receiver.expect_request("/hook", method="POST").respond_with_handler(api)
    one = CARS.slice(0, 1)
    url = receiver.url_for("/hook")
    await deliver(make_sink("webhook", {"url": url, "body": "car {{ .cid }}"}, one.schema), [one])
    await deliver(make_sink("webhook", {"url": url, "body": "<b>{{ .cid }}</b>", "content_type": "text/html"},
                            one.schema), [one])
    assert [(r.headers["Content-Type"], r.body.decode()) for r in api.received] == [
        ("text/plain; charset=utf-8", "car c00001"), ("text/html", "<b>c00001</b>")]
