"""Generated sources in FROM, as Proton's system tables and table functions give them.

* ``numbers(n)`` / ``numbers(start, n)`` (also ``numbers_mt``): the ``uint64`` column ``number``
  from ``start`` (default 0), ``n`` rows, then the end. ``numbers(start, n, step)`` steps by ``step``.
* ``system.numbers`` / ``system.numbers_mt``: ``number`` from 0 without end (a query stops it
  with ``LIMIT``, as in Proton).
* ``system.one``: one row, the ``uint8`` column ``dummy`` (as a SELECT without FROM).

The planner names such a source by :func:`generated_source` (a name no stream can have) and the
engine reads the rows back from that name with :func:`numbers_range`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from sinkflow.errors import SqlError
from sinkflow.sql.positions import error_at
from sinkflow.streams.types import Column, parse_type

__all__ = ["NumbersRange", "generated_columns", "generated_source", "is_generated", "numbers_range"]

#: The name of a SELECT without FROM's source (and of ``system.one``).
ONE_ROW = "__one"
_NUMBERS = "__numbers"
_NUMBER_FUNCTIONS = ("numbers", "numbers_mt")
_SYSTEM_NUMBERS = ("numbers", "numbers_mt")


@dataclass(frozen=True)
class NumbersRange:
    """``number`` = ``start``, ``start + step`` … ``count`` values (None: without end)."""

    start: int
    count: int | None
    step: int = 1


def _integer(node: exp.Expression, what: str) -> int:
    value = node.this if isinstance(node, exp.Neg) else node
    if isinstance(value, exp.Paren):
        value = value.this
    whole = _whole_number(value.this) if isinstance(value, exp.Literal) and not value.is_string else None
    if whole is None:
        raise error_at(node, f"{what} must be an integer literal, not '{node.sql()}'")
    return -whole if isinstance(node, exp.Neg) else whole


def _whole_number(text: str) -> int | None:
    """The value of a number literal that is a whole number (``10``, ``1e2``), else None."""
    if text.isdigit():
        return int(text)
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() and 0 <= value < 2**63 else None


def generated_source(node: exp.Expression) -> str | None:
    """The generated source ``node`` names (a call such as ``numbers(10)`` or a table such as
    ``system.numbers``), as a source name; None when it names none. Raises :class:`SqlError` for
    a ``numbers()`` call whose arguments are not integer literals."""
    if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
        if node.db.lower() != "system":
            return None
        name = node.name.lower()
        if name == "one":
            return ONE_ROW
        if name in _SYSTEM_NUMBERS:
            return f"{_NUMBERS}:0::1"
        return None
    if not isinstance(node, exp.Anonymous) or str(node.this).lower() not in _NUMBER_FUNCTIONS:
        return None
    args = [_integer(a, f"the argument of {node.this}()") for a in node.expressions]
    if not 1 <= len(args) <= 3:
        raise error_at(node, f"{node.this}() takes (count), (start, count) or (start, count, step)")
    if len(args) == 1:
        start, count, step = 0, args[0], 1
    else:
        start, count, step = args[0], args[1], (args[2] if len(args) == 3 else 1)
    if count < 0 or step <= 0:
        raise error_at(node, f"{node.this}(): the count must be ≥ 0 and the step > 0")
    return f"{_NUMBERS}:{start}:{count}:{step}"


def is_generated(name: str) -> bool:
    """Whether ``name`` is a generated source's name rather than a stream's."""
    return name == ONE_ROW or name.startswith(_NUMBERS + ":")


def generated_columns(name: str) -> dict[str, Column]:
    """The columns of the generated source ``name``."""
    if name == ONE_ROW:
        return {"dummy": Column("dummy", parse_type("uint8"))}
    return {"number": Column("number", parse_type("uint64"))}


def numbers_range(name: str) -> NumbersRange:
    """The numbers the generated source ``name`` yields. Raises :class:`SqlError` for a name
    :func:`generated_source` did not make."""
    prefix, _, rest = name.partition(":")
    parts = rest.split(":")
    if prefix != _NUMBERS or len(parts) != 3:
        raise SqlError(f"'{name}' is not a generated source")
    start, count, step = parts
    return NumbersRange(int(start), int(count) if count else None, int(step))
