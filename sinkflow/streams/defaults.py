"""Column DEFAULT and ALIAS expressions of a stream, evaluated with DuckDB over Arrow at ingest.

A stream's expressions are compiled once, when the stream is created or loaded, by a
:data:`DefaultsCompiler` the store is given (the SQL layer provides it: Timeplus SQL in, DuckDB
SQL out, so this module knows no Timeplus function). :class:`ColumnDefaults` then computes, for an
appended batch, the columns the batch does not give: one DuckDB query per group of expressions
whose inputs are known, each over an Arrow table of the columns known so far. Expressions may read
other columns, including other defaulted ones and ``_tp_time``; a cycle is refused when the stream
is created.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from sinkflow.errors import InvalidInput
from sinkflow.streams.types import Column


@dataclass(frozen=True)
class CompiledDefault:
    """One column's expression as DuckDB SQL whose value has the column's type, and the stream
    columns it reads."""

    sql: str
    references: frozenset[str]


# (the column, every column of the stream including _tp_time) → its compiled expression; raises
# InvalidInput naming the column for an expression that does not parse or map.
DefaultsCompiler = Callable[[Column, Sequence[Column]], CompiledDefault]

# now() / now64([precision[, zone]]): the time of ingest, which _tp_time takes without evaluating anything.
_INGEST_TIME = re.compile(r"\s*now(64)?\s*\(\s*(\d\s*(,\s*'[^']*'\s*)?)?\)\s*\Z", re.IGNORECASE)


def is_ingest_time(expression: str) -> bool:
    """True when ``expression`` is ``now()`` or ``now64([precision[, zone]])``."""
    return _INGEST_TIME.match(expression) is not None


_DATABASE = duckdb.connect()
_DATABASE_LOCK = threading.Lock()


def _cursor() -> duckdb.DuckDBPyConnection:
    with _DATABASE_LOCK:
        cursor = _DATABASE.cursor()
    # Timeplus streams are UTC: date parts and truncation follow the session's zone.
    cursor.execute("SET TimeZone = 'UTC'")
    return cursor


class ColumnDefaults:
    """The expressions of one stream's columns (every column with a ``default``).

    Construction compiles every expression and runs it over an empty batch, so an expression
    reading an unknown column or mixing types is refused when the stream is created. Raises
    :class:`InvalidInput` naming the column (and the cycle, when expressions read each other).
    """

    def __init__(self, stream: str, columns: Sequence[Column], compiler: DefaultsCompiler) -> None:
        self.stream = stream
        self._types = {c.name: c.type for c in columns}
        self._compiled: dict[str, CompiledDefault] = {}
        for column in columns:
            if column.default is None:
                continue
            compiled = compiler(column, columns)
            unknown = sorted(compiled.references - self._types.keys())
            if unknown:
                raise InvalidInput(f"column '{column.name}': its {_kind(column)} reads unknown column '{unknown[0]}'")
            self._compiled[column.name] = compiled
        self._check_cycles()
        self.evaluate({c.name: pa.array([], c.type.arrow) for c in columns if c.name not in self._compiled},
                      0, list(self._compiled))

    @property
    def names(self) -> frozenset[str]:
        """The columns that have an expression."""
        return frozenset(self._compiled)

    def _check_cycles(self) -> None:
        state: dict[str, int] = {}  # 1: being visited, 2: done

        def visit(name: str, path: list[str]) -> None:
            if state.get(name) == 2 or name not in self._compiled:
                return
            if state.get(name) == 1:
                cycle = path[path.index(name):] + [name]
                raise InvalidInput(f"the DEFAULT expressions of stream '{self.stream}' read each other in a cycle: "
                                   + " → ".join(cycle))
            state[name] = 1
            for ref in sorted(self._compiled[name].references):
                visit(ref, [*path, name])
            state[name] = 2

        for name in self._compiled:
            visit(name, [])

    def evaluate(self, known: Mapping[str, pa.Array], count: int, wanted: Sequence[str]) -> dict[str, pa.Array]:
        """The ``wanted`` columns (each must have an expression) for ``count`` rows, given the
        ``known`` columns' arrays (each ``count`` long). An expression reading a column that is
        neither known nor wanted reads nulls (callers pass every other column).

        Raises :class:`InvalidInput` naming the column when DuckDB cannot evaluate its expression."""
        arrays = dict(known)
        pending = [name for name in wanted if name not in arrays]
        for name, column in ((n, c) for n, c in self._types.items() if n not in arrays and n not in pending):
            arrays[name] = pa.nulls(count, column.arrow)
        out: dict[str, pa.Array] = {}
        cursor = _cursor()
        try:
            while pending:
                ready = [n for n in pending if self._compiled[n].references <= arrays.keys()]
                # Cycles were refused at construction, so some pending expression is always ready.
                source = pa.table({n: arrays[n] for n in arrays}) if arrays else None
                values = self._query(cursor, ready, source, count)
                for name, value in zip(ready, values, strict=True):
                    arrays[name] = out[name] = value
                pending = [n for n in pending if n not in out]
        finally:
            cursor.close()
        return out

    def _query(self, cursor: duckdb.DuckDBPyConnection, names: list[str], source: pa.Table | None,
               count: int) -> list[pa.Array]:
        select = ", ".join(f"{self._compiled[n].sql} AS \"c{i}\"" for i, n in enumerate(names))
        if source is not None:
            cursor.register("__tp_source", source)
            sql = f"SELECT {select} FROM __tp_source"
        else:
            sql = f"SELECT {select} FROM range({int(count)})"
        try:
            result = cursor.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            message = str(exc).split("\n")[0]
            culprit = names[0] if len(names) == 1 else ", ".join(names)
            raise InvalidInput(f"stream '{self.stream}', column {culprit!r}: cannot evaluate its DEFAULT "
                               f"expression: {message}") from None
        finally:
            if source is not None:
                cursor.unregister("__tp_source")
        out = []
        for i, name in enumerate(names):
            array = result.column(i).combine_chunks()
            target = self._types[name].arrow
            # The SQL already has the column's type; DuckDB's timestamps come back in microseconds.
            out.append(array if array.type == target else array.cast(target, safe=False))
        return out


def _kind(column: Column) -> str:
    return "ALIAS expression" if column.alias else "DEFAULT expression"


# Timeplus expressions giving a random value of a type, for random-stream columns without a DEFAULT
# (Timeplus fills those with random data of their type).
_RANDOM_BY_TYPE = {
    "int8": "to_int32(rand() % 256) - 128", "int16": "to_int32(rand() % 65536) - 32768", "int32": "to_int64(rand()) - 2147483648",
    "int64": "to_int64(rand() % 2147483648) * 4294967296 + to_int64(rand())", "uint8": "rand() % 256", "uint16": "rand() % 65536",
    "uint32": "rand()", "uint64": "rand64()", "float32": "rand_uniform(-1000, 1000)",
    "float64": "rand_uniform(-1000, 1000)", "bool": "rand() % 2 = 1", "string": "random_printable_ascii(rand() % 21)",
    "uuid": "generate_uuidv4()", "date": "to_date(from_unix_timestamp(rand() % 1893456000))",
    "date32": "to_date(from_unix_timestamp(rand() % 1893456000))",
}


def random_expression(column: Column) -> str | None:
    """A Timeplus expression of a random value of ``column``'s type, None for types without one
    (arrays, maps, tuples: their zero value)."""
    arrow = column.type.arrow
    name = column.type.name.removeprefix("nullable(").removeprefix("low_cardinality(").rstrip(")")
    if name in _RANDOM_BY_TYPE:
        return _RANDOM_BY_TYPE[name]
    if pa.types.is_timestamp(arrow):
        return "from_unix_timestamp(rand() % 1893456000)"
    if pa.types.is_decimal(arrow):
        return "rand_uniform(0, 1000)"
    if name.startswith("enum"):
        labels = re.findall(r"'((?:[^'\\]|\\.)*)'\s*=", name)
        return "[" + ", ".join(f"'{label}'" for label in labels) + f"][rand() % {len(labels)} + 1]"
    if name.startswith("fixed_string"):
        return f"random_fixed_string({name[len('fixed_string('):]})"
    return None
