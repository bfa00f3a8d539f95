"""A join of two streams (Timeplus's bidirectional join): each side's rows are held, and a new
row on either side meets the rows the other side holds.

With ``date_diff_within(d)`` in ON, a row can only meet rows whose time is within ``d`` of its
own: a side's rows older than ``d`` before the newest time seen on the other side are dropped,
so the state stays bounded by the time range. Without it both sides are held whole, up to
``join_max_buffered_rows`` (then the query fails, naming the setting), as Proton bounds its
buffered bytes. A LEFT join emits a left row without a match at once, padded with NULLs; a
right row arriving later for it emits the matched row too.

Output rows: the left side's columns, then the right side's prefixed (``__r_``, or ``__r<n>_``
for the n-th join of a chain); the rows of one arrival come out in the order of the held side's
arrival. Either side may be a stream or a planned input (a CTE, a subquery, an earlier join).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sinkflow.engine.compile import JoinPlan, connect
from sinkflow.engine.operators.base import Entries, Operator, sequence_numbers
from sinkflow.engine.times import micros_array
from sinkflow.errors import SqlError
from sinkflow.sql.plan import SEQUENCE_COLUMN

_LEFT, _RIGHT = 0, 1


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class JoinOperator(Operator):
    """See the module docstring; the state is each side's held rows (with their arrival numbers)."""

    def __init__(self, plan: JoinPlan) -> None:
        self.plan = plan
        self.spec = plan.spec
        self.schema = plan.output_schema
        self.finished = False
        self._con = connect()
        self._held: list[pa.Table | None] = [None, None]
        self._newest: list[int | None] = [None, None]  # the newest event time (µs) seen per side
        self._dropped = 0
        spec = self.spec
        left = [f"__l.{_q(c.name)} AS {_q(c.name)}" for c in spec.left_columns]
        if spec.left_input is None:
            left.append(f"__l.__seq AS {_q(SEQUENCE_COLUMN)}")
        right = [f"__r.{_q(c.name)} AS {_q(spec.right_prefix + c.name)}" for c in spec.right_columns]
        if spec.right_input is None:
            right.append(f"__r.__seq AS {_q(spec.right_prefix + SEQUENCE_COLUMN)}")
        self._select = f"SELECT {', '.join(left + right)} FROM __l"

    def push(self, port: int, entries: Entries) -> list[pa.Table]:
        if not entries:
            return []
        rows = pa.Table.from_batches([batch for _, batch in entries])
        first = entries[0][0]
        rows = rows.append_column("__seq", sequence_numbers(first, rows.num_rows))
        time_column = self.spec.left_time if port == _LEFT else self.spec.right_time
        times = micros_array(rows.column(time_column).combine_chunks())
        newest = pc.max(times).as_py()
        if newest is not None:
            self._newest[port] = newest if self._newest[port] is None else max(self._newest[port], newest)
        other = self._held[1 - port]
        out = self._match(rows, other, port)
        held = self._held[port]
        self._held[port] = rows if held is None else pa.concat_tables([held, rows.cast(held.schema)])
        self._evict()
        return [out] if out.num_rows else []

    def _match(self, rows: pa.Table, other: pa.Table | None, port: int) -> pa.Table:
        """``rows`` (arrived on ``port``) joined with the other side's held rows."""
        left_join = self.spec.kind == "LEFT" and port == _LEFT
        if other is None or other.num_rows == 0:
            if not left_join:
                return self.schema.empty_table()
            other = self._empty(1 - port)
        left, right = (rows, other) if port == _LEFT else (other, rows)
        how = "LEFT JOIN" if left_join else "JOIN"
        right_rows, on = "__r", self.spec.on
        within = self.spec.within_us
        if within is not None:
            # Rows within the range are at most one range-wide bucket apart: each right row stands in
            # its bucket and both neighbours, so DuckDB hash-joins on the bucket instead of
            # comparing every pair of rows with the same key.
            left_bucket = f"epoch_us(__l.{_q(self.spec.left_time)}) // {within}"
            right_rows = (f"(SELECT *, epoch_us({_q(self.spec.right_time)}) // {within} + __d.d AS __b "
                          f"FROM __r, range(-1, 2) AS __d(d))")
            on = f"{left_bucket} = __r.__b AND {on}"
        sql = f"{self._select} {how} {right_rows} AS __r ON {on} ORDER BY __l.__seq, __r.__seq"
        self._con.register("__l", left)
        self._con.register("__r", right)
        try:
            joined = self._con.sql(sql).to_arrow_table()
        finally:
            self._con.unregister("__l")
            self._con.unregister("__r")
        return joined.rename_columns(self.schema.names).cast(self.schema)

    def _empty(self, port: int) -> pa.Table:
        columns = self.spec.left_columns if port == _LEFT else self.spec.right_columns
        return pa.schema([c.arrow_field() for c in columns] + [pa.field("__seq", pa.int64())]).empty_table()

    def _evict(self) -> None:
        """Drop held rows that no future row of the other side can meet; enforce the row limit."""
        within = self.spec.within_us
        if within is not None:
            for port, time_column in ((_LEFT, self.spec.left_time), (_RIGHT, self.spec.right_time)):
                held, other_newest = self._held[port], self._newest[1 - port]
                if held is None or other_newest is None:
                    continue
                keep = pc.greater_equal(micros_array(held.column(time_column).combine_chunks()), other_newest - within)
                kept = held.filter(keep)
                self._dropped += held.num_rows - kept.num_rows
                self._held[port] = kept
        size = sum(t.num_rows for t in self._held if t is not None)
        if size > self.spec.max_buffered_rows:
            raise SqlError(f"the join of '{self.spec.left.stream}' and '{self.spec.right.stream}' holds {size} rows, more "
                           f"than join_max_buffered_rows ({self.spec.max_buffered_rows}); bound it with "
                           "date_diff_within(<interval>) in ON, or raise the setting")

    def end(self, port: int) -> list[pa.Table]:
        return []

    def stats(self) -> dict[str, int]:
        return {"join_rows_held": sum(t.num_rows for t in self._held if t is not None),
                "join_rows_expired": self._dropped}

    def snapshot(self) -> tuple[dict[str, Any], dict[str, pa.Table]]:
        tables = {name: t for name, t in zip(("left", "right"), self._held) if t is not None}
        return {"newest": self._newest, "dropped": self._dropped}, tables

    def restore(self, meta: dict[str, Any], tables: dict[str, pa.Table]) -> None:
        self._newest = list(meta["newest"])
        self._dropped = int(meta["dropped"])
        self._held = [tables.get("left"), tables.get("right")]

    def describe(self) -> list[str]:
        return self.plan.explain()[:1]

    def close(self) -> None:
        self._held = [None, None]
        self._con.close()
