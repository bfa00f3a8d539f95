"""Chaos between each sink and its server: a fault-injecting proxy (latency, resets, blackholes,
slow reads, the server cut off) while a fixed number of rows flows, then every row is counted
at the destination: none may be lost; duplicates are counted and reported (at-least-once allows
them; exactly-once to Kafka, read committed, must have none).

Loopback only, bounded: each test streams a few thousand rows through one cycle of faults and
gives the sink at most two minutes to catch up once the path is healthy again.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from sinkflow.runtime.manager import SinkDefinition
from tests.kafka.committed import settled_committed_values
from tests.kafka.kafka_support import consume
from tests.runtime.support import Runtime
from tests.runtime.test_pipeline import ingest, make_events
from tests.servers.chaos_proxy import ChaosProxy
from tests.servers.clickhouse import ClickHouseServer
from tests.servers.http import RecordingEndpoint
from tests.servers.tansu import TansuBroker, persistent_tansu_broker  # noqa: F401 - fixture

ROWS = 3_000
CHUNK = 100
#: One cycle through every fault; each phase lasts PHASE seconds.
PHASES: list[tuple[str, dict[str, Any]]] = [
    ("latency", {"latency": 0.03}),
    ("resets", {"reset_chance": 0.05}),
    ("blackhole", {"blackhole": True}),
    ("slow reads", {"bytes_per_second": 20_000}),
    ("server cut off", {"down": True}),
    ("latency and resets", {"latency": 0.01, "reset_chance": 0.05}),
]
PHASE = 1.5
CATCH_UP = 120.0
SQL = "select id, msg from events"


async def run_with_chaos(runtime: Runtime, proxy: ChaosProxy, phases: list[tuple[str, dict[str, Any]]]) -> None:
    """Ingest ROWS rows in chunks while the proxy goes through ``phases``; then heal it."""
    seconds = PHASE * len(phases)
    chunks = ROWS // CHUNK

    async def feed() -> None:
        for i in range(chunks):
            ingest(runtime, range(i * CHUNK, (i + 1) * CHUNK))
            await asyncio.sleep(seconds / chunks)

    async def faults() -> None:
        for _, changes in phases:
            proxy.heal()
            proxy.set(**changes)
            await asyncio.sleep(PHASE)
        proxy.heal()

    await asyncio.gather(feed(), faults())


async def caught_up(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + CATCH_UP
    while time.monotonic() < deadline:
        if await asyncio.to_thread(check):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{what} did not catch up within {CATCH_UP:.0f}s of the path healing")


def tally(name: str, ids: Iterable[int], proxy: ChaosProxy | None) -> tuple[int, int]:
    """(lost, duplicated) rows among ``ids`` against 0..ROWS-1, printed for the run's report."""
    counts = collections.Counter(ids)
    lost = sum(1 for i in range(ROWS) if i not in counts)
    duplicated = sum(n - 1 for n in counts.values())
    extra = sorted(set(counts) - set(range(ROWS)))
    assert not extra, f"{name}: rows that were never sent arrived: {extra[:5]}"
    faults = "" if proxy is None else f" ({proxy.stats.connections} connections, {proxy.stats.resets} reset by the proxy)"
    print(f"\nchaos {name}: {ROWS} rows sent, {lost} lost, {duplicated} duplicated{faults}")
    return lost, duplicated


async def test_webhook_through_chaos_loses_nothing(runtime: Runtime, httpserver: HTTPServer) -> None:
    receiver = RecordingEndpoint()
    receiver.mount(httpserver, "/hook")
    with ChaosProxy(httpserver.port, seed=1) as proxy:
        make_events(runtime)
        record = await runtime.sinks.create(SinkDefinition("chaos_hook", SQL, "webhook", properties={
            "url": f"http://127.0.0.1:{proxy.port}/hook", "timeout": "1s", "paralism": 4}))
        await run_with_chaos(runtime, proxy, PHASES)
        status = runtime.sinks.status(record.id)
        await caught_up(lambda: status.rows_delivered >= ROWS, "the webhook sink")
        lost, duplicated = tally("webhook", (r.json()["id"] for r in receiver.received), proxy)
        keys = collections.Counter(r.headers["Idempotency-Key"] for r in receiver.received)
        # Every resend of a row carries that row's key: a receiver honouring it sees each row once.
        assert len(keys) == ROWS - lost
    assert lost == 0
    assert status.dead_lettered == 0
    assert status.retries > 0, "the faults should have caused retries"
    assert duplicated == sum(n - 1 for n in keys.values())


async def kafka_under_faults(runtime: Runtime, proxied_broker: tuple[TansuBroker, int], guarantee: str,
                             phases: list[tuple[str, dict[str, Any]]], name: str, seed: int) -> tuple[int, int]:
    """Stream ROWS rows to a fresh topic through the proxy while it goes through ``phases``;
    (lost, duplicated) as a consumer sees them (read committed for exactly-once)."""
    broker, proxy_port = proxied_broker
    topic = f"chaos-{uuid.uuid4().hex[:8]}"
    with ChaosProxy(broker.port, port=proxy_port, seed=seed) as proxy:
        make_events(runtime)
        record = await runtime.sinks.create(SinkDefinition("chaos_kafka", SQL, "kafka", properties={
            "brokers": f"127.0.0.1:{proxy_port}", "topic": topic, "tls.disable": True,
            "delivery_guarantee": guarantee}))
        await run_with_chaos(runtime, proxy, phases)
        status = runtime.sinks.status(record.id)
        try:
            await caught_up(lambda: status.rows_delivered >= ROWS, "the kafka sink")
        except AssertionError:
            await runtime.sinks.delete(record.id)
            raise AssertionError(f"{status.to_dict()}") from None
        values = await arrived(broker, topic, guarantee)
        await runtime.sinks.delete(record.id)  # while its broker is reachable: closing it talks to the broker
        return tally(f"kafka {guarantee} {name}", (json.loads(v)["id"] for v in values), proxy)


async def arrived(broker: TansuBroker, topic: str, guarantee: str) -> list[bytes]:
    """The messages of ``topic``: every one for at-least-once, those of committed transactions
    for exactly-once (what a read_committed consumer of a conforming broker sees)."""
    if guarantee == "exactly_once":
        return await asyncio.to_thread(settled_committed_values, broker.bootstrap, topic,
                                       lambda vs: len({json.loads(v)["id"] for v in vs}) >= ROWS)
    return [r.value for r in await asyncio.to_thread(consume, broker.bootstrap, topic, ROWS)]


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
async def test_kafka_through_chaos_loses_nothing(runtime: Runtime, proxied_broker: tuple[TansuBroker, int],
                                                 guarantee: str) -> None:
    lost, duplicated = await kafka_under_faults(runtime, proxied_broker, guarantee, PHASES, "chaos", seed=2)
    assert lost == 0
    if guarantee == "exactly_once":
        assert duplicated == 0


async def test_clickhouse_through_chaos_loses_nothing(runtime: Runtime, clickhouse_server: ClickHouseServer) -> None:
    table = f"chaos_{uuid.uuid4().hex[:8]}"
    with ChaosProxy(clickhouse_server.tcp_port, seed=3) as proxy:
        make_events(runtime)
        record = await runtime.sinks.create(SinkDefinition("chaos_ch", SQL, "clickhouse", properties={
            "hosts": [f"127.0.0.1:{proxy.port}"], "table_name": table, "username": clickhouse_server.user,
            "password": clickhouse_server.password, "engine": "MergeTree()", "suffix": "ORDER BY id"}))
        await run_with_chaos(runtime, proxy, PHASES)
        status = runtime.sinks.status(record.id)
        await caught_up(lambda: status.rows_delivered >= ROWS, "the clickhouse sink")
        ids = [row[0] for row in clickhouse_server.client().execute(f"SELECT id FROM {table}")]
        lost, _ = tally("clickhouse", ids, proxy)
    assert lost == 0


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
@pytest.mark.parametrize("outage", ["down", "blackhole"])
async def test_a_kafka_broker_cut_off_mid_stream_loses_nothing(runtime: Runtime,
                                                               proxied_broker: tuple[TansuBroker, int],
                                                               guarantee: str, outage: str) -> None:
    """The broker keeps running (and its data: Tansu here is memory-only, so a restarted broker
    would be empty) while the path to it is cut for several seconds mid-stream."""
    cut = ("outage", {outage: True})
    phases = [("healthy", {}), cut, cut, cut, ("healthy", {})]
    lost, duplicated = await kafka_under_faults(runtime, proxied_broker, guarantee, phases, f"broker {outage}", seed=4)
    assert lost == 0
    if guarantee == "exactly_once":
        assert duplicated == 0


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
async def test_a_kafka_broker_killed_and_restarted_mid_stream_loses_nothing(
        runtime: Runtime, persistent_tansu_broker: tuple[TansuBroker, int], guarantee: str) -> None:
    """kill -9 of the broker itself mid-stream, and a restart seconds later on the same port with
    the same data (its storage is an S3 store that outlives it).

    The clients are cut off half a second before the kill, so that the broker is not killed in
    the middle of storing a batch: Tansu 0.6.0 records an idempotent producer's new sequence
    number before the batch itself, so a batch cut there is lost and its retry is answered
    "duplicate" (docs/delivery.md). What is measured is the sink's side of a broker restart."""
    broker, proxy_port = persistent_tansu_broker
    topic = f"restart-{uuid.uuid4().hex[:8]}"
    with ChaosProxy(broker.port, port=proxy_port, seed=5) as proxy:
        make_events(runtime)
        record = await runtime.sinks.create(SinkDefinition("restart_kafka", SQL, "kafka", properties={
            "brokers": f"127.0.0.1:{proxy_port}", "topic": topic, "tls.disable": True,
            "delivery_guarantee": guarantee}))
        status = runtime.sinks.status(record.id)
        chunks = ROWS // CHUNK
        for i in range(chunks):
            ingest(runtime, range(i * CHUNK, (i + 1) * CHUNK))
            await asyncio.sleep(0.2)
            if i == chunks // 3:
                await caught_up(lambda: status.rows_delivered > 0, "the first rows")
                proxy.set(down=True)
                await asyncio.sleep(0.5)
                broker.kill()
            if i == chunks // 2:
                await asyncio.to_thread(broker.start)
                proxy.heal()
        await caught_up(lambda: status.rows_delivered >= ROWS, "the kafka sink")
        values = await arrived(broker, topic, guarantee)
        await runtime.sinks.delete(record.id)
        lost, duplicated = tally(f"kafka {guarantee} broker killed and restarted",
                                 (json.loads(v)["id"] for v in values), proxy)
    assert lost == 0
    if guarantee == "exactly_once":
        assert duplicated == 0
