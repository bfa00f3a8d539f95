"""Non-SELECT statements: SQL → parsed statement or error (with position), and their execution
against a real StreamStore in a temporary directory."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from sinkflow.engine.statements import execute_statement
from sinkflow.errors import AlreadyExists, InvalidInput, NotFound, SqlError
from sinkflow.sql.statements import (
    AlterStream,
    CreateStream,
    DescribeStream,
    DropStream,
    Insert,
    Maintenance,
    SetSettings,
    ShowStreams,
    TruncateStream,
    parse_statement,
)
from sinkflow.streams.store import StreamStore
from sinkflow.streams.types import Column, parse_type


def col(name: str, type_text: str) -> Column:
    return Column(name, parse_type(type_text))


# (SQL, the statement it parses to)
PARSED: list[tuple[str, object]] = [
    ("SELECT * FROM car_live_data", None),
    ("with x AS (SELECT 1) SELECT * FROM x", None),
    ("(SELECT 1)", None),
    ("CREATE STREAM s (a int32)", CreateStream("s", (col("a", "int32"),))),
    (
        "create stream if not exists car (cid string, speed_kmh float64, tags array(string), "
        "at datetime64(3, 'UTC'), price decimal(10, 2), owner nullable(string))",
        CreateStream(
            "car",
            (col("cid", "string"), col("speed_kmh", "float64"), col("tags", "array(string)"),
             col("at", "datetime64(3, 'UTC')"), col("price", "decimal(10, 2)"), col("owner", "nullable(string)")),
            if_not_exists=True,
        ),
    ),
    (
        "CREATE STREAM e (id uint64, at datetime64(3), note string, _tp_time datetime64(3, 'UTC') DEFAULT "
        "now64(3, 'UTC'))\nSETTINGS event_time_column='at', retention_ms=3600000, logstore_retention_bytes=1048576;",
        CreateStream(
            "e",
            (col("id", "uint64"), col("at", "datetime64(3)"), col("note", "string"),
             col("_tp_time", "datetime64(3, 'UTC')")),
            (("event_time_column", "at"), ("retention_ms", 3600000), ("logstore_retention_bytes", 1048576)),
        ),
    ),
    ("CREATE STREAM k (key string, value string, date date)",  # keywords are fine as column names
     CreateStream("k", (col("key", "string"), col("value", "string"), col("date", "date")))),
    ("DROP STREAM s", DropStream("s")),
    ("drop stream if exists s;", DropStream("s", if_exists=True)),
    ("SHOW STREAMS", ShowStreams()),
    ("CREATE STREAM m (x int32) ENGINE = Memory", CreateStream("m", (col("x", "int32"),), (("engine", "Memory"),))),
    ("create stream r (d date) ENGINE = ReplicatedMergeTree('/t/{database}/r', 'r1', d, (d), 8192) ORDER BY d",
     CreateStream("r", (col("d", "date"),), (("engine", "ReplicatedMergeTree"),))),
    ("SET query_mode = 'table', max_threads = 1", SetSettings((("query_mode", "table"), ("max_threads", 1)))),
    ("show streams;", ShowStreams()),
    ("DESCRIBE s", DescribeStream("s")),
    ("DESC s", DescribeStream("s")),
    ("DESCRIBE STREAM s", DescribeStream("s")),
    ("INSERT INTO s (a, b) VALUES (1, 'x'), (-2, 'it''s')", Insert("s", ("a", "b"), ((1, "x"), (-2, "it's")))),
    ("EXPLAIN SYNTAX SELECT 1", None),
    ("INSERT INTO db.s (a) VALUES (1) (2)", Insert("s", ("a",), ((1,), (2,)))),
    ("CREATE STREAM db.m (a int8(8), b BIGINT(64), c FLOAT(12), d VARCHAR(11)) ENGINE = MergeTree ORDER BY a "
     "SETTINGS index_granularity = 8192, min_bytes_for_wide_part = 0",
     CreateStream("m", (col("a", "int8"), col("b", "int64"), col("c", "float32"), col("d", "string")),
                  (("engine", "MergeTree"),))),
    ("DROP TABLE IF EXISTS default.s", DropStream("s", True)),
    ("SHOW TABLES FROM db", ShowStreams()),
    ("TRUNCATE STREAM IF EXISTS db.s", TruncateStream("s", True)),
    ("OPTIMIZE TABLE db.s PARTITION 201901 FINAL DEDUPLICATE", Maintenance("OPTIMIZE", "s")),
    ("CHECK TABLE s SETTINGS max_threads = 1", Maintenance("CHECK TABLE", "s", check=True)),
    ("SYSTEM DROP MARK CACHE", Maintenance("SYSTEM DROP MARK CACHE")),
    ("CREATE DATABASE IF NOT EXISTS db ENGINE = Atomic", Maintenance("CREATE DATABASE db")),
    ("DROP DATABASE db", Maintenance("DROP DATABASE db")),
    ("USE db", Maintenance("USE db")),
    ("SET max_insert_block_size = DEFAULT", SetSettings((("max_insert_block_size", "DEFAULT"),))),
    ("ALTER STREAM db.s UPDATE a = a + 1, b = 'x, y' WHERE c IN (1, 2) SETTINGS mutations_sync = 2",
     AlterStream("s", "update", assignments=(("a", "a + 1"), ("b", "'x, y'")), where="c IN (1, 2)")),
    ('INSERT INTO s (a, b) FORMAT JSONEachRow {"a": 1.5, "b": "x"} {"b": "y", "a": -.5}, {"a": null}',
     Insert("s", ("a", "b"), ((1.5, "x"), (-0.5, "y"), (None, None)))),
    ('INSERT INTO s FORMAT JSONEachRow {"a": 1} {"c": [1]}', Insert("s", ("a", "c"), ((1, None), (None, [1])))),
    ("INSERT INTO s FORMAT Values (1) (2)", Insert("s", None, ((1,), (2,)))),
    ("ALTER TABLE s DELETE WHERE a = 1", AlterStream("s", "delete", where="a = 1")),
    ("DELETE FROM s WHERE a > 2", AlterStream("s", "delete", where="a > 2")),
    ("ALTER STREAM s RENAME COLUMN IF EXISTS a TO b", AlterStream("s", "rename", "a", True, new_name="b")),
    ("ALTER STREAM s DROP COLUMN a", AlterStream("s", "drop", "a")),
    ("ALTER STREAM s MODIFY COLUMN a nullable(int64)",
     AlterStream("s", "modify", "a", definition=col("a", "nullable(int64)"))),
    ("ALTER STREAM s MATERIALIZE INDEX idx IN PARTITION 1", Maintenance("ALTER STREAM … MATERIALIZE INDEX", "s")),
    ("INSERT INTO s VALUES (1.5, NULL, true, false, [1, 2], [], 'a\\'b', -1e3)",
     Insert("s", None, ((1.5, None, True, False, [1, 2], [], "a'b", -1000.0),))),
]


@pytest.mark.parametrize(("sql", "expected"), PARSED, ids=[p[0][:50] for p in PARSED])
def test_parse(sql: str, expected: object) -> None:
    assert parse_statement(sql) == expected


# (SQL, part of the message, (line, column) or None)
ERRORS: list[tuple[str, str, tuple[int, int] | None]] = [
    ("UPDATE s SET a = 1", "UPDATE statements are not supported", (1, 1)),
    ("CREATE MATERIALIZED VIEW v SELECT 1", "expected [INTO target] AS SELECT", (1, 28)),
    ("CREATE TABLE t (a int)", "CREATE TABLE is not supported", (1, 8)),
    ("CREATE EXTERNAL STREAM k (a string)", "expected SETTINGS type=", (1, 36)),
    ("CREATE STREAM s (a int32) SETTINGS shardz=3", "unknown stream setting 'shardz'", (1, 36)),
    ("DROP USER v", "DROP USER is not supported", (1, 6)),
    ("SHOW GRANTS", "SHOW GRANTS is not supported", (1, 6)),
    ("OPTIMIZE TABLE s t", "expected OPTIMIZE [TABLE | STREAM] name", (1, 10)),
    ("SYSTEM SHUTDOWN", "SYSTEM SHUTDOWN is not supported", (1, 8)),
    ("SET a = DEFAULT x", "unexpected 'x' after the end of the statement", (1, 17)),
    ("ALTER STREAM s UPDATE a = (1 + WHERE b", "invalid expression", None),
    ('INSERT INTO s FORMAT JSONEachRow {"a": 1,\n "b": }', "JSONEachRow: Expecting value", (2, 7)),
    ("INSERT INTO s FORMAT CSV 1,2", "INSERT … FORMAT takes its rows here as Values or JSONEachRow", (1, 22)),
    ("ALTER STREAM s FETCH PARTITION 1", "ALTER STREAM … FETCH PARTITION is not supported", (1, 16)),
    ("CREATE STREAM s (a in32)", "column 'a': unknown type 'in32'", (1, 20)),
    ("CREATE STREAM s (\n  a int32,\n  b decimal(50, 2)\n)", "column 'b': type 'decimal(50, 2)'", (3, 5)),
    ("CREATE STREAM s (a int32", "expected ')'", (1, 25)),
    ("CREATE STREAM s a int32", "expected '('", (1, 17)),
    ("CREATE STREAM (a int32)", "expected a stream name", (1, 15)),
    ("CREATE STREAM s (a int32) SETTINGS retention_ms='soon'", "setting 'retention_ms' must be a positive integer", (1, 49)),
    ("CREATE STREAM s (a int32) SETTINGS event_time_column=3", "setting 'event_time_column' must be a string", (1, 54)),
    ("INSERT INTO s VALUES (1), (2", "expected ')'", (1, 29)),
    ("INSERT INTO s VALUES (a + 1)", "VALUES takes constants and functions, not columns ('a')", (1, 23)),
    ("INSERT INTO s VALUES (1,\n  lenght('x'))", "unknown function 'lenght' — did you mean 'length'?", (2, 3)),
    ("INSERT INTO s (a b) VALUES (1)", "expected ')'", (1, 18)),
    ("INSERT s VALUES (1)", "expected INTO", (1, 8)),
    ("DROP STREAM s extra", "unexpected 'extra' after the end of the statement", (1, 15)),
    ("SHOW STREAMS; SELECT 1", "unexpected 'SELECT' after the end of the statement", (1, 15)),
    ("   ", "empty SQL statement", None),
    ("INSERT INTO s VALUES (1, 'it''s ok'),\n  ('abc)", "the quote at line 2, column 4 is never closed", (2, 4)),
    ("INSERT INTO s VALUES (1e400)", "number 1e400 is out of range", (1, 23)),
]


@pytest.mark.parametrize(("sql", "message", "position"), ERRORS, ids=[e[0][:50] for e in ERRORS])
def test_parse_error(sql: str, message: str, position: tuple[int, int] | None) -> None:
    with pytest.raises(SqlError) as info:
        parse_statement(sql)
    assert message in info.value.message
    if position is not None:
        assert info.value.position is not None
        assert (info.value.position.line, info.value.position.column) == position
        assert f"line {position[0]}, column {position[1]}" in info.value.message


# --- execution against a real store ---------------------------------------------------------------
@pytest.fixture
def store(tmp_path: Path) -> StreamStore:
    s = StreamStore(tmp_path)
    yield s
    s.close()


def run(sql: str, store: StreamStore):
    stmt = parse_statement(sql)
    assert stmt is not None
    return execute_statement(stmt, store)


def test_create_insert_and_read_back(store: StreamStore) -> None:
    result = run("CREATE STREAM cars (cid string, speed float64, tags array(string), at datetime64(3)) "
                 "SETTINGS event_time_column='at'", store)
    assert (result.kind, result.message) == ("status", "created stream 'cars'")
    result = run("INSERT INTO cars (cid, speed, tags, at) VALUES "
                 "('c1', 55.5, ['a'], '2024-01-01 00:00:01'), ('c2', 70, [], '2024-01-01 00:00:02.250')", store)
    assert (result.kind, result.count, result.message) == ("status", 2, "inserted 2 rows into 'cars'")
    rows = store.get("cars").table().to_pylist()
    assert [(r["cid"], r["speed"], r["tags"]) for r in rows] == [("c1", 55.5, ["a"]), ("c2", 70.0, [])]
    assert [r["_tp_time"] for r in rows] == [datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC),
                                             datetime(2024, 1, 1, 0, 0, 2, 250000, tzinfo=UTC)]


def test_insert_without_column_list_fills_all_columns(store: StreamStore) -> None:
    run("CREATE STREAM s (a int32, b string)", store)
    assert run("INSERT INTO s VALUES (1, 'x')", store).count == 1
    assert [(r["a"], r["b"]) for r in store.get("s").table().to_pylist()] == [(1, "x")]


def test_bad_insert_value_names_row_column_value_and_stores_nothing(store: StreamStore) -> None:
    run("CREATE STREAM s (a int32, b string)", store)
    with pytest.raises(InvalidInput) as info:
        run("INSERT INTO s (a, b) VALUES (1, 'ok'), ('zz', 'bad')", store)
    assert "row 2" in info.value.message and "'a'" in info.value.message and "'zz'" in info.value.message
    assert store.get("s").head == 0
    assert store.get("s").table().num_rows == 0


def test_insert_into_unknown_stream_or_column(store: StreamStore) -> None:
    with pytest.raises(NotFound, match="stream 'nope' does not exist"):
        run("INSERT INTO nope VALUES (1)", store)
    run("CREATE STREAM s (a int32)", store)
    with pytest.raises(InvalidInput, match="unknown column 'q'"):
        run("INSERT INTO s (q) VALUES (1)", store)
    assert store.get("s").head == 0


def test_show_streams_and_describe(store: StreamStore) -> None:
    run("CREATE STREAM b (x int64) SETTINGS description='second'", store)
    run("CREATE STREAM a (t datetime64(3), y string) SETTINGS event_time_column='t'", store)
    run("INSERT INTO b (x) VALUES (1), (2), (3)", store)
    shown = run("SHOW STREAMS", store)
    assert shown.kind == "rows"
    assert shown.table.to_pylist() == [
        {"name": "a", "columns": 3, "rows": 0, "event_time_column": "t", "description": "", "mode": "append",
         "primary_key": []},
        {"name": "b", "columns": 2, "rows": 3, "event_time_column": None, "description": "second",
         "mode": "append", "primary_key": []},
    ]
    described = run("DESCRIBE b", store)
    assert described.kind == "rows"
    assert described.table.to_pylist() == [
        {"name": "x", "type": "int64", "default_type": "", "default_expression": "", "comment": ""},
        {"name": "_tp_time", "type": "datetime64(3, 'UTC')", "default_type": "DEFAULT",
         "default_expression": "now64(3, 'UTC')", "comment": ""},
    ]


def test_create_existing_and_drop(store: StreamStore) -> None:
    run("CREATE STREAM s (a int32)", store)
    with pytest.raises(AlreadyExists):
        run("CREATE STREAM s (a int32)", store)
    assert run("CREATE STREAM IF NOT EXISTS s (a string)", store).message == "stream 's' already exists"
    assert store.get("s").columns[0].type.name == "int32"  # the existing stream is untouched
    assert run("DROP STREAM s", store).message == "dropped stream 's'"
    assert not store.exists("s")
    with pytest.raises(NotFound):
        run("DROP STREAM s", store)
    assert run("DROP STREAM IF EXISTS s", store).message == "stream 's' does not exist"
    with pytest.raises(NotFound):
        run("DESCRIBE s", store)


def test_create_with_the_event_time_column_spelled_out(store: StreamStore) -> None:
    run("CREATE STREAM s (a int32, _tp_time datetime64(3, 'UTC') DEFAULT now64(3, 'UTC'))", store)
    assert [(c.name, c.type.name) for c in store.get("s").columns] == [
        ("a", "int32"), ("_tp_time", "datetime64(3, 'UTC')")]


def test_create_with_bad_settings_stores_nothing(store: StreamStore) -> None:
    with pytest.raises(InvalidInput, match="event_time_column 'nope'"):
        run("CREATE STREAM s (a int32) SETTINGS event_time_column='nope'", store)
    assert not store.exists("s")


def test_streams_survive_a_new_store(tmp_path: Path) -> None:
    first = StreamStore(tmp_path)
    run("CREATE STREAM s (a int32)", first)
    run("INSERT INTO s VALUES (5)", first)
    first.close()
    second = StreamStore(tmp_path)
    try:
        assert run("SHOW STREAMS", second).table.column("rows").to_pylist() == [1]
    finally:
        second.close()


def test_explain_forms_answer_the_normalised_query_or_the_operator_tree(store: StreamStore) -> None:
    from sinkflow.engine import Engine

    engine = Engine(store)
    engine.execute("CREATE STREAM n (k uint32, name string)")
    syntax = engine.execute("EXPLAIN SYNTAX SELECT k FROM table(n) WHERE name = 'A'")
    assert syntax.table is not None
    assert syntax.table.column("explain").to_pylist() == ["SELECT", "  k", "FROM table(n)", "WHERE", "  name = 'A'"]
    tree = engine.execute("EXPLAIN SELECT k FROM n WHERE name = 'A'").table
    assert tree is not None and tree.column("explain").to_pylist()[-1].strip() == "Scan n"
    for form in ("PLAN", "PIPELINE", "AST", "ESTIMATE", "PLAN header = 1, actions = 1"):
        answer = engine.execute(f"EXPLAIN {form} SELECT k FROM n WHERE name = 'A'").table
        assert answer is not None and answer.column("explain").to_pylist() == tree.column("explain").to_pylist()
    with pytest.raises(SqlError, match="unknown column 'nope'"):
        engine.execute("EXPLAIN SYNTAX SELECT nope FROM n")
