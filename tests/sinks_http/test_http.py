"""The http sink against a real HTTP server: bodies, headers, methods, order, concurrency, faults, OAuth2."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import socket

import pyarrow as pa
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from sinkflow.sinks.base import PartialWriteError, PermanentError, RetryableError, WriteContext
from sinkflow.sinks.http import HttpSink
from tests.servers.http import Recorded, RecordingEndpoint
from tests.sinks_http.servers import TokenEndpoint
from tests.sinks_http.support import deliver, make_sink


def readings(n: int, start: int = 0) -> pa.RecordBatch:
    """``n`` result rows like the document's example: time, number, note."""
    base = dt.datetime(2022, 1, 23, 10, 0, 0, 123000)
    return pa.record_batch(
        {
            "time": pa.array([base + dt.timedelta(minutes=i) for i in range(start, start + n)], pa.timestamp("ms")),
            "number": pa.array(range(start, start + n), pa.int64()),
            "note": pa.array([f"note {i}" for i in range(start, start + n)]),
        }
    )


def http_sink(props: dict[str, object], schema: pa.Schema | None = None) -> HttpSink:
    sink = make_sink("http", props, schema or readings(1).schema)
    assert isinstance(sink, HttpSink)
    return sink


async def test_each_row_is_posted_as_its_json_document_with_an_idempotency_key(receiver: HTTPServer) -> None:
    api = RecordingEndpoint()
    url = api.mount(receiver)
    sink = http_sink({"url": url, "http_header": {"X-Team": "ops"}})
    await deliver(sink, [readings(2), readings(3, start=2)], epoch=7)

    assert [r.method for r in api.received] == ["POST"] * 5
    assert api.bodies() == [
        {"time": f"2022-01-23T10:0{i}:00.123+00:00", "number": i, "note": f"note {i}"} for i in range(5)
    ]
    assert [r.headers["Idempotency-Key"] for r in api.received] == [f"sink-1-{i}" for i in range(5)]
    assert {r.headers["Content-Type"] for r in api.received} == {"application/json"}
    assert {r.headers["X-Team"] for r in api.received} == {"ops"}


async def test_payload_template_content_type_and_method(receiver: HTTPServer) -> None:
    api = RecordingEndpoint()
    url = api.mount(receiver, method="PUT")
    sink = http_sink(
        {
            "url": url,
            "http_method": "put",
            "content_type": "application/x-ndjson",
            "payload_field": '{"msg": "传感器数据为 {{.time}} {{.number}}，并备注: {{.note}}", "note": {{ json .note }}}',
        }
    )
    await deliver(sink, [readings(2)])
    assert api.bodies() == [
        {"msg": "传感器数据为 2022-01-23 10:00:00.123 0，并备注: note 0", "note": "note 0"},
        {"msg": "传感器数据为 2022-01-23 10:01:00.123 1，并备注: note 1", "note": "note 1"},
    ]
    assert {r.method for r in api.received} == {"PUT"}
    assert {r.headers["Content-Type"] for r in api.received} == {"application/x-ndjson"}


async def test_template_body_without_content_type_is_utf8_text(receiver: HTTPServer) -> None:
    api = RecordingEndpoint()
    url = api.mount(receiver)
    await deliver(http_sink({"url": url, "payload_field": "note: {{.note}} ✓"}), [readings(1)])
    assert [r.body.decode() for r in api.received] == ["note: note 0 ✓"]
    assert api.received[0].headers["Content-Type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_other_methods(receiver: HTTPServer, method: str) -> None:
    api = RecordingEndpoint()
    url = api.mount(receiver, method=method)
    await deliver(http_sink({"url": url, "http_method": method}), [readings(2)])
    assert [(r.method, r.json()["number"]) for r in api.received] == [(method, 0), (method, 1)]


async def test_values_keep_their_types_in_the_json_body(receiver: HTTPServer) -> None:
    api = RecordingEndpoint()
    url = api.mount(receiver)
    batch = pa.record_batch(
        {
            "price": pa.array([decimal.Decimal("12.30")], pa.decimal128(10, 2)),
            "ok": pa.array([True]),
            "ratio": pa.array([0.1]),
            "none": pa.array([None], pa.string()),
            "tags": pa.array([["a", "b"]]),
        }
    )
    await deliver(http_sink({"url": url}, batch.schema), [batch])
    assert api.received[0].body == b'{"price":12.30,"ok":true,"ratio":0.1,"none":null,"tags":["a","b"]}'


async def test_paralism_1_delivers_in_result_order_one_at_a_time(receiver: HTTPServer) -> None:
    api = RecordingEndpoint(delay=0.002)
    url = api.mount(receiver)
    await deliver(http_sink({"url": url}), [readings(40), readings(20, start=40)])
    assert [b["number"] for b in api.bodies()] == list(range(60))  # type: ignore[index]
    assert api.max_in_flight == 1


@pytest.mark.parametrize("spelling", ["paralism", "parallelism"])
async def test_paralism_n_keeps_n_requests_in_flight(receiver: HTTPServer, spelling: str) -> None:
    api = RecordingEndpoint(delay=0.2)  # long enough for all 8 to overlap even on a busy machine
    url = api.mount(receiver)
    await deliver(http_sink({"url": url, spelling: 8}), [readings(24)])
    assert api.max_in_flight == 8
    assert sorted(b["number"] for b in api.bodies()) == list(range(24))  # type: ignore[index]


async def test_429_is_retryable_with_retry_after_seconds(receiver: HTTPServer) -> None:
    api = RecordingEndpoint(answer=lambda rec: Response("slow down", status=429, headers={"Retry-After": "7"}))
    url = api.mount(receiver)
    with pytest.raises(PartialWriteError) as caught:
        await deliver(http_sink({"url": url}), [readings(1)])
    error = caught.value.failures[0]
    assert isinstance(error, RetryableError)
    assert error.retry_after == 7.0
    assert "HTTP 429" in error.message and "slow down" in error.message
    assert caught.value.retryable


async def test_429_retry_after_as_http_date(receiver: HTTPServer) -> None:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)
    date = when.strftime("%a, %d %b %Y %H:%M:%S GMT")
    api = RecordingEndpoint(answer=lambda rec: Response("", status=429, headers={"Retry-After": date}))
    url = api.mount(receiver)
    with pytest.raises(PartialWriteError) as caught:
        await deliver(http_sink({"url": url}), [readings(1)])
    retry_after = caught.value.failures[0].retry_after
    assert retry_after is not None and 100 < retry_after <= 120


async def test_500_mid_batch_stops_paralism_1_and_reports_the_rest_retryable(receiver: HTTPServer) -> None:
    def answer(rec: Recorded) -> Response | None:
        return Response("database is down", status=503) if rec.json()["number"] == 2 else None  # type: ignore[index]

    api = RecordingEndpoint(answer=answer)
    url = api.mount(receiver)
    with pytest.raises(PartialWriteError) as caught:
        await deliver(http_sink({"url": url, "retries": 3}), [readings(5)])
    failures = caught.value.failures
    assert sorted(failures) == [2, 3, 4]
    assert all(isinstance(err, RetryableError) for err in failures.values())
    assert "HTTP 503" in failures[2].message and "database is down" in failures[2].message
    assert "not sent" in failures[3].message
    # rows 0 and 1 were delivered, nothing after the failed row was sent (order is kept on retry)
    assert [b["number"] for b in api.bodies()] == [0, 1]  # type: ignore[index]
    assert len(receiver.log) == 3


async def test_500_without_retries_fails_only_that_row_and_the_rest_go_out_in_order(receiver: HTTPServer) -> None:
    # retries = 0 (the default): the failed row is dead-lettered, not retried, so holding
    # back the later rows would only dead-letter them too.
    def answer(rec: Recorded) -> Response | None:
        return Response("oops", status=500) if rec.json()["number"] == 2 else None  # type: ignore[index]

    api = RecordingEndpoint(answer=answer)
    url = api.mount(receiver)
    with pytest.raises(PartialWriteError) as caught:
        await deliver(http_sink({"url": url}), [readings(5)])
    assert list(caught.value.failures) == [2]
    assert isinstance(caught.value.failures[2], RetryableError)
    assert [b["number"] for b in api.bodies()] == [0, 1, 3, 4]  # type: ignore[index]


@pytest.mark.parametrize("paralism", [1, 4])
async def test_400_fails_exactly_that_row_permanently(receiver: HTTPServer, paralism: int) -> None:
    def answer(rec: Recorded) -> Response | None:
        if rec.json()["number"] == 3:  # type: ignore[index]
            return Response('{"error": "note too long"}', status=400)
        return None

    api = RecordingEndpoint(answer=answer)
    url = api.mount(receiver)
    with pytest.raises(PartialWriteError) as caught:
        await deliver(http_sink({"url": url, "paralism": paralism}), [readings(8)])
    assert list(caught.value.failures) == [3]
    error = caught.value.failures[3]
    assert isinstance(error, PermanentError)
    assert "HTTP 400" in error.message and "note too long" in error.message
    assert not caught.value.retryable
    assert sorted(b["number"] for b in api.bodies()) == [0, 1, 2, 4, 5, 6, 7]  # type: ignore[index]


async def test_error_body_excerpt_is_short(receiver: HTTPServer) -> None:
    api = RecordingEndpoint(answer=lambda rec: Response("x" * 5000, status=422))
    url = api.mount(receiver)
    with pytest.raises(PartialWriteError) as caught:
        await deliver(http_sink({"url": url}), [readings(1)])
    assert len(caught.value.failures[0].message) < 300


async def test_slow_answer_beyond_timeout_is_retryable(receiver: HTTPServer) -> None:
    api = RecordingEndpoint(delay=0.6)
    url = api.mount(receiver)
    with pytest.raises(PartialWriteError) as caught:
        await deliver(http_sink({"url": url, "timeout": "150ms"}), [readings(1)])
    error = caught.value.failures[0]
    assert isinstance(error, RetryableError)
    assert "did not answer within 0.15s" in error.message


async def test_unreachable_server_is_retryable() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(PartialWriteError) as caught:
        await deliver(http_sink({"url": f"http://127.0.0.1:{port}/api?key=abc"}), [readings(2)])
    assert sorted(caught.value.failures) == [0, 1]
    error = caught.value.failures[0]
    assert isinstance(error, RetryableError)
    assert "unreachable" in error.message
    assert f"http://127.0.0.1:{port}/api" in error.message and "key=abc" not in error.message


# ----------------------------------------------------------------------------- OAuth2


def oauth_props(receiver: HTTPServer, api: RecordingEndpoint, tokens: TokenEndpoint) -> dict[str, object]:
    receiver.expect_request("/token", method="POST").respond_with_handler(tokens)
    api.answer = tokens.check
    return {
        "url": api.mount(receiver),
        "oauth2": {
            "enabled": True,
            "client_key": tokens.client_id,
            "client_secret": tokens.client_secret,
            "token_url": receiver.url_for("/token"),
            "scopes": ["metrics:write", "alerts"],
        },
    }


async def test_oauth2_token_is_fetched_once_and_sent_as_bearer(receiver: HTTPServer) -> None:
    api, tokens = RecordingEndpoint(), TokenEndpoint("sinkflow", "cl1ent-s3cret")
    sink = http_sink(oauth_props(receiver, api, tokens))
    await deliver(sink, [readings(5)])
    assert tokens.issued == ["tok-1"]
    assert tokens.forms == [{"grant_type": "client_credentials", "scope": "metrics:write alerts"}]
    assert [r.headers["Authorization"] for r in api.received] == ["Bearer tok-1"] * 5
    assert len(api.received) == 5


async def test_oauth2_client_credentials_as_form_fields_when_basic_is_refused(receiver: HTTPServer) -> None:
    api, tokens = RecordingEndpoint(), TokenEndpoint("sinkflow", "cl1ent-s3cret", basic=False)
    sink = http_sink(oauth_props(receiver, api, tokens))
    await deliver(sink, [readings(2)])
    assert tokens.issued == ["tok-1"]
    assert tokens.forms[-1]["client_id"] == "sinkflow"
    assert len(api.received) == 2


async def test_oauth2_token_is_fetched_again_after_it_expires(receiver: HTTPServer) -> None:
    api, tokens = RecordingEndpoint(), TokenEndpoint("sinkflow", "cl1ent-s3cret", expires_in=2)
    sink = http_sink(oauth_props(receiver, api, tokens))
    await sink.open()
    try:
        await sink.write(readings(2), WriteContext("sink-1", 1))
        await asyncio.sleep(2.0)  # past expires_in minus the refresh margin (0.2 s)
        await sink.write(readings(2, start=2), WriteContext("sink-1", 2, first_row=2))
    finally:
        await sink.close()
    assert tokens.issued == ["tok-1", "tok-2"]
    assert [r.headers["Authorization"] for r in api.received] == ["Bearer tok-1"] * 2 + ["Bearer tok-2"] * 2


async def test_oauth2_401_forces_a_new_token_and_the_row_is_sent_again(receiver: HTTPServer) -> None:
    api, tokens = RecordingEndpoint(), TokenEndpoint("sinkflow", "cl1ent-s3cret")
    props = oauth_props(receiver, api, tokens)
    check = tokens.check

    def revoke_after_two(rec: Recorded) -> Response | None:
        if len(api.received) == 2:
            tokens.revoked.add("tok-1")  # the server revokes the token early
        return check(rec)

    api.answer = revoke_after_two
    await deliver(http_sink(props), [readings(5)])
    assert tokens.issued == ["tok-1", "tok-2"]
    assert [b["number"] for b in api.bodies()] == [0, 1, 2, 3, 4]  # type: ignore[index]
    assert [r.headers["Authorization"] for r in api.received] == ["Bearer tok-1"] * 2 + ["Bearer tok-2"] * 3
    refused = [entry for entry in receiver.log if entry[1].status_code == 401]
    assert len(refused) == 1


async def test_oauth2_refused_client_is_permanent_and_secret_free(receiver: HTTPServer) -> None:
    api, tokens = RecordingEndpoint(), TokenEndpoint("sinkflow", "the-right-secret")
    props = oauth_props(receiver, api, tokens)
    props["oauth2"]["client_secret"] = "wrong-s3cret-value"  # type: ignore[index]
    sink = http_sink(props)
    with pytest.raises(PermanentError) as caught:
        await sink.open()
    await sink.close()
    assert "OAuth2 token request refused" in caught.value.message and "HTTP 401" in caught.value.message
    assert "wrong-s3cret-value" not in caught.value.message
    assert api.received == []


async def test_tokens_never_appear_in_error_messages(receiver: HTTPServer) -> None:
    api, tokens = RecordingEndpoint(), TokenEndpoint("sinkflow", "cl1ent-s3cret")
    props = oauth_props(receiver, api, tokens)
    api.answer = lambda rec: Response(f"bad request, you sent {rec.headers['Authorization']}", status=400)
    with pytest.raises(PartialWriteError) as caught:
        await deliver(http_sink(props), [readings(1)])
    message = caught.value.failures[0].message
    assert "HTTP 400" in message
    assert "tok-1" not in message and "***" in message


async def test_redirects_are_not_followed_and_fail_the_row(receiver: HTTPServer) -> None:
    other = RecordingEndpoint()
    receiver.expect_request("/moved").respond_with_data("", status=302, headers={"Location": "/elsewhere"})
    receiver.expect_request("/elsewhere").respond_with_handler(other)
    with pytest.raises(PartialWriteError) as caught:
        await deliver(http_sink({"url": receiver.url_for("/moved")}), [readings(1)])
    error = caught.value.failures[0]
    assert isinstance(error, PermanentError)
    assert "HTTP 302" in error.message and "redirects are not followed" in error.message
    assert other.received == []


async def test_a_row_that_cannot_be_encoded_fails_alone(receiver: HTTPServer) -> None:
    api = RecordingEndpoint()
    url = api.mount(receiver)
    batch = pa.record_batch({"id": [1, 2, 3], "blob": pa.array([None, b"\x00\xff", None], pa.binary())})
    with pytest.raises(PartialWriteError) as caught:
        await deliver(http_sink({"url": url}, batch.schema), [batch])
    assert list(caught.value.failures) == [1]
    assert isinstance(caught.value.failures[1], PermanentError)
    assert "cannot be encoded" in caught.value.failures[1].message
    assert [b["id"] for b in api.bodies()] == [1, 3]  # type: ignore[index]
