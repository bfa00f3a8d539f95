"""Stream log throughput: append_batch and read over 5M car events in 10k-row batches.

Prints rows/s of ``Stream.append_batch`` (conform + _tp_time + durable IPC append) and of
``Stream.read`` (tailing in 10k-row steps, from the memory cache and, with a small cache, from
the memory-mapped segments), each with its ratio to bare pyarrow doing the same IPC work in the
same run: a ``RecordBatchStreamWriter`` writing the same batches to a file, and
``open_stream`` over a memory map iterating them. Each ratio is given by wall time and by the
process's CPU time.

Run: ``python bench/stream_log.py [--rows 5000000] [--batch 10000]``.
"""

from __future__ import annotations

import argparse
import functools
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from sinkflow.streams.demo import CAR_COLUMNS, CarSimulator
from sinkflow.streams.log import LogOptions
from sinkflow.streams.store import Stream, StreamSettings, StreamStore


def car_batches(distinct: int, size: int) -> list[pa.RecordBatch]:
    """``distinct`` batches of ``size`` car events (cycled by the benchmark to reach the row count)."""
    sim = CarSimulator(cars=size // 10, seed=1)
    rng = random.Random(1)
    out = []
    for i in range(distinct):
        out.append(sim.tick(1_700_000_000_000 + i * 1000 + rng.randint(0, 9), 1.0, events_per_car=10))
    return out


def append(stream: Stream, batches: list[pa.RecordBatch], count: int) -> None:
    for i in range(count):
        stream.append_batch(batches[i % len(batches)])


def tail(stream: Stream, step: int, rows: int) -> None:
    """Read everything the way the engine tails a stream: from a seq, up to ``step`` rows a call."""
    seq, n = 0, 0
    while seq < stream.head:
        for first, b in stream.read(seq, step):
            n += b.num_rows
            seq = first + b.num_rows
    assert n == rows


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds and CPU seconds of ``fn()`` (CPU time is steadier when other work shares the cores)."""
    started, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()
    batches = car_batches(10, args.batch)
    count = args.rows // args.batch
    rows = count * args.batch
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)

        # Bare pyarrow: the same batches (with a _tp_time column, as stored) through one IPC stream file.
        stored_schema = batches[0].schema.append(pa.field("_tp_time", pa.timestamp("ms", tz="UTC"), nullable=False))
        stored = [pa.RecordBatch.from_arrays([*b.columns, b.column("time")], schema=stored_schema) for b in batches]
        raw_path = root / "raw.arrows"

        def raw_write() -> None:
            with open(raw_path, "wb") as f, pa.ipc.new_stream(f, stored_schema) as writer:
                for i in range(count):
                    writer.write_batch(stored[i % len(stored)])
                    f.flush()

        def raw_read() -> None:
            n = 0
            with pa.memory_map(str(raw_path)) as source:
                for b in pa.ipc.open_stream(source):
                    n += b.num_rows
            assert n == rows

        raw_write_s = timed(raw_write)
        raw_read_s = timed(raw_read)

        results: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {}
        for label, cache in (("cached", 1 << 31), ("from disk", 1 << 20)):
            store = StreamStore(root / label.replace(" ", "_"), LogOptions(cache_bytes=cache))
            stream = store.create("car_live_data", CAR_COLUMNS, StreamSettings(event_time_column="time"))

            results[label] = (
                timed(functools.partial(append, stream, batches, count)),
                timed(functools.partial(tail, stream, args.batch, rows)),
            )
            store.close()

    append_s, read_cached_s = results["cached"]
    _, read_disk_s = results["from disk"]
    mrows = rows / 1e6
    print(f"rows={rows:,} batch={args.batch:,}")

    def line(label: str, ours: tuple[float, float], raw: tuple[float, float] | None = None) -> None:
        text = f"{label + ':':<31}{mrows / ours[0]:8.1f} M rows/s"
        if raw is not None:
            text += f"   ratio {raw[0] / ours[0]:.2f}, by CPU time {raw[1] / max(ours[1], 1e-9):.2f}"
        print(text)

    line("bare pyarrow IPC write", raw_write_s)
    line("Stream.append_batch", append_s, raw_write_s)
    line("bare pyarrow IPC read (mmap)", raw_read_s)
    line("Stream.read (memory cache)", read_cached_s, raw_read_s)
    line("Stream.read (mmap segments)", read_disk_s, raw_read_s)


if __name__ == "__main__":
    main()
