"""``changelog(stream, key…)``: an append-only input made a changelog by key.

A row whose key was seen before first retracts that key's previous row (the previous row again,
``_tp_delta`` = −1), then comes itself (``_tp_delta`` = +1); a new key's row only comes
(+1). An aggregation reading the changelog takes the retracted rows back (count, sum, avg),
which is how an aggregation over a versioned_kv stream counts each key once. The state is the
newest row per key: it grows with the number of keys.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from sinkflow.engine.compile import ChangelogPlan, connect
from sinkflow.engine.operators.base import Entries, Operator
from sinkflow.sql.plan import DELTA_COLUMN


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class ChangelogOperator(Operator):
    """See the module docstring."""

    def __init__(self, plan: ChangelogPlan) -> None:
        self.plan = plan
        self.schema = plan.output_schema
        self.finished = False
        self._con = connect()
        self._newest: pa.Table | None = None
        names = [f.name for f in self.schema if f.name != DELTA_COLUMN]
        keys = plan.spec.keys
        cols = ", ".join(_q(n) for n in names)
        match = " AND ".join(f"a.{_q(k)} IS NOT DISTINCT FROM p.{_q(k)}" for k in keys)
        by = ", ".join(_q(k) for k in keys)
        every = (f"SELECT {cols}, -1 AS __i FROM __newest UNION ALL "
                 f"SELECT {cols}, row_number() OVER () - 1 AS __i FROM __in")
        ordered = f"SELECT *, lag(__i) OVER (PARTITION BY {by} ORDER BY __i) AS __pi FROM __every"
        # Each arriving row: its key's previous row retracted (ordered just before it), then the row.
        self._sql = (
            f"WITH __every AS ({every}), __p AS ({ordered}) "
            f"SELECT {cols}, _tp_delta FROM ("
            f"SELECT {', '.join('a.' + _q(n) for n in names)}, -1::TINYINT AS _tp_delta, p.__i AS __o, 0 AS __r "
            f"FROM __p p JOIN __every a ON a.__i = p.__pi AND {match} WHERE p.__i >= 0 "
            f"UNION ALL SELECT {cols}, 1::TINYINT, __i, 1 FROM __p WHERE __i >= 0) ORDER BY __o, __r")
        self._keep = (f"SELECT {cols} FROM (SELECT *, row_number() OVER () AS __n FROM __every) "
                      f"QUALIFY row_number() OVER (PARTITION BY {by} ORDER BY __i DESC, __n DESC) = 1 ORDER BY __i")
        self._every = every

    def push(self, port: int, entries: Entries) -> list[pa.Table]:
        if not entries:
            return []
        rows = pa.Table.from_batches([batch for _, batch in entries])
        if DELTA_COLUMN in rows.schema.names:
            rows = rows.drop_columns([DELTA_COLUMN])
        newest = self._newest if self._newest is not None else rows.slice(0, 0)
        self._con.register("__in", rows)
        self._con.register("__newest", newest)
        try:
            out = self._con.sql(self._sql).to_arrow_table()
            self._newest = self._con.sql(f"WITH __every AS ({self._every}) {self._keep}").to_arrow_table().cast(rows.schema)
        finally:
            self._con.unregister("__in")
            self._con.unregister("__newest")
        return [out.rename_columns(self.schema.names).cast(self.schema)] if out.num_rows else []

    def end(self, port: int) -> list[pa.Table]:
        self.finished = True
        return []

    def stats(self) -> dict[str, int]:
        return {"changelog_keys": 0 if self._newest is None else self._newest.num_rows}

    def snapshot(self) -> tuple[dict[str, Any], dict[str, pa.Table]]:
        return {"finished": self.finished}, ({"newest": self._newest} if self._newest is not None else {})

    def restore(self, meta: dict[str, Any], tables: dict[str, pa.Table]) -> None:
        self.finished = bool(meta["finished"])
        self._newest = tables.get("newest")

    def describe(self) -> list[str]:
        return self.plan.explain()[:1]

    def close(self) -> None:
        self._newest = None
        self._con.close()
