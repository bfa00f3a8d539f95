"""Array functions, with Timeplus's ``f(lambda, array)`` argument order.
"""

from __future__ import annotations

from sqlglot import exp

from sinkflow.sql.functions.calls import function_name
from sinkflow.sql.functions.kinds import ARRAY, BOOL, FLOAT, INT, STRING
from sinkflow.sql.functions.registry import Builder, error, fill, register, same_args


def _lambda_and_array(args: list[exp.Expression], node: exp.Expression) -> tuple[exp.Lambda | None, exp.Expression]:
    """The optional one-parameter lambda and the array of ``(func, array)`` / ``(array)`` calls.

    sqlglot keeps the lambda first or second depending on how the function name was spelled."""
    lambdas = [arg for arg in args if isinstance(arg, exp.Lambda)]
    arrays = [arg for arg in args if not isinstance(arg, exp.Lambda)]
    if len(arrays) != 1 or len(lambdas) > 1 or (lambdas and len(lambdas[0].expressions) != 1):
        raise error(f"{function_name(node)} takes one array, after a one-parameter lambda such as x -> x * 2 "
                     "where one applies", node)
    return (lambdas[0] if lambdas else None), arrays[0]


def _lambda_call(duck: str) -> Builder:
    """DuckDB's ``duck(array, lambda)`` for Timeplus's ``f(lambda, array)``; the lambda is required."""

    def build(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
        func, array = _lambda_and_array(args, node)
        if func is None:
            raise error(f"the first argument of {function_name(node)} must be a lambda such as x -> x + 1", node)
        return exp.Anonymous(this=duck, expressions=[array.copy(), func.copy()])

    return build


register("array_map", _lambda_call("LIST_TRANSFORM"), 2, returns=ARRAY)
register("array_filter", _lambda_call("LIST_FILTER"), 2, returns=ARRAY)
register("array_element", "LIST_EXTRACT({0}, {1})", 2)  # 1-based, negative from the end, as arr[i]
register("has", "LIST_CONTAINS({0}, {1})", 2, returns=BOOL)
register("index_of", "COALESCE(LIST_POSITION({0}, {1}), 0)", 2, returns=INT)
register("array_string_concat", lambda args, kinds, node: fill(
    "ARRAY_TO_STRING({0}, {1})", [args[0], args[1] if len(args) > 1 else exp.Literal.string("")]), 1, 2,
    returns=STRING)  # the separator defaults to ''
# Without a lambda, array_exists / array_all / array_count test the elements for being non-zero.
_NON_ZERO = "lambda __tp_x: CAST(__tp_x AS BOOLEAN)"


def _array_fold(duck: str, default: str | None = None, predicate: bool = False) -> Builder:
    """``duck`` over the array, or over ``func`` applied to each element for ``(func, array)``."""

    def build(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
        func, array = _lambda_and_array(args, node)
        if func is not None:
            values = exp.Anonymous(this="LIST_TRANSFORM", expressions=[array.copy(), func.copy()])
        else:
            values = fill(f"LIST_TRANSFORM({{0}}, {_NON_ZERO})", [array]) if predicate else array.copy()
        result = exp.Anonymous(this=duck, expressions=[values])
        # An empty array gives Timeplus's neutral value where DuckDB answers NULL.
        return fill(f"COALESCE({{0}}, {default})", [result]) if default is not None else result

    return build


register("array_sum", _array_fold("LIST_SUM", "0"), 1, 2)
register("array_avg", _array_fold("LIST_AVG"), 1, 2, returns=FLOAT)
register("array_min", _array_fold("LIST_MIN"), 1, 2)
register("array_max", _array_fold("LIST_MAX"), 1, 2)
register("array_product", _array_fold("LIST_PRODUCT"), 1, returns=FLOAT)
register("array_exists", _array_fold("LIST_BOOL_OR", "FALSE", predicate=True), 1, 2, returns=BOOL)
register("array_all", _array_fold("LIST_BOOL_AND", "TRUE", predicate=True), 1, 2, returns=BOOL)


def _array_count(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    func, array = _lambda_and_array(args, node)
    if func is not None:
        return fill("LENGTH({0})", [exp.Anonymous(this="LIST_FILTER", expressions=[array.copy(), func.copy()])])
    return fill(f"LENGTH(LIST_FILTER({{0}}, {_NON_ZERO}))", [array])


register("array_count", _array_count, 1, 2, returns=INT)
register("array_uniq", "LIST_UNIQUE({0})", 1, returns=INT)
register("array_concat", same_args("LIST_CONCAT"), 2, None, returns=ARRAY)
register("array_reverse", "LIST_REVERSE({0})", 1, returns=ARRAY)
register("array_sort", "LIST_SORT({0})", 1, returns=ARRAY)
register("array_push_back", "LIST_APPEND({0}, {1})", 2, returns=ARRAY)
register("array_push_front", "LIST_PREPEND({1}, {0})", 2, returns=ARRAY)
register("array_pop_back", "LIST_SLICE({0}, 1, -2)", 1, returns=ARRAY)
register("array_pop_front", "LIST_SLICE({0}, 2, 2147483647)", 1, returns=ARRAY)
register("array_cast", lambda args, kinds, node: exp.Array(expressions=[a.copy() for a in args]), 1, None,
          returns=ARRAY)


def _array_distinct(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    # Keep each value's first occurrence in order, as Timeplus does (DuckDB's LIST_DISTINCT reorders).
    value, index = exp.to_identifier("__tp_v"), exp.to_identifier("__tp_i")
    first = fill("LIST_POSITION({0}, {1}) = {2}", [args[0], exp.column(value.copy()), exp.column(index.copy())])
    return exp.Anonymous(this="LIST_FILTER", expressions=[args[0].copy(), exp.Lambda(this=first, expressions=[value, index])])


register("array_distinct", _array_distinct, 1, returns=ARRAY)


def _array_slice(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    if len(args) == 2:
        return fill("LIST_SLICE({0}, {1}, 2147483647)", args)
    # Timeplus's third argument is a length; DuckDB's is the (inclusive) end position.
    return fill("LIST_SLICE({0}, {1}, CASE WHEN {1} < 0 AND {1} + {2} > 0 THEN -1 ELSE {1} + {2} - 1 END)", args)


register("array_slice", _array_slice, 2, 3, returns=ARRAY)
