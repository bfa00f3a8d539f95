"""JSON functions over JSON text: ``json_extract_*``, ``json_extract`` (with a type), ``json_has``, ``json_value``, ``json_query``,
``is_valid_json``, ``json_array_length``, ``json_merge_patch``.

Paths are JSONPath (``$.a.b``, ``$.records[*].b``); Timeplus's backquoted keys (``$.`a.b`.c``)
are read as DuckDB's quoted ones."""

from __future__ import annotations

import re

from sqlglot import exp

from sinkflow.sql.functions.kinds import ARRAY, BOOL, FLOAT, INT, STRING
from sinkflow.sql.functions.registry import Builder, error, fill, literal_text, register


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


def _path(path: exp.Expression) -> exp.Expression:
    """A JSONPath literal with Timeplus's backquoted keys quoted the way DuckDB reads them."""
    if isinstance(path, exp.Literal) and path.is_string and "`" in path.this:
        return exp.Literal.string(re.sub(r"`([^`]*)`", lambda m: '"' + m.group(1).replace('"', '\\"') + '"', path.this))
    return path


def _json_value(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    # json_value takes a JSONPath ('$.a.b') and yields scalars only; objects/arrays/missing give ''.
    return fill("CASE WHEN {0} IS NULL THEN NULL WHEN NOT JSON_VALID({0}) THEN '' "
                 "WHEN JSON_TYPE({0}, {1}) IN ('OBJECT', 'ARRAY') THEN '' "
                 "ELSE COALESCE(JSON_EXTRACT_STRING({0}, {1}), '') END", [args[0], _path(args[1])])


def _json_query(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    # The matches as JSON array text ('[1]', '[1,2,3]'); '' when nothing matches.
    path = _path(args[1])
    if isinstance(path, exp.Literal) and "*" in path.this:
        found = "ARRAY_TO_STRING(CAST(JSON_EXTRACT({0}, {1}) AS VARCHAR[]), ',')"
        return fill(f"CASE WHEN {{0}} IS NULL THEN NULL WHEN NOT JSON_VALID({{0}}) THEN '' "
                    f"WHEN LENGTH(JSON_EXTRACT({{0}}, {{1}})) = 0 THEN '' ELSE '[' || {found} || ']' END", [args[0], path])
    return fill("CASE WHEN {0} IS NULL THEN NULL WHEN NOT JSON_VALID({0}) THEN '' "
                "WHEN JSON_EXTRACT({0}, {1}) IS NULL THEN '' ELSE '[' || CAST(JSON_EXTRACT({0}, {1}) AS VARCHAR) || ']' END",
                [args[0], path])


def _json_extract_array(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    # Each element as JSON text (strings keep their quotes); [] when the value is no array.
    path = _json_path(args[1]) if len(args) > 1 else exp.Literal.string("$")
    return fill("CASE WHEN {0} IS NULL THEN NULL WHEN NOT JSON_VALID({0}) THEN CAST([] AS VARCHAR[]) "
                "WHEN JSON_TYPE({0}, {1}) = 'ARRAY' THEN CAST(JSON_EXTRACT({0}, {1} || '[*]') AS VARCHAR[]) "
                "ELSE CAST([] AS VARCHAR[]) END", [args[0], path])


register("json_value", _json_value, 2, returns=STRING)
register("json_query", _json_query, 2, returns=STRING)
register("json_extract_array", _json_extract_array, 1, 2, returns=ARRAY)
register("json_extract_keys", "CASE WHEN JSON_VALID({0}) AND JSON_TYPE({0}) = 'OBJECT' THEN JSON_KEYS({0}) "
         "ELSE CAST([] AS VARCHAR[]) END", 1, returns=ARRAY)
register("json_array_length", "CASE WHEN JSON_VALID({0}) THEN JSON_ARRAY_LENGTH({0}) END", 1, returns=INT)
register("json_merge_patch", lambda args, kinds, node: fill(
    "CAST({0} AS VARCHAR)", [exp.Anonymous(this="JSON_MERGE_PATCH", expressions=[a.copy() for a in args])]),
    2, None, returns=STRING)
register("is_valid_json", "COALESCE(JSON_VALID({0}), FALSE)", 1, returns=BOOL)


def _path_step(key: exp.Expression) -> exp.Expression:
    """One step of a JSON path for a key argument: a member name, or a 1-based array index
    (negative counts from the end)."""
    if isinstance(key, exp.Literal) and key.is_string:
        return exp.Literal.string('."' + key.this.replace('\\', '\\\\').replace('"', '\\"') + '"')
    if isinstance(key, exp.Literal):
        return exp.Literal.string(f"[{int(key.this) - 1}]")
    if isinstance(key, exp.Neg) and isinstance(key.this, exp.Literal):
        return exp.Literal.string(f"[#-{int(key.this.this)}]")
    return fill("CASE WHEN TRY_CAST({0} AS BIGINT) IS NULL THEN '.\"' || REPLACE(CAST({0} AS VARCHAR), '\"', '\\\"') || '\"' "
                "WHEN CAST({0} AS BIGINT) > 0 THEN '[' || (CAST({0} AS BIGINT) - 1) || ']' "
                "ELSE '[#' || CAST({0} AS BIGINT) || ']' END", [key])


_INTEGER_TYPES = {"int8": "TINYINT", "int16": "SMALLINT", "int32": "INTEGER", "int": "INTEGER", "int64": "BIGINT",
                  "uint8": "UTINYINT", "uint16": "USMALLINT", "uint32": "UINTEGER", "uint64": "UBIGINT"}
_FLOAT_TYPES = {"float": "FLOAT", "float32": "FLOAT", "float64": "DOUBLE", "double": "DOUBLE"}


def _json_extract_typed(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    """json_extract(json, key…, 'type'): the value at the keys' path as the type; a value that is
    missing, of another JSON type or out of the type's range gives the type's default (0, '', false)
    or NULL for a nullable(…) type."""
    written = literal_text(args[-1], "json_extract's type").strip().lower()
    nullable = re.fullmatch(r"nullable\((.*)\)", written)
    name = re.sub(r"^low_cardinality\((.*)\)$", r"\1", nullable.group(1) if nullable else written).strip()
    path: exp.Expression = exp.Literal.string("$")
    for key in args[1:-1]:
        path = fill("{0} || {1}", [path, _path_step(key)])
    if name in _INTEGER_TYPES:
        value = (f"CASE WHEN JSON_TYPE({{0}}, {{1}}) IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN TRY_CAST(TRUNC(CAST("
                 f"JSON_EXTRACT_STRING({{0}}, {{1}}) AS DOUBLE)) AS {_INTEGER_TYPES[name]}) END")
        default = "0"
    elif name in _FLOAT_TYPES:
        number = "CAST(JSON_EXTRACT_STRING({0}, {1}) AS DOUBLE)"
        if _FLOAT_TYPES[name] == "FLOAT":  # beyond float32's range: ±inf, as Proton's conversion gives
            number = f"CASE WHEN ABS({number}) > 3.4028234663852886e38 THEN {number} * 'inf'::DOUBLE ELSE {number} END"
        value = (f"CASE WHEN JSON_TYPE({{0}}, {{1}}) IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN CAST({number} "
                 f"AS {_FLOAT_TYPES[name]}) END")
        default = "0"
    elif name == "string":
        value = "CASE WHEN JSON_TYPE({0}, {1}) = 'VARCHAR' THEN JSON_EXTRACT_STRING({0}, {1}) END"
        default = "''"
    elif name == "bool":
        value = ("CASE WHEN JSON_TYPE({0}, {1}) = 'BOOLEAN' THEN CAST(JSON_EXTRACT_STRING({0}, {1}) AS BOOLEAN) "
                 "WHEN JSON_TYPE({0}, {1}) IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN CAST(JSON_EXTRACT_STRING({0}, {1}) "
                 "AS DOUBLE) <> 0 END")
        default = "FALSE"
    else:
        raise error(f"json_extract does not read the type '{written}' (it reads integers, floats, string and "
                    "bool, each optionally nullable(…))", args[-1])
    if not nullable:
        value = f"COALESCE({value}, {default})"
    return fill(f"CASE WHEN {{0}} IS NULL OR NOT JSON_VALID({{0}}) THEN {'NULL' if nullable else default} "
                f"ELSE {value} END", [args[0], path])


register("json_extract", _json_extract_typed, 3, None)
