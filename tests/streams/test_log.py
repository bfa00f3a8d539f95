"""The append-only log: sequence numbers, append boundaries, durability, crash recovery, retention, tailing."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from sinkflow.streams.log import LogOptions, StreamLog
from sinkflow.streams.store import StreamSettings, StreamStore
from sinkflow.streams.types import TP_TIME, Column, parse_type

from .conftest import FakeClock

SCHEMA = pa.schema(
    [pa.field("v", pa.int64()), pa.field("s", pa.string()), pa.field(TP_TIME, pa.timestamp("ms", tz="UTC"))]
)


def batch(start: int, count: int, t0_ms: int = 0) -> pa.RecordBatch:
    """Rows ``start .. start+count-1``: v is the row's expected sequence number."""
    values = list(range(start, start + count))
    return pa.RecordBatch.from_arrays(
        [
            pa.array(values, pa.int64()),
            pa.array([f"row{v}" for v in values]),
            pa.array([t0_ms + v for v in values], SCHEMA.field(TP_TIME).type),
        ],
        schema=SCHEMA,
    )


def fill(log: StreamLog, sizes: list[int]) -> None:
    for size in sizes:
        log.append(batch(log.head, size))


def seqs(log: StreamLog, seq: int, max_rows: int) -> list[tuple[int, list[int]]]:
    return [(s, b.column("v").to_pylist()) for s, b in log.read(seq, max_rows)]


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.arrows"))


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "log"


def test_sequence_numbers_and_append_boundaries(log_dir: Path) -> None:
    log = StreamLog(log_dir, SCHEMA)
    assert [log.append(batch(log.head, n)) for n in (3, 2, 4)] == [0, 3, 5]
    assert (log.head, log.start) == (9, 0)
    # Whole appends, never merged: three batches for three appends.
    assert seqs(log, 0, 100) == [(0, [0, 1, 2]), (3, [3, 4]), (5, [5, 6, 7, 8])]
    # A seq inside an append slices only that first batch.
    assert seqs(log, 4, 100) == [(4, [4]), (5, [5, 6, 7, 8])]
    # max_rows stops before a batch that would exceed it, but at least one batch comes back.
    assert seqs(log, 0, 5) == [(0, [0, 1, 2]), (3, [3, 4])]
    assert seqs(log, 0, 4) == [(0, [0, 1, 2])]
    assert seqs(log, 5, 1) == [(5, [5, 6, 7, 8])]
    assert log.read(9, 100) == [] and log.read(50, 100) == []
    # _tp_time travels with the rows.
    assert log.read(8, 1)[0][1].column(TP_TIME).to_pylist() == [datetime(1970, 1, 1, 0, 0, 0, 8000, tzinfo=UTC)]
    assert log.table().column("v").to_pylist() == list(range(9))
    log.close()


def test_rejects_a_batch_of_another_schema(log_dir: Path) -> None:
    log = StreamLog(log_dir, SCHEMA)
    with pytest.raises(ValueError, match="does not match"):
        log.append(pa.record_batch({"v": [1]}))
    assert log.head == 0


def test_reopen_keeps_rows_boundaries_and_continues(log_dir: Path) -> None:
    log = StreamLog(log_dir, SCHEMA)
    fill(log, [3, 2, 4])
    log.close()
    log = StreamLog(log_dir, SCHEMA)
    assert log.head == 9
    assert seqs(log, 0, 100) == [(0, [0, 1, 2]), (3, [3, 4]), (5, [5, 6, 7, 8])]
    assert log.append(batch(9, 1)) == 9
    log.close()
    log = StreamLog(log_dir, SCHEMA)
    assert log.table().column("v").to_pylist() == list(range(10))
    assert len(segment_files(log_dir)) == 1  # the same segment was reopened for appending
    log.close()


@pytest.mark.parametrize("cut", [1, 7, 40, 100])
def test_torn_last_message_is_truncated_on_recovery(log_dir: Path, cut: int) -> None:
    log = StreamLog(log_dir, SCHEMA)
    fill(log, [3, 2, 4])
    log.close()  # a crash mid-append: the last message reached the disk only partly
    [segment] = segment_files(log_dir)
    size = segment.stat().st_size
    with open(segment, "r+b") as f:
        f.truncate(size - cut)
    log = StreamLog(log_dir, SCHEMA)
    assert log.head == 5
    assert seqs(log, 0, 100) == [(0, [0, 1, 2]), (3, [3, 4])]
    # The torn bytes are gone, so the next append lands on a clean boundary and survives.
    assert log.append(batch(5, 2)) == 5
    log.close()
    log = StreamLog(log_dir, SCHEMA)
    assert log.table().column("v").to_pylist() == [0, 1, 2, 3, 4, 5, 6]
    log.close()


def test_garbage_tail_is_truncated(log_dir: Path) -> None:
    log = StreamLog(log_dir, SCHEMA)
    fill(log, [2])
    log.close()
    [segment] = segment_files(log_dir)
    with open(segment, "ab") as f:
        f.write(b"\xff\xff\xff\xff\x10\x00\x00\x00garbage")
    log = StreamLog(log_dir, SCHEMA)
    assert log.table().column("v").to_pylist() == [0, 1]
    log.close()


def test_torn_schema_of_a_fresh_segment(log_dir: Path) -> None:
    log = StreamLog(log_dir, SCHEMA, LogOptions(segment_bytes=1))
    fill(log, [2, 2])
    log.close()
    files = segment_files(log_dir)
    assert len(files) == 2
    with open(files[-1], "r+b") as f:
        f.truncate(10)  # the crash hit while the new segment's schema was being written
    log = StreamLog(log_dir, SCHEMA, LogOptions(segment_bytes=1))
    assert log.head == 2
    assert log.append(batch(2, 1)) == 2
    assert log.table().column("v").to_pylist() == [0, 1, 2]
    log.close()


def test_segments_roll_by_size_and_reads_span_them(log_dir: Path) -> None:
    log = StreamLog(log_dir, SCHEMA, LogOptions(segment_bytes=2000))
    fill(log, [50] * 10)
    files = segment_files(log_dir)
    assert len(files) > 3
    # Segment files are named by their first sequence number.
    assert next(int(p.stem) for p in files) == 0 and all(int(p.stem) % 50 == 0 for p in files)
    assert [s for s, _ in log.read(0, 10_000)] == list(range(0, 500, 50))
    log.close()
    log = StreamLog(log_dir, SCHEMA, LogOptions(segment_bytes=2000))
    assert log.table().column("v").to_pylist() == list(range(500))
    log.close()


def test_reads_beyond_the_memory_cache_come_from_disk(log_dir: Path) -> None:
    log = StreamLog(log_dir, SCHEMA, LogOptions(cache_bytes=3000, segment_bytes=5000))
    fill(log, [40] * 20)
    assert seqs(log, 0, 40) == [(0, list(range(40)))]
    assert [s for s, _ in log.read(15, 10_000)] == [15, *list(range(40, 800, 40))]
    assert log.table().column("v").to_pylist() == list(range(800))
    log.close()


def test_retention_by_size_drops_whole_old_segments(log_dir: Path) -> None:
    log = StreamLog(log_dir, SCHEMA, LogOptions(retention_bytes=20_000))
    for _ in range(40):
        log.append(batch(log.head, 100))
    assert log.head == 4000
    assert (
        log.size_bytes <= 20_000 + log.size_bytes // log.segment_count
    )  # bounded by the limit plus the active segment
    start = log.start
    assert 0 < start < 4000 and start % 100 == 0  # whole appends went, never part of one
    assert log.table().column("v").to_pylist() == list(range(start, 4000))
    # A reader behind the retained data continues from the oldest retained row.
    assert log.read(0, 100)[0][0] == start
    assert int(segment_files(log_dir)[0].stem) == start
    log.close()
    log = StreamLog(log_dir, SCHEMA, LogOptions(retention_bytes=20_000))
    assert (log.start, log.head) == (start, 4000)
    log.close()


def test_retention_by_age(log_dir: Path, clock: FakeClock) -> None:
    options = LogOptions(retention_ms=60_000)
    log = StreamLog(log_dir, SCHEMA, options, clock)
    fill(log, [10, 10])
    clock.advance(20)  # older than a quarter of the retention: the next append starts a new segment
    fill(log, [10])
    clock.advance(45)  # the first segment's last append is now 65 s old
    fill(log, [10])
    assert log.start == 20
    assert log.table().column("v").to_pylist() == list(range(20, 40))
    # A quiet stream: nothing is appended, yet its data expires.
    clock.advance(120)
    assert log.enforce_retention() >= 1
    assert log.table().num_rows == 0
    assert (log.start, log.head) == (40, 40)
    log.close()
    # The head survives a restart even though every row expired.
    log = StreamLog(log_dir, SCHEMA, options, clock)
    assert (log.start, log.head) == (40, 40)
    assert log.append(batch(40, 1)) == 40
    log.close()


def test_stream_settings_drive_retention(data_dir: Path, clock: FakeClock) -> None:
    store = StreamStore(data_dir, clock=clock)
    stream = store.create("s", [Column("v", parse_type("int64"))], StreamSettings(retention_ms=1000))
    stream.append_rows(None, [[1]])
    clock.advance(5)
    store.enforce_retention()
    assert stream.table().num_rows == 0 and stream.head == 1
    stream.append_rows(None, [[2]])
    assert stream.table().column("v").to_pylist() == [2]
    store.close()


def test_seek_time(log_dir: Path) -> None:
    log = StreamLog(log_dir, SCHEMA)
    log.append(batch(0, 5, t0_ms=1_000))  # _tp_time 1000..1004 ms
    log.append(batch(5, 5, t0_ms=2_000))  # 2005..2009 ms
    at = datetime.fromtimestamp
    assert log.seek_time(at(0, UTC)) == 0
    assert log.seek_time(at(1.003, UTC)) == 3
    assert log.seek_time(at(1.5, UTC)) == 5
    assert log.seek_time(at(2.007, UTC)) == 7
    assert log.seek_time(at(3, UTC)) == 10
    assert log.seek_time(datetime(1970, 1, 1, 0, 0, 1, 4000)) == 4  # naive means UTC
    log.close()


async def test_wait_for_wakes_on_append(log_dir: Path) -> None:
    log = StreamLog(log_dir, SCHEMA)
    assert await log.wait_for(0, 0.01) is False
    waiter = asyncio.create_task(log.wait_for(2, 10))
    await asyncio.sleep(0.01)
    log.append(batch(0, 2))  # rows 0, 1: not yet seq 2
    await asyncio.sleep(0.01)
    assert not waiter.done()
    started = time.monotonic()
    log.append(batch(2, 1))
    assert await waiter is True
    assert time.monotonic() - started < 1
    assert await log.wait_for(2, 0) is True
    log.close()


async def test_wait_for_wakes_on_append_from_another_thread(log_dir: Path) -> None:
    log = StreamLog(log_dir, SCHEMA)
    waiters = [asyncio.create_task(log.wait_for(0, 10)) for _ in range(3)]
    await asyncio.sleep(0.01)
    thread = threading.Thread(target=lambda: log.append(batch(0, 1)))
    started = time.monotonic()
    thread.start()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert time.monotonic() - started < 1
    thread.join()
    log.close()


async def test_wait_for_times_out_and_cleans_up(log_dir: Path) -> None:
    log = StreamLog(log_dir, SCHEMA)
    started = time.monotonic()
    assert await log.wait_for(0, 0.05) is False
    assert time.monotonic() - started >= 0.04
    assert log._waiters == []
    log.close()


WRITER = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from streams.test_log import SCHEMA, batch
from sinkflow.streams.log import StreamLog
log = StreamLog(Path({directory!r}), SCHEMA)
size = 1
while True:
    log.append(batch(log.head, size))
    print(log.head, flush=True)  # acknowledged: everything below this head must survive
    size = size % 97 + 1
"""


def test_kill_9_loses_no_acknowledged_append(log_dir: Path) -> None:
    import signal
    import subprocess
    import sys

    tests_dir = str(Path(__file__).resolve().parents[1])
    script = WRITER.format(tests=tests_dir, directory=str(log_dir))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    acknowledged = 0
    assert proc.stdout is not None
    for line in proc.stdout:
        acknowledged = int(line)
        if acknowledged > 20_000:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    log = StreamLog(log_dir, SCHEMA)
    assert log.head >= acknowledged
    # Every row is where its sequence number says, appends intact, nothing duplicated.
    assert log.table().column("v").to_pylist() == list(range(log.head))
    sizes = [b.num_rows for _, b in log.read(0, 10**9)]
    assert sizes[:97] == list(range(1, 98))
    head = log.head
    assert log.append(batch(head, 3)) == head
    log.close()


def test_concurrent_appends_get_disjoint_sequence_ranges(log_dir: Path) -> None:
    log = StreamLog(log_dir, SCHEMA, LogOptions(segment_bytes=20_000))
    firsts: list[tuple[int, int]] = []
    lock = threading.Lock()

    def writer(tag: int) -> None:
        for i in range(50):
            size = 1 + (tag + i) % 7
            seq = log.append(batch(tag * 1_000_000 + i * 10, size))
            with lock:
                firsts.append((seq, size))

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    firsts.sort()
    # The ranges tile 0..head exactly: no overlap, no gap.
    assert [s for s, _ in firsts] == [sum(n for _, n in firsts[:i]) for i in range(len(firsts))]
    assert log.head == sum(n for _, n in firsts)
    on_read = [(s, b.num_rows) for s, b in log.read(0, 10**9)]
    assert on_read == firsts
    log.close()
    assert [(s, b.num_rows) for s, b in StreamLog(log_dir, SCHEMA).read(0, 10**9)] == firsts


def test_sealed_segments_reopen_from_their_index(log_dir: Path) -> None:
    options = LogOptions(segment_bytes=3000)
    log = StreamLog(log_dir, SCHEMA, options)
    fill(log, [30] * 12)
    expected = seqs(log, 0, 10**9)
    log.close()
    indexes = sorted(log_dir.glob("*.idx"))
    assert [p.stem for p in indexes] == [p.stem for p in segment_files(log_dir)]  # every segment, the last on close
    log = StreamLog(log_dir, SCHEMA, options)
    assert seqs(log, 0, 10**9) == expected
    assert log.seek_time(datetime.fromtimestamp(0.2, UTC)) == 200  # event-time ranges come back too
    log.close()


def test_stale_or_damaged_index_falls_back_to_a_scan(log_dir: Path) -> None:
    log = StreamLog(log_dir, SCHEMA)
    fill(log, [3, 4])
    log.close()
    [index] = log_dir.glob("*.idx")
    # The process appended after reopening and crashed before sealing: the index is stale.
    log = StreamLog(log_dir, SCHEMA)
    fill(log, [5])
    del log  # no close: nothing rewrites the index
    log = StreamLog(log_dir, SCHEMA)
    assert seqs(log, 0, 100) == [(0, [0, 1, 2]), (3, [3, 4, 5, 6]), (7, [7, 8, 9, 10, 11])]
    log.close()
    index.write_bytes(b"not an arrow file")
    log = StreamLog(log_dir, SCHEMA)
    assert log.table().column("v").to_pylist() == list(range(12))
    log.close()


def test_retention_removes_index_files_with_their_segments(log_dir: Path) -> None:
    log = StreamLog(log_dir, SCHEMA, LogOptions(retention_bytes=8000))
    fill(log, [50] * 20)
    assert {p.stem for p in log_dir.glob("*.idx")} <= {p.stem for p in segment_files(log_dir)}
    log.close()
    assert {p.stem for p in log_dir.glob("*.idx")} == {p.stem for p in segment_files(log_dir)}
