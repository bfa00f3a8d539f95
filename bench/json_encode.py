"""Rows/s of the column-at-a-time JSON encoding vs row by row, measured in one run.

Both sides turn the same Arrow result batches (the car query's columns, 1000 rows a batch, as
``bench/kafka_sink.py`` builds them) into one JSON document per row, byte for byte the same
documents. "columnar" is :func:`sinkflow.sinks.encode.json_document_array` (one contiguous
binary array per batch, what the Kafka sink hands to librdkafka); "row by row" is the naive
path, ``orjson.dumps`` of each row of ``batch.to_pylist()`` (:func:`json_document` over
:func:`row_dicts`, the contract's reference). Two shapes: windowed results (100 rows share a
window's timestamp) and the same rows with a distinct timestamp each (a plain ``select *``).
Rounds alternate the sides; the best round of each side is reported (the machine is shared:
the best is the least disturbed).

    python bench/json_encode.py [--rows 50000] [--rounds 3]

Goal: columnar <= 0.7 us a row on the windowed shape.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kafka_sink import result_batches  # noqa: E402

from sinkflow.sinks.base import INLINE_ENCODE_ROWS  # noqa: E402
from sinkflow.sinks.encode import json_document, json_document_array, row_dicts  # noqa: E402


def columnar(batches: list[pa.RecordBatch]) -> None:
    for batch in batches:
        json_document_array(batch)


def row_by_row(batches: list[pa.RecordBatch]) -> None:
    for batch in batches:
        [json_document(row) for row in row_dicts(batch)]


def distinct_times(batches: list[pa.RecordBatch]) -> list[pa.RecordBatch]:
    """The same rows with the time column one millisecond apart from row to row."""
    out, row = [], 0
    for batch in batches:
        millis = pa.array(range(row, row + batch.num_rows), pa.int64())
        times = pc.add(batch.column("time").view(pa.int64()), millis).view(batch.schema.field("time").type)
        out.append(batch.set_column(0, "time", times))
        row += batch.num_rows
    return out


def best_seconds(side: Callable[[list[pa.RecordBatch]], None], batches: list[pa.RecordBatch], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        side(batches)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    windowed = result_batches(args.rows, 1000)
    shapes = {"windowed results": windowed, "distinct timestamps": distinct_times(windowed)}
    for name, batches in shapes.items():
        rows = sum(batch.num_rows for batch in batches)
        for batch in batches[:3]:  # the comparison is only fair if both sides say the same
            assert json_document_array(batch).to_pylist() == [json_document(row) for row in row_dicts(batch)]
        ours = reference = float("inf")
        for _ in range(args.rounds):  # alternate, so that a burst of load hits both sides
            ours = min(ours, best_seconds(columnar, batches, 1))
            reference = min(reference, best_seconds(row_by_row, batches, 1))
        # The runtime encodes waiting batches ahead in chunks of up to INLINE_ENCODE_ROWS rows.
        chunks = pa.Table.from_batches(batches).combine_chunks().to_batches(max_chunksize=INLINE_ENCODE_ROWS)
        chunked = best_seconds(columnar, chunks, args.rounds)
        print(
            f"{name:20s} columnar {rows / ours:>10,.0f} rows/s ({ours / rows * 1e6:.3f} us/row)   "
            f"row by row {rows / reference:>10,.0f} rows/s ({reference / rows * 1e6:.3f} us/row)   "
            f"ratio columnar/row-by-row {reference / ours:.2f}x   "
            f"columnar in {INLINE_ENCODE_ROWS:,}-row chunks {chunked / rows * 1e6:.3f} us/row"
        )


if __name__ == "__main__":
    main()
