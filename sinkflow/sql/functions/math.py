"""Math functions.
"""

from __future__ import annotations

from sqlglot import exp

from sinkflow.sql.functions.kinds import BOOL, DECIMAL, FLOAT, INT
from sinkflow.sql.functions.registry import fill, register, same_args


register("abs", "ABS({0})", 1, returns=0)


def _round(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    # Timeplus rounds floats half to even (banker's rounding) and decimals half away from zero.
    duck = "ROUND" if kinds[0] in (DECIMAL, INT) else "ROUND_EVEN"
    digits = args[1] if len(args) > 1 else exp.Literal.number(0)
    return fill(f"{duck}({{0}}, {{1}})", [args[0], digits])


register("round", _round, 1, 2, returns=0)
register("floor", "FLOOR({0})", 1, returns=0)
register("ceil ceiling", "CEIL({0})", 1, returns=0)
register("sqrt", "SQRT({0})", 1, returns=FLOAT)
register("pow power", "POW({0}, {1})", 2, returns=FLOAT)
register("exp", "EXP({0})", 1, returns=FLOAT)
register("log ln", "LN({0})", 1, returns=FLOAT)
register("log2", "LOG2({0})", 1, returns=FLOAT)
register("log10", "LOG10({0})", 1, returns=FLOAT)
register("int_div", "({0} // {1})", 2, returns=INT)
register("greatest", same_args("GREATEST"), 2, None, returns=0)
register("least", same_args("LEAST"), 2, None, returns=0)
register("e", "EXP(1)", 0, returns=FLOAT)
register("pi", "PI()", 0, returns=FLOAT)
register("exp2", "POW(2, {0})", 1, returns=FLOAT)
register("exp10", "POW(10, {0})", 1, returns=FLOAT)
for _fn in ("cbrt", "sin", "cos", "tan", "asin", "acos", "atan", "degrees", "radians"):
    register(_fn, f"{_fn.upper()}(CAST({{0}} AS DOUBLE))", 1, returns=FLOAT)
register("sign", "SIGN({0})", 1, returns=INT)
register("is_finite", "ISFINITE(CAST({0} AS DOUBLE))", 1, returns=BOOL)
register("is_infinite", "ISINF(CAST({0} AS DOUBLE))", 1, returns=BOOL)
register("is_nan", "ISNAN(CAST({0} AS DOUBLE))", 1, returns=BOOL)
# xor of values taken as booleans (non-zero is true), as Timeplus does.
register("xor", "(CAST({0} AS BOOLEAN) <> CAST({1} AS BOOLEAN))", 2, returns=BOOL)

register("lgamma", "LGAMMA(CAST({0} AS DOUBLE))", 1, returns=FLOAT)
register("tgamma", "GAMMA(CAST({0} AS DOUBLE))", 1, returns=FLOAT)
register("atan2", "ATAN2(CAST({0} AS DOUBLE), CAST({1} AS DOUBLE))", 2, returns=FLOAT)
register("gcd", "GCD({0}, {1})", 2, returns=INT)
register("lcm", "LCM({0}, {1})", 2, returns=INT)
register("modulo", "({0} % {1})", 2, returns=0)
register("negate", "(-{0})", 1, returns=0)
register("trunc truncate", "TRUNC({0})", 1, returns=0)
register("positive_modulo pmod", "((({0} % {1}) + {1}) % {1})", 2, returns=0)
register("round_to_exp2", "CASE WHEN {0} < 1 THEN 0 ELSE CAST(POW(2, FLOOR(LOG2({0}))) AS BIGINT) END", 1,
         returns=INT)
register("intdiv_or_zero int_div_or_zero", "CASE WHEN {1} = 0 THEN 0 ELSE {0} // {1} END", 2, returns=INT)
register("modulo_or_zero", "CASE WHEN {1} = 0 THEN 0 ELSE {0} % {1} END", 2, returns=0)
register("cosh", "COSH(CAST({0} AS DOUBLE))", 1, returns=FLOAT)
register("sinh", "SINH(CAST({0} AS DOUBLE))", 1, returns=FLOAT)
register("tanh", "TANH(CAST({0} AS DOUBLE))", 1, returns=FLOAT)
register("hypot", "SQRT(POW(CAST({0} AS DOUBLE), 2) + POW(CAST({1} AS DOUBLE), 2))", 2, returns=FLOAT)
register("log1p", "LN(1 + CAST({0} AS DOUBLE))", 1, returns=FLOAT)
register("factorial", "FACTORIAL(CAST({0} AS INTEGER))", 1, returns=INT)

# if_not_finite(x, y): x unless it is inf, -inf or nan (or NULL).
register("if_not_finite", "CASE WHEN ISFINITE(CAST({0} AS DOUBLE)) THEN {0} ELSE {1} END", 2, returns=0)
# round_age(years): the lower bound of the age band (0, 17, 18, 25, 35, 45 or 55) a number falls in.
register("round_age", "CAST(CASE WHEN {0} < 1 THEN 0 WHEN {0} < 18 THEN 17 WHEN {0} < 25 THEN 18 WHEN {0} < 35 "
         "THEN 25 WHEN {0} < 45 THEN 35 WHEN {0} < 55 THEN 45 ELSE 55 END AS UTINYINT)", 1, returns=INT)
