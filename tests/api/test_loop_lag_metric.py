"""The event loop's lag on /metrics, as Prometheus scrapes it."""

from __future__ import annotations

import time

import httpx


def lag_count(api: httpx.Client) -> int:
    response = api.get("/metrics")
    assert response.status_code == 200
    lines = dict(line.rsplit(" ", 1) for line in response.text.splitlines() if line and not line.startswith("#"))
    assert "# TYPE sinkflow_event_loop_lag_seconds histogram" in response.text
    assert lines['sinkflow_event_loop_lag_seconds_bucket{le="+Inf"}'] == lines["sinkflow_event_loop_lag_seconds_count"]
    return int(lines["sinkflow_event_loop_lag_seconds_count"])


def test_the_loop_lag_histogram_keeps_sampling(api: httpx.Client) -> None:
    first = lag_count(api)
    deadline = time.monotonic() + 10
    while lag_count(api) <= first and time.monotonic() < deadline:
        time.sleep(0.1)
    assert lag_count(api) > first
