"""Parsing the statements of user-defined functions written in Python or served over HTTP.

``CREATE [OR REPLACE] [AGGREGATE] FUNCTION name(arg type, …) RETURNS type LANGUAGE PYTHON AS $$ … $$``,
``CREATE [OR REPLACE] REMOTE FUNCTION name(arg type, …) RETURNS type URL '…' [AUTH_METHOD '…'
[AUTH_HEADER '…' AUTH_KEY '…']]`` and ``SYSTEM LIST|INSTALL|UNINSTALL PYTHON PACKAGE(S)``
(``DROP FUNCTION`` is the statement parser's, for every kind of function). :func:`parse_function_statement` reads them with the
statement parser of :mod:`sinkflow.sql.statements` (its tokens, positions and errors); a
``CREATE FUNCTION name AS (x) -> …`` (a SQL lambda: no argument list after the name) is left to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlglot.tokens import TokenType

from sinkflow.errors import InvalidInput
from sinkflow.streams.types import parse_type

__all__ = ["FUNCTION_STATEMENTS", "CreatePythonFunction", "CreateRemoteFunction", "PythonPackages",
           "parse_function_statement", "type_until"]


@dataclass(frozen=True)
class CreatePythonFunction:
    """A Python scalar function: ``body`` defines a function called ``name`` taking one list per
    argument (the batch's values) and returning a list of as many results."""

    name: str
    arguments: tuple[tuple[str, str], ...]
    returns: str
    body: str
    or_replace: bool = False


@dataclass(frozen=True)
class CreateRemoteFunction:
    """A function computed by an HTTP endpoint: each batch is POSTed to ``url`` as JSON columns
    (``{"arg": [v1, v2, …], …}``) and the answer is ``{"result": [r1, r2, …]}``. ``auth_key`` is a
    secret: it is sent as the ``auth_header`` HTTP header and never shown."""

    name: str
    arguments: tuple[tuple[str, str], ...]
    returns: str
    url: str
    auth_header: str | None = None
    auth_key: str | None = None
    or_replace: bool = False


@dataclass(frozen=True)
class PythonPackages:
    """``SYSTEM LIST PYTHON PACKAGES`` (``action='list'``); ``install``/``uninstall`` are refused
    when run (see :mod:`sinkflow.engine.user_functions`)."""

    action: str
    package: str | None = None


FunctionStatement = CreatePythonFunction | CreateRemoteFunction | PythonPackages
_PACKAGES = re.compile(r"\s*(LIST|INSTALL|UNINSTALL)\s+PYTHON\s+PACKAGES?\s*('[^']*')?\s*;?\s*$", re.IGNORECASE)
FUNCTION_STATEMENTS = (CreatePythonFunction, CreateRemoteFunction, PythonPackages)


def parse_function_statement(p: Any) -> FunctionStatement | None:
    """The function statement at the parser ``p``'s position (consumed), else None (``p`` untouched).

    Raises :class:`SqlError` at the offending token: a missing clause, an unknown type, a language
    other than Python (JavaScript has no engine here), an aggregate function."""
    start = p.i
    if p.accept_word("SYSTEM"):
        statement = _system(p)
    elif p.accept_word("CREATE"):
        statement = _create(p)
    else:
        statement = None
    if statement is None:
        p.i = start
    return statement


def _system(p: Any) -> PythonPackages | None:
    # sqlglot reads SYSTEM as a command: the rest of the statement is one string token.
    rest = p.peek()
    match = _PACKAGES.match(rest.text) if rest is not None else None
    if match is None:
        return None
    p.i += 1
    action, quoted = match.group(1).lower(), match.group(2)
    if action != "list" and quoted is None:
        raise p.error(f"expected SYSTEM {action.upper()} PYTHON PACKAGE 'name'", rest)
    p.end()
    return PythonPackages(action, quoted[1:-1] if quoted else None)


def _create(p: Any) -> CreatePythonFunction | CreateRemoteFunction | None:
    or_replace = p.accept_word("OR", "REPLACE")
    aggregate = p.peek()
    is_aggregate = p.accept_word("AGGREGATE") or p.accept_word("AGGREGATION")
    remote = p.accept_word("REMOTE")
    token = p.peek()
    if token is None or token.token_type != TokenType.FUNCTION:
        return None
    after = p.peek(2)
    if after is None or after.token_type != TokenType.L_PAREN:
        return None  # CREATE FUNCTION name AS (x) -> …: a SQL function, not ours
    p.i += 1
    name = p.identifier("a function name")
    arguments = _arguments(p)
    p.expect_word("RETURNS")
    returns = type_until(p, ("LANGUAGE", "URL", "AS"))
    if remote:
        return _remote(p, name, tuple(arguments), returns, or_replace)
    language = p.peek()
    p.expect_word("LANGUAGE")
    spoken = p.next("a language").text.upper()
    if spoken != "PYTHON":
        engines = " (sinkflow has no JavaScript engine; write it in Python)" if spoken == "JAVASCRIPT" else ""
        raise p.error(f"LANGUAGE {spoken} functions are not supported{engines}; LANGUAGE PYTHON is", language)
    if is_aggregate:
        raise p.error("Python aggregate functions are not supported (scalar Python functions are)", aggregate)
    p.expect_word("AS")
    body = p.next("the function's code ($$ … $$)")
    if body.token_type not in (TokenType.HEREDOC_STRING, TokenType.STRING):
        raise p.error("expected the function's code as $$ … $$ or a quoted string", body)
    if p.accept_word("SETTINGS"):  # Timeplus's runtime knobs (timeouts, batch sizes): none apply here
        while (token := p.peek()) is not None and token.token_type != TokenType.SEMICOLON:
            p.i += 1
    p.end()
    return CreatePythonFunction(name, tuple(arguments), returns, body.text, or_replace)


def _remote(p: Any, name: str, arguments: tuple[tuple[str, str], ...], returns: str,
            or_replace: bool) -> CreateRemoteFunction:
    p.expect_word("URL")
    url = p.string("the function's URL")
    header = key = None
    if p.accept_word("AUTH_METHOD"):
        method_token = p.peek()
        method = p.string("an auth method ('none' or 'auth_header')").lower()
        if method == "auth_header":
            p.expect_word("AUTH_HEADER")
            header = p.string("the auth header's name")
            p.expect_word("AUTH_KEY")
            key = p.string("the auth key")
        elif method != "none":
            raise p.error(f"unknown AUTH_METHOD '{method}' (use 'none' or 'auth_header')", method_token)
    p.end()
    return CreateRemoteFunction(name, arguments, returns, url, header, key, or_replace)


def _arguments(p: Any) -> list[tuple[str, str]]:
    p.expect(TokenType.L_PAREN, "(")
    arguments: list[tuple[str, str]] = []
    if p.accept(TokenType.R_PAREN):
        return arguments
    while True:
        name = p.identifier("an argument name")
        arguments.append((name, type_until(p, ())))
        if p.accept(TokenType.COMMA):
            continue
        p.expect(TokenType.R_PAREN, ")")
        return arguments


def type_until(p: Any, words: tuple[str, ...]) -> str:
    """The type written from here to a top-level ',' or ')' or one of ``words``; checked."""
    first = p.peek()
    depth = 0
    last = None
    while (token := p.peek()) is not None:
        if depth == 0 and (token.token_type in (TokenType.COMMA, TokenType.R_PAREN)
                           or token.text.upper() in words):
            break
        depth += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(token.token_type, 0)
        last = token
        p.i += 1
    if last is None:
        raise p.error("expected a type", first)
    text = p.text_between(first, last)
    try:
        parse_type(text)
    except InvalidInput as exc:
        raise p.error(str(exc), first) from None
    return text
