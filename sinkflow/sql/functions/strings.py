"""String functions (Timeplus counts bytes where DuckDB counts characters: see the package docstring).
"""

from __future__ import annotations

import re

from sqlglot import exp

from sinkflow.sql.functions.conversions import text_of
from sinkflow.sql.functions.kinds import ARRAY, BINARY, BOOL, INT, STRING
from sinkflow.sql.functions.registry import fill, literal_text, register, same_args


register("lower", "LOWER({0})", 1, returns=STRING)
register("upper", "UPPER({0})", 1, returns=STRING)


def _length(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    if kinds[0] == STRING:
        return fill("STRLEN({0})", args)  # Timeplus counts bytes of a string
    if kinds[0] == BINARY:
        return fill("OCTET_LENGTH({0})", args)
    # An array counts elements; for text of unknown kind DuckDB's LENGTH counts characters, which
    # equals Timeplus's byte count for ASCII text (pass the schema to the planner for exact bytes).
    return fill("LENGTH({0})", args)


register("length", _length, 1, returns=INT)


def _concat(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    # Timeplus's concat of a NULL is NULL, like DuckDB's ||, unlike DuckDB's CONCAT.
    parts = [text_of(arg, kind) for arg, kind in zip(args, kinds)]
    result = parts[0]
    for part in parts[1:]:
        result = exp.DPipe(this=result, expression=part, safe=True)
    return result


register("concat", _concat, 1, None, returns=STRING)
register("substring substr", same_args("SUBSTRING"), 2, 3, returns=STRING)
register("trim", "TRIM({0})", 1, returns=STRING)
register("replace_all replace", "REPLACE({0}, {1}, {2})", 3, returns=STRING)
register(
    "replace_one",
    # Only the first occurrence; an empty needle leaves the text unchanged as in Timeplus.
    "CASE WHEN {1} = '' OR STRPOS({0}, {1}) = 0 THEN {0} "
    "ELSE SUBSTRING({0}, 1, STRPOS({0}, {1}) - 1) || {2} || SUBSTRING({0}, STRPOS({0}, {1}) + LENGTH({1})) END",
    3, returns=STRING)
register("match", "REGEXP_MATCHES({0}, {1})", 2, returns=BOOL)  # both are RE2
register("replace_regex", "REGEXP_REPLACE({0}, {1}, {2}, 'g')", 3, returns=STRING)  # \\1 back-references in both
# DuckDB's LENGTH counts a string's characters and an array's elements: zero either way.
register("empty", "(LENGTH({0}) = 0)", 1, returns=BOOL)
register("not_empty", "(LENGTH({0}) > 0)", 1, returns=BOOL)
register("starts_with", "STARTS_WITH({0}, {1})", 2, returns=BOOL)
register("ends_with", "ENDS_WITH({0}, {1})", 2, returns=BOOL)
register("position", "STRPOS({0}, {1})", 2, returns=INT)
register("split_by_string", "STRING_SPLIT({1}, {0})", 2, returns=ARRAY)  # (separator, text)


def _reverse(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    return fill("LIST_REVERSE({0})" if kinds[0] == ARRAY else "REVERSE({0})", args)


register("reverse", _reverse, 1, returns=0)
register("lpad", "LPAD({0}, {1}, {2})", 3, returns=STRING)
register("rpad", "RPAD({0}, {1}, {2})", 3, returns=STRING)
register("format", same_args("FORMAT"), 1, None, returns=STRING)  # both use {} / {0} placeholders
register("hex", "HEX({0})", 1, returns=STRING)
register("base64_encode", "TO_BASE64(ENCODE({0}))", 1, returns=STRING)
register("base64_decode", "DECODE(FROM_BASE64({0}))", 1, returns=STRING)
register("uuid", "CAST(UUID() AS VARCHAR)", 0, returns=STRING)


def _extract(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    # Timeplus returns the first capture group when the pattern has one, else the whole match,
    # and '' without a match (so does DuckDB's REGEXP_EXTRACT).
    pattern = literal_text(args[1], "extract's pattern")
    group = 1 if re.search(r"(?<!\\)\((?!\?)", pattern) else 0
    return fill(f"REGEXP_EXTRACT({{0}}, {{1}}, {group})", args)


register("extract", _extract, 2, returns=STRING)


def _multi_search_any(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    needle = exp.to_identifier("__tp_needle")
    contains = exp.Anonymous(this="CONTAINS", expressions=[args[0].copy(), exp.column(needle.copy())])
    matches = exp.Anonymous(this="LIST_TRANSFORM", expressions=[args[1].copy(), exp.Lambda(this=contains, expressions=[needle])])
    return fill("COALESCE(LIST_BOOL_OR({0}), FALSE)", [matches])


register("multi_search_any", _multi_search_any, 2, returns=BOOL)
register("md5", "UNHEX(MD5({0}))", 1, returns=BINARY)  # 16 raw bytes; hex(md5(s)) prints them
register("sha256", "UNHEX(SHA256({0}))", 1, returns=BINARY)
