"""Math functions.
"""

from __future__ import annotations

from sqlglot import exp

from sinkflow.sql.functions.kinds import BOOL, DECIMAL, FLOAT, INT
from sinkflow.sql.functions.calls import function_name
from sinkflow.sql.functions.registry import Builder, error, fill, literal_number, register, same_args


register("abs", "ABS({0})", 1, returns=0)


#: The scales Proton's rounding functions take (an Int16); others are refused as it refuses them.
_SCALES = range(-32768, 32768)


def _scale(args: list[exp.Expression], node: exp.Expression) -> int:
    """The constant number of decimal places of a rounding call (0 when not given)."""
    if len(args) < 2:
        return 0
    scale = literal_number(args[1], f"the scale of {function_name(node)}")
    if scale != int(scale) or int(scale) not in _SCALES:
        raise error(f"the scale of {function_name(node)} must be a whole number from -32768 to 32767, "
                    f"got {scale:g}", args[1])
    return int(scale)


def _rounding(mode: str) -> Builder:
    """round / round_bankers / floor / ceil / trunc to a constant scale (decimal places; negative
    rounds to tens, hundreds …), as Proton computes them: integers stay integers (unchanged by a
    scale >= 0) and decimals stay decimals, computed exactly; ``round`` of an integer or a decimal
    goes half away from zero, of a float half to even (``round_bankers`` always half to even);
    floats are scaled by a power of ten, made whole and scaled back."""

    def build(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
        scale = _scale(args, node)
        kind, value = kinds[0], args[0]
        if kind == INT and scale >= 0:
            return value.copy()
        exact = kind in (INT, DECIMAL)
        if mode == "round_bankers" or (mode == "round" and not exact):
            return fill("ROUND_EVEN({0}, {1})", [value, exp.Literal.number(scale)])
        if mode == "round":
            return fill("ROUND({0}, {1})", [value, exp.Literal.number(scale)])
        if scale == 0:
            return fill(f"{mode.upper()}({{0}})", [value])
        if exact:
            if -scale > 18:  # beyond 64 bits: every value rounds to 0 (Proton's would overflow)
                return fill("({0} * 0)", [value])
            step = str(10 ** -scale) if scale < 0 else f"0.{'0' * (scale - 1)}1"
            return fill(_EXACT_ROUNDING[mode], [value, exp.Literal.number(step)])
        factor = exp.Literal.number(repr(10.0 ** abs(scale)))
        scaled = f"{mode.upper()}({{0}} {'*' if scale > 0 else '/'} {{1}})"
        return fill(f"({scaled} {'/' if scale > 0 else '*'} {{1}})", [value, factor])

    return build


# Integers and decimals to a multiple of the step {1} (a power of ten); DuckDB's % truncates toward zero.
_EXACT_ROUNDING = {
    "floor": "({0} - (({0} % {1}) + {1}) % {1})",
    "ceil": "({0} + ({1} - {0} % {1}) % {1})",
    "trunc": "({0} - {0} % {1})",
}

for _mode, _names in (("round", "round"), ("round_bankers", "round_bankers"), ("floor", "floor"),
                      ("ceil", "ceil ceiling"), ("trunc", "trunc truncate")):
    register(_names, _rounding(_mode), 1, 2, returns=0)
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
register("positive_modulo pmod", "((({0} % {1}) + {1}) % {1})", 2, returns=0)
# An integer rounds down to a power of two (0 below 1); a float keeps its sign and exponent only.
register("round_to_exp2", lambda args, kinds, node: fill(
    "CASE WHEN {0} = 0 THEN {0} ELSE SIGN({0}) * POW(2, FLOOR(LOG2(ABS({0})))) END" if kinds[0] == FLOAT else
    "CASE WHEN {0} < 1 THEN 0 ELSE CAST(POW(2, FLOOR(LOG2({0}))) AS BIGINT) END", args), 1, returns=0)
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
