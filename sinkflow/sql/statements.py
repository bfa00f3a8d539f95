"""Parsing Timeplus's non-SELECT statements: CREATE/DROP STREAM, SHOW STREAMS, DESCRIBE, INSERT.

:func:`parse_statement` returns one of the statement dataclasses below, or ``None`` for a query
(``SELECT`` / ``WITH``), which the engine's SELECT parser handles. sqlglot's ClickHouse dialect
does not know ``CREATE STREAM``, so these statements are read here by a small recursive-descent
parser over sqlglot's ClickHouse tokens (which carry each token's place in the text). Every error
is a :class:`SqlError` with the 1-based line/column of the offending token; statements that are
valid SQL but not supported (UPDATE, CREATE TABLE, …) name the construct. The pipeline statements
(external streams, views, INSERT … SELECT) are parsed by :mod:`sinkflow.sql.pipeline_statements`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace

import duckdb
import pyarrow as pa

from sqlglot.dialects.clickhouse import ClickHouse
from sqlglot import exp
from sqlglot.errors import TokenError
from sqlglot.tokens import Token, TokenType

from sinkflow.errors import InvalidInput, SqlError
from sinkflow.sql.defaults import parse_expression
from sinkflow.sql.functions import to_duckdb
from sinkflow.sql.dictionary_statements import DictionaryStatement, parse_dictionary_statement
from sinkflow.sql.function_statements import FunctionStatement, parse_function_statement
from sinkflow.sql.limits import check_sql_limits
from sinkflow.sql.pipeline_statements import PipelineStatement, parse_pipeline
from sinkflow.sql.user_functions import UserFunction
from sinkflow.sql.positions import located, node_position, position_at
from sinkflow.streams.store import StreamSettings
from sinkflow.streams.types import TP_TIME, TP_TIME_TYPE, Column, DataType, from_arrow, parse_type

__all__ = [
    "ValueExpression",
    "AddColumn",
    "SetSettings",
    "CreateStream",
    "DescribeStream",
    "DropStream",
    "Insert",
    "ShowStreams",
    "Statement",
    "ShowCreateStream",
    "TruncateStream",
    "Maintenance",
    "CreateFunction",
    "DropFunction",
    "AlterStream",
    "parse_statement",
]


@dataclass(frozen=True)
class CreateStream:
    """``CREATE [RANDOM | MUTABLE] STREAM [IF NOT EXISTS] name (col type [DEFAULT|ALIAS expr]
    [COMMENT 'c'] [CODEC(…)] [TTL …], …) [ENGINE = E(…)] [PRIMARY KEY …] [ORDER BY …]
    [PARTITION BY …] [TTL …] [SETTINGS k=v, …] [COMMENT 'c']``.

    ``settings`` are the ``(name, value)`` pairs for
    :meth:`sinkflow.streams.store.StreamSettings.from_dict`, each already checked there: the
    SETTINGS as written, plus ``primary_key``, ``mode='mutable'`` for a mutable stream,
    ``random=True`` for a random stream, ``description`` for the stream's COMMENT and ``engine``
    for its ENGINE."""

    name: str
    columns: tuple[Column, ...]
    settings: tuple[tuple[str, object], ...] = ()
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
class ShowCreateStream:
    """``SHOW CREATE [STREAM] name``."""

    name: str


@dataclass(frozen=True)
class AddColumn:
    """``ALTER STREAM name ADD COLUMN [IF NOT EXISTS] col type [DEFAULT …] [FIRST | AFTER other]``;
    ``position`` is None (last), ``"first"`` or ``"after <other>"``."""

    name: str
    column: Column
    position: str | None = None
    if_not_exists: bool = False


@dataclass(frozen=True)
class SetSettings:
    """``SET name = value[, …]``: query settings for a session, which sinkflow does not keep (a
    query takes its settings from its own SETTINGS clause); accepted so scripts written for
    Proton's client run."""

    settings: tuple[tuple[str, object], ...]


@dataclass(frozen=True)
class TruncateStream:
    """``TRUNCATE [TABLE | STREAM] [IF EXISTS] name``: every row deleted, the definition kept."""

    name: str
    if_exists: bool = False


@dataclass(frozen=True)
class Maintenance:
    """A statement Proton's storage needs and sinkflow's does not (``OPTIMIZE … [FINAL]``,
    ``CHECK TABLE``, ``SYSTEM DROP … CACHE``, ``SYSTEM FLUSH LOGS``, ``CREATE/DROP DATABASE``,
    ``USE db``): it changes nothing. ``what`` names it for the answer; ``stream``, when it names
    one, must exist; ``check``: CHECK TABLE, which answers one row ``1`` (the data is fine)."""

    what: str
    stream: str | None = None
    check: bool = False


@dataclass(frozen=True)
class AlterStream:
    """A change of a stream's columns or rows that rewrites it: ``ALTER STREAM name``
    ``DROP COLUMN [IF EXISTS] c`` (``action="drop"``), ``RENAME COLUMN [IF EXISTS] c TO new``
    (``"rename"``, ``new_name``), ``MODIFY COLUMN [IF EXISTS] c type`` (``"modify"``,
    ``definition``), ``UPDATE c = expr, … WHERE cond`` (``"update"``, ``assignments``, ``where``),
    ``DELETE WHERE cond`` or ``DELETE FROM name WHERE cond`` (``"delete"``, ``where``).
    Expressions are kept as written."""

    name: str
    action: str
    column: str = ""
    if_exists: bool = False
    new_name: str = ""
    definition: Column | None = None
    assignments: tuple[tuple[str, str], ...] = ()
    where: str = ""


@dataclass(frozen=True)
class CreateFunction:
    """``CREATE [OR REPLACE] FUNCTION [IF NOT EXISTS] name AS (x, y) -> expression`` (also
    ``AS x -> expression``): a SQL user-defined function (:mod:`sinkflow.sql.user_functions`)."""

    function: UserFunction
    or_replace: bool = False
    if_not_exists: bool = False


@dataclass(frozen=True)
class DropFunction:
    """``DROP FUNCTION [IF EXISTS] name``."""

    name: str
    if_exists: bool = False


@dataclass(frozen=True)
class ValueExpression:
    """A value of INSERT … VALUES that is an expression (``now()``, ``to_datetime('…')``,
    ``1 + 2``), as written; ``padded`` is the statement's text before it blanked out, then the
    expression, so parsing it reports positions in the statement. Evaluated once per occurrence."""

    text: str
    padded: str = field(compare=False, repr=False)


@dataclass(frozen=True)
class Insert:
    """``INSERT INTO name [(col, …)] VALUES (…), (…)``.

    ``columns`` is None when the statement names none (all user columns, in order). ``rows`` hold
    Python values (int, float, str, None, bool and lists for arrays) and :class:`ValueExpression`
    for values written as expressions (constants and functions, no columns)."""

    name: str
    columns: tuple[str, ...] | None
    rows: tuple[tuple[object, ...], ...]


Statement = (CreateStream | DropStream | ShowStreams | ShowCreateStream | DescribeStream | Insert | AddColumn
             | SetSettings | TruncateStream | Maintenance | CreateFunction | DropFunction | AlterStream)

# The type of a column written without one, until its expression's type is known.
_UNTYPED = DataType("untyped", pa.null())
# Words that end a column's type or expression (at the top level of the column list).
_COLUMN_CLAUSES = ("DEFAULT", "ALIAS", "MATERIALIZED", "EPHEMERAL", "COMMENT", "CODEC", "TTL")
# Clauses after the column list, each ending at the next one.
_STREAM_CLAUSES = (("PRIMARY", "KEY"), ("ORDER", "BY"), ("PARTITION", "BY"), ("SAMPLE", "BY"), ("TTL",),
                   ("SETTINGS",), ("COMMENT",), ("ENGINE",))
_SHOW_CREATE = re.compile(r"CREATE\s+(?:STREAM\s+)?(`[^`]+`|\"[^\"]+\"|[A-Za-z_][A-Za-z0-9_]*)\s*;?\Z",
                          re.IGNORECASE)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# ClickHouse's MergeTree storage settings: how parts are laid out on disk, which changes nothing
# of a stream's rows here, so they are accepted and ignored (see docs/sql.md).
_STORAGE_SETTINGS = frozenset({
    "index_granularity", "index_granularity_bytes", "min_index_granularity_bytes", "min_bytes_for_wide_part",
    "min_rows_for_wide_part", "min_bytes_for_compact_part", "min_rows_for_compact_part",
    "enable_mixed_granularity_parts", "vertical_merge_algorithm_min_rows_to_activate",
    "vertical_merge_algorithm_min_columns_to_activate", "enable_vertical_merge_algorithm",
    "ratio_of_defaults_for_sparse_serialization", "old_parts_lifetime", "temporary_directories_lifetime",
    "number_of_free_entries_in_pool_to_lower_max_size_of_merge",
    "number_of_free_entries_in_pool_to_execute_mutation", "non_replicated_deduplication_window",
    "max_insert_delayed_streams_for_parallel_write", "write_final_mark", "allow_nullable_key",
    "allow_floating_point_partition_key", "parts_to_throw_insert", "parts_to_delay_insert",
    "inactive_parts_to_throw_insert", "inactive_parts_to_delay_insert", "max_parts_in_total", "merge_max_block_size",
    "merge_with_ttl_timeout", "ttl_only_drop_parts", "materialize_ttl_recalculate_only", "storage_policy",
    "min_merge_bytes_to_use_direct_io", "in_memory_parts_insert_sync", "remove_empty_parts", "fsync_after_insert",
    "fsync_part_directory", "min_compress_block_size", "max_compress_block_size", "cleanup_delay_period_random_add",
    "merge_tree_clear_old_temporary_directories_interval_seconds", "max_part_removal_threads", "compress_marks",
    "compress_primary_key", "replicated_deduplication_window", "assign_part_uuids", "max_suspicious_broken_parts",
})
# ALTER STREAM actions about indexes, projections, TTLs, storage order and parts: nothing to do here.
_ALTER_NOOP = (("ADD", "INDEX"), ("DROP", "INDEX"), ("MATERIALIZE", "INDEX"), ("CLEAR", "INDEX"),
               ("ADD", "PROJECTION"), ("DROP", "PROJECTION"), ("MATERIALIZE", "PROJECTION"),
               ("CLEAR", "PROJECTION"), ("MODIFY", "TTL"), ("REMOVE", "TTL"), ("MATERIALIZE", "TTL"),
               ("FREEZE",), ("UNFREEZE",), ("MODIFY", "ORDER"), ("MODIFY", "SAMPLE"), ("ADD", "CONSTRAINT"),
               ("DROP", "CONSTRAINT"))
# SYSTEM commands about ClickHouse's caches, logs, merges and replicas: nothing to do here.
_SYSTEM_NOOP = re.compile(r"(DROP\s+(\w+\s+){0,2}CACHE|FLUSH\s+(LOGS|DISTRIBUTED)|(STOP|START)\s+(TTL\s+)?"
                          r"(MERGES|MOVES|FETCHES|REPLICATION\s+QUEUES|REPLICATED\s+SENDS|DISTRIBUTED\s+SENDS)"
                          r"|SYNC\s+REPLICA|RELOAD\s+\w+)\b", re.IGNORECASE)
_NAME = r"(?:`[^`]+`|\"[^\"]+\"|[A-Za-z_][A-Za-z0-9_]*)"
# OPTIMIZE's text after the word: [TABLE | STREAM] [db.]name [ON CLUSTER c] [PARTITION p] [FINAL] [DEDUPLICATE …].
_OPTIMIZE = re.compile(rf"(?:(?:TABLE|STREAM)\s+)?(?:{_NAME}\.)?({_NAME})(?:\s+ON\s+CLUSTER\s+\S+)?"
                       r"(?:\s+PARTITION\s+.+?)?(?:\s+FINAL)?(?:\s+DEDUPLICATE(?:\s+BY\s+.+)?)?\s*;?\s*\Z",
                       re.IGNORECASE | re.DOTALL)
_WORD_TOKENS = {TokenType.STRING, TokenType.NUMBER}


class _Parser:
    """Recursive descent over sqlglot's ClickHouse tokens of one statement."""

    def __init__(self, sql: str, tokens: list[Token]) -> None:
        self.sql = sql
        self.tokens = tokens
        self.i = 0
        self.alone = False  # a column definition standing alone (ALTER … ADD COLUMN), not in a list

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

    def phrase(self, words: tuple[str, ...]) -> int:
        """How many tokens spell ``words`` here (sqlglot makes one token of ``PRIMARY KEY`` or
        ``ORDER BY``), 0 when they don't."""
        token = self.peek()
        if token is not None and token.token_type not in _WORD_TOKENS and " ".join(token.text.upper().split()) \
                == " ".join(words):
            return 1
        return len(words) if all(self.is_word(w, k) for k, w in enumerate(words)) else 0

    def at_stream_clause(self) -> int:
        """The token count of the stream clause (PRIMARY KEY, SETTINGS …) that starts here, else 0."""
        return next((n for words in _STREAM_CLAUSES if (n := self.phrase(words))), 0)

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

    def stream_name(self, what: str = "a stream name") -> str:
        """A stream's name, optionally after its database's (``db.name``): sinkflow has one
        namespace of streams, so the database's name is dropped (see docs/sql.md)."""
        name = self.identifier(what)
        if self.accept(TokenType.DOT):
            name = self.identifier(what)
        return name

    def skip_rest(self) -> None:
        """Skip every token up to the end of the statement (clauses that change nothing here)."""
        while (token := self.peek()) is not None and token.token_type != TokenType.SEMICOLON:
            self.i += 1
        self.end()

    def end(self) -> None:
        self.accept(TokenType.SEMICOLON)
        token = self.peek()
        if token is not None:
            raise self.error(f"unexpected '{token.text}' after the end of the statement", token)

    def text_between(self, first: Token, last: Token) -> str:
        return self.sql[first.start:last.end + 1]

    def until_column_end(self, what: str) -> tuple[Token, Token]:
        """Consume tokens up to a top-level ',' or ')' or a column clause (DEFAULT, COMMENT …);
        return the first and last consumed."""
        first = self.peek()
        depth = 0
        last: Token | None = None
        while True:
            token = self.peek()
            if self.alone and depth == 0 and (token is None or token.token_type == TokenType.SEMICOLON
                                              or self.is_word("FIRST") or self.is_word("AFTER")):
                break
            if token is None:
                raise self.error(f"unterminated column list: expected ')' after {what}")
            if depth == 0 and (token.token_type in (TokenType.COMMA, TokenType.R_PAREN)
                               or any(self.is_word(word) for word in _COLUMN_CLAUSES)):
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
    def statement(self) -> Statement | PipelineStatement | FunctionStatement | DictionaryStatement | None:
        first = self.peek()
        assert first is not None
        if first.token_type in (TokenType.SELECT, TokenType.WITH, TokenType.L_PAREN) or self.is_word("EXPLAIN"):
            return None
        maintenance = self.maintenance()
        if maintenance is not None:
            return maintenance
        function = parse_function_statement(self) or parse_dictionary_statement(self)
        if function is not None:
            return function
        pipeline = parse_pipeline(self)
        if pipeline is not None:
            return pipeline
        if self.accept_word("CREATE"):
            return self.create()
        if self.accept_word("DROP"):
            return self.drop()
        if self.accept_word("SHOW"):
            return self.show()
        if self.accept_word("DESCRIBE") or self.accept_word("DESC"):
            self.accept_word("STREAM") or self.accept_word("TABLE")
            name = self.stream_name()
            self.end()
            return DescribeStream(name)
        if self.accept_word("INSERT"):
            return self.insert()
        if self.accept_word("ALTER"):
            return self.alter()
        if self.accept_word("SET"):
            return self.set_settings()
        if self.accept_word("DELETE", "FROM"):
            name = self.stream_name()
            self.expect_word("WHERE")
            return AlterStream(name, "delete", where=self.condition())
        if self.accept_word("TRUNCATE"):
            self.accept_word("STREAM") or self.accept_word("TABLE")
            if_exists = self.accept_word("IF", "EXISTS")
            name = self.stream_name()
            self.end()
            return TruncateStream(name, if_exists)
        raise self.error(f"{first.text.upper()} statements are not supported", first)

    def maintenance(self) -> Maintenance | None:
        """OPTIMIZE, CHECK TABLE, the SYSTEM commands of :data:`_SYSTEM_NOOP`, CREATE/DROP
        DATABASE and USE: a :class:`Maintenance`; None (nothing consumed) for other statements."""
        first = self.peek()
        assert first is not None
        command = self.peek(1)
        if self.is_word("OPTIMIZE") and command is not None and command.token_type == TokenType.STRING:
            match = _OPTIMIZE.match(command.text.strip())
            if match is None:
                # sqlglot reads the rest of the command as one string token, whose start it does not keep.
                raise located("expected OPTIMIZE [TABLE | STREAM] name [PARTITION p] [FINAL] [DEDUPLICATE]",
                              position_at(self.sql, max(self.sql.find(command.text), 0)))
            self.i += 2
            self.end()
            return Maintenance("OPTIMIZE", match.group(1).strip("`\""))
        if self.is_word("SYSTEM") and command is not None and command.token_type == TokenType.STRING \
                and _SYSTEM_NOOP.match(command.text.strip()):
            self.i += 2
            self.end()
            return Maintenance("SYSTEM " + " ".join(command.text.split()[:3]).upper())
        if self.accept_word("CHECK"):
            self.accept_word("TABLE") or self.accept_word("STREAM")
            name = self.stream_name()
            self.skip_rest()  # PARTITION p, SETTINGS …
            return Maintenance("CHECK TABLE", name, check=True)
        if self.accept_word("USE"):
            database = self.identifier("a database name")
            self.end()
            return Maintenance(f"USE {database}")
        start = self.i
        if self.accept_word("CREATE", "DATABASE") or self.accept_word("DROP", "DATABASE"):
            verb = self.tokens[start].text.upper()
            self.accept_word("IF", "NOT", "EXISTS") or self.accept_word("IF", "EXISTS")
            database = self.identifier("a database name")
            self.skip_rest()  # ENGINE = Atomic, COMMENT '…'
            return Maintenance(f"{verb} DATABASE {database}")
        return None

    def create(self) -> CreateStream | CreateFunction:
        kind = self.peek()
        if self.accept_word("FUNCTION") or self.accept_word("OR", "REPLACE", "FUNCTION"):
            return self.create_function(kind is not None and kind.text.upper() == "OR")
        settings: list[tuple[str, object]] = []
        self.accept_word("TEMPORARY")  # a temporary stream lives as long as the server here: kept until DROP
        if self.accept_word("RANDOM", "STREAM"):
            settings.append(("random", True))
        elif self.accept_word("MUTABLE", "STREAM"):
            settings.append(("mode", "mutable"))
        elif not self.accept_word("STREAM"):
            words = []
            for ahead in range(3):
                token = self.peek(ahead)
                if token is None or token.token_type in _WORD_TOKENS or not _IDENT.match(token.text):
                    break
                words.append(token.text.upper())
                if token.text.upper() in ("STREAM", "VIEW", "TABLE", "FUNCTION", "DATABASE", "SINK"):
                    break
            construct = " ".join(["CREATE", *words]) if words else "this CREATE statement"
            raise self.error(f"{construct} is not supported (only CREATE [RANDOM | MUTABLE] STREAM is)", kind)
        if_not_exists = self.accept_word("IF", "NOT", "EXISTS")
        name = self.stream_name()
        self.expect(TokenType.L_PAREN, "(")
        columns: list[Column] = []
        expressions: list[tuple[Column, Token]] = []
        while True:
            if self.accept_word("INDEX") or self.accept_word("FAMILY") or self.accept_word("PROJECTION"):
                self.until_column_end("the index")  # secondary indexes change nothing here
            elif self.phrase(("PRIMARY", "KEY")):
                settings.append(self.primary_key())
            else:
                column, first = self.column()
                columns.append(column)
                if first is not None:
                    expressions.append((column, first))
            if self.accept(TokenType.COMMA):
                continue
            self.expect(TokenType.R_PAREN, ")")
            break
        settings.extend(self.stream_clauses())
        self.end()
        for k, (column, first) in enumerate(expressions):
            if column.type is _UNTYPED:
                typed = replace(column, type=self.expression_type(column, first, columns))
                columns[columns.index(column)] = typed
                expressions[k] = (typed, first)
        for column, first in expressions:
            self.check_expression(column, first, columns)
        return CreateStream(name, tuple(columns), tuple(settings), if_not_exists)

    def function_name(self) -> str:
        """A function's name: letters, digits and '_' (Proton allows a leading digit here)."""
        token = self.next("a function name")
        if token.token_type in _WORD_TOKENS or not re.fullmatch(r"\w+", token.text):
            raise self.error(f"expected a function name, found '{token.text}'", token)
        return token.text

    def create_function(self, or_replace: bool) -> CreateFunction:
        """The rest of ``CREATE [OR REPLACE] FUNCTION``: ``[IF NOT EXISTS] name AS (params) -> body``."""
        if_not_exists = self.accept_word("IF", "NOT", "EXISTS")
        name = self.function_name()
        if self.accept_word("ON", "CLUSTER"):
            self.identifier("a cluster name")
        if not self.is_word("AS"):
            raise self.error(f"function '{name}': write CREATE FUNCTION {name} AS (x, y) -> expression, or "
                             f"CREATE FUNCTION {name}(x type) RETURNS type LANGUAGE PYTHON AS $$ … $$")
        self.i += 1
        params: list[str] = []
        if self.accept(TokenType.L_PAREN):
            while not self.accept(TokenType.R_PAREN):
                if params:
                    self.expect(TokenType.COMMA, ",")
                params.append(self.identifier("a parameter name"))
        else:
            params.append(self.identifier("a parameter name"))
        if len(set(params)) != len(params):
            raise self.error(f"function '{name}' names a parameter twice")
        self.expect(TokenType.ARROW, "->")
        first = self.peek()
        if first is None or first.token_type == TokenType.SEMICOLON:
            raise self.error(f"function '{name}' needs an expression after '->'")
        last = first
        while (token := self.peek()) is not None and token.token_type != TokenType.SEMICOLON:
            last = token
            self.i += 1
        self.end()
        # The body must parse; the functions it calls are looked up where it is used (it may call
        # user functions created after it).
        parse_expression(re.sub(r"[^\n]", " ", self.sql[:first.start]) + self.text_between(first, last))
        return CreateFunction(UserFunction(name, tuple(params), self.text_between(first, last)), or_replace,
                              if_not_exists)

    def stream_clauses(self) -> list[tuple[str, object]]:
        """The clauses after the column list, in any order: PRIMARY KEY, SETTINGS and COMMENT
        are kept; ORDER BY, PARTITION BY, SAMPLE BY and TTL (historical storage) are skipped."""
        settings: list[tuple[str, object]] = []
        while self.peek() is not None and self.peek().token_type != TokenType.SEMICOLON:  # type: ignore[union-attr]
            if self.phrase(("PRIMARY", "KEY")):
                settings.append(self.primary_key())
            elif self.accept_word("SETTINGS"):
                settings.extend(self.settings())
            elif self.accept_word("COMMENT"):
                settings.append(("description", self.string("the stream's comment")))
            elif self.accept_word("ENGINE"):
                settings.append(("engine", self.engine()))
            elif skip := self.at_stream_clause():
                self.i += skip
                self.until_clause_end()
            else:
                token = self.peek()
                assert token is not None
                raise self.error(f"unexpected '{token.text}' after the column list (expected ENGINE, PRIMARY KEY, "
                                 "ORDER BY, PARTITION BY, TTL, SETTINGS or COMMENT)", token)
        return settings

    def engine(self) -> str:
        """``ENGINE [=] Name[(args…)]`` (after ENGINE): the engine's name; its arguments
        (ClickHouse storage parameters) are skipped."""
        self.accept(TokenType.EQ)
        name = self.identifier("an engine name, such as Memory or MergeTree")
        if self.accept(TokenType.L_PAREN):
            depth = 1
            while depth:
                token = self.next("')' closing the engine's arguments")
                if token.token_type == TokenType.L_PAREN:
                    depth += 1
                elif token.token_type == TokenType.R_PAREN:
                    depth -= 1
        return name

    def until_clause_end(self) -> None:
        """Skip the tokens of a clause up to the next top-level stream clause or the end."""
        depth = 0
        start = self.i
        while (token := self.peek()) is not None and token.token_type != TokenType.SEMICOLON:
            if depth == 0 and self.i > start and self.at_stream_clause():
                return
            if token.token_type in (TokenType.L_PAREN, TokenType.L_BRACKET):
                depth += 1
            elif token.token_type in (TokenType.R_PAREN, TokenType.R_BRACKET):
                depth -= 1
            self.i += 1
        if self.i == start:
            raise self.error("expected an expression")

    def primary_key(self) -> tuple[str, object]:
        """``PRIMARY KEY k`` or ``PRIMARY KEY (k1, k2, …)``: column names only."""
        self.i += self.phrase(("PRIMARY", "KEY"))
        keys: list[str] = []
        if self.accept(TokenType.L_PAREN):
            keys.append(self.identifier("a key column"))
            while self.accept(TokenType.COMMA):
                keys.append(self.identifier("a key column"))
            self.expect(TokenType.R_PAREN, ")")
        else:
            keys.append(self.identifier("a key column"))
        token = self.peek()
        if token is not None and token.token_type not in (TokenType.COMMA, TokenType.R_PAREN, TokenType.SEMICOLON) \
                and not self.at_stream_clause():
            raise self.error("PRIMARY KEY takes column names, such as PRIMARY KEY (device, site)", token)
        return ("primary_key", tuple(keys))

    def string(self, what: str) -> str:
        token = self.next(what)
        if token.token_type != TokenType.STRING:
            raise self.error(f"expected {what} as a 'quoted string', found '{token.text}'", token)
        return token.text

    def column(self) -> tuple[Column, Token | None]:
        """One column definition, and the first token of its expression (None without one)."""
        name = self.identifier("a column name")
        typeless = self.is_word("DEFAULT") or self.is_word("ALIAS") or self.is_word("MATERIALIZED")
        if typeless:
            data_type = _UNTYPED  # its expression's type, found once every column is known (see create)
        elif any(self.is_word(word) for word in _COLUMN_CLAUSES):
            raise self.error(f"column '{name}' needs a type or a DEFAULT, ALIAS or MATERIALIZED expression")
        else:
            type_first, type_last = self.until_column_end(f"the type of column '{name}'")
            try:
                data_type = parse_type(self.text_between(type_first, type_last))
            except InvalidInput as err:
                raise self.error(f"column '{name}': {err.message}", type_first) from None
        default: str | None = None
        alias = False
        first: Token | None = None
        comment = ""
        while True:
            clause = self.peek()
            if self.accept_word("DEFAULT") or self.accept_word("ALIAS") or self.accept_word("MATERIALIZED"):
                assert clause is not None
                if default is not None:
                    raise self.error(f"column '{name}' has two expressions", clause)
                first, last = self.until_column_end(f"the {clause.text.upper()} expression of column '{name}'")
                default, alias = self.text_between(first, last), clause.text.upper() != "DEFAULT"
            elif self.accept_word("EPHEMERAL"):
                raise self.error(f"column '{name}': EPHEMERAL columns are not supported", clause)
            elif self.accept_word("COMMENT"):
                comment = self.string(f"the comment of column '{name}'")
            elif self.accept_word("CODEC") or self.accept_word("TTL"):
                self.until_column_end(f"the {clause.text.upper()} of column '{name}'")  # storage only: no effect
            else:
                break
        return Column(name, data_type, default, alias, comment), first

    def expression_type(self, column: Column, first: Token, columns: list[Column]) -> DataType:
        """The type of ``column``'s expression over the typed ``columns`` (as DuckDB computes it).
        Raises :class:`SqlError` placed in the statement for an expression that does not type."""
        assert column.default is not None
        typed = [c for c in columns if c.type is not _UNTYPED]
        self.check_expression(column, first, typed)
        schema = {c.name: c.type for c in typed}
        schema.setdefault(TP_TIME, TP_TIME_TYPE)
        sql = to_duckdb(parse_expression(column.default), schema).sql(dialect="duckdb")
        empty = pa.schema([pa.field(name, t.arrow) for name, t in schema.items()]).empty_table()
        with duckdb.connect() as con:
            con.execute("SET TimeZone='UTC'")
            con.register("empty_columns", empty)
            try:
                arrow = con.sql(f"SELECT {sql} AS v FROM empty_columns").to_arrow_table().schema.field(0).type
            except duckdb.Error as err:
                raise self.error(f"column '{column.name}': the type of its expression cannot be found: {err}",
                                 first) from None
        return parse_type(from_arrow(arrow).name)

    def check_expression(self, column: Column, first: Token, columns: list[Column]) -> None:
        """Parse and map ``column``'s expression, so an error points into the statement."""
        assert column.default is not None
        # Blank out everything before the expression (keeping line breaks): positions stay the statement's.
        padded = re.sub(r"[^\n]", " ", self.sql[:first.start]) + column.default
        try:
            tree = parse_expression(padded)
            schema = {c.name: c.type for c in columns}
            schema.setdefault(TP_TIME, TP_TIME_TYPE)
            to_duckdb(tree, schema)
            unknown = next((c for c in tree.find_all(exp.Column) if not c.table and c.name not in schema), None)
            if unknown is not None and not self.alone:  # ALTER's other columns are the stream's, checked there
                raise located(f"unknown column '{unknown.name}'", node_position(unknown))
        except SqlError as err:
            message = err.message.split(" at line ")[0]
            raise located(f"column '{column.name}': {message}", err.position or position_at(self.sql, first.start)) \
                from None

    def settings(self, storage_only: bool = False) -> list[tuple[str, object]]:
        """``k=v, …``: each checked by StreamSettings.from_dict, so a bad one is placed; the
        storage settings of :data:`_STORAGE_SETTINGS` are skipped. With ``storage_only`` the
        other settings are given back unchecked."""
        values: list[tuple[str, object]] = []
        while True:
            key_token = self.peek()
            key = self.identifier("a setting name")
            self.expect(TokenType.EQ, "=")
            value_token = self.peek()
            value = self.literal()
            if key.lower() in _STORAGE_SETTINGS or storage_only:
                if key.lower() not in _STORAGE_SETTINGS:
                    values.append((key.lower(), value))
                if not self.accept(TokenType.COMMA):
                    break
                continue
            try:
                StreamSettings.from_dict({key.lower(): value})
            except InvalidInput as err:
                at = value_token if err.message.startswith("setting") else key_token
                raise self.error(err.message, at) from None
            values.append((key.lower(), value))
            if not self.accept(TokenType.COMMA):
                break
        return values

    def set_settings(self) -> SetSettings:
        """``name = value, …`` after SET."""
        values: list[tuple[str, object]] = []
        while True:
            key = self.identifier("a setting name")
            self.expect(TokenType.EQ, "=")
            values.append((key.lower(), "DEFAULT" if self.accept_word("DEFAULT") else self.literal()))
            if not self.accept(TokenType.COMMA):
                break
        self.end()
        return SetSettings(tuple(values))

    def alter(self) -> AddColumn | AlterStream | Maintenance:
        kind = self.peek()
        if not (self.accept_word("STREAM") or self.accept_word("TABLE")):
            raise self.error("only ALTER STREAM is supported", kind)
        name = self.stream_name()
        if self.accept_word("ON", "CLUSTER"):
            self.identifier("a cluster name")
        action = self.peek()
        if self.accept_word("ADD", "COLUMN"):
            return self.add_column(name)
        if self.accept_word("DROP", "COLUMN"):
            if_exists = self.accept_word("IF", "EXISTS")
            column = self.identifier("a column name")
            self.end()
            return AlterStream(name, "drop", column, if_exists)
        if self.accept_word("RENAME", "COLUMN"):
            if_exists = self.accept_word("IF", "EXISTS")
            column = self.identifier("a column name")
            self.expect_word("TO")
            new_name = self.identifier("the column's new name")
            self.end()
            return AlterStream(name, "rename", column, if_exists, new_name=new_name)
        if self.accept_word("MODIFY", "COLUMN"):
            if_exists = self.accept_word("IF", "EXISTS")
            self.alone = True
            definition, _ = self.column()
            self.end()
            return AlterStream(name, "modify", definition.name, if_exists, definition=definition)
        if self.accept_word("UPDATE"):
            assignments: list[tuple[str, str]] = []
            while True:
                column = self.identifier("a column name")
                self.expect(TokenType.EQ, "=")
                assignments.append((column, self.expression_until("WHERE", comma=True)))
                if not self.accept(TokenType.COMMA):
                    break
            self.expect_word("WHERE")
            return AlterStream(name, "update", assignments=tuple(assignments), where=self.condition())
        if self.accept_word("DELETE", "WHERE"):
            return AlterStream(name, "delete", where=self.condition())
        if self.accept_word("MODIFY", "SETTING"):
            refused = self.settings(storage_only=True)
            if refused:
                raise self.error(f"ALTER STREAM … MODIFY SETTING {refused[0][0]} is not supported (only ClickHouse's "
                                 "storage settings, which change nothing here, are accepted)", action)
            self.skip_rest()
            return Maintenance("ALTER STREAM … MODIFY SETTING", name)
        noop = next((words for words in _ALTER_NOOP if self.phrase(words)), None)
        if noop is not None:
            self.skip_rest()
            return Maintenance(f"ALTER STREAM … {' '.join(noop)}", name)
        found = " ".join(t.text.upper() for t in self.tokens[self.i:self.i + 2])
        raise self.error(f"ALTER STREAM … {found} is not supported (ADD, DROP, RENAME and MODIFY COLUMN, UPDATE … "
                         "WHERE and DELETE WHERE are)", action)

    def add_column(self, name: str) -> AddColumn:
        """The rest of ``ALTER STREAM name ADD COLUMN``."""
        if_not_exists = self.accept_word("IF", "NOT", "EXISTS")
        self.alone = True
        column, first = self.column()
        if first is not None:
            self.check_expression(column, first, [column])
        position: str | None = None
        if self.accept_word("FIRST"):
            position = "first"
        elif self.accept_word("AFTER"):
            position = "after " + self.identifier("a column name")
        self.end()
        return AddColumn(name, column, position, if_not_exists)

    def expression_until(self, stop: str, comma: bool = False) -> str:
        """The text of the expression up to the top-level word ``stop`` (or ',' with ``comma``, or
        SETTINGS, or the end); its syntax is checked here, so an error points into the statement."""
        first = self.peek()
        depth = 0
        last: Token | None = None
        while (token := self.peek()) is not None and token.token_type != TokenType.SEMICOLON:
            if depth == 0 and (self.is_word(stop) or self.is_word("SETTINGS")
                               or (comma and token.token_type == TokenType.COMMA)):
                break
            if token.token_type in (TokenType.L_PAREN, TokenType.L_BRACKET):
                depth += 1
            elif token.token_type in (TokenType.R_PAREN, TokenType.R_BRACKET):
                depth -= 1
            last = token
            self.i += 1
        if first is None or last is None:
            raise self.error("expected an expression")
        parse_expression(re.sub(r"[^\n]", " ", self.sql[:first.start]) + self.text_between(first, last))
        return self.text_between(first, last)

    def condition(self) -> str:
        """A WHERE condition up to the end of the statement (a SETTINGS clause after it is skipped:
        mutations here are synchronous)."""
        where = self.expression_until("SETTINGS")
        self.skip_rest()
        return where

    def drop(self) -> DropStream | DropFunction:
        kind = self.peek()
        if self.accept_word("FUNCTION"):
            if_exists = self.accept_word("IF", "EXISTS")
            name = self.function_name()
            self.end()
            return DropFunction(name, if_exists)
        if not (self.accept_word("STREAM") or self.accept_word("TABLE")):
            what = kind.text.upper() if kind is not None else ""
            raise self.error(f"DROP {what} is not supported (only DROP STREAM is)".replace("  ", " "), kind)
        if_exists = self.accept_word("IF", "EXISTS")
        name = self.stream_name()
        self.end()
        return DropStream(name, if_exists)

    def show(self) -> ShowStreams | ShowCreateStream:
        token = self.peek()
        # sqlglot tokenizes SHOW as a command: the rest of the statement is one STRING token.
        rest = " ".join(token.text.split()) if token is not None else ""
        self.i += 1
        if re.fullmatch(rf"(STREAMS|TABLES)(\s+(FROM|IN)\s+{_NAME})?", rest, re.IGNORECASE):
            self.end()
            return ShowStreams()
        match = _SHOW_CREATE.match(rest)
        if match is None:
            raise self.error(f"SHOW {rest.upper()} is not supported (SHOW STREAMS and SHOW CREATE [STREAM] name are)"
                             .replace("  ", " "), token)
        self.end()
        return ShowCreateStream(match.group(1).strip("`\""))

    def insert(self) -> Insert:
        self.expect_word("INTO")
        self.accept_word("STREAM") or self.accept_word("TABLE")
        name = self.stream_name()
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
        if self.accept_word("FORMAT"):
            fmt = self.peek()
            if self.accept_word("JSONEACHROW"):
                assert fmt is not None
                return self.json_rows(name, columns, self.sql[fmt.end + 1:])
            if not self.is_word("VALUES"):
                raise self.error("INSERT … FORMAT takes its rows here as Values or JSONEachRow (other formats: "
                                 "send the rows as the body of POST / with the statement in the query string)", fmt)
        self.expect_word("VALUES")
        rows: list[tuple[object, ...]] = []
        while True:
            self.expect(TokenType.L_PAREN, "(")
            rows.append(tuple(self.values_until_close()))
            # ClickHouse also reads tuples one after another without commas between them.
            if not self.accept(TokenType.COMMA) and not (self.peek() and self.peek().token_type == TokenType.L_PAREN):
                break
        self.end()
        return Insert(name, columns, tuple(rows))

    def json_rows(self, name: str, columns: tuple[str, ...] | None, data: str) -> Insert:
        """``INSERT … FORMAT JSONEachRow`` followed by its objects (separated by blanks or commas):
        the named columns, else every key the objects use, in order of first use."""
        objects: list[dict[str, object]] = []
        decoder = json.JSONDecoder()
        # ClickHouse reads numbers written without a leading zero (.1, -.5); JSON does not.
        data = re.sub(r"(?<=[:\[,])(\s*-?)\.(?=\d)", r"\g<1>0.", data)
        offset = len(self.sql) - len(data)
        at = 0
        while True:
            while at < len(data) and (data[at].isspace() or data[at] in ",;"):
                at += 1
            if at >= len(data):
                break
            try:
                value, at = decoder.raw_decode(data, at)
            except json.JSONDecodeError as err:
                raise located(f"JSONEachRow: {err.msg}", position_at(self.sql, offset + err.pos)) from None
            if not isinstance(value, dict):
                raise located("JSONEachRow: each row is a JSON object", position_at(self.sql, offset + at - 1))
            objects.append(value)
        names = columns or tuple(dict.fromkeys(key for row in objects for key in row))
        self.i = len(self.tokens)
        return Insert(name, names, tuple(tuple(row.get(key) for key in names) for row in objects))

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

    def values_until_close(self) -> list[object]:
        """INSERT values up to the closing ')', which it consumes: literals, or expressions
        (checked here, so an unknown function is placed in the statement)."""
        items: list[object] = []
        if self.accept(TokenType.R_PAREN):
            return items
        while True:
            start = self.i
            try:
                value: object = self.literal()
                plain = self.peek() is not None and self.peek().token_type in (  # type: ignore[union-attr]
                    TokenType.COMMA, TokenType.R_PAREN)
            except SqlError:
                if self.tokens[start].token_type == TokenType.NUMBER:
                    raise  # a number out of range is no expression either
                plain = False
            if not plain:
                self.i = start
                first, last = self.until_column_end("the value")
                value = self.value_expression(first, last)
            items.append(value)
            if not self.accept(TokenType.COMMA):
                self.expect(TokenType.R_PAREN, ")")
                return items

    def value_expression(self, first: Token, last: Token) -> ValueExpression:
        padded = re.sub(r"[^\n]", " ", self.sql[:first.start]) + self.text_between(first, last)
        tree = parse_expression(padded)
        column = next(tree.find_all(exp.Column), None)
        if column is not None:
            raise located(f"VALUES takes constants and functions, not columns ('{column.name}')",
                          node_position(column) or position_at(self.sql, first.start))
        to_duckdb(tree)
        return ValueExpression(self.text_between(first, last), padded)

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


def parse_statement(sql: str) -> Statement | PipelineStatement | None:
    """Parse one statement; None when it is a query (SELECT / WITH) for the SELECT parser.
    Pipeline statements (:mod:`sinkflow.sql.pipeline_statements`) are run by the runtime.

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
