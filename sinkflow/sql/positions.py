"""Positions in SQL text and the errors that point at them, for every SQL module.

Every SQL error a user sees names its place the same way: ``… at line L, column C`` in the message
and ``SqlError.position`` (1-based). A name error (unknown stream, column, function) points at
the first character of the name it names (callers pass the name's node).
"""

from __future__ import annotations

from sqlglot import exp

from sinkflow.errors import Position, SqlError


def position_at(sql: str, offset: int) -> Position:
    """The 1-based line and column of character ``offset`` in ``sql`` (clamped into the text)."""
    offset = max(0, min(offset, len(sql)))
    line = sql.count("\n", 0, offset) + 1
    column = offset - (sql.rfind("\n", 0, offset) + 1) + 1
    return Position(line, column)


def node_position(node: exp.Expression | list[exp.Expression] | None) -> Position | None:
    """Where ``node`` starts: the leftmost of the tokens inside it that sqlglot tagged with their
    place (so ``a + f(x)`` is placed at ``a``, ``f(x)`` at ``f``), or None. A list (a clause
    sqlglot keeps as a list, such as WINDOW's definitions) starts where its first node does.

    sqlglot records a token's line and the column of its *last* character; the token's width
    (``end - start``) gives its first."""
    if isinstance(node, list):
        node = node[0] if node else None
    if node is None:
        return None
    places: list[Position] = []
    for candidate in node.walk():
        meta = candidate.meta if candidate._meta else None  # noqa: SLF001 - don't create empty metas
        if meta and "line" in meta and "col" in meta:
            start, end = meta.get("start"), meta.get("end")
            width = end - start if isinstance(start, int) and isinstance(end, int) else 0
            places.append(Position(int(meta["line"]), max(1, int(meta["col"]) - width)))
    return min(places, key=lambda p: (p.line, p.column), default=None)


def located(message: str, position: Position | None) -> SqlError:
    """A :class:`SqlError` with ``message`` and, when known, `` at line L, column C`` appended."""
    if position is None:
        return SqlError(message)
    return SqlError(f"{message} at line {position.line}, column {position.column}", position=position)


def error_at(node: exp.Expression | list[exp.Expression] | None, message: str) -> SqlError:
    """A :class:`SqlError` with ``message``, positioned at ``node`` when sqlglot knows where it is."""
    return located(message, node_position(node))
