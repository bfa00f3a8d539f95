"""The streaming SQL engine: plans Timeplus SELECTs and runs them incrementally on DuckDB over Arrow.

:class:`Engine` is the entry point the runtime and the API use::

    engine = Engine(store)
    plan = engine.plan(sql)                  # SqlError (with position) for bad SQL
    execution = engine.start(plan, snapshot) # continue from a snapshot, or start fresh
    batches = await execution.step(0.5)      # Arrow batches conforming to execution.schema
    state = execution.snapshot()

``execute(sql)`` runs any statement: non-SELECT statements go to
:func:`sinkflow.engine.statements.execute_statement`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pyarrow as pa

from sinkflow.engine.compile import (
    ChangelogPlan,
    JoinPlan,
    Plan,
    QueryPlan,
    UnionPlan,
    compile_changelog,
    compile_join,
    compile_plan,
    compile_union,
)
from sinkflow.engine.execution import QueryExecution
from sinkflow.engine.result import StatementResult
from sinkflow.sql.parse import DIALECT, parse_select
from sinkflow.sql.plan import ChangelogSpec, JoinSpec, LogicalPlan, UnionAll, build_plan
from sinkflow.streams.store import StreamStore

# EXPLAIN [AST | SYNTAX | PLAN | PIPELINE | ESTIMATE | QUERY TREE] [setting = value, …] query
_EXPLAIN = re.compile(r"\s*explain(?:\s+(ast|syntax|plan|pipeline|estimate|query\s+tree))?"
                      r"(?:\s+\w+\s*=\s*\w+(?:\s*,\s*\w+\s*=\s*\w+)*)?(?=\s|\()", re.IGNORECASE)

__all__ = ["ChangelogPlan", "Engine", "JoinPlan", "Plan", "QueryExecution", "QueryPlan", "StatementResult", "UnionPlan"]


class Engine:
    """Plans and starts queries over the streams of one :class:`StreamStore`.

    ``clock`` (seconds, monotonic) is the processing time every query it starts reads for its
    timers (``EMIT PERIODIC``, ``EMIT TIMEOUT``, idle timeouts); tests pass a hand-driven one."""

    def __init__(self, store: StreamStore, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock

    def plan(self, sql: str) -> Plan:
        """Plan a SELECT (its CTEs and subqueries included). Raises :class:`SqlError` (with a
        position where known) for anything it cannot run."""
        return self._compile(build_plan(sql, self.store, self._compile))

    def _compile(self, logical: LogicalPlan | UnionAll | JoinSpec | ChangelogSpec) -> Plan:
        if isinstance(logical, ChangelogSpec):
            return compile_changelog(logical)
        if isinstance(logical, JoinSpec):
            return compile_join(logical)
        if isinstance(logical, UnionAll):
            return compile_union(logical, [self._compile(side) for side in logical.inputs])
        dims = [self.store.get(lk.stream).schema for lk in logical.lookups]
        return compile_plan(logical, dims, logical.source.input)

    def start(self, plan: Plan, snapshot: bytes | None = None, idle_timeout: float | None = None) -> QueryExecution:
        """Start ``plan``, fresh or from a :meth:`QueryExecution.snapshot` of the same query.

        ``idle_timeout`` (seconds) is the default processing-time close of open windows when the
        source is quiet; the query's ``SETTINGS idle_timeout=…`` overrides it. Raises
        :class:`InvalidInput` for a snapshot of another query.
        """
        return QueryExecution(plan, self.store, snapshot, idle_timeout, self.clock)

    def execute(self, sql: str) -> StatementResult:
        """Run any statement: DDL/INSERT answer a status, a bounded SELECT its rows, a streaming
        SELECT a started execution, ``EXPLAIN SELECT …`` the operator tree (a row per line)."""
        from sinkflow.engine.statements import execute_statement
        from sinkflow.sql.statements import parse_statement

        explain = _EXPLAIN.match(sql)
        if explain is not None:
            # The SELECT keeps its place in the text, so its errors point where the user wrote.
            query = " " * explain.end() + sql[explain.end():]
            plan = self.plan(query)  # every form checks the query as running it would
            if (explain[1] or "").lower() == "syntax":
                # The statement normalised (sinkflow rewrites nothing before planning).
                lines = parse_select(query).tree.sql(dialect=DIALECT, pretty=True).split("\n")
            else:
                lines = plan.describe().split("\n")  # the operator graph, for AST, PLAN, PIPELINE …
            return StatementResult("rows", table=pa.table({"explain": pa.array(lines, pa.string())}))

        statement = parse_statement(sql)
        if statement is not None:
            return execute_statement(statement, self.store)
        plan = self.plan(sql)
        execution = self.start(plan)
        if plan.bounded:
            try:
                return StatementResult("rows", table=execution.run_to_end())
            finally:
                execution.close()
        return StatementResult("stream", execution=execution)
