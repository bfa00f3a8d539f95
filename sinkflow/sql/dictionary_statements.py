"""Parsing ``CREATE [OR REPLACE] DICTIONARY``, ``DROP DICTIONARY`` and ``SHOW DICTIONARIES``.

``CREATE DICTIONARY [IF NOT EXISTS] name (col type [DEFAULT v], …) PRIMARY KEY col
SOURCE(TIMEPLUS(STREAM 'stream')) [LAYOUT(…)] [LIFETIME(…)]``: the dictionary reads a stream of
this server. The other sources of Timeplus's docs (ClickHouse, MySQL, PostgreSQL, HTTP, files,
executables, a remote Timeplus) are refused by name. :func:`parse_dictionary_statement` reads with
the statement parser of :mod:`sinkflow.sql.statements` (its tokens, positions and errors).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlglot.tokens import TokenType

from sinkflow.sql.function_statements import type_until

__all__ = ["DICTIONARY_STATEMENTS", "CreateDictionary", "DropDictionary", "ShowDictionaries",
           "parse_dictionary_statement"]


@dataclass(frozen=True)
class CreateDictionary:
    """A dictionary over ``stream``: ``columns`` are ``(name, type)``, ``key`` one of them."""

    name: str
    columns: tuple[tuple[str, str], ...]
    key: str
    stream: str
    or_replace: bool = False
    if_not_exists: bool = False


@dataclass(frozen=True)
class DropDictionary:
    """``DROP DICTIONARY [IF EXISTS] name``."""

    name: str
    if_exists: bool = False


@dataclass(frozen=True)
class ShowDictionaries:
    """``SHOW DICTIONARIES``."""


DictionaryStatement = CreateDictionary | DropDictionary | ShowDictionaries
DICTIONARY_STATEMENTS = (CreateDictionary, DropDictionary, ShowDictionaries)
_SHOW = re.compile(r"\s*DICTIONARIES\s*;?\s*$", re.IGNORECASE)
# Words that end a column's type: the column clauses dictionaries allow (ignored here).
_COLUMN_CLAUSES = ("DEFAULT", "EXPRESSION", "HIERARCHICAL", "INJECTIVE", "IS_OBJECT_ID")


def parse_dictionary_statement(p: Any) -> DictionaryStatement | None:
    """The dictionary statement at the parser ``p``'s position (consumed), else None (``p`` untouched).

    Raises :class:`SqlError` at the offending token: a missing clause, an unknown type or key, a
    source sinkflow cannot read."""
    start = p.i
    if p.accept_word("SHOW"):
        rest = p.peek()  # sqlglot reads SHOW as a command: the rest is one string token
        if rest is not None and _SHOW.match(rest.text):
            p.i += 1
            p.end()
            return ShowDictionaries()
    elif p.accept_word("DROP", "DICTIONARY"):
        if_exists = p.accept_word("IF", "EXISTS")
        name = p.identifier("a dictionary name")
        p.end()
        return DropDictionary(name, if_exists)
    elif p.accept_word("CREATE"):
        or_replace = p.accept_word("OR", "REPLACE")
        if p.accept_word("DICTIONARY"):
            return _create(p, or_replace)
    p.i = start
    return None


def _create(p: Any, or_replace: bool) -> CreateDictionary:
    if_not_exists = p.accept_word("IF", "NOT", "EXISTS")
    name = p.identifier("a dictionary name")
    p.expect(TokenType.L_PAREN, "(")
    columns: list[tuple[str, str]] = []
    while True:
        column = p.identifier("a column name")
        columns.append((column, type_until(p, _COLUMN_CLAUSES)))
        while (token := p.peek()) is not None and token.token_type not in (TokenType.COMMA, TokenType.R_PAREN):
            p.i += 1  # DEFAULT v, EXPRESSION e …: lookups answer NULL or the type's zero instead
        if p.accept(TokenType.COMMA):
            continue
        p.expect(TokenType.R_PAREN, ")")
        break
    key_token = p.peek()
    words = p.phrase(("PRIMARY", "KEY"))
    if not words:
        raise p.error("expected PRIMARY KEY column", key_token)
    p.i += words
    parenthesized = p.accept(TokenType.L_PAREN)
    key = p.identifier("the primary key column")
    if p.peek() is not None and p.peek().token_type == TokenType.COMMA:
        raise p.error("composite primary keys are not supported (one key column is)", p.peek())
    if parenthesized:
        p.expect(TokenType.R_PAREN, ")")
    if key not in {c for c, _ in columns}:
        raise p.error(f"the primary key '{key}' is not a column of the dictionary", key_token)
    stream = None
    while p.peek() is not None and p.peek().token_type != TokenType.SEMICOLON:
        clause = p.next("SOURCE, LAYOUT or LIFETIME")
        word = clause.text.upper()
        if word not in ("SOURCE", "LAYOUT", "LIFETIME", "SETTINGS", "COMMENT"):
            raise p.error(f"expected SOURCE, LAYOUT or LIFETIME, found '{clause.text}'", clause)
        if word == "SOURCE":
            stream = _source(p)
        elif word == "COMMENT":
            p.string("a comment")
        else:
            _skip_parens(p)  # every layout works (lookups are hashed); data is re-read when it changes
    if stream is None:
        raise p.error("expected SOURCE(TIMEPLUS(STREAM 'name'))")
    p.end()
    return CreateDictionary(name, tuple(columns), key, stream, or_replace, if_not_exists)


def _source(p: Any) -> str:
    p.expect(TokenType.L_PAREN, "(")
    kind_token = p.next("a source")
    kind = kind_token.text.upper()
    if kind != "TIMEPLUS":
        raise p.error(f"SOURCE({kind}) dictionaries are not supported (SOURCE(TIMEPLUS(STREAM 'name')) "
                      "reading a stream of this server is)", kind_token)
    p.expect(TokenType.L_PAREN, "(")
    stream = None
    while not p.accept(TokenType.R_PAREN):
        option = p.next("a source option")
        word = option.text.upper()
        if word in ("HOST", "PORT"):
            raise p.error("a dictionary reads this server's streams only (leave HOST and PORT out)", option)
        value = p.next(f"the value of {word}")
        if word in ("STREAM", "TABLE"):
            stream = value.text
    if stream is None:
        raise p.error("expected STREAM 'name' in SOURCE(TIMEPLUS(…))", kind_token)
    p.expect(TokenType.R_PAREN, ")")
    return stream


def _skip_parens(p: Any) -> None:
    p.expect(TokenType.L_PAREN, "(")
    depth = 1
    while depth:
        token = p.next("')'")
        depth += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(token.token_type, 0)
