"""Reading a stream's log: the leaves of every query's operator graph.

A :class:`Scan` of a streaming query starts where ``seek_to`` puts it ('latest' by default: new
rows only; of a versioned_kv or mutable stream, as Proton, its newest row per primary key first,
then new rows) and never ends; a bounded scan (``table(stream)``) reads the rows present when the
query started and then ends. :class:`OneRow` is the source of a SELECT without FROM: one row
with the column ``dummy`` (as ClickHouse's ``system.one``), then the end.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import duckdb
import pyarrow as pa

from sinkflow.engine.compile import connect
from sinkflow.engine.operators.base import Entries
from sinkflow.errors import SqlError
from sinkflow.sql.plan import ONE_ROW, SourceSpec, newest_per
from sinkflow.sql.table_functions import is_generated
from sinkflow.streams.store import Stream, StreamStore

#: Rows read from the log per step at most (whole ingest batches; the first is always taken),
#: unless the consumer asks for more (:attr:`~sinkflow.engine.operators.base.Operator.rows_per_step`).
MAX_ROWS_PER_STEP = 1_000_000


class Scan:
    """The read position of one source stream (see the module docstring); its state is the offset."""

    def __init__(self, spec: SourceSpec, store: StreamStore) -> None:
        self.spec = spec
        self.name = spec.stream
        self.stream: Stream = store.get(spec.stream)
        self.offset = 0
        self.end: int | None = None
        self.rows_read = 0
        self.ended_signalled = False
        settings = self.stream.settings
        keyed = settings.mode in ("versioned_kv", "changelog_kv", "mutable")
        self._primary_key: tuple[str, ...] = tuple(settings.primary_key) if keyed else ()
        # A streaming scan of a versioned_kv/mutable stream from 'latest': the log's end when it
        # started, up to which it reads the newest row per key first (None: no such first read).
        self._backfill: int | None = None

    def _newest_rows(self, end: int | None) -> Entries:
        """Every row up to ``end``, reduced to the newest row per primary key (as one entry)."""
        if end is None or self.offset >= end:
            return []
        entries: Entries = []
        offset = self.offset
        while offset < end:
            chunk = self.stream.read(offset, end - offset)
            if not chunk:
                break
            entries.extend(chunk)
            seq, batch = chunk[-1]
            offset = seq + batch.num_rows
        if not entries:
            return []
        rows = pa.Table.from_batches([b for _, b in entries])
        if offset > end:
            rows = rows.slice(0, rows.num_rows - (offset - end))
        con = connect()
        try:
            con.register("__dimsrc", rows)
            newest = con.sql(newest_per(self._primary_key)).to_arrow_table().cast(rows.schema)
        finally:
            con.close()
        # One entry spanning the whole range, so advance() moves to the end.
        return [(end - newest.num_rows, batch) for batch in newest.combine_chunks().to_batches()][:1] or []

    def start(self) -> None:
        """Place the read position as ``seek_to`` says (a fresh query, not a restored one)."""
        src = self.stream
        if self.spec.bounded:
            self.offset, self.end = src.start, src.head
            return
        seek = self.spec.seek_to
        if seek == "latest" and self._primary_key and self.stream.settings.mode != "changelog_kv":
            self.offset, self._backfill = src.start, src.head
        elif seek == "latest":
            self.offset = src.head
        elif seek == "earliest":
            self.offset = src.start
        elif seek.startswith("sn:"):
            self.offset = max(src.start, min(int(seek[3:]), src.head))
        elif seek.startswith("time:"):
            self.offset = src.seek_time(_evaluate_time(seek[5:]))
        elif seek.startswith("-"):
            ago = timedelta(microseconds=int(seek[1:].removesuffix("us")))
            self.offset = src.seek_time(datetime.now(timezone.utc) - ago)
        else:
            self.offset = src.seek_time(datetime.fromisoformat(seek))

    @property
    def ended(self) -> bool:
        return self.end is not None and self.offset >= self.end

    def lag(self) -> int:
        """Rows not yet read (for a bounded scan: up to its end)."""
        head = self.stream.head if self.end is None else self.end
        return max(0, head - self.offset)

    def read(self, max_rows: int = MAX_ROWS_PER_STEP) -> Entries:
        """The next whole ingest batches, about ``max_rows`` rows at most (a bounded scan's last one
        cut at its end); :meth:`advance` moves past them once they are processed. A bounded scan of
        a keyed stream (versioned_kv, changelog_kv, mutable) reads its newest row per primary key,
        in one batch."""
        if self.spec.bounded and self._primary_key:
            return self._newest_rows(self.end)
        if self._backfill is not None:
            if self.offset < self._backfill:
                return self._newest_rows(self._backfill)
            self._backfill = None
        limit = max_rows
        if self.end is not None:
            limit = min(limit, self.end - self.offset)
            if limit <= 0:
                return []
        entries = self.stream.read(self.offset, limit)
        if not entries:
            return []
        seq, batch = entries[-1]
        if self.end is not None and seq + batch.num_rows > self.end:
            entries[-1] = (seq, batch.slice(0, self.end - seq))
        return entries

    def advance(self, entries: Entries) -> None:
        """Move the read position past ``entries`` (what :meth:`read` returned)."""
        if entries:
            seq, batch = entries[-1]
            self.offset = seq + batch.num_rows
            self.rows_read += sum(b.num_rows for _, b in entries)

    async def wait(self, timeout: float) -> None:
        """Until the log holds rows past the offset, or ``timeout`` seconds."""
        await self.stream.wait_for(self.offset, timeout)

    def snapshot(self) -> dict[str, Any]:
        return {"offset": self.offset, "end": self.end, "rows_read": self.rows_read, "ended": self.ended_signalled,
                "backfill": self._backfill}

    def restore(self, meta: dict[str, Any]) -> None:
        self.offset, self.end = int(meta["offset"]), meta["end"]
        self.rows_read = int(meta["rows_read"])
        self._backfill = meta.get("backfill")
        self.ended_signalled = bool(meta["ended"])

    def describe(self) -> list[str]:
        seek = "" if self.spec.bounded or self.spec.seek_to == "latest" else f" seek_to {self.spec.seek_to}"
        return [f"Scan {'table(' + self.name + ')' if self.spec.bounded else self.name}{seek}"]


def _evaluate_time(sql: str) -> datetime:
    """The value of a constant time expression (DuckDB SQL, e.g. ``now() - INTERVAL 1 HOUR``), now."""
    con = connect()
    try:
        value = con.sql(f"SELECT ({sql})::TIMESTAMPTZ").fetchall()[0]
    except duckdb.Error as err:
        raise SqlError(f"the query's start time cannot be computed: {str(err).splitlines()[0]}") from None
    finally:
        con.close()
    if value is None or value[0] is None:
        raise SqlError("the query's start time is NULL")
    ts: datetime = value[0]
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=timezone.utc)


class OneRow(Scan):
    """The source of a SELECT without FROM: one row, ``dummy = 0``, then the end."""

    def __init__(self, spec: SourceSpec, store: StreamStore) -> None:  # noqa: ARG002 - same signature as Scan
        self.spec = spec
        self.name = ONE_ROW
        self.offset = 0
        self.end = 1
        self.rows_read = 0
        self.ended_signalled = False

    def start(self) -> None:
        self.offset, self.end = 0, 1

    def lag(self) -> int:
        return 1 - self.offset

    def read(self, max_rows: int = MAX_ROWS_PER_STEP) -> Entries:
        if self.offset >= 1:
            return []
        return [(0, pa.record_batch([pa.array([0], pa.uint8())], names=["dummy"]))]

    async def wait(self, timeout: float) -> None:
        await asyncio.sleep(0)

    def describe(self) -> list[str]:
        return ["OneRow"]


def open_scan(spec: SourceSpec, store: StreamStore) -> Scan:
    """The source of ``spec``: a :class:`OneRow` for a SELECT without FROM, the generated numbers
    of ``numbers()``/``system.numbers``, else a :class:`Scan`."""
    if spec.stream == ONE_ROW:
        return OneRow(spec, store)
    if is_generated(spec.stream):
        from sinkflow.engine.operators.numbers import Numbers  # it builds on Scan, defined here

        return Numbers(spec, store)
    return Scan(spec, store)
