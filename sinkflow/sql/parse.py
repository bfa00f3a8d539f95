"""Parsing Timeplus SELECT statements on top of upstream sqlglot's ClickHouse dialect.

Upstream sqlglot parses most of Timeplus's streaming syntax but not all of it (measured, see
DESIGN.md): every ``EMIT …`` clause is a ParseError, and interval shorthands such as ``2s`` come
out as column names. :func:`parse_select` therefore

* cuts the ``EMIT`` clause out of the text (replacing it by blanks, so every position sqlglot
  reports still points into the user's text) and parses it here into an :class:`EmitClause`;
* rewrites unquoted identifiers shaped like ``2s``/``5m``/``1h``/``500ms`` into interval nodes;
* turns sqlglot's errors into :class:`SqlError` with a 1-based line/column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import sqlglot
from sqlglot import exp
from sqlglot.dialects.clickhouse import ClickHouse
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from sinkflow.errors import Position, SqlError

DIALECT = "clickhouse"

_UNIT_MICROS: dict[str, int] = {
    "ms": 1_000,
    "millisecond": 1_000,
    "s": 1_000_000,
    "second": 1_000_000,
    "m": 60_000_000,
    "minute": 60_000_000,
    "h": 3_600_000_000,
    "hour": 3_600_000_000,
    "d": 86_400_000_000,
    "day": 86_400_000_000,
    "w": 604_800_000_000,
    "week": 604_800_000_000,
}
# The DuckDB/SQL unit an interval shorthand stands for.
_SHORT_UNITS = {"ms": "MILLISECOND", "s": "SECOND", "m": "MINUTE", "h": "HOUR", "d": "DAY", "w": "WEEK"}
_SHORTHAND = re.compile(r"^(\d+)(ms|s|m|h|d|w)$")
_INTERVAL_TEXT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+?)s?\s*$")

# Top-level tokens that end an EMIT clause.
_EMIT_END = {TokenType.SETTINGS, TokenType.LIMIT, TokenType.ORDER_BY, TokenType.SEMICOLON, TokenType.FORMAT}


def position_at(sql: str, offset: int) -> Position:
    """The 1-based line and column of character ``offset`` in ``sql``."""
    offset = max(0, min(offset, len(sql)))
    line = sql.count("\n", 0, offset) + 1
    column = offset - (sql.rfind("\n", 0, offset) + 1) + 1
    return Position(line, column)


def node_position(sql: str, node: exp.Expression | None) -> Position | None:
    """Where ``node`` (or the first identifier inside it that sqlglot tagged) starts in ``sql``."""
    if node is None:
        return None
    for candidate in [node, *node.find_all(exp.Identifier, exp.Func)]:
        meta = candidate.meta if candidate.meta else None
        if meta and "start" in meta:
            return position_at(sql, int(meta["start"]))
        if meta and "line" in meta and "col" in meta:
            return Position(int(meta["line"]), int(meta["col"]))
    return None


def error_at(sql: str, node: exp.Expression | None, message: str) -> SqlError:
    """A :class:`SqlError` with ``message``, positioned at ``node`` when sqlglot knows where it is."""
    pos = node_position(sql, node)
    if pos is not None:
        message = f"{message} (line {pos.line}, column {pos.column})"
    return SqlError(message, position=pos)


@dataclass(frozen=True)
class EmitClause:
    """A parsed ``EMIT`` clause.

    ``kind`` is ``"watermark"`` (``EMIT AFTER WATERMARK [WITH|AND DELAY d]``) or ``"periodic"``
    (``EMIT PERIODIC d``); ``interval_us`` is the delay or the period in microseconds.
    """

    kind: Literal["watermark", "periodic"]
    interval_us: int
    position: Position


@dataclass(frozen=True)
class ParsedSelect:
    """A SELECT statement: the sqlglot tree (intervals rewritten), its EMIT clause, its text, and
    the text of each item of its SELECT list as written (whitespace collapsed; None if unknown)."""

    sql: str
    tree: exp.Select
    emit: EmitClause | None
    select_texts: list[str] | None = None


def interval_from_text(text: str) -> int | None:
    """Microseconds of an interval written as ``2s``, ``500ms``, ``2 second``, ``'5 minutes'``; None if not one."""
    cleaned = text.strip().strip("'").lower()
    m = _SHORTHAND.match(cleaned)
    if m:
        return int(m.group(1)) * _UNIT_MICROS[m.group(2)]
    m = _INTERVAL_TEXT.match(cleaned)
    if m and m.group(2) in _UNIT_MICROS:
        return int(float(m.group(1)) * _UNIT_MICROS[m.group(2)])
    return None


def interval_micros(sql: str, node: exp.Expression, what: str) -> int:
    """Microseconds of an interval node (``2s`` after rewriting, ``INTERVAL 2 SECOND``, ``INTERVAL '2 seconds'``).

    Raises :class:`SqlError` naming ``what`` when ``node`` is not a positive constant interval.
    """
    micros: int | None = None
    if isinstance(node, exp.Interval):
        value = node.this.name if node.this is not None else ""
        unit = node.unit.name if node.unit is not None else ""
        micros = interval_from_text(f"{value} {unit}" if unit else value)
    elif isinstance(node, exp.Literal) and node.is_string:
        micros = interval_from_text(node.this)
    if micros is None or micros <= 0:
        raise error_at(sql, node, f"{what} must be a positive interval such as 2s, 5m or INTERVAL 1 HOUR, not '{node.sql(DIALECT)}'")
    return micros


def _tokens(sql: str) -> list[Token]:
    try:
        return ClickHouse().tokenize(sql)
    except TokenError as e:
        raise SqlError(f"invalid SQL: {e}") from e


def _emit_interval(sql: str, toks: list[Token], what: str) -> int:
    if not toks:
        raise SqlError(f"{what} needs an interval such as 2s")
    words = [t.text for t in toks]
    if words[0].lower() == "interval":
        words = words[1:]
    micros = interval_from_text(" ".join(words))
    if micros is None or micros <= 0:
        pos = position_at(sql, toks[0].start)
        raise SqlError(
            f"{what}: '{' '.join(t.text for t in toks)}' is not an interval such as 2s (line {pos.line}, column {pos.column})",
            position=pos,
        )
    return micros


def _parse_emit(sql: str, toks: list[Token]) -> EmitClause:
    pos = position_at(sql, toks[0].start)
    words = [t.text.lower() for t in toks[1:]]
    if words[:1] == ["periodic"]:
        return EmitClause("periodic", _emit_interval(sql, toks[2:], "EMIT PERIODIC"), pos)
    if words[:2] == ["after", "watermark"]:
        rest = toks[3:]
        if not rest:
            return EmitClause("watermark", 0, pos)
        if len(rest) >= 2 and rest[0].text.lower() in ("with", "and") and rest[1].text.lower() == "delay":
            return EmitClause("watermark", _emit_interval(sql, rest[2:], "EMIT AFTER WATERMARK WITH DELAY"), pos)
        bad = rest[0]
        bpos = position_at(sql, bad.start)
        raise SqlError(
            f"unexpected '{bad.text}' in EMIT clause; expected WITH DELAY <interval> (line {bpos.line}, column {bpos.column})",
            position=bpos,
        )
    construct = " ".join(t.text.upper() for t in toks[: min(len(toks), 3)])
    raise SqlError(
        f"{construct} is not supported; use EMIT AFTER WATERMARK [WITH DELAY <interval>] or EMIT PERIODIC <interval>"
        f" (line {pos.line}, column {pos.column})",
        position=pos,
    )


# Timeplus writes ``quantile(x, 0.9)``, which the ClickHouse grammar rejects (it expects the
# parametric ``quantile(0.9)(x)``); such calls are renamed in place to this same-length name.
QUANTILE_ALIAS = "quantil_"


def _rename_quantile(sql: str, toks: list[Token]) -> str:
    for i, tok in enumerate(toks[:-1]):
        if tok.text.lower() != "quantile" or toks[i + 1].token_type != TokenType.L_PAREN:
            continue
        depth, j = 0, i + 1
        while j < len(toks):
            depth += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(toks[j].token_type, 0)
            if depth == 0:
                break
            j += 1
        parametric = j + 1 < len(toks) and toks[j + 1].token_type == TokenType.L_PAREN
        if not parametric:
            sql = sql[: tok.start] + QUANTILE_ALIAS + sql[tok.end + 1 :]
    return sql


def _cut_emit(sql: str) -> tuple[str, EmitClause | None]:
    """Blank out the top-level EMIT clause (same length, newlines kept) and parse it; rename 2-argument quantiles."""
    toks = _tokens(sql)
    sql = _rename_quantile(sql, toks)
    depth = 0
    start: int | None = None
    for i, tok in enumerate(toks):
        if tok.token_type == TokenType.L_PAREN:
            depth += 1
        elif tok.token_type == TokenType.R_PAREN:
            depth -= 1
        elif depth == 0 and tok.token_type == TokenType.VAR and tok.text.lower() == "emit" and i > 0:
            start = i
            break
    if start is None:
        return sql, None
    end = start + 1
    while end < len(toks) and not (toks[end].token_type in _EMIT_END):
        end += 1
    clause = toks[start:end]
    emit = _parse_emit(sql, clause)
    lo, hi = clause[0].start, clause[-1].end + 1
    blanked = sql[:lo] + "".join("\n" if c == "\n" else " " for c in sql[lo:hi]) + sql[hi:]
    return blanked, emit


def _rewrite_shorthand(node: exp.Expression) -> exp.Expression:
    """``2s`` parsed as a column → ``INTERVAL '2' SECOND`` (keeping the identifier's position meta)."""
    if isinstance(node, exp.Column) and not node.table and isinstance(node.this, exp.Identifier) and not node.this.quoted:
        m = _SHORTHAND.match(node.name.lower())
        if m:
            interval = exp.Interval(this=exp.Literal.string(m.group(1)), unit=exp.Var(this=_SHORT_UNITS[m.group(2)]))
            interval.meta.update(node.this.meta)
            return interval
    return node


def parse_select(sql: str) -> ParsedSelect:
    """Parse one Timeplus SELECT.

    Raises :class:`SqlError` with line/column for text that does not parse, for more than one
    statement, for a statement that is not a SELECT and for unsupported EMIT clauses.
    """
    if not sql or not sql.strip():
        raise SqlError("empty SQL statement")
    text, emit = _cut_emit(sql)
    try:
        trees = sqlglot.parse(text, dialect=DIALECT)
    except ParseError as e:
        err = e.errors[0] if e.errors else {}
        line, col = int(err.get("line") or 1), int(err.get("col") or 1)
        highlight = str(err.get("highlight") or "")
        col = max(1, col - len(highlight) + 1)
        desc = err.get("description") or str(e)
        near = f" near '{highlight}'" if highlight else ""
        raise SqlError(f"invalid SQL at line {line}, column {col}{near}: {desc}", position=Position(line, col)) from e
    except TokenError as e:
        raise SqlError(f"invalid SQL: {e}") from e
    statements = [t for t in trees if t is not None]
    if len(statements) != 1:
        raise SqlError(f"expected one SQL statement, got {len(statements)}")
    tree = statements[0]
    if isinstance(tree, exp.SetOperation):
        raise error_at(sql, tree, f"{type(tree).__name__.upper()} is not supported")
    if not isinstance(tree, exp.Select):
        raise SqlError(f"expected a SELECT statement, got {tree.key.upper()}")
    tree = tree.transform(_rewrite_shorthand)
    assert isinstance(tree, exp.Select)
    texts = _select_texts(sql, _tokens(text))
    return ParsedSelect(sql, tree, emit, texts if texts is not None and len(texts) == len(tree.expressions) else None)


def _select_texts(sql: str, toks: list[Token]) -> list[str] | None:
    """The SELECT list's items as written in ``sql``, split at its top-level commas (output names
    of unaliased expressions, as ClickHouse names them by their text)."""
    if not toks or toks[0].token_type != TokenType.SELECT:
        return None
    items: list[list[Token]] = [[]]
    depth = 0
    for tok in toks[1:]:
        if depth == 0 and tok.token_type in (TokenType.FROM, TokenType.SEMICOLON):
            break
        if tok.token_type in (TokenType.L_PAREN, TokenType.L_BRACKET):
            depth += 1
        elif tok.token_type in (TokenType.R_PAREN, TokenType.R_BRACKET):
            depth -= 1
        if depth == 0 and tok.token_type == TokenType.COMMA:
            items.append([])
        else:
            items[-1].append(tok)
    if any(not item for item in items):
        return None
    return [" ".join(sql[item[0].start : item[-1].end + 1].split()) for item in items]
