"""Driving a sink through the Sink protocol the way the runtime does, for the sink tests."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from sinkflow.sinks.base import Sink, SinkEnv, WriteContext
from sinkflow.sinks.registry import parse_properties, sink_class

SINK_ID = "sink-1"


def make_sink(sink_type: str, properties: dict[str, Any], schema: pa.Schema) -> Sink:
    """A sink of ``sink_type`` configured from raw ``properties`` as the API would (defaults filled)."""
    config = parse_properties(sink_type, properties)
    return sink_class(sink_type)(config, SinkEnv(SINK_ID, "test_sink", schema))


async def deliver(sink: Sink, batches: Iterable[pa.RecordBatch], epoch: int = 1) -> None:
    """open → write every batch (row offsets continuing) → flush(epoch) → close, like one epoch of the runtime."""
    await sink.open()
    try:
        offset = 0
        for batch in batches:
            await sink.write(batch, WriteContext(SINK_ID, epoch, first_row=offset))
            offset += batch.num_rows
        await sink.flush(epoch)
    finally:
        await sink.close()
