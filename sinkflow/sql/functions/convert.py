"""The conversion of a whole expression tree: :func:`to_duckdb`.
"""

from __future__ import annotations

from sqlglot import exp

from sinkflow.sql.aggregates import AGGREGATES
from sinkflow.sql.functions.aggregate_calls import aggregate_call, direct_aggregate
from sinkflow.sql.functions.calls import OPERATORS, call_of, function_name, unknown_function
from sinkflow.sql.functions.casts import RESULT_UNITS, cast
from sinkflow.sql.functions.kinds import FLOAT, INT, Schema, kind_of, mark, time_unit_of
from sinkflow.sql.functions.registry import FUNCTIONS, check_arity, literal_text
from sinkflow.sql.parse import DIALECT

#: Functions that exist only as window functions (``f(…) OVER (…)``); DuckDB spells them as Timeplus does.
WINDOW_FUNCTIONS = ("row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead",
                    "first_value", "last_value", "nth_value")


def to_duckdb(node: exp.Expression, schema: Schema | None = None) -> exp.Expression:
    """Map a Timeplus expression tree (sqlglot, ClickHouse dialect) onto DuckDB.

    Returns a new tree; ``node`` is not modified. Table sources (``exp.Table``, e.g.
    ``tumble(...)`` in FROM) are left as they are: they are the planner's. ``schema`` maps column
    names to their types (:class:`DataType`, Arrow type or type text) and makes type-dependent
    functions exact.

    Raises :class:`SqlError` naming the function (and its position when the node carries one) for
    an unknown function, a wrong number of arguments or an argument that must be a literal.
    """
    return _convert(node.copy(), schema)


def _convert(node: exp.Expression, schema: Schema | None) -> exp.Expression:
    if isinstance(node, exp.Table):
        return node
    for key, value in list(node.args.items()):
        if isinstance(value, exp.Expression):
            node.set(key, _convert(value, schema))
        elif isinstance(value, list):
            node.set(key, [_convert(v, schema) if isinstance(v, exp.Expression) else v for v in value])
    return _map(node, schema)


def _map(node: exp.Expression, schema: Schema | None) -> exp.Expression:
    if _fractional_literal(node):
        return mark(exp.cast(node, exp.DataType.build("DOUBLE")), FLOAT)
    if isinstance(node, exp.Cast):
        return cast(node, node.to.sql(dialect=DIALECT), node.this, kind_of(node.this, schema))
    if isinstance(node, exp.CastToStrType):
        target = node.args["to"]
        return cast(node, literal_text(target, "the type of cast(x, 'type')"), node.this, kind_of(node.this, schema))
    if isinstance(node, exp.Bracket):
        # arr[i]: 1-based in both, negative counts from the end in both; DuckDB takes no unsigned index.
        index = node.expressions[0] if len(node.expressions) == 1 else None
        if index is not None and kind_of(index, schema) == INT and not isinstance(index, (exp.Literal, exp.Neg)):
            # Wrapped in a call sqlglot cannot type: an index typed as an integer gets an offset added.
            signed = exp.cast(index.copy(), exp.DataType.build("BIGINT"))
            index.replace(exp.Anonymous(this="COALESCE", expressions=[signed]))
        return node
    if isinstance(node, exp.Case) or (isinstance(node, exp.If) and node.arg_key == "ifs"):
        # CASE means the same in DuckDB; its WHEN … THEN branches are exp.If nodes too, but no
        # if() calls (their parts are mapped like any expression).
        return node
    if isinstance(node.parent, exp.Window) and node.arg_key == "this" and function_name(node) in WINDOW_FUNCTIONS:
        return node  # its arguments are mapped already
    call = call_of(node)
    if call is None:
        if isinstance(node, exp.Func) and not isinstance(node, OPERATORS):
            raise unknown_function(node)
        return node
    name, args = call
    if name in AGGREGATES:
        return direct_aggregate(aggregate_call(node), schema)
    spec = FUNCTIONS.get(name)
    if spec is None:
        raise unknown_function(node)
    check_arity(name, spec.min_args, spec.max_args, args, node)
    kinds = [kind_of(arg, schema) for arg in args]
    result = spec.build(args, kinds, node)
    returns = spec.returns
    if isinstance(returns, int):
        return mark(result, kinds[returns], time_unit_of(args[returns])) if returns < len(args) else result
    return mark(result, returns, RESULT_UNITS.get(name))


def _fractional_literal(node: exp.Expression) -> bool:
    """A number literal with a fraction or an exponent (``0.1``, ``1e3``) outside a cast: Proton
    reads it as a float64 (``0.1 + 0.2`` is ``0.30000000000000004``), DuckDB as a DECIMAL."""
    if not isinstance(node, exp.Literal) or node.is_string or isinstance(node.parent, exp.Cast):
        return False
    text = node.this.lower()
    return not text.startswith("0x") and ("." in text or "e" in text)
