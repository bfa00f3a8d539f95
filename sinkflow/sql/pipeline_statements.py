"""Parsing the pipeline statements: external streams, views, INSERT … SELECT and their control.

These are Timeplus's statements for pipelines written in SQL::

    CREATE EXTERNAL STREAM [IF NOT EXISTS] name [(col type, …)] SETTINGS type='kafka', …
    CREATE EXTERNAL TABLE [IF NOT EXISTS] name SETTINGS type='clickhouse', …
    CREATE MATERIALIZED VIEW [IF NOT EXISTS] name [INTO target] AS SELECT …
    CREATE VIEW [IF NOT EXISTS] name AS SELECT …
    INSERT INTO target [(col, …)] SELECT …
    DROP VIEW [IF EXISTS] name
    DROP EXTERNAL STREAM|TABLE [IF EXISTS] name
    SYSTEM PAUSE|RESUME|RECOVER MATERIALIZED VIEW name
    SHOW MATERIALIZED VIEWS | SHOW VIEWS | SHOW EXTERNAL STREAMS | SHOW CREATE [STREAM|VIEW|…] name

:func:`parse_pipeline` is called by :func:`sinkflow.sql.statements.parse_statement` before its
own statements; it reads with the same token parser, so errors carry the same line/column
positions. The queries inside (``AS SELECT …``) are kept as text with their offset in the
statement: the engine plans them, and :func:`relocate` moves its error positions back into the
whole statement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlglot import exp
from sqlglot.tokens import TokenType

from sinkflow.errors import Position, SqlError
from sinkflow.sql.parse import parse_select
from sinkflow.sql.positions import located, position_at
from sinkflow.streams.types import Column

if TYPE_CHECKING:
    from sinkflow.sql.statements import _Parser

__all__ = [
    "CreateExternalStream",
    "CreateMaterializedView",
    "CreateView",
    "DropView",
    "InsertSelect",
    "PipelineStatement",
    "ShowCreate",
    "ShowPipelines",
    "SystemPipeline",
    "parse_pipeline",
    "relocate",
]


@dataclass(frozen=True)
class CreateExternalStream:
    """``CREATE EXTERNAL STREAM|TABLE``. ``settings`` keep the user's names (lower-cased, except
    the header name of ``http_header_<Name>``) and literal values; ``positions`` tell where each
    setting's name is, for errors."""

    name: str
    columns: tuple[Column, ...]
    settings: dict[str, object]
    table: bool = False
    if_not_exists: bool = False
    positions: dict[str, Position] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Query:
    """A query inside a statement: its text and the offset of its first character there."""

    sql: str
    offset: int


@dataclass(frozen=True)
class CreateMaterializedView:
    """``CREATE MATERIALIZED VIEW [IF NOT EXISTS] name [INTO target] AS query``."""

    name: str
    query: Query
    target: str | None = None
    if_not_exists: bool = False


@dataclass(frozen=True)
class CreateView:
    """``CREATE VIEW [IF NOT EXISTS] name AS query``: a named query without state."""

    name: str
    query: Query
    if_not_exists: bool = False


@dataclass(frozen=True)
class InsertSelect:
    """``INSERT INTO target [(col, …)] SELECT …`` (a bounded query, run once)."""

    target: str
    columns: tuple[str, ...] | None
    query: Query


@dataclass(frozen=True)
class DropView:
    """``DROP VIEW [IF EXISTS] name`` (materialized or not)."""

    name: str
    if_exists: bool = False


@dataclass(frozen=True)
class DropExternal:
    """``DROP EXTERNAL STREAM|TABLE [IF EXISTS] name``: only an external stream or table."""

    name: str
    if_exists: bool = False


@dataclass(frozen=True)
class SystemPipeline:
    """``SYSTEM PAUSE|RESUME|RECOVER MATERIALIZED VIEW name``; ``action`` is 'pause', 'resume' or
    'recover'."""

    action: str
    name: str


@dataclass(frozen=True)
class ShowPipelines:
    """``SHOW MATERIALIZED VIEWS`` / ``SHOW VIEWS`` / ``SHOW EXTERNAL STREAMS``; ``kind`` is
    'materialized_view', 'view' or 'external_stream'."""

    kind: str


@dataclass(frozen=True)
class ShowCreate:
    """``SHOW CREATE [STREAM|VIEW|MATERIALIZED VIEW|EXTERNAL STREAM|TABLE] name``."""

    name: str


PipelineStatement = (CreateExternalStream | CreateMaterializedView | CreateView | InsertSelect | DropView
                     | DropExternal | SystemPipeline | ShowPipelines | ShowCreate)

_SHOW_KINDS = {"MATERIALIZED VIEWS": "materialized_view", "VIEWS": "view", "EXTERNAL STREAMS": "external_stream",
               "EXTERNAL TABLES": "external_stream"}
_SHOW_CREATE_WORDS = ("MATERIALIZED VIEW ", "EXTERNAL STREAM ", "EXTERNAL TABLE ", "STREAM ", "VIEW ", "TABLE ")
_QUERY_START = (TokenType.SELECT, TokenType.WITH, TokenType.L_PAREN)


def parse_pipeline(p: _Parser) -> PipelineStatement | None:
    """A pipeline statement at the parser's position, or None (the position is then unchanged)
    when the statement is another kind. Raises :class:`SqlError` with a position."""
    start = p.i
    if p.accept_word("CREATE"):
        if p.accept_word("EXTERNAL"):
            return _external(p)
        if p.accept_word("MATERIALIZED", "VIEW"):
            return _materialized_view(p)
        if p.accept_word("VIEW") or p.accept_word("OR", "REPLACE", "VIEW"):
            if_not_exists = p.accept_word("IF", "NOT", "EXISTS")
            name = p.stream_name("a view name")
            p.expect_word("AS")
            return CreateView(name, _query(p, "CREATE VIEW"), if_not_exists)
    elif p.accept_word("DROP"):
        if p.accept_word("VIEW") or p.accept_word("MATERIALIZED", "VIEW"):
            if_exists = p.accept_word("IF", "EXISTS")
            name = p.stream_name("a view name")
            p.end()
            return DropView(name, if_exists)
        if p.accept_word("EXTERNAL", "STREAM") or p.accept_word("EXTERNAL", "TABLE"):
            if_exists = p.accept_word("IF", "EXISTS")
            name = p.identifier("an external stream name")
            p.end()
            return DropExternal(name, if_exists)
    elif p.accept_word("INSERT"):
        statement = _insert_select(p)
        if statement is not None:
            return statement
    elif p.accept_word("SYSTEM"):
        return _system(p)
    elif p.accept_word("SHOW"):
        statement = _show(p)
        if statement is not None:
            return statement
    p.i = start
    return None


def pause_on_start(query: str) -> bool:
    """Whether a view's query (one that plans: the planner checks the value) says
    ``SETTINGS pause_on_start=true``."""
    for item in parse_select(query).tree.args.get("settings") or []:
        if isinstance(item, exp.EQ) and item.this.name == "pause_on_start":
            return item.expression.sql().strip("'\"").lower() in ("true", "1")
    return False


def relocate(err: SqlError, sql: str, query: Query) -> SqlError:
    """``err`` (raised for ``query.sql``) with its position moved to where it is in ``sql``."""
    if err.position is None:
        return err
    offset = query.offset + _offset_of(query.sql, err.position)
    where = position_at(sql, offset)
    inner = f" at line {err.position.line}, column {err.position.column}"
    message = err.message.replace(inner, f" at line {where.line}, column {where.column}")
    return type(err)(message, position=where)


def _offset_of(text: str, position: Position) -> int:
    lines = text.split("\n")
    return sum(len(line) + 1 for line in lines[:position.line - 1]) + position.column - 1


def _external(p: _Parser) -> CreateExternalStream:
    kind = p.peek()
    table = p.accept_word("TABLE")
    if not table and not p.accept_word("STREAM"):
        raise p.error("expected STREAM or TABLE after CREATE EXTERNAL", kind)
    if_not_exists = p.accept_word("IF", "NOT", "EXISTS")
    name = p.identifier("an external stream name")
    columns: list[Column] = []
    if p.accept(TokenType.L_PAREN):
        while True:
            columns.append(p.column()[0])
            if p.accept(TokenType.COMMA):
                continue
            p.expect(TokenType.R_PAREN, ")")
            break
    if not p.is_word("SETTINGS"):
        raise p.error("expected SETTINGS type='…', … (an external stream needs at least its type)")
    p.i += 1
    settings: dict[str, object] = {}
    positions: dict[str, Position] = {}
    while True:
        key_token = p.peek()
        key = p.identifier("a setting name")
        # Header names keep their case (http_header_Authorization); setting names do not matter.
        key = key if key.lower().startswith("http_header_") else key.lower()
        if key in settings:
            raise p.error(f"setting '{key}' is given twice", key_token)
        p.expect(TokenType.EQ, "=")
        settings[key] = p.literal()
        assert key_token is not None
        positions[key] = position_at(p.sql, key_token.start)
        if not p.accept(TokenType.COMMA):
            break
    p.end()
    return CreateExternalStream(name, tuple(columns), settings, table, if_not_exists, positions)


def _materialized_view(p: _Parser) -> CreateMaterializedView:
    if_not_exists = p.accept_word("IF", "NOT", "EXISTS")
    name = p.stream_name("a view name")
    target = p.stream_name("the stream the view writes INTO") if p.accept(TokenType.INTO) else None
    if not p.is_word("AS"):
        token = p.peek()
        found = f"'{token.text}'" if token is not None else "nothing"
        raise p.error(f"expected [INTO target] AS SELECT … after the view name, found {found}")
    p.i += 1
    return CreateMaterializedView(name, _query(p, "CREATE MATERIALIZED VIEW"), target, if_not_exists)


def _query(p: _Parser, statement: str) -> Query:
    """The rest of the statement as a query (up to a final ';')."""
    first = p.peek()
    if first is None or first.token_type not in _QUERY_START:
        raise p.error(f"{statement} needs a query: expected SELECT after AS", first)
    last = p.tokens[-1]
    if last.token_type == TokenType.SEMICOLON:
        last = p.tokens[-2]
    p.i = len(p.tokens)
    return Query(p.sql[first.start:last.end + 1], first.start)


def _insert_select(p: _Parser) -> InsertSelect | None:
    if not p.accept(TokenType.INTO):
        return None
    p.accept_word("STREAM") or p.accept_word("TABLE")
    target = p.stream_name()
    columns: tuple[str, ...] | None = None
    if p.accept(TokenType.L_PAREN):
        names = [p.identifier("a column name")]
        while p.accept(TokenType.COMMA):
            names.append(p.identifier("a column name"))
        p.expect(TokenType.R_PAREN, ")")
        columns = tuple(names)
    token = p.peek()
    if token is None or token.token_type not in (TokenType.SELECT, TokenType.WITH):
        return None
    return InsertSelect(target, columns, _query(p, "INSERT … SELECT"))


def _command_text(p: _Parser) -> tuple[str, int]:
    """The text after SHOW/SYSTEM (sqlglot reads it as one string) and its offset in the SQL."""
    token = p.next("the rest of the statement")
    p.end()
    offset = p.sql.find(token.text)
    return token.text.strip().rstrip(";").strip(), max(offset, 0)


def _system(p: _Parser) -> SystemPipeline:
    text, offset = _command_text(p)
    words = text.split()
    upper = [w.upper() for w in words]
    if len(words) == 4 and upper[0] in ("PAUSE", "RESUME", "RECOVER") and upper[1:3] == ["MATERIALIZED", "VIEW"]:
        return SystemPipeline(upper[0].lower(), words[3].strip("`\""))
    raise located(f"SYSTEM {' '.join(upper[:3])} is not supported "
                  "(SYSTEM PAUSE|RESUME|RECOVER MATERIALIZED VIEW name is)",
                  position_at(p.sql, offset))


def _show(p: _Parser) -> ShowPipelines | ShowCreate | None:
    token = p.peek()
    if token is None:
        return None
    text = " ".join(token.text.split())
    upper = text.upper().rstrip(";").strip()
    if upper in _SHOW_KINDS:
        _command_text(p)
        return ShowPipelines(_SHOW_KINDS[upper])
    if upper != "CREATE" and not upper.startswith("CREATE "):
        return None
    text, offset = _command_text(p)
    rest = text[len("CREATE"):].strip()
    for words in _SHOW_CREATE_WORDS:
        if rest.upper().startswith(words):
            rest = rest[len(words):].strip()
            break
    if not rest or len(rest.split()) != 1:
        raise located("expected SHOW CREATE name", position_at(p.sql, offset))
    return ShowCreate(rest.strip("`\""))
