"""The shared delivery helpers on their own: Retry-After parsing, scrubbing, ordered/concurrent delivery."""

from __future__ import annotations

import asyncio

import pytest

from sinkflow.sinks.base import NotAttempted, PartialWriteError, PermanentError, RetryableError
from sinkflow.sinks.delivery import deliver_rows
from sinkflow.sinks.http_errors import parse_retry_after
from sinkflow.sinks.redact import scrub

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("Tue, 14 Nov 2023 22:14:20 GMT", 60.0),
        ("Tue, 14 Nov 2023 22:00:00 GMT", 0.0),  # in the past: go now
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


def test_scrub_replaces_every_secret() -> None:
    assert scrub("token abc at https://h/abc?x=abc", ["abc", ""]) == "token *** at https://h/***?x=***"


async def test_paralism_1_stops_at_a_retryable_failure_and_marks_the_rest_not_attempted() -> None:
    sent: list[int] = []

    async def send(i: int) -> None:
        if i == 1:
            raise PermanentError("bad row")
        if i == 3:
            raise RetryableError("busy", retry_after=2.0)
        sent.append(i)

    with pytest.raises(PartialWriteError) as caught:
        await deliver_rows(6, send, 1)
    assert sent == [0, 2]  # the permanent failure did not stop the batch; the retryable one did
    failures = caught.value.failures
    assert list(failures) == [1, 3, 4, 5]
    assert isinstance(failures[1], PermanentError) and isinstance(failures[3], RetryableError)
    assert all(isinstance(failures[i], NotAttempted) and failures[i].retry_after == 2.0 for i in (4, 5))


async def test_paralism_n_tries_every_row_with_n_in_flight() -> None:
    in_flight = peak = 0
    done: list[int] = []

    async def send(i: int) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        if i % 4 == 0:
            raise RetryableError("busy")
        done.append(i)

    with pytest.raises(PartialWriteError) as caught:
        await deliver_rows(20, send, 5)
    assert peak == 5
    assert sorted(done) == [i for i in range(20) if i % 4]
    assert list(caught.value.failures) == [0, 4, 8, 12, 16]


@pytest.mark.parametrize("paralism", [1, 3])
async def test_a_bug_in_send_propagates_as_itself(paralism: int) -> None:
    async def send(i: int) -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await deliver_rows(3, send, paralism)
