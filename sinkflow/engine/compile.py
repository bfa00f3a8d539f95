"""From a logical plan to the DuckDB queries one execution runs, and the query's output schema.

Relations the queries read (registered by the execution before each run):

* ``__raw``: input rows of the source stream plus ``__seq`` (log sequence number) and, for
  windowed aggregation, ``__e`` (the closed-window frontier, microseconds, when the row's ingest
  batch arrived: windows ending at or before it are already emitted, so the row is late for them);
* ``__dim<i>``: the dimension tables of lookups;
* ``__state``/``__fold``: partial aggregates (the open windows / running groups) and the ones just
  folded from new rows; ``__closing``: merged partials whose windows are to be emitted.

A query that only picks source columns (no WHERE, window, join or aggregation) needs none of
them: :attr:`QueryPlan.passthrough` names the columns and the execution selects them with Arrow.

Partial rows have the columns ``__ws`` (window start, µs; windowed only), ``__k<j>`` (group keys)
and ``__p<i>_<j>`` (partial state ``j`` of aggregate ``i``).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, replace
from typing import Literal

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from sinkflow.engine import limits
from sinkflow.engine.operators.base import tree
from sinkflow.errors import InvalidInput, Position, SqlError
from sinkflow.sql.positions import located, position_at
from sinkflow.sql.aggregates import render
from sinkflow.sql.plan import DELTA_COLUMN, ONE_ROW, SEQUENCE_COLUMN, SRC, USING_PREFIX, ChangelogSpec, JoinSpec, LogicalPlan, Lookup, SourceSpec, PlannedAggregate, UnionAll
from sinkflow.streams.types import TP_TIME, Column, from_arrow, parse_type

_WINDOW_TS = pa.timestamp("ms", tz="UTC")
_BOUND_TYPE = pa.timestamp("us", tz="UTC")
_PASSTHROUGH = re.compile(r'^(__src|__dim\d+)\."((?:[^"]|"")+)"$')
# DuckDB widens integer sums to 128 bits; Timeplus keeps 64.
_NARROW = {"HUGEINT": "BIGINT", "UHUGEINT": "UBIGINT"}


_database: duckdb.DuckDBPyConnection | None = None
_database_lock = threading.Lock()


def connect() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection set up as the generated SQL expects (UTC session time zone).

    Every connection is a cursor of one in-process database: opening one costs well under a
    millisecond (a fresh database costs ~50 ms), registered Arrow tables stay private to it, and
    all queries share one DuckDB thread pool (measured: a second database in the process, with
    its own pool, slowed the engine by a third on this 2-core machine)."""
    global _database
    with _database_lock:
        if _database is None:
            _database = duckdb.connect(config=limits.database_config())
        con = _database.cursor()
    con.execute("SET TimeZone='UTC'")
    limits.track(con)
    return con


def define_functions() -> duckdb.DuckDBPyConnection:
    """The shared database's own connection, to create or remove Python functions on: they are
    then callable from every :func:`connect` cursor (one made on a cursor dies with it)."""
    connect().close()
    assert _database is not None
    return _database


class _Explained:
    """A plan whose one-text EXPLAIN is its tree's lines."""

    def explain(self) -> list[str]:
        raise NotImplementedError

    def describe(self) -> str:
        """:meth:`explain` as one text, a line per operator."""
        return "\n".join(self.explain())


@dataclass(frozen=True)
class QueryPlan(_Explained):
    """A planned SELECT, ready to start: the logical plan, its DuckDB queries, its output schema
    and the plan of the subquery, CTE or UNION it reads (``inputs``; empty: it reads a stream)."""

    logical: LogicalPlan
    output_schema: pa.Schema
    columns: list[Column]
    raw_schema: pa.Schema
    stateless_sql: str | None
    fold_sql: str | None
    merge_sql: str | None
    final_sql: str | None
    #: For a query that only picks source columns (no WHERE, window, join or aggregation): the
    #: source column of each output column, which is then the stored column unchanged.
    passthrough: tuple[str, ...] | None = None
    inputs: tuple[Plan, ...] = ()
    #: A session window's open sessions table (``__sessions``), None for other queries.
    session_schema: pa.Schema | None = None
    #: The output columns and the hidden ones ORDER BY sorts by (None: no hidden columns).
    full_schema: pa.Schema | None = None
    #: An aggregation with lag(): the query keeping its last emitted rows (``__ocarry``), and their schema.
    output_carry_sql: str | None = None
    output_carry_schema: pa.Schema | None = None
    #: A session window with start/end conditions: the rows to assign to sessions (``__t``, ``__s``,
    #: keys, ``__cs``/``__ce``), and one unit of its time column (µs).
    session_rows_sql: str | None = None
    session_tick_us: int = 1

    @property
    def bounded(self) -> bool:
        return self.logical.bounded

    @property
    def sources(self) -> list[str]:
        return self.logical.sources

    @property
    def sql(self) -> str:
        return self.logical.sql

    def operator_lines(self) -> list[str]:
        """The fused SELECT's operators, outermost first, one line each (see :meth:`explain`)."""
        lg = self.logical
        lines: list[str] = []
        if lg.limit is not None or lg.offset:
            lines.append(f"Limit {'all' if lg.limit is None else lg.limit}{f' offset {lg.offset}' if lg.offset else ''}")
        if lg.limit_by is not None:
            lines.append(f"LimitBy {lg.limit_by[0]} by {', '.join(lg.limit_by[1])}")
        if lg.order_by:
            lines.append(f"Sort {len(lg.order_by)} key(s)")
        if lg.aggregate:
            if lg.lags:
                lines.append(f"Lag {', '.join(str(n) for _, n, _ in lg.lags)} emitted row(s) back")
            lines.append(f"Emit {_describe_emit(lg)}"
                         + (f", groups expire {lg.state_ttl_us / 1e6:g}s after their newest row" if lg.state_ttl_us else ""))
            calls = ", ".join(c.name for c in lg.aggregate.calls)
            having = " having" if lg.having else ""
            lines.append(f"Aggregate {len(lg.aggregate.keys)} key(s): {calls}{having}")
            if lg.window:
                lines.append(f"Window {_describe_window(lg)}")
        else:
            if lg.lags:
                keys = ", ".join(re.sub(r'^__src\."(.*)"$', r"\1", key) for key in lg.lag_partition)
                per_key = f" per {keys}" if keys else ""
                lines.append(f"Lag {', '.join(str(n) for _, n, _ in lg.lags)} row(s) back{per_key}")
            if lg.window:
                lines.append(f"Window {_describe_window(lg)}")
        if lg.where:
            lines.append("Filter" + (f" with {len(lg.subqueries)} subquery result(s) read at the start"
                                     if lg.subqueries else ""))
        lines += [f"LookupJoin {lk.kind.lower()}{' asof' if lk.asof else ''} {_describe_dimension(lk)}" for lk in lg.lookups]
        if lg.dedup:
            ttl = f", {lg.dedup.ttl_us / 1e6:g}s" if lg.dedup.ttl_us else ""
            limit = f", at most {lg.dedup.max_keys} keys" if lg.dedup.max_keys else ""
            lines.append(f"Dedup({', '.join(lg.dedup.keys)}{ttl}{limit})")
        if lg.whole_input:
            lines.append("HoldInput until the end (window functions, RIGHT/FULL joins)")
        return lines

    def explain_lines(self) -> list[str]:
        """This SELECT's own EXPLAIN lines: the output columns, then each fused operator indented
        under its consumer."""
        lines = [f"Project {', '.join(f'{c.name} {c.type.name}' for c in self.columns)}", *self.operator_lines()]
        return [("  " * i) + line for i, line in enumerate(lines)]

    def explain(self) -> list[str]:
        """The tree EXPLAIN: :meth:`explain_lines`, and the input (a scan, or the subquery's tree)
        under the innermost operator."""
        lg = self.logical
        if self.inputs:
            below = self.inputs[0].explain()
        elif lg.source.stream == ONE_ROW:
            below = ["OneRow"]
        else:
            below = [_describe_scan(lg.source)]
        return tree(self.explain_lines(), [below])

@dataclass(frozen=True)
class UnionPlan(_Explained):
    """``UNION ALL`` of planned queries: the first one's column names, each column's type the
    first input's (the others are cast to it)."""

    sql: str
    inputs: tuple[Plan, ...]
    output_schema: pa.Schema
    columns: list[Column]

    @property
    def bounded(self) -> bool:
        return all(p.bounded for p in self.inputs)

    @property
    def sources(self) -> list[str]:
        out: list[str] = []
        for plan in self.inputs:
            out += [s for s in plan.sources if s not in out]
        return out

    def explain(self) -> list[str]:
        lines = ["UnionAll"]
        for plan in self.inputs:
            lines += ["  " + line for line in plan.explain()]
        return lines


class _FromSpec(_Explained):
    """A plan compiled from a planner spec whose text is the plan's ``sql``."""

    spec: JoinSpec | ChangelogSpec

    @property
    def sql(self) -> str:
        return self.spec.sql


@dataclass(frozen=True)
class JoinPlan(_FromSpec):
    """A join of two streams (see :class:`~sinkflow.sql.plan.JoinSpec`): its output is the left
    side's columns, then the right side's prefixed ``__r_``."""

    spec: JoinSpec
    output_schema: pa.Schema
    columns: list[Column]

    @property
    def bounded(self) -> bool:
        return self.spec.bounded

    @property
    def sources(self) -> list[str]:
        out: list[str] = []
        for source, upstream in ((self.spec.left, self.spec.left_input), (self.spec.right, self.spec.right_input)):
            out += [s for s in (upstream.sources if upstream is not None else [source.stream]) if s not in out]
        return out

    def explain(self) -> list[str]:
        spec = self.spec
        within = f" within {spec.within_us / 1e6:g}s" if spec.within_us is not None else ""
        if spec.bounded:
            strictness = "" if spec.strictness == "ALL" else f" {spec.strictness.lower()}"
            nulls = ", NULLs for no match" if spec.use_nulls else ""
            lines = [f"HashJoin {spec.kind.lower()}{strictness}{nulls}"]
        else:
            lines = [f"StreamJoin {spec.kind.lower()}{within}"]
        for source, upstream in ((spec.left, spec.left_input), (spec.right, spec.right_input)):
            lines += ["  " + line for line in (upstream.explain() if upstream is not None else [_describe_scan(source)])]
        return lines


@dataclass(frozen=True)
class ChangelogPlan(_FromSpec):
    """A changelog by key of a stream or a planned input (see :class:`~sinkflow.sql.plan.ChangelogSpec`):
    the input's columns, then ``_tp_delta``."""

    spec: ChangelogSpec
    output_schema: pa.Schema
    columns: list[Column]

    @property
    def inputs(self) -> tuple[Plan, ...]:
        return (self.spec.input,) if self.spec.input is not None else ()

    @property
    def bounded(self) -> bool:
        return self.spec.input.bounded if self.spec.input is not None else self.spec.source.bounded

    @property
    def sources(self) -> list[str]:
        return list(self.spec.input.sources) if self.spec.input is not None else [self.spec.source.stream]

    def explain(self) -> list[str]:
        below = self.spec.input.explain() if self.spec.input is not None else [_describe_scan(self.spec.source)]
        return [f"Changelog by {', '.join(self.spec.keys)}", *("  " + line for line in below)]


Plan = QueryPlan | UnionPlan | JoinPlan | ChangelogPlan


def compile_changelog(spec: ChangelogSpec) -> ChangelogPlan:
    """The plan of a changelog by key: the input's columns and ``_tp_delta`` (int8)."""
    columns = [*(c for c in spec.columns if c.name != DELTA_COLUMN), Column(DELTA_COLUMN, parse_type("int8"))]
    return ChangelogPlan(spec, pa.schema([pa.field(c.name, c.type.arrow, nullable=True) for c in columns]), columns)


def _describe_scan(source: SourceSpec) -> str:
    seek = "" if source.bounded or source.seek_to == "latest" else f" seek_to {source.seek_to}"
    return f"Scan {'table(' + source.stream + ')' if source.bounded else source.stream}{seek}"


def coalesced_using(spec: JoinSpec) -> list[str]:
    """The USING columns a RIGHT or FULL join outputs coalesced as ``__using_<name>`` (see
    :mod:`sinkflow.engine.operators.join`): those both sides have under their own names."""
    if spec.kind not in ("RIGHT", "FULL"):
        return []
    left, right = {c.name for c in spec.left_columns}, {c.name for c in spec.right_columns}
    return [name for name in spec.using if name in left and name in right]


def compile_join(spec: JoinSpec) -> JoinPlan:
    """The plan of a join of two streams: its output columns come from the two sides' columns."""
    # Each side read from a stream keeps its rows' sequence numbers as _tp_sn (prefixed on the right).
    sequence = Column(SEQUENCE_COLUMN, parse_type("int64"))
    left = [*spec.left_columns, *([sequence] if spec.left_input is None else [])]
    right = [*spec.right_columns, *([sequence] if spec.right_input is None else [])]
    columns = [*left, *(replace(c, name=f"{spec.right_prefix}{c.name}") for c in right)]
    types = {c.name: c for c in spec.left_columns}
    columns += [replace(types[name], name=USING_PREFIX + name) for name in coalesced_using(spec)]
    # Every column nullable: a LEFT join pads the right side with NULLs.
    return JoinPlan(spec, pa.schema([pa.field(c.name, c.type.arrow, nullable=True) for c in columns]), columns)


def _describe_dimension(lk: Lookup) -> str:
    if lk.asof:
        return f"{lk.stream} (every row)"
    if lk.view:
        return f"{lk.stream} (newest row per key)"
    return f"table({lk.stream})"


def _describe_window(lg: LogicalPlan) -> str:
    assert lg.window is not None
    w = lg.window
    if w.kind == "session":
        longest = f", max {w.max_us / 1e6:g}s" if w.max_us else ""
        bounds = (f", {'[' if w.include_start else '('}start, end{']' if w.include_end else ')'}"
                  if w.start_condition else "")
        return f"session({w.time_column}, timeout {w.size_us / 1e6:g}s{longest}{bounds})"
    spans = f"{w.size_us / 1e6:g}s" if w.kind == "tumble" else f"{w.slide_us / 1e6:g}s, {w.size_us / 1e6:g}s"
    return f"{w.kind}({w.time_column}, {spans})"


def _describe_emit(lg: LogicalPlan) -> str:
    emit = lg.emit
    period = f"{emit.period_us / 1e6:g}s"
    detail = {"watermark": f" delay {emit.delay_us / 1e6:g}s", "periodic": f" {period}",
              "update": f" every {period}" if emit.period_us else " every step"}
    text = f"{emit.mode}{detail.get(emit.mode, '')}"
    if emit.early == "periodic":
        text += f", early periodic {period}"
    elif emit.early == "update":
        text += f", early update {'every ' + period if emit.period_us else 'every step'}"
    for flag in ("repeat", "changelog", "per_event"):
        if getattr(emit, flag):
            text += f", {flag.replace('_', ' ')}"
    if emit.timeout_us is not None:
        text += f", timeout {emit.timeout_us / 1e6:g}s"
    if lg.idle_timeout is not None:
        text += f" idle_timeout {lg.idle_timeout:g}s"
    return text


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def raw_schema(plan: LogicalPlan) -> pa.Schema:
    """The schema of ``__raw``: the source's columns, ``__seq`` and (windowed aggregation) ``__e``."""
    fields = [c.arrow_field() for c in plan.input_columns] + [pa.field("__seq", pa.int64())]
    if _uses_frontier(plan):
        fields.append(pa.field("__e", pa.int64()))
    return pa.schema(fields)


def _uses_frontier(plan: LogicalPlan) -> bool:
    return plan.window is not None and plan.aggregate is not None


def _from(plan: LogicalPlan) -> str:
    src = "__raw"
    if plan.window is not None and plan.aggregate is None:
        # Per-row window bounds for a windowed query without aggregation (tumble only).
        t = f"epoch_us({SRC}.{_q(plan.window.time_column)})"
        size = plan.window.size_us
        ws = f"({t} - (({t} % {size}) + {size}) % {size})"
        src = (
            f"(SELECT {SRC}.*, make_timestamp({ws})::TIMESTAMPTZ AS __window_start,"
            f" make_timestamp({ws} + {size})::TIMESTAMPTZ AS __window_end FROM __raw AS {SRC})"
        )
    parts = [f"FROM {src} AS {SRC}"]
    for lk in plan.lookups:
        kind = "" if lk.kind == "INNER" else f"{lk.kind} "
        parts.append(f"{'ASOF ' if lk.asof else ''}{kind}JOIN {lk.relation} ON {lk.on}")  # DuckDB: ASOF LEFT JOIN
    if plan.where:
        parts.append(f"WHERE {plan.where}")
    return " ".join(parts)


def _stateless_sql(plan: LogicalPlan) -> str:
    cols = ", ".join(f"{sql} AS {_q(name)}" for name, sql in plan.projection)
    if plan.lags:
        # The rows carried from earlier steps (``__carry``) give the first rows their lags.
        window = f"{_partition(plan)}ORDER BY {SRC}.__seq"
        lags = ", ".join(f"lag({x}, {n}, {default}) OVER ({window}) AS __lag{i}"
                         for i, (x, n, default) in enumerate(plan.lags))
        inner = f"SELECT {SRC}.*, {lags} FROM ({_LAG_INPUT}) AS {SRC}{_where(plan)}"
        return f"SELECT {cols} FROM ({inner}) AS {SRC} WHERE NOT {SRC}.__carried ORDER BY {SRC}.__seq"
    order = f" ORDER BY {SRC}.__seq" if plan.lookups else ""  # joins may reorder rows; keep arrival order
    return f"SELECT {cols} {_from(plan)}{order}"


_LAG_INPUT = "SELECT *, true AS __carried FROM __carry UNION ALL SELECT *, false AS __carried FROM __raw"


def _where(plan: LogicalPlan) -> str:
    return f" WHERE {plan.where}" if plan.where else ""


def _partition(plan: LogicalPlan) -> str:
    return f"PARTITION BY {', '.join(plan.lag_partition)} " if plan.lag_partition else ""


def carry_sql(plan: LogicalPlan) -> str:
    """The rows a query with lag() carries to its next step: the last ones passing WHERE (per
    PARTITION BY key)."""
    depth = max(n for _, n, _ in plan.lags)
    return (f"SELECT * EXCLUDE (__carried) FROM ({_LAG_INPUT}) AS {SRC}{_where(plan)} "
            f"QUALIFY row_number() OVER ({_partition(plan)}ORDER BY {SRC}.__seq DESC) <= {depth} ORDER BY __seq")


def _pre_sql(plan: LogicalPlan) -> str:
    agg = plan.aggregate
    assert agg is not None
    time_col = plan.window.time_column if plan.window else TP_TIME
    has_time = plan.window is not None or any(c.name == TP_TIME for c in plan.input_columns)
    # Without an event time (a subquery that drops _tp_time), earliest/latest follow arrival order.
    time_sql = f"epoch_us({SRC}.{_q(time_col)})" if has_time else f"{SRC}.__seq"
    cols = [f"{time_sql} AS __t", f"{SRC}.__seq AS __s"]
    if _uses_frontier(plan):
        cols.append(f"{SRC}.__e AS __e")
    cols += [f"{k} AS __k{j}" for j, k in enumerate(agg.keys)]
    cols += [f"{a} AS __a{n}" for n, a in enumerate(agg.args)]
    return f"SELECT {', '.join(cols)} {_from(plan)}"


def _key_cols(plan: LogicalPlan) -> list[str]:
    assert plan.aggregate is not None
    return (["__ws"] if plan.window else []) + [f"__k{j}" for j in range(len(plan.aggregate.keys))]


def _partial_names(plan: LogicalPlan) -> list[list[str]]:
    assert plan.aggregate is not None
    return [[f"__p{i}_{j}" for j in range(len(c.spec.partials))] for i, c in enumerate(plan.aggregate.calls)]


def _render(template: str, call: PlannedAggregate, states: list[str] | None = None,
            floats: frozenset[str] = frozenset()) -> str:
    """An aggregate's template (see :mod:`sinkflow.sql.aggregates`) over the pre-projection columns;
    ``floats`` are the floating-point argument columns, summed with the compensated ``fsum``."""
    return render(template, call.arg_columns, states=states or (), time="__t", seq="__s",
                  sum_function="fsum" if floats.intersection(call.arg_columns) else "sum", level=call.level)


def _group_by(keys: list[str]) -> str:
    return f" GROUP BY {', '.join(keys)}" if keys else ""


def _state_columns(plan: LogicalPlan, step: Literal["partials", "merges"], floats: frozenset[str]) -> list[str]:
    """Every aggregate's state columns ``__p<i>_<j>`` computed by its ``step`` templates: "partials"
    (over the pre-projection rows) or "merges" (over state columns of the same names)."""
    assert plan.aggregate is not None
    names = _partial_names(plan)
    return [
        f"{_render(t, call, names[i] if step == 'merges' else None, floats)} AS {names[i][j]}"
        for i, call in enumerate(plan.aggregate.calls)
        for j, t in enumerate(getattr(call.spec, step))
    ]


_SESSION_STATES = ("min(__t) AS __sstart", "max(__t) AS __slast")
_SESSION_MERGES = ("min(__sstart) AS __sstart", "max(__slast) AS __slast")


def _fold_sql(plan: LogicalPlan, floats: frozenset[str]) -> str:
    aggs = _state_columns(plan, "partials", floats)
    w = plan.window
    if w is not None and w.kind == "session":
        aggs += _SESSION_STATES
    if plan.state_ttl_us is not None:
        aggs.append("max(__t) AS __lt")  # the group's newest row, for aggregate_state_ttl_sec
    if plan.emit.tracks_updates:
        aggs.append("true AS __u")  # the group changed since the last emit
    keys = _key_cols(plan)
    select = ", ".join(keys + aggs)
    pre = _pre_sql(plan)
    if w is None:
        return f"WITH __pre AS ({pre}) SELECT {select} FROM __pre{_group_by(keys)}"
    if w.kind == "session" and w.start_condition:
        # Rows belong to the sessions a SessionAssigner chose for them (``__assign``).
        return f"WITH __pre AS ({pre}) SELECT {select} FROM __pre JOIN __assign USING (__s){_group_by(keys)}"
    if w.kind == "session":
        return _session_fold_sql(plan, pre, select, keys)
    base = f"(__t - ((__t % {w.slide_us}) + {w.slide_us}) % {w.slide_us})"
    if w.kind == "tumble":
        win = f"SELECT *, {base} AS __ws FROM __pre"
        return f"WITH __pre AS ({pre}) SELECT {select} FROM ({win}) WHERE __ws + {w.size_us} > __e{_group_by(keys)}"
    copies = -(-w.size_us // w.slide_us)
    win = f"SELECT *, {base} - __h.i * {w.slide_us} AS __ws FROM __pre, range({copies}) AS __h(i)"
    # Only windows still open when the row's batch arrived; each copy's window must contain the row.
    cond = f"__ws + {w.size_us} > __e AND __ws + {w.size_us} > __t"
    return f"WITH __pre AS ({pre}), __win AS ({win}) SELECT {select} FROM __win WHERE {cond}{_group_by(keys)}"


def _session_fold_sql(plan: LogicalPlan, pre: str, select: str, keys: list[str]) -> str:
    """The fold of a session window: each row continues its key's open session (``__sessions``:
    ``__k<j>``, the session id ``__ws`` and its newest time ``__slast``) or the previous row's,
    when less than the timeout after it, else it starts a session whose id is its own sequence
    number. Rows whose session closed before their batch arrived (``__e``) are late."""
    assert plan.window is not None
    timeout = plan.window.size_us
    group = [k for k in keys if k != "__ws"]
    match = " AND ".join(f"p.{k} IS NOT DISTINCT FROM o.{k}" for k in group) or "true"
    part = f"PARTITION BY {', '.join(group)} " if group else ""
    open_ = (f"SELECT * FROM __sessions QUALIFY row_number() OVER ({part}ORDER BY __slast DESC) = 1" if group
             else "SELECT * FROM __sessions ORDER BY __slast DESC LIMIT 1")
    joined = (f"SELECT p.*, o.__ws AS __osid, o.__sstart AS __ostart, o.__slast AS __olast "
              f"FROM __pre p LEFT JOIN __open o ON {match}")
    gaps = (f"SELECT *, CASE WHEN __prev IS NULL THEN __olast IS NULL OR __t - __olast >= {timeout} "
            f"ELSE __t - __prev >= {timeout} END AS __new "
            f"FROM (SELECT *, lag(__t) OVER ({part}ORDER BY __t, __s) AS __prev FROM __joined)")
    sid = "__sid" if plan.window.max_us else "__ws"
    ids = (f"SELECT *, coalesce(max(CASE WHEN __new THEN __s END) OVER ({part}ORDER BY __t, __s "
           f"ROWS UNBOUNDED PRECEDING), __osid) AS {sid} FROM __gaps")
    steps = f"__pre AS ({pre}), __open AS ({open_}), __joined AS ({joined}), __gaps AS ({gaps}), __ids AS ({ids})"
    if plan.window.max_us:
        # A session at its max length goes on as a new one: rows max_length or more after its
        # start form the next session (its id: the sequence number of its first row).
        by = ", ".join([*group, "__sid"])
        starts = (f"SELECT *, CASE WHEN __sid IS NOT DISTINCT FROM __osid THEN __ostart "
                  f"ELSE min(__t) OVER (PARTITION BY {by}) END AS __start FROM __ids")
        split = (f"SELECT *, CASE WHEN __part = 0 THEN __sid ELSE min(__s) OVER (PARTITION BY {by}, __part) END AS __ws "
                 f"FROM (SELECT *, (__t - __start) // {plan.window.max_us} AS __part FROM __starts)")
        steps += f", __starts AS ({starts}), __split AS ({split})"
        last = "__split"
    else:
        last = "__ids"
    # Late: the row's session closed before it came, by the query's frontier, or with PARTITION BY by
    # its key's (the newest time of the key's open session, less the delay).
    frontier = f"coalesce(__olast - {plan.emit.delay_us}, {-2**62})" if plan.window.per_key else "__e"
    return f"WITH {steps} SELECT {select} FROM {last} WHERE __t + {timeout} > {frontier}{_group_by(keys)}"


def _session_rows_sql(plan: LogicalPlan) -> str:
    """The rows a session window with conditions assigns (on time for their batch's frontier)."""
    assert plan.window is not None and plan.aggregate is not None
    w = plan.window
    keys = "".join(f", __k{j}" for j in range(len(plan.aggregate.keys)))
    pre = _pre_sql(plan).replace(" FROM ", f", ({w.start_condition}) AS __cs, ({w.end_condition}) AS __ce FROM ", 1)
    late = "" if w.per_key else f" WHERE __t + {w.size_us} > __e"  # per key: the assigner's to judge
    return f"SELECT __t, __s{keys}, __cs, __ce FROM ({pre}){late}"


def session_schema(plan: LogicalPlan, partials: pa.Schema) -> pa.Schema:
    """The schema of ``__sessions`` (the open sessions a session fold continues), from the partials'."""
    return pa.schema([partials.field(n) for n in (*_key_cols(plan), "__sstart", "__slast")])


def _merge_sql(plan: LogicalPlan, floats: frozenset[str]) -> str:
    merges = _state_columns(plan, "merges", floats)
    if plan.window is not None and plan.window.kind == "session":
        merges += _SESSION_MERGES
    if plan.state_ttl_us is not None:
        merges.append("max(__lt) AS __lt")
    if plan.emit.tracks_updates:
        merges.append("bool_or(__u) AS __u")
    keys = _key_cols(plan)
    return (
        f"SELECT {', '.join(keys + merges)} FROM (SELECT * FROM __state UNION ALL SELECT * FROM __fold)"
        f"{_group_by(keys)}"
    )


def _final_sql(plan: LogicalPlan, result_types: list[str]) -> str:
    """Finish merged partials (already sorted, with window bounds: see :func:`closing_input`).

    No ORDER BY: DuckDB keeps the input order of a projection and filter, and sorting the small
    partial table with Arrow beforehand is cheaper."""
    cols = ", ".join(f"{sql} AS {_q(name)}" for name, sql in plan.projection)
    if plan.emit.changelog:
        cols += "".join(f", {k}" for k in _key_cols(plan))  # which group each row is: to retract it later
    where = f" WHERE {plan.having}" if plan.having else ""
    finished = _finished_sql(plan, result_types)
    if plan.lags:
        # lag() looks back over the emitted rows: the last ones of earlier emits come first (__ocarry).
        lags = ", ".join(f"lag({x}, {n}, {default}) OVER (ORDER BY __o) AS __lag{i}"
                         for i, (x, n, default) in enumerate(plan.lags))
        return f"SELECT {cols} FROM (SELECT *, {lags} FROM ({_emitted_rows(finished, where)})) WHERE NOT __carried ORDER BY __o"
    return f"SELECT {cols} FROM ({finished}){where}"


def _emitted_rows(finished: str, where: str) -> str:
    """This emit's finished rows (numbered ``__o`` from 1) after the rows carried from earlier emits."""
    return (f"SELECT *, false AS __carried, row_number() OVER () AS __o FROM ({finished}){where} "
            f"UNION ALL BY NAME SELECT *, true AS __carried FROM __ocarry")


def _finished_sql(plan: LogicalPlan, result_types: list[str]) -> str:
    """The merged partials of ``__closing`` with each aggregate's result ``__f<i>``."""
    agg = plan.aggregate
    assert agg is not None
    names = _partial_names(plan)
    inner = ["*"] + [
        f"CAST({_render(call.spec.final, call, names[i])} AS {result_types[i]}) AS __f{i}"
        for i, call in enumerate(agg.calls)
    ]
    return f"SELECT {', '.join(inner)} FROM __closing"


def _output_carry_sql(plan: LogicalPlan, result_types: list[str]) -> str:
    """The emitted rows an aggregation with lag() carries to its next emit, numbered -n..-1."""
    depth = max(n for _, n, _ in plan.lags)
    where = f" WHERE {plan.having}" if plan.having else ""
    finished = _finished_sql(plan, result_types)
    last = (f"SELECT * EXCLUDE (__carried) FROM ({_emitted_rows(finished, where)}) "
            f"QUALIFY row_number() OVER (ORDER BY __o DESC) <= {depth}")
    return f"SELECT * EXCLUDE (__o), (row_number() OVER (ORDER BY __o) - 1 - count(*) OVER ())::BIGINT AS __o FROM ({last})"


def closing_input(plan: LogicalPlan, partials: pa.Table, version: int = 0) -> pa.Table:
    """Merged partials ready for the final query: ordered by window and group keys (the output
    order), with the window bounds ``__ws_ts``/``__we_ts`` as UTC datetimes, the emit's number
    ``__emit_version`` (``version``) and, for a changelog, ``__tp_delta`` = 1."""
    keys = _key_cols(plan)
    if keys and partials.num_rows > 1:
        try:
            partials = partials.sort_by([(k, "ascending") for k in keys])
        except pa.ArrowNotImplementedError:  # keys Arrow cannot sort (nested types): let DuckDB
            con = connect()
            con.register("__p", partials)
            partials = con.sql(f"SELECT * FROM __p ORDER BY {', '.join(keys)}").to_arrow_table()
            con.close()
    if plan.window is not None:
        # A session spans its rows, and ends its timeout after the last one.
        ws = partials.column("__sstart" if plan.window.kind == "session" else "__ws")
        if "__send" in partials.column_names:  # where a session with conditions ended
            end = partials.column("__send")
        elif plan.window.kind == "session":
            # At the timeout after its last row, or at its max length if that comes first.
            end = pc.min_element_wise(pc.add(partials.column("__slast"), plan.window.size_us),
                                      pc.add(ws, plan.window.max_us))
        else:
            end = pc.add(ws, plan.window.size_us)
        partials = partials.append_column("__ws_ts", ws.cast(_BOUND_TYPE)).append_column(
            "__we_ts", end.cast(_BOUND_TYPE))
    partials = partials.append_column("__emit_version", pa.repeat(pa.scalar(version, pa.int64()), partials.num_rows))
    if plan.emit.changelog:
        partials = partials.append_column("__tp_delta", pa.repeat(pa.scalar(1, pa.int8()), partials.num_rows))
    return partials


def _float_args(con: duckdb.DuckDBPyConnection, plan: LogicalPlan) -> frozenset[str]:
    """The aggregate argument columns (``__a<n>``) of a floating-point type."""
    rows = con.sql(f"DESCRIBE {_pre_sql(plan)}").fetchall()
    return frozenset(str(r[0]) for r in rows if str(r[0]).startswith("__a") and str(r[1]) in ("FLOAT", "DOUBLE"))


def _result_types(con: duckdb.DuckDBPyConnection, plan: LogicalPlan, floats: frozenset[str]) -> list[str]:
    """The DuckDB type of each aggregate's one-shot form (64-bit where DuckDB widens to 128)."""
    agg = plan.aggregate
    assert agg is not None
    if not agg.calls:
        return []
    refs = ", ".join(f"{_render(c.spec.direct, c, floats=floats)} AS r{i}" for i, c in enumerate(agg.calls))
    rows = con.sql(f"DESCRIBE WITH __pre AS ({_pre_sql(plan)}) SELECT {refs} FROM __pre").fetchall()
    return [_NARROW.get(str(r[1]), str(r[1])) for r in rows]


def _stored_type(sql: str, inputs: dict[str, dict[str, pa.DataType]]) -> pa.DataType | None:
    """The stored type of a plain column reference (DuckDB would widen e.g. ms datetimes to µs)."""
    m = _PASSTHROUGH.match(sql)
    if m is None:
        return None
    return inputs.get(m.group(1), {}).get(m.group(2).replace('""', '"'))


def _kept_types(plan: LogicalPlan, inputs: dict[str, dict[str, pa.DataType]]) -> dict[str, pa.DataType]:
    """Output placeholders (``__k<j>``, ``__f<i>``) that carry a stored column's values unchanged."""
    kept: dict[str, pa.DataType] = {}
    if plan.aggregate is None:
        return kept
    for j, key in enumerate(plan.aggregate.keys):
        if (typ := _stored_type(key, inputs)) is not None:
            kept[f"__k{j}"] = typ
    for i, call in enumerate(plan.aggregate.calls):
        if call.spec.keeps_type and call.arg_columns:
            arg = plan.aggregate.args[int(call.arg_columns[0][3:])]
            if (typ := _stored_type(arg, inputs)) is not None:
                kept[f"__f{i}"] = typ
    return kept


def _normalize(schema: pa.Schema, plan: LogicalPlan, inputs: dict[str, dict[str, pa.DataType]]) -> pa.Schema:
    """Timeplus types for DuckDB's output: plain strings, UTC datetimes, window bounds in ms, stored columns' own types."""
    fields = []
    kept = _kept_types(plan, inputs)
    for f, (_, sql) in zip(schema, plan.projection):
        typ = f.type
        stored = _stored_type(sql, inputs) or kept.get(sql)
        if stored is not None:
            typ = stored
        elif sql in ("__ws_ts", "__we_ts", "__window_start", "__window_end"):
            typ = _WINDOW_TS
        elif pa.types.is_large_string(typ) or pa.types.is_string_view(typ):
            typ = pa.string()
        elif pa.types.is_decimal(typ) and (typ.precision, typ.scale) == (38, 0) and " OVER (" in sql:
            typ = pa.int64()  # a window function's integer sum: DuckDB widens it to 128 bits, Timeplus keeps 64
        elif pa.types.is_timestamp(typ):
            typ = pa.timestamp(typ.unit, tz="UTC")
        fields.append(pa.field(f.name, typ, nullable=True))
    return pa.schema(fields)


def _passthrough(plan: LogicalPlan, raw: pa.Schema, output: pa.Schema) -> tuple[str, ...] | None:
    """The source column of each output column when every one is a source column as stored and
    the query neither filters, windows, joins nor aggregates (else None): such a query's result
    is its input's columns, selected without running DuckDB."""
    if plan.aggregate is not None or plan.window is not None or plan.lookups or plan.where:
        return None
    names: list[str] = []
    for out, (_, sql) in zip(output, plan.projection):
        m = _PASSTHROUGH.match(sql)
        if m is None or m.group(1) != SRC:
            return None
        name = m.group(2).replace('""', '"')
        index = raw.get_field_index(name)
        if index < 0 or name == "__seq" or raw.field(index).type != out.type:
            return None
        names.append(name)
    return tuple(names)


# DuckDB's names of the aggregates whose Timeplus names differ.
_DUCK_NAMES = {"fsum": "sum", "quantile_cont": "quantile", "list": "group_array", "any_value": "any"}


def _duck_error(err: duckdb.Error, sql: str) -> SqlError:
    """DuckDB's reason, placed at the call it names in ``sql`` when it names one."""
    text = str(err).split("\n")[0]
    match = re.search(r"argument types '(\w+)\(", text)
    if match:
        name = _DUCK_NAMES.get(match.group(1), match.group(1))
        call = re.search(rf"\b{re.escape(name)}\s*\(", sql, flags=re.IGNORECASE)
        if call:
            return located(f"the query cannot run: {text}", position_at(sql, call.start()))
    return SqlError(f"the query cannot run: {text}")


def _union_position(sql: str, query: int) -> Position | None:
    """Where query number ``query`` (from 2) of a UNION ALL starts: its ``UNION ALL`` keyword."""
    unions = list(re.finditer(r"\bunion\s+all\b", sql, flags=re.IGNORECASE))
    return position_at(sql, unions[query - 2].start()) if len(unions) >= query - 1 else None


def _numeric(typ: pa.DataType) -> bool:
    return pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ)


def _null_column(plan: Plan, index: int) -> bool:
    """Whether output column ``index`` of ``plan`` is the literal NULL (a SELECT's ``NULL AS x``)."""
    return (isinstance(plan, QueryPlan) and plan.logical.aggregate is None
            and plan.logical.projection[index][1].strip().upper() == "NULL")


def compile_union(union: UnionAll, inputs: list[Plan]) -> UnionPlan:
    """The plan of ``UNION ALL`` over compiled ``inputs``; raises :class:`SqlError` when they do
    not have the same number of columns, or a column's types cannot meet. A column that is the
    literal NULL in a query takes the type the others give it (as Proton makes it nullable)."""
    first = inputs[0]
    for i, plan in enumerate(inputs[1:], start=2):
        if len(plan.columns) != len(first.columns):
            raise located(f"UNION ALL: query {i} has {len(plan.columns)} column(s), the first has {len(first.columns)}",
                          _union_position(union.sql, i))
    columns: list[Column] = []
    for j, mine in enumerate(first.columns):
        typed = [(i, p.columns[j]) for i, p in enumerate(inputs, start=1) if not _null_column(p, j)]
        kind = typed[0][1].type if typed else mine.type
        for i, theirs in typed:
            a, b = kind.arrow, theirs.type.arrow
            if a != b and not (_numeric(a) and _numeric(b)) and not (pa.types.is_timestamp(a) and pa.types.is_timestamp(b)):
                where = "the first query" if typed[0][0] == 1 else f"query {typed[0][0]}"
                raise located(f"UNION ALL: column '{mine.name}' is {kind.name} in {where} and "
                              f"{theirs.type.name} in query {i}; cast one of them", _union_position(union.sql, i))
        columns.append(replace(mine, type=kind))
    if columns == list(first.columns):
        return UnionPlan(union.sql, tuple(inputs), first.output_schema, list(first.columns))
    schema = pa.schema([pa.field(c.name, c.type.arrow, nullable=True) for c in columns])
    return UnionPlan(union.sql, tuple(inputs), schema, columns)


def compile_plan(plan: LogicalPlan, dim_schemas: list[pa.Schema], input_plan: Plan | None = None) -> QueryPlan:
    """Generate the DuckDB queries of ``plan`` and infer its output schema by running them on empty input.

    Raises :class:`SqlError` when DuckDB rejects the generated SQL (e.g. a type mismatch such as
    ``sum`` over a string column), quoting DuckDB's reason, or when a result type has no Timeplus
    counterpart.
    """
    con = connect()
    raw = raw_schema(plan)
    sessions: pa.Schema | None = None
    rows_sql: str | None = None
    tick = 1
    carry: str | None = None
    carry_schema: pa.Schema | None = None
    con.register("__raw", raw.empty_table())
    for name, subquery in plan.subqueries:
        con.register(name, subquery.output_schema.empty_table())
    inputs: dict[str, dict[str, pa.DataType]] = {SRC: {c.name: c.type.arrow for c in plan.input_columns}}
    for lk, schema in zip(plan.lookups, dim_schemas):
        con.register(lk.relation, schema.empty_table())
        inputs[lk.relation] = {f.name: f.type for f in schema}
    try:
        if plan.aggregate is None:
            stateless = _stateless_sql(plan)
            if plan.lags:
                con.register("__carry", raw.empty_table())
            out = con.sql(stateless).to_arrow_table().schema
            fold = merge = final = None
        else:
            stateless = None
            floats = _float_args(con, plan)
            fold = _fold_sql(plan, floats)
            if plan.window is not None and plan.window.start_condition:
                rows_sql = _session_rows_sql(plan)
                con.sql(rows_sql).to_arrow_table()  # a condition DuckDB rejects is an error now
                con.register("__assign", pa.schema([("__s", pa.int64()), ("__ws", pa.int64())]).empty_table())
                unit = {c.name: c.type.arrow for c in plan.input_columns}[plan.window.time_column].unit
                tick = {"s": 1_000_000, "ms": 1000}.get(unit, 1)
            if plan.window is not None and plan.window.kind == "session":
                keys = "".join(f", __k{j}" for j in range(len(plan.aggregate.keys)))
                empty = con.sql(f"SELECT 0::BIGINT AS __ws{keys}, 0::BIGINT AS __sstart, 0::BIGINT AS __slast "
                                f"FROM ({_pre_sql(plan)}) WHERE false").to_arrow_table()
                con.register("__sessions", empty)
            partial = con.sql(fold).to_arrow_table().slice(0, 0)
            if plan.window is not None and plan.window.kind == "session":
                sessions = session_schema(plan, partial.schema)
            merge = _merge_sql(plan, floats)
            result_types = _result_types(con, plan, floats)
            final = _final_sql(plan, result_types)
            con.register("__closing", closing_input(plan, partial))
            if plan.lags:
                carry = _output_carry_sql(plan, result_types)
                empty = con.sql(f"SELECT *, 0::BIGINT AS __o FROM ({_finished_sql(plan, result_types)}) WHERE false")
                carry_schema = empty.to_arrow_table().schema
                con.register("__ocarry", carry_schema.empty_table())
            con.register("__state", partial)
            con.register("__fold", partial)
            con.sql(merge).to_arrow_table()
            out = con.sql(final).to_arrow_table().schema
    except duckdb.Error as err:
        raise _duck_error(err, plan.sql) from None
    finally:
        con.close()
    full = _normalize(out, plan, inputs)
    schema = pa.schema(list(full)[:len(full) - plan.hidden])
    try:
        columns = [Column(f.name, from_arrow(f.type)) for f in schema]
    except InvalidInput as err:
        raise SqlError(err.message) from None
    passthrough = _passthrough(plan, raw, schema) if stateless is not None and not plan.hidden else None
    upstream = (input_plan,) if input_plan is not None else ()
    return QueryPlan(plan, schema, columns, raw, stateless, fold, merge, final, passthrough, upstream, sessions,
                     full if plan.hidden else None, carry, carry_schema, rows_sql, tick)
