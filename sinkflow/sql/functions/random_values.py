"""Random values: ``rand``, ``rand64``, ``rand_uniform``, ``rand_normal``, ``rand_log_normal``,
``random_printable_ascii``, ``random_string``, ``random_fixed_string`` (evaluated per row)."""

from __future__ import annotations

from sinkflow.sql.functions.kinds import FLOAT, INT, STRING
from sinkflow.sql.functions.registry import register

# rand() is a random UInt32 in Timeplus, not a float in [0, 1).
register("rand rand32", "CAST(FLOOR(RANDOM() * 4294967296) AS UINTEGER)", 0, 1, returns=INT)
register("rand64", "CAST(FLOOR(RANDOM() * 4294967296) AS UBIGINT) * 4294967296 "
                   "+ CAST(FLOOR(RANDOM() * 4294967296) AS UBIGINT)", 0, 1, returns=INT)
register("rand_uniform", "({0} + RANDOM() * ({1} - {0}))", 2, returns=FLOAT)
# Box-Muller: a standard normal value from two uniform ones.
_NORMAL = "(SQRT(-2 * LN(1 - RANDOM())) * COS(2 * PI() * RANDOM()))"
register("rand_normal", f"({{0}} + {{1}} * {_NORMAL})", 2, returns=FLOAT)
register("rand_log_normal", f"EXP({{0}} + {{1}} * {_NORMAL})", 2, returns=FLOAT)
# Printable ASCII (33..126) for all three: random_string's arbitrary bytes would not be valid text here.
_CHARS = "ARRAY_TO_STRING(LIST_TRANSFORM(RANGE(CAST({0} AS BIGINT)), lambda __tp_i: CHR(CAST(33 + FLOOR(RANDOM() * 94) AS INTEGER))), '')"
register("random_printable_ascii random_string random_fixed_string", _CHARS, 1, returns=STRING)
