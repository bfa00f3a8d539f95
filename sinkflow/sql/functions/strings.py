"""String functions, ``grok`` among them (Timeplus counts bytes where DuckDB counts characters: see
the package docstring).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlglot import exp

from sinkflow.sql.functions.calls import function_name
from sinkflow.sql.functions.conversions import text_of
from sinkflow.sql.functions.kinds import ARRAY, BINARY, BOOL, INT, STRING
from sinkflow.sql.functions.registry import Builder, error, fill, literal_text, register, same_args


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


def _whole_numbers(args: list[exp.Expression]) -> list[exp.Expression]:
    """The text argument and the others (offsets, lengths) as BIGINT, which DuckDB's SUBSTRING takes."""
    return [args[0], *(fill("CAST({0} AS BIGINT)", [a]) for a in args[1:])]


def _substring(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    """substring(s, offset[, length]) as Proton cuts: offset 1 is the first character, a negative
    one counts from the end and 0 gives ''; a negative length leaves that many off the end."""
    args = _whole_numbers(args)
    if len(args) == 2:
        return fill("CASE WHEN {1} = 0 THEN '' ELSE SUBSTRING({0}, {1}) END", args)
    start = "CASE WHEN {1} > 0 THEN {1} ELSE GREATEST(LENGTH({0}) + {1} + 1, 1) END"
    return fill(f"CASE WHEN {{1}} IS NULL OR {{2}} IS NULL THEN NULL WHEN {{1}} = 0 THEN '' "
                f"WHEN {{2}} >= 0 THEN SUBSTRING({{0}}, {{1}}, {{2}}) "
                f"ELSE SUBSTRING({{0}}, {start}, GREATEST(LENGTH({{0}}) + {{2}} + 1 - ({start}), 0)) END", args)


register("substring substr", _substring, 2, 3, returns=STRING)
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
register("split_by_string split_by_char", "STRING_SPLIT({1}, {0})", 2, returns=ARRAY)  # (separator, text)


def _reverse(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    return fill("LIST_REVERSE({0})" if kinds[0] == ARRAY else "REVERSE({0})", args)


register("reverse", _reverse, 1, returns=0)
#: The longest string lpad/rpad may make: a larger length is an error, not gigabytes of memory
#: in one value (DuckDB's memory limit does not bound a single string).
MAX_PAD_LENGTH = 16 * 1024 * 1024
_PAD_LENGTH = (f"CAST(IF({{1}} > {MAX_PAD_LENGTH}, ERROR('a padded length over {MAX_PAD_LENGTH:,} characters "
               f"is refused'), {{1}}) AS INTEGER)")
register("lpad", f"LPAD({{0}}, {_PAD_LENGTH}, {{2}})", 3, returns=STRING)
register("rpad", f"RPAD({{0}}, {_PAD_LENGTH}, {{2}})", 3, returns=STRING)
register("format", same_args("FORMAT"), 1, None, returns=STRING)  # both use {} / {0} placeholders
# bar(x, min, max[, width = 80]): a band of width cells at x = max, in eighths of a cell, as
# ClickHouse draws it (DuckDB pads it to the width with spaces: trimmed).
register("bar", lambda args, kinds, node: fill("RTRIM(BAR(CAST({0} AS DOUBLE), {1}, {2}, {3}))",
                                               args if len(args) == 4 else [*args, exp.Literal.number(80)]),
         3, 4, returns=STRING)
register("base64_encode", "TO_BASE64(ENCODE({0}))", 1, returns=STRING)
register("base64_decode", "DECODE(FROM_BASE64({0}))", 1, returns=STRING)
register("uuid", "CAST(UUID() AS VARCHAR)", 0, returns=STRING)


def _regexp_extract(duck: str, name: str) -> Builder:
    """DuckDB's ``duck`` giving the first capture group when the pattern has one, else the whole
    match, as Timeplus's ``extract`` ('' without a match) and ``extract_all`` (every match) do."""

    def build(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
        pattern = literal_text(args[1], f"{name}'s pattern")
        group = 1 if re.search(r"(?<!\\)\((?!\?)", pattern) else 0
        return fill(f"{duck}({{0}}, {{1}}, {group})", args)

    return build


register("extract", _regexp_extract("REGEXP_EXTRACT", "extract"), 2, returns=STRING)
register("extract_all", _regexp_extract("REGEXP_EXTRACT_ALL", "extract_all"), 2, returns=ARRAY)


register("md5", "UNHEX(MD5({0}))", 1, returns=BINARY)  # 16 raw bytes; hex(md5(s)) prints them
register("sha256", "UNHEX(SHA256({0}))", 1, returns=BINARY)
register("trim_left ltrim", "LTRIM({0})", 1, returns=STRING)
register("trim_right rtrim", "RTRIM({0})", 1, returns=STRING)
register("repeat", "REPEAT({0}, CAST({1} AS BIGINT))", 2, returns=STRING)
register("left", "LEFT({0}, CAST({1} AS BIGINT))", 2, returns=STRING)
register("right", "RIGHT({0}, CAST({1} AS BIGINT))", 2, returns=STRING)
register("split_by_regexp", "REGEXP_SPLIT_TO_ARRAY({1}, {0})", 2, returns=ARRAY)
register("unhex", "DECODE(UNHEX({0}))", 1, returns=STRING)
register("generate_uuidv4", "CAST(UUID() AS VARCHAR)", 0, returns=STRING)
register("to_uuid", "CAST(CAST({0} AS UUID) AS VARCHAR)", 1, returns=STRING)


# The grok patterns Timeplus documents, as RE2 without capture groups (%{NAME} inside them expands too).
_GROK: dict[str, str] = {
    "USERNAME": r"[a-zA-Z0-9._-]+", "USER": r"%{USERNAME}", "INT": r"(?:[+-]?(?:[0-9]+))",
    "BASE10NUM": r"(?:[+-]?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+))", "NUMBER": r"(?:%{BASE10NUM})",
    "POSINT": r"\b(?:[1-9][0-9]*)\b", "NONNEGINT": r"\b(?:[0-9]+)\b", "WORD": r"\b\w+\b",
    "NOTSPACE": r"\S+", "SPACE": r"\s*", "DATA": r".*?", "GREEDYDATA": r".*",
    "QUOTEDSTRING": r'(?:"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')',
    "UUID": r"[A-Fa-f0-9]{8}-(?:[A-Fa-f0-9]{4}-){3}[A-Fa-f0-9]{12}",
    "IPV4": r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])",
    "IP": r"(?:%{IPV4}|[0-9A-Fa-f:]+)", "HOSTNAME": r"\b[0-9A-Za-z][0-9A-Za-z-]{0,62}(?:\.[0-9A-Za-z][0-9A-Za-z-]{0,62})*\.?\b",
    "IPORHOST": r"(?:%{IP}|%{HOSTNAME})", "HOSTPORT": r"%{IPORHOST}:%{POSINT}",
    "URIPATH": r"(?:/[A-Za-z0-9$.+!*'(){},~:;=@#%&_\-]*)+", "URIPARAM": r"\?[A-Za-z0-9$.+!*'|(){},~@#%&/=:;_?\-\[\]<>]*",
    "URIPATHPARAM": r"%{URIPATH}(?:%{URIPARAM})?", "URI": r"[A-Za-z][A-Za-z0-9+\-.]*://\S+",
    "MONTH": r"\b(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:tember)?"
             r"|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\b",
    "MONTHNUM": r"(?:0?[1-9]|1[0-2])", "MONTHDAY": r"(?:(?:0[1-9])|(?:[12][0-9])|(?:3[01])|[1-9])",
    "DAY": r"(?:Mon(?:day)?|Tue(?:sday)?|Wed(?:nesday)?|Thu(?:rsday)?|Fri(?:day)?|Sat(?:urday)?|Sun(?:day)?)",
    "YEAR": r"(?:\d\d){1,2}", "HOUR": r"(?:2[0123]|[01]?[0-9])", "MINUTE": r"(?:[0-5][0-9])",
    "SECOND": r"(?:(?:[0-5]?[0-9]|60)(?:[:.,][0-9]+)?)", "TIME": r"%{HOUR}:%{MINUTE}(?::%{SECOND})?",
    "ISO8601_TIMEZONE": r"(?:Z|[+-]%{HOUR}(?::?%{MINUTE}))",
    "TIMESTAMP_ISO8601": r"%{YEAR}-%{MONTHNUM}-%{MONTHDAY}[T ]%{HOUR}:?%{MINUTE}(?::?%{SECOND})?%{ISO8601_TIMEZONE}?",
    "HTTPDATE": r"%{MONTHDAY}/%{MONTH}/%{YEAR}:%{TIME} [+-]?\d{4}",
    "LOGLEVEL": r"(?:[Aa]lert|ALERT|[Tt]race|TRACE|[Dd]ebug|DEBUG|[Nn]otice|NOTICE|[Ii]nfo|INFO|[Ww]arn?(?:ing)?"
                r"|WARN?(?:ING)?|[Ee]rr?(?:or)?|ERR?(?:OR)?|[Cc]rit?(?:ical)?|CRIT?(?:ICAL)?|[Ff]atal|FATAL"
                r"|[Ss]evere|SEVERE|EMERG(?:ENCY)?|[Ee]merg(?:ency)?)",
}
_GROK_REF = re.compile(r"%\{(\w+)(?::(\w+))?\}")


def grok_regex(pattern: str, node: exp.Expression) -> tuple[str, list[str]]:
    """A grok pattern as RE2 with one capture group per ``%{NAME:field}``, and the field names.

    Raises :class:`SqlError` at ``node`` for an unknown pattern name."""
    fields: list[str] = []

    def expand(match: re.Match[str], depth: int = 0) -> str:
        name, field = match.group(1), match.group(2)
        if name not in _GROK or depth > 10:
            raise error(f"grok: unknown pattern %{{{name}}} (known: {', '.join(sorted(_GROK))})", node)
        inner = _GROK_REF.sub(lambda m: expand(m, depth + 1), _GROK[name])
        if field and depth == 0:
            fields.append(field)
            return f"({inner})"
        return f"(?:{inner})"

    regex = _GROK_REF.sub(expand, pattern)
    if not fields:
        raise error("grok: the pattern names no field (write %{PATTERN:field})", node)
    return regex, fields


def _grok(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    # A map of the named fields to their text; an empty map when the text does not match.
    regex, fields = grok_regex(literal_text(args[1], "grok's pattern"), args[1])
    names = exp.Array(expressions=[exp.Literal.string(f) for f in fields])
    found = fill("REGEXP_EXTRACT({0}, {1}, {2})", [args[0], exp.Literal.string(regex), names])
    values = exp.Array(expressions=[fill("STRUCT_EXTRACT({0}, {1})", [found, exp.Literal.string(f)]) for f in fields])
    return fill("CASE WHEN REGEXP_MATCHES({0}, {1}) THEN MAP({2}, {3}) ELSE MAP(CAST([] AS VARCHAR[]), "
                "CAST([] AS VARCHAR[])) END", [args[0], exp.Literal.string(regex), names, values])


register("grok", _grok, 2)
register("sha1", "UNHEX(SHA1({0}))", 1, returns=BINARY)


def _readable(base: int, units: list[str], separator: str) -> str:
    """A number with two decimals and the unit of its size (4678899 → '4.46 MiB' in base 1024)."""
    tier = f"LEAST({len(units) - 1}, CASE WHEN ABS({{0}}) < {base} THEN 0 ELSE CAST(FLOOR(LOG(ABS({{0}})) / LOG({base})) AS INTEGER) END)"
    names = "[" + ", ".join(f"'{u}'" for u in units) + "]"
    return f"PRINTF('%.2f{separator}%s', {{0}} / POW({base}, {tier}), {names}[{tier} + 1])"


register("format_readable_size", _readable(1024, ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"], " "), 1,
         returns=STRING)
register("format_readable_quantity", "RTRIM(" + _readable(1000, ["", "thousand", "million", "billion", "trillion",
                                                                 "quadrillion"], " ") + ")", 1, returns=STRING)
register("lower_utf8", "LOWER({0})", 1, returns=STRING)
register("upper_utf8", "UPPER({0})", 1, returns=STRING)
register("ascii", "ASCII({0})", 1, returns=INT)
register("replace_regexp_all", "REGEXP_REPLACE({0}, {1}, {2}, 'g')", 3, returns=STRING)
register("replace_regexp_one", "REGEXP_REPLACE({0}, {1}, {2})", 3, returns=STRING)
register("append_trailing_char_if_absent",
         "CASE WHEN {0} = '' OR ENDS_WITH({0}, {1}) THEN {0} ELSE {0} || {1} END", 2, returns=STRING)
register("regexp_quote_meta", "REGEXP_REPLACE({0}, '([\\\\.|()\\[\\]{}^$*+?\\\\\\\\-])', '\\\\\\1', 'g')", 1,
         returns=STRING)
register("length_utf8 char_length character_length", "LENGTH({0})", 1, returns=INT)
register("reverse_utf8", "REVERSE({0})", 1, returns=STRING)
register("substring_utf8 substr_utf8", _substring, 2, 3, returns=STRING)
register("concat_with_separator concat_ws", same_args("CONCAT_WS"), 1, None, returns=STRING)
register("space", "REPEAT(' ', CAST({0} AS BIGINT))", 1, returns=STRING)


# --- search and count ---------------------------------------------------------------------------
# Timeplus's search functions count bytes and fold ASCII letters only; their _utf8 forms count
# characters and fold every letter (DuckDB's STRPOS and LOWER).
_ASCII_LOWER = "TRANSLATE({0}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"


def _folded(arg: exp.Expression, kind: str | None, utf8: bool) -> exp.Expression:
    """``arg`` (text, or a list of text) in lower case as the search functions fold it."""
    lower = "LOWER({0})" if utf8 else _ASCII_LOWER
    if kind == ARRAY:
        return fill(f"LIST_TRANSFORM({{0}}, lambda __tp_s: {lower.format('__tp_s')})", [arg])
    return fill(lower, [arg])


def _in_bytes(place: str, text: str) -> str:
    """SQL for the byte place of the character place ``place`` (0: not found) in ``text``."""
    return f"CASE WHEN {place} = 0 THEN 0 ELSE STRLEN(LEFT({text}, {place} - 1)) + 1 END"


#: The most needles one multi_search_* call takes, as in Proton.
MAX_NEEDLES = 255


def _search(build_sql: Callable[[bool], str], case_insensitive: bool, utf8: bool) -> Builder:
    """A search function whose DuckDB SQL (over {0} the haystack, {1} the needle(s), {2} the
    start, and {3} the haystack as given) ``build_sql(utf8)`` makes."""

    def build(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
        if isinstance(args[1], exp.Array) and len(args[1].expressions) > MAX_NEEDLES:
            raise error(f"at most {MAX_NEEDLES} needles can be searched for at once", args[1])
        searched = [_folded(a, k, utf8) for a, k in zip(args[:2], kinds)] if case_insensitive else args[:2]
        start = args[2] if len(args) > 2 else exp.Literal.number(1)
        return fill(build_sql(utf8), [*searched, start, args[0]])

    return build


def _position_sql(utf8: bool) -> str:
    # From start (1 below 1): the place in the whole text, 0 when start is past its end.
    start = "GREATEST(CAST({2} AS BIGINT), 1)"
    found = f"STRPOS(SUBSTRING({{0}}, {start}), {{1}})"
    place = f"CASE WHEN CAST({{2}} AS BIGINT) > LENGTH({{0}}) + 1 OR {found} = 0 THEN 0 ELSE {found} + {start} - 1 END"
    return place if utf8 else _in_bytes(f"({place})", "{3}")


def _count_sql(utf8: bool) -> str:
    # Non-overlapping occurrences from start; 0 for an empty needle.
    text = "SUBSTRING({0}, GREATEST(CAST({2} AS BIGINT), 1))"
    return f"CASE WHEN LENGTH({{1}}) = 0 THEN 0 ELSE (LENGTH({text}) - LENGTH(REPLACE({text}, {{1}}, ''))) // LENGTH({{1}}) END"


# multi_search_<what>(haystack, [needles]): per needle, its first place (all_positions); the
# smallest place any needle has (first_position); the index of the first needle found
# (first_index); whether one is found (any). 0 or false when none is.
def _places(utf8: bool) -> str:
    place = "STRPOS({0}, __tp_needle)"
    return f"LIST_TRANSFORM({{1}}, lambda __tp_needle: {place if utf8 else _in_bytes(place, '{3}')})"


_FOUND = "LIST_TRANSFORM({1}, lambda __tp_needle: CONTAINS({0}, __tp_needle))"
_SEARCHES: dict[str, tuple[Callable[[bool], str], str]] = {
    "position": (_position_sql, INT),
    "count_substrings": (_count_sql, INT),
    "multi_search_all_positions": (_places, ARRAY),
    "multi_search_first_position": (
        lambda utf8: f"COALESCE(LIST_MIN(LIST_FILTER({_places(utf8)}, lambda __tp_at: __tp_at > 0)), 0)", INT),
    "multi_search_first_index": (lambda utf8: f"COALESCE(LIST_POSITION({_FOUND}, TRUE), 0)", INT),
    "multi_search_any": (lambda utf8: f"COALESCE(LIST_BOOL_OR({_FOUND}), FALSE)", BOOL),
}
for _name, (_sql, _kind) in _SEARCHES.items():
    _args = (2, 3) if _name in ("position", "count_substrings") else (2, 2)
    for _suffix, _folding in (("", False), ("_case_insensitive", True)):
        register(f"{_name}{_suffix}", _search(_sql, _folding, False), *_args, returns=_kind)
        if _name != "count_substrings" or _folding:  # Proton has no count_substrings_utf8
            register(f"{_name}{_suffix}_utf8", _search(_sql, _folding, True), *_args, returns=_kind)


# --- padding ------------------------------------------------------------------------------------
def _pad(duck: str) -> Builder:
    """left_pad/right_pad(text, length[, fill = ' ']): the text cut or padded to ``length`` characters."""

    def build(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
        padding = args[2] if len(args) > 2 else exp.Literal.string(" ")
        return fill(f"{duck}({{0}}, {_PAD_LENGTH}, {{2}})", [args[0], args[1], padding])

    return build


register("left_pad left_pad_utf8", _pad("LPAD"), 2, 3, returns=STRING)
register("right_pad right_pad_utf8", _pad("RPAD"), 2, 3, returns=STRING)


# --- encodings ----------------------------------------------------------------------------------
# Text in DuckDB is always valid UTF-8 (a '\xFF' escape in a literal reads as the character ÿ).
register("is_valid_utf8", "CASE WHEN {0} IS NULL THEN NULL ELSE CAST(1 AS UTINYINT) END", 1, returns=INT)  # a uint8
register("to_valid_utf8", "{0}", 1, returns=STRING)

# Bytes an integer of each DuckDB type has: hex/bin of a negative integer print all of them.
_INT_BYTES = ("CASE TYPEOF({0}) WHEN 'TINYINT' THEN 1 WHEN 'SMALLINT' THEN 2 WHEN 'INTEGER' THEN 4 "
              "WHEN 'BIGINT' THEN 8 WHEN 'HUGEINT' THEN 16 ELSE 8 END")


_NIBBLES = "[" + ", ".join(f"'{i:04b}'" for i in range(16)) + "]"


def _digits(duck: str, per_byte: int) -> Builder:
    """hex/bin: of text, its bytes; of an integer, its two's complement in whole bytes without the
    leading zero bytes (a negative number keeps all the bytes of its type: hex(to_int16(-100)) = FF9C)."""

    def build(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
        if kinds[0] == BINARY and duck == "BIN":  # DuckDB's BIN takes no bytes: each hex digit as 4 bits
            return fill(f"ARRAY_TO_STRING(LIST_TRANSFORM(STRING_SPLIT(HEX({{0}}), ''), lambda __tp_h: "
                        f"{_NIBBLES}[STRPOS('0123456789ABCDEF', __tp_h)]), '')", args)
        if kinds[0] not in (INT, BOOL):
            return fill(f"{duck}({{0}})", args)
        value = fill("CAST({0} AS TINYINT)", args) if kinds[0] == BOOL else args[0]
        digits = fill(f"{duck}({{0}})", [value])
        return fill(f"CASE WHEN {{0}} < 0 THEN RIGHT({{1}}, {_INT_BYTES} * {per_byte}) "
                    f"ELSE LPAD({{1}}, CAST(CEIL(LENGTH({{1}}) / {per_byte}) * {per_byte} AS INTEGER), '0') END",
                    [value, digits])

    return build


register("hex", _digits("HEX", 2), 1, returns=STRING)
register("bin", _digits("BIN", 8), 1, returns=STRING)
register("unbin", "DECODE(UNBIN({0}))", 1, returns=STRING)


# --- extract_text_from_html -----------------------------------------------------------------------
# The parts of HTML in document order: CDATA sections, comments, <script>/<style> elements (CDATA
# inside them skipped whole; unclosed ones run to the end), other tags (an unclosed one too), text.
_SKIPPED_BODY = r"(?:<!\[CDATA\[(?s:.*?)\]\]>|(?s:.))*?"
_HTML_PARTS = "|".join([
    r"<!\[CDATA\[(?s:.*?)(?:\]\]>|$)",
    r"<!--(?s:.*?)-->",
    *(rf"<(?i:{name})(?:\s[^>]*)?>{_SKIPPED_BODY}(?:</(?i:{name})\s*>|$)" for name in ("script", "style")),
    r"<[^>]*>?",
    r"[^<]+",
])
# Each part as text with markers: \x01 a place where words are separated (a tag, a run of
# whitespace), \x02 … \x03 a CDATA section's text, kept as it is.
_HTML_PART_TEXT = (r"CASE WHEN STARTS_WITH(__tp_part, '<![CDATA[') THEN CHR(2) || REGEXP_REPLACE(SUBSTRING(__tp_part, 10), "
                   r"'\]\]>$', '') || CHR(3) || CHR(1) WHEN STARTS_WITH(__tp_part, '<') THEN CHR(1) "
                   r"ELSE REGEXP_REPLACE(__tp_part, '\s+', CHR(1), 'g') END")
# A separation before a CDATA section, at either end, or after whitespace vanishes; others are a space.
_HTML_TEXT = ("TRIM(REGEXP_REPLACE(REGEXP_REPLACE(REGEXP_REPLACE(REGEXP_REPLACE(ARRAY_TO_STRING(LIST_TRANSFORM("
              "REGEXP_EXTRACT_ALL({0}, {1}), lambda __tp_part: " + _HTML_PART_TEXT + "), ''), "
              r"'\x01+\x02', '', 'g'), '[\x02\x03]', '', 'g'), '(^|\s)\x01+|\x01+$', '\1', 'g'), '\x01+', ' ', 'g'), "
              "CHR(1))")


def _extract_text_from_html(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    """The text of HTML: tags, comments, scripts and styles dropped (a space where they separated
    words), whitespace runs as one space, CDATA sections as they are."""
    return fill(_HTML_TEXT, [args[0], exp.Literal.string(_HTML_PARTS)])


register("extract_text_from_html", _extract_text_from_html, 1, returns=STRING)


# --- regex groups ----------------------------------------------------------------------------------
def _groups(args: list[exp.Expression], name: str) -> list[exp.Expression]:
    """Per capture group of the literal pattern, every match's text of it (Proton refuses a
    pattern without groups)."""
    pattern = literal_text(args[1], f"{name}'s pattern")
    count = len(re.findall(r"(?<!\\)\((?!\?)", pattern))
    if count == 0:
        raise error(f"{name}: the pattern has no capture group", args[1])
    return [fill(f"REGEXP_EXTRACT_ALL({{0}}, {{1}}, {i})", args) for i in range(1, count + 1)]


def _groups_horizontal(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    return exp.Array(expressions=_groups(args, "extract_all_groups_horizontal"))  # per group, its matches


def _groups_vertical(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    groups = _groups(args, function_name(node))  # per match, its groups
    row = exp.Array(expressions=[fill("{0}[__tp_match]", [g]) for g in groups])
    return fill("LIST_TRANSFORM(RANGE(1, LEN({0}) + 1), lambda __tp_match: {1})", [groups[0], row])


register("extract_all_groups_horizontal", _groups_horizontal, 2, returns=ARRAY)
# As in Proton's source, extract_all_groups is the vertical form (its docs show the horizontal one).
register("extract_all_groups_vertical extract_all_groups", _groups_vertical, 2, returns=ARRAY)


# --- base58 (Bitcoin's alphabet) ---------------------------------------------------------------------
# A number in base b is a little-endian list of digits. Multiplying by the other base and adding the
# next digit carries through the list (one list_reduce per digit taken in); each leading zero byte
# (or '1') stands for itself.
_BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _base_change(digits: str, source: int, target: int) -> str:
    """SQL for the list ``digits`` (SQL; most significant first) in base ``source`` as a little-endian
    list in base ``target`` (< 256, source ≤ 256: a carry ends as at most 3 digits)."""
    carry = (f"LIST_REDUCE(__tp_acc, lambda __tp_c, __tp_d: LIST_SLICE(__tp_c, 1, LEN(__tp_c) - 1) || "
             f"[(__tp_d * {source} + __tp_c[-1]) % {target}, (__tp_d * {source} + __tp_c[-1]) // {target}], [__tp_in])")
    spread = (f"LIST_TRANSFORM([{carry}], lambda __tp_r: LIST_SLICE(__tp_r, 1, LEN(__tp_r) - 1) || "
              f"[__tp_r[-1] % {target}, __tp_r[-1] // {target} % {target}, __tp_r[-1] // {target * target}])[1]")
    return f"LIST_REDUCE({digits}, lambda __tp_acc, __tp_in: {spread}, CAST([] AS INTEGER[]))"


_BYTES = "LIST_TRANSFORM(RANGE(0, LEN(HEX({0})) // 2), lambda __tp_i: CAST('0x' || SUBSTRING(HEX({0}), 2 * __tp_i + 1, 2) AS INTEGER))"
_LEADING_ZERO_BYTES = "(LENGTH(HEX({0})) - LENGTH(LTRIM(HEX({0}), '0'))) // 2"
register("base58_encode",
         f"REPEAT('1', {_LEADING_ZERO_BYTES}) || LTRIM(ARRAY_TO_STRING(LIST_REVERSE(LIST_TRANSFORM("
         f"{_base_change(_BYTES, 256, 58)}, lambda __tp_x: SUBSTRING('{_BASE58_ALPHABET}', __tp_x + 1, 1))), ''), '1')",
         1, returns=STRING)
_BASE58_DIGITS = (f"LIST_TRANSFORM(STRING_SPLIT({{0}}, ''), lambda __tp_ch: "
                  f"CASE WHEN STRPOS('{_BASE58_ALPHABET}', __tp_ch) = 0 THEN ERROR('base58_decode: ' || {{0}} "
                  f"|| ' is not base58') ELSE STRPOS('{_BASE58_ALPHABET}', __tp_ch) - 1 END)")
# The bytes, most significant first, without the zeros above the highest digit.
_DECODED = f"LIST_REVERSE({_base_change(_BASE58_DIGITS, 58, 256)})"
_SIGNIFICANT = ("LIST_TRANSFORM([" + _DECODED + "], lambda __tp_b: LIST_SLICE(__tp_b, COALESCE(LIST_POSITION("
                "LIST_TRANSFORM(__tp_b, lambda __tp_x: __tp_x <> 0), TRUE), LEN(__tp_b) + 1), LEN(__tp_b)))[1]")
register("base58_decode",
         f"DECODE(UNHEX(REPEAT('00', LENGTH({{0}}) - LENGTH(LTRIM({{0}}, '1'))) || ARRAY_TO_STRING("
         f"LIST_TRANSFORM({_SIGNIFICANT}, lambda __tp_x: PRINTF('%02X', __tp_x)), '')))",
         1, returns=STRING)


# --- bits -------------------------------------------------------------------------------------------
def _bit_slice(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    """bit_slice(s, offset[, length]): the bits of s from the 1-based bit ``offset`` (negative: from
    the end) on, ``length`` of them (negative: all but that many at the end; none given: all),
    as bytes padded with zero bits."""
    bits = "BIN({0})"
    start = f"CASE WHEN {{1}} > 0 THEN {{1}} WHEN {{1}} < 0 THEN GREATEST(LENGTH({bits}) + {{1}} + 1, 1) ELSE 1 END"
    end = (f"LEAST(CASE WHEN {{2}} >= 0 THEN ({start}) + {{2}} ELSE LENGTH({bits}) + {{2}} + 1 END, LENGTH({bits}) + 1)"
           if len(args) > 2 else f"LENGTH({bits}) + 1")
    piece = f"SUBSTRING({bits}, {start}, GREATEST({end} - ({start}), 0))"
    padded = f"RPAD({piece}, CAST(CEIL(LENGTH({piece}) / 8) * 8 AS INTEGER), '0')"
    args = _whole_numbers(args)
    nulls = " OR ".join(f"{{{i}}} IS NULL" for i in range(1, len(args)))
    return fill(f"CASE WHEN {nulls} THEN NULL ELSE UNBIN({padded}) END", args)


register("bit_slice", _bit_slice, 2, 3, returns=BINARY)
