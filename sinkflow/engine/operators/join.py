"""A join of two inputs, in one of two modes.

**Streaming** (Timeplus's bidirectional join): each side's rows are held, and a new row on either
side meets the rows the other side holds. With ``date_diff_within(d)`` in ON, a row can only meet
rows whose time is within ``d`` of its own: a side's rows older than ``d`` before the newest time
seen on the other side are dropped, so the state stays bounded by the time range. Without it both
sides are held whole, up to ``join_max_buffered_rows`` (then the query fails, naming the setting),
as Proton bounds its buffered bytes. A LEFT join emits a left row without a match at once; a right
row arriving later for it emits the matched row too.

**Bounded** (both inputs end: ``table()``, ``query_mode='table'``, subqueries over them): the
right side is held until it ends (the hash join's build side), then ClickHouse's strictness
applies: ALL (every match), ANY (one match per row: the first, in arrival order; ANY INNER also
pairs each right row once), SEMI (the rows with a match, one each), ANTI (the rows without one),
ASOF (the closest match by ON's inequality).
LEFT and INNER ALL joins (and ANY/SEMI/ANTI LEFT) then join each left batch as it comes, so a
never-ending left side (``system.numbers … LIMIT n``) still produces rows; the other kinds hold the
left side too and join once both ended, the rows of the right side without a match last.

A side without a match gets, as in Proton (``join_use_nulls = 0``), each column's type default (0,
'', 1970-01-01 …), NULL only for a nullable column; with ``join_use_nulls = 1`` NULLs. A RIGHT or
FULL join also outputs each ``USING`` column coalesced (``__using_<name>``: the right side's value
on a row of the right side only), which the column's unqualified name reads.

**Changelogs** (two keyed streams, versioned_kv or changelog_kv, each read as its changelog): a
side's held rows are the rows alive (a retraction takes its row out), and a joined row's
``_tp_delta`` is the product of its two rows' (a retraction on either side retracts what it made).

Output rows: the left side's columns, then the right side's prefixed (``__r_``, or ``__r<n>_`` for
the n-th join of a chain), in the left side's arrival order, each row's matches in the right
side's. Either side may be a stream or a planned input (a CTE, a subquery, an earlier join).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sinkflow.engine.compile import JoinPlan, coalesced_using, connect
from sinkflow.engine.operators.base import Entries, Operator, sequence_numbers
from sinkflow.engine.times import micros_array
from sinkflow.errors import InvalidInput, SqlError
from sinkflow.sql.plan import DELTA_COLUMN, SEQUENCE_COLUMN
from sinkflow.streams.ingest import converter
from sinkflow.streams.types import DataType

_LEFT, _RIGHT = 0, 1
_MARKS = ["__ls", "__rs"]  # each output row's left and right sequence numbers (NULL: no row of that side)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _default(dtype: DataType) -> pa.Scalar | None:
    """The value a column of ``dtype`` holds on a row without a match (None: NULL)."""
    if dtype.name.startswith(("nullable(", "low_cardinality(nullable(")):
        return None
    try:
        return pa.scalar(converter(dtype).default, dtype.arrow)
    except (InvalidInput, pa.ArrowException, TypeError, ValueError):
        return None


class JoinOperator(Operator):
    """See the module docstring; the state is each side's held rows (with their arrival numbers)
    and which inputs ended."""

    def __init__(self, plan: JoinPlan) -> None:
        self.plan = plan
        self.spec = plan.spec
        self.schema = plan.output_schema
        self.finished = False
        self._con = connect()
        self._held: list[pa.Table | None] = [None, None]
        self._newest: list[int | None] = [None, None]  # the newest event time (µs) seen per side
        self._ended: set[int] = set()
        self._dropped = 0
        spec = self.spec
        # A join of changelogs: a joined row retracts (−1) when either of its rows does.
        left = [f"(__l.{_q(c.name)} * __r.{_q(c.name)})::TINYINT AS {_q(c.name)}"
                if spec.changelog and c.name == DELTA_COLUMN else f"__l.{_q(c.name)} AS {_q(c.name)}"
                for c in spec.left_columns]
        if spec.left_input is None:
            left.append(f"__l.__seq AS {_q(SEQUENCE_COLUMN)}")
        right = [f"__r.{_q(c.name)} AS {_q(spec.right_prefix + c.name)}" for c in spec.right_columns]
        if spec.right_input is None:
            right.append(f"__r.__seq AS {_q(spec.right_prefix + SEQUENCE_COLUMN)}")
        using = [f"CASE WHEN __l.__seq IS NULL THEN __r.{_q(name)} ELSE __l.{_q(name)} END" for name in coalesced_using(spec)]
        self._select = f"SELECT {', '.join(left + right + using)}, __l.__seq AS __ls, __r.__seq AS __rs FROM __l"
        # Per output column: the marker saying whether its side has a row, and its default.
        self._fills: list[tuple[int, str, pa.Scalar]] = []
        if not spec.use_nulls:
            n_left, n_sides = len(left), len(left) + len(right)
            for i, column in enumerate(plan.columns[:n_sides]):
                value = _default(column.type)
                if value is not None:
                    self._fills.append((i, "__ls" if i < n_left else "__rs", value))
        # LEFT and INNER ALL/ASOF joins take each left row on its own once the right side is whole.
        self._per_batch = spec.kind == "LEFT" or (spec.kind == "INNER" and spec.strictness in ("ALL", "ASOF"))
        self._bounded_sql = self._bounded_join_sql()

    # -- bounded ----------------------------------------------------------------------------------
    def _bounded_join_sql(self) -> str:
        """The bounded join of ``__l`` and ``__r`` by the spec's kind and strictness, ordered."""
        spec = self.spec
        kind, strictness = spec.kind, spec.strictness
        how = {"INNER": "JOIN", "LEFT": "LEFT JOIN", "RIGHT": "RIGHT JOIN", "FULL": "FULL JOIN"}[kind]
        first_right = "QUALIFY row_number() OVER (PARTITION BY __l.__seq ORDER BY __r.__seq) = 1"
        first_left = "QUALIFY row_number() OVER (PARTITION BY __r.__seq ORDER BY __l.__seq) = 1"
        tail = ""
        if strictness == "ANY":
            tail = {"LEFT": first_right, "RIGHT": first_left, "INNER": first_right,
                    "FULL": "QUALIFY __l.__seq IS NULL OR row_number() OVER "
                            "(PARTITION BY __l.__seq ORDER BY __r.__seq) = 1"}[kind]
        elif strictness == "SEMI":
            how, tail = "JOIN", first_right if kind == "LEFT" else first_left
        elif strictness == "ANTI":
            tail = "WHERE __r.__seq IS NULL" if kind == "LEFT" else "WHERE __l.__seq IS NULL"
        elif strictness == "ASOF":
            how = f"ASOF {how}"
        sql = f"{self._select} {how} __r ON {spec.on} {tail}"
        if strictness == "ANY" and kind == "INNER":
            # ANY INNER pairs each right row once too: with the first left row that took it.
            sql = f"SELECT * FROM ({sql}) QUALIFY row_number() OVER (PARTITION BY __rs ORDER BY __ls) = 1"
        return f"SELECT * FROM ({sql}) ORDER BY __ls NULLS LAST, __rs"

    def _run_bounded(self, left: pa.Table) -> list[pa.Table]:
        right = self._held[_RIGHT] if self._held[_RIGHT] is not None else self._empty(_RIGHT)
        out = self._fill(self._query(self._bounded_sql, left, right))
        return [out] if out.num_rows else []

    # -- the operator interface --------------------------------------------------------------------
    def push(self, port: int, entries: Entries) -> list[pa.Table]:
        if not entries:
            return []
        rows = pa.Table.from_batches([batch for _, batch in entries])
        first = entries[0][0]
        rows = rows.append_column("__seq", sequence_numbers(first, rows.num_rows))
        if self.spec.bounded:
            if port == _LEFT and _RIGHT in self._ended and self._per_batch:
                return self._run_bounded(rows)
            self._hold(port, rows)
            self._check_size()
            return []
        if self.spec.within_us is not None:
            time_column = self.spec.left_time if port == _LEFT else self.spec.right_time
            newest = pc.max(micros_array(rows.column(time_column).combine_chunks())).as_py()
            if newest is not None:
                self._newest[port] = newest if self._newest[port] is None else max(self._newest[port], newest)
        out = self._match(rows, self._held[1 - port], port)
        self._hold(port, rows)
        if self.spec.changelog:
            self._net(port)
        self._evict()
        return [out] if out.num_rows else []

    def end(self, port: int) -> list[pa.Table]:
        self._ended.add(port)
        if not self.spec.bounded:
            return []
        out: list[pa.Table] = []
        if _RIGHT in self._ended and (_LEFT in self._ended or self._per_batch):
            left = self._held[_LEFT]
            self._held[_LEFT] = None
            if left is not None or _LEFT in self._ended:
                out = self._run_bounded(left if left is not None else self._empty(_LEFT))
        if len(self._ended) == 2:
            self.finished = True
            self._held = [None, None]
        return out

    # -- streaming --------------------------------------------------------------------------------
    def _hold(self, port: int, rows: pa.Table) -> None:
        held = self._held[port]
        self._held[port] = rows if held is None else pa.concat_tables([held, rows.cast(held.schema)])

    def _net(self, port: int) -> None:
        """A changelog side's held rows after its retractions: the rows still alive, each once."""
        held = self._held[port]
        assert held is not None
        names = [_q(n) for n in held.column_names if n not in (DELTA_COLUMN, "__seq")]
        cols = ", ".join(names)
        sql = (f"SELECT {cols}, 1::TINYINT AS {_q(DELTA_COLUMN)}, max(__seq) AS __seq FROM __h GROUP BY {cols} "
               f"HAVING sum({_q(DELTA_COLUMN)}) > 0 ORDER BY __seq")
        self._con.register("__h", held)
        try:
            alive = self._con.sql(sql).to_arrow_table()
        finally:
            self._con.unregister("__h")
        self._held[port] = alive.select(held.column_names).cast(held.schema)

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
        return self._fill(self._query(sql, left, right))

    def _query(self, sql: str, left: pa.Table, right: pa.Table) -> pa.Table:
        self._con.register("__l", left)
        self._con.register("__r", right)
        try:
            return self._con.sql(sql).to_arrow_table()
        finally:
            self._con.unregister("__l")
            self._con.unregister("__r")

    def _fill(self, joined: pa.Table) -> pa.Table:
        """The joined rows in the output schema, the columns of a side without a match holding
        their type's default (see the module docstring)."""
        for i, mark, value in self._fills:
            column = joined.column(i)
            if column.null_count:
                joined = joined.set_column(i, joined.field(i), pc.if_else(pc.is_valid(joined.column(mark)), column,
                                                                          value.cast(column.type)))
        joined = joined.drop_columns(_MARKS)
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
        self._check_size()

    def _check_size(self) -> None:
        size = sum(t.num_rows for t in self._held if t is not None)
        if size > self.spec.max_buffered_rows:
            bound = "" if self.spec.bounded else "bound it with date_diff_within(<interval>) in ON, or "
            raise SqlError(f"the join of '{self.spec.left.stream}' and '{self.spec.right.stream}' holds {size} rows, more "
                           f"than join_max_buffered_rows ({self.spec.max_buffered_rows}); {bound}raise the setting")

    def stats(self) -> dict[str, int]:
        return {"join_rows_held": sum(t.num_rows for t in self._held if t is not None),
                "join_rows_expired": self._dropped}

    def snapshot(self) -> tuple[dict[str, Any], dict[str, pa.Table]]:
        tables = {name: t for name, t in zip(("left", "right"), self._held) if t is not None}
        return {"newest": self._newest, "dropped": self._dropped, "ended": sorted(self._ended),
                "finished": self.finished}, tables

    def restore(self, meta: dict[str, Any], tables: dict[str, pa.Table]) -> None:
        self._newest = list(meta["newest"])
        self._dropped = int(meta["dropped"])
        self._ended = set(meta["ended"])
        self.finished = bool(meta["finished"])
        self._held = [tables.get("left"), tables.get("right")]

    def describe(self) -> list[str]:
        return self.plan.explain()[:1]

    def close(self) -> None:
        self._held = [None, None]
        self._con.close()
