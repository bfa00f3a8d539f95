"""Timeplus's JSON shortcuts (raw:a.b, raw:a::int): their meaning (pairs in
tests/fixtures/json_shortcuts.sql), their output names, error positions and values end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlglot

from sinkflow.engine import Engine
from sinkflow.errors import SqlError
from sinkflow.sql.defaults import compile_default
from sinkflow.sql.functions import to_duckdb
from sinkflow.sql.parse import DIALECT, parse_select
from sinkflow.streams.store import StreamStore

FIXTURES = Path(__file__).parent.parent / "fixtures" / "json_shortcuts.sql"
PAIRS = [tuple(part.strip() for part in line.split("==>")) for line in FIXTURES.read_text().splitlines()
         if line.strip() and not line.startswith("--")]


@pytest.mark.parametrize(("shortcut", "meaning"), PAIRS, ids=[p[0] for p in PAIRS])
def test_shortcut_means(shortcut: str, meaning: str) -> None:
    parsed = parse_select(f"SELECT {shortcut} FROM t").tree.expressions[0]
    if "?" in shortcut or "'" not in meaning:  # no function to map: compare the trees
        assert parsed == sqlglot.parse_one(meaning, dialect=DIALECT)
    else:  # the same DuckDB computation
        written = to_duckdb(sqlglot.parse_one(meaning, dialect=DIALECT)).sql(dialect="duckdb")
        assert to_duckdb(parsed).sql(dialect="duckdb") == written


def test_output_names_are_the_shortcuts_as_written() -> None:
    assert parse_select("SELECT raw:a.b, raw:n::int, raw:x AS y FROM t").select_texts == [
        "raw:a.b", "raw:n::int", "raw:x AS y"]


def test_an_error_after_a_shortcut_points_at_the_users_text() -> None:
    with pytest.raises(SqlError) as info:
        parse_select("SELECT raw:a.b,\n  raw:c FROM t WHERE")
    assert info.value.position is not None and info.value.position.line == 2


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    store = StreamStore(tmp_path, defaults=compile_default)
    yield Engine(store)
    store.close()


def test_values_end_to_end_and_in_a_default(engine: Engine) -> None:
    engine.execute("CREATE STREAM k (raw string, method string DEFAULT raw:method)")
    engine.execute("""INSERT INTO k (raw) VALUES ('{"method": "GET", "a": {"b": 2.5, "c.d": 7, "l": [1, "x"]}, "n": 3}'),"""
                   """ ('{"method": "PUT", "a": {"b": -1}, "n": 4}')""")
    result = engine.execute("SELECT raw:method, raw:a.b, raw:a.b::float64 AS f, raw:n::int + 1 AS n1, "
                            "raw:`a`.`c.d`, method, raw:a.l[*] AS l FROM table(k) ORDER BY n1")
    assert result.table.schema.names == ["raw:method", "raw:a.b", "f", "n1", "raw:`a`.`c.d`", "method", "l"]
    assert [tuple(r.values()) for r in result.table.to_pylist()] == [
        ("GET", "2.5", 2.5, 4, "7", "GET", ["1", '"x"']), ("PUT", "-1", -1.0, 5, "", "PUT", [])]


def test_an_unknown_function_is_named_before_grouping_checks(engine: Engine) -> None:
    engine.execute("CREATE STREAM k (raw string)")
    with pytest.raises(SqlError) as info:
        engine.execute("SELECT raw:method,\n  avgg(raw:n::int) FROM table(k)")
    assert info.value.message == "unknown function 'avgg' — did you mean 'avg'? at line 2, column 3"
