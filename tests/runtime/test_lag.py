"""What a sink's status says while it cannot keep up: its lag counts the rows a slow destination
still holds, at every moment, and its retries count attempts to connect as well."""

from __future__ import annotations

import asyncio

from sinkflow.runtime.manager import SinkDefinition
from sinkflow.runtime.status import SinkState, prometheus_text
from tests.runtime.support import Runtime, eventually
from tests.runtime.test_pipeline import ingest, make_events, webhook
from tests.servers.http import RecordingEndpoint
from tests.servers.process import free_port


async def test_lag_counts_rows_a_slow_destination_has_not_acknowledged(runtime: Runtime,
                                                                       receiver: RecordingEndpoint) -> None:
    receiver.delay = 0.05  # one row per request: 40 rows take a few seconds
    make_events(runtime)
    record = await runtime.sinks.create(webhook("slow", receiver.url))
    status = runtime.sinks.status(record.id)
    ingest(runtime, range(40))
    await eventually(lambda: len(receiver.requests) >= 1, what="the first request")
    seen: list[tuple[int, int, float]] = []
    while len(receiver.received) < 40:
        delivered = len(receiver.received)
        body = status.to_dict()
        seen.append((delivered, int(body["lag"]), float(body["lag_seconds"])))  # type: ignore[arg-type]
        # Never less than what the receiver has not accepted yet.
        assert body["lag"] >= 40 - delivered - 1, (delivered, body["lag"])  # type: ignore[operator]
        await asyncio.sleep(0.05)
    assert len(seen) >= 5
    assert all(lag > 0 for _, lag, _ in seen)
    ages = [age for _, _, age in seen]
    assert ages == sorted(ages) and ages[-1] > ages[0], "the oldest waiting row ages while it waits"
    metric = f'sinkflow_sink_lag_rows{{sink_id="{record.id}",sink="slow"}}'
    await eventually(lambda: status.to_dict()["lag"] == 0, what="lag back to 0 once everything is delivered")
    text = prometheus_text(runtime.sinks.statuses())
    assert f"{metric} 0" in text
    assert f'sinkflow_sink_lag_seconds{{sink_id="{record.id}",sink="slow"}} 0.0' in text


async def test_a_sink_that_cannot_connect_counts_its_retries(runtime: Runtime) -> None:
    make_events(runtime)
    record = await runtime.sinks.create(SinkDefinition("mailer", "select id, msg from events", "email", properties={
        "host": "127.0.0.1", "port": free_port(), "tls": "none", "from": "a@example.org", "to": "b@example.org"}))
    status = runtime.sinks.status(record.id)
    await eventually(lambda: status.retries >= 2, what="two retries of connecting")
    assert status.state is SinkState.RETRYING
    assert "unreachable" in status.last_error
    assert f'sinkflow_sink_retries_total{{sink_id="{record.id}",sink="mailer"}} {status.retries}' in prometheus_text(
        runtime.sinks.statuses())
