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
register("array_compact", "LIST_FILTER({0}, lambda __tp_v, __tp_i: __tp_i = 1 OR {0}[__tp_i - 1] IS DISTINCT FROM __tp_v)",
         1, returns=ARRAY)  # consecutive duplicates removed
register("array_difference", "LIST_TRANSFORM({0}, lambda __tp_v, __tp_i: CASE WHEN __tp_i = 1 THEN __tp_v - __tp_v "
                             "ELSE __tp_v - {0}[__tp_i - 1] END)", 1, returns=ARRAY)
register("array_cum_sum", "LIST_TRANSFORM({0}, lambda __tp_v, __tp_i: LIST_SUM(LIST_SLICE({0}, 1, __tp_i)))", 1,
         returns=ARRAY)
register("array_flatten", "FLATTEN({0})", 1, returns=ARRAY)
register("array_zip", same_args("LIST_ZIP"), 2, None, returns=ARRAY)
register("array_resize", lambda args, kinds, node: fill(
    "CASE WHEN LEN({0}) >= {1} THEN LIST_SLICE({0}, 1, {1}) "
    "ELSE LIST_CONCAT({0}, LIST_TRANSFORM(RANGE({1} - LEN({0})), lambda __tp_i: {2})) END",
    [args[0], args[1], args[2] if len(args) > 2 else exp.Null()]), 2, 3, returns=ARRAY)


def _array_find(position: str, index: bool) -> Builder:
    """The first or last element (or its 1-based index, 0 when none) for which ``func`` holds."""

    def build(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
        func, array = _lambda_and_array(args, node)
        if func is None:
            raise error(f"the first argument of {function_name(node)} must be a lambda such as x -> x > 1", node)
        matches = exp.Anonymous(this="LIST_TRANSFORM", expressions=[array.copy(), func.copy()])
        at = "LIST_POSITION({0}, TRUE)" if position == "first" else \
            "CASE WHEN LIST_POSITION(LIST_REVERSE({0}), TRUE) IS NULL THEN NULL ELSE LEN({0}) + 1 - LIST_POSITION(LIST_REVERSE({0}), TRUE) END"
        found = fill(at, [matches])
        if index:
            return fill("COALESCE({0}, 0)", [found])
        return fill("{0}[{1}]", [array, found])

    return build


register("array_first", _array_find("first", False), 2)
register("array_last", _array_find("last", False), 2)
register("array_first_index", _array_find("first", True), 2, returns=INT)
register("array_last_index", _array_find("last", True), 2, returns=INT)


def _array_fold_call(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    # array_fold((acc, x) -> …, array, initial): DuckDB's LIST_REDUCE with an initial value.
    if len(args) != 3 or not isinstance(args[0], exp.Lambda) or len(args[0].expressions) != 2:
        raise error("array_fold takes a two-parameter lambda (acc, x) -> …, an array and an initial value", node)
    return exp.Anonymous(this="LIST_REDUCE", expressions=[args[1].copy(), args[0].copy(), args[2].copy()])


register("array_fold", _array_fold_call, 3)
register("range", lambda args, kinds, node: fill(
    "RANGE(0, CAST({0} AS BIGINT))" if len(args) == 1 else
    "RANGE(CAST({0} AS BIGINT), CAST({1} AS BIGINT), " + ("CAST({2} AS BIGINT))" if len(args) == 3 else "1)"), args),
    1, 3, returns=ARRAY)
# One output row per element (the row's other columns repeated); an empty array gives no row.
register("array_join", "UNNEST({0})", 1)
register("array_with_constant", "LIST_RESIZE([{1}], {0}, {1})", 2, returns=ARRAY)
register("count_equal", "LENGTH(LIST_FILTER({0}, lambda __tp_v: __tp_v IS NOT DISTINCT FROM {1}))", 2,
         returns=INT)
register("array_intersect", lambda args, kinds, node: _folded("LIST_INTERSECT", args), 1, None, returns=ARRAY)
register("array_enumerate", "RANGE(1, LENGTH({0}) + 1)", 1, returns=ARRAY)
register("empty_array_string", "CAST([] AS VARCHAR[])", 0, returns=ARRAY)
register("array_join_text array_string_join", "ARRAY_TO_STRING({0}, {1})", 2, returns=STRING)


def _folded(duck: str, args: list[exp.Expression]) -> exp.Expression:
    """``duck(duck(a, b), c)…``: a two-argument list function applied to any number of lists."""
    result = args[0].copy()
    for arg in args[1:]:
        result = exp.Anonymous(this=duck, expressions=[result, arg.copy()])
    return result
