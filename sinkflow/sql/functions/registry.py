"""The function table: each Timeplus function name → how DuckDB computes it.

Section modules (conversions, dates, strings, JSON, arrays, conditionals, math) register their
functions here with :func:`register`, as DuckDB SQL templates over ``{0}``, ``{1}`` … or as builders.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB

from sinkflow.errors import SqlError
from sinkflow.sql.positions import error_at


# sqlglot 30 renders lambdas as `x -> x + 1`, which DuckDB 2 rejects ("Deprecated lambda arrow").
# Render them the way DuckDB 2 wants, for every DuckDB rendering in the process.
def _duckdb_lambda_sql(self: sqlglot.generator.Generator, expression: exp.Lambda) -> str:
    return f"lambda {self.expressions(expression, flat=True)}: {self.sql(expression, 'this')}"


DuckDB.Generator.TRANSFORMS[exp.Lambda] = _duckdb_lambda_sql
# sqlglot caches a dispatch table per generator class; drop it so the entry above is used even if
# DuckDB SQL was rendered before this module was imported.
getattr(sqlglot.generator, "_DISPATCH_CACHE", {}).pop(DuckDB.Generator, None)


# --- templates --------------------------------------------------------------------------------
_PLACEHOLDER = "__tp_arg{}"


@lru_cache(maxsize=None)
def _parsed_template(sql: str) -> exp.Expression:
    text = sql
    for i in range(10):
        text = text.replace("{%d}" % i, _PLACEHOLDER.format(i))
    return sqlglot.parse_one(text, read="duckdb")


def fill(template: str, args: Sequence[exp.Expression]) -> exp.Expression:
    """Instantiate a DuckDB SQL template whose placeholders ``{0}``, ``{1}`` … stand for ``args``."""
    tree = _parsed_template(template).copy()
    names = {_PLACEHOLDER.format(i): arg for i, arg in enumerate(args)}

    def substitute(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and not node.table and node.name in names:
            return names[node.name].copy()
        return node

    return tree.transform(substitute)


def error(message: str, node: exp.Expression) -> SqlError:
    return error_at(node, message)


# --- the function table -------------------------------------------------------------------------
Builder = Callable[[list[exp.Expression], list["str | None"], exp.Expression], exp.Expression]


@dataclass(frozen=True)
class Fn:
    """How one Timeplus function is computed in DuckDB."""

    build: Builder
    min_args: int
    max_args: int | None  # None: any number
    # Kind of the result: a kind, the index of the argument whose kind it has, or None (unknown).
    returns: str | int | None = None


FUNCTIONS: dict[str, Fn] = {}


def register(names: str, build: Builder | str, min_args: int, max_args: int | None = -1,
              returns: str | int | None = None) -> None:
    """Map each of the space-separated Timeplus ``names`` (lower case) to ``build``.

    ``build`` is a builder or a DuckDB SQL template (see :func:`fill`); ``max_args`` defaults to
    ``min_args`` and None means any number."""
    if isinstance(build, str):
        template = build
        build = lambda args, kinds, node: fill(template, args)  # noqa: E731
    top = min_args if max_args == -1 else max_args
    for name in names.split():
        FUNCTIONS[name] = Fn(build, min_args, top, returns)


def same_args(duck: str) -> Builder:
    """A builder calling DuckDB's ``duck`` with the arguments as given (any number of them)."""
    return lambda args, kinds, node: exp.Anonymous(this=duck, expressions=[a.copy() for a in args])


def literal_text(node: exp.Expression, what: str) -> str:
    if not isinstance(node, exp.Literal) or not node.is_string:
        raise error(f"{what} must be a string literal", node)
    return node.this


def literal_number(node: exp.Expression, what: str) -> float:
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal):
        node = node.this  # a float literal, already cast to DOUBLE (functions.convert)
    value = node.this if isinstance(node, exp.Neg) else node
    if not isinstance(value, exp.Literal) or value.is_string:
        raise error(f"{what} must be a number literal", node)
    number = float(value.this)
    return -number if isinstance(node, exp.Neg) else number


def check_arity(name: str, low: int, high: int | None, args: Sequence[exp.Expression], node: exp.Expression) -> None:
    if len(args) < low or (high is not None and len(args) > high):
        if high is None:
            expected = f"at least {low}"
        elif low == high:
            expected = str(low)
        else:
            expected = f"{low} to {high}"
        raise error(f"function '{name}' takes {expected} argument{'s' if expected != '1' else ''}, "
                     f"got {len(args)}", node)
