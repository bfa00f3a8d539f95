"""Parsing Timeplus SELECT statements on top of upstream sqlglot's ClickHouse dialect.

Upstream sqlglot parses most of Timeplus's streaming syntax but not all of it (measured, see
DESIGN.md): every ``EMIT …`` clause is a ParseError, and interval shorthands such as ``2s`` come
out as column names. :func:`parse_select` therefore

* cuts the ``EMIT`` clause out of the text (replacing it by blanks, so every position sqlglot
  reports still points into the user's text) and parses it here into an :class:`EmitClause`;
* rewrites unquoted identifiers shaped like ``2s``/``5m``/``1h``/``500ms`` into interval nodes;
* turns sqlglot's errors into :class:`SqlError` with a 1-based line/column.

:class:`Timeplus` is the ClickHouse dialect with Timeplus's function spellings that upstream reads
as something else: ``quantile(x, level)`` (ClickHouse only has ``quantile(level)(x)``),
``unique(x)`` (read as an alias list), and ``array_join``/``array_max``/``array_min``/``array_all``
(bound to upstream nodes of another arity, a ParseError; likewise ``array_last``). Those calls come out as plain function
calls that :mod:`sinkflow.sql.functions` maps or refuses by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlglot
from sqlglot import exp
from sqlglot.dialects.clickhouse import ClickHouse
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from sinkflow.errors import Position, SqlError
from sinkflow.sql import json_shortcuts
from sinkflow.sql.limits import check_sql_limits
from sinkflow.sql.positions import error_at, located, node_position, position_at


class Timeplus(ClickHouse):
    """sqlglot's ClickHouse dialect reading Timeplus's function calls (see the module docstring)."""

    class Tokenizer(ClickHouse.Tokenizer):
        # Proton spells ClickHouse's CamelCase types in snake case (CAST(x AS fixed_string(8))).
        KEYWORDS = {
            **ClickHouse.Tokenizer.KEYWORDS,
            "FIXED_STRING": TokenType.FIXEDSTRING,
            "LOW_CARDINALITY": TokenType.LOWCARDINALITY,
            "AGGREGATE_FUNCTION": TokenType.AGGREGATEFUNCTION,
            "SIMPLE_AGGREGATE_FUNCTION": TokenType.SIMPLEAGGREGATEFUNCTION,
        }

    class Parser(ClickHouse.Parser):
        # Timeplus's own meaning, with any number of arguments, for names upstream binds otherwise.
        FUNCTIONS = {
            k: v for k, v in ClickHouse.Parser.FUNCTIONS.items()
            if k not in ("ARRAY_JOIN", "ARRAY_MAX", "ARRAY_MIN", "ARRAY_ALL", "ARRAY_LAST")
        }
        FUNCTION_PARSERS = {
            **ClickHouse.Parser.FUNCTION_PARSERS,
            "QUANTILE": lambda self: self._parse_timeplus_quantile(),
        }
        # A lambda's body may be a ternary (x -> c ? x : 0), which upstream parses one level above
        # where it reads lambda bodies.
        LAMBDAS = {
            **ClickHouse.Parser.LAMBDAS,
            TokenType.ARROW: lambda self, expressions: self.expression(
                exp.Lambda(this=self._replace_lambda(self._parse_assignment(), expressions), expressions=expressions)),
        }
        # UNIQUE is a keyword (constraints); followed by "(" it is Timeplus's unique() aggregate.
        FUNC_TOKENS = {*ClickHouse.Parser.FUNC_TOKENS, TokenType.UNIQUE}

        def _parse_function(self, *args: Any, **kwargs: Any) -> exp.Expression | None:
            # Every call carries its name token's place (upstream leaves it off the aggregate
            # nodes it builds), so an error about a function points at its name.
            name = self._curr
            func = super()._parse_function(*args, **kwargs)
            target = func.this if isinstance(func, exp.Window) else func
            if isinstance(target, exp.Func) and name is not None and "line" not in target.meta:
                target.update_positions(name)
            if isinstance(target, exp.Func) and name is not None:
                target.meta.setdefault("written", name.text)  # errors name the function as the user wrote it
            return func

        def _parse_timeplus_quantile(self) -> exp.Expression:
            """``quantile(x, level)`` (Timeplus) or ``quantile(level)(x)`` (ClickHouse) → Quantile;
            other shapes stay a plain call, whose arity the function map reports."""
            args = self._parse_csv(self._parse_lambda)
            params = self._parse_func_params()
            if params and len(args) == 1 and len(params) == 1:
                return self.expression(exp.Quantile(this=params[0], quantile=args[0]))
            if not params and len(args) == 2:
                return self.expression(exp.Quantile(this=args[0], quantile=args[1]))
            return self.expression(exp.Anonymous(this="quantile", expressions=args + (params or [])))


DIALECT = Timeplus
#: How a ``session(…)`` window call reads after parsing (see :func:`_session_calls`).
SESSION_CALL = "swindow"

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


@dataclass(frozen=True)
class EmitClause:
    """A parsed ``EMIT`` clause: the policies it names, intervals in microseconds.

    ``after_close``: ``AFTER WINDOW CLOSE`` (or the older ``AFTER WATERMARK``), ``delay_us`` its
    ``WITH DELAY``; ``periodic_us``: ``PERIODIC d`` (``repeat``: ``REPEAT``); ``on_update``:
    ``ON UPDATE`` (``batch_us``: ``WITH BATCH d``); ``changelog``: ``CHANGELOG``;
    ``timeout_us``: ``TIMEOUT d``; ``per_event``: ``PER EVENT``; ``last_us``: ``LAST d`` (the query
    starts that long ago). ``EMIT STREAM`` names the default.
    """

    position: Position
    after_close: bool = False
    delay_us: int = 0
    periodic_us: int | None = None
    repeat: bool = False
    on_update: bool = False
    batch_us: int | None = None
    changelog: bool = False
    timeout_us: int | None = None
    per_event: bool = False
    last_us: int | None = None


@dataclass(frozen=True)
class ParsedSelect:
    """A SELECT statement: the sqlglot tree (intervals rewritten), its EMIT clause, its text, and
    the text of each item of its SELECT list as written (whitespace collapsed; None if unknown)."""

    sql: str
    tree: exp.Select | exp.SetOperation
    emit: EmitClause | None
    select_texts: list[str] | None = None
    #: The top-level ``PARTITION BY`` expressions (keys of per-key substreams).
    partition_by: list[exp.Expression] = field(default_factory=list)


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
        raise error_at(node, f"{what} must be a positive interval such as 2s, 5m or INTERVAL 1 HOUR, not '{node.sql(DIALECT)}'")
    return micros


def _tokens(sql: str) -> list[Token]:
    try:
        return Timeplus().tokenize(sql)
    except TokenError as e:
        raise SqlError(f"invalid SQL: {e}") from e


_UNIT_WORDS = {*_UNIT_MICROS, *(f"{u}s" for u in _UNIT_MICROS)}


def _take_interval(sql: str, toks: list[Token], i: int, what: str) -> tuple[int, int]:
    """The interval written at ``toks[i:]`` (``2s``, ``'2s'``, ``2 second``, ``INTERVAL 2 SECOND``):
    its microseconds and the index after it."""
    start = i
    if i < len(toks) and toks[i].text.lower() == "interval":
        i += 1
    if i >= len(toks):
        at = toks[start - 1] if start else None
        raise located(f"{what} needs an interval such as 2s", position_at(sql, at.end + 1) if at else None)
    words = [toks[i].text]
    i += 1
    if i < len(toks) and toks[i].text.lower() in _UNIT_WORDS and toks[i - 1].token_type == TokenType.NUMBER:
        words.append(toks[i].text)
        i += 1
    micros = interval_from_text(" ".join(words))
    if micros is None or micros <= 0:
        raise located(f"{what}: '{' '.join(words)}' is not an interval such as 2s", position_at(sql, toks[start].start))
    return micros, i


def _parse_emit(sql: str, toks: list[Token]) -> EmitClause:
    """The policies of ``EMIT …`` (see :class:`EmitClause`); anything else is an error at its word."""
    values: dict[str, Any] = {}
    words = [t.text.lower() for t in toks]
    i = 1

    def expect(*names: str) -> None:
        nonlocal i
        for name in names:
            if i >= len(toks) or words[i] != name:
                at = toks[i] if i < len(toks) else toks[-1]
                raise located(f"expected {name.upper()} in EMIT clause, not '{at.text if i < len(toks) else ''}'",
                              position_at(sql, at.start))
            i += 1

    while i < len(toks):
        word = words[i]
        if word in ("and", "stream"):
            i += 1
        elif word == "changelog":
            values["changelog"] = True
            i += 1
        elif word == "periodic":
            values["periodic_us"], i = _take_interval(sql, toks, i + 1, "EMIT PERIODIC")
            if i < len(toks) and words[i] == "repeat":
                values["repeat"] = True
                i += 1
        elif word == "after":
            i += 1
            if i < len(toks) and words[i] == "watermark":
                i += 1
            elif i < len(toks) and words[i] == "window":
                i += 1
                expect("close")
            else:
                at = toks[i] if i < len(toks) else toks[-1]
                raise located("EMIT AFTER expects WINDOW CLOSE or WATERMARK"
                              + (" (EMIT AFTER SESSION CLOSE is not supported; use session() windows)"
                                 if i < len(toks) and words[i] == "session" else ""), position_at(sql, at.start))
            values["after_close"] = True
        elif word == "with" and i + 1 < len(toks) and words[i + 1] == "delay":
            values["delay_us"], i = _take_interval(sql, toks, i + 2, "EMIT … WITH DELAY")
        elif word == "delay":  # AND DELAY
            values["delay_us"], i = _take_interval(sql, toks, i + 1, "EMIT … AND DELAY")
        elif word == "with" and i + 1 < len(toks) and words[i + 1] == "batch":
            values["batch_us"], i = _take_interval(sql, toks, i + 2, "EMIT ON UPDATE WITH BATCH")
        elif word == "on":
            i += 1
            expect("update")
            values["on_update"] = True
        elif word == "timeout":
            values["timeout_us"], i = _take_interval(sql, toks, i + 1, "EMIT TIMEOUT")
        elif word == "per":
            i += 1
            expect("event")
            values["per_event"] = True
        elif word == "last":
            values["last_us"], i = _take_interval(sql, toks, i + 1, "EMIT LAST")
            if words[i:i + 2] == ["on", "proctime"]:
                i += 2
        else:
            raise located(f"unexpected '{toks[i].text}' in EMIT clause; expected AFTER WINDOW CLOSE, PERIODIC <interval>, "
                          "ON UPDATE, CHANGELOG, TIMEOUT <interval>, PER EVENT or WITH DELAY <interval>",
                          position_at(sql, toks[i].start))
    return EmitClause(position_at(sql, toks[0].start), **values)


def _cut_emit(sql: str) -> tuple[str, EmitClause | None]:
    """Blank out the top-level EMIT clause (same length, newlines kept) and parse it."""
    toks = _tokens(sql)
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


_PARTITION_END = {TokenType.GROUP_BY, TokenType.HAVING, TokenType.ORDER_BY, TokenType.LIMIT, TokenType.SETTINGS,
                  TokenType.SEMICOLON, TokenType.QUALIFY, TokenType.WINDOW}


def _cut_partition(sql: str) -> tuple[str, list[exp.Expression]]:
    """Blank out the top-level ``PARTITION BY`` clause (Timeplus's per-key substreams) and parse
    its expressions at their places in ``sql``; upstream does not parse the clause."""
    toks = _tokens(sql)
    depth = 0
    for i, tok in enumerate(toks):
        if tok.token_type == TokenType.L_PAREN:
            depth += 1
        elif tok.token_type == TokenType.R_PAREN:
            depth -= 1
        elif depth == 0 and tok.token_type == TokenType.PARTITION_BY:
            end = i + 1
            nested = 0
            while end < len(toks) and (nested or toks[end].token_type not in _PARTITION_END):
                nested += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(toks[end].token_type, 0)
                end += 1
            if end == i + 1:
                raise located("PARTITION BY needs at least one expression", position_at(sql, tok.start))
            lo, hi = toks[i + 1].start, toks[end - 1].end + 1
            blank = "".join("\n" if c == "\n" else " " for c in sql)
            # The expressions alone, at their own places: "SELECT" stands where "PARTITION BY" stood.
            alone = blank[:tok.start] + "SELECT" + blank[tok.start + 6:lo] + sql[lo:hi] + blank[hi:]
            try:
                keys = sqlglot.parse_one(alone, dialect=DIALECT)
            except ParseError as e:
                raise located(f"invalid PARTITION BY: {e.errors[0].get('description') if e.errors else e}",
                              position_at(sql, lo)) from e
            cut = sql[:tok.start] + blank[tok.start:hi] + sql[hi:]
            return cut, [k.transform(_rewrite_shorthand) for k in keys.expressions]
    return sql, []


def _session_calls(sql: str) -> str:
    """``session(`` spelled ``swindow(`` (same length: positions stay): upstream reads SESSION as a
    keyword; the planner reads swindow() as the session window."""
    toks = _tokens(sql)
    for tok, after in zip(toks, toks[1:]):
        if tok.token_type == TokenType.SESSION and after.token_type == TokenType.L_PAREN:
            sql = sql[:tok.start] + SESSION_CALL + sql[tok.end + 1:]
    return sql


#: The meta key of a session window's ``[start, end)`` range: (start row included, end row included).
SESSION_RANGE = "session_range"


def _session_ranges(sql: str) -> tuple[str, list[tuple[bool, bool]]]:
    """A session window's ``[start_cond, end_cond)`` (any of ``[``/``(`` with ``]``/``)``), which no
    SQL parser reads, spelled ``(start_cond, end_cond)`` (same length: positions stay); returns
    the text and each range's inclusiveness in text order (see :func:`_mark_session_ranges`)."""
    ranges: list[tuple[bool, bool]] = []
    for call in re.finditer(rf"\b{SESSION_CALL}\(", sql):
        i, depth, quote = call.end(), 1, ""
        arg_start = True
        while i < len(sql) and depth:
            ch = sql[i]
            if quote:
                quote = "" if ch == quote else quote
            elif ch in "'\"`":
                quote = ch
            elif ch in "([" and depth == 1 and arg_start:
                close = _range_end(sql, i)
                if close is not None:
                    ranges.append((ch == "[", sql[close] == "]"))
                    sql = sql[:i] + "(" + sql[i + 1:close] + ")" + sql[close + 1:]
                    i = close
                else:
                    depth += 1
            elif ch in "([":
                depth += 1
            elif ch in ")]":
                depth -= 1
            if not ch.isspace():
                arg_start = ch == "," and depth == 1 and not quote
            i += 1
    return sql, ranges


def _range_end(sql: str, start: int) -> int | None:
    """Where the range opened at ``start`` closes, when it holds two conditions (a top-level comma)."""
    depth, quote, comma = 0, "", False
    for i in range(start + 1, len(sql)):
        ch = sql[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"`":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            if depth == 0:
                return i if comma else None
            depth -= 1
        elif ch == "," and depth == 0:
            comma = True
    return None


def _mark_session_ranges(tree: exp.Expression, ranges: list[tuple[bool, bool]]) -> None:
    """Put each range's inclusiveness on its tuple in the session calls (in text order)."""
    tuples = [arg for call in tree.find_all(exp.Anonymous) if call.name.lower() == SESSION_CALL
              for arg in call.expressions if isinstance(arg, exp.Tuple) and len(arg.expressions) == 2]
    tuples.sort(key=lambda node: (pos.line, pos.column) if (pos := node_position(node)) else (0, 0))
    for node, flags in zip(tuples, ranges):
        node.meta[SESSION_RANGE] = flags


def _latest_joins(sql: str) -> str:
    """``LATEST JOIN`` (Timeplus) spelled ``ANY    JOIN`` (same length: positions stay), which
    upstream parses; the planner reads a join of kind ANY as LATEST."""
    toks = _tokens(sql)
    for tok, after in zip(toks, toks[1:]):
        if tok.token_type == TokenType.VAR and tok.text.lower() == "latest" and after.token_type == TokenType.JOIN:
            sql = sql[:tok.start] + "any   " + sql[tok.end + 1:]
    return sql


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
    statement, for a statement that is not a SELECT and for unsupported EMIT clauses, and
    for text past the limits of :mod:`sinkflow.sql.limits`.
    """
    if not sql or not sql.strip():
        raise SqlError("empty SQL statement")
    check_sql_limits(sql)
    text, emit = _cut_emit(sql)
    text, shortcuts = json_shortcuts.hide(text)  # raw:a.b → a placeholder as long, put back below
    text, ranges = _session_ranges(_session_calls(_latest_joins(text)))
    text, partition_by = _cut_partition(text)
    partition_by = [json_shortcuts.restore(key, shortcuts) for key in partition_by]
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
    if not isinstance(tree, (exp.Select, exp.SetOperation)):
        raise SqlError(f"expected a SELECT statement, got {tree.key.upper()}")
    tree = json_shortcuts.restore(tree, shortcuts).transform(_rewrite_shorthand)
    assert isinstance(tree, (exp.Select, exp.SetOperation))
    _mark_session_ranges(tree, ranges)
    _prewhere_as_where(tree)
    tree = tree.transform(_array_join_as_subquery)
    texts = _select_texts(sql, _tokens(text)) if isinstance(tree, exp.Select) else None
    count = len(tree.expressions) if isinstance(tree, exp.Select) else -1
    return ParsedSelect(sql, tree, emit, texts if texts is not None and len(texts) == count else None, partition_by)


def _prewhere_as_where(tree: exp.Expression) -> None:
    """Fold each PREWHERE (ClickHouse's read-time filter: an optimisation, the same rows) into
    its query's WHERE."""
    for select in tree.find_all(exp.Select):
        prewhere = select.args.get("prewhere")
        if prewhere is None:
            continue
        select.set("prewhere", None)
        where = select.args.get("where")
        condition = prewhere.this if where is None else exp.and_(exp.paren(prewhere.this), exp.paren(where.this))
        select.set("where", exp.Where(this=condition))


_ARRAY_INDEX = "__array_join_index"


def _array_join_as_subquery(node: exp.Expression) -> exp.Expression:
    """``FROM src [LEFT] ARRAY JOIN arr [AS a], arr2 [AS b] …`` as a read of a subquery that
    repeats each row of ``src`` once per position of the arrays (zipped, as ClickHouse does),
    with ``a`` (or ``arr`` itself, without an alias) the element there. A LEFT ARRAY JOIN keeps a
    row whose array is empty, with a null element."""
    if not isinstance(node, exp.Select):
        return node
    joins = node.args.get("joins") or []
    if not joins or str(joins[0].args.get("kind") or "").upper() != "ARRAY" or node.args.get("from_") is None:
        return node
    join = joins[0]
    source = node.args["from_"].this
    label = source.alias_or_name if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier) \
        else source.alias
    items = [join.this, *(join.args.get("expressions") or [])]
    arrays = [(item.this, item.alias) if isinstance(item, exp.Alias) else (item, "") for item in items]
    first = arrays[0][0].copy()
    positions: exp.Expression = exp.Anonymous(this="array_enumerate", expressions=[first])
    if str(join.args.get("side") or "").upper() == "LEFT":
        positions = exp.If(this=exp.Anonymous(this="empty", expressions=[first.copy()]),
                           true=exp.Array(expressions=[exp.Literal.number(1)]), false=positions)
    numbered = exp.select(exp.Star(), exp.alias_(exp.Anonymous(this="array_join", expressions=[positions]),
                                                         _ARRAY_INDEX)).from_(source.copy())
    renamed: dict[str, str] = {}
    elements = []
    for array, alias in arrays:
        name = alias or (f"__array_join_{array.name}" if isinstance(array, exp.Column) else "")
        if not name:
            return node  # an unnamed expression: the planner refuses ARRAY JOIN, naming it
        if not alias:
            renamed[array.name] = name
        elements.append(exp.alias_(exp.Bracket(this=array.copy(), expressions=[exp.column(_ARRAY_INDEX)]), name))
    joined = exp.select(exp.Star(), *elements).from_(numbered.subquery("array_join_rows"))
    node = node.copy()
    node.set("joins", joins[1:] or None)
    node.set("from_", None)
    if renamed:
        # ARRAY JOIN arr without an alias: arr means the element in the rest of the query.
        node.set("expressions", [exp.alias_(exp.column(renamed[e.name]), e.name)
                                 if isinstance(e, exp.Column) and not e.table and e.name in renamed else e
                                 for e in node.expressions])
        node = node.transform(lambda n: exp.column(renamed[n.name])
                              if isinstance(n, exp.Column) and not n.table and n.name in renamed else n)
    node.set("from_", exp.From(this=joined.subquery(label or "array_join_rows")))
    return node


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
