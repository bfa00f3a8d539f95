"""ARRAY JOIN in a streaming query: each row that arrives comes out once per element of its array
(a row with an empty array not at all), as ClickHouse's ARRAY JOIN; with LEFT, once with a null."""

from __future__ import annotations

from pathlib import Path

import pytest

from sinkflow.engine import Engine
from sinkflow.sql.defaults import compile_default
from sinkflow.streams.store import StreamStore


@pytest.mark.parametrize(("join", "expected"), [
    ("ARRAY JOIN", [(1, "a"), (1, "b"), (3, "c")]),
    ("LEFT ARRAY JOIN", [(1, "a"), (1, "b"), (2, None), (3, "c")]),
])
async def test_rows_arriving_are_repeated_per_element(tmp_path: Path, join: str, expected: list) -> None:
    store = StreamStore(tmp_path, defaults=compile_default)
    try:
        engine = Engine(store)
        engine.execute("CREATE STREAM tagged (id int32, tags array(string))")
        result = engine.execute(f"SELECT id, t FROM tagged {join} tags AS t")
        assert result.kind == "stream" and result.execution is not None
        try:
            engine.execute("INSERT INTO tagged VALUES (1, ['a', 'b']), (2, []), (3, ['c'])")
            seen: list[tuple[int, str | None]] = []
            for _ in range(100):  # until every expected row came out (each step waits for input)
                seen += [(row["id"], row["t"]) for batch in await result.execution.step(0.1)
                         for row in batch.to_pylist()]
                if len(seen) >= len(expected):
                    break
            assert sorted(seen, key=lambda r: (r[0], r[1] or "")) == expected
        finally:
            result.execution.close()
    finally:
        store.close()
