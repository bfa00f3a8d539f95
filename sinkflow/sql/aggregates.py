"""Timeplus aggregate functions, decomposed so the engine can compute them incrementally.

Every supported aggregate is split into three DuckDB steps (see DESIGN.md, "Incremental
aggregation"): *partial* aggregates computed over a chunk of input rows per group, a *merge* of
partial rows of the same group (associative, so chunks can be folded in any grouping), and a
*final* expression over the merged partials. ``reference`` is the one-shot DuckDB aggregate the
result must equal; the engine takes the output type from it.

Templates use ``{a0}``/``{a1}`` for argument columns, ``{t}`` for the event time in microseconds,
``{s}`` for the row's log sequence number (ties are broken by arrival order, so results are
deterministic), ``{p0}``/``{p1}`` for partial columns, and ``{sum}`` for the summing aggregate:
``fsum`` (compensated) over floating-point values, whose plain sums would differ in the last bits
with DuckDB's parallelism and with how rows were grouped into steps, ``sum`` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from sinkflow.sql.parse import QUANTILE_ALIAS


@dataclass(frozen=True)
class Decomposition:
    """Partial, merge and final DuckDB SQL templates of one aggregate (see the module docstring)."""

    partials: tuple[str, ...]
    merges: tuple[str, ...]
    final: str
    reference: str


def _arg_extreme(fn: str, key: str, guard: str) -> Decomposition:
    """``fn`` is arg_min or arg_max; the partial keeps the winning value and its key."""
    best = "min" if fn == "arg_min" else "max"
    flt = f" FILTER (WHERE {guard} IS NOT NULL)"
    return Decomposition(
        partials=(f"{fn}({{a0}}, {key}){flt}", f"{best}({key}){flt}"),
        merges=(f"{fn}({{p0}}, {{p1}})", f"{best}({{p1}})"),
        final="{p0}",
        reference=f"{fn}({{a0}}, {key}){flt}",
    )


def _simple(fn: str, reference: str) -> Decomposition:
    """An aggregate that merges with itself (sum, min, max)."""
    return Decomposition((f"{fn}({{a0}})",), (f"{fn}({{p0}})",), "{p0}", f"{reference}({{a0}})")


def _counting(fn: str) -> Decomposition:
    """A count: partial counts are summed (kept 64-bit)."""
    return Decomposition((fn,), ("sum({p0})::BIGINT",), "coalesce({p0}, 0)", fn)


def _quantile(level: float) -> Decomposition:
    # Quantiles are not decomposable: the partial keeps the values (DESIGN: "need the raw rows").
    return Decomposition(
        partials=("list({a0}) FILTER (WHERE {a0} IS NOT NULL)",),
        merges=("flatten(list({p0}))",),
        final=f"list_aggregate({{p0}}, 'quantile_cont', {level!r})",
        reference=f"quantile_cont({{a0}}, {level!r})",
    )


_DISTINCT = Decomposition(
    partials=("list(DISTINCT {a0}) FILTER (WHERE {a0} IS NOT NULL)",),
    merges=("list_distinct(flatten(list({p0})))",),
    final="coalesce(len({p0}), 0)",
    reference="count(DISTINCT {a0})",
)

_FIXED: dict[str, Decomposition] = {
    "count_star": _counting("count(*)"),
    "count": _counting("count({a0})"),
    "count_if": _counting("count_if({a0})"),
    "sum": _simple("{sum}", "sum"),
    "min": _simple("min", "min"),
    "max": _simple("max", "max"),
    "avg": Decomposition(
        ("{sum}({a0})", "count({a0})"), ("{sum}({p0})", "sum({p1})::BIGINT"), "{p0} / NULLIF({p1}, 0)", "avg({a0})"
    ),
    "any": _arg_extreme("arg_min", "{s}", "{a0}"),
    "earliest": _arg_extreme("arg_min", "{{'t': {t}, 's': {s}}}", "{a0}"),
    "latest": _arg_extreme("arg_max", "{{'t': {t}, 's': -{s}}}", "{a0}"),
    "count_distinct": _DISTINCT,
}
_ARG_BY = {
    "arg_min": _arg_extreme("arg_min", "{{'v': {a1}, 's': {s}}}", "{a1}"),
    "arg_max": _arg_extreme("arg_max", "{{'v': {a1}, 's': -{s}}}", "{a1}"),
}

# Timeplus/ClickHouse spellings → the canonical names above.
_ALIASES = {
    "anyvalue": "any",
    "any_value": "any",
    "argmin": "arg_min",
    "argmax": "arg_max",
    "min_by": "arg_min",
    "max_by": "arg_max",
    "uniq": "count_distinct",
    "unique": "count_distinct",
    "unique_exact": "count_distinct",
    "uniq_exact": "count_distinct",
    "uniqexact": "count_distinct",
    "approxdistinct": "count_distinct",
    "countdistinct": "count_distinct",
}
_PERCENTILE = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "median": 0.5}


@dataclass(frozen=True)
class AggregateCall:
    """One aggregate call found in a query: canonical ``name``, its argument expressions, its decomposition."""

    name: str
    args: tuple[exp.Expression, ...]
    decomposition: Decomposition


def function_name(node: exp.Expression) -> str:
    """The name a user wrote for a function call node (lower case)."""
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower()
    if isinstance(node, exp.CombinedAggFunc):
        return str(node.this).lower()
    name = node.meta.get("clickhouse_name") if node.meta else None
    return str(name or node.key).lower()


def is_aggregate(node: exp.Expression, extra_names: frozenset[str] = frozenset()) -> bool:
    """True for a call of an aggregate function (supported or not): sqlglot's or one named in ``extra_names``."""
    if isinstance(node, exp.AggFunc):
        return True
    if isinstance(node, exp.Anonymous):
        name = function_name(node)
        canon = _canonical(name)
        return name in extra_names or canon in _FIXED or canon in _ARG_BY or name in _PERCENTILE or name in ("quantile", QUANTILE_ALIAS)
    return False


def _canonical(name: str) -> str:
    return _ALIASES.get(name, name)


def _level(node: exp.Expression | None) -> float | None:
    if isinstance(node, exp.Literal) and not node.is_string:
        value = float(node.this)
        if 0.0 <= value <= 1.0:
            return value
    return None


def aggregate_call(node: exp.Expression) -> AggregateCall | str:
    """Decompose an aggregate call node; on failure return a message naming what is not supported."""
    name = function_name(node)
    if isinstance(node, exp.Count):
        inner = node.this
        if inner is None or isinstance(inner, exp.Star):
            return AggregateCall("count", (), _FIXED["count_star"])
        if isinstance(inner, exp.Distinct):
            if len(inner.expressions) != 1:
                return "count(DISTINCT …) with more than one expression is not supported"
            return AggregateCall("count_distinct", (inner.expressions[0],), _DISTINCT)
        return AggregateCall("count", (inner,), _FIXED["count"])
    if isinstance(node, exp.Quantile):
        level = _level(node.args.get("quantile"))
        if level is None:
            return "quantile needs a constant level between 0 and 1"
        return AggregateCall("quantile", (node.this,), _quantile(level))
    if isinstance(node, (exp.ArgMin, exp.ArgMax)):
        canon = "arg_min" if isinstance(node, exp.ArgMin) else "arg_max"
        return AggregateCall(canon, (node.this, node.expression), _ARG_BY[canon])
    if isinstance(node, exp.Anonymous) and name in ("quantile", QUANTILE_ALIAS):
        args = node.expressions
        level = _level(args[1]) if len(args) == 2 else None
        if level is None:
            return "quantile(column, level) needs a constant level between 0 and 1"
        return AggregateCall("quantile", (args[0],), _quantile(level))
    if name in _PERCENTILE or isinstance(node, exp.Median):
        args = [node.this] if not isinstance(node, exp.Anonymous) else list(node.expressions)
        if len(args) != 1:
            return f"{name}() takes one argument"
        return AggregateCall(name, (args[0],), _quantile(_PERCENTILE.get(name, 0.5)))
    canon = _canonical(name)
    if canon in _ARG_BY:
        args = list(node.expressions) if isinstance(node, exp.Anonymous) else [node.this, node.expression]
        if len(args) != 2:
            return f"{name}() takes two arguments"
        return AggregateCall(canon, tuple(args), _ARG_BY[canon])
    if canon in _FIXED:
        args = list(node.expressions) if isinstance(node, exp.Anonymous) else [a for a in [node.this] if a is not None]
        if isinstance(node, exp.AggFunc) and not isinstance(node, exp.Anonymous) and any(
            k not in ("this",) and v for k, v in node.args.items() if k != "big_int"
        ):
            return f"{name}() with these arguments is not supported"
        if len(args) != 1 or any(isinstance(a, (exp.Star, exp.Distinct)) for a in args):
            return f"{name}() takes one argument"
        return AggregateCall(canon, tuple(args), _FIXED[canon])
    return f"aggregate function {name}() is not supported in streaming queries"
