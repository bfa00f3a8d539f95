"""Damaged bytes on disk are detected by each batch's checksum and never served as data."""

from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path

import pytest

from sinkflow.streams.log import LogOptions, StreamLog

from .test_log import SCHEMA, batch, fill

RECORD = struct.Struct("<qqqqqI")


def damage(directory: Path, batch_index: int, *, headers: bool = False) -> None:
    """Overwrite 16 bytes in the middle of the ``batch_index``-th append of the first segment
    (or, with ``headers``, random bytes over its message header)."""
    [journal] = sorted(directory.glob("*.crc"))
    offset, nbytes, *_ = RECORD.unpack_from(journal.read_bytes(), batch_index * RECORD.size)
    with open(journal.with_suffix(".arrows"), "r+b") as f:
        f.seek(offset + 8 if headers else offset + nbytes // 2)
        f.write(os.urandom(nbytes // 4) if headers else b"\xde\xad\xbe\xef" * 4)


def values(entries: list[tuple[int, object]]) -> list[int]:
    return [v for _, b in entries for v in b.column("v").to_pylist()]  # type: ignore[attr-defined]


@pytest.mark.parametrize("sealed", [True, False], ids=["sealed segment", "active segment after a crash"])
def test_a_damaged_batch_is_skipped_and_counted_and_the_rest_is_intact(
        tmp_path: Path, sealed: bool, caplog: pytest.LogCaptureFixture) -> None:
    log = StreamLog(tmp_path, SCHEMA)
    fill(log, [100] * 5)
    if sealed:
        log.close()  # seals the segment (its index written)
    damage(tmp_path, 2)
    reopened = StreamLog(tmp_path, SCHEMA, LogOptions(cache_bytes=0))
    assert reopened.head == 500
    with caplog.at_level(logging.ERROR, logger="sinkflow.streams.log"):
        got = reopened.read(0, 10_000)
    assert values(got) == [*range(0, 200), *range(300, 500)]
    assert (reopened.damaged_rows, reopened.damaged_batches) == (100, 1)
    assert "rows 200..299" in caplog.text and "damaged" in caplog.text
    # A reader inside the damaged batch moves past it; the count does not grow on a second read.
    inside = reopened.read(250, 10_000)
    assert inside[0][0] == 300 and inside[0][1].num_rows == 0  # type: ignore[attr-defined]
    assert values(inside) == list(range(300, 500))
    assert reopened.table().num_rows == 400 and reopened.damaged_rows == 100
    # New appends still work and are checked as well.
    fill(reopened, [10])
    reopened.close()
    again = StreamLog(tmp_path, SCHEMA, LogOptions(cache_bytes=0))
    assert values(again.read(490, 10_000)) == list(range(490, 510))


def test_damage_in_the_middle_of_the_active_segment_is_not_a_torn_tail(tmp_path: Path) -> None:
    log = StreamLog(tmp_path, SCHEMA)
    fill(log, [50] * 4)
    # Like a crash: nothing sealed; then the headers of the second append are damaged too.
    damage(tmp_path, 1, headers=True)
    reopened = StreamLog(tmp_path, SCHEMA, LogOptions(cache_bytes=0))
    assert reopened.head == 200
    assert values(reopened.read(0, 10_000)) == [*range(0, 50), *range(100, 200)]


def test_a_torn_append_after_a_crash_is_still_truncated(tmp_path: Path) -> None:
    log = StreamLog(tmp_path, SCHEMA)
    fill(log, [10, 10])
    [segment] = sorted(tmp_path.glob("*.arrows"))
    # A write that reached the segment but not its journal record, as a crash between them leaves.
    with open(segment, "ab") as f:
        f.write(batch(20, 10).serialize().to_pybytes()[:100])
    reopened = StreamLog(tmp_path, SCHEMA)
    assert reopened.head == 20
    fill(reopened, [5])
    assert values(reopened.read(0, 100)) == list(range(25))


def test_the_journal_holds_zlib_crc32_of_each_append(tmp_path: Path) -> None:
    """Journals written by any version read alike: each record's checksum is zlib's CRC-32 of the
    append's bytes in the segment."""
    log = StreamLog(tmp_path, SCHEMA)
    fill(log, [100, 7, 1000])
    log.close()
    [journal] = sorted(tmp_path.glob("*.crc"))
    raw, data = journal.read_bytes(), journal.with_suffix(".arrows").read_bytes()
    records = [RECORD.unpack_from(raw, i * RECORD.size) for i in range(len(raw) // RECORD.size)]
    assert [rows for _, _, rows, *_ in records] == [100, 7, 1000]
    assert all(crc == zlib.crc32(data[offset:offset + nbytes]) for offset, nbytes, _, _, _, crc in records)


def test_damage_is_found_on_the_first_read_of_a_batch_from_disk(tmp_path: Path) -> None:
    log = StreamLog(tmp_path, SCHEMA)
    fill(log, [100] * 3)
    log.close()
    reopened = StreamLog(tmp_path, SCHEMA, LogOptions(cache_bytes=0))
    assert values(reopened.read(0, 100)) == list(range(100))  # the first batch, intact
    damage(tmp_path, 1)
    assert values(reopened.read(0, 10_000)) == [*range(0, 100), *range(200, 300)]
    assert (reopened.damaged_rows, reopened.damaged_batches) == (100, 1)
