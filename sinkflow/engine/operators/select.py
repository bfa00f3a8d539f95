"""One SELECT over one input, fused: dedup → lookup joins → filter → projection / window
assignment → aggregation with its emit policy → ORDER BY → LIMIT.

The stateless part of the chain compiles into one DuckDB statement per step (see
:mod:`sinkflow.engine.compile`); the state is the dedup keys, the open windows' or groups'
partial aggregates, the watermark and the rows held for a bounded ORDER BY.

Window semantics (DESIGN.md): the watermark is the largest event time seen, advanced after each
input batch; a window is emitted once when ``watermark - delay`` reaches its end; a row arriving
for an emitted window is dropped and counted. Several batches may be processed in one step, each
row tagged with the frontier its own batch saw, so the output does not depend on how reads were
grouped into steps: rows come out ordered by window start, then group keys.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from sinkflow.engine.compile import QueryPlan, carry_sql, closing_input, connect
from sinkflow.engine.dedup import DedupState
from sinkflow.engine.operators.base import Entries, Operator, sequence_numbers
from sinkflow.engine.sessions import SessionAssigner
from sinkflow.engine.times import from_micros_ceil, micros
from sinkflow.streams.store import Stream, StreamStore

_NO_FRONTIER = -(2**62)
#: A step's rows are folded in groups of this many when it has at least two: a group's fold
#: (DuckDB, on its threads) runs while the group before is merged, closed and emitted.
PIPELINE_ROWS = 1_000_000
#: Rows per step of a query that folds in groups, while it is behind the log (catching up): the
#: groups of one step overlap, and only two groups at a time get their own columns (the batches
#: themselves are the log's).
CATCH_UP_ROWS = 4_000_000
# The folds run here; DuckDB releases the GIL, so a fold overlaps the Python and Arrow work of the
# group before it (on 2 cores the serial tail of each step otherwise leaves one core idle).
_folds = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sinkflow-fold")


def _runs(run_ends: list[int], values: list[int]) -> pa.Array:
    """One int64 value per row: ``values[i]`` for the rows before ``run_ends[i]``."""
    encoded = pa.RunEndEncodedArray.from_arrays(pa.array(run_ends, pa.int32()), pa.array(values, pa.int64()))
    return pc.run_end_decode(encoded)


def _groups(entries: Entries, rows: int) -> list[Entries]:
    """``entries`` cut into consecutive groups of at least ``rows`` rows (the last may hold fewer)."""
    groups: list[Entries] = [[]]
    count = 0
    for entry in entries:
        if count >= rows:
            groups.append([])
            count = 0
        groups[-1].append(entry)
        count += entry[1].num_rows
    return groups


def _run_bounded(plan: Any, store: StreamStore) -> pa.Table:
    """The rows of a bounded plan (a subquery in an expression), run to its end now."""
    from sinkflow.engine.execution import QueryExecution  # the driver builds this module's operators

    execution = QueryExecution(plan, store)
    try:
        return execution.run_to_end()
    finally:
        execution.close()


class SelectOperator(Operator):
    """A fused SELECT (see the module docstring); ``schema`` is its output schema.

    ``clock`` (seconds, monotonic) is the processing time its timers read: ``EMIT PERIODIC``,
    ``ON UPDATE WITH BATCH``, ``EMIT TIMEOUT`` and the idle timeout."""

    def __init__(self, plan: QueryPlan, store: StreamStore, idle_timeout: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.plan = plan
        self._clock = clock
        self.logical = plan.logical
        self.schema = plan.output_schema
        self._full = plan.full_schema or plan.output_schema  # with ORDER BY's hidden columns
        self.finished = False
        self._dims: list[Stream] = [store.get(lk.stream) for lk in self.logical.lookups]
        self._dim_heads: list[int] = [-1] * len(self._dims)
        self._con = connect()
        for name, subquery in self.logical.subqueries:
            self._con.register(name, _run_bounded(subquery, store))
        emit = self.logical.emit
        self._emit = emit
        if emit.timeout_us is not None:
            self._idle: float | None = emit.timeout_us / 1e6
        else:
            self._idle = self.logical.idle_timeout if self.logical.idle_timeout is not None else idle_timeout
        self._keys = (["__ws"] if self.logical.window is not None else []) + [
            f"__k{j}" for j in range(len(self.logical.aggregate.keys) if self.logical.aggregate else 0)]
        window = self.logical.window
        self._size = window.size_us if window else 0
        self._slide = window.slide_us if window else 0
        self._delay = self.logical.emit.delay_us
        self._bounded = plan.bounded
        self._session = window is not None and window.kind == "session"
        self._session_schema = plan.session_schema
        # A session window with start/end conditions: sessions are chosen row by row.
        self._assigner = SessionAssigner(window, plan.session_tick_us) if plan.session_rows_sql and window else None
        # State (everything below is in the snapshot).
        self._watermark: int | None = None
        self._partials: pa.Table | None = None
        self._dedup: DedupState | None = None
        if self.logical.dedup is not None:
            types = {c.name: c.type.arrow for c in self.logical.input_columns}
            spec = self.logical.dedup
            self._dedup = DedupState(list(spec.keys), [types[k] for k in spec.keys], spec.ttl_us, spec.max_keys)
        self._held: list[pa.Table] = []
        self._input: list[pa.Table] = []  # a whole_input query's rows, processed when it ends
        self._dirty = False
        self._emitted = 0
        lg = self.logical
        self._per_window = bool(lg.order_by or lg.limit_by or any("__emit_version" in sql for _, sql in lg.projection))
        self._fold_con: duckdb.DuckDBPyConnection | None = None  # the folds of _push_pipelined
        if self._pipelines():
            self._fold_con = connect()
            self.rows_per_step = CATCH_UP_ROWS
        self._version = 0  # emit_version() of the next emit
        self._skipped = 0  # rows dropped by OFFSET so far
        self._by_counts: dict[str, int] = {}  # LIMIT n BY of a query without aggregation
        self._last: pa.Table | None = None  # a changelog's last emitted row per group, with its keys
        self._carry: pa.Table | None = None  # the input rows lag() looks back at
        self._stats = {"late_rows_dropped": 0, "windows_emitted": 0, "rows_emitted": 0, "dedup_rows_dropped": 0,
                       "groups_expired": 0}
        now = clock()
        self._last_input = now
        self._next_tick = now + self.logical.emit.period_us / 1e6

    # -- the operator interface ----------------------------------------------------------------
    def push(self, port: int, entries: Entries) -> list[pa.Table]:
        if self._emit.per_event:
            # Every row is a step of its own: each one emits the groups it changed.
            return [t for seq, batch in entries for i in range(batch.num_rows)
                    for t in self._push([(seq + i, batch.slice(i, 1))])]
        return self._push(entries)

    def _push(self, entries: Entries) -> list[pa.Table]:
        out: list[pa.Table] = []
        if entries:
            self._last_input = self._clock()
            self._refresh_dims()
            if self._fold_con is not None and sum(b.num_rows for _, b in entries) >= 2 * PIPELINE_ROWS:
                return self._output(self._push_pipelined(entries))
            raw = self._prepare(entries)
            if raw is not None and self.logical.whole_input:
                self._input.append(raw)  # window functions, RIGHT/FULL joins: all rows at once, at the end
            elif raw is not None:
                out.extend(self._process(raw))
            elif self.logical.window is not None and self.logical.aggregate is not None:
                out.extend(self._close())  # every row was dropped, but the watermark moved
        return self._output(out)

    def _push_pipelined(self, entries: Entries) -> list[pa.Table]:
        """:meth:`_push` of a large step for the queries of :meth:`_pipelines`, in groups of
        about :data:`PIPELINE_ROWS` rows: each group's windows close at the frontier the next
        group's first batch sees, as if the groups had been steps of their own (which emits the
        same rows in the same order as one step). While one group folds on the fold connection,
        the next is prepared and the one before is merged, closed and emitted."""
        assert self.plan.fold_sql is not None and self._fold_con is not None
        fold_sql, con = self.plan.fold_sql, self._fold_con
        out: list[pa.Table] = []
        pending: Future[pa.Table] | None = None  # the previous group's fold
        try:
            for group in _groups(entries, PIPELINE_ROWS):
                frontier = self._frontier()  # what the group's first batch sees
                raw = self._prepare(group)
                folded = pending.result() if pending is not None else None
                pending = None if raw is None else _folds.submit(self._run, fold_sql, con, __raw=raw)
                if folded is not None:
                    out.extend(self._absorb(folded, frontier))
            if pending is not None:
                folded, pending = pending.result(), None
                out.extend(self._absorb(folded))
            else:
                out.extend(self._close())  # the last group's rows were all dropped, but the watermark moved
        finally:
            if pending is not None:  # after a failure: the fold connection is idle before anything else runs
                wait([pending])
        return out

    def end(self, port: int) -> list[pa.Table]:
        first: list[pa.Table] = []
        if self.logical.whole_input:
            self._refresh_dims()
            raw = pa.concat_tables(self._input) if self._input else self.plan.raw_schema.empty_table()
            self._input = []
            first = self._output(self._process(raw))  # held for ORDER BY, which _finish sorts
        out = self._finish()
        self.finished = True
        return first + self._output(out)

    def due(self, now: float) -> float:
        waits = [float("inf")]
        if self._ticks() and (self._dirty or self._emit.repeat):
            waits.append(self._next_tick - now)
        if self._idle is not None and self._open_groups():
            waits.append(self._last_input + self._idle - now)
        return max(0.0, min(waits))

    def fire(self, now: float) -> list[pa.Table]:
        return self._output(self._timers(now))

    def stats(self) -> dict[str, int]:
        return {**self._stats, "open_groups": self._open_groups()}

    @property
    def watermark(self) -> int | None:
        return self._watermark

    def _open_groups(self) -> int:
        return 0 if self._partials is None else self._partials.num_rows

    # -- processing ----------------------------------------------------------------------------
    def _output(self, out: list[pa.Table]) -> list[pa.Table]:
        """Rows to emit, after holding them for a bounded ORDER BY (a streaming aggregation's
        sorts each emit), LIMIT n BY, OFFSET and LIMIT."""
        lg = self.logical
        if lg.order_by and self._bounded and not self.finished:
            # A bounded ORDER BY: hold every row until the end, then sort once.
            self._held.extend(out)
            return []
        if lg.order_by and not self._bounded:
            out = [self._sort(table) for table in out]
        if lg.limit_by is not None:
            out = [self._limit_by(table) for table in out]
        if lg.hidden:
            out = [table.select(list(range(len(self.schema)))) for table in out]
        return self._limit(out)

    def _sort(self, table: pa.Table) -> pa.Table:
        return self._conform(self._run(f"SELECT * FROM __held ORDER BY {', '.join(self.logical.order_by)}", __held=table))

    def _limit_by(self, table: pa.Table) -> pa.Table:
        """At most n rows per value of the LIMIT BY columns: per emit of an aggregation, over the
        whole output of a query without one (its counts per value are state)."""
        assert self.logical.limit_by is not None
        n, columns = self.logical.limit_by
        counts = self._by_counts if self.logical.aggregate is None else {}
        keep: list[int] = []
        for i, values in enumerate(zip(*(table.column(c).to_pylist() for c in columns))):
            key = repr(values)  # the snapshot keeps the counts as JSON
            seen = counts.get(key, 0)
            if seen < n:
                counts[key] = seen + 1
                keep.append(i)
        return table if len(keep) == table.num_rows else table.take(pa.array(keep, pa.int64()))

    def _refresh_dims(self) -> None:
        for i, (dim, lk) in enumerate(zip(self._dims, self.logical.lookups)):
            head = dim.head
            if head != self._dim_heads[i]:
                rows = dim.table()
                self._con.register(lk.relation, self._run(lk.view, __dimsrc=rows) if lk.view else rows)
                self._dim_heads[i] = head

    def _frontier(self) -> int:
        if self._watermark is None or self._bounded:
            return _NO_FRONTIER  # a bounded query drops nothing as late: its windows close at the end
        return self._watermark - self._delay

    def _prepare(self, entries: Entries) -> pa.Table | None:
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
            frontier = self._frontier()
            if window is not None:
                # Count the batch's late rows; the watermark follows the input (rows dedup or
                # WHERE drop move it too).
                self._window_batch(batch.column(window.time_column), frontier)
            if not contiguous:
                seq_array = sequence_numbers(seq, batch.num_rows)
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
        seq_column = sequence_numbers(entries[0][0], rows) if contiguous else pa.chunked_array(seqs, pa.int64())
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
        if frontier != _NO_FRONTIER and not (self.logical.window is not None and self.logical.window.per_key):
            # floor(t / slide) * slide + size <= frontier  <=>  t < threshold (a session: t + timeout <= frontier)
            threshold = (frontier - self._size + 1 if self._session
                         else ((frontier - self._size) // self._slide + 1) * self._slide)
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

    def _pipelines(self) -> bool:
        """Whether a step's rows may be folded and closed group by group (:meth:`_push_pipelined`):
        a tumble or hop aggregation emitting each window once when it closes, whose output is then
        the same however the step's rows are grouped, reading no relation registered on the
        operator's own connection (lookup tables, subquery results)."""
        plan, lg = self.plan, self.logical
        window, emit = lg.window, lg.emit
        return (window is not None and lg.aggregate is not None and window.kind != "session" and not window.per_key
                and emit.mode == "watermark" and not emit.tracks_updates and not emit.changelog and not emit.per_event
                and not self._per_window and plan.output_carry_sql is None and lg.state_ttl_us is None
                and not lg.whole_input and plan.fold_sql is not None and not plan.bounded
                and not lg.lookups and not lg.subqueries)

    def _run(self, sql: str, con: duckdb.DuckDBPyConnection | None = None, **tables: pa.Table) -> pa.Table:
        """``sql``'s rows, run on ``con`` (default: the operator's connection) with ``tables`` registered."""
        con = self._con if con is None else con
        for name, table in tables.items():
            con.register(name, table)
        try:
            return con.sql(sql).to_arrow_table()
        finally:
            for name in tables:
                con.unregister(name)

    def _conform(self, table: pa.Table) -> pa.Table:
        return table.rename_columns(self._full.names).cast(self._full)

    def _process(self, raw: pa.Table) -> list[pa.Table]:
        plan = self.plan
        if plan.passthrough is not None:
            # Zero-copy: the output batches are views of the log's batches.
            return [pa.Table.from_arrays([raw.column(name) for name in plan.passthrough], schema=self.schema)]
        if plan.stateless_sql is not None:
            if not self.logical.lags:
                return [self._conform(self._run(plan.stateless_sql, __raw=raw))]
            carry = self._carry if self._carry is not None else raw.slice(0, 0)
            out = self._run(plan.stateless_sql, __raw=raw, __carry=carry)
            self._carry = self._run(carry_sql(self.logical), __raw=raw, __carry=carry).cast(raw.schema)
            return [self._conform(out)]
        assert plan.fold_sql is not None and plan.merge_sql is not None
        if self._assigner is not None:
            assert plan.session_rows_sql is not None
            keys = [f"__k{j}" for j in range(len(self.logical.aggregate.keys))] if self.logical.aggregate else []
            assigned = self._assigner.assign(self._run(plan.session_rows_sql, __raw=raw), keys)
            fold = self._run(plan.fold_sql, __raw=raw, __assign=assigned)
        elif self._session:
            fold = self._run(plan.fold_sql, __raw=raw, __sessions=self._open_sessions())
        else:
            fold = self._run(plan.fold_sql, __raw=raw)
        return self._absorb(fold)

    def _absorb(self, fold: pa.Table, frontier: int | None = None) -> list[pa.Table]:
        """Merge newly folded groups into the open ones, then emit what the emit policy says
        (windows: those the frontier, by default the current one, reached)."""
        self._partials = fold if self._partials is None else self._merge(self._partials, fold.cast(self._partials.schema))
        self._dirty = True
        if self.logical.state_ttl_us is not None:
            self._expire_groups()
        out: list[pa.Table] = []
        if self._emit.tracks_updates and self._emit.period_us == 0:
            out.extend(self._updates())
        if self.logical.window is not None:
            out.extend(self._close(frontier=frontier))
        return out

    def _open_sessions(self) -> pa.Table:
        """The open sessions a session fold continues: their keys, ids and newest times."""
        if self._partials is None:
            return self._session_schema.empty_table()
        return self._partials.select(self._session_schema.names).cast(self._session_schema)

    def _ends(self, partials: pa.Table) -> pa.Array:
        """When each open window or session ends (µs): a session its timeout after its last row,
        or its max length after its first, whichever comes first."""
        if not self._session:
            return pc.add(partials.column("__ws"), self._size)
        if self._assigner is not None:
            ends = self._assigner.ends()
            return pa.array([ends.get(i, 0) for i in partials.column("__ws").to_pylist()], pa.int64())
        ends = pc.add(partials.column("__slast"), self._size)
        window = self.logical.window
        if window is not None and window.max_us:
            ends = pc.min_element_wise(ends, pc.add(partials.column("__sstart"), window.max_us))
        return ends

    def _key_frontiers(self, frontier: int) -> pa.Array:
        """Per open session: the frontier its key's own watermark (the newest time of the key's
        sessions) gives, never past the query's (a session window with PARTITION BY)."""
        assert self._partials is not None
        keys = ", ".join(k for k in self._keys if k != "__ws") or "true"
        table = self._partials.append_column("__i", pa.array(range(self._partials.num_rows), pa.int64()))
        newest = self._run(f"SELECT least(max(__slast) OVER (PARTITION BY {keys}) - {self._delay}, {frontier}) AS __f "
                           "FROM __p ORDER BY __i", __p=table)
        return newest.column("__f").combine_chunks()

    def _expire_groups(self) -> None:
        """Drop the groups of a global aggregation whose newest row is older than the state ttl
        before the newest row seen (``aggregate_state_ttl_sec``)."""
        assert self._partials is not None and self.logical.state_ttl_us is not None
        newest = pc.max(self._partials.column("__lt")).as_py()
        if newest is None:
            return
        keep = pc.greater_equal(self._partials.column("__lt"), newest - self.logical.state_ttl_us)
        kept = self._partials.filter(keep)
        self._stats["groups_expired"] += self._partials.num_rows - kept.num_rows
        self._partials = kept

    def _ticks(self) -> bool:
        """Whether the emit policy has a processing-time period."""
        emit = self._emit
        return emit.mode == "periodic" or emit.early == "periodic" or (emit.tracks_updates and emit.period_us > 0)

    def _updates(self) -> list[pa.Table]:
        """The groups changed since the last emit (a changelog retracting their previous rows first)."""
        partials = self._partials
        if partials is None or partials.num_rows == 0:
            return []
        changed_mask = partials.column("__u")
        if not pc.any(changed_mask).as_py():
            return []
        changed = partials.filter(changed_mask)
        index = partials.schema.get_field_index("__u")
        self._partials = partials.set_column(index, "__u", pa.repeat(pa.scalar(False), partials.num_rows))
        self._dirty = False
        return [self._final(changed)]
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

    def _close(self, everything: bool = False, frontier: int | None = None) -> list[pa.Table]:
        """Emit the windows whose end the frontier (by default the current one) reached (all of
        them if ``everything``)."""
        if self._partials is None or self._partials.num_rows == 0:
            return []
        if frontier is None:
            frontier = 2**62 if everything else self._frontier()
        window = self.logical.window
        per_key = window is not None and window.per_key and not everything
        if self._assigner is not None:
            done = self._assigner.close(frontier, self._delay if per_key else None)
            closing_mask = pc.is_in(self._partials.column("__ws"), value_set=pa.array(list(done), pa.int64()))
        elif per_key:
            closing_mask = pc.less_equal(self._ends(self._partials), self._key_frontiers(frontier))
        else:
            closing_mask = pc.less_equal(self._ends(self._partials), frontier)
        if not pc.any(closing_mask).as_py():
            return []
        closing = self._partials.filter(closing_mask)
        if self._assigner is not None:
            ended = pa.array([done[i] for i in closing.column("__ws").to_pylist()], pa.int64())
            closing = closing.append_column("__send", ended)
        elif self._session and window is not None and not everything:
            # As Proton: a session whose frontier reached its max length ends there, else at the
            # timeout after its last row.
            reached = frontier if not per_key else self._key_frontiers(frontier).filter(closing_mask)
            longest = pc.add(closing.column("__sstart"), window.max_us)
            timeout = pc.add(closing.column("__slast"), window.size_us)
            closing = closing.append_column("__send", pc.if_else(pc.greater_equal(reached, longest), longest,
                                                                 pc.min_element_wise(timeout, longest)))
        self._partials = self._partials.filter(pc.invert(closing_mask))
        windows = pc.unique(closing.column("__ws"))
        self._stats["windows_emitted"] += len(windows)
        if self._emit.early == "update":
            # Its changes were emitted as they came: the close only frees the window.
            if self._last is not None:
                self._last = self._last.filter(pc.invert(pc.is_in(self._last.column("__ws"), value_set=windows)))
            return []
        if len(windows) > 1 and self._per_window:
            # Each window is an emit of its own: its emit_version(), its ORDER BY and LIMIT BY.
            return [self._final(closing.filter(pc.equal(closing.column("__ws"), ws))) for ws in windows.sort()]
        return [self._final(closing)]

    def _final(self, partials: pa.Table) -> pa.Table:
        """The output rows of ``partials`` (one emit: they share its emit_version())."""
        assert self.plan.final_sql is not None
        closing = closing_input(self.logical, partials, self._version)
        if self.plan.output_carry_sql is not None:
            assert self.plan.output_carry_schema is not None
            carry = self._carry if self._carry is not None else self.plan.output_carry_schema.empty_table()
            rows = self._run(self.plan.final_sql, __closing=closing, __ocarry=carry)
            self._carry = self._run(self.plan.output_carry_sql, __closing=closing, __ocarry=carry)
        else:
            rows = self._run(self.plan.final_sql, __closing=closing)
        self._version += 1
        if self._emit.changelog:
            return self._conform(self._retract(rows))
        return self._conform(rows)

    def _retract(self, rows: pa.Table) -> pa.Table:
        """``rows`` (output columns, then their group's keys) preceded by the retraction (``_tp_delta``
        −1) of each group's previously emitted row; remembers ``rows`` as the groups' last ones."""
        width = len(self._full)
        if self._last is None or self._last.num_rows == 0 or rows.num_rows == 0:
            old = rows.slice(0, 0)
        else:
            match = " AND ".join(f"l.{k} IS NOT DISTINCT FROM n.{k}" for k in self._keys) or "true"
            old = self._run(f"SELECT l.* FROM __last l SEMI JOIN __new n ON {match}", __last=self._last, __new=rows)
            kept = self._run(f"SELECT l.* FROM __last l ANTI JOIN __new n ON {match}", __last=self._last, __new=rows)
            self._last = kept.cast(rows.schema)
        self._last = rows if self._last is None or self._last.num_rows == 0 else pa.concat_tables([self._last, rows])
        delta = self.logical.projection_index("__tp_delta")
        old = old.set_column(delta, old.schema.field(delta), pa.repeat(pa.scalar(-1, old.schema.field(delta).type),
                                                                       old.num_rows))
        both = pa.concat_tables([old.cast(rows.schema), rows])
        return both.select(list(range(width)))

    def _timers(self, now: float) -> list[pa.Table]:
        emit = self._emit
        mode = emit.mode
        if self._ticks() and now >= self._next_tick:
            self._next_tick = now + emit.period_us / 1e6
            if emit.tracks_updates:
                return self._updates()
            if (self._dirty or emit.repeat) and self._partials is not None and self._partials.num_rows:
                self._dirty = False
                return [self._final(self._partials)]
        if (mode == "watermark" and self._idle is not None and self._open_groups()
                and now - self._last_input >= self._idle):
            # The input went quiet: close the open windows by processing time, as if the
            # watermark had passed them (later rows for them count as late).
            assert self._partials is not None  # there are open groups
            top = int(pc.max(self._ends(self._partials)).as_py()) + self._delay
            self._watermark = top if self._watermark is None else max(self._watermark, top)
            return self._close(everything=True)
        return []

    def _finish(self) -> list[pa.Table]:
        """End of a bounded input: emit every window or group (a bounded query emits 'final'), sorted if asked."""
        out: list[pa.Table] = []
        if self.logical.emit.mode == "final":
            if self._partials is None:
                assert self.plan.fold_sql is not None
                # No input at all: an aggregate without GROUP BY still answers one row (count() = 0).
                self._partials = self._run(self.plan.fold_sql, __raw=self.plan.raw_schema.empty_table())
            out = [self._final(self._partials)] if self._partials.num_rows else []
        if self.logical.order_by:
            held = pa.concat_tables([*self._held, *out]) if self._held or out else self._full.empty_table()
            self._held = []
            order = ", ".join(self.logical.order_by)
            out = [self._conform(self._run(f"SELECT * FROM __held ORDER BY {order}", __held=held))]
        return out

    def _limit(self, tables: list[pa.Table]) -> list[pa.Table]:
        limit = self.logical.limit
        out: list[pa.Table] = []
        for table in tables:
            if self._skipped < self.logical.offset:
                skip = min(table.num_rows, self.logical.offset - self._skipped)
                self._skipped += skip
                table = table.slice(skip)
            if limit is not None:
                table = table.slice(0, max(0, limit - self._emitted))
            if table.num_rows == 0:
                continue
            self._emitted += table.num_rows
            self._stats["rows_emitted"] += table.num_rows
            out.append(table)
        if limit is not None and self._emitted >= limit:
            self.finished = True
        return out

    # -- snapshots ---------------------------------------------------------------------------
    def snapshot(self) -> tuple[dict[str, Any], dict[str, pa.Table]]:
        meta = {"watermark": self._watermark, "dirty": self._dirty, "emitted": self._emitted,
                "finished": self.finished, "stats": self._stats, "version": self._version, "skipped": self._skipped,
                "by_counts": self._by_counts}
        tables: dict[str, pa.Table] = {}
        if self._partials is not None:
            tables["partials"] = self._partials
        if self._dedup is not None and len(self._dedup):
            tables["dedup"] = self._dedup.to_table()
        if self._held:
            tables["held"] = pa.concat_tables(self._held)
        if self._input:
            tables["input"] = pa.concat_tables(self._input)
        if self._last is not None:
            tables["last"] = self._last
        if self._carry is not None:
            tables["carry"] = self._carry
        if self._assigner is not None:
            tables["sessions"] = self._assigner.snapshot()
        return meta, tables

    def restore(self, meta: dict[str, Any], tables: dict[str, pa.Table]) -> None:
        self._watermark = meta["watermark"]
        self._dirty = bool(meta["dirty"])
        self._emitted = int(meta["emitted"])
        self.finished = bool(meta["finished"])
        self._stats.update(meta["stats"])
        self._version = int(meta["version"])
        self._skipped = int(meta["skipped"])
        self._by_counts = {str(k): int(v) for k, v in meta["by_counts"].items()}
        self._partials = tables.get("partials")
        self._last = tables.get("last")
        self._carry = tables.get("carry")
        self._held = [tables["held"]] if "held" in tables else []
        self._input = [tables["input"]] if "input" in tables else []
        if self._assigner is not None and "sessions" in tables:
            self._assigner.restore(tables["sessions"])
        if "dedup" in tables and self._dedup is not None:
            self._dedup.restore(tables["dedup"])

    def describe(self) -> list[str]:
        return self.plan.explain_lines()

    def close(self) -> None:
        self._partials = None
        self._dedup = None
        self._con.close()
        if self._fold_con is not None:
            self._fold_con.close()
