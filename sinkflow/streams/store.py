"""Streams: named, typed, durable append-only logs with an event time per row.

Each stream lives in ``data_dir/streams/<name>/``: ``stream.json`` (its columns as Timeplus type
strings and its settings) and ``log/`` (the segments of its :class:`~sinkflow.streams.log.StreamLog`).
:class:`StreamStore` reloads every stream from there on start. Every stream's last column is
``_tp_time datetime64(3, 'UTC')``: the event time, taken from ``event_time_column`` or the time
of ingest.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sinkflow.errors import AlreadyExists, InvalidInput, NotFound
from sinkflow.streams.ingest import default_array, fill_defaults, rows_to_batch, show_value
from sinkflow.streams.log import LogOptions, StreamLog
from sinkflow.streams.types import TP_TIME, TP_TIME_TYPE, Column, parse_type

logger = logging.getLogger(__name__)

#: The longest name of a stream, view, sink or column (a stream's name is a directory name).
MAX_NAME_LENGTH = 128
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_META = "stream.json"
_META_VERSION = 1
_DROPPED_PREFIX = ".dropped-"


def check_identifier(kind: str, name: object) -> str:
    """Return ``name`` when it is an identifier ``[A-Za-z_][A-Za-z0-9_]*`` of at most
    :data:`MAX_NAME_LENGTH` characters.

    Raises :class:`InvalidInput` naming the ``kind`` ("stream", "column") and the bad name."""
    if isinstance(name, str) and len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"{kind} name '{name[:24]}…' is {len(name):,} characters long; "
                           f"the limit is {MAX_NAME_LENGTH}")
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise InvalidInput(
            f"invalid {kind} name {show_value(name)}: use letters, digits and '_', not starting with a digit"
        )
    return name


@dataclass(frozen=True)
class StreamSettings:
    """Per-stream settings (Timeplus's ``SETTINGS`` of ``CREATE STREAM``).

    ``event_time_column`` names a datetime/datetime64 column that becomes ``_tp_time`` (else the
    ingest time does); ``retention_ms`` / ``retention_bytes`` bound the data kept (whole old
    segments are dropped); ``description`` is free text."""

    event_time_column: str | None = None
    retention_ms: int | None = None
    retention_bytes: int | None = None
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StreamSettings:
        """Settings from a mapping, as REST bodies and SQL ``SETTINGS`` give them. Timeplus's names
        ``logstore_retention_ms`` / ``logstore_retention_bytes`` are accepted for the retention
        settings; numbers may come as text (``'86400000'``); ``None`` values are ignored.

        Raises :class:`InvalidInput` naming an unknown setting or a value of the wrong type."""
        values: dict[str, Any] = {}
        for key, value in data.items():
            name = _SETTING_ALIASES.get(key, key)
            if value is None:
                continue
            if name in ("retention_ms", "retention_bytes"):
                values[name] = _positive_int(key, value)
            elif name in ("event_time_column", "description"):
                if not isinstance(value, str):
                    raise InvalidInput(f"setting '{key}' must be a string, got {show_value(value)}")
                values[name] = value
            else:
                raise InvalidInput(
                    f"unknown stream setting '{key}' (known: event_time_column, retention_ms, retention_bytes, "
                    "logstore_retention_ms, logstore_retention_bytes, description)"
                )
        return cls(**values)


_SETTING_ALIASES = {"logstore_retention_ms": "retention_ms", "logstore_retention_bytes": "retention_bytes"}


def _positive_int(key: str, value: object) -> int:
    """``value`` as a positive integer (text such as ``'1000'`` allowed), else :class:`InvalidInput`."""
    number: object = value
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
        raise InvalidInput(f"setting '{key}' must be a positive integer, got {show_value(value)}")
    return number


@dataclass(frozen=True)
class AppendResult:
    """Where an append landed: rows ``first_seq .. first_seq + count - 1``."""

    first_seq: int
    count: int


def _validate(name: str, columns: Sequence[Column], settings: StreamSettings) -> tuple[list[Column], StreamSettings]:
    """The user columns of a new stream (without ``_tp_time``) and its settings (numbers given as
    text made numbers), after checking everything.

    Raises :class:`InvalidInput` naming the stream, column or setting at fault."""
    check_identifier("stream", name)
    if not columns:
        raise InvalidInput(f"stream '{name}' needs at least one column")
    user: list[Column] = []
    seen: set[str] = set()
    for column in columns:
        check_identifier("column", column.name)
        if column.name in seen:
            raise InvalidInput(f"column '{column.name}' is defined twice in stream '{name}'")
        seen.add(column.name)
        if column.name == TP_TIME:
            if not pa.types.is_timestamp(column.type.arrow):
                raise InvalidInput(f"column '{TP_TIME}' is the event time: it must be datetime64(3), not {column.type}")
            continue  # every stream has it anyway, typed datetime64(3, 'UTC')
        if column.default is not None:
            # A default the store would not apply is refused rather than silently dropped.
            raise InvalidInput(
                f"column '{column.name}': DEFAULT expressions are not supported (a value missing from an "
                "ingest is null for nullable columns, else the type's zero value)"
            )
        user.append(column)
    if not user:
        raise InvalidInput(f"stream '{name}' needs at least one column besides {TP_TIME}")
    etc = settings.event_time_column
    if etc is not None:
        match = next((c for c in user if c.name == etc), None)
        if match is None:
            raise InvalidInput(f"event_time_column '{etc}' is not a column of stream '{name}'")
        if not pa.types.is_timestamp(match.type.arrow):
            raise InvalidInput(f"event_time_column '{etc}' must be a datetime or datetime64 column, not {match.type}")
    if settings.retention_ms is not None:
        settings = replace(settings, retention_ms=_positive_int("retention_ms", settings.retention_ms))
    if settings.retention_bytes is not None:
        settings = replace(settings, retention_bytes=_positive_int("retention_bytes", settings.retention_bytes))
    if not isinstance(settings.description, str):
        raise InvalidInput("setting 'description' must be a string")
    return user, settings


class Stream:
    """One stream: its schema (user columns then ``_tp_time``), settings and durable log."""

    def __init__(
        self,
        name: str,
        user_columns: list[Column],
        settings: StreamSettings,
        directory: Path,
        options: LogOptions,
        clock: Callable[[], float],
    ) -> None:
        self.name = name
        self.settings = settings
        self.directory = directory
        self.user_columns = user_columns
        self.columns: list[Column] = [*user_columns, Column(TP_TIME, TP_TIME_TYPE)]
        self.schema = pa.schema(
            [c.arrow_field() for c in user_columns] + [pa.field(TP_TIME, TP_TIME_TYPE.arrow, nullable=False)]
        )
        self._clock = clock
        self._by_name = {c.name: i for i, c in enumerate(user_columns)}
        self._user_names = [c.name for c in user_columns]
        self._user_types = [c.type.arrow for c in user_columns]
        self._event_index = None if settings.event_time_column is None else self._by_name[settings.event_time_column]
        log_options = replace(options, retention_ms=settings.retention_ms, retention_bytes=settings.retention_bytes)
        self.log = StreamLog(directory / "log", self.schema, log_options, clock)

    @property
    def head(self) -> int:
        """The next sequence number (= rows ever appended)."""
        return self.log.head

    @property
    def start(self) -> int:
        """The first retained sequence number."""
        return self.log.start

    def append_rows(self, columns: list[str] | None, rows: list[list[Any]], first_row: int = 1) -> AppendResult:
        """Validate and append rows as users send them (see :mod:`sinkflow.streams.ingest`).

        ``columns`` names the values of each row (``None``: all user columns in order); missing
        columns get their defaults. Raises :class:`InvalidInput` naming the row (numbered from
        ``first_row``), column and value; then nothing is stored."""
        batch = rows_to_batch(self.name, self.user_columns, columns, rows, first_row)
        return self.append_batch(batch)

    def append_batch(self, batch: pa.RecordBatch | pa.Table) -> AppendResult:
        """Append a typed batch (a table is appended as one batch): columns matched by name, cast
        safely to the stream's types, missing ones defaulted; ``_tp_time`` is taken from the batch
        when it has it, else from ``event_time_column``, else the ingest time (nulls also get the
        ingest time). Nulls in a non-nullable column become the type's default, as in Timeplus.
        The rows get consecutive sequence numbers and stay one unit for readers.

        Raises :class:`InvalidInput` for an unknown column or a type that does not cast; then
        nothing is stored."""
        if batch.num_rows == 0:
            return AppendResult(self.head, 0)
        if isinstance(batch, pa.Table):
            batch = batch.combine_chunks().to_batches()[0]
        stored, now = self._conform(batch)
        # Event times all taken from the clock need no scan for the log's time index.
        first = self.log.append(stored, None if now is None else (now, now))
        return AppendResult(first, stored.num_rows)

    def _conform(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, int | None]:
        """``batch`` in the stream's schema, and the ingest time (ms) when every row got it as ``_tp_time``."""
        if batch.schema.names == self._user_names and batch.schema.types == self._user_types:
            # Already the stream's user columns, in order (the common case): nothing to look up or cast.
            arrays = [fill_defaults(c.type, a) for c, a in zip(self.user_columns, batch.columns)]
            tp_index = -1
        else:
            arrays = self._user_arrays(batch)
            tp_index = batch.schema.get_field_index(TP_TIME)
        if tp_index >= 0:
            event_time = batch.column(tp_index)
            if not pa.types.is_timestamp(event_time.type):
                raise InvalidInput(f"column '{TP_TIME}' must hold timestamps, not {event_time.type}")
        elif self._event_index is not None:
            event_time = arrays[self._event_index]
        else:
            event_time = None
        tp_time, now = self._tp_time(event_time, batch.num_rows)
        arrays.append(tp_time)
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema), now

    def _user_arrays(self, batch: pa.RecordBatch) -> list[pa.Array]:
        """The user columns of ``batch`` matched by name, cast to the stream's types, missing ones defaulted."""
        count = batch.num_rows
        for name in batch.schema.names:
            if name not in self._by_name and name != TP_TIME:
                raise InvalidInput(f"unknown column '{name}' in stream '{self.name}'")
        arrays: list[pa.Array] = []
        for column in self.user_columns:
            index = batch.schema.get_field_index(column.name)
            if index < 0:
                arrays.append(default_array(column.type, count))
                continue
            array = batch.column(index)
            if array.type != column.type.arrow:
                try:
                    array = array.cast(column.type.arrow)
                except pa.ArrowException as exc:
                    raise InvalidInput(
                        f"column '{column.name}': cannot store {array.type} values as {column.type}: {exc}"
                    ) from None
            arrays.append(fill_defaults(column.type, array))
        return arrays

    def _tp_time(self, event_time: pa.Array | None, count: int) -> tuple[pa.Array, int | None]:
        """The ``_tp_time`` column: ``event_time`` with its nulls set to now, or now for every row
        (then now, in ms, is returned as well, else None)."""
        target = TP_TIME_TYPE.arrow
        now = int(self._clock() * 1000)
        if event_time is None:
            # ``count`` copies of one int64, built as bytes: no compute call per append.
            values = pa.py_buffer(now.to_bytes(8, sys.byteorder, signed=True) * count)
            return pa.Array.from_buffers(target, count, [None, values]), now
        if event_time.type != target:
            # Sub-millisecond digits are cut, as datetime64(3) keeps milliseconds.
            event_time = event_time.cast(target, safe=False)
        if event_time.null_count:
            event_time = pc.fill_null(event_time, pa.scalar(now, target))
        return event_time, None

    def read(self, seq: int, max_rows: int) -> list[tuple[int, pa.RecordBatch]]:
        """See :meth:`StreamLog.read`: whole appended batches from ``seq`` (the first may be sliced).

        Raises :class:`NotFound` once the stream was dropped (or the store closed)."""
        if self.log.closed:
            raise NotFound(f"stream '{self.name}' was dropped")
        return self.log.read(seq, max_rows)

    async def wait_for(self, seq: int, timeout: float) -> bool:
        """True once ``head > seq``; False after ``timeout`` seconds without that."""
        return await self.log.wait_for(seq, timeout)

    def seek_time(self, ts: datetime) -> int:
        """See :meth:`StreamLog.seek_time`."""
        return self.log.seek_time(ts)

    def table(self) -> pa.Table:
        """All retained rows (with ``_tp_time``) as one table."""
        return self.log.table()

    def to_dict(self) -> dict[str, Any]:
        """The stream as the REST API describes it (Timeplus's shape plus our offsets)."""
        return {
            "name": self.name,
            "columns": [c.to_dict() for c in self.columns],
            **self.settings.to_dict(),
            "head": self.head,
            "start": self.start,
        }

    def close(self) -> None:
        self.log.close()


@dataclass
class _Meta:
    name: str
    columns: list[dict[str, object]]
    settings: dict[str, Any] = field(default_factory=dict)
    version: int = _META_VERSION


class StreamStore:
    """All streams under ``data_dir/streams``; reloads them on construction.

    ``log_options`` tunes every log (segment size, cache, fsync); ``clock`` (seconds since the
    epoch) is the ingest time and retention clock, replaceable in tests."""

    def __init__(
        self, data_dir: Path, log_options: LogOptions | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / "streams"
        self.root.mkdir(parents=True, exist_ok=True)
        self._options = log_options or LogOptions()
        self._clock = clock
        self._lock = threading.RLock()
        self._streams: dict[str, Stream] = {}
        self._load()

    def _load(self) -> None:
        for directory in sorted(self.root.iterdir()):
            if directory.name.startswith(_DROPPED_PREFIX):
                shutil.rmtree(directory, ignore_errors=True)  # a drop interrupted by a crash
                continue
            meta_path = directory / _META
            if not meta_path.is_file():
                continue
            try:
                meta = json.loads(meta_path.read_text())
                columns = [Column(c["name"], parse_type(c["type"])) for c in meta["columns"]]
                settings = StreamSettings.from_dict(meta.get("settings", {}))
                stream = Stream(meta["name"], columns, settings, directory, self._options, self._clock)
            except (OSError, ValueError, KeyError, TypeError, InvalidInput) as exc:
                # One damaged stream must not keep the server from starting with the others.
                logger.error("stream in %s could not be loaded: %s", directory, exc)
                continue
            self._streams[stream.name] = stream

    def create(self, name: str, columns: list[Column], settings: StreamSettings | None = None) -> Stream:
        """Create a stream (durably: its metadata is on disk when this returns).

        Raises :class:`InvalidInput` for a bad name, column or setting, :class:`AlreadyExists`."""
        user, settings = _validate(name, columns, settings or StreamSettings())
        with self._lock:
            if name in self._streams:
                raise AlreadyExists(f"stream '{name}' already exists")
            directory = self.root / name
            if (directory / _META).exists():
                # A stream whose metadata or log failed to load: never delete data implicitly.
                raise AlreadyExists(f"stream '{name}' exists on disk but could not be loaded (see the server log)")
            if directory.exists():
                shutil.rmtree(directory)  # a create interrupted before its metadata was written
            directory.mkdir(parents=True)
            meta = _Meta(name, [c.to_dict() for c in user], settings.to_dict())
            _write_atomically(directory / _META, json.dumps(asdict(meta), indent=2))
            stream = Stream(name, user, settings, directory, self._options, self._clock)
            self._streams[name] = stream
            return stream

    def drop(self, name: str) -> None:
        """Delete a stream and its data. Raises :class:`NotFound`."""
        with self._lock:
            stream = self.get(name)
            del self._streams[name]
            stream.close()
            # Rename first so a crash mid-delete never leaves a half stream that would load again.
            graveyard = self.root / f"{_DROPPED_PREFIX}{name}-{uuid.uuid4().hex[:8]}"
            os.replace(stream.directory, graveyard)
            shutil.rmtree(graveyard, ignore_errors=True)

    def get(self, name: str) -> Stream:
        """The stream called ``name``. Raises :class:`NotFound`."""
        stream = self._streams.get(name)
        if stream is None:
            raise NotFound(f"stream '{name}' does not exist")
        return stream

    def exists(self, name: str) -> bool:
        return name in self._streams

    def list(self) -> list[Stream]:
        """Every stream, by name."""
        with self._lock:
            return [self._streams[n] for n in sorted(self._streams)]

    def enforce_retention(self) -> None:
        """Apply every stream's retention now (appends do it too; call this for quiet streams)."""
        for stream in self.list():
            stream.log.enforce_retention()

    def close(self) -> None:
        """Close every log; a new store on the same directory sees everything."""
        with self._lock:
            for stream in self._streams.values():
                stream.close()
            self._streams.clear()


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
