"""A sink that acknowledges at ``flush`` gets the tail of a burst flushed once the query has read
all its input, not when the query goes quiet (a whole batch wait later)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyarrow as pa

from sinkflow.catalog import Catalog, SinkRecord
from sinkflow.engine import Engine
from sinkflow.runtime.batching import Batcher
from sinkflow.runtime.dead_letter import DeadLetters
from sinkflow.runtime.encode_ahead import EncodeAhead
from sinkflow.runtime.pipeline import Pipeline, RuntimeSettings
from sinkflow.sinks.base import Sink, SinkEnv, WriteContext
from sinkflow.sinks.config import BatchPolicy, SinkConfig
from sinkflow.streams.store import StreamSettings, StreamStore
from sinkflow.streams.types import Column, parse_type
from tests.runtime.support import eventually

SCHEMA = pa.schema([("id", pa.int64())])
#: Batches of 10 rows that may wait far longer than the test: only a drained input can flush them.
POLICY = BatchPolicy(max_rows=10, max_wait=600.0)


class Acknowledging(Sink):
    """Holds written ids until ``flush``, which acknowledges them (as the Kafka sink does)."""

    config_class = SinkConfig

    def __init__(self) -> None:
        super().__init__(SinkConfig(), SinkEnv("s", "s", SCHEMA))
        self.written: list[int] = []
        self.acknowledged: list[int] = []

    async def write(self, batch: pa.RecordBatch, ctx: WriteContext) -> None:
        self.written.extend(batch.column(0).to_pylist())

    async def flush(self, epoch: int) -> None:
        self.acknowledged.extend(self.written)
        self.written.clear()


async def test_the_tail_of_a_burst_is_acknowledged_once_the_input_is_drained(tmp_path: Path) -> None:
    store = StreamStore(tmp_path)
    catalog = Catalog(tmp_path)
    engine = Engine(store)
    events = store.create("events", [Column("id", parse_type("int64"))], StreamSettings())
    record = SinkRecord(id="tail", name="tail", description="", sql="select id from events", type="kafka",
                        properties={})
    runner = Pipeline(record, engine, store, catalog, RuntimeSettings(checkpoint_interval=600.0, step_timeout=600.0))
    execution = engine.start(engine.plan(record.sql))
    dead = DeadLetters(store, record.name)
    dead.ensure()
    runner._running.set()
    sink = Acknowledging()
    # 1,000 rows are fewer than a flush takes (10,000): all are left written but unacknowledged.
    pump = asyncio.ensure_future(runner._pump(execution, sink, dead, EncodeAhead(Batcher(POLICY, SCHEMA), None, 1),
                                              SinkConfig().retry_policy(), POLICY.flush_rows))
    try:
        events.append_rows(["id"], [[i] for i in range(1000)])
        await eventually(lambda: runner.status.rows_delivered == 1000, what="all 1000 rows acknowledged")
        assert sink.acknowledged == list(range(1000))
    finally:
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)
        execution.close()
        catalog.close()
        store.close()
