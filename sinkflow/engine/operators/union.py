"""``UNION ALL``: the rows of every input, in the order they arrive, with the first input's
column names and types (each input's columns are cast by position)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from sinkflow.engine.operators.base import Entries, Operator


class UnionOperator(Operator):
    """Merges its inputs' rows; finishes when every input has ended. Its state is which ended."""

    def __init__(self, schema: pa.Schema, inputs: int) -> None:
        self.schema = schema
        self.finished = False
        self._inputs = inputs
        self._ended: set[int] = set()

    def push(self, port: int, entries: Entries) -> list[pa.Table]:
        if not entries:
            return []
        table = pa.Table.from_batches([batch for _, batch in entries])
        return [table.rename_columns(self.schema.names).cast(self.schema)]

    def end(self, port: int) -> list[pa.Table]:
        self._ended.add(port)
        self.finished = len(self._ended) == self._inputs
        return []

    def snapshot(self) -> tuple[dict[str, Any], dict[str, pa.Table]]:
        return {"ended": sorted(self._ended), "finished": self.finished}, {}

    def restore(self, meta: dict[str, Any], tables: dict[str, pa.Table]) -> None:
        self._ended = set(meta["ended"])
        self.finished = bool(meta["finished"])

    def describe(self) -> list[str]:
        return ["UnionAll"]
