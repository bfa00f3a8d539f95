"""Aggregate calls recognised for the planner and rendered one-shot from :mod:`sinkflow.sql.aggregates`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from sinkflow.sql.aggregates import AGGREGATES, Aggregate, render, specialize
from sinkflow.sql.functions.calls import call_of, unknown_function
from sinkflow.sql.functions.kinds import FLOAT, Schema, kind_of
from sinkflow.sql.functions.registry import check_arity, error, fill, literal_number
from sinkflow.streams.types import TP_TIME


@dataclass(frozen=True)
class AggregateCall:
    """One aggregate call of a query: its description, its arguments and its quantile level.

    ``args`` are the call's argument expressions as they were given (the planner converts them
    itself; :func:`to_duckdb` passes converted ones); ``level`` is a quantile's constant level
    as SQL text ("" for other aggregates).
    """

    spec: Aggregate
    args: tuple[exp.Expression, ...]
    level: str = ""

    @property
    def name(self) -> str:
        return self.spec.name


def is_aggregate(node: exp.Expression) -> bool:
    """True for a call of an aggregate function: one this module maps, or any sqlglot knows as one."""
    if isinstance(node, exp.AggFunc):
        return True
    call = call_of(node)
    return call is not None and call[0] in AGGREGATES


def aggregate_call(node: exp.Expression) -> AggregateCall:
    """Describe an aggregate call node (``count(*)``, ``p90(x)``, ``quantile(x, 0.9)``, ``earliest(x)`` …).

    Raises :class:`SqlError` at the node for an aggregate this module does not map (naming it),
    a wrong number of arguments, ``DISTINCT``/``*`` where they don't apply, or a quantile level
    that is not a constant between 0 and 1.
    """
    call = call_of(node)
    if call is None or call[0] not in AGGREGATES:
        raise unknown_function(node)
    name, args = call
    spec = AGGREGATES[name]
    if any(isinstance(arg, (exp.Distinct, exp.Star)) for arg in args):
        raise error(f"DISTINCT or * is not supported in {name}()", node)
    extra = 1 if spec.level else 0
    check_arity(name, spec.min_args + extra, spec.max_args + extra, args, node)
    if name in ("top_k", "top_k_exact") and len(args) > 2:
        # top_k(x, k, with_count[, load_factor]): the load factor tunes Proton's approximation only.
        if not isinstance(args[2], exp.Boolean):
            raise error(f"{name}'s third argument says whether to return counts: true or false", args[2])
        return AggregateCall(specialize(spec, 2, args[2].this), tuple(args[:2]))
    if spec.tuple_args and len(args) > 1:
        # One tuple of the arguments; a row with a NULL among them does not count (as in Proton).
        any_null = exp.or_(*(exp.Is(this=a.copy(), expression=exp.Null()) for a in args))
        row = exp.Case().when(any_null, exp.Null()).else_(exp.Tuple(expressions=[a.copy() for a in args]))
        return AggregateCall(spec, (row,))
    if not spec.level:
        return AggregateCall(specialize(spec, len(args)), tuple(args))
    level = literal_number(args[-1], f"{name}'s level")
    if not 0 <= level <= 1:
        raise error(f"{name}'s level must be between 0 and 1", args[-1])
    return AggregateCall(spec, tuple(args[:-1]), repr(level))


def direct_aggregate(call: AggregateCall, schema: Schema | None) -> exp.Expression:
    """The one-shot DuckDB aggregate of ``call`` over raw rows (its args already converted)."""
    floats = any(kind_of(arg, schema) == FLOAT for arg in call.args)
    text = render(call.spec.direct, [f"{{{i}}}" for i in range(len(call.args))],
                  time=f"epoch_us({TP_TIME})", sum_function="fsum" if floats else "sum", level=call.level)
    return fill(text, call.args)

