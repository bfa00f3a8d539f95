"""The stream sink's access to sinkflow's streams (the runtime's side of ``StreamTarget``)."""

from __future__ import annotations

import pyarrow as pa

from sinkflow.catalog import CatalogStore
from sinkflow.sinks.base import PermanentError, WriteContext
from sinkflow.streams.store import StreamSettings, StreamStore
from sinkflow.streams.types import TP_TIME, Column, from_arrow, parse_type


class StoreStreamTarget:
    """Creates and appends to streams for the stream sink, idempotently per output position.

    The sink's progress (the next output position not yet appended) is recorded in the
    catalog right after each append, so a replay after a restart skips rows already there;
    only a crash between an append and that record can duplicate rows.
    """

    def __init__(self, store: StreamStore, catalog: CatalogStore, sink_id: str) -> None:
        self.store = store
        self.catalog = catalog
        self.sink_id = sink_id

    def ensure(self, name: str, schema: pa.Schema) -> None:
        """Create ``name`` from ``schema`` when absent; otherwise check every column fits."""
        if not self.store.exists(name):
            # By the type's name, as the stream is stored: a column must reload as it was made
            # (from_arrow's nullable flag is not part of the name).
            columns = [Column(f.name, parse_type(from_arrow(f.type, f.nullable).name)) for f in schema
                       if f.name != TP_TIME]
            self.store.create(name, columns, StreamSettings(description="written by a sink"))
            return
        existing = {f.name: f.type for f in self.store.get(name).schema}
        for f in schema:
            if f.name == TP_TIME:
                continue
            if f.name not in existing:
                raise PermanentError(f"stream '{name}' has no column '{f.name}' (the query's output has it)")
            if not _fits(f.type, existing[f.name]):
                raise PermanentError(
                    f"stream '{name}' column '{f.name}' is {existing[f.name]}, the query's output is {f.type}"
                )

    def append(self, name: str, batch: pa.RecordBatch, ctx: WriteContext) -> int:
        """Append the rows of ``batch`` not appended before; return how many were."""
        done = self.catalog.stream_progress(self.sink_id)
        keep = [i for i in range(batch.num_rows) if ctx.row_number(i) >= done]
        if not keep:
            return 0
        rows = batch if len(keep) == batch.num_rows else batch.take(pa.array(keep))
        self.store.get(name).append_batch(rows)
        self.catalog.set_stream_progress(self.sink_id, max(ctx.row_number(i) for i in keep) + 1)
        return len(keep)


def _fits(source: pa.DataType, target: pa.DataType) -> bool:
    """Whether values of ``source`` can be stored in a column of ``target`` without loss of meaning."""
    if source == target:
        return True
    numeric = (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal)
    if any(check(source) for check in numeric) and any(check(target) for check in numeric):
        return True
    if pa.types.is_timestamp(source) and pa.types.is_timestamp(target):
        return True
    return (pa.types.is_string(source) or pa.types.is_large_string(source)) and pa.types.is_string(target)
