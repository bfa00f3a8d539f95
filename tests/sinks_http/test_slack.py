"""The slack sink against a real HTTP server speaking Slack's incoming-webhook protocol."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pyarrow as pa
import pytest
from pytest_httpserver import HTTPServer

from sinkflow.sinks.base import PartialWriteError, PermanentError, RetryableError, WriteContext
from sinkflow.sinks.pacing import Pacer
from sinkflow.sinks.registry import masked
from tests.sinks_http.servers import SlackWebhook
from tests.sinks_http.support import deliver, make_sink

HOOK_PATH = "/services/T0001/B0002/XXXXsecretXXXX"
HOSTILE = [
    'he said "stop" \\ now',
    "line one\nline two\r\n\ttabbed",
    "ünïcödé 中文 😀 \u2028\u2029",
    "</script><b>&amp;</b> {{.note}} ${x}",
    "nul\x00 bell\x07",
]


def notes(values: list[str]) -> pa.RecordBatch:
    return pa.record_batch({"number": list(range(len(values))), "note": values})


def slack_on(receiver: HTTPServer, hook: SlackWebhook) -> str:
    receiver.expect_request(HOOK_PATH, method="POST").respond_with_handler(hook)
    return receiver.url_for(HOOK_PATH)


async def test_template_text_is_json_encoded_whatever_it_contains(receiver: HTTPServer) -> None:
    hook = SlackWebhook()
    url = slack_on(receiver, hook)
    props = {"url": url, "template": "#{{.number}}: {{ .note }}", "messages_per_second": 1000}
    await deliver(make_sink("slack", props, notes(HOSTILE).schema), [notes(HOSTILE)])
    assert hook.texts == [f"#{i}: {note}" for i, note in enumerate(HOSTILE)]
    assert {entry[0].headers["Content-Type"] for entry in receiver.log} == {"application/json"}


async def test_without_template_the_row_is_sent_as_json_text(receiver: HTTPServer) -> None:
    hook = SlackWebhook()
    url = slack_on(receiver, hook)
    batch = notes(HOSTILE[:2])
    await deliver(make_sink("slack", {"url": url, "messages_per_second": 1000}, batch.schema), [batch])
    assert [json.loads(text) for text in hook.texts] == [{"number": 0, "note": HOSTILE[0]}, {"number": 1, "note": HOSTILE[1]}]


async def test_header_property(receiver: HTTPServer) -> None:
    hook = SlackWebhook()
    url = slack_on(receiver, hook)
    props = {"url": url, "template": "{{.note}}", "header": {"X-Trace": "t-1"}, "messages_per_second": 1000}
    await deliver(make_sink("slack", props, notes(["a"]).schema), [notes(["a"])])
    assert hook.texts == ["a"]
    assert receiver.log[0][0].headers["X-Trace"] == "t-1"


async def test_messages_are_paced_to_the_configured_rate(receiver: HTTPServer) -> None:
    hook = SlackWebhook()
    url = slack_on(receiver, hook)
    props = {"url": url, "template": "{{.note}}", "messages_per_second": 10}
    await deliver(make_sink("slack", props, notes(["a"]).schema), [notes(list("abcde"))])
    assert hook.texts == list("abcde")
    # Sends start 1/10 s apart. Measured at the receiver from the second message on (the
    # first one also opens the connection), with room for scheduling jitter at the ends.
    assert hook.times[-1] - hook.times[1] >= 0.8 * 3 / 10


async def test_pacer_spaces_concurrent_callers_and_holds_after_a_429() -> None:
    pacer = Pacer(rate=50)
    starts: list[float] = []

    async def send() -> None:
        await pacer.wait()
        starts.append(time.monotonic())

    await asyncio.gather(*(send() for _ in range(5)))
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps) >= 0.02 - 0.002  # asyncio may wake up to its clock resolution early
    held = time.monotonic()
    pacer.hold(0.2)
    await send()
    assert starts[-1] - held >= 0.2 - 0.002


async def test_429_is_retryable_with_retry_after_and_never_dropped(receiver: HTTPServer) -> None:
    hook = SlackWebhook(limited=1, retry_after="1")
    url = slack_on(receiver, hook)
    props = {"url": url, "template": "{{.note}}", "messages_per_second": 1000}
    sink = make_sink("slack", props, notes(["a"]).schema)
    assert sink.config.retry_policy().max_retries is None  # the runtime retries until Slack takes it
    await sink.open()
    try:
        with pytest.raises(PartialWriteError) as caught:
            await sink.write(notes(["first", "second"]), WriteContext("sink-1", 1))
        failures = caught.value.failures
        assert sorted(failures) == [0, 1]
        assert isinstance(failures[0], RetryableError) and failures[0].retry_after == 1.0
        assert "HTTP 429" in failures[0].message and "rate_limited" in failures[0].message
        assert url not in failures[0].message and "secret" not in failures[0].message
        # the runtime's retry of the failed rows: they go out, in order, once Retry-After passed
        retry = notes(["first", "second"])
        await sink.write(retry, WriteContext("sink-1", 1, row_ids=(0, 1)))
    finally:
        await sink.close()
    assert hook.texts == ["first", "second"]
    first_refused, first_ok = receiver.log[0], receiver.log[1]
    assert first_refused[1].status_code == 429 and first_ok[1].status_code == 200


@pytest.mark.parametrize(("status", "body"), [(400, "invalid_payload"), (404, "no_service"), (403, "invalid_token")])
async def test_slack_errors_are_permanent_and_never_show_the_url(receiver: HTTPServer, status: int, body: str) -> None:
    receiver.expect_request(HOOK_PATH, method="POST").respond_with_data(body, status=status)
    url = receiver.url_for(HOOK_PATH)
    sink = make_sink("slack", {"url": url, "messages_per_second": 1000}, notes(["a"]).schema)
    with pytest.raises(PartialWriteError) as caught:
        await deliver(sink, [notes(["a"])])
    error = caught.value.failures[0]
    assert isinstance(error, PermanentError)
    assert f"Slack webhook answered HTTP {status}" in error.message and body in error.message
    assert "XXXXsecretXXXX" not in error.message and "127.0.0.1" not in error.message


async def test_unreachable_webhook_is_retryable_and_url_free() -> None:
    url = "http://127.0.0.1:9/services/T0001/B0002/XXXXsecretXXXX"  # discard port: nothing listens
    sink = make_sink("slack", {"url": url}, notes(["a"]).schema)
    with pytest.raises(PartialWriteError) as caught:
        await deliver(sink, [notes(["a"])])
    error = caught.value.failures[0]
    assert isinstance(error, RetryableError)
    assert "XXXXsecretXXXX" not in error.message


async def test_webhook_url_never_reaches_the_logs(receiver: HTTPServer, caplog: pytest.LogCaptureFixture) -> None:
    hook = SlackWebhook()
    url = slack_on(receiver, hook)
    caplog.set_level(logging.DEBUG)
    await deliver(make_sink("slack", {"url": url, "messages_per_second": 1000}, notes(["a"]).schema), [notes(["a"])])
    assert len(hook.texts) == 1
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("werkzeug")]  # werkzeug: the receiver
    assert "XXXXsecretXXXX" not in "\n".join(ours)


def test_url_is_masked_in_properties() -> None:
    props = {"url": "https://hooks.slack.com/services/T/B/secret", "template": "{{.a}}"}
    assert masked("slack", props) == {"url": "********", "template": "{{.a}}"}


def test_sinks_posting_to_one_webhook_share_its_pace() -> None:
    from sinkflow.sinks.pacing import shared_pacer

    assert shared_pacer("https://hooks.slack.com/services/T/B/1", 1.0) is shared_pacer("https://hooks.slack.com/services/T/B/1", 1.0)
    assert shared_pacer("https://hooks.slack.com/services/T/B/1", 1.0) is not shared_pacer("https://hooks.slack.com/services/T/B/2", 1.0)
