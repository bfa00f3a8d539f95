"""Retry classification, backoff and batching: the shared parts every sink is built from."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from sinkflow.runtime.batching import Batcher
from sinkflow.runtime.retry import Backoff, is_retriable, retry_after
from sinkflow.sinks.base import PartialWriteError, PermanentError, RetryableError
from sinkflow.sinks.config import BatchPolicy, RetryPolicy, format_duration, parse_duration


@pytest.mark.parametrize(
    ("error", "retriable"),
    [
        (RetryableError("503"), True),
        (PermanentError("400"), False),
        (ConnectionRefusedError(), True),
        (TimeoutError(), True),
        (OSError("network unreachable"), True),
        (ValueError("bug"), False),
        (PartialWriteError({0: RetryableError("a"), 1: RetryableError("b")}), True),
        (PartialWriteError({0: RetryableError("a"), 1: PermanentError("b")}), False),
    ],
)
def test_classifier(error: BaseException, retriable: bool) -> None:
    assert is_retriable(error) is retriable


def test_retry_after_is_honoured_over_a_shorter_backoff() -> None:
    backoff = Backoff(RetryPolicy(max_retries=3, initial_backoff=0.1, max_backoff=1.0), random.Random(1))
    error = RetryableError("429", retry_after=7.0)
    assert retry_after(error) == 7.0
    assert backoff.next_delay(retry_after(error)) == 7.0


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    backoff = Backoff(RetryPolicy(max_retries=None, initial_backoff=1.0, max_backoff=8.0), random.Random(7))
    delays = [backoff.next_delay() for _ in range(6)]
    ceilings = [1, 2, 4, 8, 8, 8]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert not backoff.exhausted()


def test_bounded_policy_is_exhausted_after_max_retries() -> None:
    backoff = Backoff(RetryPolicy(max_retries=2, initial_backoff=0.01))
    assert not backoff.exhausted()
    backoff.next_delay()
    backoff.next_delay()
    assert backoff.exhausted()
    zero = Backoff(RetryPolicy(max_retries=0))
    assert zero.exhausted()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10.0), ("100ms", 0.1), ("1.5m", 90.0), ("2h", 7200.0), (3, 3.0), ("250us", 0.00025)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["ten seconds", "-1s", "10x", True, -3])
def test_bad_durations_are_named(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_duration_round_trip_spelling() -> None:
    assert format_duration(0.1) == "100ms"
    assert format_duration(10.0) == "10s"


SCHEMA = pa.schema([("n", pa.int64())])


def _batch(start: int, count: int) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({"n": list(range(start, start + count))}, schema=SCHEMA)


def test_batcher_cuts_by_row_count_in_order() -> None:
    batcher = Batcher(BatchPolicy(max_rows=4, max_wait=60), SCHEMA)
    batcher.add(_batch(0, 3))
    assert not batcher.due()
    batcher.add(_batch(3, 3))
    assert batcher.due()
    assert batcher.take().column(0).to_pylist() == [0, 1, 2, 3]
    assert len(batcher) == 2
    assert not batcher.due()
    batcher.add(_batch(6, 2))
    assert batcher.take().column(0).to_pylist() == [4, 5, 6, 7]
    assert len(batcher) == 0


def test_batcher_cuts_by_age() -> None:
    now = [0.0]  # a clock the test moves by hand: exact at any machine load
    batcher = Batcher(BatchPolicy(max_rows=1000, max_wait=0.05), SCHEMA, clock=lambda: now[0])
    batcher.add(_batch(0, 1))
    now[0] = 0.049
    assert not batcher.due()
    now[0] = 0.051
    assert batcher.due()
    assert batcher.take().num_rows == 1
