"""Ingest with column DEFAULT expressions: rows/s of ``Stream.append_rows`` when one string column
is computed by its DEFAULT (``concat('n', to_string(id))``, one DuckDB query per batch) against the
same rows with that column given, measured in one run; the ratio is the price of the expression.

Run: ``python bench/defaults.py [--batches 30] [--batch 10000]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sinkflow.sql.defaults import compile_default
from sinkflow.streams.store import StreamStore
from sinkflow.streams.types import Column, parse_type


def rate(append: Callable[[], object], rows: int, repeats: int) -> float:
    """Rows per second of the fastest of ``repeats`` appends of ``rows`` rows."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        append()
        best = min(best, time.perf_counter() - started)
    return rows / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        store = StreamStore(Path(directory), defaults=compile_default)

        def columns(default: str | None) -> list[Column]:
            return [Column("id", parse_type("int64")), Column("name", parse_type("string"), default),
                    Column("v", parse_type("float64"))]

        given = store.create("given", columns(None))
        computed = store.create("computed", columns("concat('n', to_string(id))"))
        full = [[i, f"n{i}", i * 0.5] for i in range(args.batch)]
        partial = [[i, i * 0.5] for i in range(args.batch)]
        given_rate = rate(lambda: given.append_rows(["id", "name", "v"], full), args.batch, args.batches)
        computed_rate = rate(lambda: computed.append_rows(["id", "v"], partial), args.batch, args.batches)
        store.close()
    print(f"append_rows, name given:           {given_rate:12,.0f} rows/s")
    print(f"append_rows, name by its DEFAULT:  {computed_rate:12,.0f} rows/s")
    print(f"ratio (DEFAULT / given):           {computed_rate / given_rate:12.2f}")


if __name__ == "__main__":
    main()
