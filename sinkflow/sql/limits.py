"""Limits on SQL text, checked before anything parses it.

The parser and planner recurse once per nesting level and work quadratically on long operator
chains, so a statement nested thousands of levels deep, or an expression of 100,000 terms,
would exhaust the stack or burn the CPU. :func:`check_sql_limits` refuses such text with a
clear error after one linear scan (no recursion), and lets the parser recurse deep enough for
everything the limits allow.
"""

from __future__ import annotations

import sys

from sinkflow.errors import SqlError
from sinkflow.sql.positions import position_at

#: The longest SQL text accepted, in characters (ClickHouse's default ``max_query_size``).
MAX_SQL_LENGTH = 262_144
#: The deepest nesting of parentheses, brackets and CASE … END.
MAX_NESTING = 128
#: The most operators chained at one nesting level (``a + b + …``, ``x = 1 or x = 2 or …``).
MAX_CHAIN = 256
# The parser takes about 25 Python frames per nesting level: what MAX_NESTING needs, with room.
_RECURSION_LIMIT = 10_000

_SYMBOL_OPERATORS = ("||", "<=", ">=", "!=", "<>", "==", "+", "-", "*", "/", "%", "=", "<", ">")
_WORD_OPERATORS = frozenset({"AND", "OR"})
_OPEN, _CLOSE = "([{", ")]}"


def check_sql_limits(sql: str) -> None:
    """Refuse SQL that is too long, nested too deeply or chains too many operators.

    Raises :class:`SqlError` naming the limit (and, for nesting and chains, where the limit was
    passed). Strings, quoted names and comments are skipped, so their content never counts.
    """
    if len(sql) > MAX_SQL_LENGTH:
        raise SqlError(f"the SQL text is {len(sql):,} characters long; the limit is {MAX_SQL_LENGTH:,}")
    if sys.getrecursionlimit() < _RECURSION_LIMIT:
        sys.setrecursionlimit(_RECURSION_LIMIT)
    depth, chains, cases = 0, [0], [0]  # per open level: operators chained, CASEs open
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            i = _skip_quoted(sql, i)
            continue
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        if ch.isalpha() or ch == "_":
            start = i
            while i < n and (sql[i].isalnum() or sql[i] == "_"):
                i += 1
            word = sql[start:i].upper()
            if word == "CASE":
                depth += 1
                cases[-1] += 1
                _check_depth(sql, depth, start)
            elif word == "END" and cases[-1]:
                depth -= 1
                cases[-1] -= 1
            elif word in _WORD_OPERATORS:
                chains[-1] += 1
                _check_chain(sql, chains[-1], start)
            continue
        if ch in _OPEN:
            depth += 1
            chains.append(0)
            cases.append(0)
            _check_depth(sql, depth, i)
        elif ch in _CLOSE and len(chains) > 1:
            depth -= 1 + cases.pop()
            chains.pop()
        elif ch == ",":
            chains[-1] = 0
        else:
            op = next((o for o in _SYMBOL_OPERATORS if sql.startswith(o, i)), None)
            if op is not None:
                chains[-1] += 1
                _check_chain(sql, chains[-1], i)
                i += len(op)
                continue
        i += 1


def _skip_quoted(sql: str, start: int) -> int:
    """The index after the quoted text opening at ``start`` (doubled or backslashed quotes inside)."""
    quote, i = sql[start], start + 1
    while i < len(sql):
        if sql[i] == "\\":
            i += 2
        elif sql[i] == quote:
            if sql.startswith(quote * 2, i):
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return i


def _check_depth(sql: str, depth: int, offset: int) -> None:
    if depth > MAX_NESTING:
        where = position_at(sql, offset)
        raise SqlError(f"the SQL nests more than {MAX_NESTING} levels deep (parentheses, brackets, CASE) at line "
                       f"{where.line}, column {where.column}", position=where)


def _check_chain(sql: str, count: int, offset: int) -> None:
    if count > MAX_CHAIN:
        where = position_at(sql, offset)
        raise SqlError(f"an expression chains more than {MAX_CHAIN} operators at line {where.line}, column "
                       f"{where.column}; split it, or use IN (…) for a long list of values", position=where)
