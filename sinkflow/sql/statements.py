"""Parsing Timeplus's non-SELECT statements: CREATE/DROP STREAM, SHOW STREAMS, DESCRIBE, INSERT.

:func:`parse_statement` returns one of the statement dataclasses below, or ``None`` for a query
(``SELECT`` / ``WITH``), which the engine's SELECT parser handles. sqlglot's ClickHouse dialect
does not know ``CREATE STREAM``, so these statements are read here by a small recursive-descent
parser over sqlglot's ClickHouse tokens (which carry each token's place in the text). Every error
is a :class:`SqlError` with the 1-based line/column of the offending token; statements that are
valid SQL but not supported (UPDATE, CREATE MATERIALIZED VIEW, INSERT … SELECT …) name the
construct.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.dialects.clickhouse import ClickHouse
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from sinkflow.errors import InvalidInput, SqlError
from sinkflow.sql.limits import check_sql_limits
from sinkflow.sql.positions import located, position_at
from sinkflow.streams.types import TP_TIME, Column, parse_type

__all__ = [
    "CreateStream",
    "DescribeStream",
    "DropStream",
    "Insert",
    "ShowStreams",
    "Statement",
    "StreamSettingsSpec",
    "parse_statement",
]


@dataclass(frozen=True)
class StreamSettingsSpec:
    """The SETTINGS of CREATE STREAM (the fields of ``sinkflow.streams.store.StreamSettings``)."""

    event_time_column: str | None = None
    retention_ms: int | None = None
    retention_bytes: int | None = None
    description: str = ""


@dataclass(frozen=True)
class CreateStream:
    """``CREATE STREAM [IF NOT EXISTS] name (col type, …) [SETTINGS k=v, …]``.

    DEFAULT is accepted only as ``_tp_time … DEFAULT now64(…)`` (what every stream does)."""

    name: str
    columns: tuple[Column, ...]
    settings: StreamSettingsSpec = field(default_factory=StreamSettingsSpec)
    if_not_exists: bool = False


@dataclass(frozen=True)
class DropStream:
    """``DROP STREAM [IF EXISTS] name``."""

    name: str
    if_exists: bool = False


@dataclass(frozen=True)
class ShowStreams:
    """``SHOW STREAMS``."""


@dataclass(frozen=True)
class DescribeStream:
    """``DESCRIBE name`` / ``DESC name`` / ``DESCRIBE STREAM name``."""

    name: str


@dataclass(frozen=True)
class Insert:
    """``INSERT INTO name [(col, …)] VALUES (…), (…)``.

    ``columns`` is None when the statement names none (all user columns, in order). ``rows`` hold
    Python values: int, float, str, None, bool and lists (for arrays)."""

    name: str
    columns: tuple[str, ...] | None
    rows: tuple[tuple[object, ...], ...]


Statement = CreateStream | DropStream | ShowStreams | DescribeStream | Insert

# Timeplus's own setting names, and the shorter ones sinkflow's REST API uses, → StreamSettingsSpec field.
_SETTINGS = {
    "event_time_column": "event_time_column",
    "retention_ms": "retention_ms",
    "logstore_retention_ms": "retention_ms",
    "retention_bytes": "retention_bytes",
    "logstore_retention_bytes": "retention_bytes",
    "description": "description",
}
_INT_SETTINGS = {"retention_ms", "retention_bytes"}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_WORD_TOKENS = {TokenType.STRING, TokenType.NUMBER}


class _Parser:
    """Recursive descent over sqlglot's ClickHouse tokens of one statement."""

    def __init__(self, sql: str, tokens: list[Token]) -> None:
        self.sql = sql
        self.tokens = tokens
        self.i = 0

    # -- token helpers ------------------------------------------------------------------------
    def error(self, message: str, token: Token | None = None) -> SqlError:
        token = token if token is not None else self.peek()
        if token is None:
            return located(f"{message} at the end of the statement", position_at(self.sql, len(self.sql.rstrip())))
        return located(message, position_at(self.sql, token.start))

    def peek(self, ahead: int = 0) -> Token | None:
        j = self.i + ahead
        return self.tokens[j] if j < len(self.tokens) else None

    def next(self, what: str) -> Token:
        token = self.peek()
        if token is None:
            raise self.error(f"expected {what}")
        self.i += 1
        return token

    def is_word(self, word: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token is not None and token.token_type not in _WORD_TOKENS and token.text.upper() == word

    def accept_word(self, *words: str) -> bool:
        if all(self.is_word(w, k) for k, w in enumerate(words)):
            self.i += len(words)
            return True
        return False

    def expect_word(self, word: str) -> Token:
        token = self.peek()
        if not self.is_word(word):
            found = f"'{token.text}'" if token is not None else "nothing"
            raise self.error(f"expected {word}, found {found}")
        self.i += 1
        assert token is not None
        return token

    def accept(self, token_type: TokenType) -> Token | None:
        token = self.peek()
        if token is not None and token.token_type == token_type:
            self.i += 1
            return token
        return None

    def expect(self, token_type: TokenType, text: str) -> Token:
        token = self.accept(token_type)
        if token is None:
            found = self.peek()
            raise self.error(f"expected '{text}', found {repr(found.text) if found else 'nothing'}")
        return token

    def identifier(self, what: str) -> str:
        token = self.next(what)
        # Keywords are fine as names (a column called `date` or `key`); quoted names too.
        if token.token_type == TokenType.IDENTIFIER or (token.token_type not in _WORD_TOKENS and _IDENT.match(token.text)):
            return token.text
        raise self.error(f"expected {what}, found '{token.text}'", token)

    def end(self) -> None:
        self.accept(TokenType.SEMICOLON)
        token = self.peek()
        if token is not None:
            raise self.error(f"unexpected '{token.text}' after the end of the statement", token)

    def text_between(self, first: Token, last: Token) -> str:
        return self.sql[first.start:last.end + 1]

    def until_column_end(self, what: str) -> tuple[Token, Token]:
        """Consume tokens up to a top-level ',' or ')' (or a DEFAULT keyword); return first and last."""
        first = self.peek()
        depth = 0
        last: Token | None = None
        while True:
            token = self.peek()
            if token is None:
                raise self.error(f"unterminated column list: expected ')' after {what}")
            if depth == 0 and (token.token_type in (TokenType.COMMA, TokenType.R_PAREN) or self.is_word("DEFAULT")
                               or self.is_word("COMMENT")):
                break
            if token.token_type in (TokenType.L_PAREN, TokenType.L_BRACKET):
                depth += 1
            elif token.token_type in (TokenType.R_PAREN, TokenType.R_BRACKET):
                depth -= 1
            last = token
            self.i += 1
        if first is None or last is None:
            raise self.error(f"expected {what}")
        return first, last

    # -- statements ---------------------------------------------------------------------------
    def statement(self) -> Statement | None:
        first = self.peek()
        assert first is not None
        if first.token_type in (TokenType.SELECT, TokenType.WITH, TokenType.L_PAREN):
            return None
        if self.accept_word("CREATE"):
            return self.create()
        if self.accept_word("DROP"):
            return self.drop()
        if self.accept_word("SHOW"):
            return self.show()
        if self.accept_word("DESCRIBE") or self.accept_word("DESC"):
            self.accept_word("STREAM")
            name = self.identifier("a stream name")
            self.end()
            return DescribeStream(name)
        if self.accept_word("INSERT"):
            return self.insert()
        raise self.error(f"{first.text.upper()} statements are not supported", first)

    def create(self) -> CreateStream:
        kind = self.peek()
        if not self.accept_word("STREAM"):
            words = []
            for ahead in range(3):
                token = self.peek(ahead)
                if token is None or token.token_type in _WORD_TOKENS or not _IDENT.match(token.text):
                    break
                words.append(token.text.upper())
                if token.text.upper() in ("STREAM", "VIEW", "TABLE", "FUNCTION", "DATABASE", "SINK"):
                    break
            construct = " ".join(["CREATE", *words]) if words else "this CREATE statement"
            raise self.error(f"{construct} is not supported (only CREATE STREAM is)", kind)
        if_not_exists = self.accept_word("IF", "NOT", "EXISTS")
        name = self.identifier("a stream name")
        self.expect(TokenType.L_PAREN, "(")
        columns: list[Column] = []
        while True:
            columns.append(self.column())
            if self.accept(TokenType.COMMA):
                continue
            self.expect(TokenType.R_PAREN, ")")
            break
        settings = self.settings() if self.accept_word("SETTINGS") else StreamSettingsSpec()
        self.end()
        return CreateStream(name, tuple(columns), settings, if_not_exists)

    def column(self) -> Column:
        name = self.identifier("a column name")
        type_first, type_last = self.until_column_end(f"the type of column '{name}'")
        type_text = self.text_between(type_first, type_last)
        try:
            data_type = parse_type(type_text)
        except InvalidInput as err:
            raise self.error(f"column '{name}': {err.message}", type_first) from None
        default_token = self.peek()
        if self.accept_word("DEFAULT"):
            first, last = self.until_column_end(f"the DEFAULT of column '{name}'")
            default = self.text_between(first, last)
            try:
                tree = sqlglot.parse_one(default, read="clickhouse")
            except (ParseError, TokenError):
                raise self.error(f"column '{name}': invalid DEFAULT expression '{default}'", first) from None
            # The store fills a missing value with null (nullable) or the type's zero value; a
            # DEFAULT it would ignore is refused rather than silently dropped. The event time's
            # usual `DEFAULT now64(3, 'UTC')` is what every stream does anyway.
            now = isinstance(tree, exp.Anonymous) and tree.name.lower() in ("now", "now64")
            if name != TP_TIME or not now:
                raise self.error(f"column '{name}': DEFAULT expressions are not supported (a value missing from "
                                 "an INSERT is null for nullable columns, else the type's zero value)", default_token)
        if self.is_word("COMMENT"):
            raise self.error(f"column '{name}': COMMENT is not supported")
        return Column(name, data_type)

    def settings(self) -> StreamSettingsSpec:
        values: dict[str, object] = {}
        while True:
            key_token = self.peek()
            key = self.identifier("a setting name")
            field_name = _SETTINGS.get(key.lower())
            if field_name is None:
                raise self.error(f"unknown stream setting '{key}' (supported: {', '.join(sorted(_SETTINGS))})",
                                 key_token)
            self.expect(TokenType.EQ, "=")
            value_token = self.peek()
            value = self.literal()
            if field_name in _INT_SETTINGS:
                if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                    raise self.error(f"setting '{key}' must be a positive integer", value_token)
            elif not isinstance(value, str):
                raise self.error(f"setting '{key}' must be a string", value_token)
            values[field_name] = value
            if not self.accept(TokenType.COMMA):
                break
        return StreamSettingsSpec(**values)  # type: ignore[arg-type]

    def drop(self) -> DropStream:
        kind = self.peek()
        if not self.accept_word("STREAM"):
            what = kind.text.upper() if kind is not None else ""
            raise self.error(f"DROP {what} is not supported (only DROP STREAM is)".replace("  ", " "), kind)
        if_exists = self.accept_word("IF", "EXISTS")
        name = self.identifier("a stream name")
        self.end()
        return DropStream(name, if_exists)

    def show(self) -> ShowStreams:
        token = self.peek()
        # sqlglot tokenizes SHOW as a command: the rest of the statement is one STRING token.
        rest = " ".join(token.text.split()).upper() if token is not None else ""
        if rest != "STREAMS":
            raise self.error(f"SHOW {rest} is not supported (only SHOW STREAMS is)".replace("  ", " "), token)
        self.i += 1
        self.end()
        return ShowStreams()

    def insert(self) -> Insert:
        self.expect_word("INTO")
        self.accept_word("STREAM")
        name = self.identifier("a stream name")
        columns: tuple[str, ...] | None = None
        if self.accept(TokenType.L_PAREN):
            names = [self.identifier("a column name")]
            while self.accept(TokenType.COMMA):
                names.append(self.identifier("a column name"))
            self.expect(TokenType.R_PAREN, ")")
            columns = tuple(names)
        token = self.peek()
        if token is not None and token.token_type in (TokenType.SELECT, TokenType.WITH):
            raise self.error("INSERT … SELECT is not supported (use a sink of type 'timeplus' or VALUES)", token)
        self.expect_word("VALUES")
        rows: list[tuple[object, ...]] = []
        while True:
            self.expect(TokenType.L_PAREN, "(")
            rows.append(tuple(self.literals_until(TokenType.R_PAREN, ")")))
            if not self.accept(TokenType.COMMA):
                break
        self.end()
        return Insert(name, columns, tuple(rows))

    def literal(self) -> object:
        """A literal value: number (optionally negative), string, NULL, true/false or [array]."""
        token = self.next("a value")
        if token.token_type == TokenType.STRING:
            return token.text
        sign = 1
        if token.token_type in (TokenType.DASH, TokenType.PLUS):
            sign = -1 if token.token_type == TokenType.DASH else 1
            token = self.next("a number")
            if token.token_type != TokenType.NUMBER:
                raise self.error(f"expected a number after the sign, found '{token.text}'", token)
        if token.token_type == TokenType.NUMBER:
            value = _number(token.text)
            if value is None:
                raise self.error(f"number {token.text} is out of range", token)
            return sign * value
        if token.token_type == TokenType.NULL:
            return None
        if token.token_type == TokenType.TRUE:
            return True
        if token.token_type == TokenType.FALSE:
            return False
        if token.token_type == TokenType.L_BRACKET:
            return self.literals_until(TokenType.R_BRACKET, "]")
        raise self.error(f"expected a literal value (number, 'string', NULL, true, false or [array]), "
                         f"found '{token.text}'", token)

    def literals_until(self, close: TokenType, text: str) -> list[object]:
        """Comma-separated literals up to the ``close`` token (``text``), which it consumes; none is fine."""
        items: list[object] = []
        if not self.accept(close):
            items.append(self.literal())
            while self.accept(TokenType.COMMA):
                items.append(self.literal())
            self.expect(close, text)
        return items


def _number(text: str) -> int | float | None:
    """The value of a number token; None when it does not fit a float."""
    try:
        return int(text)
    except ValueError:
        value = float(text)
        return None if math.isinf(value) else value


def _unterminated_quote(sql: str) -> int | None:
    """The offset of a quote that is never closed (what makes the tokenizer fail), if any."""
    opened: int | None = None
    quote = ""
    i = 0
    while i < len(sql):
        char = sql[i]
        if opened is None:
            if char in "'\"`":
                opened, quote = i, char
        elif char == "\\":
            i += 1  # an escaped character
        elif char == quote:
            if sql[i + 1:i + 2] == quote:
                i += 1  # a doubled quote stands for itself
            else:
                opened = None
        i += 1
    return opened


def parse_statement(sql: str) -> Statement | None:
    """Parse one statement; None when it is a query (SELECT / WITH) for the SELECT parser.

    Raises :class:`SqlError` with a line/column position for text that does not tokenize or
    parse, and naming the construct for statements sinkflow does not support.
    """
    if not sql or not sql.strip():
        raise SqlError("empty SQL statement")
    check_sql_limits(sql)
    try:
        tokens = ClickHouse().tokenize(sql)
    except TokenError:
        offset = _unterminated_quote(sql)
        if offset is None:
            raise SqlError("invalid SQL: it cannot be split into tokens") from None
        pos = position_at(sql, offset)
        raise SqlError(f"invalid SQL: the quote at line {pos.line}, column {pos.column} is never closed",
                       position=pos) from None
    if not tokens or all(t.token_type == TokenType.SEMICOLON for t in tokens):
        raise SqlError("empty SQL statement")
    return _Parser(sql, tokens).statement()
