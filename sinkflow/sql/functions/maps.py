"""Map and tuple functions: ``map_cast``, ``map_from_arrays``, ``map_keys``, ``map_values``,
``map_contains`` (``m['key']`` reads a value, as in DuckDB), ``tuple`` and ``tuple_element``."""

from __future__ import annotations

from sqlglot import exp

from sinkflow.sql.functions.kinds import ARRAY, BOOL
from sinkflow.sql.functions.registry import error, fill, register


def _map_cast(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    # map_cast(['k1', 'k2'], [v1, v2]) or map_cast(k1, v1, k2, v2, …)
    if len(args) == 2 and kinds[0] == ARRAY:
        return fill("MAP({0}, {1})", args)
    if len(args) % 2:
        raise error("map_cast takes an array of keys and an array of values, or pairs of key, value", node)
    keys = exp.Array(expressions=[a.copy() for a in args[0::2]])
    values = exp.Array(expressions=[a.copy() for a in args[1::2]])
    return fill("MAP({0}, {1})", [keys, values])


register("map_cast map", _map_cast, 2, None)
register("map_from_arrays", "MAP({0}, {1})", 2)
register("map_keys", "MAP_KEYS({0})", 1, returns=ARRAY)
register("map_values", "MAP_VALUES({0})", 1, returns=ARRAY)
register("map_contains", "MAP_CONTAINS({0}, {1})", 2, returns=BOOL)



# --- tuples ---------------------------------------------------------------------------------------
register("tuple", lambda args, kinds, node: exp.Anonymous(this="ROW", expressions=[a.copy() for a in args]), 1, None)


def _tuple_element(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    # tuple_element(t, n): the n-th element (from 1), or the element named by a string.
    index = args[1]
    if isinstance(index, exp.Literal) and index.is_string:
        return fill("STRUCT_EXTRACT({0}, {1})", [args[0], index])
    return fill("STRUCT_EXTRACT({0}, CAST({1} AS BIGINT))", [args[0], index])


register("tuple_element", _tuple_element, 2)
