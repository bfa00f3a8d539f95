"""Dead-letter streams: rows a destination refused for good, kept where users can query them.

Each sink ``s`` has a stream ``s_dlq`` with the row as JSON, the error, the attempt count and
the time it failed. It is an ordinary stream: ``SELECT * FROM table(s_dlq)`` shows it.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from sinkflow.sinks.encode import json_documents
from sinkflow.streams.store import StreamSettings, StreamStore
from sinkflow.streams.types import Column, parse_type

_COLUMNS = [
    Column("row", parse_type("string")),
    Column("error", parse_type("string")),
    Column("attempts", parse_type("int32")),
    Column("failed_at", parse_type("datetime64(3, 'UTC')")),
]


#: The description every dead-letter stream is created with: it marks the stream as internal.
DESCRIPTION = "rows the sink could not deliver"


def dead_letter_stream(sink_name: str) -> str:
    """The name of the sink's dead-letter stream."""
    return f"{sink_name}_dlq"


def is_dead_letter_stream(name: str, description: str) -> bool:
    """True for a stream a sink made for its dead letters (also once that sink is deleted)."""
    return name.endswith("_dlq") and description == DESCRIPTION


class DeadLetters:
    """Appends failed rows to a sink's dead-letter stream, creating it on first use."""

    def __init__(self, store: StreamStore, sink_name: str) -> None:
        self.store = store
        self.name = dead_letter_stream(sink_name)

    def ensure(self) -> None:
        """Create the dead-letter stream when absent, so users can query it before any failure."""
        if not self.store.exists(self.name):
            self.store.create(self.name, _COLUMNS, StreamSettings(description=DESCRIPTION))

    def drop(self) -> bool:
        """Drop the dead-letter stream and its rows; False when there was none."""
        if not self.store.exists(self.name):
            return False
        self.store.drop(self.name)
        return True

    def write(self, rows: pa.RecordBatch, error: str, attempts: int) -> None:
        """Record every row of ``rows`` as failed with ``error`` after ``attempts`` attempts."""
        if rows.num_rows == 0:
            return
        self.ensure()
        now = dt.datetime.now(dt.timezone.utc)
        docs = [doc.decode() for doc in json_documents(rows)]
        n = len(docs)
        batch = pa.RecordBatch.from_pydict(
            {
                "row": pa.array(docs, pa.string()),
                "error": pa.array([error] * n, pa.string()),
                "attempts": pa.array([attempts] * n, pa.int32()),
                "failed_at": pa.array([now] * n, pa.timestamp("ms", tz="UTC")),
            }
        )
        self.store.get(self.name).append_batch(batch)
