"""SQL user-defined functions (``CREATE FUNCTION name AS (x, y) -> expr``): a name that stands for
an expression of its parameters.

:func:`expand_functions` replaces every call of a user function in a statement by its body, each
parameter replaced by the call's argument (in parentheses), functions calling functions included.
The runtime calls it before it plans any query, as it expands views, so user functions work in
bounded and streaming queries, views and materialized views alike (a materialized view keeps the
expanded query: it runs on when the function is later replaced or dropped).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlglot.dialects.clickhouse import ClickHouse
from sqlglot.errors import TokenError
from sqlglot.tokens import Token, TokenType

from sinkflow.errors import SqlError
from sinkflow.sql.positions import located, position_at

__all__ = ["MAX_DEPTH", "UserFunction", "expand_functions"]

#: How deep functions may call functions before the expansion is taken for a cycle.
MAX_DEPTH = 32
_OPEN = {TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE}
_CLOSE = {TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE}


@dataclass(frozen=True)
class UserFunction:
    """A SQL function: its ``name``, its parameters' names and its ``body`` as written."""

    name: str
    params: tuple[str, ...]
    body: str

    def create_query(self) -> str:
        """The statement that creates this function."""
        return f"CREATE FUNCTION `{self.name}` AS ({', '.join(self.params)}) -> {self.body}"


def expand_functions(sql: str, functions: Mapping[str, UserFunction], depth: int = 0) -> str:
    """``sql`` with every call of ``functions`` replaced by the function's body (unchanged when it
    calls none).

    Raises :class:`SqlError` placed at the call for a wrong number of arguments, and for functions
    that call themselves (directly or through others)."""
    if not functions:
        return sql
    try:
        tokens = ClickHouse().tokenize(sql)
    except TokenError:
        return sql  # the planner reports where the text is broken
    replaced: list[tuple[int, int, str]] = []
    k = 0
    while k < len(tokens):
        token = tokens[k]
        function = functions.get(token.text) if token.token_type not in (TokenType.STRING, TokenType.NUMBER) else None
        if function is None or k + 1 >= len(tokens) or tokens[k + 1].token_type != TokenType.L_PAREN \
                or (k > 0 and tokens[k - 1].token_type == TokenType.DOT):
            k += 1
            continue
        if depth >= MAX_DEPTH:
            raise located(f"function '{function.name}' calls itself (directly or through other functions)",
                          position_at(sql, token.start))
        args, close = _arguments(sql, tokens, k + 1)
        if len(args) != len(function.params):
            raise located(f"function '{function.name}' takes {len(function.params)} argument(s), got {len(args)}",
                          position_at(sql, token.start))
        try:
            values = {name: f"({expand_functions(arg, functions, depth)})"
                      for name, arg in zip(function.params, args, strict=True)}
            body = expand_functions(_substitute(function.body, values), functions, depth + 1)
        except SqlError as err:  # placed in an argument's or a body's text: place it at this call
            raise located(err.message.split(" at line ")[0], position_at(sql, token.start)) from None
        replaced.append((token.start, tokens[close].end, f"({body})"))
        k = close + 1
    for start, end, text in reversed(replaced):
        sql = sql[:start] + text + sql[end + 1:]
    return sql


def _arguments(sql: str, tokens: list[Token], open_at: int) -> tuple[list[str], int]:
    """The texts of the arguments of the call whose '(' is ``tokens[open_at]``, and the index of
    its closing ')'. Raises :class:`SqlError` for a call that is never closed."""
    args: list[str] = []
    depth = 0
    start: int | None = None
    last: Token | None = None
    for k in range(open_at, len(tokens)):
        token = tokens[k]
        if token.token_type in _OPEN:
            depth += 1
            if depth == 1:
                continue
        elif token.token_type in _CLOSE:
            depth -= 1
            if depth == 0:
                if start is not None and last is not None:
                    args.append(sql[start:last.end + 1])
                return args, k
        if depth == 1 and token.token_type == TokenType.COMMA:
            if start is None or last is None:
                raise located("expected an argument before ','", position_at(sql, token.start))
            args.append(sql[start:last.end + 1])
            start = None
            continue
        if start is None:
            start = token.start
        last = token
    raise located("the function call is never closed: expected ')'", position_at(sql, tokens[open_at].start))


def _substitute(body: str, values: Mapping[str, str]) -> str:
    """``body`` with each parameter name (a bare name, not a ``t.x`` field) replaced by its value."""
    tokens = ClickHouse().tokenize(body)
    for k in reversed(range(len(tokens))):
        token = tokens[k]
        if token.text in values and token.token_type not in (TokenType.STRING, TokenType.NUMBER) \
                and not (k > 0 and tokens[k - 1].token_type == TokenType.DOT):
            body = body[:token.start] + values[token.text] + body[token.end + 1:]
    return body
