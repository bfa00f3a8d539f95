"""Dictionaries: key → attributes lookups over a stream, called with ``dict_get`` and its family.

A dictionary is read from its stream (the last row of a key wins) the first time a batch looks
it up, and read again when the stream has new rows, so lookups always see the stream's current
rows (Timeplus's LIFETIME, a refresh period, is not needed). Each attribute is a DuckDB Arrow
function of the engine's shared database, ``__dict_<dictionary>_<attribute>(key)``, answering
NULL for a missing key; ``dict_get``, ``dict_get_or_default``, ``dict_get_or_null`` and
``dict_has`` render calls to them. Definitions are kept in ``data_dir/dictionaries.json``.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
from sqlglot import exp

from sinkflow.engine.compile import define_functions
from sinkflow.engine.result import StatementResult
from sinkflow.errors import AlreadyExists, InvalidInput, NotFound
from sinkflow.sql.dictionary_statements import CreateDictionary, DictionaryStatement, DropDictionary
from sinkflow.sql.functions.registry import error, fill, literal_text, register
from sinkflow.streams.store import StreamStore
from sinkflow.streams.types import parse_type

__all__ = ["Dictionaries"]

_HAS = "__has"
# The attributes of every installed dictionary (process-wide, as the function table is): their
# Timeplus types, and their DuckDB types (a dict_get_or_default's default is cast to it).
_attributes: dict[str, dict[str, str]] = {}
_duck_types: dict[str, dict[str, str]] = {}


class _Lookup:
    """One dictionary's rows by key, read again from its stream when the stream has grown."""

    def __init__(self, store: StreamStore, stmt: CreateDictionary) -> None:
        self.store, self.stmt = store, stmt
        self.head = -1
        self.rows: dict[object, dict[str, object]] = {}
        self.lock = threading.Lock()

    def current(self) -> dict[object, dict[str, object]]:
        """The rows by key. Raises :class:`InvalidInput` when the stream is gone or lacks a column."""
        try:
            stream = self.store.get(self.stmt.stream)
        except NotFound:
            raise InvalidInput(f"dictionary '{self.stmt.name}': its stream '{self.stmt.stream}' does not exist") from None
        with self.lock:
            if stream.head != self.head:
                head = stream.head
                table = stream.table()
                names = [name for name, _ in self.stmt.columns]
                missing = [n for n in names if n not in table.column_names]
                if missing:
                    raise InvalidInput(f"dictionary '{self.stmt.name}': stream '{self.stmt.stream}' has no column '{missing[0]}'")
                self.rows = {row[self.stmt.key]: row for row in table.select(names).to_pylist()}
                self.head = head
            return self.rows


class Dictionaries:
    """The dictionaries of one server; all installed in the engine on construction."""

    def __init__(self, data_dir: Path, store: StreamStore) -> None:
        self.path = Path(data_dir) / "dictionaries.json"
        self.store = store
        self.dictionaries: dict[str, CreateDictionary] = {}
        if self.path.exists():
            for saved in json.loads(self.path.read_text()):
                stmt = CreateDictionary(**{k: tuple(map(tuple, v)) if k == "columns" else v for k, v in saved.items()})
                self._install(stmt)

    def execute(self, stmt: DictionaryStatement) -> StatementResult:
        """Perform ``stmt``. Raises :class:`AlreadyExists` (CREATE without OR REPLACE or IF NOT
        EXISTS of an existing one), :class:`NotFound` (DROP of an unknown one); nothing changes then."""
        if isinstance(stmt, DropDictionary):
            if stmt.name not in self.dictionaries:
                if stmt.if_exists:
                    return StatementResult("status", f"dictionary '{stmt.name}' does not exist")
                raise NotFound(f"dictionary '{stmt.name}' not found")
            self._uninstall(stmt.name)
            self._save()
            return StatementResult("status", f"dropped dictionary '{stmt.name}'")
        if not isinstance(stmt, CreateDictionary):
            table = pa.table({"name": pa.array(sorted(self.dictionaries), pa.string()),
                              "source": pa.array([self.dictionaries[n].stream for n in sorted(self.dictionaries)],
                                                 pa.string())})
            return StatementResult("rows", table=table, count=table.num_rows)
        if stmt.name in self.dictionaries:
            if stmt.if_not_exists:
                return StatementResult("status", f"dictionary '{stmt.name}' already exists")
            if not stmt.or_replace:
                raise AlreadyExists(f"dictionary '{stmt.name}' already exists (use CREATE OR REPLACE DICTIONARY)")
            self._uninstall(stmt.name)
        self._install(stmt)
        self._save()
        return StatementResult("status", f"created dictionary '{stmt.name}'")

    def _install(self, stmt: CreateDictionary) -> None:
        lookup = _Lookup(self.store, stmt)
        if stmt.name in _attributes:  # by another server of this process (tests, benchmarks)
            _remove(stmt.name)
        con = define_functions()
        key_arrow = parse_type(dict(stmt.columns)[stmt.key]).arrow
        duck: dict[str, str] = {}
        for column, type_text in (*stmt.columns, (_HAS, "uint8")):  # dict_has answers 1 or 0
            arrow_type = parse_type(type_text).arrow
            duck_types = con.from_arrow(pa.table({"k": pa.array([], key_arrow), "v": pa.array([], arrow_type)})).types
            con.create_function(_function(stmt.name, column), _attribute(lookup, column, arrow_type), [duck_types[0]],
                                duck_types[1], type="arrow", null_handling="special", side_effects=True)
            duck[column] = str(duck_types[1])
        _attributes[stmt.name] = dict(stmt.columns)
        _duck_types[stmt.name] = duck
        self.dictionaries[stmt.name] = stmt

    def _uninstall(self, name: str) -> None:
        _remove(name)
        del self.dictionaries[name]

    def _save(self) -> None:
        self.path.write_text(json.dumps([dataclasses.asdict(d) for d in self.dictionaries.values()]))


def _remove(name: str) -> None:
    """Make dictionary ``name``'s functions uncallable."""
    _duck_types.pop(name, None)
    for column in (*_attributes.pop(name, {}), _HAS):
        try:
            define_functions().remove_function(_function(name, column))
        except duckdb.Error:  # never installed
            pass


def _function(dictionary: str, column: str) -> str:
    return f"__dict_{dictionary}_{column}"


def _attribute(lookup: _Lookup, column: str, arrow_type: pa.DataType):  # noqa: ANN202 - a DuckDB Arrow function
    def find(keys: pa.Array) -> pa.Array:
        rows = lookup.current()
        if column == _HAS:
            return pa.array([int(key in rows) for key in keys.to_pylist()], pa.uint8())
        return pa.array([row[column] if (row := rows.get(key)) is not None else None for key in keys.to_pylist()],
                        arrow_type)
    return find


# --- dict_get and its family --------------------------------------------------------------------

def _target(args: list[exp.Expression], node: exp.Expression) -> tuple[str, list[str]]:
    """The dictionary and attributes (one, or a tuple of them) named by a call's first two arguments."""
    name = literal_text(args[0], "the dictionary name")
    if name not in _attributes:
        raise error(f"dictionary '{name}' does not exist", args[0])
    written = args[1].expressions if isinstance(args[1], exp.Tuple) else [args[1]]
    columns = [literal_text(arg, "the attribute name") for arg in written]
    for arg, column in zip(written, columns):
        if column not in _attributes[name]:
            raise error(f"dictionary '{name}' has no attribute '{column}'", arg)
    return name, columns


def _each(args: list[exp.Expression], node: exp.Expression,
          one: Callable[[str, str], exp.Expression]) -> exp.Expression:
    """``one(name, column)`` for the attribute, or a tuple of them for a tuple of attributes."""
    name, columns = _target(args, node)
    values = [one(name, column) for column in columns]
    return values[0] if not isinstance(args[1], exp.Tuple) else exp.Tuple(expressions=values)


def _call(name: str, column: str, key: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this=_function(name, column), expressions=[key.copy()])


def _get(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    def one(name: str, column: str) -> exp.Expression:
        arrow_type = parse_type(_attributes[name][column]).arrow
        zero = ("''" if pa.types.is_string(arrow_type) else "false" if pa.types.is_boolean(arrow_type)
                else "0" if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) else None)
        call = _call(name, column, args[2])
        return call if zero is None else fill(f"coalesce({{0}}, {zero})", [call])
    return _each(args, node, one)


def _get_or_null(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    return _each(args, node, lambda name, column: _call(name, column, args[2]))


def _get_or_default(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    return _each(args, node, lambda name, column: fill(
        f"coalesce({{0}}, CAST({{1}} AS {_duck_types[name][column]}))", [_call(name, column, args[2]), args[3]]))


def _has(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    name = literal_text(args[0], "the dictionary name")
    if name not in _attributes:
        raise error(f"dictionary '{name}' does not exist", args[0])
    return _call(name, _HAS, args[1])


register("dict_get", _get, 3)
register("dict_get_or_null", _get_or_null, 3)
register("dict_get_or_default", _get_or_default, 4)
register("dict_has", _has, 2)
