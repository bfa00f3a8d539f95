"""Durable metadata: sink definitions, their secrets, their checkpoints.

Everything lives in SQLite under the data dir. Secrets are kept in a separate database file
(``secrets.db``, readable by the owner only) so that copying or printing the catalog never
carries a password; :class:`Catalog` hands them back only to the runtime that needs them.
Stream schemas and data belong to :mod:`sinkflow.streams` and are not stored here.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sinkflow.errors import AlreadyExists, NotFound

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sinks (
    id TEXT PRIMARY KEY,
    name TEXT UNIQUE NOT NULL,
    description TEXT NOT NULL,
    sql TEXT NOT NULL,
    type TEXT NOT NULL,
    properties TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    sink_id TEXT PRIMARY KEY,
    epoch INTEGER NOT NULL,
    snapshot BLOB NOT NULL,
    counters TEXT NOT NULL,
    committed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS stream_sink_progress (
    sink_id TEXT PRIMARY KEY,
    next_row INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS row_reservations (
    sink_id TEXT PRIMARY KEY,
    next_row INTEGER NOT NULL
);
"""

_SECRETS_SCHEMA = "CREATE TABLE IF NOT EXISTS secrets (sink_id TEXT PRIMARY KEY, secrets TEXT NOT NULL)"


@dataclass
class SinkRecord:
    """A stored sink. ``properties`` hold no secrets; ``secrets`` maps dotted paths to values."""

    id: str
    name: str
    description: str
    sql: str
    type: str
    properties: dict[str, Any]
    secrets: dict[str, Any] = field(default_factory=dict, repr=False)
    paused: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True)
class Checkpoint:
    """The state a sink resumes from: the last epoch acknowledged, the engine snapshot taken
    right after it (source offsets included), and the sink's counters at that moment."""

    epoch: int
    snapshot: bytes
    counters: dict[str, int]
    committed_at: float


class Catalog:
    """SQLite-backed store of sinks and checkpoints. Thread-safe; every write is committed
    before the method returns."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = self._connect(data_dir / "catalog.db")
        self._db.executescript(_SCHEMA)
        secrets_path = data_dir / "secrets.db"
        self._secrets = self._connect(secrets_path)
        self._secrets.execute(_SECRETS_SCHEMA)
        os.chmod(secrets_path, 0o600)

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._secrets.close()

    # -- sinks -------------------------------------------------------------------------

    def add_sink(self, record: SinkRecord) -> None:
        """Store a new sink. Raises :class:`AlreadyExists` when the name is taken."""
        now = time.time()
        record.created_at = record.updated_at = now
        with self._lock:
            if self._db.execute("SELECT 1 FROM sinks WHERE name = ?", (record.name,)).fetchone():
                raise AlreadyExists(f"a sink named '{record.name}' already exists")
            self._db.execute(
                "INSERT INTO sinks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.id, record.name, record.description, record.sql, record.type,
                 json.dumps(record.properties), int(record.paused), now, now),
            )
            self._secrets.execute("INSERT OR REPLACE INTO secrets VALUES (?, ?)", (record.id, json.dumps(record.secrets)))

    def update_sink(self, record: SinkRecord) -> None:
        """Replace a stored sink's definition; its checkpoint is dropped (the new query starts afresh)."""
        record.updated_at = time.time()
        with self._lock:
            cur = self._db.execute(
                "UPDATE sinks SET description=?, sql=?, type=?, properties=?, updated_at=? WHERE id=?",
                (record.description, record.sql, record.type, json.dumps(record.properties), record.updated_at, record.id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"sink '{record.id}' not found")
            self._secrets.execute("INSERT OR REPLACE INTO secrets VALUES (?, ?)", (record.id, json.dumps(record.secrets)))
            self._db.execute("DELETE FROM checkpoints WHERE sink_id = ?", (record.id,))

    def set_paused(self, sink_id: str, paused: bool) -> None:
        with self._lock:
            self._db.execute("UPDATE sinks SET paused = ? WHERE id = ?", (int(paused), sink_id))

    def delete_sink(self, sink_id: str) -> None:
        """Remove a sink, its secrets and its checkpoint. Raises :class:`NotFound`."""
        with self._lock:
            cur = self._db.execute("DELETE FROM sinks WHERE id = ?", (sink_id,))
            if cur.rowcount == 0:
                raise NotFound(f"sink '{sink_id}' not found")
            self._db.execute("DELETE FROM checkpoints WHERE sink_id = ?", (sink_id,))
            self._db.execute("DELETE FROM stream_sink_progress WHERE sink_id = ?", (sink_id,))
            self._db.execute("DELETE FROM row_reservations WHERE sink_id = ?", (sink_id,))
            self._secrets.execute("DELETE FROM secrets WHERE sink_id = ?", (sink_id,))

    def sinks(self) -> list[SinkRecord]:
        """Every stored sink, oldest first, with its secrets."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, name, description, sql, type, properties, paused, created_at, updated_at"
                " FROM sinks ORDER BY created_at"
            ).fetchall()
            secrets = dict(self._secrets.execute("SELECT sink_id, secrets FROM secrets").fetchall())
        return [
            SinkRecord(id=r[0], name=r[1], description=r[2], sql=r[3], type=r[4], properties=json.loads(r[5]),
                       secrets=json.loads(secrets.get(r[0], "{}")), paused=bool(r[6]), created_at=r[7], updated_at=r[8])
            for r in rows
        ]

    # -- checkpoints ---------------------------------------------------------------------

    def save_checkpoint(self, sink_id: str, checkpoint: Checkpoint) -> None:
        """Commit ``checkpoint`` durably; a later :meth:`checkpoint` returns it."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?, ?)",
                (sink_id, checkpoint.epoch, checkpoint.snapshot, json.dumps(checkpoint.counters), checkpoint.committed_at),
            )

    def checkpoint(self, sink_id: str) -> Checkpoint | None:
        with self._lock:
            row = self._db.execute(
                "SELECT epoch, snapshot, counters, committed_at FROM checkpoints WHERE sink_id = ?", (sink_id,)
            ).fetchone()
        if row is None:
            return None
        return Checkpoint(epoch=row[0], snapshot=bytes(row[1]), counters=json.loads(row[2]), committed_at=row[3])

    # -- stream sink progress --------------------------------------------------------------

    def stream_progress(self, sink_id: str) -> int:
        """The first output position the stream sink ``sink_id`` has not appended yet."""
        with self._lock:
            row = self._db.execute("SELECT next_row FROM stream_sink_progress WHERE sink_id = ?", (sink_id,)).fetchone()
        return int(row[0]) if row else 0

    def set_stream_progress(self, sink_id: str, next_row: int) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO stream_sink_progress VALUES (?, ?)", (sink_id, next_row))

    # -- output positions handed out -------------------------------------------------------

    def reserved_rows(self, sink_id: str) -> int:
        """The first output position no write of ``sink_id`` may have used yet (0: none reserved)."""
        with self._lock:
            row = self._db.execute("SELECT next_row FROM row_reservations WHERE sink_id = ?", (sink_id,)).fetchone()
        return int(row[0]) if row else 0

    def reserve_rows(self, sink_id: str, next_row: int) -> None:
        """Record durably that writes of ``sink_id`` may use output positions below ``next_row``.

        Positions make idempotency keys: a redefined sink starts counting at or after this
        mark, so even after a crash it never reuses a key sent for another row.
        """
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO row_reservations VALUES (?, ?)", (sink_id, next_row))
