"""Closing the Kafka sink while a flush still waits for deliveries: the pipeline's stop does that
(its task is cancelled, the flush's worker thread runs on, then it awaits ``close()``)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sinkflow.sinks import rdkafka
from sinkflow.sinks.base import RetryableError, WriteContext
from tests.clickhouse.car_results import car_batch
from tests.kafka.kafka_support import consume, deliver, make_sink
from tests.servers.chaos_proxy import ChaosProxy
from tests.servers.process import free_port, running
from tests.servers.tansu import TansuBroker


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[ChaosProxy]:
    """A Tansu broker reached only through a fault proxy: it advertises the proxy's port."""
    proxy_port = free_port()
    with running(TansuBroker(tmp_path / "tansu", advertised_port=proxy_port)) as broker, \
            ChaosProxy(broker.port, port=proxy_port) as chaos:
        yield chaos


class FlushWatch:
    """librdkafka's own rd_kafka_flush and rd_kafka_destroy, watched: which handles a thread is
    flushing, when a flush starts, and whether a handle was destroyed while flushed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.flush_started = threading.Event()
        self.destroyed_while_flushing: list[int] = []
        self.destroyed: list[int] = []
        self._flushing: dict[int, int] = {}
        self._lock = threading.Lock()
        self._flush, self._destroy = rdkafka._lib.rd_kafka_flush, rdkafka._lib.rd_kafka_destroy
        monkeypatch.setattr(rdkafka._lib, "rd_kafka_flush", self.flush)
        monkeypatch.setattr(rdkafka._lib, "rd_kafka_destroy", self.destroy)

    def flush(self, handle: int, timeout_ms: int) -> object:
        with self._lock:
            self._flushing[handle] = self._flushing.get(handle, 0) + 1
        self.flush_started.set()
        try:
            return self._flush(handle, timeout_ms)
        finally:
            with self._lock:
                self._flushing[handle] -= 1

    def destroy(self, handle: int) -> object:
        with self._lock:
            if self._flushing.get(handle):
                self.destroyed_while_flushing.append(handle)
            self.destroyed.append(handle)
        return self._destroy(handle)


async def test_close_during_a_stuck_flush_fails_the_flush_then_releases_the_producer(
    proxy: ChaosProxy, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bootstrap = f"127.0.0.1:{proxy.port}"
    props = {"brokers": bootstrap, "topic": topic, "tls.disable": True}
    watch = FlushWatch(monkeypatch)
    sink = make_sink(props)
    await sink.open()
    await deliver(sink, [car_batch(0)])

    # The broker stops answering (connections stay open): the next flush cannot complete.
    proxy.set(blackhole=True)
    stuck = car_batch(1)
    await sink.write(stuck, WriteContext("sink-1", 2, 3))
    watch.flush_started.clear()
    flush = asyncio.create_task(sink.flush(2))
    await asyncio.to_thread(watch.flush_started.wait)  # a worker thread is inside rd_kafka_flush

    await sink.close()  # returns while the broker still holds everything back
    with pytest.raises(RetryableError) as failure:
        await flush
    assert "closed" in failure.value.message
    assert watch.destroyed and watch.destroyed_while_flushing == []

    # The held requests are dropped, not delivered late; the runtime's retry, a new sink on the
    # same topic, sends the failed epoch again and goes on.
    proxy.cut()
    proxy.heal()
    again = make_sink(props, sink_id="sink-2")
    await again.open()
    await deliver(again, [stuck, car_batch(2)], first_epoch=2, first_row=3)
    await again.close()

    records = consume(bootstrap, topic, 9)
    received = sorted((json.loads(r.value)["time"], json.loads(r.value)["cid"]) for r in records)
    assert received == sorted(
        (row["time"].isoformat(timespec="milliseconds"), row["cid"])
        for b in (car_batch(0), stuck, car_batch(2))
        for row in b.to_pylist()
    )
