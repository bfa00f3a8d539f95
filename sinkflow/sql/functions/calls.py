"""Function-call nodes → the Timeplus name and arguments, and the error for an unknown function.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable

from sqlglot import exp

from sinkflow.errors import SqlError
from sinkflow.sql.aggregates import AGGREGATES
from sinkflow.sql.functions.registry import FUNCTIONS, error
from sinkflow.sql.parse import DIALECT


def _keys(*keys: str) -> Callable[[exp.Expression], list[exp.Expression]]:
    def extract(node: exp.Expression) -> list[exp.Expression]:
        out: list[exp.Expression] = []
        for key in keys:
            value = node.args.get(key)
            if isinstance(value, list):
                out.extend(value)
            elif value is not None:
                out.append(value)
        return out

    return extract


def _pad_name(node: exp.Expression) -> str:
    return "lpad" if node.args.get("is_left") else "rpad"


def _trim_name(node: exp.Expression) -> str:
    # ltrim/rtrim and trim(BOTH 'x' FROM s) come out as Trim with a position or characters.
    if node.args.get("expression"):
        return "trim_with_options"
    position = str(node.args.get("position") or "").upper()
    return {"": "trim", "LEADING": "ltrim", "TRAILING": "rtrim"}.get(position, "trim_with_options")


def _sha_name(node: exp.Expression) -> str:
    length = node.args.get("length")
    return "sha256" if length is None or length.name == "256" else f"sha{length.name}"


def _log_name(node: exp.Expression) -> str:
    # log2(x) / log10(x) come out as Log(this=<base>, expression=x).
    base = node.this.name if isinstance(node.this, exp.Literal) else ""
    return {"2": "log2", "10": "log10"}.get(base, "log_with_base")


def _date_shift_args(node: exp.Expression) -> list[exp.Expression]:
    unit = node.args.get("unit")
    if unit is None:  # date_add(t, INTERVAL 1 MINUTE)
        return [node.this, node.expression]
    return [unit, node.expression, node.this]


def _json_extract_args(node: exp.Expression) -> list[exp.Expression]:
    # json_extract(doc, key…, 'type'): sqlglot reads the first key as a JSONPath; take it back.
    path = node.expression
    steps = [s for s in path.expressions if not isinstance(s, exp.JSONPathRoot)] if isinstance(path, exp.JSONPath) else []
    if len(steps) == 1 and isinstance(steps[0], exp.JSONPathKey):
        first: exp.Expression = exp.Literal.string(str(steps[0].this))
    elif len(steps) == 1 and isinstance(steps[0], exp.JSONPathSubscript):
        index = int(steps[0].this)
        first = exp.Literal.number(index) if index >= 0 else exp.Neg(this=exp.Literal.number(-index))
    else:
        first = path
    return [node.this, first, *node.expressions]


def _count_args(node: exp.Expression) -> list[exp.Expression]:
    this = node.this
    if this is None or isinstance(this, exp.Star):
        return []
    if isinstance(this, exp.Distinct):
        return list(this.expressions)
    return [this]


def _count_name(node: exp.Expression) -> str:
    return "count_distinct" if isinstance(node.this, exp.Distinct) else "count"


# Every typed node sqlglot's ClickHouse parser produces for a function this module maps, with the
# Timeplus name it stands for. A typed node not listed here is refused, never passed through.
_TYPED: dict[type[exp.Expression], tuple[str | Callable[[exp.Expression], str], Callable[[exp.Expression], list]]] = {
    exp.Length: ("length", _keys("this")),
    exp.Lower: ("lower", _keys("this")),
    exp.Upper: ("upper", _keys("this")),
    exp.Concat: ("concat", _keys("expressions")),
    exp.Substring: ("substring", _keys("this", "start", "length")),
    exp.StrPosition: ("position", _keys("this", "substr", "position")),
    exp.StartsWith: ("starts_with", _keys("this", "expression")),
    exp.RegexpLike: ("match", _keys("this", "expression")),
    exp.EndsWith: ("ends_with", _keys("this", "expression")),
    exp.StringToArray: ("split_by_string", _keys("this", "expression")),
    exp.Trim: (_trim_name, _keys("this")),
    exp.SHA2: (_sha_name, _keys("this")),
    exp.Quarter: ("quarter", _keys("this")),
    exp.ArraySum: ("array_sum", _keys("this")),
    exp.ArrayMin: ("array_min", _keys("this")),
    exp.ArrayMax: ("array_max", _keys("this")),
    exp.Reverse: ("reverse", _keys("this")),
    exp.Pad: (_pad_name, _keys("this", "expression", "fill_pattern")),
    exp.Replace: ("replace", _keys("this", "expression", "replacement")),
    exp.Format: ("format", _keys("this", "expressions")),
    exp.Hex: ("hex", _keys("this")),
    # sqlglot reads lower(hex(x)) as one node: the lower() of the hex() of x.
    exp.LowerHex: ("lower", lambda node: [exp.Hex(this=node.this)]),
    exp.MD5Digest: ("md5", _keys("this")),
    exp.Round: ("round", _keys("this", "decimals")),
    exp.Pow: ("pow", _keys("this", "expression")),
    exp.Ln: ("log", _keys("this")),
    exp.Log: (_log_name, _keys("expression")),
    exp.Abs: ("abs", _keys("this")),
    exp.Exp: ("exp", _keys("this")),
    exp.Ceil: ("ceil", _keys("this", "decimals")),
    exp.Floor: ("floor", _keys("this", "decimals")),
    exp.Sqrt: ("sqrt", _keys("this")),
    exp.Greatest: ("greatest", _keys("this", "expressions")),
    exp.Least: ("least", _keys("this", "expressions")),
    exp.Rand: ("rand", _keys()),
    exp.Coalesce: ("coalesce", _keys("this", "expressions")),
    exp.Nullif: ("nullif", _keys("this", "expression")),
    exp.If: ("if", _keys("this", "true", "false")),
    exp.ArrayContains: ("has", _keys("this", "expression")),
    exp.ArraySum: ("array_sum", _keys("this", "expression")),
    exp.ArrayAll: ("array_all", _keys("this", "expression")),
    exp.ArrayConcat: ("array_concat", _keys("this", "expressions")),
    exp.ArraySlice: ("array_slice", _keys("this", "start", "end")),  # "end" is Timeplus's length
    exp.ArraySort: ("array_sort", _keys("this")),
    exp.ArrayReverse: ("array_reverse", _keys("this")),
    exp.ArrayDistinct: ("array_distinct", _keys("this")),
    exp.Base64Encode: ("base64_encode", _keys("this")),
    exp.Uuid: ("uuid", _keys()),
    exp.Sign: ("sign", _keys("this")),
    exp.IsNan: ("is_nan", _keys("this")),
    exp.Pi: ("pi", _keys()),
    exp.Cbrt: ("cbrt", _keys("this")),
    exp.Sin: ("sin", _keys("this")),
    exp.Cos: ("cos", _keys("this")),
    exp.Tan: ("tan", _keys("this")),
    exp.Asin: ("asin", _keys("this")),
    exp.Acos: ("acos", _keys("this")),
    exp.Atan: ("atan", _keys("this")),
    exp.Degrees: ("degrees", _keys("this")),
    exp.Radians: ("radians", _keys("this")),
    exp.Xor: ("xor", _keys("this", "expression")),
    exp.DateTrunc: ("date_trunc", _keys("unit", "this")),
    exp.Transform: ("array_map", lambda n: [n.expression, n.this]),
    exp.ArrayFilter: ("array_filter", _keys("this", "expression")),
    # date_diff('unit', a, b) is DateDiff(this=b, expression=a); date_add('unit', n, t) is DateAdd(this=t, expression=n)
    exp.DateDiff: ("date_diff", lambda n: [n.args["unit"], n.expression, n.this]),
    exp.DateAdd: ("date_add", _date_shift_args),
    exp.DateSub: ("date_sub", _date_shift_args),
    # toStartOfMinute(t) and its twins (unit SECOND … YEAR)
    exp.TimestampTrunc: (lambda n: f"to_start_of_{n.args['unit'].name.lower()}", _keys("this")),
    exp.Year: ("year", _keys("this")),
    exp.DayOfYear: ("day_of_year", _keys("this")),
    exp.DayOfWeek: ("day_of_week", _keys("this")),  # Monday is 1, from day_of_week or toDayOfWeek
    exp.Month: ("month", _keys("this")),
    exp.Day: ("day", _keys("this")),
    exp.Hour: ("hour", _keys("this")),
    exp.Minute: ("minute", _keys("this")),
    exp.Second: ("second", _keys("this")),
    exp.Count: (_count_name, _count_args),
    exp.CountIf: ("count_if", _keys("this")),
    exp.Sum: ("sum", _keys("this")),
    exp.Avg: ("avg", _keys("this")),
    exp.Min: ("min", _keys("this")),
    exp.Max: ("max", _keys("this")),
    exp.AnyValue: ("any", _keys("this")),
    exp.ArgMin: ("arg_min", _keys("this", "expression")),
    exp.ArgMax: ("arg_max", _keys("this", "expression")),
    exp.Quantile: ("quantile", _keys("this", "quantile")),
    exp.ApproxDistinct: ("unique", _keys("this", "accuracy")),  # uniq(a, b) is read as ApproxDistinct(a, b)
    exp.JSONExtract: ("json_extract", _json_extract_args),
    exp.Variance: ("var_samp", _keys("this")),
    exp.VariancePop: ("var_pop", _keys("this")),
    exp.Stddev: ("stddev_samp", _keys("this")),
    exp.StddevSamp: ("stddev_samp", _keys("this")),
    exp.StddevPop: ("stddev_pop", _keys("this")),
}


# Operators sqlglot 30 types as functions: AND and OR mean the same in DuckDB (xor() is mapped).
OPERATORS = (exp.And, exp.Or, exp.Array, exp.Extract, exp.Distinct)


def call_of(node: exp.Expression) -> tuple[str, list[exp.Expression]] | None:
    """The Timeplus function name and arguments of a function-call node, None if it is no call.

    A typed node sqlglot made of a name this package maps (``parse_datetime`` read as
    ``StrToTime``) is taken by the name the user wrote, its arguments in sqlglot's order."""
    if isinstance(node, (exp.Anonymous, exp.AnonymousAggFunc)):
        return node.name.lower(), list(node.expressions)
    typed = _TYPED.get(type(node))
    written = written_name(node)
    if typed is not None:
        name, extract = typed
        mapped = name if isinstance(name, str) else name(node)
        # An alias the user wrote (substr for substring) names the call in errors.
        alias = written.lower() if written is not None else mapped
        same = (alias in FUNCTIONS and FUNCTIONS.get(alias) == FUNCTIONS.get(mapped)) or (
            alias in AGGREGATES and AGGREGATES.get(alias) is AGGREGATES.get(mapped))
        return (alias if same else mapped), extract(node)
    if isinstance(node, exp.Func) and written is not None and written.lower() in FUNCTIONS:
        args: list[exp.Expression] = []
        for value in node.args.values():
            args.extend(v for v in (value if isinstance(value, list) else [value]) if isinstance(v, exp.Expression))
        return written.lower(), args
    return None


def written_name(node: exp.Expression) -> str | None:
    """The function name as the user wrote it, when the parser recorded it."""
    written = node.meta.get("written") if node._meta else None  # noqa: SLF001 - don't create empty metas
    return written if isinstance(written, str) else None


def function_name(node: exp.Expression) -> str:
    """The Timeplus name of a function-call node, else as written (or as sqlglot spells it in ClickHouse)."""
    call = call_of(node)
    if call is not None:
        return call[0]
    written = written_name(node)
    if written is not None:
        return written
    text = node.sql(dialect=DIALECT)
    return text.split("(", 1)[0] if "(" in text else type(node).__name__


def unknown_function(node: exp.Expression) -> SqlError:
    """The error for a function call that is not mapped, naming it as written, with Timeplus's
    spelling of a ClickHouse name (``toDateTime`` → ``to_datetime``) or the closest known name."""
    written = written_name(node) or (node.name if isinstance(node, (exp.Anonymous, exp.AnonymousAggFunc))
                                     else function_name(node))
    known = supported_functions()
    squashed = written.replace("_", "").lower()
    twin = next((n for n in known if n.replace("_", "") == squashed), None)
    if twin and twin != written.lower():
        return error(f"unknown function '{written}' (Timeplus spells it {twin})", node)
    close = difflib.get_close_matches(written.lower(), known, n=1, cutoff=0.75)
    hint = f" — did you mean '{close[0]}'?" if close and close[0] != written.lower() else ""
    return error(f"unknown function '{written}'{hint}", node)


def check_functions(tree: exp.Expression, allowed: Iterable[str] = ()) -> None:
    """Raise the :func:`unknown_function` error of the first call in ``tree`` (in text order) that
    this package does not map, so it is reported before any other check of the query. Calls inside
    table sources (``tumble(…)`` in FROM) and the names in ``allowed`` (the planner's own, such as
    ``emit_version``) are not checked. Raises :class:`SqlError` at the call."""
    extra = {name.lower() for name in allowed}
    for node in tree.walk():
        if (not isinstance(node, exp.Func) or isinstance(node, OPERATORS) or node.find_ancestor(exp.Table)
                or isinstance(node.parent, exp.Window)):  # OVER (…) is the planner's to refuse
            continue
        call = call_of(node)
        name = call[0] if call is not None else (written_name(node) or "").lower()
        if name in extra or (call is not None and (name in FUNCTIONS or name in AGGREGATES)):
            continue
        if isinstance(node, (exp.Case, exp.Cast, exp.CastToStrType, exp.Bracket)) or (
                isinstance(node, exp.If) and node.arg_key == "ifs"):
            continue
        raise unknown_function(node)


def supported_functions() -> list[str]:
    """Every Timeplus function name :func:`to_duckdb` maps (scalar and aggregate), sorted."""
    return sorted(set(FUNCTIONS) | set(AGGREGATES))
