"""Durable metadata: sink definitions, their secrets, their checkpoints.

Everything lives in SQLite under the data dir. Secrets are kept in a separate database file
(``secrets.db`` and its ``-wal``/``-shm`` files, mode 0600), each sink's sealed with the
server's key (:mod:`sinkflow.secret_box`), so that copying or printing the catalog never
carries a password; :class:`Catalog` hands them back only to the runtime that needs them.
The catalog itself records which secret properties each sink has (never their values), so a
lost, replaced or unreadable secrets store is reported on the sinks that need it.
Stream schemas and data belong to :mod:`sinkflow.streams` and are not stored here.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sinkflow.errors import AlreadyExists, NotFound, SecretsUnavailable
from sinkflow.secret_box import SecretBox, SecretsUnreadable, private_file

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
CREATE TABLE IF NOT EXISTS external_streams (
    name TEXT PRIMARY KEY,
    is_table INTEGER NOT NULL,
    type TEXT NOT NULL,
    columns TEXT NOT NULL,
    settings TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS kafka_source_offsets (
    name TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (name, partition)
);
CREATE TABLE IF NOT EXISTS views (
    name TEXT PRIMARY KEY,
    query TEXT NOT NULL,
    target TEXT,
    sink_id TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS hidden_properties (
    sink_id TEXT PRIMARY KEY,
    paths TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS row_reservations (
    sink_id TEXT PRIMARY KEY,
    next_row INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS functions (
    name TEXT PRIMARY KEY,
    params TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at REAL NOT NULL
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
    #: Why the sink's secrets could not be read ("" when they were): the sink cannot start.
    secrets_error: str = ""


@dataclass
class ExternalStreamRecord:
    """A stored external stream (or table). ``columns`` are (name, type name) pairs, ``defaults``
    the DEFAULT expressions of some of them; ``settings`` hold no secrets; ``secrets`` maps
    setting names to values."""

    name: str
    type: str
    columns: list[tuple[str, str]]
    settings: dict[str, Any]
    secrets: dict[str, Any] = field(default_factory=dict, repr=False)
    is_table: bool = False
    created_at: float = 0.0
    defaults: dict[str, str] = field(default_factory=dict)


@dataclass
class ViewRecord:
    """A stored view. A materialized view runs as the sink ``sink_id`` writing into ``target``
    (its own stream, named like the view, when it was created without INTO); a plain view has
    neither and is only its ``query``."""

    name: str
    query: str
    target: str | None = None
    sink_id: str | None = None
    created_at: float = 0.0


@dataclass(frozen=True)
class FunctionRecord:
    """A stored SQL user-defined function: ``CREATE FUNCTION name AS (params…) -> body``."""

    name: str
    params: tuple[str, ...]
    body: str


@dataclass(frozen=True)
class Checkpoint:
    """The state a sink resumes from: the last epoch acknowledged, the engine snapshot taken
    right after it (source offsets included), and the sink's counters at that moment."""

    epoch: int
    snapshot: bytes
    counters: dict[str, int]
    committed_at: float


class CatalogStore(Protocol):
    """What the runtime and the API need of a catalog: the embedded :class:`Catalog` (SQLite) and
    cluster mode's :class:`~sinkflow.cluster.catalog.ClusterCatalog` (a compacted Kafka topic)
    both implement it. Every write is durable when the method returns; reads return copies.
    Methods raise :class:`AlreadyExists` / :class:`NotFound` as their docstrings in
    :class:`Catalog` say."""

    def close(self) -> None: ...

    # Sinks (a materialized view is a sink).
    def add_sink(self, record: SinkRecord) -> None: ...
    def update_sink(self, record: SinkRecord) -> None: ...
    def set_paused(self, sink_id: str, paused: bool) -> None: ...
    def delete_sink(self, sink_id: str) -> None: ...
    def sinks(self) -> list[SinkRecord]: ...

    # What a sink resumes from, and the output positions it used.
    def save_checkpoint(self, sink_id: str, checkpoint: Checkpoint) -> None: ...
    def checkpoint(self, sink_id: str) -> Checkpoint | None: ...
    def stream_progress(self, sink_id: str) -> int: ...
    def set_stream_progress(self, sink_id: str, next_row: int) -> None: ...
    def reserved_rows(self, sink_id: str) -> int: ...
    def reserve_rows(self, sink_id: str, next_row: int) -> None: ...

    # Pipelines made in SQL.
    def add_external_stream(self, record: ExternalStreamRecord) -> None: ...
    def delete_external_stream(self, name: str) -> None: ...
    def external_streams(self) -> list[ExternalStreamRecord]: ...
    def add_view(self, record: ViewRecord) -> None: ...
    def delete_view(self, name: str) -> None: ...
    def views(self) -> list[ViewRecord]: ...
    def kafka_offsets(self, name: str) -> dict[int, int]: ...
    def put_function(self, record: FunctionRecord) -> None: ...
    def delete_function(self, name: str) -> None: ...
    def functions(self) -> list[FunctionRecord]: ...
    def set_kafka_offsets(self, name: str, offsets: dict[int, int]) -> None: ...


class Catalog(CatalogStore):
    """SQLite-backed store of sinks and checkpoints. Thread-safe; every write is committed
    before the method returns."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = self._connect(data_dir / "catalog.db")
        self._db.executescript(_SCHEMA)
        self._box = SecretBox.for_data_dir(data_dir)
        self._secrets_path = data_dir / "secrets.db"
        #: Why the secrets store cannot be used ("" when it can).
        self.secrets_error = ""
        self._secrets: sqlite3.Connection | None = None
        try:
            self._secrets = self._open_secrets(self._secrets_path)
        except sqlite3.Error as exc:
            self.secrets_error = f"the secrets store {self._secrets_path} cannot be read ({exc})"

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def _open_secrets(self, path: Path) -> sqlite3.Connection:
        """Open the secrets store, every file of it private (SQLite gives its -wal and -shm
        files the mode of the database file), sealing values a server without encryption left."""
        sidecars = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
        for file in (path, *(f for f in sidecars if f.exists())):
            private_file(file)
        db = self._connect(path)
        db.execute(_SECRETS_SCHEMA)
        for file in (f for f in sidecars if f.exists()):
            private_file(file)
        for sink_id, text in db.execute("SELECT sink_id, secrets FROM secrets").fetchall():
            if text.startswith("{"):  # stored in clear by an earlier version
                db.execute("UPDATE secrets SET secrets = ? WHERE sink_id = ?", (self._box.seal(text), sink_id))
                self._db.execute("INSERT OR IGNORE INTO hidden_properties VALUES (?, ?)",
                                 (sink_id, json.dumps(sorted(json.loads(text)))))
        return db

    def _store_secrets(self, sink_id: str, secrets: dict[str, Any]) -> None:
        """Seal and store a sink's secrets, and index their paths. Raises :class:`SecretsUnavailable`."""
        if secrets:
            if self._secrets is None:
                raise SecretsUnavailable(f"{self.secrets_error}: sinks with secrets cannot be stored")
            self._secrets.execute("INSERT OR REPLACE INTO secrets VALUES (?, ?)",
                                  (sink_id, self._box.seal(json.dumps(secrets))))
        elif self._secrets is not None:
            self._secrets.execute("DELETE FROM secrets WHERE sink_id = ?", (sink_id,))
        self._db.execute("INSERT OR REPLACE INTO hidden_properties VALUES (?, ?)", (sink_id, json.dumps(sorted(secrets))))

    def _load_secrets(self, sink_ids: list[str]) -> dict[str, tuple[dict[str, Any], str]]:
        """Each sink's secrets and, when they cannot be had, why (the secrets are then {})."""
        index = {sid: json.loads(paths) for sid, paths in self._db.execute("SELECT sink_id, paths FROM hidden_properties")}
        sealed: dict[str, str] = {}
        if self._secrets is not None:
            sealed = dict(self._secrets.execute("SELECT sink_id, secrets FROM secrets").fetchall())
        loaded: dict[str, tuple[dict[str, Any], str]] = {}
        for sink_id in sink_ids:
            needed = index.get(sink_id, [])
            if not needed:
                loaded[sink_id] = ({}, "")
            elif self._secrets is None:
                loaded[sink_id] = ({}, f"its secrets ({', '.join(needed)}) are unavailable: {self.secrets_error}")
            elif sink_id not in sealed:
                loaded[sink_id] = ({}, f"its secrets ({', '.join(needed)}) are missing from the secrets store "
                                       f"{self._secrets_path} (deleted or replaced?): set them again with PUT or PATCH")
            else:
                try:
                    loaded[sink_id] = (json.loads(self._box.open(sealed[sink_id])), "")
                except SecretsUnreadable as exc:
                    loaded[sink_id] = ({}, f"its secrets ({', '.join(needed)}) {exc} (was the key changed?)"
                                           ": set the key back, or set the secrets again with PUT or PATCH")
        return loaded

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._secrets is not None:
                self._secrets.close()

    # -- sinks -------------------------------------------------------------------------

    def add_sink(self, record: SinkRecord) -> None:
        """Store a new sink. Raises :class:`AlreadyExists` when the name is taken, and
        :class:`SecretsUnavailable` when it has secrets and the secrets store cannot be used."""
        now = time.time()
        record.created_at = record.updated_at = now
        with self._lock:
            if self._db.execute("SELECT 1 FROM sinks WHERE name = ?", (record.name,)).fetchone():
                raise AlreadyExists(f"a sink named '{record.name}' already exists")
            self._store_secrets(record.id, record.secrets)
            self._db.execute(
                "INSERT INTO sinks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.id, record.name, record.description, record.sql, record.type,
                 json.dumps(record.properties), int(record.paused), now, now),
            )

    def update_sink(self, record: SinkRecord) -> None:
        """Replace a stored sink's definition; its checkpoint is dropped (the new query starts afresh).
        Raises :class:`NotFound`, and :class:`SecretsUnavailable` as :meth:`add_sink`."""
        record.updated_at = time.time()
        with self._lock:
            if not self._db.execute("SELECT 1 FROM sinks WHERE id = ?", (record.id,)).fetchone():
                raise NotFound(f"sink '{record.id}' not found")
            self._store_secrets(record.id, record.secrets)
            record.secrets_error = ""
            cur = self._db.execute(
                "UPDATE sinks SET description=?, sql=?, type=?, properties=?, updated_at=? WHERE id=?",
                (record.description, record.sql, record.type, json.dumps(record.properties), record.updated_at, record.id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"sink '{record.id}' not found")
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
            self._db.execute("DELETE FROM views WHERE sink_id = ?", (sink_id,))
            self._db.execute("DELETE FROM row_reservations WHERE sink_id = ?", (sink_id,))
            self._db.execute("DELETE FROM hidden_properties WHERE sink_id = ?", (sink_id,))
            if self._secrets is not None:
                self._secrets.execute("DELETE FROM secrets WHERE sink_id = ?", (sink_id,))

    def sinks(self) -> list[SinkRecord]:
        """Every stored sink, oldest first, with its secrets; a sink whose secrets cannot be
        read (store lost, damaged or sealed with another key) has ``secrets_error`` saying why."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, name, description, sql, type, properties, paused, created_at, updated_at"
                " FROM sinks ORDER BY created_at"
            ).fetchall()
            secrets = self._load_secrets([r[0] for r in rows])
        return [
            SinkRecord(id=r[0], name=r[1], description=r[2], sql=r[3], type=r[4], properties=json.loads(r[5]),
                       secrets=secrets[r[0]][0], secrets_error=secrets[r[0]][1], paused=bool(r[6]), created_at=r[7],
                       updated_at=r[8])
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

    # -- external streams and views ----------------------------------------------------------
    # External-stream secrets share the sinks' secrets table, keyed apart from sink ids.

    @staticmethod
    def _external_key(name: str) -> str:
        return f"external_stream:{name}"

    def add_external_stream(self, record: ExternalStreamRecord) -> None:
        """Store a new external stream. Raises :class:`AlreadyExists` when the name is taken."""
        record.created_at = time.time()
        with self._lock:
            if self._db.execute("SELECT 1 FROM external_streams WHERE name = ?", (record.name,)).fetchone():
                raise AlreadyExists(f"an external stream named '{record.name}' already exists")
            self._db.execute(
                "INSERT INTO external_streams VALUES (?, ?, ?, ?, ?, ?)",
                # Columns with DEFAULTs are stored as an object; without, as the list they always were.
                (record.name, int(record.is_table), record.type,
                 json.dumps({"columns": record.columns, "defaults": record.defaults} if record.defaults
                            else record.columns),
                 json.dumps(record.settings), record.created_at),
            )
            self._store_secrets(self._external_key(record.name), record.secrets)

    def delete_external_stream(self, name: str) -> None:
        """Remove an external stream and its secrets. Raises :class:`NotFound`."""
        with self._lock:
            if self._db.execute("DELETE FROM external_streams WHERE name = ?", (name,)).rowcount == 0:
                raise NotFound(f"external stream '{name}' not found")
            self._db.execute("DELETE FROM hidden_properties WHERE sink_id = ?", (self._external_key(name),))
            if self._secrets is not None:
                self._secrets.execute("DELETE FROM secrets WHERE sink_id = ?", (self._external_key(name),))
            self._db.execute("DELETE FROM kafka_source_offsets WHERE name = ?", (name,))

    def external_streams(self) -> list[ExternalStreamRecord]:
        """Every external stream, oldest first, with its secrets."""
        with self._lock:
            rows = self._db.execute("SELECT name, is_table, type, columns, settings, created_at"
                                    " FROM external_streams ORDER BY created_at").fetchall()
            secrets = self._load_secrets([self._external_key(r[0]) for r in rows])
        records = []
        for r in rows:
            columns = json.loads(r[3])
            stored = columns if isinstance(columns, dict) else {"columns": columns, "defaults": {}}
            records.append(ExternalStreamRecord(
                name=r[0], is_table=bool(r[1]), type=r[2], columns=[tuple(c) for c in stored["columns"]],
                settings=json.loads(r[4]), secrets=secrets[self._external_key(r[0])][0], created_at=r[5],
                defaults=stored["defaults"]))
        return records

    def add_view(self, record: ViewRecord) -> None:
        """Store a view. Raises :class:`AlreadyExists` when the name is taken."""
        record.created_at = time.time()
        with self._lock:
            if self._db.execute("SELECT 1 FROM views WHERE name = ?", (record.name,)).fetchone():
                raise AlreadyExists(f"a view named '{record.name}' already exists")
            self._db.execute("INSERT INTO views VALUES (?, ?, ?, ?, ?)",
                             (record.name, record.query, record.target, record.sink_id, record.created_at))

    def delete_view(self, name: str) -> None:
        """Forget a view (its sink, if any, is deleted with :meth:`delete_sink`)."""
        with self._lock:
            self._db.execute("DELETE FROM views WHERE name = ?", (name,))

    def views(self) -> list[ViewRecord]:
        """Every view, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT name, query, target, sink_id, created_at FROM views"
                                    " ORDER BY created_at").fetchall()
        return [ViewRecord(name=r[0], query=r[1], target=r[2], sink_id=r[3], created_at=r[4]) for r in rows]

    def put_function(self, record: FunctionRecord) -> None:
        """Store a SQL function, replacing one of the same name."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO functions VALUES (?, ?, ?, ?)",
                             (record.name, json.dumps(list(record.params)), record.body, time.time()))

    def delete_function(self, name: str) -> None:
        """Forget a SQL function (nothing happens when there is none of that name)."""
        with self._lock:
            self._db.execute("DELETE FROM functions WHERE name = ?", (name,))

    def functions(self) -> list[FunctionRecord]:
        """Every SQL function, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT name, params, body FROM functions ORDER BY created_at").fetchall()
        return [FunctionRecord(r[0], tuple(json.loads(r[1])), r[2]) for r in rows]

    def kafka_offsets(self, name: str) -> dict[int, int]:
        """Partition → the next offset the Kafka external stream ``name`` has not stored yet."""
        with self._lock:
            rows = self._db.execute("SELECT partition, next_offset FROM kafka_source_offsets WHERE name = ?",
                                    (name,)).fetchall()
        return {int(p): int(o) for p, o in rows}

    def set_kafka_offsets(self, name: str, offsets: dict[int, int]) -> None:
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO kafka_source_offsets VALUES (?, ?, ?)",
                                 [(name, p, o) for p, o in offsets.items()])

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
