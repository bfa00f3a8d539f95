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
from sinkflow.streams.defaults import ColumnDefaults, DefaultsCompiler, is_ingest_time, random_expression
from sinkflow.streams.ingest import default_array, fill_defaults, rows_to_batch, show_value
from sinkflow.streams.log import LogOptions, StreamLog
from sinkflow.streams.types import TP_TIME, TP_TIME_TYPE, Column

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


MODES = ("append", "versioned_kv", "changelog_kv", "mutable")

# Settings Timeplus accepts that change nothing here (storage layout, replication, ingest tuning):
# kept as written, so SHOW CREATE STREAM shows them, and listed in docs/streams.md.
IGNORED_SETTINGS = frozenset({
    "shards", "sharding_expr", "replication_factor", "logstore_codec", "logstore_flush_messages",
    "logstore_flush_ms", "storage_type", "storage_policy", "placement_policies", "shared_disk", "ingest_mode",
    "ack", "ingest_batch_max_bytes", "ingest_batch_timeout_ms", "fetch_threads", "flush_threshold_count",
    "flush_threshold_ms", "flush_threshold_bytes", "merge_with_ttl_timeout", "keep_versions", "interval_time",
    "logstore_request_timeout_ms", "distributed_flush_threshold_count", "distributed_flush_threshold_ms",
})


@dataclass(frozen=True)
class StreamSettings:
    """Per-stream settings (Timeplus's ``SETTINGS`` of ``CREATE STREAM``, and its stream kind).

    ``event_time_column`` names a datetime/datetime64 column that becomes ``_tp_time``, or is an
    expression computing it (else the ingest time is ``_tp_time``); ``retention_ms`` /
    ``retention_bytes`` bound the data kept (whole old segments are dropped); ``description``
    is free text (Timeplus's stream COMMENT).

    ``mode`` is ``append`` or, for a keyed stream, ``versioned_kv``, ``changelog_kv`` or
    ``mutable`` (``CREATE MUTABLE STREAM``); a keyed stream has a ``primary_key`` (column names)
    and optionally a ``version_column`` (Timeplus's default is ``_tp_time``). The log stores every
    row either way; readers give the keys their meaning.

    ``engine`` is a ClickHouse table engine written as ``ENGINE = Memory`` (or ``MergeTree``, …):
    as in Proton, such a stream is a table, which a query reads as ``table(name)``; "" for a stream.

    ``random`` marks a ``CREATE RANDOM STREAM``: its rows are generated from the columns' DEFAULT
    expressions, about ``eps`` rows per second. ``ignored`` holds the Timeplus settings that were
    accepted but have no effect (:data:`IGNORED_SETTINGS`), as ``(name, value text)`` pairs."""

    event_time_column: str | None = None
    retention_ms: int | None = None
    retention_bytes: int | None = None
    description: str = ""
    mode: str = "append"
    primary_key: tuple[str, ...] = ()
    version_column: str | None = None
    random: bool = False
    eps: float | None = None
    ignored: tuple[tuple[str, str], ...] = ()
    engine: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The settings as stream.json holds them (the keyed and random ones only when set)."""
        out: dict[str, Any] = {
            "event_time_column": self.event_time_column, "retention_ms": self.retention_ms,
            "retention_bytes": self.retention_bytes, "description": self.description, "mode": self.mode,
        }
        if self.primary_key:
            out["primary_key"] = list(self.primary_key)
        if self.version_column is not None:
            out["version_column"] = self.version_column
        if self.random:
            out["random"] = True
            out["eps"] = self.eps
        if self.ignored:
            out["ignored"] = dict(self.ignored)
        if self.engine:
            out["engine"] = self.engine
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StreamSettings:
        """Settings from a mapping, as REST bodies, SQL ``SETTINGS`` and stream.json give them.
        Timeplus's names ``logstore_retention_ms`` / ``logstore_retention_bytes`` are accepted for
        the retention settings (Timeplus's 0 and -1, "the system default" and "no limit", mean no
        limit here); numbers may come as text (``'86400000'``); ``None`` values are ignored; the
        settings of :data:`IGNORED_SETTINGS` are kept in ``ignored``.

        Raises :class:`InvalidInput` naming an unknown setting or a value of the wrong type."""
        values: dict[str, Any] = {}
        ignored: dict[str, str] = {}
        for key, value in data.items():
            name = _SETTING_ALIASES.get(key, key)
            if value is None:
                continue
            if name in ("retention_ms", "retention_bytes"):
                if not (isinstance(value, int | str) and str(value).strip() in ("0", "-1")):
                    values[name] = _positive_int(key, value)
            elif name in ("event_time_column", "description", "version_column", "engine"):
                if not isinstance(value, str):
                    raise InvalidInput(f"setting '{key}' must be a string, got {show_value(value)}")
                values[name] = value
            elif name == "mode":
                if value not in MODES:
                    raise InvalidInput(f"setting 'mode' must be one of {', '.join(MODES)}, got {show_value(value)}")
                values[name] = value
            elif name == "primary_key":
                keys = [value] if isinstance(value, str) else value
                if not isinstance(keys, list | tuple) or not all(isinstance(k, str) for k in keys):
                    raise InvalidInput(f"setting 'primary_key' must be column names, got {show_value(value)}")
                values[name] = tuple(keys)
            elif name == "random":
                values[name] = bool(value)
            elif name == "eps":
                values[name] = _non_negative_float(key, value)
            elif name == "ignored" and isinstance(value, dict):
                ignored.update({str(k): str(v) for k, v in value.items()})
            elif name in IGNORED_SETTINGS:
                ignored[name] = str(value)
            else:
                raise InvalidInput(
                    f"unknown stream setting '{key}' (known: event_time_column, retention_ms, retention_bytes, "
                    "logstore_retention_ms, logstore_retention_bytes, description, mode, primary_key, "
                    "version_column, eps, and Timeplus's storage settings listed in docs/streams.md)"
                )
        if ignored:
            values["ignored"] = tuple(sorted(ignored.items()))
        return cls(**values)


_SETTING_ALIASES = {"logstore_retention_ms": "retention_ms", "logstore_retention_bytes": "retention_bytes",
                    "comment": "description"}


def _non_negative_float(key: str, value: object) -> float:
    """``value`` as a number >= 0 (text allowed), else :class:`InvalidInput`."""
    try:
        number = float(value) if isinstance(value, int | float | str) and not isinstance(value, bool) else -1.0
    except ValueError:
        number = -1.0
    if not number >= 0:
        raise InvalidInput(f"setting '{key}' must be a number >= 0, got {show_value(value)}")
    return number


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


def _validate(name: str, columns: Sequence[Column], settings: StreamSettings) -> tuple[list[Column], Column, StreamSettings]:
    """The user columns of a new stream (without ``_tp_time``), its ``_tp_time`` column (with the
    expression that computes it, if any) and its settings (numbers given as text made numbers),
    after checking everything but the expressions themselves (:class:`ColumnDefaults` does).

    Raises :class:`InvalidInput` naming the stream, column or setting at fault."""
    check_identifier("stream", name)
    if not columns:
        raise InvalidInput(f"stream '{name}' needs at least one column")
    user: list[Column] = []
    seen: set[str] = set()
    tp_time = Column(TP_TIME, TP_TIME_TYPE)
    for column in columns:
        check_identifier("column", column.name)
        if column.name in seen:
            raise InvalidInput(f"column '{column.name}' is defined twice in stream '{name}'")
        seen.add(column.name)
        if column.name == TP_TIME:
            if not pa.types.is_timestamp(column.type.arrow):
                raise InvalidInput(f"column '{TP_TIME}' is the event time: it must be datetime64(3), not {column.type}")
            if column.alias:
                raise InvalidInput(f"column '{TP_TIME}' cannot be an ALIAS column (give it a DEFAULT)")
            if column.default is not None and not is_ingest_time(column.default):
                tp_time = Column(TP_TIME, TP_TIME_TYPE, column.default)
            continue  # every stream has it anyway, typed datetime64(3, 'UTC')
        user.append(column)
    if not user:
        raise InvalidInput(f"stream '{name}' needs at least one column besides {TP_TIME}")
    etc = settings.event_time_column
    if etc is not None and _IDENTIFIER.match(etc):
        match = next((c for c in user if c.name == etc), None)
        if match is None:
            raise InvalidInput(f"event_time_column '{etc}' is not a column of stream '{name}'")
        if not pa.types.is_timestamp(match.type.arrow):
            raise InvalidInput(f"event_time_column '{etc}' must be a datetime or datetime64 column, not {match.type}")
    elif etc is not None:
        # Timeplus's event_time_column may be an expression: it is then _tp_time's DEFAULT.
        if tp_time.default is not None:
            raise InvalidInput(f"stream '{name}' gives both event_time_column and a DEFAULT for {TP_TIME}: keep one")
        tp_time = Column(TP_TIME, TP_TIME_TYPE, etc)
    if settings.retention_ms is not None:
        settings = replace(settings, retention_ms=_positive_int("retention_ms", settings.retention_ms))
    if settings.retention_bytes is not None:
        settings = replace(settings, retention_bytes=_positive_int("retention_bytes", settings.retention_bytes))
    if not isinstance(settings.description, str):
        raise InvalidInput("setting 'description' must be a string")
    _check_keys(name, user, settings)
    if settings.random:
        if settings.eps is None:
            settings = replace(settings, eps=DEFAULT_RANDOM_EPS)
        if settings.retention_ms is None and settings.retention_bytes is None:
            settings = replace(settings, retention_bytes=RANDOM_RETENTION_BYTES)
    return user, tp_time, settings


DEFAULT_RANDOM_EPS = 1000.0  # Timeplus's default rate of a random stream, rows per second
# Generated rows are kept only this far back by default, so a forgotten random stream cannot fill the disk.
RANDOM_RETENTION_BYTES = 64 * 1024 * 1024


def _check_keys(name: str, user: list[Column], settings: StreamSettings) -> None:
    """Check a keyed stream's mode, primary key and version column. Raises :class:`InvalidInput`."""
    if settings.mode not in MODES:
        raise InvalidInput(f"setting 'mode' must be one of {', '.join(MODES)}, not '{settings.mode}'")
    names = {c.name for c in user}
    if settings.mode != "append" and not settings.primary_key:
        what = "a mutable stream" if settings.mode == "mutable" else f"mode '{settings.mode}'"
        raise InvalidInput(f"stream '{name}': {what} needs a PRIMARY KEY")
    for key in settings.primary_key:
        if key not in names:
            raise InvalidInput(f"stream '{name}': PRIMARY KEY column '{key}' is not a column of the stream")
    if len(set(settings.primary_key)) != len(settings.primary_key):
        raise InvalidInput(f"stream '{name}': a column appears twice in the PRIMARY KEY")
    version = settings.version_column
    if version is not None:
        if settings.mode not in ("versioned_kv", "changelog_kv"):
            raise InvalidInput(f"stream '{name}': version_column applies to mode 'versioned_kv' or 'changelog_kv'")
        if version not in names and version != TP_TIME:
            raise InvalidInput(f"stream '{name}': version_column '{version}' is not a column of the stream")
    if settings.random and settings.mode != "append":
        raise InvalidInput(f"stream '{name}': a random stream cannot be keyed")


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
        tp_time: Column | None = None,
        defaults: ColumnDefaults | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.directory = directory
        self.user_columns = user_columns
        self.columns: list[Column] = [*user_columns, tp_time or Column(TP_TIME, TP_TIME_TYPE)]
        self.schema = pa.schema(
            [c.arrow_field() for c in user_columns] + [pa.field(TP_TIME, TP_TIME_TYPE.arrow, nullable=False)]
        )
        self._clock = clock
        self._defaults = defaults
        self._computed = defaults.names if defaults is not None else frozenset()
        self._aliases = frozenset(c.name for c in user_columns if c.alias)
        self._by_name = {c.name: i for i, c in enumerate(user_columns)}
        self._user_names = [c.name for c in user_columns]
        self._insertable = [c.name for c in user_columns if not c.alias]
        self._user_types = [c.type.arrow for c in user_columns]
        # A batch of exactly the user columns needs no lookup, unless some column is always computed.
        self._fast = not self._aliases and TP_TIME not in self._computed
        etc = settings.event_time_column
        self._event_index = self._by_name.get(etc) if etc is not None else None
        log_options = replace(options, retention_ms=settings.retention_ms, retention_bytes=settings.retention_bytes)
        self.log = StreamLog(directory / "log", self.schema, log_options, clock, upgrade=self._upgrade)

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
        names = self._insertable if columns is None else columns
        return self.append_batch(rows_to_batch(self.name, self.user_columns, names, rows, first_row))

    def generate(self, count: int) -> AppendResult:
        """Append ``count`` rows made only of the columns' DEFAULT expressions (a random stream's
        rows; a column without one gets its zero value or null), stamped with the ingest time."""
        empty = pa.RecordBatch.from_struct_array(pa.array([{}] * count, pa.struct([])))
        return self.append_batch(empty)

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
        if self._fast and batch.schema.names == self._user_names and batch.schema.types == self._user_types:
            # Already the stream's user columns, in order (the common case): nothing to look up or cast.
            arrays = [fill_defaults(c.type, a) for c, a in zip(self.user_columns, batch.columns)]
            event_time = arrays[self._event_index] if self._event_index is not None else None
            tp_time, now = self._tp_time(event_time, batch.num_rows)
            return pa.RecordBatch.from_arrays([*arrays, tp_time], schema=self.schema), now
        found = self._user_arrays(batch)
        tp_index = batch.schema.get_field_index(TP_TIME)
        event_time: pa.Array | None = None
        if tp_index >= 0:
            event_time = batch.column(tp_index)
            if not pa.types.is_timestamp(event_time.type):
                raise InvalidInput(f"column '{TP_TIME}' must hold timestamps, not {event_time.type}")
        wanted = [name for name, array in found.items() if array is None]
        if event_time is None and self._event_index is None and TP_TIME in self._computed:
            wanted.append(TP_TIME)
        now: int | None = None
        tp_time: pa.Array | None = None
        if event_time is None and self._event_index is None and TP_TIME not in wanted:
            tp_time, now = self._tp_time(None, batch.num_rows)
        if wanted:
            assert self._defaults is not None
            known = {name: array for name, array in found.items() if array is not None}
            if event_time is not None or tp_time is not None:
                known[TP_TIME] = event_time if event_time is not None else tp_time
            computed = self._defaults.evaluate(known, batch.num_rows, wanted)
            found.update({n: fill_defaults(self.user_columns[self._by_name[n]].type, a)
                          for n, a in computed.items() if n != TP_TIME})
            event_time = computed.get(TP_TIME, event_time)
        arrays = list(found.values())
        if tp_time is None:
            if event_time is None and self._event_index is not None:
                event_time = arrays[self._event_index]
            tp_time, now = self._tp_time(event_time, batch.num_rows)
        return pa.RecordBatch.from_arrays([*arrays, tp_time], schema=self.schema), now

    def _user_arrays(self, batch: pa.RecordBatch) -> dict[str, pa.Array | None]:
        """The user columns of ``batch`` matched by name and cast to the stream's types, in stream
        order: a missing one is defaulted, or None when its expression must compute it."""
        count = batch.num_rows
        for name in batch.schema.names:
            if name in self._aliases:
                raise InvalidInput(f"column '{name}' of stream '{self.name}' is an ALIAS column: its value is "
                                   "computed, it cannot be given")
            if name not in self._by_name and name != TP_TIME:
                raise InvalidInput(f"unknown column '{name}' in stream '{self.name}'")
        arrays: dict[str, pa.Array | None] = {}
        for column in self.user_columns:
            index = batch.schema.get_field_index(column.name)
            if index < 0:
                arrays[column.name] = None if column.name in self._computed else default_array(column.type, count)
                continue
            array = batch.column(index)
            if array.type != column.type.arrow:
                try:
                    array = array.cast(column.type.arrow)
                except pa.ArrowException as exc:
                    raise InvalidInput(
                        f"column '{column.name}': cannot store {array.type} values as {column.type}: {exc}"
                    ) from None
            arrays[column.name] = fill_defaults(column.type, array)
        return arrays

    def _upgrade(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """A batch stored before columns were added (ALTER STREAM … ADD COLUMN), in the current
        schema: an added column reads its DEFAULT expression (computed now, over the row's stored
        columns) or its zero value / null."""
        count = batch.num_rows
        stored = dict(zip(batch.schema.names, batch.columns, strict=True))
        wanted = [c.name for c in self.user_columns if c.name not in stored and c.name in self._computed]
        computed = self._defaults.evaluate(stored, count, wanted) if wanted and self._defaults is not None else {}
        arrays = []
        for column in self.user_columns:
            array = stored.get(column.name, computed.get(column.name))
            arrays.append(fill_defaults(column.type, array) if array is not None else default_array(column.type, count))
        return pa.RecordBatch.from_arrays([*arrays, stored[TP_TIME]], schema=self.schema)

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
    epoch) is the ingest time and retention clock, replaceable in tests. ``defaults`` compiles
    column DEFAULT / ALIAS expressions (the server passes :func:`sinkflow.sql.defaults.compile_default`);
    without it a stream with such expressions is refused."""

    def __init__(
        self, data_dir: Path, log_options: LogOptions | None = None, clock: Callable[[], float] = time.time,
        defaults: DefaultsCompiler | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self._compiler = defaults
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
                columns = [Column.from_dict(c) for c in meta["columns"]]
                settings = StreamSettings.from_dict(meta.get("settings", {}))
                stream = self._open(meta["name"], columns, settings, directory)
            except (OSError, ValueError, KeyError, TypeError, InvalidInput) as exc:
                # One damaged stream must not keep the server from starting with the others.
                logger.error("stream in %s could not be loaded: %s", directory, exc)
                continue
            self._streams[stream.name] = stream

    def create(self, name: str, columns: list[Column], settings: StreamSettings | None = None) -> Stream:
        """Create a stream (durably: its metadata is on disk when this returns).

        Raises :class:`InvalidInput` for a bad name, column or setting, :class:`AlreadyExists`."""
        user, tp_time, settings, defaults = self._checked(name, columns, settings or StreamSettings())
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
            # _tp_time is kept only for its own DEFAULT (event_time_column is a setting).
            kept = [*user, tp_time] if tp_time.default not in (None, settings.event_time_column) else user
            meta = _Meta(name, [c.to_dict() for c in kept], settings.to_dict())
            _write_atomically(directory / _META, json.dumps(asdict(meta), indent=2))
            stream = Stream(name, user, settings, directory, self._options, self._clock, tp_time, defaults)
            self._streams[name] = stream
            return stream

    def _open(self, name: str, columns: list[Column], settings: StreamSettings, directory: Path) -> Stream:
        """The stream stored in ``directory`` (its metadata already read)."""
        user, tp_time, settings, defaults = self._checked(name, columns, settings)
        return Stream(name, user, settings, directory, self._options, self._clock, tp_time, defaults)

    def _checked(self, name: str, columns: list[Column], settings: StreamSettings
                 ) -> tuple[list[Column], Column, StreamSettings, ColumnDefaults | None]:
        """:func:`_validate` and the compiled expressions. Raises :class:`InvalidInput`."""
        user, tp_time, settings = _validate(name, columns, settings)
        evaluated = user
        if settings.random:
            # Columns without a DEFAULT are random data of their type (not stored in the stream's
            # definition: SHOW CREATE shows the columns as written).
            evaluated = [c if c.default is not None else replace(c, default=random_expression(c)) for c in user]
        return user, tp_time, settings, self._defaults(name, [*evaluated, tp_time])

    def _defaults(self, name: str, columns: list[Column]) -> ColumnDefaults | None:
        """The compiled expressions of ``columns``, None when none has one. Raises :class:`InvalidInput`."""
        if all(c.default is None for c in columns):
            return None
        if self._compiler is None:
            raise InvalidInput(f"stream '{name}': column DEFAULT expressions are not available in this store")
        return ColumnDefaults(name, columns, self._compiler)

    def add_column(self, name: str, column: Column, position: str | None = None, if_not_exists: bool = False) -> Stream:
        """Add ``column`` to stream ``name`` (Timeplus's ALTER STREAM … ADD COLUMN): rows already
        stored read its DEFAULT expression or its zero value / null. ``position`` is ``"first"``,
        ``"after <column>"`` or None (last). The stream object is replaced: queries reading the old
        one see it closed. Returns the new stream.

        Raises :class:`NotFound`, :class:`AlreadyExists` for an existing column (unless
        ``if_not_exists``), :class:`InvalidInput` for a bad column, position or expression."""
        with self._lock:
            stream = self.get(name)
            if any(c.name == column.name for c in stream.columns):
                if if_not_exists:
                    return stream
                raise AlreadyExists(f"column '{column.name}' already exists in stream '{name}'")
            user = list(stream.user_columns)
            if position is None:
                user.append(column)
            elif position == "first":
                user.insert(0, column)
            else:
                after = position.removeprefix("after ")
                index = next((i for i, c in enumerate(user) if c.name == after), None)
                if index is None:
                    raise InvalidInput(f"column '{after}' (after which to add '{column.name}') is not a column of "
                                       f"stream '{name}'")
                user.insert(index + 1, column)
            tp_time = stream.columns[-1]
            kept = [*user, tp_time] if tp_time.default not in (None, stream.settings.event_time_column) else user
            self._checked(name, kept, stream.settings)
            meta = _Meta(name, [c.to_dict() for c in kept], stream.settings.to_dict())
            _write_atomically(stream.directory / _META, json.dumps(asdict(meta), indent=2))
            stream.close()
            self._streams[name] = self._open(name, kept, stream.settings, stream.directory)
            return self._streams[name]

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

    def truncate(self, name: str) -> Stream:
        """Delete every row of stream ``name``, keeping its columns and settings (TRUNCATE
        STREAM). The stream object is replaced: queries reading the old one see it closed.
        Returns the new stream. Raises :class:`NotFound`."""
        return self.rewrite(name, lambda rows: rows.slice(0, 0))

    def rewrite(self, name: str, rows: Callable[[pa.Table], pa.Table],
                columns: Callable[[list[Column]], list[Column]] | None = None) -> Stream:
        """Replace stream ``name``'s rows by ``rows(stored)`` — the stored rows with their
        ``_tp_time``, without ALIAS columns — and, with ``columns``, its columns by
        ``columns(current)`` (``_tp_time`` excluded); settings are kept. For mutations
        (ALTER STREAM … UPDATE / DELETE / DROP, RENAME or MODIFY COLUMN, TRUNCATE): the stream
        object is replaced and its rows renumbered from 0, so queries reading the old one see it
        closed. Returns the new stream.

        Raises :class:`NotFound`, :class:`InvalidInput` for bad new columns or rows that do not
        fit them; then nothing changed."""
        with self._lock:
            stream = self.get(name)
            meta = json.loads((stream.directory / _META).read_text())
            kept = [Column.from_dict(c) for c in meta["columns"]]
            tp_time = [c for c in kept if c.name == TP_TIME]
            user = [c for c in kept if c.name != TP_TIME]
            new_columns = [*(columns(user) if columns is not None else user), *tp_time]
            settings = StreamSettings.from_dict(meta.get("settings", {}))
            stored = stream.table()
            stored = stored.drop_columns([c.name for c in stream.user_columns if c.alias])
            new_rows = rows(stored)
            self._checked(name, new_columns, settings)  # refuses bad columns before anything changes
            for column in new_columns:
                if column.name in new_rows.column_names and column.name != TP_TIME:
                    try:
                        new_rows.column(column.name).cast(column.type.arrow)
                    except pa.ArrowException as exc:
                        raise InvalidInput(f"column '{column.name}': the stored values do not fit {column.type}: "
                                           f"{exc}") from None
            self.drop(name)
            new = self.create(name, new_columns, settings)
            if new_rows.num_rows:
                new.append_batch(new_rows)
            return new

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

    def generates(self, name: str) -> bool:  # noqa: ARG002 - a cluster node answers per stream
        """Whether this process generates the rows of random stream ``name`` (here: always)."""
        return True

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
