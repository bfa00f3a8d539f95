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
    # Proton's offset counts from 1 (negative: from the end; 0 gives []); its length is a count of
    # elements, or when negative how many to leave off the end. The slice is cut to the array.
    start = "CASE WHEN {1} > 0 THEN {1} WHEN {1} < 0 THEN LEN({0}) + {1} + 1 END"
    if len(args) == 2:
        end = "LEN({0})"
    else:
        end = f"CASE WHEN {{2}} >= 0 THEN ({start}) + {{2}} - 1 ELSE LEN({{0}}) + {{2}} END"
    return fill(f"CASE WHEN {{1}} = 0 THEN LIST_SLICE({{0}}, 1, 0) "
                f"ELSE LIST_SLICE({{0}}, GREATEST({start}, 1), GREATEST(LEAST({end}, LEN({{0}})), 0)) END", args)


register("array_slice", _array_slice, 2, 3, returns=ARRAY)
register("array_compact", "LIST_FILTER({0}, lambda __tp_v, __tp_i: __tp_i = 1 OR {0}[__tp_i - 1] IS DISTINCT FROM __tp_v)",
         1, returns=ARRAY)  # consecutive duplicates removed
register("array_difference", "LIST_TRANSFORM({0}, lambda __tp_v, __tp_i: CASE WHEN __tp_i = 1 THEN __tp_v - __tp_v "
                             "ELSE __tp_v - {0}[__tp_i - 1] END)", 1, returns=ARRAY)
register("array_cum_sum", "LIST_TRANSFORM({0}, lambda __tp_v, __tp_i: LIST_SUM(LIST_SLICE({0}, 1, __tp_i)))", 1,
         returns=ARRAY)


def _array_zip(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    # Arrays of different lengths are an error in Proton (DuckDB would pad the shorter with NULLs).
    lengths = [fill("LEN({0})", [a]) for a in args]
    differ = exp.or_(*(exp.NEQ(this=lengths[0].copy(), expression=n.copy()) for n in lengths[1:]))
    zipped = exp.Anonymous(this="LIST_ZIP", expressions=[a.copy() for a in args])
    return fill("CASE WHEN {0} THEN ERROR('array_zip: the arrays differ in length') ELSE {1} END", [differ, zipped])


register("array_zip", _array_zip, 2, None, returns=ARRAY)
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


# --- set tests and sub-arrays (NULL equals NULL, as in Proton) ------------------------------------
register("has_all", "CAST(LEN(LIST_FILTER({1}, lambda __tp_v: LIST_POSITION({0}, __tp_v) IS NULL)) = 0 AS UTINYINT)",
         2, returns=INT)
register("has_any", "CAST(LEN(LIST_FILTER({1}, lambda __tp_v: LIST_POSITION({0}, __tp_v) IS NOT NULL)) > 0 "
                    "AS UTINYINT)", 2, returns=INT)
# {1} appears in {0} as a run of consecutive elements (the empty array everywhere).
register("has_substr", "CAST(LEN({1}) = 0 OR COALESCE(LIST_BOOL_OR(LIST_TRANSFORM(RANGE(1, LEN({0}) - LEN({1}) + 2), "
                       "lambda __tp_i: LIST_SLICE({0}, __tp_i, __tp_i + LEN({1}) - 1) IS NOT DISTINCT FROM {1})), FALSE) "
                       "AS UTINYINT)", 2, returns=INT)
# Empty arrays of a type: empty_array_uint8() … empty_array_string().
for _type, _duck in (("uint8", "UTINYINT"), ("uint16", "USMALLINT"), ("uint32", "UINTEGER"), ("uint64", "UBIGINT"),
                     ("int8", "TINYINT"), ("int16", "SMALLINT"), ("int32", "INTEGER"), ("int64", "BIGINT"),
                     ("float32", "FLOAT"), ("float64", "DOUBLE"), ("date", "DATE"), ("datetime", "TIMESTAMPTZ")):
    register(f"empty_array_{_type}", f"CAST([] AS {_duck}[])", 0, returns=ARRAY)


def _element_default(array: exp.Expression) -> exp.Expression:
    """The default value of an array's element type (0, '', [] or false), when the array is written
    as a literal whose elements tell it; NULL otherwise (and for arrays holding NULL)."""
    if isinstance(array, exp.Cast) and array.to.is_type(exp.DataType.Type.ARRAY):
        element = array.to.expressions[0] if array.to.expressions else None
        if element is not None and element.is_type(*exp.DataType.NUMERIC_TYPES):
            return exp.Literal.number(0)
        if element is not None and element.is_type(*exp.DataType.TEXT_TYPES):
            return exp.Literal.string("")
        if element is not None and element.is_type(*exp.DataType.TEMPORAL_TYPES):
            return exp.cast(exp.Literal.string("1970-01-01"), element.copy())
    if array.sql(dialect="duckdb").upper().startswith(("RANGE(", "GENERATE_SERIES(")):  # range(n)
        return exp.Literal.number(0)
    elements = array.expressions if isinstance(array, exp.Array) else []
    if not elements or any(isinstance(e, exp.Null) for e in elements):
        return exp.Null()
    first = elements[0]
    if isinstance(first, exp.Literal):
        return exp.Literal.string("") if first.is_string else exp.Literal.number(0)
    if isinstance(first, exp.Cast) and isinstance(first.this, exp.Literal):
        return exp.Literal.number(0)
    if isinstance(first, exp.Array):
        return exp.Array(expressions=[])
    if isinstance(first, exp.Boolean):
        return exp.false()
    return exp.Null()


def _array_resize(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    # A negative size keeps the last elements and pads at the front; the pad defaults to the type's default.
    pad = args[2] if len(args) > 2 else _element_default(args[0])
    return fill("CASE WHEN {1} >= 0 THEN CASE WHEN LEN({0}) >= {1} THEN LIST_SLICE({0}, 1, {1}) "
                "ELSE LIST_CONCAT({0}, LIST_TRANSFORM(RANGE({1} - LEN({0})), lambda __tp_i: {2})) END "
                "ELSE CASE WHEN LEN({0}) >= -{1} THEN LIST_SLICE({0}, LEN({0}) + {1} + 1, LEN({0})) "
                "ELSE LIST_CONCAT(LIST_TRANSFORM(RANGE(-{1} - LEN({0})), lambda __tp_i: {2}), {0}) END END",
                [args[0], args[1], pad])


register("array_resize", _array_resize, 2, 3, returns=ARRAY)
register("empty_array_to_single", lambda args, kinds, node: fill(
    "CASE WHEN LEN({0}) = 0 THEN [{1}] ELSE {0} END", [args[0], _element_default(args[0])]), 1, returns=ARRAY)


def _nesting(array: exp.Expression) -> int:
    """How many array levels a literal array shows (1 for other arrays)."""
    depth, level = 1, array
    while isinstance(level, exp.Array) and level.expressions and isinstance(level.expressions[0], exp.Array):
        depth, level = depth + 1, level.expressions[0]
    return depth


def _flatten(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    # Every level of nesting is flattened (DuckDB's FLATTEN takes off one).
    result = args[0].copy()
    for _ in range(max(_nesting(args[0]) - 1, 1)):
        result = exp.Anonymous(this="FLATTEN", expressions=[result])
    return result


register("flatten array_flatten", _flatten, 1, returns=ARRAY)
# The how-many-th occurrence of each element so far / the index of each element's first distinct value.
register("array_enumerate_uniq", "LIST_TRANSFORM({0}, lambda __tp_v, __tp_i: LEN(LIST_FILTER(LIST_SLICE({0}, 1, __tp_i), "
                                 "lambda __tp_w: __tp_w IS NOT DISTINCT FROM __tp_v)))", 1, returns=ARRAY)
register("array_enumerate_dense", "LIST_TRANSFORM({0}, lambda __tp_v: LIST_POSITION(LIST_FILTER({0}, lambda __tp_w, __tp_j: "
                                  "LIST_POSITION({0}, __tp_w) = __tp_j), __tp_v))", 1, returns=ARRAY)
register("array_cum_sum_non_negative", "LIST_REDUCE(LIST_TRANSFORM({0}, lambda __tp_v: [__tp_v]), lambda __tp_acc, __tp_v: "
                                       "LIST_APPEND(__tp_acc, GREATEST(COALESCE(__tp_acc[-1], 0) + __tp_v[1], 0)), "
                                       "CAST([] AS DOUBLE[]))", 1, returns=ARRAY)


def _lambda_values(args: list[exp.Expression], node: exp.Expression) -> tuple[exp.Expression, exp.Expression]:
    """For ``f(func, array1[, array2 …])``: the first array, and the list of ``func``'s value at each
    position (its parameters bound to the arrays' elements there)."""
    if not args or not isinstance(args[0], exp.Lambda) or len(args[0].expressions) != len(args) - 1:
        raise error(f"{function_name(node)} takes a lambda with one parameter per array, then the arrays", node)
    func, arrays = args[0], args[1:]
    if len(arrays) == 1:
        return arrays[0], exp.Anonymous(this="LIST_TRANSFORM", expressions=[arrays[0].copy(), func.copy()])
    index = exp.to_identifier("__tp_i")
    params = [p.name for p in func.expressions]

    def param(n: exp.Expression) -> exp.Expression:
        # A parameter is a bare column or identifier in the body; each stands for its array at __tp_i.
        if isinstance(n, exp.Column) and not n.table and n.name in params:
            return exp.column(f"__tp_param{params.index(n.name)}")
        if isinstance(n, exp.Identifier) and not isinstance(n.parent, exp.Column) and n.name in params:
            return exp.column(f"__tp_param{params.index(n.name)}")
        return n

    body = fill(func.this.transform(param).sql(dialect="duckdb").replace("__tp_param", "__tp_arg"),
                [fill("{0}[{1}]", [a, exp.column(index.copy())]) for a in arrays])
    return arrays[0], fill("LIST_TRANSFORM(RANGE(1, LEN({0}) + 1), {1})",
                           [arrays[0], exp.Lambda(this=body, expressions=[index])])


def _array_fill(reverse: bool) -> Builder:
    """array_fill / array_reverse_fill: elements where ``func`` is false take the value of the
    nearest earlier (later) element where it holds; the first (last) element always stays."""

    def build(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
        array, holds = _lambda_values(args, node)
        if reverse:
            template = ("LIST_TRANSFORM({0}, lambda __tp_v, __tp_i: {0}[COALESCE(__tp_i - 1 + LIST_POSITION("
                        "LIST_SLICE(LIST_TRANSFORM({1}, lambda __tp_h, __tp_j: __tp_h::BOOLEAN OR __tp_j = LEN({0})), "
                        "__tp_i, LEN({0})), TRUE), __tp_i)])")
        else:
            template = ("LIST_TRANSFORM({0}, lambda __tp_v, __tp_i: {0}[COALESCE(__tp_i + 1 - LIST_POSITION("
                        "LIST_REVERSE(LIST_SLICE(LIST_TRANSFORM({1}, lambda __tp_h, __tp_j: __tp_h::BOOLEAN OR __tp_j = 1), "
                        "1, __tp_i)), TRUE), __tp_i)])")
        return fill(template, [array, holds])

    return build


register("array_fill", _array_fill(False), 2, None, returns=ARRAY)
register("array_reverse_fill", _array_fill(True), 2, None, returns=ARRAY)


def _array_split(reverse: bool) -> Builder:
    """array_split cuts the array before each element where ``func`` holds (but the first);
    array_reverse_split after each such element (but the last)."""

    def build(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
        array, holds = _lambda_values(args, node)
        # Each element's piece number: how many cuts come at or before it.
        if reverse:
            cuts = ("LIST_TRANSFORM({0}, lambda __tp_v, __tp_i: LEN(LIST_FILTER(LIST_SLICE({1}, 1, __tp_i - 1), "
                    "lambda __tp_h: __tp_h::BOOLEAN)))")
        else:
            cuts = ("LIST_TRANSFORM({0}, lambda __tp_v, __tp_i: LEN(LIST_FILTER(LIST_SLICE({1}, 2, __tp_i), "
                    "lambda __tp_h: __tp_h::BOOLEAN)))")
        pieces = fill(cuts, [array, holds])
        return fill("LIST_FILTER(LIST_TRANSFORM(RANGE(0, COALESCE(LIST_MAX({1}), -1) + 1), lambda __tp_p: "
                    "LIST_FILTER({0}, lambda __tp_v, __tp_i: {1}[__tp_i] = __tp_p)), lambda __tp_s: LEN(__tp_s) > 0)",
                    [array, pieces])

    return build


register("array_split", _array_split(False), 2, None, returns=ARRAY)
register("array_reverse_split", _array_split(True), 2, None, returns=ARRAY)


def _array_auc(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    # The area under the ROC curve of scores {0} for labels {1} (positive when > 0): the share of
    # (positive, negative) pairs the scores order rightly, ties counting half; nan without both.
    return fill(
        "CASE WHEN LEN({0}) <> LEN({1}) THEN ERROR('array_auc: the scores and labels arrays differ in length') "
        "ELSE COALESCE(LIST_SUM(LIST_TRANSFORM({0}, lambda __tp_s, __tp_i: CASE WHEN {1}[__tp_i]::DOUBLE > 0 THEN "
        "COALESCE(LIST_SUM(LIST_TRANSFORM({0}, lambda __tp_t, __tp_j: CASE WHEN {1}[__tp_j]::DOUBLE > 0 THEN 0.0 "
        "WHEN __tp_t < __tp_s THEN 1.0 WHEN __tp_t = __tp_s THEN 0.5 ELSE 0.0 END)), 0.0) ELSE 0.0 END)), 0.0) "
        "/ (LEN(LIST_FILTER({1}, lambda __tp_l: __tp_l::DOUBLE > 0)) * LEN(LIST_FILTER({1}, lambda __tp_l: "
        "__tp_l::DOUBLE <= 0)))::DOUBLE END", args)


register("array_auc", _array_auc, 2, returns=FLOAT)
