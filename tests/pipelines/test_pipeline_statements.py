"""Parsing the pipeline statements, their error positions, and plain views' expansion."""

from __future__ import annotations

import pytest

from sinkflow.errors import Position, SqlError
from sinkflow.sql.pipeline_statements import (
    CreateExternalStream,
    CreateMaterializedView,
    CreateView,
    DropExternal,
    DropView,
    InsertSelect,
    Query,
    ShowCreate,
    ShowPipelines,
    SystemPipeline,
    relocate,
)
from sinkflow.sql.statements import parse_statement
from sinkflow.sql.views import expand_views
from sinkflow.streams.types import Column, parse_type

MV = "CREATE MATERIALIZED VIEW IF NOT EXISTS mv INTO ext AS SELECT cid, count() FROM tumble(cars, 1s) GROUP BY cid;"

PARSED: list[tuple[str, object]] = [
    (MV, CreateMaterializedView("mv", Query("SELECT cid, count() FROM tumble(cars, 1s) GROUP BY cid", 54),
                                "ext", True)),
    ("CREATE MATERIALIZED VIEW mv AS SELECT 1", CreateMaterializedView("mv", Query("SELECT 1", 31))),
    ("CREATE VIEW v AS SELECT a FROM s", CreateView("v", Query("SELECT a FROM s", 17))),
    ("INSERT INTO t (x, y) SELECT a, b FROM table(s)",
     InsertSelect("t", ("x", "y"), Query("SELECT a, b FROM table(s)", 21))),
    ("DROP VIEW IF EXISTS mv", DropView("mv", True)),
    ("DROP MATERIALIZED VIEW mv", DropView("mv")),
    ("SYSTEM PAUSE MATERIALIZED VIEW mv", SystemPipeline("pause", "mv")),
    ("system resume materialized view mv;", SystemPipeline("resume", "mv")),
    ("SYSTEM RECOVER MATERIALIZED VIEW mv", SystemPipeline("recover", "mv")),
    ("DROP EXTERNAL TABLE IF EXISTS ch", DropExternal("ch", True)),
    ("DROP EXTERNAL STREAM k", DropExternal("k")),
    ("SHOW MATERIALIZED VIEWS", ShowPipelines("materialized_view")),
    ("SHOW VIEWS", ShowPipelines("view")),
    ("SHOW EXTERNAL STREAMS", ShowPipelines("external_stream")),
    ("SHOW CREATE mv", ShowCreate("mv")),
    ("SHOW CREATE EXTERNAL STREAM k", ShowCreate("k")),
]


@pytest.mark.parametrize(("sql", "expected"), PARSED, ids=[p[0][:50] for p in PARSED])
def test_parse(sql: str, expected: object) -> None:
    assert parse_statement(sql) == expected


def test_external_stream_keeps_settings_and_their_places() -> None:
    parsed = parse_statement("CREATE EXTERNAL STREAM IF NOT EXISTS k (raw string)\nSETTINGS type='kafka', "
                             "Brokers='b:9092', one_message_per_row=true, http_header_X_Key='v', n=-3")
    assert isinstance(parsed, CreateExternalStream)
    assert parsed.name == "k" and parsed.if_not_exists and not parsed.table
    assert parsed.columns == (Column("raw", parse_type("string")),)
    assert parsed.settings == {"type": "kafka", "brokers": "b:9092", "one_message_per_row": True,
                               "http_header_X_Key": "v", "n": -3}
    assert (parsed.positions["brokers"].line, parsed.positions["brokers"].column) == (2, 24)
    table = parse_statement("CREATE EXTERNAL TABLE ch SETTINGS type='clickhouse', address='h:9000'")
    assert isinstance(table, CreateExternalStream) and table.table and table.columns == ()


ERRORS: list[tuple[str, str, tuple[int, int]]] = [
    ("CREATE EXTERNAL VIEW x", "expected STREAM or TABLE after CREATE EXTERNAL", (1, 17)),
    ("CREATE EXTERNAL STREAM k (a string) SETTINGS type='kafka', type='http'", "setting 'type' is given twice", (1, 60)),
    ("CREATE MATERIALIZED VIEW mv INTO AS SELECT 1", "expected [INTO target] AS SELECT", (1, 37)),
    ("CREATE MATERIALIZED VIEW mv AS INSERT INTO t VALUES (1)", "needs a query: expected SELECT after AS", (1, 32)),
    ("CREATE VIEW v AS", "needs a query", (1, 17)),
    ("SYSTEM SHUTDOWN NOW", "SYSTEM SHUTDOWN NOW is not supported", (1, 8)),
    ("SHOW CREATE", "expected SHOW CREATE name", (1, 6)),
]


@pytest.mark.parametrize(("sql", "message", "where"), ERRORS, ids=[e[0][:50] for e in ERRORS])
def test_parse_error(sql: str, message: str, where: tuple[int, int]) -> None:
    with pytest.raises(SqlError) as info:
        parse_statement(sql)
    assert message in info.value.message
    assert info.value.position is not None
    assert (info.value.position.line, info.value.position.column) == where


def test_relocate_moves_a_query_error_into_the_statement() -> None:
    statement = "CREATE MATERIALIZED VIEW mv AS\n  SELECT a,\n    nope FROM s"
    parsed = parse_statement(statement)
    assert isinstance(parsed, CreateMaterializedView)
    inner = SqlError("unknown column 'nope' at line 2, column 5", position=Position(2, 5))
    moved = relocate(inner, statement, parsed.query)
    assert moved.position == Position(3, 5)
    assert moved.message == "unknown column 'nope' at line 3, column 5"


def test_views_expand_into_subqueries_views_inside_views_too() -> None:
    views = {"fast": "SELECT cid, speed FROM cars WHERE speed > 50", "faster": "SELECT cid FROM fast WHERE speed > 90"}
    assert expand_views("SELECT count() FROM faster", views) == (
        "SELECT count() FROM (SELECT cid FROM (SELECT cid, speed FROM cars WHERE speed > 50) AS fast "
        "WHERE speed > 90) AS faster")
    # A column or a string that happens to carry a view's name is not a view.
    assert expand_views("SELECT fast, 'fast' FROM cars", views) == "SELECT fast, 'fast' FROM cars"
    with pytest.raises(SqlError, match="cycle"):
        expand_views("SELECT * FROM a", {"a": "SELECT * FROM b", "b": "SELECT * FROM a"})
