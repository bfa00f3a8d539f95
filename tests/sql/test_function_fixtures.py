"""Timeplus functions name by name: pairs of expression and value in tests/fixtures/functions.sql,
each mapped with to_duckdb and run on DuckDB."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import duckdb
import pytest
import sqlglot

from sinkflow.sql.functions import to_duckdb
from sinkflow.sql.parse import Timeplus

FIXTURES = Path(__file__).parent.parent / "fixtures" / "functions.sql"
PAIRS = [tuple(part.strip() for part in line.rsplit(" ==> ", 1)) for line in FIXTURES.read_text().splitlines()
         if line.strip() and not line.startswith("--")]


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute("SET TimeZone='UTC'")
    return connection


@pytest.mark.parametrize(("expression", "expected"), PAIRS, ids=[p[0] for p in PAIRS])
def test_function(con: duckdb.DuckDBPyConnection, expression: str, expected: str) -> None:
    sql = to_duckdb(sqlglot.parse_one(expression, read=Timeplus)).sql(dialect="duckdb")
    actual = con.execute(f"SELECT {sql}").fetchone()[0]
    want = ast.literal_eval(expected)
    if isinstance(want, float):
        assert math.isclose(actual, want, rel_tol=1e-9), f"{expression} → {actual!r}"
    else:
        assert actual == want, f"{expression} → {actual!r} (SQL: {sql})"
