"""Running a planned query incrementally over the source stream's log.

One :class:`QueryExecution` owns a DuckDB connection and the query's state. Each :meth:`step`
reads what the log holds past the source offset (whole ingest batches), processes it, fires
processing-time emits (``EMIT PERIODIC``, the idle timeout) and returns the result batches; the
state after a step is exactly what :meth:`snapshot` captures, and restoring it continues the
query where it stood.

Window semantics (DESIGN.md): the watermark is the largest event time seen, advanced after each
ingest batch; a window is emitted once when ``watermark - delay`` reaches its end; a row arriving
for an emitted window is dropped and counted. Several ingest batches may be processed in one step,
each row tagged with the frontier its own batch saw, so the output does not depend on how reads
were grouped into steps: rows come out ordered by window start, then group keys.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from sinkflow.engine import state as codec
from sinkflow.engine.compile import QueryPlan, closing_input, connect
from sinkflow.engine.dedup import DedupState
from sinkflow.engine.times import from_micros_ceil, micros
from sinkflow.errors import InvalidInput, SqlError
from sinkflow.sql.plan import LogicalPlan
from sinkflow.streams.store import Stream, StreamStore

#: Rows read from the log per step at most (whole ingest batches; the first is always taken).
MAX_ROWS_PER_STEP = 1_000_000
#: Work on more rows than this runs in a worker thread so the event loop stays responsive.
THREAD_ROWS = 20_000
_NO_FRONTIER = -(2**62)
_ARANGE_BLOCK = 1 << 16


class _Sequences:
    """``seq, seq+1, …`` arrays built from one cached block (no per-row Python)."""

    def __init__(self) -> None:
        self._block = pa.array(range(_ARANGE_BLOCK), pa.int64())

    def __call__(self, first: int, n: int) -> pa.Array:
        while len(self._block) < n:
            self._block = pa.concat_arrays([self._block, pc.add(self._block, len(self._block))])
        return pc.add(self._block.slice(0, n), first)


_sequences = _Sequences()


def _runs(run_ends: list[int], values: list[int]) -> pa.Array:
    """One int64 value per row: ``values[i]`` for the rows before ``run_ends[i]``."""
    encoded = pa.RunEndEncodedArray.from_arrays(pa.array(run_ends, pa.int32()), pa.array(values, pa.int64()))
    return pc.run_end_decode(encoded)


class QueryExecution:
    """A running query (see the module docstring). ``schema`` is the output schema every batch conforms to."""

    def __init__(self, plan: QueryPlan, store: StreamStore, snapshot: bytes | None = None,
                 idle_timeout: float | None = None) -> None:
        self.plan = plan
        self.logical: LogicalPlan = plan.logical
        self.schema: pa.Schema = plan.output_schema
        self.epoch = 0
        self.finished = False
        self._source: Stream = store.get(self.logical.source.stream)
        self._dims: list[Stream] = [store.get(lk.stream) for lk in self.logical.lookups]
        self._dim_heads: list[int] = [-1] * len(self._dims)
        self._con = connect()
        self._busy = threading.Lock()
        self._failure: Exception | None = None
        self._closed = False
        self._close_pending = False
        self._idle = self.logical.idle_timeout if self.logical.idle_timeout is not None else idle_timeout
        window = self.logical.window
        self._size = window.size_us if window else 0
        self._slide = window.slide_us if window else 0
        self._delay = self.logical.emit.delay_us
        # State (everything below is in the snapshot).
        self._offset = 0
        self._end: int | None = None
        self._watermark: int | None = None
        self._partials: pa.Table | None = None
        self._dedup: DedupState | None = None
        if self.logical.dedup is not None:
            types = {c.name: c.type.arrow for c in self.logical.input_columns}
            spec = self.logical.dedup
            self._dedup = DedupState(list(spec.keys), [types[k] for k in spec.keys], spec.ttl_us)
        self._held: list[pa.Table] = []
        self._dirty = False
        self._emitted = 0
        self._stats = {"rows_read": 0, "late_rows_dropped": 0, "windows_emitted": 0, "rows_emitted": 0,
                       "dedup_rows_dropped": 0}
        now = time.monotonic()
        self._last_input = now
        self._next_tick = now + self.logical.emit.period_us / 1e6
        if snapshot is not None:
            self._restore(snapshot)
        else:
            self._initial_offset()

    # -- positions ---------------------------------------------------------------------------
    def _initial_offset(self) -> None:
        src = self._source
        if self.logical.bounded:
            self._offset, self._end = src.start, src.head
            return
        seek = self.logical.source.seek_to
        if seek == "latest":
            self._offset = src.head
        elif seek == "earliest":
            self._offset = src.start
        elif seek.startswith("-"):
            ago = timedelta(microseconds=int(seek[1:].removesuffix("us")))
            self._offset = src.seek_time(datetime.now(timezone.utc) - ago)
        else:
            self._offset = src.seek_time(datetime.fromisoformat(seek))

    def lag(self) -> int:
        """Rows of the source not yet read (for a bounded query: up to its end)."""
        head = self._source.head if self._end is None else self._end
        return max(0, head - self._offset)

    def stats(self) -> dict[str, Any]:
        """Counters: rows_read, late_rows_dropped, windows_emitted, rows_emitted, dedup_rows_dropped, plus epoch, lag, watermark."""
        wm = self._watermark
        return {**self._stats, "epoch": self.epoch, "lag": self.lag(), "open_groups": self._open_groups(),
                "watermark": None if wm is None else datetime.fromtimestamp(wm / 1e6, timezone.utc).isoformat()}

    def _open_groups(self) -> int:
        return 0 if self._partials is None else self._partials.num_rows

    # -- stepping ----------------------------------------------------------------------------
    async def step(self, timeout: float) -> list[pa.RecordBatch]:
        """Process available input (waiting up to ``timeout`` seconds for some), then due
        processing-time emits. Returns output batches (possibly none); increments ``epoch``."""
        if self.finished:
            return []
        entries = self._read()
        if not entries and self._end is None and timeout > 0:
            wait = min(timeout, self._until_timer())
            if wait > 0:
                await self._source.wait_for(self._offset, wait)
            if self.finished:  # closed while waiting
                return []
            entries = self._read()
        rows = sum(b.num_rows for _, b in entries)
        if rows > THREAD_ROWS:
            return await asyncio.to_thread(self._advance, entries)
        return self._advance(entries)

    def run_to_end(self) -> pa.Table:
        """Run a bounded query to its end and return every result row."""
        if not self.logical.bounded:
            raise InvalidInput("only a bounded query (table(...)) runs to an end")
        out: list[pa.RecordBatch] = []
        while not self.finished:
            out.extend(self._advance(self._read()))
        return pa.Table.from_batches(out, schema=self.schema)

    def _read(self) -> list[tuple[int, pa.RecordBatch]]:
        limit = MAX_ROWS_PER_STEP
        if self._end is not None:
            limit = min(limit, self._end - self._offset)
            if limit <= 0:
                return []
        entries = self._source.read(self._offset, limit)
        if self._end is not None and entries:
            seq, batch = entries[-1]
            if seq + batch.num_rows > self._end:
                entries[-1] = (seq, batch.slice(0, self._end - seq))
        return entries

    def _until_timer(self) -> float:
        now = time.monotonic()
        waits = [float("inf")]
        if self.logical.emit.mode == "periodic" and self._dirty:
            waits.append(self._next_tick - now)
        if self._idle is not None and self._open_groups():
            waits.append(self._last_input + self._idle - now)
        return max(0.0, min(waits))

    def _advance(self, entries: list[tuple[int, pa.RecordBatch]]) -> list[pa.RecordBatch]:
        """Process ``entries`` and due timers; the whole state change of one step.

        A failure leaves the state half-changed, so it sticks: every later step raises it again
        (restart from a snapshot taken before it)."""
        with self._busy:
            if self._closed:
                return []
            if self._failure is not None:
                raise self._failure
            try:
                return self._advance_locked(entries)
            except duckdb.Error as err:
                self._failure = SqlError(f"the query failed on the data read from '{self._source.name}': "
                                         f"{str(err).splitlines()[0]}")
                raise self._failure from err
            except Exception as err:
                self._failure = err
                raise
            finally:
                if self._close_pending:
                    self._release()

    def _advance_locked(self, entries: list[tuple[int, pa.RecordBatch]]) -> list[pa.RecordBatch]:
        now = time.monotonic()
        out: list[pa.Table] = []
        if entries:
            self._last_input = now
            self._refresh_dims()
            raw = self._prepare(entries)
            seq, batch = entries[-1]
            self._offset = seq + batch.num_rows
            if raw is not None:
                out.extend(self._process(raw))
            elif self.logical.window is not None and self.logical.aggregate is not None:
                out.extend(self._close())  # every row was dropped, but the watermark moved
        out.extend(self._timers(now))
        if self.logical.order_by:
            # A bounded ORDER BY: hold every row until the end, then sort once.
            self._held.extend(out)
            out = []
        if self._end is not None and self._offset >= self._end:
            out.extend(self._finish())
            self.finished = True
        self.epoch += 1
        return self._limit(out)

    def _refresh_dims(self) -> None:
        for i, (dim, lk) in enumerate(zip(self._dims, self.logical.lookups)):
            head = dim.head
            if head != self._dim_heads[i]:
                self._con.register(lk.relation, dim.table())
                self._dim_heads[i] = head

    def _frontier(self) -> int:
        if self._watermark is None or self._end is not None:
            return _NO_FRONTIER  # a bounded query drops nothing as late: its windows close at the end
        return self._watermark - self._delay

    def _prepare(self, entries: list[tuple[int, pa.RecordBatch]]) -> pa.Table | None:
        """The ``__raw`` table of one step: dedup, count late rows, tag rows with their sequence
        numbers (and, for windows, their batch's frontier), advancing the watermark per batch."""
        window = self.logical.window if self.logical.aggregate is not None else None
        batches: list[pa.RecordBatch] = []
        run_ends: list[int] = []  # per kept batch: its end row and the frontier it saw
        frontiers: list[int] = []
        rows = 0
        # Sequence numbers: one array for the step when the batches are contiguous and kept whole,
        # else per batch (dedup drops rows; retention may leave gaps).
        contiguous = self.logical.dedup is None and all(
            entries[i][0] == entries[i - 1][0] + entries[i - 1][1].num_rows for i in range(1, len(entries)))
        seqs: list[pa.Array] = []
        for seq, batch in entries:
            self._stats["rows_read"] += batch.num_rows
            frontier = self._frontier()
            if window is not None:
                # Count the batch's late rows; the watermark follows the source (rows dedup or
                # WHERE drop move it too).
                self._window_batch(batch.column(window.time_column), frontier)
            if not contiguous:
                seq_array = _sequences(seq, batch.num_rows)
                keep = self._dedup_filter(batch) if self._dedup is not None else None
                if keep is not None:
                    batch, seq_array = batch.take(keep), seq_array.take(keep)
                seqs.append(seq_array)
            if batch.num_rows == 0:
                continue
            batches.append(batch)
            rows += batch.num_rows
            if window is not None:
                run_ends.append(rows)
                frontiers.append(frontier)
        if not batches:
            return None
        table = pa.Table.from_batches(batches)
        if self.plan.passthrough is not None:
            return table  # a column pick reads no sequence numbers
        seq_column = _sequences(entries[0][0], rows) if contiguous else pa.chunked_array(seqs, pa.int64())
        table = table.append_column("__seq", seq_column)
        if window is None:
            return table
        # The fold keeps only windows ending after the frontier their row's batch saw.
        return table.append_column("__e", _runs(run_ends, frontiers))

    def _window_batch(self, times: pa.Array, frontier: int) -> None:
        """Count the rows late for ``frontier`` (even their newest window ends at or before it),
        then advance the watermark to the batch's newest event time."""
        bounds = pc.min_max(times)
        if not bounds["max"].is_valid:  # no event time in this batch (a nullable time column)
            self._stats["late_rows_dropped"] += len(times)
            return
        unit = times.type.unit
        lo, hi = (micros(bounds[k].value, unit) for k in ("min", "max"))
        if frontier != _NO_FRONTIER:
            # floor(t / slide) * slide + size <= frontier  <=>  t < threshold
            threshold = ((frontier - self._size) // self._slide + 1) * self._slide
            if lo < threshold:
                on_time = pc.greater_equal(times, pa.scalar(from_micros_ceil(threshold, unit), times.type))
                self._stats["late_rows_dropped"] += len(times) - (pc.sum(on_time).as_py() or 0)
        self._watermark = hi if self._watermark is None else max(self._watermark, hi)

    def _dedup_filter(self, batch: pa.RecordBatch) -> pa.Array | None:
        """Indices of the rows to keep (None: all), as :class:`DedupState` decides; counts the rest."""
        assert self._dedup is not None and self.logical.dedup is not None
        keep = self._dedup.filter(batch, self.logical.dedup.time_column)
        if keep is not None:
            self._stats["dedup_rows_dropped"] += batch.num_rows - len(keep)
        return keep

    def _run(self, sql: str, **tables: pa.Table) -> pa.Table:
        for name, table in tables.items():
            self._con.register(name, table)
        try:
            return self._con.sql(sql).to_arrow_table()
        finally:
            for name in tables:
                self._con.unregister(name)

    def _conform(self, table: pa.Table) -> pa.Table:
        return table.rename_columns(self.schema.names).cast(self.schema)

    def _process(self, raw: pa.Table) -> list[pa.Table]:
        plan = self.plan
        if plan.passthrough is not None:
            # Zero-copy: the output batches are views of the log's batches.
            return [pa.Table.from_arrays([raw.column(name) for name in plan.passthrough], schema=self.schema)]
        if plan.stateless_sql is not None:
            return [self._conform(self._run(plan.stateless_sql, __raw=raw))]
        assert plan.fold_sql is not None and plan.merge_sql is not None
        fold = self._run(plan.fold_sql, __raw=raw)
        self._partials = fold if self._partials is None else self._merge(self._partials, fold.cast(self._partials.schema))
        self._dirty = True
        if self.logical.window is not None:
            return self._close()
        return []

    def _merge(self, state: pa.Table, fold: pa.Table) -> pa.Table:
        """Open groups with the newly folded ones; only windows present in both need DuckDB."""
        assert self.plan.merge_sql is not None
        if state.num_rows == 0:
            return fold
        if self.logical.window is None:
            return self._run(self.plan.merge_sql, __state=state, __fold=fold)
        shared = pc.is_in(fold.column("__ws"), value_set=pc.unique(state.column("__ws")))
        overlap = fold.filter(shared)
        fresh = fold.filter(pc.invert(shared))
        if overlap.num_rows:
            state = self._run(self.plan.merge_sql, __state=state, __fold=overlap).cast(state.schema)
        return pa.concat_tables([state, fresh])

    def _close(self, everything: bool = False) -> list[pa.Table]:
        """Emit the windows whose end the frontier reached (all of them if ``everything``)."""
        if self._partials is None or self._partials.num_rows == 0:
            return []
        ends = pc.add(self._partials.column("__ws"), self._size)
        frontier = 2**62 if everything else self._frontier()
        closing_mask = pc.less_equal(ends, frontier)
        if not pc.any(closing_mask).as_py():
            return []
        closing = self._partials.filter(closing_mask)
        self._partials = self._partials.filter(pc.invert(closing_mask))
        self._stats["windows_emitted"] += len(pc.unique(closing.column("__ws")))
        return [self._final(closing)]

    def _final(self, partials: pa.Table) -> pa.Table:
        assert self.plan.final_sql is not None
        return self._conform(self._run(self.plan.final_sql, __closing=closing_input(self.logical, partials)))

    def _timers(self, now: float) -> list[pa.Table]:
        mode = self.logical.emit.mode
        if mode == "periodic" and now >= self._next_tick:
            self._next_tick = now + self.logical.emit.period_us / 1e6
            if self._dirty and self._partials is not None:
                self._dirty = False
                return [self._final(self._partials)]
        if (mode == "watermark" and self._idle is not None and self._open_groups()
                and now - self._last_input >= self._idle):
            # The stream went quiet: close the open windows by processing time, as if the
            # watermark had passed them (later rows for them count as late).
            assert self._partials is not None  # there are open groups
            top = int(pc.max(self._partials.column("__ws")).as_py()) + self._size + self._delay
            self._watermark = top if self._watermark is None else max(self._watermark, top)
            return self._close(everything=True)
        return []

    def _finish(self) -> list[pa.Table]:
        """End of a bounded query: emit every window or group (a bounded query emits 'final'), sorted if asked."""
        out: list[pa.Table] = []
        if self.logical.emit.mode == "final":
            if self._partials is None:
                assert self.plan.fold_sql is not None
                # No input at all: an aggregate without GROUP BY still answers one row (count() = 0).
                self._partials = self._run(self.plan.fold_sql, __raw=self.plan.raw_schema.empty_table())
            out = [self._final(self._partials)] if self._partials.num_rows else []
        if self.logical.order_by:
            held = pa.concat_tables([*self._held, *out]) if self._held or out else self.schema.empty_table()
            self._held = []
            order = ", ".join(self.logical.order_by)
            out = [self._conform(self._run(f"SELECT * FROM __held ORDER BY {order}", __held=held))]
        return out

    def _limit(self, tables: list[pa.Table]) -> list[pa.RecordBatch]:
        limit = self.logical.limit
        out: list[pa.RecordBatch] = []
        for table in tables:
            if limit is not None:
                table = table.slice(0, max(0, limit - self._emitted))
            if table.num_rows == 0:
                continue
            self._emitted += table.num_rows
            self._stats["rows_emitted"] += table.num_rows
            # Chunks as they are (no copy): the runtime's Batcher cuts and joins them per write.
            out.extend(batch for batch in table.to_batches() if batch.num_rows)
        if limit is not None and self._emitted >= limit:
            self.finished = True
        return out

    # -- snapshots ---------------------------------------------------------------------------
    def snapshot(self) -> bytes:
        """The whole state after the last step: offsets, watermark, open windows/groups, dedup keys, counters."""
        with self._busy:  # never half a step, even if one runs in a worker thread
            return self._snapshot()

    def _snapshot(self) -> bytes:
        meta = {
            "sql": self.logical.sql,
            "offset": self._offset,
            "end": self._end,
            "watermark": self._watermark,
            "dirty": self._dirty,
            "emitted": self._emitted,
            "epoch": self.epoch,
            "finished": self.finished,
            "stats": self._stats,
        }
        tables: dict[str, pa.Table] = {}
        if self._partials is not None:
            tables["partials"] = self._partials
        if self._dedup is not None and len(self._dedup):
            tables["dedup"] = self._dedup.to_table()
        if self._held:
            tables["held"] = pa.concat_tables(self._held)
        return codec.encode(meta, tables)

    def _restore(self, data: bytes) -> None:
        meta, tables = codec.decode(data)
        if meta.get("sql") != self.logical.sql:
            raise InvalidInput("the snapshot belongs to a different query")
        self._offset = int(meta["offset"])
        self._end = meta["end"]
        self._watermark = meta["watermark"]
        self._dirty = bool(meta["dirty"])
        self._emitted = int(meta["emitted"])
        self.epoch = int(meta["epoch"])
        self.finished = bool(meta["finished"])
        self._stats.update(meta["stats"])
        self._partials = tables.get("partials")
        self._held = [tables["held"]] if "held" in tables else []
        if "dedup" in tables and self._dedup is not None:
            self._dedup.restore(tables["dedup"])

    def close(self) -> None:
        """Free the DuckDB connection and the state; the execution is finished.

        Safe while a step runs in a worker thread: the step then frees them when it ends."""
        self.finished = True
        if self._busy.acquire(blocking=False):
            try:
                self._release()
            finally:
                self._busy.release()
        else:
            self._close_pending = True

    def _release(self) -> None:
        if not self._closed:
            self._closed = True
            self._partials = None
            self._dedup = None
            self._con.close()
