"""The logical plan of a streaming SELECT: names resolved, types checked, expressions in DuckDB SQL.

:func:`build_plan` turns a Timeplus SELECT into a :class:`LogicalPlan` the engine executes. It
resolves streams and columns against the stream store (unknown ones are errors naming them, with
their position), recognises the streaming constructs (``tumble``/``hop``/``dedup``/``table()``,
``EMIT``, ``SETTINGS``), collects the aggregate calls (each described in :mod:`sinkflow.sql.aggregates`)
and translates every scalar expression to DuckDB (via :mod:`sinkflow.sql.functions`).

Relation names in the generated SQL: the source rows are ``__src`` (with ``__seq``, the log
sequence number of each row), lookup dimensions ``__dim0``, ``__dim1`` …. An aggregated query's
projection refers to ``__ws_ts``/``__we_ts`` (window bounds), ``__k<j>`` (group keys) and
``__f<i>`` (finished aggregates).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Literal, Protocol

import pyarrow as pa
from sqlglot import exp

from sinkflow.errors import NotFound, Position, SqlError
from sinkflow.sql.aggregates import AGGREGATES, RETRACTING, Aggregate
from sinkflow.sql.functions.convert import WINDOW_FUNCTIONS
from sinkflow.sql.functions.kinds import BOOL, DECIMAL, FLOAT, INT, STRING, kind_of
from sinkflow.sql.functions import AggregateCall, aggregate_call, check_functions, function_name, is_aggregate, to_duckdb
from sinkflow.sql.parse import DIALECT, SESSION_CALL, SESSION_RANGE, EmitClause, ParsedSelect, interval_from_text, interval_micros, parse_select
from sinkflow.sql.positions import error_at, located, node_position, position_at
from sinkflow.sql.table_functions import ONE_ROW, generated_columns, generated_source, is_generated
from sinkflow.streams.store import StreamSettings
from sinkflow.streams.types import TP_TIME, Column, parse_type

SRC = "__src"
WINDOW_COLUMNS = ("window_start", "window_end")
#: Unquoted names Proton reads as float literals when no column has them (``SELECT nan, -inf``).
_FLOAT_WORDS = {"nan": "nan", "inf": "inf"}
DEFAULT_PERIOD_US = 2_000_000
#: Rows a join of two streams holds at most (both sides), unless SETTINGS join_max_buffered_rows says otherwise.
DEFAULT_JOIN_ROWS = 10_000_000
#: The row's sequence number in its stream's log, a hidden column of every stream.
SEQUENCE_COLUMN = "_tp_sn"
#: The metadata columns of a Kafka external stream read as a source, Timeplus's virtual columns:
#: the message's key and headers, its partition, and its offset, which stands in for the
#: stream's own sequence number as ``_tp_sn``. ``SELECT *`` leaves them out, as Timeplus does.
KAFKA_METADATA_COLUMNS = ("_tp_message_key", "_tp_message_headers", "_tp_shard", SEQUENCE_COLUMN)
_SHARD = KAFKA_METADATA_COLUMNS[2]
#: The column a RIGHT or FULL join outputs for a USING column ``k`` read unqualified: ``__using_k``.
USING_PREFIX = "__using_"
#: +1 (a row) or -1 (a retraction of a row emitted before) in an EMIT CHANGELOG query's output.
DELTA_COLUMN = "_tp_delta"
_SETTINGS = ("seek_to", "idle_timeout", "query_mode", "join_max_buffered_rows", "aggregate_state_ttl_sec",
             "join_use_nulls", "join_default_strictness")
#: Settings of a materialized view written in its query's SETTINGS: ``pause_on_start`` (applied
#: by the runtime when it creates the view), and Timeplus's placement and replication of a view in
#: a cluster (``memory_weight``, ``preferred_exec_node``, ``checkpoint_settings``), which a single
#: server has no use for (docs/pipelines.md).
VIEW_SETTINGS = frozenset({"pause_on_start", "memory_weight", "preferred_exec_node", "mv_preferred_exec_node",
                           "checkpoint_settings"})
#: Proton settings that tune its own execution (threads, hash tables, shards, backfill); sinkflow
#: accepts them so statements written for Proton run, and they change nothing (docs/sql.md).
_TUNING_SETTINGS = frozenset({
    "max_threads", "keep_versions", "join_max_buffered_bytes", "join_algorithm", "substreams", "shards",
    "default_hash_table", "default_hash_join", "max_hot_keys",
    "enable_backfill_from_historical_store", "emit_during_backfill", "force_backfill_in_order",
    "max_block_size", "enable_optimize_predicate_expression", "asterisk_include_reserved_columns",
    "enable_dependency_check", "checkpoint_interval", "recovery_policy", "join_buffered_data_block_size",
    "join_max_cached_bytes", "allow_independent_shard_processing",
    # ClickHouse's performance knobs, which change how a query runs but never its answer.
    "optimize_aggregation_in_order", "optimize_read_in_order", "optimize_move_to_prewhere",
    "max_bytes_before_external_sort", "max_bytes_before_external_group_by", "max_memory_usage",
    "max_insert_threads", "min_insert_block_size_rows", "max_insert_block_size", "use_skip_indexes",
    "force_data_skipping_indices", "read_backoff_min_latency_ms", "read_backoff_min_interval_between_events_ms",
    "read_backoff_min_events", "read_backoff_min_concurrency", "read_backoff_max_throughput",
    "merge_tree_min_rows_for_concurrent_read", "merge_tree_min_bytes_for_concurrent_read",
    "allow_experimental_projection_optimization", "remerge_sort_lowered_memory_bytes_ratio", "fsync_after_insert",
    "local_filesystem_read_prefetch", "read_in_order_two_level_merge_threshold", "mutations_sync",
    "output_format_write_statistics", "short_circuit_function_evaluation", "max_streams_to_max_threads_ratio",
    "optimize_trivial_count_query", "optimize_functions_to_subcolumns", "compile_expressions",
    "min_count_to_compile_expression", "group_by_two_level_threshold", "group_by_two_level_threshold_bytes",
    "distributed_aggregation_memory_efficient", "max_bytes_in_join", "max_rows_in_join", "log_queries",
    "send_logs_level", "max_execution_time", "convert_query_to_cnf", "optimize_using_constraints",
})


class StreamLookup(Protocol):
    """What the planner needs from the stream store: a stream's columns by name (NotFound if none)."""

    def get(self, name: str) -> _HasColumns: ...


class _HasColumns(Protocol):
    columns: list[Column]
    settings: StreamSettings


class CompiledInput(Protocol):
    """What the planner needs from a planned subquery, CTE or UNION: its output columns, whether
    it ends, and the streams it reads."""

    @property
    def columns(self) -> list[Column]: ...

    @property
    def bounded(self) -> bool: ...

    @property
    def sources(self) -> list[str]: ...


#: Compiles a planned subquery (its output columns come from running it on empty input).
Compiler = Callable[["LogicalPlan | UnionAll | JoinSpec | ChangelogSpec"], CompiledInput]


@dataclass(frozen=True)
class SourceSpec:
    """The stream a query reads; ``bounded`` for ``table(stream)``; ``seek_to`` is 'earliest', 'latest',
    an ISO time or ``-<n>us`` (that long before the query starts)."""

    stream: str
    bounded: bool
    seek_to: str
    #: The compiled subquery, CTE or UNION read instead of a stream (``stream`` is then its name).
    input: Any = None


@dataclass(frozen=True)
class WindowSpec:
    """A ``tumble`` (slide == size) or ``hop`` window over ``time_column``, aligned to the epoch;
    or a ``session`` window: per group key, rows less than ``size_us`` (the timeout) apart, at
    most ``max_us`` long."""

    kind: Literal["tumble", "hop", "session"]
    time_column: str
    size_us: int
    slide_us: int
    max_us: int = 0
    #: A session's start and end conditions (DuckDB SQL over the input rows; "" for none): a
    #: session opens at a row meeting ``start_condition`` and closes at one meeting
    #: ``end_condition``; ``include_start``/``include_end`` say whether those rows belong to it.
    start_condition: str = ""
    end_condition: str = ""
    include_start: bool = True
    include_end: bool = True
    #: A session window with PARTITION BY: each key's sessions close by that key's own watermark
    #: (its newest event time), as Proton's substreams do.
    per_key: bool = False


@dataclass(frozen=True)
class DedupSpec:
    """``dedup(stream, keys…, ttl, max_keys)``: a row whose key was seen within ``ttl_us`` of event
    time is dropped; at most ``max_keys`` keys are remembered (the oldest are forgotten first)."""

    keys: tuple[str, ...]
    ttl_us: int | None
    time_column: str
    max_keys: int | None = None


#: A join's kind: RIGHT and FULL only in bounded queries, whose every input row is read before they run.
JoinKind = Literal["INNER", "LEFT", "RIGHT", "FULL"]
_JOIN_WORDS = frozenset({"INNER", "LEFT", "RIGHT", "FULL", "OUTER", "CROSS", "ALL", "ANY", "SEMI", "ANTI", "ASOF"})
#: How many matches of a row a join keeps (see :attr:`JoinSpec.strictness`).
JoinStrictness = Literal["ALL", "ANY", "SEMI", "ANTI", "ASOF"]


@dataclass(frozen=True)
class Lookup:
    """A JOIN of the query's input with a dimension built from a stream's rows at processing
    time, registered as ``relation``: ``table(stream)`` (every row), a versioned_kv stream (its
    newest row per primary key), the right side of ``LATEST JOIN`` (its newest row per join key)
    or of ``ASOF JOIN`` (DuckDB's ASOF join: the closest row by the inequality). ``view`` is the
    DuckDB SQL building the dimension from the stream's rows ``__dimsrc`` ("" for all of them).
    A CROSS JOIN is an INNER one ``on`` true."""

    stream: str
    relation: str
    kind: JoinKind
    on: str
    view: str = ""
    asof: bool = False


@dataclass(frozen=True)
class ChangelogSpec:
    """``changelog(stream, key…[, version])``: the input's rows as a changelog by ``keys`` — a row
    whose key was seen retracts that key's previous row first (``_tp_delta`` −1, then +1). The
    input is ``source`` (a stream) or ``input`` (a compiled subquery or CTE)."""

    sql: str
    source: SourceSpec
    input: Any
    columns: tuple[Column, ...]
    keys: tuple[str, ...]


@dataclass(frozen=True)
class JoinSpec:
    """A join of two streams, both unbounded (Timeplus's bidirectional join): a new row on either
    side meets the rows the other side holds. ``on`` is DuckDB SQL over ``__l`` and ``__r``;
    ``within_us`` (``date_diff_within``) bounds the time between matching rows' ``left_time``
    and ``right_time``, and so how long each side's rows are held."""

    sql: str
    left: SourceSpec
    right: SourceSpec
    left_columns: tuple[Column, ...]
    right_columns: tuple[Column, ...]
    kind: JoinKind
    on: str
    within_us: int | None
    left_time: str
    right_time: str
    max_buffered_rows: int
    #: Compiled plans read instead of the streams (a CTE, a subquery, an earlier join); None: the stream.
    left_input: Any = None
    right_input: Any = None
    #: What the right side's column names are prefixed with in the output.
    right_prefix: str = "__r_"
    #: ClickHouse's strictness: "ALL" (every match), "ANY" (one match per row), "SEMI" (rows with
    #: a match, one each), "ANTI" (rows without one), "ASOF" (the closest match by ON's inequality).
    #: Only a bounded join has other than "ALL".
    strictness: JoinStrictness = "ALL"
    #: Both sides end (a query_mode='table' or table() query): the join runs once when both ended.
    bounded: bool = False
    #: ``join_use_nulls``: a side without a match is NULLs; else (Proton's default) each of its
    #: columns holds its type's default value (0, '', …), NULL only for a nullable column.
    use_nulls: bool = False
    #: The columns of ``USING``: unqualified, each is the left side's value, or the right side's on
    #: a row of the right side only (RIGHT and FULL joins).
    using: tuple[str, ...] = ()
    #: Both sides are changelogs (keyed streams: versioned_kv, changelog_kv): a side's retraction
    #: takes its row out of the held rows and retracts the joined rows it made (``_tp_delta``).
    changelog: bool = False


@dataclass(frozen=True)
class PlannedAggregate:
    """One aggregate call: its description, the pre-projection columns holding its arguments and
    its quantile level (SQL text, "" if none)."""

    spec: Aggregate
    arg_columns: tuple[str, ...]
    level: str = ""

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class AggregateSpec:
    """Group keys (``__k<j>``) and arguments (``__a<n>``) as DuckDB SQL over the input, plus the calls (``__f<i>``)."""

    keys: tuple[str, ...]
    args: tuple[str, ...]
    calls: tuple[PlannedAggregate, ...]


@dataclass(frozen=True)
class EmitSpec:
    """When results come out.

    ``mode``: per row ('rows'); when the watermark passes a window ('watermark'); every
    ``period_us`` of processing time when rows arrived since the last emit, every time with
    ``repeat`` ('periodic', global aggregation); the groups changed since the last emit, after
    each step or every ``period_us`` when not 0 ('update'); once at the end of a bounded query
    ('final'). A window's ``early`` results come before it closes: 'periodic' (every open
    window, every ``period_us``) or 'update' (changed groups only; the window's close then emits
    nothing more). ``changelog``: every emitted row of a group retracts the group's previous row
    first (``_tp_delta`` −1, then +1). ``timeout_us``: open windows close after that long without
    input. ``per_event``: every input row is a step of its own.
    """

    mode: Literal["rows", "watermark", "periodic", "update", "final"]
    delay_us: int = 0
    period_us: int = DEFAULT_PERIOD_US
    repeat: bool = False
    changelog: bool = False
    early: Literal["", "periodic", "update"] = ""
    timeout_us: int | None = None
    per_event: bool = False

    @property
    def tracks_updates(self) -> bool:
        """Whether the partial aggregates mark the groups changed since the last emit."""
        return self.mode == "update" or self.early == "update"


@dataclass(frozen=True)
class LogicalPlan:
    """A resolved streaming SELECT (see the module docstring for the relation names in its SQL)."""

    sql: str
    source: SourceSpec
    dedup: DedupSpec | None
    lookups: tuple[Lookup, ...]
    where: str | None
    window: WindowSpec | None
    aggregate: AggregateSpec | None
    projection: tuple[tuple[str, str], ...]
    having: str | None
    emit: EmitSpec
    idle_timeout: float | None
    limit: int | None
    order_by: tuple[str, ...] = ()
    #: ``LIMIT n BY columns``: at most ``n`` rows per value of the output columns (per emit of
    #: an aggregation; over the whole output otherwise).
    limit_by: tuple[int, tuple[str, ...]] | None = None
    #: Output rows skipped first (``OFFSET``).
    offset: int = 0
    #: Trailing columns of ``projection`` that only ORDER BY reads (``__order<i>``); not output.
    hidden: int = 0
    #: Subqueries in expressions: the relation name (``__sq<i>``) each one's result is read as,
    #: and its compiled (bounded) plan, run when the query starts.
    subqueries: tuple[tuple[str, Any], ...] = ()
    #: ``aggregate_state_ttl_sec``: a global aggregation drops a group whose newest row is older than
    #: this (µs of event time) before the newest row seen.
    state_ttl_us: int | None = None
    #: ``lag(x, n, default)`` calls (DuckDB SQL of x, n, default), output as columns ``__lag<i>``:
    #: the value ``n`` rows before among the rows passing WHERE, across batches; in an aggregation,
    #: ``n`` emitted rows before (x over its keys and aggregates).
    lags: tuple[tuple[str, int, str], ...] = ()
    #: ``PARTITION BY`` of a query without aggregation: lag() looks back within each key's rows.
    lag_partition: tuple[str, ...] = ()
    #: A bounded query that needs every input row at once (window functions ``OVER``, RIGHT or FULL
    #: joins): its input is held until it ends, then processed in one step.
    whole_input: bool = False
    input_columns: tuple[Column, ...] = field(default=())

    @property
    def bounded(self) -> bool:
        return self.source.bounded

    def projection_index(self, sql: str) -> int:
        """The output column computed by ``sql`` exactly (ValueError if none)."""
        return [p for _, p in self.projection].index(sql)

    @property
    def sources(self) -> list[str]:
        first = list(self.source.input.sources) if self.source.input is not None else (
            [] if is_generated(self.source.stream) else [self.source.stream])
        return first + [lk.stream for lk in self.lookups if lk.stream not in first]


@dataclass(frozen=True)
class UnionAll:
    """``UNION ALL`` of queries (each planned on its own), output named as the first one's."""

    sql: str
    inputs: tuple[LogicalPlan | UnionAll, ...]


@dataclass(frozen=True)
class _Scope:
    """What a query may read besides streams: the CTEs defined before it (each with the scope it
    was defined in), the compiler of subqueries, and whether every stream is read as table()."""

    sql: str
    store: StreamLookup
    compile: Compiler
    ctes: dict[str, tuple[exp.Expression, _Scope]]
    bounded: bool = False
    #: The enclosing query's seek_to, which its subqueries' streams start from too.
    seek_to: str | None = None
    #: Its seek_to as Kafka offsets in partition order ('5,3,11'; a single number too), and its
    #: shards setting as written: they apply to the Kafka external streams read (see _kafka_positions).
    partition_offsets: tuple[int, ...] | None = None
    shards: str | None = None


@dataclass
class _Relation:
    name: str  # the DuckDB relation name (__src, __dim0 …)
    labels: set[str]  # names the user may qualify columns with
    stream: str
    columns: dict[str, Column]
    prefix: str = ""  # of its columns' names in the relation (a stream-stream join's right side: __r_)
    using: set[str] = field(default_factory=set)  # USING columns: SELECT * shows them once, from the left


def _dq(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _same_value(first: exp.Expression, later: exp.Expression, name: str) -> bool:
    """Whether output column ``later`` repeats ``first`` (both called ``name``): the same
    expression, or a bare reference to ``first``'s alias."""
    inner = first.this if isinstance(first, exp.Alias) else first
    again = later.this if isinstance(later, exp.Alias) else later
    if isinstance(again, exp.Column) and not again.table and again.name == name and isinstance(first, exp.Alias):
        return True
    return inner == again


def _output_name(node: exp.Expression, written: str | None = None) -> str:
    """An output column's name: its alias, its column name, else the expression as written."""
    if isinstance(node, exp.Alias):
        return node.alias
    if isinstance(node, exp.Column) and isinstance(node.this, exp.Identifier):
        return node.name
    return written if written is not None else node.sql(dialect=DIALECT)


class _Planner:
    """The state of planning one statement: its relations, window, dedup and the aggregate calls
    and argument columns collected so far. Every error it raises is positioned in ``sql``."""

    def __init__(self, scope: _Scope) -> None:
        self.scope = scope
        self.sql = scope.sql
        self.store = scope.store
        self.inputs: dict[str, CompiledInput] = {}
        self.input: CompiledInput | None = None
        self.changelog = False  # EMIT CHANGELOG: _tp_delta names each row's +1/-1
        self.settings_items: list[exp.Expression] = []
        self.lag_calls: list[tuple[exp.Expression, int, exp.Expression | None]] = []  # lag(x, n, default)
        self.lookups = False
        self.aggregating = False  # set from the SELECT before its sources are planned
        self.joined = False  # the input is a join of streams (each side's _tp_sn is a column of it)
        self.subqueries: list[tuple[str, CompiledInput]] = []  # in expressions, as relations __sq<i>
        self.side_seeks: dict[str, str] = {}  # a join's per-side starts from WHERE (by qualifier)
        self.coalesced: set[str] = set()  # USING columns a RIGHT/FULL join outputs coalesced (USING_PREFIX)
        self.relations: list[_Relation] = []
        self.window: WindowSpec | None = None
        self.session_conditions: tuple[exp.Expression, ...] = ()  # a session's (start, end) conditions
        self.dedup: DedupSpec | None = None
        self.bounded = False
        self.call_keys: list[tuple[Aggregate, str, tuple[str, ...]]] = []
        self.args: list[str] = []
        self.planned: list[PlannedAggregate] = []

    def duck(self, node: exp.Expression) -> str:
        """A resolved expression in DuckDB SQL, Timeplus functions translated."""
        schema = {name: col.type for rel in reversed(self.relations) for name, col in rel.columns.items()}
        return _subquery_sql(to_duckdb(node, schema).sql(dialect="duckdb"))

    # -- errors -------------------------------------------------------------------------------
    def err(self, node: exp.Expression | None, message: str) -> SqlError:
        return error_at(node, message)

    # -- sources ------------------------------------------------------------------------------
    def stream_columns(self, name: str, node: exp.Expression) -> list[Column]:
        if name in self.inputs:
            return list(self.inputs[name].columns)
        if is_generated(name):
            return list(generated_columns(name).values())
        try:
            return list(self.store.get(name).columns)
        except NotFound:
            raise self.err(node, f"unknown stream '{name}'") from None

    def _stream_name(self, node: exp.Expression, what: str) -> str:
        outer = "db" if isinstance(node, exp.Column) else "catalog"
        if isinstance(node, (exp.Column, exp.Table)) and not node.args.get(outer) and isinstance(node.this, exp.Identifier):
            return node.name  # db.stream is the stream: one namespace (see docs/sql.md)
        raise self.err(node, f"{what} must name a stream, not '{node.sql(DIALECT)}'")

    def source(self, node: exp.Expression, bounded: bool = False) -> tuple[str, exp.Expression]:
        """Unwrap ``table()``/``dedup()`` around a stream, CTE or subquery; returns its name and
        name node (a CTE or subquery is planned and compiled here, as table() if ``bounded``)."""
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Anonymous):
            node = node.this
        generated = generated_source(node)
        if generated is not None:
            self.bounded = True
            return generated, node
        if isinstance(node, exp.Anonymous):
            fname = function_name(node)
            args = list(node.expressions)
            if fname == "table":
                if len(args) != 1:
                    raise self.err(node, "table() takes one stream name")
                self.bounded = True
                return self.source(args[0], True)
            if fname == "dedup":
                return self.dedup_source(node, args, bounded)
            if fname == "changelog":
                return self.changelog_source(node, args, bounded)
            if fname in ("tumble", "hop", SESSION_CALL):
                written = "session" if fname == SESSION_CALL else fname
                raise self.err(node, f"{written}() must be the outermost source of a query")
            raise self.err(node, f"table function {fname}() is not supported")
        if isinstance(node, exp.Subquery):
            name = node.alias or "subquery"
            return self.subquery(name, node.this, self.scope, bounded), node
        if isinstance(node, (exp.Select, exp.SetOperation)):
            return self.subquery("subquery", node, self.scope, bounded), node
        name = self._stream_name(node, "the source")
        if name in self.scope.ctes and not (isinstance(node, exp.Table) and node.db):
            cte, scope = self.scope.ctes[name]
            return self.subquery(name, cte, scope, bounded), node
        self.stream_columns(name, node)  # an unknown stream is an error naming it here
        if bounded or self.scope.bounded or _table_engine(self.store, name):
            self.bounded = True
            return name, node
        mode, primary_key = _stream_mode(self.store, name)
        if self.aggregating and mode in ("versioned_kv", "mutable") and primary_key:
            # An aggregation over a keyed stream sees each new version retract the previous one.
            return self.changelog_of(name, node, primary_key), node
        return name, node

    def changelog_source(self, node: exp.Anonymous, args: list[exp.Expression], bounded: bool) -> tuple[str, exp.Expression]:
        """``changelog(stream, key…[, version_column][, drop_late_rows])``: record the changelog input."""
        if not args:
            raise self.err(node, "changelog(stream, key_column…[, version_column]) needs a stream")
        if isinstance(args[-1], exp.Boolean):
            args = args[:-1]  # drop_late_rows: rows are kept in arrival order either way
        name, name_node = self.source(args[0], bounded)
        columns = {c.name: c for c in self.stream_columns(name, name_node)}
        named = args[1:]
        for arg in named:
            if not (isinstance(arg, exp.Column) and not arg.table and arg.name in columns):
                raise self.err(arg, f"changelog() takes column names of '{name}', not '{arg.sql(DIALECT)}'")
        keys = tuple(a.name for a in (named[:-1] if len(named) > 1 else named))
        if not keys:
            keys = _stream_mode(self.store, name)[1] if name not in self.inputs else ()
        if not keys:
            raise self.err(node, "changelog() needs the key columns: changelog(stream, key_column…[, version_column])")
        return self.changelog_of(name, name_node, keys), name_node

    def changelog_of(self, name: str, node: exp.Expression, keys: tuple[str, ...]) -> str:
        """Compile the changelog of ``name`` (a stream, or a planned input) by ``keys``; it becomes the input."""
        upstream = self.inputs.get(name)
        columns = tuple(self.stream_columns(name, node))
        source = SourceSpec(name, self.bounded, self.scope.seek_to or "latest")
        spec = ChangelogSpec(f"changelog({name}, {', '.join(keys)})", source, upstream, columns, keys)
        compiled = self.scope.compile(spec)
        self.inputs[name] = compiled
        self.input = compiled
        return name

    def subquery(self, name: str, query: exp.Expression, scope: _Scope, bounded: bool) -> str:
        """Plan and compile a CTE or subquery read as ``name``; a streaming one read through table()
        (``bounded``) reads its streams as table() too."""
        compiled = self.compile_subquery(name, query, scope, bounded)
        self.input = compiled
        if compiled.bounded:
            self.bounded = True
        return name

    def compile_subquery(self, name: str, query: exp.Expression, scope: _Scope, bounded: bool) -> CompiledInput:
        """Plan and compile a CTE or subquery read as ``name`` (see :meth:`subquery`)."""
        if name in self.inputs:
            raise self.err(query, f"'{name}' is read twice in one FROM; give each an alias")
        inner = _plan_query(query, replace(scope, bounded=scope.bounded or bounded or self.scope.bounded,
                                           seek_to=self.scope.seek_to, shards=self.scope.shards,
                                           partition_offsets=self.scope.partition_offsets), None)
        compiled = scope.compile(inner)
        self.inputs[name] = compiled
        return compiled

    def dedup_source(self, node: exp.Anonymous, args: list[exp.Expression], bounded: bool) -> tuple[str, exp.Expression]:
        """``dedup(stream, key…[, ttl[, max_keys]])``: record the dedup, return the stream and its name node."""
        if len(args) < 2:
            raise self.err(node, "dedup(stream, key…[, ttl]) needs a stream and at least one key column")
        ttl: int | None = None
        max_keys: int | None = None
        last = args[-1]
        if isinstance(last, exp.Literal) and not last.is_string and last.this.isdigit() and len(args) > 2:
            max_keys = int(last.this) or None
            args = args[:-1]
        if isinstance(args[-1], exp.Interval) or (isinstance(args[-1], exp.Literal) and args[-1].is_string):
            if not _zero_interval(args[-1]):
                ttl = interval_micros(self.sql, args[-1], "the dedup ttl")
            args = args[:-1]  # a ttl of 0 keeps keys without time limit
        if len(args) < 2:
            raise self.err(node, "dedup(stream, key…[, ttl]) needs at least one key column")
        stream, name_node = self.source(args[0], bounded)
        columns = {c.name: c for c in self.stream_columns(stream, name_node)}
        keys: list[str] = []
        for key in args[1:]:
            if not (isinstance(key, exp.Column) and not key.table and key.name in columns):
                raise self.err(key, f"dedup key '{key.sql(DIALECT)}' must be a column of stream '{stream}'")
            keys.append(key.name)
        if self.dedup is not None:
            raise self.err(node, "nested dedup() is not supported")
        self.dedup = DedupSpec(tuple(keys), ttl, TP_TIME, max_keys)
        return stream, name_node

    def from_clause(self, select: exp.Select) -> _Relation:
        """The source stream of FROM as the query's first relation (``__src``); an unknown stream
        is named at its position."""
        from_ = select.args.get("from_") or select.args.get("from")
        if from_ is None:
            # SELECT without FROM: one row (function examples such as SELECT to_int('1')).
            self.bounded = True
            return _Relation(SRC, set(), ONE_ROW, {"dummy": Column("dummy", parse_type("uint8"))})
        table = from_.this
        alias = table.args.get("alias") if isinstance(table, exp.Table) else None
        if alias is not None and alias.columns and not alias.name:
            # sqlglot reads an unknown call such as session(s, 5s) as a table with column aliases.
            what = "session windows are" if table.name.lower() == "session" else f"table function {table.name}() is"
            raise self.err(table, f"{what} not supported")
        labels: set[str] = set()
        if isinstance(table, exp.Table) and table.alias:
            labels.add(table.alias)
        func = table.this if isinstance(table, exp.Table) else table
        if isinstance(func, exp.Anonymous) and function_name(func) in ("tumble", "hop", SESSION_CALL):
            stream, name_node = self.window_source(func)
        else:
            stream, name_node = self.source(table)
        labels.add(stream)
        return _Relation(SRC, labels, stream, {c.name: c for c in self.stream_columns(stream, name_node)})

    def session_source(self, func: exp.Anonymous) -> tuple[str, exp.Expression]:
        """``session(stream, [time_column,] timeout [, max_length] [, [start_cond, end_cond]])`` in
        FROM: record the window (its conditions are resolved with the query's columns later)."""
        args = list(func.expressions)
        shape = "session(stream, [time_column,] timeout [, max_length] [, [start_condition, end_condition]])"
        if len(args) < 2:
            raise self.err(func, f"session() takes {shape}")
        stream, name_node = self.source(args[0])
        columns = {c.name: c for c in self.stream_columns(stream, name_node)}
        rest = args[1:]
        time_col = TP_TIME
        if not _is_interval(rest[0]):
            time_col = self.time_column(rest[0], columns, stream, "session")
            rest = rest[1:]
        elif TP_TIME not in columns:
            raise self.err(args[0], f"'{stream}' has no {TP_TIME} column: name the time column, "
                                    f"session({stream}, <datetime column>, …)")
        intervals = [r for r in rest[:2] if _is_interval(r)]
        conditions = rest[len(intervals):]
        include = (True, True)  # session(s, 5s, start, end): both boundary rows belong to the session
        if len(conditions) == 1 and isinstance(conditions[0], exp.Tuple) and len(conditions[0].expressions) == 2:
            include = conditions[0].meta.get(SESSION_RANGE, (False, False))  # (a, b): a plain tuple
            conditions = list(conditions[0].expressions)
        if not intervals or len(conditions) not in (0, 2):
            bad = conditions[0] if conditions else func
            raise self.err(bad, f"session() takes {shape}")
        timeout = interval_micros(self.sql, intervals[0], "the session() timeout")
        # As Proton: a session lasts at most 5 times its timeout unless max_length says otherwise.
        longest = interval_micros(self.sql, intervals[1], "the session() max length") if len(intervals) == 2 else 5 * timeout
        self.window = WindowSpec("session", time_col, timeout, timeout, longest, include_start=include[0],
                                 include_end=include[1])
        self.session_conditions = tuple(conditions)
        return stream, name_node

    def time_column(self, tnode: exp.Expression, columns: dict[str, Column], stream: str, kind: str) -> str:
        """The name of a window's time column (a datetime column of the source)."""
        if not (isinstance(tnode, exp.Column) and not tnode.table):
            raise self.err(tnode, f"the time column of {kind}() must be a column name")
        time_col = tnode.name
        if time_col not in columns:
            raise self.err(tnode, f"unknown column '{time_col}' in stream '{stream}'")
        if not pa.types.is_timestamp(columns[time_col].type.arrow):
            raise self.err(tnode, f"the time column '{time_col}' of {kind}() must be a datetime, not {columns[time_col].type.name}")
        return time_col

    def window_source(self, func: exp.Anonymous) -> tuple[str, exp.Expression]:
        """``tumble(…)``/``hop(…)`` in FROM: record the window, return the stream and its name node."""
        kind = function_name(func)
        if kind == SESSION_CALL:
            return self.session_source(func)
        args = list(func.expressions)
        n_intervals = 1 if kind == "tumble" else 2
        if len(args) not in (1 + n_intervals, 2 + n_intervals):
            shape = "tumble(stream, [time_column,] size)" if kind == "tumble" else "hop(stream, [time_column,] slide, size)"
            raise self.err(func, f"{kind}() takes {shape}")
        stream, name_node = self.source(args[0])
        columns = {c.name: c for c in self.stream_columns(stream, name_node)}
        time_col = TP_TIME
        if len(args) == 1 + n_intervals and TP_TIME not in columns:
            raise self.err(args[0], f"'{stream}' has no {TP_TIME} column: name the time column, "
                                    f"{kind}({stream}, <datetime column>, …)")
        if len(args) == 2 + n_intervals:
            time_col = self.time_column(args[1], columns, stream, kind)
        sizes = [interval_micros(self.sql, a, f"the {kind}() interval") for a in args[-n_intervals:]]
        if kind == "tumble":
            self.window = WindowSpec("tumble", time_col, sizes[0], sizes[0])
        else:
            slide, size = sizes
            if slide > size:
                raise self.err(func, "hop() slide must not be larger than its size")
            self.window = WindowSpec("hop", time_col, size, slide)
        return stream, name_node

    def join_how(self, join: exp.Join) -> tuple[JoinKind, str]:
        """The join's kind and its strictness: '' (ALL), 'ANY', 'SEMI', 'ANTI', 'ASOF', 'LATEST' or
        'CROSS' (unwritten: the join_default_strictness setting's, ALL by default). ``ANY`` is
        ClickHouse's (one match per row) in a bounded query and Proton's LATEST in a streaming one,
        unless LATEST is written. GLOBAL (a distributed join) is a plain one on one server.
        SEMI/ANTI without LEFT or RIGHT are errors; RIGHT and FULL joins are checked by the caller
        (bounded queries only)."""
        words = [w for w in ((join.side or "").upper(), (join.kind or "").upper()) if w]
        written = " ".join(words)
        unknown = [w for w in words if w not in _JOIN_WORDS]
        if unknown:
            raise self.err(join.this, f"{written} JOIN is not supported; use [LEFT|RIGHT|FULL|INNER] "
                                      "[ALL|ANY|SEMI|ANTI] JOIN, ASOF JOIN or LATEST JOIN")
        if "CROSS" in words:
            return "INNER", "CROSS"
        side = next((w for w in words if w in ("LEFT", "RIGHT", "FULL")), "")
        default = next((_setting_value(i.expression).upper() for i in self.settings_items
                        if isinstance(i, exp.EQ) and i.this.name == "join_default_strictness"), "ALL")
        if default not in ("ALL", "ANY"):
            raise self.err(next(i.expression for i in self.settings_items if i.this.name == "join_default_strictness"),
                           f"join_default_strictness must be 'ALL' or 'ANY', not '{default}'")
        strictness = next((w for w in words if w in ("ALL", "ANY", "SEMI", "ANTI", "ASOF")), default)
        if strictness == "ANY" and (not self.bounded or re.search(r"\blatest\s+join\b", self.sql, re.IGNORECASE)):
            strictness = "LATEST"
        if strictness in ("SEMI", "ANTI") and side not in ("LEFT", "RIGHT"):
            raise self.err(join.this, f"{written} JOIN needs a side: {strictness} LEFT JOIN or {strictness} RIGHT JOIN")
        kind = side or ("FULL" if "OUTER" in words else "INNER")
        return kind, "" if strictness == "ALL" else strictness  # type: ignore[return-value]

    def join_target(self, join: exp.Join, strictness: str) -> tuple[str, exp.Expression, bool, set[str], CompiledInput | None]:
        """What a JOIN reads: its name, name node, whether it is written table(…), its labels, and
        the compiled CTE or subquery when it reads one (None for a stream); a bounded query's
        CTE or subquery is read to its end."""
        target = join.this
        func = target.this if isinstance(target, exp.Table) and isinstance(target.this, exp.Anonymous) else target
        dimension = isinstance(func, exp.Anonymous) and function_name(func) == "table" and len(func.expressions) == 1
        node = func.expressions[0] if dimension else target
        query: exp.Expression | None = None
        scope = self.scope
        if isinstance(node, exp.Subquery):
            name, query = node.alias or "subquery", node.this
            if not node.alias and name in self.inputs:
                name = f"subquery{len(self.inputs) + 1}"  # joined_subquery_requires_alias = 0
        elif isinstance(node, (exp.Table, exp.Column)) and node.name in self.scope.ctes:
            name = node.name
            query, scope = self.scope.ctes[name]
        elif (generated := generated_source(node.this if isinstance(node, exp.Table) and isinstance(
                node.this, exp.Anonymous) else node)) is not None:
            name = generated  # numbers(n), system.numbers …: a bounded stream of its own
        else:
            name = self._stream_name(node, "a JOIN")
        # An aliased stream answers to its alias and, as in Proton, to its own name.
        labels = {target.alias, name} if isinstance(target, exp.Table) and target.alias else {name}
        if query is None:
            # A table (ENGINE = Memory …), or any stream of a query_mode='table' query, is read whole.
            dimension = dimension or self.scope.bounded or bool(_table_engine(self.store, name))
            return name, node, dimension, labels, None
        if (dimension and not self.bounded) or strictness == "LATEST" or (strictness == "ASOF" and not self.bounded):
            raise self.err(node, "a CTE or subquery joins as a stream (JOIN or LEFT JOIN); table(), ASOF and "
                                 "LATEST joins read a stream")
        return name, node, dimension, labels, self.compile_subquery(name, query, scope, self.bounded)

    # -- names ----    # -- names --------------------------------------------------------------------------------
    def resolve(self, node: exp.Expression, allow_window: bool) -> exp.Expression:
        """Qualify every column with its relation; unknown ones are errors naming them."""

        def fix(n: exp.Expression) -> exp.Expression:
            if not isinstance(n, exp.Column) or isinstance(n.this, exp.Star):
                return n
            name, table = n.name, n.table
            if table == _SUBQUERY_MARK:
                return n  # a subquery's result (see _expression_subqueries)
            if name in WINDOW_COLUMNS and (not table or table in self.relations[0].labels) and self.window is not None:
                if not allow_window:
                    raise self.err(n, f"{name} cannot be used here")
                col = exp.column(f"__{name}")
                col.meta.update(n.this.meta)
                return col
            matches = [
                r for r in self.relations if name in r.columns and (not table or table in r.labels)
            ]
            if table and not any(table in r.labels for r in self.relations):
                raise self.err(n.args["table"], f"unknown table '{table}' in column '{table}.{name}'")
            if name in self.coalesced and not table:
                ident = exp.to_identifier(USING_PREFIX + name, quoted=True)
                ident.meta.update(n.this.meta)
                return exp.Column(this=ident, table=exp.to_identifier(SRC))
            if name == DELTA_COLUMN and self.changelog and not table and (not matches or self.aggregating):
                return exp.column("__tp_delta")  # the emitted row's delta, not the input's
            if not matches and name == SEQUENCE_COLUMN and self.relations[0].stream != ONE_ROW:
                side = next((r for r in self.relations if table in r.labels), None) if table else self.relations[0]
                if side is not None and (side is self.relations[0] or self.joined):
                    # A stream join carries each side's sequence numbers; else the row's own is __seq.
                    ident = exp.to_identifier(side.prefix + name if self.joined else "__seq", quoted=True)
                    ident.meta.update(n.this.meta)
                    return exp.Column(this=ident, table=exp.to_identifier(side.name))
            if not matches and not table and not n.this.quoted and name.lower() in _FLOAT_WORDS:
                return exp.cast(exp.Literal.string(_FLOAT_WORDS[name.lower()]), exp.DataType.build("DOUBLE"))
            if not matches:
                where = f"stream '{self.relations[0].stream}'" if len(self.relations) == 1 and not table else "the query's sources"
                if is_generated(self.relations[0].stream) and len(self.relations) == 1:
                    where = "a query without FROM" if self.relations[0].stream == ONE_ROW else "numbers()"
                raise self.err(n.this, f"unknown column '{name}' in {where}")
            if len(matches) > 1 and matches[0] is self.relations[0]:
                matches = matches[:1]  # as in ClickHouse, an unqualified name prefers the left (stream) side
            if len(matches) > 1:
                raise self.err(n.this, f"column '{name}' is ambiguous; qualify it with a table name")
            ident = exp.to_identifier(matches[0].prefix + name, quoted=True)
            ident.meta.update(n.this.meta)
            return exp.Column(this=ident, table=exp.to_identifier(matches[0].name))

        return node.copy().transform(fix)

    def expand_star(self, select: exp.Select) -> list[exp.Expression]:
        """Projections with ``*``/``t.*`` replaced by columns (a joined side's clashing names become ``alias.col``)."""
        out: list[exp.Expression] = []
        taken = {_output_name(p) for p in select.expressions if not isinstance(p, exp.Star)
                 and not (isinstance(p, exp.Column) and isinstance(p.this, exp.Star))}
        for proj in select.expressions:
            star_table = None
            if isinstance(proj, exp.Star):
                star_table = ""
            elif isinstance(proj, exp.Column) and isinstance(proj.this, exp.Star):
                star_table = proj.table
            if star_table is None:
                out.append(proj)
                continue
            rels = [r for r in self.relations if not star_table or star_table in r.labels]
            if not rels:
                raise self.err(proj, f"unknown table '{star_table}' in '{star_table}.*'")
            star = proj if isinstance(proj, exp.Star) else proj.this
            excluded = {e.name for e in star.args.get("except_") or star.args.get("except") or []}
            for name_node in star.args.get("except_") or star.args.get("except") or []:
                if not any(name_node.name in r.columns for r in rels):
                    raise self.err(name_node, f"* EXCEPT names '{name_node.name}', which is not a column of the source")
            for rel in rels:
                kafka = _SHARD in rel.columns and rel.stream not in self.inputs
                for col in rel.columns:
                    if (col in excluded or (col in rel.using and not star_table)
                            or (kafka and col in KAFKA_METADATA_COLUMNS)
                            # a table (ENGINE = Memory …) has no _tp_time of its own in Proton
                            or (col == TP_TIME and _table_engine(self.store, rel.stream))):
                        continue
                    label = sorted(rel.labels)[0]
                    node = exp.column(col, table=label)
                    if col in taken:
                        node = exp.alias_(node, f"{label}.{col}", quoted=True)
                    else:
                        # t.* reads t's own column; * the query's (a RIGHT/FULL join's USING column coalesced).
                        node = (exp.alias_(node, col, quoted=True) if rel is not self.relations[0]
                                else node if star_table else exp.column(col))
                    taken.add(col)
                    out.append(node)
            if self.window is not None and not star_table:
                out.extend(exp.column(c) for c in WINDOW_COLUMNS)
        return out

    # -- aggregates ---------------------------------------------------------------------------
    def arg_column(self, node: exp.Expression) -> str:
        """The pre-projection column (``__a<n>``) computing an aggregate's argument; identical arguments share one."""
        for inner in node.walk():
            if isinstance(inner, exp.Expression) and is_aggregate(inner):
                raise self.err(inner, f"aggregate function {function_name(inner)}() cannot be nested in another aggregate")
        for col in node.find_all(exp.Column):
            if col.name in ("__window_start", "__window_end"):
                raise self.err(col, f"{col.name[2:]} cannot be used inside an aggregate function")
        sql = self.duck(node)
        if sql not in self.args:
            self.args.append(sql)
        return f"__a{self.args.index(sql)}"

    def aggregate_ref(self, node: exp.Expression) -> exp.Expression:
        """The column (``__f<i>``) standing for an aggregate call; identical calls share one.

        ``agg(x) FILTER (WHERE cond)`` aggregates ``CASE WHEN cond THEN x END`` (aggregates skip
        NULLs); ``count() FILTER (WHERE cond)`` is ``count_if(cond)``."""
        if isinstance(node, exp.Filter):
            cond = node.expression.this if isinstance(node.expression, exp.Where) else node.expression
            call = aggregate_call(node.this)
            if call.name == "count" and not call.args:
                spec, args = AGGREGATES["count_if"], (cond,)
            else:
                spec, args = call.spec, tuple(exp.Case().when(cond.copy(), arg) for arg in call.args)
            call = AggregateCall(spec, args, call.level)
        else:
            call = aggregate_call(node)
        if DELTA_COLUMN in self.relations[0].columns:
            call = self.retracting(call, node)
        arg_cols = tuple(self.arg_column(a) for a in call.args)
        key = (call.spec, call.level, arg_cols)
        if key not in self.call_keys:
            self.call_keys.append(key)
            self.planned.append(PlannedAggregate(call.spec, arg_cols, call.level))
        return exp.column(f"__f{self.call_keys.index(key)}")

    def retracting(self, call: AggregateCall, node: exp.Expression) -> AggregateCall:
        """``call`` over a changelog input: each row weighs its ``_tp_delta`` (count, sum, avg);
        other aggregates cannot take a row back and are errors."""
        spec = RETRACTING.get(call.name)
        if spec is None:
            raise self.err(node, f"{call.name}() cannot take back retracted rows (_tp_delta = -1) of a changelog "
                                 f"input; over a changelog use count, count_if, sum or avg")
        delta = exp.Column(this=exp.to_identifier(DELTA_COLUMN, quoted=True), table=exp.to_identifier(SRC))
        return AggregateCall(spec, (*call.args, delta), call.level)

    def finish(self, node: exp.Expression, keys: list[exp.Expression]) -> str:
        """Rewrite an output expression of an aggregated query onto keys, window bounds and aggregates."""
        def sub(n: exp.Expression) -> exp.Expression:
            for j, key in enumerate(keys):
                if n == key:
                    return exp.column(f"__k{j}")
            if isinstance(n, exp.Column) and n.name in ("__window_start", "__window_end"):
                return exp.column("__ws_ts" if n.name == "__window_start" else "__we_ts")
            if isinstance(n, exp.Window):
                # A bounded query's window function runs over the groups: its arguments,
                # PARTITION BY and ORDER BY name keys and aggregates, the function itself stays.
                window = n.copy()
                for child in list(window.iter_expressions()):
                    parts = child.iter_expressions() if child is window.this else [child]
                    for part in list(parts):
                        part.replace(part.transform(sub))
                return window
            if is_aggregate(n) or (isinstance(n, exp.Filter) and is_aggregate(n.this)):
                return self.aggregate_ref(n)
            if isinstance(n, exp.Anonymous) and function_name(n) == "emit_version":
                if n.expressions:
                    raise self.err(n, "emit_version() takes no arguments")
                return exp.column("__emit_version")
            return n

        rewritten = node.transform(sub)
        sql = self.duck(rewritten)  # an unknown function is the first thing to say
        for col in rewritten.find_all(exp.Column):
            if col.table:
                raise self.err(col, f"column '{col.name}' must appear in GROUP BY or be used inside an aggregate function")
        return sql


def _setting_value(node: exp.Expression) -> str:
    if isinstance(node, exp.Literal):
        return str(node.this)
    if isinstance(node, exp.Interval):
        return node.sql(DIALECT)
    if isinstance(node, (exp.Column, exp.Identifier, exp.Var)):
        return node.name
    return node.sql(DIALECT)


def _seek_to(p: _Planner, node: exp.Expression) -> str:
    value = _setting_value(node).strip()
    if value.lower() in ("earliest", "latest"):
        return value.lower()
    if value.isdigit():
        return f"sn:{value}"  # a sequence number of the stream's log
    if _numbers(value) is not None:
        return "earliest"  # Kafka offsets per partition: see _kafka_positions
    if value.startswith("-") and (micros := interval_from_text(value[1:])) is not None:
        return f"-{micros}us"  # relative to when the query starts
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise p.err(node, f"seek_to must be 'earliest', 'latest', a sequence number, a timestamp like '2024-01-01 00:00:00'"
                          f" or a time ago like '-1h', not '{value}'") from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.isoformat()


def _numbers(value: str) -> tuple[int, ...] | None:
    """``'5,3,11'`` as (5, 3, 11); None when ``value`` is not a list of numbers."""
    parts = [part.strip() for part in value.split(",")]
    return tuple(int(part) for part in parts) if all(part.isdigit() for part in parts) else None


def _kafka_positions(p: _Planner, select: exp.Select, settings: dict[str, str]) -> None:
    """Apply the query's Kafka settings when FROM reads a Kafka external stream: ``seek_to`` as
    offsets in partition order (``'5,3,11'``: offset 5 of partition 0, 3 of 1, 11 of 2; partitions
    after the last listed are read from their earliest offset) or as a timestamp (the messages
    stamped at or after it, in every partition), and ``shards='0,2'`` (only those partitions).
    The stream holds each message's partition and offset (KAFKA_METADATA_COLUMNS), so it is read
    from its earliest row and WHERE keeps the messages at or after those positions.

    Raises :class:`SqlError` for offsets per partition on a stream that is not a Kafka external
    stream, and for a shards setting that is not a list of partitions."""
    offsets, shards = p.scope.partition_offsets, p.scope.shards
    seek = settings.get("seek_to", "latest")
    since = None if seek in ("earliest", "latest") or seek.startswith(("sn:", "-", "time:")) else seek
    rel = p.relations[0]
    if (offsets is None and shards is None and since is None) or rel.stream in p.inputs:
        return  # a subquery that reads the stream applies them itself
    if _SHARD not in rel.columns:
        if offsets is not None and len(offsets) > 1:
            raise p.err(_setting_node(p, "seek_to"), f"seek_to '{','.join(map(str, offsets))}': offsets per "
                                                     f"partition apply to a Kafka external stream, and "
                                                     f"'{rel.stream}' is not one")
        return
    label = sorted(rel.labels)[0]
    shard, offset = exp.column(_SHARD, table=label), exp.column(SEQUENCE_COLUMN, table=label)
    if offsets is not None:
        listed = [exp.and_(exp.EQ(this=shard.copy(), expression=exp.Literal.number(i)),
                           exp.GTE(this=offset.copy(), expression=exp.Literal.number(o)))
                  for i, o in enumerate(offsets)]
        later = exp.GTE(this=shard.copy(), expression=exp.Literal.number(len(offsets)))
        select.where(exp.paren(exp.or_(*listed, later)), copy=False)
        settings["seek_to"] = "earliest"
        p.scope = replace(p.scope, seek_to="earliest")
    elif since is not None:
        # As Kafka finds the offset of a time in each partition: the copy interleaves partitions,
        # so a single position in it would let in older messages of another partition.
        select.where(exp.GTE(this=exp.column(TP_TIME, table=label), expression=exp.Literal.string(since)), copy=False)
        settings["seek_to"] = "earliest"
        p.scope = replace(p.scope, seek_to="earliest")
    if shards is not None:
        chosen = _numbers(shards)
        if chosen is None:
            raise p.err(_setting_node(p, "shards"),
                        f"shards must list partitions of the Kafka topic like '0,2', not '{shards}'")
        select.where(exp.In(this=shard.copy(), expressions=[exp.Literal.number(n) for n in chosen]), copy=False)


def _setting_node(p: _Planner, name: str) -> exp.Expression | None:
    """The value of this query's setting ``name`` (None when an enclosing query set it)."""
    return next((i.expression for i in p.settings_items if isinstance(i, exp.EQ) and i.this.name == name), None)


def _offsets_are_sequence(p: _Planner, select: exp.Select) -> bool:
    """Whether ``select`` reads a Kafka external stream, whose ``_tp_sn`` is a message's offset
    within its partition rather than a position in the stream's log."""
    for table in select.find_all(exp.Table):
        try:
            columns = p.store.get(table.name).columns if table.name else []
        except NotFound:
            continue
        if any(c.name == _SHARD for c in columns):
            return True
    return False


def _lag_ref(p: _Planner, node: exp.Expression) -> exp.Expression:
    """``lag(x[, n[, default]])`` as the column ``__lag<i>`` (see :attr:`LogicalPlan.lags`); a lag with
    OVER (a bounded query's window function) is DuckDB's."""
    if isinstance(node.parent, exp.Window):
        return node
    if isinstance(node, exp.Lag):
        args = [a for a in (node.this, node.args.get("offset"), node.args.get("default")) if a is not None]
    elif isinstance(node, exp.Anonymous) and function_name(node) in ("lag", "lags"):
        if function_name(node) == "lags":
            raise p.err(node, "lags() is not supported; write one lag(x, n) per offset")
        args = list(node.expressions)
    else:
        return node
    if not 1 <= len(args) <= 3:
        raise p.err(node, "lag takes (column[, offset[, default]])")
    offset = 1
    if len(args) >= 2:
        if not (isinstance(args[1], exp.Literal) and not args[1].is_string and args[1].this.isdigit()
                and int(args[1].this) > 0):
            raise p.err(args[1], "lag's offset must be a positive integer literal")
        offset = int(args[1].this)
    call = (args[0], offset, args[2] if len(args) == 3 else None)
    if call not in p.lag_calls:  # the same lag written twice (an alias reused) is one column
        p.lag_calls.append(call)
    return exp.column(f"__lag{p.lag_calls.index(call)}")


def _has_aggregate(node: exp.Expression) -> bool:
    """Whether ``node`` calls an aggregate outside a window function (``sum(x) OVER (…)`` is none)."""
    return any(is_aggregate(n) for n in node.walk(prune=lambda n: isinstance(n, exp.Window))
               if isinstance(n, exp.Expression) and not isinstance(n, exp.Window))


def _window_functions(p: _Planner, select: exp.Select, texts: dict[int, str]) -> list[exp.Expression]:
    """The PARTITION BY keys the window functions (``f(…) OVER (…)``) of ``select`` add.

    A bounded query runs them as DuckDB does (over every row, after WHERE and GROUP BY). A
    streaming query never ends, so only Proton's streaming forms run: an aggregate or ``lag``
    ``OVER (PARTITION BY keys)`` is the aggregate or lag per key (the keys become PARTITION BY);
    every other form is an error naming it, its place and what to write instead. A streaming
    window function is replaced in ``select`` by its call (named as written: ``texts`` are the
    written projections by node id)."""
    windows = [w for w in select.find_all(exp.Window) if w.find_ancestor(exp.Select) is select]
    if not windows or p.bounded:
        return []
    keys: list[exp.Expression] = []
    for win in windows:
        func = win.this
        name = function_name(func) or func.key
        written = f"{name}() OVER (…)"
        lag = isinstance(func, exp.Lag) or name == "lag"
        if win.args.get("order") or win.args.get("spec") or not (is_aggregate(func) or lag):
            raise p.err(win, f"{written} in a streaming query is not supported: it never ends, so rows cannot be "
                             "numbered or ordered over all of it; run it over table(stream), or use PARTITION BY "
                             "alone around an aggregate or lag(), as Proton's streaming queries do")
        parts = list(win.args.get("partition_by") or [])
        if keys and parts != keys:
            raise p.err(win, "the window functions of a streaming query must share one PARTITION BY")
        keys = parts
        if win.parent is select:
            win.replace(exp.alias_(func, texts.get(id(win)) or win.sql(DIALECT), quoted=True))
        else:
            win.replace(func)
    return keys


#: What lag() answers where no earlier row exists, by the kind of its value: as Proton, the type's
#: default (0, '', false) rather than NULL.
_LAG_DEFAULTS = {INT: "0", FLOAT: "0", DECIMAL: "0", STRING: "''", BOOL: "false"}


def _lag_default(p: _Planner, value: exp.Expression) -> str:
    """DuckDB SQL of the default of lag(value) without one (NULL for types without a plain default)."""
    schema = {name: col.type for rel in reversed(p.relations) for name, col in rel.columns.items()}
    return _LAG_DEFAULTS.get(kind_of(to_duckdb(value, schema), schema) or "", "NULL")


_SUBQUERY_MARK = "__subquery"


def _expression_subqueries(p: _Planner, select: exp.Select) -> exp.Select:
    """``select`` with each subquery in an expression (``x IN (SELECT …)``, ``(SELECT max(v) …)``)
    planned as a bounded query — it reads its streams as table() — and replaced by a marker that
    :func:`_subquery_sql` turns into a read of its result (``__sq<i>``), computed when the query
    starts."""
    found = [sub for key, value in select.args.items() if key not in ("from_", "joins", "with_")
             for item in (value if isinstance(value, list) else [value]) if isinstance(item, exp.Expression)
             for sub in item.find_all(exp.Subquery)]
    if not found:
        return select
    select = select.copy()
    for sub in [s for s in select.find_all(exp.Subquery)
                if s.find_ancestor(exp.Select) is select and s.find_ancestor(exp.From, exp.Join, exp.With) is None]:
        name = f"__sq{len(p.subqueries)}"
        compiled = p.compile_subquery(name, sub.this, replace(p.scope, bounded=True), True)
        in_list = isinstance(sub.parent, exp.In) and sub.arg_key == "query"
        # (a, b) IN (SELECT x, y …) compares tuples: as many columns as the tuple has items.
        width = len(sub.parent.this.expressions) if in_list and isinstance(sub.parent.this, exp.Tuple) else 1
        if len(compiled.columns) != width:
            raise p.err(sub, f"a subquery in an expression answers {width} column{'s' if width > 1 else ''}, "
                             f"not {len(compiled.columns)}")
        p.subqueries.append((name, compiled))
        marker = exp.Column(this=exp.to_identifier(f"{'in' if in_list else 'val'}{name}"),
                            table=exp.to_identifier(_SUBQUERY_MARK))
        if in_list:
            parent = sub.parent
            parent.set("query", None)
            parent.set("expressions", [marker])
        else:
            sub.replace(marker)
    return select


def _subquery_sql(sql: str) -> str:
    """Generated SQL with the subquery markers (see :func:`_expression_subqueries`) made reads of
    the subqueries' results."""
    sql = re.sub(rf'"?{_SUBQUERY_MARK}"?\."?in(__sq\d+)"?', r"SELECT * FROM \1", sql)
    return re.sub(rf'"?{_SUBQUERY_MARK}"?\."?val(__sq\d+)"?', r"(SELECT * FROM \1)", sql)


def _constant_delta(node: exp.Expression) -> exp.Expression:
    """``_tp_delta`` of a query without aggregation: every row is an insertion (+1)."""
    if isinstance(node, exp.Column) and node.name == "__tp_delta" and not node.table:
        return exp.cast(exp.Literal.number(1), exp.DataType.build("TINYINT"))
    return node


def _seeks_from_where(p: _Planner, where: exp.Expression, offsets: bool = False) -> dict[str, str]:
    """Where a streaming query's streams start reading when its WHERE names ``_tp_sn`` or
    ``_tp_time``, as Proton pushes such predicates down: from the lower bound an AND-ed
    comparison gives (``_tp_sn >= 10``, ``_tp_time > now() - 1h``, ``_tp_time = '…'``), else
    from the earliest row (``_tp_sn < 5``, ``!=``, OR …). Keyed by the column's qualifier
    ("" for an unqualified column): a join's sides seek apart. With ``offsets`` (a Kafka source,
    whose ``_tp_sn`` is an offset within a partition) ``_tp_sn`` reads from the earliest row."""
    seeks: dict[str, str] = {}
    bounded: set[str] = set()
    terms = list(where.flatten()) if isinstance(where, exp.And) else [where]
    for term in terms:
        if isinstance(term, (exp.GT, exp.GTE, exp.EQ, exp.LT, exp.LTE)):
            left, right = term.this, term.expression
            lower = isinstance(term, (exp.GT, exp.GTE, exp.EQ))
            strict = isinstance(term, (exp.GT, exp.LT))
            if not isinstance(left, exp.Column) and isinstance(right, exp.Column):
                left, right = right, left  # X < col is col > X
                lower = isinstance(term, (exp.LT, exp.LTE, exp.EQ))
            if (isinstance(left, exp.Column) and lower and left.name in (SEQUENCE_COLUMN, TP_TIME)
                    and not any(True for _ in right.find_all(exp.Column)) and left.table not in bounded):
                if left.name == SEQUENCE_COLUMN and isinstance(right, exp.Literal) and right.this.isdigit() \
                        and not offsets:
                    seeks[left.table] = f"sn:{int(right.this) + (1 if strict else 0)}"
                    bounded.add(left.table)
                    continue
                if left.name == TP_TIME:
                    seeks[left.table] = f"time:{p.duck(right)}"
                    bounded.add(left.table)
                    continue
        for col in term.find_all(exp.Column):
            if col.name in (SEQUENCE_COLUMN, TP_TIME) and col.table not in bounded:
                seeks.setdefault(col.table, "earliest")
    return seeks


def _earliest_ts(node: exp.Expression) -> exp.Expression:
    """``earliest_ts()`` / ``earliest_timestamp()``: the earliest time, 1970-01-01 00:00:00 UTC."""
    if isinstance(node, exp.Anonymous) and function_name(node) in ("earliest_ts", "earliest_timestamp") \
            and not node.expressions:
        return exp.cast(exp.Literal.string("1970-01-01 00:00:00+00"), exp.DataType.build("TIMESTAMPTZ"))
    return node


def _idle_timeout(p: _Planner, node: exp.Expression) -> float:
    if isinstance(node, exp.Literal) and not node.is_string:
        seconds = float(node.this)
    else:
        micros = interval_from_text(_setting_value(node))
        if micros is None:
            raise p.err(node, f"idle_timeout must be an interval such as '5s', not '{_setting_value(node)}'")
        seconds = micros / 1e6
    if seconds <= 0:
        raise p.err(node, "idle_timeout must be positive")
    return seconds


# Calls the planner reads itself (windows, sources, join bounds, lag, emit_version), not functions
# of sinkflow.sql.functions: the unknown-function check lets them through.
_PLANNER_FUNCTIONS = ("tumble", "hop", "session", SESSION_CALL, "table", "dedup", "changelog", "date_diff_within",
                      "lag", "lags", "emit_version", "earliest_ts", "earliest_timestamp", *WINDOW_FUNCTIONS)

# Clauses sinkflow does not run: what they are called, the keyword that starts them, what to write instead.
_UNSUPPORTED_CLAUSES = {
    "qualify": ("QUALIFY", "QUALIFY", "filter in an outer query: SELECT * FROM (…) WHERE …"),
    "prewhere": ("PREWHERE", "PREWHERE", "use WHERE"),
    "sample": ("SAMPLE", "SAMPLE", "filter with WHERE rand() % n = 0"),
    "laterals": ("ARRAY JOIN / LATERAL", "ARRAY", "keep the array and use array functions"),
    "windows": ("WINDOW", "WINDOW", "use tumble(), hop() or session() in FROM"),
    "into": ("SELECT INTO", "INTO", "use CREATE MATERIALIZED VIEW … INTO"),
    "format": ("FORMAT", "FORMAT", "results come as the API's JSON or the sink's format"),
    "kind": ("SELECT AS STRUCT/VALUE", "AS", "select the columns"),
}


def build_plan(sql: str, store: StreamLookup, compile_input: Compiler) -> LogicalPlan | UnionAll:
    """Plan a Timeplus SELECT (with its CTEs, subqueries and UNION ALLs) against ``store``;
    ``compile_input`` compiles each planned CTE or subquery (its output columns are the columns
    its reader sees).

    Raises :class:`SqlError` (with a position where one is known) for SQL that does not parse, an
    unknown stream or column, a construct that is not supported (named in the message), and
    aggregation mistakes such as a column neither grouped nor aggregated.
    """
    parsed = parse_select(sql)
    return _plan_query(parsed.tree, _Scope(sql, store, compile_input, {}), parsed)


def _plan_query(node: exp.Expression, scope: _Scope, parsed: ParsedSelect | None) -> LogicalPlan | UnionAll:
    """Plan a SELECT or UNION ALL with its WITH clause; ``parsed`` is the statement's own parse
    (EMIT, written texts) when ``node`` is the whole statement."""
    with_ = node.args.get("with_") or node.args.get("with")
    if with_ is not None:
        ctes = dict(scope.ctes)
        for cte in with_.expressions:
            if with_.args.get("recursive"):
                raise error_at(cte, "WITH RECURSIVE is not supported")
            ctes[cte.alias] = (cte.this, replace(scope, ctes=dict(ctes)))
        scope = replace(scope, ctes=ctes)
    if isinstance(node, exp.Subquery):
        return _plan_query(node.this, scope, None)
    if isinstance(node, exp.Union):
        if node.args.get("distinct"):
            raise error_at(node, "UNION DISTINCT is not supported; use UNION ALL")
        for clause in ("order", "limit", "offset"):
            if node.args.get(clause):
                raise error_at(node.args[clause], f"{clause.upper()} after UNION ALL is not supported; "
                                                  "wrap the union in a subquery: SELECT * FROM (… UNION ALL …) LIMIT n")
        sides = [_plan_query(node.this, scope, None), _plan_query(node.expression, scope, None)]
        inputs: list[LogicalPlan | UnionAll] = []
        for side in sides:
            inputs.extend(side.inputs if isinstance(side, UnionAll) else [side])
        return UnionAll(node.sql(DIALECT) if parsed is None else parsed.sql, tuple(inputs))
    if isinstance(node, exp.SetOperation):
        raise error_at(node, f"{type(node).__name__.upper()} is not supported; use UNION ALL")
    if not isinstance(node, exp.Select):
        raise error_at(node, f"expected a SELECT, got {node.key.upper()}")
    return _plan_select(node, scope, parsed)


def _plan_select(select: exp.Select, scope: _Scope, parsed: ParsedSelect | None) -> LogicalPlan:
    sql = parsed.sql if parsed is not None else select.sql(DIALECT)
    check_functions(select, _PLANNER_FUNCTIONS)  # an unknown function is the first thing to say
    p = _Planner(scope)
    for key, (label, keyword, instead) in _UNSUPPORTED_CLAUSES.items():
        if select.args.get(key):
            node = select.args[key]
            position = _keyword_position(scope.sql, keyword) or node_position(node)
            raise located(f"{label} is not supported; {instead}", position)
    for sub in select.find_all(exp.Exists):
        raise p.err(sub, "EXISTS subqueries are not supported; use a JOIN")
    select = _expression_subqueries(p, select)

    settings_items = list(select.args.get("settings") or [])
    p.settings_items = settings_items
    settings: dict[str, str] = {"seek_to": scope.seek_to} if scope.seek_to else {}
    for item in settings_items:
        if isinstance(item, exp.EQ) and item.this.name == "query_mode":
            mode = _setting_value(item.expression).lower()
            if mode not in ("table", "streaming"):
                raise p.err(item.expression, f"query_mode must be 'table' or 'streaming', not '{mode}'")
            if mode == "table":
                p.scope = replace(p.scope, bounded=True)
        elif isinstance(item, exp.EQ) and item.this.name == "seek_to" and not p.scope.bounded:
            settings["seek_to"] = _seek_to(p, item.expression)
            p.scope = replace(p.scope, seek_to=settings["seek_to"],
                              partition_offsets=_numbers(_setting_value(item.expression).strip()))
        elif isinstance(item, exp.EQ) and item.this.name == "shards":
            p.scope = replace(p.scope, shards=_setting_value(item.expression).strip())
    last = parsed.emit.last_us if parsed is not None and parsed.emit is not None else None
    if last is not None and "seek_to" not in settings and not p.scope.bounded:
        settings["seek_to"] = f"-{last}us"  # EMIT LAST d: the query starts d ago
        p.scope = replace(p.scope, seek_to=settings["seek_to"])
    if any(function_name(n) in ("earliest_ts", "earliest_timestamp") for n in select.find_all(exp.Anonymous)):
        select = select.transform(_earliest_ts)
    where = select.args.get("where")
    if "seek_to" not in settings and not p.scope.bounded and where is not None:
        seeks = _seeks_from_where(p, where.this, _offsets_are_sequence(p, select))
        if seeks:
            # The streams read from where WHERE starts them (those of subqueries too); a join's sides apart.
            p.side_seeks = seeks
            general = seeks.get("") or next(iter(seeks.values()))
            settings["seek_to"] = general
            p.scope = replace(p.scope, seek_to=general)
    p.aggregating = select.args.get("group") is not None or any(
        is_aggregate(n) for e in select.expressions for n in e.walk() if isinstance(n, exp.Expression))
    p.relations.append(p.from_clause(select))
    _kafka_positions(p, select, settings)
    stream = p.relations[0].stream
    texts = dict(zip(map(id, select.expressions), (parsed.select_texts if parsed else None) or []))
    over_keys = _window_functions(p, select, texts)
    partition_by = [*(parsed.partition_by if parsed is not None else []), *over_keys]
    lookups: list[Lookup] = []
    input_columns: tuple[Column, ...] | None = None
    streams_joined = 0
    whole_input = False
    select_aliases = {e.alias: e.this for e in select.expressions if isinstance(e, exp.Alias)}
    for i, join in enumerate(select.args.get("joins") or []):
        how, strictness = p.join_how(join)
        right, right_node, dimension, labels, right_input = p.join_target(join, strictness)
        columns = {c.name: c for c in p.stream_columns(right, right_node)}
        mode, primary_key = _stream_mode(p.store, right) if right_input is None else ("append", ())
        changelog_join = (not p.bounded and not dimension and not streams_joined and not lookups and not strictness
                          and mode in _KEYED and bool(primary_key) and _keyed_left(p))
        if changelog_join:
            # Two keyed streams join as changelogs (Proton's versioned_kv JOIN versioned_kv).
            if how != "INNER":
                raise p.err(join.this, f"{how} JOIN of two keyed streams is not supported; join them with JOIN")
            right_input = _changelog_input(p, right, primary_key, mode)
            if right_input is not None:
                columns = {c.name: c for c in right_input.columns}
            mode = "append"
        # A bounded query joins its (ended) inputs once, with ClickHouse's strictness; a streaming
        # one joins two streams both ways (Timeplus's bidirectional join). Either reads a keyed
        # stream, and joins ASOF, after a window or dedup or a lookup, through a lookup.
        bounded_join = (p.bounded and strictness != "LATEST" and mode == "append"
                        and p.window is None and p.dedup is None and not lookups)
        dimension = (dimension or (p.bounded and right_input is None)) and not bounded_join
        if strictness in ("ANY", "SEMI", "ANTI") and not bounded_join:
            raise p.err(join.this, f"{strictness} JOIN runs in bounded queries (table(…) or query_mode='table'), "
                                   "and not after a window, dedup or ASOF join")
        bidirectional = bounded_join or (not dimension and strictness in ("", "CROSS") and mode == "append")
        if how in ("RIGHT", "FULL") and not bounded_join and (bidirectional or not p.bounded):
            raise p.err(join.this, f"{how} JOIN of a streaming query is not supported (Proton neither runs it over "
                                   "append streams); run it over table(…) of each stream, or use LEFT JOIN")
        if strictness == "CROSS" and bidirectional and not bounded_join:
            raise p.err(join.this, "CROSS JOIN of two streams is not supported (Proton neither runs it); "
                                   "cross join table(…) of the right stream, or join ON a condition")
        whole_input = whole_input or (how in ("RIGHT", "FULL") and not bounded_join)
        prefix = "__r_" if not streams_joined else f"__r{streams_joined + 1}_"
        rel = _Relation(SRC if bidirectional else f"__dim{i}", labels, right, columns, prefix if bidirectional else "")
        on = exp.true() if strictness == "CROSS" else _join_condition(p, join, rel, strictness == "ASOF", select_aliases)
        # As ClickHouse: ON may name the SELECT's aliases (on t1_a = t2_a).
        on = _inline_aliases(on, select_aliases, {c for r in (*p.relations, rel) for c in r.columns}, set())
        if bidirectional:
            if p.window is not None or p.dedup is not None or lookups:
                raise p.err(join.this, "a stream joins another stream straight from FROM, before any table() join: "
                                       "window or dedup the result in an outer query (WITH j AS (… JOIN …) SELECT …)")
            spec = _stream_join(p, sql, rel, how, on, right_input, strictness if bounded_join else "")
            spec = replace(spec, changelog=changelog_join)
            streams_joined += 1
            p.joined = True
            p.input = p.scope.compile(spec)
            input_columns = tuple(p.input.columns)
            p.coalesced |= {c.name[len(USING_PREFIX):] for c in input_columns if c.name.startswith(USING_PREFIX)}
            p.relations.append(rel)
            continue
        p.relations.append(rel)
        on_sql = p.duck(p.resolve(on, False))
        view = ""
        if strictness == "LATEST":
            keys = _right_keys(p, on, rel)
            if not keys:
                raise p.err(join.this, "LATEST JOIN needs an equality between a column of each side in ON")
            view = newest_per(keys)
        elif mode in ("versioned_kv", "changelog_kv", "mutable") and primary_key:
            view = newest_per(primary_key)
        lookups.append(Lookup(right, rel.name, how, on_sql, view, strictness == "ASOF"))
        p.lookups = True

    if p.session_conditions and p.window is not None:
        start, end = (p.duck(p.resolve(c, False)) for c in p.session_conditions)
        p.window = replace(p.window, start_condition=start, end_condition=end)
    if p.window is not None and p.window.kind == "session" and partition_by:
        p.window = replace(p.window, per_key=True)
    idle_timeout: float | None = None
    state_ttl: int | None = None
    for item in settings_items:
        if not isinstance(item, exp.EQ):
            raise p.err(item, f"SETTINGS expects key=value, not '{item.sql(DIALECT)}'")
        name = item.this.name
        if name == "seek_to":
            if p.bounded:
                raise p.err(item, "seek_to applies to streaming queries, not to table() or query_mode='table'")
            settings.setdefault("seek_to", _seek_to(p, item.expression))  # as read above, or by _kafka_positions
        elif name == "idle_timeout":
            idle_timeout = _idle_timeout(p, item.expression)
        elif name == "pause_on_start":
            value = _setting_value(item.expression).lower()
            if value not in ("true", "false", "1", "0"):
                raise p.err(item.expression, f"pause_on_start must be true or false, not '{value}'")
        elif name == "aggregate_state_ttl_sec":
            value = _setting_value(item.expression)
            if not value.isdigit() or int(value) <= 0:
                raise p.err(item.expression, f"aggregate_state_ttl_sec must be a positive number of seconds, not '{value}'")
            state_ttl = int(value) * 1_000_000
        elif name in ("query_mode", "join_max_buffered_rows", "join_use_nulls", "join_default_strictness") or name in _TUNING_SETTINGS or name in VIEW_SETTINGS:
            pass  # applied where the sources were planned, or Proton's own tuning
        else:
            raise p.err(item.this, f"unknown setting '{name}'; supported: {', '.join(_SETTINGS)}")

    emit = parsed.emit if parsed is not None else None
    p.changelog = emit is not None and emit.changelog
    written = dict(zip(map(id, select.expressions), (parsed.select_texts if parsed else None) or []))
    projections = p.expand_star(select)
    if p.changelog and not any(_output_name(e) == DELTA_COLUMN for e in projections):
        projections.append(exp.column(DELTA_COLUMN))  # a changelog's rows always say what they do
    names = [_output_name(e, written.get(id(e))) for e in projections]
    for i, (name, node) in enumerate(zip(names, projections)):
        if name in names[:i] and isinstance(node, exp.Column) and node.table:
            names[i] = f"{node.table}.{name}"  # as ClickHouse names the joined side's same-named column
    if parsed is None:
        # A subquery may name a column twice when both are the same value (select 1 as x, x):
        # its reader can only name it once, as in ClickHouse.
        firsts = {n: e for n, e in reversed(list(zip(names, projections)))}
        kept = [i for i, (n, e) in enumerate(zip(names, projections))
                if firsts[n] is e or not _same_value(firsts[n], e, n)]
        names, projections = [names[i] for i in kept], [projections[i] for i in kept]
    dup = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if dup is not None:
        raise p.err(projections[names.index(dup, names.index(dup) + 1)], f"duplicate output column '{dup}'; give it an alias")
    aliases = {n: e.this for n, e in zip(names, projections) if isinstance(e, exp.Alias)}
    known = {c for rel in p.relations for c in rel.columns}
    resolved = [p.resolve(_inline_aliases(e.this if isinstance(e, exp.Alias) else e, aliases, known, {n}), True)
                for n, e in zip(names, projections)]

    where = select.args.get("where")
    where_sql: str | None = None
    if where is not None:
        for n in where.find_all(exp.Func):
            if is_aggregate(n):
                raise p.err(n, f"aggregate function {function_name(n)}() is not allowed in WHERE; use HAVING")
        where_sql = p.duck(p.resolve(_inline_aliases(where.this, aliases, known, set()), False))

    resolved = [e.transform(lambda n: _lag_ref(p, n)) for e in resolved]
    group = select.args.get("group")
    having = select.args.get("having")
    is_agg = group is not None or having is not None or any(_has_aggregate(e) for e in resolved)
    distinct = select.args.get("distinct")
    if distinct is not None:
        if distinct.args.get("on") is not None:
            raise located("SELECT DISTINCT ON is not supported; use LIMIT 1 BY <columns>",
                          node_position(distinct.args["on"]) or _keyword_position(scope.sql, "DISTINCT"))
        if is_agg:
            raise located("SELECT DISTINCT with GROUP BY or aggregates is not supported; its groups are distinct already",
                          _keyword_position(scope.sql, "DISTINCT"))
        # DISTINCT rows are the groups of every output column.
        group = exp.Group(expressions=[exp.Literal.number(i + 1) for i in range(len(resolved))])
        is_agg = True
    aggregate: AggregateSpec | None = None
    having_sql: str | None = None
    keys: list[exp.Expression] = []
    lag_partition: tuple[str, ...] = ()
    lags: tuple[tuple[str, int, str], ...] = ()
    if is_agg:
        keys = _group_keys(p, group, names, resolved, aliases)
        for key in partition_by:
            resolved_key = p.resolve(_inline_aliases(key, aliases, known, set()), True)
            if resolved_key not in keys:
                keys.insert(0, resolved_key)  # PARTITION BY: per-key substreams, grouped by the key
        projection = tuple((n, p.finish(e, keys)) for n, e in zip(names, resolved))
        # lag() of an aggregation looks back over its emitted rows.
        lags = tuple((p.finish(x, keys), n, p.duck(d) if d is not None else "NULL") for x, n, d in p.lag_calls)
        if having is not None:
            having_sql = p.finish(_having_expr(p, having.this, aliases), keys)
        emit_spec = _agg_emit(p, emit)
    else:
        if p.window is not None and p.window.kind != "tumble":
            written = "session" if p.window.kind == "session" else p.window.kind
            raise located(f"{written}() without aggregation is not supported; use tumble() or GROUP BY",
                          _keyword_position(scope.sql, written))
        emit_spec = _rows_emit(emit)
        for e in resolved:
            for call in e.find_all(exp.Anonymous):
                if function_name(call) == "emit_version":
                    raise p.err(call, "emit_version() numbers the emits of a streaming aggregation; "
                                      "this query has no aggregation")
        resolved = [e.transform(_constant_delta) for e in resolved]
        lags = tuple((p.duck(x), n, p.duck(d) if d is not None else _lag_default(p, x)) for x, n, d in p.lag_calls)
        if lags and (p.lookups or p.window is not None):
            raise located("lag() works over a stream's rows without windows or joins; "
                          "lag in a subquery, then join or window its output", _keyword_position(scope.sql, "lag"))
        if lags:
            lag_partition = tuple(p.duck(p.resolve(_inline_aliases(key, aliases, known, set()), False))
                                  for key in partition_by)
        projection = tuple((n, p.duck(e)) for n, e in zip(names, resolved))

    def hidden_sql(expression: exp.Expression) -> str:
        """An ORDER BY term that is no output column, as SQL over the query's rows or groups."""
        node = p.resolve(_inline_aliases(expression, aliases, known, set()), True)
        return p.finish(node, keys) if is_agg else p.duck(node)

    order_by, hidden = _order_by(p, select.args.get("order"), names, projections, is_agg, hidden_sql)
    limit_node = select.args.get("limit")
    limit: int | None = None
    limit_by: tuple[int, tuple[str, ...]] | None = None
    if limit_node is not None:
        count = _count(p, limit_node.expression, "LIMIT")
        if limit_node.expressions:
            by: list[str] = []
            for key in limit_node.expressions:
                try:
                    by.append(_output_ref(p, key, names, projections, "LIMIT … BY"))
                except SqlError:
                    if isinstance(key, exp.Literal):
                        raise
                    by.append(f"__order{len(hidden)}")  # a key the SELECT does not output: hidden
                    hidden += ((by[-1], hidden_sql(key)),)
            limit_by = (count, tuple(by))
        else:
            limit = count
    projection = projection + hidden
    if is_agg:  # after ORDER BY and LIMIT BY, which may name aggregates of their own
        aggregate = AggregateSpec(tuple(p.duck(k) for k in keys), tuple(p.args), tuple(p.planned))
    offset_node = select.args.get("offset") or (limit_node.args.get("offset") if limit_node is not None else None)
    offset = 0
    if offset_node is not None:
        offset = _count(p, offset_node.expression if isinstance(offset_node, exp.Offset) else offset_node, "OFFSET")

    return LogicalPlan(
        sql=sql,
        source=SourceSpec(stream, p.bounded, settings.get("seek_to", "latest"), p.input),
        dedup=p.dedup,
        lookups=tuple(lookups),
        where=where_sql,
        window=p.window,
        aggregate=aggregate,
        projection=projection,
        having=having_sql,
        emit=emit_spec,
        idle_timeout=idle_timeout,
        limit=limit,
        order_by=order_by,
        limit_by=limit_by,
        offset=offset,
        lags=lags,
        lag_partition=lag_partition,
        whole_input=p.bounded and (whole_input or any(True for _ in select.find_all(exp.Window))),
        subqueries=tuple(p.subqueries),
        hidden=len(hidden),
        state_ttl_us=state_ttl if is_agg and p.window is None and not p.bounded else None,
        input_columns=input_columns or tuple(p.relations[0].columns.values()),
    )


def _zero_interval(node: exp.Expression) -> bool:
    """Whether ``node`` is an interval of length 0 (``0s``, ``INTERVAL 0 SECOND``, ``'0s'``)."""
    if isinstance(node, exp.Interval):
        text = f"{node.this.name if node.this is not None else ''} {node.unit.name if node.unit is not None else ''}"
    else:
        text = node.name if isinstance(node, exp.Literal) else ""
    return interval_from_text(text) == 0


def _is_interval(node: exp.Expression) -> bool:
    return isinstance(node, exp.Interval) or (isinstance(node, exp.Literal) and node.is_string
                                              and interval_from_text(node.this) is not None)


def _keyword_position(sql: str, keyword: str) -> Position | None:
    """Where ``keyword`` is first written in ``sql`` as a word (for clauses sqlglot keeps no place of)."""
    match = re.search(rf"\b{re.escape(keyword)}\b", sql, flags=re.IGNORECASE)
    return position_at(sql, match.start()) if match else None


def _table_engine(store: StreamLookup, name: str) -> str:
    """The ClickHouse table engine of stream ``name`` (``ENGINE = Memory`` …: a table, read as
    table()); "" for a stream, a CTE, a subquery or a generated source."""
    if is_generated(name):
        return ""
    try:
        return store.get(name).settings.engine
    except NotFound:
        return ""


_KEYED = ("versioned_kv", "changelog_kv")


def _keyed_left(p: _Planner) -> bool:
    """Whether the query's FROM is a keyed stream (versioned_kv or changelog_kv with a primary key),
    made its changelog here if it is not one yet: a join with another keyed stream then joins changelogs."""
    left = p.relations[0]
    if left.stream in p.inputs and DELTA_COLUMN not in {c.name for c in p.inputs[left.stream].columns}:
        return False
    try:
        mode, primary_key = _stream_mode(p.store, left.stream)
    except NotFound:
        return False
    if mode not in _KEYED or not primary_key:
        return False
    if left.stream not in p.inputs and mode != "changelog_kv":
        p.changelog_of(left.stream, exp.to_identifier(left.stream), primary_key)
        left.columns = {c.name: c for c in p.inputs[left.stream].columns}
    return True


def _changelog_input(p: _Planner, name: str, keys: tuple[str, ...], mode: str) -> CompiledInput | None:
    """The changelog of keyed stream ``name`` by ``keys`` (None: a changelog_kv stream is one)."""
    if mode == "changelog_kv":
        return None
    columns = tuple(p.store.get(name).columns)
    source = SourceSpec(name, False, p.scope.seek_to or "latest")
    return p.scope.compile(ChangelogSpec(f"changelog({name}, {', '.join(keys)})", source, None, columns, keys))


def _stream_mode(store: StreamLookup, name: str) -> tuple[str, tuple[str, ...]]:
    """A stream's storage mode ('append', 'versioned_kv', 'changelog_kv', 'mutable') and primary key."""
    if is_generated(name):
        return "append", ()
    settings = store.get(name).settings
    return settings.mode, tuple(settings.primary_key)


def newest_per(keys: tuple[str, ...] | list[str]) -> str:
    """DuckDB SQL keeping the newest row (the last in the log) per value of ``keys`` of ``__dimsrc``."""
    by = ", ".join(_dq(k) for k in keys)
    return ("SELECT * EXCLUDE (__n) FROM (SELECT *, row_number() OVER () AS __n FROM __dimsrc) "
            f"QUALIFY row_number() OVER (PARTITION BY {by} ORDER BY __n DESC) = 1 ORDER BY __n")


def _join_condition(p: _Planner, join: exp.Join, rel: _Relation, asof: bool = False,
                    aliases: dict[str, exp.Expression] | None = None) -> exp.Expression:
    """The join's ON condition (USING (a, b) written out as equalities; of an ASOF join, as
    ClickHouse reads it, the last one is the closest match: left >= right). A USING column the
    left side lacks may be one of the SELECT's ``aliases`` over it (``number / 2 AS n … USING n``)."""
    on = join.args.get("on")
    using = join.args.get("using")
    if using:
        terms: list[exp.Expression] = []
        right = sorted(rel.labels)[0]
        for node in using:
            # The column of the sources joined so far (the first that has it) equals the right side's.
            left = next((r for r in p.relations if node.name in r.columns), None)
            alias = (aliases or {}).get(node.name) if left is None else None
            if node.name not in rel.columns or (left is None and alias is None):
                raise p.err(node, f"USING column '{node.name}' must exist in both '{p.relations[0].stream}' and "
                                  f"'{rel.stream}'")
            compare = exp.GTE if asof and node is using[-1] else exp.EQ
            mine = alias.copy() if alias is not None else exp.column(node.name, table=sorted(left.labels)[0])
            terms.append(compare(this=mine, expression=exp.column(node.name, table=right)))
            rel.using.add(node.name)
        on = exp.and_(*terms)
    if on is None:
        raise p.err(join.this, "a JOIN needs ON <condition> or USING (columns)")
    return on


def _right_keys(p: _Planner, on: exp.Expression, rel: _Relation) -> list[str]:
    """The right side's columns that ON equates with the left side's."""
    keys: list[str] = []
    for term in on.flatten() if isinstance(on, exp.And) else [on]:
        if isinstance(term, exp.EQ):
            for side in (term.this, term.expression):
                if isinstance(side, exp.Column) and side.name in rel.columns and (
                        side.table in rel.labels or (not side.table and side.name not in p.relations[0].columns)):
                    keys.append(side.name)
    return keys


def _stream_join(p: _Planner, sql: str, right: _Relation, how: JoinKind, on: exp.Expression,
                 right_input: CompiledInput | None, strictness: str) -> JoinSpec:
    """The join of the query's input so far (the FROM stream, CTE or subquery, or an earlier join)
    with ``right``: ON resolved over ``__l``/``__r``, its
    ``date_diff_within(interval[, left_time, right_time])`` taken out as the time bound. A
    ``strictness`` (other than "", all matches) or a bounded query makes it a bounded join."""
    saved = p.relations
    left_input = p.input
    p.relations = [replace(rel, name="__l") for rel in saved] + [replace(right, name="__r", prefix="")]
    try:
        within: int | None = None
        within_node: exp.Expression | None = None
        times = (TP_TIME, TP_TIME)
        kept: list[exp.Expression] = []
        for term in on.flatten() if isinstance(on, exp.And) else [on]:
            if isinstance(term, exp.Anonymous) and function_name(term) == "date_diff_within":
                within, times = _date_diff_within(p, term)
                within_node = term
            else:
                kept.append(term)
        parts = [p.duck(p.resolve(term, False)) for term in kept]
        if within is not None:
            parts.append(f'abs(epoch_us(__l.{_dq(times[0])}) - epoch_us(__r.{_dq(times[1])})) <= {within}')
    finally:
        p.relations = saved
    settings = {item.this.name: _setting_value(item.expression) for item in p.settings_items if isinstance(item, exp.EQ)}
    limit = settings.get("join_max_buffered_rows", str(DEFAULT_JOIN_ROWS))
    if not limit.isdigit():
        raise p.err(None, f"join_max_buffered_rows must be a number of rows, not '{limit}'")
    seek = p.scope.seek_to or "latest"

    def side(rel: _Relation) -> str:
        return next((p.side_seeks[label] for label in sorted(rel.labels) if label in p.side_seeks), seek)

    use_nulls = settings.get("join_use_nulls", "0").lower()
    if use_nulls not in ("0", "1", "true", "false"):
        raise p.err(_setting_node(p, "join_use_nulls"), f"join_use_nulls must be 0 or 1, not '{use_nulls}'")
    left = saved[0]
    left_columns = tuple(left_input.columns) if left_input is not None else tuple(left.columns.values())
    bounded = p.bounded
    if not bounded and within is not None:
        for columns, time_column in ((left_columns, times[0]), (tuple(right.columns.values()), times[1])):
            if time_column not in {c.name for c in columns}:
                raise p.err(within_node, f"date_diff_within compares {time_column} of each side, and a side has no "
                                  f"{time_column} column: name the time columns, date_diff_within(interval, "
                                  "left_time, right_time)")
    return JoinSpec(sql, SourceSpec(left.stream, bounded, side(left)), SourceSpec(right.stream, bounded, side(right)),
                    left_columns, tuple(right.columns.values()), how,
                    " AND ".join(f"({part})" for part in parts) or "true", within, times[0], times[1], int(limit),
                    left_input, right_input, right.prefix, strictness or "ALL",  # type: ignore[arg-type]
                    bounded, use_nulls in ("1", "true"), tuple(sorted(right.using)))


def _date_diff_within(p: _Planner, call: exp.Anonymous) -> tuple[int, tuple[str, str]]:
    """``date_diff_within(interval[, left_time, right_time])``: microseconds and the two time columns."""
    args = list(call.expressions)
    if len(args) not in (1, 3):
        raise p.err(call, "date_diff_within takes (interval) or (interval, left time column, right time column)")
    within = interval_micros(p.sql, args[0], "date_diff_within's interval")
    if len(args) == 1:
        return within, (TP_TIME, TP_TIME)
    names: list[str] = []
    for arg, side in zip(args[1:], ("__l", "__r")):
        try:
            resolved = p.resolve(arg, False) if isinstance(arg, exp.Column) else arg
        except SqlError:
            resolved = arg
        if not (isinstance(resolved, exp.Column) and resolved.table == side):
            which = "left" if side == "__l" else "right"
            raise p.err(arg, f"date_diff_within's time columns are a column of each side, left first; "
                             f"'{arg.sql(DIALECT)}' is not a column of the {which} side")
        names.append(resolved.name)
    return within, (names[0], names[1])


def _inline_aliases(node: exp.Expression, aliases: dict[str, exp.Expression], known: set[str],
                    seen: set[str]) -> exp.Expression:
    """``node`` with each name of a SELECT alias (that is no source column) replaced by the
    aliased expression, as ClickHouse lets a SELECT reuse its aliases (``min(t) AS a, … f(a)``);
    ``seen`` are the aliases being expanded (an alias never refers to itself)."""

    def sub(n: exp.Expression) -> exp.Expression:
        if (isinstance(n, exp.Column) and not n.table and isinstance(n.this, exp.Identifier)
                and n.name in aliases and n.name not in known and n.name not in seen):
            return _inline_aliases(aliases[n.name].copy(), aliases, known, seen | {n.name})
        return n

    return node.copy().transform(sub)


def _count(p: _Planner, node: exp.Expression, what: str) -> int:
    if not (isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit()):
        raise p.err(node, f"{what} needs a non-negative integer")
    return int(node.this)


def _output_ref(p: _Planner, key: exp.Expression, names: list[str], projections: list[exp.Expression], what: str) -> str:
    """The output column ``key`` names: by name, by position (1-based) or as an output expression."""
    exprs = [e.this if isinstance(e, exp.Alias) else e for e in projections]
    if isinstance(key, exp.Literal) and not key.is_string and key.this.isdigit() and 0 < int(key.this) <= len(names):
        return names[int(key.this) - 1]
    if isinstance(key, exp.Column) and not key.table and key.name in names:
        return key.name
    if key in exprs:
        return names[exprs.index(key)]
    raise p.err(key, f"{what} '{key.sql(DIALECT)}' must name an output column or its position")


def _order_by(p: _Planner, order: exp.Order | None, names: list[str], projections: list[exp.Expression],
              aggregated: bool, hidden_sql: Callable[[exp.Expression], str]
              ) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """ORDER BY as DuckDB terms over the output columns: of all rows of a bounded query, of each
    emit of a streaming aggregation (a streaming query without one never ends, so it has none).
    A term that is no output column (``ORDER BY _tp_time DESC``) sorts by a hidden column
    ``__order<i>``, returned to be computed after the output columns and dropped after sorting."""
    if order is None:
        return (), ()
    if not p.bounded and not aggregated:
        raise p.err(order, "ORDER BY needs the end of the data (use table(stream)) or an aggregation, "
                           "whose every emit it sorts")
    terms: list[str] = []
    hidden: list[tuple[str, str]] = []
    for item in order.expressions:
        try:
            name = _output_ref(p, item.this, names, projections, "ORDER BY")
        except SqlError:
            if isinstance(item.this, exp.Literal):
                raise
            name = f"__order{len(hidden)}"
            hidden.append((name, hidden_sql(item.this)))
        direction = " DESC" if item.args.get("desc") else ""
        nulls = " NULLS FIRST" if item.args.get("nulls_first") else " NULLS LAST"
        terms.append(f'"{name.replace(chr(34), chr(34) * 2)}"{direction}{nulls}')
    return tuple(terms), tuple(hidden)


def _group_keys(
    p: _Planner, group: exp.Group | None, names: list[str], resolved: list[exp.Expression], aliases: dict[str, exp.Expression]
) -> list[exp.Expression]:
    keys: list[exp.Expression] = []
    for item in group.expressions if group is not None else []:
        if isinstance(item, exp.Literal) and not item.is_string and item.this.isdigit():
            idx = int(item.this) - 1
            if not 0 <= idx < len(resolved):
                raise p.err(item, f"GROUP BY position {item.this} is out of range")
            key = resolved[idx]
        elif isinstance(item, exp.Column) and not item.table and item.name in aliases and item.name not in p.relations[0].columns:
            key = p.resolve(aliases[item.name], True)
        else:
            key = p.resolve(item, True)
        if isinstance(key, exp.Column) and key.name in ("__window_start", "__window_end"):
            continue  # windows are always grouped
        if any(is_aggregate(n) for n in key.walk() if isinstance(n, exp.Expression)):
            raise p.err(item, "GROUP BY cannot contain an aggregate function")
        if any(isinstance(c, exp.Column) and c.name.startswith("__window") for c in key.find_all(exp.Column)):
            raise p.err(item, "GROUP BY may use window_start/window_end only as plain columns")
        if key not in keys:
            keys.append(key)
    return keys


def _having_expr(p: _Planner, node: exp.Expression, aliases: dict[str, exp.Expression]) -> exp.Expression:
    """HAVING may name output aliases (ClickHouse allows it): substitute their expressions, then resolve."""

    def sub(n: exp.Expression) -> exp.Expression:
        if isinstance(n, exp.Column) and not n.table and n.name in aliases:
            return aliases[n.name].copy()
        return n

    return p.resolve(node.copy().transform(sub), True)


def _agg_emit(p: _Planner, emit: EmitClause | None) -> EmitSpec:
    """The emit policy of an aggregation (see :class:`EmitSpec`) from its EMIT clause."""
    if p.bounded:
        return EmitSpec("final")
    if emit is None:
        return EmitSpec("watermark") if p.window is not None else EmitSpec("periodic")
    update_period = emit.batch_us if emit.batch_us is not None else (emit.periodic_us or 0)
    updates = emit.on_update or emit.changelog or emit.per_event
    if p.window is not None:
        if updates:
            return EmitSpec("watermark", emit.delay_us, update_period, changelog=emit.changelog, early="update",
                            timeout_us=emit.timeout_us, per_event=emit.per_event)
        if emit.periodic_us is not None:
            return EmitSpec("watermark", emit.delay_us, emit.periodic_us, emit.repeat, early="periodic",
                            timeout_us=emit.timeout_us)
        return EmitSpec("watermark", emit.delay_us, timeout_us=emit.timeout_us)
    if emit.after_close:
        raise located("EMIT AFTER WINDOW CLOSE needs a tumble() or hop() window; a global aggregation emits "
                      "PERIODIC <interval> or ON UPDATE", emit.position)
    if updates:
        return EmitSpec("update", period_us=update_period, changelog=emit.changelog, per_event=emit.per_event)
    return EmitSpec("periodic", period_us=emit.periodic_us or DEFAULT_PERIOD_US, repeat=emit.repeat)


def _rows_emit(emit: EmitClause | None) -> EmitSpec:
    """The emit policy of a query without aggregation: its rows as they come (EMIT CHANGELOG adds
    ``_tp_delta`` = 1; policies that need an aggregation are errors)."""
    if emit is not None and (emit.after_close or emit.periodic_us is not None or emit.on_update or emit.timeout_us):
        raise located("EMIT AFTER WINDOW CLOSE / PERIODIC / ON UPDATE / TIMEOUT need an aggregation "
                      "(GROUP BY or an aggregate function); a query without one emits every row as it comes",
                      emit.position)
    return EmitSpec("rows", changelog=emit is not None and emit.changelog)
