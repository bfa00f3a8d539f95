"""Plain views (``CREATE VIEW v AS SELECT …``): a name that stands for a query.

:func:`expand_views` replaces every ``FROM v`` / ``JOIN v`` of a query by the
view's query as a subquery (``FROM (SELECT …) AS v``), views inside views included. The runtime
calls it before it plans a query; the planner may call it as its hook for names that are views.
A view has no state: each query reading it runs the view's query afresh.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot.dialects.clickhouse import ClickHouse
from sqlglot.errors import TokenError
from sqlglot.tokens import TokenType

from sinkflow.errors import SqlError

#: How deep views may read views before the expansion is taken for a cycle.
MAX_DEPTH = 16
_BEFORE_NAME = {TokenType.FROM, TokenType.JOIN}


def expand_views(sql: str, views: Mapping[str, str], depth: int = 0) -> str:
    """``sql`` with the views it reads replaced by their queries (unchanged when it reads none).

    Raises :class:`SqlError` when views read each other in a cycle."""
    if not views:
        return sql
    try:
        tokens = ClickHouse().tokenize(sql)
    except TokenError:
        return sql  # the planner reports where the text is broken
    replaced: list[tuple[int, int, str]] = []
    for k, token in enumerate(tokens):
        if token.text not in views or token.token_type in (TokenType.STRING, TokenType.NUMBER):
            continue
        if k == 0 or tokens[k - 1].token_type not in _BEFORE_NAME:
            continue
        if depth >= MAX_DEPTH:
            raise SqlError(f"view '{token.text}' reads itself through other views (a cycle)")
        inner = expand_views(views[token.text], views, depth + 1)
        replaced.append((token.start, token.end, f"({inner}) AS {token.text}"))
    for start, end, text in reversed(replaced):
        sql = sql[:start] + text + sql[end + 1:]
    return sql
