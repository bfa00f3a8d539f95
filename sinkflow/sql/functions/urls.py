"""URL and IP address functions: parts of a URL, URL encoding, IPv4 text ↔ number, address checks."""

from __future__ import annotations

from sinkflow.sql.functions.kinds import BOOL, INT, STRING
from sinkflow.sql.functions.registry import register

# scheme://[user@]host[:port][/path][?query][#fragment], as ClickHouse splits it ('' for a missing part).
_URL = r"^(?:([^:/?#]+):)?(?://(?:[^@/?#]*@)?([^:/?#]*)(?::(\d+))?)?([^?#]*)(?:\?([^#]*))?(?:#(.*))?$"


def _part(group: int) -> str:
    return f"REGEXP_EXTRACT({{0}}, '{_URL}', {group})"


register("protocol", _part(1), 1, returns=STRING)
register("domain", _part(2), 1, returns=STRING)
register("domain_without_www", f"REGEXP_REPLACE({_part(2)}, '^www\\.', '')", 1, returns=STRING)
register("top_level_domain", f"REGEXP_EXTRACT({_part(2)}, '\\.([^.]+)$', 1)", 1, returns=STRING)
register("port", f"COALESCE(TRY_CAST(NULLIF({_part(3)}, '') AS USMALLINT), 0)", 1, returns=INT)
register("path", _part(4), 1, returns=STRING)
register("path_full", f"{_part(4)} || CASE WHEN {_part(5)} <> '' THEN '?' || {_part(5)} ELSE '' END "
                      f"|| CASE WHEN {_part(6)} <> '' THEN '#' || {_part(6)} ELSE '' END", 1, returns=STRING)
register("query_string", _part(5), 1, returns=STRING)
register("fragment", _part(6), 1, returns=STRING)
register("extract_url_parameter", "COALESCE(REGEXP_EXTRACT({0}, '[?&]' || {1} || '=([^&#]*)', 1), '')", 2,
         returns=STRING)
register("decode_url_component", "URL_DECODE({0})", 1, returns=STRING)
register("encode_url_component", "URL_ENCODE({0})", 1, returns=STRING)

_OCTET = r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = rf"^{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}$"  # written out: "{3}" would read as a template placeholder
register("is_ipv4_string", f"REGEXP_FULL_MATCH({{0}}, '{_IPV4}')", 1, returns=BOOL)
# Eight groups of up to four hex digits, or fewer around one '::'.
register("is_ipv6_string", "COALESCE(REGEXP_FULL_MATCH({0}, '[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){2,7}') "
                           "AND LENGTH({0}) - LENGTH(REPLACE({0}, '::', '')) <= 2 "
                           "AND (CONTAINS({0}, '::') OR LEN(STRING_SPLIT({0}, ':')) = 8) "
                           "AND NOT CONTAINS({0}, ':::'), FALSE)", 1, returns=BOOL)
register("ipv4_num_to_string", "CAST(({0} >> 24) & 255 AS VARCHAR) || '.' || CAST(({0} >> 16) & 255 AS VARCHAR) || '.' "
                               "|| CAST(({0} >> 8) & 255 AS VARCHAR) || '.' || CAST({0} & 255 AS VARCHAR)",
         1, returns=STRING)
_OCTETS = "LIST_TRANSFORM(STRING_SPLIT({0}, '.'), lambda o: CAST(o AS UBIGINT))"
register("ipv4_string_to_num", f"CASE WHEN REGEXP_FULL_MATCH({{0}}, '{_IPV4}') THEN CAST("
                               f"{_OCTETS}[1] * 16777216 + {_OCTETS}[2] * 65536 + {_OCTETS}[3] * 256 + {_OCTETS}[4] "
                               "AS UINTEGER) ELSE 0 END", 1, returns=INT)
# An ipv4 value is its text here (see docs/streams.md): to_ipv4 checks it.
register("to_ipv4", f"CASE WHEN REGEXP_FULL_MATCH({{0}}, '{_IPV4}') THEN {{0}} "
                    "ELSE ERROR('cannot read ''' || {0} || ''' as an IPv4 address') END", 1, returns=STRING)
