"""The durable append-only log of one stream.

Layout: a directory of segment files named by the sequence number of their first row
(``00000000000000000000.arrows``). Each segment is an Arrow IPC *stream*: the schema message,
then one record-batch message per append (no end-of-stream marker, so a segment can be
reopened and appended to after a restart). Every row has a sequence number; an appended batch
occupies the contiguous range ``[seq, seq + rows)`` and stays one unit forever: :meth:`StreamLog.read`
never merges two appends, because the engine advances its watermark per appended batch.

Durability: each append is written with one ``write`` call on an unbuffered file (so it reaches
the OS before :meth:`append` returns) and, with ``fsync=True``, synced to the disk. After a crash
the tail of the last segment may hold a torn message: :class:`StreamLog` truncates it on open and
keeps everything before it.

Integrity: every append also writes a fixed-size record to the segment's journal
(``<first seq>.crc``): the batch's place, row count, event-time range and CRC-32 (zlib's
polynomial, computed by ISA-L's vectorised routine: several GB/s, the same values). A batch read
back from disk is checked against it the first time it is read after the log opens (a batch that
passed is not checked again while the log stays open: one check per batch, not per reader); a
damaged batch (bit rot, a stray write) is never served as data: it reads as zero rows at its
place, is logged, and counted in :attr:`StreamLog.damaged_rows`.
The journal also indexes the segment on open, so damage in the middle of a segment is not
mistaken for a torn tail (which would drop every batch after it).

Retention drops whole segments, oldest first, never the one being written: by size
(``retention_bytes``: total bytes of all segments) and by age (``retention_ms``: time since the
segment's last append). The active segment is rolled early enough that retention can bite
(see :meth:`StreamLog._roll_limits`).

Recent batches stay in memory (bounded by ``cache_bytes``) so tailing readers never touch disk;
older ones are read back zero-copy from a memory map of their segment.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import struct
import threading
import time
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from isal.isal_zlib import crc32

from sinkflow.streams.types import TP_TIME

log = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".arrows"
INDEX_SUFFIX = ".idx"
JOURNAL_SUFFIX = ".crc"
# One journal record per append: offset, bytes, rows, tmin, tmax (int64), CRC-32 (uint32).
_JOURNAL_RECORD = struct.Struct("<qqqqqI")
_SEQ_DIGITS = 20
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class LogOptions:
    """Tuning of a log. ``segment_bytes``: roll to a new segment file past this size;
    ``cache_bytes``: bytes of recent batches kept in memory; ``fsync``: sync each append to disk
    (slower; without it an append survives a process crash but not a power loss)."""

    segment_bytes: int = 64 * 1024 * 1024
    cache_bytes: int = 128 * 1024 * 1024
    fsync: bool = False
    retention_ms: int | None = None
    retention_bytes: int | None = None


class _Segment:
    """One segment file: its first sequence number, size and (lazily) a memory map for reads."""

    __slots__ = ("_map", "created_ms", "file", "first_seq", "journal", "journal_size", "last_append_ms", "path",
                 "schema", "size")

    def __init__(self, path: Path, first_seq: int, size: int, last_append_ms: int, created_ms: int) -> None:
        self.path = path
        self.first_seq = first_seq
        self.size = size
        self.last_append_ms = last_append_ms
        self.created_ms = created_ms
        self.file: io.FileIO | None = None  # the unbuffered append handle while this segment is active
        self.journal: io.FileIO | None = None  # and its journal's
        self.journal_size = 0  # bytes of the journal while it is open for appends
        self._map: pa.Buffer | None = None
        self.schema: pa.Schema | None = None  # set when written under an earlier schema of the log

    @property
    def journal_path(self) -> Path:
        return self.path.with_suffix(JOURNAL_SUFFIX)

    def buffer(self, end: int) -> pa.Buffer:
        """The file's bytes up to at least ``end``, memory-mapped (re-mapped when the file grew)."""
        if self._map is None or self._map.size < end:
            with pa.memory_map(str(self.path)) as mm:
                self._map = mm.read_buffer()
        return self._map

    def release(self) -> None:
        self._map = None
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.journal is not None:
            self.journal.close()
            self.journal = None


class _Entry:
    """One appended batch: where its rows and bytes are, its event-time range, its cached batch,
    its CRC-32 (None for segments written before checksums, or once its bytes on disk were found
    intact) and whether it was found damaged."""

    __slots__ = ("batch", "crc", "damaged", "nbytes", "offset", "rows", "segment", "seq", "tmax", "tmin")

    def __init__(
        self,
        seq: int,
        rows: int,
        segment: _Segment,
        offset: int,
        nbytes: int,
        tmin: int,
        tmax: int,
        batch: pa.RecordBatch | None,
        crc: int | None = None,
    ) -> None:
        self.seq = seq
        self.rows = rows
        self.segment = segment
        self.offset = offset
        self.nbytes = nbytes
        self.tmin = tmin
        self.tmax = tmax
        self.batch = batch
        self.crc = crc
        self.damaged = False


_SEQ_KEY = attrgetter("seq")


def _time_range(batch: pa.RecordBatch) -> tuple[int, int]:
    """Min and max ``_tp_time`` of a batch in epoch milliseconds (0, -1 when it has no rows)."""
    index = batch.schema.get_field_index(TP_TIME)
    if index < 0 or batch.num_rows == 0:
        return 0, -1
    mm = pc.min_max(batch.column(index))  # on the timestamps themselves: no cast, no copy
    lo, hi = mm["min"], mm["max"]
    return (lo.value if lo.is_valid else 0), (hi.value if hi.is_valid else -1)


def _segment_name(first_seq: int) -> str:
    return f"{first_seq:0{_SEQ_DIGITS}d}{SEGMENT_SUFFIX}"


def _now_ms(clock: Callable[[], float]) -> int:
    return int(clock() * 1000)


class StreamLog:
    """An append-only, durable, sequence-numbered log of Arrow record batches with one schema.

    Thread-safety: appends and reads may come from any thread (one lock guards the index);
    :meth:`wait_for` waiters are woken on their own event loop.
    """

    def __init__(
        self,
        directory: Path,
        schema: pa.Schema,
        options: LogOptions | None = None,
        clock: Callable[[], float] = time.time,
        upgrade: Callable[[pa.RecordBatch], pa.RecordBatch] | None = None,
    ) -> None:
        """Open (or create) the log in ``directory``, recovering from a crash: a torn last message
        is truncated away, everything before it is kept.

        ``upgrade`` turns a batch of a segment written under an earlier schema (before columns
        were added) into ``schema``; such segments are read through it and never appended to.
        Raises :class:`ValueError` when a segment holds a different schema and there is no
        ``upgrade``, or the schema's ``_tp_time`` (optional) is not a millisecond timestamp."""
        tp_index = schema.get_field_index(TP_TIME)
        if tp_index >= 0 and schema.field(tp_index).type not in (pa.timestamp("ms"), pa.timestamp("ms", tz="UTC")):
            raise ValueError(f"{TP_TIME} must be timestamp[ms], not {schema.field(tp_index).type}")
        self.directory = directory
        self.schema = schema
        self.options = options or LogOptions()
        self._clock = clock
        self._upgrade = upgrade
        self._lock = threading.RLock()
        self._segments: list[_Segment] = []
        self._entries: list[_Entry] = []
        self._head = 0
        self._cached_bytes = 0
        self._cache_from = 0  # index of the oldest entry whose batch is still cached
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[bool]]] = []
        self._schema_bytes = schema.serialize()
        self._closed = False
        #: Rows and batches found damaged on read (never served as data).
        self.damaged_rows = 0
        self.damaged_batches = 0
        directory.mkdir(parents=True, exist_ok=True)
        self._recover()

    # -- state -------------------------------------------------------------------------------

    @property
    def head(self) -> int:
        """The next sequence number (rows ever appended, including dropped ones)."""
        return self._head

    @property
    def start(self) -> int:
        """The first retained sequence number (== head when nothing is retained)."""
        with self._lock:
            return self._entries[0].seq if self._entries else self._head

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def size_bytes(self) -> int:
        """Bytes of all segment files."""
        with self._lock:
            return sum(s.size for s in self._segments)

    @property
    def segment_count(self) -> int:
        with self._lock:
            return len(self._segments)

    # -- recovery ----------------------------------------------------------------------------

    def _recover(self) -> None:
        paths = sorted(
            (p for p in self.directory.iterdir() if p.suffix == SEGMENT_SUFFIX and p.stem.isdigit()),
            key=lambda p: int(p.stem),
        )
        for path in paths:
            first_seq = int(path.stem)
            mtime_ms = int(path.stat().st_mtime * 1000)
            segment = _Segment(path, first_seq, 0, mtime_ms, mtime_ms)
            actual = path.stat().st_size
            if segment.journal_path.exists():
                self._load_journal(segment, actual)
                self._check_schema(segment, self._segment_schema(segment, actual))
                self._segments.append(segment)
                continue
            if self._load_index(segment, actual):
                segment.size = actual
                self._check_schema(segment, self._segment_schema(segment, actual))
                self._segments.append(segment)
                continue
            good_end = self._scan(segment, first_seq)
            if good_end < actual:
                log.warning("segment %s: dropping a torn tail of %d bytes after a crash", path, actual - good_end)
                os.truncate(path, good_end)
                segment.release()  # the map covered the torn bytes
            segment.size = good_end
            self._segments.append(segment)
        for stray in (*self.directory.glob("*" + INDEX_SUFFIX), *self.directory.glob("*" + JOURNAL_SUFFIX)):
            if not stray.with_suffix(SEGMENT_SUFFIX).exists():
                stray.unlink(missing_ok=True)  # its segment was dropped just before a crash
        for partial in self.directory.glob("*" + INDEX_SUFFIX + ".tmp"):
            partial.unlink(missing_ok=True)  # an index write cut short
        if self._segments:
            last = self._segments[-1]
            self._head = max(self._head, last.first_seq)
            if self._entries:
                tail = self._entries[-1]
                self._head = max(self._head, tail.seq + tail.rows)
            if last.schema is not None and not any(e.segment is last for e in self._entries):
                # An empty segment of the earlier schema: the next append starts a new one in its place.
                self._segments.pop()
                last.release()
                for path in (last.path, last.path.with_suffix(INDEX_SUFFIX), last.journal_path):
                    path.unlink(missing_ok=True)
            elif last.schema is not None or (last.size > len(self._schema_bytes) and not last.journal_path.exists()):
                # Of an earlier schema, or written before checksums: new appends go to a new
                # journaled segment of the current schema.
                self._seal(last)
            else:
                self._open_for_append(last)

    def _segment_schema(self, segment: _Segment, size: int) -> pa.Schema | None:
        """The schema message a segment starts with (None when it has none)."""
        try:
            return pa.ipc.read_schema(pa.ipc.read_message(pa.BufferReader(segment.buffer(size))))
        except (OSError, pa.ArrowInvalid, EOFError):
            return None

    def _check_schema(self, segment: _Segment, schema: pa.Schema | None) -> None:
        """Note a segment of an earlier schema; raise :class:`ValueError` when it cannot be read."""
        if schema is None or schema.equals(self.schema):
            return
        if self._upgrade is None:
            raise ValueError(f"segment {segment.path} holds schema {schema}, expected {self.schema}")
        segment.schema = schema

    def _scan(self, segment: _Segment, first_seq: int) -> int:
        """Index every complete batch of ``segment``; return the byte offset where valid data ends."""
        size = segment.path.stat().st_size
        if size == 0:
            return 0
        buf = segment.buffer(size)
        reader = pa.BufferReader(buf)
        try:
            schema = pa.ipc.read_schema(pa.ipc.read_message(reader))
        except (OSError, pa.ArrowInvalid, EOFError):
            return 0
        self._check_schema(segment, schema)
        seq = first_seq
        good: int = reader.tell()
        while good < size:
            try:
                message = pa.ipc.read_message(reader)
                batch = pa.ipc.read_record_batch(message, segment.schema or self.schema)
            except EOFError:
                # An end-of-stream marker: only a closed writer leaves one; nothing follows it.
                return good
            except (OSError, pa.ArrowInvalid):
                return good
            end: int = reader.tell()
            tmin, tmax = _time_range(batch)
            self._entries.append(_Entry(seq, batch.num_rows, segment, good, end - good, tmin, tmax, None))
            seq += batch.num_rows
            good = end
        return good

    def _load_journal(self, segment: _Segment, size: int) -> None:
        """Index ``segment`` from its journal. Data past the last complete record is a torn
        append (its record was never written): truncated away, as is a torn record."""
        raw = segment.journal_path.read_bytes()
        complete = len(raw) // _JOURNAL_RECORD.size
        seq, end = segment.first_seq, len(self._schema_bytes) if size else 0
        for i in range(complete):
            offset, nbytes, rows, tmin, tmax, crc = _JOURNAL_RECORD.unpack_from(raw, i * _JOURNAL_RECORD.size)
            if offset + nbytes > size:  # the data never reached the file: keep what did
                complete = i
                break
            self._entries.append(_Entry(seq, rows, segment, offset, nbytes, tmin, tmax, None, crc))
            seq += rows
            end = offset + nbytes
        if len(raw) > complete * _JOURNAL_RECORD.size:
            os.truncate(segment.journal_path, complete * _JOURNAL_RECORD.size)
        if size > end:
            log.warning("segment %s: dropping a torn tail of %d bytes after a crash", segment.path, size - end)
            os.truncate(segment.path, end)
        segment.size = min(size, end)

    # -- segment index -----------------------------------------------------------------------

    def _seal(self, segment: _Segment) -> None:
        """Stop appending to ``segment`` and write its index, so reopening reads the index instead
        of scanning every message. An index is trusted only while the segment keeps the size it
        records (segments only grow, so that size pins the content). A failed index write only
        costs a scan at the next open."""
        segment.release()
        rows = [e for e in self._entries if e.segment is segment]
        table = pa.table(
            {
                "offset": pa.array([e.offset for e in rows], pa.int64()),
                "nbytes": pa.array([e.nbytes for e in rows], pa.int64()),
                "rows": pa.array([e.rows for e in rows], pa.int64()),
                "tmin": pa.array([e.tmin for e in rows], pa.int64()),
                "tmax": pa.array([e.tmax for e in rows], pa.int64()),
            }
        ).replace_schema_metadata({"segment_size": str(segment.size)})
        path = segment.path.with_suffix(INDEX_SUFFIX)
        tmp = path.with_suffix(INDEX_SUFFIX + ".tmp")
        try:
            with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("segment %s: could not write its index (%s); the next open scans it", segment.path, exc)

    def _load_index(self, segment: _Segment, size: int) -> bool:
        """Index ``segment`` from its index file; False (nothing loaded) when there is none or it is stale."""
        path = segment.path.with_suffix(INDEX_SUFFIX)
        if not path.exists():
            return False
        try:
            with pa.memory_map(str(path)) as source:
                table = pa.ipc.open_file(source).read_all()
        except (OSError, pa.ArrowInvalid):
            return False
        metadata = table.schema.metadata or {}
        if metadata.get(b"segment_size") != str(size).encode():
            path.unlink(missing_ok=True)  # the segment changed after the index was written
            return False
        columns = table.to_pydict()
        seq = segment.first_seq
        for offset, nbytes, rows, tmin, tmax in zip(
            columns["offset"], columns["nbytes"], columns["rows"], columns["tmin"], columns["tmax"], strict=True
        ):
            self._entries.append(_Entry(seq, rows, segment, offset, nbytes, tmin, tmax, None))
            seq += rows
        return True

    # -- appending ---------------------------------------------------------------------------

    def _open_for_append(self, segment: _Segment) -> None:
        if segment.size == 0:
            with open(segment.path, "wb") as f:
                f.write(self._schema_bytes)
                if self.options.fsync:
                    os.fsync(f.fileno())
            if self.options.fsync:
                # The new file's directory entry must be durable too, or a power loss could lose it.
                dir_fd = os.open(self.directory, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
            segment.size = len(self._schema_bytes)
        segment.file = open(segment.path, "ab", buffering=0)  # noqa: SIM115 - held open while active
        segment.journal = open(segment.journal_path, "ab", buffering=0)  # noqa: SIM115 - likewise
        segment.journal_size = os.fstat(segment.journal.fileno()).st_size

    def _new_segment(self) -> _Segment:
        now = _now_ms(self._clock)
        segment = _Segment(self.directory / _segment_name(self._head), self._head, 0, now, now)
        self._open_for_append(segment)
        self._segments.append(segment)
        return segment

    def _roll_limits(self) -> tuple[int, int | None]:
        """(max segment bytes, max segment age ms): small enough that retention drops data in
        steps of about a quarter of its limit rather than waiting for one huge segment."""
        size = self.options.segment_bytes
        if self.options.retention_bytes is not None:
            size = min(size, max(self.options.retention_bytes // 4, 1))
        age = None if self.options.retention_ms is None else max(self.options.retention_ms // 4, 1)
        return size, age

    def _active(self, now_ms: int) -> _Segment:
        segment = self._segments[-1] if self._segments else None
        if segment is None or segment.file is None:
            return self._new_segment()
        max_size, max_age = self._roll_limits()
        has_data = segment.size > len(self._schema_bytes)
        too_old = max_age is not None and now_ms - segment.created_ms >= max_age
        if has_data and (segment.size >= max_size or too_old):
            self._seal(segment)
            return self._new_segment()
        return segment

    def append(self, batch: pa.RecordBatch, time_range: tuple[int, int] | None = None) -> int:
        """Append ``batch`` (must have exactly the log's schema) durably; return its first seq.
        ``time_range``: the batch's min and max ``_tp_time`` (epoch ms) when the caller knows
        them (else they are computed).

        The batch is on its way to disk (written to the OS, synced with ``fsync``) when this returns.
        Raises :class:`ValueError` for a schema mismatch, :class:`OSError` when the write fails
        (then nothing of the batch is kept)."""
        if not batch.schema.equals(self.schema):
            raise ValueError(f"batch schema {batch.schema} does not match the log's {self.schema}")
        data = batch.serialize()
        with self._lock:
            if self._closed:
                raise ValueError(f"log {self.directory} is closed")
            now = _now_ms(self._clock)
            segment = self._active(now)
            offset = segment.size
            tmin, tmax = _time_range(batch) if time_range is None else time_range
            crc = crc32(data)
            self._write(segment, data, offset,
                        _JOURNAL_RECORD.pack(offset, data.size, batch.num_rows, tmin, tmax, crc))
            seq = self._head
            self._entries.append(_Entry(seq, batch.num_rows, segment, offset, data.size, tmin, tmax, batch, crc))
            segment.size = offset + data.size
            segment.last_append_ms = now
            self._head = seq + batch.num_rows
            self._cached_bytes += data.size
            self._evict()
            self._apply_retention(now)
            self._notify()
        return seq

    def _write(self, segment: _Segment, data: pa.Buffer, offset: int, record: bytes) -> None:
        """Write ``data`` at ``offset`` of the segment, then its journal ``record``; on any
        failure neither is kept."""
        f, journal = segment.file, segment.journal
        assert f is not None and journal is not None
        journal_size = segment.journal_size
        try:
            _write_all(f, memoryview(data))
            _write_all(journal, memoryview(record))
            if self.options.fsync:
                os.fsync(f.fileno())
                os.fsync(journal.fileno())
        except BaseException:
            # Leave no half message behind: the next append must start at a message boundary.
            os.truncate(segment.path, offset)
            os.truncate(segment.journal_path, journal_size)
            raise
        segment.journal_size = journal_size + len(record)

    def _evict(self) -> None:
        budget = self.options.cache_bytes
        entries = self._entries
        i = self._cache_from
        # Keep at least the newest batch cached so a tailing reader never waits on disk.
        while self._cached_bytes > budget and i < len(entries) - 1:
            entry = entries[i]
            if entry.batch is not None:
                entry.batch = None
                self._cached_bytes -= entry.nbytes
            i += 1
        self._cache_from = i

    # -- retention ---------------------------------------------------------------------------

    def enforce_retention(self) -> int:
        """Apply retention now (appends do it too); return the number of segments dropped.
        A quiet stream's expired active segment is closed and dropped here."""
        with self._lock:
            return self._apply_retention(_now_ms(self._clock), roll_expired=True)

    def _apply_retention(self, now_ms: int, roll_expired: bool = False) -> int:
        retention_ms, retention_bytes = self.options.retention_ms, self.options.retention_bytes
        if retention_ms is None and retention_bytes is None:
            return 0
        if roll_expired and retention_ms is not None and self._segments:
            active = self._segments[-1]
            if active.size > len(self._schema_bytes) and now_ms - active.last_append_ms >= retention_ms:
                self._seal(active)
                # An empty successor keeps the head durable: its name is the next seq.
                self._new_segment()
        dropped = 0
        total = sum(s.size for s in self._segments)
        while len(self._segments) > 1:
            oldest = self._segments[0]
            too_big = retention_bytes is not None and total > retention_bytes
            too_old = retention_ms is not None and now_ms - oldest.last_append_ms >= retention_ms
            if not (too_big or too_old):
                break
            self._drop_oldest()
            total -= oldest.size
            dropped += 1
        return dropped

    def _drop_oldest(self) -> None:
        segment = self._segments.pop(0)
        n = 0
        while n < len(self._entries) and self._entries[n].segment is segment:
            if self._entries[n].batch is not None:
                self._cached_bytes -= self._entries[n].nbytes
            n += 1
        del self._entries[:n]
        self._cache_from = max(0, self._cache_from - n)
        segment.release()
        segment.path.unlink(missing_ok=True)
        segment.path.with_suffix(INDEX_SUFFIX).unlink(missing_ok=True)
        segment.journal_path.unlink(missing_ok=True)

    # -- reading -----------------------------------------------------------------------------

    def _batch(self, entry: _Entry) -> pa.RecordBatch:
        """The entry's rows; a damaged entry (checksum mismatch, unreadable message) reads as
        zero rows, and is logged and counted the first time it is found."""
        batch = entry.batch
        if batch is not None:
            return batch
        if not entry.damaged:
            try:
                data = entry.segment.buffer(entry.offset + entry.nbytes).slice(entry.offset, entry.nbytes)
                if data.size == entry.nbytes and (entry.crc is None or crc32(data) == entry.crc):
                    entry.crc = None  # intact: later reads of these bytes skip the check
                    message = pa.ipc.read_message(data)
                    if entry.segment.schema is not None and self._upgrade is not None:
                        return self._upgrade(pa.ipc.read_record_batch(message, entry.segment.schema))
                    return pa.ipc.read_record_batch(message, self.schema)
            except (OSError, pa.ArrowInvalid, EOFError):
                pass
            entry.damaged = True
            self.damaged_batches += 1
            self.damaged_rows += entry.rows
            log.error("stream log %s: the batch of rows %d..%d in %s is damaged (checksum mismatch); "
                      "it is skipped, never served as data", self.directory, entry.seq, entry.seq + entry.rows - 1,
                      entry.segment.path.name)
        return pa.RecordBatch.from_pylist([], schema=self.schema)

    def read(self, seq: int, max_rows: int) -> list[tuple[int, pa.RecordBatch]]:
        """Batches from ``seq`` on, as ``(first seq, batch)`` pairs, one per appended batch.

        The first batch is sliced when ``seq`` falls inside it; the others are whole appends. A
        damaged batch comes back as zero rows placed at its end (see :meth:`_batch`).
        At least one batch comes back when data exists at or after ``seq``; more follow while the
        total stays within ``max_rows``. A ``seq`` older than :attr:`start` (dropped by retention)
        reads from the oldest retained row. Returns ``[]`` when ``seq >= head``."""
        out: list[tuple[int, pa.RecordBatch]] = []
        with self._lock:
            entries = self._entries
            if seq >= self._head or not entries:
                return out
            i = max(bisect_right(entries, seq, key=_SEQ_KEY) - 1, 0)
            entry = entries[i]
            if seq >= entry.seq + entry.rows:  # seq falls in a gap (after a truncated segment)
                i += 1
                if i >= len(entries):
                    return out
                entry = entries[i]
            skip = seq - entry.seq if seq > entry.seq else 0
            batch = self._batch(entry)
            if entry.damaged:  # zero rows at its end, so readers move past it
                out.append((entry.seq + entry.rows, batch))
            else:
                out.append((entry.seq + skip, batch.slice(skip) if skip else batch))
            total = batch.num_rows
            for j in range(i + 1, len(entries)):  # no slice: a long log would be copied per read
                entry = entries[j]
                if total + entry.rows > max_rows:
                    break
                batch = self._batch(entry)
                out.append((entry.seq + entry.rows if entry.damaged else entry.seq, batch))
                total += entry.rows
        return out

    def table(self) -> pa.Table:
        """Every retained row as one table (the appended batches concatenated, zero-copy)."""
        with self._lock:
            batches = [self._batch(e) for e in self._entries]
        return pa.Table.from_batches(batches, schema=self.schema)

    def seek_time(self, ts: datetime) -> int:
        """The seq of the first row with ``_tp_time >= ts`` in the first appended batch that has one
        (a naive ``ts`` is UTC); rows after it may still be older (events arrive out of order).
        Returns :attr:`head` when no retained row is that recent."""
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        delta = ts - _EPOCH
        # Exact integer milliseconds, rounded up: a row at 1003 ms is not at or after 1003.5 ms.
        target = (delta.days * 86_400 + delta.seconds) * 1000 + -(-delta.microseconds // 1000)
        with self._lock:
            for entry in self._entries:
                if entry.tmax >= target:
                    column = self._batch(entry).column(TP_TIME).cast(pa.int64())
                    index = pc.index(pc.greater_equal(column, target), True).as_py()
                    return entry.seq + max(int(index), 0)
            return self._head

    # -- waiting -----------------------------------------------------------------------------

    async def wait_for(self, seq: int, timeout: float) -> bool:
        """Wait until ``head > seq`` (a row with sequence number ``seq`` exists) or ``timeout``
        seconds pass; return whether it exists. Appends from any thread wake the waiter."""
        if self._head > seq:
            return True
        if timeout <= 0 or self._closed:
            return False
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        waiter = (seq, loop, future)
        with self._lock:
            if self._head > seq:
                return True
            self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            pass
        finally:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        return self._head > seq

    def _notify(self) -> None:
        if not self._waiters:
            return
        head = self._head
        ready = [w for w in self._waiters if w[0] < head]
        if not ready:
            return
        self._waiters = [w for w in self._waiters if w[0] >= head]
        self._wake(ready)

    @staticmethod
    def _wake(ready: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[bool]]]) -> None:
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for _, loop, future in ready:
            if loop is current:
                _resolve(future)
            else:
                # A closed loop raises RuntimeError: nobody is waiting there any more.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_resolve, future)

    def close(self) -> None:
        """Close the segment files and wake every waiter (they see no new rows); the log can be
        reopened from its directory."""
        with self._lock:
            self._closed = True
            self._wake(list(self._waiters))
            self._waiters = []
            if self._segments and self._segments[-1].file is not None:
                self._seal(self._segments[-1])  # so the next open need not scan it
            for segment in self._segments:
                segment.release()
            for entry in self._entries:
                entry.batch = None
            self._cached_bytes = 0


def _write_all(f: io.FileIO, view: memoryview) -> None:
    written = 0
    while written < len(view):
        written += f.write(view[written:]) or 0


def _resolve(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(True)
