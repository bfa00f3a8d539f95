"""Timeplus aggregate functions: the one description of each, for the function map and the engine.

Each :class:`Aggregate` says how DuckDB computes it

* ``direct``: one-shot, over raw rows (:func:`sinkflow.sql.functions.to_duckdb` renders this);
* incrementally (the engine, see DESIGN.md "Incremental aggregation"): ``partials`` aggregate a
  chunk of rows per group into state columns, ``merges`` combine state rows of one group into
  state columns of the same shape (associative, so chunks fold in any grouping), and ``final``
  turns merged state into the result.

``decomposable`` is False when the state keeps the (distinct) values themselves, so it grows
with the input (quantiles, distinct counts: DESIGN.md, "need the raw rows").

Templates are DuckDB SQL with ``str.format`` fields: ``{a0}``, ``{a1}`` the arguments, ``{p0}``,
``{p1}`` the state columns (merge and final), ``{t}`` the event time in microseconds, ``{s}`` the
row's log sequence number (ties are broken by arrival order, so the incremental result does not
depend on how rows were grouped into chunks), ``{level}`` a quantile's constant level, and
``{sum}`` the summing aggregate: ``fsum`` (compensated) over floating-point values, whose plain
sums would differ in the last bits with how rows were grouped, ``sum`` otherwise. ``direct``
never uses ``{s}`` (raw rows have no arrival order): where the incremental form breaks a tie by
arrival, the one-shot form may pick either tied row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["AGGREGATES", "RETRACTING", "Aggregate", "render", "specialize"]


@dataclass(frozen=True)
class Aggregate:
    """How one Timeplus aggregate is computed (see the module docstring for the templates).

    ``min_args``/``max_args`` count the user's arguments (without ``level``; ``count()`` takes
    none and counts rows). ``level`` marks quantiles, whose last argument is a constant level in
    [0, 1]. ``keeps_type``: the result is one of the first argument's values, so it keeps that
    argument's stored type (min, max, any, earliest, arg_min …). ``tuple_args``: several arguments
    are taken as one tuple (``count(DISTINCT a, b)`` counts distinct pairs).
    """

    name: str
    direct: str
    partials: tuple[str, ...]
    merges: tuple[str, ...]
    final: str = "{p0}"
    decomposable: bool = True
    min_args: int = 1
    max_args: int = 1
    level: bool = False
    keeps_type: bool = False
    tuple_args: bool = False


def render(template: str, args: Sequence[str], *, states: Sequence[str] = (), time: str = "", seq: str = "",
           sum_function: str = "sum", level: str = "") -> str:
    """``template`` with its fields filled by SQL text (see the module docstring).

    No arguments (``count()``) stand for every row: ``{a0}`` becomes ``*``."""
    values: dict[str, str] = {f"a{i}": a for i, a in enumerate(args or ["*"])}
    values.update({f"p{j}": p for j, p in enumerate(states)})
    values.update(t=time, s=seq, sum=sum_function, level=level)
    return template.format(**values)


def _counting(direct: str) -> Aggregate:
    """A count: partial counts are summed, kept 64-bit (DuckDB would widen a sum of counts)."""
    return Aggregate("", direct, (direct,), ("sum({p0})::BIGINT",), "coalesce({p0}, 0)")


def _same_merge(fn: str) -> Aggregate:
    """An aggregate whose states merge with itself (sum, min, max)."""
    return Aggregate("", f"{fn}({{a0}})", (f"{fn}({{a0}})",), (f"{fn}({{p0}})",))


def _arg_extreme(fn: str, direct_key: str, key: str, guard: str) -> Aggregate:
    """arg_min/arg_max by ``key``: the state keeps the winning value and its key; rows whose
    ``guard`` is NULL don't take part."""
    best = "min" if fn == "arg_min" else "max"
    only = f" FILTER (WHERE {guard} IS NOT NULL)"
    return Aggregate(
        "",
        direct=f"{fn}({{a0}}, {direct_key}){only}",
        partials=(f"{fn}({{a0}}, {key}){only}", f"{best}({key}){only}"),
        merges=(f"{fn}({{p0}}, {{p1}})", f"{best}({{p1}})"),
        keeps_type=True,
    )


def _quantile(level: str) -> Aggregate:
    """A quantile at ``level`` (SQL text or ``{level}``): the state keeps the values."""
    return Aggregate(
        "",
        direct=f"quantile_cont({{a0}}, {level})",
        partials=("list({a0}) FILTER (WHERE {a0} IS NOT NULL)",),
        merges=("flatten(list({p0}))",),
        final=f"list_aggregate({{p0}}, 'quantile_cont', {level})",
        decomposable=False,
    )


_DISTINCT = Aggregate(
    "",
    direct="count(DISTINCT {a0})",
    partials=("list(DISTINCT {a0}) FILTER (WHERE {a0} IS NOT NULL)",),
    merges=("list_distinct(flatten(list({p0})))",),
    final="coalesce(len({p0}), 0)",
    decomposable=False,
)

# Values in arrival order: each keeps its sequence number until the final step sorts by it.
_GROUP_ARRAY = Aggregate(
    "",
    direct="list({a0}) FILTER (WHERE {a0} IS NOT NULL)",
    partials=("list({{'s': {s}, 'v': {a0}}}) FILTER (WHERE {a0} IS NOT NULL)",),
    merges=("flatten(list({p0}))",),
    final="coalesce(list_transform(list_sort({p0}), lambda __e: __e.v), [])",
    decomposable=False,
)


def _extreme_k(sort: str, context: int = 0) -> Aggregate:
    """min_k/max_k(x, K[, context…]): the K least/greatest values, sorted; with context columns each
    item is a tuple (x, context…), as Proton answers. Each state keeps at most K items and K itself
    (a constant argument), so it stays small however many rows it folds."""
    item = "{a0}" if not context else "{{" + ", ".join(
        f"'{i + 1}': {{a{0 if i == 0 else i + 1}}}" for i in range(context + 1)) + "}}"
    keep = f"list_slice({sort}({{list}}), 1, {{k}})"
    values = f"list({item}) FILTER (WHERE {{a0}} IS NOT NULL)"
    return Aggregate(
        "",
        direct=keep.format(list=values, k="any_value({a1})"),
        partials=(keep.format(list=values, k="any_value({a1})"), "any_value({a1})"),
        merges=(keep.format(list="flatten(list({p0}))", k="any_value({p1})"), "any_value({p1})"),
        final="coalesce({p0}, [])",
        min_args=2,
        max_args=2 + context if context else _MAX_CONTEXT,
    )


#: The most columns a distinct count takes (count(DISTINCT a, b) counts distinct pairs).
_MAX_DISTINCT = 16

#: The most context columns min_k/max_k take.
_MAX_CONTEXT = 2 + 16


def _top_k(counts: bool) -> Aggregate:
    """top_k(x, K[, true]): the K most frequent values, most frequent first, ties in the order they
    first arrived (as Proton's smoke tests show); with ``true`` each item is a tuple (value, count).
    Exact: the state keeps the values with their sequence numbers (Timeplus's top_k is
    approximate; the exact answer is within its bounds)."""
    item = "{{'1': __v, '2': __n::UBIGINT}}" if counts else "__v"
    final = ("(SELECT coalesce(list_slice(list(" + item + " ORDER BY __n DESC, __s), 1, {p1}), []) FROM "
             "(SELECT __h.v AS __v, count(*) AS __n, min(__h.s) AS __s FROM (SELECT unnest({p0}) AS __h) "
             "GROUP BY __h.v))")
    # The one-shot form (no arrival order): ties by the greater value.
    entry = "{{'1': __h.key, '2': __h.value::UBIGINT}}" if counts else "__h.key"
    direct = ("list_transform(list_slice(list_reverse_sort(list_transform(map_entries(list_histogram("
              "list({a0}) FILTER (WHERE {a0} IS NOT NULL))), lambda __h: {{'n': __h.value, 'e': " + entry
              + "}})), 1, any_value({a1})), lambda __h: __h.e)")
    return Aggregate(
        "",
        direct=direct,
        partials=("list({{'v': {a0}, 's': {s}}}) FILTER (WHERE {a0} IS NOT NULL)", "any_value({a1})"),
        merges=("flatten(list({p0}))", "any_value({p1})"),
        final=final,
        decomposable=False,
        min_args=2,
        max_args=4,
    )


_TOP_K = _top_k(False)


def specialize(spec: Aggregate, args: int, counts: bool = False) -> Aggregate:
    """The form of ``spec`` for a call with ``args`` arguments: min_k/max_k with context columns
    (items become tuples), top_k with ``counts`` (items become (value, count) tuples)."""
    if spec.name in ("min_k", "max_k") and args > 2:
        sort = "list_sort" if spec.name == "min_k" else "list_reverse_sort"
        return replace(_extreme_k(sort, args - 2), name=spec.name)
    if spec.name in ("top_k", "top_k_exact") and counts:
        return replace(_top_k(True), name=spec.name)
    return spec


def _net_counts(entries: str) -> str:
    """A MAP value → count from ``entries`` (a list of ``{key, value}`` structs), the counts of a
    value summed and the values whose count is 0 left out (str.format-escaped)."""
    return ("map_from_entries(list_filter(list_transform(list_distinct(list_transform(" + entries
            + ", lambda __x: __x.key)), lambda __v: {{'key': __v, 'value': list_sum(list_transform(list_filter("
            + entries + ", lambda __x: __x.key = __v), lambda __x: __x.value))}}), lambda __x: __x.value <> 0))")


def _retracting_extreme(fn: str) -> Aggregate:
    """min/max over a changelog: as Proton, the state counts each value's live rows (a retraction
    takes one back, a value whose count reaches 0 is forgotten), so it is bounded by the distinct
    values alive; the result is the least/greatest value whose count is positive."""
    partial = _net_counts("list({{'key': {a0}, 'value': {a1}::BIGINT}}) FILTER (WHERE {a0} IS NOT NULL)")
    final = ("list_" + fn + "(list_transform(list_filter(map_entries({p0}), lambda __x: __x.value > 0), "
             "lambda __x: __x.key))")
    return Aggregate(fn, final.replace("{p0}", partial), (partial,), (_net_counts("flatten(list(map_entries({p0})))"),),
                     final, keeps_type=True)


def _listed(item: str, final: str, *, args: int = 1, guard: str = "{a0}") -> Aggregate:
    """An aggregate over all its rows at once: the state lists ``item`` (a struct of the arguments)
    of each row whose ``guard`` is not NULL, and ``final`` computes the result from the list
    ``{p0}`` (a DuckDB expression, such as a subquery over ``unnest({p0})``)."""
    listed = f"list({item}) FILTER (WHERE {guard} IS NOT NULL)"
    return Aggregate(
        "",
        direct=final.replace("{p0}", listed),
        partials=(listed,),
        merges=("flatten(list({p0}))",),
        final=final,
        decomposable=False,
        min_args=args,
        max_args=args,
    )


def _over_list(duck: str) -> Aggregate:
    """DuckDB's aggregate ``duck`` of the values (variances, standard deviations)."""
    return _listed("{a0}", f"list_aggregate({{p0}}, '{duck}')")


# Cross tabulation of two columns (cramers_v, contingency): phi² summed over the observed pairs as
# Proton sums it, with the row count n and the numbers of distinct values ka, kb.
_CROSS = ("(SELECT {result} FROM (SELECT sum(__x.nab * __x.nab * __x.n / (__x.na * __x.nb) - 2 * __x.nab "
          "+ __x.na * __x.nb / __x.n) / max(__x.n) AS phi, max(__x.n) AS n, count(DISTINCT __x.a)::DOUBLE AS ka, "
          "count(DISTINCT __x.b)::DOUBLE AS kb FROM (SELECT __g.a, __g.b, __g.nab, sum(__g.nab) OVER (PARTITION BY __g.a) AS na, "
          "sum(__g.nab) OVER (PARTITION BY __g.b) AS nb, sum(__g.nab) OVER () AS n FROM (SELECT __h.a, __h.b, "
          "count(*)::DOUBLE AS nab FROM (SELECT unnest({p0}) AS __h) GROUP BY __h.a, __h.b) AS __g) AS __x))")
_PAIR = "{{'a': {a0}, 'b': {a1}}}"
_PAIRED = "{a0} IS NOT NULL AND {a1}"  # a row takes part when both are not NULL


def _cross(result: str) -> Aggregate:
    return _listed(_PAIR, _CROSS.replace("{result}", result), args=2, guard=_PAIRED)


# Spearman's rank correlation, 1 - 6 Σd² / (n (n² - 1)) over ranks that average their ties.
_RANK_CORR = ("(SELECT 1 - 6 * sum(pow(__r.ra - __r.rb, 2)) / (count(*) * (pow(count(*), 2) - 1)) FROM "
              "(SELECT rank() OVER (ORDER BY __h.a) + (count(*) OVER (PARTITION BY __h.a) - 1) / 2.0 AS ra, "
              "rank() OVER (ORDER BY __h.b) + (count(*) OVER (PARTITION BY __h.b) - 1) / 2.0 AS rb "
              "FROM (SELECT unnest({p0}) AS __h)) AS __r)")

# The sum of the increases between consecutive values by time (decreases count 0).
_DELTA_SUM_TIMESTAMP = ("(SELECT coalesce(sum(greatest(__d.v - __d.prev, 0)), 0) FROM (SELECT __h.v AS v, "
                        "lag(__h.v) OVER (ORDER BY __h.t) AS prev FROM (SELECT unnest({p0}) AS __h)) AS __d)")


#: count/sum/avg/min/max over a changelog input (rows carrying ``_tp_delta``): each row counts
#: ``_tp_delta`` times, so a retraction (−1) takes back what its row added. The delta is the last argument.
RETRACTING: Mapping[str, Aggregate] = {
    "count": Aggregate("count", "sum({a0})::BIGINT", ("sum({a0})::BIGINT",), ("sum({p0})::BIGINT",),
                       "coalesce({p0}, 0)", min_args=0, max_args=0),
    "count_if": Aggregate("count_if", "sum(CASE WHEN {a0} THEN {a1} ELSE 0 END)::BIGINT",
                          ("sum(CASE WHEN {a0} THEN {a1} ELSE 0 END)::BIGINT",), ("sum({p0})::BIGINT",),
                          "coalesce({p0}, 0)"),
    "sum": Aggregate("sum", "{sum}({a0} * {a1})", ("{sum}({a0} * {a1})",), ("{sum}({p0})",)),
    "avg": Aggregate("avg", "{sum}({a0} * {a1}) / NULLIF(sum(CASE WHEN {a0} IS NULL THEN 0 ELSE {a1} END), 0)",
                     ("{sum}({a0} * {a1})", "sum(CASE WHEN {a0} IS NULL THEN 0 ELSE {a1} END)::BIGINT"),
                     ("{sum}({p0})", "sum({p1})::BIGINT"), "{p0} / NULLIF({p1}, 0)"),
    "min": _retracting_extreme("min"),
    "max": _retracting_extreme("max"),
}


def _named(name: str, spec: Aggregate, **changes: Any) -> Aggregate:
    """``spec`` under ``name`` (the helpers above describe a computation, not yet a function)."""
    return replace(spec, name=name, **changes)


_EARLIEST_KEY = "{{'t': {t}, 's': {s}}}"
_LATEST_KEY = "{{'t': {t}, 's': -{s}}}"

#: Every aggregate by its Timeplus name (lower case).
AGGREGATES: Mapping[str, Aggregate] = {
    spec.name: spec
    for spec in (
        _named("count", _counting("count({a0})"), min_args=0),
        _named("count_if", _counting("count_if({a0})::BIGINT")),  # DuckDB answers a 128-bit count
        _named("sum", _same_merge("{sum}")),
        _named("min", _same_merge("min"), keeps_type=True),
        _named("max", _same_merge("max"), keeps_type=True),
        Aggregate("avg", "avg({a0})", ("{sum}({a0})", "count({a0})"), ("{sum}({p0})", "sum({p1})::BIGINT"),
                  "{p0} / NULLIF({p1}, 0)"),
        # The first non-NULL value met.
        _named("any", _arg_extreme("arg_min", "{s}", "{s}", "{a0}"), direct="any_value({a0})"),
        _named("earliest", _arg_extreme("arg_min", "{t}", _EARLIEST_KEY, "{a0}")),
        _named("latest", _arg_extreme("arg_max", "{t}", _LATEST_KEY, "{a0}")),
        _named("arg_min", _arg_extreme("arg_min", "{a1}", "{{'v': {a1}, 's': {s}}}", "{a1}"), min_args=2, max_args=2),
        _named("arg_max", _arg_extreme("arg_max", "{a1}", "{{'v': {a1}, 's': -{s}}}", "{a1}"), min_args=2, max_args=2),
        _named("group_array", _GROUP_ARRAY),
        _named("count_distinct", _DISTINCT, max_args=_MAX_DISTINCT, tuple_args=True),
        _named("unique_exact", _DISTINCT, max_args=_MAX_DISTINCT, tuple_args=True),
        # Timeplus's unique is approximate; the exact count is within any approximation's bounds.
        _named("unique", _DISTINCT, max_args=_MAX_DISTINCT, tuple_args=True),
        _named("quantile", _quantile("{level}"), level=True),
        _named("median", _quantile("0.5")),
        _named("min_k", _extreme_k("list_sort")),
        _named("max_k", _extreme_k("list_reverse_sort")),
        _named("top_k", _TOP_K),
        _named("top_k_exact", _TOP_K),
        *(_named(f"p{p}", _quantile(f"0.{p}")) for p in (50, 90, 95, 99)),
        # Proton's uniq family are approximations (but uniq_exact); the exact count is within their bounds.
        *(_named(n, _DISTINCT, max_args=_MAX_DISTINCT, tuple_args=True) for n in (
            "uniq", "uniq_exact", "uniq_combined", "uniq_combined64", "uniq_hll12", "uniq_theta")),
        *(_named(n, _same_merge(duck)) for n, duck in (
            ("bit_and", "bit_and"), ("bit_or", "bit_or"), ("bit_xor", "bit_xor"),
            ("group_bit_and", "bit_and"), ("group_bit_or", "bit_or"), ("group_bit_xor", "bit_xor"))),
        # The last non-NULL value met.
        _named("any_last", _arg_extreme("arg_max", "{s}", "{s}", "{a0}"), direct="last({a0})"),
        *(_named(name, _over_list(duck)) for stable in ("", "_stable") for name, duck in (
            (f"var_samp{stable}", "var_samp"), (f"var_pop{stable}", "var_pop"),
            (f"stddev_samp{stable}", "stddev_samp"), (f"stddev_pop{stable}", "stddev_pop"))),
        _named("cramers_v", _cross("CASE WHEN n < 2 THEN 'nan'::DOUBLE ELSE sqrt(phi / least(ka - 1, kb - 1)) END")),
        _named("cramers_v_bias_corrected", _cross(
            "sqrt(greatest(0, phi - (ka - 1) * (kb - 1) / (n - 1)) / (least(ka - (ka - 1) * (ka - 1) / (n - 1), "
            "kb - (kb - 1) * (kb - 1) / (n - 1)) - 1))")),
        _named("contingency", _cross("sqrt(phi / (phi + n))")),
        _named("rank_corr", _listed(_PAIR, _RANK_CORR, args=2, guard=_PAIRED)),
        _named("delta_sum_timestamp", _listed("{{'v': {a0}, 't': {a1}}}", _DELTA_SUM_TIMESTAMP, args=2, guard=_PAIRED)),
    )
}
