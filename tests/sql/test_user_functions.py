"""SQL user-defined functions end to end on real parts (a stream store and a catalog on disk, the
runtime's statement entry point): CREATE/DROP FUNCTION as Proton's tests use them
(02099, 02101, 02102, 02103, 02125, 02126 in tests/queries_ported/0_stateless), use in bounded
and streaming queries, and the functions surviving a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from sinkflow.catalog import Catalog
from sinkflow.engine import Engine
from sinkflow.errors import AlreadyExists, InvalidInput, NotFound, SqlError
from sinkflow.runtime.manager import SinkManager
from sinkflow.runtime.sql_pipelines import SqlPipelines
from sinkflow.sql.defaults import compile_default
from sinkflow.streams.store import StreamStore


@asynccontextmanager
async def pipelines_in(directory: Path) -> AsyncIterator[SqlPipelines]:
    store = StreamStore(directory, defaults=compile_default)
    catalog = Catalog(directory)
    pipelines = SqlPipelines(SinkManager(Engine(store), store, catalog))
    try:
        yield pipelines
    finally:
        await pipelines.sinks.stop()
        await pipelines.stop()
        catalog.close()
        store.close()


async def values(p: SqlPipelines, sql: str) -> list[tuple[object, ...]]:
    result = await p.execute(sql)
    assert result.kind == "rows" and result.table is not None
    return [tuple(row.values()) for row in result.table.to_pylist()]


async def test_functions_call_functions_and_answer_protons_results(tmp_path: Path) -> None:
    async with pipelines_in(tmp_path) as p:
        await p.execute("CREATE FUNCTION 02103_test_function AS x -> x + 1")
        await p.execute("CREATE FUNCTION 02103_empty_args AS () -> 02103_test_function(1)")
        await p.execute("CREATE FUNCTION 02103_arg AS (x) -> 02103_test_function(x)")
        await p.execute("CREATE FUNCTION 02099_lambda_function AS x -> array_map(array_element -> array_element * 2, x)")
        assert await values(p, "SELECT 02103_empty_args(), 02103_arg(1), 02103_arg(02103_arg(1))") == [(2, 2, 3)]
        assert await values(p, "SELECT 02099_lambda_function([1,2,3])") == [([2, 4, 6],)]
        await p.execute("CREATE FUNCTION 02126_function AS () -> 5")
        assert await values(p, "SELECT 02126_function()") == [(5,)]


async def test_create_or_replace_if_not_exists_and_drop(tmp_path: Path) -> None:
    async with pipelines_in(tmp_path) as p:
        await p.execute("CREATE FUNCTION IF NOT EXISTS f AS x -> x + 1")
        with pytest.raises(AlreadyExists):
            await p.execute("CREATE FUNCTION f AS x -> x + 1")
        await p.execute("CREATE FUNCTION IF NOT EXISTS f AS x -> x + 5")
        assert await values(p, "SELECT f(1)") == [(2,)]
        await p.execute("CREATE OR REPLACE FUNCTION f AS x -> x + 2")
        assert await values(p, "SELECT f(1)") == [(3,)]
        await p.execute("DROP FUNCTION f")
        with pytest.raises(NotFound):
            await p.execute("DROP FUNCTION f")
        await p.execute("DROP FUNCTION IF EXISTS f")
        with pytest.raises(SqlError, match="unknown function 'f'"):
            await p.execute("SELECT f(1)")


async def test_bad_functions_and_calls_are_refused_with_their_place(tmp_path: Path) -> None:
    async with pipelines_in(tmp_path) as p:
        await p.execute("CREATE FUNCTION loop_a AS x -> loop_b(x)")
        await p.execute("CREATE FUNCTION loop_b AS x -> loop_a(x)")
        with pytest.raises(SqlError, match=r"function 'loop_a' calls itself .* at line 1, column 8"):
            await p.execute("SELECT loop_a(1)")
        await p.execute("CREATE OR REPLACE FUNCTION loop_b AS x -> x + 1")
        assert await values(p, "SELECT loop_a(1), loop_b(2)") == [(2, 3)]
        with pytest.raises(SqlError, match=r"function 'loop_b' takes 1 argument\(s\), got 2 at line 1, column 8"):
            await p.execute("SELECT loop_b(1, 2)")
        with pytest.raises(InvalidInput, match="built-in function"):
            await p.execute("CREATE FUNCTION length AS x -> 1")
        with pytest.raises(SqlError, match="LANGUAGE JAVASCRIPT functions are not supported"):
            await p.execute("CREATE FUNCTION js(x int) RETURNS int LANGUAGE JAVASCRIPT AS $$ return x $$")
        with pytest.raises(SqlError, match="names a parameter twice"):
            await p.execute("CREATE FUNCTION two AS (x, x) -> x")


async def test_a_function_serves_a_streaming_query_and_outlives_a_restart(tmp_path: Path) -> None:
    async with pipelines_in(tmp_path) as p:
        await p.execute("CREATE STREAM s (a int32)")
        await p.execute("CREATE FUNCTION scaled AS (x, k) -> x * k + 1")
        result = await p.execute("SELECT scaled(a, 10) AS d FROM s")
        assert result.kind == "stream" and result.execution is not None
        try:
            await p.execute("INSERT INTO s VALUES (1), (5)")
            seen: list[int] = []
            for _ in range(100):  # until both rows came out (each step waits for input)
                seen += [row["d"] for batch in await result.execution.step(0.1) for row in batch.to_pylist()]
                if len(seen) >= 2:
                    break
            assert seen == [11, 51]
        finally:
            result.execution.close()
    async with pipelines_in(tmp_path) as p:
        assert await values(p, "SELECT scaled(a, 2) FROM table(s) ORDER BY a") == [(3,), (11,)]
