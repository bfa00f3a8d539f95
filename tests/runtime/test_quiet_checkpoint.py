"""A sink whose query has gone quiet is checkpointed at once, not when a timer runs out."""

from __future__ import annotations

from pathlib import Path

from sinkflow.catalog import Catalog
from sinkflow.engine import Engine
from sinkflow.runtime.manager import SinkDefinition, SinkManager
from sinkflow.runtime.pipeline import RuntimeSettings
from sinkflow.streams.store import StreamSettings, StreamStore
from sinkflow.streams.types import Column, parse_type
from tests.runtime.support import eventually
from tests.servers.http import RecordingEndpoint

#: Timers far longer than the test waits: only going quiet can make the checkpoint.
SLOW_TIMERS = RuntimeSettings(checkpoint_interval=600.0, step_timeout=600.0)


async def test_the_last_rows_of_a_burst_are_checkpointed_without_waiting_for_a_timer(
        tmp_path: Path, receiver: RecordingEndpoint) -> None:
    store = StreamStore(tmp_path)
    catalog = Catalog(tmp_path)
    manager = SinkManager(Engine(store), store, catalog, SLOW_TIMERS)
    try:
        events = store.create("events", [Column("id", parse_type("int64"))], StreamSettings())
        record = await manager.create(SinkDefinition(name="burst", sql="select id from events", type="webhook",
                                                     properties={"url": receiver.url}))
        events.append_rows(["id"], [[i] for i in range(3)])

        def checkpointed() -> int:
            checkpoint = catalog.checkpoint(record.id)
            return checkpoint.counters.get("rows_delivered", 0) if checkpoint else 0

        await eventually(lambda: checkpointed() == 3, what="a checkpoint counting the 3 delivered rows")
        assert [b["id"] for b in receiver.bodies()] == [0, 1, 2]
    finally:
        await manager.stop()
        catalog.close()
        store.close()
