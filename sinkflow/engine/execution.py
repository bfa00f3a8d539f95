"""Running a planned query: the graph of its operators, driven step by step.

One :class:`QueryExecution` owns the operators of one query (built from its plan: a
:class:`~sinkflow.engine.operators.select.SelectOperator` per SELECT, a
:class:`~sinkflow.engine.operators.union.UnionOperator` per ``UNION ALL``) and the
:class:`~sinkflow.engine.operators.scan.Scan` of each source stream. Each :meth:`step` reads what
the logs hold past the scans' offsets (whole ingest batches), pushes the rows through the graph
(an operator's output rows become its consumer's input, numbered in the order they were emitted),
fires the processing-time timers (``EMIT PERIODIC``, timeouts) and returns the root's output.
The state after a step is exactly what :meth:`snapshot` captures: every scan's offset and every
operator's state, by operator id; restoring it continues the whole graph where it stood.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import duckdb
import pyarrow as pa

from sinkflow.engine import state as codec
from sinkflow.engine.compile import ChangelogPlan, JoinPlan, Plan, UnionPlan
from sinkflow.engine.operators.base import Entries, Operator, tree
from sinkflow.engine.operators.changelog import ChangelogOperator
from sinkflow.engine.operators.join import JoinOperator
from sinkflow.engine.operators.scan import MAX_ROWS_PER_STEP, Scan, open_scan
from sinkflow.engine.operators.select import SelectOperator
from sinkflow.engine.operators.union import UnionOperator
from sinkflow.errors import InvalidInput, SqlError
from sinkflow.streams.store import StreamStore

__all__ = ["MAX_ROWS_PER_STEP", "THREAD_ROWS", "QueryExecution"]

#: Work on more rows than this runs in a worker thread so the event loop stays responsive.
THREAD_ROWS = 20_000
_COUNTERS = ("late_rows_dropped", "windows_emitted", "dedup_rows_dropped", "open_groups", "join_rows_held",
             "join_rows_expired", "groups_expired")


@dataclass
class _Node:
    """An operator, where its output goes (``consumer``'s input ``port``; None: the query's
    output) and the sequence number of its next output row (in the snapshot)."""

    id: str
    op: Operator
    consumer: _Node | None
    port: int
    next_seq: int = 0
    end_sent: bool = False


@dataclass
class _Source:
    """A scan and the operator input its rows go to."""

    scan: Scan
    consumer: _Node
    port: int = 0


class QueryExecution:
    """A running query (see the module docstring). ``schema`` is the output schema every batch conforms to.

    ``clock`` (seconds, monotonic) is the one processing-time source of the query: every
    operator's timers read it, and :meth:`step` fires what is due at its reading."""

    def __init__(self, plan: Plan, store: StreamStore, snapshot: bytes | None = None,
                 idle_timeout: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.plan = plan
        self._clock = clock
        self.schema: pa.Schema = plan.output_schema
        self.epoch = 0
        self.finished = False
        self._nodes: list[_Node] = []  # inputs before their consumers
        self._sources: list[_Source] = []
        self._busy = threading.Lock()
        self._failure: Exception | None = None
        self._closed = False
        self._close_pending = False
        self._emitted = 0
        try:
            self._root = self._build(plan, None, 0, store, idle_timeout)
        except Exception:
            self._release()
            raise
        if snapshot is not None:
            self._restore(snapshot)
        else:
            for source in self._sources:
                source.scan.start()

    def _build(self, plan: Plan, consumer: _Node | None, port: int, store: StreamStore,
               idle_timeout: float | None) -> _Node:
        op: Operator
        if isinstance(plan, UnionPlan):
            op = UnionOperator(plan.output_schema, len(plan.inputs))
        elif isinstance(plan, JoinPlan):
            op = JoinOperator(plan)
        elif isinstance(plan, ChangelogPlan):
            op = ChangelogOperator(plan)
        else:
            op = SelectOperator(plan, store, idle_timeout, self._clock)
        node = _Node("", op, consumer, port)
        if isinstance(plan, UnionPlan):
            for i, child in enumerate(plan.inputs):
                self._build(child, node, i, store, idle_timeout)
        elif isinstance(plan, JoinPlan):
            sides = ((plan.spec.left, plan.spec.left_input), (plan.spec.right, plan.spec.right_input))
            for i, (side, upstream) in enumerate(sides):
                if upstream is not None:
                    self._build(upstream, node, i, store, idle_timeout)
                else:
                    self._sources.append(_Source(open_scan(side, store), node, i))
        elif plan.inputs:
            self._build(plan.inputs[0], node, 0, store, idle_timeout)
        elif isinstance(plan, ChangelogPlan):
            self._sources.append(_Source(open_scan(plan.spec.source, store), node))
        else:
            self._sources.append(_Source(open_scan(plan.logical.source, store), node))
        node.id = f"op{len(self._nodes)}"
        self._nodes.append(node)
        return node

    def explain(self) -> list[str]:
        """The running graph's tree EXPLAIN, from each operator's and scan's ``describe()``
        (the same tree as the plan's ``explain()``)."""

        def lines(node: _Node) -> list[str]:
            children = [lines(n) for n in self._nodes if n.consumer is node]
            inputs = [(n.port, c) for n, c in zip([n for n in self._nodes if n.consumer is node], children)]
            inputs += [(s.port, s.scan.describe()) for s in self._sources if s.consumer is node]
            return tree(node.op.describe(), [c for _, c in sorted(inputs, key=lambda pc: pc[0])])

        return lines(self._root)

    # -- positions and counters ------------------------------------------------------------------
    def lag(self) -> int:
        """Rows of the sources not yet read (for a bounded query: up to its end)."""
        return sum(s.scan.lag() for s in self._sources)

    def stats(self) -> dict[str, Any]:
        """Counters: rows_read, late_rows_dropped, windows_emitted, rows_emitted, dedup_rows_dropped,
        open_groups (summed over the operators), plus epoch, lag and the root's watermark."""
        counters = dict.fromkeys(_COUNTERS, 0)
        for node in self._nodes:
            for key, value in node.op.stats().items():
                if key in counters:
                    counters[key] += value
        root = self._root.op
        wm = root.watermark if isinstance(root, SelectOperator) else None
        return {"rows_read": sum(s.scan.rows_read for s in self._sources), **counters,
                "rows_emitted": self._emitted, "epoch": self.epoch, "lag": self.lag(),
                "watermark": None if wm is None else datetime.fromtimestamp(wm / 1e6, timezone.utc).isoformat()}

    # -- stepping ----------------------------------------------------------------------------
    async def step(self, timeout: float) -> list[pa.RecordBatch]:
        """Process available input (waiting up to ``timeout`` seconds for some), then due
        processing-time emits. Returns output batches (possibly none); increments ``epoch``."""
        if self.finished:
            return []
        reads = self._read()
        if not any(reads) and timeout > 0 and any(s.scan.end is None for s in self._sources):
            wait = min(timeout, self._until_timer())
            if wait > 0:
                await self._wait(wait)
            if self.finished:  # closed while waiting
                return []
            reads = self._read()
        rows = sum(b.num_rows for entries in reads for _, b in entries)
        if rows > THREAD_ROWS:
            return await asyncio.to_thread(self._advance, reads)
        return self._advance(reads)

    def run_to_end(self) -> pa.Table:
        """Run a bounded query to its end and return every result row."""
        if not self.plan.bounded:
            raise InvalidInput("only a bounded query (table(...)) runs to an end")
        out: list[pa.RecordBatch] = []
        while not self.finished:
            out.extend(self._advance(self._read()))
        return pa.Table.from_batches(out, schema=self.schema)

    def _read(self) -> list[Entries]:
        return [s.scan.read(s.consumer.op.rows_per_step or MAX_ROWS_PER_STEP) for s in self._sources]

    async def _wait(self, timeout: float) -> None:
        live = [s.scan for s in self._sources if s.scan.end is None]
        if len(live) == 1:
            await live[0].wait(timeout)
            return
        tasks = [asyncio.ensure_future(scan.wait(timeout)) for scan in live]
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _until_timer(self) -> float:
        now = self._clock()
        return max(0.0, min([float("inf"), *(n.op.due(now) for n in self._nodes if not n.op.finished)]))

    def _advance(self, reads: list[Entries]) -> list[pa.RecordBatch]:
        """Process ``reads`` (per source) and due timers; the whole state change of one step.

        A failure leaves the state half-changed, so it sticks: every later step raises it again
        (restart from a snapshot taken before it)."""
        with self._busy:
            if self._closed:
                return []
            if self._failure is not None:
                raise self._failure
            try:
                return self._advance_locked(reads)
            except duckdb.Error as err:
                names = ", ".join(sorted({f"'{s.scan.name}'" for s in self._sources}))
                self._failure = SqlError(f"the query failed on the data read from {names}: "
                                         f"{str(err).splitlines()[0]}")
                raise self._failure from err
            except Exception as err:
                self._failure = err
                raise
            finally:
                if self._close_pending:
                    self._release()

    def _advance_locked(self, reads: list[Entries]) -> list[pa.RecordBatch]:
        out: list[pa.Table] = []
        for source, entries in zip(self._sources, reads):
            source.scan.advance(entries)
            if entries:
                out.extend(self._deliver(source.consumer, source.port, entries))
            if source.scan.ended and not source.scan.ended_signalled:
                source.scan.ended_signalled = True
                out.extend(self._end(source.consumer, source.port))
        now = self._clock()
        for node in self._nodes:
            if not node.op.finished:
                out.extend(self._after(node, node.op.fire(now)))
        self.epoch += 1
        batches = [batch for table in out for batch in table.to_batches() if batch.num_rows]
        self._emitted += sum(b.num_rows for b in batches)
        return batches

    def _deliver(self, node: _Node, port: int, entries: Entries) -> list[pa.Table]:
        if node.op.finished:
            return []
        return self._after(node, node.op.push(port, entries))

    def _end(self, node: _Node, port: int) -> list[pa.Table]:
        if node.op.finished:
            return []
        return self._after(node, node.op.end(port))

    def _after(self, node: _Node, tables: list[pa.Table]) -> list[pa.Table]:
        """Send ``node``'s output on (the query's output at the root), then its end if it finished."""
        out: list[pa.Table] = []
        consumer = node.consumer
        if consumer is None:
            out.extend(tables)
        else:
            entries: Entries = []
            for table in tables:
                for batch in table.to_batches():
                    if batch.num_rows:
                        entries.append((node.next_seq, batch))
                        node.next_seq += batch.num_rows
            if entries:
                out.extend(self._deliver(consumer, node.port, entries))
        if node.op.finished and not node.end_sent:
            node.end_sent = True
            if consumer is None:
                self.finished = True
            else:
                out.extend(self._end(consumer, node.port))
        return out

    # -- snapshots ---------------------------------------------------------------------------
    def snapshot(self) -> bytes:
        """The whole state after the last step: every scan's offset and every operator's state."""
        with self._busy:  # never half a step, even if one runs in a worker thread
            meta: dict[str, Any] = {
                "sql": self.plan.sql, "epoch": self.epoch, "finished": self.finished, "emitted": self._emitted,
                "scans": [s.scan.snapshot() for s in self._sources], "ops": {},
            }
            tables: dict[str, pa.Table] = {}
            for node in self._nodes:
                op_meta, op_tables = node.op.snapshot()
                meta["ops"][node.id] = {"state": op_meta, "next_seq": node.next_seq, "end_sent": node.end_sent}
                tables.update({f"{node.id}/{name}": table for name, table in op_tables.items()})
            return codec.encode(meta, tables)

    def _restore(self, data: bytes) -> None:
        meta, tables = codec.decode(data)
        if meta.get("sql") != self.plan.sql:
            raise InvalidInput("the snapshot belongs to a different query")
        try:
            self.epoch = int(meta["epoch"])
            self.finished = bool(meta["finished"])
            self._emitted = int(meta["emitted"])
            for source, scan_meta in zip(self._sources, meta["scans"], strict=True):
                source.scan.restore(scan_meta)
            for node in self._nodes:
                op_meta = meta["ops"][node.id]
                prefix = f"{node.id}/"
                node.op.restore(op_meta["state"], {k[len(prefix):]: t for k, t in tables.items() if k.startswith(prefix)})
                node.next_seq, node.end_sent = int(op_meta["next_seq"]), bool(op_meta["end_sent"])
        except (KeyError, ValueError, TypeError) as err:
            raise InvalidInput(f"the snapshot does not fit this query's operators: {err}") from None

    def close(self) -> None:
        """Free the operators' DuckDB connections and state; the execution is finished.

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
            for node in self._nodes:
                node.op.close()
