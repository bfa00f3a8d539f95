"""JSON functions over JSON text: ``json_extract_*``, ``json_has``, ``json_value``, ``is_valid_json``.
"""

from __future__ import annotations

from sqlglot import exp

from sinkflow.sql.functions.kinds import BOOL, FLOAT, INT, STRING
from sinkflow.sql.functions.registry import Builder, fill, register


def _json_path(key: exp.Expression) -> exp.Expression:
    if isinstance(key, exp.Literal) and key.is_string:
        return exp.Literal.string('$."' + key.this.replace('\\', '\\\\').replace('"', '\\"') + '"')
    return fill("'$.\"' || REPLACE({0}, '\"', '\\\"') || '\"'", [key])


def _json(value: str, default: str) -> Builder:
    """``value`` (a template over the document {0} and the key's JSON path {1}) for valid JSON.

    Malformed JSON gives the type's ``default`` as in Timeplus, instead of failing the whole
    query on one bad row; a NULL document gives NULL."""
    template = f"CASE WHEN {{0}} IS NULL THEN NULL WHEN NOT JSON_VALID({{0}}) THEN {default} ELSE {value} END"
    return lambda args, kinds, node: fill(template, [args[0], _json_path(args[1])])


# A missing key or a value of another JSON type also gives the default ('' / 0 / false).
register("json_extract_string", _json("COALESCE(JSON_EXTRACT_STRING({0}, {1}), '')", "''"), 2, returns=STRING)
register("json_extract_int", _json(
    "CASE JSON_TYPE({0}, {1}) WHEN 'BIGINT' THEN CAST(JSON_EXTRACT_STRING({0}, {1}) AS BIGINT) "
    "WHEN 'UBIGINT' THEN CAST(JSON_EXTRACT_STRING({0}, {1}) AS BIGINT) "
    "WHEN 'DOUBLE' THEN CAST(TRUNC(CAST(JSON_EXTRACT_STRING({0}, {1}) AS DOUBLE)) AS BIGINT) ELSE 0 END", "0"),
    2, returns=INT)
register("json_extract_float", _json(
    "CASE WHEN JSON_TYPE({0}, {1}) IN ('BIGINT', 'UBIGINT', 'DOUBLE') "
    "THEN CAST(JSON_EXTRACT_STRING({0}, {1}) AS DOUBLE) ELSE 0.0 END", "0.0"), 2, returns=FLOAT)
register("json_extract_bool", _json(
    "CASE WHEN JSON_TYPE({0}, {1}) = 'BOOLEAN' THEN CAST(JSON_EXTRACT_STRING({0}, {1}) AS BOOLEAN) "
    "ELSE FALSE END", "FALSE"), 2, returns=BOOL)
register("json_has", _json("JSON_EXISTS({0}, {1})", "FALSE"), 2, returns=BOOL)


def _json_value(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    # json_value takes a JSONPath ('$.a.b') and yields scalars only; objects/arrays/missing give ''.
    return fill("CASE WHEN {0} IS NULL THEN NULL WHEN NOT JSON_VALID({0}) THEN '' "
                 "WHEN JSON_TYPE({0}, {1}) IN ('OBJECT', 'ARRAY') THEN '' "
                 "ELSE COALESCE(JSON_EXTRACT_STRING({0}, {1}), '') END", args)


register("json_value", _json_value, 2, returns=STRING)
register("is_valid_json", "COALESCE(JSON_VALID({0}), FALSE)", 1, returns=BOOL)
