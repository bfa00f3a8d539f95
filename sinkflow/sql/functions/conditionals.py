"""Conditionals: ``if``, ``multi_if``, ``coalesce`` and null tests.
"""

from __future__ import annotations

from sqlglot import exp

from sinkflow.sql.functions.kinds import ARRAY, BOOL
from sinkflow.sql.functions.registry import error, fill, register, same_args


def _multi_if(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    if len(args) < 3 or len(args) % 2 == 0:
        raise error("multi_if takes pairs of condition, value and a final else value", node)
    return exp.Case(ifs=[exp.If(this=args[i].copy(), true=args[i + 1].copy()) for i in range(0, len(args) - 1, 2)],
                    default=args[-1].copy())


register("multi_if", _multi_if, 3, None, returns=1)
register("if", "CASE WHEN {0} THEN {1} ELSE {2} END", 3, returns=1)
register("coalesce", same_args("COALESCE"), 1, None, returns=0)
register("if_null", "COALESCE({0}, {1})", 2, returns=0)
register("nullif", "NULLIF({0}, {1})", 2, returns=0)
register("is_null", "({0} IS NULL)", 1, returns=BOOL)
register("is_not_null", "({0} IS NOT NULL)", 1, returns=BOOL)
register("null_if", "NULLIF({0}, {1})", 2, returns=0)
# Nullability is a property of the stored type here, not of a value: both keep the value.
register("assume_not_null to_nullable", "{0}", 1, returns=0)
# Proton computes a constant into a column; the value is the same.
register("materialize identity", "{0}", 1, returns=0)
# Tests and demos use sleep() to slow a query down; here it returns Proton's 0 at once.
register("sleep sleep_each_row", "CAST(0 AS UTINYINT)", 1)


def _transform(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    """transform(x, [from…], [to…][, default]): the ``to`` value at the place of x in ``from``; else
    the default, or x itself without one."""
    for arg, what in ((args[1], "from"), (args[2], "to")):
        if kinds[args.index(arg)] not in (ARRAY, None):
            raise error(f"transform's {what} values must be an array", arg)
    otherwise = args[3] if len(args) > 3 else args[0]
    return fill("CASE WHEN LIST_POSITION({1}, {0}) IS NULL THEN {3} ELSE {2}[LIST_POSITION({1}, {0})] END",
                [args[0], args[1], args[2], otherwise])


register("transform", _transform, 3, 4, returns=2)
