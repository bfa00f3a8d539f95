"""Timeplus function names mapped onto DuckDB, on sqlglot expression trees.

:func:`to_duckdb` takes an expression parsed with sqlglot's ClickHouse dialect and returns a tree
that, rendered with ``.sql(dialect="duckdb")``, computes what Timeplus computes. Every function call
is looked up in one table (:data:`registry.FUNCTIONS`), whether sqlglot parsed it into a typed node
(``exp.Substring``) or left it anonymous (``to_datetime``); a function that is not in the table is a
:class:`SqlError` naming it. sqlglot's own ClickHouse→DuckDB transpilation is never trusted blindly:
measured here, it turns ``length(array)`` into the length of the array's text, ``split_by_string``
and ``array_filter`` into calls with swapped arguments, and lambdas into the arrow syntax DuckDB 2
rejects.

Where Timeplus's result depends on the argument's type (``length`` of a string counts bytes, of an
array elements; ``to_int32(3.9)`` truncates while ``to_int32('7')`` parses), the argument's kind is
taken from literals, from the functions that produced it, and from the optional ``schema`` (column
name → type) the planner passes. Without a known kind the mapping picks a DuckDB form that is right
for every kind DuckDB accepts, or one that fails loudly in DuckDB for the others — with one
exception: ``length`` of text of unknown kind counts characters (= bytes for ASCII text).

Known differences, all outside ASCII text: Timeplus's ``position``, ``substr``, ``lpad``/``rpad``
and ``reverse`` count bytes where DuckDB counts characters, and its ``lower``/``upper`` change ASCII
letters only where DuckDB's change every letter.

The DuckDB connection that runs the rendered SQL must use ``SET TimeZone='UTC'`` (date parts and
truncation of ``TIMESTAMPTZ`` follow the session time zone; Timeplus streams are UTC).

Aggregate calls are rendered one-shot from their description in :mod:`sinkflow.sql.aggregates`
(the engine computes the same descriptions incrementally); :func:`aggregate_call` and
:func:`is_aggregate` recognise them for the planner.

The package is laid out by the sections of Timeplus's function reference: :mod:`.conversions`,
:mod:`.dates` (:mod:`.time_patterns` parses text by MySQL and Joda patterns), :mod:`.strings`, :mod:`.json`, :mod:`.arrays`, :mod:`.maps`, :mod:`.conditionals`,
:mod:`.math`, :mod:`.geo`, :mod:`.random_values`, :mod:`.urls` (URL and IP) register into :mod:`.registry`; :mod:`.kinds` tells argument kinds, :mod:`.calls` names calls,
:mod:`.casts` converts casts, :mod:`.aggregate_calls` describes aggregates and :mod:`.convert`
walks a tree.
"""

from __future__ import annotations

# The section modules register their functions on import.
from sinkflow.sql.functions import (  # noqa: F401
    arrays,
    conditionals,
    conversions,
    dates,
    geo,
    json,
    maps,
    math,
    random_values,
    strings,
    time_patterns,
    urls,
)
from sinkflow.sql.functions.aggregate_calls import AggregateCall, aggregate_call, is_aggregate
from sinkflow.sql.functions.calls import check_functions, function_name, supported_functions
from sinkflow.sql.functions.conversions import duckdb_type
from sinkflow.sql.functions.convert import to_duckdb

__all__ = [
    "AggregateCall",
    "aggregate_call",
    "check_functions",
    "duckdb_type",
    "function_name",
    "is_aggregate",
    "supported_functions",
    "to_duckdb",
]
